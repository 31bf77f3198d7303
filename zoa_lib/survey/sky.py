"""The sky seen from the cube's centre: sky frames, and cube fields sampled on the sky.

Computation only (:mod:`zoa_lib.book.viz` draws). Frames: Galactic (l, b) and supergalactic
(SGL, SGB), converted with astropy; the cube's axes are supergalactic Cartesian (SGX, SGY,
SGZ) with the observer at the centre. :func:`sample_shell` averages a cube field over a
distance shell on an equal-angle sky grid; :func:`~zoa_lib.analysis.metrics.shell_correlations` compares a true and a
predicted field shell by shell, on the whole sky and inside the Zone of Avoidance.
"""
from __future__ import annotations

import functools
import math

import numpy as np

from zoa_lib.errors import ZoaError
from zoa_lib.universe.grid import check_cube
from zoa_lib.universe.velocity import position_grid


class SkyError(ZoaError, ValueError):
    """Bad frame, shell or field given to a sky computation."""


#: Sky frames of the maps: name → (longitude symbol, latitude symbol, long name). Every
#: sky Axes (:func:`~zoa_lib.book.viz.skymaps.sky_axes`) carries one as ``ax.zoa_frame``; coordinates given to
#: :func:`~zoa_lib.book.viz.skymaps.sky_map` are in that frame, named structures and the ZOA (defined in Galactic
#: coordinates) are converted to it with astropy.
SKY_FRAMES = {"galactic": ("l", "b", "Galactic"), "supergalactic": ("SGL", "SGB", "Supergalactic")}


def check_frame(frame) -> str:
    if frame not in SKY_FRAMES:
        raise SkyError(f"unknown sky frame {frame!r} (known: {', '.join(SKY_FRAMES)})")
    return frame


def _sky_convert(lon_deg, lat_deg, src: str, dst: str):
    """(longitude, latitude) in degrees from sky frame ``src`` to ``dst`` (astropy)."""
    lon = np.asarray(lon_deg, dtype=float)
    lat = np.asarray(lat_deg, dtype=float)
    if check_frame(src) == check_frame(dst):
        return lon % 360.0, lat
    import astropy.units as u
    from astropy.coordinates import SkyCoord

    c = SkyCoord(lon * u.deg, lat * u.deg, frame=src).transform_to(dst).spherical
    return np.asarray(c.lon.to_value(u.deg)) % 360.0, np.asarray(c.lat.to_value(u.deg))


def galactic_to_frame(l_deg, b_deg, frame: str = "galactic"):
    """Galactic (l, b) in degrees → (longitude, latitude) in degrees of ``frame``
    ("galactic": l wrapped to [0, 360); "supergalactic": (SGL, SGB) from astropy)."""
    return _sky_convert(l_deg, b_deg, "galactic", frame)


def frame_to_galactic(lon_deg, lat_deg, frame: str = "galactic"):
    """(longitude, latitude) in degrees of ``frame`` → Galactic (l, b) in degrees (astropy)."""
    return _sky_convert(lon_deg, lat_deg, frame, "galactic")


def frame_unit_vectors(lon_deg, lat_deg, frame: str = "galactic") -> np.ndarray:
    """Unit vectors (..., 3) in supergalactic Cartesian (SGX, SGY, SGZ) — the cube's axes —
    of the directions (longitude, latitude) in degrees of ``frame`` (astropy)."""
    check_frame(frame)
    lon = np.asarray(lon_deg, dtype=float)
    lat = np.asarray(lat_deg, dtype=float)
    if frame == "galactic":
        return np.stack(galactic_to_sg(lon, lat, np.ones_like(lon)), axis=-1)
    import astropy.units as u
    from astropy.coordinates import Supergalactic, UnitSphericalRepresentation

    c = Supergalactic(UnitSphericalRepresentation(lon * u.deg, lat * u.deg)).represent_as("cartesian")
    return np.stack([np.asarray(c.x.value), np.asarray(c.y.value), np.asarray(c.z.value)], axis=-1)


