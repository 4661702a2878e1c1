"""The local control plane's state machine, driven directly with a fake clock."""

from __future__ import annotations

from typing import Any

import pytest

from fireworks_deploy.local import (
    ControlPlaneState,
    DeploymentSpec,
    Fault,
    LocalControlPlane,
    ReplicaView,
)
from fireworks_deploy.local._state import StateError


class FakeClock:
    """A monotonic clock that only moves when told to."""

    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def state(clock: FakeClock) -> ControlPlaneState:
    return ControlPlaneState(boot_seconds=10, hotload_seconds=4, delete_seconds=1, clock=clock)


def spec(**kw: Any) -> DeploymentSpec:
    kw.setdefault("base_model", "accounts/fireworks/models/qwen3-8b")
    kw.setdefault("enable_hot_load", True)
    return DeploymentSpec(**kw)


def ready(state: ControlPlaneState, clock: FakeClock, dep: str = "d1", replicas: int = 1) -> None:
    state.create("local", dep, spec(min_replica_count=replicas, max_replica_count=replicas))
    clock.advance(state.boot_seconds)


def hotload(state: ControlPlaneState, identity: str, **kw: Any) -> str:
    return state.hotload(
        "local",
        "d1",
        "accounts/fireworks/models/qwen3-8b",
        identity,
        **kw,
    )


def status(state: ControlPlaneState, dep: str = "d1", **kw: Any) -> list[ReplicaView]:
    return state.hotload_status(
        "local",
        dep,
        "accounts/fireworks/models/qwen3-8b",
        **kw,
    )


def test_boot_timeline(state: ControlPlaneState, clock: FakeClock) -> None:
    """A deployment is CREATING for boot_seconds, then READY with its replicas serving."""
    view = state.create("local", "d1", spec(max_replica_count=2))
    assert (view.state, view.ready_replicas, view.booting_replicas) == ("CREATING", 0, 2)
    clock.advance(9.999)
    assert state.get("local", "d1").state == "CREATING"
    clock.advance(0.001)
    view = state.get("local", "d1")
    assert (view.state, view.ready_replicas, view.desired_replicas) == ("READY", 2, 2)
    assert [(e.kind, e.at) for e in state.events] == [("created", 100.0), ("ready", 110.0)]


def test_ready_event_is_stamped_at_boot_end_not_when_observed(
    state: ControlPlaneState, clock: FakeClock
) -> None:
    """The ready event carries the computed boot end even when read much later."""
    state.create("local", "d1", spec())
    clock.advance(500)
    state.settle_all()
    assert [e.at for e in state.events if e.kind == "ready"] == [110.0]


def test_boot_jitter_is_seeded(clock: FakeClock) -> None:
    """Boot jitter comes from the seeded rng: same seed, same boot times."""

    def boot_end(seed: int) -> list[float]:
        s = ControlPlaneState(boot_seconds=1, boot_jitter=5, seed=seed, clock=clock)
        for i in range(3):
            s.create("local", f"d{i}", spec())
        clock.advance(10)
        s.settle_all()
        clock.advance(-10)
        return [e.at for e in s.events if e.kind == "ready"]

    assert boot_end(1) == boot_end(1)
    assert boot_end(1) != boot_end(2)
    assert all(101 <= t <= 106 for t in boot_end(1))


def test_duplicate_create_conflicts_until_gone(state: ControlPlaneState, clock: FakeClock) -> None:
    """A second create of the same id is ALREADY_EXISTS, also while DELETING; allowed once gone."""
    state.create("local", "d1", spec())
    with pytest.raises(StateError) as info:
        state.create("local", "d1", spec())
    assert info.value.kind == "ALREADY_EXISTS"
    state.delete("local", "d1", ignore_checks=True)
    with pytest.raises(StateError):
        state.create("local", "d1", spec())
    clock.advance(1)
    assert state.create("local", "d1", spec()).state == "CREATING"


