"""The `fireworks-deploy` command line (also `python -m fireworks_deploy`).

argparse only; rich (the optional `cli` extra) draws live progress when it is installed and the
output is a terminal. Every command runs the async core once, through `anyio.run`, with one
manager per invocation. Expected failures (every `FireworksError`) end as one `error: ...` line
on stderr and a documented exit code, never a traceback; the API key is never printed.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
from collections.abc import Awaitable, Callable, Sequence
from functools import partial
from typing import Any, NoReturn, TextIO

import anyio

from . import __version__
from ._cli_fmt import (
    deployment_json,
    deployment_text,
    deployments_table,
    fleet_json,
    hotload_status_json,
    hotload_status_text,
    warmup_json,
)
from ._config import ACCOUNT_ID_ENV, API_KEY_ENV, DEFAULT_BASE_URL, Timeouts, resolve_api_key
from ._errors import (
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
from ._fleet import FleetResult
from ._manager import AsyncDeploymentManager
from ._models import (
    CHECKSUM_FORMATS,
    COMPRESSION_FORMATS,
    DeploymentConfig,
    DeploymentInfo,
    HotloadStatus,
    IncrementalSnapshotMetadata,
)
from ._progress import Progress, displaying, watch_deployments, watch_hotloads

__all__ = ["EXIT_CODES", "build_parser", "exit_code_for", "main"]

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

_EPILOG = (
    "environment:\n"
    f"  {API_KEY_ENV}        API key (--api-key); never printed\n"
    f"  {ACCOUNT_ID_ENV}     account id (--account-id); resolved from the key if unset\n"
    f"  {BASE_URL_ENV}       control plane URL (--base-url), default {DEFAULT_BASE_URL}\n"
    f"  {INFERENCE_URL_ENV}  completions gateway URL (--inference-url), default base URL\n"
    f"  {HOTLOAD_API_URL_ENV} hot-load gateway URL (--hotload-api-url), default base URL\n"
    "\nexit codes:\n" + "".join(f"  {code:<3} {text}\n" for code, text in EXIT_CODES.items())
)


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


# -- argument parsing --------------------------------------------------------------------------


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return value


def _non_negative_int(text: str) -> int:
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


def _positive_seconds(text: str) -> float:
    return _seconds(text)


def _duration(text: str) -> float:
    return _seconds(text, allow_zero=True)


def _fault_spec(text: str) -> Any:
    try:
        from .local import Fault  # noqa: PLC0415 - the local extra is optional
    except ImportError as exc:
        raise argparse.ArgumentTypeError(
            f"--fault needs the local control plane: pip install 'fireworks-deploy[local]' ({exc})"
        ) from None
    try:
        return Fault.parse(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


class _Formatter(argparse.RawDescriptionHelpFormatter):
    def __init__(self, prog: str) -> None:
        super().__init__(prog, max_help_position=34)


def _connection_options(parser: argparse.ArgumentParser, *, suppress: bool) -> None:
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
        type=_positive_seconds,
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


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="fireworks-deploy",
        description=(
            "Manage Fireworks inference deployments and hot-load weights into them.\n\n"
            "Start with `fireworks-deploy demo`: a whole RL weight-sync loop against an embedded\n"
            "local control plane, no account needed."
        ),
        epilog=_EPILOG,
        formatter_class=_Formatter,
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    _connection_options(parser, suppress=False)
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", title="commands")

    def command(name: str, help_text: str, description: str | None = None) -> Any:
        sub = commands.add_parser(
            name,
            help=help_text,
            description=description or help_text,
            epilog=_EPILOG,
            formatter_class=_Formatter,
        )
        _connection_options(sub, suppress=True)
        return sub

    # create
    sub = command(
        "create",
        "create a deployment (or show the existing one)",
        "Create a deployment, or return it unchanged if it exists and is healthy (a FAILED or\n"
        "deleted one is replaced). With --wait, also wait until it serves.",
    )
    sub.add_argument("deployment_id", metavar="DEPLOYMENT_ID")
    sub.add_argument("--base-model", required=True, metavar="MODEL", help="e.g. accounts/...")
    sub.add_argument(
        "--replicas", type=_non_negative_int, metavar="N", help="min and max replica count"
    )
    sub.add_argument("--min-replicas", type=_non_negative_int, metavar="N", help="default 0")
    sub.add_argument("--max-replicas", type=_non_negative_int, metavar="N", help="default 1")
    sub.add_argument("--accelerator-type", metavar="TYPE", help="default NVIDIA_H200_141GB")
    sub.add_argument("--shape", metavar="SHAPE", help="deployment shape (version)")
    sub.add_argument("--region", metavar="REGION")
    sub.add_argument("--description", metavar="TEXT")
    sub.add_argument("--hot-load-trainer-job", metavar="NAME")
    sub.add_argument("--hot-load-bucket-type", metavar="TYPE", help="default FW_HOSTED")
    sub.add_argument(
        "--transition-type", choices=["ASYNC", "SYNC"], help="hot-load transition type"
    )
    sub.add_argument("--no-hot-load", action="store_true", help="create without hot-loading")
    sub.add_argument("--for-training", action="store_true")
    sub.add_argument(
        "--force-recreate", action="store_true", help="delete and recreate if it exists"
    )
    sub.add_argument("--wait", action="store_true", help="wait until it serves")
    sub.add_argument("--poll-interval", type=_positive_seconds, default=15.0, metavar="SECONDS")
    sub.set_defaults(run=_cmd_create)

    # get
    sub = command("get", "show one deployment")
    sub.add_argument("deployment_id", metavar="DEPLOYMENT_ID")
    sub.set_defaults(run=_cmd_get)

    # list
    sub = command("list", "list the account's deployments")
    sub.set_defaults(run=_cmd_list)

    # wait
    sub = command(
        "wait",
        "wait until deployments serve",
        "Wait until every named deployment serves (READY, or CREATING and answering a probe),\n"
        "under one deadline (--timeout, default 600 s), with live progress.",
    )
    sub.add_argument("deployment_ids", nargs="+", metavar="DEPLOYMENT_ID")
    sub.add_argument("--poll-interval", type=_positive_seconds, default=15.0, metavar="SECONDS")
    sub.set_defaults(run=_cmd_wait)

    # hotload
    sub = command(
        "hotload",
        "hot-load a snapshot (base or delta)",
        "Hot-load a snapshot into one or more deployments and (unless --no-wait) wait until\n"
        "every replica serves it, with each replica's stage shown live. Without --previous it\n"
        "is a full (base) snapshot; with --previous it is a delta against that snapshot, which\n"
        "must be the one the deployment serves (the last one successfully hot-loaded).",
    )
    sub.add_argument("deployment_ids", nargs="+", metavar="DEPLOYMENT_ID")
    sub.add_argument(
        "--snapshot",
        "--identity",
        dest="snapshot",
        required=True,
        metavar="IDENTITY",
        help="the snapshot identity to load",
    )
    sub.add_argument(
        "--base-model", metavar="MODEL", help="the deployment's base model (default: read it)"
    )
    sub.add_argument(
        "--previous", metavar="IDENTITY", help="make it a delta against this served snapshot"
    )
    sub.add_argument(
        "--compression-format",
        choices=sorted(COMPRESSION_FORMATS),
        help="delta compression (default arc_v2; needs --previous)",
    )
    sub.add_argument(
        "--checksum-format",
        choices=sorted(CHECKSUM_FORMATS),
        help="delta checksum (default alder32, sic; needs --previous)",
    )
    sub.add_argument("--no-reset-prompt-cache", action="store_true")
    sub.add_argument("--path", metavar="URL", help="hot-load source URL (one deployment only)")
    sub.add_argument("--cmek-resource", metavar="NAME", help="CMEK key (one deployment only)")
    sub.add_argument("--no-wait", action="store_true", help="send the request and return")
    sub.add_argument("--poll-interval", type=_positive_seconds, default=5.0, metavar="SECONDS")
    sub.set_defaults(run=_cmd_hotload)

    # hotload-status
    sub = command("hotload-status", "show each replica's hot-load state")
    sub.add_argument("deployment_id", metavar="DEPLOYMENT_ID")
    sub.add_argument(
        "--base-model", metavar="MODEL", help="the deployment's base model (default: read it)"
    )
    sub.add_argument(
        "--snapshot", metavar="IDENTITY", help="also say whether every replica serves it"
    )
    sub.set_defaults(run=_cmd_hotload_status)

    # warmup
    sub = command(
        "warmup",
        "send completions until one succeeds",
        "Send warm-up completions to the deployment until one answers 200.",
    )
    sub.add_argument("deployment_id", metavar="DEPLOYMENT_ID")
    sub.add_argument(
        "--model", metavar="MODEL", help="model string (default accounts/ACCOUNT/deployments/ID)"
    )
    sub.add_argument("--max-retries", type=_positive_int, default=30, metavar="N")
    sub.add_argument("--retry-interval", type=_duration, default=10.0, metavar="SECONDS")
    sub.set_defaults(run=_cmd_warmup)

    # scale-to-zero
    sub = command("scale-to-zero", "release every replica (the deployment stays)")
    sub.add_argument("deployment_id", metavar="DEPLOYMENT_ID")
    sub.set_defaults(run=_cmd_scale_to_zero)

    # delete
    sub = command("delete", "delete a deployment")
    sub.add_argument("deployment_id", metavar="DEPLOYMENT_ID")
    sub.add_argument("--wait", action="store_true", help="wait until it is confirmed gone")
    sub.add_argument(
        "--missing-ok", action="store_true", help="succeed if it does not exist (exit 0)"
    )
    sub.set_defaults(run=_cmd_delete)

    # local serve
    local = commands.add_parser(
        "local",
        help="the local control plane emulator",
        description="The local Fireworks control plane emulator.",
        formatter_class=_Formatter,
    )
    local_commands = local.add_subparsers(dest="local_command", metavar="COMMAND", title="commands")
    local.set_defaults(run=lambda args, out: _usage(local, "choose a command: serve"))
    sub = local_commands.add_parser(
        "serve",
        help="serve the local control plane on a loopback port",
        description=(
            "Serve the local control plane (control plane, hot-load and completions gateway on\n"
            "one origin) until Ctrl-C. Point any client at the printed URL, e.g.\n"
            "  fireworks-deploy --base-url http://127.0.0.1:8000 --api-key anything list"
        ),
        formatter_class=_Formatter,
    )
    sub.add_argument("--host", default="127.0.0.1", help="default 127.0.0.1")
    sub.add_argument("--port", type=_non_negative_int, default=8000, help="default 8000")
    sub.add_argument("--account", default="local", help="the one account id (default local)")
    sub.add_argument("--boot-seconds", type=_duration, default=2.0, metavar="SECONDS")
    sub.add_argument("--boot-jitter", type=_duration, default=0.0, metavar="SECONDS")
    sub.add_argument("--hotload-seconds", type=_duration, default=1.0, metavar="SECONDS")
    sub.add_argument("--delete-seconds", type=_duration, default=0.2, metavar="SECONDS")
    sub.add_argument("--seed", type=int, default=0)
    sub.add_argument(
        "--require-api-key",
        metavar="KEY",
        help="accept only this key (default: any non-empty key)",
    )
    sub.add_argument(
        "--fault",
        action="append",
        type=_fault_spec,
        default=[],
        metavar="SPEC",
        help="inject a fault, e.g. status:endpoint=hotload_status,status=503,times=3 (repeatable)",
    )
    sub.set_defaults(run=_cmd_local_serve)

    # demo
    sub = command(
        "demo",
        "run an RL weight-sync loop end to end",
        "Create deployments concurrently, wait for all, then for each training step hot-load a\n"
        "snapshot (a base, then deltas) into all of them at once and sample completions to\n"
        "show the weights changed; finally scale to zero and delete everything it created.\n\n"
        "Without --api-key or --base-url it runs against an embedded local control plane in\n"
        "this process (an API key in the environment alone does not send it to a real\n"
        "server). Against the real API, the fake trainer's snapshots do not exist: point it at\n"
        "`fireworks-deploy local serve` instead.",
    )
    sub.add_argument("--deployments", type=_positive_int, default=3, metavar="N", help="default 3")
    sub.add_argument("--steps", type=_non_negative_int, default=5, metavar="K", help="default 5")
    sub.add_argument("--base-model", default=None, metavar="MODEL")
    sub.add_argument("--replicas", type=_positive_int, default=1, metavar="N", help="default 1")
    sub.add_argument(
        "--prompts", type=_positive_int, default=2, metavar="N", help="prompts per deployment"
    )
    sub.add_argument("--id-prefix", default=None, metavar="PREFIX")
    sub.add_argument(
        "--boot-seconds", type=_duration, default=2.0, metavar="SECONDS", help="embedded only"
    )
    sub.add_argument(
        "--hotload-seconds",
        type=_duration,
        default=0.5,
        metavar="SECONDS",
        help="embedded only",
    )
    sub.add_argument(
        "--fault",
        action="append",
        type=_fault_spec,
        default=[],
        metavar="SPEC",
        help="inject a fault into the embedded control plane (repeatable)",
    )
    sub.set_defaults(run=_cmd_demo)
    return parser


def _usage(parser: argparse.ArgumentParser, message: str) -> NoReturn:
    parser.error(message)


# -- running commands --------------------------------------------------------------------------


def _env(value: str | None, name: str) -> str | None:
    if value is not None:
        return value
    found = os.environ.get(name)
    return found if found and found.strip() else None


def _manager(args: argparse.Namespace, **kwargs: Any) -> AsyncDeploymentManager:
    timeouts = Timeouts(operation_s=args.timeout) if args.timeout is not None else None
    return AsyncDeploymentManager(
        api_key=args.api_key,
        account_id=args.account_id,
        base_url=_env(args.base_url, BASE_URL_ENV) or DEFAULT_BASE_URL,
        inference_url=_env(args.inference_url, INFERENCE_URL_ENV),
        hotload_api_url=_env(args.hotload_api_url, HOTLOAD_API_URL_ENV),
        timeouts=timeouts,
        **kwargs,
    )


Handler = Callable[[AsyncDeploymentManager, argparse.Namespace, Output], Awaitable[int]]


def _with_manager(handler: Handler, args: argparse.Namespace, out: Output) -> int:
    async def run() -> int:
        async with _manager(args) as manager:
            return await handler(manager, args, out)

    return anyio.run(run)


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


# -- commands ----------------------------------------------------------------------------------


def _cmd_create(args: argparse.Namespace, out: Output) -> int:
    return _with_manager(_create, args, out)


async def _create(manager: AsyncDeploymentManager, args: argparse.Namespace, out: Output) -> int:
    min_replicas = args.min_replicas if args.replicas is None else args.replicas
    max_replicas = args.max_replicas if args.replicas is None else args.replicas
    optional = {
        "min_replica_count": min_replicas,
        "max_replica_count": max_replicas,
        "accelerator_type": args.accelerator_type,
        "deployment_shape": args.shape,
        "region": args.region,
        "description": args.description,
        "hot_load_trainer_job": args.hot_load_trainer_job,
        "hot_load_bucket_type": args.hot_load_bucket_type,
        "hot_load_transition_type": args.transition_type,
    }
    config = DeploymentConfig(
        args.deployment_id,
        args.base_model,
        enable_hot_load=not args.no_hot_load,
        for_training=args.for_training,
        **{k: v for k, v in optional.items() if v is not None},
    )
    timeout = args.timeout or 600.0
    info = await manager.create_or_get(config, args.force_recreate, timeout_s=timeout)
    if args.wait and not info.is_ready:
        info = await _wait_one(manager, args.deployment_id, timeout, args.poll_interval, out)
    out.result(deployment_json(info), deployment_text(info))
    return EXIT_OK


def _cmd_get(args: argparse.Namespace, out: Output) -> int:
    return _with_manager(_get, args, out)


async def _get(manager: AsyncDeploymentManager, args: argparse.Namespace, out: Output) -> int:
    info = await manager.get(args.deployment_id)
    if info is None:
        raise CommandNotFoundError(await _not_found(manager, args.deployment_id))
    out.result(deployment_json(info), deployment_text(info))
    return EXIT_OK


async def _not_found(manager: AsyncDeploymentManager, deployment_id: str) -> str:
    account = await manager.resolve_account_id()
    return (
        f"Deployment {deployment_id!r} does not exist in account {account!r}; "
        "see `fireworks-deploy list`."
    )


def _cmd_list(args: argparse.Namespace, out: Output) -> int:
    return _with_manager(_list, args, out)


async def _list(manager: AsyncDeploymentManager, args: argparse.Namespace, out: Output) -> int:
    infos = await manager.list_deployments()
    human = deployments_table(infos) if infos else "No deployments.\n"
    out.result([deployment_json(i) for i in infos], human)
    return EXIT_OK


def _cmd_wait(args: argparse.Namespace, out: Output) -> int:
    return _with_manager(_wait, args, out)


async def _wait_one(
    manager: AsyncDeploymentManager,
    deployment_id: str,
    timeout_s: float,
    poll_interval: float,
    out: Output,
) -> DeploymentInfo:
    with out.progress(f"Waiting for {deployment_id} to serve") as progress:
        try:
            info = await displaying(
                partial(manager.wait_for_ready, deployment_id, timeout_s, poll_interval),
                partial(watch_deployments, manager, [deployment_id], progress),
            )
        except FireworksError as exc:
            progress.finish(deployment_id, type(exc).__name__, ok=False)
            raise
        progress.deployment(deployment_id, info.state)
        progress.finish(deployment_id, "serving", ok=True)
    return info


async def _wait(manager: AsyncDeploymentManager, args: argparse.Namespace, out: Output) -> int:
    ids = _unique(args.deployment_ids)
    timeout = args.timeout or 600.0
    if len(ids) == 1:
        info = await _wait_one(manager, ids[0], timeout, args.poll_interval, out)
        out.result(deployment_json(info), f"{info.deployment_id} is {info.state} and serving.")
        return EXIT_OK
    with out.progress(f"Waiting for {len(ids)} deployments to serve") as progress:
        result = await displaying(
            partial(
                manager.wait_for_ready_many,
                ids,
                timeout,
                args.poll_interval,
                return_exceptions=True,
            ),
            partial(watch_deployments, manager, ids, progress),
        )
        for o in result:
            if o.value is not None:
                progress.deployment(o.deployment_id, o.value.state)
            progress.finish(o.deployment_id, "serving" if o.ok else type(o.error).__name__, ok=o.ok)
    return _fleet_out(out, result, deployment_json, lambda i: f"{i.state} and serving")


def _fleet_out(
    out: Output,
    result: FleetResult[Any],
    as_json: Callable[[Any], Any],
    as_text: Callable[[Any], str],
) -> int:
    lines = [
        f"{o.deployment_id}: " + (as_text(o.value) if o.error is None else f"FAILED: {o.error}")
        for o in result
    ]
    out.result(fleet_json(result, as_json), "\n".join(lines))
    if result.ok:
        return EXIT_OK
    codes = {exit_code_for(e) for e in result.failed.values()}
    return codes.pop() if len(codes) == 1 else EXIT_FAILED


def _unique(ids: Sequence[str]) -> list[str]:
    return list(dict.fromkeys(ids))


async def _base_models(
    manager: AsyncDeploymentManager, ids: Sequence[str], given: str | None
) -> dict[str, str]:
    """Each deployment's base model: the flag, else read from the control plane."""
    if given is not None:
        return dict.fromkeys(ids, given)
    found: dict[str, str] = {}
    for deployment_id in ids:
        info = await manager.get(deployment_id)
        if info is None:
            raise CommandNotFoundError(await _not_found(manager, deployment_id))
        if not info.base_model:
            raise InvalidConfigError(
                f"Deployment {deployment_id!r} reports no base model; pass --base-model."
            )
        found[deployment_id] = info.base_model
    return found


