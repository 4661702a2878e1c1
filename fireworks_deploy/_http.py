"""The pooled HTTP layer: send, retry within a deadline, honour Retry-After, map errors.

This is the only module of the core that talks to httpx.
"""

from __future__ import annotations

import email.utils
import json
import logging
import math
import random
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

import anyio
import attrs
import httpx

from ._config import Deadline, RetryPolicy, Secret, Timeouts
from ._errors import (
    APIConnectionError,
    APIStatusError,
    APITimeoutError,
    AuthenticationError,
    BadRequestError,
    ConflictError,
    InternalServerError,
    InvalidConfigError,
    ManagerClosedError,
    NotFoundError,
    PermissionDeniedError,
    RateLimitError,
    ResponseValidationError,
)

__all__ = [
    "HTTPClient",
    "PollErrors",
    "Response",
    "build_url",
    "error_retry_after",
    "is_transient",
    "outcome_unknown",
    "parse_base_url",
    "parse_retry_after",
]

logger = logging.getLogger("fireworks_deploy")

RETRYABLE_STATUSES = frozenset({408, 429, 500, 502, 503, 504})
#: Statuses that say the server did not act on the request, so even a POST may be re-sent.
NOT_PROCESSED_STATUSES = frozenset({429, 503})
_PROTECTED_HEADERS = frozenset({"x-api-key", "authorization"})
_STATUS_ERRORS: dict[int, type[APIStatusError]] = {
    400: BadRequestError,
    401: AuthenticationError,
    403: PermissionDeniedError,
    404: NotFoundError,
    409: ConflictError,
    429: RateLimitError,
}


@attrs.frozen
class Response:
    """A 2xx answer, already decoded."""

    status_code: int
    json: Any
    headers: Mapping[str, str] = attrs.field(repr=False)


def parse_base_url(value: str, name: str) -> httpx.URL:
    """Validate a base URL before any request; trailing slashes are dropped."""
    if not isinstance(value, str) or not value.strip():
        raise InvalidConfigError(f"{name} must be a non-empty URL string, got {value!r}.")
    try:
        url = httpx.URL(value.strip())
    except (httpx.InvalidURL, TypeError) as exc:
        raise InvalidConfigError(f"{name} {value!r} is not a valid URL: {exc}.") from None
    if url.scheme not in ("http", "https") or not url.host:
        raise InvalidConfigError(
            f"{name} {value!r} must be an absolute http:// or https:// URL with a host."
        )
    if url.query or url.fragment:
        raise InvalidConfigError(f"{name} {value!r} must not carry a query or fragment.")
    if url.userinfo:
        raise InvalidConfigError(f"{name} must not embed credentials; pass api_key instead.")
    return url.copy_with(path=url.path.rstrip("/") or "")


def build_url(base: httpx.URL, path: str, params: Mapping[str, str] | None = None) -> httpx.URL:
    """`base` + `path` (which starts with '/'), never doubling the slash, params URL-encoded."""
    url = base.copy_with(path=base.path.rstrip("/") + path)
    return url.copy_merge_params(params) if params else url


def check_additional_headers(headers: Mapping[str, str] | None) -> dict[str, str]:
    """Reject headers that are malformed or would silently replace authentication."""
    if headers is None:
        return {}
    if not isinstance(headers, Mapping):
        raise InvalidConfigError("additional_headers must be a mapping of str to str.")
    checked: dict[str, str] = {}
    for name, value in headers.items():
        if not isinstance(name, str) or not isinstance(value, str):
            raise InvalidConfigError(
                f"additional_headers must map str to str; got {type(name).__name__} to "
                f"{type(value).__name__}."
            )
        if (
            not name
            or any(c in name for c in ' :\r\n\t\x00"(),/;<=>?@[\\]{}')
            or not (name.isascii() and name.isprintable())
        ):
            raise InvalidConfigError(f"additional_headers has an invalid header name {name!r}.")
        if not (value.isascii() and value.isprintable()):
            raise InvalidConfigError(
                f"additional_headers value of {name!r} must be printable ASCII (no line breaks "
                "or control characters)."
            )
        if name.lower() in _PROTECTED_HEADERS:
            raise InvalidConfigError(
                f"additional_headers may not set {name!r}: authentication comes from api_key, "
                "so a header cannot silently replace it."
            )
        checked[name] = value
    return checked


