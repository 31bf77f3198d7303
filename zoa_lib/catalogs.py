"""Read real peculiar-velocity catalogs (Cosmicflows-4 and look-alikes) into the mock catalog table.

:func:`read_catalog` turns a text table into the structured array of
:data:`zoa_lib.data.CATALOG_DTYPE` that :func:`zoa_lib.survey.draw_galaxies` makes for
mocks, so a real catalog is gridded by the very same :func:`zoa_lib.survey.grid_catalog`
(:func:`grid`). Two kinds of table:

``cf4`` — a distance catalog in the layout the Extragalactic Distance Database (EDD)
    distributes Cosmicflows-4 (CSV, or whitespace-separated text): a velocity column
    (``Vcmb``, ``V3k``, ``Vls`` or ``cz``, km/s), a distance modulus (``DM``, ``DMav``,
    ``DMzp``; or ``Dist`` in Mpc) and its error (``eDM``, ``e_DM``, ``e_DMav``,
    ``e_DMzp``), and sky positions as Galactic ``glon``/``glat`` (any capitalisation),
    supergalactic ``sgl``/``sgb`` or equatorial ``RA``/``DE`` (converted with astropy).
    Header lines before the column names, ``#`` comments and spaces around commas are
    accepted. Per galaxy::

        d_L [Mpc]   = 10^((DM − 25) / 5)                     (luminosity distance)
        d_L [Mpc/h] = d_L [Mpc] × h0_catalog / 100            (CF4: h0_catalog = 74.6)
        d_obs       = comoving distance of d_L                (zoa_lib.survey, Mpc/h)
        v_r_obs, sigma_v = survey.estimate_velocity(estimator, cz, d_L, eDM)

    Galaxies with cz ≤ 0 (blueshifted neighbours of the Local Group: 39 of the first 9,999
    rows of CF4) are data, not errors: the Watkins–Feldman estimator needs cz > 0 (it takes
    ln cz), so they get the ``linear`` estimator, v = c (z − z_cos(d_L)) / (1 + z_cos(d_L))
    = cz − H0 d_L to well below a km/s at their distances, with its error; the report counts
    them (``n_cz_nonpositive``) and says so in a note. cz below :data:`CZ_MIN` is an error.

    SGX, SGY, SGZ = d_obs × (unit vector of (l, b) in supergalactic axes, via astropy).
``positions`` — any catalog with supergalactic positions ``SGX``, ``SGY``, ``SGZ``
    (Mpc/h) and a radial peculiar velocity ``v_r`` (km/s), optionally ``sigma_v``; e.g.
    one realization of a HAMLET reconstruction. cz is the redshift the forward model of
    :mod:`zoa_lib.survey` implies, 1 + z = (1 + z_cos(d))(1 + v_r/c).

True distances and velocities of a real catalog are unknown: ``d_true`` and
``v_r_true`` are NaN. Column names are matched case-insensitively against the aliases in
:data:`ALIASES`; ``columns={"velocity": "Vhelio", ...}`` overrides them.

Every bad row raises :class:`CatalogError` naming the file, the 1-based line number and
the column (missing column, duplicate column, non-numeric value, NaN/inf, distance ≤ 0 or
beyond z = 1 — :data:`Z_MAX`, where the distance–redshift relations of
:mod:`zoa_lib.survey` hold —, cz or v_r out of range, a field too long to split, empty
file, not UTF-8). Lines end at ``\n``, ``\r\n`` or ``\r`` only (form feeds, U+2028 and
the like are not line breaks), so line numbers are those an editor shows. With
``drop_bad=True`` bad rows are dropped and listed in the :class:`CatalogReport`; nothing
is skipped silently.

:func:`describe` gives the sky coverage and distance range of a read catalog, and
:func:`write_grid` writes its gridded inputs (``n_gal``, ``v_pec``) to HDF5; ``zoa
catalog`` prints the report of both.

:func:`write_cf4_csv` writes a catalog in EDD's CSV layout (the tests and the book use it
for mock tables; such a file says in its header that it is not Cosmicflows-4 data).

Real data: :data:`CF4_SAMPLE` is the shipped ``data/cf4-table2-first9999.csv``, the first
9,999 rows (PGC order, RA 0°–203° only) of the CF4 galaxy table as VizieR serves it
(provenance in ``data/README.md``); :func:`fetch_cf4` downloads the whole table (55,877
galaxies, all sky) from VizieR with astroquery (``pip install 'zoa[cf4]'``; ``zoa catalog
PATH --fetch``).
"""
from __future__ import annotations

