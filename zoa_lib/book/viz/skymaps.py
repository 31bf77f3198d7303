"""skymaps: part of :mod:`zoa_lib.book.viz` (see its docstring for the conventions)."""
from __future__ import annotations

import os

import numpy as np

from zoa_lib.book.viz.style import (
    OKABE_ITO,
    VizError,
    check_plot_cube,
    kind_norm,
    kind_of,
    new_figure,
    robust_abs_max,
    style,
)

# --------------------------------------------------------------------------- sky maps
#: Sky frames and the sampling of cube fields on the sky live in :mod:`zoa_lib.survey.sky` (computation).
from zoa_lib.survey.sky import SKY_FRAMES, SkyError, frame_to_galactic, galactic_to_frame, sample_shell
from zoa_lib.survey.sky import check_frame as _sky_frame  # noqa: E402


def _check_frame(frame) -> str:
    """The frame's name, or a :class:`VizError` naming the known frames (plotting API)."""
    try:
        return _sky_frame(frame)
    except SkyError as e:
        raise VizError(str(e)) from None


def sky_xy(l_deg, b_deg):
    """Mollweide plot coordinates (radians) of (longitude, latitude) in degrees — Galactic
    (l, b) or, on a supergalactic map, (SGL, SGB): x = −wrap(lon) with wrap(lon) ∈
    [−180°, 180°), so longitude 0 is at the centre and grows to the left; y = latitude."""
    l = np.asarray(l_deg, dtype=float)
    b = np.asarray(b_deg, dtype=float)
    x = -np.radians((l + 180.0) % 360.0 - 180.0)
    return x, np.radians(b)


def _l_ticklabel(x_deg: float) -> str:
    return f"{(-x_deg) % 360:.0f}°"


def sky_axes(fig=None, rect=111, frame: str = "galactic"):
    """A Mollweide sky Axes on ``fig`` (new Figure when None) in ``frame`` ("galactic" or
    "supergalactic", see :data:`SKY_FRAMES`): longitude 0° at the centre increasing to
    the LEFT, labelled every 60° on the equator (texts with gid "l-label"), latitude every
    30° at the left end of its parallel (gid "b-label"); grid lines every 30° and 15°. ``rect``: a 3-digit int, an (nrows, ncols, index)
    tuple or a SubplotSpec. The frame is kept as ``ax.zoa_frame``; every sky map of the
    book draws on such an Axes (a plain mollweide Axes is refused by :func:`sky_map`)."""
    frame = _check_frame(frame)
    lon_sym, lat_sym, long_name = SKY_FRAMES[frame]
    from matplotlib.transforms import ScaledTranslation

    fig = fig if fig is not None else new_figure(figsize=(9.0, 5.2))
    args = tuple(rect) if isinstance(rect, (tuple, list)) else (rect,)
    with style():
        ax = fig.add_subplot(*args, projection="mollweide")
        ticks = np.arange(-150, 151, 30)
        ax.set_xticks(np.radians(ticks))
        ax.set_xticklabels([])
        for t in ticks[ticks % 60 == 0]:  # longitude labels sit inside the map: keep them legible
            ax.text(np.radians(t), 0.0, _l_ticklabel(t), fontsize=8, ha="center", va="center", zorder=7,
                    gid="l-label", bbox=dict(boxstyle="round,pad=0.15", fc="white", ec="none", alpha=0.75))
        # matplotlib's own Mollweide latitude labels sit up to ~20 px off their parallels
        # (measured at 75°): draw them at the parallels' left ends instead
        lats = np.arange(-75, 76, 15)
        ax.set_yticks(np.radians(lats))
        ax.set_yticklabels([])
        pad = ScaledTranslation(-3 / 72, 0, fig.dpi_scale_trans)
        for t in lats[lats % 30 == 0]:
            ax.text(-np.pi, np.radians(t), f"{t:.0f}°".replace("-", "−"), fontsize=8, ha="right", va="center",
                    gid="b-label", transform=ax.transData + pad, clip_on=False)
        ax.grid(True, color="0.6", lw=0.5, alpha=0.7)
        sym = (lambda s: f"${s}$") if len(lon_sym) == 1 else str
        ax.set_xlabel(f"{long_name} longitude {sym(lon_sym)}")
        ax.set_ylabel(f"{long_name} latitude {sym(lat_sym)}")
        ax.tick_params(top=False, right=False, which="both")
        ax.minorticks_off()
    ax.zoa_frame = frame
    return ax


