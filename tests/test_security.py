"""Security: the API key never leaks, TLS is verified, redirects are not followed, auth stays.

The key is looked for in every repr, every log record at every level (httpx and httpcore debug
logs included), every exception message along the whole cause chain, and the CLI's output, while
the SDK runs full lifecycles with failures against the local control plane over real HTTP.
"""

from __future__ import annotations

import json
import logging
import ssl
import traceback
from collections.abc import Iterator
from typing import Any

import anyio
import httpx
import pytest
from local_kit import BASE_MODEL, FAST_RETRY, config, endpoint, small_timeouts

from fireworks_deploy import (
    APIStatusError,
    AsyncDeploymentManager,
    DeploymentManager,
    FireworksError,
    InvalidConfigError,
)
from fireworks_deploy._config import Secret, resolve_api_key
from fireworks_deploy._errors import InsecureTransportWarning
from fireworks_deploy._transport import AiohttpTransport
from fireworks_deploy.local import Fault, LocalControlPlane, LocalServer

KEY = "fw-SUPER-SECRET-9d8c7b6a5f4e"
MODES = ("inprocess", "loopback")


class EchoKey:
    """ASGI wrapper: some answers quote the request's credentials back, as bad gateways do."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self.echo: dict[str, tuple[int, str]] = {}

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "http" and scope["path"] in self.echo:
            status, kind = self.echo.pop(scope["path"])
            headers = {k.decode(): v.decode() for k, v in scope["headers"]}
            quoted = f"X-Api-Key={headers.get('x-api-key')} auth={headers.get('authorization')}"
            body = (
                json.dumps({"error": {"message": f"rejected {quoted}", "quoted": quoted}})
                if kind == "json"
                else f"<html>{quoted}</html>"
            ).encode()
            await send({"type": "http.response.start", "status": status, "headers": []})
            await send({"type": "http.response.body", "body": body})
            return
        await self.app(scope, receive, send)


def leaks(text: str) -> bool:
    return KEY in text


def chain(exc: BaseException) -> Iterator[BaseException]:
    seen: set[int] = set()
    todo = [exc]
    while todo:
        current = todo.pop()
        if id(current) in seen:
            continue
        seen.add(id(current))
        yield current
        todo += [e for e in (current.__cause__, current.__context__) if e is not None]
        if hasattr(current, "result"):  # FleetError
            todo += list(current.result.failed.values())


def assert_no_key_in(exc: BaseException) -> None:
    for link in chain(exc):
        assert not leaks(str(link)), f"key in message of {type(link).__name__}"
        assert not leaks(repr(link)), f"key in repr of {type(link).__name__}"
    formatted = "".join(traceback.format_exception(exc))
    assert not leaks(formatted), "key in the formatted traceback"


@pytest.fixture
def all_logs(caplog: pytest.LogCaptureFixture) -> pytest.LogCaptureFixture:
    """Every record of every logger at DEBUG, httpx and httpcore included."""
    caplog.set_level(logging.DEBUG)
    for name in ("httpx", "httpcore", "fireworks_deploy", "uvicorn", "uvicorn.error"):
        caplog.set_level(logging.DEBUG, logger=name)
    return caplog


def assert_no_key_in_logs(caplog: pytest.LogCaptureFixture) -> None:
    assert caplog.records, "nothing was logged: the capture is not working"
    formatter = logging.Formatter()
    for record in caplog.records:
        text = formatter.format(record) + repr(record.args)
        assert not leaks(text), f"key in a log record of {record.name}: {record.getMessage()}"


def test_reprs_hide_the_key() -> None:
    """Managers, the secret holder, leases and config errors never show the key."""
    secret = resolve_api_key(KEY)
    assert not leaks(repr(secret))
    assert not leaks(str(secret))
    assert secret == Secret(KEY)
    transport = httpx.MockTransport(lambda request: httpx.Response(404))
    fw = AsyncDeploymentManager(api_key=KEY, base_url="http://x.test", transport=transport)
    assert not leaks(repr(fw))
    assert not leaks(repr(fw.lease()))
    assert not leaks(repr(vars(fw._http)))
    with DeploymentManager(api_key=KEY, base_url="http://x.test", transport=transport) as sync:
        assert not leaks(repr(sync))
        assert not leaks(repr(sync.lease()))
    with pytest.raises(InvalidConfigError) as caught:
        resolve_api_key(KEY + "\n")
    assert_no_key_in(caught.value)


@pytest.mark.parametrize("mode", MODES)
async def test_no_key_in_logs_or_errors_through_a_lifecycle(
    mode: str, all_logs: pytest.LogCaptureFixture
) -> None:
    """A lifecycle with retries, failures and echoed credentials leaks the key nowhere."""
    plane = LocalControlPlane(boot_seconds=0.05, hotload_seconds=0.05, api_key=KEY)
    echo = EchoKey(plane.app)
    plane.__dict__["app"] = echo
    for fault in (
        Fault("status", endpoint="get", status=503, times=2, retry_after=0.01),
        Fault("drop", endpoint="hotload", times=1),
        Fault("hang", endpoint="hotload_status", times=1),
        Fault("malformed", endpoint="list", times=1),
        Fault("hotload_error", identity="bad-snap"),
    ):
        plane.faults.add(fault)
    errors: list[BaseException] = []
    with endpoint(plane, mode) as (base_url, transport):
        async with AsyncDeploymentManager(
            api_key=KEY,
            base_url=base_url,
            transport=transport,
            retry=FAST_RETRY,
            timeouts=small_timeouts(5.0, 0.5),
        ) as fw:

            async def expect_error(coro: Any) -> None:
                try:
                    await coro
                except FireworksError as exc:
                    errors.append(exc)
                else:
                    raise AssertionError("expected a typed error")

            await fw.create_or_get(config("sec"))
            await fw.wait_for_ready("sec", timeout_s=5, poll_interval_s=0.02)
            await fw.hotload_and_wait("sec", BASE_MODEL, "good", timeout_seconds=5)
            await expect_error(
                fw.hotload_and_wait("sec", BASE_MODEL, "bad-snap", timeout_seconds=5)
            )
            await expect_error(fw.list_deployments())
            await expect_error(fw.wait_for_ready_many(["sec", "missing"], 1, 0.02))
            acct = "/v1/accounts/local/deployments"
            echo.echo[f"{acct}/sec"] = (400, "json")
            await expect_error(fw.get("sec"))
            echo.echo[f"{acct}/sec"] = (401, "json")
            await expect_error(fw.scale_to_zero("sec"))
            echo.echo[f"{acct}/sec"] = (200, "html")
            await expect_error(fw.get("sec"))
            echo.echo[acct] = (400, "html")  # the create POST, rejected with an HTML page
            await expect_error(fw.create_or_get(config("other")))
            await fw.warmup("accounts/local/deployments/sec", max_retries=3, retry_interval_s=0.01)
            await fw.delete("sec", wait=True, timeout_s=5)
        async with AsyncDeploymentManager(
            api_key="wrong-key", base_url=base_url, transport=transport, retry=FAST_RETRY
        ) as wrong:
            await expect_error(wrong.get("sec"))
    assert len(errors) == 8
    for error in errors:
        assert_no_key_in(error)
        if isinstance(error, APIStatusError):
            assert not leaks(str(error.server_message))
            assert not leaks(str(error.body)), "key in the error's body"
    assert_no_key_in_logs(all_logs)


def test_cli_output_never_shows_the_key(
    capsys: pytest.CaptureFixture[str],
    all_logs: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Every CLI command, successful or failing, prints and logs no key."""
    cli = pytest.importorskip("fireworks_deploy._cli", reason="the CLI is not importable yet")
    plane = LocalControlPlane(boot_seconds=0.05, hotload_seconds=0.05, api_key=KEY)
    plane.faults.add(Fault("status", endpoint="scale", status=500, times=None))
    echo = EchoKey(plane.app)
    plane.__dict__["app"] = echo
    with LocalServer(plane) as server:
        common = ["--base-url", server.base_url, "--api-key", KEY, "--timeout", "5", "-q"]
        echo_401 = "/v1/accounts/local/deployments/c1"
        runs: list[tuple[list[str], str | None]] = [
            (
                ["create", "c1", "--base-model", BASE_MODEL, "--wait", "--poll-interval", "0.05"],
                None,
            ),
            (["get", "c1"], None),
            (["get", "c1", "--json"], None),
            (["list", "--json"], None),
            (["hotload", "c1", "--snapshot", "s1", "--poll-interval", "0.05"], None),
            (["hotload-status", "c1"], None),
            (["warmup", "accounts/local/deployments/c1", "--retry-interval", "0.05"], None),
            (["scale-to-zero", "c1"], None),  # fails: 500
            (["get", "missing"], None),  # fails: 404
            (["get", "c1"], echo_401),  # fails: 401 quoting the key
            (["delete", "c1", "--wait"], None),
        ]
        codes = []
        for argv, echo_path in runs:
            if echo_path is not None:
                echo.echo[echo_path] = (401, "json")
            codes.append(cli.main([*argv, *common]))
        monkeypatch.setenv("FIREWORKS_API_KEY", KEY)
        codes.append(cli.main(["get", "c1", "--base-url", server.base_url]))
        codes.append(cli.main(["get", "c1", "--base-url", server.base_url, "--api-key", KEY + "x"]))
    captured = capsys.readouterr()
    assert codes[0] == 0
    assert any(code != 0 for code in codes), "the failing commands must fail"
    assert not leaks(captured.out)
    assert not leaks(captured.err)
    assert_no_key_in_logs(all_logs)


