"""zoa_lib.universe.nonlinear: the halofit reference (CAMB) and measured power spectra / PDFs,
against analytic cases; and the chapter-02 plots of them (smoke)."""
from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest

from zoa_lib.book.viz import statistics, style
from zoa_lib.universe import nonlinear as NL
from zoa_lib.universe.cosmology import Cosmology


def lattice(mesh, size):
    q = np.arange(mesh) * (size / mesh)
    return np.stack(np.meshgrid(q, q, q, indexing="ij"), -1).reshape(-1, 3)


def test_plane_wave_particles_give_the_zeldovich_power():
    """Ψ_x = A sin(k q_x) on a lattice 4× finer than the mesh (a continuum for the CIC
    window): δ = −A k cos(k x) to first order, so the one mode ±k carries P = (A k)² V / 4
    once the CIC window of the mesh (k Δ/2 = 0.59) is divided out. What remains is the
    lattice's own finite difference at its spacing Δ_p = Δ/4, a factor cos²(kΔ_p/2)/sinc²(kΔ_p/2)
    = 0.986 (derived for particles half a node from the mesh nodes; on a lattice as coarse as
    the mesh it would be 0.94 here: the CIC window describes a continuum, not a lattice)."""
    M, L, n, A = 16, 100.0, 3, 0.05
    k = 2 * np.pi * n / L
    pos = lattice(4 * M, L)
    pos[:, 0] = (pos[:, 0] + A * np.sin(k * pos[:, 0])) % L
    K, P = NL.particle_power_modes(pos, L, M)
    i = np.unravel_index(np.argmax(P), P.shape)
    assert K[i] == pytest.approx(k)
    x = k * L / (4 * M) / 2
    lattice_factor = np.cos(x) ** 2 / np.sinc(x / np.pi) ** 2
    assert P[i] == pytest.approx((A * k) ** 2 * L ** 3 / 4 * lattice_factor, rel=2e-3)
    # the unperturbed lattice has no power
    K0, P0 = NL.particle_power_modes(lattice(M, L), L, M)
    assert P0.max() < 1e-12 * L ** 3


def test_white_noise_field_power_and_binning():
    """White noise of variance σ² on M³ cells: P = σ² V / M³ in every shell (to 3 σ of
    the shell's mode count); bin_modes equals a plain loop."""
    g = np.random.default_rng(2)
    M, L, s = 32, 64.0, 1.7
    K, P = NL.field_power_modes(g.normal(0, s, (M,) * 3), L)
    edges = np.linspace(0.2, np.pi * M / L, 6)
    k, p, n = NL.bin_modes(K, P, edges)
    expect = s ** 2 * L ** 3 / M ** 3
    assert np.all(np.abs(p / expect - 1) < 3 / np.sqrt(n))
    for j in range(5):
        m = (K >= edges[j]) & (K < edges[j + 1])
        assert n[j] == m.sum() and p[j] == pytest.approx(P[m].mean()) and k[j] == pytest.approx(K[m].mean())
    with pytest.raises(NL.NonlinearError, match="increasing"):
        NL.bin_modes(K, P, [1.0, 0.5])
    with pytest.raises(NL.NonlinearError, match="cubic"):
        NL.field_power_modes(np.zeros((4, 4, 5)), L)


def test_density_pdfs_moments():
    g = np.random.default_rng(3)
    x = g.normal(0, 0.3, 200000)
    y = np.exp(g.normal(0, 0.5, 200000) - 0.125) - 1  # log-normal δ, mean 0
    out = NL.density_pdfs({"gauss": x, "lognormal": y}, bins=50, hi=3.0)
    w = np.diff(out["edges"])
    assert np.sum(out["pdf"]["gauss"] * w) == pytest.approx(np.mean((x >= -1) & (x <= 3)), abs=1e-9)
    assert out["variance"]["gauss"] == pytest.approx(0.09, rel=0.02)
    assert abs(out["skewness"]["gauss"]) < 0.03
    s2 = np.exp(0.25)
    assert out["skewness"]["lognormal"] == pytest.approx((s2 + 2) * np.sqrt(s2 - 1), rel=0.1)
    with pytest.raises(NL.NonlinearError):
        NL.density_pdfs({})


def fake_boxes(M=16, L=160.0):
    g = np.random.default_rng(4)
    d = g.normal(0, 0.2, (M,) * 3).astype(np.float32)
    q = lattice(M, L)
    mk = lambda eps: SimpleNamespace(size=L, mesh=M, delta_lin=d, positions=((q + eps * g.normal(size=q.shape))
                                                                            % L).astype(np.float32))  # noqa: E731
    return {"2lpt": mk(0.5), "pm": mk(1.0)}


