"""``zoa run``: execute the book's chapter notebooks with papermill on a profile."""
from __future__ import annotations

from pathlib import Path

from zoa_lib.commands.options import add_command, add_profile_args, add_renamed, parse_overrides


def register(sub):
    p = add_command(
        sub, "run", help="execute the chapter notebooks with papermill",
        description="Execute the notebooks listed in _toc.yml with papermill on a profile, writing executed "
                    "copies to book/chapters/ (the stripped sources in notebooks/ are never touched). "
                    "Overrides that change results (--set) give the run its own data folder, "
                    "data/<profile>-<hash>, printed first. Chapter parameters (--param) reach the chapters "
                    "that take them. A failed chapter keeps its executed notebook, with the traceback, in "
                    "<data folder>/book/failed/, and the command exits non-zero.",
        examples=["zoa run --profile ci                              # every chapter, the CI sizes",
                  "zoa run --profile laptop --only 05 --resume",
                  "zoa run --set survey.catalogue=data/cf4-table2-first9999.csv   # networks for that sky",
                  "zoa run --only 07 --param catalogue_path=/data/cf4.csv --param baseline=null"])
    add_profile_args(p)
    p.add_argument("--param", dest="params", action="append", default=[], metavar="NAME=VALUE",
                   help="set a chapter parameter (mock, catalogue_path, baseline, ...) in the chapters that "
                        "have it, e.g. --param catalogue_path=/data/cf4.csv; VALUE is read as YAML (3, true, null), "
                        "else as text (repeatable)")
    add_renamed(p, "-P", "--param NAME=VALUE")
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
    """``NAME=VALUE`` pairs of ``--param``: VALUE read as YAML (``3``, ``true``, ``null``,
    ``[1, 2]``), or kept as text when it is not valid YAML. One-line error otherwise."""
    from zoa_lib.book.runner import BookError
    from zoa_lib.config import ProfileError, parse_value
    from zoa_lib.errors import printable

    out = {}
    for item in items:
        name, sep, text = item.partition("=")
        name = name.strip()
        if not sep or not name.isidentifier():
            raise BookError(f"--param {printable(item, quote=True)}: expected NAME=VALUE, e.g. --param mock=3")
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
    # the chapter table is this command's output: one line per chapter as it finishes
    run_notebooks(args.profile, overrides, root=root, only=args.only, resume=args.resume, params=params,
                  debug=bool(args.run_debug or getattr(args, "debug", False)), log=lambda line: print(line, flush=True))
    return 0
