"""The landing page's scorecard (zoa_lib.book.scorecard) on hand-made run files in a tmp folder."""
from __future__ import annotations

import json
import math
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from zoa_lib.analysis import ga_search, literature
from zoa_lib.book import scorecard as sc

REPO = Path(__file__).resolve().parent.parent


# --------------------------------------------------------------------------- hand-made run files
def method_json(r_phi, r_delta, bulk50=None, r_phi_zoa=None, r_delta_zoa=None, pred_std=1.0):
    def reg(r):
        return {"pearson_r": r, "pearson_r_mock_mean": r, "pearson_r_mock_std": 0.01, "mse": 1.0 - r,
                "pred_std": pred_std, "truth_std": 1.0}

    doc = {"phi": {"regions": {"survey": reg(r_phi), "zoa": reg(r_phi if r_phi_zoa is None else r_phi_zoa)}},
           "delta": {"regions": {"survey": reg(r_delta), "zoa": reg(r_delta if r_delta_zoa is None else r_delta_zoa)}}}
    if bulk50 is not None:
        doc["velocity"] = {"bulk_flow": {"radii": [25.0, 50.0, 75.0], "error_mean": [2 * bulk50, bulk50, bulk50 / 2]}}
    return doc


def write_run(root: Path, methods: dict, histories: dict | None = None, comparison: dict | None = None,
              attractor: dict | None = None) -> Path:
    ev = root / "evaluation"
    ev.mkdir(parents=True, exist_ok=True)
    for m, doc in methods.items():
        (ev / f"{m}.json").write_text(json.dumps(doc))
    if comparison is not None:
        (ev / "comparison.json").write_text(json.dumps(comparison))
    for target, val_loss in (histories or {}).items():
        d = root / "models" / target
        d.mkdir(parents=True, exist_ok=True)
        ep = np.arange(len(val_loss))
        pd.DataFrame({"epoch": ep, "learning_rate": 1e-5, "loss": np.asarray(val_loss) * 0.9,
                      "val_loss": val_loss}).to_csv(d / "history.csv", index=False)
    if attractor is not None:
        (root / "local_universe").mkdir(parents=True, exist_ok=True)
        (root / "local_universe" / "great-attractor.json").write_text(json.dumps(attractor))
    return root


FALLING = [1.0, 0.7, 0.5, 0.42, 0.40]
FLAT = [1.0, 0.99, 1.01, 0.98, 0.985]


def ga_stats(l, b, cz, frac, offset, n=10):
    return {"n": n, "n_found": round(frac * n), "fraction_found": frac, "l_mean": l, "l_std": 2.0, "b_mean": b,
            "b_std": 1.5, "cz_mean": cz, "cz_std": 300.0, "offset_mean": offset, "offset_std": 1.0, "results": []}


def attractor_doc(vnet_offset, cal_offset, vnet_frac=0.9, cal_frac=0.8):
    return {"labels": {"vnet": "V-Net", "wiener_cal": "Wiener filter (calibrated)"},
            "methods": {"vnet": {"density": ga_stats(309.0, 28.0, 4900.0, vnet_frac, vnet_offset)},
                        "wiener_cal": {"density": ga_stats(312.0, 25.0, 4500.0, cal_frac, cal_offset)}},
            "truth": {"density": {"l": 308.0, "b": 29.5, "cz": 4950.0, "sg": [-30.0, 20.0, -5.0], "found": True}}}


def row(card, key):
    return next(r for r in card["rows"] if r["key"] == key)


