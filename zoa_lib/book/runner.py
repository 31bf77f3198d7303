"""The paper book: execute the chapter notebooks with papermill, build the Jupyter Book.

Layout (DESIGN.md): source notebooks live in ``notebooks/`` (outputs stripped, one cell
tagged ``parameters``); ``_toc.yml`` lists the chapters as ``book/chapters/<name>``;
``zoa run`` executes ``notebooks/<name>.ipynb`` into ``<root>/book/chapters/<name>.ipynb``
(never over the source) and writes ``<root>/book/_generated/run-info.{json,md}`` — the
profile, overrides, per-chapter wall time and machine — which the landing page includes.
``zoa book`` then runs ``jupyter-book build`` with notebook execution off.

A run is a profile, its overrides and its data folder: overrides that change results give
the run a folder of its own (``data/<profile>-<hash>``, :func:`zoa_lib.config.run_data_tag`),
so it cannot clobber the default run's. Every executed chapter records its run in its
metadata; ``zoa book`` refuses to build chapters of different runs (:func:`book_run`) and
copies the book's run's 3D scenes into ``book/_static/scenes`` (:func:`sync_scenes`). Each
run keeps, in ``<data folder>/book/`` (:func:`run_folder`), the kernels' logs, the executed
notebook of a failed chapter with its traceback, its scenes and its chapter timings.

The landing page opens with the run's **scorecard** (:mod:`zoa_lib.book.scorecard`): the paper's
numbers beside this run's V-Net and best classical method, with alarm lines where a network
loses or did not learn. :func:`write_scorecard` writes it to
``<root>/book/_generated/scorecard.{json,md}`` from the files under the profile's data
folder — after every chapter ``zoa run`` executes, and again by ``zoa book`` before the
build, so the page shows what the data folder holds when the book is built.

Papermill passes ``profile`` and ``overrides`` to every chapter, and ``zoa run --param NAME=VALUE``
a chapter's own parameters (``mock``, ``catalogue_path``, …) to the chapters that have them; every
size comes from the profile.
"""
from __future__ import annotations

import contextlib
import datetime as _dt
import hashlib
import json
import logging
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

from zoa_lib.book.run_info import format_seconds, package_versions, scale_comparison, write_run_info
from zoa_lib.book.scorecard import refresh_scorecard, write_scorecard
from zoa_lib.errors import ZoaError, printable
from zoa_lib.io.atomic import atomic_path, write_json_atomic, write_text_atomic
from zoa_lib.io.paths import REPO_ROOT, book_root, scrub_paths
from zoa_lib.io.provenance import git_commit

logger = logging.getLogger(__name__)

NOTEBOOKS_DIR = REPO_ROOT / "notebooks"
#: Literature positions of the Great Attractor and other local structures (shipped table).
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
    """Chapters listed in ``<root>/_toc.yml`` whose files live under ``book/chapters/``; the
    source of ``book/chapters/<name>`` is ``<root>/notebooks/<name>.ipynb`` when that exists,
    else the repository's."""
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
        own = root / "notebooks" / f"{name}.ipynb"  # a book root may carry its own sources (tests)
        source = own if own.exists() else NOTEBOOKS_DIR / f"{name}.ipynb"
        if not source.exists():
            raise BookError(f"_toc.yml lists {f} but {source} does not exist")
        chapters.append(Chapter(name, source, root / CHAPTER_PREFIX / f"{name}.ipynb"))
    return chapters


def scenes_dir(cwd: str | os.PathLike | None = None) -> Path:
    """Where a chapter writes its 3D scene files: ``<book root>/book/_static/scenes``
    (``_config.yml`` lists ``book/_static`` in ``html_static_path``, so Sphinx copies them).
    The book root is the one ``zoa run`` executes in (the working directory is then
    ``<root>/book/chapters`` with ``<root>/_toc.yml``); from anywhere else (a notebook opened
    in ``notebooks/``, a script) it is the repository. ``zoa run`` sets ``$ZOA_SCENES_DIR``
    to its run's folder (``<data folder>/book/scenes``, :func:`run_folder`), so scenes are
    kept per run; ``zoa book`` copies the book's run's scenes into ``book/_static/scenes``."""
    env = os.environ.get("ZOA_SCENES_DIR")
    if env:
        return Path(env)
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


