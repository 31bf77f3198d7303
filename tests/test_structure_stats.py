"""Tests of zoa_lib.analysis.structure_stats (clusters and voids of each mock, recovered inside and
outside the ZOA) and its figure, on synthetic fields of Gaussian blobs at known voxels.

Geometry: N = 32, L = 64 Mpc/h (Δ = 2 Mpc/h), survey r ≤ 28 Mpc/h, ZOA |b| < 10°. Blob
positions are chosen on the sky in Galactic (l, b, d) and snapped to voxel centres; their
latitude is then checked independently with astropy (zoa_lib.survey.sky.sg_to_galactic)."""
from __future__ import annotations

import io
import json

import matplotlib

matplotlib.use("Agg")

import numpy as np
import pytest
from matplotlib.figure import Figure

from zoa_lib.analysis import metrics
from zoa_lib.analysis import structure_stats as ss
from zoa_lib.book.viz import structure_stats
from zoa_lib.survey.sky import galactic_to_sg, sg_to_galactic
from zoa_lib.universe.grid import voxel_centres

N, L, R_MAX, ZOA_B = 32, 64.0, 28.0, 10.0
DX = L / N


def voxel_at(l, b, d):
    x = np.array(galactic_to_sg(l, b, d), float)
    return tuple(int(i) for i in np.floor((x + L / 2) / DX))


def blob_field(blobs, sigma=1.5):
    """Sum of Gaussians a · exp(−|i − c|² / 2σ²) (σ in voxels) centred on voxel centres."""
    i = np.arange(N, dtype=float)
    I, J, K = np.meshgrid(i, i, i, indexing="ij")
    f = np.zeros((N, N, N))
    for c, a, *s in blobs:
        sg = s[0] if s else sigma
        f += a * np.exp(-((I - c[0]) ** 2 + (J - c[1]) ** 2 + (K - c[2]) ** 2) / (2 * sg ** 2))
    return f


# Clusters and voids: name → (voxel, amplitude, expected in ZOA)
SKY = {"A": ((30.0, 0.0, 20.0), 3.0, True), "B": ((200.0, 2.0, 18.0), 2.0, True),
       "C": ((100.0, 50.0, 20.0), 2.5, False), "D": ((300.0, -45.0, 16.0), 2.0, False),
       "V1": ((120.0, -3.0, 20.0), -1.0, True), "V2": ((250.0, 60.0, 20.0), -0.8, False)}
VOX = {k: voxel_at(*lbd) for k, (lbd, _, _) in SKY.items()}
AMP = {k: a for k, (_, a, _) in SKY.items()}
ZOA = {k: z for k, (_, _, z) in SKY.items()}
CLUSTERS, VOIDS = ("A", "B", "C", "D"), ("V1", "V2")
#: a strong cluster just outside the survey sphere (d = 31 Mpc/h > r_max): its slope reaches into
#: the sphere above the cut, but it is never a structure
OUTSIDE = voxel_at(45.0, 35.0, 31.0)


def truth_field(skip=(), shift=None, scale=1.0):
    blobs = []
    for k in CLUSTERS + VOIDS:
        if k in skip:
            continue
        c = VOX[k]
        if shift and k == shift[0]:
            c = tuple(np.add(c, shift[1]))
        blobs.append((c, scale * AMP[k]))
    blobs.append((OUTSIDE, 5.0))
    return blob_field(blobs)


TRUTH = truth_field()


def test_geometry_of_the_blobs_is_what_the_test_assumes():
    x = voxel_centres(L, N)
    for k, v in VOX.items():
        pos = x[list(v)]
        _, b, d = sg_to_galactic(*pos)
        assert d <= R_MAX - 2 * DX
        assert (abs(float(b)) < ZOA_B) == ZOA[k], (k, float(b))
    assert np.linalg.norm(x[list(OUTSIDE)]) > R_MAX + DX