# --------------------------------------------------------------------------- learning alarm
def test_learning_alarm_flags_a_flat_history_and_not_a_falling_one(tmp_path):
    assert sc.learning_alarm({"val_loss": FALLING}) is None
    flat = sc.learning_alarm({"val_loss": FLAT}, "the δ V-Net")
    assert flat is not None and flat.startswith("the δ V-Net did not learn")
    assert "98%" in flat and "first epoch" in flat  # best 0.98 of the first 1.0
    # the bar is 95 %: 0.96 of the first flags, 0.94 does not
    assert sc.learning_alarm({"val_loss": [1.0, 0.96]}) is not None
    assert sc.learning_alarm({"val_loss": [1.0, 0.94]}) is None
    # a loss that rises after the first epoch did not learn either
    assert sc.learning_alarm({"val_loss": [0.5, 0.8, 1.2]}) is not None
    # non-finite, a single epoch, an empty history: alarms, never silence
    assert "nan" in sc.learning_alarm({"val_loss": [1.0, float("nan")]}).lower()
    assert "one epoch" in sc.learning_alarm({"val_loss": [1.0]})
    assert sc.learning_alarm({"val_loss": []}) is not None
    # from the CSV the training writes (epoch, learning_rate, loss, val_loss)
    write_run(tmp_path, {}, {"phi": FLAT, "delta": FALLING})
    assert sc.learning_alarm(tmp_path / "models/phi/history.csv") is not None
    assert sc.learning_alarm(tmp_path / "models/delta/history.csv") is None
    # no val_loss column: the training loss is judged, and the alarm says so
    assert "training loss" in sc.learning_alarm({"loss": FLAT})


def test_collapse_alarm():
    assert sc.collapse_alarm({"pred_std": 0.05, "truth_std": 1.0}, "the φ V-Net").startswith(
        "the φ V-Net predicts almost a constant")
    assert sc.collapse_alarm({"pred_std": 0.5, "truth_std": 1.0}) is None
    assert sc.collapse_alarm(None) is None and sc.collapse_alarm({}) is None


# --------------------------------------------------------------------------- scorecard
def test_one_block_per_network_and_the_papers_number_beside_the_papers_set_up(tmp_path):
    corrector = {"network": {"name": "vnet", "reads": "corrector of the calibrated Wiener filter: N_gal, V_pec, φ_WF, δ_WF"}}
    paper = {"network": {"name": "vnet_paper", "reads": "the paper's set-up: N_gal, V_pec"}}
    methods = {"vnet_phi": {**method_json(0.95, 0.70, 80.0), **corrector},
               "vnet_delta": {**method_json(0.80, 0.75), **corrector},
               "vnet_paper_phi": {**method_json(0.60, 0.40, 200.0), **paper},
               "vnet_paper_delta": {**method_json(0.50, 0.45), **paper},
               "wiener_cal": method_json(0.92, 0.64, 100.0), "wiener_joint": method_json(0.90, 0.70, 110.0),
               "potent": {**method_json(0.99, 0.99, 10.0), "truth_smoothing": {"extra": 8.0}}}
    card = sc.scorecard(write_run(tmp_path / "both", methods, {"phi": FALLING, "delta": FALLING}), "laptop")
    keys = [r["key"] for r in card["rows"]]
    assert {"r_phi_survey", "r_delta_zoa", "r_phi_survey_vnet_paper", "r_delta_zoa_vnet_paper"} <= set(keys)
    assert row(card, "r_phi_survey")["paper"] == "not quoted"            # the corrector is not the paper's set-up
    assert row(card, "r_phi_survey_vnet_paper")["paper"] == "0.98"
    assert "test parent boxes, the" not in sc.scorecard_markdown(card)  # no comparison file: no count
    comp = {"n_mocks": 96, "n_boxes": 12, "verdict": []}
    card2 = sc.scorecard(write_run(tmp_path / "boxes", methods, comparison=comp), "laptop")
    assert "The held-out mocks: 96 from 12 test parent boxes" in sc.scorecard_markdown(card2)
    assert "corrector" in row(card, "r_phi_survey")["quantity"]
    assert "paper set-up" in row(card, "r_phi_survey_vnet_paper")["quantity"]
    # POTENT, scored against a smoother truth, is never the best classical method
    assert all(r["classical_method"] != "potent" for r in card["rows"])
    assert row(card, "r_delta_survey")["classical_method"] == "wiener_joint"  # the joint filter reads the counts
    assert row(card, "r_phi_survey_vnet_paper")["winner"] == "wiener_cal"
    assert any(a.startswith("the φ V-Net (paper set-up) is worse than the calibrated Wiener filter")
               for a in card["alarms"]), card["alarms"]
    assert not any(a.startswith("the φ V-Net is worse") for a in card["alarms"])


