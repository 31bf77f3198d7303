"""Atomic writes and provenance.

Every file the pipeline writes goes through :func:`atomic_path`: the content is
written under a temporary name in the destination folder and renamed into place
only when complete, so an interrupted run leaves the old file or the new one, never
a torn one. :func:`provenance` gives the attrs every file carries (DESIGN.md).
"""
from __future__ import annotations

import contextlib
import datetime as _dt
import errno
import json
import os
import subprocess
import tempfile
from pathlib import Path
from typing import Iterator

from . import __version__
from .errors import ZoaError

TMP_PREFIX = ".tmp-"


class OutputError(ZoaError, OSError):
    """The output folder cannot be written (read-only, full disk, missing)."""


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


def provenance(profile=None, **extra) -> dict:
    """Attrs for a written file: package version, git commit, UTC creation time, and the
    profile's name, seed and full parameters (as JSON) when a profile is given."""
    attrs = {
        "zoa_version": __version__,
        "git_commit": git_commit(),
        "created_utc": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
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
    """
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=TMP_PREFIX + path.name + ".", suffix=suffix or path.suffix,
                                   dir=path.parent)
        os.close(fd)
    except OSError as e:
        raise OutputError(e.errno, f"cannot write in {path.parent}: {e.strerror}") from None
    tmp = Path(tmp)
    try:
        yield tmp
        if tmp.exists():  # mkstemp makes 0600; give the file the usual umask permissions
            umask = os.umask(0)
            os.umask(umask)
            os.chmod(tmp, 0o666 & ~umask)
        os.replace(tmp, path)
    except OSError as e:
        tmp.unlink(missing_ok=True)
        if e.errno in (errno.ENOSPC, errno.EROFS, errno.EACCES, errno.EDQUOT):
            raise OutputError(e.errno, f"cannot write {path}: {e.strerror}") from None
        raise
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


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
