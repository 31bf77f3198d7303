"""Training and inference of the two V-Nets (δ and φ): transforms, the data pipeline from
the HDF5 shards, the triangular cyclic learning rate, resumable and distributed training,
predictions in physical units, and the benchmark of ``zoa bench train``.

Transforms (:class:`Transforms`, saved inside every ``.keras`` file, see :func:`save_model`)
---------------------------------------------------------------------------------------------
Inputs, per voxel (both invertible, :meth:`Transforms.normalise_inputs` /
:meth:`Transforms.denormalise_inputs`)::

    u0 = ln(1 + N_gal) / n_gal_scale          N_gal = galaxies per voxel
    u1 = V_pec / v_pec_scale                  V_pec in km/s, 0 where the voxel is empty

Targets, with the one implementation in :mod:`zoa_lib.fields` (:func:`~zoa_lib.fields.delta_to_target`,
:func:`~zoa_lib.fields.phi_to_target` and their inverses)::

    δ:  t = ln max(1 + δ, 10⁻²)   (``delta_transform: log1p``; inverse δ = eᵗ − 1)  or t = δ
    φ:  t = (φ − ⟨φ⟩) / s         (``phi_transform: standardize``; s = σ_φ in (km/s)², the
                                   linear-theory rms of the smoothed potential of the parent
                                   box, :func:`zoa_lib.fields.phi_target_scale`)   or s = 1;
                                   ⟨φ⟩ = the cube's mean (``phi_zero_mean``, default) or 0

The scales (``n_gal_scale``, ``v_pec_scale``, s) are stored with the model, so a model
keeps working if the profile changes later.

Data pipeline (:func:`make_dataset`)
------------------------------------
Every shard is validated up front (:func:`zoa_lib.data.validate_shard` at the profile's
grid): a wrong shape, a missing dataset or a truncated file raises a :class:`ZoaError` naming
the file before any training starts. Each epoch draws a full permutation of all the training
mocks across every shard (a global shuffle, so mocks of different shards and parent boxes
are interleaved in every batch) and, with ``training.augment``, one of the 24 rotations of
the cube about the observer (48 with ``augment_reflections``) per mock, both from the
``training`` random stream keyed by the epoch. When the training and validation mocks fit in
``training.in_memory_gib`` (the laptop profile's 448 mocks need 0.27 GiB) they are read,
normalised and encoded once (:class:`MemoryMocks`); otherwise each mock is read as one HDF5
chunk (shards are chunked one mock per chunk) by a pool of threads when its batch is made.
Batches are rotated and stacked in numpy by a Python generator and prefetched by
``tf.data``: on 2 CPU cores the earlier per-mock ``tf.data`` map of TensorFlow ops made an
epoch 4–8× slower than the training steps themselves (issue 13). With
``training.wiener_channels`` the calibrated Wiener filter's (φ, δ) of each mock are read
from ``<data>/wiener/`` and appended to the inputs (:mod:`zoa_lib.wiener_channels`).
Because the order is a pure function of (seed, epoch), a run resumed at epoch k sees exactly
the batches an uninterrupted run sees.

Cube symmetries are valid augmentations: the observer stays at the centre; N_gal, V_pec
(a *radial* velocity, v_r(x) = x̂·v(x) → x̂·Rv(Rᵀx) = v_r(Rᵀx)), δ and φ are all scalar
fields, transformed as f'(x) = f(Rᵀx). The ZOA mask turns with the cube, so the network
learns to fill a masked slab of any orientation.

Training (:func:`train`)
------------------------
Adam on the MSE of the transformed target, learning rate :class:`TriangularCyclicLR`
(Smith 2017) between ``lr_min`` and ``lr_max``, half period ``lr_half_cycle_epochs`` epochs.
Everything lives in ``<data>/models/<target>/``:

=================  ==========================================================================
``model.keras``    the model after the last finished epoch (with optimizer state, transforms,
                   profile and epoch count, see :func:`read_model_metadata`)
``best.keras``     the model with the lowest validation loss so far
``history.csv``    one row per epoch: ``epoch, learning_rate, loss, val_loss``
``backup/``        the state to resume from (weights with optimizer state, and the epoch;
                   :class:`AtomicBackupAndRestore`), written every epoch and removed when
                   training ends; ``--resume`` continues from it
=================  ==========================================================================

Checkpoints are written atomically (temporary file, then rename) by :class:`Checkpoint`
rather than by ``keras.callbacks.ModelCheckpoint``, which writes in place (a kill during a
write would leave a torn ``model.keras``) and cannot add the transforms to the file.
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
next write (:func:`zoa_lib.io.remove_stale_temporaries`). A read-only model folder or a
full disk stops training with one line naming the file (:class:`zoa_lib.io.OutputError`);
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

Distribution (:func:`get_strategy`): ``tf.distribute`` only — MirroredStrategy over the GPUs
of a node, MultiWorkerMirroredStrategy across nodes with the cluster from
``TF_CONFIG`` or from Slurm (``SlurmClusterResolver``). Each worker reads its own slice of
every global batch (``distribute_datasets_from_function``); only the chief writes
checkpoints and the history, each other worker keeps its own ``backup-worker-<i>/``.
"""
from __future__ import annotations

import csv
import dataclasses
import itertools
import json
import math
import os
import shutil
import sys
import time
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np

from . import data
from . import fields as _fields
from .errors import ZoaError
from .io import atomic_path, ensure_writable, output_error, provenance, write_json_atomic
from .rng import generator

TARGET_NAMES = ("delta", "phi")
UNITS = {"delta": "dimensionless (density contrast)", "phi": "(km/s)^2"}
STRATEGIES = ("auto", "default", "mirrored", "multiworker")
#: Name of the metadata member added to every .keras zip.
META_MEMBER = "zoa.json"


class TrainingError(ZoaError, ValueError):
    """Missing or bad training data, models or settings; the message names the file or key."""


def _check_target(target: str) -> str:
    if target not in TARGET_NAMES:
        raise TrainingError(f"target must be one of {', '.join(TARGET_NAMES)}, got {target!r}")
    return target


