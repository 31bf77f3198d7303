"""Reconstruct δ, φ and the 3D velocity from any peculiar-velocity catalogue (``zoa reconstruct``).

A catalogue :func:`zoa_lib.survey.catalogs.read_catalog` accepts — the real Cosmicflows-4 table, a
table in EDD's layout, or one realization of positions and radial velocities (e.g. from
HAMLET) — is gridded on the profile's cube exactly as the mocks are
(:func:`zoa_lib.survey.catalogs.grid`, at the observed distances: a real catalogue has no true
ones) and reconstructed by each requested method:

``vnet``
    the two trained V-Nets of the profile: δ from the density network, φ from the potential
    network (which predicts φ with each cube's mean removed), v = −(2f / 3H0Ωm) ∇φ by finite
    differences (:func:`zoa_lib.universe.velocity.velocity_from_potential`). Networks that correct
    the calibrated Wiener filter get its channels (:mod:`zoa_lib.methods.wiener_channels`, with the
    calibration saved in the model); when ``wiener_cal`` runs too with the same calibration,
    its solution serves as those channels (one Wiener solve per catalogue, not two).
    Missing models are an error naming the ``zoa train`` commands (``train=True``, as the
    book uses, trains them instead).
``wiener``, ``wiener_cal``, ``wiener_joint``, ``potent``
    the classical methods of :func:`zoa_lib.methods.reconstruction.reconstruct`. ``wiener_cal``
    subtracts the radial (Malmquist-like) bias measured on training mocks: the calibration
    saved with the V-Net models when ``vnet`` runs too (so that it is the very filter the
    networks correct), else the one measured on the profile's training shards, else the
    one saved with trained models. ``wiener_joint`` (:mod:`zoa_lib.methods.wiener_joint`) subtracts
    the same calibration and reads the galaxy counts too, with the counts model (n̄, b, α, s²)
    fitted on the profile's training mocks, which copy the catalogue's selection
    (:func:`counts_model`, cached in ``<data>/wiener/counts_model.json``).

φ of every method is stored with its cube mean removed (velocities do not measure a
constant).

Several catalogues (a glob, e.g. 1,000 HAMLET realizations) are streamed ``batch`` at a time:
the file holds the **mean** over realizations and, beside it, the **scatter** (standard
deviation over realizations, ddof = 1) — not every realization, which at 128³ would be 40 MB
per realization and method. ``keep_realizations=True`` keeps the stacks in memory (the book
uses them for its per-realization searches).

HDF5 schema of :func:`write` (one file)::

    /                   attrs: box_size (Mpc/h), grid N, axes, voxel, observer, n_realizations,
                        statistic, methods (JSON), catalog (the path or pattern given),
                        h0_catalog (km/s/Mpc), estimator, grid_position, bulk_flows (file name
                        of the JSON), notes, attr_units (JSON), provenance (zoa_version,
                        git_commit, created_utc, profile, seed, parameters); for one
                        catalogue also its catalog_file, catalog_sha256, catalog_kind,
                        catalog_layout, catalog_frame, catalog_groups, columns, catalog_notes, n_rows, n_kept, n_dropped, n_cz_nonpositive,
                        n_in_cube, n_outside
    /catalogs           (n,) strings: one JSON record per catalogue (path, sha256, kind,
                        columns, n_rows, n_kept, n_dropped, n_cz_nonpositive, n_in_cube,
                        n_outside, notes, layout, frame, h0_catalog, groups, n_groups)
    /<method>/          one group per method (vnet, wiener, wiener_cal, wiener_joint, potent);
                        attrs: label, statistic ("single catalogue" or "mean over N
                        realizations"), info (JSON: model files and epochs, calibration
                        source, the counts model's b, α, s² and n_mocks, ...)
        delta           (N, N, N) float32, density contrast
        phi             (N, N, N) float32, (km/s)², each cube's mean removed
        velocity        (N, N, N, 3) float32, km/s, components (v_SGX, v_SGY, v_SGZ)
        delta_std, phi_std, velocity_std   (several catalogues only) scatter over realizations

Axes (i, j, k) are SGX, SGY, SGZ; voxel i spans [−L/2 + iL/N, −L/2 + (i+1)L/N) Mpc/h; the
observer is at the centre of the cube.

Beside it, ``<name>.bulk_flows.json`` (:func:`bulk_flow_path`): for each method the bulk
flow B(R) — the volume-weighted mean of the reconstructed velocity in the top-hat sphere of
radius R about the observer (:func:`zoa_lib.universe.velocity.bulk_flow`) — of the mean field, as
|B| (km/s), its direction in Galactic (l, b) (deg, from the supergalactic vector with
astropy) and its SGX, SGY, SGZ components; with several catalogues also |B|'s scatter and
every realization's (|B|, l, b). Plus the ΛCDM rms σ_B(R) of the profile's cosmology for
scale.
"""
from __future__ import annotations

import glob
import hashlib
import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np

from zoa_lib.errors import ZoaError
from zoa_lib.io.provenance import file_sha256
from zoa_lib.methods import calibration
from zoa_lib.methods.registry import CALIBRATED, SEARCH_LABELS, SEARCH_METHODS, parse_methods
from zoa_lib.methods.training import fitting, inference, model_files, transforms

#: Methods ``zoa reconstruct`` runs when none are named.
DEFAULT_METHODS = ("vnet", "wiener_cal")
#: The fields of every method, with their units.
FIELDS = {"delta": "dimensionless (density contrast)", "phi": "(km/s)^2, each cube's mean removed",
          "velocity": "km/s, components (v_SGX, v_SGY, v_SGZ)"}
