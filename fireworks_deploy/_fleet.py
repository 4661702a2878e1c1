"""Many-deployment operations on anyio task groups, under one deadline, with every outcome kept."""

from __future__ import annotations

import math
import time
from collections.abc import Iterator, Mapping, Sequence
from typing import Generic, Protocol, TypeVar

import anyio
import attrs

from ._config import Deadline, check_poll_interval, check_positive
from ._deployments import Deployments, readiness
from ._errors import FireworksError, FleetError, InvalidConfigError, ReadyTimeoutError
from ._failures import PollErrors, error_retry_after
from ._hotload import Hotloads, HotloadTarget, Snapshot, hotload_request
from ._inference import Inference
from ._models import (
    DeploymentInfo,
    DeploymentState,
    HotloadStatus,
    MetadataLike,
    validate_deployment_id,
)
from ._observe import counting_requests, observed
from ._polling import PollSchedule

__all__ = [
    "FleetOperations",
    "FleetResult",
    "Outcome",
    "check_ids",
    "hotload_and_wait_many",
    "wait_for_ready_many",
]

T = TypeVar("T")


@attrs.frozen
class Outcome(Generic[T]):
    """One deployment's result in a fleet operation: a value or the error it ended with."""

    deployment_id: str
    value: T | None = None
    error: Exception | None = None

    @property
    def ok(self) -> bool:
        """True if this deployment's operation succeeded (`error` is None)."""
        return self.error is None


@attrs.frozen
class FleetResult(Generic[T]):
    """Every deployment's outcome, in the order the deployments were given."""

    outcomes: tuple[Outcome[T], ...]
    elapsed_s: float

    @property
    def ok(self) -> bool:
        """True if every deployment's operation succeeded."""
        return all(o.ok for o in self.outcomes)

    @property
    def succeeded(self) -> dict[str, T]:
        """The value of each deployment that succeeded, by deployment id."""
        return {o.deployment_id: o.value for o in self.outcomes if o.ok and o.value is not None}

    @property
    def failed(self) -> dict[str, Exception]:
        """The error of each deployment that failed, by deployment id, in the given order."""
        return {o.deployment_id: o.error for o in self.outcomes if o.error is not None}

    def __getitem__(self, deployment_id: str) -> Outcome[T]:
        for outcome in self.outcomes:
            if outcome.deployment_id == deployment_id:
                return outcome
        raise KeyError(deployment_id)

    def __iter__(self) -> Iterator[Outcome[T]]:
        return iter(self.outcomes)

    def __len__(self) -> int:
        return len(self.outcomes)

    def raise_for_failures(self, what: str = "fleet operation") -> None:
        """Raise `FleetError` (carrying this result) if any deployment failed."""
        failed = self.failed
        if failed:
            first_id, first = next(iter(failed.items()))
            raise FleetError(
                f"{what} failed for {len(failed)} of {len(self.outcomes)} deployment(s); "
                f"first: {first_id}: {first}",
                result=self,
            )


def check_ids(deployment_ids: Sequence[str]) -> list[str]:
    """The fleet's ids, validated: a non-empty list without duplicates."""
    if isinstance(deployment_ids, str) or not isinstance(deployment_ids, Sequence):
        raise InvalidConfigError("deployment_ids must be a list of deployment ids.")
    ids = [validate_deployment_id(i) for i in deployment_ids]
    if not ids:
        raise InvalidConfigError("deployment_ids is empty.")
    if len(set(ids)) != len(ids):
        raise InvalidConfigError("deployment_ids has duplicates.")
    return ids


def _finish(
    ids: list[str],
    outcomes: Mapping[str, Outcome[T]],
    started: float,
    what: str,
    return_exceptions: bool,
) -> FleetResult[T]:
    result = FleetResult(tuple(outcomes[i] for i in ids), time.monotonic() - started)
    if not return_exceptions:
        result.raise_for_failures(what)
    return result


