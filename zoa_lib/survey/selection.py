"""The survey's selection: analytic, or measured from a real catalogue and copied by the mocks.

A network can only be trusted on data like those it was trained on. With the profile key
``survey.catalogue`` (e.g. ``data/cf3-group-members.tsv``) the mock surveys copy that
catalogue's selection instead of the analytic one of :func:`zoa_lib.survey.galaxies.draw_galaxies`:

Sky coverage
    a HEALPix map (``survey.catalogue_nside``, RING order, Galactic frame; astropy-healpix) of
    the pixels the catalogue observes: those holding at least :data:`MIN_PIXEL_FRACTION` of the
    median count of the occupied pixels. The Zone of Avoidance is then the ZOA *as the data
    show it* (a few pixels at |b| < 10° are observed where the data reach into it), and any
    missing sky (RA > 203° of the shipped CF4 rows) is missing in the mocks too.
Radial distribution, to the catalogue's full depth
    the number of galaxies n_k per bin of redshift distance s = d_C(cz / c) (Mpc/h, CMB frame),
    in bins of :data:`S_BIN` out to the catalogue's depth, capped where the parent box allows
    (:func:`survey_depth`). A particle of the parent box at redshift distance s in an observed
    pixel carries λ = n_k / N̄_k galaxies, with N̄_k = n̄ Ω (s_hi³ − s_lo³) / 3 the mean number of
    particles in the bin's observed volume (n̄ particles per (Mpc/h)³, Ω the observed solid
    angle): the mocks reproduce the catalogue's n(s) on average while their own large-scale
    structure fluctuates about it. Mock galaxies are drawn from the parent box out to that depth,
    beyond the 160 Mpc/h cube, so that distance errors scatter galaxies into the cube as they do
    in the data.
Distance errors as they depend on distance
    each mock galaxy takes the distance-modulus error σ_μ of a real galaxy drawn at random from
    the same redshift-distance bin (the catalogue's own errors, resampled), and its distance
    modulus is drawn with that error (:func:`zoa_lib.survey.galaxies.observe_galaxies`).

The number of galaxies inside the cube then follows from these three; :func:`compare_catalogues`
measures how close a mock is to the real catalogue (two-sample Kolmogorov–Smirnov statistics of
s, σ_μ, l and sin b; counts in the cube; velocity rms), for chapter 02.

Without ``survey.catalogue`` the analytic selection of :func:`zoa_lib.survey.galaxies.draw_galaxies`
stays. :func:`draw_survey` is the one entry point the mocks and the local universe call.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

import numpy as np

from zoa_lib.errors import ZoaError
from zoa_lib.io.paths import REPO_ROOT, display_path
from zoa_lib.io.provenance import file_sha256
from zoa_lib.survey import distances, galaxies, sky
from zoa_lib.universe.cosmology import C_LIGHT
from zoa_lib.universe.cosmology import H0 as H0_DEFAULT

#: Width of the redshift-distance bins of n(s) and of σ_μ(s), Mpc/h.
S_BIN = 10.0
#: A HEALPix pixel is observed when it holds at least this fraction of the median count of the
#: occupied pixels (a lone galaxy in a ZOA pixel does not make it observed).
MIN_PIXEL_FRACTION = 0.2
#: Particles are taken out to this far beyond the survey depth (Mpc/h): a galaxy's redshift
#: distance differs from its true one by v_r / H0 (a few tens of Mpc/h at most).
DEPTH_MARGIN = 30.0
#: The repository root (where ``data/`` lives in a checkout).


class SelectionError(ZoaError, ValueError):
    """A catalogue whose selection cannot be measured, or a survey that cannot copy it."""


# --------------------------------------------------------------------------- the measured selection
@dataclass(frozen=True)
class CatalogueSelection:
    """The selection of a real catalogue, as the mocks copy it (module docstring).

    source : the catalogue's path as shown to a reader; sha256 : its checksum.
    nside : HEALPix resolution; sky : (12 nside²,) bool, RING order, Galactic frame — observed pixels.
    s_edges : (K + 1,) redshift-distance bin edges, Mpc/h; n_s : (K,) galaxies per bin.
    e_dm : (n,) σ_μ (mag) of the catalogue's galaxies with s < s_edges[-1]; e_dm_bin : (n,) their bin.
    n_total : rows read; n_beyond : galaxies beyond the last edge (not copied by the mocks).
    h0, frame, groups : how the catalogue was read (H0 of its distances, km/s/Mpc; velocity frame).
    """

    source: str
    sha256: str
    nside: int
    sky: np.ndarray
    s_edges: np.ndarray
    n_s: np.ndarray
    e_dm: np.ndarray
    e_dm_bin: np.ndarray
    n_total: int
    n_beyond: int
    h0: float | None = None
    frame: str | None = None
    groups: bool = False
    notes: tuple = field(default=())

    @property
    def sky_fraction(self) -> float:
        """Fraction of the sphere observed."""
        return float(np.mean(self.sky))

    @property
    def depth(self) -> float:
        """The largest redshift distance the mocks copy, Mpc/h."""
        return float(self.s_edges[-1])

    def observed(self, l, b) -> np.ndarray:
        """Whether Galactic (l, b) (deg) falls in an observed pixel."""
        return self.sky[sky_pixels(l, b, self.nside)]

    def _error_bins(self, s) -> tuple[np.ndarray, np.ndarray]:
        """(the bin of each ``s`` (Mpc/h) whose distance errors it takes: its own, the nearest
        non-empty one where it is empty, the last beyond the depth; the count of errors per bin)."""
        nb = self.n_s.size
        count = np.bincount(self.e_dm_bin, minlength=nb)
        filled = np.flatnonzero(count)
        if filled.size == 0:
            raise SelectionError(f"{self.source}: no distance errors")
        near = filled[np.abs(filled[None, :] - np.arange(nb)[:, None]).argmin(axis=1)]  # (nb,): a lookup
        return near[np.clip(np.digitize(s, self.s_edges) - 1, 0, nb - 1)], count

    def sigma_dm_draw(self, s, rng: np.random.Generator) -> np.ndarray:
        """σ_μ (mag) for galaxies at redshift distances ``s`` (Mpc/h): each that of a real galaxy
        drawn at random from the same bin (the nearest non-empty bin where one is empty)."""
        k, count = self._error_bins(s)
        order = np.argsort(self.e_dm_bin, kind="stable")
        start = np.searchsorted(self.e_dm_bin[order], np.arange(self.n_s.size))
        u = rng.random(np.shape(s))
        pick = start[k] + np.minimum((u * count[k]).astype(np.int64), count[k] - 1)
        return self.e_dm[order][pick]

    def sigma_dm_rms(self, s) -> np.ndarray:
        """The rms σ_μ (mag) of the catalogue's galaxies in the redshift-distance bin of each ``s``
        (Mpc/h; the nearest non-empty bin where one is empty, the last bin beyond the depth): the
        distance error a Wiener filter's noise model should assume at that distance."""
        k, count = self._error_bins(s)
        sq = np.bincount(self.e_dm_bin, weights=self.e_dm ** 2, minlength=self.n_s.size)
        rms = np.sqrt(sq / np.maximum(count, 1))
        return rms[k]

    def summary(self) -> dict:
        """Plain numbers (JSON-able) for attrs, reports and the book."""
        return {"source": self.source, "sha256": self.sha256, "nside": self.nside,
                "sky_fraction": self.sky_fraction, "depth": self.depth, "s_bin": float(S_BIN),
                "n_total": int(self.n_total), "n_copied": int(self.n_s.sum()), "n_beyond": int(self.n_beyond),
                "median_e_dm": float(np.median(self.e_dm)) if self.e_dm.size else float("nan"),
                "h0_catalog": self.h0, "frame": self.frame, "groups": self.groups, "units": {
                    "depth": "Mpc/h", "s_bin": "Mpc/h", "median_e_dm": "mag", "h0_catalog": "km/s/Mpc"},
                "notes": list(self.notes)}


