"""Training: transforms, cube symmetries, tf.data from shards, cyclic LR, overfitting, resume,
save/load, predictions, bad shards, CLI, and tf.distribute (mirrored, multi-worker)."""
import json
import os
import socket
import subprocess
import sys
import textwrap
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import h5py  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402

keras = pytest.importorskip("keras")

sys.path.insert(0, str(Path(__file__).parent))
from synthetic_shards import make_shard, write_mocks  # noqa: E402

from zoa_lib.config import load_profile  # noqa: E402
from zoa_lib.errors import ZoaError  # noqa: E402
from zoa_lib.methods.training import bench, fitting, inference, model_files, pipeline, schedule, strategy, transforms
from zoa_lib.methods.vnet import build_vnet  # noqa: E402
from zoa_lib.survey import shards
from zoa_lib.universe import (
    fields,  # noqa: E402
    symmetries,
)

TINY = {"model.depth": 2, "model.base_filters": 2, "model.convs_per_stage": 1, "training.epochs": 2,
        "training.batch_size": 2, "training.lr_half_cycle_epochs": 1.0, "training.wiener_channels": False}


def tiny_profile(**over):
    return load_profile("ci", {**TINY, **over})


# --------------------------------------------------------------------------- learning rate
def test_triangular_lr_matches_the_piecewise_linear_triangle():
    lo, hi, h = 1e-7, 1e-5, 10.0
    sched = schedule.TriangularCyclicLR(lo, hi, h)
    steps = np.array([0, 1, 2.5, 5, 9, 10, 11, 15, 19, 20, 25, 30, 40, 41])
    # the triangle through its corners (0, lo), (h, hi), (2h, lo), (3h, hi), ...
    corners = np.arange(0, 6) * h
    want = np.interp(steps, corners, [lo, hi, lo, hi, lo, hi])
    got = np.array([float(sched(s)) for s in steps])
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-12)
    assert float(sched(0)) == pytest.approx(lo) and float(sched(10)) == pytest.approx(hi)
    assert float(sched(20)) == pytest.approx(lo)
    np.testing.assert_allclose(schedule.triangular_lr(steps, lo, hi, h), want, rtol=1e-12)
    clone = keras.optimizers.schedules.deserialize(keras.optimizers.schedules.serialize(sched))
    assert type(clone).__name__ == "TriangularCyclicLR" and float(clone(15)) == pytest.approx(float(sched(15)))
    with pytest.raises(ZoaError):
        schedule.TriangularCyclicLR(1e-3, 1e-5, 10)


# --------------------------------------------------------------------------- transforms
def test_transforms_are_invertible_and_use_the_profile(zoa_data):
    p = tiny_profile()
    t_phi = transforms.Transforms.from_profile(p, "phi")
    assert t_phi.phi_scale == pytest.approx(fields.phi_target_scale(p))
    assert t_phi.units == "(km/s)^2"
    rng = np.random.default_rng(0)
    x = np.stack([rng.poisson(2.0, (4, 4, 4)), rng.normal(0, 400, (4, 4, 4))], -1).astype(np.float32)
    u = t_phi.normalise_inputs(x)
    np.testing.assert_allclose(u[..., 0], np.log1p(x[..., 0]) / p.training.n_gal_scale, rtol=1e-6)
    np.testing.assert_allclose(u[..., 1], x[..., 1] / p.training.v_pec_scale, rtol=1e-6)
    np.testing.assert_allclose(t_phi.denormalise_inputs(u), x, rtol=1e-5, atol=1e-3)
    phi = rng.normal(0, 1e5, (4, 4, 4)).astype(np.float32) + 3e5
    # φ's constant over the cube is not observable: the target (and so the prediction) has none
    assert p.training.phi_zero_mean and t_phi.phi_zero_mean
    assert abs(float(t_phi.encode_target(phi).mean())) < 1e-6
    np.testing.assert_allclose(t_phi.decode_target(t_phi.encode_target(phi)), phi - phi.mean(), rtol=1e-5, atol=1)
    t_keep = transforms.Transforms.from_profile(tiny_profile(**{"training.phi_zero_mean": False}), "phi")
    np.testing.assert_allclose(t_keep.decode_target(t_keep.encode_target(phi)), phi, rtol=1e-5)
    t_d = transforms.Transforms.from_profile(p, "delta")
    delta = rng.uniform(-0.95, 5, (4, 4, 4)).astype(np.float32)
    np.testing.assert_allclose(t_d.encode_target(delta), np.log(1 + delta), rtol=1e-5)
    np.testing.assert_allclose(t_d.decode_target(t_d.encode_target(delta)), delta, rtol=1e-4, atol=1e-6)
    assert transforms.Transforms.from_dict(json.loads(json.dumps(t_phi.to_dict()))) == t_phi
    with pytest.raises(ZoaError):
        transforms.Transforms.from_profile(p, "velocity")


