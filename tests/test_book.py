"""End to end: `zoa run --profile ci` then `zoa book` into a temporary folder."""
import json
import re
from pathlib import Path

import pytest

from zoa_lib.book import toc_chapters


@pytest.mark.slow
def test_every_chapter_page_is_built(built_book):
    html = built_book / "_build" / "html"
    assert (html / "index.html").exists()
    for ch in toc_chapters(built_book):
        page = html / "book" / "chapters" / f"{ch.name}.html"
        assert page.exists(), page
        text = page.read_text()
        assert "Traceback" not in text


@pytest.mark.slow
def test_cosmology_chapter_has_figures_and_glued_numbers(built_book):
    page = (built_book / "_build/html/book/chapters/01-cosmology.html").read_text()
    imgs = re.findall(r'<img[^>]+src="([^"]+)"', page)
    assert len(imgs) >= 2
    for src in imgs:
        assert (built_book / "_build/html/book/chapters" / src).resolve().exists(), src
    # sigma_B(50) glued from the run, not typed: about 300 km/s
    text = re.sub(r"<[^>]+>", " ", page)
    assert re.search(r"\|?\s*30[0-9]\s", text), "sigma_B(50 Mpc/h) missing from the table"


@pytest.mark.slow
def test_landing_page_names_the_profile(built_book):
    page = (built_book / "_build/html/book/intro.html").read_text()
    text = re.sub(r"\s+", " ", re.sub(r"<[^>]+>", "", page))
    assert "zoa run --profile ci" in text
    assert "01-cosmology" in page
    assert "What did not run at paper scale" in text
    assert re.search(r"grid \(voxels per side\) 16 128", text), "scale table missing from the landing page"
    # the scorecard comes first: before the paper's summary and the run info
    assert "This run at a glance" in text
    assert text.index("This run at a glance") < text.index("What the paper did") < text.index("What did not run")
    assert re.search(r"r\(φ\), held-out mocks, survey sphere \(mean over mocks\) 0\.98 ", text)


def test_scale_comparison_lists_exactly_the_settings_that_differ():
    from zoa_lib.book import scale_comparison
    from zoa_lib.config import load_profile

    assert scale_comparison(load_profile("paper")) == []
    ci = {r["setting"]: r for r in scale_comparison(load_profile("ci"))}
    assert ci["grid (voxels per side)"]["this run"] == "16" and ci["grid (voxels per side)"]["paper"] == "128"
    assert ci["training epochs"]["paper"] == "200"
    # an override that makes one setting equal to the paper's removes its row
    same = {r["setting"] for r in scale_comparison(load_profile("ci", {"training.epochs": 200}))}
    assert "training epochs" not in same and "grid (voxels per side)" in same


@pytest.mark.slow
def test_sources_never_overwritten(built_book):
    src = Path(__file__).resolve().parent.parent / "notebooks"
    for p in src.glob("*.ipynb"):
        nb = json.loads(p.read_text())
        assert all(not c.get("outputs") for c in nb["cells"] if c["cell_type"] == "code")


def test_native_tensorflow_logs_are_dropped_but_real_stderr_kept(tmp_path):
    import nbformat
    from nbformat.v4 import new_code_cell, new_notebook, new_output

    from zoa_lib.book import _tag_for_book

    tf_noise = ("WARNING: All log messages before absl::InitializeLog() is called are written to STDERR\n"
                "I0000 00:00:1795580541.614620   20636 cudart_stub.cc:31] Could not find cuda drivers on "
                "your machine, GPU will not be used.\n")
    cuinit = ("E0000 00:00:1795580549.554233   20636 cuda_platform.cc:52] failed call to cuInit: INTERNAL: "
              "CUDA error\n")
    real = "UserWarning: the Wiener filter did not converge in 500 iterations\n"
    cell = new_code_cell("x = 1", outputs=[new_output("stream", name="stderr", text=tf_noise),
                                           new_output("stream", name="stderr", text=cuinit),
                                           new_output("stream", name="stderr", text=tf_noise + real),
                                           new_output("stream", name="stdout", text="I0000 not stderr\n")])
    params = new_code_cell("profile = 'ci'", metadata={"tags": ["injected-parameters"]})
    p = tmp_path / "ch.ipynb"
    nbformat.write(new_notebook(cells=[params, cell]), p)
    _tag_for_book(p)
    nb = nbformat.read(p, 4)
    assert "remove-cell" in nb.cells[0].metadata.tags
    texts = [o["text"] for o in nb.cells[1].outputs]
    assert texts == [tf_noise + real, "I0000 not stderr\n"]


def test_zoa_run_takes_a_profile_file_outside_profiles(tmp_path):
    """`zoa run --profile my.yml` (issue 15): the notebooks get the file's absolute path, not its
    name, which `load_profile` would look for in profiles/ and not find."""
    import os
    import shutil
    import subprocess

    from conftest import ZOA
    from zoa_lib.book import prepare_root
    from zoa_lib.config import PROFILES_DIR

    root = prepare_root(tmp_path / "root")
    mine = tmp_path / "elsewhere" / "my-ci.yml"
    mine.parent.mkdir()
    shutil.copy(PROFILES_DIR / "ci.yml", mine)
    env = dict(os.environ, ZOA_DATA=str(tmp_path / "data"), MPLBACKEND="Agg")
    run = subprocess.run(ZOA + ["run", "--profile", os.path.relpath(mine), "--only", "01", "--root", str(root)],
                         capture_output=True, text=True, env=env)
    assert run.returncode == 0, run.stdout[-2000:] + run.stderr[-2000:]
    nb = json.loads((root / "book" / "chapters" / "01-cosmology.ipynb").read_text())
    injected = "".join("".join(c["source"]) for c in nb["cells"]
                       if "injected-parameters" in c.get("metadata", {}).get("tags", []))
    assert str(mine.resolve()) in injected


def test_scenes_go_to_the_book_root_wherever_the_notebook_runs(tmp_path):
    """Chapter 08 writes its scenes under <book root>/book/_static/scenes: the run's root when
    executed by `zoa run` (cwd <root>/book/chapters), the repository when opened elsewhere
    (e.g. notebooks/, where it used to write an untracked _static/ beside the sources)."""
    from zoa_lib.book import REPO_ROOT, prepare_root, scenes_dir

    root = prepare_root(tmp_path / "root")
    chapters = root / "book" / "chapters"
    chapters.mkdir(parents=True, exist_ok=True)
    assert scenes_dir(chapters) == (root / "book" / "_static" / "scenes").resolve()
    assert scenes_dir(REPO_ROOT / "notebooks") == REPO_ROOT / "book" / "_static" / "scenes"
    assert scenes_dir(tmp_path) == REPO_ROOT / "book" / "_static" / "scenes"
