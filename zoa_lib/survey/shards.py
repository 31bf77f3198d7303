"""HDF5 mock shards: the schema of docs/DESIGN.md, atomic writes, validation, manifest.

A shard ``data/<profile>/mocks/shard-NNNN.h5`` holds n mocks:

=====================  ========================  ==========================================
dataset                shape, dtype              meaning
=====================  ========================  ==========================================
``inputs``             (n, N, N, N, 2) float32   ch 0 N_gal (galaxies/voxel), ch 1 V_pec (km/s)
``targets/delta``      (n, N, N, N) float32      density contrast δ, smoothed
``targets/phi``        (n, N, N, N) float32      peculiar potential φ, (km/s)², smoothed
``targets/velocity``   (n, N, N, N, 3) float32   true peculiar velocity (SGX, SGY, SGZ), km/s
``catalog``            (m,) compound             one row per mock galaxy (:data:`CATALOG_COLUMNS`)
``samples``            (n,) int64                global sample index of each mock
``observers``          (n, 3) float64            observer position in its parent box, Mpc/h
``rotations``          (n, 3, 3) int8            cube rotation applied (parent → SG axes)
``box_index``          (n,) int64                parent box of each mock
=====================  ========================  ==========================================

Attrs carry box_size, grid, smoothing, cosmology, ZOA half-width, selection, seed,
split and provenance (:func:`zoa_lib.io.provenance.provenance`); each dataset has a ``units``
attr. A shard is written to a temporary file and renamed when complete
(:func:`zoa_lib.io.atomic.atomic_path`), so it is complete or absent. The manifest
``manifest.json`` lists every shard, its split, sample range and SHA-256 checksum of
its datasets' bytes (content-only, independent of HDF5 timestamps).

Reading is defensive: a file that is not HDF5, truncated, bit-rotten (HDF5 metadata that
h5py reports as KeyError, RuntimeError, OSError…), a dataset missing, of the wrong kind,
shape or dtype, or a manifest that is not a JSON object of the expected keys, raises
:class:`ShardError` with one line naming the file and the dataset or key.
:func:`manifest_mismatch` says whether a shard file still matches its manifest row.
"""
from __future__ import annotations

import contextlib
import hashlib
import json
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Mapping

import h5py
import numpy as np

from zoa_lib.errors import ZoaError, printable
from zoa_lib.io.atomic import atomic_path, write_json_atomic

#: Catalog columns (name, dtype, unit). Positions are comoving, observer-centred.
CATALOG_COLUMNS = (
    ("sample", "i8", ""),
    ("SGX", "f4", "Mpc/h"),
    ("SGY", "f4", "Mpc/h"),
    ("SGZ", "f4", "Mpc/h"),
    ("l", "f4", "deg"),
    ("b", "f4", "deg"),
    ("d_true", "f4", "Mpc/h"),
    ("d_obs", "f4", "Mpc/h"),
    ("cz", "f4", "km/s"),
    ("v_r_true", "f4", "km/s"),
    ("v_r_obs", "f4", "km/s"),
    ("sigma_v", "f4", "km/s"),
)
CATALOG_DTYPE = np.dtype([(n, t) for n, t, _ in CATALOG_COLUMNS])
TARGETS = ("delta", "phi", "velocity")
UNITS = {
    "inputs": "channel 0: galaxies per voxel; channel 1: km/s",
    "targets/delta": "dimensionless (density contrast)",
    "targets/phi": "(km/s)^2",
    "targets/velocity": "km/s",
    "samples": "",
    "observers": "Mpc/h",
    "rotations": "",
    "box_index": "",
}
MANIFEST = "manifest.json"
#: Index datasets of a shard: name → (shape after n, dtype kinds accepted).
INDEX_DATASETS = {"samples": ((), "iu"), "observers": ((3,), "f"), "rotations": ((3, 3), "iu"),
                  "box_index": ((), "iu")}
#: What h5py raises on a corrupt file (besides OSError): bad metadata shows up as KeyError
#: ("Unable to open object"), RuntimeError, ValueError or TypeError.
_H5_ERRORS = (OSError, KeyError, RuntimeError, ValueError, TypeError)