# --------------------------------------------------------------------------- cube symmetries
def _rotate_by_matrix(f, R):
    """f'(x) = f(Rᵀ x) by index arithmetic on voxel centres (observer at the centre)."""
    N = f.shape[0]
    c = np.arange(N) - (N - 1) / 2.0
    X = np.stack(np.meshgrid(c, c, c, indexing="ij"), -1)  # (N,N,N,3) centred coordinates
    src = X @ R  # row vector x -> (R^T x)^T = x^T R
    idx = np.rint(src + (N - 1) / 2.0).astype(int)
    return f[idx[..., 0], idx[..., 1], idx[..., 2]]


def test_cube_symmetries_are_the_48_signed_permutations_and_rotate_fields():
    mats = [symmetries.symmetry_matrix(i) for i in range(48)]
    dets = [round(np.linalg.det(m)) for m in mats]
    assert dets[:24] == [1] * 24 and dets[24:] == [-1] * 24
    assert len({m.tobytes() for m in mats}) == 48
    assert np.array_equal(mats[0], np.eye(3))
    f = np.random.default_rng(1).normal(size=(6, 6, 6)).astype(np.float32)
    outs = set()
    for i, R in enumerate(mats):
        assert np.array_equal(R @ R.T, np.eye(3))
        g = symmetries.rotate_cube(f, i)
        np.testing.assert_array_equal(g, _rotate_by_matrix(f, R))
        outs.add(np.ascontiguousarray(g).tobytes())
    assert len(outs) == 48  # the rotated cubes are all distinct


