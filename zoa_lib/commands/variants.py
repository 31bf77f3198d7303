"""``zoa variants``: train φ-network variants side by side and score them against the
calibrated Wiener filter (:mod:`zoa_lib.analysis.variants`)."""
from __future__ import annotations

import os

from zoa_lib.commands.options import (
    add_command,
    add_json_arg,
    add_profile_args,
    json_output,
    print_json,
    profile_from_args,
)


def register(sub):
    from zoa_lib.analysis.variants import VARIANTS

    p = add_command(
        sub, "variants", help="measure why the phi network learns or not: variants side by side",
        description="Train each phi V-Net variant from scratch for a few epochs on the profile's training "
                    "mocks (in memory) and score it on the validation mocks: per-mock Pearson r(phi) in the "
                    "survey sphere and inside the ZOA, and the mean-removed MSE relative to the calibrated "
                    "Wiener filter. Writes data/<profile>/variants/phi.json (shown by chapter 03).\n\n"
                    "Variants: " + "; ".join(f"{k} ({v[0]})" for k, v in VARIANTS.items()),
        examples=["zoa variants --profile laptop --epochs 6",
                  "zoa variants --profile laptop --study mocks --epochs 6   # training mocks at fixed training time",
                  "# 192, 384 and 768 mocks at the book time of 384 mocks x 40 epochs:",
                  "zoa variants --profile laptop --set mocks.n_train=768 --set data_tag=scan --study mocks \\",
                  "    --fixed book --budget-mocks 384 --epochs 40",
                  "zoa variants --profile ci --epochs 1 --only paper --json"])
    add_profile_args(p)
    p.add_argument("--epochs", type=int, default=6, help="epochs per variant (default 6)")
    p.add_argument("--only", action="append", choices=sorted(VARIANTS), help="run only this variant (repeatable)")
    p.add_argument("--study", choices=("variants", "mocks"), default="variants",
                   help="variants: the set-ups side by side (default); mocks: the book's phi network on "
                        "1/4, 1/2 and all of the training mocks at the same training time (epochs scaled so "
                        "that mocks x epochs = --epochs x n_train), written to data/<profile>/variants/mocks.json")
    p.add_argument("--budget-mocks", type=int, default=None, metavar="N",
                   help="with --study mocks: the fixed cost is that of N training mocks for --epochs "
                        "(default: all of the training split)")
    p.add_argument("--fixed", choices=("training", "book"), default="training",
                   help="with --study mocks: keep the training time fixed (default), or the book time: making "
                        "a mock (its box share, survey, Wiener channels) and fitting it in every network, at the "
                        "unit costs of `zoa bench book` (measured now if this data folder has none)")
    add_json_arg(p)
    p.set_defaults(func=run)


def run(args):
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    prof = profile_from_args(args)
    from zoa_lib.analysis import variants

    with json_output(args):
        if args.study == "mocks":
            kw = {}
            if args.fixed == "book":
                from zoa_lib.book import estimate as be

                path = be.costs_path(prof)
                costs = be.load_costs(path) if path.exists() else be.measure_unit_costs(prof)
                kw = {"mock_seconds": be.seconds_per_training_mock(prof, costs),
                      "epoch_seconds": be.seconds_per_mock_epoch(prof, costs)}
            res = variants.run_mock_study(prof, args.epochs, budget_mocks=args.budget_mocks, **kw)
            rows, path = variants.mock_study_table(res), variants.mock_study_path(prof)
        else:
            res = variants.run_variants(prof, args.only, epochs=args.epochs)
            rows, path = variants.variants_table(res), variants.variants_path(prof)
    if args.json:
        print_json(res)
        return 0
    print(" | ".join(rows[0]))
    for row in rows:
        print(" | ".join(str(v) for v in row.values()))
    print(f"written: {path}")
    return 0
