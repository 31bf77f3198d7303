"""Tests of the plotting library (zoa_lib.book.viz, zoa_lib.book.explorer, zoa_lib.book.scene3d).

Everything runs on small synthetic arrays. Geometry is checked against independent
computations: analytic slab means, astropy SkyCoord conversions, the supergalactic pole's
literature position, matplotlib's own transforms, the glTF 2.0 container layout and
VTK's glTF reader.
"""
from __future__ import annotations

import io
import json
import struct

import matplotlib

matplotlib.use("Agg")

import numpy as np
import pytest
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.colors import LogNorm
from matplotlib.quiver import Quiver, QuiverKey

from zoa_lib.analysis import metrics
from zoa_lib.book.viz import catalogs, skymaps, slices, statistics, style
from zoa_lib.book.viz import selection as selection_plots
from zoa_lib.errors import ZoaError
from zoa_lib.survey import sky
from zoa_lib.survey.shards import CATALOG_DTYPE
from zoa_lib.universe.cosmology import C_LIGHT

L = 160.0


def centres(n, size=L):
    return -size / 2 + (np.arange(n) + 0.5) * size / n


def coords(n, size=L):
    x = centres(n, size)
    return np.meshgrid(x, x, x, indexing="ij")


def draw(fig):
    """Render the figure (catches errors that only appear at draw time)."""
    FigureCanvasAgg(fig).draw()
    return fig


def smooth_field(n, seed=0, amp=0.7):
    from scipy.ndimage import gaussian_filter

    g = gaussian_filter(np.random.default_rng(seed).normal(size=(n, n, n)), 1.5, mode="wrap")
    return (amp * g / g.std()).astype(np.float32)


# --------------------------------------------------------------------------- slab average
def test_slab_average_of_linear_field_is_analytic():
    n = 32
    X, Y, Z = coords(n)
    f = 2.0 + 0.5 * X - 0.25 * Y + 3.0 * Z
    # paper slab −15 < SGZ < 15: centres ±2.5, ±7.5, ±12.5 → mean SGZ = 0
    m, ext = style.slab_average(f, L)
    x = centres(n)
    assert ext == (-80.0, 80.0, -80.0, 80.0)
    np.testing.assert_allclose(m, 2.0 + 0.5 * x[:, None] - 0.25 * x[None, :], atol=1e-10)
    # asymmetric slab 0 < SGZ < 40: centres 2.5 ... 37.5 → mean 20
    m, _ = style.slab_average(f, L, "SGZ", 0.0, 40.0)
    np.testing.assert_allclose(m, 2.0 + 0.5 * x[:, None] - 0.25 * x[None, :] + 3.0 * 20.0, atol=1e-10)
    # along SGX: remaining axes (SGY, SGZ) in cube order; slab −10 < SGX < 21 → centres −7.5 … 17.5
    m, _ = style.slab_average(f, L, 0, -10.0, 21.0)
    sel = x[(x > -10) & (x < 21)]
    np.testing.assert_allclose(m, 2.0 + 0.5 * sel.mean() - 0.25 * x[:, None] + 3.0 * x[None, :], atol=1e-10)


def test_slab_average_keeps_vector_components_and_rejects_empty_slab():
    n = 16
    X, Y, Z = coords(n)
    v = np.stack([X, 2 * Y, Z + 100.0], axis=-1)
    m, _ = style.slab_average(v, L, 2)
    assert m.shape == (n, n, 3)
    np.testing.assert_allclose(m[..., 2], 100.0, atol=1e-10)  # centres ±5 average to 0
    with pytest.raises(ZoaError, match="no voxel centre"):
        style.slab_average(v, L, 2, 1.0, 4.0)  # between the centres 0 ± 5
    with pytest.raises(ZoaError, match="shape"):
        style.slab_average(np.zeros((4, 4, 5)), L)


# --------------------------------------------------------------------------- slices
def test_plot_slice_density_uses_log_norm_from_0p1_to_15():
    n = 16
    delta = np.full((n, n), 0.5)
    delta[0, 0] = -1.0  # empty voxel
    fig = style.new_figure()
    ax = fig.add_subplot(111)
    im = slices.plot_slice(ax, delta, L, "density")
    assert isinstance(im.norm, LogNorm)
    assert (im.norm.vmin, im.norm.vmax) == (0.1, 15.0)
    shown = np.asarray(im.get_array())
    assert shown[5, 3] == pytest.approx(1.5)  # 1 + δ, transposed for imshow
    assert np.isfinite(shown[0, 0]) and shown[0, 0] < 0.1  # empty voxel drawn at the bottom of the scale
    assert im.get_extent() == [-80.0, 80.0, -80.0, 80.0]
    assert ax.get_xlabel().startswith("SGX") and "Mpc/h" in ax.get_xlabel()
    assert ax.get_ylabel().startswith("SGY")
    assert len(fig.axes) == 2  # map + colour bar
    draw(fig)


def test_plot_slice_potential_is_phi_over_c2_in_units_of_1e_minus_6():
    n = 8
    phi = np.full((n, n), 3e-6 * C_LIGHT ** 2)  # φ/c² = 3e-6
    phi[1, 2] = -5e-6 * C_LIGHT ** 2
    fig = style.new_figure()
    im = slices.plot_slice(fig.add_subplot(111), phi, L, "potential")
    a = np.asarray(im.get_array())
    assert a[0, 0] == pytest.approx(3.0)
    assert a[2, 1] == pytest.approx(-5.0)
    assert (im.norm.vmin, im.norm.vmax) == (-6.0, 6.0)
    draw(fig)


def test_velocity_arrows_key_is_1000_kms_and_one_spacing_long():
    n = 32
    v = np.zeros((n, n, 3))
    v[..., 0] = 1000.0  # uniform 1000 km/s along SGX
    fig = style.new_figure()
    ax = fig.add_subplot(111)
    slices.plot_slice(ax, np.zeros((n, n)), L, "density", v, arrow_scale=1000.0, arrows_per_side=16)
    q = [c for c in ax.collections if isinstance(c, Quiver)]
    assert len(q) == 1
    q = q[0]
    spacing = 2 * L / n  # every other voxel
    assert q.scale_units == "xy"
    # an arrow of U km/s spans U / scale data units: 1000 km/s → one arrow spacing
    assert 1000.0 / q.scale == pytest.approx(spacing)
    assert np.allclose(q.U, 1000.0) and np.allclose(q.V, 0.0)
    keys = [a for a in ax.get_children() if isinstance(a, QuiverKey)]
    assert len(keys) == 1 and keys[0].U == 1000.0 and keys[0].text.get_text() == "1000 km/s"
    draw(fig)


