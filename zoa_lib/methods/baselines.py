"""Classical reconstructions from the same gridded inputs as the V-Net: the Wiener filter
and POTENT.

Inputs are the network's two channels on the observer cube (docs/DESIGN.md):
``n_gal`` (galaxies per voxel) and ``v_pec`` (their mean observed radial peculiar velocity,
km/s, 0 where empty). Outputs are δ (dimensionless), φ ((km/s)²) and the 3D velocity
(km/s, SG components) on the same N³ grid.

Wiener filter (Zaroubi, Hoffman & Dekel 1999)
---------------------------------------------
Data: d_i = V_pec in every voxel i with N_gal > 0, inside the ZOA wedge too (the survey
has a few galaxies there, as many as its selection puts at low latitude;
:meth:`WienerFilter.solve` can still leave voxels out with ``exclude``); empty
voxels carry infinite noise, i.e. are left out. Model d_i = u(r_i) + ε_i, u = v·r̂ the
radial velocity of the linear-theory velocity field at the voxel centre, ε_i Gaussian with
variance N_ii = σ_v,i² / N_gal,i.

Prior: δ Gaussian with the cosmology's linear P(k) times W²(k) = exp(−k²σ_s²), σ_s the
profile's target smoothing (``box.smoothing``), so the estimates are the smoothed fields
the targets are. Linear theory gives v_a(k) = L_a(k) δ(k), L_a = i f H0 k̃_a / k²
(k̃: the wave vector with its Nyquist component 0, as for every odd derivative in
:mod:`zoa_lib.universe.fields`), φ(k) = −(3/2) Ωm H0² δ(k) / k².

Covariances are those of a periodic box of side pad·L (``pad = 2``: the cube is placed
in a zero-padded cube twice its side, so the survey never wraps onto itself; modes longer
than pad·L are absent from the prior). On its M³ = (pad N)³ grid of spacing Δ = L/N,

    ⟨v_a(r) v_b(r')⟩ = (1/V) Σ_k P(k) W²(k) L_a(k) L_b*(k) e^{ik·(r−r')},  V = (MΔ)³,

so S_ij = r̂_iᵀ C_v(r_i − r_j) r̂_j is applied to a vector x on the data voxels with FFTs:
place y_b = r̂_b x on the M³ grid, Y_b = FFT(y_b); Ψ(k) = P W² Σ_b (f H0 k̃_b / k²) Y_b / Δ³;
v_a = iFFT((f H0 k̃_a / k²) Ψ); (S x)_i = Σ_a r̂_a,i v_a(r_i). (S + N) x = d is solved by
conjugate gradients (``scipy.sparse.linalg.cg``, Jacobi preconditioner 1/(S_ii + N_ii)).
The estimates follow from the same x by the cross-covariances:

    δ_WF = iFFT(−i Ψ),   φ_WF = iFFT((3/2) Ωm H0² i Ψ / k²),   v_WF,a = iFFT((f H0 k̃_a/k²) Ψ)

i.e. ⟨s(r) d⟩ (S + N)⁻¹ d for s = δ, φ, v_a. k = 0 carries no power.

Noise σ_v,i (km/s per galaxy): ``evaluation.wiener_sigma_v`` if > 0; otherwise the
profile's survey error model at the voxel's distance: the velocity estimator's error for
``survey.sigma_dm`` at the redshift of a galaxy at rest at the voxel centre
(≈ (ln 10 / 5) σ_μ H0 r; :func:`zoa_lib.survey.distances.estimate_velocity`), with
``survey.sigma_v_nl`` in quadrature; either way plus, in quadrature, the small-scale
velocity dispersion σ_nl of galaxies about the smoothed velocity field that the filter
estimates (:func:`noise_sigma_v`). σ_nl is not assumed: :func:`velocity_dispersion`
measures it on training mocks (``zoa evaluate``, :func:`zoa_lib.methods.calibration.calibration`;
its value for a profile is ``calibration.sigma_nl`` of the Wiener methods' JSON,
``data/<profile>/evaluation/wiener_cal.json``, and is shown in chapter 05 of the book).
Without it the filter takes each galaxy for a noiseless tracer of the smooth flow near
the observer, where σ_μ's error is small.

POTENT (Bertschinger & Dekel 1989; tensor window of Dekel, Bertschinger & Faber 1990)
-----------------------------------------------------------------------------------
1. Smoothing (``evaluation.potent_smoothing`` σ_P, Mpc/h, Gaussian G, open boundaries):
   ``window="tensor"`` fits at each grid point a local flow B minimising
   Σ_j w_j G(r − r_j) (u_j − B·r̂_j)² with w_j = N_gal,j (galaxy weighting): B = A⁻¹ b,
   A_ab = G∗(w r̂_a r̂_b), b_a = G∗(w u r̂_a), A regularised by ε tr(A)/3 (ε = 10⁻³) along
   directions the data do not constrain; the smoothed radial velocity is u_s = B·r̂.
   ``window="scalar"``: u_s = G∗(w u) / G∗(w). Points whose summed weight G∗w is below
   10⁻³ of its mean over data voxels get B = 0.
2. Velocity potential by radial integration from the observer,
   Φ_v(r) = −∫₀^r u_s(r' r̂) dr'  [km/s · Mpc/h]  (Gauss–Legendre, 2N nodes per ray,
   trilinear interpolation of B and projection on the ray's r̂).
3. v = −∇Φ_v, δ = −∇·v / (f H0) (linear continuity), finite differences.
4. φ: with v = −(2f/(3 H0 Ωm)) ∇φ and v = −∇Φ_v, φ = (3 H0 Ωm / (2f)) Φ_v + const; the
   constant is set so that φ has zero mean over the cube (the prior mean; a constant is
   not measurable from velocities).

Known limits (both are classical, kept on purpose): the uniform-flow window aliases local
shear and compression of the flow into B on scales ≲ σ_P — most near the observer, where
the errors enter every line of sight's integral (Dekel et al. 1999 fit a local linear flow
for this reason) — and σ_P must span a couple of voxels for B to be determined at all. A
noiseless potential flow smoothed on scales 10× σ_P is recovered to a few per cent
(tests/test_baselines.py).

Both baselines take the gridded V_pec at face value: galaxies gridded at their observed
distances (``survey.grid_position: observed``) carry the inhomogeneous Malmquist bias of
log-normal distance errors under a falling selection function (a spurious outflow inside
and infall near r_max), which neither method corrects.
"""
from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np