#: Smallest radius step (Mpc/h) of the default bulk-flow radii, R = step, 2 step, ..., L/2
#: (the step is never below one voxel, L/N).
BULK_FLOW_STEP = 5.0
#: Catalogues read, gridded and reconstructed together.
BATCH = 4
BULK_FLOW_WINDOW = ("top-hat sphere of radius R about the observer: volume-weighted mean of the reconstructed "
                    "3D velocity field (zoa_lib.universe.velocity.bulk_flow)")


class ReconstructError(ZoaError, ValueError):
    """A reconstruction cannot run: unknown method, no catalogue, catalogue outside the cube,
    missing trained models or calibration."""


# --------------------------------------------------------------------------- arguments
def catalog_paths(path: str | os.PathLike | Sequence) -> list[Path]:
    """The catalogue files of ``path``: one file, a glob pattern (sorted matches, e.g.
    ``hamlet/realization-*.csv``) or a list of files."""
    if isinstance(path, (list, tuple)):
        paths = [Path(p) for p in path]
        if not paths:
            raise ReconstructError("no catalogue given")
        return paths
    text = str(path)
    if glob.has_magic(text):
        paths = sorted(Path(p) for p in glob.glob(text) if Path(p).is_file())
        if not paths:
            raise ReconstructError(f"{text}: the pattern matches no file")
        return paths
    return [Path(text)]


def bulk_flow_radii(profile, radii=None) -> np.ndarray:
    """Radii R (Mpc/h) of the bulk flows: ``radii``, or every max(:data:`BULK_FLOW_STEP`, L/N)
    Mpc/h up to L/2 (the largest sphere inside the cube); each must lie in (0, L/2]."""
    half = profile.box.size / 2.0
    if radii is None:
        step = max(BULK_FLOW_STEP, profile.box.size / profile.box.grid)
        r = np.arange(step, half + 1e-9, step)
        return r if len(r) else np.array([half])
    try:
        r = np.atleast_1d(np.asarray([float(x) for x in (radii.split(",") if isinstance(radii, str) else radii)]))
    except (TypeError, ValueError):
        raise ReconstructError(f"radii: expected numbers in Mpc/h, e.g. 10,20,50; got {radii!r}") from None
    for R in r:
        if not (math.isfinite(R) and 0 < R <= half):
            raise ReconstructError(f"radius {R:g} Mpc/h: must be > 0 and at most L/2 = {half:g} Mpc/h (the sphere "
                                   "must stay inside the cube)")
    return r


def bulk_flow_path(out: str | os.PathLike) -> Path:
    """``<name>.bulk_flows.json`` beside the HDF5 file ``<name>.h5``."""
    out = Path(out)
    stem = out.stem if out.suffix.lower() in (".h5", ".hdf5", ".hdf") else out.name
    return out.with_name(stem + ".bulk_flows.json")



# --------------------------------------------------------------------------- reading
@dataclass
class CatalogInput:
    """One catalogue as read and gridded: its file, checksum, reader report and cube counts."""

    path: str
    sha256: str
    report: object  # catalogs.CatalogReport
    n_in_cube: int
    n_outside: int
    #: the catalogue table as gridded (for the training-domain check; not written to files)
    table: np.ndarray | None = field(default=None, repr=False, compare=False)
    #: the fitted zero point (:meth:`zoa_lib.survey.zero_point.ZeroPoint.to_dict`), None when not fitted
    zero_point: dict | None = None

    def to_dict(self) -> dict:
        r = self.report
        return {"path": self.path, "sha256": self.sha256, "kind": r.kind, "columns": r.columns,
                "n_rows": r.n_rows, "n_kept": r.n_kept, "n_dropped": len(r.dropped),
                "n_cz_nonpositive": r.n_cz_nonpositive, "n_in_cube": self.n_in_cube,
                "n_outside": self.n_outside, "notes": list(r.notes), "layout": r.layout, "frame": r.frame,
                "h0_catalog": r.h0_catalog, "groups": r.groups, "n_groups": r.n_groups,
                "zero_point": self.zero_point}


def read_table(profile, path, *, estimator: str | None = None, **read_options):
    """(catalog, report) of :func:`zoa_lib.survey.catalogs.read_catalog` as ``zoa reconstruct`` (and
    ``zoa crossval``) read a catalogue: the estimator defaults to the profile's
    ``survey.estimator``; the other options (h0_catalog — None: the layout's —, kind, columns,
    drop_bad, frame, groups, sample) pass through with the reader's defaults."""
    from zoa_lib.survey import catalogs

    return catalogs.read_catalog(Path(path), estimator=estimator or profile.survey.estimator, **read_options)


