"""Catalogue files written and fetched: a gridded catalogue (HDF5), CF4's CSV layout
(:func:`write_cf4_csv`; a mock of the local universe labelled as such,
:func:`write_local_universe_cf4`), and the full CF4 table from VizieR (:func:`fetch_cf4`).
Reading and converting catalogues is :mod:`zoa_lib.survey.catalogs`."""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Sequence

import numpy as np

from zoa_lib.errors import printable
from zoa_lib.survey import distances, sky
from zoa_lib.survey.catalogs import CF4_H0, CF4_SAMPLE, CF4_VIZIER, CatalogError, CatalogReport


# --------------------------------------------------------------------------- gridded catalogue
def write_grid(path: str | os.PathLike, inputs: np.ndarray, profile, report: CatalogReport | None = None,
               n_outside: int = 0, **attrs) -> Path:
    """Write a gridded catalog — :func:`~zoa_lib.survey.catalogs.grid`'s (N, N, N, 2) inputs — to HDF5 atomically.

    Datasets (float32, axes SGX, SGY, SGZ, observer at the cube centre, voxel i spanning
    [−L/2 + i L/N, −L/2 + (i+1) L/N) Mpc/h): ``n_gal`` (N, N, N), galaxies per voxel;
    ``v_pec`` (N, N, N), mean observed radial peculiar velocity of the voxel's galaxies in
    km/s, 0 where empty — the two input channels of a mock shard. Attrs: provenance
    (:func:`zoa_lib.io.provenance.provenance`), ``box_size`` (Mpc/h), ``grid``, the catalog's path,
    kind, columns and row counts (``n_cz_nonpositive`` too) from ``report``, ``n_in_cube``,
    ``n_outside``, ``attrs``.
    An existing file at ``path`` is replaced only when the new one is complete.
    """
    import h5py

    from zoa_lib.io.atomic import atomic_path
    from zoa_lib.io.provenance import provenance

    path = Path(path)
    if path.is_dir():
        raise CatalogError(f"{path}: is a folder; give a file name for the grid (e.g. grid.h5)")
    inputs = np.asarray(inputs)
    N = int(profile.box.grid)
    if inputs.shape != (N, N, N, 2):
        raise CatalogError(f"{path}: gridded inputs have shape {inputs.shape}, expected {(N, N, N, 2)}")
    meta = {**provenance(profile), "box_size": float(profile.box.size), "grid": N,
            "axes": "SGX, SGY, SGZ; observer at the cube centre",
            "error_weighting": bool(profile.survey.error_weighting),
            "n_in_cube": int(inputs[..., 0].sum()), "n_outside": int(n_outside),
            "attr_units": json.dumps({"box_size": "Mpc/h", "h0_catalog": "km/s/Mpc"})}
    if report is not None:
        meta.update(catalog=report.path, catalog_kind=report.kind, columns=json.dumps(report.columns),
                    n_rows=report.n_rows, n_kept=report.n_kept, n_dropped=len(report.dropped),
                    n_cz_nonpositive=report.n_cz_nonpositive, notes=json.dumps(report.notes))
    meta.update(attrs)
    with atomic_path(path) as tmp:
        with h5py.File(tmp, "w") as f:
            for name, ch, unit in (("n_gal", 0, "galaxies per voxel"), ("v_pec", 1, "km/s")):
                ds = f.create_dataset(name, data=inputs[..., ch].astype(np.float32))
                ds.attrs["units"] = unit
            for k, v in meta.items():
                f.attrs[k] = v
    return path


# --------------------------------------------------------------------------- download
def fetch_cf4(path: str | os.PathLike, *, catalog: str = CF4_VIZIER, server: str | None = None,
              timeout: float = 600.0, row_limit: int = -1) -> Path:
    """Download the CF4 galaxy table from VizieR (astroquery) and write it to ``path`` as
    CSV, atomically, in VizieR's column names (PGC, 1PGC, T17, Vcmb, DM, e_DM, the moduli by
    method, RAJ2000, DEJ2000, GLON, GLAT, SGL, SGB, ...; blank where VizieR has no value),
    after ``#`` lines saying what it is, from where and when. :func:`~zoa_lib.survey.catalogs.read_catalog` reads it
    with its defaults.

    ``catalog``: VizieR table (default :data:`CF4_VIZIER`, 55,877 rows); ``server``: a VizieR
    mirror (default astroquery's, vizier.cds.unistra.fr); ``timeout`` in seconds;
    ``row_limit``: −1 for every row. Needs the optional ``astroquery``
    (``pip install 'zoa[cf4]'``) and a network connection; without either it raises a
    one-line :class:`CatalogError`, and nothing is written."""
    from zoa_lib.io.atomic import write_text_atomic
    from zoa_lib.io.provenance import created_utc

    path = Path(path)
    if path.resolve() == CF4_SAMPLE.resolve():
        raise CatalogError(f"{path}: is the shipped first-9,999-row table; give the download another name "
                           "(e.g. data/cf4-table2.csv)")
    if path.is_dir():
        raise CatalogError(f"{path}: is a folder; give a file name for the table (e.g. cf4-table2.csv)")
    try:
        from astroquery.vizier import Vizier
    except ImportError:
        raise CatalogError("downloading CF4 needs astroquery: pip install 'zoa[cf4]' (or pip install astroquery); "
                           f"or download VizieR {catalog} as CSV by hand (data/README.md)") from None
    opts = {"columns": ["**"], "row_limit": int(row_limit), "timeout": float(timeout)}
    if server:
        opts["vizier_server"] = server
    viz = Vizier(**opts)
    where = viz.VIZIER_SERVER
    try:
        tables = viz.get_catalogs(catalog)
    except Exception as e:  # requests/OSError when offline, astroquery's own errors otherwise
        offline = isinstance(e, OSError) or type(e).__module__.startswith(("requests", "urllib3"))
        why = (f"no network connection? ({type(e).__name__})" if offline else
               f"{type(e).__name__}: {printable(str(e).splitlines()[0] if str(e) else '', limit=120)}")
        raise CatalogError(f"cannot download {catalog} from VizieR ({where}): {why}; nothing written") from None
    if len(tables) == 0 or len(tables[0]) == 0:
        raise CatalogError(f"VizieR ({where}) returned no rows for {catalog}; nothing written")
    table = tables[0]
    table.meta.clear()
    import io as _io

    buf = _io.StringIO()
    table.write(buf, format="ascii.csv")
    # no commas in these lines: the reader takes the last line naming its columns as the header
    head = [f"# Cosmicflows-4 galaxies (Tully et al. 2023 ApJ 944 94): VizieR {catalog} with {len(table)} rows",
            f"# downloaded from {where} by zoa (zoa_lib.survey.catalog_files.fetch_cf4) on {created_utc()}",
            "# units: Vcmb km/s; DM and e_DM mag (H0 = 74.6 km/s/Mpc); sky positions deg"]
    return write_text_atomic(path, "\n".join(head) + "\n" + buf.getvalue())


