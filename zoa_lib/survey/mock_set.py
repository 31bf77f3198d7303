"""The mock set on disk: the status and checks of its shards, the driver that generates it
(Dask: local processes, a Slurm cluster or an existing scheduler; resumable), and its
benchmark. The plan, the samples and the building of one shard are :mod:`zoa_lib.survey.mocks`;
see its docstring for determinism, resuming and checking.
"""
from __future__ import annotations

import logging
import math
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from zoa_lib.errors import ZoaError
from zoa_lib.io.atomic import TMP_PREFIX, ensure_writable
from zoa_lib.io.paths import display_path
from zoa_lib.survey.mocks import (
    CONNECT_TIMEOUT,
    MocksError,
    ShardSpec,
    config_checksum,
    diff_keys,
    make_shard,
    mock_config,
    parse_shard_range,
    sample_from_cube,
    shard_attrs,
    shard_plan,
    split_boxes,
    split_ranges,
)
from zoa_lib.survey.shards import (
    MANIFEST,
    ShardError,
    ShardWriter,
    content_checksum,
    manifest_lock,
    manifest_mismatch,
    mocks_dir,
    read_manifest,
    update_manifest,
    validate_shard,
)

logger = logging.getLogger(__name__)


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

    With ``paths``: each file is validated (:func:`zoa_lib.survey.shards.validate_shard`, index
    datasets required, at ``grid`` when given) and, when the ``manifest.json`` beside it
    lists it, compared with its row (:func:`zoa_lib.survey.shards.manifest_mismatch`: content
    checksum, or file size with ``verify="quick"``). Without: the profile's planned shards
    in :func:`zoa_lib.survey.shards.mocks_dir`, each judged as ``zoa mocks`` does
    (:func:`shard_status`: complete or adoptable is fine; missing, corrupt, stale or
    changed is not). An unreadable manifest is one bad entry of its own (the shards are
    then only validated). Returns one :class:`ShardCheck` per file (and per bad manifest);
    raises :class:`zoa_lib.survey.shards.ShardError` when the profile has no shards at all.
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
    """Remove the temporaries of a killed run (:func:`zoa_lib.io.atomic.clean_temporaries`) —
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
#: glibc malloc settings of the local Dask workers (:func:`_client`): large arrays from the
#: heap, not from fresh ``mmap`` pages, and freed memory kept for the next shard.
WORKER_MALLOC = {"MALLOC_MMAP_THRESHOLD_": 2 ** 30, "MALLOC_TRIM_THRESHOLD_": 2 ** 30,
                 "MALLOC_TOP_PAD_": 2 ** 28}


def _client(scheduler: str, workers: int, profile):
    """(client, cluster) for ``local`` (LocalCluster), ``slurm`` (dask-jobqueue) or an address."""
    from distributed import Client, LocalCluster

    if scheduler == "local":
        import dask

        # Dask starts its workers with glibc returning freed memory to the OS above 64 KiB
        # (distributed.nanny.pre-spawn-environ); a shard then allocates its particle arrays
        # afresh, page by page, each time: a fifth of a shard's time went to page faults.
        # The workers keep their memory instead (their peak is the same).
        with dask.config.set({f"distributed.nanny.pre-spawn-environ.{k}": v for k, v in WORKER_MALLOC.items()}):
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
    log : called with each progress message instead of this module's logger (which logs the
        shards found damaged or stale, and a --force replacement, as warnings).
    Returns a summary: shards made, skipped, adopted, regenerated (with reasons), seconds.
    """
    info, warn = log or logger.info, log or logger.warning
    workers = int(workers or profile.mocks.workers)
    if workers < 1:
        raise MocksError(f"--workers must be >= 1, got {workers}")
    if verify not in ("checksum", "quick"):
        raise MocksError(f"verify must be 'checksum' or 'quick', got {verify!r}")
    t0 = time.perf_counter()
    from zoa_lib.survey.selection import catalogue_selection

    catalogue_selection(profile)  # a bad survey.catalogue: one line, before anything is written
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
        info(f"removed {len(removed)} temporary file(s) left by an interrupted run")
    cfg_sha = config_checksum(profile)
    manifest = read_manifest(folder)
    if manifest.get("shards") and manifest.get("config_sha256") not in (None, cfg_sha):
        changed = diff_keys(manifest.get("config", {}), mock_config(profile))
        if not force:
            raise MocksError(f"{folder}: existing mocks were made with a different configuration "
                             f"(changed: {', '.join(changed) or 'unknown'}); use --force to replace them, "
                             f"or another data folder (-p data_dir=... or $ZOA_DATA)")
        warn(f"--force: replacing mocks made with another configuration ({', '.join(changed)})")

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
                warn(f"{spec.name}: {reason}; regenerating")

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
    from zoa_lib.io.atomic import OutputError

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

    from zoa_lib.universe import fields, simulation

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