@pytest.mark.parametrize(
    ("dep", "kwargs", "needle"),
    [
        ("", {}, "deploymentId"),
        ("Bad_Id", {}, "deploymentId"),
        ("1abc", {}, "deploymentId"),
        ("a" * 64, {}, "deploymentId"),
        ("d1", {"base_model": ""}, "baseModel"),
        ("d1", {"min_replica_count": -1}, "minReplicaCount"),
        ("d1", {"max_replica_count": -2}, "maxReplicaCount"),
        ("d1", {"min_replica_count": 3, "max_replica_count": 2}, "minReplicaCount"),
        ("d1", {"hot_load_transition_type": "FAST"}, "hotLoadTransitionType"),
        ("d1", {"hot_load_bucket_type": "FTP"}, "hotLoadBucketType"),
        ("d1", {"hot_load_trainer_job": "trainer-1"}, "hotLoadTrainerJob"),
    ],
)
def test_create_validation_names_the_field(
    state: ControlPlaneState, dep: str, kwargs: dict[str, object], needle: str
) -> None:
    """Invalid creates are INVALID_ARGUMENT with a message naming the field."""
    with pytest.raises(StateError) as info:
        state.create("local", dep, spec(**kwargs))
    assert info.value.kind == "INVALID_ARGUMENT"
    assert needle in info.value.message


def test_unknown_account_is_not_found(state: ControlPlaneState) -> None:
    """Only the configured account exists."""
    with pytest.raises(StateError) as info:
        state.create("other", "d1", spec())
    assert info.value.kind == "NOT_FOUND"


def test_max_zero_with_min_uses_min(state: ControlPlaneState, clock: FakeClock) -> None:
    """maxReplicaCount 0 means unset: the deployment runs minReplicaCount replicas."""
    view = state.create("local", "d1", spec(min_replica_count=2, max_replica_count=0))
    assert (view.spec.max_replica_count, view.desired_replicas) == (2, 2)


def test_zero_replicas_is_ready_but_serves_nothing(
    state: ControlPlaneState, clock: FakeClock
) -> None:
    """min = max = 0 boots to READY with no replicas; completions are UNAVAILABLE."""
    state.create("local", "d1", spec(min_replica_count=0, max_replica_count=0))
    clock.advance(10)
    assert state.get("local", "d1").state == "READY"
    assert status(state) == []
    with pytest.raises(StateError) as info:
        state.sample("local", "d1", [1], 4)
    assert info.value.kind == "UNAVAILABLE"


def test_scale_to_zero_and_back(state: ControlPlaneState, clock: FakeClock) -> None:
    """Scale to zero stays READY with 0 replicas; scaling up boots new pods over boot_seconds."""
    ready(state, clock)
    hotload(state, "s0")
    clock.advance(4)
    view = state.update("local", "d1", {"min_replica_count": 0, "max_replica_count": 0})
    assert (view.state, view.ready_replicas, view.served_snapshot) == ("READY", 0, None)
    with pytest.raises(StateError, match="DEPLOYMENT_SCALING_UP"):
        state.sample("local", "d1", [1], 4)
    state.update("local", "d1", {"max_replica_count": 1})
    with pytest.raises(StateError, match="DEPLOYMENT_SCALING_UP"):
        state.sample("local", "d1", [1], 4)
    clock.advance(10)
    assert state.sample("local", "d1", [1], 4)[0].snapshot is None
    assert state.events[-1].kind == "ready"
    assert state.events[-1].detail == "scale_up"


def test_reattach_rolls_pods(state: ControlPlaneState, clock: FakeClock) -> None:
    """Changing the trainer job rolls the pods: UPDATING, new identity, hot-load state reset."""
    ready(state, clock)
    hotload(state, "s0")
    clock.advance(4)
    old = status(state)[0]
    assert old.current_snapshot_identity == "s0"
    job = "accounts/local/rlorTrainerJobs/t2"
    view = state.update("local", "d1", {"hot_load_trainer_job": job})
    assert view.state == "UPDATING"
    assert view.spec.hot_load_trainer_job == job
    assert status(state) == []
    clock.advance(state.update_seconds)
    assert state.get("local", "d1").state == "READY"
    new = status(state)[0]
    assert new.identity != old.identity
    assert new.current_snapshot_identity is None
    assert state.events[-1].kind == "updated"


