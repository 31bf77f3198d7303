"""``zoa evaluate``: the V-Nets against the Wiener filters and POTENT on the same held-out mocks.

Methods (each gives δ, φ and the 3D velocity on the observer cube):

====================  ==========================================================================
``vnet_delta``        the profile's V-Net (:mod:`zoa_lib.methods.networks`), density prediction δ; v from
                      δ in linear theory and φ from Poisson, both on the zero-padded cube
                      (:func:`zoa_lib.universe.velocity.velocity_from_density`, ``pad=2``: mass outside
                      the cube is unknown to it)
``vnet_phi``          its potential prediction φ; v = −(2f/(3 H0 Ωm)) ∇φ and
                      δ = ∇²φ / ((3/2) Ωm H0²) by finite differences (the cube is not periodic)
``vnet_paper_delta``  the same for the paper's set-up (the two survey channels N_gal, V_pec only),
``vnet_paper_phi``    trained where the profile's V-Net reads more (the Wiener channels)
``wiener``            Wiener filter of the gridded radial velocities (:mod:`zoa_lib.methods.baselines`):
                      every occupied voxel is data, inside the ZOA too; the noise adds, in
                      quadrature, the small-scale velocity dispersion σ_nl measured on training mocks
``wiener_cal``        the same after subtracting the mean radial bias b(r) = ⟨V_pec − v_r,true⟩
                      measured on (up to :data:`~zoa_lib.methods.calibration.N_CALIBRATION`) *training* mocks — the
                      inhomogeneous Malmquist bias of galaxies gridded at observed distances,
                      which the network learns from the same mocks
                      (:func:`zoa_lib.methods.baselines.radial_bias`); run by default when training
                      shards exist
``wiener_joint``      the joint Wiener filter of the galaxy counts and the calibrated radial
                      velocities (:mod:`zoa_lib.methods.wiener_joint`): the classical method that reads the
                      same two survey channels as the networks; n̄, the linear bias and the shot
                      noise fitted on training mocks (:func:`counts_calibration`)
``potent``            POTENT (:mod:`zoa_lib.methods.baselines`), scored against the truth smoothed as
                      POTENT smooths (:func:`potent_truth`); not a candidate for "best classical"
                      then (:func:`~zoa_lib.analysis.verdict.comparable_baselines`), it stands in its own column
====================  ==========================================================================

Calibration (:func:`calibration`, training mocks only): the radial bias b(r) and σ_nl, the rms
of each galaxy's true radial velocity about the smoothed target velocity of its voxel
(:func:`zoa_lib.methods.baselines.velocity_dispersion`). Both are written to the Wiener methods' JSON.
Without training shards σ_nl is not measured and the filter's noise is the survey's error
model alone (said in the JSON).

Which mocks (:func:`evaluation_indices`): ``evaluation.n_eval`` mocks of the split spread over
every parent box of the split (round robin over the boxes, :func:`select_spread`; a sample's
box from :func:`zoa_lib.survey.mocks.sample_location`), not the first n — held-out mocks of one box
share its large-scale modes, so the parent box, not the mock, is the independent unit.

Inputs: ``<data>/predictions/{delta,phi}-<split>.h5`` written by ``zoa predict`` (datasets
``prediction`` (n, N, N, N) in physical units, ``truth``, ``inputs`` (n, N, N, N, 2),
``velocity_true`` (n, N, N, N, 3), ``samples`` (n,)). With only baseline methods
(``methods=["wiener", "potent"]``) the mock shards of the split are read instead. Truth: δ
and φ from the ``truth`` datasets (or shard targets), the velocity from ``velocity_true`` (or
``targets/velocity``).

Scoring (docs/DESIGN.md, "Evaluation protocol"): every metric of
:func:`zoa_lib.analysis.metrics.field_metrics` / :func:`zoa_lib.analysis.metrics.velocity_metrics`, pooled and per
mock. φ is defined up to a constant that velocities cannot measure (each mock's mean of φ
over a region comes from the parent box's zero point), so φ is judged by per-mock Pearson r
and by the MSE with each mock's mean over the region removed.

The verdict (:func:`comparison`, :data:`~zoa_lib.analysis.verdict.VERDICT_METRICS`): for each network, on each headline
metric, the network against the *best* classical method on that metric among those run and
scored against the same truth (:func:`~zoa_lib.analysis.verdict.comparable_baselines`; by the mean over mocks),
with the mean paired difference V-Net − baseline and its 68 % interval from a bootstrap over
parent boxes (:func:`zoa_lib.analysis.metrics.paired_bootstrap`). A winner is named only where the
interval excludes zero ("tie" otherwise; "undetermined" with a single parent box).
``goal_met`` is true only if the profile's V-Net wins or ties on every counted row;
``networks`` holds the same for each network. The structure statistic (clusters and voids
inside and outside the ZOA, :mod:`zoa_lib.analysis.structure_stats`, :data:`~zoa_lib.analysis.verdict.STRUCTURE_METRICS`) enters
the verdict with its intervals, shown and not counted.

Outputs in ``<data>/evaluation/``: ``<method>.json`` (every metric, the per-mock arrays, the
evaluated ``samples`` and their parent ``boxes``), ``comparison.json`` and ``comparison.md``
(the verdict, then the side-by-side table with a "best" column), all written atomically.
"""
from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np

