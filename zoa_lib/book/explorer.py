"""Slice explorer: an ipywidgets app over cube fields (truth, inputs, prediction, residual).

:class:`SliceExplorer` keeps all logic in the pure method :meth:`SliceExplorer.render`
(field name, axis, slice index, arrows on/off → a matplotlib Figure drawn by
:func:`zoa_lib.book.viz.slices.plot_slice`); the widget (:attr:`SliceExplorer.widget`) only wires a
field dropdown, an axis selector, a slice slider in Mpc/h and an arrows checkbox to it
and shows the PNG. A static book has no kernel: :meth:`SliceExplorer.static_frame`
gives a Figure to show in its place, and :meth:`SliceExplorer.scrubber_html` a slice
scrubber that works with no kernel — pre-rendered PNG frames (base64, inside the page) and
an HTML range slider with a few lines of inline JavaScript, no CDN, no widget state. The
book's chapter tags the live-widget cell ``skip-execution`` so that papermill never makes
the widget (nothing of it is embedded in the page); Jupyter runs it as any cell.

Grid convention (DESIGN.md): array axes (0, 1, 2) = (SGX, SGY, SGZ), voxel i centred at
x_i = −L/2 + (i + 0.5) L/N Mpc/h, observer at the centre; velocities (N, N, N, 3) km/s.
"""
from __future__ import annotations

import base64
import html
import io
import json
import uuid
from typing import Mapping, Sequence

import numpy as np

from zoa_lib.book.viz import slices, style
from zoa_lib.book.viz.style import AXIS_NAMES, VizError
from zoa_lib.universe import grid

#: Kinds :func:`zoa_lib.book.viz.slices.plot_slice` draws.
SLICE_KINDS = ("density", "potential", "velocity", "n_gal", "v_pec", "residual")
#: Fields the static scrubber shows by default, when the explorer has them.
SCRUBBER_FIELDS = ("truth δ", "prediction δ", "residual δ")


def guess_kind(name: str) -> tuple[str, str | None]:
    """(kind, of) of a field from its name: "N_gal" → n_gal, "V_pec" → v_pec, names with
    "resid" → residual (of potential when they mention φ/phi/potential, else density),
    φ/phi/potential → potential, "v_r"/"velocity" → velocity, anything else → density (δ)."""
    s = name.lower()
    pot = any(t in s for t in ("phi", "φ", "potential"))
    if "n_gal" in s or "ngal" in s:
        return "n_gal", None
    if "v_pec" in s or "vpec" in s:
        return "v_pec", None
    if "resid" in s:
        return "residual", "potential" if pot else "density"
    if pot:
        return "potential", None
    if "v_r" in s or "velocity" in s:
        return "velocity", None
    return "density", None


def _palette_png(png: bytes, colors: int = 128) -> bytes:
    """The PNG re-encoded with a ``colors``-entry palette (median cut), 3–4× smaller for
    colour-mapped slices, with no visible change at book sizes."""
    from PIL import Image

    img = Image.open(io.BytesIO(png)).convert("RGB").quantize(colors=colors, method=Image.Quantize.MEDIANCUT)
    out = io.BytesIO()
    img.save(out, format="PNG", optimize=True)
    return out.getvalue()