from zoa_lib.errors import ZoaError
from zoa_lib.survey import distances
from zoa_lib.universe import cosmology, fields, fourier
from zoa_lib.universe import velocity as vel
from zoa_lib.universe.cosmology import H0, from_profile
from zoa_lib.universe.grid import check_cube


class BaselineError(ZoaError, ValueError):
    """Bad input to a baseline reconstruction (shapes, parameters)."""


@dataclass
class WienerResult:
    """Wiener-filter estimates on the N³ cube: ``delta`` (dimensionless), ``phi`` (km/s)²,
    ``velocity`` (N, N, N, 3) km/s; CG ``iterations``, ``converged``, ``n_data`` voxels used."""

    delta: np.ndarray
    phi: np.ndarray
    velocity: np.ndarray
    iterations: int
    converged: bool
    n_data: int = 0


@dataclass
class PotentResult:
    """POTENT estimates: ``delta``, ``phi`` (km/s)², ``velocity`` (N, N, N, 3) km/s, the
    velocity potential ``potential`` Φ_v (km/s · Mpc/h) and the smoothed radial velocity
    ``radial`` u_s (km/s)."""

    delta: np.ndarray
    phi: np.ndarray
    velocity: np.ndarray
    potential: np.ndarray
    radial: np.ndarray


def check_inputs(n_gal, v_pec):
    """(N_gal, V_pec) as float cubes, or a one-line :class:`BaselineError`: same (N, N, N) shape,
    finite, N_gal ≥ 0 (galaxies per voxel; V_pec in km/s)."""
    n_gal = check_cube(np.asarray(n_gal, dtype=float), "inputs: N_gal", error=BaselineError)
    v_pec = np.asarray(v_pec, dtype=float)
    if v_pec.shape != n_gal.shape:
        raise BaselineError(f"inputs: N_gal and V_pec must be (N, N, N) cubes, got {n_gal.shape} "
                            f"and {v_pec.shape}")
    if np.any(n_gal < 0) or not np.all(np.isfinite(n_gal)) or not np.all(np.isfinite(v_pec)):
        raise BaselineError("inputs: N_gal must be finite and >= 0, V_pec finite")
    return n_gal, v_pec


# =========================================================================== Wiener filter
#: The Wiener filters' transform precisions (``WienerFilter(precision=…)``).
PRECISIONS = {"single": np.float32, "double": np.float64}
#: The smallest CG tolerance allowed with single-precision transforms.
SINGLE_PRECISION_TOL = 1e-5


