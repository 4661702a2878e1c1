"""Learned hot-load timing: polls land around the predicted completion, not on a blind backoff."""

from __future__ import annotations

import itertools

import pytest

from fireworks_deploy import AsyncDeploymentManager, DeploymentConfig
from fireworks_deploy._polling import HotloadTiming, PollSchedule
from fireworks_deploy.local import LocalControlPlane


class TestPollSchedule:
    def test_without_prediction_backs_off_doubling_up_to_max(self) -> None:
        """Without a prediction, gaps double from first_s and stop at max_s."""
        schedule = PollSchedule(1.0, first_s=0.1)
        assert [round(schedule.next_at(10.0, i) - 10.0, 3) for i in range(6)] == [
            0.1,
            0.2,
            0.4,
            0.8,
            1.0,
            1.0,
        ]

    def test_polls_before_the_prediction_are_skipped(self) -> None:
        """A poll before the predicted completion is followed by one at the prediction."""
        schedule = PollSchedule(5.0, expected_at=13.0)
        assert schedule.next_at(10.0, 0) == 13.0

    def test_prediction_never_stretches_a_gap_beyond_max(self) -> None:
        """poll_interval_s stays the longest gap even when completion is predicted far ahead."""
        schedule = PollSchedule(2.0, expected_at=30.0)
        assert schedule.next_at(10.0, 0) == 12.0

    def test_polls_are_dense_just_after_the_prediction(self) -> None:
        """Just after the prediction, polls come dense_s apart."""
        schedule = PollSchedule(5.0, expected_at=13.0, dense_s=0.1)
        assert schedule.next_at(13.05, 3) == pytest.approx(13.15)

    def test_gaps_grow_with_the_overshoot(self) -> None:
        """A load much later than predicted is polled at half the overshoot, not every dense_s."""
        schedule = PollSchedule(5.0, expected_at=13.0, dense_s=0.1)
        assert schedule.next_at(15.0, 6) == pytest.approx(16.0)
        assert schedule.next_at(40.0, 9) == pytest.approx(45.0)

    def test_first_poll_lands_on_the_prediction(self) -> None:
        """With a prediction the first poll is due at it, capped at max_s; without, at once."""
        assert PollSchedule(5.0, expected_at=12.0).first_at(10.0) == 12.0
        assert PollSchedule(1.0, expected_at=12.0).first_at(10.0) == 11.0
        assert PollSchedule(5.0).first_at(10.0) == 10.0


class TestHotloadTiming:
    def test_unknown_until_recorded(self) -> None:
        """Nothing is predicted before a load of that kind was seen."""
        assert HotloadTiming().predict("d1", True) is None

    def test_tight_bracket_predicts_its_midpoint(self) -> None:
        """Two polls 0.1 s apart around completion give a tight estimate: their midpoint."""
        timing = HotloadTiming()
        timing.record("d1", True, 0.9, 1.0)
        assert timing.predict("d1", True) == pytest.approx(0.95)

    def test_loose_bracket_predicts_its_last_running_poll(self) -> None:
        """Polls far apart only say the load was still running at the earlier one: the next
        load is polled from there on, so a poll can bracket it closely."""
        timing = HotloadTiming()
        timing.record("d1", True, 5.0, 6.8)
        assert timing.predict("d1", True) == pytest.approx(5.0)

    def test_loose_upper_bound_is_shrunk(self) -> None:
        """A load done at its first poll bounds the duration from above only: that bound is
        shrunk, so the next load is polled earlier."""
        timing = HotloadTiming()
        timing.record("d1", False, None, 2.0)
        assert timing.predict("d1", False) == pytest.approx(2.0 * HotloadTiming.SHRINK)

    def test_varying_loads_are_polled_from_the_fastest_recent_one(self) -> None:
        """Loads whose duration varies by step converge: the prediction is the earliest recent
        estimate, and it stays put while loads keep within their usual range."""
        timing = HotloadTiming()
        for lower, upper in [(5.0, 5.15), (5.3, 5.45), (5.15, 5.3), (5.2, 5.35)]:
            timing.record("d1", True, lower, upper)
        assert timing.predict("d1", True) == pytest.approx(5.075)

    def test_a_faster_load_moves_the_prediction_earlier(self) -> None:
        """A load already done at the predicted time pulls later predictions earlier."""
        timing = HotloadTiming()
        timing.record("d1", True, 5.0, 5.1)
        timing.record("d1", True, None, 5.05)  # done at the first poll: it was faster
        assert timing.predict("d1", True) == pytest.approx(5.05 * HotloadTiming.SHRINK)

    def test_kinds_are_kept_apart(self) -> None:
        """Base loads and deltas are learned separately."""
        timing = HotloadTiming()
        timing.record("d1", False, 4.9, 5.0)
        assert timing.predict("d1", True) is None

    def test_other_deployments_of_the_fleet_inform_a_new_one(self) -> None:
        """A deployment never loaded before uses what the fleet has shown."""
        timing = HotloadTiming()
        timing.record("d1", True, 0.9, 1.0)
        assert timing.predict("d2", True) == timing.predict("d1", True)


