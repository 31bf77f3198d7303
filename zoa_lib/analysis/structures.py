"""Known structures of the local universe: the shipped table of literature positions.

Galactic (l, b) and cz from the table. Each row names the **frame** of its cz (column
``frame``: ``heliocentric``, ``local-group`` or ``cmb``): a cluster's redshift is stored as
its reference publishes it (heliocentric), and its CMB-frame cz — the frame the pipeline
works in — is computed when the table is read, by :func:`zoa_lib.survey.frames.to_cmb` (the Sun's
Planck 2018 dipole, directions from astropy), never typed in by hand. Only values that a
paper gives in the CMB frame (the Great Attractor of Dupuy et al. 2025, from CF4) or that
are distances rather than redshifts (the Local Void's approximate centre, H0 d) are stored
as ``cmb``. A table without a ``frame`` column is read as CMB-frame (tables written before
the column existed said so).

The distance is d = cz_CMB / H0 in Mpc/h (H0 = 100 km/s per Mpc/h, so d [Mpc/h] =
cz_CMB / 100, no peculiar-velocity correction), and the supergalactic position comes from
astropy (:func:`zoa_lib.survey.sky.galactic_to_sg`).

**Heights** (a choice of this module, not of the paper): attractors get c = ν σ_s
with ν = 3 for the GA (the strongest) and ν = 2 for the other clusters, voids
ν = −1.5, where σ_s = √C_00 is the rms of the smoothed linear field (:data:`HEIGHTS`).
"""
from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from zoa_lib.errors import ZoaError
from zoa_lib.io.paths import shipped
from zoa_lib.survey.frames import CMB, HELIOCENTRIC, LOCAL_GROUP
from zoa_lib.universe.cosmology import H0

#: Constraint height ν (in units of σ_s) by structure name or kind; the GA is the strongest.
HEIGHTS = {"Great Attractor": 3.0, "attractor": 2.0, "void": -1.5}
#: Name of the Great Attractor's row in the structure table.
GREAT_ATTRACTOR = "Great Attractor"
KINDS = ("attractor", "void")
#: Frames a table's cz may be given in (:mod:`zoa_lib.survey.frames`).
CZ_FRAMES = (HELIOCENTRIC, LOCAL_GROUP, CMB)

#: The shipped table of literature positions (``data/known_structures.csv``).
KNOWN_STRUCTURES = shipped("known_structures.csv")


class LocalUniverseError(ZoaError, ValueError):
    """Bad structure table, constraint set or field given to the GA finder."""


@dataclass(frozen=True)
class Structure:
    """A known structure: name, Galactic l, b (deg), ``cz`` (km/s) **in the CMB frame**, kind
    (attractor | void), reference, and its supergalactic position ``sg`` = (SGX, SGY, SGZ) in
    Mpc/h at d = cz / H0 (observer at the origin). ``frame`` and ``cz_table``: the frame and
    value of the table's cz, as its reference gives it (``cz_table`` None: ``cz`` itself)."""

    name: str
    l: float
    b: float
    cz: float
    kind: str
    reference: str
    sg: tuple[float, float, float]
    frame: str = CMB
    cz_table: float | None = None

    @property
    def cz_cmb(self) -> float:
        """cz in the CMB frame (km/s): :attr:`cz`."""
        return self.cz

    @property
    def cz_helio(self) -> float:
        """Heliocentric cz (km/s): the table's value when it is heliocentric, else converted
        from the CMB frame (:func:`zoa_lib.survey.frames.from_cmb`)."""
        if self.frame == HELIOCENTRIC and self.cz_table is not None:
            return float(self.cz_table)
        from zoa_lib.survey.frames import from_cmb

        return float(from_cmb(self.cz, self.l, self.b, HELIOCENTRIC))

    @property
    def distance(self) -> float:
        """d = cz / H0 in Mpc/h (CMB-frame cz)."""
        return self.cz / H0


def _default_table() -> Path:
    return KNOWN_STRUCTURES


