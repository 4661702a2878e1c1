"""Our SDK end to end against the local control plane, in process and over loopback."""

from __future__ import annotations

import anyio
import pytest
from local_kit import (
    BASE_MODEL,
    MODES,
    FakeClock,
    async_manager,
    completion_tokens,
    config,
    endpoint,
    sync_manager,
    wait_until,
)

from fireworks_deploy import (
    BadRequestError,
    DeploymentState,
    IncrementalSnapshotMetadata,
)
from fireworks_deploy.local import LocalControlPlane

TRAINER = "accounts/local/rlorTrainerJobs/trainer-two"
FAST = {"poll_interval_s": 0.02}


@pytest.fixture(params=MODES)
def mode(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def plane() -> LocalControlPlane:
    return LocalControlPlane(boot_seconds=0.05, hotload_seconds=0.05, delete_seconds=0.05)


async def test_async_lifecycle(plane: LocalControlPlane, mode: str) -> None:
    """The async manager runs create -> ready -> base -> delta -> warmup -> update -> delete."""
    with endpoint(plane, mode) as (base_url, transport):
        async with async_manager(base_url, transport) as fw:
            created = await fw.create_or_get(config("e2e-async"))
            assert created.state == DeploymentState.CREATING
            ready = await fw.wait_for_ready("e2e-async", timeout_s=10, **FAST)
            # A probe can find it serving a moment before the control plane says READY.
            assert ready.is_ready
            assert ready.state in (DeploymentState.READY, DeploymentState.CREATING)
            model = ready.inference_model

            base = await fw.hotload_and_wait(
                "e2e-async", BASE_MODEL, "snap-0", timeout_seconds=10, **FAST
            )
            assert base.serves("snap-0")
            before = await completion_tokens(base_url, transport, model)

            delta = await fw.hotload_and_wait(
                "e2e-async",
                BASE_MODEL,
                "snap-1",
                IncrementalSnapshotMetadata(previous_snapshot_identity="snap-0"),
                timeout_seconds=10,
                **FAST,
            )
            assert delta.current_snapshot_identities == {"snap-1"}
            warm = await fw.warmup(model, max_retries=5, retry_interval_s=0.02)
            assert warm.status_code == 200
            after = await completion_tokens(base_url, transport, model)
            assert after != before  # the new weights are live

            updated = await fw.update(
                "e2e-async", {"hotLoadTrainerJob": TRAINER}, update_mask="hot_load_trainer_job"
            )
            assert updated.hot_load_trainer_job == TRAINER
            scaled = await fw.scale_to_zero("e2e-async")
            assert scaled is not None
            assert scaled.min_replica_count == scaled.max_replica_count == 0
            await fw.delete("e2e-async", wait=True, timeout_s=10)
            assert await fw.get("e2e-async") is None
    assert plane.stats.requests["create"] == 1
    assert plane.stats.requests["hotload"] == 2


async def test_sync_lifecycle(plane: LocalControlPlane, mode: str) -> None:
    """The blocking manager runs the same lifecycle through its portal."""
    with endpoint(plane, mode) as (base_url, transport):

        def lifecycle() -> tuple[str, list[int], list[int]]:
            with sync_manager(base_url, transport) as fw:
                fw.create_or_get(config("e2e-sync"))
                ready = fw.wait_for_ready("e2e-sync", timeout_s=10, **FAST)
                fw.hotload_and_wait("e2e-sync", BASE_MODEL, "s0", timeout_seconds=10, **FAST)
                before = anyio.from_thread.run(
                    completion_tokens, base_url, transport, ready.inference_model
                )
                fw.hotload_and_wait(
                    "e2e-sync",
                    BASE_MODEL,
                    "s1",
                    {"previous_snapshot_identity": "s0", "compression_format": "arc_v2"},
                    timeout_seconds=10,
                    **FAST,
                )
                fw.warmup(ready.inference_model, max_retries=5, retry_interval_s=0.02)
                after = anyio.from_thread.run(
                    completion_tokens, base_url, transport, ready.inference_model
                )
                info = fw.update("e2e-sync", {"hot_load_trainer_job": TRAINER})
                assert info.hot_load_trainer_job == TRAINER
                scaled = fw.scale_to_zero("e2e-sync")
                assert scaled is not None
                assert scaled.max_replica_count == 0
                fw.delete("e2e-sync", wait=True, timeout_s=10)
                assert fw.get("e2e-sync") is None
                return ready.inference_model, before, after

        model, before, after = await anyio.to_thread.run_sync(lifecycle)
    assert model == "accounts/local/deployments/e2e-sync"
    assert before != after


async def test_fleet_of_twenty(plane: LocalControlPlane, mode: str) -> None:
    """Twenty deployments become ready and take one snapshot through the fleet helpers."""
    ids = [f"fleet-{i:02d}" for i in range(20)]
    with endpoint(plane, mode) as (base_url, transport):
        async with async_manager(base_url, transport) as fw:
            async with anyio.create_task_group() as tg:
                for i in ids:
                    tg.start_soon(fw.create_or_get, config(i))
            ready = await fw.wait_for_ready_many(ids, timeout_s=15, **FAST)
            assert ready.ok
            assert set(ready.succeeded) == set(ids)
            loaded = await fw.hotload_and_wait_many(
                ids, BASE_MODEL, "fleet-snap", timeout_seconds=15, **FAST
            )
            assert loaded.ok
            assert all(s.serves("fleet-snap") for s in loaded.succeeded.values())
    # The fleet wait reads the list endpoint, not each deployment.
    assert plane.stats.requests["get"] == len(ids)  # create_or_get's one read each
    assert plane.stats.requests["hotload"] == len(ids)


async def test_broken_delta_chain_is_a_bad_request(plane: LocalControlPlane, mode: str) -> None:
    """A delta against a snapshot that is not served surfaces the server's 400 message."""
    plane.create_deployment("chain", BASE_MODEL)
    with endpoint(plane, mode) as (base_url, transport):
        async with async_manager(base_url, transport) as fw:
            await fw.wait_for_ready("chain", timeout_s=10, **FAST)
            await fw.hotload_and_wait("chain", BASE_MODEL, "a", timeout_seconds=10, **FAST)
            with pytest.raises(BadRequestError) as caught:
                await fw.hotload_and_wait(
                    "chain",
                    BASE_MODEL,
                    "c",
                    IncrementalSnapshotMetadata(previous_snapshot_identity="b"),
                    timeout_seconds=10,
                    **FAST,
                )
    error = caught.value
    assert error.status_code == 400
    assert "previous_snapshot_identity 'b' does not match" in error.server_message
    assert error.server_message in str(error)
    assert plane.stats.requests["hotload"] == 2  # a 400 is not retried


@pytest.mark.parametrize("waiters", [1, 16])
async def test_concurrent_waiters_share_one_poll(mode: str, waiters: int) -> None:
    """M waiters on one hot-load cost one status request per poll, not M."""
    clock = FakeClock()
    plane = LocalControlPlane(boot_seconds=0, hotload_seconds=1, clock=clock)
    plane.create_deployment("shared", BASE_MODEL)
    status_requests = ("hotload_status", "shared")
    with endpoint(plane, mode) as (base_url, transport):
        async with async_manager(base_url, transport) as fw:
            await fw.hotload("shared", BASE_MODEL, "snap")
            results = []

            async def wait() -> None:
                results.append(
                    await fw.wait_for_hotload(
                        "shared", BASE_MODEL, "snap", timeout_seconds=20, poll_interval_s=0.02
                    )
                )

            async with anyio.create_task_group() as tg:
                for _ in range(waiters):
                    tg.start_soon(wait)
                await wait_until(lambda: plane.stats.by_deployment[status_requests] >= 4)
                seen_before_done = plane.stats.by_deployment[status_requests]
                clock.advance(5)  # the hot-load finishes on the server
    assert len(results) == waiters
    assert all(r.serves("snap") for r in results)
    after_done = plane.stats.by_deployment[status_requests] - seen_before_done
    # Unshared polling would need one more request per waiter to see "done"; shared needs one
    # (plus at most one that was already in flight when the load finished).
    assert after_done <= 2
    assert fw.poll_requests == plane.stats.by_deployment[status_requests]
