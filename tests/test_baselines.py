"""Wiener filter against dense linear algebra; noiseless limits of the Wiener filter and POTENT."""
import numpy as np
import pytest
from dense_prior import H0, covariance_model  # noqa: E402  (tests/dense_prior.py)

from zoa_lib.methods import baselines
from zoa_lib.universe import velocity
from zoa_lib.universe.cosmology import Cosmology


@pytest.fixture(scope="module")
def cosmo():
    return Cosmology()


def test_wiener_filter_equals_dense_solution(cosmo):
    """δ, φ, v of the CG/FFT filter = ⟨s d⟩ (S + N)⁻¹ d with every covariance summed directly
    over the padded box's modes: ⟨a(r) b(r')⟩ = (1/V) Σ_k P W² A(k) B*(k) e^{ik·(r−r')}."""
    n, L, pad, sm = 6, 60.0, 2, 5.0
    m, Lp, dx = n * pad, L * pad, L / n
    rng = np.random.default_rng(11)
    n_gal = rng.poisson(1.2, (n, n, n)).astype(float)
    exclude = np.zeros((n, n, n), bool)
    exclude[:, :, 2:4] = True  # a "ZOA" slab: its galaxies are left out
    v_pec = rng.normal(0, 300, (n, n, n)) * (n_gal > 0)
    sigma_v = rng.uniform(100, 400, (n, n, n))

    wf = baselines.WienerFilter(n, L, cosmo, smoothing=sm, pad=pad, precision="double")
    res = wf.solve(n_gal, v_pec, sigma_v, exclude=exclude, tol=1e-13, maxiter=2000)
    assert res.converged

    # --- dense, independent
    idx = np.argwhere(np.ones((n, n, n), bool))  # all cube voxels, C order
    pos_pad = idx * dx  # positions on the padded periodic grid (translation invariant)
    centre = -L / 2 + (idx + 0.5) * dx  # observer-centred positions
    rhat_all = centre / np.linalg.norm(centre, axis=1, keepdims=True)
    data = ((n_gal > 0) & ~exclude).ravel()
    k, pw, La, Lphi = covariance_model(cosmo, m, Lp, sm)
    E = np.exp(1j * pos_pad @ k.T)  # (voxels, modes)
    V = Lp ** 3

    def cov(A, B):  # (voxels, voxels) for multipliers A(k), B(k) of δ
        return ((E * (pw * A * np.conj(B))) @ E[data].conj().T).real / V

    # radial-velocity data: u = Σ_b r̂_b v_b → cross-covariance with a field s of multiplier A
    def cov_u(A):
        return sum(cov(A, La[:, b]) * rhat_all[data, b][None, :] for b in range(3))

    one = np.ones(len(k))
    C_vu = [cov_u(La[:, a]) for a in range(3)]
    S = sum(rhat_all[data, a][:, None] * C_vu[a][data] for a in range(3))
    Nn = np.diag(sigma_v.ravel()[data] ** 2 / n_gal.ravel()[data])
    x = np.linalg.solve(S + Nn, v_pec.ravel()[data])
    dense = {"delta": cov_u(one) @ x, "phi": cov_u(Lphi) @ x}
    dense_v = np.stack([C @ x for C in C_vu], -1)

    assert res.n_data == data.sum()
    for name in ("delta", "phi"):
        got = getattr(res, name).ravel()
        np.testing.assert_allclose(got, dense[name], rtol=0, atol=1e-6 * np.abs(dense[name]).max())
    np.testing.assert_allclose(res.velocity.reshape(-1, 3), dense_v, rtol=0, atol=1e-6 * np.abs(dense_v).max())
    # the operator's S matches the dense S
    y = rng.normal(size=data.sum())
    _, flat, rh = wf.data_voxels(n_gal, exclude)
    np.testing.assert_allclose(wf.apply_signal(y, flat, rh), S @ y, rtol=1e-9, atol=1e-9 * np.abs(S @ y).max())
    assert wf.c0 == pytest.approx(S[0, 0], rel=1e-10)


