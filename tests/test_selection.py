"""Catalogue-matched mock surveys (zoa_lib.survey.selection) and the out-of-distribution check
(zoa_lib.survey.domain): the measured selection is reproduced by the mocks, the sky mask agrees with
astropy-healpix and astropy, and unlike catalogues are told apart."""
from __future__ import annotations

import dataclasses
from types import SimpleNamespace

import astropy.units as u
import numpy as np
import pytest
from astropy.coordinates import Galactic, SkyCoord
from scipy.stats import ks_2samp

from zoa_lib.config import ProfileError, load_profile
from zoa_lib.io import paths
from zoa_lib.survey import distances, domain, mocks, selection, sky
from zoa_lib.survey.catalogs import CF4_SAMPLE, read_catalog
from zoa_lib.survey.shards import CATALOG_DTYPE
from zoa_lib.universe import cosmology
from zoa_lib.universe.rng import generator

CF3 = paths.REPO_ROOT / "data" / "cf3-group-members.tsv"


def uniform_particles(n=400000, half=150.0, seed=0, sigma_v=0.0):
    """Uniform random particles in a cube of side 2 half (Mpc/h) around the observer, at rest
    (or with Gaussian velocities)."""
    g = np.random.default_rng(seed)
    pos = g.uniform(-half, half, (n, 3))
    vel = g.normal(0.0, sigma_v, (n, 3)) if sigma_v else np.zeros((n, 3))
    return SimpleNamespace(positions=pos, velocities=vel, mean_density=n / (2 * half) ** 3)


def fake_catalogue(n=6000, depth=120.0, seed=1):
    """A catalogue on the northern Galactic sky (b > 20°), n(s) ∝ s² exp(−s/20) (Mpc/h) up to depth, σ_μ growing
    with distance: a known selection to measure and copy."""
    g = np.random.default_rng(seed)
    s = g.gamma(3.0, 20.0, 4 * n)
    s = s[(s < depth) & (s > 0.5)][:n]
    sinb = g.uniform(np.sin(np.radians(20.0)), 1.0, s.size)
    l = g.uniform(0.0, 360.0, s.size)
    b = np.degrees(np.arcsin(sinb))
    e_dm = np.where(s < 30.0, 0.2, 0.5)
    cat = np.zeros(s.size, CATALOG_DTYPE)
    cz = distances.observed_cz(s, np.zeros_like(s))
    d_L = distances.luminosity_from_comoving_distance(s)
    v, sig = distances.estimate_velocity("watkins_feldman", cz, d_L, e_dm)
    x, y, z = sky.galactic_to_sg(l, b, s)
    cat["SGX"], cat["SGY"], cat["SGZ"], cat["l"], cat["b"] = x, y, z, l, b
    cat["d_obs"], cat["cz"], cat["v_r_obs"], cat["sigma_v"] = s, cz, v, sig
    cat["d_true"] = cat["v_r_true"] = np.nan
    return cat, e_dm


def test_sky_pixels_agree_with_astropy_healpix_and_skycoord():
    l, b = selection.pixel_centres(8)
    assert np.array_equal(selection.sky_pixels(l, b, 8), np.arange(768))
    # the same direction given in ICRS and converted by astropy lands in the same pixel
    g = np.random.default_rng(3)
    ll, bb = g.uniform(0, 360, 200), np.degrees(np.arcsin(g.uniform(-1, 1, 200)))
    icrs = SkyCoord(l=ll * u.deg, b=bb * u.deg, frame=Galactic()).icrs
    back = icrs.transform_to(Galactic())
    assert np.array_equal(selection.sky_pixels(back.l.deg, back.b.deg, 8), selection.sky_pixels(ll, bb, 8))


def test_measured_selection_holds_the_catalogues_sky_counts_and_errors():
    cat, e_dm = fake_catalogue()
    sel = selection.measure_selection(cat, e_dm=e_dm, nside=8)
    lc, bc = selection.pixel_centres(8)
    # observed pixels are northern; the pixels well inside b > 20 are observed
    assert np.all(bc[sel.sky] > 10.0)
    assert np.all(sel.sky[bc > 35.0])
    assert 0.25 < sel.sky_fraction < 0.36  # (1 − sin 20°)/2 = 0.33
    s = selection.redshift_distances(cat)
    assert sel.n_s.sum() + sel.n_beyond + (~sel.observed(cat["l"], cat["b"])).sum() == len(cat)
    assert np.array_equal(sel.n_s, np.histogram(s[sel.observed(cat["l"], cat["b"])], sel.s_edges)[0])
    # σ_μ drawn in a bin is one of that bin's
    draws = sel.sigma_dm_draw(np.array([5.0, 15.0, 45.0, 55.0]), np.random.default_rng(0))
    assert np.allclose(draws, [0.2, 0.2, 0.5, 0.5])
    # and catalogue_sigma_dm inverts the reader's σ_v
    assert np.allclose(selection.catalogue_sigma_dm(cat), e_dm, rtol=1e-5)


