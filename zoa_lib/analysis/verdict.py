"""The verdict of ``zoa evaluate``: for each headline metric, the best classical method and the
network against it, with bootstrap intervals over parent boxes (:func:`comparison`).
"""
from __future__ import annotations

import math
from collections.abc import Mapping

import numpy as np

from zoa_lib.analysis import metrics
from zoa_lib.analysis.metrics import REGIONS
from zoa_lib.io.provenance import provenance
from zoa_lib.methods import networks
from zoa_lib.methods.registry import BASELINES, LABELS

#: Bootstrap draws for every interval of the verdict.
N_BOOTSTRAP = 2000
#: Central probability of the verdict's intervals.
INTERVAL_LEVEL = 0.68


def json_get(d, *keys):
    """``d[k0][k1]…`` of nested JSON mappings (a method's or the comparison's JSON), or None
    where a key is missing or a level is not a mapping."""
    for k in keys:
        if not isinstance(d, Mapping) or k not in d:
            return None
        d = d[k]
    return d


def _rows():
    """(key, field, description, path in a method's JSON, better, path that decides "best")."""
    rows = []
    for f, name in (("delta", "δ"), ("phi", "φ")):
        for reg in REGIONS:
            rows.append((f"r_mock_{f}_{reg}", f, f"Pearson r({name}) per mock, mean over mocks, {reg}",
                         (f, "regions", reg, "pearson_r_mock_mean"), "higher", None))
        for reg in REGIONS:
            rows.append((f"r_{f}_{reg}", f, f"Pearson r({name}) pooled over mocks, {reg}",
                         (f, "regions", reg, "pearson_r"), "higher", (f, "regions", reg, "pearson_r_mock_mean")))
        for reg in REGIONS:
            rows.append((f"mse_demeaned_{f}_{reg}", f, f"MSE({name}) mean removed per mock, {reg}",
                         (f, "regions", reg, "mse_demeaned"), "lower", None))
        for reg in REGIONS:
            rows.append((f"mse_{f}_{reg}", f, f"MSE({name}), {reg}", (f, "regions", reg, "mse"), "lower",
                         (f, "regions", reg, "mse_demeaned") if f == "phi" else None))
        rows.append((f"slope_{f}_survey", f, f"slope {name}_pred vs {name}_true, survey",
                     (f, "regions", "survey", "slope"), "one", None))
    for reg in REGIONS:
        rows.append((f"rms_v_{reg}", "velocity", f"3D velocity residual rms (km/s), {reg}",
                     ("velocity", "regions", reg, "residual_rms", "3d"), "lower", None))
    for reg in REGIONS:
        rows.append((f"r_mock_v3d_{reg}", "velocity", f"Pearson r(3D v) per mock, mean over mocks, {reg}",
                     ("velocity", "regions", reg, "vector", "pearson_r_mock_mean"), "higher", None))
    for reg in REGIONS:
        rows.append((f"r_mock_vr_{reg}", "velocity", f"Pearson r(v_r) per mock, mean over mocks, {reg}",
                     ("velocity", "regions", reg, "radial", "pearson_r_mock_mean"), "higher", None))
    for reg in REGIONS:
        rows.append((f"r_vr_{reg}", "velocity", f"Pearson r(v_r) pooled over mocks, {reg}",
                     ("velocity", "regions", reg, "radial", "pearson_r"), "higher",
                     ("velocity", "regions", reg, "radial", "pearson_r_mock_mean")))
    for c in ("x", "y", "z"):
        rows.append((f"r_v{c}_survey", "velocity", f"Pearson r(v_SG{c.upper()}) per mock, mean over mocks, survey",
                     ("velocity", "regions", "survey", c, "pearson_r_mock_mean"), "higher", None))
    return rows


def _best(values: dict, better: str):
    ok = {m: v for m, v in values.items() if v is not None and math.isfinite(v)}
    if not ok:
        return None
    if better == "higher":
        return max(ok, key=ok.get)
    if better == "lower":
        return min(ok, key=ok.get)
    return min(ok, key=lambda m: abs(ok[m] - 1.0))


