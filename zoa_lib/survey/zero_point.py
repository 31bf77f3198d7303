"""The catalogue's zero point — the H0 of its distances — as a nuisance parameter.

A distance catalogue's moduli carry a zero point: distances in Mpc/h are d = d_Mpc h_cat with
the catalogue's h_cat = H0/100 (CF4 74.6, CF3 75 km/s/Mpc). If the distances' true scale is
h' = h_cat e^a instead, every distance grows by e^a and, since the Watkins–Feldman estimator
is linear in ln d (:func:`zoa_lib.survey.distances.watkins_feldman_velocity`), every velocity shifts by

    v' = v − u a,    u = c z_mod / (1 + z_mod)   (km/s; ≈ cz at low z)              (1)

exactly: a monopole that grows with redshift, an outflow (a < 0 wanted) or an infall. The
velocities of the real universe have no such monopole in the mean, so CF analyses fit a (or
H0) as a nuisance parameter. Here the fit is done on the galaxies themselves, after removing
the inhomogeneous Malmquist bias of the observed velocities measured on mocks that copy the
catalogue's selection (:func:`calibrate`; b(s) = ⟨v_obs − v_true⟩ in shells of redshift distance
s), by weighted least squares over galaxies with 0 < s ≤ ``s_max``::

    â = Σ w u (v − b(s)) / Σ w u²,   w = 1 / (σ_v² + σ_nl²)                            (2)

(the correction to apply, :func:`shift_zero_point`). Its error is the scatter of the same fit on
the reference mocks, whose true a is 0 (the cosmic variance of the local monopole plus the
distance noise), not the formal least-squares error. :func:`radial_flow` measures what the fit
is for: the mean radial velocity of a reconstruction in shells, which should then be consistent
with zero at every distance.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from zoa_lib.errors import ZoaError
from zoa_lib.survey import distances, galaxies
from zoa_lib.universe.cosmology import C_LIGHT

#: Galaxies up to this redshift distance (Mpc/h) enter the fit (the shells the book checks).
S_MAX = 70.0
#: Width of the shells of the Malmquist bias b(s), Mpc/h.
S_BIN = 10.0
#: Nonlinear velocity dispersion added in quadrature to each galaxy's error in the weights, km/s.
SIGMA_NL = 250.0


class ZeroPointError(ZoaError, ValueError):
    """A zero point that cannot be fitted (no galaxies, no reference mocks)."""


def velocity_lever(cz) -> np.ndarray:
    """u = c z_mod / (1 + z_mod) (km/s) of equation (1): how much a galaxy's Watkins–Feldman
    velocity drops when its distance grows by a factor e (dv/da = −u)."""
    zm = distances.z_mod(np.asarray(cz, np.float64) / C_LIGHT)
    return C_LIGHT * zm / (1.0 + zm)


def shift_zero_point(catalog, a: float) -> np.ndarray:
    """The catalogue as if its distances were on the scale h' = h e^a: luminosity distances times
    e^a (comoving ones and the positions follow), velocities v − u a (equation 1; exact for the
    Watkins–Feldman estimator, the linear one's rows with cz ≤ 0 shift by −H0 d (e^a − 1))."""
    cat = np.array(catalog, copy=True)
    d_obs = np.asarray(cat["d_obs"], np.float64)
    d_L = distances.luminosity_from_comoving_distance(d_obs) * np.exp(a)
    d_new = distances.comoving_from_luminosity_distance(d_L)
    scale = np.divide(d_new, d_obs, out=np.ones_like(d_new), where=d_obs > 0)
    for k in ("SGX", "SGY", "SGZ"):
        cat[k] = np.asarray(cat[k], np.float64) * scale
    cat["d_obs"] = d_new
    cz = np.asarray(cat["cz"], np.float64)
    v = np.asarray(cat["v_r_obs"], np.float64)
    red = cz > 0
    v_new = v.copy()
    v_new[red] = v[red] - velocity_lever(cz[red]) * a
    v_new[~red] = v[~red] - 100.0 * d_L[~red] * np.exp(-a) * (np.exp(a) - 1.0)
    cat["v_r_obs"] = v_new
    return cat


@dataclass(frozen=True)
class ZeroPointCalibration:
    """What the fit needs from mocks of the catalogue's selection: the Malmquist bias b(s) (km/s)
    in shells ``edges`` (Mpc/h) of redshift distance, and the scatter ``a_sigma`` of â over the
    ``n_mocks`` reference mocks (true a = 0)."""

    edges: np.ndarray
    bias: np.ndarray
    a_sigma: float
    a_mean: float
    n_mocks: int
    s_max: float
    sigma_nl: float

    def b(self, s) -> np.ndarray:
        """b(s) (km/s) by linear interpolation between shell centres; 0 where no mock galaxy was."""
        c = 0.5 * (self.edges[1:] + self.edges[:-1])
        ok = np.isfinite(self.bias)
        if not ok.any():
            return np.zeros_like(np.asarray(s, np.float64))
        return np.interp(s, c[ok], self.bias[ok])


@dataclass(frozen=True)
class ZeroPoint:
    """A fitted zero point: ``a`` = ln(h'/h) to apply (:func:`shift_zero_point`), its error
    ``a_err`` (the mocks' scatter), ``h0_catalog`` (km/s/Mpc, as read) and ``h0_fit`` = h0 e^a
    with ``h0_fit_err``; ``n`` galaxies used (0 < s ≤ ``s_max`` Mpc/h); ``n_mocks`` behind the error."""

    a: float
    a_err: float
    h0_catalog: float | None
    h0_fit: float | None
    h0_fit_err: float | None
    n: int
    s_max: float
    n_mocks: int

    def to_dict(self) -> dict:
        return {**asdict(self), "units": {"h0_catalog": "km/s/Mpc", "h0_fit": "km/s/Mpc", "s_max": "Mpc/h",
                                          "a": "ln(h_fit / h_catalog)"}}


def _fit(catalog, cal_b, s_max: float, sigma_nl: float) -> tuple[float, int]:
    cz = np.asarray(catalog["cz"], np.float64)
    s = np.where(cz > 0, distances.comoving_distance(np.maximum(cz, 0.0) / C_LIGHT), 0.0)
    use = (cz > 0) & (s <= s_max)
    if not use.any():
        return float("nan"), 0
    u = velocity_lever(cz[use])
    r = np.asarray(catalog["v_r_obs"], np.float64)[use] - cal_b(s[use])
    w = 1.0 / (np.asarray(catalog["sigma_v"], np.float64)[use] ** 2 + sigma_nl ** 2)
    return float(np.sum(w * u * r) / np.sum(w * u * u)), int(use.sum())


def calibrate(reference, s_max: float = S_MAX, sigma_nl: float = SIGMA_NL) -> ZeroPointCalibration:
    """The Malmquist bias b(s) and the scatter of â from mock catalogues that copy the
    catalogue's selection (with their true velocities ``v_r_true``), e.g.
    :func:`zoa_lib.survey.domain.training_reference`."""
    reference = [np.asarray(c) for c in reference]
    if len(reference) < 2:
        raise ZeroPointError("a zero-point calibration needs at least 2 reference mocks (their scatter is its error)")
    edges = np.arange(0.0, s_max + S_BIN + 1e-9, S_BIN)
    pooled = np.concatenate(reference)
    bias = galaxies.velocity_bias_by_shell(pooled, edges, by="cz")["bias"]
    cal = ZeroPointCalibration(edges=edges, bias=bias, a_sigma=float("nan"), a_mean=float("nan"),
                               n_mocks=len(reference), s_max=float(s_max), sigma_nl=float(sigma_nl))
    a = np.array([_fit(c, cal.b, s_max, sigma_nl)[0] for c in reference])
    a = a[np.isfinite(a)]
    return ZeroPointCalibration(edges=edges, bias=bias, a_sigma=float(np.std(a, ddof=1)) if a.size > 1 else float("nan"),
                                a_mean=float(np.mean(a)) if a.size else float("nan"), n_mocks=len(reference),
                                s_max=float(s_max), sigma_nl=float(sigma_nl))


def fit_zero_point(catalog, calibration: ZeroPointCalibration, h0_catalog: float | None = None) -> ZeroPoint:
    """Equation (2) on a real catalogue (module docstring); ``h0_catalog`` (km/s/Mpc) turns â into H0."""
    a, n = _fit(catalog, calibration.b, calibration.s_max, calibration.sigma_nl)
    if n == 0:
        raise ZeroPointError(f"no galaxy with 0 < s <= {calibration.s_max:g} Mpc/h to fit the zero point with")
    h0 = None if h0_catalog is None else float(h0_catalog)
    return ZeroPoint(a=a, a_err=calibration.a_sigma, h0_catalog=h0,
                     h0_fit=None if h0 is None else h0 * float(np.exp(a)),
                     h0_fit_err=None if h0 is None else h0 * float(np.exp(a)) * calibration.a_sigma,
                     n=n, s_max=calibration.s_max, n_mocks=calibration.n_mocks)


def radial_flow(velocity, size: float, edges) -> dict:
    """Mean radial velocity ⟨v · r̂⟩ (km/s) of a cube's velocity field (N, N, N, 3), SG axes,
    observer at the centre, in shells ``edges`` (Mpc/h) of voxel-centre distance: {"edges",
    "v_r" (mean per shell), "n_voxels"}. A spurious zero point shows as a v_r growing with r."""
    from zoa_lib.universe.velocity import radial_velocity, radius_grid

    v = np.asarray(velocity, np.float64)
    n = v.shape[0]
    vr = radial_velocity(v, size)
    r = radius_grid(n, size)
    edges = np.asarray(edges, np.float64)
    idx = np.digitize(r, edges) - 1
    ok = (idx >= 0) & (idx < edges.size - 1)
    cnt = np.bincount(idx[ok], minlength=edges.size - 1)
    tot = np.bincount(idx[ok], weights=vr[ok], minlength=edges.size - 1)
    return {"edges": edges.tolist(), "v_r": np.where(cnt > 0, tot / np.maximum(cnt, 1), np.nan).tolist(),
            "n_voxels": cnt.tolist(), "units": {"edges": "Mpc/h", "v_r": "km/s"}}


def radial_flow_spread(profile, edges, split: str = "test", n_max: int = 64) -> dict | None:
    """The scatter (ddof 1, km/s) over the ``split`` mocks of the profile of the *true* mean radial
    velocity in shells ``edges`` (Mpc/h): the cosmic variance of the local monopole, the yardstick
    against which a reconstruction's radial flow is "consistent with zero". {"edges", "std",
    "mean", "n_mocks"}; None without shards of that split."""
    from zoa_lib.survey import shards

    folder = shards.mocks_dir(profile)
    paths = shards.shard_paths(folder, split) if folder.is_dir() else []
    flows = []
    for p in paths:
        for v in shards.read_shard(p, load_catalog=False).targets["velocity"]:
            flows.append(radial_flow(v, profile.box.size, edges)["v_r"])
            if len(flows) >= n_max:
                break
        if len(flows) >= n_max:
            break
    if len(flows) < 2:
        return None
    f = np.asarray(flows, np.float64)
    return {"edges": list(map(float, edges)), "std": f.std(axis=0, ddof=1).tolist(), "mean": f.mean(axis=0).tolist(),
            "n_mocks": len(flows), "units": {"edges": "Mpc/h", "std": "km/s", "mean": "km/s"}}
