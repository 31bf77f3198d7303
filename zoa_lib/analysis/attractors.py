"""A blind search for attractors: peaks of a reconstruction found without a position prior.

The Great Attractor search of :mod:`zoa_lib.analysis.local_universe` looks for the highest peak
*within* ``local_universe.ga_match_radius`` of the GA's literature position: it finds a
peak there by construction. This module asks the question the other way round:

1. **Candidates** (:func:`local_peaks`, :func:`blind_search`): the ``k`` highest local
   maxima of a cube field inside the survey sphere (r ≤ ``survey.r_max`` Mpc/h around the
   observer at the centre) — of the density contrast δ (*density peaks*) and of the flow
   convergence −∇·v (km/s per Mpc/h, :func:`zoa_lib.analysis.ga_search.convergence`). A local
   maximum is a voxel ≥ its 26 neighbours (outside the cube counts as −∞). Each candidate
   carries its rank (1 = highest), its supergalactic position (voxel centre refined below
   a voxel by a parabola along each axis, :func:`zoa_lib.analysis.ga_search.refine_peak`), Galactic
   (l, b) from astropy (:func:`zoa_lib.survey.sky.sg_to_galactic`), d in Mpc/h, cz = H0 d
   (H0 = 100 km/s per Mpc/h, no peculiar-velocity correction), the field value and its
   **significance** ν = value / σ, σ = √⟨f²⟩ the rms of the field over the survey sphere
   (δ and −∇·v have zero mean over a large volume, so ν is a peak height in σ units).

2. **Match** (:func:`match`): the candidate nearest (3D distance) to a target given as
   (l, b, cz) — by default the paper's GA (:data:`zoa_lib.analysis.literature.PAPER_NUMBERS`,
   (308.4°, 29.0°), 4960 km/s) — with its rank, its separation in Mpc/h, whether it is
   within the match radius, and its offset (Δl wrapped to [−180°, 180°), Δb, Δcz).

3. **False positives** (:func:`false_positive_rate`): the same search on fields where
   nothing was planted at the target — unconstrained test mocks, whose cubes have random
   observers and rotations — counting the mocks in which a candidate of rank ≤ r *and*
   significance ≥ ν_min lies within the match radius of the target. With r and ν_min those
   of the GA candidate of a reconstruction (:func:`thresholds`), the rate says how often
   an equally strong "GA" appears by chance. Its 68 % interval is Clopper–Pearson.
"""
from __future__ import annotations

import numpy as np

from zoa_lib.errors import ZoaError
from zoa_lib.methods.training import inference
from zoa_lib.universe.cosmology import H0
from zoa_lib.universe.grid import check_cube

#: Fields searched by :func:`blind_search`.
KINDS = ("density", "convergence")
KIND_LABELS = {"density": "density peak (δ)", "convergence": "flow convergence (−∇·v)"}


class AttractorError(ZoaError, ValueError):
    """Bad field, target or threshold given to the blind attractor search."""


def paper_ga() -> tuple[float, float, float]:
    """The GA's literature position (l [deg], b [deg], cz [km/s]) of the paper
    (:data:`zoa_lib.analysis.literature.PAPER_NUMBERS`: ga_l, ga_b, ga_cz)."""
    from zoa_lib.analysis.literature import PAPER_NUMBERS

    return tuple(float(PAPER_NUMBERS[k].value) for k in ("ga_l", "ga_b", "ga_cz"))


def target_sg(target_lb_cz) -> np.ndarray:
    """Supergalactic position (Mpc/h) of a target (l [deg], b [deg], cz [km/s]) at d = cz/H0
    (astropy, :func:`zoa_lib.survey.sky.galactic_to_sg`)."""
    from zoa_lib.survey.sky import galactic_to_sg

    l, b, cz = (float(v) for v in np.asarray(target_lb_cz, float).reshape(3))
    if not (np.isfinite([l, b, cz]).all() and -90.0 <= b <= 90.0 and cz > 0):
        raise AttractorError(f"target: need finite l, -90 <= b <= 90 deg and cz > 0 km/s, got ({l}, {b}, {cz})")
    return np.array([float(a) for a in galactic_to_sg(l, b, cz / H0)])


