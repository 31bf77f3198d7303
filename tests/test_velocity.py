"""Velocity math checked against analytic fields (σ_B(R) against CAMB: test_cosmology.py)."""
import numpy as np
import pytest

from zoa_lib.universe import velocity as vel
from zoa_lib.universe.cosmology import Cosmology


@pytest.fixture(scope="module")
def cosmo():
    return Cosmology()


def _grid(n, L):
    x = -L / 2 + (np.arange(n) + 0.5) * L / n
    return np.meshgrid(x, x, x, indexing="ij")


def test_voxel_centres_convention():
    from zoa_lib.universe.grid import voxel_centres

    x = voxel_centres(160.0, 4)
    np.testing.assert_allclose(x, [-60, -20, 20, 60])
    r = vel.radius_grid(4, 160.0)
    assert r[0, 0, 0] == pytest.approx(np.sqrt(3) * 60)


@pytest.mark.parametrize("subsample", [1, 4])
@pytest.mark.parametrize("R", [15.0, 40.0, 79.0])
def test_bulk_flow_of_uniform_field_is_that_vector(R, subsample):
    n, L = 16, 160.0
    u = np.array([310.0, -120.0, 45.0])
    v = np.broadcast_to(u, (n, n, n, 3)).copy()
    np.testing.assert_allclose(vel.bulk_flow(v, L, R, subsample), u, rtol=1e-12)
    prof = vel.bulk_flow_profile(v, L, [R, 2 * R])
    np.testing.assert_allclose(prof, np.stack([u, u]), rtol=1e-12)


def test_bulk_flow_weights_are_volume_fractions():
    n, L, R = 32, 160.0, 43.0
    w = vel.sphere_weights(n, L, R, subsample=6)
    assert w.sum() * (L / n) ** 3 == pytest.approx(4 / 3 * np.pi * R ** 3, rel=2e-3)
    assert w.min() >= 0 and w.max() <= 1


def test_bulk_flow_of_linear_shear_vanishes_and_picks_the_mean():
    """v = u + A x with A traceless-symmetric: the sphere average of A x is 0."""
    n, L = 24, 160.0
    X, Y, Z = _grid(n, L)
    A = np.array([[1.0, 0.5, 0.0], [0.5, -2.0, 0.3], [0.0, 0.3, 1.0]])
    u = np.array([-50.0, 20.0, 300.0])
    pos = np.stack([X, Y, Z], -1)
    v = u + pos @ A.T
    np.testing.assert_allclose(vel.bulk_flow(v, L, 50.0), u, atol=1e-9)


def test_spectral_gradient_of_plane_wave(cosmo):
    n, L = 16, 100.0
    X, Y, Z = _grid(n, L)
    k = 2 * np.pi / L * np.array([1.0, 2.0, -3.0])
    amp, alpha = 5.0e4, 0.3
    phase = k[0] * X + k[1] * Y + k[2] * Z + alpha
    phi = amp * np.cos(phase)
    fac = 2 * cosmo.growth_rate / (3 * 100.0 * cosmo.Om0)
    v_true = -fac * (-amp * np.sin(phase))[..., None] * k
    v = vel.velocity_from_potential(phi, L, cosmo, method="spectral")
    np.testing.assert_allclose(v, v_true, rtol=0, atol=1e-6 * np.abs(v_true).max())


def test_finite_difference_gradient_exact_for_quadratics(cosmo):
    n, L = 12, 60.0
    X, Y, Z = _grid(n, L)
    phi = 3.0 * X ** 2 - 2.0 * X * Y + 0.5 * Z ** 2 + 7.0 * Z
    grad = np.stack([6 * X - 2 * Y, -2 * X, Z + 7.0], -1)
    v = vel.velocity_from_potential(phi, L, cosmo, method="finite_difference")
    np.testing.assert_allclose(v, -cosmo.velocity_from_potential_factor * grad, rtol=1e-10, atol=1e-9)
    # ∇²φ = 6 + 1 = 7 everywhere → δ = 7 / (1.5 Ωm H0²)
    d = vel.density_from_potential(phi, L, cosmo, method="finite_difference")
    np.testing.assert_allclose(d, 7.0 / cosmo.poisson_factor, rtol=1e-9)