def _cmd_hotload(args: argparse.Namespace, out: Output) -> int:
    return _with_manager(_hotload, args, out)


async def _hotload(manager: AsyncDeploymentManager, args: argparse.Namespace, out: Output) -> int:
    ids = _unique(args.deployment_ids)
    if args.previous is None and (args.compression_format or args.checksum_format):
        raise InvalidConfigError(
            "--compression-format and --checksum-format describe a delta: add --previous."
        )
    if len(ids) > 1 and (args.path or args.cmek_resource):
        raise InvalidConfigError("--path and --cmek-resource apply to one deployment at a time.")
    metadata = None
    if args.previous is not None:
        metadata = IncrementalSnapshotMetadata(
            previous_snapshot_identity=args.previous,
            compression_format=args.compression_format or "arc_v2",
            checksum_format=args.checksum_format or "alder32",
        )
    models = await _base_models(manager, ids, args.base_model)
    reset = not args.no_reset_prompt_cache
    timeout = args.timeout or 400.0
    identity = args.snapshot
    if args.no_wait:
        for deployment_id in ids:
            await manager.hotload(
                deployment_id,
                models[deployment_id],
                identity,
                metadata,
                reset,
                min(timeout, 60.0),
                args.path,
                args.cmek_resource,
            )
        doc = {"identity": identity, "deployment_ids": ids, "accepted": True}
        out.result(doc, f"Hot-load of {identity} accepted by {', '.join(ids)}.")
        return EXIT_OK
    kind = f"delta of {args.previous}" if args.previous else "full snapshot"
    with out.progress(f"Hot-loading {identity} ({kind})") as progress:
        watcher = partial(watch_hotloads, manager, list(models.items()), identity, progress)
        if len(ids) == 1:
            (deployment_id,) = ids
            try:
                status = await displaying(
                    partial(
                        manager.hotload_and_wait,
                        deployment_id,
                        models[deployment_id],
                        identity,
                        metadata,
                        reset,
                        timeout,
                        args.path,
                        args.cmek_resource,
                        args.poll_interval,
                    ),
                    watcher,
                )
            except FireworksError as exc:
                progress.finish(deployment_id, type(exc).__name__, ok=False)
                raise
            progress.replicas(deployment_id, status, identity)
            progress.finish(deployment_id, f"serves {identity}", ok=True)
            result: FleetResult[HotloadStatus] | None = None
        else:
            if len(set(models.values())) != 1:
                raise InvalidConfigError(
                    "These deployments have different base models; hot-load them separately."
                )
            result = await displaying(
                partial(
                    manager.hotload_and_wait_many,
                    ids,
                    models[ids[0]],
                    identity,
                    metadata,
                    reset,
                    timeout,
                    args.poll_interval,
                    return_exceptions=True,
                ),
                watcher,
            )
            for o in result:
                if o.value is not None:
                    progress.replicas(o.deployment_id, o.value, identity)
                done = f"serves {identity}" if o.ok else type(o.error).__name__
                progress.finish(o.deployment_id, done, ok=o.ok)
    if result is None:
        out.result(
            hotload_status_json(status, identity),
            f"{deployment_id}: every replica ({len(status.replicas)}) serves {identity}.",
        )
        return EXIT_OK
    return _fleet_out(
        out,
        result,
        partial(_status_json, identity=identity),
        lambda s: f"every replica ({len(s.replicas)}) serves {identity}",
    )