def sky_pixels(l, b, nside: int) -> np.ndarray:
    """HEALPix pixel indices (RING order) of Galactic (l, b) in deg, via astropy-healpix."""
    import astropy.units as u
    from astropy_healpix import HEALPix

    hp = HEALPix(nside=int(nside), order="ring")
    return np.asarray(hp.lonlat_to_healpix(np.asarray(l, np.float64) * u.deg, np.asarray(b, np.float64) * u.deg))


def pixel_centres(nside: int) -> tuple[np.ndarray, np.ndarray]:
    """Galactic (l, b) in deg of the centres of the HEALPix pixels (RING order)."""
    import astropy.units as u
    from astropy_healpix import HEALPix

    hp = HEALPix(nside=int(nside), order="ring")
    lon, lat = hp.healpix_to_lonlat(np.arange(hp.npix))
    return np.asarray(lon.to_value(u.deg)), np.asarray(lat.to_value(u.deg))


def redshift_distances(catalog, H0: float = H0_DEFAULT) -> np.ndarray:
    """Redshift distance s = d_C(cz / c) (Mpc/h) of each catalogue row; 0 where cz ≤ 0."""
    cz = np.asarray(catalog["cz"], np.float64)
    return np.where(cz > 0, distances.comoving_distance(np.maximum(cz, 0.0) / C_LIGHT, H0), 0.0)


