"""PollHub: one shared poll loop per key, fresh observations per waiter, one deadline."""

from __future__ import annotations

import random
from typing import Any

import anyio
import anyio.lowlevel
import pytest

from fireworks_deploy._config import Deadline
from fireworks_deploy._polling import Observation, PollHub, PollSchedule, _Channel


class WaitTimeoutError(Exception):
    def __init__(self, last: Observation[Any] | None) -> None:
        super().__init__("timeout")
        self.last = last


class Source:
    """A fetch that counts calls and can be held open."""

    def __init__(self) -> None:
        self.calls = 0
        self.gate: anyio.Event | None = None
        self.entered = anyio.Event()
        self.fail_with: Exception | None = None

    async def __call__(self, deadline: Deadline) -> int:
        self.calls += 1
        self.entered.set()
        if self.gate is not None:
            await self.gate.wait()
        if self.fail_with is not None:
            raise self.fail_with
        return self.calls


def at_least(n: int) -> Any:
    def evaluate(obs: Observation[int]) -> int | None:
        if obs.error is not None:
            return None
        assert obs.value is not None
        return obs.value if obs.value >= n else None

    return evaluate


def never(obs: Observation[int]) -> int | None:
    return None


async def wait(
    hub: PollHub,
    source: Source,
    evaluate: Any,
    *,
    timeout_s: float = 5,
    max_s: float = 0.02,
    first_s: float = 0.01,
    key: str = "k",
    retry_after: Any = lambda _: None,
) -> Any:
    return await hub.wait(
        key,
        source,
        evaluate,
        deadline=Deadline(timeout_s),
        schedule=PollSchedule(max_s, first_s=first_s),
        on_timeout=WaitTimeoutError,
        retry_after=retry_after,
    )


class TestSchedule:
    def test_gap_doubles_to_cap(self) -> None:
        """Gaps start small and double up to poll_interval_s."""
        schedule = PollSchedule(1.0)
        assert [schedule.gap(i) for i in range(6)] == [0.1, 0.2, 0.4, 0.8, 1.0, 1.0]
        assert PollSchedule(5.0).gap(10_000) == 5.0


