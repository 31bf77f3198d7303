"""Metrics checked against analytic expectations and independent computations."""
import json

import numpy as np
import pytest

from zoa_lib.analysis import metrics
from zoa_lib.survey import sky
from zoa_lib.universe.cosmology import Cosmology


def gaussian_field(n, L, power, rng):
    """Independent Gaussian field with spectrum power(k) (Mpc/h)³ on a periodic n³ grid:
    FFT(white noise) × √(P/Δ³), the convention δ_k = Σ δ_x e^{−ikx}, P = Δ³/n³ ⟨|δ_k|²⟩."""
    w = np.fft.rfftn(rng.standard_normal((n, n, n)))
    k1 = 2 * np.pi * np.fft.fftfreq(n, L / n)
    kz = 2 * np.pi * np.fft.rfftfreq(n, L / n)
    k = np.sqrt(k1[:, None, None] ** 2 + k1[None, :, None] ** 2 + kz[None, None, :] ** 2)
    amp = np.zeros_like(k)
    amp[k > 0] = np.sqrt(power(k[k > 0]) / (L / n) ** 3)
    return np.fft.irfftn(w * amp, s=(n, n, n))


def test_pearson_and_linear_fit():
    rng = np.random.default_rng(1)
    t = rng.normal(size=5000)
    p = 2.0 * t + 1.0 + 0.5 * rng.normal(size=5000)
    assert metrics.pearson_r(p, t) == pytest.approx(np.corrcoef(p, t)[0, 1], abs=1e-12)
    fit = metrics.linear_fit(p, t)
    slope, intercept = np.polyfit(t, p, 1)
    assert fit["slope"] == pytest.approx(slope, rel=1e-10)
    assert fit["intercept"] == pytest.approx(intercept, rel=1e-10)
    assert fit["scatter"] == pytest.approx(0.5, rel=0.05)
    mask = t > 0
    assert metrics.pearson_r(p, t, mask) == pytest.approx(np.corrcoef(p[mask], t[mask])[0, 1], abs=1e-12)
    assert metrics.mse(p, t) == pytest.approx(np.mean((p - t) ** 2))


def test_white_noise_power_spectrum_is_sigma2_voxel_volume():
    n, L, s = 32, 160.0, 3.0
    rng = np.random.default_rng(2)
    x = s * rng.standard_normal((n, n, n))
    ps = metrics.power_spectrum(x, L)
    good = ps["modes"] > 50
    expected = s ** 2 * (L / n) ** 3
    np.testing.assert_allclose(ps["power"][good], expected, rtol=5 / np.sqrt(ps["modes"][good]).min())
    assert np.all(np.diff(ps["k"]) > 0)


def test_power_spectrum_recovers_input_spectrum():
    n, L = 32, 200.0
    P = lambda k: 500.0 * (k / 0.1) ** -1.5  # noqa: E731
    rng = np.random.default_rng(3)
    ps = metrics.power_spectrum(np.stack([gaussian_field(n, L, P, rng) for _ in range(4)]), L)
    good = ps["modes"] > 100
    ratio = ps["power"][good] / P(ps["k"][good])
    # cosmic variance of 4 boxes (modes counts each ±k pair twice) + 5 % for P(⟨k⟩) ≠ ⟨P⟩ in a bin
    tol = 0.05 + 4.0 / np.sqrt(2 * ps["modes"][good])
    assert np.all(np.abs(ratio - 1) < tol)
    assert np.median(np.abs(ratio - 1)) < 0.03


def test_cross_correlation_with_itself_is_one():
    n, L = 16, 100.0
    rng = np.random.default_rng(4)
    f = gaussian_field(n, L, lambda k: k ** -2.0, rng)
    cc = metrics.cross_correlation(f, f, L)
    np.testing.assert_allclose(cc["r"], 1.0, atol=1e-12)
    np.testing.assert_allclose(cc["transfer"], 1.0, atol=1e-12)
    cc2 = metrics.cross_correlation(3 * f, f, L)
    np.testing.assert_allclose(cc2["transfer"], 3.0, rtol=1e-12)