def catalogue_sigma_dm(catalog) -> np.ndarray:
    """σ_μ (mag) of each row of a catalogue read with the Watkins–Feldman estimator: the inverse
    of its σ_v (:func:`zoa_lib.survey.distances.sigma_dm_from_sigma_v`; rows with cz ≤ 0 got the linear
    estimator, σ_v ≈ H0 d (ln 10 / 5) σ_μ, inverted as such)."""
    cz = np.asarray(catalog["cz"], np.float64)
    sv = np.asarray(catalog["sigma_v"], np.float64)
    out = np.empty_like(cz)
    red = cz > 0
    out[red] = distances.sigma_dm_from_sigma_v(cz[red], sv[red])
    d_L = distances.luminosity_from_comoving_distance(np.asarray(catalog["d_obs"], np.float64)[~red])
    out[~red] = sv[~red] / (H0_DEFAULT * d_L * distances.LN10_5)
    return out


def measure_selection(catalog, *, nside: int = 8, depth: float | None = None, e_dm=None, source: str = "",
                      sha256: str = "", h0: float | None = None, frame: str | None = None,
                      groups: bool = False) -> CatalogueSelection:
    """The selection of a real catalogue (module docstring).

    catalog : a table of :data:`zoa_lib.survey.shards.CATALOG_DTYPE` (cz in the CMB frame, km/s).
    nside : HEALPix resolution of the sky mask. depth : the largest redshift distance to copy
        (Mpc/h; default the catalogue's largest, rounded up to a bin edge).
    e_dm : σ_μ per row (mag; default :func:`catalogue_sigma_dm`).
    """
    cat = np.asarray(catalog)
    if cat.size == 0:
        raise SelectionError(f"{source or 'catalogue'}: no galaxies: nothing to measure a selection from")
    s = redshift_distances(cat)
    e = catalogue_sigma_dm(cat) if e_dm is None else np.asarray(e_dm, np.float64)
    if e.shape != s.shape or not np.all(np.isfinite(e)) or np.any(e < 0):
        raise SelectionError(f"{source or 'catalogue'}: distance-modulus errors must be finite and >= 0, one per row")
    pix = sky_pixels(cat["l"], cat["b"], nside)
    counts = np.bincount(pix, minlength=12 * nside * nside)
    occupied = counts[counts > 0]
    sky = counts >= max(1.0, MIN_PIXEL_FRACTION * float(np.median(occupied)))
    if not sky.any():
        raise SelectionError(f"{source or 'catalogue'}: the HEALPix mask (nside {nside}) covers nothing")
    top = float(s.max()) if depth is None else min(float(depth), float(s.max()))
    if not top > 0:
        raise SelectionError(f"{source or 'catalogue'}: depth must be > 0 Mpc/h, got {top:g}")
    edges = np.arange(0.0, np.ceil(top / S_BIN) * S_BIN + 0.5 * S_BIN, S_BIN)
    if edges.size < 2:
        edges = np.array([0.0, S_BIN])
    on_sky = sky[pix]
    keep = on_sky & (s < edges[-1])
    n_s = np.histogram(s[keep], edges)[0]
    k = np.clip(np.digitize(s[keep], edges) - 1, 0, n_s.size - 1)
    notes = []
    if (~on_sky).any():
        notes.append(f"{int((~on_sky).sum())} galaxies in sparse HEALPix pixels (fewer than "
                     f"{MIN_PIXEL_FRACTION:g} x the median count) are outside the copied sky")
    return CatalogueSelection(source=source, sha256=sha256, nside=int(nside), sky=sky, s_edges=edges,
                              n_s=n_s.astype(np.int64), e_dm=e[keep], e_dm_bin=k.astype(np.int64),
                              n_total=int(cat.size), n_beyond=int((on_sky & (s >= edges[-1])).sum()),
                              h0=h0, frame=frame, groups=bool(groups), notes=tuple(notes))


