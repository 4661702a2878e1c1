"""The hot-load protocol: send a snapshot (read back before any re-send), read the replicas'
status, wait until every replica serves it, learn how long loads take, and re-send a load that a
restarted gateway lost.
"""

from __future__ import annotations

import logging
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
    BadRequestError,
    HotloadFailedError,
    HotloadTimeoutError,
    NotFoundError,
    ResponseValidationError,
)
from ._http import HTTPClient, PollErrors, build_url, error_retry_after, outcome_unknown
from ._models import HotloadStatus, IncrementalSnapshotMetadata
from ._polling import HotloadTiming, Observation, PollHub, PollSchedule, describe_last
from ._resend import back_off, read_back

__all__ = ["HOTLOAD_PATH", "HotloadTarget", "Hotloads", "Snapshot"]

logger = logging.getLogger("fireworks_deploy")

HOTLOAD_PATH = "/hot_load/v1/models/hot_load"
#: A load no replica mentions for this many polls and seconds after our POST was lost.
LOST_AFTER_POLLS = 3
LOST_AFTER_S = 1.0
MAX_LOST_RESENDS = 2


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


class _LoadLostError(Exception):
    """Every replica forgot the load we POSTed (the gateway restarted)."""

    def __init__(self, status: HotloadStatus) -> None:
        super().__init__(status.summary())
        self.status = status


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
        """POST the load once; a lost answer is checked against the status before any re-send.

        Returns the gateway's JSON (an empty mapping if it sent none, or if the status proved
        that a POST whose answer was lost had landed).
        """
        headers = await self._headers(target, deadline, snapshot)
        attempt = 0
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
                raise
            except (APIConnectionError, APIStatusError, ResponseValidationError) as lost:
                # The POST may or may not have landed: check the status before re-sending.
                if not outcome_unknown(lost) or deadline.expired:
                    raise
                status = await read_back(partial(self.status, target, deadline), lost)
                if status.mentions(snapshot.identity):
                    logger.info(
                        "Hot-load %s on %s landed before its answer was lost",
                        snapshot.identity,
                        target.deployment_id,
                    )
                    return {}
                await back_off(self._http, attempt, deadline, lost)
                attempt += 1
                continue
            if send_reset is not None and self.reset_prompt_cache_supported is None:
                self.reset_prompt_cache_supported = True
            return response.json if isinstance(response.json, Mapping) else {}

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
        traceless = 0
        errors = PollErrors(not_found_ok=True)

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
            nonlocal traceless
            if obs.error is not None:
                if errors.absorbs(obs.error):
                    return None
                raise obs.error
            errors.ok()
            status = cast("HotloadStatus", obs.value)
            traceless = traceless + 1 if status.replicas and not status.mentions(identity) else 0
            if (
                detect_lost
                and traceless >= LOST_AFTER_POLLS
                and obs.started_at - joined >= LOST_AFTER_S
            ):
                raise _LoadLostError(status)
            if learn is not None:
                if status.serves(identity):
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
            return status if status.serves(identity) else None

        def on_timeout(last: Observation[HotloadStatus] | None) -> Exception:
            status = last.value if last is not None else None
            seen = status.summary() if status is not None else describe_last(last)
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
            schedule=PollSchedule(
                poll_interval_s, expected_at=None if expected is None else joined + expected
            ),
            on_timeout=on_timeout,
            retry_after=error_retry_after,
        )

    async def load_and_wait(
        self, target: HotloadTarget, snapshot: Snapshot, deadline: Deadline, poll_interval_s: float
    ) -> HotloadStatus:
        """POST, then wait; if the load vanishes from every replica (a restarted gateway lost
        it), POST it again, a bounded number of times."""
        for resends_left in range(MAX_LOST_RESENDS, -1, -1):
            await self.send(target, snapshot, deadline)
            try:
                return await self.wait(
                    target,
                    snapshot.identity,
                    deadline,
                    poll_interval_s,
                    sent=snapshot,
                    detect_lost=resends_left > 0,
                )
            except _LoadLostError as lost:
                logger.warning(
                    "Hot-load of %s on %s is no longer in progress on any replica (%s); "
                    "sending it again",
                    snapshot.identity,
                    target.deployment_id,
                    lost.status.summary(),
                )
        raise AssertionError("unreachable: the last attempt does not detect lost loads")
