"""The Fourier grid of a periodic cube: wave vectors, k², 1/k², the Gaussian kernel, the
weights of the rfft half spectrum and the Nyquist modes. A leaf module (numpy only).

Conventions (DESIGN.md): a periodic cube of side ``size`` (Mpc/h) sampled on a ``mesh``³
grid, transformed with a real-to-complex FFT (``rfftn``, the last axis halved to
mesh//2 + 1 entries); wavenumbers k = 2π n / size in h/Mpc with n the numpy FFT
frequencies (:func:`numpy.fft.fftfreq`, :func:`numpy.fft.rfftfreq`).

Nyquist modes (even meshes): the entry n = mesh/2 of an axis stands for both ±k_Nyq.

* For first derivatives (odd in k) the Nyquist *component* of the wave vector is set to
  0 (:func:`wavevectors` with ``nyquist=False``), so that real fields stay real.
* :func:`nyquist_mask` / :func:`zero_nyquist` drop the whole Nyquist *planes* (every mode
  with a Nyquist component), for fields that must be band limited below k_Nyq.

Half-spectrum weights: a sum over all modes of a Hermitian quantity, Σ_k g(k), equals
Σ over the rfft half of w(k_z) g(k) with w = 1 on the planes k_z = 0 and k_z = Nyquist
(their own partners) and 2 elsewhere (:func:`half_spectrum_weights`).
"""
from __future__ import annotations

import functools
import os

import numpy as np


def fft_workers(workers: int | None = None) -> int:
    """Threads for scipy.fft: ``workers`` if given, else $ZOA_FFT_WORKERS, else all cores."""
    if workers is not None:
        return int(workers)
    env = os.environ.get("ZOA_FFT_WORKERS")
    return int(env) if env else (os.cpu_count() or 1)


