"""``zoa mocks``: generate a profile's mock shards (resumable, fanned out with Dask)."""
from __future__ import annotations

from zoa_lib.commands.options import (
    add_command,
    add_json_arg,
    add_profile_args,
    json_output,
    print_json,
    profile_from_args,
)


def register(sub):
    p = add_command(
        sub, "mocks", help="generate the profile's mock survey shards (HDF5)",
        description="Simulate parent boxes, cut observer cubes, draw CF4-like surveys and write "
                    "data/<profile>/mocks/shard-NNNN.h5 with a manifest. Complete shards are skipped "
                    "(checksum verified), corrupt or missing ones regenerated; safe to rerun after "
                    "an interruption. Shards run as Dask tasks: a LocalCluster of --workers processes "
                    "(default), a dask-jobqueue SLURMCluster (--scheduler slurm), or an existing "
                    "scheduler (--scheduler tcp://HOST:PORT).",
        examples=["zoa mocks --profile ci",
                  "zoa mocks --profile paper --shards 0:8 --workers 8      # the first 8 shards",
                  "zoa mocks --profile paper --scheduler slurm --workers 32",
                  "zoa mocks --profile ci --no-progress --json             # the summary as JSON"])
    add_profile_args(p)
    p.add_argument("--shards", metavar="A:B",
                   help="only shards A..B-1 (A:, :B or a single index also work; default: all)")
    p.add_argument("--workers", type=int, metavar="N",
                   help="Dask worker processes or Slurm jobs (default: the profile's mocks.workers)")
    p.add_argument("--scheduler", default="local", metavar="local|slurm|sync|ADDRESS",
                   help="local (LocalCluster, default), slurm (dask-jobqueue), sync (in this process, "
                        "no Dask) or a Dask scheduler address")
    p.add_argument("--verify", choices=("checksum", "quick"), default="checksum",
                   help="how complete shards are checked: content checksum (default) or quick "
                        "(readable + size)")
    p.add_argument("--force", action="store_true",
                   help="replace existing mocks made with a different configuration")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    add_json_arg(p, "the summary")
    p.set_defaults(func=run)


def run(args):
    from zoa_lib.survey.mock_set import generate

    prof = profile_from_args(args)
    with json_output(args):
        summary = generate(prof, shards=args.shards, workers=args.workers, scheduler=args.scheduler,
                           progress=not args.no_progress, force=args.force, verify=args.verify)
    if args.json:
        print_json(summary)
    else:
        print(f"{summary['folder']}: {len(summary['made'])} shard(s) made ({summary['mocks_made']} mocks), "
              f"{len(summary['skipped'])} complete, {len(summary['adopted'])} adopted, "
              f"{len(summary['regenerated'])} regenerated; {summary['seconds']} s")
    return 0
