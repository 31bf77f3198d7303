"""Options every sub-command shares: the profile (``--profile``) and its overrides."""
from __future__ import annotations

import argparse

from zoa_lib.config import load_profile, parse_value, ProfileError
from zoa_lib.errors import printable


def add_profile_args(p: argparse.ArgumentParser, default: str = "laptop") -> None:
    """``--profile NAME`` and repeatable ``-p key=value`` overrides."""
    p.add_argument("--profile", default=default,
                   help=f"profile name (ci, laptop, workstation, paper) or YAML path (default: {default})")
    p.add_argument("-p", "--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override a profile key, e.g. -p training.epochs=3 (repeatable)")


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
    """The validated profile named by ``--profile`` with ``-p`` overrides applied."""
    return load_profile(args.profile, parse_overrides(args.overrides))