#: The verdict's headline metrics: (key, field, region, human text, path to the per-mock
#: values in a method's JSON, better, V-Net method). Velocity rows are judged for ``vnet_phi``
#: (v = −∇φ, counted for ``goal_met``) and shown for ``vnet_delta`` (v from δ, not counted).
#: :func:`verdict_rows` adds the bulk-flow error of ``vnet_phi`` at R ≈ :data:`BULK_FLOW_RADIUS`
#: (key ``bulk_flow_error_<R>``), shown and not counted.
VERDICT_METRICS = tuple(
    [(f"r_phi_{reg}", "phi", reg, f"Pearson r(φ) per mock, {reg}",
      ("phi", "regions", reg, "pearson_r_per_mock"), "higher", "vnet_phi") for reg in ("survey", "zoa")]
    + [(f"mse_demeaned_phi_{reg}", "phi", reg, f"MSE(φ), each mock's mean removed, {reg}",
        ("phi", "regions", reg, "mse_demeaned_per_mock"), "lower", "vnet_phi") for reg in ("survey", "zoa")]
    + [(f"r_delta_{reg}", "delta", reg, f"Pearson r(δ) per mock, {reg}",
        ("delta", "regions", reg, "pearson_r_per_mock"), "higher", "vnet_delta") for reg in ("survey", "zoa")]
    + [(f"{key}_{reg}" + ("" if vm == "vnet_phi" else "_from_delta"), "velocity", reg,
        f"{text}, {reg}" + ("" if vm == "vnet_phi" else " (V-Net δ velocities)"),
        ("velocity", "regions", reg) + path, better, vm)
       for vm in ("vnet_phi", "vnet_delta")
       for key, text, path, better in (
           ("r_vr", "Pearson r(v_r) per mock", ("radial", "pearson_r_per_mock"), "higher"),
           ("r_v3d", "Pearson r(3D v) per mock", ("vector", "pearson_r_per_mock"), "higher"),
           ("rms_v", "3D velocity residual rms per mock (km/s)", ("residual_rms", "3d_per_mock"), "lower"))
       for reg in ("survey", "zoa")])


#: Radius (Mpc/h) of the verdict's bulk-flow row (the nearest radius evaluated).
BULK_FLOW_RADIUS = 50.0


def _path_values(doc, path):
    """Per-mock values at ``path`` of a method's JSON; a last element ("per_mock_error", j)
    gives |B_pred − B_true| of each mock at radius index j of a ``bulk_flow`` entry."""
    if path and isinstance(path[-1], tuple):
        bf = json_get(doc, *path[:-1])
        j = path[-1][1]
        try:
            pred = np.asarray(bf["pred"], dtype=float)[:, j]
            true = np.asarray(bf["true"], dtype=float)[:, j]
        except (TypeError, KeyError, IndexError, ValueError):
            return None
        return [float(x) for x in np.linalg.norm(pred - true, axis=-1)]
    return json_get(doc, *path)


def _mean(values):
    a = np.array([np.nan if v is None else v for v in (values or [])], dtype=float)
    return float(np.nanmean(a)) if np.any(np.isfinite(a)) else None


#: The structure statistic's rows in the verdict (shown with intervals, not counted for the
#: goal): (per-mock key of :func:`zoa_lib.analysis.structure_stats.structure_statistics`, text, better).
STRUCTURE_METRICS = tuple(
    (f"{kind}_{reg}_{stat}", f"{kinds}: {text}, {where}", better)
    for kind, kinds in (("cluster", "clusters"), ("void", "voids"))
    for reg, where in (("zoa", "inside the ZOA"), ("outside_zoa", "outside the ZOA"))
    for stat, text, better in (("fraction", "fraction of the true peak δ recovered (difference and interval: "
                                            "of |1 − fraction|)", "one"),
                               ("detection", "detection rate", "higher"),
                               ("offset", "position offset (Mpc/h)", "lower")))


def _network_metrics(per_method: dict, net: str) -> list[tuple]:
    """:data:`VERDICT_METRICS` (with the bulk-flow row) and the structure rows for network
    ``net``, its methods and keys filled in (keys of ``vnet_paper`` rows end in ``_vnet_paper``)."""
    suffix = "" if net == "vnet" else f"_{net}"
    out = []
    for key, field, region, text, path, better, vm in VERDICT_METRICS:
        out.append((key + suffix, field, region, text, path, better, net + vm[len("vnet"):]))
    phi_m = f"{net}_phi"
    radii = json_get(per_method.get(phi_m), "velocity", "bulk_flow", "radii")
    if radii:  # shown, not counted: the bulk-flow error at the radius nearest BULK_FLOW_RADIUS
        j = int(np.argmin(np.abs(np.asarray(radii, float) - BULK_FLOW_RADIUS)))
        out.append((f"bulk_flow_error_{radii[j]:g}{suffix}", "velocity", f"R = {radii[j]:g} Mpc/h",
                    f"bulk-flow error ‖ΔB‖ per mock (km/s), R = {radii[j]:g} Mpc/h",
                    ("velocity", "bulk_flow", ("per_mock_error", j)), "lower", phi_m))
    for key, text, better in STRUCTURE_METRICS:
        out.append((f"structure_{key}{suffix}", "structures", key.split("_", 1)[1].rsplit("_", 1)[0], text,
                    ("structures", "per_mock", key), better, f"{net}_delta"))
    return out