def server_message(body: Any, text: str) -> str:
    """The message the server put in an error body (Fireworks, google.rpc or pydantic shape)."""
    if isinstance(body, Mapping):
        err = body.get("error", body)
        if isinstance(err, Mapping):
            msg = err.get("message")
            if isinstance(msg, str) and msg:
                return msg
        elif isinstance(err, str) and err:
            return err
    return text[:200]


def parse_retry_after(value: str | None, now: float | None = None) -> float | None:
    """Seconds to wait from a Retry-After header (delta-seconds or HTTP-date), or None."""
    if not value:
        return None
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError, IndexError):
            return None
        if when is None:
            return None
        seconds = when.timestamp() - (time.time() if now is None else now)
    if math.isnan(seconds) or math.isinf(seconds):
        return None
    return max(0.0, seconds)


def status_error(response: httpx.Response, body: Any, *, method: str, url: str) -> APIStatusError:
    """Map one error response to its typed exception, carrying what the server said."""
    text = response.text if body is None else ""
    msg = server_message(body, text)
    status = response.status_code
    cls = _STATUS_ERRORS.get(status, InternalServerError if status >= 500 else APIStatusError)
    return cls(
        f"{method} {url} answered HTTP {status}: {msg or response.reason_phrase}",
        status_code=status,
        method=method,
        url=url,
        body=body if body is not None else text,
        headers=response.headers,
        server_message=msg,
    )


def _decode(response: httpx.Response) -> Any:
    if not response.content.strip():
        return None
    try:
        return json.loads(response.content)
    except (ValueError, UnicodeDecodeError):
        return None


