"""What the landing page says about a run of the book: its profile beside the paper's scale,
chapter times, package versions.
"""
from __future__ import annotations

from pathlib import Path

from zoa_lib.io.atomic import write_json_atomic, write_text_atomic


def write_run_info(root: Path, info: dict) -> None:
    """Write run-info.json and the Markdown the landing page includes."""
    gen = Path(root) / "book" / "_generated"
    write_json_atomic(gen / "run-info.json", info)
    write_text_atomic(gen / "run-info.md", run_info_markdown(info))


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
    from zoa_lib.config import load_profile
    from zoa_lib.methods.vnet import parameter_count

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
        f"{info.get('machine', 'an unrecorded machine')}"
        + (f", from the data folder `{info['data_folder']}`" if info.get("data_folder") else "") + ".",
        "",
        f"Profile **{info['profile']}**: {info.get('description', '')} — "
        f"{info.get('grid')}³ voxels over 160 Mpc/h, {info.get('n_mocks')} mocks, "
        f"{info.get('epochs')} training epochs.",
        "",
    ]
    lines += chapter_times_markdown(info)
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


def chapter_times_markdown(info: dict) -> list[str]:
    """The landing page's chapter-time table: each chapter's measured wall time and, when
    run-info holds an estimate (:func:`~zoa_lib.book.runner.chapter_estimate`), the estimate and measured /
    estimate beside it, with a line naming where the estimate comes from."""
    est = info.get("estimate") or {}
    est_ch = est.get("chapters") if isinstance(est.get("chapters"), dict) else {}
    chapters = sorted(info.get("chapters", {}).items())
    if not est_ch:
        lines = ["| chapter | wall time | finished (UTC) |", "|---|---|---|"]
        total = 0.0
        for name, rec in chapters:
            total += rec["seconds"]
            lines.append(f"| {name} | {format_seconds(rec['seconds'])} | {rec.get('finished_utc', '')} |")
        lines.append(f"| **total** | **{format_seconds(total)}** | |")
        return lines
    lines = ["| chapter | wall time | estimate | measured / estimate | finished (UTC) |", "|---|---|---|---|---|"]
    total = total_est = total_both_m = total_both_e = 0.0
    for name, rec in chapters:
        sec = float(rec["seconds"])
        e = est_ch.get(name)
        total += sec
        if isinstance(e, (int, float)) and e > 0:
            total_est += e
            total_both_m += sec
            total_both_e += e
            cells = f"{format_seconds(e)} | {sec / e:.2f}"
        else:
            cells = "— | —"
        lines.append(f"| {name} | {format_seconds(sec)} | {cells} | {rec.get('finished_utc', '')} |")
    ratio = f"**{total_both_m / total_both_e:.2f}**" if total_both_e > 0 else "—"
    lines.append(f"| **total** | **{format_seconds(total)}** | "
                 f"{f'**{format_seconds(total_est)}**' if total_est else '—'} | {ratio} | |")
    lines += ["", f"Estimates from {est.get('source', 'an unrecorded source')}"
              + ("; `zoa bench book` prints each chapter's formula. They are for a run from an empty data "
                 "folder: a chapter that reused the mocks or models of an earlier run is faster than its estimate."
                 if est.get("kind") == "unit costs" else ".")]
    return lines


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


def format_seconds(s: float) -> str:
    return f"{s:.0f} s" if s < 120 else f"{s / 60:.1f} min"
