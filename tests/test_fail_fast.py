"""Fail fast where nothing will change, and say clearly what went wrong (issue 12).

Against real loopback endpoints: a closed port, a plain web server that answers HTML, and a
host name under `.invalid` (which never resolves). Also: retries are logged where a handler on
the `fireworks_deploy` logger sees them, and the managers read the same FIREWORKS_* variables as
the command line. Timings are only ever bounded from above, generously.
"""

from __future__ import annotations

import errno
import http.server
import json
import logging
import os
import socket
import ssl
import sys
import textwrap
import threading
import time
from collections.abc import Awaitable, Callable, Iterator
from typing import Any

import anyio
import anyio.abc
import httpx
import pytest
import respx
from core_testkit import ACCOUNT, API_KEY, BASE_URL, dep_path, deployment_json

import fireworks_deploy
from fireworks_deploy import (
    APIConnectionError,
    AsyncDeploymentManager,
    DeploymentConfig,
    DeploymentManager,
    FleetError,
    InternalServerError,
    InvalidConfigError,
    NotFireworksAPIError,
    ResponseValidationError,
    RetryPolicy,
    ServerUnreachableError,
    Timeouts,
)
from fireworks_deploy._config import (
    DEFAULT_BASE_URL,
    Deadline,
    resolve_account_id,
    resolve_endpoints,
)
from fireworks_deploy._errors import APIStatusError
from fireworks_deploy._failures import (
    PollErrors,
    failure_reason,
    log_retry,
    unreachable_cause,
)
from fireworks_deploy._polling import PollHub, PollSchedule

#: Generous upper bound for a call that must fail fast (the connect budget is 1 s in process).
FAST_S = 10.0
#: The connect budget used in process, so the suite stays quick.
BUDGET_S = 1.0
HTML_404 = (
    b"<!DOCTYPE html>\n<html><head><title>404 Not Found</title></head>\n"
    b"<body><h1>Not Found</h1><p>The requested URL was not found on this server.</p></body></html>"
)
URL_VARIABLES = ("FIREWORKS_BASE_URL", "FIREWORKS_INFERENCE_URL", "FIREWORKS_HOTLOAD_API_URL")


@pytest.fixture(autouse=True)
def _no_url_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    """No test here sees the developer's FIREWORKS_*_URL variables unless it sets them."""
    for name in URL_VARIABLES:
        monkeypatch.delenv(name, raising=False)


def closed_port() -> int:
    """A loopback port nothing listens on (bound, then released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


def manager(base_url: str, *, budget_s: float = BUDGET_S, **kwargs: Any) -> AsyncDeploymentManager:
    kwargs.setdefault("account_id", ACCOUNT)
    return AsyncDeploymentManager(
        api_key=API_KEY,
        base_url=base_url,
        timeouts=Timeouts(connect_budget_s=budget_s, operation_s=120.0),
        retry=RetryPolicy(initial_s=0.05, max_s=0.4),
        **kwargs,
    )


class _WebPage(http.server.BaseHTTPRequestHandler):
    """A plain web server: an HTML page for every GET and POST (404 unless the path is `/`),
    a text/plain 404 under /plain/, an HTML 503 under /busy/."""

    def _answer(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        if length:
            self.rfile.read(length)
        status, content_type, body = 404, "text/html; charset=utf-8", HTML_404
        if self.path == "/" or self.path.startswith("/ok/"):
            status, body = 200, b"<html><head><title>Welcome</title></head></html>"
        elif self.path.startswith("/plain/"):
            content_type, body = "text/plain", b"404 page not found\n"
        elif self.path.startswith("/busy/"):
            status = 503
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_GET = do_POST = do_PATCH = do_DELETE = _answer  # noqa: N815 - http.server's names

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def web_server() -> Iterator[str]:
    """The URL of a plain web server on loopback (not the Fireworks API)."""
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _WebPage)
    httpd.daemon_threads = True
    thread = threading.Thread(target=httpd.serve_forever, name="web-server", daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}"
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(timeout=10)


class Records(logging.Handler):
    """Collects the records of the `fireworks_deploy` logger tree."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)

    def retries(self) -> list[logging.LogRecord]:
        return [r for r in self.records if r.getMessage().startswith("retrying")]


