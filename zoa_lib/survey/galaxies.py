"""CF4-like mock surveys and the gridding of any peculiar-velocity catalog.

Everything here is a pure function of arrays (plus a ``numpy.random.Generator`` for
the draws). Units follow docs/DESIGN.md: comoving distances in Mpc/h, velocities
in km/s, H0 = 100 km/s per Mpc/h, angles in degrees.

Sky coordinates
    The cube axes are supergalactic (SGX, SGY, SGZ); Galactic (l, b) come from
    ``astropy.coordinates`` (:func:`sg_to_galactic`, :func:`~zoa_lib.survey.sky.galactic_to_sg`,
    :func:`~zoa_lib.survey.sky.icrs_to_galactic`). No rotation matrix is typed here.

Distance–redshift relation
    Distances and redshifts obey the cosmographic expansion that Watkins & Feldman
    (2015, WF15) use, with q0 = −0.55, j0 = 1 (flat ΛCDM with Ωm ≈ 0.3)::

        H0 d_L = c z_mod(z),  z_mod = z [1 + ½(1 − q0) z − ⅙(1 − q0 − 3 q0² + j0) z²]
        d_C = d_L / (1 + z)                                  (comoving, Mpc/h)

    so the estimator below is applied to data made with the relation it assumes; at the
    cube's z ≤ 0.05 this agrees with a flat ΛCDM to better than 10⁻⁴ in distance.

Mock observables (:func:`draw_galaxies`)
    For a galaxy at comoving distance ``d_true`` with radial peculiar velocity
    ``v_r_true = v · r̂``:

    * cosmological redshift z_cos from ``d_true`` (inverse of d_C(z) above);
    * observed redshift, exact composition of the two redshifts:
      ``1 + z = (1 + z_cos)(1 + v_r_true / c)``; the catalog's ``cz`` is c z (km/s,
      CMB frame: the simulation frame is the CMB frame);
    * observed distance modulus ``μ_obs = μ_true + ε``, ε ~ N(0, σ_μ), i.e. a log-normal
      luminosity distance ``d_L,obs = d_L,true 10^(ε/5)``; ``d_obs`` is the comoving
      distance of ``d_L,obs`` (what an observer derives from μ alone);
    * observed radial peculiar velocity from (cz, d_L,obs) with the profile's estimator
      (:func:`estimate_velocity`), plus Gaussian scatter ``sigma_v_nl``;
    * ``sigma_v`` = the estimator's error for σ_μ, with ``sigma_v_nl`` added in quadrature.

    The catalog's SGX, SGY, SGZ are at the **observed** distance, ``r̂ d_obs`` (what an
    observer knows and what a real catalog gives); the true position is
    ``r̂ d_true`` (:func:`catalog_positions`). Galactic (l, b) depend on r̂ only.

Velocity estimators (``survey.estimator``)
    ``watkins_feldman`` (WF15): ``v = [c z_mod / (1 + z_mod)] ln(c z_mod / (H0 d_L))``,
    ``σ_v = [c z_mod / (1 + z_mod)] (ln 10 / 5) σ_μ``. Linear in ln d, hence unbiased for
    log-normal distance errors; with exact distances it returns
    v [1 + (1 − q0) z + v/(2cz)] to second order (≈ 4 % high at 80 Mpc/h).
    ``linear``: ``v = c (z − z_cos(d_L)) / (1 + z_cos(d_L))`` (→ cz − H0 d at low z),
    the exact inverse of the redshift composition: exact when distances are exact,
    biased (towards negative v) by log-normal distance errors.
"""
from __future__ import annotations

import numpy as np

from zoa_lib.survey.distances import (
    SurveyError,
    comoving_distance,
    comoving_from_luminosity_distance,
    estimate_velocity,
    luminosity_from_comoving_distance,
    observed_cz,
    redshift_distance,
)
from zoa_lib.survey.shards import CATALOG_DTYPE
from zoa_lib.survey.sky import sg_to_galactic
from zoa_lib.universe.cosmology import C_LIGHT
from zoa_lib.universe.cosmology import H0 as H0_DEFAULT

# --------------------------------------------------------------------------- sky coordinates


# --------------------------------------------------------------------------- distance–redshift


# --------------------------------------------------------------------------- estimators