@pytest.mark.parametrize("kind", ["density", "potential"])
def test_figure_truth_vs_prediction_layout_and_residual(kind):
    n = 16
    t = smooth_field(n, 1)
    p = t * 0.8 + 0.05
    if kind == "potential":
        t, p = t * 2e-6 * C_LIGHT ** 2, p * 2e-6 * C_LIGHT ** 2
    X, Y, Z = coords(n)
    vt = np.stack([Y, -X, 0 * Z], -1) * 10.0
    fig = slices.figure_truth_vs_prediction(t, p, L, kind, vt, vt * 0.9)
    assert len(fig.axes) == 5  # truth, prediction, residual + two colour bars
    panels = fig.axes[:3]
    ims = [ax.get_images()[0] for ax in panels]
    if kind == "density":
        # 1 + δ of this truth lies inside the paper's 0.1–15: the paper's scale is kept
        assert isinstance(ims[0].norm, LogNorm) and (ims[0].norm.vmin, ims[0].norm.vmax) == (0.1, 15.0)
        expect_res = style.slab_average(p, L)[0] - style.slab_average(t, L)[0]
    else:
        shown = style.slab_average(t, L)[0] * 1e6 / C_LIGHT ** 2
        m = np.percentile(np.abs(shown), 99.5)
        assert (ims[0].norm.vmin, ims[0].norm.vmax) == pytest.approx((-m, m))
        expect_res = (style.slab_average(p, L)[0] - style.slab_average(t, L)[0]) * 1e6 / C_LIGHT ** 2
    assert ims[0].norm is ims[1].norm is fig.zoa_norm  # truth and prediction share one scale
    np.testing.assert_allclose(np.asarray(ims[2].get_array()), expect_res.T, rtol=1e-5, atol=1e-6)
    for ax in panels:
        assert sum(isinstance(c, Quiver) for c in ax.collections) == 1
    draw(fig)


def test_truth_vs_prediction_scale_comes_from_the_truth_and_does_not_saturate_it():
    """A potential of ±30 × 10⁻⁶ (this project's runs) must not be drawn on the paper's
    ±6 × 10⁻⁶: the shared scale is the truth's 99.5th percentile of |φ/c²|, so about
    0.5 % of the truth's pixels (under 1 %) lie beyond it — the prediction (here half as
    strong) uses the same norm."""
    n = 32
    t = smooth_field(n, 11)
    t = t / np.abs(style.slab_average(t, L)[0]).max() * 30e-6 * C_LIGHT ** 2  # slab map peaks at 30e-6
    p = 0.5 * t
    fig = slices.figure_truth_vs_prediction(t, p, L, "potential")
    truth_im, pred_im = (ax.get_images()[0] for ax in fig.axes[:2])
    nrm = truth_im.norm
    assert pred_im.norm is nrm
    shown = np.asarray(truth_im.get_array())  # φ/c² × 10⁶ as drawn
    np.testing.assert_allclose(shown, style.slab_average(t, L)[0].T * 1e6 / C_LIGHT ** 2, rtol=1e-6)
    robust = np.percentile(np.abs(shown), 99.5)
    assert nrm.vmax == pytest.approx(robust) and nrm.vmin == pytest.approx(-robust)
    assert 20.0 < nrm.vmax <= 30.0 + 1e-6  # of the order of the truth's peak, not the paper's 6
    assert np.mean(np.abs(shown) > nrm.vmax) <= 0.01  # truth clipped in under 1 % of pixels (0.5 % + interpolation)
    assert np.mean(np.abs(shown) > 6.0) > 0.1  # whereas ±6 would have saturated much of it
    draw(fig)
    # a density truth beyond the paper's 1 + δ = 15 widens the log scale instead of saturating
    d = np.full((n, n), 0.2)
    d[:4, :4] = 40.0
    nd = slices.truth_norm("density", d)
    assert isinstance(nd, LogNorm) and nd.vmin == 0.1 and nd.vmax >= 41.0 - 1e-9
    # an explicit norm overrides
    from matplotlib.colors import Normalize

    fig = slices.figure_truth_vs_prediction(t, p, L, "potential", norm=Normalize(-6, 6))
    assert fig.axes[0].get_images()[0].norm.vmax == 6


def test_scatter_density_reports_pearson_r():
    from scipy.stats import pearsonr

    rng = np.random.default_rng(3)
    t = rng.normal(size=4000)
    p = 0.9 * t + 0.3 * rng.normal(size=4000)
    ax = statistics.plot_scatter_density(None, t, p, "δ")
    texts = [x.get_text() for x in ax.get_legend().get_texts()]
    assert f"δ  r = {pearsonr(t, p)[0]:.3f}" in texts
    ax = statistics.plot_scatter_density(None, t, p, "φ", r=0.987654)
    assert "φ  r = 0.988" in [x.get_text() for x in ax.get_legend().get_texts()]
    draw(ax.figure)


def test_pdf_power_bulk_metric_plots():
    rng = np.random.default_rng(4)
    ax = statistics.plot_pdf(None, rng.normal(size=5000), rng.normal(size=5000) * 0.8, bins=40)
    for patch in ax.patches:  # StepPatch: PDF integrates to 1 over the bins
        vals, edges = patch.get_data()[:2]
        assert np.sum(vals * np.diff(edges)) == pytest.approx(1.0, rel=1e-6)
    k = np.logspace(-1.5, 0, 12)
    ax = statistics.plot_power_ratio(None, k, np.linspace(1, 0.4, 12), np.linspace(1, 0.6, 12), label="V-Net")
    assert ax.get_xscale() == "log" and len(ax.get_lines()) == 3  # r, T, unit line
    R = np.linspace(10, 80, 8)
    ax = statistics.plot_bulk_flow(None, R, {"truth": 300 - R, "V-Net": rng.normal(300 - R, 10, (5, 8))},
                            320 - R, 200 - R, 400 - R)
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    assert labels[:4] == ["ΛCDM 68 %", r"ΛCDM $\sigma_B$", "truth", "V-Net"]
    ax = statistics.plot_metric_vs_distance(None, R, {"V-Net": 1 - R / 200}, zoa={"V-Net": 0.9 - R / 200})
    assert len(ax.get_lines()) == 2
    for a in (ax,):
        draw(a.figure)


