"""Parent boxes, LPT and observer cubes against independent computations.

Spectra are measured with numpy.fft.fftn (the library uses scipy.fft.rfftn), the CIC is
checked against a per-particle loop, LPT against analytic plane-wave solutions, and the
cube cut against index arithmetic on rolled arrays.
"""
import itertools
import json

import numpy as np
import pytest
from parent_fixtures import box, cosmo, prof  # noqa: F401  (pytest fixtures)

from zoa_lib.config import load_profile
from zoa_lib.errors import ZoaError
from zoa_lib.universe import lpt, mass_assignment, symmetries
from zoa_lib.universe import simulation as S
from zoa_lib.universe.cosmology import H0, from_profile
from zoa_lib.universe.fields import density_contrast
from zoa_lib.universe.rng import generator


def kgrid(mesh, size):
    """Full-complex wave vectors (numpy.fft.fftn layout) and |k|."""
    k = 2 * np.pi * np.fft.fftfreq(mesh, size / mesh)
    KX, KY, KZ = np.meshgrid(k, k, k, indexing="ij")
    return KX, KY, KZ, np.sqrt(KX ** 2 + KY ** 2 + KZ ** 2)


# --------------------------------------------------------------------------- initial conditions
def test_gaussian_field_power_spectrum_matches_input(cosmo):
    """Measured P(k) within 4 cosmic-variance sigmas, sigma_P = P sqrt(2/N_modes), in every bin."""
    L, M, nreal = 320.0, 32, 4
    _, _, _, K = kgrid(M, L)
    kf = 2 * np.pi / L
    bins = np.arange(0.5, np.sqrt(3) * M / 2 + 1.5) * kf
    which = np.digitize(K.ravel(), bins)
    pin = cosmo.power_spectrum(K.ravel())
    pmeas = np.zeros(len(bins) + 1)
    for r in range(nreal):
        d = S.gaussian_field(cosmo, L, M, generator(7, "initial_conditions", r))
        assert d.dtype == np.float32 and d.shape == (M, M, M)
        pk = np.abs(np.fft.fftn(d.astype(np.float64))) ** 2 * L ** 3 / M ** 6
        pmeas += np.bincount(which, pk.ravel(), minlength=len(bins) + 1) / nreal
    nmodes = np.bincount(which, minlength=len(bins) + 1)
    pexp = np.bincount(which, pin, minlength=len(bins) + 1)
    ok = (nmodes > 0) & (np.arange(len(nmodes)) > 0)
    pmeas, pexp, nmodes = pmeas[ok] / nmodes[ok], pexp[ok] / nmodes[ok], nmodes[ok]
    sigma = pexp * np.sqrt(2.0 / nmodes) / np.sqrt(nreal)
    pull = (pmeas - pexp) / sigma
    assert len(pull) >= 20
    assert np.all(np.abs(pull) < 4), pull
    # a 10 % normalisation error would be caught: the high-k bins are far more precise
    assert np.any(0.1 * pexp > 4 * sigma)


def test_gaussian_field_variance_parseval(cosmo):
    """Real-space variance equals (1/V) sum_k P(k) over the mesh modes (within 5 %)."""
    L, M = 200.0, 32
    _, _, _, K = kgrid(M, L)
    expected = cosmo.power_spectrum(K).sum() / L ** 3
    var = np.mean([S.gaussian_field(cosmo, L, M, generator(3, "initial_conditions", r)).var(dtype=np.float64)
                   for r in range(4)])
    assert var == pytest.approx(expected, rel=0.05)


# --------------------------------------------------------------------------- LPT
def plane_waves(M, L, A, B, n=2):
    """delta = A cos(k x) + B cos(k y), k = 2 pi n / L, on the nodes (i, j, k) L/M."""
    q = np.arange(M) * L / M
    X, Y, Z = np.meshgrid(q, q, q, indexing="ij")
    k = 2 * np.pi * n / L
    return (A * np.cos(k * X) + B * np.cos(k * Y)).astype(np.float32), (X, Y, Z), k


def test_zeldovich_plane_wave():
    """1D: Psi_x = -(A/k) sin(k x) exactly and the 2LPT term vanishes (Zel'dovich is exact)."""
    M, L, A = 32, 100.0, 0.3
    d, (X, _, _), k = plane_waves(M, L, A, 0.0)
    psi1, psi2 = lpt.lpt_displacements(d, L, Om0=0.3, order=2)
    np.testing.assert_allclose(psi1[..., 0], -(A / k) * np.sin(k * X), atol=1e-5 * A / k)
    np.testing.assert_allclose(psi1[..., 1:], 0, atol=1e-5 * A / k)
    assert np.max(np.abs(psi2)) < 1e-5 * A / k