from zoa_lib.analysis import metrics
from zoa_lib.analysis.report import comparison_markdown
from zoa_lib.analysis.verdict import comparison
from zoa_lib.errors import ZoaError
from zoa_lib.io.atomic import ensure_writable, write_json_atomic, write_text_atomic
from zoa_lib.io.processes import process_pool
from zoa_lib.io.provenance import provenance
from zoa_lib.methods import baselines, networks
from zoa_lib.methods.calibration import calibration, counts_calibration, has_training_shards
from zoa_lib.methods.reconstruction import reconstruct
from zoa_lib.methods.registry import BASELINES, CALIBRATED, LABELS, METHODS, NETWORK_METHODS, TARGET_OF, parse_methods
from zoa_lib.methods.training import fitting, inference, model_files
from zoa_lib.methods.training.inference import predictions_path
from zoa_lib.universe.cosmology import from_profile

PREDICTION_DATASETS = ("prediction", "truth", "inputs", "velocity_true", "samples")


class EvaluationError(ZoaError, ValueError):
    """Missing or inconsistent predictions / shards for ``zoa evaluate``."""


# --------------------------------------------------------------------------- paths
def ensure_predictions(profile, split: str = "test", targets=("delta", "phi"), *, train: bool = False,
                       progress: bool = False, nets=None) -> dict[str, bool]:
    """Make the V-Net predictions of a split current, the one rule every chapter uses.

    For each network (``nets``: names of :mod:`zoa_lib.methods.networks`, default every network the
    profile trains, :func:`zoa_lib.methods.networks.networks`) and target: with ``train``, train the
    network first if it is missing or was trained with other settings
    (:func:`zoa_lib.methods.training.fitting.ensure_trained`); then, when a finished model exists
    (:func:`zoa_lib.methods.training.model_files.matching_model`) and the predictions file (:func:`predictions_path`)
    is missing or older than that model, predict the split again
    (:func:`zoa_lib.methods.training.inference.predict`). Without a matching model nothing is trained or
    predicted. Returns {method (``vnet_delta``, ``vnet_paper_phi``, …): whether a predictions
    file exists now}."""

    out = {}
    for net in (networks.networks(profile) if nets is None else nets):
        prof = networks.network_profile(profile, net)
        for t in targets:
            if train:
                fitting.ensure_trained(prof, t, progress=progress)
            model = model_files.matching_model(prof, t)
            path = predictions_path(prof, t, split)
            if model is not None and (not path.exists() or path.stat().st_mtime < model.stat().st_mtime):
                inference.predict(prof, t, split, progress=progress)
            out[networks.method(net, t)] = path.exists()
    return out


def evaluation_dir(profile) -> Path:
    """``<data_path>/evaluation``."""
    return profile.data_path / "evaluation"


def _predict_hint(profile, target, split):
    net = "" if profile.network == "vnet" else f" --network {profile.network}"
    return f"zoa predict --profile {profile.name}{net} --target {target} --split {split}"


