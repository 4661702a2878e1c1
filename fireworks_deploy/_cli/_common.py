"""What every command runs on: exit codes, output (text or `--json`), the manager it talks to."""

from __future__ import annotations

import argparse
import json
import os
from collections.abc import Awaitable, Callable, Sequence
from functools import partial
from typing import Any, TextIO

import anyio

from .._config import DEFAULT_BASE_URL, Timeouts
from .._errors import (
    APIConnectionError,
    APIStatusError,
    DeploymentNotFoundError,
    FireworksError,
    FleetError,
    InvalidConfigError,
    NotFoundError,
    OperationError,
    WaitTimeoutError,
)
from .._fleet import FleetResult
from .._manager import AsyncDeploymentManager
from .._progress import Progress
from ._format import fleet_json

__all__ = [
    "BASE_URL_ENV",
    "EXIT_CODES",
    "EXIT_CONNECTION",
    "EXIT_ERROR",
    "EXIT_FAILED",
    "EXIT_INTERRUPTED",
    "EXIT_NOT_FOUND",
    "EXIT_OK",
    "EXIT_TIMEOUT",
    "EXIT_USAGE",
    "HOTLOAD_API_URL_ENV",
    "INFERENCE_URL_ENV",
    "CommandNotFoundError",
    "Handler",
    "Output",
    "Runner",
    "env",
    "exit_code_for",
    "fleet_out",
    "make_manager",
    "managed",
    "not_found",
    "unique",
    "with_manager",
]

BASE_URL_ENV = "FIREWORKS_BASE_URL"
INFERENCE_URL_ENV = "FIREWORKS_INFERENCE_URL"
HOTLOAD_API_URL_ENV = "FIREWORKS_HOTLOAD_API_URL"

EXIT_OK = 0
EXIT_ERROR = 1
EXIT_USAGE = 2
EXIT_NOT_FOUND = 3
EXIT_FAILED = 4
EXIT_TIMEOUT = 5
EXIT_CONNECTION = 6
EXIT_INTERRUPTED = 130

EXIT_CODES = {
    EXIT_OK: "success",
    EXIT_ERROR: "unexpected error",
    EXIT_USAGE: "usage error (bad arguments, missing API key, invalid input)",
    EXIT_NOT_FOUND: "the deployment does not exist",
    EXIT_FAILED: "the operation failed (deployment FAILED, hot-load error, warm-up, HTTP error)",
    EXIT_TIMEOUT: "a wait reached its --timeout",
    EXIT_CONNECTION: "the server could not be reached",
    EXIT_INTERRUPTED: "interrupted (Ctrl-C)",
}


class CommandNotFoundError(FireworksError):
    """The CLI looked for something that is not there (exit code 3)."""


def exit_code_for(error: BaseException) -> int:
    """The documented exit code of an expected failure."""
    if isinstance(error, FleetError):
        codes = {exit_code_for(e) for e in error.result.failed.values()}
        return codes.pop() if len(codes) == 1 else EXIT_FAILED
    if isinstance(error, (NotFoundError, DeploymentNotFoundError, CommandNotFoundError)):
        return EXIT_NOT_FOUND
    if isinstance(error, WaitTimeoutError):
        return EXIT_TIMEOUT
    if isinstance(error, APIConnectionError):
        return EXIT_CONNECTION
    if isinstance(error, InvalidConfigError):
        return EXIT_USAGE
    if isinstance(error, (OperationError, APIStatusError)):
        return EXIT_FAILED
    return EXIT_FAILED if isinstance(error, FireworksError) else EXIT_ERROR


class Output:
    """Where results (stdout) and errors (stderr) go; scrubs the API key from both."""

    def __init__(self, args: argparse.Namespace, stdout: TextIO, stderr: TextIO) -> None:
        self.json = bool(getattr(args, "json", False))
        self.quiet = bool(getattr(args, "quiet", False))
        self.stdout = stdout
        self.stderr = stderr
        self._secret: str | None = None

    def hide(self, secret: str | None) -> None:
        if secret and secret.strip():
            self._secret = secret.strip()

    def scrub(self, text: str) -> str:
        return text.replace(self._secret, "***") if self._secret else text

    def text(self, text: str) -> None:
        self.stdout.write(self.scrub(text if text.endswith("\n") else text + "\n"))
        self.stdout.flush()

    def document(self, data: Any) -> None:
        """The one JSON document of `--json`."""
        self.stdout.write(self.scrub(json.dumps(data, indent=2)) + "\n")
        self.stdout.flush()

    def result(self, data: Any, human: str) -> None:
        if self.json:
            self.document(data)
        else:
            self.text(human)

    def error(self, message: str) -> None:
        line = " ".join(self.scrub(message).split())
        self.stderr.write(f"error: {line}\n")
        self.stderr.flush()

    def progress(self, title: str = "") -> Progress:
        """Live progress on stderr (stdout keeps only the result)."""
        return Progress(self.stderr, enabled=not self.quiet, title=title)


# -- the manager -------------------------------------------------------------------------------


def env(value: str | None, name: str) -> str | None:
    """The flag's value, else the environment variable's (blank counts as unset)."""
    if value is not None:
        return value
    found = os.environ.get(name)
    return found if found and found.strip() else None


def make_manager(args: argparse.Namespace, **kwargs: Any) -> AsyncDeploymentManager:
    """The one manager of an invocation, from the connection flags and the environment."""
    timeouts = Timeouts(operation_s=args.timeout) if args.timeout is not None else None
    return AsyncDeploymentManager(
        api_key=args.api_key,
        account_id=args.account_id,
        base_url=env(args.base_url, BASE_URL_ENV) or DEFAULT_BASE_URL,
        inference_url=env(args.inference_url, INFERENCE_URL_ENV),
        hotload_api_url=env(args.hotload_api_url, HOTLOAD_API_URL_ENV),
        timeouts=timeouts,
        **kwargs,
    )


Runner = Callable[[argparse.Namespace, Output], int]
"""What a command runs (its parser's `run` default); returns the exit code."""

Handler = Callable[[AsyncDeploymentManager, argparse.Namespace, Output], Awaitable[int]]
"""A command's async body, given the invocation's manager."""


def with_manager(handler: Handler, args: argparse.Namespace, out: Output) -> int:
    async def run() -> int:
        async with make_manager(args) as manager:
            return await handler(manager, args, out)

    return anyio.run(run)


def managed(handler: Handler) -> Runner:
    """Run `handler` once, in `anyio.run`, with a manager opened and closed around it."""
    return partial(with_manager, handler)


# -- shared by several commands ----------------------------------------------------------------


async def not_found(manager: AsyncDeploymentManager, deployment_id: str) -> str:
    account = await manager.resolve_account_id()
    return (
        f"Deployment {deployment_id!r} does not exist in account {account!r}; "
        "see `fireworks-deploy list`."
    )


def unique(ids: Sequence[str]) -> list[str]:
    return list(dict.fromkeys(ids))


def fleet_out(
    out: Output,
    result: FleetResult[Any],
    as_json: Callable[[Any], Any],
    as_text: Callable[[Any], str],
) -> int:
    """Print one line (or JSON outcome) per deployment; the exit code of the failures."""
    lines = [
        f"{o.deployment_id}: " + (as_text(o.value) if o.error is None else f"FAILED: {o.error}")
        for o in result
    ]
    out.result(fleet_json(result, as_json), "\n".join(lines))
    if result.ok:
        return EXIT_OK
    codes = {exit_code_for(e) for e in result.failed.values()}
    return codes.pop() if len(codes) == 1 else EXIT_FAILED
