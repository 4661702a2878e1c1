"""The inference gateway: the completions probe behind readiness, and warm-up."""

from __future__ import annotations

import time

import anyio
import httpx

from . import _wire
from ._config import Deadline
from ._errors import (
    APIConnectionError,
    AuthenticationError,
    PermissionDeniedError,
    ResponseValidationError,
    ServerUnreachableError,
    WarmupError,
)
from ._failures import parse_retry_after
from ._http import HTTPClient
from ._models import WarmupResult
from ._urls import build_url

__all__ = ["COMPLETIONS_PATH", "Inference"]

COMPLETIONS_PATH = "/inference/v1/completions"


class Inference:
    """Completions requests against one inference gateway."""

    def __init__(self, http: HTTPClient, inference_url: httpx.URL) -> None:
        self._http = http
        self._url = build_url(inference_url, COMPLETIONS_PATH)

    async def completion_once(
        self, model: str, deadline: Deadline, attempt_timeout_s: float, what: str
    ) -> httpx.Response:
        """One completions request (a probe or a warm-up): never retried; a refused key raises."""
        response = await self._http.send_once(
            "POST",
            self._url,
            deadline=deadline,
            attempt_timeout_s=attempt_timeout_s,
            json_body=_wire.completion_body(model),
            gateway=True,
        )
        if response.status_code in (401, 403):
            cls = AuthenticationError if response.status_code == 401 else PermissionDeniedError
            raise cls(
                f"{what} of {model} was refused with HTTP {response.status_code}: "
                "check the API key.",
                status_code=response.status_code,
                method="POST",
                url=str(self._url),
            )
        return response

    async def probe(self, model: str, deadline: Deadline) -> bool:
        """One completions request: 200 means serving; auth failures raise; anything else
        (no answer, an unreadable one) is 'not yet'."""
        try:
            response = await self.completion_once(
                model, deadline, self._http.timeouts.probe_s, "The completions probe"
            )
        except (APIConnectionError, ResponseValidationError):
            return False
        return response.status_code == 200

    async def warmup(
        self, model: str, max_retries: int, retry_interval_s: float, deadline: Deadline
    ) -> WarmupResult:
        """Send completions until one answers 200; raise `WarmupError` if none does."""
        started = time.monotonic()
        last_status: int | None = None
        last_reason = "no attempt made"
        attempts = 0
        for attempt in range(1, max_retries + 1):
            attempts = attempt
            retry_after = None
            try:
                response = await self.completion_once(
                    model, deadline, self._http.timeouts.warmup_s, "Warm-up"
                )
            except ServerUnreachableError:
                raise  # nothing listens there: trying again for minutes changes nothing
            except (APIConnectionError, ResponseValidationError) as exc:
                last_reason = str(exc)  # no answer, or one too large to read: try again
            else:
                if response.status_code == 200:
                    return WarmupResult(
                        model=model,
                        attempts=attempt,
                        status_code=200,
                        elapsed_s=time.monotonic() - started,
                    )
                last_status = response.status_code
                last_reason = f"HTTP {response.status_code}"
                retry_after = self._http.retry.cap_retry_after(
                    parse_retry_after(response.headers.get("retry-after"))
                )
            if attempt == max_retries:
                break
            delay = max(retry_interval_s, retry_after or 0.0)
            retry_in = deadline.connect_retry_in()  # a host that refused: try again before
            if retry_in is not None:  # its connect budget runs out, so warm-up fails fast
                delay = min(delay, retry_in)
            if delay >= deadline.remaining():
                break
            await anyio.sleep(delay)
        raise WarmupError(
            f"Warm-up of {model} got no 200 in {attempts} attempt(s) over "
            f"{time.monotonic() - started:.1f}s (last: {last_reason}).",
            model=model,
            attempts=attempts,
            last_status=last_status,
        )