@pytest.fixture
def records() -> Iterator[Records]:
    handler = Records()
    parent = logging.getLogger("fireworks_deploy")
    level = parent.level
    parent.setLevel(logging.DEBUG)
    parent.addHandler(handler)
    try:
        yield handler
    finally:
        parent.removeHandler(handler)
        parent.setLevel(level)


# -- nothing listening: a closed port --------------------------------------------------------


class TestClosedPort:
    async def test_a_single_call_fails_within_the_connect_budget(self) -> None:
        """get() against a closed port raises ServerUnreachableError, naming URL and cause."""
        url = f"http://127.0.0.1:{closed_port()}"
        started = time.monotonic()
        async with manager(url) as fw:
            with pytest.raises(ServerUnreachableError) as caught:
                await fw.get("d1")
        assert time.monotonic() - started < FAST_S
        error = caught.value
        assert isinstance(error, APIConnectionError)
        assert error.request_sent is False
        assert error.cause == "connection refused"
        assert error.budget_s == BUDGET_S
        assert error.url == f"{url}{dep_path('d1')}"
        assert f"GET {url}{dep_path('d1')}" in str(error)
        assert "connection refused" in str(error)
        assert f"listening at {url}" in str(error)
        assert "\n" not in str(error)
        assert API_KEY not in str(error)

    async def test_account_resolution_fails_fast_too(self) -> None:
        """Resolving the account against a closed port ends within the budget."""
        url = f"http://127.0.0.1:{closed_port()}"
        started = time.monotonic()
        async with manager(url, account_id=None) as fw:
            with pytest.raises(ServerUnreachableError, match="/v1/accounts"):
                await fw.list_deployments()
        assert time.monotonic() - started < FAST_S

    async def test_a_wait_ends_with_the_connection_error_not_at_its_deadline(self) -> None:
        """wait_for_ready(timeout_s=600, poll_interval_s=60) on a dead host ends in seconds."""
        url = f"http://127.0.0.1:{closed_port()}"
        started = time.monotonic()
        async with manager(url) as fw:
            with pytest.raises(ServerUnreachableError):
                await fw.wait_for_ready("d1", timeout_s=600, poll_interval_s=60)
        assert time.monotonic() - started < FAST_S

    async def test_a_hotload_wait_ends_fast(self) -> None:
        """wait_for_hotload on a dead gateway ends with ServerUnreachableError, not at 400 s."""
        url = f"http://127.0.0.1:{closed_port()}"
        started = time.monotonic()
        async with manager(url) as fw:
            with pytest.raises(ServerUnreachableError):
                await fw.wait_for_hotload("d1", "accounts/f/models/m", "snap-1", poll_interval=30)
        assert time.monotonic() - started < FAST_S

    async def test_a_fleet_wait_ends_fast(self) -> None:
        """wait_for_ready_many on a dead host fails every deployment with the connection error."""
        url = f"http://127.0.0.1:{closed_port()}"
        started = time.monotonic()
        async with manager(url) as fw:
            with pytest.raises(FleetError) as caught:
                await fw.wait_for_ready_many(["d1", "d2"], timeout_s=600, poll_interval_s=1)
        assert time.monotonic() - started < FAST_S
        failed = caught.value.result.failed
        assert set(failed) == {"d1", "d2"}
        assert all(isinstance(e, ServerUnreachableError) for e in failed.values())

    async def test_a_shorter_deadline_still_ends_it_first(self) -> None:
        """With a deadline shorter than the budget the call ends at the deadline, as before."""
        url = f"http://127.0.0.1:{closed_port()}"
        async with manager(url, budget_s=60.0) as fw:
            with pytest.raises(APIConnectionError) as caught:
                await fw.delete("d1", timeout_s=0.5)
        assert not isinstance(caught.value, ServerUnreachableError)

    async def test_a_server_that_comes_up_within_the_budget_is_reached(self) -> None:
        """Refused at first, then listening: the retried call succeeds (the budget is a bound)."""
        port = closed_port()
        url = f"http://127.0.0.1:{port}"
        first_retry = anyio.Event()
        answered = anyio.Event()

        class Signal(logging.Handler):
            def emit(self, record: logging.LogRecord) -> None:
                if record.getMessage().startswith("retrying"):
                    first_retry.set()

        signal = Signal()
        listener: anyio.abc.Listener[anyio.abc.SocketStream] | None = None
        logging.getLogger("fireworks_deploy").addHandler(signal)
        body = json.dumps(deployment_json("d1")).encode()

        async def serve(stream: anyio.abc.SocketStream) -> None:
            async with stream:
                await stream.receive()
                head = "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                head += f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
                await stream.send(head.encode() + body)

        try:
            async with manager(url, budget_s=30.0) as fw, anyio.create_task_group() as tg:
                result: list[Any] = []

                async def call() -> None:
                    result.append(await fw.get("d1"))
                    answered.set()

                tg.start_soon(call)
                await first_retry.wait()
                listener = await anyio.create_tcp_listener(local_host="127.0.0.1", local_port=port)
                tg.start_soon(listener.serve, serve)
                with anyio.fail_after(FAST_S * 2):
                    await answered.wait()
                tg.cancel_scope.cancel()
        finally:
            logging.getLogger("fireworks_deploy").removeHandler(signal)
            if listener is not None:
                await listener.aclose()
        assert result[0] is not None
        assert result[0].deployment_id == "d1"


