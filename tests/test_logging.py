"""Progress and diagnostics go through :mod:`logging`: module loggers in the library, one
stderr handler set up by the CLI (WARNING by default, INFO with ``-v``, DEBUG with ``--debug``),
and no handler of the library's own."""
import ast
import io
import logging
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import ZOA

from zoa_lib.cli import StderrHandler, configure_logging, main

ROOT = Path(__file__).resolve().parent.parent
PKG = ROOT / "zoa_lib"
LIBRARY = [p for p in sorted(PKG.rglob("*.py"))
           if "__pycache__" not in p.parts and p.parent.name != "commands" and p.name != "cli.py"]
#: Calls that configure logging output: the CLI's business, never the library's.
CONFIGURING = {"addHandler", "basicConfig", "dictConfig", "fileConfig", "captureWarnings"}


@pytest.fixture(autouse=True)
def restore_logging():
    """Leave the ``zoa_lib`` logger as it was (``main`` configures it in this process)."""
    lib = logging.getLogger("zoa_lib")
    handlers, level = list(lib.handlers), lib.level
    yield
    lib.handlers[:] = handlers
    lib.setLevel(level)


def _module(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def test_library_neither_prints_nor_configures_logging():
    """No ``print`` in the library (a call or a ``log=print`` default): results are printed by
    zoa_lib/commands and zoa_lib/cli.py only; and no handler, level of a foreign logger or
    ``basicConfig`` outside the CLI."""
    found = []
    for path in LIBRARY:
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Name) and node.id == "print":
                found.append(f"{path.relative_to(ROOT)}:{node.lineno}: print")
            if isinstance(node, ast.Call) and getattr(node.func, "attr", None) in CONFIGURING:
                found.append(f"{path.relative_to(ROOT)}:{node.lineno}: {node.func.attr}")
    assert not found, found