def test_cross_correlation_with_white_noise_matches_analytic():
    """pred = truth + white noise of variance σ²: r(k) = √(P/(P + N)), N = σ² Δ³."""
    n, L, s = 32, 200.0, 1.0
    rng = np.random.default_rng(5)
    P = lambda k: 300.0 * (k / 0.2) ** -2.0  # noqa: E731  crosses N = σ²Δ³ = 244 mid-range
    t = np.stack([gaussian_field(n, L, P, rng) for _ in range(3)])
    p = t + s * rng.standard_normal(t.shape)
    cc = metrics.cross_correlation(p, t, L)
    N = s ** 2 * (L / n) ** 3
    expected = np.sqrt(cc["p_true"] / (cc["p_true"] + N))
    modes = cc["modes"] * 3
    good = modes > 30
    assert np.all(np.abs(cc["r"][good] - expected[good]) < 4.0 / np.sqrt(modes[good]))
    assert expected[good].max() > 0.9 and expected[good].min() < 0.5  # both regimes tested


def test_galactic_latitude_of_voxels_matches_pole_projection():
    """b = arcsin(r̂ · n_NGP), with the Galactic north pole's SG direction from astropy."""
    import astropy.units as u
    from astropy.coordinates import Galactic, SkyCoord

    ngp = SkyCoord(l=0 * u.deg, b=90 * u.deg, frame=Galactic).supergalactic.cartesian.xyz.value
    n, L = 8, 80.0
    x = -L / 2 + (np.arange(n) + 0.5) * L / n
    pos = np.stack(np.meshgrid(x, x, x, indexing="ij"), -1)
    rhat = pos / np.linalg.norm(pos, axis=-1, keepdims=True)
    b = np.degrees(np.arcsin(rhat @ ngp))
    np.testing.assert_allclose(sky.galactic_latitude_grid(n, L), b, atol=1e-6)
    np.testing.assert_array_equal(sky.zoa_mask(n, L, 10.0), np.abs(b) < 10.0)


def test_zoa_fraction_of_sky():
    n, L, b0 = 48, 160.0, 10.0
    reg = metrics.regions(n, L, b0, r_max=80.0)
    shell = reg["survey"] & (np.linalg.norm(np.stack(np.meshgrid(*(
        [-L / 2 + (np.arange(n) + 0.5) * L / n] * 3), indexing="ij"), -1), axis=-1) > 30)
    frac = (reg["zoa"] & shell).sum() / shell.sum()
    assert frac == pytest.approx(np.sin(np.radians(b0)), rel=0.05)
    assert not np.any(reg["zoa"] & reg["outside_zoa"])
    np.testing.assert_array_equal(reg["zoa"] | reg["outside_zoa"], reg["survey"])


def test_velocity_residual_rms_and_bulk_flow_error():
    n, L = 8, 80.0
    rng = np.random.default_rng(6)
    t = rng.normal(0, 300, (2, n, n, n, 3))
    off = np.array([30.0, -40.0, 0.0])
    res = metrics.velocity_residual_rms(t + off, t)
    assert res["x"] == pytest.approx(30.0) and res["y"] == pytest.approx(40.0)
    assert res["z"] == pytest.approx(0.0, abs=1e-9) and res["3d"] == pytest.approx(50.0)
    bf = metrics.bulk_flow_error(t + off, t, L, [10.0, 30.0], cosmo=Cosmology())
    np.testing.assert_allclose(bf["error_mean"], 50.0, rtol=1e-10)
    assert len(bf["lcdm_sigma"]) == 2 and bf["lcdm_lower"][0] < bf["lcdm_sigma"][0]