def grid_table(profile, path, cat, report, zero_point=None):
    """Grid a read catalogue (:func:`read_table`) on the profile's cube at the observed distances.

    ``zero_point``: a :class:`zoa_lib.survey.zero_point.ZeroPointCalibration`: the catalogue's zero point
    (the H0 of its distances) is fitted and applied before gridding (distance catalogues only;
    a positions table is taken as given).
    Returns ((N, N, N, 2) float32 inputs, :class:`CatalogInput`); a catalogue with no galaxy
    inside the cube raises :class:`ReconstructError`."""
    from zoa_lib.survey import catalogs

    path = Path(path)
    zp = None
    if zero_point is not None and report.kind != "positions":
        from zoa_lib.survey import zero_point as zpm

        zp = zpm.fit_zero_point(cat, zero_point, report.h0_catalog)
        cat = zpm.shift_zero_point(cat, zp.a)
        report.notes.append(f"zero point fitted: distances rescaled by e^a, a = {zp.a:+.4f} ± {zp.a_err:.4f} "
                            f"(H0 of the distances {zp.h0_fit:.2f} ± {zp.h0_fit_err:.2f} km/s/Mpc against the "
                            f"catalogue's {zp.h0_catalog:g}; {zp.n} galaxies within {zp.s_max:g} Mpc/h)")
    inputs, n_out = catalogs.grid(cat, profile, position="observed", return_outside=True)
    n_in = int(round(float(inputs[..., 0].sum())))
    if n_in == 0:
        L = profile.box.size
        raise ReconstructError(f"{path}: all {len(cat)} galaxies lie outside the {L:g} Mpc/h cube of profile "
                               f"{profile.name!r} (|SGX|, |SGY|, |SGZ| < {L / 2:g} Mpc/h); nothing to reconstruct")
    return inputs.astype(np.float32), CatalogInput(str(path), file_sha256(path), report, n_in, int(n_out), table=cat,
                                                   zero_point=None if zp is None else zp.to_dict())


def read_and_grid(profile, path, *, sample: int = 0, h0_catalog: float | None = None, kind: str = "auto",
                  columns=None, drop_bad: bool = False, estimator: str | None = None, frame: str = "auto",
                  groups: bool = False, zero_point=None):
    """:func:`read_table` then :func:`grid_table`: one catalogue read and gridded on the profile's
    cube at the observed distances (``h0_catalog`` None: the layout's; ``frame``, ``groups``: see
    :func:`zoa_lib.survey.catalogs.read_catalog`; ``zero_point``: see :func:`grid_table`)."""
    cat, report = read_table(profile, path, kind=kind, columns=columns, h0_catalog=h0_catalog, drop_bad=drop_bad,
                             estimator=estimator, sample=sample, frame=frame, groups=groups)
    return grid_table(profile, path, cat, report, zero_point)


#: Methods whose answer depends on the training mocks: the V-Net, and the calibrated and joint
#: Wiener filters (their Malmquist correction, σ_nl and counts model were measured on them).
TRAINED_METHODS = ("vnet", "wiener_cal", "wiener_joint")
#: Version of the counts model's fit (:func:`zoa_lib.methods.calibration.counts_calibration`): part of the
#: stamp of ``counts_model.json``; bump it when that fit changes.
COUNTS_VERSION = 1


def domain_mismatches(profile, catalog, methods, reference=None) -> list:
    """The ways ``catalog`` (a read table) differs from the mocks ``profile``'s trained methods
    learned from (:func:`zoa_lib.survey.domain.check`; ``reference``: their catalogues, default
    :func:`zoa_lib.survey.domain.training_reference`); empty when none of ``methods`` was trained."""
    from zoa_lib.survey import domain

    if not any(m in TRAINED_METHODS for m in methods) or catalog is None:
        return []
    return domain.check(catalog, domain.training_reference(profile) if reference is None else reference,
                        profile.box.size)


# --------------------------------------------------------------------------- the counts model
_COUNTS: dict = {}


def _counts_stamp(profile) -> str:
    """What the counts model depends on: the training shards (checksums), the cube, ``survey.r_max``,
    the number of training mocks, the fit's settings and :data:`COUNTS_VERSION`."""
    from zoa_lib.methods import wiener_joint as wj
    from zoa_lib.survey import shards

    man = shards.read_manifest(shards.mocks_dir(profile))
    train = {k: v.get("sha256") for k, v in sorted(man.get("shards", {}).items()) if v.get("split") == "train"}
    blob = {"training_shards": train, "box_size": float(profile.box.size), "grid": int(profile.box.grid),
            "r_max": float(profile.survey.r_max), "n_mocks": int(profile.mocks.n_train), "version": COUNTS_VERSION,
            "fit": [wj.N_MIN, wj.NSIDE, wj.SUBSAMPLE, wj.EM_ITERATIONS, wj.LOO_ITERATIONS, wj.NOISE_BINS]}
    return hashlib.sha256(json.dumps(blob, sort_keys=True).encode()).hexdigest()


def counts_model_path(profile) -> Path:
    """``<data>/wiener/counts_model.json``, beside the Wiener channels' ``calibration.json``."""
    return profile.data_path / "wiener" / "counts_model.json"


def counts_model(profile):
    """The joint Wiener filter's counts model (:class:`zoa_lib.methods.wiener_joint.CountsModel`: n̄ in
    galaxies per voxel, b, α, s²) fitted on the profile's training mocks
    (:func:`zoa_lib.methods.calibration.counts_calibration`, never test mocks or the catalogue), once per
    process and cached in :func:`counts_model_path` (refitted when the training shards, the cube,
    ``survey.r_max`` or the fit change: :func:`_counts_stamp`; a data folder that cannot be written
    is not an error). No training shards: one-line :class:`ReconstructError` naming ``zoa mocks``."""
    from zoa_lib.io.atomic import write_json_atomic
    from zoa_lib.methods.baselines import BaselineError
    from zoa_lib.methods.wiener_joint import CountsModel

    if not calibration.has_training_shards(profile):
        raise ReconstructError(f"wiener_joint needs the counts model of training mocks: run `zoa mocks --profile "
                               f"{profile.name}`, or leave wiener_joint out of the methods")
    stamp, path = _counts_stamp(profile), counts_model_path(profile)
    key = (str(path), stamp)
    if key in _COUNTS:
        return _COUNTS[key]
    model = None
    try:
        cached = json.loads(path.read_text(encoding="utf-8"))
        if cached.get("training_shards") == stamp:
            model = CountsModel.from_dict(cached["counts_model"])
    except (OSError, ValueError, KeyError, TypeError, AttributeError, BaselineError):
        pass
    if model is None:
        model = calibration.counts_calibration(profile)
        try:
            write_json_atomic(path, {"training_shards": stamp, "counts_model": model.to_dict(),
                                     "source": "zoa_lib.methods.calibration.counts_calibration on the training shards"})
        except (OSError, ZoaError):
            pass
    _COUNTS[key] = model
    return model