def test_2lpt_two_plane_waves_analytic():
    """delta = A cos kx + B cos ky: source = AB cos kx cos ky, phi2 = -AB cos kx cos ky / (2k^2),
    Psi2 = D2 grad phi2 = D2 AB/(2k) (sin kx cos ky, cos kx sin ky, 0), D2 = -3/7 Om^(-1/143)."""
    M, L, A, B, Om = 32, 100.0, 0.2, -0.15, 0.3
    d, (X, Y, _), k = plane_waves(M, L, A, B)
    psi1, psi2 = lpt.lpt_displacements(d, L, Om0=Om, order=2)
    D2 = -3.0 / 7.0 * Om ** (-1.0 / 143.0)
    amp = D2 * A * B / (2 * k)
    np.testing.assert_allclose(psi2[..., 0], amp * np.sin(k * X) * np.cos(k * Y), atol=1e-4 * abs(amp))
    np.testing.assert_allclose(psi2[..., 1], amp * np.cos(k * X) * np.sin(k * Y), atol=1e-4 * abs(amp))
    np.testing.assert_allclose(psi2[..., 2], 0, atol=1e-4 * abs(amp))
    np.testing.assert_allclose(psi1[..., 1], -(B / k) * np.sin(k * Y), atol=1e-5)
    _, none = lpt.lpt_displacements(d, L, Om0=Om, order=1)
    assert none is None


def test_particles_from_ics_positions_and_velocities(cosmo):
    """x = q + Psi1 + Psi2 (periodic), v = H0 (f1 Psi1 + f2 Psi2), f2 = 2 Om^(6/11)."""
    M, L, A, B = 16, 80.0, 0.2, 0.25
    d, (X, Y, Z), k = plane_waves(M, L, A, B, n=1)
    psi1, psi2 = lpt.lpt_displacements(d, L, Om0=cosmo.Om0, order=2)
    pos, vel = S.particles_from_ics(d, L, cosmo, order=2)
    q = np.stack([X, Y, Z], -1).reshape(-1, 3)
    disp = pos - q
    disp -= L * np.round(disp / L)
    np.testing.assert_allclose(disp, (psi1 + psi2).reshape(-1, 3), atol=1e-4)
    f2 = 2 * cosmo.Om0 ** (6 / 11)
    np.testing.assert_allclose(vel, (H0 * (cosmo.growth_rate * psi1 + f2 * psi2)).reshape(-1, 3), rtol=1e-5, atol=1e-3)
    assert pos.min() >= 0 and pos.max() < L


def test_2lpt_correction_is_second_order(cosmo):
    """For small amplitude the 2LPT displacement is small and scales as amplitude squared."""
    L, M = 320.0, 32
    d = S.gaussian_field(cosmo, L, M, generator(5, "initial_conditions", 0))
    ratios = []
    for eps in (0.05, 0.1):
        p1, p2 = lpt.lpt_displacements(d * eps, L, cosmo.Om0)
        ratios.append(np.sqrt(np.mean(p2 ** 2) / np.mean(p1 ** 2)))
    assert ratios[0] < 0.02
    assert ratios[1] / ratios[0] == pytest.approx(2.0, rel=1e-3)


def test_velocity_divergence_matches_linear_theory_at_large_scales():
    """k < 0.05 h/Mpc: div v of the 2LPT particles (mass-weighted on the mesh) ~ -f H0 delta_lin."""
    def measure(overrides):
        p = load_profile("ci", {"simulation.parent_size": 640.0, "simulation.parent_mesh": 64,
                                "box.smoothing": 1.25, **overrides})
        c = from_profile(p)
        b = S.make_parent_box(p, 1)
        v = b.fields(p).velocity
        KX, KY, KZ, K = kgrid(b.mesh, b.size)
        nyq = np.abs(np.fft.fftfreq(b.mesh, 1 / b.mesh)) == b.mesh // 2
        k1 = np.where(nyq, 0.0, 2 * np.pi * np.fft.fftfreq(b.mesh, b.size / b.mesh))
        div = 1j * (k1[:, None, None] * np.fft.fftn(v[0].astype(float))
                    + k1[None, :, None] * np.fft.fftn(v[1].astype(float))
                    + k1[None, None, :] * np.fft.fftn(v[2].astype(float)))
        lin = -c.growth_rate * H0 * np.fft.fftn(b.delta_lin.astype(float))
        sel = (K > 0) & (K < 0.05)
        a, e = div[sel], lin[sel]
        r = np.vdot(e, a).real / np.sqrt(np.vdot(a, a).real * np.vdot(e, e).real)
        slope = np.vdot(e, a).real / np.vdot(e, e).real
        return sel.sum(), r, slope

    n, r, slope = measure({})
    assert n > 300
    assert r > 0.95
    assert 0.85 < slope < 1.05  # nonlinear evolution damps div v slightly at k ~ 0.05
    _, r, slope = measure({"cosmology.sigma8": 0.1})  # nearly linear: exact amplitude
    assert r > 0.999
    assert slope == pytest.approx(1.0, abs=0.03)


