"""Sending a non-idempotent POST at most once per intended effect.

A create or hot-load POST is sent with no transport-level retry. When it fails in a way that it
may have landed anyway (an answer lost in transit, a 408/429/5xx, an unreadable 2xx), the caller
reads back what the server now holds (`read_back`) and re-sends only if that proves the POST did
not land, after a jittered pause (`back_off`) inside the deadline. A connection that never opened
proves nothing was sent, and is re-sent after the same pause.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TypeVar

from ._config import Deadline
from ._errors import (
    APIConnectionError,
    APIStatusError,
    APITimeoutError,
    NotFireworksAPIError,
    ResponseValidationError,
    ServerUnreachableError,
)
from ._failures import RETRYABLE_STATUSES, is_transient
from ._http import HTTPClient

__all__ = ["back_off", "never_sent", "read_back", "worth_resending"]

T = TypeVar("T")

#: Unreadable answers to a read-back tolerated before giving up.
READ_BACK_ATTEMPTS = 3


def never_sent(error: Exception) -> bool:
    """The request provably never reached the server (the connection did not open)."""
    return isinstance(error, APIConnectionError) and not error.request_sent


def worth_resending(error: Exception) -> bool:
    """A failure after which the POST may be sent again, once a read-back shows it did not land.

    Lost answers, 408/429/5xx and unreadable answers; any other status is the server's verdict.
    Not a host that stayed unreachable for the whole connect budget, nor an error page that is
    not the Fireworks API at all: sending again would change nothing. (A 2xx that is not JSON
    may still have landed behind a proxy, so it is read back like any unreadable answer.)
    """
    if isinstance(error, ServerUnreachableError):
        return False
    if isinstance(error, NotFireworksAPIError) and (error.status_code or 0) >= 400:
        return False
    if isinstance(error, APIStatusError):
        return error.status_code in RETRYABLE_STATUSES
    return isinstance(error, (APIConnectionError, ResponseValidationError))


async def read_back(read: Callable[[], Awaitable[T]], lost: Exception) -> T:
    """Read what a request whose outcome is unknown did (a GET, or a hot-load status).

    An unreadable answer is read again a few times; if the read cannot get through at all,
    the original request's own failure is what the caller sees (unless that was a mere
    timeout and the read could not even connect: then the refusal is).
    """
    for attempt in range(READ_BACK_ATTEMPTS):
        try:
            return await read()
        except ResponseValidationError:
            if attempt + 1 == READ_BACK_ATTEMPTS:
                raise
        except (APIConnectionError, APIStatusError) as unreachable:
            if not is_transient(unreachable, not_found_ok=True):
                raise
            if isinstance(lost, APITimeoutError) and never_sent(unreachable):
                # The POST only timed out; the read could not even connect: that says more.
                raise unreachable from lost
            raise lost from unreachable
    raise AssertionError("unreachable")


async def back_off(http: HTTPClient, attempt: int, deadline: Deadline, lost: Exception) -> None:
    """Pause before re-sending a POST that did not land (honouring a capped Retry-After);
    past the deadline, raise `lost`."""
    retry_after = lost.retry_after_s if isinstance(lost, APIStatusError) else None
    delay = http.retry.delay(attempt, retry_after)
    if delay >= deadline.remaining():
        raise lost
    await http.sleep(delay)
    if deadline.expired:
        raise lost
