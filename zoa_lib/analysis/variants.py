"""Why the φ network collapsed, measured: the same short training of network variants side
by side, scored on the validation mocks against the calibrated Wiener filter.

At the laptop profile the φ V-Net of the first book predicted a constant (per-mock
r(φ) = 0.04) while the calibrated Wiener filter reached 0.92. Each variant here changes one
thing of the training set-up, is trained from scratch for ``epochs`` epochs on the
profile's training mocks (held in memory, with the profile's augmentation and learning-rate
cycle, no checkpoints) and scored on the validation mocks:

=====================  =======================================================================
``paper``              the first book's set-up: φ target with each cube's constant, ReLU, the
                       two survey channels (N_gal, V_pec)
``zero_mean``          φ target with each cube's mean removed (:func:`zoa_lib.universe.fields.phi_to_target`)
``zero_mean_prelu``    … and PReLU instead of ReLU (Milletari et al. 2016)
``zero_mean_elu``      … and ELU
``wiener_corrector``   … ELU, and the calibrated Wiener filter's (φ, δ) as two more input
                       channels that the network corrects (:mod:`zoa_lib.methods.wiener_channels`)
=====================  =======================================================================

Scores (per mock, then mean and standard error over the validation mocks): Pearson r of φ
in the survey sphere and inside the ZOA, and the MSE of φ with each mock's mean removed, in
units of σ_φ² (:func:`zoa_lib.universe.fields.phi_target_scale`), beside the same scores of the
calibrated Wiener filter itself (the row ``calibrated Wiener filter``, which is also the
untrained ``wiener_corrector``). Validation mocks, not the test mocks: the test mocks are
kept for the verdict of :mod:`zoa_lib.analysis.evaluation`.

``zoa variants --profile P`` runs them and writes ``<data>/variants/phi.json``; chapter 03
shows that table when it exists.
"""
from __future__ import annotations

import dataclasses
import json
import logging
import math
import time
from pathlib import Path

import numpy as np

from zoa_lib.errors import ZoaError
from zoa_lib.io.atomic import ensure_writable, write_json_atomic
from zoa_lib.io.provenance import provenance
from zoa_lib.methods.training import fitting, model_files, pipeline, transforms

logger = logging.getLogger(__name__)

#: name -> (description, profile overrides)
VARIANTS = {
    "paper": ("φ with its cube constant, ReLU, 2 channels",
              {"training.phi_zero_mean": False, "model.activation": "relu", "training.wiener_channels": False}),
    "zero_mean": ("φ mean removed per cube, ReLU",
                  {"training.phi_zero_mean": True, "model.activation": "relu", "training.wiener_channels": False}),
    "zero_mean_prelu": ("φ mean removed, PReLU",
                        {"training.phi_zero_mean": True, "model.activation": "prelu",
                         "training.wiener_channels": False}),
    "zero_mean_elu": ("φ mean removed, ELU",
                      {"training.phi_zero_mean": True, "model.activation": "elu", "training.wiener_channels": False}),
    "wiener_corrector": ("φ mean removed, ELU, corrects the calibrated Wiener filter",
                         {"training.phi_zero_mean": True, "model.activation": "elu", "training.wiener_channels": True}),
}
BASELINE = "calibrated Wiener filter"


class VariantsError(ZoaError, ValueError):
    """An unknown variant or missing mocks."""


def variants_path(profile) -> Path:
    """``<data>/variants/phi.json``."""
    return profile.data_path / "variants" / "phi.json"


def _scores(pred, truth, regions) -> dict:
    """Per-mock r and mean-removed MSE (in the arrays' units) in each region, mean ± s.e.
    A mock whose prediction is constant has no r (``n_constant`` counts them; r is then the
    mean over the others, or None)."""
    from zoa_lib.analysis.metrics import pearson_r

    out = {}
    for name, m in regions.items():
        p, t = pred[:, m], truth[:, m]
        r = np.array([pearson_r(a, b) if np.ptp(a) > 0 else np.nan for a, b in zip(p, t)])
        ok = r[np.isfinite(r)]
        dm = (p - p.mean(1, keepdims=True)) - (t - t.mean(1, keepdims=True))
        mse = np.mean(dm ** 2, axis=1)
        n = len(mse)
        out[name] = {"r": float(ok.mean()) if len(ok) else None,
                     "r_err": float(ok.std(ddof=1) / np.sqrt(len(ok))) if len(ok) > 1 else None,
                     "n_constant": int(n - len(ok)),
                     "mse": float(mse.mean()), "mse_err": float(mse.std(ddof=1) / np.sqrt(n)) if n > 1 else None}
    return out


