"""Packaging invariants: requirements.lock pins pyproject.toml with hashes, environment.yml installs it; notebooks are committed clean."""
import json
import re
import tomllib
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
LOCK = ROOT / "requirements.lock"


def _name(req: str) -> str:
    return re.split(r"[\[<>=!~ ;]", req.strip(), maxsplit=1)[0].lower().replace("_", "-").replace(".", "-")


def _lock_entries() -> dict[str, tuple[str, list[str]]]:
    """requirements.lock as {name: (version, [sha256 hashes])}."""
    entries, name = {}, None
    for line in LOCK.read_text().splitlines():
        m = re.match(r"^([A-Za-z0-9_.\-]+)(\[[^\]]*\])?==([^ ;\\]+)", line)
        if m:
            name = _name(m.group(1))
            entries[name] = (m.group(3), [])
        for h in re.findall(r"--hash=sha256:([0-9a-f]{64})", line):
            entries[name][1].append(h)
    return entries


def _locked_requirements() -> list[str]:
    """What the lock must cover: the dependencies and the locked extras (the Makefile's LOCK_EXTRAS)."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    extras = re.search(r"^LOCK_EXTRAS \?= (.*)$", (ROOT / "Makefile").read_text(), re.M).group(1).split()
    return project["dependencies"] + [r for e in extras for r in project["optional-dependencies"][e]]


def test_lock_pins_every_dependency_with_hashes():
    from packaging.requirements import Requirement

    lock = _lock_entries()
    assert len(lock) > 50, "requirements.lock looks empty"
    unhashed = [n for n, (_, hashes) in lock.items() if not hashes]
    assert not unhashed, f"no hash for {unhashed}"
    for req in map(Requirement, _locked_requirements()):
        name = _name(req.name)
        assert name in lock, f"{name} is in pyproject.toml but not in requirements.lock: run `make lock`"
        version = lock[name][0]
        assert req.specifier.contains(version, prereleases=True), (
            f"{name}: requirements.lock pins {version}, pyproject.toml asks {req.specifier}: run `make lock`")
    assert "distributed" in lock, "dask[distributed]'s distributed is not locked"


def test_lock_made_by_uv_for_python_311_linux():
    head = LOCK.read_text().splitlines()[:3]
    cmd = " ".join(head)
    for part in ("uv pip compile pyproject.toml", "--generate-hashes", "--python-version 3.11",
                 "--python-platform x86_64-unknown-linux-gnu", "-o requirements.lock"):
        assert part in cmd, f"requirements.lock not made by `make lock` ({part!r} missing)"
    make = (ROOT / "Makefile").read_text()
    # bytecode compiled at install: with PYTHONDONTWRITEBYTECODE set (as on the project's machines)
    # every process would otherwise compile TensorFlow's modules again on import
    assert ("uv pip install --quiet --no-config --python $(BIN)/python --require-hashes --compile-bytecode "
            "-r $(LOCK)") in make
    assert "uv pip install --quiet --no-config --python $(BIN)/python --no-deps -e ." in make


def test_environment_yml_installs_the_lock():
    env = yaml.safe_load((ROOT / "environment.yml").read_text())["dependencies"]
    assert "python=3.11" in env
    pip = [d for d in env if isinstance(d, dict) and "pip" in d]
    assert pip and pip[0]["pip"] == ["-r requirements.lock"], "environment.yml must install requirements.lock"
    conda_pkgs = [d for d in env if isinstance(d, str) and not d.startswith(("python", "pip"))]
    assert not conda_pkgs, f"conda packages outside the lock: {conda_pkgs}"


def test_required_packages_declared():
    py = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    names = {_name(r) for r in py["dependencies"]}
    for pkg in ("tensorflow", "numpy", "h5py", "matplotlib", "pyvista", "jupyter-book", "papermill",
                "ipywidgets", "astropy", "colossus", "scipy", "pyyaml", "tqdm", "dask", "sphinx-mathjax-offline"):
        assert pkg in names
    assert any("tensorflow[and-cuda]" in r for r in py["optional-dependencies"]["gpu"])
    assert py["scripts"]["zoa"] == "zoa_lib.cli:main"


NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_stripped_with_parameters_cell(path):
    nb = json.loads(path.read_text())
    code = [c for c in nb["cells"] if c["cell_type"] == "code"]
    assert all(not c.get("outputs") for c in code), f"{path.name} has outputs committed"
    assert all(c.get("execution_count") is None for c in code), f"{path.name} has execution counts"
    params = [c for c in code if "parameters" in c.get("metadata", {}).get("tags", [])]
    assert len(params) == 1, f"{path.name} needs exactly one cell tagged 'parameters'"
    src = "".join(params[0]["source"])
    assert "profile" in src and "overrides" in src


#: The widest code line of a notebook: the book's code column shows 100 characters without a
#: sideways scroll.
NOTEBOOK_LINE_WIDTH = 100
#: Tags that fold a code cell's input on the page (a "show code" toggle) or remove it.
FOLD_TAGS = {"hide-input", "remove-input"}


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_code_fits_the_page_and_is_folded(path):
    """Every code line fits the page (≤ 100 characters) and every code cell is tagged hide-input
    or remove-input (the parameters cell too, folded: it is never removed, papermill injects the
    run's parameters after it), so a page shows its prose and figures first."""
    nb = json.loads(path.read_text(encoding="utf-8"))
    wide, bare, removed = [], [], []
    for c in nb["cells"]:
        if c["cell_type"] != "code":
            continue
        for n, line in enumerate("".join(c["source"]).splitlines(), 1):
            if len(line) > NOTEBOOK_LINE_WIDTH:
                wide.append(f"cell {c.get('id')} line {n} ({len(line)} characters): {line.strip()[:60]}")
        tags = set(c.get("metadata", {}).get("tags", []))
        if not tags & FOLD_TAGS:
            bare.append(c.get("id"))
        if "remove-cell" in tags:
            removed.append(c.get("id"))
    assert not wide, f"{path.name}: code lines wider than {NOTEBOOK_LINE_WIDTH}: {wide}"
    assert not bare, f"{path.name}: code cells tagged neither hide-input nor remove-input: {bare}"
    assert not removed, f"{path.name}: code cells tagged remove-cell (fold them instead): {removed}"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_json_is_canonical(path):
    """Committed as json.dumps(nb, indent=1, ensure_ascii=False) plus a newline, with unique
    cell ids: a script that loads and dumps a notebook that way changes only what it meant to."""
    text = path.read_text(encoding="utf-8")
    nb = json.loads(text)
    assert text == json.dumps(nb, indent=1, ensure_ascii=False) + "\n", f"{path.name} is not canonical JSON"
    ids = [c.get("id") for c in nb["cells"]]
    assert all(ids) and len(set(ids)) == len(ids), f"{path.name}: missing or repeated cell ids"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_holds_no_training_loop_or_physics(path):
    """Notebooks import their logic from zoa_lib: no model.fit, no FFT, no def of physics."""
    nb = json.loads(path.read_text())
    src = "\n".join("".join(c["source"]) for c in nb["cells"] if c["cell_type"] == "code")
    for banned in (".fit(", "GradientTape", "np.fft", "scipy.fft", "rfftn"):
        assert banned not in src, f"{path.name} contains {banned!r}: move it into zoa_lib"


#: Library calls that work on one mock (or one realization) at a time: calling them in a
#: loop over a stack of mocks belongs in zoa_lib, which has a batched function for it.
PER_MOCK_CALLS = {"reconstruct", "reconstruct_inputs", "reconstruct_surveys", "predict", "predict_stack",
                  "velocities_from_potentials", "velocity_from_potential", "velocity_from_density",
                  "potential_from_density", "gradient", "make_sample", "sample_from_cube", "cube_targets",
                  "draw_galaxies", "grid_catalog", "make_parent_box", "locate_attractor", "locate_convergence",
                  "structure_probe", "attractor_search"}


def _code(nb) -> str:
    """The code cells of a notebook as one Python source (IPython magics and shell lines dropped)."""
    lines = []
    for c in nb["cells"]:
        if c["cell_type"] == "code":
            lines += [ln for ln in "".join(c["source"]).splitlines() if not ln.lstrip().startswith(("%", "!"))]
            lines.append("")
    return "\n".join(lines)


def _mock_loops(src: str) -> list[str]:
    """Loops (for statements and comprehensions) that walk over mocks, as "line: reason":
    any loop over ``range(...)`` (an index over mocks, realizations or levels), and any loop
    over an array taken from a container (``x[...]``, ``obj.attr``, directly or through
    zip/enumerate) whose body calls a per-mock library function (:data:`PER_MOCK_CALLS`)."""
    import ast

    def name(call):
        f = call.func
        return f.attr if isinstance(f, ast.Attribute) else getattr(f, "id", "")

    def iterables(it):
        if isinstance(it, ast.Call) and name(it) in ("zip", "enumerate", "reversed"):
            return [a for arg in it.args for a in iterables(arg)]
        return [it]

    found = []
    for node in ast.walk(ast.parse(src)):
        if isinstance(node, (ast.For, ast.AsyncFor)):
            loops, body = [node.iter], node.body + node.orelse
        elif isinstance(node, (ast.ListComp, ast.SetComp, ast.GeneratorExp, ast.DictComp)):
            loops = [g.iter for g in node.generators]
            body = [node.elt] if not isinstance(node, ast.DictComp) else [node.key, node.value]
        else:
            continue
        its = [i for it in loops for i in iterables(it)]
        calls = {name(c) for b in body for c in ast.walk(b) if isinstance(c, ast.Call)}
        if any(isinstance(i, ast.Call) and name(i) == "range" for i in its):
            found.append(f"line {node.lineno}: a loop over range(...)")
        elif any(isinstance(i, (ast.Subscript, ast.Attribute)) for i in its) and calls & PER_MOCK_CALLS:
            found.append(f"line {node.lineno}: {', '.join(sorted(calls & PER_MOCK_CALLS))} per mock in a loop")
    return found


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_holds_no_loop_over_mocks_or_file_time_logic(path):
    """Notebooks call batched library functions instead of looping over mocks, and leave
    "is this file up to date" decisions (file times) to zoa_lib."""
    src = _code(json.loads(path.read_text()))
    assert not _mock_loops(src), f"{path.name}: {'; '.join(_mock_loops(src))}: move it into zoa_lib"
    for banned in ("st_mtime", "getmtime", "os.stat("):
        assert banned not in src, f"{path.name} contains {banned!r}: file-time logic belongs in zoa_lib"


def test_the_notebook_guard_can_fail():
    """The loop and file-time guards catch what they are meant to (and not a loop over methods)."""
    bad = ["for i in range(n):\n    p.append(training.predict(model, x[i]))\n",
           "v = [velocity.velocity_from_potential(p, L, c) for p in pred['phi']]\n",
           "for i, x in enumerate(sh.inputs):\n    out.append(evaluation.reconstruct('wiener', x, prof))\n",
           "rows = [f(k) for k in range(3)]\n"]
    for src in bad:
        assert _mock_loops(src), src
    ok = "for m in methods:\n    rec = evaluation.reconstruct(m, sh['inputs'][0], prof)\n"
    assert not _mock_loops(ok)
    assert _code({"cells": [{"cell_type": "code", "source": ["%matplotlib inline\n", "x = 1"]}]}) == "x = 1\n"


def test_the_notebooks_are_the_toc_chapters():
    from zoa_lib.book.runner import toc_chapters

    chapters = toc_chapters(ROOT)
    assert sorted(c.source for c in chapters) == NOTEBOOKS  # each notebook is one chapter


def test_every_subpackage_is_listed_for_a_non_editable_install():
    setuptools = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    listed, mapped = set(setuptools["packages"]), setuptools["package-dir"]
    found = {".".join(p.parent.relative_to(ROOT).parts) for p in (ROOT / "zoa_lib").rglob("__init__.py")
             if "__pycache__" not in p.parts}
    assert found == listed - set(mapped), (sorted(found - listed), sorted(listed - found - set(mapped)))
    # the shipped files: the repository's profiles/ and data/ tables, as packages of the wheel
    assert mapped == {"zoa_lib.profiles": "profiles", "zoa_lib.tables": "data"}
    for pkg, folder in mapped.items():
        assert (ROOT / folder / "__init__.py").is_file() and pkg in listed


@pytest.mark.slow
def test_a_built_wheel_runs_from_anywhere_with_its_shipped_profiles_and_tables(tmp_path):
    """Not editable: the wheel is built (uv build), installed without the checkout into a fresh
    venv (the dependencies are this environment's, seen through a .pth file), and ``zoa profile
    list`` and ``zoa catalog`` on the shipped CF4 table run from the installed package, which
    finds its profiles and tables through importlib.resources."""
    import shutil
    import subprocess
    import sys

    uv = Path(sys.executable).with_name("uv")
    if not uv.exists():
        pytest.skip("uv is not in this environment (make install puts it there)")
    src, dist = tmp_path / "src", tmp_path / "dist"  # a copy: setuptools builds in the source tree (build/)
    src.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, src / name)
    skip = shutil.ignore_patterns("__pycache__", "*.pyc")
    shutil.copytree(ROOT / "zoa_lib", src / "zoa_lib", ignore=skip)
    shutil.copytree(ROOT / "profiles", src / "profiles", ignore=skip)
    (src / "data").mkdir()
    for p in (ROOT / "data").iterdir():
        if p.is_file() and p.suffix in (".csv", ".tsv", ".md", ".py"):
            shutil.copy(p, src / "data" / p.name)
    subprocess.run([str(uv), "build", "--wheel", "--no-config", "--quiet", "--out-dir", str(dist), str(src)],
                   check=True, capture_output=True, text=True, timeout=600)
    (wheel,) = dist.glob("zoa-*.whl")
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=120)
    site = next((venv / "lib").glob("python3*/site-packages"))
    deps = [p for p in sys.path if p.endswith("site-packages")]
    (site / "deps.pth").write_text("\n".join(deps) + "\n")
    subprocess.run([str(uv), "pip", "install", "--quiet", "--no-config", "--no-deps", "--python",
                    str(venv / "bin" / "python"), str(wheel)], check=True, capture_output=True, text=True, timeout=300)
    away = tmp_path / "elsewhere"
    away.mkdir()
    py = str(venv / "bin" / "python")
    where = subprocess.run([py, "-c", "import zoa_lib, zoa_lib.io.paths as p; print(zoa_lib.__file__); "
                                      "print(p.shipped_dir('profiles')); print(p.IN_CHECKOUT)"],
                           cwd=away, check=True, capture_output=True, text=True).stdout.split()
    assert Path(where[0]).is_relative_to(site) and Path(where[1]).is_relative_to(site) and where[2] == "False"
    zoa = str(venv / "bin" / "zoa")
    listed = subprocess.run([zoa, "profile", "list"], cwd=away, check=True, capture_output=True, text=True).stdout
    for name in ("ci", "laptop", "workstation", "paper"):
        assert re.search(rf"^\s*{name}\b", listed, re.M), listed
    table = away / "data" / "cf4-table2-first9999.csv"
    table.parent.mkdir()
    shutil.copy(ROOT / "data" / "cf4-table2-first9999.csv", table)  # the command line, from a folder
    out = subprocess.run([zoa, "catalog", "data/cf4-table2-first9999.csv"], cwd=away, check=True,
                         capture_output=True, text=True).stdout
    assert "9999 data rows, 9999 kept, 0 dropped" in out, out