def test_one_point_pdf_normalised():
    rng = np.random.default_rng(7)
    a = rng.normal(size=10000)
    pdf = metrics.one_point_pdf(a + 0.1, a, bins=30)
    w = np.diff(pdf["edges"])
    assert np.sum(pdf["truth"] * w) == pytest.approx(1.0)
    assert np.sum(pdf["pred"] * w) == pytest.approx(1.0, abs=0.01)


def test_field_and_velocity_metrics_are_plain_json():
    n, L = 8, 80.0
    rng = np.random.default_rng(8)
    t = rng.normal(size=(2, n, n, n))
    p = t + 0.3 * rng.normal(size=t.shape)
    fm = metrics.field_metrics(p, t, L, zoa_b=10.0, shells=(0, 20, 40), r_max=40.0)
    json.dumps(fm, allow_nan=False)
    assert set(fm["regions"]) == {"cube", "survey", "zoa", "outside_zoa"}
    assert fm["regions"]["cube"]["pearson_r"] == pytest.approx(metrics.pearson_r(p, t))
    assert fm["regions"]["cube"]["mse"] == pytest.approx(0.09, rel=0.15)
    assert len(fm["shells"]) == 2 and len(fm["slabs"]) == 4
    tv = rng.normal(size=(2, n, n, n, 3))
    vm = metrics.velocity_metrics(tv + 0.1, tv, L, 10.0, (0, 20, 40), radii=(10.0, 20.0), r_max=40.0)
    json.dumps(vm, allow_nan=False)
    assert vm["regions"]["survey"]["x"]["pearson_r"] > 0.99
    assert vm["bulk_flow"]["error_mean"] == pytest.approx([np.sqrt(0.03)] * 2)


def test_shape_mismatch_raises():
    from zoa_lib.errors import ZoaError

    with pytest.raises(ZoaError, match="shape"):
        metrics.field_metrics(np.zeros((8, 8, 8)), np.zeros((4, 4, 4)), 80.0, 10.0, (0, 40))


# --------------------------------------------------------------------------- per-mock values, bootstrap
def test_per_mock_arrays_match_pooled_and_demeaned_removes_constants():
    rng = np.random.default_rng(11)
    n, N = 3, 8
    t = rng.normal(size=(n, N, N, N))
    p = 0.8 * t + 0.3 * rng.normal(size=t.shape) + np.array([5.0, -2.0, 0.0])[:, None, None, None]
    mask = np.ones((N, N, N), bool)
    st = metrics._point_stats(p, t, mask)
    assert len(st["pearson_r_per_mock"]) == n
    for i in range(n):
        assert st["pearson_r_per_mock"][i] == pytest.approx(np.corrcoef(p[i].ravel(), t[i].ravel())[0, 1])
    assert np.mean(st["mse_per_mock"]) == pytest.approx(st["mse"])
    # the per-mock offsets (a constant, like φ's) count in the MSE, not in the demeaned MSE
    assert st["mse_per_mock"][0] > 20 and max(st["mse_demeaned_per_mock"]) < 0.2
    # the pooled r is hurt by the offsets, the per-mock r is not
    assert st["pearson_r"] < 0.5 < min(st["pearson_r_per_mock"])