def test_same_trainer_job_does_not_roll(state: ControlPlaneState, clock: FakeClock) -> None:
    """Re-sending the current trainer job is not a change and keeps the pods."""
    state.create("local", "d1", spec(hot_load_trainer_job="accounts/local/rlorTrainerJobs/t1"))
    clock.advance(10)
    before = status(state)[0].identity
    state.update("local", "d1", {"hot_load_trainer_job": "accounts/local/rlorTrainerJobs/t1"})
    assert state.get("local", "d1").state == "READY"
    assert status(state)[0].identity == before


def test_base_model_is_immutable(state: ControlPlaneState, clock: FakeClock) -> None:
    """Updating baseModel is refused."""
    ready(state, clock)
    with pytest.raises(StateError, match="baseModel"):
        state.update("local", "d1", {"base_model": "other"})


def test_delete_timeline(state: ControlPlaneState, clock: FakeClock) -> None:
    """DELETING for delete_seconds, then NOT_FOUND, with a deleted event at the computed end."""
    ready(state, clock)
    state.delete("local", "d1", ignore_checks=False)
    assert state.get("local", "d1").state == "DELETING"
    clock.advance(1)
    with pytest.raises(StateError) as info:
        state.get("local", "d1")
    assert info.value.kind == "NOT_FOUND"
    assert (state.events[-1].kind, state.events[-1].at) == ("deleted", 111.0)


def test_delete_after_recent_inference_needs_ignore_checks(
    state: ControlPlaneState, clock: FakeClock
) -> None:
    """A deployment that served in the last hour refuses a checked delete."""
    ready(state, clock)
    state.sample("local", "d1", [1], 1)
    with pytest.raises(StateError, match="--ignore-checks") as info:
        state.delete("local", "d1")
    assert info.value.kind == "FAILED_PRECONDITION"
    clock.advance(3601)
    state.delete("local", "d1")


def test_hotload_stages_progress(clock: FakeClock) -> None:
    """pending -> downloading -> loading -> done; readiness false and old snapshot while loading."""
    state = ControlPlaneState(boot_seconds=0, hotload_seconds=10, clock=clock)
    state.create("local", "d1", spec())
    seen = []
    assert hotload(state, "s1") == "started"
    for _ in range(11):
        r = status(state)[0]
        seen.append((r.stage, r.readiness, r.current_snapshot_identity))
        clock.advance(1)
    assert seen[0] == ("pending", False, None)
    assert ("downloading", False, None) in seen
    assert ("loading", False, None) in seen
    assert seen[-1] == ("done", True, "s1")
    assert status(state)[0].target_snapshot_identity == "s1"


def test_hotload_done_event_is_when_last_replica_finishes(clock: FakeClock) -> None:
    """With jitter, hotload_done is stamped at the slowest replica's finish."""
    state = ControlPlaneState(
        boot_seconds=0, hotload_seconds=2, hotload_jitter=3, seed=7, clock=clock
    )
    state.create("local", "d1", spec(max_replica_count=4))
    hotload(state, "s1")
    clock.advance(100)
    state.settle_all()
    done = [e for e in state.events if e.kind == "hotload_done"]
    assert len(done) == 1
    assert done[0].detail == "s1"
    assert 102 <= done[0].at <= 105


def test_one_hotload_at_a_time(state: ControlPlaneState, clock: FakeClock) -> None:
    """A different identity while one loads is ABORTED; the same identity is idempotent."""
    ready(state, clock)
    hotload(state, "s1")
    with pytest.raises(StateError, match="in progress") as info:
        hotload(state, "s2")
    assert info.value.kind == "ABORTED"
    assert hotload(state, "s1") == "in_progress"
    clock.advance(4)
    assert hotload(state, "s1") == "already_loaded"
    assert hotload(state, "s2") == "started"


def delta(previous: str | None, **kw: str) -> dict[str, object]:
    meta: dict[str, object] = {
        "previous_snapshot_identity": previous,
        "compression_format": "arc_v2",
        "checksum_format": "alder32",
        "delta": True,
    }
    meta.update(kw)
    return meta