def test_wiener_filter_noiseless_full_sky_recovers_linear_field(cosmo):
    """Every voxel observed, σ_v tiny, no ZOA: the filter returns the linear-theory field that
    made the data (δ drawn from the same prior on the padded box). The prior is smoothed on
    the voxel scale, so that radial velocities at voxel centres determine the 3D field."""
    n, L, pad, sm = 8, 80.0, 2, 10.0
    m, Lp, dx = n * pad, L * pad, L / n
    rng = np.random.default_rng(12)
    # δ with P(k) W²(k) on the padded periodic box; linear velocity
    w = np.fft.fftn(rng.standard_normal((m, m, m))).ravel()
    k, pw, La, _ = covariance_model(cosmo, m, Lp, sm)
    dk = w * np.sqrt(pw / dx ** 3)
    delta = np.fft.ifftn(dk.reshape(m, m, m)).real[:n, :n, :n]
    v = np.stack([np.fft.ifftn((La[:, a] * dk).reshape(m, m, m)).real[:n, :n, :n] for a in range(3)], -1)
    x = -L / 2 + (np.arange(n) + 0.5) * dx
    pos = np.stack(np.meshgrid(x, x, x, indexing="ij"), -1)
    u = np.sum(v * pos, -1) / np.linalg.norm(pos, axis=-1)
    wf = baselines.WienerFilter(n, L, cosmo, smoothing=sm, pad=pad, precision="double")
    res = wf.solve(np.ones((n, n, n)), u, sigma_v=2.0, tol=1e-10, maxiter=5000)
    assert res.converged
    rms = np.sqrt(np.mean(v ** 2))
    assert np.sqrt(np.mean((res.velocity - v) ** 2)) < 0.03 * rms
    assert np.corrcoef(res.delta.ravel(), delta.ravel())[0, 1] > 0.99
    # the radial velocities are reproduced almost exactly
    ur = np.sum(res.velocity * pos, -1) / np.linalg.norm(pos, axis=-1)
    assert np.sqrt(np.mean((ur - u) ** 2)) < 0.01 * np.std(u)


def test_wiener_filter_no_data_and_bad_inputs(cosmo):
    from zoa_lib.errors import ZoaError

    wf = baselines.WienerFilter(8, 80.0, cosmo)
    res = wf.solve(np.zeros((8, 8, 8)), np.zeros((8, 8, 8)), 100.0)
    assert res.n_data == 0 and not np.any(res.delta)
    with pytest.raises(ZoaError, match="N_gal"):
        wf.solve(np.zeros((8, 8)), np.zeros((8, 8)), 100.0)
    with pytest.raises(ZoaError, match="sigma_v"):
        wf.solve(np.ones((8, 8, 8)), np.zeros((8, 8, 8)), 0.0)


