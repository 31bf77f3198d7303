"""``zoa evaluate``: the V-Net against the Wiener filter and POTENT on the same held-out mocks.

Methods (each gives δ, φ and the 3D velocity on the observer cube):

=============  =================================================================================
``vnet_delta``  V-Net density prediction δ; v from δ in linear theory and φ from Poisson, both on
                the zero-padded cube (:func:`zoa_lib.velocity.velocity_from_density`, ``pad=2``:
                mass outside the cube is unknown to it)
``vnet_phi``    V-Net potential prediction φ; v = −(2f/(3 H0 Ωm)) ∇φ and δ = ∇²φ / ((3/2) Ωm H0²)
                by finite differences (the cube is not periodic)
``wiener``      Wiener filter of the gridded radial velocities (:mod:`zoa_lib.baselines`)
``wiener_cal``  the same after subtracting the mean radial bias b(r) = ⟨V_pec − v_r,true⟩ measured
                on (up to :data:`N_CALIBRATION`) *training* mocks — the inhomogeneous Malmquist
                bias of galaxies gridded at observed distances, which the network learns from
                the same mocks (:func:`zoa_lib.baselines.radial_bias`); run by default when
                training shards exist
``potent``      POTENT (:mod:`zoa_lib.baselines`)
=============  =================================================================================

Inputs: ``<data>/predictions/{delta,phi}-<split>.h5`` written by ``zoa predict`` (datasets
``prediction`` (n, N, N, N) in physical units, ``truth``, ``inputs`` (n, N, N, N, 2),
``velocity_true`` (n, N, N, N, 3), ``samples`` (n,)), the first ``evaluation.n_eval``
mocks. With only baseline methods (``methods=["wiener", "potent"]``) the mock shards of the
split are read instead. Truth: δ and φ from the ``truth`` datasets (or shard targets), the
velocity from ``velocity_true`` (or ``targets/velocity``).

Outputs in ``<data>/evaluation/``: ``<method>.json`` (every metric of
:func:`zoa_lib.metrics.field_metrics` / :func:`zoa_lib.metrics.velocity_metrics` for δ, φ and v),
``comparison.json`` and ``comparison.md`` (the side-by-side table with a "best" column and
the verdict on the V-Net-below-Wiener-filter MSE goal), all written atomically.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from . import baselines, metrics
from . import velocity as vel
from .cosmology import from_profile
from .errors import ZoaError
from .io import ensure_writable, provenance, write_json_atomic, write_text_atomic

METHODS = ("vnet_delta", "vnet_phi", "wiener", "wiener_cal", "potent")
LABELS = {"vnet_delta": "V-Net δ", "vnet_phi": "V-Net φ", "wiener": "Wiener filter",
          "wiener_cal": "Wiener filter, Malmquist-calibrated", "potent": "POTENT"}
BASELINES = ("wiener", "wiener_cal", "potent")
#: Training mocks used to measure the radial bias of ``wiener_cal``.
N_CALIBRATION = 64
TARGET_OF = {"vnet_delta": "delta", "vnet_phi": "phi"}
REGIONS = ("cube", "survey", "zoa", "outside_zoa")
PREDICTION_DATASETS = ("prediction", "truth", "inputs", "velocity_true", "samples")


class EvaluationError(ZoaError, ValueError):
    """Missing or inconsistent predictions / shards for ``zoa evaluate``."""


# --------------------------------------------------------------------------- paths
def predictions_path(profile, target: str, split: str = "test") -> Path:
    """``<data_path>/predictions/<target>-<split>.h5`` (written by ``zoa predict``)."""
    return profile.data_path / "predictions" / f"{target}-{split}.h5"


def evaluation_dir(profile) -> Path:
    """``<data_path>/evaluation``."""
    return profile.data_path / "evaluation"


def _predict_hint(profile, target, split):
    return f"zoa predict --profile {profile.name} --target {target} --split {split}"


# --------------------------------------------------------------------------- reading
def load_predictions(profile, target: str, split: str = "test", n: int | None = None) -> dict:
    """The first ``n`` mocks of a predictions file as float32 arrays (dict of its datasets)."""
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
            k = m if n is None else min(n, m)
            want = {"prediction": (m, N, N, N), "truth": (m, N, N, N), "inputs": (m, N, N, N, 2),
                    "velocity_true": (m, N, N, N, 3), "samples": (m,)}
            for name, shp in want.items():
                if f[name].shape != shp:
                    raise EvaluationError(f"{path}: dataset {name!r} has shape {f[name].shape}, "
                                          f"expected {shp} (profile {profile.name!r}, grid {N})")
            out = {name: f[name][:k] for name in PREDICTION_DATASETS}
    except OSError as e:
        raise EvaluationError(f"{path}: not a readable HDF5 file ({str(e).splitlines()[0]})") from None
    if k == 0:
        raise EvaluationError(f"{path}: holds no mock")
    for name in ("prediction", "truth", "inputs", "velocity_true"):
        out[name] = np.asarray(out[name], dtype=np.float32)
        if not np.all(np.isfinite(out[name])):
            raise EvaluationError(f"{path}: dataset {name!r} holds NaN or infinite values")
    return out


def load_shard_mocks(profile, split: str = "test", n: int | None = None) -> dict:
    """The first ``n`` mocks of a split's shards: inputs, delta, phi, velocity, samples."""
    from . import data

    folder = data.mocks_dir(profile)
    paths = data.shard_paths(folder, split)
    if not paths:
        raise EvaluationError(f"{folder}: no {split!r} shards in the manifest; run "
                              f"`zoa mocks --profile {profile.name}` first")
    keep = {"inputs": [], "delta": [], "phi": [], "velocity": [], "samples": []}
    got = 0
    for p in paths:
        if n is not None and got >= n:
            break
        s = data.read_shard(p, load_catalog=False)
        if s.grid != profile.box.grid:
            raise EvaluationError(f"{p}: grid {s.grid}^3 but profile {profile.name!r} has {profile.box.grid}^3")
        k = s.n if n is None else min(s.n, n - got)
        keep["inputs"].append(s.inputs[:k])
        for t in ("delta", "phi", "velocity"):
            keep[t].append(s.targets[t][:k])
        keep["samples"].append(s.samples[:k])
        got += k
    return {k: np.concatenate(v) for k, v in keep.items()}


