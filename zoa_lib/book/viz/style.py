"""style: part of :mod:`zoa_lib.book.viz` (see its docstring for the conventions)."""
from __future__ import annotations

import contextlib
import io
from dataclasses import dataclass
from typing import Callable

import numpy as np
from matplotlib.figure import Figure

from zoa_lib.errors import ZoaError
from zoa_lib.universe.cosmology import C_LIGHT
from zoa_lib.universe.grid import check_cube, voxel_centres

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


def axis_index(axis) -> int:
    if isinstance(axis, str):
        try:
            return AXIS_NAMES.index(axis.upper())
        except ValueError:
            raise VizError(f"axis must be one of {AXIS_NAMES} or 0, 1, 2, got {axis!r}") from None
    if axis in (0, 1, 2):
        return int(axis)
    raise VizError(f"axis must be one of {AXIS_NAMES} or 0, 1, 2, got {axis!r}")


def check_plot_cube(field, name="field", vector=None) -> np.ndarray:
    """:func:`zoa_lib.universe.grid.check_cube` raising :class:`VizError` (``vector=None``: scalar or vector)."""
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
    a = check_plot_cube(field)
    ax = axis_index(axis)
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
    ax = axis_index(axis)
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


def kind_of(kind: str, of: str | None = None) -> Kind:
    if kind == "residual":
        base = KINDS.get(of or "density")
        if base is None:
            raise VizError(f"residual of unknown kind {of!r} (known: {', '.join(KINDS)})")
        tr = _identity if base.name == "density" else base.transform
        return Kind("residual", RESIDUAL_LABELS[base.name], "PuOr_r", tr, "symmetric")
    if kind not in KINDS:
        raise VizError(f"unknown map kind {kind!r} (known: {', '.join(KINDS)}, residual)")
    return KINDS[kind]


def robust_abs_max(x, q=99.0) -> float:
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

    k = kind_of(kind, of)
    disp = None if data is None else k.transform(data)
    if k.norm == "log":
        return LogNorm(vmin if vmin is not None else k.vmin, vmax if vmax is not None else k.vmax)
    if k.norm == "fixed":
        return Normalize(vmin if vmin is not None else k.vmin, vmax if vmax is not None else k.vmax)
    if k.norm == "positive":
        top = robust_abs_max(disp, 99.5) if disp is not None else 1.0
        return Normalize(vmin if vmin is not None else 0.0, vmax if vmax is not None else top)
    m = robust_abs_max(disp) if disp is not None else 1.0
    return Normalize(vmin if vmin is not None else -m, vmax if vmax is not None else m)


