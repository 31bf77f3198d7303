"""Fitting the V-Nets: building and compiling a model, resumable and distributed training,
and reusing a finished model.

Training (:func:`train`)
------------------------
Adam on the MSE of the transformed target, learning rate
:class:`zoa_lib.methods.training.schedule.TriangularCyclicLR` (Smith 2017) between ``lr_min``
and ``lr_max``, half period ``lr_half_cycle_epochs`` epochs.
Everything lives in ``<data>/models/<target>/``:

=================  ==========================================================================
``model.keras``    the model after the last finished epoch (with optimizer state, transforms,
                   profile and epoch count, see ``model_files.read_model_metadata``)
``best.keras``     the model with the lowest validation loss so far
``history.csv``    one row per epoch: ``epoch, learning_rate, loss, seconds, val_loss`` (``seconds``:
                   the epoch's wall time, training and validation, on this machine)
``backup/``        the state to resume from (weights with optimizer state, and the epoch;
                   ``callbacks.AtomicBackupAndRestore``), written every epoch and removed
                   when training ends; ``--resume`` continues from it
=================  ==========================================================================

Checkpoints are written atomically (temporary file, then rename) by
:class:`zoa_lib.methods.training.callbacks.Checkpoint` rather than by
``keras.callbacks.ModelCheckpoint``, which writes in place (a kill during a write would leave a torn ``model.keras``) and cannot add the transforms to the file.
``--resume`` also continues a *finished* run when ``training.epochs`` was raised.

Killed at any moment (``kill -9``, a node failure, a Slurm time limit), a run resumed with
``--resume`` ends with the files an uninterrupted run writes: at the end of every epoch
the history row, then ``model.keras`` / ``best.keras``, and last the backup are written,
each atomically, and the backup's ``training_metadata.json`` (written after its weights
file) is the commit point. Keras's own ``BackupAndRestore`` writes its weights and epoch
in place, so a kill between or during those writes could resume from a torn file or pair
the weights of one epoch with the number of another. A fresh run marks ``backup/`` at its
start, so resuming it after a kill in its first epoch starts it again rather than
continuing an older finished ``model.keras``. Temporaries of killed runs are removed by the
next write (:func:`zoa_lib.io.atomic.remove_stale_temporaries`). A read-only model folder or a
full disk stops training with one line naming the file (:class:`zoa_lib.io.atomic.OutputError`);
the folder is checked before any training.

Global batch = ``training.batch_size`` × number of replicas (``batch_size`` is per device).
``mixed_precision`` (float16 compute, float32 variables and output, loss scaling) and
``xla`` (``jit_compile``) are GPU switches: on a machine without a GPU they are ignored, with a
message (float16 convolutions are slower than float32 on CPUs).

Determinism: weights are initialised after ``keras.utils.set_random_seed`` with a seed from
the ``training`` stream (profile seed, target), and the data order and rotations are a pure
function of (seed, epoch). Float sums whose order depends on thread scheduling (oneDNN and
Eigen reductions split across CPU threads; cuDNN's convolution algorithms and atomics on
GPUs) still make two runs differ in the last bits, and the differences grow over many
steps. ``training.deterministic: true`` (or ``zoa train --deterministic``) calls
``tf.config.experimental.enable_op_determinism()`` before the model is built, which makes
runs with the same profile bit-identical on the same machine and software, at a cost in
speed (not enabled by default).
"""
from __future__ import annotations

import csv
import logging
import math
import shutil
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

from zoa_lib.errors import ZoaError
from zoa_lib.io.atomic import atomic_path, ensure_writable, output_error
from zoa_lib.io.crash_points import stop_armed
from zoa_lib.methods.training.model_files import (
    matching_model,
    model_dir,
    read_model_metadata,
    register_custom_objects,
    snapshot_epochs,
)
from zoa_lib.methods.training.pipeline import in_memory_bytes, make_dataset, split_shards
from zoa_lib.methods.training.strategy import get_strategy, multiworker_workarounds, worker_role
from zoa_lib.methods.training.transforms import TARGET_NAMES, TrainingError, Transforms, check_target
from zoa_lib.survey import shards
from zoa_lib.universe.rng import generator

logger = logging.getLogger(__name__)