def _train_mocks(profile, n_max):
    """Yield (inputs, velocity) of up to ``n_max`` training mocks, one at a time."""
    import h5py

    from . import data

    got = 0
    for p in data.shard_paths(data.mocks_dir(profile), "train"):
        data.validate_shard(p, grid=profile.box.grid)
        with h5py.File(p, "r") as f:
            for i in range(f["inputs"].shape[0]):
                if got >= n_max:
                    return
                yield f["inputs"][i], f["targets/velocity"][i]
                got += 1


def has_training_shards(profile) -> bool:
    """Whether the manifest lists training shards that exist."""
    from . import data

    try:
        return any(p.exists() for p in data.shard_paths(data.mocks_dir(profile), "train"))
    except ZoaError:
        return False


def calibration(profile, n_max: int = N_CALIBRATION) -> "baselines.RadialBias":
    """The radial bias profile b(r) of the gridded V_pec, measured on training mocks."""
    if not has_training_shards(profile):
        raise EvaluationError(f"{profile.data_path / 'mocks'}: no training shards to calibrate "
                              f"'wiener_cal'; run `zoa mocks --profile {profile.name}` or leave the "
                              f"method out")
    return baselines.radial_bias(_train_mocks(profile, n_max), profile.box.size)


def _gather(profile, split, methods, n):
    """Inputs and truth for the requested methods: {inputs, samples, truth: {delta, phi,
    velocity}, predictions: {target: array}}."""
    preds = {}
    truth = {}
    src = None
    for m in methods:
        t = TARGET_OF.get(m)
        if t and t not in preds:
            d = load_predictions(profile, t, split, n)
            preds[t] = d
    if preds:
        first = next(iter(preds.values()))
        for t, d in preds.items():
            if not np.array_equal(d["samples"], first["samples"]):
                raise EvaluationError(
                    f"{predictions_path(profile, t, split)}: samples differ from those of "
                    f"{predictions_path(profile, next(iter(preds)), split)}; rerun `zoa predict` for both")
        inputs, samples = first["inputs"], first["samples"]
        truth["velocity"] = first["velocity_true"]
        for t, d in preds.items():
            truth[t] = d["truth"]
        # the other target's truth: its predictions file if present, else the shards
        for t in ("delta", "phi"):
            if t not in truth:
                p = predictions_path(profile, t, split)
                if p.exists():
                    truth[t] = load_predictions(profile, t, split, len(samples))["truth"]
        if "delta" not in truth or "phi" not in truth:
            try:
                sh = load_shard_mocks(profile, split, len(samples))
            except ZoaError:
                sh = None
            if sh is not None and np.array_equal(sh["samples"], samples):
                for t in ("delta", "phi"):
                    truth.setdefault(t, sh[t])
        src = "predictions"
    else:
        sh = load_shard_mocks(profile, split, n)
        inputs, samples = sh["inputs"], sh["samples"]
        truth = {"delta": sh["delta"], "phi": sh["phi"], "velocity": sh["velocity"]}
        src = "shards"
    return {"inputs": inputs, "samples": samples, "truth": truth,
            "predictions": {t: d["prediction"] for t, d in preds.items()}, "source": src}