def _status_json(status: HotloadStatus, *, identity: str) -> Any:
    return hotload_status_json(status, identity)


def _cmd_hotload_status(args: argparse.Namespace, out: Output) -> int:
    return _with_manager(_hotload_status, args, out)


async def _hotload_status(
    manager: AsyncDeploymentManager, args: argparse.Namespace, out: Output
) -> int:
    models = await _base_models(manager, [args.deployment_id], args.base_model)
    status = await manager.hotload_status(args.deployment_id, models[args.deployment_id])
    out.result(
        hotload_status_json(status, args.snapshot), hotload_status_text(status, args.snapshot)
    )
    return EXIT_OK


def _cmd_warmup(args: argparse.Namespace, out: Output) -> int:
    return _with_manager(_warmup, args, out)


async def _warmup(manager: AsyncDeploymentManager, args: argparse.Namespace, out: Output) -> int:
    model = args.model
    if model is None:
        account = await manager.resolve_account_id()
        model = f"accounts/{account}/deployments/{args.deployment_id}"
    result = await manager.warmup(
        model, args.max_retries, args.retry_interval, timeout_s=args.timeout
    )
    out.result(
        warmup_json(result),
        f"{model} answered 200 after {result.attempts} attempt(s) in {result.elapsed_s:.2f}s.",
    )
    return EXIT_OK