def test_bulk_flow_lcdm_fills_the_parent_box_band_and_dots_the_infinite_volume_one():
    from matplotlib.collections import PolyCollection

    from zoa_lib.analysis import metrics
    from zoa_lib.universe.cosmology import Cosmology

    rng = np.random.default_rng(5)
    v = rng.normal(0, 300, (3, 8, 8, 8, 3))
    R = [10.0, 20.0, 30.0]
    bf = metrics.bulk_flow_error(v + rng.normal(0, 50, v.shape), v, L, R, cosmo=Cosmology(), parent_size=500.0,
                                 smoothing=5.0)
    B = {"truth": np.linalg.norm(np.asarray(bf["true"]), axis=-1),
         "V-Net": np.linalg.norm(np.asarray(bf["pred"]), axis=-1)}
    ax = statistics.plot_bulk_flow_lcdm(None, bf, B)
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    assert labels[:2] == ["ΛCDM 68 %, modes of the parent box (500 Mpc/h)", r"ΛCDM $\sigma_B$, parent box"]
    assert "ΛCDM 68 %, infinite volume" in labels and "truth" in labels and "V-Net" in labels
    band = ax.collections[0]  # the filled band is the parent box's range
    assert isinstance(band, PolyCollection)
    ys = band.get_paths()[0].vertices[:, 1]
    assert ys.max() == pytest.approx(max(bf["lcdm_box_upper"])) and ys.min() == pytest.approx(min(bf["lcdm_box_lower"]))
    dotted = [ln for ln in ax.get_lines() if ln.get_linestyle() == ":"]
    assert len(dotted) == 2
    assert np.allclose(dotted[0].get_ydata(), bf["lcdm_lower"]) and np.allclose(dotted[1].get_ydata(), bf["lcdm_upper"])
    # without the parent box's entries: the infinite-volume range, filled
    inf = {k: v for k, v in bf.items() if not k.startswith("lcdm_box")}
    ax = statistics.plot_bulk_flow_lcdm(None, inf, B)
    assert [t.get_text() for t in ax.get_legend().get_texts()][0] == "ΛCDM 68 %, infinite volume"
    assert not [ln for ln in ax.get_lines() if ln.get_linestyle() == ":"]
    draw(ax.figure)


def test_loss_curves_from_csv_and_errors(tmp_path):
    import pandas as pd

    ep = np.arange(12)
    df = pd.DataFrame({"epoch": ep, "learning_rate": 1e-7 + 1e-6 * (ep % 4), "loss": 1 / (ep + 1.0),
                       "val_loss": 1.3 / (ep + 1.0)})
    path = tmp_path / "history.csv"
    df.to_csv(path, index=False)
    fig = statistics.plot_loss_curves(path)
    ax, ax2 = fig.axes
    assert ax.get_yscale() == "log" and ax2.get_yscale() == "log"
    np.testing.assert_allclose(ax.get_lines()[0].get_xdata(), ep + 1)
    np.testing.assert_allclose(ax2.get_lines()[0].get_ydata(), df["learning_rate"])
    draw(fig)
    (tmp_path / "bad.csv").write_text("epoch,acc\n0,1\n")
    with pytest.raises(ZoaError, match="bad.csv: no 'loss' column"):
        statistics.plot_loss_curves(tmp_path / "bad.csv")


# --------------------------------------------------------------------------- sky
def test_sky_projection_centre_and_longitude_to_the_left():
    x, y = skymaps.sky_xy([0.0, 90.0, 270.0, 359.0, 0.0], [0.0, 0.0, 0.0, 0.0, 45.0])
    np.testing.assert_allclose(x, [0.0, -np.pi / 2, np.pi / 2, np.radians(1.0), 0.0], atol=1e-12)
    np.testing.assert_allclose(y[-1], np.pi / 4)
    ax = skymaps.sky_axes()
    draw(ax.figure)
    bbox = ax.get_window_extent()
    px = ax.transData.transform(np.column_stack(skymaps.sky_xy([0.0, 90.0, 270.0], [0.0, 0.0, 30.0])))
    assert px[0] == pytest.approx([(bbox.x0 + bbox.x1) / 2, (bbox.y0 + bbox.y1) / 2], abs=1.0)
    assert px[1, 0] < px[0, 0] - 10  # l = 90° to the left
    assert px[2, 0] > px[0, 0] + 10 and px[2, 1] > px[0, 1] + 10  # l = 270° right, b = 30° up
    labels = {round(np.degrees(t.get_position()[0]), 3): t.get_text() for t in ax.texts if t.get_gid() == "l-label"}
    assert labels[-60.0] == "60°" and labels[60.0] == "300°" and labels[0.0] == "0°"


def test_sample_shell_matches_astropy_positions():
    import astropy.units as u
    from astropy.coordinates import SkyCoord

    n = 32
    X, Y, Z = coords(n)
    r_lo, r_hi, n_r = 20.0, 44.0, 6
    l, b, m = sky.sample_shell(Z, L, r_lo, r_hi, nside_like=(24, 12), n_r=n_r)
    assert m.shape == (12, 24)
    r = r_lo + (np.arange(n_r) + 0.5) * (r_hi - r_lo) / n_r
    Lg, Bg = np.meshgrid(l, b)
    sgz = np.stack([SkyCoord(l=Lg * u.deg, b=Bg * u.deg, distance=ri * u.Mpc, frame="galactic")
                   .transform_to("supergalactic").cartesian.z.value for ri in r])
    expect = np.sum(sgz * r[:, None, None] ** 2, 0) / np.sum(r ** 2)
    np.testing.assert_allclose(m, expect, atol=1e-6)  # trilinear interpolation is exact for linear f
    # a uniform flow along +SGZ has radial component v · r̂ = SGZ / d
    v = np.zeros((n, n, n, 3))
    v[..., 2] = 500.0
    _, _, vr = sky.sample_shell(v, L, r_lo, r_hi, nside_like=(24, 12), n_r=n_r)
    np.testing.assert_allclose(vr, 500.0 * sgz[0] / r[0], atol=1e-6)


def test_shell_map_peaks_at_the_supergalactic_pole():
    n = 16
    X, Y, Z = coords(n)
    fig = skymaps.sky_shell_map(Z / 60.0, L, 30, 60, nside_like=(72, 36), kind="potential",
                            structures=[("SGP", 47.37, 6.32)], zoa_b=10)
    l, b, m = fig.zoa_sky
    j, i = np.unravel_index(np.nanargmax(m), m.shape)
    # north supergalactic pole at (l, b) = (47.37°, 6.32°) (de Vaucouleurs et al. 1991)
    assert abs(((b[j] - 6.32) + 180) % 360 - 180) <= 5.0 and abs(((l[i] - 47.37) + 180) % 360 - 180) <= 5.0
    assert len(fig.axes) == 2  # sky + colour bar
    draw(fig)


# Literature definition of the supergalactic frame (de Vaucouleurs et al. 1991; Lahav et al.
# 2000), independent of astropy: origin SGL = SGB = 0 at Galactic (137.37°, 0°), north pole
# SGB = 90° at (47.37°, 6.32°).
SG_ORIGIN_LB = (137.37, 0.0)
SG_POLE_LB = (47.37, 6.32)


def _unit(l, b):
    l, b = np.radians(l), np.radians(b)
    return np.array([np.cos(b) * np.cos(l), np.cos(b) * np.sin(l), np.sin(b)])


def _lb_of(vec):
    v = np.asarray(vec, float) / np.linalg.norm(vec)
    return np.degrees(np.arctan2(v[1], v[0])) % 360, np.degrees(np.arcsin(v[2]))


def _lb_of_sg(sgl, sgb):
    """Galactic (l, b) of a supergalactic direction, from the literature axes alone."""
    x, z = _unit(*SG_ORIGIN_LB), _unit(*SG_POLE_LB)
    z = z - x * (x @ z)
    z /= np.linalg.norm(z)
    y = np.cross(z, x)
    s, c = np.radians([sgl, sgb])
    return _lb_of(np.cos(c) * np.cos(s) * x + np.cos(c) * np.sin(s) * y + np.sin(c) * z)