class WienerFilter:
    """The Wiener-filter operators of one (grid, box, cosmology, smoothing, padding).

    Build once and reuse for every mock of a profile (:meth:`solve`).

    ``precision``: the floating point of the Fourier transforms inside the CG iterations.
    ``"single"`` (the default) transforms in float32, with the operator exact to ~10⁻⁶
    relative: far below the profiles' CG tolerance (``evaluation.wiener_tol`` = 10⁻³), and the
    estimates then differ from the double-precision ones by less than the tolerance itself does
    (tests). Each iteration is about 3× cheaper on a CPU (pocketfft), but CG needs ~35 % more
    of them, so a filter is about 2× faster (``zoa bench evaluate``). ``"double"``
    for tolerances below :data:`SINGLE_PRECISION_TOL` (a :meth:`solve` asking for one with
    single precision is refused). CG's own vectors and the sums are float64 either way."""

    def __init__(self, n: int, size: float, cosmo, smoothing: float = 0.0, pad: int = 2,
                 precision: str = "single"):
        if pad < 1 or int(pad) != pad:
            raise BaselineError(f"pad: must be an integer >= 1, got {pad}")
        if precision not in PRECISIONS:
            raise BaselineError(f"precision: must be one of {', '.join(PRECISIONS)}, got {precision!r}")
        self.precision = precision
        self.real = np.dtype(PRECISIONS[precision])
        self.n, self.size, self.pad = int(n), float(size), int(pad)
        self.m = m = self.pad * self.n
        self.dx = self.size / self.n
        L = self.size * self.pad
        self.cosmo = cosmo
        k2 = fourier.k_squared(m, L)
        # P(k) on the distinct |k|² of the grid (exact values, one colossus call)
        uniq, inv = np.unique(np.round(k2 / (2 * np.pi / L) ** 2).astype(np.int64), return_inverse=True)
        pk = cosmo.power_spectrum(np.sqrt(uniq) * (2 * np.pi / L))[inv].reshape(k2.shape)
        pk *= np.exp(-k2 * smoothing ** 2)
        pk[0, 0, 0] = 0.0
        self.spec = pk / self.dx ** 3
        inv_k2 = fourier.inverse_k_squared(m, L)
        fH0 = cosmo.growth_rate * H0
        self.lk = [fH0 * k * inv_k2 for k in fourier.wavevectors(m, L, nyquist=False)]
        self.phik = cosmo.poisson_factor * inv_k2
        # S_ii = r̂ᵀ C_v(0) r̂ = C_xx(0) (isotropic): (1/V) Σ_k P W² |L|² / 3 over all modes
        wt = fourier.half_spectrum_weights(m)
        lsq = sum(l ** 2 for l in self.lk)
        self.c0 = float(np.sum(self.spec * lsq * wt) / m ** 3 / 3.0)
        self.workers = fourier.fft_workers()
        # the transforms' copies of the operators, in the transforms' precision
        self._spec_t = self.spec.astype(self.real)
        self._lk_t = [lk.astype(self.real) for lk in self.lk]

    # ------------------------------------------------------------------ operators
    def _psi(self, x, flat, rhat):
        """Ψ(k) = P W² Σ_b (f H0 k̃_b/k²) FFT(r̂_b x) / Δ³ for x on the data voxels (flat
        indices into the N³ cube, which sits in the corner of the zero-padded M³ grid)."""
        n = self.n
        psi = None
        y = np.zeros(n ** 3, self.real)
        for b in range(3):
            y[flat] = rhat[:, b] * x
            term = self._lk_t[b] * fourier.rfftn_padded(y.reshape(n, n, n), self.m, self.workers)
            psi = term if psi is None else psi + term
        psi *= self._spec_t
        return psi

    def _velocity_grid(self, psi, a):
        """v_a on the N³ cube from Ψ."""
        return fourier.irfftn_corner(self._lk_t[a] * psi, self.n, self.workers)

    def check_tol(self, tol: float):
        """Refuse a CG tolerance that this operator's precision cannot reach."""
        if self.precision == "single" and tol < SINGLE_PRECISION_TOL:
            raise BaselineError(f"tol: {tol:g} is below what single-precision transforms reach "
                                f"({SINGLE_PRECISION_TOL:g}); build the filter with precision='double'")

    def apply_signal(self, x, flat, rhat):
        """S x: the signal covariance of the radial velocities at the data voxels (flat
        indices into the N³ cube, unit vectors ``rhat`` (n_d, 3)) times x."""
        psi = self._psi(np.asarray(x, dtype=float), flat, rhat)
        out = np.zeros(len(flat))
        for a in range(3):
            out += rhat[:, a] * self._velocity_grid(psi, a).ravel()[flat]
        return out

    def data_voxels(self, n_gal, exclude=None):
        """(cube mask, flat indices into the N³ cube, r̂ (n_d, 3)) of voxels with N_gal > 0 not
        excluded."""
        n = self.n
        mask = n_gal > 0
        if exclude is not None:
            mask &= ~np.asarray(exclude, bool)
        flat = np.flatnonzero(mask)
        rhat = vel.unit_radial_grid(n, self.size)[mask]
        return mask, flat, rhat

    def solve(self, n_gal, v_pec, sigma_v, exclude=None, tol: float = 1e-5, maxiter: int = 500,
              x0=None) -> WienerResult:
        """Wiener-filter δ, φ and v from gridded radial velocities.

        Parameters
        ----------
        n_gal, v_pec : (N, N, N) galaxies per voxel and their mean radial velocity (km/s).
        sigma_v : per-galaxy velocity error (km/s): a number or an (N, N, N) array.
        exclude : (N, N, N) bool, voxels to leave out (the ZOA wedge).
        tol, maxiter : CG relative residual tolerance and iteration cap.
        """
        n_gal, v_pec = check_inputs(n_gal, v_pec)
        self.check_tol(tol)
        if n_gal.shape[0] != self.n:
            raise BaselineError(f"inputs: grid {n_gal.shape[0]}^3 but the filter was built for {self.n}^3")
        mask, flat, rhat = self.data_voxels(n_gal, exclude)
        n_d = len(flat)
        n = self.n
        if n_d == 0:
            z = np.zeros((n, n, n))
            return WienerResult(z, z.copy(), np.zeros((n, n, n, 3)), 0, True, 0)
        sig = np.broadcast_to(np.asarray(sigma_v, dtype=float), (n, n, n))[mask]
        if np.any(~(sig > 0)):
            raise BaselineError("sigma_v: the velocity error must be > 0 km/s in every data voxel")
        noise = sig ** 2 / n_gal[mask]
        diag = self.c0 * np.sum(rhat ** 2, axis=1) + noise
        x, iterations, converged = solve_cg(lambda x: self.apply_signal(x, flat, rhat), noise, diag, v_pec[mask],
                                            x0=x0, tol=tol, maxiter=maxiter, name="Wiener filter")
        return self.estimates(x, flat, rhat, iterations=iterations, converged=converged)

    def estimates(self, x, flat, rhat, iterations=0, converged=True) -> WienerResult:
        """δ, φ, v on the cube from x = (S + N)⁻¹ d on the data voxels."""
        n, w = self.n, self.workers
        psi = self._psi(x, flat, rhat).astype(complex)  # the estimates in double precision
        delta = fourier.irfftn_corner(-1j * psi, n, w)
        phi = fourier.irfftn_corner(1j * self.phik * psi, n, w)
        v = np.stack([fourier.irfftn_corner(lk * psi, n, w) for lk in self.lk], axis=-1)
        return WienerResult(delta=delta, phi=phi, velocity=v, iterations=int(iterations),
                            converged=bool(converged), n_data=len(flat))


