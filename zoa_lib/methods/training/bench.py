"""The training benchmark of ``zoa bench train``: speed and memory of an epoch at a
profile's architecture and grid, on synthetic shards of random numbers.
"""
from __future__ import annotations

import dataclasses
import time
from pathlib import Path

import numpy as np

from zoa_lib.io.machine import available_bytes, gpu_total_bytes
from zoa_lib.methods.training.fitting import build_and_compile, gpu_available
from zoa_lib.methods.training.pipeline import in_memory_bytes, make_dataset, scan_shards, wiener_dataset
from zoa_lib.methods.training.transforms import Transforms
from zoa_lib.survey import shards
from zoa_lib.universe.rng import generator


def _synthetic_shards(folder: Path, grid: int, n_shards: int, per_shard: int, seed: int = 0,
                      wiener: bool = False) -> tuple[list[Path], list[Path] | None]:
    """Shards of random numbers at ``grid`` (for the pipeline benchmark only: no physics), and
    with ``wiener`` channel files of random numbers beside them."""
    import h5py

    g = generator(seed, "training", 99)
    paths, chans = [], []
    for k in range(n_shards):
        n = per_shard
        inputs = np.empty((n, grid, grid, grid, 2), np.float32)
        inputs[..., 0] = g.poisson(0.5, (n, grid, grid, grid))
        inputs[..., 1] = g.normal(0, 300, (n, grid, grid, grid)) * (inputs[..., 0] > 0)
        shard = shards.Shard(
            inputs=inputs,
            targets={"delta": g.normal(0, 0.5, (n,) + (grid,) * 3).astype(np.float32),
                     "phi": g.normal(0, 1e5, (n,) + (grid,) * 3).astype(np.float32),
                     "velocity": g.normal(0, 300, (n,) + (grid,) * 3 + (3,)).astype(np.float32)},
            catalog=np.zeros(0, shards.CATALOG_DTYPE), samples=np.arange(k * n, (k + 1) * n),
            observers=np.zeros((n, 3)), rotations=np.tile(np.eye(3, dtype=np.int8), (n, 1, 1)),
            box_index=np.zeros(n, np.int64), attrs={"grid": grid})
        p = folder / shards.shard_name(k)
        shards.write_shard(p, shard)
        paths.append(p)
        if wiener:
            c = folder / ("wiener-" + shards.shard_name(k))
            with h5py.File(c, "w") as h:
                h.create_dataset(wiener_dataset(), data=np.stack(
                    [g.normal(0, 1e5, (n,) + (grid,) * 3), g.normal(0, 0.5, (n,) + (grid,) * 3)], -1).astype(np.float32),
                    chunks=(1, grid, grid, grid, 2))
            chans.append(c)
    return paths, (chans if wiener else None)


