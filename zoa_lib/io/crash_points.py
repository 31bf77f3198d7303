"""Crash points for crash-safety tests: stop a process with SIGKILL at a named step.
"""
from __future__ import annotations

import os
import signal
import sys

#: Environment variable naming the step at which :func:`stop_point` kills the process.
STOP_AT_ENV = "ZOA_TEST_STOP_AT"


_stop_counts: dict[str, int] = {}


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
    :mod:`zoa_lib.methods.training.fitting`). Output is flushed first; no cleanup code runs."""
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