def known_structures(path=None) -> list[Structure]:
    """Read the structure table (default: the shipped ``data/known_structures.csv``).

    CSV with a header ``name,l,b,cz,frame,kind,reference`` ('#' lines are comments); l, b in
    degrees, cz in km/s (> 0) in ``frame`` (:data:`CZ_FRAMES`; column optional, default
    ``cmb``), kind ``attractor`` or ``void``. The CMB-frame cz (:attr:`Structure.cz`) is
    computed with :func:`zoa_lib.survey.frames.to_cmb`; SG positions via astropy. A bad table raises
    :class:`LocalUniverseError` naming the file and line."""
    from zoa_lib.survey.frames import to_cmb
    from zoa_lib.survey.sky import galactic_to_sg

    path = Path(path) if path is not None else _default_table()
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise LocalUniverseError(f"{path}: structure table not found") from None
    except (OSError, UnicodeDecodeError) as e:
        raise LocalUniverseError(f"{path}: cannot read the structure table ({e})") from None
    lines = [(n, s) for n, s in enumerate(text.splitlines(), start=1) if s.strip() and not s.lstrip().startswith("#")]
    if not lines:
        raise LocalUniverseError(f"{path}: no header and no structures")
    rows = list(csv.reader(s for _, s in lines))
    header = [h.strip() for h in rows[0]]
    missing = [c for c in ("name", "l", "b", "cz", "kind") if c not in header]
    if missing:
        raise LocalUniverseError(f"{path}: line {lines[0][0]}: missing column(s) {', '.join(missing)} "
                                 f"(header: {', '.join(header)})")
    col = {h: i for i, h in enumerate(header)}
    parsed = []
    for (lineno, _), row in zip(lines[1:], rows[1:]):
        where = f"{path}: line {lineno}"
        if len(row) < len(header):
            raise LocalUniverseError(f"{where}: {len(row)} fields, the header has {len(header)}")
        rec = {h: row[i].strip() for h, i in col.items()}
        try:
            l, b, cz = float(rec["l"]), float(rec["b"]), float(rec["cz"])
        except ValueError:
            raise LocalUniverseError(f"{where}: l, b, cz must be numbers, got "
                                     f"{rec['l']!r}, {rec['b']!r}, {rec['cz']!r}") from None
        if not (np.isfinite([l, b, cz]).all() and -90.0 <= b <= 90.0 and cz > 0):
            raise LocalUniverseError(f"{where}: need finite l, -90 <= b <= 90 and cz > 0 km/s, got "
                                     f"l={l}, b={b}, cz={cz}")
        if rec["kind"] not in KINDS:
            raise LocalUniverseError(f"{where}: kind must be attractor or void, got {rec['kind']!r}")
        frame = rec.get("frame", CMB) or CMB
        if frame not in CZ_FRAMES:
            raise LocalUniverseError(f"{where}: frame must be one of {', '.join(CZ_FRAMES)}, got {frame!r}")
        cz_cmb = cz if frame == CMB else float(to_cmb(cz, l, b, frame))
        if not cz_cmb > 0:
            raise LocalUniverseError(f"{where}: cz = {cz} km/s ({frame}) is {cz_cmb:.0f} km/s in the CMB frame: "
                                     f"need > 0")
        parsed.append((rec["name"], l % 360.0, b, cz_cmb, rec["kind"], rec.get("reference", ""), frame, cz))
    if not parsed:
        raise LocalUniverseError(f"{path}: no structures")
    names = [p[0] for p in parsed]
    if len(set(names)) != len(names):
        raise LocalUniverseError(f"{path}: duplicate structure names")
    l, b, cz = (np.array([p[i] for p in parsed]) for i in (1, 2, 3))
    x, y, z = galactic_to_sg(l, b, cz / H0)
    return [Structure(p[0], p[1], p[2], p[3], p[4], p[5], (float(x[i]), float(y[i]), float(z[i])),
                      frame=p[6], cz_table=p[7])
            for i, p in enumerate(parsed)]


def great_attractor(structures=None) -> Structure:
    """The Great Attractor's entry of ``structures`` (default: the shipped table)."""
    structures = known_structures() if structures is None else structures
    for s in structures:
        if s.name == GREAT_ATTRACTOR:
            return s
    raise LocalUniverseError(f"no {GREAT_ATTRACTOR!r} row in the structure table")


def constraint_heights(structures, sigma_s: float) -> np.ndarray:
    """Smoothed linear δ imposed at each structure: ν σ_s with ν from :data:`HEIGHTS`
    (by name for the GA, else by kind)."""
    return np.array([sigma_s * HEIGHTS[s.name if s.name in HEIGHTS else s.kind] for s in structures])


def in_zoa(structures, zoa_b: float) -> np.ndarray:
    """Boolean per structure: |b| < ``zoa_b`` degrees, i.e. hidden by the survey's mask."""
    return np.array([abs(s.b) < float(zoa_b) for s in structures], bool)
