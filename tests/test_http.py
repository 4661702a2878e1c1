"""The HTTP layer: URLs, retries inside one deadline, Retry-After, error mapping, secrecy."""

from __future__ import annotations

import asyncio
import email.utils
import logging
import re
import time
from collections.abc import AsyncIterator
from typing import Any

import anyio
import attrs
import httpx
import pytest
import respx
from core_testkit import API_KEY, BASE_URL, FAST_RETRY, sequence
from hypothesis import given
from hypothesis import strategies as st

from fireworks_deploy import (
    APIConnectionError,
    APIStatusError,
    APITimeoutError,
    AuthenticationError,
    BadRequestError,
    ConflictError,
    InternalServerError,
    InvalidConfigError,
    ManagerClosedError,
    NotFoundError,
    PermissionDeniedError,
    RateLimitError,
    ResponseValidationError,
    RetryPolicy,
    Timeouts,
)
from fireworks_deploy._config import (
    POLL_INTERVAL_FLOOR_S,
    Deadline,
    Secret,
    check_poll_interval,
    check_positive,
    resolve_api_key,
)
from fireworks_deploy._errors import (
    EventLoopMismatchError,
    InsecureTransportWarning,
    redact_secret,
    redact_text,
)
from fireworks_deploy._failures import error_retry_after, is_transient, parse_retry_after
from fireworks_deploy._http import HTTPClient, server_message
from fireworks_deploy._secrets import is_loopback
from fireworks_deploy._urls import build_url, check_additional_headers, parse_base_url

URL = httpx.URL(BASE_URL + "/v1/thing")


class Sleeps:
    """Records backoff delays instead of sleeping."""

    def __init__(self) -> None:
        self.delays: list[float] = []

    async def __call__(self, delay: float) -> None:
        self.delays.append(delay)


@pytest.fixture
async def client(transport: httpx.MockTransport) -> AsyncIterator[HTTPClient]:
    http = HTTPClient(
        api_key=Secret(API_KEY),
        additional_headers={"X-Extra": "1"},
        verify_ssl=None,
        transport=transport,
        max_concurrency=4,
        timeouts=Timeouts(),
        retry=FAST_RETRY,
    )
    yield http
    await http.aclose()


@pytest.fixture
def sleeps(client: HTTPClient) -> Sleeps:
    recorder = Sleeps()
    client.sleep = recorder
    return recorder


class TestURLs:
    @pytest.mark.parametrize(
        ("base", "expected"),
        [
            ("http://h/", "http://h/hot_load/v1/models/hot_load"),
            ("http://h//", "http://h/hot_load/v1/models/hot_load"),
            ("http://h/prefix/", "http://h/prefix/hot_load/v1/models/hot_load"),
            ("https://h:8443", "https://h:8443/hot_load/v1/models/hot_load"),
        ],
    )
    def test_no_double_slash(self, base: str, expected: str) -> None:
        """A trailing slash on a base URL never produces '//' in the path."""
        url = build_url(parse_base_url(base, "base_url"), "/hot_load/v1/models/hot_load")
        assert str(url) == expected
        assert b"//" not in url.raw_path

    def test_params_are_encoded(self) -> None:
        """Query parameters are URL-encoded by httpx, not concatenated."""
        url = build_url(parse_base_url("http://h", "b"), "/x", {"updateMask": "a,b", "q": "x y"})
        assert url.raw_path == b"/x?updateMask=a%2Cb&q=x+y"

    @pytest.mark.parametrize(
        "bad", ["", "   ", "ftp://h", "h/path", "http://", "http://h/?q=1", "http://u:p@h", 3]
    )
    def test_bad_base_url(self, bad: Any) -> None:
        """Malformed base URLs raise InvalidConfigError."""
        with pytest.raises(InvalidConfigError):
            parse_base_url(bad, "base_url")


