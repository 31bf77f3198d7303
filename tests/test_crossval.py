"""``zoa crossval`` (zoa_lib.analysis.crossval): held-out splits, the predicted radial velocity at galaxy
positions, the scores, a mock catalogue end to end and the command's one-line errors."""
from __future__ import annotations

import json
import math

import numpy as np
import pytest
from test_reconstruct import (
    one_line_error,  # noqa: E402  (exit 2, one line on stderr, nothing on stdout)
    trained_ci,  # noqa: E402, F401  (pytest fixture: ci mocks and both networks)
)

from zoa_lib.analysis import crossval as cv
from zoa_lib.analysis import reconstruct as rc
from zoa_lib.cli import main
from zoa_lib.config import load_profile
from zoa_lib.methods import calibration, reconstruction, registry
from zoa_lib.survey import catalogs, mocks
from zoa_lib.survey.catalog_files import write_cf4_csv
from zoa_lib.universe.grid import voxel_centres


@pytest.fixture(scope="module")
def ci():
    return load_profile("ci")


# --------------------------------------------------------------------------- splits
def test_splits_deterministic_disjoint_right_sizes():
    a = cv.holdout_splits(1000, 0.1, 5, seed=3)
    assert len(a) == 5 and all(m.dtype == bool and m.shape == (1000,) and m.sum() == 100 for m in a)
    assert np.stack(a).sum(axis=0).max() == 1  # disjoint folds of one permutation
    b = cv.holdout_splits(1000, 0.1, 5, seed=3)
    assert all(np.array_equal(x, y) for x, y in zip(a, b))
    assert not np.array_equal(a[0], cv.holdout_splits(1000, 0.1, 5, seed=4)[0])
    # 10 folds of 10 % cover everything once; 0.3 x 5 > 1 cannot be disjoint: independent draws
    assert np.stack(cv.holdout_splits(200, 0.1, 10, seed=0)).sum(axis=0).tolist() == [1] * 200
    c = cv.holdout_splits(101, 0.3, 5, seed=0)
    assert [m.sum() for m in c] == [30] * 5 and len({m.tobytes() for m in c}) == 5
    for bad in (0.0, -0.1, 0.51, float("nan")):
        with pytest.raises(cv.CrossValError, match=r"fraction: must be in \(0, 0.5\]"):
            cv.holdout_splits(100, bad, 5)
    with pytest.raises(cv.CrossValError, match="at least 2 random splits"):
        cv.holdout_splits(100, 0.1, 1)


# --------------------------------------------------------------------------- prediction
def test_linear_field_interpolated_exactly_and_projected_on_r_hat():
    L, N = 160.0, 8
    x = voxel_centres(L, N)
    X = np.stack(np.meshgrid(x, x, x, indexing="ij"), axis=-1)  # (N, N, N, 3) voxel centres, Mpc/h
    A = np.array([[3.0, -1.0, 0.5], [0.2, 2.0, -4.0], [1.5, 0.7, -2.5]])  # km/s per Mpc/h
    c = np.array([120.0, -80.0, 45.0])  # km/s
    vel = X @ A.T + c
    g = np.random.default_rng(0)
    lo, hi = x[0], x[-1]  # trilinear is exact between the outermost voxel centres
    pos = g.uniform(lo, hi, (200, 3))
    want = np.einsum("ma,ma->m", pos @ A.T + c, pos) / np.linalg.norm(pos, axis=1)
    np.testing.assert_allclose(cv.radial_velocity_at(vel, L, pos), want, rtol=1e-10, atol=1e-8)
    # by hand: a uniform flow (300, 0, 0) km/s seen along +SGX, −SGX, SGY and the diagonal
    flow = np.broadcast_to(np.array([300.0, 0.0, 0.0]), (N, N, N, 3))
    p = np.array([[40.0, 0, 0], [-10.0, 0, 0], [0, 25.0, 0], [30.0, 30.0, 0], [0, 0, 0]])
    got = cv.radial_velocity_at(flow, L, p)
    np.testing.assert_allclose(got[:4], [300.0, -300.0, 0.0, 300.0 / math.sqrt(2)], atol=1e-9)
    assert math.isnan(got[4])  # the observer: no line of sight
    assert math.isnan(cv.radial_velocity_at(flow, L, [[90.0, 0, 0]])[0])  # outside the cube
    with pytest.raises(cv.CrossValError, match=r"\(N, N, N, 3\)"):
        cv.radial_velocity_at(np.zeros((N, N, N)), L, p)


