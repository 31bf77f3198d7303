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
    assert "pip install --quiet --require-hashes -r $(LOCK)" in make
    assert "pip install --quiet --no-deps -e ." in make


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


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_holds_no_training_loop_or_physics(path):
    """Notebooks import their logic from zoa_lib: no model.fit, no FFT, no def of physics."""
    nb = json.loads(path.read_text())
    src = "\n".join("".join(c["source"]) for c in nb["cells"] if c["cell_type"] == "code")
    for banned in (".fit(", "GradientTape", "np.fft", "scipy.fft", "rfftn"):
        assert banned not in src, f"{path.name} contains {banned!r}: move it into zoa_lib"


def test_the_notebooks_are_the_toc_chapters():
    from zoa_lib.book import toc_chapters

    chapters = toc_chapters(ROOT)
    assert sorted(c.source for c in chapters) == NOTEBOOKS  # each notebook is one chapter
