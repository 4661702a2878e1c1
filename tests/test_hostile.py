"""Hostile servers on loopback: what any answer can cost us is bounded in memory and time.

The memory tests run the server and the client in a fresh subprocess (tests/hostile_kit.py)
and read its peak RSS from /proc, so this process never holds a hostile body and its own
memory does not blur the numbers. The rest run in process against the same servers.
"""

from __future__ import annotations

import gzip
import json
import logging
import subprocess
import sys
import time
import zlib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from hostile_kit import (
    ACCOUNT,
    API_KEY,
    SCENARIOS,
    HostileServer,
    Writer,
    _send,
    deployment_body,
    hostile_server,
)

from fireworks_deploy import (
    APITimeoutError,
    AsyncDeploymentManager,
    AuthenticationError,
    BadRequestError,
    InternalServerError,
    NotFireworksAPIError,
    ResponseValidationError,
    RetryPolicy,
    Timeouts,
)
from fireworks_deploy._config import Deadline
from fireworks_deploy._errors import ResponseBodyError, ResponseTooLargeError
from fireworks_deploy._failures import error_retry_after
from fireworks_deploy._http import HTTPClient

KIT = Path(__file__).with_name("hostile_kit.py")
#: Peak RSS growth allowed for one hostile answer, whatever it is.
RSS_BUDGET_KIB = 50 * 1024
#: Generous: every hostile answer must end well inside this (the operation deadline is 2.5 s).
ENDS_WITHIN_S = 10.0


def _timeouts(attempt_s: float = 1.0, operation_s: float = 2.5) -> Timeouts:
    return Timeouts(
        connect_s=2.0,
        control_plane_s=attempt_s,
        hotload_post_s=attempt_s,
        hotload_status_s=attempt_s,
        probe_s=attempt_s,
        warmup_s=attempt_s,
        operation_s=operation_s,
    )


@pytest.fixture
async def server(request: pytest.FixtureRequest) -> AsyncIterator[HostileServer]:
    async with hostile_server(request.param) as srv:
        yield srv


def _manager(url: str, **kwargs: Any) -> AsyncDeploymentManager:
    kwargs.setdefault("timeouts", _timeouts())
    kwargs.setdefault("retry", RetryPolicy(initial_s=0.01, max_s=0.05, max_retry_after_s=0.2))
    return AsyncDeploymentManager(api_key=API_KEY, account_id=ACCOUNT, base_url=url, **kwargs)


# -- memory: each hostile answer in its own process ------------------------------------------

MEMORY_CASES = [
    ("endless", "get", "ResponseTooLargeError"),
    ("endless_no_length", "get", "ResponseTooLargeError"),
    ("declared_huge", "get", "ResponseTooLargeError"),
    ("trickle", "get", "APITimeoutError"),
    ("gzip_bomb", "get", "ResponseTooLargeError"),
    ("gzip_bomb_2mib", "get", "ResponseTooLargeError"),
    ("deflate_bomb", "get", "ResponseTooLargeError"),
    ("deep_json", "get", "ResponseValidationError"),
    ("deep_json_500", "get", "ResponseValidationError"),
    ("wide_json", "get", "ResponseValidationError"),
    ("wide_strings", "get", "ResponseValidationError"),
    ("wide_under_cap", "get", "ResponseValidationError"),
    ("endless", "send_once", "ResponseTooLargeError"),
    ("trickle", "send_once", "APITimeoutError"),
    ("gzip_bomb", "send_once", "ResponseTooLargeError"),
    ("gzip_bomb_2mib", "send_once", "ResponseTooLargeError"),
]


