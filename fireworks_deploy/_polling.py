"""The one poll-until-done loop behind every `wait_*`: deadline, backoff, shared pollers.

Waiters on the same key (say, one deployment's hot-load status) share one poll loop: whichever
waiter finds no poll in flight becomes the leader for one fetch, publishes the observation to
all, and steps down. No background task outlives its waiters, and a cancelled leader hands over
to the next waiter at once.

A wait treats a host that is not there as every other call does: after a fetch that could not
connect (refused, or a name that does not resolve), the next poll comes no later than the end of
the operation's connect budget (`Timeouts.connect_budget_s`, kept by its `Deadline`), and if
that one fails too the wait ends with `ServerUnreachableError`, not at its deadline.
"""

from __future__ import annotations

import math
import random
import time
from collections import deque
from collections.abc import Awaitable, Callable, Hashable
from typing import Any, Generic, TypeVar

import anyio
import attrs

from ._config import POLL_INTERVAL_FLOOR_S, Deadline
from ._errors import APIConnectionError
from ._loops import Backend

__all__ = ["HotloadTiming", "Observation", "PollHub", "PollSchedule", "describe_last"]

T = TypeVar("T")
R = TypeVar("R")


@attrs.frozen
class PollSchedule:
    """When to poll. `max_s` is the caller's `poll_interval_s`, and it is a promise: a wait
    polls at least at every `origin + k * max_s` (the grid of the wait's first poll), so no
    schedule ever sees a change later than a plain poller at that interval would.

    `backoff` adds cheap early polls between grid points: `first_s`, growing by `growth`, up
    to the grid. It is meant for the moment right after our own POST (a hot-load), when
    completion may come at any time; a plain wait polls on the grid only.

    With `expected_at` (a clock time at which the condition is predicted to hold), the first
    poll lands on it and later ones follow at half the overshoot so far (at least `dense_s`
    apart), still never later than the grid, so completion is seen promptly for about the
    cost of a fixed-interval poller.

    `origin` is the grid's start; the poll hub sets it to the wait's first poll. Without it
    the grid is `max_s` after each poll.
    """

    max_s: float
    first_s: float = 0.1
    growth: float = 2.0
    expected_at: float | None = None
    dense_s: float = 0.1
    backoff: bool = True
    origin: float | None = None

    def gap(self, index: int) -> float:
        return min(self.max_s, self.first_s * (self.growth ** min(index, 64)))

    def first_at(self, now: float) -> float:
        """When the first poll of a new wait is due: at once, or at the predicted completion
        (never later than `max_s` from now) when one is known."""
        if self.expected_at is not None and self.expected_at > now:
            return min(self.expected_at, now + self.max_s)
        return now

    def grid_after(self, started: float) -> float:
        """The first grid point after a poll that started at `started` (not closer than half
        of `first_s`, so a poll pulled just before a grid point is not followed by another)."""
        if self.origin is None:
            return started + self.max_s
        closest = started + min(self.first_s, self.max_s) / 2
        k = math.floor((closest - self.origin) / self.max_s) + 1
        return self.origin + k * self.max_s

    def next_at(self, started: float, index: int) -> float:
        """When to poll next, after a poll that started at `started` (the `index`-th)."""
        grid = self.grid_after(started)
        expected = self.expected_at
        if expected is None:
            return min(started + self.gap(index), grid) if self.backoff else grid
        if started < expected:
            return min(expected, grid)
        # Late: poll again after half the overshoot so far (at least dense_s), so a load that is
        # a little late is seen at once and one that is much later costs few polls.
        return min(started + max(self.dense_s, (started - expected) / 2), grid)


@attrs.frozen
class Observation(Generic[T]):
    """One fetch's outcome: a value, or the error it raised, and when the fetch started."""

    value: T | None
    error: Exception | None
    started_at: float


def describe_last(last: Observation[Any] | None) -> str:
    """What a timed-out wait last saw, when it saw no value: for its error message."""
    if last is None:
        return "no answer yet"
    if last.error is not None:
        return f"last error: {last.error}"
    return "no status"


class _Channel:
    __slots__ = (
        "calm",
        "changed",
        "gap_index",
        "latest",
        "leader",
        "next_fetch_at",
        "origin",
        "version",
        "waiters",
        "wake",
    )

    def __init__(self, first_at: float, *, calm: bool) -> None:
        self.latest: Observation[object] | None = None
        self.version = 0
        #: Made when someone waits on them (most channels have one waiter, who leads).
        self.changed: anyio.Event | None = None
        self.wake: anyio.Event | None = None
        self.leader = False
        self.next_fetch_at = first_at
        #: The start of the poll grid (the first poll), and whether the extra early polls are
        #: off because many waits were active when this one began.
        self.origin = first_at
        self.calm = calm
        self.gap_index = 0
        self.waiters = 0