# --------------------------------------------------------------------------- mock survey
def selection_weight(r, r0: float, power: float):
    """Radial selection n(r) ∝ exp(−(r / r0)^power) (r, r0 in Mpc/h)."""
    return np.exp(-(np.asarray(r, np.float64) / r0) ** power)


def local_density_contrast(positions, box_size: float, mean_density: float, cell: float):
    """δ at each particle from nearest-grid-point counts on a mesh of ~``cell`` Mpc/h
    over the cube [−L/2, L/2)³ (mean density in particles per (Mpc/h)³)."""
    n = max(1, int(round(box_size / cell)))
    h = box_size / n
    idx = np.floor((np.asarray(positions, np.float64) + box_size / 2) / h).astype(np.int64)
    np.clip(idx, 0, n - 1, out=idx)
    flat = (idx[:, 0] * n + idx[:, 1]) * n + idx[:, 2]
    counts = np.bincount(flat, minlength=n ** 3)
    return counts[flat] / (mean_density * h ** 3) - 1.0


def draw_galaxies(cube, survey_cfg, rng: np.random.Generator, box_size: float, sample: int = 0,
                  H0: float = H0_DEFAULT) -> np.ndarray:
    """A CF4-like mock catalog drawn from an observer cube's particles.

    Parameters
    ----------
    cube : has ``positions`` (n, 3) observer-centred SG Mpc/h, ``velocities`` (n, 3) km/s,
        ``mean_density`` particles per (Mpc/h)³ (an ``ObserverCube``).
    survey_cfg : :class:`zoa_lib.config.SurveyConfig` (n_galaxies, r_max, selection_r0,
        selection_power, zoa_b, sigma_dm, sigma_v_nl, bias, estimator).
    rng : the survey stream of this sample (``rng.generator(seed, "survey", sample)``).
    box_size : cube side L (Mpc/h).
    sample : written to the catalog's ``sample`` column.

    Returns
    -------
    structured array of :data:`zoa_lib.survey.shards.CATALOG_DTYPE`.

    Selection (``survey_cfg.selection``):

    ``redshift`` (default, as CF4: a catalogue is limited and thinned in what is observed)
        each particle's redshift distance s = d_C(z_obs) (the comoving distance of its
        observed redshift, :func:`redshift_distance`) replaces r below: particles with
        s ≤ r_max and |b| ≥ zoa_b carry λ_i = A w(s_i) b_i, and A is fixed so that
        Σ λ_i = ``n_galaxies`` *after* the ZOA cut. Galaxies are kept by the same cuts on
        their own s and b (``d_true`` may exceed r_max: a galaxy falling towards us).
    ``true_distance`` (the earlier behaviour) as follows, by true distance r.

    Sampling: each particle inside r_max carries an expected number of galaxies
    λ_i = A w(r_i) b_i with w = exp(−(r/r0)^p) and, for a linear bias b ≠ 1,
    b_i = max(1 + b δ_i, 0)/(1 + δ_i) (δ from nearest-grid-point counts on cells of
    side 4 n̄^{−1/3}, 64 particles on average), so that the galaxy density follows
    (1 + b δ) w(r). A is fixed by Σ λ_i = ``n_galaxies`` (expected count inside r_max before the ZOA cut). Each particle
    gets Poisson(λ_i) galaxies, each displaced uniformly within a cube of side n̄^{−1/3}
    around its particle (so galaxies do not sit on the particle lattice) and moving with
    its particle. Galaxies with |b| < zoa_b, beyond r_max after the displacement, or
    with cz ≤ 0 (a blueshifted close neighbour, for which no redshift-distance estimator
    exists; a handful within a few Mpc/h) are dropped. Observables as in the module
    docstring.
    """
    cfg = survey_cfg
    pos = np.asarray(cube.positions, dtype=np.float64)
    vel = np.asarray(cube.velocities, dtype=np.float64)
    if pos.ndim != 2 or pos.shape[1] != 3 or vel.shape != pos.shape:
        raise SurveyError(f"cube positions/velocities must be (n, 3) arrays, got {pos.shape}, {vel.shape}")
    r = np.sqrt(np.einsum("ij,ij->i", pos, pos))
    by_redshift = getattr(cfg, "selection", "true_distance") == "redshift"
    spacing = float(cube.mean_density) ** (-1.0 / 3.0)
    norm = None  # the particles that fix A (default: all of ``inside``)
    if by_redshift:
        s = np.full(r.shape, np.inf)
        ok = r > 0
        s[ok] = redshift_distance(r[ok], np.einsum("ij,ij->i", vel[ok], pos[ok]) / r[ok], H0)
        s[~np.isfinite(s)] = np.inf
        # candidates: inside the cuts, or within one particle spacing of them (a galaxy's
        # displacement can carry it across); A is fixed by those inside, so galaxies
        # carried out of and into the selection balance
        inside = np.flatnonzero(s <= cfg.r_max + spacing)
        _, b_p, _ = sg_to_galactic(pos[inside, 0], pos[inside, 1], pos[inside, 2])
        gap = r[inside] * np.sin(np.radians(np.clip(cfg.zoa_b - np.abs(b_p), 0.0, 90.0)))
        near = gap <= spacing
        inside, b_p = inside[near], b_p[near]
        norm = (np.abs(b_p) >= cfg.zoa_b) & (s[inside] <= cfg.r_max)
        w = selection_weight(s[inside], cfg.selection_r0, cfg.selection_power)
    else:
        inside = np.flatnonzero((r <= cfg.r_max) & (r > 0))
        w = selection_weight(r[inside], cfg.selection_r0, cfg.selection_power)
    if cfg.bias != 1.0:
        delta = local_density_contrast(pos, box_size, float(cube.mean_density), 4.0 * spacing)[inside]
        w = w * np.maximum(1.0 + cfg.bias * delta, 0.0) / (1.0 + delta)
    total = w.sum() if norm is None else w[norm].sum()
    if total <= 0:
        return np.zeros(0, CATALOG_DTYPE)
    lam = cfg.n_galaxies * w / total
    counts = rng.poisson(lam)
    parent = np.repeat(inside, counts)
    gpos = pos[parent] + rng.uniform(-0.5 * spacing, 0.5 * spacing, size=(parent.size, 3))
    gvel = vel[parent]
    d_true = np.sqrt(np.einsum("ij,ij->i", gpos, gpos))
    l, b, _ = sg_to_galactic(gpos[:, 0], gpos[:, 1], gpos[:, 2])
    if by_redshift:
        keep = (np.abs(b) >= cfg.zoa_b) & (d_true > 0)
    else:
        keep = (np.abs(b) >= cfg.zoa_b) & (d_true <= cfg.r_max) & (d_true > 0)
    gpos, gvel, d_true, l, b = gpos[keep], gvel[keep], d_true[keep], l[keep], b[keep]
    rhat = gpos / d_true[:, None]
    v_r_true = np.einsum("ij,ij->i", gvel, rhat)
    cz = observed_cz(d_true, v_r_true, H0)
    if by_redshift:  # the galaxy's own redshift distance (cz ≤ 0: s = 0, dropped below)
        sel = (cz > 0) & (comoving_distance(np.maximum(cz, 0.0) / C_LIGHT, H0) <= cfg.r_max)
        rhat, v_r_true, cz, d_true, l, b = (a[sel] for a in (rhat, v_r_true, cz, d_true, l, b))
    red = cz > 0  # a blueshifted neighbour has no redshift-distance velocity: dropped
    if not np.all(red):
        rhat, v_r_true, cz, d_true, l, b = (a[red] for a in (rhat, v_r_true, cz, d_true, l, b))
    return observe_galaxies(rhat, v_r_true, cz, d_true, l, b, cfg.sigma_dm, cfg, rng, sample=sample, H0=H0)


