"""Reliability: ``kill -9`` at chosen steps then rerun (``zoa train``,
``zoa evaluate``, ``zoa run``; ``zoa mocks`` is in test_mocks.py), byte-identical clean runs,
bit-identical deterministic training, and read-only / full output folders.

Every command runs as a real subprocess (``python -m zoa_lib.cli``) on one set of ci mocks
made once for the module. ``zoa train`` and ``zoa evaluate`` kill themselves (SIGKILL) at a
named step (``ZOA_TEST_STOP_AT``, :func:`zoa_lib.io.crash_points.stop_point`: before or after the rename of
an atomic write, after a training batch), so the kill points hold on a loaded machine; the
chapter is killed from outside, within a second of papermill's first write.
Runs set ``SOURCE_DATE_EPOCH`` (the provenance ``created_utc``) so that files can be compared
byte for byte; :func:`test_clean_runs_without_source_date_epoch_differ_only_in_created_utc`
shows that this timestamp is the only difference otherwise.
"""
from __future__ import annotations

import errno
import io
import json
import math
import os
import re
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import zipfile
from pathlib import Path

import h5py
import numpy as np
import pytest

from zoa_lib import errors
from zoa_lib.io import atomic as zio
from zoa_lib.io import provenance
from zoa_lib.io.atomic import TMP_PREFIX, OutputError, atomic_path, write_json_atomic
from zoa_lib.methods.training import fitting, model_files
from zoa_lib.survey.shards import content_checksum, read_manifest

ZOA = [sys.executable, "-m", "zoa_lib.cli"]
EPOCH = "1762128000"  # SOURCE_DATE_EPOCH of the runs compared byte for byte
#: the one field that differs between two clean runs without SOURCE_DATE_EPOCH
VARYING = ("created_utc",)
#: small training: 4 epochs of the ci network (about 1-2 s each after a few s of tracing)
TRAIN = ["--profile", "ci", "--target", "delta", "-p", "training.epochs=4"]
EVALUATE = ["evaluate", "--profile", "ci", "--methods", "wiener,potent", "--no-progress"]


def zoa_env(data: Path, epoch: str | None = EPOCH, **extra) -> dict:
    env = dict(os.environ, ZOA_DATA=str(data), TF_CPP_MIN_LOG_LEVEL="3", MPLBACKEND="Agg",
               PYTHONUNBUFFERED="1", **extra)
    env.pop("SOURCE_DATE_EPOCH", None)
    if epoch is not None:
        env["SOURCE_DATE_EPOCH"] = epoch
    return env


def zoa(args, env, timeout=300, **kw) -> subprocess.CompletedProcess:
    return subprocess.run(ZOA + list(args), env=env, capture_output=True, text=True, timeout=timeout, **kw)


def ok(out: subprocess.CompletedProcess) -> subprocess.CompletedProcess:
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    return out


def temporaries(root: Path) -> list[Path]:
    return sorted(Path(root).rglob(TMP_PREFIX + "*"))


def files(root: Path) -> dict[str, bytes]:
    """Every file under ``root`` (relative path -> bytes), except the empty lock file."""
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(Path(root).rglob("*"))
            if p.is_file() and p.name != ".manifest.lock"}


def _descendants(pid: int) -> list[int]:
    """Processes below ``pid`` (from /proc), e.g. the Jupyter kernel papermill starts in its
    own session, which killing the process group would miss."""
    parent = {}
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            try:
                stat = (d / "stat").read_text()
                parent[int(d.name)] = int(stat.rsplit(")", 1)[1].split()[1])
            except (OSError, ValueError, IndexError):
                pass
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        kids = [c for c, pp in parent.items() if pp == p]
        out += kids
        todo += kids
    return out


def _gone(pids, timeout=20.0):
    deadline = time.monotonic() + timeout
    for pid in pids:
        while time.monotonic() < deadline:
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                break
            except PermissionError:
                break
            time.sleep(0.05)


