"""Sending a non-idempotent POST at most once per intended effect.

A create or hot-load POST whose answer was lost (or was a 408/5xx, or unreadable) may or may not
have landed. The caller reads back what the server now holds (`read_back`) and re-sends only if
that proves the POST did not land, after a jittered pause (`back_off`) inside the deadline.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TypeVar

from ._config import Deadline
from ._errors import APIConnectionError, APIStatusError, ResponseValidationError
from ._http import HTTPClient, is_transient

__all__ = ["back_off", "read_back"]

T = TypeVar("T")

#: Unreadable answers to a read-back tolerated before giving up.
READ_BACK_ATTEMPTS = 3


async def read_back(read: Callable[[], Awaitable[T]], lost: Exception) -> T:
    """Read what a request whose outcome is unknown did (a GET, or a hot-load status).

    An unreadable answer is read again a few times; if the read cannot get through at all,
    the original request's own failure is what the caller sees.
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
            raise lost from unreachable
    raise AssertionError("unreachable")


async def back_off(http: HTTPClient, attempt: int, deadline: Deadline, lost: Exception) -> None:
    """Pause before re-sending a POST that did not land; past the deadline, raise `lost`."""
    delay = http.retry.delay(attempt)
    if delay >= deadline.remaining():
        raise lost
    await http.sleep(delay)
    if deadline.expired:
        raise lost
