"""Mock survey and gridding: physics checked against astropy and plain-loop recomputations."""
from __future__ import annotations

import dataclasses
from collections import defaultdict
from types import SimpleNamespace

import astropy.units as u
import numpy as np
import pytest
from astropy.coordinates import CartesianRepresentation, SkyCoord
from astropy.cosmology import FlatLambdaCDM

from zoa_lib.config import load_profile
from zoa_lib.survey import distances, galaxies, sky
from zoa_lib.survey.shards import CATALOG_DTYPE
from zoa_lib.universe.rng import generator

L = 160.0
C = 299792.458
LN10_5 = np.log(10) / 5


def synthetic_cube(n=60000, seed=0, sigma_v=300.0):
    """Uniform random particles in the cube with Gaussian velocities (a stand-in for an ObserverCube)."""
    g = np.random.default_rng(seed)
    pos = g.uniform(-L / 2, L / 2, (n, 3)).astype(np.float32)
    vel = g.normal(0.0, sigma_v, (n, 3)).astype(np.float32)
    return SimpleNamespace(size=L, positions=pos, velocities=vel, mean_density=n / L ** 3)


def survey_cfg(**kw):
    return dataclasses.replace(load_profile("ci").survey, **kw)


@pytest.fixture(scope="module")
def catalog():
    cfg = survey_cfg(n_galaxies=12000)
    return galaxies.draw_galaxies(synthetic_cube(), cfg, generator(1, "survey", 0), L, sample=7), cfg


def astropy_distances(d_comoving):
    """Independent d_L(d_C) from a flat ΛCDM with Ωm = 0.3 (q0 = −0.55, j0 = 1), H0 = 100."""
    cosmo = FlatLambdaCDM(H0=100, Om0=0.3)
    z = np.linspace(0, 0.2, 4001)
    dc = cosmo.comoving_distance(z).to_value(u.Mpc)
    zz = np.interp(d_comoving, dc, z)
    return (1 + zz) * d_comoving, zz


# --------------------------------------------------------------------------- coordinates
def test_sg_axes_land_where_de_vaucouleurs_put_them():
    # SGZ pole at (l, b) = (47.37, +6.32); SGL = SGB = 0 at (137.37, 0) (de Vaucouleurs 1976)
    l, b, d = sky.sg_to_galactic([0, 1], [0, 0], [1, 0])
    assert np.allclose([l[0], b[0]], [47.37, 6.32], atol=0.01)
    assert np.allclose([l[1], b[1]], [137.37, 0.0], atol=0.01)
    assert np.allclose(d, 1)


def test_coordinates_match_skycoord_and_round_trip():
    g = np.random.default_rng(3)
    x, y, z = g.normal(size=(3, 500)) * 50
    l, b, d = sky.sg_to_galactic(x, y, z)
    sgl = np.degrees(np.arctan2(y, x))
    sgb = np.degrees(np.arcsin(z / np.sqrt(x * x + y * y + z * z)))
    ref = SkyCoord(sgl=sgl * u.deg, sgb=sgb * u.deg, frame="supergalactic").galactic
    assert np.allclose(l, ref.l.deg, atol=1e-8)
    assert np.allclose(b, ref.b.deg, atol=1e-8)
    assert np.allclose(d, np.sqrt(x * x + y * y + z * z))
    back = sky.galactic_to_sg(l, b, d)
    assert np.allclose(back, (x, y, z), atol=1e-9)
    ra, dec = sky.galactic_to_icrs(l, b)
    assert np.allclose(sky.icrs_to_galactic(ra, dec), (l, b), atol=1e-8)


# --------------------------------------------------------------------------- distances, estimators
def test_cosmography_matches_flat_lcdm():
    z = np.linspace(1e-4, 0.05, 200)
    cosmo = FlatLambdaCDM(H0=100, Om0=0.3)
    assert np.allclose(distances.luminosity_distance(z), cosmo.luminosity_distance(z).to_value(u.Mpc), rtol=2e-4)
    assert np.allclose(distances.comoving_distance(z), cosmo.comoving_distance(z).to_value(u.Mpc), rtol=2e-4)
    d = np.linspace(0.5, 150, 300)
    assert np.allclose(distances.comoving_distance(distances.redshift_from_comoving_distance(d)), d, rtol=1e-12)
    assert np.allclose(distances.luminosity_distance(distances.redshift_from_luminosity_distance(d)), d, rtol=1e-12)
    assert np.allclose(distances.comoving_from_luminosity_distance(distances.luminosity_from_comoving_distance(d)),
                       d, rtol=1e-12)


