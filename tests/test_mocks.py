"""Mock shards: the sample plan, atomic shard writing, resumable generation, determinism."""
from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import h5py
import numpy as np
import pytest

from zoa_lib.config import load_profile
from zoa_lib.io.atomic import TMP_PREFIX
from zoa_lib.survey import galaxies, mock_set, mocks, selection, shards
from zoa_lib.survey.shards import (
    CATALOG_DTYPE,
    ShardWriter,
    content_checksum,
    read_manifest,
    read_shard,
    validate_shard,
)

ZOA = str(Path(sys.executable).with_name("zoa"))


# --------------------------------------------------------------------------- plan
@pytest.mark.parametrize("name", ["ci", "laptop", "workstation", "paper"])
def test_plan_partitions_samples_and_splits_use_disjoint_boxes(name):
    p = load_profile(name)
    n = p.mocks.n_total
    K = p.simulation.observers_per_box
    locs = [mocks.sample_location(p, s) for s in range(n)] if n <= 2000 else \
        [mocks.sample_location(p, s) for s in range(0, n, 7)]
    boxes = {}
    for loc in locs:
        boxes.setdefault(loc.split, set()).add(loc.box_index)
        assert 0 <= loc.observer < K
    assert not (boxes["train"] & boxes.get("val", set())) and not (boxes["train"] & boxes.get("test", set()))
    assert not (boxes.get("val", set()) & boxes.get("test", set()))
    if n <= 2000:
        pairs = {(loc.box_index, loc.observer) for loc in locs}
        assert len(pairs) == n  # every sample its own (box, observer)
        assert [loc.split for loc in locs] == ["train"] * p.mocks.n_train + ["val"] * p.mocks.n_val + \
            ["test"] * p.mocks.n_test
    plan = mocks.shard_plan(p)
    covered = np.concatenate([np.arange(s.start, s.stop) for s in plan])
    assert np.array_equal(covered, np.arange(n))
    for s in plan:
        assert 0 < s.n <= p.mocks.shard_size
        assert {mocks.sample_location(p, i).split for i in (s.start, s.stop - 1)} == {s.split}
        assert s.name == f"shard-{s.index:04d}.h5"
    with pytest.raises(mocks.MocksError, match="outside"):
        mocks.sample_location(p, n)


def test_parse_shard_range():
    assert list(mocks.parse_shard_range("1:3", 5)) == [1, 2]
    assert list(mocks.parse_shard_range(":2", 5)) == [0, 1]
    assert list(mocks.parse_shard_range("3:", 5)) == [3, 4]
    assert list(mocks.parse_shard_range("4", 5)) == [4]
    assert list(mocks.parse_shard_range(None, 3)) == [0, 1, 2]
    assert list(mocks.parse_shard_range("3:8", 5)) == [3, 4]  # last task of a Slurm array
    for bad in ("3:2", "5:7", "a:b", "-1:2", "5"):
        with pytest.raises(mocks.MocksError, match="--shards"):
            mocks.parse_shard_range(bad, 5)


# --------------------------------------------------------------------------- shard writing
def tiny_arrays(n=3, N=8, seed=0):
    g = np.random.default_rng(seed)
    return (g.normal(size=(n, N, N, N, 2)).astype("f4"),
            {"delta": g.normal(size=(n, N, N, N)).astype("f4"), "phi": g.normal(size=(n, N, N, N)).astype("f4"),
             "velocity": g.normal(size=(n, N, N, N, 3)).astype("f4")})


def test_shard_writer_equals_write_shard_and_checksum_is_row_by_row(tmp_path):
    inputs, targets = tiny_arrays()
    cat = np.zeros(7, CATALOG_DTYPE)
    cat["SGX"] = np.arange(7)
    rot = np.tile(np.eye(3, dtype=np.int8), (3, 1, 1))
    sh = shards.Shard(inputs=inputs, targets=targets, catalog=cat, samples=np.arange(3), observers=np.ones((3, 3)),
                    rotations=rot, box_index=np.zeros(3, int), attrs={"split": "train"})
    sha1 = shards.write_shard(tmp_path / "a.h5", sh)
    with ShardWriter(tmp_path / "b.h5", 3, 8, {"split": "train"}) as w:
        for i in (2, 0, 1):  # any order
            w.write(i, inputs[i], {k: v[i] for k, v in targets.items()}, cat if i == 2 else None, sample=i,
                    observer=np.ones(3), rotation=np.eye(3), box_index=0)
    assert w.sha256 == sha1 == content_checksum(tmp_path / "b.h5")
    # independent: SHA-256 over each dataset's name, shape, dtype and rows, one row at a time
    h = hashlib.sha256()
    with h5py.File(tmp_path / "b.h5") as f:
        names = []
        f.visititems(lambda nm, o: names.append(nm) if isinstance(o, h5py.Dataset) else None)
        for nm in sorted(names):
            ds = f[nm]
            h.update(f"{nm}|{ds.shape}|{ds.dtype.str}".encode())
            for i in range(ds.shape[0]):
                h.update(np.ascontiguousarray(ds[i]).tobytes())
    assert h.hexdigest() == sha1
    r = read_shard(tmp_path / "b.h5")
    assert np.array_equal(r.inputs, inputs) and np.array_equal(r.catalog, cat)


