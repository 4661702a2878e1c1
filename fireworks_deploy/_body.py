"""Reading an answer's body: a bounded streaming read, bounded decompression, guarded JSON.

What it guarantees whatever a server sends:

* Bodies are streamed and never held beyond `max_response_bytes` after decompression (gzip and
  deflate are inflated in bounded steps, so a small compressed bomb cannot expand in memory);
  a larger body raises `ResponseTooLargeError`, an undecodable one `ResponseBodyError`.
* JSON nested deeper than `MAX_JSON_DEPTH`, or with more than `MAX_JSON_CONTAINERS` objects
  and arrays, is refused with `ResponseValidationError` (as is a body that is not JSON), never
  a raw `RecursionError`.
* The API key a server echoes back in a 2xx body is redacted from what we return.
* A web page where the API would answer JSON (any status but "busy, try again"), or a 2xx
  that is not JSON and does not claim to be, raises `NotFireworksAPIError`: the URL points
  somewhere else.
"""

from __future__ import annotations

import json
import re
import zlib
from typing import Any

import httpx

from ._errors import (
    NotFireworksAPIError,
    ResponseBodyError,
    ResponseTooLargeError,
    ResponseValidationError,
    redact_secret,
    redact_text,
)
from ._secrets import may_quote_key

__all__ = [
    "ACCEPT_ENCODING",
    "KEPT_TEXT_CHARS",
    "MAX_JSON_CONTAINERS",
    "MAX_JSON_DEPTH",
    "NOT_JSON",
    "json_too_deep",
    "load_json",
    "not_the_api",
    "read_body",
    "success_json",
]

#: The content codings we ask for, and the only ones we can inflate in bounded steps.
ACCEPT_ENCODING = "gzip, deflate"
#: JSON nested deeper than this is refused: no real answer comes close, and walking a deeper
#: structure (cattrs, redaction, repr) risks RecursionError.
MAX_JSON_DEPTH = 100
#: JSON with more objects and arrays than this is refused before parsing (a 200-deployment
#: list page has a few thousand): parsed, each costs ~30x its text, the most of any JSON.
MAX_JSON_CONTAINERS = 100_000
#: How much of a body that is not JSON an error keeps (after redaction).
KEPT_TEXT_CHARS = 16_384
#: `load_json`'s reason for a body that does not parse as JSON at all.
NOT_JSON = "is not JSON"
#: How much of a page that is not the API an error message quotes.
QUOTED_CHARS = 120
_TITLE = re.compile(r"<title[^>]*>(.*?)</title>", re.IGNORECASE | re.DOTALL)


def json_too_deep(value: Any, limit: int = MAX_JSON_DEPTH) -> bool:
    """Whether decoded JSON nests containers more than `limit` deep.

    Walked without recursion, holding one iterator per level (memory grows with the depth,
    not the width).
    """
    if not isinstance(value, (dict, list)):
        return False
    stack = [iter(value.values() if isinstance(value, dict) else value)]
    while stack:
        for child in stack[-1]:
            if isinstance(child, (dict, list)):
                if len(stack) >= limit:
                    return True
                stack.append(iter(child.values() if isinstance(child, dict) else child))
                break
        else:
            stack.pop()
    return False


def load_json(content: bytes) -> tuple[Any, str | None]:
    """(decoded JSON, None), or (None, why it is unreadable). Empty content is (None, None)."""
    if not content.strip():
        return None, None
    # Each object or array costs ~60-90 bytes once parsed (30x its two or three bytes of
    # text): bound their number before parsing, counting brackets in strings too.
    containers = content.count(b"{") + content.count(b"[")
    if containers > MAX_JSON_CONTAINERS:
        return None, f"has more than {MAX_JSON_CONTAINERS} objects and arrays"
    try:
        value = json.loads(content)
    except RecursionError:
        return None, "is nested too deeply"
    except (ValueError, UnicodeDecodeError):
        return None, NOT_JSON
    # Fewer brackets than levels allowed cannot nest too deep: most answers skip the walk.
    if containers > MAX_JSON_DEPTH and json_too_deep(value):
        return None, f"is nested more than {MAX_JSON_DEPTH} levels deep"
    return value, None