# --------------------------------------------------------------------------- reconstructions
def reconstruct(method: str, inputs, profile, prediction=None, cosmo=None, operator=None,
                bias=None) -> dict:
    """δ, φ, v (float32) of one mock by ``method`` (module docstring), plus solver info;
    ``bias`` (:class:`zoa_lib.baselines.RadialBias`) is needed by ``wiener_cal``."""
    cosmo = cosmo or from_profile(profile)
    L = profile.box.size
    info = {}
    if method == "vnet_delta":
        d = np.asarray(prediction, dtype=float)
        v = vel.velocity_from_density(d, L, cosmo, pad=2)
        phi = vel.potential_from_density(d, L, cosmo, pad=2)
    elif method == "vnet_phi":
        phi = np.asarray(prediction, dtype=float)
        v = vel.velocity_from_potential(phi, L, cosmo, method="finite_difference")
        d = vel.density_from_potential(phi, L, cosmo, method="finite_difference")
    elif method in ("wiener", "wiener_cal"):
        if method == "wiener_cal":
            if bias is None:
                raise EvaluationError("wiener_cal: needs the radial bias profile (evaluation.calibration)")
            inputs = baselines.subtract_radial_bias(inputs, L, bias)
        r = baselines.wiener_filter(inputs, profile, operator)
        d, phi, v = r.delta, r.phi, r.velocity
        info = {"iterations": r.iterations, "converged": r.converged, "n_data": r.n_data}
    elif method == "potent":
        r = baselines.potent_from_profile(inputs, profile)
        d, phi, v = r.delta, r.phi, r.velocity
    else:
        raise EvaluationError(f"method: unknown method {method!r} (known: {', '.join(METHODS)})")
    f32 = lambda a: np.asarray(a, dtype=np.float32)  # noqa: E731
    return {"delta": f32(d), "phi": f32(phi), "velocity": f32(v), "info": info}


def _method_metrics(method, rec, truth, profile, cosmo):
    ev, L = profile.evaluation, profile.box.size
    kw = dict(size=L, zoa_b=profile.survey.zoa_b, shells=ev.distance_shells, r_max=profile.survey.r_max)
    out = {}
    for t in ("delta", "phi"):
        if truth.get(t) is not None:
            out[t] = metrics.field_metrics(rec[t], truth[t], **kw)
    if truth.get("velocity") is not None:
        out["velocity"] = metrics.velocity_metrics(rec["velocity"], truth["velocity"],
                                                   radii=ev.bulk_flow_radii, cosmo=cosmo, **kw)
    return out


def parse_methods(methods, profile=None) -> list[str]:
    """A method list from None (all; ``wiener_cal`` only when ``profile`` has training
    shards), a comma-separated string or a sequence."""
    if methods is None:
        cal = profile is not None and has_training_shards(profile)
        return [m for m in METHODS if m != "wiener_cal" or cal]
    if isinstance(methods, str):
        methods = [m.strip() for m in methods.split(",") if m.strip()]
    bad = [m for m in methods if m not in METHODS]
    if bad or not methods:
        raise EvaluationError(f"methods: unknown method {', '.join(map(repr, bad)) or '(none)'} "
                              f"(known: {', '.join(METHODS)})")
    return [m for m in METHODS if m in methods]


