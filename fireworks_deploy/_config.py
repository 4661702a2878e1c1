"""Timeouts, retry policy, deadlines and environment resolution."""

from __future__ import annotations

import math
import os
import random
import re
import time
import uuid
from collections.abc import Callable, Mapping

import attrs

from ._errors import InvalidConfigError

__all__ = [
    "ACCOUNT_ID_ENV",
    "API_KEY_ENV",
    "BASE_URL_ENV",
    "DEFAULT_BASE_URL",
    "DEFAULT_MAX_RESPONSE_BYTES",
    "HOTLOAD_API_URL_ENV",
    "INFERENCE_URL_ENV",
    "POLL_INTERVAL_FLOOR_S",
    "Deadline",
    "Endpoints",
    "RetryPolicy",
    "Secret",
    "Timeouts",
    "check_max_response_bytes",
    "check_poll_interval",
    "check_positive",
    "env_headers",
    "resolve_account_id",
    "resolve_api_key",
    "resolve_endpoints",
]

API_KEY_ENV = "FIREWORKS_API_KEY"
ACCOUNT_ID_ENV = "FIREWORKS_ACCOUNT_ID"
BASE_URL_ENV = "FIREWORKS_BASE_URL"
INFERENCE_URL_ENV = "FIREWORKS_INFERENCE_URL"
HOTLOAD_API_URL_ENV = "FIREWORKS_HOTLOAD_API_URL"
CLIENT_SOURCE_ENV = "FIREWORKS_CLIENT_SOURCE"
SESSION_ID_ENV = "FIREWORKS_SESSION_ID"
_CLIENT_SOURCE = re.compile(r"fireworks-training-skill(?:/[0-9A-Za-z][0-9A-Za-z._+-]{0,63})?")


class _DefaultBaseURL(str):
    """The `base_url` default: equal to the official client's, but told apart by identity.

    A manager whose `base_url` *is* this object was not given one, so `FIREWORKS_BASE_URL`
    applies; any string the caller passes (even this same URL typed out) is explicit and wins.
    """

    __slots__ = ()


#: The `base_url` of both managers when none is given (and `FIREWORKS_BASE_URL` is unset).
DEFAULT_BASE_URL: str = _DefaultBaseURL("https://api.fireworks.ai")

#: The shortest poll interval honoured: a shorter one is raised to it (`check_poll_interval`).
POLL_INTERVAL_FLOOR_S = 0.05
#: The largest response body read, after decompression; a larger one raises
#: `ResponseTooLargeError`. The largest real answer (a 200-deployment list page) is well under
#: 1 MiB, and a hostile body of this size costs at most a few tens of MB once parsed.
DEFAULT_MAX_RESPONSE_BYTES = 2 * 1024 * 1024


def _positive_seconds(instance: object, attribute: attrs.Attribute[float], value: object) -> None:
    """attrs validator: a positive, finite number of seconds (not a bool, not NaN)."""
    if (
        isinstance(value, bool)
        or not isinstance(value, (int, float))
        or not math.isfinite(value)
        or value <= 0
    ):
        raise InvalidConfigError(
            f"{type(instance).__name__}.{attribute.name} must be a positive finite number of "
            f"seconds, got {value!r}."
        )


def _is_bool(instance: object, attribute: attrs.Attribute[bool], value: object) -> None:
    if not isinstance(value, bool):
        raise InvalidConfigError(
            f"{type(instance).__name__}.{attribute.name} must be True or False, got {value!r}."
        )


@attrs.frozen(kw_only=True)
class Timeouts:
    """Per-attempt budgets in seconds; every operation's own deadline caps them further.

    Every field must be a positive, finite number: anything else raises `InvalidConfigError`
    naming the field.
    """

    connect_s: float = attrs.field(default=10.0, validator=_positive_seconds)
    control_plane_s: float = attrs.field(default=30.0, validator=_positive_seconds)
    hotload_post_s: float = attrs.field(default=60.0, validator=_positive_seconds)
    hotload_status_s: float = attrs.field(default=30.0, validator=_positive_seconds)
    probe_s: float = attrs.field(default=10.0, validator=_positive_seconds)
    warmup_s: float = attrs.field(default=30.0, validator=_positive_seconds)
    #: Deadline of a single-call operation (get, update, delete, ...), retries included.
    operation_s: float = attrs.field(default=120.0, validator=_positive_seconds)
    #: How long a host that refuses connections, or whose name does not resolve, is retried
    #: within one operation (a wait included), counted from the first such failure since it
    #: last answered; then the call raises `ServerUnreachableError` (an `APIConnectionError`)
    #: instead of retrying until its deadline. Other failures (timeouts, resets, 5xx) are
    #: still retried until the deadline.
    connect_budget_s: float = attrs.field(default=5.0, validator=_positive_seconds)


