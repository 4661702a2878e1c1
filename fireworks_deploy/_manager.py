"""AsyncDeploymentManager: the deployment lifecycle and hot-load operations."""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from functools import partial
from types import TracebackType
from typing import Any, TypeVar, cast

import anyio
import httpx

from . import _fleet, _wire
from ._batch import BatchedReads
from ._config import (
    ACCOUNT_ID_ENV,
    DEFAULT_BASE_URL,
    Deadline,
    RetryPolicy,
    Timeouts,
    check_positive,
    resolve_api_key,
)
from ._errors import (
    APIConnectionError,
    APIStatusError,
    AuthenticationError,
    BadRequestError,
    ConflictError,
    DeletionTimeoutError,
    DeploymentFailedError,
    DeploymentNotFoundError,
    HotloadFailedError,
    HotloadTimeoutError,
    InvalidConfigError,
    NotFoundError,
    PermissionDeniedError,
    ReadyTimeoutError,
    ResponseValidationError,
    WarmupError,
)
from ._fleet import FleetResult
from ._http import (
    HTTPClient,
    PollErrors,
    build_url,
    check_additional_headers,
    error_retry_after,
    is_transient,
    outcome_unknown,
    parse_base_url,
    parse_retry_after,
)
from ._lease import DeploymentLease, LeaseAction
from ._models import (
    DeploymentConfig,
    DeploymentInfo,
    DeploymentState,
    HotloadStatus,
    IncrementalSnapshotMetadata,
    MetadataLike,
    WarmupResult,
    check_hotload_args,
    validate_deployment_id,
)
from ._polling import HotloadTiming, Observation, PollHub, PollSchedule

__all__ = ["AsyncDeploymentManager"]

logger = logging.getLogger("fireworks_deploy")

HOTLOAD_PATH = "/hot_load/v1/models/hot_load"
COMPLETIONS_PATH = "/inference/v1/completions"
_DEPLOYMENT_PAGE_SIZE = 200
#: A load no replica mentions for this many polls and seconds after our POST was lost.
_LOST_AFTER_POLLS = 3
_LOST_AFTER_S = 1.0
_MAX_LOST_RESENDS = 2
_READ_BACK_ATTEMPTS = 3
T = TypeVar("T")


class _LoadLostError(Exception):
    """Internal: every replica forgot the load we POSTed (the gateway restarted)."""

    def __init__(self, status: HotloadStatus) -> None:
        super().__init__(status.summary())
        self.status = status