def test_per_mock_r_in_shells_and_mean_removal_ignore_a_constant_per_mock():
    from zoa_lib.universe import velocity

    rng = np.random.default_rng(12)
    n, N, L = 3, 8, 80.0
    t = rng.normal(size=(n, N, N, N))
    offsets = np.array([50.0, -20.0, 0.0])[:, None, None, None]
    p = 0.8 * t + 0.3 * rng.normal(size=t.shape) + offsets
    # each mock's mean removed: zero mean per mock, the same field otherwise
    d = metrics.remove_mock_mean(p)
    assert np.allclose(d.mean(axis=(1, 2, 3)), 0) and np.allclose(d - p, d[:, :1, :1, :1] - p[:, :1, :1, :1])
    assert metrics.remove_mock_mean(p[0]).shape == (N, N, N)
    zoa = sky.zoa_mask(N, L, 10.0)
    assert np.allclose(metrics.remove_mock_mean(p, zoa)[:, zoa].mean(axis=1), 0)
    per = metrics.pearson_r_per_mock(p, t)
    assert per == pytest.approx([np.corrcoef(p[i].ravel(), t[i].ravel())[0, 1] for i in range(n)])
    shells = (0.0, 20.0, 40.0)
    sh = metrics.pearson_r_in_shells(p, t, L, shells)
    r = velocity.radius_grid(N, L)
    for j, (lo, hi) in enumerate(zip(shells[:-1], shells[1:])):
        m = (r >= lo) & (r < hi)
        want = [np.corrcoef(p[i][m], t[i][m])[0, 1] for i in range(n)]
        assert sh["mean"][j] == pytest.approx(np.mean(want)) and sh["std"][j] == pytest.approx(np.std(want))
        assert sh["n_voxels"][j] == m.sum() and sh["centres"][j] == 0.5 * (lo + hi)
    # field_metrics' shells carry the same per-mock mean; the pooled r is hurt by the offsets
    fm = metrics.field_metrics(p, t, L, zoa_b=10.0, shells=shells)
    assert [s_["pearson_r_mock_mean"] for s_ in fm["shells"]] == pytest.approx(list(sh["mean"]))
    assert fm["shells"][1]["pearson_r"] < 0.5 < fm["shells"][1]["pearson_r_mock_mean"]
    inz = metrics.pearson_r_in_shells(p, t, L, shells, mask=zoa)
    assert inz["n_voxels"][1] == (zoa & (r >= 20) & (r < 40)).sum()


def test_vector_correlation_and_residual_rms_per_mock():
    rng = np.random.default_rng(12)
    t = rng.normal(size=(2, 6, 6, 6, 3))
    p = t.copy()
    p[1] = t[1] + rng.normal(size=t[1].shape)  # r = 1/√2 for mock 1
    mask = np.ones((6, 6, 6), bool)
    vc = metrics.vector_correlation(p, t, mask)
    assert vc["pearson_r_per_mock"][0] == pytest.approx(1.0)
    assert vc["pearson_r_per_mock"][1] == pytest.approx(1 / np.sqrt(2), abs=0.05)
    # a uniform offset of each component (a bulk velocity) does not change r
    q = p + np.array([300.0, -100.0, 50.0])
    assert metrics.vector_correlation(q, t, mask)["pearson_r_per_mock"] == pytest.approx(vc["pearson_r_per_mock"])
    rms = metrics.velocity_residual_rms(p, t, mask)
    assert rms["3d_per_mock"][0] == 0.0 and rms["3d_per_mock"][1] == pytest.approx(np.sqrt(3), rel=0.1)
    assert rms["3d"] == pytest.approx(np.sqrt(np.mean(np.array(rms["3d_per_mock"]) ** 2)))


def _grouped(rng, n_groups, per_group, shift, box_sd=0.05, mock_sd=0.02):
    """Per-mock metric pairs: b per mock, a = b + shift + a box effect + mock noise."""
    groups = np.repeat(np.arange(n_groups), per_group)
    b = 0.8 + 0.05 * rng.standard_normal(groups.size)
    a = b + shift + box_sd * rng.standard_normal(n_groups)[groups] + mock_sd * rng.standard_normal(groups.size)
    return a, b, groups


