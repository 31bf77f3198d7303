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

    SGX, SGY, SGZ = d_obs × (unit vector of (l, b) in supergalactic axes, via astropy).
``positions`` — any catalog with supergalactic positions ``SGX``, ``SGY``, ``SGZ``
    (Mpc/h) and a radial peculiar velocity ``v_r`` (km/s), optionally ``sigma_v``; e.g.
    one realization of a HAMLET reconstruction. cz is the redshift the forward model of
    :mod:`zoa_lib.survey` implies, 1 + z = (1 + z_cos(d))(1 + v_r/c).

True distances and velocities of a real catalog are unknown: ``d_true`` and
``v_r_true`` are NaN. Column names are matched case-insensitively against the aliases in
:data:`ALIASES`; ``columns={"velocity": "Vhelio", ...}`` overrides them.

Every bad row raises :class:`CatalogError` naming the file, the 1-based line number and
the column (missing column, duplicate column, non-numeric value, NaN/inf, distance ≤ 0,
velocity out of range, empty file, not UTF-8). With ``drop_bad=True`` bad rows are
dropped and listed in the :class:`CatalogReport`; nothing is skipped silently.

:func:`write_cf4_csv` writes a catalog in EDD's CSV layout (the tests and the book use it
for mock tables; such a file says in its header that it is not Cosmicflows-4 data).
"""
from __future__ import annotations

import csv
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np

from . import survey
from .data import CATALOG_DTYPE
from .errors import ZoaError

#: H0 (km/s/Mpc) of Cosmicflows-4 distances (Tully et al. 2023).
CF4_H0 = 74.6

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
    dropped: list[DroppedRow] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def summary(self) -> str:
        cols = ", ".join(f"{k}={v}" for k, v in self.columns.items())
        lines = [f"{self.path}: {self.kind} table, header on line {self.header_line}; columns {cols}",
                 f"{self.n_rows} data rows, {self.n_kept} kept, {len(self.dropped)} dropped"]
        lines += [f"  note: {n}" for n in self.notes]
        lines += [f"  dropped {d}" for d in self.dropped]
        return "\n".join(lines)

    def __str__(self):
        return self.summary()


# --------------------------------------------------------------------------- text parsing
def _split(line: str, comma: bool) -> list[str]:
    if comma:
        return [t.strip().strip('"').strip("'").strip() for t in next(csv.reader([line], skipinitialspace=True))]
    return line.split()


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
        line = raw[:e.start].count(b"\n") + 1
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
            raise CatalogError(f"{path}: duplicate column {h!r} (columns {seen[h] + 1} and {i + 1})")
        seen[h] = i
    idx, names = {}, {}
    for fld, alias in overrides.items():
        if alias not in header:
            # allow a case-insensitive match for overrides too, if unambiguous
            hits = [i for i, h in enumerate(lower) if h == str(alias).lower()]
            if len(hits) != 1:
                raise CatalogError(f"{path}: missing column {alias!r} (mapped to field {fld!r}); "
                                   f"header has: {', '.join(header)}")
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
                                   f"({', '.join(repr(header[i]) for i in hits)})")
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
            + f"; header has: {', '.join(header)}")


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
        tokens = _split(body, comma)
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
                 sample: int = 0, cz_max: float = CZ_MAX, v_max: float = V_PEC_MAX
                 ) -> tuple[np.ndarray, CatalogReport]:
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
    estimator : peculiar-velocity estimator for ``cf4`` tables (``watkins_feldman``, ``linear``).
    sample : value of the catalog's ``sample`` column (e.g. a realization number).
    cz_max : largest accepted cz (km/s) in a ``cf4`` table; v_max : largest |v_r| (km/s)
        in a ``positions`` table.

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
    lines = text.splitlines()
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
        toks = _split(s, comma)
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
                problem = DroppedRow(n + 1, col, f"non-numeric value {tok!r}")
                break
            if not math.isfinite(x):
                problem = DroppedRow(n + 1, col, f"value is {tok} (not finite)")
                break
            row[f] = x
        if problem is None:
            problem = _check_row(kind, row, names, n + 1, cz_max, v_max)
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


def _check_row(kind, row, names, line, cz_max, v_max) -> DroppedRow | None:
    if kind == "cf4":
        cz = row["velocity"]
        if cz <= 0:
            return DroppedRow(line, names["velocity"], f"cz = {cz:g} km/s ≤ 0: no redshift-distance "
                                                       "velocity for a blueshifted galaxy")
        if cz > cz_max:
            return DroppedRow(line, names["velocity"], f"cz = {cz:g} km/s out of range (> {cz_max:g})")
        if "dist" in row and row["dist"] <= 0:
            return DroppedRow(line, names["dist"], f"distance {row['dist']:g} Mpc ≤ 0")
        if row["e_dm"] < 0:
            return DroppedRow(line, names["e_dm"], f"negative error {row['e_dm']:g} mag")
        for lat in ("glat", "sgb", "dec"):
            if lat in row and abs(row[lat]) > 90:
                return DroppedRow(line, names[lat], f"latitude {row[lat]:g} deg outside [-90, 90]")
    else:
        d = math.sqrt(row["sgx"] ** 2 + row["sgy"] ** 2 + row["sgz"] ** 2)
        if d <= 0:
            return DroppedRow(line, names["sgx"], "distance ≤ 0 (galaxy at the observer)")
        if abs(row["v_r"]) > v_max:
            return DroppedRow(line, names["v_r"], f"|v_r| = {abs(row['v_r']):g} km/s out of range (> {v_max:g})")
        if "sigma_v" in row and row["sigma_v"] < 0:
            return DroppedRow(line, names["sigma_v"], f"negative error {row['sigma_v']:g} km/s")
    return None


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
    v, sig = survey.estimate_velocity(estimator, cz, d_L, arr["e_dm"])
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


# --------------------------------------------------------------------------- writing
EDD_HEADER = ("pgc", "Vcmb", "DM", "eDM", "RA", "DE", "glon", "glat")
VIZIER_HEADER = ("PGC", "Vcmb", "DM", "e_DM", "RAdeg", "DEdeg", "GLON", "GLAT")
DEFAULT_PREAMBLE = (
    "# Written by zoa (zoa_lib.catalogs.write_cf4_csv) in the EDD Cosmicflows CSV layout.",
    "# NOT Cosmicflows-4 data: a mock or test catalog in the same columns.",
    "# Vcmb in km/s; DM in mag for H0 = {h0:g} km/s/Mpc; RA, DE (J2000), glon, glat in degrees.",
)


def write_cf4_csv(path: str | os.PathLike, catalog: np.ndarray, *, e_dm=None, h0_catalog: float = CF4_H0,
                  spelling: str = "edd", coords: str = "both", preamble: Sequence[str] | None = None,
                  spaces: bool = True, pgc_start: int = 1) -> Path:
    """Write ``catalog`` as a CSV table in EDD's Cosmicflows layout (atomically).

    Columns: pgc, Vcmb (= cz), DM (of the luminosity distance of ``d_obs``, for
    ``h0_catalog``), eDM, and the sky position as RA/DE and/or glon/glat (``coords``:
    ``both``, ``galactic``, ``equatorial``). ``spelling``: ``edd`` (pgc, eDM, glon) or
    ``vizier`` (PGC, e_DM, GLON). ``e_dm``: scalar or per-row array (mag); by default
    inverted from ``sigma_v`` with the WF15 error formula. ``preamble``: comment/title
    lines written before the header (default: a note that this is not CF4 data).
    """
    from .io import write_text_atomic

    if spelling not in ("edd", "vizier"):
        raise CatalogError(f"{path}: spelling must be 'edd' or 'vizier', got {spelling!r}")
    if coords not in ("both", "galactic", "equatorial"):
        raise CatalogError(f"{path}: coords must be 'both', 'galactic' or 'equatorial', got {coords!r}")
    cat = np.asarray(catalog)
    cz = cat["cz"].astype(np.float64)
    d_L = survey.luminosity_from_comoving_distance(cat["d_obs"].astype(np.float64))
    dm = survey.distance_modulus(d_L * 100.0 / h0_catalog)
    edm = survey.sigma_dm_from_sigma_v(cz, cat["sigma_v"]) if e_dm is None else np.broadcast_to(
        np.asarray(e_dm, np.float64), cz.shape)
    l, b = cat["l"].astype(np.float64), cat["b"].astype(np.float64)
    ra, dec = survey.galactic_to_icrs(l, b)
    names = EDD_HEADER if spelling == "edd" else VIZIER_HEADER
    cols = [0, 1, 2, 3] + ([4, 5] if coords in ("both", "equatorial") else []) + \
           ([6, 7] if coords in ("both", "galactic") else [])
    sep = ", " if spaces else ","
    out = [p.format(h0=h0_catalog) for p in (DEFAULT_PREAMBLE if preamble is None else preamble)]
    out.append(sep.join(names[c] for c in cols))
    fmt = {0: "{:d}", 1: "{:.4f}", 2: "{:.6f}", 3: "{:.4f}", 4: "{:.7f}", 5: "{:.7f}", 6: "{:.7f}", 7: "{:.7f}"}
    for i in range(len(cat)):
        vals = (pgc_start + i, cz[i], dm[i], edm[i], ra[i], dec[i], l[i], b[i])
        out.append(sep.join(fmt[c].format(vals[c]) for c in cols))
    return write_text_atomic(path, "\n".join(out) + "\n")