def _finish_for_book(nb_path: Path, stamp: dict | None = None) -> None:
    """Prepare an executed chapter for the book: record its run (``stamp``) in the notebook's
    metadata under :data:`RUN_META`, hide the ``parameters`` cell and papermill's
    injected-parameters cell (the run's profile is on the landing page), make absolute paths
    of this machine in outputs repository-relative (:func:`scrub_outputs`), and drop stderr
    outputs made only of native TensorFlow log lines (:data:`NATIVE_LOG_LINE`); any other
    stderr text stays on the page."""
    import nbformat

    nb = nbformat.read(nb_path, as_version=4)
    if stamp is not None:
        nb.metadata[RUN_META] = stamp
    scrub_outputs(nb, book_root(Path(nb_path).parent))
    for cell in nb.cells:
        tags = cell.setdefault("metadata", {}).setdefault("tags", [])
        if {"parameters", "injected-parameters"} & set(tags) and "remove-cell" not in tags:
            tags.append("remove-cell")
        if cell.get("cell_type") == "code":
            cell["outputs"] = [o for o in cell.get("outputs", []) if not _is_native_log(o)]
    nbformat.write(nb, nb_path)


def scrub_outputs(nb, root=None) -> None:
    """Rewrite, in place, the absolute paths of this machine (repository, book ``root``,
    ``$ZOA_DATA``, home) in an executed notebook's outputs and injected parameters as
    :func:`zoa_lib.io.paths.display_path` shows them: pages never show where the book was built."""
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


#: Key of the executed notebook's metadata that records the run it came from (:func:`chapter_run` reads it).
RUN_META = "zoa"
#: Parameters of every chapter, set by --profile and --set (not by --param).
PROFILE_PARAMETERS = ("profile", "overrides")


def run_folder(profile) -> Path:
    """A run's own folder, ``<profile.data_path>/book``: ``logs/<chapter>.log`` (the kernel's
    stderr and stdout: TensorFlow, absl and Jupyter warnings), ``failed/<chapter>.ipynb`` (the
    executed notebook of a chapter that failed, with its traceback), ``scenes/`` (3D scenes,
    copied into the book by :func:`build_book`) and ``timings.json`` (seconds per chapter)."""
    return Path(profile.data_path) / "book"


def chapter_parameters(chapter: Chapter) -> dict:
    """The chapter's own parameters (``parameters``-tagged cell, papermill's inspection):
    name -> default as written in the cell, ``profile`` and ``overrides`` left out."""
    import papermill as pm

    params = pm.inspect_notebook(str(chapter.source))
    return {k: v.get("default") for k, v in params.items() if k not in PROFILE_PARAMETERS}


def select_parameters(chapters: list[Chapter], params: dict | None, selected: bool = False) -> dict[str, dict]:
    """Chapter name -> the ``params`` (``zoa run --param NAME=VALUE``) that chapter takes.
    A name that no chapter in ``chapters`` takes raises :class:`BookError` listing them."""
    params = dict(params or {})
    if not params:
        return {c.name: {} for c in chapters}
    table = {c.name: chapter_parameters(c) for c in chapters}
    for key in params:
        if key in PROFILE_PARAMETERS:
            raise BookError(f"--param {key}: set it with --profile NAME and --set KEY=VALUE, not --param")
        if not any(key in names for names in table.values()):
            listing = "; ".join(f"{n}: {', '.join(names)}" for n, names in table.items() if names) or "none"
            raise BookError(f"--param {printable(key)}: no chapter{' selected by --only' if selected else ''}"
                            f" takes this parameter (chapter parameters: {listing})")
    return {n: {k: v for k, v in params.items() if k in names} for n, names in table.items()}


def _cli_value(v) -> str:
    """``v`` as text that :func:`zoa_lib.config.parse_value` reads back as ``v``."""
    from zoa_lib.config import ProfileError, parse_value

    if isinstance(v, str):
        try:
            if parse_value(v) == v:
                return v
        except ProfileError:
            pass
    return json.dumps(v)


def run_command(profile_arg: str, overrides: dict | None = None, params: dict | None = None,
                only: list[str] | None = None) -> str:
    """The ``zoa run`` command line that repeats a run (shell-quoted)."""
    import shlex

    words = ["zoa", "run", "--profile", str(profile_arg)]
    for k, v in (overrides or {}).items():
        words += ["-p", f"{k}={_cli_value(v)}"]
    for k, v in (params or {}).items():
        words += ["--param", f"{k}={_cli_value(v)}"]
    for name in only or []:
        words += ["--only", name]
    return " ".join(shlex.quote(w) for w in words)


