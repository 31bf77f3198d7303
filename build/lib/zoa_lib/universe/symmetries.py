"""The 48 symmetries of the cube about its centre: the one table that places observers in
parent boxes (:mod:`zoa_lib.universe.simulation`) and augments training mocks
(:mod:`zoa_lib.methods.training`).

A symmetry is a signed permutation matrix R (3×3, entries 0, ±1; row k has its ±1 in
column ``perm[k]``, negative when ``flips[k]``), so (R v)_k = ±v_perm[k]. The table
lists the 24 proper rotations (det R = +1) first, index 0 being the identity, then the 24
improper ones (a rotation times a reflection, det R = −1); within each half, the order of
``itertools.permutations`` × ``itertools.product((no flip, flip), repeat=3)``. The order is
fixed: mocks store the index of the rotation that placed them, and training draws indices.

A scalar field on the cube transforms as f'(x) = f(Rᵀx) (x relative to the cube centre),
which :func:`rotate_cube` does with an axis transpose and flips, exactly.
"""
from __future__ import annotations

import itertools

import numpy as np

from zoa_lib.errors import ZoaError


class SymmetryError(ZoaError, ValueError):
    """A bad symmetry count or index."""


def _perm_sign(perm) -> int:
    """+1 for an even permutation of (0, 1, 2, …), −1 for an odd one (inversion count)."""
    p = list(perm)
    inversions = sum(p[i] > p[j] for i in range(len(p)) for j in range(i + 1, len(p)))
    return -1 if inversions % 2 else 1


def _make_symmetries() -> tuple:
    proper, improper = [], []
    for perm in itertools.permutations(range(3)):
        for flips in itertools.product((False, True), repeat=3):
            det = _perm_sign(perm) * (-1) ** sum(flips)
            (proper if det > 0 else improper).append((tuple(perm), tuple(flips)))
    return tuple(proper + improper)


#: The 48 symmetries of the cube as (axis permutation, flips): the 24 proper rotations first
#: (index 0 = identity), then the 24 with a reflection. See :func:`rotate_cube`.
CUBE_SYMMETRIES = _make_symmetries()

_MATRICES = np.zeros((48, 3, 3), np.int8)
for _i, (_perm, _flips) in enumerate(CUBE_SYMMETRIES):
    for _k in range(3):
        _MATRICES[_i, _k, _perm[_k]] = -1 if _flips[_k] else 1
_MATRICES.setflags(write=False)
del _i, _perm, _flips, _k


def symmetry_matrix(index: int) -> np.ndarray:
    """The 3×3 signed permutation R (int8) of symmetry ``index`` (0 … 47): :func:`rotate_cube`
    maps a scalar field f to f'(x) = f(Rᵀx) (x relative to the observer at the cube centre)."""
    if not 0 <= int(index) < 48:
        raise SymmetryError(f"symmetry index must be in 0..47, got {index}")
    return _MATRICES[int(index)].copy()


def cube_rotations(n: int = 24) -> np.ndarray:
    """The first ``n`` symmetries as (n, 3, 3) int8 signed permutation matrices: n = 24 the
    proper rotations (det +1), n = 48 all of them (proper first), n = 1 the identity."""
    if int(n) not in (1, 24, 48):
        raise SymmetryError(f"cube_rotations: n must be 1, 24 or 48, got {n}")
    return _MATRICES[:int(n)].copy()


def rotate_cube(a, index: int) -> np.ndarray:
    """Apply cube symmetry ``index`` to a scalar field (N, N, N, …) whose first three axes are
    the cube's (trailing axes, e.g. channels of scalars, are carried along):
    out[i] = a[j] with the voxel centres related by x_j = Rᵀ x_i. A view when possible."""
    if index == 0:
        return np.asarray(a)
    perm, flips = CUBE_SYMMETRIES[index]
    a = np.asarray(a)
    out = np.transpose(a, tuple(perm) + tuple(range(3, a.ndim)))
    axes = tuple(k for k in range(3) if flips[k])
    return np.flip(out, axes) if axes else out