import csv
import math
import os
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Mapping

import numpy as np

from . import survey
from .data import CATALOG_DTYPE
from .errors import ZoaError, printable
from .io import display_path

#: H0 (km/s/Mpc) of Cosmicflows-4 distances (Tully et al. 2023).
CF4_H0 = 74.6
#: VizieR name of the CF4 individual-galaxy table (Tully et al. 2023, ApJ 944, 94).
CF4_VIZIER = "J/ApJ/944/94/table2"
#: The shipped real CF4 table: its first 9,999 rows (VizieR's row limit), RA 0°–203°.
CF4_SAMPLE = Path(__file__).resolve().parent.parent / "data" / "cf4-table2-first9999.csv"
#: sha256 of :data:`CF4_SAMPLE` (also in data/README.md).
CF4_SAMPLE_SHA256 = "955e3d0d1db2aeabd57c051480a40282084b92f59875bd0f69bee450eefe7fba"

#: Field → accepted header names, in order of preference (matched case-insensitively).
ALIASES: dict[str, tuple[str, ...]] = {
    "id": ("pgc", "1pgc", "pgc1", "id", "name"),
    "glon": ("glon", "l", "gal_l"),
    "glat": ("glat", "b", "gal_b"),
    "sgl": ("sgl",),
    "sgb": ("sgb",),
    "ra": ("ra", "radeg", "raj2000", "ra_deg"),
    "dec": ("de", "dec", "dedeg", "dej2000", "dec_deg"),
    "velocity": ("vcmb", "v3k", "vls", "cz", "vcmb_kms"),
    "dm": ("dm", "dmav", "dmzp", "mu"),
    "dist": ("dist", "d_mpc"),
    "e_dm": ("edm", "e_dm", "e_dmav", "edmav", "e_dmzp", "edmzp", "sigma_dm"),
    "sgx": ("sgx",),
    "sgy": ("sgy",),
    "sgz": ("sgz",),
    "v_r": ("v_r", "vr", "vpec", "v_pec", "vrad", "v_rad"),
    "sigma_v": ("sigma_v", "e_v", "ev", "e_vpec", "evpec", "e_vr"),
}
KINDS = ("auto", "cf4", "positions")
#: Largest |v_r| (km/s) accepted in a ``positions`` table.
V_PEC_MAX = 20000.0
#: Largest cz (km/s) accepted in a ``cf4`` table (CF4 reaches z ≈ 0.1).
CZ_MAX = 40000.0
#: Smallest cz (km/s) accepted in a ``cf4`` table: blueshifts are real (Local Group
#: neighbours, Virgo members falling towards us; the most blueshifted galaxies known are
#: near −1,500 km/s), but not beyond a few thousand km/s.
CZ_MIN = -5000.0
#: Largest redshift of a distance: the distance–redshift relations of :mod:`zoa_lib.survey`
#: (WF15's z_mod, inverted by Newton iterations) hold for z < 1; CF4 reaches z ≈ 0.1.
Z_MAX = 1.0
#: Luminosity (cf4 tables) and comoving (positions tables) distance at :data:`Z_MAX`, Mpc/h.
D_L_MAX = float(survey.luminosity_distance(Z_MAX))
D_C_MAX = float(survey.comoving_distance(Z_MAX))
#: Line breaks: ``\n``, ``\r\n``, ``\r`` (not the form feeds and Unicode separators of str.splitlines).
_LINE_BREAK = re.compile(r"\r\n|\r|\n")


class CatalogError(ZoaError, ValueError):
    """A catalog file cannot be read; the message names the file, line and column."""


@dataclass
class DroppedRow:
    line: int
    column: str
    reason: str

    def __str__(self):
        col = f", column {self.column!r}" if self.column else ""
        return f"line {self.line}{col}: {self.reason}"