def sky_grid(nside_like=(180, 90)):
    """Pixel centres (lon_deg (n_l,), lat_deg (n_b,)) of an equal-angle sky grid in any
    frame, columns ordered left to right as drawn (lon from 180° down to 0° then 360°
    down to 180°)."""
    n_l, n_b = int(nside_like[0]), int(nside_like[1])
    if n_l < 2 or n_b < 2:
        raise SkyError(f"sky grid needs at least 2 × 2 pixels, got {nside_like}")
    x = -180.0 + (np.arange(n_l) + 0.5) * 360.0 / n_l  # plot longitude, left to right
    l = (-x) % 360.0
    b = -90.0 + (np.arange(n_b) + 0.5) * 180.0 / n_b
    return l, b


def interpolate_cube(field, size: float, positions) -> np.ndarray:
    """Trilinear interpolation of a scalar cube field at SG positions (..., 3) in Mpc/h;
    NaN outside the cube |x| ≤ L/2 (constant extrapolation within half a voxel of a face)."""
    from scipy.ndimage import map_coordinates

    f = np.asarray(field, float)
    n = f.shape[0]
    pos = np.asarray(positions, float)
    idx = (pos + size / 2.0) * n / size - 0.5
    out = map_coordinates(f, np.moveaxis(idx, -1, 0).reshape(3, -1), order=1, mode="nearest")
    out = out.reshape(pos.shape[:-1])
    inside = np.all(np.abs(pos) <= size / 2.0, axis=-1)
    return np.where(inside, out, np.nan)