class TestHeaders:
    async def test_control_plane_headers(self, client: HTTPClient, router: respx.Router) -> None:
        """Control-plane requests carry X-Api-Key and JSON content type but no Authorization."""
        route = router.get("/v1/thing").respond(json={})
        await client.request("GET", URL, deadline=Deadline(5))
        headers = route.calls.last.request.headers
        assert headers["x-api-key"] == API_KEY
        assert headers["content-type"] == "application/json"
        assert headers["x-extra"] == "1"
        assert "authorization" not in headers

    async def test_gateway_headers(self, client: HTTPClient, router: respx.Router) -> None:
        """Gateway requests add Authorization: Bearer."""
        route = router.post("/v1/thing").respond(json={})
        await client.request("POST", URL, deadline=Deadline(5), gateway=True, json_body={})
        headers = route.calls.last.request.headers
        assert headers["authorization"] == f"Bearer {API_KEY}"
        assert headers["x-api-key"] == API_KEY

    async def test_identifies_itself_and_asks_for_json(
        self, client: HTTPClient, router: respx.Router
    ) -> None:
        """Every request names the SDK (and httpx) in User-Agent and accepts JSON."""
        route = router.get("/v1/thing").respond(json={})
        await client.request("GET", URL, deadline=Deadline(5))
        headers = route.calls.last.request.headers
        assert re.fullmatch(r"fireworks-deploy/\S+ python-httpx/\S+", headers["user-agent"])
        assert headers["accept"] == "application/json"

    async def test_cookies_a_server_sets_are_never_sent_back(
        self, client: HTTPClient, router: respx.Router
    ) -> None:
        """The API keeps no session in cookies: a Set-Cookie (from a proxy, or anyone on the
        path) is not stored, so no later request carries it."""
        route = router.get("/v1/thing").mock(
            side_effect=[
                httpx.Response(200, json={}, headers={"Set-Cookie": "session=abc; Path=/"}),
                httpx.Response(200, json={}),
            ]
        )
        await client.request("GET", URL, deadline=Deadline(5))
        await client.request("GET", URL, deadline=Deadline(5))
        assert route.call_count == 2
        assert "cookie" not in route.calls.last.request.headers

    @pytest.mark.parametrize(
        "headers",
        [
            {"X-Api-Key": "other"},
            {"authorization": "x"},
            {"bad name": "v"},
            {"X-A": "a\r\nb"},
            {"X": 1},
            ["x"],
        ],
    )
    def test_bad_additional_headers(self, headers: Any) -> None:
        """Headers that are malformed or would replace authentication are refused."""
        with pytest.raises(InvalidConfigError):
            check_additional_headers(headers)


class TestRetries:
    async def test_get_retries_5xx_then_succeeds(
        self, client: HTTPClient, router: respx.Router, sleeps: Sleeps
    ) -> None:
        """An idempotent GET is retried on 500/502/503/504/408/429."""
        codes = [500, 502, 503, 504, 408, 429]
        route = router.get("/v1/thing").mock(
            side_effect=sequence(
                *[httpx.Response(c) for c in codes], httpx.Response(200, json={"ok": 1})
            )
        )
        response = await client.request("GET", URL, deadline=Deadline(5))
        assert response.json == {"ok": 1}
        assert route.call_count == len(codes) + 1
        assert len(sleeps.delays) == len(codes)

    async def test_get_retries_transport_errors(
        self, client: HTTPClient, router: respx.Router, sleeps: Sleeps
    ) -> None:
        """An idempotent GET is retried after connect errors and read timeouts."""
        route = router.get("/v1/thing").mock(
            side_effect=sequence(
                httpx.ConnectError("refused"),
                httpx.ReadTimeout("slow"),
                httpx.Response(200, json={}),
            )
        )
        await client.request("GET", URL, deadline=Deadline(5))
        assert route.call_count == 3

    @pytest.mark.parametrize("code", [500, 502, 504, 408])
    async def test_post_not_resent_after_server_error(
        self, client: HTTPClient, router: respx.Router, code: int
    ) -> None:
        """A POST is not re-sent after a status that may mean it was processed."""
        route = router.post("/v1/thing").respond(code)
        with pytest.raises(APIStatusError):
            await client.request("POST", URL, deadline=Deadline(5), json_body={})
        assert route.call_count == 1

    async def test_post_not_resent_after_read_timeout(
        self, client: HTTPClient, router: respx.Router
    ) -> None:
        """A POST whose answer timed out is not re-sent by the HTTP layer."""
        route = router.post("/v1/thing").mock(side_effect=httpx.ReadTimeout("slow"))
        with pytest.raises(APITimeoutError) as info:
            await client.request("POST", URL, deadline=Deadline(5), json_body={})
        assert route.call_count == 1
        assert info.value.request_sent is True
        assert isinstance(info.value.__cause__, httpx.ReadTimeout)

    @pytest.mark.parametrize(
        "first", [httpx.Response(429), httpx.Response(503), httpx.ConnectError("refused")]
    )
    async def test_post_resent_when_not_processed(
        self, client: HTTPClient, router: respx.Router, sleeps: Sleeps, first: Any
    ) -> None:
        """A POST is re-sent after 429, 503 or a connection that never opened."""
        route = router.post("/v1/thing").mock(
            side_effect=sequence(first, httpx.Response(200, json={}))
        )
        await client.request("POST", URL, deadline=Deadline(5), json_body={})
        assert route.call_count == 2

    @pytest.mark.parametrize(
        ("code", "cls"),
        [
            (400, BadRequestError),
            (401, AuthenticationError),
            (403, PermissionDeniedError),
            (404, NotFoundError),
            (409, ConflictError),
            (418, APIStatusError),
        ],
    )
    async def test_client_errors_fail_fast(
        self, client: HTTPClient, router: respx.Router, code: int, cls: type[Exception]
    ) -> None:
        """4xx (auth included) raise their typed error after exactly one request."""
        route = router.get("/v1/thing").respond(code, json={"error": {"message": "nope"}})
        with pytest.raises(cls) as info:
            await client.request("GET", URL, deadline=Deadline(5))
        assert route.call_count == 1
        assert info.value.status_code == code  # type: ignore[attr-defined]
        assert info.value.server_message == "nope"  # type: ignore[attr-defined]

    async def test_retry_false_sends_once(self, client: HTTPClient, router: respx.Router) -> None:
        """retry=False (used inside poll loops) sends exactly one request."""
        route = router.get("/v1/thing").respond(503)
        with pytest.raises(InternalServerError):
            await client.request("GET", URL, deadline=Deadline(5), retry=False)
        assert route.call_count == 1

    async def test_deadline_bounds_retries(self, client: HTTPClient, router: respx.Router) -> None:
        """Retries stop at the deadline: a permanent 503 fails in about the budget."""
        client.retry = RetryPolicy(initial_s=0.01, max_s=0.05)
        route = router.get("/v1/thing").respond(503)
        started = time.monotonic()
        with pytest.raises(InternalServerError):
            await client.request("GET", URL, deadline=Deadline(0.3))
        assert time.monotonic() - started < 5
        assert route.call_count >= 2

    async def test_expired_deadline_sends_nothing(
        self, client: HTTPClient, router: respx.Router
    ) -> None:
        """A request whose deadline has passed is not sent."""
        route = router.get("/v1/thing").respond(200, json={})
        with pytest.raises(APITimeoutError):
            await client.request("GET", URL, deadline=Deadline(0))
        assert route.call_count == 0


