"""``zoa bench WHAT``: speed and memory of a pipeline stage, printed as JSON (``--json`` changes
nothing there).

Benchmarks report, tests assert: nothing here fails on a slow machine. Each stage's
module provides ``benchmark(profile) -> dict``; this command adds the machine.

``zoa bench book`` is the whole book: every chapter's wall time estimated from per-unit costs
measured here (:mod:`zoa_lib.book.estimate`), printed as a table (``--json``: as JSON), beside
the chapter times ``zoa run`` last measured in the profile's data folder. It saves the costs to
``<data>/bench/unit-costs.json``, from which ``zoa run`` puts the estimate on the landing page;
``--costs FILE`` reuses saved costs instead of measuring.
"""
from __future__ import annotations

import importlib
import json
import sys

from zoa_lib.commands.options import add_command, add_json_arg, add_profile_args, json_output, profile_from_args
from zoa_lib.io.machine import machine, peak_rss_mib

#: stage -> "module:function"
BENCHMARKS = {
    "sim": "zoa_lib.universe.simulation:benchmark",
    "mocks": "zoa_lib.survey.mock_set:benchmark",
    "train": "zoa_lib.methods.training.bench:benchmark",
    "evaluate": "zoa_lib.methods.baselines:benchmark",
}


def register(sub):
    p = add_command(
        sub, "bench", help="benchmark a stage, or estimate the book's chapter times",
        description="Measure speed and peak memory of a pipeline stage (sim, mocks, train, evaluate) at a "
                    "profile's sizes and print them as JSON, the machine included. 'book': estimate every "
                    "chapter's wall time from per-unit costs measured here, printed as a table (--json: as "
                    "JSON) beside the chapter times 'zoa run' last measured, and save the costs to "
                    "<data>/bench/unit-costs.json for the landing page.",
        examples=["zoa bench sim --profile ci --engine pm        # JSON: seconds per parent box, peak memory",
                  "zoa bench train --profile paper -o train-paper.json",
                  "zoa bench book                                # the laptop book's chapter times, a table",
                  "zoa bench book --profile ci --json --costs data/ci/bench/unit-costs.json"])
    p.add_argument("what", choices=sorted([*BENCHMARKS, "book"]), help="stage to benchmark, or book")
    add_profile_args(p)
    p.add_argument("--engine", choices=("2lpt", "pm"),
                   help="sim only: the parent-box engine (simulation.engine; default: the profile's)")
    p.add_argument("-o", "--output", metavar="FILE.json", help="also write the JSON to this file")
    add_json_arg(p, "the result (what every stage but 'book' prints anyway; 'book' prints a table)")
    p.add_argument("--costs", metavar="FILE",
                   help="book only: unit costs saved by an earlier 'zoa bench book' (its JSON or "
                        "<data>/bench/unit-costs.json) instead of measuring them")
    p.add_argument("--full", action="store_true",
                   help="book only: measure with more repetitions (8 mocks, 3 Wiener filters, a 10 s epoch)")
    p.set_defaults(func=run)


def run(args):
    if args.what == "book":
        return run_book(args)
    args.json = True  # a stage's result is JSON, with or without --json (errors too)
    for opt in ("costs", "full"):
        if getattr(args, opt, None):
            from zoa_lib.config import ProfileError
            raise ProfileError(f"zoa bench {args.what}: --{opt} applies to 'book' only")
    if getattr(args, "engine", None):
        if args.what != "sim":
            from zoa_lib.config import ProfileError
            raise ProfileError(f"zoa bench {args.what}: --engine applies to 'sim' only")
        args.overrides = [*args.overrides, f"simulation.engine={args.engine}"]
    prof = profile_from_args(args)
    mod, fn = BENCHMARKS[args.what].split(":")
    with json_output(args):
        result = getattr(importlib.import_module(mod), fn)(prof)
    out = {"benchmark": args.what, "profile": prof.name, "machine": machine(), **result,
           "peak_rss_mib": round(peak_rss_mib(), 1)}
    text = json.dumps(out, indent=2, default=float)
    print(text)
    if args.output:
        from zoa_lib.io.atomic import write_text_atomic
        write_text_atomic(args.output, text + "\n")
    return 0


def _fmt(s) -> str:
    if s is None:
        return "—"
    return f"{s:.0f} s" if s < 120 else f"{s / 60:.1f} min"


