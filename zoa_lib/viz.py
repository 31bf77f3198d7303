"""Publication figures of the paper book (matplotlib): slices, scatter plots, spectra,
bulk flows, training curves and Galactic sky maps.

Every function takes plain numpy arrays and draws with ``matplotlib.figure.Figure``
(never ``pyplot``, never ``plt.show``): nothing accumulates in pyplot's figure list, and
importing this module changes no global state. Figure-level functions (``figure_*``,
``sky_shell_map``, ``plot_catalog_sky``, ``plot_selection``, ``plot_loss_curves``)
return a :class:`~matplotlib.figure.Figure` (a subclass that Jupyter displays as PNG
when it is a cell's value, with no pyplot or inline backend needed); axes-level functions (``plot_*(ax, ...)``,
``sky_map``) draw on the axes they are given and return it (or the image they drew,
where said; ``ax.figure`` is its Figure). ``fig.savefig(path)`` writes a figure;
``display(fig)`` or myst-nb ``glue(name, fig)`` puts it in a page.

Conventions (docs/DESIGN.md)
---------------------------------
* Cube fields have array axes (0, 1, 2) = (SGX, SGY, SGZ), voxel ``i`` centred at
  ``x_i = -L/2 + (i + 0.5) L/N`` (Mpc/h), observer at the centre. Velocities are
  ``(..., 3)`` arrays (v_SGX, v_SGY, v_SGZ) in km/s; φ is in (km/s)².
* A 2D map ``m[i_a, i_b]`` keeps the cube's index order: its first index runs along the
  first in-plane axis (drawn horizontally), its second along the second one (vertically).
* Density is shown as 1 + δ on a logarithmic colour scale from 0.1 to 15; the potential
  as φ/c² × 10⁶ (c in km/s, so φ/c² is the dimensionless Newtonian potential of the
  paper, whose maps are in units of 10⁻⁶) from −6 to 6; velocity arrows are scaled so
  that the key arrow is 1000 km/s (Dupuy et al. 2025, main figure). The truth-vs-prediction
  figure (:func:`figure_truth_vs_prediction`) instead derives one scale for truth and
  prediction from the truth (:func:`truth_norm`), so that a run whose potential exceeds
  ±6 × 10⁻⁶ is not drawn saturated.
* Sky maps are Mollweide projections drawn on :func:`sky_axes`, in Galactic (l, b) or
  supergalactic (SGL, SGB) coordinates, with longitude 0 at the centre increasing to the
  LEFT, as astronomers draw the sky; the labels are placed at the longitudes they name.

Colours are colour-blind friendly: Okabe–Ito lines, perceptually uniform sequential maps
(magma, cividis) and ColorBrewer diverging maps (RdBu, PuOr).
"""
from __future__ import annotations

import contextlib
import io
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Mapping

import numpy as np
from matplotlib.figure import Figure

from .cosmology import C_LIGHT
from .errors import ZoaError
from .grid import check_cube, voxel_centres
from .survey import galactic_to_sg

#: The names of the cube axes, in array order.
AXIS_NAMES = ("SGX", "SGY", "SGZ")
#: Okabe & Ito (2008) colour-blind-safe qualitative palette, in the order lines use it.
OKABE_ITO = ("#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#000000", "#F0E442")
#: Density colour scale of the paper: 1 + δ from 0.1 to 15, logarithmic.
DENSITY_RANGE = (0.1, 15.0)
#: Potential colour scale of the paper: φ/c² in units of 1e-6 from −6 to 6.
POTENTIAL_RANGE = (-6.0, 6.0)
#: Multiplier from φ in (km/s)² to the displayed potential: φ/c² × 10⁶.
POTENTIAL_DISPLAY_FACTOR = 1e6 / C_LIGHT ** 2
#: Default paper slab: −15 < SGZ < 15 Mpc/h.
SLAB = (-15.0, 15.0)

