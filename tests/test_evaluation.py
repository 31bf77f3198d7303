"""``zoa evaluate`` on tiny synthetic predictions and shards (ci profile, 16³)."""
import json

import h5py
import numpy as np
import pytest

from zoa_lib.analysis import evaluation, report, verdict
from zoa_lib.config import load_profile
from zoa_lib.errors import ZoaError
from zoa_lib.methods import baselines, calibration, registry
from zoa_lib.methods.training import inference
from zoa_lib.survey import shards

N_EVAL = 2


#: ci test samples are 20..23 (16 train, 4 val); one observer per parent box makes them
#: four test boxes, enough for a bootstrap over boxes.
TEST_SAMPLES = np.arange(20, 24)


@pytest.fixture
def profile(zoa_data):
    return load_profile("ci", {"evaluation.n_eval": N_EVAL})


@pytest.fixture
def profile4(zoa_data):
    return load_profile("ci", {"evaluation.n_eval": 4, "simulation.observers_per_box": 1})


def _mocks(profile, n=N_EVAL):
    ms = [baselines.synthetic_mock(profile, i) for i in range(n)]
    return {k: np.stack([m[k] for m in ms]).astype(np.float32) for k in ms[0]}


def _write_predictions(profile, mocks, target, noise, seed, samples=None):
    path = inference.predictions_path(profile, target)
    path.parent.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    truth = mocks[target]
    pred = truth + noise * truth.std() * rng.standard_normal(truth.shape)
    with h5py.File(path, "w") as f:
        f["prediction"] = pred.astype(np.float32)
        f["truth"] = truth
        f["inputs"] = mocks["inputs"]
        f["velocity_true"] = mocks["velocity"]
        f["samples"] = TEST_SAMPLES[:len(truth)] if samples is None else np.asarray(samples, np.int64)
        f.attrs["target"] = target
    return path


