"""Training and inference of the two V-Nets (δ and φ), one concept a module:

===============================================  =============================================
:mod:`~zoa_lib.methods.training.transforms`      input normalisation and target transforms
                                                 (saved with every model), :class:`~zoa_lib.methods.training.transforms.TrainingError`
:mod:`~zoa_lib.methods.training.pipeline`        shards → batches: validation, global shuffle,
                                                 rotations (:mod:`zoa_lib.universe.symmetries`),
                                                 threaded reads or mocks held in memory
:mod:`~zoa_lib.methods.training.schedule`        the triangular cyclic learning rate
:mod:`~zoa_lib.methods.training.strategy`        ``tf.distribute`` strategies (one GPU, a node,
                                                 several nodes from ``TF_CONFIG`` or Slurm)
:mod:`~zoa_lib.methods.training.callbacks`       atomic checkpoint, epoch copies and backup
                                                 (imports Keras; loaded only when training)
:mod:`~zoa_lib.methods.training.model_files`     ``.keras`` files with zoa metadata; which saved
                                                 model matches a profile; training histories
:mod:`~zoa_lib.methods.training.fitting`         :func:`~zoa_lib.methods.training.fitting.train`
                                                 (resumable, distributed), ``ensure_trained``
:mod:`~zoa_lib.methods.training.inference`       predictions in physical units
:mod:`~zoa_lib.methods.training.bench`           ``zoa bench train``
===============================================  =============================================

Importing the package, or any module here but ``schedule`` and ``callbacks``, does not import
TensorFlow; each name is imported from its module
(``from zoa_lib.methods.training.fitting import train``).
"""
