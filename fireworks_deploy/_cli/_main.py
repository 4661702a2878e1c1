"""The top-level parser and `main`: parse, run the chosen command, map failures to exit codes."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence

from .. import __version__
from .._config import API_KEY_ENV
from .._errors import FireworksError
from . import _deployments, _hotload, _local
from ._args import EPILOG, Commands, Formatter, connection_options
from ._common import EXIT_INTERRUPTED, EXIT_USAGE, Output, exit_code_for

__all__ = ["build_parser", "main"]

# The order of `--help`; each command module defines its commands' flags beside their code.
_COMMANDS = (
    _deployments.add_create,
    _deployments.add_get,
    _deployments.add_list,
    _deployments.add_wait,
    _hotload.add_hotload,
    _hotload.add_hotload_status,
    _hotload.add_warmup,
    _deployments.add_scale_to_zero,
    _deployments.add_delete,
    _local.add_local,
    _local.add_demo,
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="fireworks-deploy",
        description=(
            "Manage Fireworks inference deployments and hot-load weights into them.\n\n"
            "Start with `fireworks-deploy demo`: a whole RL weight-sync loop against an embedded\n"
            "local control plane, no account needed."
        ),
        epilog=EPILOG,
        formatter_class=Formatter,
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    connection_options(parser, suppress=False)
    commands = Commands(parser.add_subparsers(dest="command", metavar="COMMAND", title="commands"))
    for add in _COMMANDS:
        add(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit code (the console script exits with it)."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # --help, --version and usage errors
        return exc.code if isinstance(exc.code, int) else EXIT_USAGE
    out = Output(args, sys.stdout, sys.stderr)
    out.hide(args.api_key or os.environ.get(API_KEY_ENV))
    if args.command is None:
        parser.print_help(sys.stderr)
        return EXIT_USAGE
    try:
        code: int = args.run(args, out)
    except SystemExit as exc:  # a usage error found after parsing
        return exc.code if isinstance(exc.code, int) else EXIT_USAGE
    except FireworksError as exc:
        out.error(str(exc))
        return exit_code_for(exc)
    except KeyboardInterrupt:
        out.error("interrupted")
        return EXIT_INTERRUPTED
    return code