class HTTPClient:
    """Pooled `httpx.AsyncClient`s (one per origin) behind one concurrency gate.

    Created lazily on the loop that first uses them; closed by `aclose()`.
    """

    def __init__(
        self,
        *,
        api_key: Secret,
        additional_headers: Mapping[str, str],
        verify_ssl: bool | None,
        transport: httpx.AsyncBaseTransport | None,
        max_concurrency: int,
        timeouts: Timeouts,
        retry: RetryPolicy,
    ) -> None:
        self._api_key = api_key
        self._headers = {"Content-Type": "application/json", **additional_headers}
        self._verify = True if verify_ssl is None else verify_ssl
        self._transport = transport
        self._max_concurrency = max_concurrency
        self.timeouts = timeouts
        self.retry = retry
        self._clients: dict[tuple[str, str, int | None], httpx.AsyncClient] = {}
        self._gate: anyio.Semaphore | None = None
        self._closed = False
        self._rng = random.Random()  # noqa: S311 - backoff jitter only
        #: The backoff sleep; tests replace it to record delays instead of waiting.
        self.sleep: Callable[[float], Awaitable[None]] = anyio.sleep

    @property
    def closed(self) -> bool:
        return self._closed

    def _client_for(self, url: httpx.URL) -> httpx.AsyncClient:
        if self._closed:
            raise ManagerClosedError("This manager is closed; create a new one.")
        key = ("*", "", None) if self._transport is not None else (url.scheme, url.host, url.port)
        client = self._clients.get(key)
        if client is None:
            limits = httpx.Limits(
                max_connections=self._max_concurrency,
                max_keepalive_connections=self._max_concurrency,
                keepalive_expiry=30.0,
            )
            client = httpx.AsyncClient(
                transport=self._transport,
                verify=self._verify,
                limits=limits,
                follow_redirects=False,
                trust_env=False,
                timeout=httpx.Timeout(
                    self.timeouts.control_plane_s, connect=self.timeouts.connect_s
                ),
            )
            self._clients[key] = client
        return client

    def _gate_for_loop(self) -> anyio.Semaphore:
        if self._gate is None:
            self._gate = anyio.Semaphore(self._max_concurrency)
        return self._gate

    def auth_headers(self, *, gateway: bool) -> dict[str, str]:
        headers = dict(self._headers)
        headers["X-Api-Key"] = self._api_key.get()
        if gateway:
            headers["Authorization"] = f"Bearer {self._api_key.get()}"
        return headers

    async def send_once(
        self,
        method: str,
        url: httpx.URL,
        *,
        deadline: Deadline,
        attempt_timeout_s: float,
        json_body: Any = None,
        gateway: bool = False,
        extra_headers: Mapping[str, str] | None = None,
    ) -> httpx.Response:
        """One attempt. Transport failures become typed errors; statuses are left to callers."""
        budget = deadline.cap(attempt_timeout_s)
        shown = f"{method} {url}"
        if budget <= 0:
            expired = APITimeoutError(
                f"{shown} was not sent: the operation's deadline had passed.",
                method=method,
                url=str(url),
            )
            expired.request_sent = False
            raise expired
        headers = self.auth_headers(gateway=gateway)
        if extra_headers:
            headers.update(extra_headers)
        client = self._client_for(url)
        content = None if json_body is None else json.dumps(json_body).encode()
        request = client.build_request(
            method,
            url,
            content=content,
            headers=headers,
            timeout=httpx.Timeout(budget, connect=min(budget, self.timeouts.connect_s)),
        )
        logger.debug("sending %s", shown)
        try:
            # Waiting for a slot in the concurrency gate counts against the attempt's budget.
            with anyio.fail_after(budget):
                async with self._gate_for_loop():
                    response = await client.send(request)
                    await response.aread()
        except (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout) as exc:
            raise _connection_error(
                APIConnectionError, shown, method, url, exc, sent=False
            ) from exc
        except (httpx.TimeoutException, TimeoutError) as exc:
            raise _connection_error(APITimeoutError, shown, method, url, exc, sent=True) from exc
        except httpx.TransportError as exc:
            raise _connection_error(APIConnectionError, shown, method, url, exc, sent=True) from exc
        logger.debug("%s -> %s", shown, response.status_code)
        return response

    async def request(
        self,
        method: str,
        url: httpx.URL,
        *,
        deadline: Deadline,
        attempt_timeout_s: float | None = None,
        json_body: Any = None,
        gateway: bool = False,
        extra_headers: Mapping[str, str] | None = None,
        idempotent: bool | None = None,
        retry: bool = True,
    ) -> Response:
        """Send with retries until success, a non-retryable error, or the deadline.

        Idempotent requests retry on transport errors and 408/429/5xx. Others retry only when
        the server cannot have acted: a connection that never opened, or 429/503.
        """
        if idempotent is None:
            idempotent = method in ("GET", "HEAD", "PUT", "DELETE", "OPTIONS")
        attempt_timeout = attempt_timeout_s or self.timeouts.control_plane_s
        attempt = 0
        last_error: Exception | None = None
        while True:
            if last_error is not None and deadline.expired:
                # The backoff sleep overran the deadline: report what the server last said.
                raise last_error
            try:
                response = await self.send_once(
                    method,
                    url,
                    deadline=deadline,
                    attempt_timeout_s=attempt_timeout,
                    json_body=json_body,
                    gateway=gateway,
                    extra_headers=extra_headers,
                )
            except APIConnectionError as exc:
                if last_error is not None and deadline.expired:
                    # The deadline, not the server, cut this last attempt short: report what
                    # the server last said (this attempt's failure is chained).
                    raise last_error from exc
                if not retry or (exc.request_sent and not idempotent):
                    raise
                delay = self.retry.delay(attempt, None, self._rng)
                if delay >= deadline.remaining():
                    raise
                last_error = exc
                logger.info("%s failed (%s); retrying in %.2fs", f"{method} {url}", exc, delay)
            else:
                body = _decode(response)
                if response.is_success:
                    if body is None and response.content.strip():
                        text = _scrub(response.text, self._api_key.get())
                        raise ResponseValidationError(
                            f"{method} {url} answered {response.status_code} with a body that "
                            f"is not JSON: {text[:200]!r}",
                            method=method,
                            url=str(url),
                            body=text[:2000],
                        )
                    return Response(response.status_code, body, response.headers)
                error = self._redact(status_error(response, body, method=method, url=str(url)))
                retryable = response.status_code in RETRYABLE_STATUSES and (
                    idempotent or response.status_code in NOT_PROCESSED_STATUSES
                )
                if not retry or not retryable:
                    raise error
                retry_after = parse_retry_after(response.headers.get("retry-after"))
                delay = self.retry.delay(attempt, retry_after, self._rng)
                if delay >= deadline.remaining():
                    raise error
                last_error = error
                logger.info(
                    "%s answered %s; retrying in %.2fs",
                    f"{method} {url}",
                    response.status_code,
                    delay,
                )
            attempt += 1
            await self.sleep(delay)

    def _redact(self, error: APIStatusError) -> APIStatusError:
        """Remove the API key from what the server echoed back (some gateways quote it)."""
        key = self._api_key.get()
        if key in error.message or key in error.server_message:
            error.message = error.message.replace(key, "***")
            error.server_message = error.server_message.replace(key, "***")
            error.args = (error.message,)
        error.body = _scrub(error.body, key)  # a JSON body may quote it in any field
        return error

    async def aclose(self) -> None:
        """Close every pooled client. Errors are raised, not swallowed."""
        self._closed = True
        clients, self._clients = list(self._clients.values()), {}
        with anyio.CancelScope(shield=True):
            for client in clients:
                await client.aclose()