def counts_summary(model) -> dict:
    """The counts model's numbers as recorded in a method's info: b, α, s² (dimensionless),
    the training mocks behind them and the n̄ floor (galaxies per voxel)."""
    return {"bias": float(model.bias), "shot_noise": float(model.shot_noise), "scatter": float(model.scatter),
            "n_mocks": int(model.n_mocks), "n_min": float(model.n_min),
            "source": "the profile's training mocks (zoa_lib.methods.calibration.counts_calibration)",
            "units": {"bias": "dimensionless (delta_g = b delta)", "shot_noise": "dimensionless (Var = alpha/nbar "
                      "+ s^2)", "scatter": "dimensionless", "n_min": "galaxies per voxel"}}


# --------------------------------------------------------------------------- methods
def missing_models(profile) -> list[str]:
    """Targets (``delta``, ``phi``) with no trained model file for ``profile``."""

    out = []
    for t in ("delta", "phi"):
        try:
            model_files.model_path(profile, t)
        except transforms.TrainingError:
            out.append(t)
    return out


def _train_hint(profile, targets) -> str:
    cmds = " and ".join(f"`zoa train --profile {profile.name} --target {t}`" for t in targets)
    return (f"no trained V-Net for profile {profile.name!r} ({', '.join(targets)} missing under "
            f"{profile.data_path / 'models'}): run {cmds}, or leave vnet out of --methods")


def _cal_key(cal: dict | None) -> str | None:
    return None if cal is None else json.dumps(cal, sort_keys=True)


class Reconstructor:
    """The requested methods, ready to run on batches of gridded catalogues.

    Construction checks what is cheap to check (method names; trained model files, or trains
    them with ``train=True``; the calibration of ``wiener_cal`` and ``wiener_joint``, and the
    latter's counts model, :func:`counts_model`); the networks are loaded on the first call.
    ``info[method]`` says what each method used (models, calibration, counts model)."""

    def __init__(self, profile, methods=DEFAULT_METHODS, train: bool = False, progress: bool = False):
        from zoa_lib.methods import reconstruction
        from zoa_lib.universe.cosmology import from_profile

        self.profile, self.progress = profile, progress
        self.methods = parse_methods(methods, SEARCH_METHODS, DEFAULT_METHODS)
        self.cosmo = from_profile(profile)
        self.info: dict[str, dict] = {m: {} for m in self.methods}
        self._models = None
        self._model_files: dict[str, Path] = {}
        if "vnet" in self.methods:
            if train:
                for t in ("delta", "phi"):
                    fitting.ensure_trained(profile, t, progress=progress)
            missing = missing_models(profile)
            if missing:
                raise ReconstructError(_train_hint(profile, missing))
            self._model_files = {t: model_files.model_path(profile, t) for t in ("delta", "phi")}
            for t, p in self._model_files.items():
                meta = model_files.read_model_metadata(p)
                self.info["vnet"][f"{t}_model"] = str(p)
                self.info["vnet"][f"{t}_epochs_done"] = meta.get("meta", {}).get("epochs_done")
                if model_files.matching_model(profile, t) is None:
                    self.info["vnet"].setdefault("notes", []).append(
                        f"the {t} model was not trained (to the end) with this profile's current settings")
        self.bias = self.cal_dict = self.counts = self.joint = None
        calibrated = [m for m in self.methods if m in CALIBRATED]
        if calibrated:
            self.bias, self.cal_dict, source = self._calibration(calibrated[0])
            for m in calibrated:
                self.info[m]["calibration"] = source
                self.info[m]["sigma_nl"] = getattr(self.bias, "sigma_nl", None)
        if "wiener_joint" in self.methods:
            from zoa_lib.methods.wiener_joint import JointWienerFilter

            self.counts = counts_model(profile)
            self.info["wiener_joint"]["counts_model"] = counts_summary(self.counts)
            self.joint = JointWienerFilter(profile.box.grid, profile.box.size, self.cosmo, profile.box.smoothing)
        self.operator = None
        if "wiener" in self.methods or "wiener_cal" in self.methods:
            from zoa_lib.methods.baselines import WienerFilter

            self.operator = WienerFilter(profile.box.grid, profile.box.size, self.cosmo, profile.box.smoothing)
        self._reconstruction = reconstruction  # looked up at each call (tests spy on it)

    def _model_calibration(self) -> dict | None:

        cals = []
        for t in ("delta", "phi"):
            try:
                meta = model_files.read_model_metadata(model_files.model_path(self.profile, t))
            except transforms.TrainingError:
                continue
            cal = meta.get("transforms", {}).get("wiener_calibration")
            if cal:
                cals.append(cal)
        return cals[-1] if cals else None  # the potential network's, when both carry one

    def _calibration(self, method: str = "wiener_cal"):
        from zoa_lib.methods.wiener_channels import calibration_dict, calibration_from_dict

        model_cal = self._model_calibration()
        if model_cal is not None and "vnet" in self.methods:
            return calibration_from_dict(model_cal), model_cal, "saved with the V-Net models (the filter they correct)"
        if calibration.has_training_shards(self.profile):
            bias = calibration.calibration(self.profile)
            return bias, calibration_dict(bias), "measured on the profile's training mocks"
        if model_cal is not None:
            return calibration_from_dict(model_cal), model_cal, "saved with the V-Net models"
        raise ReconstructError(f"{method} needs the radial-bias calibration of training mocks: run `zoa mocks "
                               f"--profile {self.profile.name}` (or train the V-Net), or use wiener instead")

    def _load(self):
        if self._models is None:

            self._models = {t: model_files.load_model_file(p) for t, p in self._model_files.items()}
        return self._models

    def __call__(self, inputs) -> dict:
        """{method: {"delta": (n, N, N, N), "phi": (n, N, N, N), "velocity": (n, N, N, N, 3)}},
        float32, φ with each cube's mean removed, from (n, N, N, N, 2) gridded inputs."""
        from tqdm.auto import tqdm

        from zoa_lib.universe.velocity import velocities_from_potentials

        prof = self.profile
        N = prof.box.grid
        x = np.asarray(inputs, np.float32)
        if x.ndim != 5 or x.shape[1:] != (N, N, N, 2):
            raise ReconstructError(f"inputs must have shape (n, {N}, {N}, {N}, 2) for profile {prof.name!r}, "
                                   f"got {x.shape}")
        out, raw_wf = {}, None
        for m in self.methods:
            if m == "vnet":
                continue
            bias = self.bias if m in CALIBRATED else None
            op = self.joint if m == "wiener_joint" else self.operator
            recs = [self._reconstruction.reconstruct(m, xi, prof, cosmo=self.cosmo, operator=op, bias=bias,
                                                 counts=self.counts)
                    for xi in tqdm(x, desc=m, unit="catalogue", disable=not self.progress, leave=False)]
            out[m] = {k: np.stack([r[k] for r in recs]).astype(np.float32) for k in FIELDS}
            if m == "wiener_cal":  # the WF channels of the V-Net, before φ's mean is removed
                raw_wf = np.stack([out[m]["phi"], out[m]["delta"]], axis=-1)
        if "vnet" in self.methods:
            pred, chans = {}, {}
            for t, (model, transforms) in self._load().items():
                ch = None
                if transforms.wiener_channels:
                    key = _cal_key(transforms.wiener_calibration)
                    if key not in chans:
                        if raw_wf is not None and key == _cal_key(self.cal_dict):
                            chans[key] = raw_wf
                        else:
                            from zoa_lib.methods.wiener_channels import channels

                            chans[key] = channels(x, prof, transforms.wiener_calibration, progress=self.progress)
                    ch = chans[key]
                pred[t] = inference.predict_array(model, transforms, x, profile=prof, channels=ch)
            vel = velocities_from_potentials(pred["phi"], prof.box.size, self.cosmo)
            out["vnet"] = {"delta": pred["delta"].astype(np.float32), "phi": pred["phi"].astype(np.float32),
                           "velocity": vel}
        for rec in out.values():
            rec["phi"] = (rec["phi"] - rec["phi"].mean(axis=(1, 2, 3), keepdims=True)).astype(np.float32)
        return {m: out[m] for m in self.methods}


