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