def test_watkins_feldman_formula_and_inverses():
    cz = np.array([1000.0, 5000.0, 12000.0])
    d = np.array([9.0, 52.0, 115.0])
    z = cz / C
    zm = z * (1 + 0.5 * (1 + 0.55) * z - (1 + 0.55 - 3 * 0.55 ** 2 + 1) / 6 * z ** 2)
    v_ref = C * zm / (1 + zm) * np.log(C * zm / (100 * d))
    v = distances.watkins_feldman_velocity(cz, d)
    assert np.allclose(v, v_ref, rtol=1e-12)
    assert np.allclose(distances.watkins_feldman_distance(cz, v), d, rtol=1e-12)
    s = distances.watkins_feldman_sigma(cz, 0.4)
    assert np.allclose(s, C * zm / (1 + zm) * LN10_5 * 0.4, rtol=1e-12)
    assert np.allclose(distances.sigma_dm_from_sigma_v(cz, s), 0.4)
    assert np.allclose(distances.distance_from_modulus(distances.distance_modulus(d)), d)
    with pytest.raises(distances.SurveyError, match="estimator"):
        distances.estimate_velocity("potent", cz, d, 0.4)


def test_wf_unbiased_under_lognormal_errors_linear_biased():
    g = np.random.default_rng(5)
    d_c = np.array([30.0, 60.0, 90.0])
    v_true = np.array([300.0, -400.0, 200.0])
    cz = distances.observed_cz(d_c, v_true)
    d_L = distances.luminosity_from_comoving_distance(d_c)
    sig = 0.4
    eps = g.normal(0, sig, (20000, 1))
    d_noisy = d_L * 10 ** (eps / 5)
    wf_exact = distances.watkins_feldman_velocity(cz, d_L)
    wf = distances.watkins_feldman_velocity(cz, d_noisy)
    sigma = distances.watkins_feldman_sigma(cz, sig)
    assert np.all(np.abs(wf.mean(0) - wf_exact) < 4 * sigma / np.sqrt(len(eps)))
    assert np.allclose(wf.std(0), sigma, rtol=0.03)
    lin = distances.linear_velocity(cz, d_noisy)
    lin_exact = distances.linear_velocity(cz, d_L)
    # log-normal errors bias the linear estimator by ≈ −H0 d [exp((ln10/5 σ)²/2) − 1] < 0
    bias = lin.mean(0) - lin_exact
    expected = -100 * d_L * (np.exp((LN10_5 * sig) ** 2 / 2) - 1)
    assert np.all(bias < -5 * lin.std(0) / np.sqrt(len(eps)))
    assert np.allclose(bias, expected, rtol=0.25)
    assert np.allclose(np.median(lin, 0), lin_exact, atol=40)


# --------------------------------------------------------------------------- mock catalog
def test_catalog_sky_positions_are_astropy_conversions(catalog):
    cat, _ = catalog
    assert cat.dtype == CATALOG_DTYPE
    assert np.all(cat["sample"] == 7)
    x, y, z = (cat[k].astype(np.float64) for k in ("SGX", "SGY", "SGZ"))
    ref = SkyCoord(CartesianRepresentation(x, y, z, unit="Mpc"), frame="supergalactic").galactic
    dl = (cat["l"] - ref.l.deg + 180) % 360 - 180
    assert np.max(np.abs(dl * np.cos(np.radians(cat["b"])))) < 1e-3
    assert np.max(np.abs(cat["b"] - ref.b.deg)) < 1e-3
    # positions are at the observed distance, along the true direction
    assert np.allclose(np.sqrt(x * x + y * y + z * z), cat["d_obs"], rtol=1e-5)


def test_zoa_and_radial_cut_and_count_true_distance():
    cfg = survey_cfg(n_galaxies=12000, selection="true_distance")
    cat = galaxies.draw_galaxies(synthetic_cube(), cfg, generator(1, "survey", 0), L, sample=7)
    assert np.all(np.abs(cat["b"]) >= cfg.zoa_b)
    assert np.all(cat["d_true"] <= cfg.r_max)
    # expected count: n_galaxies inside r_max, minus the ZOA's sky fraction sin(zoa_b)
    expect = cfg.n_galaxies * (1 - np.sin(np.radians(cfg.zoa_b)))
    assert abs(len(cat) - expect) < 5 * np.sqrt(expect)