def run_and_kill(args, env, delay: float = math.inf, marker: str | None = None, ready=None,
                 timeout: float = 300):
    """Start ``zoa args``; ``delay`` seconds after ``marker`` appears in its output (or
    ``ready()`` turns true, or after the start) SIGKILL it and every process below it.
    Returns (killed, lines): ``lines`` are (seconds since the start, text). With the default
    ``delay`` it runs to the end (a timed, uninterrupted run)."""
    t0 = time.monotonic()
    proc = subprocess.Popen(ZOA + list(args), env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True, start_new_session=True)
    lines: list[tuple[float, str]] = []
    seen = threading.Event()

    def reader():
        for line in proc.stdout:
            lines.append((time.monotonic() - t0, line))
            if marker is not None and re.search(marker, line):
                seen.set()
        seen.set()

    t = threading.Thread(target=reader, daemon=True)
    t.start()
    if marker is None and ready is None:
        seen.set()
    while not seen.wait(0.005):
        if ready is not None and ready():
            break
        if time.monotonic() - t0 > timeout or proc.poll() is not None:
            break
    deadline = time.monotonic() + delay
    while proc.poll() is None and time.monotonic() < deadline and time.monotonic() - t0 < timeout:
        time.sleep(0.005)
    killed = proc.poll() is None
    if killed:
        victims = _descendants(proc.pid)
        os.killpg(proc.pid, signal.SIGKILL)
        for pid in victims:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        _gone(victims)
    proc.wait(timeout=60)
    t.join(10)
    if not killed:
        assert proc.returncode == 0, "".join(x for _, x in lines)[-3000:]
    return killed, lines


def text(lines) -> str:
    return "".join(x for _, x in lines)


def keras_weights(path: Path) -> dict[str, np.ndarray]:
    """Every array of a .keras file's weights (layers and optimizer), read without TensorFlow."""
    with zipfile.ZipFile(path) as z:
        assert z.testzip() is None
        raw = z.read("model.weights.h5")
    out = {}
    with h5py.File(io.BytesIO(raw), "r") as f:
        f.visititems(lambda name, obj: out.__setitem__(name, obj[()]) if isinstance(obj, h5py.Dataset) else None)
    return out


def zoa_meta(path: Path) -> dict:
    with zipfile.ZipFile(path) as z:
        return json.loads(z.read("zoa.json"))


def drop_varying(obj):
    """``obj`` without the keys of :data:`VARYING`, at any depth."""
    if isinstance(obj, dict):
        return {k: drop_varying(v) for k, v in obj.items() if k not in VARYING}
    if isinstance(obj, list):
        return [drop_varying(v) for v in obj]
    return obj


# --------------------------------------------------------------------------- the shared data
@pytest.fixture(scope="module")
def reference(tmp_path_factory) -> Path:
    """A clean ci run: ``zoa mocks`` and ``zoa evaluate --methods wiener,potent`` (data root)."""
    root = tmp_path_factory.mktemp("reference")
    env = zoa_env(root)
    ok(zoa(["mocks", "--profile", "ci", "--scheduler", "sync", "--no-progress"], env))
    ok(zoa(EVALUATE, env))
    return root


def copy_mocks(reference: Path, dest: Path) -> Path:
    shutil.copytree(reference / "ci" / "mocks", dest / "ci" / "mocks")
    return dest


# --------------------------------------------------------------------------- io unit tests
@pytest.mark.parametrize("code", [errno.ENOSPC, errno.EDQUOT, errno.EFBIG, errno.EACCES, errno.EROFS])
@pytest.mark.parametrize("style", ["oserror", "hdf5", "chained"])
def test_atomic_path_turns_space_and_permission_errors_into_one_line(tmp_path, code, style):
    target = tmp_path / "out.json"
    target.write_text("previous")
    if style == "oserror":
        exc = OSError(code, os.strerror(code))
    elif style == "hdf5":  # h5py: errno inside the message of the HDF5 error stack
        exc = OSError(None, f"Can't write data (file write failed: time = now\n, errno = {code}, "
                            f"error message = '{os.strerror(code)}')")
    else:  # e.g. a failing HDF5 close raising RuntimeError while the write error is handled
        try:
            try:
                raise OSError(code, os.strerror(code))
            except OSError:
                raise RuntimeError("Can't decrement id ref count")
        except RuntimeError as e:
            exc = e
    with pytest.raises(OutputError) as info:
        with atomic_path(target) as tmp:
            tmp.write_text("half a fi")
            raise exc
    msg = str(info.value)
    assert "\n" not in msg and str(target) in msg and errno.errorcode[code] in msg and ";" in msg
    assert info.value.errno == code
    assert target.read_text() == "previous" and sorted(p.name for p in tmp_path.iterdir()) == ["out.json"]
    # anything else is not a disk error: it passes through unchanged
    with pytest.raises(ValueError):
        with atomic_path(target) as tmp:
            tmp.write_text("x")
            raise ValueError("bug")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.json"]