def _cmd_scale_to_zero(args: argparse.Namespace, out: Output) -> int:
    return _with_manager(_scale_to_zero, args, out)


async def _scale_to_zero(
    manager: AsyncDeploymentManager, args: argparse.Namespace, out: Output
) -> int:
    try:
        info = await manager.scale_to_zero(args.deployment_id)
    except NotFoundError as exc:
        raise CommandNotFoundError(await _not_found(manager, args.deployment_id)) from exc
    doc = {"deployment_id": args.deployment_id, "scaled_to_zero": True}
    if info is not None:
        doc["deployment"] = deployment_json(info)
    out.result(doc, f"{args.deployment_id} is scaled to zero (the deployment stays).")
    return EXIT_OK


def _cmd_delete(args: argparse.Namespace, out: Output) -> int:
    return _with_manager(_delete, args, out)


async def _delete(manager: AsyncDeploymentManager, args: argparse.Namespace, out: Output) -> int:
    timeout = args.timeout or 60.0
    try:
        await manager.delete(
            args.deployment_id, wait=args.wait, timeout_s=timeout, missing_ok=args.missing_ok
        )
    except NotFoundError as exc:
        raise CommandNotFoundError(await _not_found(manager, args.deployment_id)) from exc
    state = "deleted" if args.wait else "being deleted"
    out.result(
        {"deployment_id": args.deployment_id, "deleted": True, "confirmed": args.wait},
        f"{args.deployment_id} is {state}.",
    )
    return EXIT_OK


