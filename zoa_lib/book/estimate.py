"""How long each chapter of the book takes, estimated from measured per-unit costs
(``zoa bench book``), and checked against the chapter times ``zoa run`` measured.

The book's wall time is dominated by a few repeated units of work. :func:`measure_unit_costs`
times each one once on this machine at a profile's sizes (:class:`UnitCosts`, seconds):

=====================  ======================================================================
``parent_box``         one parent box: ICs + LPT (+ PM), its smoothed fields and the cell index
                       for cube cuts, with the FFT threads the mock generation gives it (1 per
                       Dask worker when ``mocks.workers`` > 1)
``mock``               one mock after its box: cube cut, targets, survey, gridding
``engine_comparison``  chapter 02's 2LPT-vs-PM box (64³ particles over 320 Mpc/h, both engines)
``pm_kernels``         compiling (or loading from numba's cache) the PM kernels, once per process
``wiener``             one Wiener-filter solve at the profile's grid (``zoa bench evaluate``)
``potent``             one POTENT reconstruction (``zoa bench evaluate``)
``train_sample``       fitting one training mock for one epoch (``zoa bench train``)
``prediction``         one network's prediction of one mock (``zoa bench train``)
``network_setup``      tracing a new network's training step: the first epoch less a later one
``epoch_files``        the checkpoint and history files written after each epoch (not measured)
``pool_start``         starting a process that imports the library (a worker of the Wiener-channel
                       pool; the Dask cluster of the mock set is counted the same)
``tensorflow_import``  importing TensorFlow and Keras in a fresh process
``chapter_start``      a chapter's kernel start and its first imports (not measured)
=====================  ======================================================================

and :func:`estimate_chapters` turns them into each chapter's seconds, with the formula, from
the profile's sizes (mocks, parent boxes, epochs, networks, variants, mocks evaluated,
local-universe realizations). The estimate is for a run from an empty data folder: a chapter
that reuses mocks, models or predictions of an earlier run takes less. Parallel stages (the
mock set, the Wiener channels) are divided by ``min(mocks.workers, CPU cores)``.

``zoa bench book`` saves the costs to ``<data>/bench/unit-costs.json`` (:func:`costs_path`);
``zoa run`` shows, on the landing page, each chapter's estimate from that file (or from the
profile's ``book.expected_minutes``) beside its measured wall time (:func:`landing_estimate`,
:func:`compare`).
"""
from __future__ import annotations

import dataclasses
import datetime as _dt
import json
import logging
import math
import os
import re
import subprocess
import sys
import time
from pathlib import Path

from zoa_lib.errors import ZoaError
from zoa_lib.io.processes import pool_threads, thread_share

logger = logging.getLogger(__name__)

#: The chapters of the book, in order (``_toc.yml``).
CHAPTERS = ("01-cosmology", "02-mocks", "03-training", "04-validation", "05-classical",
            "06-local-universe", "07-cf4", "08-sky-3d", "09-explorer")
#: Chapters whose kernel imports TensorFlow (training, predictions, reconstructions).
TF_CHAPTERS = frozenset(CHAPTERS[2:])
#: Chapter 02's engine comparison box (the notebook's ``engine_mesh`` and ``engine_size``).
ENGINE_MESH, ENGINE_SIZE = 64, 320.0
#: φ-network variants chapter 03 trains (:data:`zoa_lib.analysis.variants.VARIANTS`).
N_VARIANTS = 5
#: Runs of chapter 03's training-mocks study that are not the variants' run reused
#: (:data:`zoa_lib.analysis.variants.MOCK_FRACTIONS` less the full split).
N_MOCK_STUDY_RUNS = 2
#: Random splits of chapter 07's cross-validation (the notebook's ``crossval_splits``).
CROSSVAL_SPLITS = 5
#: The joint Wiener filter (``wiener_joint``) in solves of the plain filter.
JOINT_WIENER_SOLVES = 2.0
#: Keys of the profile that the unit costs depend on (recorded with them, :func:`profile_sizes`).
SIZE_KEYS = ("box.grid", "simulation.parent_mesh", "simulation.parent_size", "simulation.engine",
             "model.depth", "model.base_filters", "model.convs_per_stage", "training.batch_size",
             "survey.catalogue")