def test_temporaries_of_dead_writers_are_removed_by_the_next_write(tmp_path):
    dead = subprocess.Popen(["true"])
    dead.wait()
    names = {
        "stale": f"{TMP_PREFIX}a.json.{zio.writer_tag(dead.pid)}.abcd1234.json",
        "stale_suffix": f"{TMP_PREFIX}epoch-00001.weights.h5.{zio.writer_tag(dead.pid)}.x_y12345.weights.h5",
        "live": f"{TMP_PREFIX}a.json.{zio.writer_tag()}.abcd1234.json",
        "other_machine": f"{TMP_PREFIX}a.json.00000000-{dead.pid}.abcd1234.json",
        "legacy": f"{TMP_PREFIX}a.json.abcd1234.json",
    }
    for n in names.values():
        (tmp_path / n).write_text("x")
    assert zio.stale_temporaries(tmp_path) == sorted(tmp_path / names[k] for k in ("stale", "stale_suffix"))
    write_json_atomic(tmp_path / "b.json", {"x": 1})
    left = {p.name for p in tmp_path.iterdir()}
    assert left == {"b.json", names["live"], names["other_machine"], names["legacy"]}


def test_source_date_epoch_fixes_created_utc(monkeypatch):
    monkeypatch.setenv("SOURCE_DATE_EPOCH", EPOCH)
    assert provenance.provenance()["created_utc"] == "2025-11-03T00:00:00+00:00"
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "yesterday")
    with pytest.raises(errors.ZoaError, match="SOURCE_DATE_EPOCH"):
        provenance.provenance()


# --------------------------------------------------------------------------- determinism
def test_two_clean_runs_write_identical_bytes(reference, tmp_path):
    """Mocks (every shard file, the manifest) and the classical baselines' evaluation JSON of
    a second clean ci run equal the first byte for byte (same SOURCE_DATE_EPOCH)."""
    env = zoa_env(tmp_path)
    ok(zoa(["mocks", "--profile", "ci", "--scheduler", "sync", "--no-progress"], env))
    ok(zoa(EVALUATE, env))
    a, b = files(reference), files(tmp_path)
    assert sorted(a) == sorted(b)
    assert {k for k in a if k.endswith(".h5")} == {f"ci/mocks/shard-000{i}.h5" for i in range(4)}
    assert {k for k in a if "evaluation" in k} >= {"ci/evaluation/wiener.json", "ci/evaluation/potent.json",
                                                   "ci/evaluation/comparison.json"}
    assert [k for k in a if a[k] != b[k]] == []
    man = read_manifest(tmp_path / "ci" / "mocks")
    assert {k: content_checksum(tmp_path / "ci" / "mocks" / k) for k in man["shards"]} == \
        {k: v["sha256"] for k, v in man["shards"].items()}


def test_clean_runs_without_source_date_epoch_differ_only_in_created_utc(reference, tmp_path):
    env = zoa_env(tmp_path, epoch=None)
    ok(zoa(["mocks", "--profile", "ci", "--scheduler", "sync", "--no-progress"], env))
    ok(zoa(EVALUATE, env))
    a, b = files(reference), files(tmp_path)
    assert sorted(a) == sorted(b)
    assert a["ci/mocks/manifest.json"] == b["ci/mocks/manifest.json"]
    for name in a:
        if name.endswith(".json"):
            ja, jb = json.loads(a[name]), json.loads(b[name])
            assert drop_varying(ja) == drop_varying(jb), name
            if "provenance" in ja:
                assert ja["provenance"]["created_utc"] != jb["provenance"]["created_utc"]
        elif name.endswith(".h5"):
            with h5py.File(reference / name, "r") as fa, h5py.File(tmp_path / name, "r") as fb:
                attrs_a, attrs_b = dict(fa.attrs), dict(fb.attrs)
                assert sorted(attrs_a) == sorted(attrs_b)
                assert [k for k in attrs_a if np.any(attrs_a[k] != attrs_b[k])] == ["created_utc"], name
            assert content_checksum(reference / name) == content_checksum(tmp_path / name)


@pytest.fixture
def op_determinism():
    """TensorFlow's op determinism is process-wide: switch it off again after the test."""
    from tensorflow.python.framework import config as tf_config

    before = tf_config.is_op_determinism_enabled()
    yield
    if not before:
        tf_config.disable_op_determinism()


def test_deterministic_training_gives_bit_identical_weights(tmp_path, monkeypatch, op_determinism):
    sys.path.insert(0, str(Path(__file__).parent))
    from synthetic_shards import write_mocks

    from zoa_lib.config import load_profile
    from zoa_lib.survey import shards

    tiny = {"model.depth": 2, "model.base_filters": 2, "model.convs_per_stage": 1, "training.epochs": 1,
            "training.batch_size": 2, "training.deterministic": True}
    weights = []
    for run in ("a", "b"):
        monkeypatch.setenv("ZOA_DATA", str(tmp_path / run))
        p = load_profile("ci", tiny)
        write_mocks(shards.mocks_dir(p), grid=16)
        fitting.train(p, "delta", progress=False)
        path = model_files.model_dir(p, "delta") / "model.keras"
        assert json.loads(zoa_meta(path)["provenance"]["parameters"])["training"]["deterministic"] is True
        weights.append(keras_weights(path))
    from tensorflow.python.framework import config as tf_config

    assert tf_config.is_op_determinism_enabled()
    a, b = weights
    assert sorted(a) == sorted(b) and any("optimizer" in k for k in a)
    assert [k for k in a if not np.array_equal(a[k], b[k])] == []