def test_evaluate_writes_json_markdown_and_a_verdict_with_intervals(profile4):
    profile = profile4
    mocks = _mocks(profile, 4)
    _write_predictions(profile, mocks, "delta", noise=0.05, seed=1)  # a good δ network
    _write_predictions(profile, mocks, "phi", noise=3.0, seed=2)  # a bad φ network
    comp = evaluation.evaluate(profile, progress=False)
    out = evaluation.evaluation_dir(profile)
    for m in ("vnet_delta", "vnet_phi", "wiener", "potent"):  # no training shards: no wiener_cal
        res = json.loads((out / f"{m}.json").read_text())
        assert res["method"] == m and res["n_mocks"] == 4 and res["samples"] == [20, 21, 22, 23]
        assert res["boxes"] == [20, 21, 22, 23]
        for field in ("delta", "phi", "velocity"):
            assert set(res[field]["regions"]) == {"cube", "survey", "zoa", "outside_zoa"}
        assert len(res["phi"]["regions"]["zoa"]["pearson_r_per_mock"]) == 4
        assert len(res["phi"]["regions"]["survey"]["mse_demeaned_per_mock"]) == 4
        assert len(res["velocity"]["regions"]["zoa"]["vector"]["pearson_r_per_mock"]) == 4
        bf = res["velocity"]["bulk_flow"]
        assert len(bf["radii"]) == len(profile.evaluation.bulk_flow_radii)
        # the mocks' parent box lacks the longest modes: its ΛCDM band lies below the infinite one
        assert all(b < s for b, s in zip(bf["lcdm_box_sigma"], bf["lcdm_sigma"]))
    wf = json.loads((out / "wiener.json").read_text())["wiener"]
    assert all(wf["converged"]) and min(wf["iterations"]) > 0
    assert wf["sigma_nl"] is None and "not measured" in wf["sigma_nl_source"]  # no training shards
    pot = json.loads((out / "potent.json").read_text())["truth_smoothing"]
    assert pot["total"] == profile.evaluation.potent_smoothing and pot["extra"] > 0
    assert evaluation.load_comparison(profile) == json.loads((out / "comparison.json").read_text())
    md = (out / "comparison.md").read_text()
    for m in comp["methods"]:
        assert registry.LABELS[m] in md
    assert "| Pearson r(φ) pooled over mocks, zoa |" in md and "| MSE(δ), outside_zoa |" in md
    assert comp["n_boxes"] == 4 and comp["boxes"] == [20, 21, 22, 23]
    # the verdict follows the numbers: the good δ network beats every baseline, the bad φ one loses
    v = {r["key"]: r for r in comp["verdict"]}
    assert {"r_phi_survey", "r_phi_zoa", "mse_demeaned_phi_survey", "mse_demeaned_phi_zoa", "r_delta_survey",
            "r_delta_zoa", "r_vr_zoa", "r_v3d_survey", "rms_v_survey", "rms_v_zoa_from_delta"} <= set(v)
    for key in ("r_delta_survey", "r_delta_zoa"):
        r = v[key]
        assert r["winner"] == "vnet" and r["interval68"][0] > 0 and r["vnet_method"] == "vnet_delta"
        assert r["baseline"] == max(r["baselines"], key=r["baselines"].get)  # the best baseline
    for key in ("r_phi_survey", "mse_demeaned_phi_zoa"):
        r = v[key]
        assert r["winner"] == r["baseline"] != "vnet"
        assert r["interval68"][1] < 0 if r["better"] == "higher" else r["interval68"][0] > 0
    assert v["mse_demeaned_phi_zoa"]["baseline"] == min(v["mse_demeaned_phi_zoa"]["baselines"],
                                                        key=v["mse_demeaned_phi_zoa"]["baselines"].get)
    bf = v["bulk_flow_error_50"]  # shown, not counted
    assert bf["counts_for_goal"] is False and bf["vnet_method"] == "vnet_phi" and bf["better"] == "lower"
    i50 = profile.evaluation.bulk_flow_radii.index(50.0)
    phi_json = evaluation.load_method(profile, "vnet_phi")
    assert bf["vnet"] == pytest.approx(phi_json["velocity"]["bulk_flow"]["error_mean"][i50], rel=1e-6)
    for r in comp["verdict"]:
        lo, hi = r["interval68"]
        if r["field"] == "structures" and r["n_boxes"] < 2:  # one box holds such a structure: no interval
            assert lo is None and r["winner"] == "undetermined"
            continue
        assert lo <= r["difference"] <= hi
        # structure rows pair only the mocks that hold such a structure (NaN elsewhere)
        assert r["n_boxes"] == 4 if r["field"] != "structures" else 1 <= r["n_boxes"] <= 4
        if r["field"] != "structures":
            assert r["difference"] == pytest.approx(r["vnet"] - r["baseline_value"], rel=1e-6, abs=1e-9)
    # the structure statistic is in every method's JSON and in the verdict, not counted for the goal
    srows = [r for r in comp["verdict"] if r["field"] == "structures"]
    assert srows and not any(r["counts_for_goal"] for r in srows)
    assert {r["region"] for r in srows} <= {"zoa", "outside_zoa"}
    assert "cluster_zoa_fraction" in evaluation.load_method(profile, "wiener")["structures"]["per_mock"]
    assert comp["goal_met"] is False and comp["goal_summary"].startswith("The V-Net loses")
    assert "Goal NOT met" in md and md.index("## Verdict") < md.index("## All metrics")
    assert "wiener_cal" not in comp["methods"]  # no training shards
    row = next(r for r in comp["rows"] if r["key"] == "mse_phi_survey")
    assert row["best"] != "vnet_phi" and row["best_by"] == "mse_demeaned"
    row = next(r for r in comp["rows"] if r["key"] == "r_delta_survey")
    assert row["best"] == "vnet_delta" and row["values"]["vnet_delta"] > 0.99
    assert row["best_by"] == "pearson_r_mock_mean"


def test_one_parent_box_leaves_the_verdict_undetermined(profile):
    """ci: 8 observers per box, the test mocks share one parent box: no interval, no winner."""
    mocks = _mocks(profile)
    _write_predictions(profile, mocks, "delta", noise=0.05, seed=1)
    _write_predictions(profile, mocks, "phi", noise=0.05, seed=2)
    comp = evaluation.evaluate(profile, methods="vnet_delta,vnet_phi,wiener", progress=False)
    assert comp["n_boxes"] == 1 and comp["verdict"]
    for r in comp["verdict"]:
        assert r["winner"] == "undetermined" and r["interval68"] == [None, None] and r["n_boxes"] == 1
        assert r["difference"] is not None
    assert comp["goal_met"] is False and comp["goal_summary"].startswith("The V-Net: undetermined")
    assert "1 parent box" in comp["goal_summary"]
    md = report.comparison_markdown(comp)
    assert "undetermined" in md and "The V-Net: undetermined" in md
    g = report.verdict_glue(comp)
    assert g["v_r_phi_zoa_winner"] == "undetermined" and np.isnan(g["v_r_phi_zoa_lo"])
    assert g["goal_met_text"] == "cannot be judged on" and g["n_lost"] == 0 and g["n_boxes"] == 1
    assert g["v_r_phi_zoa_baseline"] == "Wiener filter" and g["v_r_phi_zoa_vnet"] > 0.9


