"""Structures as a statistic: clusters and voids of every test mock, recovered inside and
outside the Zone of Avoidance.

One constrained universe (Norma, the Great Attractor: :mod:`zoa_lib.analysis.ga_search`) is one draw.
This module turns "how much of a structure's smoothed δ does a method recover" into a
per-mock statistic over held-out mocks, so that methods can be compared mock by mock and
bootstrapped over parent boxes (:func:`zoa_lib.analysis.metrics.paired_bootstrap`, which ignores
NaN/None mocks). The structures here are those *of each mock's true field*, found
blindly; the literature table of :mod:`zoa_lib.analysis.structures` is a different thing.

Geometry (docs/DESIGN.md): a cube of N³ voxels of side L (Mpc/h), voxel spacing Δ = L/N,
voxel i centred at x_i = −L/2 + (i + ½) Δ, the observer at the centre; the regions are those
of :func:`zoa_lib.analysis.metrics.regions`: ``survey`` (voxel centre at r ≤ r_max), ``zoa`` (survey
voxels whose centre has Galactic |b| < zoa_b deg) and ``outside_zoa`` (the other survey
voxels). δ is dimensionless (the smoothed density contrast of the targets).

Definitions
-----------
Structures of a field (:func:`find_structures`), ``kind`` = ``"cluster"`` on s = δ, ``"void"``
on s = −δ:

* candidates: voxels of the survey sphere with s **strictly above** the (1 − ``quantile``)
  quantile of s over the survey voxels (default: the top 1 %; "strictly", so a constant
  field has none) that are local maxima of s over their 3×3×3 neighbourhood in the *whole*
  cube (``scipy.ndimage.maximum_filter``; a survey-edge voxel on the slope of a structure
  outside r_max has a higher neighbour and is no structure);
* merging: candidates sorted by s, highest first (ties by voxel order); each kept candidate
  removes every lower one within ``merge_voxels`` voxels (Euclidean distance between voxel
  centres ≤ merge_voxels · Δ Mpc/h; default 2 voxels) — greedy non-maximum suppression with a
  KD-tree over the candidates, never a loop over voxels. Two peaks that close are one structure
  on the grid, and the higher one is kept (an exact tie keeps the first voxel in C order);
* each structure: its voxel index, position (SGX, SGY, SGZ, Mpc/h, the voxel centre),
  distance from the observer (Mpc/h), peak value ``value`` (δ itself, so negative for a void),
  and ``in_zoa`` (its voxel is in the ``zoa`` region).

Scoring one method against one mock's true structures (:func:`score_structures`):

* the method's own structures are found by the *same* finder on its own δ with its *own*
  threshold (its own top ``quantile`` of the survey sphere, same merging), so a method with the
  right shape and the wrong amplitude still detects;
* **detected**: some predicted structure of the same kind lies within ``match_radius`` voxels
  of the true peak (Euclidean, ≤ match_radius · Δ Mpc/h; default 2 voxels). Matching is
  nearest-neighbour, not one-to-one (true structures are > merge_voxels apart, so a predicted
  peak can serve two only when match_radius > merge_voxels / 2, as with the defaults, rarely);
* **offset** (Mpc/h): distance between the voxel centres of the true peak and of the nearest
  matched predicted extremum (multiples of voxel distances: 0, Δ, √2 Δ, …), NaN when not
  detected;
* **recovered** δ: the maximum of the predicted δ within ``match_radius`` voxels of the true
  peak (the minimum for a void), over the cube's voxels (not restricted to the survey). Chosen
  over the value at the matched extremum, which exists only for detected structures (a mean
  over those alone would hide what a method misses), and over the value in the true peak's
  voxel, which punishes a one-voxel shift of a sharp peak as if the amplitude were missed. It
  is defined for every structure: for a detected one it is the matched extremum's value unless
  a higher slope lies in the ball; for a missed one, whatever the method puts there;
* **recovered fraction** = recovered δ / true peak δ (dimensionless; 1 for a perfect
  prediction, 0.5 for half the amplitude; positive for a void that the method puts in a
  trough; NaN if the true peak δ were exactly 0).

Per-mock summaries (:func:`summarize_scores`, :func:`mock_summary`): for kind in (cluster,
void) and region in (zoa, outside_zoa, survey) — a structure's region is that of its peak
voxel — keys ``<kind>_<region>_<stat>`` with stat

* ``fraction``: mean recovered fraction over the true structures (dimensionless);
* ``detection``: fraction of the true structures detected;
* ``offset``: median offset of the detected ones (Mpc/h); ``offset_mean``: their mean;
* ``n``: number of true structures; ``n_detected``: how many were detected.

``fraction``, ``detection`` and the offsets are NaN where the mock has no structure of that
kind in that region (the offsets also where none was detected); ``n`` is then 0.
:func:`structure_statistics` stacks these over mocks (the unit the caller bootstraps over
parent boxes, pairing methods mock by mock), and pools per-structure records for the figure
(:func:`zoa_lib.book.viz.structure_stats.figure_structure_statistics`).
"""
from __future__ import annotations

