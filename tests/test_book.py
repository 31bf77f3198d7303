"""End to end: `zoa run --profile ci` then `zoa book` into a temporary folder."""
import json
import os
import re
from pathlib import Path

import pytest

from zoa_lib.book.runner import toc_chapters


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
    from zoa_lib.book.run_info import scale_comparison
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

    from zoa_lib.book.runner import _finish_for_book

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
    _finish_for_book(p)
    nb = nbformat.read(p, 4)
    assert "remove-cell" in nb.cells[0].metadata.tags
    texts = [o["text"] for o in nb.cells[1].outputs]
    assert texts == [tf_noise + real, "I0000 not stderr\n"]


def test_zoa_run_takes_a_profile_file_outside_profiles(tmp_path):
    """`zoa run --profile my.yml`: the notebooks get the file's absolute path, not its
    name, which `load_profile` would look for in profiles/ and not find."""
    import os
    import shutil
    import subprocess

    from conftest import ZOA

    from zoa_lib.book.runner import prepare_root
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
    # its data folder is its own, never the built-in ci profile's data/ci, and the run says which
    # (the chapter table is zoa run's output, on stdout as each chapter finishes)
    from zoa_lib.config import run_data_tag

    folder = tmp_path / "data" / f"my-ci-{run_data_tag(mine)}"
    assert f"data folder {folder}" in run.stdout or f"my-ci-{run_data_tag(mine)}" in run.stdout, run.stdout
    assert (folder / "book" / "timings.json").exists() and not (tmp_path / "data" / "ci").exists()
    assert "cuInit" not in run.stdout + run.stderr and "without encryption" not in run.stdout + run.stderr, run.stderr
    assert sum(ln.startswith("[zoa run]") for ln in run.stdout.splitlines()) == 2, run.stdout  # folder + chapter


def test_scenes_go_to_the_book_root_wherever_the_notebook_runs(tmp_path):
    """Chapter 08 writes its scenes under <book root>/book/_static/scenes: the run's root when
    executed by `zoa run` (cwd <root>/book/chapters), the repository when opened elsewhere
    (e.g. notebooks/, where it used to write an untracked _static/ beside the sources)."""
    from zoa_lib.book.runner import prepare_root, scenes_dir
    from zoa_lib.io.paths import REPO_ROOT

    root = prepare_root(tmp_path / "root")
    chapters = root / "book" / "chapters"
    chapters.mkdir(parents=True, exist_ok=True)
    assert scenes_dir(chapters) == (root / "book" / "_static" / "scenes").resolve()
    assert scenes_dir(REPO_ROOT / "notebooks") == REPO_ROOT / "book" / "_static" / "scenes"
    assert scenes_dir(tmp_path) == REPO_ROOT / "book" / "_static" / "scenes"


# --------------------------------------------------------------------------- batch runs
TINY_PARAMS = 'profile = "ci"\noverrides = {}\nvalue = 1\nfail = False\n'
TINY_BODY = """import sys
from pathlib import Path
from zoa_lib.book.runner import scenes_dir
from zoa_lib.config import load_profile
prof = load_profile(profile, overrides)
prof.data_path.mkdir(parents=True, exist_ok=True)
(prof.data_path / f"{NAME}.txt").write_text(repr(value))
scenes = scenes_dir()
scenes.mkdir(parents=True, exist_ok=True)
(scenes / f"scene-{NAME}.html").write_text(str(prof.data_path))
print("E0000 00:00:1795580549.554233   20636 cuda_platform.cc:52] failed call to cuInit", file=sys.__stderr__)
print("value", value)
if fail:
    raise ValueError(f"made to fail with value={value}")
"""


