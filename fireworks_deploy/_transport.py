"""Which transport carries our requests, and an aiohttp one for httpx (the `fast` extra).

httpx's own transport (httpcore over anyio) costs far more CPU per request than aiohttp: with
hundreds of concurrent waits the client saturates a core long before the server does, and the
pool's `has_expired()` scan grows with every pooled connection. With the `fast` extra installed
(`pip install 'fireworks-deploy[fast]'`) and the code running on asyncio, `HTTPClient` puts
`AiohttpTransport` under its pooled `httpx.AsyncClient`s instead: the same httpx requests,
responses and exceptions, a fraction of the CPU. Trio keeps httpcore; a `transport=` given to
the manager always wins.

`FIREWORKS_DEPLOY_TRANSPORT` forces a choice (for tests and debugging): `httpcore`, or
`aiohttp` (which then must be installed; trio still gets httpcore); unset or `auto` is the
default rule above.

`AiohttpTransport` is a drop-in `httpx.AsyncBaseTransport`, built for how `HTTPClient` reads:

* bodies are streamed and never decompressed (`_body` decodes gzip/deflate itself, bounded);
* the timeouts of each request (`request.extensions["timeout"]`) apply: connect and pool to
  opening a connection, read to every read of the answer;
* aiohttp's errors become httpx's: a refused or unresolvable host is `httpx.ConnectError`
  caused by the original `OSError` (so `_failures.unreachable_cause` classifies it), a connect
  timeout `httpx.ConnectTimeout`, a read timeout `httpx.ReadTimeout`, a dropped connection or
  a malformed answer `httpx.RemoteProtocolError`, any other socket error `httpx.ReadError`;
* a body not read to its end closes its connection instead of returning it to the pool;
* `aclose()` closes the session and every pooled connection.
"""

from __future__ import annotations

import contextlib
import functools
import importlib.metadata
import importlib.util
import os
import re
import ssl
from collections.abc import AsyncIterator, Iterator, Mapping
from typing import TYPE_CHECKING, Any

import httpx
import sniffio

from ._errors import InvalidConfigError

if TYPE_CHECKING:
    import aiohttp

__all__ = [
    "MIN_AIOHTTP",
    "TRANSPORT_ENV",
    "AiohttpTransport",
    "aiohttp_available",
    "default_transport",
    "transport_choice",
]

#: Forces the transport under our pooled clients: "httpcore", "aiohttp" or "auto" (the default).
TRANSPORT_ENV = "FIREWORKS_DEPLOY_TRANSPORT"
_CHOICES = ("auto", "httpcore", "aiohttp")


#: The oldest aiohttp with the exceptions `_mapped_errors` reads (ConnectionTimeoutError, ...).
MIN_AIOHTTP = (3, 10)


@functools.cache
def aiohttp_available() -> bool:
    """Whether aiohttp (`MIN_AIOHTTP` or newer) is installed: the `fast` extra."""
    if importlib.util.find_spec("aiohttp") is None:
        return False
    try:
        found = importlib.metadata.version("aiohttp")
    except importlib.metadata.PackageNotFoundError:
        return False
    parts = tuple(int(p) for p in re.findall(r"\d+", found)[:2])
    return parts >= MIN_AIOHTTP


def transport_choice(env: Mapping[str, str] | None = None) -> str:
    """`FIREWORKS_DEPLOY_TRANSPORT`, validated: "auto", "httpcore" or "aiohttp".

    `InvalidConfigError` for any other value, or for "aiohttp" when aiohttp is not installed.
    """
    env = os.environ if env is None else env
    raw = env.get(TRANSPORT_ENV, "")
    choice = raw.strip().lower() or "auto"
    if choice not in _CHOICES:
        raise InvalidConfigError(
            f"{TRANSPORT_ENV}={raw!r} is not one of {', '.join(_CHOICES)} (or unset)."
        )
    if choice == "aiohttp" and not aiohttp_available():
        raise InvalidConfigError(
            f"{TRANSPORT_ENV}=aiohttp needs aiohttp: pip install 'fireworks-deploy[fast]'."
        )
    return choice


def default_transport(
    choice: str, *, verify: bool | ssl.SSLContext, limits: httpx.Limits
) -> httpx.AsyncBaseTransport | None:
    """The transport for a new pooled client: an `AiohttpTransport`, or None for httpx's own.

    aiohttp when `choice` (from `transport_choice`) is "auto" or "aiohttp", aiohttp is installed
    and the running async library is asyncio; httpcore otherwise (trio included, even when
    forced: aiohttp runs on asyncio only).
    """
    if choice == "httpcore" or not aiohttp_available():
        return None
    try:
        library = sniffio.current_async_library()
    except sniffio.AsyncLibraryNotFoundError:
        return None
    if library != "asyncio":
        return None
    return AiohttpTransport(verify=verify, limits=limits)


class _AiohttpStream(httpx.AsyncByteStream):
    """An aiohttp response's raw (still encoded) body, chunk by chunk as it arrives."""

    def __init__(self, response: aiohttp.ClientResponse, request: httpx.Request) -> None:
        self._response = response
        self._request = request

    async def __aiter__(self) -> AsyncIterator[bytes]:
        content = self._response.content
        while True:
            with _mapped_errors(self._request):
                chunk = await content.readany()
            if not chunk:
                return
            yield chunk

    async def aclose(self) -> None:
        # No await before the work is done, so a cancelled caller still releases or closes.
        response = self._response
        if response.content.is_eof() and response.content.exception() is None:
            response.release()  # read whole: the connection goes back to the pool
        else:
            response.close()  # part of the body is still on the wire: drop the connection