def test_delta_chain_rules(state: ControlPlaneState, clock: FakeClock) -> None:
    """A delta must follow the served snapshot, with alder32 and a known compression format."""
    ready(state, clock)
    with pytest.raises(StateError, match="serves no snapshot"):
        hotload(state, "s1", **delta(None))
    hotload(state, "s0")
    clock.advance(4)
    with pytest.raises(StateError, match=r"'s9'.*'s0'"):
        hotload(state, "s1", **delta("s9"))
    with pytest.raises(StateError, match="checksum_format"):
        hotload(state, "s1", **delta("s0", checksum_format="adler32"))
    with pytest.raises(StateError, match="compression_format"):
        hotload(state, "s1", **delta("s0", compression_format="gzip"))
    for fmt in ("arc_v1", "arc_v3", "xor_one_to_one_zlib", "xor_one_to_one_zstd"):
        assert (
            hotload(
                state,
                f"s-{fmt}",
                **delta(status(state)[0].current_snapshot_identity, compression_format=fmt),
            )
            == "started"
        )
        clock.advance(4)
    assert hotload(state, "s2", **delta(status(state)[0].current_snapshot_identity)) == "started"


def test_full_load_resets_chain(state: ControlPlaneState, clock: FakeClock) -> None:
    """After a full load, deltas must reference the new base, not the old chain."""
    ready(state, clock)
    hotload(state, "s0")
    clock.advance(4)
    hotload(state, "s1", **delta("s0"))
    clock.advance(4)
    hotload(state, "base2")
    clock.advance(4)
    with pytest.raises(StateError):
        hotload(state, "s2", **delta("s1"))
    assert hotload(state, "s2", **delta("base2")) == "started"


def test_hotload_refused_while_booting_or_disabled(
    state: ControlPlaneState, clock: FakeClock
) -> None:
    """Hot-loads need a serving, hot-load-enabled deployment and the right base model."""
    state.create("local", "d1", spec())
    with pytest.raises(StateError) as info:
        hotload(state, "s1")
    assert info.value.kind == "TOO_EARLY"
    state.create("local", "d2", spec(enable_hot_load=False))
    clock.advance(10)
    with pytest.raises(StateError, match="enableHotLoad"):
        state.hotload("local", "d2", "accounts/fireworks/models/qwen3-8b", "s1")
    with pytest.raises(StateError, match="fireworks-model"):
        state.hotload("local", "d1", "other-model", "s1")


def test_completions_follow_the_served_snapshot(state: ControlPlaneState, clock: FakeClock) -> None:
    """Tokens are deterministic per snapshot and change once a hot-load completes."""
    ready(state, clock)
    base = state.sample("local", "d1", [1, 2, 3], 8)[0]
    assert base.token_ids == state.sample("local", "d1", [1, 2, 3], 8)[0].token_ids
    assert base.token_ids != state.sample("local", "d1", [1, 2, 4], 8)[0].token_ids
    hotload(state, "s1")
    clock.advance(2)
    assert state.sample("local", "d1", [1, 2, 3], 8)[0].token_ids == base.token_ids
    clock.advance(2)
    after = state.sample("local", "d1", [1, 2, 3], 8)[0]
    assert after.snapshot == "s1"
    assert after.token_ids != base.token_ids
    assert len(after.token_ids) == 8


def test_boot_failure_via_plane(clock: FakeClock) -> None:
    """fail_boot on a booting deployment makes it FAILED at its boot end."""
    plane = LocalControlPlane(boot_seconds=5, clock=clock)
    plane.create_deployment("d1", "m")
    plane.fail_boot("d1")
    plane.fail_boot("d2")  # not created yet: registers a boot_failure fault for it
    plane.create_deployment("d2", "m")
    clock.advance(5)
    assert plane.state.get("local", "d1").state == "FAILED"
    assert plane.state.get("local", "d2").state == "FAILED"
    assert plane.event_time("failed", "d1") == 105.0


