"""3D scenes of the density and velocity fields (PyVista, off-screen only).

:func:`density_scene` builds a :class:`pyvista.Plotter` with isosurfaces of 1 + δ, velocity
streamlines coloured by speed, the box outline, the observer and the SG axes. It is
exported as

* a standalone interactive HTML page (vtk.js viewer + data in one file, serialised with
  trame-vtk) to embed in the book with an iframe: :func:`export_scene_html` — needs no
  rendering, no server and no network;
* glTF 2.0 (``.gltf`` JSON with embedded buffers, or binary ``.glb``) for sharing:
  :func:`export_scene_gltf`;
* a PNG: :func:`screenshot` — needs an off-screen OpenGL context.

Headless rendering: the PyPI ``vtk`` wheel (9.4+) chooses its render window at run time;
with no ``DISPLAY`` it would try X first (and warn), so :func:`new_plotter` asks for VTK's
EGL window (``VTK_DEFAULT_OPENGL_WINDOW=vtkEGLRenderWindow``), which renders with Mesa's
software EGL (llvmpipe) on a machine with no GPU and no X server. That needs the system
libraries ``libEGL.so.1`` + Mesa (Debian: ``libegl1 libegl-mesa0 libgl1-mesa-dri``).
:func:`offscreen_available` probes it in a subprocess (a failed GL context can abort the
process) so callers can skip screenshots cleanly.

Grid convention (DESIGN.md): array axes (0, 1, 2) = (SGX, SGY, SGZ), voxel i centred at
x_i = −L/2 + (i + 0.5) L/N Mpc/h, observer at the origin; velocities (N, N, N, 3) km/s.
"""
from __future__ import annotations

import functools
import io
import json
import os
import struct
import subprocess
import sys
from pathlib import Path

import numpy as np

from zoa_lib.book.viz.style import check_plot_cube
from zoa_lib.errors import ZoaError
from zoa_lib.io.atomic import atomic_path, write_text_atomic

#: Roberts' R3 low-discrepancy sequence constants (1/g, 1/g², 1/g³ with g³ = g + 1).
_G3 = 1.2207440846057596
_R3 = np.array([1 / _G3, 1 / _G3 ** 2, 1 / _G3 ** 3])


class SceneError(ZoaError, RuntimeError):
    """A 3D scene cannot be built, rendered or exported."""


def _prefer_egl():
    """Ask VTK for its EGL (display-less) render window when there is no X display."""
    if sys.platform.startswith("linux") and not os.environ.get("DISPLAY"):
        os.environ.setdefault("VTK_DEFAULT_OPENGL_WINDOW", "vtkEGLRenderWindow")


def new_plotter(window_size=(1024, 768)):
    """An off-screen :class:`pyvista.Plotter` (EGL when there is no display)."""
    _prefer_egl()
    import pyvista as pv

    return pv.Plotter(off_screen=True, window_size=list(window_size))


_PROBE = r"""
import os, sys
import pyvista as pv
p = pv.Plotter(off_screen=True, window_size=[64, 48])
p.add_mesh(pv.Sphere(), color="red")
img = p.screenshot(return_img=True)
p.close()
print("STD", float(img.std()))
"""


@functools.lru_cache(maxsize=1)
def offscreen_available(timeout: float = 120.0) -> tuple[bool, str]:
    """(True, renderer) if VTK can render off-screen here, else (False, why).

    Probed once per process in a subprocess, so a missing GL/EGL library cannot crash
    the caller."""
    env = dict(os.environ)
    if sys.platform.startswith("linux") and not env.get("DISPLAY"):
        env.setdefault("VTK_DEFAULT_OPENGL_WINDOW", "vtkEGLRenderWindow")
    try:
        out = subprocess.run([sys.executable, "-c", _PROBE], capture_output=True, text=True, timeout=timeout,
                             env=env)
    except subprocess.TimeoutExpired:
        return False, f"off-screen render probe timed out after {timeout:g} s"
    lines = [ln for ln in out.stdout.splitlines() if ln.startswith("STD ")]
    if out.returncode != 0 or not lines:
        err = (out.stderr.strip().splitlines() or ["no output"])[-1]
        return False, f"VTK cannot render off-screen here (exit {out.returncode}: {err})"
    if float(lines[0].split()[1]) == 0.0:
        return False, "VTK rendered a blank image off-screen"
    return True, env.get("VTK_DEFAULT_OPENGL_WINDOW", "default render window")


