"""The paper book: execute the chapter notebooks with papermill, build the Jupyter Book.

Layout (DESIGN.md): source notebooks live in ``notebooks/`` (outputs stripped, one cell
tagged ``parameters``); ``_toc.yml`` lists the chapters as ``book/chapters/<name>``;
``zoa run`` executes ``notebooks/<name>.ipynb`` into ``<root>/book/chapters/<name>.ipynb``
(never over the source) and writes ``<root>/book/_generated/run-info.{json,md}`` — the
profile, overrides, per-chapter wall time and machine — which the landing page includes.
``zoa build`` then runs ``jupyter-book build`` with notebook execution off.

The landing page opens with the run's **scorecard** (:mod:`zoa_lib.scorecard`): the paper's
numbers beside this run's V-Net and best classical method, with alarm lines where a network
loses or did not learn. :func:`write_scorecard` writes it to
``<root>/book/_generated/scorecard.{json,md}`` from the files under the profile's data
folder — after every chapter ``zoa run`` executes, and again by ``zoa book`` before the
build, so the page shows what the data folder holds when the book is built.

Papermill passes only ``profile`` and ``overrides``; every size comes from the profile.
"""
from __future__ import annotations

import datetime as _dt
import hashlib
import json
import os
import platform
import re
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import yaml

from .errors import ZoaError
from .io import atomic_path, book_root, git_commit, scrub_paths, write_json_atomic, write_text_atomic

REPO_ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS_DIR = REPO_ROOT / "notebooks"
#: Literature positions of the Great Attractor and other local structures (shipped table).
KNOWN_STRUCTURES = REPO_ROOT / "data" / "known_structures.csv"
CHAPTER_PREFIX = "book/chapters/"
#: Files a book root needs (copied by :func:`prepare_root` into a fresh folder).
BOOK_SOURCES = ("_config.yml", "_toc.yml", "book", "data/known_structures.csv", "docs/DESIGN.md")


class BookError(ZoaError):
    """The book cannot be run or built (missing notebook, failed cell, build error)."""


@dataclass(frozen=True)
class Chapter:
    """A chapter: its name (``01-cosmology``), source notebook and executed copy."""

    name: str
    source: Path
    executed: Path


def toc_chapters(root: str | os.PathLike = REPO_ROOT) -> list[Chapter]:
    """Chapters listed in ``<root>/_toc.yml`` whose files live under ``book/chapters/``."""
    root = Path(root)
    toc_path = root / "_toc.yml"
    if not toc_path.exists():
        raise BookError(f"{toc_path}: no table of contents (is {root} a book root?)")
    toc = yaml.safe_load(toc_path.read_text())
    files: list[str] = []

    def walk(node):
        if isinstance(node, dict):
            if "file" in node:
                files.append(str(node["file"]))
            for v in node.values():
                walk(v)
        elif isinstance(node, list):
            for v in node:
                walk(v)

    walk(toc)
    chapters = []
    for f in files:
        if not f.startswith(CHAPTER_PREFIX):
            continue
        name = Path(f).name.removesuffix(".ipynb")
        source = NOTEBOOKS_DIR / f"{name}.ipynb"
        if not source.exists():
            raise BookError(f"_toc.yml lists {f} but {source} does not exist")
        chapters.append(Chapter(name, source, root / CHAPTER_PREFIX / f"{name}.ipynb"))
    return chapters


def scenes_dir(cwd: str | os.PathLike | None = None) -> Path:
    """Where a chapter writes its 3D scene files: ``<book root>/book/_static/scenes``
    (``_config.yml`` lists ``book/_static`` in ``html_static_path``, so Sphinx copies them).
    The book root is the one ``zoa run`` executes in (the working directory is then
    ``<root>/book/chapters`` with ``<root>/_toc.yml``); from anywhere else (a notebook opened
    in ``notebooks/``, a script) it is the repository."""
    cwd = Path(cwd or Path.cwd()).resolve()
    if cwd.name == "chapters" and cwd.parent.name == "book" and (cwd.parent.parent / "_toc.yml").exists():
        return cwd.parent / "_static" / "scenes"
    return REPO_ROOT / "book" / "_static" / "scenes"