def _blob_at(l, b, d, n=48, width=4.0):
    """δ cube (L = 160 Mpc/h) with a Gaussian peak at Galactic (l, b), distance d Mpc/h."""
    from zoa_lib.survey.sky import galactic_to_sg

    X, Y, Z = coords(n)
    c = np.array(galactic_to_sg(l, b, d), float)
    return 30.0 * np.exp(-((X - c[0]) ** 2 + (Y - c[1]) ** 2 + (Z - c[2]) ** 2) / (2 * width ** 2))


def _peak_display_xy(ax):
    """Display (pixel) position of the brightest cell of the map as drawn (its QuadMesh)."""
    mesh = ax.zoa_image
    vals = np.ma.masked_invalid(mesh.get_array()).reshape(mesh.get_coordinates().shape[0] - 1, -1)
    j, i = np.unravel_index(np.ma.argmax(vals), vals.shape)
    corners = mesh.get_coordinates()[j:j + 2, i:i + 2].reshape(4, 2)
    return ax.transData.transform(corners.mean(axis=0))


def _label_display_xy(ax, text, gid="l-label"):
    """Display position (centre) of the sky label ``text``: a longitude on the equator
    (gid "l-label") or a latitude at the left end of its parallel (gid "b-label")."""
    renderer = ax.figure.canvas.get_renderer()
    items = [t for t in ax.texts if t.get_gid() == gid]
    hit = [t for t in items if t.get_text().replace("\u2212", "-") == text]
    assert len(hit) == 1, (text, [t.get_text() for t in items])
    bb = hit[0].get_window_extent(renderer)
    return np.array([(bb.x0 + bb.x1) / 2, (bb.y0 + bb.y1) / 2])


@pytest.mark.parametrize("lon_label, lat_label, frame, lb", [
    ("300°", None, "galactic", (300.0, 0.0)),  # chapter 08 once drew l = 300° under the label "60°"
    ("60°", None, "galactic", (60.0, 0.0)),
    ("0°", None, "supergalactic", SG_ORIGIN_LB),
    ("60°", None, "supergalactic", _lb_of_sg(60.0, 0.0)),
    ("300°", None, "supergalactic", _lb_of_sg(300.0, 0.0)),
    (None, "30°", "galactic", (240.0, 30.0)),
    (None, "-60°", "supergalactic", _lb_of_sg(120.0, -60.0)),
])
def test_a_point_source_lands_where_the_sky_labels_say(lon_label, lat_label, frame, lb):
    fig = style.new_figure(figsize=(9.0, 5.0))
    ax = skymaps.sky_axes(fig, frame=frame)
    skymaps.sky_shell_map(_blob_at(*lb, d=45.0), L, 35.0, 55.0, nside_like=(180, 90), ax=ax, kind="density")
    draw(fig)
    peak = _peak_display_xy(ax)
    cell = ax.get_window_extent().width / 180  # one 2° cell at the equator, in pixels
    if lon_label:  # longitude labels sit on the equator at the longitude they name
        assert peak == pytest.approx(_label_display_xy(ax, lon_label), abs=1.6 * cell)
    if lat_label:  # latitude tick labels sit at the height of the latitude they name
        assert peak[1] == pytest.approx(_label_display_xy(ax, lat_label, gid="b-label")[1], abs=1.6 * cell)


def test_longitude_grows_to_the_left_in_both_frames():
    for frame in sky.SKY_FRAMES:
        ax = skymaps.sky_axes(frame=frame)
        draw(ax.figure)
        x = [_label_display_xy(ax, t)[0] for t in ("120°", "60°", "0°", "300°", "240°")]
        assert np.all(np.diff(x) > 0), (frame, x)
        assert ax.zoa_frame == frame and ax.get_xlabel().startswith(frame.capitalize())


def test_frame_conversions_match_the_literature_supergalactic_axes():
    sgl, sgb = sky.galactic_to_frame(*SG_ORIGIN_LB, "supergalactic")
    assert abs((sgl + 180) % 360 - 180) < 0.05 and abs(sgb) < 0.05
    assert sky.galactic_to_frame(*SG_POLE_LB, "supergalactic")[1] > 89.9
    l, b = sky.frame_to_galactic(60.0, 0.0, "supergalactic")
    np.testing.assert_allclose([l, b], _lb_of_sg(60.0, 0.0), atol=0.05)
    # unit vectors of a supergalactic direction are its SG Cartesian axes
    np.testing.assert_allclose(sky.frame_unit_vectors([0.0, 90.0, 0.0], [0.0, 0.0, 90.0], "supergalactic"),
                               np.eye(3), atol=1e-12)
    np.testing.assert_allclose(sky.frame_unit_vectors(*SG_POLE_LB, "galactic"), [0, 0, 1], atol=2e-3)
    with pytest.raises(style.VizError, match="unknown sky frame"):
        skymaps.sky_axes(frame="ecliptic")


def test_sky_maps_refuse_a_plain_mollweide_axes():
    fig = style.new_figure()
    ax = fig.add_subplot(111, projection="mollweide")
    with pytest.raises(style.VizError, match="viz.sky_axes"):
        skymaps.sky_shell_map(_blob_at(300.0, 0.0, 40.0, n=16), L, 30, 50, ax=ax)
    with pytest.raises(style.VizError, match="frame 'supergalactic' asked on a galactic"):
        skymaps.sky_shell_map(_blob_at(300.0, 0.0, 40.0, n=16), L, 30, 50, ax=skymaps.sky_axes(), frame="supergalactic")


def test_zoa_and_structures_follow_the_frame():
    ax = skymaps.sky_axes(frame="supergalactic")
    skymaps.zoa_band(ax, 10.0)
    skymaps.mark_structures(ax, [("Great Attractor", 308.4, 29.0)])
    x, y = ax.lines[0].get_data()
    np.testing.assert_allclose([x[0], y[0]], skymaps.sky_xy(*sky.galactic_to_frame(308.4, 29.0, "supergalactic")))
    # the band holds the SG positions of points with |b| < 10°, and no others
    from matplotlib.path import Path as MplPath

    polygons = [MplPath(p) for p in ax.collections[0].get_paths()[0].to_polygons()]
    for l, b in ((200.0, 0.0), (300.0, 5.0), (30.0, -8.0), (200.0, 60.0), (30.0, 20.0), (100.0, -40.0)):
        xy = np.column_stack(skymaps.sky_xy(*sky.galactic_to_frame(l, b, "supergalactic")))[0]
        inside = sum(pg.contains_point(xy) for pg in polygons) % 2 == 1  # even-odd rule
        assert inside == (abs(b) < 10.0), (l, b)
    draw(ax.figure)


