"""Keras pieces of training: the triangular cyclic learning rate, the atomic checkpoint,
the crash-safe backup to resume from, and two small logging callbacks.

This module imports Keras (and so TensorFlow) when it is imported; the rest of
:mod:`zoa_lib.methods.training` imports it only inside the functions that train or load models, so
``import zoa_lib.methods.training`` stays light.
"""
from __future__ import annotations

import json
import math
import shutil
import time
from pathlib import Path

import keras
import numpy as np

from zoa_lib.io.atomic import atomic_path, write_json_atomic
from zoa_lib.io.crash_points import stop_point
from zoa_lib.methods.training import model_files


class Checkpoint(keras.callbacks.Callback):
    """Every epoch: ``model.keras`` (last) and, when ``monitor`` improved, ``best.keras``;
    both atomic, with transforms and ``epochs_done`` (:func:`zoa_lib.methods.training.model_files.save_model`).
    After each epoch count in ``snapshots`` also a copy of that model,
    :func:`~zoa_lib.methods.training.model_files.snapshot_name` (``epoch-006.keras``)."""

    def __init__(self, folder, transforms, profile, monitor="val_loss", best=math.inf, extra=None,
                 snapshots=()):
        super().__init__()
        self.folder, self.transforms, self.profile = Path(folder), transforms, profile
        self.monitor, self.best, self.extra = monitor, float(best), dict(extra or {})
        self.snapshots = {int(e) for e in snapshots}

    def on_epoch_end(self, epoch, logs=None):
        logs = dict(logs or {})
        value = float(logs.get(self.monitor, math.nan))
        improved = math.isfinite(value) and value < self.best
        if improved:
            self.best = value
        meta = {**self.extra, "epochs_done": epoch + 1, "monitor": self.monitor,
                "best_value": self.best, "logs": {k: float(v) for k, v in logs.items()}}
        last = model_files.save_model(self.model, self.folder / "model.keras", self.transforms, self.profile, **meta)
        if improved:
            with atomic_path(self.folder / "best.keras") as tmp:
                shutil.copyfile(last, tmp)
        if epoch + 1 in self.snapshots:
            with atomic_path(self.folder / model_files.snapshot_name(epoch + 1)) as tmp:
                shutil.copyfile(last, tmp)


class LearningRateLogger(keras.callbacks.Callback):
    """Adds ``learning_rate`` (at the end of the epoch) to the epoch logs."""

    def on_epoch_end(self, epoch, logs=None):
        if logs is not None:
            lr = self.model.optimizer.learning_rate
            logs["learning_rate"] = float(np.asarray(lr))


class EpochTimer(keras.callbacks.Callback):
    """Wall time of every epoch (training and validation), seconds, in :attr:`seconds` (the
    benchmark's timer) and as ``seconds`` in the epoch logs, so ``history.csv`` keeps it."""

    def __init__(self):
        super().__init__()
        self.seconds = []

    def on_epoch_begin(self, epoch, logs=None):
        self._t = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        self.seconds.append(time.perf_counter() - self._t)
        if logs is not None:
            logs["seconds"] = self.seconds[-1]


class StopPoints(keras.callbacks.Callback):
    """The ``train-batch`` step of :func:`zoa_lib.io.crash_points.stop_point` after every training batch
    (crash-safety tests kill a run there; added only when ``ZOA_TEST_STOP_AT`` is set)."""

    def on_train_batch_end(self, batch, logs=None):
        stop_point("train-batch")


# --------------------------------------------------------------------------- backup
BACKUP_METADATA = "training_metadata.json"


def backup_state(backup: Path) -> dict | None:
    """The committed state of a backup folder: ``{"epoch": k, "weights": Path | None}`` (k epochs
    done; ``weights`` None for the mark a fresh run leaves before its first epoch), or None when
    there is no usable backup (no folder, no or unreadable metadata, weights file missing)."""
    try:
        meta = json.loads((backup / BACKUP_METADATA).read_text())
        epoch = int(meta["epoch"])
    except (OSError, ValueError, KeyError, TypeError):
        return None
    name = meta.get("weights", "latest.weights.h5" if epoch else None)  # latest: Keras's own layout
    if name is None:
        return {"epoch": 0, "weights": None}
    weights = backup / str(name)
    return {"epoch": epoch, "weights": weights} if weights.is_file() else None


def backup_epoch(backup: Path) -> int:
    """Epochs finished according to a backup folder (0 when there is none)."""
    state = backup_state(backup)
    return state["epoch"] if state else 0


def mark_fresh_backup(backup: Path) -> None:
    """Mark ``backup`` as belonging to a fresh run that has finished no epoch yet."""
    write_json_atomic(backup / BACKUP_METADATA, {"epoch": 0, "batch": 0, "weights": None})


class AtomicBackupAndRestore(keras.callbacks.BackupAndRestore):
    """:class:`keras.callbacks.BackupAndRestore` (same folder, same ``fit`` integration),
    with crash-safe files: every epoch the weights (with optimizer state) go atomically to
    ``epoch-<k>.weights.h5``, then ``training_metadata.json`` ``{"epoch", "weights"}`` is
    replaced atomically — the commit — and older weights files are removed. A kill at
    any point leaves the previous committed state or the new one. At the end of training
    the metadata is removed first, then the folder."""

    def __init__(self, backup_dir):
        super().__init__(str(backup_dir), save_freq="epoch", delete_checkpoint=True)
        self.folder = Path(backup_dir)

    def on_train_begin(self, logs=None):
        self._load_model()

    def _load_model(self):
        state = backup_state(self.folder)
        if state is None or state["weights"] is None:
            return
        opt = self.model.optimizer
        if opt is not None and not opt.built:
            opt.build(self.model.trainable_variables)
        self.model.load_weights(str(state["weights"]))
        self.model._initial_epoch = state["epoch"]

    def _save_model(self):
        name = f"epoch-{self._current_epoch:05d}.weights.h5"
        with atomic_path(self.folder / name, suffix=".weights.h5") as tmp:
            self.model.save_weights(str(tmp), overwrite=True)
        write_json_atomic(self.folder / BACKUP_METADATA,
                          {"epoch": self._current_epoch, "batch": self._last_batch_seen, "weights": name})
        for old in self.folder.iterdir():
            if old.name != name and (old.name.endswith(".weights.h5") or old.name.endswith(".bkp")):
                old.unlink(missing_ok=True)

    def on_train_end(self, logs=None):
        if self.delete_checkpoint:
            (self.folder / BACKUP_METADATA).unlink(missing_ok=True)
            shutil.rmtree(self.folder, ignore_errors=True)
