"""The pooled HTTP layer: send, retry within a deadline, honour Retry-After, map errors.

`HTTPClient` is the only sender of requests; with `_body` (reading answers), `_secrets`
(keeping the key in), `_urls` (request targets), `_loops` (loop binding) and `_failures` (what
to retry) it forms the HTTP layer. What it guarantees whatever a server sends:

* Every body is read through `_body`: bounded in size after decompression, its JSON bounded
  in depth and width. Reading, like sending, ends by the attempt's budget, itself capped by
  the operation's deadline, so an endless trickle cannot outlive it.
* A Retry-After is capped by `RetryPolicy.max_retry_after_s` (`_failures`).
* A host that refuses connections or does not resolve is retried for
  `Timeouts.connect_budget_s` within one operation, then `ServerUnreachableError` (`_failures`);
  an answer that is not JSON where the API answers JSON raises `NotFireworksAPIError` (`_body`).
  Every retry is logged, starting "retrying" (`_failures.log_retry`).
* The API key a server echoes back is redacted from every message, header and body we keep,
  and from httpx/httpcore log records; sending it in clear text beyond loopback warns
  (`_secrets`).
* The client belongs to the event loop it was first used on; use from another loop raises
  `EventLoopMismatchError` instead of failing deep inside the connection pool.
"""

from __future__ import annotations

import importlib.metadata
import json
import logging
import random
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

import anyio
import attrs
import httpx

from ._body import (
    ACCEPT_ENCODING,
    KEPT_TEXT_CHARS,
    load_json,
    not_the_api,
    read_body,
    success_json,
)
from ._config import (
    DEFAULT_MAX_RESPONSE_BYTES,
    Deadline,
    RetryPolicy,
    Secret,
    Timeouts,
    check_max_response_bytes,
    env_headers,
)
from ._errors import (
    APIConnectionError,
    APIStatusError,
    APITimeoutError,
    AuthenticationError,
    BadRequestError,
    ConflictError,
    InternalServerError,
    ManagerClosedError,
    NotFoundError,
    PermissionDeniedError,
    RateLimitError,
    ServerUnreachableError,
    redact_secret,
    redact_text,
)
from ._failures import (
    NOT_PROCESSED_STATUSES,
    RETRYABLE_STATUSES,
    TRANSIENT_POLL_STATUSES,
    log_retry,
    parse_retry_after,
    unreachable_cause,
)
from ._loops import Backend, LoopBinding
from ._observe import count_request
from ._secrets import InsecureTransportCheck, redact_in_logs
from ._transport import default_transport, transport_choice

__all__ = ["HTTPClient", "Response", "server_message", "status_error"]

logger = logging.getLogger(__name__)


def _package_version() -> str:
    try:
        return importlib.metadata.version("fireworks-deploy")
    except importlib.metadata.PackageNotFoundError:
        return "0.0.0"


#: Sent with every request unless the caller's `additional_headers` name another.
USER_AGENT = f"fireworks-deploy/{_package_version()} python-httpx/{httpx.__version__}"
#: How much of a server's message goes into an exception's one-line message.
MESSAGE_CHARS = 500
#: Error statuses that say "busy, try again": a proxy's HTML page with one of them is still
#: retried, not taken for a server that is not the API.
_BUSY_STATUSES = RETRYABLE_STATUSES | TRANSIENT_POLL_STATUSES
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


def status_error(
    response: httpx.Response, body: Any, *, method: str, url: str, secret: str = ""
) -> APIStatusError:
    """Map one error response to its typed exception, carrying what the server said.

    `secret` (the API key) is redacted from the body, the headers and the message before
    anything is cut short, so no prefix of it can survive a truncation.
    """
    if body is None:
        text = redact_text(response.text, secret)[:KEPT_TEXT_CHARS]
    else:
        text = ""
        body = redact_secret(body, secret)
    msg = server_message(body, text)
    status = response.status_code
    cls = _STATUS_ERRORS.get(status, InternalServerError if status >= 500 else APIStatusError)
    return cls(
        f"{method} {url} answered HTTP {status}: {msg[:MESSAGE_CHARS] or response.reason_phrase}",
        status_code=status,
        method=method,
        url=url,
        body=body if body is not None else text,
        headers=redact_secret(dict(response.headers), secret),
        server_message=msg,
    )


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