@dataclass
class CatalogReport:
    """What :func:`read_catalog` read: the columns used, how many rows, what it dropped and why."""

    path: str
    kind: str
    header_line: int
    columns: dict[str, str]
    n_rows: int = 0
    n_kept: int = 0
    #: kept galaxies with cz ≤ 0, whose velocity is the linear estimator's (``cf4`` tables)
    n_cz_nonpositive: int = 0
    dropped: list[DroppedRow] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def summary(self) -> str:
        cols = ", ".join(f"{k}={v}" for k, v in self.columns.items())
        lines = [f"{display_path(self.path)}: {self.kind} table, header on line {self.header_line}; columns {cols}",
                 f"{self.n_rows} data rows, {self.n_kept} kept, {len(self.dropped)} dropped"]
        lines += [f"  note: {n}" for n in self.notes]
        lines += [f"  dropped {d}" for d in self.dropped]
        return "\n".join(lines)

    def __str__(self):
        return self.summary()

    def to_dict(self) -> dict:
        """The report as plain JSON-able data (dropped rows as ``{line, column, reason}``)."""
        d = asdict(self)
        d["n_dropped"] = len(self.dropped)
        return d


# --------------------------------------------------------------------------- text parsing
class _SplitError(ValueError):
    """A line the csv module cannot split (e.g. a field over its 131,072-character limit)."""


def _split(line: str, comma: bool) -> list[str]:
    if comma:
        try:
            fields = next(csv.reader([line], skipinitialspace=True))
        except csv.Error as e:
            raise _SplitError(f"cannot split the line into fields ({e})") from None
        return [t.strip().strip('"').strip("'").strip() for t in fields]
    return line.split()


def _show(tok: str) -> str:
    """A token for a one-line message (quoted, escaped, cut when long)."""
    return printable(tok, limit=50, quote=True)


def _is_comment(s: str) -> bool:
    return s.startswith(("#", "!", "%"))


def _is_rule(s: str) -> bool:
    return bool(s) and set(s) <= set("-=+|, \t")


def _read_text(path: Path) -> str:
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise CatalogError(f"{path}: file not found") from None
    except IsADirectoryError:
        raise CatalogError(f"{path}: is a folder, not a catalog file") from None
    except OSError as e:
        raise CatalogError(f"{path}: cannot read ({e.strerror})") from None
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        line = len(_LINE_BREAK.findall(raw[:e.start].decode("utf-8", "replace"))) + 1
        raise CatalogError(f"{path}: line {line}: not UTF-8 text (byte 0x{raw[e.start]:02x} at offset "
                           f"{e.start}); re-save the file as UTF-8") from None
    if not text.strip():
        raise CatalogError(f"{path}: file is empty")
    return text


def _resolve(header: list[str], kind: str, overrides: Mapping[str, str], path) -> tuple[dict, dict]:
    """Map fields to header column indices. Returns (field → index, field → header name)."""
    lower = [h.lower() for h in header]
    seen: dict[str, int] = {}
    for i, h in enumerate(header):
        if h in seen:
            raise CatalogError(f"{path}: duplicate column {_show(h)} (columns {seen[h] + 1} and {i + 1})")
        seen[h] = i
    idx, names = {}, {}
    for fld, alias in overrides.items():
        if alias not in header:
            # allow a case-insensitive match for overrides too, if unambiguous
            hits = [i for i, h in enumerate(lower) if h == str(alias).lower()]
            if len(hits) != 1:
                raise CatalogError(f"{path}: missing column {_show(alias)} (mapped to field {fld!r}); "
                                   f"header has: {_header_list(header)}")
            idx[fld] = hits[0]
        else:
            idx[fld] = header.index(alias)
        names[fld] = header[idx[fld]]
    for fld, aliases in ALIASES.items():
        if fld in idx:
            continue
        for a in aliases:
            hits = [i for i, h in enumerate(lower) if h == a]
            if len(hits) > 1:
                raise CatalogError(f"{path}: duplicate column {a!r} for field {fld!r} "
                                   f"({', '.join(_show(header[i]) for i in hits)})")
            if hits:
                idx[fld], names[fld] = hits[0], header[hits[0]]
                break
    return idx, names


def _detect_kind(present) -> str | None:
    """Table kind from the fields a header holds (``positions`` or ``cf4``), or None."""
    if all(k in present for k in ("sgx", "sgy", "sgz", "v_r")):
        return "positions"
    if "velocity" in present and ("dm" in present or "dist" in present):
        return "cf4"
    return None


