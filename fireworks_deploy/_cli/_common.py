"""What every command runs on: exit codes, output (text or `--json`), the manager it talks to."""

from __future__ import annotations

import argparse
import json
import os
import traceback
from collections.abc import Awaitable, Callable, Sequence
from functools import partial
from typing import Any, TextIO

import anyio
import attrs

from .._config import API_KEY_ENV, DEFAULT_BASE_URL, Timeouts
from .._errors import (
    APIConnectionError,
    APIStatusError,
    DeploymentNotFoundError,
    FireworksError,
    FleetError,
    InvalidConfigError,
    NotFoundError,
    OperationError,
    ResponseValidationError,
    WaitTimeoutError,
    redact_text,
)
from .._fleet import FleetResult
from .._manager import AsyncDeploymentManager
from .._progress import Progress
from ._format import error_json, failure_label, fleet_json, one_line

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
    "UsageError",
    "env",
    "exit_code_for",
    "explain",
    "explained",
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
    EXIT_ERROR: "unexpected error: a bug (the traceback is printed; please report it)",
    EXIT_USAGE: "usage error: bad arguments, no API key, missing optional extra, invalid input",
    EXIT_NOT_FOUND: "the deployment does not exist",
    EXIT_FAILED: "the operation failed: deployment FAILED, hot-load error, warm-up, HTTP error",
    EXIT_TIMEOUT: "a wait reached its --timeout",
    EXIT_CONNECTION: "no usable answer: server unreachable, or not the Fireworks API "
    "(check --base-url)",
    EXIT_INTERRUPTED: "interrupted (Ctrl-C)",
}


class CommandNotFoundError(DeploymentNotFoundError):
    """The deployment a command names does not exist (exit code 3), in the CLI's words."""

    def __init__(self, message: str, *, deployment_id: str) -> None:
        super().__init__(message, deployment_id=deployment_id, state=None)


class UsageError(Exception):
    """Bad arguments (exit code 2): what argparse would have printed before exiting."""

    def __init__(self, prog: str, message: str) -> None:
        super().__init__(message)
        self.prog = prog
        self.message = message


def exit_code_for(error: BaseException) -> int:
    """The documented exit code of an expected failure."""
    if isinstance(error, FleetError):
        codes = {exit_code_for(e) for e in error.result.failed.values()}
        return codes.pop() if len(codes) == 1 else EXIT_FAILED
    if isinstance(error, (NotFoundError, DeploymentNotFoundError)):
        return EXIT_NOT_FOUND
    if isinstance(error, WaitTimeoutError):
        return EXIT_TIMEOUT
    if isinstance(error, (APIConnectionError, ResponseValidationError)):
        return EXIT_CONNECTION
    if isinstance(error, InvalidConfigError):
        return EXIT_USAGE
    if isinstance(error, (OperationError, APIStatusError)):
        return EXIT_FAILED
    return EXIT_FAILED if isinstance(error, FireworksError) else EXIT_ERROR


class Output:
    """Where results (stdout) and errors (stderr) go; keeps the API key out of both.

    With `--json`, stdout carries exactly one JSON document: the result, or
    `{"error": {"type", "message", "exit_code", ...}}` when the command fails (the `error:`
    line is printed on stderr too). Notices (retries, warnings) go to stderr, through the live
    progress display while one is open.
    """

    def __init__(
        self, stdout: TextIO, stderr: TextIO, *, json: bool = False, quiet: bool = False
    ) -> None:
        self.json = json
        self.quiet = quiet
        self.stdout = stdout
        self.stderr = stderr
        self.documented = False
        self._secrets: list[str] = []
        self._progress: Progress | None = None

    def hide(self, secret: str | None) -> None:
        """Never print `secret` (the API key, from the flag or the environment)."""
        if secret and secret.strip() and secret.strip() not in self._secrets:
            self._secrets.append(secret.strip())

    def scrub(self, text: str) -> str:
        for secret in self._secrets:
            text = redact_text(text, secret)
        return text

    def text(self, text: str) -> None:
        self.stdout.write(self.scrub(text if text.endswith("\n") else text + "\n"))
        self.stdout.flush()

    def document(self, data: Any) -> None:
        """The one JSON document of `--json`."""
        self.documented = True
        self.stdout.write(self.scrub(json.dumps(data, indent=2)) + "\n")
        self.stdout.flush()

    def result(self, data: Any, human: str) -> None:
        if self.json:
            self.document(data)
        else:
            self.text(human)

    def error(self, message: str) -> None:
        self.stderr.write(f"error: {one_line(self.scrub(message))}\n")
        self.stderr.flush()

    def failed(self, error: BaseException, code: int | None = None) -> int:
        """Report a failure: its `error:` line, and its document under `--json`."""
        code = exit_code_for(error) if code is None else code
        self.error(str(error))
        self.error_document(error_json(error), code)
        return code

    def error_document(self, doc: dict[str, Any], code: int) -> None:
        """Under `--json`, the failure as the one document (unless a result was printed)."""
        if self.json and not self.documented:
            self.document({"error": {**doc, "exit_code": code}})

    def notice(self, text: str, *, warning: bool = False) -> None:
        """A line for the person waiting (a retry, a warning); `--quiet` keeps only warnings."""
        if self.quiet and not warning:
            return
        text = one_line(self.scrub(text))
        progress = self._progress
        if progress is not None and progress.open and progress.enabled:
            progress.log(text)
        else:
            self.stderr.write(text + "\n")
            self.stderr.flush()

    def attach(self, progress: Progress) -> Progress:
        """Send notices through `progress` while it is open (it owns the terminal then)."""
        self._progress = progress
        return progress

    def progress(self, title: str = "") -> Progress:
        """Live progress on stderr (stdout keeps only the result)."""
        return self.attach(Progress(self.stderr, enabled=not self.quiet, title=title))

    def crashed(self, error: BaseException) -> int:
        """An unexpected exception (a bug): its traceback, a line that says so, exit code 1."""
        self.stderr.write(self.scrub(traceback.format_exc()))
        self.error(
            f"unexpected {type(error).__name__}: {error}. This is a bug in fireworks-deploy: "
            "please report it with the traceback above."
        )
        self.error_document(error_json(error), EXIT_ERROR)
        return EXIT_ERROR


