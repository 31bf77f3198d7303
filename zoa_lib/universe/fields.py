"""Target fields on periodic meshes and on observer cubes: density, potential, velocity.

Conventions (DESIGN.md): positions in Mpc/h, wavenumbers in h/Mpc, velocities in km/s,
the potential φ in (km/s)², H0 = 100 km/s per Mpc/h, a = 1 (z = 0).

Spectral operators act on a periodic cube of side ``size`` (Mpc/h) sampled on a
``mesh``³ grid with real-to-complex FFTs (:func:`scipy.fft.rfftn`, ``workers`` threads).
The Fourier convention is the numpy one, δ_k = Σ_x δ(x) e^{−i k·x}, with
k = 2π n / size. For first derivatives (odd in k) the Nyquist component of the wave
vector is set to zero, so that real fields stay real; second derivatives and k² use
the full wave vector. The Fourier grid itself (wave vectors, k², 1/k², the Gaussian
kernel, half-spectrum weights) is :mod:`zoa_lib.universe.fourier`; cloud-in-cell deposits are
:mod:`zoa_lib.universe.mass_assignment`.

Linear theory at a = 1 (the paper's eqs.; Peebles 1980)::

    ∇²φ  = (3/2) Ωm H0² δ                 →  φ(k) = −(3/2) Ωm H0² δ(k) / k²   [(km/s)²]
    v(k) = i f H0 δ(k) k / k²                                                   [km/s]
    v    = −(2 f / (3 H0 Ωm)) ∇φ

Targets of one observer cube (:func:`cube_targets`) are sampled from the parent box's
fields, computed once per parent box and cached on it (:func:`parent_fields`):

* δ: cloud-in-cell density contrast of the particles on the parent mesh, smoothed with
  a Gaussian of σ = ``profile.box.smoothing`` Mpc/h (spectral kernel exp(−k²σ²/2));
  no CIC deconvolution (it would amplify shot noise).
* φ: spectral Poisson solution of the smoothed δ on the periodic parent box, k = 0
  mode zero (φ has zero mean over the parent box).
* velocity (``profile.simulation.velocity``):

  - ``"particles"`` (default): the true, mass-weighted particle velocity. Momentum
    p = Σ m v and mass m are deposited with CIC and each is smoothed with the same
    *real-space, positive* Gaussian kernel (``scipy.ndimage.gaussian_filter``, periodic,
    truncated at 4σ); then v = (G∗p + ε ρ̄ v_lin) / (G∗m + ε ρ̄), ε = 10⁻³. Where
    there is mass this is a mass-weighted mean of nearby particle velocities (a convex
    combination, so it never exceeds them); nodes with no particle within the kernel
    (voids, or parent cells wider than σ) get the linear-theory velocity v_lin of the
    smoothed density. A spectral kernel is not used here because, when σ is below the
    mesh spacing, its truncation at the Nyquist frequency gives negative lobes that
    make the ratio G∗p / G∗m blow up where G∗m is near zero.
  - ``"linear"``: v = v_lin = −(2f / 3H0Ωm) ∇φ of the smoothed density, i.e. the
    velocity the network implies from the φ it predicts.

* Cube sampling: voxel i of the N³ cube is centred at x_i = −L/2 + (i + ½) L/N; parent
  mesh node (i, j, k) sits at (i, j, k) · size/mesh. The field at SG point x of a cube
  with observer o and rotation R is the parent field at o + Rᵀx (periodic), by trilinear
  interpolation between parent nodes (the same numbers as
  ``scipy.ndimage.map_coordinates(order=1, mode='grid-wrap')``, computed axis by axis
  on the tensor grid the voxel centres form in parent axes, :func:`sample_parent`);
  vectors are rotated, v_SG = R v_parent.

Training transforms (invertible, documented, kept with the fields):

* :func:`delta_to_target` ``"log1p"``: t = ln max(1 + δ, ``DELTA_FLOOR``), inverse
  δ = eᵗ − 1 (exact for 1 + δ ≥ ``DELTA_FLOOR`` = 10⁻²; smoothed densities below
  that are set to the floor). ``"identity"``: t = δ.
* :func:`phi_to_target`: t = (φ − ⟨φ⟩_cube) / s (``training.phi_zero_mean``, the default;
  the cube's constant is not observable) with s = :func:`phi_target_scale` (profile): the
  linear-theory rms σ_φ of the smoothed potential in the parent box,
  σ_φ² = (1/V) Σ_k P(k) [(3/2) Ωm H0² / k²]² e^{−k²σ²} over the parent box's modes
  (``training.phi_transform: standardize``), or s = 1 (``identity``).
"""
from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import scipy.fft as sfft

