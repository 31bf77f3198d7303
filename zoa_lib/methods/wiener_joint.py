"""A joint Wiener filter of galaxy counts and radial peculiar velocities.

The velocity-only Wiener filter of :mod:`zoa_lib.methods.baselines` uses the galaxies as carriers of
radial velocities and ignores how many there are. Here the counts are data too: the same
filter (prior, padding, linear theory, CG solve) with a second kind of datum, the galaxy
density contrast of a voxel.

Data (same inputs as the V-Net: ``n_gal`` galaxies per voxel, ``v_pec`` their mean observed
radial velocity, km/s)
    counts      δ_g,i = N_gal,i / n̄_i − 1 on every voxel i with expected count n̄_i ≥ n_min
                (:data:`N_MIN` = 0.05 galaxies per voxel; empty voxels are data, δ_g = −1;
                voxels the survey hardly sees carry no count data). Model
                δ_g,i = b δ(r_i) + ε_i, ε Gaussian of variance N_ii = α / n̄_i + s²
                (α = 1 for Poisson shot noise; b, α, s² fitted on training mocks).
    velocities  u_j = V_pec,j in every voxel with N_gal > 0, u_j = v(r_j)·r̂_j + ε_j,
                N_jj = σ_v,j² / N_gal,j, exactly as :meth:`baselines.WienerFilter.solve`.

Prior (:mod:`zoa_lib.methods.baselines`): δ Gaussian with P(k) W²(k) (W² = exp(−k²σ_s²), σ_s =
``box.smoothing``) on the zero-padded periodic cube of side pad·L, v_a(k) = L_a(k) δ(k) with
L_a = i f H0 k̃_a / k², φ(k) = −(3/2) Ωm H0² δ(k) / k². A datum i responds to the fields at
its voxel through c_i δ(r_i) + Σ_a r̂_a,i v_a(r_i) (c = b, r̂ = 0 for a count; c = 0 for a
velocity), so S = R P Rᵀ is applied with FFTs on the M³ = (pad N)³ grid of spacing Δ: for
x = [x_g, x_v] on the data voxels (G = FFT of x_g placed on the grid, Y_b = FFT of r̂_b x_v),

    Ψ(k) = P W² [ Σ_b (f H0 k̃_b / k²) Y_b  +  i b G ] / Δ³

(the first term is :meth:`baselines.WienerFilter._psi`; i b G is the count part written in
the same convention, in which δ(k) = −i Ψ(k)), and

    (S x)_g,i = b · iFFT(−i Ψ)(r_i),     (S x)_v,j = Σ_a r̂_a,j iFFT((f H0 k̃_a / k²) Ψ)(r_j).

(S + N) x = d is solved by conjugate gradients with the Jacobi preconditioner
1 / (S_ii + N_ii): S_ii = b² σ_δ² for a count (σ_δ² = (1/V) Σ_k P W², the prior variance of
δ per voxel, V = (MΔ)³) and C_xx(0) for a velocity (``WienerFilter.c0``). The estimates
⟨s d⟩ (S + N)⁻¹ d follow from the same Ψ of x exactly as in the velocity filter:
δ_WF = iFFT(−i Ψ), φ_WF = iFFT((3/2) Ωm H0² i Ψ / k²) (km/s)², v_WF,a = iFFT((f H0 k̃_a/k²) Ψ)
(km/s). Without count data the joint filter *is* the velocity filter.

What is learnt from training mocks (:func:`fit_counts_model`, never from test mocks)
-------------------------------------------------------------------------------
n̄ (expected galaxies per voxel): the mocks copy one survey's sky and radial distribution in
the observer's frame, a separable selection, so n̄ is fitted as n̄_v = R(r_v) · ā_v: R a
radial profile in shells one voxel wide, ā_v the mean over the voxel's subsample³ sub-points
of an angular map A on HEALPix pixels (nside 8, RING, Galactic frame, like
``survey.catalogue_nside``). Averaging A over the voxel matters: near the observer a voxel
spans several pixels, and at the edges of the Zone of Avoidance a voxel is partly observed;
a voxel-centre lookup there would create spurious under- and overdensities along the ZOA.
(R, A) maximise the Poisson likelihood of the summed counts of all training mocks, by
alternating the exact update of R given A with an EM (Richardson–Lucy) update of A given R
(:data:`EM_ITERATIONS`). The fit has one parameter per shell and per pixel against
n_mocks · N³ voxel counts, so its noise is small against the Poisson noise of one mock; the
mean over mocks of the large-scale structure at a fixed voxel is averaged away in the shells
and pixels.

b, α, s²: on the count voxels (n̄ ≥ n_min) within ``survey.r_max`` of every training mock,
δ_g against the smoothed truth δ_s, with δ_g = N_gal / n̄₋ − 1 where n̄₋ is n̄ refitted
without that mock (leave one out, :data:`LOO_ITERATIONS` updates from the full fit): a test
mock is not part of its n̄ either, and a mock's own structures, partly absorbed into an n̄
that includes it (a pixel's cone holds a few correlated voxels), would bias b low (tests/test_wiener_joint.py measures it on synthetic mocks of known b). The fitted b and α are thus those of an n̄ with the noise of n_mocks − 1
mocks; with few mocks this noise raises both a little (E[1/n̄] > 1/E[n̄]). b is the weighted
least-squares slope Σ w δ_g δ_s / Σ w δ_s² with the inverse noise variance w = 1 / (α/n̄ + s²);
α and s² are the weighted least-squares fit of the mean squared residual (δ_g − b δ_s)²
against 1/n̄ in :data:`NOISE_BINS` logarithmic bins of n̄ (s² ≥ 0; weights: the inverse
variance of a bin's mean for Gaussian residuals); the two fits are iterated. α absorbs the
shot noise and the part of the n̄ noise that scales like it; s² the scatter that does not
fall with n̄ (structure below the smoothing scale: the counts see the voxel, the prior δ_s is
smoothed with σ_s). Two streaming passes over the mocks: the first sums N_gal, the second
sums δ_g², δ_g δ_s, δ_s², 1/n̄ per n̄ bin; one mock is in memory at a time.

Known limits
------------
Galaxies are gridded at their observed distances: the counts are smeared along the line of
sight by the distance errors (σ_d ≈ 0.46 σ_μ r, tens of Mpc/h at the survey's edge), which a
model of δ at the voxel does not include; the fitted b (smaller than the true bias where the
smearing is large) and s² partly absorb it, but the filter still places structures at their
smeared positions. Counts are Poisson, not Gaussian: at low n̄ the Gaussian noise α/n̄ is
the right variance but not the right distribution (a single galaxy in a voxel of n̄ = 0.05 is a
4σ datum), so the estimate is linear-optimal, not optimal; the floor n_min drops the least
informative voxels. The prior is linear and Gaussian while the smoothed δ of the mocks is
nonlinear (a skewed PDF with δ ≥ −1); a single linear bias b relates counts to δ at every
distance and density.
"""
from __future__ import annotations

