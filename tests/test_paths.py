"""Pages show no absolute path of the machine: zoa_lib.io.paths.display_path and the
book step's scrub of executed chapters."""
import os

import nbformat
import pytest

from zoa_lib.book.runner import scrub_outputs
from zoa_lib.io.paths import REPO_ROOT, book_root, display_path, scrub_paths


@pytest.fixture
def root(tmp_path, monkeypatch):
    """A book root (a folder with _toc.yml) outside the repository, as `zoa run --root` makes."""
    (tmp_path / "book" / "chapters").mkdir(parents=True)
    (tmp_path / "_toc.yml").write_text("format: jb-book\n")
    monkeypatch.delenv("ZOA_DATA", raising=False)
    return tmp_path


def test_display_path_is_relative_to_the_repository():
    assert display_path(REPO_ROOT / "data" / "laptop" / "mocks") == "data/laptop/mocks"
    assert display_path(str(REPO_ROOT / "zoa_lib" / "io" / "atomic.py")) == "zoa_lib/io/atomic.py"
    assert display_path(REPO_ROOT) == "."
    assert display_path("data/ci") == "data/ci"  # already relative: unchanged


def test_display_path_under_a_book_root_zoa_data_or_home(root, monkeypatch):
    monkeypatch.chdir(root / "book" / "chapters")  # where papermill runs a chapter
    assert book_root() == root
    assert display_path(root / "data" / "ci" / "mocks") == "data/ci/mocks"
    other = root.parent / "elsewhere"
    monkeypatch.setenv("ZOA_DATA", str(other))
    assert display_path(other / "ci" / "cf4" / "reconstruction.h5") == "$ZOA_DATA/ci/cf4/reconstruction.h5"
    monkeypatch.setenv("HOME", str(root.parent / "home-of-user"))
    assert display_path(root.parent / "home-of-user" / "cf4.csv") == "~/cf4.csv"


def test_display_path_never_returns_an_unknown_absolute_path(root, monkeypatch):
    monkeypatch.chdir(root)
    shown = display_path("/scratch/project42/catalogues/cf4-full.csv")
    assert shown == "…/catalogues/cf4-full.csv"
    assert not shown.startswith("/")


def test_scrub_paths_in_free_text(root):
    text = (f"written: {root}/data/ci/cf4/reconstruction.h5\n"
            f"trained {REPO_ROOT}/data/ci/models/phi/model.keras (16,205 parameters)\n"
            f"{{'folder': '{root}/data/ci/mocks'}} in {root}. and {root}-other/x")
    out = scrub_paths(text, root)
    assert out == ("written: data/ci/cf4/reconstruction.h5\n"
                   "trained data/ci/models/phi/model.keras (16,205 parameters)\n"
                   f"{{'folder': 'data/ci/mocks'}} in .. and {root}-other/x")  # a sibling folder is not the root


def test_scrub_outputs_of_an_executed_chapter(root):
    nb = nbformat.v4.new_notebook()
    code = nbformat.v4.new_code_cell("print(path)")
    code.outputs = [
        nbformat.v4.new_output("stream", name="stdout", text=f"read {root}/data/ci/mocks\n"),
        nbformat.v4.new_output("display_data", data={"text/markdown": f"from `{REPO_ROOT}/data/x.csv`",
                                                     "image/png": "iVBORw0KGgo="}),
        nbformat.v4.new_output("error", ename="E", evalue=f"{root}/a: bad", traceback=[f"File {root}/b.py"]),
    ]
    params = nbformat.v4.new_code_cell(f'profile = "{root}/my.yml"', metadata={"tags": ["injected-parameters"]})
    nb.cells = [params, code]
    scrub_outputs(nb, root)
    dump = nbformat.writes(nb)
    assert str(root) not in dump and str(REPO_ROOT) not in dump
    assert code.outputs[0]["text"] == "read data/ci/mocks\n"
    assert code.outputs[1]["data"]["text/markdown"] == "from `data/x.csv`"
    assert code.outputs[1]["data"]["image/png"] == "iVBORw0KGgo="
    assert params.source == 'profile = "my.yml"'


def test_catalog_report_names_the_file_relative_to_the_repository():
    from zoa_lib.survey import catalogs

    _, report = catalogs.read_catalog(catalogs.CF4_SAMPLE)
    assert report.summary().startswith(f"data/{catalogs.CF4_SAMPLE.name}: ")
    assert os.path.isabs(report.path)  # the report itself keeps the full path for programs