from zoa_lib.errors import ZoaError
from zoa_lib.universe.cosmology import H0
from zoa_lib.universe.fourier import (
    fft_workers,
    gaussian_kernel_k,
    half_spectrum_weights,
    inverse_k_squared,
    k_squared,
    wavevectors,
)
from zoa_lib.universe.grid import check_cube, voxel_centres
from zoa_lib.universe.mass_assignment import cic_deposit, cic_deposit_many

if TYPE_CHECKING:  # pragma: no cover
    from zoa_lib.universe.simulation import ObserverCube, ParentBox

#: Floor of 1 + δ in the log transform of the density target.
DELTA_FLOOR = 1e-2
#: Mass floor ε (in units of the mean mass per node) of the velocity fill, see module doc.
VELOCITY_MASS_FLOOR = 1e-3


class FieldError(ZoaError, ValueError):
    """A field operation got an array of the wrong shape or an impossible parameter."""


def _real_dtype(a: np.ndarray):
    return np.float64 if a.dtype == np.float64 else np.float32


# --------------------------------------------------------------------------- operators
def density_contrast(mass_mesh: np.ndarray) -> np.ndarray:
    """δ = m / m̄ − 1 (float32) from a mass (or count) mesh, m̄ its mean (computed in float64).

    The mean of 1 + δ is 1 by construction."""
    m = np.asarray(mass_mesh)
    mean = float(np.mean(m, dtype=np.float64))
    if not mean > 0:
        raise FieldError(f"density_contrast: mean mass per cell must be > 0, got {mean}")
    out = np.asarray(m, dtype=np.float64) / mean
    out -= 1.0
    return out.astype(np.float32)


def gaussian_smooth(field: np.ndarray, size: float, sigma: float, workers: int | None = None) -> np.ndarray:
    """Convolve a periodic field (N, N, N) or (N, N, N, 3) with a Gaussian of σ = ``sigma``
    Mpc/h, spectrally: f(k) ← f(k) exp(−k²σ²/2). Keeps the dtype (float32 or float64)."""
    vector = np.ndim(field) == 4
    field = check_cube(field, "gaussian_smooth", vector=vector, floating=True, error=FieldError)
    if sigma < 0:
        raise FieldError(f"gaussian_smooth: sigma must be >= 0 Mpc/h, got {sigma}")
    if vector:
        return np.stack([gaussian_smooth(field[..., a], size, sigma, workers) for a in range(3)], axis=-1)
    dt = _real_dtype(field)
    if sigma == 0:
        return field.astype(dt, copy=True)
    w = fft_workers(workers)
    fk = sfft.rfftn(field.astype(dt, copy=False), workers=w)
    fk *= gaussian_kernel_k(field.shape[0], size, sigma, dt)
    return sfft.irfftn(fk, s=field.shape, workers=w, overwrite_x=True).astype(dt, copy=False)


def potential_from_delta(delta: np.ndarray, size: float, cosmo, workers: int | None = None) -> np.ndarray:
    """Peculiar potential φ in (km/s)² from Poisson's equation ∇²φ = (3/2) Ωm H0² δ on a
    periodic box of side ``size`` Mpc/h: φ(k) = −(3/2) Ωm H0² δ(k) / k², φ(k=0) = 0.

    ``cosmo`` is a :class:`zoa_lib.universe.cosmology.Cosmology` (uses ``poisson_factor``).
    Keeps the dtype of ``delta`` (float32 or float64)."""
    delta = check_cube(delta, "potential_from_delta", floating=True, error=FieldError)
    dt = _real_dtype(delta)
    w = fft_workers(workers)
    dk = sfft.rfftn(delta.astype(dt, copy=False), workers=w)
    dk *= (-cosmo.poisson_factor * inverse_k_squared(delta.shape[0], size, dt)).astype(dt, copy=False)
    return sfft.irfftn(dk, s=delta.shape, workers=w, overwrite_x=True).astype(dt, copy=False)


def _velocity_from_delta_k(dk: np.ndarray, mesh: int, size: float, f: float, dt, workers: int,
                           out: np.ndarray, axis_last: bool) -> np.ndarray:
    """v_a(k) = i f H0 k_a δ(k) / k², written to out[..., a] or out[a]."""
    kvec = wavevectors(mesh, size, nyquist=False, dtype=dt)
    inv = inverse_k_squared(mesh, size, dt)
    for a in range(3):
        mult = (f * H0) * kvec[a] * inv
        comp = sfft.irfftn(dk * (1j * mult), s=(mesh,) * 3, workers=workers, overwrite_x=True)
        if axis_last:
            out[..., a] = comp
        else:
            out[a] = comp
    return out


