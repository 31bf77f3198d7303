"""statistics: part of :mod:`zoa_lib.book.viz` (see its docstring for the conventions)."""
from __future__ import annotations

from typing import Mapping

import numpy as np

from zoa_lib.book.viz.slices import as_map, plot_slice, truth_norm
from zoa_lib.book.viz.style import OKABE_ITO, SLAB, VizError, axis_index, kind_of, new_figure, plane_axes, style
from zoa_lib.methods.training.model_files import read_history


# --------------------------------------------------------------------------- 1D/2D statistics
def _new_ax(ax, figsize=(5.2, 4.4), **kw):
    if ax is not None:
        return ax
    fig = new_figure(figsize=figsize)
    with style():
        return fig.add_subplot(111, **kw)


def plot_scatter_density(ax, truth, pred, label: str = "", r: float | None = None, *, bins: int = 80,
                         lims=None, xlabel: str = "truth", ylabel: str = "prediction", cmap: str = "cividis"):
    """2D histogram of prediction vs truth (log counts), the 1:1 line, and the Pearson r
    in the legend (``r`` as given, e.g. from the metrics module; np.corrcoef if None).

    Returns the Axes (a new Figure's when ``ax`` is None).
    """
    from matplotlib.colors import LogNorm
    from matplotlib.lines import Line2D

    ax = _new_ax(ax)
    t, p = np.ravel(truth).astype(float), np.ravel(pred).astype(float)
    if t.shape != p.shape:
        raise VizError(f"plot_scatter_density: truth has {t.size} values, prediction {p.size}")
    ok = np.isfinite(t) & np.isfinite(p)
    t, p = t[ok], p[ok]
    if t.size < 2:
        raise VizError("plot_scatter_density: fewer than 2 finite pairs")
    if r is None:
        r = float(np.corrcoef(t, p)[0, 1])
    if lims is None:
        lo = min(np.percentile(t, 0.1), np.percentile(p, 0.1))
        hi = max(np.percentile(t, 99.9), np.percentile(p, 99.9))
        pad = 0.03 * (hi - lo or 1.0)
        lims = (lo - pad, hi + pad)
    with style():
        H, xe, ye = np.histogram2d(t, p, bins=bins, range=[lims, lims])
        H = np.ma.masked_equal(H, 0)
        mesh = ax.pcolormesh(xe, ye, H.T, cmap=cmap, norm=LogNorm(vmin=1, vmax=max(H.max(), 2)),
                             rasterized=True)
        ax.figure.colorbar(mesh, ax=ax, label="voxels per bin")
        ax.plot(lims, lims, color=OKABE_ITO[1], lw=1.2, ls="--")
        ax.set_xlim(lims)
        ax.set_ylim(lims)
        ax.set_aspect("equal")
        ax.set_xlabel(xlabel)
        ax.set_ylabel(ylabel)
        handles = [Line2D([], [], color=OKABE_ITO[1], ls="--", label="1:1"),
                   Line2D([], [], ls="none", label=f"{label}  r = {r:.3f}".strip())]
        ax.legend(handles=handles, loc="upper left")
    return ax


def plot_power_ratio(ax, k, r_k, T_k=None, *, label: str | None = None, color=None, k_nyquist: float | None = None):
    """Cross-correlation coefficient r(k) = P_tp/√(P_tt P_pp) (solid) and transfer function
    T(k) = √(P_pp/P_tt) (dashed) against k in h/Mpc, log k axis, with the unit line.
    Call again on the same Axes to overlay methods. Returns the Axes."""
    ax = _new_ax(ax)
    k = np.asarray(k, float)
    with style():
        line, = ax.plot(k, r_k, color=color, label=f"r(k){'  ' + label if label else ''}")
        if T_k is not None:
            ax.plot(k, T_k, color=line.get_color(), ls="--", label=f"T(k){'  ' + label if label else ''}")
        ax.axhline(1.0, color="0.5", lw=0.8, zorder=0)
        if k_nyquist:
            ax.axvline(k_nyquist, color="0.5", lw=0.8, ls=":", label=r"$k_{\rm Nyquist}$")
        ax.set_xscale("log")
        ax.set_xlabel(r"$k$  [$h$/Mpc]")
        ax.set_ylabel(r"$r(k)$, $T(k)$")
        ax.legend()
    return ax