def test_hotload_error_fault_keeps_old_snapshot(clock: FakeClock) -> None:
    """A hotload_error ends in stage error for its target while replicas serve the old snapshot."""
    plane = LocalControlPlane(boot_seconds=0, hotload_seconds=1, clock=clock)
    plane.create_deployment("d1", "m")
    plane.state.hotload("local", "d1", "m", "s0")
    clock.advance(1)
    plane.faults.add(Fault("hotload_error", identity="s1"))
    plane.state.hotload("local", "d1", "m", "s1")
    clock.advance(1)
    r = plane.state.hotload_status("local", "d1", "m")[0]
    assert (r.stage, r.target_snapshot_identity, r.current_snapshot_identity, r.readiness) == (
        "error",
        "s1",
        "s0",
        True,
    )
    assert plane.event_time("hotload_failed", "d1", "s1") == 102.0
    plane.state.hotload("local", "d1", "m", "s1")
    clock.advance(1)
    assert plane.state.hotload_status("local", "d1", "m")[0].current_snapshot_identity == "s1"


def test_replica_disagree_fault(clock: FakeClock) -> None:
    """One replica lags: the others serve the new snapshot first; done waits for the laggard."""
    plane = LocalControlPlane(boot_seconds=0, hotload_seconds=1, clock=clock)
    plane.create_deployment("d1", "m", replicas=3)
    plane.faults.add(Fault("replica_disagree", seconds=10))
    plane.state.hotload("local", "d1", "m", "s1")
    clock.advance(1)
    currents = [r.current_snapshot_identity for r in plane.state.hotload_status("local", "d1", "m")]
    assert currents == ["s1", "s1", None]
    assert plane.event_time("hotload_done", "d1") is None
    clock.advance(10)
    assert plane.event_time("hotload_done", "d1", "s1") == 111.0


def test_replica_disagree_forever_blocks_the_load(clock: FakeClock) -> None:
    """With no lag given the replica never finishes, so the hot-load stays in progress."""
    plane = LocalControlPlane(boot_seconds=0, hotload_seconds=1, clock=clock)
    plane.create_deployment("d1", "m", replicas=2)
    plane.faults.add(Fault("replica_disagree", replica=0))
    plane.state.hotload("local", "d1", "m", "s1")
    clock.advance(1000)
    first, second = plane.state.hotload_status("local", "d1", "m")
    assert (first.stage, first.readiness) == ("loading", False)
    assert (second.stage, second.current_snapshot_identity) == ("done", "s1")
    with pytest.raises(StateError, match="in progress"):
        plane.state.hotload("local", "d1", "m", "s2")


def test_stale_error_shown_on_idle_replicas(state: ControlPlaneState, clock: FakeClock) -> None:
    """A stale error target is reported on a ready, idle replica."""
    ready(state, clock)
    r = status(state, stale_error_target="old")[0]
    assert (r.stage, r.target_snapshot_identity, r.readiness) == ("error", "old", True)


def test_list_pagination_is_stable(state: ControlPlaneState, clock: FakeClock) -> None:
    """Pages follow creation order and survive deletions between pages."""
    for i in range(5):
        state.create("local", f"d{i}", spec())
    page, token = state.list_deployments("local", 2)
    assert [v.deployment_id for v in page] == ["d0", "d1"]
    state.delete("local", "d2", ignore_checks=True)
    clock.advance(1)
    page, token = state.list_deployments("local", 2, token)
    assert [v.deployment_id for v in page] == ["d3", "d4"]
    assert token == ""
    with pytest.raises(StateError, match="pageToken"):
        state.list_deployments("local", 2, "bogus")


def test_many_deployments_are_cheap(clock: FakeClock) -> None:
    """10,000 deployments create and read back by id."""
    state = ControlPlaneState(boot_seconds=1, clock=clock)
    for i in range(10_000):
        state.create("local", f"d{i}", spec())
    clock.advance(1)
    assert state.get("local", "d9999").state == "READY"
    assert len(state) == 10_000


