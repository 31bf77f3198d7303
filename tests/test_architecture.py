"""The package's shape, read from the source with ``ast``: the pipeline's wings, one home per
name, no import cycles, no private names across modules, no facades.

Every import counts, at module level and inside functions alike (a function-level import is
still a dependency); only imports under ``if TYPE_CHECKING:`` are left out (annotations only).
"""
from __future__ import annotations

import ast
import json
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PKG = ROOT / "zoa_lib"

#: The wings in pipeline order; a module may import its own wing and the wings before it.
#: ``base`` (profiles, errors, files and processes) sits under every wing; the CLI over all.
LAYERS = ("base", "universe", "survey", "methods", "analysis", "book", "cli")
BASE = ("zoa_lib", "zoa_lib.config", "zoa_lib.errors", "zoa_lib.io")
CLI = ("zoa_lib.cli", "zoa_lib.commands")


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


MODULES = {module_name(p): p for p in sorted(PKG.rglob("*.py")) if "__pycache__" not in p.parts}


def layer(mod: str) -> str:
    if mod in BASE or mod.startswith("zoa_lib.io."):
        return "base"
    if mod in CLI or mod.startswith("zoa_lib.commands."):
        return "cli"
    wing = mod.split(".")[1]
    assert wing in LAYERS, f"{mod}: not in a wing ({', '.join(LAYERS[1:-1])}) nor a base module"
    return wing


def _type_checking_nodes(tree) -> set[int]:
    skip = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and getattr(node.test, "id", getattr(node.test, "attr", None)) == "TYPE_CHECKING":
            skip |= {id(n) for n in ast.walk(node)}
    return skip


def imports(source: str, importer: str | None = None):
    """(target module, imported name or None for a module, line) of every zoa_lib import."""
    tree = ast.parse(source)
    skip = _type_checking_nodes(tree)
    is_pkg = importer is not None and MODULES[importer].name == "__init__.py"
    for node in ast.walk(tree):
        if id(node) in skip:
            continue
        if isinstance(node, ast.Import):
            for a in node.names:
                if a.name.split(".")[0] == "zoa_lib":
                    yield a.name, None, node.lineno
        elif isinstance(node, ast.ImportFrom):
            target = node.module or ""
            if node.level:
                base = importer.split(".") if is_pkg else importer.split(".")[:-1]
                base = base[: len(base) - (node.level - 1)]
                target = ".".join(base + ([node.module] if node.module else []))
            if target.split(".")[0] != "zoa_lib":
                continue
            for a in node.names:
                sub = f"{target}.{a.name}"
                yield (sub, None, node.lineno) if sub in MODULES else (target, a.name, node.lineno)


