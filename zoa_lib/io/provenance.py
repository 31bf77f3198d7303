"""Provenance: what every file the pipeline writes says about how it was made (DESIGN.md).
"""
from __future__ import annotations

import datetime as _dt
import hashlib
import json
import os
import subprocess

from zoa_lib import __version__
from zoa_lib.errors import ZoaError


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
    from zoa_lib.io.paths import REPO_ROOT as root

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