import functools
from dataclasses import dataclass, field

import numpy as np

from zoa_lib.methods.baselines import BaselineError, WienerFilter, WienerResult, check_inputs, noise_sigma_v, solve_cg
from zoa_lib.universe import fourier
from zoa_lib.universe import velocity as vel
from zoa_lib.universe.cosmology import from_profile

#: Floor on the expected galaxies per voxel n̄ for a voxel to carry count data.
N_MIN = 0.05
#: HEALPix resolution of the angular part of n̄ (RING order, Galactic frame).
NSIDE = 8
#: Sub-points per voxel axis over which the angular map is averaged.
SUBSAMPLE = 3
#: Alternating (R, A) updates of the n̄ fit.
EM_ITERATIONS = 100
#: Updates of the leave-one-out n̄ of each mock, warm-started from the fit to all mocks.
LOO_ITERATIONS = 20
#: Logarithmic n̄ bins of the noise fit.
NOISE_BINS = 12


# =========================================================================== n̄ on the sky
@functools.lru_cache(maxsize=1)
def _sg_to_galactic_matrix() -> np.ndarray:
    """The rotation taking supergalactic Cartesian vectors to Galactic Cartesian ones."""
    from zoa_lib.survey.sky import sg_to_galactic

    l, b, _ = sg_to_galactic(*np.eye(3))
    l, b = np.radians(l), np.radians(b)
    return np.stack([np.cos(b) * np.cos(l), np.cos(b) * np.sin(l), np.sin(b)])  # columns: images of SG axes


