"""Field operators and cube targets against analytic solutions and independent FFTs.

The library uses scipy.fft.rfftn; these tests use analytic plane waves and Gaussians,
numpy.fft.fftn with their own wave vectors, finite differences, and explicit index
arithmetic on the parent mesh.
"""
import numpy as np
import pytest
from parent_fixtures import box, cosmo, prof  # noqa: F401  (pytest fixtures)

from zoa_lib.config import load_profile
from zoa_lib.errors import ZoaError
from zoa_lib.universe import fields as F
from zoa_lib.universe import mass_assignment, symmetries
from zoa_lib.universe import simulation as S
from zoa_lib.universe.cosmology import H0, from_profile
from zoa_lib.universe.rng import generator


def grid(M, L):
    x = np.arange(M) * L / M
    return np.meshgrid(x, x, x, indexing="ij")


def kvec(M, L, nyquist=True):
    k = 2 * np.pi * np.fft.fftfreq(M, L / M)
    if not nyquist:
        k[np.abs(np.fft.fftfreq(M, 1 / M)) == M // 2] = 0
    return k[:, None, None], k[None, :, None], k[None, None, :]


def random_field(M, L, seed=0, sigma_cells=1.5):
    """A smooth-ish random float64 field (numpy-only construction)."""
    rng = np.random.default_rng(seed)
    w = rng.normal(size=(M,) * 3)
    kx, ky, kz = kvec(M, L)
    h = L / M
    return np.fft.ifftn(np.fft.fftn(w) * np.exp(-0.5 * (kx ** 2 + ky ** 2 + kz ** 2) * (sigma_cells * h) ** 2)).real


# --------------------------------------------------------------------------- Poisson
@pytest.mark.parametrize("dtype, tol", [(np.float64, 1e-10), (np.float32, 2e-6)])
def test_poisson_plane_wave(cosmo, dtype, tol):
    M, L, A = 32, 200.0, 0.7
    X, Y, Z = grid(M, L)
    k = 2 * np.pi / L * np.array([1, 2, 3])
    delta = (A * np.cos(k[0] * X + k[1] * Y + k[2] * Z)).astype(dtype)
    phi = F.potential_from_delta(delta, L, cosmo)
    assert phi.dtype == dtype
    expected = -1.5 * cosmo.Om0 * H0 ** 2 * delta.astype(float) / (k @ k)
    np.testing.assert_allclose(phi, expected, atol=tol * np.abs(expected).max())


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_poisson_spectral_laplacian(cosmo, dtype):
    """Laplacian of phi (numpy fftn, -k^2) equals (3/2) Om H0^2 (delta - mean) to 1e-4 relative."""
    M, L = 32, 160.0
    delta = (random_field(M, L, 1) + 0.3).astype(dtype)
    phi = F.potential_from_delta(delta, L, cosmo)
    kx, ky, kz = kvec(M, L)
    lap = np.fft.ifftn(-(kx ** 2 + ky ** 2 + kz ** 2) * np.fft.fftn(phi.astype(np.float64))).real
    rhs = 1.5 * cosmo.Om0 * H0 ** 2 * (delta.astype(np.float64) - delta.mean(dtype=np.float64))
    err = np.linalg.norm(lap - rhs) / np.linalg.norm(rhs)
    assert err < (1e-10 if dtype == np.float64 else 1e-4)
    assert abs(phi.mean(dtype=np.float64)) < 1e-6 * np.abs(phi).max()  # k = 0 mode zero


def test_poisson_finite_differences(cosmo):
    """7-point finite-difference Laplacian of phi of a smooth field ~ (3/2) Om H0^2 delta."""
    M, L = 64, 256.0
    delta = random_field(M, L, 2, sigma_cells=4.0)
    delta -= delta.mean()
    phi = F.potential_from_delta(delta, L, cosmo)
    h = L / M
    lap = sum(np.roll(phi, s, a) for a in range(3) for s in (1, -1)) - 6 * phi
    lap /= h ** 2
    rhs = cosmo.poisson_factor * delta
    assert np.linalg.norm(lap - rhs) / np.linalg.norm(rhs) < 0.02


# --------------------------------------------------------------------------- linear velocity
def test_linear_velocity_plane_wave(cosmo):
    """delta = A cos(k.x) -> v = -f H0 A k / k^2 sin(k.x)."""
    M, L, A = 32, 200.0, 0.5
    X, Y, Z = grid(M, L)
    k = 2 * np.pi / L * np.array([2, -1, 1])
    ph = k[0] * X + k[1] * Y + k[2] * Z
    v = F.velocity_from_delta_linear(A * np.cos(ph), L, cosmo)
    expected = -cosmo.growth_rate * H0 * A * (k / (k @ k)) * np.sin(ph)[..., None]
    np.testing.assert_allclose(v, expected, atol=1e-10 * np.abs(expected).max())


def test_linear_velocity_divergence_and_curl(cosmo):
    M, L = 32, 160.0
    delta = random_field(M, L, 3).astype(np.float32)
    v = F.velocity_from_delta_linear(delta, L, cosmo)
    assert v.shape == (M, M, M, 3) and v.dtype == np.float32
    k = kvec(M, L, nyquist=False)
    vk = [np.fft.fftn(v[..., a].astype(float)) for a in range(3)]
    div = np.fft.ifftn(1j * sum(k[a] * vk[a] for a in range(3))).real
    # delta without its mean and Nyquist modes, where first derivatives vanish
    dk = np.fft.fftn(delta.astype(float))
    nyq = np.abs(np.fft.fftfreq(M, 1 / M)) == M // 2
    mask = ~(nyq[:, None, None] | nyq[None, :, None] | nyq[None, None, :])
    mask[0, 0, 0] = False
    ref = np.fft.ifftn(dk * mask).real * (-cosmo.growth_rate * H0)
    assert np.linalg.norm(div - ref) / np.linalg.norm(ref) < 1e-5
    curl_z = np.fft.ifftn(1j * (k[0] * vk[1] - k[1] * vk[0])).real
    assert np.linalg.norm(curl_z) < 1e-5 * np.linalg.norm(ref / k[0].max())


# --------------------------------------------------------------------------- smoothing and density
def periodic_gaussian(M, L, s, centre):
    X, Y, Z = grid(M, L)
    r2 = sum(((c - x0 + L / 2) % L - L / 2) ** 2 for c, x0 in zip((X, Y, Z), centre))
    return np.exp(-r2 / (2 * s * s)) / (2 * np.pi * s * s) ** 1.5


def test_gaussian_smooth_analytic():
    """A Gaussian of width s1 smoothed with sigma s2 is the Gaussian of width sqrt(s1^2 + s2^2)."""
    M, L, s1, s2 = 64, 100.0, 5.0, 3.0
    c = (40.0, 55.0, 90.0)
    out = F.gaussian_smooth(periodic_gaussian(M, L, s1, c), L, s2)
    ref = periodic_gaussian(M, L, np.hypot(s1, s2), c)
    np.testing.assert_allclose(out, ref, atol=1e-6 * ref.max())
    vec = F.gaussian_smooth(np.stack([periodic_gaussian(M, L, s1, c)] * 3, -1).astype(np.float32), L, s2)
    assert vec.shape == (M, M, M, 3) and vec.dtype == np.float32
    np.testing.assert_allclose(vec[..., 2], ref, atol=1e-5 * ref.max())
    same = F.gaussian_smooth(ref, L, 0.0)
    np.testing.assert_array_equal(same, ref)


def test_density_contrast():
    rng = np.random.default_rng(4)
    m = rng.poisson(3.0, size=(16, 16, 16)).astype(float)
    d = F.density_contrast(m)
    assert d.dtype == np.float32
    assert np.mean(1 + d.astype(float)) == pytest.approx(1.0, abs=1e-7)
    np.testing.assert_allclose(d, m / m.mean() - 1, atol=1e-6)
    with pytest.raises(ZoaError, match="mean mass"):
        F.density_contrast(np.zeros((4, 4, 4)))
    with pytest.raises(ZoaError, match="cubic"):
        F.potential_from_delta(np.zeros((4, 4)), 1.0, None)


# --------------------------------------------------------------------------- transforms
def test_transforms_invertible(prof):
    rng = np.random.default_rng(5)
    delta = np.exp(rng.normal(0, 1, 1000)).astype(np.float32) - 1  # 1 + delta > 0, lognormal
    delta = np.clip(delta, F.DELTA_FLOOR - 1 + 1e-4, None)
    t = F.delta_to_target(delta)
    np.testing.assert_allclose(F.target_to_delta(t), delta, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(t, np.log1p(delta.astype(float)), atol=1e-6)
    assert F.delta_to_target(np.array([-1.0]))[0] == pytest.approx(np.log(F.DELTA_FLOOR))
    np.testing.assert_array_equal(F.delta_to_target(delta, "identity"), delta)
    np.testing.assert_array_equal(F.target_to_delta(delta, "identity"), delta)
    phi = rng.normal(0, 3e5, 100).astype(np.float32)
    s = F.phi_target_scale(prof)
    np.testing.assert_allclose(F.target_to_phi(F.phi_to_target(phi, s), s), phi, rtol=1e-6)
    with pytest.raises(ZoaError, match="kind"):
        F.delta_to_target(delta, "sqrt")
    with pytest.raises(ZoaError, match="scale"):
        F.phi_to_target(phi, 0.0)
    ident = load_profile("ci", {"training.phi_transform": "identity"})
    assert F.phi_target_scale(ident) == 1.0


def test_phi_scale_is_linear_rms(cosmo):
    """sigma_phi from P(k) matches the rms potential of Gaussian realizations (8 boxes)."""
    L, M, sig = 320.0, 32, 1.25
    rms = []
    for r in range(8):
        d = S.gaussian_field(cosmo, L, M, generator(11, "initial_conditions", r))
        phi = F.potential_from_delta(F.gaussian_smooth(d, L, sig), L, cosmo)
        rms.append(np.mean(phi.astype(float) ** 2))
    assert np.sqrt(np.mean(rms)) == pytest.approx(F.phi_sigma_linear(cosmo, L, M, sig), rel=0.25)


# --------------------------------------------------------------------------- cube targets
def test_cube_targets_layout_and_cache(prof, box):
    cube = S.observer_cubes(prof, box, [0])[0]
    t = F.cube_targets(prof, box, cube)
    N = prof.box.grid
    assert t.delta.shape == (N,) * 3 and t.phi.shape == (N,) * 3 and t.velocity.shape == (N,) * 3 + (3,)
    for a in (t.delta, t.phi, t.velocity):
        assert a.dtype == np.float32 and np.all(np.isfinite(a))
    np.testing.assert_allclose(t.density, 1 + t.delta)
    cached = box._cache["fields"]
    F.cube_targets(prof, box, S.observer_cubes(prof, box, [1])[0])
    assert box._cache["fields"] is cached
    pf = box.fields(prof)
    assert np.mean(1 + pf.delta.astype(float)) == pytest.approx(1.0, abs=1e-6)


@pytest.mark.parametrize("ridx", [0, 5, 17])
def test_node_aligned_cube_equals_parent_slice(prof, box, ridx):
    """Observer on a node and voxels on nodes: the cube is the (rotated, wrapped) parent mesh."""
    pf = box.fields(prof)
    M, L, N, s = box.mesh, box.size, prof.box.grid, prof.box.size
    h = L / M
    assert s / N == h  # ci with parent_mesh 32: 10 Mpc/h voxels and cells
    obs = np.array([5.0, 305.0, 155.0])  # voxel centres land on nodes; the cube wraps in y
    R = symmetries.cube_rotations()[ridx].astype(int)
    cube = S.ObserverCube(size=s, observer=obs, rotation=R.astype(np.int8), positions=np.zeros((0, 3), np.float32),
                          velocities=np.zeros((0, 3), np.float32), mean_density=box.mean_density)
    t = F.cube_targets(prof, box, cube)
    x = -s / 2 + (np.arange(N) + 0.5) * s / N
    for ijk in [(0, 0, 0), (3, 9, 15), (15, 15, 15), (8, 0, 4), (11, 2, 13)]:
        xsg = np.array([x[i] for i in ijk])
        node = tuple(int(round(v)) % M for v in (obs + R.T @ xsg) / h)
        assert t.delta[ijk] == pytest.approx(pf.delta[node], abs=1e-5)
        assert t.phi[ijk] == pytest.approx(pf.phi[node], rel=1e-5)
        np.testing.assert_allclose(t.velocity[ijk], R @ pf.velocity[(slice(None),) + node], rtol=1e-5, atol=1e-3)


def test_rotated_cube_velocities_rotate(prof, box):
    """Same observer, rotation R vs identity: fields at the same parent point satisfy v' = R v."""
    rng = np.random.default_rng(6)
    obs = rng.uniform(0, box.size, 3)
    N, s = prof.box.grid, prof.box.size
    x = -s / 2 + (np.arange(N) + 0.5) * s / N
    t0 = F.cube_targets(prof, box, S.cut_cube(box, obs, np.eye(3, dtype=np.int8), s))
    for R in symmetries.cube_rotations()[[3, 10, 22]]:
        cube = S.cut_cube(box, obs, R, s)
        tr = F.cube_targets(prof, box, cube)
        Ri = R.astype(int)
        for ijk in [(0, 1, 2), (5, 10, 15), (15, 0, 7), (9, 9, 9)]:
            xsg = np.array([x[i] for i in ijk])
            x0 = Ri.T @ xsg  # the same parent point in the identity cube
            ijk0 = tuple(int(np.argmin(np.abs(x - c))) for c in x0)
            np.testing.assert_allclose(tr.velocity[ijk], Ri @ t0.velocity[ijk0], rtol=1e-5, atol=1e-3)
            assert tr.delta[ijk] == pytest.approx(t0.delta[ijk0], abs=1e-6)
            assert tr.phi[ijk] == pytest.approx(t0.phi[ijk0], rel=1e-6)
        ident = S.cut_cube(box, obs, np.eye(3, dtype=np.int8), s)
        np.testing.assert_allclose(np.sort(cube.velocities @ Ri, 0), np.sort(ident.velocities, 0), atol=1e-3)


def test_cube_targets_across_boundary_equal_rolled_box(prof, box):
    L, M = box.size, box.mesh
    shift = np.array([L / 2, L / 4, 3 * L / 4])
    rolled = S.ParentBox(size=L, mesh=M, positions=((box.positions + shift) % L).astype(np.float32),
                         velocities=box.velocities, delta_lin=box.delta_lin, box_index=0, seed=box.seed)
    obs = np.array([2.5, 317.0, 161.3])
    R = symmetries.cube_rotations()[13]
    a = F.cube_targets(prof, box, S.cut_cube(box, obs, R, prof.box.size))
    b = F.cube_targets(prof, rolled, S.cut_cube(rolled, obs + shift, R, prof.box.size))
    np.testing.assert_allclose(b.delta, a.delta, atol=1e-4)
    np.testing.assert_allclose(b.phi, a.phi, atol=1e-4 * np.abs(a.phi).max())
    np.testing.assert_allclose(b.velocity, a.velocity, atol=0.05)
    shifts = tuple(int(round(v / (L / M))) for v in shift)
    np.testing.assert_allclose(rolled.fields(prof).delta, np.roll(box.fields(prof).delta, shifts, (0, 1, 2)), atol=1e-4)


def test_linear_velocity_option_is_minus_grad_phi(box):
    p = load_profile("ci", {"simulation.parent_mesh": 32, "simulation.velocity": "linear"})
    c = from_profile(p)
    pf = F.compute_parent_fields(box, c, p.box.smoothing, "linear")
    k = kvec(box.mesh, box.size, nyquist=False)
    phik = np.fft.fftn(pf.phi.astype(float))
    for a in range(3):
        grad = np.fft.ifftn(1j * k[a] * phik).real
        ref = -c.velocity_from_potential_factor * grad
        assert np.linalg.norm(pf.velocity[a] - ref) / np.linalg.norm(ref) < 1e-4


def test_particle_velocity_is_mass_weighted(cosmo):
    """Uniform lattice moving with v0: the mesh velocity is v0 (to the 1e-3 fill weight)."""
    L, M = 160.0, 16
    q = np.arange(M) * L / M
    pos = np.stack(np.meshgrid(q, q, q, indexing="ij"), -1).reshape(-1, 3).astype(np.float32)
    v0 = np.array([300.0, -120.0, 45.0], np.float32)
    b = S.ParentBox(size=L, mesh=M, positions=pos, velocities=np.tile(v0, (len(pos), 1)),
                    delta_lin=np.zeros((M,) * 3, np.float32), box_index=0, seed=0)
    pf = F.compute_parent_fields(b, cosmo, 1.25, "particles")
    for a in range(3):
        np.testing.assert_allclose(pf.velocity[a], v0[a] / (1 + F.VELOCITY_MASS_FLOOR), rtol=1e-5, atol=1e-3)
    # mass weighting: a heavy stream at +v and a light one at -v in the same cells
    pos2 = np.concatenate([pos, pos, pos, pos])
    vel2 = np.concatenate([np.tile(v0, (3 * len(pos), 1)), np.tile(-v0, (len(pos), 1))])
    b2 = S.ParentBox(size=L, mesh=M, positions=pos2, velocities=vel2.astype(np.float32),
                     delta_lin=np.zeros((M,) * 3, np.float32), box_index=0, seed=0)
    pf2 = F.compute_parent_fields(b2, cosmo, 1.25, "particles")
    np.testing.assert_allclose(pf2.velocity[0], 0.5 * v0[0], rtol=2e-3)


def test_empty_cells_get_bounded_velocities(cosmo):
    """Particles only in half of the box: no NaN, and speeds bounded by the particles' and
    linear theory's."""
    L, M = 160.0, 16
    rng = np.random.default_rng(8)
    pos = rng.uniform(0, L, (4000, 3)).astype(np.float32)
    pos[:, 0] *= 0.5
    vel = rng.normal(0, 200, (4000, 3)).astype(np.float32)
    b = S.ParentBox(size=L, mesh=M, positions=pos, velocities=vel, delta_lin=np.zeros((M,) * 3, np.float32),
                    box_index=0, seed=0)
    pf = F.compute_parent_fields(b, cosmo, 1.25, "particles")
    lin = F.compute_parent_fields(b, cosmo, 1.25, "linear")
    assert np.all(np.isfinite(pf.velocity))
    bound = max(np.abs(vel).max(), np.abs(lin.velocity).max())
    assert np.abs(pf.velocity).max() <= bound * 1.0001
    empty = mass_assignment.cic_deposit(pos, L, M) == 0
    assert empty.any()
    far = empty & np.roll(empty, 1, 0) & np.roll(empty, -1, 0)
    np.testing.assert_allclose(pf.velocity[:, far], lin.velocity[:, far], rtol=1e-4, atol=1e-2)


@pytest.mark.parametrize("ridx, grid", [(0, 16), (9, 16), (20, 12)])
def test_cube_sampling_equals_map_coordinates(prof, box, ridx, grid):
    """Targets at voxel centres x equal scipy's trilinear map_coordinates of the parent fields
    at o + R^T x (periodic), with vectors rotated by R; also for voxels not aligned with nodes."""
    from scipy import ndimage

    pf = box.fields(prof)
    rng = np.random.default_rng(ridx)
    obs = rng.uniform(0, box.size, 3)
    R = symmetries.cube_rotations()[ridx].astype(float)
    d, p, v = F.sample_parent(pf, obs, R.astype(np.int8), 150.0, grid)
    x = -75.0 + (np.arange(grid) + 0.5) * 150.0 / grid
    X = np.stack(np.meshgrid(x, x, x, indexing="ij"), -1).reshape(-1, 3)
    coords = ((obs + X @ R) / (box.size / box.mesh)).T  # X @ R = rows of R^T x

    def mc(f):
        return ndimage.map_coordinates(f.astype(float), coords, order=1, mode="grid-wrap").reshape((grid,) * 3)

    np.testing.assert_allclose(d, mc(pf.delta), atol=1e-5)
    np.testing.assert_allclose(p, mc(pf.phi), rtol=1e-5, atol=1e-5 * np.abs(pf.phi).max())
    vpar = np.stack([mc(pf.velocity[a]) for a in range(3)], -1)
    np.testing.assert_allclose(v, vpar @ R.T, atol=1e-2)
