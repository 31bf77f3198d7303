"""Packaging invariants: pyproject and environment.yml agree; notebooks are committed clean."""
import json
import re
import tomllib
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
# conda names that differ from PyPI names
CONDA_TO_PYPI = {"distributed": "dask"}


def _name(req: str) -> str:
    return re.split(r"[\[<>=!~ ]", req.strip(), maxsplit=1)[0].lower().replace("_", "-")


def _spec(req: str) -> str:
    return re.sub(r"^[A-Za-z0-9_.\-]+(\[[^\]]*\])?", "", req.strip()).replace(" ", "")


def test_environment_yml_matches_pyproject():
    py = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    env = yaml.safe_load((ROOT / "environment.yml").read_text())["dependencies"]
    env = [d for d in env if isinstance(d, str) and not d.startswith(("python", "pip"))]
    py_specs = {_name(r): _spec(r) for r in py}
    env_specs = {}
    for d in env:
        n = _name(d)
        env_specs[CONDA_TO_PYPI.get(n, n)] = _spec(d)
    assert set(py_specs) == set(env_specs), (
        f"only in pyproject: {sorted(set(py_specs) - set(env_specs))}; "
        f"only in environment.yml: {sorted(set(env_specs) - set(py_specs))}")
    for n, s in py_specs.items():
        assert env_specs[n] == s, f"{n}: pyproject says {s!r}, environment.yml says {env_specs[n]!r}"


def test_required_packages_declared():
    py = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    names = {_name(r) for r in py["dependencies"]}
    for pkg in ("tensorflow", "numpy", "h5py", "matplotlib", "pyvista", "jupyter-book", "papermill",
                "ipywidgets", "astropy", "colossus", "scipy", "pyyaml", "tqdm", "dask"):
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
