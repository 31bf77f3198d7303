"""The landing page's scorecard: the paper's numbers beside this run's, with alarms.

The paper's numbers live in one table, :data:`PAPER_NUMBERS`, each with its source; this
run's numbers are read from the files the run wrote under the profile's data folder
(``profile.data_path``, i.e. ``data/<profile>/``):

=====================================  ==============================================================
``evaluation/<method>.json``           metrics of each method on the held-out mocks (chapter 05,
                                       ``zoa evaluate``): ``vnet_delta``, ``vnet_phi`` (the profile's
                                       V-Net), ``vnet_paper_delta``, ``vnet_paper_phi`` (the paper's
                                       set-up, where the profile trains it), ``wiener``,
                                       ``wiener_cal``, ``wiener_joint``, ``potent``
``evaluation/comparison.json``         the comparison; its ``verdict`` list (when present) gives, per
                                       metric, the best classical method, the V-Net − baseline
                                       difference, its 68 % paired-bootstrap interval over parent
                                       boxes and the winner ("vnet", a baseline, "tie",
                                       "undetermined")
``models/<target>/history.csv``        training history (chapter 03): epoch, learning_rate, loss,
                                       val_loss (``models/vnet_paper/<target>/`` for the paper's set-up)
``local_universe/great-attractor.json``  the Great Attractor search of chapter 06
                                       (:func:`zoa_lib.analysis.ga_search.write_attractor_results`)
=====================================  ==============================================================

:func:`scorecard` turns them into rows (quantity, paper value, this run's V-Net, the best
classical method with its name, verdict) plus alarm lines and the list of what is missing;
:func:`scorecard_markdown` renders it for the landing page (``book/_generated/scorecard.md``,
written by :func:`zoa_lib.book.scorecard.write_scorecard`). Missing files never raise: the row shows
"—" and the scorecard says which file is missing and which chapter writes it.

Verdicts (DESIGN.md, evaluation protocol): the bar is the best classical method on the same
metric — among the classical methods scored against the same truth as the networks
(``comparison.json``'s ``baselines``: ``wiener``, ``wiener_cal``, the Malmquist-calibrated
Wiener filter, ``wiener_joint``, the joint filter of counts and velocities, and ``potent`` only
where it is scored against the networks' truth). The first table has one block of rows per
network, each labelled with what it reads; the paper's r(φ) = 0.98 stands beside the network
of the paper's set-up. With ``comparison.json``'s ``verdict`` entry for a metric, its winner is used (a
winner needs a 68 % interval that excludes zero); without one, the point estimates are
compared and the verdict says so. An **alarm** line is raised when

* a network is worse than the best classical method on a scorecard metric (the winner is a
  baseline), or behind it on the point estimate where the verdict is "undetermined" (too
  few parent boxes for an interval);
* a network did not learn (:func:`learning_alarm`: flat validation loss), or its prediction
  has collapsed to nearly a constant (:func:`collapse_alarm`);
* the V-Net places the Great Attractor farther from the mock universe's true one, or finds
  it in fewer survey realizations, than the classical method searched alongside it;
* ``comparison.json`` says ``goal_met: false`` for a network (its ``networks`` entry): its
  ``goal_summary`` (which names the metrics lost) becomes one of the first alarm lines
  (:func:`goal_alarm`), whatever the rows here show — the verdict judges more metrics than the
  scorecard's rows;
* on the real catalogue (chapter 07's cross-validation, ``cf4/crossval.json``) the V-Net's
  predicted radial velocities of held-out galaxies correlate less with the measured ones than
  the calibrated Wiener filter's, or a classical method is best (:func:`real_sky_alarm`): a win
  on mocks is not a win on the sky. The last row shows those numbers.
"""
from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping

from zoa_lib.analysis.literature import PAPER_NUMBERS
from zoa_lib.analysis.verdict import json_get as _get
from zoa_lib.io.atomic import write_json_atomic, write_text_atomic
from zoa_lib.io.paths import REPO_ROOT

#: The classical methods of ``zoa evaluate``, and the networks' methods as (network, target):
#: the one table of method names, :mod:`zoa_lib.methods.registry`.
from zoa_lib.methods.registry import BASELINES as CLASSICAL  # noqa: E402
from zoa_lib.methods.registry import LABELS, NETWORK_METHODS

#: Relative paths (under the profile's data folder) of the files read, and who writes them.
SOURCES = {
    "evaluation": ("evaluation/", "chapter 05 (classical methods) or `zoa evaluate`"),
    "comparison": ("evaluation/comparison.json", "chapter 05 (classical methods) or `zoa evaluate`"),
    "history": ("models/{target}/history.csv", "chapter 03 (training) or `zoa train`"),
    "attractor": ("local_universe/great-attractor.json", "chapter 06 (local universe)"),
    "crossval": ("cf4/crossval.json", "chapter 07 (real catalogue) or `zoa crossval --out`"),
}
#: A network "did not learn" when its best validation loss is at least this fraction of its
#: first epoch's (:func:`learning_alarm`).
FLAT_LOSS_FRACTION = 0.95
#: A prediction "collapsed" when its standard deviation is below this fraction of the
#: truth's over the survey sphere (:func:`collapse_alarm`).
COLLAPSE_STD_FRACTION = 0.1
#: Sphere radius (Mpc/h) of the bulk-flow row (the nearest radius evaluated is used).
BULK_FLOW_RADIUS = 50.0


