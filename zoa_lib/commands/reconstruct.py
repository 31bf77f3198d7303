"""``zoa reconstruct``: δ, φ and the 3D velocity of a real catalogue by the V-Net and the classical methods."""
from __future__ import annotations

import math
import os

from zoa_lib.commands.catalog import add_frame_args
from zoa_lib.commands.options import (
    add_command,
    add_json_arg,
    add_profile_args,
    add_renamed,
    json_output,
    print_json,
    profile_from_args,
)
from zoa_lib.methods import registry


def register(sub):
    p = add_command(
        sub, "reconstruct", help="reconstruct delta, phi and velocity from a catalogue (HDF5 + bulk-flow JSON)",
        description="Read a peculiar-velocity catalogue as `zoa catalog` does (a Cosmicflows-4 table in EDD's or "
                    "VizieR's layout, the Cosmicflows-3 group-member table, or SGX, SGY, SGZ [Mpc/h] + v_r [km/s]), or every file of a glob (e.g. "
                    "HAMLET realizations), grid it on the profile's cube and reconstruct it by each method: "
                    "vnet (the profile's trained density and potential networks; velocity = -(2f/3 H0 Om) grad "
                    "phi), wiener, wiener_cal (Wiener filter with the radial bias calibrated on training mocks), "
                    "wiener_joint (joint Wiener filter of the galaxy counts and the calibrated velocities, its "
                    "counts model fitted on training mocks), potent.\n\n"
                    "Writes FILE.h5 atomically: root attrs "
                    "box_size (Mpc/h), grid, the catalogue's "
                    "provenance; one group per method with delta (N,N,N), phi (N,N,N) in (km/s)^2 with its "
                    "mean removed and velocity (N,N,N,3) in km/s, axes SGX, SGY, SGZ, observer at the centre. "
                    "For a glob the groups hold the mean over realizations and *_std their scatter. Beside it, "
                    "FILE.bulk_flows.json: the bulk flow B(R) in top-hat spheres, |B| in km/s and its direction "
                    "(l, b).\n\nMissing trained networks are an error naming the `zoa train` commands; nothing is "
                    "trained here.",
        examples=["zoa reconstruct data/cf4-table2-first9999.csv --profile laptop -o cf4.h5",
                  "zoa reconstruct data/cf3-group-members.tsv --profile laptop -o cf3.h5 --groups",
                  "zoa reconstruct 'hamlet/realization-*.csv' --kind positions --profile paper -o hamlet.h5 "
                  "--methods vnet",
                  "zoa reconstruct cf4.csv --profile ci --output cf4.h5 --radii 20,37,50,80 --json"])
    p.add_argument("path", metavar="PATH", nargs="+",
                   help="catalogue file; several files, or a quoted glob pattern, are realizations of one catalogue")
    add_profile_args(p)
    p.add_argument("-o", "--output", required=True, metavar="FILE.h5",
                   help="HDF5 file to write (and FILE.bulk_flows.json beside it)")
    add_renamed(p, "--out", "--output FILE.h5")
    p.add_argument("--methods", default="vnet,wiener_cal", metavar="M[,M...]",
                   help="comma-separated: vnet, wiener, wiener_cal, wiener_joint, potent (default: vnet,wiener_cal)")
    p.add_argument("--radii", metavar="R[,R...]",
                   help="bulk-flow radii in Mpc/h, each at most L/2 (default: every 5 Mpc/h up to L/2)")
    p.add_argument("--kind", choices=("auto", "cf4", "positions"), default="auto",
                   help="table kind (default: auto from the header); see `zoa catalog --help`")
    p.add_argument("--column", dest="columns", action="append", default=[], metavar="FIELD=NAME",
                   help="use header column NAME for FIELD, e.g. --column velocity=Vhel (repeatable)")
    add_frame_args(p)
    p.add_argument("--estimator", choices=("watkins_feldman", "linear"),
                   help="peculiar-velocity estimator of cf4 tables (default: the profile's survey.estimator)")
    p.add_argument("--drop-bad", action="store_true", help="drop bad rows (reported) instead of failing")
    p.add_argument("--force", action="store_true",
                   help="reconstruct even a catalogue unlike the mocks the networks and the calibrated and joint "
                        "Wiener filters learned from (sky coverage, n(s), galaxies in the cube, velocity rms; "
                        "zoa_lib.survey.domain); the mismatch is recorded in the "
                        "output's attrs and bulk-flow JSON")
    p.add_argument("--zero-point", choices=("fit", "none"), default="fit",
                   help="fit: fit the catalogue's zero point (the H0 of its distances) as a nuisance parameter, with "
                        "the Malmquist bias and the error measured on the profile's training mocks, and apply it "
                        "before gridding (default; recorded in the output); none: take the distances as given")
    add_json_arg(p, "the summary")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    p.set_defaults(func=run)