def test_redshift_selection_cuts_and_count_after_zoa(catalog):
    """Default selection: every galaxy has cz-distance ≤ r_max and |b| ≥ zoa_b, and the
    catalog holds n_galaxies after the ZOA cut (Poisson: 5 sigma)."""
    cat, cfg = catalog
    assert cfg.selection == "redshift"
    assert np.all(np.abs(cat["b"]) >= cfg.zoa_b)
    s = distances.comoving_distance(cat["cz"].astype(np.float64) / C)
    assert np.all(s <= cfg.r_max + 1e-6)
    assert np.any(cat["d_true"] > cfg.r_max)  # selected on redshift, not on true distance
    assert abs(len(cat) - cfg.n_galaxies) < 5 * np.sqrt(cfg.n_galaxies)


def test_redshift_distance_is_comoving_distance_of_cz():
    d, v = np.array([10.0, 50.0, 80.0]), np.array([300.0, -500.0, 0.0])
    s = distances.redshift_distance(d, v)
    _, zc = astropy_distances(d)
    z = (1 + zc) * (1 + v / C) - 1
    cosmo = FlatLambdaCDM(H0=100, Om0=0.3)
    np.testing.assert_allclose(s, cosmo.comoving_distance(z).to_value(u.Mpc), rtol=2e-4)
    assert s[2] == pytest.approx(80.0, rel=1e-9)
    assert np.isnan(distances.redshift_distance(np.array([1.0]), np.array([-400.0]))[0])  # blueshift


def test_velocity_bias_by_shell_matches_plain_loop(catalog):
    cat, _ = catalog
    edges = [0.0, 30.0, 60.0, 90.0]
    r = galaxies.velocity_bias_by_shell(cat, edges, by="d_obs")
    for i in range(3):
        m = (cat["d_obs"] >= edges[i]) & (cat["d_obs"] < edges[i + 1])
        dv = cat["v_r_obs"][m].astype(float) - cat["v_r_true"][m]
        assert r["n"][i] == m.sum()
        assert r["bias"][i] == pytest.approx(dv.mean())
        assert r["err"][i] == pytest.approx(dv.std(ddof=1) / np.sqrt(m.sum()))
    with pytest.raises(distances.SurveyError, match="by must be"):
        galaxies.velocity_bias_by_shell(cat, edges, by="r")


def test_cz_selection_velocity_bias_per_shell():
    """Uniform particles with 400 km/s random velocities, r_max = 70 Mpc/h, σ_μ = 0.4.

    Selected on cz, the distance errors add no bias at fixed cz up to the edge: in cz shells
    ⟨v_obs − v_WF(exact distance)⟩ = 0 within 4 σ (what remains of ⟨v_obs − v_true⟩ there
    is WF15's own second-order term v²/(2cz), whatever the selection). In observed-distance
    shells both selections carry the inhomogeneous Malmquist bias of log-normal distances
    (measured at 60–70 and 70–80 Mpc/h: −340 and −926 km/s selected on cz, −418 and
    −1069 km/s on true distance): the cz selection's edge bias is the smaller."""
    g = np.random.default_rng(11)
    n = 200000
    pos = g.uniform(-L / 2, L / 2, (n, 3))
    vel = g.normal(0.0, 400.0, (n, 3))
    cube = SimpleNamespace(size=L, positions=pos.astype(np.float32), velocities=vel.astype(np.float32),
                           mean_density=n / L ** 3)
    edges = [0.0, 20.0, 40.0, 60.0, 70.0, 80.0]
    cats = {}
    for sel in ("redshift", "true_distance"):
        cfg = survey_cfg(n_galaxies=30000, selection=sel, sigma_dm=0.4, r_max=70.0)
        cats[sel] = galaxies.draw_galaxies(cube, cfg, generator(1, "survey", 9), L)
    cat = cats["redshift"]
    dL_true = distances.luminosity_from_comoving_distance(cat["d_true"].astype(np.float64))
    v_exact = distances.watkins_feldman_velocity(cat["cz"].astype(np.float64), dL_true)
    from_errors = cat.copy()
    from_errors["v_r_true"] = v_exact
    z = galaxies.velocity_bias_by_shell(from_errors, edges, by="cz")
    ok = z["n"] > 30
    assert ok.sum() == 4
    assert np.all(np.abs(z["bias"][ok]) < 4 * z["err"][ok]), z["bias"]
    rz = galaxies.velocity_bias_by_shell(cat, edges, by="d_obs")
    rt = galaxies.velocity_bias_by_shell(cats["true_distance"], edges, by="d_obs")
    for i in (3, 4):  # the shells at and beyond the edge
        assert rz["bias"][i] < -200 and rt["bias"][i] < -200  # Malmquist: both
        assert abs(rz["bias"][i]) + 2 * rz["err"][i] < abs(rt["bias"][i])