def test_shard_writer_is_atomic(tmp_path):
    inputs, targets = tiny_arrays()
    with pytest.raises(RuntimeError):
        with ShardWriter(tmp_path / "x.h5", 3, 8) as w:
            w.write(0, inputs[0], {k: v[0] for k, v in targets.items()}, None, sample=0, observer=np.zeros(3),
                    rotation=np.eye(3), box_index=0)
            raise RuntimeError("killed")
    with pytest.raises(shards.ShardError, match="never written"):
        with ShardWriter(tmp_path / "x.h5", 3, 8) as w:
            w.write(0, inputs[0], {k: v[0] for k, v in targets.items()}, None, sample=0, observer=np.zeros(3),
                    rotation=np.eye(3), box_index=0)
    with pytest.raises(shards.ShardError, match="shape"):
        with ShardWriter(tmp_path / "x.h5", 3, 8) as w:
            w.write(0, inputs[0, :4], {k: v[0] for k, v in targets.items()}, None, sample=0,
                    observer=np.zeros(3), rotation=np.eye(3), box_index=0)
    assert list(tmp_path.iterdir()) == []


# --------------------------------------------------------------------------- generation (ci)
@pytest.fixture(scope="module")
def ci_reference(tmp_path_factory):
    """The ci data set, generated once in-process (no Dask)."""
    root = tmp_path_factory.mktemp("ref")
    old = os.environ.get("ZOA_DATA")
    os.environ["ZOA_DATA"] = str(root)
    try:
        p = load_profile("ci")
        summary = mock_set.generate(p, scheduler="sync", progress=False, log=lambda m: None)
    finally:
        if old is None:
            os.environ.pop("ZOA_DATA")
        else:
            os.environ["ZOA_DATA"] = old
    folder = root / "ci" / "mocks"
    return p, folder, summary, {k: v["sha256"] for k, v in read_manifest(folder)["shards"].items()}


def test_generated_shards_follow_the_schema(ci_reference):
    p, folder, summary, shas = ci_reference
    plan = mocks.shard_plan(p)
    assert sorted(shas) == [s.name for s in plan] and summary["mocks_made"] == p.mocks.n_total
    man = read_manifest(folder)
    assert man["config_sha256"] == mocks.config_checksum(p)
    assert [x.name for x in shards.shard_paths(folder, "val")] == [s.name for s in plan if s.split == "val"]
    for spec in plan:
        row = man["shards"][spec.name]
        assert (row["split"], row["start"], row["stop"], row["n"]) == (spec.split, spec.start, spec.stop, spec.n)
        path = folder / spec.name
        attrs = validate_shard(path, grid=p.box.grid)
        assert content_checksum(path) == row["sha256"]
        for key in ("box_size", "grid", "smoothing", "cosmology", "zoa_b", "selection", "seed", "split",
                    "zoa_version", "git_commit", "created_utc", "profile", "parameters", "attr_units"):
            assert key in attrs, key
        assert attrs["split"] == spec.split and attrs["box_size"] == p.box.size and attrs["zoa_b"] == p.survey.zoa_b
        assert json.loads(attrs["attr_units"])["box_size"] == "Mpc/h"
        assert json.loads(attrs["cosmology"])["Om0"] > 0
        with h5py.File(path) as f:
            assert f["targets/phi"].attrs["units"] == "(km/s)^2"
            assert json.loads(f["catalog"].attrs["units"])["v_r_obs"] == "km/s"
    assert not list(folder.glob(TMP_PREFIX + "*"))


