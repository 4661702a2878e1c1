"""The exception tree.

```
FireworksError
├── InvalidConfigError (ValueError)          bad input, raised before any request
├── ManagerClosedError (RuntimeError)        the manager was closed, or used from the wrong place
│   └── EventLoopMismatchError               ... from an event loop other than its first one
├── APIError
│   ├── APIConnectionError                   the request never got an answer
│   │   ├── APITimeoutError                  ... because an attempt timed out
│   │   └── ServerUnreachableError           ... refused or unresolvable for the connect budget
│   ├── ResponseValidationError (ValueError)  the server sent something we cannot read
│   │   ├── NotFireworksAPIError             ... a web page, not the Fireworks API (check URLs)
│   │   └── ResponseBodyError                ... the body could not be decoded (content coding)
│   │       └── ResponseTooLargeError        ... or larger than the response size limit
│   └── APIStatusError (httpx.HTTPStatusError)  the server answered with an error status
│       ├── BadRequestError                  400
│       ├── AuthenticationError              401
│       ├── PermissionDeniedError            403
│       ├── NotFoundError                    404
│       ├── ConflictError                    409
│       ├── RateLimitError                   429
│       └── InternalServerError              5xx
├── OperationError (RuntimeError)
│   ├── DeploymentFailedError                a deployment is FAILED, DELETING, DELETED or gone
│   │   └── DeploymentNotFoundError          ... gone (404) while we waited on it
│   ├── HotloadFailedError                   a replica reports stage "error" for our snapshot
│   └── WarmupError                          warm-up requests never got a 200
├── WaitTimeoutError (TimeoutError)          a wait hit its deadline; carries the last status
│   ├── ReadyTimeoutError
│   ├── HotloadTimeoutError (RuntimeError too)
│   └── DeletionTimeoutError
├── FleetError (ExceptionGroup-free summary) some deployments of a fleet operation failed
└── LeaseCleanupError                        a lease could not release what it created
```

Every message names the object, what was observed and what to do; none carries the API key.
`redact_secret` is how the HTTP layer keeps a key a server echoes back out of every message,
header and body it keeps; `InsecureTransportWarning` is the warning sent before a key would travel
over plain http to a host that is not loopback.

The builtin (and httpx) bases are what the official client raised, or what its callers raised on
its `False`, in the same situation, so `except` clauses written for it still catch ours:
`RuntimeError` for a failed or missing deployment and a failed hot-load or warm-up,
`httpx.HTTPStatusError` for an error status (`.response` is rebuilt from what we kept: redacted
body and headers, a request without credentials), `ValueError` for an answer it could not read.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any

import httpx

__all__ = [
    "REDACTED",
    "APIConnectionError",
    "APIError",
    "APIStatusError",
    "APITimeoutError",
    "AuthenticationError",
    "BadRequestError",
    "ConflictError",
    "DeletionTimeoutError",
    "DeploymentFailedError",
    "DeploymentNotFoundError",
    "EventLoopMismatchError",
    "FireworksError",
    "FleetError",
    "HotloadFailedError",
    "HotloadTimeoutError",
    "InsecureTransportWarning",
    "InternalServerError",
    "InvalidConfigError",
    "LeaseCleanupError",
    "ManagerClosedError",
    "NotFireworksAPIError",
    "NotFoundError",
    "OperationError",
    "PermissionDeniedError",
    "RateLimitError",
    "ReadyTimeoutError",
    "ResponseBodyError",
    "ResponseTooLargeError",
    "ResponseValidationError",
    "ServerUnreachableError",
    "WaitTimeoutError",
    "WarmupError",
    "redact_secret",
    "redact_text",
]


class FireworksError(Exception):
    """Base class of every error this package raises on purpose."""


class InvalidConfigError(FireworksError, ValueError):
    """Input was rejected before any request was sent."""


class ManagerClosedError(FireworksError, RuntimeError):
    """The manager is closed, or is being used from a place it cannot serve."""


class EventLoopMismatchError(ManagerClosedError):
    """The manager was used on an event loop other than the one it was first used on.

    Its pooled connections belong to that first loop and cannot be used (or closed) from
    another one. Create one manager per event loop, or use the sync `DeploymentManager`, which
    keeps one loop for its whole life.
    """


class InsecureTransportWarning(UserWarning):
    """The API key is about to be sent over plain http:// to a host that is not loopback."""