class ShardError(ZoaError, ValueError):
    """A shard is missing, unreadable, torn or does not follow the schema."""


@dataclass
class Shard:
    """The arrays of one shard, in memory (see the module docstring for the schema)."""

    inputs: np.ndarray
    targets: dict[str, np.ndarray]
    catalog: np.ndarray
    samples: np.ndarray
    observers: np.ndarray
    rotations: np.ndarray
    box_index: np.ndarray
    attrs: dict

    @property
    def n(self) -> int:
        return int(self.inputs.shape[0])

    @property
    def grid(self) -> int:
        return int(self.inputs.shape[1])


def shard_name(index: int) -> str:
    return f"shard-{index:04d}.h5"


def _to_attr(v):
    if isinstance(v, (dict, list, tuple)) and not (isinstance(v, (list, tuple)) and all(
            isinstance(x, (int, float)) for x in v)):
        return json.dumps(v, sort_keys=True)
    return v


def write_shard(path: str | Path, shard: Shard) -> str:
    """Write ``shard`` to ``path`` atomically; return the SHA-256 of its content.

    Datasets are chunked one mock per chunk (what the tf.data reader reads) and written
    without HDF5 timestamps, so equal arrays give equal dataset bytes.
    """
    _check_consistent(shard, str(path))
    with ShardWriter(path, shard.n, shard.grid, shard.attrs) as w:
        for i in range(shard.n):
            w.write(i, shard.inputs[i], {t: shard.targets[t][i] for t in TARGETS}, None,
                    sample=shard.samples[i], observer=shard.observers[i], rotation=shard.rotations[i],
                    box_index=shard.box_index[i])
        w.catalogs.append(np.asarray(shard.catalog))
    return w.sha256


def create_untimed(path, in_memory: bool = False) -> h5py.File:
    """``h5py.File(path, "w", track_order=True)`` without HDF5 object timestamps on the root
    group (datasets and groups are made with ``track_times=False`` too), so that equal
    content and attrs give equal file bytes. ``in_memory``: HDF5's core driver without a
    backing store (nothing touches ``path``; take the bytes with ``f.id.get_file_image()``)."""
    h5p, order = h5py.h5p, h5py.h5p.CRT_ORDER_TRACKED | h5py.h5p.CRT_ORDER_INDEXED
    fcpl = h5p.create(h5p.FILE_CREATE)
    fcpl.set_link_creation_order(order)
    fcpl.set_attr_creation_order(order)
    fcpl.set_obj_track_times(False)
    fapl = h5p.create(h5p.FILE_ACCESS)
    fapl.set_fclose_degree(h5py.h5f.CLOSE_STRONG)
    if in_memory:
        fapl.set_fapl_core(block_size=1 << 20, backing_store=False)
    return h5py.File(h5py.h5f.create(os.fsencode(path), h5py.h5f.ACC_TRUNC, fapl=fapl, fcpl=fcpl))