class TestDeadlineEdges:
    async def test_overrun_reports_the_server_error(
        self, client: HTTPClient, router: respx.Router
    ) -> None:
        """A backoff that overruns the deadline raises the server's error, not 'not sent'."""

        async def oversleep(delay: float) -> None:
            await anyio.sleep(delay + 0.3)

        client.sleep = oversleep
        router.get("/v1/thing").respond(500)
        with pytest.raises(InternalServerError):
            await client.request("GET", URL, deadline=Deadline(0.2))

    async def test_gate_wait_counts_against_the_deadline(
        self, transport: httpx.MockTransport, router: respx.Router
    ) -> None:
        """Waiting for a free slot in the concurrency gate is bounded by the deadline."""
        release = anyio.Event()

        async def slow(request: httpx.Request) -> httpx.Response:
            await release.wait()
            return httpx.Response(200, json={})

        router.get("/v1/slow").mock(side_effect=slow)
        fast = router.get("/v1/thing").respond(200, json={})
        http = HTTPClient(
            api_key=Secret(API_KEY),
            additional_headers={},
            verify_ssl=None,
            transport=transport,
            max_concurrency=1,
            timeouts=Timeouts(),
            retry=FAST_RETRY,
        )
        try:
            async with anyio.create_task_group() as tg:
                tg.start_soon(
                    lambda: http.request(
                        "GET", httpx.URL(BASE_URL + "/v1/slow"), deadline=Deadline(10)
                    )
                )
                await anyio.wait_all_tasks_blocked()
                with anyio.fail_after(5), pytest.raises(APITimeoutError):
                    await http.request("GET", URL, deadline=Deadline(0.2), retry=False)
                release.set()
        finally:
            await http.aclose()
        assert fast.call_count == 0


class TestRetryAfter:
    async def test_seconds_honoured(
        self, client: HTTPClient, router: respx.Router, sleeps: Sleeps
    ) -> None:
        """Retry-After in seconds is a floor on the backoff."""
        router.get("/v1/thing").mock(
            side_effect=sequence(
                httpx.Response(429, headers={"Retry-After": "17"}), httpx.Response(200, json={})
            )
        )
        await client.request("GET", URL, deadline=Deadline(60))
        assert sleeps.delays == [17.0]

    async def test_http_date_honoured(
        self, client: HTTPClient, router: respx.Router, sleeps: Sleeps
    ) -> None:
        """Retry-After as an HTTP-date is honoured too."""
        when = email.utils.formatdate(time.time() + 10, usegmt=True)
        router.get("/v1/thing").mock(
            side_effect=sequence(
                httpx.Response(503, headers={"Retry-After": when}), httpx.Response(200, json={})
            )
        )
        await client.request("GET", URL, deadline=Deadline(60))
        assert len(sleeps.delays) == 1
        assert 8.0 <= sleeps.delays[0] <= 10.5

    async def test_retry_after_beyond_deadline_raises(
        self, client: HTTPClient, router: respx.Router, sleeps: Sleeps
    ) -> None:
        """A Retry-After longer than the time left raises at once instead of overrunning."""
        route = router.get("/v1/thing").respond(429, headers={"Retry-After": "30"})
        with pytest.raises(RateLimitError):
            await client.request("GET", URL, deadline=Deadline(2))
        assert route.call_count == 1
        assert sleeps.delays == []

    def test_parse(self) -> None:
        """Seconds, HTTP-dates, garbage and negatives parse sensibly."""
        assert parse_retry_after("5") == 5.0
        assert parse_retry_after(" 1.5 ") == 1.5
        assert parse_retry_after("-3") == 0.0
        assert parse_retry_after(None) is None
        assert parse_retry_after("soon") is None
        assert parse_retry_after("nan") is None
        now = 1_700_000_000.0
        date = email.utils.formatdate(now + 42, usegmt=True)
        assert parse_retry_after(date, now=now) == pytest.approx(42, abs=1)
        past = email.utils.formatdate(now - 42, usegmt=True)
        assert parse_retry_after(past, now=now) == 0.0