def _sky_ax(ax_or_fig, frame: str | None = None):
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

    if ax_or_fig is None:
        return sky_axes(frame=frame or "galactic")
    if isinstance(ax_or_fig, Figure):
        return sky_axes(ax_or_fig, frame=frame or "galactic")
    if isinstance(ax_or_fig, Axes):
        if getattr(ax_or_fig, "zoa_frame", None) is None:
            raise VizError(f"sky maps need an Axes made by viz.sky_axes(fig, rect, frame) (got a "
                           f"{ax_or_fig.name!r} Axes whose longitude labels would not match the data)")
        if frame is not None and _check_frame(frame) != ax_or_fig.zoa_frame:
            raise VizError(f"frame {frame!r} asked on a {ax_or_fig.zoa_frame} sky Axes")
        return ax_or_fig
    raise VizError(f"sky_map: expected an Axes, a Figure or None, got {type(ax_or_fig).__name__}")


def _edges(c, lo, hi):
    c = np.asarray(c, float)
    if c.size == 1:
        return np.array([lo, hi])
    mid = 0.5 * (c[1:] + c[:-1])
    return np.clip(np.concatenate([[2 * c[0] - mid[0]], mid, [2 * c[-1] - mid[-1]]]), lo, hi)


def sky_map(ax_or_fig, l_deg, b_deg, values=None, *, kind: str | None = None, cmap=None, norm=None, vmin=None,
            vmax=None, s: float = 3.0, color=None, label: str | None = None, colorbar: bool = True,
            title: str | None = None, **scatter_kw):
    """Draw values on the sky in Mollweide projection; return the Axes.

    Coordinates are (longitude, latitude) in degrees of the Axes' frame (``ax.zoa_frame``:
    Galactic (l, b) by default; convert Galactic positions for a supergalactic Axes with
    :func:`galactic_to_frame`). Two modes:

    * points: ``l_deg``, ``b_deg`` (and ``values``) of the same length → a scatter,
      coloured by ``values`` when given;
    * image: ``values`` of shape (n_b, n_l) with ``l_deg`` (n_l,) and ``b_deg`` (n_b,) the
      pixel centres (as returned by :func:`sample_shell`) → a pcolormesh.

    ``kind`` ("density", "potential", "velocity", ...) picks the colour conventions of
    :func:`~zoa_lib.book.viz.slices.plot_slice` (values in that kind's units); otherwise ``cmap``/``norm``/``vmin``/
    ``vmax`` as given (symmetric RdBu_r by default). ``ax_or_fig``: an Axes made by
    :func:`sky_axes`, a Figure (a Galactic sky Axes is added) or None (new Figure).
    """
    from matplotlib.colors import Normalize

    ax = _sky_ax(ax_or_fig)
    l = np.asarray(l_deg, float)
    b = np.asarray(b_deg, float)
    vals = None if values is None else np.asarray(values, float)
    image = vals is not None and vals.ndim == 2 and l.ndim == 1 and b.ndim == 1 and vals.shape == (b.size, l.size)
    if kind is not None:
        k = kind_of(kind)
        disp = None if vals is None else k.transform(vals)
        norm = norm or kind_norm(kind, vals, vmin=vmin, vmax=vmax)
        cmap = cmap or k.cmap
        label = label if label is not None else k.label
    else:
        disp = vals
        if vals is not None and norm is None:
            if vmin is None and vmax is None:
                m = robust_abs_max(vals)
                vmin, vmax = -m, m
            norm = Normalize(vmin, vmax)
        cmap = cmap or "RdBu_r"
    with style():
        if image:
            x, _ = sky_xy(l, np.zeros_like(l))
            order = np.argsort(x)
            xe = _edges(x[order], -np.pi, np.pi)
            ye = _edges(np.radians(b), -np.pi / 2, np.pi / 2)
            art = ax.pcolormesh(xe, ye, np.ma.masked_invalid(disp[:, order]), cmap=cmap, norm=norm,
                                shading="flat", rasterized=True)
        else:
            if l.shape != b.shape or (vals is not None and vals.shape != l.shape):
                raise VizError(f"sky_map: l {l.shape}, b {b.shape} and values "
                               f"{None if vals is None else vals.shape} must have the same shape")
            x, y = sky_xy(l, b)
            if disp is None:
                art = ax.scatter(x, y, s=s, color=color or OKABE_ITO[0], lw=0, rasterized=True, label=label,
                                 **scatter_kw)
            else:
                art = ax.scatter(x, y, c=disp, s=s, cmap=cmap, norm=norm, lw=0, rasterized=True, **scatter_kw)
        if vals is not None and colorbar:
            ax.figure.colorbar(art, ax=ax, orientation="horizontal", shrink=0.6, pad=0.06, label=label or "")
        if title:
            ax.set_title(title, pad=14)
    return ax