# --------------------------------------------------------------------------- which mocks
def select_spread(boxes, n: int) -> np.ndarray:
    """Indices (increasing) of ``n`` mocks spread evenly over their parent ``boxes``: round
    robin over the distinct boxes (in order of first appearance), each box's mocks in order,
    until ``n`` are chosen or none is left. ``boxes``: one parent-box index per mock."""
    boxes = np.asarray(boxes).ravel()
    if n < 1:
        raise EvaluationError(f"n_eval: must be >= 1, got {n}")
    order = list(dict.fromkeys(boxes.tolist()))
    queues = [list(np.flatnonzero(boxes == b)) for b in order]
    chosen = []
    depth = 0
    while len(chosen) < min(n, len(boxes)):
        for q in queues:
            if depth < len(q) and len(chosen) < n:
                chosen.append(q[depth])
        depth += 1
    return np.array(sorted(chosen), dtype=np.int64)


def parent_boxes(profile, samples) -> np.ndarray:
    """Parent-box index of each global sample index (:func:`zoa_lib.survey.mocks.sample_location`)."""
    from zoa_lib.survey.mocks import MocksError, sample_location

    try:
        return np.array([sample_location(profile, int(s)).box_index for s in np.ravel(samples)], dtype=np.int64)
    except MocksError as e:
        raise EvaluationError(f"samples: {e}; the predictions or shards were made with another profile "
                              f"configuration (rerun `zoa predict --profile {profile.name}`)") from None


def prediction_samples(profile, target: str, split: str = "test") -> np.ndarray:
    """The ``samples`` dataset of a predictions file (no field read)."""
    import h5py

    path = predictions_path(profile, target, split)
    if not path.exists():
        raise EvaluationError(f"{path}: predictions not found; run `{_predict_hint(profile, target, split)}` "
                              f"first (or `zoa evaluate --methods wiener,potent` for the baselines only)")
    try:
        with h5py.File(path, "r") as f:
            if "samples" not in f:
                raise EvaluationError(f"{path}: missing dataset 'samples'")
            return np.asarray(f["samples"][()], dtype=np.int64)
    except OSError as e:
        raise EvaluationError(f"{path}: not a readable HDF5 file ({str(e).splitlines()[0]})") from None


def shard_samples(profile, split: str = "test") -> np.ndarray:
    """Global sample indices of a split's shards, in shard order (no field read)."""
    import h5py

    from zoa_lib.survey import shards

    folder = shards.mocks_dir(profile)
    paths = shards.shard_paths(folder, split)
    if not paths:
        raise EvaluationError(f"{folder}: no {split!r} shards in the manifest; run "
                              f"`zoa mocks --profile {profile.name}` first")
    out = []
    for p in paths:
        shards.validate_shard(p, grid=profile.box.grid)
        with h5py.File(p, "r") as f:
            out.append(np.asarray(f["samples"][()], dtype=np.int64))
    return np.concatenate(out)


def evaluation_indices(profile, split: str = "test", source: str = "predictions",
                       target: str = "phi", n: int | None = None) -> np.ndarray:
    """Positions (in the predictions file of ``target``, or in the split's shards with
    ``source="shards"``) of the ``n`` (default ``evaluation.n_eval``) mocks that
    ``zoa evaluate`` scores: spread over every parent box of the split (:func:`select_spread`).
    Pass them to :func:`load_predictions` / :func:`load_shard_mocks` as ``indices``."""
    samples = (prediction_samples(profile, target, split) if source == "predictions"
               else shard_samples(profile, split))
    return select_spread(parent_boxes(profile, samples), n or profile.evaluation.n_eval)


