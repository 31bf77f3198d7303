"""Constrained Gaussian random fields (Hoffman & Ribak 1991), generic: any points, any
periodic box, any power spectrum; the local universe (:mod:`zoa_lib.analysis.local_universe`)
is one use.

Constraints are linear functionals of the linear density contrast at z = 0 smoothed
with a Gaussian of σ = R_s = ``smoothing`` Mpc/h (for the local universe
``local_universe.constraint_smoothing``), at points x_i: the smoothed value and, for a *peak* constraint (van de Weygaert & Bertschinger
1996), its gradient, set to 0, and its Hessian, set to its mean given the value
(−σ₁²/(3σ_s²) c δ_ab in the continuum; computed exactly on the mesh), so that the
structure is a maximum (c > 0) or a minimum (c < 0) of typical shape there::

    c_n[δ] = ∂^α (W_s ∗ δ)(x_i) = (1/M³) Σ_k (ik)^α W_s(k) δ_k e^{i k·x_i},
    W_s(k) = e^{−k²R_s²/2},  |α| = 0 (value), 1 (gradient), 2 (Hessian)

the Fourier (band-limited) interpolation of the smoothed mesh field, so x_i need not
be a mesh node; at a node the value is the FFT-smoothed field there. The sum runs over
the modes without a Nyquist component (W_s is set to 0 on the Nyquist planes, where
e^{i k·x} is not defined for a real field off the nodes; their weight is
e^{−(π R_s/Δ)²/2} ≤ 3·10⁻⁹ for R_s ≥ 2Δ, Δ = L/M, and 0.007 at the ci profile's
R_s = Δ = 5 Mpc/h). With P_k = ⟨|δ_k|²⟩/M³ the variance of each mode of
:func:`zoa_lib.universe.simulation.gaussian_field` (:func:`zoa_lib.universe.simulation.mode_variance`)
and ξ_WW(s) = (1/M³) Σ_k P_k W_s² e^{i k·s}, exactly for the discrete field::

    ξ_n(x) = ⟨δ(x) c_n⟩ = (1/M³) Σ_k P_k W_s(k) (−ik)^α_n e^{i k·(x − x_n)}
    C_nn'  = ⟨c_n c_n'⟩ = (−1)^|α_n'| ∂^(α_n + α_n') ξ_WW(x_n − x_n')

A constrained realization is an unconstrained one, δ̃ (same P(k)), plus the
correction that moves its constraint values c̃ onto the imposed ones c::

    δ = δ̃ + Σ_nn' ξ_n(x) (C⁻¹)_nn' (c_n' − c̃_n')

Its ensemble mean is the mean field ⟨δ | c⟩ = Σ ξ_n (C⁻¹)_nn' c_n' (:func:`mean_field`),
its covariance that of δ̃ minus Σ ξ_n (C⁻¹)_nn' ξ_n': far from the constraints it is an
ordinary Gaussian field of spectrum P(k). Modes where W_s < e^{−40} are left out of
the sums (:data:`TAIL`; a relative change below 10⁻¹⁷).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.fft as sfft

from zoa_lib.errors import ZoaError
from zoa_lib.universe.fourier import (
    axis_wavenumbers,
    fft_workers,
    gaussian_kernel_k,
    half_spectrum_weights,
    inverse_k_squared,
    nyquist_mask,
    zero_nyquist,
)


class ConstraintError(ZoaError, ValueError):
    """Bad constraint set: positions, values, kind or smoothing (the message says which)."""


#: Derivative multi-indices (∂x, ∂y, ∂z orders) of the constraints at one point: the
#: smoothed value, the three components of its gradient, the six of its Hessian.
VALUE = (0, 0, 0)
GRADIENT = ((1, 0, 0), (0, 1, 0), (0, 0, 1))
HESSIAN = ((2, 0, 0), (0, 2, 0), (0, 0, 2), (1, 1, 0), (1, 0, 1), (0, 1, 1))
#: What is imposed at each point: ``value`` the smoothed δ only; ``extremum`` also a zero
#: gradient; ``peak`` also the Hessian, at its mean given the value (module docstring).
CONSTRAINT_KINDS = {"value": (VALUE,), "extremum": (VALUE,) + GRADIENT, "peak": (VALUE,) + GRADIENT + HESSIAN}


def constraint_kernel(mesh: int, size: float, smoothing: float) -> np.ndarray:
    """W_s(k) = exp(−k²R_s²/2) on the rfftn grid with the Nyquist planes set to 0
    (module docstring)."""
    if not smoothing > 0:
        raise ConstraintError(f"constraint smoothing must be > 0 Mpc/h, got {smoothing}")
    return zero_nyquist(gaussian_kernel_k(mesh, size, smoothing))


#: Modes with W_s(k) < e^{−TAIL} (≈ 4·10⁻¹⁸) are left out of the constraint sums.
TAIL = 40.0


def _band(mesh: int, size: float, kmax: float | None):
    """Indices and wavenumbers of the rfftn axes with |k_a| ≤ kmax (all when None)."""
    kf, kh = axis_wavenumbers(mesh, size), axis_wavenumbers(mesh, size, half=True)
    if kmax is None:
        return np.arange(mesh), kf, np.arange(mesh // 2 + 1), kh
    i = np.flatnonzero(np.abs(kf) <= kmax)
    j = np.flatnonzero(kh <= kmax)
    return i, kf[i], j, kh[j]


def fourier_derivatives(field_k: np.ndarray, points, size: float, alphas=(VALUE,),
                        kmax: float | None = None) -> np.ndarray:
    """Band-limited interpolation of a real mesh³ field and its derivatives at any points.

    For the rfftn ``field_k`` = F of a real field on a periodic box of side ``size`` Mpc/h,
    returns V[p, n] = ∂^α T(x_p), α = ``alphas[n]`` (orders along SGX/x, y, z), with
    T(x) = (1/M³) Σ_k F_k e^{i k·x} summed over all modes (F Hermitian; give F without
    Nyquist modes for an interpolation that is exact at the nodes and defined between
    them): ∂^α multiplies F_k by (i k)^α. Points (p, 3) in Mpc/h, box coordinates.
    ``kmax`` (h/Mpc): sum only the modes with every |k_a| ≤ kmax (F must vanish beyond).
    The mode sum is factorised axis by axis (z, then y, then x) and done with numpy's own
    loops (no BLAS), so the result does not depend on thread counts."""
    F = np.asarray(field_k)
    mesh = F.shape[0]
    if F.ndim != 3 or F.shape != (mesh, mesh, mesh // 2 + 1):
        raise ConstraintError(f"fourier_derivatives: expected an rfftn array (M, M, M//2+1), got {F.shape}")
    pts = np.atleast_2d(np.asarray(points, float))
    i, kf, j, kh = _band(mesh, size, kmax)
    if kmax is not None:
        F = F[np.ix_(i, i, j)]
    hz = half_spectrum_weights(mesh)[j]  # the rfft half holds one of each pair ±k
    ez = np.exp(1j * np.outer(kh, pts[:, 2])) * hz[:, None]   # (Mh, p)
    ey = np.exp(1j * np.outer(kf, pts[:, 1]))                 # (M, p)
    ex = np.exp(1j * np.outer(kf, pts[:, 0]))
    tz, ty = {}, {}
    out = np.empty((len(pts), len(alphas)))
    for n, (ax, ay, az) in enumerate(alphas):
        if az not in tz:
            tz[az] = np.einsum("ijk,kp->ijp", F, ez * ((1j * kh) ** az)[:, None])
        if (az, ay) not in ty:
            ty[az, ay] = np.einsum("ijp,jp->ip", tz[az], ey * ((1j * kf) ** ay)[:, None])
        out[:, n] = np.einsum("ip,ip->p", ty[az, ay], ex * ((1j * kf) ** ax)[:, None]).real / mesh ** 3
    return out


@dataclass
class ConstraintSystem:
    """Linear constraints c_n = ∂^α_n (W_s ∗ δ)(x_n) for a cosmology, box and smoothing.

    positions : (m, 3) constraint points (box coordinates, Mpc/h); alphas : derivative
    multi-indices imposed at every point (:data:`CONSTRAINT_KINDS`); constraint
    n = i·len(alphas) + a is (point i, alphas[a]). ``pw`` = P_k W_s(k) on the rfftn grid,
    ``C`` the (n, n) covariance ⟨c_n c_n'⟩, σ_s the rms of the smoothed field; sums run
    over |k_a| ≤ ``kmax`` = √(2·TAIL)/R_s, beyond which W_s < e^{−TAIL}."""

    size: float
    mesh: int
    smoothing: float
    positions: np.ndarray
    alphas: tuple
    pw: np.ndarray
    kernel: np.ndarray
    C: np.ndarray
    sigma_s: float
    kmax: float | None = None

    def measure(self, delta: np.ndarray) -> np.ndarray:
        """c_n[δ] of a mesh³ array, shape (m, len(alphas))."""
        dk = sfft.rfftn(np.asarray(delta, np.float64), workers=fft_workers())
        dk *= self.kernel
        return fourier_derivatives(dk, self.positions, self.size, self.alphas, self.kmax)

    def correction(self, coef) -> np.ndarray:
        """Σ_n a_n ξ_n(x) on the mesh (float64), ξ_n = ⟨δ(x) c_n⟩, for coefficients
        ``coef`` (m·len(alphas),); in Fourier space P W Σ_n a_n (−ik)^α_n e^{−ik·x_n}."""
        mesh = self.mesh
        i, kf, j, kh = _band(mesh, self.size, self.kmax)
        a = np.asarray(coef, float).reshape(len(self.positions), len(self.alphas))
        shape = (len(i), len(i), len(j))
        acc = np.zeros(shape, np.complex128)
        kvec = (kf[:, None, None], kf[None, :, None], kh[None, None, :])
        for x, ai in zip(self.positions, a):
            poly = np.zeros(shape, np.complex128)
            for alpha, an in zip(self.alphas, ai):
                term = an
                for k, o in zip(kvec, alpha):
                    if o:
                        term = term * (-1j * k) ** o
                poly += term
            ex, ey, ez = (np.exp(-1j * kf * x[0]), np.exp(-1j * kf * x[1]), np.exp(-1j * kh * x[2]))
            poly *= ex[:, None, None]
            poly *= (ey[:, None] * ez[None, :])[None]
            acc += poly
            del poly
        if len(i) == mesh and len(j) == mesh // 2 + 1:
            full = acc
        else:
            full = np.zeros((mesh, mesh, mesh // 2 + 1), np.complex128)
            full[np.ix_(i, i, j)] = acc
            del acc
        full *= self.pw
        return sfft.irfftn(full, s=(mesh,) * 3, workers=fft_workers())


def constraint_system(cosmo, size: float, mesh: int, positions, smoothing: float,
                      kind: str = "peak") -> ConstraintSystem:
    """Build the covariance of constraints at ``positions`` ((m, 3) Mpc/h, box
    coordinates, any point of the periodic box): the smoothed value at each point and,
    its derivatives as ``kind`` says (:data:`CONSTRAINT_KINDS`). With
    ξ_WW(s) = (1/M³) Σ_k P_k W_s² e^{ik·s}: C_nn' = (−1)^|α_n'| ∂^(α_n + α_n') ξ_WW(x_n − x_n')."""
    from zoa_lib.universe.simulation import mode_variance

    size, mesh = float(size), int(mesh)
    pos = np.atleast_2d(np.asarray(positions, float))
    if pos.ndim != 2 or pos.shape[1] != 3 or len(pos) == 0 or not np.isfinite(pos).all():
        raise ConstraintError(f"constraint positions must be a finite (m, 3) array, got shape {pos.shape}")
    pos = np.mod(pos, size)
    if kind not in CONSTRAINT_KINDS:
        raise ConstraintError(f"constraint kind must be one of {', '.join(CONSTRAINT_KINDS)}, got {kind!r}")
    alphas = CONSTRAINT_KINDS[kind]
    W = constraint_kernel(mesh, size, float(smoothing))
    pw = mode_variance(cosmo, size, mesh)
    pw *= W
    pww = pw * W
    m, na = len(pos), len(alphas)
    gammas = sorted({tuple(a + b for a, b in zip(al, be)) for al in alphas for be in alphas})
    pairs = [(i, j) for i in range(m) for j in range(i, m)]
    seps = np.array([pos[i] - pos[j] for i, j in pairs])
    kmax = float(np.sqrt(2.0 * TAIL) / smoothing)
    # ∂^γ ξ_WW at x_i − x_j, i <= j (W² < e^{−TAIL} beyond √TAIL / R_s)
    D = fourier_derivatives(pww, seps, size, gammas, float(np.sqrt(TAIL) / smoothing))
    del pww
    g_index = {g: n for n, g in enumerate(gammas)}
    C = np.empty((m * na, m * na))
    for (i, j), d in zip(pairs, D):
        for a, al in enumerate(alphas):
            for b, be in enumerate(alphas):
                g = tuple(x + y for x, y in zip(al, be))
                v = (-1) ** sum(be) * d[g_index[g]]
                C[i * na + a, j * na + b] = v
                C[j * na + b, i * na + a] = v  # a covariance is symmetric
    sigma_s = float(np.sqrt(C[0, 0]))
    cond = np.linalg.cond(C / np.sqrt(np.outer(np.diag(C), np.diag(C))))
    if not np.isfinite(cond) or cond > 1e10:
        raise ConstraintError(f"constraints are (nearly) degenerate (cond = {cond:.3g}): two constraint "
                                 f"points much closer than the smoothing {smoothing} Mpc/h?")
    return ConstraintSystem(size, mesh, float(smoothing), pos, alphas, pw, W, C, sigma_s, kmax)


@dataclass
class ConstrainedField:
    """A constrained realization and its bookkeeping.

    delta : (M, M, M) float32 linear δ at z = 0 (node (i, j, k) at (i, j, k) L/M);
    positions : (m, 3) constraint points, box coordinates (Mpc/h);
    targets : (m,) imposed smoothed δ; achieved : (m,) smoothed δ of ``delta`` there;
    gradient : (m, 3) gradient of the smoothed δ there (per Mpc/h; imposed 0 unless
    ``kind`` is ``value``); hessian : (m, 6) its second derivatives ∂xx, ∂yy, ∂zz, ∂xy,
    ∂xz, ∂yz (per (Mpc/h)²); unconstrained : (m,) smoothed δ of the random field before
    the correction; sigma_s : rms of the smoothed linear field; smoothing : R_s (Mpc/h);
    kind : the constraint kind; displacement : (m, 3) Zel'dovich displacement of the
    smoothed field at the points (Mpc/h; filled by :func:`~zoa_lib.analysis.local_universe.local_universe_box`)."""

    delta: np.ndarray
    positions: np.ndarray
    targets: np.ndarray
    achieved: np.ndarray
    gradient: np.ndarray
    hessian: np.ndarray
    unconstrained: np.ndarray
    sigma_s: float
    smoothing: float
    kind: str
    displacement: np.ndarray | None = None


def _values(values, m: int) -> np.ndarray:
    v = np.asarray(values, float).reshape(-1)
    if v.shape != (m,) or not np.isfinite(v).all():
        raise ConstraintError(f"constraint values must be {m} finite numbers, got {np.asarray(values).tolist()}")
    return v


def _targets(sysm: ConstraintSystem, values: np.ndarray) -> np.ndarray:
    """(m, len(alphas)) imposed constraint values: the heights, a zero gradient, and the
    Hessian at its mean given the height, H_ab = c ⟨∂_a∂_b δ_s δ_s⟩ / σ_s² (in the
    continuum −σ₁²/(3σ_s²) c δ_ab: a maximum for c > 0, a minimum for c < 0)."""
    na = len(sysm.alphas)
    target = np.zeros((len(sysm.positions), na))
    target[:, 0] = values
    for a, alpha in enumerate(sysm.alphas):
        if sum(alpha) == 2:
            target[:, a] = values * sysm.C[a, 0] / sysm.C[0, 0]
    return target


def _kind(alphas) -> str:
    return next(k for k, v in CONSTRAINT_KINDS.items() if v == tuple(alphas))


def constrain(sysm: ConstraintSystem, field: np.ndarray, values: np.ndarray) -> ConstrainedField:
    """δ = δ̃ + Σ ξ_n C⁻¹ (c − c̃) for the random field δ̃ = ``field`` (float64, not modified)."""
    c0 = sysm.measure(field)
    coef = np.linalg.solve(sysm.C, (_targets(sysm, values) - c0).reshape(-1))
    delta = (field + sysm.correction(coef)).astype(np.float32)
    got = sysm.measure(delta)
    m, na = got.shape
    grad = got[:, 1:4] if na > 1 else np.full((m, 3), np.nan)
    hess = got[:, 4:10] if na > 4 else np.full((m, 6), np.nan)
    return ConstrainedField(delta, sysm.positions.copy(), np.asarray(values, float), got[:, 0], grad, hess,
                            c0[:, 0], sysm.sigma_s, sysm.smoothing, _kind(sysm.alphas))


def constrained_field(cosmo, size: float, mesh: int, positions, values, rng: np.random.Generator,
                      smoothing: float, kind: str = "peak", system: ConstraintSystem | None = None) -> ConstrainedField:
    """Hoffman–Ribak constrained realization on a periodic box of side ``size`` Mpc/h
    (module docstring): a Gaussian field of spectrum ``cosmo.power_spectrum``
    (:func:`zoa_lib.universe.simulation.gaussian_field` with ``rng``) whose linear δ smoothed with a
    Gaussian of ``smoothing`` Mpc/h takes the ``values`` (m,) at ``positions`` (m, 3, box
    coordinates, Mpc/h); with ``kind`` ``extremum`` also a zero gradient there, with
    ``peak`` (default) also the Hessian of a typical peak of that height (:func:`_targets`),
    so that each point is a maximum (c > 0) or minimum (c < 0) of the smoothed field.
    ``system`` (from :func:`constraint_system`) may be reused across realizations with the
    same positions, smoothing and kind."""
    from zoa_lib.universe.simulation import gaussian_field

    sysm = system or constraint_system(cosmo, size, mesh, positions, smoothing, kind)
    vals = _values(values, len(sysm.positions))
    field = gaussian_field(cosmo, sysm.size, sysm.mesh, rng).astype(np.float64)
    return constrain(sysm, field, vals)


def mean_field(cosmo, size: float, mesh: int, positions, values, smoothing: float, kind: str = "peak") -> np.ndarray:
    """The Hoffman–Ribak mean field ⟨δ | c⟩ = Σ_nn' ξ_n(x) (C⁻¹)_nn' c_n' (mesh³ float64):
    the ensemble mean of :func:`constrained_field` (the Wiener filter of the constraints)."""
    sysm = constraint_system(cosmo, size, mesh, positions, smoothing, kind)
    target = _targets(sysm, _values(values, len(sysm.positions)))
    return sysm.correction(np.linalg.solve(sysm.C, target.reshape(-1)))


def zeldovich_displacement(delta, size: float, points, smoothing: float = 0.0) -> np.ndarray:
    """Ψ(x) = −∇φ⁽¹⁾, ∇²φ⁽¹⁾ = δ (Zel'dovich, Mpc/h) of a linear field at ``points``
    ((p, 3) box coordinates), from the field smoothed with a Gaussian of ``smoothing``
    Mpc/h (Nyquist modes dropped): Ψ(k) = i k δ(k) / k², as in
    :mod:`zoa_lib.universe.simulation`. Shape (p, 3)."""
    delta = np.asarray(delta, np.float64)
    mesh = delta.shape[0]
    dk = sfft.rfftn(delta, workers=fft_workers())
    dk *= inverse_k_squared(mesh, size)
    dk *= constraint_kernel(mesh, size, smoothing) if smoothing > 0 else nyquist_mask(mesh)
    # ∂_a of (δ/k²) in Fourier space is i k_a δ/k² = Ψ_a
    kmax = float(np.sqrt(2.0 * TAIL) / smoothing) if smoothing > 0 else None
    return fourier_derivatives(dk, points, size, GRADIENT, kmax)
