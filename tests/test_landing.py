"""The landing page's provenance: which paper-scale settings the paper
states, and the versions of the key packages, read from the environment — not typed."""
from importlib import metadata

from zoa_lib.book.run_info import KEY_PACKAGES, PAPER_STATES, package_versions, run_info_markdown, scale_comparison
from zoa_lib.config import load_profile


def test_every_scale_row_says_whether_the_paper_states_it():
    rows = scale_comparison(load_profile("ci"))
    assert {r["setting"] for r in rows} <= set(PAPER_STATES)
    by = {r["setting"]: r for r in rows}
    # the paper's text: 128³ voxels, 11,512 / 1,264 mocks, 200 epochs, LR 1e-7..1e-5
    assert by["grid (voxels per side)"]["stated"] and by["grid (voxels per side)"]["paper"] == "128"
    assert by["training / validation mocks"]["paper"] == "11,512 / 1,264"
    assert by["training / validation mocks"]["stated"] and by["training epochs"]["stated"]
    # not in the paper: widths, parameter count, test mocks, local realizations
    for k in ("V-Net depth × base filters", "V-Net parameters", "test mocks",
              "held-out mocks evaluated", "local-universe survey realizations"):
        assert by[k]["stated"] is False, k


def test_landing_page_marks_the_projects_choices():
    info = {"profile": "ci", "overrides": {}, "chapters": {}, "scale": scale_comparison(load_profile("ci")),
            "versions": package_versions()}
    md = run_info_markdown(info)
    lines = {ln.split("|")[1].strip(): ln for ln in md.splitlines() if ln.startswith("| ")}
    assert "stated in the paper" in lines["grid (voxels per side)"]
    assert "this project’s choice" in lines["V-Net parameters"]
    assert "this project’s choice" in lines["local-universe survey realizations"]
    assert f"numpy {metadata.version('numpy')}" in md and f"h5py {metadata.version('h5py')}" in md


def test_package_versions_come_from_the_environment():
    v = package_versions()
    assert tuple(v) == KEY_PACKAGES
    assert v["tensorflow"] == metadata.version("tensorflow")
    assert v["jupyter-book"] == metadata.version("jupyter-book")
    assert package_versions(("no-such-package-zoa",)) == {"no-such-package-zoa": "not installed"}


def test_old_run_info_without_versions_or_sources_still_renders():
    md = run_info_markdown({"profile": "ci", "chapters": {},
                            "scale": [{"setting": "training epochs", "this run": "6", "paper": "200"}]})
    assert "| training epochs | 6 | 200 | — |" in md and "Key packages" not in md
    assert "| chapter | wall time | finished (UTC) |" in md and "estimate" not in md  # none recorded
