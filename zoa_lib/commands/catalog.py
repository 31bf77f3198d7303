"""``zoa catalog``: read a peculiar-velocity catalog, report what was read, optionally grid it."""
from __future__ import annotations

from zoa_lib.commands.options import (
    add_command,
    add_json_arg,
    add_profile_args,
    add_renamed,
    json_output,
    print_json,
    profile_from_args,
)
from zoa_lib.survey import catalog_files


def add_frame_args(p) -> None:
    """``--h0``, ``--frame`` and ``--groups`` (``zoa catalog``, ``zoa reconstruct``)."""
    p.add_argument("--h0", type=float, default=None, metavar="KM/S/MPC",
                   help="H0 in km/s/Mpc that the distances assume (default: the layout's, 74.6 for Cosmicflows-4, "
                        "75 for Cosmicflows-3)")
    p.add_argument("--frame", choices=("auto", "cmb", "heliocentric", "local-group"), default="auto",
                   help="frame of the table's velocities, converted to the CMB frame (Planck 2018 dipole): auto "
                        "(default) from the column name (czHelio/Vhel heliocentric, Vcmb/V3k cmb) or the layout "
                        "(CF4 cmb, CF3 heliocentric)")
    p.add_argument("--groups", action="store_true",
                   help="one row per group: CF3's group-average columns, or rows averaged per group id (CF4's "
                        "1PGC): cz mean, distance modulus inverse-variance weighted, mean direction")


def register(sub):
    p = add_command(
        sub, "catalog", help="read a CF4, CF3 or positions catalog (layout from the header), report it, grid it (HDF5)",
        description="Read a peculiar-velocity catalog with zoa_lib.survey.catalogs.read_catalog — a Cosmicflows-4 "
                    "table in EDD's or VizieR's layout, the Cosmicflows-3 group-member table (czHelio heliocentric, "
                    "converted to the CMB frame), a table in CF4's layout (Vcmb or cz in km/s, DM and eDM in mag or "
                    "Dist in Mpc, glon/glat, sgl/sgb or RA/DE in deg) or a positions table (SGX, SGY, SGZ in Mpc/h, "
                    "v_r in km/s) — and print the report: rows read and kept, columns used, dropped rows with their "
                    "line, column and reason, sky coverage and distance range.\n\n"
                    "With --grid-output, grid it on the profile's cube exactly as the mocks are gridded and write "
                    "FILE.h5 atomically: n_gal (N,N,N) galaxies per voxel and v_pec (N,N,N) mean radial peculiar "
                    "velocity in km/s (0 where empty), axes SGX, SGY, SGZ, observer at the centre.\n\n"
                    "A bad row is an error (exit 2) naming the file, line and column, unless --drop-bad. Galaxies "
                    "with cz <= 0 (blueshifted neighbours) are kept with v = cz - H0 d (the Watkins-Feldman "
                    "estimator needs cz > 0) and counted in the report. With --fetch, first download the whole CF4 "
                    "galaxy table (VizieR J/ApJ/944/94/table2, 55,877 rows) to PATH with astroquery "
                    "(pip install 'zoa[cf4]'; needs a network connection).",
        examples=["zoa catalog data/cf4-table2-first9999.csv                # the shipped real table",
                  "zoa catalog data/cf3-group-members.tsv --groups          # CF3, whole sky, one row per group",
                  "zoa catalog data/cf4-table2.csv --fetch                  # the full table from VizieR",
                  "zoa catalog cf4.csv --drop-bad --profile paper --grid-output cf4-grid.h5",
                  "zoa catalog hamlet_000.csv --kind positions --json",
                  "zoa catalog table.txt --column velocity=Vhel --h0 100"])
    p.add_argument("path", metavar="PATH", help="CSV or whitespace-separated text table")
    add_profile_args(p)
    p.add_argument("--kind", choices=("auto", "cf4", "positions"), default="auto",
                   help="table kind: cf4 (velocity + distance modulus + sky position), positions (SGX, SGY, "
                        "SGZ in Mpc/h + v_r in km/s), or auto from the header (default)")
    p.add_argument("--column", dest="columns", action="append", default=[], metavar="FIELD=NAME",
                   help="use header column NAME for FIELD (velocity, dm, dist, e_dm, glon, glat, sgl, sgb, ra, "
                        "dec, sgx, sgy, sgz, v_r, sigma_v, id); repeatable, e.g. --column velocity=Vhel")
    add_frame_args(p)
    p.add_argument("--estimator", choices=("watkins_feldman", "linear"),
                   help="peculiar-velocity estimator of cf4 tables (default: the profile's survey.estimator)")
    p.add_argument("--drop-bad", action="store_true",
                   help="drop bad rows (listed in the report with line, column and reason) instead of failing")
    p.add_argument("--grid-output", metavar="FILE.h5",
                   help="grid the catalog on the profile's box (size in Mpc/h, grid N) and write n_gal, v_pec")
    add_renamed(p, "--grid-out", "--grid-output FILE.h5")
    add_json_arg(p, "the report")
    p.add_argument("--fetch", action="store_true",
                   help="download the full CF4 galaxy table from VizieR (J/ApJ/944/94/table2) to PATH first "
                        "(atomic; needs astroquery, pip install 'zoa[cf4]', and a network connection)")
    p.add_argument("--vizier-server", metavar="HOST",
                   help="with --fetch: a VizieR mirror, e.g. vizier.cfa.harvard.edu (default: astroquery's)")
    p.set_defaults(func=run)


def run(args):
    with json_output(args):
        out, lines = _catalog(args)
    if args.json:
        print_json(out)
    else:
        print("\n".join(lines))
    return 0


def _catalog(args):
    """The report of ``zoa catalog`` as a dict (``--json``) and as lines."""
    from zoa_lib.survey import catalogs

    prof = profile_from_args(args)
    columns = catalogs.column_overrides(args.columns)
    fetched = None
    if args.fetch:
        fetched = catalog_files.fetch_cf4(args.path, server=args.vizier_server)
    cat, report = catalogs.read_catalog(args.path, kind=args.kind, columns=columns, h0_catalog=args.h0,
                                        drop_bad=args.drop_bad, estimator=args.estimator or prof.survey.estimator,
                                        frame=args.frame, groups=args.groups)
    out = {**report.to_dict(), **catalogs.describe(cat, zoa_b=prof.survey.zoa_b)}
    lines = [report.summary(), *catalogs.describe_lines(out)]
    if fetched is not None:
        out["fetched"] = {"path": str(fetched), "vizier": catalogs.CF4_VIZIER}
        lines.insert(0, f"downloaded VizieR {catalogs.CF4_VIZIER} to {fetched}")
    if args.grid_output:
        inputs, n_outside = catalogs.grid(cat, prof, return_outside=True)
        path = catalog_files.write_grid(args.grid_output, inputs, prof, report, n_outside, h0_catalog=float(report.h0_catalog),
                                   estimator=args.estimator or prof.survey.estimator)
        out["grid"] = {"path": str(path), "profile": prof.name, "grid": prof.box.grid, "box_size": prof.box.size,
                       "n_in_cube": int(inputs[..., 0].sum()), "n_outside": int(n_outside)}
        lines.append(f"gridded on {prof.box.grid}^3 over {prof.box.size:g} Mpc/h (profile {prof.name}): "
                     f"{out['grid']['n_in_cube']} galaxies in the cube, {n_outside} outside; written: {path}")
    return out, lines