def plot_pdf(ax, truth, pred, bins=60, *, xlabel: str = r"$\delta$", labels=("truth", "prediction"),
             log: bool = True, range=None):
    """Normalised histograms (PDFs) of the truth and prediction values on common bins;
    log y axis by default. Returns the Axes."""
    ax = _new_ax(ax)
    t, p = np.ravel(truth).astype(float), np.ravel(pred).astype(float)
    t, p = t[np.isfinite(t)], p[np.isfinite(p)]
    if range is None:
        both = np.concatenate([t, p])
        range = (np.percentile(both, 0.05), np.percentile(both, 99.95))
    edges = np.histogram_bin_edges(np.concatenate([t, p]), bins=bins, range=range)
    with style():
        for vals, lab, c in ((t, labels[0], "k"), (p, labels[1], OKABE_ITO[0])):
            h, _ = np.histogram(vals, edges, density=True)
            ax.stairs(h, edges, label=lab, color=c, lw=1.5)
        if log:
            ax.set_yscale("log")
        ax.set_xlabel(xlabel)
        ax.set_ylabel("PDF")
        ax.legend()
    return ax


ENGINE_LABELS = {"2lpt": "2LPT", "pm": "particle mesh", "linear": "linear (ICs)"}


def figure_engine_slabs(deltas: Mapping[str, np.ndarray], size: float, *, axis=0, lo: float = SLAB[0],
                        hi: float = SLAB[1], labels: Mapping[str, str] | None = None, norm=None):
    """The same slab of one parent box evolved by several engines, side by side.

    ``deltas``: {engine: δ on the box's mesh (M³), box side ``size`` Mpc/h}; each panel is
    1 + δ averaged over ``lo < x < hi`` (Mpc/h from the box centre) along ``axis``, on one
    shared logarithmic density scale (``norm``; default the first field's
    :func:`truth_norm`). Returns the Figure."""
    deltas = dict(deltas)
    if not deltas:
        raise VizError("figure_engine_slabs: no fields")
    labels = {**ENGINE_LABELS, **(labels or {})}
    ax_i = axis_index(axis)
    plane = plane_axes(ax_i)
    maps = {k: as_map(v, size, ax_i, lo, hi, k) for k, v in deltas.items()}
    fig = new_figure(figsize=(5.4 * len(maps) + 0.8, 4.8))
    with style():
        axes = np.atleast_1d(fig.subplots(1, len(maps), sharex=True, sharey=True))
        nrm = norm if norm is not None else truth_norm("density", next(iter(maps.values())))
        im = None
        for ax, (k, m) in zip(axes, maps.items()):
            im = plot_slice(ax, m, size, "density", plane=plane, norm=nrm, colorbar=False, observer=False,
                            title=f"{labels.get(k, k)}, |Δ{'xyz'[ax_i]}| < {hi:g} Mpc/h"
                            if lo == -hi else labels.get(k, k))
            ax.set_xlabel(f"parent axis {'xyz'[plane[0]]}  [Mpc/h]")
        axes[0].set_ylabel(f"parent axis {'xyz'[plane[1]]}  [Mpc/h]")
        for a in axes[1:]:
            a.set_ylabel("")
        fig.colorbar(im, ax=list(axes), label=kind_of("density").label, shrink=0.9)
    return fig


