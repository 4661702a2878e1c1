"""The hot-load protocol: send a snapshot (read back before any re-send), read the replicas'
status, wait until every replica serves it, learn how long loads take, and re-send a load that a
restarted gateway lost.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Mapping
from functools import partial
from typing import Any, cast

import attrs
import httpx

from . import _wire
from ._account import Account
from ._config import Deadline
from ._deployments import Deployments, readiness
from ._errors import (
    APIConnectionError,
    APIStatusError,
    APITimeoutError,
    BadRequestError,
    HotloadFailedError,
    HotloadTimeoutError,
    NotFoundError,
    ResponseValidationError,
)
from ._failures import PollErrors, error_retry_after
from ._http import HTTPClient
from ._models import HotloadStatus, IncrementalSnapshotMetadata, MetadataLike, check_hotload_args
from ._observe import counting_requests
from ._polling import HotloadTiming, Observation, PollHub, PollSchedule, describe_last
from ._resend import back_off, never_sent, read_back, worth_resending
from ._urls import build_url

__all__ = ["HOTLOAD_PATH", "HotloadTarget", "Hotloads", "Snapshot", "hotload_request"]

logger = logging.getLogger(__name__)

HOTLOAD_PATH = "/hot_load/v1/models/hot_load"
#: A load no replica mentions for this many polls and seconds after our POST was lost.
LOST_AFTER_POLLS = 3
LOST_AFTER_S = 1.0
MAX_LOST_RESENDS = 2
#: How long a hot-load status may lag an accepted POST, and how often it is read meanwhile.
STATUS_LAG_S = 1.0
LAG_POLL_S = 0.5


@attrs.frozen
class HotloadTarget:
    """Where a snapshot goes: the replicas of one deployment serving `base_model`."""

    deployment_id: str
    base_model: str


@attrs.frozen
class Snapshot:
    """What is loaded: a base (no metadata) or a delta chained to `metadata`'s previous one."""

    identity: str
    metadata: IncrementalSnapshotMetadata | None = None
    reset_prompt_cache: bool = True
    path: str | None = None
    cmek_resource: str | None = None

    @property
    def is_delta(self) -> bool:
        return self.metadata is not None


def hotload_request(
    deployment_id: str,
    base_model: str,
    identity: str,
    metadata: MetadataLike | None,
    reset_prompt_cache: bool,
    path: str | None,
    cmek_resource: str | None,
) -> tuple[HotloadTarget, Snapshot]:
    """A public hot-load call's arguments, validated, as the values the protocol carries."""
    delta = check_hotload_args(deployment_id, base_model, identity, metadata, path, cmek_resource)
    return HotloadTarget(deployment_id, base_model), Snapshot(
        identity,
        delta,
        reset_prompt_cache=reset_prompt_cache,
        path=path,
        cmek_resource=cmek_resource,
    )


class _LoadLostError(Exception):
    """Every replica forgot the load we POSTed (the gateway restarted)."""

    def __init__(self, status: HotloadStatus) -> None:
        super().__init__(status.summary())
        self.status = status


class _ReplicaBook:
    """What one hot-load wait has seen of the replicas, for two judgements.

    * Every replica seen during the wait must serve the snapshot: one that vanishes from the
      status list mid-load counts as not done (the wait goes on until it returns, or times out
      naming it), never as success.
    * A load is *forgotten* (a restarted gateway lost it) only on evidence: some replica
      mentioned it and now none does, or new pods replaced the ones first seen, or a replica's
      served snapshot went back (to nothing, say) from what it first reported. A status that
      merely has not caught up with the POST yet is not evidence.
    """

    def __init__(self, identity: str) -> None:
        self._identity = identity
        self._first: dict[str, str | None] | None = None
        self._seen: set[str] = set()
        self._mentioned = False
        self.missing: frozenset[str] = frozenset()
        #: Polls in a row that show evidence that the load was forgotten.
        self.forgotten_polls = 0

    def observe(self, status: HotloadStatus) -> None:
        current = {r.identity: r.current_snapshot_identity for r in status.replicas if r.identity}
        if self._first is None:
            self._first = current
        self._seen.update(current)
        self.missing = frozenset(self._seen - current.keys())
        if status.mentions(self._identity):
            self._mentioned = True
            self.forgotten_polls = 0
            return
        restarted = bool(current.keys() - self._first.keys()) or any(
            pod in self._first and self._first[pod] not in (served, self._identity)
            for pod, served in current.items()
        )
        evidence = bool(status.replicas) and (self._mentioned or restarted)
        self.forgotten_polls = self.forgotten_polls + 1 if evidence else 0