# --------------------------------------------------------------------------- reading
def load_predictions(profile, target: str, split: str = "test", n: int | None = None,
                     indices=None) -> dict:
    """Mocks of a predictions file as float32 arrays (dict of its datasets): those at
    ``indices`` (positions in the file, e.g. :func:`evaluation_indices`) if given, else the
    first ``n`` (all by default)."""
    import h5py

    path = predictions_path(profile, target, split)
    if not path.exists():
        raise EvaluationError(f"{path}: predictions not found; run `{_predict_hint(profile, target, split)}` "
                              f"first (or `zoa evaluate --methods wiener,potent` for the baselines only)")
    N = profile.box.grid
    try:
        with h5py.File(path, "r") as f:
            for name in PREDICTION_DATASETS:
                if name not in f:
                    raise EvaluationError(f"{path}: missing dataset {name!r}")
            m = f["prediction"].shape[0]
            want = {"prediction": (m, N, N, N), "truth": (m, N, N, N), "inputs": (m, N, N, N, 2),
                    "velocity_true": (m, N, N, N, 3), "samples": (m,)}
            for name, shp in want.items():
                if f[name].shape != shp:
                    raise EvaluationError(f"{path}: dataset {name!r} has shape {f[name].shape}, "
                                          f"expected {shp} (profile {profile.name!r}, grid {N})")
            if indices is None:
                k = m if n is None else min(n, m)
                out = {name: f[name][:k] for name in PREDICTION_DATASETS}
            else:
                idx = np.unique(np.asarray(indices, dtype=np.int64))
                if idx.size and (idx[0] < 0 or idx[-1] >= m):
                    raise EvaluationError(f"{path}: holds {m} mocks, asked for index {int(idx[-1])}")
                k = len(idx)
                out = {name: f[name][idx] if k else f[name][:0] for name in PREDICTION_DATASETS}
    except OSError as e:
        raise EvaluationError(f"{path}: not a readable HDF5 file ({str(e).splitlines()[0]})") from None
    if k == 0:
        raise EvaluationError(f"{path}: holds no mock")
    for name in ("prediction", "truth", "inputs", "velocity_true"):
        out[name] = np.asarray(out[name], dtype=np.float32)
        if not np.all(np.isfinite(out[name])):
            raise EvaluationError(f"{path}: dataset {name!r} holds NaN or infinite values")
    return out


def load_shard_mocks(profile, split: str = "test", n: int | None = None, indices=None) -> dict:
    """Mocks of a split's shards: inputs, delta, phi, velocity, samples — those at
    ``indices`` (positions in the split, shard order) if given, else the first ``n``."""
    from zoa_lib.survey import shards

    folder = shards.mocks_dir(profile)
    paths = shards.shard_paths(folder, split)
    if not paths:
        raise EvaluationError(f"{folder}: no {split!r} shards in the manifest; run "
                              f"`zoa mocks --profile {profile.name}` first")
    want = None if indices is None else set(int(i) for i in np.ravel(indices))
    keep = {"inputs": [], "delta": [], "phi": [], "velocity": [], "samples": []}
    got = start = 0
    for p in paths:
        if want is None and n is not None and got >= n:
            break
        if want is not None and start > max(want, default=-1):
            break
        s = shards.read_shard(p, load_catalog=False)
        if s.grid != profile.box.grid:
            raise EvaluationError(f"{p}: grid {s.grid}^3 but profile {profile.name!r} has {profile.box.grid}^3")
        if want is None:
            sel = np.arange(s.n if n is None else min(s.n, n - got))
        else:
            sel = np.array([i - start for i in range(start, start + s.n) if i in want], dtype=np.int64)
        start += s.n
        keep["inputs"].append(s.inputs[sel])
        for t in ("delta", "phi", "velocity"):
            keep[t].append(s.targets[t][sel])
        keep["samples"].append(s.samples[sel])
        got += len(sel)
    if want is not None and got < len(want):
        raise EvaluationError(f"{folder}: the {split!r} shards hold {start} mocks, asked for index {max(want)}")
    return {k: np.concatenate(v) for k, v in keep.items()}