def plot_engine_power(spectra: Mapping, *, labels: Mapping[str, str] | None = None, band: float = 0.1):
    """Two panels from :func:`zoa_lib.universe.nonlinear.engine_spectra`: (a) P(k) of each engine,
    of the ICs' linear field, linear theory and the halofit reference (log–log, (Mpc/h)³
    against h/Mpc); (b) each engine's P(k) over the halofit reference of the same
    realisation, with a ±``band`` grey band (over the linear P(k) when there is no halofit
    reference: CAMB missing). The Nyquist frequency is dotted. Returns the Figure."""
    labels = {**ENGINE_LABELS, **(labels or {})}
    k = np.asarray(spectra["k"], float)
    ok = np.isfinite(k) & (np.asarray(spectra["modes"]) > 0)
    hf = spectra.get("halofit")
    fig = new_figure(figsize=(11.0, 4.4))
    with style():
        ax1, ax2 = fig.subplots(1, 2)
        ax1.loglog(k[ok], np.asarray(spectra["linear_theory"])[ok], color="0.5", ls=":", label="linear theory")
        ax1.loglog(k[ok], np.asarray(spectra["linear"])[ok], color="0.5", label=labels["linear"])
        if hf is not None:
            ax1.loglog(k[ok], np.asarray(hf)[ok], color="k", ls="--", label="halofit (CAMB) × ICs")
        ratios = spectra["ratio_halofit"] if hf is not None else spectra["ratio_linear"]
        for i, (name, p) in enumerate(spectra["power"].items()):
            c = OKABE_ITO[i % len(OKABE_ITO)]
            ax1.loglog(k[ok], np.asarray(p)[ok], color=c, lw=1.6, label=labels.get(name, name))
            ax2.semilogx(k[ok], np.asarray(ratios[name])[ok], color=c, lw=1.6, marker="o", ms=3,
                         label=labels.get(name, name))
        ax2.axhline(1.0, color="k", lw=0.8, ls="--" if hf is not None else "-")
        ax2.axhspan(1 - band, 1 + band, color="0.85", zorder=0, label=f"±{band:.0%}")
        from matplotlib.ticker import NullFormatter

        for a in (ax1, ax2):
            a.axvline(spectra["k_nyquist"], color="0.5", lw=0.8, ls=":")
            a.xaxis.set_minor_formatter(NullFormatter())
            a.set_xlabel(r"$k$  [$h$/Mpc]")
        ax1.set_ylabel(r"$P(k)$  [(Mpc/$h$)$^3$]")
        ax1.set_title("(a) power spectra at z = 0")
        ax2.set_ylabel(r"$P / P_{\rm halofit}$" if hf is not None else r"$P / P_{\rm lin}$")
        ax2.set_title("(b) over the halofit reference" if hf is not None else "(b) over linear (no CAMB)")
        ax1.legend(fontsize=8)
        ax2.legend(fontsize=8)
    return fig


def plot_density_pdfs(ax, pdfs: Mapping, *, labels: Mapping[str, str] | None = None, log: bool = True,
                      xlabel: str = r"$\delta$"):
    """One-point PDFs of δ from :func:`zoa_lib.universe.nonlinear.density_pdfs` (one line per field,
    its variance and skewness in the legend), log y axis by default. Returns the Axes."""
    ax = _new_ax(ax)
    labels = {**ENGINE_LABELS, **(labels or {})}
    edges = np.asarray(pdfs["edges"], float)
    with style():
        for i, (name, h) in enumerate(pdfs["pdf"].items()):
            c = "0.5" if name == "linear" else OKABE_ITO[i % len(OKABE_ITO)]
            ax.stairs(np.asarray(h, float), edges, color=c, lw=1.5,
                      label=f"{labels.get(name, name)}: σ² = {pdfs['variance'][name]:.2f}, "
                            f"skew = {pdfs['skewness'][name]:.2f}")
        ax.axvline(-1.0, color="0.6", lw=0.8, ls=":")
        if log:
            ax.set_yscale("log")
        ax.set_xlabel(xlabel)
        ax.set_ylabel("PDF")
        ax.legend(fontsize=8)
    return ax