class TestBackoff:
    @given(
        attempt=st.integers(0, 100),
        initial=st.floats(0.001, 5),
        cap=st.floats(0.01, 60),
        retry_after=st.none() | st.floats(0, 1000),
        seed=st.integers(0, 2**32),
    )
    def test_delay_bounds(
        self, attempt: int, initial: float, cap: float, retry_after: float | None, seed: int
    ) -> None:
        """The delay is in [0, cap] unless Retry-After (capped) raises the floor."""
        import random

        policy = RetryPolicy(initial_s=initial, max_s=cap, max_retry_after_s=60)
        delay = policy.delay(attempt, retry_after, random.Random(seed))
        assert delay >= 0
        if retry_after is None:
            assert delay <= cap
        else:
            assert delay >= min(retry_after, 60)
            assert delay <= max(cap, min(retry_after, 60))

    def test_no_jitter_is_exponential(self) -> None:
        """Without jitter the delay doubles up to the cap."""
        policy = RetryPolicy(initial_s=1, max_s=8, jitter=False)
        assert [policy.delay(n) for n in range(5)] == [1, 2, 4, 8, 8]

    def test_jitter_spreads(self) -> None:
        """Full jitter gives different delays for the same attempt."""
        import random

        rng = random.Random(1)
        assert len({RetryPolicy().delay(3, None, rng) for _ in range(20)}) > 1


class TestBodies:
    async def test_empty_2xx_body_is_ok(self, client: HTTPClient, router: respx.Router) -> None:
        """An empty 200 body is accepted (the official client crashes on it)."""
        router.post("/v1/thing").respond(200, content=b"")
        response = await client.request("POST", URL, deadline=Deadline(5), json_body={})
        assert response.json is None

    async def test_non_json_2xx_raises_validation(
        self, client: HTTPClient, router: respx.Router
    ) -> None:
        """A 2xx body that is not JSON raises ResponseValidationError."""
        router.get("/v1/thing").respond(200, content=b"<html>")
        with pytest.raises(ResponseValidationError):
            await client.request("GET", URL, deadline=Deadline(5))

    async def test_non_json_error_body_message(
        self, client: HTTPClient, router: respx.Router
    ) -> None:
        """A non-JSON error body's text (first 200 chars) becomes the message."""
        router.get("/v1/thing").respond(400, content=b"plain failure " * 40)
        with pytest.raises(BadRequestError) as info:
            await client.request("GET", URL, deadline=Deadline(5))
        assert info.value.server_message.startswith("plain failure")
        assert len(info.value.server_message) == 200

    @pytest.mark.parametrize(
        ("body", "expected"),
        [
            ({"error": {"message": "a"}}, "a"),
            ({"message": "b"}, "b"),
            ({"error": "c"}, "c"),
            ({"code": 5, "message": "d", "details": []}, "d"),
            (None, "text"),
        ],
    )
    def test_server_message_shapes(self, body: Any, expected: str) -> None:
        """Fireworks, google.rpc and pydantic error shapes give their message."""
        assert server_message(body, "text") == expected


class TestSecrecy:
    async def test_key_echoed_by_server_is_redacted(
        self, client: HTTPClient, router: respx.Router
    ) -> None:
        """A server that quotes the key back does not put it in our exception."""
        router.get("/v1/thing").respond(401, json={"error": {"message": f"invalid key {API_KEY}"}})
        with pytest.raises(AuthenticationError) as info:
            await client.request("GET", URL, deadline=Deadline(5))
        assert API_KEY not in str(info.value)
        assert API_KEY not in repr(info.value)
        assert API_KEY not in info.value.server_message

    def test_secret_repr(self) -> None:
        """Secret never shows its value."""
        secret = Secret(API_KEY)
        assert API_KEY not in repr(secret)
        assert API_KEY not in str(secret)
        assert secret.get() == API_KEY


