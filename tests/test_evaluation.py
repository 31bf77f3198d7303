"""``zoa evaluate`` on tiny synthetic predictions and shards (ci profile, 16³)."""
import json

import h5py
import numpy as np
import pytest

from zoa_lib import baselines, data, evaluation
from zoa_lib.config import load_profile
from zoa_lib.errors import ZoaError

N_EVAL = 2


@pytest.fixture
def profile(zoa_data):
    return load_profile("ci", {"evaluation.n_eval": N_EVAL})


def _mocks(profile, n=N_EVAL):
    ms = [baselines.synthetic_mock(profile, i) for i in range(n)]
    return {k: np.stack([m[k] for m in ms]).astype(np.float32) for k in ms[0]}


def _write_predictions(profile, mocks, target, noise, seed):
    path = evaluation.predictions_path(profile, target)
    path.parent.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    truth = mocks[target]
    pred = truth + noise * truth.std() * rng.standard_normal(truth.shape)
    with h5py.File(path, "w") as f:
        f["prediction"] = pred.astype(np.float32)
        f["truth"] = truth
        f["inputs"] = mocks["inputs"]
        f["velocity_true"] = mocks["velocity"]
        f["samples"] = np.arange(len(truth), dtype=np.int64) + 100
        f.attrs["target"] = target
    return path


def test_evaluate_writes_json_and_markdown_with_every_method(profile):
    mocks = _mocks(profile)
    _write_predictions(profile, mocks, "delta", noise=0.05, seed=1)  # a good δ network
    _write_predictions(profile, mocks, "phi", noise=3.0, seed=2)  # a bad φ network
    comp = evaluation.evaluate(profile, progress=False)
    out = evaluation.evaluation_dir(profile)
    for m in ("vnet_delta", "vnet_phi", "wiener", "potent"):  # no training shards: no wiener_cal
        res = json.loads((out / f"{m}.json").read_text())
        assert res["method"] == m and res["n_mocks"] == N_EVAL and res["samples"] == [100, 101]
        for field in ("delta", "phi", "velocity"):
            assert set(res[field]["regions"]) == {"cube", "survey", "zoa", "outside_zoa"}
        assert len(res["velocity"]["bulk_flow"]["radii"]) == len(profile.evaluation.bulk_flow_radii)
    wf = json.loads((out / "wiener.json").read_text())["wiener"]
    assert all(wf["converged"]) and min(wf["iterations"]) > 0
    assert evaluation.load_comparison(profile) == json.loads((out / "comparison.json").read_text())
    md = (out / "comparison.md").read_text()
    for m in comp["methods"]:
        assert evaluation.LABELS[m] in md
    assert "| Pearson r(φ), zoa |" in md and "| MSE(δ), outside_zoa |" in md
    # the verdicts follow the numbers: the good δ network beats the filter, the bad φ one does not
    goal = {(g["field"], g["region"], g["statistic"], g["baseline"]): g for g in comp["goal"]}
    assert goal[("delta", "zoa", "mse", "wiener")]["vnet_better"] is True
    assert goal[("phi", "zoa", "mse", "wiener")]["vnet_better"] is False
    assert goal[("phi", "outside_zoa", "mse_demeaned", "wiener")]["vnet_better"] is False
    assert "**NO: Wiener filter is better**" in md and "Goal NOT met" in md
    assert comp["goal_met"] is False and "wiener_cal" not in comp["methods"]  # no training shards
    row = next(r for r in comp["rows"] if r["key"] == "mse_phi_survey")
    assert row["best"] != "vnet_phi"
    row = next(r for r in comp["rows"] if r["key"] == "r_delta_survey")
    assert row["best"] == "vnet_delta" and row["values"]["vnet_delta"] > 0.99


def test_missing_predictions_names_the_predict_command(profile):
    with pytest.raises(ZoaError, match=r"zoa predict --profile ci --target delta --split test"):
        evaluation.evaluate(profile, methods="vnet_delta,wiener", progress=False)
    with pytest.raises(ZoaError, match="unknown method"):
        evaluation.evaluate(profile, methods="vnet,wiener", progress=False)


def test_predictions_with_wrong_shape_are_reported(profile):
    path = evaluation.predictions_path(profile, "phi")
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
    shard = data.Shard(inputs=mocks["inputs"],
                       targets={"delta": mocks["delta"], "phi": mocks["phi"], "velocity": mocks["velocity"]},
                       catalog=np.zeros(0, data.CATALOG_DTYPE), samples=np.arange(n), observers=np.zeros((n, 3)),
                       rotations=np.tile(np.eye(3, dtype=np.int8), (n, 1, 1)), box_index=np.zeros(n, np.int64),
                       attrs={"box_size": profile.box.size, "grid": N})
    folder = data.mocks_dir(profile)
    rows = {}
    for i, split in enumerate(("train", "test")):  # the same mocks serve as training mocks here
        name = data.shard_name(i)
        rows[name] = {"split": split, "start": i * n, "stop": (i + 1) * n, "n": n,
                      "sha256": data.write_shard(folder / name, shard)}
    data.write_manifest(folder, {"shards": rows})
    rc = main(["evaluate", "--profile", "ci", "-p", f"evaluation.n_eval={N_EVAL}", "--methods",
               "wiener,potent,wiener_cal", "--no-progress"])
    assert rc == 0
    out = capsys.readouterr().out
    assert "Wiener filter" in out and "POTENT" in out and "V-Net" not in out
    comp = evaluation.load_comparison(profile)
    assert comp["methods"] == ["wiener", "wiener_cal", "potent"] and comp["goal"] == []
    r_phi = next(r for r in comp["rows"] if r["key"] == "r_phi_survey")["values"]
    assert r_phi["wiener"] > 0.5  # the filter finds the potential of a linear mock
    cal = evaluation.load_method(profile, "wiener_cal")["calibration"]
    assert cal["n_mocks"] == n and len(cal["bias"]) == len(cal["edges"]) - 1
    # synthetic mocks have unbiased noise: the measured bias is noise-sized and the two
    # filters agree closely
    assert abs(r_phi["wiener_cal"] - r_phi["wiener"]) < 0.1


def test_calibration_needs_training_shards(profile):
    with pytest.raises(ZoaError, match="no training shards"):
        evaluation.calibration(profile)
