"""Cancelling any wait returns promptly and leaves no running task and no open connection.

The plane's clock is frozen, so no wait can finish on its own; the wait's second request hangs
on the server, so the cancellation lands while a request is in flight. The leak check then
proves no thread, socket or task is left once the manager and server are closed.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Iterator
from typing import Any

import anyio
import httpx
import pytest
from local_kit import (
    BASE_MODEL,
    MODES,
    FakeClock,
    async_manager,
    endpoint,
    small_timeouts,
    wait_until,
)

from fireworks_deploy import AsyncDeploymentManager
from fireworks_deploy.local import Fault, LocalControlPlane

#: Far beyond any cancellation's unwinding; proves "promptly" only against a 600 s wait.
PROMPT_S = 5.0
LONG = 600.0
POLL = 0.02

Wait = Callable[[AsyncDeploymentManager], Awaitable[Any]]
WAITS: dict[str, tuple[str, Wait]] = {
    "wait_for_ready": ("get", lambda fw: fw.wait_for_ready("booting", LONG, POLL)),
    "wait_for_hotload": (
        "hotload_status",
        lambda fw: fw.wait_for_hotload("ready", BASE_MODEL, "never", LONG, POLL),
    ),
    "hotload_and_wait": (
        "hotload_status",
        lambda fw: fw.hotload_and_wait("ready", BASE_MODEL, "slow", timeout_seconds=LONG),
    ),
    "wait_for_deletion": ("get", lambda fw: fw.wait_for_deletion("deleting", LONG, POLL)),
    "warmup": (
        "completions",
        lambda fw: fw.warmup(
            "accounts/local/deployments/booting", max_retries=10**6, retry_interval_s=POLL
        ),
    ),
    "wait_for_ready_many": (
        "list",
        lambda fw: fw.wait_for_ready_many(["booting", "booting-2"], LONG, POLL),
    ),
    "hotload_and_wait_many": (
        "hotload_status",
        lambda fw: fw.hotload_and_wait_many(
            ["ready", "ready-2"], BASE_MODEL, "slow", timeout_seconds=LONG, poll_interval_s=POLL
        ),
    ),
}


@pytest.fixture(params=MODES)
def mode(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def plane() -> LocalControlPlane:
    """A plane whose clock never moves: booting, deleting and loading never finish."""
    clock = FakeClock()
    plane = LocalControlPlane(boot_seconds=1, hotload_seconds=1, delete_seconds=1, clock=clock)
    for i in ("ready", "ready-2", "deleting"):
        plane.create_deployment(i, BASE_MODEL)
    clock.advance(5)
    plane.state.delete("local", "deleting", ignore_checks=True)
    for i in ("booting", "booting-2"):
        plane.create_deployment(i, BASE_MODEL)
    return plane


@pytest.fixture
def reach(plane: LocalControlPlane, mode: str) -> Iterator[tuple[str, httpx.ASGITransport | None]]:
    with endpoint(plane, mode) as pair:
        yield pair


def busy_connections(fw: AsyncDeploymentManager) -> int:
    """Pooled connections that are neither idle nor closed (a request still on them)."""
    busy = 0
    for client in fw._http._clients.values():
        transport = client._transport
        session = getattr(transport, "_session", None)  # the aiohttp transport
        if session is not None:
            busy += len(session.connector._acquired)
        pool = getattr(transport, "_pool", None)
        for conn in getattr(pool, "connections", []):
            if not (conn.is_idle() or conn.is_closed()):
                busy += 1
    return busy


def other_tasks() -> set[asyncio.Task[Any]]:
    current = asyncio.current_task()
    return {t for t in asyncio.all_tasks() if t is not current and not t.done()}


async def start_hanging(plane: LocalControlPlane, name: str, fw: AsyncDeploymentManager) -> Any:
    endpoint_name, wait = WAITS[name]
    # The first request is answered; the second hangs, so we cancel mid-request.
    plane.faults.add(Fault("hang", endpoint=endpoint_name, after=1, times=None))
    return endpoint_name, wait


async def in_flight(plane: LocalControlPlane, endpoint_name: str) -> None:
    await wait_until(lambda: plane.stats.requests[endpoint_name] >= 2)


async def check_clean(fw: AsyncDeploymentManager, started: float, baseline: set[Any]) -> None:
    assert time.monotonic() - started < PROMPT_S
    assert other_tasks() - baseline == set()
    assert busy_connections(fw) == 0


@pytest.mark.parametrize("name", list(WAITS))
async def test_task_cancel(
    plane: LocalControlPlane, reach: tuple[str, httpx.ASGITransport | None], name: str
) -> None:
    """Task.cancel() on a wait returns promptly and leaves nothing running."""
    async with async_manager(*reach, account_id="local", timeouts=small_timeouts(LONG, LONG)) as fw:
        baseline = other_tasks()
        endpoint_name, wait = await start_hanging(plane, name, fw)
        task = asyncio.get_running_loop().create_task(wait(fw))
        await in_flight(plane, endpoint_name)
        started = time.monotonic()
        task.cancel()
        await asyncio.wait([task])
        assert task.cancelled()
        await check_clean(fw, started, baseline)


@pytest.mark.parametrize("name", list(WAITS))
async def test_cancel_scope(
    plane: LocalControlPlane, reach: tuple[str, httpx.ASGITransport | None], name: str
) -> None:
    """Cancelling an anyio cancel scope around a wait returns promptly and leaves nothing."""
    async with async_manager(*reach, account_id="local", timeouts=small_timeouts(LONG, LONG)) as fw:
        baseline = other_tasks()
        endpoint_name, wait = await start_hanging(plane, name, fw)
        finished = []

        async def run() -> None:
            await wait(fw)
            finished.append(True)

        async with anyio.create_task_group() as tg:
            tg.start_soon(run)
            await in_flight(plane, endpoint_name)
            started = time.monotonic()
            tg.cancel_scope.cancel()
        assert not finished
        await check_clean(fw, started, baseline)


@pytest.mark.parametrize("name", list(WAITS))
async def test_move_on_after(
    plane: LocalControlPlane, reach: tuple[str, httpx.ASGITransport | None], name: str
) -> None:
    """move_on_after() around a wait gives up at its deadline and leaves nothing running."""
    async with async_manager(*reach, account_id="local", timeouts=small_timeouts(LONG, LONG)) as fw:
        baseline = other_tasks()
        _, wait = await start_hanging(plane, name, fw)
        started = time.monotonic()
        with anyio.move_on_after(0.3) as scope:
            await wait(fw)
        assert scope.cancelled_caught
        await check_clean(fw, started, baseline)


async def test_cancelled_wait_does_not_stall_the_next(
    plane: LocalControlPlane, reach: tuple[str, httpx.ASGITransport | None]
) -> None:
    """A waiter cancelled mid-poll hands over: a second waiter on the same key still polls."""
    async with async_manager(*reach, account_id="local") as fw:
        with anyio.move_on_after(0.1):
            await fw.wait_for_ready("booting", LONG, POLL)
        before = plane.stats.requests["get"]
        with anyio.move_on_after(0.3):
            await fw.wait_for_ready("booting", LONG, POLL)
        assert plane.stats.requests["get"] > before