import functools
import math
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
from scipy import ndimage
from scipy.spatial import cKDTree

from zoa_lib.analysis import metrics
from zoa_lib.errors import ZoaError
from zoa_lib.universe.grid import check_cube, voxel_centres

#: The kinds of structure and the sign that makes each a maximum.
KINDS = ("cluster", "void")
_SIGN = {"cluster": 1.0, "void": -1.0}
#: The regions a structure is counted in (that of its peak voxel).
REGIONS = ("zoa", "outside_zoa", "survey")
#: The per-mock statistics of each (kind, region).
STATS = ("fraction", "detection", "offset", "offset_mean", "n", "n_detected")
#: Defaults: the top 1 % of the survey voxels, merged within 2 voxels, matched within 2 voxels.
QUANTILE = 0.01
MERGE_VOXELS = 2.0
MATCH_RADIUS = 2.0
_EPS = 1e-9  # distances in voxels are compared with this slack (√ of integers)


class StructureStatsError(ZoaError, ValueError):
    """A field, a setting or precomputed structures that do not fit the statistic."""


# --------------------------------------------------------------------------- helpers
@functools.lru_cache(maxsize=8)
def _regions(n: int, size: float, zoa_b: float, r_max: float) -> dict:
    regs = metrics.regions(n, size, zoa_b, r_max)
    for m in regs.values():
        m.setflags(write=False)
    return regs


@functools.lru_cache(maxsize=8)
def _ball(radius: float) -> np.ndarray:
    """(k, 3) integer voxel offsets with |offset| ≤ radius (voxels), the origin included."""
    r = int(math.floor(radius + _EPS))
    g = np.arange(-r, r + 1)
    off = np.stack(np.meshgrid(g, g, g, indexing="ij"), axis=-1).reshape(-1, 3)
    off = off[np.sum(off ** 2, axis=1) <= radius ** 2 + _EPS]
    off.setflags(write=False)
    return off


def _sign(kind: str) -> float:
    if kind not in _SIGN:
        raise StructureStatsError(f"kind must be one of {KINDS}, got {kind!r}")
    return _SIGN[kind]


def _check_settings(quantile, merge_voxels, match_radius=None):
    if not 0.0 < float(quantile) < 1.0:
        raise StructureStatsError(f"quantile must lie in (0, 1), got {quantile}")
    if not float(merge_voxels) >= 0.0:
        raise StructureStatsError(f"merge_voxels must be >= 0 voxels, got {merge_voxels}")
    if match_radius is not None and not float(match_radius) >= 0.0:
        raise StructureStatsError(f"match_radius must be >= 0 voxels, got {match_radius}")