class AsyncDeploymentManager:
    """Manage Fireworks deployments and hot-load weights into them, concurrently.

    One instance holds pooled HTTP clients; share it across tasks and close it with `aclose()`
    or `async with`. Every method is safe to run concurrently with every other.
    """

    def __init__(
        self,
        api_key: str | None = None,
        account_id: str | None = None,
        base_url: str = DEFAULT_BASE_URL,
        inference_url: str | None = None,
        hotload_api_url: str | None = None,
        additional_headers: Mapping[str, str] | None = None,
        verify_ssl: bool | None = None,
        *,
        transport: httpx.AsyncBaseTransport | None = None,
        max_concurrency: int = 32,
        timeouts: Timeouts | None = None,
        retry: RetryPolicy | None = None,
    ) -> None:
        self._api_key = resolve_api_key(api_key)
        if account_id is None:
            account_id = _env_account_id()
        self._account_id = None if account_id is None else _wire.validate_account_id(account_id)
        self._base_url = parse_base_url(base_url, "base_url")
        self._inference_url = (
            self._base_url
            if inference_url is None
            else parse_base_url(inference_url, "inference_url")
        )
        self._hotload_url = (
            self._base_url
            if hotload_api_url is None
            else parse_base_url(hotload_api_url, "hotload_api_url")
        )
        if verify_ssl is not None and not isinstance(verify_ssl, bool):
            raise InvalidConfigError(f"verify_ssl must be True, False or None, got {verify_ssl!r}.")
        if (
            isinstance(max_concurrency, bool)
            or not isinstance(max_concurrency, int)
            or (max_concurrency < 1)
        ):
            raise InvalidConfigError(
                f"max_concurrency must be a positive integer, got {max_concurrency!r}."
            )
        self._http = HTTPClient(
            api_key=self._api_key,
            additional_headers=check_additional_headers(additional_headers),
            verify_ssl=verify_ssl,
            transport=transport,
            max_concurrency=max_concurrency,
            timeouts=timeouts or Timeouts(),
            retry=retry or RetryPolicy(),
        )
        self._account_lock: anyio.Lock | None = None
        self._hub = PollHub()
        self._hotload_timing = HotloadTiming()
        self._reads = BatchedReads(
            partial(self._list, retry=False), partial(self._get, retry=False)
        )
        #: Whether each hot-load gateway accepts `reset_prompt_cache` (None: not known yet).
        self._reset_prompt_cache_supported: dict[str, bool] = {}

    def __repr__(self) -> str:
        return (
            f"AsyncDeploymentManager(base_url={str(self._base_url)!r}, "
            f"account_id={self._account_id!r})"
        )

    # -- lifecycle -------------------------------------------------------------------------

    async def __aenter__(self) -> AsyncDeploymentManager:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Close the pooled connections. Idempotent."""
        await self._http.aclose()

    @property
    def closed(self) -> bool:
        return self._http.closed

    @property
    def base_url(self) -> str:
        return str(self._base_url)

    @property
    def inference_url(self) -> str:
        return str(self._inference_url)

    @property
    def hotload_api_url(self) -> str:
        return str(self._hotload_url)

    @property
    def account_id(self) -> str | None:
        """The account, once known (given, from the environment, or resolved)."""
        return self._account_id

    @property
    def poll_requests(self) -> int:
        """Status fetches made by every wait so far (for tests and benchmarks)."""
        return self._hub.fetches

    async def resolve_account_id(self) -> str:
        """The account id; resolved once with `GET /v1/accounts?pageSize=2` if not given."""
        return await self._account(Deadline(self._http.timeouts.operation_s))

    async def _account(self, deadline: Deadline) -> str:
        if self._account_id is not None:
            return self._account_id
        if self._account_lock is None:
            self._account_lock = anyio.Lock()
        async with self._account_lock:
            if self._account_id is None:
                url = build_url(self._base_url, "/v1/accounts", {"pageSize": "2"})
                response = await self._http.request("GET", url, deadline=deadline)
                self._account_id = _wire.validate_account_id(
                    _wire.account_from_accounts(response.json)
                )
            return self._account_id

    async def _deployment_url(self, deployment_id: str, deadline: Deadline) -> httpx.URL:
        account = await self._account(deadline)
        return build_url(self._base_url, f"/v1/accounts/{account}/deployments/{deployment_id}")

    # -- deployments -----------------------------------------------------------------------

    async def get(self, deployment_id: str) -> DeploymentInfo | None:
        """The deployment, or None if it does not exist (404)."""
        validate_deployment_id(deployment_id)
        return await self._get(deployment_id, Deadline(self._http.timeouts.operation_s))

    async def _get(
        self, deployment_id: str, deadline: Deadline, *, retry: bool = True
    ) -> DeploymentInfo | None:
        url = await self._deployment_url(deployment_id, deadline)
        try:
            response = await self._http.request("GET", url, deadline=deadline, retry=retry)
        except NotFoundError:
            return None
        return _wire.deployment_from_wire(
            response.json, account_id=await self._account(deadline), deployment_id=deployment_id
        )

    async def list_deployments(self) -> list[DeploymentInfo]:
        """Every deployment of the account, all pages read."""
        return await self._list(Deadline(self._http.timeouts.operation_s))

    async def _list(self, deadline: Deadline, *, retry: bool = True) -> list[DeploymentInfo]:
        account = await self._account(deadline)
        url = build_url(self._base_url, f"/v1/accounts/{account}/deployments")
        found: list[DeploymentInfo] = []
        token: str | None = None
        while True:
            params = {"pageSize": str(_DEPLOYMENT_PAGE_SIZE)}
            if token:
                params["pageToken"] = token
            response = await self._http.request(
                "GET", url.copy_merge_params(params), deadline=deadline, retry=retry
            )
            page, token = _wire.deployments_page_from_wire(response.json, account_id=account)
            found.extend(page)
            if not token:
                return found

    async def create_or_get(
        self, config: DeploymentConfig, force_recreate: bool = False, *, timeout_s: float = 300.0
    ) -> DeploymentInfo:
        """Return the deployment, creating it if absent.

        A deployment in a bad state (FAILED, DELETING, DELETED), or any with `force_recreate`, is
        deleted, confirmed gone, and created anew. A create that conflicts (409) or whose answer
        was lost re-reads the deployment instead of creating twice.
        """
        if not isinstance(config, DeploymentConfig):
            raise InvalidConfigError(
                f"config must be a DeploymentConfig, got {type(config).__name__}."
            )
        deadline = Deadline(check_positive("timeout_s", timeout_s))
        existing = await self._get(config.deployment_id, deadline)
        if existing is not None and not existing.is_bad and not force_recreate:
            return existing
        if existing is not None:
            logger.info("Recreating deployment %s (state %s)", config.deployment_id, existing.state)
            await self._delete(config.deployment_id, deadline)
            await self._wait_for_deletion(config.deployment_id, deadline, poll_interval_s=2.0)
        return await self._create(config, deadline)

    async def _create(self, config: DeploymentConfig, deadline: Deadline) -> DeploymentInfo:
        account = await self._account(deadline)
        url = build_url(
            self._base_url, f"/v1/accounts/{account}/deployments", _wire.create_params(config)
        )
        body = _wire.deployment_body(config)
        attempt = 0
        while True:
            try:
                response = await self._http.request(
                    "POST", url, deadline=deadline, json_body=body, idempotent=False
                )
            except ConflictError as conflict:
                existing = await self._get(config.deployment_id, deadline)
                if existing is None:
                    raise
                if existing.is_bad:
                    raise DeploymentFailedError(
                        f"Deployment {config.deployment_id!r} already exists in state "
                        f"{existing.state}; call create_or_get(config, force_recreate=True).",
                        deployment_id=config.deployment_id,
                        state=existing.state,
                        info=existing,
                    ) from conflict
                return existing
            except (APIConnectionError, APIStatusError, ResponseValidationError) as lost:
                # The POST may or may not have landed: read before sending it again.
                if not outcome_unknown(lost) or deadline.expired:
                    raise
                existing = await _read_back(
                    partial(self._get, config.deployment_id, deadline), lost
                )
                if existing is not None:
                    logger.info(
                        "Create of %s landed before its answer was lost", config.deployment_id
                    )
                    return existing
                await self._back_off(attempt, deadline, lost)
                attempt += 1
                continue
            return _wire.deployment_from_wire(
                response.json, account_id=account, deployment_id=config.deployment_id
            )

    async def _back_off(self, attempt: int, deadline: Deadline, lost: Exception) -> None:
        """Pause before re-sending a POST that did not land; past the deadline, raise `lost`."""
        delay = self._http.retry.delay(attempt)
        if delay >= deadline.remaining():
            raise lost
        await self._http.sleep(delay)
        if deadline.expired:
            raise lost

    async def wait_for_ready(
        self, deployment_id: str, timeout_s: float = 600, poll_interval_s: float = 15
    ) -> DeploymentInfo:
        """Wait until the deployment serves: READY, or CREATING with a completions probe of 200.

        Raises `DeploymentFailedError` for FAILED, DELETING or DELETED (and its subclass
        `DeploymentNotFoundError` if it disappears), `ReadyTimeoutError` at the deadline. The
        returned info is what the server said; a probe never rewrites the state.
        """
        validate_deployment_id(deployment_id)
        deadline = Deadline(check_positive("timeout_s", timeout_s))
        interval = check_positive("poll_interval_s", poll_interval_s)
        return await self._wait_for_ready(deployment_id, deadline, interval)

    async def _wait_for_ready(
        self, deployment_id: str, deadline: Deadline, poll_interval_s: float
    ) -> DeploymentInfo:
        async def fetch(deadline: Deadline) -> tuple[DeploymentInfo | None, bool]:
            info = await self._reads.read(deployment_id, deadline)
            if info is None or info.state != DeploymentState.CREATING:
                return info, False
            return info, await self._probe(info.inference_model, deadline)

        errors = PollErrors()

        def evaluate(obs: Observation[tuple[DeploymentInfo | None, bool]]) -> DeploymentInfo | None:
            if obs.error is not None:
                if errors.absorbs(obs.error):
                    return None
                raise obs.error
            errors.ok()
            info, serving = cast("tuple[DeploymentInfo | None, bool]", obs.value)
            return self._readiness(deployment_id, info, serving)

        def on_timeout(last: Observation[tuple[DeploymentInfo | None, bool]] | None) -> Exception:
            info = last.value[0] if last is not None and last.value is not None else None
            seen = f"last state {info.state}" if info else _last_error(last)
            return ReadyTimeoutError(
                f"Deployment {deployment_id!r} was not ready within {deadline.timeout_s:g}s "
                f"({seen}).",
                timeout_s=deadline.timeout_s,
                last_status=info,
            )

        with self._reads.waiting(deployment_id):
            return await self._hub.wait(
                ("ready", deployment_id),
                fetch,
                evaluate,
                deadline=deadline,
                schedule=PollSchedule(poll_interval_s),
                on_timeout=on_timeout,
                retry_after=error_retry_after,
            )

    @staticmethod
    def _readiness(
        deployment_id: str,
        info: DeploymentInfo | None,
        serving: bool,
        waiting_for: str = "it to be ready",
    ) -> DeploymentInfo | None:
        """The readiness rule shared by single and fleet waits: info if ready, None to go on."""
        if info is None:
            raise DeploymentNotFoundError(
                f"Deployment {deployment_id!r} does not exist (404) while waiting for "
                f"{waiting_for}; create it with create_or_get().",
                deployment_id=deployment_id,
                state=None,
            )
        if info.is_ready or serving:
            return info
        if info.is_bad:
            raise DeploymentFailedError(
                f"Deployment {deployment_id!r} is {info.state} while waiting for {waiting_for}; "
                "recreate it with create_or_get(config, force_recreate=True).",
                deployment_id=deployment_id,
                state=info.state,
                info=info,
            )
        return None

    async def _completion_once(
        self, model: str, deadline: Deadline, attempt_timeout_s: float, what: str
    ) -> httpx.Response:
        """One completions request (a probe or a warm-up): never retried; a refused key raises."""
        url = build_url(self._inference_url, COMPLETIONS_PATH)
        response = await self._http.send_once(
            "POST",
            url,
            deadline=deadline,
            attempt_timeout_s=attempt_timeout_s,
            json_body=_wire.completion_body(model),
            gateway=True,
        )
        if response.status_code in (401, 403):
            cls = AuthenticationError if response.status_code == 401 else PermissionDeniedError
            raise cls(
                f"{what} of {model} was refused with HTTP {response.status_code}: "
                "check the API key.",
                status_code=response.status_code,
                method="POST",
                url=str(url),
            )
        return response

    async def _probe(self, model: str, deadline: Deadline) -> bool:
        """One completions request: 200 means serving; auth failures raise; else 'not yet'."""
        try:
            response = await self._completion_once(
                model, deadline, self._http.timeouts.probe_s, "The completions probe"
            )
        except APIConnectionError:
            return False
        return response.status_code == 200

    async def update(
        self,
        deployment_id: str,
        body: Mapping[str, Any],
        update_mask: str | Sequence[str] | None = None,
    ) -> DeploymentInfo:
        """PATCH the named fields only (`updateMask`); keys may be camelCase or snake_case."""
        validate_deployment_id(deployment_id)
        wire_body, mask = _wire.update_body_and_mask(body, update_mask)
        deadline = Deadline(self._http.timeouts.operation_s)
        url = (await self._deployment_url(deployment_id, deadline)).copy_merge_params(
            {"updateMask": mask}
        )
        response = await self._http.request(
            "PATCH", url, deadline=deadline, json_body=wire_body, idempotent=True
        )
        return _wire.deployment_from_wire(
            response.json, account_id=await self._account(deadline), deployment_id=deployment_id
        )

    async def scale_to_zero(self, deployment_id: str) -> DeploymentInfo | None:
        """Release every replica (min = max = 0). Raises on failure; the deployment stays."""
        validate_deployment_id(deployment_id)
        deadline = Deadline(self._http.timeouts.operation_s)
        url = await self._deployment_url(deployment_id, deadline)
        response = await self._http.request(
            "PATCH", url, deadline=deadline, json_body=_wire.scale_body(0), idempotent=True
        )
        if isinstance(response.json, Mapping) and response.json.get("name"):
            return _wire.deployment_from_wire(
                response.json, account_id=await self._account(deadline), deployment_id=deployment_id
            )
        return None

    async def delete(
        self,
        deployment_id: str,
        *,
        wait: bool = False,
        timeout_s: float = 60.0,
        missing_ok: bool = True,
    ) -> None:
        """Delete (ignoreChecks, hard). Raises on failure; `wait=True` also confirms it is gone."""
        validate_deployment_id(deployment_id)
        deadline = Deadline(check_positive("timeout_s", timeout_s))
        await self._delete(deployment_id, deadline, missing_ok=missing_ok)
        if wait:
            await self._wait_for_deletion(deployment_id, deadline, poll_interval_s=2.0)

    async def _delete(
        self, deployment_id: str, deadline: Deadline, *, missing_ok: bool = True
    ) -> None:
        url = (await self._deployment_url(deployment_id, deadline)).copy_merge_params(
            {"ignoreChecks": "true", "hard": "true"}
        )
        try:
            await self._http.request("DELETE", url, deadline=deadline)
        except NotFoundError:
            if not missing_ok:
                raise

    async def wait_for_deletion(
        self, deployment_id: str, timeout_s: float = 60.0, poll_interval_s: float = 2.0
    ) -> None:
        """Wait until the deployment is gone (404) or DELETED."""
        validate_deployment_id(deployment_id)
        deadline = Deadline(check_positive("timeout_s", timeout_s))
        await self._wait_for_deletion(
            deployment_id, deadline, check_positive("poll_interval_s", poll_interval_s)
        )

    async def _wait_for_deletion(
        self, deployment_id: str, deadline: Deadline, poll_interval_s: float
    ) -> None:
        async def fetch(deadline: Deadline) -> DeploymentInfo | None:
            return await self._get(deployment_id, deadline, retry=False)

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

    # -- hot-load --------------------------------------------------------------------------

    async def _hotload_headers(
        self,
        deployment_id: str,
        base_model: str,
        deadline: Deadline,
        path: str | None = None,
        cmek_resource: str | None = None,
    ) -> dict[str, str]:
        account = await self._account(deadline)
        headers = {
            "fireworks-model": base_model,
            "fireworks-deployment": f"accounts/{account}/deployments/{deployment_id}",
        }
        if path is not None:
            headers["x-fireworks-hot-load-source-url"] = path
        if cmek_resource is not None:
            headers["x-fireworks-hot-load-cmek-resource"] = cmek_resource
        return headers

    async def hotload(
        self,
        deployment_id: str,
        base_model: str,
        snapshot_identity: str,
        incremental_snapshot_metadata: MetadataLike | None = None,
        reset_prompt_cache: bool = True,
        timeout: float = 60,  # noqa: ASYNC109 - the official client's name for this budget
        path: str | None = None,
        cmek_resource: str | None = None,
    ) -> Mapping[str, Any]:
        """Ask every replica to load `snapshot_identity` (a delta if metadata is given).

        Returns the gateway's JSON (an empty mapping if it sent none). A POST whose answer was
        lost is not re-sent blindly: the status is read first, and the load counts as accepted
        if a replica already targets or serves the identity.
        """
        metadata = check_hotload_args(
            deployment_id,
            base_model,
            snapshot_identity,
            incremental_snapshot_metadata,
            path,
            cmek_resource,
        )
        deadline = Deadline(check_positive("timeout", timeout))
        return await self._hotload(
            deployment_id,
            base_model,
            snapshot_identity,
            metadata,
            reset_prompt_cache,
            deadline,
            path,
            cmek_resource,
        )

    async def _hotload(
        self,
        deployment_id: str,
        base_model: str,
        identity: str,
        metadata: IncrementalSnapshotMetadata | None,
        reset_prompt_cache: bool,
        deadline: Deadline,
        path: str | None,
        cmek_resource: str | None,
    ) -> Mapping[str, Any]:
        url = build_url(self._hotload_url, HOTLOAD_PATH)
        gateway = str(self._hotload_url)
        headers = await self._hotload_headers(
            deployment_id, base_model, deadline, path, cmek_resource
        )
        attempt = 0
        while True:
            send_reset = (
                None
                if self._reset_prompt_cache_supported.get(gateway) is False
                else reset_prompt_cache
            )
            body = _wire.hotload_body(identity, metadata, reset_prompt_cache=send_reset)
            try:
                response = await self._http.request(
                    "POST",
                    url,
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
                        "Gateway %s rejects reset_prompt_cache; sending without it", gateway
                    )
                    self._reset_prompt_cache_supported[gateway] = False
                    continue
                raise
            except (APIConnectionError, APIStatusError, ResponseValidationError) as lost:
                # The POST may or may not have landed: check the status before re-sending.
                if not outcome_unknown(lost) or deadline.expired:
                    raise
                status = await _read_back(
                    partial(self._hotload_status, deployment_id, base_model, deadline), lost
                )
                landed = status.mentions(identity)
                if landed:
                    logger.info(
                        "Hot-load %s on %s landed before its answer was lost",
                        identity,
                        deployment_id,
                    )
                    return {}
                await self._back_off(attempt, deadline, lost)
                attempt += 1
                continue
            if send_reset is not None:
                self._reset_prompt_cache_supported.setdefault(gateway, True)
            return response.json if isinstance(response.json, Mapping) else {}

    async def hotload_status(self, deployment_id: str, base_model: str) -> HotloadStatus:
        """Every replica's hot-load state."""
        check_hotload_args(deployment_id, base_model, None, None, None, None)
        return await self._hotload_status(
            deployment_id, base_model, Deadline(self._http.timeouts.operation_s)
        )

    async def _hotload_status(
        self, deployment_id: str, base_model: str, deadline: Deadline, *, retry: bool = True
    ) -> HotloadStatus:
        headers = await self._hotload_headers(deployment_id, base_model, deadline)
        response = await self._http.request(
            "GET",
            build_url(self._hotload_url, HOTLOAD_PATH),
            deadline=deadline,
            attempt_timeout_s=self._http.timeouts.hotload_status_s,
            gateway=True,
            extra_headers=headers,
            retry=retry,
        )
        return _wire.hotload_status_from_wire(response.json, deployment_id=deployment_id)

    async def wait_for_hotload(
        self,
        deployment_id: str,
        base_model: str,
        expected_identity: str,
        timeout_seconds: float = 400,
        poll_interval_s: float = 5,
    ) -> HotloadStatus:
        """Wait until EVERY replica is ready with `expected_identity`.

        Raises `HotloadFailedError` as soon as a replica reports stage "error" for this identity
        (an error for another target is stale and ignored), `HotloadTimeoutError` at the deadline.
        """
        check_hotload_args(deployment_id, base_model, expected_identity, None, None, None)
        deadline = Deadline(check_positive("timeout_seconds", timeout_seconds))
        interval = check_positive("poll_interval_s", poll_interval_s)
        return await self._wait_for_hotload(
            deployment_id, base_model, expected_identity, deadline, interval
        )

    async def _wait_for_hotload(
        self,
        deployment_id: str,
        base_model: str,
        identity: str,
        deadline: Deadline,
        poll_interval_s: float,
        *,
        learn: tuple[str, bool] | None = None,
        detect_lost: bool = False,
    ) -> HotloadStatus:
        """Poll until every replica serves `identity`.

        `learn` = (deployment id, is delta) marks a wait that starts right after our own POST:
        its duration is learned, and later loads of the same kind poll around the predicted
        completion instead of on a blind backoff.
        """
        joined = time.monotonic()
        timing = self._hotload_timing
        expected = None if learn is None else timing.predict(*learn)
        not_done_at: list[float] = []
        traceless = 0

        errors = PollErrors(not_found_ok=True)

        async def fetch(deadline: Deadline) -> HotloadStatus:
            try:
                return await self._hotload_status(deployment_id, base_model, deadline, retry=False)
            except NotFoundError:
                # The gateway answers 404 while its hot-load manager starts, and also when the
                # deployment is gone: only the control plane can tell which. A missing or
                # FAILED/DELETING deployment raises here; otherwise the 404 is waited out.
                info = await self._get(deployment_id, deadline, retry=False)
                self._readiness(deployment_id, info, False, f"hot-load {identity!r}")
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
                and traceless >= _LOST_AFTER_POLLS
                and obs.started_at - joined >= _LOST_AFTER_S
            ):
                raise _LoadLostError(status)
            if learn is not None:
                if status.serves(identity):
                    lower = not_done_at[-1] - joined if not_done_at else None
                    timing.record(*learn, lower, obs.started_at - joined)
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
            seen = status.summary() if status is not None else _last_error(last)
            return HotloadTimeoutError(
                f"Hot-load of {identity!r} on deployment {deployment_id!r} did not complete "
                f"within {deadline.timeout_s:g}s; last seen: {seen}.",
                timeout_s=deadline.timeout_s,
                last_status=status,
            )

        return await self._hub.wait(
            ("hotload", str(self._hotload_url), deployment_id, base_model),
            fetch,
            evaluate,
            deadline=deadline,
            schedule=PollSchedule(
                poll_interval_s, expected_at=None if expected is None else joined + expected
            ),
            on_timeout=on_timeout,
            retry_after=error_retry_after,
        )

    async def hotload_and_wait(
        self,
        deployment_id: str,
        base_model: str,
        snapshot_identity: str,
        incremental_snapshot_metadata: MetadataLike | None = None,
        reset_prompt_cache: bool = True,
        timeout_seconds: float = 400,
        path: str | None = None,
        cmek_resource: str | None = None,
        poll_interval_s: float = 5,
    ) -> HotloadStatus:
        """`hotload` then `wait_for_hotload`, under one deadline. Returns the final status."""
        metadata = check_hotload_args(
            deployment_id,
            base_model,
            snapshot_identity,
            incremental_snapshot_metadata,
            path,
            cmek_resource,
        )
        deadline = Deadline(check_positive("timeout_seconds", timeout_seconds))
        interval = check_positive("poll_interval_s", poll_interval_s)
        return await self._hotload_and_wait(
            deployment_id,
            base_model,
            snapshot_identity,
            metadata,
            reset_prompt_cache,
            deadline,
            interval,
            path,
            cmek_resource,
        )

    async def _hotload_and_wait(
        self,
        deployment_id: str,
        base_model: str,
        identity: str,
        metadata: IncrementalSnapshotMetadata | None,
        reset_prompt_cache: bool,
        deadline: Deadline,
        poll_interval_s: float,
        path: str | None = None,
        cmek_resource: str | None = None,
    ) -> HotloadStatus:
        """POST, then wait; if the load vanishes from every replica (a restarted gateway lost
        it), POST it again, a bounded number of times."""
        for resends_left in range(_MAX_LOST_RESENDS, -1, -1):
            await self._hotload(
                deployment_id,
                base_model,
                identity,
                metadata,
                reset_prompt_cache,
                deadline,
                path,
                cmek_resource,
            )
            try:
                return await self._wait_for_hotload(
                    deployment_id,
                    base_model,
                    identity,
                    deadline,
                    poll_interval_s,
                    learn=(deployment_id, metadata is not None),
                    detect_lost=resends_left > 0,
                )
            except _LoadLostError as lost:
                logger.warning(
                    "Hot-load of %s on %s is no longer in progress on any replica (%s); "
                    "sending it again",
                    identity,
                    deployment_id,
                    lost.status.summary(),
                )
        raise AssertionError("unreachable: the last attempt does not detect lost loads")

    # -- inference -------------------------------------------------------------------------

    async def warmup(
        self,
        model: str,
        max_retries: int = 30,
        retry_interval_s: float = 10.0,
        *,
        timeout_s: float | None = None,
    ) -> WarmupResult:
        """Send completions until one answers 200; raise `WarmupError` if none does.

        Each attempt is one request; auth failures raise at once.
        """
        if not isinstance(model, str) or not model.strip():
            raise InvalidConfigError(f"model must be a non-empty string, got {model!r}.")
        if isinstance(max_retries, bool) or not isinstance(max_retries, int) or max_retries < 1:
            raise InvalidConfigError(
                f"max_retries must be a positive integer, got {max_retries!r}."
            )
        interval = check_positive("retry_interval_s", retry_interval_s, allow_zero=True)
        deadline = Deadline(None if timeout_s is None else check_positive("timeout_s", timeout_s))
        started = time.monotonic()
        last_status: int | None = None
        last_reason = "no attempt made"
        attempts = 0
        for attempt in range(1, max_retries + 1):
            attempts = attempt
            retry_after = None
            try:
                response = await self._completion_once(
                    model, deadline, self._http.timeouts.warmup_s, "Warm-up"
                )
            except APIConnectionError as exc:
                last_reason = str(exc)
            else:
                if response.status_code == 200:
                    return WarmupResult(
                        model=model,
                        attempts=attempt,
                        status_code=200,
                        elapsed_s=time.monotonic() - started,
                    )
                last_status = response.status_code
                last_reason = f"HTTP {response.status_code}"
                retry_after = parse_retry_after(response.headers.get("retry-after"))
            if attempt == max_retries:
                break
            delay = max(interval, min(retry_after or 0.0, self._http.retry.max_retry_after_s))
            if delay >= deadline.remaining():
                break
            await anyio.sleep(delay)
        raise WarmupError(
            f"Warm-up of {model} got no 200 in {attempts} attempt(s) over "
            f"{time.monotonic() - started:.1f}s (last: {last_reason}).",
            model=model,
            attempts=attempts,
            last_status=last_status,
        )

    # -- leases ----------------------------------------------------------------------------

    def lease(
        self, on_exit: LeaseAction = "scale_to_zero", *, cleanup_timeout_s: float = 120.0
    ) -> DeploymentLease:
        """A context manager that scales to zero (or deletes) what it created, on any exit."""
        return DeploymentLease(self, on_exit, cleanup_timeout_s=cleanup_timeout_s)

    # -- fleets ----------------------------------------------------------------------------

    async def wait_for_ready_many(
        self,
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
        return await _fleet.wait_for_ready_many(
            self, deployment_ids, timeout_s, poll_interval_s, return_exceptions=return_exceptions
        )

    async def hotload_and_wait_many(
        self,
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
        """Hot-load one snapshot into many deployments at once, under one deadline."""
        return await _fleet.hotload_and_wait_many(
            self,
            deployment_ids,
            base_model,
            snapshot_identity,
            incremental_snapshot_metadata,
            reset_prompt_cache,
            timeout_seconds,
            poll_interval_s,
            return_exceptions=return_exceptions,
        )


async def _read_back(read: Callable[[], Awaitable[T]], lost: Exception) -> T:
    """Read what a request whose outcome is unknown did (a GET, or a hot-load status).

    An unreadable answer is read again a few times; if the read cannot get through at all,
    the original request's own failure is what the caller sees.
    """
    for attempt in range(_READ_BACK_ATTEMPTS):
        try:
            return await read()
        except ResponseValidationError:
            if attempt + 1 == _READ_BACK_ATTEMPTS:
                raise
        except (APIConnectionError, APIStatusError) as unreachable:
            if not is_transient(unreachable, not_found_ok=True):
                raise
            raise lost from unreachable
    raise AssertionError("unreachable")


def _last_error(last: Observation[Any] | None) -> str:
    if last is None:
        return "no answer yet"
    if last.error is not None:
        return f"last error: {last.error}"
    return "no status"


def _env_account_id() -> str | None:
    value = os.environ.get(ACCOUNT_ID_ENV)
    return value.strip() if value and value.strip() else None
