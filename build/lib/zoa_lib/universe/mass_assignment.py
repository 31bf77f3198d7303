"""Mass assignment: particles onto a periodic mesh with the cloud-in-cell (CIC) kernel.
A leaf module (numpy only).

Node (i, j, k) of a ``mesh``³ grid on a periodic cube of side ``size`` (Mpc/h) sits at
(i, j, k) · size/mesh; a particle at x gives node n the weight
Π_a max(0, 1 − |x_a/Δ − n_a|) (periodic), Δ = size/mesh (Hockney & Eastwood 1988).
"""
from __future__ import annotations

import itertools
from typing import Sequence

import numpy as np

from zoa_lib.errors import ZoaError


class MassAssignmentError(ZoaError, ValueError):
    """Bad input to a mass assignment (shapes, sizes): the message names the argument."""


def cic_deposit(positions: np.ndarray, size: float, mesh: int, weights: np.ndarray | None = None,
                chunk: int | None = None) -> np.ndarray:
    """Cloud-in-cell assignment on a periodic mesh: (mesh, mesh, mesh) float64 sum of
    ``weights`` (default 1 per particle: particle counts, i.e. mass in particle masses).

    Node (i, j, k) sits at (i, j, k) · size/mesh; a particle at x gives node n the weight
    Π_a max(0, 1 − |x_a/Δ − n_a|) (periodic), Δ = size/mesh. The weights of each
    particle sum to 1, so the total is conserved; a lattice on the nodes (or on the cell
    centres) deposits a uniform mesh exactly. See :func:`cic_deposit_many`."""
    return cic_deposit_many(positions, size, mesh, [weights], chunk)[0]


def cic_deposit_many(positions: np.ndarray, size: float, mesh: int, weights: Sequence[np.ndarray | None],
                     chunk: int | None = None, dtype=np.float64) -> list[np.ndarray]:
    """:func:`cic_deposit` of several weight columns (``None`` = 1) sharing the geometry:
    one (mesh, mesh, mesh) mesh per entry of ``weights``, accumulated in float64 and
    returned as ``dtype``.

    Particles are processed in chunks (default 2²¹); each chunk is scattered with
    ``np.add.at`` onto a (mesh+1)³ mesh whose last planes are folded back periodically."""
    pos = np.asarray(positions)
    if pos.ndim != 2 or pos.shape[1] != 3:
        raise MassAssignmentError(f"cic_deposit: positions must be (n, 3), got {pos.shape}")
    n = len(pos)
    cols = []
    for w in weights:
        if w is not None:
            w = np.asarray(w)
            if w.shape != (n,):
                raise MassAssignmentError(f"cic_deposit: weights must be ({n},), got {w.shape}")
        cols.append(w)
    M = int(mesh)
    if M < 1 or not size > 0:
        raise MassAssignmentError(f"cic_deposit: need mesh >= 1 and size > 0, got mesh={mesh}, size={size}")
    P = M + 1
    dx = float(size) / M
    outs = [np.zeros(P ** 3, np.float64) for _ in cols]
    chunk = int(chunk or (1 << 21))
    for s in range(0, n, chunk):
        u = pos[s:s + chunk].astype(np.float64)
        u /= dx
        i0 = np.floor(u)
        f1 = u
        f1 -= i0
        f0 = 1.0 - f1
        i0 = np.mod(i0.astype(np.int64), M)
        base = i0[:, 0] * P
        base += i0[:, 1]
        base *= P
        base += i0[:, 2]
        del i0
        ws = [None if w is None else w[s:s + chunk].astype(np.float64) for w in cols]
        wxy = {(a, b): (f1[:, 0] if a else f0[:, 0]) * (f1[:, 1] if b else f0[:, 1])
               for a in (0, 1) for b in (0, 1)}
        for a, b, d in itertools.product((0, 1), repeat=3):
            g = wxy[a, b] * (f1[:, 2] if d else f0[:, 2])
            idx = base + ((a * P + b) * P + d)
            for out, w in zip(outs, ws):
                np.add.at(out, idx, g if w is None else g * w)
        del u, f0, f1, base, wxy, ws
    res = []
    while outs:  # fold the padding planes back, freeing each padded mesh as we go
        o = outs.pop(0).reshape(P, P, P)
        o[0] += o[M]
        o[:M, 0] += o[:M, M]
        o[:M, :M, 0] += o[:M, :M, M]
        res.append(np.array(o[:M, :M, :M], dtype=dtype, order="C"))
        del o
    return res