# --------------------------------------------------------------------------- kill -9, then rerun
def test_stop_point_kills_at_the_named_step_and_count(tmp_path):
    """``ZOA_TEST_STOP_AT=write:b.txt#2``: the process dies by SIGKILL at the second atomic
    write of b.txt, its temporary complete and not renamed; other steps pass untouched."""
    code = ("from zoa_lib.io.atomic import write_text_atomic as w\n"
            "import sys\n"
            "d = sys.argv[1]\n"
            "w(d + '/a.txt', 'a'); w(d + '/b.txt', 'one'); print('first', flush=True)\n"
            "w(d + '/b.txt', 'two'); print('second', flush=True)\n")
    for step, dies in (("write:b.txt#2", True), ("wrote:b.txt", True), ("write:c.txt", False)):
        folder = tmp_path / step.replace(":", "-").replace("#", "-")
        folder.mkdir()
        env = dict(os.environ, ZOA_TEST_STOP_AT=step)
        out = subprocess.run([sys.executable, "-c", code, str(folder)], env=env, capture_output=True, text=True,
                             timeout=120)
        assert (out.returncode == -signal.SIGKILL) == dies, (step, out.returncode, out.stderr[-1000:])
        if step == "write:b.txt#2":
            assert out.stdout == "first\n" and (folder / "b.txt").read_text() == "one"
            assert [p.read_text() for p in temporaries(folder)] == ["two"]
        elif step == "wrote:b.txt":
            assert out.stdout == "" and (folder / "b.txt").read_text() == "one" and temporaries(folder) == []
        else:
            assert out.stdout == "first\nsecond\n" and (folder / "b.txt").read_text() == "two"


def stopped(args, env, step: str) -> subprocess.CompletedProcess:
    """Run ``zoa args`` with ``ZOA_TEST_STOP_AT=step`` (:func:`zoa_lib.io.crash_points.stop_point`): it must
    die by SIGKILL at that step (a step it never reaches makes the test fail)."""
    out = zoa(args, {**env, "ZOA_TEST_STOP_AT": step})
    assert out.returncode == -signal.SIGKILL, (step, out.returncode, out.stdout[-1500:] + out.stderr[-1500:])
    return out


#: where ``zoa evaluate --methods wiener,potent`` dies, in the order of its writes (a temporary
#: complete but not renamed, just after a rename, the last file's temporary): the step, files
#: there after the kill, the file not (yet) there
EVALUATE_STOPS = (("write:wiener.json", (), "wiener.json"),
                  ("wrote:potent.json", ("wiener.json", "potent.json"), "comparison.json"),
                  ("write:comparison.md", ("wiener.json", "potent.json", "comparison.json"), "comparison.md"))


def test_killed_evaluation_reruns_to_identical_bytes(reference, tmp_path):
    """Kill ``zoa evaluate`` (SIGKILL) at each step of :data:`EVALUATE_STOPS` in turn; no file is
    torn, the file it died before renaming is not there, and a rerun writes the bytes an
    uninterrupted run writes, leaving no temporary."""
    data = copy_mocks(reference, tmp_path)
    env = zoa_env(data)
    out_dir = data / "ci" / "evaluation"
    for step, there, absent in EVALUATE_STOPS:
        stopped(EVALUATE, env, step)
        assert all((out_dir / name).is_file() for name in there) and not (out_dir / absent).exists(), step
        if step.startswith("write:"):  # died with the temporary complete: the next write removes it
            assert any(p.name.startswith(TMP_PREFIX + absent) for p in temporaries(out_dir)), step
        for p in out_dir.glob("*.json"):  # whatever landed is whole
            json.loads(p.read_text())
    ok(zoa(EVALUATE, env))
    want = {k: v for k, v in files(reference).items() if "evaluation" in k}
    got = {k: v for k, v in files(data).items() if "evaluation" in k}
    assert sorted(got) == sorted(want)
    assert [k for k in want if got[k] != want[k]] == []
    assert temporaries(data) == []


