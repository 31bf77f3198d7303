"""Distances, redshifts and peculiar-velocity estimators of a survey (WF15 cosmography).
"""
from __future__ import annotations

import numpy as np

from zoa_lib.errors import ZoaError
from zoa_lib.universe.cosmology import C_LIGHT
from zoa_lib.universe.cosmology import H0 as H0_DEFAULT

#: WF15 deceleration and jerk parameters of the cosmographic expansion.
Q0 = -0.55


J0 = 1.0


LN10_5 = np.log(10.0) / 5.0


_A2 = 0.5 * (1.0 - Q0)


_A3 = (1.0 - Q0 - 3.0 * Q0 ** 2 + J0) / 6.0


class SurveyError(ZoaError, ValueError):
    """Bad input to the survey/gridding functions (wrong shapes, unknown option)."""


def z_mod(z):
    """WF15's modified redshift: z [1 + ½(1 − q0) z − ⅙(1 − q0 − 3q0² + j0) z²] (q0=−0.55, j0=1)."""
    z = np.asarray(z, dtype=np.float64)
    return z * (1.0 + _A2 * z - _A3 * z * z)


def _dz_mod(z):
    return 1.0 + 2.0 * _A2 * z - 3.0 * _A3 * z * z


def luminosity_distance(z, H0: float = H0_DEFAULT):
    """Luminosity distance of redshift z: d_L = c z_mod(z) / H0 (Mpc/h for H0 = 100)."""
    return C_LIGHT * z_mod(z) / H0


def comoving_distance(z, H0: float = H0_DEFAULT):
    """Comoving distance of redshift z: d_C = d_L / (1 + z) (Mpc/h for H0 = 100)."""
    z = np.asarray(z, dtype=np.float64)
    return luminosity_distance(z, H0) / (1.0 + z)


def _invert(target, f, df, H0):
    """Solve f(z) = target H0 / c for z by Newton iterations (monotonic on z < 1)."""
    y = np.asarray(target, dtype=np.float64) * H0 / C_LIGHT
    z = y.copy()
    for _ in range(50):
        step = (f(z) - y) / df(z)
        z = z - step
        if np.all(np.abs(step) <= 1e-14 * np.maximum(1.0, np.abs(z))):
            break
    return z


def redshift_from_luminosity_distance(d_L, H0: float = H0_DEFAULT):
    """z such that :func:`luminosity_distance` (z) = d_L (Mpc/h)."""
    return _invert(d_L, z_mod, _dz_mod, H0)


def redshift_from_comoving_distance(d, H0: float = H0_DEFAULT):
    """Cosmological redshift z_cos of a comoving distance d (Mpc/h)."""
    f = lambda z: z_mod(z) / (1.0 + z)  # noqa: E731
    df = lambda z: (_dz_mod(z) * (1.0 + z) - z_mod(z)) / (1.0 + z) ** 2  # noqa: E731
    return _invert(d, f, df, H0)


def comoving_from_luminosity_distance(d_L, H0: float = H0_DEFAULT):
    """Comoving distance (Mpc/h) of a luminosity distance d_L (Mpc/h)."""
    d_L = np.asarray(d_L, dtype=np.float64)
    return d_L / (1.0 + redshift_from_luminosity_distance(d_L, H0))


def luminosity_from_comoving_distance(d, H0: float = H0_DEFAULT):
    """Luminosity distance (Mpc/h) of a comoving distance d (Mpc/h): (1 + z_cos) d."""
    d = np.asarray(d, dtype=np.float64)
    return d * (1.0 + redshift_from_comoving_distance(d, H0))


def observed_cz(d, v_r, H0: float = H0_DEFAULT):
    """Observed c z (km/s) of a galaxy at comoving distance d (Mpc/h) with radial
    peculiar velocity v_r (km/s): 1 + z = (1 + z_cos(d)) (1 + v_r / c)."""
    zc = redshift_from_comoving_distance(d, H0)
    return C_LIGHT * ((1.0 + zc) * (1.0 + np.asarray(v_r, np.float64) / C_LIGHT) - 1.0)


def redshift_distance(d, v_r, H0: float = H0_DEFAULT):
    """Redshift distance s (Mpc/h): the comoving distance of the observed redshift of a
    galaxy at comoving distance d (Mpc/h) with radial peculiar velocity v_r (km/s),
    s = d_C(z_obs), z_obs from :func:`observed_cz`; s ≈ d + v_r / H0 at low z. NaN where cz ≤ 0."""
    cz = observed_cz(d, v_r, H0)
    out = np.full(np.shape(cz), np.nan)
    pos = cz > 0
    out[pos] = comoving_distance(cz[pos] / C_LIGHT, H0)
    return out