def ssl_context(fw: AsyncDeploymentManager, url: str) -> ssl.SSLContext | None:
    """The TLS context the manager's transport uses for `url` (None: TLS verification off)."""
    transport = fw._http._client_for(httpx.URL(url))._transport
    if isinstance(transport, AiohttpTransport):  # the `fast` extra: False means "do not verify"
        setting = transport._ssl
        return setting if isinstance(setting, ssl.SSLContext) else None
    context: ssl.SSLContext = transport._pool._ssl_context  # type: ignore[attr-defined]
    return context


def verifies(context: ssl.SSLContext | None) -> bool:
    return (
        context is not None and context.verify_mode == ssl.CERT_REQUIRED and context.check_hostname
    )


@pytest.mark.parametrize("url", ["https://api.fireworks.ai", "https://127.0.0.1:8443"])
async def test_tls_is_verified_by_default(url: str) -> None:
    """https is verified by default, even for an IP literal (unlike the official client)."""
    async with AsyncDeploymentManager(api_key=KEY, base_url=url) as fw:
        assert verifies(ssl_context(fw, url))


async def test_tls_verification_off_only_when_asked() -> None:
    """verify_ssl=False turns verification off; True and None keep it on."""
    url = "https://api.fireworks.ai"
    async with AsyncDeploymentManager(api_key=KEY, base_url=url, verify_ssl=False) as fw:
        context = ssl_context(fw, url)
        assert context is None or context.verify_mode == ssl.CERT_NONE
    async with AsyncDeploymentManager(api_key=KEY, base_url=url, verify_ssl=True) as fw:
        assert verifies(ssl_context(fw, url))
    with pytest.raises(InvalidConfigError):
        AsyncDeploymentManager(api_key=KEY, base_url=url, verify_ssl="no")  # type: ignore[arg-type]


