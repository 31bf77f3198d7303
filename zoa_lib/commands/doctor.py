"""``zoa doctor``: check the environment and say what to fix."""
from __future__ import annotations

import importlib.metadata as md
import shutil
import sys
import tempfile

from zoa_lib.commands.options import (
    add_command,
    add_json_arg,
    add_profile_args,
    json_output,
    print_json,
    profile_from_args,
)

#: package -> (minimum version, maximum exclusive or None)
PACKAGES = {
    "numpy": ("1.26", None), "scipy": ("1.11", None), "h5py": ("3.10", None),
    "tensorflow": ("2.16", None), "keras": ("3.0", None), "astropy": ("6.0", None),
    "colossus": ("1.3", None), "jupyter-book": ("1.0", "2"), "papermill": ("2.5", None),
    "pyvista": ("0.43", None), "dask": ("2024.1", None), "matplotlib": ("3.8", None),
}


def register(sub):
    p = add_command(
        sub, "doctor", help="check versions, devices, disk and the data folder",
        description="Check the environment (Python and package versions, TensorFlow devices, free disk for "
                    "the profile's mocks, writable data folder) and say what to fix: one line per check, "
                    "OK, WARN or FAIL. Exit status 2 if any check fails.",
        examples=["zoa doctor                                   # for the laptop profile",
                  "zoa doctor --profile paper                   # GPUs and disk for the paper's sizes",
                  "zoa doctor --no-tensorflow --json            # quick, as JSON"])
    add_profile_args(p)
    p.add_argument("--no-tensorflow", action="store_true", help="skip importing TensorFlow (slow)")
    add_json_arg(p, "the checks and the verdict")
    p.set_defaults(func=run)


def _vtuple(v: str):
    out = []
    for part in v.split("."):
        num = "".join(ch for ch in part if ch.isdigit())
        if not num:
            break
        out.append(int(num))
    return tuple(out)


def checks(profile, tensorflow: bool = True):
    """Yield (status, what, detail) with status in OK, WARN, FAIL."""
    py = sys.version_info
    yield ("OK" if py >= (3, 11) else "FAIL", "python", f"{sys.version.split()[0]}"
           + ("" if py >= (3, 11) else " — zoa needs Python >= 3.11"))
    for pkg, (lo, hi) in PACKAGES.items():
        try:
            v = md.version(pkg)
        except md.PackageNotFoundError:
            yield "FAIL", pkg, "not installed — run 'make install' (or pip install -e .)"
            continue
        ok = _vtuple(v) >= _vtuple(lo) and (hi is None or _vtuple(v) < _vtuple(hi))
        rng = f">={lo}" + (f",<{hi}" if hi else "")
        yield ("OK" if ok else "FAIL", pkg, v if ok else f"{v}, need {rng} — pip install '{pkg}{rng}'")
    if tensorflow:
        try:
            import tensorflow as tf

            gpus = tf.config.list_physical_devices("GPU")
            cpus = tf.config.list_physical_devices("CPU")
            detail = f"{len(gpus)} GPU(s), {len(cpus)} CPU device(s)"
            if profile.box.grid >= 64 and not gpus:
                yield "WARN", "tensorflow devices", detail + f" — profile {profile.name!r} ({profile.box.grid}^3) " \
                      "is meant for GPUs; on CPU use 'ci' or 'laptop', or pip install -e '.[gpu]'"
            else:
                yield "OK", "tensorflow devices", detail
        except Exception as e:  # noqa: BLE001 - report whatever breaks the import
            yield "FAIL", "tensorflow devices", f"import failed: {e}"
    data = profile.data_path
    probe = data
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    free = shutil.disk_usage(probe).free / 2 ** 30
    need = _data_need_gib(profile)
    yield ("OK" if free > need else "WARN", "free disk",
           f"{free:.1f} GiB free at {probe}; profile {profile.name!r} needs about {need:.1f} GiB"
           + ("" if free > need else " — set ZOA_DATA to a larger file system"))
    try:
        data.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=data, prefix=".tmp-doctor-"):
            pass
        yield "OK", "data folder", f"{data} is writable"
    except OSError as e:
        yield "FAIL", "data folder", f"{data} is not writable ({e.strerror}) — set ZOA_DATA to a writable folder"
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    yield ("OK" if chromium else "WARN", "chromium",
           chromium or "not found — only the browser test of the built book needs it (apt-get install chromium chromium-driver)")


def _data_need_gib(profile) -> float:
    """Rough size of a profile's mock shards: float32 inputs (2) + targets (1+1+3) per voxel."""
    n = profile.mocks.n_total
    return n * profile.box.grid ** 3 * 7 * 4 / 2 ** 30 * 1.1


def run(args):
    prof = profile_from_args(args)
    worst, rows = 0, []
    with json_output(args):
        for status, what, detail in checks(prof, tensorflow=not args.no_tensorflow):
            rows.append({"status": status, "check": what, "detail": detail})
            if not args.json:
                print(f"[{status:4s}] {what:20s} {detail}")
            worst = max(worst, {"OK": 0, "WARN": 0, "FAIL": 2}[status])
    if args.json:
        print_json({"profile": prof.name, "ready": not worst, "checks": rows})
    else:
        print("zoa doctor: " + ("fix the FAIL lines above" if worst else "ready (see any WARN lines above)"))
    return worst