# --------------------------------------------------------------------------- transforms
@dataclass(frozen=True)
class Transforms:
    """Input normalisation and target transform of one network (module docstring).

    ``phi_scale`` s is in (km/s)²; ``delta_floor`` is the floor of 1 + δ in the log.
    ``wiener_channels``: the inputs carry the calibrated Wiener filter's (φ_WF, δ_WF) as
    channels 2 and 3 (:mod:`zoa_lib.wiener_channels`, whose calibration is kept in
    ``wiener_calibration``), and the network corrects channel :attr:`residual_channel`."""

    target: str
    n_gal_scale: float = 1.0
    v_pec_scale: float = 500.0
    delta_transform: str = "log1p"
    phi_transform: str = "standardize"
    phi_scale: float = 1.0
    delta_floor: float = _fields.DELTA_FLOOR
    phi_zero_mean: bool = False  # the defaults of the last three: models saved before they existed
    wiener_channels: bool = False
    wiener_calibration: dict | None = None

    @classmethod
    def from_profile(cls, profile, target: str, wiener_calibration: dict | None = None) -> "Transforms":
        """The profile's transforms; ``wiener_calibration`` (:func:`zoa_lib.wiener_channels.profile_calibration`)
        is needed when ``training.wiener_channels``."""
        _check_target(target)
        t = profile.training
        wiener = bool(t.wiener_channels)
        if wiener and wiener_calibration is None:
            raise TrainingError("training.wiener_channels: the transforms need the Wiener-filter calibration")
        scale = float(_fields.phi_target_scale(profile)) if (target == "phi" or wiener) else 1.0
        return cls(target=target, n_gal_scale=float(t.n_gal_scale), v_pec_scale=float(t.v_pec_scale),
                   delta_transform=t.delta_transform, phi_transform=t.phi_transform, phi_scale=scale,
                   phi_zero_mean=bool(t.phi_zero_mean) and target == "phi", wiener_channels=wiener,
                   wiener_calibration=wiener_calibration if wiener else None)

    @property
    def in_channels(self) -> int:
        """Channels of the network input: 2 (N_gal, V_pec), 4 with the Wiener channels."""
        return 4 if self.wiener_channels else 2

    @property
    def residual_channel(self) -> int | None:
        """The input channel the network corrects (φ_WF for φ, δ_WF for δ), or None."""
        if not self.wiener_channels:
            return None
        return 2 if self.target == "phi" else 3

    # inputs -----------------------------------------------------------------
    def normalise_inputs(self, x) -> np.ndarray:
        """(…, C) raw inputs → network inputs, float32. C = 2: (N_gal, V_pec [km/s]) →
        (u0, u1); C = 4 (``wiener_channels``): also (φ_WF [(km/s)²], δ_WF) → their target
        transforms, (φ_WF − ⟨φ_WF⟩_cube) / s and ln max(1 + δ_WF, floor), so that the
        residual channel is in the units of the network's output."""
        x = np.asarray(x)
        if x.shape[-1:] != (self.in_channels,):
            what = "(N_gal, V_pec, phi_WF, delta_WF)" if self.wiener_channels else "(N_gal, V_pec)"
            raise TrainingError(f"inputs must have {self.in_channels} channels {what} last, got shape {x.shape}")
        out = np.empty(x.shape, np.float32)
        out[..., 0] = np.log1p(np.maximum(x[..., 0], 0.0)) / self.n_gal_scale
        out[..., 1] = x[..., 1] / self.v_pec_scale
        if self.wiener_channels:
            out[..., 2] = _fields.phi_to_target(x[..., 2], self.phi_scale, zero_mean=True)
            out[..., 3] = _fields.delta_to_target(x[..., 3], self.delta_transform, self.delta_floor)
        return out

    def denormalise_inputs(self, u) -> np.ndarray:
        """Inverse of :meth:`normalise_inputs` for the two survey channels (N_gal, V_pec)."""
        u = np.asarray(u, np.float64)
        out = np.empty(u.shape[:-1] + (2,), np.float32)
        out[..., 0] = np.expm1(u[..., 0] * self.n_gal_scale)
        out[..., 1] = u[..., 1] * self.v_pec_scale
        return out

    # targets ----------------------------------------------------------------
    def encode_target(self, field) -> np.ndarray:
        """Physical field (δ, or φ in (km/s)²) → network target, float32."""
        if self.target == "delta":
            return _fields.delta_to_target(field, self.delta_transform, self.delta_floor)
        return _fields.phi_to_target(field, self.phi_scale, self.phi_zero_mean)

    def decode_target(self, t) -> np.ndarray:
        """Network output → physical field (δ, or φ in (km/s)², zero cube mean when
        ``phi_zero_mean``), float32."""
        if self.target == "delta":
            return _fields.target_to_delta(t, self.delta_transform)
        return _fields.target_to_phi(t, self.phi_scale)

    @property
    def units(self) -> str:
        return UNITS[self.target]

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "Transforms":
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = set(d) - names
        if unknown or "target" not in d:
            raise TrainingError(f"transforms: unknown keys {sorted(unknown)} or no target in {d}")
        return cls(**d)


# --------------------------------------------------------------------------- cube symmetries
def _perm_sign(perm) -> int:
    s = 1
    p = list(perm)
    for i in range(len(p)):
        for j in range(i + 1, len(p)):
            if p[i] > p[j]:
                s = -s
    return s


def _make_symmetries():
    proper, improper = [], []
    for perm in itertools.permutations(range(3)):
        for flips in itertools.product((False, True), repeat=3):
            det = _perm_sign(perm) * (-1) ** sum(flips)
            (proper if det > 0 else improper).append((tuple(perm), tuple(flips)))
    return tuple(proper + improper)


#: The 48 symmetries of the cube as (axis permutation, flips): the 24 proper rotations first
#: (index 0 = identity), then the 24 with a reflection. See :func:`rotate_cube`.
CUBE_SYMMETRIES = _make_symmetries()


def symmetry_matrix(index: int) -> np.ndarray:
    """The 3×3 signed permutation R of symmetry ``index``: :func:`rotate_cube` maps a scalar
    field f to f'(x) = f(Rᵀx) (x relative to the observer at the cube centre)."""
    perm, flips = CUBE_SYMMETRIES[index]
    R = np.zeros((3, 3), np.int8)
    for k in range(3):
        R[k, perm[k]] = -1 if flips[k] else 1
    return R


def rotate_cube(a, index: int) -> np.ndarray:
    """Apply cube symmetry ``index`` to a scalar field (N, N, N, …) whose first three axes are
    the cube's (trailing axes, e.g. channels of scalars, are carried along):
    out[i] = a[j] with the voxel centres related by x_j = Rᵀ x_i."""
    if index == 0:
        return np.asarray(a)
    perm, flips = CUBE_SYMMETRIES[index]
    a = np.asarray(a)
    out = np.transpose(a, tuple(perm) + tuple(range(3, a.ndim)))
    axes = tuple(k for k in range(3) if flips[k])
    return np.flip(out, axes) if axes else out


# --------------------------------------------------------------------------- learning rate
def _lr_schedule_base():
    import keras

    return keras.optimizers.schedules.LearningRateSchedule


def triangular_lr(step, lr_min: float, lr_max: float, half_period: float):
    """Triangular cyclic learning rate (Smith 2017), numpy version of :class:`TriangularCyclicLR`:
    lr_min at step 0, lr_max at ``half_period``, lr_min at 2 ``half_period``, linear between."""
    step = np.asarray(step, np.float64)
    cycle = np.floor(1.0 + step / (2.0 * half_period))
    x = np.abs(step / half_period - 2.0 * cycle + 1.0)
    return lr_min + (lr_max - lr_min) * np.maximum(0.0, 1.0 - x)


def _make_schedule_class():
    import keras
    from keras import ops

    @keras.saving.register_keras_serializable(package="zoa")
    class TriangularCyclicLR(keras.optimizers.schedules.LearningRateSchedule):
        """Triangular cyclic learning rate (Smith 2017, "Cyclical learning rates for training
        neural networks")::

            cycle = floor(1 + step / (2 h)),  x = |step / h − 2 cycle + 1|
            lr    = lr_min + (lr_max − lr_min) · max(0, 1 − x)

        lr_min at step 0, lr_max at step h (the half period, in optimizer steps), back to
        lr_min at 2h, linear in between. Serializable (``get_config``)."""

        def __init__(self, lr_min: float, lr_max: float, half_period: float, name: str = "triangular"):
            super().__init__()
            if not (0 < lr_min <= lr_max and half_period > 0):
                raise TrainingError(f"TriangularCyclicLR: need 0 < lr_min <= lr_max and half_period > 0, "
                                    f"got {lr_min}, {lr_max}, {half_period}")
            self.lr_min, self.lr_max = float(lr_min), float(lr_max)
            self.half_period = float(half_period)
            self.name = name

        def __call__(self, step):
            step = ops.cast(step, "float32")
            h = self.half_period
            cycle = ops.floor(1.0 + step / (2.0 * h))
            x = ops.abs(step / h - 2.0 * cycle + 1.0)
            return self.lr_min + (self.lr_max - self.lr_min) * ops.maximum(0.0, 1.0 - x)

        def get_config(self):
            return {"lr_min": self.lr_min, "lr_max": self.lr_max, "half_period": self.half_period,
                    "name": self.name}

    return TriangularCyclicLR


def __getattr__(name):  # lazy Keras classes: `import zoa_lib.training` does not import TensorFlow
    if name in globals():  # made already (train() calls this function directly)
        return globals()[name]
    if name == "TriangularCyclicLR":
        cls = _make_schedule_class()
        globals()[name] = cls
        return cls
    if name == "Checkpoint":
        cls = _make_checkpoint_class()
        globals()[name] = cls
        return cls
    if name == "AtomicBackupAndRestore":
        cls = _make_backup_class()
        globals()[name] = cls
        return cls
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def _register_custom_objects():
    """Import the serializable classes (needed before loading a .keras file)."""
    from . import vnet  # noqa: F401  (registers ReflectionPadding3D)

    globals().get("TriangularCyclicLR") or __getattr__("TriangularCyclicLR")