def plot_velocity_bias_shells(ax, results: Mapping, *, labels: Mapping[str, str] | None = None,
                              by_label: str | None = None):
    """Mean velocity bias ⟨v_obs − v_true⟩ (km/s) per distance shell, one line with ±1σ
    error bars per selection, from :func:`zoa_lib.survey.galaxies.velocity_bias_by_selection` (or
    {label: :func:`zoa_lib.survey.galaxies.velocity_bias_by_shell` dict}). Returns the Axes."""
    ax = _new_ax(ax)
    labels = {"redshift": "selected on cz", "true_distance": "selected on true distance", **(labels or {})}
    with style():
        for i, (name, r) in enumerate(results.items()):
            e = np.asarray(r["edges"], float)
            x = 0.5 * (e[1:] + e[:-1]) + (i - 0.5 * (len(results) - 1)) * 0.012 * (e[-1] - e[0])
            ax.errorbar(x, r["bias"], yerr=r["err"], color=OKABE_ITO[i % len(OKABE_ITO)], marker="o", ms=4,
                        capsize=2, lw=1.4, label=labels.get(name, name))
        ax.axhline(0.0, color="0.5", lw=0.8)
        by = by_label or {"d_obs": r"observed distance $d_{\rm obs}$", "d_true": r"true distance $d_{\rm true}$",
                          "cz": r"redshift distance $d_C(cz)$"}.get(next(iter(results.values())).get("by"),
                                                                    "distance")
        ax.set_xlabel(f"{by}  [Mpc/h]")
        ax.set_ylabel(r"$\langle v_{\rm obs} - v_{\rm true}\rangle$  [km/s]")
        ax.legend()
    return ax


def _line_with_band(ax, x, y, label, color=None, err=None, **kw):
    y = np.asarray(y, float)
    if y.ndim == 2:  # realisations × x: mean and standard deviation
        err = y.std(axis=0) if err is None else err
        y = y.mean(axis=0)
    line, = ax.plot(x, y, label=label, color=color, marker=kw.pop("marker", None), **kw)
    if err is not None:
        err = np.asarray(err, float)
        ax.fill_between(x, y - err, y + err, color=line.get_color(), alpha=0.2, lw=0)
    return line


def plot_bulk_flow(ax, R, B_methods: Mapping[str, np.ndarray], sigma_B=None, lo=None, hi=None, *, errors=None,
                   band_label: str = "ΛCDM 68 %", sigma_label: str = r"ΛCDM $\sigma_B$"):
    """Bulk-flow magnitude |B|(R) in km/s of each method against the sphere radius R
    (Mpc/h), over the ΛCDM expectation: the band ``lo``–``hi`` and σ_B(R) dashed
    (``Cosmology.bulk_flow_range(R)`` returns (σ_B, lo, hi)). A method's array may be
    (n_R,) or (n_realisations, n_R) (mean ± standard deviation drawn); ``errors`` maps a
    method to its 1σ. Returns the Axes."""
    ax = _new_ax(ax)
    R = np.asarray(R, float)
    with style():
        if lo is not None and hi is not None:
            ax.fill_between(R, lo, hi, color="0.75", alpha=0.6, lw=0, label=band_label, zorder=0)
        if sigma_B is not None:
            ax.plot(R, sigma_B, color="0.35", ls="--", lw=1.2, label=sigma_label)
        for i, (name, B) in enumerate(B_methods.items()):
            _line_with_band(ax, R, B, name, OKABE_ITO[i % len(OKABE_ITO)],
                            None if errors is None else errors.get(name), marker="o", ms=3)
        ax.set_xlabel(r"$R$  [Mpc/$h$]")
        ax.set_ylabel(r"$|B|$  [km/s]")
        ax.set_ylim(bottom=0)
        ax.legend()
    return ax