@contextlib.contextmanager
def _mapped_errors(request: httpx.Request) -> Iterator[None]:
    """aiohttp's exceptions as the httpx ones httpcore would have raised."""
    import aiohttp  # noqa: PLC0415 - the fast extra is optional

    try:
        yield
    except aiohttp.ClientConnectorError as exc:
        # Refused, unresolvable, unreachable, TLS: the OSError is the cause, as with httpcore.
        raise httpx.ConnectError(str(exc) or type(exc).__name__, request=request) from (
            exc.os_error
        )
    except aiohttp.ConnectionTimeoutError as exc:
        raise httpx.ConnectTimeout(str(exc) or "connect timed out", request=request) from exc
    except aiohttp.ServerTimeoutError as exc:
        raise httpx.ReadTimeout(str(exc) or "read timed out", request=request) from exc
    except (
        aiohttp.ServerDisconnectedError,
        aiohttp.ClientPayloadError,
        aiohttp.ClientResponseError,
    ) as exc:
        raise httpx.RemoteProtocolError(str(exc) or type(exc).__name__, request=request) from exc
    except TimeoutError as exc:
        raise httpx.ReadTimeout(str(exc) or "read timed out", request=request) from exc
    except (aiohttp.ClientError, OSError) as exc:
        raise httpx.ReadError(str(exc) or type(exc).__name__, request=request) from exc


def _seconds(value: object) -> float | None:
    return float(value) if isinstance(value, (int, float)) else None


class AiohttpTransport(httpx.AsyncBaseTransport):
    """An `httpx.AsyncBaseTransport` over one `aiohttp.ClientSession` (HTTP/1.1, asyncio only).

    `limits` bound the pool (`max_connections`, 0 or None for no bound) and how long an idle
    connection is kept (`keepalive_expiry`). The session is created on first use, on the
    running loop; `aclose()` closes it. No proxies, cookies or redirects here: `httpx` and our
    client handle (or refuse) those above the transport.
    """

    def __init__(
        self,
        *,
        verify: bool | ssl.SSLContext = True,
        limits: httpx.Limits | None = None,
    ) -> None:
        self._verify = verify
        self._limits = limits or httpx.Limits()
        self._session: aiohttp.ClientSession | None = None
        self._closed = False

    @functools.cached_property
    def _ssl(self) -> ssl.SSLContext | bool:
        """The TLS settings, made on the first https:// request (loading the CA bundle costs
        tens of milliseconds that plain-http use, such as a local plane, never needs)."""
        verify = self._verify
        if isinstance(verify, ssl.SSLContext):
            return verify
        return httpx.create_ssl_context(verify=verify) if verify else False

    def _session_now(self) -> aiohttp.ClientSession:
        if self._closed:
            raise RuntimeError("This transport is closed.")
        if self._session is None:
            import aiohttp  # noqa: PLC0415 - the fast extra is optional

            connector = aiohttp.TCPConnector(
                limit=self._limits.max_connections or 0,
                limit_per_host=0,
                keepalive_timeout=self._limits.keepalive_expiry or 0,
                # The thread-pool resolver raises socket.gaierror, which `_failures` reads.
                resolver=aiohttp.ThreadedResolver(),
            )
            self._session = aiohttp.ClientSession(
                connector=connector,
                auto_decompress=False,
                cookie_jar=aiohttp.DummyCookieJar(),
                trust_env=False,
                # httpx already set every header it means to send.
                skip_auto_headers=("User-Agent", "Accept", "Accept-Encoding", "Content-Type"),
            )
        return self._session

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        import aiohttp  # noqa: PLC0415 - the fast extra is optional
        import yarl  # noqa: PLC0415 - comes with aiohttp

        session = self._session_now()
        timeouts: Mapping[str, Any] = request.extensions.get("timeout", {})
        connect = _seconds(timeouts.get("connect"))
        pool = _seconds(timeouts.get("pool"))
        timeout = aiohttp.ClientTimeout(
            total=None,
            # aiohttp's `connect` covers the wait for a pooled connection and opening one.
            connect=None if connect is None or pool is None else connect + pool,
            sock_connect=connect,
            sock_read=_seconds(timeouts.get("read")),
        )
        body = await request.aread()
        headers = [
            (name, value)
            for name, value in request.headers.multi_items()
            if name.lower() != "transfer-encoding"  # the body is whole: a Content-Length
        ]
        with _mapped_errors(request):
            response = await session.request(
                request.method,
                yarl.URL(str(request.url), encoded=True),
                headers=headers,
                data=body or None,
                allow_redirects=False,
                auto_decompress=False,
                ssl=self._ssl if request.url.scheme == "https" else True,
                compress=False,
                timeout=timeout,
            )
        extensions: dict[str, Any] = {"http_version": b"HTTP/1.1"}
        if response.reason:
            extensions["reason_phrase"] = response.reason.encode("latin-1", "replace")
        return httpx.Response(
            status_code=response.status,
            headers=response.raw_headers,
            stream=_AiohttpStream(response, request),
            request=request,
            extensions=extensions,
        )

    async def aclose(self) -> None:
        self._closed = True
        session, self._session = self._session, None
        if session is not None:
            await session.close()