def test_evaluation_mocks_spread_over_every_test_box(zoa_data):
    """n_eval mocks are taken round robin over the parent boxes, not the first n."""
    profile = load_profile("ci", {"evaluation.n_eval": 2, "simulation.observers_per_box": 2})
    mocks = _mocks(profile, 4)
    _write_predictions(profile, mocks, "delta", noise=0.1, seed=1)
    _write_predictions(profile, mocks, "phi", noise=0.1, seed=2)
    assert list(evaluation.parent_boxes(profile, TEST_SAMPLES)) == [10, 10, 11, 11]
    assert list(evaluation.evaluation_indices(profile)) == [0, 2]
    comp = evaluation.evaluate(profile, methods="vnet_delta,vnet_phi,wiener", progress=False)
    assert comp["samples"] == [20, 22] and comp["boxes"] == [10, 11]
    res = evaluation.load_method(profile, "vnet_phi")
    truth = evaluation.load_predictions(profile, "phi", indices=[0, 2])["truth"]
    assert np.allclose(truth[1], mocks["phi"][2])
    assert res["samples"] == [20, 22]


def test_select_spread_round_robin():
    boxes = [3, 3, 3, 3, 5, 5, 5, 5, 9, 9, 9, 9]
    assert list(evaluation.select_spread(boxes, 6)) == [0, 1, 4, 5, 8, 9]
    assert list(evaluation.select_spread(boxes, 4)) == [0, 1, 4, 8]
    assert list(evaluation.select_spread(boxes, 50)) == list(range(12))
    assert list(evaluation.select_spread([1, 1, 2], 2)) == [0, 2]
    with pytest.raises(ZoaError):
        evaluation.select_spread(boxes, 0)


def _method_json(per_region):
    """A method's JSON with only the per-mock arrays of the given paths: {path: values}."""
    out = {}
    for path, values in per_region.items():
        d = out
        for k in path[:-1]:
            d = d.setdefault(k, {})
        d[path[-1]] = list(values)
    return out


def test_verdict_compares_with_the_best_baseline_on_each_metric():
    """Hand-made tables: the plain filter is best on r(φ), the calibrated one on MSE(φ)."""
    rphi = ("phi", "regions", "survey", "pearson_r_per_mock")
    mphi = ("phi", "regions", "survey", "mse_demeaned_per_mock")
    rng = np.random.default_rng(3)
    jitter = lambda: 0.001 * rng.standard_normal(8)  # noqa: E731
    per = {
        "vnet_phi": _method_json({rphi: 0.90 + jitter(), mphi: 100 + jitter()}),
        "wiener": _method_json({rphi: 0.95 + jitter(), mphi: 140 + jitter()}),
        "wiener_cal": _method_json({rphi: 0.93 + jitter(), mphi: 80 + jitter()}),
        "potent": _method_json({rphi: 0.60 + jitter(), mphi: 900 + jitter()}),
    }
    boxes = np.repeat(np.arange(4), 2)
    rows = {r["key"]: r for r in verdict.verdict_rows(per, boxes, seed=1)}
    assert set(rows) == {"r_phi_survey", "mse_demeaned_phi_survey"}
    r = rows["r_phi_survey"]
    assert r["baseline"] == "wiener" and r["winner"] == "wiener"
    assert r["difference"] == pytest.approx(-0.05, abs=0.002) and r["interval68"][1] < 0
    m = rows["mse_demeaned_phi_survey"]
    assert m["baseline"] == "wiener_cal" and m["winner"] == "wiener_cal"  # not the plain filter the V-Net beats
    assert m["difference"] == pytest.approx(20, abs=0.01) and m["interval68"][0] > 0
    assert m["baselines"]["wiener"] == pytest.approx(140, abs=0.01)
    met, text = verdict.goal_summary(list(rows.values()))
    assert met is False and text.startswith("The V-Net loses to the best classical method on 2 of 2")
    # the same V-Net against the plain filter alone would have "won" the MSE row
    plain = {k: v for k, v in per.items() if k != "wiener_cal"}
    m2 = {r["key"]: r for r in verdict.verdict_rows(plain, boxes, seed=1)}["mse_demeaned_phi_survey"]
    assert m2["baseline"] == "wiener" and m2["winner"] == "vnet"
    # a tie: the V-Net ahead in two boxes, behind in two, by as much (mean difference 0)
    d = np.repeat([0.02, -0.01, 0.01, -0.02], 2)
    per_tie = {"vnet_phi": _method_json({rphi: 0.95 + d / 2}), "wiener": _method_json({rphi: 0.95 - d / 2})}
    rt = verdict.verdict_rows(per_tie, boxes, seed=1)[0]
    assert rt["interval68"][0] < 0 < rt["interval68"][1] and rt["winner"] == "tie"
    assert verdict.goal_summary([rt])[0] is True