def test_losing_network_raises_an_alarm_and_winning_one_does_not(tmp_path):
    classical = {"wiener": method_json(0.90, 0.60, 120.0), "wiener_cal": method_json(0.92, 0.64, 100.0),
                 "potent": method_json(0.70, 0.40, 200.0)}
    lose = write_run(tmp_path / "lose", {"vnet_phi": method_json(0.85, 0.50, 150.0),
                                         "vnet_delta": method_json(0.80, 0.55), **classical},
                     {"phi": FALLING, "delta": FALLING})
    card = sc.scorecard(lose, "ci")
    r = row(card, "r_phi_survey")
    # a file that does not say what the network reads is not set beside the paper's number
    assert r["paper"] == "not quoted" and r["vnet_value"] == pytest.approx(0.85)
    assert r["classical_method"] == "wiener_cal" and r["classical_value"] == pytest.approx(0.92)
    assert r["winner"] == "wiener_cal" and "point estimates" in r["verdict"]
    assert "0.850 ± 0.010" in r["vnet"] and "calibrated Wiener filter" in r["classical"]
    alarms = card["alarms"]
    assert any(a.startswith("the φ V-Net is worse than the calibrated Wiener filter: r(φ) = 0.850 vs 0.920")
               for a in alarms), alarms
    assert any(a.startswith("the δ V-Net is worse than the calibrated Wiener filter: r(δ) = 0.550 vs 0.640")
               for a in alarms), alarms
    bulk = row(card, "bulk_flow_error_50")  # lower is better; R nearest 50 Mpc/h
    assert bulk["vnet_value"] == 150.0 and bulk["classical_value"] == 100.0 and bulk["winner"] == "wiener_cal"
    md = sc.scorecard_markdown(card)
    assert md.startswith("## This run at a glance")
    assert "**⚠ The φ V-Net is worse than the calibrated Wiener filter: r(φ) = 0.850 vs 0.920" in md
    # alarms come before the table
    assert md.index("⚠") < md.index("| quantity | paper |")

    win = write_run(tmp_path / "win", {"vnet_phi": method_json(0.95, 0.70, 80.0),
                                       "vnet_delta": method_json(0.80, 0.70), **classical},
                    {"phi": FALLING, "delta": FALLING})
    card = sc.scorecard(win, "ci")
    assert card["alarms"] == []
    assert row(card, "r_phi_survey")["winner"] == "vnet"
    assert row(card, "r_phi_survey")["verdict"].startswith("V-Net better")
    md = sc.scorecard_markdown(card)
    assert "⚠" not in md and "No alarm" in md


def test_flat_validation_loss_raises_an_alarm_in_the_scorecard(tmp_path):
    root = write_run(tmp_path, {"vnet_phi": method_json(0.95, 0.7), "vnet_delta": method_json(0.8, 0.7),
                                "wiener_cal": method_json(0.9, 0.6)}, {"phi": FALLING, "delta": FLAT})
    alarms = sc.scorecard(root)["alarms"]
    assert len(alarms) == 1 and alarms[0].startswith("the δ V-Net did not learn")
    root = write_run(tmp_path / "c", {"vnet_phi": method_json(0.95, 0.7, pred_std=0.01),
                                      "wiener_cal": method_json(0.9, 0.6)}, {"phi": FALLING, "delta": FALLING})
    assert any(a.startswith("the φ V-Net predicts almost a constant") for a in sc.scorecard(root)["alarms"])


