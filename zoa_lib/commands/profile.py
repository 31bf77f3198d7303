"""``zoa profile``: list profiles and show one, fully resolved and validated."""
from __future__ import annotations

from zoa_lib.commands.options import DEFAULT_PROFILE, add_command, add_json_arg, parse_overrides, print_json
from zoa_lib.config import PROFILES_DIR, load_profile


def register(sub):
    p = add_command(
        sub, "profile", help="list or show profiles",
        description="List the shipped profiles, or show one with every default filled in. The profile is "
                    "the NAME argument here; every other command takes it as --profile NAME.",
        examples=["zoa profile list", "zoa profile show ci --set training.epochs=3", "zoa profile show --json"])
    psub = p.add_subparsers(dest="action", metavar="ACTION", required=True)
    s = add_command(
        psub, "show", help="print a profile, validated, with defaults filled in",
        description="Print a profile (YAML, or JSON with --json) after validation, with every default filled "
                    "in and the overrides applied.",
        examples=["zoa profile show                              # the default profile, laptop",
                  "zoa profile show paper --set box.grid=64",
                  "zoa profile show my-profile.yml --json"])
    s.add_argument("name", nargs="?", default=DEFAULT_PROFILE, metavar="NAME",
                   help=f"profile name (ci, laptop, workstation, paper) or YAML path (default: {DEFAULT_PROFILE})")
    s.add_argument("-p", "--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override a profile key before showing, e.g. --set training.epochs=3 (repeatable)")
    add_json_arg(s, "the profile")
    s.set_defaults(func=show)
    lst = add_command(psub, "list", help="list the shipped profiles",
                      description="List the shipped profiles: name, grid, mocks, epochs and description.",
                      examples=["zoa profile list", "zoa profile list --json"])
    add_json_arg(lst, "the profiles")
    lst.set_defaults(func=list_profiles)


def show(args):
    prof = load_profile(args.name, parse_overrides(args.overrides))
    if args.json:
        print_json(prof.to_dict())
    else:
        print(prof.to_yaml(), end="")
    return 0


def list_profiles(args):
    profiles = [(path, load_profile(path)) for path in sorted(PROFILES_DIR.glob("*.yml"))]
    if args.json:
        print_json([{"name": prof.name, "path": str(path), "grid": prof.box.grid, "mocks": prof.mocks.n_total,
                     "epochs": prof.training.epochs, "description": prof.description} for path, prof in profiles])
        return 0
    for _, prof in profiles:
        print(f"{prof.name:12s} {prof.box.grid}^3  {prof.mocks.n_total:6d} mocks  "
              f"{prof.training.epochs:4d} epochs  {prof.description}")
    return 0