#: rcParams of every figure of the book (used through :func:`style`).
STYLE = {
    "figure.dpi": 110,
    "savefig.dpi": 200,
    "savefig.bbox": "tight",
    "font.size": 10,
    "axes.titlesize": 11,
    "axes.labelsize": 10,
    "legend.fontsize": 8.5,
    "legend.frameon": False,
    "xtick.direction": "in",
    "ytick.direction": "in",
    "xtick.top": True,
    "ytick.right": True,
    "xtick.minor.visible": True,
    "ytick.minor.visible": True,
    "lines.linewidth": 1.6,
    "image.origin": "lower",
    "image.cmap": "viridis",
    "axes.grid": False,
    "mathtext.default": "regular",
}


class VizError(ZoaError, ValueError):
    """An array given to a plotting function has the wrong shape, kind or content."""


@contextlib.contextmanager
def style():
    """Context in which matplotlib uses the book's :data:`STYLE` (restored on exit)."""
    import matplotlib as mpl
    from cycler import cycler

    with mpl.rc_context({**STYLE, "axes.prop_cycle": cycler(color=list(OKABE_ITO))}):
        yield


class BookFigure(Figure):
    """A Figure that Jupyter displays as PNG when it is a cell's value or passed to
    ``display``/myst-nb ``glue`` — with no pyplot and no activated inline backend."""

    def _repr_png_(self):
        return figure_png(self, dpi=STYLE["figure.dpi"])


def new_figure(figsize=(6.4, 4.8), **kw) -> BookFigure:
    """A constrained-layout :class:`BookFigure`, not registered with pyplot (nothing
    accumulates in pyplot, no double display in notebooks)."""
    with style():
        return BookFigure(figsize=figsize, layout=kw.pop("layout", "constrained"), **kw)


def figure_png(fig, dpi: int | None = None) -> bytes:
    """The PNG bytes of ``fig`` in the book's style (what notebooks, the explorer widget
    and tests show)."""
    buf = io.BytesIO()
    with style():
        fig.savefig(buf, format="png", dpi=dpi)
    return buf.getvalue()


# --------------------------------------------------------------------------- grid
def box_extent(size: float) -> tuple[float, float, float, float]:
    """The imshow extent (left, right, bottom, top) of a cube face, Mpc/h."""
    h = size / 2.0
    return (-h, h, -h, h)


def _axis_index(axis) -> int:
    if isinstance(axis, str):
        try:
            return AXIS_NAMES.index(axis.upper())
        except ValueError:
            raise VizError(f"axis must be one of {AXIS_NAMES} or 0, 1, 2, got {axis!r}") from None
    if axis in (0, 1, 2):
        return int(axis)
    raise VizError(f"axis must be one of {AXIS_NAMES} or 0, 1, 2, got {axis!r}")


def _check_cube(field, name="field", vector=None) -> np.ndarray:
    """:func:`zoa_lib.grid.check_cube` raising :class:`VizError` (``vector=None``: scalar or vector)."""
    return check_cube(field, name, vector=vector, error=VizError)


def slab_average(field, size: float, axis=2, lo: float = SLAB[0], hi: float = SLAB[1]):
    """Mean of a cube field over the voxels whose centres lie in ``lo < x < hi`` (Mpc/h)
    along ``axis`` — the paper's maps average −15 < SGZ < 15 Mpc/h.

    Parameters
    ----------
    field : (N, N, N) or (N, N, N, 3) array on the grid convention (a velocity keeps its
        three components).
    size : box side L, Mpc/h.
    axis : 0, 1, 2 or "SGX", "SGY", "SGZ": the axis averaged over.
    lo, hi : slab limits, Mpc/h.

    Returns
    -------
    (map2d, extent) : map2d has shape (N, N) (or (N, N, 3)) indexed by the two remaining
        axes in cube order; extent = (−L/2, L/2, −L/2, L/2) for ``imshow(map2d.T,
        origin="lower", extent=extent)``.
    """
    a = _check_cube(field)
    ax = _axis_index(axis)
    n = a.shape[0]
    x = voxel_centres(size, n)
    sel = (x > lo) & (x < hi)
    if not sel.any():
        raise VizError(f"no voxel centre of the {n}-voxel grid (L = {size:g} Mpc/h) lies in "
                       f"{lo:g} < {AXIS_NAMES[ax]} < {hi:g} Mpc/h; widen the slab")
    m = np.take(a, np.flatnonzero(sel), axis=ax).mean(axis=ax)
    return m, box_extent(size)