class TestLifecycle:
    async def test_closed_client_refuses(self, client: HTTPClient, router: respx.Router) -> None:
        """After aclose, requests raise ManagerClosedError."""
        router.get("/v1/thing").respond(200, json={})
        await client.aclose()
        with pytest.raises(ManagerClosedError):
            await client.request("GET", URL, deadline=Deadline(5))


class TestConfig:
    def test_env_key_fallback(self) -> None:
        """FIREWORKS_API_KEY is used when no key is passed."""
        assert resolve_api_key(None, {"FIREWORKS_API_KEY": "k1"}).get() == "k1"
        assert resolve_api_key("k2", {"FIREWORKS_API_KEY": "k1"}).get() == "k2"

    @pytest.mark.parametrize("env", [{}, {"FIREWORKS_API_KEY": ""}, {"FIREWORKS_API_KEY": "  "}])
    def test_missing_key(self, env: dict[str, str]) -> None:
        """No key at all is a clear error naming the variable."""
        with pytest.raises(InvalidConfigError, match="FIREWORKS_API_KEY"):
            resolve_api_key(None, env)

    def test_key_with_newline(self) -> None:
        """A key with a line break is refused (header injection)."""
        with pytest.raises(InvalidConfigError):
            resolve_api_key("abc\ndef", {})

    @pytest.mark.parametrize("bad", [-1, 0, float("nan"), float("inf"), "1", True, None])
    def test_check_positive(self, bad: Any) -> None:
        """Durations must be positive finite numbers."""
        with pytest.raises(InvalidConfigError):
            check_positive("timeout_s", bad)

    def test_deadline(self) -> None:
        """A deadline counts down on the given monotonic clock."""
        now = [10.0]
        deadline = Deadline(5, clock=lambda: now[0])
        assert deadline.remaining() == 5
        assert not deadline.expired
        now[0] = 13.0
        assert deadline.cap(10) == 2
        now[0] = 16.0
        assert deadline.expired
        assert deadline.remaining() == 0
        with pytest.raises(InvalidConfigError):
            Deadline(-1)


class TestTransience:
    @pytest.mark.parametrize(
        ("error", "expected"),
        [
            (APIConnectionError("x"), True),
            (APIStatusError("x", status_code=503), True),
            (APIStatusError("x", status_code=425), True),
            (APIStatusError("x", status_code=401), False),
            (APIStatusError("x", status_code=404), False),
            (ValueError("x"), False),
        ],
    )
    def test_is_transient(self, error: Exception, expected: bool) -> None:
        """Poll loops wait out connection errors, 408/425/429/5xx; not auth errors or 404."""
        assert is_transient(error) is expected

    def test_not_found_ok(self) -> None:
        """A 404 counts as transient only where asked (hot-load status during restarts)."""
        assert is_transient(APIStatusError("x", status_code=404), not_found_ok=True)


class TestConfigValidation:
    @pytest.mark.parametrize("field", [f.name for f in attrs.fields(Timeouts)])
    @pytest.mark.parametrize("bad", [0, -1, 0.0, float("nan"), float("inf"), True, "1", None])
    def test_timeouts_reject_bad_values(self, field: str, bad: Any) -> None:
        """Every Timeouts field refuses zero, negatives, NaN, inf, bools and non-numbers."""
        with pytest.raises(InvalidConfigError, match=re.escape(f"Timeouts.{field}")):
            Timeouts(**{field: bad})

    @pytest.mark.parametrize("field", ["initial_s", "max_s", "max_retry_after_s"])
    @pytest.mark.parametrize("bad", [0, -0.5, float("nan"), float("-inf"), float("inf"), False])
    def test_retry_policy_rejects_bad_values(self, field: str, bad: Any) -> None:
        """Every RetryPolicy duration refuses the same values, naming the field."""
        with pytest.raises(InvalidConfigError, match=re.escape(f"RetryPolicy.{field}")):
            RetryPolicy(**{field: bad})

    @pytest.mark.parametrize("bad", [1, "yes", None])
    def test_retry_policy_jitter_is_a_bool(self, bad: Any) -> None:
        """jitter must be True or False."""
        with pytest.raises(InvalidConfigError, match=r"RetryPolicy\.jitter"):
            RetryPolicy(jitter=bad)

    def test_evolve_validates_too(self) -> None:
        """attrs.evolve runs the same validators."""
        with pytest.raises(InvalidConfigError):
            attrs.evolve(Timeouts(), operation_s=-1)

    def test_valid_values_construct(self) -> None:
        """Ints and floats that are positive and finite are accepted."""
        assert Timeouts(connect_s=1, operation_s=0.001).connect_s == 1
        assert RetryPolicy(initial_s=1, max_s=2.5, max_retry_after_s=1).max_retry_after_s == 1

    def test_poll_interval_is_clamped_to_the_floor(self) -> None:
        """A positive interval below the floor is raised to it; others are kept."""
        assert POLL_INTERVAL_FLOOR_S == 0.05
        assert check_poll_interval("poll_interval_s", 0.001) == POLL_INTERVAL_FLOOR_S
        assert check_poll_interval("poll_interval_s", 0.05) == 0.05
        assert check_poll_interval("poll_interval_s", 2) == 2.0

    @pytest.mark.parametrize("bad", [0, -1, float("nan"), float("inf"), True, "1", None])
    def test_poll_interval_rejects_bad_values(self, bad: Any) -> None:
        """Zero, negative, NaN, inf, bool and non-numbers raise, naming the parameter."""
        with pytest.raises(InvalidConfigError, match="poll_interval_s"):
            check_poll_interval("poll_interval_s", bad)