# --------------------------------------------------------------------------- writing
EDD_HEADER = ("pgc", "Vcmb", "DM", "eDM", "RA", "DE", "glon", "glat")
VIZIER_HEADER = ("PGC", "Vcmb", "DM", "e_DM", "RAdeg", "DEdeg", "GLON", "GLAT")
DEFAULT_PREAMBLE = (
    "# Written by zoa (zoa_lib.survey.catalog_files.write_cf4_csv) in the EDD Cosmicflows CSV layout.",
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
    from zoa_lib.io.atomic import write_text_atomic

    if spelling not in ("edd", "vizier"):
        raise CatalogError(f"{path}: spelling must be 'edd' or 'vizier', got {spelling!r}")
    if coords not in ("both", "galactic", "equatorial"):
        raise CatalogError(f"{path}: coords must be 'both', 'galactic' or 'equatorial', got {coords!r}")
    cat = np.asarray(catalog)
    cz = cat["cz"].astype(np.float64)
    d_L = distances.luminosity_from_comoving_distance(cat["d_obs"].astype(np.float64))
    dm = distances.distance_modulus(d_L * 100.0 / h0_catalog)
    edm = distances.sigma_dm_from_sigma_v(cz, cat["sigma_v"]) if e_dm is None else np.broadcast_to(
        np.asarray(e_dm, np.float64), cz.shape)
    l, b = cat["l"].astype(np.float64), cat["b"].astype(np.float64)
    ra, dec = sky.galactic_to_icrs(l, b)
    names = EDD_HEADER if spelling == "edd" else VIZIER_HEADER
    cols = [0, 1, 2, 3] + ([4, 5] if coords in ("both", "equatorial") else []) + \
           ([6, 7] if coords in ("both", "galactic") else [])
    sep = ", " if spaces else ","
    out = [p.format(h0=h0_catalog) for p in DEFAULT_PREAMBLE] if preamble is None else [str(p) for p in preamble]
    out.append(sep.join(names[c] for c in cols))
    fmt = {0: "{:d}", 1: "{:.4f}", 2: "{:.6f}", 3: "{:.4f}", 4: "{:.7f}", 5: "{:.7f}", 6: "{:.7f}", 7: "{:.7f}"}
    for i in range(len(cat)):
        vals = (pgc_start + i, cz[i], dm[i], edm[i], ra[i], dec[i], l[i], b[i])
        out.append(sep.join(fmt[c].format(vals[c]) for c in cols))
    return write_text_atomic(path, "\n".join(out) + "\n")


#: Header of :func:`write_local_universe_cf4`: the file is a mock, not Cosmicflows-4.
MOCK_PREAMBLE = (
    "# MOCK CATALOG - NOT COSMICFLOWS-4 DATA.",
    "# A CF4-like survey of zoa's constrained local-universe mock (zoa_lib.analysis.local_universe):",
    "# a Hoffman-Ribak constrained realization with the Great Attractor, Virgo, Coma, ... at their",
    "# literature positions, evolved with 2LPT and surveyed like CF4 (ZOA masked). Written in the",
    "# EDD Cosmicflows CSV layout (zoa_lib.survey.catalog_files.write_cf4_csv) so that CF4 readers run on it.",
    "# Vcmb in km/s; DM in mag for H0 = {h0:g} km/s/Mpc; RA, DE (J2000), glon, glat in degrees.",
)


def write_local_universe_cf4(path, catalog, h0_catalog: float = 74.6, note: str | None = None) -> Path:
    """Write a local-universe survey catalog in CF4's EDD CSV layout (atomically) with a
    header saying plainly that it is a MOCK, not Cosmicflows-4 (:data:`MOCK_PREAMBLE`);
    ``note`` adds one more comment line (e.g. profile and realization). DM is for
    ``h0_catalog`` km/s/Mpc, as CF4's (74.6). Returns the path."""
    pre = list(MOCK_PREAMBLE)
    if note:
        pre.append("# " + " ".join(str(note).split()).replace("{", "{{").replace("}", "}}"))
    return write_cf4_csv(path, catalog, h0_catalog=h0_catalog, preamble=pre)
