"""Distribution strategies of training: which ``tf.distribute`` strategy, this process's
role in it, and two workarounds for Keras with several workers.

Distribution (:func:`get_strategy`): ``tf.distribute`` only — MirroredStrategy over the GPUs
of a node, MultiWorkerMirroredStrategy across nodes with the cluster from
``TF_CONFIG`` or from Slurm (``SlurmClusterResolver``). Each worker reads its own slice of
every global batch (``distribute_datasets_from_function``); only the chief writes
checkpoints and the history, each other worker keeps its own ``backup-worker-<i>/``.
"""
from __future__ import annotations

import json
import os
from typing import Sequence

import numpy as np

from zoa_lib.methods.training.transforms import TrainingError

STRATEGIES = ("auto", "default", "mirrored", "multiworker")


def _slurm_tasks() -> int:
    for key in ("SLURM_STEP_NUM_TASKS", "SLURM_NTASKS"):
        if os.environ.get(key, "").isdigit():
            return int(os.environ[key])
    return 1


def get_strategy(kind: str = "auto", devices: Sequence[str] | None = None):
    """A ``tf.distribute`` strategy.

    ``default``: one device. ``mirrored``: MirroredStrategy over ``devices`` (default: every
    GPU of this node, or the CPU). ``multiworker``: MultiWorkerMirroredStrategy with the
    cluster from ``TF_CONFIG`` when set, else from Slurm (``SlurmClusterResolver``, in a job
    step launched by ``srun``, one task per node or per GPU). ``auto``: multiworker when
    ``TF_CONFIG`` is set or a Slurm step has several tasks, mirrored with several GPUs, else
    default. Create it before any other TensorFlow work (MultiWorker requires it)."""
    import tensorflow as tf

    if kind not in STRATEGIES:
        raise TrainingError(f"strategy must be one of {', '.join(STRATEGIES)}, got {kind!r}")
    if kind == "auto":
        if os.environ.get("TF_CONFIG") or (os.environ.get("SLURM_JOB_ID") and _slurm_tasks() > 1):
            kind = "multiworker"
        elif len(tf.config.list_physical_devices("GPU")) > 1:
            kind = "mirrored"
        else:
            kind = "default"
    if kind == "default":
        return tf.distribute.get_strategy()
    if kind == "mirrored":
        return tf.distribute.MirroredStrategy(devices=list(devices) if devices else None)
    if os.environ.get("TF_CONFIG"):
        try:
            json.loads(os.environ["TF_CONFIG"])
        except json.JSONDecodeError as e:
            raise TrainingError(f"TF_CONFIG is not valid JSON ({e})") from None
        return tf.distribute.MultiWorkerMirroredStrategy()
    if os.environ.get("SLURM_JOB_ID"):
        resolver = tf.distribute.cluster_resolver.SlurmClusterResolver()
        return tf.distribute.MultiWorkerMirroredStrategy(cluster_resolver=resolver)
    raise TrainingError("strategy 'multiworker': no cluster; set TF_CONFIG or run under Slurm (srun)")


def worker_role(strategy) -> tuple[bool, int, int]:
    """(is chief, worker index, number of workers) of this process in ``strategy``."""
    import tensorflow as tf

    if not isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy):
        return True, 0, 1
    resolver = strategy.cluster_resolver
    spec = resolver.cluster_spec().as_dict()
    n = sum(len(v) for k, v in spec.items() if k in ("chief", "worker")) or 1
    ttype, tid = resolver.task_type, int(resolver.task_id or 0)
    if ttype is None:
        return True, 0, n
    idx = tid + (1 if ttype == "worker" and "chief" in spec else 0)
    chief = ttype == "chief" or (ttype == "worker" and tid == 0 and "chief" not in spec)
    return chief, (0 if ttype == "chief" else idx), n

def multiworker_workarounds(model, strategy, grid: int, channels: int = 2) -> None:
    """Two Keras 3 bugs with MultiWorkerMirroredStrategy (keras-team/keras#20585):

    1. ``fit`` peeks at a distributed batch and ``strategy.reduce``-s the (x, y) tuple to build
       the optimizer and metrics, which the strategy cannot reduce: only shapes are needed, so
       this model instance builds from a local batch of the right shape instead;
    2. the per-step logs (scalar metric results) are reduced with ``axis=0``, which fails for
       scalars: scalars are averaged over replicas with ``axis=None`` instead (the same mean).
    Gradients are still all-reduced by the strategy itself; nothing else changes."""
    from keras.src.backend.tensorflow import trainer as tf_trainer

    batch = (np.zeros((1, grid, grid, grid, channels), np.float32), np.zeros((1, grid, grid, grid, 1), np.float32))

    def build(iterator=None, data_batch=None):
        with strategy.scope():
            model._symbolic_build(data_batch=batch)

    model._maybe_symbolic_build = build
    original = getattr(tf_trainer.reduce_per_replica, "_zoa_original", tf_trainer.reduce_per_replica)

    def reduce_per_replica(values, strat, reduction):
        if reduction in ("auto", "mean") and tf_trainer._collective_all_reduce_multi_worker(strat):
            from keras.src import tree

            def red(v):
                first = v.values[0] if tf_trainer._is_per_replica_instance(v) else v
                if getattr(first, "shape", None) is not None and first.shape.rank == 0:
                    return strat.reduce("MEAN", v, axis=None)
                return original(v, strat, reduction)

            return tree.map_structure(red, values)
        return original(values, strat, reduction)

    reduce_per_replica._zoa_original = original
    tf_trainer.reduce_per_replica = reduce_per_replica