#: The unit costs' fields measured by :func:`measure_unit_costs` (the others have defaults).
MEASURED = ("parent_box", "mock", "engine_comparison", "pm_kernels", "wiener", "potent", "train_sample",
            "prediction", "network_setup", "pool_start", "tensorflow_import")


class BookEstimateError(ZoaError, ValueError):
    """Unit costs that cannot be read or used."""


@dataclasses.dataclass
class UnitCosts:
    """Measured seconds of each unit of work of the book (module docstring), all in seconds
    on the machine described by ``machine`` (``cpu_count``, ``platform``, …) at the profile
    ``profile`` whose sizes are ``sizes`` (:func:`profile_sizes`), measured at ``measured_utc``."""

    parent_box: float
    mock: float
    wiener: float
    potent: float
    train_sample: float
    prediction: float
    engine_comparison: float = 0.0
    pm_kernels: float = 0.0
    network_setup: float = 1.0
    epoch_files: float = 0.1
    pool_start: float = 2.0
    tensorflow_import: float = 4.0
    chapter_start: float = 3.0
    profile: str = ""
    sizes: dict = dataclasses.field(default_factory=dict)
    machine: dict = dataclasses.field(default_factory=dict)
    measured_utc: str = ""
    quick: bool = True
    measuring_seconds: float = 0.0

    @property
    def cpu_count(self) -> int:
        """CPU cores of the machine the costs were measured on (this machine's if unrecorded)."""
        return int(self.machine.get("cpu_count") or os.cpu_count() or 1)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "UnitCosts":
        """The costs of a dict as :meth:`to_dict` writes it (unknown keys ignored); a missing
        or non-numeric required cost raises :class:`BookEstimateError`."""
        if not isinstance(d, dict):
            raise BookEstimateError(f"unit costs must be a JSON object, got {type(d).__name__}")
        d = d.get("unit_costs", d)  # the whole output of `zoa bench book --json` will do too
        if not isinstance(d, dict):
            raise BookEstimateError(f"unit_costs must be a JSON object, got {type(d).__name__}")
        for k in ("sizes", "machine"):
            if k in d and not isinstance(d[k], dict):
                raise BookEstimateError(f"unit costs: {k} must be a JSON object, got {type(d[k]).__name__}")
        fields = {f.name: f for f in dataclasses.fields(cls)}
        kw = {k: v for k, v in d.items() if k in fields}
        required = [f.name for f in fields.values()
                    if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING]
        missing = [k for k in required if k not in kw]
        if missing:
            raise BookEstimateError(f"unit costs: missing {', '.join(missing)}")
        for k, f in fields.items():
            if k in kw and f.type in ("float", float):
                try:
                    kw[k] = float(kw[k])
                except (TypeError, ValueError):
                    raise BookEstimateError(f"unit costs: {k} must be a number of seconds, got {kw[k]!r}") from None
                if not math.isfinite(kw[k]) or kw[k] < 0:
                    raise BookEstimateError(f"unit costs: {k} must be >= 0 s, got {kw[k]}")
        return cls(**kw)


def costs_path(profile) -> Path:
    """``<data>/bench/unit-costs.json``: where ``zoa bench book`` saves the costs it measured."""
    return Path(profile.data_path) / "bench" / "unit-costs.json"


def load_costs(path) -> UnitCosts:
    """Unit costs from a JSON file (:meth:`UnitCosts.from_dict`); one-line errors."""
    path = Path(path)
    try:
        d = json.loads(path.read_text())
    except OSError as e:
        raise BookEstimateError(f"{path}: cannot read unit costs ({e.strerror or e})") from None
    except ValueError as e:
        raise BookEstimateError(f"{path}: not JSON ({e})") from None
    try:
        return UnitCosts.from_dict(d)
    except BookEstimateError as e:
        raise BookEstimateError(f"{path}: {e}") from None


def profile_sizes(profile) -> dict:
    """The profile's values of :data:`SIZE_KEYS` (what the unit costs depend on)."""
    out = {}
    for key in SIZE_KEYS:
        v = profile
        for part in key.split("."):
            v = getattr(v, part)
        out[key] = v if isinstance(v, (int, float, str, bool)) or v is None else str(v)
    return out