def prepare_root(dest: str | os.PathLike) -> Path:
    """Copy the book sources (config, toc, prose, shipped tables) into ``dest`` so a
    book can be run and built outside the repository (tests, scratch builds)."""
    dest = Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    for item in BOOK_SOURCES:
        src = REPO_ROOT / item
        if src.is_dir():
            shutil.copytree(src, dest / item, dirs_exist_ok=True,
                            ignore=shutil.ignore_patterns("*.ipynb", "_generated"))
        elif src.exists():
            (dest / item).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dest / item)
    return dest


def glue(name: str, value, display: bool = False):
    """Glue a number, table or figure for the page's prose (myst-nb), converting numpy
    scalars to plain Python numbers so ``{glue:text}`name:.3f``` formats them."""
    import numpy as np
    from myst_nb import glue as _glue

    if isinstance(value, np.generic):
        value = value.item()
    return _glue(name, value, display=display)


def _source_hash(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()[:16]


#: Lines that TensorFlow/XLA's C++ logging (absl) writes to the kernel's stderr when TF is
#: imported — e.g. "I0000 00:00:17.. 123 cudart_stub.cc:31] Could not find cuda drivers" —
#: which TF_CPP_MIN_LOG_LEVEL does not silence. The machine (GPU or not) is in run-info.
NATIVE_LOG_LINE = re.compile(r"^([IWEF]\d{4} \d\d:\d\d:\d+\.\d+\s+\d+ \S+:\d+\] .*"
                             r"|WARNING: All log messages before absl::InitializeLog\(\) is called are written to STDERR"
                             r"|To enable the following instructions: .*, in other operations, rebuild TensorFlow .*)$")


def _tag_for_book(nb_path: Path) -> None:
    """Prepare an executed chapter for the book: hide papermill's injected-parameters cell,
    and drop stderr outputs made only of native TensorFlow log lines
    (:data:`NATIVE_LOG_LINE`); any other stderr text stays on the page. Absolute paths of
    this machine in outputs become repository-relative (:func:`scrub_outputs`)."""
    import nbformat

    nb = nbformat.read(nb_path, as_version=4)
    scrub_outputs(nb, book_root(Path(nb_path).parent))
    for cell in nb.cells:
        tags = cell.setdefault("metadata", {}).setdefault("tags", [])
        if "injected-parameters" in tags and "remove-cell" not in tags:
            tags.append("remove-cell")
        if cell.get("cell_type") == "code":
            cell["outputs"] = [o for o in cell.get("outputs", []) if not _is_native_log(o)]
    nbformat.write(nb, nb_path)


def scrub_outputs(nb, root=None) -> None:
    """Rewrite, in place, the absolute paths of this machine (repository, book ``root``,
    ``$ZOA_DATA``, home) in an executed notebook's outputs and injected parameters as
    :func:`zoa_lib.io.display_path` shows them: pages never show where the book was built."""
    def fix(v):
        if isinstance(v, str):
            return scrub_paths(v, root)
        if isinstance(v, list):
            return [fix(x) for x in v]
        if isinstance(v, dict):
            return {k: fix(x) for k, x in v.items()}
        return v

    for cell in nb.cells:
        if "injected-parameters" in cell.get("metadata", {}).get("tags", []):
            cell["source"] = scrub_paths(cell["source"], root)
        for out in cell.get("outputs", []):
            for key in ("text", "traceback", "evalue"):
                if key in out:
                    out[key] = fix(out[key])
            for mime, value in out.get("data", {}).items():
                if mime.startswith("text/") or mime.endswith("json"):
                    out["data"][mime] = fix(value)


def _is_native_log(output) -> bool:
    if output.get("output_type") != "stream" or output.get("name") != "stderr":
        return False
    lines = [ln for ln in str(output.get("text", "")).splitlines() if ln.strip()]
    return bool(lines) and all(NATIVE_LOG_LINE.match(ln) for ln in lines)


def run_notebooks(profile_name: str = "laptop", overrides: dict | None = None, *, root=REPO_ROOT,
                  only: list[str] | None = None, resume: bool = False, log=print) -> dict:
    """Execute the chapters with papermill on a profile; return the run-info dict.

    Parameters
    ----------
    profile_name : a profile name (``ci``) or the path of a YAML file; every notebook gets
        the name, or the file's absolute path (its ``parameters`` cell loads it from
        ``book/chapters/``, so a relative path would not do).
    overrides : dotted-key profile overrides passed to every notebook.
    root : book root holding ``_toc.yml`` (the repo by default; see :func:`prepare_root`).
    only : chapter names (or unique prefixes, e.g. ``01``) to run; default all.
    resume : skip chapters already executed with the same profile, overrides and
        source notebook (as recorded in run-info.json).

    Each executed notebook is written atomically; a failed chapter raises
    :class:`BookError` naming the chapter and the failing cell, and leaves the previous
    executed copy in place.
    """
    import papermill as pm

    from .config import load_profile

    from .config import profile_path

    overrides = dict(overrides or {})
    profile = load_profile(profile_name, overrides)  # validate before any work
    is_file = Path(profile_name).suffix in (".yml", ".yaml")
    given = str(profile_path(profile_name).resolve()) if is_file else profile.name
    root = Path(root)
    chapters = toc_chapters(root)
    if only:
        sel = []
        for key in only:
            match = [c for c in chapters if c.name == key or c.name.startswith(key)]
            if len(match) != 1:
                raise BookError(f"--only {key!r} matches {len(match)} chapters "
                                f"(chapters: {', '.join(c.name for c in chapters)})")
            sel += match
        chapters = sel
    info_path = root / "book" / "_generated" / "run-info.json"
    info = json.loads(info_path.read_text()) if info_path.exists() else {}
    same_run = info.get("profile") == profile.name and info.get("overrides") == overrides
    records = info.get("chapters", {}) if same_run else {}
    info = {
        "profile": profile.name,
        "overrides": overrides,
        "description": profile.description,
        "grid": profile.box.grid,
        "n_mocks": profile.mocks.n_total,
        "epochs": profile.training.epochs,
        "git_commit": git_commit(),
        "machine": f"{platform.machine()}, {os.cpu_count()} CPU cores, Python {sys.version.split()[0]}",
        "scale": scale_comparison(profile),
        "versions": package_versions(),
        "chapters": records,
    }
    write_scorecard(root, profile)
    for ch in chapters:
        src_hash = _source_hash(ch.source)
        rec = records.get(ch.name)
        if resume and rec and rec.get("source_sha") == src_hash and ch.executed.exists():
            log(f"[zoa run] {ch.name}: already executed for this profile, skipped (--resume)")
            continue
        log(f"[zoa run] {ch.name}: executing on profile {profile.name!r}")
        ch.executed.parent.mkdir(parents=True, exist_ok=True)
        t0 = time.perf_counter()
        # figures must render inline in the kernel, whatever backend the caller uses
        os.environ["MPLBACKEND"] = "module://matplotlib_inline.backend_inline"
        with atomic_path(ch.executed) as tmp:
            try:
                pm.execute_notebook(
                    str(ch.source), str(tmp),
                    parameters={"profile": given, "overrides": overrides},
                    cwd=str(ch.executed.parent), kernel_name="python3",
                    progress_bar=False, request_save_on_cell_execute=False,
                    execution_timeout=profile.book.cell_timeout, log_output=False,
                )
            except pm.PapermillExecutionError as e:
                raise BookError(f"chapter {ch.name}: cell {e.exec_count} failed: {e.ename}: "
                                f"{e.evalue} (see the traceback in {ch.source.name})") from None
            _tag_for_book(tmp)
        seconds = time.perf_counter() - t0
        records[ch.name] = {
            "seconds": round(seconds, 1),
            "source_sha": src_hash,
            "finished_utc": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        }
        info["chapters"] = records
        write_run_info(root, info)
        write_scorecard(root, profile)
        log(f"[zoa run] {ch.name}: done in {seconds:.0f} s")
    info["chapters"] = records
    write_run_info(root, info)
    return info


def write_run_info(root: Path, info: dict) -> None:
    """Write run-info.json and the Markdown the landing page includes."""
    gen = Path(root) / "book" / "_generated"
    write_json_atomic(gen / "run-info.json", info)
    write_text_atomic(gen / "run-info.md", run_info_markdown(info))


def write_scorecard(root, profile) -> dict:
    """Compute the scorecard of ``profile``'s run (:func:`zoa_lib.scorecard.scorecard` on
    ``profile.data_path``) and write ``<root>/book/_generated/scorecard.json`` and
    ``scorecard.md`` (the landing page's first section); return the scorecard. Files the
    run has not written yet are listed as missing on the page, never an error."""
    from .scorecard import scorecard, scorecard_markdown

    data = Path(profile.data_path)
    card = scorecard(data, profile.name)
    for base in (Path(root), REPO_ROOT):
        try:
            card["data_path"] = str(data.resolve().relative_to(Path(base).resolve()))
            break
        except ValueError:
            continue
    gen = Path(root) / "book" / "_generated"
    write_json_atomic(gen / "scorecard.json", card)
    write_text_atomic(gen / "scorecard.md", scorecard_markdown(card))
    return card


def refresh_scorecard(root=REPO_ROOT) -> dict | None:
    """Rewrite the scorecard for the profile and overrides recorded in
    ``<root>/book/_generated/run-info.json`` (None when there is no run-info)."""
    from .config import load_profile

    path = Path(root) / "book" / "_generated" / "run-info.json"
    if not path.exists():
        return None
    info = json.loads(path.read_text())
    return write_scorecard(root, load_profile(info["profile"], info.get("overrides") or {}))


#: Where each paper-scale setting of :func:`scale_comparison` comes from: the paper's text
#: (Dupuy et al. 2025 state 128³ voxels over 160 Mpc/h, 11,512 training and 1,264
#: validation mocks, 200 epochs, a cyclic learning rate between 1e-7 and 1e-5) or this
#: project's choice where the paper gives no number (``profiles/paper.yml`` says why).
PAPER_STATES = {
    "grid (voxels per side)": True,
    "voxel size [Mpc/h]": True,
    "target smoothing [Mpc/h]": False,
    "training / validation mocks": True,
    "test mocks": False,
    "V-Net depth × base filters": False,
    "V-Net parameters": False,
    "training epochs": True,
    "learning rate (cyclic)": True,
    "held-out mocks evaluated": False,
    "local-universe survey realizations": False,
}


_SOURCE_TEXT = {True: "stated in the paper", False: "*this project’s choice*"}


def scale_comparison(profile, reference: str = "paper") -> list[dict]:
    """The settings in which ``profile`` differs from the ``reference`` profile (the
    paper's scale), as rows ``{"setting", "this run", "paper", "stated"}`` for the landing
    page; ``stated`` says whether the paper's text gives the value (:data:`PAPER_STATES`)
    or ``profiles/paper.yml`` chose it.

    Read from the two validated profiles, so the table cannot drift from what ran."""
    from .config import load_profile
    from .vnet import parameter_count

    ref = load_profile(reference)

    def rows_of(p):
        b, m, t, lu = p.box, p.mocks, p.training, p.local_universe
        return {
            "grid (voxels per side)": b.grid,
            "voxel size [Mpc/h]": f"{b.size / b.grid:g}",
            "target smoothing [Mpc/h]": f"{b.smoothing:g}",
            "training / validation mocks": f"{m.n_train:,} / {m.n_val:,}",
            "test mocks": f"{m.n_test:,}",
            "V-Net depth × base filters": f"{p.model.depth} × {p.model.base_filters}",
            "V-Net parameters": f"{parameter_count(p.model, b.grid):,}",
            "training epochs": t.epochs,
            "learning rate (cyclic)": f"{t.lr_min:.0e} – {t.lr_max:.0e}",
            "held-out mocks evaluated": p.evaluation.n_eval,
            "local-universe survey realizations": lu.n_realizations,
        }

    mine, theirs = rows_of(profile), rows_of(ref)
    return [{"setting": k, "this run": str(v), reference: str(theirs[k]), "stated": PAPER_STATES[k]}
            for k, v in mine.items() if str(v) != str(theirs[k])]


def run_info_markdown(info: dict) -> str:
    """The landing page's 'how this book was made' table."""
    ov = ", ".join(f"`{k}={v}`" for k, v in info.get("overrides", {}).items()) or "none"
    lines = [
        f"This book was produced by `zoa run --profile {info['profile']}` "
        f"(overrides: {ov}) at git commit `{info.get('git_commit', 'unknown')}` on "
        f"{info.get('machine', 'an unrecorded machine')}.",
        "",
        f"Profile **{info['profile']}**: {info.get('description', '')} — "
        f"{info.get('grid')}³ voxels over 160 Mpc/h, {info.get('n_mocks')} mocks, "
        f"{info.get('epochs')} training epochs.",
        "",
        "| chapter | wall time | finished (UTC) |",
        "|---|---|---|",
    ]
    total = 0.0
    for name, rec in sorted(info.get("chapters", {}).items()):
        total += rec["seconds"]
        lines.append(f"| {name} | {_fmt_seconds(rec['seconds'])} | {rec['finished_utc']} |")
    lines.append(f"| **total** | **{_fmt_seconds(total)}** | |")
    lines += versions_markdown(info.get("versions"))
    scale = info.get("scale")
    if scale:
        lines += ["", "**What did not run at paper scale.** This run differs from the paper's "
                  "set-up (`profiles/paper.yml`) in the settings below; its accuracies are those of "
                  "its scale. `zoa run --profile paper` on a GPU node runs the paper's. The paper "
                  "column is `profiles/paper.yml`: values the paper states, and this project's "
                  "choices (marked) where the paper gives none.", "",
                  "| setting | this run | paper | source of the paper value |", "|---|---|---|---|"]
        lines += [f"| {r['setting']} | {r['this run']} | {r['paper']} | "
                  f"{_SOURCE_TEXT.get(r.get('stated'), '—')} |"
                  for r in scale]
    elif scale is not None:
        lines += ["", "This run used the paper's scale in every setting listed by `profiles/paper.yml`."]
    return "\n".join(lines) + "\n"


#: The packages whose versions the landing page lists (distribution names).
KEY_PACKAGES = ("tensorflow", "keras", "numpy", "h5py", "jupyter-book", "papermill", "pyvista")


def package_versions(names=KEY_PACKAGES) -> dict[str, str]:
    """Installed versions of ``names`` (``importlib.metadata``; "not installed" when absent):
    read when ``zoa run`` starts, so the landing page names what made the book."""
    from importlib import metadata

    out = {}
    for name in names:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = "not installed"
    return out


def versions_markdown(versions: dict | None) -> list[str]:
    """The landing page's lines naming the key package versions (none for an old run-info)."""
    if not versions:
        return []
    return ["", "Key packages of this run: " + ", ".join(f"{k} {v}" for k, v in versions.items())
            + " (`make install` pins them all in `requirements.lock`)."]


def _fmt_seconds(s: float) -> str:
    return f"{s:.0f} s" if s < 120 else f"{s / 60:.1f} min"


def build_book(root=REPO_ROOT, path_output: str | os.PathLike | None = None, log=print) -> Path:
    """Build the Jupyter Book at ``root`` into ``<path_output>/_build/html`` (default
    ``<root>/_build/html``) and return that folder. Notebooks are not executed here."""
    root = Path(root)
    missing = [c.executed for c in toc_chapters(root) if not c.executed.exists()]
    if missing:
        raise BookError(f"{len(missing)} chapter(s) not executed yet ({missing[0].name}, ...): "
                        f"run 'zoa run --profile PROFILE' first")
    if not (root / "book" / "_generated" / "run-info.md").exists():
        raise BookError("book/_generated/run-info.md is missing: run 'zoa run' first")
    try:
        refresh_scorecard(root)
    except (ZoaError, OSError, ValueError, KeyError) as e:  # the profile of run-info no longer loads
        log(f"[zoa book] warning: scorecard not refreshed ({e}); the landing page keeps the last one")
        stale = root / "book" / "_generated" / "scorecard.md"
        if not stale.exists():
            write_text_atomic(stale, f"## This run at a glance\n\nNo scorecard: {e}\n")
    path_output = Path(path_output) if path_output else root
    exe = Path(sys.executable).with_name("jupyter-book")
    cmd = [str(exe) if exe.exists() else "jupyter-book", "build", str(root),
           "--path-output", str(path_output), "--keep-going", "--all"]
    log(f"[zoa book] {' '.join(cmd)}")
    proc = subprocess.run(cmd, capture_output=True, text=True)
    html = path_output / "_build" / "html"
    if proc.returncode != 0 or not (html / "index.html").exists():
        tail = "\n".join((proc.stdout + proc.stderr).splitlines()[-25:])
        raise BookError(f"jupyter-book build failed (exit {proc.returncode}):\n{tail}")
    log(f"[zoa book] built {html / 'index.html'}")
    return html