def _missing_message(kind: str, idx: dict, header: list[str], path) -> str | None:
    need = []
    if kind == "positions":
        need = [f for f in ("sgx", "sgy", "sgz", "v_r") if f not in idx]
    else:
        if "velocity" not in idx:
            need.append("velocity (Vcmb, V3k, Vls or cz)")
        if "dm" not in idx and "dist" not in idx:
            need.append("distance modulus (DM, DMav, DMzp) or Dist")
        if "e_dm" not in idx:
            need.append("distance-modulus error (eDM, e_DM, e_DMav, e_DMzp)")
        if not any(all(f in idx for f in pair) for pair in (("glon", "glat"), ("sgl", "sgb"), ("ra", "dec"))):
            need.append("sky position (glon+glat, sgl+sgb or RA+DE)")
    if not need:
        return None
    return (f"{path}: missing column {need[0]}" + (f" (and {', '.join(need[1:])})" if len(need) > 1 else "")
            + f"; header has: {_header_list(header)}")


def _header_list(header: list[str]) -> str:
    """The header's column names for a one-line message."""
    text = ", ".join(printable(h, limit=40) for h in header[:40])
    return text + (f", … ({len(header)} columns)" if len(header) > 40 else "")


_KEY_FIELDS = {"velocity", "dm", "dist", "e_dm", "glon", "glat", "ra", "dec", "sgx", "sgy", "sgz", "v_r"}


def _find_header(lines: list[str], kind: str, overrides: Mapping[str, str]):
    """The header: the last line naming the catalog's columns before the first numeric
    (data) line. A ``#``-commented header counts; title lines and comments are skipped.
    Returns (line index, tokens, comma-separated?) or None."""
    found = None
    for n, raw in enumerate(lines):
        s = raw.strip()
        body = s.lstrip("#!%").strip() if _is_comment(s) else s
        if not body or _is_rule(body):
            continue
        comma = "," in body
        try:
            tokens = _split(body, comma)
        except _SplitError:
            continue
        filled = [t for t in tokens if t]
        numeric = sum(_parse_float(t) is not None for t in filled)
        if not _is_comment(s) and filled and numeric * 2 >= len(filled):
            if found is not None:
                return found  # first data line: the header is the last candidate before it
            continue
        if len(tokens) < 2:
            continue
        low = {t.lower() for t in tokens}
        present = {f for f, al in ALIASES.items() if any(x in low for x in al)}
        mapped = {f for f, a in overrides.items() if str(a).lower() in low}
        present |= mapped
        k = _detect_kind(present)
        if (overrides and len(mapped) == len(overrides) and len(mapped) >= 2) \
                or (k and kind in ("auto", k)) or len(present & _KEY_FIELDS) >= 3:
            found = (n, tokens, comma)
    return found


def _parse_float(tok: str):
    """float(tok) or None when not a number."""
    try:
        return float(tok)
    except ValueError:
        return None