def size_mismatch(profile, costs: UnitCosts) -> list[str]:
    """Settings of :data:`SIZE_KEYS` in which ``profile`` differs from the one the costs were
    measured at ("box.grid: 16 (costs) vs 32"); empty when they match or were not recorded."""
    mine = profile_sizes(profile)
    return [f"{k}: {costs.sizes[k]} (costs) vs {mine[k]}" for k in SIZE_KEYS
            if k in costs.sizes and costs.sizes[k] != mine[k]]


# --------------------------------------------------------------------------- sizes
def box_builds(profile) -> int:
    """Parent boxes the mock set builds: each shard builds every box its samples come from
    (:func:`zoa_lib.survey.mocks.make_shard`), so a box shared by two shards is built twice; with
    ``shard_size`` a multiple of ``observers_per_box`` this is :func:`zoa_lib.survey.mocks.split_boxes`'s
    total."""
    from zoa_lib.survey.mocks import shard_plan, split_ranges

    K = profile.simulation.observers_per_box
    ranges = split_ranges(profile)
    n = 0
    for spec in shard_plan(profile):
        a, _ = ranges[spec.split]
        n += (spec.stop - 1 - a) // K - (spec.start - a) // K + 1
    return n


def parallel(profile, costs: UnitCosts) -> int:
    """Processes of the parallel stages: ``mocks.workers``, at most the costs' CPU cores."""
    return max(1, min(int(profile.mocks.workers), costs.cpu_count))