def evaluate(profile, split: str = "test", methods=None, progress: bool = True) -> dict:
    """Run every method on the first ``evaluation.n_eval`` mocks of ``split``, compute every
    metric, write ``<data>/evaluation/<method>.json``, ``comparison.json`` and
    ``comparison.md``; return the comparison dict."""
    from tqdm.auto import tqdm

    methods = parse_methods(methods, profile)
    ensure_writable(evaluation_dir(profile))  # a read-only folder: one line now, not after the work
    cosmo = from_profile(profile)
    bias = calibration(profile) if "wiener_cal" in methods else None
    g = _gather(profile, split, methods, profile.evaluation.n_eval)
    inputs, truth = g["inputs"], g["truth"]
    n = len(inputs)
    out_dir = evaluation_dir(profile)
    op = None
    per_method = {}
    for m in methods:
        if m in ("wiener", "wiener_cal") and op is None:
            op = baselines.WienerFilter(profile.box.grid, profile.box.size, cosmo, profile.box.smoothing)
        pred = g["predictions"].get(TARGET_OF.get(m))
        N = profile.box.grid
        rec = {"delta": np.empty((n, N, N, N), np.float32), "phi": np.empty((n, N, N, N), np.float32),
               "velocity": np.empty((n, N, N, N, 3), np.float32)}
        infos = []
        for i in tqdm(range(n), desc=LABELS[m], unit="mock", disable=not progress, leave=False):
            r = reconstruct(m, inputs[i], profile, None if pred is None else pred[i], cosmo, op, bias)
            for k in rec:
                rec[k][i] = r[k]
            infos.append(r["info"])
        res = {"method": m, "label": LABELS[m], "profile": profile.name, "split": split,
               "n_mocks": n, "samples": [int(s) for s in g["samples"]], "source": g["source"],
               "provenance": provenance(profile)}
        if m == "wiener_cal":
            res["calibration"] = {"edges": bias.edges, "bias": bias.bias, "n_mocks": bias.n_mocks,
                                  "source": "training shards", "units": "Mpc/h, km/s"}
        if m in ("wiener", "wiener_cal"):
            res["wiener"] = {"iterations": [x["iterations"] for x in infos],
                             "converged": [x["converged"] for x in infos],
                             "data_voxels": [x["n_data"] for x in infos],
                             "sigma_v": ("constant" if profile.evaluation.wiener_sigma_v > 0
                                         else "survey error model at each voxel distance")}
        res.update(_method_metrics(m, rec, truth, profile, cosmo))
        res = metrics.to_jsonable(res)
        write_json_atomic(out_dir / f"{m}.json", res)
        per_method[m] = res
        del rec
    comp = comparison(per_method, profile, split)
    write_json_atomic(out_dir / "comparison.json", comp)
    write_text_atomic(out_dir / "comparison.md", comparison_markdown(comp))
    return comp


# --------------------------------------------------------------------------- comparison table
def _get(d, *keys):
    for k in keys:
        if not isinstance(d, dict) or k not in d:
            return None
        d = d[k]
    return d


def _rows():
    """(key, field, description, path in a method's JSON, better) for the table."""
    rows = []
    for f, name in (("delta", "δ"), ("phi", "φ")):
        for reg in REGIONS:
            rows.append((f"r_{f}_{reg}", f, f"Pearson r({name}), {reg}", (f, "regions", reg, "pearson_r"), "higher"))
        for reg in ("survey", "zoa"):
            rows.append((f"r_mock_{f}_{reg}", f, f"Pearson r({name}) per mock, mean over mocks, {reg}",
                         (f, "regions", reg, "pearson_r_mock_mean"), "higher"))
        for reg in REGIONS:
            rows.append((f"mse_{f}_{reg}", f, f"MSE({name}), {reg}", (f, "regions", reg, "mse"), "lower"))
        rows.append((f"mse_demeaned_{f}_survey", f, f"MSE({name}) mean removed per mock, survey",
                     (f, "regions", "survey", "mse_demeaned"), "lower"))
        rows.append((f"slope_{f}_survey", f, f"slope {name}_pred vs {name}_true, survey",
                     (f, "regions", "survey", "slope"), "one"))
    for reg in REGIONS:
        rows.append((f"rms_v_{reg}", "velocity", f"3D velocity residual rms (km/s), {reg}",
                     ("velocity", "regions", reg, "residual_rms", "3d"), "lower"))
    for reg in REGIONS:
        rows.append((f"r_vr_{reg}", "velocity", f"Pearson r(v_r), {reg}",
                     ("velocity", "regions", reg, "radial", "pearson_r"), "higher"))
    for c in ("x", "y", "z"):
        rows.append((f"r_v{c}_survey", "velocity", f"Pearson r(v_SG{c.upper()}), survey",
                     ("velocity", "regions", "survey", c, "pearson_r"), "higher"))
    return rows


