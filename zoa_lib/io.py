"""Atomic writes and provenance.

Every file the pipeline writes goes through :func:`atomic_path`: the content is
written under a temporary name in the destination folder and renamed into place
only when complete, so an interrupted run leaves the old file or the new one, never
a torn one. :func:`provenance` gives the attrs every file carries (DESIGN.md).

Temporary names are ``.tmp-<name>.<writer>.<random><suffix>``, where ``<writer>`` is
``<machine>-<pid>`` (:func:`writer_tag`: a hash of host name, boot id and PID namespace,
and the writing process's id). A process killed with ``kill -9`` (or by the OOM killer,
or a Slurm time limit) cannot remove its temporary; the next :func:`atomic_path` into the
same folder does (:func:`remove_stale_temporaries`): every temporary there whose writer
ran on this machine and is no longer alive. Temporaries of live processes, and of other
machines sharing the folder, are never touched.

A write that fails because the folder is read-only or not ours (EACCES, EPERM, EROFS),
or the disk is full (ENOSPC, EDQUOT) or the file-size limit hit (EFBIG), raises
:class:`OutputError` — one line naming the path, the cause and what to do — after
removing the temporary; the previous file at ``path`` is left as it was.
:func:`ensure_writable` checks a folder up front, before a long computation.

Crash-safety tests stop a process at a named step with ``ZOA_TEST_STOP_AT`` (:func:`stop_point`):
every atomic write is two steps, ``write:<name>`` (temporary complete, not yet renamed) and
``wrote:<name>`` (renamed), so a test kills at an exact point instead of after a delay.

``created_utc`` in :func:`provenance` honours ``SOURCE_DATE_EPOCH`` (the reproducible-builds
convention): with it set, two runs of a profile write byte-identical shards and JSON.
"""
from __future__ import annotations

import contextlib
import datetime as _dt
import errno
import hashlib
import json
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Iterator

from . import __version__
from .errors import ZoaError

TMP_PREFIX = ".tmp-"
#: Environment variable naming the step at which :func:`stop_point` kills the process.
STOP_AT_ENV = "ZOA_TEST_STOP_AT"
_stop_counts: dict[str, int] = {}


class OutputError(ZoaError, OSError):
    """The output folder cannot be written (read-only, full disk, missing)."""

    def __str__(self):  # the message alone, without OSError's "[Errno N]"
        return self.strerror or super().__str__()


#: errno -> (what happened, what to do) for writes that fail for want of space or rights.
_WRITE_ERRORS = {
    errno.ENOSPC: ("the disk is full", "free some space, or point ZOA_DATA at a larger file system, and rerun"),
    errno.EDQUOT: ("the disk quota is exceeded", "free some space, or point ZOA_DATA at a larger file system, "
                   "and rerun"),
    errno.EFBIG: ("the file is larger than allowed (file-size limit, ulimit -f)",
                  "raise the limit or write elsewhere, and rerun"),
    errno.EROFS: ("the file system is read-only", "point ZOA_DATA (or -p data_dir=...) at a writable folder"),
    errno.EACCES: ("permission denied", "make the folder writable for this user, or point ZOA_DATA "
                   "(or -p data_dir=...) at a writable folder"),
    errno.EPERM: ("operation not permitted", "make the folder writable for this user, or point ZOA_DATA "
                  "(or -p data_dir=...) at a writable folder"),
}


def write_errno(exc: BaseException) -> int | None:
    """The errno of a failed write if it is one of :data:`_WRITE_ERRORS` (out of space,
    size limit, no write permission), looking through chained exceptions and HDF5's
    ``errno = N`` messages; None otherwise."""
    seen = set()
    e = exc
    while e is not None and id(e) not in seen:
        seen.add(id(e))
        if isinstance(e, OSError):
            if e.errno in _WRITE_ERRORS:
                return e.errno
            m = re.search(r"errno = (\d+)", str(e))
            if m and int(m.group(1)) in _WRITE_ERRORS:
                return int(m.group(1))
        e = e.__cause__ or e.__context__
    return None


