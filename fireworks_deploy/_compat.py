"""The official client's names, as thin adapters over our typed API.

Code written for `fireworks.training.sdk.DeploymentManager` (fireworks-ai 1.2.30) runs on our
managers with only its import changed. Every name of the official class that our typed API does
not already have lives here, once: `AsyncOfficialCompat` for `AsyncDeploymentManager` (coroutines
wherever the official client does I/O) and `SyncOfficialCompat` for the blocking
`DeploymentManager` (one-line portal forwards, plus `account_id` resolving on first access).

The adapters use only the manager's typed methods and its services (`_CoreLike`), never its
class; they keep our semantics (typed errors instead of `False`, one deadline per call) and
return what the official client returns where its callers read the shape: a plain dict from
`hotload_check_status`, an `httpx.Response` from the REST helpers `_get`, `_post`, `_patch`
and `_delete` (paths relative to `base_url`, answers of any status returned, not raised).
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Awaitable, Callable, Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

from ._config import Deadline, check_poll_interval, check_positive
from ._deployments import readiness
from ._errors import (
    APIConnectionError,
    APIError,
    InvalidConfigError,
    OperationError,
    ReadyTimeoutError,
    WaitTimeoutError,
)
from ._failures import (
    NOT_PROCESSED_STATUSES,
    RETRYABLE_STATUSES,
    PollErrors,
    error_retry_after,
    parse_retry_after,
)
from ._hotload import HotloadTarget
from ._models import DeploymentInfo, check_hotload_target, validate_deployment_id
from ._observe import observed
from ._polling import Observation, PollSchedule, describe_last
from ._urls import build_url, check_additional_headers

if TYPE_CHECKING:
    import httpx

    from ._account import Account
    from ._deployments import Deployments
    from ._hotload import Hotloads
    from ._http import HTTPClient
    from ._polling import PollHub

__all__ = ["AsyncOfficialCompat", "SyncOfficialCompat", "pick_poll_interval"]

T = TypeVar("T")

#: Keyword arguments the REST helpers accept (the official ones pass any to httpx).
REST_OPTIONS = frozenset({"params", "json", "headers", "timeout"})
#: The official client's per-attempt timeouts of `_get` and of the other verbs, in seconds.
GET_TIMEOUT_S = 30.0
WRITE_TIMEOUT_S = 60.0
#: The official `reattach_trainer` gives each of its two waits at least this long.
MIN_REATTACH_WAIT_S = 1.0
#: What the control plane does with a hot-load transition type it was not told.
DEFAULT_TRANSITION_TYPE = "ASYNC"
TRANSITION_TYPES = frozenset({"ASYNC", "SYNC"})


def pick_poll_interval(poll_interval: float, poll_interval_s: float | None) -> float:
    """`wait_for_hotload`'s interval: our `poll_interval_s` if given, else the official
    `poll_interval` (its fifth positional parameter), validated."""
    if poll_interval_s is not None:
        return check_poll_interval("poll_interval_s", poll_interval_s)
    return check_poll_interval("poll_interval", poll_interval)


class _CoreLike(Protocol):
    """What the async adapters use of `AsyncDeploymentManager`: its services and typed API."""

    @property
    def _http(self) -> HTTPClient: ...
    @property
    def _base_url(self) -> httpx.URL: ...
    @property
    def _account(self) -> Account: ...
    @property
    def _deployments(self) -> Deployments: ...
    @property
    def _hotloads(self) -> Hotloads: ...
    @property
    def _hub(self) -> PollHub: ...

    async def aclose(self) -> None: ...

    async def update(
        self,
        deployment_id: str,
        body: Mapping[str, Any],
        update_mask: str | Sequence[str] | None = None,
    ) -> DeploymentInfo: ...


class AsyncOfficialCompat:
    """The official `DeploymentManager`'s names on `AsyncDeploymentManager`."""

    #: Seconds the most recent successful `wait_for_ready` took (None before the first).
    boot_time_s: float | None = None
    _last_hotload_error_message: str | None = None

    # -- attributes ------------------------------------------------------------------------

    @property
    def api_key(self: _CoreLike) -> str:
        """The API key in use (never shown in a repr, log or error message)."""
        return self._http.api_key

    @property
    def additional_headers(self: _CoreLike) -> dict[str, str] | None:
        """A copy of the extra headers sent with every request (None if there are none)."""
        return dict(self._http.additional_headers) or None

    @property
    def last_hotload_error_message(self) -> str | None:
        """The message of the error the last hot-load wait raised; None if it succeeded."""
        return self._last_hotload_error_message

    # -- methods ---------------------------------------------------------------------------

    async def close(self: _CoreLike) -> None:
        """The official client's name for `aclose()`."""
        await self.aclose()

    @observed("hotload_check_status")
    async def hotload_check_status(
        self: _CoreLike, deployment_id: str, base_model: str, timeout: float = 30
    ) -> dict[str, Any]:
        """The gateway's hot-load status as the official client returns it: the JSON, a dict.

        The typed form of the same answer is `hotload_status()`.
        """
        check_hotload_target(deployment_id, base_model)
        deadline = Deadline(check_positive("timeout", timeout))
        status = await self._hotloads.status(HotloadTarget(deployment_id, base_model), deadline)
        return dict(status.raw)

    @observed("reattach_trainer")
    async def reattach_trainer(
        self: _CoreLike,
        deployment: DeploymentInfo | str,
        *,
        base_model: str,
        trainer_job_name: str,
        timeout_s: float,
        poll_interval_s: float = 5,
        hot_load_transition_type: str | None = None,
    ) -> DeploymentInfo:
        """Point a deployment at a trainer's bucket and wait until it is READY on it.

        Waits for READY first, then PATCHes `hot_load_trainer_job` (and the transition type, if
        given and different: one update, one roll), then waits for the change to settle. As in
        the official client each wait has its own `timeout_s` (at least 1 s). A deployment that
        is missing raises `DeploymentNotFoundError`, one that is FAILED, DELETING or DELETED
        `DeploymentFailedError` (both `RuntimeError`s), a wait that runs out `ReadyTimeoutError`.
        """
        # A name, or ours, the official or any DeploymentInfo.
        named = (
            deployment if isinstance(deployment, str) else getattr(deployment, "deployment_id", "")
        )
        deployment_id = validate_deployment_id(named)
        check_hotload_target(deployment_id, base_model)
        if not isinstance(trainer_job_name, str) or not trainer_job_name.strip():
            raise InvalidConfigError(
                f"trainer_job_name must be a non-empty string, got {trainer_job_name!r}."
            )
        wait_s = max(check_positive("timeout_s", timeout_s), MIN_REATTACH_WAIT_S)
        interval = check_positive("poll_interval_s", poll_interval_s)
        transition = _transition_type(hot_load_transition_type)

        info = await _wait_for_deployment(
            self,
            deployment_id,
            lambda info: info.is_ready,
            Deadline(wait_s),
            interval,
            f"it to be READY before re-attaching trainer {trainer_job_name!r}",
        )
        body: dict[str, str] = {}
        if info.hot_load_trainer_job != trainer_job_name:
            body["hotLoadTrainerJob"] = trainer_job_name
        if transition is not None and _effective_transition(info) != transition:
            body["hotLoadTransitionType"] = transition
        if not body:
            return info
        await self.update(deployment_id, body)

        def settled(info: DeploymentInfo) -> bool:
            return (
                info.is_ready
                and info.hot_load_trainer_job == trainer_job_name
                and (transition is None or _effective_transition(info) == transition)
            )

        return await _wait_for_deployment(
            self,
            deployment_id,
            settled,
            Deadline(wait_s),
            interval,
            f"trainer {trainer_job_name!r} to be attached and the deployment READY",
        )

    # -- the official client's REST helpers: a path under base_url, any status returned -----

    async def _get(self: _CoreLike, path: str, **kwargs: Any) -> httpx.Response:
        return await _send_raw(self, "GET", path, kwargs, GET_TIMEOUT_S)

    async def _post(self: _CoreLike, path: str, **kwargs: Any) -> httpx.Response:
        return await _send_raw(self, "POST", path, kwargs, WRITE_TIMEOUT_S)

    async def _patch(self: _CoreLike, path: str, **kwargs: Any) -> httpx.Response:
        return await _send_raw(self, "PATCH", path, kwargs, WRITE_TIMEOUT_S)

    async def _delete(self: _CoreLike, path: str, **kwargs: Any) -> httpx.Response:
        return await _send_raw(self, "DELETE", path, kwargs, WRITE_TIMEOUT_S)

    # -- what the manager's own methods record for the official attributes ------------------

    @contextlib.contextmanager
    def _recording_boot_time(self) -> Iterator[None]:
        """Around `wait_for_ready`: sets `boot_time_s` when it succeeds."""
        started = time.monotonic()
        yield
        self.boot_time_s = time.monotonic() - started

    @contextlib.contextmanager
    def _recording_hotload_error(self) -> Iterator[None]:
        """Around a hot-load wait: clears `last_hotload_error_message`, sets it on failure."""
        self._last_hotload_error_message = None
        try:
            yield
        except (OperationError, WaitTimeoutError, APIError) as exc:
            self._last_hotload_error_message = str(exc)
            raise


