"""``zoa crossval``: cross-validation on the catalogue itself — each method's predicted radial
velocities at held-out galaxies against their measured ones."""
from __future__ import annotations

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


def register(sub):
    p = add_command(
        sub, "crossval", help="cross-validate the methods on a catalogue: held-out galaxies' measured v_r vs predicted",
        description="Hold out a random fraction (default 10%) of the catalogue's galaxies inside the profile's "
                    "cube, reconstruct from the rest (read and gridded as `zoa reconstruct` does: observed "
                    "positions, the profile's error weighting), interpolate each method's 3D velocity field "
                    "trilinearly at the held-out galaxies' observed positions, project it on the line of sight "
                    "and score it against their measured radial velocities: Pearson r, the slope s of "
                    "v_obs = a + s v_pred, and the chi^2 gain per galaxy over v = 0, mean[v_obs^2 - (v_obs - "
                    "v_pred)^2]/sigma^2 with sigma^2 = sigma_v^2 + sigma_nl^2 (positive: better than v = 0).\n\n"
                    "Prints each score as mean +- std over the random splits (all reconstructed in one batch), "
                    "the best method on r and whether the V-Net is at least level with the calibrated Wiener "
                    "filter (paired difference of r split by split). Missing trained networks are an error "
                    "naming the `zoa train` commands. Nothing is learnt from the held-out galaxies: the calibrations "
                    "and wiener_joint's counts model come from the profile's training mocks (its expected counts "
                    "scaled by the share of galaxies each split keeps).",
        examples=["zoa crossval data/cf4-table2-first9999.csv --profile laptop",
                  "zoa crossval cf4.csv --profile ci --methods wiener --splits 3 -o crossval.json",
                  "zoa crossval data/cf3-group-members.tsv --groups --json > crossval.json"])
    p.add_argument("path", metavar="CATALOGUE",
                   help="catalogue file (a Cosmicflows-4 table, or SGX, SGY, SGZ [Mpc/h] + v_r [km/s])")
    add_profile_args(p)
    add_frame_args(p)
    p.add_argument("--methods", default="vnet,wiener_cal,wiener_joint,wiener", metavar="M[,M...]",
                   help="comma-separated: vnet, wiener, wiener_cal, wiener_joint (joint Wiener filter of counts and "
                        "velocities), potent (default: vnet,wiener_cal,wiener_joint,wiener)")
    p.add_argument("--fraction", type=float, default=0.1, metavar="F",
                   help="share of the galaxies in the cube held out per split, in (0, 0.5] (default: 0.1)")
    p.add_argument("--splits", type=int, default=5, metavar="K",
                   help="random splits, at least 2 (default: 5; disjoint when F x K <= 1)")
    p.add_argument("--seed", type=int, metavar="N", help="seed of the splits (default: the profile's seed)")
    p.add_argument("--sigma-nl", type=float, default=250.0, metavar="KM/S",
                   help="nonlinear velocity dispersion added in quadrature to each galaxy's error in chi^2 "
                        "(default: 250 km/s)")
    p.add_argument("--zero-point", choices=("fit", "none"), default="fit",
                   help="fit: fit the catalogue's zero point (H0 of its distances) on each split's reconstruction "
                        "galaxies and apply it, as zoa reconstruct does (default); none: distances as given")
    add_json_arg(p)
    p.add_argument("-o", "--output", metavar="FILE.json", help="also write the result as JSON (atomically)")
    add_renamed(p, "--out", "--output FILE.json")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    p.set_defaults(func=run)


def run(args):
    from zoa_lib.analysis import crossval as cv
    from zoa_lib.analysis.reconstruct import DEFAULT_METHODS
    from zoa_lib.methods.registry import SEARCH_METHODS, parse_methods

    methods = parse_methods(args.methods, SEARCH_METHODS, DEFAULT_METHODS)  # before the profile and any heavy import
    cv.check_split_options(args.fraction, args.splits)
    prof = profile_from_args(args)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    with json_output(args):
        res = cv.crossval(prof, args.path, methods, fraction=args.fraction, n_splits=args.splits, seed=args.seed,
                          sigma_nl=args.sigma_nl, progress=not args.no_progress, h0_catalog=args.h0,
                          frame=args.frame, groups=args.groups, zero_point=args.zero_point == "fit")
    doc = res.to_dict()
    if args.output:
        from zoa_lib.io.atomic import write_json_atomic

        write_json_atomic(args.output, doc)
    if args.json:
        print_json(doc)
        return 0
    lines = res.table_lines()
    if res.zero_points:
        import numpy as np

        a = np.asarray(res.zero_points)
        lines.insert(1, f"zero point fitted per split: a = ln(h_fit/h_catalog) = {a.mean():+.4f} (splits "
                        f"{a.min():+.4f} to {a.max():+.4f})")
    if args.output:
        lines.append(f"written: {args.output}")
    print("\n".join(lines))
    return 0