def _show_path(path) -> str:
    """``path`` relative to the working directory or the repository when inside it."""
    path = Path(path)
    for base in (Path.cwd(), REPO_ROOT):
        try:
            return str(path.resolve().relative_to(base.resolve()))
        except (ValueError, OSError):
            continue
    return str(path)


def _portable_path(path) -> str:
    """``path`` as a page may print it (no absolute machine path): relative to the repository,
    or ``$ZOA_DATA/...`` under that folder, else ``.../<folder name>``."""
    path = Path(path)
    bases = [(REPO_ROOT, "")] + ([(Path(os.environ["ZOA_DATA"]), "$ZOA_DATA/")] if os.environ.get("ZOA_DATA") else [])
    for base, prefix in bases:
        try:
            return prefix + str(path.resolve().relative_to(base.resolve()))
        except (ValueError, OSError):
            continue
    return f".../{path.name}"


def _logged_kernel_manager(log_path: Path):
    """A jupyter_client kernel manager whose kernel writes its stderr and stdout (native
    TensorFlow/absl logs, "Kernel is running over TCP without encryption", …) to ``log_path``
    instead of the console (papermill passes ``kernel_manager_class`` to nbclient)."""
    from jupyter_client.manager import AsyncKernelManager

    class LoggedKernelManager(AsyncKernelManager):
        async def _async_launch_kernel(self, kernel_cmd, **kw):
            log_path.parent.mkdir(parents=True, exist_ok=True)
            with open(log_path, "ab") as fh:  # the kernel keeps its own copy of the descriptor
                kw["stdout"] = kw["stderr"] = fh
                return await super()._async_launch_kernel(kernel_cmd, **kw)

    return LoggedKernelManager


@contextlib.contextmanager
def _environment(**values: str):
    """Set environment variables (for the kernels started inside the block) and restore the
    previous values, or their absence, when the block ends, whatever happens in it."""
    saved = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


@contextlib.contextmanager
def native_stderr_to(log_path: Path | None):
    """Send what native code writes to this process's file descriptor 2 (TensorFlow's C++ and
    absl logging: "cuInit", oneDNN, "Could not find cuda drivers", which its Python logging
    settings do not reach) to ``log_path`` (appended) while the block runs; Python's
    ``sys.stderr`` (progress bars, errors) stays on the console. ``None``: no change."""
    if log_path is None:
        yield
        return
    log_path.parent.mkdir(parents=True, exist_ok=True)
    sys.stderr.flush()
    saved = os.dup(2)
    swap = False
    try:
        swap = sys.stderr.fileno() == 2
    except (AttributeError, OSError, ValueError):
        pass
    old_stderr = sys.stderr
    try:
        with open(log_path, "ab") as fh:
            os.dup2(fh.fileno(), 2)
        if swap:
            sys.stderr = os.fdopen(os.dup(saved), "w", buffering=1, encoding=getattr(old_stderr, "encoding", None),
                                   errors="backslashreplace")
        yield
    finally:
        if swap:
            try:
                sys.stderr.flush()
                sys.stderr.close()
            except OSError:
                pass
            sys.stderr = old_stderr
        os.dup2(saved, 2)
        os.close(saved)


def _expected_seconds(profile, chapter: Chapter, timings: dict) -> tuple[float | None, str]:
    """(seconds, where from) of a chapter's expected wall time: this data folder's last
    run of it, else the profile's ``book.expected_minutes``; (None, "") when neither."""
    if chapter.name in timings:
        return float(timings[chapter.name]), "last run"
    m = re.match(r"(\d+)", chapter.name)
    table = profile.book.expected_minutes
    if m and 0 < int(m.group(1)) <= len(table) and table[int(m.group(1)) - 1] > 0:
        return 60.0 * table[int(m.group(1)) - 1], f"profile {profile.name}"
    return None, ""


def chapter_timeout(profile, chapter: Chapter) -> int:
    """Papermill's per-cell timeout (s) for a chapter: ``book.cell_timeout``, or twice the
    chapter's ``book.expected_minutes`` when that is longer."""
    expected, _ = _expected_seconds(profile, chapter, {})
    return int(max(profile.book.cell_timeout, 2 * expected if expected else 0))


