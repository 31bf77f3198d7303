"""Published bulk-flow measurements, and how a reconstruction's B(R) compares with them.

The bulk flow of a sphere of radius R about the observer is the volume average of the
peculiar velocity, B(R) = (3 / 4πR³) ∫_{|x|<R} v(x) d³x (km/s) — the *top-hat* window this
project measures on its reconstructions (:func:`zoa_lib.universe.velocity.bulk_flow`). Published
values use several windows (``data/published_bulk_flows.csv``, :data:`WINDOWS`):

- ``top-hat``: the same average, of a Wiener-filter reconstruction (Hoffman et al. 2015,
  Courtois et al. 2023): directly comparable at the same R;
- ``gaussian``: a Gaussian window exp(−r²/2R²) (Lilow & Nusser 2021): weighs the inner
  volume more, so at the same R it probes smaller scales than a top-hat;
- ``mv``: minimum-variance weights of the galaxies for an ideal window of that depth
  (Whitford et al. 2023); ``mle``: maximum-likelihood moments of the galaxies, R an
  effective depth (Qin et al. 2019) — both weigh galaxies, not volume, and their depth is
  an effective one;
- ``external``: the flow induced by masses beyond the survey volume (Carrick et al. 2015),
  a uniform residual rather than a sphere average.

Only top-hat values at R ≤ L/2 of the cube compare one to one with this project's B(R);
:func:`compare` says which do.
"""
from __future__ import annotations

import csv
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from zoa_lib.errors import ZoaError

#: Windows of the published measurements, as the table names them.
WINDOWS = {
    "top-hat": "volume average in a sphere of radius R (as this project's B(R))",
    "gaussian": "Gaussian window of radius R",
    "mv": "minimum-variance galaxy weights, effective depth R",
    "mle": "maximum-likelihood moments of the galaxies, effective depth R",
    "external": "flow from masses beyond the survey, not a sphere average",
}
COLUMNS = ("reference", "data", "R", "B", "B_err", "l", "l_err", "b", "b_err", "window", "note")


class LiteratureError(ZoaError, ValueError):
    """A malformed table of published measurements."""


@dataclass(frozen=True)
class PublishedBulkFlow:
    """One published bulk flow: ``R`` radius or depth in Mpc/h (NaN: not a sphere), ``B`` and
    ``B_err`` in km/s, direction ``l``, ``b`` (deg, Galactic; NaN when not given) with
    errors, the ``window`` (a key of :data:`WINDOWS`), the data set and the reference."""

    reference: str
    data: str
    R: float
    B: float
    B_err: float
    l: float
    l_err: float
    b: float
    b_err: float
    window: str
    note: str = ""

    @property
    def label(self) -> str:
        """Short label: first author, year and data, e.g. "Qin 2019 (2MTF + CF3)"."""
        first = self.reference.split(",")[0].split("&")[0].split(" et al")[0].strip()
        year = next((w.strip(",.") for w in self.reference.replace(",", " ").split() if w.isdigit() and len(w) == 4),
                    "")
        return f"{first} {year} ({self.data})".replace("  ", " ")

    @property
    def has_direction(self) -> bool:
        return math.isfinite(self.l) and math.isfinite(self.b)


def default_table() -> Path:
    """``data/published_bulk_flows.csv`` in the repository."""
    from zoa_lib.io.paths import shipped

    return shipped("published_bulk_flows.csv")


def published_bulk_flows(path=None) -> list[PublishedBulkFlow]:
    """Read the table of published bulk flows (default :func:`default_table`); '#' lines are
    comments. Empty numeric cells become NaN; B and B_err must be given and > 0, the window
    must be one of :data:`WINDOWS`. Errors name the file and line."""
    path = Path(path) if path is not None else default_table()
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError as e:
        raise LiteratureError(f"{path}: cannot read the table of published bulk flows ({e})") from None
    numbered = [(i, s) for i, s in enumerate(lines, start=1) if s.strip() and not s.lstrip().startswith("#")]
    reader = csv.DictReader(s for _, s in numbered)
    missing = [c for c in COLUMNS if c not in (reader.fieldnames or [])]
    if missing:
        raise LiteratureError(f"{path}: missing column(s) {', '.join(missing)}")
    out = []
    for (lineno, _), row in zip(numbered[1:], reader):
        def num(key):
            text = (row.get(key) or "").strip()
            try:
                return float(text) if text else float("nan")
            except ValueError:
                raise LiteratureError(f"{path}: line {lineno}: {key} must be a number, got {text!r}") from None

        rec = PublishedBulkFlow(reference=row["reference"].strip(), data=row["data"].strip(), R=num("R"), B=num("B"),
                                B_err=num("B_err"), l=num("l"), l_err=num("l_err"), b=num("b"), b_err=num("b_err"),
                                window=row["window"].strip(), note=(row.get("note") or "").strip())
        if not (rec.B > 0 and rec.B_err > 0):
            raise LiteratureError(f"{path}: line {lineno}: B and B_err must be > 0 km/s, got {rec.B}, {rec.B_err}")
        if rec.window not in WINDOWS:
            raise LiteratureError(f"{path}: line {lineno}: window must be one of {', '.join(WINDOWS)}, "
                                  f"got {rec.window!r}")
        out.append(rec)
    if not out:
        raise LiteratureError(f"{path}: no measurements")
    return out