def test_figure_sky_shells_galactic_and_supergalactic_side_by_side():
    n = 16
    X, Y, Z = coords(n)
    v = np.zeros((n, n, n, 3))
    v[..., 2] = 500.0  # flow towards the SG north pole: v_r > 0 at SGB > 0
    fig = skymaps.figure_sky_shells(v, 0.5 * v, L, [(20, 40), (40, 60)], zoa_b=10, nside_like=(36, 18))
    grid = fig.zoa_sky_axes
    assert len(grid) == 2 and all(len(r) == 4 for r in grid)
    assert [a.zoa_frame for a in grid[0]] == ["galactic", "galactic", "supergalactic", "supergalactic"]
    assert len(fig.axes) == 9  # 8 maps and one colour bar
    sg = grid[0][2]
    lon, lat, vals = sky.sample_shell(v, L, 20, 40, (36, 18), frame="supergalactic")
    np.testing.assert_allclose(vals, 500.0 * np.sin(np.radians(lat))[:, None] * np.ones_like(vals), atol=25)
    assert sg.zoa_image.norm.vmin == -sg.zoa_image.norm.vmax  # one symmetric velocity scale
    draw(fig)
    with pytest.raises(style.VizError, match="same shape"):
        skymaps.figure_sky_shells(v, v[..., 0], L, [(20, 40)])


def _catalog(n=3000, seed=5):
    rng = np.random.default_rng(seed)
    cat = np.zeros(n, CATALOG_DTYPE)
    cat["l"] = rng.uniform(0, 360, n)
    cat["b"] = np.degrees(np.arcsin(rng.uniform(-1, 1, n)))
    cat["d_true"] = 80 * rng.uniform(0, 1, n) ** (1 / 3)
    cat["d_obs"] = cat["d_true"] * np.exp(rng.normal(0, 0.2, n))
    cat["v_r_obs"] = rng.normal(0, 300, n)
    return cat[np.abs(cat["b"]) > 10]


def test_catalog_sky_and_selection():
    cat = _catalog()
    fig = catalogs.plot_catalog_sky(cat, 10.0, structures=[("Great Attractor", 308.4, 29.0)])
    ax = fig.axes[0]
    assert ax.name == "mollweide" and len(fig.axes) == 2
    sc = ax.collections[0]
    np.testing.assert_allclose(sc.get_offsets()[:, 0], skymaps.sky_xy(cat["l"], cat["b"])[0], atol=1e-6)
    assert any("|b| < 10°" in (t.get_text()) for t in ax.get_legend().get_texts())
    draw(fig)
    fig = catalogs.plot_selection(cat)
    assert len(fig.axes) == 2
    text = fig.axes[1].get_legend().get_texts()[0].get_text()
    sigma = float(text.split("σ = ")[1])
    assert sigma == pytest.approx(0.2, abs=0.02)
    draw(fig)
    with pytest.raises(ZoaError, match="missing fields"):
        catalogs.plot_selection(np.zeros(3, [("d_true", "f4")]))


def _survey_catalog(n, seed, sample=0):
    """A catalogue with redshifts and velocity errors (the columns the selection reads)."""
    rng = np.random.default_rng(seed)
    cat = _catalog(n, seed)
    cat["sample"] = sample
    cat["d_obs"] = 10.0 + 120.0 * rng.uniform(0, 1, len(cat)) ** (1 / 3)
    cat["cz"] = 100.0 * cat["d_obs"] + rng.normal(0, 300, len(cat))
    cat["sigma_v"] = 100.0 * cat["d_obs"] * rng.choice([0.2, 0.4, 0.5], len(cat)) * np.log(10) / 5
    x = np.radians(cat["l"]), np.radians(cat["b"])
    for k, v in zip(("SGX", "SGY", "SGZ"), (np.cos(x[1]) * np.cos(x[0]), np.cos(x[1]) * np.sin(x[0]), np.sin(x[1]))):
        cat[k] = cat["d_obs"] * v
    return cat


def test_real_vs_mock_figures():
    from matplotlib.collections import QuadMesh

    from zoa_lib.survey import selection

    real = _survey_catalog(4000, 1)
    mocks = np.concatenate([_survey_catalog(3000, 10 + k, sample=k) for k in range(3)])
    sel = selection.measure_selection(real, nside=4, depth=100.0)
    # the observed-pixel image is the mask, sampled through astropy-healpix
    l, b, img = selection_plots.observed_sky_image(sel.sky, sel.nside, step=2.0)
    assert img.shape == (b.size, l.size) == (90, 180)
    on = np.isfinite(img)
    L, B = np.meshgrid(l, b)
    np.testing.assert_array_equal(on, sel.observed(L, B))
    assert 0.5 < on.mean() < 1.0  # the ZOA is unobserved
    with pytest.raises(ZoaError, match="12 nside"):
        selection_plots.observed_sky_image(sel.sky[:-1], sel.nside)

    m0 = mocks[mocks["sample"] == 0]
    fig = selection_plots.figure_real_vs_mock_sky(real, m0, sel.sky, sel.nside, labels=("CF3", "mock"), zoa_b=10.0)
    sky = [ax for ax in fig.axes if ax.name == "mollweide"]
    assert len(sky) == 2
    for ax, cat, name in zip(sky, (real, m0), ("CF3", "mock")):
        assert ax.get_title().endswith(f"{name}: {len(cat):,} galaxies")
        assert any(isinstance(c, QuadMesh) for c in ax.collections)
        dots = [c for c in ax.collections if len(c.get_offsets()) == len(cat)]
        np.testing.assert_allclose(dots[0].get_offsets()[:, 0], skymaps.sky_xy(cat["l"], cat["b"])[0], atol=1e-6)
    legend = [t.get_text() for t in fig.legends[0].get_texts()]
    assert any("observed HEALPix pixels (nside 4)" in t for t in legend) and any("|b| < 10°" in t for t in legend)
    draw(fig)

    fig = selection_plots.figure_real_vs_mock(real, mocks, sel, 160.0, labels=("CF3", "mocks"))
    a, e, es = fig.axes
    assert a.get_xlabel().startswith("redshift distance s") and es.get_xlabel().startswith("redshift distance s")
    assert "sigma_\\mu" in e.get_xlabel() and "sigma_\\mu" in es.get_ylabel()
    texts = [t.get_text() for t in a.get_legend().get_texts()]
    assert any("cube half-side 80 Mpc/h" in t for t in texts)
    assert any("cube half-diagonal 139 Mpc/h" in t for t in texts)
    assert any("depth copied 100 Mpc/h" in t for t in texts)
    assert any(t.startswith("mocks: mean of 3") for t in texts)
    # the mean n(s) of the mocks is drawn: its bins add up to the mean count per mock
    s_mock = selection.redshift_distances(mocks)
    stairs = [p for p in a.patches if p.get_label().startswith("mocks: mean")][0]
    assert stairs.get_data().values.sum() == pytest.approx(np.sum(s_mock < stairs.get_data().edges[-1]) / 3)
    draw(fig)
    # a list of mocks is the same as the pooled table
    fig2 = selection_plots.figure_real_vs_mock(real, [mocks[mocks["sample"] == k] for k in range(3)], sel, 160.0,
                                   labels=("CF3", "mocks"))
    assert [t.get_text() for t in fig2.axes[0].get_legend().get_texts()] == texts
    with pytest.raises(ZoaError, match="missing fields"):
        selection_plots.figure_real_vs_mock(real, np.zeros(3, [("sample", "i8")]), sel, 160.0)


