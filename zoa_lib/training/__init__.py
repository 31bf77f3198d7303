"""Training and inference of the two V-Nets (δ and φ), one concept a module:

=======================================  =====================================================
:mod:`~zoa_lib.training.transforms`      input normalisation and target transforms (saved with
                                         every model), :class:`TrainingError`
:mod:`zoa_lib.symmetries`                the 48 cube symmetries used to augment mocks
:mod:`~zoa_lib.training.pipeline`        shards → batches: validation, global shuffle,
                                         rotations, threaded reads or mocks held in memory
:mod:`~zoa_lib.training.strategy`        ``tf.distribute`` strategies (one GPU, a node,
                                         several nodes from ``TF_CONFIG`` or Slurm)
:mod:`~zoa_lib.training.callbacks`       cyclic learning rate, atomic checkpoint and backup
                                         (imports Keras; loaded only when training or loading)
:mod:`~zoa_lib.training.model_files`     ``.keras`` files with zoa metadata; which saved model
                                         matches a profile
:mod:`~zoa_lib.training.fitting`         :func:`train` (resumable, distributed),
                                         :func:`ensure_trained`
:mod:`~zoa_lib.training.inference`       predictions in physical units
:mod:`~zoa_lib.training.bench`           ``zoa bench train``
=======================================  =====================================================

``import zoa_lib.training`` does not import TensorFlow; the names below are the package's
public interface (``from zoa_lib.training import train``).
"""
from __future__ import annotations

from ..symmetries import CUBE_SYMMETRIES, rotate_cube, symmetry_matrix
from .bench import benchmark
from .fitting import TrainResult, build_and_compile, ensure_trained, train, training_seed
from .inference import predict, predict_array
from .model_files import (META_MEMBER, MODEL_DEPENDS_ON, load_model, load_model_file, matching_model, model_dir,
                          model_path, read_model_metadata, save_model)
from .pipeline import (MemoryMocks, ShardReader, ShardSet, epoch_plan, in_memory_bytes, make_dataset, scan_shards,
                       shards_grid, split_shards)
from .strategy import STRATEGIES, get_strategy, worker_role
from .transforms import TARGET_NAMES, UNITS, TrainingError, Transforms

__all__ = [
    "CUBE_SYMMETRIES", "rotate_cube", "symmetry_matrix", "benchmark", "TrainResult", "build_and_compile",
    "ensure_trained", "train", "training_seed", "predict", "predict_array", "META_MEMBER", "MODEL_DEPENDS_ON",
    "load_model", "load_model_file", "matching_model", "model_dir", "model_path", "read_model_metadata",
    "save_model", "MemoryMocks", "ShardReader", "ShardSet", "epoch_plan", "in_memory_bytes", "make_dataset",
    "scan_shards", "shards_grid", "split_shards", "STRATEGIES", "get_strategy", "worker_role", "TARGET_NAMES",
    "UNITS", "TrainingError", "Transforms",
]