#: Statuses a poll loop waits out instead of failing: the server is busy or restarting.
TRANSIENT_POLL_STATUSES = frozenset({408, 425, 429, 500, 502, 503, 504})


#: Statuses after which a non-idempotent request may or may not have taken effect.
AMBIGUOUS_STATUSES = frozenset({408, 500, 502, 504})


def outcome_unknown(error: Exception) -> bool:
    """Whether a failed non-idempotent request may still have taken effect on the server.

    True for an answer lost in transit, a 408/500/502/504, and a 2xx whose body is unreadable.
    """
    if isinstance(error, APIConnectionError):
        return error.request_sent
    if isinstance(error, ResponseValidationError):
        return True
    return isinstance(error, APIStatusError) and error.status_code in AMBIGUOUS_STATUSES


def is_transient(error: BaseException, *, not_found_ok: bool = False) -> bool:
    """Whether a poll loop should keep polling after `error`."""
    if isinstance(error, APIConnectionError):
        return True
    if isinstance(error, APIStatusError):
        return error.status_code in TRANSIENT_POLL_STATUSES or (
            not_found_ok and error.status_code == 404
        )
    return False


class PollErrors:
    """Which errors a poll loop waits out: transient ones always, unreadable answers a few times.

    One garbled answer (a proxy hiccup, a truncated body) should not end a long wait; a server
    that keeps answering something unreadable should, with that error, not at the deadline.
    """

    def __init__(self, *, not_found_ok: bool = False, unreadable_limit: int = 3) -> None:
        self._not_found_ok = not_found_ok
        self._unreadable_limit = unreadable_limit
        self._unreadable = 0

    def absorbs(self, error: Exception) -> bool:
        """True to keep polling after `error`, False to raise it."""
        if is_transient(error, not_found_ok=self._not_found_ok):
            return True
        if isinstance(error, ResponseValidationError):
            self._unreadable += 1
            return self._unreadable <= self._unreadable_limit
        return False

    def ok(self) -> None:
        """A readable answer arrived: the run of unreadable ones is over."""
        self._unreadable = 0


def error_retry_after(error: Exception) -> float | None:
    if isinstance(error, APIStatusError):
        return parse_retry_after(error.headers.get("retry-after"))
    return None


def _scrub(value: Any, key: str) -> Any:
    """`value` (a str or decoded JSON) with every occurrence of `key` replaced by '***'."""
    if isinstance(value, str):
        return value.replace(key, "***")
    if isinstance(value, list):
        return [_scrub(item, key) for item in value]
    if isinstance(value, dict):
        return {_scrub(k, key): _scrub(v, key) for k, v in value.items()}
    return value


def _connection_error(
    cls: type[APIConnectionError],
    shown: str,
    method: str,
    url: httpx.URL,
    exc: BaseException,
    *,
    sent: bool,
) -> APIConnectionError:
    reason = type(exc).__name__ if not str(exc) else f"{type(exc).__name__}: {exc}"
    error = cls(f"{shown} got no answer ({reason}).", method=method, url=str(url))
    error.request_sent = sent
    return error