def velocity_from_delta_linear(delta: np.ndarray, size: float, cosmo, workers: int | None = None) -> np.ndarray:
    """Linear-theory peculiar velocity v(k) = i f H0 δ(k) k / k² in km/s, shape (N, N, N, 3),
    components along the array axes; f = ``cosmo.growth_rate``. Its divergence is
    ∇·v = −f H0 δ (k = 0 and Nyquist components excluded)."""
    delta = check_cube(delta, "velocity_from_delta_linear", floating=True, error=FieldError)
    dt = _real_dtype(delta)
    w = fft_workers(workers)
    n = delta.shape[0]
    dk = sfft.rfftn(delta.astype(dt, copy=False), workers=w)
    out = np.empty(delta.shape + (3,), dtype=dt)
    return _velocity_from_delta_k(dk, n, size, float(cosmo.growth_rate), dt, w, out, axis_last=True)


# --------------------------------------------------------------------------- training transforms
def delta_to_target(delta: np.ndarray, kind: str = "log1p", floor: float = DELTA_FLOOR) -> np.ndarray:
    """Network target of the density: ``"log1p"`` t = ln max(1 + δ, floor); ``"identity"`` t = δ.
    Inverse: :func:`target_to_delta`."""
    delta = np.asarray(delta)
    if kind == "identity":
        return delta.astype(np.float32, copy=True)
    if kind != "log1p":
        raise FieldError(f"delta_to_target: unknown kind {kind!r} (log1p, identity)")
    return np.log(np.maximum(1.0 + delta.astype(np.float64), floor)).astype(np.float32)


def target_to_delta(target: np.ndarray, kind: str = "log1p") -> np.ndarray:
    """Inverse of :func:`delta_to_target`: ``"log1p"`` δ = eᵗ − 1; ``"identity"`` δ = t."""
    target = np.asarray(target)
    if kind == "identity":
        return target.astype(np.float32, copy=True)
    if kind != "log1p":
        raise FieldError(f"target_to_delta: unknown kind {kind!r} (log1p, identity)")
    return np.expm1(target.astype(np.float64)).astype(np.float32)


def phi_to_target(phi: np.ndarray, scale: float, zero_mean: bool = False) -> np.ndarray:
    """Network target of the potential: t = (φ − ⟨φ⟩) / scale (scale in (km/s)², e.g.
    :func:`phi_target_scale`), where ⟨φ⟩ is each cube's mean over its last three axes when
    ``zero_mean`` and 0 otherwise.

    The constant of φ over an observer cube is not observable from velocities (v ∝ −∇φ): in
    a cube cut from a larger box it is set by the parent box's zero point (mass far outside
    the cube), so as a target it is pure noise to the network; removing it leaves what the
    data can constrain. Inverse (up to that constant): :func:`target_to_phi`."""
    if not scale > 0:
        raise FieldError(f"phi_to_target: scale must be > 0 (km/s)^2, got {scale}")
    phi = np.asarray(phi, dtype=np.float64)
    if zero_mean:
        if phi.ndim < 3:
            raise FieldError(f"phi_to_target: zero_mean needs a cube (..., N, N, N), got shape {phi.shape}")
        phi = phi - phi.mean(axis=(-3, -2, -1), keepdims=True)
    return (phi / scale).astype(np.float32)


def target_to_phi(target: np.ndarray, scale: float) -> np.ndarray:
    """Inverse of :func:`phi_to_target`: φ = t · scale in (km/s)²."""
    if not scale > 0:
        raise FieldError(f"target_to_phi: scale must be > 0 (km/s)^2, got {scale}")
    return (np.asarray(target, dtype=np.float64) * scale).astype(np.float32)


@functools.lru_cache(maxsize=16)
def _phi_sigma(cosmo, size: float, mesh: int, smoothing: float) -> float:
    k2 = k_squared(mesh, size)
    pk = cosmo.power_spectrum(np.sqrt(k2))
    inv = inverse_k_squared(mesh, size)
    term = pk * (cosmo.poisson_factor * inv) ** 2 * np.exp(-k2 * smoothing ** 2)
    return float(np.sqrt(np.sum(term * half_spectrum_weights(mesh)) / size ** 3))


def phi_sigma_linear(cosmo, size: float, mesh: int, smoothing: float) -> float:
    """Linear-theory rms of the smoothed potential in a periodic box, (km/s)²:
    σ_φ² = (1/V) Σ_{k≠0} P(k) [(3/2) Ωm H0² / k²]² exp(−k²σ²) over the box's modes up
    to the Nyquist frequency of ``min(mesh, 64)`` (φ's power falls as P(k)/k⁴, so higher
    modes add less than 10⁻³)."""
    return _phi_sigma(cosmo, float(size), int(min(mesh, 64)), float(smoothing))