def probe(scenario: str, mode: str) -> dict[str, Any]:
    """Run one scenario in a fresh process; its JSON report."""
    done = subprocess.run(  # noqa: S603 - our own interpreter and script
        [sys.executable, str(KIT), scenario, mode],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    report: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return report


@pytest.mark.parametrize(("scenario", "mode", "error"), MEMORY_CASES)
def test_peak_rss_stays_bounded(scenario: str, mode: str, error: str) -> None:
    """Whatever the server sends, the client's peak RSS grows < 50 MB and the call ends typed."""
    report = probe(scenario, mode)
    assert report["error"] == error, report
    assert report["growth_kib"] < RSS_BUDGET_KIB, report
    assert report["elapsed_s"] < ENDS_WITHIN_S, report
    assert not report["key_leaked"], report


# -- bounded reads, in process ---------------------------------------------------------------


@pytest.mark.parametrize("server", ["endless"], indirect=True)
async def test_too_large_carries_what_is_known(server: HostileServer) -> None:
    """An endless body raises ResponseTooLargeError with status, URL, content type and limit."""
    async with _manager(server.url) as fw:
        with pytest.raises(ResponseTooLargeError) as caught:
            await fw.get("d")
    error = caught.value
    assert isinstance(error, ResponseValidationError)
    assert error.status_code == 200
    assert error.content_type == "application/json"
    assert error.url is not None
    assert error.url.endswith("/v1/accounts/acme/deployments/d")
    assert error.limit_bytes == 2 * 1024 * 1024
    assert "max_response_bytes" in str(error)


@pytest.mark.parametrize("server", ["trickle"], indirect=True)
async def test_trickle_ends_by_the_deadline(server: HostileServer) -> None:
    """A body trickling forever cannot hold an operation past its deadline."""
    started = time.monotonic()
    async with _manager(server.url, timeouts=_timeouts(0.5, 1.5)) as fw:
        with pytest.raises(APITimeoutError):
            await fw.get("d")
    assert time.monotonic() - started < ENDS_WITHIN_S


@pytest.mark.parametrize("server", ["trickle"], indirect=True)
async def test_trickle_on_send_once_ends_by_its_deadline(server: HostileServer) -> None:
    """A completions probe against a trickle ends when the probe's deadline does."""
    async with _manager(server.url) as fw:
        started = time.monotonic()
        with pytest.raises(APITimeoutError):
            await fw._http.send_once(
                "POST",
                httpx.URL(server.url + "/inference/v1/completions"),
                deadline=Deadline(0.5),
                attempt_timeout_s=30,
                json_body={},
                gateway=True,
            )
    assert time.monotonic() - started < ENDS_WITHIN_S


@pytest.mark.parametrize("server", ["gzip_bomb", "deflate_bomb"], indirect=True)
async def test_compression_bombs_stop_at_the_limit(server: HostileServer) -> None:
    """gzip and deflate bombs are inflated only up to the limit, then refused."""
    async with _manager(server.url) as fw:
        with pytest.raises(ResponseTooLargeError):
            await fw.get("d")


def _fixed(body: bytes, headers: dict[str, str], status: int = 200) -> HostileServer:
    async def handler(path: str, request_headers: dict[str, str], writer: Writer) -> None:
        await _send(writer, body, status, headers)

    return HostileServer(handler)


@pytest.mark.parametrize(
    ("encoding", "compress"),
    [
        ("gzip", gzip.compress),
        ("deflate", zlib.compress),  # zlib-wrapped, as the RFC says
        ("deflate", lambda data: zlib.compress(data)[2:-4]),  # raw, as servers often send
        ("identity", lambda data: data),
    ],
)
async def test_compressed_bodies_are_read(encoding: str, compress: Any) -> None:
    """Well-formed gzip, deflate (both forms) and identity bodies decode as before."""
    body = deployment_body("d")
    async with (
        _fixed(compress(body), {"Content-Encoding": encoding}) as srv,
        _manager(srv.url) as fw,
    ):
        info = await fw.get("d")
    assert info is not None
    assert info.state == "READY"


async def test_max_response_bytes_is_configurable() -> None:
    """A smaller limit on the HTTP client refuses what the default accepts."""
    body = json.dumps({"name": "accounts/acme/deployments/d", "pad": "x" * 4000}).encode()
    async with _fixed(body, {"Content-Encoding": "identity"}) as srv, _manager(srv.url) as fw:
        assert await fw.get("d") is not None
        fw._http.max_response_bytes = 1024
        with pytest.raises(ResponseTooLargeError) as caught:
            await fw.get("d")
    assert caught.value.limit_bytes == 1024


@pytest.mark.parametrize(
    ("headers", "body"),
    [
        ({"Content-Encoding": "br"}, b"whatever"),
        ({"Content-Encoding": "gzip, gzip"}, gzip.compress(gzip.compress(b"{}"))),
        ({"Content-Encoding": "gzip"}, b"this is not gzip at all"),
    ],
)
async def test_undecodable_bodies_are_typed(headers: dict[str, str], body: bytes) -> None:
    """An unknown or corrupt content coding raises ResponseBodyError with the status."""
    async with _fixed(body, headers) as srv, _manager(srv.url) as fw:
        with pytest.raises(ResponseBodyError) as caught:
            await fw.get("d")
    assert caught.value.status_code == 200


# -- JSON that would blow the stack ----------------------------------------------------------


@pytest.mark.parametrize("server", ["deep_json", "deep_json_500"], indirect=True)
async def test_deep_json_is_a_validation_error(server: HostileServer) -> None:
    """Deeply nested JSON raises ResponseValidationError, never a raw RecursionError."""
    async with _manager(server.url) as fw:
        with pytest.raises(ResponseValidationError, match="nested") as caught:
            await fw.get("d")
    assert "answered 200 (application/json)" in str(caught.value)
    assert isinstance(caught.value.body, str)
    assert len(caught.value.body) <= 16_384


async def test_deep_json_in_an_error_body_is_kept_as_text() -> None:
    """An error status with deeply nested JSON still maps to its status error."""
    depth = 50_000
    async with _fixed(b"[" * depth + b"]" * depth, {}, status=400) as srv, _manager(srv.url) as fw:
        with pytest.raises(BadRequestError) as caught:
            await fw.get("d")
    assert isinstance(caught.value.body, str)


async def test_a_web_page_is_not_the_api() -> None:
    """A 2xx web page is a NotFireworksAPIError (a ResponseValidationError) naming its type."""
    async with (
        _fixed(b"<html>hi</html>", {"Content-Type": "text/html"}) as srv,
        _manager(srv.url) as fw,
    ):
        with pytest.raises(NotFireworksAPIError, match="does not look like the Fireworks API"):
            await fw.get("d")


async def test_garbled_json_stays_a_validation_error() -> None:
    """A 2xx that says it is JSON but does not parse is the plain ResponseValidationError."""
    async with (
        _fixed(b'{"name": "acc', {"Content-Type": "application/json"}) as srv,
        _manager(srv.url) as fw,
    ):
        with pytest.raises(ResponseValidationError, match="not JSON") as caught:
            await fw.get("d")
    assert type(caught.value) is ResponseValidationError
    assert "(application/json)" in str(caught.value)


# -- Retry-After that would sleep to the deadline --------------------------------------------


class BusyThen:
    """503 with a given Retry-After for the first `times` requests, then `then`."""

    def __init__(self, retry_after: str, times: int, then: str) -> None:
        self.retry_after = retry_after
        self.times = times
        self.then = then
        self.seen = 0

    async def __call__(self, path: str, headers: dict[str, str], writer: Writer) -> None:
        self.seen += 1
        if self.seen <= self.times:
            body = b'{"error": {"message": "busy"}}'
            await _send(writer, body, 503, {"Retry-After": self.retry_after})
        elif self.then == "gone":
            await _send(writer, b'{"error": {"message": "not found"}}', 404)
        elif "/deployments/" in path:
            await _send(writer, deployment_body("d"))
        else:
            page = {"deployments": [json.loads(deployment_body("d"))], "nextPageToken": ""}
            await _send(writer, json.dumps(page).encode())


RETRY_AFTERS = ["1e9", "Fri, 01 Jan 2999 00:00:00 GMT"]


@pytest.mark.parametrize("retry_after", RETRY_AFTERS)
async def test_retry_after_is_capped_in_deletion_polls(retry_after: str) -> None:
    """A poll loop waits at most max_retry_after_s, not 30 years or until the year 2999."""
    started = time.monotonic()
    async with HostileServer(BusyThen(retry_after, 2, "gone")) as srv, _manager(srv.url) as fw:
        await fw.wait_for_deletion("d", timeout_s=120, poll_interval_s=0.05)
    assert time.monotonic() - started < ENDS_WITHIN_S


@pytest.mark.parametrize("retry_after", RETRY_AFTERS)
async def test_retry_after_is_capped_in_ready_polls(retry_after: str) -> None:
    """wait_for_ready through a run of 503s with huge Retry-After ends promptly."""
    started = time.monotonic()
    async with HostileServer(BusyThen(retry_after, 3, "ready")) as srv, _manager(srv.url) as fw:
        info = await fw.wait_for_ready("d", timeout_s=120, poll_interval_s=0.05)
    assert info.state == "READY"
    assert time.monotonic() - started < ENDS_WITHIN_S


@pytest.mark.parametrize("retry_after", RETRY_AFTERS)
async def test_retry_after_is_capped_in_fleet_rounds(retry_after: str) -> None:
    """A fleet wait's rounds are spaced by the capped Retry-After too."""
    started = time.monotonic()
    async with HostileServer(BusyThen(retry_after, 3, "ready")) as srv, _manager(srv.url) as fw:
        result = await fw.wait_for_ready_many(["d"], timeout_s=120, poll_interval_s=0.05)
    assert result.ok
    assert time.monotonic() - started < ENDS_WITHIN_S


@pytest.mark.parametrize("server", ["retry_after_1e9", "retry_after_2999"], indirect=True)
async def test_retry_after_on_errors_is_capped(server: HostileServer) -> None:
    """The status error a request raises carries the Retry-After capped by the policy."""
    async with _manager(server.url, timeouts=_timeouts(1.0, 0.5)) as fw:
        with pytest.raises(InternalServerError) as caught:
            await fw.get("d")
    assert caught.value.retry_after_s == 0.2
    assert error_retry_after(caught.value) == 0.2


# -- the key, echoed back ----------------------------------------------------------------------


@pytest.mark.parametrize("server", ["echo_key"], indirect=True)
async def test_echoed_key_is_redacted_everywhere(
    server: HostileServer, caplog: pytest.LogCaptureFixture
) -> None:
    """A key quoted back in headers, JSON body and message is in none of what we keep."""
    caplog.set_level(logging.DEBUG)
    async with _manager(server.url) as fw:
        with pytest.raises(AuthenticationError) as caught:
            await fw.get("d")
    error = caught.value
    kept = [str(error), repr(error), error.server_message, repr(error.body), repr(error.headers)]
    for text in kept:
        assert API_KEY not in text
    assert error.headers["x-echo-key"] == "***"
    assert error.headers["www-authenticate"] == "Bearer ***"
    assert error.body["error"]["detail"]["seen"] == ["***", "Bearer ***"]
    assert all(API_KEY not in record.getMessage() for record in caplog.records)


async def test_key_at_the_cut_is_redacted_before_cutting() -> None:
    """A key straddling the 200-character cut of a message leaves not even a prefix."""
    body = ("x" * 190 + " " + API_KEY + " " + "y" * 5000).encode()
    async with (
        _fixed(body, {"Content-Type": "text/plain"}, status=400) as srv,
        _manager(srv.url) as fw,
    ):
        with pytest.raises(BadRequestError) as caught:
            await fw.get("d")
    error = caught.value
    for text in (str(error), error.server_message, str(error.body)):
        assert API_KEY[:8] not in text
    assert "***" in error.server_message


@pytest.mark.parametrize("server", ["echo_key_text"], indirect=True)
async def test_key_in_a_web_page_is_redacted(server: HostileServer) -> None:
    """A key quoted in an HTML error page is in neither the message nor the kept body."""
    async with _manager(server.url) as fw:
        with pytest.raises(NotFireworksAPIError) as caught:
            await fw.get("d")
    error = caught.value
    assert error.status_code == 400
    assert error.content_type == "text/html"
    for text in (str(error), repr(error), str(error.body)):
        assert API_KEY[:8] not in text
    assert "***" in error.body


def test_every_scenario_is_probed_or_tested() -> None:
    """The scenario table and the tests stay in step."""
    probed = {case[0] for case in MEMORY_CASES}
    in_process = {"retry_after_1e9", "retry_after_2999", "echo_key", "echo_key_text"}
    assert set(SCENARIOS) <= probed | in_process


async def test_send_once_reads_a_small_body_whole() -> None:
    """send_once still returns a fully read response (content available) for small answers."""
    async with _fixed(b'{"choices": []}', {}) as srv, _manager(srv.url) as fw:
        response = await fw._http.send_once(
            "POST",
            httpx.URL(srv.url + "/inference/v1/completions"),
            deadline=Deadline(5),
            attempt_timeout_s=5,
            json_body={},
            gateway=True,
        )
    assert response.status_code == 200
    assert response.json() == {"choices": []}


async def test_http_client_rejects_a_bad_limit() -> None:
    """max_response_bytes must be a positive int."""
    from fireworks_deploy import InvalidConfigError
    from fireworks_deploy._config import Secret

    for bad in (0, -1, True, 1.5, "1"):
        with pytest.raises(InvalidConfigError, match="max_response_bytes"):
            HTTPClient(
                api_key=Secret(API_KEY),
                additional_headers={},
                verify_ssl=None,
                transport=None,
                max_concurrency=1,
                timeouts=Timeouts(),
                retry=RetryPolicy(),
                max_response_bytes=bad,
            )
