"""Deployment lifecycle commands: create, get, list, wait, scale-to-zero, delete."""

from __future__ import annotations

import argparse
from functools import partial

from .._errors import FireworksError, NotFoundError
from .._manager import AsyncDeploymentManager
from .._models import DeploymentConfig, DeploymentInfo
from .._progress import displaying, heartbeat, plural, watch_deployments
from ._args import Commands, non_negative_int, positive_seconds
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
    deployment_json,
    deployment_text,
    deployments_table,
    failure_label,
    failure_summary,
)

__all__ = ["add_create", "add_delete", "add_get", "add_list", "add_scale_to_zero", "add_wait"]


# -- create ------------------------------------------------------------------------------------


def add_create(commands: Commands) -> None:
    sub = commands.add(
        "create",
        "create a deployment (or show the existing one)",
        "Create a deployment, or return it unchanged if it exists and is healthy (a FAILED or\n"
        "deleted one is replaced). With --wait, also wait until it serves.",
        run=managed(_create),
    )
    sub.add_argument("deployment_id", metavar="DEPLOYMENT_ID")
    sub.add_argument("--base-model", required=True, metavar="MODEL", help="e.g. accounts/...")
    sub.add_argument(
        "--replicas", type=non_negative_int, metavar="N", help="min and max replica count"
    )
    sub.add_argument("--min-replicas", type=non_negative_int, metavar="N", help="default 0")
    sub.add_argument("--max-replicas", type=non_negative_int, metavar="N", help="default 1")
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
    sub.add_argument("--poll-interval", type=positive_seconds, default=15.0, metavar="SECONDS")


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


# -- get, list ---------------------------------------------------------------------------------


def add_get(commands: Commands) -> None:
    sub = commands.add("get", "show one deployment", run=managed(_get))
    sub.add_argument("deployment_id", metavar="DEPLOYMENT_ID")


async def _get(manager: AsyncDeploymentManager, args: argparse.Namespace, out: Output) -> int:
    info = await manager.get(args.deployment_id)
    if info is None:
        message = await not_found(manager, args.deployment_id)
        raise CommandNotFoundError(message, deployment_id=args.deployment_id)
    out.result(deployment_json(info), deployment_text(info))
    return EXIT_OK


def add_list(commands: Commands) -> None:
    commands.add("list", "list the account's deployments", run=managed(_list))


async def _list(manager: AsyncDeploymentManager, args: argparse.Namespace, out: Output) -> int:
    infos = await manager.list_deployments()
    human = deployments_table(infos) if infos else "No deployments.\n"
    out.result([deployment_json(i) for i in infos], human)
    return EXIT_OK


# -- wait --------------------------------------------------------------------------------------


def add_wait(commands: Commands) -> None:
    sub = commands.add(
        "wait",
        "wait until deployments serve",
        "Wait until every named deployment serves (READY, or CREATING and answering a probe),\n"
        "under one deadline (--timeout, default 600 s), with live progress.",
        run=managed(_wait),
    )
    sub.add_argument("deployment_ids", nargs="+", metavar="DEPLOYMENT_ID")
    sub.add_argument("--poll-interval", type=positive_seconds, default=15.0, metavar="SECONDS")


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
        progress.deployment(deployment_id, info.state)
        progress.finish(deployment_id, "serving", ok=True)
    return info


async def _wait(manager: AsyncDeploymentManager, args: argparse.Namespace, out: Output) -> int:
    ids = unique(args.deployment_ids)
    timeout = args.timeout or 600.0
    if len(ids) == 1:
        info = await _wait_one(manager, ids[0], timeout, args.poll_interval, out)
        out.result(deployment_json(info), f"{info.deployment_id} is {info.state} and serving.")
        return EXIT_OK
    with out.progress(f"Waiting for {plural(len(ids), 'deployment')} to serve") as progress:
        result = await displaying(
            partial(
                manager.wait_for_ready_many,
                ids,
                timeout,
                args.poll_interval,
                return_exceptions=True,
            ),
            partial(watch_deployments, manager, ids, progress),
            partial(heartbeat, progress),
        )
        result = await explained(manager, result)
        for o in result:
            if o.value is not None:
                progress.deployment(o.deployment_id, o.value.state)
            if o.error is None:
                progress.finish(o.deployment_id, "serving", ok=True)
            else:
                summary, label = failure_summary(o.error), failure_label(o.error)
                progress.finish(o.deployment_id, summary, ok=False, label=label)
    return fleet_out(out, result, deployment_json, lambda i: f"{i.state} and serving")


# -- scale-to-zero, delete ---------------------------------------------------------------------


def add_scale_to_zero(commands: Commands) -> None:
    sub = commands.add(
        "scale-to-zero", "release every replica (the deployment stays)", run=managed(_scale_to_zero)
    )
    sub.add_argument("deployment_id", metavar="DEPLOYMENT_ID")


async def _scale_to_zero(
    manager: AsyncDeploymentManager, args: argparse.Namespace, out: Output
) -> int:
    try:
        info = await manager.scale_to_zero(args.deployment_id)
    except NotFoundError as exc:
        message = await not_found(manager, args.deployment_id)
        raise CommandNotFoundError(message, deployment_id=args.deployment_id) from exc
    doc = {"deployment_id": args.deployment_id, "scaled_to_zero": True}
    if info is not None:
        doc["deployment"] = deployment_json(info)
    out.result(doc, f"{args.deployment_id} is scaled to zero (the deployment stays).")
    return EXIT_OK


def add_delete(commands: Commands) -> None:
    sub = commands.add("delete", "delete a deployment", run=managed(_delete))
    sub.add_argument("deployment_id", metavar="DEPLOYMENT_ID")
    sub.add_argument("--wait", action="store_true", help="wait until it is confirmed gone")
    sub.add_argument(
        "--missing-ok",
        action="store_true",
        help="succeed if it does not exist (exit 0, says it did not exist)",
    )


async def _delete(manager: AsyncDeploymentManager, args: argparse.Namespace, out: Output) -> int:
    timeout = args.timeout or 60.0
    deployment_id = args.deployment_id
    try:
        await manager.delete(deployment_id, wait=args.wait, timeout_s=timeout, missing_ok=False)
    except NotFoundError as exc:
        if not args.missing_ok:
            message = await not_found(manager, deployment_id)
            raise CommandNotFoundError(message, deployment_id=deployment_id) from exc
        out.result(
            {"deployment_id": deployment_id, "deleted": False, "existed": False},
            f"{deployment_id} does not exist; nothing to delete.",
        )
        return EXIT_OK
    state = "deleted" if args.wait else "being deleted"
    out.result(
        {"deployment_id": deployment_id, "deleted": True, "existed": True, "confirmed": args.wait},
        f"{deployment_id} is {state}.",
    )
    return EXIT_OK