def plane_axes(axis) -> tuple[int, int]:
    """The two in-plane axes (cube order) of a slice perpendicular to ``axis``."""
    ax = _axis_index(axis)
    return tuple(i for i in range(3) if i != ax)


# --------------------------------------------------------------------------- kinds
@dataclass(frozen=True)
class Kind:
    """How one kind of 2D map is drawn: display transform, colour map, norm, label."""

    name: str
    label: str
    cmap: str
    transform: Callable[[np.ndarray], np.ndarray]
    norm: str  # "log" | "fixed" | "symmetric" | "positive"
    vmin: float | None = None
    vmax: float | None = None


def density_display(delta) -> np.ndarray:
    """1 + δ (floored at 1e-3 so that empty voxels show as the lowest colour of the log scale)."""
    return np.maximum(1.0 + np.asarray(delta, dtype=float), 1e-3)


def potential_display(phi) -> np.ndarray:
    """φ/c² × 10⁶ from φ in (km/s)² (c = 299 792.458 km/s): the paper's potential maps,
    dimensionless in units of 10⁻⁶."""
    return np.asarray(phi, dtype=float) * POTENTIAL_DISPLAY_FACTOR


def _identity(x):
    return np.asarray(x, dtype=float)


KINDS = {
    "density": Kind("density", r"$1+\delta$", "magma", density_display, "log", *DENSITY_RANGE),
    "potential": Kind("potential", r"$\phi/c^2$  [$10^{-6}$]", "RdBu_r", potential_display, "fixed",
                      *POTENTIAL_RANGE),
    "velocity": Kind("velocity", r"$v$  [km/s]", "RdBu_r", _identity, "symmetric"),
    "n_gal": Kind("n_gal", r"$N_{\rm gal}$ per voxel", "cividis", _identity, "positive"),
    "v_pec": Kind("v_pec", r"$V_{\rm pec}$  [km/s]", "RdBu_r", _identity, "symmetric"),
}
#: Residual (prediction − truth) of each kind: its display transform is the kind's own
#: (for density δ differences, equal to differences of 1 + δ).
RESIDUAL_LABELS = {
    "density": r"$\delta_{\rm pred}-\delta_{\rm true}$",
    "potential": r"$\Delta\phi/c^2$  [$10^{-6}$]",
    "velocity": r"$\Delta v$  [km/s]",
    "n_gal": r"$\Delta N_{\rm gal}$",
    "v_pec": r"$\Delta V_{\rm pec}$  [km/s]",
}


def _kind(kind: str, of: str | None = None) -> Kind:
    if kind == "residual":
        base = KINDS.get(of or "density")
        if base is None:
            raise VizError(f"residual of unknown kind {of!r} (known: {', '.join(KINDS)})")
        tr = _identity if base.name == "density" else base.transform
        return Kind("residual", RESIDUAL_LABELS[base.name], "PuOr_r", tr, "symmetric")
    if kind not in KINDS:
        raise VizError(f"unknown map kind {kind!r} (known: {', '.join(KINDS)}, residual)")
    return KINDS[kind]


def _robust_abs_max(x, q=99.0) -> float:
    x = np.abs(np.asarray(x, dtype=float))
    x = x[np.isfinite(x)]
    v = float(np.percentile(x, q)) if x.size else 0.0
    return v if v > 0 else 1.0


