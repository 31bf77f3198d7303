"""``zoa profile``: list profiles and show one, fully resolved and validated."""
from __future__ import annotations

import json

from zoa_lib.config import load_profile, PROFILES_DIR
from zoa_lib.commands.options import parse_overrides


def register(sub):
    p = sub.add_parser("profile", help="list or show profiles",
                       description="List the profiles, or show one with every default filled in.")
    psub = p.add_subparsers(dest="action", metavar="ACTION", required=True)
    s = psub.add_parser("show", help="print a profile, validated, with defaults filled in",
                        description="Print a profile (YAML or JSON) after validation.")
    s.add_argument("name", help="profile name or YAML path")
    s.add_argument("-p", "--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override a key before showing")
    s.add_argument("--json", action="store_true", help="print JSON instead of YAML")
    s.set_defaults(func=show)
    lst = psub.add_parser("list", help="list the shipped profiles", description="List the shipped profiles.")
    lst.set_defaults(func=list_profiles)


def show(args):
    prof = load_profile(args.name, parse_overrides(args.overrides))
    print(json.dumps(prof.to_dict(), indent=2) if args.json else prof.to_yaml(), end="")
    return 0


def list_profiles(args):
    for path in sorted(PROFILES_DIR.glob("*.yml")):
        prof = load_profile(path)
        print(f"{prof.name:12s} {prof.box.grid}^3  {prof.mocks.n_total:6d} mocks  "
              f"{prof.training.epochs:4d} epochs  {prof.description}")
    return 0