def solve_cg(apply_signal, noise, diag, d, x0=None, tol: float = 1e-5, maxiter: int = 500,
             name: str = "Wiener filter") -> tuple[np.ndarray, int, bool]:
    """x = (S + N)⁻¹ d by conjugate gradients (``scipy.sparse.linalg.cg``, relative residual
    ``tol``, at most ``maxiter`` iterations) with the Jacobi preconditioner 1/``diag``
    (diag = S_ii + N_ii): ``apply_signal(x)`` = S x, ``noise`` the diagonal of N (the data's
    units squared). Returns (x, iterations, converged); a breakdown raises :class:`BaselineError`
    naming the filter."""
    from scipy.sparse.linalg import LinearOperator, cg

    n_d = len(d)
    A = LinearOperator((n_d, n_d), matvec=lambda x: apply_signal(x) + noise * x, dtype=float)
    M = LinearOperator((n_d, n_d), matvec=lambda x: x / diag, dtype=float)
    count = [0]

    def cb(_):
        count[0] += 1

    x, info = cg(A, d, x0=x0, rtol=tol, atol=0.0, maxiter=maxiter, M=M, callback=cb)
    if info < 0:
        raise BaselineError(f"{name}: conjugate gradients broke down (info={info})")
    return x, count[0], info == 0