def _media_type(content_type: str | None) -> str:
    return (content_type or "").split(";", 1)[0].strip().lower()


def _claims_json(content_type: str | None, content: bytes) -> bool:
    """Whether an answer says it is JSON (its media type) or starts like JSON."""
    if _media_type(content_type).endswith(("/json", "+json")):
        return True
    return content.lstrip()[:1] in (b"{", b"[")


def _is_page(content_type: str | None, content: bytes) -> bool:
    """Whether an answer is a web page (HTML, XHTML, XML): says so, or starts with a tag."""
    media = _media_type(content_type)
    if media in ("text/html", "application/xhtml+xml") or media.endswith(("/xml", "+xml")):
        return True
    return content.lstrip()[:1] == b"<"


def _quoted(text: str) -> str:
    """What a page says, for a message: its HTML title, else its first characters."""
    title = _TITLE.search(text[:4096])  # a title is near the top; bounds the search
    return " ".join((title.group(1) if title else text).split())[:QUOTED_CHARS]


def not_the_api(
    response: httpx.Response,
    unreadable: str | None,
    *,
    method: str,
    url: httpx.URL,
    secret: str,
) -> NotFireworksAPIError | None:
    """`NotFireworksAPIError` for an answer that cannot be the API's, else None.

    That is a 2xx that is not JSON and does not claim to be, or an error status whose body is
    a web page. `unreadable` is `load_json`'s verdict on the body: JSON that is garbled, too
    deep or too wide, or a body that says it is JSON, is the API answering badly, not another
    server. The caller leaves out the "busy, try again" statuses.
    """
    content = response.content
    content_type = response.headers.get("content-type")
    if unreadable != NOT_JSON or _claims_json(content_type, content):
        return None
    if not response.is_success and not _is_page(content_type, content):
        return None
    kept = redact_text(response.text, secret)[:KEPT_TEXT_CHARS]
    quoted = _quoted(kept)
    return NotFireworksAPIError(
        f"{method} {url} answered HTTP {response.status_code} with "
        f"{content_type or 'no content type'} instead of JSON, so it does not look like the "
        "Fireworks API: check the URL (see base_url and the FIREWORKS_*_URL variables)"
        f"{f'; it said {quoted!r}' if quoted else ''}.",
        method=method,
        url=str(url),
        body=kept,
        status_code=response.status_code,
        content_type=content_type,
    )


def success_json(
    response: httpx.Response,
    body: Any,
    unreadable: str | None,
    *,
    method: str,
    url: httpx.URL,
    secret: str,
) -> Any:
    """A 2xx answer's decoded JSON (`load_json`'s result), with `secret` redacted from it.

    A body `load_json` found unreadable raises `ResponseValidationError`, quoting it redacted
    (`NotFireworksAPIError` when it is not JSON and does not claim to be).
    """
    if unreadable is not None:
        wrong = not_the_api(response, unreadable, method=method, url=url, secret=secret)
        if wrong is not None:
            raise wrong
        text = redact_text(response.text, secret)
        content_type = response.headers.get("content-type")
        raise ResponseValidationError(
            f"{method} {url} answered {response.status_code} "
            f"({content_type or 'no content type'}) with a body that "
            f"{unreadable}: {text[:200]!r}",
            method=method,
            url=str(url),
            body=text[:KEPT_TEXT_CHARS],
        )
    if body is not None and may_quote_key(response.content, secret):
        body = redact_secret(body, secret)
    return body


