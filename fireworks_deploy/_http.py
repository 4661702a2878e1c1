"""The pooled HTTP layer: send, retry within a deadline, honour Retry-After, map errors.

This is the only module of the core that talks to httpx. What it guarantees whatever a server
sends:

* Bodies are streamed and never held beyond `max_response_bytes` after decompression (gzip and
  deflate are inflated in bounded steps, so a small compressed bomb cannot expand in memory);
  a larger body raises `ResponseTooLargeError`. Reading, like sending, ends by the attempt's
  budget, itself capped by the operation's deadline, so an endless trickle cannot outlive it.
* JSON nested deeper than `MAX_JSON_DEPTH`, or with more than `MAX_JSON_CONTAINERS` objects
  and arrays, is refused with `ResponseValidationError` (as is a body that is not JSON), never
  a raw `RecursionError`.
* A Retry-After is capped by `RetryPolicy.max_retry_after_s` everywhere it is honoured.
* The API key a server echoes back is redacted from every message, header and body we keep,
  and from httpx/httpcore log records (their DEBUG traces quote response headers).
* The key is never sent over plain http:// to a host that is not loopback without an
  `InsecureTransportWarning` (once per client) and a WARNING log. No warning is given when a
  custom transport other than `httpx.AsyncHTTPTransport` is in use (an ASGI app or a mock
  answers in process, so nothing travels).
* The client belongs to the event loop it was first used on; use from another loop raises
  `EventLoopMismatchError` instead of failing deep inside the connection pool.
"""

from __future__ import annotations

import asyncio
import email.utils
import ipaddress
import json
import logging
import math
import random
import time
import warnings
import weakref
import zlib
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

import anyio
import attrs
import httpx

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
    EventLoopMismatchError,
    InsecureTransportWarning,
    InternalServerError,
    InvalidConfigError,
    ManagerClosedError,
    NotFoundError,
    PermissionDeniedError,
    RateLimitError,
    ResponseBodyError,
    ResponseTooLargeError,
    ResponseValidationError,
    redact_secret,
    redact_text,
)