def test_constructor_rejects_bad_values(clock: FakeClock) -> None:
    """Negative durations and a malformed account are ValueErrors."""
    with pytest.raises(ValueError, match="boot_seconds"):
        ControlPlaneState(boot_seconds=-1, clock=clock)
    with pytest.raises(ValueError, match="account"):
        ControlPlaneState(account="Not An Id", clock=clock)


# -- strict chain, scale from zero, autoscaling policy, status lag -----------------------------


def test_repeated_delta_is_refused_once_applied(state: ControlPlaneState, clock: FakeClock) -> None:
    """A delta repeated while it loads is in progress; once applied, the repeat is refused."""
    ready(state, clock)
    hotload(state, "s0")
    clock.advance(4)
    assert hotload(state, "s1", **delta("s0")) == "started"
    assert hotload(state, "s1", **delta("s0")) == "in_progress"
    with pytest.raises(StateError, match=r"'s9'.*'s0'") as info:
        hotload(state, "s1", **delta("s9"))
    assert info.value.kind == "INVALID_ARGUMENT"
    clock.advance(4)
    with pytest.raises(StateError, match=r"previous_snapshot_identity 's0'.*'s1'") as info:
        hotload(state, "s1", **delta("s0"))
    assert info.value.kind == "INVALID_ARGUMENT"
    with pytest.raises(StateError, match="cannot apply to itself"):
        hotload(state, "s1", **delta("s1"))
    assert hotload(state, "s1") == "already_loaded"  # a full load of the served one is a no-op
    assert [e.detail for e in state.events if e.kind == "hotload_started"] == ["s0", "s1"]


def test_delta_formats_are_checked_before_in_progress(
    state: ControlPlaneState, clock: FakeClock
) -> None:
    """A bad checksum format is refused even when it repeats the load in progress."""
    ready(state, clock)
    hotload(state, "s0")
    clock.advance(4)
    hotload(state, "s1", **delta("s0"))
    with pytest.raises(StateError, match="checksum_format"):
        hotload(state, "s1", **delta("s0", checksum_format="adler32"))


def test_scale_from_zero_on_demand(state: ControlPlaneState, clock: FakeClock) -> None:
    """A completion for a scaled-to-zero deployment boots one pod; it serves after the boot."""
    ready(state, clock)
    state.update("local", "d1", {"min_replica_count": 0, "max_replica_count": 0})
    with pytest.raises(StateError, match="DEPLOYMENT_SCALING_UP") as info:
        state.sample("local", "d1", [1], 4)
    assert info.value.kind == "UNAVAILABLE"
    view = state.get("local", "d1")
    assert (view.state, view.desired_replicas, view.ready_replicas) == ("READY", 1, 0)
    assert (view.spec.min_replica_count, view.spec.max_replica_count) == (0, 0)
    clock.advance(5)
    with pytest.raises(StateError, match="DEPLOYMENT_SCALING_UP"):
        state.sample("local", "d1", [1], 4)  # still booting: no second pod
    assert len([e for e in state.events if e.kind == "scale_from_zero"]) == 1
    clock.advance(5)
    sample = state.sample("local", "d1", [1], 4)[0]
    assert (sample.snapshot, len(sample.token_ids)) == (None, 4)
    assert state.event_time("ready", "d1", "scale_up") == 120.0
    assert len(status(state)) == 1


def test_on_demand_pod_goes_after_the_scale_to_zero_window(
    state: ControlPlaneState, clock: FakeClock
) -> None:
    """Without completions for scale_to_zero_window (default 1 h), the on-demand pod goes."""
    ready(state, clock)
    state.update("local", "d1", {"min_replica_count": 0, "max_replica_count": 0})
    with pytest.raises(StateError):
        state.sample("local", "d1", [1], 4)
    clock.advance(10)
    state.sample("local", "d1", [1], 4)  # at 120
    clock.advance(3599)
    assert state.get("local", "d1").ready_replicas == 1
    clock.advance(1)
    assert state.get("local", "d1").ready_replicas == 0
    assert state.event_time("scaled_to_zero", "d1", "idle") == 3720.0
    state.update("local", "d1", {"autoscaling_policy.scale_to_zero_window": 300.0})
    with pytest.raises(StateError):
        state.sample("local", "d1", [1], 4)
    clock.advance(10 + 300)
    assert state.get("local", "d1").ready_replicas == 0


