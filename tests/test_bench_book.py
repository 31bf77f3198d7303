"""`zoa bench book`: every chapter's wall time estimated from per-unit costs,
the estimate against the measured chapter times, and the estimate on the landing page."""
import json

import pytest

from zoa_lib.book import estimate as be
from zoa_lib.book.run_info import run_info_markdown, write_run_info
from zoa_lib.book.runner import prepare_root, refresh_estimate
from zoa_lib.cli import main
from zoa_lib.config import load_profile

#: Hand-made unit costs (seconds): round numbers, nothing measured.
COSTS = {"parent_box": 10.0, "mock": 0.5, "wiener": 1.0, "potent": 0.25, "train_sample": 0.02,
         "prediction": 0.01, "engine_comparison": 3.0, "network_setup": 2.0, "epoch_files": 0.0,
         "pool_start": 1.0, "tensorflow_import": 4.0, "chapter_start": 2.0,
         "machine": {"cpu_count": 2, "platform": "test"}, "measured_utc": "2026-12-06T00:00:00+00:00"}


def costs(**kw) -> be.UnitCosts:
    return be.UnitCosts.from_dict({**COSTS, **kw})


def terms(profile, c, chapter) -> dict:
    row = next(r for r in be.estimate_chapters(profile, c) if r["chapter"] == chapter)
    return {t["term"]: t["seconds"] for t in row["terms"]}


def test_every_chapter_is_the_sum_of_its_terms_and_the_total_their_sum():
    prof = load_profile("ci")
    rows = be.estimate_chapters(prof, costs())
    assert [r["chapter"] for r in rows] == list(be.CHAPTERS)
    for r in rows:
        assert r["seconds"] == pytest.approx(sum(t["seconds"] for t in r["terms"]), abs=0.06)
        assert r["formula"].startswith("start 2 s") and r["seconds"] >= 2.0
    assert be.total_seconds(rows) == pytest.approx(sum(r["seconds"] for r in rows), abs=0.01)
    # chapter 02 at ci: 4 parent boxes and 24 mocks over 2 processes, the figure's box, the engines
    t = terms(prof, costs(), "02-mocks")
    assert t["boxes"] == 4 * 10.0 / 2 and t["mocks"] == 24 * 0.5 / 2
    assert t["figure_box"] == 10.0 and t["engines"] == 3.0
    row = next(r for r in rows if r["chapter"] == "02-mocks")
    assert "4 boxes × 10 s / 2 processes" in row["formula"] and "24 mocks × 0.5 s / 2 processes" in row["formula"]