@pytest.mark.parametrize("status", [301, 302, 303, 307, 308])
async def test_redirects_are_not_followed(status: int) -> None:
    """A redirect to another origin is reported, never followed with the credentials."""
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(status, headers={"location": "https://evil.example/steal"})

    async with AsyncDeploymentManager(
        api_key=KEY,
        account_id="acct",
        base_url="https://api.fireworks.example",
        transport=httpx.MockTransport(handler),
        retry=FAST_RETRY,
        timeouts=small_timeouts(1.0, 1.0),
    ) as fw:
        with pytest.raises(APIStatusError) as caught:
            await fw.get("d")
        with pytest.raises(APIStatusError):
            await fw.hotload("d", BASE_MODEL, "s")
        with pytest.raises(APIStatusError):
            await fw.wait_for_ready("d", timeout_s=1, poll_interval_s=0.01)
    assert caught.value.status_code == status
    assert {r.url.host for r in seen} == {"api.fireworks.example"}
    assert len(seen) == 3


@pytest.mark.parametrize(
    "headers",
    [
        {"X-Api-Key": "other"},
        {"x-api-key": "other"},
        {"Authorization": "Bearer other"},
        {"AUTHORIZATION": "Basic Zm9vOmJhcg=="},
    ],
)
async def test_additional_headers_cannot_replace_auth(headers: dict[str, str]) -> None:
    """Authentication headers in additional_headers are refused, before any request."""
    seen: list[httpx.Request] = []
    transport = httpx.MockTransport(lambda r: seen.append(r) or httpx.Response(404))  # type: ignore[func-returns-value]
    with pytest.raises(InvalidConfigError) as caught:
        AsyncDeploymentManager(api_key=KEY, additional_headers=headers, transport=transport)
    assert not leaks(str(caught.value))
    with pytest.raises(InvalidConfigError):
        await anyio.to_thread.run_sync(
            lambda: DeploymentManager(api_key=KEY, additional_headers=headers, transport=transport)
        )
    assert seen == []