def _data(profile, transforms, split):
    from zoa_lib.methods import wiener_channels

    shards = pipeline.split_shards(profile, split)
    chans = wiener_channels.split_paths(profile, shards.paths) if transforms.wiener_channels else None
    return shards, chans


def first_shards(shards, n_mocks: int | None):
    """The first shards of a split that hold exactly ``n_mocks`` mocks (None: all of them);
    :class:`VariantsError` when ``n_mocks`` does not end on a shard boundary."""
    from zoa_lib.methods.training.pipeline import ShardSet

    if n_mocks is None or n_mocks == shards.n:
        return shards
    ends = np.cumsum(shards.counts)
    k = int(np.searchsorted(ends, n_mocks)) + 1
    if n_mocks < 1 or k > len(ends) or ends[k - 1] != n_mocks:
        raise VariantsError(f"n_mocks: {n_mocks} is not a whole number of the training split's shards "
                            f"(cumulative sizes {', '.join(str(int(e)) for e in ends)})")
    return ShardSet(shards.paths[:k], shards.counts[:k])


def _poisson_delta(phi_target, profile, scale: float) -> np.ndarray:
    """δ = ∇²φ / (3/2 Ωm H0²) of φ given in target units (φ / ``scale``, mean removed; the
    constant does not matter to ∇²), per mock (n, N, N, N)."""
    from zoa_lib.universe import velocity as vel
    from zoa_lib.universe.cosmology import from_profile

    cosmo = from_profile(profile)
    return np.stack([vel.density_from_potential(np.asarray(p, float) * scale, profile.box.size, cosmo)
                     for p in phi_target])


def network_variants(profile) -> dict[str, str]:
    """variant → network, for the variants whose set-up is one of the networks ``profile``
    trains (:func:`zoa_lib.methods.networks.networks`): those :func:`run_variant` reads from the
    networks' training instead of training them."""
    from zoa_lib.methods.networks import network_profile, networks

    out = {}
    for name, (_, over) in VARIANTS.items():
        for net in networks(profile):
            p = network_profile(profile, net)
            if (p.model.activation == over["model.activation"]
                    and p.training.phi_zero_mean == over["training.phi_zero_mean"]
                    and p.training.wiener_channels == over["training.wiener_channels"]):
                out[name] = net
                break
    return out


def network_snapshot(profile, epochs: int) -> tuple[str, Path] | None:
    """(network, file) of a trained network of ``profile``'s whose set-up is ``profile``'s
    (a variant's) and whose training kept a copy after ``epochs`` epochs
    (:func:`zoa_lib.methods.training.model_files.matching_snapshot`), or None. The networks train
    on all the training mocks, with their own seeds: the copy is that set-up trained for
    ``epochs`` epochs from scratch, as :func:`run_variant` would train it."""
    from zoa_lib.methods.networks import NETWORKS
    from zoa_lib.methods.training.model_files import matching_snapshot

    for net in NETWORKS:
        path = matching_snapshot(dataclasses.replace(profile, network=net), "phi", epochs)
        if path is not None:
            return net, path
    return None


