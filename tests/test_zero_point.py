"""The catalogue's zero point as a nuisance parameter (zoa_lib.survey.zero_point): equation (1) against
the estimator and against re-reading the catalogue with another H0; the fit recovers a shift put
into a mock on purpose; the radial-flow diagnostic on fields with a known answer."""
from __future__ import annotations

import json

import numpy as np
import pytest

from zoa_lib.config import load_profile
from zoa_lib.survey import distances, mocks
from zoa_lib.survey import zero_point as zp
from zoa_lib.survey.catalogs import CF3_SAMPLE, CF4_SAMPLE, read_catalog
from zoa_lib.universe.grid import voxel_centres


def test_lever_is_the_estimators_derivative_in_ln_d():
    cz = np.array([300.0, 2000.0, 8000.0, 15000.0])
    d = np.array([3.2, 19.0, 83.0, 140.0])
    for a in (-0.05, 0.01, 0.08):
        dv = distances.watkins_feldman_velocity(cz, d * np.exp(a)) - distances.watkins_feldman_velocity(cz, d)
        assert np.allclose(dv, -zp.velocity_lever(cz) * a, rtol=1e-12, atol=1e-9)
    assert np.allclose(zp.velocity_lever(cz[:1]), cz[:1], rtol=1e-3)  # u -> cz at low z


@pytest.mark.parametrize("path", [CF4_SAMPLE, CF3_SAMPLE])
def test_shift_equals_reading_the_catalogue_with_another_h0(path):
    """Rescaling H0 in the reader (an independent path: moduli → Mpc/h with another h) gives the
    same table as shift_zero_point."""
    a = 0.03
    cat, rep = read_catalog(path)
    other, _ = read_catalog(path, h0_catalog=rep.h0_catalog * np.exp(a))
    shifted = zp.shift_zero_point(cat, a)
    for k in ("d_obs", "SGX", "SGY", "SGZ"):
        assert np.allclose(shifted[k], other[k], rtol=2e-6, atol=2e-5), k
    red = cat["cz"] > 0
    assert np.allclose(shifted["v_r_obs"][red], other["v_r_obs"][red], atol=0.02)
    assert np.allclose(shifted["v_r_obs"][~red], other["v_r_obs"][~red], atol=0.5)


@pytest.fixture(scope="module")
def ci_mocks():
    prof = load_profile("ci")
    step = prof.simulation.observers_per_box
    return [mocks.make_sample(prof, s).catalog for s in range(0, prof.mocks.n_total, step // 2)]


def test_fit_recovers_a_shift_put_into_a_mock(ci_mocks):
    cal = zp.calibrate(ci_mocks[:-1])
    assert cal.n_mocks == len(ci_mocks) - 1 and np.isfinite(cal.a_sigma) and cal.a_sigma > 0
    held = ci_mocks[-1]  # not in the calibration
    base = zp.fit_zero_point(held, cal, 75.0)
    assert abs(base.a) < 4 * cal.a_sigma + 0.01  # true a = 0
    for a0 in (-0.06, 0.04):
        fit = zp.fit_zero_point(zp.shift_zero_point(held, a0), cal, 75.0)
        assert fit.a == pytest.approx(base.a - a0, abs=2e-3)  # linear in a, up to the cz <= 0 rows
        assert abs(fit.a + a0) < 4 * cal.a_sigma + 0.01
        assert fit.h0_fit == pytest.approx(75.0 * np.exp(fit.a))
    # applying the fit removes the monopole: the refit of the corrected catalogue is 0
    fixed = zp.shift_zero_point(zp.shift_zero_point(held, 0.05), zp.fit_zero_point(zp.shift_zero_point(held, 0.05),
                                                                                    cal).a)
    assert abs(zp.fit_zero_point(fixed, cal).a) < 1e-3
    with pytest.raises(zp.ZeroPointError, match="at least 2"):
        zp.calibrate(ci_mocks[:1])


def test_radial_flow_of_known_fields():
    n, L = 16, 160.0
    x = voxel_centres(L, n)
    X, Y, Z = np.meshgrid(x, x, x, indexing="ij")
    hubble = 3.0 * np.stack([X, Y, Z], axis=-1)  # v = 3 r (km/s per Mpc/h): v_r = 3 |r|
    out = zp.radial_flow(hubble, L, [0.0, 20.0, 40.0, 60.0])
    r = np.sqrt(X ** 2 + Y ** 2 + Z ** 2)
    for i, (lo, hi) in enumerate([(0, 20), (20, 40), (40, 60)]):
        m = (r >= lo) & (r < hi)
        assert out["v_r"][i] == pytest.approx(3.0 * r[m].mean(), rel=1e-6)
        assert out["n_voxels"][i] == int(m.sum())
    uniform = np.zeros((n, n, n, 3))
    uniform[..., 0] = 500.0  # a bulk flow has no monopole
    assert np.allclose(zp.radial_flow(uniform, L, [0.0, 30.0, 60.0])["v_r"], 0.0, atol=1e-9)


def test_reconstruct_records_the_zero_point(zoa_data, tmp_path):
    from zoa_lib.cli import main

    out = tmp_path / "cf3.h5"
    assert main(["reconstruct", str(CF3_SAMPLE), "--profile", "ci", "--methods", "wiener", "--output", str(out),
                 "--no-progress"]) == 0
    from zoa_lib.analysis import reconstruct

    rec = reconstruct.read(out)
    z = rec["catalogs"][0]["zero_point"]
    assert z["h0_catalog"] == 75.0 and np.isfinite(z["a"]) and z["a_err"] > 0 and z["n"] > 1000
    assert z["h0_fit"] == pytest.approx(75.0 * np.exp(z["a"]))
    assert main(["reconstruct", str(CF3_SAMPLE), "--profile", "ci", "--methods", "wiener", "--output", str(out),
                 "--no-progress", "--zero-point", "none"]) == 0
    assert reconstruct.read(out)["catalogs"][0]["zero_point"] is None
    assert json.loads(reconstruct.read(out)["attrs"]["domain_mismatch"]) == []
