"""Velocity frames of redshifts: heliocentric, Local Group, CMB (km/s; directions via astropy).

A catalogue's redshift velocity cz (km/s) is measured in some rest frame; the pipeline
works in the CMB frame (:data:`CMB`). Converting needs the observer's (the Sun's) velocity
relative to that frame, projected on each galaxy's direction n̂::

    1 + z_cmb = (1 + z_helio) (1 + v_sun · n̂ / c)                 (:func:`to_cmb`)

with cz = c z. This is the Doppler composition of redshifts to **first order in
v_sun / c** (the exact factor γ (1 + β cos θ) differs by β²/2 ≈ 7.6e-7, i.e. below
0.3 km/s for any galaxy at z < 0.1); it is exact in z_helio (no expansion in z). The
inverse (:func:`from_cmb`) divides by the same factor, so the round trip is exact to
rounding.

Velocities of the Sun (``Motion``: speed in km/s toward Galactic (l, b) in deg):

* :data:`SUN_CMB` — relative to the CMB: 369.82 ± 0.11 km/s toward (l, b) = (264.021°,
  48.253°) (Planck Collaboration 2020, *Planck 2018 results. I.*, A&A 641, A1, table 3).
* :data:`SUN_LG` — relative to the Local Group barycentre: 318 ± 20 km/s toward (l, b) =
  (106° ± 4°, −6° ± 4°) (Tully, Shaya, Karachentsev et al. 2008, ApJ 676, 184, eq. 2;
  close to Courteau & van den Bergh 1999, AJ 118, 337: 306 ± 18 km/s toward (99°, −4°)).
  A local-group-frame cz is first made heliocentric, cz_helio from 1 + z_LG = (1 + z_helio)
  (1 + v_LG · n̂ / c), then CMB.

Directions (the apex and each galaxy's n̂) are unit vectors of astropy's
:class:`~astropy.coordinates.Galactic` frame (Galactic Cartesian), never hand-typed
rotation matrices.

:func:`fit_dipole` fits a dipole to radial peculiar velocities (least squares), and
:func:`heliocentric_suspect` says whether a dipole looks like the Sun's motion left in
CMB-declared velocities (the catalogue reader's frame check).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from zoa_lib.errors import ZoaError
from zoa_lib.universe.cosmology import C_LIGHT

#: Frame names accepted by the catalogue reader (``auto``: the layout's or column's frame).
FRAMES = ("auto", "cmb", "heliocentric", "local-group")
CMB, HELIOCENTRIC, LOCAL_GROUP = "cmb", "heliocentric", "local-group"


class FrameError(ZoaError, ValueError):
    """An unknown velocity frame."""


@dataclass(frozen=True)
class Motion:
    """A velocity: ``speed`` (km/s) toward Galactic (``l``, ``b``) (deg), with its reference."""

    speed: float
    l: float
    b: float
    reference: str

    def vector(self) -> np.ndarray:
        """(3,) velocity in Galactic Cartesian axes, km/s (astropy)."""
        return self.speed * galactic_unit_vectors(self.l, self.b)


#: The Sun's velocity relative to the CMB (Planck 2018).
SUN_CMB = Motion(369.82, 264.021, 48.253,
                 "Planck Collaboration 2020, A&A 641, A1 (Planck 2018 I), table 3: 369.82 ± 0.11 km/s "
                 "toward (l, b) = (264.021°, 48.253°)")
#: The Sun's velocity relative to the Local Group barycentre (Tully et al. 2008).
SUN_LG = Motion(318.0, 106.0, -6.0,
                "Tully et al. 2008, ApJ 676, 184: 318 ± 20 km/s toward (l, b) = (106°, −6°)")
#: The Sun's motion relative to the rest frame of each convertible input frame.
SUN_MOTION = {CMB: SUN_CMB, LOCAL_GROUP: SUN_LG}


def galactic_unit_vectors(l_deg, b_deg) -> np.ndarray:
    """Unit vectors (..., 3) in Galactic Cartesian axes of the directions Galactic (l, b) in
    degrees (astropy's :class:`~astropy.coordinates.Galactic` frame)."""
    import astropy.units as u
    from astropy.coordinates import Galactic, UnitSphericalRepresentation

    l = np.asarray(l_deg, dtype=np.float64)
    b = np.asarray(b_deg, dtype=np.float64)
    c = Galactic(UnitSphericalRepresentation(l * u.deg, b * u.deg)).cartesian
    return np.stack([np.asarray(c.x.value), np.asarray(c.y.value), np.asarray(c.z.value)], axis=-1)


def galactic_direction(vec) -> tuple[float, float]:
    """Galactic (l, b) in degrees of a (3,) vector in Galactic Cartesian axes (astropy)."""
    import astropy.units as u
    from astropy.coordinates import CartesianRepresentation, Galactic

    x, y, z = np.asarray(vec, dtype=np.float64)
    g = Galactic(CartesianRepresentation(x * u.one, y * u.one, z * u.one))
    return float(g.l.deg), float(g.b.deg)


def projected_speed(motion: Motion, l_deg, b_deg) -> np.ndarray:
    """v · n̂ (km/s): ``motion`` projected on the directions Galactic (l, b) (deg)."""
    return galactic_unit_vectors(l_deg, b_deg) @ motion.vector()


def _factor(motion: Motion, l_deg, b_deg) -> np.ndarray:
    return 1.0 + projected_speed(motion, l_deg, b_deg) / C_LIGHT


def _check(frame: str) -> str:
    if frame not in (CMB, HELIOCENTRIC, LOCAL_GROUP):
        raise FrameError(f"unknown velocity frame {frame!r} (known: {CMB}, {HELIOCENTRIC}, {LOCAL_GROUP})")
    return frame


def to_cmb(cz, l_deg, b_deg, frame: str = HELIOCENTRIC) -> np.ndarray:
    """cz (km/s) in ``frame`` (``heliocentric``, ``local-group`` or ``cmb``) → cz in the CMB
    frame, for galaxies at Galactic (l, b) (deg): 1 + z_cmb = (1 + z_helio)(1 + v_sun·n̂/c),
    first order in v_sun/c (module docstring); a local-group cz is made heliocentric first."""
    z = np.asarray(cz, dtype=np.float64) / C_LIGHT
    frame = _check(frame)
    if frame == CMB:
        return z * C_LIGHT
    if frame == LOCAL_GROUP:
        z = (1.0 + z) / _factor(SUN_LG, l_deg, b_deg) - 1.0
    return C_LIGHT * ((1.0 + z) * _factor(SUN_CMB, l_deg, b_deg) - 1.0)


def from_cmb(cz_cmb, l_deg, b_deg, frame: str = HELIOCENTRIC) -> np.ndarray:
    """The inverse of :func:`to_cmb`: CMB-frame cz (km/s) → cz in ``frame`` (e.g. to make
    heliocentric mock tables)."""
    frame = _check(frame)
    z = np.asarray(cz_cmb, dtype=np.float64) / C_LIGHT
    if frame == CMB:
        return z * C_LIGHT
    z = (1.0 + z) / _factor(SUN_CMB, l_deg, b_deg) - 1.0
    if frame == LOCAL_GROUP:
        z = (1.0 + z) * _factor(SUN_LG, l_deg, b_deg) - 1.0
    return C_LIGHT * z


# --------------------------------------------------------------------------- dipole check
#: Galaxies used by the frame check: d_obs below this (Mpc/h).
DIPOLE_D_MAX = 60.0
#: Velocity dispersion (km/s) added in quadrature to sigma_v in the dipole fit's weights.
DIPOLE_SIGMA_STAR = 300.0
#: The check: |B| above this (km/s) and −B within :data:`SUSPECT_ANGLE` of the Sun's CMB
#: apex, i.e. the dipole the Sun's motion leaves in heliocentric velocities read as CMB.
SUSPECT_SPEED = 250.0
SUSPECT_ANGLE = 30.0
#: Fewest galaxies for the check to be made.
DIPOLE_MIN_N = 50


def fit_dipole(v_r, l_deg, b_deg, sigma_v=None, sigma_star: float = DIPOLE_SIGMA_STAR) -> dict:
    """Least-squares dipole of radial peculiar velocities: v_r ≈ m + B · n̂, weights
    1 / (sigma_v² + sigma_star²) (km/s; unweighted without ``sigma_v``). The monopole m
    absorbs a distance-scale (H0) mismatch so that a partial sky does not leak it into B.

    Returns {"n", "B" (km/s), "l", "b" (deg, Galactic, of B), "vector" (3 floats, Galactic
    Cartesian, km/s), "monopole" (km/s), "B_err" (km/s, rms of the per-axis formal errors)}."""
    v = np.asarray(v_r, dtype=np.float64)
    n_hat = galactic_unit_vectors(l_deg, b_deg).reshape(-1, 3)
    A = np.column_stack([np.ones(len(v)), n_hat])
    s2 = (np.zeros_like(v) if sigma_v is None else np.asarray(sigma_v, np.float64) ** 2) + sigma_star ** 2
    w = 1.0 / s2
    Aw = A * w[:, None]
    cov = np.linalg.inv(A.T @ Aw)
    p = cov @ (Aw.T @ v)
    B = p[1:]
    l, b = galactic_direction(B)
    return {"n": int(len(v)), "B": float(np.linalg.norm(B)), "l": l, "b": b, "vector": [float(x) for x in B],
            "monopole": float(p[0]), "B_err": float(np.sqrt(np.trace(cov[1:, 1:]) / 3.0))}


def angle_deg(u, v) -> float:
    """Angle (deg) between two 3-vectors."""
    u, v = np.asarray(u, np.float64), np.asarray(v, np.float64)
    c = u @ v / (np.linalg.norm(u) * np.linalg.norm(v))
    return float(np.degrees(np.arccos(np.clip(c, -1.0, 1.0))))


def heliocentric_suspect(dipole: dict, speed: float = SUSPECT_SPEED, angle: float = SUSPECT_ANGLE) -> bool:
    """Whether a dipole of CMB-declared velocities (:func:`fit_dipole`) looks like the Sun's
    motion left in: |B| > ``speed`` (km/s) and −B within ``angle`` (deg) of the Sun's CMB apex."""
    if dipole["n"] < DIPOLE_MIN_N or not dipole["B"] > speed:
        return False
    return angle_deg(-np.asarray(dipole["vector"]), SUN_CMB.vector()) < angle