def output_error(path: str | os.PathLike, exc: BaseException, folder: bool = False) -> OutputError | None:
    """An :class:`OutputError` (one line: path, cause, what to do) for a write that failed
    for want of space or rights, else None."""
    code = write_errno(exc)
    if code is None:
        return None
    what, todo = _WRITE_ERRORS[code]
    return OutputError(code, f"cannot write {'in ' if folder else ''}{path}: {what} "
                             f"({errno.errorcode.get(code, code)}); {todo}")


def ensure_writable(folder: str | os.PathLike) -> Path:
    """Create ``folder`` if needed and check that a file can be created in it; raise
    :class:`OutputError` (one line) if not. Also removes stale temporaries there."""
    folder = Path(folder)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(prefix=_tmp_prefix("probe"), dir=folder)
        os.close(fd)
        os.unlink(probe)
    except OSError as e:
        err = output_error(folder, e, folder=True)
        if err is None:
            raise OutputError(e.errno, f"cannot write in {folder}: {e.strerror or e}") from None
        raise err from None
    remove_stale_temporaries(folder)
    return folder


def _machine_id() -> str:
    parts = [socket.gethostname()]
    try:
        parts.append(Path("/proc/sys/kernel/random/boot_id").read_text().strip())
        parts.append(str(os.stat("/proc/self/ns/pid").st_ino))
    except OSError:
        pass
    return hashlib.sha1("|".join(parts).encode()).hexdigest()[:8]


_MACHINE = _machine_id()
#: ``.tmp-<name>.<machine>-<pid>.<mkstemp's 8 random characters><suffix>``
_TMP_NAME = re.compile(r"\.tmp-.*\.([0-9a-f]{8})-(\d+)\.[a-z0-9_]{8}(\..*)?")


def writer_tag(pid: int | None = None) -> str:
    """``<machine>-<pid>``: which process on which machine writes a temporary."""
    return f"{_MACHINE}-{os.getpid() if pid is None else pid}"


def _tmp_prefix(name: str) -> str:
    return f"{TMP_PREFIX}{name}.{writer_tag()}."


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # EPERM: it exists, run by someone else
        return True
    return True


def stale_temporaries(folder: str | os.PathLike) -> list[Path]:
    """Temporaries in ``folder`` left by dead processes of this machine (see the module doc)."""
    folder = Path(folder)
    try:
        names = os.listdir(folder)
    except OSError:
        return []
    out = []
    for name in names:
        m = _TMP_NAME.fullmatch(name) if name.startswith(TMP_PREFIX) else None
        if m and m.group(1) == _MACHINE and not _alive(int(m.group(2))):
            out.append(folder / name)
    return sorted(out)


def remove_stale_temporaries(folder: str | os.PathLike) -> list[Path]:
    """Remove :func:`stale_temporaries` of ``folder`` (silently skipping what cannot be
    removed); return the removed paths."""
    removed = []
    for p in stale_temporaries(folder):
        try:
            if p.is_dir():
                import shutil

                shutil.rmtree(p)
            else:
                p.unlink()
            removed.append(p)
        except FileNotFoundError:
            pass
        except OSError:
            pass
    return removed