def _angle(l1, b1, l2, b2) -> float:
    """Great-circle angle (deg) between two Galactic directions (deg)."""
    l1, b1, l2, b2 = np.radians([l1, b1, l2, b2])
    c = np.sin(b1) * np.sin(b2) + np.cos(b1) * np.cos(b2) * np.cos(l1 - l2)
    return float(np.degrees(np.arccos(np.clip(c, -1.0, 1.0))))


def compare(published, radii, bulk_flow_rows) -> list[dict]:
    """Each published bulk flow beside a reconstruction's top-hat B(R).

    radii : the radii (Mpc/h) of the reconstruction's ``bulk_flow_rows`` (rows {R, B, l, b,
        SGX, SGY, SGZ, (B_std)} in km/s and degrees, as
        :func:`zoa_lib.analysis.reconstruct.bulk_flow_rows` and ``Reconstruction.bulk_flow_table`` give
        them), in increasing order.
    Returns per published value {label, window, R, B, B_err, l, b, B_rec, B_rec_std, l_rec,
    b_rec, angle (deg between the directions, NaN without a published one), tension
    ((B_rec − B)/√(B_err² + B_rec_std²), only where ``comparable``, else NaN), comparable}.
    B_rec_std is the reconstruction's own error: a row's ``B_err`` when it has one (the method's
    error on test mocks of the same selection combined with the scatter over realizations,
    :func:`zoa_lib.analysis.bulk_flow_errors.attach_errors`), else its ``B_std`` (realizations only), else 0
    — an error of 0 makes a tension that counts the published error alone. The reconstruction's vector B is
    interpolated linearly in R between the two nearest radii (its |B| and (l, b) follow from
    the interpolated vector, B_rec_std is interpolated); NaN when R lies outside the
    reconstruction's radii (e.g. a sphere larger than the cube) or is not a sphere.
    ``comparable`` is True only for a top-hat measurement the reconstruction reaches."""
    from zoa_lib.analysis.reconstruct import bulk_flow_rows as rows_of

    radii = np.asarray(radii, float)
    rows = list(bulk_flow_rows)
    vec = np.array([[r["SGX"], r["SGY"], r["SGZ"]] for r in rows], float).reshape(-1, 3)
    std = np.array([r["B_err"] if np.isfinite(r.get("B_err", np.nan)) else r.get("B_std", 0.0) for r in rows],
                   float)
    out = []
    nan = float("nan")
    for p in published:
        rec = None
        if math.isfinite(p.R) and len(radii) and radii[0] - 1e-9 <= p.R <= radii[-1] + 1e-9:
            v = np.array([np.interp(p.R, radii, vec[:, a]) for a in range(3)])
            rec = rows_of(v[None], [p.R])[0]
            rec["B_std"] = float(np.interp(p.R, radii, std))
        B_rec = rec["B"] if rec else nan
        s_rec = rec["B_std"] if rec else nan
        out.append({"label": p.label, "window": p.window, "R": p.R, "B": p.B, "B_err": p.B_err, "l": p.l, "b": p.b,
                    "B_rec": B_rec, "B_rec_std": s_rec, "l_rec": rec["l"] if rec else nan,
                    "b_rec": rec["b"] if rec else nan,
                    "angle": _angle(p.l, p.b, rec["l"], rec["b"]) if rec and p.has_direction else nan,
                    "tension": (B_rec - p.B) / math.hypot(p.B_err, s_rec) if rec and p.window == "top-hat" else nan,
                    "comparable": bool(rec is not None and p.window == "top-hat")})
    return out


PAPER = "Dupuy, Jeong, Hong, Hwang, Kim & Courtois 2025, ApJ (arXiv:2511.03919)"


@dataclass(frozen=True)
class PaperNumber:
    """A number quoted from the paper: value (None where the paper gives no single number
    that this project has transcribed), its ± error, unit, what it measures and the source."""

    key: str
    quantity: str
    value: float | None
    error: float | None
    unit: str
    source: str


#: The paper's numbers that the book sets this run's against — the only place they are typed.
PAPER_NUMBERS: dict[str, PaperNumber] = {p.key: p for p in (
    PaperNumber("r_phi", "Pearson r of the potential φ on held-out mocks", 0.98, None, "",
                f"{PAPER}: V-Net on held-out mocks at 128³ (1.25 Mpc/h voxels), 200 epochs, "
                "11,512 training mocks"),
    PaperNumber("ga_l", "Great Attractor, Galactic longitude l", 308.4, 2.4, "deg",
                f"{PAPER}: V-Net on 1,000 HAMLET realizations of Cosmicflows-4"),
    PaperNumber("ga_b", "Great Attractor, Galactic latitude b", 29.0, 1.9, "deg",
                f"{PAPER}: V-Net on 1,000 HAMLET realizations of Cosmicflows-4"),
    PaperNumber("ga_cz", "Great Attractor, redshift distance cz", 4960.0, 404.0, "km/s",
                f"{PAPER}: V-Net on 1,000 HAMLET realizations of Cosmicflows-4"),
    PaperNumber("ga_fraction", "fraction of CF4 realizations in which the GA is found", 0.64, None, "",
                f"{PAPER}: 64 % of 1,000 HAMLET realizations of Cosmicflows-4"),
    PaperNumber("bulk_flow", "bulk flow of the reconstructed velocity field", None, None, "km/s",
                f"{PAPER} compare bulk-flow curves B(R) with ΛCDM; no single value of theirs has "
                "been transcribed and checked here, so none is quoted"),
)}
