"""``zoa shards check``: validate mock shards (schema, and content against the manifest)."""
from __future__ import annotations

import json

from zoa_lib.commands.options import parse_overrides


def register(sub):
    p = sub.add_parser("shards", help="check mock shards (HDF5) against the schema and the manifest",
                       description="Inspect mock shards without changing them.")
    psub = p.add_subparsers(dest="action", metavar="ACTION", required=True)
    c = psub.add_parser(
        "check", help="validate shards: schema, dtypes, shapes, and content against manifest.json",
        description="Check the profile's mock shards (data/<profile>/mocks/shard-NNNN.h5), or the given "
                    "shard files, as 'zoa mocks' does before skipping a complete shard: readable HDF5, every "
                    "dataset of the schema with its shape and dtype, the profile's grid, and the content "
                    "SHA-256 (or, with --verify quick, the file size) against the manifest.json beside them "
                    "when it lists the shard. Prints one line per bad shard; exit status 2 if any is bad, "
                    "0 if all are fine. Nothing is written.",
        epilog="Examples: zoa shards check --profile ci;  zoa shards check data/paper/mocks/shard-0007.h5;  "
               "zoa shards check --profile paper --verify quick --json")
    c.add_argument("paths", nargs="*", metavar="PATH",
                   help="shard files to check (default: every shard of the profile's plan)")
    c.add_argument("--profile", default=None,
                   help="profile name or YAML path (default: laptop); with PATHs, only to check their grid")
    c.add_argument("-p", "--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override a profile key, e.g. -p data_dir=/scratch/zoa (repeatable)")
    c.add_argument("--verify", choices=("checksum", "quick"), default="checksum",
                   help="compare with the manifest by content checksum (default) or by file size (quick)")
    c.add_argument("--json", action="store_true", help="print the results as JSON")
    c.set_defaults(func=check)


def check(args):
    from zoa_lib.config import load_profile
    from zoa_lib.survey.shards import ShardError
    from zoa_lib.survey.mock_set import check_shards

    overrides = parse_overrides(args.overrides)
    if args.paths:
        prof = load_profile(args.profile, overrides) if args.profile else None
        results = check_shards(paths=args.paths, verify=args.verify, grid=prof.box.grid if prof else None)
        where = f"{len(args.paths)} file(s)"
    else:
        prof = load_profile(args.profile or "laptop", overrides)
        results = check_shards(prof, verify=args.verify)
        where = f"profile {prof.name}"
    bad = [r for r in results if not r.ok]
    if args.json:
        print(json.dumps([{"path": r.path, "ok": r.ok, "reason": r.reason} for r in results], indent=2))
    else:
        for r in bad:
            print(r.line())
        if not bad:
            how = "content checksums" if args.verify == "checksum" else "file sizes"
            print(f"{where}: {len(results)} shard(s) valid ({how} checked against the manifest where listed)")
    if bad:
        raise ShardError(f"{len(bad)} of {len(results)} checked file(s) bad ({where}); see the lines above")
    return 0