def _check_field(field, name="field") -> np.ndarray:
    return check_cube(np.asarray(field, np.float64), name, error=AttractorError)


def local_peaks(field, size: float, survey_radius: float, k: int = 10, smoothing: float = 0.0) -> list[dict]:
    """The ``k`` highest local maxima of ``field`` within ``survey_radius`` Mpc/h of the
    cube centre, highest first.

    field : (N, N, N) on the cube grid (SG axes, observer at the centre, voxel i at
        −L/2 + (i + ½) L/N); ``smoothing`` > 0 first convolves it with a Gaussian of that σ
        (Mpc/h). Non-finite voxels are never peaks.
    Returns a list of dicts: rank (1 = highest), sg [SGX, SGY, SGZ] (Mpc/h), l, b (deg),
    distance (Mpc/h), cz (km/s, = H0 d), value, significance (value / rms over the survey
    sphere), voxel (index)."""
    from scipy.ndimage import maximum_filter

    from zoa_lib.analysis.ga_search import refine_peak
    from zoa_lib.survey.sky import sg_to_galactic
    from zoa_lib.universe.fields import gaussian_smooth
    from zoa_lib.universe.grid import voxel_centres

    a = _check_field(field)
    if not survey_radius > 0:
        raise AttractorError(f"survey_radius must be > 0 Mpc/h, got {survey_radius}")
    if int(k) < 1:
        raise AttractorError(f"k must be >= 1, got {k}")
    if smoothing and smoothing > 0:
        a = gaussian_smooth(a, size, smoothing)
    n = a.shape[0]
    h = size / n
    x = voxel_centres(size, n)
    r = np.sqrt(x[:, None, None] ** 2 + x[None, :, None] ** 2 + x[None, None, :] ** 2)
    inside = (r <= survey_radius) & np.isfinite(a)
    if not inside.any():
        raise AttractorError(f"no finite voxel within {survey_radius} Mpc/h of the observer")
    rms = float(np.sqrt(np.mean(a[inside] ** 2)))
    filled = np.where(np.isfinite(a), a, -np.inf)
    is_max = (filled >= maximum_filter(filled, size=3, mode="constant", cval=-np.inf)) & inside
    idx = np.argwhere(is_max)
    order = np.argsort(-filled[tuple(idx.T)], kind="stable")[: int(k)]
    idx = idx[order]
    if not len(idx):
        return []
    sg = np.array([[x[i[ax]] + h * refine_peak(a, tuple(i), ax) for ax in range(3)] for i in idx])
    l, b, d = sg_to_galactic(sg[:, 0], sg[:, 1], sg[:, 2])
    out = []
    for j, i in enumerate(idx):
        v = float(a[tuple(i)])
        out.append({"rank": j + 1, "sg": sg[j].tolist(), "l": float(l[j]) % 360.0, "b": float(b[j]),
                    "distance": float(d[j]), "cz": float(H0 * d[j]), "value": v,
                    "significance": v / rms if rms > 0 else float("nan"), "voxel": [int(c) for c in i]})
    return out


def blind_search(delta=None, velocity=None, size: float = 160.0, survey_radius: float = 80.0, k: int = 10,
                 smoothing: float = 0.0) -> dict:
    """Candidates of one reconstruction, without a position prior: {"density": local_peaks
    of δ, "convergence": local_peaks of −∇·v (km/s per Mpc/h)}; a field given as None is
    skipped. delta (N, N, N); velocity (N, N, N, 3) km/s, SG components."""
    from zoa_lib.analysis.ga_search import convergence

    out = {}
    if delta is not None:
        out["density"] = local_peaks(delta, size, survey_radius, k, smoothing)
    if velocity is not None:
        v = np.asarray(velocity, np.float64)
        if v.ndim != 4 or v.shape[-1] != 3:
            raise AttractorError(f"velocity: expected an (N, N, N, 3) field, got shape {v.shape}")
        out["convergence"] = local_peaks(convergence(v, size), size, survey_radius, k, smoothing)
    return out


