"""Read real peculiar-velocity catalogs (Cosmicflows-4 and look-alikes) into the mock catalog table.

:func:`read_catalog` turns a text table into the structured array of
:data:`zoa_lib.survey.shards.CATALOG_DTYPE` that :func:`zoa_lib.survey.galaxies.draw_galaxies` makes for
mocks, so a real catalog is gridded by the very same :func:`zoa_lib.survey.galaxies.grid_catalog`
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
        d_obs       = comoving distance of d_L                (zoa_lib.survey.galaxies, Mpc/h)
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
    :mod:`zoa_lib.survey.galaxies` implies, 1 + z = (1 + z_cos(d))(1 + v_r/c).

True distances and velocities of a real catalog are unknown: ``d_true`` and
``v_r_true`` are NaN. Column names are matched case-insensitively against the aliases in
:data:`ALIASES`; ``columns={"velocity": "Vhelio", ...}`` overrides them.

Every bad row raises :class:`CatalogError` naming the file, the 1-based line number and
the column (missing column, duplicate column, non-numeric value, NaN/inf, distance ≤ 0 or
beyond z = 1 — :data:`Z_MAX`, where the distance–redshift relations of
:mod:`zoa_lib.survey.galaxies` hold —, cz or v_r out of range, a field too long to split, empty
file, not UTF-8). Lines end at ``\n``, ``\r\n`` or ``\r`` only (form feeds, U+2028 and
the like are not line breaks), so line numbers are those an editor shows. With
``drop_bad=True`` bad rows are dropped and listed in the :class:`CatalogReport`; nothing
is skipped silently.

:func:`describe` gives the sky coverage and distance range of a read catalog, and
:func:`~zoa_lib.survey.catalog_files.write_grid` writes its gridded inputs (``n_gal``, ``v_pec``) to HDF5; ``zoa
catalog`` prints the report of both.

:func:`~zoa_lib.survey.catalog_files.write_cf4_csv` writes a catalog in EDD's CSV layout (the tests and the book use it
for mock tables; such a file says in its header that it is not Cosmicflows-4 data).

Real data: :data:`CF4_SAMPLE` is the shipped ``data/cf4-table2-first9999.csv``, the first
9,999 rows (PGC order, RA 0°–203° only) of the CF4 galaxy table as VizieR serves it
(provenance in ``data/README.md``); :func:`~zoa_lib.survey.catalog_files.fetch_cf4` downloads the whole table (55,877
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

from zoa_lib.errors import ZoaError, printable
from zoa_lib.io.paths import display_path, shipped
from zoa_lib.survey import distances, frames, galaxies, sky
from zoa_lib.survey.shards import CATALOG_DTYPE
from zoa_lib.survey.sky import galactic_to_sg, icrs_to_galactic, supergalactic_to_galactic_angles

#: H0 (km/s/Mpc) of Cosmicflows-4 distances (Tully et al. 2023).
CF4_H0 = 74.6
#: VizieR name of the CF4 individual-galaxy table (Tully et al. 2023, ApJ 944, 94).
CF4_VIZIER = "J/ApJ/944/94/table2"
#: The shipped real CF4 table: its first 9,999 rows (VizieR's row limit), RA 0°–203°.
CF4_SAMPLE = shipped("cf4-table2-first9999.csv")
#: sha256 of :data:`CF4_SAMPLE` (also in data/README.md).
CF4_SAMPLE_SHA256 = "955e3d0d1db2aeabd57c051480a40282084b92f59875bd0f69bee450eefe7fba"

#: The shipped real CF3 table: its group-member catalogue, 17,647 galaxies, whole sky.
CF3_SAMPLE = shipped("cf3-group-members.tsv")
#: sha256 of :data:`CF3_SAMPLE` (also in data/README.md).
CF3_SAMPLE_SHA256 = "a776865717ebee8a8a0fe5fbe6bfe0a92a815995446c01cddbf620785954a194"
#: H0 (km/s/Mpc) of Cosmicflows-3 distances (Tully, Courtois & Sorce 2016).
CF3_H0 = 75.0

#: Field → accepted header names, in order of preference (matched case-insensitively, a
#: trailing unit in brackets dropped: ``lat[deg]`` matches ``lat``).
ALIASES: dict[str, tuple[str, ...]] = {
    "id": ("pgc", "1pgc", "pgc1", "id", "name"),
    "group": ("group", "1pgc", "pgc1", "group_id", "groupid", "grp"),
    "glon": ("glon", "l", "gal_l", "long", "glong"),
    "glat": ("glat", "b", "gal_b", "lat"),
    "sgl": ("sgl",),
    "sgb": ("sgb",),
    "ra": ("ra", "radeg", "raj2000", "ra_deg"),
    "dec": ("de", "dec", "dedeg", "dej2000", "dec_deg"),
    "velocity": ("vcmb", "v3k", "vls", "cz", "vcmb_kms", "czhelio", "cz_helio", "vhel", "vhelio", "v_hel",
                 "vlg", "v_lg"),
    "dm": ("dm", "dmav", "dmzp", "mu"),
    "dist": ("dist", "d_mpc"),
    "e_dm": ("edm", "e_dm", "e_dmav", "edmav", "e_dmzp", "edmzp", "sigma_dm", "muerror", "e_mu", "emu",
             "mu_err"),
    "sgx": ("sgx",),
    "sgy": ("sgy",),
    "sgz": ("sgz",),
    "v_r": ("v_r", "vr", "vpec", "v_pec", "vrad", "v_rad"),
    "sigma_v": ("sigma_v", "e_v", "ev", "e_vpec", "evpec", "e_vr"),
}
KINDS = ("auto", "cf4", "positions")
#: Velocity column name (normalised: lower case, no unit) → the frame it says
#: (``local-sheet`` is not converted: the reader keeps it and says so).
VELOCITY_FRAMES = {"vcmb": "cmb", "v3k": "cmb", "vcmb_kms": "cmb", "czhelio": "heliocentric",
                   "cz_helio": "heliocentric", "vhel": "heliocentric", "vhelio": "heliocentric",
                   "v_hel": "heliocentric", "czgrouphelio": "heliocentric", "vlg": "local-group",
                   "v_lg": "local-group", "vls": "local-sheet"}


@dataclass(frozen=True)
class Layout:
    """A catalogue layout the reader recognises from its header: the frame of its
    velocities and the H0 (km/s/Mpc) of its distances by default, the normalised header
    names that identify it (``signature``) and, for tables that carry group averages, the
    field → column map of those averages (``group_columns``; ``groups=True``)."""

    name: str
    description: str
    frame: str
    h0: float
    signature: tuple[str, ...] = ()
    group_columns: tuple[tuple[str, str], ...] = ()


#: The layouts (:class:`Layout`); ``auto`` picks ``cf3`` when the header holds its signature,
#: ``positions`` for SGX/SGY/SGZ/v_r tables, else ``cf4`` (EDD's columns and look-alikes).
LAYOUTS: dict[str, Layout] = {
    "cf4": Layout("cf4", "Cosmicflows-4 as EDD or VizieR serve it (Vcmb, DM, e_DM, GLON/GLAT; 1PGC the group), "
                  "or a table in its columns", "cmb", CF4_H0),
    "cf3": Layout("cf3", "Cosmicflows-3 group-member table (czHelio heliocentric, mu, muError, lat/long Galactic, "
                  "group averages)", "heliocentric", CF3_H0,
                  signature=("czhelio", "mu", "muerror", "group", "latgroup", "longgroup", "czgrouphelio",
                             "mugroup", "mugrouperror"),
                  group_columns=(("glat", "latGroup"), ("glon", "longGroup"), ("velocity", "czGroupHelio"),
                                 ("dm", "muGroup"), ("e_dm", "muGroupError"))),
    "positions": Layout("positions", "SGX, SGY, SGZ (Mpc/h) and v_r (km/s), e.g. HAMLET realizations", "cmb",
                        CF4_H0),
}
#: Largest |v_r| (km/s) accepted in a ``positions`` table.
V_PEC_MAX = 20000.0
#: Largest cz (km/s) accepted in a ``cf4`` table (CF4 reaches z ≈ 0.1).
CZ_MAX = 40000.0
#: Smallest cz (km/s) accepted in a ``cf4`` table: blueshifts are real (Local Group
#: neighbours, Virgo members falling towards us; the most blueshifted galaxies known are
#: near −1,500 km/s), but not beyond a few thousand km/s.
CZ_MIN = -5000.0
#: Largest redshift of a distance: the distance–redshift relations of :mod:`zoa_lib.survey.galaxies`
#: (WF15's z_mod, inverted by Newton iterations) hold for z < 1; CF4 reaches z ≈ 0.1.
Z_MAX = 1.0
#: Luminosity (cf4 tables) and comoving (positions tables) distance at :data:`Z_MAX`, Mpc/h.
D_L_MAX = float(distances.luminosity_distance(Z_MAX))
D_C_MAX = float(distances.comoving_distance(Z_MAX))
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
    #: the :data:`LAYOUTS` key the table was read as
    layout: str = ""
    #: the frame of its velocities as read (``cmb``, ``heliocentric``, ``local-group``,
    #: ``local-sheet``); cz and v_r of the catalog are CMB-frame except for ``local-sheet``
    frame: str = ""
    #: H0 (km/s/Mpc) its distances were taken to assume
    h0_catalog: float | None = None
    #: one row per group (``n_groups`` of them) instead of per galaxy
    groups: bool = False
    n_groups: int | None = None
    #: dipole of the CMB-frame peculiar velocities within frames.DIPOLE_D_MAX (frames.fit_dipole)
    dipole: dict | None = None

    def summary(self) -> str:
        cols = ", ".join(f"{k}={v}" for k, v in self.columns.items())
        rows = f"{self.n_rows} data rows" + (f" → {self.n_groups} groups" if self.groups else "")
        lines = [f"{display_path(self.path)}: {self.kind} table, header on line {self.header_line}; columns {cols}",
                 f"{rows}, {self.n_kept} kept, {len(self.dropped)} dropped"]
        if self.layout:
            lines.insert(1, f"layout {self.layout}; velocities {self.frame}"
                            + (" → CMB" if self.frame in ("heliocentric", "local-group") else "")
                            + (f"; distances on H0 = {self.h0_catalog:g} km/s/Mpc" if self.kind == "cf4" else ""))
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


_UNIT = re.compile(r"\s*[\[(][^\])]*[\])]\s*$")


def _norm(name: str) -> str:
    """A header name as the aliases are written: lower case, a trailing unit in brackets
    dropped (``czHelio[km/s]`` → ``czhelio``)."""
    return _UNIT.sub("", name.strip()).lower() or name.strip().lower()


def _resolve(header: list[str], kind: str, overrides: Mapping[str, str], path) -> tuple[dict, dict]:
    """Map fields to header column indices. Returns (field → index, field → header name)."""
    lower = [_norm(h) for h in header]
    seen: dict[str, int] = {}
    for i, h in enumerate(header):
        if h in seen:
            raise CatalogError(f"{path}: duplicate column {_show(h)} (columns {seen[h] + 1} and {i + 1})")
        seen[h] = i
    idx, names = {}, {}
    for fld, alias in overrides.items():
        if alias not in header:
            # allow a case-insensitive match for overrides too, if unambiguous
            hits = [i for i, h in enumerate(lower) if h == _norm(str(alias))]
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
        low = {_norm(t) for t in tokens}
        present = {f for f, al in ALIASES.items() if any(x in low for x in al)}
        mapped = {f for f, a in overrides.items() if _norm(str(a)) in low}
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
                 h0_catalog: float | None = None, drop_bad: bool = False, estimator: str = "watkins_feldman",
                 sample: int = 0, cz_max: float = CZ_MAX, v_max: float = V_PEC_MAX,
                 cz_min: float = CZ_MIN, frame: str = "auto", groups: bool = False, layout: str = "auto",
                 check_frame: bool = True) -> tuple[np.ndarray, CatalogReport]:
    """Read a peculiar-velocity catalog into the mock catalog table.

    Parameters
    ----------
    path : CSV or whitespace-separated text file.
    kind : ``auto`` (from the header), ``cf4`` (velocity + distance modulus + sky position)
        or ``positions`` (SGX, SGY, SGZ in Mpc/h + v_r in km/s).
    columns : field → header name overrides; fields are the keys of :data:`ALIASES`
        (``velocity``, ``dm``, ``dist``, ``e_dm``, ``glon``, ``glat``, ``sgl``, ``sgb``, ``ra``,
        ``dec``, ``sgx``, ``sgy``, ``sgz``, ``v_r``, ``sigma_v``, ``id``).
    h0_catalog : H0 (km/s/Mpc) the distance moduli assume; None: the layout's (CF4 74.6,
        CF3 75); distances are converted to Mpc/h with h = h0_catalog/100.
    drop_bad : drop bad rows and list them in the report instead of raising.
    estimator : peculiar-velocity estimator for ``cf4`` tables (``watkins_feldman``, ``linear``);
        rows with cz ≤ 0 always get ``linear`` (WF15 needs cz > 0; counted in the report).
    sample : value of the catalog's ``sample`` column (e.g. a realization number).
    cz_max, cz_min : largest and smallest accepted cz (km/s) in a ``cf4`` table;
        v_max : largest |v_r| (km/s) in a ``positions`` table.
    frame : frame of the velocities (:data:`zoa_lib.survey.frames.FRAMES`): ``auto`` — the one the
        velocity column's name says (``czHelio``, ``Vhel`` heliocentric; ``Vcmb``, ``V3k`` CMB;
        ``Vlg`` local group; ``Vls`` Local Sheet, kept as is with a note), else the layout's —,
        ``cmb``, ``heliocentric`` or ``local-group``; cz is converted to the CMB frame
        (:func:`zoa_lib.survey.frames.to_cmb`) before the peculiar velocities are estimated.
    groups : one row per group instead of per galaxy: a layout with group-average columns
        (CF3) uses them, one row per group id (group 0, a lone galaxy, keeps its own row);
        otherwise rows are averaged per group id (``1PGC``, ``group``): cz mean, distance
        modulus inverse-variance weighted with its error 1/sqrt(Σ w), mean direction.
    layout : ``auto`` (from the header) or a key of :data:`LAYOUTS`.
    check_frame : for CMB-frame velocities (declared or defaulted), fit the dipole of the
        peculiar velocities within :data:`zoa_lib.survey.frames.DIPOLE_D_MAX` and raise
        :class:`CatalogError` when it looks like the Sun's motion
        (:func:`zoa_lib.survey.frames.heliocentric_suspect`: heliocentric velocities read as CMB).

    Returns
    -------
    (catalog of :data:`zoa_lib.survey.shards.CATALOG_DTYPE`, :class:`CatalogReport`)
    """
    path = Path(path)
    if kind not in KINDS:
        raise CatalogError(f"{path}: unknown catalog kind {kind!r} (known: {', '.join(KINDS)})")
    if layout != "auto" and layout not in LAYOUTS:
        raise CatalogError(f"{path}: unknown catalog layout {layout!r} (known: auto, {', '.join(LAYOUTS)})")
    if frame not in frames.FRAMES:
        raise CatalogError(f"{path}: unknown velocity frame {frame!r} (known: {', '.join(frames.FRAMES)})")
    if estimator not in distances.ESTIMATORS:
        raise CatalogError(f"{path}: unknown estimator {estimator!r} (known: {', '.join(distances.ESTIMATORS)})")
    if h0_catalog is not None and not (h0_catalog > 0 and math.isfinite(h0_catalog)):
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
        kind = "positions" if layout == "positions" else _detect_kind(set(idx)) or "cf4"
    lay = _layout(header, kind, layout, path)
    if groups:
        _group_columns(lay, header, idx, names, overrides, kind, path)
    msg = _missing_message(kind, idx, header, path)
    if msg:
        raise CatalogError(msg)
    h0_catalog = lay.h0 if h0_catalog is None else float(h0_catalog)
    report = CatalogReport(path=str(path), kind=kind, header_line=hline + 1, columns={}, layout=lay.name,
                           h0_catalog=h0_catalog, groups=bool(groups))

    if kind == "cf4":
        dist_field = "dm" if "dm" in idx else "dist"
        sky = next(p for p in (("glon", "glat"), ("sgl", "sgb"), ("ra", "dec")) if all(f in idx for f in p))
        use = ["velocity", dist_field, "e_dm", *sky]
        report.frame = _velocity_frame(frame, names["velocity"], lay, report)
    else:
        use = ["sgx", "sgy", "sgz", "v_r"] + (["sigma_v"] if "sigma_v" in idx else [])
        if frame not in ("auto", "cmb"):
            raise CatalogError(f"{path}: frame {frame!r}: a positions table holds peculiar velocities, taken as "
                               "CMB-frame; convert them before (only frame auto or cmb)")
        report.frame = "cmb"
    if groups:
        use.append("group")
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
    if groups and lay.group_columns:
        arr = _one_row_per_group(arr, report)
    cat = _cf4_catalog(arr, sky, dist_field, h0_catalog, estimator, report) if kind == "cf4" \
        else _positions_catalog(arr, report)
    cat["sample"] = sample
    report.n_kept = len(cat)
    if kind == "cf4":
        _frame_check(cat, report, check_frame, path)
    return cat, report


def _layout(header: list[str], kind: str, layout: str, path) -> Layout:
    """The table's :class:`Layout`: the one asked for, else from the header (the first whose
    signature it holds; ``positions`` tables; else ``cf4``)."""
    if layout != "auto":
        lay = LAYOUTS[layout]
        if (lay.name == "positions") != (kind == "positions"):
            raise CatalogError(f"{path}: layout {layout!r} does not fit a {kind} table")
        return lay
    if kind == "positions":
        return LAYOUTS["positions"]
    low = {_norm(h) for h in header}
    return next((lay for lay in LAYOUTS.values() if lay.signature and set(lay.signature) <= low), LAYOUTS["cf4"])


def _group_columns(lay: Layout, header, idx: dict, names: dict, overrides, kind: str, path) -> None:
    """``groups=True``: point the fields at the layout's group-average columns (unless the
    caller mapped them) and check that there is a group-id column."""
    if kind == "positions":
        raise CatalogError(f"{path}: groups: a positions table has no groups")
    low = [_norm(h) for h in header]
    for fld, col in lay.group_columns:
        if fld in overrides:
            continue
        if _norm(col) not in low:
            raise CatalogError(f"{path}: missing column {col!r} (the {lay.name} group average of {fld}); header "
                               f"has: {_header_list(header)}")
        idx[fld] = low.index(_norm(col))
        names[fld] = header[idx[fld]]
    if "group" not in idx:
        raise CatalogError(f"{path}: groups: no group-id column ({', '.join(ALIASES['group'])}); header has: "
                           f"{_header_list(header)}")


def _velocity_frame(frame: str, vname: str, lay: Layout, report: CatalogReport) -> str:
    """The frame of the velocity column: ``frame`` when given, else the column name's, else
    the layout's; notes say which and why."""
    said = VELOCITY_FRAMES.get(_norm(vname))
    if frame != "auto":
        if said and said != frame:
            report.notes.append(f"frame {frame!r} as asked, although the column name {vname!r} says {said}")
        return frame
    if said:
        return said
    report.notes.append(f"velocity column {vname!r} names no frame: the {lay.name} layout's ({lay.frame})")
    return lay.frame


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


