"""Weight commands: hotload, hotload-status, and the warm-up that follows a load."""

from __future__ import annotations

import argparse
import re
from collections.abc import Sequence
from functools import partial
from typing import Any

from .._errors import FireworksError, InvalidConfigError
from .._fleet import FleetResult
from .._manager import AsyncDeploymentManager
from .._models import (
    CHECKSUM_FORMATS,
    COMPRESSION_FORMATS,
    HotloadStatus,
    IncrementalSnapshotMetadata,
)
from .._progress import displaying, heartbeat, plural, watch_hotloads
from ._args import Commands, duration, positive_int, positive_seconds
from ._common import (
    EXIT_OK,
    CommandNotFoundError,
    Output,
    explain,
    explained,
    fleet_out,
    managed,
    not_found,
    unique,
)
from ._format import (
    failure_label,
    failure_summary,
    hotload_status_json,
    hotload_status_text,
    warmup_json,
)

__all__ = ["add_hotload", "add_hotload_status", "add_warmup"]


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
            message = await not_found(manager, deployment_id)
            raise CommandNotFoundError(message, deployment_id=deployment_id)
        if not info.base_model:
            raise InvalidConfigError(
                f"Deployment {deployment_id!r} reports no base model; pass --base-model."
            )
        found[deployment_id] = info.base_model
    return found


# -- hotload -----------------------------------------------------------------------------------


def add_hotload(commands: Commands) -> None:
    sub = commands.add(
        "hotload",
        "hot-load a snapshot (base or delta)",
        "Hot-load a snapshot into one or more deployments and (unless --no-wait) wait until\n"
        "every replica serves it, with each replica's stage shown live. Without --previous it\n"
        "is a full (base) snapshot; with --previous it is a delta against that snapshot, which\n"
        "must be the one the deployment serves (the last one successfully hot-loaded).",
        run=managed(_hotload),
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
    sub.add_argument("--poll-interval", type=positive_seconds, default=5.0, metavar="SECONDS")


async def _hotload(manager: AsyncDeploymentManager, args: argparse.Namespace, out: Output) -> int:
    ids = unique(args.deployment_ids)
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
                    partial(heartbeat, progress),
                )
            except FireworksError as exc:
                error = await explain(manager, exc)
                progress.finish(
                    deployment_id, failure_summary(error), ok=False, label=failure_label(error)
                )
                if error is exc:
                    raise
                raise error from exc
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
                partial(heartbeat, progress),
            )
            result = await explained(manager, result)
            for o in result:
                if o.value is not None:
                    progress.replicas(o.deployment_id, o.value, identity)
                if o.error is None:
                    progress.finish(o.deployment_id, f"serves {identity}", ok=True)
                else:
                    summary, label = failure_summary(o.error), failure_label(o.error)
                    progress.finish(o.deployment_id, summary, ok=False, label=label)
    if result is None:
        out.result(
            hotload_status_json(status, identity),
            f"{deployment_id}: every replica ({len(status.replicas)}) serves {identity}.",
        )
        return EXIT_OK
    return fleet_out(
        out,
        result,
        partial(_status_json, identity=identity),
        lambda s: f"every replica ({len(s.replicas)}) serves {identity}",
    )


def _status_json(status: HotloadStatus, *, identity: str) -> Any:
    return hotload_status_json(status, identity)


# -- hotload-status ----------------------------------------------------------------------------


def add_hotload_status(commands: Commands) -> None:
    sub = commands.add(
        "hotload-status", "show each replica's hot-load state", run=managed(_hotload_status)
    )
    sub.add_argument("deployment_id", metavar="DEPLOYMENT_ID")
    sub.add_argument(
        "--base-model", metavar="MODEL", help="the deployment's base model (default: read it)"
    )
    sub.add_argument(
        "--snapshot", metavar="IDENTITY", help="also say whether every replica serves it"
    )


async def _hotload_status(
    manager: AsyncDeploymentManager, args: argparse.Namespace, out: Output
) -> int:
    models = await _base_models(manager, [args.deployment_id], args.base_model)
    status = await manager.hotload_status(args.deployment_id, models[args.deployment_id])
    out.result(
        hotload_status_json(status, args.snapshot), hotload_status_text(status, args.snapshot)
    )
    return EXIT_OK


# -- warmup ------------------------------------------------------------------------------------


def add_warmup(commands: Commands) -> None:
    sub = commands.add(
        "warmup",
        "send completions until one succeeds",
        "Send warm-up completions to the deployment until one answers 200. The deployment is\n"
        "read first: one that does not exist exits 3 at once. DEPLOYMENT_ID may also be its\n"
        "model name, accounts/ACCOUNT/deployments/ID.",
        run=managed(_warmup),
    )
    sub.add_argument("deployment_id", metavar="DEPLOYMENT_ID")
    sub.add_argument(
        "--model", metavar="MODEL", help="model string (default accounts/ACCOUNT/deployments/ID)"
    )
    sub.add_argument("--max-retries", type=positive_int, default=30, metavar="N")
    sub.add_argument("--retry-interval", type=duration, default=10.0, metavar="SECONDS")


_DEPLOYMENT_MODEL = re.compile(r"accounts/[^/]+/deployments/([^/]+)")


async def _warmup(manager: AsyncDeploymentManager, args: argparse.Namespace, out: Output) -> int:
    model = args.model
    deployment_id = args.deployment_id
    named = _DEPLOYMENT_MODEL.fullmatch(deployment_id)
    if named is not None:  # the deployment's model name: warm that up
        deployment_id = named.group(1)
        model = model or args.deployment_id
    if await manager.get(deployment_id) is None:
        message = await not_found(manager, deployment_id)
        raise CommandNotFoundError(message, deployment_id=deployment_id)
    if model is None:
        account = await manager.resolve_account_id()
        model = f"accounts/{account}/deployments/{deployment_id}"
    result = await manager.warmup(
        model, args.max_retries, args.retry_interval, timeout_s=args.timeout
    )
    out.result(
        warmup_json(result),
        f"{model} answered 200 after {plural(result.attempts, 'attempt')} "
        f"in {result.elapsed_s:.2f}s.",
    )
    return EXIT_OK
