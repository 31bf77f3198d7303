"""The V-Net (Milletari, Navab & Ahmadi 2016) in Keras 3: a 3D encoder–decoder with residual
stages, strided down-convolutions, transposed up-convolutions, skip connections and
reflection padding.

Input (N, N, N, 2): the two gridded survey channels (N_gal, V_pec), normalised by
:class:`zoa_lib.methods.training.transforms.Transforms`; output (N, N, N, 1): the transformed target
(log(1 + δ) or φ / σ_φ). Two separate networks are trained, one per target (Dupuy et al.
2025).

Architecture (``profile.model``; ``F_l = base_filters · 2^l`` channels at level l)::

    level 0 (N³)        in ─ stage(F_0) ──────────────────────────────── concat ─ stage(F_0) ─ 1³ conv ─ out
                                 └ down(F_1) ─ stage(F_1) ─ … ─┐               ↑
    level depth (N/2^depth)³                              stage(F_depth) ─ up(F_{depth−1}) …

* **stage(F)** — a residual stage: ``convs_per_stage`` convolutions of ``kernel_size``³
  (each preceded by its padding), activation after each but the last, then the stage's
  input is added (projected to F channels by a 1×1×1 convolution when its channel count
  differs, e.g. after a skip concatenation) and the activation applied: y = act(x + R(x)).
* **down(F)** — a 2×2×2 convolution with stride 2 (learned downsampling instead of
  pooling) + activation.
* **up(F)** — a 2×2×2 transposed convolution with stride 2 + activation, then
  concatenation with the encoder stage of the same level (skip connection).
* **padding** — ``reflect`` (default, as in the paper): every k³ convolution is preceded by
  :class:`ReflectionPadding3D` (k // 2 voxels, ``numpy.pad(mode="reflect")``) and run
  ``valid``, so the cube's faces are extended by mirror images of the field instead of zeros
  (no artificial empty shell at the survey edge); ``zeros``: ``same`` padding.
* The last 1×1×1 convolution is linear and computed in float32 (mixed precision safe).

The ``paper`` profile: depth 4 (128³ → 8³), 16 base filters (16 … 256 channels), 2
convolutions per stage, 3³ kernels, ReLU, reflection padding. Dupuy et al. (2025) state a
V-Net with reflection padding; where they are silent (depth, width, convolutions per stage)
we follow their predecessor Hong et al. (2021, ApJ 913, 76), a 4-level V-Net of this
shape. :func:`parameter_count` gives its size (``zoa bench train --profile paper``).
"""
from __future__ import annotations

import keras
from keras import layers, ops

from zoa_lib.errors import ZoaError


class VNetError(ZoaError, ValueError):
    """An architecture that cannot be built for the given grid."""


@keras.saving.register_keras_serializable(package="zoa")
class ReflectionPadding3D(layers.Layer):
    """Pad the three spatial axes of (batch, x, y, z, channels) by ``padding`` voxels on
    each side with their mirror image, excluding the edge voxel: identical to
    ``numpy.pad(x, [(0, 0), (p, p), (p, p), (p, p), (0, 0)], mode="reflect")``.
    Needs ``padding`` < the spatial size."""

    def __init__(self, padding: int = 1, **kwargs):
        super().__init__(**kwargs)
        self.padding = int(padding)

    def call(self, x):
        p = self.padding
        return ops.pad(x, [[0, 0], [p, p], [p, p], [p, p], [0, 0]], mode="reflect")

    def compute_output_shape(self, input_shape):
        p2 = 2 * self.padding
        return (input_shape[0],) + tuple(None if s is None else s + p2 for s in input_shape[1:4]) + (
            input_shape[4],)

    def get_config(self):
        return {**super().get_config(), "padding": self.padding}


@keras.saving.register_keras_serializable(package="zoa")
class InputChannel(layers.Layer):
    """Channel ``index`` of a (batch, x, y, z, channels) tensor, kept as a length-1 channel axis."""

    def __init__(self, index: int = 0, **kwargs):
        super().__init__(**kwargs)
        self.index = int(index)

    def call(self, x):
        return x[..., self.index:self.index + 1]

    def compute_output_shape(self, input_shape):
        return tuple(input_shape[:-1]) + (1,)

    def get_config(self):
        return {**super().get_config(), "index": self.index}


def _activation(name: str, label: str):
    if name == "prelu":  # slopes start at 0.25 (He et al. 2015), not at Keras's 0 (= ReLU, whose units died)
        return layers.PReLU(alpha_initializer=keras.initializers.Constant(0.25), shared_axes=[1, 2, 3], name=label)
    if name == "leaky_relu":
        return layers.LeakyReLU(negative_slope=0.1, name=label)
    return layers.Activation(name, name=label)