def test_structures_table_reader(tmp_path):
    p = tmp_path / "s.csv"
    p.write_text("# comment\nname,l,b,cz,kind\nGreat Attractor,308.4,29.0,4960,attractor\n"
                 "Virgo cluster (M87),283.8,74.5,1100,attractor\n")
    rows = skymaps.read_structures(p)
    assert rows == [("Great Attractor", 308.4, 29.0), ("Virgo cluster (M87)", 283.8, 74.5)]
    # the one reader of structure tables (local_universe.known_structures) and its checks
    from zoa_lib.analysis.structures import known_structures

    assert skymaps.read_structures(known_structures(p)) == rows
    p.write_text("name,l,b,cz\nGreat Attractor,308.4,29.0,4960\n")
    with pytest.raises(ZoaError, match="missing column.*kind"):
        skymaps.read_structures(p)
    with pytest.raises(ZoaError, match="row 0"):
        skymaps.read_structures([("x",)])


def test_import_changes_no_global_state_and_figures_display_in_jupyter():
    import subprocess
    import sys

    code = ("import matplotlib, sys; before = dict(matplotlib.rcParams); "
            "import zoa_lib.book.viz.style as v, zoa_lib.book.explorer, zoa_lib.book.scene3d; v.new_figure(); "
            "assert dict(matplotlib.rcParams) == before, 'rcParams changed'; "
            "assert 'matplotlib.pyplot' not in sys.modules, 'pyplot imported'; "
            "assert 'pyvista' not in sys.modules, 'pyvista imported at import time'")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    fig = style.new_figure()
    fig.add_subplot(111).plot([0, 1], [0, 1])
    assert fig._repr_png_()[:8] == b"\x89PNG\r\n\x1a\n"  # what IPython shows for a cell's value


# --------------------------------------------------------------------------- explorer
def _explorer(n=12):
    from zoa_lib.book.explorer import SliceExplorer

    X, Y, Z = coords(n)
    delta = (X + 2 * Y + 3 * Z) / 1000.0
    inputs = np.stack([(np.abs(X) < 20).astype(float), Y * 2.0], -1)
    vel = np.stack([Y, -X, Z], -1) * 5.0
    return SliceExplorer.from_arrays(L, delta=delta, phi=delta * 1e5, inputs=inputs, prediction=delta * 0.9,
                                     velocity=vel, velocity_pred=vel * 0.8), delta


def test_explorer_render_every_field_axis_and_arrow_option():
    ex, delta = _explorer()
    assert list(ex.fields) == ["truth δ", "truth φ", "N_gal", "V_pec", "prediction δ", "residual δ"]
    assert ex.kinds["truth φ"] == ("potential", None) and ex.kinds["residual δ"] == ("residual", "density")
    for i, name in enumerate(ex.fields):  # every field and axis; arrows on and off for each field
        for j, axis in enumerate(("SGX", "SGY", "SGZ")):
            arrows = (i + j) % 2 == 0 if j < 2 else None
            for arr in ((True, False) if arrows is None else (arrows,)):
                fig = ex.render(name, axis, 3, arr)
                assert sum(isinstance(c, Quiver) for c in fig.axes[0].collections) == int(arr)
    fig = draw(ex.render("truth δ", "SGY", 4, True))
    shown = np.asarray(fig.axes[0].get_images()[0].get_array())
    np.testing.assert_allclose(shown, 1.0 + delta[:, 4, :].T)  # plane (SGX, SGZ), 1 + δ
    assert fig.axes[0].get_xlabel().startswith("SGX") and fig.axes[0].get_ylabel().startswith("SGZ")
    fig = ex.render("residual δ", 2, 5)
    np.testing.assert_allclose(np.asarray(fig.axes[0].get_images()[0].get_array()), -0.1 * delta[:, :, 5].T,
                               atol=1e-12)
    assert ex.index_of(0.1) in (5, 6) and ex.index_of(-1e3) == 0 and ex.index_of(1e3) == 11
    with pytest.raises(ZoaError, match="unknown field"):
        ex.render("nope", "SGZ", 0)
    with pytest.raises(ZoaError, match="slice index"):
        ex.render("truth δ", "SGZ", 12)
    fig = draw(ex.static_frame())
    assert sum(ax.get_visible() and bool(ax.get_images()) for ax in fig.axes) == 6


def test_explorer_widget_updates_image():
    ex, _ = _explorer(8)
    w = ex.widget
    img = ex.image
    first = img.value
    assert bytes(first[:8]) == b"\x89PNG\r\n\x1a\n"
    ex.controls["field"].value = "V_pec"
    second = img.value
    ex.controls["axis"].value = "SGX"
    ex.controls["arrows"].value = False
    ex.controls["position"].value = ex.x[1]
    assert second != first and img.value != second
    assert w.children[-1] is img


def test_static_scrubber_is_self_contained_and_its_frames_follow_the_slices():
    import base64
    import re

    ex, delta = _explorer(12)
    assert list(ex.frame_indices(16)) == list(range(12))  # all planes of a small cube
    assert list(ex.frame_indices(4)) == [0, 4, 7, 11]
    page = ex.scrubber_html(n_frames=4, start=0.0)
    assert "http" not in page and "require" not in page and "widget" not in page  # no CDN, no widget state
    rng = re.search(r'<input type="range" id="([^"]+)" min="0" max="(\d+)" step="1" value="(\d+)"', page)
    assert rng and rng.group(2) == "3" and rng.group(1).startswith("zoa-scrubber-")
    data = json.loads(re.search(r'class="zoa-scrubber-data">(.*?)</script>', page, re.S).group(1))
    assert data["positions"] == [f"{x:+.1f}" for x in ex.x[[0, 4, 7, 11]]]
    assert int(rng.group(3)) == int(np.argmin(np.abs(ex.x[[0, 4, 7, 11]])))  # starts nearest SGZ = 0
    frames = [base64.b64decode(f) for f in data["frames"]]
    assert all(f[:8] == b"\x89PNG\r\n\x1a\n" for f in frames) and len(set(frames)) == 4
    shown = re.search(r'<img src="data:image/png;base64,([^"]+)"', page).group(1)
    assert shown == data["frames"][int(rng.group(3))]
    # the default panels are truth, prediction and residual of δ; unknown fields are refused
    fig = ex.render_panels(index=5)
    assert [a.get_title(loc="left").split("  ")[0] for a in fig.axes if a.get_title(loc="left")] == \
        ["truth δ", "prediction δ", "residual δ"]
    with pytest.raises(ZoaError, match="not in the explorer"):
        ex.scrubber_html(["nope"])
    with pytest.raises(ZoaError, match="at least 2 frames"):
        ex.frame_indices(1)