def _one_row_per_group(arr: dict, report: CatalogReport) -> dict:
    """Rows of a table whose columns already hold group averages: the first row of each
    group id, every row of group 0 (a galaxy in no group)."""
    gid = arr["group"]
    _, first = np.unique(gid, return_index=True)
    keep = np.zeros(len(gid), bool)
    keep[first] = True
    keep |= gid == 0
    report.n_groups = int(keep.sum())
    report.notes.append(f"groups: the group-average columns, one row per group: {report.n_groups} groups "
                        f"(of them {int((gid == 0).sum())} lone galaxies, group 0) from {len(gid)} galaxies")
    return {f: v[keep] for f, v in arr.items()}


def _group_average(cz, mu, e_mu, l, b, gid, report: CatalogReport):
    """Average rows per group id: cz mean (km/s), distance modulus weighted by 1/e² (mag; a
    zero error counts as 0.01 mag) with error 1/sqrt(Σ w), mean direction (Galactic, deg)."""
    ids, inv, counts = np.unique(gid, return_inverse=True, return_counts=True)
    w = 1.0 / np.maximum(e_mu, 0.01) ** 2
    W = np.bincount(inv, w)
    mean = lambda x: np.bincount(inv, x) / counts  # noqa: E731
    n = frames.galactic_unit_vectors(l, b)
    vec = np.stack([np.bincount(inv, n[:, k]) for k in range(3)], axis=-1)
    g = [frames.galactic_direction(v) for v in vec]
    report.n_groups = len(ids)
    report.notes.append(f"groups: {len(cz)} galaxies averaged into {len(ids)} groups by {report.columns['group']!r} "
                        "(cz mean, distance modulus weighted 1/e^2, mean direction)")
    return (mean(cz), np.bincount(inv, w * mu) / W, 1.0 / np.sqrt(W),
            np.mod([x[0] for x in g], 360.0), np.array([x[1] for x in g]))