def _not_sent(shown: str, method: str, url: httpx.URL, why: str) -> APITimeoutError:
    """The error for an attempt that never left: the deadline came first."""
    error = APITimeoutError(f"{shown} was not sent: {why}.", method=method, url=str(url))
    error.request_sent = False
    return error


def _origin(url: httpx.URL) -> str:
    return f"{url.scheme}://{url.netloc.decode('ascii', 'replace')}"


def _not_connected(
    exc: httpx.ConnectError, method: str, url: httpx.URL, deadline: Deadline, budget_s: float
) -> APIConnectionError:
    """The error for a connection that did not open; `ServerUnreachableError` once the host
    has refused (or not resolved) for the whole connect budget of this operation."""
    shown = f"{method} {url}"
    cause = unreachable_cause(exc, url.host)
    if cause is None:
        return _connection_error(APIConnectionError, shown, method, url, exc, sent=False)
    origin = _origin(url)
    if deadline.connect_failed(origin, budget_s) > 0:
        error = APIConnectionError(f"{shown} got no answer ({cause}).", method=method, url=str(url))
        error.request_sent = False
        return error
    if cause == "connection refused":
        advice = f"check that a server is listening at {origin} and that the URL is right"
    elif "resolved" in cause:
        advice = "check the host name in the URL and the network connection"
    else:
        advice = "check the network connection and the URL"
    return ServerUnreachableError(
        f"{shown} got no answer: {cause}, retried for {budget_s:g}s; {advice} (see base_url "
        "and the FIREWORKS_*_URL variables).",
        method=method,
        url=str(url),
        cause=cause,
        budget_s=budget_s,
    )


class _NoCookies(httpx.Cookies):
    """The API sets no cookies: answers are not walked for them (a cookie jar walk per answer
    costs more than the rest of httpx's work on it)."""

    def extract_cookies(self, response: httpx.Response) -> None:
        return None


class _APIClient(httpx.AsyncClient):
    """An `httpx.AsyncClient` for a JSON API: no cookie jar."""

    _NO_COOKIES = _NoCookies()

    @property
    def cookies(self) -> httpx.Cookies:
        return self._NO_COOKIES

    @cookies.setter
    def cookies(self, cookies: object) -> None:
        raise AttributeError("This client keeps no cookies.")