# -- name resolution fails --------------------------------------------------------------------


async def test_a_name_that_does_not_resolve_fails_fast() -> None:
    """A host under .invalid raises ServerUnreachableError naming the host, within the bound."""
    url = "https://fireworks-deploy-test.invalid"
    started = time.monotonic()
    async with manager(url) as fw:
        with pytest.raises(ServerUnreachableError) as caught:
            await fw.get("d1")
    assert time.monotonic() - started < FAST_S
    assert "'fireworks-deploy-test.invalid' could not be resolved" in str(caught.value)
    assert str(caught.value).startswith(f"GET {url}/v1/accounts/{ACCOUNT}/deployments/d1 ")


# -- other connection failures keep being retried until the deadline -------------------------


async def test_other_connect_errors_keep_their_retries(router: respx.Router) -> None:
    """A ConnectError that is not a refusal or DNS failure is retried until the deadline."""
    route = router.get(dep_path("d1")).mock(side_effect=httpx.ConnectError("TLS went wrong"))
    async with AsyncDeploymentManager(
        api_key=API_KEY,
        account_id=ACCOUNT,
        base_url=BASE_URL,
        transport=httpx.MockTransport(router.async_handler),
        timeouts=Timeouts(connect_budget_s=0.01, operation_s=0.5),
        retry=RetryPolicy(initial_s=0.01, max_s=0.02),
    ) as fw:
        with pytest.raises(APIConnectionError) as caught:
            await fw.get("d1")
    assert not isinstance(caught.value, ServerUnreachableError)
    assert route.call_count > 2


class TestCauses:
    def test_refused_resolution_and_routes_are_recognised(self) -> None:
        """Refusals, resolver failures and missing routes are causes; others are not."""
        refused = httpx.ConnectError("All connection attempts failed")
        refused.__cause__ = OSError("All connection attempts failed")
        refused.__cause__.__cause__ = ConnectionRefusedError(errno.ECONNREFUSED, "refused")
        assert unreachable_cause(refused, "h") == "connection refused"
        dns = httpx.ConnectError("[Errno -2] Name or service not known")
        dns.__cause__ = socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        assert unreachable_cause(dns, "x.invalid") == (
            "the host name 'x.invalid' could not be resolved (Name or service not known)"
        )
        no_net = OSError(errno.ENETUNREACH, "Network is unreachable")
        assert unreachable_cause(no_net, "h") == "the network is unreachable"
        assert unreachable_cause(httpx.ConnectError("boom"), "h") is None
        assert unreachable_cause(ssl.SSLError("bad cert"), "h") is None
        assert unreachable_cause(ConnectionResetError(errno.ECONNRESET, "reset"), "h") is None

    def test_a_cycle_in_the_chain_ends(self) -> None:
        """An exception chain that loops back is walked once."""
        a, b = OSError("a"), OSError("b")
        a.__cause__, b.__cause__ = b, a
        assert unreachable_cause(a, "h") is None


