"""The triangular cyclic learning rate of the paper (Smith 2017; 1e-7 to 1e-5), as a numpy
function and as a serializable Keras schedule (this module imports Keras).
"""
from __future__ import annotations

import keras
import numpy as np
from keras import ops

from zoa_lib.methods.training.transforms import TrainingError


def triangular_lr(step, lr_min: float, lr_max: float, half_period: float):
    """Triangular cyclic learning rate (Smith 2017), numpy version of :class:`TriangularCyclicLR`:
    lr_min at step 0, lr_max at ``half_period``, lr_min at 2 ``half_period``, linear between."""
    step = np.asarray(step, np.float64)
    cycle = np.floor(1.0 + step / (2.0 * half_period))
    x = np.abs(step / half_period - 2.0 * cycle + 1.0)
    return lr_min + (lr_max - lr_min) * np.maximum(0.0, 1.0 - x)


@keras.saving.register_keras_serializable(package="zoa")
class TriangularCyclicLR(keras.optimizers.schedules.LearningRateSchedule):
    """Triangular cyclic learning rate (Smith 2017, "Cyclical learning rates for training
    neural networks")::

        cycle = floor(1 + step / (2 h)),  x = |step / h − 2 cycle + 1|
        lr    = lr_min + (lr_max − lr_min) · max(0, 1 − x)

    lr_min at step 0, lr_max at step h (the half period, in optimizer steps), back to
    lr_min at 2h, linear in between. Serializable (``get_config``)."""

    def __init__(self, lr_min: float, lr_max: float, half_period: float, name: str = "triangular"):
        super().__init__()
        if not (0 < lr_min <= lr_max and half_period > 0):
            raise TrainingError(f"TriangularCyclicLR: need 0 < lr_min <= lr_max and half_period > 0, "
                                f"got {lr_min}, {lr_max}, {half_period}")
        self.lr_min, self.lr_max = float(lr_min), float(lr_max)
        self.half_period = float(half_period)
        self.name = name

    def __call__(self, step):
        step = ops.cast(step, "float32")
        h = self.half_period
        cycle = ops.floor(1.0 + step / (2.0 * h))
        x = ops.abs(step / h - 2.0 * cycle + 1.0)
        return self.lr_min + (self.lr_max - self.lr_min) * ops.maximum(0.0, 1.0 - x)

    def get_config(self):
        return {"lr_min": self.lr_min, "lr_max": self.lr_max, "half_period": self.half_period,
                "name": self.name}