def _tiny_root(tmp_path, names=("01-alpha", "02-beta")):
    """A book root with its own _toc.yml and tiny chapter notebooks (a kernel each, no TensorFlow):
    each writes <data folder>/<name>.txt holding `value`, and a scene; `fail=True` raises."""
    import nbformat
    import yaml
    from nbformat.v4 import new_code_cell, new_notebook

    from zoa_lib.book.runner import prepare_root

    root = prepare_root(tmp_path / "root")
    toc = {"format": "jb-book", "root": "book/intro", "chapters": [{"file": f"book/chapters/{n}"} for n in names]}
    (root / "_toc.yml").write_text(yaml.safe_dump(toc))
    (root / "notebooks").mkdir()
    for n in names:
        nb = new_notebook(cells=[new_code_cell(TINY_PARAMS, metadata={"tags": ["parameters"]}),
                                 new_code_cell(f"NAME = {n!r}\n" + TINY_BODY)])
        nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
        nbformat.write(nb, root / "notebooks" / f"{n}.ipynb")
    return root


@pytest.fixture
def tiny(tmp_path, monkeypatch):
    monkeypatch.setenv("ZOA_DATA", str(tmp_path / "data"))
    monkeypatch.setenv("PYTHONPATH", str(Path(__file__).resolve().parent.parent))
    return _tiny_root(tmp_path)


def test_overrides_get_their_own_data_folder_and_params_reach_the_notebook(tiny, tmp_path):
    """Two runs with different overrides write different folders, the default run keeps
    data/<profile>; --param reaches the chapter that has the parameter; kernel noise goes to the log."""
    from zoa_lib.book.runner import chapter_run, run_notebooks
    from zoa_lib.config import run_data_tag

    lines = []
    run_notebooks("ci", {}, root=tiny, only=["01"], params={"value": 7}, log=lines.append)
    a = run_notebooks("ci", {"training.epochs": 3}, root=tiny, only=["01"], log=lines.append)
    b = run_notebooks("ci", {"training.epochs": 4}, root=tiny, only=["01"], log=lines.append)
    data = tmp_path / "data"
    tag3, tag4 = run_data_tag("ci", {"training.epochs": 3}), run_data_tag("ci", {"training.epochs": 4})
    assert len(tag3) == 8 and tag3 != tag4
    assert (data / "ci" / "01-alpha.txt").read_text() == "7"  # --param value=7 reached the notebook
    assert (data / f"ci-{tag3}" / "01-alpha.txt").read_text() == "1"
    assert (data / f"ci-{tag4}" / "01-alpha.txt").exists()
    assert a["data_path"] != b["data_path"] and Path(b["data_path"]).name == f"ci-{tag4}"
    assert a["estimate"] is None  # no unit costs of `zoa bench book`, no book.expected_minutes at ci
    assert any(f"ci-{tag3}" in ln and "training.epochs=3" in ln for ln in lines), lines  # printed at the start
    # one line per chapter with its time; the cuInit line is in the run's kernel log, not on the console
    assert sum("01-alpha" in ln for ln in lines) == 3
    assert "cuInit" not in "\n".join(lines)
    assert "cuInit" in (data / f"ci-{tag4}" / "book" / "logs" / "01-alpha.log").read_text()
    # scenes stay in the run's folder; the executed chapter records its run
    assert (data / f"ci-{tag4}" / "book" / "scenes" / "scene-01-alpha.html").exists()
    run = chapter_run(tiny / "book" / "chapters" / "01-alpha.ipynb")
    assert run["overrides"] == {"training.epochs": 4} and run["data_tag"] == tag4
    # an override that does not change results keeps the profile's folder
    assert run_data_tag("ci", {"mocks.workers": 8}) == ""


def test_unknown_chapter_parameter_is_one_line_listing_them(tiny):
    from zoa_lib.book.runner import BookError, run_notebooks

    with pytest.raises(BookError) as e:
        run_notebooks("ci", root=tiny, params={"nope": 1}, log=lambda m: None)
    msg = str(e.value)
    assert "\n" not in msg and "nope" in msg and "01-alpha: value, fail" in msg
    with pytest.raises(BookError, match="--profile"):
        run_notebooks("ci", root=tiny, params={"profile": "laptop"}, log=lambda m: None)