def sky_weights(n: int, size: float, nside: int = NSIDE, subsample: int = SUBSAMPLE):
    """Sparse (N³, 12 nside²) matrix W (CSR; cached, do not modify): W_vp is the fraction of
    voxel v's subsample³ evenly spaced sub-points whose direction from the observer falls in
    HEALPix pixel p (RING, Galactic frame). Rows sum to 1. Cost ≈ 0.5 µs per sub-point
    (≈ 1 s at 32³, 30 s at 128³ with subsample 3), once per process."""
    if int(subsample) < 1 or int(nside) < 1:
        raise BaselineError(f"sky_weights: subsample and nside must be >= 1, got {subsample}, {nside}")
    return _sky_weights(int(n), float(size), int(nside), int(subsample))


@functools.lru_cache(maxsize=4)
def _sky_weights(n, size, nside, s):
    import scipy.sparse as sp

    from zoa_lib.survey.selection import sky_pixels

    dx = size / n
    x = -size / 2.0 + (np.arange(n) + 0.5) * dx
    off = ((np.arange(s) + 0.5) / s - 0.5) * dx
    sub = np.stack(np.meshgrid(off, off, off, indexing="ij"), -1).reshape(-1, 3)  # (s³, 3)
    yz = np.stack(np.meshgrid(x, x, indexing="ij"), -1).reshape(-1, 2)
    rot = _sg_to_galactic_matrix()
    ptr = np.arange(0, len(yz) * len(sub) + 1, len(sub))
    rows = []
    for i in range(n):  # one slab of N² voxels at a time
        centre = np.column_stack([np.full(len(yz), x[i]), yz])
        p = (centre[:, None, :] + sub[None, :, :]).reshape(-1, 3) @ rot.T
        lon = np.degrees(np.arctan2(p[:, 1], p[:, 0])) % 360.0
        lat = np.degrees(np.arctan2(p[:, 2], np.hypot(p[:, 0], p[:, 1])))
        m = sp.csr_matrix((np.full(len(p), 1.0 / len(sub)), sky_pixels(lon, lat, nside), ptr),
                          shape=(len(yz), 12 * nside ** 2))
        m.sum_duplicates()
        rows.append(m)
    return sp.vstack(rows, format="csr")


def shell_index(n: int, size: float, edges) -> np.ndarray:
    """(N³,) radial bin of each voxel centre in ``edges`` (Mpc/h), −1 outside them."""
    r = vel.radius_grid(n, size).ravel()
    k = np.digitize(r, edges) - 1
    return np.where((k >= 0) & (k < len(edges) - 1), k, -1)


def separable_nbar(n: int, size: float, edges, radial, angular, nside: int = NSIDE,
                   subsample: int = SUBSAMPLE) -> np.ndarray:
    """n̄_v = R(r_v) · ā_v (galaxies per voxel) on the N³ cube: ``radial`` R per shell of
    ``edges`` (Mpc/h; 0 outside them), ``angular`` A per HEALPix pixel averaged over each
    voxel's sub-points (:func:`sky_weights`)."""
    k = shell_index(n, size, np.asarray(edges, float))
    r = np.where(k >= 0, np.asarray(radial, float)[np.maximum(k, 0)], 0.0)
    a = sky_weights(int(n), float(size), int(nside), int(subsample)) @ np.asarray(angular, float)
    return (r * a).reshape(n, n, n)