def match(candidates, target_lb_cz=None, radius_mpc: float = 15.0) -> dict:
    """The candidate nearest to the target (default :func:`paper_ga`).

    Returns {"found": a candidate within ``radius_mpc`` Mpc/h, "candidate": the nearest
    one (None when there are none), "rank", "separation" (Mpc/h), "dl" (deg, wrapped to
    [−180, 180)), "db" (deg), "dcz" (km/s) — candidate minus target —, "significance",
    "target": {l, b, cz, sg}, "radius"}."""
    target = paper_ga() if target_lb_cz is None else tuple(float(v) for v in np.asarray(target_lb_cz, float))
    if not radius_mpc > 0:
        raise AttractorError(f"radius_mpc must be > 0 Mpc/h, got {radius_mpc}")
    t = target_sg(target)
    cands = list(candidates)
    nan = float("nan")
    out = {"found": False, "candidate": None, "rank": None, "separation": nan, "dl": nan, "db": nan, "dcz": nan,
           "significance": nan, "radius": float(radius_mpc),
           "target": {"l": target[0], "b": target[1], "cz": target[2], "sg": t.tolist()}}
    if not cands:
        return out
    sep = np.array([np.linalg.norm(np.asarray(c["sg"], float) - t) for c in cands])
    j = int(np.argmin(sep))
    c = cands[j]
    out.update(found=bool(sep[j] <= radius_mpc), candidate=c, rank=int(c["rank"]), separation=float(sep[j]),
               dl=float((c["l"] - target[0] + 180.0) % 360.0 - 180.0), db=float(c["b"] - target[1]),
               dcz=float(c["cz"] - target[2]), significance=float(c["significance"]))
    return out


def thresholds(matched: dict, k: int) -> tuple[int, float]:
    """(max_rank, min_significance) for :func:`false_positive_rate` from a :func:`match`:
    the GA candidate's rank and significance when it was found, else (k, −∞) — any of the
    top ``k`` peaks counts."""
    if matched.get("found"):
        return int(matched["rank"]), float(matched["significance"])
    return int(k), float("-inf")


def _clopper_pearson(hits: int, n: int, level: float = 0.68) -> tuple[float, float]:
    from scipy.stats import beta

    a = 0.5 * (1.0 - level)
    lo = float(beta.ppf(a, hits, n - hits + 1)) if hits > 0 else 0.0
    hi = float(beta.ppf(1.0 - a, hits + 1, n - hits)) if hits < n else 1.0
    return lo, hi


def false_positive_rate(fields, size: float, survey_radius: float, target_lb_cz=None, radius_mpc: float = 15.0,
                        max_rank: int = 1, min_significance: float = float("-inf"), k: int | None = None,
                        smoothing: float = 0.0) -> dict:
    """How often the blind search puts a "GA" near the target in fields with none planted.

    fields : iterable of (N, N, N) scalar fields (δ, or −∇·v of a velocity field), e.g. the
        truth or a reconstruction of unconstrained test mocks.
    A mock is a *hit* when one of its candidates of rank ≤ ``max_rank`` with significance
    ≥ ``min_significance`` lies within ``radius_mpc`` Mpc/h of the target (default
    :func:`paper_ga`). ``k`` candidates are listed per field (default ``max_rank``).
    Returns {"n", "n_hits", "rate", "interval" (68 % Clopper–Pearson), "hits" (bool per
    field), "max_rank", "min_significance", "radius", "max_significance_near" (the highest
    significance of any listed candidate within the radius, per field; NaN if none)}."""
    target = paper_ga() if target_lb_cz is None else target_lb_cz
    t = target_sg(target)
    if int(max_rank) < 1:
        raise AttractorError(f"max_rank must be >= 1, got {max_rank}")
    k = int(max_rank) if k is None else max(int(k), int(max_rank))
    hits, near_sig = [], []
    for f in fields:
        cands = local_peaks(f, size, survey_radius, k, smoothing)
        near = [c for c in cands if np.linalg.norm(np.asarray(c["sg"], float) - t) <= radius_mpc]
        near_sig.append(max((c["significance"] for c in near), default=float("nan")))
        hits.append(any(c["rank"] <= max_rank and c["significance"] >= min_significance for c in near))
    n = len(hits)
    if n == 0:
        raise AttractorError("false_positive_rate: no fields given")
    n_hits = int(sum(hits))
    return {"n": n, "n_hits": n_hits, "rate": n_hits / n, "interval": _clopper_pearson(n_hits, n),
            "hits": hits, "max_rank": int(max_rank), "min_significance": float(min_significance),
            "radius": float(radius_mpc), "max_significance_near": near_sig}