def _field(a, name) -> np.ndarray:
    d = check_cube(np.asarray(a), name, error=StructureStatsError)
    d = np.asarray(d, dtype=np.float64)
    if not np.all(np.isfinite(d)):
        raise StructureStatsError(f"{name}: the field has non-finite values")
    return d


# --------------------------------------------------------------------------- finding
@dataclass(frozen=True)
class Structures:
    """The structures of one kind of one field (:func:`find_structures`), highest peak of s
    first (s = δ for clusters, −δ for voids).

    voxel : (m, 3) int voxel indices (SGX, SGY, SGZ axes). position : (m, 3) voxel centres,
    Mpc/h. distance : (m,) from the observer, Mpc/h. value : (m,) δ at the peak (negative for
    voids). in_zoa : (m,) bool. threshold : the δ of the quantile cut (a lower bound for
    clusters, an upper bound for voids). The rest are the settings and geometry they were
    found with: grid N, size L (Mpc/h), zoa_b (deg), r_max (Mpc/h), quantile, merge_voxels."""

    kind: str
    voxel: np.ndarray
    position: np.ndarray
    distance: np.ndarray
    value: np.ndarray
    in_zoa: np.ndarray
    threshold: float
    grid: int
    size: float
    zoa_b: float
    r_max: float
    quantile: float
    merge_voxels: float

    def __len__(self) -> int:
        return int(len(self.value))

    @property
    def spacing(self) -> float:
        """Voxel spacing Δ = L/N (Mpc/h)."""
        return self.size / self.grid


def _suppress(idx: np.ndarray, radius: float) -> np.ndarray:
    """Greedy non-maximum suppression of candidates ``idx`` (m, 3) already sorted from the
    highest: a kept one removes every later one within ``radius`` voxels. Loops over the kept
    candidates only."""
    keep = np.ones(len(idx), bool)
    if radius <= 0 or len(idx) < 2:
        return keep
    tree = cKDTree(idx)
    gone = np.zeros(len(idx), bool)
    for i in range(len(idx)):
        if gone[i]:
            keep[i] = False
            continue
        near = np.asarray(tree.query_ball_point(idx[i], radius + _EPS), dtype=int)
        gone[near[near > i]] = True
    return keep


def find_structures(delta_true, size: float, zoa_b: float, r_max: float | None = None, kind: str = "cluster",
                    quantile: float = QUANTILE, merge_voxels: float = MERGE_VOXELS) -> Structures:
    """Clusters (``kind="cluster"``: maxima of δ) or voids (``"void"``: minima) of one field
    (N, N, N) in the survey sphere r ≤ ``r_max`` (Mpc/h; default L/2): local maxima of s = ±δ
    among the survey voxels above the (1 − ``quantile``) quantile of s there, merged within
    ``merge_voxels`` voxels keeping the higher (module docstring). Cube side ``size`` Mpc/h,
    ZOA half-width ``zoa_b`` deg. Returns :class:`Structures`, highest |peak| first."""
    sign = _sign(kind)
    _check_settings(quantile, merge_voxels)
    d = _field(delta_true, f"find_structures: {kind} field")
    n = d.shape[0]
    r_max = 0.5 * float(size) if r_max is None else float(r_max)
    regs = _regions(n, float(size), float(zoa_b), r_max)
    survey = regs["survey"]
    if not survey.any():
        raise StructureStatsError(f"find_structures: the survey sphere r <= {r_max} Mpc/h holds no voxel centre")
    s = d if sign > 0 else -d
    thr = float(np.quantile(s[survey], 1.0 - float(quantile)))
    peak = survey & (s > thr) & (s == ndimage.maximum_filter(s, size=3, mode="nearest"))
    idx = np.argwhere(peak)  # C order, as s[peak]
    val = s[peak]
    order = np.argsort(-val, kind="stable")
    idx, val = idx[order], val[order]
    keep = _suppress(idx, float(merge_voxels))
    idx, val = idx[keep], val[keep]
    x = voxel_centres(float(size), n)
    pos = x[idx] if len(idx) else np.zeros((0, 3))
    return Structures(kind=kind, voxel=idx.astype(int).reshape(-1, 3), position=pos.reshape(-1, 3),
                      distance=np.linalg.norm(pos.reshape(-1, 3), axis=1), value=sign * val,
                      in_zoa=regs["zoa"][tuple(idx.T)] if len(idx) else np.zeros(0, bool),
                      threshold=sign * thr, grid=n, size=float(size), zoa_b=float(zoa_b), r_max=r_max,
                      quantile=float(quantile), merge_voxels=float(merge_voxels))