def benchmark(profile, seconds: float = 10.0) -> dict:
    """Speed and memory of training at the profile's architecture and grid (``zoa bench train``).

    The epoch is timed the way :func:`~zoa_lib.methods.training.fitting.train` runs it: the same model (input channels and
    residual head from the profile's transforms), :func:`make_dataset` (held in memory when
    the profile's mocks fit ``training.in_memory_gib``, else streamed from the shards with
    threaded reads, with augmentation) and ``keras.Model.fit`` with validation, on synthetic
    shards of random numbers at the profile's grid in a temporary folder. Not timed: the
    per-epoch checkpoint and backup files (tens of ms at the laptop size) and computing the
    Wiener-filter channels (once per mock before training: ``zoa bench evaluate``).

    * ``seconds_per_epoch``: the measured fit time of an epoch of ``steps`` batches
      (the second epoch, after tracing), scaled to the profile's n_train / n_val mocks;
      ``estimated_training_minutes``: that × ``training.epochs`` (one network; the book
      trains two);
    * ``fit_seconds_per_sample``, ``inference_seconds_per_sample`` (``predict_on_batch``);
    * ``data_samples_per_second``: the pipeline alone, iterated without training;
    * parameter count, the estimated activation memory of one step per sample, the memory
      available for it (``available_memory_gib``: on a GPU its total from ``nvidia-smi`` less
      what TensorFlow holds, else the host's ``MemAvailable``; the batch drops to 1 when a step
      would need more than half), and the GPU peak from TensorFlow when on a GPU (``zoa bench``
      adds the process's peak RSS).

    ``seconds`` bounds the size of the timed epoch (at least 4 batches).
    """
    import tempfile

    import keras
    import tensorflow as tf

    from zoa_lib.methods.training.callbacks import EpochTimer
    from zoa_lib.methods.vnet import activation_bytes

    tr = profile.training
    N = profile.box.grid
    gpu = gpu_available()
    out = {"grid": N, "model": dataclasses.asdict(profile.model), "gpu": gpu, "batch_size": tr.batch_size,
           "wiener_channels": bool(tr.wiener_channels)}
    cal = {"edges": [0.0, 1.0], "bias": [0.0], "n_mocks": 0, "sigma_nl": None} if tr.wiener_channels else None
    transforms = Transforms.from_profile(profile, "phi", cal)
    steps_guess = max(1, profile.mocks.n_train // tr.batch_size)
    model = build_and_compile(profile, steps_guess, jit_compile=tr.xla and gpu,
                              mixed_precision=tr.mixed_precision and gpu, transforms=transforms)
    out["parameters"] = int(model.count_params())
    act = activation_bytes(profile.model, N, 1)
    out["estimated_step_memory_mib_per_sample"] = round(act / 2 ** 20, 1)
    avail = available_bytes(default=8 << 30)  # host memory, bytes
    if gpu:  # the GPU's: its total less what TensorFlow holds already ("current" is in use, not free)
        total = gpu_total_bytes(0)
        if total is not None:
            avail = total - int(tf.config.experimental.get_memory_info("GPU:0").get("current", 0))
    out["available_memory_gib"] = round(avail / 2 ** 30, 2)
    batch = tr.batch_size if act * tr.batch_size < avail / 2 else 1
    out["benchmark_batch"] = batch
    need = in_memory_bytes(profile.mocks.n_train + profile.mocks.n_val, N, transforms.in_channels)
    in_memory = need <= tr.in_memory_gib * 2 ** 30
    out["in_memory"] = in_memory

    # size the timed epoch from one step
    x = np.random.default_rng(0).normal(size=(batch, N, N, N, transforms.in_channels)).astype(np.float32)
    y = np.random.default_rng(1).normal(size=(batch, N, N, N, 1)).astype(np.float32)
    if act * batch >= avail:
        out["train_step_skipped"] = (f"estimated {act * batch / 2 ** 30:.1f} GiB for a step at batch {batch} "
                                     f"exceeds the {avail / 2 ** 30:.1f} GiB available")
        keras.backend.clear_session()
        return out
    model.train_on_batch(x, y)  # builds and traces train_on_batch (fit traces its own function)
    a = time.perf_counter()
    model.train_on_batch(x, y)
    step = time.perf_counter() - a
    steps = int(max(4, min(profile.mocks.n_train // batch, seconds / max(step, 1e-3))))
    val_steps = max(1, steps // 6)
    per_shard = batch * (steps + val_steps)
    with tempfile.TemporaryDirectory(prefix="zoa-bench-train-") as tmp:
        paths, chans = _synthetic_shards(Path(tmp), N, 1, per_shard, profile.seed, wiener=tr.wiener_channels)
        shards = scan_shards(paths, N)
        kw = dict(channel_paths=chans, in_memory=in_memory, reflections=tr.augment_reflections)
        a = time.perf_counter()
        ds = make_dataset(shards, "phi", transforms, batch, shuffle=True, augment=tr.augment, seed=profile.seed,
                          epochs=2, steps_per_epoch=steps, **kw)
        val = make_dataset(shards, "phi", transforms, batch, shuffle=False, augment=False, seed=profile.seed,
                           steps_per_epoch=val_steps, repeat=False, **kw)  # one pass, as in training
        out["data_setup_seconds"] = round(time.perf_counter() - a, 3)
        it = iter(make_dataset(shards, "phi", transforms, batch, shuffle=True, augment=tr.augment,
                               seed=profile.seed, epochs=1, steps_per_epoch=steps, **kw))
        a = time.perf_counter()
        k = sum(1 for _ in it)
        out["data_samples_per_second"] = round(k * batch / (time.perf_counter() - a), 2)
        timer = EpochTimer()
        model.fit(ds, epochs=2, steps_per_epoch=steps, validation_data=val, validation_steps=val_steps,
                  callbacks=[timer], shuffle=False, verbose=0)
    epoch = timer.seconds[-1]
    model.predict_on_batch(x)
    k, a = 0, time.perf_counter()
    while k < 2 or (time.perf_counter() - a < 0.2 * seconds and k < 100):
        model.predict_on_batch(x)
        k += 1
    t_inf = (time.perf_counter() - a) / (k * batch)
    t_val = val_steps * batch * t_inf
    t_fit = max(epoch - t_val, 1e-9) / (steps * batch)
    out["timed_epoch"] = {"train_samples": steps * batch, "val_samples": val_steps * batch,
                          "seconds": round(epoch, 3), "first_epoch_seconds": round(timer.seconds[0], 3)}
    out["fit_seconds_per_sample"] = round(t_fit, 5)
    out["inference_seconds_per_sample"] = round(t_inf, 5)
    out["data_over_fit_rate"] = round(out["data_samples_per_second"] * t_fit, 1)
    per_epoch = (profile.mocks.n_train // batch) * batch * t_fit + profile.mocks.n_val * t_inf
    out["seconds_per_epoch"] = round(per_epoch, 1)
    out["estimated_training_minutes"] = round(per_epoch * tr.epochs / 60, 2)
    if gpu:
        info = tf.config.experimental.get_memory_info("GPU:0")
        out["gpu_peak_memory_mib"] = round(info.get("peak", 0) / 2 ** 20, 1)
    keras.backend.clear_session()
    return out