def test_importing_the_library_adds_no_handler_but_a_null_one():
    """Import zoa_lib and every module with a logger in a fresh process: the ``zoa_lib`` logger
    has at most a NullHandler, the root logger none."""
    mods = sorted(_module(p) for p in LIBRARY if "getLogger(" in p.read_text())
    assert "zoa_lib.survey.mock_set" in mods and "zoa_lib.book.runner" in mods
    code = ("import importlib, logging\n"
            f"for m in {mods!r}: importlib.import_module(m)\n"
            "lib = logging.getLogger('zoa_lib')\n"
            "print(all(type(h) is logging.NullHandler for h in lib.handlers), len(logging.root.handlers), "
            "lib.level, lib.propagate)\n")
    out = subprocess.run([ZOA[0], "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.split() == ["True", "0", str(logging.NOTSET), "True"], out.stdout


def test_cheap_command_without_flags_writes_nothing_on_stderr():
    out = subprocess.run(ZOA + ["catalog", "data/cf4-table2-first9999.csv"], capture_output=True, text=True,
                         cwd=ROOT)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip()  # the report is printed; no log line with it
    assert out.stderr == "", out.stderr


def test_cli_sets_one_handler_and_the_level(capsys):
    """Quiet by default, INFO with -v, DEBUG with --debug (which still gives tracebacks); a
    second ``main`` in one process replaces the handler rather than adding one."""
    lib = logging.getLogger("zoa_lib")
    log = logging.getLogger("zoa_lib.book.runner")
    levels = {}
    for flags in ([], ["-v"], ["--verbose"], ["--debug"], ["-v", "--debug"]):
        assert main([*flags, "profile", "show", "ci"]) == 0
        capsys.readouterr()
        log.debug("a debug line")
        log.info("an info line")
        log.warning("a warning line")
        levels[" ".join(flags)] = capsys.readouterr().err.splitlines()
        ours = [h for h in lib.handlers if isinstance(h, StderrHandler)]
        assert len(ours) == 1 and isinstance(ours[0], logging.StreamHandler)
    assert levels[""] == ["a warning line"]
    assert levels["-v"] == levels["--verbose"] == ["an info line", "a warning line"]
    assert levels["--debug"] == levels["-v --debug"] == ["a debug line", "an info line", "a warning line"]


def test_handler_writes_to_the_current_stderr(monkeypatch):
    """The handler looks ``sys.stderr`` up at each message (``zoa run`` swaps it while the
    kernels' native output goes to their logs), so a stderr set after it was made gets it."""
    configure_logging(verbose=True)
    swapped = io.StringIO()
    monkeypatch.setattr(sys, "stderr", swapped)
    logging.getLogger("zoa_lib.survey.mock_set").info("after a swap")
    assert swapped.getvalue() == "after a swap\n"


# --------------------------------------------------------------------------- a real command
@pytest.fixture(scope="module")
def one_shard(tmp_path_factory):
    """Shard 0 of the ci profile, made once (in-process, about 2 s) in a folder of its own."""
    from zoa_lib.config import load_profile
    from zoa_lib.survey import mock_set

    data = tmp_path_factory.mktemp("logging-data")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("ZOA_DATA", str(data))
        p = load_profile("ci")
        mock_set.generate(p, shards="0", scheduler="sync", progress=False, log=lambda m: None)
    return data


def _leftover(data: Path) -> Path:
    from zoa_lib.io.atomic import TMP_PREFIX
    from zoa_lib.survey.shards import MANIFEST

    path = data / "ci" / "mocks" / f"{TMP_PREFIX}{MANIFEST}.killed"
    path.write_text("{")
    return path


MOCKS = ["mocks", "--profile", "ci", "--shards", "0", "--scheduler", "sync", "--no-progress"]


def test_zoa_mocks_info_only_with_verbose(one_shard, monkeypatch, capsys):
    """`zoa mocks` removing a killed run's temporary: an INFO message, on stderr with -v only;
    the summary stays on stdout either way."""
    monkeypatch.setenv("ZOA_DATA", str(one_shard))
    _leftover(one_shard)
    assert main(MOCKS) == 0
    quiet = capsys.readouterr()
    assert quiet.err == "" and "1 complete" in quiet.out
    _leftover(one_shard)
    assert main(["-v", *MOCKS]) == 0
    loud = capsys.readouterr()
    assert loud.err == "removed 1 temporary file(s) left by an interrupted run\n" and "1 complete" in loud.out


def test_mock_set_messages_go_through_logging(one_shard, monkeypatch, caplog):
    """The library logs to its module's logger (caplog sees the record) unless a caller passes
    ``log=``, which then gets the message instead; a damaged shard is a WARNING."""
    from zoa_lib.config import load_profile
    from zoa_lib.survey import mock_set

    monkeypatch.setenv("ZOA_DATA", str(one_shard))
    p = load_profile("ci")
    caplog.set_level(logging.DEBUG, logger="zoa_lib")
    _leftover(one_shard)
    mock_set.generate(p, shards="0", scheduler="sync", progress=False)
    assert [(r.name, r.levelno, r.getMessage()) for r in caplog.records] == [
        ("zoa_lib.survey.mock_set", logging.INFO, "removed 1 temporary file(s) left by an interrupted run")]
    caplog.clear()
    got = []
    _leftover(one_shard)
    mock_set.generate(p, shards="0", scheduler="sync", progress=False, log=got.append)
    assert got == ["removed 1 temporary file(s) left by an interrupted run"] and not caplog.records
    shard = one_shard / "ci" / "mocks" / "shard-0000.h5"
    with open(shard, "r+b") as f:
        f.truncate(5000)
    s = mock_set.generate(p, shards="0", scheduler="sync", progress=False)
    assert s["made"] == ["shard-0000.h5"]
    (rec,) = caplog.records
    assert rec.levelno == logging.WARNING and rec.getMessage().startswith("shard-0000.h5: ")
    assert rec.getMessage().endswith("; regenerating")