def test_failed_chapter_keeps_its_executed_notebook_and_exits_non_zero(tiny, tmp_path, capsys):
    """zoa run with a chapter made to fail (--param fail=true): exit status 2, one line naming the
    exception and the kept executed notebook, which holds the traceback; the previous
    executed copy stays in place."""
    import nbformat

    from zoa_lib.cli import main

    assert main(["run", "--profile", "ci", "--only", "01", "--root", str(tiny)]) == 0
    good = (tiny / "book" / "chapters" / "01-alpha.ipynb").read_bytes()
    capsys.readouterr()
    code = main(["run", "--profile", "ci", "--only", "01", "--root", str(tiny), "--param", "fail=true", "--param", "value=5"])
    err = capsys.readouterr().err.strip()
    assert code == 2
    assert err.count("\n") == 0, err
    kept = tmp_path / "data" / "ci" / "book" / "failed" / "01-alpha.ipynb"
    assert "ValueError: made to fail with value=5" in err and str(Path("book") / "failed" / "01-alpha.ipynb") in err
    assert "01-alpha.log" in err
    nb = nbformat.read(kept, 4)
    tb = "".join("".join(o.get("traceback", [])) for c in nb.cells if c.cell_type == "code" for o in c.outputs)
    assert "made to fail with value=5" in tb
    assert (tiny / "book" / "chapters" / "01-alpha.ipynb").read_bytes() == good


def test_book_refuses_chapters_from_different_runs(tiny, tmp_path):
    """A chapter rerun with other overrides makes a mixed book: `zoa book` refuses with one line
    naming the chapters of each run and the command that makes them one; scenes are per run."""
    from zoa_lib.book.runner import BookError, book_run, run_notebooks, sync_scenes

    run_notebooks("ci", {}, root=tiny, log=lambda m: None)
    run = book_run(tiny)
    assert run["profile_name"] == "ci" and Path(run["data_path"]).name == "ci"
    run_notebooks("ci", {"survey.zoa_b": 5.0}, root=tiny, only=["02"], log=lambda m: None)
    with pytest.raises(BookError) as e:
        book_run(tiny)
    msg = str(e.value)
    assert "\n" not in msg and "2 different runs" in msg
    assert "01-alpha from profile ci (data" in msg and "02-beta from profile ci -p survey.zoa_b=5.0" in msg
    assert "zoa run --profile ci -p survey.zoa_b=5.0 --only 01" in msg  # the landing page's run is the target
    from zoa_lib.cli import main

    assert main(["book", "--root", str(tiny)]) == 2  # refused before jupyter-book runs
    run_notebooks("ci", {"survey.zoa_b": 5.0}, root=tiny, only=["01"], log=lambda m: None)
    run = book_run(tiny)
    assert run["overrides"] == {"survey.zoa_b": 5.0}
    # the book's scenes are that run's only
    static = tiny / "book" / "_static" / "scenes"
    (static / "flow3d-laptop.html").write_text("another run's scene")
    assert sync_scenes(tiny, run) == 2
    assert sorted(p.name for p in static.iterdir() if p.name != ".gitkeep") == ["scene-01-alpha.html",
                                                                                 "scene-02-beta.html"]
    assert Path((static / "scene-02-beta.html").read_text()) == Path(run["data_path"])


def test_kernel_environment_is_restored_after_each_chapter(monkeypatch):
    """The backend and scene folder given to a chapter's kernel do not leak into the process."""
    from zoa_lib.book.runner import _environment

    monkeypatch.setenv("MPLBACKEND", "Agg")
    monkeypatch.delenv("ZOA_SCENES_DIR", raising=False)
    with pytest.raises(RuntimeError):
        with _environment(MPLBACKEND="module://matplotlib_inline.backend_inline", ZOA_SCENES_DIR="/tmp/s"):
            assert os.environ["MPLBACKEND"].endswith("backend_inline") and os.environ["ZOA_SCENES_DIR"] == "/tmp/s"
            raise RuntimeError("a chapter failed")
    assert os.environ["MPLBACKEND"] == "Agg" and "ZOA_SCENES_DIR" not in os.environ
