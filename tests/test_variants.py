"""The φ-network variants table (zoa variants, chapter 03): scores, a collapsed network, text."""
import numpy as np
import pytest

from zoa_lib.analysis import variants
from zoa_lib.methods.training import fitting, model_files
from zoa_lib.survey import mock_set


def test_scores_flag_a_constant_prediction_and_match_numpy():
    rng = np.random.default_rng(0)
    truth = rng.normal(size=(3, 4, 4, 4))
    good = truth + 0.5 * rng.normal(size=truth.shape) + 7.0  # an offset is not an error of φ
    regions = {"all": np.ones((4, 4, 4), bool)}
    s = variants._scores(good, truth, regions)["all"]
    want = np.mean([np.corrcoef(g.ravel(), t.ravel())[0, 1] for g, t in zip(good, truth)])
    assert s["r"] == pytest.approx(want) and s["n_constant"] == 0
    d = (good - good.mean(axis=(1, 2, 3), keepdims=True)) - (truth - truth.mean(axis=(1, 2, 3), keepdims=True))
    assert s["mse"] == pytest.approx(np.mean(d ** 2))
    flat = variants._scores(np.full_like(truth, 3.0), truth, regions)["all"]
    assert flat["r"] is None and flat["n_constant"] == 3


def _result():
    def sc(r, mse):
        return {"survey": {"r": r, "r_err": 0.01 if r is not None else None, "n_constant": 0 if r else 8, "mse": mse},
                "zoa": {"r": r, "r_err": 0.01 if r is not None else None, "n_constant": 0 if r else 8, "mse": mse}}
    rows = [("paper", None, 0.4), ("zero_mean", 0.45, 0.3), ("zero_mean_prelu", 0.76, 0.2),
            ("zero_mean_elu", 0.77, 0.15), ("wiener_corrector", 0.95, 0.03)]
    return {"epochs": 6, "variants": [{"variant": n, "description": n, "scores": sc(r, m)} for n, r, m in rows],
            "baseline": {"name": variants.BASELINE, "scores": sc(0.91, 0.06)}}


def test_table_and_text_say_which_variant_collapsed_and_compare_with_the_filter():
    res = _result()
    rows = {r["variant"]: r for r in variants.variants_table(res)}
    assert "constant" in rows["paper"]["r(φ), survey sphere"]
    assert rows["wiener_corrector"]["MSE / WF MSE, survey sphere"] == "0.50"
    assert rows[variants.BASELINE]["MSE / WF MSE, survey sphere"] == "1.00"
    text = variants.summary_text(res)
    assert "a constant" in text and "r(φ) = 0.95" in text and "0.77" in text and "0.91" in text


def test_mock_study_trains_each_share_at_the_same_time_and_scores_it(zoa_data):
    """Real training at the ci profile: the study's plan keeps mocks × epochs fixed, each run
    trains on the first whole shards, and the table scores φ and the δ its φ implies."""
    from zoa_lib.config import load_profile
    from zoa_lib.methods.training.pipeline import split_shards

    prof = load_profile("ci")
    mock_set.generate(prof, progress=False)
    n = split_shards(prof, "train").n
    shard = prof.mocks.shard_size
    plan = variants.mock_study_plan(prof, 2, fractions=(0.5, 1.0))
    assert plan == [(n // 2, 4), (n, 2)] and n // 2 % shard == 0
    assert all(m * e == 2 * n for m, e in plan)
    # fixed book time: making a mock costs 2 s, fitting it once 1 s; half the mocks buy 6 epochs
    assert variants.mock_study_plan(prof, 2, (0.5, 1.0), mock_seconds=2.0, epoch_seconds=1.0) == [
        (n // 2, 6), (n, 2)]
    # the budget of half the split for 2 epochs: the whole split gets 1 epoch
    assert variants.mock_study_plan(prof, 2, (0.5, 1.0), budget_mocks=n // 2) == [(n // 2, 2), (n, 1)]
    with pytest.raises(variants.VariantsError, match="whole number"):
        variants.first_shards(split_shards(prof, "train"), shard + 1)
    res = variants.run_mock_study(prof, 2, fractions=(0.5, 1.0), log=lambda *a: None)
    assert [r["n_mocks"] for r in res["runs"]] == [n // 2, n]
    assert [r["epochs"] for r in res["runs"]] == [4, 2]
    assert [len(r["loss"]) for r in res["runs"]] == [4, 2]
    for r in res["runs"]:
        assert np.isfinite(r["val_mse"]) and -1 <= r["scores_delta"]["survey"]["r"] <= 1
    assert variants.load_mock_study(prof) == res
    rows = variants.mock_study_table(res)
    assert [row["training mocks"] for row in rows] == [n // 2, n, "— (no training)"]
    assert "mocks fitted" in variants.mock_study_summary(res)
    # the full split's run of `zoa variants` is reused, not trained again
    again = variants.run_mock_study(prof, 2, fractions=(1.0,), reuse=res["runs"][-1], log=lambda *a: None)
    assert again["runs"][0]["train_seconds"] == res["runs"][-1]["train_seconds"]


def test_a_variant_that_is_a_trained_network_is_read_from_its_training(zoa_data):
    """Real training at the ci profile: the φ network's training keeps its model after
    ``book.variant_epochs`` epochs, and the variant of the same set-up scores that copy
    instead of training again. The copy is the epoch's model: its validation MSE, computed
    by the variant's own scoring, is the validation loss Keras logged after that epoch."""
    import csv

    from zoa_lib.config import load_profile
    from zoa_lib.methods.training.model_files import read_model_metadata, snapshot_epochs, snapshot_name

    prof = load_profile("ci")
    e = prof.book.variant_epochs
    assert snapshot_epochs(prof) == (e,) and 0 < e < prof.training.epochs
    mock_set.generate(prof, progress=False)
    fitting.train(prof, "phi", progress=False)
    folder = model_files.model_dir(prof, "phi")
    assert sorted(p.name for p in folder.glob("epoch-*.keras")) == [snapshot_name(e)]
    assert read_model_metadata(folder / snapshot_name(e))["meta"]["epochs_done"] == e
    with open(folder / "history.csv", newline="") as f:
        history = list(csv.DictReader(f))
    row = variants.run_variant(prof, "wiener_corrector", e, log=lambda *a: None)
    assert "vnet" in row["source"] and snapshot_name(e) in row["source"]
    assert row["loss"] == pytest.approx([float(h["loss"]) for h in history[:e]])
    assert row["val_mse"] == pytest.approx(float(history[e - 1]["val_loss"]), rel=1e-4)
    assert row["val_mse"] != pytest.approx(float(history[-1]["val_loss"]), rel=1e-4)
    # a set-up that no network of the profile trains is trained here
    other = variants.run_variant(prof, "zero_mean", e, log=lambda *a: None)
    assert other["source"] == "trained here" and len(other["loss"]) == e
    # training afresh drops the old copies with the rest of the old run
    (folder / snapshot_name(e + 1)).write_bytes(b"stale")
    fitting.train(prof, "phi", progress=False)
    assert sorted(p.name for p in folder.glob("epoch-*.keras")) == [snapshot_name(e)]
