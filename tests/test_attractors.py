"""The blind attractor search on synthetic fields: a planted attractor
is found at its position and ranked first; a field without one has no peak as significant;
positions go through astropy; the false-positive rate counts only what it should."""
import numpy as np
import pytest
from astropy import units as u
from astropy.coordinates import Galactic, SkyCoord, Supergalactic

from zoa_lib.analysis import attractors as at
from zoa_lib.universe.fields import gaussian_smooth
from zoa_lib.universe.grid import voxel_centres

L, N, RMAX = 160.0, 32, 80.0
GA = (308.4, 29.0, 4960.0)


def _sg_of(l, b, cz):
    c = SkyCoord(l=l * u.deg, b=b * u.deg, distance=(cz / 100.0) * u.Mpc, frame=Galactic).transform_to(Supergalactic)
    return np.array([c.cartesian.x.to_value(u.Mpc), c.cartesian.y.to_value(u.Mpc), c.cartesian.z.to_value(u.Mpc)])


def _noise(seed, sigma=8.0):
    f = gaussian_smooth(np.random.default_rng(seed).standard_normal((N,) * 3), L, sigma)
    return f / f.std()


def _blob(centre, amp, width=8.0):
    x = voxel_centres(L, N)
    r2 = ((x[:, None, None] - centre[0]) ** 2 + (x[None, :, None] - centre[1]) ** 2
          + (x[None, None, :] - centre[2]) ** 2)
    return amp * np.exp(-0.5 * r2 / width ** 2)


def _infall(centre, amp=300.0, width=8.0):
    """v = −A (x − c)/w e^{−|x−c|²/2w²}: a flow converging on c (km/s)."""
    x = voxel_centres(L, N)
    X = np.stack(np.meshgrid(x, x, x, indexing="ij"), -1) - np.asarray(centre)
    g = np.exp(-0.5 * (X ** 2).sum(-1) / width ** 2)
    return -amp * X / width * g[..., None]


def test_target_sg_is_astropy():
    assert np.allclose(at.target_sg(GA), _sg_of(*GA), atol=1e-9)
    assert at.paper_ga() == GA


def test_planted_attractor_found_at_its_position():
    c = _sg_of(*GA)
    field = _noise(1) + _blob(c, 6.0)
    cands = at.local_peaks(field, L, RMAX, k=8)
    assert [p["rank"] for p in cands] == list(range(1, len(cands) + 1))
    assert np.all(np.diff([p["value"] for p in cands]) <= 0)
    top = cands[0]
    assert np.linalg.norm(np.subtract(top["sg"], c)) < 0.5 * L / N    # within half a voxel
    m = at.match(cands, GA, radius_mpc=10.0)
    assert m["found"] and m["rank"] == 1
    assert abs(m["dl"]) < 3.0 and abs(m["db"]) < 3.0 and abs(m["dcz"]) < 300.0
    # l, b, cz of the candidate agree with astropy on its SG position
    sc = SkyCoord(*(np.array(top["sg"]) * u.Mpc), frame=Supergalactic, representation_type="cartesian")
    g = sc.transform_to(Galactic)
    assert top["l"] == pytest.approx(g.l.deg % 360, abs=1e-6)
    assert top["b"] == pytest.approx(g.b.deg, abs=1e-6)
    assert top["cz"] == pytest.approx(100.0 * g.distance.to_value(u.Mpc), rel=1e-9)


def test_field_without_attractor_has_no_peak_as_significant():
    c = _sg_of(*GA)
    planted = at.local_peaks(_noise(2) + _blob(c, 6.0), L, RMAX, k=5)
    nu_planted = at.match(planted, GA, 10.0)["significance"]
    for seed in (2, 3, 4):
        plain = at.local_peaks(_noise(seed), L, RMAX, k=5)
        assert max(p["significance"] for p in plain) < nu_planted


def test_convergence_of_planted_infall():
    c = _sg_of(*GA)
    vel = _infall(c) + 20.0 * np.stack([_noise(s) for s in (5, 6, 7)], -1)
    s = at.blind_search(None, vel, L, RMAX, k=5)
    assert set(s) == {"convergence"}
    top = s["convergence"][0]
    assert np.linalg.norm(np.subtract(top["sg"], c)) < L / N
    assert at.match(s["convergence"], GA, 10.0)["rank"] == 1


def test_candidates_stay_in_the_survey_sphere_and_match_wraps_l():
    field = _noise(8)
    cands = at.local_peaks(field, L, 40.0, k=50)
    assert all(np.linalg.norm(p["sg"]) <= 40.0 + L / N for p in cands)
    assert all(np.linalg.norm(L / N * (np.array(p["voxel"]) + 0.5) - L / 2) <= 40.0 for p in cands)
    # a target at l = 359.5 and a candidate at l ≈ 0.5: Δl ≈ +1, not −359
    t = (359.5, 0.0, 4000.0)
    c0 = _sg_of(0.5, 0.0, 4000.0)
    m = at.match([{"rank": 1, "sg": c0.tolist(), "l": 0.5, "b": 0.0, "cz": 4000.0, "significance": 3.0}], t, 5.0)
    assert m["dl"] == pytest.approx(1.0) and m["found"]
    assert at.match([], t, 5.0)["found"] is False


def test_false_positive_rate_counts_planted_and_not_plain():
    c = _sg_of(*GA)
    planted = [_noise(s) + _blob(c, 8.0) for s in (10, 11, 12)]
    plain = [_noise(s) for s in (10, 11, 12, 13)]
    m = at.match(at.local_peaks(planted[0], L, RMAX, k=5), GA, 10.0)
    r, nu = at.thresholds(m, k=5)
    assert r == 1 and nu > 4.0
    fp = at.false_positive_rate(planted, L, RMAX, GA, 10.0, max_rank=r, min_significance=0.6 * nu)
    assert fp["n"] == 3 and fp["rate"] == 1.0 and fp["interval"][1] == 1.0
    fp0 = at.false_positive_rate(plain, L, RMAX, GA, 10.0, max_rank=r, min_significance=nu)
    assert fp0["n_hits"] == 0 and fp0["rate"] == 0.0 and fp0["interval"][0] == 0.0
    # no significance threshold and every rank: a chance peak within a big radius counts
    fp_any = at.false_positive_rate(plain, L, RMAX, GA, 60.0, max_rank=50)
    assert fp_any["rate"] == 1.0
    assert at.thresholds({"found": False}, k=7) == (7, float("-inf"))


def test_bad_inputs_raise():
    with pytest.raises(at.AttractorError):
        at.local_peaks(np.zeros((4, 4)), L, RMAX)
    with pytest.raises(at.AttractorError):
        at.local_peaks(np.zeros((4, 4, 4)), L, 0.0)
    with pytest.raises(at.AttractorError):
        at.target_sg((300.0, 95.0, 4000.0))
    with pytest.raises(at.AttractorError):
        at.false_positive_rate([], L, RMAX, GA, 10.0)