def test_killed_chapter_reruns_complete_with_resume(tmp_path):
    """Kill ``zoa run --only 01`` mid-chapter (the kernel too); nothing torn is left, and
    ``zoa run --only 01 --resume`` executes the chapter completely, then skips it."""
    import nbformat

    from zoa_lib.book.runner import prepare_root

    rng = np.random.default_rng(7)
    root = prepare_root(tmp_path / "book")
    env = zoa_env(root / "data")
    run = ["run", "--profile", "ci", "--root", str(root), "--only", "01"]
    executed = root / "book" / "chapters" / "01-cosmology.ipynb"
    # papermill saves the chapter's first version under its temporary name before the kernel
    # starts; kill within a second of that (kernel start and the cells take longer)
    delay = float(rng.uniform(0.0, 1.0))
    chapters = root / "book" / "chapters"
    killed, lines = run_and_kill(run, env, delay, ready=lambda: bool(list(chapters.glob(TMP_PREFIX + "*"))))
    assert killed, f"the chapter finished within {delay:.2f} s: {text(lines)[-1000:]}"
    assert not executed.exists()  # atomic: no half-executed notebook
    assert temporaries(root), "the kill should leave papermill's temporary"
    out = ok(zoa(run + ["--resume"], env))
    assert re.search(r"01-cosmology\s+\d+ s", out.stdout), out.stdout   # executed: one line with its time
    nb = nbformat.read(executed, as_version=4)
    nbformat.validate(nb)
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert code and all(c.execution_count is not None for c in code)
    assert not any(o.get("output_type") == "error" for c in code for o in c.get("outputs", []))
    assert not nb.metadata.papermill.get("exception")
    info = json.loads((root / "book" / "_generated" / "run-info.json").read_text())
    assert "01-cosmology" in info["chapters"]
    assert temporaries(root) == []
    before = executed.read_bytes()
    again = ok(zoa(run + ["--resume"], env))
    assert "skipped (--resume" in again.stdout and executed.read_bytes() == before


TINY = {"model.depth": 2, "model.base_filters": 2, "model.convs_per_stage": 1, "training.epochs": 3,
        "training.batch_size": 2, "training.lr_half_cycle_epochs": 1.0}


class _Died(BaseException):
    """Stands for SIGKILL at one chosen point (BaseException: nothing catches it)."""


def _tiny_run(tmp_path, monkeypatch, name, **over):
    sys.path.insert(0, str(Path(__file__).parent))
    from synthetic_shards import write_mocks

    from zoa_lib.config import load_profile
    from zoa_lib.survey import shards

    monkeypatch.setenv("ZOA_DATA", str(tmp_path / name))
    p = load_profile("ci", {**TINY, **over})
    if not shards.mocks_dir(p).exists():
        write_mocks(shards.mocks_dir(p), grid=16)
    return p


@pytest.fixture(scope="module")
def tiny_straight(tmp_path_factory):
    """An uninterrupted 3-epoch run of the tiny network on synthetic shards (model folder)."""

    mp = pytest.MonkeyPatch()
    try:
        p = _tiny_run(tmp_path_factory.mktemp("tiny"), mp, "straight")
        fitting.train(p, "delta", progress=False)
        return model_files.model_dir(p, "delta")
    finally:
        mp.undo()


def _same_training(a: Path, b: Path):
    ha, hb = (np.genfromtxt(d / "history.csv", delimiter=",", names=True) for d in (a, b))
    assert list(hb["epoch"]) == list(ha["epoch"]) == [0, 1, 2]
    for col in ("loss", "val_loss", "learning_rate"):
        np.testing.assert_allclose(hb[col], ha[col], rtol=1e-5)
    for name in ("model.keras", "best.keras"):
        wa, wb = keras_weights(a / name), keras_weights(b / name)
        assert sorted(wa) == sorted(wb)
        for k in wa:
            np.testing.assert_allclose(wb[k], wa[k], rtol=1e-5, atol=1e-7, err_msg=f"{name} {k}")
    assert not (b / "backup").exists() and temporaries(b) == []