class ShardWriter:
    """Write a shard mock by mock, atomically (memory: one mock at a time).

    ::

        with ShardWriter(path, n, grid, attrs) as w:
            for i in range(n):
                w.write(i, inputs, {"delta": d, "phi": p, "velocity": v}, catalog,
                        sample=s, observer=o, rotation=R, box_index=b)
        sha = w.sha256

    The file is written under a temporary name and renamed onto ``path`` only when the
    block ends without error and every one of the ``n`` mocks was written; otherwise
    ``path`` is untouched. Same layout, chunks and attrs as :func:`write_shard`.
    """

    def __init__(self, path: str | Path, n: int, grid: int, attrs: Mapping | None = None):
        self.path = Path(path)
        self.n, self.grid = int(n), int(grid)
        self.attrs = dict(attrs or {})
        self.catalogs: list[np.ndarray] = []
        self.sha256: str | None = None
        self._written = np.zeros(self.n, bool)
        self._samples = np.zeros(self.n, np.int64)
        self._observers = np.zeros((self.n, 3), np.float64)
        self._rotations = np.zeros((self.n, 3, 3), np.int8)
        self._box_index = np.zeros(self.n, np.int64)

    def __enter__(self) -> "ShardWriter":
        self._ctx = atomic_path(self.path)
        tmp = self._ctx.__enter__()
        try:
            self._f = create_untimed(tmp)
            n, N, kw = self.n, self.grid, dict(track_times=False, dtype=np.float32)
            self._f.create_dataset("inputs", shape=(n, N, N, N, 2), chunks=(1, N, N, N, 2), **kw)
            gcpl = h5py.h5p.create(h5py.h5p.GROUP_CREATE)
            gcpl.set_obj_track_times(False)
            h5py.h5g.create(self._f.id, b"targets", gcpl=gcpl)
            g = self._f["targets"]
            for name in TARGETS:
                tail = (3,) if name == "velocity" else ()
                g.create_dataset(name, shape=(n, N, N, N) + tail, chunks=(1, N, N, N) + tail, **kw)
        except BaseException:
            self._close_file(quiet=True)
            self._ctx.__exit__(*sys.exc_info())
            raise
        return self

    def write(self, i: int, inputs, targets: Mapping[str, np.ndarray], catalog, *, sample: int,
              observer, rotation, box_index: int) -> None:
        """Store mock ``i`` (0-based within the shard): inputs (N,N,N,2), targets delta,
        phi (N,N,N) and velocity (N,N,N,3), its catalog rows (or None), and its ids."""
        N = self.grid
        if not 0 <= i < self.n:
            raise ShardError(f"{self.path}: mock index {i} outside 0..{self.n - 1}")
        if np.shape(inputs) != (N, N, N, 2):
            raise ShardError(f"{self.path}: inputs of mock {i} have shape {np.shape(inputs)}, expected {(N, N, N, 2)}")
        self._f["inputs"][i] = np.asarray(inputs, np.float32)
        for name in TARGETS:
            want = (N, N, N) + ((3,) if name == "velocity" else ())
            arr = np.asarray(targets[name], np.float32)
            if arr.shape != want:
                raise ShardError(f"{self.path}: targets/{name} of mock {i} has shape {arr.shape}, expected {want}")
            self._f["targets/" + name][i] = arr
        if catalog is not None:
            self.catalogs.append(np.asarray(catalog))
        self._samples[i] = sample
        self._observers[i] = np.asarray(observer, np.float64).reshape(3)
        self._rotations[i] = np.asarray(rotation).reshape(3, 3)
        self._box_index[i] = box_index
        self._written[i] = True

    def _close_file(self, quiet: bool = False):
        """Close the HDF5 file; ``quiet``: the file is being discarded after an error, so a
        failing close (HDF5 flushing onto a full disk) must not hide that error."""
        f, self._f = getattr(self, "_f", None), None
        if f is not None:
            try:
                f.close()
            except Exception:
                if not quiet:
                    raise

    def __exit__(self, et, ev, tb):
        try:
            if et is None:
                if not self._written.all():
                    missing = np.flatnonzero(~self._written)
                    raise ShardError(f"{self.path}: mocks {missing.tolist()[:5]} of {self.n} were never written")
                f, kw = self._f, dict(track_times=False)
                cat = (np.concatenate([c.astype(CATALOG_DTYPE, copy=False) for c in self.catalogs])
                       if self.catalogs else np.zeros(0, CATALOG_DTYPE))
                d = f.create_dataset("catalog", data=cat, **kw)
                d.attrs["units"] = json.dumps({nm: u for nm, _, u in CATALOG_COLUMNS})
                f.create_dataset("samples", data=self._samples, **kw)
                f.create_dataset("observers", data=self._observers, **kw)
                f.create_dataset("rotations", data=self._rotations, **kw)
                f.create_dataset("box_index", data=self._box_index, **kw)
                for name, unit in UNITS.items():
                    f[name].attrs["units"] = unit
                if "grid_position" in self.attrs:  # which distances the inputs are gridded at
                    f["inputs"].attrs["grid_position"] = _to_attr(self.attrs["grid_position"])
                for k, v in self.attrs.items():
                    f.attrs[k] = _to_attr(v)
                f.attrs["schema"] = "zoa-mock-shard/1"
            self._close_file(quiet=et is not None)
        except BaseException:
            self._close_file(quiet=True)
            self._ctx.__exit__(*sys.exc_info())  # removes the temporary; a full disk: OutputError
            raise
        if et is not None:
            self._ctx.__exit__(et, ev, tb)
            return False
        self._ctx.__exit__(None, None, None)
        self.sha256 = content_checksum(self.path)
        return False