def book_table(out: dict) -> str:
    """The text table of ``zoa bench book``: chapter, estimate, measured, ratio, formula."""
    cmp = {r["chapter"]: r for r in (out.get("measured") or {}).get("rows", [])}
    w = max(len(r["chapter"]) for r in out["chapters"])
    lines = [f"zoa bench book --profile {out['profile']}: chapter wall times estimated from unit costs "
             f"{out['costs_source']}, on {out['unit_costs']['machine'].get('cpu_count', '?')} CPU cores",
             f"{'chapter':<{w}}  {'estimate':>9}  {'measured':>9}  {'ratio':>5}  formula"]
    for r in out["chapters"]:
        c = cmp.get(r["chapter"], {})
        ratio = f"{c['ratio']:.2f}" if c.get("ratio") is not None else "—"
        lines.append(f"{r['chapter']:<{w}}  {_fmt(r['seconds']):>9}  {_fmt(c.get('measured')):>9}  {ratio:>5}  "
                     f"{r['formula']}")
    t = cmp.get("total", {})
    n_both = sum(1 for c in cmp.values() if c["chapter"] != "total" and c.get("ratio") is not None)
    partial = "*" if t.get("ratio") is not None and n_both < len(out["chapters"]) else ""
    ratio = f"{t['ratio']:.2f}{partial}" if t.get("ratio") is not None else "—"
    measured_total = _fmt(t.get("measured")) + partial if t.get("ratio") is not None else "—"
    lines.append(f"{'total':<{w}}  {_fmt(out['total_seconds']):>9}  {measured_total:>9}  {ratio:>5}")
    if out.get("measured"):
        lines.append(f"measured: {out['measured']['source']} (the last `zoa run` of each chapter in this data "
                     "folder); ratio = measured / estimate"
                     + (f"; * over the {n_both} chapters measured (their estimate: {_fmt(t.get('estimate'))})"
                        if partial else ""))
    else:
        lines.append("measured: no chapter times in this data folder yet (`zoa run` records them)")
    u = out["per_unit"]
    lines.append(f"per unit: parent box {u['seconds_per_parent_box']:.3g} s, mock {u['seconds_per_mock']:.3g} s, "
                 f"Wiener filter {u['seconds_per_wiener_filter']:.3g} s, POTENT {u['seconds_per_potent']:.3g} s, "
                 f"epoch (one network) {u['seconds_per_epoch']:.3g} s, variant epoch "
                 f"{u['seconds_per_variant_epoch']:.3g} s, prediction {u['seconds_per_prediction']:.3g} s; "
                 f"parallel stages over {u['parallel_processes']} processes")
    if out.get("warnings"):
        lines += [f"warning: {m}" for m in out["warnings"]]
    if out.get("unit_costs_saved"):
        lines.append(f"unit costs saved to {out['unit_costs_saved']} (the landing page's estimates)")
    return "\n".join(lines)


def run_book(args):
    """``zoa bench book``: the chapters' estimated wall times (module docstring)."""
    from zoa_lib.book import estimate as be
    from zoa_lib.book.runner import run_folder
    from zoa_lib.io.atomic import write_json_atomic, write_text_atomic

    if getattr(args, "engine", None):
        from zoa_lib.config import ProfileError
        raise ProfileError("zoa bench book: --engine applies to 'sim' only")
    prof = profile_from_args(args)
    warnings, saved = [], None
    if args.costs:
        costs = be.load_costs(args.costs)
        source = f"from {args.costs} (measured {costs.measured_utc or 'at an unrecorded date'})"
        mismatch = be.size_mismatch(prof, costs)
        if mismatch:
            warnings.append(f"the unit costs were measured at other sizes ({'; '.join(mismatch)}): "
                            "the estimate is not this profile's")
    else:
        log = (lambda m: None) if args.json else (lambda m: print(f"[zoa bench book] measuring: {m}", file=sys.stderr))
        with json_output(args):
            costs = be.measure_unit_costs(prof, quick=not args.full, log=log)
        source = f"measured now ({costs.measuring_seconds:.0f} s)"
        path = be.costs_path(prof)
        try:
            write_json_atomic(path, costs.to_dict())
            saved = str(path)
        except OSError as e:
            warnings.append(f"unit costs not saved to {path} ({e.strerror or e})")
    rows = be.estimate_chapters(prof, costs)
    out = {"benchmark": "book", "profile": prof.name, "machine": machine(), "costs_source": source,
           "unit_costs": costs.to_dict(), "per_unit": be.per_unit(prof, costs),
           "chapters": rows, "total_seconds": be.total_seconds(rows)}
    timings = run_folder(prof) / "timings.json"
    measured = be.read_measured(timings)
    if measured:
        out["measured"] = {"source": str(timings), "rows": be.compare(rows, measured)}
    if warnings:
        out["warnings"] = warnings
    if saved:
        out["unit_costs_saved"] = saved
    text = json.dumps(out, indent=2, default=float)
    print(text if args.json else book_table(out))
    if args.output:
        write_text_atomic(args.output, text + "\n")
    return 0
