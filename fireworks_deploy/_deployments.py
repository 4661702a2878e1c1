"""The deployment lifecycle on the control plane: CRUD, readiness and deletion waits."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from functools import partial
from typing import Any, cast

import attrs
import httpx

from . import _wire
from ._account import Account
from ._batch import BatchedReads
from ._config import Deadline
from ._errors import (
    APIConnectionError,
    APIStatusError,
    APITimeoutError,
    ConflictError,
    DeletionTimeoutError,
    DeploymentFailedError,
    DeploymentNotFoundError,
    InvalidConfigError,
    NotFoundError,
    ReadyTimeoutError,
    ResponseValidationError,
)
from ._failures import PollErrors, error_retry_after
from ._http import HTTPClient
from ._inference import Inference
from ._models import DeploymentConfig, DeploymentInfo, DeploymentState
from ._polling import Observation, PollHub, PollSchedule, describe_last
from ._resend import back_off, never_sent, read_back, worth_resending

__all__ = ["Deployments", "check_config", "readiness"]

logger = logging.getLogger(__name__)

DEPLOYMENT_PAGE_SIZE = 200
#: How often a create_or_get that had to delete first checks that the old deployment is gone.
RECREATE_POLL_S = 2.0


def check_config(config: object) -> DeploymentConfig:
    """A validated copy of `config`, made before any request.

    `config` is our `DeploymentConfig`, the official client's, or any object with every one of
    its fields; it is checked as ours is on construction, now, when it is used (a config is
    mutable, so it may have changed since it was built), and the copy cannot change under us.
    """
    names = [field.name for field in attrs.fields(DeploymentConfig)]
    missing = [name for name in names if not hasattr(config, name)]
    if missing:
        raise InvalidConfigError(
            f"config must be a DeploymentConfig (ours or the official client's), got "
            f"{type(config).__name__} without {', '.join(missing)}."
        )
    return DeploymentConfig(**{name: getattr(config, name) for name in names})


def readiness(
    deployment_id: str,
    info: DeploymentInfo | None,
    serving: bool,
    waiting_for: str = "it to be ready",
) -> DeploymentInfo | None:
    """The readiness rule shared by single and fleet waits: info if ready, None to go on.

    A deployment that is gone, FAILED, DELETING or DELETED raises `DeploymentFailedError`.
    """
    if info is None:
        raise DeploymentNotFoundError(
            f"Deployment {deployment_id!r} does not exist (404) while waiting for "
            f"{waiting_for}; create it with create_or_get().",
            deployment_id=deployment_id,
            state=None,
        )
    if info.is_ready:
        return info
    if serving:
        return attrs.evolve(info, serving=True)
    if info.is_bad:
        raise DeploymentFailedError(
            f"Deployment {deployment_id!r} is {info.state} while waiting for {waiting_for}; "
            "recreate it with create_or_get(config, force_recreate=True).",
            deployment_id=deployment_id,
            state=info.state,
            info=info,
        )
    return None


class Deployments:
    """Deployments of one account. Methods take a deadline built by the caller."""

    def __init__(
        self, http: HTTPClient, account: Account, hub: PollHub, inference: Inference
    ) -> None:
        self._http = http
        self._account = account
        self._hub = hub
        self._inference = inference
        self.reads = BatchedReads(partial(self.list, retry=False), partial(self.get, retry=False))

    def operation_deadline(self) -> Deadline:
        """The deadline of a single-request operation (`Timeouts.operation_s`)."""
        return Deadline(self._http.timeouts.operation_s)

    async def _url(self, deployment_id: str, deadline: Deadline) -> httpx.URL:
        return await self._account.url(f"deployments/{deployment_id}", deadline)

    def _info(self, body: Any, deployment_id: str) -> DeploymentInfo:
        return _wire.deployment_from_wire(
            body, account_id=cast("str", self._account.id), deployment_id=deployment_id
        )

    # -- reads -----------------------------------------------------------------------------

    async def get(
        self, deployment_id: str, deadline: Deadline, *, retry: bool = True
    ) -> DeploymentInfo | None:
        """The deployment, or None on 404."""
        url = await self._url(deployment_id, deadline)
        try:
            response = await self._http.request("GET", url, deadline=deadline, retry=retry)
        except NotFoundError:
            return None
        return self._info(response.json, deployment_id)

    async def list(self, deadline: Deadline, *, retry: bool = True) -> list[DeploymentInfo]:
        """Every deployment of the account, all pages read."""
        url = await self._account.url("deployments", deadline)
        account = cast("str", self._account.id)
        found: list[DeploymentInfo] = []
        token: str | None = None
        while True:
            params = {"pageSize": str(DEPLOYMENT_PAGE_SIZE)}
            if token:
                params["pageToken"] = token
            response = await self._http.request(
                "GET", url.copy_merge_params(params), deadline=deadline, retry=retry
            )
            page, token = _wire.deployments_page_from_wire(response.json, account_id=account)
            found.extend(page)
            if not token:
                return found

    # -- writes ----------------------------------------------------------------------------

    async def create_or_get(
        self, config: DeploymentConfig, force_recreate: bool, deadline: Deadline
    ) -> DeploymentInfo:
        existing = await self.get(config.deployment_id, deadline)
        if existing is not None and not existing.is_bad and not force_recreate:
            return existing
        if existing is not None:
            logger.info("Recreating deployment %s (state %s)", config.deployment_id, existing.state)
            await self.delete(config.deployment_id, deadline)
            await self.wait_for_deletion(config.deployment_id, deadline, RECREATE_POLL_S)
        return await self.create(config, deadline)

    async def create(self, config: DeploymentConfig, deadline: Deadline) -> DeploymentInfo:
        """POST the deployment once; a lost answer is read back before any re-send."""
        url = (await self._account.url("deployments", deadline)).copy_merge_params(
            _wire.create_params(config)
        )
        body = _wire.deployment_body(config)
        attempt = 0
        earlier: Exception | None = None  # what the server said before the latest attempt
        while True:
            try:
                response = await self._http.request(
                    "POST", url, deadline=deadline, json_body=body, idempotent=False, retry=False
                )
            except ConflictError as conflict:
                return await self._existing_after_conflict(config, deadline, conflict)
            except (APIConnectionError, APIStatusError, ResponseValidationError) as failed:
                if deadline.expired and earlier is not None and isinstance(failed, APITimeoutError):
                    # The deadline, not the server, cut this attempt short: report the last
                    # thing the server did say.
                    raise earlier from failed
                if deadline.expired or not worth_resending(failed):
                    raise
                if not never_sent(failed):
                    # The POST may have landed: read before sending it again.
                    existing = await read_back(
                        partial(self.get, config.deployment_id, deadline), failed
                    )
                    if existing is not None:
                        logger.info(
                            "Create of %s landed before its answer was lost", config.deployment_id
                        )
                        return existing
                await back_off(self._http, attempt, deadline, failed)
                attempt += 1
                earlier = failed
                continue
            return self._info(response.json, config.deployment_id)

    async def _existing_after_conflict(
        self, config: DeploymentConfig, deadline: Deadline, conflict: ConflictError
    ) -> DeploymentInfo:
        existing = await self.get(config.deployment_id, deadline)
        if existing is None:
            raise conflict
        if existing.is_bad:
            raise DeploymentFailedError(
                f"Deployment {config.deployment_id!r} already exists in state "
                f"{existing.state}; call create_or_get(config, force_recreate=True).",
                deployment_id=config.deployment_id,
                state=existing.state,
                info=existing,
            ) from conflict
        return existing

    async def update(
        self, deployment_id: str, wire_body: Mapping[str, Any], mask: str, deadline: Deadline
    ) -> DeploymentInfo:
        """PATCH the fields named by `mask` (already in wire form)."""
        url = (await self._url(deployment_id, deadline)).copy_merge_params({"updateMask": mask})
        response = await self._http.request(
            "PATCH", url, deadline=deadline, json_body=wire_body, idempotent=True
        )
        return self._info(response.json, deployment_id)

    async def scale_to_zero(self, deployment_id: str, deadline: Deadline) -> DeploymentInfo | None:
        url = await self._url(deployment_id, deadline)
        response = await self._http.request(
            "PATCH", url, deadline=deadline, json_body=_wire.scale_body(0), idempotent=True
        )
        if isinstance(response.json, Mapping) and response.json.get("name"):
            return self._info(response.json, deployment_id)
        return None

    async def delete(
        self, deployment_id: str, deadline: Deadline, *, missing_ok: bool = True
    ) -> None:
        url = (await self._url(deployment_id, deadline)).copy_merge_params(
            {"ignoreChecks": "true", "hard": "true"}
        )
        try:
            await self._http.request("DELETE", url, deadline=deadline)
        except NotFoundError:
            if not missing_ok:
                raise

    # -- waits -----------------------------------------------------------------------------

    async def wait_for_ready(
        self, deployment_id: str, deadline: Deadline, poll_interval_s: float
    ) -> DeploymentInfo:
        async def fetch(deadline: Deadline) -> tuple[DeploymentInfo | None, bool]:
            info = await self.reads.read(deployment_id, deadline)
            if info is None or info.state != DeploymentState.CREATING:
                return info, False
            return info, await self._inference.probe(info.inference_model, deadline)

        errors = PollErrors()

        def evaluate(obs: Observation[tuple[DeploymentInfo | None, bool]]) -> DeploymentInfo | None:
            if obs.error is not None:
                if errors.absorbs(obs.error):
                    return None
                raise obs.error
            errors.ok()
            info, serving = cast("tuple[DeploymentInfo | None, bool]", obs.value)
            return readiness(deployment_id, info, serving)

        def on_timeout(last: Observation[tuple[DeploymentInfo | None, bool]] | None) -> Exception:
            info = last.value[0] if last is not None and last.value is not None else None
            seen = f"last state {info.state}" if info else describe_last(last)
            return ReadyTimeoutError(
                f"Deployment {deployment_id!r} was not ready within {deadline.timeout_s:g}s "
                f"({seen}).",
                timeout_s=deadline.timeout_s,
                last_status=info,
            )

        with self.reads.waiting(deployment_id):
            return await self._hub.wait(
                ("ready", deployment_id),
                fetch,
                evaluate,
                deadline=deadline,
                # No POST of ours just happened: poll on the caller's interval grid.
                schedule=PollSchedule(poll_interval_s, backoff=False),
                on_timeout=on_timeout,
                retry_after=error_retry_after,
            )

    async def wait_for_deletion(
        self, deployment_id: str, deadline: Deadline, poll_interval_s: float
    ) -> None:
        async def fetch(deadline: Deadline) -> DeploymentInfo | None:
            return await self.get(deployment_id, deadline, retry=False)

        errors = PollErrors()

        def evaluate(obs: Observation[DeploymentInfo | None]) -> bool | None:
            if obs.error is not None:
                if errors.absorbs(obs.error):
                    return None
                raise obs.error
            errors.ok()
            info = obs.value
            return True if info is None or info.state == DeploymentState.DELETED else None

        def on_timeout(last: Observation[DeploymentInfo | None] | None) -> Exception:
            info = last.value if last is not None else None
            return DeletionTimeoutError(
                f"Deployment {deployment_id!r} was not confirmed deleted within "
                f"{deadline.timeout_s:g}s (last state {info.state if info else 'unknown'}).",
                timeout_s=deadline.timeout_s,
                last_status=info,
            )

        await self._hub.wait(
            ("deleted", deployment_id),
            fetch,
            evaluate,
            deadline=deadline,
            schedule=PollSchedule(poll_interval_s),
            on_timeout=on_timeout,
            retry_after=error_retry_after,
        )