@pytest.mark.parametrize("where", ["history row", "model.keras", "backup", "backup cleanup"])
def test_death_at_each_end_of_epoch_write_resumes_to_the_same_training(tiny_straight, tmp_path, monkeypatch,
                                                                       where):
    """Die at each write of the end of epoch 1 (0-based) — before the history row, while
    writing model.keras, while writing the backup's weights (before its metadata, the commit),
    while removing the backup at the end — then ``--resume``: the same history and weights as
    an uninterrupted run (each point of a random kill, made deterministic)."""
    import keras

    from zoa_lib.methods import training

    p = _tiny_run(tmp_path, monkeypatch, "died")
    calls = {"n": 0}

    def die_on(count):
        calls["n"] += 1
        if calls["n"] == count:
            raise _Died(where)

    if where == "history row":
        orig = keras.callbacks.CSVLogger.on_epoch_end
        monkeypatch.setattr(keras.callbacks.CSVLogger, "on_epoch_end",
                            lambda self, epoch, logs=None: die_on(2) or orig(self, epoch, logs))
    elif where == "model.keras":
        orig = training.model_files.save_model

        def save(model, path, *a, **kw):
            if calls["n"] + 1 == 2:
                calls["n"] += 1
                with atomic_path(path) as tmp:
                    tmp.write_bytes(b"PK half a zip")
                    raise _Died(where)
            calls["n"] += 1
            return orig(model, path, *a, **kw)
        monkeypatch.setattr(training.model_files, "save_model", save)
    elif where == "backup":  # a torn weights file (no rename, no metadata) beside the committed state
        from zoa_lib.methods.training.callbacks import AtomicBackupAndRestore as cls

        orig_save = cls._save_model

        def save_model(self):
            if self._current_epoch == 2:
                (self.folder / "epoch-00002.weights.h5").write_bytes(b"\x89HDF torn")
                raise _Died(where)
            return orig_save(self)
        monkeypatch.setattr(cls, "_save_model", save_model)
    else:  # the cleanup at the end: metadata removed, weights not yet
        orig = shutil.rmtree

        def rmtree(path, *a, **kw):
            path = Path(path)
            if path.name == "backup" and list(path.glob("*.weights.h5")):
                raise _Died(where)
            return orig(path, *a, **kw)
        monkeypatch.setattr(shutil, "rmtree", rmtree)
    with pytest.raises(_Died):
        fitting.train(p, "delta", progress=False)
    monkeypatch.undo()
    p = _tiny_run(tmp_path, monkeypatch, "died")
    res = fitting.train(p, "delta", resume=True, progress=False)
    assert res.start_epoch == (3 if where == "backup cleanup" else 1)
    _same_training(tiny_straight, model_files.model_dir(p, "delta"))


def test_fresh_run_killed_in_its_first_epoch_does_not_resume_an_older_model(tiny_straight, tmp_path,
                                                                            monkeypatch):
    """A finished model exists; a fresh run dies in its first epoch; ``--resume`` must start
    that run again, not report the older model as done or continue it."""
    import keras


    p = _tiny_run(tmp_path, monkeypatch, "older", **{"training.epochs": 1})
    fitting.train(p, "delta", progress=False)  # the older, finished run
    p = _tiny_run(tmp_path, monkeypatch, "older")

    class DieInFirstEpoch(keras.callbacks.Callback):
        def on_train_batch_end(self, batch, logs=None):
            raise _Died("first epoch")

    with pytest.raises(_Died):
        fitting.train(p, "delta", progress=False, callbacks=[DieInFirstEpoch()])
    res = fitting.train(p, "delta", resume=True, progress=False)
    assert res.start_epoch == 0 and res.epochs_done == 3
    _same_training(tiny_straight, model_files.model_dir(p, "delta"))


@pytest.mark.slow
def test_killed_training_resumes_to_the_uninterrupted_result(reference, tmp_path):
    """Kill ``zoa train`` (SIGKILL) with the backup of epoch 2 written but not committed, resume,
    kill the resumed run after its second batch, resume to the end: the same epochs, losses
    and weights as one uninterrupted run, and no temporaries or backup left."""
    straight = copy_mocks(reference, tmp_path / "straight")
    killed_data = copy_mocks(reference, tmp_path / "killed")
    ok(zoa(["train"] + TRAIN, zoa_env(straight)))
    env = zoa_env(killed_data)
    folder = killed_data / "ci" / "models" / "delta"
    # 1. fresh run: backup metadata #1 is the fresh mark, #2 commits epoch 1, #3 would commit epoch 2
    stopped(["train"] + TRAIN, env, "write:training_metadata.json#3")
    meta = json.loads((folder / "backup" / "training_metadata.json").read_text())
    assert meta["epoch"] == 1 and (folder / "backup" / "epoch-00001.weights.h5").is_file()
    assert zoa_meta(folder / "model.keras")["meta"]["epochs_done"] == 2  # written before the backup
    # 2. resumed from epoch 1, killed after its second batch
    out = stopped(["-v", "train", "--resume"] + TRAIN, env, "train-batch#2")  # -v: the start line (INFO log)
    assert "(resumed)" in out.stderr, out.stderr[-1500:]
    state = folder / "backup" / "training_metadata.json"
    resume_from = json.loads(state.read_text())["epoch"]
    log = [("resume from", resume_from)]
    # 3. resumed to the end
    out = ok(zoa(["train", "--resume"] + TRAIN, env)).stdout
    assert f"(this run from epoch {resume_from})" in out, (log, out[-1500:])
    hist = {k: np.genfromtxt(d / "ci" / "models" / "delta" / "history.csv", delimiter=",", names=True)
            for k, d in (("straight", straight), ("killed", killed_data))}
    assert list(hist["killed"]["epoch"]) == list(hist["straight"]["epoch"]) == [0, 1, 2, 3], log
    for col in ("loss", "val_loss", "learning_rate"):
        # bit-identical here (CPU, same process layout); rtol for other thread schedules
        np.testing.assert_allclose(hist["killed"][col], hist["straight"][col], rtol=1e-5, err_msg=str(log))
    for name in ("model.keras", "best.keras"):
        a = keras_weights(straight / "ci" / "models" / "delta" / name)
        b = keras_weights(folder / name)
        assert sorted(a) == sorted(b)
        for k in a:
            np.testing.assert_allclose(b[k], a[k], rtol=1e-5, atol=1e-7, err_msg=f"{name} {k} {log}")
        ma = zoa_meta(straight / "ci" / "models" / "delta" / name)["meta"]
        mb = zoa_meta(folder / name)["meta"]
        assert ma["epochs_done"] == mb["epochs_done"]
        assert mb["best_value"] == pytest.approx(ma["best_value"], rel=1e-5)
    assert not (folder / "backup").exists()
    assert temporaries(killed_data) == []