def resolve_catalogue(path: str | os.PathLike) -> Path:
    """A ``survey.catalogue`` path: absolute, else relative to the working folder, else to the
    repository root (``data/...``). A missing file is a :class:`SelectionError`."""
    p = Path(os.path.expanduser(str(path)))
    for cand in ([p] if p.is_absolute() else [Path.cwd() / p, REPO_ROOT / p]):
        if cand.is_file():
            return cand
    raise SelectionError(f"survey.catalogue: no file {str(path)!r} (relative paths are tried from the working "
                         f"folder and from the repository root)")



@lru_cache(maxsize=8)
def _measured(path: str, sha: str, nside: int, depth: float, groups: bool) -> CatalogueSelection:
    from zoa_lib.survey import catalogs

    options = {"groups": True} if groups else {}
    cat, report = catalogs.read_catalog(path, estimator="watkins_feldman", drop_bad=True, **options)
    if report.kind == "positions":
        raise SelectionError(f"survey.catalogue: {display_path(path)} is a positions table (SGX, SGY, SGZ, v_r): "
                             "mocks copy a distance catalogue (redshifts, distance moduli and their errors)")
    return measure_selection(cat, nside=nside, depth=depth, source=display_path(path), sha256=sha,
                             h0=getattr(report, "h0_catalog", None), frame=getattr(report, "frame", None),
                             groups=groups)


def survey_depth(profile) -> float:
    """The largest redshift distance (Mpc/h) a catalogue-matched mock copies: the parent box's
    half side less :data:`DEPTH_MARGIN` (beyond it a periodic box repeats itself), and never less
    than the cube's half-diagonal."""
    half = 0.5 * float(profile.simulation.parent_size)
    return max(half - DEPTH_MARGIN, 0.5 * np.sqrt(3.0) * float(profile.box.size))


def catalogue_selection(profile) -> CatalogueSelection | None:
    """The measured selection of the profile's ``survey.catalogue`` (None without one), cut at
    :func:`survey_depth` or the catalogue's own depth, whichever is nearer. Cached per process."""
    sv = profile.survey
    if not sv.catalogue:
        return None
    path = resolve_catalogue(sv.catalogue)
    sha = _cached_sha256(str(path), path.stat().st_mtime)
    full = _measured(str(path), sha, int(sv.catalogue_nside), float("inf"), bool(sv.catalogue_groups))
    if not full.n_s[full.s_edges[1:] <= 0.5 * np.sqrt(3.0) * profile.box.size + S_BIN].any():
        raise SelectionError(f"survey.catalogue: {full.source} has no galaxy within the {profile.box.size:g} Mpc/h "
                             f"cube of profile {profile.name!r}: nothing for its mocks to copy")
    depth = min(full.depth, np.ceil(survey_depth(profile) / S_BIN) * S_BIN)
    if depth >= full.depth:
        return full
    return _measured(str(path), sha, int(sv.catalogue_nside), float(depth), bool(sv.catalogue_groups))


@lru_cache(maxsize=8)
def _cached_sha256(path: str, mtime: float) -> str:
    return file_sha256(Path(path))


def catalogue_checksum(profile) -> str | None:
    """sha256 of the profile's ``survey.catalogue`` file (None without one): part of the mocks'
    configuration checksum, so that mocks made from another catalogue are not reused."""
    if not profile.survey.catalogue:
        return None
    p = resolve_catalogue(profile.survey.catalogue)
    return _cached_sha256(str(p), p.stat().st_mtime)