def seconds_per_epoch(profile, costs: UnitCosts) -> float:
    """One network's training epoch (s): the full batches of ``n_train`` fitted and the
    ``n_val`` mocks predicted (validation), as :func:`zoa_lib.methods.training.bench.benchmark` scales it,
    plus the epoch's files."""
    B = profile.training.batch_size
    n_fit = max(1, profile.mocks.n_train // B) * B
    return n_fit * costs.train_sample + profile.mocks.n_val * costs.prediction + costs.epoch_files


def seconds_per_variant_epoch(profile, costs: UnitCosts) -> float:
    """One variant's epoch (s) in chapter 03: the training mocks fitted, no validation, no files."""
    B = profile.training.batch_size
    return max(1, profile.mocks.n_train // B) * B * costs.train_sample


def seconds_per_training_mock(profile, costs: UnitCosts) -> float:
    """Book seconds one more training mock costs before training (wall, over the parallel
    processes): its share of a parent box, its survey and gridding, and its Wiener-filter
    channels when the networks read them."""
    per = costs.parent_box / profile.simulation.observers_per_box + costs.mock
    if profile.training.wiener_channels:
        per += costs.wiener
    return per / parallel(profile, costs)


def seconds_per_mock_epoch(profile, costs: UnitCosts) -> float:
    """Book seconds of fitting one training mock once in every network chapter 03 trains
    (δ and φ of each of :func:`zoa_lib.methods.networks.networks`)."""
    from zoa_lib.methods.networks import networks

    return 2 * len(networks(profile)) * costs.train_sample


def per_unit(profile, costs: UnitCosts) -> dict:
    """The per-unit seconds the estimate uses, as a flat dict for tables and JSON."""
    return {"seconds_per_parent_box": costs.parent_box, "seconds_per_mock": costs.mock,
            "seconds_per_wiener_filter": costs.wiener, "seconds_per_potent": costs.potent,
            "seconds_per_epoch": round(seconds_per_epoch(profile, costs), 4),
            "seconds_per_variant_epoch": round(seconds_per_variant_epoch(profile, costs), 4),
            "seconds_per_prediction": costs.prediction, "seconds_per_network_setup": costs.network_setup,
            "seconds_chapter_start": costs.chapter_start, "seconds_tensorflow_import": costs.tensorflow_import,
            "parallel_processes": parallel(profile, costs)}


# --------------------------------------------------------------------------- the estimate
def _s(x: float) -> str:
    return f"{x:.3g} s" if x < 100 else f"{x:.0f} s"


def _term(key: str, text: str, seconds: float) -> dict:
    return {"term": key, "text": text, "seconds": float(seconds)}


def _chapter_terms(name: str, profile, c: UnitCosts) -> list[dict]:
    """The terms (key, text, seconds) of chapter ``name``'s estimate."""
    from zoa_lib.methods.networks import networks

    m, tr, w = profile.mocks, profile.training, parallel(profile, c)
    nets = len(networks(profile))
    per_w = f" / {w} processes" if w > 1 else ""
    terms = [_term("start", f"start {_s(c.chapter_start)}", c.chapter_start)]
    if name in TF_CHAPTERS:
        terms.append(_term("tensorflow", f"TensorFlow import {_s(c.tensorflow_import)}", c.tensorflow_import))
    if name == "02-mocks":
        nb = box_builds(profile)
        terms += [_term("boxes", f"{nb} boxes × {_s(c.parent_box)}{per_w}", nb * c.parent_box / w),
                  _term("mocks", f"{m.n_total} mocks × {_s(c.mock)}{per_w}", m.n_total * c.mock / w),
                  _term("figure_box", f"figure box {_s(c.parent_box)}", c.parent_box),
                  _term("engines", f"engine comparison {_s(c.engine_comparison)}", c.engine_comparison)]
        if w > 1:
            terms.append(_term("workers", f"Dask start {_s(c.pool_start)}", c.pool_start))
        if c.pm_kernels and profile.simulation.engine == "pm":
            terms.append(_term("pm_kernels", f"PM kernels {_s(c.pm_kernels)}", c.pm_kernels))
    elif name == "03-training":
        n_wf = m.n_train + m.n_val
        ep = seconds_per_epoch(profile, c)
        n = 2 * nets
        if tr.wiener_channels:
            terms.append(_term("wiener_channels", f"{n_wf} Wiener filters × {_s(c.wiener)}{per_w}",
                               n_wf * c.wiener / w))
            if w > 1:
                terms.append(_term("workers", f"pool start {_s(c.pool_start)}", c.pool_start))
        terms += [_term("epochs", f"{n} networks × {tr.epochs} epochs × {_s(ep)}", n * tr.epochs * ep),
                  _term("network_setup", f"{n} × set-up {_s(c.network_setup)}", n * c.network_setup)]
        ve = profile.book.variant_epochs
        if ve:
            from zoa_lib.analysis.variants import network_variants

            vep = seconds_per_variant_epoch(profile, c)
            n_v = N_VARIANTS - len(network_variants(profile))  # the others: the networks' own copies
            terms += [_term("variant_epochs", f"{n_v} variants × {ve} epochs × {_s(vep)} (of {N_VARIANTS}: the "
                            f"rest are the networks' copies)", n_v * ve * vep),
                      _term("variant_setup", f"{N_VARIANTS} × (set-up {_s(c.network_setup)} + "
                            f"{m.n_val} predictions × {_s(c.prediction)})",
                            N_VARIANTS * (c.network_setup + m.n_val * c.prediction)),
                      # the mock study: each share fits as many mocks as a variant; the full share is reused
                      _term("mock_study", f"{N_MOCK_STUDY_RUNS} mock-study runs × ({ve} epochs × {_s(vep)} + "
                            f"set-up {_s(c.network_setup)} + {m.n_val} predictions × {_s(c.prediction)})",
                            N_MOCK_STUDY_RUNS * (ve * vep + c.network_setup + m.n_val * c.prediction))]
    elif name == "04-validation":
        if tr.wiener_channels:
            terms.append(_term("wiener_channels", f"{m.n_test} Wiener filters × {_s(c.wiener)}{per_w}",
                               m.n_test * c.wiener / w))
            if w > 1:
                terms.append(_term("workers", f"pool start {_s(c.pool_start)}", c.pool_start))
        terms.append(_term("predictions", f"2 × {m.n_test} predictions × {_s(c.prediction)}",
                           2 * m.n_test * c.prediction))
    elif name == "05-classical":
        n_eval = min(profile.evaluation.n_eval, m.n_test)
        if nets > 1:
            terms.append(_term("predictions", f"{2 * (nets - 1)} × {m.n_test} predictions × {_s(c.prediction)}",
                               2 * (nets - 1) * m.n_test * c.prediction))
        solves = 2 + JOINT_WIENER_SOLVES  # wiener, wiener_cal, wiener_joint
        ev_w = max(1, min(w, n_eval))  # zoa evaluate solves its mocks' filters in parallel processes
        per_ev = f" / {ev_w} processes" if ev_w > 1 else ""
        terms += [_term("wiener", f"{n_eval} mocks × {solves:g} Wiener filters × {_s(c.wiener)}{per_ev}",
                        n_eval * solves * c.wiener / ev_w),
                  _term("potent", f"{n_eval} POTENT × {_s(c.potent)}{per_ev}", n_eval * c.potent / ev_w),
                  *([_term("workers", f"pool start {_s(c.pool_start)}", c.pool_start)] if ev_w > 1 else []),
                  _term("figures", f"figures: {solves:g} Wiener filters × {_s(c.wiener)} + POTENT {_s(c.potent)}",
                        solves * c.wiener + c.potent)]
    elif name == "06-local-universe":
        n = profile.local_universe.n_realizations
        per = c.mock + c.wiener + 2 * c.prediction
        terms += [_term("box", f"constrained box {_s(c.parent_box)}", c.parent_box),
                  _term("realizations", f"{n} realizations × (survey {_s(c.mock)} + Wiener filter "
                        f"{_s(c.wiener)} + 2 predictions × {_s(c.prediction)})", n * per)]
    elif name == "07-cf4":
        solves = 2 + JOINT_WIENER_SOLVES  # wiener, wiener_cal (shared with the V-Net), wiener_joint
        rec = c.wiener + 2 * c.prediction
        split = solves * c.wiener + 2 * c.prediction
        pred = f"2 predictions × {_s(c.prediction)}"
        terms += [_term("reconstructions", f"2 reconstructions × (Wiener filter {_s(c.wiener)} + {pred})", 2 * rec),
                  _term("crossval", f"{CROSSVAL_SPLITS} splits × ({solves:g} Wiener filters × {_s(c.wiener)} "
                        f"+ {pred})", CROSSVAL_SPLITS * split)]
    return terms


def estimate_chapters(profile, costs: UnitCosts, chapters=CHAPTERS) -> list[dict]:
    """Each chapter's estimated wall time on the costs' machine, from an empty data folder:
    ``[{"chapter", "seconds", "formula", "terms": [{"term", "text", "seconds"}]}]`` in the order
    of ``chapters`` (a name without a model of its own gets the chapter start only).
    :func:`total_seconds` sums them."""
    rows = []
    for name in chapters:
        terms = _chapter_terms(name, profile, costs)
        sec = sum(t["seconds"] for t in terms)
        rows.append({"chapter": name, "seconds": round(sec, 1),
                     "formula": " + ".join(t["text"] for t in terms),
                     "terms": [{**t, "seconds": round(t["seconds"], 3)} for t in terms]})
    return rows


def total_seconds(rows) -> float:
    """The sum of the rows' ``seconds``."""
    return round(sum(float(r["seconds"]) for r in rows), 1)


# --------------------------------------------------------------------------- measured vs estimated
def read_measured(source) -> dict[str, float]:
    """Chapter name -> measured seconds from ``source``: a dict (``{name: seconds}`` or
    run-info's ``{"chapters": {name: {"seconds": …}}}``) or the path of ``run-info.json``
    (``<root>/book/_generated``) or of ``<data>/book/timings.json``, both written by ``zoa run``.
    A missing file gives {}."""
    if isinstance(source, (str, os.PathLike)):
        path = Path(source)
        if not path.exists():
            return {}
        try:
            source = json.loads(path.read_text())
        except (OSError, ValueError) as e:
            raise BookEstimateError(f"{path}: cannot read chapter times ({e})") from None
    if not isinstance(source, dict):
        return {}
    if isinstance(source.get("chapters"), dict):
        source = source["chapters"]
    out = {}
    for name, v in source.items():
        s = v.get("seconds") if isinstance(v, dict) else v
        if isinstance(s, (int, float)) and not isinstance(s, bool) and math.isfinite(s):
            out[str(name)] = float(s)
    return out


def compare(estimate, measured) -> list[dict]:
    """Rows ``{"chapter", "estimate", "measured", "ratio"}`` (seconds; ratio = measured /
    estimate, None where either is missing or the estimate is 0) for every chapter of either,
    in chapter order, then a ``"total"`` row over the chapters that have both.

    ``estimate``: :func:`estimate_chapters`'s rows or ``{name: seconds}``; ``measured``: anything
    :func:`read_measured` reads."""
    est = ({r["chapter"]: float(r["seconds"]) for r in estimate} if isinstance(estimate, list)
           else {k: float(v) for k, v in dict(estimate).items()})
    meas = read_measured(measured)
    order = [c for c in CHAPTERS if c in est or c in meas]
    order += sorted((set(est) | set(meas)) - set(order))

    def ratio(m, e):
        return round(m / e, 2) if m is not None and e else None

    rows = [{"chapter": c, "estimate": est.get(c), "measured": meas.get(c), "ratio": ratio(meas.get(c), est.get(c))}
            for c in order]
    both = [r for r in rows if r["estimate"] is not None and r["measured"] is not None]
    te, tm = sum(r["estimate"] for r in both), sum(r["measured"] for r in both)
    rows.append({"chapter": "total", "estimate": round(te, 1), "measured": round(tm, 1),
                 "ratio": ratio(tm, te) if both else None})
    return rows


# --------------------------------------------------------------------------- the landing page
def reference_costs_path(profile) -> Path:
    """``profiles/unit-costs/<profile>.json``: the unit costs of a built-in profile measured by
    ``zoa bench book`` on the project's reference machine (2 CPU cores, like its CI) and
    shipped with the repository, so that a fresh clone's first book has an estimate to set
    its measured times against. ``zoa bench book`` then measures this machine's."""
    from zoa_lib.io.paths import shipped_dir

    return shipped_dir("profiles") / "unit-costs" / f"{profile.name}.json"


def landing_estimate(profile) -> dict | None:
    """The estimate the landing page shows beside the measured chapter times: from the unit
    costs ``zoa bench book`` saved on this machine (:func:`costs_path`), else from those of the
    reference machine shipped with the repository (:func:`reference_costs_path`), each only
    when measured at this profile's sizes; else from the profile's ``book.expected_minutes``;
    else None. Returns ``{"source": text, "kind", "chapters": {name: seconds}}``; never raises
    for an unreadable or unsuitable costs file (that falls through to the next source)."""
    for path, where in ((costs_path(profile), ""),
                        (reference_costs_path(profile), " on the reference machine (shipped in profiles/unit-costs/; "
                                                        "`zoa bench book` measures this one's)")):
        if not path.exists():
            continue
        try:
            costs = load_costs(path)
            if not size_mismatch(profile, costs):
                rows = estimate_chapters(profile, costs)
                cores = costs.machine.get("cpu_count")
                when = costs.measured_utc[:10] if costs.measured_utc else "an unrecorded date"
                return {"source": f"unit costs measured by `zoa bench book --profile {profile.name}` on {when}"
                                  + (f" on {cores} CPU cores" if cores else "") + where,
                        "kind": "unit costs", "chapters": {r["chapter"]: r["seconds"] for r in rows}}
        except (ZoaError, OSError, ValueError, KeyError, TypeError, AttributeError):
            pass
    table = tuple(profile.book.expected_minutes or ())
    chapters = {}
    for name in CHAPTERS:
        m = re.match(r"(\d+)", name)
        i = int(m.group(1)) - 1 if m else -1
        if 0 <= i < len(table) and table[i] > 0:
            chapters[name] = round(60.0 * table[i], 1)
    if chapters:
        return {"source": f"the profile's `book.expected_minutes` ({profile.name})", "kind": "profile",
                "chapters": chapters}
    return None


# --------------------------------------------------------------------------- measuring
def _subprocess_seconds(code: str) -> float:
    """Wall seconds of ``python -c code`` in a fresh process (TensorFlow's logs silenced)."""
    package_parent = str(Path(__file__).resolve().parents[2])
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3",
               PYTHONPATH=os.pathsep.join(filter(None, [package_parent, os.environ.get("PYTHONPATH")])))
    a = time.perf_counter()
    subprocess.run([sys.executable, "-c", code], capture_output=True, env=env, check=False)
    return time.perf_counter() - a


def _time_box_and_mocks(profile, n_mocks: int) -> dict:
    """One parent box and ``n_mocks`` of its mocks, timed as :func:`zoa_lib.survey.mocks.make_shard`
    makes them (the serial half of ``zoa bench mocks``), with 1 FFT thread when the mock set
    runs in several Dask workers."""
    from zoa_lib.survey.mocks import sample_from_cube
    from zoa_lib.universe import fields, simulation

    sim = profile.simulation
    workers = 1 if profile.mocks.workers > 1 else None
    out = {"pm_kernels": 0.0}
    if sim.engine == "pm":
        from zoa_lib.universe import cic
        from zoa_lib.universe import pm as PM

        PM.require_engine()
        a = time.perf_counter()
        cic.warm_up()
        out["pm_kernels"] = time.perf_counter() - a
    a = time.perf_counter()
    box = simulation.make_parent_box(profile, 0, workers)
    fields.parent_fields(profile, box, workers)
    simulation.observer_cubes(profile, box, [0])  # the box's cell index for cube cuts
    out["parent_box"] = time.perf_counter() - a
    K = sim.observers_per_box
    a = time.perf_counter()
    for i in range(n_mocks):
        cube = simulation.observer_cubes(profile, box, [i % K])[0]
        sample_from_cube(profile, box, cube, i, workers=workers)
    out["mock"] = (time.perf_counter() - a) / n_mocks
    return out


def measure_unit_costs(profile, quick: bool = True, log=None) -> UnitCosts:
    """Measure :class:`UnitCosts` on this machine at ``profile``'s sizes (seconds).

    ``quick``: 2 mocks after one parent box, 2 Wiener filters and POTENTs, a training epoch of
    about 2 s; else 8 mocks, 3 filters and a 10 s epoch. Each stage calls the existing
    benchmark where there is one (:func:`zoa_lib.methods.baselines.benchmark`,
    :func:`zoa_lib.methods.training.bench.benchmark`); the parent box and its mocks are timed here as the
    mock set makes them. At the ci profile it takes about 20 s on 2 cores (most of it
    TensorFlow: its import in a fresh process and tracing the training step); at the laptop
    profile add the particle-mesh parent box (tens of seconds) and a larger training step.
    ``log``: called with the name of each stage as it starts (default: this module's logger,
    ``measuring unit costs: <stage>`` at INFO)."""
    from zoa_lib.io.machine import machine
    from zoa_lib.methods import baselines
    from zoa_lib.universe import simulation

    log = log or (lambda stage: logger.info("measuring unit costs: %s", stage))
    t0 = time.perf_counter()
    log("parent box and mocks")
    sim = _time_box_and_mocks(profile, 2 if quick else 8)
    log("engine comparison")
    a = time.perf_counter()
    simulation.compare_engines(profile, 0, mesh=ENGINE_MESH, size=ENGINE_SIZE)
    engines = time.perf_counter() - a
    log("Wiener filter and POTENT")
    with thread_share(pool_threads(profile.mocks.workers)):  # as each pool worker solves them
        wf = baselines.benchmark(profile, n_mocks=2 if quick else 3)
    log("process start and TensorFlow import")
    pool = _subprocess_seconds("import zoa_lib.methods.wiener_channels")  # a pool worker starting
    tf_import = _subprocess_seconds("import tensorflow, keras")
    log("training epoch")
    from zoa_lib.methods.training.bench import benchmark as train_benchmark

    tr = train_benchmark(profile, seconds=2.0 if quick else 10.0)
    if "fit_seconds_per_sample" not in tr:
        raise BookEstimateError(f"zoa bench train could not time an epoch: {tr.get('train_step_skipped')}")
    ep = tr["timed_epoch"]
    return UnitCosts(
        parent_box=round(sim["parent_box"], 4), mock=round(sim["mock"], 5),
        wiener=float(wf["wiener_seconds_per_mock"]), potent=float(wf["potent_seconds_per_mock"]),
        train_sample=float(tr["fit_seconds_per_sample"]), prediction=float(tr["inference_seconds_per_sample"]),
        engine_comparison=round(engines, 3), pm_kernels=round(sim["pm_kernels"], 3),
        network_setup=round(max(0.0, ep["first_epoch_seconds"] - ep["seconds"]), 3),
        pool_start=round(pool, 3), tensorflow_import=round(tf_import, 3),
        profile=profile.name, sizes=profile_sizes(profile), machine=machine(),
        measured_utc=_dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"), quick=bool(quick),
        measuring_seconds=round(time.perf_counter() - t0, 1))