def _em(c, n_mocks, k, nk, w, wt, A, n_iter):
    """(R, A) after ``n_iter`` alternating updates from A (module docstring); ``k`` the shell
    of every voxel (all in a shell)."""
    for it in range(n_iter + 1):
        a = w @ A
        expected = np.bincount(k, weights=a, minlength=nk) * n_mocks
        R = np.bincount(k, weights=c, minlength=nk) / np.maximum(expected, 1e-300)
        if it == n_iter:
            return R, A
        rv = R[k]
        mu = n_mocks * rv * a
        ratio = np.divide(c, mu, out=np.zeros_like(c), where=mu > 0)
        A = A * (wt @ (rv * ratio)) / np.maximum(wt @ rv, 1e-300)


def fit_nbar(total, n_mocks: int, size: float, nside: int = NSIDE, subsample: int = SUBSAMPLE,
             n_iter: int = EM_ITERATIONS, start=None):
    """Poisson maximum-likelihood separable fit of the summed counts ``total`` (N, N, N) of
    ``n_mocks`` mocks: returns (edges (Mpc/h, one voxel wide), R per shell, A per pixel), A
    normalised to a maximum of 1 (module docstring). ``start``: an earlier (R, A) to start
    from (A = 1 otherwise)."""
    n = total.shape[0]
    c = np.asarray(total, float).ravel()
    edges = np.arange(0.0, vel.radius_grid(n, size).max() + size / n, size / n)
    k = shell_index(n, size, edges)
    w = sky_weights(int(n), float(size), int(nside), int(subsample))
    A = np.ones(w.shape[1]) if start is None else np.asarray(start[1], float)
    R, A = _em(c, n_mocks, k, len(edges) - 1, w, w.T.tocsr(), A, n_iter)
    top = A.max()
    if top > 0:
        A, R = A / top, R * top
    return edges, R, A


# =========================================================================== the counts model
@dataclass
class CountsModel:
    """What the joint filter learns from training mocks (module docstring).

    nbar : (N, N, N) expected galaxies per voxel. bias : b (δ_g = b δ_s + ε). shot_noise : α
    and scatter : s² (dimensionless; Var ε = α / n̄ + s²). n_mocks : training mocks behind the
    fit. n_min : n̄ floor for count data (galaxies per voxel). size : cube side (Mpc/h).
    separable : the factors n̄ was built from ({"edges" Mpc/h, "radial" galaxies per voxel,
    "angular", "nside", "subsample"}), None when n̄ was given directly.
    """

    nbar: np.ndarray = field(repr=False)
    bias: float
    shot_noise: float = 1.0
    scatter: float = 0.0
    n_mocks: int = 0
    n_min: float = N_MIN
    size: float | None = None
    separable: dict | None = field(default=None, repr=False)

    def noise(self, nbar) -> np.ndarray:
        """Noise variance α / n̄ + s² of δ_g at expected counts ``nbar``."""
        return self.shot_noise / np.asarray(nbar, float) + self.scatter

    def to_dict(self) -> dict:
        """Plain JSON: the fit's numbers and the separable factors of n̄ (or n̄ itself as nested
        lists when it was not fitted); :meth:`from_dict` rebuilds the model."""
        out = {"bias": float(self.bias), "shot_noise": float(self.shot_noise), "scatter": float(self.scatter),
               "n_mocks": int(self.n_mocks), "n_min": float(self.n_min), "grid": int(self.nbar.shape[0]),
               "size": None if self.size is None else float(self.size),
               "units": {"nbar": "galaxies per voxel", "edges": "Mpc/h", "size": "Mpc/h"}}
        if self.separable is not None:
            out["separable"] = {k: (np.asarray(v, float).tolist() if k in ("edges", "radial", "angular") else int(v))
                                for k, v in self.separable.items()}
        else:
            out["nbar"] = np.asarray(self.nbar, float).tolist()
        return out

    @classmethod
    def from_dict(cls, d: dict) -> "CountsModel":
        """Inverse of :meth:`to_dict`."""
        try:
            sep = d.get("separable")
            if sep is not None:
                if d.get("size") is None:
                    raise ValueError("a separable n̄ needs the cube side 'size'")
                nbar = separable_nbar(int(d["grid"]), float(d["size"]), sep["edges"], sep["radial"],
                                      sep["angular"], int(sep["nside"]), int(sep["subsample"]))
            else:
                nbar = np.asarray(d["nbar"], float)
            return cls(nbar=nbar, bias=float(d["bias"]), shot_noise=float(d["shot_noise"]),
                       scatter=float(d.get("scatter", 0.0)), n_mocks=int(d.get("n_mocks", 0)),
                       n_min=float(d.get("n_min", N_MIN)), size=d.get("size"), separable=sep)
        except (KeyError, TypeError, ValueError) as e:
            raise BaselineError(f"counts model: not a counts model ({e})") from None