def _counted(key: str, field: str, vm: str) -> bool:
    """Whether a verdict row counts for the goal: not the velocities of the δ network, not the
    bulk flow, not the structure statistic (shown with their intervals)."""
    return not ((field == "velocity" and vm.endswith("_delta")) or key.startswith(("bulk", "structure")))


def verdict_rows(per_method: dict, boxes, seed: int = 0, n_boot: int = N_BOOTSTRAP,
                 level: float = INTERVAL_LEVEL) -> list[dict]:
    """The verdict (module docstring): for each network in ``per_method`` (method → its JSON
    dict) and each of its metrics (:func:`_network_metrics`), the network against the best
    classical method on that metric among :func:`comparable_baselines`, with the
    paired-bootstrap interval over the parent ``boxes`` (one per mock). Rows carry the
    ``network``. Deterministic for a given ``seed``."""
    from zoa_lib.universe.rng import generator

    boxes = np.asarray(boxes)
    rows = []
    bases = comparable_baselines(per_method)
    nets = [net for net in networks.NETWORKS if any(f"{net}_{t}" in per_method for t in networks.TARGETS)]
    for n_i, net in enumerate(nets):
        for i, (key, field, region, text, path, better, vm) in enumerate(_network_metrics(per_method, net)):
            if vm not in per_method or not bases:
                continue
            a = _path_values(per_method[vm], path)
            cand = {b: _path_values(per_method[b], path) for b in bases}
            cand = {b: v for b, v in cand.items() if v is not None and _mean(v) is not None}
            if a is None or _mean(a) is None or not cand:
                continue
            means = {b: _mean(v) for b, v in cand.items()}
            best = _best(means, better)
            a_, b_ = a, cand[best]
            if better == "one":  # closest to 1: compare the distances |x − 1|, lower is better
                a_ = [None if x is None else abs(x - 1.0) for x in a]
                b_ = [None if x is None else abs(x - 1.0) for x in cand[best]]
            higher = better == "higher"
            bs = metrics.paired_bootstrap(a_, b_, boxes, n_boot=n_boot, level=level,
                                          seed=generator(seed, "evaluation", 7_000_000 + 1000 * n_i + i))
            lo, hi = bs["interval"]
            if not (math.isfinite(lo) and math.isfinite(hi)):
                winner = "undetermined"
            elif lo > 0 or hi < 0:
                vnet_ahead = (lo > 0) == higher
                winner = "vnet" if vnet_ahead else best
            else:
                winner = "tie"
            rows.append({"key": key, "field": field, "region": region, "metric": text, "better": better,
                         "network": net, "vnet_method": vm, "vnet": _mean(a), "baseline": best,
                         "baseline_value": means[best], "baselines": means,
                         "difference": bs["difference"],
                         "difference_of": "value" if better != "one" else "|x − 1| (distance from a perfect 1)",
                         "interval68": [lo, hi], "winner": winner,
                         "counts_for_goal": _counted(key, field, vm),
                         "n_mocks": bs["n_mocks"], "n_boxes": bs["n_groups"]})
    return rows


def goal_summary(verdict: list[dict], labels: dict | None = None, network: str = "vnet") -> tuple[bool, str]:
    """(goal_met, one paragraph) for ``network``'s rows of the verdict: it meets the goal
    only if it wins or ties on every counted row; losses are named first."""
    labels = labels or LABELS
    name = "The V-Net" if network == "vnet" else f"The V-Net of {networks.NETWORKS[network]}"
    rows = [r for r in verdict if r["counts_for_goal"] and r.get("network", "vnet") == network]
    if not rows:
        return False, ("No verdict: nothing to compare (the network's predictions or the classical methods "
                       "did not run).")
    if any(r["winner"] == "undetermined" for r in rows):
        nb = max(r["n_boxes"] for r in rows)
        return False, (f"{name}: undetermined: the {max(r['n_mocks'] for r in rows)} evaluation mocks come from "
                       f"{nb} parent box{'es' if nb != 1 else ''}, and a bootstrap over parent boxes needs at "
                       f"least two, so no difference below carries an interval and no winner is named. The "
                       f"goal is not shown to be met.")
    lost = [r for r in rows if r["winner"] not in ("vnet", "tie")]
    won = [r for r in rows if r["winner"] == "vnet"]
    tied = [r for r in rows if r["winner"] == "tie"]
    parts = []
    if lost:
        parts.append(f"{name} loses to the best classical method on {len(lost)} of {len(rows)} headline "
                     f"metrics: " + "; ".join(f"{r['metric']} (to {labels.get(r['baseline'], r['baseline'])})"
                                               for r in lost) + ".")
    parts.append(f"It wins on {len(won)} and ties on {len(tied)} (68 % interval of the paired difference over "
                 f"parent boxes includes zero)." if lost else
                 f"{name} wins on {len(won)} of {len(rows)} headline metrics and ties on {len(tied)} "
                 f"(68 % interval over parent boxes includes zero); it loses on none.")
    met = not lost
    parts.append("Goal met: no loss against the best classical method." if met else
                 "Goal NOT met: it must win or tie on every metric against the best classical method.")
    return met, " ".join(parts)