def observe_galaxies(rhat, v_r_true, cz, d_true, l, b, sigma_dm, survey_cfg, rng: np.random.Generator,
                     sample: int = 0, H0: float = H0_DEFAULT) -> np.ndarray:
    """The observables of selected galaxies (module docstring), as a catalog table.

    rhat (n, 3) unit vectors (SG axes); v_r_true (km/s); cz (km/s, > 0); d_true (comoving,
    Mpc/h); l, b (deg); sigma_dm : the distance-modulus error σ_μ (mag), a scalar or one per
    galaxy (a catalogue-matched survey draws each galaxy's from the real catalogue,
    :mod:`zoa_lib.survey.selection`). Draws, in this order: ε ~ N(0, σ_μ) per galaxy, then the
    nonlinear scatter N(0, ``sigma_v_nl``); v_r_obs and sigma_v by ``survey_cfg.estimator``.
    Returns a structured array of :data:`zoa_lib.survey.shards.CATALOG_DTYPE`."""
    cfg = survey_cfg
    n = np.asarray(d_true).size
    sigma_dm = np.broadcast_to(np.asarray(sigma_dm, np.float64), (n,)) if np.ndim(sigma_dm) else sigma_dm
    # draws in a fixed order: distance errors, then nonlinear scatter
    eps = rng.normal(0.0, 1.0, n) * sigma_dm
    nl = rng.normal(0.0, 1.0, n) * cfg.sigma_v_nl
    d_L_obs = luminosity_from_comoving_distance(d_true, H0) * 10.0 ** (eps / 5.0)
    d_obs = comoving_from_luminosity_distance(d_L_obs, H0)
    v_obs, sig = estimate_velocity(cfg.estimator, cz, d_L_obs, sigma_dm, H0)
    v_obs = v_obs + nl
    sig = np.sqrt(sig ** 2 + cfg.sigma_v_nl ** 2)
    cat = np.zeros(n, CATALOG_DTYPE)
    cat["sample"] = sample
    obs = rhat * d_obs[:, None]
    cat["SGX"], cat["SGY"], cat["SGZ"] = obs[:, 0], obs[:, 1], obs[:, 2]
    cat["l"], cat["b"] = l, b
    cat["d_true"], cat["d_obs"] = d_true, d_obs
    cat["cz"] = cz
    cat["v_r_true"], cat["v_r_obs"], cat["sigma_v"] = v_r_true, v_obs, sig
    return cat


