"""Velocity math on observer-centred cubes: v from φ and from δ, radial velocities, bulk flows.

Conventions (docs/DESIGN.md): a cube field has array axes (SGX, SGY, SGZ); voxel i
of N has its centre at x_i = −L/2 + (i + ½) L/N (Mpc/h), the observer at the origin = the
cube centre; velocities are (N, N, N, 3) arrays (v_SGX, v_SGY, v_SGZ) in km/s; φ in (km/s)²;
H0 = 100 km/s per Mpc/h. Linear theory at a = 1::

    v(k) = i f H0 δ(k) k / k²                     (velocity from density)
    ∇²φ = (3/2) Ωm H0² δ                          (Poisson)
    v   = −(2 f / (3 H0 Ωm)) ∇φ                   (velocity from potential)
    δ   = −∇·v / (f H0)                           (continuity)

Derivatives come in two flavours:

* ``"spectral"``: exact for a periodic cube (a parent simulation box). The odd-derivative
  kernel i k has its Nyquist component set to 0 (the Nyquist mode of a real field has no
  defined sign), so the gradient of a real field is real.
* ``"finite_difference"``: second-order central differences (``numpy.gradient``, second
  order one-sided at the faces) for the non-periodic observer cubes; a spectral derivative
  there would see the jump between opposite faces.

``velocity_from_density`` on a non-periodic cube uses zero padding (``pad=2``): the cube is
embedded in a cube twice as large, so the density of one face does not pull the opposite
face. Mass outside the cube is unknown to it either way (the bulk flow it induces is lost).

The k-grid, the Poisson solve and the periodic linear velocity are those of
:mod:`zoa_lib.universe.fields` (one implementation); this module adds padding, finite differences
and the observer's view.
"""
from __future__ import annotations

import functools

import numpy as np
import scipy.fft as sfft

from zoa_lib.errors import ZoaError
from zoa_lib.universe import fields, fourier
from zoa_lib.universe.cosmology import H0
from zoa_lib.universe.grid import check_cube, voxel_centres


class VelocityError(ZoaError, ValueError):
    """A field given to the velocity functions has the wrong shape or an unknown method."""


METHODS = ("spectral", "finite_difference")


# --------------------------------------------------------------------------- grid geometry
def position_grid(n: int, size: float) -> np.ndarray:
    """(N, N, N, 3) observer-centred voxel-centre positions (SGX, SGY, SGZ) in Mpc/h."""
    x = voxel_centres(size, n)
    return np.stack(np.meshgrid(x, x, x, indexing="ij"), axis=-1)


def radius_grid(n: int, size: float) -> np.ndarray:
    """(N, N, N) distance of each voxel centre from the observer, Mpc/h."""
    x = voxel_centres(size, n)
    return np.sqrt(x[:, None, None] ** 2 + x[None, :, None] ** 2 + x[None, None, :] ** 2)


def unit_radial_grid(n: int, size: float) -> np.ndarray:
    """(N, N, N, 3) unit vector r̂ from the observer to each voxel centre (0 at r = 0)."""
    pos = position_grid(n, size)
    r = np.linalg.norm(pos, axis=-1, keepdims=True)
    return np.divide(pos, r, out=np.zeros_like(pos), where=r > 0)


# --------------------------------------------------------------------------- derivatives
def spectral_gradient(field, size: float) -> np.ndarray:
    """∇field of a periodic cube by FFT: (N, N, N) → (N, N, N, 3), units of field per Mpc/h."""
    f = check_cube(field, error=VelocityError)
    n = f.shape[0]
    w = fourier.fft_workers()
    fk = sfft.rfftn(np.asarray(f, dtype=float), workers=w)
    ks = fourier.wavevectors(n, size, nyquist=False)
    return np.stack([sfft.irfftn(1j * k * fk, s=f.shape, workers=w) for k in ks], axis=-1)


def _fd_gradient(field, size):
    n = field.shape[0]
    return np.stack(np.gradient(field, size / n, edge_order=2), axis=-1)