def file_sha256(path: str | os.PathLike) -> str:
    """SHA-256 (hex) of a file's bytes, read in 1 MiB blocks."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def git_commit() -> str:
    """Short git commit of the source tree, with ``-dirty`` if modified; ``unknown``
    outside a checkout."""
    root = Path(__file__).resolve().parent.parent
    try:
        out = subprocess.run(["git", "-C", str(root), "describe", "--always", "--dirty", "--abbrev=12"],
                             capture_output=True, text=True, timeout=10)
        return out.stdout.strip() or "unknown"
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def created_utc() -> str:
    """Now (UTC, ISO 8601, seconds), or ``SOURCE_DATE_EPOCH`` when that is set (reproducible
    builds: the same profile then gives the same bytes)."""
    epoch = os.environ.get("SOURCE_DATE_EPOCH", "").strip()
    if epoch:
        try:
            t = _dt.datetime.fromtimestamp(int(epoch), _dt.timezone.utc)
        except (ValueError, OverflowError, OSError):
            raise ZoaError(f"SOURCE_DATE_EPOCH={epoch!r}: expected seconds since 1970 (an integer)") from None
    else:
        t = _dt.datetime.now(_dt.timezone.utc)
    return t.isoformat(timespec="seconds")


def provenance(profile=None, **extra) -> dict:
    """Attrs for a written file: package version, git commit, UTC creation time, and the
    profile's name, seed and full parameters (as JSON) when a profile is given."""
    attrs = {
        "zoa_version": __version__,
        "git_commit": git_commit(),
        "created_utc": created_utc(),
    }
    if profile is not None:
        attrs["profile"] = profile.name
        attrs["seed"] = int(profile.seed)
        attrs["parameters"] = json.dumps(profile.to_dict(), sort_keys=True)
    attrs.update(extra)
    return attrs


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike, suffix: str | None = None) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; rename it onto ``path`` on success.

    On any exception the temporary file is removed and ``path`` is untouched.
    A read-only folder or a full disk raises :class:`OutputError` naming the path.
    Temporaries that killed processes left in the folder are removed first.
    """
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        remove_stale_temporaries(path.parent)
        fd, tmp = tempfile.mkstemp(prefix=_tmp_prefix(path.name), suffix=suffix or path.suffix,
                                   dir=path.parent)
        os.close(fd)
    except OSError as e:
        err = output_error(path.parent, e, folder=True)
        if err is None:
            raise OutputError(e.errno, f"cannot write in {path.parent}: {e.strerror or e}") from None
        raise err from None
    tmp = Path(tmp)
    try:
        yield tmp
        if tmp.exists():  # mkstemp makes 0600; give the file the usual umask permissions
            umask = os.umask(0)
            os.umask(umask)
            os.chmod(tmp, 0o666 & ~umask)
        stop_point("write:" + path.name)
        os.replace(tmp, path)
    except BaseException as e:
        _remove(tmp)
        err = output_error(path, e)
        if err is not None:
            raise err from None
        raise
    stop_point("wrote:" + path.name)


def _exit_with_parent(parent: int) -> None:
    """Pool-worker initializer: a daemon thread ends this process as soon as ``parent`` is gone,
    so that a killed ``zoa`` command leaves no worker behind (holding its output pipes)."""
    import threading
    import time

    def watch():
        while os.getppid() == parent:
            time.sleep(0.2)
        os._exit(1)

    threading.Thread(target=watch, daemon=True, name="zoa-parent-watch").start()


#: The FFTs' thread count, read at every transform (:func:`zoa_lib.fourier.fft_workers`).
FFT_WORKERS_ENV = "ZOA_FFT_WORKERS"
#: Environment variables that size a process's thread pools, read when each library loads
#: (:data:`FFT_WORKERS_ENV` at every transform).
THREAD_ENV = (FFT_WORKERS_ENV, "OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMBA_NUM_THREADS")


def available_cores() -> int:
    """The CPU cores this process may run on (its affinity mask where the OS has one)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # macOS, Windows
        return os.cpu_count() or 1