def _transition_type(value: object) -> str | None:
    """A transition type as the official client normalises it (None: leave it as it is)."""
    if value is None:
        return None
    if not isinstance(value, str):
        raise InvalidConfigError(f"hot_load_transition_type must be a string, got {value!r}.")
    normalized = value.strip().upper()
    if not normalized:
        return None
    if normalized not in TRANSITION_TYPES:
        raise InvalidConfigError(
            f"hot_load_transition_type {value!r} is not valid: use 'ASYNC', 'SYNC' or None."
        )
    return normalized


def _effective_transition(info: DeploymentInfo) -> str:
    """The transition type a deployment uses: unset (or UNSPECIFIED) means ASYNC."""
    value = (info.hot_load_transition_type or "").strip().upper()
    return value if value in TRANSITION_TYPES else DEFAULT_TRANSITION_TYPE


async def _wait_for_deployment(
    core: _CoreLike,
    deployment_id: str,
    done: Callable[[DeploymentInfo], bool],
    deadline: Deadline,
    poll_interval_s: float,
    waiting_for: str,
) -> DeploymentInfo:
    """Poll the deployment until `done(info)`; gone or in a bad state raises at once."""

    async def fetch(deadline: Deadline) -> DeploymentInfo | None:
        return await core._deployments.get(deployment_id, deadline, retry=False)

    errors = PollErrors()

    def evaluate(obs: Observation[DeploymentInfo | None]) -> DeploymentInfo | None:
        if obs.error is not None:
            if errors.absorbs(obs.error):
                return None
            raise obs.error
        errors.ok()
        info = obs.value
        # Raises for a deployment that is gone, FAILED, DELETING or DELETED.
        readiness(deployment_id, info, False, waiting_for)
        return info if info is not None and done(info) else None

    def on_timeout(last: Observation[DeploymentInfo | None] | None) -> Exception:
        info = last.value if last is not None else None
        seen = f"last state {info.state}" if info is not None else describe_last(last)
        return ReadyTimeoutError(
            f"Deployment {deployment_id!r} did not settle within {deadline.timeout_s:g}s while "
            f"waiting for {waiting_for} ({seen}).",
            timeout_s=deadline.timeout_s,
            last_status=info,
        )

    return await core._hub.wait(
        ("compat-deployment", deployment_id),
        fetch,
        evaluate,
        deadline=deadline,
        schedule=PollSchedule(poll_interval_s, backoff=False),
        on_timeout=on_timeout,
        retry_after=error_retry_after,
    )


