"""Text that stays true: the README's package table and the design's module table list the
package as it is (read from the source tree, not typed twice)."""
from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PKG = ROOT / "zoa_lib"


def package_modules() -> set[str]:
    """Every module and package of zoa_lib, dotted, without the ``zoa_lib.`` prefix."""
    out = set()
    for p in PKG.rglob("*.py"):
        if "__pycache__" in p.parts:
            continue
        parts = list(p.relative_to(PKG).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        if parts:
            out.add(".".join(parts))
    return out


def design_table() -> set[str]:
    """The modules the design's module table names: ``a.b`` in backticks, and ``pkg (package:
    `x`, `y`)`` for the modules of a package."""
    text = (ROOT / "docs" / "DESIGN.md").read_text()
    table = text[text.index("| module | what it holds |"):].split("\n\n")[0]
    rows = [line.split("|")[1] for line in table.splitlines() if line.startswith("| `")]
    named = set()
    for cell in rows:
        for m in re.finditer(r"`([a-z0-9_.]+)`(?: \(package: ([^)]*)\))?", cell):
            named.add(m.group(1))
            if m.group(2):
                named |= {f"{m.group(1)}.{x}" for x in re.findall(r"`([a-z0-9_]+)`", m.group(2))}
    return named


def test_the_design_table_lists_every_module_and_no_other():
    modules, named = package_modules(), design_table()
    covered = {m for m in modules if m in named or m.split(".")[0] == "commands" and "commands" in named}
    wings = {m for m in modules if "." not in m and (PKG / m).is_dir()}
    assert modules - covered - wings == set()  # the wings are the table's headings
    assert named - modules == set()


def test_the_readme_table_lists_the_packages():
    text = (ROOT / "README.md").read_text()
    listed = set(re.findall(r"^\| `zoa_lib\.([a-z_]+)` \|", text, re.M))
    packages = {p.name for p in PKG.iterdir() if (p / "__init__.py").is_file() and p.name != "commands"}
    assert listed == packages


def test_the_table_check_sees_a_missing_module(monkeypatch):
    monkeypatch.setattr(Path, "read_text", lambda self, *a, **k: "| module | what it holds |\n|---|---|\n"
                        "| `universe.fourier` | x |\n\n| `ci` | a profile |\n")
    assert design_table() == {"universe.fourier"}


def test_every_dotted_name_in_the_prose_exists():
    """``zoa_lib.a.b`` (or ``zoa_lib.a.b.name``) in the README, the design, the book's prose, the
    notebooks and the library's docstrings names a module, or a name that module defines."""
    from test_architecture import MODULES, defined_names

    texts = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md")), *sorted((ROOT / "book").glob("*.md")),
             *sorted((ROOT / "notebooks").glob("*.ipynb")), *sorted(PKG.rglob("*.py"))]
    shipped = {"zoa_lib.profiles", "zoa_lib.tables"}  # the wheel's packages of shipped files
    stale = []
    for path in texts:
        for dotted in set(re.findall(r"zoa_lib(?:\.[A-Za-z_][A-Za-z0-9_]*)+", path.read_text())) - shipped:
            parts = dotted.split(".")
            mods = [".".join(parts[:k]) for k in range(len(parts), 0, -1) if ".".join(parts[:k]) in MODULES]
            rest = parts[len(mods[0].split(".")):] if mods else parts
            if not mods or (rest and rest[0] not in defined_names(mods[0])):
                stale.append(f"{path.name}: {dotted}")
    assert stale == []
