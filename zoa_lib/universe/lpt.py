"""Lagrangian perturbation theory: the Zel'dovich (1LPT) and second-order (2LPT) displacements of a
linear density field on a periodic mesh, and the second-order growth rate.

Units: positions and displacements in Mpc/h; the density contrast is dimensionless.
"""
from __future__ import annotations

import numpy as np
import scipy.fft as sfft

from zoa_lib.errors import ZoaError
from zoa_lib.universe.fourier import fft_workers, inverse_k_squared, wavevectors


class SimulationError(ZoaError, ValueError):
    """Bad input to the simulation (shapes, sizes): the message names the argument."""



def lpt_components(delta_lin: np.ndarray, size: float, Om0: float, order: int, workers: int):
    """Yield (axis, Ψ₁_a, Ψ₂_a or None) for a = 0, 1, 2 (float32 mesh³), holding at most three
    complex meshes at a time (δ/k², φ⁽²⁾(k) and one transform in flight)."""
    mesh = delta_lin.shape[0]
    shape = (mesh,) * 3
    # dk = δ(k) / k² (k = 0 mode zero), in place: one complex mesh
    dk = sfft.rfftn(delta_lin.astype(np.float32, copy=False), workers=workers)
    inv = inverse_k_squared(mesh, size, np.float32)
    dk *= inv
    kfull = wavevectors(mesh, size, True, np.float32)
    kodd = wavevectors(mesh, size, False, np.float32)
    phi2k = None
    if order == 2:
        def d2(a, b):  # φ⁽¹⁾,ab = IFFT[k_a k_b δ(k) / k²]
            kk = kfull if a == b else kodd
            return sfft.irfftn(dk * (kk[a] * kk[b]), s=shape, workers=workers, overwrite_x=True)

        pxx, pyy = d2(0, 0), d2(1, 1)
        src = pxx * pyy
        pxx += pyy
        del pyy
        pzz = d2(2, 2)
        src += pzz * pxx
        del pxx, pzz
        for a, b in ((0, 1), (0, 2), (1, 2)):
            t = d2(a, b)
            t *= t
            src -= t
            del t
        phi2k = sfft.rfftn(src, workers=workers, overwrite_x=True)
        del src
        phi2k *= -inv  # ∇²φ⁽²⁾ = src
        del inv
        D2 = -3.0 / 7.0 * Om0 ** (-1.0 / 143.0)
    for a in range(3):
        # Ψ₁ = −∇φ⁽¹⁾, φ⁽¹⁾(k) = −δ/k²  →  Ψ₁(k) = i k δ / k²
        psi1 = sfft.irfftn(dk * (1j * kodd[a]), s=shape, workers=workers, overwrite_x=True)
        psi2 = None
        if phi2k is not None:
            psi2 = sfft.irfftn(phi2k * (1j * D2 * kodd[a]), s=shape, workers=workers, overwrite_x=True)
        yield a, psi1.astype(np.float32, copy=False), (None if psi2 is None else psi2.astype(np.float32, copy=False))


def lpt_displacements(delta_lin: np.ndarray, size: float, Om0: float, order: int = 2,
                      workers: int | None = None):
    """First- and second-order displacement fields (Ψ₁, Ψ₂), each (M, M, M, 3) float32 in
    Mpc/h on the Lagrangian lattice (Ψ₂ is None for ``order=1``). For tests and small meshes;
    :func:`~zoa_lib.universe.simulation.make_parent_box` streams them component by component."""
    delta_lin = np.asarray(delta_lin)
    if delta_lin.ndim != 3 or len(set(delta_lin.shape)) != 1:
        raise SimulationError(f"lpt_displacements: delta_lin must be (M, M, M), got {delta_lin.shape}")
    if order not in (1, 2):
        raise SimulationError(f"lpt_displacements: order must be 1 or 2, got {order}")
    psi1 = np.empty(delta_lin.shape + (3,), np.float32)
    psi2 = np.empty(delta_lin.shape + (3,), np.float32) if order == 2 else None
    for a, p1, p2 in lpt_components(delta_lin, float(size), Om0, order, fft_workers(workers)):
        psi1[..., a] = p1
        if psi2 is not None:
            psi2[..., a] = p2
    return psi1, psi2


def second_order_growth_rate(Om0: float) -> float:
    """f₂ ≈ 2 Ωm^(6/11) (Bouchet et al. 1995)."""
    return 2.0 * Om0 ** (6.0 / 11.0)