class TestSharing:
    @pytest.mark.parametrize("waiters", [1, 50])
    async def test_many_waiters_share_one_loop(self, waiters: int) -> None:
        """M waiters on one key cause about as many fetches as one waiter."""
        hub, source = PollHub(), Source()
        results: list[int] = []

        async def one() -> None:
            results.append(await wait(hub, source, at_least(3)))

        async with anyio.create_task_group() as tg:
            for _ in range(waiters):
                tg.start_soon(one)
        assert len(results) == waiters
        assert source.calls <= 4
        assert hub.fetches == source.calls
        assert hub.waiters("k") == 0
        assert hub._channels == {}

    async def test_different_keys_poll_separately(self) -> None:
        """Waiters on different keys do not share fetches."""
        hub, a, b = PollHub(), Source(), Source()
        async with anyio.create_task_group() as tg:
            tg.start_soon(lambda: wait(hub, a, at_least(2), key="a"))
            tg.start_soon(lambda: wait(hub, b, at_least(2), key="b"))
        assert a.calls == 2
        assert b.calls == 2

    async def test_first_poll_is_immediate(self) -> None:
        """The first fetch happens at once, not after poll_interval_s."""
        hub, source = PollHub(), Source()
        with anyio.fail_after(5):
            assert await wait(hub, source, at_least(1), max_s=30, first_s=30) == 1

    async def test_joiner_ignores_older_observations(self) -> None:
        """A waiter is only shown fetches that started after it joined."""
        hub, source = PollHub(), Source()
        seen: list[int] = []

        def record(obs: Observation[int]) -> int | None:
            assert obs.value is not None
            seen.append(obs.value)
            return obs.value

        source.gate = anyio.Event()
        async with anyio.create_task_group() as tg:
            tg.start_soon(lambda: wait(hub, source, at_least(1)))
            await source.entered.wait()
            late: list[int] = []

            async def joiner() -> None:
                late.append(await wait(hub, source, record))

            tg.start_soon(joiner)
            await anyio.wait_all_tasks_blocked()
            source.gate.set()
        assert seen == [2]
        assert late == [2]

    async def test_joiner_during_fetch_gets_prompt_poll(self) -> None:
        """A waiter joining while a fetch is in flight is not made to wait a full interval."""
        hub, source = PollHub(), Source()
        source.gate = anyio.Event()
        with anyio.fail_after(5):
            async with anyio.create_task_group() as tg:
                tg.start_soon(lambda: wait(hub, source, never, timeout_s=8, max_s=10, first_s=10))
                await source.entered.wait()
                result: list[int] = []

                done = anyio.Event()

                async def joiner() -> None:
                    result.append(
                        await wait(hub, source, at_least(1), timeout_s=8, max_s=10, first_s=0.05)
                    )
                    done.set()

                tg.start_soon(joiner)
                await anyio.wait_all_tasks_blocked()
                source.gate.set()
                await done.wait()
                tg.cancel_scope.cancel()
        assert result == [2]

    async def test_new_waiter_wakes_a_sleeping_loop(self) -> None:
        """A waiter joining during a long gap triggers a poll within its own first gap."""
        hub, source = PollHub(), Source()
        with anyio.fail_after(5):
            async with anyio.create_task_group() as tg:
                tg.start_soon(lambda: wait(hub, source, never, timeout_s=8, max_s=10, first_s=10))
                await source.entered.wait()
                await anyio.wait_all_tasks_blocked()
                joined = wait(hub, source, at_least(2), timeout_s=8, max_s=10, first_s=0.05)
                assert await joined == 2
                tg.cancel_scope.cancel()

    async def test_late_joiners_share_one_extra_poll(self) -> None:
        """Waiters arriving one by one (threads of the sync facade) cost one poll, not one each."""
        hub, source = PollHub(), Source()
        results: list[int] = []

        async def joiner() -> None:
            results.append(
                await wait(hub, source, at_least(2), timeout_s=8, max_s=10, first_s=0.05)
            )

        with anyio.fail_after(5):
            async with anyio.create_task_group() as tg:
                tg.start_soon(lambda: wait(hub, source, never, timeout_s=8, max_s=10, first_s=10))
                await source.entered.wait()
                await anyio.wait_all_tasks_blocked()
                async with anyio.create_task_group() as joiners:
                    for _ in range(20):
                        joiners.start_soon(joiner)
                        await anyio.lowlevel.checkpoint()  # each arrives a little later
                tg.cancel_scope.cancel()
        assert results == [2] * 20
        assert source.calls == 2

    async def test_cancelled_leader_hands_over(self) -> None:
        """When the polling waiter is cancelled mid-fetch, another waiter takes over at once."""
        hub, source = PollHub(), Source()
        source.gate = anyio.Event()
        with anyio.fail_after(5):
            async with anyio.create_task_group() as tg:
                leader_scope = anyio.CancelScope()

                async def leader() -> None:
                    with leader_scope:
                        await wait(hub, source, never)

                tg.start_soon(leader)
                await source.entered.wait()
                result: list[int] = []

                async def follower() -> None:
                    result.append(await wait(hub, source, at_least(1)))

                tg.start_soon(follower)
                await anyio.wait_all_tasks_blocked()
                source.gate = None
                leader_scope.cancel()
            assert result == [2]
        assert hub._channels == {}