# --------------------------------------------------------------------------- alarms
def _history_frame(history):
    import pandas as pd

    if isinstance(history, (str, os.PathLike)):
        return pd.read_csv(history)
    if isinstance(history, pd.DataFrame):
        return history
    if isinstance(history, Mapping):
        return pd.DataFrame(dict(history))
    raise TypeError(f"history must be a CSV path, DataFrame or mapping of lists, got {type(history).__name__}")


def learning_alarm(history, name: str = "the network", threshold: float = FLAT_LOSS_FRACTION) -> str | None:
    """None when a network learned; otherwise one line saying why it seems not to have.

    Criterion (flat validation loss): the best (lowest) ``val_loss`` over all epochs is at
    least ``threshold`` (0.95) times the first epoch's — training did not lower the
    validation loss by 5 %. The first epoch of this project's runs is at the bottom of the
    triangular cyclic learning rate (``training.lr_min``), so a network that learns keeps
    improving after it; a network that learned everything in its first epoch and then
    plateaued would be flagged too, which at these sizes has not happened. Also flagged: a
    non-finite validation loss, and a history of fewer than two epochs (cannot tell).

    history : CSV path (``models/<target>/history.csv``), DataFrame or mapping of lists
        with a ``val_loss`` column (``loss`` is used, and said, when there is none).
    name : how the alarm names the network ("the φ V-Net").
    """
    df = _history_frame(history)
    col = "val_loss" if "val_loss" in df.columns else ("loss" if "loss" in df.columns else None)
    if col is None:
        return f"{name}: its training history has no val_loss or loss column, so whether it learned is unknown"
    what = "validation loss" if col == "val_loss" else "training loss (no validation loss recorded)"
    vals = [float(v) for v in df[col].tolist()]
    if not vals:
        return f"{name} has no finished epoch in its training history"
    bad = [i for i, v in enumerate(vals) if not math.isfinite(v)]
    if bad:
        return f"{name} did not learn: its {what} is {vals[bad[0]]} at epoch {bad[0] + 1}"
    if len(vals) < 2:
        return f"{name} trained for one epoch only: whether its {what} falls cannot be told"
    first = vals[0]
    best = min(vals)
    if first <= 0:
        return None
    ratio = best / first
    if ratio >= threshold:
        j = vals.index(best) + 1
        return (f"{name} did not learn: its best {what} ({best:.4g}, epoch {j} of {len(vals)}) is "
                f"{ratio:.0%} of the first epoch's ({first:.4g}); a network that learns gets below "
                f"{threshold:.0%}")
    return None


def collapse_alarm(region_stats: Mapping | None, name: str = "the network",
                   fraction: float = COLLAPSE_STD_FRACTION) -> str | None:
    """One line when a prediction is nearly a constant — its standard deviation below
    ``fraction`` of the truth's (``pred_std`` and ``truth_std`` of a region of
    :func:`zoa_lib.analysis.metrics.field_metrics`) — else None."""
    if not region_stats:
        return None
    p, t = region_stats.get("pred_std"), region_stats.get("truth_std")
    if p is None or t is None or not t > 0:
        return None
    if p < fraction * t:
        return (f"{name} predicts almost a constant: its standard deviation is {p / t:.1%} of the "
                f"truth's in the survey sphere ({p:.3g} vs {t:.3g})")
    return None


def goal_alarm(comparison: Mapping | None) -> list[str]:
    """One line per network that ``comparison.json`` (:func:`zoa_lib.analysis.verdict.comparison`)
    records with ``goal_met: false`` (its ``networks`` entries; the top-level ``goal_met`` in
    files without them): its ``goal_summary``, which names the losses. [] when every network
    meets the goal or there is no comparison."""
    if not isinstance(comparison, Mapping):
        return []
    nets = comparison.get("networks")
    if not isinstance(nets, Mapping) or not nets:
        nets = {"vnet": comparison}
    out = []
    for net, info in nets.items():
        if not isinstance(info, Mapping) or info.get("goal_met") is not False:
            continue
        summary = str(info.get("goal_summary") or "").strip()
        if not summary:
            summary = "the goal is not met, and comparison.json gives no goal_summary saying why."
        out.append(f"verdict of chapter 05 (`zoa evaluate`, evaluation/comparison.json): {summary}")
    return out