def _passes(mocks):
    """A zero-argument function giving a fresh iterable of the mocks for each pass."""
    if callable(mocks):
        return mocks
    if iter(mocks) is mocks:
        raise BaselineError("fit_counts_model: mocks must be a sequence or a function returning a fresh "
                            "iterable (two passes), not a one-shot iterator")
    return lambda: mocks


def _pair(x, delta):
    x = np.asarray(x, dtype=float)
    delta = np.asarray(delta, dtype=float)
    if x.ndim != 4 or x.shape[-1] != 2 or delta.shape != x.shape[:3] or len(set(x.shape[:3])) != 1:
        raise BaselineError(f"fit_counts_model: inputs (N, N, N, 2) and delta (N, N, N) expected, "
                            f"got {x.shape} and {delta.shape}")
    if not (np.all(np.isfinite(x)) and np.all(np.isfinite(delta))) or np.any(x[..., 0] < 0):
        raise BaselineError("fit_counts_model: inputs and delta must be finite, N_gal >= 0")
    return x[..., 0], delta


def _fit_noise(sgg, sgd, sdd, cnt, u, n_iter: int = 50):
    """b, α, s² from per-bin sums of δ_g², δ_g δ_s, δ_s², counts and mean 1/n̄ (module docstring)."""
    ok = cnt > 0
    sgg, sgd, sdd, cnt, u = sgg[ok], sgd[ok], sdd[ok], cnt[ok], u[ok]
    alpha, s2 = 1.0, 0.0
    for _ in range(n_iter):
        w = 1.0 / (alpha * u + s2)
        b = float(np.sum(w * sgd) / np.sum(w * sdd))
        q = (sgg - 2 * b * sgd + b * b * sdd) / cnt  # mean squared residual per bin
        wq = cnt * w ** 2  # inverse variance of q (Gaussian residuals)
        X = np.stack([u, np.ones_like(u)], 1)
        M = X.T @ (wq[:, None] * X)
        if len(u) >= 2 and np.linalg.cond(M) < 1e12:
            alpha, s2 = np.linalg.solve(M, X.T @ (wq * q))
        else:
            s2 = -1.0
        if s2 < 0 or alpha <= 0:
            alpha, s2 = float(np.sum(wq * q * u) / np.sum(wq * u * u)), 0.0
        alpha = float(alpha)
    return b, alpha, float(s2)


