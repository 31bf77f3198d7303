"""Predictions in physical units: one array of survey inputs (:func:`predict_array`), or every
mock of a split into ``<data>/predictions/<target>-<split>.h5`` (:func:`predict`).
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np

from zoa_lib.io.atomic import atomic_path, ensure_writable
from zoa_lib.io.provenance import provenance
from zoa_lib.methods.training.model_files import load_model_file, model_path
from zoa_lib.methods.training.pipeline import ShardReader, split_shards
from zoa_lib.methods.training.transforms import UNITS, TrainingError, Transforms, check_target
from zoa_lib.survey import shards


def predictions_path(profile, target: str, split: str = "test") -> Path:
    """``<data_path>/predictions/<target>-<split>.h5`` (written by ``zoa predict``;
    ``predictions/<network>/…`` for the profile's other network, :mod:`zoa_lib.methods.networks`)."""
    from zoa_lib.methods.networks import files_dir

    return files_dir(profile, "predictions") / f"{target}-{split}.h5"


def predict_array(model, transforms: Transforms, inputs, batch_size: int = 4, *, profile=None,
                  channels=None, progress: bool = False) -> np.ndarray:
    """Predict in physical units (δ, or φ in (km/s)²) from raw inputs (N_gal, V_pec [km/s]).

    ``inputs``: (N, N, N, 2) → (N, N, N), or (n, N, N, N, 2) → (n, N, N, N), float32.
    A model with ``transforms.wiener_channels`` also needs the Wiener-filter channels
    (φ_WF, δ_WF) of those inputs: ``channels`` (same leading shape, 2 channels last, e.g.
    from :func:`zoa_lib.methods.wiener_channels.channels`), or ``profile``, to compute them here with
    the calibration saved in the model."""
    x = np.asarray(inputs)
    single = x.ndim == 4
    if single:
        x = x[None]
    if transforms.wiener_channels and x.ndim == 5 and x.shape[-1] == 2:
        if channels is None:
            if profile is None:
                raise TrainingError("this model corrects the Wiener filter: give predict_array the profile "
                                    "(or the channels of zoa_lib.methods.wiener_channels.channels)")
            from zoa_lib.methods.wiener_channels import channels as wf_channels

            channels = wf_channels(x, profile, transforms.wiener_calibration, progress=progress)
        channels = np.asarray(channels, np.float32).reshape(x.shape)
        x = np.concatenate([x, channels], axis=-1)
    want = tuple(model.input_shape[1:])
    if x.ndim != 5 or tuple(x.shape[1:]) != want:
        raise TrainingError(f"inputs have shape {np.shape(inputs)}, the model expects (n,) + {want}")
    out = np.empty(x.shape[:4], np.float32)
    for i in range(0, x.shape[0], batch_size):
        u = transforms.normalise_inputs(x[i:i + batch_size])
        y = np.asarray(model.predict_on_batch(u))[..., 0]
        out[i:i + batch_size] = transforms.decode_target(y)
    return out[0] if single else out

def _model_channel_files(profile, path, transforms: Transforms, split: str, shards, progress: bool) -> list[Path]:
    """The Wiener-filter channel files of ``shards`` made with the calibration saved in the model
    at ``path`` (the filter it was trained to correct), not the profile's current one: files made
    with another calibration are remade; where they cannot be (a read-only data folder),
    :func:`zoa_lib.methods.wiener_channels.split_paths` refuses, naming both calibrations."""
    from zoa_lib.io.atomic import OutputError
    from zoa_lib.methods import wiener_channels

    cal = transforms.wiener_calibration
    if not cal:
        raise wiener_channels.WienerChannelsError(
            f"{path}: the model corrects the Wiener filter but carries no calibration; retrain it with "
            f"`zoa train --profile {profile.name} --target {transforms.target}`")
    try:
        wiener_channels.ensure(profile, splits=(split,), progress=progress, calibration=cal)
    except OutputError:
        pass  # cannot remake them here: split_paths says whether the files on disk will do
    return wiener_channels.split_paths(
        profile, shards.paths, calibration=cal, user=f"the model {path}",
        remedy=f"`zoa predict --profile {profile.name} --target {transforms.target} --split {split}` where "
               f"{profile.data_path / 'wiener'} is writable (it computes them with the model's calibration), "
               f"or retrain the model (`zoa train --profile {profile.name} --target {transforms.target}`)")


def predict(profile, target: str, split: str = "test", which: str = "best", progress: bool = True,
            batch_size: int | None = None) -> Path:
    """Predict every mock of a split and write ``<data>/predictions/<target>-<split>.h5``
    atomically: ``prediction`` (n,N,N,N) float32 in physical units (δ, or φ in (km/s)²),
    ``truth`` (n,N,N,N) the shard's target, ``inputs`` (n,N,N,N,2) raw (N_gal, V_pec km/s),
    ``velocity_true`` (n,N,N,N,3) km/s, ``samples`` (n,); attrs: target, units, split, model
    path, transforms (JSON) and provenance. Reads the split's shards one mock at a time.
    A model that corrects the Wiener filter reads channels made with the calibration saved in
    it (remade if those on disk were made with another; refused if they cannot be)."""
    import h5py
    from tqdm.auto import tqdm

    check_target(target)
    if split not in ("train", "val", "test"):
        raise TrainingError(f"split must be train, val or test, got {split!r}")
    split_set = split_shards(profile, split)
    if split_set.n == 0:
        raise TrainingError(f"{shards.mocks_dir(profile)}: no {split!r} shards in the manifest; run "
                            f"`zoa mocks --profile {profile.name}` first")
    path = model_path(profile, target, which)
    model, transforms = load_model_file(path)
    if transforms.target != target:
        raise TrainingError(f"{path}: a {transforms.target} model, not {target}")
    N = profile.box.grid
    n = split_set.n
    b = int(batch_size or profile.training.batch_size)
    out = predictions_path(profile, target, split)
    ensure_writable(out.parent)
    channel_files = None
    if transforms.wiener_channels:
        channel_files = _model_channel_files(profile, path, transforms, split, split_set, progress)
    reader = ShardReader(split_set, target, transforms, channel_files)
    units = {"prediction": UNITS[target], "truth": UNITS[target],
             "inputs": shards.UNITS["inputs"], "velocity_true": "km/s", "samples": ""}
    try:
        with atomic_path(out) as tmp, h5py.File(tmp, "w") as h:
            kw = dict(dtype=np.float32, track_times=False)
            dsets = {
                "prediction": h.create_dataset("prediction", (n, N, N, N), chunks=(1, N, N, N), **kw),
                "truth": h.create_dataset("truth", (n, N, N, N), chunks=(1, N, N, N), **kw),
                "inputs": h.create_dataset("inputs", (n, N, N, N, 2), chunks=(1, N, N, N, 2), **kw),
                "velocity_true": h.create_dataset("velocity_true", (n, N, N, N, 3), chunks=(1, N, N, N, 3), **kw),
            }
            samples = np.zeros(n, np.int64)
            bar = tqdm(total=n, desc=f"predict {target}/{split}", disable=not progress or not sys.stderr.isatty())
            i = 0
            for s, count in enumerate(split_set.counts):
                f = reader._file(s)
                for r0 in range(0, count, b):
                    r1 = min(count, r0 + b)
                    x = f["inputs"][r0:r1]
                    wf = (np.stack([reader.read(s, row)[0][..., 2:] for row in range(r0, r1)])
                          if channel_files else None)
                    dsets["prediction"][i:i + r1 - r0] = predict_array(model, transforms, x, b, channels=wf)
                    dsets["truth"][i:i + r1 - r0] = f["targets/" + target][r0:r1]
                    dsets["inputs"][i:i + r1 - r0] = x
                    dsets["velocity_true"][i:i + r1 - r0] = f["targets/velocity"][r0:r1]
                    samples[i:i + r1 - r0] = f["samples"][r0:r1] if "samples" in f else np.arange(i, i + r1 - r0)
                    i += r1 - r0
                    bar.update(r1 - r0)
            bar.close()
            h.create_dataset("samples", data=samples, track_times=False)
            for name, u in units.items():
                h[name].attrs["units"] = u
            h.attrs.update(provenance(profile, target=target, units=UNITS[target], split=split,
                                      model=str(path), transforms=json.dumps(transforms.to_dict()),
                                      shards=json.dumps([p.name for p in split_set.paths])))
    finally:
        reader.close()
    return out