def real_sky_alarm(crossval: Mapping | None) -> str | None:
    """One line when, on held-out galaxies of the real catalogue (``zoa crossval``'s JSON,
    :meth:`zoa_lib.analysis.crossval.CrossValResult.to_dict`), the V-Net's radial velocities correlate
    less with the measured ones than the calibrated Wiener filter's, or another classical method
    (``wiener``, ``wiener_joint``, ...) is best on r; else None (also without the file, or
    without the V-Net's r and a classical method's)."""
    if not isinstance(crossval, Mapping):
        return None
    summ = crossval.get("summary") or {}
    r = {m: _num(((summ.get(m) or {}).get("r") or {}).get("mean")) for m in summ}
    if r.get("vnet") is None or all(v is None for m, v in r.items() if m != "vnet"):
        return None
    best = crossval.get("best_on_r")
    labels = crossval.get("labels") or {}
    where = f"on held-out galaxies of the real catalogue ({Path(str(crossval.get('catalog', ''))).name}, chapter 07)"
    if r.get("wiener_cal") is not None and r["vnet"] < r["wiener_cal"]:
        d = crossval.get("paired_r_difference") or {}
        extra = (f"; the {labels.get(best, best)} is best on r ({r[best]:.3f})"
                 if best not in (None, "vnet", "wiener_cal") and r.get(best) is not None else "")
        return (f"{where} the V-Net predicts radial velocities less well than the calibrated Wiener filter: "
                f"r = {r['vnet']:.3f} against {r['wiener_cal']:.3f} (paired difference {_num(d.get('mean')) or 0:+.3f}"
                f" ± {_num(d.get('std')) or 0:.3f} over the splits){extra}: its win on mocks is not a win on the sky")
    if best not in (None, "vnet") and r.get(best) is not None:
        return (f"{where} the {labels.get(best, best)} predicts radial velocities better than the V-Net: r = "
                f"{r[best]:.3f} against {r['vnet']:.3f}")
    return None


def _real_sky_row(crossval) -> dict:
    row = {"key": "real_sky_r", "quantity": "real sky: r(v_r) at held-out galaxies of the catalogue (chapter 07)",
           "paper": "— (not in the paper)", "paper_key": None, "vnet": "—", "vnet_value": None, "vnet_method": "vnet",
           "classical": "—", "classical_value": None, "classical_method": None, "winner": None, "interval68": None,
           "verdict": "chapter 07 not run", "basis": None}
    summ = (crossval.get("summary") or {}) if isinstance(crossval, Mapping) else {}
    if "vnet" not in summ:
        return row
    labels = crossval.get("labels") or {}

    def txt(m):
        d = summ[m]["r"]
        return f"{_num(d.get('mean')) or float('nan'):.3f} ± {_num(d.get('std')) or float('nan'):.3f}"

    classical = [m for m in summ if m != "vnet" and _num(summ[m]["r"].get("mean")) is not None]
    best = max(classical, key=lambda m: summ[m]["r"]["mean"]) if classical else None
    row.update(vnet=txt("vnet"), vnet_value=_num(summ["vnet"]["r"].get("mean")))
    if best:
        rv, rc = summ["vnet"]["r"]["mean"], summ[best]["r"]["mean"]
        row.update(classical=f"{labels.get(best, best)}: {txt(best)}", classical_value=rc, classical_method=best,
                   winner="vnet" if rv > rc else best,
                   verdict=("V-Net higher" if rv > rc else f"{labels.get(best, best)} higher")
                   + f" (mean ± std over {crossval.get('n_splits', '?')} splits of {Path(str(crossval.get('catalog', ''))).name})")
    return row


# --------------------------------------------------------------------------- reading
def _read_json(path: Path):
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        return {"_error": f"{path.name}: unreadable ({e})"}


def _num(v):
    try:
        v = float(v)
    except (TypeError, ValueError):
        return None
    return v if math.isfinite(v) else None


def _read_source(out: dict, root: Path, key: str) -> None:
    """Read the JSON file of ``SOURCES[key]`` under ``root`` into ``out[key]``; an unreadable one
    goes to ``out["errors"]``, an absent one to ``out["missing"]`` (with who writes it)."""
    rel, who = SOURCES[key]
    doc = _read_json(root / rel)
    if isinstance(doc, dict) and "_error" in doc:
        out["errors"].append(doc["_error"])
    elif doc is None:
        out["missing"].append((rel, who))
    else:
        out[key] = doc