def test_dataset_rotates_inputs_and_target_together(tmp_path):
    p = tiny_profile()
    paths = write_mocks(tmp_path, grid=16, splits=(("train", 2, 3),))["train"]
    shards = pipeline.scan_shards(paths, 16)
    tf_ = transforms.Transforms.from_profile(p, "delta")
    ds = pipeline.make_dataset(shards, "delta", tf_, batch_size=1, shuffle=True, augment=True, seed=7, epochs=2)
    plan = [pipeline.epoch_plan(shards, e, 7, 6, True, 24) for e in range(2)]
    f, r, s = (np.concatenate(c) for c in zip(*plan))
    assert len(set(s)) > 4 and sorted(np.unique(f * 10 + r)) == [0, 1, 2, 10, 11, 12]
    n = 0
    for k, (x, y) in enumerate(ds.as_numpy_iterator()):
        with h5py.File(paths[f[k]], "r") as h:
            raw_x, raw_t = h["inputs"][r[k]], h["targets/delta"][r[k]]
        R = symmetries.symmetry_matrix(s[k])
        want_x = np.stack([_rotate_by_matrix(tf_.normalise_inputs(raw_x)[..., c], R) for c in range(2)], -1)
        np.testing.assert_allclose(x[0], want_x, rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(y[0, ..., 0], _rotate_by_matrix(tf_.encode_target(raw_t), R),
                                   rtol=1e-5, atol=1e-6)
        n += 1
    assert n == 12


@pytest.mark.parametrize("kw", [dict(target="phi", phi_scale=2.5e5, n_gal_scale=2.0, v_pec_scale=300.0),
                                dict(target="delta", delta_transform="identity")])
def test_in_memory_mocks_equal_the_shard_reader(tmp_path, kw):
    paths = write_mocks(tmp_path, grid=8, splits=(("train", 1, 2),))["train"]
    tf_ = transforms.Transforms(**kw)
    reader = pipeline.ShardReader(pipeline.scan_shards(paths, 8), tf_.target, tf_)
    memory = pipeline.MemoryMocks(reader)
    for sym in (0, 7, 23, 31, 47):
        for got, want in zip(memory(0, 1, sym), reader(0, 1, sym)):
            np.testing.assert_array_equal(got, want)
    with h5py.File(paths[0], "r") as f:  # the direct (pread) read gives the HDF5 bytes
        np.testing.assert_array_equal(reader.read(0, 1)[0], f["inputs"][1])
        np.testing.assert_array_equal(reader.read(0, 1)[1], f["targets/" + tf_.target][1])
        assert reader._open((0, "shard"))[2], "shards of zoa_lib.survey.shards are read directly"
        packed = tmp_path / "packed.h5"  # a compressed copy is read through h5py
        with h5py.File(packed, "w") as g:
            for name in ("inputs", "targets/delta", "targets/phi", "targets/velocity"):
                g.create_dataset(name, data=f[name][()], compression="gzip", chunks=f[name].chunks)
    reader.close()
    other = pipeline.ShardReader(pipeline.scan_shards([packed], 8), tf_.target, tf_)
    assert not other._open((0, "shard"))[2]
    np.testing.assert_array_equal(other.read(0, 1)[0], pipeline.ShardReader(
        pipeline.scan_shards(paths, 8), tf_.target, tf_).read(0, 1)[0])
    other.close()


def test_dataset_slices_global_batches_per_worker(tmp_path):
    paths = write_mocks(tmp_path, grid=8, splits=(("train", 2, 4),))["train"]
    tf_ = transforms.Transforms(target="phi", phi_scale=1e5)
    kw = dict(batch_size=4, shuffle=True, augment=False, seed=3, epochs=1, grid=8)
    whole = [y for _, y in pipeline.make_dataset(paths, "phi", tf_, **kw).as_numpy_iterator()]
    parts = [[y for _, y in pipeline.make_dataset(paths, "phi", tf_, num_pipelines=2, pipeline_id=i,
                                                  per_replica_batch=1, **kw).as_numpy_iterator()]
             for i in range(2)]
    assert len(whole) == 2 and all(len(pp) == 4 for pp in parts)  # 2 steps x 2 replica batches
    for step in range(2):
        got = np.concatenate(parts[0][2 * step:2 * step + 2] + parts[1][2 * step:2 * step + 2])
        np.testing.assert_array_equal(got, whole[step])
    # held in memory: the same batches, byte for byte
    kw["augment"] = True
    streamed = list(pipeline.make_dataset(paths, "phi", tf_, **kw).as_numpy_iterator())
    held = list(pipeline.make_dataset(paths, "phi", tf_, in_memory=True, **kw).as_numpy_iterator())
    assert len(held) == len(streamed) == 2
    for (xa, ya), (xb, yb) in zip(streamed, held):
        np.testing.assert_array_equal(xa, xb)
        np.testing.assert_array_equal(ya, yb)


def test_validation_is_one_pass_with_the_same_batches_held_or_streamed(tmp_path):
    """Validation (``epochs=None, repeat=False``) ends after its plan (Keras makes a fresh
    iterator each epoch) and gives the streamed batches exactly, also when held in memory as
    tensors, for every worker's slice; ``repeat=True`` repeats the plan."""
    paths = write_mocks(tmp_path, grid=8, splits=(("val", 2, 3),))["val"]
    tf_ = transforms.Transforms(target="phi", phi_scale=1e5)
    kw = dict(batch_size=2, shuffle=False, augment=False, seed=3, steps_per_epoch=4, grid=8)
    for part in ({}, {"num_pipelines": 2, "pipeline_id": 1, "per_replica_batch": 1}):
        streamed = list(pipeline.make_dataset(paths, "phi", tf_, repeat=False, **part, **kw).as_numpy_iterator())
        held = list(pipeline.make_dataset(paths, "phi", tf_, repeat=False, in_memory=True, **part,
                                          **kw).as_numpy_iterator())
        assert len(streamed) == len(held) == 4
        for (xa, ya), (xb, yb) in zip(streamed, held):
            np.testing.assert_array_equal(xa, xb)
            np.testing.assert_array_equal(ya, yb)
    # 6 mocks, 4 steps of 2: the plan wraps around to the first mocks
    first = list(pipeline.make_dataset(paths, "phi", tf_, repeat=False, in_memory=True, **kw).as_numpy_iterator())
    np.testing.assert_array_equal(first[3][1], first[0][1])
    endless = pipeline.make_dataset(paths, "phi", tf_, **kw).take(9)
    assert len(list(endless.as_numpy_iterator())) == 9


# --------------------------------------------------------------------------- learning
def test_network_overfits_two_samples():
    keras.utils.set_random_seed(0)
    p = tiny_profile(**{"model.base_filters": 4})
    sh = make_shard(16, 2, seed=5)
    tf_ = transforms.Transforms.from_profile(p, "delta")
    x, y = tf_.normalise_inputs(sh.inputs), tf_.encode_target(sh.targets["delta"])[..., None]
    model = build_vnet(p.model, 16)
    model.compile(optimizer=keras.optimizers.Adam(1e-2), loss="mse")
    first = float(model.evaluate(x, y, verbose=0))
    for _ in range(80):
        model.train_on_batch(x, y)
    last = float(model.evaluate(x, y, verbose=0))
    assert last < first / 10, (first, last)


class _Stop(Exception):
    pass


class _KillAfter(keras.callbacks.Callback):
    def __init__(self, epochs):
        super().__init__()
        self.epochs = epochs

    def on_epoch_end(self, epoch, logs=None):
        if epoch + 1 == self.epochs:
            raise _Stop(f"killed after {self.epochs} epochs")


def _weights(path):
    model, _ = model_files.load_model_file(path)
    return [np.asarray(w) for w in model.get_weights()]


def test_interrupted_run_resumes_to_the_same_model(tmp_path, monkeypatch):
    p = tiny_profile(**{"training.epochs": 3})
    folders = {}
    for name in ("straight", "killed"):
        d = tmp_path / name
        monkeypatch.setenv("ZOA_DATA", str(d))
        write_mocks(shards.mocks_dir(p), grid=16)
        folders[name] = model_files.model_dir(p, "delta")
        if name == "straight":
            res = fitting.train(p, "delta", progress=False)
            assert res.epochs_done == 3 and res.start_epoch == 0
        else:
            with pytest.raises(_Stop):
                fitting.train(p, "delta", progress=False, callbacks=[_KillAfter(2)])
            assert (folders[name] / "backup").is_dir()
            assert model_files.read_model_metadata(folders[name] / "model.keras")["meta"]["epochs_done"] == 2
            res = fitting.train(p, "delta", resume=True, progress=False)
            assert res.start_epoch == 2 and res.epochs_done == 3
            assert not (folders[name] / "backup").exists()
    hist = {k: np.genfromtxt(f / "history.csv", delimiter=",", names=True) for k, f in folders.items()}
    for h in hist.values():
        assert list(h["epoch"]) == [0, 1, 2] and set(h.dtype.names) >= {"loss", "val_loss", "learning_rate"}
        assert np.all(h["seconds"] > 0)  # each epoch's wall time, training and validation
    np.testing.assert_allclose(hist["killed"]["loss"], hist["straight"]["loss"], rtol=1e-4)
    for name in ("model.keras", "best.keras"):
        a, b = _weights(folders["straight"] / name), _weights(folders["killed"] / name)
        assert len(a) == len(b)
        for wa, wb in zip(a, b):
            np.testing.assert_allclose(wa, wb, rtol=1e-4, atol=1e-6)
    meta = model_files.read_model_metadata(folders["killed"] / "model.keras")["meta"]
    assert meta["epochs_done"] == 3
    # resuming a finished run does nothing; raising the epochs continues it
    again = fitting.train(p, "delta", resume=True, progress=False)
    assert again.epochs_done == 3 and again.history == {}
    more = fitting.train(tiny_profile(**{"training.epochs": 4}), "delta", resume=True, progress=False)
    assert more.start_epoch == 3 and more.epochs_done == 4
    assert list(np.genfromtxt(folders["killed"] / "history.csv", delimiter=",", names=True)["epoch"]) == [0, 1, 2, 3]


def test_save_load_round_trip_keeps_predictions_and_transforms(tmp_path):
    p = tiny_profile()
    model = fitting.build_and_compile(p, steps_per_epoch=3)
    tf_ = transforms.Transforms.from_profile(p, "phi")
    x = make_shard(16, 2, seed=2).inputs
    before = inference.predict_array(model, tf_, x)
    path = model_files.save_model(model, tmp_path / "m.keras", tf_, p, epochs_done=5)
    assert [q.name for q in tmp_path.iterdir()] == ["m.keras"]  # no temporary left
    loaded, tf2 = model_files.load_model_file(path, compile=True)
    assert tf2 == tf_
    np.testing.assert_array_equal(inference.predict_array(loaded, tf2, x), before)
    # batch 1 instead of 2: oneDNN may pick another convolution algorithm (last-bit differences)
    np.testing.assert_allclose(inference.predict_array(loaded, tf2, x[0]), before[0], rtol=1e-5,
                               atol=1e-5 * np.abs(before).max())
    sched = loaded.optimizer.learning_rate
    assert model_files.read_model_metadata(path)["meta"]["epochs_done"] == 5
    assert type(loaded.optimizer._learning_rate).__name__ == "TriangularCyclicLR"
    assert float(np.asarray(sched)) == pytest.approx(p.training.lr_min)
    # physical units: the prediction is the inverse transform of the network output
    raw = np.asarray(model.predict_on_batch(tf_.normalise_inputs(x)))[..., 0]
    np.testing.assert_allclose(before, raw * tf_.phi_scale, rtol=1e-5)
    with pytest.raises(ZoaError, match="expects"):
        inference.predict_array(loaded, tf2, x[:, :8, :8, :8])
    bad = tmp_path / "plain.keras"
    model.save(bad)
    with pytest.raises(ZoaError, match="not a zoa model"):
        model_files.load_model_file(bad)


def test_cli_train_and_predict_write_physical_units(zoa_data, capsys):
    from zoa_lib.cli import main

    p = tiny_profile()
    write_mocks(shards.mocks_dir(p), grid=16)
    args = ["--profile", "ci"] + [a for k, v in TINY.items() for a in ("-p", f"{k}={v}")]
    assert main(["train", "--target", "phi", "--no-progress"] + args + ["-p", "training.epochs=1"]) == 0
    out = capsys.readouterr().out
    n_params = build_vnet(p.model, 16).count_params()
    assert f"{n_params:,} parameters" in out
    assert main(["predict", "--target", "phi", "--split", "test", "--no-progress"] + args) == 0
    path = zoa_data / "ci" / "predictions" / "phi-test.h5"
    assert path.exists() and str(path) in capsys.readouterr().out
    test_shards = shards.shard_paths(shards.mocks_dir(p), "test")
    s = shards.read_shard(test_shards[0])
    model, tf_ = model_files.load_model(p, "phi")
    with h5py.File(path, "r") as f:
        assert f.attrs["target"] == "phi" and f.attrs["units"] == "(km/s)^2"
        assert f["prediction"].shape == (2, 16, 16, 16) and f["velocity_true"].shape == (2, 16, 16, 16, 3)
        np.testing.assert_array_equal(f["truth"][()], s.targets["phi"])
        np.testing.assert_array_equal(f["inputs"][()], s.inputs)
        np.testing.assert_array_equal(f["velocity_true"][()], s.targets["velocity"])
        np.testing.assert_array_equal(f["samples"][()], s.samples)
        np.testing.assert_allclose(f["prediction"][()], inference.predict_array(model, tf_, s.inputs), rtol=1e-6)
        assert json.loads(f.attrs["transforms"])["phi_scale"] == pytest.approx(fields.phi_target_scale(p))
    with pytest.raises(SystemExit):
        main(["train", "--help"])
    assert "--resume" in capsys.readouterr().out


def test_ensure_predictions_is_the_one_rule_predict_when_missing_or_older_than_the_model(zoa_data):
    import os

    from zoa_lib.analysis import evaluation

    p = tiny_profile(**{"training.epochs": 1})
    write_mocks(shards.mocks_dir(p), grid=16)
    path = inference.predictions_path(p, "phi")
    # no model: nothing trained, nothing predicted
    assert evaluation.ensure_predictions(p, targets=("phi",)) == {"vnet_phi": False} and not path.exists()
    assert evaluation.ensure_predictions(p, targets=("phi",), train=True) == {"vnet_phi": True} and path.exists()
    before = path.stat().st_mtime_ns
    assert evaluation.ensure_predictions(p, targets=("phi",)) == {"vnet_phi": True}
    assert path.stat().st_mtime_ns == before                       # current: not predicted again
    model = model_files.matching_model(p, "phi")
    t = path.stat().st_mtime + 10
    os.utime(model, (t, t))                                        # a newer model: predict again
    evaluation.ensure_predictions(p, targets=("phi",))
    assert path.stat().st_mtime_ns != before
    # the paper's set-up: its own model and predictions, the profile's left as they are
    from zoa_lib.methods import networks

    before = path.stat().st_mtime_ns
    got = evaluation.ensure_predictions(p, targets=("phi",), train=True, nets=("vnet_paper",))
    paper = networks.network_profile(p, "vnet_paper")
    assert got == {"vnet_paper_phi": True} and inference.predictions_path(paper, "phi").exists()
    assert model_files.matching_model(paper, "phi").parent == p.data_path / "models" / "vnet_paper" / "phi"
    assert path.stat().st_mtime_ns == before


# --------------------------------------------------------------------------- bad input
def _break(kind, path):
    if kind == "missing":
        with h5py.File(path, "a") as f:
            del f["targets/phi"]
    elif kind == "truncated":
        size = path.stat().st_size
        with open(path, "r+b") as f:
            f.truncate(size // 2)
    elif kind == "shape":
        shards.write_shard(path, make_shard(8, 4, seed=1))


@pytest.mark.parametrize("kind,message", [("missing", "missing dataset 'targets/phi'"),
                                          ("truncated", "truncated|not a readable"),
                                          ("shape", "grid is 8\\^3 but the profile expects 16\\^3")])
def test_bad_shards_fail_before_training(zoa_data, kind, message):
    p = tiny_profile()
    paths = write_mocks(shards.mocks_dir(p), grid=16)
    bad = paths["train"][1]
    _break(kind, bad)
    with pytest.raises(ZoaError, match=message) as e:
        fitting.train(p, "delta", progress=False)
    assert str(bad) in str(e.value)
    assert not (zoa_data / "ci" / "models").exists()


def test_missing_mocks_and_bad_strategy_are_clear_errors(zoa_data, monkeypatch):
    p = tiny_profile()
    with pytest.raises(ZoaError, match="no training shards"):
        fitting.train(p, "delta", progress=False, strategy="default")
    with pytest.raises(ZoaError, match="strategy must be one of"):
        strategy.get_strategy("horovod")
    monkeypatch.delenv("TF_CONFIG", raising=False)
    monkeypatch.delenv("SLURM_JOB_ID", raising=False)
    with pytest.raises(ZoaError, match="no cluster"):
        strategy.get_strategy("multiworker")
    with pytest.raises(ZoaError, match="no trained delta model"):
        model_files.load_model(p, "delta")


# --------------------------------------------------------------------------- distribution
def _run_python(code, env, timeout=300):
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], env=env, capture_output=True,
                          text=True, timeout=timeout)


