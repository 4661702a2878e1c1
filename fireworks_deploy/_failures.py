"""Which failures are worth waiting out: retryable statuses, Retry-After, poll tolerance.

One place decides, for the retry loop in `_http`, the poll loops and the at-most-once POSTs,
whether a failed request may be sent again, whether it may have taken effect anyway, and how
long its server asked us to wait. A Retry-After is capped by `RetryPolicy.max_retry_after_s`
everywhere it is honoured.
"""

from __future__ import annotations

import email.utils
import math
import time

from ._config import RetryPolicy
from ._errors import APIConnectionError, APIStatusError, ResponseValidationError

__all__ = [
    "AMBIGUOUS_STATUSES",
    "NOT_PROCESSED_STATUSES",
    "RETRYABLE_STATUSES",
    "TRANSIENT_POLL_STATUSES",
    "PollErrors",
    "error_retry_after",
    "is_transient",
    "outcome_unknown",
    "parse_retry_after",
]

RETRYABLE_STATUSES = frozenset({408, 429, 500, 502, 503, 504})
#: Statuses that say the server did not act on the request, so even a POST may be re-sent.
NOT_PROCESSED_STATUSES = frozenset({429, 503})
#: Statuses a poll loop waits out instead of failing: the server is busy or restarting.
TRANSIENT_POLL_STATUSES = frozenset({408, 425, 429, 500, 502, 503, 504})
#: Statuses after which a non-idempotent request may or may not have taken effect.
AMBIGUOUS_STATUSES = frozenset({408, 500, 502, 504})

_DEFAULT_RETRY = RetryPolicy()


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