#: Growth of the gaps after our own POST while nothing has been learned: each gap is 30% of
#: the time waited so far, so a first load is seen at most ~30% of its duration late.
FIRST_LOAD_GROWTH = 1.3
#: Once a load's duration is learned, polls from its predicted completion on come this far
#: apart (then at half the overshoot): a load is seen ~0.1 s after it finished, on average,
#: for two or three polls when durations vary by a few tenths of a second from step to step.
LEARNED_DENSE_S = 0.2


def _schedule(
    poll_interval_s: float, posted: bool, expected: float | None, joined: float
) -> PollSchedule:
    """A hot-load wait's schedule, on the grid of `poll_interval_s` in every case.

    Right after our own POST: around the predicted completion when one was learned, else a
    gentle back-off from 0.1 s. A wait without a POST (`wait_for_hotload`) polls on the grid.
    """
    if not posted:
        return PollSchedule(poll_interval_s, backoff=False)
    if expected is None:
        return PollSchedule(poll_interval_s, growth=FIRST_LOAD_GROWTH)
    return PollSchedule(poll_interval_s, expected_at=joined + expected, dense_s=LEARNED_DENSE_S)


class Hotloads:
    """Hot-loads through one gateway. Methods take a deadline built by the caller."""

    def __init__(
        self,
        http: HTTPClient,
        hotload_url: httpx.URL,
        account: Account,
        hub: PollHub,
        deployments: Deployments,
    ) -> None:
        self._http = http
        self._gateway = str(hotload_url)
        self._url = build_url(hotload_url, HOTLOAD_PATH)
        self._account = account
        self._hub = hub
        self._deployments = deployments
        self.timing = HotloadTiming()
        self.status_lag_s = STATUS_LAG_S
        #: Whether the gateway accepts `reset_prompt_cache` (None: not known yet).
        self.reset_prompt_cache_supported: bool | None = None

    async def _headers(
        self, target: HotloadTarget, deadline: Deadline, snapshot: Snapshot | None = None
    ) -> dict[str, str]:
        account = await self._account.resolve(deadline)
        headers = {
            "fireworks-model": target.base_model,
            "fireworks-deployment": f"accounts/{account}/deployments/{target.deployment_id}",
        }
        if snapshot is not None and snapshot.path is not None:
            headers["x-fireworks-hot-load-source-url"] = snapshot.path
        if snapshot is not None and snapshot.cmek_resource is not None:
            headers["x-fireworks-hot-load-cmek-resource"] = snapshot.cmek_resource
        return headers

    async def send(
        self, target: HotloadTarget, snapshot: Snapshot, deadline: Deadline
    ) -> Mapping[str, Any]:
        """POST the load at most once per intended effect.

        A failure after which the load may have landed is checked against the status first
        (`_landed`), and the POST is sent again only if no replica mentions the snapshot. A 400
        to such a re-send is checked too: a strict gateway refuses a repeated delta whose first
        POST did land. Returns the gateway's JSON (an empty mapping if it sent none, or if the
        status proved that an earlier POST had landed).
        """
        headers = await self._headers(target, deadline, snapshot)
        attempt = 0
        earlier: Exception | None = None  # what the server said before the latest attempt
        while True:
            send_reset = (
                None if self.reset_prompt_cache_supported is False else snapshot.reset_prompt_cache
            )
            body = _wire.hotload_body(
                snapshot.identity, snapshot.metadata, reset_prompt_cache=send_reset
            )
            try:
                response = await self._http.request(
                    "POST",
                    self._url,
                    deadline=deadline,
                    attempt_timeout_s=self._http.timeouts.hotload_post_s,
                    json_body=body,
                    gateway=True,
                    extra_headers=headers,
                    idempotent=False,
                    retry=False,
                )
            except BadRequestError as exc:
                if send_reset is not None and _wire.rejects_reset_prompt_cache(
                    exc.status_code, exc.server_message, exc.body
                ):
                    logger.info(
                        "Gateway %s rejects reset_prompt_cache; sending without it", self._gateway
                    )
                    self.reset_prompt_cache_supported = False
                    continue
                if attempt and await self._landed(target, snapshot, deadline, exc):
                    return {}
                raise
            except (APIConnectionError, APIStatusError, ResponseValidationError) as failed:
                if deadline.expired and earlier is not None and isinstance(failed, APITimeoutError):
                    # The deadline, not the server, cut this attempt short: report the last
                    # thing the server did say.
                    raise earlier from failed
                if deadline.expired or not worth_resending(failed):
                    raise
                if not never_sent(failed) and await self._landed(
                    target, snapshot, deadline, failed
                ):
                    return {}
                await back_off(self._http, attempt, deadline, failed)
                attempt += 1
                earlier = failed
                continue
            if send_reset is not None and self.reset_prompt_cache_supported is None:
                self.reset_prompt_cache_supported = True
            return response.json if isinstance(response.json, Mapping) else {}

    async def _landed(
        self, target: HotloadTarget, snapshot: Snapshot, deadline: Deadline, lost: Exception
    ) -> bool:
        """Whether a POST whose outcome is unknown landed: some replica mentions the snapshot.

        Status can lag an accepted POST, so a status that does not mention it yet is read
        again for up to `status_lag_s` before the load counts as not landed.
        """
        settled_at = time.monotonic() + min(self.status_lag_s, deadline.remaining())
        for read in range(1 + math.ceil(self.status_lag_s / LAG_POLL_S)):
            if read:
                pause = min(LAG_POLL_S, settled_at - time.monotonic())
                if pause <= 0:
                    break
                await self._http.sleep(pause)
            status = await read_back(partial(self.status, target, deadline), lost)
            if status.mentions(snapshot.identity):
                logger.info(
                    "Hot-load %s on %s landed although its POST failed (%s)",
                    snapshot.identity,
                    target.deployment_id,
                    type(lost).__name__,
                )
                return True
        return False

    async def status(
        self, target: HotloadTarget, deadline: Deadline, *, retry: bool = True
    ) -> HotloadStatus:
        """Every replica's hot-load state."""
        response = await self._http.request(
            "GET",
            self._url,
            deadline=deadline,
            attempt_timeout_s=self._http.timeouts.hotload_status_s,
            gateway=True,
            extra_headers=await self._headers(target, deadline),
            retry=retry,
        )
        return _wire.hotload_status_from_wire(response.json, deployment_id=target.deployment_id)

    async def wait(
        self,
        target: HotloadTarget,
        identity: str,
        deadline: Deadline,
        poll_interval_s: float,
        *,
        sent: Snapshot | None = None,
        detect_lost: bool = False,
    ) -> HotloadStatus:
        """Poll until every replica serves `identity`.

        `sent` marks a wait that starts right after our own POST of that snapshot: its duration
        is learned, and later loads of the same kind poll around the predicted completion
        instead of on a blind backoff. `detect_lost` raises `_LoadLostError` when no replica
        mentions the load for a while (a restarted gateway forgot it).
        """
        joined = time.monotonic()
        deployment_id = target.deployment_id
        learn = None if sent is None else (deployment_id, sent.is_delta)
        expected = None if learn is None else self.timing.predict(*learn)
        not_done_at: list[float] = []
        errors = PollErrors(not_found_ok=True)
        replicas = _ReplicaBook(identity)

        async def fetch(deadline: Deadline) -> HotloadStatus:
            try:
                return await self.status(target, deadline, retry=False)
            except NotFoundError:
                # The gateway answers 404 while its hot-load manager starts, and also when the
                # deployment is gone: only the control plane can tell which. A missing or
                # FAILED/DELETING deployment raises here; otherwise the 404 is waited out.
                info = await self._deployments.get(deployment_id, deadline, retry=False)
                readiness(deployment_id, info, False, f"hot-load {identity!r}")
                raise

        def evaluate(obs: Observation[HotloadStatus]) -> HotloadStatus | None:
            if obs.error is not None:
                if errors.absorbs(obs.error):
                    return None
                raise obs.error
            errors.ok()
            status = cast("HotloadStatus", obs.value)
            replicas.observe(status)
            if (
                detect_lost
                and replicas.forgotten_polls >= LOST_AFTER_POLLS
                and obs.started_at - joined >= LOST_AFTER_S
            ):
                raise _LoadLostError(status)
            done = status.serves(identity) and not replicas.missing
            if learn is not None:
                if done:
                    lower = not_done_at[-1] - joined if not_done_at else None
                    self.timing.record(*learn, lower, obs.started_at - joined)
                else:
                    not_done_at.append(obs.started_at)
            failed = status.failed_replicas(identity)
            if failed:
                raise HotloadFailedError(
                    f"Hot-load of {identity!r} on deployment {deployment_id!r} failed on "
                    f"{len(failed)} of {len(status.replicas)} replica(s): {status.summary()}.",
                    deployment_id=deployment_id,
                    identity=identity,
                    stage=failed[0].loading_state.stage,
                    status=status,
                )
            return status if done else None

        def on_timeout(last: Observation[HotloadStatus] | None) -> Exception:
            status = last.value if last is not None else None
            seen = status.summary() if status is not None else describe_last(last)
            if replicas.missing:
                seen += (
                    f"; replicas gone from the status list: {', '.join(sorted(replicas.missing))}"
                )
            return HotloadTimeoutError(
                f"Hot-load of {identity!r} on deployment {deployment_id!r} did not complete "
                f"within {deadline.timeout_s:g}s; last seen: {seen}.",
                timeout_s=deadline.timeout_s,
                last_status=status,
            )

        return await self._hub.wait(
            ("hotload", self._gateway, deployment_id, target.base_model),
            fetch,
            evaluate,
            deadline=deadline,
            schedule=_schedule(poll_interval_s, sent is not None, expected, joined),
            on_timeout=on_timeout,
            retry_after=error_retry_after,
        )

    async def load_and_wait(
        self, target: HotloadTarget, snapshot: Snapshot, deadline: Deadline, poll_interval_s: float
    ) -> HotloadStatus:
        """POST, then wait; if the load vanishes from every replica (a restarted gateway lost
        it), POST it again, a bounded number of times.

        The status returned carries `load_s` (from the first POST until every replica was seen
        serving the snapshot) and `status_requests` (what this call's waits sent).
        """
        await self._account.resolve(deadline)  # before the clock starts (usually known already)
        posted_at = time.monotonic()
        status_requests = 0
        for resends_left in range(MAX_LOST_RESENDS, -1, -1):
            await self.send(target, snapshot, deadline)
            try:
                with counting_requests() as polls:
                    status = await self.wait(
                        target,
                        snapshot.identity,
                        deadline,
                        poll_interval_s,
                        sent=snapshot,
                        detect_lost=resends_left > 0,
                    )
                return attrs.evolve(
                    status,
                    load_s=time.monotonic() - posted_at,
                    status_requests=status_requests + polls.count,
                )
            except _LoadLostError as lost:
                status_requests += polls.count
                logger.warning(
                    "Hot-load of %s on %s is no longer in progress on any replica (%s); "
                    "sending it again",
                    snapshot.identity,
                    target.deployment_id,
                    lost.status.summary(),
                )
        raise AssertionError("unreachable: the last attempt does not detect lost loads")
