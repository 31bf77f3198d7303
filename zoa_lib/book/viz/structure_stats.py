"""structure_stats: part of :mod:`zoa_lib.book.viz` (see its docstring for the conventions).

The figure of :mod:`zoa_lib.analysis.structure_stats`: each true cluster and void of every test mock,
its true peak δ against the δ a method recovers there, inside and outside the Zone of
Avoidance. The computation (and :func:`zoa_lib.analysis.structure_stats.summary_rows`, the table to
show next to it) lives in :mod:`zoa_lib.analysis.structure_stats`.
"""
from __future__ import annotations

from typing import Mapping

import numpy as np
from matplotlib.figure import Figure

from zoa_lib.book.viz.style import OKABE_ITO, VizError, new_figure, style

KIND_TITLES = {"cluster": "clusters", "void": "voids"}


def _column(st, name, dtype=float):
    col = st.get("structures", {}).get(name, [])
    if dtype is float:
        return np.array([np.nan if v is None else v for v in col], dtype=float)
    return np.asarray(col, dtype=dtype)


def _binned_median(x, y, bins):
    """Median x and y in ``bins`` bins of equal count of x (bins with < 3 points left out)."""
    ok = np.isfinite(x) & np.isfinite(y)
    x, y = x[ok], y[ok]
    if x.size < 6:
        return np.array([]), np.array([])
    order = np.argsort(x)
    parts = [p for p in np.array_split(order, min(int(bins), x.size // 3)) if p.size >= 3]
    return np.array([np.median(x[p]) for p in parts]), np.array([np.median(y[p]) for p in parts])


def _fmt(v, pattern):
    return "–" if v is None or not np.isfinite(v) else pattern.format(v)


def figure_structure_statistics(stats_by_method: Mapping[str, dict], labels: Mapping[str, str] | None = None, *,
                                kinds=("cluster", "void"), regions=("zoa", "outside_zoa"), bins: int = 6) -> Figure:
    """Recovered against true peak δ of the structures of every mock: one row per kind
    (clusters, voids), one column per region (inside the ZOA, outside it); one colour per
    method, filled markers for the structures the method detects, open ones for those it
    misses, the median in bins of true δ as a line, the 1:1 line dashed. Each legend entry
    gives the method's mean over mocks of the recovered fraction ⟨f⟩ and the detection rate.

    ``stats_by_method``: method → :func:`zoa_lib.analysis.structure_stats.structure_statistics`
    result (its ``structures`` columns and ``mean``); ``labels``: method → legend label.
    Returns the Figure (len(kinds) × len(regions) axes)."""
    if not stats_by_method:
        raise VizError("figure_structure_statistics: no method given")
    labels = dict(labels or {})
    first = next(iter(stats_by_method.values()))
    settings = first.get("settings", {}) if isinstance(first, Mapping) else {}
    zoa_b = settings.get("zoa_b")
    r_match = settings.get("match_radius_mpc")
    titles = {"zoa": "inside the ZOA" + (f" (|b| < {zoa_b:g}°)" if zoa_b is not None else ""),
              "outside_zoa": "outside the ZOA", "survey": "survey sphere"}
    nr, nc = len(kinds), len(regions)
    fig = new_figure(figsize=(4.4 * nc, 3.9 * nr))
    with style():
        axes = fig.subplots(nr, nc, squeeze=False)
        for i, kind in enumerate(kinds):
            for j, region in enumerate(regions):
                ax = axes[i, j]
                lo, hi, drawn = np.inf, -np.inf, 0
                for c, (m, st) in enumerate(stats_by_method.items()):
                    color = OKABE_ITO[c % len(OKABE_ITO)]
                    k = _column(st, "kind", object)
                    z = _column(st, "in_zoa", bool)
                    if k.size == 0:
                        continue
                    sel = (k == kind) & {"zoa": z, "outside_zoa": ~z, "survey": np.ones_like(z)}[region]
                    x = _column(st, "true")[sel]
                    y = _column(st, "recovered")[sel]
                    det = _column(st, "detected", bool)[sel]
                    mean = st.get("mean", {})
                    lab = (f"{labels.get(m, m)}: ⟨f⟩ = {_fmt(mean.get(f'{kind}_{region}_fraction'), '{:.2f}')}, "
                           f"det. {_fmt(mean.get(f'{kind}_{region}_detection'), '{:.0%}')}")
                    ax.scatter(x[det], y[det], s=9, color=color, alpha=0.45, lw=0, zorder=2)
                    ax.scatter(x[~det], y[~det], s=11, facecolors="none", edgecolors=color, alpha=0.55, lw=0.7,
                               zorder=2)
                    bx, by = _binned_median(x, y, bins)
                    ax.plot(bx, by, "-o", color=color, ms=3.5, lw=1.6, zorder=3, label=lab)
                    if not by.size:  # the legend entry all the same
                        ax.plot([], [], "-o", color=color, ms=3.5, label=lab)
                    both = np.concatenate([x, y])
                    both = both[np.isfinite(both)]
                    if both.size:
                        lo, hi, drawn = min(lo, both.min()), max(hi, both.max()), drawn + x.size
                if drawn:
                    pad = 0.05 * (hi - lo if hi > lo else 1.0)
                    lim = (min(lo, 0.0) - pad, max(hi, 0.0) + pad)
                    ax.plot(lim, lim, "--", color="0.3", lw=1.0, zorder=1, label="1:1")
                    ax.set_xlim(lim)
                    ax.set_ylim(lim)
                else:
                    ax.text(0.5, 0.5, "no structures", transform=ax.transAxes, ha="center", va="center", color="0.4")
                ax.axhline(0.0, color="0.7", lw=0.7, zorder=0)
                ax.set_title(f"{KIND_TITLES.get(kind, kind)} {titles.get(region, region)}")
                ax.set_xlabel(r"true peak $\delta$")
                if j == 0:
                    rm = f" within {r_match:g} Mpc/h" if r_match is not None else ""
                    ax.set_ylabel(("max" if kind == "cluster" else "min") + rf" predicted $\delta${rm}")
                ax.legend(fontsize=7, loc="upper left" if kind == "cluster" else "lower right")
    return fig