def seed_points(n: int, radius: float) -> np.ndarray:
    """``n`` deterministic, evenly spread points filling a ball of ``radius`` centred on the
    observer (Roberts' R3 sequence mapped to r ∝ u^⅓, uniform direction): streamline seeds."""
    if n <= 0:
        return np.zeros((0, 3))
    u = (0.5 + np.arange(1, n + 1)[:, None] * _R3[None, :]) % 1.0
    r = radius * np.cbrt(u[:, 0])
    cos_t = 2.0 * u[:, 1] - 1.0
    sin_t = np.sqrt(1.0 - cos_t ** 2)
    ph = 2.0 * np.pi * u[:, 2]
    return np.stack([r * sin_t * np.cos(ph), r * sin_t * np.sin(ph), r * cos_t], axis=-1)


def cube_grid(size: float, n: int):
    """A :class:`pyvista.ImageData` whose points are the voxel centres of the cube
    (spacing L/N, origin −L/2 + L/2N), with point arrays in VTK (x-fastest) order."""
    import pyvista as pv

    dx = size / n
    return pv.ImageData(dimensions=(n, n, n), spacing=(dx, dx, dx), origin=(-size / 2 + dx / 2,) * 3)


def _point_array(a: np.ndarray) -> np.ndarray:
    """Cube array [i, j, k(, c)] (i = SGX) → VTK point order (x fastest)."""
    if a.ndim == 3:
        return np.ascontiguousarray(a.transpose(2, 1, 0)).ravel()
    return np.ascontiguousarray(a.transpose(2, 1, 0, 3)).reshape(-1, a.shape[-1])