@attrs.frozen(kw_only=True)
class RetryPolicy:
    """Jittered exponential backoff that honours `Retry-After`.

    The delay before retry n is uniform in [0, min(max_s, initial_s * 2**n)] ("full jitter");
    a server's `Retry-After` (capped at `max_retry_after_s`) is a floor on it. The caller's
    deadline, not a retry count, decides when to stop. Every duration must be a positive,
    finite number and `jitter` a bool: anything else raises `InvalidConfigError`.
    """

    initial_s: float = attrs.field(default=0.25, validator=_positive_seconds)
    max_s: float = attrs.field(default=8.0, validator=_positive_seconds)
    #: The longest wait a server's Retry-After can impose, wherever it is honoured (request
    #: retries, poll loops, fleet rounds, warm-up): a Retry-After of 1e9 s or a date in 2999
    #: waits this long, not until the deadline.
    max_retry_after_s: float = attrs.field(default=60.0, validator=_positive_seconds)
    jitter: bool = attrs.field(default=True, validator=_is_bool)

    def cap_retry_after(self, retry_after_s: float | None) -> float | None:
        """A server's Retry-After, capped at `max_retry_after_s` (None stays None)."""
        if retry_after_s is None:
            return None
        return min(max(0.0, retry_after_s), self.max_retry_after_s)

    def delay(
        self, attempt: int, retry_after_s: float | None = None, rng: random.Random | None = None
    ) -> float:
        """Seconds to wait before retry `attempt` (0 for the first retry).

        Drawn with `rng` (default: the `random` module) when `jitter` is on; a non-negative
        `retry_after_s` from the server is a floor, capped at `max_retry_after_s`.
        """
        ceiling = min(self.max_s, self.initial_s * (2 ** min(attempt, 32)))
        base = (rng or random).uniform(0.0, ceiling) if self.jitter else ceiling
        if retry_after_s is not None and retry_after_s >= 0:
            return max(base, min(retry_after_s, self.max_retry_after_s))
        return base


class Deadline:
    """A point on the monotonic clock after which an operation gives up.

    One is made per public call and passed to every request of it, so it also keeps what the
    operation has seen of each origin's reachability: the connect budget
    (`Timeouts.connect_budget_s`) is counted from the first refused or unresolvable connection
    to an origin since it last answered, across every retry and poll of the operation.
    """

    __slots__ = ("_clock", "_unreachable", "at", "timeout_s")

    def __init__(
        self, timeout_s: float | None, *, clock: Callable[[], float] = time.monotonic
    ) -> None:
        if timeout_s is not None and (math.isnan(timeout_s) or timeout_s < 0):
            raise InvalidConfigError(f"timeout must be a non-negative number, got {timeout_s!r}.")
        self._clock = clock
        self.timeout_s = math.inf if timeout_s is None else float(timeout_s)
        self.at = clock() + self.timeout_s
        #: origin -> when its connect budget runs out (clock time), while it keeps failing.
        self._unreachable: dict[str, float] = {}

    def connect_failed(self, origin: str, budget_s: float) -> float:
        """Note that `origin` refused a connection or did not resolve; the seconds left of its
        connect budget, counted from the first such failure since it last answered (<= 0: spent).
        """
        now = self._clock()
        return self._unreachable.setdefault(origin, now + budget_s) - now

    def connected(self, origin: str) -> None:
        """`origin` answered (or at least accepted a connection): its connect budget resets."""
        self._unreachable.pop(origin, None)

    def connect_retry_in(self) -> float | None:
        """Seconds until the first open connect budget runs out (0 if spent already); None
        while every origin this operation used is reachable."""
        if not self._unreachable:
            return None
        return max(0.0, min(self._unreachable.values()) - self._clock())

    def remaining(self) -> float:
        return max(0.0, self.at - self._clock())

    @property
    def expired(self) -> bool:
        return self._clock() >= self.at

    def cap(self, seconds: float) -> float:
        """`seconds`, shortened to what is left."""
        return min(seconds, self.remaining())

    def __repr__(self) -> str:
        return f"Deadline(timeout_s={self.timeout_s}, remaining={self.remaining():.3f})"


class Secret:
    """Holds the API key; its repr and str never show it."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def get(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return "Secret('***')"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(self._value)


def resolve_api_key(api_key: str | None, env: Mapping[str, str] | None = None) -> Secret:
    """The explicit key, else `FIREWORKS_API_KEY`; neither is a clear error."""
    env = os.environ if env is None else env
    value = api_key if api_key is not None else env.get(API_KEY_ENV)
    if value is None or not isinstance(value, str) or not value.strip():
        raise InvalidConfigError(
            f"No API key: pass api_key=... or set {API_KEY_ENV}. "
            "For the local control plane any non-empty key works."
        )
    if not (value.isascii() and value.isprintable()):
        raise InvalidConfigError(
            "The API key must be printable ASCII: it has a line break, a control character or "
            "a non-ASCII character."
        )
    return Secret(value.strip())


def _from_env(env: Mapping[str, str], name: str) -> str | None:
    """A variable's value, stripped; blank counts as unset (as on the command line)."""
    value = env.get(name)
    return value.strip() if value and value.strip() else None