def run_notebooks(profile_name: str = "laptop", overrides: dict | None = None, *, root=REPO_ROOT,
                  only: list[str] | None = None, resume: bool = False, params: dict | None = None,
                  debug: bool = False, log=None) -> dict:
    """Execute the chapters with papermill on a profile; return the run-info dict.

    Parameters
    ----------
    profile_name : a profile name (``ci``) or the path of a YAML file; every notebook gets
        the name, or the file's absolute path (its ``parameters`` cell loads it from
        ``book/chapters/``, so a relative path would not do).
    overrides : dotted-key profile overrides passed to every notebook. Overrides that change
        results (not :data:`zoa_lib.config.EXECUTION_KEYS`) give the run its own data folder,
        ``<data_dir>/<profile>-<hash>`` (:func:`zoa_lib.config.run_data_tag`): the notebooks
        get ``data_tag`` among the overrides, and the folder is logged first.
    root : book root holding ``_toc.yml`` (the repo by default; see :func:`prepare_root`).
    only : chapter names (or unique prefixes, e.g. ``01``) to run; default all.
    resume : skip chapters already executed with the same profile, overrides, parameters and
        source notebook (as recorded in run-info.json).
    params : chapter parameters (``zoa run --param NAME=VALUE``), each given to the chapters whose
        ``parameters`` cell has it; a name no selected chapter has raises :class:`BookError`.
    debug : leave the kernels' stderr (TensorFlow and Jupyter warnings) on the console
        instead of ``<run folder>/logs/<chapter>.log`` (:func:`run_folder`).
    log : called with each progress line instead of this module's logger (INFO).

    The log gets one line per chapter: name, wall time and the expected time (this
    folder's last run, or the profile's ``book.expected_minutes``), with a progress bar over
    the cells on a terminal. Each executed notebook is written atomically and records its run
    in its metadata (:data:`RUN_META`). A failed chapter raises :class:`BookError` naming the
    failing cell's exception, the executed notebook kept with its traceback
    (``<run folder>/failed/<chapter>.ipynb``) and the kernel log; the previous executed copy
    stays in place.
    """
    from zoa_lib.config import load_profile, run_data_tag

    tag = run_data_tag(profile_name, overrides)
    probe = load_profile(profile_name, {**dict(overrides or {}), **({"data_tag": tag} if tag else {})})
    with native_stderr_to(None if debug else run_folder(probe) / "logs" / "zoa-run.log"):
        return _run_notebooks(profile_name, overrides, root=root, only=only, resume=resume, params=params,
                              debug=debug, log=log)