def kind_norm(kind: str, data=None, *, of: str | None = None, vmin=None, vmax=None):
    """The matplotlib norm of a map kind: LogNorm(0.1, 15) for density, Normalize(−6, 6)
    for the potential, a symmetric Normalize (99th percentile of |data|) for velocities
    and residuals, Normalize(0, 99th percentile) for galaxy counts; ``vmin``/``vmax``
    override."""
    from matplotlib.colors import LogNorm, Normalize

    k = _kind(kind, of)
    disp = None if data is None else k.transform(data)
    if k.norm == "log":
        return LogNorm(vmin if vmin is not None else k.vmin, vmax if vmax is not None else k.vmax)
    if k.norm == "fixed":
        return Normalize(vmin if vmin is not None else k.vmin, vmax if vmax is not None else k.vmax)
    if k.norm == "positive":
        top = _robust_abs_max(disp, 99.5) if disp is not None else 1.0
        return Normalize(vmin if vmin is not None else 0.0, vmax if vmax is not None else top)
    m = _robust_abs_max(disp) if disp is not None else 1.0
    return Normalize(vmin if vmin is not None else -m, vmax if vmax is not None else m)


# --------------------------------------------------------------------------- slices
def plot_slice(ax, field2d, size: float, kind: str = "density", velocity2d=None, arrow_scale: float = 1000.0,
               *, of: str | None = None, plane=(0, 1), vmin=None, vmax=None, cmap=None, norm=None,
               arrows_per_side: int = 16, arrow_color=None, observer: bool = True, colorbar: bool = True,
               title: str | None = None, key: bool = True):
    """Draw a 2D map of the cube on ``ax`` with the paper's conventions; return the image.

    Parameters
    ----------
    ax : matplotlib Axes.
    field2d : (n, n) map indexed [i_a, i_b] along the in-plane axes ``plane`` (e.g. from
        :func:`slab_average`), in the kind's units: δ for ``density`` (drawn as 1 + δ,
        log scale 0.1–15), φ in (km/s)² for ``potential`` (drawn as φ/c² × 10⁶, −6..6),
        km/s for ``velocity`` and ``v_pec``, galaxies per voxel for ``n_gal``, and
        prediction − truth in the units of ``of`` for ``residual``. ``None`` with
        ``velocity2d`` given draws the arrows only.
    size : box side L, Mpc/h.
    kind : "density" | "potential" | "velocity" | "n_gal" | "v_pec" | "residual".
    velocity2d : optional (n, n, 3) (all components, ``plane`` picks the in-plane ones) or
        (n, n, 2) (in-plane components) velocity map, km/s, drawn as arrows.
    arrow_scale : km/s of the key arrow; an arrow of that speed is one arrow spacing long.
    of : for ``residual``, the kind of the difference ("density", "potential", ...).
    plane : the cube axes (a, b) drawn horizontally and vertically: (0, 1) = SGX–SGY.
    vmin, vmax, cmap, norm : override the kind's colour scale.
    arrows_per_side : about how many arrows along each side.
    arrow_color : default white on density and N_gal maps (dark low end), black on the others.
    observer : mark the observer at the origin.
    colorbar : add a colour bar labelled with the units.
    """
    from matplotlib.colors import LogNorm

    n = None
    a_name, b_name = AXIS_NAMES[plane[0]], AXIS_NAMES[plane[1]]
    k = _kind(kind, of)
    im = None
    with style():
        if field2d is not None:
            f = np.asarray(field2d)
            if f.ndim != 2 or f.shape[0] != f.shape[1]:
                raise VizError(f"plot_slice: field2d must be a square 2D map, got shape {f.shape}")
            n = f.shape[0]
            disp = k.transform(f)
            nrm = norm or kind_norm(kind, f, of=of, vmin=vmin, vmax=vmax)
            import matplotlib as mpl

            cm = mpl.colormaps[cmap or k.cmap]
            if isinstance(nrm, LogNorm):
                cm = cm.with_extremes(bad=cm(0.0))
            im = ax.imshow(disp.T, origin="lower", extent=box_extent(size), cmap=cm, norm=nrm,
                           interpolation="nearest", aspect="equal")
            if colorbar:
                extend = _extend(disp, nrm)
                ax.figure.colorbar(im, ax=ax, label=k.label, extend=extend, shrink=0.9)
        if velocity2d is not None:
            v = np.asarray(velocity2d, dtype=float)
            if v.ndim != 3 or v.shape[0] != v.shape[1] or v.shape[2] not in (2, 3):
                raise VizError(f"plot_slice: velocity2d must have shape (n, n, 3) or (n, n, 2), got {v.shape}")
            if n is not None and v.shape[0] != n:
                raise VizError(f"plot_slice: velocity2d is {v.shape[0]}² but field2d is {n}²")
            u_c, w_c = (plane if v.shape[2] == 3 else (0, 1))
            if arrow_color is None:
                arrow_color = "white" if (k.name in ("density", "n_gal") and field2d is not None) else "black"
            _quiver(ax, v[..., u_c], v[..., w_c], size, arrow_scale, arrows_per_side, arrow_color, key)
        if observer:
            ax.plot([0.0], [0.0], marker="*", ms=11, mfc="white", mec="black", mew=0.9, ls="none",
                    zorder=5, label="observer")
        h = size / 2.0
        ax.set_xlim(-h, h)
        ax.set_ylim(-h, h)
        ax.set_aspect("equal")
        ax.set_xlabel(f"{a_name}  [Mpc/h]")
        ax.set_ylabel(f"{b_name}  [Mpc/h]")
        if title:
            ax.set_title(title, loc="left")
    return im