def phi_target_scale(profile) -> float:
    """The scale s of :func:`phi_to_target` for a profile: σ_φ of the parent box from
    linear theory (``training.phi_transform: standardize``), or 1 (``identity``)."""
    if profile.training.phi_transform == "identity":
        return 1.0
    from zoa_lib.universe.cosmology import from_profile

    return phi_sigma_linear(from_profile(profile), profile.simulation.parent_size,
                            profile.simulation.parent_mesh, profile.box.smoothing)


# --------------------------------------------------------------------------- parent box fields
@dataclass(eq=False)
class ParentFields:
    """Smoothed target fields on a parent box's periodic mesh (parent axes).

    delta : (M, M, M) float32 density contrast; phi : (M, M, M) float32, (km/s)²;
    velocity : (3, M, M, M) float32 km/s (component first, for fast sampling);
    node (i, j, k) at (i, j, k) · size / M Mpc/h."""

    size: float
    mesh: int
    smoothing: float
    velocity_method: str
    delta: np.ndarray
    phi: np.ndarray
    velocity: np.ndarray

    @property
    def nbytes(self) -> int:
        return self.delta.nbytes + self.phi.nbytes + self.velocity.nbytes


def compute_parent_fields(box: "ParentBox", cosmo, smoothing: float, velocity: str = "particles",
                          workers: int | None = None) -> ParentFields:
    """δ, φ and v on the parent mesh (see the module docstring for the method)."""
    from scipy import ndimage

    if velocity not in ("particles", "linear"):
        raise FieldError(f"simulation.velocity: unknown method {velocity!r} (particles, linear)")
    L, M = float(box.size), int(box.mesh)
    w = fft_workers(workers)
    shape = (M, M, M)
    mbar = len(box.positions) / M ** 3
    if velocity == "particles":
        cols = [None] + [box.velocities[:, a] for a in range(3)]
        # 1 + δ (unsmoothed), then the momentum per mean particle mass (km/s)
        rho, *moms = cic_deposit_many(box.positions, L, M, cols, dtype=np.float32)
        for m in (rho, *moms):
            m /= np.float32(mbar)
    else:
        rho = (cic_deposit(box.positions, L, M) / mbar).astype(np.float32)
    dk = sfft.rfftn(rho, workers=w)
    dk[0, 0, 0] = 0.0  # δ = ρ/ρ̄ − 1 has zero mean exactly
    if velocity == "linear":
        del rho
    dk *= gaussian_kernel_k(M, L, smoothing, np.float32)
    delta_s = sfft.irfftn(dk, s=shape, workers=w)
    phi = sfft.irfftn(dk * (-cosmo.poisson_factor * inverse_k_squared(M, L, np.float32)), s=shape,
                      workers=w, overwrite_x=True)
    vel = np.empty((3,) + shape, dtype=np.float32)
    _velocity_from_delta_k(dk, M, L, float(cosmo.growth_rate), np.float32, w, vel, axis_last=False)
    del dk
    if velocity == "particles":
        sig_cells = smoothing * M / L

        def smooth(x):
            return ndimage.gaussian_filter(x, sig_cells, mode="wrap", truncate=4.0) if sig_cells > 0 else x

        eps = VELOCITY_MASS_FLOOR
        denom = smooth(rho)
        del rho
        np.maximum(denom, 0.0, out=denom)
        denom += eps
        for a in range(3):
            mom = smooth(moms[a])
            moms[a] = None
            vel[a] *= eps
            vel[a] += mom
            vel[a] /= denom
            del mom
        del denom
    return ParentFields(size=L, mesh=M, smoothing=float(smoothing), velocity_method=velocity,
                        delta=delta_s.astype(np.float32, copy=False), phi=phi.astype(np.float32, copy=False),
                        velocity=vel)


def parent_fields(profile, box: "ParentBox", workers: int | None = None) -> ParentFields:
    """The parent box's smoothed fields for this profile, computed once and cached on the
    box (one set at a time: a new smoothing or method replaces the old set)."""
    from zoa_lib.universe.cosmology import from_profile

    cosmo = from_profile(profile)
    key = (float(profile.box.smoothing), profile.simulation.velocity, cosmo)
    cache = box._cache
    if cache.get("fields_key") != key:
        cache.pop("fields", None)
        cache["fields"] = compute_parent_fields(box, cosmo, profile.box.smoothing,
                                                profile.simulation.velocity, workers)
        cache["fields_key"] = key
    return cache["fields"]