def _run_notebooks(profile_name, overrides, *, root, only, resume, params, debug, log) -> dict:
    import papermill as pm

    from zoa_lib.config import is_builtin, load_profile, profile_path, run_data_tag

    user_overrides = {k: v for k, v in dict(overrides or {}).items()}
    given_overrides = dict(user_overrides)
    tag = run_data_tag(profile_name, user_overrides)
    if tag and "data_tag" not in given_overrides:
        given_overrides["data_tag"] = tag
    profile = load_profile(profile_name, given_overrides)  # validate before any work
    is_file = not is_builtin(profile_name) or Path(str(profile_name)).suffix in (".yml", ".yaml")
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
    chapter_params = select_parameters(chapters, params, selected=bool(only))
    folder = run_folder(profile)
    data_label = _portable_path(profile.data_path)
    command = run_command(profile_name if is_builtin(profile_name) else given, user_overrides, params)
    log = log or logger.info
    log(f"[zoa run] profile {profile.name}, data folder {_show_path(profile.data_path)}"
        + (f" (own folder for overrides {', '.join(f'{k}={v}' for k, v in user_overrides.items())})"
           if tag and user_overrides else ""))
    info_path = root / "book" / "_generated" / "run-info.json"
    info = json.loads(info_path.read_text()) if info_path.exists() else {}
    same_run = (info.get("profile_arg", info.get("profile")) == given and info.get("overrides") == user_overrides
                and info.get("data_path") == str(profile.data_path))
    records = info.get("chapters", {}) if same_run else {}
    info = {
        "profile": profile.name,
        "profile_arg": given,
        "overrides": user_overrides,
        "data_tag": profile.data_tag,
        "data_path": str(profile.data_path),
        "data_folder": data_label,
        "command": command,
        "description": profile.description,
        "grid": profile.box.grid,
        "n_mocks": profile.mocks.n_total,
        "epochs": profile.training.epochs,
        "git_commit": git_commit(),
        "machine": f"{platform.machine()}, {os.cpu_count()} CPU cores, Python {sys.version.split()[0]}",
        "scale": scale_comparison(profile),
        "versions": package_versions(),
        "estimate": chapter_estimate(profile),
        "chapters": records,
    }
    write_scorecard(root, profile)
    timings_path = folder / "timings.json"
    try:
        timings = json.loads(timings_path.read_text()) if timings_path.exists() else {}
    except (OSError, ValueError):
        timings = {}
    width = max(len(c.name) for c in chapters)
    for ch in chapters:
        src_hash = _source_hash(ch.source)
        rec = records.get(ch.name)
        ch_params = chapter_params[ch.name]
        if (resume and rec and rec.get("source_sha") == src_hash and rec.get("parameters", {}) == ch_params
                and ch.executed.exists()):
            log(f"[zoa run] {ch.name:<{width}}  skipped (--resume: already executed for this run)")
            continue
        expected, source = _expected_seconds(profile, ch, timings)
        est = f"expected {format_seconds(expected)}, {source}" if expected else "no estimate yet"
        stamp = {"profile": given, "profile_name": profile.name, "overrides": user_overrides,
                 "data_tag": profile.data_tag, "data_path": str(profile.data_path), "data_folder": data_label,
                 "parameters": ch_params, "command": command}
        ch.executed.parent.mkdir(parents=True, exist_ok=True)
        kernel_log = folder / "logs" / f"{ch.name}.log"
        failed = folder / "failed" / f"{ch.name}.ipynb"
        engine = {}
        if not debug:
            kernel_log.parent.mkdir(parents=True, exist_ok=True)
            kernel_log.write_text("")  # this execution's log only
            engine["kernel_manager_class"] = _logged_kernel_manager(kernel_log)
        where = f"; kernel log {_show_path(kernel_log)}" if not debug else ""
        t0 = time.perf_counter()
        # the kernel inherits these for this chapter only: figures render inline whatever backend
        # the caller uses, scenes go to this run's folder (read by scenes_dir() in the kernel)
        with _environment(MPLBACKEND="module://matplotlib_inline.backend_inline",
                          ZOA_SCENES_DIR=str(folder / "scenes")):
            with atomic_path(ch.executed) as tmp:
                try:
                    pm.execute_notebook(
                        str(ch.source), str(tmp),
                        parameters={"profile": given, "overrides": given_overrides, **ch_params},
                        cwd=str(ch.executed.parent), kernel_name="python3",
                        progress_bar={"desc": ch.name, "leave": False, "disable": None},
                        request_save_on_cell_execute=True,
                        execution_timeout=chapter_timeout(profile, ch), log_output=False, **engine,
                    )
                except Exception as e:  # noqa: BLE001 - a cell error, a time-out, a dead kernel
                    kept = _keep_failed(tmp, failed)
                    seconds = time.perf_counter() - t0
                    log(f"[zoa run] {ch.name:<{width}}  FAILED after {format_seconds(seconds)}")
                    if isinstance(e, pm.PapermillExecutionError):
                        what = f"cell {e.exec_count} failed: {e.ename}: {_first_line(e.evalue)}"
                    else:
                        what = f"{type(e).__name__}: {_first_line(str(e))}"
                    note = (f"executed notebook with the traceback: {_show_path(kept)}" if kept
                            else "no executed notebook was written")
                    raise BookError(f"chapter {ch.name}: {what} ({note}{where})") from None
                _finish_for_book(tmp, stamp)
        failed.unlink(missing_ok=True)  # an earlier failure of this chapter is fixed
        seconds = time.perf_counter() - t0
        records[ch.name] = {
            "seconds": round(seconds, 1),
            "source_sha": src_hash,
            "parameters": ch_params,
            "finished_utc": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        }
        timings[ch.name] = round(seconds, 1)
        try:
            write_json_atomic(timings_path, timings)
        except OSError:
            pass  # the estimate of the next run only
        info["chapters"] = records
        write_run_info(root, info)
        write_scorecard(root, profile)
        log(f"[zoa run] {ch.name:<{width}}  {format_seconds(seconds):>9}  ({est})")
    info["chapters"] = records
    write_run_info(root, info)
    return info


def _first_line(text, limit: int = 300) -> str:
    lines = [ln for ln in str(text).splitlines() if ln.strip()]
    line = lines[0].strip() if lines else ""
    return line if len(line) <= limit else line[:limit - 1] + "…"