def _gather(profile, split, methods, n):
    """Inputs and truth for the requested methods on ``n`` mocks spread over the split's
    parent boxes: {inputs, samples, boxes, truth: {delta, phi, velocity},
    predictions: {method: array}, source}. Every network's predictions file must hold the
    same mocks (one ``zoa predict`` of each)."""
    preds = {}
    truth = {}
    nets = {m: (networks.network_profile(profile, NETWORK_METHODS[m][0]), TARGET_OF[m])
            for m in methods if m in NETWORK_METHODS}
    if nets:
        samples_of = {m: prediction_samples(p, t, split) for m, (p, t) in nets.items()}
        first_m = next(iter(samples_of))
        for m, smp in samples_of.items():
            if not np.array_equal(smp, samples_of[first_m]):
                raise EvaluationError(
                    f"{predictions_path(*nets[m], split)}: samples differ from those of "
                    f"{predictions_path(*nets[first_m], split)}; rerun `zoa predict` for both")
        all_samples = samples_of[first_m]
        idx = select_spread(parent_boxes(profile, all_samples), n)
        loaded = {m: load_predictions(p, t, split, indices=idx) for m, (p, t) in nets.items()}
        first = loaded[first_m]
        inputs, samples = first["inputs"], first["samples"]
        truth["velocity"] = first["velocity_true"]
        for m, d in loaded.items():
            truth.setdefault(TARGET_OF[m], d["truth"])
            preds[m] = d["prediction"]
        del loaded
        # the other target's truth: the profile's predictions file if present (same samples), else the shards
        for t in ("delta", "phi"):
            if t not in truth:
                p = predictions_path(profile, t, split)
                if p.exists() and np.array_equal(prediction_samples(profile, t, split), all_samples):
                    truth[t] = load_predictions(profile, t, split, indices=idx)["truth"]
        if "delta" not in truth or "phi" not in truth:
            try:
                sh_samples = shard_samples(profile, split)
                pos = {int(s): i for i, s in enumerate(sh_samples)}
                sh = load_shard_mocks(profile, split, indices=[pos[int(s)] for s in samples])
            except (ZoaError, KeyError):
                sh = None
            if sh is not None and np.array_equal(sh["samples"], samples):
                for t in ("delta", "phi"):
                    truth.setdefault(t, sh[t])
        src = "predictions"
    else:
        idx = select_spread(parent_boxes(profile, shard_samples(profile, split)), n)
        sh = load_shard_mocks(profile, split, indices=idx)
        inputs, samples = sh["inputs"], sh["samples"]
        truth = {"delta": sh["delta"], "phi": sh["phi"], "velocity": sh["velocity"]}
        src = "shards"
    return {"inputs": inputs, "samples": samples, "boxes": parent_boxes(profile, samples), "truth": truth,
            "predictions": preds, "source": src}


# --------------------------------------------------------------------------- reconstructions


def potent_smoothing_extra(profile) -> float:
    """σ (Mpc/h) of the Gaussian that takes the targets (smoothed with ``box.smoothing``
    σ_s) to POTENT's ``evaluation.potent_smoothing`` σ_P: √(σ_P² − σ_s²), 0 if σ_P ≤ σ_s."""
    sp, ss = profile.evaluation.potent_smoothing, profile.box.smoothing
    return math.sqrt(sp ** 2 - ss ** 2) if sp > ss else 0.0


def potent_truth(truth: dict, profile) -> dict:
    """The truth (δ, φ: (n, N, N, N); velocity (n, N, N, N, 3)) as POTENT smooths: each
    mock's targets further smoothed with a Gaussian of σ = :func:`potent_smoothing_extra`,
    so that the total smoothing is ``evaluation.potent_smoothing`` (Gaussians add in
    quadrature). The cube is not periodic and what lies outside it is unknown: the
    convolution mirrors the cube at its faces (``scipy.ndimage``, ``mode="reflect"``,
    truncated at 4σ) instead of wrapping it, which alters voxels within ≈ 2σ of a face —
    in the survey sphere (r ≤ L/2 touches the faces) only near the six points where it
    touches them."""
    from scipy import ndimage

    s = potent_smoothing_extra(profile) * profile.box.grid / profile.box.size  # in voxels
    if s == 0:
        return dict(truth)
    out = {}
    for k, a in truth.items():
        if a is None:
            out[k] = None
            continue
        a = np.asarray(a)
        sm = np.empty(a.shape, np.float32)
        sig = (s, s, s) + ((0,) if a.ndim == 5 else ())
        for i in range(len(a)):  # mock by mock: no float64 copy of the whole stack
            sm[i] = ndimage.gaussian_filter(a[i].astype(np.float64), sig, mode="reflect", truncate=4.0)
        out[k] = sm
    return out