def find_true_structures(delta_true_stack, size: float, zoa_b: float, r_max: float | None = None, *,
                         quantile: float = QUANTILE, merge_voxels: float = MERGE_VOXELS,
                         kinds=KINDS) -> list[dict]:
    """:func:`find_structures` of every mock of a stack (n, N, N, N) (or one cube) and every
    kind: a list (one per mock) of {kind: Structures}, to compute once and pass to
    :func:`structure_statistics` for every method scored against that truth."""
    t = check_cube(np.asarray(delta_true_stack), "delta_true_stack", stacked=True, error=StructureStatsError)
    return [{k: find_structures(t[i], size, zoa_b, r_max, k, quantile, merge_voxels) for k in kinds}
            for i in range(len(t))]


# --------------------------------------------------------------------------- scoring
def score_structures(delta_pred, structures: Structures, *, match_radius: float = MATCH_RADIUS,
                     pred_structures: Structures | None = None) -> dict:
    """Score one method's δ (N, N, N) on the true ``structures`` of one mock (geometry,
    quantile and merging taken from ``structures``; module docstring for the definitions).
    ``pred_structures``: the method's own structures of that kind, if already found.

    Returns per-structure arrays (length m, true structures' order): ``kind``, ``voxel``
    (m, 3), ``distance`` (Mpc/h), ``in_zoa``, ``true`` (true peak δ), ``recovered`` (predicted
    extreme δ within ``match_radius`` voxels), ``fraction`` (recovered / true), ``detected``
    (bool), ``offset`` (Mpc/h, NaN if not detected), ``matched_value`` (predicted δ at the
    matched extremum, NaN if none), ``matched_voxel`` (m, 3; −1 if none); and the scalars
    ``pred_threshold`` (the method's own δ cut), ``n_pred`` (its structures of this kind),
    ``match_radius`` (voxels) and ``match_radius_mpc`` (Mpc/h)."""
    st = structures
    sign = _sign(st.kind)
    _check_settings(st.quantile, st.merge_voxels, match_radius)
    p = _field(delta_pred, "score_structures: delta_pred")
    n = p.shape[0]
    if n != st.grid:
        raise StructureStatsError(f"score_structures: the prediction has N = {n} but the structures were found "
                                  f"on N = {st.grid}")
    if pred_structures is None:
        pred_structures = find_structures(p, st.size, st.zoa_b, st.r_max, st.kind, st.quantile, st.merge_voxels)
    elif (pred_structures.kind, pred_structures.grid) != (st.kind, st.grid):
        raise StructureStatsError("score_structures: pred_structures are not of the same kind and grid")
    m = len(st)
    dx = st.spacing
    # recovered: the extreme of the prediction within the ball about each true peak
    ball = _ball(float(match_radius))
    pts = st.voxel[:, None, :] + ball[None, :, :]  # (m, k, 3)
    inside = np.all((pts >= 0) & (pts < n), axis=-1)
    pc = np.clip(pts, 0, n - 1)
    vals = np.where(inside, sign * p[pc[..., 0], pc[..., 1], pc[..., 2]], -np.inf)
    recovered = sign * vals.max(axis=1) if m else np.zeros(0)
    with np.errstate(invalid="ignore", divide="ignore"):
        fraction = np.where(st.value != 0, recovered / np.where(st.value != 0, st.value, 1.0), np.nan)
    # detection: the nearest predicted structure of the same kind within match_radius voxels
    detected = np.zeros(m, bool)
    offset = np.full(m, np.nan)
    matched_value = np.full(m, np.nan)
    matched_voxel = np.full((m, 3), -1, int)
    if m and len(pred_structures):
        diff = st.voxel[:, None, :] - pred_structures.voxel[None, :, :]
        dist = np.sqrt(np.sum(diff.astype(float) ** 2, axis=-1))  # (m, m_pred) voxels
        j = np.argmin(dist, axis=1)
        near = dist[np.arange(m), j]
        detected = near <= float(match_radius) + _EPS
        offset = np.where(detected, near * dx, np.nan)
        matched_value = np.where(detected, pred_structures.value[j], np.nan)
        matched_voxel = np.where(detected[:, None], pred_structures.voxel[j], -1)
    return {"kind": st.kind, "voxel": st.voxel, "distance": st.distance, "in_zoa": np.asarray(st.in_zoa, bool),
            "true": st.value, "recovered": recovered, "fraction": fraction, "detected": detected,
            "offset": offset, "matched_value": matched_value, "matched_voxel": matched_voxel,
            "pred_threshold": pred_structures.threshold, "n_pred": len(pred_structures),
            "match_radius": float(match_radius), "match_radius_mpc": float(match_radius) * dx}


