"""Cross-validation on the catalogue itself (``zoa crossval``): a real-data test anyone can rerun.

A random fraction (10 %) of the catalogue's galaxies is held out, the rest is gridded and
reconstructed by each method, and each method's **predicted radial velocity at the held-out
galaxies' positions** is scored against their **measured** radial velocities; several random
splits give the spread. No truth is needed: this is the one test of a reconstruction that
runs on Cosmicflows-4 itself.

Reading and gridding are those of ``zoa reconstruct`` (:func:`zoa_lib.analysis.reconstruct.read_and_grid`):
:func:`zoa_lib.survey.catalogs.read_catalog` with the reader's defaults and the profile's estimator,
gridded by :func:`zoa_lib.survey.catalogs.grid` at the **observed** positions with the profile's box
and error weighting. The splits are drawn among the galaxies that can be scored — inside the
cube [−L/2, L/2)³ (:func:`zoa_lib.survey.galaxies.voxel_index`, the gridding's own test) and with
d_obs > 0 (a radial direction); the others are never held out (those outside the cube do not
enter the gridded input anyway).

Prediction (:func:`radial_velocity_at`): the method's 3D velocity field (N, N, N, 3) km/s, SG
axes, observer at the centre, voxel centres x_i = −L/2 + (i + ½) L/N
(:func:`zoa_lib.universe.grid.voxel_centres`), interpolated trilinearly at each galaxy's observed
position, component by component (:func:`zoa_lib.survey.sky.interpolate_cube`; within half a voxel
of a face the nearest voxel's value), and projected on r̂ = x/|x|.

Scores per method and split (:func:`scores`), with v the measured and p the predicted radial
velocity (km/s) of the n scored held-out galaxies:

``r``
    Pearson correlation of v and p.
``slope``
    s of the least-squares line v = a + s p, s = cov(v, p) / var(p): 1 for an unbiased
    prediction, < 1 when the prediction overshoots.
``dchi2``
    the χ² gain per galaxy over predicting v = 0, Δχ²/n = mean[v²/σ² − (v − p)²/σ²], with
    σ² = σ_v² + σ_nl² (σ_v each galaxy's velocity error ``sigma_v``; σ_nl, 250 km/s by
    default, the nonlinear motions a smooth field cannot predict). Positive: better than
    v = 0 (the row v = 0 itself has Δχ² = 0 by construction).

A prediction with zero variance has r and slope NaN (``None`` in JSON); Δχ² stays defined.

Nothing is learnt from the held-out galaxies: the calibrations of ``wiener_cal`` and
``wiener_joint`` and the latter's counts model (n̄, b, α, s²) come from the profile's training
mocks (:func:`zoa_lib.analysis.reconstruct.counts_model`), the zero point from each split's kept galaxies.
Holding out a random share of the cube's galaxies thins the counts the joint filter reads, so its
n̄ is multiplied by the share of the cube's galaxies each split keeps (all splits hold out as many).
"""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field

import numpy as np

from zoa_lib.errors import ZoaError

#: Default share of the scored galaxies held out in each split.
FRACTION = 0.1
#: Default number of random splits.
N_SPLITS = 5
#: Default σ_nl (km/s): nonlinear motions the smooth reconstructed field cannot predict,
#: added in quadrature to each galaxy's velocity error in Δχ².
SIGMA_NL = 250.0
#: Fewest scored held-out galaxies a split may have.
MIN_HELD_OUT = 50
#: Methods ``zoa crossval`` compares when none are named.
DEFAULT_METHODS = ("vnet", "wiener_cal", "wiener_joint", "wiener")
#: Index of the splits' random stream (``rng.generator(seed, "evaluation", SPLIT_STREAM)``),
#: apart from the evaluation's other draws (1_000_000 + i, 7_000_000 + i).
SPLIT_STREAM = 9_000_000
#: The scores and their units.
SCORES = {"r": "dimensionless (Pearson r of measured and predicted v_r)",
          "slope": "dimensionless (s of the least-squares line v_obs = a + s v_pred)",
          "dchi2": "dimensionless per galaxy (mean of v_obs^2/sigma^2 - (v_obs - v_pred)^2/sigma^2)",
          "n": "galaxies (scored held-out galaxies)"}