def test_linear_velocity_from_density_plane_wave(cosmo):
    """δ = A cos(k·x) → v = −f H0 A k/k² sin(k·x); continuity gives δ back."""
    n, L = 16, 200.0
    X, Y, Z = _grid(n, L)
    k = 2 * np.pi / L * np.array([2.0, 0.0, 1.0])
    phase = k[0] * X + k[1] * Y + k[2] * Z
    delta = 0.3 * np.cos(phase)
    v = vel.velocity_from_density(delta, L, cosmo)
    v_true = -cosmo.growth_rate * 100.0 * 0.3 * np.sin(phase)[..., None] * k / (k @ k)
    np.testing.assert_allclose(v, v_true, atol=1e-8 * np.abs(v_true).max())
    back = vel.density_from_velocity(v, L, cosmo, method="spectral")
    np.testing.assert_allclose(back, delta, atol=1e-10)
    phi = vel.potential_from_density(delta, L, cosmo)
    np.testing.assert_allclose(phi, -cosmo.poisson_factor * delta / (k @ k), atol=1e-6)


def test_padded_velocity_from_point_mass_points_inward(cosmo):
    """A compact overdensity at the cube centre: with zero padding, the infall is radial and
    symmetric on opposite faces (no pull from a periodic image)."""
    n, L = 16, 160.0
    X, Y, Z = _grid(n, L)
    delta = np.exp(-(X ** 2 + Y ** 2 + Z ** 2) / (2 * 10.0 ** 2))
    v = vel.velocity_from_density(delta, L, cosmo, pad=2)
    vr = vel.radial_velocity(v, L)
    r = vel.radius_grid(n, L)
    assert np.all(vr[r > 20] < 0)
    np.testing.assert_allclose(v[0, 8, 8, 0], -v[-1, 7, 7, 0], rtol=1e-10)
    # infall ∝ enclosed mass / r²: at two radii well outside the clump ~ (r1/r2)²
    i1, i2 = 11, 14  # x = 35, 65 Mpc/h along +x, next to the axis
    ratio = v[i2, 7, 7, 0] / v[i1, 7, 7, 0]
    r1, r2 = np.hypot(X[i1, 7, 7], np.sqrt(2) * 5), np.hypot(X[i2, 7, 7], np.sqrt(2) * 5)
    assert ratio == pytest.approx((r1 / r2) ** 2, rel=0.15)


def test_radial_velocity():
    n, L = 5, 50.0
    u = np.array([100.0, 0.0, 0.0])
    v = np.broadcast_to(u, (n, n, n, 3)).copy()
    vr = vel.radial_velocity(v, L)
    X, Y, Z = _grid(n, L)
    r = np.sqrt(X ** 2 + Y ** 2 + Z ** 2)
    expected = np.divide(100.0 * X, r, out=np.zeros_like(r), where=r > 0)
    np.testing.assert_allclose(vr, expected, atol=1e-12)
    assert vr[2, 2, 2] == 0.0  # the observer's voxel


def test_bad_shapes_raise_zoa_error(cosmo):
    from zoa_lib.errors import ZoaError

    with pytest.raises(ZoaError, match="cubic"):
        vel.velocity_from_potential(np.zeros((4, 4)), 10.0, cosmo)
    with pytest.raises(ZoaError, match="method"):
        vel.velocity_from_potential(np.zeros((4, 4, 4)), 10.0, cosmo, method="magic")
    with pytest.raises(ZoaError, match="radius"):
        vel.bulk_flow(np.zeros((4, 4, 4, 3)), 10.0, -1.0)


def test_velocities_from_potentials_is_the_per_mock_velocity_of_a_stack():
    from zoa_lib.universe.cosmology import Cosmology
    from zoa_lib.universe.velocity import VelocityError, velocities_from_potentials, velocity_from_potential

    rng = np.random.default_rng(3)
    phi = rng.normal(size=(3, 8, 8, 8)) * 1e5
    cosmo = Cosmology()
    v = velocities_from_potentials(phi, 160.0, cosmo)
    assert v.shape == (3, 8, 8, 8, 3) and v.dtype == np.float32
    np.testing.assert_allclose(v[2], velocity_from_potential(phi[2], 160.0, cosmo, "finite_difference"), rtol=1e-5)
    with pytest.raises(VelocityError, match="stack"):
        velocities_from_potentials(phi[0], 160.0, cosmo)
