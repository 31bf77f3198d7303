"""The verdict of ``zoa evaluate`` as a reader sees it: tables, glued numbers and markdown.
"""
from __future__ import annotations

import math

from zoa_lib.analysis.verdict import BULK_FLOW_RADIUS, VERDICT_METRICS, json_get
from zoa_lib.methods import networks
from zoa_lib.methods.registry import LABELS


def _fmt(v):
    if v is None or (isinstance(v, float) and not math.isfinite(v)):
        return "—"
    a = abs(v)
    if a != 0 and (a >= 1e5 or a < 1e-3):
        return f"{v:.3e}"
    if a >= 100:
        return f"{v:.1f}"
    return f"{v:.3f}"


def _fmt_interval(iv):
    lo, hi = (iv or [None, None])[:2]
    if lo is None or hi is None:
        return "—"
    return f"[{_fmt(lo)}, {_fmt(hi)}]"


def winner_label(row: dict, labels: dict | None = None) -> str:
    """The verdict row's winner in words."""
    labels = labels or LABELS
    w = row["winner"]
    if w == "vnet":
        return labels.get(row["vnet_method"], "V-Net")
    if w in ("tie", "undetermined"):
        return w
    return labels.get(w, w)


def verdict_table(comp: dict, network: str | None = None) -> list[dict]:
    """The verdict as display rows (strings): metric, V-Net, best classical method, its value,
    difference, 68 % interval, winner; per network (``network``: only that one's rows), losses
    first, then ties/undetermined, then wins; rows not counted for the goal last."""
    labels = comp["labels"]
    order = {"tie": 1, "undetermined": 1, "vnet": 2}
    nets = list(networks.NETWORKS)
    out = []
    rows = [r for r in comp.get("verdict", []) if network is None or r.get("network", "vnet") == network]
    for r in sorted(rows, key=lambda r: (nets.index(r.get("network", "vnet")), not r["counts_for_goal"],
                                         order.get(r["winner"], 0))):
        out.append({"metric": r["metric"], "better": r["better"],
                    "V-Net": f"{_fmt(r['vnet'])} ({labels.get(r['vnet_method'], r['vnet_method'])})",
                    "best classical": labels.get(r["baseline"], r["baseline"]),
                    "classical": _fmt(r["baseline_value"]),
                    "V-Net − classical": _fmt(r["difference"]),
                    "68 % interval": _fmt_interval(r["interval68"]),
                    "winner": winner_label(r, labels) + ("" if r["counts_for_goal"] else " (not counted)")})
    return out


def verdict_glue(comp: dict) -> dict:
    """Flat name → value pairs of the verdict for a chapter's prose (NaN / "not available" for
    rows that did not run): per :data:`VERDICT_METRICS` key, ``v_<key>_vnet``, ``_base``
    (best classical value), ``_baseline`` (its label), ``_diff``, ``_lo``, ``_hi`` and
    ``_winner`` (in words), the same for the bulk-flow row as ``v_bulk_flow_*`` with its
    radius ``bulk_flow_R``, and for the paper set-up's rows with keys ending in
    ``_vnet_paper``; and ``goal_summary``, ``goal_met_text``, ``n_verdict``, ``n_lost``,
    ``n_won``, ``n_tied``, ``n_boxes`` (the profile's V-Net), ``paper_goal_summary``."""
    labels = comp.get("labels", LABELS)
    rows = {r["key"]: r for r in comp.get("verdict", [])}
    nan = float("nan")
    out = {}
    bulk = next((k for k in rows if k.startswith("bulk_flow_error_") and not k.endswith("_vnet_paper")), None)
    out["bulk_flow_R"] = float(bulk.rsplit("_", 1)[1]) if bulk else BULK_FLOW_RADIUS
    for suffix in ("", "_vnet_paper"):
        for key in [k for k, *_ in VERDICT_METRICS] + ["bulk_flow"]:
            r = rows.get((bulk + suffix if bulk else None) if key == "bulk_flow" else key + suffix)
            p = f"v_{key}{suffix}"
            if r is None:
                out.update({f"{p}_vnet": nan, f"{p}_base": nan, f"{p}_diff": nan, f"{p}_lo": nan, f"{p}_hi": nan,
                            f"{p}_baseline": "not available", f"{p}_winner": "not available"})
                continue
            lo, hi = (nan if x is None else x for x in r["interval68"])
            out.update({f"{p}_vnet": r["vnet"], f"{p}_base": r["baseline_value"], f"{p}_diff": r["difference"],
                        f"{p}_lo": lo, f"{p}_hi": hi, f"{p}_baseline": labels.get(r["baseline"], r["baseline"]),
                        f"{p}_winner": winner_label(r, labels)})
    counted = [r for r in comp.get("verdict", []) if r["counts_for_goal"] and r.get("network", "vnet") == "vnet"]
    out.update(goal_summary=comp.get("goal_summary", ""), n_verdict=len(counted),
               n_lost=sum(r["winner"] not in ("vnet", "tie", "undetermined") for r in counted),
               n_won=sum(r["winner"] == "vnet" for r in counted),
               n_tied=sum(r["winner"] == "tie" for r in counted), n_boxes=comp.get("n_boxes", 0),
               goal_met_text=("meets" if comp.get("goal_met") else "cannot be judged on"
                              if not counted or any(r["winner"] == "undetermined" for r in counted)
                              else "does not meet"),
               paper_goal_summary=json_get(comp, "networks", "vnet_paper", "goal_summary")
               or "The paper's set-up was not trained or not evaluated in this run.")
    return out


