"""HDF5 mock shards: the schema of ../shared/DESIGN.md, atomic writes, validation, manifest.

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
split and provenance (:func:`zoa_lib.io.provenance`); each dataset has a ``units``
attr. A shard is written to a temporary file and renamed when complete
(:func:`zoa_lib.io.atomic_path`), so it is complete or absent. The manifest
``manifest.json`` lists every shard, its split, sample range and SHA-256 checksum of
its datasets' bytes (content-only, independent of HDF5 timestamps).
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Mapping

import h5py
import numpy as np

from .errors import ZoaError
from .io import atomic_path, write_json_atomic

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
    with atomic_path(path) as tmp:
        with h5py.File(tmp, "w", track_order=True) as f:
            n, N = shard.n, shard.grid
            kw = dict(track_times=False)
            f.create_dataset("inputs", data=shard.inputs.astype(np.float32, copy=False),
                             chunks=(1, N, N, N, 2), **kw)
            g = f.create_group("targets")
            for name in TARGETS:
                arr = shard.targets[name].astype(np.float32, copy=False)
                g.create_dataset(name, data=arr, chunks=(1,) + arr.shape[1:], **kw)
            cat = np.asarray(shard.catalog).astype(CATALOG_DTYPE, copy=False)
            d = f.create_dataset("catalog", data=cat, **kw)
            d.attrs["units"] = json.dumps({nm: u for nm, _, u in CATALOG_COLUMNS})
            f.create_dataset("samples", data=np.asarray(shard.samples, np.int64), **kw)
            f.create_dataset("observers", data=np.asarray(shard.observers, np.float64), **kw)
            f.create_dataset("rotations", data=np.asarray(shard.rotations, np.int8), **kw)
            f.create_dataset("box_index", data=np.asarray(shard.box_index, np.int64), **kw)
            for name, unit in UNITS.items():
                f[name].attrs["units"] = unit
            for k, v in shard.attrs.items():
                f.attrs[k] = _to_attr(v)
            f.attrs["schema"] = "zoa-mock-shard/1"
    return content_checksum(path)


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
                for i in range(ds.shape[0] if ds.ndim else 1):
                    h.update(np.ascontiguousarray(ds[i] if ds.ndim else ds[()]).tobytes())
    except (OSError, KeyError, ValueError) as e:
        raise ShardError(f"{path}: cannot read shard ({e})") from None
    return h.hexdigest()


def validate_shard(path: str | Path, grid: int | None = None, targets: Iterable[str] = TARGETS) -> dict:
    """Check that ``path`` is a readable shard following the schema; return its attrs.

    Raises :class:`ShardError` with one line naming the file and what is wrong
    (missing file, not HDF5, truncated, missing dataset, wrong shape or dtype).
    """
    path = Path(path)
    if not path.exists():
        raise ShardError(f"{path}: shard not found")
    try:
        f = h5py.File(path, "r")
    except OSError as e:
        raise ShardError(f"{path}: not a readable HDF5 file ({str(e).splitlines()[0]})") from None
    with f:
        if "inputs" not in f:
            raise ShardError(f"{path}: missing dataset 'inputs'")
        shp = f["inputs"].shape
        if len(shp) != 5 or shp[4] != 2 or not (shp[1] == shp[2] == shp[3]):
            raise ShardError(f"{path}: inputs has shape {shp}, expected (n, N, N, N, 2)")
        n, N = shp[0], shp[1]
        if grid is not None and N != grid:
            raise ShardError(f"{path}: grid is {N}^3 but the profile expects {grid}^3")
        for name in targets:
            key = f"targets/{name}"
            if key not in f:
                raise ShardError(f"{path}: missing dataset {key!r}")
            want = (n, N, N, N) + ((3,) if name == "velocity" else ())
            if f[key].shape != want:
                raise ShardError(f"{path}: {key} has shape {f[key].shape}, expected {want}")
        for key in ["inputs"] + [f"targets/{t}" for t in targets]:
            if f[key].dtype != np.float32:
                raise ShardError(f"{path}: {key} has dtype {f[key].dtype}, expected float32")
        try:  # touch the last chunk: a truncated file fails here
            f["inputs"][n - 1, 0, 0, 0] if n else None
        except (OSError, ValueError) as e:
            raise ShardError(f"{path}: truncated or corrupt ({str(e).splitlines()[0]})") from None
        return dict(f.attrs)


def read_shard(path: str | Path, load_catalog: bool = True) -> Shard:
    """Read a whole shard into memory (validated first)."""
    attrs = validate_shard(path)
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


# --------------------------------------------------------------------------- manifest
def mocks_dir(profile) -> Path:
    """Folder of a profile's mock shards."""
    return profile.data_path / "mocks"


def read_manifest(folder: str | Path) -> dict:
    """The manifest of a shard folder ({} when there is none yet)."""
    p = Path(folder) / MANIFEST
    if not p.exists():
        return {"shards": {}}
    try:
        return json.loads(p.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ShardError(f"{p}: manifest is not valid JSON ({e})") from None


def write_manifest(folder: str | Path, manifest: Mapping) -> Path:
    return write_json_atomic(Path(folder) / MANIFEST, dict(manifest))


def shard_paths(folder: str | Path, split: str | None = None) -> list[Path]:
    """Shard files of a folder listed in its manifest, optionally only one split
    (``train``, ``val``, ``test``), in sample order."""
    folder = Path(folder)
    man = read_manifest(folder)
    rows = sorted(man.get("shards", {}).items(), key=lambda kv: kv[1]["start"])
    return [folder / name for name, row in rows if split is None or row.get("split") == split]