# --------------------------------------------------------------------------- drawing mocks
def survey_particles(profile, box, cube):
    """The particles a survey of ``cube`` draws from: the cube itself (analytic selection), or,
    with ``survey.catalogue``, the parent box's particles within the survey depth of the same
    observer in the same axes (a periodic cut of side min(2 (depth + margin), L))."""
    if not profile.survey.catalogue or box is None:
        return cube
    from zoa_lib.universe import simulation

    sel = catalogue_selection(profile)
    size = min(2.0 * (sel.depth + DEPTH_MARGIN), float(box.size))
    if size <= cube.size:
        return cube
    return simulation.cut_cube(box, cube.observer, cube.rotation, size, index=cube.index)


def draw_matched_galaxies(particles, sel: CatalogueSelection, survey_cfg, rng: np.random.Generator,
                          sample: int = 0, H0: float = H0_DEFAULT) -> np.ndarray:
    """A mock catalogue that copies a real catalogue's selection (module docstring).

    particles : has ``positions`` (n, 3) observer-centred SG Mpc/h, ``velocities`` (n, 3) km/s
        and ``mean_density`` (particles per (Mpc/h)³), e.g. :func:`survey_particles`.
    sel : :class:`CatalogueSelection`. survey_cfg : the profile's survey (its ``sigma_v_nl``,
        ``bias``, ``estimator``). rng : the survey stream of this sample.

    Each particle with redshift distance s < depth carries λ = n_k / N̄_k galaxies (bin k of s); each galaxy is placed uniformly within a particle spacing of its
    particle, moves with it, and is kept if its own direction is observed and its own redshift
    distance lies in (0, depth); its σ_μ is drawn from the catalogue's in its bin.
    """
    pos = np.asarray(particles.positions, np.float64)
    vel = np.asarray(particles.velocities, np.float64)
    if pos.ndim != 2 or pos.shape[1] != 3 or vel.shape != pos.shape:
        raise SelectionError(f"particles: positions/velocities must be (n, 3) arrays, got {pos.shape}, {vel.shape}")
    nbar = float(particles.mean_density)
    spacing = nbar ** (-1.0 / 3.0)
    r = np.sqrt(np.einsum("ij,ij->i", pos, pos))
    # s < depth needs r < depth + |v_r|/H0 (to well within 20 % at these redshifts): the
    # redshift distances of particles farther than that are not computed (they stay ∞)
    reach = sel.depth + 1.2 * float(np.sqrt(np.einsum("ij,ij->i", vel, vel).max(initial=0.0))) / H0 + 1.0
    ok = (r > 0) & (r < reach)
    s = np.full(r.shape, np.inf)
    s[ok] = distances.redshift_distance(r[ok], np.einsum("ij,ij->i", vel[ok], pos[ok]) / r[ok], H0)
    s[~np.isfinite(s)] = np.inf
    # every particle within the depth carries λ; the sky mask is applied to each galaxy's own
    # direction, so that galaxies displaced across a mask edge balance (it matters near the observer)
    cand = np.flatnonzero(s < sel.depth)
    omega = 4.0 * np.pi * sel.sky_fraction
    e = sel.s_edges
    n_mean = nbar * omega * (e[1:] ** 3 - e[:-1] ** 3) / 3.0
    k = np.clip(np.digitize(s[cand], e) - 1, 0, sel.n_s.size - 1)
    lam = sel.n_s[k] / n_mean[k]
    if survey_cfg.bias != 1.0:
        delta = galaxies.local_density_contrast(pos, 2.0 * float(np.abs(pos).max()) + spacing, nbar,
                                              4.0 * spacing)[cand]
        lam = lam * np.maximum(1.0 + survey_cfg.bias * delta, 0.0) / (1.0 + delta)
    counts = rng.poisson(lam)
    parent = np.repeat(cand, counts)
    gpos = pos[parent] + rng.uniform(-0.5 * spacing, 0.5 * spacing, size=(parent.size, 3))
    gvel = vel[parent]
    d_true = np.sqrt(np.einsum("ij,ij->i", gpos, gpos))
    keep = d_true > 0
    gpos, gvel, d_true = gpos[keep], gvel[keep], d_true[keep]
    rhat = gpos / d_true[:, None]
    v_r_true = np.einsum("ij,ij->i", gvel, rhat)
    cz = distances.observed_cz(d_true, v_r_true, H0)
    s_g = np.where(cz > 0, distances.comoving_distance(np.maximum(cz, 0.0) / C_LIGHT, H0), np.inf)
    l, b, _ = sky.sg_to_galactic(gpos[:, 0], gpos[:, 1], gpos[:, 2])
    keep = (cz > 0) & (s_g < sel.depth) & sel.observed(l, b)
    rhat, v_r_true, cz, d_true, l, b, s_g = (a[keep] for a in (rhat, v_r_true, cz, d_true, l, b, s_g))
    sigma_dm = sel.sigma_dm_draw(s_g, rng)
    return galaxies.observe_galaxies(rhat, v_r_true, cz, d_true, l, b, sigma_dm, survey_cfg, rng,
                                   sample=sample, H0=H0)


