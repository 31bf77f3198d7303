"""V-Net architecture: reflection padding, shapes, parameter count, boundary behaviour."""
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import dataclasses  # noqa: E402

import numpy as np  # noqa: E402
import pytest  # noqa: E402

keras = pytest.importorskip("keras")

from zoa_lib.config import ModelConfig  # noqa: E402
from zoa_lib.errors import ZoaError  # noqa: E402
from zoa_lib.methods.vnet import ReflectionPadding3D, build_vnet, check_grid, level_table  # noqa: E402


@pytest.mark.parametrize("pad", [1, 2])
def test_reflection_padding_equals_numpy_reflect(pad):
    x = np.random.default_rng(pad).normal(size=(2, 5, 6, 7, 3)).astype(np.float32)
    layer = ReflectionPadding3D(pad)
    got = np.asarray(layer(x))
    want = np.pad(x, [(0, 0), (pad, pad), (pad, pad), (pad, pad), (0, 0)], mode="reflect")
    np.testing.assert_array_equal(got, want)
    assert layer.compute_output_shape((None, 5, 6, 7, 3)) == (None, 5 + 2 * pad, 6 + 2 * pad, 7 + 2 * pad, 3)
    clone = ReflectionPadding3D.from_config(layer.get_config())
    assert clone.padding == pad
    np.testing.assert_array_equal(np.asarray(clone(x)), want)


def _expected_parameters(cfg: ModelConfig, in_channels: int = 2) -> int:
    """Independent count of the V-Net of the zoa_lib.methods.vnet docstring (relu, no PReLU weights)."""
    k = cfg.kernel_size

    def conv(cin, cout, size):
        return cin * cout * size ** 3 + cout

    def stage(cin, f):
        n = conv(cin, f, 1) if cin != f else 0
        n += conv(cin, f, k) + (cfg.convs_per_stage - 1) * conv(f, f, k)
        return n

    F = [cfg.base_filters * 2 ** lvl for lvl in range(cfg.depth + 1)]
    total = stage(in_channels, F[0])
    for lvl in range(1, cfg.depth + 1):
        total += conv(F[lvl - 1], F[lvl], 2) + stage(F[lvl], F[lvl])
    for lvl in range(cfg.depth - 1, -1, -1):
        total += F[lvl + 1] * F[lvl] * 8 + F[lvl]  # transposed 2^3 convolution
        total += stage(2 * F[lvl], F[lvl])
    return total + conv(F[0], 1, 1)


@pytest.mark.parametrize("cfg", [
    ModelConfig(depth=2, base_filters=4, convs_per_stage=1, kernel_size=3),
    ModelConfig(depth=3, base_filters=2, convs_per_stage=2, kernel_size=3, padding="zeros"),
    ModelConfig(depth=1, base_filters=3, convs_per_stage=3, kernel_size=5),
])
def test_vnet_shapes_and_parameter_count(cfg):
    model = build_vnet(cfg, 16)
    assert model.input_shape == (None, 16, 16, 16, 2)
    assert model.output_shape == (None, 16, 16, 16, 1)
    assert model.count_params() == _expected_parameters(cfg)
    rows = level_table(model, 160.0, cfg.depth)  # the per-level table of chapter 03
    assert [r["level"] for r in rows] == list(range(cfg.depth + 1))
    assert [r["cube"] for r in rows] == [f"{16 // 2 ** lvl}³" for lvl in range(cfg.depth + 1)]
    assert [r["voxel [Mpc/h]"] for r in rows] == [10.0 * 2 ** lvl for lvl in range(cfg.depth + 1)]
    assert [r["channels"] for r in rows] == [cfg.base_filters * 2 ** lvl for lvl in range(cfg.depth + 1)]
    assert sum(r["parameters"] for r in rows) == _expected_parameters(cfg)  # the levels partition the model
    n_pad = sum(isinstance(layer, ReflectionPadding3D) for layer in model.layers)
    n_conv = (cfg.depth + 1 + cfg.depth) * cfg.convs_per_stage  # k^3 convolutions
    assert n_pad == (n_conv if cfg.padding == "reflect" else 0)
    y = np.asarray(model(np.zeros((1, 16, 16, 16, 2), np.float32)))
    assert y.shape == (1, 16, 16, 16, 1) and y.dtype == np.float32


def test_reflection_padding_has_no_edge_effect():
    """A constant input stays translation invariant (period 2, from the stride-2 layers) up to
    the faces with reflection padding; zero padding makes the faces differ."""
    x = np.full((1, 8, 8, 8, 2), 0.7, np.float32)
    for padding, periodic in (("reflect", True), ("zeros", False)):
        keras.utils.set_random_seed(3)
        cfg = ModelConfig(depth=1, base_filters=4, convs_per_stage=2, padding=padding, activation="tanh")
        y = np.asarray(build_vnet(cfg, 8)(x))[0, ..., 0]
        same = all(np.allclose(np.take(y, range(2, 8), axis=a), np.take(y, range(0, 6), axis=a), atol=1e-6)
                   for a in range(3))
        assert same == periodic, padding


def test_bad_grid_is_a_clear_error():
    with pytest.raises(ZoaError, match="divisible by 8"):
        check_grid(ModelConfig(depth=3), 12)
    with pytest.raises(ZoaError, match="too small for reflection"):
        build_vnet(ModelConfig(depth=3, kernel_size=5), 16)
    cfg = dataclasses.replace(ModelConfig(depth=3, kernel_size=5), padding="zeros")
    assert build_vnet(cfg, 16).output_shape == (None, 16, 16, 16, 1)


def test_prelu_slopes_start_at_a_quarter_not_at_relu():
    """Keras's PReLU starts with slope 0 (a ReLU, whose units died in the φ network); the
    V-Net's start at 0.25 (He et al. 2015): negative inputs pass with a quarter of their value."""
    import dataclasses

    import numpy as np

    from zoa_lib.config import load_profile
    from zoa_lib.methods.vnet import build_vnet

    cfg = dataclasses.replace(load_profile("ci").model, activation="prelu")
    model = build_vnet(cfg, 16)
    prelus = [layer for layer in model.layers if type(layer).__name__ == "PReLU"]
    assert prelus and all(np.allclose(np.asarray(layer.alpha), 0.25) for layer in prelus)
    x = -np.ones((1, 2, 2, 2, cfg.base_filters), np.float32)
    np.testing.assert_allclose(np.asarray(prelus[0](x)), -0.25)
