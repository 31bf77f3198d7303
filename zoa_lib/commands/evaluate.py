"""``zoa evaluate``: V-Net δ and φ against the Wiener filter and POTENT on held-out mocks."""
from __future__ import annotations

from . import add_profile_args, profile_from_args


def register(sub):
    p = sub.add_parser(
        "evaluate", help="metrics of the V-Nets, Wiener filter and POTENT; JSON + Markdown table",
        description="Reconstruct evaluation.n_eval held-out mocks, spread over every parent box of the split, "
                    "with the V-Net predictions (from `zoa predict`), a Wiener filter (plain and "
                    "Malmquist-calibrated) and POTENT, compute every metric (Pearson r per mock and pooled, "
                    "overall, in the ZOA, in shells and slabs; MSE, with each mock's mean removed for phi; "
                    "r(k), T(k); PDFs; velocity residuals; bulk flows), judge the V-Net against the best "
                    "classical method on each headline metric with a 68 % interval from a paired bootstrap "
                    "over parent boxes, print the verdict and write <data>/<profile>/evaluation/"
                    "{<method>.json, comparison.json, comparison.md}.")
    add_profile_args(p)
    p.add_argument("--split", default="test", choices=("test", "val"), help="held-out split (default: test)")
    p.add_argument("--methods", default=None,
                   help="comma-separated subset of vnet_delta,vnet_phi,wiener,wiener_cal,potent (default: "
                        "all; wiener_cal, the Wiener filter after removing the radial velocity bias measured "
                        "on training mocks, when training shards exist); 'wiener,potent' needs only the "
                        "mock shards")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=run)


def run(args):
    from ..evaluation import comparison_markdown, evaluate, evaluation_dir

    prof = profile_from_args(args)
    comp = evaluate(prof, split=args.split, methods=args.methods, progress=not args.no_progress)
    print(comparison_markdown(comp))
    print(f"verdict: {comp['goal_summary']}")
    print(f"written: {evaluation_dir(prof)}/comparison.md, comparison.json and one JSON per method")
    return 0
