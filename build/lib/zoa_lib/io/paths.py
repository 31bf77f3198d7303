"""Where things are: the files shipped with zoa, the source checkout, and paths as pages and
logs show them.

Shipped files (:func:`shipped`) are found through :mod:`importlib.resources`, as astropy and
colossus find theirs, so that a checkout, an editable install and a wheel installed anywhere read
the same tables: the repository's ``profiles/`` is the package ``zoa_lib.profiles`` and its
``data/`` tables the package ``zoa_lib.tables`` (``pyproject.toml``, ``[tool.setuptools.package-dir]``).
"""
from __future__ import annotations

import importlib.resources
import os
import re
from pathlib import Path

#: The folder holding ``zoa_lib/``: the source checkout (its notebooks, book and default data
#: folder) when zoa runs from one; the environment's library folder for an installed wheel.
REPO_ROOT = Path(__file__).resolve().parents[2]
#: Whether zoa runs from a source checkout (the book's notebooks and ``_toc.yml`` are there).
IN_CHECKOUT = (REPO_ROOT / "pyproject.toml").is_file() and (REPO_ROOT / "zoa_lib").is_dir()
#: The packages that hold the shipped files, by kind.
SHIPPED_PACKAGES = {"tables": "zoa_lib.tables", "profiles": "zoa_lib.profiles"}


def shipped_dir(kind: str = "tables") -> Path:
    """The folder of the shipped ``kind`` of file: ``tables`` (the real catalogues and the
    literature tables of ``data/``) or ``profiles`` (the YAML profiles of ``profiles/``)."""
    if kind not in SHIPPED_PACKAGES:
        raise ValueError(f"shipped: unknown kind {kind!r} (known: {', '.join(SHIPPED_PACKAGES)})")
    return Path(str(importlib.resources.files(SHIPPED_PACKAGES[kind])))


def shipped(name: str, kind: str = "tables") -> Path:
    """The shipped file ``name`` (e.g. ``cf4-table2-first9999.csv``) of :func:`shipped_dir`."""
    return shipped_dir(kind) / name


def data_root() -> Path:
    """The folder a relative ``data_dir`` of a profile is taken from: the checkout, or the
    working directory where zoa is an installed wheel."""
    return REPO_ROOT if IN_CHECKOUT else Path.cwd()


def book_root(start: str | os.PathLike | None = None) -> Path | None:
    """The nearest folder at or above ``start`` (default: the working directory) holding a
    ``_toc.yml`` — the book root a chapter runs in (``zoa run --root``); None if none."""
    p = Path(start if start is not None else os.getcwd()).absolute()
    for d in (p, *p.parents):
        if (d / "_toc.yml").is_file():
            return d
    return None


def _display_bases(root: str | os.PathLike | None = None) -> list[tuple[Path, str]]:
    """(absolute folder, how a page names it) in order of preference: the repository and the
    book root as relative paths, then ``$ZOA_DATA`` and the home folder by name."""
    bases: list[tuple[Path, str]] = [(REPO_ROOT, "")]
    broot = Path(root) if root is not None else book_root()
    if broot is not None:
        bases.append((broot, ""))
    if os.environ.get("ZOA_DATA"):
        bases.append((Path(os.environ["ZOA_DATA"]), "$ZOA_DATA/"))
    bases.append((Path.home(), "~/"))
    out, seen = [], set()
    for base, label in bases:  # each folder as written and with links resolved (/tmp → /private/tmp)
        for b in (base.absolute(), base.resolve()):
            if str(b) not in seen and str(b) != "/":
                seen.add(str(b))
                out.append((b, label))
    return out


def display_path(path: str | os.PathLike, root: str | os.PathLike | None = None) -> str:
    """``path`` as a page or a log line should show it: relative to the repository (or to the
    book root ``root``, default the one above the working directory), else under
    ``$ZOA_DATA/`` or ``~/``, else ``…/<parent>/<name>`` — never the machine's absolute path.

    >>> display_path(REPO_ROOT / "data" / "laptop" / "mocks")
    'data/laptop/mocks'
    """
    p = Path(path)
    if not p.is_absolute():
        return p.as_posix()
    for base, label in _display_bases(root):
        for q in (p, p.resolve()):
            try:
                rel = q.relative_to(base).as_posix()
            except ValueError:
                continue
            return label + rel if rel != "." else (label.rstrip("/") or ".")
    return "…/" + "/".join(p.parts[-2:]) if len(p.parts) > 2 else p.name


def scrub_paths(text: str, root: str | os.PathLike | None = None) -> str:
    """Replace, in free text, every absolute path under the repository, the book root
    ``root``, ``$ZOA_DATA`` or the home folder by its :func:`display_path` form (used on
    executed chapters before they become pages: text a notebook formats itself)."""
    for base, label in _display_bases(root):  # in display_path's order of preference
        text = re.sub(re.escape(str(base)) + r"(/|(?=[^\w.\-/]|\.(?:\s|$))|$)",
                      lambda m, lab=label: lab if m.group(1) else (lab.rstrip("/") or "."), text)
    return text