class PollHub:
    """Shared poll loops keyed by what they poll. One per manager, used on its event loop.

    While `spread_above` or more loops are active, a new loop's first poll is spread at random
    over its first interval (unless it polls at a predicted completion) and it makes no extra
    early polls, so thousands of waits started together do not all poll at the same instants;
    a lone wait still polls at once.
    """

    SPREAD_ABOVE = 64

    def __init__(
        self,
        *,
        clock: Callable[[], float] = time.monotonic,
        spread_above: int = SPREAD_ABOVE,
        rng: random.Random | None = None,
    ) -> None:
        self._clock = clock
        self._channels: dict[Hashable, _Channel] = {}
        self._spread_above = spread_above
        self._random = rng or random.Random()  # noqa: S311 (jitter, not a secret)
        #: Fetches made, for tests and benchmarks.
        self.fetches = 0
        self._backend: Backend | None = None

    def _backend_now(self) -> Backend:
        if self._backend is None:
            self._backend = Backend.current()
        return self._backend

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
            busy = len(self._channels) >= self._spread_above
            first = schedule.first_at(now)
            if busy and schedule.expected_at is None:
                first += self._random.random() * schedule.max_s
            channel = self._channels[key] = _Channel(first, calm=busy)
        else:
            # Later waiters (threads of the sync facade arrive one by one) pull the next poll
            # no closer than first_s, so M joiners cost one fetch, not M.
            soon = now + schedule.first_s
            if channel.next_fetch_at > soon:
                channel.next_fetch_at = soon
                channel.gap_index = 0
                _fire(channel, "wake")
        channel.waiters += 1
        changes: dict[str, Any] = {}
        if schedule.origin is None:
            changes["origin"] = channel.origin
        if channel.calm and schedule.backoff:
            changes["backoff"] = False
        if changes:
            schedule = attrs.evolve(schedule, **changes)
        joined = now
        seen = -1
        last: Observation[T] | None = None
        last_value: Observation[T] | None = None
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
                    if observed.error is None:
                        last_value = last
                    result = evaluate(last)  # type: ignore[arg-type]
                    if result is not None:
                        return result
                if deadline.expired:
                    # What the server last said beats a later transport error.
                    raise on_timeout(last_value or last)
                if not channel.leader:
                    channel.leader = True
                    try:
                        await self._lead(channel, fetch, deadline, schedule, retry_after)
                    finally:
                        channel.leader = False
                        _fire(channel, "changed")
                else:
                    if channel.changed is None:
                        channel.changed = self._backend_now().event()
                    changed = channel.changed
                    with self._backend_now().move_on_after(deadline.remaining()):
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
            if channel.wake is None:
                channel.wake = self._backend_now().event()
            wake = channel.wake
            with self._backend_now().move_on_after(min(delay, remaining)):
                await wake.wait()
        if deadline.expired:
            return  # a fetch now could only fail with "deadline passed" and mask the last status
        started = self._clock()
        self.fetches += 1
        # Set before the fetch, so that a waiter joining while it is in flight can pull the
        # next poll forward (it needs an observation that starts after it joined).
        channel.next_fetch_at = schedule.next_at(started, channel.gap_index)
        channel.gap_index += 1
        try:
            value = await fetch(deadline)
        except Exception as exc:  # published to every waiter, whose evaluate decides
            channel.latest = Observation(None, exc, started)
            connect_left = deadline.connect_retry_in()
            if connect_left is not None and isinstance(exc, APIConnectionError):
                # Do not sit out a long poll interval on a host that refuses: try again when
                # the connect budget runs out, which either reaches it or ends the wait.
                retry_at = max(self._clock() + connect_left, started + POLL_INTERVAL_FLOOR_S)
                channel.next_fetch_at = min(channel.next_fetch_at, retry_at)
            floor = retry_after(exc)
            if floor is not None:
                channel.next_fetch_at = max(channel.next_fetch_at, started + floor)
        else:
            channel.latest = Observation(value, None, started)
        channel.version += 1


def _fire(channel: _Channel, name: str) -> None:
    """Wake whoever waits on the channel's `name` event; the next wait makes a new one."""
    event: anyio.Event | None = getattr(channel, name)
    if event is not None:
        setattr(channel, name, None)
        event.set()


class HotloadTiming:
    """Learned hot-load durations (seconds after the POST), per deployment and kind.

    An RL loop hot-loads every step, so the next load of the same kind (base or delta) usually
    takes about as long as the last few. Each finished load leaves an estimate of when it could
    first have been done: the middle of the two polls around completion when they were close
    ("tight"), else the last poll that saw it not done. A load already done at its first poll
    only bounds the duration from above: that bound is shrunk, so the next load is polled
    earlier until a poll brackets it again.

    The prediction is the earliest of the recent estimates: loads that vary from step to step
    are polled from their fastest recent time on, so most are seen within a dense gap of
    finishing, and the schedule's half-the-overshoot gaps keep a slower one cheap.
    """

    TIGHT_S = 0.25
    SHRINK = 0.8

    def __init__(self, keep: int = 5) -> None:
        self._keep = keep
        self._seen: dict[tuple[str | None, bool], deque[float]] = {}

    def record(self, deployment_id: str, is_delta: bool, lower: float | None, upper: float) -> None:
        """A load finished: it was not done at `lower` (None: no poll saw it running) and
        done at `upper`."""
        if lower is None:
            estimate = upper * self.SHRINK
        elif upper - lower <= self.TIGHT_S:
            estimate = (upper + lower) / 2
        else:
            estimate = lower
        for key in ((deployment_id, is_delta), (None, is_delta)):
            self._seen.setdefault(key, deque(maxlen=self._keep)).append(estimate)

    def predict(self, deployment_id: str, is_delta: bool) -> float | None:
        """Seconds after the POST at which to poll first, or None if nothing was learned."""
        for key in ((deployment_id, is_delta), (None, is_delta)):
            seen = self._seen.get(key)
            if seen:
                return min(seen)
        return None
