"""What every sub-command shares: how its parser is made (:func:`add_command`: a help text with
examples), the profile (``--profile NAME``, default ``laptop``) and its overrides (``-p/--set
KEY=VALUE``), ``--json`` (:func:`json_output`, :func:`print_json`), and the one-line refusal of
a renamed flag (:func:`add_renamed`).

The CLI's spellings, the same in every command:

- ``--profile NAME``: a shipped profile or a YAML path; ``laptop`` unless given.
- ``-p/--set KEY=VALUE``: override a profile key (repeatable).
- ``--param NAME=VALUE``: a chapter parameter of ``zoa run`` (repeatable).
- ``-o/--output PATH``: the command's main output file (a folder for ``zoa book``); a second
  kind of file says what it is (``zoa catalog --grid-output FILE.h5``).
- ``--json``: one JSON document on stdout and nothing else there (messages go to stderr); on an
  error, ``{"error": ..., "command": ...}`` (:func:`zoa_lib.cli.main`).
"""
from __future__ import annotations

import argparse
import contextlib
import json
import shutil
import sys
import textwrap

from zoa_lib.config import ProfileError, load_profile, parse_value
from zoa_lib.errors import printable
from zoa_lib.io.atomic import json_default

#: The profile every command uses unless ``--profile`` names another.
DEFAULT_PROFILE = "laptop"


def _wrap(text: str) -> str:
    """``text`` filled to the terminal's width, paragraph by paragraph (blank-line separated)."""
    width = max(min(shutil.get_terminal_size().columns, 100) - 2, 40)
    return "\n\n".join(textwrap.fill(" ".join(par.split()), width) for par in text.split("\n\n"))


def add_command(sub, name: str, *, help: str, description: str, examples: list[str]) -> argparse.ArgumentParser:
    """The parser of sub-command ``name``: ``description`` wrapped, then ``examples`` (command
    lines, each optionally followed by ``  # what it does``) kept as written."""
    epilog = "examples:\n" + "\n".join(f"  {line}" for line in examples)
    return sub.add_parser(name, help=help, description=_wrap(description), epilog=epilog,
                          formatter_class=argparse.RawDescriptionHelpFormatter)


class _Profile(argparse.Action):
    """``--profile NAME``; also records that it was given (``args.profile_given``)."""

    def __call__(self, parser, namespace, values, option_string=None):
        setattr(namespace, self.dest, values)
        namespace.profile_given = True


def add_profile_args(p: argparse.ArgumentParser, default: str = DEFAULT_PROFILE, what: str = "") -> None:
    """``--profile NAME`` and repeatable ``-p/--set KEY=VALUE`` overrides."""
    p.add_argument("--profile", default=default, action=_Profile, metavar="NAME",
                   help=f"profile name (ci, laptop, workstation, paper) or YAML path (default: {default}){what}")
    p.add_argument("-p", "--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override a profile key, e.g. --set training.epochs=3 (repeatable)")
    p.set_defaults(profile_given=False)


def add_json_arg(p: argparse.ArgumentParser, what: str = "the result") -> None:
    """``--json``: print ``what`` as one JSON document on stdout, nothing else there."""
    p.add_argument("--json", action="store_true",
                   help=f"print {what} as one JSON document on stdout (messages go to stderr)")


class _Renamed(argparse.Action):
    """A flag that was renamed: refused with one line naming the new spelling (exit status 2)."""

    def __init__(self, option_strings, dest, new: str = "", **kw):
        self.new = new
        super().__init__(option_strings, dest=argparse.SUPPRESS, nargs="?", default=argparse.SUPPRESS,
                         help=argparse.SUPPRESS, **kw)

    def __call__(self, parser, namespace, values, option_string=None):
        parser.exit(2, f"{parser.prog}: error: {option_string} was renamed: use {self.new}\n")


def add_renamed(p: argparse.ArgumentParser, old: str, new: str) -> None:
    """Refuse the old spelling ``old`` of a flag with one line naming ``new`` (not in ``--help``)."""
    p.add_argument(old, action=_Renamed, new=new)


def parse_overrides(items: list[str]) -> dict:
    out = {}
    for item in items:
        if "=" not in item:
            raise ProfileError(f"override {printable(item, quote=True)}: expected KEY=VALUE, e.g. training.epochs=3")
        k, v = item.split("=", 1)
        try:
            out[k.strip()] = parse_value(v)
        except ProfileError as e:
            raise ProfileError(f"override {printable(k.strip())}: {e}") from None
    return out


def profile_from_args(args):
    """The validated profile named by ``--profile`` with ``-p/--set`` overrides applied."""
    return load_profile(args.profile, parse_overrides(args.overrides))


@contextlib.contextmanager
def json_output(args):
    """With ``--json``, what the command prints while it works goes to stderr, so that stdout
    holds the JSON document alone (:func:`print_json` after the block)."""
    if getattr(args, "json", False):
        with contextlib.redirect_stdout(sys.stderr):
            yield
    else:
        yield


def _json_default(o):
    """:func:`zoa_lib.io.atomic.json_default`, and a number for anything else that converts."""
    try:
        return json_default(o)
    except TypeError:
        return float(o)


def print_json(doc, args=None) -> None:
    """``doc`` as one indented JSON document on stdout. Pass ``args`` when the command may still
    fail after it (the CLI then prints no second, error document)."""
    print(json.dumps(doc, indent=2, default=_json_default))
    if args is not None:
        args.json_printed = True