def test_potent_recovers_exact_potential_flow(cosmo):
    """v = −∇Φ for Φ = −B·x + a Gaussian hill, radial velocities in every voxel, no noise:
    POTENT's v, δ and φ match the analytic fields smoothed like POTENT smooths (a Gaussian of
    σ_P, analytic for this Φ) away from the origin and the faces. σ_P is small against the
    hill (45 Mpc/h): POTENT's radial smoothing of radial velocities differs from the smoothed
    radial velocity at order σ_P²/r², its known bias."""
    n, L, sm = 32, 160.0, 4.0
    x = -L / 2 + (np.arange(n) + 0.5) * L / n
    pos = np.stack(np.meshgrid(x, x, x, indexing="ij"), -1)
    r = np.linalg.norm(pos, axis=-1)
    B = np.array([150.0, -80.0, 60.0])
    x0, s, A = np.array([-20.0, 10.0, 15.0]), 45.0, 6.0e4  # A in km/s · Mpc/h
    d = pos - x0
    g = np.exp(-np.sum(d ** 2, -1) / (2 * s ** 2))
    u = np.sum((B + A * g[..., None] * d / s ** 2) * pos, -1) / r  # radial part of v = −∇Φ
    # the same flow smoothed with G_σ: Φ_s = −B·x + A (s²/S²)^{3/2} e^{−d²/2S²}, S² = s² + σ²
    S2 = s ** 2 + sm ** 2
    As = A * (s ** 2 / S2) ** 1.5
    gs = np.exp(-np.sum(d ** 2, -1) / (2 * S2))
    Phi = -pos @ B + As * gs
    v = B + As * gs[..., None] * d / S2
    div_v = -As * gs * (np.sum(d ** 2, -1) / S2 ** 2 - 3 / S2)
    res = baselines.potent(np.ones((n, n, n)), u, L, cosmo, smoothing=sm)
    sel = (r > 15) & (r < 55)
    rms = np.sqrt(np.mean(v[sel] ** 2))
    assert np.sqrt(np.mean((res.velocity[sel] - v[sel]) ** 2)) < 0.04 * rms
    delta_true = -div_v / (cosmo.growth_rate * H0)
    assert np.corrcoef(res.delta[sel], delta_true[sel])[0, 1] > 0.99
    phi_true = (Phi - Phi[sel].mean()) / cosmo.velocity_from_potential_factor
    phi_got = res.phi - res.phi[sel].mean()
    assert np.sqrt(np.mean((phi_got[sel] - phi_true[sel]) ** 2)) < 0.08 * np.std(phi_true[sel])


def test_potent_scalar_window_and_errors(cosmo):
    from zoa_lib.errors import ZoaError

    n, L = 16, 160.0
    x = -L / 2 + (np.arange(n) + 0.5) * L / n
    pos = np.stack(np.meshgrid(x, x, x, indexing="ij"), -1)
    B = np.array([200.0, 0.0, 0.0])
    u = pos @ B / np.linalg.norm(pos, axis=-1)
    res = baselines.potent(np.ones((n, n, n)), u, L, cosmo, smoothing=10.0, window="tensor")
    r = np.linalg.norm(pos, axis=-1)
    np.testing.assert_allclose(res.velocity[r < 50], np.broadcast_to(B, res.velocity[r < 50].shape), atol=2.0)
    with pytest.raises(ZoaError, match="window"):
        baselines.potent(np.ones((n, n, n)), u, L, cosmo, 5.0, window="box")
    with pytest.raises(ZoaError, match="smoothing"):
        baselines.potent(np.ones((n, n, n)), u, L, cosmo, 0.0)


def test_radial_bias_is_measured_and_removed():
    """V_pec = v·r̂ + b(r) + noise in occupied voxels: radial_bias recovers b(r) and
    subtract_radial_bias removes it."""
    n, L = 16, 160.0
    rng = np.random.default_rng(13)
    x = -L / 2 + (np.arange(n) + 0.5) * L / n
    pos = np.stack(np.meshgrid(x, x, x, indexing="ij"), -1)
    r = np.linalg.norm(pos, axis=-1)
    b = lambda rr: 400.0 - 12.0 * rr  # noqa: E731  outflow inside, infall outside, km/s
    mocks = []
    for _ in range(4):
        v = rng.normal(0, 300, (n, n, n, 3))
        n_gal = rng.poisson(2.0, (n, n, n)).astype(float)
        u = np.sum(v * pos, -1) / r
        v_pec = np.where(n_gal > 0, u + b(r) + rng.normal(0, 30, (n, n, n)), 0.0)
        mocks.append((np.stack([n_gal, v_pec], -1), v))
    rb = baselines.radial_bias(iter(mocks), L)
    # expected: the galaxy-weighted mean of b over each bin's voxels (± 30 km/s noise / √count)
    idx = np.digitize(r, rb.edges) - 1
    w = sum(m[0][..., 0] for m in mocks)
    expected = np.array([np.sum((w * b(r))[idx == i]) / max(np.sum(w[idx == i]), 1) for i in range(len(rb.bias))])
    occupied = sum((m[0][..., 0] > 0).astype(float) for m in mocks)
    count = np.array([occupied[idx == i].sum() for i in range(len(rb.bias))])
    ok = np.isfinite(rb.bias)
    assert ok.sum() > 10
    # 5σ of a weighted mean of count voxels with 30 km/s noise (weights up to ~2× uneven)
    assert np.all(np.abs(rb.bias[ok] - expected[ok]) < 5 * 1.5 * 30.0 / np.sqrt(count[ok]))
    fixed = baselines.subtract_radial_bias(mocks[0][0], L, rb)
    occ = mocks[0][0][..., 0] > 0
    u0 = np.sum(mocks[0][1] * pos, -1) / r
    resid = fixed[..., 1][occ] - u0[occ]
    assert abs(resid.mean()) < 10.0 and np.std(resid) < 40.0
    assert np.all(fixed[..., 1][~occ] == 0)