class TestRetryAfterCap:
    @pytest.mark.parametrize("value", ["1e9", "Fri, 01 Jan 2999 00:00:00 GMT", "99999999999"])
    def test_error_retry_after_caps_bare_errors(self, value: str) -> None:
        """A status error built elsewhere is capped by the default policy (60 s)."""
        error = APIStatusError("x", status_code=503, headers={"Retry-After": value})
        assert error_retry_after(error) == RetryPolicy().max_retry_after_s

    def test_error_retry_after_prefers_the_stamped_value(self) -> None:
        """An error from HTTPClient.request carries its client's capped value."""
        error = APIStatusError("x", status_code=503, headers={"retry-after": "1e9"})
        error.retry_after_s = 0.5
        assert error_retry_after(error) == 0.5

    def test_error_retry_after_without_header(self) -> None:
        """No header, or not a status error: None."""
        assert error_retry_after(APIStatusError("x", status_code=503)) is None
        assert error_retry_after(APIConnectionError("x")) is None

    async def test_request_stamps_the_capped_value(self, router: respx.Router) -> None:
        """request() caps Retry-After by its own policy and records it on the error."""
        router.get("/v1/thing").respond(503, headers={"Retry-After": "1e9"})
        http = HTTPClient(
            api_key=Secret(API_KEY),
            additional_headers={},
            verify_ssl=None,
            transport=httpx.MockTransport(router.async_handler),
            max_concurrency=1,
            timeouts=Timeouts(),
            retry=RetryPolicy(max_retry_after_s=3.0),
        )
        try:
            with pytest.raises(InternalServerError) as caught:
                await http.request("GET", URL, deadline=Deadline(60), retry=False)
        finally:
            await http.aclose()
        assert caught.value.retry_after_s == 3.0
        assert error_retry_after(caught.value) == 3.0

    async def test_huge_retry_after_sleeps_the_cap(
        self, client: HTTPClient, router: respx.Router, sleeps: Sleeps
    ) -> None:
        """A retried request sleeps max_retry_after_s, not 1e9 s."""
        router.get("/v1/thing").mock(
            side_effect=sequence(
                httpx.Response(503, headers={"Retry-After": "1e9"}), httpx.Response(200, json={})
            )
        )
        await client.request("GET", URL, deadline=Deadline(3600))
        assert sleeps.delays == [FAST_RETRY.max_retry_after_s]

    def test_parse_survives_absurd_dates(self) -> None:
        """Dates beyond what datetime holds, and overflowing numbers, are ignored or capped."""
        assert parse_retry_after("Fri, 01 Jan 99999 00:00:00 GMT") is None
        assert parse_retry_after("1e999") is None
        assert parse_retry_after("Fri, 01 Jan 2999 00:00:00 GMT") > 3e10  # type: ignore[operator]


