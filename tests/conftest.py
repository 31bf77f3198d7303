"""Shared test set-up: headless plotting, quiet TensorFlow, generated data in tmp."""
import os
import subprocess
import sys

os.environ.setdefault("MPLBACKEND", "Agg")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import pytest  # noqa: E402

ZOA = [sys.executable, "-m", "zoa_lib.cli"]


@pytest.fixture
def zoa_data(tmp_path, monkeypatch):
    """Point every profile's data_path at a temporary folder."""
    d = tmp_path / "data"
    monkeypatch.setenv("ZOA_DATA", str(d))
    return d


@pytest.fixture(scope="session")
def built_book(tmp_path_factory):
    """Run every chapter at the ci profile (`zoa run`) and build the HTML (`zoa book`) in a
    temporary book root; shared by the book and browser tests."""
    from zoa_lib.book.runner import prepare_root

    root = prepare_root(tmp_path_factory.mktemp("book"))
    env = dict(os.environ, ZOA_DATA=str(root / "data"), MPLBACKEND="Agg")
    run = subprocess.run(ZOA + ["run", "--profile", "ci", "--root", str(root)],
                         capture_output=True, text=True, env=env)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    build = subprocess.run(ZOA + ["book", "--root", str(root)], capture_output=True, text=True, env=env)
    assert build.returncode == 0, build.stdout[-3000:] + build.stderr[-3000:]
    return root


# VTK (PyVista scenes) and TensorFlow loaded in one process can abort in C++ destructors
# at interpreter exit ("free(): invalid pointer") after every test has passed and the
# reports are written. End the process with pytest's own exit status instead.
def pytest_sessionfinish(session, exitstatus):
    session.config._zoa_exitstatus = int(exitstatus)


@pytest.hookimpl(trylast=True)
def pytest_unconfigure(config):
    status = getattr(config, "_zoa_exitstatus", None)
    if status is not None and os.environ.get("ZOA_HARD_EXIT", "1") == "1":
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(status)
