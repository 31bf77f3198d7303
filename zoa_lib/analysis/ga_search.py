"""The search for the Great Attractor (and the other known structures) in reconstructions
of surveys of the local universe (:mod:`zoa_lib.analysis.local_universe`).

The Great Attractor (:func:`locate_attractor`, :func:`locate_convergence`,
:func:`attractor_statistics`) is the highest peak of the (predicted) density — or of
the velocity convergence −∇·v — within ``local_universe.ga_match_radius`` Mpc/h of the
literature GA, refined to sub-voxel precision, converted to (l, b) and cz = H0 d; then
its mean and scatter over the realizations and the fraction of realizations that find
it (the paper's 64 % for CF4). The known structures, those the ZOA hides included, are
probed the same way (:func:`structure_probe`, :func:`structure_recovery`); many survey
realizations stream through both in batches (:class:`SearchAccumulator`,
:func:`search_realizations`).
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from zoa_lib.analysis.structures import LocalUniverseError, great_attractor, known_structures
from zoa_lib.methods.registry import SEARCH_LABELS, SEARCH_METHODS
from zoa_lib.universe.cosmology import H0
from zoa_lib.universe.grid import check_cube


def refine_peak(field: np.ndarray, idx, axis: int) -> float:
    """Sub-voxel offset (voxels, in [−½, ½]) of a peak along ``axis``: the vertex of the
    parabola through the peak and its two neighbours, fitted to ln f when all three are
    positive (exact for a Gaussian peak), else to f; 0 at the array edge."""
    n = field.shape[axis]
    i = idx[axis]
    if i == 0 or i == n - 1:
        return 0.0
    lo, hi = list(idx), list(idx)
    lo[axis] -= 1
    hi[axis] += 1
    f = np.array([field[tuple(lo)], field[tuple(idx)], field[tuple(hi)]], float)
    if np.all(f > 0):
        f = np.log(f)
    curv = f[0] - 2.0 * f[1] + f[2]
    if not curv < 0:
        return 0.0
    return float(np.clip(0.5 * (f[0] - f[2]) / curv, -0.5, 0.5))


def locate_attractor(delta, size: float, guess_sg, search_radius: float, smoothing: float = 0.0) -> dict:
    """The highest peak of a cube field within ``search_radius`` Mpc/h of ``guess_sg``.

    delta : (N, N, N) field on the cube grid (SG axes, observer at the centre, voxel i at
    −L/2 + (i + ½) L/N), e.g. a predicted density contrast; ``smoothing`` > 0 first
    convolves it with a Gaussian of that σ (Mpc/h). The peak voxel is refined by a
    parabola along each axis (:func:`refine_peak`). It counts as ``found`` when it is a local
    maximum of its 3×3×3 neighbourhood in the whole field and positive (the highest voxel
    of a slope sits on the sphere's edge with a higher neighbour outside: not found).

    Returns dict: l, b (deg), cz (km/s, = H0 d), distance d (Mpc/h), sg (SGX, SGY, SGZ
    list, Mpc/h), peak_value (field at the peak voxel), voxel (index), found (bool)."""
    from zoa_lib.survey.sky import sg_to_galactic
    from zoa_lib.universe.fields import gaussian_smooth
    from zoa_lib.universe.grid import voxel_centres

    a = check_cube(delta, "locate_attractor: delta", error=LocalUniverseError)
    if not search_radius > 0:
        raise LocalUniverseError(f"locate_attractor: search_radius must be > 0 Mpc/h, got {search_radius}")
    a = np.asarray(a, np.float64)
    if smoothing and smoothing > 0:
        a = gaussian_smooth(a, size, smoothing)
    n = a.shape[0]
    h = size / n
    x = voxel_centres(size, n)
    g = np.asarray(guess_sg, float).reshape(3)
    dist = np.sqrt((x[:, None, None] - g[0]) ** 2 + (x[None, :, None] - g[1]) ** 2 + (x[None, None, :] - g[2]) ** 2)
    inside = dist <= search_radius
    if not inside.any():
        raise LocalUniverseError(f"locate_attractor: no voxel within {search_radius} Mpc/h of {g.tolist()}")
    masked = np.where(inside & np.isfinite(a), a, -np.inf)
    idx = np.unravel_index(int(np.argmax(masked)), a.shape)
    peak = float(a[idx])
    sl = tuple(slice(max(i - 1, 0), min(i + 2, n)) for i in idx)
    local_max = np.isfinite(peak) and peak >= np.nanmax(a[sl])
    sg = np.array([x[idx[ax]] + h * refine_peak(a, idx, ax) for ax in range(3)])
    l, b, d = sg_to_galactic(sg[0:1], sg[1:2], sg[2:3])
    return {"l": float(l[0]) % 360.0, "b": float(b[0]), "cz": float(H0 * d[0]), "distance": float(d[0]),
            "sg": sg.tolist(), "peak_value": peak, "voxel": [int(i) for i in idx],
            "found": bool(local_max and peak > 0)}


def convergence(velocity, size: float) -> np.ndarray:
    """−∇·v (km/s per Mpc/h) of an (N, N, N, 3) cube velocity field (finite differences,
    :func:`zoa_lib.universe.velocity.divergence`); in linear theory −∇·v = f H0 δ."""
    from zoa_lib.universe.velocity import divergence

    return -divergence(velocity, size, method="finite_difference")


def locate_convergence(velocity, size: float, guess_sg, search_radius: float, smoothing: float = 0.0) -> dict:
    """The GA as the point of strongest flow convergence (minimum ∇·v) within
    ``search_radius`` of ``guess_sg``: :func:`locate_attractor` on :func:`convergence`;
    ``peak_value`` is −∇·v in km/s per Mpc/h."""
    return locate_attractor(convergence(velocity, size), size, guess_sg, search_radius, smoothing)


def attractor_statistics(results) -> dict:
    """Mean and scatter of (l, b, cz) over the realizations whose result is ``found``.

    l: circular mean and circular standard deviation √(−2 ln R̄) (deg; R̄ the mean
    resultant length), so that 359° and 1° average to 0°; b, cz: mean and standard
    deviation (ddof = 0). Returns n, n_found, fraction_found and l_mean, l_std, b_mean,
    b_std, cz_mean, cz_std (NaN when nothing was found)."""
    results = list(results)
    found = [r for r in results if r["found"]]
    out = {"n": len(results), "n_found": len(found),
           "fraction_found": len(found) / len(results) if results else float("nan")}
    nan = float("nan")
    out.update(l_mean=nan, l_std=nan, b_mean=nan, b_std=nan, cz_mean=nan, cz_std=nan)
    if not found:
        return out
    lr = np.radians([r["l"] for r in found])
    C, S = float(np.mean(np.cos(lr))), float(np.mean(np.sin(lr)))
    Rbar = min(np.hypot(C, S), 1.0)
    b = np.array([r["b"] for r in found], float)
    cz = np.array([r["cz"] for r in found], float)
    out.update(l_mean=float(np.degrees(np.arctan2(S, C)) % 360.0),
               l_std=float(np.degrees(np.sqrt(max(0.0, -2.0 * np.log(Rbar))))) if Rbar > 0 else float("inf"),
               b_mean=float(b.mean()), b_std=float(b.std()), cz_mean=float(cz.mean()), cz_std=float(cz.std()))
    return out


def reconstruct_surveys(profile, inputs, method: str = "vnet", progress: bool = False) -> dict:
    """Density contrast, potential and velocity of every survey realization by one method.

    inputs : (n, N, N, N, 2) gridded surveys (N_gal, V_pec [km/s]), e.g. from
        :func:`survey_realizations`.
    method : ``"vnet"`` — δ from the density network and v = −(2f/3H0Ωm)∇φ from the
        potential network, both trained for ``profile`` (:func:`zoa_lib.methods.training.fitting.ensure_trained`
        reuses or trains them), as in the paper; ``"wiener"``, ``"wiener_cal"``,
        ``"wiener_joint"``, ``"potent"`` — the classical baselines of
        :func:`zoa_lib.methods.reconstruction.reconstruct` (δ and v of the same reconstruction;
        ``wiener_cal`` and ``wiener_joint`` need the profile's training shards, the latter for
        its counts model too, :func:`zoa_lib.analysis.reconstruct.counts_model`).

    The work is :func:`zoa_lib.analysis.reconstruct.reconstruct_inputs`'s (the same code as ``zoa
    reconstruct``). Returns {"delta": (n, N, N, N) float32, "phi": (n, N, N, N) float32 in
    (km/s)² with each cube's mean removed, "velocity": (n, N, N, N, 3) float32 km/s}."""
    from zoa_lib.analysis.reconstruct import reconstruct_inputs

    x = np.asarray(inputs, np.float32)
    n_grid = profile.box.grid
    if x.ndim != 5 or x.shape[1:] != (n_grid,) * 3 + (2,):
        raise LocalUniverseError(f"reconstruct_surveys: inputs must have shape (n, {n_grid}, {n_grid}, "
                                 f"{n_grid}, 2) for profile {profile.name!r}, got {x.shape}")
    if method not in SEARCH_METHODS:
        raise LocalUniverseError(f"reconstruct_surveys: unknown method {method!r} "
                                 f"(known: {', '.join(SEARCH_METHODS)})")
    return reconstruct_inputs(profile, x, [method], train=True, progress=progress)[method]


def attractor_search(delta, velocity, size: float, guess_sg, search_radius: float,
                     smoothing: float = 0.0) -> dict:
    """Locate the GA in each realization two ways, as a density peak
    (:func:`locate_attractor` on δ) and as the point of strongest flow convergence
    (:func:`locate_convergence` on v), within ``search_radius`` Mpc/h of ``guess_sg``.

    delta : (n, N, N, N); velocity : (n, N, N, N, 3) km/s (either may be None to skip).
    Returns {"density": {...}, "convergence": {...}}, each with ``results`` (one dict of
    :func:`locate_attractor` per realization) and the :func:`attractor_statistics`."""
    results = {}
    for how, stack in (("density", delta), ("convergence", velocity)):
        if stack is not None:
            results[how] = [_locate(how, f, size, guess_sg, search_radius, smoothing) for f in stack]
    return _search_summary(results)


def _locate(how: str, field: np.ndarray, size: float, guess_sg, search_radius: float, smoothing: float) -> dict:
    """:func:`locate_attractor` on δ (``how`` = density) or :func:`locate_convergence` on v."""
    locate = locate_attractor if how == "density" else locate_convergence
    return locate(field, size, guess_sg, search_radius, smoothing)


def _search_summary(results: dict) -> dict:
    """{how: {"results": [...], **attractor_statistics}} from {how: [per-realization results]}."""
    return {how: {"results": res, **attractor_statistics(res)} for how, res in results.items()}


def _cube_index(size: float, n: int, sg) -> tuple[int, int, int]:
    """Index of the voxel that holds SG point ``sg`` (Mpc/h) in a cube of side ``size``,
    ``n`` voxels per side, observer at the centre (clipped to the cube)."""
    i = np.floor((np.asarray(sg, float) + size / 2.0) / (size / n)).astype(int)
    return tuple(int(v) for v in np.clip(i, 0, n - 1))


def structure_probe(delta, size: float, structures, search_radius: float, smoothing: float) -> list[dict]:
    """Each known structure as one density field shows it.

    δ (N, N, N) is smoothed with a Gaussian of σ = ``smoothing`` Mpc/h (the constraints'
    R_s, so that the value compares with the imposed ν σ_s), then per structure:

    - ``delta_s``: the smoothed δ in the voxel of the literature position;
    - the extremum nearest it: the highest maximum (attractor) or deepest minimum (void,
      located as the maximum of −δ_s) within ``search_radius`` Mpc/h
      (:func:`locate_attractor`), with ``found`` (a true local extremum of the right sign),
      its position ``sg`` (Mpc/h) and ``extremum`` (δ_s there).

    Returns one dict per structure: name, kind, b, delta_s, found, sg, extremum."""
    from zoa_lib.universe.fields import gaussian_smooth

    d = check_cube(np.asarray(delta, np.float64), "structure_probe: delta", error=LocalUniverseError)
    ds = gaussian_smooth(d, size, float(smoothing)) if smoothing and smoothing > 0 else d
    out = []
    for s in structures:
        sign = 1.0 if s.kind == "attractor" else -1.0
        r = locate_attractor(sign * ds, size, s.sg, search_radius)
        out.append({"name": s.name, "kind": s.kind, "b": s.b, "delta_s": float(ds[_cube_index(size, ds.shape[0], s.sg)]),
                    "found": r["found"], "sg": r["sg"], "extremum": sign * r["peak_value"]})
    return out


def structure_recovery(truth: list[dict], probes: dict, zoa_b: float) -> list[dict]:
    """Rows comparing :func:`structure_probe` of reconstructions with that of the truth.

    truth : structure_probe of the true field (one realization).
    probes : {method: [structure_probe of realization i, ...]}.
    Returns per structure and method {structure, kind, b, in_zoa, method, delta_true,
    delta_mean, delta_std (scatter over realizations, ddof = 0), found_fraction,
    offset_mean (Mpc/h, mean distance of the found extremum from the truth's extremum,
    NaN when none is found)}."""
    rows = []
    for j, t in enumerate(truth):
        for m, per_real in probes.items():
            recs = [p[j] for p in per_real]
            vals = np.array([r["delta_s"] for r in recs], float)
            found = [r for r in recs if r["found"]]
            off = [float(np.linalg.norm(np.subtract(r["sg"], t["sg"]))) for r in found]
            rows.append({"structure": t["name"], "kind": t["kind"], "b": t["b"], "in_zoa": abs(t["b"]) < zoa_b,
                         "method": m, "delta_true": t["delta_s"], "delta_mean": float(vals.mean()),
                         "delta_std": float(vals.std()), "found_fraction": len(found) / len(recs),
                         "offset_mean": float(np.mean(off)) if off else float("nan")})
    return rows


def recovery_summary(rows, method: str, inside_zoa: bool, kind: str = "attractor") -> dict:
    """Mean over the structures of one ``kind`` inside (or outside) the ZOA of one method's
    :func:`structure_recovery` rows: ``ratio`` = mean of δ_s recovered / δ_s true, ``found``
    = mean fraction of realizations with the extremum found, ``n`` structures (NaN when none).

    Clusters only by default: a void's true δ_s can lie near zero after evolution (the
    constraint is on the linear field), where the ratio means nothing; read voids in the
    table of :func:`structure_recovery`."""
    sel = [r for r in rows if r["method"] == method and bool(r["in_zoa"]) == bool(inside_zoa)
           and (kind is None or r["kind"] == kind)]
    if not sel:
        return {"ratio": float("nan"), "found": float("nan"), "n": 0}
    return {"ratio": float(np.mean([r["delta_mean"] / r["delta_true"] for r in sel])),
            "found": float(np.mean([r["found_fraction"] for r in sel])), "n": len(sel)}


class SearchAccumulator:
    """The GA search and the structure probes, fed one batch of reconstructions at a time.

    ``acc(out)`` with ``out`` = {method: {"delta": (n, N, N, N), "velocity": (n, N, N, N, 3),
    ...}} (what :class:`zoa_lib.analysis.reconstruct.Reconstructor` returns) locates the GA in every
    realization as a density peak and as a flow convergence within ``search_radius`` Mpc/h
    of the GA's literature position (:func:`attractor_search`), probes every structure
    (:func:`structure_probe`, smoothing ``smoothing`` Mpc/h), and keeps realization 0's
    fields (``first``); nothing else is kept, so memory does not grow with the number of
    realizations. ``search`` and ``probes`` give the results so far."""

    def __init__(self, size: float, search_radius: float, smoothing: float, structures=None):
        self.structures = known_structures() if structures is None else list(structures)
        self.guess = great_attractor(self.structures).sg
        self.size, self.radius, self.smoothing = float(size), float(search_radius), float(smoothing)
        self.results: dict = {}
        self.probes: dict = {}
        self.first: dict = {}

    def __call__(self, out: dict) -> None:
        for m, f in out.items():
            res = self.results.setdefault(m, {"density": [], "convergence": []})
            for d, v in zip(f["delta"], f["velocity"]):
                res["density"].append(_locate("density", d, self.size, self.guess, self.radius, 0.0))
                res["convergence"].append(_locate("convergence", v, self.size, self.guess, self.radius, 0.0))
                self.probes.setdefault(m, []).append(
                    structure_probe(d, self.size, self.structures, self.radius, self.smoothing))
            if m not in self.first and len(f["delta"]):
                self.first[m] = {"delta": np.array(f["delta"][0]), "velocity": np.array(f["velocity"][0])}

    @property
    def search(self) -> dict:
        """{method: :func:`attractor_search`-shaped results of every realization so far}."""
        return {m: _search_summary(r) for m, r in self.results.items()}


@dataclass
class RealizationSearch:
    """What :func:`search_realizations` keeps of ``n`` survey realizations: the GA search
    (``search[method]``, as :func:`attractor_search` returns), the structure probes
    (``probes[method]``, one :func:`structure_probe` list per realization), realization 0
    itself (``first[method]`` = {"delta", "velocity"}, ``first_catalog``) and the mean
    number of galaxies per survey. Its size does not grow with the fields of ``n``."""

    methods: list
    n: int
    search: dict
    probes: dict
    first: dict
    first_catalog: np.ndarray
    n_gal_mean: float


def search_realizations(profile, cube, methods, n: int, structures=None, batch: int | None = None,
                        progress: bool = False) -> RealizationSearch:
    """Survey ``cube`` ``n`` times, reconstruct each survey by each method and search it, in
    batches: memory is that of ``batch`` realizations whatever ``n`` (the paper's 1,000).

    Each batch of :func:`survey_realizations` goes through one
    :class:`zoa_lib.analysis.reconstruct.Reconstructor` (the code of ``zoa reconstruct``; missing
    V-Nets are trained), then through a :class:`SearchAccumulator` (GA search within
    ``local_universe.ga_match_radius``, structure probes smoothed on
    ``local_universe.constraint_smoothing``). ``batch`` default
    :data:`zoa_lib.analysis.reconstruct.BATCH`. The results equal those of the whole stack at once."""
    from tqdm.auto import tqdm

    from zoa_lib.analysis.local_universe import survey_realizations
    from zoa_lib.analysis.reconstruct import BATCH, Reconstructor

    batch = BATCH if batch is None else int(batch)
    if int(n) < 1 or batch < 1:
        raise LocalUniverseError(f"search_realizations: need n >= 1 and batch >= 1, got n={n}, batch={batch}")
    lu_cfg = profile.local_universe
    acc = SearchAccumulator(profile.box.size, lu_cfg.ga_match_radius, lu_cfg.constraint_smoothing, structures)
    rec_fn = Reconstructor(profile, methods, train=True)
    first_catalog, n_gal = None, []
    bar = tqdm(total=int(n), desc="survey realizations", unit="survey", disable=not progress)
    for start in range(0, int(n), batch):
        surveys = survey_realizations(profile, cube, min(batch, int(n) - start), start)
        n_gal += [len(c) for c, _ in surveys]
        if first_catalog is None:
            first_catalog = surveys[0][0]
        x = np.stack([inp for _, inp in surveys])
        del surveys
        acc(rec_fn(x))
        bar.update(len(x))
    bar.close()
    return RealizationSearch(methods=list(rec_fn.methods), n=int(n), search=acc.search, probes=acc.probes,
                             first=acc.first, first_catalog=first_catalog, n_gal_mean=float(np.mean(n_gal)))


def search_methods(profile, baseline: str | None = "wiener_cal") -> list[str]:
    """``["vnet"]`` plus the classical ``baseline`` (None: none; one of :data:`SEARCH_METHODS` but
    ``vnet``); ``wiener_cal`` falls back to the plain ``wiener`` when the profile has no training
    shards to calibrate it on; ``wiener_joint`` does not (it needs them for its counts model:
    the reconstruction stops with a line naming ``zoa mocks``)."""
    from zoa_lib.methods.calibration import has_training_shards

    if baseline == "wiener_cal" and not has_training_shards(profile):
        baseline = "wiener"
    if baseline is not None and baseline not in SEARCH_METHODS[1:]:
        raise LocalUniverseError(f"baseline: unknown method {baseline!r} (known: {', '.join(SEARCH_METHODS[1:])})")
    return ["vnet"] + ([baseline] if baseline else [])


def attractor_table(search: dict) -> list[dict]:
    """Rows for a table of :func:`attractor_search` results by method: ``{"method": label,
    "located by", "found": "k / n (p %)", "l [deg]", "b [deg]", "cz [km/s]"}`` with
    mean ± scatter over the realizations that found the GA (the mean alone for a single
    realization, "—" when none did). ``search``: {method: attractor_search(...)}."""
    rows = []
    for m, by_how in search.items():
        for how, st in by_how.items():
            def fmt(mean, std, digits):
                if not np.isfinite(mean):
                    return "—"
                return f"{mean:.{digits}f}" if st["n"] == 1 else f"{mean:.{digits}f} ± {std:.{digits}f}"
            rows.append({"method": SEARCH_LABELS.get(m, m),
                         "located by": "density peak" if how == "density" else "flow convergence",
                         "found": f"{st['n_found']} / {st['n']} ({st['fraction_found']:.0%})",
                         "l [deg]": fmt(st["l_mean"], st["l_std"], 1), "b [deg]": fmt(st["b_mean"], st["b_std"], 1),
                         "cz [km/s]": fmt(st["cz_mean"], st["cz_std"], 0)})
    return rows


#: Where :func:`write_attractor_results` puts the GA search of the local-universe chapter,
#: relative to the profile's data folder (``profile.data_path``); the landing page's
#: scorecard (:mod:`zoa_lib.book.scorecard`) reads it.
ATTRACTOR_RESULTS = "local_universe/great-attractor.json"


def attractor_results_path(profile) -> Path:
    """``<data_path>/local_universe/great-attractor.json`` (:data:`ATTRACTOR_RESULTS`)."""
    return profile.data_path / ATTRACTOR_RESULTS


def attractor_summary(search: dict, truth: dict | None = None) -> dict:
    """A JSON-able summary of :func:`attractor_search` results by method.

    ``search``: {method: attractor_search(...)}; ``truth``: the attractor_search of the
    true field of the same universe (one realization), or None. Returns {"labels",
    "methods": {method: {how: {statistics of :func:`attractor_statistics`, "offset_mean",
    "offset_std", "results"}}}, "truth": {how: {l, b, cz, sg, found}}}, where the offsets
    (Mpc/h) are the mean and scatter, over the realizations that find the GA, of the
    3D distance between the found position and the truth's (located the same way);
    NaN without a truth or when nothing was found."""
    truth_pos = {}
    out_truth = {}
    for how, st in (truth or {}).items():
        r = st["results"][0]
        truth_pos[how] = np.asarray(r["sg"], float)
        out_truth[how] = {k: r[k] for k in ("l", "b", "cz", "sg", "found")}
    methods = {}
    for m, by_how in search.items():
        methods[m] = {}
        for how, st in by_how.items():
            stats = {k: v for k, v in st.items() if k != "results"}
            found = [r for r in st["results"] if r["found"]]
            off = (np.array([np.linalg.norm(np.asarray(r["sg"], float) - truth_pos[how]) for r in found])
                   if how in truth_pos else np.array([]))
            stats["offset_mean"] = float(off.mean()) if off.size else float("nan")
            stats["offset_std"] = float(off.std()) if off.size else float("nan")
            stats["results"] = st["results"]
            methods[m][how] = stats
    return {"labels": {m: SEARCH_LABELS.get(m, m) for m in search}, "methods": methods, "truth": out_truth,
            "offset_units": "Mpc/h"}


def write_attractor_results(profile, search: dict, truth: dict | None = None, structures=None) -> Path:
    """Write :func:`attractor_summary` of the GA search, with the literature GA position,
    the profile and provenance, to :func:`attractor_results_path` (atomically); return
    the path."""
    from zoa_lib.io.atomic import write_json_atomic
    from zoa_lib.io.provenance import provenance

    ga = great_attractor(structures)
    doc = {"profile": profile.name, "literature": {"name": ga.name, "l": ga.l, "b": ga.b, "cz": ga.cz,
                                                   "sg": list(ga.sg), "reference": ga.reference},
           "search_radius": profile.local_universe.ga_match_radius,
           **attractor_summary(search, truth), "provenance": provenance(profile)}
    return write_json_atomic(attractor_results_path(profile), doc)