# --------------------------------------------------------------------------- scores
def test_scores_known_answers():
    g = np.random.default_rng(1)
    v = g.normal(0, 400, 500)
    sig = g.uniform(200, 900, 500)
    s = cv.scores(v, v, sig)
    assert s["r"] == pytest.approx(1.0) and s["slope"] == pytest.approx(1.0) and s["n"] == 500
    assert s["dchi2"] == pytest.approx(np.mean(v ** 2 / sig ** 2))
    # v = 0 predicts nothing: Δχ² = 0, r and slope undefined (NaN, None in JSON)
    z = cv.scores(v, np.zeros_like(v), sig)
    assert z["dchi2"] == 0.0 and math.isnan(z["r"]) and math.isnan(z["slope"])
    assert math.isnan(cv.scores(v, np.full_like(v, 250.0), sig)["slope"])
    # half the amplitude: r = 1, slope 2; a line v = a + s p recovered
    h = cv.scores(v, 0.5 * v, 300.0)
    assert h["r"] == pytest.approx(1.0) and h["slope"] == pytest.approx(2.0)
    assert h["dchi2"] == pytest.approx(np.mean(v ** 2 - (0.5 * v) ** 2) / 300.0 ** 2)
    p = g.normal(0, 300, 500)
    assert cv.scores(50 + 0.7 * p, p, 1.0)["slope"] == pytest.approx(0.7)
    noisy = 50 + 0.7 * p + g.normal(0, 200, 500)
    assert cv.scores(noisy, p, 1.0)["slope"] == pytest.approx(np.polyfit(p, noisy, 1)[0])
    assert cv.scores(noisy, p, 1.0)["r"] == pytest.approx(np.corrcoef(noisy, p)[0, 1])
    assert cv.scores(v, -v, sig)["r"] == pytest.approx(-1.0)
    with pytest.raises(cv.CrossValError, match="sigma > 0"):
        cv.scores(v, v, 0.0)
    with pytest.raises(cv.CrossValError, match="one value per galaxy"):
        cv.scores(v, v[:-1], sig)


# --------------------------------------------------------------------------- end to end
@pytest.fixture(scope="module")
def mock_csv(ci, tmp_path_factory):
    """A CF4-style CSV of one ci mock survey drawn from a 2LPT simulation (about 1 s)."""
    s = mocks.make_sample(ci, 0)
    return write_cf4_csv(tmp_path_factory.mktemp("crossval") / "mock-cf4.csv", s.catalog)


def test_wiener_predicts_held_out_velocities_of_a_mock(ci, mock_csv, zoa_data, tmp_path):
    res = cv.crossval(ci, mock_csv, "wiener", n_splits=3, seed=7)
    assert res.methods == ["wiener"] and len(res.splits["wiener"]) == 3 and res.disjoint
    n = res.n_scorable
    assert res.n_held_out == [round(0.1 * n)] * 3
    # scored: the held-out galaxies still in the cube after the split's zero point is applied
    assert all(0.98 * round(0.1 * n) <= s["n"] <= round(0.1 * n) for s in res.splits["wiener"])
    assert len(res.zero_points) == 3 and all(abs(a) < 0.1 for a in res.zero_points)
    plain = cv.crossval(ci, mock_csv, "wiener", n_splits=3, seed=7, zero_point=False)
    assert plain.zero_points is None and all(s["n"] == round(0.1 * n) for s in plain.splits["wiener"])
    assert res.n_in_cube <= res.n_kept == res.n_rows and n <= res.n_in_cube
    summ = res.summary()["wiener"]
    # the plain Wiener filter's held-out r is positive in every split (its Δχ² need not be: far
    # galaxies' Malmquist bias, which wiener_cal corrects, can make it worse than v = 0 there)
    assert summ["r"]["mean"] > 0.15 and all(s["r"] > 0 for s in res.splits["wiener"]), res.splits
    assert summ["slope"]["mean"] > 0 and all(math.isfinite(s["dchi2"]) for s in res.splits["wiener"])
    # the gridding is zoa reconstruct's: the whole catalogue gridded here = read_and_grid
    cat, _ = rc.read_table(ci, mock_csv)
    np.testing.assert_array_equal(catalogs.grid(cat, ci, position="observed"), rc.read_and_grid(ci, mock_csv)[0])
    # the same seed, the same numbers; the table and the JSON
    again = cv.crossval(ci, mock_csv, ["wiener"], n_splits=3, seed=7)
    assert again.splits == res.splits
    lines = res.table_lines()
    assert lines[1].split("|")[0].strip() == "method" and "Wiener filter" in lines[3]
    assert lines[-1].startswith("best on r: Wiener filter") and "level" not in lines[-1]
    doc = json.loads(json.dumps(res.to_dict(), allow_nan=False))
    assert doc["provenance"]["profile"] == "ci" and "git_commit" in doc["provenance"]
    assert doc["units"]["sigma_nl"] == "km/s" and doc["summary"]["wiener"]["r"]["mean"] == pytest.approx(
        summ["r"]["mean"]) and doc["paired_r_difference"] is None
    # the CLI: --output written atomically, the same scores
    out = tmp_path / "cv.json"
    assert main(["crossval", str(mock_csv), "--profile", "ci", "--methods", "wiener", "--splits", "3",
                 "--seed", "7", "--output", str(out), "--no-progress"]) == 0
    assert json.loads(out.read_text())["splits"] == doc["splits"]
    # the reader's options flow through (--h0, --frame, --groups of zoa reconstruct)
    assert main(["crossval", str(mock_csv), "--profile", "ci", "--methods", "wiener", "--splits", "3", "--seed", "7",
                 "--h0", "74.6", "--frame", "cmb", "--output", str(out), "--no-progress"]) == 0
    assert json.loads(out.read_text())["splits"] == doc["splits"]