def _local_plane(**kwargs: Any) -> Any:
    try:
        from .local import LocalControlPlane  # noqa: PLC0415 - the local extra is optional
    except ImportError as exc:
        raise InvalidConfigError(
            "The local control plane needs its extra: pip install 'fireworks-deploy[local]' "
            f"({exc})."
        ) from None
    return LocalControlPlane(**kwargs)


def _cmd_local_serve(args: argparse.Namespace, out: Output) -> int:
    from .local import serve  # noqa: PLC0415 - the local extra is optional

    plane = _local_plane(
        account=args.account,
        boot_seconds=args.boot_seconds,
        boot_jitter=args.boot_jitter,
        hotload_seconds=args.hotload_seconds,
        delete_seconds=args.delete_seconds,
        api_key=args.require_api_key,
        seed=args.seed,
    )
    for fault in args.fault:
        plane.faults.add(fault)
    try:
        serve(plane, args.host, args.port)
    except OSError as exc:
        out.error(f"cannot listen on {args.host}:{args.port}: {exc.strerror or exc}")
        return EXIT_CONNECTION
    return EXIT_OK


def _cmd_demo(args: argparse.Namespace, out: Output) -> int:
    stream = out.stderr if out.json else out.stdout
    with Progress(stream, enabled=True) as progress:
        return _demo(args, out, progress)