def plot_bulk_flow_lcdm(ax, bulk_flow: Mapping, B_methods: Mapping[str, np.ndarray], *, errors=None):
    """:func:`plot_bulk_flow` over both ΛCDM 68 % ranges of a ``bulk_flow`` dict of
    :func:`zoa_lib.analysis.metrics.bulk_flow_error` (as ``zoa evaluate`` writes it): the range for the
    modes of the mocks' periodic parent box, smoothed as the targets are (``lcdm_box_*``,
    ``Cosmology.bulk_flow_range(R, box_size=..., smoothing=...)``), filled with its σ_B
    dashed, and the infinite-volume range (``lcdm_lower``/``lcdm_upper``) as dotted lines.
    Without the ``lcdm_box_*`` entries only the infinite-volume range is drawn, filled.
    ``B_methods`` and ``errors`` as for :func:`plot_bulk_flow`. Returns the Axes."""
    def arr(key):
        return np.asarray(bulk_flow[key], dtype=float)

    R = arr("radii")
    has_inf = all(k in bulk_flow for k in ("lcdm_sigma", "lcdm_lower", "lcdm_upper"))
    if all(k in bulk_flow for k in ("lcdm_box_sigma", "lcdm_box_lower", "lcdm_box_upper")):
        Lp = bulk_flow.get("lcdm_box_size")
        where = f" ({float(Lp):g} Mpc/h)" if Lp is not None else ""
        ax = plot_bulk_flow(ax, R, B_methods, arr("lcdm_box_sigma"), arr("lcdm_box_lower"), arr("lcdm_box_upper"),
                            errors=errors, band_label=f"ΛCDM 68 %, modes of the parent box{where}",
                            sigma_label=r"ΛCDM $\sigma_B$, parent box")
        if has_inf:
            with style():
                ax.plot(R, arr("lcdm_lower"), color="0.35", ls=":", lw=1.2, label="ΛCDM 68 %, infinite volume")
                ax.plot(R, arr("lcdm_upper"), color="0.35", ls=":", lw=1.2)
    elif has_inf:
        ax = plot_bulk_flow(ax, R, B_methods, arr("lcdm_sigma"), arr("lcdm_lower"), arr("lcdm_upper"),
                            errors=errors, band_label="ΛCDM 68 %, infinite volume")
    else:
        ax = plot_bulk_flow(ax, R, B_methods, errors=errors)
    with style():
        ax.legend(fontsize=8)
    return ax


def plot_metric_vs_distance(ax, r, metrics: Mapping[str, np.ndarray], *, ylabel: str = "Pearson r",
                            xlabel: str = "distance from the observer  [Mpc/h]", errors=None,
                            zoa: Mapping[str, np.ndarray] | None = None, ylim=None):
    """A metric (default Pearson r) in radial bins centred at ``r`` (Mpc/h) for each entry
    of ``metrics`` (name → (n_bins,) or (n_realisations, n_bins), mean ± std drawn);
    ``zoa`` adds the same metrics inside the ZOA as dashed lines. Returns the Axes."""
    ax = _new_ax(ax)
    r = np.asarray(r, float)
    with style():
        for i, (name, m) in enumerate(metrics.items()):
            c = OKABE_ITO[i % len(OKABE_ITO)]
            _line_with_band(ax, r, m, name, c, None if errors is None else errors.get(name), marker="o", ms=3)
            if zoa is not None and name in zoa:
                _line_with_band(ax, r, zoa[name], f"{name} (ZOA)", c, ls="--", marker="s", ms=3)
        ax.set_xlabel(xlabel)
        ax.set_ylabel(ylabel)
        if ylim:
            ax.set_ylim(*ylim)
        ax.legend()
    return ax


#: Marker of each window of a published bulk flow (:data:`zoa_lib.analysis.literature.WINDOWS`).
WINDOW_MARKERS = {"top-hat": "s", "gaussian": "D", "mv": "v", "mle": "^", "external": "P"}