@functools.lru_cache(maxsize=32)
def _k1d(mesh: int, size: float, nyquist: bool, half: bool) -> np.ndarray:
    n = np.fft.rfftfreq(mesh, d=1.0 / mesh) if half else np.fft.fftfreq(mesh, d=1.0 / mesh)
    k = 2.0 * np.pi / size * n
    if not nyquist and mesh % 2 == 0:
        k = k.copy()
        k[np.abs(n) == mesh // 2] = 0.0
    k.setflags(write=False)
    return k


def axis_wavenumbers(mesh: int, size: float, half: bool = False, nyquist: bool = True) -> np.ndarray:
    """Wavenumbers k = 2π n / size (h/Mpc) along one axis of an rfftn grid: the full axis
    (mesh,) in numpy FFT order, or the halved last axis (mesh//2 + 1,) with ``half``.
    ``nyquist=False`` sets the Nyquist entry to 0. Read-only (cached)."""
    return _k1d(int(mesh), float(size), bool(nyquist), bool(half))


def wavevectors(mesh: int, size: float, nyquist: bool = True, dtype=np.float64):
    """The wave-vector components (kx, ky, kz) in h/Mpc of an ``rfftn`` of a mesh³ field,
    shaped (mesh, 1, 1), (1, mesh, 1), (1, 1, mesh//2 + 1) for broadcasting.
    ``nyquist=False`` sets the Nyquist entries to zero (for first-derivative operators)."""
    kx = _k1d(mesh, float(size), nyquist, False).astype(dtype)[:, None, None]
    ky = _k1d(mesh, float(size), nyquist, False).astype(dtype)[None, :, None]
    kz = _k1d(mesh, float(size), nyquist, True).astype(dtype)[None, None, :]
    return kx, ky, kz


def k_squared(mesh: int, size: float, dtype=np.float64) -> np.ndarray:
    """|k|² in (h/Mpc)² on the rfftn grid, shape (mesh, mesh, mesh//2 + 1)."""
    kx, ky, kz = wavevectors(mesh, size, True, dtype)
    return kx * kx + ky * ky + kz * kz


def inverse_k_squared(mesh: int, size: float, dtype=np.float64) -> np.ndarray:
    """1 / |k|² in (Mpc/h)² on the rfftn grid with the k = 0 entry set to 0."""
    k2 = k_squared(mesh, size, dtype)
    k2[0, 0, 0] = 1.0
    inv = np.reciprocal(k2, out=k2)
    inv[0, 0, 0] = 0.0
    return inv


def gaussian_kernel_k(mesh: int, size: float, sigma: float, dtype=np.float64) -> np.ndarray:
    """exp(−k²σ²/2) on the rfftn grid (the Fourier transform of a unit-mass Gaussian of
    σ = ``sigma`` Mpc/h)."""
    k2 = k_squared(mesh, size, dtype)
    k2 *= -0.5 * sigma * sigma
    return np.exp(k2, out=k2)


def rfftn_padded(y: np.ndarray, mesh: int, workers: int | None = None) -> np.ndarray:
    """``rfftn`` of the (n, n, n) field ``y`` zero-padded into the corner of a mesh³ grid
    (mesh ≥ n), without transforming the zero lines: the last axis on n² lines, the middle on
    n·(mesh//2+1), the first on all. Equal to ``scipy.fft.rfftn`` of the padded array to
    round-off, in about 0.6 of its time. Shape (mesh, mesh, mesh//2 + 1)."""
    import scipy.fft as sfft

    w = fft_workers(workers)
    a = sfft.rfft(y, n=mesh, axis=2, workers=w)
    a = sfft.fft(a, n=mesh, axis=1, overwrite_x=True, workers=w)
    return sfft.fft(a, n=mesh, axis=0, overwrite_x=True, workers=w)


def irfftn_corner(yk: np.ndarray, n: int, workers: int | None = None) -> np.ndarray:
    """``irfftn(yk)[:n, :n, :n]`` of a half spectrum ``yk`` (mesh, mesh, mesh//2 + 1) of an
    even mesh, transforming only the lines that reach the (n, n, n) corner: the inverse of
    :func:`rfftn_padded` restricted to the cube. Equal to the full transform's corner to
    round-off, in about 0.6 of its time."""
    import scipy.fft as sfft

    w = fft_workers(workers)
    mesh = yk.shape[0]
    a = sfft.ifft(yk, axis=0, workers=w)[:n]
    a = sfft.ifft(a, axis=1, overwrite_x=True, workers=w)[:, :n]
    return sfft.irfft(a, n=mesh, axis=2, workers=w)[:, :, :n]


def half_spectrum_weights(mesh: int) -> np.ndarray:
    """Weights (mesh//2 + 1,) along the halved rfft axis that turn a sum over the rfft half
    into the sum over all modes of a Hermitian quantity: 1 for k_z = 0 and, for even
    ``mesh``, for the Nyquist plane k_z = k_Nyq (each its own partner); 2 elsewhere (the
    plane stands for itself and its conjugate −k_z)."""
    mesh = int(mesh)
    if mesh < 1:
        raise ValueError(f"half_spectrum_weights: mesh must be >= 1, got {mesh}")
    w = np.full(mesh // 2 + 1, 2.0)
    w[0] = 1.0
    if mesh % 2 == 0:
        w[-1] = 1.0
    return w


def zero_nyquist(a: np.ndarray) -> np.ndarray:
    """Set, in place, every mode with a Nyquist component (the planes n_a = mesh/2 of each
    axis) of an rfftn-shaped array (mesh, mesh, mesh//2 + 1) to 0; nothing for odd meshes.
    Returns ``a``."""
    mesh = a.shape[0]
    if a.shape[:3] != (mesh, mesh, mesh // 2 + 1):
        raise ValueError(f"zero_nyquist: expected an rfftn array (M, M, M//2+1), got {a.shape}")
    if mesh % 2 == 0:
        h = mesh // 2
        a[h] = 0.0
        a[:, h] = 0.0
        a[:, :, h] = 0.0
    return a


def nyquist_mask(mesh: int) -> np.ndarray:
    """1 on the rfftn grid (mesh, mesh, mesh//2 + 1), float64, with every mode that has a
    Nyquist component set to 0 (:func:`zero_nyquist`)."""
    return zero_nyquist(np.ones((mesh, mesh, mesh // 2 + 1)))