def _check_consistent(shard: Shard, where: str):
    n, N = shard.n, shard.grid
    if shard.inputs.shape != (n, N, N, N, 2):
        raise ShardError(f"{where}: inputs must have shape (n, N, N, N, 2), got {shard.inputs.shape}")
    for name, tail in (("delta", ()), ("phi", ()), ("velocity", (3,))):
        if name not in shard.targets:
            raise ShardError(f"{where}: missing target {name!r}")
        if shard.targets[name].shape != (n, N, N, N) + tail:
            raise ShardError(f"{where}: targets/{name} has shape {shard.targets[name].shape}, "
                             f"expected {(n, N, N, N) + tail}")


def content_checksum(path: str | Path) -> str:
    """SHA-256 over every dataset's name, shape, dtype and bytes (not the HDF5 container)."""
    h = hashlib.sha256()
    try:
        with h5py.File(path, "r") as f:
            names = []
            f.visititems(lambda nm, obj: names.append(nm) if isinstance(obj, h5py.Dataset) else None)
            for nm in sorted(names):
                ds = f[nm]
                h.update(f"{nm}|{ds.shape}|{ds.dtype.str}".encode())
                if not ds.ndim:
                    h.update(np.ascontiguousarray(ds[()]).tobytes())
                    continue
                # blocks of rows (~32 MiB): the same bytes, in the same order, as row by row
                row = max(1, ds.dtype.itemsize * int(np.prod(ds.shape[1:], dtype=np.int64)))
                step = max(1, (32 << 20) // row)
                for i in range(0, ds.shape[0], step):
                    h.update(np.ascontiguousarray(ds[i:i + step]).tobytes())
    except _H5_ERRORS as e:
        raise ShardError(f"{path}: cannot read shard ({_first_line(e)})") from None
    return h.hexdigest()


def _first_line(e: BaseException) -> str:
    lines = str(e).strip().splitlines()
    return printable(lines[0] if lines else type(e).__name__, limit=200)


def _dataset(f, key: str, path) -> "h5py.Dataset":
    """``f[key]`` when it is a dataset; ShardError naming it when it is missing or not a dataset."""
    obj = f.get(key)
    if obj is None:
        raise ShardError(f"{path}: missing dataset {key!r}")
    if not isinstance(obj, h5py.Dataset):
        what = "group" if isinstance(obj, h5py.Group) else type(obj).__name__.lower()
        raise ShardError(f"{path}: {key!r} is a {what}, not a dataset")
    return obj


def validate_shard(path: str | Path, grid: int | None = None, targets: Iterable[str] = TARGETS,
                   complete: bool = False) -> dict:
    """Check that ``path`` is a readable shard following the schema; return its attrs.

    Checks ``inputs`` and the ``targets`` (shape, float32), and the index datasets
    (``samples``, ``observers``, ``rotations``, ``box_index``) and ``catalog`` when present;
    ``complete=True`` also requires the index datasets (as :func:`read_shard` does).
    Raises :class:`ShardError` with one line naming the file and what is wrong (missing
    file, not HDF5, truncated or corrupt, missing dataset, wrong kind, shape or dtype).
    """
    path = Path(path)
    if not path.exists():
        raise ShardError(f"{path}: shard not found")
    if path.is_dir():
        raise ShardError(f"{path}: is a folder, not a shard file")
    try:
        f = h5py.File(path, "r")
    except _H5_ERRORS as e:
        raise ShardError(f"{path}: not a readable HDF5 file ({_first_line(e)})") from None
    try:
        with f:
            return _validate_open(f, path, grid, tuple(targets), complete)
    except ShardError:
        raise
    except _H5_ERRORS as e:
        raise ShardError(f"{path}: corrupt HDF5 file ({_first_line(e)})") from None


def _validate_open(f, path: Path, grid, targets, complete: bool) -> dict:
    inputs = _dataset(f, "inputs", path)
    shp = inputs.shape
    if len(shp) != 5 or shp[4] != 2 or not (shp[1] == shp[2] == shp[3]):
        raise ShardError(f"{path}: inputs has shape {shp}, expected (n, N, N, N, 2)")
    n, N = shp[0], shp[1]
    if grid is not None and N != grid:
        raise ShardError(f"{path}: grid is {N}^3 but the profile expects {grid}^3")
    for name in targets:
        key = f"targets/{name}"
        ds = _dataset(f, key, path)
        want = (n, N, N, N) + ((3,) if name == "velocity" else ())
        if ds.shape != want:
            raise ShardError(f"{path}: {key} has shape {ds.shape}, expected {want} (to match inputs {shp})")
    for key in ["inputs"] + [f"targets/{t}" for t in targets]:
        if f[key].dtype != np.float32:
            raise ShardError(f"{path}: {key} has dtype {f[key].dtype}, expected float32")
    for key, (tail, kinds) in INDEX_DATASETS.items():
        if key not in f and not complete:
            continue
        ds = _dataset(f, key, path)
        if ds.shape != (n,) + tail:
            raise ShardError(f"{path}: {key} has shape {ds.shape}, expected {(n,) + tail} (n = {n} mocks in inputs)")
        if ds.dtype.kind not in kinds:
            raise ShardError(f"{path}: {key} has dtype {ds.dtype}, expected "
                             f"{'a float' if kinds == 'f' else 'an integer'} type")
    if "catalog" in f:
        ds = _dataset(f, "catalog", path)
        missing = [c for c in CATALOG_DTYPE.names if c not in (ds.dtype.names or ())]
        if ds.ndim != 1 or missing:
            raise ShardError(f"{path}: catalog has dtype {ds.dtype} and shape {ds.shape}, expected a table (m,) "
                             f"of columns {', '.join(CATALOG_DTYPE.names)}"
                             + (f" (missing {', '.join(missing[:3])}{'…' if len(missing) > 3 else ''})"
                                if ds.dtype.names else ""))
    if n:  # touch the last chunk: a truncated file fails here
        try:
            inputs[n - 1, 0, 0, 0]
        except _H5_ERRORS as e:
            raise ShardError(f"{path}: truncated or corrupt ({_first_line(e)})") from None
    return dict(f.attrs)


def read_shard(path: str | Path, load_catalog: bool = True) -> Shard:
    """Read a whole shard into memory (validated first, index datasets required)."""
    attrs = validate_shard(path, complete=True)
    try:
        with h5py.File(path, "r") as f:
            return Shard(
                inputs=f["inputs"][()],
                targets={t: f[f"targets/{t}"][()] for t in TARGETS if f"targets/{t}" in f},
                catalog=f["catalog"][()] if load_catalog and "catalog" in f else np.zeros(0, CATALOG_DTYPE),
                samples=f["samples"][()],
                observers=f["observers"][()],
                rotations=f["rotations"][()],
                box_index=f["box_index"][()],
                attrs=attrs,
            )
    except _H5_ERRORS as e:
        raise ShardError(f"{path}: truncated or corrupt ({_first_line(e)})") from None


# --------------------------------------------------------------------------- manifest
def mocks_dir(profile) -> Path:
    """Folder of a profile's mock shards."""
    return profile.data_path / "mocks"


def read_manifest(folder: str | Path) -> dict:
    """The manifest of a shard folder (``{"shards": {}}`` when there is none yet).

    Raises :class:`ShardError` naming the file and the key when it is not UTF-8 JSON, not an
    object, ``shards`` is not an object of shard name → row, or a row lacks an integer
    ``start``/``stop`` or has a ``split``/``sha256`` that is not a string or ``n``/``bytes``
    that is not an integer."""
    p = Path(folder) / MANIFEST
    if not p.exists():
        return {"shards": {}}
    try:
        man = json.loads(p.read_bytes().decode("utf-8"))
    except UnicodeDecodeError as e:
        raise ShardError(f"{p}: manifest is not UTF-8 text ({e.reason} at byte {e.start})") from None
    except json.JSONDecodeError as e:
        raise ShardError(f"{p}: manifest is not valid JSON ({e})") from None
    except RecursionError:
        raise ShardError(f"{p}: manifest is not a shard manifest (nested too deeply)") from None
    except OSError as e:
        raise ShardError(f"{p}: cannot read the manifest ({e.strerror or e})") from None
    _check_manifest(man, p)
    return man


def _json_type(v) -> str:
    return {dict: "an object", list: "an array", str: "a string", bool: "a boolean", type(None): "null",
            int: "a number", float: "a number"}.get(type(v), type(v).__name__)


def _check_manifest(man, p: Path) -> None:
    if not isinstance(man, dict):
        raise ShardError(f"{p}: manifest must be a JSON object, got {_json_type(man)}")
    shards = man.setdefault("shards", {})
    if not isinstance(shards, dict):
        raise ShardError(f"{p}: key 'shards' must be an object of shard name -> row, got {_json_type(shards)}")
    for name, row in shards.items():
        where = f"shards.{printable(name, limit=40)}"
        if not isinstance(row, dict):
            raise ShardError(f"{p}: {where}: must be an object, got {_json_type(row)}")
        for key in ("start", "stop"):
            v = row.get(key)
            if key not in row or isinstance(v, bool) or not isinstance(v, int) or v < 0:
                got = "missing" if key not in row else f"got {printable(json.dumps(v), limit=30)}"
                raise ShardError(f"{p}: {where}.{key}: must be a non-negative integer, {got}")
        if row["stop"] < row["start"]:
            raise ShardError(f"{p}: {where}: stop {row['stop']} < start {row['start']}")
        for key, ok, what in (("split", str, "a string"), ("sha256", str, "a string"),
                              ("n", int, "a non-negative integer"), ("bytes", int, "a non-negative integer")):
            if key in row and (not isinstance(row[key], ok) or isinstance(row[key], bool)
                               or (ok is int and row[key] < 0)):
                raise ShardError(f"{p}: {where}.{key}: must be {what}, got "
                                 f"{printable(json.dumps(row[key]), limit=30)}")


def manifest_mismatch(path: str | Path, row: Mapping, verify: str = "checksum") -> str | None:
    """Why the shard file at ``path`` no longer matches its manifest ``row``, or None.

    verify : ``checksum`` — the content SHA-256 (:func:`content_checksum`) against the
        row's ``sha256``; ``quick`` — the file size against the row's ``bytes`` (when listed).
    Raises :class:`ShardError` when the file cannot be read."""
    path = Path(path)
    if verify == "quick":
        if row.get("bytes") not in (None, path.stat().st_size):
            return "file size differs from the manifest"
        return None
    if verify != "checksum":
        raise ShardError(f"{path}: verify must be 'checksum' or 'quick', got {verify!r}")
    if content_checksum(path) != row.get("sha256"):
        return "content checksum differs from the manifest"
    return None


def write_manifest(folder: str | Path, manifest: Mapping) -> Path:
    return write_json_atomic(Path(folder) / MANIFEST, dict(manifest))


@contextlib.contextmanager
def manifest_lock(folder: str | Path):
    """Exclusive lock (:class:`filelock.FileLock` on ``.manifest.lock``) around a
    read-modify-write of the manifest, so that concurrent writers (e.g. a Slurm array of
    ``zoa mocks --shards``) merge their rows instead of overwriting each other's. On a file
    system without ``flock`` (some NFS mounts) filelock falls back to an exclusive lock file."""
    from filelock import FileLock

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    with FileLock(folder / ".manifest.lock"):
        yield


def update_manifest(folder: str | Path, update) -> dict:
    """Under :func:`manifest_lock`, read the manifest, call ``update(manifest)`` (which
    changes it in place) and write it back atomically; return the new manifest."""
    with manifest_lock(folder):
        man = read_manifest(folder)
        man.setdefault("shards", {})
        update(man)
        write_manifest(folder, man)
        return man


def shard_paths(folder: str | Path, split: str | None = None) -> list[Path]:
    """Shard files of a folder listed in its manifest, optionally only one split
    (``train``, ``val``, ``test``), in sample order."""
    folder = Path(folder)
    man = read_manifest(folder)
    rows = sorted(man.get("shards", {}).items(), key=lambda kv: kv[1]["start"])
    return [folder / name for name, row in rows if split is None or row.get("split") == split]
