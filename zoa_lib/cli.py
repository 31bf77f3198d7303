"""The ``zoa`` command line: one sub-command per stage of the pipeline.

Each sub-command lives in ``zoa_lib/commands/<name>.py`` with ``register(subparsers)``;
heavy imports (TensorFlow, Dask) happen inside the command, so ``zoa --help`` is quick.
User errors (:class:`zoa_lib.errors.ZoaError`) print one line and exit with status 2;
``--debug`` shows the traceback. With ``--json`` stdout holds one JSON document: the result, or
``{"error": ..., "command": ...}`` beside that line.
"""
from __future__ import annotations

import argparse
import importlib
import json
import logging
import sys

from zoa_lib import __version__
from zoa_lib.errors import ZoaError

#: Sub-commands, in the order of the pipeline.
COMMANDS = ("profile", "mocks", "shards", "train", "variants", "predict", "evaluate", "catalog", "reconstruct",
            "crossval", "run", "book", "bench", "doctor")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="zoa",
        description="Reconstruct cosmic flows through the Zone of Avoidance with a 3D V-Net\n"
                    "(Dupuy et al. 2025): mocks, training, evaluation and the paper book.",
        epilog="options every command spells the same way:\n"
               "  --profile NAME        ci, laptop (the default), workstation, paper, or a YAML path\n"
               "  -p, --set KEY=VALUE   override a profile key (repeatable)\n"
               "  -o, --output PATH     the file a command writes (zoa book: the folder)\n"
               "  --json                a command's result as one JSON document on stdout\n"
               "\n"
               "examples:\n"
               "  zoa doctor\n"
               "  zoa run --profile ci && zoa book\n"
               "  zoa reconstruct data/cf3-group-members.tsv -o cf3.h5\n"
               "\n"
               "Run 'zoa COMMAND --help' for a command's options and examples.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"zoa {__version__}")
    parser.add_argument("--debug", action="store_true", help="show full tracebacks on errors and debug log messages on stderr")
    parser.add_argument("-v", "--verbose", action="store_true", help="show progress messages (INFO log) on stderr")
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


class StderrHandler(logging.StreamHandler):
    """A :class:`logging.StreamHandler` on ``sys.stderr`` as it is when a message is written, not
    when the handler was made: ``zoa run`` points native code's file descriptor 2 at the kernel
    logs and gives Python a new ``sys.stderr`` on the console meanwhile; test capture swaps it too."""

    def __init__(self):
        logging.Handler.__init__(self)  # no stream of its own: the property below

    @property
    def stream(self):
        return sys.stderr


def configure_logging(verbose: bool = False, debug: bool = False) -> logging.Handler:
    """The one log handler, set up by the CLI only (the library adds none): the ``zoa_lib``
    loggers' messages as they are (``%(message)s``) on stderr, from WARNING by default, INFO
    with ``--verbose``, DEBUG with ``--debug``. Replaces the handler of an earlier call."""
    lib = logging.getLogger("zoa_lib")
    for old in [h for h in lib.handlers if isinstance(h, StderrHandler)]:
        lib.removeHandler(old)
    handler = StderrHandler()
    handler.setFormatter(logging.Formatter("%(message)s"))
    lib.addHandler(handler)
    lib.setLevel(logging.DEBUG if debug else logging.INFO if verbose else logging.WARNING)
    return handler


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    configure_logging(verbose=args.verbose, debug=args.debug)
    try:
        result = args.func(args)
    except ZoaError as e:
        if args.debug:
            raise
        if getattr(args, "json", False) and not getattr(args, "json_printed", False):
            print(json.dumps({"error": str(e), "command": f"zoa {args.command}"}))  # --json: stdout is JSON
        print(f"zoa {args.command}: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"zoa {args.command}: interrupted", file=sys.stderr)
        return 130
    return int(result or 0)


if __name__ == "__main__":
    sys.exit(main())