def _extend(disp, nrm) -> str:
    d = np.asarray(disp)[np.isfinite(disp)]
    if d.size == 0:
        return "neither"
    lo, hi = d.min() < nrm.vmin, d.max() > nrm.vmax
    return {(False, False): "neither", (True, False): "min", (False, True): "max", (True, True): "both"}[(lo, hi)]


def _quiver(ax, u, w, size, arrow_scale, per_side, color, key):
    n = u.shape[0]
    step = max(1, int(round(n / per_side)))
    start = step // 2
    x = voxel_centres(size, n)[start::step]
    X, Y = np.meshgrid(x, x, indexing="xy")
    U = u[start::step, start::step].T
    W = w[start::step, start::step].T
    spacing = step * size / n
    q = ax.quiver(X, Y, U, W, angles="xy", scale_units="xy", scale=arrow_scale / spacing, color=color,
                  width=0.005, headwidth=3.5, headlength=4.0, minlength=0.0, zorder=4, pivot="middle")
    if key:
        ax.quiverkey(q, 0.78, 1.035, arrow_scale, f"{arrow_scale:g} km/s", labelpos="E", coordinates="axes",
                     color="black", fontproperties={"size": 8})
    return q


def _as_map(a, size, axis, lo, hi, name):
    a = np.asarray(a)
    cube = a.ndim >= 3 and a.shape[0] == a.shape[1] == a.shape[2] and (a.ndim == 3 or a.shape[3] == 3)
    if cube and a.ndim <= 4:
        return slab_average(a, size, axis, lo, hi)[0]
    if a.ndim == 2 or (a.ndim == 3 and a.shape[-1] in (2, 3)):
        return a
    raise VizError(f"{name} must be a cube (N, N, N[, 3]) or a map (n, n[, 3]), got shape {a.shape}")


#: Percentile of |truth| (display units) that sets the shared colour scale of
#: :func:`figure_truth_vs_prediction`: at most 0.5 % of the truth's pixels lie beyond it.
TRUTH_SCALE_PERCENTILE = 99.5


def truth_norm(kind: str, truth2d, q: float = TRUTH_SCALE_PERCENTILE):
    """The colour scale that a truth map and its prediction share, derived from the TRUTH
    so that the truth is not saturated.

    * ``density`` (1 + δ, log): the paper's LogNorm(0.1, 15), its top raised to the
      truth's qth percentile of 1 + δ where the truth's peaks go beyond 15 (the bottom stays
      at 0.1, where empty voxels are drawn by convention);
    * every other kind (potential φ/c² × 10⁶, velocities, ...): symmetric,
      Normalize(−m, m) with m the qth percentile of |truth| in display units.

    ``truth2d``: the map as drawn (e.g. a slab average), in the kind's units (δ, φ in
    (km/s)², km/s). At most (100 − q) % of the truth's pixels lie beyond the top of the
    scale (and, for density, those below 1 + δ = 0.1)."""
    from matplotlib.colors import LogNorm, Normalize

    k = _kind(kind)
    disp = np.asarray(k.transform(truth2d), dtype=float)
    disp = disp[np.isfinite(disp)]
    if k.norm == "log":
        hi = max(k.vmax, float(np.percentile(disp, q))) if disp.size else k.vmax
        return LogNorm(k.vmin, hi)
    m = _robust_abs_max(disp, q)
    return Normalize(-m, m)