def _best(values: dict, better: str):
    ok = {m: v for m, v in values.items() if v is not None}
    if not ok:
        return None
    if better == "higher":
        return max(ok, key=ok.get)
    if better == "lower":
        return min(ok, key=ok.get)
    return min(ok, key=lambda m: abs(ok[m] - 1.0))


def comparison(per_method: dict, profile, split: str = "test") -> dict:
    """The side-by-side comparison of methods' metrics (a JSON-able dict)."""
    methods = list(per_method)
    rows = []
    for key, field, desc, path, better in _rows():
        values = {m: _get(per_method[m], *path) for m in methods}
        if all(v is None for v in values.values()):
            continue
        rows.append({"key": key, "field": field, "metric": desc, "better": better,
                     "values": values, "best": _best(values, better)})
    radii = None
    for m in methods:
        bf = _get(per_method[m], "velocity", "bulk_flow")
        if bf:
            radii = bf["radii"]
    if radii:
        for i, R in enumerate(radii):
            values = {m: (_get(per_method[m], "velocity", "bulk_flow", "error_mean") or [None] * len(radii))[i]
                      for m in methods}
            rows.append({"key": f"bulk_flow_error_{R:g}", "field": "velocity",
                         "metric": f"bulk-flow error ‖ΔB‖ (km/s), R = {R:g} Mpc/h", "better": "lower",
                         "values": values, "best": _best(values, "lower")})
    goal = []
    for base in ("wiener", "wiener_cal"):
        if base not in per_method:
            continue
        for f, m in (("phi", "vnet_phi"), ("delta", "vnet_delta")):
            if m not in per_method:
                continue
            for stat in ("mse", "mse_demeaned"):
                for reg in ("zoa", "outside_zoa", "survey"):
                    a = _get(per_method[m], f, "regions", reg, stat)
                    b = _get(per_method[base], f, "regions", reg, stat)
                    if a is None or b is None:
                        continue
                    goal.append({"field": f, "region": reg, "statistic": stat, "baseline": base,
                                 "vnet": a, "baseline_value": b, "vnet_better": bool(a < b)})
    # the goal: MSE of φ and δ below the (plain) Wiener filter's inside and outside the ZOA
    core = [g for g in goal if g["baseline"] == "wiener" and g["statistic"] == "mse"
            and g["region"] in ("zoa", "outside_zoa")]
    n_mocks = next(iter(per_method.values()))["n_mocks"] if per_method else 0
    return metrics.to_jsonable({
        "profile": profile.name, "split": split, "n_mocks": n_mocks, "methods": methods,
        "labels": {m: LABELS[m] for m in methods}, "rows": rows, "goal": goal,
        "goal_met": bool(core) and all(g["vnet_better"] for g in core),
        "goal_met_all": bool(goal) and all(g["vnet_better"] for g in goal),
        "zoa_b": profile.survey.zoa_b, "r_max": profile.survey.r_max,
        "provenance": provenance(profile),
    })


def _fmt(v):
    if v is None:
        return "—"
    a = abs(v)
    if a != 0 and (a >= 1e5 or a < 1e-3):
        return f"{v:.3e}"
    if a >= 100:
        return f"{v:.1f}"
    return f"{v:.3f}"