def test_engine_spectra_without_halofit_and_checks_the_realisation():
    boxes = fake_boxes()
    sp = NL.engine_spectra(boxes, Cosmology(), halofit=False)
    assert sp["halofit"] is None and sp["ratio_halofit"] is None and not sp["camb"] and sp["reason"]
    np.testing.assert_allclose(sp["ratio_linear"]["pm"], sp["power"]["pm"] / sp["linear"])
    assert np.isnan(NL.mean_ratio(sp, "pm", 0.1, 0.3))
    assert NL.mean_ratio(sp, "pm", 0.0, 1.0, of="ratio_linear") > 0
    other = dict(boxes)
    other["pm"] = SimpleNamespace(**{**vars(boxes["pm"]), "delta_lin": boxes["pm"].delta_lin * 2})
    with pytest.raises(NL.NonlinearError, match="same realisation"):
        NL.engine_spectra(other, Cosmology(), halofit=False)


def test_linear_density_carries_the_cic_window():
    """A lattice deposited with CIC has δ = 0; the linear field convolved with the CIC
    window has the variance Σ W² P_lin (checked against the plain FFT product)."""
    b = fake_boxes()["pm"]
    lin = NL.box_density(b, linear=True)
    K, W = NL._kgrid(b.mesh, b.size)
    ref = np.fft.irfftn(np.fft.rfftn(b.delta_lin.astype(float)) * W, s=lin.shape)
    np.testing.assert_allclose(lin, ref, atol=1e-6)
    assert lin.var() < b.delta_lin.var()


def test_halofit_reference_from_camb():
    """CAMB's linear P(k) for the profile's cosmology agrees with the project's (colossus,
    Eisenstein–Hu, same σ8) within 6 % at 0.01–0.3 h/Mpc; the boost is 1 on large scales
    and grows on small ones (halofit: ≈ 1.5–2.5 at k = 0.5 h/Mpc for σ8 ≈ 0.8)."""
    pytest.importorskip("camb", reason="CAMB (pip install camb) computes the halofit reference")
    c = Cosmology()
    ref = NL.camb_power(c)
    assert ref["sigma8"] == pytest.approx(c.sigma8, rel=1e-3)
    k = np.geomspace(0.01, 0.3, 12)
    mine = c.power_spectrum(k)
    np.testing.assert_allclose(np.interp(k, ref["k"], ref["linear"]) / mine, 1.0, atol=0.06)
    b = NL.halofit_boost(c, [0.005, 0.5])
    assert b[0] == pytest.approx(1.0, abs=0.01)
    assert 1.5 < b[1] < 2.5
    with pytest.raises(NL.NonlinearError, match="kmin"):
        NL.camb_power(c, kmin=1.0, kmax=0.5)


def test_missing_camb_gives_one_line(monkeypatch):
    import sys

    NL._camb_power.cache_clear()
    monkeypatch.setitem(sys.modules, "camb", None)
    assert not NL.camb_available()
    with pytest.raises(NL.NonlinearError, match="pip install camb") as e:
        NL.camb_power(Cosmology(sigma8=0.7))
    assert "\n" not in str(e.value)
    sp = NL.engine_spectra(fake_boxes(), Cosmology())
    assert not sp["camb"] and "CAMB is not installed" in sp["reason"]
    NL._camb_power.cache_clear()


def test_chapter_plots_draw():
    boxes = fake_boxes()
    sp = NL.engine_spectra(boxes, Cosmology(), halofit=False)
    fig = statistics.plot_engine_power(sp)
    assert len(fig.axes) == 2 and "no CAMB" in fig.axes[1].get_title()
    fig = statistics.figure_engine_slabs({k: NL.box_density(b) for k, b in boxes.items()}, 160.0)
    assert len(fig.axes) == 3  # two panels and a colour bar
    pd = NL.density_pdfs({k: NL.box_density(b) for k, b in boxes.items()})
    ax = statistics.plot_density_pdfs(None, pd)
    assert len(ax.get_legend().get_texts()) == 2
    res = {"redshift": {"edges": np.array([0, 10, 20.0]), "bias": np.array([1.0, -2]), "err": np.ones(2),
                        "by": "cz"}}
    ax = statistics.plot_velocity_bias_shells(None, res)
    assert "redshift distance" in ax.get_xlabel()
    with pytest.raises(style.VizError):
        statistics.figure_engine_slabs({}, 160.0)
