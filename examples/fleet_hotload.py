"""One snapshot into many deployments at once, under one deadline, with every outcome kept.

`hotload_and_wait_many` sends every hot-load and waits for every replica of every deployment
concurrently; `return_exceptions=True` hands back one outcome per deployment instead of raising
at the first failure. Here the local control plane is told to fail the load on one deployment,
so the output shows a failed outcome next to the successful ones, and the retry a trainer would
make for it: a full (base) snapshot, since its delta chain is broken.

Runs against an embedded local control plane (in process, no account needed):

    python examples/fleet_hotload.py
"""

from __future__ import annotations

from functools import partial

import anyio

from fireworks_deploy import (
    AsyncDeploymentManager,
    DeploymentConfig,
    HotloadFailedError,
    IncrementalSnapshotMetadata,
)
from fireworks_deploy.local import Fault, LocalControlPlane

BASE_MODEL = "accounts/fireworks/models/qwen3-8b"
FLEET = [f"fleet-{i}" for i in range(5)]


async def main() -> None:
    plane = LocalControlPlane(boot_seconds=0.5, boot_jitter=0.3, hotload_seconds=0.3)
    # The delta "step-1" fails on fleet-2 (every replica reports stage "error").
    plane.faults.add(Fault("hotload_error", deployment_id="fleet-2", identity="step-1"))
    async with AsyncDeploymentManager(
        api_key="local", base_url="http://fireworks.local", transport=plane.transport()
    ) as manager:
        async with anyio.create_task_group() as tg:
            for deployment_id in FLEET:
                config = DeploymentConfig(
                    deployment_id, BASE_MODEL, min_replica_count=2, max_replica_count=2
                )
                tg.start_soon(manager.create_or_get, config)
        try:
            ready = await manager.wait_for_ready_many(FLEET, timeout_s=30, poll_interval_s=0.2)
            print(f"{len(ready.succeeded)} deployments ready in {ready.elapsed_s:.2f}s")

            base = await manager.hotload_and_wait_many(
                FLEET, BASE_MODEL, "step-0", timeout_seconds=30, poll_interval_s=0.1
            )
            print(f"step-0 (base) serves everywhere after {base.elapsed_s:.2f}s")

            delta = IncrementalSnapshotMetadata(previous_snapshot_identity="step-0")
            result = await manager.hotload_and_wait_many(
                FLEET,
                BASE_MODEL,
                "step-1",
                delta,
                timeout_seconds=30,  # one deadline for the whole fleet
                poll_interval_s=0.1,
                return_exceptions=True,
            )
            print(f"step-1 (delta of step-0) after {result.elapsed_s:.2f}s:")
            for outcome in result:
                if outcome.value is not None:
                    replicas = len(outcome.value.replicas)
                    print(f"  {outcome.deployment_id}: ok, all {replicas} replicas serve step-1")
                else:
                    kind = type(outcome.error).__name__
                    print(f"  {outcome.deployment_id}: FAILED ({kind}): {outcome.error}")
            if set(result.failed) != {"fleet-2"} or not isinstance(
                result.failed["fleet-2"], HotloadFailedError
            ):
                raise SystemExit(f"unexpected outcomes: {result.failed}")

            # The failed deployment still serves step-0; the trainer saves step-1 in full for it.
            retry = await manager.hotload_and_wait_many(
                list(result.failed),
                BASE_MODEL,
                "step-1-full",
                timeout_seconds=30,
                poll_interval_s=0.1,
            )
            print(f"re-synced {', '.join(retry.succeeded)} with a full snapshot: ok={retry.ok}")
        finally:
            async with anyio.create_task_group() as tg:
                for deployment_id in FLEET:
                    tg.start_soon(manager.scale_to_zero, deployment_id)
            async with anyio.create_task_group() as tg:
                for deployment_id in FLEET:
                    tg.start_soon(partial(manager.delete, deployment_id, wait=True, timeout_s=10))
            print(f"scaled {len(FLEET)} deployments to zero and deleted them")


if __name__ == "__main__":
    anyio.run(main)