def read_catalog(path: str | os.PathLike, *, kind: str = "auto", columns: Mapping[str, str] | None = None,
                 h0_catalog: float = CF4_H0, drop_bad: bool = False, estimator: str = "watkins_feldman",
                 sample: int = 0, cz_max: float = CZ_MAX, v_max: float = V_PEC_MAX,
                 cz_min: float = CZ_MIN) -> tuple[np.ndarray, CatalogReport]:
    """Read a peculiar-velocity catalog into the mock catalog table.

    Parameters
    ----------
    path : CSV or whitespace-separated text file.
    kind : ``auto`` (from the header), ``cf4`` (velocity + distance modulus + sky position)
        or ``positions`` (SGX, SGY, SGZ in Mpc/h + v_r in km/s).
    columns : field → header name overrides; fields are the keys of :data:`ALIASES`
        (``velocity``, ``dm``, ``dist``, ``e_dm``, ``glon``, ``glat``, ``sgl``, ``sgb``, ``ra``,
        ``dec``, ``sgx``, ``sgy``, ``sgz``, ``v_r``, ``sigma_v``, ``id``).
    h0_catalog : H0 (km/s/Mpc) the distance moduli assume (CF4: 74.6); distances are
        converted to Mpc/h with h = h0_catalog/100.
    drop_bad : drop bad rows and list them in the report instead of raising.
    estimator : peculiar-velocity estimator for ``cf4`` tables (``watkins_feldman``, ``linear``);
        rows with cz ≤ 0 always get ``linear`` (WF15 needs cz > 0; counted in the report).
    sample : value of the catalog's ``sample`` column (e.g. a realization number).
    cz_max, cz_min : largest and smallest accepted cz (km/s) in a ``cf4`` table;
        v_max : largest |v_r| (km/s) in a ``positions`` table.

    Returns
    -------
    (catalog of :data:`zoa_lib.data.CATALOG_DTYPE`, :class:`CatalogReport`)
    """
    path = Path(path)
    if kind not in KINDS:
        raise CatalogError(f"{path}: unknown catalog kind {kind!r} (known: {', '.join(KINDS)})")
    if estimator not in survey.ESTIMATORS:
        raise CatalogError(f"{path}: unknown estimator {estimator!r} (known: {', '.join(survey.ESTIMATORS)})")
    if not (h0_catalog > 0 and math.isfinite(h0_catalog)):
        raise CatalogError(f"{path}: h0_catalog must be a positive number of km/s/Mpc, got {h0_catalog}")
    overrides = dict(columns or {})
    for fld in overrides:
        if fld not in ALIASES:
            raise CatalogError(f"{path}: unknown field {fld!r} in the column mapping "
                               f"(known: {', '.join(ALIASES)})")
    text = _read_text(path)
    lines = _LINE_BREAK.split(text)
    found = _find_header(lines, kind, overrides)
    if found is None:
        raise CatalogError(f"{path}: no header line with the catalog's column names found "
                           f"(need e.g. Vcmb, DM, eDM, glon, glat — or SGX, SGY, SGZ, v_r — "
                           f"or pass a column mapping)")
    hline, header, comma = found
    idx, names = _resolve(header, kind, overrides, path)
    if kind == "auto":
        kind = _detect_kind(set(idx)) or "cf4"
    msg = _missing_message(kind, idx, header, path)
    if msg:
        raise CatalogError(msg)
    report = CatalogReport(path=str(path), kind=kind, header_line=hline + 1, columns={})

    if kind == "cf4":
        dist_field = "dm" if "dm" in idx else "dist"
        sky = next(p for p in (("glon", "glat"), ("sgl", "sgb"), ("ra", "dec")) if all(f in idx for f in p))
        use = ["velocity", dist_field, "e_dm", *sky]
    else:
        use = ["sgx", "sgy", "sgz", "v_r"] + (["sigma_v"] if "sigma_v" in idx else [])
    report.columns = {f: names[f] for f in use}
    if "id" in idx:
        report.columns["id"] = names["id"]

    values = {f: [] for f in use}
    line_of = []
    n_rows = 0
    bad: list[DroppedRow] = []
    ncol = len(header)
    for n in range(hline + 1, len(lines)):
        s = lines[n].strip()
        if not s or _is_comment(s) or _is_rule(s):
            continue
        n_rows += 1
        try:
            toks = _split(s, comma)
        except _SplitError as e:
            bad.append(DroppedRow(n + 1, "", str(e)))
            continue
        if len(toks) > ncol and all(t == "" for t in toks[ncol:]):
            toks = toks[:ncol]
        if len(toks) != ncol:
            bad.append(DroppedRow(n + 1, "", f"{len(toks)} fields, the header (line {hline + 1}) has {ncol}"))
            continue
        row, problem = {}, None
        for f in use:
            tok = toks[idx[f]]
            col = header[idx[f]]
            if tok == "":
                problem = DroppedRow(n + 1, col, "missing value")
                break
            x = _parse_float(tok)
            if x is None:
                problem = DroppedRow(n + 1, col, f"non-numeric value {_show(tok)}")
                break
            if not math.isfinite(x):
                problem = DroppedRow(n + 1, col, f"value is {printable(tok, limit=30)} (not finite)")
                break
            row[f] = x
        if problem is None:
            problem = _check_row(kind, row, names, n + 1, cz_max, v_max, h0_catalog / 100.0, cz_min)
        if problem is not None:
            bad.append(problem)
            continue
        for f in use:
            values[f].append(row[f])
        line_of.append(n + 1)
    report.n_rows = n_rows
    if n_rows == 0:
        raise CatalogError(f"{path}: no data rows after the header on line {hline + 1}")
    if bad and not drop_bad:
        more = f" (and {len(bad) - 1} more bad rows; drop_bad / --drop-bad drops them with a report)" \
            if len(bad) > 1 else ""
        raise CatalogError(f"{path}: {bad[0]}{more}")
    report.dropped = bad
    if not line_of:
        raise CatalogError(f"{path}: all {n_rows} data rows are bad; first: {bad[0]}")
    arr = {f: np.asarray(v, dtype=np.float64) for f, v in values.items()}
    cat = _cf4_catalog(arr, sky, dist_field, h0_catalog, estimator, report) if kind == "cf4" \
        else _positions_catalog(arr, report)
    cat["sample"] = sample
    report.n_kept = len(cat)
    return cat, report


