"""Commands on the local control plane emulator: `local serve` and `demo`."""

from __future__ import annotations

import argparse
import os
from collections.abc import Callable
from typing import Any, NoReturn

import anyio

from .._config import API_KEY_ENV, DEFAULT_BASE_URL, resolve_api_key
from .._errors import InvalidConfigError
from .._progress import Progress
from ._args import Commands, Formatter, duration, fault_spec, non_negative_int, positive_int
from ._common import (
    BASE_URL_ENV,
    EXIT_CONNECTION,
    EXIT_FAILED,
    EXIT_OK,
    Output,
    env,
    exit_code_for,
    make_manager,
)

__all__ = ["add_demo", "add_local"]


def _local() -> Any:
    """The `fireworks_deploy.local` package, or a usage error naming the extra to install."""
    try:
        from .. import local  # noqa: PLC0415 - the local extra is optional
    except ImportError as exc:
        raise InvalidConfigError(
            "The local control plane needs its extra: pip install 'fireworks-deploy[local]' "
            f"({exc})."
        ) from None
    return local


def _local_plane(**kwargs: Any) -> Any:
    return _local().LocalControlPlane(**kwargs)


def _usage(parser: argparse.ArgumentParser, message: str) -> NoReturn:
    parser.error(message)


# -- local serve -------------------------------------------------------------------------------


def add_local(commands: Commands) -> None:
    local = commands.subparsers.add_parser(
        "local",
        help="the local control plane emulator",
        description="The local Fireworks control plane emulator.",
        formatter_class=Formatter,
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
        formatter_class=Formatter,
    )
    sub.add_argument("--host", default="127.0.0.1", help="default 127.0.0.1")
    sub.add_argument("--port", type=non_negative_int, default=8000, help="default 8000")
    sub.add_argument("--account", default="local", help="the one account id (default local)")
    sub.add_argument("--boot-seconds", type=duration, default=2.0, metavar="SECONDS")
    sub.add_argument("--boot-jitter", type=duration, default=0.0, metavar="SECONDS")
    sub.add_argument("--hotload-seconds", type=duration, default=1.0, metavar="SECONDS")
    sub.add_argument("--delete-seconds", type=duration, default=0.2, metavar="SECONDS")
    sub.add_argument("--seed", type=int, default=0)
    sub.add_argument(
        "--require-api-key",
        metavar="KEY",
        help="accept only this key (default: any non-empty key)",
    )
    sub.add_argument(
        "--fault",
        action="append",
        type=fault_spec,
        default=[],
        metavar="SPEC",
        help="inject a fault, e.g. status:endpoint=hotload_status,status=503,times=3 (repeatable)",
    )
    sub.set_defaults(run=_local_serve)


def _local_serve(args: argparse.Namespace, out: Output) -> int:
    serve = _local().serve
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


# -- demo --------------------------------------------------------------------------------------


def add_demo(commands: Commands) -> None:
    sub = commands.add(
        "demo",
        "run an RL weight-sync loop end to end",
        "Create deployments concurrently, wait for all, then for each training step hot-load a\n"
        "snapshot (a base, then deltas) into all of them at once and sample completions to\n"
        "show the weights changed; finally scale to zero and delete everything it created.\n\n"
        "Without --api-key or --base-url it runs against an embedded local control plane in\n"
        "this process (an API key in the environment alone does not send it to a real\n"
        "server). Against the real API, the fake trainer's snapshots do not exist: point it at\n"
        "`fireworks-deploy local serve` instead.",
        run=_run_demo,
    )
    sub.add_argument("--deployments", type=positive_int, default=3, metavar="N", help="default 3")
    sub.add_argument("--steps", type=non_negative_int, default=5, metavar="K", help="default 5")
    sub.add_argument("--base-model", default=None, metavar="MODEL")
    sub.add_argument("--replicas", type=positive_int, default=1, metavar="N", help="default 1")
    sub.add_argument(
        "--prompts", type=positive_int, default=2, metavar="N", help="prompts per deployment"
    )
    sub.add_argument("--id-prefix", default=None, metavar="PREFIX")
    sub.add_argument(
        "--boot-seconds", type=duration, default=2.0, metavar="SECONDS", help="embedded only"
    )
    sub.add_argument(
        "--hotload-seconds",
        type=duration,
        default=0.5,
        metavar="SECONDS",
        help="embedded only",
    )
    sub.add_argument(
        "--fault",
        action="append",
        type=fault_spec,
        default=[],
        metavar="SPEC",
        help="inject a fault into the embedded control plane (repeatable)",
    )


def _run_demo(args: argparse.Namespace, out: Output) -> int:
    stream = out.stderr if out.json else out.stdout
    with out.attach(Progress(stream, enabled=True)) as progress:
        return _demo(args, out, progress)


def _demo(args: argparse.Namespace, out: Output, progress: Progress) -> int:
    from .._demo import DEFAULT_BASE_MODEL, DemoOptions, Sampler, run_demo  # noqa: PLC0415

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
        control_plane = env(args.base_url, BASE_URL_ENV) or DEFAULT_BASE_URL
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
        async with make_manager(args, **extra) as manager:
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