def test_paired_bootstrap_known_difference_and_zero_difference():
    rng = np.random.default_rng(13)
    a, b, g = _grouped(rng, 12, 4, shift=0.1)
    bs = metrics.paired_bootstrap(a, b, g, n_boot=4000, seed=1)
    lo, hi = bs["interval"]
    assert bs["difference"] == pytest.approx(np.mean(a - b))
    assert bs["n_groups"] == 12 and bs["n_mocks"] == 48
    # the 68 % half-width ≈ the standard error of the mean over 12 boxes (box scatter 0.05)
    se = np.std([np.mean((a - b)[g == k]) for k in range(12)], ddof=1) / np.sqrt(12)
    assert 0.7 * se < 0.5 * (hi - lo) < 1.3 * se
    assert lo < bs["difference"] < hi and abs(bs["difference"] - 0.1) < 3 * se
    assert lo > 0  # a winner: the interval excludes zero (the shift is ~7 standard errors)
    # no difference: the interval includes zero
    a0, b0, g0 = _grouped(rng, 12, 4, shift=0.0)
    lo0, hi0 = metrics.paired_bootstrap(a0, b0, g0, seed=1)["interval"]
    assert lo0 < 0 < hi0
    # deterministic for a seed
    assert metrics.paired_bootstrap(a, b, g, n_boot=4000, seed=1) == bs


def test_paired_bootstrap_resamples_boxes_not_mocks():
    """Mocks of one box share its errors: resampling mocks would understate the interval."""
    rng = np.random.default_rng(14)
    a, b, g = _grouped(rng, 6, 8, shift=0.02, box_sd=0.05, mock_sd=0.005)
    by_box = metrics.paired_bootstrap(a, b, g, seed=2)["interval"]
    by_mock = metrics.paired_bootstrap(a, b, np.arange(a.size), seed=2)["interval"]
    assert (by_box[1] - by_box[0]) > 2.0 * (by_mock[1] - by_mock[0])


def test_paired_bootstrap_interval_covers_the_truth_68_percent_of_the_time():
    rng = np.random.default_rng(15)
    hits = 0
    reps = 300
    for i in range(reps):
        a, b, g = _grouped(rng, 20, 3, shift=0.1)
        lo, hi = metrics.paired_bootstrap(a, b, g, n_boot=1000, seed=i)["interval"]
        hits += lo < 0.1 < hi
    assert 0.56 < hits / reps < 0.80


def test_paired_bootstrap_one_box_and_missing_values():
    a = np.array([0.9, 0.8, 0.85])
    b = np.array([0.5, 0.4, 0.45])
    bs = metrics.paired_bootstrap(a, b, [7, 7, 7])
    assert bs["difference"] == pytest.approx(0.4) and bs["n_groups"] == 1
    assert all(np.isnan(bs["interval"]))  # one parent box: no interval
    bs = metrics.paired_bootstrap([0.9, None, 0.7, np.nan], [0.5, 0.5, 0.5, 0.5], [0, 1, 2, 3])
    assert bs["n_mocks"] == 2 and bs["difference"] == pytest.approx(0.3)
    with pytest.raises(metrics.MetricsError):
        metrics.paired_bootstrap([1.0, 2.0], [1.0], [0, 1])


def test_field_metrics_by_hand_on_two_small_mocks():
    """pred = 2 t + 1 on two 4³ mocks, t₀ = 0 … 63 and t₁ = (0 … 63) mod 4: r = 1 per mock and
    pooled, slope 2, intercept 1, no scatter; MSE per mock ⟨(t + 1)²⟩ = Σ_{j=1}^{64} j²/64 =
    1397.5 and (1 + 4 + 9 + 16)/4 = 7.5; with each mock's mean removed the residual is
    t − ⟨t⟩, so the MSE is each mock's variance, (64² − 1)/12 = 341.25 and (4² − 1)/12 = 1.25."""
    t = np.stack([np.arange(64.0), np.arange(64.0) % 4]).reshape(2, 4, 4, 4)
    out = metrics.field_metrics(2 * t + 1, t, size=4.0, zoa_b=10.0, shells=[0.0, 1.0, 4.0])
    cube = out["regions"]["cube"]
    assert cube["n_voxels"] == 64
    assert cube["pearson_r_per_mock"] == pytest.approx([1.0, 1.0]) and cube["pearson_r"] == pytest.approx(1.0)
    assert cube["slope"] == pytest.approx(2.0) and cube["intercept"] == pytest.approx(1.0)
    assert cube["scatter"] == pytest.approx(0.0, abs=1e-9)
    assert cube["mse_per_mock"] == pytest.approx([1397.5, 7.5]) and cube["mse"] == pytest.approx(702.5)
    assert cube["mse_demeaned_per_mock"] == pytest.approx([341.25, 1.25])
    assert cube["mse_demeaned"] == pytest.approx(171.25)
    # voxel centres at ±0.5, ±1.5: 8 voxels within r < 1 (|x| = 0.5 on each axis), 56 beyond
    assert [s["n_voxels"] for s in out["shells"]] == [8, 56]