def _check_row(kind, row, names, line, cz_max, v_max, h, cz_min=CZ_MIN) -> DroppedRow | None:
    """The first problem of a parsed row (``h`` = h0_catalog / 100), or None."""
    if kind == "cf4":
        cz = row["velocity"]
        if cz < cz_min:
            return DroppedRow(line, names["velocity"], f"cz = {cz:g} km/s out of range (< {cz_min:g}; "
                                                       "no galaxy is blueshifted that much)")
        if cz > cz_max:
            return DroppedRow(line, names["velocity"], f"cz = {cz:g} km/s out of range (> {cz_max:g})")
        if "dist" in row and row["dist"] <= 0:
            return DroppedRow(line, names["dist"], f"distance {row['dist']:g} Mpc ≤ 0")
        if "dist" in row and _zero32(row["dist"] * h):
            return DroppedRow(line, names["dist"], f"distance {row['dist']:g} Mpc out of range: 0 in the "
                                                   "catalog's float32")
        if "dist" in row and row["dist"] * h > D_L_MAX:
            return DroppedRow(line, names["dist"], f"distance {row['dist']:g} Mpc out of range: beyond z = "
                                                   f"{Z_MAX:g} ({D_L_MAX / h:.0f} Mpc for H0 = {100 * h:g})")
        if "dm" in row:
            dm = row["dm"]
            dm_max = 5.0 * math.log10(D_L_MAX / h) + 25.0
            if dm > dm_max:
                return DroppedRow(line, names["dm"], f"distance out of range: DM = {dm:g} mag is beyond z = "
                                                     f"{Z_MAX:g} (DM > {dm_max:.2f} for H0 = {100 * h:g})")
            d_L = 10.0 ** ((dm - 25.0) / 5.0) * h
            if _zero32(d_L):
                return DroppedRow(line, names["dm"], f"distance out of range: DM = {dm:g} mag gives d_L = {d_L:.3g} "
                                                     "Mpc/h, 0 in the catalog's float32")
        if row["e_dm"] < 0:
            return DroppedRow(line, names["e_dm"], f"negative error {row['e_dm']:g} mag")
        for lat in ("glat", "sgb", "dec"):
            if lat in row and abs(row[lat]) > 90:
                return DroppedRow(line, names[lat], f"latitude {row[lat]:g} deg outside [-90, 90]")
    else:
        d = math.hypot(row["sgx"], row["sgy"], row["sgz"])
        if _zero32(d):
            return DroppedRow(line, names["sgx"], f"distance {d:.3g} Mpc/h ≤ 0 (galaxy at the observer; 0 in the "
                                                  "catalog's float32)" if d > 0 else
                              "distance ≤ 0 (galaxy at the observer)")
        if d > D_C_MAX:
            return DroppedRow(line, names["sgx"], f"distance {d:.4g} Mpc/h out of range: beyond z = {Z_MAX:g} "
                                                  f"({D_C_MAX:.0f} Mpc/h)")
        if abs(row["v_r"]) > v_max:
            return DroppedRow(line, names["v_r"], f"|v_r| = {abs(row['v_r']):g} km/s out of range (> {v_max:g})")
        if "sigma_v" in row and row["sigma_v"] < 0:
            return DroppedRow(line, names["sigma_v"], f"negative error {row['sigma_v']:g} km/s")
    return None