def reconstruct_inputs(profile, inputs, methods=DEFAULT_METHODS, *, train: bool = False,
                       progress: bool = False) -> dict:
    """Reconstruct gridded catalogues (n, N, N, N, 2) — (N_gal, V_pec [km/s]) — by each method:
    {method: {"delta", "phi" [(km/s)², mean removed], "velocity" [km/s]}} with a leading axis n
    (:class:`Reconstructor`)."""
    return Reconstructor(profile, methods, train=train, progress=progress)(inputs)


# --------------------------------------------------------------------------- bulk flows
class _BulkFlows:
    """B(R) of many velocity fields on one grid: :func:`zoa_lib.universe.velocity.bulk_flow`'s
    volume-weighted mean with its sphere weights (:func:`zoa_lib.universe.velocity.sphere_weights`)
    computed once per radius instead of once per field."""

    def __init__(self, n: int, size: float, radii):
        from zoa_lib.universe.velocity import sphere_weights

        self.w = np.stack([sphere_weights(n, size, float(R)) for R in radii])
        self.w /= self.w.sum(axis=(1, 2, 3), keepdims=True)

    def __call__(self, velocity) -> np.ndarray:
        """(len(radii), 3) km/s of one (N, N, N, 3) field."""
        return np.einsum("rijk,ijka->ra", self.w, np.asarray(velocity, np.float64))


def bulk_flow_rows(B, radii) -> list[dict]:
    """Rows {R, B, l, b, SGX, SGY, SGZ} of bulk-flow vectors B (len(radii), 3) in SG km/s:
    |B| in km/s and its direction in Galactic (l, b) degrees (astropy, via
    :func:`zoa_lib.survey.sky.sg_to_galactic`)."""
    from zoa_lib.survey.sky import sg_to_galactic

    B = np.asarray(B, np.float64).reshape(-1, 3)
    l, b, mag = sg_to_galactic(B[:, 0], B[:, 1], B[:, 2])
    return [{"R": float(R), "B": float(m), "l": float(li), "b": float(bi),
             "SGX": float(v[0]), "SGY": float(v[1]), "SGZ": float(v[2])}
            for R, m, li, bi, v in zip(radii, np.atleast_1d(mag), np.atleast_1d(l), np.atleast_1d(b), B)]