def plot_bulk_flow_published(fig, bulk_flows: Mapping[str, list], published, *, lcdm=None, r_max=None):
    """|B|(R) and the direction of a reconstruction's bulk flows beside published values.

    fig : a Figure (two panels are added: |B| against R, and a Galactic sky map of the
        directions) or None (new Figure).
    bulk_flows : {label: rows {R, B, l, b, (B_std)}} (``Reconstruction.bulk_flow_table``),
        drawn as lines with their scatter over realizations as a band; their directions as
        points growing with R.
    published : :class:`zoa_lib.analysis.literature.PublishedBulkFlow` list, drawn as points with
        1σ errors, one marker per window (:data:`WINDOW_MARKERS`); a value at a radius beyond
        the axis (or ``external``, which has none) is drawn at the right edge with an arrow.
    lcdm : (R, rms |B|) of linear ΛCDM (km/s), dashed. r_max: the largest R of the axis
        (default the reconstruction's largest radius × 1.15). Returns (ax_B, ax_sky)."""
    from zoa_lib.book.viz.skymaps import sky_axes, sky_map, sky_xy

    fig = fig if fig is not None else new_figure(figsize=(13.0, 4.8))
    with style():
        ax = fig.add_subplot(1, 2, 1)
        R_all = [r["R"] for rows in bulk_flows.values() for r in rows]
        edge = float(r_max) if r_max is not None else 1.15 * max(R_all, default=80.0)
        if lcdm is not None:
            ax.plot(lcdm[0], lcdm[1], color="0.35", ls="--", lw=1.2, label="ΛCDM rms |B| (top-hat)")
        for i, (name, rows) in enumerate(bulk_flows.items()):
            R = np.array([r["R"] for r in rows])
            B = np.array([r["B"] for r in rows])
            err = np.array([r["B_std"] for r in rows]) if rows and "B_std" in rows[0] else None
            _line_with_band(ax, R, B, f"{name} (top-hat)", OKABE_ITO[i % len(OKABE_ITO)], err, marker="o", ms=3)
        pub_colors = {}
        for p in published:
            c = pub_colors.setdefault(p.label, OKABE_ITO[(len(bulk_flows) + len(pub_colors)) % len(OKABE_ITO)])
            beyond = not np.isfinite(p.R) or p.R > edge
            x = edge * 0.985 if beyond else p.R
            ax.errorbar([x], [p.B], yerr=[p.B_err], fmt=WINDOW_MARKERS.get(p.window, "o"), color=c, ms=6, capsize=3,
                        label=f"{p.label}, {p.window}" + (f", R = {p.R:g}" if beyond and np.isfinite(p.R) else ""))
            if beyond:
                ax.annotate("", xy=(x + 0.012 * edge, p.B), xytext=(x - 0.03 * edge, p.B),
                            arrowprops=dict(arrowstyle="->", color=c, lw=1))
        ax.set_xlim(0, edge)
        ax.set_ylim(bottom=0)
        ax.set_xlabel(r"$R$  [Mpc/$h$]")
        ax.set_ylabel(r"$|B|$  [km/s]")
        ax.legend(fontsize=6.5, loc="upper left", ncol=1)
        sky = sky_axes(fig, 122)
        for i, (name, rows) in enumerate(bulk_flows.items()):
            R = np.array([r["R"] for r in rows])
            sky_map(sky, [r["l"] for r in rows], [r["b"] for r in rows], color=OKABE_ITO[i % len(OKABE_ITO)],
                    s=6 + 60 * R / max(R.max(), 1.0), label=f"{name}, R = {R.min():g}–{R.max():g}")
        for p in published:
            if p.has_direction:
                x, y = sky_xy([p.l], [p.b])
                sky.errorbar(x, y, xerr=np.radians([p.l_err]) if np.isfinite(p.l_err) else None,
                             yerr=np.radians([p.b_err]) if np.isfinite(p.b_err) else None,
                             fmt=WINDOW_MARKERS.get(p.window, "o"), color=pub_colors[p.label], ms=6, capsize=2,
                             label=p.label)
        sky.legend(fontsize=6.5, loc="lower right")
        sky.set_title("bulk-flow directions (Galactic)", pad=14)
    return ax, sky


