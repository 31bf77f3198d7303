"""End to end: `zoa run --profile ci` then `zoa book` into a temporary folder."""
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from zoa_lib.book import prepare_root, toc_chapters

ZOA = [sys.executable, "-m", "zoa_lib.cli"]


@pytest.fixture(scope="session")
def built_book(tmp_path_factory):
    """Run every chapter at the ci profile and build the HTML; shared by the book tests."""
    root = prepare_root(tmp_path_factory.mktemp("book"))
    env = dict(os.environ, ZOA_DATA=str(root / "data"), MPLBACKEND="Agg")
    run = subprocess.run(ZOA + ["run", "--profile", "ci", "--root", str(root)],
                         capture_output=True, text=True, env=env)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    build = subprocess.run(ZOA + ["book", "--root", str(root)], capture_output=True, text=True, env=env)
    assert build.returncode == 0, build.stdout[-3000:] + build.stderr[-3000:]
    return root


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


@pytest.mark.slow
def test_sources_never_overwritten(built_book):
    src = Path(__file__).resolve().parent.parent / "notebooks"
    import json
    for p in src.glob("*.ipynb"):
        nb = json.loads(p.read_text())
        assert all(not c.get("outputs") for c in nb["cells"] if c["cell_type"] == "code")
