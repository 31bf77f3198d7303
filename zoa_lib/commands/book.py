"""``zoa book``: build the Jupyter Book from the executed notebooks."""
from __future__ import annotations

from pathlib import Path


def register(sub):
    p = sub.add_parser(
        "book", help="build the Jupyter Book (HTML) from executed notebooks",
        description="Build the Jupyter Book into _build/html. Notebooks are not executed "
                    "here: run 'zoa run' first.")
    p.add_argument("--root", default=None, help="book root holding _config.yml (default: the repository)")
    p.add_argument("--path-output", default=None,
                   help="folder in which _build/html is written (default: the book root)")
    p.set_defaults(func=run)


def run(args):
    from zoa_lib.book.runner import build_book
    from zoa_lib.io.paths import REPO_ROOT

    root = Path(args.root) if args.root else REPO_ROOT
    build_book(root, args.path_output)
    return 0