class HTTPClient:
    """Pooled `httpx.AsyncClient`s (one per origin) behind one concurrency gate.

    Created lazily on the loop that first uses them, and bound to it; closed by `aclose()`.
    `max_response_bytes` bounds every response body after decompression (default
    `DEFAULT_MAX_RESPONSE_BYTES`, 2 MiB).
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
        max_response_bytes: int = DEFAULT_MAX_RESPONSE_BYTES,
    ) -> None:
        self._api_key = api_key
        self._additional_headers = dict(additional_headers)
        self._explicit = frozenset(name.lower() for name in additional_headers)
        defaults = {
            "Accept": "application/json",
            "Accept-Encoding": ACCEPT_ENCODING,
            "Content-Type": "application/json",
            "User-Agent": USER_AGENT,
        }
        self._headers = {
            **{k: v for k, v in defaults.items() if k.lower() not in self._explicit},
            **additional_headers,
        }
        self._verify = True if verify_ssl is None else verify_ssl
        self._transport = transport
        # FIREWORKS_DEPLOY_TRANSPORT, validated now: a bad value fails before any request.
        self._transport_choice = transport_choice()
        self._max_concurrency = max_concurrency
        self.timeouts = timeouts
        self.retry = retry
        self.max_response_bytes = check_max_response_bytes(max_response_bytes)
        self._clients: dict[tuple[str, str, int | None], httpx.AsyncClient] = {}
        self._gate: anyio.Semaphore | None = None
        self._backend: Backend | None = None
        self._closed = False
        self._binding = LoopBinding()
        self._insecure = InsecureTransportCheck(transport)
        redact_in_logs(self, api_key.get())
        self._rng = random.Random()  # noqa: S311 - backoff jitter only
        #: The backoff sleep; tests replace it to record delays instead of waiting.
        self.sleep: Callable[[float], Awaitable[None]] = anyio.sleep

    @property
    def closed(self) -> bool:
        return self._closed

    @property
    def api_key(self) -> str:
        """The API key (a property, so it never shows in `vars()` or a repr)."""
        return self._api_key.get()

    @property
    def additional_headers(self) -> Mapping[str, str]:
        """The caller's extra headers, as given (our defaults not included)."""
        return self._additional_headers

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
            transport = self._transport
            if transport is None:
                # aiohttp (the `fast` extra) on asyncio, else httpcore (`_transport`).
                transport = default_transport(
                    self._transport_choice, verify=self._verify, limits=limits
                )
            client = _APIClient(
                transport=transport,
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

    def _gate_for_loop(self) -> tuple[anyio.Semaphore, Backend]:
        if self._gate is None or self._backend is None:
            self._gate = anyio.Semaphore(self._max_concurrency)
            self._backend = Backend.current()
        return self._gate, self._backend

    def auth_headers(self, *, gateway: bool) -> dict[str, str]:
        """Every request's headers: the environment's (read now, so a change applies to the
        next request), the caller's (which win, in any case), then authentication."""
        from_env = env_headers()
        headers = {k: v for k, v in from_env.items() if k.lower() not in self._explicit}
        headers.update(self._headers)
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
        """One attempt, its body read in full (within `max_response_bytes`).

        Transport failures become typed errors, an oversized or undecodable body
        `ResponseBodyError`; statuses are left to callers. Sending and reading together end
        by the attempt's budget (capped by `deadline`). A refused or unresolvable connection
        counts against the operation's connect budget (kept by `deadline`); once that is spent
        it raises `ServerUnreachableError`, and any answer from the origin resets it.
        """
        self._binding.check()
        shown = f"{method} {url}"
        if deadline.cap(attempt_timeout_s) <= 0:
            raise _not_sent(shown, method, url, "the operation's deadline had passed")
        client = self._client_for(url)
        self._insecure.check(url)
        headers = self.auth_headers(gateway=gateway)
        if extra_headers:
            headers.update(extra_headers)
        content = None if json_body is None else json.dumps(json_body).encode()
        gate, backend = self._gate_for_loop()
        # One cancel scope bounds the attempt: first by the operation's deadline only, while
        # the request queues for a slot in the concurrency gate (so a fetch queued behind
        # thousands of others is not spent before it leaves), then by the attempt's budget,
        # from the moment the request can be sent.
        scope = backend.move_on_after(deadline.remaining())
        acquired = False
        try:
            with scope:
                try:
                    gate.acquire_nowait()
                except anyio.WouldBlock:
                    await gate.acquire()
                acquired = True
                budget = deadline.cap(attempt_timeout_s)
                if budget <= 0:
                    raise _not_sent(shown, method, url, "the operation's deadline had passed")
                scope.deadline = anyio.current_time() + budget
                connect = min(budget, self.timeouts.connect_s)
                timeout = {"connect": connect, "read": budget, "write": budget, "pool": budget}
                request = httpx.Request(
                    method, url, content=content, headers=headers, extensions={"timeout": timeout}
                )
                logger.debug("sending %s", shown)
                count_request()  # for the operation this request belongs to (`_observe`)
                response = await client.send(request, stream=True)
                if deadline.connect_retry_in() is not None:  # some origin refused before
                    deadline.connected(_origin(url))
                try:
                    body = await read_body(response, method, url, self.max_response_bytes)
                finally:
                    # A no-op once the body is read whole; otherwise it drops the
                    # connection (httpcore shields that from cancellation itself).
                    await response.aclose()
        except httpx.ConnectError as exc:
            budget_s = self.timeouts.connect_budget_s
            raise _not_connected(exc, method, url, deadline, budget_s) from exc
        except (httpx.ConnectTimeout, httpx.PoolTimeout) as exc:
            raise _connection_error(
                APIConnectionError, shown, method, url, exc, sent=False
            ) from exc
        except (httpx.TimeoutException, TimeoutError) as exc:
            raise _connection_error(APITimeoutError, shown, method, url, exc, sent=True) from exc
        except httpx.TransportError as exc:
            raise _connection_error(APIConnectionError, shown, method, url, exc, sent=True) from exc
        finally:
            if acquired:
                gate.release()
        if scope.cancelled_caught:
            if not acquired:
                raise _not_sent(
                    shown, method, url, "the deadline passed while it waited for a slot"
                )
            timed_out = TimeoutError()
            raise _connection_error(
                APITimeoutError, shown, method, url, timed_out, sent=True
            ) from timed_out
        # What `aread()` would have stored; the body was read (and bounded) by us instead.
        response._content = body
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
        the server cannot have acted: a connection that never opened, or 429/503. A body that
        is too large or unreadable is not retried (`ResponseValidationError`), nor is an answer
        that is not the API (`NotFireworksAPIError`), nor a host that refused or did not resolve
        for the whole connect budget (`ServerUnreachableError`). Each retry is logged, at
        WARNING from the third failure in a row.
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
                if isinstance(exc, ServerUnreachableError):
                    raise
                if last_error is not None and deadline.expired:
                    # The deadline, not the server, cut this last attempt short: report what
                    # the server last said (this attempt's failure is chained).
                    raise last_error from exc
                if not retry or (exc.request_sent and not idempotent):
                    raise
                delay = self.retry.delay(attempt, None, self._rng)
                connect_left = deadline.connect_retry_in()
                if connect_left is not None and not exc.request_sent:
                    # Try again when the connect budget runs out at the latest, not after it.
                    delay = min(delay, connect_left)
                if delay >= deadline.remaining():
                    raise
                last_error = exc
                log_retry(logger, exc, failures=attempt + 1, delay_s=delay)
            else:
                secret = self._api_key.get()
                body, unreadable = load_json(response.content)
                if response.is_success:
                    body = success_json(
                        response, body, unreadable, method=method, url=url, secret=secret
                    )
                    return Response(response.status_code, body, response.headers)
                if response.status_code not in _BUSY_STATUSES:
                    wrong = not_the_api(response, unreadable, method=method, url=url, secret=secret)
                    if wrong is not None:
                        raise wrong
                error = status_error(response, body, method=method, url=str(url), secret=secret)
                error.retry_after_s = self.retry.cap_retry_after(
                    parse_retry_after(response.headers.get("retry-after"))
                )
                retryable = response.status_code in RETRYABLE_STATUSES and (
                    idempotent or response.status_code in NOT_PROCESSED_STATUSES
                )
                if not retry or not retryable:
                    raise error
                delay = self.retry.delay(attempt, error.retry_after_s, self._rng)
                if delay >= deadline.remaining():
                    raise error
                last_error = error
                log_retry(logger, error, failures=attempt + 1, delay_s=delay)
            attempt += 1
            await self.sleep(delay)

    async def aclose(self) -> None:
        """Close every pooled client. Errors are raised, not swallowed.

        From an event loop other than the first one: if that first loop is still open,
        `EventLoopMismatchError` is raised and nothing is closed (close it there); if it has
        ended, the client is marked closed and its connections are abandoned with a warning.
        """
        if self._clients and self._binding.must_abandon():
            # The first loop is gone: nothing can close its connections any more.
            logger.warning(
                "Closing a manager whose event loop has ended: its %d pooled client(s) "
                "are abandoned, not closed.",
                len(self._clients),
            )
            self._closed = True
            self._clients = {}
            return
        self._closed = True
        clients, self._clients = list(self._clients.values()), {}
        with anyio.CancelScope(shield=True):
            for client in clients:
                await client.aclose()
