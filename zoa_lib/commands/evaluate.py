"""``zoa evaluate``: the V-Nets' δ and φ against the Wiener filters and POTENT on held-out mocks."""
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
        sub, "evaluate", help="metrics of the V-Nets, Wiener filters and POTENT; JSON + Markdown table",
        description="Reconstruct evaluation.n_eval held-out mocks, spread over every parent box of the split, "
                    "with the V-Net predictions (from `zoa predict`: the profile's network and the paper's "
                    "set-up), a Wiener filter (plain, Malmquist-calibrated, and joint: counts and velocities) "
                    "and POTENT, compute every metric (Pearson r per mock and pooled, "
                    "overall, in the ZOA, in shells and slabs; MSE, with each mock's mean removed for phi; "
                    "r(k), T(k); PDFs; velocity residuals; bulk flows; clusters and voids inside and outside the "
                    "ZOA), judge each network against the best classical method on each headline metric with a "
                    "68 % interval from a paired bootstrap over parent boxes, print the verdict and write "
                    "<data>/<profile>/evaluation/{<method>.json, comparison.json, comparison.md}.",
        examples=["zoa evaluate --profile ci                              # every method the profile trains",
                  "zoa evaluate --profile laptop --methods wiener,potent  # needs only the mock shards",
                  "zoa evaluate --profile ci --split val --json           # the comparison as JSON"])
    add_profile_args(p)
    p.add_argument("--split", default="test", choices=("test", "val"), help="held-out split (default: test)")
    p.add_argument("--methods", default=None,
                   help="comma-separated subset of vnet_delta,vnet_phi,vnet_paper_delta,vnet_paper_phi,"
                        "wiener,wiener_cal,wiener_joint,potent (default: all the profile trains; wiener_cal "
                        "and wiener_joint, which calibrate on training mocks, when training shards exist); "
                        "'wiener,potent' needs only the mock shards")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    add_json_arg(p, "the comparison (comparison.json)")
    p.set_defaults(func=run)


def run(args):
    from zoa_lib.analysis.evaluation import evaluate, evaluation_dir
    from zoa_lib.analysis.report import comparison_markdown

    prof = profile_from_args(args)
    with json_output(args):
        comp = evaluate(prof, split=args.split, methods=args.methods, progress=not args.no_progress)
    if args.json:
        print_json(comp)
        return 0
    print(comparison_markdown(comp))
    for net, info in (comp.get("networks") or {}).items():
        print(f"verdict ({net}): {info['goal_summary']}")
    print(f"written: {evaluation_dir(prof)}/comparison.md, comparison.json and one JSON per method")
    return 0