class TestRedaction:
    async def test_headers_and_2xx_bodies_are_redacted(
        self, client: HTTPClient, router: respx.Router
    ) -> None:
        """The key is redacted from error headers, and from a 2xx JSON body we return."""
        router.get("/v1/thing").mock(
            side_effect=sequence(
                httpx.Response(
                    403, headers={"X-Seen": f"key={API_KEY}"}, json={"error": {"k": API_KEY}}
                ),
                httpx.Response(200, json={"echo": [API_KEY, {"deep": f"Bearer {API_KEY}"}]}),
            )
        )
        with pytest.raises(PermissionDeniedError) as caught:
            await client.request("GET", URL, deadline=Deadline(5))
        assert caught.value.headers["x-seen"] == "key=***"
        assert caught.value.body == {"error": {"k": "***"}}
        response = await client.request("GET", URL, deadline=Deadline(5))
        assert response.json == {"echo": ["***", {"deep": "Bearer ***"}]}

    def test_redact_text_rules(self) -> None:
        """Long keys anywhere; mid-length keys as whole tokens; short keys as whole values."""
        long_key = "k" * 30
        assert redact_text(f"x{long_key}y", long_key) == "x***y"
        mid = "abc123XYZ"  # 9 characters
        assert redact_text(f"key {mid}, again", mid) == "key ***, again"
        assert redact_text(f"{mid}suffix and pre{mid}", mid) == f"{mid}suffix and pre{mid}"
        short = "ab1"
        assert redact_text("cab1 ab1 tab1", short) == "cab1 ab1 tab1"
        assert redact_text(" ab1 ", short) == "***"
        assert redact_text("Bearer ab1", short) == "Bearer ***"
        assert redact_text("anything", "") == "anything"

    def test_redact_secret_walks_json_and_headers(self) -> None:
        """Keys and values of nested mappings and lists are redacted; others kept."""
        key = "fw-0123456789abcdef0123456789"
        value = {key: [key, 1, None, {"x": (key, True)}], "n": 2.5}
        assert redact_secret(value, key) == {
            "***": ["***", 1, None, {"x": ["***", True]}],
            "n": 2.5,
        }
        assert redact_secret(httpx.Headers({"a": key}), key) == {"a": "***"}

    def test_redact_secret_survives_deep_structures(self) -> None:
        """A structure too deep to walk is withheld as a whole, never a RecursionError."""
        deep: Any = "x"
        for _ in range(100_000):
            deep = [deep]
        assert redact_secret(deep, "fw-0123456789abcdef0123456789") == "***"

    async def test_key_not_in_third_party_debug_logs(
        self, client: HTTPClient, router: respx.Router, caplog: pytest.LogCaptureFixture
    ) -> None:
        """httpx/httpcore log records that quote the key are redacted while a client lives."""
        caplog.set_level(logging.DEBUG)
        logging.getLogger("httpcore.http11").debug("headers=%s", [(b"x", API_KEY.encode())])
        assert API_KEY not in caplog.text
        assert "***" in caplog.text


class TestEventLoopBinding:
    def test_second_loop_raises_a_typed_error(self) -> None:
        """Use from a second loop raises EventLoopMismatchError; the first loop can close it."""
        router = respx.Router(base_url=BASE_URL)
        router.get("/v1/thing").respond(json={})
        http = HTTPClient(
            api_key=Secret(API_KEY),
            additional_headers={},
            verify_ssl=None,
            transport=httpx.MockTransport(router.async_handler),
            max_concurrency=1,
            timeouts=Timeouts(),
            retry=FAST_RETRY,
        )

        async def get() -> Any:
            return await http.request("GET", URL, deadline=Deadline(5))

        with asyncio.Runner() as first, asyncio.Runner() as second:
            assert first.run(get()).json == {}
            with pytest.raises(EventLoopMismatchError, match="first used on") as caught:
                second.run(get())
            assert isinstance(caught.value, ManagerClosedError)
            with pytest.raises(EventLoopMismatchError, match="aclose"):
                second.run(http.aclose())
            assert not http.closed
            first.run(http.aclose())
        assert http.closed

    def test_close_after_the_first_loop_ended(self, caplog: pytest.LogCaptureFixture) -> None:
        """Closing after the first loop has ended marks the client closed, with a warning."""
        router = respx.Router(base_url=BASE_URL)
        router.get("/v1/thing").respond(json={})
        http = HTTPClient(
            api_key=Secret(API_KEY),
            additional_headers={},
            verify_ssl=None,
            transport=httpx.MockTransport(router.async_handler),
            max_concurrency=1,
            timeouts=Timeouts(),
            retry=FAST_RETRY,
        )

        async def get() -> Any:
            return await http.request("GET", URL, deadline=Deadline(5))

        asyncio.run(get())
        asyncio.run(http.aclose())
        assert http.closed
        assert "abandoned" in caplog.text


class _NoNetwork(httpx.AsyncHTTPTransport):
    """A real network transport class (so the warning logic sees one) that never connects."""

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, json={})


def _plain_client(transport: httpx.AsyncBaseTransport | None) -> HTTPClient:
    return HTTPClient(
        api_key=Secret(API_KEY),
        additional_headers={},
        verify_ssl=None,
        transport=transport,
        max_concurrency=1,
        timeouts=Timeouts(),
        retry=FAST_RETRY,
    )