def _keep_failed(tmp: Path, failed: Path) -> Path | None:
    """Copy the executed notebook of a failed chapter (papermill saved it cell by cell, with
    the traceback) to ``failed``; return that path, or None when nothing was written."""
    try:
        if not tmp.exists() or tmp.stat().st_size == 0:
            return None
        failed.parent.mkdir(parents=True, exist_ok=True)
        with atomic_path(failed) as out:
            shutil.copyfile(tmp, out)
        return failed
    except OSError:
        return None


def chapter_run(nb_path: Path) -> dict | None:
    """The run an executed chapter came from: its :data:`RUN_META` metadata, or for a notebook
    executed before it was recorded, the profile and overrides papermill passed (without
    ``data_path``); None when the notebook says neither."""
    import nbformat

    try:
        nb = nbformat.read(nb_path, as_version=4)
    except Exception:  # noqa: BLE001 - an unreadable notebook is from no known run
        return None
    meta = nb.metadata.get(RUN_META)
    if meta:
        return dict(meta)
    given = nb.metadata.get("papermill", {}).get("parameters")
    if not given or "profile" not in given:
        return None
    ov = dict(given.get("overrides") or {})
    tag = ov.pop("data_tag", "")
    return {"profile": given["profile"], "profile_name": Path(str(given["profile"])).stem, "overrides": ov,
            "data_tag": tag, "data_path": None, "data_folder": "unrecorded",
            "command": run_command(given["profile"], ov)}


def _run_key(run: dict | None) -> str:
    if run is None:
        return "unknown"
    return json.dumps([run.get("profile"), run.get("overrides") or {}, run.get("data_tag") or "",
                       run.get("data_path")], sort_keys=True, default=str)


def _run_label(run: dict | None) -> str:
    if run is None:
        return "an unknown run"
    ov = " ".join(f"-p {k}={_cli_value(v)}" for k, v in (run.get("overrides") or {}).items())
    return f"profile {run.get('profile_name')}{' ' + ov if ov else ''} (data {run.get('data_folder')})"


def book_run(root=REPO_ROOT) -> dict:
    """The one run all executed chapters of ``root`` come from (:func:`chapter_run`).

    Raises :class:`BookError` — one line saying which chapters come from which run and the
    command that makes them one — when chapters are missing or come from different profiles,
    overrides or data folders."""
    chapters = toc_chapters(root)
    missing = [c for c in chapters if not c.executed.exists()]
    if missing:
        raise BookError(f"{len(missing)} chapter(s) not executed yet ({', '.join(c.name for c in missing)}): "
                        f"run 'zoa run --profile PROFILE' first")
    runs = {c.name: chapter_run(c.executed) for c in chapters}
    groups: dict[str, list[str]] = {}
    for name, run in runs.items():
        groups.setdefault(_run_key(run), []).append(name)
    if len(groups) == 1:
        run = runs[chapters[0].name]
        if run is None:
            raise BookError(f"{chapters[0].executed}: records no run: run 'zoa run --profile PROFILE' again")
        return run
    # the target: the run of the landing page (run-info.json) when a chapter has it, else the largest group
    info_path = Path(root) / "book" / "_generated" / "run-info.json"
    info = json.loads(info_path.read_text()) if info_path.exists() else {}
    latest = _run_key({"profile": info.get("profile_arg"), "overrides": info.get("overrides") or {},
                       "data_tag": info.get("data_tag") or "", "data_path": info.get("data_path")})
    target = latest if latest in groups else max(groups, key=lambda k: len(groups[k]))
    trun = runs[groups[target][0]]
    others = [n for k, names in groups.items() if k != target for n in names]
    parts = "; ".join(f"{', '.join(names)} from {_run_label(runs[names[0]])}" for names in groups.values())
    fix = (run_command(trun["profile"], trun.get("overrides"), None, [n.split("-")[0] for n in others])
           if trun else "zoa run --profile PROFILE")
    raise BookError(f"the chapters come from {len(groups)} different runs ({parts}): "
                    f"rerun '{fix}' to make one book")


