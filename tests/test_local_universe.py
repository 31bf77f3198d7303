"""Constrained realizations (Hoffman-Ribak) and the Great Attractor finder."""
import numpy as np
import pytest
from astropy import units as u
from astropy.coordinates import SkyCoord

from zoa_lib import local_universe as lu
from zoa_lib.cosmology import Cosmology
from zoa_lib.rng import generator

L, M, RS = 200.0, 32, 12.0


@pytest.fixture(scope="module")
def cosmo():
    return Cosmology()


def _positions():
    return np.array([[50.0, 50.0, 50.0], [125.0, 100.0, 75.0], [150.0, 25.0, 175.0]])


def test_constraints_are_hit_exactly(cosmo):
    _, _, sig = lu.smoothing_covariances(cosmo, L, M, RS)
    values = np.array([3.0, 2.0, -1.5]) * sig
    cf = lu.constrained_field(cosmo, L, M, _positions(), values, generator(1, "local_universe", 0), RS)
    # re-measure independently: numpy FFT smoothing with the analytic Gaussian
    k = 2 * np.pi * np.fft.fftfreq(M, L / M)
    K2 = k[:, None, None] ** 2 + k[None, :, None] ** 2 + k[None, None, :] ** 2
    sm = np.fft.ifftn(np.fft.fftn(cf.delta.astype(float)) * np.exp(-0.5 * K2 * RS ** 2)).real
    measured = sm[tuple(cf.nodes.T)]
    np.testing.assert_allclose(measured, values, rtol=1e-5, atol=1e-6 * sig)


def test_mean_of_realizations_is_the_mean_field(cosmo):
    """Hoffman-Ribak: the ensemble mean of constrained realizations is sum_ij xi_i C^-1_ij c_j."""
    xi_w, xi_ww, sig = lu.smoothing_covariances(cosmo, L, M, RS)
    pos = _positions()[:1]
    values = np.array([2.5 * sig])
    fields = [lu.constrained_field(cosmo, L, M, pos, values, generator(1, "local_universe", 1, i), RS).delta
              for i in range(24)]
    node = lu._node_index(pos, L, M)[0]
    mean_field = values[0] / xi_ww[0, 0, 0] * np.roll(xi_w, tuple(node), axis=(0, 1, 2))
    emp = np.mean(fields, axis=0)
    # residual scatter of the mean of 24 realizations ~ sigma/sqrt(24): compare near the peak
    sl = tuple(slice(n - 2, n + 3) for n in node)
    sd = np.std(np.array(fields)[(slice(None),) + sl], axis=0) / np.sqrt(len(fields))
    assert np.all(np.abs(emp[sl] - mean_field[sl]) < 4 * sd + 1e-6)


def test_far_from_constraints_variance_follows_pk(cosmo):
    var_expected = np.fft.irfftn(__import__("zoa_lib.simulation", fromlist=["x"]).mode_variance(cosmo, L, M),
                                 s=(M,) * 3)[0, 0, 0]
    _, _, sig = lu.smoothing_covariances(cosmo, L, M, RS)
    vals = []
    for i in range(8):
        cf = lu.constrained_field(cosmo, L, M, _positions()[:1], [2 * sig], generator(2, "local_universe", i), RS)
        vals.append(cf.delta[20:, 20:, 20:])  # far corner from (8, 8, 8)
    assert np.var(vals) == pytest.approx(var_expected, rel=0.15)


def test_known_structures_round_trip_astropy():
    for s in lu.known_structures():
        c = SkyCoord(sgx=s.sg[0] * u.Mpc, sgy=s.sg[1] * u.Mpc, sgz=s.sg[2] * u.Mpc,
                     frame="supergalactic", representation_type="cartesian").galactic
        assert c.l.deg == pytest.approx(s.l, abs=1e-6) or abs(c.l.deg - s.l) == pytest.approx(360, abs=1e-6)
        assert c.b.deg == pytest.approx(s.b, abs=1e-6)
        assert np.linalg.norm(s.sg) * 100 == pytest.approx(s.cz, rel=1e-9)
    names = [s.name for s in lu.known_structures()]
    assert lu.GREAT_ATTRACTOR in names


def test_locate_attractor_finds_a_blob():
    from zoa_lib.fields import voxel_centres

    n, size = 32, 160.0
    ga = next(s for s in lu.known_structures() if s.name == lu.GREAT_ATTRACTOR)
    x = voxel_centres(size, n)
    X, Y, Z = np.meshgrid(x, x, x, indexing="ij")
    centre = np.array(ga.sg)
    delta = 4 * np.exp(-((X - centre[0]) ** 2 + (Y - centre[1]) ** 2 + (Z - centre[2]) ** 2) / (2 * 6.0 ** 2))
    res = lu.locate_attractor(delta, size, ga.sg, 15.0)
    assert res["found"]
    assert np.linalg.norm(np.array(res["sg"]) - centre) < size / n
    assert res["cz"] == pytest.approx(ga.cz, abs=100 * size / n)
    # nothing but a slope: the maximum sits on the search edge and is not "found"
    res = lu.locate_attractor(X, size, ga.sg, 15.0)
    assert not res["found"]


def test_statistics_wrap_longitude():
    res = [{"l": 359.0, "b": 1.0, "cz": 1000.0, "found": True},
           {"l": 1.0, "b": 3.0, "cz": 1200.0, "found": True},
           {"l": 180.0, "b": 0.0, "cz": 0.0, "found": False}]
    st = lu.attractor_statistics(res)
    assert st["fraction_found"] == pytest.approx(2 / 3)
    assert min(st["l_mean"], 360 - st["l_mean"]) < 1e-6
    assert st["l_std"] == pytest.approx(1.0, rel=0.01)
    assert st["b_mean"] == 2.0 and st["cz_mean"] == 1100.0