# --------------------------------------------------------------------------- full disk, read-only folder
def _limit_file_size(limit: int):
    def pre():
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # writes fail with EFBIG instead of killing
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))
    return pre


def error_line(out: subprocess.CompletedProcess, command: str) -> str:
    """The CLI's one-line error: exit 2, no traceback."""
    assert out.returncode == 2, out.stdout[-2000:] + out.stderr[-2000:]
    assert "Traceback" not in out.stderr, out.stderr[-3000:]
    lines = [ln for ln in out.stderr.splitlines() if ln.startswith(f"zoa {command}: error: ")]
    assert len(lines) == 1, out.stderr[-3000:]
    return lines[0]


FULL_DISK = {  # command, RLIMIT_FSIZE (bytes): below the size of the file it must write
    "mocks": (["mocks", "--profile", "ci", "--scheduler", "sync", "--no-progress"], 1_000_000, "shard-0000.h5"),
    "mocks-dask": (["mocks", "--profile", "ci", "--workers", "1", "--no-progress"], 1_000_000, "shard-0000.h5"),
    "evaluate": (EVALUATE, 20_000, "wiener.json"),
    "train": (["train"] + TRAIN + ["--no-progress", "-p", "training.wiener_channels=false"], 200_000,
              "model.keras"),
    "train-wiener-channels": (["train"] + TRAIN + ["--no-progress"], 200_000, "shard-0000.h5"),
}


@pytest.mark.parametrize("case", list(FULL_DISK))
def test_full_disk_is_one_line_and_keeps_the_previous_files(reference, tmp_path, case):
    args, limit, victim = FULL_DISK[case]
    command = args[0]
    data = tmp_path / "data"
    previous = {}
    if command != "mocks":
        copy_mocks(reference, data)
        if command == "evaluate":
            shutil.copytree(reference / "ci" / "evaluation", data / "ci" / "evaluation")
        else:
            (data / "ci" / "models" / "delta").mkdir(parents=True)
            (data / "ci" / "models" / "delta" / "model.keras").write_bytes(b"previous model")
        previous = files(data)
    out = zoa(args, zoa_env(data), preexec_fn=_limit_file_size(limit))
    line = error_line(out, command)
    assert "EFBIG" in line and victim in line and "rerun" in line, line
    now = files(data)
    assert {k: now.get(k) for k in previous} == previous  # nothing replaced, nothing torn
    if command == "mocks":
        assert not list((data / "ci" / "mocks").glob("shard-*.h5"))
        json.loads((data / "ci" / "mocks" / "manifest.json").read_text())
    assert temporaries(data) == []


def _nobody_can_run():
    if os.geteuid() != 0:
        return "not root: a chmod'ed folder already stops this user; nothing to simulate"
    if shutil.which("setpriv") is None:
        return "setpriv (util-linux) not found"
    out = subprocess.run(["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", sys.executable, "-c",
                          "import zoa_lib.cli"], capture_output=True, text=True)
    return None if out.returncode == 0 else f"user 65534 cannot run this Python ({out.stderr.strip()[-200:]})"


READ_ONLY = {
    "mocks": ["mocks", "--profile", "ci", "--scheduler", "sync", "--no-progress"],
    "evaluate": EVALUATE,
    "train": ["train"] + TRAIN + ["--no-progress"],
}


@pytest.fixture(scope="module")
def world_readable(tmp_path_factory):
    """A folder user 65534 can read (pytest's tmp folders are private to root)."""
    d = Path(tempfile.mkdtemp(prefix="zoa-readonly-", dir="/tmp"))
    d.chmod(0o755)
    yield d
    shutil.rmtree(d, ignore_errors=True)


