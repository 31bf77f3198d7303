"""The observer-centred cube grid: voxel-centre coordinates and the one check that an array
is a field on it. A leaf module (numpy only), shared by fields, velocity, metrics, baselines
and the plots.

Convention (DESIGN.md): a cube of side L (Mpc/h) with N voxels a side, the observer at its
centre; voxel i of an axis has its centre at x_i = −L/2 + (i + ½) L/N, so N even puts no
voxel centre on the observer.
"""
from __future__ import annotations

import numpy as np

from zoa_lib.errors import ZoaError


def voxel_centres(size: float, grid: int) -> np.ndarray:
    """Voxel-centre coordinates x_i = −L/2 + (i + ½) L/N (Mpc/h), i = 0..N−1, for a cube of
    side ``size`` = L Mpc/h and ``grid`` = N voxels a side."""
    return -size / 2.0 + (np.arange(grid) + 0.5) * (size / grid)


def check_cube(a, name: str = "field", *, vector: bool | None = False, stacked: bool = False,
               floating: bool = False, error: type[ZoaError] = ZoaError) -> np.ndarray:
    """``a`` as an array, after checking that it is a field on a cube of N ≥ 1 voxels a side:
    (N, N, N) for a scalar field, (N, N, N, 3) for a vector field (``vector=True``), either
    one (``vector=None``).

    ``stacked``: a stack (n, N, N, N[, 3]) of such fields is accepted too, and the result
    always has the stack axis (a single field becomes n = 1). ``floating``: an integer or
    boolean array is converted to float64 (floating arrays keep their dtype). Otherwise the
    array is returned as given. A wrong shape raises ``error`` (the caller's
    :class:`~zoa_lib.errors.ZoaError` subclass) naming ``name`` and the shape."""
    a = np.asarray(a)
    given = a.shape
    kinds = {False: (3,), True: (4,), None: (3, 4)}[vector]
    if stacked and a.ndim in kinds:
        a = a[None]
    cube = a.shape[1:] if stacked else a.shape
    if not (len(cube) in kinds and len(set(cube[:3])) == 1 and cube[0] > 0 and (len(cube) == 3 or cube[3] == 3)):
        want = {False: "(N, N, N)", True: "(N, N, N, 3)", None: "(N, N, N) or (N, N, N, 3)"}[vector]
        more = " or a stack of them" if stacked else ""
        raise error(f"{name}: expected a cubic array of shape {want}{more}, got shape {given}")
    if floating and not np.issubdtype(a.dtype, np.floating):
        a = a.astype(np.float64)
    return a