@dataclass
class TrainResult:
    """What :func:`train` did: files, epochs, size, time and this run's history."""

    target: str
    folder: Path
    model_path: Path
    best_path: Path
    history_path: Path
    epochs_done: int
    start_epoch: int
    parameters: int
    seconds: float
    strategy: str
    replicas: int
    global_batch: int
    steps_per_epoch: int
    history: dict = field(default_factory=dict)


def training_seed(profile, target: str) -> int:
    """Seed of ``keras.utils.set_random_seed`` for one target, from the ``training`` stream."""
    return int(generator(profile.seed, "training", 0, TARGET_NAMES.index(target)).integers(2 ** 31 - 1))


def gpu_available() -> bool:
    import tensorflow as tf

    return bool(tf.config.list_physical_devices("GPU"))


def build_and_compile(profile, steps_per_epoch: int, name: str = "vnet", jit_compile: bool = False,
                      mixed_precision: bool = False, transforms: Transforms | None = None):
    """A fresh V-Net for the profile, compiled with Adam, MSE and the cyclic learning rate;
    its input channels and residual channel from ``transforms`` (default: the two survey
    channels, no residual)."""
    import keras

    from zoa_lib.methods.vnet import build_vnet

    t = profile.training
    prev = keras.mixed_precision.global_policy().name
    keras.mixed_precision.set_global_policy("mixed_float16" if mixed_precision else "float32")
    try:
        model = build_vnet(profile.model, profile.box.grid, name=name,
                           in_channels=transforms.in_channels if transforms else 2,
                           residual_channel=transforms.residual_channel if transforms else None)
    finally:
        keras.mixed_precision.set_global_policy(prev)
    from zoa_lib.methods.training.schedule import TriangularCyclicLR

    sched = TriangularCyclicLR(t.lr_min, t.lr_max, t.lr_half_cycle_epochs * steps_per_epoch)
    model.compile(optimizer=keras.optimizers.Adam(learning_rate=sched), loss="mse", jit_compile=jit_compile)
    return model