def test_mirrored_two_cpus_gives_the_first_step_loss_of_one_device(tmp_path):
    env = dict(os.environ, ZOA_DATA=str(tmp_path), TF_CPP_MIN_LOG_LEVEL="2")
    p = tiny_profile()
    write_mocks(tmp_path / "ci" / "mocks", grid=16, splits=(("train", 1, 2),))
    assert shards.mocks_dir(p) != tmp_path  # the subprocess gets ZOA_DATA
    code = f"""
        import json
        import tensorflow as tf
        cpu = tf.config.list_physical_devices("CPU")[0]
        tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
        from zoa_lib.methods.training import fitting
        from zoa_lib.methods.training.strategy import get_strategy
        from zoa_lib.config import load_profile
        over = {TINY!r}
        over.update({{"training.epochs": 1, "training.augment": False}})
        one = fitting.train(load_profile("ci", {{**over, "training.batch_size": 2}}), "delta",
                             strategy="default", progress=False)
        two = fitting.train(load_profile("ci", {{**over, "training.batch_size": 1}}), "delta",
                             strategy=get_strategy("mirrored", ["/cpu:0", "/cpu:1"]), progress=False)
        print("RESULT", json.dumps({{"one": one.history, "two": two.history, "replicas": two.replicas,
                                    "batch": [one.global_batch, two.global_batch],
                                    "steps": [one.steps_per_epoch, two.steps_per_epoch]}}))
    """
    r = _run_python(code, env)
    assert r.returncode == 0, r.stderr[-3000:]
    res = json.loads(r.stdout.split("RESULT", 1)[1])
    assert res["replicas"] == 2 and res["batch"] == [2, 2] and res["steps"] == [1, 1]
    assert res["two"]["loss"][0] == pytest.approx(res["one"]["loss"][0], rel=1e-5)