def test_comparison_verdict_is_used_when_present(tmp_path):
    methods = {"vnet_phi": method_json(0.91, 0.5), "vnet_delta": method_json(0.8, 0.5),
               "wiener_cal": method_json(0.92, 0.6), "potent": method_json(0.7, 0.4)}
    # entries as zoa_lib.analysis.verdict.verdict_rows writes them
    verdict = [
        # a tie: the point estimate is lower but the interval includes zero -> no alarm
        {"key": "r_phi_survey", "field": "phi", "region": "survey", "metric": "Pearson r(φ) per mock, survey",
         "better": "higher", "vnet_method": "vnet_phi", "vnet": 0.91, "baseline": "wiener_cal",
         "baseline_value": 0.92, "difference": -0.01, "interval68": [-0.03, 0.01], "winner": "tie"},
        # a loss with an interval that excludes zero -> alarm quoting the interval
        {"key": "r_delta_survey", "field": "delta", "region": "survey", "metric": "Pearson r(δ) per mock, survey",
         "better": "higher", "vnet_method": "vnet_delta", "vnet": 0.5, "baseline": "wiener_cal",
         "baseline_value": 0.6, "difference": -0.1, "interval68": [-0.12, -0.08], "winner": "wiener_cal"},
    ]
    root = write_run(tmp_path, methods, {"phi": FALLING, "delta": FALLING}, comparison={"verdict": verdict})
    card = sc.scorecard(root)
    phi = row(card, "r_phi_survey")
    assert phi["winner"] == "tie" and phi["verdict"].startswith("no significant difference")
    assert "68 % interval [-0.030, +0.010]" in phi["verdict"] and "bootstrap" in phi["verdict"]
    assert not any("φ V-Net is worse" in a and "survey sphere" in a for a in card["alarms"])
    d = [a for a in card["alarms"] if a.startswith("the δ V-Net is worse than the calibrated Wiener filter")
         and "survey sphere" in a]
    assert len(d) == 1 and "68 % interval [-0.120, -0.080]" in d[0] and "parent boxes" in d[0]
    # an undetermined verdict (one parent box: NaN interval) names no winner, but a V-Net behind
    # on the point estimate is still said
    verdict[1].update(winner="undetermined", interval68=[float("nan"), float("nan")])
    (root / "evaluation" / "comparison.json").write_text(json.dumps({"verdict": verdict}))
    card = sc.scorecard(root)
    d = row(card, "r_delta_survey")
    assert d["winner"] == "undetermined" and d["verdict"].startswith("undetermined") and "nan" not in d["verdict"]
    assert any(a.startswith("the δ V-Net is behind the calibrated Wiener filter on the point estimate")
               and "survey sphere" in a for a in card["alarms"])
    # rows without a verdict entry fall back to the per-method files
    zoa = row(card, "r_phi_zoa")
    assert zoa["winner"] == "wiener_cal" and "point estimates" in zoa["verdict"]


def test_goal_not_met_in_comparison_is_an_alarm_even_when_the_rows_show_none(tmp_path):
    # the five rows: the V-Net wins every one, so the rows alone raise no alarm
    methods = {"vnet_phi": method_json(0.95, 0.70, 80.0), "vnet_delta": method_json(0.80, 0.70),
               "wiener_cal": method_json(0.92, 0.64, 100.0)}
    summary = ("The V-Net loses to the best classical method on 2 of 14 headline metrics: MSE(φ), each mock's "
               "mean removed, zoa (to Wiener filter, Malmquist-calibrated); Pearson r(v_r) per mock, zoa (to "
               "POTENT). It wins on 3 and ties on 9 (68 % interval of the paired difference over parent boxes "
               "includes zero). Goal NOT met: it must win or tie on every metric against the best classical "
               "method.")
    lost = write_run(tmp_path / "lost", methods, {"phi": FALLING, "delta": FALLING},
                     comparison={"verdict": [], "goal_met": False, "goal_summary": summary})
    card = sc.scorecard(lost, "laptop")
    assert all(r["winner"] in ("vnet", None) for r in card["rows"])  # no row loses
    assert len(card["alarms"]) == 1 and summary in card["alarms"][0]
    assert card["alarms"][0].startswith("verdict of chapter 05")
    md = sc.scorecard_markdown(card)
    assert "**⚠ Verdict of chapter 05" in md and "MSE(φ), each mock's mean removed, zoa" in md
    assert "Goal NOT met" in md and "No alarm" not in md
    assert md.index("⚠") < md.index("| quantity | paper |")
    # goal met: the same files raise no alarm
    met = write_run(tmp_path / "met", methods, {"phi": FALLING, "delta": FALLING},
                    comparison={"verdict": [], "goal_met": True,
                                "goal_summary": "The V-Net wins on 14 of 14 headline metrics. Goal met."})
    card = sc.scorecard(met, "laptop")
    assert card["alarms"] == []
    md = sc.scorecard_markdown(card)
    assert "⚠" not in md and "Goal met" not in md and "No alarm" in md
    # goal_met false without a summary still alarms; no goal_met at all (older files) does not
    assert "no goal_summary" in sc.goal_alarm({"goal_met": False})[0]
    assert sc.goal_alarm({"verdict": []}) == [] and sc.goal_alarm(None) == []
    # one line per network that loses: the paper's set-up losing alarms even where the V-Net meets the goal
    both = {"goal_met": True, "networks": {
        "vnet": {"goal_met": True, "goal_summary": "The V-Net wins. Goal met."},
        "vnet_paper": {"goal_met": False, "goal_summary": "The V-Net of the paper's set-up loses on 3 of 14."}}}
    lines = sc.goal_alarm(both)
    assert len(lines) == 1 and "paper's set-up loses on 3 of 14" in lines[0]