def test_configured_replicas_never_idle_away(state: ControlPlaneState, clock: FakeClock) -> None:
    """A deployment configured with replicas keeps them however long it idles."""
    ready(state, clock)
    clock.advance(10 * 3600)
    assert state.get("local", "d1").ready_replicas == 1


def test_autoscaling_policy_nested_update(state: ControlPlaneState, clock: FakeClock) -> None:
    """A dotted change sets one policy field and keeps the others; limits are checked."""
    ready(state, clock)
    state.update("local", "d1", {"autoscaling_policy.scale_up_window": 30.0})
    view = state.update("local", "d1", {"autoscaling_policy.scale_to_zero_window": 600.0})
    policy = view.spec.autoscaling_policy
    assert policy is not None
    assert (policy.scale_up_window, policy.scale_to_zero_window) == (30.0, 600.0)
    with pytest.raises(StateError, match="at least 300s") as info:
        state.update("local", "d1", {"autoscaling_policy.scale_to_zero_window": 60.0})
    assert info.value.kind == "INVALID_ARGUMENT"
    with pytest.raises(StateError, match="at most 3600s"):
        state.update("local", "d1", {"autoscaling_policy.scale_down_window": 7200.0})
    with pytest.raises(StateError, match="Unknown deployment field"):
        state.update("local", "d1", {"autoscaling_policy.bogus": 1.0})
    with pytest.raises(StateError, match="Unknown deployment field"):
        state.update("local", "d1", {"placement.zone": "x"})
    with pytest.raises(StateError, match="loadTargets"):
        state.update("local", "d1", {"autoscaling_policy.load_targets": {"util": 0.0}})
    assert state.get("local", "d1").spec.autoscaling_policy == policy


def test_status_lag_fault_hides_the_new_load(clock: FakeClock) -> None:
    """For `seconds` after an accepted POST, status shows the old state without the identity."""
    plane = LocalControlPlane(boot_seconds=0, hotload_seconds=1, clock=clock)
    plane.create_deployment("d1", "m", replicas=2)
    plane.state.hotload("local", "d1", "m", "s0")
    clock.advance(1)
    fault = plane.faults.add(Fault("status_lag", seconds=3, identity="s1"))
    plane.state.hotload("local", "d1", "m", "s1")
    assert fault.fired == 1
    for _ in range(3):  # the load itself ends after 1 s
        views = plane.state.hotload_status("local", "d1", "m")
        assert len(views) == 2
        for v in views:
            assert (v.current_snapshot_identity, v.stage, v.target_snapshot_identity) == (
                "s0",
                "done",
                "s0",
            )
            assert v.readiness is True
        clock.advance(1)
    assert [
        v.current_snapshot_identity for v in plane.state.hotload_status("local", "d1", "m")
    ] == [
        "s1",
        "s1",
    ]
    assert plane.event_time("hotload_done", "d1", "s1") == 102.0  # only status lagged
    assert plane.state.sample("local", "d1", [1], 1)[0].snapshot == "s1"
    plane.state.hotload("local", "d1", "m", "s2")  # the fault is spent (times=1)
    assert plane.state.hotload_status("local", "d1", "m")[0].target_snapshot_identity == "s2"


def test_status_lag_before_any_load_shows_idle(clock: FakeClock) -> None:
    """Lagging status of a first load shows idle replicas that serve nothing."""
    plane = LocalControlPlane(boot_seconds=0, hotload_seconds=1, clock=clock)
    plane.create_deployment("d1", "m")
    plane.faults.add("status_lag:lag=2")
    plane.state.hotload("local", "d1", "m", "s0")
    clock.advance(1.5)
    r = plane.state.hotload_status("local", "d1", "m")[0]
    assert (r.current_snapshot_identity, r.stage, r.target_snapshot_identity) == (
        None,
        "idle",
        None,
    )