class TestDeadlineBudget:
    def test_counted_from_the_first_failure_and_reset_by_an_answer(self) -> None:
        """The budget runs from the first failure per origin; an answer from it resets it."""
        now = [100.0]
        deadline = Deadline(600, clock=lambda: now[0])
        assert deadline.connect_retry_in() is None
        assert deadline.connect_failed("http://a", 5.0) == 5.0
        now[0] += 3
        assert deadline.connect_failed("http://a", 5.0) == 2.0
        assert deadline.connect_failed("http://b", 5.0) == 5.0
        assert deadline.connect_retry_in() == 2.0
        now[0] += 2
        assert deadline.connect_failed("http://a", 5.0) == 0.0
        deadline.connected("http://a")
        assert deadline.connect_retry_in() == 3.0
        assert deadline.connect_failed("http://a", 5.0) == 5.0


# -- a plain web server is not the Fireworks API ----------------------------------------------


class TestWebServer:
    async def test_an_html_404_is_not_a_missing_deployment(self, web_server: str) -> None:
        """get() on a web server's HTML 404 raises NotFireworksAPIError, never returns None."""
        async with manager(web_server) as fw:
            with pytest.raises(NotFireworksAPIError) as caught:
                await fw.get("d1")
        error = caught.value
        assert isinstance(error, ResponseValidationError)
        assert error.status_code == 404
        assert error.content_type == "text/html; charset=utf-8"
        message = str(error)
        assert message.startswith(f"GET {web_server}{dep_path('d1')} answered HTTP 404 with ")
        assert "text/html; charset=utf-8 instead of JSON" in message
        assert "does not look like the Fireworks API" in message
        assert "'404 Not Found'" in message  # the page's title, not its markup
        assert "<" not in message
        assert "\n" not in message

    async def test_an_html_page_with_200_is_not_the_api(self, web_server: str) -> None:
        """A 2xx HTML page where JSON is expected raises NotFireworksAPIError."""
        async with manager(f"{web_server}/ok") as fw:
            with pytest.raises(NotFireworksAPIError, match="answered HTTP 200 with text/html"):
                await fw.list_deployments()

    async def test_account_resolution_recognises_it(self, web_server: str) -> None:
        """With no account given, the very first request says it."""
        async with manager(web_server, account_id=None) as fw:
            with pytest.raises(NotFireworksAPIError, match="/v1/accounts"):
                await fw.list_deployments()

    async def test_deleting_is_not_missing_ok(self, web_server: str) -> None:
        """delete(missing_ok=True) does not take a web page's 404 for 'already gone'."""
        async with manager(web_server) as fw:
            with pytest.raises(NotFireworksAPIError):
                await fw.delete("d1", missing_ok=True)

    async def test_a_wait_ends_with_it_fast(self, web_server: str) -> None:
        """A wait raises a web page at once: polling on (here every 60 s) changes nothing."""
        started = time.monotonic()
        async with manager(web_server) as fw:
            with pytest.raises(NotFireworksAPIError):
                await fw.wait_for_ready("d1", timeout_s=600, poll_interval_s=60)
        assert time.monotonic() - started < FAST_S

    async def test_a_plain_text_404_keeps_its_status(self, web_server: str) -> None:
        """An error status with a plain-text body is still that status (gateways send them)."""
        async with manager(f"{web_server}/plain") as fw:
            assert await fw.get("d1") is None

    async def test_a_busy_status_page_is_still_retried(self, web_server: str) -> None:
        """A proxy's HTML 503 is retried until the deadline, as before, then reported as 503."""
        async with manager(f"{web_server}/busy") as fw:
            with pytest.raises(InternalServerError, match="HTTP 503"):
                await fw.delete("d1", timeout_s=0.5)

    async def test_garbled_json_is_not_called_another_server(self, router: respx.Router) -> None:
        """A body that says it is JSON but does not parse stays a plain ResponseValidationError."""
        router.get(dep_path("d1")).respond(
            200, content=b'{"name": "acc', headers={"Content-Type": "application/json"}
        )
        async with AsyncDeploymentManager(
            api_key=API_KEY,
            account_id=ACCOUNT,
            base_url=BASE_URL,
            transport=httpx.MockTransport(router.async_handler),
        ) as fw:
            with pytest.raises(ResponseValidationError) as caught:
                await fw.get("d1")
        assert type(caught.value) is ResponseValidationError


# -- retries are visible ------------------------------------------------------------------------