def test_mirrored_training_reads_the_wiener_channels(tmp_path):
    """Under a distribution strategy each worker's dataset keeps the Wiener-filter channel files
    and the in-memory set (they were dropped once, and the run refused to start)."""
    env = dict(os.environ, ZOA_DATA=str(tmp_path), TF_CPP_MIN_LOG_LEVEL="2")
    write_mocks(tmp_path / "ci" / "mocks", grid=16, splits=(("train", 1, 2), ("val", 1, 2)))
    code = f"""
        import json
        import tensorflow as tf
        cpu = tf.config.list_physical_devices("CPU")[0]
        tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
        from zoa_lib.methods.training import fitting
        from zoa_lib.methods.training.strategy import get_strategy
        from zoa_lib.config import load_profile
        over = {TINY!r}
        over.update({{"training.epochs": 1, "training.augment": False, "training.wiener_channels": True,
                      "training.batch_size": 2}})
        if __name__ == "__main__":
            res = fitting.train(load_profile("ci", over), "delta",
                                strategy=get_strategy("mirrored", ["/cpu:0", "/cpu:1"]), progress=False)
            print("RESULT", json.dumps({{"replicas": res.replicas, "history": res.history}}))
    """
    r = _run_python(code, env)
    assert r.returncode == 0, r.stderr[-3000:]
    res = json.loads(r.stdout.split("RESULT", 1)[1])
    assert res["replicas"] == 2
    assert np.isfinite(res["history"]["loss"][0]) and np.isfinite(res["history"]["val_loss"][0])