# --------------------------------------------------------------------------- CIC
def test_cic_matches_per_particle_loop():
    rng = np.random.default_rng(0)
    L, M, n = 10.0, 8, 25
    pos = rng.uniform(-L, 2 * L, (n, 3)).astype(np.float32)  # outside [0, L) too: periodic
    w = rng.normal(size=n)
    out = mass_assignment.cic_deposit(pos, L, M, weights=w, chunk=7)
    ref = np.zeros((M, M, M))
    h = L / M
    for p, wi in zip(pos.astype(float), w):
        for node in itertools.product(range(M), repeat=3):
            dist = p / h - np.array(node)
            dist -= M * np.round(dist / M)
            wt = np.prod(np.clip(1 - np.abs(dist), 0, None))
            ref[node] += wi * wt
    np.testing.assert_allclose(out, ref, atol=1e-10)
    assert out.sum() == pytest.approx(w.sum())


@pytest.mark.parametrize("offset", [0.0, 0.5])
def test_uniform_lattice_deposits_zero_contrast(offset):
    L, M = 320.0, 16
    q = (np.arange(M) + offset) * L / M
    pos = np.stack(np.meshgrid(q, q, q, indexing="ij"), -1).reshape(-1, 3).astype(np.float32)
    delta = density_contrast(mass_assignment.cic_deposit(pos, L, M))
    assert np.array_equal(delta, np.zeros_like(delta))


def test_mean_of_one_plus_delta_is_one(box):
    m = mass_assignment.cic_deposit(box.positions, box.size, box.mesh)
    assert m.sum() == pytest.approx(len(box.positions), rel=1e-10)
    delta = density_contrast(m)
    assert np.mean(1.0 + delta.astype(np.float64)) == pytest.approx(1.0, abs=1e-6)
    assert delta.min() >= -1.0


# --------------------------------------------------------------------------- parent box
def test_parent_box_layout(box, prof):
    M = prof.simulation.parent_mesh
    assert box.positions.shape == (M ** 3, 3) and box.positions.dtype == np.float32
    assert box.velocities.shape == (M ** 3, 3) and box.velocities.dtype == np.float32
    assert box.delta_lin.shape == (M,) * 3 and box.delta_lin.dtype == np.float32
    assert box.positions.min() >= 0 and box.positions.max() < box.size
    assert box.seed == prof.seed and box.box_index == 0
    # rms 3D velocity ~ f H0 sigma_Psi: a few hundred km/s
    assert 100 < np.sqrt(np.mean(np.sum(box.velocities.astype(float) ** 2, 1))) < 1000


def test_determinism(prof, box):
    again = S.make_parent_box(prof, 0)
    assert again.positions.tobytes() == box.positions.tobytes()
    assert again.velocities.tobytes() == box.velocities.tobytes()
    assert again.delta_lin.tobytes() == box.delta_lin.tobytes()
    other = S.make_parent_box(prof, 1)
    assert not np.allclose(other.delta_lin, box.delta_lin)
    assert abs(np.corrcoef(other.delta_lin.ravel(), box.delta_lin.ravel())[0, 1]) < 0.1
    a = S.observer_cubes(prof, box, [0, 1, 2])
    b = S.observer_cubes(prof, again, [0, 1, 2])
    for x, y in zip(a, b):
        assert np.array_equal(x.observer, y.observer) and np.array_equal(x.rotation, y.rotation)
        assert x.positions.tobytes() == y.positions.tobytes()
    assert not np.allclose(a[0].observer, a[1].observer)