def sync_scenes(root, run: dict) -> int:
    """Make ``<root>/book/_static/scenes`` hold the book's run's scenes only: clear it (the
    ``.gitkeep`` stays) and copy ``<run's data folder>/book/scenes/*`` in. A run that recorded
    no data folder, or wrote no scenes folder, leaves it as it is. Returns files copied."""
    if not run.get("data_path"):
        return 0
    src = Path(run["data_path"]) / "book" / "scenes"
    if not src.is_dir():
        return 0
    dest = Path(root) / "book" / "_static" / "scenes"
    dest.mkdir(parents=True, exist_ok=True)
    for old in dest.iterdir():
        if old.name == ".gitkeep":
            continue
        shutil.rmtree(old) if old.is_dir() and not old.is_symlink() else old.unlink()
    n = 0
    for f in sorted(src.iterdir()):
        if f.is_file():
            shutil.copy2(f, dest / f.name)
            n += 1
    return n


def chapter_estimate(profile) -> dict | None:
    """The chapters' estimated wall times for the landing page
    (:func:`zoa_lib.book.estimate.landing_estimate`: from the unit costs ``zoa bench book`` saved
    in ``<data>/bench/unit-costs.json``, else the profile's ``book.expected_minutes``), or None.
    Never raises: a missing or broken estimate leaves the column out, never fails the book."""
    try:
        from zoa_lib.book.estimate import landing_estimate

        return landing_estimate(profile)
    except Exception:  # noqa: BLE001 - the estimate is a courtesy of the page
        return None


def refresh_estimate(root=REPO_ROOT) -> dict | None:
    """Recompute the estimate of ``<root>/book/_generated/run-info.json``'s run (its profile and
    overrides, :func:`chapter_estimate`) and rewrite run-info, so that costs measured by
    ``zoa bench book`` after ``zoa run`` reach the page built by ``zoa book``. Returns the
    estimate; None (and nothing rewritten) when there is no run-info or its profile no longer
    loads."""
    from zoa_lib.config import load_profile

    path = Path(root) / "book" / "_generated" / "run-info.json"
    try:
        info = json.loads(path.read_text())
        overrides = dict(info.get("overrides") or {})
        if info.get("data_tag"):
            overrides.setdefault("data_tag", info["data_tag"])
        profile = load_profile(info.get("profile_arg") or info["profile"], overrides)
    except (ZoaError, OSError, ValueError, KeyError, TypeError):
        return None
    est = chapter_estimate(profile)
    if est != info.get("estimate"):
        info["estimate"] = est
        try:
            write_run_info(root, info)
        except OSError:
            return None
    return est


def build_book(root=REPO_ROOT, path_output: str | os.PathLike | None = None) -> Path:
    """Build the Jupyter Book at ``root`` into ``<path_output>/_build/html`` (default
    ``<root>/_build/html``) and return that folder. Notebooks are not executed here."""
    root = Path(root)
    run = book_run(root)  # one run, or a one-line refusal naming the chapters of each
    logger.info(f"[zoa book] chapters from {_run_label(run)}; made by: {run.get('command')}")
    n = sync_scenes(root, run)
    if n:
        logger.info(f"[zoa book] {n} scene file(s) from {run.get('data_folder')}/book/scenes")
    if not (root / "book" / "_generated" / "run-info.md").exists():
        raise BookError("book/_generated/run-info.md is missing: run 'zoa run' first")
    refresh_estimate(root)  # unit costs `zoa bench book` saved after the run; never fails the build
    try:
        refresh_scorecard(root)
    except (ZoaError, OSError, ValueError, KeyError) as e:  # the profile of run-info no longer loads
        logger.warning(f"[zoa book] warning: scorecard not refreshed ({e}); the landing page keeps the last one")
        stale = root / "book" / "_generated" / "scorecard.md"
        if not stale.exists():
            write_text_atomic(stale, f"## This run at a glance\n\nNo scorecard: {e}\n")
    path_output = Path(path_output) if path_output else root
    exe = Path(sys.executable).with_name("jupyter-book")
    cmd = [str(exe) if exe.exists() else "jupyter-book", "build", str(root),
           "--path-output", str(path_output), "--keep-going", "--all"]
    logger.debug(f"[zoa book] {' '.join(cmd)}")
    proc = subprocess.run(cmd, capture_output=True, text=True)
    html = path_output / "_build" / "html"
    if proc.returncode != 0 or not (html / "index.html").exists():
        tail = "\n".join((proc.stdout + proc.stderr).splitlines()[-25:])
        raise BookError(f"jupyter-book build failed (exit {proc.returncode}):\n{tail}")
    logger.info(f"[zoa book] built {html / 'index.html'}")
    return html
