"""selection: part of :mod:`zoa_lib.book.viz` (see its docstring for the conventions).

A real catalogue and the mocks that copy its selection (:mod:`zoa_lib.survey.selection`), side by
side: the sky each covers over the HEALPix mask of observed pixels, the distributions of
redshift distance s and of distance-modulus errors σ_μ. The numbers (KS statistics, counts)
are :func:`zoa_lib.survey.selection.compare_catalogues`; these functions only draw.
"""
from __future__ import annotations

import numpy as np

from zoa_lib.book.viz.catalogs import check_catalog
from zoa_lib.book.viz.skymaps import sky_axes, sky_map, zoa_band
from zoa_lib.book.viz.style import OKABE_ITO, VizError, new_figure, style

#: Colour of the observed HEALPix pixels on the sky panels (a pale blue, under the galaxies).
OBSERVED_COLOUR = "#cfe3f2"
#: Colours of the real catalogue and of the mocks in the distribution panels.
REAL_COLOUR, MOCK_COLOUR = OKABE_ITO[6], OKABE_ITO[1]
_SEL_FIELDS = ("l", "b", "cz", "d_obs", "sigma_v")


def observed_sky_image(sky, nside: int, step: float = 1.0):
    """The HEALPix mask ``sky`` (bool, RING order, Galactic; :mod:`zoa_lib.survey.selection`)
    sampled on a regular (l, b) grid of ``step`` degrees: (l centres (n_l,), b centres (n_b,),
    image (n_b, n_l) with 1 where the pixel is observed and NaN elsewhere), ready for
    :func:`sky_map`'s image mode."""
    from zoa_lib.survey.selection import sky_pixels

    sky = np.asarray(sky, bool)
    if sky.ndim != 1 or sky.size != 12 * int(nside) ** 2:
        raise VizError(f"sky mask: expected 12 nside² = {12 * int(nside) ** 2} pixels, got shape {sky.shape}")
    l = np.arange(0.5 * step, 360.0, step)
    b = np.arange(-90.0 + 0.5 * step, 90.0, step)
    L, B = np.meshgrid(l, b)
    img = np.where(sky[sky_pixels(L.ravel(), B.ravel(), nside)], 1.0, np.nan).reshape(B.shape)
    return l, b, img


def plot_observed_sky(ax, sky, nside: int, *, color: str = OBSERVED_COLOUR, step: float = 1.0):
    """Shade the observed HEALPix pixels of ``sky`` on a Galactic sky Axes of :func:`sky_axes`
    (unobserved pixels stay white). Returns the Axes."""
    from matplotlib.colors import ListedColormap

    l, b, img = observed_sky_image(sky, nside, step)
    sky_map(ax, l, b, img, cmap=ListedColormap([color]), vmin=0.0, vmax=1.0, colorbar=False)
    return ax


def _split_mocks(mocks):
    if isinstance(mocks, (list, tuple)):
        parts = [np.asarray(m) for m in mocks]
    else:
        pooled = np.asarray(mocks)
        check_catalog(pooled, ("sample",), "mocks")
        parts = [pooled[pooled["sample"] == s] for s in np.unique(pooled["sample"])]
    if not parts:
        raise VizError("mocks: no mock catalogue given")
    for m in parts:
        check_catalog(m, _SEL_FIELDS, "mocks")
    return parts


def figure_real_vs_mock_sky(real, mock, sky, nside: int, *, labels=("real catalogue", "mock"),
                            zoa_b: float | None = None, s: float = 1.0):
    """Two Galactic Mollweide panels: the galaxies of the real catalogue (left) and of one
    mock (right), as dots over the observed HEALPix pixels of ``sky`` (bool, RING, nside
    ``nside``; the mask the mocks copy) shaded. ``zoa_b``: also outline the band |b| < zoa_b.
    Returns the Figure."""
    from matplotlib.patches import Patch

    cats = [check_catalog(real, ("l", "b"), "real"), check_catalog(mock, ("l", "b"), "mock")]
    sky = np.asarray(sky, bool)
    fig = new_figure(figsize=(12.5, 4.3))
    for k, (cat, lab) in enumerate(zip(cats, labels)):
        ax = sky_axes(fig, (1, 2, k + 1))
        plot_observed_sky(ax, sky, nside)
        sky_map(ax, cat["l"], cat["b"], s=s, color="0.15", colorbar=False, alpha=0.55, zorder=3,
                title=f"({'ab'[k]}) {lab}: {len(cat):,} galaxies")
        band = zoa_band(ax, zoa_b, alpha=0.15) if zoa_b else None
    handles = [Patch(fc=OBSERVED_COLOUR, ec="0.6", lw=0.5,
                     label=f"observed HEALPix pixels (nside {int(nside)}): {sky.mean():.0%} of the sky")]
    if band is not None:
        handles.append(band)
    with style():
        fig.legend(handles=handles, loc="outside lower center", ncol=len(handles), fontsize=8)
    return fig


def _median_band(x, y, edges, min_count: int = 5):
    k = np.digitize(x, edges) - 1
    out = np.full((3, edges.size - 1), np.nan)
    for j in range(edges.size - 1):
        v = y[k == j]
        if v.size >= min_count:
            out[:, j] = np.percentile(v, [16, 50, 84])
    return out