def _method_metrics(method, rec, truth, profile, cosmo):
    ev, L = profile.evaluation, profile.box.size
    kw = dict(size=L, zoa_b=profile.survey.zoa_b, shells=ev.distance_shells, r_max=profile.survey.r_max)
    out = {}
    for t in ("delta", "phi"):
        if truth.get(t) is not None:
            out[t] = metrics.field_metrics(rec[t], truth[t], **kw)
    if truth.get("velocity") is not None:
        out["velocity"] = metrics.velocity_metrics(rec["velocity"], truth["velocity"],
                                                   radii=ev.bulk_flow_radii, cosmo=cosmo,
                                                   parent_size=profile.simulation.parent_size,
                                                   smoothing=profile.box.smoothing, **kw)
    return out


def default_methods(profile=None) -> list[str]:
    """What ``zoa evaluate`` scores when no method is named: the networks the profile trains
    (:func:`zoa_lib.methods.networks.networks` — :func:`evaluate` then keeps the paper's set-up
    only where its predictions exist) and the classical methods; ``wiener_cal`` and
    ``wiener_joint`` only when ``profile`` has training shards. No profile: every network, no
    calibrated method."""
    cal = profile is not None and has_training_shards(profile)
    nets = networks.networks(profile) if profile is not None else tuple(networks.NETWORKS)
    return [m for m in METHODS if (m not in CALIBRATED or cal)
            and (m not in NETWORK_METHODS or NETWORK_METHODS[m][0] in nets)]


def _noise_record(profile, cal):
    """How the Wiener filters' noise was set (JSON)."""
    measured = cal is not None and cal.sigma_nl is not None
    return {"sigma_v": ("constant" if profile.evaluation.wiener_sigma_v > 0
                        else "survey error model at each voxel distance"),
            "sigma_v_constant": profile.evaluation.wiener_sigma_v or None,
            "survey_sigma_v_nl": profile.survey.sigma_v_nl,
            "sigma_nl": cal.sigma_nl if measured else None,
            "sigma_nl_galaxies": cal.n_galaxies if measured else 0,
            "sigma_nl_source": ("measured on training mocks: rms of v_r,true − v_target·r̂ at each "
                                "galaxy's true position, r ≤ r_max" if measured else
                                "not measured (no training shards with catalogs): survey error model only"),
            "zoa_voxels": "used (every occupied voxel is data)",
            "units": "km/s"}


def _method_result(m, rec, infos, g, truth, true_structures, profile, split, cosmo, cal, counts, geometry,
                   out_dir) -> dict:
    """The scored result of method ``m`` from its reconstructions ``rec`` of the gathered mocks
    ``g``; written to ``<out_dir>/<m>.json``."""
    from zoa_lib.analysis import structure_stats

    n = len(infos)
    res = {"method": m, "label": LABELS[m], "profile": profile.name, "split": split,
           "n_mocks": n, "samples": [int(s) for s in g["samples"]], "boxes": [int(b) for b in g["boxes"]],
           "source": g["source"], "provenance": provenance(profile)}
    if m in NETWORK_METHODS:
        res["network"] = {"name": NETWORK_METHODS[m][0],
                          "reads": networks.describe(profile, NETWORK_METHODS[m][0])}
    if m in CALIBRATED:
        res["calibration"] = {"edges": cal.edges, "bias": cal.bias, "n_mocks": cal.n_mocks,
                              "sigma_nl": cal.sigma_nl, "sigma_nl_galaxies": cal.n_galaxies,
                              "source": "training shards", "units": "Mpc/h, km/s"}
    if m == "wiener_joint":
        res["counts_model"] = counts.to_dict()
    if m in ("wiener",) + CALIBRATED:
        res["wiener"] = {"iterations": [x["iterations"] for x in infos],
                         "converged": [x["converged"] for x in infos],
                         "data_voxels": [x["n_data"] for x in infos], **_noise_record(profile, cal)}
    scored, structures = truth, true_structures
    if m == "potent":
        scored = potent_truth(truth, profile)
        structures = structure_stats.find_true_structures(scored["delta"], **geometry)
        res["truth_smoothing"] = {
            "total": max(profile.evaluation.potent_smoothing, profile.box.smoothing),
            "targets": profile.box.smoothing, "extra": potent_smoothing_extra(profile),
            "edges": "mirrored (scipy.ndimage mode='reflect')", "units": "Mpc/h",
            "note": "POTENT is scored against the truth smoothed as POTENT smooths"}
    res.update(_method_metrics(m, rec, scored, profile, cosmo))
    res["structures"] = structure_stats.structure_statistics(rec["delta"], scored["delta"], **geometry,
                                                             true_structures=structures)
    res = metrics.to_jsonable(res)
    write_json_atomic(out_dir / f"{m}.json", res)
    return res