async def wait_for_ready_many(
    deployments: Deployments,
    inference: Inference,
    ids: list[str],
    deadline: Deadline,
    schedule: PollSchedule,
    *,
    return_exceptions: bool,
) -> FleetResult[DeploymentInfo]:
    """One list read (per page of 200) per poll covers the whole fleet; CREATING ones are probed.

    Rounds keep the caller's interval grid. A CREATING deployment whose list entry shows a
    ready replica is probed every round. The others (which may serve while still CREATING)
    are probed least recently probed first, out of what is left of a polling budget of a
    tenth of the fleet per interval once the list reads are counted (`PROBE_SHARE`; at least
    `MIN_PROBES` per interval), so the whole wait sends about N / 10 requests per interval.
    """
    started = time.monotonic()
    grid = attrs.evolve(schedule, backoff=False, expected_at=None, origin=started)
    outcomes: dict[str, Outcome[DeploymentInfo]] = {}
    last_seen: dict[str, DeploymentInfo] = {}
    pending = set(ids)
    probed_round: dict[str, int] = {}
    per_interval = len(ids) * PROBE_SHARE
    pages_read = probes_sent = 0
    poll = 0
    errors = PollErrors()
    while pending:
        round_at = time.monotonic()
        gap = grid.next_at(round_at, poll) - round_at
        poll += 1
        try:
            with counting_requests() as pages:
                listed = {
                    info.deployment_id: info
                    for info in await deployments.list(deadline, retry=False)
                }
        except Exception as exc:
            if not errors.absorbs(exc):
                for i in pending:
                    outcomes[i] = Outcome(i, error=exc)
                pending.clear()  # reported as this error, not as a timeout below
                break
            gap = max(gap, error_retry_after(exc) or 0.0)
        else:
            errors.ok()
            pages_read += pages.count
            last_seen.update({i: listed[i] for i in pending if i in listed})
            intervals = (time.monotonic() - started) / grid.max_s
            allowed = max(per_interval * intervals - pages_read, MIN_PROBES * intervals)
            creating = _to_probe(
                [i for i in pending if i in listed and listed[i].state == DeploymentState.CREATING],
                listed,
                probed_round,
                math.floor(allowed - probes_sent),
            )
            probes_sent += len(creating)
            probed_round.update(dict.fromkeys(creating, poll))
            probes: dict[str, bool] = {}
            probe_errors: dict[str, Exception] = {}

            async with anyio.create_task_group() as tg:
                for i in creating:
                    tg.start_soon(_probe_into, inference, listed[i], deadline, probes, probe_errors)
            for i in list(pending):
                try:
                    if i in probe_errors:
                        raise probe_errors[i]
                    ready = readiness(i, listed.get(i), probes.get(i, False))
                except FireworksError as exc:
                    outcomes[i] = Outcome(i, error=exc)
                    pending.discard(i)
                else:
                    if ready is not None:
                        outcomes[i] = Outcome(i, value=ready)
                        pending.discard(i)
        if not pending:
            break
        if deadline.remaining() <= 0:
            break
        retry_in = deadline.connect_retry_in()  # a host that refused: look again before its
        if retry_in is not None:  # connect budget runs out, so the fleet fails fast too
            gap = min(gap, retry_in)
        await anyio.sleep(deadline.cap(gap))
    for i in pending:
        info = last_seen.get(i)
        outcomes[i] = Outcome(
            i,
            error=ReadyTimeoutError(
                f"Deployment {i!r} was not ready within {deadline.timeout_s:g}s "
                f"(last state {info.state if info else 'unknown'}).",
                timeout_s=deadline.timeout_s,
                last_status=info,
            ),
        )
    return _finish(ids, outcomes, started, "wait_for_ready_many", return_exceptions)


#: Polling requests (list pages and probes) per interval, as a share of the fleet.
PROBE_SHARE = 0.1
#: Probes per interval however small the fleet (one every four intervals).
MIN_PROBES = 0.25


def _to_probe(
    creating: list[str],
    listed: Mapping[str, DeploymentInfo],
    probed_round: Mapping[str, int],
    budget: int,
) -> list[str]:
    """Which CREATING deployments to probe this round: every one the list shows with a ready
    replica, then others, least recently probed (never probed first), while `budget` (which
    the first ones count against) lasts."""
    likely = [i for i in creating if (listed[i].replica_count or 0) > 0]
    others = sorted(
        (i for i in creating if (listed[i].replica_count or 0) <= 0),
        key=lambda i: (probed_round.get(i, 0), i),
    )
    return likely + others[: max(0, budget - len(likely))]