async def _send_raw(
    core: _CoreLike, method: str, path: str, options: Mapping[str, Any], default_timeout_s: float
) -> httpx.Response:
    """`method` `{base_url}{path}` with our headers; the final answer, whatever its status.

    Retried as our own requests are (idempotent verbs on 408/429/5xx and transport errors, a
    POST only when the server cannot have acted), within the operation deadline.
    """
    unknown = set(options) - REST_OPTIONS
    if unknown:
        raise InvalidConfigError(
            f"_{method.lower()}() does not take {sorted(unknown)}; it takes {sorted(REST_OPTIONS)}."
        )
    if not isinstance(path, str) or not path.startswith("/"):
        raise InvalidConfigError(f"path must be a string starting with '/', got {path!r}.")
    route, _, query = path.partition("?")
    url = build_url(core._base_url, route)
    if query:
        url = url.copy_with(query=query.encode())
    if options.get("params"):
        url = url.copy_merge_params(options["params"])
    headers = check_additional_headers(options.get("headers"))
    timeout = options.get("timeout", default_timeout_s)
    attempt_s = core._http.timeouts.operation_s if timeout is None else timeout
    attempt_s = check_positive("timeout", attempt_s)
    deadline = Deadline(max(attempt_s, core._http.timeouts.operation_s))
    idempotent = method != "POST"
    attempt = 0
    while True:
        try:
            response = await core._http.send_once(
                method,
                url,
                deadline=deadline,
                attempt_timeout_s=attempt_s,
                json_body=options.get("json"),
                extra_headers=headers,
            )
        except APIConnectionError as exc:
            if exc.request_sent and not idempotent:
                raise
            delay = core._http.retry.delay(attempt)
            if delay >= deadline.remaining():
                raise
        else:
            status = response.status_code
            if status not in RETRYABLE_STATUSES or not (
                idempotent or status in NOT_PROCESSED_STATUSES
            ):
                return response
            retry_after = parse_retry_after(response.headers.get("retry-after"))
            delay = core._http.retry.delay(attempt, retry_after)
            if delay >= deadline.remaining():
                return response
        attempt += 1
        await core._http.sleep(delay)