def _cf4_catalog(arr, sky, dist_field, h0_catalog, estimator, report) -> np.ndarray:
    h = h0_catalog / 100.0
    mu = arr["dm"] if dist_field == "dm" else distances.distance_modulus(arr["dist"])
    if sky == ("glon", "glat"):
        l, b = np.mod(arr["glon"], 360.0), arr["glat"]
    elif sky == ("sgl", "sgb"):
        l, b = supergalactic_to_galactic_angles(arr["sgl"], arr["sgb"])
    else:
        l, b = icrs_to_galactic(arr["ra"], arr["dec"])
    cz, e_dm = arr["velocity"], arr["e_dm"]
    d_L = distances.distance_from_modulus(mu) * h if dist_field == "dm" else arr["dist"] * h  # Mpc → Mpc/h
    if "group" in arr and report.n_groups is None:
        cz, mu, e_dm, l, b = _group_average(cz, mu, e_dm, l, b, arr["group"], report)
        d_L = distances.distance_from_modulus(mu) * h
    if report.frame in (frames.HELIOCENTRIC, frames.LOCAL_GROUP):
        cz = frames.to_cmb(cz, l, b, report.frame)
        sun = frames.SUN_CMB
        report.notes.append(f"cz converted from the {report.frame} frame to the CMB frame: 1 + z_cmb = "
                            f"(1 + z)(1 + v_sun·n/c), first order in v_sun/c; Sun {sun.speed:g} km/s toward "
                            f"(l, b) = ({sun.l:g}, {sun.b:g}) (Planck 2018)"
                            + ("; local group → heliocentric with " + frames.SUN_LG.reference
                               if report.frame == frames.LOCAL_GROUP else ""))
    d_obs = distances.comoving_from_luminosity_distance(d_L)
    blue = cz <= 0
    v, sig = np.empty_like(cz), np.empty_like(cz)
    for rows, est in ((~blue, estimator), (blue, "linear")):
        if rows.any():
            v[rows], sig[rows] = distances.estimate_velocity(est, cz[rows], d_L[rows], e_dm[rows])
    x, y, z = galactic_to_sg(l, b, d_obs)
    cat = np.zeros(len(cz), CATALOG_DTYPE)
    cat["SGX"], cat["SGY"], cat["SGZ"] = x, y, z
    cat["l"], cat["b"] = l, b
    cat["d_true"] = np.nan
    cat["v_r_true"] = np.nan
    cat["d_obs"], cat["cz"], cat["v_r_obs"], cat["sigma_v"] = d_obs, cz, v, sig
    vname = report.columns["velocity"]
    report.notes.append(f"velocities from {vname!r} (km/s){'; Local Sheet frame, not CMB' if report.frame == 'local-sheet' else ''}")
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