def test_mocks_reproduce_the_measured_selection_on_uniform_particles():
    """Particles at rest, uniform: the mock's n(s) must match the catalogue's bin by bin (Poisson),
    its galaxies lie on the observed sky only, its σ_μ follow the catalogue's per bin."""
    cat, e_dm = fake_catalogue(n=4000)
    sel = selection.measure_selection(cat, e_dm=e_dm, nside=8)
    cfg = dataclasses.replace(load_profile("ci").survey, sigma_v_nl=0.0)
    parts = uniform_particles(half=sel.depth + 10.0)
    mock = np.concatenate([selection.draw_matched_galaxies(parts, sel, cfg, generator(5, "survey", i))
                           for i in range(4)])
    s = selection.redshift_distances(mock)
    n = np.histogram(s, sel.s_edges)[0] / 4.0
    big = sel.n_s > 50
    pull = (n[big] - sel.n_s[big]) / np.sqrt(sel.n_s[big] / 4.0 + sel.n_s[big])
    assert np.all(np.abs(pull) < 4.0), pull
    assert abs(n.sum() / sel.n_s.sum() - 1.0) < 0.05
    assert np.all(sel.observed(mock["l"], mock["b"]))
    e_mock = selection.catalogue_sigma_dm(mock)
    assert set(np.round(e_mock, 3)) <= {0.2, 0.5}
    near, far = s < 29.0, s > 31.0
    assert np.allclose(e_mock[near], 0.2, atol=1e-3) and np.allclose(e_mock[far], 0.5, atol=1e-3)
    # the two-sample KS distance of n(s) is small
    assert ks_2samp(s, selection.redshift_distances(cat)).statistic < 0.05


def test_mock_galaxies_come_from_beyond_the_cube_and_scatter_into_it():
    cat, e_dm = fake_catalogue(n=4000, depth=240.0)
    sel = selection.measure_selection(cat, e_dm=e_dm)
    assert sel.depth > 110.0
    cfg = load_profile("ci").survey
    mock = selection.draw_matched_galaxies(uniform_particles(half=sel.depth + 10.0), sel, cfg, generator(6, "survey", 0))
    inside = selection.in_cube(mock, 160.0)
    d_true = mock["d_true"].astype(float)
    # galaxies truly outside the cube (|x| > 80 on some axis at the true position) observed inside it
    true_xyz = np.stack([mock[k] for k in ("SGX", "SGY", "SGZ")], -1) * (d_true / mock["d_obs"])[:, None]
    truly_out = np.any(np.abs(true_xyz) >= 80.0, axis=-1)
    assert np.sum(inside & truly_out) > 20
    assert d_true.max() > 130.0


def test_catalogue_profile_key_validated_and_checksummed(tmp_path):
    with pytest.raises(ProfileError, match="catalogue_nside"):
        load_profile("ci", {"survey.catalogue_nside": 6})
    a = load_profile("ci", {"survey.catalogue": str(CF4_SAMPLE)})
    copy = tmp_path / "cf4.csv"
    copy.write_bytes(CF4_SAMPLE.read_bytes())
    b = load_profile("ci", {"survey.catalogue": str(copy)})
    assert mocks.config_checksum(a) == mocks.config_checksum(b)  # the bytes count, not the name
    lines = CF4_SAMPLE.read_text().splitlines(keepends=True)
    copy.write_text("".join(lines[:-1000]))
    c = load_profile("ci", {"survey.catalogue": str(copy)})
    assert mocks.config_checksum(c) != mocks.config_checksum(a)
    assert mocks.config_checksum(load_profile("ci")) != mocks.config_checksum(a)
    with pytest.raises(selection.SelectionError, match="no file"):
        selection.catalogue_selection(load_profile("ci", {"survey.catalogue": str(tmp_path / "none.tsv")}))


def test_empty_catalogue_and_empty_mask_are_one_line_errors():
    with pytest.raises(selection.SelectionError, match="no galaxies"):
        selection.measure_selection(np.zeros(0, CATALOG_DTYPE))
    cat, e_dm = fake_catalogue(n=50)
    with pytest.raises(selection.SelectionError, match="errors"):
        selection.measure_selection(cat, e_dm=np.full(len(cat), np.nan))