#: The methods whose reconstruction solves a filter per mock (run in parallel processes).
SOLVED = ("wiener", "wiener_cal", "wiener_joint", "potent")
_OPERATORS: dict = {}


def _reconstruct_one(m, inputs, profile, cal, sigma_nl, counts, prediction=None, cosmo=None) -> dict:
    """:func:`reconstruct` of one mock with the process's operators (built once per process
    and profile: the parallel workers of :func:`evaluate` keep theirs between mocks)."""
    from zoa_lib.methods import wiener_joint

    cosmo = cosmo or from_profile(profile)
    op = None
    if m in ("wiener", "wiener_cal", "wiener_joint"):
        key = (m == "wiener_joint", repr(profile.box), repr(cosmo))
        op = _OPERATORS.get(key)
        if op is None:
            cls = wiener_joint.JointWienerFilter if m == "wiener_joint" else baselines.WienerFilter
            op = _OPERATORS[key] = cls(profile.box.grid, profile.box.size, cosmo, profile.box.smoothing)
    return reconstruct(m, inputs, profile, prediction, cosmo, op, cal, sigma_nl, counts=counts)


def evaluate(profile, split: str = "test", methods=None, progress: bool = True) -> dict:
    """Run every method on ``evaluation.n_eval`` mocks of ``split`` spread over its parent
    boxes, compute every metric and the structure statistic
    (:func:`zoa_lib.analysis.structure_stats.structure_statistics`), write
    ``<data>/evaluation/<method>.json``, ``comparison.json`` and ``comparison.md``; return
    the comparison dict."""
    from tqdm.auto import tqdm

    from zoa_lib.analysis import structure_stats

    default = methods is None
    methods = parse_methods(methods, METHODS, default_methods(profile) if methods is None else ())
    if default:  # the paper's set-up by default only where `zoa predict --network vnet_paper` made its files
        paper = networks.network_profile(profile, "vnet_paper")
        methods = [m for m in methods if NETWORK_METHODS.get(m, ("vnet",))[0] == "vnet"
                   or predictions_path(paper, TARGET_OF[m], split).exists()]
    ensure_writable(evaluation_dir(profile))  # a read-only folder: one line now, not after the work
    cosmo = from_profile(profile)
    wiener = [m for m in methods if m in ("wiener",) + CALIBRATED]
    cal = (calibration(profile) if any(m in CALIBRATED for m in methods)
           or (wiener and has_training_shards(profile)) else None)
    counts = counts_calibration(profile) if "wiener_joint" in methods else None
    sigma_nl = cal.sigma_nl if cal is not None and cal.sigma_nl is not None else 0.0
    g = _gather(profile, split, methods, profile.evaluation.n_eval)
    inputs, truth = g["inputs"], g["truth"]
    n = len(inputs)
    out_dir = evaluation_dir(profile)
    geometry = dict(size=profile.box.size, zoa_b=profile.survey.zoa_b, r_max=profile.survey.r_max)
    true_structures = structure_stats.find_true_structures(truth["delta"], **geometry)
    per_method = {}
    workers = max(1, min(int(profile.mocks.workers), n))
    pool = None
    queued, gathered = {}, set()  # method -> its mocks' futures in the worker pool; methods gathered
    solved = [m for m in methods if m in SOLVED]

    def queue_next():
        """Queue the solves of the next solved method not yet queued (at most one ahead), so
        the workers solve it while this process scores the method before it."""
        m = next((m for m in solved if m not in queued and m not in gathered), None)
        if m is not None and pool is not None:
            queued[m] = [pool.submit(_reconstruct_one, m, inputs[i], profile, cal, sigma_nl, counts)
                         for i in range(n)]

    try:
        if workers > 1 and solved:
            pool = process_pool(workers)
        queue_next()
        for m in methods:
            pred = g["predictions"].get(m)
            N = profile.box.grid
            rec = {"delta": np.empty((n, N, N, N), np.float32), "phi": np.empty((n, N, N, N), np.float32),
                   "velocity": np.empty((n, N, N, N, 3), np.float32)}
            if m in queued:
                results = (f.result() for f in queued.pop(m))
            else:
                results = (_reconstruct_one(m, inputs[i], profile, cal, sigma_nl, counts,
                                            None if pred is None else pred[i], cosmo) for i in range(n))
            infos = []
            for i, r in enumerate(tqdm(results, total=n, desc=LABELS[m], unit="mock", disable=not progress,
                                       leave=False)):
                for k in rec:
                    rec[k][i] = r[k]
                infos.append(r["info"])
            gathered.add(m)
            queue_next()
            per_method[m] = _method_result(m, rec, infos, g, truth, true_structures, profile, split, cosmo, cal,
                                           counts, geometry, out_dir)
            del rec
    finally:
        if pool is not None:
            pool.shutdown(cancel_futures=True)  # an error: the queued solves are not waited for
    comp = comparison(per_method, profile, split)
    write_json_atomic(out_dir / "comparison.json", comp)
    write_text_atomic(out_dir / "comparison.md", comparison_markdown(comp))
    return comp