def test_radial_selection_follows_n_of_r():
    """Mean and spread of d_true for uniform particles vs ∫ r^k r² exp(−(r/r0)²) dr."""
    from scipy.integrate import quad

    cfg = survey_cfg(n_galaxies=15000, zoa_b=0.0, sigma_dm=0.0, selection="true_distance")
    cat = galaxies.draw_galaxies(synthetic_cube(120000, seed=2), cfg, generator(1, "survey", 1), L)
    w = lambda r, k: r ** (2 + k) * np.exp(-(r / cfg.selection_r0) ** cfg.selection_power)  # noqa: E731
    norm = quad(w, 0, cfg.r_max, args=(0,))[0]
    m1 = quad(w, 0, cfg.r_max, args=(1,))[0] / norm
    m2 = quad(w, 0, cfg.r_max, args=(2,))[0] / norm
    sd = np.sqrt(m2 - m1 ** 2)
    assert abs(cat["d_true"].mean() - m1) < 5 * sd / np.sqrt(len(cat))
    assert abs(len(cat) - cfg.n_galaxies) < 5 * np.sqrt(cfg.n_galaxies)


def test_distance_scatter_is_lognormal_with_sigma_dm(catalog):
    cat, cfg = catalog
    dL_true, _ = astropy_distances(cat["d_true"].astype(np.float64))
    dL_obs, _ = astropy_distances(cat["d_obs"].astype(np.float64))
    x = np.log(dL_obs / dL_true)
    sig = LN10_5 * cfg.sigma_dm
    n = len(x)
    assert abs(x.std() - sig) < 4 * sig / np.sqrt(2 * n)
    assert abs(x.mean()) < 4 * sig / np.sqrt(n)
    # the comoving ratio has the same scatter to O(z)
    assert np.std(np.log(cat["d_obs"] / cat["d_true"])) == pytest.approx(sig, rel=0.03)


def test_redshift_and_velocities_follow_the_stated_relations(catalog):
    cat, cfg = catalog
    d = cat["d_true"].astype(np.float64)
    _, zc = astropy_distances(d)
    cz = C * ((1 + zc) * (1 + cat["v_r_true"] / C) - 1)
    assert np.allclose(cat["cz"], cz, atol=0.5)
    assert np.all(cat["cz"] > 0)
    # σ_v: WF error for sigma_dm at each galaxy's cz
    zm = distances.z_mod(cat["cz"].astype(np.float64) / C)
    assert np.allclose(cat["sigma_v"], C * zm / (1 + zm) * LN10_5 * cfg.sigma_dm, rtol=1e-5)


@pytest.fixture(scope="module")
def exact_catalogs():
    cube = synthetic_cube(seed=4)
    out = {}
    for est in ("linear", "watkins_feldman"):
        cfg = survey_cfg(n_galaxies=6000, sigma_dm=0.0, estimator=est)
        out[est] = galaxies.draw_galaxies(cube, cfg, generator(1, "survey", 3), L)
    return out


def test_linear_estimator_exact_without_distance_errors(exact_catalogs):
    cat = exact_catalogs["linear"]
    assert np.allclose(cat["d_obs"], cat["d_true"], rtol=1e-6)
    assert np.allclose(cat["v_r_obs"], cat["v_r_true"], atol=0.05)
    assert np.all(cat["sigma_v"] == 0)


def test_wf_estimator_unbiased_without_distance_errors(exact_catalogs):
    """With exact distances WF15 returns v to its stated accuracy: expanding
    ln(z_mod(z)/z_mod(z_cos)) with 1 + z = (1 + z_cos)(1 + v/c) gives
    v_WF = v [1 + (1 − q0) z + v/(2cz)] + O(v (z² + (v/cz)²)), with 1 − q0 = 1.55."""
    cat = exact_catalogs["watkins_feldman"]
    v, vt = cat["v_r_obs"].astype(np.float64), cat["v_r_true"].astype(np.float64)
    cz = cat["cz"].astype(np.float64)
    z, x = cz / C, vt / cz
    far = cat["d_true"] > 20
    slope = np.sum(v[far] * vt[far]) / np.sum(vt[far] ** 2)
    assert slope == pytest.approx(1.0, abs=0.05)
    resid = v - vt * (1 + 1.55 * z + x / 2)
    assert np.all(np.abs(resid) <= 2 * np.abs(vt) * (x ** 2 + z ** 2) + 0.05)