def test_shard_inputs_are_the_gridded_catalog(ci_reference):
    p, folder, _, _ = ci_reference
    sh = read_shard(folder / "shard-0002.h5")
    boxes = mocks.split_boxes(p)
    assert set(sh.box_index) <= set(range(*boxes["val"]))
    for i, s in enumerate(sh.samples):
        cat = sh.catalog[sh.catalog["sample"] == s]
        assert len(cat) > 0.5 * p.survey.n_galaxies
        again = galaxies.grid_catalog(cat, p.box.size, p.box.grid)
        assert np.array_equal(again, sh.inputs[i])
        inside = np.all(np.abs(np.stack([cat["SGX"], cat["SGY"], cat["SGZ"]], -1)) < p.box.size / 2, axis=1)
        assert sh.inputs[i, ..., 0].sum() == inside.sum()
        sel = selection.catalogue_selection(p)  # the sky the mocks copy, or the analytic ZOA cut
        assert np.all(sel.observed(cat["l"], cat["b"])) if sel else np.all(np.abs(cat["b"]) >= p.survey.zoa_b)
        for t in ("delta", "phi", "velocity"):
            assert np.all(np.isfinite(sh.targets[t][i]))
    assert np.all(np.abs(sh.rotations).sum(axis=1) == 1)


def test_make_sample_equals_the_stored_mock(ci_reference):
    p, folder, _, _ = ci_reference
    s = 9  # shard 1, second mock
    smp = mocks.make_sample(p, s)
    sh = read_shard(folder / "shard-0001.h5")
    i = int(np.flatnonzero(sh.samples == s)[0])
    assert np.array_equal(smp.inputs, sh.inputs[i])
    assert np.array_equal(smp.targets.phi, sh.targets["phi"][i])
    assert smp.catalog.tobytes() == sh.catalog[sh.catalog["sample"] == s].tobytes()
    assert smp.location.box_index == sh.box_index[i]


def test_sample_from_cube_times_its_stages_without_changing_the_sample(ci_reference):
    """The stage timings (used by ``mocks.benchmark``) add up per call and leave the sample as
    :func:`mocks.make_sample` builds it."""
    from zoa_lib.universe import simulation

    p, _, _, _ = ci_reference
    smp = mocks.make_sample(p, 9)
    box = simulation.make_parent_box(p, smp.location.box_index)
    cube = simulation.observer_cubes(p, box, [smp.location.observer])[0]
    timings = {}
    for calls in (1, 2):
        inputs, targets, cat = mocks.sample_from_cube(p, box, cube, 9, timings=timings)
        assert sorted(timings) == ["grid", "survey", "targets"]
        assert np.array_equal(inputs, smp.inputs) and np.array_equal(targets.delta, smp.targets.delta)
        assert cat.tobytes() == smp.catalog.tobytes()
    assert mocks.sample_from_cube(p, box, cube, 10)[2].tobytes() != cat.tobytes()


def test_make_shard_threads_are_a_parameter_not_the_environment(ci_reference, tmp_path, monkeypatch):
    """``fft_workers`` reaches the FFTs as an argument: the process environment is left as it
    was, and the shard is byte-identical to the in-process reference."""
    p, folder, _, shas = ci_reference
    monkeypatch.delenv("ZOA_FFT_WORKERS", raising=False)
    spec = mocks.shard_plan(p)[0]
    row = mocks.make_shard(p, spec, tmp_path, fft_workers=1)
    assert "ZOA_FFT_WORKERS" not in os.environ
    assert row["sha256"] == shas[spec.name]


def copy_reference(ci_reference, dest: Path) -> Path:
    import shutil

    _, folder, _, _ = ci_reference
    target = dest / "ci" / "mocks"
    shutil.copytree(folder, target)
    return target


def test_corrupted_and_missing_shards_are_regenerated(ci_reference, zoa_data):
    p, _, _, shas = ci_reference
    folder = copy_reference(ci_reference, zoa_data)
    with open(folder / "shard-0001.h5", "r+b") as f:
        f.truncate(5000)
    (folder / "shard-0003.h5").unlink()
    (folder / (TMP_PREFIX + "shard-0000.h5.abc.h5")).write_bytes(b"half a shard")
    msgs = []
    s = mock_set.generate(p, scheduler="sync", progress=False, log=msgs.append)
    assert sorted(s["made"]) == ["shard-0001.h5", "shard-0003.h5"]
    assert sorted(s["skipped"]) == ["shard-0000.h5", "shard-0002.h5"]
    assert "corrupt" in s["regenerated"]["shard-0001.h5"]
    assert any("temporary" in m for m in msgs)
    assert {k: v["sha256"] for k, v in read_manifest(folder)["shards"].items()} == shas
    assert not list(folder.glob(TMP_PREFIX + "*"))


