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
    the shard mock by mock with :class:`zoa_lib.survey.shards.ShardWriter` (atomic). With
    ``shard_size`` a multiple of K (all shipped profiles) a shard task builds whole boxes.

Determinism
    Everything random comes from (profile seed, stream, indices): the box's initial
    conditions from ``("initial_conditions", box)``, its observers from
    ``("observers", box, i)``, the survey of sample s from ``("survey", s)``. A shard
    therefore has the same bytes whichever worker, order or scheduler makes it.

Resuming (:func:`~zoa_lib.survey.mock_set.generate`)
    A shard is complete when the manifest lists it with the current sample range, the
    file validates (:func:`zoa_lib.survey.shards.validate_shard`) and its content checksum equals
    the manifest's. A valid shard file that the manifest does not list (its writer was
    killed before it updated the manifest, or concurrent ``--shards`` jobs raced) is
    adopted when its attrs carry this configuration's checksum and sample range.
    Anything else is regenerated. The manifest is updated by the driver only, under a
    file lock, after each shard completes. Temporaries of killed runs are removed first
    (those of the selected shards, so concurrent ``--shards`` jobs can share a folder).
    Mocks made with a different configuration (a changed survey, box, simulation,
    cosmology, split sizes or seed) are not mixed in: :func:`~zoa_lib.survey.mock_set.generate` refuses unless
    ``force=True``.

Checking (:func:`~zoa_lib.survey.mock_set.check_shards`, ``zoa shards check``)
    The same judgement as resuming, read-only: one :class:`~zoa_lib.survey.mock_set.ShardCheck` per shard file
    (the profile's plan, or given paths against the manifest beside them).
"""
from __future__ import annotations

import hashlib
import json
import math
import os
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from zoa_lib.errors import ZoaError
from zoa_lib.io.provenance import provenance
from zoa_lib.survey.shards import ShardWriter, shard_name
from zoa_lib.universe.rng import generator

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
    if sv.get("catalogue"):  # the catalogue's bytes, not its name, shape the mocks
        from zoa_lib.survey.selection import catalogue_checksum

        sv = {**{k: v for k, v in sv.items() if k != "catalogue"}, "catalogue_sha256": catalogue_checksum(profile)}
    else:
        sv = {k: v for k, v in sv.items() if not k.startswith("catalogue")}
    return {"seed": d["seed"], "cosmology": d["cosmology"], "box": d["box"], "simulation": d["simulation"],
            "survey": sv, "mocks": mocks}


def config_checksum(profile) -> str:
    """SHA-256 of :func:`mock_config` (JSON, sorted keys)."""
    return hashlib.sha256(json.dumps(mock_config(profile), sort_keys=True).encode()).hexdigest()


def diff_keys(a: dict, b: dict, prefix: str = "") -> list[str]:
    out = []
    for k in sorted(set(a) | set(b)):
        va, vb = a.get(k), b.get(k)
        if isinstance(va, dict) and isinstance(vb, dict):
            out += diff_keys(va, vb, f"{prefix}{k}.")
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
    from zoa_lib.universe.cosmology import H0, from_profile

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
                          "(zoa_lib.survey.galaxies)",
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
    """One mock: network inputs (N,N,N,2), targets (``zoa_lib.universe.fields.Targets``), its
    survey catalog, the observer cube and where it comes from."""

    inputs: np.ndarray
    targets: object
    catalog: np.ndarray
    cube: object
    location: SampleLocation


def sample_from_cube(profile, box, cube, sample: int, timings: dict | None = None, workers: int | None = None):
    """(inputs, targets, catalog) of global sample ``sample`` made from ``cube`` of parent ``box``.

    ``workers``: FFT threads for the box's fields (:func:`zoa_lib.universe.fourier.fft_workers`).
    ``timings``: a dict to which the seconds of each stage are added, under the keys
    ``targets`` (δ, φ, v of the cube), ``survey`` (drawing the galaxies) and ``grid``
    (gridding the catalogue into the network inputs)."""
    from zoa_lib.survey import galaxies, selection
    from zoa_lib.universe import fields

    t0 = time.perf_counter()
    targets = fields.cube_targets(profile, box, cube, workers)
    t1 = time.perf_counter()
    cat = selection.draw_survey(profile, selection.survey_particles(profile, box, cube),
                                generator(profile.seed, "survey", int(sample)), sample=int(sample))
    t2 = time.perf_counter()
    inputs = galaxies.grid_inputs(cat, profile)
    if timings is not None:
        for key, dt in (("targets", t1 - t0), ("survey", t2 - t1), ("grid", time.perf_counter() - t2)):
            timings[key] = timings.get(key, 0.0) + dt
    return inputs, targets, cat


def make_sample(profile, sample: int, box=None) -> Sample:
    """Global sample ``sample`` of a profile, built from scratch (or from ``box`` when it
    is the right parent box). Identical to the sample stored in the shards."""
    from zoa_lib.universe import simulation

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
    Dask: one thread per worker; None: :func:`zoa_lib.universe.fourier.fft_workers`'s default)."""
    from zoa_lib.universe import simulation

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


# The mock set on disk (status, checks, the Dask driver, the benchmark): zoa_lib.survey.mock_set.