def _free_ports(n):
    socks = [socket.socket() for _ in range(n)]
    for s in socks:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in socks]
    for s in socks:
        s.close()
    return ports


@pytest.mark.slow
def test_two_worker_multiworker_run_completes_an_epoch(tmp_path):
    write_mocks(tmp_path / "ci" / "mocks", grid=16, splits=(("train", 2, 2), ("val", 1, 2)))
    ports = _free_ports(2)
    cluster = {"worker": [f"127.0.0.1:{q}" for q in ports]}
    code = f"""
        import json
        from zoa_lib.methods.training import fitting, strategy as strategies
        from zoa_lib.config import load_profile
        strategy = strategies.get_strategy("multiworker")
        over = {TINY!r}
        over.update({{"training.epochs": 1, "training.batch_size": 1}})
        res = fitting.train(load_profile("ci", over), "delta", strategy=strategy, progress=False)
        print("RESULT", json.dumps({{"replicas": res.replicas, "loss": res.history["loss"],
                                    "batch": res.global_batch, "steps": res.steps_per_epoch}}))
    """
    procs = []
    for i in range(2):
        env = dict(os.environ, ZOA_DATA=str(tmp_path), TF_CPP_MIN_LOG_LEVEL="2",
                   TF_CONFIG=json.dumps({"cluster": cluster, "task": {"type": "worker", "index": i}}))
        procs.append(subprocess.Popen([sys.executable, "-c", textwrap.dedent(code)], env=env,
                                      stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))
    outs = []
    try:
        for pr in procs:
            out, err = pr.communicate(timeout=300)
            assert pr.returncode == 0, err[-3000:]
            outs.append(json.loads(out.split("RESULT", 1)[1]))
    finally:
        for pr in procs:
            if pr.poll() is None:
                pr.kill()
                pr.wait()
    assert all(o["replicas"] == 2 and o["batch"] == 2 and o["steps"] == 2 for o in outs)
    assert outs[0]["loss"][0] == pytest.approx(outs[1]["loss"][0], rel=1e-5)
    # the same global batches on one device give the same epoch (2 steps, weights updated between)
    single = tmp_path / "single"
    write_mocks(single / "ci" / "mocks", grid=16, splits=(("train", 2, 2), ("val", 1, 2)))
    one = code.replace('get_strategy("multiworker")', 'get_strategy("default")').replace(
        '"training.batch_size": 1', '"training.batch_size": 2')
    r = _run_python(one, dict(os.environ, ZOA_DATA=str(single), TF_CPP_MIN_LOG_LEVEL="2"))
    assert r.returncode == 0, r.stderr[-3000:]
    ref = json.loads(r.stdout.split("RESULT", 1)[1])
    assert ref["replicas"] == 1 and ref["batch"] == 2 and ref["steps"] == 2
    assert outs[0]["loss"][0] == pytest.approx(ref["loss"][0], rel=1e-4)
    folder = tmp_path / "ci" / "models" / "delta"
    assert model_files.read_model_metadata(folder / "model.keras")["meta"]["epochs_done"] == 1
    assert sorted(q.name for q in folder.iterdir()) == ["best.keras", "history.csv", "model.keras"]