def figure_truth_vs_prediction(truth, pred, size: float, kind: str = "density", velocity_truth=None,
                               velocity_pred=None, *, axis=2, lo: float = SLAB[0], hi: float = SLAB[1],
                               arrow_scale: float = 1000.0, titles=("Truth", "V-Net prediction",
                                                                    "Residual (prediction − truth)"),
                               residual_lim: float | None = None, suptitle: str | None = None, norm=None):
    """The paper's main figure: truth | prediction | residual maps of one field.

    ``truth`` and ``pred`` are cubes (N, N, N) — averaged over the slab ``lo < x < hi``
    along ``axis`` (default −15 < SGZ < 15 Mpc/h) — or already-averaged (N, N) maps, in
    the units of ``kind`` (δ, or φ in (km/s)², ...). Velocities (cubes (N, N, N, 3) or
    maps (N, N, 3)) in km/s add arrows scaled to ``arrow_scale`` km/s; the residual panel
    shows prediction − truth and, when both velocities are given, their difference.

    Truth and prediction share one colour scale and colour bar, derived from the truth map
    (:func:`truth_norm`: the paper's log 0.1–15 for density, widened if the truth goes
    beyond it; a symmetric ±(99.5th percentile of |truth|) otherwise), so the truth is
    never saturated; ``norm`` overrides it. For the paper's figure, pass as
    ``velocity_truth`` the velocity of the TRUE potential, −(2f/3H0Ωm)∇φ_true
    (:func:`zoa_lib.velocity.velocity_from_potential`), and as ``velocity_pred`` that of the
    predicted one: the residual arrows then show the error of φ alone. Returns the Figure
    (3 panels + 2 colour bars); the shared norm is attached as ``fig.zoa_norm``.
    """
    if kind == "residual":
        raise VizError("figure_truth_vs_prediction: kind is the field's kind, not 'residual'")
    _kind(kind)
    ax_i = _axis_index(axis)
    plane = plane_axes(ax_i)
    t = _as_map(truth, size, ax_i, lo, hi, "truth")
    p = _as_map(pred, size, ax_i, lo, hi, "pred")
    if t.shape != p.shape:
        raise VizError(f"truth map {t.shape} and prediction map {p.shape} differ in shape")
    vt = None if velocity_truth is None else _as_map(velocity_truth, size, ax_i, lo, hi, "velocity_truth")
    vp = None if velocity_pred is None else _as_map(velocity_pred, size, ax_i, lo, hi, "velocity_pred")
    vr = None if (vt is None or vp is None) else vp - vt
    fig = new_figure(figsize=(15.0, 4.9))
    with style():
        axes = fig.subplots(1, 3, sharex=True, sharey=True)
        nrm = norm if norm is not None else truth_norm(kind, t)
        fig.zoa_norm = nrm
        plot_slice(axes[0], t, size, kind, vt, arrow_scale, plane=plane, norm=nrm, colorbar=False,
                   title=titles[0])
        im = plot_slice(axes[1], p, size, kind, vp, arrow_scale, plane=plane, norm=nrm, colorbar=False,
                        title=titles[1])
        k = _kind(kind)
        fig.colorbar(im, ax=list(axes[:2]), label=k.label, shrink=0.9,
                     extend=_extend(np.concatenate([k.transform(t).ravel(), k.transform(p).ravel()]), nrm))
        res = p - t
        rn = kind_norm("residual", res, of=kind,
                       vmin=-residual_lim if residual_lim else None, vmax=residual_lim if residual_lim else None)
        plot_slice(axes[2], res, size, "residual", vr, arrow_scale, of=kind, plane=plane, norm=rn,
                   title=titles[2])
        for a in axes[1:]:
            a.set_ylabel("")
        if suptitle is None:
            lo_s, hi_s = f"{lo:g}".replace("-", "−"), f"{hi:g}"
            suptitle = f"Average over {lo_s} < {AXIS_NAMES[ax_i]} < {hi_s} Mpc/h"
        if suptitle:
            fig.suptitle(suptitle)
    return fig


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