async def test_extra_headers_travel_with_auth() -> None:
    """Allowed extra headers are sent alongside, never instead of, the key."""
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(404, json={"error": {"message": "nope"}})

    async with AsyncDeploymentManager(
        api_key=KEY,
        account_id="acct",
        base_url="https://api.fireworks.example",
        additional_headers={"X-Fireworks-Gateway-Secret": "g"},
        transport=httpx.MockTransport(handler),
    ) as fw:
        assert await fw.get("d") is None
    assert seen[0].headers["x-api-key"] == KEY
    assert seen[0].headers["x-fireworks-gateway-secret"] == "g"


class NoNetwork(httpx.AsyncHTTPTransport):
    """A network transport class (so the SDK treats requests as travelling) that never connects."""

    def __init__(self) -> None:
        super().__init__()
        self.seen: list[httpx.Request] = []

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        self.seen.append(request)
        return httpx.Response(404, json={"error": {"message": "nope"}})


async def test_plain_http_to_a_remote_host_warns_once_per_manager(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Each manager warns once (InsecureTransportWarning + a WARNING log) before the key leaves
    over http:// for a host that is not loopback; the warning never shows the key."""
    for _ in range(2):  # a second manager warns again: the warning is per manager
        transport = NoNetwork()
        async with AsyncDeploymentManager(
            api_key=KEY, account_id="acct", base_url="http://api.example.com", transport=transport
        ) as fw:
            with pytest.warns(InsecureTransportWarning) as record:
                assert await fw.get("d") is None
            assert await fw.get("d") is None  # no second warning (warnings are errors here)
        assert len(record) == 1
        assert not leaks(str(record[0].message))
        assert len(transport.seen) == 2
    warned = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warned) == 2
    assert all(not leaks(r.getMessage()) for r in warned)


def test_sync_manager_warns_too() -> None:
    """The sync facade's requests (on its portal thread) warn the same way."""
    with pytest.warns(InsecureTransportWarning):  # noqa: SIM117 - the manager is inside
        with DeploymentManager(
            api_key=KEY, account_id="acct", base_url="http://10.1.2.3:8080", transport=NoNetwork()
        ) as fw:
            assert fw.get("d") is None


@pytest.mark.parametrize("mode", MODES)
async def test_local_control_plane_never_warns(mode: str) -> None:
    """In process (ASGI, fake host) and over loopback: no warning (they are errors here)."""
    plane = LocalControlPlane(boot_seconds=0, hotload_seconds=0, api_key=KEY)
    with endpoint(plane, mode) as (base_url, transport):
        async with AsyncDeploymentManager(
            api_key=KEY, base_url=base_url, transport=transport, retry=FAST_RETRY
        ) as fw:
            assert await fw.get("missing") is None


async def test_header_echo_of_the_key_is_redacted(all_logs: pytest.LogCaptureFixture) -> None:
    """A key a server quotes in response headers is in neither the error nor any log record."""

    def handler(request: httpx.Request) -> httpx.Response:
        key = request.headers["x-api-key"]
        return httpx.Response(
            401, headers={"X-Echo": key, "WWW-Authenticate": f"Bearer {key}"}, text=f"no {key}"
        )

    async with AsyncDeploymentManager(
        api_key=KEY,
        account_id="acct",
        base_url="https://api.fireworks.example",
        transport=httpx.MockTransport(handler),
    ) as fw:
        with pytest.raises(APIStatusError) as caught:
            await fw.get("d")
    assert_no_key_in(caught.value)
    assert not leaks(repr(caught.value.headers))
    assert not leaks(str(caught.value.body))
    assert_no_key_in_logs(all_logs)


@pytest.mark.parametrize("key", ["k", "abc", "short7!"])
async def test_short_keys_do_not_corrupt_messages(key: str) -> None:
    """A key under 8 characters is not searched for in text: messages stay intact."""

    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(
            400,
            json={"error": {"message": "bad request: check the knobs k, abc"}},
            headers={"X": key},
        )

    async with AsyncDeploymentManager(
        api_key=key,
        account_id="acct",
        base_url="https://api.fireworks.example",
        transport=httpx.MockTransport(handler),
    ) as fw:
        with pytest.raises(APIStatusError) as caught:
            await fw.get("d")
    assert caught.value.server_message == "bad request: check the knobs k, abc"
    assert caught.value.headers["x"] == "***"  # a whole value equal to the key is still hidden