def test_missing_files_are_named_not_fatal(tmp_path):
    card = sc.scorecard(tmp_path / "nothing-here", "laptop")
    assert [r["vnet"] for r in card["rows"]] == ["—"] * len(card["rows"])
    keys = [r["key"] for r in card["rows"]]
    assert keys[0] == "r_phi_survey" and "ga_position" in keys and "bulk_flow" in keys
    paths = [p for p, _ in card["missing"]]
    assert "evaluation/vnet_phi.json" in paths and "models/phi/history.csv" in paths
    assert "local_universe/great-attractor.json" in paths
    md = sc.scorecard_markdown(card)
    assert "Not available in this run" in md and "chapter 06" in md and "chapter 03" in md
    assert card["alarms"] == []
    # an unreadable file is reported, not raised
    (tmp_path / "bad" / "evaluation").mkdir(parents=True)
    (tmp_path / "bad" / "evaluation" / "vnet_phi.json").write_text("{not json")
    card = sc.scorecard(tmp_path / "bad")
    assert any("vnet_phi.json: unreadable" in e for e in card["errors"])
    assert "Unreadable" in sc.scorecard_markdown(card)


def test_great_attractor_rows_and_alarm(tmp_path):
    good = sc.scorecard(write_run(tmp_path / "g", {}, attractor=attractor_doc(3.0, 6.0)))
    pos = row(good, "ga_position")
    assert pos["winner"] == "vnet" and "308.4° ± 2.4" in pos["paper"] and "4960 ± 404 km/s" in pos["paper"]
    assert pos["vnet"].startswith("(309.0° ± 2.0, 28.0° ± 1.5), 4900 ± 300 km/s; 3.0 Mpc/h")
    frac = row(good, "ga_fraction")
    assert frac["paper"] == "64%" and frac["vnet"] == "90% of 10" and frac["winner"] == "vnet"
    assert not any("Great Attractor" in a for a in good["alarms"])
    # the classical search found nothing: the V-Net wins the position row; one find has no scatter
    doc = attractor_doc(3.0, float("nan"), 0.1, 0.0)
    doc["methods"]["wiener_cal"]["density"].update(l_mean=float("nan"), b_mean=float("nan"), cz_mean=float("nan"))
    only = sc.scorecard(write_run(tmp_path / "o", {}, attractor=doc))
    assert row(only, "ga_position")["winner"] == "vnet" and "only the V-Net" in row(only, "ga_position")["verdict"]
    assert row(only, "ga_position")["vnet"].startswith("(309.0°, 28.0°), 4900 km/s")
    assert row(only, "ga_position")["classical"] == "—"
    bad = sc.scorecard(write_run(tmp_path / "b", {}, attractor=attractor_doc(9.0, 4.0, 0.5, 0.8)))
    ga_alarms = [a for a in bad["alarms"] if "Great Attractor" in a]
    assert len(ga_alarms) == 2
    assert "farther from the true one than the calibrated Wiener filter: 9.0 vs 4.0 Mpc/h" in ga_alarms[0]
    assert "fewer survey realizations" in ga_alarms[1] and "50% vs 80%" in ga_alarms[1]


# --------------------------------------------------------------------------- the paper's numbers
def test_paper_numbers_are_one_table_that_the_shipped_files_agree_with():
    P = literature.PAPER_NUMBERS
    assert P["r_phi"].value == 0.98
    assert (P["ga_l"].value, P["ga_l"].error, P["ga_b"].value, P["ga_b"].error) == (308.4, 2.4, 29.0, 1.9)
    assert (P["ga_cz"].value, P["ga_cz"].error, P["ga_fraction"].value) == (4960.0, 404.0, 0.64)
    assert all(p.source for p in P.values()) and all(k == p.key for k, p in P.items())
    # the structure table the local-universe chapter constrains on, and the landing page's prose
    from zoa_lib.analysis.structures import great_attractor

    ga = great_attractor()
    assert (ga.l, ga.b, ga.cz) == (P["ga_l"].value, P["ga_b"].value, P["ga_cz"].value)
    intro = (REPO / "book" / "intro.md").read_text()
    assert f"r = {P['r_phi'].value:g}" in intro
    l, b = P["ga_l"], P["ga_b"]
    assert f"({l.value:.1f}° \\pm {l.error:.1f}, {b.value:.1f}° \\pm {b.error:.1f})" in intro
    assert f"cz = {P['ga_cz'].value:.0f} \\pm {P['ga_cz'].error:.0f}" in intro