# -- the blocking facade -------------------------------------------------------------------------


class _AsyncOfficial(Protocol):
    """What the blocking forwards call on the async manager."""

    @property
    def account_id(self) -> str | None: ...
    @property
    def api_key(self) -> str: ...
    @property
    def additional_headers(self) -> dict[str, str] | None: ...
    @property
    def boot_time_s(self) -> float | None: ...
    @property
    def last_hotload_error_message(self) -> str | None: ...

    async def resolve_account_id(self) -> str: ...
    async def hotload_check_status(
        self, deployment_id: str, base_model: str, timeout: float = 30
    ) -> dict[str, Any]: ...
    async def reattach_trainer(
        self,
        deployment: DeploymentInfo | str,
        *,
        base_model: str,
        trainer_job_name: str,
        timeout_s: float,
        poll_interval_s: float = 5,
        hot_load_transition_type: str | None = None,
    ) -> DeploymentInfo: ...
    async def _get(self, path: str, **kwargs: Any) -> httpx.Response: ...
    async def _post(self, path: str, **kwargs: Any) -> httpx.Response: ...
    async def _patch(self, path: str, **kwargs: Any) -> httpx.Response: ...
    async def _delete(self, path: str, **kwargs: Any) -> httpx.Response: ...


class _FacadeLike(Protocol):
    """What the blocking forwards use of `DeploymentManager`: its async twin and portal call."""

    @property
    def _async(self) -> _AsyncOfficial: ...

    def _call(self, func: Callable[..., Awaitable[T]], /, *args: Any, **kwargs: Any) -> T: ...


class SyncOfficialCompat:
    """The official `DeploymentManager`'s names on the blocking `DeploymentManager`."""

    @property
    def account_id(self: _FacadeLike) -> str:
        """The account id, resolved on first access (`GET /v1/accounts?pageSize=2`) as in the
        official client; no request once it is known."""
        known = self._async.account_id
        return known if known is not None else self._call(self._async.resolve_account_id)

    @property
    def api_key(self: _FacadeLike) -> str:
        """The API key in use (never shown in a repr, log or error message)."""
        return self._async.api_key

    @property
    def additional_headers(self: _FacadeLike) -> dict[str, str] | None:
        """A copy of the extra headers sent with every request (None if there are none)."""
        return self._async.additional_headers

    @property
    def boot_time_s(self: _FacadeLike) -> float | None:
        """Seconds the most recent successful `wait_for_ready` took (None before the first)."""
        return self._async.boot_time_s

    @property
    def last_hotload_error_message(self: _FacadeLike) -> str | None:
        """The message of the error the last hot-load wait raised; None if it succeeded."""
        return self._async.last_hotload_error_message

    def hotload_check_status(
        self: _FacadeLike, deployment_id: str, base_model: str, timeout: float = 30
    ) -> dict[str, Any]:
        return self._call(self._async.hotload_check_status, deployment_id, base_model, timeout)

    def reattach_trainer(
        self: _FacadeLike,
        deployment: DeploymentInfo | str,
        *,
        base_model: str,
        trainer_job_name: str,
        timeout_s: float,
        poll_interval_s: float = 5,
        hot_load_transition_type: str | None = None,
    ) -> DeploymentInfo:
        return self._call(
            self._async.reattach_trainer,
            deployment,
            base_model=base_model,
            trainer_job_name=trainer_job_name,
            timeout_s=timeout_s,
            poll_interval_s=poll_interval_s,
            hot_load_transition_type=hot_load_transition_type,
        )

    def _get(self: _FacadeLike, path: str, **kwargs: Any) -> httpx.Response:
        return self._call(self._async._get, path, **kwargs)

    def _post(self: _FacadeLike, path: str, **kwargs: Any) -> httpx.Response:
        return self._call(self._async._post, path, **kwargs)

    def _patch(self: _FacadeLike, path: str, **kwargs: Any) -> httpx.Response:
        return self._call(self._async._patch, path, **kwargs)

    def _delete(self: _FacadeLike, path: str, **kwargs: Any) -> httpx.Response:
        return self._call(self._async._delete, path, **kwargs)