def run(args):
    from zoa_lib.analysis import reconstruct as rc
    from zoa_lib.survey import catalogs

    # the methods before the profile and any heavy import
    methods = registry.parse_methods(args.methods, registry.SEARCH_METHODS, rc.DEFAULT_METHODS)
    prof = profile_from_args(args)
    columns = catalogs.column_overrides(args.columns)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    source = args.path[0] if len(args.path) == 1 else args.path
    with json_output(args):
        rec = rc.reconstruct_catalogs(prof, source, methods, h0_catalog=args.h0, kind=args.kind, columns=columns,
                                      frame=args.frame, groups=args.groups, drop_bad=args.drop_bad,
                                      estimator=args.estimator, radii=args.radii, progress=not args.no_progress,
                                      force=args.force, zero_point=args.zero_point == "fit")
        h5, js = rc.write(rec, args.output)
    cats = [c.to_dict() for c in rec.catalogs]
    summary = {"hdf5": str(h5), "bulk_flows": str(js), "profile": prof.name, "grid": prof.box.grid,
               "box_size": prof.box.size, "methods": rec.methods, "n_catalogs": rec.n,
               "catalogs": [{k: c[k] for k in ("path", "n_rows", "n_kept", "n_dropped", "n_cz_nonpositive",
                                              "n_in_cube", "n_outside", "layout", "frame", "h0_catalog", "groups",
                                              "n_groups")} for c in cats],
               "bulk_flows_by_method": {m: rec.bulk_flow_table(m) for m in rec.methods}, "notes": rec.notes,
               "domain_mismatch": rec.mismatches}
    if args.json:
        print_json(summary)
        return 0
    c0 = cats[0]
    if rec.n == 1:
        lines = [f"{c0['path']}: {c0['n_rows']} rows, {c0['n_kept']} kept ({c0['n_dropped']} dropped, "
                 f"{c0['n_cz_nonpositive']} with cz <= 0 given v = cz - H0 d), {c0['n_in_cube']} in the "
                 f"{prof.box.size:g} Mpc/h cube, {c0['n_outside']} outside"]
    else:
        n_in = [c["n_in_cube"] for c in cats]
        lines = [f"{rec.n} catalogues ({rec.source[:80]}): {min(n_in)}-{max(n_in)} galaxies in the cube each; "
                 "fields are the mean over realizations, *_std their scatter"]
    zps = [c["zero_point"] for c in cats if c.get("zero_point")]
    if zps and rec.n == 1:
        z = zps[0]
        lines.append(f"zero point: H0 of the distances {z['h0_fit']:.2f} +- {z['h0_fit_err']:.2f} km/s/Mpc "
                     f"(catalogue: {z['h0_catalog']:g}; a = {z['a']:+.4f} +- {z['a_err']:.4f}, {z['n']} galaxies "
                     f"within {z['s_max']:g} Mpc/h; error from {z['n_mocks']} training mocks)")
    lines += [f"note: {n}" for n in rec.notes]
    for m in rec.methods:
        lines += [f"note ({m}): {n}" for n in rec.info.get(m, {}).get("notes", [])]
    show = [R for R in rec.radii if R in (10.0, 20.0, 40.0, 50.0, 80.0)] \
        or list(rec.radii)[:: max(1, len(rec.radii) // 4)]
    for m in rec.methods:
        rows = {r["R"]: r for r in rec.bulk_flow_table(m)}
        err = {R: (f" +- {rows[R]['B_err']:.0f}" if math.isfinite(rows[R].get("B_err", math.nan)) else "") for R in show}
        parts = [f"B({R:g}) = {rows[R]['B']:.0f}{err[R]} km/s to (l, b) = ({rows[R]['l']:.0f}, {rows[R]['b']:.0f})"
                 for R in show]
        lines.append(f"{registry.SEARCH_LABELS.get(m, m)}: " + "; ".join(parts))
    lines.append(f"written: {h5} ({prof.box.grid}^3, {', '.join(rec.methods)}) and {js}")
    print("\n".join(lines))
    return 0