# --------------------------------------------------------------------------- summaries
def _nanmean(a) -> float:
    a = np.asarray(a, float)
    a = a[np.isfinite(a)]
    return float(a.mean()) if a.size else float("nan")


def _summary_of(sel_fraction, sel_detected, sel_offset) -> dict:
    n = int(len(sel_detected))
    nd = int(np.sum(sel_detected))
    off = np.asarray(sel_offset, float)[np.asarray(sel_detected, bool)]
    return {"fraction": _nanmean(sel_fraction) if n else float("nan"),
            "detection": nd / n if n else float("nan"),
            "offset": float(np.median(off)) if off.size else float("nan"),
            "offset_mean": float(off.mean()) if off.size else float("nan"),
            "n": n, "n_detected": nd}


def _region_select(in_zoa, region):
    in_zoa = np.asarray(in_zoa, bool)
    return {"zoa": in_zoa, "outside_zoa": ~in_zoa, "survey": np.ones_like(in_zoa)}[region]


def summarize_scores(scores: Mapping[str, dict]) -> dict:
    """The flat per-mock summary (module docstring: ``<kind>_<region>_<stat>``) of
    {kind: :func:`score_structures` result} for one mock."""
    out = {}
    for kind, sc in scores.items():
        for region in REGIONS:
            sel = _region_select(sc["in_zoa"], region)
            s = _summary_of(np.asarray(sc["fraction"])[sel], np.asarray(sc["detected"])[sel],
                            np.asarray(sc["offset"])[sel])
            out.update({f"{kind}_{region}_{k}": v for k, v in s.items()})
    return out


def mock_summary(delta_pred, delta_true, size: float, zoa_b: float, r_max: float | None = None, *,
                 quantile: float = QUANTILE, merge_voxels: float = MERGE_VOXELS,
                 match_radius: float = MATCH_RADIUS, true_structures: Mapping[str, Structures] | None = None,
                 kinds=KINDS) -> dict:
    """The flat per-mock summary of one prediction (N, N, N) against one truth: keys
    ``<kind>_<region>_<stat>`` (e.g. ``cluster_zoa_fraction``, ``void_outside_zoa_detection``,
    ``cluster_survey_offset`` in Mpc/h, ``cluster_zoa_n``), NaN where the mock has no
    structure of that kind in that region. ``true_structures``: {kind: Structures} found
    already (then ``delta_true`` may be None)."""
    ts = _true_for_mock(delta_true, true_structures, size, zoa_b, r_max, quantile, merge_voxels, kinds)
    return summarize_scores({k: score_structures(delta_pred, ts[k], match_radius=match_radius) for k in kinds})