def candidate_table(search: dict, n: int = 5) -> list[dict]:
    """Rows for a table of :func:`blind_search` results: {"located by", "rank", "l [deg]",
    "b [deg]", "cz [km/s]", "ν [σ]"} for the top ``n`` candidates of each kind.
    ``search``: {label: blind_search(...)} gives a leading "method" column."""
    rows = []
    for method, by_kind in search.items():
        for kind, cands in by_kind.items():
            for c in cands[:n]:
                rows.append({"method": method, "located by": KIND_LABELS.get(kind, kind), "rank": c["rank"],
                             "l [deg]": round(c["l"], 1), "b [deg]": round(c["b"], 1),
                             "cz [km/s]": round(c["cz"]), "ν [σ]": round(c["significance"], 2)})
    return rows


def match_table(matches: dict) -> list[dict]:
    """Rows for a table of :func:`match` results: ``matches`` is {(method, kind): match}."""
    rows = []
    for (method, kind), m in matches.items():
        c = m["candidate"]
        rows.append({"method": method, "located by": KIND_LABELS.get(kind, kind),
                     "nearest: rank": m["rank"] if c else "—",
                     "separation [Mpc/h]": round(m["separation"], 1) if c else "—",
                     "within radius": "yes" if m["found"] else "no",
                     "Δl [deg]": round(m["dl"], 1) if c else "—", "Δb [deg]": round(m["db"], 1) if c else "—",
                     "Δcz [km/s]": round(m["dcz"]) if c else "—",
                     "ν [σ]": round(m["significance"], 2) if c else "—"})
    return rows


def unconstrained_fields(profile, n: int | None = None) -> dict:
    """Fields of unconstrained test mocks for :func:`false_positive_rate`: at most ``n``
    (default ``evaluation.n_eval``) mocks of the test split spread over its parent boxes.

    Density: the V-Net's δ predictions when ``zoa predict`` has written them
    (:func:`zoa_lib.analysis.evaluation.load_predictions`), else the true δ of the test shards;
    convergence: −∇·v of the true velocity of the same mocks. Returns {"density": (n, N,
    N, N), "convergence": (n, N, N, N), "source": {"density": "V-Net" | "truth",
    "convergence": "truth"}, "n"}."""
    from zoa_lib.analysis import evaluation as ev
    from zoa_lib.analysis.ga_search import convergence

    n = n or profile.evaluation.n_eval
    size = profile.box.size
    if inference.predictions_path(profile, "delta", "test").exists():
        idx = ev.evaluation_indices(profile, "test", source="predictions", target="delta", n=n)
        p = ev.load_predictions(profile, "delta", "test", indices=idx)
        dens, vel, src = p["prediction"], p["velocity_true"], "V-Net"
    else:
        idx = ev.evaluation_indices(profile, "test", source="shards", n=n)
        s = ev.load_shard_mocks(profile, "test", indices=idx)
        dens, vel, src = s["delta"], s["velocity"], "truth"
    conv = np.stack([convergence(v, size) for v in vel])
    return {"density": np.asarray(dens), "convergence": conv, "source": {"density": src, "convergence": "truth"},
            "n": int(len(dens))}