def test_same_bytes_whatever_the_fft_threads(prof, box):
    one = S.make_parent_box(prof, 0, workers=1)
    assert one.positions.tobytes() == box.positions.tobytes()
    assert one.velocities.tobytes() == box.velocities.tobytes()


def test_zeldovich_option(prof):
    p1 = load_profile("ci", {"simulation.parent_mesh": 32, "simulation.lpt_order": 1})
    z = S.make_parent_box(p1, 0)
    two = S.make_parent_box(prof, 0)
    assert np.array_equal(z.delta_lin, two.delta_lin)  # same ICs
    d = z.positions - two.positions
    d -= z.size * np.round(d / z.size)
    rms2 = np.sqrt(np.mean(d.astype(float) ** 2))
    q = np.arange(32) * z.size / 32
    lattice = np.stack(np.meshgrid(q, q, q, indexing="ij"), -1).reshape(-1, 3)
    d1 = z.positions - lattice
    d1 -= z.size * np.round(d1 / z.size)
    rms1 = np.sqrt(np.mean(d1.astype(float) ** 2))
    assert 0 < rms2 < 0.3 * rms1  # the 2LPT correction is a fraction of the displacement


# --------------------------------------------------------------------------- rotations and cubes
def test_24_rotations_proper_distinct_closed():
    R = symmetries.cube_rotations(24).astype(int)
    assert R.shape == (24, 3, 3) and symmetries.cube_rotations(24).dtype == np.int8
    assert len({r.tobytes() for r in R}) == 24
    for r in R:
        assert round(np.linalg.det(r)) == 1
        assert np.array_equal(r @ r.T, np.eye(3, dtype=int))
    keys = {r.tobytes() for r in R}
    for a in R:
        for b in R:
            assert (a @ b).tobytes() in keys
    assert np.array_equal(R[0], np.eye(3, dtype=int))
    R48 = symmetries.cube_rotations(48).astype(int)
    assert len({r.tobytes() for r in R48}) == 48
    assert sorted(round(np.linalg.det(r)) for r in R48) == [-1] * 24 + [1] * 24
    assert np.array_equal(symmetries.cube_rotations(1)[0], np.eye(3))


def brute_cube(box, obs, R, s):
    """Independent cut: all particles, float64 minimum image, explicit matrix product."""
    L = box.size
    d = box.positions.astype(np.float64) - obs
    d = (d + L / 2) % L - L / 2
    x = d @ np.asarray(R, float).T
    x = (x + L / 2) % L - L / 2
    keep = np.all((x >= -s / 2) & (x < s / 2), axis=1)
    return x[keep], box.velocities[keep].astype(np.float64) @ np.asarray(R, float).T


def sort_rows(a):
    return a[np.lexsort(a.T[::-1])]


@pytest.mark.parametrize("ridx", [0, 7, 19])
def test_cut_cube_matches_brute_force(box, ridx):
    R = symmetries.cube_rotations()[ridx]
    obs = np.array([3.0, 311.0, 150.0])  # straddles the periodic boundary
    cube = S.cut_cube(box, obs, R, 160.0)
    x, v = brute_cube(box, obs, R, 160.0)
    assert len(cube.positions) == len(x) > 0
    order = np.lexsort(cube.positions.T[::-1])
    ref = np.lexsort(x.T[::-1])
    np.testing.assert_allclose(cube.positions[order], x[ref], atol=1e-4)
    np.testing.assert_allclose(cube.velocities[order], v[ref], rtol=1e-6, atol=1e-3)
    assert cube.positions.min() >= -80 and cube.positions.max() < 80
    assert cube.mean_density == pytest.approx(32 ** 3 / 320.0 ** 3)
    # about mean density x volume particles
    assert len(x) / (box.mean_density * 160.0 ** 3) == pytest.approx(1, abs=0.3)