def comparison_markdown(comp: dict) -> str:
    """The comparison as a Markdown page: the verdict (losses first), then the table (with a
    "best" column)."""
    methods = comp["methods"]
    labels = comp["labels"]
    notes = {"vnet_delta": "V-Net δ: v and φ from the predicted δ in linear theory (zero-padded cube).",
             "vnet_phi": "V-Net φ: v = −(2f/3H0Ωm)∇φ, δ = ∇²φ/(1.5 Ωm H0²) (finite differences).",
             "wiener": "Wiener filter: linear minimum-variance estimate from the gridded radial velocities "
                       "of every occupied voxel (ZOA included), noise = survey errors ⊕ small-scale "
                       "dispersion σ_nl measured on training mocks.",
             "vnet_paper_delta": "V-Net δ (paper set-up): the same network trained on the two survey channels "
                                 "only (N_gal, V_pec), as the paper does.",
             "vnet_paper_phi": "V-Net φ (paper set-up): likewise, v and δ from φ as for V-Net φ.",
             "wiener_cal": "Malmquist-calibrated: the same filter after subtracting the mean radial-velocity "
                           "bias b(r) of the gridded data measured on training mocks.",
             "wiener_joint": "Joint Wiener filter: the calibrated velocities and the galaxy counts (overdensity "
                             "about the selection function n̄, linear bias and shot noise fitted on training "
                             "mocks) in one linear minimum-variance estimate.",
             "potent": f"POTENT: smoothed radial velocities integrated along lines of sight; scored against the "
                       f"truth smoothed to its {comp.get('potent_smoothing', float('nan')):g} Mpc/h, so it is not "
                       f"a candidate for best classical (its column is not comparable with the others)."}
    n_boxes = comp.get("n_boxes", 0)
    lines = [f"# Reconstruction comparison — profile `{comp['profile']}`, split `{comp['split']}`", "",
             f"{comp['n_mocks']} held-out mocks from {n_boxes} parent box{'es' if n_boxes != 1 else ''}.", ""]
    if comp.get("verdict"):
        nets = comp.get("networks") or {"vnet": {"goal_summary": comp["goal_summary"]}}
        for net, info in nets.items():
            name = "the V-Net" if net == "vnet" else "the paper's set-up"
            lines += [f"## Verdict: {name} ({info.get('reads', '')}) against the best classical method per metric",
                      "", info["goal_summary"], "",
                      "Difference = mean over mocks of (V-Net − best classical), paired on the same mocks; 68 % "
                      "interval from a bootstrap over parent boxes; a winner only where it excludes zero. φ is "
                      "scored with each mock's mean removed (velocities do not measure its constant). Best "
                      "classical among " + ", ".join(labels.get(m, m) for m in comp.get("baselines", []))
                      + " (the methods scored against the same truth).", "",
                      "| metric | better | V-Net | best classical | classical | V-Net − classical | 68 % interval | winner |",
                      "|---|---|---:|---|---:|---:|---|---|"]
            for t in verdict_table(comp, net):
                lines.append("| " + " | ".join(str(t[k]).replace("|", "\\|") for k in
                                               ("metric", "better", "V-Net", "best classical", "classical",
                                                "V-Net − classical", "68 % interval", "winner")) + " |")
            lines.append("")
    else:
        lines += [comp.get("goal_summary", ""), ""]
    lines += ["## All metrics", "",
              f"Regions: *cube* = every voxel; *survey* = r ≤ {comp['r_max']:g} Mpc/h; *zoa* = survey voxels "
              f"with |b| < {comp['zoa_b']:g}°; *outside_zoa* = the other survey voxels. "
              + " ".join(notes[m] for m in methods)
              + " 'Pooled' Pearson r pools every voxel of every mock (so a per-mock offset counts); 'per mock' "
              "averages each mock's r. Best: highest r, lowest error, slope closest to 1 — judged on the per-mock "
              "r for pooled r rows and on the mean-removed MSE for MSE(φ) rows.", "",
              "| metric | " + " | ".join(labels[m] for m in methods) + " | best |",
              "|---|" + "---:|" * len(methods) + "---|"]
    for row in comp["rows"]:
        cells = [(f"**{_fmt(row['values'][m])}**" if m == row["best"] else _fmt(row["values"][m]))
                 for m in methods]
        metric = row["metric"].replace("|", "\\|")
        lines.append(f"| {metric} | " + " | ".join(cells) + f" | {labels.get(row['best'], '—')} |")
    lines.append("")
    return "\n".join(lines)