async def _probe_into(
    inference: Inference,
    info: DeploymentInfo,
    deadline: Deadline,
    probes: dict[str, bool],
    errors: dict[str, Exception],
) -> None:
    try:
        probes[info.deployment_id] = await inference.probe(info.inference_model, deadline)
    except FireworksError as exc:
        errors[info.deployment_id] = exc


async def hotload_and_wait_many(
    hotloads: Hotloads,
    ids: list[str],
    base_model: str,
    snapshot: Snapshot,
    deadline: Deadline,
    poll_interval_s: float,
    *,
    return_exceptions: bool,
) -> FleetResult[HotloadStatus]:
    """Every deployment's hot-load and wait run at once, inside one task group and deadline."""
    started = time.monotonic()
    outcomes: dict[str, Outcome[HotloadStatus]] = {}

    async def one(deployment_id: str) -> None:
        target = HotloadTarget(deployment_id, base_model)
        try:
            status = await hotloads.load_and_wait(target, snapshot, deadline, poll_interval_s)
        except FireworksError as exc:
            outcomes[deployment_id] = Outcome(deployment_id, error=exc)
        else:
            outcomes[deployment_id] = Outcome(deployment_id, value=status)

    async with anyio.create_task_group() as tg:
        for i in ids:
            tg.start_soon(one, i)
    return _finish(ids, outcomes, started, "hotload_and_wait_many", return_exceptions)


class _Services(Protocol):
    """What the fleet methods use of the manager: its concept services."""

    _deployments: Deployments
    _inference: Inference
    _hotloads: Hotloads


class FleetOperations:
    """`AsyncDeploymentManager`'s fleet methods: validate, build the deadline, run the fleet."""

    @observed("wait_for_ready_many")
    async def wait_for_ready_many(
        self: _Services,
        deployment_ids: Sequence[str],
        timeout_s: float = 600,
        poll_interval_s: float = 15,
        *,
        return_exceptions: bool = False,
    ) -> FleetResult[DeploymentInfo]:
        """Wait for many deployments under one deadline, reading them through the list endpoint.

        Every deployment's outcome is reported; without `return_exceptions` a `FleetError`
        (carrying the result) is raised if any failed.
        """
        ids = check_ids(deployment_ids)
        deadline = Deadline(check_positive("timeout_s", timeout_s))
        schedule = PollSchedule(check_poll_interval("poll_interval_s", poll_interval_s))
        return await wait_for_ready_many(
            self._deployments,
            self._inference,
            ids,
            deadline,
            schedule,
            return_exceptions=return_exceptions,
        )

    @observed("hotload_and_wait_many")
    async def hotload_and_wait_many(
        self: _Services,
        deployment_ids: Sequence[str],
        base_model: str,
        snapshot_identity: str,
        incremental_snapshot_metadata: MetadataLike | None = None,
        reset_prompt_cache: bool = True,
        timeout_seconds: float = 400,
        poll_interval_s: float = 5,
        *,
        return_exceptions: bool = False,
    ) -> FleetResult[HotloadStatus]:
        """Hot-load one snapshot into many deployments at once, under one deadline.

        Each deployment runs `hotload_and_wait` in one task group; `timeout_seconds` bounds them
        all. Every deployment's outcome is reported; without `return_exceptions` a `FleetError`
        (carrying the result) is raised if any failed.
        """
        ids = check_ids(deployment_ids)
        # Every id is checked (it goes into a header); the snapshot is the same for all.
        requests = [
            hotload_request(
                deployment_id,
                base_model,
                snapshot_identity,
                incremental_snapshot_metadata,
                reset_prompt_cache,
                None,
                None,
            )
            for deployment_id in ids
        ]
        snapshot = requests[0][1]
        deadline = Deadline(check_positive("timeout_seconds", timeout_seconds))
        interval = check_poll_interval("poll_interval_s", poll_interval_s)
        return await hotload_and_wait_many(
            self._hotloads,
            ids,
            base_model,
            snapshot,
            deadline,
            interval,
            return_exceptions=return_exceptions,
        )