class TestRetryLogs:
    async def test_request_retries_log_info_then_warning(
        self, router: respx.Router, records: Records
    ) -> None:
        """Each retry logs 'retrying <method> <url>: <reason>'; from the third on, at WARNING."""
        busy = httpx.Response(503, json={"error": {"message": "busy"}})
        router.get(dep_path("d1")).mock(
            side_effect=[busy, busy, busy, busy, httpx.Response(200, json=deployment_json("d1"))]
        )
        async with AsyncDeploymentManager(
            api_key=API_KEY,
            account_id=ACCOUNT,
            base_url=BASE_URL,
            transport=httpx.MockTransport(router.async_handler),
            retry=RetryPolicy(initial_s=0.001, max_s=0.002),
        ) as fw:
            assert await fw.get("d1") is not None
        retries = records.retries()
        assert [r.levelno for r in retries] == [logging.INFO] * 2 + [logging.WARNING] * 2
        assert all(r.name == "fireworks_deploy._http" for r in retries)
        first = retries[0]
        url = f"{BASE_URL}{dep_path('d1')}"
        assert first.getMessage().startswith(f"retrying GET {url}: HTTP 503 (busy); next attempt")
        assert first.retry_reason == "HTTP 503 (busy)"  # type: ignore[attr-defined]
        assert first.retry_url == url  # type: ignore[attr-defined]
        assert first.retry_failures == 1  # type: ignore[attr-defined]
        assert first.retry_delay_s >= 0  # type: ignore[attr-defined]
        assert all(API_KEY not in r.getMessage() for r in records.records)

    async def test_a_refused_connection_logs_its_first_retry(self, records: Records) -> None:
        """The first failed connection is logged at once, with the cause."""
        url = f"http://127.0.0.1:{closed_port()}"
        async with manager(url, budget_s=0.3) as fw:
            with pytest.raises(ServerUnreachableError):
                await fw.get("d1")
        first = records.retries()[0]
        assert first.levelno == logging.INFO
        assert first.getMessage().startswith(f"retrying GET {url}{dep_path('d1')}: connection")
        assert first.retry_reason == "connection refused"  # type: ignore[attr-defined]

    async def test_poll_retries_log_and_escalate(
        self, router: respx.Router, records: Records
    ) -> None:
        """A wait that keeps failing logs each failure, at WARNING from the third in a row."""
        busy = httpx.Response(503, json={"error": {"message": "busy"}})
        gone = httpx.Response(404, json={"error": {"message": "gone"}})
        router.get(dep_path("d1")).mock(side_effect=[busy, busy, busy, busy, gone])
        async with AsyncDeploymentManager(
            api_key=API_KEY,
            account_id=ACCOUNT,
            base_url=BASE_URL,
            transport=httpx.MockTransport(router.async_handler),
        ) as fw:
            await fw.wait_for_deletion("d1", timeout_s=30, poll_interval_s=0.05)
        retries = [r for r in records.retries() if r.name == "fireworks_deploy._failures"]
        assert [r.levelno for r in retries] == [logging.INFO] * 2 + [logging.WARNING] * 2
        assert retries[0].getMessage() == (
            f"retrying GET {BASE_URL}{dep_path('d1')}: HTTP 503 (busy); polling on "
            "(1 failure in a row)"
        )

    def test_an_expected_404_never_escalates(self, records: Records) -> None:
        """A 404 a hot-load wait tolerates (the gateway starting) stays at INFO."""
        errors = PollErrors(not_found_ok=True)
        for _ in range(5):
            error = APIStatusError("x", status_code=404, method="GET", url="http://h/s")
            assert errors.absorbs(error)
        assert {r.levelno for r in records.retries()} == {logging.INFO}

    def test_waiters_sharing_a_poll_log_its_failure_once(self, records: Records) -> None:
        """The same error seen by several waiters is logged once."""
        error = APIStatusError("x", status_code=503, method="GET", url="http://h/s")
        assert PollErrors().absorbs(error)
        assert PollErrors().absorbs(error)
        assert len(records.retries()) == 1

    def test_reasons_are_short_and_key_free(self) -> None:
        """failure_reason names a status and the server's words, or the transport cause."""
        said = APIStatusError("m", status_code=503, server_message="busy\nnow")
        assert failure_reason(said) == "HTTP 503 (busy now)"
        assert failure_reason(APIStatusError("m", status_code=502)) == "HTTP 502"
        lost = APIConnectionError("m", url="http://h/x")
        lost.__cause__ = httpx.ReadError("reset by peer")
        assert failure_reason(lost) == "ReadError: reset by peer"
        assert failure_reason(ResponseValidationError("m")) == "an unreadable answer"

    def test_log_retry_without_a_url(self, records: Records) -> None:
        """An error without method or URL still logs a readable line."""
        log_retry(logging.getLogger("fireworks_deploy.test"), ValueError("x"), failures=1)
        assert records.retries()[0].getMessage().startswith("retrying request (unknown URL)")

    def test_every_package_logger_is_named_by_its_module(self) -> None:
        """Module loggers are children of `fireworks_deploy`, named by module."""
        found = 0
        for name, module in list(sys.modules.items()):
            if not name.startswith("fireworks_deploy") or module is None:
                continue
            log = getattr(module, "logger", None)
            if isinstance(log, logging.Logger):
                found += 1
                assert log.name == name, name
        assert found >= 5
        assert "fireworks_deploy._http" in sys.modules


