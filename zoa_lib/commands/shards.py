"""``zoa shards check``: validate mock shards (schema, and content against the manifest)."""
from __future__ import annotations

from zoa_lib.commands.options import add_command, add_json_arg, add_profile_args, parse_overrides, print_json


def register(sub):
    p = add_command(sub, "shards", help="check mock shards (HDF5) against the schema and the manifest",
                    description="Inspect mock shards without changing them.",
                    examples=["zoa shards check --profile ci", "zoa shards check --profile paper --verify quick --json"])
    psub = p.add_subparsers(dest="action", metavar="ACTION", required=True)
    c = add_command(
        psub, "check", help="validate shards: schema, dtypes, shapes, and content against manifest.json",
        description="Check the profile's mock shards (data/<profile>/mocks/shard-NNNN.h5), or the given "
                    "shard files, as 'zoa mocks' does before skipping a complete shard: readable HDF5, every "
                    "dataset of the schema with its shape and dtype, the profile's grid, and the content "
                    "SHA-256 (or, with --verify quick, the file size) against the manifest.json beside them "
                    "when it lists the shard. Prints one line per bad shard; exit status 2 if any is bad, "
                    "0 if all are fine. Nothing is written.",
        examples=["zoa shards check --profile ci",
                  "zoa shards check data/paper/mocks/shard-0007.h5          # any grid",
                  "zoa shards check --profile paper --verify quick --json"])
    c.add_argument("paths", nargs="*", metavar="PATH",
                   help="shard files to check (default: every shard of the profile's plan)")
    add_profile_args(c, what="; with PATHs, only to check their grid when given")
    c.add_argument("--verify", choices=("checksum", "quick"), default="checksum",
                   help="compare with the manifest by content checksum (default) or by file size (quick)")
    add_json_arg(c, "the results")
    c.set_defaults(func=check)


def check(args):
    from zoa_lib.config import load_profile
    from zoa_lib.survey.mock_set import check_shards
    from zoa_lib.survey.shards import ShardError

    overrides = parse_overrides(args.overrides)
    if args.paths:
        prof = load_profile(args.profile, overrides) if args.profile_given else None
        results = check_shards(paths=args.paths, verify=args.verify, grid=prof.box.grid if prof else None)
        where = f"{len(args.paths)} file(s)"
    else:
        prof = load_profile(args.profile, overrides)
        results = check_shards(prof, verify=args.verify)
        where = f"profile {prof.name}"
    bad = [r for r in results if not r.ok]
    if args.json:
        print_json([{"path": r.path, "ok": r.ok, "reason": r.reason} for r in results], args)
    else:
        for r in bad:
            print(r.line())
        if not bad:
            how = "content checksums" if args.verify == "checksum" else "file sizes"
            print(f"{where}: {len(results)} shard(s) valid ({how} checked against the manifest where listed)")
    if bad:
        raise ShardError(f"{len(bad)} of {len(results)} checked file(s) bad ({where}); see the lines above")
    return 0