# --------------------------------------------------------------------------- the whole run
class _Welford:
    """Running mean and sum of squared deviations (float64) of equally shaped arrays."""

    def __init__(self):
        self.n, self.mean, self.m2 = 0, None, None

    def add(self, a):
        a = np.asarray(a, np.float64)
        self.n += 1
        if self.mean is None:
            self.mean, self.m2 = a.copy(), np.zeros_like(a)
            return
        d = a - self.mean
        self.mean += d / self.n
        self.m2 += d * (a - self.mean)

    def std(self):
        return np.sqrt(self.m2 / (self.n - 1)) if self.n > 1 else None


@dataclass
class Reconstruction:
    """What :func:`reconstruct_catalogs` made (see the module docstring for the file schema).

    ``fields[method]``: {"delta", "phi", "velocity"} — the mean over realizations (the field
    itself for one catalogue); ``scatter[method]``: their standard deviation over realizations
    (ddof = 1; empty for one catalogue); ``bulk_flows[method]``: (n, len(radii), 3) km/s,
    one per realization; ``realizations[method]``: the (n, ...) stacks when kept, else None."""

    profile: object
    source: str
    methods: list[str]
    radii: np.ndarray
    catalogs: list[CatalogInput]
    fields: dict
    scatter: dict
    bulk_flows: dict
    info: dict
    h0_catalog: float
    estimator: str
    realizations: dict | None = None
    notes: list[str] = field(default_factory=list)
    #: how the catalogue differs from the training mocks (:func:`domain_mismatches`), as dicts;
    #: empty when alike (or when no trained method ran)
    mismatches: list = field(default_factory=list)
    #: {method: its bulk-flow error on the profile's test mocks} (:func:`zoa_lib.analysis.bulk_flow_errors.method_errors`;
    #: None where not evaluated, or when the catalogue is unlike the mocks)
    errors: dict = field(default_factory=dict)

    @property
    def n(self) -> int:
        return len(self.catalogs)

    def bulk_flow_table(self, method: str) -> list[dict]:
        """B(R) of the mean field (= the mean of the realizations' B): rows {R, B, l, b,
        SGX, SGY, SGZ}, plus ``B_std`` (scatter of |B| over realizations) when n > 1, and the
        errors ``B_err_method`` (the method's on test mocks of the same selection; NaN where not
        measured) and ``B_err`` (both in quadrature; :func:`zoa_lib.analysis.bulk_flow_errors.attach_errors`)."""
        from zoa_lib.analysis.bulk_flow_errors import attach_errors

        B = self.bulk_flows[method]
        rows = bulk_flow_rows(B.mean(axis=0), self.radii)
        if self.n > 1:
            mags = np.linalg.norm(B, axis=-1)
            for row, s in zip(rows, mags.std(axis=0, ddof=1)):
                row["B_std"] = float(s)
        return attach_errors(rows, self.errors.get(method))

    def bulk_flow_document(self, hdf5_name: str | None = None) -> dict:
        """The bulk-flow JSON written beside the HDF5 file (module docstring)."""
        from zoa_lib.io.provenance import provenance

        prof = self.profile
        doc = {"hdf5": hdf5_name, "profile": prof.name, "box_size": float(prof.box.size),
               "grid": int(prof.box.grid), "window": BULK_FLOW_WINDOW,
               "units": {"R": "Mpc/h", "B": "km/s", "B_std": "km/s", "l": "deg (Galactic)", "b": "deg (Galactic)",
                         "SGX": "km/s", "SGY": "km/s", "SGZ": "km/s", "lcdm_rms": "km/s"},
               "radii": [float(r) for r in self.radii], "n_realizations": self.n,
               "statistic": "single catalogue" if self.n == 1 else
               f"B of the mean field over {self.n} realizations (= the mean B), B_std its scatter (ddof = 1)",
               "catalogs": [c.path for c in self.catalogs],
               "lcdm_rms": [float(s) for s in self._lcdm_rms()],
               "lcdm_note": "rms |B| of linear ΛCDM in top-hat spheres, infinite volume (Cosmology.sigma_bulk_flow)",
               "methods": {}, "provenance": provenance(prof)}
        doc["provenance"].pop("parameters", None)
        for m in self.methods:
            entry = {"label": SEARCH_LABELS.get(m, m), "bulk_flow": self.bulk_flow_table(m)}
            if self.n > 1:
                entry["realizations"] = [[{k: r[k] for k in ("R", "B", "l", "b")}
                                          for r in bulk_flow_rows(B, self.radii)] for B in self.bulk_flows[m]]
            doc["methods"][m] = entry
        doc["domain_mismatch"] = list(self.mismatches)
        doc["errors"] = {m: self.errors.get(m) for m in self.methods}
        doc["errors_note"] = ("B_err_method: rms of |B_pred| - |B_true| over the profile's test mocks (zoa evaluate), "
                              "which copy the catalogue's selection; B_err adds the scatter over realizations; None / "
                              "NaN: not evaluated, or the catalogue is unlike the mocks (domain_mismatch)")
        doc["domain_note"] = ("ways the catalogue differs from the mocks the trained methods learned from "
                              "(zoa_lib.survey.domain); empty: alike" if self.mismatches or any(
                                  m in TRAINED_METHODS for m in self.methods) else "no trained method ran")
        return doc

    def _lcdm_rms(self):
        from zoa_lib.universe.cosmology import from_profile

        return from_profile(self.profile).sigma_bulk_flow(self.radii)


