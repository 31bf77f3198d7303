"""Why the φ network collapsed, measured: the same short training of network variants side
by side, scored on the validation mocks against the calibrated Wiener filter (issue 13).

At the laptop profile the φ V-Net of the first book predicted a constant (per-mock
r(φ) = 0.04) while the calibrated Wiener filter reached 0.92. Each variant here changes one
thing of the training set-up, is trained from scratch for ``epochs`` epochs on the
profile's training mocks (held in memory, with the profile's augmentation and learning-rate
cycle, no checkpoints) and scored on the validation mocks:

=====================  =======================================================================
``paper``              the first book's set-up: φ target with each cube's constant, ReLU, the
                       two survey channels (N_gal, V_pec)
``zero_mean``          φ target with each cube's mean removed (:func:`zoa_lib.fields.phi_to_target`)
``zero_mean_prelu``    … and PReLU instead of ReLU (Milletari et al. 2016)
``zero_mean_elu``      … and ELU
``wiener_corrector``   … ELU, and the calibrated Wiener filter's (φ, δ) as two more input
                       channels that the network corrects (:mod:`zoa_lib.wiener_channels`)
=====================  =======================================================================

Scores (per mock, then mean and standard error over the validation mocks): Pearson r of φ
in the survey sphere and inside the ZOA, and the MSE of φ with each mock's mean removed, in
units of σ_φ² (:func:`zoa_lib.fields.phi_target_scale`), beside the same scores of the
calibrated Wiener filter itself (the row ``calibrated Wiener filter``, which is also the
untrained ``wiener_corrector``). Validation mocks, not the test mocks: the test mocks are
kept for the verdict of :mod:`zoa_lib.evaluation`.

``zoa variants --profile P`` runs them and writes ``<data>/variants/phi.json``; chapter 03
shows that table when it exists.
"""
from __future__ import annotations

import dataclasses
import json
import time
from pathlib import Path

import numpy as np

from .errors import ZoaError
from .io import ensure_writable, provenance, write_json_atomic

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
    from .metrics import pearson_r

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
    from . import training, wiener_channels

    shards = training.split_shards(profile, split)
    chans = wiener_channels.split_paths(profile, shards.paths) if transforms.wiener_channels else None
    return shards, chans


def run_variant(profile, name: str, epochs: int, log=print) -> dict:
    """Train variant ``name`` for ``epochs`` epochs from scratch and score it (module docstring)."""
    import keras

    from . import training, wiener_channels
    from .metrics import regions as make_regions

    if name not in VARIANTS:
        raise VariantsError(f"unknown variant {name!r} (known: {', '.join(VARIANTS)})")
    desc, over = VARIANTS[name]
    prof = dataclasses.replace(
            profile,
            model=dataclasses.replace(profile.model, activation=over["model.activation"]),
            training=dataclasses.replace(profile.training, phi_zero_mean=over["training.phi_zero_mean"],
                                         wiener_channels=over["training.wiener_channels"], epochs=int(epochs)))
    cal = wiener_channels.profile_calibration(prof) if prof.training.wiener_channels else None
    tfm = training.Transforms.from_profile(prof, "phi", cal)
    tr = prof.training
    train_set, train_ch = _data(prof, tfm, "train")
    val_set, val_ch = _data(prof, tfm, "val")
    B = tr.batch_size
    steps = max(1, train_set.n // B)
    keras.utils.set_random_seed(training.training_seed(prof, "phi"))
    model = training.build_and_compile(prof, steps, name=f"vnet_phi_{name}", transforms=tfm)
    ds = training.make_dataset(train_set, "phi", tfm, B, shuffle=True, augment=tr.augment, seed=prof.seed,
                               epochs=tr.epochs, steps_per_epoch=steps, reflections=tr.augment_reflections,
                               channel_paths=train_ch, in_memory=True)
    t0 = time.perf_counter()
    hist = model.fit(ds, epochs=tr.epochs, steps_per_epoch=steps, shuffle=False, verbose=0)
    seconds = time.perf_counter() - t0
    reader = training.ShardReader(val_set, "phi", tfm, val_ch)
    mem = training.MemoryMocks(reader)
    pred = np.asarray(model.predict(mem.x, batch_size=B, verbose=0))[..., 0]
    truth = mem.y[..., 0]
    regs = make_regions(prof.box.grid, prof.box.size, prof.survey.zoa_b, prof.survey.r_max)
    regs = {"survey": regs["survey"], "zoa": regs["zoa"]}
    out = {"variant": name, "description": desc, "overrides": over, "epochs": int(epochs),
           "parameters": int(model.count_params()), "train_seconds": round(seconds, 1),
           "loss": [float(v) for v in hist.history["loss"]], "scores": _scores(pred, truth, regs),
           "pred_std": float(pred.std()), "truth_std": float(truth.std())}
    if tfm.wiener_channels:  # the untrained corrector: the filter itself, in the same units
        out["baseline_scores"] = _scores(mem.x[..., tfm.residual_channel], truth, regs)
    keras.backend.clear_session()
    r = {k: ("constant" if v["r"] is None else f"{v['r']:.3f}") for k, v in out["scores"].items()}
    log(f"{name}: r(φ) survey {r['survey']}, ZOA {r['zoa']} ({seconds:.0f} s)")
    return out


def run_variants(profile, names=None, epochs: int = 6, log=print) -> dict:
    """Run :func:`run_variant` for each of ``names`` (default all) and write
    :func:`variants_path` atomically; returns the written dict."""
    from . import wiener_channels

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