def density_scene(delta, size: float, velocity=None, iso_levels=(1.0, 2.0), n_streamlines: int = 120, *,
                  seed_radius: float | None = None, window_size=(1024, 768), tube_radius: float | None = None,
                  cmap: str = "magma", streamline_cmap: str = "viridis", title: str | None = None,
                  max_speed: float | None = None, max_length: float | None = None, structures=None):
    """PyVista scene of a cube: isosurfaces of 1 + δ and velocity streamlines.

    Parameters
    ----------
    delta : (N, N, N) density contrast δ on the grid convention.
    size : box side L, Mpc/h.
    velocity : optional (N, N, N, 3) velocity in km/s; streamlines are integrated both
        ways from ``n_streamlines`` seeds spread through a ball of ``seed_radius``
        (default 0.4 L) around the observer, drawn as tubes coloured by |v| (colour
        scale 0 to ``max_speed``, default the 98th percentile), each direction at most
        ``max_length`` Mpc/h long (default L/2).
    iso_levels : values of 1 + δ of the isosurfaces (magma colours like the 2D density
        maps, brighter and more opaque at higher density). Levels not crossed are skipped.
    window_size : pixels of screenshots.
    structures : optional named structures (objects with ``name``, ``kind`` and ``sg`` =
        (SGX, SGY, SGZ) Mpc/h, e.g. :func:`zoa_lib.analysis.structures.known_structures`) inside the
        cube: a small sphere each (black for an attractor, light blue for a void) with its
        name as a label.

    Returns an off-screen :class:`pyvista.Plotter`; ``plotter.zoa_meta`` records what was
    drawn (iso levels with their cell counts, number of streamlines). Close it with
    ``plotter.close()`` when done.
    """
    import matplotlib as mpl

    d = check_plot_cube(delta, "delta", vector=False).astype(np.float32)
    n = d.shape[0]
    if velocity is not None:
        velocity = check_plot_cube(velocity, "velocity", vector=True).astype(np.float32)
        if velocity.shape[0] != n:
            raise SceneError(f"velocity is {velocity.shape[0]}³ but delta is {n}³")
    grid = cube_grid(size, n)
    grid.point_data["1+delta"] = _point_array(1.0 + d)
    p = new_plotter(window_size)
    p.set_background("white")
    meta = {"iso_levels": {}, "n_streamlines": 0, "size": float(size), "grid": n}
    cm = mpl.colormaps[cmap]
    levels = sorted(float(x) for x in iso_levels)
    for j, lev in enumerate(levels):
        surf = grid.contour([lev], scalars="1+delta", compute_scalars=False)
        meta["iso_levels"][lev] = int(surf.n_cells)
        if surf.n_cells == 0:
            continue
        frac = j / (len(levels) - 1) if len(levels) > 1 else 1.0
        colour = cm(0.35 + 0.5 * frac)[:3]  # magma, darker → brighter with density
        opacity = 0.15 + 0.5 * frac
        p.add_mesh(surf.compute_normals(cell_normals=False), color=colour, opacity=opacity, smooth_shading=True,
                   name=f"1+δ = {lev:g}", label=f"1 + δ = {lev:g}")
    if velocity is not None and n_streamlines > 0:
        import pyvista as pv

        vgrid = cube_grid(size, n)
        vgrid.point_data["velocity"] = _point_array(velocity)
        seeds = seed_points(n_streamlines, seed_radius if seed_radius is not None else 0.4 * size)
        dx = size / n
        # one step per voxel is ample for fields smoothed on a few voxels; lines are kept
        # short (max_length) so the exported page stays a few MB
        lines = vgrid.streamlines_from_source(pv.PolyData(seeds), vectors="velocity", integration_direction="both",
                                              integrator_type=4,
                                              initial_step_length=1.0, step_unit="cl", max_steps=200,
                                              max_length=max_length or 0.5 * size, compute_vorticity=False,
                                              terminal_speed=1e-3)
        if lines.n_points:
            speed = np.linalg.norm(lines.point_data["velocity"], axis=1).astype(np.float32)
            lines.point_data.clear()
            lines.cell_data.clear()
            lines.point_data["|v| [km/s]"] = speed
            meta["n_streamlines"] = int(lines.n_cells)
            meta["streamline_points"] = int(lines.n_points)
            tubes = lines.tube(radius=tube_radius or 0.12 * dx, n_sides=5)
            top = max_speed or float(np.percentile(speed, 98)) or 1.0
            p.add_mesh(tubes, scalars="|v| [km/s]", cmap=streamline_cmap, clim=(0.0, top), name="streamlines",
                       scalar_bar_args={"title": "|v| [km/s]", "color": "black"})
    import pyvista as pv

    p.add_mesh(grid.outline(), color="black", line_width=1.5, name="box")
    p.add_mesh(pv.Sphere(radius=0.02 * size, center=(0.0, 0.0, 0.0)), color="red", name="observer")
    h = size / 2
    for k, (name, colour) in enumerate((("SGX", "#D55E00"), ("SGY", "#009E73"), ("SGZ", "#0072B2"))):
        direction = np.eye(3)[k]
        arrow = pv.Arrow(start=(0.0, 0.0, 0.0), direction=direction, scale=0.35 * size, tip_length=0.12,
                         tip_radius=0.04, shaft_radius=0.012)
        p.add_mesh(arrow, color=colour, name=f"axis {name}")
        p.add_point_labels(np.array([direction * 0.4 * size]), [name], font_size=14, text_color=colour,
                           shape=None, show_points=False, always_visible=True, name=f"label {name}")
    p.add_point_labels(np.zeros((1, 3)), ["observer"], font_size=12, text_color="red", shape=None,
                       show_points=False, always_visible=True, name="label observer")
    meta["structures"] = []
    for s in structures or ():
        pos = np.asarray(s.sg, float)
        if np.any(np.abs(pos) > h):
            continue
        colour = "#56B4E9" if getattr(s, "kind", "attractor") == "void" else "black"
        p.add_mesh(pv.Sphere(radius=0.012 * size, center=tuple(pos)), color=colour, name=f"structure {s.name}")
        p.add_point_labels(pos[None], [s.name.split(" (")[0]], font_size=11, text_color=colour, shape=None,
                           show_points=False, always_visible=True, name=f"label {s.name}")
        meta["structures"].append(s.name)
    if title:
        p.add_text(title, font_size=11, color="black", name="title")
    p.camera_position = [(1.9 * size, -1.5 * size, 1.2 * size), (0.0, 0.0, 0.0), (0.0, 0.0, 1.0)]
    meta["bounds"] = (-h, h, -h, h, -h, h)
    setter = getattr(pv, "set_new_attribute", setattr)  # pyvista ≥ 0.45 forbids plain new attributes
    setter(p, "zoa_meta", meta)
    return p