def zoa_band(ax, zoa_b: float = 10.0, *, color="0.55", alpha=0.35, label: str | None = "ZOA"):
    """Shade the Zone of Avoidance |b| < ``zoa_b`` degrees (Galactic latitude) on a sky Axes
    of :func:`sky_axes`: a band on a Galactic map, the region where astropy's Galactic
    latitude of each map point is below ``zoa_b`` on a supergalactic one. Returns the artist."""
    from matplotlib.patches import Rectangle

    frame = getattr(ax, "zoa_frame", "galactic")
    lab = f"{label}  |b| < {zoa_b:g}°" if label else None
    with style():
        if frame == "galactic":
            x = np.linspace(-np.pi, np.pi, 181)
            b = np.radians(zoa_b)
            return ax.fill_between(x, -b, b, color=color, alpha=alpha, lw=0, hatch="//", zorder=1.8, label=lab)
        x = np.linspace(-np.pi, np.pi, 361)
        y = np.linspace(-np.pi / 2, np.pi / 2, 181)
        X, Y = np.meshgrid(x, y)
        _, b = frame_to_galactic((-np.degrees(X)) % 360.0, np.degrees(Y), frame)
        art = ax.contourf(X, Y, np.abs(b), levels=[0.0, float(zoa_b)], colors=[color], alpha=alpha,
                          hatches=["//"], zorder=1.8)
        if lab:  # legend entry (a contour set has none)
            ax.add_patch(Rectangle((0.0, 0.0), 0.0, 0.0, facecolor=color, alpha=alpha, hatch="//", lw=0,
                                   label=lab))
        return art


def read_structures(structures) -> list[tuple[str, float, float]]:
    """Named structures as [(name, l, b)] from a structure table file (read, with its checks,
    by :func:`zoa_lib.analysis.structures.known_structures`: data/known_structures.csv's layout), a
    list of :class:`~zoa_lib.analysis.structures.Structure`, a list of (name, l, b) tuples or a
    DataFrame with columns name, l, b."""
    if structures is None:
        return []
    if isinstance(structures, (str, os.PathLike)):
        from zoa_lib.analysis.structures import LocalUniverseError, known_structures

        try:
            structures = known_structures(structures)
        except LocalUniverseError as e:
            raise VizError(str(e)) from None
    structures = [(s.name, s.l, s.b) if hasattr(s, "sg") else s for s in structures] \
        if isinstance(structures, (list, tuple)) else structures
    if hasattr(structures, "itertuples"):
        missing = {"name", "l", "b"} - set(structures.columns)
        if missing:
            raise VizError(f"structures table lacks columns {sorted(missing)}")
        return [(str(r.name), float(r.l), float(r.b)) for r in structures[["name", "l", "b"]].itertuples(index=False)]
    out = []
    for i, row in enumerate(structures):
        try:
            name, l, b = row[0], row[1], row[2]
            out.append((str(name), float(l), float(b)))
        except (TypeError, ValueError, IndexError):
            raise VizError(f"structure row {i} must be (name, l, b), got {row!r}") from None
    return out


def mark_structures(ax, structures, *, short: bool = True, color="black", fontsize: float = 7.5):
    """Mark named structures ((name, l, b) rows in Galactic degrees, see
    :func:`read_structures`) on a sky Axes of :func:`sky_axes` — converted to its frame —
    with an open circle and their name (text before a parenthesis when ``short``)."""
    rows = read_structures(structures)
    frame = getattr(ax, "zoa_frame", "galactic")
    with style():
        for name, l, b in rows:
            x, y = sky_xy(*galactic_to_frame(l, b, frame))
            ax.plot([x], [y], marker="o", ms=7, mfc="none", mec="white", mew=2.6, ls="none", zorder=6)
            ax.plot([x], [y], marker="o", ms=7, mfc="none", mec=color, mew=1.2, ls="none", zorder=6)
            text = name.split(" (")[0] if short else name
            ax.annotate(text, (x, y), xytext=(4, 4), textcoords="offset points", fontsize=fontsize,
                        color=color, zorder=6,
                        bbox=dict(boxstyle="round,pad=0.1", fc="white", ec="none", alpha=0.6))
    return rows