def _zero32(d: float) -> bool:
    """A distance (≥ 0) that is 0 once stored in the catalog's float32 columns."""
    return not d > 0 or (d < 1e-30 and not np.float32(d) > 0)


def _cf4_catalog(arr, sky, dist_field, h0_catalog, estimator, report) -> np.ndarray:
    h = h0_catalog / 100.0
    if dist_field == "dm":
        d_L = survey.distance_from_modulus(arr["dm"]) * h  # Mpc → Mpc/h
    else:
        d_L = arr["dist"] * h
    if sky == ("glon", "glat"):
        l, b = np.mod(arr["glon"], 360.0), arr["glat"]
    elif sky == ("sgl", "sgb"):
        l, b = survey.supergalactic_to_galactic_angles(arr["sgl"], arr["sgb"])
    else:
        l, b = survey.icrs_to_galactic(arr["ra"], arr["dec"])
    cz = arr["velocity"]
    d_obs = survey.comoving_from_luminosity_distance(d_L)
    blue = cz <= 0
    v, sig = np.empty_like(cz), np.empty_like(cz)
    for rows, est in ((~blue, estimator), (blue, "linear")):
        if rows.any():
            v[rows], sig[rows] = survey.estimate_velocity(est, cz[rows], d_L[rows], arr["e_dm"][rows])
    x, y, z = survey.galactic_to_sg(l, b, d_obs)
    cat = np.zeros(len(cz), CATALOG_DTYPE)
    cat["SGX"], cat["SGY"], cat["SGZ"] = x, y, z
    cat["l"], cat["b"] = l, b
    cat["d_true"] = np.nan
    cat["v_r_true"] = np.nan
    cat["d_obs"], cat["cz"], cat["v_r_obs"], cat["sigma_v"] = d_obs, cz, v, sig
    vname = report.columns["velocity"]
    report.notes.append(f"velocities from {vname!r} (km/s){'; Local Sheet frame, not CMB' if vname.lower() == 'vls' else ''}")
    report.notes.append(f"distances: {report.columns[dist_field]!r} with H0 = {h0_catalog:g} km/s/Mpc → Mpc/h; "
                        "luminosity → comoving distance")
    report.notes.append(f"peculiar velocities: {estimator} estimator")
    report.n_cz_nonpositive = int(blue.sum())
    if blue.any():
        why = "; Watkins–Feldman needs cz > 0" if estimator != "linear" else ""
        report.notes.append(f"{int(blue.sum())} galaxies with cz ≤ 0 (blueshifted, nearby): v = cz − H0 d "
                            f"(linear estimator{why})")
    if sky == ("ra", "dec"):
        report.notes.append("Galactic (l, b) from RA/Dec (ICRS) via astropy")
    return cat


def _positions_catalog(arr, report) -> np.ndarray:
    x, y, z = arr["sgx"], arr["sgy"], arr["sgz"]
    l, b, d = survey.sg_to_galactic(x, y, z)
    cat = np.zeros(len(x), CATALOG_DTYPE)
    cat["SGX"], cat["SGY"], cat["SGZ"] = x, y, z
    cat["l"], cat["b"] = l, b
    cat["d_true"] = np.nan
    cat["v_r_true"] = np.nan
    cat["d_obs"] = d
    cat["cz"] = survey.observed_cz(d, arr["v_r"])
    cat["v_r_obs"] = arr["v_r"]
    cat["sigma_v"] = arr["sigma_v"] if "sigma_v" in arr else 0.0
    report.notes.append("positions (Mpc/h) and radial velocities (km/s) taken as given; "
                        "cz implied by 1 + z = (1 + z_cos(d))(1 + v_r/c)")
    if "sigma_v" not in arr:
        report.notes.append("no sigma_v column: sigma_v = 0 (do not use error weighting)")
    return cat


def grid(catalog: np.ndarray, profile, position: str = "observed", return_outside: bool = False):
    """Grid a read catalog on the profile's cube exactly as the mocks are gridded
    (:func:`zoa_lib.survey.grid_catalog`; the profile's box and error weighting)."""
    return survey.grid_catalog(catalog, profile.box.size, profile.box.grid, position=position,
                               error_weighting=profile.survey.error_weighting, return_outside=return_outside)


