"""slices: part of :mod:`zoa_lib.book.viz` (see its docstring for the conventions)."""
from __future__ import annotations

import numpy as np

from zoa_lib.book.viz.style import (
    AXIS_NAMES,
    SLAB,
    VizError,
    axis_index,
    box_extent,
    kind_norm,
    kind_of,
    new_figure,
    plane_axes,
    robust_abs_max,
    slab_average,
    style,
)
from zoa_lib.universe.grid import voxel_centres


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
    k = kind_of(kind, of)
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


def as_map(a, size, axis, lo, hi, name):
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

    k = kind_of(kind)
    disp = np.asarray(k.transform(truth2d), dtype=float)
    disp = disp[np.isfinite(disp)]
    if k.norm == "log":
        hi = max(k.vmax, float(np.percentile(disp, q))) if disp.size else k.vmax
        return LogNorm(k.vmin, hi)
    m = robust_abs_max(disp, q)
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
    (:func:`zoa_lib.universe.velocity.velocity_from_potential`), and as ``velocity_pred`` that of the
    predicted one: the residual arrows then show the error of φ alone. Returns the Figure
    (3 panels + 2 colour bars); the shared norm is attached as ``fig.zoa_norm``.
    """
    if kind == "residual":
        raise VizError("figure_truth_vs_prediction: kind is the field's kind, not 'residual'")
    kind_of(kind)
    ax_i = axis_index(axis)
    plane = plane_axes(ax_i)
    t = as_map(truth, size, ax_i, lo, hi, "truth")
    p = as_map(pred, size, ax_i, lo, hi, "pred")
    if t.shape != p.shape:
        raise VizError(f"truth map {t.shape} and prediction map {p.shape} differ in shape")
    vt = None if velocity_truth is None else as_map(velocity_truth, size, ax_i, lo, hi, "velocity_truth")
    vp = None if velocity_pred is None else as_map(velocity_pred, size, ax_i, lo, hi, "velocity_pred")
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
        k = kind_of(kind)
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