def test_attractor_summary_offsets_from_the_truth():

    def res(sg, found=True):
        return {"l": 0.0, "b": 0.0, "cz": 1.0, "sg": sg, "found": found}

    truth = {"density": {"results": [res([10.0, 0.0, 0.0])]}}
    results = [res([13.0, 4.0, 0.0]), res([10.0, 0.0, 1.0]), res([50.0, 0.0, 0.0], found=False)]
    search = {"vnet": {"density": {"results": results, **ga_search.attractor_statistics(results)}}}
    s = ga_search.attractor_summary(search, truth)
    st = s["methods"]["vnet"]["density"]
    assert st["offset_mean"] == pytest.approx(3.0) and st["offset_std"] == pytest.approx(2.0)  # 5 and 1
    assert st["n_found"] == 2 and s["truth"]["density"]["sg"] == [10.0, 0.0, 0.0]
    assert math.isnan(ga_search.attractor_summary(search)["methods"]["vnet"]["density"]["offset_mean"])


# --------------------------------------------------------------------------- the landing page
def test_landing_page_shows_the_scorecard_first():
    lines = [ln for ln in (REPO / "book" / "intro.md").read_text().splitlines() if ln.strip()]
    assert lines[0].startswith("# ")
    assert lines[1] == "```{include} _generated/scorecard.md"


def test_write_scorecard_into_a_book_root(tmp_path, monkeypatch):
    from zoa_lib.book.run_info import write_run_info
    from zoa_lib.book.runner import prepare_root
    from zoa_lib.book.scorecard import refresh_scorecard, write_scorecard
    from zoa_lib.config import load_profile

    monkeypatch.setenv("ZOA_DATA", str(tmp_path / "data"))
    root = prepare_root(tmp_path / "book")
    prof = load_profile("ci")
    card = write_scorecard(root, prof)
    md = (root / "book/_generated/scorecard.md").read_text()
    assert md.startswith("## This run at a glance") and "profile **ci**" in md and "Not available" in md
    assert json.loads((root / "book/_generated/scorecard.json").read_text())["rows"] == card["rows"]
    # the run's files appear: `zoa book` refreshes it from run-info's profile and overrides
    write_run(prof.data_path, {"vnet_phi": method_json(0.5, 0.4), "wiener_cal": method_json(0.9, 0.6)},
              {"phi": FLAT})
    write_run_info(root, {"profile": "ci", "overrides": {}, "chapters": {}})
    card = refresh_scorecard(root)
    md = (root / "book/_generated/scorecard.md").read_text()
    assert "⚠ The φ V-Net did not learn" in md and "⚠ The φ V-Net is worse than the calibrated Wiener filter" in md
    assert re.search(r"\| V-Net \(the profile's V-Net\): r\(φ\), held-out mocks, survey sphere \(mean over mocks\) "
                     r"\| not quoted \| 0\.500", md)


