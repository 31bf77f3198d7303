"""The zoa CLI: help on every command, one-line errors with exit status 2."""
import os
import subprocess
import sys

import pytest

from zoa_lib.cli import build_parser, COMMANDS, main


def _subcommands():
    parser = build_parser()
    action = next(a for a in parser._actions if a.dest == "command")
    return sorted(action.choices)


def test_every_command_is_registered():
    """Each name of cli.COMMANDS has its module and subcommand (the parser skips a missing
    module silently, so a lost command would otherwise vanish from ``zoa --help``)."""
    assert _subcommands() == sorted(COMMANDS)


@pytest.mark.parametrize("cmd", _subcommands())
def test_help(cmd, capsys):
    with pytest.raises(SystemExit) as e:
        main([cmd, "--help"])
    assert e.value.code == 0
    assert "usage: zoa " + cmd in capsys.readouterr().out


def test_profile_show(capsys):
    assert main(["profile", "show", "ci", "-p", "training.epochs=3"]) == 0
    out = capsys.readouterr().out
    assert "epochs: 3" in out and "grid: 16" in out


def test_bad_profile_exit_2_one_line(capsys):
    assert main(["profile", "show", "ci", "-p", "box.grid=12"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "box.grid" in err and "Traceback" not in err


def test_bad_override_syntax(capsys):
    assert main(["profile", "show", "ci", "-p", "box.grid"]) == 2
    assert "KEY=VALUE" in capsys.readouterr().err


def test_console_script_exit_status():
    out = subprocess.run([sys.executable, "-m", "zoa_lib.cli", "profile", "show", "nope"],
                         capture_output=True, text=True)
    assert out.returncode == 2
    assert "not found" in out.stderr and "Traceback" not in out.stderr
    out = subprocess.run([sys.executable, "-m", "zoa_lib.cli", "--debug", "profile", "show", "nope"],
                         capture_output=True, text=True)
    assert out.returncode != 0 and "Traceback" in out.stderr


def test_run_rejects_unknown_chapter(tmp_path, capsys):
    assert main(["run", "--profile", "ci", "--only", "99-nothing"]) == 2
    assert "99-nothing" in capsys.readouterr().err


def test_doctor_reports_unwritable_data_folder(tmp_path, monkeypatch, capsys):
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o500)
    monkeypatch.setenv("ZOA_DATA", str(ro / "sub"))
    try:
        code = main(["doctor", "--profile", "ci", "--no-tensorflow"])
    finally:
        ro.chmod(0o700)
    out = capsys.readouterr().out
    if os.geteuid() == 0:  # root writes anywhere: the folder check passes
        assert "[OK  ] data folder" in out
    else:
        assert code == 2 and "not writable" in out
    assert "[OK  ] python" in out and "jupyter-book" in out


def test_doctor_ok(zoa_data, capsys):
    assert main(["doctor", "--profile", "ci", "--no-tensorflow"]) == 0
    assert "data folder" in capsys.readouterr().out


def test_run_chapter_parameters_one_line_errors(capsys):
    """`zoa run -P`: NAME=VALUE syntax, and a name no selected chapter takes, each one line with
    exit status 2 (before any kernel starts)."""
    assert main(["run", "--profile", "ci", "-P", "mock"]) == 2
    assert "NAME=VALUE" in capsys.readouterr().err
    assert main(["run", "--profile", "ci", "--only", "01", "-P", "catalogue_path=/x.csv"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "catalogue_path" in err and "selected by --only" in err
    assert main(["run", "--profile", "ci", "--only", "07", "-P", "nope=1"]) == 2
    assert "07-cf4: catalogue_path, catalogue_h0, frame, groups, drop_bad, crossval_splits, force, baseline" in capsys.readouterr().err


def test_run_params_are_yaml_else_text():
    from zoa_lib.commands.run import parse_params

    assert parse_params(["mock=3", "baseline=null", "catalogue_path=/d/hamlet/realization-*.csv", "x=*a", "flag=true"]) == \
        {"mock": 3, "baseline": None, "catalogue_path": "/d/hamlet/realization-*.csv", "x": "*a", "flag": True}