def test_missing_predictions_names_the_predict_command(profile):
    with pytest.raises(ZoaError, match=r"zoa predict --profile ci --target delta --split test"):
        evaluation.evaluate(profile, methods="vnet_delta,wiener", progress=False)
    with pytest.raises(ZoaError, match="unknown method"):
        evaluation.evaluate(profile, methods="vnet,wiener", progress=False)


def test_predictions_with_wrong_shape_are_reported(profile):
    path = inference.predictions_path(profile, "phi")
    path.parent.mkdir(parents=True)
    with h5py.File(path, "w") as f:
        for k, shp in (("prediction", (1, 8, 8, 8)), ("truth", (1, 8, 8, 8)), ("inputs", (1, 8, 8, 8, 2)),
                       ("velocity_true", (1, 8, 8, 8, 3)), ("samples", (1,))):
            f[k] = np.zeros(shp, np.float32)
    with pytest.raises(ZoaError, match=r"phi-test.h5: dataset 'prediction' has shape"):
        evaluation.evaluate(profile, methods=["vnet_phi"], progress=False)


def test_baselines_only_from_shards_via_cli(profile, capsys):
    from zoa_lib.cli import main

    mocks = _mocks(profile)
    n, N = N_EVAL, profile.box.grid
    shard = shards.Shard(inputs=mocks["inputs"],
                       targets={"delta": mocks["delta"], "phi": mocks["phi"], "velocity": mocks["velocity"]},
                       catalog=np.zeros(0, shards.CATALOG_DTYPE), samples=np.arange(n), observers=np.zeros((n, 3)),
                       rotations=np.tile(np.eye(3, dtype=np.int8), (n, 1, 1)), box_index=np.zeros(n, np.int64),
                       attrs={"box_size": profile.box.size, "grid": N})
    folder = shards.mocks_dir(profile)
    rows = {}
    for i, split in enumerate(("train", "test")):  # the same mocks serve as training mocks here
        name = shards.shard_name(i)
        rows[name] = {"split": split, "start": i * n, "stop": (i + 1) * n, "n": n,
                      "sha256": shards.write_shard(folder / name, shard)}
    shards.write_manifest(folder, {"shards": rows})
    rc = main(["evaluate", "--profile", "ci", "-p", f"evaluation.n_eval={N_EVAL}", "--methods",
               "wiener,potent,wiener_cal", "--no-progress"])
    assert rc == 0
    out = capsys.readouterr().out
    assert "Wiener filter" in out and "POTENT" in out and "V-Net" not in out
    comp = evaluation.load_comparison(profile)
    assert comp["methods"] == ["wiener", "wiener_cal", "potent"] and comp["verdict"] == []
    assert comp["goal_met"] is False and comp["goal_summary"].startswith("No verdict")
    r_phi = next(r for r in comp["rows"] if r["key"] == "r_phi_survey")["values"]
    assert r_phi["wiener"] > 0.5  # the filter finds the potential of a linear mock
    cal = evaluation.load_method(profile, "wiener_cal")["calibration"]
    assert cal["n_mocks"] == n and len(cal["bias"]) == len(cal["edges"]) - 1
    # synthetic mocks have unbiased noise: the measured bias is noise-sized and the two
    # filters agree closely
    assert abs(r_phi["wiener_cal"] - r_phi["wiener"]) < 0.1


def test_calibration_needs_training_shards(profile):
    with pytest.raises(ZoaError, match="no training shards"):
        calibration.calibration(profile)


