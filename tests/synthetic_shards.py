"""Tiny synthetic mock shards (schema of zoa_lib.survey.shards) for the training tests.

Not physics: smooth Gaussian random fields standing in for δ; N_gal is Poisson with mean
∝ 1 + δ, V_pec a smooth field where galaxies are, φ a smoother field in (km/s)², so that the
targets are learnable functions of the inputs. Written with :func:`zoa_lib.survey.shards.write_shard`
and listed in a manifest like ``zoa mocks`` does.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
from scipy import ndimage

from zoa_lib.survey import shards


def make_shard(grid: int, n: int, seed: int, start: int = 0) -> shards.Shard:
    rng = np.random.default_rng(seed)
    shape = (n, grid, grid, grid)
    g = ndimage.gaussian_filter(rng.normal(size=shape), sigma=(0, 1.5, 1.5, 1.5), mode="wrap")
    g /= g.std()
    delta = np.maximum(0.5 * g, -0.9).astype(np.float32)
    n_gal = rng.poisson(1.5 * (1.0 + delta)).astype(np.float32)
    v = ndimage.gaussian_filter(g, sigma=(0, 2, 2, 2), mode="wrap")
    v_pec = np.where(n_gal > 0, 400.0 * v / v.std(), 0.0).astype(np.float32)
    phi = ndimage.gaussian_filter(g, sigma=(0, 3, 3, 3), mode="wrap")
    phi = (-3e5 * phi / phi.std()).astype(np.float32)
    vel = rng.normal(0, 300, shape + (3,)).astype(np.float32)
    return shards.Shard(
        inputs=np.stack([n_gal, v_pec], axis=-1),
        targets={"delta": delta, "phi": phi, "velocity": vel},
        catalog=np.zeros(0, shards.CATALOG_DTYPE),
        samples=np.arange(start, start + n, dtype=np.int64),
        observers=np.zeros((n, 3)),
        rotations=np.tile(np.eye(3, dtype=np.int8), (n, 1, 1)),
        box_index=np.zeros(n, np.int64),
        attrs={"grid": grid, "box_size": 160.0},
    )


def write_mocks(folder: str | Path, grid: int = 16, splits=(("train", 2, 4), ("val", 1, 2), ("test", 1, 2)),
                seed: int = 0) -> dict[str, list[Path]]:
    """Write shards for each (split, n_shards, mocks per shard) and a manifest; return the
    paths per split."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    man = {"shards": {}}
    out: dict[str, list[Path]] = {}
    start, k = 0, 0
    for split, n_shards, per in splits:
        for _ in range(n_shards):
            name = shards.shard_name(k)
            sha = shards.write_shard(folder / name, make_shard(grid, per, seed + k, start))
            man["shards"][name] = {"split": split, "start": start, "stop": start + per, "n": per, "sha256": sha}
            out.setdefault(split, []).append(folder / name)
            start += per
            k += 1
    shards.write_manifest(folder, man)
    return out
