"""The account every control-plane path is under: given, from the environment, or resolved once."""

from __future__ import annotations

import anyio
import httpx

from . import _wire
from ._config import Deadline
from ._http import HTTPClient
from ._urls import build_url

__all__ = ["Account"]

_MAX_CACHED_URLS = 4096


class Account:
    """The account id, resolved at most once (`GET /v1/accounts?pageSize=2`) if not given.

    "Given" means passed or set in `FIREWORKS_ACCOUNT_ID` (`_config.resolve_account_id`).
    """

    def __init__(self, http: HTTPClient, base_url: httpx.URL, account_id: str | None) -> None:
        self._http = http
        self._base_url = base_url
        self.id = None if account_id is None else _wire.validate_account_id(account_id)
        self._lock: anyio.Lock | None = None
        #: Built URLs by path: parsing one costs more than the rest of a poll's bookkeeping.
        self._urls: dict[str, httpx.URL] = {}

    async def resolve(self, deadline: Deadline) -> str:
        if self.id is not None:
            return self.id
        if self._lock is None:
            self._lock = anyio.Lock()
        async with self._lock:
            if self.id is None:
                url = build_url(self._base_url, "/v1/accounts", {"pageSize": "2"})
                response = await self._http.request("GET", url, deadline=deadline)
                self.id = _wire.validate_account_id(_wire.account_from_accounts(response.json))
            return self.id

    async def url(self, path: str, deadline: Deadline) -> httpx.URL:
        """`{base_url}/v1/accounts/{account}/{path}`."""
        account = self.id if self.id is not None else await self.resolve(deadline)
        full = f"/v1/accounts/{account}/{path}"
        url = self._urls.get(full)
        if url is None:
            if len(self._urls) >= _MAX_CACHED_URLS:
                self._urls.clear()
            url = self._urls[full] = build_url(self._base_url, full)
        return url
