"""The top-level parser and `main`: parse, run the chosen command, map failures to exit codes."""

from __future__ import annotations

import argparse
import itertools
import os
import sys
from collections.abc import Sequence

from .. import __version__
from .._config import API_KEY_ENV
from .._errors import FireworksError
from . import _deployments, _hotload, _local
from ._args import EPILOG, Commands, Formatter, Parser, connection_options
from ._common import EXIT_INTERRUPTED, EXIT_USAGE, Output, UsageError
from ._notices import notices

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
    parser = Parser(
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


def _wants_json(argv: Sequence[str]) -> bool:
    """Whether `--json` was asked for, judged before (or without) a successful parse."""
    options = argv[: argv.index("--")] if "--" in argv else argv
    return "--json" in options


def _api_keys(argv: Sequence[str]) -> list[str]:
    """Every value given to `--api-key` (so that even a usage error never prints one)."""
    keys = [value for flag, value in itertools.pairwise(argv) if flag == "--api-key"]
    return keys + [a.split("=", 1)[1] for a in argv if a.startswith("--api-key=")]


def _usage_error(out: Output, error: UsageError) -> int:
    """argparse's `PROG: error: MESSAGE` on stderr (the usage line is printed already)."""
    out.stderr.write(f"{error.prog}: error: {out.scrub(error.message)}\n")
    out.stderr.flush()
    out.error_document({"type": "UsageError", "message": out.scrub(error.message)}, EXIT_USAGE)
    return EXIT_USAGE


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit code (the console script exits with it).

    Every failure ends as one `error:` line on stderr (and, under `--json`, one
    `{"error": {...}}` document on stdout) with a documented exit code; only a bug (exit code
    1) prints a traceback. While a command runs, the SDK's retries and warnings are shown on
    stderr as they happen.
    """
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    out = Output(sys.stdout, sys.stderr, json=_wants_json(argv))
    for secret in (os.environ.get(API_KEY_ENV), *_api_keys(argv)):
        out.hide(secret)
    try:
        args = parser.parse_args(argv)
    except UsageError as exc:
        return _usage_error(out, exc)
    except SystemExit as exc:  # --help and --version
        return exc.code if isinstance(exc.code, int) else EXIT_USAGE
    out.json = bool(getattr(args, "json", False))
    out.quiet = bool(getattr(args, "quiet", False))
    out.hide(args.api_key)
    if args.command is None:
        parser.print_help(sys.stderr)
        return _usage_error(out, UsageError(parser.prog, "choose a command"))
    try:
        with notices(out):
            code: int = args.run(args, out)
    except UsageError as exc:  # found after parsing (e.g. `local` without a command)
        return _usage_error(out, exc)
    except SystemExit as exc:
        return exc.code if isinstance(exc.code, int) else EXIT_USAGE
    except FireworksError as exc:
        return out.failed(exc)
    except KeyboardInterrupt:
        out.error("interrupted")
        out.error_document(
            {"type": "KeyboardInterrupt", "message": "interrupted"}, EXIT_INTERRUPTED
        )
        return EXIT_INTERRUPTED
    except Exception as exc:  # a bug: reported (traceback included) as exit code 1
        return out.crashed(exc)
    return code
