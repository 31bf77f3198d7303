"""The ``zoa`` command line: one sub-command per stage of the pipeline.

Each sub-command lives in ``zoa_lib/commands/<name>.py`` with ``register(subparsers)``;
heavy imports (TensorFlow, Dask) happen inside the command, so ``zoa --help`` is quick.
User errors (:class:`zoa_lib.errors.ZoaError`) print one line and exit with status 2;
``--debug`` shows the traceback.
"""
from __future__ import annotations

import argparse
import importlib
import sys

from zoa_lib import __version__
from zoa_lib.errors import ZoaError

#: Sub-commands, in the order of the pipeline.
COMMANDS = ("profile", "mocks", "shards", "train", "variants", "predict", "evaluate", "catalog", "reconstruct",
            "crossval", "run", "book", "bench", "doctor")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="zoa",
        description="Reconstruct cosmic flows through the Zone of Avoidance with a 3D V-Net "
                    "(Dupuy et al. 2025): mocks, training, evaluation and the paper book.",
        epilog="Run 'zoa COMMAND --help' for a command's options. Profiles: ci, laptop "
               "(default), workstation, paper.",
    )
    parser.add_argument("--version", action="version", version=f"zoa {__version__}")
    parser.add_argument("--debug", action="store_true", help="show full tracebacks on errors")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name in COMMANDS:
        try:
            mod = importlib.import_module(f"zoa_lib.commands.{name}")
        except ModuleNotFoundError as e:
            if e.name == f"zoa_lib.commands.{name}":
                continue  # command not built yet
            raise
        mod.register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        result = args.func(args)
    except ZoaError as e:
        if args.debug:
            raise
        print(f"zoa {args.command}: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"zoa {args.command}: interrupted", file=sys.stderr)
        return 130
    return int(result or 0)


if __name__ == "__main__":
    sys.exit(main())