def gradient(field, size: float, method: str = "finite_difference") -> np.ndarray:
    """∇field (N, N, N) → (N, N, N, 3) by ``method`` (see the module docstring)."""
    f = check_cube(field, error=VelocityError)
    if method == "spectral":
        return spectral_gradient(f, size)
    if method == "finite_difference":
        return _fd_gradient(np.asarray(f, dtype=float), size)
    raise VelocityError(f"method: unknown derivative method {method!r} (known: {', '.join(METHODS)})")


def divergence(vector, size: float, method: str = "finite_difference") -> np.ndarray:
    """∇·v of an (N, N, N, 3) field, units of v per Mpc/h."""
    v = check_cube(vector, "vector", vector=True, error=VelocityError)
    n = v.shape[0]
    if method == "spectral":
        w = fourier.fft_workers()
        ks = fourier.wavevectors(n, size, nyquist=False)
        div_k = sum(1j * k * sfft.rfftn(np.asarray(v[..., a], dtype=float), workers=w)
                    for a, k in enumerate(ks))
        return sfft.irfftn(div_k, s=v.shape[:3], workers=w)
    if method == "finite_difference":
        d = size / n
        return sum(np.gradient(np.asarray(v[..., a], dtype=float), d, axis=a, edge_order=2)
                   for a in range(3))
    raise VelocityError(f"method: unknown derivative method {method!r} (known: {', '.join(METHODS)})")


# --------------------------------------------------------------------------- linear theory
def velocity_from_potential(phi, size: float, cosmo, method: str = "spectral") -> np.ndarray:
    """Peculiar velocity from the peculiar potential, v = −(2f / (3 H0 Ωm)) ∇φ.

    Parameters
    ----------
    phi : (N, N, N) potential in (km/s)².
    size : cube side L in Mpc/h.
    cosmo : :class:`zoa_lib.universe.cosmology.Cosmology` (f, Ωm).
    method : ``"spectral"`` for a periodic cube, ``"finite_difference"`` for an observer cube.

    Returns
    -------
    (N, N, N, 3) velocity in km/s.
    """
    return -cosmo.velocity_from_potential_factor * gradient(phi, size, method)


def velocities_from_potentials(phi, size: float, cosmo, method: str = "finite_difference") -> np.ndarray:
    """:func:`velocity_from_potential` of a stack of potentials (n, N, N, N) in (km/s)²:
    (n, N, N, N, 3) km/s, float32 (finite differences by default: observer cubes)."""
    phi = np.asarray(phi)
    if phi.ndim != 4:
        raise VelocityError(f"velocities_from_potentials: expected a stack (n, N, N, N), got shape {phi.shape}")
    return np.stack([velocity_from_potential(p, size, cosmo, method) for p in phi]).astype(np.float32)


def density_from_potential(phi, size: float, cosmo, method: str = "finite_difference") -> np.ndarray:
    """δ = ∇²φ / ((3/2) Ωm H0²) (Poisson), with ∇² = ∇·∇ of the chosen derivative."""
    return divergence(gradient(phi, size, method), size, method) / cosmo.poisson_factor


def density_from_velocity(velocity, size: float, cosmo, method: str = "finite_difference") -> np.ndarray:
    """Linear continuity, δ = −∇·v / (f H0), v in km/s."""
    return -divergence(velocity, size, method) / (cosmo.growth_rate * H0)


def _pad(field, pad: int) -> np.ndarray:
    """float64 copy of a cube embedded at the corner of a zero cube ``pad`` times larger."""
    if int(pad) != pad or pad < 1:
        raise VelocityError(f"pad: must be an integer >= 1, got {pad}")
    n = field.shape[0]
    m = int(pad) * n
    out = np.zeros((m, m, m) + field.shape[3:], dtype=float)
    out[:n, :n, :n] = field
    return out


def velocity_from_density(delta, size: float, cosmo, pad: int = 1) -> np.ndarray:
    """Linear-theory velocity v(k) = i f H0 δ(k) k / k² (km/s, float64) of a density cube.

    ``pad = 1`` treats the cube as periodic (a simulation box:
    :func:`zoa_lib.universe.fields.velocity_from_delta_linear`); ``pad = 2`` first embeds the cube in
    zeros of twice its side (an observer cube: no wrap-around; mass outside the cube taken
    at the mean density). The k = 0 mode (a uniform δ) moves nothing.
    """
    d = check_cube(delta, "delta", error=VelocityError)
    n = d.shape[0]
    big = _pad(d, pad)
    v = fields.velocity_from_delta_linear(big, size * big.shape[0] / n, cosmo)
    return v[:n, :n, :n]