def test_real_partial_cf4_mocks_keep_its_missing_sky():
    """The shipped CF4 rows stop at RA 203°: a mock that copies them has no galaxy where they have
    none (HEALPix pixels empty in the data), and its counts in the cube are within 20 %."""
    prof = load_profile("ci", {"survey.catalogue": str(CF4_SAMPLE)})
    sel = selection.catalogue_selection(prof)
    assert 0.4 < sel.sky_fraction < 0.6
    smp = mocks.make_sample(prof, 0)
    assert np.all(sel.observed(smp.catalog["l"], smp.catalog["b"]))
    real, _ = read_catalog(CF4_SAMPLE)
    cmp = selection.compare_catalogues(real, smp.catalog, prof.box.size, depth=sel.depth)
    assert 0.8 < cmp["n_in_cube_ratio"] < 1.2
    assert cmp["ks"]["s"]["D"] < 0.12
    # what the mocks do not copy is said: the galaxies in sparse pixels
    assert any("sparse" in n for n in sel.notes)


# --------------------------------------------------------------------------- out of distribution
def test_domain_check_tells_unlike_catalogues_apart():
    prof = load_profile("ci", {"survey.catalogue": str(CF4_SAMPLE)})
    ref = [mocks.make_sample(prof, i).catalog for i in (0, 1)]
    real, _ = read_catalog(CF4_SAMPLE)
    assert domain.check(real, ref, prof.box.size) == []
    # the same catalogue against mocks of the analytic, full-sky selection to 80 Mpc/h
    analytic = load_profile("ci")
    ref_a = [mocks.make_sample(analytic, i).catalog for i in (0, 1)]
    keys = {m.key for m in domain.check(real, ref_a, prof.box.size)}
    assert "sky" in keys and "n_s" in keys, keys
    # half the catalogue: the count in the cube alone differs
    keys = {m.key for m in domain.check(real[::3], ref, prof.box.size)}
    assert keys == {"n_in_cube"}, keys
    line = domain.summary_line(domain.check(real, ref_a, 160.0), "cf4.csv", analytic)
    assert "\n" not in line and "survey.catalogue=cf4.csv" in line and "--force" in line


def test_malmquist_calibration_is_not_extrapolated_past_the_mocks():
    from zoa_lib.methods.baselines import RadialBias

    rb = RadialBias(edges=np.arange(0.0, 60.0, 10.0), bias=np.array([np.nan, -50.0, -20.0, 10.0, 40.0]), n_mocks=3)
    assert np.allclose(rb.at([15.0, 20.0, 45.0, 49.9]), [-50.0, -35.0, 40.0, 40.0])
    assert np.all(rb.at([50.1, 80.0, 138.0]) == 0.0)
    assert rb.at(5.0) == -50.0  # inside the measured range: constant towards the observer


def test_bad_survey_catalogue_is_one_line_before_anything_is_written(tmp_path, monkeypatch, capsys):
    from zoa_lib.cli import main

    monkeypatch.setenv("ZOA_DATA", str(tmp_path / "data"))
    positions = tmp_path / "pos.csv"
    positions.write_text("SGX,SGY,SGZ,v_r\n10,20,30,100\n40,-20,5,-50\n")
    far = tmp_path / "far.csv"
    far.write_text("Vcmb,DM,eDM,glon,glat\n" + "".join(f"{30000 + i},38.0,0.4,{i},45\n" for i in range(3)))
    for path, words in ((tmp_path / "none.tsv", "no file"), (positions, "positions table"),
                        (far, "no galaxy within")):
        assert main(["mocks", "--profile", "ci", "-p", f"survey.catalogue={path}"]) == 2
        err = capsys.readouterr().err.strip()
        assert "\n" not in err and words in err, err
    assert not (tmp_path / "data").exists() or not any((tmp_path / "data").rglob("*.h5"))


def test_wiener_noise_model_follows_the_catalogues_distance_errors():
    from zoa_lib.methods.baselines import noise_sigma_v
    from zoa_lib.universe.velocity import radius_grid

    cat, e_dm = fake_catalogue()
    sel = selection.measure_selection(cat, e_dm=e_dm)
    assert np.allclose(sel.sigma_dm_rms(np.array([5.0, 25.0, 35.0, 500.0])), [0.2, 0.2, 0.5, 0.5])
    prof = load_profile("ci", {"survey.catalogue": str(CF3)})
    real = selection.catalogue_selection(prof)
    sig = noise_sigma_v(prof)
    r = np.maximum(radius_grid(prof.box.grid, prof.box.size), 0.5 * prof.box.size / prof.box.grid)
    cz = cosmology.C_LIGHT * distances.redshift_from_comoving_distance(r)
    want = distances.watkins_feldman_sigma(cz, real.sigma_dm_rms(r))
    assert np.allclose(sig, want, rtol=1e-6)
    # CF3's errors (median 0.5 mag) are larger than the analytic profile's 0.4 mag
    assert np.median(sig / noise_sigma_v(load_profile("ci", {"survey.catalogue": None}))) > 1.1