def fit_counts_model(mocks, size: float, r_max: float, n_min: float = N_MIN, nside: int = NSIDE,
                     subsample: int = SUBSAMPLE) -> CountsModel:
    """Fit n̄, b, α and s² on training mocks (module docstring).

    Parameters
    ----------
    mocks : (inputs (N, N, N, 2): N_gal, V_pec km/s; delta_true (N, N, N), the smoothed target)
        pairs, read twice (first n̄, then b, α, s²), one mock at a time: a sequence, or a
        function returning a fresh iterable of them for each pass (streaming shards).
    size : cube side (Mpc/h). r_max : b, α and s² use count voxels within r_max (Mpc/h).
    n_min : n̄ floor (galaxies per voxel). nside, subsample : the angular map of n̄.
    """
    if not n_min > 0:
        raise BaselineError(f"n_min: must be > 0 galaxies per voxel, got {n_min}")
    passes = _passes(mocks)
    total, count = None, 0
    for x, d in passes():
        n_gal, _ = _pair(x, d)
        if total is None:
            total = np.zeros_like(n_gal)
        elif n_gal.shape != total.shape:
            raise BaselineError(f"fit_counts_model: mocks of different grids ({n_gal.shape} and {total.shape})")
        total += n_gal
        count += 1
    if count == 0:
        raise BaselineError("fit_counts_model: no mock given")
    if count < 2:
        raise BaselineError("fit_counts_model: needs at least 2 mocks (b, α and s² are fitted against "
                            "n̄ of the other mocks)")
    n = total.shape[0]
    edges, radial, angular = fit_nbar(total, count, size, nside, subsample)
    nbar = separable_nbar(n, size, edges, radial, angular, nside, subsample)
    sel = (nbar >= n_min) & (vel.radius_grid(n, size) <= r_max)
    if not sel.any():
        raise BaselineError(f"fit_counts_model: no voxel within r_max = {r_max} Mpc/h has n̄ >= {n_min}")
    bins = np.geomspace(n_min, nbar[sel].max() * (1 + 1e-9), NOISE_BINS + 1)
    k = np.clip(np.digitize(nbar[sel], bins) - 1, 0, NOISE_BINS - 1)
    sums = np.zeros((5, NOISE_BINS))  # Σ δ_g², Σ δ_g δ_s, Σ δ_s², count, Σ 1/n̄ per n̄ bin
    m2 = 0
    for x, d in passes():
        n_gal, delta = _pair(x, d)
        # n̄ of the other mocks (warm-started from the full fit): the mock's own structure
        # must not be in its n̄, as it is not in a test mock's
        _, r_i, a_i = fit_nbar(total - n_gal, count - 1, size, nside, subsample, LOO_ITERATIONS,
                               start=(radial, angular))
        nb = separable_nbar(n, size, edges, r_i, a_i, nside, subsample)[sel]
        ok = nb >= n_min  # as the filter would use them
        dg = n_gal[sel][ok] / nb[ok] - 1.0
        ds = delta[sel][ok]
        for i, v in enumerate((dg * dg, dg * ds, ds * ds, np.ones_like(dg), 1.0 / nb[ok])):
            sums[i] += np.bincount(k[ok], weights=v, minlength=NOISE_BINS)
        m2 += 1
    if m2 != count:
        raise BaselineError(f"fit_counts_model: the second pass read {m2} mocks, the first {count}")
    if not np.sum(sums[2]) > 0:
        raise BaselineError("fit_counts_model: the true δ is zero on every count voxel; b cannot be fitted")
    b, alpha, s2 = _fit_noise(*sums[:4], sums[4] / np.maximum(sums[3], 1))
    if not (b > 0 and alpha > 0):
        raise BaselineError(f"fit_counts_model: fitted b = {b:.3g}, α = {alpha:.3g}; both must be > 0")
    return CountsModel(nbar=nbar, bias=b, shot_noise=alpha, scatter=s2, n_mocks=count, n_min=float(n_min),
                       size=float(size), separable={"edges": edges, "radial": radial, "angular": angular,
                                                    "nside": int(nside), "subsample": int(subsample)})


def _check_counts(counts, n: int, size: float) -> None:
    if not isinstance(counts, CountsModel):
        raise BaselineError(f"counts: expected a CountsModel, got {type(counts).__name__}")
    shape = np.shape(counts.nbar)
    if shape != (n, n, n):
        raise BaselineError(f"counts: the counts model's n̄ has shape {shape}, the cube is {(n, n, n)}")
    if counts.size is not None and not np.isclose(counts.size, size):
        raise BaselineError(f"counts: the counts model is for a {counts.size:g} Mpc/h cube, the filter's is {size:g}")
    for name, value, low in (("bias", counts.bias, "> 0"), ("shot_noise", counts.shot_noise, "> 0"),
                             ("n_min", counts.n_min, "> 0"), ("scatter", counts.scatter, ">= 0")):
        if not np.isfinite(value) or (value < 0 if low == ">= 0" else value <= 0):
            raise BaselineError(f"counts: {name} must be finite and {low}, got {value}")
    if not np.all(np.isfinite(counts.nbar)) or np.any(np.asarray(counts.nbar) < 0):
        raise BaselineError("counts: n̄ must be finite and >= 0 in every voxel")