#: The two methods whose paired difference of r the summary line reports.
PAIR = ("vnet", "wiener_cal")


class CrossValError(ZoaError, ValueError):
    """A cross-validation cannot run: bad fraction or number of splits, too few galaxies."""


# --------------------------------------------------------------------------- splits
def holdout_splits(n: int, fraction: float = FRACTION, n_splits: int = N_SPLITS, seed: int = 0) -> list[np.ndarray]:
    """``n_splits`` boolean masks (n,) of the held-out items, each holding round(fraction n).

    Disjoint when they can be (fraction × n_splits ≤ 1): one random permutation of the n
    items cut into consecutive folds; otherwise each split is an independent random choice.
    Deterministic: the permutation comes from ``rng.generator(seed, "evaluation",
    SPLIT_STREAM)``."""
    from zoa_lib.universe.rng import generator

    n, n_splits = int(n), int(n_splits)
    check_split_options(fraction, n_splits)
    size = int(round(fraction * n))
    if size < 1:
        raise CrossValError(f"holding out {fraction:g} of {n} galaxies leaves none held out")
    g = generator(int(seed), "evaluation", SPLIT_STREAM)
    if size * n_splits <= n:
        perm = g.permutation(n)
        folds = [perm[i * size:(i + 1) * size] for i in range(n_splits)]
    else:
        folds = [g.choice(n, size, replace=False) for _ in range(n_splits)]
    masks = []
    for f in folds:
        m = np.zeros(n, bool)
        m[f] = True
        masks.append(m)
    return masks


def check_split_options(fraction, n_splits) -> None:
    """One-line :class:`CrossValError` unless 0 < ``fraction`` ≤ 0.5 and ``n_splits`` ≥ 2."""
    try:
        ok = math.isfinite(float(fraction)) and 0.0 < float(fraction) <= 0.5
    except (TypeError, ValueError):
        ok = False
    if not ok:
        raise CrossValError(f"fraction: must be in (0, 0.5] (the share of galaxies held out), got {fraction!r}")
    if int(n_splits) != n_splits or n_splits < 2:
        raise CrossValError(f"splits: need at least 2 random splits for a spread, got {n_splits!r}")


