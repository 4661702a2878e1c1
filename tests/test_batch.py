"""Many concurrent readiness waits read the fleet through the list endpoint."""

from __future__ import annotations

import anyio

from fireworks_deploy import AsyncDeploymentManager, DeploymentConfig
from fireworks_deploy.local import LocalControlPlane


async def _create(manager: AsyncDeploymentManager, ids: list[str]) -> None:
    async with anyio.create_task_group() as tg:
        for i in ids:
            tg.start_soon(manager.create_or_get, DeploymentConfig(i, "m"))


async def _wait_all(manager: AsyncDeploymentManager, ids: list[str]) -> list[str]:
    states: list[str] = []

    async def one(deployment_id: str) -> None:
        info = await manager.wait_for_ready(deployment_id, timeout_s=30, poll_interval_s=0.2)
        states.append(info.state)

    async with anyio.create_task_group() as tg:
        for i in ids:
            tg.start_soon(one, i)
    return states


async def test_many_waits_poll_through_list_rounds() -> None:
    """Past the threshold, N waits cost list reads per poll, not N GETs."""
    plane = LocalControlPlane(boot_seconds=0.5)
    ids = [f"b{i}" for i in range(40)]
    async with AsyncDeploymentManager(
        api_key="k", base_url="http://local", transport=plane.transport()
    ) as manager:
        manager._deployments.reads.threshold = 10
        await _create(manager, ids)
        plane.stats.reset()
        states = await _wait_all(manager, ids)
        rounds = manager._deployments.reads.rounds
    assert len(states) == len(ids)
    # Only the first polls, before enough waits had started, were plain GETs.
    assert plane.stats.requests["get"] < len(ids)
    assert 0 < plane.stats.requests["list"] == rounds


async def test_few_waits_use_plain_gets() -> None:
    """Below the threshold, each wait reads its own deployment."""
    plane = LocalControlPlane(boot_seconds=0.2)
    ids = ["c1", "c2"]
    async with AsyncDeploymentManager(
        api_key="k", base_url="http://local", transport=plane.transport()
    ) as manager:
        await _create(manager, ids)
        plane.stats.reset()
        await _wait_all(manager, ids)
    assert plane.stats.requests["list"] == 0
    assert plane.stats.requests["get"] > 0


async def test_many_waiters_on_one_deployment_do_not_switch_to_lists() -> None:
    """The threshold counts distinct deployments, not waiters on the same one."""
    plane = LocalControlPlane(boot_seconds=0.2)
    async with AsyncDeploymentManager(
        api_key="k", base_url="http://local", transport=plane.transport()
    ) as manager:
        manager._deployments.reads.threshold = 10
        await _create(manager, ["solo"])
        plane.stats.reset()
        await _wait_all(manager, ["solo"] * 50)
    assert plane.stats.requests["list"] == 0


async def test_a_deployment_missing_from_the_list_is_read_alone() -> None:
    """A listing that does not show a deployment falls back to its GET (it is not 'gone')."""
    plane = LocalControlPlane(boot_seconds=0.0)
    async with AsyncDeploymentManager(
        api_key="k", base_url="http://local", transport=plane.transport()
    ) as manager:
        await _create(manager, ["here"])

        async def list_nothing(deadline: object) -> list[object]:
            return []

        reads = manager._deployments.reads
        reads._list_all = list_nothing  # type: ignore[assignment]
        reads.threshold = 0
        with reads.waiting("here"):
            info = await reads.read("here", _deadline())
    assert info is not None
    assert info.deployment_id == "here"


def _deadline() -> object:
    from fireworks_deploy._config import Deadline

    return Deadline(5)
