"""Timeouts, retry policy, deadlines and environment resolution."""

from __future__ import annotations

import math
import os
import random
import time
from collections.abc import Callable, Mapping

import attrs

from ._errors import InvalidConfigError

__all__ = ["Deadline", "RetryPolicy", "Secret", "Timeouts", "resolve_api_key"]

API_KEY_ENV = "FIREWORKS_API_KEY"
ACCOUNT_ID_ENV = "FIREWORKS_ACCOUNT_ID"
DEFAULT_BASE_URL = "https://api.fireworks.ai"


@attrs.frozen(kw_only=True)
class Timeouts:
    """Per-attempt budgets in seconds; every operation's own deadline caps them further."""

    connect_s: float = 10.0
    control_plane_s: float = 30.0
    hotload_post_s: float = 60.0
    hotload_status_s: float = 30.0
    probe_s: float = 10.0
    warmup_s: float = 30.0
    #: Deadline of a single-call operation (get, update, delete, ...), retries included.
    operation_s: float = 120.0


@attrs.frozen(kw_only=True)
class RetryPolicy:
    """Jittered exponential backoff that honours `Retry-After`.

    The delay before retry n is uniform in [0, min(max_s, initial_s * 2**n)] ("full jitter");
    a server's `Retry-After` (capped at `max_retry_after_s`) is a floor on it. The caller's
    deadline, not a retry count, decides when to stop.
    """

    initial_s: float = 0.25
    max_s: float = 8.0
    max_retry_after_s: float = 60.0
    jitter: bool = True

    def delay(
        self, attempt: int, retry_after_s: float | None = None, rng: random.Random | None = None
    ) -> float:
        ceiling = min(self.max_s, self.initial_s * (2 ** min(attempt, 32)))
        base = (rng or random).uniform(0.0, ceiling) if self.jitter else ceiling
        if retry_after_s is not None and retry_after_s >= 0:
            return max(base, min(retry_after_s, self.max_retry_after_s))
        return base


class Deadline:
    """A point on the monotonic clock after which an operation gives up."""

    __slots__ = ("_clock", "at", "timeout_s")

    def __init__(
        self, timeout_s: float | None, *, clock: Callable[[], float] = time.monotonic
    ) -> None:
        if timeout_s is not None and (math.isnan(timeout_s) or timeout_s < 0):
            raise InvalidConfigError(f"timeout must be a non-negative number, got {timeout_s!r}.")
        self._clock = clock
        self.timeout_s = math.inf if timeout_s is None else float(timeout_s)
        self.at = clock() + self.timeout_s

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


def check_positive(name: str, value: float, *, allow_zero: bool = False) -> float:
    """Validate a user-supplied duration or interval before any request."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or math.isnan(value):
        raise InvalidConfigError(f"{name} must be a number, got {value!r}.")
    if value < 0 or (value == 0 and not allow_zero) or math.isinf(value):
        raise InvalidConfigError(f"{name} must be a positive finite number, got {value!r}.")
    return float(value)