def reconstruct_catalogs(profile, path, methods=DEFAULT_METHODS, *, h0_catalog: float | None = None,
                         kind: str = "auto", columns=None, drop_bad: bool = False, estimator: str | None = None,
                         frame: str = "auto", groups: bool = False,
                         radii=None, train: bool = False, keep_realizations: bool = False, batch: int = BATCH,
                         on_batch=None, progress: bool = False, force: bool = False,
                         zero_point: bool = True) -> Reconstruction:
    """Read, grid and reconstruct one catalogue or every file of a glob (realizations).

    path : a catalogue file :func:`zoa_lib.survey.catalogs.read_catalog` reads, a glob pattern or a
        list of files; each file is one realization (``sample`` = its index).
    methods : names (:data:`~zoa_lib.methods.registry.SEARCH_METHODS`) or ``"vnet,wiener_cal"``;
        default :data:`DEFAULT_METHODS`.
    h0_catalog, kind, columns, drop_bad, estimator, frame, groups : passed to the reader
        (estimator default: the profile's ``survey.estimator``; H0 default: the layout's, CF4
        74.6, CF3 75 km/s/Mpc, recorded as the value used).
    radii : bulk-flow radii in Mpc/h (default :func:`bulk_flow_radii`).
    train : train missing or outdated V-Nets (:func:`zoa_lib.methods.training.fitting.ensure_trained`)
        instead of stopping with the ``zoa train`` commands.
    keep_realizations : keep every realization's fields in ``realizations`` (memory grows with
        their number; prefer ``on_batch`` for many realizations).
    on_batch : called as ``on_batch(out)`` with each batch's {method: {"delta", "phi",
        "velocity"}} (leading axis: the batch's realizations, in file order), e.g. a
        :class:`zoa_lib.analysis.ga_search.SearchAccumulator`: per-realization analyses with memory
        independent of the number of catalogues.
    force : reconstruct even when the (first) catalogue is unlike the training mocks of the
        profile (:func:`domain_mismatches`; run when a method of :data:`TRAINED_METHODS` is asked for);
        the mismatch is then recorded in ``mismatches``, the HDF5 attrs and the bulk-flow JSON.
        Without it such a catalogue is a one-line :class:`ReconstructError` naming the mismatch
        and how to train matching networks.
    zero_point : fit each distance catalogue's zero point (the H0 of its distances) as a nuisance
        parameter and apply it before gridding (:mod:`zoa_lib.survey.zero_point`; the Malmquist bias and
        the fit's error from the profile's training mocks, :func:`zoa_lib.survey.domain.training_reference`);
        recorded per catalogue in ``catalogs`` (``zero_point``).

    Errors (:class:`ReconstructError` and the reader's :class:`zoa_lib.survey.catalogs.CatalogError`,
    one line each) come before any model is loaded where they can: unknown method, no file,
    missing models or calibration, a catalogue outside the cube."""
    from tqdm.auto import tqdm

    methods = parse_methods(methods, SEARCH_METHODS, DEFAULT_METHODS)
    r = bulk_flow_radii(profile, radii)
    paths = catalog_paths(path)
    if batch < 1:
        raise ReconstructError(f"batch: must be >= 1, got {batch}")
    options = dict(h0_catalog=h0_catalog, kind=kind, columns=columns, drop_bad=drop_bad, estimator=estimator,
                   frame=frame, groups=groups)
    first_table = read_table(profile, paths[0], sample=0, **options)  # a bad first catalogue fails before
    first = grid_table(profile, paths[0], *first_table)                 # any model is loaded
    rec_fn = Reconstructor(profile, methods, train=train, progress=progress and len(paths) == 1)
    from zoa_lib.survey import domain  # after the cheap checks of the Reconstructor (missing models say so first)

    trained = any(m in TRAINED_METHODS for m in methods)
    reference = domain.training_reference(profile) if zero_point or trained else None
    calibration = None
    if zero_point and first[1].report.kind != "positions":
        from zoa_lib.survey.zero_point import calibrate

        calibration = calibrate(reference)
        first = grid_table(profile, paths[0], *first_table, calibration)  # the table as read, not read again
    mismatches = domain_mismatches(profile, first[1].table, methods, reference)
    if mismatches and not force:
        raise ReconstructError(domain.summary_line(mismatches, str(paths[0]), profile))
    flows = _BulkFlows(profile.box.grid, profile.box.size, r)
    acc = {m: {k: _Welford() for k in FIELDS} for m in methods}
    bulk = {m: [] for m in methods}
    kept = {m: {k: [] for k in FIELDS} for m in methods} if keep_realizations else None
    infos = []
    bar = tqdm(total=len(paths), desc="catalogues", unit="catalogue", disable=not progress or len(paths) == 1)
    for start in range(0, len(paths), batch):
        chunk = [first] if start == 0 else []
        chunk += [read_and_grid(profile, paths[i], sample=i, zero_point=calibration, **options)
                  for i in range(start + len(chunk), min(start + batch, len(paths)))]
        x = np.stack([c[0] for c in chunk])
        infos += [c[1] for c in chunk]
        out = rec_fn(x)
        if on_batch is not None:
            on_batch(out)
        for m, fields_ in out.items():
            for k, stack in fields_.items():
                for a in stack:
                    acc[m][k].add(a)
                if kept is not None:
                    kept[m][k].append(stack)
            bulk[m] += [flows(v) for v in fields_["velocity"]]
        bar.update(len(chunk))
    bar.close()
    fields_mean = {m: {k: acc[m][k].mean.astype(np.float32) for k in FIELDS} for m in methods}
    scatter = {m: {k: acc[m][k].std().astype(np.float32) for k in FIELDS} for m in methods} if len(paths) > 1 else {}
    from zoa_lib.analysis.bulk_flow_errors import method_errors

    notes = []
    if mismatches:
        notes.append("reconstructed with force although the catalogue is unlike the training mocks: "
                     + "; ".join(m.message for m in mismatches))
    if profile.survey.grid_position != "observed":
        notes.append(f"gridded at the observed distances (a real catalogue has no true ones), although profile "
                     f"{profile.name!r} grids its mocks at {profile.survey.grid_position!r} distances")
    return Reconstruction(
        profile=profile, source=str(path) if not isinstance(path, (list, tuple)) else
        (str(paths[0]) if len(paths) == 1 else f"{len(paths)} files: {paths[0]} ... {paths[-1]}"),
        methods=methods, radii=r, catalogs=infos, fields=fields_mean, scatter=scatter,
        bulk_flows={m: np.stack(bulk[m]) for m in methods}, info=rec_fn.info,
        h0_catalog=float(first[1].report.h0_catalog),
        estimator=estimator or profile.survey.estimator,
        realizations=({m: {k: np.concatenate(v) for k, v in kept[m].items()} for m in methods}
                      if kept is not None else None), notes=notes,
        mismatches=[m.to_dict() for m in mismatches],
        errors={} if mismatches else {m: method_errors(profile, m) for m in methods})