async def test_repeated_deltas_learn_the_servers_hotload_time() -> None:
    """After a few deltas the prediction lands near the local plane's configured hot-load time."""
    plane = LocalControlPlane(boot_seconds=0.05, hotload_seconds=0.3)
    async with AsyncDeploymentManager(
        api_key="k", base_url="http://local", transport=plane.transport()
    ) as manager:
        await manager.create_or_get(DeploymentConfig("d1", "m", max_replica_count=1))
        await manager.wait_for_ready("d1", timeout_s=10, poll_interval_s=0.1)
        previous = None
        for step in range(4):
            metadata = None if previous is None else {"previous_snapshot_identity": previous}
            await manager.hotload_and_wait(
                "d1", "m", f"s{step}", metadata, timeout_seconds=20, poll_interval_s=1.0
            )
            previous = f"s{step}"
        predicted = manager._hotloads.timing.predict("d1", True)
    assert predicted is not None
    assert 0.15 <= predicted <= 0.9


class TestIntervalGrid:
    def test_backoff_never_passes_the_interval_grid(self) -> None:
        """Early polls are extra: a poll still lands on every origin + k * interval, so the
        schedule never sees a change later than a plain poller at the caller's interval."""
        schedule = PollSchedule(1.0, origin=10.0)
        at, index, polls = 10.0, 0, [10.0]
        while at < 14.0:
            at = schedule.next_at(at, index)
            index += 1
            polls.append(round(at, 6))
        assert {11.0, 12.0, 13.0, 14.0} <= set(polls)
        assert all(b - a <= 1.0 + 1e-9 for a, b in itertools.pairwise(polls))

    def test_without_backoff_polls_only_on_the_grid(self) -> None:
        """A plain wait (no POST of ours) polls at origin + k * interval, even after a late
        poll."""
        schedule = PollSchedule(5.0, backoff=False, origin=10.0)
        assert schedule.next_at(10.0, 0) == 15.0
        assert schedule.next_at(15.3, 1) == 20.0

    def test_prediction_stays_on_the_grid(self) -> None:
        """A predicted completion far off does not stretch a gap past the grid."""
        schedule = PollSchedule(2.0, expected_at=30.0, origin=10.0)
        assert schedule.next_at(10.5, 0) == 12.0

    def test_gentle_first_load_backoff_is_late_by_under_a_third(self) -> None:
        """The first load's back-off (growth 1.3) sees a 1 s load within ~0.35 s."""
        schedule = PollSchedule(5.0, growth=1.3, origin=0.0)
        at, index = 0.0, 0
        while at < 1.0:
            at = schedule.next_at(at, index)
            index += 1
        assert at - 1.0 <= 0.35