def noise_sigma_v(profile, sigma_nl: float = 0.0) -> np.ndarray | float:
    """Per-galaxy radial-velocity error σ_v (km/s) assumed by the Wiener filter: the
    constant ``evaluation.wiener_sigma_v`` if > 0, else an (N, N, N) array of the survey's
    error model at each voxel-centre distance (module docstring; with ``survey.catalogue``, σ_μ
    is the catalogue's rms at that distance, :meth:`zoa_lib.survey.selection.CatalogueSelection.sigma_dm_rms`,
    not ``survey.sigma_dm``); with the small-scale
    dispersion ``sigma_nl`` (km/s, :func:`velocity_dispersion`) added in quadrature."""
    if sigma_nl < 0 or not np.isfinite(sigma_nl):
        raise BaselineError(f"sigma_nl: must be a finite velocity >= 0 km/s, got {sigma_nl}")
    if profile.evaluation.wiener_sigma_v > 0:
        return float(np.hypot(profile.evaluation.wiener_sigma_v, sigma_nl))

    n, L = profile.box.grid, profile.box.size
    r = np.maximum(vel.radius_grid(n, L), 0.5 * L / n)
    cz = cosmology.C_LIGHT * distances.redshift_from_comoving_distance(r)
    d_l = distances.luminosity_from_comoving_distance(r)
    from zoa_lib.survey.selection import catalogue_selection

    sel = catalogue_selection(profile)  # mocks that copy a catalogue: its distance errors at each distance
    sigma_dm = profile.survey.sigma_dm if sel is None else sel.sigma_dm_rms(r)
    _, sig = distances.estimate_velocity(profile.survey.estimator, cz, d_l, sigma_dm)
    return np.sqrt(sig ** 2 + profile.survey.sigma_v_nl ** 2 + sigma_nl ** 2)


def wiener_filter(inputs, profile, operator: WienerFilter | None = None, sigma_nl: float = 0.0,
                  exclude_zoa: bool = False) -> WienerResult:
    """The profile's Wiener filter of one mock's ``inputs`` (N, N, N, 2): every occupied
    voxel is data (the ZOA's too, unless ``exclude_zoa``: |b| < ``survey.zoa_b`` left out),
    noise from :func:`noise_sigma_v` with the small-scale dispersion ``sigma_nl`` (km/s),
    prior smoothed with ``box.smoothing``, CG tolerance and cap from
    ``evaluation.wiener_tol/maxiter``."""
    from zoa_lib.survey.sky import zoa_mask

    inputs = np.asarray(inputs)
    n, L = profile.box.grid, profile.box.size
    if inputs.shape != (n, n, n, 2):
        raise BaselineError(f"inputs: expected shape {(n, n, n, 2)} for profile {profile.name!r}, "
                            f"got {inputs.shape}")
    op = operator or WienerFilter(n, L, from_profile(profile), profile.box.smoothing)
    return op.solve(inputs[..., 0], inputs[..., 1], noise_sigma_v(profile, sigma_nl),
                    exclude=zoa_mask(n, L, profile.survey.zoa_b) if exclude_zoa else None,
                    tol=profile.evaluation.wiener_tol, maxiter=profile.evaluation.wiener_maxiter)


# =========================================================================== Malmquist calibration
@dataclass
class RadialBias:
    """Mean radial-velocity bias of gridded data, b(r) = ⟨V_pec − v_r,true⟩ (km/s), galaxy-
    weighted over occupied voxels in distance bins (``edges``, Mpc/h) of ``n_mocks`` mocks."""

    edges: np.ndarray
    bias: np.ndarray
    n_mocks: int
    #: Small-scale velocity dispersion (km/s) of galaxies about the smoothed velocity field
    #: (:func:`velocity_dispersion`), measured on the same mocks; None when not measured.
    sigma_nl: float | None = None
    #: Galaxies behind ``sigma_nl``.
    n_galaxies: int = 0

    def at(self, r) -> np.ndarray:
        """b at distances r (Mpc/h): linear between bin centres, constant out to the outer edge
        of the last bin the mocks filled, and **0 beyond it**: a bias measured on mocks is never
        extrapolated past the distances those mocks contain (a catalogue reaching further than
        its training mocks is refused by :mod:`zoa_lib.survey.domain` before it gets here)."""
        r = np.asarray(r, dtype=float)
        c = 0.5 * (self.edges[1:] + self.edges[:-1])
        ok = np.isfinite(self.bias)
        if not ok.any():
            return np.zeros_like(r)
        reach = float(self.edges[1:][ok].max())
        return np.where(r <= reach, np.interp(r, c[ok], self.bias[ok]), 0.0)