def mark_structures_slice(ax, structures, *, plane=(0, 1), depth: tuple[float, float] | None = None,
                          short: bool = True, color="black", fontsize: float = 7.5) -> list:
    """Mark named structures on a cube slice drawn by :func:`~zoa_lib.book.viz.slices.plot_slice` (axes in Mpc/h,
    observer at 0). ``structures``: objects with ``name`` and ``sg`` = (SGX, SGY, SGZ) in
    Mpc/h (:class:`zoa_lib.analysis.structures.Structure`); ``plane`` the drawn SG axes;
    ``depth`` = (lo, hi) Mpc/h along the third axis keeps only the structures inside the
    slab (all when None). Returns the names drawn."""
    third = ({0, 1, 2} - set(plane)).pop()
    drawn = []
    with style():
        for s in structures:
            pos = np.asarray(s.sg, float)
            if depth is not None and not depth[0] <= pos[third] <= depth[1]:
                continue
            x, y = pos[plane[0]], pos[plane[1]]
            ax.plot([x], [y], marker="x", ms=7, mew=2.6, color="white", ls="none", zorder=6)
            ax.plot([x], [y], marker="x", ms=7, mew=1.2, color=color, ls="none", zorder=6)
            text = s.name.split(" (")[0] if short else s.name
            ax.annotate(text, (x, y), xytext=(4, 4), textcoords="offset points", fontsize=fontsize,
                        color=color, zorder=6,
                        bbox=dict(boxstyle="round,pad=0.1", fc="white", ec="none", alpha=0.6))
            drawn.append(s.name)
    return drawn


def zoa_slice_mask(size: float, zoa_b: float, *, plane=(0, 1), offset: float = 0.0, n: int = 161) -> np.ndarray:
    """(n, n) bool: the points of a supergalactic slice plane (axes ``plane``, the third SG axis at
    ``offset`` Mpc/h, observer at 0, side ``size`` Mpc/h) whose direction lies in the Zone of
    Avoidance, |b| < ``zoa_b`` deg (Galactic b through astropy, :func:`zoa_lib.survey.sky.sg_to_galactic`).
    Indexed [i along plane[0], j along plane[1]] on ``n`` points from −size/2 to size/2."""
    from zoa_lib.survey.sky import sg_to_galactic

    x = np.linspace(-size / 2.0, size / 2.0, int(n))
    A, B = np.meshgrid(x, x, indexing="ij")
    xyz = np.zeros((3,) + A.shape)
    xyz[plane[0]], xyz[plane[1]] = A, B
    xyz[({0, 1, 2} - set(plane)).pop()] = float(offset)
    _, b, d = sg_to_galactic(*(c.ravel() for c in xyz))
    return ((np.abs(b) < zoa_b) & (d > 0)).reshape(A.shape)


def mark_zoa_slice(ax, size: float, zoa_b: float, *, plane=(0, 1), offset: float = 0.0, n: int = 161,
                   color="0.35", label: str | None = "ZOA"):
    """Hatch the Zone of Avoidance (|b| < ``zoa_b`` deg, :func:`zoa_slice_mask`) on a cube slice drawn
    by :func:`~zoa_lib.book.viz.slices.plot_slice` (axes in Mpc/h, observer at 0). Returns the contour set."""
    mask = zoa_slice_mask(size, zoa_b, plane=plane, offset=offset, n=n)
    x = np.linspace(-size / 2.0, size / 2.0, int(n))
    with style():
        cs = ax.contourf(x, x, mask.T.astype(float), levels=[0.5, 1.5], colors="none", hatches=["////"], zorder=4)
        for coll in getattr(cs, "collections", [cs]):
            coll.set_edgecolor(color)
            coll.set_linewidth(0.0)
        ax.contour(x, x, mask.T.astype(float), levels=[0.5], colors=[color], linewidths=0.8, zorder=4)
        if label:
            ax.plot([], [], color=color, lw=0.8, label=f"{label}, |b| < {zoa_b:g}°")
    return cs