def comparison(per_method: dict, profile, split: str = "test") -> dict:
    """The side-by-side comparison of methods' metrics and the verdict (a JSON-able dict)."""
    methods = list(per_method)
    comparable = comparable_baselines(per_method)
    separate = [m for m in BASELINES if m in per_method and m not in comparable]
    same = [m for m in methods if m not in separate]  # "best" among methods scored against one truth
    rows = []
    for key, field, desc, path, better, best_path in _rows():
        values = {m: json_get(per_method[m], *path) for m in methods}
        if all(v is None for v in values.values()):
            continue
        judge = values
        if best_path is not None:
            by = {m: json_get(per_method[m], *best_path) for m in methods}
            if any(v is not None for v in by.values()):
                judge = by
        rows.append({"key": key, "field": field, "metric": desc, "better": better, "values": values,
                     "best": _best({m: judge[m] for m in same}, better),
                     "best_by": (best_path[-1] if judge is not values else path[-1])})
    radii = None
    for m in methods:
        bf = json_get(per_method[m], "velocity", "bulk_flow")
        if bf:
            radii = bf["radii"]
    if radii:
        for i, R in enumerate(radii):
            values = {m: (json_get(per_method[m], "velocity", "bulk_flow", "error_mean") or [None] * len(radii))[i]
                      for m in methods}
            rows.append({"key": f"bulk_flow_error_{R:g}", "field": "velocity",
                         "metric": f"bulk-flow error ‖ΔB‖ (km/s), R = {R:g} Mpc/h", "better": "lower",
                         "values": values, "best": _best({m: values[m] for m in same}, "lower"),
                         "best_by": "error_mean"})
    first = next(iter(per_method.values()), {})
    boxes = first.get("boxes") or []
    verdict = verdict_rows(per_method, boxes, seed=profile.seed)
    nets = {}
    for net in networks.NETWORKS:
        if any(f"{net}_{t}" in per_method for t in networks.TARGETS):
            met_n, summary_n = goal_summary(verdict, network=net)
            nets[net] = {"goal_met": met_n, "goal_summary": summary_n, "reads": networks.describe(profile, net)}
    main = nets.get("vnet", {"goal_met": False, "goal_summary": goal_summary(verdict)[1]})
    return metrics.to_jsonable({
        "profile": profile.name, "split": split, "n_mocks": first.get("n_mocks", 0), "methods": methods,
        "labels": {m: LABELS[m] for m in methods}, "samples": first.get("samples", []), "boxes": boxes,
        "n_boxes": len(set(boxes)), "rows": rows, "verdict": verdict,
        "baselines": comparable,
        "separate": separate,
        "bootstrap": {"unit": "parent box", "n_boot": N_BOOTSTRAP, "level": INTERVAL_LEVEL,
                      "statistic": "mean over mocks of the per-mock difference V-Net − baseline",
                      "seed": profile.seed},
        "goal_met": main["goal_met"], "goal_summary": main["goal_summary"], "networks": nets,
        "goal_definition": "on every headline metric, the V-Net wins or ties (68 % interval over parent boxes "
                "includes zero) against the best classical method on that metric, among the classical methods "
                "scored against the same truth",
        "zoa_b": profile.survey.zoa_b, "r_max": profile.survey.r_max,
        "potent_smoothing": profile.evaluation.potent_smoothing, "smoothing": profile.box.smoothing,
        "provenance": provenance(profile),
    })






def comparable_baselines(per_method: dict) -> list[str]:
    """The classical methods of ``per_method`` (method → its JSON) scored against the same
    truth as the networks (the targets smoothed with ``box.smoothing``): every one but a POTENT
    scored against the truth smoothed further (its JSON's ``truth_smoothing.extra`` > 0), which
    cannot enter a paired comparison with the networks and stands in its own table."""
    out = []
    for m in BASELINES:
        if m not in per_method:
            continue
        extra = json_get(per_method[m], "truth_smoothing", "extra")
        if extra is not None and extra > 0:
            continue
        out.append(m)
    return out