# --------------------------------------------------------------------------- 3D scenes
@pytest.fixture(scope="module")
def scene():
    from zoa_lib.book import scene3d

    n = 16
    X, Y, Z = coords(n)
    delta = smooth_field(n, 7, 0.8)
    vel = np.stack([-X, -Y, -Z], -1) * 3.0  # infall onto the observer
    p = scene3d.density_scene(delta, L, vel, iso_levels=(1.0, 1.5), n_streamlines=20)
    yield p
    p.close()


def _dataset_points(plotter):
    import pyvista as pv

    total = 0
    for actor in plotter.renderer.actors.values():
        m = actor.GetMapper() if hasattr(actor, "GetMapper") else None
        if m is not None and hasattr(m, "GetInput") and m.GetInput() is not None:
            total += pv.wrap(m.GetInput()).n_points
    return total


def test_density_scene_content(scene):
    meta = scene.zoa_meta
    assert meta["iso_levels"][1.0] > 0 and meta["iso_levels"][1.5] > 0
    assert meta["n_streamlines"] > 0
    for name in ("1+δ = 1", "1+δ = 1.5", "streamlines", "observer", "box", "axis SGX", "label SGZ-labels"):
        assert name in scene.renderer.actors


def test_density_scene_marks_the_structures_inside_the_cube():
    from zoa_lib.analysis.structures import Structure
    from zoa_lib.book import scene3d

    inside = Structure("Norma cluster (A3627)", 325.3, -7.3, 4870.0, "attractor", "", (-35.0, -3.0, -33.0))
    void = Structure("Local Void", 45.0, 5.0, 1500.0, "void", "", (-2.0, 11.0, 8.0))
    outside = Structure("Far", 0.0, 0.0, 20000.0, "attractor", "", (150.0, 0.0, 0.0))
    p = scene3d.density_scene(smooth_field(16, 7, 0.8), L, iso_levels=(1.0,), structures=[inside, void, outside])
    try:
        assert p.zoa_meta["structures"] == ["Norma cluster (A3627)", "Local Void"]
        assert "structure Norma cluster (A3627)" in p.renderer.actors and "structure Far" not in p.renderer.actors
        centre = p.renderer.actors["structure Norma cluster (A3627)"].GetMapper().GetInput().GetCenter()
        np.testing.assert_allclose(centre, inside.sg, atol=0.05 * L)
    finally:
        p.close()


def test_scene_html_export_is_standalone_vtkjs(scene, tmp_path):
    import base64
    import re
    import zipfile

    from zoa_lib.book import scene3d

    path = scene3d.export_scene_html(scene, tmp_path / "scene.html")
    html = path.read_text()
    assert "vtk.js" in html or "vtkjs" in html
    assert "canvas" in html.lower()
    assert not re.search(r"<script[^>]+src=[\"']https?://", html)  # nothing fetched from the network
    # the embedded scene is a zip with index.json listing the render window and its renderer
    z = zipfile.ZipFile(io.BytesIO(scene3d.scene_vtksz(scene)))
    doc = json.loads(z.read("index.json"))
    assert doc["scene"]["type"].endswith("RenderWindow") and doc["hashes"]
    assert base64.b64encode(z.read("index.json")[:30])  # readable
    assert not list(tmp_path.glob(".tmp-*"))


def test_scene_gltf_and_glb_are_valid(scene, tmp_path):
    from vtkmodules.vtkIOGeometry import vtkGLTFReader

    from zoa_lib.book import scene3d

    gltf = scene3d.export_scene_gltf(scene, tmp_path / "scene.gltf")
    doc = json.loads(gltf.read_text())
    assert doc["asset"]["version"] == "2.0" and doc["meshes"]
    glb = scene3d.export_scene_gltf(scene, tmp_path / "scene.glb")
    data = glb.read_bytes()
    magic, version, length = struct.unpack("<4sII", data[:12])  # glTF 2.0 §4.4 header
    assert (magic, version, length) == (b"glTF", 2, len(data))
    jlen, jtype = struct.unpack("<I4s", data[12:20])
    assert jtype == b"JSON" and jlen % 4 == 0
    gdoc = json.loads(data[20:20 + jlen])
    blen, btype = struct.unpack("<I4s", data[20 + jlen:28 + jlen])
    assert btype == b"BIN\0" and gdoc["buffers"] == [{"byteLength": blen}] and 28 + jlen + blen == len(data)
    for view in gdoc["bufferViews"]:
        assert view["buffer"] == 0 and view.get("byteOffset", 0) + view["byteLength"] <= blen
    # an independent reader (VTK's glTF reader) sees every vertex of the scene in both files
    counts = []
    for f in (gltf, glb):
        r = vtkGLTFReader()
        r.SetFileName(str(f))
        r.Update()
        it = r.GetOutput().NewIterator()
        it.InitTraversal()
        n = 0
        while not it.IsDoneWithTraversal():
            n += it.GetCurrentDataObject().GetNumberOfPoints()
            it.GoToNextItem()
        counts.append(n)
    assert counts[0] == counts[1] == _dataset_points(scene)


def test_scene_screenshot_is_not_blank(tmp_path):
    """Rendered in a fresh process: VTK's EGL context has segfaulted inside a long pytest
    process that already holds TensorFlow and many VTK objects."""
    import subprocess
    import sys
    import textwrap

    from PIL import Image

    from zoa_lib.book import scene3d

    ok, why = scene3d.offscreen_available()
    if not ok:
        pytest.skip(f"no off-screen OpenGL here: {why}")
    path = tmp_path / "scene.png"
    code = textwrap.dedent(f"""
        import numpy as np
        from zoa_lib.book import scene3d
        n, L = 16, 160.0
        x = (np.arange(n) + 0.5) * L / n - L / 2
        X, Y, Z = np.meshgrid(x, x, x, indexing="ij")
        delta = 3 * np.exp(-(X ** 2 + Y ** 2 + Z ** 2) / (2 * 20.0 ** 2)) - 0.5
        v = -np.stack([X, Y, Z], axis=-1) * 5.0
        p = scene3d.density_scene(delta, L, velocity=v, n_streamlines=20)
        scene3d.screenshot(p, {str(path)!r}, window_size=(320, 240))
        p.close()
    """)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    img = np.asarray(Image.open(path).convert("RGB"))
    assert img.shape == (240, 320, 3)
    assert img.std() > 5.0 and len(np.unique(img.reshape(-1, 3), axis=0)) > 50