def radial_bias(mocks, size: float, edges=None) -> RadialBias:
    """Measure the radial bias profile of gridded radial velocities against the truth.

    Galaxies gridded at observed distances carry an inhomogeneous Malmquist bias that,
    averaged over observers, is a function of distance only. Measured on *training* mocks
    it calibrates the classical methods the way training calibrates the network.

    Parameters
    ----------
    mocks : iterable of (inputs (N, N, N, 2): N_gal, V_pec km/s; velocity (N, N, N, 3) km/s),
        read one at a time.
    size : cube side (Mpc/h). edges : distance bins (default: one voxel wide to the corner).
    """
    num = den = None
    count = 0
    for x, v in mocks:
        x = np.asarray(x, dtype=float)
        v = np.asarray(v, dtype=float)
        if x.ndim != 4 or x.shape[-1] != 2 or v.shape != x.shape[:3] + (3,):
            raise BaselineError(f"radial_bias: inputs (N, N, N, 2) and velocity (N, N, N, 3) expected, "
                                f"got {x.shape} and {v.shape}")
        if num is None:
            n = x.shape[0]
            r = vel.radius_grid(n, size)
            if edges is None:
                edges = np.arange(0.0, r.max() + size / n, size / n)
            edges = np.asarray(edges, dtype=float)
            rhat = vel.unit_radial_grid(n, size)
            idx = np.digitize(r, edges) - 1
            ok = (idx >= 0) & (idx < len(edges) - 1)
            num = np.zeros(len(edges) - 1)
            den = np.zeros(len(edges) - 1)
        w = x[..., 0]
        resid = x[..., 1] - np.einsum("...a,...a->...", v, rhat)
        num += np.bincount(idx[ok], weights=(w * resid)[ok], minlength=len(num))
        den += np.bincount(idx[ok], weights=w[ok], minlength=len(num))
        count += 1
    if count == 0:
        raise BaselineError("radial_bias: no mock given")
    with np.errstate(invalid="ignore", divide="ignore"):
        bias = np.where(den > 0, num / den, np.nan)
    return RadialBias(edges=edges, bias=bias, n_mocks=count)


def velocity_dispersion(mocks, size: float, r_max: float | None = None) -> dict:
    """Small-scale velocity dispersion σ_nl of galaxies about the smoothed velocity field.

    For each galaxy of each mock, at its *true* position (``d_true`` along its direction,
    :func:`zoa_lib.survey.galaxies.catalog_positions`), the residual v_r,true − v(voxel)·r̂ of its
    true radial velocity against the smoothed target velocity of the voxel it lies in,
    projected on its own line of sight r̂. The rms of the residuals over every galaxy (within
    ``r_max`` of the observer if given) is the part of a galaxy's velocity that a
    reconstruction of the smoothed field cannot and should not follow: noise for the
    Wiener filter, on top of the distance error. Only mocks know it (true distances).

    Parameters
    ----------
    mocks : iterable of (catalog rows of one mock (:data:`zoa_lib.survey.shards.CATALOG_DTYPE`),
        velocity (N, N, N, 3) km/s, the smoothed target), read one at a time.
    size : cube side (Mpc/h). r_max : keep galaxies with d_true ≤ r_max (Mpc/h).

    Returns {"sigma_nl": rms (km/s), "mean": mean residual (km/s), "n_galaxies", "n_mocks"};
    ``sigma_nl`` is NaN when no galaxy was found (catalogs without rows).
    """
    from zoa_lib.survey.galaxies import catalog_positions, voxel_index

    s1 = s2 = 0.0
    n_gal = n_mocks = 0
    for cat, v in mocks:
        v = check_cube(np.asarray(v, dtype=float), "velocity_dispersion: velocity", vector=True, error=BaselineError)
        n_mocks += 1
        if len(cat) == 0:
            continue
        xyz = catalog_positions(cat, "true")
        r = np.linalg.norm(xyz, axis=1)
        keep = r > 0
        if r_max is not None:
            keep &= r <= r_max
        flat, ok = voxel_index(xyz[keep], size, v.shape[0])
        pos = xyz[keep][ok]
        rhat = pos / np.linalg.norm(pos, axis=1)[:, None]
        u = np.einsum("ma,ma->m", v.reshape(-1, 3)[flat], rhat)
        res = np.asarray(cat["v_r_true"], dtype=float)[keep][ok] - u
        s1 += float(res.sum())
        s2 += float(np.sum(res ** 2))
        n_gal += len(res)
    if n_mocks == 0:
        raise BaselineError("velocity_dispersion: no mock given")
    if n_gal == 0:
        return {"sigma_nl": float("nan"), "mean": float("nan"), "n_galaxies": 0, "n_mocks": n_mocks}
    return {"sigma_nl": float(np.sqrt(s2 / n_gal)), "mean": s1 / n_gal, "n_galaxies": n_gal,
            "n_mocks": n_mocks}


def subtract_radial_bias(inputs, size: float, bias: RadialBias) -> np.ndarray:
    """``inputs`` (N, N, N, 2) with b(r) subtracted from V_pec in occupied voxels."""
    out = np.array(inputs, dtype=np.float32, copy=True)
    n = out.shape[0]
    corr = bias.at(vel.radius_grid(n, size))
    occ = out[..., 0] > 0
    out[..., 1][occ] -= corr[occ].astype(np.float32)
    return out


# =========================================================================== POTENT
RIDGE = 1e-3
WEIGHT_FLOOR = 1e-3