def sample_shell(field, size: float, r_lo: float, r_hi: float, nside_like=(180, 90), n_r: int | None = None,
                 frame: str = "galactic"):
    """Sky map of a cube field averaged over the shell ``r_lo < d < r_hi`` (Mpc/h).

    Each (longitude, latitude) pixel centre of :func:`sky_grid` in ``frame`` ("galactic":
    (l, b); "supergalactic": (SGL, SGB)) is converted to SG unit vectors with astropy
    (:func:`frame_unit_vectors`); the field is interpolated trilinearly at ``n_r``
    distances (mid-points of equal steps; default one per half voxel) and averaged with
    weights d² (the shell's volume element); points outside the cube are left out (NaN
    where none remain). A velocity cube (N, N, N, 3) gives the radial velocity
    v_r = v · r̂ in km/s.

    Returns (lon_deg (n_l,), lat_deg (n_b,), values (n_b, n_l)) in ``frame``.
    """
    f = check_cube(np.asarray(field), vector=None, error=SkyError)
    if not (0 <= r_lo < r_hi):
        raise SkyError(f"shell limits must satisfy 0 ≤ r_lo < r_hi, got {r_lo:g}, {r_hi:g}")
    n = f.shape[0]
    if n_r is None:
        n_r = max(2, int(math.ceil((r_hi - r_lo) / (0.5 * size / n))))
    l, b = sky_grid(nside_like)
    L, B = np.meshgrid(l, b)  # (n_b, n_l)
    u = frame_unit_vectors(L, B, frame)  # SG unit vectors (n_b, n_l, 3)
    r = r_lo + (np.arange(n_r) + 0.5) * (r_hi - r_lo) / n_r
    pos = r[:, None, None, None] * u[None]
    if f.ndim == 4:
        vals = sum(interpolate_cube(f[..., c], size, pos) * u[None, ..., c] for c in range(3))
    else:
        vals = interpolate_cube(f, size, pos)
    w = (r ** 2)[:, None, None] * np.isfinite(vals)
    num = np.nansum(np.nan_to_num(vals) * w, axis=0)
    den = w.sum(axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        out = np.where(den > 0, num / np.where(den > 0, den, 1.0), np.nan)
    return l, b, out


def sg_to_galactic(sgx, sgy, sgz):
    """Supergalactic Cartesian → Galactic (l, b, d), via astropy.

    Parameters: SGX, SGY, SGZ (any length unit, e.g. Mpc/h). Returns l in [0, 360) deg,
    b in [−90, 90] deg and the distance d in the input unit. Vectorised.
    """
    import astropy.units as u
    from astropy.coordinates import CartesianRepresentation, Galactic, Supergalactic

    x, y, z = (np.asarray(a, dtype=np.float64) for a in (sgx, sgy, sgz))
    sg = Supergalactic(CartesianRepresentation(x, y, z, unit=u.Mpc))
    sph = sg.transform_to(Galactic()).represent_as("spherical")
    return (np.asarray(sph.lon.to_value(u.deg)), np.asarray(sph.lat.to_value(u.deg)),
            np.asarray(sph.distance.to_value(u.Mpc)))


def galactic_to_sg(l, b, d):
    """Galactic (l, b in deg, distance d in any unit) → supergalactic (SGX, SGY, SGZ), via astropy."""
    import astropy.units as u
    from astropy.coordinates import Galactic, SphericalRepresentation, Supergalactic

    l, b, d = (np.asarray(a, dtype=np.float64) for a in (l, b, d))
    g = Galactic(SphericalRepresentation(l * u.deg, b * u.deg, d * u.Mpc))
    c = g.transform_to(Supergalactic()).represent_as("cartesian")
    return tuple(np.asarray(a.to_value(u.Mpc)) for a in (c.x, c.y, c.z))


def icrs_to_galactic(ra, dec):
    """Equatorial (ICRS, J2000) RA, Dec in deg → Galactic (l, b) in deg, via astropy."""
    import astropy.units as u
    from astropy.coordinates import ICRS, Galactic

    c = ICRS(ra=np.asarray(ra, np.float64) * u.deg, dec=np.asarray(dec, np.float64) * u.deg)
    g = c.transform_to(Galactic())
    return np.asarray(g.l.to_value(u.deg)), np.asarray(g.b.to_value(u.deg))


def galactic_to_icrs(l, b):
    """Galactic (l, b) in deg → ICRS (RA, Dec) in deg, via astropy."""
    import astropy.units as u
    from astropy.coordinates import ICRS, Galactic

    g = Galactic(l=np.asarray(l, np.float64) * u.deg, b=np.asarray(b, np.float64) * u.deg)
    c = g.transform_to(ICRS())
    return np.asarray(c.ra.to_value(u.deg)), np.asarray(c.dec.to_value(u.deg))


def supergalactic_to_galactic_angles(sgl, sgb):
    """Supergalactic (SGL, SGB) in deg → Galactic (l, b) in deg, via astropy."""
    import astropy.units as u
    from astropy.coordinates import Galactic, Supergalactic

    s = Supergalactic(sgl=np.asarray(sgl, np.float64) * u.deg, sgb=np.asarray(sgb, np.float64) * u.deg)
    g = s.transform_to(Galactic())
    return np.asarray(g.l.to_value(u.deg)), np.asarray(g.b.to_value(u.deg))


@functools.lru_cache(maxsize=8)
def _latitude_grid_cached(n: int, size: float) -> np.ndarray:
    pos = position_grid(n, size).reshape(-1, 3)
    b = np.asarray(sg_to_galactic(pos[:, 0], pos[:, 1], pos[:, 2])[1], dtype=float).reshape(n, n, n)
    b.setflags(write=False)
    return b


def galactic_latitude_grid(n: int, size: float) -> np.ndarray:
    """(N, N, N) Galactic latitude b (deg) of every voxel centre seen from the observer."""
    return _latitude_grid_cached(int(n), float(size))


def zoa_mask(n: int, size: float, zoa_b: float) -> np.ndarray:
    """True for voxels whose centre lies in the Zone of Avoidance wedge |b| < zoa_b (deg)."""
    return np.abs(galactic_latitude_grid(n, size)) < zoa_b
