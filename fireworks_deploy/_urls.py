"""Where requests go and which extra headers they carry, validated before any request."""

from __future__ import annotations

from collections.abc import Mapping

import httpx

from ._errors import InvalidConfigError

__all__ = ["build_url", "check_additional_headers", "parse_base_url"]

_PROTECTED_HEADERS = frozenset({"x-api-key", "authorization"})


def parse_base_url(value: str, name: str) -> httpx.URL:
    """Validate a base URL before any request; trailing slashes are dropped."""
    if not isinstance(value, str) or not value.strip():
        raise InvalidConfigError(f"{name} must be a non-empty URL string, got {value!r}.")
    try:
        url = httpx.URL(value.strip())
    except (httpx.InvalidURL, TypeError) as exc:
        raise InvalidConfigError(f"{name} {value!r} is not a valid URL: {exc}.") from None
    if url.scheme not in ("http", "https") or not url.host:
        raise InvalidConfigError(
            f"{name} {value!r} must be an absolute http:// or https:// URL with a host."
        )
    if url.query or url.fragment:
        raise InvalidConfigError(f"{name} {value!r} must not carry a query or fragment.")
    if url.userinfo:
        raise InvalidConfigError(f"{name} must not embed credentials; pass api_key instead.")
    return url.copy_with(path=url.path.rstrip("/") or "")


def build_url(base: httpx.URL, path: str, params: Mapping[str, str] | None = None) -> httpx.URL:
    """`base` + `path` (which starts with '/'), never doubling the slash, params URL-encoded."""
    url = base.copy_with(path=base.path.rstrip("/") + path)
    return url.copy_merge_params(params) if params else url


def check_additional_headers(headers: Mapping[str, str] | None) -> dict[str, str]:
    """Reject headers that are malformed or would silently replace authentication."""
    if headers is None:
        return {}
    if not isinstance(headers, Mapping):
        raise InvalidConfigError("additional_headers must be a mapping of str to str.")
    checked: dict[str, str] = {}
    for name, value in headers.items():
        if not isinstance(name, str) or not isinstance(value, str):
            raise InvalidConfigError(
                f"additional_headers must map str to str; got {type(name).__name__} to "
                f"{type(value).__name__}."
            )
        if (
            not name
            or any(c in name for c in ' :\r\n\t\x00"(),/;<=>?@[\\]{}')
            or not (name.isascii() and name.isprintable())
        ):
            raise InvalidConfigError(f"additional_headers has an invalid header name {name!r}.")
        if not (value.isascii() and value.isprintable()):
            raise InvalidConfigError(
                f"additional_headers value of {name!r} must be printable ASCII (no line breaks "
                "or control characters)."
            )
        if name.lower() in _PROTECTED_HEADERS:
            raise InvalidConfigError(
                f"additional_headers may not set {name!r}: authentication comes from api_key, "
                "so a header cannot silently replace it."
            )
        checked[name] = value
    return checked
