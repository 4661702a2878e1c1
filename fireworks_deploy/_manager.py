"""AsyncDeploymentManager: validates each public call, builds its deadline, and delegates.

The work is done by one service per concept, composed here: `Account` (which account),
`Deployments` (CRUD, readiness, deletion), `Hotloads` (the hot-load protocol), `Inference`
(completions probe, warm-up), the fleet helpers and leases on top of them.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from types import TracebackType
from typing import Any

import httpx

from . import _wire
from ._account import Account
from ._compat import AsyncOfficialCompat, pick_poll_interval
from ._config import (
    DEFAULT_BASE_URL,
    DEFAULT_MAX_RESPONSE_BYTES,
    Deadline,
    RetryPolicy,
    Timeouts,
    check_poll_interval,
    check_positive,
    resolve_account_id,
    resolve_api_key,
    resolve_endpoints,
)
from ._deployments import Deployments, check_config
from ._errors import InvalidConfigError, ManagerClosedError
from ._fleet import FleetOperations
from ._hotload import Hotloads, HotloadTarget, hotload_request
from ._http import HTTPClient
from ._inference import Inference
from ._lease import DeploymentLease, LeaseAction
from ._models import (
    DeploymentConfig,
    DeploymentInfo,
    HotloadStatus,
    MetadataLike,
    WarmupResult,
    check_hotload_args,
    check_hotload_target,
    validate_deployment_id,
)
from ._observe import observed
from ._polling import PollHub
from ._urls import check_additional_headers, parse_base_url

__all__ = ["AsyncDeploymentManager"]


class AsyncDeploymentManager(FleetOperations, AsyncOfficialCompat):
    """Manage Fireworks deployments and hot-load weights into them, concurrently.

    One instance holds pooled HTTP clients; share it across tasks and close it with `aclose()`
    or `async with`. Every method is safe to run concurrently with every other. It also answers
    to every name of the official `fireworks.training.sdk.DeploymentManager` (see `_compat`).
    """

    def __init__(
        self,
        api_key: str | None = None,
        base_url: str = DEFAULT_BASE_URL,
        inference_url: str | None = None,
        hotload_api_url: str | None = None,
        additional_headers: Mapping[str, str] | None = None,
        verify_ssl: bool | None = None,
        *,
        account_id: str | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
        max_concurrency: int = 32,
        timeouts: Timeouts | None = None,
        retry: RetryPolicy | None = None,
        max_response_bytes: int = DEFAULT_MAX_RESPONSE_BYTES,
    ) -> None:
        api_secret = resolve_api_key(api_key)
        # Each URL argument given wins, else its FIREWORKS_* variable (`resolve_endpoints`).
        urls = resolve_endpoints(base_url, inference_url, hotload_api_url)
        self._base_url = parse_base_url(urls.base_url, urls.base_url_from)
        self._inference_url = _optional_url(
            urls.inference_url, urls.inference_url_from, self._base_url
        )
        self._hotload_url = _optional_url(
            urls.hotload_api_url, urls.hotload_api_url_from, self._base_url
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
            api_key=api_secret,
            additional_headers=check_additional_headers(additional_headers),
            verify_ssl=verify_ssl,
            transport=transport,
            max_concurrency=max_concurrency,
            timeouts=timeouts or Timeouts(),
            retry=retry or RetryPolicy(),
            max_response_bytes=max_response_bytes,
        )
        self._account = Account(self._http, self._base_url, resolve_account_id(account_id))
        self._hub = PollHub()
        self._inference = Inference(self._http, self._inference_url)
        self._deployments = Deployments(self._http, self._account, self._hub, self._inference)
        self._hotloads = Hotloads(
            self._http, self._hotload_url, self._account, self._hub, self._deployments
        )

    def __repr__(self) -> str:
        return (
            f"AsyncDeploymentManager(base_url={str(self._base_url)!r}, "
            f"account_id={self._account.id!r})"
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
        """True once the manager is closed; every later call raises `ManagerClosedError`."""
        return self._http.closed

    @property
    def base_url(self) -> str:
        """The control plane's URL (`/v1/...` requests), as given or `https://api.fireworks.ai`."""
        return str(self._base_url)

    @property
    def inference_url(self) -> str:
        """Where completions (the readiness probe, `warmup`) go; `base_url` unless given."""
        return str(self._inference_url)

    @property
    def hotload_api_url(self) -> str:
        """Where hot-load requests and status reads go; `base_url` unless given."""
        return str(self._hotload_url)

    @property
    def account_id(self) -> str | None:
        """The account, once known (given, from the environment, or resolved)."""
        return self._account.id

    @property
    def poll_requests(self) -> int:
        """Status fetches made by every wait so far (for tests and benchmarks)."""
        return self._hub.fetches

    def _deadline(self) -> Deadline:
        return self._deployments.operation_deadline()

    @observed("resolve_account_id")
    async def resolve_account_id(self) -> str:
        """The account id; resolved once with `GET /v1/accounts?pageSize=2` if not given."""
        return await self._account.resolve(self._deadline())

    # -- deployments -----------------------------------------------------------------------

    @observed("get")
    async def get(self, deployment_id: str) -> DeploymentInfo | None:
        """The deployment, or None if it does not exist (404)."""
        validate_deployment_id(deployment_id)
        return await self._deployments.get(deployment_id, self._deadline())

    @observed("list_deployments")
    async def list_deployments(self) -> list[DeploymentInfo]:
        """Every deployment of the account, all pages read."""
        return await self._deployments.list(self._deadline())

    @observed("create_or_get")
    async def create_or_get(
        self, config: DeploymentConfig, force_recreate: bool = False, *, timeout_s: float = 300.0
    ) -> DeploymentInfo:
        """Return the deployment, creating it if absent.

        A deployment in a bad state (FAILED, DELETING, DELETED), or any with `force_recreate`, is
        deleted, confirmed gone, and created anew. A create that conflicts (409) or whose answer
        was lost re-reads the deployment instead of creating twice. `timeout_s` bounds the whole
        call, the wait for an old deployment to go included. It does not wait for readiness:
        follow with `wait_for_ready`.
        """
        config = check_config(config)
        deadline = Deadline(check_positive("timeout_s", timeout_s))
        return await self._deployments.create_or_get(config, force_recreate, deadline)

    @observed("wait_for_ready")
    async def wait_for_ready(
        self, deployment_id: str, timeout_s: float = 600, poll_interval_s: float = 15
    ) -> DeploymentInfo:
        """Wait until the deployment serves: READY, or CREATING with a completions probe of 200.

        Raises `DeploymentFailedError` for FAILED, DELETING or DELETED (and its subclass
        `DeploymentNotFoundError` if it disappears), `ReadyTimeoutError` at the deadline. The
        returned info always has `is_ready` true; its `state` is what the control plane said,
        which can still be CREATING when the probe found it serving (then `serving` is true).
        The first poll is at once, then polls back off from 0.1 s to `poll_interval_s`.
        """
        validate_deployment_id(deployment_id)
        deadline = Deadline(check_positive("timeout_s", timeout_s))
        interval = check_poll_interval("poll_interval_s", poll_interval_s)
        with self._recording_boot_time():
            return await self._deployments.wait_for_ready(deployment_id, deadline, interval)

    @observed("update")
    async def update(
        self,
        deployment_id: str,
        body: Mapping[str, Any],
        update_mask: str | Sequence[str] | None = None,
    ) -> DeploymentInfo:
        """PATCH the named fields only (`updateMask`); keys may be camelCase or snake_case."""
        validate_deployment_id(deployment_id)
        wire_body, mask = _wire.update_body_and_mask(body, update_mask)
        return await self._deployments.update(deployment_id, wire_body, mask, self._deadline())

    @observed("scale_to_zero")
    async def scale_to_zero(self, deployment_id: str) -> DeploymentInfo | None:
        """Release every replica (min = max = 0). Raises on failure; the deployment stays."""
        validate_deployment_id(deployment_id)
        return await self._deployments.scale_to_zero(deployment_id, self._deadline())

    @observed("delete")
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
        await self._deployments.delete(deployment_id, deadline, missing_ok=missing_ok)
        if wait:
            await self._deployments.wait_for_deletion(deployment_id, deadline, 2.0)

    @observed("wait_for_deletion")
    async def wait_for_deletion(
        self, deployment_id: str, timeout_s: float = 60.0, poll_interval_s: float = 2.0
    ) -> None:
        """Wait until the deployment is gone (404) or DELETED."""
        validate_deployment_id(deployment_id)
        deadline = Deadline(check_positive("timeout_s", timeout_s))
        interval = check_poll_interval("poll_interval_s", poll_interval_s)
        await self._deployments.wait_for_deletion(deployment_id, deadline, interval)

    # -- hot-load --------------------------------------------------------------------------

    @observed("hotload")
    async def hotload(
        self,
        deployment_id: str,
        base_model: str,
        snapshot_identity: str,
        incremental_snapshot_metadata: MetadataLike | None = None,
        reset_prompt_cache: bool = True,
        timeout: float = 60,
        path: str | None = None,
        cmek_resource: str | None = None,
    ) -> Mapping[str, Any]:
        """Ask every replica to load `snapshot_identity` (a delta if metadata is given).

        Does not wait for the load: see `wait_for_hotload`, or `hotload_and_wait` for both.
        `incremental_snapshot_metadata` (an `IncrementalSnapshotMetadata` or the official
        client's dict) makes it a delta on `previous_snapshot_identity`, which must be what the
        deployment serves. `path` and `cmek_resource` are sent as the gateway's
        `x-fireworks-hot-load-source-url` and `x-fireworks-hot-load-cmek-resource` headers;
        `timeout` (seconds) bounds the call, retries included.

        Returns the gateway's JSON (an empty mapping if it sent none). A POST whose answer was
        lost is not re-sent blindly: the status is read first, and the load counts as accepted
        if a replica already targets or serves the identity.
        """
        target, snapshot = hotload_request(
            deployment_id,
            base_model,
            snapshot_identity,
            incremental_snapshot_metadata,
            reset_prompt_cache,
            path,
            cmek_resource,
        )
        deadline = Deadline(check_positive("timeout", timeout))
        return await self._hotloads.send(target, snapshot, deadline)

    @observed("hotload_status")
    async def hotload_status(self, deployment_id: str, base_model: str) -> HotloadStatus:
        """Every replica's hot-load state."""
        check_hotload_target(deployment_id, base_model)
        target = HotloadTarget(deployment_id, base_model)
        return await self._hotloads.status(target, self._deadline())

    @observed("wait_for_hotload")
    async def wait_for_hotload(
        self,
        deployment_id: str,
        base_model: str,
        expected_identity: str,
        timeout_seconds: float = 400,
        poll_interval: float = 5,
        *,
        poll_interval_s: float | None = None,
    ) -> HotloadStatus:
        """Wait until EVERY replica is ready with `expected_identity`.

        Raises `HotloadFailedError` as soon as a replica reports stage "error" for this identity
        (an error for another target is stale and ignored), `HotloadTimeoutError` at the deadline.
        `poll_interval` is the official client's name; `poll_interval_s` (ours, as on every other
        wait) wins if given.
        """
        check_hotload_args(deployment_id, base_model, expected_identity, None, None, None)
        deadline = Deadline(check_positive("timeout_seconds", timeout_seconds))
        interval = pick_poll_interval(poll_interval, poll_interval_s)
        target = HotloadTarget(deployment_id, base_model)
        with self._recording_hotload_error():
            return await self._hotloads.wait(target, expected_identity, deadline, interval)

    @observed("hotload_and_wait")
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
        """`hotload` then `wait_for_hotload`, under one deadline. Returns the final status.

        `timeout_seconds` bounds both halves together. Raises `HotloadFailedError` if a replica
        reports an error for this snapshot, `HotloadTimeoutError` (a `TimeoutError`) at the
        deadline; either way `last_hotload_error_message` keeps the message. Success means
        every replica serves `snapshot_identity`.
        """
        target, snapshot = hotload_request(
            deployment_id,
            base_model,
            snapshot_identity,
            incremental_snapshot_metadata,
            reset_prompt_cache,
            path,
            cmek_resource,
        )
        deadline = Deadline(check_positive("timeout_seconds", timeout_seconds))
        interval = check_poll_interval("poll_interval_s", poll_interval_s)
        with self._recording_hotload_error():
            return await self._hotloads.load_and_wait(target, snapshot, deadline, interval)

    # -- inference -------------------------------------------------------------------------

    @observed("warmup")
    async def warmup(
        self,
        model: str,
        max_retries: int = 30,
        retry_interval_s: float = 10.0,
        *,
        timeout_s: float | None = None,
    ) -> WarmupResult:
        """Send completions until one answers 200; raise `WarmupError` if none does.

        Each attempt is one request, at most `max_retries` of them, `retry_interval_s` apart (or
        a server's longer Retry-After); `timeout_s` (default: none) bounds the whole call. Auth
        failures (401, 403) raise at once. `model` is a deployment's `inference_model`
        (`accounts/{account}/deployments/{id}`).
        """
        if not isinstance(model, str) or not model.strip():
            raise InvalidConfigError(f"model must be a non-empty string, got {model!r}.")
        if isinstance(max_retries, bool) or not isinstance(max_retries, int) or max_retries < 1:
            raise InvalidConfigError(
                f"max_retries must be a positive integer, got {max_retries!r}."
            )
        interval = check_positive("retry_interval_s", retry_interval_s, allow_zero=True)
        deadline = Deadline(None if timeout_s is None else check_positive("timeout_s", timeout_s))
        return await self._inference.warmup(model, max_retries, interval, deadline)

    # -- leases and fleets -----------------------------------------------------------------

    def lease(
        self, on_exit: LeaseAction = "scale_to_zero", *, cleanup_timeout_s: float = 120.0
    ) -> DeploymentLease:
        """A context manager that scales to zero (or deletes) what it created, on any exit."""
        if self.closed:
            raise ManagerClosedError("This AsyncDeploymentManager is closed; create a new one.")
        return DeploymentLease(self._deployments, on_exit, cleanup_timeout_s=cleanup_timeout_s)


def _optional_url(value: str | None, name: str, default: httpx.URL) -> httpx.URL:
    return default if value is None else parse_base_url(value, name)