def read_run(data_path) -> dict:
    """The files of one run under ``data_path`` (see the module docstring): {"methods":
    {method: JSON}, "comparison": JSON or None, "histories": {target: DataFrame or error
    text}, "attractor": JSON or None, "missing": [(relative path, who writes it)],
    "errors": [text]}. Never raises for absent or unreadable files."""
    import pandas as pd

    root = Path(data_path)
    out = {"data_path": str(root), "methods": {}, "comparison": None, "histories": {}, "attractor": None,
           "crossval": None, "missing": [], "errors": []}
    ev = root / "evaluation"
    for m in tuple(NETWORK_METHODS) + CLASSICAL:
        doc = _read_json(ev / f"{m}.json")
        if isinstance(doc, dict) and "_error" in doc:
            out["errors"].append(doc["_error"])
        elif doc is not None:
            out["methods"][m] = doc
    for m in ("vnet_phi", "vnet_delta"):
        if m not in out["methods"]:
            out["missing"].append((f"evaluation/{m}.json", SOURCES["evaluation"][1]))
    if not any(m in out["methods"] for m in CLASSICAL):
        out["missing"].append(("evaluation/{wiener,wiener_cal,potent}.json", SOURCES["evaluation"][1]))
    _read_source(out, root, "comparison")
    for target in ("phi", "delta", "vnet_paper/phi", "vnet_paper/delta"):
        rel = SOURCES["history"][0].format(target=target)
        path = root / rel
        if not path.exists():
            if "/" not in target:  # the paper's set-up is trained only where it differs from the V-Net
                out["missing"].append((rel, SOURCES["history"][1]))
            continue
        try:
            out["histories"][target] = pd.read_csv(path)
        except (OSError, pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as e:
            out["errors"].append(f"{rel}: unreadable ({e})")
    _read_source(out, root, "attractor")
    _read_source(out, root, "crossval")
    return out


# --------------------------------------------------------------------------- rows
@dataclass(frozen=True)
class _Metric:
    key: str          # the key of comparison.json's verdict entry (zoa_lib.analysis.verdict.VERDICT_METRICS)
    quantity: str
    symbol: str
    field: str
    region: str
    stat: str
    better: str       # "higher" | "lower"
    vnet_method: str
    paper: str | None
    network: str      # how alarms name the network
    where: str = ""   # short name of the region in alarms


def _network_label(run, net: str) -> str:
    """What a network reads, from its evaluation JSON (``network.reads``)."""
    for t in ("phi", "delta"):
        reads = _get(run["methods"].get(f"{net}_{t}"), "network", "reads")
        if reads:
            return str(reads)
    return "the paper's set-up: N_gal, V_pec" if net == "vnet_paper" else "the profile's V-Net"


def _is_paper_setup(run, net: str) -> bool:
    return _network_label(run, net).startswith("the paper's set-up")


def network_metrics(run, net: str) -> tuple:
    """The scorecard's rows of one network: r(φ) and r(δ) per mock in the survey sphere and
    inside the ZOA. Keys end in ``_<net>`` for networks other than ``vnet`` (as in the verdict);
    the paper's r(φ) is set beside the network of the paper's set-up only."""
    suffix = "" if net == "vnet" else f"_{net}"
    who = "V-Net" if net == "vnet" else "V-Net, paper set-up"
    reads = _network_label(run, net)
    paper = _is_paper_setup(run, net)
    tag = "" if net == "vnet" else " (paper set-up)"
    rows = []
    for field, sym, target in (("phi", "φ", "phi"), ("delta", "δ", "delta")):
        for region, where, long in (("survey", "survey sphere", "survey sphere"), ("zoa", "inside the ZOA",
                                                                                     "inside the ZOA")):
            rows.append(_Metric(f"r_{field}_{region}{suffix}",
                                f"{who} ({reads}): r({sym}), held-out mocks, {long} (mean over mocks)",
                                f"r({sym})", field, region, "pearson_r_mock_mean", "higher", f"{net}_{target}",
                                "r_phi" if (paper and field == "phi" and region == "survey") else None,
                                f"the {sym} V-Net{tag}", where))
    return tuple(rows)


#: The rows of the profile's V-Net when no evaluation file says what it reads.
METRICS = network_metrics({"methods": {}}, "vnet")


def _networks_run(run) -> list[str]:
    """The networks with an evaluation file in this run (``vnet`` always, for its "—" rows)."""
    return ["vnet"] + [n for n in ("vnet_paper",) if any(m in run["methods"] for m in (f"{n}_phi", f"{n}_delta"))]


def _method_value(doc, metric: _Metric):
    """(value, spread or None) of one method's JSON for a metric row."""
    if doc is None:
        return None, None
    if metric.field == "bulk_flow":
        bf = _get(doc, "velocity", "bulk_flow")
        i = _bulk_index(bf)
        if i is None:
            return None, None
        err = _get(bf, "error_mean") or []
        return (_num(err[i]) if i < len(err) else None), None
    reg = _get(doc, metric.field, "regions", metric.region)
    v = _num(_get(reg, metric.stat))
    s = _num(_get(reg, "pearson_r_mock_std")) if metric.stat == "pearson_r_mock_mean" else None
    return v, s


def _bulk_index(bf):
    radii = _get(bf, "radii")
    if not radii:
        return None
    return min(range(len(radii)), key=lambda i: abs(float(radii[i]) - BULK_FLOW_RADIUS))


def _bulk_metric(run) -> _Metric | None:
    for m in ("vnet_phi",) + CLASSICAL + ("vnet_delta",):
        bf = _get(run["methods"].get(m), "velocity", "bulk_flow")
        i = _bulk_index(bf)
        if i is not None:
            R = float(bf["radii"][i])
            return _Metric(f"bulk_flow_error_{R:g}", f"bulk-flow error ‖B_pred − B_true‖, R = {R:g} Mpc/h "
                           "(km/s, mean over mocks)", "‖ΔB‖", "bulk_flow", f"R = {R:g} Mpc/h",
                           "error_mean", "lower", "vnet_phi", "bulk_flow", "the φ V-Net",
                           f"bulk flow in spheres of R = {R:g} Mpc/h, v from −∇φ")
    return None


def _verdict_entry(comp, metric: _Metric):
    """The entry of ``comparison.json``'s ``verdict`` list for ``metric``: the one with its
    key (and the V-Net method of the row), else one with its field, region and statistic."""
    entries = _get(comp, "verdict")
    if not isinstance(entries, list):
        return None
    entries = [e for e in entries if isinstance(e, Mapping)
               and e.get("vnet_method", metric.vnet_method) == metric.vnet_method]
    for e in entries:
        if e.get("key") == metric.key:
            return e
    for e in entries:
        if e.get("field") == metric.field and e.get("region") == metric.region and e.get("metric") == metric.stat:
            return e
    return None


def _fmt(v, unit: str = "", spread=None) -> str:
    if v is None:
        return "—"
    if unit in ("km/s", "Mpc/h"):
        s = f"{v:.0f}" if unit == "km/s" else f"{v:.1f}"
        if spread is not None:
            s += f" ± {spread:.0f}" if unit == "km/s" else f" ± {spread:.1f}"
        return f"{s} {unit}"
    s = f"{v:.3f}"
    if spread is not None:
        s += f" ± {spread:.3f}"
    return s


def _fmt_signed(v, unit: str = "") -> str:
    if v is None:
        return "—"
    if unit == "km/s":
        return f"{v:+.0f} km/s"
    return f"{v:+.3f}"


def paper_text(key: str, unit: bool = True) -> str:
    """A number of :data:`PAPER_NUMBERS` as the paper writes it: "308.4 ± 2.4" (degrees to
    0.1, km/s to 1, fractions in %), with its unit unless ``unit`` is False."""
    p = PAPER_NUMBERS[key]
    if p.value is None:
        return "no single value (curves)"
    if not p.unit:
        return f"{p.value:.0%}" if key.endswith("fraction") else f"{p.value:g}"
    digits = 1 if p.unit == "deg" else 0
    text = f"{p.value:.{digits}f}" + (f" ± {p.error:.{digits}f}" if p.error is not None else "")
    return text + (f" {p.unit}" if unit else "")


def _paper_text(key: str | None) -> str:
    return "not quoted" if key is None else paper_text(key)


def _paper_ga_position() -> str:
    p = PAPER_NUMBERS
    return (f"({p['ga_l'].value:.1f}° ± {p['ga_l'].error:.1f}, {p['ga_b'].value:.1f}° ± {p['ga_b'].error:.1f}), "
            f"{p['ga_cz'].value:.0f} ± {p['ga_cz'].error:.0f} km/s (CF4)")


def _label(m) -> str:
    return LABELS.get(m, str(m))


def _metric_row(run, metric: _Metric) -> tuple[dict, list[str]]:
    unit = "km/s" if metric.field == "bulk_flow" else ""
    vdoc = run["methods"].get(metric.vnet_method)
    v, v_sd = _method_value(vdoc, metric)
    comparable = _get(run["comparison"], "baselines")
    if not isinstance(comparable, list):  # older files: POTENT only where scored against the same truth
        comparable = [m for m in CLASSICAL if not (_num(_get(run["methods"].get(m), "truth_smoothing", "extra")) or 0) > 0]
    classical = {m: _method_value(run["methods"][m], metric) for m in CLASSICAL
                 if m in run["methods"] and m in comparable}
    classical = {m: vs for m, vs in classical.items() if vs[0] is not None}
    entry = _verdict_entry(run["comparison"], metric)
    interval = None
    if entry is not None:
        base = entry.get("baseline")
        b = _num(entry.get("baseline_value"))
        v = _num(entry.get("vnet")) if _num(entry.get("vnet")) is not None else v
        b_sd = classical.get(base, (None, None))[1]
        winner = entry.get("winner")
        interval = entry.get("interval68")
        diff = _num(entry.get("difference"))
        basis = "paired bootstrap over parent boxes"
    else:
        base = None
        if classical:
            pick = max if metric.better == "higher" else min
            base = pick(classical, key=lambda m: classical[m][0])
        b, b_sd = classical.get(base, (None, None))
        diff = None if (v is None or b is None) else v - b
        winner = None
        if diff is not None:
            if diff == 0:
                winner = "tie"
            else:
                winner = "vnet" if (diff > 0) == (metric.better == "higher") else base
        basis = "point estimates; no bootstrap interval in this run's files"
    alarms = []
    if v is None:
        verdict = f"no V-Net value ({metric.vnet_method}.json missing)" if vdoc is None else "no V-Net value"
    elif b is None:
        verdict = "no classical method evaluated"
    else:
        diff = v - b if diff is None else diff
        iv = None
        if (isinstance(interval, (list, tuple)) and len(interval) == 2
                and _num(interval[0]) is not None and _num(interval[1]) is not None):
            iv = f"68 % interval [{_fmt_signed(_num(interval[0]), unit)}, {_fmt_signed(_num(interval[1]), unit)}]"
        d = f"V-Net − {_label(base)} = {_fmt_signed(diff, unit)}" + (f", {iv}" if iv else "")
        behind = (diff < 0) == (metric.better == "higher") and diff != 0
        if winner == "vnet":
            verdict = f"V-Net better ({d}; {basis})"
        elif winner == "tie":
            verdict = f"no significant difference ({d}; {basis})"
        elif winner == "undetermined":
            verdict = f"undetermined ({d}; too few parent boxes for an interval)"
            if behind:
                alarms.append(f"{metric.network} is behind the {_label(base)} on the point estimate: "
                              f"{metric.symbol} = {_fmt(v, unit)} vs {_fmt(b, unit)} ({metric.where}; no winner "
                              f"can be named: too few parent boxes for a bootstrap interval)")
        elif winner is None:
            verdict = f"no winner recorded ({d}; {basis})"
        else:
            verdict = f"**{_label(winner)} better** ({d}; {basis})"
            how = (f"difference {_fmt_signed(diff, unit)}, {iv} over parent boxes" if iv
                   else "point estimates, no bootstrap interval")
            alarms.append(f"{metric.network} is worse than the {_label(winner)}: {metric.symbol} = "
                          f"{_fmt(v, unit)} vs {_fmt(b, unit)} ({metric.where}; {how})")
    row = {"key": metric.key, "quantity": metric.quantity,
           "paper": _paper_text(metric.paper), "paper_key": metric.paper,
           "vnet": _fmt(v, unit, v_sd), "vnet_value": v, "vnet_method": metric.vnet_method,
           "classical": (f"{_fmt(b, unit, b_sd)} ({_label(base)})" if b is not None else "—"),
           "classical_value": b, "classical_method": base, "winner": winner, "interval68": interval,
           "verdict": verdict, "basis": basis if b is not None and v is not None else None}
    return row, alarms


def _ga_rows(ga) -> tuple[list[dict], list[str]]:
    how = "density"
    methods = _get(ga, "methods") or {}
    vn = _get(methods, "vnet", how)
    cls = {m: _get(methods, m, how) for m in methods if m != "vnet" and _get(methods, m, how)}
    truth = _get(ga, "truth", how)

    def pos(st):
        if not st or _num(st.get("l_mean")) is None:
            return "not found"
        one = (st.get("n_found") if st.get("n_found") is not None else st.get("n")) == 1  # no scatter of one

        def sd(k, digits=1):
            return "" if one or _num(st.get(k)) is None else f" ± {st[k]:.{digits}f}"

        s = (f"({st['l_mean']:.1f}°{sd('l_std')}, {st['b_mean']:.1f}°{sd('b_std')}), "
             f"{st['cz_mean']:.0f}{sd('cz_std', 0)} km/s")
        off = _num(st.get("offset_mean"))
        return s + (f"; {off:.1f} Mpc/h from the true GA" if off is not None else "")

    paper_pos = _paper_ga_position()
    where = ("mock local universe" + (f", true GA at ({truth['l']:.1f}°, {truth['b']:.1f}°), "
                                      f"{truth['cz']:.0f} km/s" if truth else ""))
    alarms = []
    rows = []
    # position: the smallest mean offset from this universe's true GA wins
    offs = {m: _num(st.get("offset_mean")) for m, st in cls.items()}
    offs = {m: o for m, o in offs.items() if o is not None}
    best = min(offs, key=offs.get) if offs else None
    v_off = _num(vn.get("offset_mean")) if vn else None
    winner = None
    if vn is None:
        verdict = "no V-Net search recorded"
    elif _num(vn.get("l_mean")) is None:
        verdict = "the V-Net found no GA peak"
    elif cls and not any(_num(st.get("l_mean")) is not None for st in cls.values()):
        verdict, winner = f"only the V-Net finds a GA peak ({', '.join(_label(m) for m in cls)}: none)", "vnet"
    elif v_off is None or best is None:
        verdict = "no comparison (no classical search, or no true position)"
    elif v_off < offs[best]:
        verdict, winner = f"V-Net closer to the true GA ({v_off:.1f} vs {offs[best]:.1f} Mpc/h)", "vnet"
    elif v_off == offs[best]:
        verdict, winner = "tie", "tie"
    else:
        winner = best
        verdict = f"**{_label(best)} closer** ({offs[best]:.1f} vs {v_off:.1f} Mpc/h)"
        alarms.append(f"the V-Net places the Great Attractor farther from the true one than the "
                      f"{_label(best)}: {v_off:.1f} vs {offs[best]:.1f} Mpc/h (mock local universe; mean over "
                      f"the survey realizations that find it)")
    rows.append({"key": "ga_position", "quantity": f"Great Attractor (l, b), cz — density peak ({where})",
                 "paper": paper_pos, "paper_key": "ga_l", "vnet": pos(vn) if vn else "—",
                 "vnet_value": v_off, "vnet_method": "vnet",
                 "classical": (f"{pos(cls[best])} ({_label(best)})" if best else "—"),
                 "classical_value": offs.get(best), "classical_method": best, "winner": winner,
                 "interval68": None, "verdict": verdict, "basis": "point estimates"})
    # found fraction: higher wins
    fr = {m: _num(st.get("fraction_found")) for m, st in cls.items()}
    fr = {m: f for m, f in fr.items() if f is not None}
    bf = max(fr, key=fr.get) if fr else None
    v_fr = _num(vn.get("fraction_found")) if vn else None
    winner = None
    if v_fr is None or bf is None:
        verdict = "no comparison"
    elif v_fr > fr[bf]:
        verdict, winner = f"V-Net finds it more often ({v_fr:.0%} vs {fr[bf]:.0%})", "vnet"
    elif v_fr == fr[bf]:
        verdict, winner = f"tie ({v_fr:.0%})", "tie"
    else:
        winner = bf
        verdict = f"**{_label(bf)} finds it more often** ({fr[bf]:.0%} vs {v_fr:.0%})"
        alarms.append(f"the V-Net finds the Great Attractor in fewer survey realizations than the "
                      f"{_label(bf)}: {v_fr:.0%} vs {fr[bf]:.0%} (mock local universe)")

    def frac(st):
        return f"{st['fraction_found']:.0%} of {st['n']}" if st and _num(st.get("fraction_found")) is not None \
            else "—"

    rows.append({"key": "ga_fraction", "quantity": "Great Attractor found (fraction of survey realizations)",
                 "paper": _paper_text("ga_fraction"), "paper_key": "ga_fraction",
                 "vnet": frac(vn), "vnet_value": v_fr, "vnet_method": "vnet",
                 "classical": (f"{frac(cls[bf])} ({_label(bf)})" if bf else "—"),
                 "classical_value": fr.get(bf), "classical_method": bf, "winner": winner, "interval68": None,
                 "verdict": verdict, "basis": "point estimates"})
    return rows, alarms


def scorecard(data_path, profile_name: str | None = None) -> dict:
    """This run's scorecard from the files under ``data_path`` (``profile.data_path``).

    Returns {"profile", "data_path", "rows": [{"key", "quantity", "paper", "vnet",
    "classical", "verdict", "winner", "interval68", ... (values and method names)}],
    "alarms": [text], "missing": [(relative path, who writes it)], "errors": [text],
    "n_mocks", "n_boxes" (the held-out mocks of the comparison and their parent boxes, or None)}.
    Rows: r(φ) and r(δ) per mock (survey sphere, inside the ZOA), the bulk-flow error at
    R ≈ :data:`BULK_FLOW_RADIUS`, and the Great Attractor's position and recovery
    fraction; alarms as in the module docstring (the verdict's ``goal_summary`` first when
    ``comparison.json`` has ``goal_met: false``). Absent files leave "—" and a ``missing``
    entry; nothing raises."""
    run = read_run(data_path)
    rows, alarms = [], []
    alarms += goal_alarm(run["comparison"])
    a = real_sky_alarm(run["crossval"])
    if a:
        alarms.append(a)
    nets = _networks_run(run)
    for net in nets:
        tag = "" if net == "vnet" else " (paper set-up)"
        for target, sym in (("phi", "φ"), ("delta", "δ")):
            name = f"the {sym} V-Net{tag}"
            h = run["histories"].get(target if net == "vnet" else f"{net}/{target}")
            if h is not None:
                a = learning_alarm(h, name)
                if a:
                    alarms.append(a)
            st = _get(run["methods"].get(f"{net}_{target}"), target, "regions", "survey")
            a = collapse_alarm(st, name)
            if a:
                alarms.append(a)
    metrics = [m for net in nets for m in network_metrics(run, net)]
    bm = _bulk_metric(run)
    if bm is not None:
        metrics.insert(2, bm)
    for m in metrics:
        row, al = _metric_row(run, m)
        rows.append(row)
        alarms += al
    if bm is None:
        rows.insert(2, {"key": "bulk_flow", "quantity": "bulk-flow error ‖B_pred − B_true‖ (km/s)",
                        "paper": _paper_text("bulk_flow"), "paper_key": "bulk_flow", "vnet": "—",
                        "vnet_value": None, "vnet_method": "vnet_phi", "classical": "—", "classical_value": None,
                        "classical_method": None, "winner": None, "interval68": None,
                        "verdict": "not evaluated in this run", "basis": None})
    if run["attractor"] is not None:
        r, al = _ga_rows(run["attractor"])
        rows += r
        alarms += al
    else:
        for key, q, pk in (("ga_position", "Great Attractor (l, b), cz — density peak", "ga_l"),
                           ("ga_fraction", "Great Attractor found (fraction of survey realizations)", "ga_fraction")):
            paper = _paper_text(pk) if pk == "ga_fraction" else _paper_ga_position()
            rows.append({"key": key, "quantity": q, "paper": paper, "paper_key": pk, "vnet": "—",
                         "vnet_value": None, "vnet_method": "vnet", "classical": "—", "classical_value": None,
                         "classical_method": None, "winner": None, "interval68": None,
                         "verdict": "chapter 06 not run", "basis": None})
    rows.append(_real_sky_row(run["crossval"]))
    comp = run["comparison"] if isinstance(run["comparison"], Mapping) else {}
    return {"profile": profile_name, "data_path": run["data_path"], "rows": rows, "alarms": alarms,
            "missing": run["missing"], "errors": run["errors"],
            "n_mocks": _num(comp.get("n_mocks")), "n_boxes": _num(comp.get("n_boxes"))}


def _cell(text) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def scorecard_markdown(card: dict) -> str:
    """The scorecard as Markdown for the landing page: a heading, the alarm lines (⚠)
    first, the table (quantity | paper | V-Net | best classical | verdict), then what is
    missing and where the numbers come from."""
    prof = card.get("profile")
    lines = ["## This run at a glance", ""]
    alarms = card.get("alarms") or []
    if alarms:
        for a in alarms:
            lines += [f"**⚠ {a[0].upper() + a[1:]}{'' if a.endswith('.') else '.'}**", ""]
    elif card.get("missing") or card.get("errors"):
        lines += ["No alarm from the files present; what is missing (listed below the table) is unchecked.", ""]
    else:
        lines += ["No alarm: the networks' validation losses fell, and on every metric below the V-Net is "
                  "at least level with the best classical method.", ""]
    lines += [f"This run{f' (profile **{prof}**)' if prof else ''} against the paper. The paper's numbers "
              "are quoted at its scale (128³ voxels, 200 epochs), from `zoa_lib.analysis.literature.PAPER_NUMBERS`; "
              "this run's are read from the files it wrote when the book was built. One block of rows per "
              "network, labelled with what it reads: the profile's V-Net and, where it differs, the paper's "
              "set-up (the two survey channels only), beside which the paper's r(φ) stands. *Best classical* "
              "is the best on that metric, on the same held-out mocks, of the Wiener filter, the "
              "Malmquist-calibrated Wiener filter and the joint Wiener filter of counts and velocities "
              "(POTENT, scored against a smoother truth, is left out); a winner needs a 68 % paired-bootstrap "
              "interval over parent boxes that excludes zero, when the run has one."
              + (f" The held-out mocks: {card['n_mocks']:.0f} from {card['n_boxes']:.0f} test parent boxes, the "
                 "independent units of every interval." if card.get("n_mocks") and card.get("n_boxes") else ""), "",
              "| quantity | paper | V-Net (this run) | best classical (this run) | verdict |",
              "|---|---|---|---|---|"]
    for r in card.get("rows", []):
        lines.append(f"| {_cell(r['quantity'])} | {_cell(r['paper'])} | {_cell(r['vnet'])} | "
                     f"{_cell(r['classical'])} | {_cell(r['verdict'])} |")
    lines.append("")
    missing = card.get("missing") or []
    if missing:
        lines += ["**Not available in this run** (the table shows —): "
                  + "; ".join(f"`{p}` (written by {who})" for p, who in missing) + ".", ""]
    for e in card.get("errors") or []:
        lines += [f"**Unreadable:** {e}", ""]
    lines += [f"Files read from `{card.get('data_path')}`. The Great Attractor rows come from the mock local "
              "universe of chapter 06 (structures at their literature positions), not from CF4; the paper's "
              "are from CF4. The real-sky row is the cross-validation of chapter 07 on the real catalogue "
              "(held-out galaxies' measured radial velocities against each method's prediction).", ""]
    return "\n".join(lines)


def write_scorecard(root, profile) -> dict:
    """Compute the scorecard of ``profile``'s run (:func:`zoa_lib.book.scorecard.scorecard` on
    ``profile.data_path``) and write ``<root>/book/_generated/scorecard.json`` and
    ``scorecard.md`` (the landing page's first section); return the scorecard. Files the
    run has not written yet are listed as missing on the page, never an error."""
    from zoa_lib.book.scorecard import scorecard, scorecard_markdown

    data = Path(profile.data_path)
    card = scorecard(data, profile.name)
    for base in (Path(root), REPO_ROOT):
        try:
            card["data_path"] = str(data.resolve().relative_to(Path(base).resolve()))
            break
        except ValueError:
            continue
    gen = Path(root) / "book" / "_generated"
    write_json_atomic(gen / "scorecard.json", card)
    write_text_atomic(gen / "scorecard.md", scorecard_markdown(card))
    return card


def refresh_scorecard(root=REPO_ROOT) -> dict | None:
    """Rewrite the scorecard for the profile and overrides recorded in
    ``<root>/book/_generated/run-info.json`` (None when there is no run-info)."""
    from zoa_lib.config import load_profile

    path = Path(root) / "book" / "_generated" / "run-info.json"
    if not path.exists():
        return None
    info = json.loads(path.read_text())
    overrides = dict(info.get("overrides") or {})
    if info.get("data_tag"):
        overrides.setdefault("data_tag", info["data_tag"])
    return write_scorecard(root, load_profile(info.get("profile_arg") or info["profile"], overrides))