def test_real_sky_row_and_alarm(tmp_path):
    """Chapter 07's cross-validation on the real catalogue: a row of its own, and an alarm when the
    V-Net is behind the calibrated Wiener filter (a win on mocks is not a win on the sky)."""
    def cv_doc(r_vnet, r_cal, r_wf):
        summ = {m: {"r": {"mean": r, "std": 0.02}} for m, r in (("vnet", r_vnet), ("wiener_cal", r_cal),
                                                              ("wiener", r_wf))}
        best = max(summ, key=lambda m: summ[m]["r"]["mean"])
        return {"catalog": "data/cf3-group-members.tsv", "n_splits": 5, "summary": summ, "best_on_r": best,
                "labels": {"vnet": "V-Net", "wiener_cal": "calibrated Wiener filter", "wiener": "Wiener filter"},
                "paired_r_difference": {"mean": r_vnet - r_cal, "std": 0.01}}
    root = tmp_path / "run"
    (root / "cf4").mkdir(parents=True)
    (root / "cf4" / "crossval.json").write_text(json.dumps(cv_doc(0.364, 0.381, 0.410)))
    card = sc.scorecard(root, "laptop")
    r = row(card, "real_sky_r")
    assert r["vnet"] == "0.364 ± 0.020" and r["classical"].startswith("Wiener filter: 0.410") and r["winner"] == "wiener"
    assert any("less well than the calibrated Wiener filter" in a and "0.364 against 0.381" in a
               and "Wiener filter is best on r" in a for a in card["alarms"])
    md = sc.scorecard_markdown(card)
    assert md.index("⚠") < md.index("| quantity | paper |") and "real sky" in md
    # the V-Net best: no real-sky alarm, the row says so
    (root / "cf4" / "crossval.json").write_text(json.dumps(cv_doc(0.45, 0.40, 0.41)))
    card = sc.scorecard(root, "laptop")
    assert row(card, "real_sky_r")["winner"] == "vnet" and sc.real_sky_alarm(cv_doc(0.45, 0.40, 0.41)) is None
    # level with wiener_cal but the plain filter best: still an alarm
    assert "predicts radial velocities better than the V-Net" in sc.real_sky_alarm(cv_doc(0.40, 0.39, 0.42))
    # no file: the row is "—" and the file is listed as missing
    card = sc.scorecard(tmp_path / "none", "laptop")
    assert row(card, "real_sky_r")["vnet"] == "—" and "cf4/crossval.json" in [p for p, _ in card["missing"]]


def test_real_sky_alarm_names_the_joint_wiener_filter_when_it_is_best_on_r():
    """wiener_joint is a classical method of the cross-validation: best on r, it is named in the
    alarm and the row, with or without the calibrated filter beside it."""
    labels = {"vnet": "V-Net", "wiener_cal": "calibrated Wiener filter", "wiener": "Wiener filter",
              "wiener_joint": "joint Wiener filter (counts + velocities)"}

    def cv_doc(**r):
        summ = {m: {"r": {"mean": v, "std": 0.02}} for m, v in r.items()}
        return {"catalog": "data/cf3-group-members.tsv", "n_splits": 5, "summary": summ,
                "best_on_r": max(summ, key=lambda m: summ[m]["r"]["mean"]), "labels": labels,
                "paired_r_difference": ({"mean": r["vnet"] - r["wiener_cal"], "std": 0.01} if "wiener_cal" in r
                                        else None)}
    # level with wiener_cal, the joint filter best
    a = sc.real_sky_alarm(cv_doc(vnet=0.40, wiener_cal=0.39, wiener_joint=0.47, wiener=0.38))
    assert "the joint Wiener filter (counts + velocities) predicts radial velocities better than the V-Net" in a
    assert "r = 0.470 against 0.400" in a
    # behind wiener_cal, the joint filter best: both said
    a = sc.real_sky_alarm(cv_doc(vnet=0.30, wiener_cal=0.39, wiener_joint=0.47, wiener=0.38))
    assert "less well than the calibrated Wiener filter" in a
    assert "joint Wiener filter (counts + velocities) is best on r (0.470)" in a
    # only the V-Net and the joint filter ran: still an alarm
    assert "joint Wiener filter" in sc.real_sky_alarm(cv_doc(vnet=0.40, wiener_joint=0.47))
    # the V-Net best of all four: no alarm; no classical method: none either
    assert sc.real_sky_alarm(cv_doc(vnet=0.50, wiener_cal=0.39, wiener_joint=0.47, wiener=0.38)) is None
    assert sc.real_sky_alarm(cv_doc(vnet=0.50)) is None
    r = sc._real_sky_row(cv_doc(vnet=0.40, wiener_cal=0.39, wiener_joint=0.47, wiener=0.38))
    assert r["classical_method"] == r["winner"] == "wiener_joint"
    assert r["classical"].startswith("joint Wiener filter (counts + velocities): 0.470")
    assert r["verdict"].startswith("joint Wiener filter (counts + velocities) higher")