# --------------------------------------------------------------------------- gridding
GRID_POSITIONS = ("observed", "true", "corrected")


def _content_generator(catalog) -> np.random.Generator:
    """A generator seeded by the catalog's own content (its ``sample`` and ``d_true``
    columns), so gridding one catalog twice gives the same corrected positions."""
    import hashlib

    h = hashlib.sha256(b"zoa-corrected-positions")
    for k in ("sample", "d_true"):
        h.update(np.ascontiguousarray(np.asarray(catalog[k])).tobytes())
    return np.random.default_rng(int.from_bytes(h.digest()[:8], "little"))


def corrected_distances(d_true, scatter: float = 0.0, fraction: float = 0.0,
                        rng: np.random.Generator | None = None) -> np.ndarray:
    """Bias-corrected distances (Mpc/h): ``d_true`` + ε, ε ~ N(0, σ²) with
    σ = √(``scatter``² + (``fraction`` d_true)²) (``scatter`` in Mpc/h, ``fraction``
    dimensionless), reflected at 0 (|d_true + ε|) so a distance stays positive. What a
    corrected catalogue (e.g. HAMLET's realizations of CF4) gives: unbiased, with a residual
    scatter. ``rng``: the generator of the draws (required)."""
    d = np.asarray(d_true, np.float64)
    if scatter < 0 or not 0 <= fraction < 1:
        raise SurveyError(f"corrected distances: need scatter >= 0 Mpc/h and 0 <= fraction < 1, "
                          f"got {scatter}, {fraction}")
    if rng is None:
        raise SurveyError("corrected distances need a random generator (rng)")
    sigma = np.sqrt(scatter ** 2 + (fraction * d) ** 2)
    return np.abs(d + sigma * rng.standard_normal(d.shape))