def _smooth_open(field, sigma_cells):
    """Gaussian smoothing with open (zero) boundaries, σ in voxels, truncated at 4σ."""
    from scipy import ndimage

    return ndimage.gaussian_filter(field, sigma_cells, mode="constant", cval=0.0, truncate=4.0)


def potent(n_gal, v_pec, size: float, cosmo, smoothing: float, window: str = "tensor",
           exclude=None, n_nodes: int | None = None) -> PotentResult:
    """POTENT reconstruction of δ, φ and v from gridded radial velocities (module docstring).

    Parameters
    ----------
    n_gal, v_pec : (N, N, N) galaxies per voxel and mean radial velocity (km/s).
    size : cube side L (Mpc/h). cosmo : the cosmology (f, Ωm).
    smoothing : Gaussian σ_P of the velocity smoothing (Mpc/h).
    window : ``"tensor"`` (default) or ``"scalar"``.
    exclude : optional (N, N, N) bool voxels to ignore.
    n_nodes : Gauss–Legendre nodes per line of sight (default 2N).
    """
    from scipy import ndimage

    n_gal, v_pec = check_inputs(n_gal, v_pec)
    if smoothing <= 0:
        raise BaselineError(f"smoothing: must be > 0 Mpc/h, got {smoothing}")
    if window not in ("tensor", "scalar"):
        raise BaselineError(f"window: must be 'tensor' or 'scalar', got {window!r}")
    n = n_gal.shape[0]
    dx = size / n
    w = n_gal.copy()
    if exclude is not None:
        w[np.asarray(exclude, bool)] = 0.0
    rhat = vel.unit_radial_grid(n, size)
    s = smoothing / dx
    W = _smooth_open(w, s)
    occupied = w > 0
    floor = WEIGHT_FLOOR * (W[occupied].mean() if occupied.any() else 1.0)
    good = W > floor
    if window == "tensor":
        A = np.empty((n, n, n, 3, 3))
        for a in range(3):
            for b in range(a, 3):
                A[..., a, b] = A[..., b, a] = _smooth_open(w * rhat[..., a] * rhat[..., b], s)
        bvec = np.stack([_smooth_open(w * v_pec * rhat[..., a], s) for a in range(3)], axis=-1)
        tr = np.trace(A, axis1=-2, axis2=-1)
        A += (RIDGE * tr / 3.0 + ~good)[..., None, None] * np.eye(3)
        B = np.linalg.solve(A, bvec[..., None])[..., 0]
        B[~good] = 0.0
        radial = np.einsum("...a,...a->...", B, rhat)
    else:
        radial = np.divide(_smooth_open(w * v_pec, s), W, out=np.zeros_like(W), where=good)
        B = None
    # --- radial integration Φ_v(r) = −r ∫₀¹ u_s(t r) dt along each voxel's line of sight
    nq = int(n_nodes or 2 * n)
    t, tw = np.polynomial.legendre.leggauss(nq)
    t = 0.5 * (t + 1.0)
    tw = 0.5 * tw
    pos = vel.position_grid(n, size).reshape(-1, 3)
    r = np.linalg.norm(pos, axis=1)
    unit = np.divide(pos, r[:, None], out=np.zeros_like(pos), where=r[:, None] > 0)
    pot = np.zeros(len(pos))
    chunk = max(1, 2 ** 20 // nq)
    for lo in range(0, len(pos), chunk):
        p = pos[lo:lo + chunk]
        pts = p[:, None, :] * t[None, :, None]  # (c, nq, 3)
        coords = (pts.reshape(-1, 3) / dx + n / 2.0 - 0.5).T
        if B is not None:
            comps = [ndimage.map_coordinates(B[..., a], coords, order=1, mode="nearest")
                     for a in range(3)]
            u = sum(c.reshape(len(p), nq) * unit[lo:lo + chunk, a, None] for a, c in enumerate(comps))
        else:
            u = ndimage.map_coordinates(radial, coords, order=1, mode="nearest").reshape(len(p), nq)
        pot[lo:lo + chunk] = -r[lo:lo + chunk] * (u @ tw)
    pot = pot.reshape(n, n, n)
    v = -vel.gradient(pot, size, "finite_difference")
    delta = vel.density_from_velocity(v, size, cosmo, "finite_difference")
    phi = pot / cosmo.velocity_from_potential_factor
    phi -= phi.mean()
    return PotentResult(delta=delta, phi=phi, velocity=v, potential=pot, radial=radial)


def potent_from_profile(inputs, profile) -> PotentResult:
    """POTENT of one mock's ``inputs`` (N, N, N, 2) at the profile's
    ``evaluation.potent_smoothing`` (tensor window)."""
    inputs = np.asarray(inputs)
    return potent(inputs[..., 0], inputs[..., 1], profile.box.size, from_profile(profile),
                  profile.evaluation.potent_smoothing)


# =========================================================================== synthetic mocks
def synthetic_mock(profile, index: int = 0) -> dict:
    """A Gaussian mock for benchmarks and tests when no shards exist: δ drawn with the
    cosmology's P(k) on a periodic box of twice the cube's side (``simulation.gaussian_field``,
    evaluation stream), smoothed with ``box.smoothing``, linear velocity and potential;
    the cube is its centre. Galaxies per voxel ~ Poisson(n̄ w(r)) with the survey's
    selection w(r), ``n_galaxies`` expected within r_max, none in the ZOA; V_pec = u +
    Gaussian noise of σ_v(r)/√N_gal (:func:`noise_sigma_v`).

    Returns {"inputs" (N,N,N,2) float32, "delta", "phi", "velocity" (N,N,N,3)}."""
    from zoa_lib.survey import galaxies
    from zoa_lib.survey.sky import zoa_mask
    from zoa_lib.universe import rng as rngmod
    from zoa_lib.universe import simulation

    n, L = profile.box.grid, profile.box.size
    cosmo = from_profile(profile)
    g = rngmod.generator(profile.seed, "evaluation", 1_000_000 + int(index))
    big = simulation.gaussian_field(cosmo, 2 * L, 2 * n, g).astype(np.float64)
    big = fields.gaussian_smooth(big, 2 * L, profile.box.smoothing)
    v_big = fields.velocity_from_delta_linear(big, 2 * L, cosmo)
    phi_big = fields.potential_from_delta(big, 2 * L, cosmo)
    cut = (slice(n // 2, n // 2 + n),) * 3
    delta, phi, v = big[cut], phi_big[cut], v_big[cut]
    r = vel.radius_grid(n, L)
    sel = galaxies.selection_weight(r, profile.survey.selection_r0, profile.survey.selection_power)
    sel[r > profile.survey.r_max] = 0.0
    lam = profile.survey.n_galaxies * sel / sel.sum()
    lam[zoa_mask(n, L, profile.survey.zoa_b)] = 0.0
    n_gal = g.poisson(lam).astype(float)
    u = vel.radial_velocity(v, L)
    sig = np.broadcast_to(noise_sigma_v(profile), (n, n, n))
    noise = g.standard_normal((n, n, n)) * sig / np.sqrt(np.maximum(n_gal, 1.0))
    v_pec = np.where(n_gal > 0, u + noise, 0.0)
    inputs = np.stack([n_gal, v_pec], axis=-1).astype(np.float32)
    return {"inputs": inputs, "delta": delta, "phi": phi, "velocity": v}


# =========================================================================== benchmark
def benchmark(profile, n_mocks: int | None = None) -> dict:
    """Wiener-filter seconds and CG iterations per mock, and POTENT seconds, at the
    profile's grid, on the test shards if present, else on :func:`synthetic_mock` mocks."""
    import h5py

    from zoa_lib.survey import shards

    n_mocks = int(n_mocks or min(3, profile.evaluation.n_eval))
    source = "synthetic"
    mocks = []
    paths = [p for p in shards.shard_paths(shards.mocks_dir(profile), "test") if p.exists()]
    for p in paths:
        with h5py.File(p, "r") as f:
            for i in range(f["inputs"].shape[0]):
                if len(mocks) < n_mocks:
                    mocks.append(f["inputs"][i])
    if len(mocks) == n_mocks:
        source = "test shards"
    else:
        mocks = [synthetic_mock(profile, i)["inputs"] for i in range(n_mocks)]
    t0 = time.perf_counter()
    op = WienerFilter(profile.box.grid, profile.box.size, from_profile(profile), profile.box.smoothing)
    setup = time.perf_counter() - t0
    wf_s, iters, conv, ndata, pot_s = [], [], [], [], []
    for x in mocks:
        t0 = time.perf_counter()
        res = wiener_filter(x, profile, op)
        wf_s.append(time.perf_counter() - t0)
        iters.append(res.iterations)
        conv.append(res.converged)
        ndata.append(res.n_data)
        t0 = time.perf_counter()
        potent_from_profile(x, profile)
        pot_s.append(time.perf_counter() - t0)
    return {
        "grid": profile.box.grid, "padded_grid": op.m, "mocks": n_mocks, "source": source,
        "wiener_setup_seconds": round(setup, 3),
        "wiener_seconds_per_mock": round(float(np.mean(wf_s)), 3),
        "wiener_seconds": [round(s, 3) for s in wf_s],
        "wiener_iterations": iters, "wiener_converged": conv, "wiener_data_voxels": ndata,
        "wiener_tol": profile.evaluation.wiener_tol,
        "potent_seconds_per_mock": round(float(np.mean(pot_s)), 3),
    }