#: Equal-area sky cells of :func:`describe`: 36 in l (10°) × 18 in sin b (1/9), ≈ 63.7 deg² each.
SKY_CELLS = (36, 18)


def describe(catalog: np.ndarray, zoa_b: float | None = None) -> dict:
    """Sky coverage and distance range of a read catalog (plain floats, JSON-able).

    ``sky``: ``coverage`` — the fraction of :data:`SKY_CELLS` equal-area cells (10° in
    Galactic l × 1/9 in sin b, ≈ 63.7 deg² each) holding at least one galaxy;
    ``b_min``/``b_max`` (deg); ``north`` — fraction at b > 0; with ``zoa_b`` (deg),
    ``in_zoa`` — fraction at |b| < zoa_b. ``distance``: ``min``, ``median``, ``max`` of
    ``d_obs`` (Mpc/h). ``cz``: ``min``, ``max`` (km/s). ``v_r``: ``mean``, ``std`` of
    ``v_r_obs`` (km/s).
    """
    cat = np.asarray(catalog)
    n = len(cat)
    out = {"n": int(n)}
    if n == 0:
        return out
    l = np.mod(cat["l"].astype(np.float64), 360.0)
    b = cat["b"].astype(np.float64)
    nl, nb = SKY_CELLS
    il = np.clip((l / 360.0 * nl).astype(np.int64), 0, nl - 1)
    ib = np.clip(((np.sin(np.radians(b)) + 1.0) / 2.0 * nb).astype(np.int64), 0, nb - 1)
    cells = np.unique(il * nb + ib).size
    sky = {"coverage": cells / (nl * nb), "cells": int(cells), "cells_total": nl * nb,
           "b_min": float(b.min()), "b_max": float(b.max()), "north": float(np.mean(b > 0))}
    if zoa_b is not None:
        sky["zoa_b"] = float(zoa_b)
        sky["in_zoa"] = float(np.mean(np.abs(b) < zoa_b))
    d = cat["d_obs"].astype(np.float64)
    v = cat["v_r_obs"].astype(np.float64)
    out["sky"] = sky
    out["distance"] = {"min": float(d.min()), "median": float(np.median(d)), "max": float(d.max()),
                       "units": "Mpc/h"}
    out["cz"] = {"min": float(cat["cz"].min()), "max": float(cat["cz"].max()), "units": "km/s"}
    out["v_r"] = {"mean": float(v.mean()), "std": float(v.std()), "units": "km/s"}
    return out


def describe_lines(desc: dict) -> list[str]:
    """:func:`describe`'s result as report lines."""
    if not desc.get("n"):
        return ["no galaxies"]
    s, d, cz, v = desc["sky"], desc["distance"], desc["cz"], desc["v_r"]
    zoa = f"; {100 * s['in_zoa']:.1f}% at |b| < {s['zoa_b']:g} deg (ZOA)" if "in_zoa" in s else ""
    return [f"sky: {100 * s['coverage']:.1f}% of {s['cells_total']} equal-area cells (~64 deg^2) hold a galaxy; "
            f"b from {s['b_min']:.1f} to {s['b_max']:.1f} deg, {100 * s['north']:.1f}% north{zoa}",
            f"distance d_obs: {d['min']:.2f} .. {d['max']:.2f} Mpc/h (median {d['median']:.2f}); "
            f"cz {cz['min']:.0f} .. {cz['max']:.0f} km/s; v_r mean {v['mean']:.0f}, std {v['std']:.0f} km/s"]


def column_overrides(items) -> dict[str, str]:
    """``["velocity=Vhel", ...]`` (the CLI's ``--column FIELD=NAME``) → {field: column name}."""
    columns = {}
    for item in items or ():
        if "=" not in item:
            raise CatalogError(f"--column {item!r}: expected FIELD=NAME, e.g. velocity=Vhel")
        k, v = item.split("=", 1)
        columns[k.strip()] = v.strip()
    return columns


# Files written and fetched (gridded catalogues, CF4's CSV layout, VizieR): zoa_lib.catalog_files.
from .catalog_files import (DEFAULT_PREAMBLE, EDD_HEADER, MOCK_PREAMBLE, VIZIER_HEADER, fetch_cf4,
                            write_cf4_csv, write_grid, write_local_universe_cf4)  # noqa: E402,F401