def test_nonlinear_scatter_added():
    cube = synthetic_cube(seed=6)
    cfg = survey_cfg(n_galaxies=8000, sigma_dm=0.0, estimator="linear", sigma_v_nl=150.0)
    cat = galaxies.draw_galaxies(cube, cfg, generator(1, "survey", 4), L)
    assert np.std(cat["v_r_obs"] - cat["v_r_true"]) == pytest.approx(150.0, rel=0.05)
    assert np.allclose(cat["sigma_v"], 150.0)


def test_bias_weights_galaxies_towards_dense_regions():
    """Half the cube twice as dense: with bias b the galaxy density ratio is (1+bδ₁)/(1+bδ₂)."""
    g = np.random.default_rng(8)
    n = 90000
    pos = g.uniform(-L / 2, L / 2, (n, 3))
    dense = pos[:, 0] > 0
    pos = np.concatenate([pos, pos[dense] + g.uniform(-0.5, 0.5, (dense.sum(), 3))])
    pos = np.clip(pos, -L / 2, L / 2 - 1e-3).astype(np.float32)
    cube = SimpleNamespace(size=L, positions=pos, velocities=np.zeros_like(pos), mean_density=len(pos) / L ** 3)
    # δ = +1/3 and −1/3 on the two halves; b = 1.5 → galaxy densities 3/2 and 1/2: ratio 3
    cfg = survey_cfg(n_galaxies=20000, zoa_b=0.0, bias=1.5, sigma_dm=0.0, selection_power=8.0, selection_r0=200.0)
    cat = galaxies.draw_galaxies(cube, cfg, generator(1, "survey", 5), L)
    # stay away from the dividing plane (NGP cells straddle it)
    ratio = np.sum(cat["SGX"] > 20) / np.sum(cat["SGX"] < -20)
    assert ratio == pytest.approx(3.0, rel=0.1)
    cfg1 = dataclasses.replace(cfg, bias=1.0)
    cat1 = galaxies.draw_galaxies(cube, cfg1, generator(1, "survey", 5), L)
    assert np.sum(cat1["SGX"] > 20) / np.sum(cat1["SGX"] < -20) == pytest.approx(2.0, rel=0.1)


def test_draw_is_deterministic(catalog):
    cat, cfg = catalog
    again = galaxies.draw_galaxies(synthetic_cube(), cfg, generator(1, "survey", 0), L, sample=7)
    assert cat.tobytes() == again.tobytes()


# --------------------------------------------------------------------------- gridding
def voxel_of(x, grid):
    return int(np.floor((x + L / 2) / (L / grid)))


@pytest.mark.parametrize("grid", [8, 16])
def test_grid_counts_and_means_match_plain_loop(catalog, grid):
    cat, _ = catalog
    inputs, outside = galaxies.grid_catalog(cat, L, grid, return_outside=True)
    assert inputs.shape == (grid, grid, grid, 2) and inputs.dtype == np.float32
    members = defaultdict(list)
    n_in = 0
    for row in cat:
        ijk = tuple(voxel_of(float(row[k]), grid) for k in ("SGX", "SGY", "SGZ"))
        if all(0 <= i < grid for i in ijk):
            members[ijk].append(float(row["v_r_obs"]))
            n_in += 1
    assert outside == len(cat) - n_in and outside > 0
    assert inputs[..., 0].sum() == n_in
    for ijk, vs in members.items():
        assert inputs[ijk + (0,)] == len(vs)
        assert inputs[ijk + (1,)] == pytest.approx(np.mean(vs), rel=1e-5, abs=1e-3)
    empty = inputs[..., 0] == 0
    assert empty.sum() == grid ** 3 - len(members)
    assert np.all(inputs[..., 1][empty] == 0)