@pytest.mark.parametrize("command", list(READ_ONLY))
def test_read_only_output_folder_is_one_line(reference, world_readable, command):
    why = _nobody_can_run()
    if why:
        pytest.skip(why)
    base = world_readable / command
    data = copy_mocks(reference, base / "data")
    shutil.copytree(reference / "ci" / "evaluation", data / "ci" / "evaluation")
    (data / "ci" / "models" / "delta").mkdir(parents=True)
    (data / "ci" / "models" / "delta" / "model.keras").write_bytes(b"previous model")
    home = base / "home"
    home.mkdir()
    home.chmod(0o777)
    for p in [data, *data.rglob("*")]:
        p.chmod(0o755 if p.is_dir() else 0o644)
    previous = files(data)
    env = zoa_env(data, HOME=str(home), MPLCONFIGDIR=str(home / "mpl"))
    out = subprocess.run(["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"] + ZOA + READ_ONLY[command],
                         env=env, capture_output=True, text=True, timeout=300, cwd=str(home))
    line = error_line(out, command)
    folder = {"mocks": "mocks", "evaluate": "evaluation", "train": "models/delta"}[command]
    assert f"cannot write in {data / 'ci' / folder}: permission denied (EACCES)" in line, line
    assert "ZOA_DATA" in line
    assert files(data) == previous
    assert temporaries(data) == []


def test_pool_workers_end_with_a_killed_parent(tmp_path):
    """A worker of :func:`zoa_lib.io.processes.process_pool` ends soon after its parent is SIGKILLed
    (else it would hold the parent's output pipes open and live on)."""
    script = tmp_path / "parent.py"
    script.write_text("import os, time\nfrom zoa_lib.io.processes import process_pool\n"
                      "if __name__ == '__main__':\n"
                      "    pool = process_pool(1)\n"
                      "    print(pool.submit(os.getpid).result(), flush=True)\n"
                      "    time.sleep(600)\n")
    p = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE, text=True)
    worker = int(p.stdout.readline())
    os.kill(worker, 0)  # alive
    p.kill()
    p.wait()
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            os.kill(worker, 0)
        except ProcessLookupError:
            break
        time.sleep(0.1)
    else:
        os.kill(worker, signal.SIGKILL)
        raise AssertionError(f"pool worker {worker} outlived its killed parent by 10 s")
    assert p.stdout.read() == ""  # the pipe closed: no process holds it any more


def test_pool_workers_share_the_cores(tmp_path):
    """Each worker of :func:`zoa_lib.io.processes.process_pool` runs its FFTs and its BLAS libraries
    (numpy's and scipy's OpenBLAS) on its share of the cores, not on all of them: two workers
    on two cores each ran two spinning BLAS threads, tripling the Wiener filters' CPU time."""
    script = tmp_path / "pool.py"
    script.write_text("import json\nfrom zoa_lib.io.processes import available_cores, process_pool\n\n"
                      "def threads():\n"
                      "    import numpy, scipy.linalg\n"
                      "    from threadpoolctl import threadpool_info\n"
                      "    from zoa_lib.universe.fourier import fft_workers\n"
                      "    return fft_workers(), sorted({i['num_threads'] for i in threadpool_info()\n"
                      "                                  if i['user_api'] == 'blas'})\n\n"
                      "if __name__ == '__main__':\n"
                      "    with process_pool(2) as pool:\n"
                      "        fft, blas = pool.submit(threads).result()\n"
                      "    print(json.dumps({'cores': available_cores(), 'fft': fft, 'blas': blas}))\n")
    out = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=120,
                         cwd=str(tmp_path))
    assert out.returncode == 0, out.stderr[-2000:]
    got = json.loads(out.stdout.strip().splitlines()[-1])
    share = max(1, got["cores"] // 2)
    assert got["fft"] == share, got
    assert got["blas"] == [share], got


def test_thread_share_limits_the_block_and_restores():
    """The benchmarks time a pool's unit in the pool worker's thread share, then give the
    process its threads back."""
    from threadpoolctl import threadpool_info

    from zoa_lib.io.processes import thread_share
    from zoa_lib.universe.fourier import fft_workers

    before = fft_workers(), {i["num_threads"] for i in threadpool_info() if i["user_api"] == "blas"}
    with thread_share(1):
        assert fft_workers() == 1
        assert {i["num_threads"] for i in threadpool_info() if i["user_api"] == "blas"} == {1}
    assert (fft_workers(), {i["num_threads"] for i in threadpool_info() if i["user_api"] == "blas"}) == before