def plot_structure_recovery(ax, rows, labels: Mapping[str, str] | None = None):
    """Smoothed density contrast δ_s at each known structure: the truth (black star) and each
    method's mean ± scatter over survey realizations, structures ordered by |b| with those
    inside the Zone of Avoidance shaded. ``rows``: :func:`zoa_lib.analysis.ga_search.structure_recovery`;
    ``labels``: method → legend label. Returns the Axes."""
    ax = _new_ax(ax, figsize=(10.0, 4.2))
    labels = dict(labels or {})
    names = list(dict.fromkeys(r["structure"] for r in rows))
    first = {n: next(r for r in rows if r["structure"] == n) for n in names}
    names.sort(key=lambda n: abs(first[n]["b"]))
    x = {n: i for i, n in enumerate(names)}
    methods = list(dict.fromkeys(r["method"] for r in rows))
    with style():
        for n in names:
            if first[n]["in_zoa"]:
                ax.axvspan(x[n] - 0.5, x[n] + 0.5, color="0.85", lw=0, zorder=0)
        ax.scatter([x[n] for n in names], [first[n]["delta_true"] for n in names], marker="*", s=140, color="black",
                   zorder=4, label="truth")
        for i, m in enumerate(methods):
            sel = [r for r in rows if r["method"] == m]
            dx = 0.12 * (i - (len(methods) - 1) / 2) + 0.15
            ax.errorbar([x[r["structure"]] + dx for r in sel], [r["delta_mean"] for r in sel],
                        yerr=[r["delta_std"] for r in sel], fmt="o", ms=5, capsize=3,
                        color=OKABE_ITO[i % len(OKABE_ITO)], label=labels.get(m, m))
        ax.axhline(0.0, color="0.5", lw=0.8)
        ax.set_xticks(range(len(names)))
        ax.set_xticklabels([f"{n}\nb = {first[n]['b']:.0f}°" for n in names], fontsize=7, rotation=30, ha="right")
        ax.set_ylabel(r"smoothed $\delta_s$ at the structure")
        ax.legend(fontsize=8, title="grey: inside the ZOA", title_fontsize=8)
    return ax


LR_COLUMNS = ("learning_rate", "lr")


def plot_loss_curves(history, ax=None, *, title: str | None = None):
    """Training and validation loss (log scale) against epoch, and the learning rate on a
    twin axis (log scale) when the history has a ``learning_rate``/``lr`` column.
    ``history``: CSV path, DataFrame or dict (see :func:`read_history`). Returns the Figure."""
    df = read_history(history)
    ax = _new_ax(ax, figsize=(6.4, 4.2))
    epoch = df["epoch"].to_numpy() + 1 if "epoch" in df.columns else np.arange(1, len(df) + 1)
    with style():
        ax.plot(epoch, df["loss"], color=OKABE_ITO[0], label="loss (training)")
        if "val_loss" in df.columns:
            ax.plot(epoch, df["val_loss"], color=OKABE_ITO[1], label="val_loss (validation)")
        ax.set_yscale("log")
        ax.set_xlabel("epoch")
        ax.set_ylabel("loss")
        handles, labels = ax.get_legend_handles_labels()
        lr_col = next((c for c in LR_COLUMNS if c in df.columns), None)
        if lr_col is not None:
            ax2 = ax.twinx()
            ax2.plot(epoch, df[lr_col], color=OKABE_ITO[2], ls=":", lw=1.3, label="learning rate")
            lr = df[lr_col].to_numpy(float)
            if np.all(lr > 0):
                ax2.set_yscale("log")
            ax2.set_ylabel("learning rate", color=OKABE_ITO[2])
            ax2.tick_params(axis="y", colors=OKABE_ITO[2])
            h2, l2 = ax2.get_legend_handles_labels()
            handles, labels = handles + h2, labels + l2
        ax.legend(handles, labels, loc="upper right")
        if title:
            ax.set_title(title)
    return ax.figure




# --------------------------------------------------------------------------- the verdict
#: Colour of each outcome of a verdict row (:func:`zoa_lib.analysis.verdict.verdict_rows`).
VERDICT_COLOURS = {"vnet": OKABE_ITO[0], "classical": OKABE_ITO[1], "tie": "0.55", "undetermined": "0.55"}