# --------------------------------------------------------------------------- files
def write(rec: Reconstruction, out: str | os.PathLike) -> tuple[Path, Path]:
    """Write the HDF5 file and the bulk-flow JSON beside it (module docstring), each
    atomically. Returns (HDF5 path, JSON path)."""
    import h5py

    from zoa_lib.io.atomic import atomic_path, write_json_atomic
    from zoa_lib.io.provenance import provenance

    out = Path(out)
    if out.is_dir():
        raise ReconstructError(f"{out}: is a folder; give a file name for the reconstruction (e.g. cf4.h5)")
    jpath = bulk_flow_path(out)
    prof = rec.profile
    N, L = int(prof.box.grid), float(prof.box.size)
    cats = [c.to_dict() for c in rec.catalogs]
    attrs = {**provenance(prof), "box_size": L, "grid": N, "axes": "SGX, SGY, SGZ",
             "voxel": f"voxel i spans [-L/2 + i L/N, -L/2 + (i+1) L/N) Mpc/h, L = {L:g}, N = {N}",
             "observer": "at the centre of the cube", "n_realizations": rec.n,
             "statistic": "single catalogue" if rec.n == 1 else
             f"mean over {rec.n} realizations; *_std: standard deviation over realizations (ddof = 1)",
             "methods": json.dumps(rec.methods), "catalog": rec.source,
             "h0_catalog": rec.h0_catalog, "estimator": rec.estimator, "grid_position": "observed",
             "bulk_flows": jpath.name, "notes": json.dumps(rec.notes),
             "domain_mismatch": json.dumps(rec.mismatches),
             "attr_units": json.dumps({"box_size": "Mpc/h", "h0_catalog": "km/s/Mpc"})}
    if rec.n == 1:  # one catalogue: its provenance as attrs too (several: the `catalogs` dataset only)
        c = cats[0]
        attrs.update(catalog_file=c["path"], catalog_sha256=c["sha256"], catalog_kind=c["kind"],
                     catalog_layout=c["layout"], catalog_frame=c["frame"], catalog_groups=bool(c["groups"]),
                     columns=json.dumps(c["columns"]), catalog_notes=json.dumps(c["notes"]),
                     **{k: c[k] for k in ("n_rows", "n_kept", "n_dropped", "n_cz_nonpositive", "n_in_cube",
                                          "n_outside")})
    with atomic_path(out) as tmp:
        with h5py.File(tmp, "w") as f:
            for k, v in attrs.items():
                f.attrs[k] = v
            ds = f.create_dataset("catalogs", data=np.array([json.dumps(c) for c in cats], dtype=object),
                                  dtype=h5py.string_dtype())
            ds.attrs["content"] = ("one JSON record per catalogue (realization): path, sha256, kind, columns, "
                                   "n_rows, n_kept, n_dropped, n_cz_nonpositive, n_in_cube, n_outside, notes, "
                                   "layout, frame (of the velocities as read; converted to CMB), h0_catalog "
                                   "(km/s/Mpc), groups, n_groups")
            for m in rec.methods:
                g = f.create_group(m)
                g.attrs["label"] = SEARCH_LABELS.get(m, m)
                g.attrs["statistic"] = attrs["statistic"]
                g.attrs["info"] = json.dumps(rec.info.get(m, {}), default=str)
                for k, unit in FIELDS.items():
                    parts = [(k, rec.fields[m][k])] + ([(k + "_std", rec.scatter[m][k])] if rec.scatter else [])
                    for name, a in parts:
                        ds = g.create_dataset(name, data=np.asarray(a, np.float32))
                        ds.attrs["units"] = unit
                        ds.attrs["axes"] = "SGX, SGY, SGZ" + (", component" if k == "velocity" else "")
    write_json_atomic(jpath, rec.bulk_flow_document(out.name))
    return out, jpath


def read(path: str | os.PathLike) -> dict:
    """A file :func:`write` wrote: {"attrs": {...}, "<method>": {"delta", "phi", "velocity",
    (…_std)}} as numpy arrays."""
    import h5py

    with h5py.File(path, "r") as f:
        out = {"attrs": dict(f.attrs), "catalogs": [json.loads(s) for s in f["catalogs"].asstr()[...]]}
        for m in f:
            if isinstance(f[m], h5py.Group):
                out[m] = {k: f[m][k][...] for k in f[m]}
    return out