class SliceExplorer:
    """Interactive slices through cube fields.

    Parameters
    ----------
    fields : name → (N, N, N) cube, all of one grid, in their kind's units (δ; φ in
        (km/s)²; galaxies per voxel; km/s). Kinds come from the names
        (:func:`guess_kind`) unless ``kinds`` says otherwise; a residual is
        prediction − truth in the units of what it is a residual of.
    size : box side L, Mpc/h.
    velocity : optional true velocity cube (N, N, N, 3), km/s: arrows on truth and inputs.
    velocity_pred : optional predicted velocity cube: arrows on fields whose name starts
        with "pred"; residual fields get velocity_pred − velocity when both are given.
    kinds : optional name → kind or (kind, of) overrides.
    arrow_scale : km/s of the key arrow (1000 as in the paper).
    """

    def __init__(self, fields: Mapping[str, np.ndarray], size: float, velocity=None, velocity_pred=None, *,
                 kinds: Mapping[str, object] | None = None, arrow_scale: float = 1000.0):
        if not fields:
            raise VizError("SliceExplorer needs at least one field")
        self.fields = {str(k): style.check_plot_cube(v, f"field {k!r}", vector=False) for k, v in fields.items()}
        shapes = {v.shape for v in self.fields.values()}
        if len(shapes) != 1:
            raise VizError(f"SliceExplorer: fields have different shapes {sorted(shapes)}")
        self.n = next(iter(shapes))[0]
        self.size = float(size)
        self.velocity = None if velocity is None else style.check_plot_cube(velocity, "velocity", vector=True)
        self.velocity_pred = None if velocity_pred is None else style.check_plot_cube(velocity_pred, "velocity_pred",
                                                                                vector=True)
        for nm, v in (("velocity", self.velocity), ("velocity_pred", self.velocity_pred)):
            if v is not None and v.shape[0] != self.n:
                raise VizError(f"SliceExplorer: {nm} is {v.shape[0]}³ but the fields are {self.n}³")
        self.kinds: dict[str, tuple[str, str | None]] = {}
        for name in self.fields:
            k = (kinds or {}).get(name)
            k = guess_kind(name) if k is None else ((k, None) if isinstance(k, str) else tuple(k))
            if k[0] not in SLICE_KINDS:
                raise VizError(f"SliceExplorer: unknown kind {k[0]!r} for field {name!r}")
            self.kinds[name] = (k[0], k[1] if len(k) > 1 else None)
        self.arrow_scale = float(arrow_scale)
        self.x = grid.voxel_centres(self.size, self.n)
        self._widget = None

    # ------------------------------------------------------------------ constructors
    @classmethod
    def from_arrays(cls, size: float, *, delta=None, phi=None, n_gal=None, v_pec=None, prediction=None,
                    target: str = "delta", velocity=None, velocity_pred=None, inputs=None, **kw) -> "SliceExplorer":
        """Explorer over one mock: truth δ and/or φ, inputs (N_gal, V_pec, or ``inputs`` of
        shape (N, N, N, 2) as stored in the shards), the network's prediction of
        ``target`` ("delta" or "phi") and its residual (prediction − truth)."""
        if inputs is not None:
            inputs = np.asarray(inputs)
            if inputs.ndim != 4 or inputs.shape[-1] != 2:
                raise VizError(f"inputs must have shape (N, N, N, 2), got {inputs.shape}")
            n_gal = inputs[..., 0] if n_gal is None else n_gal
            v_pec = inputs[..., 1] if v_pec is None else v_pec
        if target not in ("delta", "phi"):
            raise VizError(f"target must be 'delta' or 'phi', got {target!r}")
        sym = "δ" if target == "delta" else "φ"
        f: dict[str, np.ndarray] = {}
        if delta is not None:
            f["truth δ"] = delta
        if phi is not None:
            f["truth φ"] = phi
        if n_gal is not None:
            f["N_gal"] = n_gal
        if v_pec is not None:
            f["V_pec"] = v_pec
        kinds = {"truth δ": "density", "truth φ": "potential"}
        if prediction is not None:
            f[f"prediction {sym}"] = prediction
            kinds[f"prediction {sym}"] = "density" if target == "delta" else "potential"
            truth = delta if target == "delta" else phi
            if truth is not None:
                f[f"residual {sym}"] = np.asarray(prediction) - np.asarray(truth)
                kinds[f"residual {sym}"] = ("residual", "density" if target == "delta" else "potential")
        kinds.update(kw.pop("kinds", None) or {})
        return cls(f, size, velocity, velocity_pred, kinds=kinds, **kw)

    # ------------------------------------------------------------------ pure part
    def index_of(self, position: float) -> int:
        """Index of the voxel plane nearest to ``position`` (Mpc/h)."""
        return int(np.clip(np.rint((position + self.size / 2) * self.n / self.size - 0.5), 0, self.n - 1))

    def _velocity_for(self, name: str):
        kind = self.kinds[name][0]
        if kind == "residual":
            if self.velocity is not None and self.velocity_pred is not None:
                return self.velocity_pred - self.velocity
            return None
        if name.lower().startswith("pred") and self.velocity_pred is not None:
            return self.velocity_pred
        return self.velocity

    def render(self, field: str, axis="SGZ", index: int | None = None, arrows: bool = True, *, ax=None):
        """Figure of the plane ``index`` (voxel index; default the central plane) of
        ``field`` perpendicular to ``axis`` ("SGX"/"SGY"/"SGZ" or 0/1/2), with velocity
        arrows when ``arrows`` and a velocity exists. Returns the Figure."""
        if field not in self.fields:
            raise VizError(f"unknown field {field!r} (have: {', '.join(self.fields)})")
        a = style.axis_index(axis)
        i = self.n // 2 if index is None else int(index)
        if not 0 <= i < self.n:
            raise VizError(f"slice index {i} outside 0..{self.n - 1}")
        plane = style.plane_axes(a)
        m = np.take(self.fields[field], i, axis=a)
        v = self._velocity_for(field) if arrows else None
        v2 = None if v is None else np.take(v, i, axis=a)
        kind, of = self.kinds[field]
        if ax is None:
            fig = style.new_figure(figsize=(6.2, 5.0))
            with style.style():
                ax = fig.add_subplot(111)
        x = self.x[i]
        slices.plot_slice(ax, m, self.size, kind, v2, self.arrow_scale, of=of, plane=plane,
                       observer=abs(x) <= self.size / self.n, title=f"{field}  ({AXIS_NAMES[a]} = {x:+.1f})")
        return ax.figure

    def static_frame(self, field: str | None = None, axis="SGZ", position: float = 0.0, arrows: bool = True):
        """Figure for the static book: the plane nearest ``position`` (Mpc/h) along
        ``axis`` of one field, or of every field side by side when ``field`` is None."""
        i = self.index_of(position)
        if field is not None:
            return self.render(field, axis, i, arrows)
        names = list(self.fields)
        ncol = min(3, len(names))
        nrow = -(-len(names) // ncol)
        fig = style.new_figure(figsize=(5.4 * ncol, 4.5 * nrow))
        with style.style():
            axes = np.atleast_1d(fig.subplots(nrow, ncol, squeeze=False)).ravel()
        for ax, name in zip(axes, names):
            self.render(name, axis, i, arrows, ax=ax)
        for ax in axes[len(names):]:
            ax.set_visible(False)
        return fig

    # ------------------------------------------------------------------ static scrubber
    def _panels(self, fields: Sequence[str] | None) -> list[str]:
        if fields is None:
            fields = [f for f in SCRUBBER_FIELDS if f in self.fields] or list(self.fields)[:3]
        fields = list(fields)
        unknown = [f for f in fields if f not in self.fields]
        if not fields or unknown:
            raise VizError(f"scrubber fields {unknown or fields!r}: not in the explorer (have: {', '.join(self.fields)})")
        return fields

    def frame_indices(self, n_frames: int = 24) -> np.ndarray:
        """Voxel-plane indices of ``n_frames`` slices spread evenly through the cube (all
        N planes when N ≤ n_frames), increasing."""
        if int(n_frames) < 2:
            raise VizError(f"a scrubber needs at least 2 frames, got {n_frames}")
        k = min(int(n_frames), self.n)
        return np.unique(np.rint(np.linspace(0, self.n - 1, k)).astype(int))

    def render_panels(self, fields: Sequence[str] | None = None, axis="SGZ", index: int | None = None,
                      arrows: bool = True, *, panel_size=(4.6, 3.9)):
        """Figure of the plane ``index`` along ``axis`` of several fields side by side (the
        scrubber's frame; default fields :data:`SCRUBBER_FIELDS` when present). A fixed
        layout (no constrained layout, which took most of the time of a frame), the
        same for every frame, so the panels do not jump while scrubbing."""
        names = self._panels(fields)
        fig = style.new_figure(figsize=(panel_size[0] * len(names), panel_size[1]), layout="none")
        with style.style():
            axes = np.atleast_1d(fig.subplots(1, len(names), squeeze=False)).ravel()
            fig.subplots_adjust(left=0.55 / fig.get_figwidth(), right=1 - 0.5 / fig.get_figwidth(),
                                bottom=0.14, top=0.88, wspace=0.5)
        for ax, name in zip(axes, names):
            self.render(name, axis, index, arrows, ax=ax)
        return fig

    def scrubber_frames(self, fields: Sequence[str] | None = None, axis="SGZ", n_frames: int = 16,
                        arrows: bool = True, dpi: int = 56) -> tuple[np.ndarray, list[bytes]]:
        """(positions in Mpc/h along ``axis``, PNG bytes of each frame) for the static
        scrubber: :meth:`render_panels` at :meth:`frame_indices`, at ``dpi`` and reduced
        to a 128-colour palette (≈ 25 kB a frame of three panels)."""
        a = style.axis_index(axis)
        idx = self.frame_indices(n_frames)
        pngs = []
        for i in idx:
            fig = self.render_panels(fields, a, int(i), arrows)
            buf = io.BytesIO()
            with style.style():
                fig.savefig(buf, format="png", dpi=dpi, bbox_inches=None)
            pngs.append(_palette_png(buf.getvalue()))
        return self.x[idx], pngs

    def scrubber_html(self, fields: Sequence[str] | None = None, axis="SGZ", n_frames: int = 16,
                      arrows: bool = True, dpi: int = 56, start: float = 0.0) -> str:
        """A self-contained HTML slice scrubber for pages without a kernel: the frames of
        :meth:`scrubber_frames` as base64 PNGs in a JSON block, an ``<input type="range">``
        over them, an ``<img>`` showing the current frame and an ``<output>`` with its
        position (Mpc/h); a few lines of inline JavaScript swap the image on input. No
        external script, no widget state. The slider starts at the frame nearest ``start``
        (Mpc/h). The root ``<div>`` has class ``zoa-scrubber``."""
        a = style.axis_index(axis)
        names = self._panels(fields)
        pos, pngs = self.scrubber_frames(names, a, n_frames, arrows, dpi)
        frames = [base64.b64encode(p).decode("ascii") for p in pngs]
        k0 = int(np.argmin(np.abs(pos - float(start))))
        uid = f"zoa-scrubber-{uuid.uuid4().hex[:10]}"
        labels = [f"{x:+.1f}" for x in pos]
        data = json.dumps({"positions": labels, "frames": frames}).replace("</", "<\\/")
        what = html.escape(", ".join(names))
        ax_name = AXIS_NAMES[a]
        return (
            f'<div class="zoa-scrubber" id="{uid}" style="max-width:100%">\n'
            f'<p style="margin:0 0 .3em 0"><label for="{uid}-range">{ax_name} of the slice: '
            f'<output for="{uid}-range">{labels[k0]}</output> Mpc/h</label> '
            f'<input type="range" id="{uid}-range" min="0" max="{len(frames) - 1}" step="1" value="{k0}" '
            f'aria-label="slice position along {ax_name}" style="width:min(60%,28em);vertical-align:middle"></p>\n'
            f'<img src="data:image/png;base64,{frames[k0]}" data-frame="{k0}" style="max-width:100%" '
            f'alt="{what}: slice perpendicular to {ax_name}, {len(frames)} positions">\n'
            f'<script type="application/json" class="zoa-scrubber-data">{data}</script>\n'
            "<script>(function () {\n"
            f'  var root = document.getElementById("{uid}");\n'
            '  var d = JSON.parse(root.querySelector("script.zoa-scrubber-data").textContent);\n'
            '  var img = root.querySelector("img"), out = root.querySelector("output"), '
            'inp = root.querySelector("input");\n'
            '  inp.addEventListener("input", function () {\n'
            '    var i = +inp.value; img.src = "data:image/png;base64," + d.frames[i];\n'
            '    img.setAttribute("data-frame", i); out.textContent = d.positions[i];\n'
            "  });\n"
            "})();</script>\n"
            "</div>"
        )

    def static_scrubber(self, *args, **kw):
        """:meth:`scrubber_html` as an IPython HTML object (what a notebook cell displays)."""
        from IPython.display import HTML

        return HTML(self.scrubber_html(*args, **kw))

    # ------------------------------------------------------------------ widget
    @property
    def widget(self):
        """The ipywidgets VBox: field dropdown, axis buttons, slice slider (Mpc/h), arrows
        checkbox, and the rendered PNG."""
        if self._widget is None:
            self._widget = self._build()
        return self._widget

    def _build(self):
        import ipywidgets as W

        dx = self.size / self.n
        self.controls = {
            "field": W.Dropdown(options=list(self.fields), value=next(iter(self.fields)), description="field"),
            "axis": W.ToggleButtons(options=list(AXIS_NAMES), value="SGZ", description="normal"),
            "position": W.FloatSlider(value=float(self.x[self.n // 2]), min=float(self.x[0]),
                                      max=float(self.x[-1]), step=dx, description="slice [Mpc/h]",
                                      continuous_update=False, readout_format=".1f",
                                      style={"description_width": "initial"}),
            "arrows": W.Checkbox(value=self.velocity is not None or self.velocity_pred is not None,
                                 description="velocity arrows"),
        }
        self.image = W.Image(format="png", layout=W.Layout(max_width="720px"))
        for c in self.controls.values():
            c.observe(lambda _change: self.refresh(), names="value")
        self.refresh()
        row = W.HBox([self.controls["field"], self.controls["arrows"]])
        return W.VBox([row, self.controls["axis"], self.controls["position"], self.image])

    def refresh(self):
        """Re-render the widget's image from the current control values."""
        c = self.controls
        fig = self.render(c["field"].value, c["axis"].value, self.index_of(c["position"].value),
                          bool(c["arrows"].value))
        self.image.value = style.figure_png(fig, dpi=100)


__all__ = ["SliceExplorer", "guess_kind", "SLICE_KINDS", "SCRUBBER_FIELDS"]
