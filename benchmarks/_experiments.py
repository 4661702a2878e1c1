"""Experiments: proposed SDK changes, applied by monkeypatch inside one benchmark client only.

Nothing here changes fireworks_deploy; each function patches one manager instance so that the
effect of a proposed change can be measured next to the unpatched peer in the same run. Every
peer that uses one is labelled "(experiment)" in the report.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import inspect
from collections.abc import Awaitable, Callable, Coroutine, Hashable
from typing import Any, TypeVar

import anyio

from fireworks_deploy import DeploymentManager, _polling
from fireworks_deploy._config import Deadline
from fireworks_deploy._polling import Observation, PollHub, PollSchedule

T = TypeVar("T")
R = TypeVar("R")


class ExperimentUnavailableError(Exception):
    """The SDK changed under the experiment (or already does it): the peer is skipped."""


def _check(func: Any, names: list[str], what: str) -> None:
    have = list(inspect.signature(func).parameters)
    if have != names:
        raise ExperimentUnavailableError(f"{what} now takes {have}; the experiment expects {names}")


def skipped(exc: ExperimentUnavailableError) -> dict[str, Any]:
    """The result a worker reports for an experiment that does not apply."""
    return {"skipped": f"experiment not applicable: {exc}", "wall_s": 0.0, "cpu_s": 0.0}


def one_hop_sync(manager: DeploymentManager) -> None:
    """`_sync.DeploymentManager._call` with one thread hop instead of two.

    anyio's `BlockingPortal.start_task_soon` blocks until the loop has *spawned* the task (one
    round trip), then `future.result()` waits for the result (a second one).
    `asyncio.run_coroutine_threadsafe` on the portal's loop needs only the second.
    """
    if not hasattr(manager, "_portal") or not hasattr(manager, "_inflight"):
        raise ExperimentUnavailableError("DeploymentManager no longer has _portal/_inflight")
    loop: asyncio.AbstractEventLoop = manager._portal.call(asyncio.get_running_loop)

    def call(func: Callable[..., Awaitable[Any]], /, *args: Any, **kwargs: Any) -> Any:
        with manager._lock:
            manager._check_usable()
            coro: Coroutine[Any, Any, Any] = func(*args, **kwargs)  # type: ignore[assignment]
            future: concurrent.futures.Future[Any] = asyncio.run_coroutine_threadsafe(coro, loop)
            manager._inflight.add(future)
        try:
            return future.result()
        except KeyboardInterrupt:
            future.cancel()
            raise
        finally:
            with manager._lock:
                manager._inflight.discard(future)

    manager._call = call  # type: ignore[method-assign]


def coalescing_hub() -> PollHub:
    """A `CoalescingPollHub`, if the SDK's `PollHub` internals still match its copy of `wait`."""
    _check(
        PollHub._lead,
        ["self", "channel", "fetch", "deadline", "schedule", "retry_after"],
        "PollHub._lead",
    )
    if not hasattr(_polling, "_Channel") or not hasattr(_polling, "_fire"):
        raise ExperimentUnavailableError("_polling._Channel/_fire are gone")
    return CoalescingPollHub()


class CoalescingPollHub(PollHub):
    """`PollHub` whose late joiners do not restart the shared poll at once.

    The only change is at join: when the channel already has waiters, a new waiter pulls the
    next fetch no earlier than `now + schedule.first_s` (instead of `now`), so waiters that
    arrive staggered (threads on the sync facade) share fetches instead of each forcing one.
    """

    async def wait(
        self,
        key: Hashable,
        fetch: Callable[[Deadline], Awaitable[T]],
        evaluate: Callable[[Observation[T]], R | None],
        *,
        deadline: Deadline,
        schedule: PollSchedule,
        on_timeout: Callable[[Observation[T] | None], BaseException],
        retry_after: Callable[[Exception], float | None] = lambda _: None,
    ) -> R:
        now = self._clock()
        channel = self._channels.get(key)
        if channel is None:
            channel = self._channels[key] = _polling._Channel(now)
        channel.waiters += 1
        soon = now if channel.waiters == 1 else now + schedule.first_s
        if channel.next_fetch_at > soon:
            channel.next_fetch_at = soon
            channel.gap_index = 0
            _polling._fire(channel, "wake")
        joined = now
        seen = -1
        last: Observation[T] | None = None
        try:
            while True:
                observed = channel.latest
                if (
                    observed is not None
                    and channel.version != seen
                    and observed.started_at >= joined
                ):
                    seen = channel.version
                    last = observed  # type: ignore[assignment]
                    result = evaluate(last)  # type: ignore[arg-type]
                    if result is not None:
                        return result
                if deadline.expired:
                    raise on_timeout(last)
                if not channel.leader:
                    channel.leader = True
                    try:
                        await self._lead(channel, fetch, deadline, schedule, retry_after)
                    finally:
                        channel.leader = False
                        _polling._fire(channel, "changed")
                else:
                    changed = channel.changed
                    with anyio.move_on_after(deadline.remaining()):
                        await changed.wait()
        finally:
            channel.waiters -= 1
            if channel.waiters == 0 and self._channels.get(key) is channel:
                del self._channels[key]