def defined_names(mod: str) -> set[str]:
    """Names a module defines itself (functions, classes, assignments at top level, also in
    top-level if/try/with blocks), not names it imports."""
    out: set[str] = set()

    def visit(body):
        for st in body:
            if isinstance(st, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                out.add(st.name)
            elif isinstance(st, (ast.Assign, ast.AnnAssign)):
                for t in (st.targets if isinstance(st, ast.Assign) else [st.target]):
                    out.update(n.id for n in ast.walk(t) if isinstance(n, ast.Name))
            elif isinstance(st, (ast.If, ast.Try, ast.With)):
                visit(st.body)
                for h in getattr(st, "handlers", []):
                    visit(h.body)
                visit(getattr(st, "orelse", []))
                visit(getattr(st, "finalbody", []))

    visit(ast.parse(MODULES[mod].read_text()).body)
    return out


def graph() -> dict[str, set[str]]:
    return {m: {t for t, _, _ in imports(p.read_text(), m) if t in MODULES and t != m} for m, p in MODULES.items()}


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index, low, stack, on, out, counter = {}, {}, [], set(), [], [0]

    def connect(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in sorted(edges[v]):
            if w not in index:
                connect(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in sorted(edges):
        if v not in index:
            connect(v)
    return out


def callers():
    """(label, source) of every file that imports zoa_lib: the package, the tests, the notebooks."""
    for m, p in MODULES.items():
        yield m, p.read_text(), m
    for p in sorted((ROOT / "tests").glob("*.py")):
        yield f"tests/{p.name}", p.read_text(), None
    for p in sorted((ROOT / "notebooks").glob("*.ipynb")):
        cells = json.loads(p.read_text())["cells"]
        code = "\n".join("".join(c["source"]) for c in cells if c["cell_type"] == "code")
        yield f"notebooks/{p.name}", code, None


# --------------------------------------------------------------------------- the tests
def test_at_most_a_dozen_top_level_entries():
    entries = sorted(p.name for p in PKG.iterdir() if p.name != "__pycache__")
    assert len(entries) <= 12, entries
    for wing in LAYERS[1:-1]:
        assert (PKG / wing / "__init__.py").is_file(), wing


def test_no_import_cycles():
    assert cycles(graph()) == []


def test_the_cycle_finder_finds_a_cycle():
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert cycles({"a": {"b"}, "b": set()}) == []


def test_lower_wings_never_import_upper_ones():
    upward = [f"{m} ({layer(m)}) imports {t} ({layer(t)})"
              for m, targets in graph().items() for t in targets
              if LAYERS.index(layer(t)) > LAYERS.index(layer(m))]
    assert upward == []


def test_no_private_names_across_modules():
    private = [f"{label}:{line}: {t}.{n}" for label, src, m in callers() if not label.startswith("tests/")
               for t, n, line in imports(src, m)
               if n is not None and n.startswith("_") and not n.startswith("__") and t != m]
    assert private == []


def test_every_name_is_imported_from_its_one_home():
    """No facades: a name is imported from the module that defines it, never through a module
    that imports it from elsewhere; package ``__init__`` files define nothing but a docstring."""
    homes = {m: defined_names(m) for m in MODULES}
    facades = [f"{label}:{line}: {n} from {t}" for label, src, m in callers()
               for t, n, line in imports(src, m) if n is not None and t in MODULES and n not in homes[t]]
    assert facades == []
    for m, p in MODULES.items():
        if p.name == "__init__.py" and m != "zoa_lib":
            body = ast.parse(p.read_text()).body
            assert all(isinstance(st, ast.Expr) and isinstance(st.value, ast.Constant) for st in body), \
                f"{m}: a package's __init__ holds its docstring only"


def test_the_home_check_sees_a_facade(tmp_path):
    src = "from zoa_lib.survey.catalogs import write_cf4_csv\n"  # written in catalog_files, not catalogs
    assert [(t, n) for t, n, _ in imports(src)] == [("zoa_lib.survey.catalogs", "write_cf4_csv")]
    assert "write_cf4_csv" not in defined_names("zoa_lib.survey.catalogs")
    assert "write_cf4_csv" in defined_names("zoa_lib.survey.catalog_files")


ISSUE_NUMBER = re.compile(r"\bissues? ?#?\d+|\(#\d+\)", re.I)


@pytest.mark.parametrize("folder,pattern", [("zoa_lib", "**/*.py"), ("tests", "*.py"), ("notebooks", "*.ipynb")])
def test_no_issue_numbers_in_the_library_tests_or_notebooks(folder, pattern):
    """Text that stays true: the code says what it does, not which ticket asked for it."""
    hits = [f"{p.relative_to(ROOT)}: {m.group(0)!r}" for p in sorted((ROOT / folder).glob(pattern))
            if p.name != "test_architecture.py" for m in ISSUE_NUMBER.finditer(p.read_text())]
    assert hits == []


def module_attribute_uses(source: str):
    """(module, attribute, line) of every ``m.name`` where ``m`` is a zoa_lib module imported by
    the source (``from zoa_lib.survey import shards``; ``import zoa_lib.x as m``), skipping
    functions where ``m`` is also a local name."""
    tree = ast.parse(source)
    bound = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] == "zoa_lib":
            for a in node.names:
                if f"{node.module}.{a.name}" in MODULES:
                    bound[a.asname or a.name] = f"{node.module}.{a.name}"
        elif isinstance(node, ast.Import):
            for a in node.names:
                if a.asname and a.name in MODULES:
                    bound[a.asname] = a.name
    local: dict[int, set] = {}

    def walk(node, names):
        for child in ast.iter_child_nodes(node):
            inner = names
            if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef)):
                args = child.args
                inner = names | {a.arg for a in args.args + args.kwonlyargs + args.posonlyargs} | {
                    n.id for n in ast.walk(child) if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Store)}
            local[id(child)] = inner
            walk(child, inner)

    walk(tree, set())
    for node in ast.walk(tree):
        if (isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id in bound
                and node.value.id not in local.get(id(node), set())):
            yield bound[node.value.id], node.attr, node.lineno


def test_every_module_attribute_used_is_defined_there():
    """``viz.plot_slice`` after ``from zoa_lib.book import viz`` would be a facade by another
    name: a module's attribute is a name it defines, or one of its submodules."""
    homes = {m: defined_names(m) for m in MODULES}
    missing = [f"{label}:{line}: {m}.{attr}" for label, src, _ in callers()
               for m, attr, line in module_attribute_uses(src)
               if attr not in homes[m] and f"{m}.{attr}" not in MODULES and not attr.startswith("__")]
    assert missing == []


def test_the_attribute_check_sees_a_facade():
    src = "from zoa_lib.book import viz\nviz.plot_slice(1)\n"
    assert list(module_attribute_uses(src)) == [("zoa_lib.book.viz", "plot_slice", 2)]