def test_cut_across_boundary_equals_rolled_box(box):
    """Shift every particle by half the box (an integer number of cells): the cube around
    observer o in the shifted box equals the cube around o - shift in the original one."""
    L = box.size
    shift = np.array([L / 2, L / 2, 0.0])
    rolled = S.ParentBox(size=L, mesh=box.mesh, positions=((box.positions + shift) % L).astype(np.float32),
                         velocities=box.velocities, delta_lin=np.roll(box.delta_lin, (box.mesh // 2,) * 2, (0, 1)),
                         box_index=box.box_index, seed=box.seed)
    # the CIC mesh of the shifted particles is the rolled mesh
    np.testing.assert_allclose(mass_assignment.cic_deposit(rolled.positions, L, box.mesh),
                               np.roll(mass_assignment.cic_deposit(box.positions, L, box.mesh), (box.mesh // 2,) * 2, (0, 1)),
                               atol=1e-3)
    obs = np.array([5.0, 310.0, 20.0])  # the cube wraps around in x, y and z
    R = symmetries.cube_rotations()[11]
    a = S.cut_cube(box, obs, R, 160.0)
    b = S.cut_cube(rolled, obs + shift, R, 160.0)
    assert len(a.positions) == len(b.positions)
    np.testing.assert_allclose(sort_rows(a.positions), sort_rows(b.positions), atol=1e-3)


def test_observer_placements_are_uniform_reproducible_and_independent(prof, box):
    """Observers uniform in the parent box and rotations uniform among the 24 (tested on 2400
    placements: a KS test per axis, a χ² test of the rotations), the same for the same
    (box, index), unrelated between boxes; the cubes are cut at those placements."""
    from scipy import stats

    L, n = prof.simulation.parent_size, 2400
    placed = [S.observer_placement(prof, 0, i) for i in range(n)]
    obs = np.array([o for o, _ in placed])
    assert obs.min() >= 0 and obs.max() < L
    for a in range(3):
        assert stats.kstest(obs[:, a] / L, "uniform").pvalue > 1e-3, a
    rots = symmetries.cube_rotations(24).reshape(24, -1).astype(int)
    idx = np.array([np.flatnonzero((rots == R.reshape(-1)).all(1))[0] for _, R in placed])
    assert stats.chisquare(np.bincount(idx, minlength=24)).pvalue > 1e-3
    again = S.observer_placement(prof, 0, 7)
    assert np.array_equal(again[0], obs[7]) and np.array_equal(again[1], placed[7][1])
    other = np.array([S.observer_placement(prof, 1, i)[0] for i in range(n)])
    assert abs(stats.pearsonr(other[:, 0], obs[:, 0])[0]) < 0.1
    for i, c in enumerate(S.observer_cubes(prof, box, range(3))):
        o, R = placed[i]
        assert np.array_equal(c.observer, o) and np.array_equal(c.rotation, R)
        assert c.rotation.dtype == np.int8 and c.size == prof.box.size and c.index == i
        assert c.box_index == box.box_index and c.positions.dtype == np.float32
        assert c.velocities.shape == c.positions.shape


def test_bad_input_raises_zoa_error(box):
    with pytest.raises(ZoaError, match="positions"):
        mass_assignment.cic_deposit(np.zeros((4, 2)), 1.0, 4)
    with pytest.raises(ZoaError, match="rotation"):
        S.cut_cube(box, [0, 0, 0], np.eye(3) * 2, 100.0)
    with pytest.raises(ZoaError, match="cube size"):
        S.cut_cube(box, [0, 0, 0], np.eye(3), 1000.0)
    with pytest.raises(ZoaError, match="n must be"):
        symmetries.cube_rotations(5)


# --------------------------------------------------------------------------- benchmark
def test_benchmark_numbers_add_up(prof):
    """The benchmark's totals are the sums of its parts, its rates the inverse of its times,
    and peak memory never decreases."""
    out = S.benchmark(prof, n_cubes=2)
    json.loads(json.dumps(out))
    assert out["parent_mesh"] == 32 and out["particles"] == 32 ** 3 and out["n_cubes_timed"] == 2
    parts = out["seconds_ics_lpt"] + out["seconds_parent_fields"] + out["seconds_cell_index"]
    assert out["seconds_per_parent_box"] == pytest.approx(parts, abs=2e-3)
    cube = out["seconds_per_cube_cut"] + out["seconds_per_cube_targets"]
    assert out["seconds_per_observer_cube"] == pytest.approx(cube, abs=2e-5)
    assert out["observer_cubes_per_second"] == pytest.approx(1 / out["seconds_per_observer_cube"], rel=0.02)
    assert out["rss_before_mib"] <= out["peak_rss_after_box_mib"] <= out["peak_rss_after_fields_mib"]


def test_bench_cli_prints_json(capsys):
    import os

    from zoa_lib.cli import main

    assert main(["bench", "sim", "--profile", "ci", "-p", "simulation.parent_mesh=32"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["benchmark"] == "sim" and out["profile"] == "ci" and out["parent_mesh"] == 32
    assert out["machine"]["cpu_count"] == os.cpu_count()
    assert out["peak_rss_mib"] >= out["peak_rss_after_fields_mib"]  # the process's peak, read later