def figure_real_vs_mock(real, mocks, sel, box_size: float, *, labels=("real catalogue", "mocks")):
    """Three panels comparing a real catalogue with mocks that copy its selection ``sel``
    (a :class:`zoa_lib.survey.selection.CatalogueSelection`: its ``s_edges`` and ``depth``):

    (a) n(s): galaxies per bin of redshift distance s (Mpc/h), the real catalogue against the
        mean of the mocks (band: the smallest to the largest mock), with the cube's half-side
        L/2, its half-diagonal √3 L/2 (L = ``box_size``, Mpc/h) and the depth the mocks copy;
    (b) the distribution of distance-modulus errors σ_μ (mag) within that depth;
    (c) σ_μ against s: median and 16–84 % range per bin.

    ``mocks``: a list of mock catalogues or one pooled table (split by its ``sample``).
    s and σ_μ are :func:`zoa_lib.survey.selection.redshift_distances` and
    :func:`~zoa_lib.survey.selection.catalogue_sigma_dm` of each table. Returns the Figure."""
    from zoa_lib.survey.selection import catalogue_sigma_dm, redshift_distances

    real = check_catalog(real, _SEL_FIELDS, "real")
    parts = _split_mocks(mocks)
    edges = np.asarray(sel.s_edges, float)
    depth = float(sel.depth)
    width = float(edges[1] - edges[0])
    s_real = redshift_distances(real)
    e_real = catalogue_sigma_dm(real)
    s_mock = [redshift_distances(m) for m in parts]
    e_mock = [catalogue_sigma_dm(m) for m in parts]
    top = min(max(float(s_real.max(initial=0.0)), depth), 2.0 * depth)
    wide = np.arange(0.0, np.ceil(top / width) * width + 0.5 * width, width)
    h_real = np.histogram(s_real, wide)[0]
    h_mock = np.array([np.histogram(s, wide)[0] for s in s_mock], float)
    fig = new_figure(figsize=(13.5, 4.2))
    with style():
        ax1, ax2, ax3 = fig.subplots(1, 3)
        n_real = int((s_real < depth).sum())
        n_mock = float(np.mean([(s < depth).sum() for s in s_mock]))
        ax1.stairs(h_real, wide, color=REAL_COLOUR, lw=1.5, label=f"{labels[0]}: {n_real:,} at s < {depth:.0f}")
        ax1.stairs(h_mock.mean(axis=0), wide, color=MOCK_COLOUR, lw=1.5,
                   label=f"{labels[1]}: mean of {len(parts)}, {n_mock:,.0f} at s < {depth:.0f}")
        if len(parts) > 1:
            ax1.stairs(h_mock.max(axis=0), wide, baseline=h_mock.min(axis=0), fill=True, color=MOCK_COLOUR,
                       alpha=0.25, lw=0, label=f"{labels[1]}: range")
        for x, ls, lab in ((0.5 * box_size, "--", f"cube half-side {0.5 * box_size:.0f}"),
                           (0.5 * np.sqrt(3.0) * box_size, ":", f"cube half-diagonal {0.5 * np.sqrt(3) * box_size:.0f}"),
                           (depth, "-.", f"depth copied {depth:.0f}")):
            ax1.axvline(x, color="0.35", ls=ls, lw=1.0, label=f"{lab} Mpc/h")
        ax1.set_xlim(0.0, wide[-1])
        ax1.set_xlabel("redshift distance s  [Mpc/h]")
        ax1.set_ylabel(f"galaxies per {width:g} Mpc/h")
        ax1.set_title("(a) radial distribution n(s)")
        ax1.legend(fontsize=7.5)

        in_real = s_real < depth
        e_r = e_real[in_real]
        e_m = np.concatenate([e[s < depth] for e, s in zip(e_mock, s_mock)])
        both = np.concatenate([e_r, e_m])
        hi = float(np.percentile(both, 99.5)) if both.size else 1.0
        bins = np.linspace(0.0, hi, 41)
        ax2.hist(e_r, bins, density=True, histtype="step", color=REAL_COLOUR, lw=1.5,
                 label=f"{labels[0]}: median {np.median(e_r) if e_r.size else np.nan:.3f}")
        ax2.hist(e_m, bins, density=True, histtype="stepfilled", color=MOCK_COLOUR, alpha=0.35,
                 label=f"{labels[1]}: median {np.median(e_m) if e_m.size else np.nan:.3f}")
        ax2.set_xlabel(r"$\sigma_\mu$  [mag]")
        ax2.set_ylabel("probability density")
        ax2.set_title(f"(b) distance-modulus errors, s < {depth:.0f} Mpc/h")
        ax2.legend(fontsize=7.5)

        mid = 0.5 * (edges[1:] + edges[:-1])
        q_r = _median_band(s_real, e_real, edges)
        q_m = _median_band(np.concatenate(s_mock), np.concatenate(e_mock), edges)
        ax3.fill_between(mid, q_r[0], q_r[2], color=REAL_COLOUR, alpha=0.15, lw=0, label=f"{labels[0]}: 16–84 %")
        ax3.plot(mid, q_r[1], color=REAL_COLOUR, lw=1.5, label=f"{labels[0]}: median")
        ax3.plot(mid, q_m[0], color=MOCK_COLOUR, lw=0.8, ls="--", label=f"{labels[1]}: 16 and 84 %")
        ax3.plot(mid, q_m[2], color=MOCK_COLOUR, lw=0.8, ls="--")
        ax3.plot(mid, q_m[1], color=MOCK_COLOUR, lw=1.5, label=f"{labels[1]}: median")
        ax3.set_xlim(0.0, depth)
        ax3.set_xlabel("redshift distance s  [Mpc/h]")
        ax3.set_ylabel(r"$\sigma_\mu$  [mag]")
        ax3.set_title(r"(c) $\sigma_\mu$ by distance")
        ax3.legend(fontsize=7.5)
    return fig