def test_silently_changed_content_is_detected(ci_reference, zoa_data):
    p, _, _, shas = ci_reference
    folder = copy_reference(ci_reference, zoa_data)
    with h5py.File(folder / "shard-0002.h5", "r+") as f:
        f["targets/delta"][0, 0, 0, 0] += 1.0  # still a valid HDF5 file
    s = mock_set.generate(p, shards="2:4", scheduler="sync", progress=False, log=lambda m: None)
    assert s["made"] == ["shard-0002.h5"] and "checksum" in s["regenerated"]["shard-0002.h5"]
    assert content_checksum(folder / "shard-0002.h5") == shas["shard-0002.h5"]


def test_valid_shard_missing_from_the_manifest_is_adopted(ci_reference, zoa_data):
    p, _, _, shas = ci_reference
    folder = copy_reference(ci_reference, zoa_data)
    man = json.loads((folder / "manifest.json").read_text())
    del man["shards"]["shard-0000.h5"]
    (folder / "manifest.json").write_text(json.dumps(man))
    mtime = (folder / "shard-0000.h5").stat().st_mtime_ns
    s = mock_set.generate(p, scheduler="sync", progress=False, log=lambda m: None)
    assert s["adopted"] == ["shard-0000.h5"] and s["made"] == []
    assert (folder / "shard-0000.h5").stat().st_mtime_ns == mtime
    assert read_manifest(folder)["shards"]["shard-0000.h5"]["sha256"] == shas["shard-0000.h5"]


def test_changed_configuration_is_refused_unless_forced(ci_reference, zoa_data):
    copy_reference(ci_reference, zoa_data)
    p2 = load_profile("ci", {"survey.sigma_dm": 0.2, "mocks.n_train": 8, "mocks.workers": 1})
    with pytest.raises(mocks.MocksError, match=r"different configuration \(changed: mocks.n_train, survey.sigma_dm\)"):
        mock_set.generate(p2, shards="0:1", scheduler="sync", progress=False)
    s = mock_set.generate(p2, shards="0:1", scheduler="sync", progress=False, force=True, log=lambda m: None)
    assert s["made"] == ["shard-0000.h5"]
    folder = zoa_data / "ci" / "mocks"
    man = read_manifest(folder)
    assert list(man["shards"]) == ["shard-0000.h5"] and man["config_sha256"] == mocks.config_checksum(p2)
    # workers are not part of the configuration
    p3 = load_profile("ci", {"survey.sigma_dm": 0.2, "mocks.n_train": 8, "mocks.workers": 2})
    assert mocks.config_checksum(p3) == mocks.config_checksum(p2)


def test_cli_help_and_bad_range(zoa_data):
    out = subprocess.run([ZOA, "mocks", "--help"], capture_output=True, text=True)
    assert out.returncode == 0 and "--shards" in out.stdout and "--scheduler" in out.stdout
    out = subprocess.run([ZOA, "mocks", "--profile", "ci", "--shards", "7:9"], capture_output=True, text=True)
    assert out.returncode == 2
    assert out.stderr.strip().splitlines() == [
        "zoa mocks: error: --shards '7:9': need 0 <= A < B and A < 4 (this profile has 4 shards)"]


def test_scheduler_errors_are_one_line(zoa_data, monkeypatch):
    p = load_profile("ci")
    with pytest.raises(mocks.MocksError, match="cannot connect to a Dask scheduler"):
        mock_set.generate(p, shards="0", scheduler="nohost", progress=False, log=lambda m: None)
    monkeypatch.setenv("PATH", "")
    with pytest.raises(mocks.MocksError, match="sbatch not found"):
        mock_set.generate(p, shards="0", scheduler="slurm", progress=False, log=lambda m: None)


# --------------------------------------------------------------------------- end to end (Dask, kill)
@pytest.mark.slow
def test_dask_generation_is_byte_identical_to_in_process(ci_reference, zoa_data):
    p, _, _, shas = ci_reference
    s = mock_set.generate(p, workers=2, scheduler="local", progress=False, log=lambda m: None)
    assert sorted(s["made"]) == sorted(shas)
    folder = zoa_data / "ci" / "mocks"
    assert {k: content_checksum(folder / k) for k in shas} == shas