def run_variant(profile, name: str, epochs: int, log=None, n_mocks: int | None = None) -> dict:
    """Train variant ``name`` for ``epochs`` epochs from scratch and score it (module docstring).

    A variant whose set-up is one of the profile's trained networks (chapter 03 trains them
    first: ``wiener_corrector`` is the ``vnet`` φ network, ``zero_mean_elu`` the paper's set-up
    ``vnet_paper`` at ``laptop``) is not trained again: the copy that network's training kept
    after ``epochs`` epochs is scored (:func:`network_snapshot`; ``source`` says which, and
    ``train_seconds`` and ``loss`` are those of its first ``epochs`` epochs).

    ``n_mocks``: train on only the first ``n_mocks`` training mocks (whole shards; default
    all). Besides r(φ), the scores include r(δ) of the density that the predicted φ implies
    by Poisson's equation (``scores_delta``), against the true δ of the validation mocks.
    ``log``: called with the one-line result instead of this module's logger."""
    import keras

    from zoa_lib.analysis.evaluation import load_shard_mocks
    from zoa_lib.analysis.metrics import regions as make_regions
    from zoa_lib.methods import wiener_channels

    if name not in VARIANTS:
        raise VariantsError(f"unknown variant {name!r} (known: {', '.join(VARIANTS)})")
    desc, over = VARIANTS[name]
    prof = dataclasses.replace(
            profile,
            model=dataclasses.replace(profile.model, activation=over["model.activation"]),
            training=dataclasses.replace(profile.training, phi_zero_mean=over["training.phi_zero_mean"],
                                         wiener_channels=over["training.wiener_channels"], epochs=int(epochs)))
    cal = wiener_channels.profile_calibration(prof) if prof.training.wiener_channels else None
    tfm = transforms.Transforms.from_profile(prof, "phi", cal)
    tr = prof.training
    full_set, train_ch = _data(prof, tfm, "train")
    train_set = first_shards(full_set, n_mocks)
    train_ch = None if train_ch is None else train_ch[:len(train_set.paths)]
    val_set, val_ch = _data(prof, tfm, "val")
    B = tr.batch_size
    snapshot = network_snapshot(prof, epochs) if train_set.n == full_set.n else None
    if snapshot is not None:  # this set-up is a trained network's: its copy after `epochs` epochs
        net, path = snapshot
        model, tfm = model_files.load_model_file(path)
        hist = path.parent / "history.csv"
        rows = model_files.read_history(hist).iloc[:epochs] if hist.exists() else None
        loss = [] if rows is None else [float(v) for v in rows["loss"]]
        seconds = float(rows["seconds"].fillna(0).sum()) if rows is not None and "seconds" in rows else 0.0
        source = f"the {net} φ network after {epochs} epochs (its training's copy, {path.name})"
    else:
        steps = max(1, train_set.n // B)
        keras.utils.set_random_seed(fitting.training_seed(prof, "phi"))
        model = fitting.build_and_compile(prof, steps, name=f"vnet_phi_{name}", transforms=tfm)
        ds = pipeline.make_dataset(train_set, "phi", tfm, B, shuffle=True, augment=tr.augment, seed=prof.seed,
                                   epochs=tr.epochs, steps_per_epoch=steps, reflections=tr.augment_reflections,
                                   channel_paths=train_ch, in_memory=True)
        t0 = time.perf_counter()
        hist = model.fit(ds, epochs=tr.epochs, steps_per_epoch=steps, shuffle=False, verbose=0)
        seconds = time.perf_counter() - t0
        loss, source = [float(v) for v in hist.history["loss"]], "trained here"
    reader = pipeline.ShardReader(val_set, "phi", tfm, val_ch)
    mem = pipeline.MemoryMocks(reader)
    pred = np.asarray(model.predict(mem.x, batch_size=B, verbose=0))[..., 0]
    truth = mem.y[..., 0]
    regs = make_regions(prof.box.grid, prof.box.size, prof.survey.zoa_b, prof.survey.r_max)
    regs = {"survey": regs["survey"], "zoa": regs["zoa"]}
    true_delta = load_shard_mocks(prof, "val")["delta"]  # the validation split, in shard order
    out = {"variant": name, "description": desc, "overrides": over, "epochs": int(epochs),
           "n_mocks": int(train_set.n), "parameters": int(model.count_params()), "train_seconds": round(seconds, 1),
           "source": source, "loss": loss, "scores": _scores(pred, truth, regs),
           "val_mse": float(np.mean((pred - truth) ** 2)),
           "scores_delta": _scores(_poisson_delta(pred, prof, tfm.phi_scale), true_delta, regs),
           "pred_std": float(pred.std()), "truth_std": float(truth.std())}
    if tfm.wiener_channels:  # the untrained corrector: the filter itself, in the same units
        wf = mem.x[..., tfm.residual_channel]
        out["baseline_scores"] = _scores(wf, truth, regs)
        out["baseline_val_mse"] = float(np.mean((wf - truth) ** 2))
        out["baseline_scores_delta"] = _scores(_poisson_delta(wf, prof, tfm.phi_scale), true_delta, regs)
    keras.backend.clear_session()
    r = {k: ("constant" if v["r"] is None else f"{v['r']:.3f}") for k, v in out["scores"].items()}
    (log or logger.info)(f"{name}: r(φ) survey {r['survey']}, ZOA {r['zoa']} ({seconds:.0f} s; {source})")
    return out


def run_variants(profile, names=None, epochs: int = 6, log=None) -> dict:
    """Run :func:`run_variant` for each of ``names`` (default all) and write
    :func:`variants_path` atomically; returns the written dict. ``log``: passed on, to be called
    with the progress lines instead of the modules' loggers (e.g. ``lambda *a: None``)."""
    from zoa_lib.methods import wiener_channels

    names = list(names or VARIANTS)
    bad = [n for n in names if n not in VARIANTS]
    if bad:
        raise VariantsError(f"unknown variant(s) {', '.join(bad)} (known: {', '.join(VARIANTS)})")
    ensure_writable(variants_path(profile).parent)
    wiener_channels.ensure(profile, splits=("train", "val"), log=log)
    rows = [run_variant(profile, n, epochs, log=log) for n in names]
    base = next((r["baseline_scores"] for r in rows if "baseline_scores" in r), None)
    out = {"profile": profile.name, "epochs": int(epochs), "split": "val", "units": "mse in sigma_phi^2",
           "variants": rows, "baseline": {"name": BASELINE, "scores": base},
           "provenance": provenance(profile)}
    write_json_atomic(variants_path(profile), out)
    return out


def load_variants(profile) -> dict | None:
    """The table written by :func:`run_variants`, or None when it was not run."""
    path = variants_path(profile)
    if not path.exists():
        return None
    return json.loads(path.read_text(encoding="utf-8"))


def variants_table(result: dict) -> list[dict]:
    """Rows for display: one per variant and the calibrated Wiener filter, with r ± s.e. and
    the mean-removed MSE relative to the filter's (survey sphere and ZOA)."""
    def fmt(s):
        if s.get("r") is None:
            return "— (constant prediction)"
        text = f"{s['r']:.3f} ± {s['r_err']:.3f}" if s.get("r_err") is not None else f"{s['r']:.3f}"
        return text + (f" ({s['n_constant']} mocks constant)" if s.get("n_constant") else "")

    base = (result.get("baseline") or {}).get("scores")
    rows = []
    for v in result["variants"] + ([{"variant": BASELINE, "description": "the linear optimum (no training)",
                                     "scores": base}] if base else []):
        row = {"variant": v["variant"], "what changes": v["description"]}
        for reg, label in (("survey", "survey sphere"), ("zoa", "inside the ZOA")):
            s = v["scores"][reg]
            row[f"r(φ), {label}"] = fmt(s)
            row[f"MSE / WF MSE, {label}"] = (f"{s['mse'] / base[reg]['mse']:.2f}" if base else "—")
        rows.append(row)
    return rows


def summary_text(result: dict) -> str:
    """One sentence on the measured variants (survey sphere) for the book's prose."""
    def r(name):
        v = next((v for v in result["variants"] if v["variant"] == name), None)
        if v is None:
            return "not run"
        s = v["scores"]["survey"]
        return "a constant (no r)" if s["r"] is None else f"r(φ) = {s['r']:.2f}"

    base = (result.get("baseline") or {}).get("scores")
    act = max(("zero_mean_elu", "zero_mean_prelu"),
              key=lambda n: next((v["scores"]["survey"]["r"] or -1 for v in result["variants"] if v["variant"] == n), -1))
    text = (f"after {result['epochs']} epochs each, the first book's set-up predicted {r('paper')}; removing "
            f"φ's constant gave {r('zero_mean')}; ELU or PReLU instead of ReLU {r(act)}; the network that "
            f"corrects the calibrated Wiener filter {r('wiener_corrector')}")
    if base:
        text += f", against r(φ) = {base['survey']['r']:.2f} for the filter alone"
    return text + " (per mock, survey sphere, validation mocks)"


# --------------------------------------------------------------------------- training mocks at fixed time
#: The shares of the training split that :func:`run_mock_study` trains on.
MOCK_FRACTIONS = (0.25, 0.5, 1.0)
#: The set-up the study trains: the book's φ network (:data:`VARIANTS`).
STUDY_VARIANT = "wiener_corrector"


def mock_study_path(profile) -> Path:
    """``<data>/variants/mocks.json``."""
    return profile.data_path / "variants" / "mocks.json"


def mock_study_plan(profile, epochs: int, fractions=MOCK_FRACTIONS, mock_seconds: float = 0.0,
                    epoch_seconds: float = 1.0, budget_mocks: int | None = None) -> list[tuple[int, int]]:
    """(training mocks, epochs) of each run of :func:`run_mock_study`: the first whole shards
    holding each fraction of the training split, each trained for as many epochs E(n) as keep
    the cost n (``mock_seconds`` + E ``epoch_seconds``) at that of ``budget_mocks`` (default:
    the whole training split) trained for ``epochs``: n_b (``mock_seconds`` + ``epochs``
    ``epoch_seconds``).

    With ``mock_seconds`` = 0 (default) that is a fixed training time (n × E fixed: an epoch's
    time is proportional to its mocks). With ``mock_seconds`` the book seconds that making one
    training mock costs (:func:`zoa_lib.book.estimate.seconds_per_training_mock`) and
    ``epoch_seconds`` those of fitting it once in every network
    (:func:`~zoa_lib.book.estimate.seconds_per_mock_epoch`), it is a fixed book time: more mocks
    leave fewer epochs."""

    if mock_seconds < 0 or epoch_seconds <= 0:
        raise VariantsError(f"mock_seconds must be >= 0 and epoch_seconds > 0, got {mock_seconds}, {epoch_seconds}")
    shards = pipeline.split_shards(profile, "train")
    ends = np.cumsum(shards.counts)
    n_b = shards.n if budget_mocks is None else int(budget_mocks)
    if n_b < 1:
        raise VariantsError(f"budget_mocks: must be >= 1, got {budget_mocks}")
    budget = n_b * (mock_seconds + epochs * epoch_seconds)
    plan = []
    for f in fractions:
        if not 0 < f <= 1:
            raise VariantsError(f"fractions: each must be in (0, 1], got {f}")
        n = int(ends[max(0, int(np.searchsorted(ends, f * shards.n - 1e-9)))])
        e = max(1, int(round((budget / n - mock_seconds) / epoch_seconds)))
        if (n, e) not in plan:
            plan.append((n, e))
    return plan


def run_mock_study(profile, epochs: int, fractions=MOCK_FRACTIONS, reuse: dict | None = None, log=None,
                   mock_seconds: float = 0.0, epoch_seconds: float = 1.0, budget_mocks: int | None = None) -> dict:
    """How many training mocks, at a fixed training time: the book's φ network
    (:data:`STUDY_VARIANT`) trained from scratch on the first share of the training mocks for
    each of ``fractions``, the epochs scaled so that every run costs the same training time
    (default) or, with ``mock_seconds`` and ``epoch_seconds``, the same book time, as
    ``budget_mocks`` mocks (default: all) trained for ``epochs`` (:func:`mock_study_plan`), scored on the validation mocks against the calibrated Wiener
    filter: the validation MSE of φ (target units), r(φ) and r(δ) of the δ its φ implies by
    Poisson's equation, in the survey sphere and inside the ZOA. ``reuse``: a row of
    :func:`run_variants` for :data:`STUDY_VARIANT` with the same epochs and mocks (the full
    split's run), used instead of training it again. ``log``: as in :func:`run_variants`.
    Writes :func:`mock_study_path`."""
    from zoa_lib.methods import wiener_channels

    ensure_writable(mock_study_path(profile).parent)
    wiener_channels.ensure(profile, splits=("train", "val"), log=log)
    plan = mock_study_plan(profile, epochs, fractions, mock_seconds, epoch_seconds, budget_mocks)
    rows = []
    for n, e in plan:
        if reuse is not None and reuse.get("variant") == STUDY_VARIANT and reuse.get("epochs") == e \
                and reuse.get("n_mocks") == n and "scores_delta" in reuse:
            row = dict(reuse)
        else:
            row = run_variant(profile, STUDY_VARIANT, e, log=log, n_mocks=n)
        row["boxes"] = int(math.ceil(n / profile.simulation.observers_per_box))
        rows.append(row)
    base = next(r for r in rows if "baseline_scores" in r)
    n_b = int(max(n for n, _ in plan) if budget_mocks is None else budget_mocks)
    out = {"profile": profile.name, "variant": STUDY_VARIANT, "split": "val",
           "fixed": "book time" if mock_seconds > 0 else "training time",
           "mocks_times_epochs": int(epochs * n_b),
           "budget": {"epochs": int(epochs), "n_train": n_b, "mock_seconds": float(mock_seconds),
                      "epoch_seconds": float(epoch_seconds),
                      "book_seconds": round(n_b * (mock_seconds + epochs * epoch_seconds), 1)},
           "units": "val_mse in the network's target units (phi / sigma_phi, cube mean removed)",
           "runs": rows, "baseline": {"name": BASELINE, "scores": base["baseline_scores"],
                                      "scores_delta": base["baseline_scores_delta"],
                                      "val_mse": base["baseline_val_mse"]},
           "provenance": provenance(profile)}
    write_json_atomic(mock_study_path(profile), out)
    return out


def load_mock_study(profile) -> dict | None:
    """The table written by :func:`run_mock_study`, or None when it was not run."""
    path = mock_study_path(profile)
    return json.loads(path.read_text(encoding="utf-8")) if path.exists() else None


def _r(s) -> str:
    if s.get("r") is None:
        return "—"
    return f"{s['r']:.3f} ± {s['r_err']:.3f}" if s.get("r_err") is not None else f"{s['r']:.3f}"


def mock_study_table(result: dict) -> list[dict]:
    """Rows for display: per run its mocks, parent boxes, epochs, training time, validation
    MSE of φ and r(φ), r(δ) (survey sphere, ZOA), then the calibrated Wiener filter."""
    rows = []
    base = result["baseline"]
    for v in result["runs"] + [{"variant": BASELINE, "scores": base["scores"],
                                "scores_delta": base["scores_delta"], "val_mse": base["val_mse"]}]:
        wf = v["variant"] == BASELINE
        rows.append({"training mocks": "— (no training)" if wf else v["n_mocks"],
                     "parent boxes": "—" if wf else v["boxes"], "epochs": "—" if wf else v["epochs"],
                     "training (s)": "—" if wf else f"{v['train_seconds']:.0f}",
                     "val MSE of φ": f"{v['val_mse']:.4f}",
                     "r(φ), survey": _r(v["scores"]["survey"]), "r(φ), ZOA": _r(v["scores"]["zoa"]),
                     "r(δ), survey": _r(v["scores_delta"]["survey"]), "r(δ), ZOA": _r(v["scores_delta"]["zoa"])})
    return rows


def mock_study_summary(result: dict) -> str:
    """One sentence on the study for the book's prose: the best run by validation MSE and the
    change of r(φ) from the fewest to the most mocks."""
    runs = result["runs"]
    best = min(runs, key=lambda v: v["val_mse"])
    lo, hi = runs[0], runs[-1]

    def r(v, key="scores"):
        s = v[key]["survey"]["r"]
        return "—" if s is None else f"{s:.3f}"

    trend = ("more mocks and fewer epochs did better" if hi["val_mse"] < lo["val_mse"]
             else "fewer mocks seen more often did better")
    if result.get("fixed") == "book time":
        fixed = f"a fixed book time ({result['budget']['book_seconds'] / 60:.0f} min of mocks and training)"
    else:
        fixed = f"a fixed {result['mocks_times_epochs']:,} mocks fitted"
    return (f"at {fixed}, {trend}: from {lo['n_mocks']} mocks × "
            f"{lo['epochs']} epochs to {hi['n_mocks']} × {hi['epochs']}, r(φ) went from {r(lo)} to {r(hi)} and "
            f"r(δ) from {r(lo, 'scores_delta')} to {r(hi, 'scores_delta')} (survey sphere); the lowest "
            f"validation MSE was with {best['n_mocks']} mocks")
