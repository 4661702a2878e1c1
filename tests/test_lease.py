"""The context-managed lease releases what it created on exit, error or cancellation."""

from __future__ import annotations

import inspect
import logging
import time
from collections.abc import AsyncIterator

import anyio
import pytest
from local_kit import (
    BASE_MODEL,
    INPROCESS_URL,
    FakeClock,
    async_manager,
    config,
    endpoint,
    small_timeouts,
    sync_manager,
)

from fireworks_deploy import (
    AsyncDeploymentManager,
    DeploymentLease,
    DeploymentManager,
    FireworksError,
    InternalServerError,
    InvalidConfigError,
    LeaseCleanupError,
    SyncDeploymentLease,
)
from fireworks_deploy.local import Fault, LocalControlPlane


class BodyError(Exception):
    """What the lease's block raised."""


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def plane(clock: FakeClock) -> LocalControlPlane:
    return LocalControlPlane(boot_seconds=1, hotload_seconds=1, delete_seconds=1, clock=clock)


@pytest.fixture
async def fw(plane: LocalControlPlane) -> AsyncIterator[AsyncDeploymentManager]:
    async with async_manager(
        INPROCESS_URL, plane.transport(), account_id="local", timeouts=small_timeouts(2.0, 1.0)
    ) as manager:
        yield manager


def replicas(plane: LocalControlPlane, deployment_id: str) -> tuple[int, int]:
    spec = plane.state.get("local", deployment_id).spec
    return spec.min_replica_count, spec.max_replica_count


def gone_or_deleting(plane: LocalControlPlane, deployment_id: str) -> bool:
    return deployment_id not in list(plane.state) or (
        plane.state.get("local", deployment_id).state == "DELETING"
    )


async def test_scales_to_zero_only_what_it_created(
    fw: AsyncDeploymentManager, plane: LocalControlPlane
) -> None:
    """On a normal exit the created deployments are scaled to zero; a pre-existing one is not."""
    plane.create_deployment("theirs", BASE_MODEL, 2)
    async with fw.lease() as lease:
        assert isinstance(lease, DeploymentLease)
        await lease.create_or_get(config("ours-a"))
        await lease.create_or_get(config("ours-b", replicas=2))
        await lease.create_or_get(config("theirs", replicas=2))
        await lease.create_or_get(config("ours-a"))  # a second call does not record twice
        assert lease.deployment_ids == ("ours-a", "ours-b")
    assert replicas(plane, "ours-a") == (0, 0)
    assert replicas(plane, "ours-b") == (0, 0)
    assert replicas(plane, "theirs") == (2, 2)
    assert lease.failures == {}


async def test_deletes_on_exit(fw: AsyncDeploymentManager, plane: LocalControlPlane) -> None:
    """With on_exit='delete' every created deployment is deleted."""
    async with fw.lease(on_exit="delete") as lease:
        await lease.create_or_get(config("one"))
        await lease.create_or_get(config("two"))
    assert gone_or_deleting(plane, "one")
    assert gone_or_deleting(plane, "two")
    assert plane.stats.requests["delete"] == 2


async def test_releases_on_error_and_reraises(
    fw: AsyncDeploymentManager, plane: LocalControlPlane
) -> None:
    """An error in the block still releases the deployments, and the error propagates."""

    async def block() -> None:
        async with fw.lease() as lease:
            await lease.create_or_get(config("doomed"))
            raise BodyError("training step failed")

    with pytest.raises(BodyError):
        await block()
    assert replicas(plane, "doomed") == (0, 0)


async def test_releases_on_cancellation(
    fw: AsyncDeploymentManager, plane: LocalControlPlane
) -> None:
    """A cancelled block still releases its deployments (shielded), and stays cancelled."""
    with anyio.move_on_after(0.2) as scope:
        async with fw.lease(on_exit="delete") as lease:
            await lease.create_or_get(config("cancelled"))
            await fw.wait_for_ready("cancelled", timeout_s=600, poll_interval_s=0.02)
    assert scope.cancelled_caught
    assert gone_or_deleting(plane, "cancelled")


async def test_cleanup_failure_is_reported(
    fw: AsyncDeploymentManager, plane: LocalControlPlane
) -> None:
    """A deployment it cannot release raises LeaseCleanupError naming it; others still go."""
    plane.faults.add(
        Fault("status", endpoint="scale", deployment_id="stuck", status=500, times=None)
    )

    async def block() -> None:
        async with fw.lease() as lease:
            await lease.create_or_get(config("fine"))
            await lease.create_or_get(config("stuck"))

    with pytest.raises(LeaseCleanupError) as caught:
        await block()
    error = caught.value
    assert isinstance(error, FireworksError)
    assert list(error.failures) == ["stuck"]
    assert isinstance(error.failures["stuck"], InternalServerError)
    assert "stuck" in str(error)
    assert error.__cause__ is None
    assert replicas(plane, "fine") == (0, 0)