# --------------------------------------------------------------------------- prediction
def radial_velocity_at(velocity, size: float, positions) -> np.ndarray:
    """Predicted radial velocity (m,) km/s at SG positions (m, 3) Mpc/h: the field
    ``velocity`` (N, N, N, 3) km/s on the observer-centred cube of side ``size`` Mpc/h,
    interpolated trilinearly per component (:func:`zoa_lib.survey.sky.interpolate_cube`), projected
    on r̂ = x/|x|. NaN outside the cube or at the observer (|x| = 0)."""
    from zoa_lib.survey.sky import interpolate_cube
    from zoa_lib.universe.grid import check_cube

    v = check_cube(np.asarray(velocity, np.float64), "velocity", vector=True, error=CrossValError)
    x = np.asarray(positions, np.float64).reshape(-1, 3)
    comp = np.stack([interpolate_cube(v[..., c], size, x) for c in range(3)], axis=-1)
    r = np.linalg.norm(x, axis=-1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(r > 0, np.einsum("ma,ma->m", comp, x) / r, np.nan)


# --------------------------------------------------------------------------- scores
def scores(v_obs, v_pred, sigma) -> dict:
    """{"r", "slope", "dchi2", "n"} of measured ``v_obs`` against predicted ``v_pred``
    radial velocities (km/s), σ (km/s) the total error of each galaxy (module docstring).
    r and slope are NaN when v_pred has zero variance; fewer than 2 galaxies, unequal
    lengths or σ ≤ 0 raise :class:`CrossValError`."""
    v, p, s = (np.asarray(a, np.float64).ravel() for a in (v_obs, v_pred, sigma))
    if s.size == 1:
        s = np.full(v.shape, s[0])
    if not (v.shape == p.shape == s.shape):
        raise CrossValError(f"scores: v_obs, v_pred and sigma must have one value per galaxy, got "
                            f"{v.size}, {p.size}, {s.size}")
    if v.size < 2:
        raise CrossValError(f"scores: need at least 2 galaxies, got {v.size}")
    if not np.all(s > 0):
        raise CrossValError("scores: every galaxy needs an error sigma > 0 km/s (give sigma_nl > 0)")
    dchi2 = float(np.mean((v ** 2 - (v - p) ** 2) / s ** 2))
    dv, dp = v - v.mean(), p - p.mean()
    var_p, var_v = float(np.mean(dp ** 2)), float(np.mean(dv ** 2))
    if var_p <= 1e-20 * float(np.mean(p ** 2)):  # a constant prediction (rounding aside)
        r = slope = math.nan
    else:
        cov = float(np.mean(dv * dp))
        slope = cov / var_p
        r = cov / math.sqrt(var_p * var_v) if var_v > 0 else math.nan
    return {"r": r, "slope": slope, "dchi2": dchi2, "n": int(v.size)}


def _mean_std(values) -> dict:
    a = np.asarray(values, np.float64)
    ok = a[np.isfinite(a)]
    return {"mean": float(ok.mean()) if ok.size else math.nan,
            "std": float(ok.std(ddof=1)) if ok.size > 1 else math.nan}


# --------------------------------------------------------------------------- the result
@dataclass
class CrossValResult:
    """What :func:`crossval` found. ``splits[method]``: one :func:`scores` dict per split;
    ``n_held_out``: scored held-out galaxies per split; ``provenance``: zoa version, git
    commit, creation time, profile and its seed."""

    profile: str
    source: str
    methods: list[str]
    fraction: float
    n_splits: int
    seed: int
    sigma_nl: float
    n_rows: int
    n_kept: int
    n_in_cube: int
    n_scorable: int
    n_held_out: list[int]
    disjoint: bool
    splits: dict
    info: dict = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    catalog_notes: list[str] = field(default_factory=list)
    provenance: dict = field(default_factory=dict)
    #: the zero point a fitted on each split's reconstruction galaxies (None: not fitted)
    zero_points: list | None = None

    def summary(self) -> dict:
        """{method: {score: {"mean", "std"}}} over the splits (std with ddof = 1; NaN
        splits left out)."""
        return {m: {k: _mean_std([s[k] for s in self.splits[m]]) for k in SCORES} for m in self.methods}

    def paired_r_difference(self, a: str = PAIR[0], b: str = PAIR[1]) -> dict | None:
        """r(a) − r(b) split by split (the same held-out galaxies): {"a", "b", "per_split",
        "mean", "std", "level"}; ``level`` when mean r(a) ≥ mean r(b) − std of the
        differences. None unless both methods ran."""
        if a not in self.splits or b not in self.splits:
            return None
        d = np.array([x["r"] - y["r"] for x, y in zip(self.splits[a], self.splits[b])])
        ms = _mean_std(d)
        s = self.summary()
        level = bool(s[a]["r"]["mean"] >= s[b]["r"]["mean"] - (ms["std"] if math.isfinite(ms["std"]) else 0.0))
        return {"a": a, "b": b, "per_split": [float(x) for x in d], **ms, "level": level}

    def best_on_r(self) -> str | None:
        """The method with the highest mean r (None when every r is NaN)."""
        s = self.summary()
        ok = [m for m in self.methods if math.isfinite(s[m]["r"]["mean"])]
        return max(ok, key=lambda m: s[m]["r"]["mean"]) if ok else None

    def to_dict(self) -> dict:
        """JSON-able: settings, counts, per-split scores, summary and the paired difference,
        with units (NaN → None)."""
        from zoa_lib.analysis.metrics import to_jsonable
        from zoa_lib.methods.registry import SEARCH_LABELS as LABELS

        return to_jsonable({
            "profile": self.profile, "catalog": self.source, "methods": self.methods,
            "labels": {m: LABELS.get(m, m) for m in self.methods},
            "fraction": self.fraction, "n_splits": self.n_splits, "seed": self.seed, "sigma_nl": self.sigma_nl,
            "n_rows": self.n_rows, "n_kept": self.n_kept, "n_in_cube": self.n_in_cube,
            "n_scorable": self.n_scorable, "n_held_out": self.n_held_out, "disjoint": self.disjoint,
            "units": {**SCORES, "sigma_nl": "km/s", "fraction": "share of the scorable galaxies held out per split"},
            "method": ("hold out a random fraction of the galaxies inside the cube (d_obs > 0), reconstruct from "
                       "the rest (gridded as zoa reconstruct grids: observed positions), predict v_r at the held-out "
                       "observed positions (trilinear interpolation of the 3D velocity, projected on r-hat) and "
                       "score against the measured v_r; sigma^2 = sigma_v^2 + sigma_nl^2"),
            "splits": self.splits, "summary": self.summary(), "best_on_r": self.best_on_r(),
            "paired_r_difference": self.paired_r_difference(), "info": self.info, "notes": self.notes,
            "catalog_notes": self.catalog_notes, "provenance": self.provenance,
            "zero_points": self.zero_points,
            "zero_point_note": "a = ln(h_fit / h_catalog) fitted on each split's 90 % (zoa_lib.survey.zero_point) and applied "
                               "to the whole catalogue, held-out galaxies included; None: distances as given"})

    def table_lines(self) -> list[str]:
        """The printed table (method | r | slope | Δχ²/galaxy | n held out, each mean ± std
        over the splits) and the verdict line."""
        from zoa_lib.methods.registry import SEARCH_LABELS as LABELS

        s = self.summary()
        def pm(d, f):
            if not math.isfinite(d["mean"]):
                return "nan"
            return f"{d['mean']:{f}}" + ("" if d["std"] == 0 else f" ± {d['std']:{f}}")

        rows = [(LABELS.get(m, m), pm(s[m]["r"], ".3f"), pm(s[m]["slope"], ".2f"), pm(s[m]["dchi2"], ".3f"),
                 pm(s[m]["n"], ".0f")) for m in self.methods]
        head = ("method", "r", "slope", "Δχ²/galaxy", "n held out")
        w = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(head)]
        fmt = lambda cells: " | ".join(c.ljust(w[i]) if i == 0 else c.rjust(w[i])  # noqa: E731
                                       for i, c in enumerate(cells)).rstrip()
        held = f"{min(self.n_held_out)}" + (f"-{max(self.n_held_out)}" if max(self.n_held_out) != min(self.n_held_out)
                                             else "")
        lines = [f"{self.source}: {self.n_kept} of {self.n_rows} rows kept, {self.n_in_cube} in the cube, "
                 f"{self.n_scorable} scorable; {self.n_splits} {'disjoint ' if self.disjoint else ''}random "
                 f"splits holding out {held} each ({self.fraction:g}); sigma_nl = {self.sigma_nl:g} km/s; "
                 f"profile {self.profile}",
                 fmt(head), "-+-".join("-" * x for x in w)]
        lines += [fmt(r) for r in rows]
        best = self.best_on_r()
        verdict = (f"best on r: {LABELS.get(best, best)}" if best else "best on r: none (every r is NaN)")
        d = self.paired_r_difference()
        if d is not None:
            verdict += (f"; V-Net {'is' if d['level'] else 'is not'} at least level with the calibrated Wiener "
                        f"filter: r(vnet) − r(wiener_cal) = {d['mean']:+.3f} ± {d['std']:.3f} over the splits")
        lines.append(verdict)
        lines += [f"note: {n}" for n in self.notes]
        return lines