def test_screenshot_scene_renders_from_a_process_where_tensorflow_ran(tmp_path):
    """screenshot_scene renders in a fresh process, so a notebook that has just applied the
    networks (TensorFlow ops run) gets its PNG instead of a dead kernel. The TensorFlow
    process is a subprocess here too: the test must not depend on what this pytest process
    imported before (VTK then TensorFlow in one process is itself fragile)."""
    import subprocess
    import sys
    import textwrap

    from PIL import Image

    from zoa_lib.book import scene3d

    ok, why = scene3d.offscreen_available()
    if not ok:
        pytest.skip(f"no off-screen OpenGL here: {why}")
    path = tmp_path / "scene.png"
    code = textwrap.dedent(f"""
        import numpy as np
        if __name__ == "__main__":
            import tensorflow as tf
            assert float(tf.reduce_sum(tf.ones(3))) == 3.0       # TensorFlow has run in this process
            from zoa_lib.book import scene3d
            n, L = 16, 160.0
            x = (np.arange(n) + 0.5) * L / n - L / 2
            X, Y, Z = np.meshgrid(x, x, x, indexing="ij")
            delta = 3 * np.exp(-(X ** 2 + Y ** 2 + Z ** 2) / (2 * 20.0 ** 2)) - 0.5
            scene3d.screenshot_scene({str(path)!r}, delta, L, -np.stack([X, Y, Z], -1) * 5.0,
                                     window_size=(320, 240), n_streamlines=10)
    """)
    script = tmp_path / "tf_then_scene.py"
    script.write_text(code)
    out = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-2000:]
    img = np.asarray(Image.open(path).convert("RGB"))
    assert img.shape == (240, 320, 3) and img.std() > 5.0


def test_seed_points_fill_the_ball():
    from zoa_lib.book import scene3d

    s = scene3d.seed_points(2000, 10.0)
    r = np.linalg.norm(s, axis=1)
    assert r.max() <= 10.0
    assert np.mean(r < 10.0 * 0.5 ** (1 / 3)) == pytest.approx(0.5, abs=0.03)  # half the volume
    np.testing.assert_allclose(s.mean(axis=0), 0.0, atol=0.3)


def test_shell_correlations_against_numpy_on_the_sampled_maps():
    from zoa_lib.survey import sky

    n = 16
    X, Y, Z = coords(n)
    truth = np.sin(X / 15.0) + np.cos(Y / 20.0) + Z / 40.0
    noise = np.random.default_rng(1).normal(size=truth.shape)
    pred = truth + 0.5 * noise
    rows = metrics.shell_correlations(truth, pred, L, [(20.0, 40.0), (40.0, 60.0)], 10.0, nside_like=(36, 18))
    assert [r["shell"] for r in rows] == [(20.0, 40.0), (40.0, 60.0)]
    _, b, mt = sky.sample_shell(truth, L, 20.0, 40.0, (36, 18))
    _, _, mp = sky.sample_shell(pred, L, 20.0, 40.0, (36, 18))
    band = (np.abs(b) < 10.0)[:, None] & np.isfinite(mt) & np.isfinite(mp)
    assert rows[0]["r_zoa"] == pytest.approx(np.corrcoef(mt[band], mp[band])[0, 1], rel=1e-9)
    assert rows[0]["r_sky"] == pytest.approx(np.corrcoef(mt[np.isfinite(mt)], mp[np.isfinite(mt)])[0, 1], rel=1e-9)
    assert metrics.shell_correlations(truth, truth, L, [(20.0, 40.0)], 10.0, (36, 18))[0]["r_zoa"] == pytest.approx(1.0)


def test_zoa_slice_mask_against_astropy():
    """The hatched ZOA of a supergalactic slice: points whose Galactic |b| < 10° (astropy's SkyCoord)."""
    import astropy.units as u
    from astropy.coordinates import CartesianRepresentation, SkyCoord
    from matplotlib.figure import Figure


    n, L = 41, 160.0
    for plane in ((0, 1), (0, 2), (1, 2)):
        mask = skymaps.zoa_slice_mask(L, 10.0, plane=plane, n=n)
        x = np.linspace(-L / 2, L / 2, n)
        A, B = np.meshgrid(x, x, indexing="ij")
        xyz = np.zeros((3, n, n))
        xyz[plane[0]], xyz[plane[1]] = A, B
        c = SkyCoord(CartesianRepresentation(*(xyz.reshape(3, -1) + 1e-9) * u.Mpc), frame="supergalactic").galactic
        want = (np.abs(c.b.deg) < 10.0).reshape(n, n)
        assert (mask == want).mean() > 0.995 and mask.mean() > 0.02
        # SGX and SGZ lie near the Galactic plane (b = 0° and 6.3°): the SGY = 0 slice is nearly all ZOA
        assert (mask.mean() > 0.9) == (plane == (0, 2))
    # the SGX-SGY plane holds the Galactic plane's crossing line: the ZOA is a band through the observer
    fig = Figure()
    ax = fig.add_subplot()
    skymaps.mark_zoa_slice(ax, L, 10.0, plane=(0, 1))
    assert "ZOA, |b| < 10°" in ax.get_legend_handles_labels()[1]


def test_verdict_figure_puts_the_advantage_on_the_side_of_the_better_method():
    """A higher-is-better row the network wins and a lower-is-better row it loses: advantages of
    +10 % and −20 % of the classical value, intervals bounded the same way, blue and vermillion."""
    from matplotlib.colors import to_hex

    won = {"metric": "Pearson r", "better": "higher", "network": "vnet", "baseline": "wiener_cal",
           "baseline_value": 0.5, "difference": 0.05, "interval68": [0.04, 0.06], "winner": "vnet",
           "counts_for_goal": True}
    lost = {"metric": "MSE", "better": "lower", "network": "vnet", "baseline": "wiener_cal",
            "baseline_value": 2.0, "difference": 0.4, "interval68": [0.2, 0.6], "winner": "wiener_cal",
            "counts_for_goal": True}
    shown = dict(won, metric="bulk flow", counts_for_goal=False)
    assert statistics.verdict_advantage(won) == pytest.approx((0.10, 0.08, 0.12))
    assert statistics.verdict_advantage(lost) == pytest.approx((-0.20, -0.30, -0.10))
    one = dict(lost, better="one", baseline_value=0.8, difference=-0.1, interval68=[-0.15, -0.05])
    assert statistics.verdict_advantage(one) == pytest.approx((0.5, 0.25, 0.75))  # of |0.8 − 1|
    undetermined = dict(won, metric="r(δ)", interval68=[None, None], winner="undetermined")
    assert np.isnan(statistics.verdict_advantage(undetermined)[1:]).all()
    fig = statistics.figure_verdict({"verdict": [won, lost, shown, undetermined], "labels": {}})
    (ax,) = fig.axes
    assert [t.get_text() for t in ax.get_yticklabels()] == ["Pearson r", "MSE", "r(δ)"]  # counted rows only
    dots = [ln for ln in ax.lines if ln.get_marker() == "o" and len(ln.get_xdata())]
    assert [float(d.get_xdata()[0]) for d in dots] == pytest.approx([10.0, -20.0, 10.0])
    assert [to_hex(d.get_color()) for d in dots] == [to_hex(statistics.VERDICT_COLOURS[k])
                                                    for k in ("vnet", "classical", "undetermined")]
    with pytest.raises(style.VizError, match="no verdict rows"):
        statistics.figure_verdict({"verdict": [shown]})
