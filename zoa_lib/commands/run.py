"""``zoa run``: execute the book's chapter notebooks with papermill on a profile."""
from __future__ import annotations

from pathlib import Path

from . import add_profile_args, parse_overrides


def register(sub):
    p = sub.add_parser(
        "run", help="execute the chapter notebooks with papermill",
        description="Execute the notebooks listed in _toc.yml with papermill on a profile, "
                    "writing executed copies to book/chapters/ (the stripped sources in "
                    "notebooks/ are never touched).")
    add_profile_args(p, default="laptop")
    p.add_argument("--only", action="append", metavar="NOTEBOOK",
                   help="run only this chapter (name or number prefix, e.g. 01); repeatable")
    p.add_argument("--resume", action="store_true",
                   help="skip chapters already executed with the same profile and overrides")
    p.add_argument("--root", default=None, help="book root holding _toc.yml (default: the repository)")
    p.set_defaults(func=run)


def run(args):
    from ..book import REPO_ROOT, run_notebooks

    overrides = parse_overrides(args.overrides)
    root = Path(args.root) if args.root else REPO_ROOT
    run_notebooks(args.profile, overrides, root=root, only=args.only, resume=args.resume)
    return 0