def _frame_check(cat: np.ndarray, report: CatalogReport, check: bool, path) -> None:
    """Fit the dipole of the peculiar velocities within :data:`zoa_lib.survey.frames.DIPOLE_D_MAX`
    (into the report); for velocities declared or defaulted CMB, a dipole like the Sun's
    motion (:func:`zoa_lib.survey.frames.heliocentric_suspect`) is an error."""
    near = cat["d_obs"] < frames.DIPOLE_D_MAX
    if near.sum() < frames.DIPOLE_MIN_N:
        return
    dip = frames.fit_dipole(cat["v_r_obs"][near], cat["l"][near], cat["b"][near], cat["sigma_v"][near])
    report.dipole = dip
    report.notes.append(f"dipole of v_r within {frames.DIPOLE_D_MAX:g} Mpc/h ({dip['n']} galaxies): "
                        f"{dip['B']:.0f} ± {dip['B_err']:.0f} km/s toward (l, b) = ({dip['l']:.0f}, {dip['b']:.0f})")
    if check and report.frame == frames.CMB and frames.heliocentric_suspect(dip):
        raise CatalogError(
            f"{path}: the velocities look heliocentric, not CMB-frame: their dipole within "
            f"{frames.DIPOLE_D_MAX:g} Mpc/h is {dip['B']:.0f} km/s toward (l, b) = ({dip['l']:.0f}, {dip['b']:.0f}), "
            f"the Sun's motion ({frames.SUN_CMB.speed:g} km/s toward ({frames.SUN_CMB.l:.0f}, "
            f"{frames.SUN_CMB.b:.0f})) left in; pass --frame heliocentric (frame='heliocentric')")