def test_benchmark_on_synthetic_mock(zoa_data):
    from zoa_lib.config import load_profile

    prof = load_profile("ci")
    out = baselines.benchmark(prof, n_mocks=1)
    assert out["source"] == "synthetic" and out["padded_grid"] == 2 * prof.box.grid
    assert out["wiener_iterations"][0] > 0 and out["wiener_converged"] == [True]
    assert out["wiener_data_voxels"][0] > 0


def _catalog(pos, v_r_true):
    """Catalog rows at true positions ``pos`` (m, 3) (observed = true distance)."""
    from zoa_lib.survey.shards import CATALOG_DTYPE

    cat = np.zeros(len(pos), CATALOG_DTYPE)
    d = np.linalg.norm(pos, axis=1)
    cat["SGX"], cat["SGY"], cat["SGZ"] = pos.T
    cat["d_true"] = cat["d_obs"] = d
    cat["v_r_true"] = v_r_true
    return cat


def test_velocity_dispersion_measures_the_scatter_about_the_smoothed_field():
    """Galaxies move with their voxel's smoothed velocity plus 150 km/s of random motion:
    the measured σ_nl is 150 km/s (and 0 without the random motion)."""
    n, L = 16, 160.0
    rng = np.random.default_rng(21)
    mocks, exact = [], []
    for _ in range(3):
        v = rng.normal(0, 400, (n, n, n, 3))  # a (rough) smoothed field, km/s
        pos = rng.uniform(-70, 70, (4000, 3))
        ijk = np.floor((pos + L / 2) * n / L).astype(int)
        u = np.einsum("ma,ma->m", v[ijk[:, 0], ijk[:, 1], ijk[:, 2]], pos / np.linalg.norm(pos, axis=1)[:, None])
        mocks.append((_catalog(pos, u + rng.normal(0, 150, len(u))), v))
        exact.append((_catalog(pos, u), v))
    out = baselines.velocity_dispersion(iter(mocks), L, r_max=80.0)
    within = sum(int(np.sum(np.linalg.norm(np.stack([c["SGX"], c["SGY"], c["SGZ"]], -1), axis=1)
                            <= 80.0)) for c, _ in mocks)
    assert out["n_mocks"] == 3 and out["n_galaxies"] == within > 8000
    assert out["sigma_nl"] == pytest.approx(150.0, rel=0.03) and abs(out["mean"]) < 5
    assert baselines.velocity_dispersion(iter(exact), L)["sigma_nl"] < 1e-3
    # only galaxies within r_max count
    few = baselines.velocity_dispersion(iter(mocks), L, r_max=20.0)
    assert 0 < few["n_galaxies"] < out["n_galaxies"] / 10
    from zoa_lib.survey.shards import CATALOG_DTYPE

    empty = baselines.velocity_dispersion(iter([(np.zeros(0, CATALOG_DTYPE), mocks[0][1])]), L)
    assert np.isnan(empty["sigma_nl"]) and empty["n_galaxies"] == 0