def _demo(args: argparse.Namespace, out: Output, progress: Progress) -> int:
    from ._demo import DEFAULT_BASE_MODEL, DemoOptions, Sampler, run_demo  # noqa: PLC0415

    embedded = args.api_key is None and args.base_url is None
    transport: Callable[[], Any] | None = None
    if embedded:
        plane = _local_plane(
            boot_seconds=args.boot_seconds,
            boot_jitter=args.boot_seconds / 4,
            hotload_seconds=args.hotload_seconds,
            hotload_jitter=args.hotload_seconds / 2,
            delete_seconds=0.2,
            seed=0,
        )
        for fault in args.fault:
            plane.faults.add(fault)
        progress.log(
            "Starting the embedded local control plane in this process (no --api-key or "
            "--base-url given; nothing leaves this machine)."
        )
        if os.environ.get(API_KEY_ENV):
            progress.log(
                f"Note: {API_KEY_ENV} is set but not used; pass --base-url or --api-key to run "
                "the demo against a server."
            )
        args.api_key = "local-demo-key"
        args.account_id = plane.account
        args.base_url = "http://fireworks.local"
        args.inference_url = args.hotload_api_url = None
        transport = plane.transport
        control_plane = "embedded local control plane (in process)"
    else:
        if args.fault:
            raise InvalidConfigError("--fault applies to the embedded control plane only.")
        control_plane = _env(args.base_url, BASE_URL_ENV) or DEFAULT_BASE_URL
        progress.log(f"Running the demo against {control_plane}.")
    options = DemoOptions(
        deployments=args.deployments,
        steps=args.steps,
        base_model=args.base_model or DEFAULT_BASE_MODEL,
        replicas=args.replicas,
        prompts=args.prompts,
        id_prefix=args.id_prefix or ("demo" if embedded else f"demo-{os.urandom(3).hex()}"),
        ready_timeout_s=args.timeout or (60.0 if embedded else 1800.0),
        hotload_timeout_s=args.timeout or (60.0 if embedded else 400.0),
        poll_interval_s=0.25 if embedded else 5.0,
        refuse_existing=not embedded,
    )

    async def run() -> Any:
        extra = {} if transport is None else {"transport": transport()}
        async with _manager(args, **extra) as manager:
            sampler = Sampler(
                manager.inference_url,
                resolve_api_key(args.api_key).get(),
                transport=None if transport is None else transport(),
            )
            try:
                return await run_demo(
                    manager,
                    options,
                    sampler,
                    progress,
                    control_plane=control_plane,
                    run="demo" if embedded else None,
                )
            finally:
                await sampler.aclose()

    report = anyio.run(run)
    progress.clear_rows()
    if out.json:
        out.document(report.to_json())
    else:
        progress.print_table(
            "Timing summary", ["phase", "seconds", "detail"], report.summary_rows()
        )
    if report.ok:
        return EXIT_OK
    if report.exception is not None:
        out.error(str(report.exception))
        return exit_code_for(report.exception)
    problems = [f"step {s.step} failed on {', '.join(s.failed)}" for s in report.steps if s.failed]
    if report.cleanup:
        problems.append(f"cleanup failed for {', '.join(sorted(report.cleanup))}")
    out.error(f"The demo finished with failures: {'; '.join(problems)}.")
    return EXIT_FAILED
