"""The Fourier grid helpers against numpy's full complex FFT (an independent reference)."""
import numpy as np
import pytest

from zoa_lib.universe import fourier as Fo


@pytest.mark.parametrize("mesh", [6, 7])
def test_half_spectrum_weights_give_full_sums(mesh):
    """Σ over all modes of |F|² (numpy fftn) = Σ over the rfftn half of w |F|² (Parseval's
    sum of a real field), for even and odd meshes."""
    x = np.random.default_rng(1).standard_normal((mesh,) * 3)
    full = np.sum(np.abs(np.fft.fftn(x)) ** 2)
    half = np.sum(np.abs(np.fft.rfftn(x)) ** 2 * Fo.half_spectrum_weights(mesh))
    assert half == pytest.approx(full, rel=1e-12)
    # and the test can fail: unit weights miss the conjugate half
    assert np.sum(np.abs(np.fft.rfftn(x)) ** 2) < 0.8 * full


def test_wavevectors_match_numpy_frequencies():
    mesh, size = 8, 50.0
    kx, ky, kz = Fo.wavevectors(mesh, size)
    assert kx.shape == (mesh, 1, 1) and ky.shape == (1, mesh, 1) and kz.shape == (1, 1, mesh // 2 + 1)
    np.testing.assert_allclose(kx.ravel(), 2 * np.pi * np.fft.fftfreq(mesh, size / mesh))
    np.testing.assert_allclose(kz.ravel(), 2 * np.pi * np.fft.rfftfreq(mesh, size / mesh))
    np.testing.assert_allclose(Fo.axis_wavenumbers(mesh, size, half=True), kz.ravel())
    odd = Fo.axis_wavenumbers(mesh, size, nyquist=False)
    assert odd[mesh // 2] == 0 and np.count_nonzero(odd) == mesh - 2
    k2 = Fo.k_squared(mesh, size)
    inv = Fo.inverse_k_squared(mesh, size)
    assert inv[0, 0, 0] == 0 and np.allclose((inv * k2)[k2 > 0], 1.0)


def test_nyquist_mask_drops_planes_with_a_nyquist_component():
    """A field built from modes below k_Nyq keeps its rfftn after masking; a pure Nyquist
    wave (−1)^i is removed."""
    m = Fo.nyquist_mask(8)
    assert m.shape == (8, 8, 5)
    i = np.arange(8)
    nyq = np.cos(np.pi * i)[:, None, None] * np.ones((8, 8, 8))
    assert np.allclose(np.fft.irfftn(np.fft.rfftn(nyq) * m, s=(8,) * 3), 0.0)
    low = np.cos(2 * np.pi * i / 8)[None, :, None] * np.ones((8, 8, 8))
    assert np.allclose(np.fft.irfftn(np.fft.rfftn(low) * m, s=(8,) * 3), low)
    assert np.all(Fo.nyquist_mask(7) == 1.0)
    with pytest.raises(ValueError, match="rfftn"):
        Fo.zero_nyquist(np.ones((8, 8, 8)))


def test_gaussian_kernel_is_transform_of_unit_gaussian():
    """Smoothing a point mass with exp(−k²σ²/2) gives the sampled unit Gaussian (σ ≪ L)."""
    mesh, size, sigma = 32, 100.0, 6.0
    d = np.zeros((mesh,) * 3)
    d[0, 0, 0] = 1.0
    g = np.fft.irfftn(np.fft.rfftn(d) * Fo.gaussian_kernel_k(mesh, size, sigma), s=d.shape)
    x = np.minimum(np.arange(mesh), mesh - np.arange(mesh)) * size / mesh
    r2 = x[:, None, None] ** 2 + x[None, :, None] ** 2 + x[None, None, :] ** 2
    ref = np.exp(-r2 / (2 * sigma ** 2)) / (2 * np.pi * sigma ** 2) ** 1.5 * (size / mesh) ** 3
    np.testing.assert_allclose(g, ref, atol=1e-6 * ref.max())


def test_fft_workers(monkeypatch):
    assert Fo.fft_workers(3) == 3
    monkeypatch.setenv("ZOA_FFT_WORKERS", "2")
    assert Fo.fft_workers() == 2


def test_leaf_modules_import_no_other_zoa_module():
    """fourier and mass_assignment are leaves, and fields needs no simulation at import
    (the import graph runs fourier ← simulation, fourier ← fields, no circle)."""
    import subprocess
    import sys

    code = ("import sys, importlib; m = sys.argv[1]; importlib.import_module(m); "
            "print(sorted(k for k in sys.modules if k.startswith('zoa_lib.')))")
    for mod, allowed in (("zoa_lib.universe.fourier", {"zoa_lib.universe", "zoa_lib.universe.fourier"}),
                         ("zoa_lib.universe.mass_assignment", {"zoa_lib.universe", "zoa_lib.universe.mass_assignment", "zoa_lib.errors"})):
        out = subprocess.run([sys.executable, "-c", code, mod], capture_output=True, text=True, check=True)
        assert set(eval(out.stdout)) <= allowed, out.stdout
    out = subprocess.run([sys.executable, "-c", code, "zoa_lib.universe.fields"], capture_output=True, text=True, check=True)
    assert "zoa_lib.universe.simulation" not in out.stdout


@pytest.mark.parametrize("n, mesh", [(6, 12), (8, 16), (5, 10), (8, 8)])
def test_pruned_transforms_equal_the_full_ones(n, mesh):
    """rfftn_padded = rfftn of the zero-padded array; irfftn_corner = the corner of irfftn."""
    import scipy.fft as sfft

    rng = np.random.default_rng(n + mesh)
    y = rng.normal(size=(n, n, n))
    padded = np.zeros((mesh,) * 3)
    padded[:n, :n, :n] = y
    full = np.fft.rfftn(padded)
    np.testing.assert_allclose(Fo.rfftn_padded(y, mesh), full, rtol=0, atol=1e-12 * np.abs(full).max())
    spec = sfft.rfftn(rng.normal(size=(mesh,) * 3))
    corner = np.fft.irfftn(spec, s=(mesh,) * 3)[:n, :n, :n]
    np.testing.assert_allclose(Fo.irfftn_corner(spec, n), corner, rtol=0, atol=1e-12 * np.abs(corner).max())
    single = Fo.rfftn_padded(y.astype(np.float32), mesh)
    assert single.dtype == np.complex64
