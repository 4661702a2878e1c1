"""The one poll-until-done loop behind every `wait_*`: deadline, backoff, shared pollers.

Waiters on the same key (say, one deployment's hot-load status) share one poll loop: whichever
waiter finds no poll in flight becomes the leader for one fetch, publishes the observation to
all, and steps down. No background task outlives its waiters, and a cancelled leader hands over
to the next waiter at once.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Hashable
from typing import Generic, TypeVar

import anyio
import attrs

from ._config import Deadline

__all__ = ["Observation", "PollHub", "PollSchedule"]

T = TypeVar("T")
R = TypeVar("R")


@attrs.frozen
class PollSchedule:
    """Gaps between polls: `first_s`, doubling up to `max_s` (the caller's `poll_interval_s`)."""

    max_s: float
    first_s: float = 0.1
    growth: float = 2.0

    def gap(self, index: int) -> float:
        return min(self.max_s, self.first_s * (self.growth ** min(index, 64)))


@attrs.frozen
class Observation(Generic[T]):
    """One fetch's outcome: a value, or the error it raised, and when the fetch started."""

    value: T | None
    error: Exception | None
    started_at: float


class _Channel:
    __slots__ = (
        "changed",
        "gap_index",
        "latest",
        "leader",
        "next_fetch_at",
        "version",
        "waiters",
        "wake",
    )

    def __init__(self, now: float) -> None:
        self.latest: Observation[object] | None = None
        self.version = 0
        self.changed = anyio.Event()
        self.wake = anyio.Event()
        self.leader = False
        self.next_fetch_at = now
        self.gap_index = 0
        self.waiters = 0


class PollHub:
    """Shared poll loops keyed by what they poll. One per manager, used on its event loop."""

    def __init__(self, *, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._channels: dict[Hashable, _Channel] = {}
        #: Fetches made, for tests and benchmarks.
        self.fetches = 0

    def waiters(self, key: Hashable) -> int:
        channel = self._channels.get(key)
        return 0 if channel is None else channel.waiters

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
        """Poll `fetch` until `evaluate` returns non-None (or raises), or the deadline passes.

        `evaluate` sees only observations that started after this waiter joined, so nothing
        stale (from before, say, our own hot-load POST) can satisfy it.
        """
        now = self._clock()
        channel = self._channels.get(key)
        if channel is None:
            channel = self._channels[key] = _Channel(now)
        channel.waiters += 1
        channel.gap_index = 0
        if channel.next_fetch_at > now:
            channel.next_fetch_at = now
            _fire(channel, "wake")
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
                        _fire(channel, "changed")
                else:
                    changed = channel.changed
                    with anyio.move_on_after(deadline.remaining()):
                        await changed.wait()
        finally:
            channel.waiters -= 1
            if channel.waiters == 0 and self._channels.get(key) is channel:
                del self._channels[key]

    async def _lead(
        self,
        channel: _Channel,
        fetch: Callable[[Deadline], Awaitable[T]],
        deadline: Deadline,
        schedule: PollSchedule,
        retry_after: Callable[[Exception], float | None],
    ) -> None:
        while (delay := channel.next_fetch_at - self._clock()) > 0:
            remaining = deadline.remaining()
            if remaining <= 0:
                return
            # A waiter that joins wakes us early; our own deadline may end the wait first.
            wake = channel.wake
            with anyio.move_on_after(min(delay, remaining)):
                await wake.wait()
        started = self._clock()
        self.fetches += 1
        gap = schedule.gap(channel.gap_index)
        channel.gap_index += 1
        # Set before the fetch, so that a waiter joining while it is in flight can pull the
        # next poll forward (it needs an observation that starts after it joined).
        channel.next_fetch_at = started + gap
        try:
            value = await fetch(deadline)
        except Exception as exc:  # published to every waiter, whose evaluate decides
            channel.latest = Observation(None, exc, started)
            floor = retry_after(exc)
            if floor is not None:
                channel.next_fetch_at = max(channel.next_fetch_at, started + floor)
        else:
            channel.latest = Observation(value, None, started)
        channel.version += 1


def _fire(channel: _Channel, name: str) -> None:
    event: anyio.Event = getattr(channel, name)
    setattr(channel, name, anyio.Event())
    event.set()