ENGINE_LABELS = {"2lpt": "2LPT", "pm": "PM (jaxpm)", "linear": "linear (ICs)"}


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
    ax_i = _axis_index(axis)
    plane = plane_axes(ax_i)
    maps = {k: _as_map(v, size, ax_i, lo, hi, k) for k, v in deltas.items()}
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
        fig.colorbar(im, ax=list(axes), label=_kind("density").label, shrink=0.9)
    return fig


def plot_engine_power(spectra: Mapping, *, labels: Mapping[str, str] | None = None, band: float = 0.1):
    """Two panels from :func:`zoa_lib.nonlinear.engine_spectra`: (a) P(k) of each engine,
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
    """One-point PDFs of δ from :func:`zoa_lib.nonlinear.density_pdfs` (one line per field,
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
    error bars per selection, from :func:`zoa_lib.survey.velocity_bias_by_selection` (or
    {label: :func:`zoa_lib.survey.velocity_bias_by_shell` dict}). Returns the Axes."""
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
    :func:`zoa_lib.metrics.bulk_flow_error` (as ``zoa evaluate`` writes it): the range for the
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


#: Marker of each window of a published bulk flow (:data:`zoa_lib.literature.WINDOWS`).
WINDOW_MARKERS = {"top-hat": "s", "gaussian": "D", "mv": "v", "mle": "^", "external": "P"}


def plot_bulk_flow_published(fig, bulk_flows: Mapping[str, list], published, *, lcdm=None, r_max=None):
    """|B|(R) and the direction of a reconstruction's bulk flows beside published values.

    fig : a Figure (two panels are added: |B| against R, and a Galactic sky map of the
        directions) or None (new Figure).
    bulk_flows : {label: rows {R, B, l, b, (B_std)}} (``Reconstruction.bulk_flow_table``),
        drawn as lines with their scatter over realizations as a band; their directions as
        points growing with R.
    published : :class:`zoa_lib.literature.PublishedBulkFlow` list, drawn as points with
        1σ errors, one marker per window (:data:`WINDOW_MARKERS`); a value at a radius beyond
        the axis (or ``external``, which has none) is drawn at the right edge with an arrow.
    lcdm : (R, rms |B|) of linear ΛCDM (km/s), dashed. r_max: the largest R of the axis
        (default the reconstruction's largest radius × 1.15). Returns (ax_B, ax_sky)."""
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
    inside the Zone of Avoidance shaded. ``rows``: :func:`zoa_lib.local_universe.structure_recovery`;
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


def read_history(history):
    """A training history as a pandas DataFrame, from a CSV path (Keras CSVLogger), a
    DataFrame or a mapping of lists (``History.history``)."""
    import pandas as pd

    if isinstance(history, (str, os.PathLike)):
        path = Path(history)
        try:
            df = pd.read_csv(path)
        except (OSError, pd.errors.ParserError, pd.errors.EmptyDataError) as e:
            raise VizError(f"{path}: cannot read training history ({e})") from None
        where = str(path)
    elif isinstance(history, pd.DataFrame):
        df, where = history, "history"
    elif isinstance(history, Mapping):
        df, where = pd.DataFrame(dict(history)), "history"
    else:
        raise VizError(f"training history must be a CSV path, DataFrame or dict, got {type(history).__name__}")
    if "loss" not in df.columns:
        raise VizError(f"{where}: no 'loss' column (columns: {', '.join(map(str, df.columns))})")
    return df


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


# --------------------------------------------------------------------------- sky maps
#: Sky frames and the sampling of cube fields on the sky live in :mod:`zoa_lib.sky` (computation);
#: the names are re-exported here for the plotting code and older callers.
from .sky import (SKY_FRAMES, SkyError, _sky_convert, frame_to_galactic, frame_unit_vectors,  # noqa: E402,F401
                  galactic_to_frame, interpolate_cube, sample_shell, shell_correlations, sky_grid)
from .sky import _check_frame as _sky_frame  # noqa: E402


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
    :func:`plot_slice` (values in that kind's units); otherwise ``cmap``/``norm``/``vmin``/
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
        k = _kind(kind)
        disp = None if vals is None else k.transform(vals)
        norm = norm or kind_norm(kind, vals, vmin=vmin, vmax=vmax)
        cmap = cmap or k.cmap
        label = label if label is not None else k.label
    else:
        disp = vals
        if vals is not None and norm is None:
            if vmin is None and vmax is None:
                m = _robust_abs_max(vals)
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
    by :func:`zoa_lib.local_universe.known_structures`: data/known_structures.csv's layout), a
    list of :class:`~zoa_lib.local_universe.Structure`, a list of (name, l, b) tuples or a
    DataFrame with columns name, l, b."""
    if structures is None:
        return []
    if isinstance(structures, (str, os.PathLike)):
        from .local_universe import LocalUniverseError, known_structures

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
    """Mark named structures on a cube slice drawn by :func:`plot_slice` (axes in Mpc/h,
    observer at 0). ``structures``: objects with ``name`` and ``sg`` = (SGX, SGY, SGZ) in
    Mpc/h (:class:`zoa_lib.local_universe.Structure`); ``plane`` the drawn SG axes;
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
    f = _check_cube(field)
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

    t = _check_cube(truth, "truth")
    p = _check_cube(pred, "pred")
    if t.shape != p.shape:
        raise VizError(f"truth {t.shape} and pred {p.shape} must have the same shape")
    shells = [(float(lo), float(hi)) for lo, hi in shells]
    if not shells:
        raise VizError("figure_sky_shells: no shells")
    frames = tuple(_check_frame(f) for f in frames) or ("galactic",)
    kind = kind or ("velocity" if t.ndim == 4 else "density")
    sampled = np.concatenate([sample_shell(t, size, lo, hi, nside_like)[2].ravel() for lo, hi in shells])
    nrm = kind_norm("velocity" if kind == "velocity" else kind, sampled, vmin=vmin, vmax=vmax)
    k = _kind(kind)
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


# --------------------------------------------------------------------------- catalogs
def _check_catalog(catalog, fields, where="catalog"):
    names = getattr(getattr(catalog, "dtype", None), "names", None)
    if names is None:
        raise VizError(f"{where}: expected a numpy structured array (zoa_lib.data.CATALOG_DTYPE)")
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
    cat = _check_catalog(catalog, ("l", "b", value))
    m = vlim or _robust_abs_max(cat[value], 98)
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
    cat = _check_catalog(catalog, ("d_true", "d_obs"))
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


__all__ = [
    "AXIS_NAMES", "DENSITY_RANGE", "POTENTIAL_RANGE", "POTENTIAL_DISPLAY_FACTOR", "SLAB", "STYLE", "OKABE_ITO",
    "VizError", "BookFigure", "style", "new_figure", "figure_png", "voxel_centres", "box_extent", "slab_average",
    "plane_axes",
    "density_display", "potential_display", "kind_norm", "truth_norm", "TRUTH_SCALE_PERCENTILE", "plot_slice",
    "figure_truth_vs_prediction",
    "plot_scatter_density", "plot_power_ratio", "plot_pdf", "ENGINE_LABELS", "figure_engine_slabs",
    "plot_engine_power", "plot_density_pdfs", "plot_velocity_bias_shells", "plot_bulk_flow", "plot_bulk_flow_lcdm",
    "plot_metric_vs_distance",
    "read_history", "plot_loss_curves", "SKY_FRAMES", "galactic_to_frame", "frame_to_galactic",
    "frame_unit_vectors", "sky_xy", "sky_axes", "sky_map", "zoa_band", "read_structures",
    "mark_structures", "sky_grid", "interpolate_cube", "sample_shell", "sky_shell_map", "figure_sky_shells",
    "plot_catalog_sky", "plot_selection",
]