def catalog_positions(catalog, position: str = "observed", *, corrected_scatter: float | None = None,
                      corrected_fraction: float = 0.0, rng: np.random.Generator | None = None) -> np.ndarray:
    """(m, 3) float64 SG positions (Mpc/h) of catalog rows: ``observed`` = (SGX, SGY, SGZ)
    (at d_obs), ``true`` = the same direction at d_true, ``corrected`` = the same direction
    at :func:`corrected_distances` (d_true, ``corrected_scatter`` Mpc/h, ``corrected_fraction``;
    ``corrected_scatter`` must be given; ``rng`` default: a generator seeded by the catalog's
    content, so the result is a pure function of the catalog)."""
    xyz = np.stack([np.asarray(catalog[k], np.float64) for k in ("SGX", "SGY", "SGZ")], axis=-1)
    if position == "observed":
        return xyz
    if position in ("true", "corrected"):
        d_true = np.asarray(catalog["d_true"], np.float64)
        if d_true.size and not np.all(np.isfinite(d_true)):
            raise SurveyError(f"grid_position {position!r} needs true distances; this catalog has none "
                              "(a real catalog): use 'observed'")
        if position == "corrected":
            if corrected_scatter is None:
                raise SurveyError("grid_position 'corrected' needs corrected_scatter (Mpc/h) and "
                                  "corrected_fraction: grid with survey.grid_inputs(catalog, profile)")
            d_true = corrected_distances(d_true, corrected_scatter, corrected_fraction,
                                         _content_generator(catalog) if rng is None else rng)
        d_obs = np.asarray(catalog["d_obs"], np.float64)
        with np.errstate(invalid="ignore", divide="ignore"):
            scale = np.where(d_obs > 0, d_true / d_obs, 0.0)
        return xyz * scale[:, None]
    raise SurveyError(f"grid position must be one of {', '.join(map(repr, GRID_POSITIONS))}, got {position!r}")


def voxel_index(xyz, box_size: float, grid: int):
    """Flat voxel index (i·N + j)·N + k of positions (m, 3) in Mpc/h, and a mask of those
    inside the cube [−L/2, L/2)³ (grid convention of DESIGN.md)."""
    xyz = np.asarray(xyz, np.float64)
    ijk = np.floor((xyz + box_size / 2.0) * (grid / box_size)).astype(np.int64)
    ok = np.all((ijk >= 0) & (ijk < grid), axis=-1)
    ijk = ijk[ok]
    return (ijk[:, 0] * grid + ijk[:, 1]) * grid + ijk[:, 2], ok


def grid_catalog(catalog, box_size: float, grid: int, position: str = "observed",
                 error_weighting: bool = False, return_outside: bool = False, *,
                 corrected_scatter: float | None = None, corrected_fraction: float = 0.0,
                 rng: np.random.Generator | None = None):
    """Grid a catalog into the network's two input channels.

    Returns ``inputs`` (N, N, N, 2) float32: channel 0 N_gal = galaxies per voxel;
    channel 1 V_pec = mean ``v_r_obs`` (km/s) of the voxel's galaxies, 0 where empty
    (inverse-variance weighted, 1/σ_v², when ``error_weighting``). Galaxies sit at
    :func:`catalog_positions` (``position``; ``corrected`` takes ``corrected_scatter``,
    ``corrected_fraction`` and ``rng``); the velocity channel is the observed ``v_r_obs`` in
    every mode. Galaxies outside the cube are dropped; with ``return_outside`` the result is
    ``(inputs, n_outside)``.
    """
    xyz = catalog_positions(catalog, position, corrected_scatter=corrected_scatter,
                            corrected_fraction=corrected_fraction, rng=rng)
    flat, ok = voxel_index(xyz, box_size, grid)
    v = np.asarray(catalog["v_r_obs"], np.float64)[ok]
    n3 = grid ** 3
    counts = np.bincount(flat, minlength=n3).astype(np.float64)
    if error_weighting:
        s = np.asarray(catalog["sigma_v"], np.float64)[ok]
        if np.any(~(s > 0)):
            raise SurveyError("error_weighting needs sigma_v > 0 for every galaxy in the cube")
        wt = 1.0 / s ** 2
    else:
        wt = np.ones_like(v)
    wsum = np.bincount(flat, weights=wt, minlength=n3)
    vsum = np.bincount(flat, weights=wt * v, minlength=n3)
    vmean = np.divide(vsum, wsum, out=np.zeros(n3), where=wsum > 0)
    inputs = np.stack([counts, vmean], axis=-1).reshape(grid, grid, grid, 2).astype(np.float32)
    if return_outside:
        return inputs, int((~ok).sum())
    return inputs


def grid_inputs(catalog, profile, return_outside: bool = False, rng: np.random.Generator | None = None):
    """:func:`grid_catalog` with a profile's gridding keys (``box.size``, ``box.grid``,
    ``survey.grid_position``, ``survey.error_weighting``, ``survey.corrected_scatter``,
    ``survey.corrected_scatter_fraction``): the network inputs of a mock catalog."""
    sv = profile.survey
    return grid_catalog(catalog, profile.box.size, profile.box.grid, position=sv.grid_position,
                        error_weighting=sv.error_weighting, return_outside=return_outside,
                        corrected_scatter=sv.corrected_scatter, corrected_fraction=sv.corrected_scatter_fraction,
                        rng=rng)


