"""Parser plumbing: argument types, the shared connection flags, and how a command is added."""

from __future__ import annotations

import argparse
import math
import sys
from typing import Any, NoReturn

from .._config import ACCOUNT_ID_ENV, API_KEY_ENV, DEFAULT_BASE_URL
from ._common import (
    BASE_URL_ENV,
    EXIT_CODES,
    HOTLOAD_API_URL_ENV,
    INFERENCE_URL_ENV,
    Runner,
    UsageError,
)

__all__ = [
    "EPILOG",
    "Commands",
    "Formatter",
    "Parser",
    "connection_options",
    "duration",
    "fault_spec",
    "non_negative_int",
    "positive_int",
    "positive_seconds",
]

EPILOG = (
    "environment:\n"
    f"  {API_KEY_ENV}        API key (--api-key); never printed\n"
    f"  {ACCOUNT_ID_ENV}     account id (--account-id); resolved from the key if unset\n"
    f"  {BASE_URL_ENV}       control plane URL (--base-url), default {DEFAULT_BASE_URL}\n"
    f"  {INFERENCE_URL_ENV}  completions gateway URL (--inference-url), default base URL\n"
    f"  {HOTLOAD_API_URL_ENV} hot-load gateway URL (--hotload-api-url), default base URL\n"
    "\nexit codes:\n"
    + "".join(f"  {code:<3} {text}\n" for code, text in EXIT_CODES.items())
    + "  On several deployments: the code their failures share, else 4. With --json, a\n"
    '  failure is one document on stdout: {"error": {"type", "message", "exit_code", ...}}.\n'
)


# -- argument types ----------------------------------------------------------------------------


def positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return value


def non_negative_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer >= 0, got {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected an integer >= 0, got {text!r}")
    return value


def _seconds(text: str, *, allow_zero: bool = False) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number of seconds, got {text!r}") from None
    if not math.isfinite(value) or value < 0:
        raise argparse.ArgumentTypeError(f"expected a finite number of seconds, got {text!r}")
    if value == 0 and not allow_zero:
        raise argparse.ArgumentTypeError(f"expected a positive number of seconds, got {text!r}")
    return value


def positive_seconds(text: str) -> float:
    return _seconds(text)


def duration(text: str) -> float:
    return _seconds(text, allow_zero=True)


def fault_spec(text: str) -> Any:
    try:
        from ..local import Fault  # noqa: PLC0415 - the local extra is optional
    except ImportError as exc:
        raise argparse.ArgumentTypeError(
            f"--fault needs the local control plane: pip install 'fireworks-deploy[local]' ({exc})"
        ) from None
    try:
        return Fault.parse(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


# -- parsers -----------------------------------------------------------------------------------


class Parser(argparse.ArgumentParser):
    """An `ArgumentParser` whose usage errors raise `UsageError` instead of exiting, so that
    `main` can report them like any other failure (as JSON too, under `--json`)."""

    def error(self, message: str) -> NoReturn:
        self.print_usage(sys.stderr)
        raise UsageError(self.prog, message)


class Formatter(argparse.RawDescriptionHelpFormatter):
    def __init__(self, prog: str) -> None:
        super().__init__(prog, max_help_position=34)


def connection_options(parser: argparse.ArgumentParser, *, suppress: bool) -> None:
    """Flags accepted before and after the command; a command's own value wins."""
    default: Any = argparse.SUPPRESS if suppress else None
    group = parser.add_argument_group("connection and output")
    group.add_argument(
        "--api-key", metavar="KEY", default=default, help=f"API key (default: ${API_KEY_ENV})"
    )
    group.add_argument(
        "--account-id",
        metavar="ID",
        default=default,
        help=f"account id (default: ${ACCOUNT_ID_ENV}, else resolved from the key)",
    )
    group.add_argument(
        "--base-url",
        metavar="URL",
        default=default,
        help=f"control plane URL (default: ${BASE_URL_ENV} or {DEFAULT_BASE_URL})",
    )
    group.add_argument(
        "--inference-url",
        metavar="URL",
        default=default,
        help=f"completions gateway (default: ${INFERENCE_URL_ENV} or the base URL)",
    )
    group.add_argument(
        "--hotload-api-url",
        metavar="URL",
        default=default,
        help=f"hot-load gateway (default: ${HOTLOAD_API_URL_ENV} or the base URL)",
    )
    group.add_argument(
        "--timeout",
        metavar="SECONDS",
        type=positive_seconds,
        default=default,
        help="deadline of the whole operation, retries and waits included",
    )
    group.add_argument(
        "--json",
        action="store_true",
        default=argparse.SUPPRESS if suppress else False,
        help="print one JSON document on stdout instead of text",
    )
    group.add_argument(
        "-q",
        "--quiet",
        action="store_true",
        default=argparse.SUPPRESS if suppress else False,
        help="no progress display (results and errors are still printed)",
    )


class Commands:
    """The `COMMAND` choices of the top-level parser; each command module adds its own."""

    def __init__(self, subparsers: argparse._SubParsersAction[Parser]) -> None:
        self.subparsers = subparsers

    def add(
        self, name: str, help_text: str, description: str | None = None, *, run: Runner
    ) -> argparse.ArgumentParser:
        """A command that takes the connection flags and documents the environment."""
        sub = self.subparsers.add_parser(
            name,
            help=help_text,
            description=description or help_text,
            epilog=EPILOG,
            formatter_class=Formatter,
        )
        connection_options(sub, suppress=True)
        sub.set_defaults(run=run)
        return sub