# --------------------------------------------------------------------------- shards
@dataclass(frozen=True)
class ShardSet:
    """Validated shards of one split: paths, mocks per shard, and their total."""

    paths: tuple[Path, ...]
    counts: tuple[int, ...]

    @property
    def n(self) -> int:
        return int(sum(self.counts))

    def locate(self, ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Global mock ids (0 … n−1, in shard order) → (shard index, row in shard)."""
        starts = np.cumsum((0,) + self.counts)
        f = np.searchsorted(starts, ids, side="right") - 1
        return f.astype(np.int32), (ids - starts[f]).astype(np.int32)


def scan_shards(paths: Sequence[str | Path], grid: int | None, targets=data.TARGETS) -> ShardSet:
    """Validate every shard (:func:`zoa_lib.data.validate_shard`; ZoaError naming the file on
    the first bad one) and count its mocks."""
    import h5py

    out_p, out_n = [], []
    for p in paths:
        p = Path(p)
        data.validate_shard(p, grid=grid, targets=targets)
        with h5py.File(p, "r") as f:
            out_n.append(int(f["inputs"].shape[0]))
        out_p.append(p)
    return ShardSet(tuple(out_p), tuple(out_n))


def split_shards(profile, split: str, targets=data.TARGETS) -> ShardSet:
    """The validated shards of a split (``train``, ``val``, ``test``) of the profile's mocks."""
    folder = data.mocks_dir(profile)
    paths = data.shard_paths(folder, split)
    missing = [p for p in paths if not p.exists()]
    if missing:
        raise TrainingError(f"{missing[0]}: listed in {folder / data.MANIFEST} but missing; rerun "
                            f"`zoa mocks --profile {profile.name}`")
    return scan_shards(paths, profile.box.grid, targets)


# --------------------------------------------------------------------------- data pipeline
def epoch_plan(shards: ShardSet, epoch: int, seed: int, n_samples: int, shuffle: bool,
               n_symmetries: int, stream: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The ``n_samples`` mocks of one epoch as (shard index, row, symmetry index) arrays.

    Shuffled: a permutation of all mocks from ``generator(seed, "training", stream, 1, epoch)``
    (permutations are concatenated when ``n_samples`` > n); else mocks in shard order
    (cyclically). Symmetries from ``generator(seed, "training", stream, 2, epoch)`` among the
    first ``n_symmetries`` of :data:`CUBE_SYMMETRIES` (0 = identity when 1)."""
    n = shards.n
    reps = math.ceil(n_samples / n)
    if shuffle:
        g = generator(seed, "training", stream, 1, epoch)
        ids = np.concatenate([g.permutation(n) for _ in range(reps)])[:n_samples]
    else:
        ids = np.arange(n_samples) % n
    if n_symmetries > 1:
        sym = generator(seed, "training", stream, 2, epoch).integers(0, n_symmetries, n_samples)
    else:
        sym = np.zeros(n_samples, np.int64)
    f, r = shards.locate(ids)
    return f, r, sym.astype(np.int32)


class ShardReader:
    """Reads one mock at a time from a :class:`ShardSet`; open files are kept per reader.

    Shards written by :mod:`zoa_lib.data` store each mock as one unfiltered HDF5 chunk: its
    byte offset is looked up once (``get_chunk_info``) and the mock is read with ``os.pread``,
    which releases the GIL, so parallel reads run in parallel (h5py serialises every call
    behind one lock). Other layouts (compressed, contiguous) are read with h5py.
    ``channel_paths``: the Wiener-filter channel files of the shards, in the same order
    (:mod:`zoa_lib.wiener_channels`), appended to the inputs.
    Calling the reader, ``reader(shard, row, sym)``, gives the normalised, rotated
    (inputs (N,N,N,C), target (N,N,N,1))."""

    def __init__(self, shards: ShardSet, target: str, transforms: Transforms,
                 channel_paths: Sequence[str | Path] | None = None):
        import threading

        self.shards, self.target, self.transforms = shards, _check_target(target), transforms
        if transforms.wiener_channels and channel_paths is None:
            raise TrainingError("the model takes the Wiener-filter channels: give their files (channel_paths)")
        if channel_paths is not None and len(channel_paths) != len(shards.paths):
            raise TrainingError(f"{len(channel_paths)} channel files for {len(shards.paths)} shards")
        self.channel_paths = None if channel_paths is None else tuple(Path(p) for p in channel_paths)
        self._files = {}
        self._lock = threading.Lock()  # the data pipeline calls the reader from several threads

    def _open(self, key):
        entry = self._files.get(key)
        if entry is None:
            with self._lock:
                entry = self._files.get(key) or self._open_locked(key)
        return entry

    def _open_locked(self, key):
        import h5py

        i, kind = key
        path = self.shards.paths[i] if kind == "shard" else self.channel_paths[i]
        f = h5py.File(path, "r")
        names = ("inputs", "targets/" + self.target) if kind == "shard" else (_wiener_dataset(),)
        direct = {}
        for name in names:
            ds = f[name]
            try:
                ok = (ds.chunks == (1,) + ds.shape[1:] and ds.dtype == np.dtype("<f4")
                      and ds.compression is None and not ds.fletcher32 and not ds.shuffle)
                if ok:
                    offs = [ds.id.get_chunk_info(k) for k in range(ds.shape[0])]
                    ok = all(c.filter_mask == 0 and c.byte_offset is not None for c in offs)
            except (AttributeError, RuntimeError, OSError):  # old HDF5, unallocated chunks
                ok = False
            if ok:
                direct[name] = ([c.byte_offset for c in offs], int(np.prod(ds.shape[1:])) * 4, ds.shape[1:])
        fd = os.open(path, os.O_RDONLY) if direct else None
        entry = self._files[key] = (f, fd, direct)
        return entry

    def _file(self, i: int):
        return self._open((i, "shard"))[0]

    def _get(self, key, name: str, row: int) -> np.ndarray:
        f, fd, direct = self._open(key)
        if name in direct:
            offs, nbytes, shape = direct[name]
            buf = os.pread(fd, nbytes, offs[row])
            if len(buf) == nbytes:
                return np.frombuffer(buf, np.float32).reshape(shape)
        return f[name][row]

    def read(self, shard, row):
        """Raw (inputs (N,N,N,C), target field (N,N,N)) of one mock, physical units; C = 2,
        or 4 with the Wiener-filter channels appended."""
        shard, row = int(shard), int(row)
        x = self._get((shard, "shard"), "inputs", row)
        if self.channel_paths is not None:
            x = np.concatenate([x, self._get((shard, "wiener"), _wiener_dataset(), row)], axis=-1)
        return x, self._get((shard, "shard"), "targets/" + self.target, row)

    def sample(self, shard, row):
        """Normalised inputs (N,N,N,C) and encoded target (N,N,N,1) of one mock, unrotated."""
        x, t = self.read(shard, row)
        return self.transforms.normalise_inputs(x), self.transforms.encode_target(t)[..., None]

    def __call__(self, shard, row, sym):
        x, y = self.sample(shard, row)
        s = int(sym)
        if s:
            x, y = rotate_cube(x, s), rotate_cube(y, s)
        return np.ascontiguousarray(x, np.float32), np.ascontiguousarray(y, np.float32)

    def close(self):
        for f, fd, _ in self._files.values():
            f.close()
            if fd is not None:
                os.close(fd)
        self._files.clear()

    def __del__(self):
        try:
            self.close()
        except Exception:  # interpreter shutdown
            pass


def _wiener_dataset() -> str:
    from .wiener_channels import DATASET

    return DATASET


class MemoryMocks:
    """Every mock of a :class:`ShardReader` normalised and encoded once and held in memory;
    called like the reader, ``mocks(shard, row, sym)``, it only rotates. Used when the
    split fits in ``training.in_memory_gib`` (:func:`in_memory_bytes`)."""

    def __init__(self, reader: ShardReader):
        shards = reader.shards
        self.starts = np.cumsum((0,) + shards.counts)
        xs, ys = [], []
        for i, count in enumerate(shards.counts):
            for row in range(count):
                x, y = reader.sample(i, row)
                xs.append(x)
                ys.append(y)
        self.x, self.y = np.stack(xs), np.stack(ys)

    def __call__(self, shard, row, sym):
        g = self.starts[int(shard)] + int(row)
        x, y = self.x[g], self.y[g]
        s = int(sym)
        if s:
            x, y = rotate_cube(x, s), rotate_cube(y, s)
        return np.ascontiguousarray(x, np.float32), np.ascontiguousarray(y, np.float32)


def in_memory_bytes(n_mocks: int, grid: int, in_channels: int) -> int:
    """Bytes that :class:`MemoryMocks` needs for ``n_mocks`` (float32 inputs and target)."""
    return int(n_mocks) * int(grid) ** 3 * (int(in_channels) + 1) * 4


def make_dataset(paths: Sequence[str | Path] | ShardSet, target: str, transforms: Transforms, batch_size: int,
                 shuffle: bool, augment: bool, seed: int, *, epochs: int | None = None, start_epoch: int = 0,
                 steps_per_epoch: int | None = None, reflections: bool = False, grid: int | None = None,
                 num_pipelines: int = 1, pipeline_id: int = 0, per_replica_batch: int | None = None,
                 stream: int = 0, channel_paths: Sequence[str | Path] | None = None, in_memory: bool = False,
                 threads: int | None = None):
    """A ``tf.data.Dataset`` of (inputs (b,N,N,N,C), target (b,N,N,N,1)) batches from shards.

    ``batch_size`` is the global batch B; each epoch has ``steps_per_epoch`` steps (default
    n // B, at least 1) built by :func:`epoch_plan` for epochs ``start_epoch`` … ``epochs``−1
    (``epochs=None``: the first epoch's plan repeated forever, for validation and benchmarks).
    ``augment`` draws one of 24 rotations per mock (48 with ``reflections``).
    ``channel_paths``: the Wiener-filter channel files of the shards (needed by a model with
    ``transforms.wiener_channels``). ``in_memory``: read, normalise and encode every mock
    once (:class:`MemoryMocks`); else each mock is read from its shard when its batch is
    made, by ``threads`` parallel reads (default: up to 8).

    Batches are assembled in numpy (normalisation, cube rotation: the reference
    :class:`ShardReader`) by a Python generator and prefetched; a ``tf.data`` map of per-mock
    TensorFlow ops ran 4–8× slower than training on 2 CPU cores (issue 13).

    Distribution: pipeline ``pipeline_id`` of ``num_pipelines`` (one per worker) keeps its
    contiguous B / ``num_pipelines`` slice of every global batch and batches it by
    ``per_replica_batch`` (default: the whole slice).
    """
    import tensorflow as tf

    shards = paths if isinstance(paths, ShardSet) else scan_shards(paths, grid)
    if shards.n == 0:
        raise TrainingError("make_dataset: the shards hold no mock")
    B = int(batch_size)
    if B % num_pipelines:
        raise TrainingError(f"global batch {B} is not divisible by {num_pipelines} workers")
    w = B // num_pipelines
    b = int(per_replica_batch or w)
    if w % b:
        raise TrainingError(f"per-worker batch {w} is not divisible by the per-replica batch {b}")
    steps = int(steps_per_epoch or max(1, shards.n // B))
    n_sym = (48 if reflections else 24) if augment else 1
    plan_epochs = [start_epoch] if epochs is None else list(range(start_epoch, epochs))
    cols = [[], [], []]
    for e in plan_epochs:
        plan = epoch_plan(shards, e, seed, steps * B, shuffle, n_sym, stream)
        for c, arr in zip(cols, plan):
            c.append(arr.reshape(steps, B)[:, pipeline_id * w:(pipeline_id + 1) * w].reshape(-1))
    f, r, s = (np.concatenate(c) if c else np.zeros(0, np.int32) for c in cols)
    reader = ShardReader(shards, target, transforms, channel_paths)
    source = MemoryMocks(reader) if in_memory else reader
    N = shards_grid(shards)
    C = transforms.in_channels
    n_batches = len(f) // b

    def batches():
        from concurrent.futures import ThreadPoolExecutor

        pool = None if in_memory else ThreadPoolExecutor(int(threads or min(8, os.cpu_count() or 1)))
        try:
            while True:
                for k in range(n_batches):
                    sl = slice(k * b, (k + 1) * b)
                    items = (map(source, f[sl], r[sl], s[sl]) if pool is None
                             else pool.map(source, f[sl], r[sl], s[sl]))
                    xs, ys = zip(*items)
                    yield np.stack(xs), np.stack(ys)
                if epochs is not None:
                    return
        finally:
            if pool is not None:
                pool.shutdown(wait=False)

    sig = (tf.TensorSpec((b, N, N, N, C), tf.float32), tf.TensorSpec((b, N, N, N, 1), tf.float32))
    ds = tf.data.Dataset.from_generator(batches, output_signature=sig).prefetch(2)
    opts = tf.data.Options()
    opts.deterministic = True
    opts.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.OFF
    return ds.with_options(opts)


def shards_grid(shards: ShardSet) -> int:
    import h5py

    with h5py.File(shards.paths[0], "r") as f:
        return int(f["inputs"].shape[1])


# --------------------------------------------------------------------------- strategy
def _slurm_tasks() -> int:
    for key in ("SLURM_STEP_NUM_TASKS", "SLURM_NTASKS"):
        if os.environ.get(key, "").isdigit():
            return int(os.environ[key])
    return 1


def get_strategy(kind: str = "auto", devices: Sequence[str] | None = None):
    """A ``tf.distribute`` strategy.

    ``default``: one device. ``mirrored``: MirroredStrategy over ``devices`` (default: every
    GPU of this node, or the CPU). ``multiworker``: MultiWorkerMirroredStrategy with the
    cluster from ``TF_CONFIG`` when set, else from Slurm (``SlurmClusterResolver``, in a job
    step launched by ``srun``, one task per node or per GPU). ``auto``: multiworker when
    ``TF_CONFIG`` is set or a Slurm step has several tasks, mirrored with several GPUs, else
    default. Create it before any other TensorFlow work (MultiWorker requires it)."""
    import tensorflow as tf

    if kind not in STRATEGIES:
        raise TrainingError(f"strategy must be one of {', '.join(STRATEGIES)}, got {kind!r}")
    if kind == "auto":
        if os.environ.get("TF_CONFIG") or (os.environ.get("SLURM_JOB_ID") and _slurm_tasks() > 1):
            kind = "multiworker"
        elif len(tf.config.list_physical_devices("GPU")) > 1:
            kind = "mirrored"
        else:
            kind = "default"
    if kind == "default":
        return tf.distribute.get_strategy()
    if kind == "mirrored":
        return tf.distribute.MirroredStrategy(devices=list(devices) if devices else None)
    if os.environ.get("TF_CONFIG"):
        try:
            json.loads(os.environ["TF_CONFIG"])
        except json.JSONDecodeError as e:
            raise TrainingError(f"TF_CONFIG is not valid JSON ({e})") from None
        return tf.distribute.MultiWorkerMirroredStrategy()
    if os.environ.get("SLURM_JOB_ID"):
        resolver = tf.distribute.cluster_resolver.SlurmClusterResolver()
        return tf.distribute.MultiWorkerMirroredStrategy(cluster_resolver=resolver)
    raise TrainingError("strategy 'multiworker': no cluster; set TF_CONFIG or run under Slurm (srun)")


def worker_role(strategy) -> tuple[bool, int, int]:
    """(is chief, worker index, number of workers) of this process in ``strategy``."""
    import tensorflow as tf

    if not isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy):
        return True, 0, 1
    resolver = strategy.cluster_resolver
    spec = resolver.cluster_spec().as_dict()
    n = sum(len(v) for k, v in spec.items() if k in ("chief", "worker")) or 1
    ttype, tid = resolver.task_type, int(resolver.task_id or 0)
    if ttype is None:
        return True, 0, n
    idx = tid + (1 if ttype == "worker" and "chief" in spec else 0)
    chief = ttype == "chief" or (ttype == "worker" and tid == 0 and "chief" not in spec)
    return chief, (0 if ttype == "chief" else idx), n


# --------------------------------------------------------------------------- model files
def model_dir(profile, target: str) -> Path:
    """``<data_path>/models/<target>``."""
    return profile.data_path / "models" / _check_target(target)


def save_model(model, path: str | Path, transforms: Transforms, profile=None, **meta) -> Path:
    """Save ``model`` in the ``.keras`` format, atomically, with a ``zoa.json`` member in the
    zip holding the transforms, the profile, provenance and ``meta`` (e.g. ``epochs_done``)."""
    path = Path(path)
    content = {"transforms": transforms.to_dict(), "meta": meta,
               "provenance": provenance(profile) if profile is not None else provenance()}
    with atomic_path(path) as tmp:
        model.save(tmp)
        with zipfile.ZipFile(tmp, "a") as z:
            z.writestr(META_MEMBER, json.dumps(content, sort_keys=True, default=float))
    return path


def read_model_metadata(path: str | Path) -> dict:
    """The ``zoa.json`` member of a saved model: {"transforms", "meta", "provenance"}."""
    path = Path(path)
    if not path.exists():
        raise TrainingError(f"{path}: model not found")
    try:
        with zipfile.ZipFile(path) as z:
            return json.loads(z.read(META_MEMBER))
    except KeyError:
        raise TrainingError(f"{path}: not a zoa model (no {META_MEMBER} with its transforms)") from None
    except (zipfile.BadZipFile, OSError, json.JSONDecodeError) as e:
        raise TrainingError(f"{path}: not a readable .keras file ({e})") from None


def load_model_file(path: str | Path, compile: bool = False):
    """(keras.Model, Transforms) from a ``.keras`` file written by :func:`save_model`."""
    import keras

    _register_custom_objects()
    meta = read_model_metadata(path)
    try:
        model = keras.saving.load_model(path, compile=compile)
    except (ValueError, OSError) as e:
        raise TrainingError(f"{path}: cannot load the model ({str(e).splitlines()[0]})") from None
    return model, Transforms.from_dict(meta["transforms"])


def model_path(profile, target: str, which: str = "best") -> Path:
    """The model file :func:`load_model` reads: ``best.keras`` (lowest validation loss; the
    default) or ``which="last"`` (``model.keras``), falling back to the other when only one
    exists."""
    folder = model_dir(profile, target)
    names = {"best": ("best.keras", "model.keras"), "last": ("model.keras", "best.keras")}
    if which not in names:
        raise TrainingError(f"which must be 'best' or 'last', got {which!r}")
    for name in names[which]:
        if (folder / name).exists():
            return folder / name
    raise TrainingError(f"{folder}: no trained {target} model; run `zoa train --profile {profile.name} "
                        f"--target {target}` first")


def load_model(profile, target: str, which: str = "best"):
    """(keras.Model, Transforms) of a trained network (file chosen by :func:`model_path`)."""
    return load_model_file(model_path(profile, target, which))


def predict_array(model, transforms: Transforms, inputs, batch_size: int = 4, *, profile=None,
                  channels=None, progress: bool = False) -> np.ndarray:
    """Predict in physical units (δ, or φ in (km/s)²) from raw inputs (N_gal, V_pec [km/s]).

    ``inputs``: (N, N, N, 2) → (N, N, N), or (n, N, N, N, 2) → (n, N, N, N), float32.
    A model with ``transforms.wiener_channels`` also needs the Wiener-filter channels
    (φ_WF, δ_WF) of those inputs: ``channels`` (same leading shape, 2 channels last, e.g.
    from :func:`zoa_lib.wiener_channels.channels`), or ``profile``, to compute them here with
    the calibration saved in the model."""
    x = np.asarray(inputs)
    single = x.ndim == 4
    if single:
        x = x[None]
    if transforms.wiener_channels and x.ndim == 5 and x.shape[-1] == 2:
        if channels is None:
            if profile is None:
                raise TrainingError("this model corrects the Wiener filter: give predict_array the profile "
                                    "(or the channels of zoa_lib.wiener_channels.channels)")
            from .wiener_channels import channels as wf_channels

            channels = wf_channels(x, profile, transforms.wiener_calibration, progress=progress)
        channels = np.asarray(channels, np.float32).reshape(x.shape)
        x = np.concatenate([x, channels], axis=-1)
    want = tuple(model.input_shape[1:])
    if x.ndim != 5 or tuple(x.shape[1:]) != want:
        raise TrainingError(f"inputs have shape {np.shape(inputs)}, the model expects (n,) + {want}")
    out = np.empty(x.shape[:4], np.float32)
    for i in range(0, x.shape[0], batch_size):
        u = transforms.normalise_inputs(x[i:i + batch_size])
        y = np.asarray(model.predict_on_batch(u))[..., 0]
        out[i:i + batch_size] = transforms.decode_target(y)
    return out[0] if single else out


# --------------------------------------------------------------------------- callbacks
def _make_checkpoint_class():
    import keras

    class Checkpoint(keras.callbacks.Callback):
        """Every epoch: ``model.keras`` (last) and, when ``monitor`` improved, ``best.keras``;
        both atomic, with transforms and ``epochs_done`` (:func:`save_model`)."""

        def __init__(self, folder, transforms, profile, monitor="val_loss", best=math.inf, extra=None):
            super().__init__()
            self.folder, self.transforms, self.profile = Path(folder), transforms, profile
            self.monitor, self.best, self.extra = monitor, float(best), dict(extra or {})

        def on_epoch_end(self, epoch, logs=None):
            logs = dict(logs or {})
            value = float(logs.get(self.monitor, math.nan))
            improved = math.isfinite(value) and value < self.best
            if improved:
                self.best = value
            meta = {**self.extra, "epochs_done": epoch + 1, "monitor": self.monitor,
                    "best_value": self.best, "logs": {k: float(v) for k, v in logs.items()}}
            last = save_model(self.model, self.folder / "model.keras", self.transforms, self.profile, **meta)
            if improved:
                with atomic_path(self.folder / "best.keras") as tmp:
                    shutil.copyfile(last, tmp)

    return Checkpoint


def _lr_logger():
    import keras

    class LearningRateLogger(keras.callbacks.Callback):
        """Adds ``learning_rate`` (at the end of the epoch) to the epoch logs."""

        def on_epoch_end(self, epoch, logs=None):
            if logs is not None:
                lr = self.model.optimizer.learning_rate
                logs["learning_rate"] = float(np.asarray(lr))

    return LearningRateLogger()


BACKUP_METADATA = "training_metadata.json"


def _backup_state(backup: Path) -> dict | None:
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


def _backup_epoch(backup: Path) -> int:
    """Epochs finished according to a backup folder (0 when there is none)."""
    state = _backup_state(backup)
    return state["epoch"] if state else 0


def _mark_fresh_backup(backup: Path) -> None:
    """Mark ``backup`` as belonging to a fresh run that has finished no epoch yet."""
    write_json_atomic(backup / BACKUP_METADATA, {"epoch": 0, "batch": 0, "weights": None})


def _make_backup_class():
    import keras

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
            state = _backup_state(self.folder)
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

    return AtomicBackupAndRestore


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


# --------------------------------------------------------------------------- training
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


def _gpu() -> bool:
    import tensorflow as tf

    return bool(tf.config.list_physical_devices("GPU"))


def build_and_compile(profile, steps_per_epoch: int, name: str = "vnet", jit_compile: bool = False,
                      mixed_precision: bool = False, transforms: Transforms | None = None):
    """A fresh V-Net for the profile, compiled with Adam, MSE and the cyclic learning rate;
    its input channels and residual channel from ``transforms`` (default: the two survey
    channels, no residual)."""
    import keras

    from .vnet import build_vnet

    t = profile.training
    prev = keras.mixed_precision.global_policy().name
    keras.mixed_precision.set_global_policy("mixed_float16" if mixed_precision else "float32")
    try:
        model = build_vnet(profile.model, profile.box.grid, name=name,
                           in_channels=transforms.in_channels if transforms else 2,
                           residual_channel=transforms.residual_channel if transforms else None)
    finally:
        keras.mixed_precision.set_global_policy(prev)
    sched = __getattr__("TriangularCyclicLR")(t.lr_min, t.lr_max, t.lr_half_cycle_epochs * steps_per_epoch)
    model.compile(optimizer=keras.optimizers.Adam(learning_rate=sched), loss="mse", jit_compile=jit_compile)
    return model


def train(profile, target: str, resume: bool = False, strategy=None, progress: bool = True,
          callbacks: Sequence = (), log=None) -> TrainResult:
    """Train the ``target`` network (``delta`` or ``phi``) on the profile's mock shards.

    ``resume``: continue an interrupted run from ``backup/`` (or a finished one whose
    ``training.epochs`` was raised, from ``model.keras``); otherwise start afresh.
    ``strategy``: a name for :func:`get_strategy` (default ``auto``) or a strategy object.
    ``callbacks``: extra Keras callbacks, run after the checkpointing ones.
    Shards are all validated before anything is built. See the module docstring for files,
    transforms, determinism and distribution."""
    import keras
    import tensorflow as tf

    _check_target(target)
    log = log or (print if progress else (lambda *a: None))
    t0 = time.perf_counter()
    if strategy is None or isinstance(strategy, str):
        strategy = get_strategy(strategy or "auto")
    tr = profile.training
    train_set = split_shards(profile, "train")
    if train_set.n == 0:
        raise TrainingError(f"{data.mocks_dir(profile)}: no training shards in the manifest; run "
                            f"`zoa mocks --profile {profile.name}` first")
    val_set = split_shards(profile, "val")
    gpu = _gpu()
    use_mp, use_xla = tr.mixed_precision and gpu, tr.xla and gpu
    if (tr.mixed_precision or tr.xla) and not gpu:
        log("no GPU: training.mixed_precision and training.xla are ignored (float32, no XLA)")
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
        from . import wiener_channels

        wiener_channels.ensure(profile, splits=("train", "val"), progress=progress, log=log)
        calibration = wiener_channels.profile_calibration(profile)
        channels = {"train": wiener_channels.split_paths(profile, train_set.paths),
                    "val": wiener_channels.split_paths(profile, val_set.paths) if val_set.n else None}
    transforms = Transforms.from_profile(profile, target, calibration)
    need = in_memory_bytes(train_set.n + val_set.n, profile.box.grid, transforms.in_channels)
    in_memory = need <= tr.in_memory_gib * 2 ** 30
    log(f"{target}: {'holding' if in_memory else 'streaming'} the {train_set.n + val_set.n} mocks "
        f"({need / 2 ** 30:.2f} GiB; training.in_memory_gib = {tr.in_memory_gib:g})"
        + (" in memory" if in_memory else " from the shards"))
    seed = training_seed(profile, target)

    start_epoch, init_from, best = 0, None, math.inf
    if resume:
        state = _backup_state(backup)
        if state is not None:  # an interrupted run (a fresh one killed in its first epoch: epoch 0)
            start_epoch = state["epoch"]
            if start_epoch == 0:
                log(f"{target}: the interrupted run in {backup} finished no epoch; starting it again")
        elif (folder / "model.keras").exists():  # a finished run (training.epochs raised?)
            shutil.rmtree(backup, ignore_errors=True)  # uncommitted leftovers (killed in its cleanup)
            meta = read_model_metadata(folder / "model.keras")["meta"]
            start_epoch, init_from = int(meta.get("epochs_done", 0)), folder / "model.keras"
        if (folder / "best.keras").exists() and start_epoch > 0:
            best = float(read_model_metadata(folder / "best.keras")["meta"].get("best_value", math.inf))
    else:
        if _backup_epoch(backup):
            log(f"{target}: starting afresh; the interrupted run in {backup} (epoch {_backup_epoch(backup)}) "
                f"is discarded (use --resume to continue it)")
        shutil.rmtree(backup, ignore_errors=True)
        if chief:
            history.unlink(missing_ok=True)
    if start_epoch >= tr.epochs:
        log(f"{target}: already trained for {start_epoch} epochs (training.epochs = {tr.epochs}); nothing to do")
        return _result(profile, target, folder, start_epoch, start_epoch, None, t0, strategy, replicas, B,
                       steps, {})

    if not resume or start_epoch == 0:
        _mark_fresh_backup(backup)  # a kill before the first epoch ends is resumed from scratch
    if tr.deterministic:
        tf.config.experimental.enable_op_determinism()
        log(f"{target}: training.deterministic: TensorFlow op determinism enabled (bit-reproducible, slower)")
    keras.utils.set_random_seed(seed)
    with strategy.scope():
        if init_from is not None:
            _register_custom_objects()
            model = keras.saving.load_model(init_from, compile=True)
        else:
            model = build_and_compile(profile, steps, name=f"vnet_{target}", jit_compile=use_xla,
                                      mixed_precision=use_mp, transforms=transforms)
    if n_workers > 1 or isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy):
        _multiworker_workarounds(model, strategy, profile.box.grid, transforms.in_channels)
    n_params = int(model.count_params())
    log(f"{target}: V-Net with {n_params:,} parameters; {train_set.n} training / {val_set.n} validation "
        f"mocks; {steps} steps per epoch of global batch {B} ({replicas} replica(s), "
        f"{type(strategy).__name__}); epochs {start_epoch}..{tr.epochs - 1}"
        + (" (resumed)" if start_epoch else ""))

    common = dict(target=target, transforms=transforms, reflections=tr.augment_reflections)

    def dataset(shard_set, shuffle, augment, epochs, nsteps, stream, ctx=None):
        kw = dict(num_pipelines=1, pipeline_id=0, per_replica_batch=None, in_memory=in_memory,
                  channel_paths=channels["train" if shard_set is train_set else "val"])
        if ctx is not None:
            kw = dict(num_pipelines=ctx.num_input_pipelines, pipeline_id=ctx.input_pipeline_id,
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
    cbs = [_lr_logger()]
    if chief:
        cbs.append(keras.callbacks.CSVLogger(str(history), append=True))
        cbs.append(__getattr__("Checkpoint")(folder, transforms, profile,
                                             monitor="val_loss" if val_steps else "loss", best=best,
                                             extra={"target": target, "parameters": n_params}))
    cbs.append(__getattr__("AtomicBackupAndRestore")(backup))
    cbs.extend(callbacks)
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


def _multiworker_workarounds(model, strategy, grid: int, channels: int = 2) -> None:
    """Two Keras 3 bugs with MultiWorkerMirroredStrategy (keras-team/keras#20585):

    1. ``fit`` peeks at a distributed batch and ``strategy.reduce``-s the (x, y) tuple to build
       the optimizer and metrics, which the strategy cannot reduce: only shapes are needed, so
       this model instance builds from a local batch of the right shape instead;
    2. the per-step logs (scalar metric results) are reduced with ``axis=0``, which fails for
       scalars: scalars are averaged over replicas with ``axis=None`` instead (the same mean).
    Gradients are still all-reduced by the strategy itself; nothing else changes."""
    from keras.src.backend.tensorflow import trainer as tf_trainer

    batch = (np.zeros((1, grid, grid, grid, channels), np.float32), np.zeros((1, grid, grid, grid, 1), np.float32))

    def build(iterator=None, data_batch=None):
        with strategy.scope():
            model._symbolic_build(data_batch=batch)

    model._maybe_symbolic_build = build
    original = getattr(tf_trainer.reduce_per_replica, "_zoa_original", tf_trainer.reduce_per_replica)

    def reduce_per_replica(values, strat, reduction):
        if reduction in ("auto", "mean") and tf_trainer._collective_all_reduce_multi_worker(strat):
            from keras.src import tree

            def red(v):
                first = v.values[0] if tf_trainer._is_per_replica_instance(v) else v
                if getattr(first, "shape", None) is not None and first.shape.rank == 0:
                    return strat.reduce("MEAN", v, axis=None)
                return original(v, strat, reduction)

            return tree.map_structure(red, values)
        return original(values, strat, reduction)

    reduce_per_replica._zoa_original = original
    tf_trainer.reduce_per_replica = reduce_per_replica


def _result(profile, target, folder, done, start, n_params, t0, strategy, replicas, B, steps, history):
    if n_params is None:
        meta = read_model_metadata(folder / "model.keras")["meta"]
        n_params = int(meta.get("parameters", 0))
    return TrainResult(target=target, folder=folder, model_path=folder / "model.keras",
                       best_path=folder / "best.keras", history_path=folder / "history.csv", epochs_done=done,
                       start_epoch=start, parameters=n_params, seconds=round(time.perf_counter() - t0, 2),
                       strategy=type(strategy).__name__, replicas=replicas, global_batch=B,
                       steps_per_epoch=steps, history=history)


# --------------------------------------------------------------------------- prediction
def predict(profile, target: str, split: str = "test", which: str = "best", progress: bool = True,
            batch_size: int | None = None) -> Path:
    """Predict every mock of a split and write ``<data>/predictions/<target>-<split>.h5``
    atomically: ``prediction`` (n,N,N,N) float32 in physical units (δ, or φ in (km/s)²),
    ``truth`` (n,N,N,N) the shard's target, ``inputs`` (n,N,N,N,2) raw (N_gal, V_pec km/s),
    ``velocity_true`` (n,N,N,N,3) km/s, ``samples`` (n,); attrs: target, units, split, model
    path, transforms (JSON) and provenance. Reads the split's shards one mock at a time."""
    import h5py
    from tqdm.auto import tqdm

    from .evaluation import predictions_path

    _check_target(target)
    if split not in ("train", "val", "test"):
        raise TrainingError(f"split must be train, val or test, got {split!r}")
    shards = split_shards(profile, split)
    if shards.n == 0:
        raise TrainingError(f"{data.mocks_dir(profile)}: no {split!r} shards in the manifest; run "
                            f"`zoa mocks --profile {profile.name}` first")
    path = model_path(profile, target, which)
    model, transforms = load_model_file(path)
    if transforms.target != target:
        raise TrainingError(f"{path}: a {transforms.target} model, not {target}")
    N = profile.box.grid
    n = shards.n
    b = int(batch_size or profile.training.batch_size)
    out = predictions_path(profile, target, split)
    ensure_writable(out.parent)
    channel_files = None
    if transforms.wiener_channels:
        from . import wiener_channels

        wiener_channels.ensure(profile, splits=(split,), progress=progress,
                               log=print if progress else (lambda *a: None))
        channel_files = wiener_channels.split_paths(profile, shards.paths)
    reader = ShardReader(shards, target, transforms, channel_files)
    units = {"prediction": UNITS[target], "truth": UNITS[target],
             "inputs": data.UNITS["inputs"], "velocity_true": "km/s", "samples": ""}
    try:
        with atomic_path(out) as tmp, h5py.File(tmp, "w") as h:
            kw = dict(dtype=np.float32, track_times=False)
            dsets = {
                "prediction": h.create_dataset("prediction", (n, N, N, N), chunks=(1, N, N, N), **kw),
                "truth": h.create_dataset("truth", (n, N, N, N), chunks=(1, N, N, N), **kw),
                "inputs": h.create_dataset("inputs", (n, N, N, N, 2), chunks=(1, N, N, N, 2), **kw),
                "velocity_true": h.create_dataset("velocity_true", (n, N, N, N, 3), chunks=(1, N, N, N, 3), **kw),
            }
            samples = np.zeros(n, np.int64)
            bar = tqdm(total=n, desc=f"predict {target}/{split}", disable=not progress or not sys.stderr.isatty())
            i = 0
            for s, count in enumerate(shards.counts):
                f = reader._file(s)
                for r0 in range(0, count, b):
                    r1 = min(count, r0 + b)
                    x = f["inputs"][r0:r1]
                    wf = (np.stack([reader.read(s, row)[0][..., 2:] for row in range(r0, r1)])
                          if channel_files else None)
                    dsets["prediction"][i:i + r1 - r0] = predict_array(model, transforms, x, b, channels=wf)
                    dsets["truth"][i:i + r1 - r0] = f["targets/" + target][r0:r1]
                    dsets["inputs"][i:i + r1 - r0] = x
                    dsets["velocity_true"][i:i + r1 - r0] = f["targets/velocity"][r0:r1]
                    samples[i:i + r1 - r0] = f["samples"][r0:r1] if "samples" in f else np.arange(i, i + r1 - r0)
                    i += r1 - r0
                    bar.update(r1 - r0)
            bar.close()
            h.create_dataset("samples", data=samples, track_times=False)
            for name, u in units.items():
                h[name].attrs["units"] = u
            h.attrs.update(provenance(profile, target=target, units=UNITS[target], split=split,
                                      model=str(path), transforms=json.dumps(transforms.to_dict()),
                                      shards=json.dumps([p.name for p in shards.paths])))
    finally:
        reader.close()
    return out


# --------------------------------------------------------------------------- benchmark
def _synthetic_shards(folder: Path, grid: int, n_shards: int, per_shard: int, seed: int = 0,
                      wiener: bool = False) -> tuple[list[Path], list[Path] | None]:
    """Shards of random numbers at ``grid`` (for the pipeline benchmark only: no physics), and
    with ``wiener`` channel files of random numbers beside them."""
    import h5py

    g = generator(seed, "training", 99)
    paths, chans = [], []
    for k in range(n_shards):
        n = per_shard
        inputs = np.empty((n, grid, grid, grid, 2), np.float32)
        inputs[..., 0] = g.poisson(0.5, (n, grid, grid, grid))
        inputs[..., 1] = g.normal(0, 300, (n, grid, grid, grid)) * (inputs[..., 0] > 0)
        shard = data.Shard(
            inputs=inputs,
            targets={"delta": g.normal(0, 0.5, (n,) + (grid,) * 3).astype(np.float32),
                     "phi": g.normal(0, 1e5, (n,) + (grid,) * 3).astype(np.float32),
                     "velocity": g.normal(0, 300, (n,) + (grid,) * 3 + (3,)).astype(np.float32)},
            catalog=np.zeros(0, data.CATALOG_DTYPE), samples=np.arange(k * n, (k + 1) * n),
            observers=np.zeros((n, 3)), rotations=np.tile(np.eye(3, dtype=np.int8), (n, 1, 1)),
            box_index=np.zeros(n, np.int64), attrs={"grid": grid})
        p = folder / data.shard_name(k)
        data.write_shard(p, shard)
        paths.append(p)
        if wiener:
            c = folder / ("wiener-" + data.shard_name(k))
            with h5py.File(c, "w") as h:
                h.create_dataset(_wiener_dataset(), data=np.stack(
                    [g.normal(0, 1e5, (n,) + (grid,) * 3), g.normal(0, 0.5, (n,) + (grid,) * 3)], -1).astype(np.float32),
                    chunks=(1, grid, grid, grid, 2))
            chans.append(c)
    return paths, (chans if wiener else None)


class _EpochTimer:
    """Keras callback factory: wall time of every epoch (seconds)."""

    def __new__(cls):
        import keras

        class Timer(keras.callbacks.Callback):
            def __init__(self):
                super().__init__()
                self.seconds = []

            def on_epoch_begin(self, epoch, logs=None):
                self._t = time.perf_counter()

            def on_epoch_end(self, epoch, logs=None):
                self.seconds.append(time.perf_counter() - self._t)

        return Timer()


def benchmark(profile, seconds: float = 10.0) -> dict:
    """Speed and memory of training at the profile's architecture and grid (``zoa bench train``).

    The epoch is timed the way :func:`train` runs it: the same model (input channels and
    residual head from the profile's transforms), :func:`make_dataset` (held in memory when
    the profile's mocks fit ``training.in_memory_gib``, else streamed from the shards with
    threaded reads, with augmentation) and ``keras.Model.fit`` with validation, on synthetic
    shards of random numbers at the profile's grid in a temporary folder. Not timed: the
    per-epoch checkpoint and backup files (tens of ms at the laptop size) and computing the
    Wiener-filter channels (once per mock before training: ``zoa bench evaluate``).

    * ``seconds_per_epoch``: the measured fit time of an epoch of ``steps`` batches
      (the second epoch, after tracing), scaled to the profile's n_train / n_val mocks;
      ``estimated_training_minutes``: that × ``training.epochs`` (one network; the book
      trains two);
    * ``fit_seconds_per_sample``, ``inference_seconds_per_sample`` (``predict_on_batch``);
    * ``data_samples_per_second``: the pipeline alone, iterated without training;
    * parameter count, the estimated activation memory of one step per sample, and the GPU
      peak from TensorFlow when on a GPU (``zoa bench`` adds the process's peak RSS).

    ``seconds`` bounds the size of the timed epoch (at least 4 batches).
    """
    import tempfile

    import keras
    import tensorflow as tf

    from .vnet import activation_bytes

    tr = profile.training
    N = profile.box.grid
    gpu = _gpu()
    out = {"grid": N, "model": dataclasses.asdict(profile.model), "gpu": gpu, "batch_size": tr.batch_size,
           "wiener_channels": bool(tr.wiener_channels)}
    cal = {"edges": [0.0, 1.0], "bias": [0.0], "n_mocks": 0, "sigma_nl": None} if tr.wiener_channels else None
    transforms = Transforms.from_profile(profile, "phi", cal)
    steps_guess = max(1, profile.mocks.n_train // tr.batch_size)
    model = build_and_compile(profile, steps_guess, jit_compile=tr.xla and gpu,
                              mixed_precision=tr.mixed_precision and gpu, transforms=transforms)
    out["parameters"] = int(model.count_params())
    act = activation_bytes(profile.model, N, 1)
    out["estimated_step_memory_mib_per_sample"] = round(act / 2 ** 20, 1)
    try:
        avail = int(open("/proc/meminfo").read().split("MemAvailable:")[1].split()[0]) * 1024
    except (OSError, IndexError, ValueError):
        avail = 8 << 30
    if gpu:
        avail = int(tf.config.experimental.get_memory_info("GPU:0").get("current", 0)) or avail
    batch = tr.batch_size if act * tr.batch_size < avail / 2 else 1
    out["benchmark_batch"] = batch
    need = in_memory_bytes(profile.mocks.n_train + profile.mocks.n_val, N, transforms.in_channels)
    in_memory = need <= tr.in_memory_gib * 2 ** 30
    out["in_memory"] = in_memory

    # size the timed epoch from one step
    x = np.random.default_rng(0).normal(size=(batch, N, N, N, transforms.in_channels)).astype(np.float32)
    y = np.random.default_rng(1).normal(size=(batch, N, N, N, 1)).astype(np.float32)
    if act * batch >= avail:
        out["train_step_skipped"] = (f"estimated {act * batch / 2 ** 30:.1f} GiB for a step at batch {batch} "
                                     f"exceeds the {avail / 2 ** 30:.1f} GiB available")
        keras.backend.clear_session()
        return out
    model.train_on_batch(x, y)  # builds and traces train_on_batch (fit traces its own function)
    a = time.perf_counter()
    model.train_on_batch(x, y)
    step = time.perf_counter() - a
    steps = int(max(4, min(profile.mocks.n_train // batch, seconds / max(step, 1e-3))))
    val_steps = max(1, steps // 6)
    per_shard = batch * (steps + val_steps)
    with tempfile.TemporaryDirectory(prefix="zoa-bench-train-") as tmp:
        paths, chans = _synthetic_shards(Path(tmp), N, 1, per_shard, profile.seed, wiener=tr.wiener_channels)
        shards = scan_shards(paths, N)
        kw = dict(channel_paths=chans, in_memory=in_memory, reflections=tr.augment_reflections)
        a = time.perf_counter()
        ds = make_dataset(shards, "phi", transforms, batch, shuffle=True, augment=tr.augment, seed=profile.seed,
                          epochs=2, steps_per_epoch=steps, **kw)
        val = make_dataset(shards, "phi", transforms, batch, shuffle=False, augment=False, seed=profile.seed,
                           steps_per_epoch=val_steps, **kw)
        out["data_setup_seconds"] = round(time.perf_counter() - a, 3)
        it = iter(make_dataset(shards, "phi", transforms, batch, shuffle=True, augment=tr.augment,
                               seed=profile.seed, epochs=1, steps_per_epoch=steps, **kw))
        a = time.perf_counter()
        k = sum(1 for _ in it)
        out["data_samples_per_second"] = round(k * batch / (time.perf_counter() - a), 2)
        timer = _EpochTimer()
        model.fit(ds, epochs=2, steps_per_epoch=steps, validation_data=val, validation_steps=val_steps,
                  callbacks=[timer], shuffle=False, verbose=0)
    epoch = timer.seconds[-1]
    model.predict_on_batch(x)
    k, a = 0, time.perf_counter()
    while k < 2 or (time.perf_counter() - a < 0.2 * seconds and k < 100):
        model.predict_on_batch(x)
        k += 1
    t_inf = (time.perf_counter() - a) / (k * batch)
    t_val = val_steps * batch * t_inf
    t_fit = max(epoch - t_val, 1e-9) / (steps * batch)
    out["timed_epoch"] = {"train_samples": steps * batch, "val_samples": val_steps * batch,
                          "seconds": round(epoch, 3), "first_epoch_seconds": round(timer.seconds[0], 3)}
    out["fit_seconds_per_sample"] = round(t_fit, 5)
    out["inference_seconds_per_sample"] = round(t_inf, 5)
    out["data_over_fit_rate"] = round(out["data_samples_per_second"] * t_fit, 1)
    per_epoch = (profile.mocks.n_train // batch) * batch * t_fit + profile.mocks.n_val * t_inf
    out["seconds_per_epoch"] = round(per_epoch, 1)
    out["estimated_training_minutes"] = round(per_epoch * tr.epochs / 60, 2)
    if gpu:
        info = tf.config.experimental.get_memory_info("GPU:0")
        out["gpu_peak_memory_mib"] = round(info.get("peak", 0) / 2 ** 20, 1)
    keras.backend.clear_session()
    return out


#: Profile sections a trained model depends on: a model is reused only if they all match.
MODEL_DEPENDS_ON = ("seed", "cosmology", "box", "simulation", "survey", "mocks", "model", "training")


def _section(trained: dict, key: str, profile):
    """``trained[key]`` with the keys a newer zoa added to that section filled in with their
    defaults (a model trained before a key existed was trained with its default)."""
    value = trained.get(key)
    current = getattr(profile, key, None)
    if isinstance(value, dict) and dataclasses.is_dataclass(current):
        defaults = {f.name: f.default for f in dataclasses.fields(current)
                    if f.default is not dataclasses.MISSING}
        from .config import _to_plain

        value = {**_to_plain(defaults), **value}
    return value


def matching_model(profile, target: str) -> Path | None:
    """The finished ``model.keras`` for ``target`` if it was trained by this profile's
    settings (every section in :data:`MODEL_DEPENDS_ON` equal, all epochs done), else None."""
    path = model_dir(profile, target) / "model.keras"
    if not path.exists():
        return None
    try:
        meta = read_model_metadata(path)
        trained = json.loads(meta["provenance"]["parameters"])
    except (TrainingError, KeyError, json.JSONDecodeError):
        return None
    want = profile.to_dict()
    if any(_section(trained, k, profile) != want.get(k) for k in MODEL_DEPENDS_ON):
        return None
    if meta.get("meta", {}).get("epochs_done") != profile.training.epochs:
        return None
    return path


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