class _Inflater:
    """A gzip or deflate decoder whose every step is bounded in output (zlib `max_length`)."""

    def __init__(self, coding: str) -> None:
        self._deflate = coding == "deflate"
        wbits = zlib.MAX_WBITS if self._deflate else zlib.MAX_WBITS | 16
        self._zlib = zlib.decompressobj(wbits)
        self._first = True

    def inflate(self, data: bytes, max_length: int) -> bytes:
        """At most `max_length` bytes of output; a longer output means the limit is passed."""
        if self._first and data:
            self._first = False
            if self._deflate:
                # "deflate" is zlib-wrapped by the RFC but raw in practice: try both, as httpx.
                try:
                    return self._zlib.decompress(data, max_length)
                except zlib.error:
                    self._zlib = zlib.decompressobj(-zlib.MAX_WBITS)
        return self._zlib.decompress(data, max_length)

    def flush(self) -> bytes:
        return self._zlib.flush()


def _inflater(content_encoding: str) -> _Inflater | None:
    """The bounded decoder for a Content-Encoding; None for identity; ValueError if unknown."""
    codings = [c.strip().lower() for c in content_encoding.split(",") if c.strip()]
    codings = [c for c in codings if c != "identity"]
    if not codings:
        return None
    if len(codings) == 1 and codings[0] in ("gzip", "x-gzip", "deflate"):
        return _Inflater("deflate" if codings[0] == "deflate" else "gzip")
    raise ValueError(content_encoding)


async def read_body(response: httpx.Response, method: str, url: httpx.URL, limit: int) -> bytes:
    """The decoded body of a streamed `response`, never more than `limit` bytes of it in memory."""

    def answered() -> str:
        content_type = response.headers.get("content-type") or "no content type"
        return f"{method} {url} answered HTTP {response.status_code} ({content_type})"

    def body_error(message: str) -> ResponseBodyError:
        return ResponseBodyError(
            f"{answered()} {message}",
            method=method,
            url=str(url),
            status_code=response.status_code,
            content_type=response.headers.get("content-type"),
        )

    def too_large(seen: str) -> ResponseTooLargeError:
        return ResponseTooLargeError(
            f"{answered()} with a body of {seen}, over the {limit}-byte limit; reading was "
            "stopped. Raise max_response_bytes if such answers are expected.",
            method=method,
            url=str(url),
            status_code=response.status_code,
            content_type=response.headers.get("content-type"),
            limit_bytes=limit,
        )

    if response.is_stream_consumed:
        # An in-process transport (a mock) may hand back a response already read and
        # decoded: nothing more will be allocated, but the limit still applies.
        ready = response.content
        if len(ready) > limit:
            raise too_large(f"{len(ready)} bytes")
        return ready
    coding = response.headers.get("content-encoding")
    try:
        inflater = None if coding is None else _inflater(coding)
    except ValueError:
        raise body_error(
            f"with Content-Encoding {coding!r}; only {ACCEPT_ENCODING} (which we ask for) "
            "can be read."
        ) from None
    if inflater is None:
        declared = response.headers.get("content-length")
        if declared is not None and declared.isdigit() and int(declared) > limit:
            raise too_large(f"{int(declared)} bytes (Content-Length)")
    body = bytearray()
    try:
        # The transport's stream itself: `aiter_raw()` would re-chunk and re-wrap every read.
        response.is_stream_consumed = True
        stream = response.stream
        if not isinstance(stream, httpx.AsyncByteStream):
            raise TypeError("read_body reads the streams of async transports only.")
        async for chunk in stream:
            data = chunk if inflater is None else inflater.inflate(chunk, limit - len(body) + 1)
            if len(body) + len(data) > limit:
                raise too_large("more than that")
            body += data
        if inflater is not None:
            data = inflater.flush()
            if len(body) + len(data) > limit:
                raise too_large("more than that")
            body += data
    except zlib.error as exc:
        raise body_error(f"with a {coding} body that could not be decompressed ({exc}).") from None
    return bytes(body)
