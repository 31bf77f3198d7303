"""Constrained realizations (Hoffman-Ribak), the local-universe box and the Great Attractor
finder, checked against independent computations: numpy FFTs and direct mode sums, dense
Gaussian conditioning, P(k) summed over the modes, astropy coordinates."""
import numpy as np
import pytest
from astropy import units as u
from astropy.coordinates import SkyCoord

from zoa_lib.analysis import ga_search
from zoa_lib.analysis import local_universe as lu
from zoa_lib.analysis import structures as structures_module
from zoa_lib.config import load_profile
from zoa_lib.methods import calibration, reconstruction, registry
from zoa_lib.survey import catalog_files, selection
from zoa_lib.universe import constrained
from zoa_lib.universe.cosmology import Cosmology
from zoa_lib.universe.rng import generator


@pytest.fixture(scope="module")
def cosmo():
    return Cosmology()


# --------------------------------------------------------------------------- independent helpers
def _k_full(L, M):
    k = 2 * np.pi * np.fft.fftfreq(M, L / M)
    return np.meshgrid(k, k, k, indexing="ij")


def _mode_variance_numpy(cosmo, L, M):
    """⟨|δ_k|²⟩/M³ = P(k)/ΔV on the full fftn grid, 0 at k = 0 (from the module docstring of
    zoa_lib.universe.simulation, computed here with numpy and the cosmology's P(k) directly)."""
    KX, KY, KZ = _k_full(L, M)
    k = np.sqrt(KX ** 2 + KY ** 2 + KZ ** 2)
    var = np.zeros_like(k)
    nz = k > 0
    var[nz] = cosmo.power_spectrum(k[nz]) / (L / M) ** 3
    return var


def _smooth_numpy(delta, L, R):
    KX, KY, KZ = _k_full(L, delta.shape[0])
    return np.fft.ifftn(np.fft.fftn(delta) * np.exp(-0.5 * (KX ** 2 + KY ** 2 + KZ ** 2) * R ** 2)).real


def _smoothed_gradient_numpy(delta, L, R):
    """∇(W ∗ δ) on the nodes, spectral, Nyquist modes dropped."""
    M = delta.shape[0]
    KX, KY, KZ = _k_full(L, M)
    nyq = np.zeros((M,) * 3, bool)
    for K in (KX, KY, KZ):
        nyq |= np.isclose(np.abs(K), np.pi * M / L)
    F = np.fft.fftn(delta) * np.exp(-0.5 * (KX ** 2 + KY ** 2 + KZ ** 2) * R ** 2)
    F[nyq] = 0
    return np.stack([np.fft.ifftn(1j * K * F).real for K in (KX, KY, KZ)], -1)


# --------------------------------------------------------------------------- constraints
L, M, R = 200.0, 32, 12.0          # R ≈ 2 cells: Nyquist modes weigh e^-18 in the smoothing
NODES = np.array([[8, 8, 8], [20, 16, 12], [24, 4, 28]])


def test_constraints_are_hit_at_mesh_nodes(cosmo):
    pos = NODES * (L / M)
    sysm = constrained.constraint_system(cosmo, L, M, pos, R)
    values = np.array([3.0, 2.0, -1.5]) * sysm.sigma_s
    cf = constrained.constrained_field(cosmo, L, M, pos, values, generator(1, "local_universe", 0), R, system=sysm)
    assert cf.delta.dtype == np.float32 and cf.delta.shape == (M,) * 3
    # re-measure independently: numpy FFT smoothing with the analytic Gaussian, read at the nodes
    sm = _smooth_numpy(cf.delta.astype(float), L, R)
    np.testing.assert_allclose(sm[tuple(NODES.T)], values, rtol=1e-6)
    # peak constraints: the smoothed field has zero gradient there, and is a strict maximum
    # (minimum for the void) among its 26 neighbours
    grad = _smoothed_gradient_numpy(cf.delta.astype(float), L, R)[tuple(NODES.T)]
    assert np.abs(grad).max() < 1e-6 * sysm.sigma_s / R
    for (i, j, k), v in zip(NODES, values):
        nb = np.sign(v) * sm[i - 1:i + 2, j - 1:j + 2, k - 1:k + 2]
        assert np.sort(nb.ravel())[-2] < nb[1, 1, 1]
    assert cf.kind == "peak" and np.all(cf.hessian[:, :3] * np.sign(values)[:, None] < 0)
    # the random field did not satisfy them before
    assert np.all(np.abs(cf.unconstrained - values) > 0.1 * sysm.sigma_s)
    np.testing.assert_allclose(cf.achieved, values, rtol=1e-6)