def scene_vtksz(plotter) -> bytes:
    """The scene serialised for vtk.js's OfflineLocalView (a zip holding ``index.json``).

    Uses trame-vtk's serializers directly — what ``plotter.trame.export_html`` does
    through a trame server, without starting one (that route launches a web server in a
    background thread and, with trame-vtklocal installed, tries to download VTK.wasm).
    Geometry, colours, camera and lighting are serialised; nothing is rendered.
    """
    import zipfile

    try:
        from trame_vtk.modules.vtk.serializers import (
            SynchronizationContext,
            extract_array_hash,
            initialize_serializers,
            reference_id,
            serialize,
        )
    except ImportError as e:
        raise SceneError(f"cannot export the 3D scene: {e} (pip install trame-vtk)") from None
    initialize_serializers()
    ctx = SynchronizationContext()
    ctx.set_ignore_last_dependencies(True)
    rw = plotter.render_window
    if rw is None:
        raise SceneError("cannot export a closed plotter")
    camera = rw.GetRenderers().GetFirstRenderer().GetActiveCamera()
    view = serialize(None, rw, reference_id(rw), ctx, 1)
    if not view:
        raise SceneError("trame-vtk could not serialise the scene")
    view["extra"] = {"vtkRefId": reference_id(rw), "centerOfRotation": list(camera.GetFocalPoint()),
                     "camera": reference_id(camera)}
    hashes = {}
    for entry in extract_array_hash(view):
        h = entry.get("hash")
        hashes[h] = dict(**entry, content=ctx.get_cached_data_array(h, False))
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr("index.json", json.dumps({"hashes": hashes, "scene": view}), compress_type=zipfile.ZIP_DEFLATED)
    return buf.getvalue()


def export_scene_html(plotter, path) -> Path:
    """Write the scene as a standalone interactive HTML page (vtk.js viewer and data
    inlined, no server, no network, no rendering needed) atomically to ``path``;
    return the path. Embed it in a book page with an iframe."""
    from trame_vtk.tools.vtksz2html import write_html

    out = io.StringIO()
    write_html(scene_vtksz(plotter), out)
    return write_text_atomic(path, out.getvalue())


def export_scene_gltf(plotter, path) -> Path:
    """Write the scene as glTF 2.0 atomically: ``.glb`` → binary GLB, anything else →
    JSON glTF with embedded (base64) buffers. Return the path. Text labels and the
    scalar bar are not part of glTF; surfaces and tubes are."""
    path = Path(path)
    with atomic_path(path, suffix=".gltf") as tmp:
        plotter.export_gltf(str(tmp), inline_data=True)
        if path.suffix.lower() == ".glb":
            data = gltf_to_glb(json.loads(Path(tmp).read_text()))
            Path(tmp).write_bytes(data)
    return path