def train(profile, target: str, resume: bool = False, strategy=None, progress: bool = True,
          callbacks: Sequence = ()) -> TrainResult:
    """Train the ``target`` network (``delta`` or ``phi``) on the profile's mock shards.

    ``resume``: continue an interrupted run from ``backup/`` (or a finished one whose
    ``training.epochs`` was raised, from ``model.keras``); otherwise start afresh.
    ``strategy``: a name for :func:`get_strategy` (default ``auto``) or a strategy object.
    ``callbacks``: extra Keras callbacks, run after the checkpointing ones.
    ``progress``: Keras's per-epoch progress output; what the run does (data in memory or
    streamed, the network's size, a discarded interrupted run) goes to this module's logger.
    Shards are all validated before anything is built. See the module docstring for files,
    transforms, determinism and distribution."""
    import keras
    import tensorflow as tf

    from zoa_lib.methods.training.callbacks import (
        AtomicBackupAndRestore,
        Checkpoint,
        EpochTimer,
        LearningRateLogger,
        StopPoints,
        backup_epoch,
        backup_state,
        mark_fresh_backup,
    )

    check_target(target)
    t0 = time.perf_counter()
    if strategy is None or isinstance(strategy, str):
        strategy = get_strategy(strategy or "auto")
    tr = profile.training
    train_set = split_shards(profile, "train")
    if train_set.n == 0:
        raise TrainingError(f"{shards.mocks_dir(profile)}: no training shards in the manifest; run "
                            f"`zoa mocks --profile {profile.name}` first")
    val_set = split_shards(profile, "val")
    gpu = gpu_available()
    use_mp, use_xla = tr.mixed_precision and gpu, tr.xla and gpu
    if (tr.mixed_precision or tr.xla) and not gpu:
        logger.warning("no GPU: training.mixed_precision and training.xla are ignored (float32, no XLA)")
    chief, worker, n_workers = worker_role(strategy)
    replicas = int(strategy.num_replicas_in_sync)
    B = tr.batch_size * replicas
    steps = max(1, train_set.n // B)
    val_steps = math.ceil(val_set.n / B) if val_set.n else 0
    folder = ensure_writable(model_dir(profile, target))  # one-line error now, not after an epoch
    backup = folder / ("backup" if chief else f"backup-worker-{worker}")
    history = folder / "history.csv"
    channels = {"train": None, "val": None}
    calibration = None
    if tr.wiener_channels:
        from zoa_lib.methods import wiener_channels

        wiener_channels.ensure(profile, splits=("train", "val"), progress=progress)
        calibration = wiener_channels.profile_calibration(profile)
        channels = {"train": wiener_channels.split_paths(profile, train_set.paths),
                    "val": wiener_channels.split_paths(profile, val_set.paths) if val_set.n else None}
    transforms = Transforms.from_profile(profile, target, calibration)
    need = in_memory_bytes(train_set.n + val_set.n, profile.box.grid, transforms.in_channels)
    in_memory = need <= tr.in_memory_gib * 2 ** 30
    logger.info(f"{target}: {'holding' if in_memory else 'streaming'} the {train_set.n + val_set.n} mocks "
        f"({need / 2 ** 30:.2f} GiB; training.in_memory_gib = {tr.in_memory_gib:g})"
        + (" in memory" if in_memory else " from the shards"))
    seed = training_seed(profile, target)

    start_epoch, init_from, best = 0, None, math.inf
    if resume:
        state = backup_state(backup)
        if state is not None:  # an interrupted run (a fresh one killed in its first epoch: epoch 0)
            start_epoch = state["epoch"]
            if start_epoch == 0:
                logger.info(f"{target}: the interrupted run in {backup} finished no epoch; starting it again")
        elif (folder / "model.keras").exists():  # a finished run (training.epochs raised?)
            shutil.rmtree(backup, ignore_errors=True)  # uncommitted leftovers (killed in its cleanup)
            meta = read_model_metadata(folder / "model.keras")["meta"]
            start_epoch, init_from = int(meta.get("epochs_done", 0)), folder / "model.keras"
        if (folder / "best.keras").exists() and start_epoch > 0:
            best = float(read_model_metadata(folder / "best.keras")["meta"].get("best_value", math.inf))
    else:
        if backup_epoch(backup):
            logger.warning(f"{target}: starting afresh; the interrupted run in {backup} (epoch {backup_epoch(backup)}) "
                f"is discarded (use --resume to continue it)")
        shutil.rmtree(backup, ignore_errors=True)
        if chief:
            history.unlink(missing_ok=True)
            for old in folder.glob("epoch-*.keras"):
                old.unlink()  # the previous run's copies (snapshot_epochs)
    if start_epoch >= tr.epochs:
        logger.info(f"{target}: already trained for {start_epoch} epochs (training.epochs = {tr.epochs}); nothing to do")
        return _result(profile, target, folder, start_epoch, start_epoch, None, t0, strategy, replicas, B,
                       steps, {})

    if not resume or start_epoch == 0:
        mark_fresh_backup(backup)  # a kill before the first epoch ends is resumed from scratch
    if tr.deterministic:
        tf.config.experimental.enable_op_determinism()
        logger.info(f"{target}: training.deterministic: TensorFlow op determinism enabled (bit-reproducible, slower)")
    keras.utils.set_random_seed(seed)
    with strategy.scope():
        if init_from is not None:
            register_custom_objects()
            model = keras.saving.load_model(init_from, compile=True)
        else:
            model = build_and_compile(profile, steps, name=f"vnet_{target}", jit_compile=use_xla,
                                      mixed_precision=use_mp, transforms=transforms)
    if n_workers > 1 or isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy):
        multiworker_workarounds(model, strategy, profile.box.grid, transforms.in_channels)
    n_params = int(model.count_params())
    logger.info(f"{target}: V-Net with {n_params:,} parameters; {train_set.n} training / {val_set.n} validation "
        f"mocks; {steps} steps per epoch of global batch {B} ({replicas} replica(s), "
        f"{type(strategy).__name__}); epochs {start_epoch}..{tr.epochs - 1}"
        + (" (resumed)" if start_epoch else ""))

    common = dict(target=target, transforms=transforms, reflections=tr.augment_reflections)

    def dataset(shard_set, shuffle, augment, epochs, nsteps, stream, ctx=None):
        kw = dict(num_pipelines=1, pipeline_id=0, per_replica_batch=None, in_memory=in_memory,
                  channel_paths=channels["train" if shard_set is train_set else "val"],
                  repeat=shard_set is train_set)  # validation: one pass per evaluation
        if ctx is not None:  # this worker's slice of each global batch (the files as above)
            kw.update(num_pipelines=ctx.num_input_pipelines, pipeline_id=ctx.input_pipeline_id,
                      per_replica_batch=ctx.get_per_replica_batch_size(B))
        return make_dataset(shard_set, batch_size=B, shuffle=shuffle, augment=augment, seed=seed,
                            epochs=epochs, start_epoch=start_epoch if epochs else 0, steps_per_epoch=nsteps,
                            stream=stream, **common, **kw)

    distributed = replicas > 1 or n_workers > 1
    if distributed:
        train_ds = strategy.distribute_datasets_from_function(
            lambda ctx: dataset(train_set, True, tr.augment, tr.epochs, steps, 0, ctx))
        val_ds = strategy.distribute_datasets_from_function(
            lambda ctx: dataset(val_set, False, False, None, val_steps, 1, ctx)) if val_steps else None
    else:
        train_ds = dataset(train_set, True, tr.augment, tr.epochs, steps, 0)
        val_ds = dataset(val_set, False, False, None, val_steps, 1) if val_steps else None

    if resume and chief:
        _truncate_history(history, start_epoch)
    # End of each epoch, in this order: history row, model.keras / best.keras, and last the
    # backup, whose metadata is the commit point of a resume (module docstring).
    cbs = [LearningRateLogger(), EpochTimer()]  # before the history row: it carries each epoch's seconds
    if chief:
        cbs.append(keras.callbacks.CSVLogger(str(history), append=True))
        cbs.append(Checkpoint(folder, transforms, profile,
                                             monitor="val_loss" if val_steps else "loss", best=best,
                                             extra={"target": target, "parameters": n_params},
                                             snapshots=snapshot_epochs(profile)))
    cbs.append(AtomicBackupAndRestore(backup))
    cbs.extend(callbacks)
    if stop_armed():
        cbs.append(StopPoints())
    verbose = (1 if sys.stdout.isatty() else 2) if progress else 0
    try:
        hist = model.fit(train_ds, epochs=tr.epochs, steps_per_epoch=steps, initial_epoch=start_epoch,
                         validation_data=val_ds, validation_steps=val_steps or None, callbacks=cbs,
                         shuffle=False, verbose=verbose)
    except OSError as e:  # e.g. the history row on a full disk (the other files are atomic)
        err = None if isinstance(e, ZoaError) else output_error(folder, e)
        if err is None:
            raise
        raise err from None
    return _result(profile, target, folder, tr.epochs, start_epoch, n_params, t0, strategy, replicas, B, steps,
                   {k: [float(v) for v in vals] for k, vals in hist.history.items()})