def test_the_estimate_scales_with_the_profile_sizes():
    c = costs(prediction=0.0)  # the epoch is then n_train × train_sample exactly
    ci = load_profile("ci")
    base = terms(ci, c, "03-training")
    # 2 networks (vnet, vnet_paper) × 2 targets × 6 epochs × 16 mocks × 0.02 s
    assert base["epochs"] == pytest.approx(4 * 6 * 16 * 0.02)
    assert base["wiener_channels"] == pytest.approx((16 + 4) * 1.0 / 2)
    # 3 of the 5 variants trained: wiener_corrector and zero_mean_elu are the two networks' own copies
    assert base["variant_epochs"] == pytest.approx(3 * 2 * 16 * 0.02)
    double = terms(load_profile("ci", {"mocks.n_train": 32}), c, "03-training")
    assert double["epochs"] == pytest.approx(2 * base["epochs"])
    assert double["variant_epochs"] == pytest.approx(2 * base["variant_epochs"])
    assert double["wiener_channels"] == pytest.approx((32 + 4) * 1.0 / 2)
    assert terms(load_profile("ci", {"training.epochs": 12}), c, "03-training")["epochs"] == pytest.approx(
        2 * base["epochs"])
    # one network without the Wiener channels, no Wiener filters before training, no variants at 0 epochs
    plain = terms(load_profile("ci", {"training.wiener_channels": False, "book.variant_epochs": 0}), c,
                  "03-training")
    assert plain["epochs"] == pytest.approx(base["epochs"] / 2)
    assert "wiener_channels" not in plain and "variant_epochs" not in plain
    # parent boxes and mocks with the mock set; realizations with the local universe; one process
    assert terms(load_profile("ci", {"mocks.n_train": 32}), c, "02-mocks")["boxes"] == 6 * 10.0 / 2
    assert terms(load_profile("ci", {"mocks.workers": 1}), c, "02-mocks")["boxes"] == 4 * 10.0
    lu = terms(load_profile("ci", {"local_universe.n_realizations": 6}), c, "06-local-universe")
    assert lu["realizations"] == pytest.approx(2 * terms(ci, c, "06-local-universe")["realizations"])
    ev = terms(ci, c, "05-classical")
    # the filters of the evaluated mocks are solved over the profile's 2 processes
    assert ev["wiener"] == pytest.approx(4 * 4 * 1.0 / 2) and ev["potent"] == pytest.approx(4 * 0.25 / 2)
    # the mock study: two runs that fit as many mocks as a variant (the full share is the variant's)
    assert base["mock_study"] == pytest.approx(2 * 2 * 16 * 0.02 + 2 * c.network_setup)
    # one more training mock: its box share, survey and Wiener channels over 2 processes; fitting
    # it once in each of the 4 networks
    assert be.seconds_per_training_mock(ci, c) == pytest.approx((10.0 / ci.simulation.observers_per_box + 0.5 + 1.0)
                                                                / 2)
    assert be.seconds_per_mock_epoch(ci, c) == pytest.approx(4 * 0.02)
    # the costs' machine bounds the parallel stages: 1 core, no division
    one_core = terms(ci, costs(machine={"cpu_count": 1}), "02-mocks")
    assert one_core["boxes"] == 4 * 10.0


def test_box_builds_count_the_boxes_each_shard_builds():
    assert be.box_builds(load_profile("ci")) == 4
    assert be.box_builds(load_profile("laptop")) == 68  # 544 mocks, 8 per box
    # shards of 6 samples over boxes of 8 observers: a box shared by two shards is built twice
    odd = load_profile("ci", {"mocks.shard_size": 6})
    assert be.box_builds(odd) > 4


def test_compare_measured_with_estimated():
    est = [{"chapter": "01-cosmology", "seconds": 2.0}, {"chapter": "02-mocks", "seconds": 10.0},
           {"chapter": "03-training", "seconds": 30.0}]
    info = {"chapters": {"02-mocks": {"seconds": 25.0, "finished_utc": "x"},
                         "01-cosmology": {"seconds": 3.0}, "99-extra": {"seconds": 1.0}}}
    rows = {r["chapter"]: r for r in be.compare(est, info)}
    assert rows["02-mocks"] == {"chapter": "02-mocks", "estimate": 10.0, "measured": 25.0, "ratio": 2.5}
    assert rows["03-training"]["measured"] is None and rows["03-training"]["ratio"] is None
    assert rows["99-extra"]["estimate"] is None
    assert rows["total"] == {"chapter": "total", "estimate": 12.0, "measured": 28.0, "ratio": 2.33}
    assert [r["chapter"] for r in be.compare(est, info)][:3] == ["01-cosmology", "02-mocks", "03-training"]
    # timings.json's {name: seconds}, a file, or nothing
    assert be.compare({"02-mocks": 10.0}, {"02-mocks": 5.0})[0]["ratio"] == 0.5
    assert be.read_measured(info) == {"02-mocks": 25.0, "01-cosmology": 3.0, "99-extra": 1.0}
    assert be.read_measured("/nonexistent/timings.json") == {}
    assert be.compare(est, {})[-1]["ratio"] is None


