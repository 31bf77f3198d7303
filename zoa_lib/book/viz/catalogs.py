"""catalogs: part of :mod:`zoa_lib.book.viz` (see its docstring for the conventions)."""
from __future__ import annotations

import numpy as np

from zoa_lib.book.viz.skymaps import mark_structures, sky_map, zoa_band
from zoa_lib.book.viz.style import OKABE_ITO, VizError, new_figure, robust_abs_max, style


# --------------------------------------------------------------------------- catalogs
def check_catalog(catalog, fields, where="catalog"):
    names = getattr(getattr(catalog, "dtype", None), "names", None)
    if names is None:
        raise VizError(f"{where}: expected a numpy structured array (zoa_lib.survey.shards.CATALOG_DTYPE)")
    missing = [f for f in fields if f not in names]
    if missing:
        raise VizError(f"{where}: missing fields {missing}")
    return catalog


def plot_catalog_sky(catalog, zoa_b: float | None = 10.0, *, structures=None, vlim: float | None = None,
                     s: float = 2.0, value: str = "v_r_obs", title: str | None = None):
    """Galactic Mollweide scatter of a mock (or real) catalog coloured by the observed
    radial peculiar velocity (km/s, symmetric diverging coolwarm scale, whose grey centre
    stays visible on white), with the ZOA band
    |b| < ``zoa_b`` shaded and optional named structures. Returns the Figure."""
    cat = check_catalog(catalog, ("l", "b", value))
    m = vlim or robust_abs_max(cat[value], 98)
    ax = sky_map(None, cat["l"], cat["b"], cat[value], vmin=-m, vmax=m, s=s, cmap="coolwarm",
                 label=r"$v_{r,\rm obs}$  [km/s]" if value == "v_r_obs" else value,
                 title=title if title is not None else f"{len(cat):,} galaxies")
    if zoa_b:
        zoa_band(ax, zoa_b)
        ax.legend(loc="lower right", fontsize=7.5, bbox_to_anchor=(1.05, -0.05))
    if structures is not None:
        mark_structures(ax, structures)
    return ax.figure


def plot_selection(catalog, *, bins: int = 30, r_max: float | None = None):
    """Two panels: (a) the radial distribution n(r) of the catalog (true and observed
    distances, Mpc/h); (b) the distance errors ln(d_obs/d_true) with their mean and
    standard deviation (≈ the fractional distance error). Returns the Figure."""
    cat = check_catalog(catalog, ("d_true", "d_obs"))
    dt = np.asarray(cat["d_true"], float)
    do = np.asarray(cat["d_obs"], float)
    fig = new_figure(figsize=(10.0, 4.0))
    with style():
        ax1, ax2 = fig.subplots(1, 2)
        top = r_max or (float(np.nanmax(np.concatenate([dt, do]))) if dt.size else 1.0)
        edges = np.linspace(0.0, top, bins + 1)
        ax1.hist(dt, edges, histtype="stepfilled", color=OKABE_ITO[0], alpha=0.35, label=r"$d_{\rm true}$")
        ax1.hist(do, edges, histtype="step", color=OKABE_ITO[1], lw=1.5, label=r"$d_{\rm obs}$")
        ax1.set_xlabel("distance  [Mpc/h]")
        ax1.set_ylabel("galaxies per bin")
        ax1.set_title("(a) radial distribution n(r)")
        ax1.legend()
        ok = (dt > 0) & (do > 0) & np.isfinite(dt) & np.isfinite(do)
        e = np.log(do[ok] / dt[ok])
        if e.size:
            mu, sd = float(e.mean()), float(e.std())
            ax2.hist(e, bins=bins * 2, histtype="stepfilled", color=OKABE_ITO[2], alpha=0.6,
                     label=f"mean {mu:+.3f}, σ = {sd:.3f}")
            ax2.axvline(0.0, color="0.4", lw=0.8)
            ax2.legend()
        ax2.set_xlabel(r"$\ln(d_{\rm obs}/d_{\rm true})$")
        ax2.set_ylabel("galaxies per bin")
        ax2.set_title("(b) distance errors")
    return fig