def verdict_advantage(row: Mapping) -> tuple[float, float, float]:
    """(advantage, low, high): how much better the network does than the best classical method
    on one verdict row, as a fraction of that method's own value (for ``better = one``, of its
    distance |x − 1| from a perfect 1), positive where the network is better; low and high bound
    the row's 68 % paired-bootstrap interval the same way. NaN where the scale is zero or a
    number is missing (an interval is None when every mock comes from one parent box)."""
    def num(v):
        return float("nan") if v is None else float(v)

    d, base = num(row["difference"]), num(row["baseline_value"])
    lo, hi = (num(v) for v in (row.get("interval68") or (None, None)))
    if row["better"] == "higher":
        adv, lo_a, hi_a, scale = d, lo, hi, abs(base)
    else:  # lower, or one: the difference is of the value, or of |x − 1|; smaller is better
        adv, lo_a, hi_a = -d, -hi, -lo
        scale = abs(base - 1.0) if row["better"] == "one" else abs(base)
    if not scale > 0:
        return float("nan"), float("nan"), float("nan")
    return adv / scale, lo_a / scale, hi_a / scale


def figure_verdict(comparison: Mapping, labels: Mapping[str, str] | None = None):
    """The verdict of ``zoa evaluate`` at a glance: for each network (one panel) and each
    headline metric the goal counts (one row), the network's advantage over the best classical
    method on that metric (:func:`verdict_advantage`, per cent of that method's value) with the
    68 % paired-bootstrap interval over parent boxes. Blue: the network wins (the interval
    excludes zero on its side); vermillion: the classical method wins; grey: a tie. Rows shown
    but not counted (δ-derived velocities, the bulk flow, structures) stay in the tables.
    ``comparison``: the dict of ``comparison.json``. Returns the Figure."""
    rows = [r for r in comparison.get("verdict") or [] if r.get("counts_for_goal", True)]
    if not rows:
        raise VizError("the comparison has no verdict rows that count for the goal (no network was scored)")
    labels = dict(comparison.get("labels") or {}, **dict(labels or {}))
    nets = list(dict.fromkeys(r.get("network", "vnet") for r in rows))
    metrics = list(dict.fromkeys(r["metric"] for r in rows))
    fig = new_figure(figsize=(4.2 + 3.4 * len(nets), 1.2 + 0.3 * len(metrics)))
    with style():
        axes = np.atleast_1d(fig.subplots(1, len(nets), squeeze=False, sharex=True, sharey=True)).ravel()
        for ax, net in zip(axes, nets):
            for r in (r for r in rows if r.get("network", "vnet") == net):
                y = metrics.index(r["metric"])
                adv, lo, hi = (100.0 * v for v in verdict_advantage(r))
                colour = VERDICT_COLOURS[r["winner"] if r["winner"] in VERDICT_COLOURS else "classical"]
                ax.plot([lo, hi], [y, y], color=colour, lw=2.0)
                ax.plot([adv], [y], "o", ms=6, color=colour)
            ax.axvline(0.0, color="0.3", lw=0.8)
            ax.set_xlabel("advantage over the best classical (%)", fontsize=8)
            ax.set_title("V-Net" if net == "vnet" else "V-Net, the paper's set-up", fontsize=9)
        axes[0].set_yticks(range(len(metrics)))
        axes[0].set_yticklabels(metrics, fontsize=7)
        axes[0].set_ylim(len(metrics) - 0.5, -0.5)
        handles = [axes[-1].plot([], [], "o", color=c, label=t)[0] for t, c in
                   (("network wins", VERDICT_COLOURS["vnet"]), ("classical wins", VERDICT_COLOURS["classical"]),
                    ("tie", VERDICT_COLOURS["tie"]))]
        axes[-1].legend(handles=handles, loc="best", fontsize=7)
    return fig