def _result(profile, target, folder, done, start, n_params, t0, strategy, replicas, B, steps, history):
    if n_params is None:
        meta = read_model_metadata(folder / "model.keras")["meta"]
        n_params = int(meta.get("parameters", 0))
    return TrainResult(target=target, folder=folder, model_path=folder / "model.keras",
                       best_path=folder / "best.keras", history_path=folder / "history.csv", epochs_done=done,
                       start_epoch=start, parameters=n_params, seconds=round(time.perf_counter() - t0, 2),
                       strategy=type(strategy).__name__, replicas=replicas, global_batch=B,
                       steps_per_epoch=steps, history=history)


def _truncate_history(path: Path, epochs: int) -> None:
    """Keep the rows of epochs < ``epochs`` in a CSV history (a resumed run rewrites the rest)."""
    if not path.exists():
        return
    with open(path, newline="") as f:
        rows = list(csv.reader(f))
    if not rows:
        return
    head, body = rows[0], [r for r in rows[1:] if r and r[0].isdigit() and int(r[0]) < epochs]
    with atomic_path(path) as tmp, open(tmp, "w", newline="") as f:
        csv.writer(f).writerows([head] + body)


def ensure_trained(profile, target: str, progress: bool = False) -> dict:
    """Reuse the model ``zoa train`` made for this profile when it matches
    (:func:`matching_model`); otherwise train it (resuming an interrupted run).
    Returns {"reused": bool, "path", "seconds", "parameters", "epochs"}."""
    path = matching_model(profile, target)
    if path is not None:
        meta = read_model_metadata(path)["meta"]
        return {"reused": True, "path": path, "seconds": 0.0, "parameters": meta.get("parameters"),
                "epochs": meta.get("epochs_done")}
    backup = model_dir(profile, target) / "backup"
    res = train(profile, target, resume=backup.exists(), progress=progress)
    return {"reused": False, "path": res.model_path, "seconds": res.seconds, "parameters": res.parameters,
            "epochs": res.epochs_done}