def _positions_catalog(arr, report) -> np.ndarray:
    x, y, z = arr["sgx"], arr["sgy"], arr["sgz"]
    l, b, d = sky.sg_to_galactic(x, y, z)
    cat = np.zeros(len(x), CATALOG_DTYPE)
    cat["SGX"], cat["SGY"], cat["SGZ"] = x, y, z
    cat["l"], cat["b"] = l, b
    cat["d_true"] = np.nan
    cat["v_r_true"] = np.nan
    cat["d_obs"] = d
    cat["cz"] = distances.observed_cz(d, arr["v_r"])
    cat["v_r_obs"] = arr["v_r"]
    cat["sigma_v"] = arr["sigma_v"] if "sigma_v" in arr else 0.0
    report.notes.append("positions (Mpc/h) and radial velocities (km/s) taken as given; "
                        "cz implied by 1 + z = (1 + z_cos(d))(1 + v_r/c)")
    if "sigma_v" not in arr:
        report.notes.append("no sigma_v column: sigma_v = 0 (do not use error weighting)")
    return cat


def grid(catalog: np.ndarray, profile, position: str = "observed", return_outside: bool = False):
    """Grid a read catalog on the profile's cube exactly as the mocks are gridded
    (:func:`zoa_lib.survey.galaxies.grid_catalog`; the profile's box and error weighting)."""
    return galaxies.grid_catalog(catalog, profile.box.size, profile.box.grid, position=position,
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


# Files written and fetched (gridded catalogues, CF4's CSV layout, VizieR): zoa_lib.survey.catalog_files.