# --------------------------------------------------------------------------- diagnostics
def velocity_bias_by_shell(catalog, edges, by: str = "d_true", H0: float = H0_DEFAULT) -> dict:
    """Mean bias of the observed radial velocities in distance shells.

    For the catalog rows with a distance in [edges[i], edges[i+1]) (Mpc/h), by ``by``:
    ``d_true``, ``d_obs`` or ``cz`` (the redshift distance d_C(cz/c)), returns per shell
    ``bias`` = ⟨v_r_obs − v_r_true⟩ (km/s), its standard error ``err`` (km/s), the mean
    true velocity ``v_true`` (km/s: what a selection does to the sampled flow) and ``n``."""
    edges = np.asarray(edges, np.float64)
    if edges.ndim != 1 or edges.size < 2 or np.any(np.diff(edges) <= 0):
        raise SurveyError(f"velocity_bias_by_shell: edges must be increasing, got {edges.tolist()}")
    if by == "cz":
        d = comoving_distance(np.asarray(catalog["cz"], np.float64) / C_LIGHT, H0)
    elif by in ("d_true", "d_obs"):
        d = np.asarray(catalog[by], np.float64)
    else:
        raise SurveyError(f"velocity_bias_by_shell: by must be 'd_true', 'd_obs' or 'cz', got {by!r}")
    dv = np.asarray(catalog["v_r_obs"], np.float64) - np.asarray(catalog["v_r_true"], np.float64)
    vt = np.asarray(catalog["v_r_true"], np.float64)
    idx = np.digitize(d, edges) - 1
    nb = edges.size - 1
    out = {"edges": edges, "bias": np.full(nb, np.nan), "err": np.full(nb, np.nan),
           "v_true": np.full(nb, np.nan), "n": np.zeros(nb, np.int64)}
    for i in range(nb):
        m = idx == i
        n = int(m.sum())
        out["n"][i] = n
        if n:
            out["bias"][i] = dv[m].mean()
            out["v_true"][i] = vt[m].mean()
            out["err"][i] = dv[m].std(ddof=1) / np.sqrt(n) if n > 1 else np.nan
    return out


SELECTIONS = ("redshift", "true_distance")


def velocity_bias_by_selection(cubes, survey_cfg, seed: int, edges, by: str = "d_obs",
                               selections=SELECTIONS, box_size: float | None = None,
                               H0: float = H0_DEFAULT) -> dict:
    """:func:`velocity_bias_by_shell` of mock surveys of the same observer cubes under each
    ``survey.selection`` mode.

    For every cube j of ``cubes`` and every mode, a catalog is drawn with
    :func:`draw_galaxies` (``survey_cfg`` with ``selection`` replaced) from the generator
    ``(seed, "survey", j, 1)`` (two indices: never a mock's ``(seed, "survey", sample)``),
    the same for every mode; the catalogs of all cubes are pooled and
    binned in ``edges`` (Mpc/h) of ``by`` (``d_true``, ``d_obs`` or ``cz``). Returns
    {mode: the :func:`velocity_bias_by_shell` dict plus ``n_galaxies`` = mean catalog size}.
    ``box_size``: the cube side (Mpc/h; default each cube's ``size``)."""
    import dataclasses

    from zoa_lib.universe.rng import generator

    cubes = list(cubes)
    if not cubes:
        raise SurveyError("velocity_bias_by_selection: no cubes")
    out = {}
    for mode in selections:
        if mode not in SELECTIONS:
            raise SurveyError(f"survey.selection must be one of {', '.join(map(repr, SELECTIONS))}, got {mode!r}")
        cfg = dataclasses.replace(survey_cfg, selection=mode)
        cats = [draw_galaxies(c, cfg, generator(int(seed), "survey", j, 1),
                              float(box_size if box_size is not None else c.size), sample=j, H0=H0)
                for j, c in enumerate(cubes)]
        out[mode] = {**velocity_bias_by_shell(np.concatenate(cats), edges, by=by, H0=H0),
                     "n_galaxies": float(np.mean([len(c) for c in cats])), "by": by}
    return out