class TestOutcomes:
    async def test_deadline_raises_on_timeout_with_last(self) -> None:
        """At the deadline the waiter raises on_timeout's error, given the last observation."""
        hub, source = PollHub(), Source()
        with pytest.raises(WaitTimeoutError) as info:
            await wait(hub, source, never, timeout_s=1.0)
        assert info.value.last is not None
        assert info.value.last.value == source.calls

    async def test_timeout_reports_last_value_over_later_errors(self) -> None:
        """A timeout carries the last value seen, not a transport error that came after it."""
        hub = PollHub()
        calls = 0

        async def fetch(deadline: Deadline) -> int:
            nonlocal calls
            calls += 1
            if calls > 1:
                raise ValueError("connection reset")
            return 7

        with pytest.raises(WaitTimeoutError) as info:
            await hub.wait(
                "k",
                fetch,
                never,
                deadline=Deadline(0.5),
                schedule=PollSchedule(0.02, first_s=0.01),
                on_timeout=WaitTimeoutError,
            )
        assert calls > 1
        assert info.value.last is not None
        assert info.value.last.value == 7

    async def test_no_fetch_is_made_once_the_deadline_has_passed(self) -> None:
        """A poll due after the deadline is not sent (it could only fail and mask the status)."""
        hub, source = PollHub(), Source()
        with pytest.raises(WaitTimeoutError) as info:
            await wait(hub, source, never, timeout_s=0.3, max_s=10.0, first_s=10.0)
        assert source.calls == 1
        assert info.value.last is not None
        assert info.value.last.error is None

    async def test_evaluate_error_reaches_only_its_waiter(self) -> None:
        """An error raised by one waiter's evaluate does not end the others."""
        hub, source = PollHub(), Source()

        def explode(obs: Observation[int]) -> int | None:
            raise RuntimeError("mine")

        outcomes: dict[str, Any] = {}

        async def bad() -> None:
            try:
                await wait(hub, source, explode)
            except RuntimeError as exc:
                outcomes["bad"] = exc

        async def good() -> None:
            outcomes["good"] = await wait(hub, source, at_least(3))

        async with anyio.create_task_group() as tg:
            tg.start_soon(bad)
            tg.start_soon(good)
        assert isinstance(outcomes["bad"], RuntimeError)
        assert outcomes["good"] == 3

    async def test_fetch_errors_are_observations(self) -> None:
        """A failing fetch is published as an observation, not raised into the loop."""
        hub, source = PollHub(), Source()
        source.fail_with = ValueError("boom")
        errors: list[Exception] = []

        def evaluate(obs: Observation[int]) -> int | None:
            assert obs.error is not None
            errors.append(obs.error)
            return 1 if len(errors) >= 2 else None

        assert await wait(hub, source, evaluate) == 1
        assert all(isinstance(e, ValueError) for e in errors)

    async def test_retry_after_is_a_floor_on_the_gap(self) -> None:
        """A fetch error's Retry-After pushes the next poll back."""
        hub, source = PollHub(), Source()
        source.fail_with = ValueError("busy")
        with pytest.raises(WaitTimeoutError):
            await wait(hub, source, never, timeout_s=0.3, retry_after=lambda _: 10.0)
        assert source.calls == 1

    async def test_without_retry_after_polls_keep_coming(self) -> None:
        """Without Retry-After the loop keeps polling at the schedule."""
        hub, source = PollHub(), Source()
        source.fail_with = ValueError("busy")
        with pytest.raises(WaitTimeoutError):
            await wait(hub, source, never, timeout_s=1.0)
        assert source.calls >= 3


class TestSpreading:
    async def test_many_waits_spread_their_first_polls(self) -> None:
        """While many waits are active, a new one's first poll is spread over the interval
        (no burst at t=0); a lone wait polls at once. Counted on a fake clock."""
        now = [100.0]
        hub = PollHub(clock=lambda: now[0], spread_above=2, rng=random.Random(7))
        firsts: list[float] = []

        async def fetch(_: Deadline) -> int:
            firsts.append(now[0])
            return 1

        def done(obs: Observation[int]) -> int | None:
            return obs.value

        async def one(key: str) -> None:
            await hub.wait(
                key,
                fetch,
                done,
                deadline=Deadline(30),
                schedule=PollSchedule(5.0, backoff=False),
                on_timeout=lambda _: TimeoutError(),
            )

        # Hold two channels open, then start a third: it is spread, not immediate.
        channels = hub._channels
        channels["a"] = _Channel(1e9, calm=False)
        channels["b"] = _Channel(1e9, calm=False)
        with anyio.fail_after(10):
            async with anyio.create_task_group() as tg:
                tg.start_soon(one, "c")
                await anyio.lowlevel.checkpoint()
                spread = hub._channels["c"]
                assert spread.calm
                assert 100.0 < spread.next_fetch_at < 105.0
                spread.next_fetch_at = now[0]  # let it run now
                spread.wake.set()
        del channels["a"], channels["b"]
        with anyio.fail_after(10):
            await one("d")
        assert firsts[-1] == 100.0  # a lone wait's first poll is prompt