def test_velocity_residual_rms_by_hand():
    """A uniform error (3, 4, 0) km/s on one mock and (0, 0, 0) on another: rms per component
    (3/√2, 4/√2, 0), 3D rms 5/√2 pooled, 5 and 0 per mock."""
    true = np.zeros((2, 4, 4, 4, 3))
    pred = true.copy()
    pred[0] += [3.0, 4.0, 0.0]
    out = metrics.velocity_residual_rms(pred, true)
    assert (out["x"], out["y"], out["z"]) == pytest.approx((3 / np.sqrt(2), 4 / np.sqrt(2), 0.0))
    assert out["3d"] == pytest.approx(5 / np.sqrt(2))
    assert out["3d_per_mock"] == pytest.approx([5.0, 0.0]) and out["3d_mock_mean"] == pytest.approx(2.5)


def test_mse_by_truth_bins_against_a_hand_computation():
    from zoa_lib.analysis.metrics import mse_by_truth_bins

    truth = np.arange(1000, dtype=float).reshape(1, 10, 10, 10)
    pred = truth.copy()
    pred[truth >= 990] += 3.0             # error only in the top 1 % of the truth
    pred[truth < 500] += 1.0              # and 1 everywhere in the lower half
    out = mse_by_truth_bins(pred, truth, quantiles=(0.0, 0.5, 0.9, 0.99, 1.0))
    assert out["n"] == [500, 400, 90, 10]
    np.testing.assert_allclose(out["mse"], [1.0, 0.0, 0.0, 9.0])
    np.testing.assert_allclose(out["edges"], np.quantile(truth, [0.0, 0.5, 0.9, 0.99, 1.0]))
    mask = np.zeros((10, 10, 10), bool)
    mask[:5] = True                        # the lower half only: every bin inside it
    assert sum(mse_by_truth_bins(pred, truth, mask)["n"]) == 500


def test_edge_by_truth_bins_compares_with_the_best_baseline_per_bin():
    from zoa_lib.analysis.evaluation import edge_by_truth_bins

    def doc(mse):
        return {"delta": {"truth_bins": {"quantiles": [0, 0.5, 1], "edges": [-1, 0, 5], "mse": mse, "n": [5, 5]}}}
    per = {"vnet_delta": doc([1.0, 2.0]), "wiener": doc([2.0, 8.0]), "potent": doc([4.0, 4.0])}
    rows = edge_by_truth_bins(per)
    assert [r["best_baseline"] for r in rows] == ["wiener", "potent"]
    np.testing.assert_allclose([r["ratio"] for r in rows], [0.5, 0.5])
    # a baseline scored against another truth (other bin edges, e.g. POTENT's smoothed truth) is left out
    smoothed = doc([0.1, 0.1])
    smoothed["delta"]["truth_bins"]["edges"] = [-0.5, 0.0, 1.0]
    rows = edge_by_truth_bins({"vnet_delta": doc([1.0, 2.0]), "wiener": doc([2.0, 8.0]), "potent": smoothed})
    assert [r["best_baseline"] for r in rows] == ["wiener", "wiener"]
    assert edge_by_truth_bins({"vnet_delta": doc([1.0, 2.0])}) == []
