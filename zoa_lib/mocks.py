"""Mock data sets: samples → HDF5 shards, fanned out with Dask, resumable.

Samples, splits and parent boxes
    Global sample indices run over the splits in order: train ``[0, n_train)``, val
    ``[n_train, n_train + n_val)``, test after. Within a split, local index j lives in
    parent box ``first_box(split) + j // K`` as observer ``j % K``, with
    K = ``simulation.observers_per_box``; the splits' boxes are consecutive and disjoint
    (train boxes 0..B_train−1, then val, then test; B = ceil(n / K)), so no parent box
    contributes to two splits. :func:`sample_location` is that mapping.

Shards
    Each split is cut into shards of ``mocks.shard_size`` consecutive samples (the last
    one may be shorter); shards are numbered globally in sample order
    (``shard-0000.h5`` …). :func:`make_shard` builds each parent box it needs once and
    reuses it for its observers, makes every sample (:func:`sample_from_cube`) and writes
    the shard mock by mock with :class:`zoa_lib.data.ShardWriter` (atomic). With
    ``shard_size`` a multiple of K (all shipped profiles) a shard task builds whole boxes.

Determinism
    Everything random comes from (profile seed, stream, indices): the box's initial
    conditions from ``("initial_conditions", box)``, its observers from
    ``("observers", box, i)``, the survey of sample s from ``("survey", s)``. A shard
    therefore has the same bytes whichever worker, order or scheduler makes it.

Resuming (:func:`generate`)
    A shard is complete when the manifest lists it with the current sample range, the
    file validates (:func:`zoa_lib.data.validate_shard`) and its content checksum equals
    the manifest's. A valid shard file that the manifest does not list (its writer was
    killed before it updated the manifest, or concurrent ``--shards`` jobs raced) is
    adopted when its attrs carry this configuration's checksum and sample range.
    Anything else is regenerated. The manifest is updated by the driver only, under a
    file lock, after each shard completes. Temporaries of killed runs are removed first
    (those of the selected shards, so concurrent ``--shards`` jobs can share a folder).
    Mocks made with a different configuration (a changed survey, box, simulation,
    cosmology, split sizes or seed) are not mixed in: :func:`generate` refuses unless
    ``force=True``.

Checking (:func:`check_shards`, ``zoa shards check``)
    The same judgement as resuming, read-only: one :class:`ShardCheck` per shard file
    (the profile's plan, or given paths against the manifest beside them).
"""
from __future__ import annotations

import hashlib
import json
import math
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from .data import (MANIFEST, ShardError, ShardWriter, content_checksum, manifest_lock, manifest_mismatch, mocks_dir,
                   read_manifest, shard_name, update_manifest, validate_shard)
from .errors import ZoaError
from .io import TMP_PREFIX, display_path, ensure_writable, provenance
from .rng import generator

SPLITS = ("train", "val", "test")
#: How long to wait for an existing Dask scheduler (``--scheduler ADDRESS``).
CONNECT_TIMEOUT = "20s"


class MocksError(ZoaError, ValueError):
    """A mock-generation request cannot be carried out (bad shard range, scheduler,
    mismatched existing data, failed shard tasks)."""


# --------------------------------------------------------------------------- the plan
@dataclass(frozen=True)
class SampleLocation:
    """Where global sample ``sample`` comes from: ``split``, parent box, observer index."""

    sample: int
    split: str
    box_index: int
    observer: int


@dataclass(frozen=True)
class ShardSpec:
    """Shard ``index`` (file ``name``) holds samples [start, stop) of ``split``."""

    index: int
    name: str
    split: str
    start: int
    stop: int

    @property
    def n(self) -> int:
        return self.stop - self.start


def split_ranges(profile) -> dict[str, tuple[int, int]]:
    """Global sample range [start, stop) of each split."""
    m = profile.mocks
    out, a = {}, 0
    for split, n in zip(SPLITS, (m.n_train, m.n_val, m.n_test)):
        out[split] = (a, a + n)
        a += n
    return out


def split_boxes(profile) -> dict[str, tuple[int, int]]:
    """Parent boxes [first, stop) of each split (disjoint, consecutive)."""
    K = profile.simulation.observers_per_box
    out, b = {}, 0
    for split, (a, z) in split_ranges(profile).items():
        nb = math.ceil((z - a) / K)
        out[split] = (b, b + nb)
        b += nb
    return out