def test_find_structures_finds_the_blobs_at_their_voxels():
    cl = ss.find_structures(TRUTH, L, ZOA_B, R_MAX, "cluster")
    vo = ss.find_structures(TRUTH, L, ZOA_B, R_MAX, "void")
    assert sorted(map(tuple, cl.voxel)) == sorted(VOX[k] for k in CLUSTERS)
    assert sorted(map(tuple, vo.voxel)) == sorted(VOX[k] for k in VOIDS)
    for st, names in ((cl, CLUSTERS), (vo, VOIDS)):
        got = {tuple(v): (val, z, d) for v, val, z, d in zip(st.voxel, st.value, st.in_zoa, st.distance)}
        for k in names:
            val, z, d = got[VOX[k]]
            assert val == pytest.approx(TRUTH[VOX[k]])
            assert np.sign(val) == np.sign(AMP[k])
            assert bool(z) == ZOA[k]
            assert d == pytest.approx(np.linalg.norm(voxel_centres(L, N)[list(VOX[k])]))
    # highest |peak| first; the cut lies between the blobs' cores and the background
    assert list(cl.value) == sorted(cl.value, reverse=True)
    assert list(vo.value) == sorted(vo.value)
    assert 0 < cl.threshold < min(AMP[k] for k in CLUSTERS)
    assert max(AMP[k] for k in VOIDS) < vo.threshold < 0


def test_blob_outside_the_survey_sphere_is_ignored():
    cl = ss.find_structures(TRUTH, L, ZOA_B, R_MAX, "cluster")
    assert tuple(OUTSIDE) not in map(tuple, cl.voxel)
    assert np.all(cl.distance <= R_MAX)
    # with a sphere large enough to hold it, the same blob is found (the highest)
    big = ss.find_structures(TRUTH, L, ZOA_B, 0.5 * L * np.sqrt(3), "cluster")
    assert tuple(big.voxel[0]) == OUTSIDE


def test_nearby_peaks_merge_keeping_the_higher():
    c = (16, 16, 20)
    # two narrow peaks two voxels apart: distinct local maxima, one structure at merge 2, two at merge 1
    f = blob_field([(c, 2.0, 0.7), ((c[0] + 2, c[1], c[2]), 1.8, 0.7), ((16, 24, 16), 1.5, 0.7)])
    assert f[c[0] + 1, c[1], c[2]] < 1.8  # the saddle between them is lower than both peaks
    two = ss.find_structures(f, L, ZOA_B, R_MAX, "cluster", merge_voxels=1)
    one = ss.find_structures(f, L, ZOA_B, R_MAX, "cluster", merge_voxels=2)
    assert {tuple(v) for v in two.voxel} >= {c, (c[0] + 2, c[1], c[2])}
    assert c in {tuple(v) for v in one.voxel}
    assert (c[0] + 2, c[1], c[2]) not in {tuple(v) for v in one.voxel}
    assert len(one) == len(two) - 1
    # two equal peaks one voxel apart (a tie): one structure, the first voxel in C order
    g = blob_field([(c, 2.0, 0.5), ((c[0] + 1, c[1], c[2]), 2.0, 0.5)])
    tie = ss.find_structures(g, L, ZOA_B, R_MAX, "cluster")
    assert [tuple(v) for v in tie.voxel] == [c]


def test_constant_field_has_no_structure():
    st = ss.find_structures(np.full((N, N, N), 0.3), L, ZOA_B, R_MAX, "cluster")
    assert len(st) == 0 and st.voxel.shape == (0, 3)


def _summary(pred, truth=TRUTH, **kw):
    return ss.mock_summary(pred, truth, L, ZOA_B, R_MAX, **kw)