def test_paired_difference_and_verdict():
    mk = lambda rs: [{"r": r, "slope": 1.0, "dchi2": 0.1, "n": 100} for r in rs]  # noqa: E731
    res = cv.CrossValResult(profile="ci", source="x.csv", methods=["vnet", "wiener_cal"], fraction=0.1, n_splits=3,
                            seed=0, sigma_nl=250.0, n_rows=10, n_kept=10, n_in_cube=10, n_scorable=10,
                            n_held_out=[100] * 3, disjoint=True,
                            splits={"vnet": mk([0.50, 0.42, 0.47]), "wiener_cal": mk([0.49, 0.45, 0.46])})
    d = res.paired_r_difference()
    assert d["per_split"] == pytest.approx([0.01, -0.03, 0.01])
    assert d["mean"] == pytest.approx(-0.01 / 3) and d["std"] == pytest.approx(np.std([0.01, -0.03, 0.01], ddof=1))
    assert d["level"] and res.best_on_r() == "wiener_cal"
    assert "V-Net is at least level with the calibrated Wiener filter" in res.table_lines()[-1]
    res.splits["vnet"] = mk([0.30, 0.31, 0.29])
    assert not res.paired_r_difference()["level"] and "is not at least level" in res.table_lines()[-1]


@pytest.mark.slow
def test_default_methods_on_the_shipped_cf4_rows_with_trained_ci(trained_ci, monkeypatch, capsys):
    """The default methods (vnet, wiener_cal, wiener_joint, wiener) through the command: table and verdict."""
    monkeypatch.setenv("ZOA_DATA", str(trained_ci.data_path.parent))
    assert main(["crossval", str(catalogs.CF4_SAMPLE), "--profile", "ci", "--splits", "3", "--json",
                 "--no-progress"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["methods"] == ["vnet", "wiener", "wiener_cal", "wiener_joint"] and doc["n_in_cube"] == 7961
    assert doc["info"]["wiener_joint"]["counts_model"]["n_mocks"] == trained_ci.mocks.n_train
    assert doc["n_held_out"] == [796] * 3 and doc["disjoint"]
    assert doc["info"]["vnet"]["phi_model"].endswith(".keras") and "calibration" in doc["info"]["wiener_cal"]
    d = doc["paired_r_difference"]
    assert (d["a"], d["b"]) == ("vnet", "wiener_cal") and len(d["per_split"]) == 3
    for m in doc["methods"]:
        # scored: the held-out galaxies still inside the cube once each split's zero point is applied
        assert all(math.isfinite(s["r"]) and 780 <= s["n"] <= 796 for s in doc["splits"][m])
    assert len(doc["zero_points"]) == 3
    assert main(["crossval", str(catalogs.CF4_SAMPLE), "--profile", "ci", "--splits", "3", "--no-progress"]) == 0
    last = capsys.readouterr().out.strip().splitlines()[-1]
    assert last.startswith("best on r: ") and "r(vnet) − r(wiener_cal) = " in last


# --------------------------------------------------------------------------- command errors
def test_cli_errors_exit_2_one_line(zoa_data, tmp_path, capsys):
    out = tmp_path / "cv.json"
    base = ["crossval", str(catalogs.CF4_SAMPLE), "--profile", "ci", "--methods", "wiener", "--output", str(out)]
    one_line_error(capsys, base + ["--fraction", "0.7"], ["fraction: must be in (0, 0.5]"])
    one_line_error(capsys, base + ["--splits", "1"], ["at least 2 random splits"])
    one_line_error(capsys, base + ["--methods", "kriging"], ["unknown method 'kriging'"])
    missing = tmp_path / "nope.csv"
    one_line_error(capsys, ["crossval", str(missing), "--profile", "ci", "--methods", "wiener", "--output", str(out)],
                   [f"{missing}: file not found"])
    # too few galaxies in the cube: 300 x 0.1 = 30 < 50 held out
    g = np.random.default_rng(2)
    small = tmp_path / "small.csv"
    small.write_text("SGX,SGY,SGZ,v_r,e_v\n" + "".join(f"{x:.3f},{y:.3f},{z:.3f},{v:.1f},150\n" for (x, y, z), v in
                                                      zip(g.uniform(-70, 70, (300, 3)), g.normal(0, 300, 300))))
    one_line_error(capsys, ["crossval", str(small), "--profile", "ci", "--methods", "wiener", "--output", str(out)],
                   ["300 galaxies inside the 160 Mpc/h cube", "fewer than 50"])
    # missing networks: Reconstructor's line naming zoa train
    one_line_error(capsys, ["crossval", str(catalogs.CF4_SAMPLE), "--profile", "ci", "--output", str(out)],
                   ["`zoa train --profile ci --target delta`"])
    assert not out.exists() and not list(tmp_path.glob(".tmp-*"))


# --------------------------------------------------------------------------- the joint Wiener filter
def test_thinned_counts_scale_nbar_and_its_radial_factor():
    from zoa_lib.methods import wiener_joint as wj

    n, L = 8, 160.0
    edges = np.arange(0.0, 140.0 + L / n, L / n)
    radial, angular = np.linspace(2.0, 0.5, len(edges) - 1), np.ones(12 * wj.NSIDE ** 2)
    nbar = wj.separable_nbar(n, L, edges, radial, angular)
    model = wj.CountsModel(nbar=nbar, bias=1.2, shot_noise=1.1, scatter=0.01, n_mocks=8, size=L,
                           separable={"edges": edges, "radial": radial, "angular": angular, "nside": wj.NSIDE,
                                      "subsample": wj.SUBSAMPLE})
    thin = cv.thinned_counts(model, 0.9)
    np.testing.assert_allclose(thin.nbar, 0.9 * nbar)
    assert (thin.bias, thin.shot_noise, thin.scatter, thin.n_mocks) == (1.2, 1.1, 0.01, 8)
    np.testing.assert_allclose(wj.CountsModel.from_dict(thin.to_dict()).nbar, 0.9 * nbar)  # its JSON agrees
    np.testing.assert_array_equal(model.nbar, nbar)  # the model given is left alone
    with pytest.raises(cv.CrossValError, match=r"share must be in \(0, 1\]"):
        cv.thinned_counts(model, 0.0)


def test_wiener_joint_is_a_default_method_and_learns_nothing_from_held_out_galaxies(ci, mock_csv, zoa_data,
                                                                                      monkeypatch):
    from test_reconstruct import synthetic_training_mocks

    from zoa_lib.analysis import evaluation

    assert "wiener_joint" in cv.DEFAULT_METHODS and cv.DEFAULT_METHODS[0] == "vnet"
    synthetic_training_mocks(ci)
    rc._COUNTS.clear()
    fits, seen = [], []
    real_fit, real_rec = calibration.counts_calibration, reconstruction.reconstruct
    monkeypatch.setattr(calibration, "counts_calibration", lambda p, *a, **k: fits.append(1) or real_fit(p, *a, **k))

    def spy(method, *a, **k):
        if method == "wiener_joint":
            seen.append(k["counts"])
        return real_rec(method, *a, **k)

    monkeypatch.setattr(reconstruction, "reconstruct", spy)
    methods = [m for m in cv.DEFAULT_METHODS if m != "vnet"]  # no trained networks here
    res = cv.crossval(ci, mock_csv, methods, n_splits=3, seed=7, zero_point=False)
    assert res.methods == ["wiener", "wiener_cal", "wiener_joint"] and len(fits) == 1 and len(seen) == 3
    # every split: the training mocks' n̄, thinned by the share of the cube's galaxies the split keeps
    share = 1.0 - res.n_held_out[0] / res.n_in_cube
    base = rc.counts_model(ci)
    assert len(fits) == 1 and res.info["wiener_joint"]["counts_model"]["nbar_scale"] == pytest.approx(share)
    for counts in seen:
        np.testing.assert_allclose(counts.nbar, share * base.nbar)
        assert counts.bias == base.bias and counts.shot_noise == base.shot_noise
    assert all(math.isfinite(s["r"]) and s["n"] == res.n_held_out[0] for s in res.splits["wiener_joint"])
    # summary, table and "best on r" include it
    assert set(res.summary()) == {"wiener_cal", "wiener_joint", "wiener"}
    lines = res.table_lines()
    assert any(line.startswith("joint Wiener filter (counts + velocities)") for line in lines)
    s = res.summary()
    best = max(res.methods, key=lambda m: s[m]["r"]["mean"])
    assert res.best_on_r() == best and lines[-1].startswith(f"best on r: {registry.SEARCH_LABELS[best]}")
    doc = res.to_dict()
    assert doc["labels"]["wiener_joint"] == registry.SEARCH_LABELS["wiener_joint"] and "wiener_joint" in doc["summary"]
