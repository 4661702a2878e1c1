"""Measuring a poll schedule from the client's side: slip, expired fetches, CPU over time.

Every poll is one `PollRecord`: when it was *due* (its scheduled time), when the poller *fired*
(woke and started the fetch), when the request was *sent* (handed to the HTTP client, after any
concurrency gate) and when the fetch ended. Slip = sent - due. A fetch that fired but ended
without its request ever being sent (its deadline passed while it queued) is *expired unsent*.

- The bare floors (`scale` scenario) run their own loops and fill records directly.
- Our manager is observed without changing its behaviour: `OurPollProbe` wraps the fetch and
  the evaluation that each `wait_*` hands to the manager's shared poll hub and reads the hub's
  own schedule for that key (when each fetch was due); `send_stamps()` wraps
  `httpx.AsyncClient.send` in this worker process to stamp the send. These read private
  attributes (`manager._hub.wait`, `manager._hub._channels`); if the SDK changes shape, the
  probe says why and the slip is reported as not measured, never guessed.
"""

from __future__ import annotations

import inspect
import threading
import time
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

import httpx

__all__ = ["CpuSampler", "OurPollProbe", "PollRecord", "percentile", "send_stamps", "summarize"]


class PollRecord:
    """One poll: due, fired, sent (None if never sent), ended (None while in flight)."""

    __slots__ = ("due", "ended", "fired", "sent")

    def __init__(self, due: float, fired: float) -> None:
        self.due = due
        self.fired = fired
        self.sent: float | None = None
        self.ended: float | None = None


_CURRENT: ContextVar[PollRecord | None] = ContextVar("bench_poll_record", default=None)


@contextmanager
def polling(record: PollRecord) -> Iterator[PollRecord]:
    """Mark `record` as the poll of this task while its fetch runs (for `send_stamps`)."""
    token = _CURRENT.set(record)
    try:
        yield record
    finally:
        _CURRENT.reset(token)
        record.ended = time.monotonic()


_INSTALLED: set[str] = set()


def send_stamps() -> None:
    """Stamp `PollRecord.sent` when the current task's poll reaches `httpx.AsyncClient.send`.

    Installed once per worker process. The cost (a context-variable read per request) is paid by
    every httpx-based peer in the scenario alike.
    """
    if "send" in _INSTALLED:
        return
    _INSTALLED.add("send")
    original = httpx.AsyncClient.send

    async def send(self: httpx.AsyncClient, request: httpx.Request, **kwargs: Any) -> Any:
        record = _CURRENT.get()
        if record is not None and record.sent is None:
            record.sent = time.monotonic()
        return await original(self, request, **kwargs)

    httpx.AsyncClient.send = send  # type: ignore[method-assign]


class OurPollProbe:
    """Records every status fetch of one `AsyncDeploymentManager` (see the module docstring).

    The due time of each fetch is the manager's own: its poll hub keeps, per polled key, a
    channel whose `origin` is the wait's first scheduled poll and whose `next_fetch_at` is the
    next one (set when a fetch starts, adjusted by a Retry-After or an unreachable host before
    the waiter evaluates the result). The probe reads `origin` at the first fetch and
    `next_fetch_at` when the waiter evaluates each result. Exact for one waiter per key (the
    scale scenario); a waiter joining an existing poll loop can move the next fetch earlier.
    """

    def __init__(self) -> None:
        self.records: list[PollRecord] = []
        self.unavailable: str | None = None

    def install(self, manager: Any) -> bool:
        hub: Any = getattr(manager, "_hub", None)
        wait = getattr(hub, "wait", None)
        channels = getattr(hub, "_channels", None)
        if hub is None or wait is None or not isinstance(channels, dict):
            self.unavailable = "the manager has no poll hub (`_hub.wait`, `_hub._channels`)"
            return False
        params = list(inspect.signature(wait).parameters)
        if params[:3] != ["key", "fetch", "evaluate"]:
            self.unavailable = f"`_hub.wait` now takes {params}"
            return False
        records = self.records
        clock = time.monotonic
        probe = self

        async def probed_wait(
            key: Any,
            fetch: Callable[..., Awaitable[Any]],
            evaluate: Callable[[Any], Any],
            *args: Any,
            **kwargs: Any,
        ) -> Any:
            due: list[float | None] = [None]

            def scheduled(name: str) -> float | None:
                value = getattr(channels.get(key), name, None)
                if not isinstance(value, float):
                    probe.unavailable = f"the poll channel has no float `{name}`"
                    return None
                return value

            async def probed_fetch(*fetch_args: Any, **fetch_kwargs: Any) -> Any:
                fired = clock()
                when = due[0] if due[0] is not None else scheduled("origin")
                record = PollRecord(fired if when is None else when, fired)
                records.append(record)
                with polling(record):
                    return await fetch(*fetch_args, **fetch_kwargs)

            def probed_evaluate(observation: Any) -> Any:
                due[0] = scheduled("next_fetch_at")
                return evaluate(observation)

            return await wait(key, probed_fetch, probed_evaluate, *args, **kwargs)

        hub.wait = probed_wait
        send_stamps()
        return True


def percentile(values: list[float], q: float) -> float:
    """The q-th percentile (0-100) by linear interpolation; NaN for no values."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    pos = (len(ordered) - 1) * q / 100
    low = int(pos)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (pos - low)


def summarize(records: list[PollRecord]) -> dict[str, float]:
    """Slip p50/p99/max (sent - due, seconds) and the count of fetches that expired unsent."""
    slips = [r.sent - r.due for r in records if r.sent is not None]
    unsent = sum(1 for r in records if r.sent is None and r.ended is not None)
    return {
        "fetches": float(len(records)),
        "slip_p50_s": percentile(slips, 50),
        "slip_p99_s": percentile(slips, 99),
        "slip_max_s": max(slips, default=float("nan")),
        "expired_unsent": float(unsent),
    }


class CpuSampler:
    """Process CPU time sampled on a side thread, to split a run into start-up and steady state."""

    def __init__(self, every_s: float = 0.25) -> None:
        self._every = every_s
        self.samples: list[tuple[float, float]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="bench-cpu", daemon=True)

    def _run(self) -> None:
        while True:
            self.samples.append((time.monotonic(), time.process_time()))
            if self._stop.wait(self._every):
                return

    def __enter__(self) -> CpuSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.samples.append((time.monotonic(), time.process_time()))

    def cores_after(self, start: float) -> float:
        """CPU seconds per wall second from the first sample at or after `start` to the end."""
        later = [s for s in self.samples if s[0] >= start]
        if len(later) < 2 or later[-1][0] - later[0][0] <= 0:
            return float("nan")
        (t0, c0), (t1, c1) = later[0], later[-1]
        return (c1 - c0) / (t1 - t0)