# -- the manager -------------------------------------------------------------------------------


def env(value: str | None, name: str) -> str | None:
    """The flag's value, else the environment variable's (blank counts as unset)."""
    if value is not None:
        return value
    found = os.environ.get(name)
    return found if found and found.strip() else None


def make_manager(args: argparse.Namespace, **kwargs: Any) -> AsyncDeploymentManager:
    """The one manager of an invocation, from the connection flags and the environment."""
    if args.api_key is not None and not args.api_key.strip():
        raise InvalidConfigError(f"--api-key is empty: pass the key, or set {API_KEY_ENV}.")
    if args.api_key is None and env(None, API_KEY_ENV) is None:
        raise InvalidConfigError(
            f"No API key: pass --api-key KEY or set {API_KEY_ENV}. For a local control plane "
            "(`fireworks-deploy local serve`) any non-empty key works."
        )
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
            try:
                return await handler(manager, args, out)
            except FireworksError as exc:
                explained = await explain(manager, exc)
                if explained is exc:
                    raise
                raise explained from exc

    return anyio.run(run)


def managed(handler: Handler) -> Runner:
    """Run `handler` once, in `anyio.run`, with a manager opened and closed around it."""
    return partial(with_manager, handler)


# -- shared by several commands ----------------------------------------------------------------


async def not_found(
    manager: AsyncDeploymentManager, deployment_id: str, *, create: bool = False
) -> str:
    """`Deployment 'x' does not exist in account 'y'; ...` with the command that helps."""
    try:
        account = await manager.resolve_account_id()
    except FireworksError:  # the 404 is the news; the account is only context
        where = ""
    else:
        where = f" in account {account!r}"
    fix = (
        f"create it with `fireworks-deploy create {deployment_id} --base-model MODEL`, or see "
        "`fireworks-deploy list`."
        if create
        else "see `fireworks-deploy list`."
    )
    return f"Deployment {deployment_id!r} does not exist{where}; {fix}"


async def explain(manager: AsyncDeploymentManager, error: Exception) -> Exception:
    """`error` in the CLI's words: the SDK names its own methods, the CLI names commands."""
    if isinstance(error, DeploymentNotFoundError) and not isinstance(error, CommandNotFoundError):
        message = await not_found(manager, error.deployment_id, create=True)
        return CommandNotFoundError(message, deployment_id=error.deployment_id)
    return error


async def explained(manager: AsyncDeploymentManager, result: FleetResult[Any]) -> FleetResult[Any]:
    """`result` with each failure `explain`ed."""
    outcomes = [
        o if o.error is None else attrs.evolve(o, error=await explain(manager, o.error))
        for o in result.outcomes
    ]
    return attrs.evolve(result, outcomes=tuple(outcomes))


def unique(ids: Sequence[str]) -> list[str]:
    return list(dict.fromkeys(ids))


def fleet_out(
    out: Output,
    result: FleetResult[Any],
    as_json: Callable[[Any], Any],
    as_text: Callable[[Any], str],
) -> int:
    """Print one line (or JSON outcome) per deployment; the exit code of the failures.

    A failure reads `ID: LABEL: message` (`FAILED`, `TIMED OUT`, `NOT FOUND`).
    """
    lines = [
        f"{o.deployment_id}: "
        + (as_text(o.value) if o.error is None else f"{failure_label(o.error)}: {o.error}")
        for o in result
    ]
    out.result(fleet_json(result, as_json), "\n".join(lines))
    if result.ok:
        return EXIT_OK
    codes = {exit_code_for(e) for e in result.failed.values()}
    return codes.pop() if len(codes) == 1 else EXIT_FAILED
