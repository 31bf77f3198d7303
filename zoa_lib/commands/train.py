"""``zoa train``: train the δ or φ V-Net on the profile's mock shards (resumable, distributed)."""
from __future__ import annotations

import os

from zoa_lib.commands.options import (
    add_command,
    add_json_arg,
    add_profile_args,
    json_output,
    print_json,
    profile_from_args,
)


def register(sub):
    p = add_command(
        sub, "train", help="train the density (delta) or potential (phi) V-Net",
        description="Train a V-Net on data/<profile>/mocks (Adam, MSE, triangular cyclic learning rate) "
                    "and write data/<profile>/models/<target>/: model.keras (last epoch), best.keras "
                    "(lowest validation loss), history.csv (loss, val_loss, learning_rate per epoch) and "
                    "backup/ (BackupAndRestore state while training). Every shard is validated first. "
                    "Prints the network's parameter count.",
        examples=["zoa train --profile ci --target delta",
                  "zoa train --profile laptop --target phi --network vnet_paper   # the paper's set-up",
                  "zoa train --profile paper --target phi --resume",
                  "srun zoa train --profile paper --target phi --strategy multiworker",
                  "zoa train --profile ci --target phi --set training.epochs=1 --no-progress --json"])
    add_profile_args(p)
    p.add_argument("--target", required=True, choices=("delta", "phi"),
                   help="delta (density contrast) or phi (peculiar potential)")
    p.add_argument("--network", default="vnet", choices=("vnet", "vnet_paper"),
                   help="vnet (default): the profile's own set-up; vnet_paper: the paper's set-up, the two "
                        "survey channels only (files under models/vnet_paper/, predictions/vnet_paper/)")
    p.add_argument("--resume", action="store_true",
                   help="continue an interrupted run from backup/ (or a finished one after raising "
                        "training.epochs) instead of starting afresh")
    p.add_argument("--strategy", default="auto", choices=("auto", "default", "mirrored", "multiworker"),
                   help="tf.distribute strategy: auto (default: multiworker under TF_CONFIG or a multi-task "
                        "Slurm step, mirrored with several GPUs, else one device), default, mirrored "
                        "(all GPUs of this node), multiworker (cluster from TF_CONFIG or Slurm)")
    p.add_argument("--deterministic", action="store_true",
                   help="same as --set training.deterministic=true: tf.config.experimental.enable_op_determinism() "
                        "before the model is built, for bit-reproducible runs (CPU and GPU), slower")
    p.add_argument("--no-progress", action="store_true", help="no progress display")
    add_json_arg(p, "the result (parameters, epochs, last epoch's losses, files written)")
    p.set_defaults(func=run)


def run(args):
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    if args.deterministic:  # recorded in the model's provenance like any profile key
        args.overrides = list(args.overrides) + ["training.deterministic=true"]
    from zoa_lib.methods.networks import network_profile

    prof = network_profile(profile_from_args(args), args.network)
    from zoa_lib.methods.training.fitting import train
    from zoa_lib.methods.training.strategy import get_strategy

    with json_output(args):
        strategy = get_strategy(args.strategy)  # first: MultiWorkerMirroredStrategy must precede other TF work
        res = train(prof, args.target, resume=args.resume, strategy=strategy, progress=not args.no_progress)
    last = {k: v[-1] for k, v in res.history.items() if v}
    if args.json:
        print_json({"profile": prof.name, "target": args.target, "network": args.network,
                    "parameters": res.parameters, "epochs_done": res.epochs_done, "start_epoch": res.start_epoch,
                    "seconds": res.seconds, "last_epoch": last,
                    "written": [str(res.model_path), str(res.best_path), str(res.history_path)]})
        return 0
    summary = ", ".join(f"{k} {v:.4g}" for k, v in sorted(last.items()))
    print(f"{args.target}: {res.parameters:,} parameters, {res.epochs_done} epochs "
          f"(this run from epoch {res.start_epoch}) in {res.seconds:.0f} s"
          + (f"; last epoch: {summary}" if summary else ""))
    print(f"written: {res.model_path}, {res.best_path.name}, {res.history_path.name}")
    return 0
