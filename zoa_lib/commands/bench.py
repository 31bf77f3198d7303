"""``zoa bench WHAT``: speed and memory of a pipeline stage, printed as JSON.

Benchmarks report, tests assert: nothing here fails on a slow machine. Each stage's
module provides ``benchmark(profile) -> dict``; this command adds the machine.
"""
from __future__ import annotations

import importlib
import json
import os
import platform
import sys

from ..resources import peak_rss_mib
from . import add_profile_args, profile_from_args

#: stage -> "module:function"
BENCHMARKS = {
    "sim": "zoa_lib.simulation:benchmark",
    "mocks": "zoa_lib.mocks:benchmark",
    "train": "zoa_lib.training:benchmark",
    "evaluate": "zoa_lib.baselines:benchmark",
}


def register(sub):
    p = sub.add_parser("bench", help="benchmark a stage; prints JSON",
                       description="Measure speed and peak memory of a pipeline stage at a profile's "
                                   "sizes and print JSON (machine included).")
    p.add_argument("what", choices=sorted(BENCHMARKS), help="stage to benchmark")
    add_profile_args(p, default="ci")
    p.add_argument("--engine", choices=("2lpt", "pm"),
                   help="sim only: the parent-box engine (simulation.engine; default: the profile's)")
    p.add_argument("--output", help="also write the JSON to this file")
    p.set_defaults(func=run)


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


def run(args):
    if getattr(args, "engine", None):
        if args.what != "sim":
            from ..config import ProfileError
            raise ProfileError(f"zoa bench {args.what}: --engine applies to 'sim' only")
        args.overrides = [*args.overrides, f"simulation.engine={args.engine}"]
    prof = profile_from_args(args)
    mod, fn = BENCHMARKS[args.what].split(":")
    result = getattr(importlib.import_module(mod), fn)(prof)
    out = {"benchmark": args.what, "profile": prof.name, "machine": machine(), **result,
           "peak_rss_mib": round(peak_rss_mib(), 1)}
    text = json.dumps(out, indent=2, default=float)
    print(text)
    if args.output:
        from ..io import write_text_atomic
        write_text_atomic(args.output, text + "\n")
    return 0
