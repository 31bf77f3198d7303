"""The calibrated Wiener filter as extra input channels of the V-Net.

The Wiener filter (WF) is the minimum-variance *linear* estimate of a Gaussian field from
noisy data, and on the laptop-scale mocks the Malmquist-calibrated WF of
:mod:`zoa_lib.methods.baselines` reconstructs φ far better than a small V-Net trained from the two
raw channels alone (the measured per-mock Pearson r of each, ``phi.regions.<region>.
pearson_r_mock_mean``, is in ``<data>/evaluation/wiener_cal.json`` and the networks' JSON
of ``zoa evaluate``, shown in chapter 05 of the book). With ``training.wiener_channels`` the
network is given that reconstruction as two more input channels and learns the *correction
to the linear optimum* — from the galaxy counts (which the WF ignores), the nonlinear
structure of the training universes and the survey's selection::

    channel 2:  φ_WF   in (km/s)²  (normalised like the φ target: (φ_WF − ⟨φ_WF⟩_cube) / s)
    channel 3:  δ_WF   (normalised like the δ target: ln max(1 + δ_WF, 10⁻²))

and, for each target, the output is that channel plus the network's correction
(:func:`zoa_lib.methods.vnet.build_vnet` ``residual_channel``), whose last layer starts at zero:
before training the network *is* the calibrated WF, so it can only be judged on what it adds.

The WF here is exactly the ``wiener_cal`` baseline of :mod:`zoa_lib.analysis.evaluation` (one
implementation, :func:`zoa_lib.methods.reconstruction.reconstruct`), with the calibration (radial bias
b(r) and small-scale dispersion σ_nl, :func:`zoa_lib.methods.calibration.calibration`) measured on
the training mocks and saved with every model, so a trained network applies the same filter
to any catalogue (:func:`channels`).

Files
-----
The channels of every mock are computed once, beside the shards, in
``<data>/wiener/shard-NNNN.h5`` (dataset ``channels`` (n, N, N, N, 2) float32: φ_WF in
(km/s)², δ_WF; one HDF5 chunk per mock; attrs: units, the shard and its checksum, the
calibration, and ``key``, a hash of all three with the filter's settings, :func:`settings`:
the box and its smoothing, the cosmology, the survey's error model with the sha256 of its
``survey.catalogue`` and the depth it is copied to, ``evaluation.wiener_sigma_v/tol/maxiter``,
the padding :data:`PAD` and :data:`FILTER_VERSION`). :func:`ensure` (re)computes the files
whose key does not match (a new shard, a new calibration, a changed setting) in
``mocks.workers`` processes, each file written atomically, so an interrupted run resumes
where it stopped. It costs about one WF solve per mock (``zoa bench evaluate``).

Which calibration
-----------------
Training (``zoa train``) makes the files with the profile's calibration
(:func:`profile_calibration`) and saves it in the model's transforms. A prediction
(:func:`zoa_lib.methods.training.inference.predict`) makes them with the calibration saved in the *model*, so a
network always corrects the filter it was trained on, even after the training mocks (and so
the profile's calibration) changed; where the files on disk were made with another
calibration and cannot be remade (a read-only data folder), :func:`split_paths` refuses, naming
both calibrations (:func:`describe_calibration`), instead of mixing them.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
from pathlib import Path

import numpy as np

from zoa_lib.errors import ZoaError
from zoa_lib.io.atomic import atomic_path, ensure_writable
from zoa_lib.io.processes import process_pool
from zoa_lib.io.provenance import provenance

logger = logging.getLogger(__name__)

#: Names and units of the channels, in order after (N_gal, V_pec).
CHANNELS = ("phi_wf", "delta_wf")
UNITS = ("(km/s)^2", "dimensionless (density contrast)")
DATASET = "channels"
#: Version of the filter behind the channels (:class:`ChannelMaker`, the ``wiener_cal`` method of
#: :func:`zoa_lib.methods.reconstruction.reconstruct`, :class:`zoa_lib.methods.baselines.WienerFilter`): part of
#: every file's key. Bump it when a change of that code changes the channels, so that the
#: files made before are remade rather than reused.
FILTER_VERSION = 2  # 2: single-precision transforms (baselines.WienerFilter precision)
#: Version of the calibration's measurement (:func:`zoa_lib.methods.calibration.calibration`): part of
#: the stamp of ``calibration.json``; bump it when that measurement changes.
CALIBRATION_VERSION = 1
#: Zero padding of the filter's periodic box (:class:`zoa_lib.methods.baselines.WienerFilter` ``pad``).
PAD = 2


class WienerChannelsError(ZoaError, ValueError):
    """Missing or stale Wiener-filter channels, or a calibration that cannot be used."""


# --------------------------------------------------------------------------- calibration
def calibration_dict(bias) -> dict:
    """A :class:`zoa_lib.methods.baselines.RadialBias` as plain JSON (edges in Mpc/h, bias and
    σ_nl in km/s), as stored with models and channel files."""
    sig = getattr(bias, "sigma_nl", None)
    return {"edges": [float(e) for e in np.asarray(bias.edges)], "bias": [float(b) for b in np.asarray(bias.bias)],
            "n_mocks": int(bias.n_mocks), "sigma_nl": None if sig is None else float(sig)}


def calibration_from_dict(d: dict):
    """Inverse of :func:`calibration_dict`."""
    from zoa_lib.methods.baselines import RadialBias

    try:
        bias = RadialBias(edges=np.asarray(d["edges"], float), bias=np.asarray(d["bias"], float),
                          n_mocks=int(d["n_mocks"]))
    except (KeyError, TypeError, ValueError) as e:
        raise WienerChannelsError(f"calibration: not a radial-bias calibration ({e})") from None
    bias.sigma_nl = d.get("sigma_nl")
    return bias


def canonical_calibration(calibration: dict) -> dict:
    """``calibration`` (:func:`calibration_dict`, e.g. read back from a model's transforms) in
    the one form that is hashed and compared: the same numbers give the same dict."""
    if not isinstance(calibration, dict):
        raise WienerChannelsError(f"calibration: expected a radial-bias calibration (dict), got "
                                  f"{type(calibration).__name__}")
    return calibration_dict(calibration_from_dict(calibration))


def calibration_id(calibration: dict) -> str:
    """A short fingerprint of a calibration (12 hex digits of the SHA-256 of its canonical JSON)."""
    blob = json.dumps(canonical_calibration(calibration), sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:12]


def describe_calibration(calibration: dict | None) -> str:
    """One phrase naming a calibration for messages: its fingerprint, σ_nl and mock count."""
    if calibration is None:
        return "no recorded calibration"
    c = canonical_calibration(calibration)
    sig = "not measured" if c["sigma_nl"] is None else f"{c['sigma_nl']:.1f} km/s"
    return f"calibration {calibration_id(c)} (sigma_nl {sig}, {c['n_mocks']} training mocks)"


def _calibration_stamp(profile, man: dict) -> str:
    """What the profile's calibration depends on: its training shards (checksums), the cube, the
    survey radius σ_nl is measured in, the number of mocks and :data:`CALIBRATION_VERSION`."""
    from zoa_lib.methods.calibration import N_CALIBRATION

    train = {k: v["sha256"] for k, v in sorted(man.get("shards", {}).items()) if v.get("split") == "train"}
    blob = {"training_shards": train, "box_size": float(profile.box.size), "grid": int(profile.box.grid),
            "r_max": float(profile.survey.r_max), "n_mocks": int(N_CALIBRATION), "version": CALIBRATION_VERSION}
    return hashlib.sha256(json.dumps(blob, sort_keys=True).encode()).hexdigest()


def profile_calibration(profile) -> dict:
    """The profile's WF calibration, measured on its training mocks and cached in
    ``<data>/wiener/calibration.json`` (recomputed when the training shards, the cube, the
    survey radius or the measurement change: :func:`_calibration_stamp`)."""
    from zoa_lib.io.atomic import write_json_atomic
    from zoa_lib.methods.calibration import calibration
    from zoa_lib.survey import shards

    folder = profile.data_path / "wiener"
    man = shards.read_manifest(shards.mocks_dir(profile))
    stamp = _calibration_stamp(profile, man)
    path = folder / "calibration.json"
    if path.exists():
        try:
            cached = json.loads(path.read_text(encoding="utf-8"))
            if cached.get("training_shards") == stamp:
                return cached["calibration"]
        except (json.JSONDecodeError, KeyError, UnicodeDecodeError):
            pass
    cal = calibration_dict(calibration(profile))
    ensure_writable(folder)
    write_json_atomic(path, {"training_shards": stamp, "calibration": cal,
                             "units": {"edges": "Mpc/h", "bias": "km/s", "sigma_nl": "km/s"}})
    return cal


def settings(profile) -> dict:
    """Everything besides the inputs and the calibration that the WF channels depend on: the
    box (grid, size, smoothing of the prior), the cosmology, the survey (its error model; with
    ``survey.catalogue`` the catalogue file's sha256 and the depth its selection is copied to,
    which set the distance errors of the noise), the filter's ``evaluation.wiener_*``, its
    padding :data:`PAD` and :data:`FILTER_VERSION`."""
    from zoa_lib.config import to_plain
    from zoa_lib.survey.selection import catalogue_checksum, survey_depth

    cat = bool(profile.survey.catalogue)
    return {"box": to_plain(dataclasses.asdict(profile.box)), "cosmology": to_plain(dataclasses.asdict(profile.cosmology)),
            "survey": to_plain(dataclasses.asdict(profile.survey)),
            "catalogue": {"sha256": catalogue_checksum(profile), "depth": float(survey_depth(profile))} if cat else None,
            "wiener": {k: getattr(profile.evaluation, k) for k in ("wiener_tol", "wiener_maxiter", "wiener_sigma_v")},
            "pad": PAD, "filter_version": FILTER_VERSION}


# --------------------------------------------------------------------------- the channels
class ChannelMaker:
    """Computes the channels of one mock after another with one WF operator (build once)."""

    def __init__(self, profile, calibration: dict):
        from zoa_lib.methods import baselines
        from zoa_lib.universe.cosmology import from_profile

        self.profile = profile
        self.bias = calibration_from_dict(calibration)
        self.cosmo = from_profile(profile)
        self.operator = baselines.WienerFilter(profile.box.grid, profile.box.size, self.cosmo, profile.box.smoothing,
                                               pad=PAD)

    def __call__(self, inputs) -> np.ndarray:
        """(N, N, N, 2) raw inputs (N_gal, V_pec [km/s]) → (N, N, N, 2) float32 (φ_WF [(km/s)²], δ_WF)."""
        from zoa_lib.methods.reconstruction import reconstruct

        r = reconstruct("wiener_cal", inputs, self.profile, cosmo=self.cosmo, operator=self.operator,
                        bias=self.bias)
        return np.stack([r["phi"], r["delta"]], axis=-1).astype(np.float32)


def channels(inputs, profile, calibration: dict, progress: bool = False) -> np.ndarray:
    """The WF channels of raw inputs (N, N, N, 2) → (N, N, N, 2), or (n, N, N, N, 2) →
    (n, N, N, N, 2), float32: φ_WF in (km/s)², δ_WF (module docstring)."""
    from tqdm.auto import tqdm

    x = np.asarray(inputs, np.float32)
    single = x.ndim == 4
    x = x[None] if single else x
    n = profile.box.grid
    if x.ndim != 5 or x.shape[1:] != (n, n, n, 2):
        raise WienerChannelsError(f"inputs: expected (n, {n}, {n}, {n}, 2) for profile {profile.name!r}, "
                                  f"got {np.shape(inputs)}")
    make = ChannelMaker(profile, calibration)
    out = np.stack([make(xi) for xi in tqdm(x, desc="Wiener channels", unit="mock", disable=not progress,
                                             leave=False)])
    return out[0] if single else out


# --------------------------------------------------------------------------- files
def channels_path(profile, shard: str | Path) -> Path:
    """``<data>/wiener/<shard file name>``."""
    return profile.data_path / "wiener" / Path(shard).name


def _key(shard_sha: str, calibration: dict, profile, settings_: dict | None = None) -> str:
    """The key of a channel file: its shard's checksum, the calibration and :func:`settings`."""
    blob = json.dumps({"shard": shard_sha, "calibration": canonical_calibration(calibration),
                       "settings": settings(profile) if settings_ is None else settings_},
                      sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()


def file_key(path: Path) -> str | None:
    """The ``key`` attr of a channel file, or None if it is missing or unreadable."""
    import h5py

    try:
        with h5py.File(path, "r") as f:
            if DATASET not in f:
                return None
            return str(f.attrs.get("key", "")) or None
    except (OSError, RuntimeError):
        return None


def file_calibration(path: Path) -> dict | None:
    """The calibration a channel file was made with (its ``calibration`` attr), or None if the
    file is missing, unreadable or does not record one."""
    import h5py

    try:
        with h5py.File(path, "r") as f:
            raw = f.attrs.get("calibration")
        return None if raw is None else canonical_calibration(json.loads(raw))
    except (OSError, RuntimeError, TypeError, ValueError, ZoaError):
        return None


_MAKERS: dict = {}


def _mock_channels(profile, shard: str, row: int, calibration: dict) -> np.ndarray:
    """The channels of mock ``row`` of ``shard`` (run in a worker process; one
    :class:`ChannelMaker` per process and calibration)."""
    import h5py

    key = (profile.name, json.dumps(calibration, sort_keys=True))
    make = _MAKERS.get(key)
    if make is None:
        _MAKERS.clear()
        make = _MAKERS[key] = ChannelMaker(profile, calibration)
    with h5py.File(shard, "r") as f:
        return make(f["inputs"][row])


def _write_file(profile, shard: str, shard_sha: str, calibration: dict, key: str, mocks) -> Path:
    """Write one shard's channel file from ``mocks``, an iterable of the (N, N, N, 2) channels
    of its mocks in order, without HDF5 timestamps (equal channels give equal bytes). The file
    is built in memory (one shard: 8 MiB at 32³, 1 GiB at 128³) and written atomically as
    plain bytes, so a full disk or a read-only folder is one line
    (:class:`zoa_lib.io.atomic.OutputError`) and never an HDF5 flush failing in a destructor."""
    import h5py

    from zoa_lib.survey.shards import create_untimed

    out = channels_path(profile, shard)
    with h5py.File(shard, "r") as f:
        n, N = f["inputs"].shape[0], f["inputs"].shape[1]
    with create_untimed(out.name, in_memory=True) as h:
        ds = h.create_dataset(DATASET, (n, N, N, N, 2), dtype=np.float32, chunks=(1, N, N, N, 2),
                              track_times=False)
        i = -1
        for i, c in enumerate(mocks):
            ds[i] = c
        if i != n - 1:
            raise WienerChannelsError(f"{out}: {i + 1} of {n} mocks computed")
        ds.attrs["channels"] = json.dumps(CHANNELS)
        ds.attrs["units"] = json.dumps(UNITS)
        h.attrs.update(provenance(profile, shard=Path(shard).name, shard_sha256=shard_sha,
                                  calibration=json.dumps(calibration), key=key))
        del ds
        h.flush()
        image = h.id.get_file_image()
    with atomic_path(out) as tmp:
        tmp.write_bytes(image)
    return out


def ensure(profile, splits=("train", "val", "test"), workers: int | None = None, progress: bool = True,
           log=None, calibration: dict | None = None) -> dict[str, Path]:
    """Compute the missing or stale channel files of the profile's shards of ``splits`` (module
    docstring) and return {shard file name: channel file}. ``calibration``: the one to filter
    with (e.g. a model's, ``transforms.wiener_calibration``); default the profile's
    (:func:`profile_calibration`, which needs the training shards). Mocks are filtered by
    ``workers`` processes (default ``mocks.workers``; each file is written by this process).
    Files that are already up to date are only read, so a read-only data folder is an error
    only when something must be (re)computed. ``log``: called with the one line saying what is
    computed, instead of this module's logger."""
    from tqdm.auto import tqdm

    from zoa_lib.survey import shards

    folder = shards.mocks_dir(profile)
    man = shards.read_manifest(folder)
    calibration = canonical_calibration(profile_calibration(profile) if calibration is None else calibration)
    rows = {name: row for name, row in man.get("shards", {}).items() if row.get("split") in splits}
    todo, out = [], {}
    stt = settings(profile)
    for name, row in sorted(rows.items()):
        key = _key(row["sha256"], calibration, profile, stt)
        path = channels_path(profile, name)
        out[name] = path
        if file_key(path) != key:
            todo.append((str(folder / name), row["sha256"], key, int(row["n"])))
    if not todo:
        return out
    ensure_writable(profile.data_path / "wiener")
    n_mocks = sum(t[3] for t in todo)
    workers = max(1, min(int(workers or profile.mocks.workers), n_mocks))
    (log or logger.info)(f"Wiener-filter input channels: {len(todo)} shard(s), {n_mocks} mocks, {workers} process(es)")
    bar = tqdm(total=n_mocks, desc="Wiener channels", unit="mock", disable=not progress)

    def counted(results):
        for c in results:
            bar.update()
            yield c

    try:
        if workers == 1:
            for shard, sha, key, n in todo:
                _write_file(profile, shard, sha, calibration, key,
                            counted(_mock_channels(profile, shard, i, calibration) for i in range(n)))
        else:
            with process_pool(workers) as pool:
                for shard, sha, key, n in todo:
                    futures = [pool.submit(_mock_channels, profile, shard, i, calibration) for i in range(n)]
                    _write_file(profile, shard, sha, calibration, key, counted(f.result() for f in futures))
    finally:
        bar.close()
    return out


def split_paths(profile, shard_paths, calibration: dict | None = None, user: str | None = None,
                remedy: str | None = None) -> list[Path]:
    """The channel files of ``shard_paths`` made with ``calibration`` (default: the profile's,
    :func:`profile_calibration`) and the profile's :func:`settings`; raises
    :class:`WienerChannelsError`, one line, if one is missing or stale (run :func:`ensure`) —
    naming both calibrations when the file on disk was made with another one. ``user``: who
    needs ``calibration`` (e.g. "the model <path>"), and ``remedy``: the command that remakes
    the files, for the message."""
    from zoa_lib.survey import shards

    man = shards.read_manifest(shards.mocks_dir(profile))
    calibration = canonical_calibration(profile_calibration(profile) if calibration is None else calibration)
    user = user or f"profile {profile.name!r}"
    remedy = remedy or f"`zoa train --profile {profile.name}` (wiener_channels.ensure)"
    stt = settings(profile)
    out = []
    for p in shard_paths:
        p = Path(p)
        row = man.get("shards", {}).get(p.name)
        path = channels_path(profile, p)
        if row is not None and file_key(path) == _key(row["sha256"], calibration, profile, stt):
            out.append(path)
            continue
        made = file_calibration(path)
        if row is not None and made is not None and made != calibration:
            raise WienerChannelsError(
                f"{path}: Wiener-filter channels made with {describe_calibration(made)}, but {user} needs "
                f"{describe_calibration(calibration)}; not mixing them: remake them with {remedy}")
        raise WienerChannelsError(f"{path}: Wiener-filter channels missing or stale for {p.name}; they are "
                                  f"made by {remedy}")
    return out