def gltf_to_glb(gltf: dict) -> bytes:
    """Pack a glTF 2.0 document whose buffers are base64 data URIs into one GLB file
    (glTF 2.0 §4.4: 12-byte header, JSON chunk, BIN chunk, each 4-byte aligned)."""
    import base64

    doc = json.loads(json.dumps(gltf))
    blobs, offsets, total = [], [], 0
    for b in doc.get("buffers", []):
        uri = b.get("uri", "")
        if not uri.startswith("data:"):
            raise SceneError("gltf_to_glb: only embedded (data URI) buffers can be packed")
        raw = base64.b64decode(uri.split(",", 1)[1])
        offsets.append(total)
        pad = (-len(raw)) % 4
        blobs.append(raw + b"\0" * pad)
        total += len(raw) + pad
    for v in doc.get("bufferViews", []):
        v["byteOffset"] = v.get("byteOffset", 0) + offsets[v["buffer"]]
        v["buffer"] = 0
    doc["buffers"] = [{"byteLength": total}] if total else []
    js = json.dumps(doc, separators=(",", ":")).encode()
    js += b" " * ((-len(js)) % 4)
    binary = b"".join(blobs)
    length = 12 + 8 + len(js) + (8 + len(binary) if binary else 0)
    out = struct.pack("<4sII", b"glTF", 2, length) + struct.pack("<I4s", len(js), b"JSON") + js
    if binary:
        out += struct.pack("<I4s", len(binary), b"BIN\0") + binary
    return out


def screenshot(plotter, path, window_size=None) -> Path:
    """Render the scene off-screen to a PNG at ``path`` (atomic); return the path.
    Raises :class:`SceneError` when off-screen rendering is unavailable here."""
    ok, why = offscreen_available()
    if not ok:
        raise SceneError(f"cannot render {path}: {why}")
    path = Path(path)
    with atomic_path(path, suffix=".png") as tmp:
        plotter.screenshot(str(tmp), window_size=list(window_size) if window_size else None)
    return path


def _render_scene_png(path: str, delta, size: float, velocity, window_size, scene_kwargs: dict) -> str:
    """Child-process body of :func:`screenshot_scene`."""
    p = density_scene(delta, size, velocity=velocity, **scene_kwargs)
    try:
        screenshot(p, path, window_size)
    finally:
        p.close()
    return str(path)


def screenshot_scene(path, delta, size: float, velocity=None, window_size=None, timeout: float = 600.0,
                     **scene_kwargs) -> Path:
    """Build :func:`density_scene` (same arguments) and render it to a PNG at ``path``, in a
    fresh process.

    Why a process: in a process where TensorFlow has run (a notebook that has just applied
    the networks), VTK's off-screen EGL rendering segfaults (measured with TensorFlow 2.21
    and VTK 9 on Mesa EGL: one ``tf.constant`` op before ``plotter.screenshot`` is enough),
    which would kill the notebook's kernel. The child imports VTK but not TensorFlow.
    Raises :class:`SceneError` (one line) when off-screen rendering is unavailable or the
    child dies; returns the path."""
    import multiprocessing as mp
    from concurrent.futures import ProcessPoolExecutor
    from concurrent.futures.process import BrokenProcessPool

    ok, why = offscreen_available()
    if not ok:
        raise SceneError(f"cannot render {path}: {why}")
    args = (str(path), np.asarray(delta, np.float32), float(size),
            None if velocity is None else np.asarray(velocity, np.float32), window_size, dict(scene_kwargs))
    with ProcessPoolExecutor(max_workers=1, mp_context=mp.get_context("spawn")) as pool:
        try:
            return Path(pool.submit(_render_scene_png, *args).result(timeout=timeout))
        except BrokenProcessPool:
            raise SceneError(f"cannot render {path}: the rendering process died") from None


__all__ = ["SceneError", "new_plotter", "offscreen_available", "seed_points", "cube_grid", "density_scene",
           "scene_vtksz", "export_scene_html", "export_scene_gltf", "gltf_to_glb", "screenshot", "screenshot_scene"]