def test_ensure_trained_reuses_only_a_matching_model(tmp_path, monkeypatch):
    """A model trained for the profile is reused; another setting (epochs) retrains."""
    import shutil

    from zoa_lib.config import load_profile
    from zoa_lib.methods.training import fitting

    monkeypatch.setenv("ZOA_DATA", str(tmp_path))
    prof = load_profile("ci", {"training.epochs": 1, "training.wiener_channels": False})
    folder = model_files.model_dir(prof, "delta")
    assert model_files.matching_model(prof, "delta") is None
    calls = []
    monkeypatch.setattr(fitting, "train", lambda p, t, resume, progress: calls.append(p) or
                        _fake_result(p, t, folder))
    first = fitting.ensure_trained(prof, "delta")
    assert not first["reused"] and len(calls) == 1
    again = fitting.ensure_trained(prof, "delta")
    assert again["reused"] and len(calls) == 1
    other = load_profile("ci", {"training.epochs": 2, "training.wiener_channels": False})
    assert model_files.matching_model(other, "delta") is None
    shutil.rmtree(folder)


def test_a_model_trained_before_a_key_was_added_or_after_one_was_removed_still_matches():
    """matching_model's sections: a key added since (its default) and a removed, never-read key
    (training.shuffle_buffer) do not make a model stale; a changed setting does."""
    from zoa_lib.methods.training.model_files import _section

    prof = tiny_profile()
    want = prof.to_dict()["training"]
    assert want["in_memory_gib"] == 4.0  # the default, so a model trained before the key matches
    old = {k: v for k, v in want.items() if k != "in_memory_gib"}
    old["shuffle_buffer"] = 64
    assert _section({"training": old}, "training", prof) == want
    assert _section({"training": {**old, "epochs": 99}}, "training", prof) != want