def _true_for_mock(delta_true, true_structures, size, zoa_b, r_max, quantile, merge_voxels, kinds):
    if true_structures is None:
        if delta_true is None:
            raise StructureStatsError("give delta_true or true_structures")
        return {k: find_structures(delta_true, size, zoa_b, r_max, k, quantile, merge_voxels) for k in kinds}
    r_max = 0.5 * float(size) if r_max is None else float(r_max)
    for k in kinds:
        st = true_structures.get(k) if isinstance(true_structures, Mapping) else None
        if not isinstance(st, Structures) or st.kind != k:
            raise StructureStatsError(f"true_structures has no {k!r} Structures")
        want = (float(size), float(zoa_b), r_max, float(quantile), float(merge_voxels))
        got = (st.size, st.zoa_b, st.r_max, st.quantile, st.merge_voxels)
        if not np.allclose(want, got, rtol=1e-12, atol=0):
            raise StructureStatsError(f"true_structures were found with (size, zoa_b, r_max, quantile, "
                                      f"merge_voxels) = {got}, not {want}")
    return true_structures


def structure_statistics(delta_pred_stack, delta_true_stack=None, size: float | None = None,
                         zoa_b: float | None = None, r_max: float | None = None, *,
                         quantile: float = QUANTILE, merge_voxels: float = MERGE_VOXELS,
                         match_radius: float = MATCH_RADIUS, true_structures: list | None = None,
                         kinds=KINDS) -> dict:
    """Structures as a statistic of one method over a stack of mocks, as a JSON-able dict.

    delta_pred_stack, delta_true_stack : (n, N, N, N) (or one cube) δ, mock i of one against
    mock i of the other. size : L (Mpc/h). zoa_b : deg. r_max : survey radius (Mpc/h, default
    L/2). ``true_structures``: :func:`find_true_structures` of the truth (one {kind:
    Structures} per mock, found with these settings), to find them once for every method;
    then ``delta_true_stack`` may be None.

    Returns {"per_mock": {key: n values, None where NaN}, "mean": {key: mean over the mocks
    with a value (None if none)}, "pooled": {key: the same statistics over every structure of
    every mock together}, "structures": per-structure records pooled over the mocks, as
    columns of equal length (``mock`` index in the stack, ``kind``, ``in_zoa``, ``distance``
    (Mpc/h), ``true`` and ``recovered`` δ, ``fraction``, ``detected``, ``offset`` (Mpc/h)),
    "settings": {quantile, merge_voxels, match_radius (voxels), merge_mpc / match_radius_mpc /
    spacing / size / r_max (Mpc/h), zoa_b (deg), grid, n_mocks, kinds, regions}}.
    Keys are ``<kind>_<region>_<stat>`` (module docstring)."""
    if size is None or zoa_b is None:
        raise StructureStatsError("structure_statistics: size and zoa_b are required")
    _check_settings(quantile, merge_voxels, match_radius)
    p = check_cube(np.asarray(delta_pred_stack), "delta_pred_stack", stacked=True, error=StructureStatsError)
    n_mocks = len(p)
    t = None
    if delta_true_stack is not None:
        t = check_cube(np.asarray(delta_true_stack), "delta_true_stack", stacked=True, error=StructureStatsError)
        if t.shape != p.shape:
            raise StructureStatsError(f"prediction stack has shape {p.shape} but truth has shape {t.shape}")
    if true_structures is not None and len(true_structures) != n_mocks:
        raise StructureStatsError(f"true_structures has {len(true_structures)} mocks, the prediction {n_mocks}")
    if true_structures is None and t is None:
        raise StructureStatsError("structure_statistics: give delta_true_stack or true_structures")
    keys = [f"{k}_{r}_{s}" for k in kinds for r in REGIONS for s in STATS]
    per_mock = {k: [] for k in keys}
    cols = {c: [] for c in ("mock", "kind", "in_zoa", "distance", "true", "recovered", "fraction", "detected",
                            "offset")}
    for i in range(n_mocks):
        ts = _true_for_mock(None if t is None else t[i], None if true_structures is None else true_structures[i],
                            size, zoa_b, r_max, quantile, merge_voxels, kinds)
        if any(ts[k].grid != p.shape[1] for k in kinds):
            raise StructureStatsError(f"true_structures of mock {i} were found on another grid")
        scores = {k: score_structures(p[i], ts[k], match_radius=match_radius) for k in kinds}
        summ = summarize_scores(scores)
        for k in keys:
            per_mock[k].append(summ[k])
        for k, sc in scores.items():
            m = len(sc["true"])
            cols["mock"].extend([i] * m)
            cols["kind"].extend([k] * m)
            for c in ("in_zoa", "distance", "true", "recovered", "fraction", "detected", "offset"):
                cols[c].extend(np.asarray(sc[c]).tolist())
    mean = {k: _nanmean(v) for k, v in per_mock.items()}
    pooled = {}
    kind_arr = np.asarray(cols["kind"], dtype=object)
    zoa_arr = np.asarray(cols["in_zoa"], bool).reshape(-1)
    for k in kinds:
        for r in REGIONS:
            sel = (kind_arr == k) & _region_select(zoa_arr, r)
            s = _summary_of(np.asarray(cols["fraction"], float)[sel], np.asarray(cols["detected"], bool)[sel],
                            np.asarray(cols["offset"], float)[sel])
            pooled.update({f"{k}_{r}_{x}": v for x, v in s.items()})
    L = float(size)
    N = int(p.shape[1])
    settings = {"quantile": float(quantile), "merge_voxels": float(merge_voxels), "match_radius": float(match_radius),
                "spacing": L / N, "merge_mpc": float(merge_voxels) * L / N,
                "match_radius_mpc": float(match_radius) * L / N, "size": L, "grid": N, "zoa_b": float(zoa_b),
                "r_max": 0.5 * L if r_max is None else float(r_max), "n_mocks": n_mocks, "kinds": list(kinds),
                "regions": list(REGIONS), "units": "δ dimensionless; distance, offset, spacing, *_mpc, size, r_max "
                                                   "in Mpc/h; zoa_b in deg; merge_voxels, match_radius in voxels"}
    return metrics.to_jsonable({"per_mock": per_mock, "mean": mean, "pooled": pooled, "structures": cols,
                                "settings": settings})


# --------------------------------------------------------------------------- table
def summary_rows(stats_by_method: Mapping[str, dict], labels: Mapping[str, str] | None = None,
                 kinds=KINDS, regions=REGIONS) -> list[dict]:
    """Rows for a table (``pandas.DataFrame(rows)``): one per method, kind and region, with the
    mean over mocks of each mock's ``fraction``, ``detection`` and median ``offset`` (Mpc/h),
    the structures counted over every mock (``n_structures``) and the mocks that had any
    (``n_mocks``). ``stats_by_method``: method → :func:`structure_statistics` result."""
    labels = dict(labels or {})
    rows = []
    for m, st in stats_by_method.items():
        for k in kinds:
            for r in regions:
                key = f"{k}_{r}"
                ns = [0 if v is None else v for v in st["per_mock"].get(f"{key}_n", [])]
                rows.append({"method": m, "label": labels.get(m, m), "kind": k, "region": r,
                             "fraction": st["mean"].get(f"{key}_fraction"),
                             "detection": st["mean"].get(f"{key}_detection"),
                             "offset": st["mean"].get(f"{key}_offset"),
                             "n_structures": int(sum(ns)), "n_mocks": int(sum(1 for v in ns if v > 0))})
    return rows