def test_potent_truth_is_smoothed_to_potents_scale(zoa_data):
    """Targets at σ_s smoothed further to POTENT's σ_P equal the field smoothed at σ_P (away
    from the cube's faces, where the cube is mirrored instead of wrapped)."""
    from zoa_lib.universe import fields

    prof = load_profile("ci", {"box.smoothing": 6.0, "evaluation.potent_smoothing": 12.0, "box.grid": 32})
    n, L = prof.box.grid, prof.box.size
    assert evaluation.potent_smoothing_extra(prof) == pytest.approx(np.sqrt(12.0 ** 2 - 6.0 ** 2))
    rng = np.random.default_rng(4)
    white = rng.standard_normal((n, n, n))
    targets = fields.gaussian_smooth(white, L, 6.0)[None]
    want = fields.gaussian_smooth(white, L, 12.0)
    v = np.stack([targets] * 3, axis=-1)
    got = evaluation.potent_truth({"delta": targets, "velocity": v, "phi": None}, prof)
    inner = (slice(10, 22),) * 3  # 10 voxels = 50 Mpc/h ≥ 4σ_extra from every face
    np.testing.assert_allclose(got["delta"][0][inner], want[inner], atol=0.02 * want.std())
    np.testing.assert_allclose(got["velocity"][0, ..., 1], got["delta"][0], atol=1e-6)
    assert got["phi"] is None
    assert got["delta"].std() < 0.6 * targets.std()  # it does smooth
    same = load_profile("ci", {"box.smoothing": 15.0, "evaluation.potent_smoothing": 15.0})
    assert evaluation.potent_smoothing_extra(same) == 0.0
    assert evaluation.potent_truth({"delta": targets}, same)["delta"] is targets


def test_comparison_rows_pick_the_best_by_hand(zoa_data):
    """comparison() on two hand-written method tables: pooled r(δ) is judged by the per-mock
    mean (the V-Net's 0.7 beats the filter's 0.6 although its pooled 0.80 < 0.85), the slope
    by its distance to 1, MSE by the lowest, and each bulk-flow radius separately."""
    prof = load_profile("ci")

    def method(r, r_mock, mse, slope, bulk):
        return {"delta": {"regions": {"survey": {"pearson_r": r, "pearson_r_mock_mean": r_mock, "mse": mse,
                                                 "slope": slope}}},
                "velocity": {"bulk_flow": {"radii": [25.0, 50.0], "error_mean": bulk}},
                "n_mocks": 2, "boxes": [0, 1], "samples": [20, 21]}

    per = {"vnet_delta": method(0.80, 0.70, 0.30, 0.9, [10.0, 20.0]),
           "wiener": method(0.85, 0.60, 0.20, 1.2, [15.0, 5.0])}
    rows = {r["key"]: r for r in verdict.comparison(per, prof)["rows"]}
    assert rows["r_delta_survey"]["values"] == {"vnet_delta": 0.80, "wiener": 0.85}
    assert rows["r_delta_survey"]["best"] == "vnet_delta"
    assert rows["r_delta_survey"]["best_by"] == "pearson_r_mock_mean"
    assert rows["r_mock_delta_survey"]["best"] == "vnet_delta"
    assert rows["mse_delta_survey"]["best"] == "wiener"
    assert rows["slope_delta_survey"]["best"] == "vnet_delta"  # |0.9 − 1| < |1.2 − 1|
    assert rows["bulk_flow_error_25"]["best"] == "vnet_delta" and rows["bulk_flow_error_50"]["best"] == "wiener"
    assert rows["bulk_flow_error_50"]["values"] == {"vnet_delta": 20.0, "wiener": 5.0}
    assert "r_phi_survey" not in rows  # no method has φ


def test_bulk_flow_error_per_mock_is_the_norm_of_the_difference():
    """The verdict's bulk-flow row: ‖B_pred − B_true‖ of each mock at one radius, by hand."""
    bf = {"radii": [25.0, 50.0],
          "pred": [[[3.0, 4.0, 0.0], [0.0, 0.0, 0.0]], [[1.0, 2.0, 2.0], [0.0, 0.0, 0.0]]],
          "true": [[[0.0, 0.0, 0.0], [1.0, 1.0, 1.0]], [[0.0, 0.0, 0.0], [0.0, 0.0, 0.0]]]}
    doc = {"velocity": {"bulk_flow": bf}}
    assert verdict._path_values(doc, ("velocity", "bulk_flow", ("per_mock_error", 0))) == [5.0, 3.0]
    assert verdict._path_values(doc, ("velocity", "bulk_flow", ("per_mock_error", 1))) == pytest.approx(
        [np.sqrt(3.0), 0.0])
    assert verdict._path_values({}, ("velocity", "bulk_flow", ("per_mock_error", 0))) is None