def sample_location(profile, sample: int) -> SampleLocation:
    """The split, parent box and observer of global sample ``sample`` (module docstring)."""
    K = profile.simulation.observers_per_box
    boxes = split_boxes(profile)
    for split, (a, z) in split_ranges(profile).items():
        if a <= sample < z:
            j = sample - a
            return SampleLocation(int(sample), split, boxes[split][0] + j // K, j % K)
    raise MocksError(f"sample {sample} outside 0..{profile.mocks.n_total - 1} (profile {profile.name!r})")


def shard_plan(profile) -> list[ShardSpec]:
    """Every shard of the profile's data set, in sample order."""
    S = profile.mocks.shard_size
    plan = []
    for split, (a, z) in split_ranges(profile).items():
        for s in range(a, z, S):
            i = len(plan)
            plan.append(ShardSpec(i, shard_name(i), split, s, min(s + S, z)))
    return plan


def parse_shard_range(text: str | None, n_shards: int) -> range:
    """``A:B`` (shards A..B−1; B past the last shard is clipped, as a Slurm array's last
    task may ask), ``A:``, ``:B`` or ``A`` → a range of shard indices."""
    if text is None or text.strip() in ("", ":"):
        return range(n_shards)
    t = text.strip()
    try:
        if ":" in t:
            a, b = t.split(":", 1)
            lo = int(a) if a.strip() else 0
            hi = int(b) if b.strip() else n_shards
        else:
            lo = int(t)
            hi = lo + 1
    except ValueError:
        raise MocksError(f"--shards {text!r}: expected A:B with integers (e.g. 0:4)") from None
    if not (0 <= lo < hi and lo < n_shards):
        raise MocksError(f"--shards {text!r}: need 0 <= A < B and A < {n_shards} (this profile has "
                         f"{n_shards} shards)")
    return range(lo, min(hi, n_shards))  # B past the end is clipped, like a slice


# --------------------------------------------------------------------------- configuration
def mock_config(profile) -> dict:
    """The profile parameters that determine the mocks' bytes (not workers, training…; the
    ``survey.corrected_*`` keys only when ``survey.grid_position`` is ``corrected``)."""
    d = profile.to_dict()
    mocks = {k: v for k, v in d["mocks"].items() if k != "workers"}
    sv = d["survey"]
    if sv.get("grid_position") != "corrected":
        sv = {k: v for k, v in sv.items() if not k.startswith("corrected_")}
    return {"seed": d["seed"], "cosmology": d["cosmology"], "box": d["box"], "simulation": d["simulation"],
            "survey": sv, "mocks": mocks}


def config_checksum(profile) -> str:
    """SHA-256 of :func:`mock_config` (JSON, sorted keys)."""
    return hashlib.sha256(json.dumps(mock_config(profile), sort_keys=True).encode()).hexdigest()


def _diff_keys(a: dict, b: dict, prefix: str = "") -> list[str]:
    out = []
    for k in sorted(set(a) | set(b)):
        va, vb = a.get(k), b.get(k)
        if isinstance(va, dict) and isinstance(vb, dict):
            out += _diff_keys(va, vb, f"{prefix}{k}.")
        elif va != vb:
            out.append(f"{prefix}{k}")
    return out


ATTR_UNITS = {"box_size": "Mpc/h", "smoothing": "Mpc/h", "zoa_b": "deg", "parent_size": "Mpc/h",
              "H0": "km/s per Mpc/h", "selection.r_max": "Mpc/h", "selection.selection_r0": "Mpc/h",
              "selection.sigma_dm": "mag", "selection.sigma_v_nl": "km/s", "selection.corrected_scatter": "Mpc/h",
              "corrected_scatter": "Mpc/h"}

#: What the ``grid_position`` attr of a shard (and of a reconstruction) means.
GRID_POSITION_NOTES = {
    "observed": "galaxies gridded at their observed distances d_obs (a raw catalogue, e.g. CF4 as published)",
    "true": "galaxies gridded at their true distances d_true (no distance error in the positions)",
    "corrected": "galaxies gridded at corrected distances: d_true plus a Gaussian residual of "
                 "sqrt(corrected_scatter^2 + (corrected_scatter_fraction d_true)^2) Mpc/h (a bias-corrected "
                 "catalogue, e.g. HAMLET-corrected CF4); V_pec is the observed v_r_obs in every mode",
}


def shard_attrs(profile, spec: ShardSpec) -> dict:
    """Attrs of a shard: DESIGN.md's list (box_size, grid, smoothing, cosmology, zoa_b,
    selection, seed, split, provenance) with units (``attr_units``), plus the sample
    range, the configuration checksum and the survey's redshift/estimator conventions."""
    from .cosmology import H0, from_profile

    cosmo = from_profile(profile)
    sv = profile.survey
    return {
        **provenance(profile),
        "box_size": float(profile.box.size),
        "grid": int(profile.box.grid),
        "smoothing": float(profile.box.smoothing),
        "cosmology": {**profile.to_dict()["cosmology"], "h": cosmo.h, "Om0": cosmo.Om0, "Ob0": cosmo.Ob0,
                      "sigma8": cosmo.sigma8, "ns": cosmo.ns, "growth_rate_f": cosmo.growth_rate},
        "H0": H0,
        "zoa_b": float(sv.zoa_b),
        "selection": mock_config(profile)["survey"],
        "velocity_estimator": sv.estimator,
        "redshift_model": "1+z = (1+z_cos(d))(1+v_r/c); H0 d_L = c z_mod(z_cos) with q0=-0.55, j0=1 "
                          "(zoa_lib.survey)",
        "grid_position": sv.grid_position,
        "grid_position_note": GRID_POSITION_NOTES[sv.grid_position],
        **({"corrected_scatter": float(sv.corrected_scatter),
            "corrected_scatter_fraction": float(sv.corrected_scatter_fraction)}
           if sv.grid_position == "corrected" else {}),
        "parent_size": float(profile.simulation.parent_size),
        "parent_mesh": int(profile.simulation.parent_mesh),
        "lpt_order": int(profile.simulation.lpt_order),
        "observers_per_box": int(profile.simulation.observers_per_box),
        "seed": int(profile.seed),
        "split": spec.split,
        "shard_index": spec.index,
        "sample_start": spec.start,
        "sample_stop": spec.stop,
        "config_sha256": config_checksum(profile),
        "attr_units": ATTR_UNITS,
    }


# --------------------------------------------------------------------------- one sample
@dataclass
class Sample:
    """One mock: network inputs (N,N,N,2), targets (``zoa_lib.fields.Targets``), its
    survey catalog, the observer cube and where it comes from."""

    inputs: np.ndarray
    targets: object
    catalog: np.ndarray
    cube: object
    location: SampleLocation


def sample_from_cube(profile, box, cube, sample: int, timings: dict | None = None, workers: int | None = None):
    """(inputs, targets, catalog) of global sample ``sample`` made from ``cube`` of parent ``box``.

    ``workers``: FFT threads for the box's fields (:func:`zoa_lib.fourier.fft_workers`).
    ``timings``: a dict to which the seconds of each stage are added, under the keys
    ``targets`` (δ, φ, v of the cube), ``survey`` (drawing the galaxies) and ``grid``
    (gridding the catalogue into the network inputs)."""
    from . import fields, survey

    t0 = time.perf_counter()
    targets = fields.cube_targets(profile, box, cube, workers)
    t1 = time.perf_counter()
    cat = survey.draw_galaxies(cube, profile.survey, generator(profile.seed, "survey", int(sample)),
                               profile.box.size, sample=int(sample))
    t2 = time.perf_counter()
    inputs = survey.grid_inputs(cat, profile)
    if timings is not None:
        for key, dt in (("targets", t1 - t0), ("survey", t2 - t1), ("grid", time.perf_counter() - t2)):
            timings[key] = timings.get(key, 0.0) + dt
    return inputs, targets, cat


def make_sample(profile, sample: int, box=None) -> Sample:
    """Global sample ``sample`` of a profile, built from scratch (or from ``box`` when it
    is the right parent box). Identical to the sample stored in the shards."""
    from . import simulation

    loc = sample_location(profile, sample)
    if box is None or box.box_index != loc.box_index:
        box = simulation.make_parent_box(profile, loc.box_index)
    cube = simulation.observer_cubes(profile, box, [loc.observer])[0]
    inputs, targets, cat = sample_from_cube(profile, box, cube, sample)
    return Sample(inputs=inputs, targets=targets, catalog=cat, cube=cube, location=loc)


# --------------------------------------------------------------------------- one shard
def make_shard(profile, spec: ShardSpec, folder: str | os.PathLike, fft_workers: int | None = None) -> dict:
    """Generate and write one shard (atomically); return its manifest row plus timings.

    Runs in a Dask worker (or in-process). ``fft_workers``: threads of its FFTs (1 under
    Dask: one thread per worker; None: :func:`zoa_lib.fourier.fft_workers`'s default)."""
    from . import simulation

    t0 = time.perf_counter()
    path = Path(folder) / spec.name
    locs = [sample_location(profile, s) for s in range(spec.start, spec.stop)]
    n_gal = 0
    t_box = 0.0
    box = None
    with ShardWriter(path, spec.n, profile.box.grid, shard_attrs(profile, spec)) as w:
        for i, loc in enumerate(locs):
            if box is None or box.box_index != loc.box_index:
                box = None  # free the previous box before building the next
                a = time.perf_counter()
                box = simulation.make_parent_box(profile, loc.box_index, fft_workers)
                t_box += time.perf_counter() - a
            cube = simulation.observer_cubes(profile, box, [loc.observer])[0]
            inputs, targets, cat = sample_from_cube(profile, box, cube, loc.sample, workers=fft_workers)
            w.write(i, inputs, {"delta": targets.delta, "phi": targets.phi, "velocity": targets.velocity}, cat,
                    sample=loc.sample, observer=cube.observer, rotation=cube.rotation, box_index=loc.box_index)
            n_gal += len(cat)
            del cube, inputs, targets, cat
    return {"name": spec.name, "split": spec.split, "start": spec.start, "stop": spec.stop, "n": spec.n,
            "sha256": w.sha256, "bytes": path.stat().st_size, "n_galaxies": n_gal,
            "seconds": round(time.perf_counter() - t0, 3), "seconds_boxes": round(t_box, 3)}


# --------------------------------------------------------------------------- status
def shard_status(folder: Path, spec: ShardSpec, manifest: dict, profile, verify: str = "checksum"):
    """(state, reason, row): state is ``complete``, ``adopt`` (valid file not yet in the
    manifest; ``row`` is its manifest row) or ``make`` (missing, corrupt or stale)."""
    path = Path(folder) / spec.name
    row = manifest.get("shards", {}).get(spec.name)
    if not path.exists():
        return "make", ("missing" if row is None else "listed in the manifest but the file is missing"), None
    try:
        attrs = validate_shard(path, grid=profile.box.grid, complete=True)
    except ShardError as e:
        return "make", f"corrupt: {e}", None
    if row is not None:
        if (row.get("split"), row.get("start"), row.get("stop")) != (spec.split, spec.start, spec.stop):
            return "make", "the manifest's sample range differs from the plan", None
        try:
            problem = manifest_mismatch(path, row, verify)
        except ShardError as e:
            return "make", f"corrupt: {e}", None
        if problem:
            return "make", problem, None
        return "complete", "valid (quick check)" if verify == "quick" else "checksum verified", row
    # not in the manifest: adopt a complete file made with this configuration
    if (attrs.get("config_sha256") == config_checksum(profile) and attrs.get("split") == spec.split
            and int(attrs.get("sample_start", -1)) == spec.start and int(attrs.get("sample_stop", -1)) == spec.stop):
        try:
            sha = content_checksum(path)
        except ShardError as e:
            return "make", f"corrupt: {e}", None
        return "adopt", "valid file not in the manifest", {
            "name": spec.name, "split": spec.split, "start": spec.start, "stop": spec.stop, "n": spec.n,
            "sha256": sha, "bytes": path.stat().st_size}
    return "make", "file not in the manifest and made with another configuration", None


@dataclass(frozen=True)
class ShardCheck:
    """What :func:`check_shards` found for one file: ``ok`` and why (``reason``)."""

    path: str
    ok: bool
    reason: str

    def line(self) -> str:
        return f"{self.path}: {self.reason}"


def _reason(e: Exception | str, path) -> str:
    """A ShardError's message (or a reason) without its leading ``<path>: ``."""
    return str(e).replace(f"{path}: ", "")


def check_shards(profile=None, paths: Sequence[str | os.PathLike] | None = None, verify: str = "checksum",
                 grid: int | None = None) -> list[ShardCheck]:
    """Check mock shards without changing anything (``zoa shards check``).

    With ``paths``: each file is validated (:func:`zoa_lib.data.validate_shard`, index
    datasets required, at ``grid`` when given) and, when the ``manifest.json`` beside it
    lists it, compared with its row (:func:`zoa_lib.data.manifest_mismatch`: content
    checksum, or file size with ``verify="quick"``). Without: the profile's planned shards
    in :func:`zoa_lib.data.mocks_dir`, each judged as ``zoa mocks`` does
    (:func:`shard_status`: complete or adoptable is fine; missing, corrupt, stale or
    changed is not). An unreadable manifest is one bad entry of its own (the shards are
    then only validated). Returns one :class:`ShardCheck` per file (and per bad manifest);
    raises :class:`zoa_lib.data.ShardError` when the profile has no shards at all.
    """
    if verify not in ("checksum", "quick"):
        raise MocksError(f"verify must be 'checksum' or 'quick', got {verify!r}")
    out: list[ShardCheck] = []

    def manifest_of(folder: Path):
        try:
            return read_manifest(folder)
        except ShardError as e:
            out.append(ShardCheck(str(folder / MANIFEST), False, _reason(e, folder / MANIFEST)))
            return None

    if paths is not None:
        manifests: dict[Path, dict | None] = {}
        for p in map(Path, paths):
            if p.parent not in manifests:
                manifests[p.parent] = manifest_of(p.parent)
            try:
                validate_shard(p, grid=grid, complete=True)
                row = (manifests[p.parent] or {}).get("shards", {}).get(p.name)
                problem = None if row is None else manifest_mismatch(p, row, verify)
            except ShardError as e:
                out.append(ShardCheck(str(p), False, _reason(e, p)))
                continue
            if problem:
                out.append(ShardCheck(str(p), False, problem))
            elif row is None:
                out.append(ShardCheck(str(p), True, "valid; not in a manifest, so its content is not verified"))
            else:
                out.append(ShardCheck(str(p), True, "valid, " + ("file size matches the manifest" if verify == "quick"
                                                                 else "content checksum matches the manifest")))
        return out
    folder = mocks_dir(profile)
    plan = shard_plan(profile)
    if not (folder / MANIFEST).exists() and not any((folder / s.name).exists() for s in plan):
        raise ShardError(f"{folder}: no mock shards of profile {profile.name!r}; make them with "
                         f"'zoa mocks --profile {profile.name}'")
    manifest = manifest_of(folder)
    for spec in plan:
        path = folder / spec.name
        if manifest is None:
            try:
                validate_shard(path, grid=profile.box.grid, complete=True)
                out.append(ShardCheck(str(path), True, "valid; the manifest is unreadable, so its content is not "
                                                       "verified"))
            except ShardError as e:
                out.append(ShardCheck(str(path), False, _reason(e, path)))
            continue
        state, reason, _ = shard_status(folder, spec, manifest, profile, verify)
        if state == "adopt":
            reason = "valid; not yet in the manifest ('zoa mocks' adds it)"
        out.append(ShardCheck(str(path), state != "make", _reason(reason, path) if state == "make" else reason))
    return out


def _clean_temporaries(folder: Path, names: Sequence[str]) -> list[Path]:
    """Remove the temporaries of a killed run (:func:`zoa_lib.io.clean_temporaries`) —
    only those of the shards this run owns, and the manifest's under its lock, so that
    concurrent ``--shards`` jobs on one folder do not delete each other's files."""
    removed = []
    for name in names:
        for p in folder.glob(f"{TMP_PREFIX}{name}.*"):
            p.unlink(missing_ok=True)
            removed.append(p)
    with manifest_lock(folder):
        for p in folder.glob(f"{TMP_PREFIX}{MANIFEST}.*"):
            p.unlink(missing_ok=True)
            removed.append(p)
    return removed


def _manifest_row(res: dict) -> dict:
    return {k: res[k] for k in ("split", "start", "stop", "n", "sha256", "bytes") if k in res}


# --------------------------------------------------------------------------- driver
def _client(scheduler: str, workers: int, profile):
    """(client, cluster) for ``local`` (LocalCluster), ``slurm`` (dask-jobqueue) or an address."""
    import logging

    from distributed import Client, LocalCluster

    if scheduler == "local":
        cluster = LocalCluster(n_workers=workers, threads_per_worker=1, processes=True,
                               dashboard_address=None, silence_logs=logging.ERROR)
        return Client(cluster), cluster
    if scheduler == "slurm":
        import shutil

        if shutil.which("sbatch") is None:
            raise MocksError("--scheduler slurm: sbatch not found; run on a Slurm login node, or use "
                             "--scheduler local (or a Slurm array of --shards jobs, hpc/mocks-array.sbatch)")
        try:
            import dask
            from dask_jobqueue import SLURMCluster
        except ImportError as e:
            raise MocksError(f"--scheduler slurm needs dask-jobqueue ({e})") from None
        kw = {"cores": 1, "processes": 1, "job_name": "zoa-mocks"}
        if not dask.config.get("jobqueue.slurm.memory", None):
            kw["memory"] = f"{worker_memory_gib(profile)}GiB"
        try:
            cluster = SLURMCluster(**kw)
        except Exception as e:  # noqa: BLE001 - configuration errors of dask-jobqueue
            raise MocksError(f"--scheduler slurm: cannot start a SLURMCluster ({e}); set queue/account/"
                             "walltime in ~/.config/dask/jobqueue.yaml") from None
        cluster.scale(jobs=workers)
        return Client(cluster), cluster
    try:
        return Client(scheduler, timeout=CONNECT_TIMEOUT), None
    except (OSError, ValueError, TypeError) as e:
        raise MocksError(f"--scheduler {scheduler!r}: cannot connect to a Dask scheduler ({e}); "
                         "use local, slurm, sync or tcp://HOST:PORT") from None


def worker_memory_gib(profile) -> int:
    """Rough memory (GiB) one worker needs: the parent box's particles, ICs, LPT and
    field arrays (~120 bytes per particle) plus 2 GiB."""
    return int(math.ceil(120 * profile.simulation.parent_mesh ** 3 / 2 ** 30 + 2))


def generate(profile, shards: str | Sequence[int] | None = None, workers: int | None = None,
             scheduler: str = "local", progress: bool = True, force: bool = False, verify: str = "checksum",
             log: Callable[[str], None] | None = None) -> dict:
    """Make the profile's mock shards (all, or ``shards``: ``"A:B"`` or indices) in
    ``mocks_dir(profile)``, skipping complete ones (module docstring).

    scheduler : ``local`` (dask LocalCluster, ``workers`` processes, 1 thread each),
        ``slurm`` (dask-jobqueue SLURMCluster, ``workers`` jobs), a scheduler address
        (``tcp://host:port``), or ``sync`` (in this process, no Dask; for debugging).
    verify : ``checksum`` (re-hash complete shards) or ``quick`` (validate + size only).
    Returns a summary: shards made, skipped, adopted, regenerated (with reasons), seconds.
    """
    log = log or (lambda msg: print(msg, file=sys.stderr))
    workers = int(workers or profile.mocks.workers)
    if workers < 1:
        raise MocksError(f"--workers must be >= 1, got {workers}")
    if verify not in ("checksum", "quick"):
        raise MocksError(f"verify must be 'checksum' or 'quick', got {verify!r}")
    t0 = time.perf_counter()
    folder = ensure_writable(mocks_dir(profile))  # a read-only folder: one line, before any work
    plan = shard_plan(profile)
    if shards is None or isinstance(shards, str):
        selected = [plan[i] for i in parse_shard_range(shards, len(plan))]
    else:
        bad = [i for i in shards if not 0 <= int(i) < len(plan)]
        if bad:
            raise MocksError(f"shards {bad}: outside 0..{len(plan) - 1}")
        selected = [plan[int(i)] for i in shards]
    removed = _clean_temporaries(folder, [s.name for s in selected])
    if removed:
        log(f"removed {len(removed)} temporary file(s) left by an interrupted run")
    cfg_sha = config_checksum(profile)
    manifest = read_manifest(folder)
    if manifest.get("shards") and manifest.get("config_sha256") not in (None, cfg_sha):
        changed = _diff_keys(manifest.get("config", {}), mock_config(profile))
        if not force:
            raise MocksError(f"{folder}: existing mocks were made with a different configuration "
                             f"(changed: {', '.join(changed) or 'unknown'}); use --force to replace them, "
                             f"or another data folder (-p data_dir=... or $ZOA_DATA)")
        log(f"--force: replacing mocks made with another configuration ({', '.join(changed)})")

        def reset(m):
            m.clear()
            m["shards"] = {}
        manifest = update_manifest(folder, reset)

    todo, skipped, adopted, regenerated = [], [], [], {}
    for spec in selected:
        state, reason, row = shard_status(folder, spec, manifest, profile, verify)
        if state == "complete":
            skipped.append(spec.name)
        elif state == "adopt":
            adopted.append(spec.name)
            manifest["shards"][spec.name] = _manifest_row(row)
        else:
            todo.append(spec)
            if reason != "missing":
                regenerated[spec.name] = reason
                log(f"{spec.name}: {reason}; regenerating")

    def header(m):
        m["profile"] = profile.name
        m["config_sha256"] = cfg_sha
        m["config"] = mock_config(profile)
        m["plan"] = {"n_shards": len(plan), "shard_size": profile.mocks.shard_size,
                     "splits": {k: list(v) for k, v in split_ranges(profile).items()},
                     "boxes": {k: list(v) for k, v in split_boxes(profile).items()},
                     "observers_per_box": profile.simulation.observers_per_box}
        for name in regenerated:
            m["shards"].pop(name, None)
        for name in adopted:
            m["shards"][name] = manifest["shards"][name]
    update_manifest(folder, header)

    made, failed = [], {}

    def done(res):
        made.append(res)
        update_manifest(folder, lambda m: m["shards"].__setitem__(res["name"], _manifest_row(res)))

    if todo:
        _run(profile, folder, todo, workers, scheduler, progress, done, failed)
    summary = {
        "profile": profile.name, "folder": display_path(folder), "scheduler": scheduler, "workers": workers,
        "shards_selected": len(selected), "made": [r["name"] for r in made], "skipped": skipped,
        "adopted": adopted, "regenerated": regenerated, "failed": failed,
        "mocks_made": int(sum(r["n"] for r in made)),
        "seconds": round(time.perf_counter() - t0, 2),
        "seconds_per_shard": [r["seconds"] for r in made],
    }
    if failed:
        first = next(iter(failed.items()))
        raise MocksError(f"{len(failed)} shard task(s) failed, first {first[0]}: {first[1]} "
                         f"(completed shards are kept; rerun to retry)")
    return summary


def _progress(total: int, enabled: bool):
    from tqdm.auto import tqdm

    return tqdm(total=total, unit="shard", desc="mocks", disable=not enabled or None, file=sys.stderr)


def _shard_task(profile, spec: ShardSpec, folder, fft_workers: int | None = None) -> dict:
    """:func:`make_shard` as a Dask task: a user-facing error (a full disk, a read-only folder)
    comes back as ``{"name", "error", "output_error"}`` for the driver to report in one line,
    rather than as a failed task that each worker logs with its traceback."""
    from .io import OutputError

    try:
        return make_shard(profile, spec, folder, fft_workers)
    except ZoaError as e:
        return {"name": spec.name, "error": str(e), "output_error": isinstance(e, OutputError)}


def _run(profile, folder, todo, workers, scheduler, progress, done, failed):
    bar = _progress(len(todo), progress)
    try:
        if scheduler == "sync":
            for spec in todo:
                done(make_shard(profile, spec, folder))
                bar.update(1)
            return
        from distributed import as_completed

        if scheduler in ("local", "slurm"):
            workers = min(workers, len(todo))  # no idle workers to start
        client, cluster = _client(scheduler, workers, profile)
        try:
            futures = [client.submit(_shard_task, profile, spec, str(folder), 1, pure=False,
                                     key=f"zoa-mocks-{spec.name}-{time.time_ns()}") for spec in todo]
            names = {f.key: spec.name for f, spec in zip(futures, todo)}
            for fut in as_completed(futures):
                try:
                    res = fut.result()
                except Exception as e:  # noqa: BLE001 - report per shard, keep the others
                    failed[names[fut.key]] = f"{type(e).__name__}: {e}"
                else:
                    if "error" not in res:
                        done(res)
                    else:
                        failed[res["name"]] = res["error"]
                        if res["output_error"]:  # the folder cannot take more shards: stop now
                            client.cancel([f for f in futures if not f.done()])
                            break
                bar.update(1)
        finally:
            client.close()
            if cluster is not None:
                cluster.close()
            if failed:  # tasks cancelled mid-write leave temporaries of the shards this run owns
                _clean_temporaries(Path(folder), [spec.name for spec in todo])
    finally:
        bar.close()


# --------------------------------------------------------------------------- benchmark
def benchmark(profile, n_mocks: int | None = None, parallel_shards: int | None = None) -> dict:
    """Speed and size of mock generation at the profile's sizes (``zoa bench mocks``).

    1. In this process: one parent box, then ``n_mocks`` samples (default: one box's
       observers, at most 16), timed per stage, and a shard of them written.
    2. With Dask (LocalCluster, ``mocks.workers`` processes): ``parallel_shards`` full
       shards (default: one per worker) generated into a temporary folder, wall time
       including the cluster start.

    Returns mocks per second (serial and parallel), seconds per stage, bytes per mock,
    peak memory of the worker processes, and the estimated time of the profile's whole
    mock set: cluster start + ceil(n_shards / workers) × the mean shard time.
    """
    import resource
    import tempfile

    from . import fields, simulation

    K = profile.simulation.observers_per_box
    n = int(n_mocks or min(K, 16))
    t = {}
    a = time.perf_counter()
    box = simulation.make_parent_box(profile, 0)
    t["box"] = time.perf_counter() - a
    a = time.perf_counter()
    fields.parent_fields(profile, box)
    t["parent_fields"] = time.perf_counter() - a
    t_cut = 0.0
    stage = {"targets": 0.0, "survey": 0.0, "grid": 0.0}
    n_gal = []
    samples = []
    for i in range(n):
        a = time.perf_counter()
        cube = simulation.observer_cubes(profile, box, [i % K])[0]
        t_cut += time.perf_counter() - a
        inp, tg, cat = sample_from_cube(profile, box, cube, i, timings=stage)
        n_gal.append(len(cat))
        samples.append((inp, tg, cat, cube))
    t_tgt, t_sur, t_grid = stage["targets"], stage["survey"], stage["grid"]
    with tempfile.TemporaryDirectory(prefix="zoa-bench-") as tmp:
        spec = ShardSpec(0, "bench.h5", "train", 0, n)
        a = time.perf_counter()
        with ShardWriter(Path(tmp) / spec.name, n, profile.box.grid, shard_attrs(profile, spec)) as w:
            for i, (inp, tg, cat, cube) in enumerate(samples):
                w.write(i, inp, {"delta": tg.delta, "phi": tg.phi, "velocity": tg.velocity}, cat, sample=i,
                        observer=cube.observer, rotation=cube.rotation, box_index=0)
        t_write = time.perf_counter() - a
        bytes_per_mock = (Path(tmp) / spec.name).stat().st_size / n
    del samples, box
    per_mock_serial = (t_cut + t_tgt + t_sur + t_grid + t_write) / n
    serial_shard_estimate = t["box"] + t["parent_fields"] + per_mock_serial * profile.mocks.shard_size

    # parallel: whole shards with Dask in a temporary data folder
    workers = profile.mocks.workers
    plan = shard_plan(profile)
    k = int(parallel_shards or min(workers, len(plan)))
    with tempfile.TemporaryDirectory(prefix="zoa-bench-data-") as tmp:
        old = os.environ.get("ZOA_DATA")
        os.environ["ZOA_DATA"] = tmp
        try:
            a = time.perf_counter()
            summary = generate(profile, shards=list(range(k)), workers=workers, scheduler="local",
                               progress=False, log=lambda m: None)
            wall = time.perf_counter() - a
        finally:
            if old is None:
                os.environ.pop("ZOA_DATA", None)
            else:
                os.environ["ZOA_DATA"] = old
    shard_secs = summary["seconds_per_shard"]
    mean_shard = float(np.mean(shard_secs))
    startup = max(0.0, wall - max(shard_secs))
    mocks_par = summary["mocks_made"]
    rounds = math.ceil(len(plan) / workers)
    est_total = startup + rounds * mean_shard * (profile.mocks.shard_size / max(1, mocks_par / k))
    child_peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024.0
    return {
        "n_mocks_serial": n,
        "seconds_parent_box": round(t["box"], 3),
        "seconds_parent_fields": round(t["parent_fields"], 3),
        "seconds_per_mock_cube_cut": round(t_cut / n, 4),
        "seconds_per_mock_targets": round(t_tgt / n, 4),
        "seconds_per_mock_survey": round(t_sur / n, 4),
        "seconds_per_mock_gridding": round(t_grid / n, 4),
        "seconds_per_mock_write": round(t_write / n, 4),
        "galaxies_per_mock": round(float(np.mean(n_gal)), 1),
        "mocks_per_second_serial_excl_box": round(1.0 / per_mock_serial, 2),
        "mocks_per_second_serial_incl_box": round(profile.mocks.shard_size / serial_shard_estimate, 3),
        "bytes_per_mock": int(round(bytes_per_mock)),
        "parallel_workers": workers,
        "parallel_shards": k,
        "parallel_mocks": mocks_par,
        "parallel_wall_seconds": round(wall, 2),
        "parallel_seconds_per_shard": shard_secs,
        "dask_startup_seconds_approx": round(startup, 2),
        "mocks_per_second_parallel": round(mocks_par / wall, 3),
        "n_shards_total": len(plan),
        "n_mocks_total": profile.mocks.n_total,
        "estimated_seconds_full_set": round(est_total, 1),
        "estimated_bytes_full_set": int(bytes_per_mock * profile.mocks.n_total),
        "peak_rss_worker_mib": round(child_peak, 1),
    }