@pytest.mark.parametrize("scale", [1.0, 0.5])
def test_scaled_prediction_fraction_is_the_scale_and_everything_is_detected(scale):
    s = _summary(scale * TRUTH)
    for kind in ss.KINDS:
        for region in ss.REGIONS:
            key = f"{kind}_{region}"
            assert s[f"{key}_fraction"] == pytest.approx(scale)
            assert s[f"{key}_detection"] == 1.0
            assert s[f"{key}_offset"] == 0.0
            assert s[f"{key}_offset_mean"] == 0.0
    assert (s["cluster_zoa_n"], s["cluster_outside_zoa_n"], s["cluster_survey_n"]) == (2, 2, 4)
    assert (s["void_zoa_n"], s["void_outside_zoa_n"], s["void_survey_n"]) == (1, 1, 2)


def test_own_threshold_a_shifted_zero_point_still_detects():
    s = _summary(TRUTH + 10.0)
    assert s["cluster_survey_detection"] == 1.0 and s["void_survey_detection"] == 1.0


def test_shifted_blob_has_an_offset_of_one_voxel():
    pred = truth_field(shift=("C", (1, 0, 0)))
    st = ss.find_structures(TRUTH, L, ZOA_B, R_MAX, "cluster")
    sc = ss.score_structures(pred, st)
    assert sc["match_radius_mpc"] == 2 * DX
    for v, off, det, fr in zip(st.voxel, sc["offset"], sc["detected"], sc["fraction"]):
        assert det
        assert off == pytest.approx(DX if tuple(v) == VOX["C"] else 0.0)
        assert fr == pytest.approx(1.0)  # the shifted peak lies inside the match radius
    s = _summary(pred)
    assert s["cluster_outside_zoa_offset_mean"] == pytest.approx(DX / 2)  # C: Δ, D: 0
    assert s["cluster_zoa_offset_mean"] == 0.0
    # shifted by three voxels, beyond the 2-voxel match radius: missed
    far = _summary(truth_field(shift=("C", (3, 0, 0))))
    assert far["cluster_outside_zoa_detection"] == 0.5


def test_missing_blob_lowers_detection_as_counted_by_hand():
    s = _summary(truth_field(skip=("A",)))
    assert s["cluster_zoa_detection"] == 0.5  # A missed, B found
    assert s["cluster_outside_zoa_detection"] == 1.0
    assert s["cluster_survey_detection"] == 0.75
    assert s["cluster_zoa_n_detected"] == 1
    # A's recovered fraction is the tail of the other blobs there: ~0
    assert s["cluster_zoa_fraction"] == pytest.approx(0.5, abs=0.01)
    assert s["void_survey_detection"] == 1.0


def test_constant_and_noise_predictions_detect_little():
    s = _summary(np.zeros((N, N, N)))
    for kind in ss.KINDS:
        assert s[f"{kind}_survey_detection"] == 0.0
        assert s[f"{kind}_survey_fraction"] == 0.0
        assert np.isnan(s[f"{kind}_survey_offset"])
    rng = np.random.default_rng(3)
    det = [_summary(rng.normal(size=(N, N, N)))["cluster_survey_detection"] for _ in range(6)]
    det += [_summary(rng.normal(size=(N, N, N)))["void_survey_detection"] for _ in range(6)]
    assert np.mean(det) < 0.4


def test_region_without_structures_is_nan():
    only_out = blob_field([(VOX["C"], 2.5), (VOX["D"], 2.0), (VOX["V2"], -0.8)])
    s = _summary(only_out, only_out)
    for stat in ("fraction", "detection", "offset", "offset_mean"):
        assert np.isnan(s[f"cluster_zoa_{stat}"])
        assert np.isnan(s[f"void_zoa_{stat}"])
    assert s["cluster_zoa_n"] == 0 and s["cluster_outside_zoa_n"] == 2
    assert s["cluster_outside_zoa_detection"] == 1.0


def _stack_stats(**kw):
    truth = np.stack([TRUTH, TRUTH, blob_field([(VOX["C"], 2.5), (VOX["V2"], -0.8)])])
    pred = np.stack([TRUTH, truth_field(skip=("A",)), 0.5 * truth[2]]).astype(np.float32)
    return truth, pred, ss.structure_statistics(pred, truth, L, ZOA_B, R_MAX, **kw)