def test_grid_error_weighting_matches_plain_loop(catalog):
    cat, _ = catalog
    grid = 8
    inputs = galaxies.grid_catalog(cat, L, grid, error_weighting=True)
    num, den = defaultdict(float), defaultdict(float)
    for row in cat:
        ijk = tuple(voxel_of(float(row[k]), grid) for k in ("SGX", "SGY", "SGZ"))
        if all(0 <= i < grid for i in ijk):
            w = 1.0 / float(row["sigma_v"]) ** 2
            num[ijk] += w * float(row["v_r_obs"])
            den[ijk] += w
    for ijk in num:
        assert inputs[ijk + (1,)] == pytest.approx(num[ijk] / den[ijk], rel=1e-5, abs=1e-3)


def test_grid_true_positions(catalog):
    cat, _ = catalog
    grid = 8
    inputs = galaxies.grid_catalog(cat, L, grid, position="true")
    counts = defaultdict(int)
    for row in cat:
        s = float(row["d_true"]) / float(row["d_obs"])
        ijk = tuple(voxel_of(float(row[k]) * s, grid) for k in ("SGX", "SGY", "SGZ"))
        if all(0 <= i < grid for i in ijk):
            counts[ijk] += 1
    assert inputs[..., 0].sum() == sum(counts.values())
    for ijk, c in counts.items():
        assert inputs[ijk + (0,)] == c
    real = cat.copy()
    real["d_true"] = np.nan
    with pytest.raises(distances.SurveyError, match="true distances"):
        galaxies.grid_catalog(real, L, grid, position="true")


def test_voxels_wholly_inside_the_zoa_are_empty():
    cube = synthetic_cube(120000, seed=9)
    cfg = survey_cfg(n_galaxies=30000, selection_r0=200.0)
    cat = galaxies.draw_galaxies(cube, cfg, generator(1, "survey", 9), L)
    grid = 16
    inputs = galaxies.grid_catalog(cat, L, grid)
    h = L / grid
    edges = -L / 2 + np.arange(grid + 1) * h
    # latitude of every voxel corner, from astropy
    X, Y, Z = np.meshgrid(edges, edges, edges, indexing="ij")
    ok = (X != 0) | (Y != 0) | (Z != 0)
    corners = SkyCoord(CartesianRepresentation(X[ok], Y[ok], Z[ok], unit="Mpc"), frame="supergalactic").galactic
    bcorner = np.full(X.shape, np.nan)
    bcorner[ok] = corners.b.deg
    n_zoa = 0
    for i in range(grid):
        for j in range(grid):
            for k in range(grid):
                if max(abs(i + 0.5 - grid / 2), abs(j + 0.5 - grid / 2), abs(k + 0.5 - grid / 2)) < 2:
                    continue  # voxels at the observer: the cone's apex
                bc = bcorner[i:i + 2, j:j + 2, k:k + 2]
                if np.all(np.abs(bc) < cfg.zoa_b):
                    n_zoa += 1
                    assert inputs[i, j, k, 0] == 0, (i, j, k)
    assert n_zoa > 20
    # and the sky outside the ZOA is populated
    assert inputs[..., 0].sum() > 0.5 * len(cat)


def test_velocity_bias_by_selection_pools_the_same_draws():
    """Each mode's result is velocity_bias_by_shell of the catalogs drawn, cube by cube,
    from the generators (seed, "survey", j, 1) — the same for both modes."""
    cubes = [synthetic_cube(30000, seed=s) for s in (21, 22)]
    cfg = survey_cfg(n_galaxies=3000)
    edges = [0.0, 30.0, 60.0, 90.0]
    out = galaxies.velocity_bias_by_selection(cubes, cfg, 5, edges, by="cz")
    assert list(out) == ["redshift", "true_distance"]
    for mode, r in out.items():
        cats = [galaxies.draw_galaxies(c, dataclasses.replace(cfg, selection=mode), generator(5, "survey", j, 1), L,
                                     sample=j) for j, c in enumerate(cubes)]
        ref = galaxies.velocity_bias_by_shell(np.concatenate(cats), edges, by="cz")
        np.testing.assert_array_equal(r["n"], ref["n"])
        np.testing.assert_allclose(r["bias"], ref["bias"])
        assert r["n_galaxies"] == np.mean([len(c) for c in cats]) and r["by"] == "cz"
    with pytest.raises(distances.SurveyError, match="survey.selection"):
        galaxies.velocity_bias_by_selection(cubes, cfg, 5, edges, selections=("magnitude",))
    with pytest.raises(distances.SurveyError, match="no cubes"):
        galaxies.velocity_bias_by_selection([], cfg, 5, edges)