# =========================================================================== the joint filter
@dataclass
class JointData:
    """Where the data of one solve are: flat indices into the N³ cube of the count voxels ``flat_g`` and
    of the velocity voxels ``flat_v``, the velocity voxels' r̂ (n_v, 3), the bias b. It stands
    in for the flat indices of :class:`baselines.WienerFilter` (its ``len`` is the number of
    data), so that the inherited :meth:`~baselines.WienerFilter.estimates` works unchanged."""

    flat_g: np.ndarray
    flat_v: np.ndarray
    rhat: np.ndarray
    bias: float

    def __len__(self):
        return len(self.flat_g) + len(self.flat_v)


class JointWienerFilter(WienerFilter):
    """The Wiener-filter operators of :class:`baselines.WienerFilter` with count data too
    (module docstring). Build once per (grid, box, cosmology, smoothing, padding)."""

    def __init__(self, n: int, size: float, cosmo, smoothing: float = 0.0, pad: int = 2,
                 precision: str = "single"):
        super().__init__(n, size, cosmo, smoothing, pad, precision)
        wt = fourier.half_spectrum_weights(self.m)
        #: σ_δ² = (1/V) Σ_k P W²: the prior variance of δ at a point (for S_ii of a count)
        self.c_delta = float(np.sum(self.spec * wt) / self.m ** 3)

    def _psi(self, x, flat, rhat):
        """Ψ(k) of x on the data (module docstring); ``flat`` a :class:`JointData`, or the
        velocity filter's flat indices."""
        if not isinstance(flat, JointData):
            return super()._psi(x, flat, rhat)
        lay, m = flat, self.m
        ng = len(lay.flat_g)
        if len(lay.flat_v):
            psi = super()._psi(x[ng:], lay.flat_v, lay.rhat)
        else:
            psi = np.zeros((m, m, m // 2 + 1), np.result_type(self.real, np.complex64))
        if ng:
            n = self.n
            y = np.zeros(n ** 3, self.real)
            y[lay.flat_g] = x[:ng]
            psi += (1j * lay.bias) * self._spec_t * fourier.rfftn_padded(y.reshape(n, n, n), m, self.workers)
        return psi

    def apply_signal(self, x, flat, rhat=None):
        """S x for x on the data of ``flat`` (a :class:`JointData`, or as in the velocity filter)."""
        if not isinstance(flat, JointData):
            return super().apply_signal(x, flat, rhat)
        lay = flat
        ng = len(lay.flat_g)
        psi = self._psi(np.asarray(x, dtype=float), lay, None)
        out = np.zeros(len(lay))
        if ng:
            delta = fourier.irfftn_corner(-1j * psi, self.n, self.workers).ravel()
            out[:ng] = lay.bias * delta[lay.flat_g]
        for a in range(3 if len(lay.flat_v) else 0):
            out[ng:] += lay.rhat[:, a] * self._velocity_grid(psi, a).ravel()[lay.flat_v]
        return out

    def solve(self, n_gal, v_pec, sigma_v, counts: CountsModel | None, exclude=None, tol: float = 1e-5,
              maxiter: int = 500, x0=None, use_velocities: bool = True) -> WienerResult:
        """Wiener-filter δ, φ and v from gridded counts and radial velocities.

        Parameters
        ----------
        n_gal, v_pec : (N, N, N) galaxies per voxel and their mean radial velocity (km/s).
        sigma_v : per-galaxy velocity error (km/s): a number or an (N, N, N) array.
        counts : the :class:`CountsModel` (n̄, b, α, s²); None: no count data (the velocity filter).
        exclude : (N, N, N) bool, voxels whose counts and velocities are left out.
        tol, maxiter : CG relative residual tolerance and iteration cap.
        use_velocities : False leaves the velocities out (a counts-only filter).
        """

        n_gal, v_pec = check_inputs(n_gal, v_pec)
        self.check_tol(tol)
        n, m = self.n, self.m
        if n_gal.shape[0] != n:
            raise BaselineError(f"inputs: grid {n_gal.shape[0]}^3 but the filter was built for {n}^3")
        keep = np.ones((n, n, n), bool) if exclude is None else ~np.asarray(exclude, bool)
        empty = np.zeros(0, np.int64)
        flat_g, d_g, noise_g, b = empty, np.zeros(0), np.zeros(0), 0.0
        if counts is not None:
            _check_counts(counts, n, self.size)
            nbar = np.asarray(counts.nbar, float)
            gmask = (nbar >= counts.n_min) & keep
            flat_g = np.flatnonzero(gmask)
            d_g = n_gal[gmask] / nbar[gmask] - 1.0
            noise_g = counts.noise(nbar[gmask])
            b = float(counts.bias)
        flat_v, rhat, d_v, noise_v = empty, np.zeros((0, 3)), np.zeros(0), np.zeros(0)
        if use_velocities:
            vmask, flat_v, rhat = self.data_voxels(n_gal, exclude)
            sig = np.broadcast_to(np.asarray(sigma_v, dtype=float), (n, n, n))[vmask]
            if np.any(~(sig > 0)):
                raise BaselineError("sigma_v: the velocity error must be > 0 km/s in every data voxel")
            noise_v = sig ** 2 / n_gal[vmask]
            d_v = v_pec[vmask]
        lay = JointData(flat_g, flat_v, rhat, b)
        n_d = len(lay)
        if n_d == 0:
            z = np.zeros((n, n, n))
            return WienerResult(z, z.copy(), np.zeros((n, n, n, 3)), 0, True, 0)
        d = np.concatenate([d_g, d_v])
        noise = np.concatenate([noise_g, noise_v])
        diag = np.concatenate([b * b * self.c_delta + noise_g, self.c0 * np.sum(rhat ** 2, axis=1) + noise_v])
        x, iterations, converged = solve_cg(lambda x: self.apply_signal(x, lay), noise, diag, d, x0=x0, tol=tol,
                                            maxiter=maxiter, name="joint Wiener filter")
        return self.estimates(x, lay, None, iterations=iterations, converged=converged)


def wiener_joint(inputs, profile, operator: JointWienerFilter | None = None, counts: CountsModel | None = None,
                 sigma_nl: float = 0.0, exclude_zoa: bool = False) -> WienerResult:
    """The profile's joint Wiener filter of one mock's ``inputs`` (N, N, N, 2) (N_gal, V_pec in
    km/s, V_pec already corrected for the radial bias if wanted, as for ``wiener_cal``), with
    the ``counts`` model fitted on training mocks (:func:`fit_counts_model`); velocity noise
    from :func:`baselines.noise_sigma_v` with the small-scale dispersion ``sigma_nl`` (km/s),
    prior smoothed with ``box.smoothing``, CG tolerance and cap from
    ``evaluation.wiener_tol/maxiter``; ``exclude_zoa`` leaves out every datum at |b| < ``survey.zoa_b``."""
    from zoa_lib.survey.sky import zoa_mask

    inputs = np.asarray(inputs)
    n, L = profile.box.grid, profile.box.size
    if inputs.shape != (n, n, n, 2):
        raise BaselineError(f"inputs: expected shape {(n, n, n, 2)} for profile {profile.name!r}, got {inputs.shape}")
    if counts is None:
        raise BaselineError("counts: the joint Wiener filter needs a counts model fitted on training mocks "
                            "(fit_counts_model)")
    op = operator or JointWienerFilter(n, L, from_profile(profile), profile.box.smoothing)
    if not isinstance(op, JointWienerFilter):
        raise BaselineError(f"operator: expected a JointWienerFilter, got {type(op).__name__}")
    return op.solve(inputs[..., 0], inputs[..., 1], noise_sigma_v(profile, sigma_nl), counts,
                    exclude=zoa_mask(n, L, profile.survey.zoa_b) if exclude_zoa else None,
                    tol=profile.evaluation.wiener_tol, maxiter=profile.evaluation.wiener_maxiter)