# --------------------------------------------------------------------------- the run
def crossval(profile, path, methods=DEFAULT_METHODS, *, fraction: float = FRACTION, n_splits: int = N_SPLITS,
             seed: int | None = None, sigma_nl: float = SIGMA_NL, progress: bool = False,
             zero_point: bool = True, **read_options) -> CrossValResult:
    """Cross-validate each method on the catalogue at ``path`` (module docstring).

    methods : names or ``"vnet,wiener_cal"`` (:func:`zoa_lib.methods.registry.parse_methods`).
    fraction : share of the scorable galaxies held out per split, in (0, 0.5].
    n_splits : random splits (≥ 2), reconstructed together in one batch.
    seed : of the splits (default: the profile's seed).
    sigma_nl : km/s added in quadrature to each galaxy's ``sigma_v`` in Δχ².
    zero_point : as ``zoa reconstruct`` does, fit the catalogue's zero point
        (:mod:`zoa_lib.survey.zero_point`), here on each split's reconstruction galaxies only, and
        apply it to the whole catalogue (positions and velocities, held-out galaxies included).
    read_options : passed to the reader as ``zoa reconstruct`` passes them (h0_catalog, kind,
        columns, drop_bad, estimator, frame, groups, ...; :func:`zoa_lib.analysis.reconstruct.read_table`).

    Errors, one line each, before any reconstruction: bad options, unknown method, the
    reader's, fewer than :data:`MIN_HELD_OUT` scored galaxies held out, missing trained
    networks (naming ``zoa train``) or calibration."""
    from zoa_lib.analysis.reconstruct import Reconstructor, read_table
    from zoa_lib.methods.registry import SEARCH_METHODS, parse_methods
    from zoa_lib.survey import catalogs, galaxies

    methods = parse_methods(methods, SEARCH_METHODS, DEFAULT_METHODS)
    check_split_options(fraction, n_splits)
    if not (math.isfinite(float(sigma_nl)) and sigma_nl >= 0):
        raise CrossValError(f"sigma_nl: must be >= 0 km/s, got {sigma_nl!r}")
    seed = int(profile.seed if seed is None else seed)
    cat, report = read_table(profile, path, **read_options)
    L, N = float(profile.box.size), int(profile.box.grid)
    xyz = galaxies.catalog_positions(cat, "observed")
    _, inside = galaxies.voxel_index(xyz, L, N)
    scorable = np.flatnonzero(inside & (np.asarray(cat["d_obs"], np.float64) > 0))
    need = math.ceil(MIN_HELD_OUT / fraction)
    if int(round(fraction * len(scorable))) < MIN_HELD_OUT:
        raise CrossValError(f"{path}: {len(scorable)} galaxies inside the {L:g} Mpc/h cube of profile "
                            f"{profile.name!r}; holding out {fraction:g} of them leaves fewer than {MIN_HELD_OUT} "
                            f"to score (need about {need} in the cube, or a larger fraction)")
    masks = holdout_splits(len(scorable), fraction, n_splits, seed)
    rec = Reconstructor(profile, methods, progress=progress)  # missing models / calibration: before the work
    if rec.counts is not None:  # the held-out galaxies thin the counts: n̄ of the galaxies each split keeps
        share = 1.0 - int(masks[0].sum()) / int(inside.sum())
        rec.counts = thinned_counts(rec.counts, share)
        rec.info["wiener_joint"]["counts_model"]["nbar_scale"] = share
    calibration = None
    if zero_point and report.kind != "positions":
        from zoa_lib.survey.domain import training_reference
        from zoa_lib.survey.zero_point import calibrate

        calibration = calibrate(training_reference(profile))
    keep = np.ones(len(cat), bool)
    inputs, held, shifted, a_fit = [], [], [], []
    for m in masks:
        rows = scorable[m]
        keep[:] = True
        keep[rows] = False
        c = cat
        if calibration is not None:
            from zoa_lib.survey.zero_point import fit_zero_point, shift_zero_point

            a_fit.append(fit_zero_point(cat[keep], calibration).a)
            c = shift_zero_point(cat, a_fit[-1])
        inputs.append(catalogs.grid(c[keep], profile, position="observed"))
        held.append(rows)
        shifted.append(c)
    out = rec(np.stack(inputs))
    sigma_all = np.sqrt(np.asarray(cat["sigma_v"], np.float64) ** 2 + float(sigma_nl) ** 2)
    splits = {m: [] for m in methods}
    for i, rows in enumerate(held):
        v_i = np.asarray(shifted[i]["v_r_obs"], np.float64)[rows]
        xyz_i = galaxies.catalog_positions(shifted[i][rows], "observed")
        for m in methods:
            p = radial_velocity_at(out[m]["velocity"][i], L, xyz_i)
            ok = np.isfinite(p)  # a zero point moves a galaxy at the very edge out of the cube
            splits[m].append(scores(v_i[ok], p[ok], sigma_all[rows][ok]))
    notes = []
    if profile.survey.grid_position != "observed":
        notes.append(f"gridded at the observed distances (a real catalogue has no true ones), although profile "
                     f"{profile.name!r} grids its mocks at {profile.survey.grid_position!r} distances")
    for m in methods:
        notes += [f"{m}: {n}" for n in rec.info.get(m, {}).get("notes", [])]
    return CrossValResult(
        profile=profile.name, source=str(path), methods=methods, fraction=float(fraction), n_splits=int(n_splits),
        seed=seed, sigma_nl=float(sigma_nl), n_rows=int(report.n_rows), n_kept=int(report.n_kept),
        n_in_cube=int(inside.sum()), n_scorable=len(scorable), n_held_out=[len(r) for r in held],
        disjoint=bool(sum(len(r) for r in held) == len(np.unique(np.concatenate(held)))),
        splits=splits, info={m: rec.info.get(m, {}) for m in methods}, notes=notes,
        catalog_notes=list(getattr(report, "notes", [])), provenance=_provenance(profile),
        zero_points=[float(a) for a in a_fit] if calibration is not None else None)


