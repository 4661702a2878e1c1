"""Which failures are worth waiting out: retryable statuses, Retry-After, poll tolerance.

One place decides, for the retry loop in `_http`, the poll loops and the at-most-once POSTs,
whether a failed request may be sent again, whether it may have taken effect anyway, and how
long its server asked us to wait. A Retry-After is capped by `RetryPolicy.max_retry_after_s`
everywhere it is honoured.

Nothing is waited out where nothing will change: a host that refuses connections, or whose
name does not resolve, is retried for `Timeouts.connect_budget_s` within one operation, then
`ServerUnreachableError` ends it, a wait included. Every retry is logged (`log_retry`): at INFO,
and at WARNING from the `WARN_AFTER_FAILURES`-th failure in a row.
"""

from __future__ import annotations

import email.utils
import errno
import logging
import math
import socket
import time
import weakref
from urllib.parse import urlsplit

from ._config import RetryPolicy
from ._errors import (
    APIConnectionError,
    APIStatusError,
    NotFireworksAPIError,
    ResponseValidationError,
    ServerUnreachableError,
)

__all__ = [
    "AMBIGUOUS_STATUSES",
    "NOT_PROCESSED_STATUSES",
    "RETRYABLE_STATUSES",
    "TRANSIENT_POLL_STATUSES",
    "WARN_AFTER_FAILURES",
    "PollErrors",
    "error_retry_after",
    "failure_reason",
    "is_transient",
    "log_retry",
    "outcome_unknown",
    "parse_retry_after",
    "unreachable_cause",
]

logger = logging.getLogger(__name__)

#: A retry is logged at WARNING (not INFO) from this many failures in a row on.
WARN_AFTER_FAILURES = 3

RETRYABLE_STATUSES = frozenset({408, 429, 500, 502, 503, 504})
#: Statuses that say the server did not act on the request, so even a POST may be re-sent.
NOT_PROCESSED_STATUSES = frozenset({429, 503})
#: Statuses a poll loop waits out instead of failing: the server is busy or restarting.
TRANSIENT_POLL_STATUSES = frozenset({408, 425, 429, 500, 502, 503, 504})
#: Statuses after which a non-idempotent request may or may not have taken effect.
AMBIGUOUS_STATUSES = frozenset({408, 500, 502, 504})

_DEFAULT_RETRY = RetryPolicy()


_REFUSED = {errno.ECONNREFUSED: "connection refused"}
_UNREACHABLE = {
    errno.ENETUNREACH: "the network is unreachable",
    errno.EHOSTUNREACH: "no route to the host",
}


def unreachable_cause(exc: BaseException, host: str) -> str | None:
    """Why a connection to `host` could not be opened, when retrying soon will not help.

    Connection refused, a name that does not resolve (including no network at all), or no
    route; None for anything else (a connect timeout, a TLS failure, a reset), which keeps
    being retried until the deadline.
    """
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, socket.gaierror):
            detail = current.strerror or str(current)
            return f"the host name {host!r} could not be resolved ({detail})"
        if isinstance(current, ConnectionRefusedError):
            return "connection refused"
        if isinstance(current, OSError) and current.errno is not None:
            found = _REFUSED.get(current.errno) or _UNREACHABLE.get(current.errno)
            if found is not None:
                return found
        current = current.__cause__ or current.__context__
    return None


def failure_reason(error: BaseException) -> str:
    """A short, key-free account of why a request failed, for a retry log line."""
    if isinstance(error, ServerUnreachableError):
        return error.cause
    if isinstance(error, APIConnectionError):
        cause = error.__cause__
        if cause is not None:
            found = unreachable_cause(cause, urlsplit(error.url or "").hostname or "")
            if found is not None:
                return found
            text = str(cause)
            return f"{type(cause).__name__}: {text}" if text else type(cause).__name__
        return "no answer"
    if isinstance(error, APIStatusError):
        said = " ".join(error.server_message.split())[:120]
        return f"HTTP {error.status_code}" + (f" ({said})" if said else "")
    if isinstance(error, ResponseValidationError):
        return "an unreadable answer"
    return type(error).__name__