__all__ = [
    "MAX_JSON_CONTAINERS",
    "MAX_JSON_DEPTH",
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
#: The content codings we ask for, and the only ones we can inflate in bounded steps.
ACCEPT_ENCODING = "gzip, deflate"
#: JSON nested deeper than this is refused: no real answer comes close, and walking a deeper
#: structure (cattrs, redaction, repr) risks RecursionError.
MAX_JSON_DEPTH = 100
#: JSON with more objects and arrays than this is refused before parsing (a 200-deployment
#: list page has a few thousand): parsed, each costs ~30x its text, the most of any JSON.
MAX_JSON_CONTAINERS = 100_000
#: How much of a body that is not JSON an error keeps (after redaction).
KEPT_TEXT_CHARS = 16_384
#: How much of a server's message goes into an exception's one-line message.
MESSAGE_CHARS = 500
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
            if when is None:
                return None
            seconds = when.timestamp() - (time.time() if now is None else now)
        except (TypeError, ValueError, IndexError, OverflowError):
            return None
    if math.isnan(seconds) or math.isinf(seconds):
        return None
    return max(0.0, seconds)


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


def json_too_deep(value: Any, limit: int = MAX_JSON_DEPTH) -> bool:
    """Whether decoded JSON nests containers more than `limit` deep.

    Walked without recursion, holding one iterator per level (memory grows with the depth,
    not the width).
    """
    if not isinstance(value, (dict, list)):
        return False
    stack = [iter(value.values() if isinstance(value, dict) else value)]
    while stack:
        for child in stack[-1]:
            if isinstance(child, (dict, list)):
                if len(stack) >= limit:
                    return True
                stack.append(iter(child.values() if isinstance(child, dict) else child))
                break
        else:
            stack.pop()
    return False


def _load_json(content: bytes) -> tuple[Any, str | None]:
    """(decoded JSON, None), or (None, why it is unreadable). Empty content is (None, None)."""
    if not content.strip():
        return None, None
    # Each object or array costs ~60-90 bytes once parsed (30x its two or three bytes of
    # text): bound their number before parsing, counting brackets in strings too.
    if content.count(b"{") + content.count(b"[") > MAX_JSON_CONTAINERS:
        return None, f"has more than {MAX_JSON_CONTAINERS} objects and arrays"
    try:
        value = json.loads(content)
    except RecursionError:
        return None, "is nested too deeply"
    except (ValueError, UnicodeDecodeError):
        return None, "is not JSON"
    if json_too_deep(value):
        return None, f"is nested more than {MAX_JSON_DEPTH} levels deep"
    return value, None


class _Inflater:
    """A gzip or deflate decoder whose every step is bounded in output (zlib `max_length`)."""

    def __init__(self, coding: str) -> None:
        self._deflate = coding == "deflate"
        wbits = zlib.MAX_WBITS if self._deflate else zlib.MAX_WBITS | 16
        self._zlib = zlib.decompressobj(wbits)
        self._first = True

    def inflate(self, data: bytes, max_length: int) -> bytes:
        """At most `max_length` bytes of output; a longer output means the limit is passed."""
        if self._first and data:
            self._first = False
            if self._deflate:
                # "deflate" is zlib-wrapped by the RFC but raw in practice: try both, as httpx.
                try:
                    return self._zlib.decompress(data, max_length)
                except zlib.error:
                    self._zlib = zlib.decompressobj(-zlib.MAX_WBITS)
        return self._zlib.decompress(data, max_length)

    def flush(self) -> bytes:
        return self._zlib.flush()


def _inflater(content_encoding: str) -> _Inflater | None:
    """The bounded decoder for a Content-Encoding; None for identity; ValueError if unknown."""
    codings = [c.strip().lower() for c in content_encoding.split(",") if c.strip()]
    codings = [c for c in codings if c != "identity"]
    if not codings:
        return None
    if len(codings) == 1 and codings[0] in ("gzip", "x-gzip", "deflate"):
        return _Inflater("deflate" if codings[0] == "deflate" else "gzip")
    raise ValueError(content_encoding)


def is_loopback(host: str) -> bool:
    """localhost (and *.localhost), 127.0.0.0/8 and ::1 (IPv4-mapped included)."""
    host = host.strip("[]").rstrip(".").lower()
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return False
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped.is_loopback
    return address.is_loopback


class _RedactingFilter(logging.Filter):
    """Redacts live clients' keys from httpcore/httpx log records (their DEBUG traces quote
    response headers, which a misbehaving server may have filled with the key)."""

    def __init__(self) -> None:
        super().__init__()
        self.secrets: dict[int, str] = {}

    def filter(self, record: logging.LogRecord) -> bool:
        if not self.secrets:
            return True
        try:
            message = record.getMessage()
        except Exception:  # a malformed record is not ours to break
            return True
        redacted = message
        for secret in set(self.secrets.values()):
            redacted = redact_text(redacted, secret)
        if redacted != message:
            record.msg, record.args = redacted, None
        return True


_LOG_FILTER = _RedactingFilter()
_THIRD_PARTY_LOGGERS = (
    "httpx",
    "httpcore.connection",
    "httpcore.connection_pool",
    "httpcore.http11",
    "httpcore.http2",
    "httpcore.proxy",
)


def _redact_in_logs(owner: object, secret: str) -> None:
    """Keep `secret` out of httpx/httpcore log records for as long as `owner` lives."""
    for name in _THIRD_PARTY_LOGGERS:
        third_party = logging.getLogger(name)
        if _LOG_FILTER not in third_party.filters:
            third_party.addFilter(_LOG_FILTER)
    _LOG_FILTER.secrets[id(owner)] = secret
    weakref.finalize(owner, _LOG_FILTER.secrets.pop, id(owner), None)


def _current_loop() -> asyncio.AbstractEventLoop | None:
    """The running asyncio loop; None on another anyio backend (trio), which is not checked."""
    try:
        return asyncio.get_running_loop()
    except RuntimeError:
        return None


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
        defaults = {"Content-Type": "application/json", "Accept-Encoding": ACCEPT_ENCODING}
        self._headers = {
            **{k: v for k, v in defaults.items() if k.lower() not in self._explicit},
            **additional_headers,
        }
        self._verify = True if verify_ssl is None else verify_ssl
        self._transport = transport
        self._max_concurrency = max_concurrency
        self.timeouts = timeouts
        self.retry = retry
        self.max_response_bytes = check_max_response_bytes(max_response_bytes)
        self._clients: dict[tuple[str, str, int | None], httpx.AsyncClient] = {}
        self._gate: anyio.Semaphore | None = None
        self._closed = False
        self._loop: weakref.ref[asyncio.AbstractEventLoop] | None = None
        #: Whether requests really travel over the network (no warning for in-process ones).
        self._networked = transport is None or isinstance(transport, httpx.AsyncHTTPTransport)
        self._warned_insecure = False
        _redact_in_logs(self, api_key.get())
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

    def _check_loop(self) -> None:
        """Record the first event loop; refuse any other with a clear, typed error."""
        loop = _current_loop()
        if loop is None:
            return
        if self._loop is None:
            self._loop = weakref.ref(loop)
            return
        if self._loop() is not loop:
            raise EventLoopMismatchError(
                "This manager is bound to the event loop it was first used on, and its pooled "
                "connections cannot be used from another one (e.g. a second asyncio.run()). "
                "Create one manager per event loop (async with AsyncDeploymentManager(...) "
                "inside the loop), or use the sync DeploymentManager, which keeps one loop."
            )

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

    def _warn_if_insecure(self, url: httpx.URL) -> None:
        """Once per client: the key is about to cross a network in clear text."""
        if (
            self._warned_insecure
            or url.scheme != "http"
            or not self._networked
            or is_loopback(url.host)
        ):
            return
        self._warned_insecure = True
        message = (
            f"Sending the API key over plain http:// to {url.host}, which is not a loopback "
            "address: anyone on the path can read it. Use https://, or a loopback address for "
            "a local control plane."
        )
        logger.warning(message)
        warnings.warn(message, InsecureTransportWarning, stacklevel=4)

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
        by the attempt's budget (capped by `deadline`).
        """
        self._check_loop()
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
        client = self._client_for(url)
        self._warn_if_insecure(url)
        headers = self.auth_headers(gateway=gateway)
        if extra_headers:
            headers.update(extra_headers)
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
                    response = await client.send(request, stream=True)
                    try:
                        body = await self._read_body(response, method, url)
                    finally:
                        # A no-op once the body is read whole; otherwise it drops the
                        # connection (httpcore shields that from cancellation itself).
                        await response.aclose()
        except (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout) as exc:
            raise _connection_error(
                APIConnectionError, shown, method, url, exc, sent=False
            ) from exc
        except (httpx.TimeoutException, TimeoutError) as exc:
            raise _connection_error(APITimeoutError, shown, method, url, exc, sent=True) from exc
        except httpx.TransportError as exc:
            raise _connection_error(APIConnectionError, shown, method, url, exc, sent=True) from exc
        # What `aread()` would have stored; the body was read (and bounded) by us instead.
        response._content = body
        logger.debug("%s -> %s", shown, response.status_code)
        return response

    async def _read_body(self, response: httpx.Response, method: str, url: httpx.URL) -> bytes:
        """The decoded body, never more than `max_response_bytes` of it in memory."""
        limit = self.max_response_bytes

        def answered() -> str:
            content_type = response.headers.get("content-type") or "no content type"
            return f"{method} {url} answered HTTP {response.status_code} ({content_type})"

        def body_error(message: str) -> ResponseBodyError:
            return ResponseBodyError(
                f"{answered()} {message}",
                method=method,
                url=str(url),
                status_code=response.status_code,
                content_type=response.headers.get("content-type"),
            )

        def too_large(seen: str) -> ResponseTooLargeError:
            return ResponseTooLargeError(
                f"{answered()} with a body of {seen}, over the {limit}-byte limit; reading was "
                "stopped. Raise max_response_bytes if such answers are expected.",
                method=method,
                url=str(url),
                status_code=response.status_code,
                content_type=response.headers.get("content-type"),
                limit_bytes=limit,
            )

        if response.is_stream_consumed:
            # An in-process transport (a mock) may hand back a response already read and
            # decoded: nothing more will be allocated, but the limit still applies.
            ready = response.content
            if len(ready) > limit:
                raise too_large(f"{len(ready)} bytes")
            return ready
        coding = response.headers.get("content-encoding")
        try:
            inflater = None if coding is None else _inflater(coding)
        except ValueError:
            raise body_error(
                f"with Content-Encoding {coding!r}; only {ACCEPT_ENCODING} (which we ask for) "
                "can be read."
            ) from None
        if inflater is None:
            declared = response.headers.get("content-length")
            if declared is not None and declared.isdigit() and int(declared) > limit:
                raise too_large(f"{int(declared)} bytes (Content-Length)")
        body = bytearray()
        try:
            async for chunk in response.aiter_raw():
                data = chunk if inflater is None else inflater.inflate(chunk, limit - len(body) + 1)
                if len(body) + len(data) > limit:
                    raise too_large("more than that")
                body += data
            if inflater is not None:
                data = inflater.flush()
                if len(body) + len(data) > limit:
                    raise too_large("more than that")
                body += data
        except zlib.error as exc:
            raise body_error(
                f"with a {coding} body that could not be decompressed ({exc})."
            ) from None
        return bytes(body)

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
        is too large or unreadable is not retried (`ResponseValidationError`).
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
                secret = self._api_key.get()
                body, unreadable = _load_json(response.content)
                if response.is_success:
                    if unreadable is not None:
                        text = redact_text(response.text, secret)
                        content_type = response.headers.get("content-type")
                        raise ResponseValidationError(
                            f"{method} {url} answered {response.status_code} "
                            f"({content_type or 'no content type'}) with a body that "
                            f"{unreadable}: {text[:200]!r}",
                            method=method,
                            url=str(url),
                            body=text[:KEPT_TEXT_CHARS],
                        )
                    if body is not None and self._may_quote_key(response.content, secret):
                        body = redact_secret(body, secret)
                    return Response(response.status_code, body, response.headers)
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
                logger.info(
                    "%s answered %s; retrying in %.2fs",
                    f"{method} {url}",
                    response.status_code,
                    delay,
                )
            attempt += 1
            await self.sleep(delay)

    @staticmethod
    def _may_quote_key(content: bytes, secret: str) -> bool:
        """Cheap pre-check before walking a 2xx body for the key (escapes could hide it)."""
        return secret.encode() in content or b"\\" in content

    async def aclose(self) -> None:
        """Close every pooled client. Errors are raised, not swallowed.

        From an event loop other than the first one: if that first loop is still open,
        `EventLoopMismatchError` is raised and nothing is closed (close it there); if it has
        ended, the client is marked closed and its connections are abandoned with a warning.
        """
        if self._clients and self._loop is not None:
            first, current = self._loop(), _current_loop()
            if current is not None and first is not current:
                if first is not None and not first.is_closed():
                    raise EventLoopMismatchError(
                        "aclose() was called from an event loop other than the one this "
                        "manager was used on; its connections belong to that loop. Close the "
                        "manager there (async with AsyncDeploymentManager(...) inside it)."
                    )
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
    """The seconds a failed request's server asked us to wait, capped; None if it did not say.

    Errors raised by `HTTPClient.request` carry the value capped by that client's retry policy;
    for any other `APIStatusError` the header is read and capped by the default policy.
    """
    if isinstance(error, APIStatusError):
        if error.retry_after_s is not None:
            return error.retry_after_s
        headers = {k.lower(): v for k, v in error.headers.items()}
        return _DEFAULT_RETRY.cap_retry_after(parse_retry_after(headers.get("retry-after")))
    return None


_DEFAULT_RETRY = RetryPolicy()


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
