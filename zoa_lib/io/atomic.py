"""Atomic writes and provenance.

Every file the pipeline writes goes through :func:`atomic_path`: the content is
written under a temporary name in the destination folder and renamed into place
only when complete, so an interrupted run leaves the old file or the new one, never
a torn one. :func:`~zoa_lib.io.provenance.provenance` gives the attrs every file carries (DESIGN.md).

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

``created_utc`` in :func:`~zoa_lib.io.provenance.provenance` honours ``SOURCE_DATE_EPOCH`` (the reproducible-builds
convention): with it set, two runs of a profile write byte-identical shards and JSON.
"""
from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import os
import re
import socket
import tempfile
from pathlib import Path
from typing import Iterator

from zoa_lib.errors import ZoaError
from zoa_lib.io.crash_points import stop_point

TMP_PREFIX = ".tmp-"


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
    return write_text_atomic(path, json.dumps(obj, indent=2, sort_keys=True, default=json_default) + "\n")


def json_default(o):
    """``json.dumps``'s ``default`` for what the pipeline writes: numpy scalars and arrays as
    numbers and lists, paths as strings; anything else raises :class:`TypeError`."""
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


