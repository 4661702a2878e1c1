"""The exception tree.

```
FireworksError
├── InvalidConfigError (ValueError)          bad input, raised before any request
├── ManagerClosedError (RuntimeError)        the manager was closed, or used from the wrong place
├── APIError
│   ├── APIConnectionError                   the request never got an answer
│   │   └── APITimeoutError                  ... because an attempt timed out
│   ├── ResponseValidationError              the server sent something we cannot read
│   └── APIStatusError                       the server answered with an error status
│       ├── BadRequestError                  400
│       ├── AuthenticationError              401
│       ├── PermissionDeniedError            403
│       ├── NotFoundError                    404
│       ├── ConflictError                    409
│       ├── RateLimitError                   429
│       └── InternalServerError              5xx
├── OperationError
│   ├── DeploymentFailedError                a deployment is FAILED, DELETING, DELETED or gone
│   │   └── DeploymentNotFoundError          ... gone (404) while we waited on it
│   ├── HotloadFailedError                   a replica reports stage "error" for our snapshot
│   └── WarmupError                          warm-up requests never got a 200
├── WaitTimeoutError (TimeoutError)          a wait hit its deadline; carries the last status
│   ├── ReadyTimeoutError
│   ├── HotloadTimeoutError
│   └── DeletionTimeoutError
├── FleetError (ExceptionGroup-free summary) some deployments of a fleet operation failed
└── LeaseCleanupError                        a lease could not release what it created
```

Every message names the object, what was observed and what to do; none carries the API key.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ._fleet import FleetResult

__all__ = [
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
    "FireworksError",
    "FleetError",
    "HotloadFailedError",
    "HotloadTimeoutError",
    "InternalServerError",
    "InvalidConfigError",
    "LeaseCleanupError",
    "ManagerClosedError",
    "NotFoundError",
    "OperationError",
    "PermissionDeniedError",
    "RateLimitError",
    "ReadyTimeoutError",
    "ResponseValidationError",
    "WaitTimeoutError",
    "WarmupError",
]


class FireworksError(Exception):
    """Base class of every error this package raises on purpose."""


class InvalidConfigError(FireworksError, ValueError):
    """Input was rejected before any request was sent."""


class ManagerClosedError(FireworksError, RuntimeError):
    """The manager is closed, or is being used from a place it cannot serve."""


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


class ResponseValidationError(APIError):
    """The server answered 2xx with a body we cannot read."""

    def __init__(
        self,
        message: str,
        *,
        method: str | None = None,
        url: str | None = None,
        body: Any = None,
    ) -> None:
        super().__init__(message, method=method, url=url)
        self.body = body


class APIStatusError(APIError):
    """The server answered with an error status; carries what it said."""

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
        super().__init__(message, method=method, url=url)
        self.status_code = status_code
        self.body = body
        self.headers = dict(headers or {})
        self.server_message = server_message


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


class OperationError(FireworksError):
    """A remote operation reached a failed end state."""


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


class HotloadTimeoutError(WaitTimeoutError):
    """`wait_for_hotload` gave up; `last_status` is the last `HotloadStatus` seen."""


class DeletionTimeoutError(WaitTimeoutError):
    """A deletion was not confirmed (404 or DELETED) before the deadline."""


class FleetError(FireworksError):
    """Some deployments of a fleet operation did not succeed; `.result` has every outcome."""

    def __init__(self, message: str, *, result: FleetResult[Any]) -> None:
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