def test_structure_statistics_per_mock_mean_and_json():
    truth, pred, st = _stack_stats()
    pm = st["per_mock"]
    assert pm["cluster_zoa_detection"] == [1.0, 0.5, None]
    assert pm["cluster_zoa_n"] == [2, 2, 0]
    assert pm["cluster_outside_zoa_fraction"] == pytest.approx([1.0, 1.0, 0.5])
    assert st["mean"]["cluster_zoa_detection"] == pytest.approx(0.75)
    assert st["mean"]["cluster_outside_zoa_fraction"] == pytest.approx(2.5 / 3)
    assert st["pooled"]["cluster_zoa_detection"] == pytest.approx(3 / 4)
    assert st["pooled"]["cluster_survey_n"] == 4 + 4 + 1
    cols = st["structures"]
    n = len(cols["mock"])
    assert n == 4 + 2 + 4 + 2 + 1 + 1 and all(len(v) == n for v in cols.values())
    assert sorted(set(cols["mock"])) == [0, 1, 2]
    assert st["settings"]["match_radius_mpc"] == 2 * DX and st["settings"]["merge_mpc"] == 2 * DX
    json.dumps(st, allow_nan=False)
    # per-mock values feed the paired bootstrap over parent boxes (None mocks left out)
    _, _, other = _stack_stats(match_radius=0.0)
    bs = metrics.paired_bootstrap(pm["cluster_survey_fraction"], other["per_mock"]["cluster_survey_fraction"],
                                  [0, 1, 2])
    assert bs["n_mocks"] == 3


def test_precomputed_true_structures_give_the_same_result():
    truth, pred, st = _stack_stats()
    ts = ss.find_true_structures(truth, L, ZOA_B, R_MAX)
    again = ss.structure_statistics(pred, None, L, ZOA_B, R_MAX, true_structures=ts)
    assert again == st
    with pytest.raises(ss.StructureStatsError):
        ss.structure_statistics(pred, None, L, ZOA_B, R_MAX, true_structures=ts, quantile=0.02)
    with pytest.raises(ss.StructureStatsError):
        ss.structure_statistics(pred, None, L, ZOA_B, R_MAX, true_structures=ts[:2])
    with pytest.raises(ss.StructureStatsError):
        ss.structure_statistics(pred[:, :16, :16, :16], truth[:, :16, :16, :16], L, ZOA_B, R_MAX,
                                true_structures=None, quantile=1.5)


def test_summary_rows():
    _, _, st = _stack_stats()
    rows = ss.summary_rows({"m": st}, {"m": "Method"})
    assert len(rows) == len(ss.KINDS) * len(ss.REGIONS)
    r = next(r for r in rows if r["kind"] == "cluster" and r["region"] == "zoa")
    assert r["label"] == "Method" and r["detection"] == pytest.approx(0.75)
    assert r["n_structures"] == 4 and r["n_mocks"] == 2


def test_figure_structure_statistics():
    from zoa_lib.book.viz.structure_stats import figure_structure_statistics

    _, _, st = _stack_stats()
    _, _, half = _stack_stats(match_radius=1.0)
    empty = ss.structure_statistics(np.zeros((1, N, N, N)), np.zeros((1, N, N, N)), L, ZOA_B, R_MAX)
    fig = figure_structure_statistics({"a": st, "b": half, "c": empty}, labels={"a": "A"})
    assert isinstance(fig, Figure)
    assert len(fig.axes) == 4
    assert fig.axes[0].get_legend() is not None
    fig.savefig(io.BytesIO(), format="png")
    one = figure_structure_statistics({"a": st}, kinds=("cluster",), regions=("zoa", "outside_zoa", "survey"))
    assert len(one.axes) == 3
    assert structure_stats.figure_structure_statistics is figure_structure_statistics