# --------------------------------------------------------------------------- comparison table


def load_comparison(profile) -> dict:
    """The comparison written by the last ``zoa evaluate`` of this profile."""
    path = evaluation_dir(profile) / "comparison.json"
    if not path.exists():
        raise EvaluationError(f"{path}: not found; run `zoa evaluate --profile {profile.name}` first")
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise EvaluationError(f"{path}: not valid JSON ({e})") from None


def edge_by_truth_bins(per: dict, target: str = "delta") -> list[dict]:
    """Where the V-Net's edge lies: its MSE against the best classical method's in bins of
    the true field (:func:`zoa_lib.analysis.metrics.mse_by_truth_bins`, survey sphere, pooled over the
    evaluated mocks), e.g. for δ from the lower half of the voxels to the top 1 %, where the
    field is most nonlinear.

    per : {method: the JSON of :func:`load_method`} holding the V-Net of ``target``
        (``vnet_delta`` or ``vnet_phi``) and at least one baseline (:data:`BASELINES`).
        Only baselines scored against the *same* truth take part: their bin edges (quantiles
        of their truth) must equal the V-Net's — POTENT is scored against the truth smoothed
        to its own scale, whose top 1 % is far less extreme, so its MSE there is not comparable.
    Returns one row per bin: {"quantiles": (lo, hi), "truth_range": (lo, hi), "vnet_mse",
    "best_baseline", "baseline_mse", "ratio" (V-Net / best baseline; < 1: the V-Net is
    better there)}; [] when the V-Net or every baseline, or the bins (older files), are missing."""
    vnet = "vnet_" + target
    if vnet not in per or "truth_bins" not in per[vnet].get(target, {}):
        return []
    v = per[vnet][target]["truth_bins"]
    base = [m for m in BASELINES if m in per and "truth_bins" in per[m].get(target, {})
            and np.allclose(per[m][target]["truth_bins"]["edges"], v["edges"], rtol=1e-6, atol=1e-9)]
    if not base:
        return []
    rows = []
    for i in range(len(v["mse"])):
        best = min(base, key=lambda m: per[m][target]["truth_bins"]["mse"][i])
        b = per[best][target]["truth_bins"]["mse"][i]
        rows.append({"quantiles": (v["quantiles"][i], v["quantiles"][i + 1]),
                     "truth_range": (v["edges"][i], v["edges"][i + 1]), "vnet_mse": v["mse"][i],
                     "best_baseline": best, "baseline_mse": b, "ratio": v["mse"][i] / b if b > 0 else float("nan")})
    return rows


def load_method(profile, method: str) -> dict:
    """One method's metrics JSON written by ``zoa evaluate``."""
    path = evaluation_dir(profile) / f"{method}.json"
    if not path.exists():
        raise EvaluationError(f"{path}: not found; run `zoa evaluate --profile {profile.name}` first")
    return json.loads(path.read_text(encoding="utf-8"))
