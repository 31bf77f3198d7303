"""Memory of this process and of the machine, for the benchmarks (``zoa bench``): one
implementation of each reading, in MiB or bytes as named. Linux ``/proc`` files; where a
reading is unavailable the functions say so (NaN, None) rather than guess.
"""
from __future__ import annotations

import os
import platform
import resource
import shutil
import subprocess
import sys


def rss_mib() -> float:
    """Resident memory of this process now, MiB (``VmRSS`` of ``/proc/self/status``; NaN
    where there is none)."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024.0
    except OSError:
        pass
    return float("nan")


def peak_rss_mib() -> float:
    """Peak resident memory of this process so far, MiB (``getrusage`` ``ru_maxrss``, which
    Linux gives in KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def available_bytes(default: int | None = None) -> int | None:
    """Memory the machine can still give without swapping, bytes (``MemAvailable`` of
    ``/proc/meminfo``), or ``default`` where it cannot be read."""
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, IndexError, ValueError):
        pass
    return default


def gpu_total_bytes(index: int = 0) -> int | None:
    """Total memory of NVIDIA GPU ``index``, bytes, from ``nvidia-smi``; None without one
    (no driver tool, no such GPU, or an unreadable answer)."""
    exe = shutil.which("nvidia-smi")
    if exe is None:
        return None
    try:
        out = subprocess.run([exe, "--query-gpu=memory.total", "--format=csv,noheader,nounits", "-i", str(index)],
                             capture_output=True, text=True, timeout=20, check=True).stdout
        return int(float(out.strip().splitlines()[0]) * 2 ** 20)
    except (OSError, subprocess.SubprocessError, ValueError, IndexError):
        return None


def machine() -> dict:
    """Where a benchmark ran: CPU count, platform, Python, memory, GPUs if any."""
    info = {"platform": platform.platform(), "python": sys.version.split()[0],
            "cpu_count": os.cpu_count(), "processor": platform.processor() or platform.machine()}
    try:
        with open("/proc/meminfo") as f:
            info["mem_total_gib"] = round(int(f.readline().split()[1]) / 2 ** 20, 1)
    except OSError:
        pass
    return info
