"""``zoa run``: execute the book's chapter notebooks with papermill on a profile."""
from __future__ import annotations

from pathlib import Path

from zoa_lib.commands.options import add_profile_args, parse_overrides


def register(sub):
    p = sub.add_parser(
        "run", help="execute the chapter notebooks with papermill",
        description="Execute the notebooks listed in _toc.yml with papermill on a profile, "
                    "writing executed copies to book/chapters/ (the stripped sources in "
                    "notebooks/ are never touched). Overrides that change results (-p) give the "
                    "run its own data folder, data/<profile>-<hash>, printed first. A failed "
                    "chapter keeps its executed notebook, with the traceback, in "
                    "<data folder>/book/failed/, and the command exits non-zero.")
    add_profile_args(p, default="laptop")
    p.add_argument("-P", "--param", dest="params", action="append", default=[], metavar="NAME=VALUE",
                   help="set a chapter parameter (mock, catalogue_path, baseline, ...) in the chapters that "
                        "have it, e.g. -P catalogue_path=/data/cf4.csv; VALUE is read as YAML (3, true, null), "
                        "else as text (repeatable)")
    p.add_argument("--only", action="append", metavar="NOTEBOOK",
                   help="run only this chapter (name or number prefix, e.g. 01); repeatable")
    p.add_argument("--resume", action="store_true",
                   help="skip chapters already executed with the same profile, overrides and parameters")
    p.add_argument("--root", default=None, help="book root holding _toc.yml (default: the repository)")
    p.add_argument("--debug", dest="run_debug", action="store_true",
                   help="show the kernels' TensorFlow, absl and Jupyter warnings on the console "
                        "(default: in <data folder>/book/logs/<chapter>.log)")
    p.set_defaults(func=run)


def parse_params(items: list[str]) -> dict:
    """``NAME=VALUE`` pairs of ``-P``: VALUE read as YAML (``3``, ``true``, ``null``,
    ``[1, 2]``), or kept as text when it is not valid YAML. One-line error otherwise."""
    from zoa_lib.book.runner import BookError
    from zoa_lib.config import parse_value, ProfileError
    from zoa_lib.errors import printable

    out = {}
    for item in items:
        name, sep, text = item.partition("=")
        name = name.strip()
        if not sep or not name.isidentifier():
            raise BookError(f"-P {printable(item, quote=True)}: expected NAME=VALUE, e.g. -P mock=3")
        try:
            out[name] = parse_value(text)
        except ProfileError:
            out[name] = text
    return out


def run(args):
    from zoa_lib.book.runner import run_notebooks
    from zoa_lib.io.paths import REPO_ROOT

    overrides = parse_overrides(args.overrides)
    params = parse_params(args.params)
    root = Path(args.root) if args.root else REPO_ROOT
    run_notebooks(args.profile, overrides, root=root, only=args.only, resume=args.resume, params=params,
                  debug=bool(args.run_debug or getattr(args, "debug", False)))
    return 0