def potential_from_density(delta, size: float, cosmo, pad: int = 1) -> np.ndarray:
    """Poisson, φ(k) = −(3/2) Ωm H0² δ(k) / k² in (km/s)² (float64), by
    :func:`zoa_lib.universe.fields.potential_from_delta`; ``pad`` as in :func:`velocity_from_density`
    (φ has zero mean over the padded box)."""
    d = check_cube(delta, "delta", error=VelocityError)
    n = d.shape[0]
    big = _pad(d, pad)
    return fields.potential_from_delta(big, size * big.shape[0] / n, cosmo)[:n, :n, :n]


# --------------------------------------------------------------------------- observer quantities
def radial_velocity(velocity, size: float) -> np.ndarray:
    """Radial component v·r̂ (km/s) at each voxel centre seen from the observer at the cube
    centre; 0 at r = 0."""
    v = check_cube(velocity, "velocity", vector=True, error=VelocityError)
    return np.einsum("...a,...a->...", v, unit_radial_grid(v.shape[0], size))


def sphere_weights(n: int, size: float, radius: float, subsample: int = 4) -> np.ndarray:
    """Fraction of each voxel's volume inside the sphere r < ``radius`` (Mpc/h) about the
    observer, estimated on a ``subsample``³ sub-grid of the voxels cut by the sphere
    (``subsample = 1``: 1 for voxel centres inside, else 0). Read-only: the weights of a
    grid and radius are computed once per process (the evaluation asks for them thousands
    of times)."""
    if radius <= 0:
        raise VelocityError(f"radius: must be > 0 Mpc/h, got {radius}")
    return _sphere_weights(int(n), float(size), float(radius), int(subsample))


@functools.lru_cache(maxsize=64)
def _sphere_weights(n: int, size: float, radius: float, subsample: int) -> np.ndarray:
    r = radius_grid(n, size)
    d = size / n
    if subsample <= 1:
        w = (r < radius).astype(float)
        w.setflags(write=False)
        return w
    half_diag = 0.5 * np.sqrt(3.0) * d
    w = (r + half_diag <= radius).astype(float)
    cut = np.argwhere((r + half_diag > radius) & (r - half_diag < radius))
    if len(cut):
        off = (np.arange(subsample) + 0.5) / subsample - 0.5
        sub = np.stack(np.meshgrid(off, off, off, indexing="ij"), -1).reshape(-1, 3) * d
        x = voxel_centres(size, n)
        centres = x[cut]  # (m, 3)
        pts = centres[:, None, :] + sub[None, :, :]
        w[tuple(cut.T)] = np.mean(np.sum(pts ** 2, axis=-1) < radius ** 2, axis=1)
    w.setflags(write=False)
    return w


def bulk_flow(velocity, size: float, radius: float, subsample: int = 4) -> np.ndarray:
    """Bulk flow B(R): the volume-weighted mean velocity (km/s, 3-vector) in the sphere of
    radius R (Mpc/h) about the observer,

        B(R) = Σ_i w_i v_i / Σ_i w_i,

    w_i the fraction of voxel i inside the sphere (:func:`sphere_weights`, sub-voxel
    sampling of the voxels the sphere cuts). Compare with the ΛCDM expectation
    ``Cosmology.sigma_bulk_flow(R)`` and ``Cosmology.bulk_flow_range(R)``."""
    v = check_cube(velocity, "velocity", vector=True, error=VelocityError)
    w = sphere_weights(v.shape[0], size, radius, subsample)
    total = w.sum()
    if total <= 0:
        raise VelocityError(f"radius: {radius} Mpc/h contains no voxel of the {v.shape[0]}^3 grid")
    return np.einsum("ijk,ijka->a", w, v) / total


def bulk_flow_profile(velocity, size: float, radii, subsample: int = 4) -> np.ndarray:
    """B(R) for each radius in ``radii`` (Mpc/h): array (len(radii), 3) in km/s."""
    return np.array([bulk_flow(velocity, size, R, subsample) for R in np.atleast_1d(radii)])