def distance_modulus(d_L_mpc):
    """μ = 5 log10(d_L / Mpc) + 25 for d_L in Mpc."""
    return 5.0 * np.log10(np.asarray(d_L_mpc, np.float64)) + 25.0


def distance_from_modulus(mu):
    """d_L in Mpc of a distance modulus μ: 10^((μ − 25)/5)."""
    return 10.0 ** ((np.asarray(mu, np.float64) - 25.0) / 5.0)


def watkins_feldman_velocity(cz, d, H0: float = H0_DEFAULT):
    """WF15 peculiar velocity (km/s): v = [c z_mod / (1 + z_mod)] ln(c z_mod / (H0 d)).

    cz: observed redshift times c (km/s, > 0); d: luminosity distance (Mpc/h for H0=100).
    """
    zm = z_mod(np.asarray(cz, np.float64) / C_LIGHT)
    czm = C_LIGHT * zm
    return czm / (1.0 + zm) * np.log(czm / (H0 * np.asarray(d, np.float64)))


def watkins_feldman_sigma(cz, sigma_dm):
    """WF15 velocity error (km/s): σ_v = [c z_mod / (1 + z_mod)] (ln 10 / 5) σ_μ."""
    zm = z_mod(np.asarray(cz, np.float64) / C_LIGHT)
    return C_LIGHT * zm / (1.0 + zm) * LN10_5 * np.asarray(sigma_dm, np.float64)


def watkins_feldman_distance(cz, v, H0: float = H0_DEFAULT):
    """Inverse of :func:`watkins_feldman_velocity`: the luminosity distance (Mpc/h)
    that gives velocity v (km/s) at redshift cz: d = (c z_mod / H0) exp(−v (1 + z_mod) / (c z_mod))."""
    zm = z_mod(np.asarray(cz, np.float64) / C_LIGHT)
    czm = C_LIGHT * zm
    return czm / H0 * np.exp(-np.asarray(v, np.float64) * (1.0 + zm) / czm)


def sigma_dm_from_sigma_v(cz, sigma_v):
    """Inverse of :func:`watkins_feldman_sigma`: σ_μ (mag) from σ_v (km/s) at cz."""
    zm = z_mod(np.asarray(cz, np.float64) / C_LIGHT)
    return np.asarray(sigma_v, np.float64) / (C_LIGHT * zm / (1.0 + zm) * LN10_5)


def linear_velocity(cz, d, H0: float = H0_DEFAULT):
    """Linear estimator (km/s): v = c (z − z_cos) / (1 + z_cos), z_cos = the redshift of
    luminosity distance d (Mpc/h); equals cz − H0 d at low z."""
    z = np.asarray(cz, np.float64) / C_LIGHT
    zc = redshift_from_luminosity_distance(d, H0)
    return C_LIGHT * (z - zc) / (1.0 + zc)


def linear_sigma(cz, d, sigma_dm, H0: float = H0_DEFAULT):
    """Error of :func:`linear_velocity` for a distance-modulus error σ_μ (first order):
    σ_v = c (1 + z) / (1 + z_cos)² · z_mod(z_cos) / z_mod'(z_cos) · (ln 10 / 5) σ_μ
    (→ H0 d (ln 10 / 5) σ_μ at low z)."""
    z = np.asarray(cz, np.float64) / C_LIGHT
    zc = redshift_from_luminosity_distance(d, H0)
    return (C_LIGHT * (1.0 + z) / (1.0 + zc) ** 2 * z_mod(zc) / _dz_mod(zc)
            * LN10_5 * np.asarray(sigma_dm, np.float64))


def estimate_velocity(estimator: str, cz, d, sigma_dm, H0: float = H0_DEFAULT):
    """(v, σ_v) in km/s from cz (km/s), luminosity distance d (Mpc/h) and σ_μ (mag)
    with the named estimator (``watkins_feldman`` or ``linear``)."""
    if estimator == "watkins_feldman":
        return watkins_feldman_velocity(cz, d, H0), watkins_feldman_sigma(cz, sigma_dm)
    if estimator == "linear":
        return linear_velocity(cz, d, H0), linear_sigma(cz, d, sigma_dm, H0)
    raise SurveyError(f"survey.estimator: unknown estimator {estimator!r} (known: {', '.join(ESTIMATORS)})")


ESTIMATORS = ("watkins_feldman", "linear")