def pool_threads(workers: int) -> int:
    """Threads each of ``workers`` pool processes gets (:func:`process_pool`): an equal share
    of :func:`available_cores`, at least one."""
    return max(1, available_cores() // max(1, int(workers)))


def _limit_loaded_libraries(threads: int):
    """Limit the BLAS and OpenMP libraries loaded in this process to ``threads`` threads
    (threadpoolctl; numpy and scipy each bring their own OpenBLAS, both loaded first).
    Returns the limiter, whose ``restore_original_limits()`` undoes it."""
    import numpy  # noqa: F401
    import scipy.linalg  # noqa: F401
    from threadpoolctl import threadpool_limits

    return threadpool_limits(int(threads))


@contextlib.contextmanager
def thread_share(threads: int):
    """Run the block as a worker of :func:`process_pool` runs: at most ``threads`` threads for
    the FFTs (:data:`FFT_WORKERS_ENV`) and the BLAS and OpenMP libraries loaded; restored
    afterwards. The benchmarks time the pools' units this way."""
    old = os.environ.get(FFT_WORKERS_ENV)
    os.environ[FFT_WORKERS_ENV] = str(int(threads))
    limiter = _limit_loaded_libraries(threads)
    try:
        yield
    finally:
        limiter.restore_original_limits()
        if old is None:
            os.environ.pop(FFT_WORKERS_ENV, None)
        else:
            os.environ[FFT_WORKERS_ENV] = old


def _pool_worker(parent: int, threads: int) -> None:
    """Pool-worker initializer: end with ``parent`` (:func:`_exit_with_parent`) and keep to
    ``threads`` threads in every pool: the FFTs, OpenMP and the BLAS libraries already loaded
    (threadpoolctl; numpy and scipy each bring their own OpenBLAS) and those loaded later
    (:data:`THREAD_ENV`). Without it each of two workers on two cores ran two BLAS threads
    that spin while they wait: the Wiener filters took three times their CPU time."""
    for name in THREAD_ENV:
        os.environ[name] = str(threads)
    _limit_loaded_libraries(threads)
    _exit_with_parent(parent)


def process_pool(workers: int):
    """A ``ProcessPoolExecutor`` of ``workers`` spawned processes (spawn, not fork: the caller
    may have TensorFlow's threads running) that end when this process ends, killed or not.
    Each worker gets an equal share of the cores for its threads (FFT, BLAS, OpenMP; at
    least one): ``workers`` processes never run more threads than there are cores."""
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    threads = pool_threads(workers)
    return ProcessPoolExecutor(int(workers), mp_context=multiprocessing.get_context("spawn"),
                               initializer=_pool_worker, initargs=(os.getpid(), threads))


def stop_armed() -> bool:
    """Whether ``$ZOA_TEST_STOP_AT`` names a step (only crash-safety tests set it)."""
    return bool(os.environ.get(STOP_AT_ENV))


def stop_point(step: str) -> None:
    """Kill this process with SIGKILL, as ``kill -9`` would, when it reaches the step that
    ``$ZOA_TEST_STOP_AT`` names; nothing otherwise (the variable is unset outside tests).

    ``ZOA_TEST_STOP_AT=STEP`` stops the first time the process reaches ``STEP``,
    ``STEP#K`` the K-th time (K ≥ 1, counted per process). Steps: ``write:<file name>``
    (an atomic write whose temporary is complete, before its rename), ``wrote:<file name>``
    (just after the rename) and ``train-batch`` (after each training batch,
    :mod:`zoa_lib.training.fitting`). Output is flushed first; no cleanup code runs."""
    want = os.environ.get(STOP_AT_ENV)
    if not want:
        return
    name, _, k = want.rpartition("#") if "#" in want else (want, "", "1")
    if name != step:
        return
    _stop_counts[step] = _stop_counts.get(step, 0) + 1
    if _stop_counts[step] == int(k):
        sys.stdout.flush()
        sys.stderr.flush()
        os.kill(os.getpid(), signal.SIGKILL)


def _remove(tmp: Path) -> None:
    try:
        if tmp.is_dir():
            import shutil

            shutil.rmtree(tmp, ignore_errors=True)
        else:
            tmp.unlink(missing_ok=True)
    except OSError:
        pass


def write_text_atomic(path: str | os.PathLike, text: str) -> Path:
    """Write ``text`` to ``path`` atomically (UTF-8)."""
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")
    return Path(path)


def write_json_atomic(path: str | os.PathLike, obj) -> Path:
    """Write ``obj`` as indented, key-sorted JSON to ``path`` atomically."""
    return write_text_atomic(path, json.dumps(obj, indent=2, sort_keys=True, default=_json_default) + "\n")


def _json_default(o):
    import numpy as np

    if isinstance(o, np.generic):
        return o.item()
    if isinstance(o, np.ndarray):
        return o.tolist()
    if isinstance(o, Path):
        return str(o)
    raise TypeError(f"not JSON serialisable: {type(o).__name__}")


def clean_temporaries(folder: str | os.PathLike) -> list[Path]:
    """Remove temporary files left in ``folder`` by a killed process; return them."""
    folder = Path(folder)
    if not folder.exists():
        return []
    removed = []
    for p in folder.glob(TMP_PREFIX + "*"):
        p.unlink(missing_ok=True)
        removed.append(p)
    return removed


# --------------------------------------------------------------------------- paths on pages
#: The repository (the folder holding ``zoa_lib/``).
REPO_ROOT = Path(__file__).resolve().parent.parent


def book_root(start: str | os.PathLike | None = None) -> Path | None:
    """The nearest folder at or above ``start`` (default: the working directory) holding a
    ``_toc.yml`` — the book root a chapter runs in (``zoa run --root``); None if none."""
    p = Path(start if start is not None else os.getcwd()).absolute()
    for d in (p, *p.parents):
        if (d / "_toc.yml").is_file():
            return d
    return None


def _display_bases(root: str | os.PathLike | None = None) -> list[tuple[Path, str]]:
    """(absolute folder, how a page names it) in order of preference: the repository and the
    book root as relative paths, then ``$ZOA_DATA`` and the home folder by name."""
    bases: list[tuple[Path, str]] = [(REPO_ROOT, "")]
    broot = Path(root) if root is not None else book_root()
    if broot is not None:
        bases.append((broot, ""))
    if os.environ.get("ZOA_DATA"):
        bases.append((Path(os.environ["ZOA_DATA"]), "$ZOA_DATA/"))
    bases.append((Path.home(), "~/"))
    out, seen = [], set()
    for base, label in bases:  # each folder as written and with links resolved (/tmp → /private/tmp)
        for b in (base.absolute(), base.resolve()):
            if str(b) not in seen and str(b) != "/":
                seen.add(str(b))
                out.append((b, label))
    return out


def display_path(path: str | os.PathLike, root: str | os.PathLike | None = None) -> str:
    """``path`` as a page or a log line should show it: relative to the repository (or to the
    book root ``root``, default the one above the working directory), else under
    ``$ZOA_DATA/`` or ``~/``, else ``…/<parent>/<name>`` — never the machine's absolute path.

    >>> display_path(REPO_ROOT / "data" / "laptop" / "mocks")
    'data/laptop/mocks'
    """
    p = Path(path)
    if not p.is_absolute():
        return p.as_posix()
    for base, label in _display_bases(root):
        for q in (p, p.resolve()):
            try:
                rel = q.relative_to(base).as_posix()
            except ValueError:
                continue
            return label + rel if rel != "." else (label.rstrip("/") or ".")
    return "…/" + "/".join(p.parts[-2:]) if len(p.parts) > 2 else p.name


def scrub_paths(text: str, root: str | os.PathLike | None = None) -> str:
    """Replace, in free text, every absolute path under the repository, the book root
    ``root``, ``$ZOA_DATA`` or the home folder by its :func:`display_path` form (used on
    executed chapters before they become pages: text a notebook formats itself)."""
    for base, label in _display_bases(root):  # in display_path's order of preference
        text = re.sub(re.escape(str(base)) + r"(/|(?=[^\w.\-/]|\.(?:\s|$))|$)",
                      lambda m, lab=label: lab if m.group(1) else (lab.rstrip("/") or "."), text)
    return text