def _conv(x, filters: int, kernel: int, padding: str, label: str):
    if kernel > 1 and padding == "reflect":
        x = ReflectionPadding3D(kernel // 2, name=label + "_pad")(x)
        return layers.Conv3D(filters, kernel, padding="valid", name=label)(x)
    return layers.Conv3D(filters, kernel, padding="same", name=label)(x)


def _stage(x, filters: int, cfg, label: str):
    """Residual stage y = act(x' + R(x)), x' = x or its 1×1×1 projection to ``filters``."""
    shortcut = x
    if x.shape[-1] != filters:
        shortcut = layers.Conv3D(filters, 1, name=label + "_proj")(x)
    y = x
    for i in range(cfg.convs_per_stage):
        y = _conv(y, filters, cfg.kernel_size, cfg.padding, f"{label}_conv{i}")
        if i < cfg.convs_per_stage - 1:
            y = _activation(cfg.activation, f"{label}_act{i}")(y)
    y = layers.Add(name=label + "_add")([shortcut, y])
    return _activation(cfg.activation, label + "_out")(y)


def check_grid(model_cfg, grid: int) -> None:
    """Raise :class:`VNetError` when ``grid`` cannot be halved ``depth`` times down to a cube
    larger than the reflection padding."""
    depth, pad = model_cfg.depth, model_cfg.kernel_size // 2
    if grid % (2 ** depth):
        raise VNetError(f"model.depth: {depth} halvings need a grid divisible by {2 ** depth}, got {grid}")
    bottom = grid // 2 ** depth
    if model_cfg.padding == "reflect" and bottom <= pad:
        raise VNetError(f"model.depth: the deepest level is {bottom}^3 voxels, too small for reflection "
                        f"padding of {pad} (kernel {model_cfg.kernel_size}); lower model.depth")


def build_vnet(model_cfg, grid: int, name: str = "vnet", in_channels: int = 2,
               residual_channel: int | None = None) -> keras.Model:
    """The V-Net of the module docstring for ``model_cfg`` (a :class:`zoa_lib.config.ModelConfig`)
    on a ``grid``³ cube: input (grid, grid, grid, ``in_channels``) → output (grid, grid, grid, 1).

    ``residual_channel``: the network learns a correction to that input channel, output =
    input[..., c] + head(x), with the head initialised to zero so that the untrained network
    returns the channel itself (used with the Wiener-filter channels of
    :mod:`zoa_lib.methods.wiener_channels`: training starts from the linear optimum).

    Layers take the global dtype policy (``keras.mixed_precision``) in force when called;
    the output is float32."""
    if residual_channel is not None and not 0 <= residual_channel < in_channels:
        raise VNetError(f"residual_channel {residual_channel} is not one of the {in_channels} input channels")
    check_grid(model_cfg, grid)
    inp = keras.Input((grid, grid, grid, in_channels), name="survey")
    x = inp
    skips = []
    for level in range(model_cfg.depth + 1):
        filters = model_cfg.base_filters * 2 ** level
        if level > 0:
            x = layers.Conv3D(filters, 2, strides=2, name=f"down{level}")(x)
            x = _activation(model_cfg.activation, f"down{level}_act")(x)
        x = _stage(x, filters, model_cfg, f"enc{level}")
        skips.append(x)
    for level in range(model_cfg.depth - 1, -1, -1):
        filters = model_cfg.base_filters * 2 ** level
        x = layers.Conv3DTranspose(filters, 2, strides=2, name=f"up{level}")(x)
        x = _activation(model_cfg.activation, f"up{level}_act")(x)
        x = layers.Concatenate(name=f"skip{level}")([x, skips[level]])
        x = _stage(x, filters, model_cfg, f"dec{level}")
    if residual_channel is None:
        out = layers.Conv3D(1, 1, dtype="float32", name="head")(x)
    else:
        head = layers.Conv3D(1, 1, dtype="float32", kernel_initializer="zeros", name="head")(x)
        base = InputChannel(residual_channel, dtype="float32", name="linear_estimate")(inp)
        out = layers.Add(dtype="float32", name="corrected")([base, head])
    return keras.Model(inp, out, name=name)


def parameter_count(model_cfg, grid: int) -> int:
    """Trainable + non-trainable parameters of :func:`build_vnet` (builds the model)."""
    return int(build_vnet(model_cfg, grid).count_params())


def level_table(model, box_size: float, depth: int) -> list[dict]:
    """One row per level of a built V-Net (:func:`build_vnet`): ``level``, ``cube`` (its
    side in voxels, "N³"), ``voxel [Mpc/h]`` (``box_size`` / N, ``box_size`` in Mpc/h),
    ``channels`` and ``parameters`` — those of the level's encoder and decoder stages and
    of the down/up-sampling convolutions into it (the 1×1 head counts with level 0), so the
    rows add up to the model's parameters."""
    rows = []
    for level in range(int(depth) + 1):
        enc = model.get_layer(f"enc{level}_out").output.shape
        params = sum(layer.count_params() for layer in model.layers
                     if layer.name.split("_")[0] in (f"enc{level}", f"down{level}", f"dec{level}", f"up{level}")
                     or (level == 0 and layer.name == "head"))
        rows.append({"level": level, "cube": f"{enc[1]}³", "voxel [Mpc/h]": box_size / enc[1],
                     "channels": enc[-1], "parameters": params})
    return rows


def activation_bytes(model_cfg, grid: int, batch: int = 1, bytes_per_value: int = 4) -> int:
    """Rough memory of one training step's activations: the sum over the model's layer outputs
    of their sizes, × 2 (kept for the backward pass and their gradients). An estimate for the
    benchmark when a step does not fit, not a measurement."""
    model = build_vnet(model_cfg, grid)
    total = 0
    for layer in model.layers:
        shape = layer.output.shape
        n = 1
        for s in shape[1:]:
            n *= int(s)
        total += n
    return int(2 * total * batch * bytes_per_value)