def draw_survey(profile, particles, rng: np.random.Generator, sample: int = 0, H0: float = H0_DEFAULT) -> np.ndarray:
    """The profile's mock survey of ``particles``: :func:`draw_matched_galaxies` with the
    measured selection of ``survey.catalogue``, else the analytic
    :func:`zoa_lib.survey.galaxies.draw_galaxies` (whose cube side is ``box.size``)."""
    sel = catalogue_selection(profile)
    if sel is None:
        return galaxies.draw_galaxies(particles, profile.survey, rng, profile.box.size, sample=sample, H0=H0)
    return draw_matched_galaxies(particles, sel, profile.survey, rng, sample=sample, H0=H0)


# --------------------------------------------------------------------------- real against mock
def _ks(a, b) -> dict:
    from scipy.stats import ks_2samp

    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    if a.size == 0 or b.size == 0:
        return {"D": float("nan"), "p": float("nan"), "n_real": int(a.size), "n_mock": int(b.size)}
    r = ks_2samp(a, b)
    return {"D": float(r.statistic), "p": float(r.pvalue), "n_real": int(a.size), "n_mock": int(b.size)}


def in_cube(catalog, box_size: float) -> np.ndarray:
    """Rows whose observed position lies inside the cube [−L/2, L/2)³ (L = ``box_size``, Mpc/h)."""
    xyz = np.stack([np.asarray(catalog[k], np.float64) for k in ("SGX", "SGY", "SGZ")], axis=-1)
    return np.all((xyz >= -box_size / 2) & (xyz < box_size / 2), axis=-1)


def compare_catalogues(real, mock, box_size: float, depth: float | None = None, e_dm_real=None) -> dict:
    """How close a mock survey is to a real catalogue (plain floats, JSON-able).

    Two-sample Kolmogorov–Smirnov statistics (D and p; scipy) of the redshift distance s
    (Mpc/h), σ_μ (mag; the mock's from its σ_v), Galactic l and sin b, over the rows with
    s < ``depth`` (default: all); galaxies in the cube of side ``box_size`` (Mpc/h), their
    ratio, and the rms of the observed radial velocities inside the cube (km/s)."""
    real, mock = np.asarray(real), np.asarray(mock)
    out = {}
    cols = {}
    for name, cat, e in (("real", real, e_dm_real), ("mock", mock, None)):
        s = redshift_distances(cat)
        m = np.ones(s.shape, bool) if depth is None else s < depth
        e = catalogue_sigma_dm(cat) if e is None else np.asarray(e, np.float64)
        cols[name] = {"s": s[m], "e_dm": e[m], "l": np.asarray(cat["l"], np.float64)[m],
                      "sin_b": np.sin(np.radians(np.asarray(cat["b"], np.float64)))[m]}
        inside = in_cube(cat, box_size)
        out[f"n_in_cube_{name}"] = int(inside.sum())
        out[f"v_rms_{name}"] = float(np.sqrt(np.mean(np.asarray(cat["v_r_obs"], np.float64)[inside] ** 2))) \
            if inside.any() else float("nan")
    out["ks"] = {k: _ks(cols["real"][k], cols["mock"][k]) for k in ("s", "e_dm", "l", "sin_b")}
    out["n_in_cube_ratio"] = out["n_in_cube_mock"] / max(out["n_in_cube_real"], 1)
    out["units"] = {"s": "Mpc/h", "e_dm": "mag", "v_rms": "km/s"}
    return out
