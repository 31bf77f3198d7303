"""``zoa book``: build the Jupyter Book from the executed notebooks."""
from __future__ import annotations

from pathlib import Path

from zoa_lib.commands.options import add_command, add_renamed


def register(sub):
    p = add_command(
        sub, "book", help="build the Jupyter Book (HTML) from executed notebooks",
        description="Build the Jupyter Book into <output>/_build/html from the chapters 'zoa run' executed "
                    "(book/chapters/). Notebooks are not executed here, and the profile is the one of that "
                    "run (no --profile): chapters from different runs are refused in one line naming them.",
        examples=["zoa run --profile ci && zoa book          # _build/html/index.html in the repository",
                  "zoa book --output /tmp/zoa-book            # /tmp/zoa-book/_build/html/index.html"])
    p.add_argument("--root", default=None, help="book root holding _config.yml (default: the repository)")
    p.add_argument("-o", "--output", default=None, metavar="DIR",
                   help="folder in which _build/html is written (default: the book root)")
    add_renamed(p, "--path-output", "--output DIR")
    p.set_defaults(func=run)


def run(args):
    from zoa_lib.book.runner import build_book
    from zoa_lib.io.paths import REPO_ROOT

    root = Path(args.root) if args.root else REPO_ROOT
    build_book(root, args.output)
    return 0
