"""Keeping the API key to ourselves, whatever a server or the network path does.

* The key a server echoes back is redacted from httpx/httpcore log records (their DEBUG traces
  quote response headers) for as long as the client that holds it lives.
* The key is never sent over plain http:// to a host that is not loopback without an
  `InsecureTransportWarning` (once per client) and a WARNING log. No warning is given when a
  custom transport other than `httpx.AsyncHTTPTransport` is in use (an ASGI app or a mock
  answers in process, so nothing travels).
"""

from __future__ import annotations

import functools
import ipaddress
import logging
import re
import warnings
import weakref

import httpx

from ._errors import MIN_SEARCHED_SECRET_LEN, InsecureTransportWarning, redact_text

__all__ = ["InsecureTransportCheck", "is_loopback", "may_quote_key", "redact_in_logs"]

logger = logging.getLogger(__name__)


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


def redact_in_logs(owner: object, secret: str) -> None:
    """Keep `secret` out of httpx/httpcore log records for as long as `owner` lives."""
    for name in _THIRD_PARTY_LOGGERS:
        third_party = logging.getLogger(name)
        if _LOG_FILTER not in third_party.filters:
            third_party.addFilter(_LOG_FILTER)
    _LOG_FILTER.secrets[id(owner)] = secret
    weakref.finalize(owner, _LOG_FILTER.secrets.pop, id(owner), None)


def may_quote_key(content: bytes, secret: str) -> bool:
    """Cheap pre-check before walking a 2xx body for the key (escapes could hide it).

    A short key is redacted only where a whole value is the key (or `Bearer <key>`), so only
    such a JSON string can need the walk: a one-letter key found in every body must not make
    every answer pay for it.
    """
    if b"\\" in content:
        return True
    key = secret.encode()
    if len(secret) >= MIN_SEARCHED_SECRET_LEN:
        return key in content
    whole_value = rb'"\s*(?:[Bb][Ee][Aa][Rr][Ee][Rr]\s+)?' + re.escape(key) + rb'\s*"'
    return re.search(whole_value, content) is not None


@functools.lru_cache(maxsize=256)
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


class InsecureTransportCheck:
    """Warns once per client before the key crosses a network in clear text."""

    def __init__(self, transport: httpx.AsyncBaseTransport | None) -> None:
        #: Whether requests really travel over the network (no warning for in-process ones).
        self._networked = transport is None or isinstance(transport, httpx.AsyncHTTPTransport)
        self._warned = False

    def check(self, url: httpx.URL) -> None:
        """Warn (and log) if `url` sends the key over plain http:// beyond this machine.

        Called from `HTTPClient.send_once`, so the warning points at the code that made the
        request (`stacklevel`: this method, `send_once`, `request`, then the caller).
        """
        if self._warned or url.scheme != "http" or not self._networked or is_loopback(url.host):
            return
        self._warned = True
        message = (
            f"Sending the API key over plain http:// to {url.host}, which is not a loopback "
            "address: anyone on the path can read it. Use https://, or a loopback address for "
            "a local control plane."
        )
        logger.warning(message)
        warnings.warn(message, InsecureTransportWarning, stacklevel=4)