class APIError(FireworksError):
    """A request to the Fireworks API did not produce a usable answer."""

    def __init__(self, message: str, *, method: str | None = None, url: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.method = method
        self.url = url


class APIConnectionError(APIError):
    """The request got no HTTP answer (connection refused, reset, DNS, ...).

    `request_sent` is False only when the connection never opened, so the server cannot have
    acted on the request.
    """

    request_sent: bool = True


class APITimeoutError(APIConnectionError):
    """An attempt timed out before the server answered."""


class ServerUnreachableError(APIConnectionError):
    """A host refused connections, or its name did not resolve, for the whole connect budget.

    Raised instead of retrying until the deadline: `Timeouts.connect_budget_s` (5 s by
    default) after the first such failure of an operation, waits included. `cause` says which
    (`"connection refused"`, `"the host name ... could not be resolved"`, ...), `budget_s` how
    long it was retried. The connection never opened, so `request_sent` is False.
    """

    request_sent = False

    def __init__(self, message: str, *, method: str, url: str, cause: str, budget_s: float) -> None:
        super().__init__(message, method=method, url=url)
        self.cause = cause
        self.budget_s = budget_s


class ResponseValidationError(APIError, ValueError):
    """The server answered 2xx with a body we cannot read (a `ValueError`, as a JSON decode
    error or the official client's account check is).

    `body` is what was kept of the answer (redacted); `status_code` and `content_type` are set
    where they are known.
    """

    def __init__(
        self,
        message: str,
        *,
        method: str | None = None,
        url: str | None = None,
        body: Any = None,
        status_code: int | None = None,
        content_type: str | None = None,
    ) -> None:
        super().__init__(message, method=method, url=url)
        self.body = body
        self.status_code = status_code
        self.content_type = content_type


class ResponseBodyError(ResponseValidationError):
    """The HTTP body could not be decoded: an unknown or corrupt content coding.

    Carries what is known of the answer: `status_code` and `content_type`. (A body that
    decodes but is not usable JSON raises the plain `ResponseValidationError`.)
    """


class ResponseTooLargeError(ResponseBodyError):
    """The body (after decompression) outgrew the response size limit; reading was stopped.

    `limit_bytes` is the limit that was hit (the `max_response_bytes` of the HTTP client).
    """

    def __init__(
        self,
        message: str,
        *,
        method: str | None = None,
        url: str | None = None,
        status_code: int | None = None,
        content_type: str | None = None,
        limit_bytes: int,
    ) -> None:
        super().__init__(
            message, method=method, url=url, status_code=status_code, content_type=content_type
        )
        self.limit_bytes = limit_bytes


class NotFireworksAPIError(ResponseValidationError):
    """The server answered with something that is not the Fireworks API, such as a web page.

    Raised where the API answers JSON: for a 2xx whose body is not JSON and does not claim to
    be, and for an error status whose body is a web page (HTML or XML; a plain web server's
    HTML 404 is not "the deployment does not exist"). Not raised for a "busy, try again" status
    (408, 425, 429, 500, 502, 503, 504: proxies in front of the real API answer those with
    pages, and they are retried as before), nor for an error status with a plain-text body (the
    API's gateways send some; the text becomes the status error's message). The URL most
    likely points somewhere else: check `base_url` / `FIREWORKS_BASE_URL` (or the inference and
    hot-load URLs). Carries `status_code`, `content_type` and the start of the body (`body`,
    redacted).
    """


class APIStatusError(APIError, httpx.HTTPStatusError):
    """The server answered with an error status; carries what it said.

    `retry_after_s` is the server's Retry-After in seconds, already capped by the retry policy
    (`RetryPolicy.max_retry_after_s`); None when it sent none. It is an `httpx.HTTPStatusError`
    as the official client's `raise_for_status()` was: `.response` (and `.request`) are rebuilt
    on first access from what we kept, the redacted body and headers, with no credentials.
    """

    retry_after_s: float | None = None

    def __init__(
        self,
        message: str,
        *,
        status_code: int,
        method: str | None = None,
        url: str | None = None,
        body: Any = None,
        headers: Mapping[str, str] | None = None,
        server_message: str = "",
    ) -> None:
        # Not httpx.HTTPStatusError.__init__: it needs the response we build only on demand.
        Exception.__init__(self, message)
        self.message = message
        self.method = method
        self.url = url
        self.status_code = status_code
        self.body = body
        self.headers = dict(headers or {})
        self.server_message = server_message
        self._response: httpx.Response | None = None

    @property
    def response(self) -> httpx.Response:
        """An `httpx.Response` with the status, the redacted headers and body we kept."""
        if self._response is None:
            self._response = _rebuilt_response(self)
        return self._response

    @response.setter
    def response(self, value: httpx.Response) -> None:
        self._response = value

    @property
    def request(self) -> httpx.Request:
        """The request as method and URL only: its credentials are never kept."""
        return self.response.request

    @request.setter
    def request(self, value: httpx.Request) -> None:
        self.response.request = value


#: Headers that describe the bytes on the wire, not the body we kept (which is decoded).
_WIRE_HEADERS = frozenset({"content-encoding", "content-length", "transfer-encoding"})


def _rebuilt_response(error: APIStatusError) -> httpx.Response:
    """`error`'s answer as an `httpx.Response`, from what it kept (redacted already)."""
    request = httpx.Request(error.method or "GET", error.url or "http://unknown.invalid/")
    if error.body is None:
        content = b""
    elif isinstance(error.body, str):
        content = error.body.encode()
    else:
        content = json.dumps(error.body, default=str).encode()
    headers = {k: v for k, v in error.headers.items() if k.lower() not in _WIRE_HEADERS}
    try:
        return httpx.Response(error.status_code, headers=headers, content=content, request=request)
    except (UnicodeError, TypeError, ValueError):  # a header httpx will not re-encode
        return httpx.Response(error.status_code, content=content, request=request)


class BadRequestError(APIStatusError):
    """400: the server rejected the request's content."""


class AuthenticationError(APIStatusError):
    """401: the API key is missing or wrong."""


class PermissionDeniedError(APIStatusError):
    """403: the API key may not do this."""


class NotFoundError(APIStatusError):
    """404: the object does not exist."""


class ConflictError(APIStatusError):
    """409: the object exists already, or an operation on it is in progress."""


class RateLimitError(APIStatusError):
    """429: too many requests; retried automatically until the deadline."""


class InternalServerError(APIStatusError):
    """5xx: the server failed; retried automatically until the deadline."""


class OperationError(FireworksError, RuntimeError):
    """A remote operation reached a failed end state (a `RuntimeError`, as the official client
    raised for a failed deployment, and its callers on a failed hot-load)."""


class DeploymentFailedError(OperationError):
    """A deployment is in a state it will not recover from (FAILED, DELETING, DELETED, gone)."""

    def __init__(self, message: str, *, deployment_id: str, state: str | None, info: Any = None):
        super().__init__(message)
        self.deployment_id = deployment_id
        self.state = state
        self.info = info


class DeploymentNotFoundError(DeploymentFailedError):
    """A deployment disappeared (404) while we waited on it."""


class HotloadFailedError(OperationError):
    """At least one replica reports stage "error" for the snapshot we asked for."""

    def __init__(
        self,
        message: str,
        *,
        deployment_id: str,
        identity: str,
        stage: str | None,
        status: Any = None,
    ) -> None:
        super().__init__(message)
        self.deployment_id = deployment_id
        self.identity = identity
        self.stage = stage
        self.status = status


class WarmupError(OperationError):
    """Warm-up completions never answered 200 within the attempts or the deadline."""

    def __init__(self, message: str, *, model: str, attempts: int, last_status: int | None):
        super().__init__(message)
        self.model = model
        self.attempts = attempts
        self.last_status = last_status


class WaitTimeoutError(FireworksError, TimeoutError):
    """A wait reached its deadline; `last_status` is what it saw last (None if nothing)."""

    def __init__(self, message: str, *, timeout_s: float, last_status: Any = None) -> None:
        super().__init__(message)
        self.timeout_s = timeout_s
        self.last_status = last_status


class ReadyTimeoutError(WaitTimeoutError):
    """`wait_for_ready` gave up; `last_status` is the last `DeploymentInfo` seen."""


class HotloadTimeoutError(WaitTimeoutError, RuntimeError):
    """`wait_for_hotload` gave up; `last_status` is the last `HotloadStatus` seen.

    Also a `RuntimeError`: the official client returned False here, and the code around it (its
    own `WeightSyncer` included) raised `RuntimeError` on that.
    """


class DeletionTimeoutError(WaitTimeoutError):
    """A deletion was not confirmed (404 or DELETED) before the deadline."""


class FleetError(FireworksError):
    """Some deployments of a fleet operation did not succeed; `.result` has every outcome.

    `result` is the operation's `FleetResult` (typed loosely here: errors know nothing of fleets).
    """

    def __init__(self, message: str, *, result: Any) -> None:
        super().__init__(message)
        self.result = result


class LeaseCleanupError(FireworksError):
    """A lease could not scale to zero or delete some deployments it created.

    `failures` maps each such deployment id to what went wrong; `__cause__` is the error the
    lease's block ended with, if any.
    """

    def __init__(self, message: str, *, failures: Mapping[str, Exception]) -> None:
        super().__init__(message)
        self.failures: dict[str, Exception] = dict(failures)


# -- redaction ------------------------------------------------------------------------------

#: What a redacted key is replaced with.
REDACTED = "***"
#: A key shorter than this is never searched for inside text: only a value that is exactly the
#: key (or `Bearer <key>`) is replaced, so a short key cannot corrupt unrelated output.
MIN_SEARCHED_SECRET_LEN = 8
#: A key at least this long is replaced wherever it occurs, even glued to other characters
#: (URL-encoded quotes, concatenations): a random string that long does not occur by chance,
#: so replacing it cannot corrupt output, while leaving it would leak it. Between the two
#: lengths a key is replaced only where it stands as a whole token.
ANYWHERE_SECRET_LEN = 24
#: Characters that continue a token: a key next to one of them is part of a longer word.
_WORD_CHAR = r"[A-Za-z0-9_\-]"


def redact_text(text: str, secret: str) -> str:
    """`text` with `secret` replaced by `REDACTED`, by the length rules above."""
    if not secret or not text:
        return text
    if len(secret) < MIN_SEARCHED_SECRET_LEN:
        stripped = text.strip()
        scheme, _, rest = stripped.partition(" ")
        if stripped == secret:
            return REDACTED
        if rest.strip() == secret and scheme.lower() == "bearer":
            return f"{scheme} {REDACTED}"
        return text
    if secret not in text:
        return text
    if len(secret) >= ANYWHERE_SECRET_LEN:
        return text.replace(secret, REDACTED)
    pattern = f"(?<!{_WORD_CHAR}){re.escape(secret)}(?!{_WORD_CHAR})"
    return re.sub(pattern, REDACTED, text)


def redact_secret(value: Any, secret: str) -> Any:
    """`value` (text, headers or decoded JSON) with `secret` redacted from every string in it.

    Mappings come back as dicts and sequences as lists; other values are returned as they are.
    A structure nested too deeply to walk is replaced by `REDACTED` as a whole.
    """
    if not secret:
        return value
    try:
        return _redact(value, secret)
    except RecursionError:
        return REDACTED


def _redact(value: Any, secret: str) -> Any:
    if isinstance(value, str):
        return redact_text(value, secret)
    if isinstance(value, Mapping):
        return {_redact(k, secret): _redact(v, secret) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_redact(item, secret) for item in value]
    return value
