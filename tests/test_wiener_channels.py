"""The calibrated Wiener filter as input channels, and the networks learning on real ci mocks
(issue 13): the untrained corrector *is* the filter; channel files are cached by content;
the φ network learns (its validation loss falls below the filter's and r(φ) > 0.5)."""
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import h5py  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402

keras = pytest.importorskip("keras")

from zoa_lib import evaluation, metrics, mocks, training, wiener_channels  # noqa: E402
from zoa_lib.config import load_profile  # noqa: E402
from zoa_lib.errors import ZoaError  # noqa: E402
from zoa_lib.vnet import build_vnet  # noqa: E402


@pytest.fixture
def ci(zoa_data):
    prof = load_profile("ci")
    mocks.generate(prof, workers=1, scheduler="sync", progress=False, log=lambda *a: None)
    return prof


def test_untrained_corrector_returns_the_linear_estimate():
    prof = load_profile("ci")
    rng = np.random.default_rng(3)
    u = rng.normal(size=(2, 16, 16, 16, 4)).astype(np.float32)
    for channel in (2, 3):
        model = build_vnet(prof.model, 16, in_channels=4, residual_channel=channel)
        np.testing.assert_array_equal(np.asarray(model.predict_on_batch(u))[..., 0], u[..., channel])
    with pytest.raises(ZoaError, match="residual_channel"):
        build_vnet(prof.model, 16, in_channels=2, residual_channel=2)


def test_channel_files_are_the_calibrated_filter_and_are_reused(ci):
    files = wiener_channels.ensure(ci, splits=("val",), progress=False, log=lambda *a: None)
    (name, path), = files.items()
    cal = wiener_channels.profile_calibration(ci)
    shard = ci.data_path / "mocks" / name
    with h5py.File(shard, "r") as f:
        x = f["inputs"][1]
    with h5py.File(path, "r") as f:
        stored = f["channels"][1]
    # the same numbers as the wiener_cal baseline of zoa evaluate (one implementation)
    rec = evaluation.reconstruct("wiener_cal", x, ci, bias=wiener_channels.calibration_from_dict(cal))
    np.testing.assert_allclose(stored[..., 0], rec["phi"], rtol=1e-5, atol=1e-3 * np.abs(rec["phi"]).max())
    np.testing.assert_allclose(stored[..., 1], rec["delta"], rtol=1e-5, atol=1e-6)
    assert rec["phi"].std() > 0
    # a second call reuses the file; a stale one (another calibration key) is remade
    mtime = path.stat().st_mtime_ns
    wiener_channels.ensure(ci, splits=("val",), progress=False, log=lambda *a: None)
    assert path.stat().st_mtime_ns == mtime
    with h5py.File(path, "r+") as f:
        f.attrs["key"] = "stale"
    with pytest.raises(ZoaError, match="stale"):
        wiener_channels.split_paths(ci, [shard])
    wiener_channels.ensure(ci, splits=("val",), progress=False, log=lambda *a: None)
    assert wiener_channels.split_paths(ci, [shard]) == [path]


@pytest.mark.slow
def test_networks_learn_on_ci_mocks(ci):
    """The φ network's validation loss falls below that of its untrained self (the calibrated
    Wiener filter), its per-mock r(φ) on the test mocks exceeds 0.5; the same for the δ network
    (its untrained self: the filter's δ channel)."""
    res = training.train(ci, "phi", progress=False)
    val = training.split_shards(ci, "val")
    tf_ = training.load_model(ci, "phi")[1]
    chan = wiener_channels.split_paths(ci, val.paths)
    ds = training.make_dataset(val, "phi", tf_, batch_size=1, shuffle=False, augment=False, seed=0, epochs=1,
                               channel_paths=chan, in_memory=True)
    start = float(np.mean([np.mean((x[..., 2] - y[..., 0]) ** 2) for x, y in ds.as_numpy_iterator()]))
    best = min(res.history["val_loss"])
    assert best < start, (start, res.history["val_loss"])

    reg = metrics.regions(ci.box.grid, ci.box.size, ci.survey.zoa_b, ci.survey.r_max)["survey"]
    with h5py.File(training.predict(ci, "phi", "test", progress=False), "r") as f:
        pred, truth = f["prediction"][()], f["truth"][()]
    r = [metrics.pearson_r(p[reg], t[reg]) for p, t in zip(pred, truth)]
    assert np.mean(r) > 0.5, r

    # δ: its validation loss falls below its untrained self's (the calibrated filter's δ, channel 3), and
    # its test δ follows the truth. (On the ci mocks that copy Cosmicflows-3 its test MSE does not beat
    # δ = 0: 6 epochs on 16 mocks overshoot the amplitude, std 0.46-0.57 against 0.32-0.37; measured.)
    res_d = training.train(ci, "delta", progress=False)
    tf_d = training.load_model(ci, "delta")[1]
    ds = training.make_dataset(val, "delta", tf_d, batch_size=1, shuffle=False, augment=False, seed=0, epochs=1,
                               channel_paths=chan, in_memory=True)
    start_d = float(np.mean([np.mean((x[..., 3] - y[..., 0]) ** 2) for x, y in ds.as_numpy_iterator()]))
    assert min(res_d.history["val_loss"]) < start_d, (start_d, res_d.history["val_loss"])
    with h5py.File(training.predict(ci, "delta", "test", progress=False), "r") as f:
        pred, truth = f["prediction"][()], f["truth"][()]
    assert np.mean([metrics.pearson_r(p[reg], t[reg]) for p, t in zip(pred, truth)]) > 0.5
