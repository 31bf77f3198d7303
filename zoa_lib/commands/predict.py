"""``zoa predict``: a trained V-Net's predictions on held-out mocks, in physical units."""
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
        sub, "predict", help="predict held-out mocks with a trained V-Net (HDF5, physical units)",
        description="Run the trained delta or phi V-Net (best.keras, else model.keras) on every mock of "
                    "a split and write data/<profile>/predictions/<target>-<split>.h5 atomically: "
                    "prediction (n,N,N,N) in physical units (delta, or phi in (km/s)^2), truth, inputs "
                    "(n,N,N,N,2), velocity_true (n,N,N,N,3) km/s and samples, with provenance attrs.",
        examples=["zoa predict --profile ci --target phi --split test",
                  "zoa predict --profile ci --target delta --network vnet_paper --json"])
    add_profile_args(p)
    p.add_argument("--target", required=True, choices=("delta", "phi"), help="which network")
    p.add_argument("--network", default="vnet", choices=("vnet", "vnet_paper"),
                   help="vnet (default): the profile's own set-up; vnet_paper: the paper's set-up, the two "
                        "survey channels only (files under models/vnet_paper/, predictions/vnet_paper/)")
    p.add_argument("--split", default="test", choices=("val", "test"), help="held-out split (default: test)")
    p.add_argument("--model", default="best", choices=("best", "last"),
                   help="best.keras (lowest validation loss, default) or model.keras (last epoch)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    add_json_arg(p, "what was written")
    p.set_defaults(func=run)


def run(args):
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    from zoa_lib.methods.networks import network_profile

    prof = network_profile(profile_from_args(args), args.network)
    from zoa_lib.methods.training.inference import predict

    with json_output(args):
        out = predict(prof, args.target, split=args.split, which=args.model, progress=not args.no_progress)
    if args.json:
        print_json({"written": str(out), "profile": prof.name, "target": args.target, "network": args.network,
                    "split": args.split, "model": args.model})
    else:
        print(f"written: {out}")
    return 0