async def test_cleanup_failure_chains_the_body_error(
    fw: AsyncDeploymentManager, plane: LocalControlPlane
) -> None:
    """When both the block and the cleanup fail, the cleanup error chains the block's error."""
    plane.faults.add(Fault("status", endpoint="delete", status=500, times=None))

    async def block() -> None:
        async with fw.lease(on_exit="delete", cleanup_timeout_s=1.0) as lease:
            await lease.create_or_get(config("x"))
            raise BodyError("boom")

    with pytest.raises(LeaseCleanupError) as caught:
        await block()
    assert isinstance(caught.value.failures["x"], InternalServerError)
    assert isinstance(caught.value.__cause__, BodyError)


async def test_cleanup_failure_during_cancellation_is_logged(
    fw: AsyncDeploymentManager, plane: LocalControlPlane, caplog: pytest.LogCaptureFixture
) -> None:
    """If cleanup fails while cancelled, cancellation wins and the leak is logged at ERROR."""
    plane.faults.add(Fault("status", endpoint="scale", status=500, times=None))
    with caplog.at_level(logging.ERROR, logger="fireworks_deploy"):
        with anyio.move_on_after(0.2) as scope:
            async with fw.lease() as lease:
                await lease.create_or_get(config("leaky"))
                await anyio.sleep_forever()
    assert scope.cancelled_caught
    assert list(lease.failures) == ["leaky"]
    assert any("leaky" in r.getMessage() for r in caplog.records)


async def test_cleanup_has_its_own_deadline(plane: LocalControlPlane) -> None:
    """A release that hangs is cut off at cleanup_timeout_s and reported."""
    plane.faults.add(Fault("hang", endpoint="scale", times=None))
    started = time.monotonic()
    async with async_manager(
        INPROCESS_URL, plane.transport(), account_id="local", timeouts=small_timeouts(600, 600)
    ) as fw:
        with pytest.raises(LeaseCleanupError) as caught:
            async with fw.lease(cleanup_timeout_s=0.3) as lease:
                await lease.create_or_get(config("hung"))
    assert isinstance(caught.value.failures["hung"], TimeoutError)
    assert time.monotonic() - started < 30  # not the 600 s operation deadline


async def test_bad_arguments_are_rejected_before_any_request(
    fw: AsyncDeploymentManager, plane: LocalControlPlane
) -> None:
    """An unknown on_exit, a bad timeout or use outside the block fail before any request."""
    with pytest.raises(InvalidConfigError):
        fw.lease(on_exit="archive")  # type: ignore[arg-type]
    with pytest.raises(InvalidConfigError):
        fw.lease(cleanup_timeout_s=-1)
    lease = fw.lease()
    with pytest.raises(RuntimeError):
        await lease.create_or_get(config("early"))
    async with lease:
        with pytest.raises(InvalidConfigError):
            await lease.create_or_get({"deployment_id": "x"})  # type: ignore[arg-type]
    assert plane.stats.total == 0


async def test_sync_lease(plane: LocalControlPlane) -> None:
    """The blocking manager's lease forwards through the portal and releases on error."""
    with endpoint(plane, "inprocess") as (base_url, transport):

        def run() -> SyncDeploymentLease:
            with sync_manager(base_url, transport, account_id="local") as fw:
                lease = fw.lease()
                assert isinstance(lease, SyncDeploymentLease)

                def block() -> None:
                    with lease:
                        info = lease.create_or_get(config("blocking"))
                        assert info.deployment_id == "blocking"
                        raise BodyError("boom")

                with pytest.raises(BodyError):
                    block()
                return lease

        lease = await anyio.to_thread.run_sync(run)
    assert lease.deployment_ids == ("blocking",)
    assert replicas(plane, "blocking") == (0, 0)


def test_sync_lease_has_the_same_parameters() -> None:
    """DeploymentManager.lease takes exactly AsyncDeploymentManager.lease's parameters."""

    def params(func: object) -> list[tuple[str, object, object]]:
        sig = inspect.signature(func)  # type: ignore[arg-type]
        return [(p.name, p.kind, p.default) for p in sig.parameters.values()]

    assert params(DeploymentManager.lease) == params(AsyncDeploymentManager.lease)