def test_constraints_off_the_mesh_by_direct_mode_sum(cosmo):
    """Between nodes the constraint is the band-limited interpolation of the smoothed field:
    check it with an explicit sum over all modes of numpy's full FFT (Nyquist modes dropped)."""
    pos = np.array([[51.3, 47.9, 60.2], [131.7, 99.1, 77.7]])
    values = [0.8, -0.5]
    for i, kind in enumerate(("extremum", "value")):
        cf = constrained.constrained_field(cosmo, L, M, pos, values, generator(2, "local_universe", i), R, kind=kind)
        F = np.fft.fftn(cf.delta.astype(float))
        KX, KY, KZ = _k_full(L, M)
        W = np.exp(-0.5 * (KX ** 2 + KY ** 2 + KZ ** 2) * R ** 2)
        for K in (KX, KY, KZ):
            W[np.isclose(np.abs(K), np.pi * M / L)] = 0
        for x, v in zip(pos, values):
            ph = F * W * np.exp(1j * (KX * x[0] + KY * x[1] + KZ * x[2])) / M ** 3
            assert ph.sum().real == pytest.approx(v, rel=1e-6)
            g = [(1j * K * ph).sum().real for K in (KX, KY, KZ)]
            if kind == "extremum":
                assert np.abs(g).max() < 1e-7
            else:
                assert np.abs(g).max() > 1e-4  # a value constraint alone leaves the slope free


def _dense_problem(cosmo, L, M, R, nodes, values):
    """Gaussian conditioning with dense matrices: prior covariance S from P(k), constraint
    rows A (smoothed value, gradient and Hessian at the nodes: a peak); mean
    S Aᵀ (A S Aᵀ)⁻¹ c and covariance S − S Aᵀ (A S Aᵀ)⁻¹ A S. The imposed Hessian is its
    mean given the value, c ⟨H δ_s⟩ / ⟨δ_s²⟩, from the same dense matrices."""
    var = _mode_variance_numpy(cosmo, L, M)
    xi = np.fft.ifftn(var).real                                     # ⟨δ(0) δ(r)⟩
    idx = np.indices((M,) * 3).reshape(3, -1).T
    sep = np.mod(idx[:, None, :] - idx[None, :, :], M)
    S = xi[sep[..., 0], sep[..., 1], sep[..., 2]]
    KX, KY, KZ = _k_full(L, M)
    W = np.exp(-0.5 * (KX ** 2 + KY ** 2 + KZ ** 2) * R ** 2)
    ik = (1j * KX, 1j * KY, 1j * KZ)
    facs = [1.0] + list(ik) + [ik[0] ** 2, ik[1] ** 2, ik[2] ** 2, ik[0] * ik[1], ik[0] * ik[2], ik[1] * ik[2]]
    rows, c = [], []
    for node, v in zip(nodes, values):
        block = []
        for fac in facs:
            kern = np.fft.ifftn(fac * W).real                      # response of c to a unit δ at 0
            d = np.mod(np.asarray(node)[None, :] - idx, M)
            block.append(kern[d[:, 0], d[:, 1], d[:, 2]])
        block = np.array(block)
        cov0 = block @ S @ block[0]                                # ⟨c_a δ_s⟩
        rows += list(block)
        c += [v, 0.0, 0.0, 0.0] + list(v * cov0[4:] / cov0[0])
    A = np.array(rows)
    G = S @ A.T
    K = np.linalg.solve(A @ G, np.eye(len(A)))
    mean = G @ K @ np.array(c)
    cov = S - G @ K @ G.T
    return mean.reshape((M,) * 3), np.diag(cov).reshape((M,) * 3)


def test_mean_of_realizations_is_the_hoffman_ribak_mean_field(cosmo):
    L2, M2, R2 = 120.0, 12, 20.0      # R = 2 cells; tiny mesh for dense algebra (1728²)
    nodes = np.array([[3, 3, 3], [8, 6, 7]])
    sig = constrained.constraint_system(cosmo, L2, M2, nodes * L2 / M2, R2).sigma_s
    values = np.array([2.5, -1.5]) * sig
    mean_dense, var_dense = _dense_problem(cosmo, L2, M2, R2, nodes, values)
    mf = constrained.mean_field(cosmo, L2, M2, nodes * L2 / M2, values, R2)
    np.testing.assert_allclose(mf, mean_dense, atol=1e-6 * np.abs(mean_dense).max())
    sysm = constrained.constraint_system(cosmo, L2, M2, nodes * L2 / M2, R2)
    n = 300
    fields = np.array([constrained.constrained_field(cosmo, L2, M2, None, values, generator(3, "local_universe", i), R2,
                                            system=sysm).delta for i in range(n)], dtype=np.float64)
    # the sample variance agrees with the dense conditional variance
    ratio = fields.var(0).mean() / var_dense.mean()
    assert ratio == pytest.approx(1.0, abs=0.05)
    z = (fields.mean(0) - mean_dense) / np.sqrt(np.maximum(var_dense, 1e-30) / n)
    z = z[var_dense > 1e-6 * var_dense.max()]
    assert np.abs(z).max() < 5.0
    assert np.mean(z ** 2) == pytest.approx(1.0, abs=0.3)
    # and the mean field is far from zero near the constraints (the test has teeth)
    assert np.abs(mean_dense[3, 3, 3]) > 10 * np.sqrt(var_dense.max() / n)