def comparison_markdown(comp: dict) -> str:
    """The comparison as a Markdown page: the table (with a "best" column) and the verdict."""
    methods = comp["methods"]
    labels = comp["labels"]
    notes = {"vnet_delta": "V-Net δ: v and φ from the predicted δ in linear theory (zero-padded cube).",
             "vnet_phi": "V-Net φ: v = −(2f/3H0Ωm)∇φ, δ = ∇²φ/(1.5 Ωm H0²) (finite differences).",
             "wiener": "Wiener filter: linear minimum-variance estimate from the gridded radial velocities "
                       "(ZOA and empty voxels left out).",
             "wiener_cal": "Malmquist-calibrated: the same filter after subtracting the mean radial-velocity "
                           "bias b(r) of the gridded data measured on training mocks.",
             "potent": "POTENT: smoothed radial velocities integrated along lines of sight."}
    lines = [f"# Reconstruction comparison — profile `{comp['profile']}`, split `{comp['split']}`", "",
             f"{comp['n_mocks']} held-out mocks. Regions: *cube* = every voxel; *survey* = r ≤ "
             f"{comp['r_max']:g} Mpc/h; *zoa* = survey voxels with |b| < {comp['zoa_b']:g}°; "
             f"*outside_zoa* = the other survey voxels. " + " ".join(notes[m] for m in methods)
             + " Pearson r pools every voxel of every mock (so a per-mock offset counts); 'per mock' "
             "averages each mock's r. Best: highest r, lowest error, slope closest to 1.", "",
             "| metric | " + " | ".join(labels[m] for m in methods) + " | best |",
             "|---|" + "---:|" * len(methods) + "---|"]
    for row in comp["rows"]:
        cells = [(f"**{_fmt(row['values'][m])}**" if m == row["best"] else _fmt(row["values"][m]))
                 for m in methods]
        metric = row["metric"].replace("|", "\\|")
        lines.append(f"| {metric} | " + " | ".join(cells) + f" | {labels.get(row['best'], '—')} |")
    lines.append("")
    if comp["goal"]:
        stat_name = {"mse": "MSE", "mse_demeaned": "MSE, mean removed per mock"}
        lines += ["## Goal: V-Net MSE below the Wiener filter's", "",
                  "The goal (issue 7): the V-Net's MSE of φ and δ below the Wiener filter's, inside and "
                  "outside the ZOA. Also shown: the MSE with each mock's mean removed (φ's constant is not "
                  "measurable from velocities) and the Malmquist-calibrated filter, when run.", "",
                  "| field | region | statistic | baseline | V-Net | baseline | V-Net better? |",
                  "|---|---|---|---|---:|---:|---|"]
        for g in comp["goal"]:
            verdict = "yes" if g["vnet_better"] else f"**NO: {labels[g['baseline']]} is better**"
            lines.append(f"| {g['field']} | {g['region']} | {stat_name[g['statistic']]} | {labels[g['baseline']]} | "
                         f"{_fmt(g['vnet'])} | {_fmt(g['baseline_value'])} | {verdict} |")
        lines.append("")
        lines.append("Goal met: the V-Net's MSE of φ and δ is below the Wiener filter's inside and outside the ZOA."
                     if comp["goal_met"] else
                     "Goal NOT met: the V-Net's MSE is not below the Wiener filter's inside and outside the ZOA "
                     "for both φ and δ (rows marked NO).")
        if comp["goal_met"] and not comp["goal_met_all"]:
            lines.append("")
            lines.append("But not in every comparison above (rows marked NO).")
        lines.append("")
    return "\n".join(lines)


def load_comparison(profile) -> dict:
    """The comparison written by the last ``zoa evaluate`` of this profile."""
    path = evaluation_dir(profile) / "comparison.json"
    if not path.exists():
        raise EvaluationError(f"{path}: not found; run `zoa evaluate --profile {profile.name}` first")
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise EvaluationError(f"{path}: not valid JSON ({e})") from None


def load_method(profile, method: str) -> dict:
    """One method's metrics JSON written by ``zoa evaluate``."""
    path = evaluation_dir(profile) / f"{method}.json"
    if not path.exists():
        raise EvaluationError(f"{path}: not found; run `zoa evaluate --profile {profile.name}` first")
    return json.loads(path.read_text(encoding="utf-8"))
