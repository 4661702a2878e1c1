"""The demo's RL-shaped loop: create a fleet, then hot-load and sample after every training step.

`run_demo` is the loop an async GRPO trainer runs, minus the training: deployments are created
concurrently and waited for as a fleet; each step a fake trainer saves a snapshot (a base first,
deltas chained to the last snapshot *successfully* hot-loaded after that), the snapshot is
hot-loaded into every deployment at once, and a few completions are sampled from each to show
the served weights changed. Whatever happens, everything the demo created is scaled to zero and
deleted before it returns. Its parts (options, trainer, sampler, report) are in `_demo_kit`.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from functools import partial
from typing import Any

import anyio

from ._demo_kit import (
    DEFAULT_BASE_MODEL,
    Completion,
    DemoError,
    DemoOptions,
    DemoReport,
    FakeTrainer,
    Sampler,
    SamplingError,
    Snapshot,
    StepReport,
    delta_metadata,
)
from ._errors import FireworksError
from ._fleet import FleetResult, Outcome
from ._manager import AsyncDeploymentManager
from ._models import DeploymentConfig
from ._progress import (
    Progress,
    describe_info,
    displaying,
    plural,
    watch_deployments,
    watch_hotloads,
)

# The kit's names are re-exported: callers import the whole demo from here.
__all__ = [
    "DEFAULT_BASE_MODEL",
    "DemoError",
    "DemoOptions",
    "DemoReport",
    "FakeTrainer",
    "Sampler",
    "SamplingError",
    "Snapshot",
    "delta_metadata",
    "run_demo",
]

#: Token-id prompts sampled from every deployment after every step.
PROMPTS: tuple[tuple[int, ...], ...] = ((1, 2, 3), (42, 7, 1999), (5, 8, 13, 21))


def _short(tokens: Sequence[int], n: int = 4) -> str:
    shown = " ".join(str(t) for t in tokens[:n])
    return f"[{shown}{' …' if len(tokens) > n else ''}]"


async def gather_outcomes(
    ids: Sequence[str], op: Callable[[str], Awaitable[Any]]
) -> FleetResult[Any]:
    """Run `op` for every id at once; every outcome kept (errors are not raised here)."""
    started = time.monotonic()
    outcomes: dict[str, Outcome[Any]] = {}

    async def one(deployment_id: str) -> None:
        try:
            outcomes[deployment_id] = Outcome(deployment_id, value=await op(deployment_id))
        except FireworksError as exc:
            outcomes[deployment_id] = Outcome(deployment_id, error=exc)

    async with anyio.create_task_group() as tg:
        for deployment_id in ids:
            tg.start_soon(one, deployment_id)
    return FleetResult(tuple(outcomes[i] for i in ids), time.monotonic() - started)


async def run_demo(
    manager: AsyncDeploymentManager,
    options: DemoOptions,
    sampler: Sampler,
    progress: Progress,
    *,
    control_plane: str,
    run: str | None = None,
) -> DemoReport:
    """Run the loop; always clean up what it created. Errors end up in `report.error`.

    Cancellation (Ctrl-C) still runs the cleanup, shielded and bounded by its timeout, and then
    propagates.
    """
    ids = [f"{options.id_prefix}-{i}" for i in range(options.deployments)]
    report = DemoReport(
        control_plane=control_plane,
        deployments=ids,
        base_model=options.base_model,
        replicas=options.replicas,
    )
    created: list[str] = []
    started = time.monotonic()
    try:
        await _loop(manager, options, sampler, progress, ids, created, report, run)
    except FireworksError as exc:
        report.error = str(exc)
        report.exception = exc
        progress.log(f"Stopped: {exc}", style="red")
    finally:
        with anyio.move_on_after(options.cleanup_timeout_s, shield=True) as scope:
            await _cleanup(manager, created, progress, report)
        if scope.cancelled_caught:
            for deployment_id in created:
                if deployment_id not in report.cleaned:
                    report.cleanup.setdefault(
                        deployment_id, f"not confirmed within {options.cleanup_timeout_s:g}s"
                    )
        report.total_s = time.monotonic() - started
    return report


async def _loop(
    manager: AsyncDeploymentManager,
    options: DemoOptions,
    sampler: Sampler,
    progress: Progress,
    ids: list[str],
    created: list[str],
    report: DemoReport,
    run: str | None,
) -> None:
    account = await manager.resolve_account_id()
    models = {i: f"accounts/{account}/deployments/{i}" for i in ids}

    # -- create: every deployment at once ------------------------------------------------------
    progress.log(
        f"Creating {plural(len(ids), 'deployment')} of {options.base_model} "
        f"({plural(options.replicas, 'replica')} each): {', '.join(ids)}"
    )

    async def create(deployment_id: str) -> None:
        if options.refuse_existing and await manager.get(deployment_id) is not None:
            raise DemoError(
                f"Deployment {deployment_id!r} already exists; the demo only uses (and deletes) "
                "deployments it creates, so pick another --id-prefix."
            )
        created.append(deployment_id)
        config = DeploymentConfig(
            deployment_id,
            options.base_model,
            description="fireworks-deploy demo (safe to delete)",
            min_replica_count=options.replicas,
            max_replica_count=options.replicas,
            enable_hot_load=True,
        )
        info = await manager.create_or_get(config, timeout_s=options.ready_timeout_s)
        progress.deployment(deployment_id, info.state, describe_info(info))

    t = time.monotonic()
    result = await gather_outcomes(ids, create)
    report.phases.append((f"create {plural(len(ids), 'deployment')}", time.monotonic() - t))
    result.raise_for_failures("creating the demo deployments")

    # -- boot: one fleet wait, one list read per poll --------------------------------------------
    progress.clear_rows("Waiting for the deployments to be ready")
    t = time.monotonic()
    ready = await displaying(
        partial(
            manager.wait_for_ready_many,
            ids,
            options.ready_timeout_s,
            options.poll_interval_s * 2,
            return_exceptions=True,
        ),
        partial(watch_deployments, manager, ids, progress),
    )
    for booted in ready:
        if booted.value is not None:
            progress.deployment(booted.deployment_id, booted.value.state)
            progress.finish(booted.deployment_id, "serving", ok=True)
        else:
            progress.finish(booted.deployment_id, str(booted.error), ok=False)
    report.phases.append(("boot until all ready", time.monotonic() - t))
    ready.raise_for_failures("waiting for the demo deployments")
    progress.log(
        (f"All {len(ids)} deployments are" if len(ids) > 1 else "The deployment is")
        + f" ready after {ready.elapsed_s:.1f}s."
    )

    # -- the training loop -------------------------------------------------------------------
    previous_tokens = await _sample_round(sampler, options, models, report)
    example_id = ids[0]
    progress.log(
        f"Base weights: {example_id} completes {list(PROMPTS[0])} with "
        f"{_short(previous_tokens[(example_id, 0)].tokens)}"
    )
    trainer = FakeTrainer(run or secrets.token_hex(3))
    last_loaded: dict[str, str | None] = dict.fromkeys(ids)
    for step in range(options.steps):
        served = set(last_loaded.values())
        previous = next(iter(served)) if len(served) == 1 else None
        metadata = None if previous is None else delta_metadata(previous)
        snapshot = trainer.save(step, full=metadata is None)
        kind = "base" if snapshot.full else "delta"
        note = f"delta of {previous}" if previous else "full base"
        progress.clear_rows(f"Step {step}: hot-loading {snapshot.identity}")
        progress.log(f"Step {step}: trainer saved {snapshot.identity} ({note}); hot-loading it")
        t = time.monotonic()
        loads = await displaying(
            partial(
                manager.hotload_and_wait_many,
                ids,
                options.base_model,
                snapshot.identity,
                metadata,
                timeout_seconds=options.hotload_timeout_s,
                poll_interval_s=options.poll_interval_s,
                return_exceptions=True,
            ),
            partial(
                watch_hotloads,
                manager,
                [(i, options.base_model) for i in ids],
                snapshot.identity,
                progress,
            ),
        )
        seconds = time.monotonic() - t
        for outcome in loads:
            if outcome.value is not None:
                last_loaded[outcome.deployment_id] = snapshot.identity
                progress.replicas(outcome.deployment_id, outcome.value, snapshot.identity)
                progress.finish(outcome.deployment_id, f"serves {snapshot.identity}", ok=True)
            else:
                progress.finish(outcome.deployment_id, str(outcome.error), ok=False)
        step_report = StepReport(
            step=step,
            identity=snapshot.identity,
            kind=kind,
            previous=previous,
            seconds=seconds,
            loaded=[o.deployment_id for o in loads if o.ok],
            failed={i: str(e) for i, e in loads.failed.items()},
        )
        report.steps.append(step_report)

        tokens = await _sample_round(sampler, options, models, report)
        step_report.sampled = len(tokens)
        step_report.changed = sum(
            tokens[key].tokens != previous_tokens[key].tokens for key in tokens
        )
        key = (example_id, 0)
        step_report.example = (
            f"{example_id}: {_short(previous_tokens[key].tokens)} -> {_short(tokens[key].tokens)}"
        )
        previous_tokens = tokens
        failed = f"; FAILED on {', '.join(step_report.failed)}" if step_report.failed else ""
        progress.log(
            f"Step {step}: {snapshot.identity} serves on {len(step_report.loaded)}/{len(ids)} "
            f"deployments after {seconds:.2f}s{failed}; {step_report.changed}/"
            f"{step_report.sampled} sampled completions changed ({step_report.example})"
        )


async def _sample_round(
    sampler: Sampler,
    options: DemoOptions,
    models: Mapping[str, str],
    report: DemoReport,
) -> dict[tuple[str, int], Completion]:
    """Sample every prompt from every deployment, all at once."""
    t = time.monotonic()
    out: dict[tuple[str, int], Completion] = {}
    errors: list[SamplingError] = []
    prompts = [PROMPTS[i % len(PROMPTS)] for i in range(options.prompts)]

    async def one(deployment_id: str, index: int) -> None:
        try:
            out[(deployment_id, index)] = await sampler.complete(
                models[deployment_id], prompts[index], options.max_tokens
            )
        except SamplingError as exc:
            errors.append(exc)

    async with anyio.create_task_group() as tg:
        for deployment_id in models:
            for index in range(len(prompts)):
                tg.start_soon(one, deployment_id, index)
    report.sampling_s += time.monotonic() - t
    report.sampling_rounds += 1
    report.completions += len(out)
    if errors:
        raise errors[0]
    return out


async def _cleanup(
    manager: AsyncDeploymentManager,
    created: list[str],
    progress: Progress,
    report: DemoReport,
) -> None:
    """Scale every created deployment to zero, then delete it and confirm; record failures."""
    if not created:
        return
    progress.clear_rows("Cleaning up")
    progress.log(
        f"Cleaning up: scaling {plural(len(created), 'deployment')} to zero and deleting them"
    )
    t = time.monotonic()

    async def one(deployment_id: str) -> None:
        try:
            await manager.scale_to_zero(deployment_id)
        except FireworksError as exc:
            # Still delete it; the failed scale-down is reported, not hidden.
            report.cleanup[deployment_id] = f"scale to zero failed: {exc}"
        progress.deployment(deployment_id, "scaled to zero")
        try:
            await manager.delete(deployment_id, wait=True, timeout_s=30.0)
        except FireworksError as exc:
            report.cleanup[deployment_id] = f"delete failed: {exc}"
            progress.finish(deployment_id, f"delete failed: {exc}", ok=False)
        else:
            report.cleaned.append(deployment_id)
            progress.finish(deployment_id, "deleted", ok=True)

    async with anyio.create_task_group() as tg:
        for deployment_id in created:
            tg.start_soon(one, deployment_id)
    report.phases.append(("cleanup (scale to zero, delete)", time.monotonic() - t))
    if report.cleanup:
        progress.log(
            f"Cleanup FAILED for {', '.join(sorted(report.cleanup))}: check them with "
            "`fireworks-deploy list` and delete them by hand.",
            style="red",
        )
    else:
        progress.log(f"Cleaned up {plural(len(report.cleaned), 'deployment')}.")