def test_far_from_the_constraints_the_variance_follows_pk(cosmo):
    L3, M3, R3 = 400.0, 32, 25.0    # R = 2 cells (Nyquist weight e^-20)
    var = _mode_variance_numpy(cosmo, L3, M3)
    sigma2 = var.sum() / M3 ** 3          # (1/V) Σ_k P(k) over the mesh's modes
    node = np.array([4, 4, 4])
    sysm = constrained.constraint_system(cosmo, L3, M3, node * L3 / M3, R3)
    fields = np.array([constrained.constrained_field(cosmo, L3, M3, None, [2.5 * sysm.sigma_s],
                                            generator(4, "local_universe", i), R3, system=sysm).delta
                       for i in range(48)], dtype=np.float64)
    d = np.linalg.norm(np.mod(np.indices((M3,) * 3).T - node + M3 // 2, M3) - M3 // 2, axis=-1).T * (L3 / M3)
    far = d > 100.0
    assert fields[:, far].var() == pytest.approx(sigma2, rel=0.05)
    # at the constraint itself the smoothed field is fixed: no scatter left
    sm = np.array([_smooth_numpy(f, L3, R3)[tuple(node)] for f in fields[:8]])
    assert np.ptp(sm) < 1e-6 * sysm.sigma_s


# --------------------------------------------------------------------------- structures
def test_known_structures_round_trip_with_astropy():
    structures = structures_module.known_structures()
    assert structures_module.great_attractor(structures).name == structures_module.GREAT_ATTRACTOR
    assert {s.kind for s in structures} == {"attractor", "void"}
    for s in structures:
        c = SkyCoord(sgx=s.sg[0] * u.Mpc, sgy=s.sg[1] * u.Mpc, sgz=s.sg[2] * u.Mpc,
                     frame="supergalactic", representation_type="cartesian").galactic
        dl = (c.l.deg - s.l + 180) % 360 - 180
        assert abs(dl) < 1e-6 and c.b.deg == pytest.approx(s.b, abs=1e-6)
        assert c.distance.to_value(u.Mpc) * 100 == pytest.approx(s.cz, rel=1e-9)   # d = cz / H0
        assert s.distance == pytest.approx(s.cz / 100.0)
    ga = structures_module.great_attractor(structures)
    assert (ga.l, ga.b, ga.cz) == (308.4, 29.0, 4960.0)


def _cz_cmb_astropy(cz_helio, l, b):
    """CMB-frame cz of a heliocentric cz toward Galactic (l, b), independently of zoa_lib.survey.frames:
    1 + z_cmb = (1 + z_helio)(1 + v cos θ / c), i.e. cz_cmb = cz_helio + v cos θ (1 + z_helio),
    with the Sun's CMB dipole v = 369.82 km/s toward (l, b) = (264.021°, 48.253°) (Planck 2018)
    and θ its angle to the structure from astropy's SkyCoord.separation."""
    c = 299792.458
    apex = SkyCoord(l=264.021 * u.deg, b=48.253 * u.deg, frame="galactic")
    cos_t = np.cos(SkyCoord(l=l * u.deg, b=b * u.deg, frame="galactic").separation(apex).rad)
    return cz_helio + 369.82 * cos_t * (1.0 + cz_helio / c)


def test_structure_cz_is_converted_to_the_cmb_frame_not_typed():
    structures = {s.name: s for s in structures_module.known_structures()}
    norma = structures["Norma cluster (A3627)"]
    # Woudt et al. 2008: 4871 km/s heliocentric, stored as published; the CMB cz is computed
    assert (norma.frame, norma.cz_table, norma.cz_helio) == ("heliocentric", 4871.0, 4871.0)
    assert norma.cz == pytest.approx(_cz_cmb_astropy(4871.0, norma.l, norma.b), abs=0.01)
    assert norma.cz - 4871.0 == pytest.approx(83.6, abs=0.5)   # cos θ ≈ 0.22 from the Sun's apex
    # the distance and the SG position follow the CMB cz
    assert norma.distance == pytest.approx(norma.cz / 100.0) and np.linalg.norm(norma.sg) == pytest.approx(norma.cz / 100)
    for s in structures.values():
        assert s.frame in structures_module.CZ_FRAMES
        if s.frame == "heliocentric":
            assert s.cz == pytest.approx(_cz_cmb_astropy(s.cz_table, s.l, s.b), abs=0.01), s.name
            assert s.cz_helio == s.cz_table
        else:
            assert s.cz == s.cz_table
    # no entry claims the CMB frame while its reference gives a heliocentric redshift: the CMB rows are
    # the paper's GA (a CF4 result, CMB frame) and the Local Void's centre (H0 d, a distance)
    cmb = {n for n, s in structures.items() if s.frame == "cmb"}
    assert cmb == {structures_module.GREAT_ATTRACTOR, "Local Void"}
    assert all("heliocentric" not in structures[n].reference for n in cmb)
    assert all("heliocentric" in s.reference for s in structures.values() if s.frame == "heliocentric")
    # the paper's GA stays as the paper gives it (CMB frame); its heliocentric cz is the inverse conversion
    ga = structures_module.great_attractor()
    assert (ga.l, ga.b, ga.cz, ga.frame) == (308.4, 29.0, 4960.0, "cmb")
    assert _cz_cmb_astropy(ga.cz_helio, ga.l, ga.b) == pytest.approx(4960.0, abs=0.01)


def test_structure_table_frame_column(tmp_path):
    p = tmp_path / "s.csv"
    p.write_text("name,l,b,cz,kind\nGreat Attractor,308.4,29.0,4960,attractor\n")
    (ga,) = structures_module.known_structures(p)
    assert (ga.frame, ga.cz) == ("cmb", 4960.0)
    p.write_text("name,l,b,cz,frame,kind\nComa,58.1,88.0,6925,heliocentric,attractor\n"
                 "Virgo,283.8,74.5,1050,local-group,attractor\n")
    coma, virgo = structures_module.known_structures(p)
    assert coma.cz == pytest.approx(_cz_cmb_astropy(6925.0, 58.1, 88.0), abs=0.01)
    assert virgo.frame == "local-group" and virgo.cz_table == 1050.0 and virgo.cz > 1050.0
    p.write_text("name,l,b,cz,frame,kind\nComa,58.1,88.0,6925,galactocentric,attractor\n")
    with pytest.raises(structures_module.LocalUniverseError, match="line 2: frame"):
        structures_module.known_structures(p)


@pytest.mark.parametrize("row, message", [
    ("Foo,10,95,1000,attractor,x", "line 3"),
    ("Foo,10,5,abc,attractor,x", "line 3"),
    ("Foo,10,5,1000,wall,x", "kind"),
])
def test_bad_structure_table_names_the_line(tmp_path, row, message):
    p = tmp_path / "s.csv"
    p.write_text("# comment\nname,l,b,cz,kind,reference\n" + row + "\n")
    with pytest.raises(structures_module.LocalUniverseError, match=message):
        structures_module.known_structures(p)
    with pytest.raises(structures_module.LocalUniverseError, match="not found"):
        structures_module.known_structures(tmp_path / "missing.csv")


# --------------------------------------------------------------------------- GA finder
def _grid(size, n):
    x = -size / 2 + (np.arange(n) + 0.5) * size / n
    return np.meshgrid(x, x, x, indexing="ij")


def test_locate_attractor_finds_a_blob_at_a_known_sky_position():
    n, size = 32, 160.0
    l0, b0, d0 = 300.0, 25.0, 47.3
    c = SkyCoord(l=l0 * u.deg, b=b0 * u.deg, distance=d0 * u.Mpc, frame="galactic").supergalactic
    centre = np.array([c.cartesian.x.to_value(u.Mpc), c.cartesian.y.to_value(u.Mpc), c.cartesian.z.to_value(u.Mpc)])
    X, Y, Z = _grid(size, n)
    blob = 4 * np.exp(-((X - centre[0]) ** 2 + (Y - centre[1]) ** 2 + (Z - centre[2]) ** 2) / (2 * 6.0 ** 2))
    blob += 3 * np.exp(-((X + 40) ** 2 + Y ** 2 + Z ** 2) / (2 * 6.0 ** 2))  # a bigger peak, far away
    res = ga_search.locate_attractor(blob, size, centre + [4.0, -3.0, 2.0], 15.0)
    assert res["found"]
    assert np.linalg.norm(np.array(res["sg"]) - centre) < 0.1 * size / n      # sub-voxel refinement
    assert res["cz"] == pytest.approx(100 * d0, abs=100 * 0.1 * size / n)
    assert abs((res["l"] - l0 + 180) % 360 - 180) < 0.2 and res["b"] == pytest.approx(b0, abs=0.2)
    # nothing but a slope: the maximum sits on the search sphere's edge and is not "found"
    res = ga_search.locate_attractor(X, size, centre, 15.0)
    assert not res["found"]
    with pytest.raises(structures_module.LocalUniverseError):
        ga_search.locate_attractor(blob, size, [500.0, 0, 0], 15.0)


def test_locate_convergence_finds_the_sink_of_a_flow():
    n, size = 32, 160.0
    centre = np.array([-20.3, 33.1, 11.7])
    X, Y, Z = _grid(size, n)
    r2 = (X - centre[0]) ** 2 + (Y - centre[1]) ** 2 + (Z - centre[2]) ** 2
    env = 30.0 * np.exp(-r2 / (2 * 10.0 ** 2))
    v = -np.stack([(X - centre[0]) * env, (Y - centre[1]) * env, (Z - centre[2]) * env], -1)   # km/s
    res = ga_search.locate_convergence(v, size, centre + 5.0, 15.0)
    assert res["found"] and np.linalg.norm(np.array(res["sg"]) - centre) < size / n
    # −∇·v = 30 e^{−r²/2s²} (3 − r²/s²) km/s per Mpc/h: 90 at the sink, a bit less at the
    # nearest voxel centre and with finite differences on 5 Mpc/h voxels
    assert 0.8 * 90.0 < res["peak_value"] < 90.0


def test_attractor_statistics_wrap_longitude():
    res = [{"l": 359.0, "b": 1.0, "cz": 1000.0, "found": True},
           {"l": 1.0, "b": 3.0, "cz": 1200.0, "found": True},
           {"l": 180.0, "b": 0.0, "cz": 0.0, "found": False}]
    st = ga_search.attractor_statistics(res)
    assert st["n"] == 3 and st["n_found"] == 2 and st["fraction_found"] == pytest.approx(2 / 3)
    assert min(st["l_mean"], 360 - st["l_mean"]) < 1e-9
    assert st["l_std"] == pytest.approx(1.0, rel=1e-3)      # ±1° about 0°, not ±179°
    assert st["b_mean"] == 2.0 and st["b_std"] == 1.0 and st["cz_mean"] == 1100.0 and st["cz_std"] == 100.0
    none = ga_search.attractor_statistics(res[2:])
    assert none["fraction_found"] == 0 and np.isnan(none["l_mean"]) and np.isnan(none["cz_std"])


# --------------------------------------------------------------------------- box, cube, surveys
@pytest.fixture(scope="module")
def ci():
    return load_profile("ci")


@pytest.fixture(scope="module")
def ci_box(ci):
    return lu.local_universe_box(ci)


def test_local_universe_box_places_the_structures(ci, ci_box):
    from zoa_lib.universe.fields import cube_targets
    from zoa_lib.universe.simulation import ParentBox

    box = ci_box
    assert isinstance(box, ParentBox) and box.box_index == -1 and box.delta_lin.dtype == np.float32
    cf = box.constraints
    np.testing.assert_allclose(cf.achieved, cf.targets, rtol=1e-6)
    assert np.abs(cf.gradient).max() < 1e-6 * cf.sigma_s / cf.smoothing
    heights = cf.targets / cf.sigma_s
    names = [s.name for s in box.structures]
    assert heights[names.index(structures_module.GREAT_ATTRACTOR)] == heights.max() and heights[names.index("Local Void")] < 0
    # reverse Zel'dovich: constraint point + its displacement lands on the literature position
    x = np.array([s.sg for s in box.structures]) + box.size / 2
    assert np.linalg.norm(cf.positions + cf.displacement - x, axis=1).max() < 1.0
    assert np.linalg.norm(cf.positions - x, axis=1).max() > 2.0       # ... which needed moving
    cube = lu.local_universe_cube(ci, box)
    assert np.array_equal(cube.rotation, np.eye(3)) and np.allclose(cube.observer, box.size / 2)
    assert np.abs(cube.positions).max() <= ci.box.size / 2
    # the evolved, smoothed density: overdense at the GA, underdense in the Local Void
    delta = cube_targets(ci, box, cube).delta
    n, h = ci.box.grid, ci.box.size / ci.box.grid

    def at(s):
        return delta[tuple(np.floor((np.array(s.sg) + ci.box.size / 2) / h).astype(int))]
    assert at(structures_module.great_attractor(box.structures)) > 0.5
    assert at(box.structures[names.index("Local Void")]) < 0


def test_local_universe_box_is_deterministic(ci):
    small = load_profile("ci", {"simulation.parent_mesh": 32})
    a, b = lu.local_universe_box(small, 1), lu.local_universe_box(small, 1)
    assert a.delta_lin.tobytes() == b.delta_lin.tobytes() and a.positions.tobytes() == b.positions.tobytes()
    c = lu.local_universe_box(small, 2)
    assert c.box_index == -3 and not np.array_equal(a.delta_lin, c.delta_lin)


def test_survey_realizations(ci, ci_box):
    from zoa_lib.survey.galaxies import grid_catalog

    cube = lu.local_universe_cube(ci, ci_box)
    surveys = lu.survey_realizations(ci, cube, 2)
    (c0, i0), (c1, i1) = surveys
    assert i0.shape == (ci.box.grid,) * 3 + (2,) and i0.dtype == np.float32
    assert len(c0) != len(c1) or not np.array_equal(c0["SGX"], c1["SGX"])
    for cat, inp in surveys:
        # the training mocks' selection: the sky the catalogue observes (ci copies Cosmicflows-3)
        assert np.all(selection.catalogue_selection(ci).observed(cat["l"], cat["b"]))
        # gridded like the mocks: every galaxy is counted unless its observed position left the cube
        again, outside = grid_catalog(cat, ci.box.size, ci.box.grid, position=ci.survey.grid_position,
                                      error_weighting=ci.survey.error_weighting, return_outside=True)
        assert again.tobytes() == inp.tobytes() and inp[..., 0].sum() + outside == len(cat)
    (c1b, i1b), = lu.survey_realizations(ci, cube, 1, start=1)
    assert c1b.tobytes() == c1.tobytes() and i1b.tobytes() == i1.tobytes()
    assert c1["sample"][0] == 1


def test_write_local_universe_cf4_is_labelled_a_mock_and_reads_back(ci, ci_box, tmp_path):
    from zoa_lib.survey.catalogs import read_catalog

    cat, _ = lu.survey_realizations(ci, lu.local_universe_cube(ci, ci_box), 1)[0]
    path = catalog_files.write_local_universe_cf4(tmp_path / "lu.csv", cat, note="profile ci, realization 0")
    head = path.read_text().splitlines()[:8]
    assert head[0].startswith("#") and "MOCK" in head[0] and "NOT COSMICFLOWS-4" in head[0]
    assert any("profile ci" in line for line in head)
    back, _ = read_catalog(path, h0_catalog=74.6)
    assert len(back) == len(cat)
    np.testing.assert_allclose(back["cz"], cat["cz"], atol=1e-3)
    np.testing.assert_allclose(back["d_obs"], cat["d_obs"], rtol=1e-5)
    np.testing.assert_allclose(np.cos(np.radians(back["l"] - cat["l"])), 1.0, atol=1e-9)


def test_attractor_search_by_density_peak_and_by_convergence():
    n, size = 32, 160.0
    centre = np.array([-42.9, 24.6, -4.1])            # the GA's SG position
    X, Y, Z = _grid(size, n)
    r2 = (X - centre[0]) ** 2 + (Y - centre[1]) ** 2 + (Z - centre[2]) ** 2
    delta = 3.0 * np.exp(-r2 / (2 * 8.0 ** 2))
    env = 30.0 * np.exp(-r2 / (2 * 10.0 ** 2))
    v = -np.stack([(X - centre[0]) * env, (Y - centre[1]) * env, (Z - centre[2]) * env], -1)
    flat = np.zeros_like(delta)
    out = ga_search.attractor_search(np.stack([delta, flat + X / 1e3]), np.stack([v, v]), size, centre + 4.0, 15.0)
    dens, conv = out["density"], out["convergence"]
    assert [r["found"] for r in dens["results"]] == [True, False]   # a slope has no peak
    assert dens["n_found"] == 1 and dens["fraction_found"] == 0.5
    assert np.linalg.norm(np.array(dens["results"][0]["sg"]) - centre) < 0.2 * size / n
    assert conv["n_found"] == 2 and np.linalg.norm(np.array(conv["results"][0]["sg"]) - centre) < size / n
    # one realization found: zero scatter, never a negative zero printed as "± -0.0"
    assert np.copysign(1.0, dens["l_std"]) == 1.0 and dens["l_std"] == 0.0
    assert set(ga_search.attractor_search(delta[None], None, size, centre, 15.0)) == {"density"}


def test_reconstruct_surveys_runs_the_baselines_on_every_survey(ci, ci_box):

    cube = lu.local_universe_cube(ci, ci_box)
    inputs = np.stack([inp for _, inp in lu.survey_realizations(ci, cube, 2)])
    rec = ga_search.reconstruct_surveys(ci, inputs, "potent")
    n = ci.box.grid
    assert rec["delta"].shape == (2, n, n, n) and rec["velocity"].shape == (2, n, n, n, 3)
    one = reconstruction.reconstruct("potent", inputs[1], ci)
    np.testing.assert_array_equal(rec["delta"][1], one["delta"])
    np.testing.assert_array_equal(rec["velocity"][1], one["velocity"])
    with pytest.raises(structures_module.LocalUniverseError, match="unknown method"):
        ga_search.reconstruct_surveys(ci, inputs, "kriging")
    with pytest.raises(structures_module.LocalUniverseError, match=r"shape \(n, 16, 16, 16, 2\)"):
        ga_search.reconstruct_surveys(ci, inputs[0], "potent")


def test_search_methods_and_attractor_table(ci, zoa_data):
    # no training shards in an empty data folder: the calibrated filter falls back to the plain one
    assert ga_search.search_methods(ci) == ["vnet", "wiener"]
    assert ga_search.search_methods(ci, "potent") == ["vnet", "potent"] and ga_search.search_methods(ci, None) == ["vnet"]
    with pytest.raises(structures_module.LocalUniverseError, match="unknown method"):
        ga_search.search_methods(ci, "kriging")
    hit = {"l": 308.0, "b": 29.0, "cz": 5000.0, "found": True}
    miss = {"l": 0.0, "b": 0.0, "cz": 0.0, "found": False}
    one = {"density": {"results": [hit], **ga_search.attractor_statistics([hit])}}
    two = {"convergence": {"results": [hit, miss], **ga_search.attractor_statistics([hit, miss])}}
    none = {"density": {"results": [miss], **ga_search.attractor_statistics([miss])}}
    rows = ga_search.attractor_table({"truth": one, "vnet": two, "potent": none})
    assert rows[0] == {"method": "truth", "located by": "density peak", "found": "1 / 1 (100%)",
                       "l [deg]": "308.0", "b [deg]": "29.0", "cz [km/s]": "5000"}
    assert rows[1]["method"] == "V-Net" and rows[1]["located by"] == "flow convergence"
    assert rows[1]["found"] == "1 / 2 (50%)" and rows[1]["l [deg]"] == "308.0 ± 0.0"
    assert rows[2]["method"] == "POTENT" and rows[2]["cz [km/s]"] == "—"


def _structure(name, sg, kind="attractor", b=0.0):
    return structures_module.Structure(name, 0.0, b, 100.0 * float(np.linalg.norm(sg)), kind, "", tuple(float(x) for x in sg))


def test_structure_probe_finds_a_planted_cluster_and_void_and_not_what_is_absent():
    n, size, R = 32, 160.0, 5.0
    X, Y, Z = _grid(size, n)
    cl, vo, empty = np.array([30.0, -20.0, 2.5]), np.array([-25.0, 35.0, -10.0]), np.array([-40.0, -40.0, 30.0])
    r2 = lambda c: (X - c[0]) ** 2 + (Y - c[1]) ** 2 + (Z - c[2]) ** 2  # noqa: E731
    delta = 4.0 * np.exp(-r2(cl) / (2 * 6.0 ** 2)) - 0.8 * np.exp(-r2(vo) / (2 * 10.0 ** 2)) + X / 1e3
    structures = [_structure("cluster", cl + 3.0), _structure("void", vo - 3.0, "void", b=5.0),
                  _structure("nothing", empty, b=30.0)]
    probe = ga_search.structure_probe(delta, size, structures, 12.0, R)
    cluster, void, nothing = probe
    assert cluster["found"] and np.linalg.norm(np.subtract(cluster["sg"], cl)) < size / n
    assert void["found"] and np.linalg.norm(np.subtract(void["sg"], vo)) < size / n and void["extremum"] < 0
    assert not nothing["found"]                      # a slope: no extremum within the radius
    # δ_s is the Gaussian-smoothed field in the structure's voxel (independent numpy FFT)
    ds = _smooth_numpy(delta, size, R)
    i = tuple(int(v) for v in np.floor((np.asarray(structures[0].sg) + size / 2) / (size / n)))
    assert cluster["delta_s"] == pytest.approx(ds[i], rel=1e-6)
    # the recovery table: a reconstruction that halves the field recovers half of δ_s
    rows = ga_search.structure_recovery(probe, {"half": [ga_search.structure_probe(0.5 * delta, size, structures, 12.0, R)] * 2},
                                 zoa_b=10.0)
    by = {r["structure"]: r for r in rows}
    assert by["cluster"]["delta_mean"] == pytest.approx(0.5 * by["cluster"]["delta_true"], rel=1e-3)
    assert by["cluster"]["delta_std"] == 0.0 and by["cluster"]["found_fraction"] == 1.0
    assert by["cluster"]["offset_mean"] < 0.5 * size / n
    assert by["void"]["in_zoa"] and by["cluster"]["in_zoa"] and not by["nothing"]["in_zoa"]
    assert np.isnan(by["nothing"]["offset_mean"])
    assert list(structures_module.in_zoa(structures, 4.0)) == [True, False, False]
    summary = ga_search.recovery_summary(rows, "half", inside_zoa=True)           # clusters only by default
    assert summary["n"] == 1 and summary["found"] == 1.0
    assert summary["ratio"] == pytest.approx(0.5, rel=1e-3)
    assert ga_search.recovery_summary(rows, "half", inside_zoa=True, kind=None)["n"] == 2
    assert ga_search.recovery_summary(rows, "half", inside_zoa=True, kind="void")["n"] == 1
    assert ga_search.recovery_summary(rows, "half", inside_zoa=False)["n"] == 1
    assert ga_search.recovery_summary(rows, "other", inside_zoa=True)["n"] == 0


def test_the_shipped_structures_include_ones_the_zoa_hides():
    structures = structures_module.known_structures()
    hidden = [s for s, h in zip(structures, structures_module.in_zoa(structures, 10.0)) if h]
    assert any("Norma" in s.name for s in hidden) and any(abs(s.b) < 1.0 for s in hidden)


def test_search_realizations_streams_in_batches_with_the_results_of_one_stack(ci, ci_box):
    cube = lu.local_universe_cube(ci, ci_box)
    one = ga_search.search_realizations(ci, cube, ["potent"], 3, batch=3)
    streamed = ga_search.search_realizations(ci, cube, ["potent"], 3, batch=2)
    assert streamed.n == 3 and streamed.methods == ["potent"]
    for how in ("density", "convergence"):
        assert streamed.search["potent"][how]["results"] == one.search["potent"][how]["results"]
    assert streamed.probes == one.probes and len(streamed.probes["potent"]) == 3
    # the same as the whole stack reconstructed at once and searched by attractor_search
    inputs = np.stack([inp for _, inp in lu.survey_realizations(ci, cube, 3)])
    rec = ga_search.reconstruct_surveys(ci, inputs, "potent")
    ga = structures_module.great_attractor()
    full = ga_search.attractor_search(rec["delta"], rec["velocity"], ci.box.size, ga.sg, ci.local_universe.ga_match_radius)
    assert full["density"]["results"] == streamed.search["potent"]["density"]["results"]
    np.testing.assert_array_equal(streamed.first["potent"]["delta"], rec["delta"][0])
    with pytest.raises(structures_module.LocalUniverseError, match="batch"):
        ga_search.search_realizations(ci, cube, ["potent"], 3, batch=0)


def test_wiener_joint_is_a_search_baseline(ci, zoa_data):
    """The joint Wiener filter as the GA search's classical baseline: accepted by search_methods (no
    fallback: it needs training shards for its counts model) and run by reconstruct_surveys with the
    calibration and the counts model of the training mocks, as zoa reconstruct runs it."""
    import h5py
    from test_reconstruct import synthetic_training_mocks

    from zoa_lib.analysis import reconstruct as rc

    assert "wiener_joint" in registry.SEARCH_METHODS and registry.SEARCH_LABELS["wiener_joint"].startswith("joint Wiener filter")
    assert ga_search.search_methods(ci, "wiener_joint") == ["vnet", "wiener_joint"]
    with pytest.raises(structures_module.LocalUniverseError, match="known: wiener, wiener_cal, wiener_joint, potent"):
        ga_search.search_methods(ci, "kriging")
    shards = synthetic_training_mocks(ci)
    rc._COUNTS.clear()
    with h5py.File(shards["test"][0], "r") as f:
        inputs = f["inputs"][:2]
    rec = ga_search.reconstruct_surveys(ci, inputs, "wiener_joint")
    bias, counts = calibration.calibration(ci), rc.counts_model(ci)
    for i in range(2):
        want = reconstruction.reconstruct("wiener_joint", inputs[i], ci, bias=bias, counts=counts)
        np.testing.assert_allclose(rec["delta"][i], want["delta"], rtol=1e-4, atol=1e-5)
        np.testing.assert_allclose(rec["velocity"][i], want["velocity"], rtol=1e-4,
                                   atol=1e-4 * np.abs(want["velocity"]).max())