def log_retry(
    log: logging.Logger,
    error: BaseException,
    *,
    failures: int,
    delay_s: float | None = None,
    quiet: bool = False,
) -> None:
    """Log that a failed request (or poll) will be tried again.

    The message reads "retrying GET <url>: <reason>; next attempt in 0.25s (1 failure in a
    row)" ("polling on" for a poll, whose next try is on its schedule); INFO for the
    first failures in a row, WARNING from the `WARN_AFTER_FAILURES`-th (`quiet` keeps it at
    INFO: an expected failure, such as a hot-load status 404 while the gateway starts). The
    record carries `retry_method`, `retry_url`, `retry_reason`, `retry_failures` and
    `retry_delay_s` (None when the next try is on a poll schedule) for handlers.
    """
    method = getattr(error, "method", None) or "request"
    url = getattr(error, "url", None) or "(unknown URL)"
    reason = failure_reason(error)
    level = logging.INFO if quiet or failures < WARN_AFTER_FAILURES else logging.WARNING
    then = "polling on" if delay_s is None else f"next attempt in {delay_s:.2f}s"
    log.log(
        level,
        "retrying %s %s: %s; %s (%d failure%s in a row)",
        method,
        url,
        reason,
        then,
        failures,
        "" if failures == 1 else "s",
        extra={
            "retry_method": method,
            "retry_url": url,
            "retry_reason": reason,
            "retry_failures": failures,
            "retry_delay_s": delay_s,
        },
    )


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
    """Whether a poll loop should keep polling after `error`.

    Every failure to get an answer is, but `ServerUnreachableError`: the connect budget is spent.
    """
    if isinstance(error, APIConnectionError):
        return not isinstance(error, ServerUnreachableError)
    if isinstance(error, APIStatusError):
        return error.status_code in TRANSIENT_POLL_STATUSES or (
            not_found_ok and error.status_code == 404
        )
    return False


#: Errors already logged as a poll retry: waiters sharing one poll see the same error object,
#: and it is logged once.
_LOGGED: weakref.WeakSet[BaseException] = weakref.WeakSet()


class PollErrors:
    """Which errors a poll loop waits out: transient ones always, unreadable answers a few times.

    One garbled answer (a proxy hiccup, a truncated body) should not end a long wait; a server
    that keeps answering something unreadable should, with that error, not at the deadline.
    Neither does a host that is not there: `ServerUnreachableError` (raised once the connect
    budget is spent) ends the wait, and so does a web page where the API should answer
    (`NotFireworksAPIError`). Each error waited out is logged (`log_retry`), at WARNING
    from the `WARN_AFTER_FAILURES`-th in a row.
    """

    def __init__(self, *, not_found_ok: bool = False, unreadable_limit: int = 3) -> None:
        self._not_found_ok = not_found_ok
        self._unreadable_limit = unreadable_limit
        self._unreadable = 0
        self._failures = 0

    def absorbs(self, error: Exception) -> bool:
        """True to keep polling after `error`, False to raise it."""
        if is_transient(error, not_found_ok=self._not_found_ok):
            absorbed = True
        elif isinstance(error, NotFireworksAPIError):
            absorbed = False  # a web page where the API should be: waiting changes nothing
        elif isinstance(error, ResponseValidationError):
            self._unreadable += 1
            absorbed = self._unreadable <= self._unreadable_limit
        else:
            absorbed = False
        if absorbed:
            self._failures += 1
            if error not in _LOGGED:
                _LOGGED.add(error)
                expected = isinstance(error, APIStatusError) and error.status_code == 404
                log_retry(logger, error, failures=self._failures, quiet=expected)
        return absorbed

    def ok(self) -> None:
        """A readable answer arrived: the run of failures is over."""
        self._unreadable = 0
        self._failures = 0