def sky_shell_map(field, size: float, r_lo: float, r_hi: float, nside_like=(180, 90), *,
                  kind: str | None = None, n_r: int | None = None, structures=None, zoa_b: float | None = None,
                  ax=None, title: str | None = None, cmap=None, vmin=None, vmax=None, norm=None,
                  label: str | None = None, colorbar: bool = True, frame: str | None = None):
    """Mollweide map of a cube field averaged over a distance shell (:func:`sample_shell`),
    with optional ZOA band and named structures, in ``frame`` ("galactic", the default, or
    "supergalactic"; on a given ``ax`` of :func:`sky_axes` its own frame).

    ``kind`` defaults to "velocity" for a (N, N, N, 3) cube (radial velocity, km/s) and
    "density" (field = δ, drawn as 1 + δ, log 0.1–15) otherwise; "potential" takes φ in
    (km/s)². Returns the Figure; the sampled map is attached as ``fig.zoa_sky`` =
    (lon_deg, lat_deg, values) and the image as ``ax.zoa_image``.
    """
    f = check_plot_cube(field)
    kind = kind or ("velocity" if f.ndim == 4 else "density")
    ax = _sky_ax(ax, frame)
    lon, lat, vals = sample_shell(f, size, r_lo, r_hi, nside_like, n_r, frame=ax.zoa_frame)
    if kind == "velocity" and label is None:
        label = r"$v_r$  [km/s]"
    if title is None:
        title = f"{r_lo:g} < d < {r_hi:g} Mpc/h"
    n_before = len(ax.collections)
    sky_map(ax, lon, lat, vals, kind=kind, cmap=cmap, vmin=vmin, vmax=vmax, norm=norm, label=label, title=title,
            colorbar=colorbar)
    ax.zoa_image = ax.collections[n_before]
    if zoa_b:
        zoa_band(ax, zoa_b)
    if structures is not None:
        mark_structures(ax, structures)
    ax.figure.zoa_sky = (lon, lat, vals)
    return ax.figure


def figure_sky_shells(truth, pred, size: float, shells, *, kind: str | None = None,
                      frames=("galactic", "supergalactic"), labels=("truth", "V-Net"), zoa_b: float | None = None,
                      structures=None, vmin=None, vmax=None, nside_like=(120, 60), suptitle: str | None = None):
    """Shell-averaged sky maps of a true and a predicted cube side by side, in each of
    ``frames``: one row per shell (``shells`` = [(r_lo, r_hi), ...] in Mpc/h), columns
    (truth, prediction) for the first frame then for the next, one colour scale for all
    panels (:func:`kind_norm` of the truth's shell values unless ``vmin``/``vmax``), one
    colour bar. ``truth``/``pred``: (N, N, N) δ, φ in (km/s)², or (N, N, N, 3) velocities
    in km/s (radial velocity maps). Returns the Figure; ``fig.zoa_sky_axes[row][col]``
    are the sky Axes."""
    from matplotlib.cm import ScalarMappable

    t = check_plot_cube(truth, "truth")
    p = check_plot_cube(pred, "pred")
    if t.shape != p.shape:
        raise VizError(f"truth {t.shape} and pred {p.shape} must have the same shape")
    shells = [(float(lo), float(hi)) for lo, hi in shells]
    if not shells:
        raise VizError("figure_sky_shells: no shells")
    frames = tuple(_check_frame(f) for f in frames) or ("galactic",)
    kind = kind or ("velocity" if t.ndim == 4 else "density")
    sampled = np.concatenate([sample_shell(t, size, lo, hi, nside_like)[2].ravel() for lo, hi in shells])
    nrm = kind_norm("velocity" if kind == "velocity" else kind, sampled, vmin=vmin, vmax=vmax)
    k = kind_of(kind)
    nrow, ncol = len(shells), 2 * len(frames)
    fig = new_figure(figsize=(4.3 * ncol, 2.45 * nrow + 0.9))
    grid = []
    for r, (lo, hi) in enumerate(shells):
        row = []
        for j, frame in enumerate(frames):
            for c, (cube, who) in enumerate(((t, labels[0]), (p, labels[1]))):
                ax = sky_axes(fig, (nrow, ncol, r * ncol + 2 * j + c + 1), frame)
                sky_shell_map(cube, size, lo, hi, nside_like, kind=kind, ax=ax, zoa_b=zoa_b, structures=structures,
                              norm=nrm, colorbar=False,
                              title=f"{who}, {SKY_FRAMES[frame][2].lower()}: {lo:g}–{hi:g} Mpc/h")
                ax.title.set_fontsize(9)
                ax.xaxis.label.set_visible(False)
                ax.yaxis.label.set_visible(False)
                row.append(ax)
        grid.append(row)
    label = r"$v_r$  [km/s]" if kind == "velocity" else k.label
    with style():
        fig.colorbar(ScalarMappable(norm=nrm, cmap=k.cmap), ax=[a for row in grid for a in row],
                     orientation="horizontal", shrink=0.4, aspect=40, pad=0.03, label=label)
        if suptitle:
            fig.suptitle(suptitle)
    fig.zoa_sky_axes = grid
    return fig