@pytest.mark.slow
def test_killed_run_resumes_to_the_same_shards(ci_reference, zoa_data):
    p, _, _, shas = ci_reference
    folder = zoa_data / "ci" / "mocks"
    env = dict(os.environ, ZOA_DATA=str(zoa_data))
    proc = subprocess.Popen([ZOA, "mocks", "--profile", "ci", "--workers", "1", "--no-progress"], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        deadline = time.time() + 240
        while time.time() < deadline:
            try:
                if read_manifest(folder).get("shards"):
                    break
            except shards.ShardError:
                pass
            assert proc.poll() is None, "zoa mocks ended before it could be killed"
            time.sleep(0.02)
        else:
            pytest.fail("no shard landed within 240 s")
    finally:
        os.killpg(proc.pid, signal.SIGKILL)  # the driver and its Dask workers: a crash
        proc.wait()
    for _ in range(100):  # wait until the killed workers are gone
        try:
            os.killpg(proc.pid, 0)
        except ProcessLookupError:
            break
        time.sleep(0.1)
    landed = read_manifest(folder)["shards"]
    assert 1 <= len(landed) < len(shas), "the run was not interrupted mid-way"
    out = subprocess.run([ZOA, "mocks", "--profile", "ci", "--workers", "2", "--no-progress", "--json"],
                         env=env, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    summary = json.loads(out.stdout)
    assert len(summary["skipped"]) + len(summary["adopted"]) >= len(landed)
    assert {k: v["sha256"] for k, v in read_manifest(folder)["shards"].items()} == shas
    assert {k: content_checksum(folder / k) for k in shas} == shas
    assert not list(folder.glob(TMP_PREFIX + "*"))


@pytest.mark.slow
def test_concurrent_shard_jobs_share_a_folder(ci_reference, zoa_data):
    """Two `zoa mocks --shards` jobs at once (a Slurm array): every row lands in the manifest."""
    _, _, _, shas = ci_reference
    env = dict(os.environ, ZOA_DATA=str(zoa_data))
    procs = [subprocess.Popen([ZOA, "mocks", "--profile", "ci", "--shards", r, "--scheduler", "sync",
                               "--no-progress"], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True) for r in ("0:2", "2:4")]
    for p in procs:
        out, err = p.communicate(timeout=300)
        assert p.returncode == 0, err
    folder = zoa_data / "ci" / "mocks"
    assert {k: v["sha256"] for k, v in read_manifest(folder)["shards"].items()} == shas
    assert not list(folder.glob(TMP_PREFIX + "*"))


def _malloc_environment():
    return {k: os.environ.get(k) for k in ("MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_", "MALLOC_TOP_PAD_")}


def test_local_dask_workers_keep_their_memory():
    """The local Dask workers start with glibc keeping freed memory (Dask's default returns
    it above 64 KiB, and a shard then spent a fifth of its time in page faults)."""
    from zoa_lib.survey.mock_set import WORKER_MALLOC, _client

    client, cluster = _client("local", 1, load_profile("ci"))
    try:
        got = next(iter(client.run(_malloc_environment).values()))
    finally:
        client.close()
        cluster.close()
    assert got == {k: str(v) for k, v in WORKER_MALLOC.items()}
    assert int(got["MALLOC_TRIM_THRESHOLD_"]) > 65536


def test_manifest_updates_from_concurrent_processes_all_land(tmp_path):
    """update_manifest holds filelock's lock around its read-modify-write: four processes each
    adding rows to one manifest at once lose none of them (unlocked, they overwrite each other)."""
    code = ("import sys; from zoa_lib.survey.shards import update_manifest\n"
            "w = sys.argv[2]\n"
            "for i in range(15):\n"
            "    update_manifest(sys.argv[1], lambda m, i=i: m['shards'].__setitem__(f'{w}-{i}', {'start': i, 'stop': i + 1}))\n")
    procs = [subprocess.Popen([sys.executable, "-c", code, str(tmp_path), f"w{k}"]) for k in range(4)]
    assert [p.wait(timeout=120) for p in procs] == [0, 0, 0, 0]
    rows = read_manifest(tmp_path)["shards"]
    assert len(rows) == 60 and {f"w{k}-{i}" for k in range(4) for i in range(15)} == set(rows)
