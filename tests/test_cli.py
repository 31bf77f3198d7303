"""The zoa CLI: help on every command, one-line errors with exit status 2, the same spelling of
the profile (``--profile``, default laptop), its overrides (``-p/--set``), outputs (``-o/--output``)
and ``--json`` everywhere, and examples in every ``--help`` that parse."""
import argparse
import json
import os
import shlex
import subprocess
import sys

import pytest

from zoa_lib.cli import COMMANDS, build_parser, main
from zoa_lib.survey.catalogs import CF4_SAMPLE


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


def _leaf_parsers(parser=None, path=()):
    """(command words, parser) of every runnable sub-command, nested ones (shards check) included."""
    parser = parser or build_parser()
    subs = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    if not subs:
        yield path, parser
        return
    for name, sub in subs[0].choices.items():
        yield from _leaf_parsers(sub, (*path, name))


def _option(parser, flag):
    return next((a for a in parser._actions if flag in a.option_strings), None)


def test_profile_show(capsys):
    assert main(["profile", "show", "ci", "-p", "training.epochs=3"]) == 0
    out = capsys.readouterr().out
    assert "epochs: 3" in out and "grid: 16" in out
    assert main(["profile", "show", "ci", "--set", "training.epochs=4"]) == 0
    assert "epochs: 4" in capsys.readouterr().out
    assert main(["profile", "show"]) == 0  # the default profile
    assert "name: laptop" in capsys.readouterr().out


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
    """`zoa run --param`: NAME=VALUE syntax, and a name no selected chapter takes, each one line with
    exit status 2 (before any kernel starts)."""
    assert main(["run", "--profile", "ci", "--param", "mock"]) == 2
    err = capsys.readouterr().err
    assert "NAME=VALUE" in err and "--param" in err
    assert main(["run", "--profile", "ci", "--only", "01", "--param", "catalogue_path=/x.csv"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "catalogue_path" in err and "selected by --only" in err
    assert main(["run", "--profile", "ci", "--only", "07", "--param", "nope=1"]) == 2
    assert "07-cf4: catalogue_path, catalogue_h0, frame, groups, drop_bad, crossval_splits, force, baseline" in capsys.readouterr().err


def test_run_params_are_yaml_else_text():
    from zoa_lib.commands.run import parse_params

    assert parse_params(["mock=3", "baseline=null", "catalogue_path=/d/hamlet/realization-*.csv", "x=*a", "flag=true"]) == \
        {"mock": 3, "baseline": None, "catalogue_path": "/d/hamlet/realization-*.csv", "x": "*a", "flag": True}


# --------------------------------------------------------------------------- one spelling per option
#: Commands with no --profile: ``profile`` takes it as its NAME argument, ``book`` builds the
#: chapters of whichever run ``zoa run`` made (its profile is that run's).
NO_PROFILE_OPTION = {("profile", "show"), ("profile", "list"), ("book",)}
#: Commands that print a result, each with --json.
JSON_COMMANDS = {("evaluate",), ("predict",), ("catalog",), ("reconstruct",), ("crossval",), ("variants",),
                 ("mocks",), ("train",), ("shards", "check"), ("profile", "show"), ("profile", "list"),
                 ("doctor",), ("bench",)}


@pytest.mark.parametrize("words", [w for w, _ in _leaf_parsers() if w not in NO_PROFILE_OPTION],
                         ids=" ".join)
def test_every_command_takes_profile_default_laptop_and_set(words):
    parser = dict(_leaf_parsers())[words]
    prof = _option(parser, "--profile")
    assert prof is not None and prof.default == "laptop", words
    assert _option(parser, "-p") is _option(parser, "--set") is not None, words
    assert _option(parser, "-P") is None or _option(parser, "-P").help == argparse.SUPPRESS


def test_profile_show_defaults_to_laptop_and_book_to_the_run():
    parsers = dict(_leaf_parsers())
    assert parsers[("profile", "show")].parse_args([]).name == "laptop"
    assert _option(parsers[("book",)], "--profile") is None


@pytest.mark.parametrize("words", sorted(JSON_COMMANDS), ids=" ".join)
def test_result_commands_have_json(words):
    assert _option(dict(_leaf_parsers())[words], "--json") is not None


def test_output_options_are_spelled_output():
    """-o/--output is a command's output file (a folder for book); a second kind says what it is."""
    for words, parser in _leaf_parsers():
        flags = {f for a in parser._actions if a.help != argparse.SUPPRESS for f in a.option_strings}
        assert not {"--out", "--grid-out", "--path-output", "-P"} & flags, words
        if "--output" in flags:
            assert _option(parser, "-o") is _option(parser, "--output"), words
    assert _option(dict(_leaf_parsers())[("catalog",)], "--grid-output") is not None


@pytest.mark.parametrize("argv, new", [
    (["run", "--profile", "ci", "-P", "mock=3"], "--param NAME=VALUE"),
    (["reconstruct", "x.csv", "--out", "x.h5"], "--output FILE.h5"),
    (["crossval", "x.csv", "--out=x.json"], "--output FILE.json"),
    (["catalog", "x.csv", "--grid-out", "g.h5"], "--grid-output FILE.h5"),
    (["book", "--path-output", "/tmp/x"], "--output DIR"),
], ids=["run -P", "reconstruct --out", "crossval --out", "catalog --grid-out", "book --path-output"])
def test_renamed_flags_refused_in_one_line(argv, new, capsys):
    with pytest.raises(SystemExit) as e:
        main(argv)
    assert e.value.code == 2
    cap = capsys.readouterr()
    err = cap.err.strip()
    assert err.count("\n") == 0 and err.startswith(f"zoa {argv[0]}: error: ") and f"use {new}" in err
    assert "usage" not in err and cap.out == ""


def _examples(parser):
    """The ``zoa ...`` command lines of a parser's examples, continuation lines joined."""
    text = (parser.epilog or "").replace("\\\n", " ")
    for line in text.splitlines():
        for cmd in line.split("&&"):
            cmd = cmd.split("  #")[0].split(" > ")[0].strip()
            cmd = cmd.removeprefix("srun ")
            if cmd.startswith("zoa "):
                yield shlex.split(cmd)[1:]


@pytest.mark.parametrize("words", [w for w, _ in _leaf_parsers()], ids=" ".join)
def test_every_help_has_examples_that_parse(words, capsys):
    parser = dict(_leaf_parsers())[words]
    assert isinstance(parser.formatter_class, type) and issubclass(
        parser.formatter_class, argparse.RawDescriptionHelpFormatter)
    examples = list(_examples(parser))
    assert examples, f"zoa {' '.join(words)} --help has no example"
    for argv in examples:
        try:
            build_parser().parse_args(argv)
        except SystemExit:
            pytest.fail(f"example 'zoa {shlex.join(argv)}' does not parse: {capsys.readouterr().err}")
    for argv in _examples(build_parser()):
        build_parser().parse_args(argv)


# --------------------------------------------------------------------------- --json
def _json_stdout(capsys):
    cap = capsys.readouterr()
    return json.loads(cap.out), cap.err


def test_json_profile_show_and_list(capsys):
    assert main(["profile", "show", "ci", "--set", "training.epochs=3", "--json"]) == 0
    doc, _ = _json_stdout(capsys)
    assert doc["name"] == "ci" and doc["training"]["epochs"] == 3
    assert main(["profile", "list", "--json"]) == 0
    doc, _ = _json_stdout(capsys)
    assert {"ci", "laptop", "paper"} <= {p["name"] for p in doc} and all("grid" in p for p in doc)


def test_json_doctor(zoa_data, capsys):
    assert main(["doctor", "--profile", "ci", "--no-tensorflow", "--json"]) == 0
    doc, _ = _json_stdout(capsys)
    assert doc["profile"] == "ci" and doc["ready"] is True
    assert {c["check"] for c in doc["checks"]} >= {"python", "numpy", "data folder"}
    assert all(c["status"] in ("OK", "WARN", "FAIL") for c in doc["checks"])


def test_json_catalog_on_the_shipped_table(capsys):
    assert main(["catalog", str(CF4_SAMPLE), "--profile", "ci", "--json"]) == 0
    doc, _ = _json_stdout(capsys)
    assert doc["n_rows"] == doc["n_kept"] == 9999


def test_json_shards_check_on_an_empty_data_folder(tmp_path, monkeypatch, capsys):
    """An error under --json: exit 2, one line on stderr, and stdout still one JSON document."""
    monkeypatch.setenv("ZOA_DATA", str(tmp_path))
    assert main(["shards", "check", "--json"]) == 2
    doc, err = _json_stdout(capsys)
    assert "no mock shards of profile 'laptop'" in doc["error"] and doc["command"] == "zoa shards"
    assert err.strip().count("\n") == 0 and "no mock shards" in err