# -- the same environment variables as the command line --------------------------------------


class TestEnvironment:
    def test_the_default_base_url_is_the_official_one(self) -> None:
        """The default equals the official client's, as a plain string compares."""
        assert DEFAULT_BASE_URL == "https://api.fireworks.ai"
        assert isinstance(DEFAULT_BASE_URL, str)
        assert repr(DEFAULT_BASE_URL) == "'https://api.fireworks.ai'"

    def test_resolution_rules(self) -> None:
        """Arguments win; else the variable (blank is unset); else the default or base URL."""
        env = {
            "FIREWORKS_BASE_URL": "http://base.env",
            "FIREWORKS_INFERENCE_URL": "http://inference.env",
            "FIREWORKS_HOTLOAD_API_URL": " ",
        }
        urls = resolve_endpoints(DEFAULT_BASE_URL, None, None, env)
        assert (urls.base_url, urls.base_url_from) == ("http://base.env", "FIREWORKS_BASE_URL")
        assert urls.inference_url == "http://inference.env"
        assert urls.inference_url_from == "FIREWORKS_INFERENCE_URL"
        assert (urls.hotload_api_url, urls.hotload_api_url_from) == (None, "hotload_api_url")
        explicit = resolve_endpoints("https://api.fireworks.ai", "http://i", "http://h", env)
        assert (explicit.base_url, explicit.base_url_from) == (
            "https://api.fireworks.ai",
            "base_url",
        )
        assert (explicit.inference_url, explicit.hotload_api_url) == ("http://i", "http://h")
        nothing = resolve_endpoints(None, None, None, {})
        assert nothing.base_url is DEFAULT_BASE_URL
        assert resolve_account_id(None, {"FIREWORKS_ACCOUNT_ID": " acme "}) == "acme"
        assert resolve_account_id(None, {"FIREWORKS_ACCOUNT_ID": " "}) is None
        assert resolve_account_id("mine", {"FIREWORKS_ACCOUNT_ID": "acme"}) == "mine"

    async def test_the_async_manager_reads_the_variables(
        self, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """Left at their defaults, the URLs come from FIREWORKS_*_URL."""
        monkeypatch.setenv("FIREWORKS_BASE_URL", "http://127.0.0.1:9001/")
        monkeypatch.setenv("FIREWORKS_INFERENCE_URL", "http://127.0.0.1:9002")
        monkeypatch.setenv("FIREWORKS_HOTLOAD_API_URL", "http://127.0.0.1:9003")
        async with AsyncDeploymentManager(api_key=API_KEY) as fw:
            assert fw.base_url == "http://127.0.0.1:9001"
            assert fw.inference_url == "http://127.0.0.1:9002"
            assert fw.hotload_api_url == "http://127.0.0.1:9003"

    async def test_explicit_arguments_win(self, monkeypatch: pytest.MonkeyPatch) -> None:
        """A URL passed in wins over its variable, even one equal to the default."""
        for name in URL_VARIABLES:
            monkeypatch.setenv(name, "http://127.0.0.1:9009")
        async with AsyncDeploymentManager(
            "k", "https://api.fireworks.ai", "http://127.0.0.1:1", "http://127.0.0.1:2"
        ) as fw:
            assert fw.base_url == "https://api.fireworks.ai"
            assert fw.inference_url == "http://127.0.0.1:1"
            assert fw.hotload_api_url == "http://127.0.0.1:2"

    async def test_the_base_url_variable_becomes_the_other_defaults(
        self, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """Inference and hot-load requests go to FIREWORKS_BASE_URL when nothing else is set."""
        monkeypatch.setenv("FIREWORKS_BASE_URL", "http://127.0.0.1:9001")
        async with AsyncDeploymentManager(api_key=API_KEY) as fw:
            assert fw.inference_url == fw.hotload_api_url == "http://127.0.0.1:9001"

    async def test_requests_go_to_the_variable(self, monkeypatch: pytest.MonkeyPatch) -> None:
        """The control plane is reached at FIREWORKS_BASE_URL."""
        router = respx.Router(assert_all_called=False)
        monkeypatch.setenv("FIREWORKS_BASE_URL", "https://elsewhere.example")
        route = router.get(f"https://elsewhere.example{dep_path('d1')}").respond(
            json=deployment_json("d1")
        )
        async with AsyncDeploymentManager(
            api_key=API_KEY, account_id=ACCOUNT, transport=httpx.MockTransport(router.async_handler)
        ) as fw:
            assert await fw.get("d1") is not None
        assert route.called

    def test_the_sync_manager_reads_them_too(self, monkeypatch: pytest.MonkeyPatch) -> None:
        """DeploymentManager resolves the same way."""
        monkeypatch.setenv("FIREWORKS_BASE_URL", "http://127.0.0.1:9001")
        monkeypatch.setenv("FIREWORKS_INFERENCE_URL", "http://127.0.0.1:9002")
        with DeploymentManager(api_key=API_KEY) as fw:
            assert fw.base_url == "http://127.0.0.1:9001"
            assert fw.inference_url == "http://127.0.0.1:9002"
            assert fw.hotload_api_url == "http://127.0.0.1:9001"
        with DeploymentManager(api_key=API_KEY, base_url="http://127.0.0.1:7") as fw:
            assert fw.base_url == "http://127.0.0.1:7"

    def test_a_bad_variable_is_named(self, monkeypatch: pytest.MonkeyPatch) -> None:
        """An invalid URL in a variable is an InvalidConfigError naming the variable."""
        monkeypatch.setenv("FIREWORKS_BASE_URL", "ftp://nope")
        with pytest.raises(InvalidConfigError, match="FIREWORKS_BASE_URL 'ftp://nope'"):
            AsyncDeploymentManager(api_key=API_KEY)
        monkeypatch.delenv("FIREWORKS_BASE_URL")
        monkeypatch.setenv("FIREWORKS_HOTLOAD_API_URL", "not a url")
        with pytest.raises(InvalidConfigError, match="FIREWORKS_HOTLOAD_API_URL"):
            AsyncDeploymentManager(api_key=API_KEY)

    def test_exported(self) -> None:
        """The two new errors are public and sit where callers already catch."""
        assert fireworks_deploy.NotFireworksAPIError is NotFireworksAPIError
        assert issubclass(NotFireworksAPIError, ResponseValidationError)
        assert issubclass(ServerUnreachableError, APIConnectionError)


# -- the poll loop tries again by the end of the connect budget -------------------------------


async def test_the_hub_polls_again_when_the_budget_runs_out() -> None:
    """After a refused fetch, the next poll comes at the budget's end, not after max_s."""
    hub = PollHub()
    deadline = Deadline(600)
    calls: list[float] = []
    errors = PollErrors()

    async def fetch(deadline: Deadline) -> int:
        calls.append(time.monotonic())
        if deadline.connect_failed("http://h", 0.2) > 0:
            refused = APIConnectionError("refused", method="GET", url="http://h/x")
            refused.request_sent = False
            raise refused
        raise ServerUnreachableError(
            "gone", method="GET", url="http://h/x", cause="connection refused", budget_s=0.2
        )

    def evaluate(obs: Any) -> int | None:
        if obs.error is not None and not errors.absorbs(obs.error):
            raise obs.error
        return None

    started = time.monotonic()
    with pytest.raises(ServerUnreachableError):
        await hub.wait(
            "k",
            fetch,
            evaluate,
            deadline=deadline,
            schedule=PollSchedule(60.0, first_s=60.0),
            on_timeout=lambda last: TimeoutError("deadline"),
        )
    assert time.monotonic() - started < FAST_S
    assert len(calls) == 2


# -- a user's script, start to finish, in its own process --------------------------------------

QUICK_START = textwrap.dedent(
    """
    import sys, time
    from fireworks_deploy import DeploymentConfig, DeploymentManager

    started = time.monotonic()
    try:
        with DeploymentManager() as manager:
            config = DeploymentConfig("rl-qwen3-8b", "accounts/fireworks/models/qwen3-8b")
            manager.create_or_get(config)
            manager.wait_for_ready("rl-qwen3-8b", timeout_s=1800)
    finally:
        print(f"elapsed {time.monotonic() - started:.2f}", flush=True)
    """
)


async def run_quick_start(**env: str) -> tuple[int, str, float]:
    """The README's sync quick start in a fresh interpreter; (exit code, error line, elapsed)."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith("FIREWORKS_")}
    clean.update(env)
    done = await anyio.run_process([sys.executable, "-c", QUICK_START], env=clean, check=False)
    elapsed = float(done.stdout.decode().split()[-1])
    lines = done.stderr.decode().strip().splitlines()
    return done.returncode, lines[-1] if lines else "", elapsed


@pytest.mark.parametrize(
    ("case", "expected"),
    [
        ("key unset", "InvalidConfigError: No API key: pass api_key=... or set FIREWORKS_API_KEY."),
        ("server down", "ServerUnreachableError: GET http://127.0.0.1:"),
        ("wrong host", "ServerUnreachableError: GET https://fireworks-deploy-test.invalid/"),
        ("wrong URL", "NotFireworksAPIError: GET http://127.0.0.1:"),
    ],
)
@pytest.mark.timeout(120)
async def test_a_user_script_fails_with_one_clear_sentence(
    case: str, expected: str, web_server: str
) -> None:
    """Key unset, a dead server, a host that does not exist, a web page: one line, < 10 s."""
    env = {"FIREWORKS_API_KEY": "fw-script-SECRET-key-0a1b2c", "FIREWORKS_ACCOUNT_ID": "acme"}
    if case == "key unset":
        del env["FIREWORKS_API_KEY"]
    elif case == "server down":
        env["FIREWORKS_BASE_URL"] = f"http://127.0.0.1:{closed_port()}"
    elif case == "wrong host":
        env["FIREWORKS_BASE_URL"] = "https://fireworks-deploy-test.invalid"
    else:
        env["FIREWORKS_BASE_URL"] = web_server
    code, error, elapsed = await run_quick_start(**env)
    assert code == 1
    assert error.startswith("fireworks_deploy."), error
    assert f".{expected}" in error, error
    assert elapsed < 10.0, (case, elapsed)
    assert "fw-script-SECRET-key-0a1b2c" not in error
    assert "<" not in error
    assert error.endswith(".")


#: A POST (or a warm-up that would retry 30 times 10 s apart) to a host that refuses
#: connections, each with a timeout well past FAST_S.
_AGAINST_A_CLOSED_PORT: dict[str, Callable[[AsyncDeploymentManager], Awaitable[object]]] = {
    "hotload": lambda fw: fw.hotload("d1", "accounts/f/models/m", "snap-1", timeout=12),
    "create": lambda fw: fw.create_or_get(
        DeploymentConfig("d1", "accounts/f/models/m"), timeout_s=12
    ),
    "warmup": lambda fw: fw.warmup(
        "accounts/a/deployments/d1", max_retries=30, retry_interval_s=10
    ),
}


@pytest.mark.parametrize("operation", sorted(_AGAINST_A_CLOSED_PORT))
async def test_an_operation_against_a_closed_port_ends_fast(operation: str) -> None:
    """A hot-load or create POST, or a warm-up, against a closed port ends with
    ServerUnreachableError, not at its timeout (nor after its retries)."""
    url = f"http://127.0.0.1:{closed_port()}"
    started = time.monotonic()
    async with manager(url) as fw:
        with pytest.raises(ServerUnreachableError):
            await _AGAINST_A_CLOSED_PORT[operation](fw)
    assert time.monotonic() - started < FAST_S