def test_wiener_filter_uses_zoa_galaxies_and_adds_sigma_nl(zoa_data):
    """Occupied ZOA voxels are data unless excluded; σ_nl adds to the noise in quadrature."""
    from zoa_lib.config import load_profile
    from zoa_lib.survey.sky import zoa_mask

    prof = load_profile("ci")
    n, L = prof.box.grid, prof.box.size
    mock = baselines.synthetic_mock(prof, 0)
    x = mock["inputs"].copy()
    zoa = zoa_mask(n, L, prof.survey.zoa_b) & (np.linalg.norm(
        np.stack(np.meshgrid(*[np.arange(n)] * 3, indexing="ij"), -1) + 0.5 - n / 2, axis=-1) < n / 3)
    rhat = velocity.unit_radial_grid(n, L)
    u = np.einsum("...a,...a->...", mock["velocity"], rhat)
    x[..., 0][zoa] = 50.0  # well-sampled voxels in the ZOA, with their true radial velocity
    x[..., 1][zoa] = u[zoa]
    with_zoa = baselines.wiener_filter(x, prof)
    without = baselines.wiener_filter(x, prof, exclude_zoa=True)
    assert with_zoa.n_data - without.n_data == int(zoa.sum()) > 0

    def err(r):  # rms radial-velocity error in those voxels
        return np.sqrt(np.mean((np.einsum("...a,...a->...", r.velocity, rhat) - u)[zoa] ** 2))

    # the ZOA data are used: the filter follows them there (≈ 30 against ≈ 85 km/s)
    assert err(with_zoa) < 0.5 * err(without)
    base = baselines.noise_sigma_v(prof)
    np.testing.assert_allclose(baselines.noise_sigma_v(prof, sigma_nl=180.0), np.sqrt(base ** 2 + 180.0 ** 2))
    with pytest.raises(baselines.BaselineError):
        baselines.noise_sigma_v(prof, sigma_nl=-1.0)


def test_single_precision_transforms_agree_with_double(cosmo):
    """The default float32 transforms change the estimates by less than the CG tolerance the
    profiles use does (10⁻³: the tol-10⁻³ double solve against a converged one), and a
    tolerance single precision cannot reach is refused in one line."""
    from zoa_lib.errors import ZoaError

    n, L, sm = 16, 160.0, 10.0
    rng = np.random.default_rng(5)
    n_gal = rng.poisson(0.8, (n, n, n)).astype(float)
    v_pec = rng.normal(0, 300, (n, n, n)) * (n_gal > 0)
    single = baselines.WienerFilter(n, L, cosmo, smoothing=sm)
    double = baselines.WienerFilter(n, L, cosmo, smoothing=sm, precision="double")
    assert single.precision == "single" and single._lk_t[0].dtype == np.float32
    exact = double.solve(n_gal, v_pec, 300.0, tol=1e-10, maxiter=3000)
    loose = double.solve(n_gal, v_pec, 300.0, tol=1e-3)
    fast = single.solve(n_gal, v_pec, 300.0, tol=1e-3)
    assert fast.phi.dtype == np.float64 and fast.velocity.dtype == np.float64
    for name in ("delta", "phi", "velocity"):
        e = getattr(exact, name)
        err_loose = np.abs(getattr(loose, name) - e).max()
        err_fast = np.abs(getattr(fast, name) - e).max()
        assert err_fast < max(3 * err_loose, 1e-3 * np.abs(e).max()), name
    # the operator itself: float32 round-off, far below the tolerance
    mask, flat, rhat = single.data_voxels(n_gal)
    y = rng.normal(size=len(flat))
    s64 = double.apply_signal(y, flat, rhat)
    assert np.abs(single.apply_signal(y, flat, rhat) - s64).max() < 1e-5 * np.abs(s64).max()
    with pytest.raises(ZoaError, match="precision='double'"):
        single.solve(n_gal, v_pec, 300.0, tol=1e-8)
    with pytest.raises(ZoaError, match="precision"):
        baselines.WienerFilter(n, L, cosmo, precision="half")