def resolve_account_id(account_id: str | None, env: Mapping[str, str] | None = None) -> str | None:
    """The explicit account, else `FIREWORKS_ACCOUNT_ID` (blank is unset); None: resolve it
    from the key with a request, on first use."""
    if account_id is not None:
        return account_id
    return _from_env(os.environ if env is None else env, ACCOUNT_ID_ENV)


@attrs.frozen(kw_only=True)
class Endpoints:
    """Where requests go, as given or read from the environment (validated by the caller).

    Each `*_from` is what the value came from, the argument's name or the variable's, for an
    error about it to name. `inference_url` and `hotload_api_url` are None when neither was
    set: they default to `base_url`.
    """

    base_url: str
    base_url_from: str
    inference_url: str | None
    inference_url_from: str
    hotload_api_url: str | None
    hotload_api_url_from: str


def resolve_endpoints(
    base_url: str | None = None,
    inference_url: str | None = None,
    hotload_api_url: str | None = None,
    env: Mapping[str, str] | None = None,
) -> Endpoints:
    """The three URLs of a manager: each argument given wins, else its variable, else default.

    * `base_url`: `FIREWORKS_BASE_URL` applies when the argument is None or left at its
      default (the `DEFAULT_BASE_URL` object itself: a string the caller passes, even
      `"https://api.fireworks.ai"`, is explicit and wins), else `https://api.fireworks.ai`.
    * `inference_url`: `FIREWORKS_INFERENCE_URL` when None, else the base URL.
    * `hotload_api_url`: `FIREWORKS_HOTLOAD_API_URL` when None, else the base URL.

    Blank variables count as unset; the command line resolves its flags the same way.
    """
    env = os.environ if env is None else env

    def pick(value: str | None, name: str, variable: str) -> tuple[str | None, str]:
        if value is not None and value is not DEFAULT_BASE_URL:
            return value, name
        from_env = _from_env(env, variable)
        return (from_env, variable) if from_env is not None else (value, name)

    base, base_from = pick(base_url, "base_url", BASE_URL_ENV)
    inference, inference_from = pick(inference_url, "inference_url", INFERENCE_URL_ENV)
    hotload, hotload_from = pick(hotload_api_url, "hotload_api_url", HOTLOAD_API_URL_ENV)
    return Endpoints(
        base_url=DEFAULT_BASE_URL if base is None else base,
        base_url_from=base_from,
        inference_url=inference,
        inference_url_from=inference_from,
        hotload_api_url=hotload,
        hotload_api_url_from=hotload_from,
    )


def env_headers(env: Mapping[str, str] | None = None) -> dict[str, str]:
    """The headers the official client derives from the environment, validated as it does.

    `X-Fireworks-Client-Source` from `FIREWORKS_CLIENT_SOURCE` when it is
    `fireworks-training-skill` with an optional `/<version>` (at most 128 characters), and
    `X-Fireworks-Session-Id` from `FIREWORKS_SESSION_ID` when it is a UUID in canonical form
    (either case). Values are sent unchanged; anything else is silently left out.
    """
    env = os.environ if env is None else env
    headers: dict[str, str] = {}
    source = env.get(CLIENT_SOURCE_ENV)
    if source and len(source) <= 128 and _CLIENT_SOURCE.fullmatch(source):
        headers["X-Fireworks-Client-Source"] = source
    session = env.get(SESSION_ID_ENV)
    if session and len(session) <= 36:
        try:
            canonical = str(uuid.UUID(session))
        except ValueError:
            canonical = ""
        if canonical == session.lower():
            headers["X-Fireworks-Session-Id"] = session
    return headers


def check_positive(name: str, value: float, *, allow_zero: bool = False) -> float:
    """Validate a user-supplied duration or interval before any request."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or math.isnan(value):
        raise InvalidConfigError(f"{name} must be a number, got {value!r}.")
    if value < 0 or (value == 0 and not allow_zero) or math.isinf(value):
        raise InvalidConfigError(f"{name} must be a positive finite number, got {value!r}.")
    return float(value)


def check_poll_interval(name: str, value: float) -> float:
    """Validate a poll interval; one below `POLL_INTERVAL_FLOOR_S` is raised to the floor.

    Zero, negative, NaN, infinite, bool and non-numbers raise `InvalidConfigError` naming
    `name`. A positive interval under the floor is clamped rather than refused: polling faster
    than 20 times a second only loads the server, and a caller asking for "as fast as
    possible" gets the fastest rate on offer.
    """
    return max(check_positive(name, value), POLL_INTERVAL_FLOOR_S)


def check_max_response_bytes(value: int) -> int:
    """Validate a response size limit: a positive integer number of bytes (not a bool)."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise InvalidConfigError(
            f"max_response_bytes must be a positive integer number of bytes, got {value!r}."
        )
    return value