# --------------------------------------------------------------------------- cube targets
@dataclass
class Targets:
    """Targets of one observer cube on its N³ grid (axes SGX, SGY, SGZ; observer at the centre).

    delta : (N,N,N) float32 density contrast, smoothed with a Gaussian of ``profile.box.smoothing``;
    phi : (N,N,N) float32 peculiar potential, (km/s)², from ∇²φ = (3/2) Ωm H0² δ;
    velocity : (N,N,N,3) float32 peculiar velocity, km/s, SG components."""

    delta: np.ndarray
    phi: np.ndarray
    velocity: np.ndarray

    @property
    def density(self) -> np.ndarray:
        """ρ/ρ̄ = 1 + δ."""
        return (1.0 + self.delta).astype(np.float32)


def _axis_stencil(origin: float, x: np.ndarray, mesh: int, h: float):
    """Linear-interpolation stencil along one axis for points origin + x (Mpc/h) on a periodic
    line of ``mesh`` nodes spaced h: (nodes needed, local index of left and right node, weight
    of the right node)."""
    u = (origin + x) / h
    i0 = np.floor(u)
    w1 = (u - i0).astype(np.float32)
    i0 = np.mod(i0.astype(np.int64), mesh)
    i1 = i0 + 1
    i1[i1 == mesh] = 0
    nodes = np.unique(np.concatenate([i0, i1]))
    return nodes, np.searchsorted(nodes, i0), np.searchsorted(nodes, i1), w1


def _trilinear_block(field: np.ndarray, stencils) -> np.ndarray:
    """Trilinear interpolation of a periodic field on the tensor grid of the three stencils
    (identical to ``map_coordinates(order=1, mode='grid-wrap')`` there), axis by axis."""
    sub = field[np.ix_(*(st[0] for st in stencils))]
    for axis, (_, l0, l1, w1) in enumerate(stencils):
        a = np.take(sub, l0, axis=axis)
        b = np.take(sub, l1, axis=axis)
        shape = [1, 1, 1]
        shape[axis] = -1
        b -= a
        b *= w1.reshape(shape)
        a += b
        sub = a
    return sub


def sample_parent(fields: ParentFields, observer, rotation, size: float, grid: int):
    """Sample parent fields on an observer cube: (delta, phi, velocity (N,N,N,3) SG axes).

    The cube voxel centres x (SG axes) sit at parent points o + Rᵀx. Because R is a signed
    permutation and the voxel grid is symmetric about the observer, these points form the
    axis-aligned tensor grid o + (x_i, x_j, x_k) in parent axes: the fields are trilinearly
    interpolated on that grid (periodic), then the block is transposed and flipped into SG
    axes and the velocity components rotated, v_SG = R v."""
    R = np.asarray(rotation)
    perm = np.argmax(np.abs(R), axis=1)
    sign = R[np.arange(3), perm]
    x = voxel_centres(size, grid)
    obs = np.mod(np.asarray(observer, dtype=np.float64).reshape(3), fields.size)
    h = fields.size / fields.mesh
    stencils = [_axis_stencil(obs[a], x, fields.mesh, h) for a in range(3)]

    def orient(block):  # parent-axis block -> SG axes: T[I] = B[J], J_perm[b] = ±I_b
        t = np.transpose(block, perm)
        flips = tuple(b for b in range(3) if sign[b] < 0)
        return np.ascontiguousarray(np.flip(t, flips) if flips else t, dtype=np.float32)

    delta = orient(_trilinear_block(fields.delta, stencils))
    phi = orient(_trilinear_block(fields.phi, stencils))
    vpar = [orient(_trilinear_block(fields.velocity[c], stencils)) for c in range(3)]
    vel = np.empty((grid,) * 3 + (3,), np.float32)
    for b in range(3):
        np.multiply(vpar[perm[b]], np.float32(sign[b]), out=vel[..., b])
    return delta, phi, vel


def cube_targets(profile, box: "ParentBox", cube: "ObserverCube", workers: int | None = None) -> Targets:
    """δ, φ and v of an observer cube on the profile's ``box.grid``³ mesh, sampled from the
    parent box's cached fields (module docstring); ``workers``: FFT threads when those
    fields are computed (:func:`zoa_lib.universe.fourier.fft_workers`)."""
    fields = parent_fields(profile, box, workers)
    d, p, v = sample_parent(fields, cube.observer, cube.rotation, cube.size, profile.box.grid)
    return Targets(delta=d, phi=p, velocity=v)