def test_costs_from_a_file_and_one_line_errors(tmp_path):
    p = tmp_path / "costs.json"
    p.write_text(json.dumps({**COSTS, "extra_key": 1}))
    assert be.load_costs(p).parent_box == 10.0 and be.load_costs(p).cpu_count == 2
    p.write_text(json.dumps({"unit_costs": COSTS}))  # the whole output of `zoa bench book --json`
    assert be.load_costs(p).wiener == 1.0
    p.write_text(json.dumps({k: v for k, v in COSTS.items() if k != "wiener"}))
    with pytest.raises(be.BookEstimateError, match="missing wiener"):
        be.load_costs(p)
    p.write_text(json.dumps({**COSTS, "mock": -1}))
    with pytest.raises(be.BookEstimateError, match="mock must be >= 0"):
        be.load_costs(p)
    p.write_text("{not json")
    with pytest.raises(be.BookEstimateError, match="not JSON"):
        be.load_costs(p)


def test_cli_prints_json_with_every_chapter_and_the_sum(zoa_data, tmp_path, capsys):
    path = tmp_path / "costs.json"
    path.write_text(json.dumps({**COSTS, "sizes": be.profile_sizes(load_profile("ci"))}))
    assert main(["bench", "book", "--profile", "ci", "--costs", str(path), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["benchmark"] == "book" and out["profile"] == "ci" and "cpu_count" in out["machine"]
    assert [r["chapter"] for r in out["chapters"]] == list(be.CHAPTERS)
    assert all(r["seconds"] > 0 and r["formula"] for r in out["chapters"])
    assert out["total_seconds"] == pytest.approx(sum(r["seconds"] for r in out["chapters"]), abs=0.01)
    assert out["per_unit"]["seconds_per_parent_box"] == 10.0 and out["per_unit"]["parallel_processes"] == 2
    assert "measured" not in out and "warnings" not in out and "unit_costs_saved" not in out
    assert not be.costs_path(load_profile("ci")).exists()  # --costs measures and saves nothing
    # the chapter times `zoa run` recorded in the data folder: compared, and shown in the table
    timings = load_profile("ci").data_path / "book" / "timings.json"
    timings.parent.mkdir(parents=True)
    timings.write_text(json.dumps({"02-mocks": 26.0, "03-training": 48.0}))
    assert main(["bench", "book", "--profile", "ci", "--costs", str(path), "--json",
                 "--output", str(tmp_path / "out.json")]) == 0
    out = json.loads(capsys.readouterr().out)
    rows = {r["chapter"]: r for r in out["measured"]["rows"]}
    est = {r["chapter"]: r["seconds"] for r in out["chapters"]}
    assert rows["02-mocks"]["measured"] == 26.0 and rows["02-mocks"]["ratio"] == round(26.0 / est["02-mocks"], 2)
    assert rows["total"]["estimate"] == pytest.approx(est["02-mocks"] + est["03-training"], abs=0.01)
    assert json.loads((tmp_path / "out.json").read_text())["chapters"] == out["chapters"]
    assert main(["bench", "book", "--profile", "ci", "--costs", str(path)]) == 0
    table = capsys.readouterr().out
    for name in be.CHAPTERS:
        assert name in table
    assert "\ntotal " in table and "26 s" in table and "ratio" in table


def test_cli_warns_about_costs_of_other_sizes_and_refuses_bad_options(zoa_data, tmp_path, capsys):
    path = tmp_path / "costs.json"
    path.write_text(json.dumps({**COSTS, "sizes": be.profile_sizes(load_profile("laptop"))}))
    assert main(["bench", "book", "--profile", "ci", "--costs", str(path), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert any("box.grid: 32 (costs) vs 16" in w for w in out["warnings"])
    assert main(["bench", "book", "--costs", str(tmp_path / "none.json")]) == 2
    assert "cannot read unit costs" in capsys.readouterr().err
    assert main(["bench", "sim", "--costs", str(path)]) == 2
    assert "--costs applies to 'book' only" in capsys.readouterr().err


def test_landing_page_shows_the_estimate_only_when_there_is_one(zoa_data, monkeypatch, tmp_path):
    monkeypatch.setattr(be, "reference_costs_path", lambda profile: tmp_path / "none.json")
    prof = load_profile("ci")
    info = {"profile": "ci", "overrides": {},
            "chapters": {"02-mocks": {"seconds": 30.0, "finished_utc": "t"},
                         "05-classical": {"seconds": 20.0, "finished_utc": "t"}}}
    assert be.landing_estimate(prof) is None  # no unit costs, no book.expected_minutes at ci
    md = run_info_markdown({**info, "estimate": None})
    assert "| chapter | wall time | finished (UTC) |" in md and "estimate" not in md
    # unit costs of `zoa bench book` in <data>/bench/unit-costs.json
    path = be.costs_path(prof)
    path.parent.mkdir(parents=True)
    path.write_text(json.dumps({**COSTS, "sizes": be.profile_sizes(prof)}))
    est = be.landing_estimate(prof)
    assert est["kind"] == "unit costs" and set(est["chapters"]) == set(be.CHAPTERS)
    assert "2026-12-06" in est["source"] and "2 CPU cores" in est["source"]
    md = run_info_markdown({**info, "estimate": est})
    assert "| chapter | wall time | estimate | measured / estimate | finished (UTC) |" in md
    e02 = est["chapters"]["02-mocks"]
    assert f"| 02-mocks | 30 s | {e02:.0f} s | {30.0 / e02:.2f} | t |" in md
    assert "Estimates from unit costs measured by `zoa bench book --profile ci`" in md
    # costs measured at other sizes, or unreadable: no estimate, never an error
    path.write_text(json.dumps({**COSTS, "sizes": be.profile_sizes(load_profile("laptop"))}))
    assert be.landing_estimate(prof) is None
    path.write_text("{broken")
    assert be.landing_estimate(prof) is None
    # the profile's book.expected_minutes when there are no costs
    est = be.landing_estimate(load_profile("paper"))
    assert est["kind"] == "profile" and est["chapters"]["02-mocks"] == 150 * 60.0


def test_zoa_book_refreshes_the_estimate_from_costs_saved_after_the_run(zoa_data, tmp_path):
    root = prepare_root(tmp_path / "book")
    info = {"profile": "ci", "profile_arg": "ci", "overrides": {},
            "chapters": {"01-cosmology": {"seconds": 3.0, "finished_utc": "t"}}}
    write_run_info(root, info)
    assert refresh_estimate(root) is None
    assert "estimate" not in (root / "book/_generated/run-info.md").read_text()
    prof = load_profile("ci")
    be.costs_path(prof).parent.mkdir(parents=True)
    be.costs_path(prof).write_text(json.dumps({**COSTS, "sizes": be.profile_sizes(prof)}))
    est = refresh_estimate(root)
    assert est["chapters"]["01-cosmology"] == 2.0
    assert json.loads((root / "book/_generated/run-info.json").read_text())["estimate"] == est
    assert "| 01-cosmology | 3 s | 2 s | 1.50 | t |" in (root / "book/_generated/run-info.md").read_text()
    assert refresh_estimate(tmp_path / "nowhere") is None


def test_measure_unit_costs_at_ci(zoa_data):
    """The costs measured on this machine: every unit timed, the machine and the date recorded
    (about 20 s at ci on 2 cores, most of it TensorFlow)."""
    prof = load_profile("ci")
    c = be.measure_unit_costs(prof)
    for k in be.MEASURED:
        if k != "pm_kernels":  # ci's parent boxes are 2LPT
            assert getattr(c, k) > 0, k
    assert c.machine["cpu_count"] >= 1 and c.machine["platform"] and c.measured_utc.startswith("20")
    assert c.sizes == be.profile_sizes(prof) and not be.size_mismatch(prof, c) and c.quick
    again = be.UnitCosts.from_dict(json.loads(json.dumps(c.to_dict())))
    assert again == c
    assert be.total_seconds(be.estimate_chapters(prof, c)) > 0


def test_zoa_run_puts_the_estimate_on_the_landing_page(tmp_path, monkeypatch):
    """`zoa run` reads the unit costs from the data folder: the landing page's chapter table gets
    the estimate column (a chapter the estimate does not know shows —); the run never fails for it."""
    from pathlib import Path

    from test_book import _tiny_root

    from zoa_lib.book.runner import run_notebooks

    monkeypatch.setenv("ZOA_DATA", str(tmp_path / "data"))
    monkeypatch.setenv("PYTHONPATH", str(Path(__file__).resolve().parent.parent))
    root = _tiny_root(tmp_path)
    prof = load_profile("ci")
    be.costs_path(prof).parent.mkdir(parents=True)
    be.costs_path(prof).write_text(json.dumps({**COSTS, "sizes": be.profile_sizes(prof)}))
    info = run_notebooks("ci", root=root, only=["01"], log=lambda m: None)
    assert info["estimate"]["kind"] == "unit costs" and info["estimate"]["chapters"]["02-mocks"] > 0
    md = (root / "book/_generated/run-info.md").read_text()
    assert "| chapter | wall time | estimate | measured / estimate | finished (UTC) |" in md
    assert any(ln.startswith("| 01-alpha |") and "| — | — |" in ln for ln in md.splitlines()), md
    # a broken costs file: no estimate column, the run goes on
    be.costs_path(prof).write_text("{broken")
    info = run_notebooks("ci", root=root, only=["01"], log=lambda m: None)
    assert info["estimate"] is None
    assert "measured / estimate" not in (root / "book/_generated/run-info.md").read_text()


def test_a_fresh_clone_estimates_from_the_reference_machine_until_this_one_is_measured(zoa_data, monkeypatch,
                                                                                      tmp_path):
    prof = load_profile("ci")
    ref = tmp_path / "unit-costs" / "ci.json"
    monkeypatch.setattr(be, "reference_costs_path", lambda profile: ref)
    ref.parent.mkdir()
    ref.write_text(json.dumps({**COSTS, "sizes": be.profile_sizes(prof)}))
    est = be.landing_estimate(prof)
    assert "reference machine" in est["source"] and est["kind"] == "unit costs"
    assert est["chapters"] == {r["chapter"]: r["seconds"] for r in be.estimate_chapters(prof, costs())}
    # this machine's own costs, once measured, come first
    path = be.costs_path(prof)
    path.parent.mkdir(parents=True)
    path.write_text(json.dumps({**COSTS, "train_sample": 2 * COSTS["train_sample"], "sizes": be.profile_sizes(prof)}))
    mine = be.landing_estimate(prof)
    assert "reference machine" not in mine["source"]
    assert mine["chapters"]["03-training"] > est["chapters"]["03-training"]


def test_the_shipped_reference_costs_fit_their_profiles(zoa_data):
    """Every shipped reference file is readable and measured at its profile's sizes (change a
    profile's sizes and this fails until `zoa bench book` re-measures them)."""
    shipped = sorted(be.reference_costs_path(load_profile("laptop")).parent.glob("*.json"))
    assert [p.stem for p in shipped] == ["laptop"]
    for path in shipped:
        prof = load_profile(path.stem)
        assert be.size_mismatch(prof, be.load_costs(path)) == []
        assert "reference machine" in be.landing_estimate(prof)["source"]


def test_every_stage_benchmark_names_a_function_that_exists():
    """``zoa bench <stage>`` looks its function up by name; a module that moved must not leave
    the command pointing at nothing."""
    import importlib

    from zoa_lib.commands.bench import BENCHMARKS

    for stage, target in BENCHMARKS.items():
        mod, fn = target.split(":")
        assert callable(getattr(importlib.import_module(mod), fn, None)), f"zoa bench {stage}: {target}"