def _fake_result(prof, target, folder):
    """Save a real (tiny) model as `train` would, with its metadata."""
    from zoa_lib.methods.training.fitting import TrainResult
    from zoa_lib.methods.training.model_files import save_model
    from zoa_lib.methods.training.transforms import Transforms
    from zoa_lib.methods.vnet import build_vnet

    model = build_vnet(prof.model, prof.box.grid)
    tr = Transforms.from_profile(prof, target)
    path = save_model(model, folder / "model.keras", tr, prof, epochs_done=prof.training.epochs,
                               parameters=model.count_params(), target=target)
    return TrainResult(target=target, folder=folder, model_path=path, best_path=path,
                       history_path=folder / "history.csv", epochs_done=prof.training.epochs,
                       start_epoch=0, parameters=model.count_params(), seconds=0.0, strategy="default",
                       replicas=1, global_batch=prof.training.batch_size, steps_per_epoch=1)


def test_benchmark_numbers_agree_with_the_model_and_each_other():
    """The benchmark's counts are the model's, and its estimates follow from its measurements."""
    from zoa_lib.methods.vnet import activation_bytes

    p = tiny_profile()
    out = bench.benchmark(p, seconds=0.2)
    assert out["parameters"] == build_vnet(p.model, 16).count_params()
    assert out["estimated_step_memory_mib_per_sample"] == round(activation_bytes(p.model, 16, 1) / 2 ** 20, 1)
    b = out["benchmark_batch"]
    assert b == 2 and out["gpu"] is False and out["in_memory"] is True
    timed = out["timed_epoch"]
    steps = timed["train_samples"] // b
    assert timed["train_samples"] == steps * b and steps >= 4 and timed["val_samples"] == max(1, steps // 6) * b
    per_epoch = ((p.mocks.n_train // b) * b * out["fit_seconds_per_sample"]
                 + p.mocks.n_val * out["inference_seconds_per_sample"])
    assert out["seconds_per_epoch"] == pytest.approx(per_epoch, rel=0.05, abs=0.1)
    assert out["estimated_training_minutes"] == pytest.approx(out["seconds_per_epoch"] * p.training.epochs / 60,
                                                              rel=0.01, abs=0.01)
    assert out["data_over_fit_rate"] == pytest.approx(out["data_samples_per_second"] * out["fit_seconds_per_sample"],
                                                      rel=0.05, abs=0.1)
    # with the Wiener channels: the 4-channel corrector, streamed from the shards
    w = bench.benchmark(tiny_profile(**{"training.wiener_channels": True, "training.in_memory_gib": 0}),
                           seconds=0.2)
    assert w["wiener_channels"] and not w["in_memory"]
    assert w["parameters"] > out["parameters"]  # two more input channels


def test_mixed_precision_model_keeps_float32_output_and_round_trips(tmp_path):
    p = tiny_profile(**{"box.grid": 8, "model.depth": 1})
    model = fitting.build_and_compile(p, steps_per_epoch=2, mixed_precision=True)
    assert keras.mixed_precision.global_policy().name == "float32"  # not leaked
    assert model.get_layer("enc0_conv0").compute_dtype == "float16"
    assert model.get_layer("head").compute_dtype == "float32" and model.output.dtype == "float32"
    assert type(model.optimizer).__name__ == "LossScaleOptimizer"
    x = make_shard(8, 2, seed=4).inputs
    tf_ = transforms.Transforms.from_profile(p, "delta")
    model.train_on_batch(tf_.normalise_inputs(x), np.zeros((2, 8, 8, 8, 1), np.float32))
    before = inference.predict_array(model, tf_, x)
    loaded, _ = model_files.load_model_file(model_files.save_model(model, tmp_path / "mp.keras", tf_, p))
    assert loaded.get_layer("enc0_conv0").compute_dtype == "float16"
    np.testing.assert_array_equal(inference.predict_array(loaded, tf_, x), before)
