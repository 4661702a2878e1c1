"""What the SDK logs while a command runs, shown to the person waiting for it.

The SDK's loggers (`fireworks_deploy.*`) say when a request failed and will be retried, what
they recovered from (a create whose answer was lost), and warn about what a user should know
(the key about to cross a network in clear text, a hot-load sent again). Without a handler
those INFO records go nowhere, and a command against a URL where nothing listens looks hung
until its deadline. While a command runs, `notices` shows them on stderr: `retrying: GET
<url>: connection refused; next attempt in 0.4s`, `warning: <message>`. The one record per
operation that `fireworks_deploy._observe` writes for telemetry is not shown: the command
reports its own outcome.
"""

from __future__ import annotations

import logging
import re
import time
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

from .._errors import InsecureTransportWarning

if TYPE_CHECKING:
    from ._common import Output

__all__ = ["LOGGER", "NoticeHandler", "describe", "notices"]

LOGGER = "fireworks_deploy"
#: The telemetry logger: one record per operation (`operation`, `outcome`, ...), not shown.
TELEMETRY_LOGGER = "fireworks_deploy._observe"
#: The same notice again within this many seconds is not repeated (a wait and its progress
#: display may retry the same read at once).
REPEAT_S = 1.0
#: A retry record's message without the structured fields: "... retrying in 0.25s".
_RETRYING_IN = re.compile(r"[;,.]?\s*retrying in ([0-9]+(?:\.[0-9]+)?)\s*s\.?\s*$", re.I)


def _telemetry(record: logging.LogRecord) -> bool:
    return record.name == TELEMETRY_LOGGER or (
        hasattr(record, "operation") and hasattr(record, "outcome")
    )


def _retry(record: logging.LogRecord) -> str | None:
    """`retrying: <what>: <reason>; next attempt in Ns` for a retry record, else None.

    A retry record carries `retry_reason` (and `retry_method`, `retry_url`, `retry_delay_s`,
    None when the next try is on a poll schedule); a record without them counts as one if its
    message ends `retrying in N s`, its reason being the exception it carries.
    """
    reason = getattr(record, "retry_reason", None)
    if reason is not None:
        method = getattr(record, "retry_method", None)
        url = getattr(record, "retry_url", None)
        what = " ".join(str(part) for part in (method, url) if part)
        delay = getattr(record, "retry_delay_s", None)
        then = "polling on" if delay is None else f"next attempt in {float(delay):.1f}s"
        return f"retrying: {f'{what}: ' if what else ''}{reason}; {then}"
    message = record.getMessage()
    match = _RETRYING_IN.search(message)
    if match is None:
        return None
    args = record.args if isinstance(record.args, tuple) else ()
    cause = next((a for a in args if isinstance(a, BaseException)), None)
    text = str(cause) if cause is not None and str(cause) else message[: match.start()]
    return f"retrying: {text.strip().rstrip('.')}; next attempt in {float(match.group(1)):.1f}s"


def describe(record: logging.LogRecord) -> str | None:
    """The line a record is shown as, or None if it is not shown (telemetry)."""
    if _telemetry(record):
        return None
    retry = _retry(record)
    if retry is not None:
        return retry
    message = record.getMessage()
    return f"warning: {message}" if record.levelno >= logging.WARNING else message


class NoticeHandler(logging.Handler):
    """Shows `fireworks_deploy` records at INFO and above through `Output.notice`."""

    def __init__(self, out: Output) -> None:
        super().__init__(logging.INFO)
        self._out = out
        self._last = ""
        self._last_at = float("-inf")

    def emit(self, record: logging.LogRecord) -> None:
        try:
            text = describe(record)
        except Exception:  # a malformed record must not break the command
            self.handleError(record)
            return
        if text is None:
            return
        key = text.split("; next attempt in ", 1)[0].split("; polling on", 1)[0]
        now = time.monotonic()
        if key == self._last and now - self._last_at < REPEAT_S:
            return
        self._last, self._last_at = key, now
        self._out.notice(text, warning=record.levelno >= logging.WARNING)


@contextmanager
def notices(out: Output) -> Iterator[None]:
    """Show the SDK's retries and warnings on stderr for the duration of the block.

    Lowers the `fireworks_deploy` logger to INFO if it is above (restored after); the
    `InsecureTransportWarning` is not also shown by `warnings`, since its WARNING record is.
    """
    logger = logging.getLogger(LOGGER)
    handler = NoticeHandler(out)
    level = logger.level
    if logger.getEffectiveLevel() > logging.INFO:
        logger.setLevel(logging.INFO)
    logger.addHandler(handler)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", InsecureTransportWarning)
            yield
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)
