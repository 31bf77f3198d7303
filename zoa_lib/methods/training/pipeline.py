"""The data pipeline from the HDF5 mock shards to batches of network inputs and targets.

Data pipeline (:func:`make_dataset`)
------------------------------------
Every shard is validated up front (:func:`zoa_lib.survey.shards.validate_shard` at the profile's
grid): a wrong shape, a missing dataset or a truncated file raises a :class:`~zoa_lib.errors.ZoaError` naming
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
epoch 4–8× slower than the training steps themselves. With
``training.wiener_channels`` the calibrated Wiener filter's (φ, δ) of each mock are read
from ``<data>/wiener/`` and appended to the inputs (:mod:`zoa_lib.methods.wiener_channels`).
Because the order is a pure function of (seed, epoch), a run resumed at epoch k sees exactly
the batches an uninterrupted run sees.

Cube symmetries are valid augmentations: the observer stays at the centre; N_gal, V_pec
(a *radial* velocity, v_r(x) = x̂·v(x) → x̂·Rv(Rᵀx) = v_r(Rᵀx)), δ and φ are all scalar
fields, transformed as f'(x) = f(Rᵀx). The ZOA mask turns with the cube, so the network
learns to fill a masked slab of any orientation.
"""
from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

from zoa_lib.methods.training.transforms import TrainingError, Transforms, check_target
from zoa_lib.survey import shards
from zoa_lib.universe.rng import generator
from zoa_lib.universe.symmetries import rotate_cube


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


def scan_shards(paths: Sequence[str | Path], grid: int | None, targets=shards.TARGETS) -> ShardSet:
    """Validate every shard (:func:`zoa_lib.survey.shards.validate_shard`; ZoaError naming the file on
    the first bad one) and count its mocks."""
    import h5py

    out_p, out_n = [], []
    for p in paths:
        p = Path(p)
        shards.validate_shard(p, grid=grid, targets=targets)
        with h5py.File(p, "r") as f:
            out_n.append(int(f["inputs"].shape[0]))
        out_p.append(p)
    return ShardSet(tuple(out_p), tuple(out_n))


def split_shards(profile, split: str, targets=shards.TARGETS) -> ShardSet:
    """The validated shards of a split (``train``, ``val``, ``test``) of the profile's mocks."""
    folder = shards.mocks_dir(profile)
    paths = shards.shard_paths(folder, split)
    missing = [p for p in paths if not p.exists()]
    if missing:
        raise TrainingError(f"{missing[0]}: listed in {folder / shards.MANIFEST} but missing; rerun "
                            f"`zoa mocks --profile {profile.name}`")
    return scan_shards(paths, profile.box.grid, targets)

def epoch_plan(shards: ShardSet, epoch: int, seed: int, n_samples: int, shuffle: bool,
               n_symmetries: int, stream: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The ``n_samples`` mocks of one epoch as (shard index, row, symmetry index) arrays.

    Shuffled: a permutation of all mocks from ``generator(seed, "training", stream, 1, epoch)``
    (permutations are concatenated when ``n_samples`` > n); else mocks in shard order
    (cyclically). Symmetries from ``generator(seed, "training", stream, 2, epoch)`` among the
    first ``n_symmetries`` of :data:`zoa_lib.universe.symmetries.CUBE_SYMMETRIES` (0 = identity when 1)."""
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

    Shards written by :mod:`zoa_lib.survey.shards` store each mock as one unfiltered HDF5 chunk: its
    byte offset is looked up once (``get_chunk_info``) and the mock is read with ``os.pread``,
    which releases the GIL, so parallel reads run in parallel (h5py serialises every call
    behind one lock). Other layouts (compressed, contiguous) are read with h5py.
    ``channel_paths``: the Wiener-filter channel files of the shards, in the same order
    (:mod:`zoa_lib.methods.wiener_channels`), appended to the inputs.
    Calling the reader, ``reader(shard, row, sym)``, gives the normalised, rotated
    (inputs (N,N,N,C), target (N,N,N,1))."""

    def __init__(self, shards: ShardSet, target: str, transforms: Transforms,
                 channel_paths: Sequence[str | Path] | None = None):
        import threading

        self.shards, self.target, self.transforms = shards, check_target(target), transforms
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
        names = ("inputs", "targets/" + self.target) if kind == "shard" else (wiener_dataset(),)
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
            x = np.concatenate([x, self._get((shard, "wiener"), wiener_dataset(), row)], axis=-1)
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


def wiener_dataset() -> str:
    from zoa_lib.methods.wiener_channels import DATASET

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

    def index(self, shard, row):
        """Rows of :attr:`x` and :attr:`y` of (shard index, row in shard): numbers or arrays."""
        return self.starts[shard] + row

    def __call__(self, shard, row, sym):
        g = self.index(int(shard), int(row))
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
                 threads: int | None = None, repeat: bool = True):
    """A ``tf.data.Dataset`` of (inputs (b,N,N,N,C), target (b,N,N,N,1)) batches from shards.

    ``batch_size`` is the global batch B; each epoch has ``steps_per_epoch`` steps (default
    n // B, at least 1) built by :func:`epoch_plan` for epochs ``start_epoch`` … ``epochs``−1
    (``epochs=None``: the first epoch's plan, repeated forever for benchmarks, or given once
    with ``repeat=False``, as validation is; a single pass of unrotated in-memory mocks is
    then made from the arrays themselves, with no Python generator).
    ``augment`` draws one of 24 rotations per mock (48 with ``reflections``).
    ``channel_paths``: the Wiener-filter channel files of the shards (needed by a model with
    ``transforms.wiener_channels``). ``in_memory``: read, normalise and encode every mock
    once (:class:`MemoryMocks`); else each mock is read from its shard when its batch is
    made, by ``threads`` parallel reads (default: up to 8).

    Batches are assembled in numpy (normalisation, cube rotation: the reference
    :class:`ShardReader`) by a Python generator and prefetched; a ``tf.data`` map of per-mock
    TensorFlow ops ran 4–8× slower than training on 2 CPU cores.

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
                if epochs is not None or not repeat:
                    return
        finally:
            if pool is not None:
                pool.shutdown(wait=False)

    if in_memory and not repeat and epochs is None and not np.any(s):
        # one pass of unrotated mocks held in memory (validation): the batches as tensors, no
        # Python generator; Keras drops its validation iterator after every evaluation, and
        # dropping one over a generator stalled the epoch by 1–2 s about every other time
        g = source.index(f[:n_batches * b], r[:n_batches * b])
        ds = tf.data.Dataset.from_tensor_slices((source.x[g], source.y[g])).batch(b)
    else:
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