class TestInsecureTransport:
    async def test_warns_once_for_plain_http_to_a_remote_host(
        self, caplog: pytest.LogCaptureFixture
    ) -> None:
        """The key over http:// to a non-loopback host warns once (warning and log)."""
        http = _plain_client(_NoNetwork())
        try:
            with pytest.warns(InsecureTransportWarning, match="api.example.com") as record:
                await http.request(
                    "GET", httpx.URL("http://api.example.com/x"), deadline=Deadline(5)
                )
            # Warnings are errors in this suite: a second one would raise here.
            await http.request("GET", httpx.URL("http://other.example/x"), deadline=Deadline(5))
        finally:
            await http.aclose()
        assert len(record) == 1
        assert API_KEY not in str(record[0].message)
        assert any(
            r.levelno == logging.WARNING and "plain http" in r.message for r in caplog.records
        )

    @pytest.mark.parametrize(
        "url",
        [
            "http://127.0.0.1:8000/x",
            "http://127.42.0.9/x",
            "http://[::1]:9/x",
            "http://localhost:1/x",
            "http://api.localhost/x",
            "https://api.example.com/x",
        ],
    )
    async def test_no_warning_for_loopback_or_tls(self, url: str) -> None:
        """Loopback hosts and https never warn (warnings are errors in this suite)."""
        http = _plain_client(_NoNetwork())
        try:
            await http.request("GET", httpx.URL(url), deadline=Deadline(5))
        finally:
            await http.aclose()

    async def test_no_warning_for_in_process_transports(self) -> None:
        """An ASGI app or a mock answers in process: nothing travels, nothing to warn about."""
        http = _plain_client(httpx.MockTransport(lambda request: httpx.Response(200, json={})))
        try:
            await http.request("GET", httpx.URL("http://local/x"), deadline=Deadline(5))
        finally:
            await http.aclose()

    @pytest.mark.parametrize(
        ("host", "expected"),
        [
            ("127.0.0.1", True),
            ("127.255.255.254", True),
            ("::1", True),
            ("[::1]", True),
            ("::ffff:127.0.0.1", True),
            ("localhost", True),
            ("LOCALHOST.", True),
            ("10.0.0.1", False),
            ("128.0.0.1", False),
            ("localhost.example.com", False),
            ("example.com", False),
        ],
    )
    def test_is_loopback(self, host: str, expected: bool) -> None:
        """127.0.0.0/8, ::1 and localhost are loopback; nothing else is."""
        assert is_loopback(host) is expected


class TestDefaultHeaders:
    async def test_env_headers_read_per_request_and_overridable(
        self, router: respx.Router, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """Environment headers follow the environment per request; a caller's header wins."""
        route = router.get("/v1/thing").respond(json={})
        http = HTTPClient(
            api_key=Secret(API_KEY),
            additional_headers={"accept-encoding": "identity", "X-FIREWORKS-SESSION-ID": "mine"},
            verify_ssl=None,
            transport=httpx.MockTransport(router.async_handler),
            max_concurrency=1,
            timeouts=Timeouts(),
            retry=FAST_RETRY,
        )
        try:
            await http.request("GET", URL, deadline=Deadline(5))
            assert "x-fireworks-client-source" not in route.calls.last.request.headers
            monkeypatch.setenv("FIREWORKS_CLIENT_SOURCE", "fireworks-training-skill/1")
            monkeypatch.setenv("FIREWORKS_SESSION_ID", "3f1c9a4e-5b7d-4c2a-9e8f-0a1b2c3d4e5f")
            await http.request("GET", URL, deadline=Deadline(5))
        finally:
            await http.aclose()
        sent = route.calls.last.request.headers
        assert sent["x-fireworks-client-source"] == "fireworks-training-skill/1"
        assert sent.get_list("x-fireworks-session-id") == ["mine"]
        assert sent.get_list("accept-encoding") == ["identity"]

    async def test_accept_encoding_is_what_we_can_inflate(
        self, client: HTTPClient, router: respx.Router
    ) -> None:
        """We ask only for the codings we decode in bounded steps."""
        route = router.get("/v1/thing").respond(json={})
        await client.request("GET", URL, deadline=Deadline(5))
        assert route.calls.last.request.headers["accept-encoding"] == "gzip, deflate"


async def test_attempt_budget_starts_when_a_slot_is_free() -> None:
    """A request queued behind a full concurrency gate gets its whole attempt budget once it
    can be sent: waiting for a slot is bounded by the deadline, not by the attempt timeout."""

    async def slow(request: httpx.Request) -> httpx.Response:
        await anyio.sleep(0.2)
        return httpx.Response(200, json={"ok": True})

    client = HTTPClient(
        api_key=resolve_api_key(API_KEY),
        additional_headers={},
        verify_ssl=None,
        transport=httpx.MockTransport(slow),
        max_concurrency=1,
        timeouts=Timeouts(control_plane_s=1.0, operation_s=60.0),
        retry=RetryPolicy(),
    )
    url = httpx.URL(f"{BASE_URL}/v1/accounts")
    answers: list[int] = []

    async def one() -> None:
        response = await client.request("GET", url, deadline=Deadline(60.0), retry=False)
        answers.append(response.status_code)

    try:
        async with anyio.create_task_group() as tg:
            for _ in range(8):  # the last one queues ~1.4 s, longer than its 1 s attempt budget
                tg.start_soon(one)
    finally:
        await client.aclose()
    assert answers == [200] * 8
