"""Training and inference of the two V-Nets (δ and φ), one concept a module:

=======================================  =====================================================
:mod:`~zoa_lib.methods.training.transforms`      input normalisation and target transforms (saved with
                                         every model), :class:`TrainingError`
:mod:`zoa_lib.universe.symmetries`                the 48 cube symmetries used to augment mocks
:mod:`~zoa_lib.methods.training.pipeline`        shards → batches: validation, global shuffle,
                                         rotations, threaded reads or mocks held in memory
:mod:`~zoa_lib.methods.training.strategy`        ``tf.distribute`` strategies (one GPU, a node,
                                         several nodes from ``TF_CONFIG`` or Slurm)
:mod:`~zoa_lib.methods.training.callbacks`       cyclic learning rate, atomic checkpoint and backup
                                         (imports Keras; loaded only when training or loading)
:mod:`~zoa_lib.methods.training.model_files`     ``.keras`` files with zoa metadata; which saved model
                                         matches a profile
:mod:`~zoa_lib.methods.training.fitting`         :func:`train` (resumable, distributed),
                                         :func:`ensure_trained`
:mod:`~zoa_lib.methods.training.inference`       predictions in physical units
:mod:`~zoa_lib.methods.training.bench`           ``zoa bench train``
=======================================  =====================================================

``import zoa_lib.methods.training`` does not import TensorFlow; the names below are the package's
public interface (``from zoa_lib.methods.training import train``).
"""