def thinned_counts(model, share: float):
    """The counts model ``model`` (:class:`zoa_lib.methods.wiener_joint.CountsModel`) of a catalogue of
    which a random ``share`` (0 < share ≤ 1) of the galaxies is kept: n̄ (galaxies per voxel)
    × share, the radial factor of its separable form too; b, α, s² unchanged (a random thinning
    of Poisson counts stays Poisson, with mean share × n̄ (1 + b δ))."""
    if not 0.0 < share <= 1.0:
        raise CrossValError(f"thinned_counts: share must be in (0, 1], got {share!r}")
    sep = model.separable
    if sep is not None:
        sep = {**sep, "radial": np.asarray(sep["radial"], float) * share}
    return dataclasses.replace(model, nbar=np.asarray(model.nbar, float) * share, separable=sep)


def _provenance(profile) -> dict:
    """zoa version, git commit, creation time, profile and seed (:func:`zoa_lib.io.provenance.provenance`,
    without the profile's full parameters)."""
    from zoa_lib.io.provenance import provenance

    out = provenance(profile)
    out.pop("parameters", None)
    return out


def comparison_sentence(result: CrossValResult, catalogue: str = "the catalogue", a: str = PAIR[0],
                        b: str = PAIR[1]) -> str | None:
    """One sentence comparing methods ``a`` and ``b`` of ``result`` on r, e.g. "On held-out
    galaxies of Cosmicflows-3 the V-Net predicts radial velocities worse than the calibrated
    Wiener filter: r = 0.300 ± 0.020 against 0.360 ± 0.017 over 5 random splits (...)".

    The verb comes from the paired difference d = r(a) − r(b) split by split
    (:meth:`CrossValResult.paired_r_difference`, mean ± std over the splits): ``worse than``
    when mean d < −std, ``better than`` when mean d > std, else ``about as well as`` (``, but
    not better than,`` when mean d < 0). None unless both methods ran (or when d is NaN)."""
    from zoa_lib.methods.registry import SEARCH_LABELS as LABELS

    d = result.paired_r_difference(a, b)
    if d is None or not math.isfinite(d["mean"]):
        return None
    s = result.summary()
    mean, std = d["mean"], (d["std"] if math.isfinite(d["std"]) else 0.0)
    if mean < -std:
        verb, tail = "worse than", ""
    elif mean > std:
        verb, tail = "better than", ""
    else:
        verb = "about as well as, but not better than," if mean < 0 else "about as well as"
        tail = ", within the split-to-split scatter"
    la, lb = (x if x.isupper() else "the " + x for x in (LABELS.get(a, a), LABELS.get(b, b)))

    def pm(m):
        x = s[m]["r"]
        return f"{x['mean']:.3f}" + (f" ± {x['std']:.3f}" if math.isfinite(x["std"]) else "")

    return (f"On held-out galaxies of {catalogue} {la} predicts radial velocities {verb} {lb}: "
            f"r = {pm(a)} against {pm(b)} over {result.n_splits} random splits holding out {min(result.n_held_out)} "
            f"galaxies each (paired difference {mean:+.3f} ± {std:.3f}{tail}).")
