"""The transport under our pooled clients (fireworks_deploy._transport).

Which one is chosen (aiohttp on asyncio when installed, httpcore otherwise, an explicit
`transport=` always, `FIREWORKS_DEPLOY_TRANSPORT` to force), and what `AiohttpTransport`
guarantees, against small raw-socket servers on loopback: streamed bodies, no decompression,
per-request timeouts, aiohttp errors as httpx's, connections dropped or reused as they should
be, and closing. The aiohttp tests are skipped without the `fast` extra.
"""

from __future__ import annotations

import asyncio
import contextlib
import gzip
import json
import socket
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import httpx
import pytest
import sniffio
from core_testkit import API_KEY
from local_kit import closed_port

from fireworks_deploy import AsyncDeploymentManager, InvalidConfigError
from fireworks_deploy import _transport as transport_mod
from fireworks_deploy._failures import unreachable_cause
from fireworks_deploy._transport import (
    TRANSPORT_ENV,
    AiohttpTransport,
    aiohttp_available,
    default_transport,
    transport_choice,
)
from fireworks_deploy.local import LocalControlPlane, LocalServer

needs_aiohttp = pytest.mark.skipif(
    not aiohttp_available(), reason="the fast extra (aiohttp) is not installed"
)
PROMPT_S = 10.0
LIMITS = httpx.Limits(max_connections=4, max_keepalive_connections=4, keepalive_expiry=30)

Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


# ---------------------------------------------------------------------------------------------
# which transport
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [("", "auto"), ("auto", "auto"), ("httpcore", "httpcore"), (" HTTPCORE ", "httpcore")],
)
def test_choice_from_the_environment(value: str, expected: str) -> None:
    assert transport_choice({TRANSPORT_ENV: value}) == expected
    assert transport_choice({}) == "auto"


def test_a_bad_choice_is_a_typed_error_before_any_request(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    with pytest.raises(InvalidConfigError, match="not one of"):
        transport_choice({TRANSPORT_ENV: "curl"})
    monkeypatch.setenv(TRANSPORT_ENV, "curl")
    with pytest.raises(InvalidConfigError, match=TRANSPORT_ENV):
        AsyncDeploymentManager(api_key=API_KEY, account_id="acme")


def test_forcing_aiohttp_without_it_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(transport_mod, "aiohttp_available", lambda: False)
    with pytest.raises(InvalidConfigError, match=r"fireworks-deploy\[fast\]"):
        transport_choice({TRANSPORT_ENV: "aiohttp"})
    # and without it, auto is httpcore
    assert default_transport("auto", verify=True, limits=LIMITS) is None


async def test_httpcore_when_asked_or_off_asyncio() -> None:
    assert default_transport("httpcore", verify=True, limits=LIMITS) is None
    token = sniffio.current_async_library_cvar.set("trio")
    try:
        # aiohttp runs on asyncio only: trio keeps httpcore even when aiohttp is forced
        assert default_transport("auto", verify=True, limits=LIMITS) is None
        assert default_transport("aiohttp", verify=True, limits=LIMITS) is None
    finally:
        sniffio.current_async_library_cvar.reset(token)


def test_no_event_loop_is_httpcore() -> None:
    assert default_transport("auto", verify=True, limits=LIMITS) is None


@needs_aiohttp
async def test_aiohttp_by_default_on_asyncio() -> None:
    for choice in ("auto", "aiohttp"):
        chosen = default_transport(choice, verify=True, limits=LIMITS)
        assert isinstance(chosen, AiohttpTransport)
        await chosen.aclose()


@pytest.fixture
def plane_server() -> AsyncIterator[LocalServer]:
    plane = LocalControlPlane()
    plane.create_deployment("d1", "accounts/fireworks/models/qwen3-8b")
    with LocalServer(plane) as server:
        yield server


async def _transport_types(base_url: str, **kwargs: Any) -> list[str]:
    async with AsyncDeploymentManager(
        api_key=API_KEY, base_url=base_url, account_id="local", **kwargs
    ) as fw:
        await fw.get("d1")
        return [type(c._transport).__name__ for c in fw._http._clients.values()]


@pytest.fixture(params=["", "httpcore", "aiohttp"])
def forced(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """`FIREWORKS_DEPLOY_TRANSPORT` set to each choice in turn ("" = unset)."""
    choice: str = request.param
    if choice == "aiohttp" and not aiohttp_available():
        pytest.skip("the fast extra (aiohttp) is not installed")
    monkeypatch.setenv(TRANSPORT_ENV, choice)
    return choice


async def test_the_manager_uses_the_chosen_transport(
    plane_server: LocalServer, forced: str
) -> None:
    """Over loopback, the pooled clients run on the transport the rules pick."""
    expected = "AiohttpTransport" if forced != "httpcore" and aiohttp_available() else None
    assert await _transport_types(plane_server.base_url) == [
        expected or httpx.AsyncHTTPTransport.__name__
    ]


async def test_an_explicit_transport_wins(plane_server: LocalServer, forced: str) -> None:
    """A `transport=` given to the manager is used whatever the environment asks for."""
    async with httpx.AsyncHTTPTransport() as explicit:
        assert await _transport_types(plane_server.base_url, transport=explicit) == [
            "AsyncHTTPTransport"
        ]


# ---------------------------------------------------------------------------------------------
# AiohttpTransport against raw-socket servers
# ---------------------------------------------------------------------------------------------


class RawServer:
    """A loopback asyncio server running `handler` per connection, counting connections."""

    def __init__(self, handler: Handler) -> None:
        self.handler = handler
        self.connections = 0
        self.connected = asyncio.Event()
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    @property
    def url(self) -> str:
        assert self._server is not None
        port = self._server.sockets[0].getsockname()[1]
        return f"http://127.0.0.1:{port}"

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        self.connected.set()
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)  # type: ignore[arg-type]
        try:
            await self.handler(reader, writer)
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            self._tasks.discard(task)  # type: ignore[arg-type]
            writer.close()
            with contextlib.suppress(ConnectionError):
                await writer.wait_closed()

    async def __aenter__(self) -> RawServer:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._server is not None
        self._server.close()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self._server.wait_closed()


async def read_request(reader: asyncio.StreamReader) -> tuple[str, dict[str, str], bytes]:
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers: dict[str, str] = {}
    raw_names: list[str] = []
    for line in lines[1:]:
        if line:
            name, _, value = line.partition(":")
            raw_names.append(name.lower())
            headers[name.lower()] = value.strip()
    headers["__names__"] = ",".join(raw_names)
    body = await reader.readexactly(int(headers.get("content-length", "0")))
    return lines[0], headers, body


def answer(body: bytes, status: str = "200 OK", **headers: str) -> bytes:
    lines = [f"HTTP/1.1 {status}", f"Content-Length: {len(body)}"]
    lines += [f"{k.replace('_', '-')}: {v}" for k, v in headers.items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


@contextlib.asynccontextmanager
async def client_for(**limits: Any) -> AsyncIterator[httpx.AsyncClient]:
    transport = AiohttpTransport(verify=False, limits=httpx.Limits(**limits) if limits else LIMITS)
    async with httpx.AsyncClient(transport=transport) as client:
        yield client


@needs_aiohttp
async def test_request_goes_out_as_httpx_built_it() -> None:
    seen: list[tuple[str, dict[str, str], bytes]] = []

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while True:
            seen.append(await read_request(reader))
            writer.write(answer(b'{"ok": true}', Content_Type="application/json"))
            await writer.drain()

    async with RawServer(handler) as server, client_for() as client:
        host = server.url.removeprefix("http://")
        body = json.dumps({"a": 1}).encode()
        response = await client.post(
            f"{server.url}/v1/x:hotload?q=a%2Fb",
            content=body,
            headers={"X-Api-Key": "k", "Accept-Encoding": "gzip"},
        )
        assert response.json() == {"ok": True}
        assert response.http_version == "HTTP/1.1"
        assert response.reason_phrase == "OK"
        got = await client.get(f"{server.url}/again")
        assert got.status_code == 200
    line, headers, received = seen[0]
    assert line == "POST /v1/x:hotload?q=a%2Fb HTTP/1.1"  # the URL exactly as given
    assert received == body
    assert headers["content-length"] == str(len(body))
    assert headers["x-api-key"] == "k"
    assert headers["accept-encoding"] == "gzip"
    assert headers["host"] == host
    names = headers["__names__"].split(",")
    assert len(names) == len(set(names)), f"a header sent twice: {names}"
    assert "transfer-encoding" not in headers
    assert server.connections == 1  # the second request reused the connection


@needs_aiohttp
async def test_bodies_are_streamed() -> None:
    """The first chunk reaches the caller before the server has sent the rest."""
    first_seen = asyncio.Event()

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nfirst")
        await writer.drain()
        await first_seen.wait()
        writer.write(b"-last")
        await writer.drain()

    async with RawServer(handler) as server, client_for() as client:
        request = client.build_request("GET", server.url)
        response = await client.send(request, stream=True)
        chunks = []
        async for chunk in response.aiter_raw():
            chunks.append(chunk)
            first_seen.set()
        await response.aclose()
    assert b"".join(chunks) == b"first-last"
    assert chunks[0] == b"first"


@needs_aiohttp
async def test_bodies_are_not_decompressed() -> None:
    payload = json.dumps({"state": "READY"}).encode()
    packed = gzip.compress(payload)

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(answer(packed, Content_Encoding="gzip"))
        await writer.drain()

    async with RawServer(handler) as server, client_for() as client:
        response = await client.send(client.build_request("GET", server.url), stream=True)
        raw = b"".join([chunk async for chunk in response.aiter_raw()])
        await response.aclose()
    assert raw == packed  # as sent: the caller decodes (bounded) itself
    assert response.headers["content-encoding"] == "gzip"


async def _hang(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    await read_request(reader)
    await asyncio.Event().wait()  # never answers; cancelled when the server closes


@needs_aiohttp
async def test_the_read_timeout_of_the_request_applies() -> None:
    async with RawServer(_hang) as server, client_for() as client:
        started = time.monotonic()
        with pytest.raises(httpx.ReadTimeout):
            await client.get(server.url, timeout=httpx.Timeout(30, read=0.2))
        assert time.monotonic() - started < PROMPT_S


@needs_aiohttp
async def test_a_read_timeout_mid_body() -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\npart")
        await writer.drain()
        await asyncio.Event().wait()

    async with RawServer(handler) as server, client_for() as client:
        request = client.build_request("GET", server.url, timeout=httpx.Timeout(30, read=0.2))
        response = await client.send(request, stream=True)
        with pytest.raises(httpx.ReadTimeout):
            async for _ in response.aiter_raw():
                pass
        await response.aclose()


@needs_aiohttp
async def test_waiting_for_a_pooled_connection_times_out_as_a_connect_timeout() -> None:
    """A full pool: the pool timeout ends the wait (httpcore: PoolTimeout; both unsent)."""
    async with (
        RawServer(_hang) as server,
        client_for(max_connections=1, max_keepalive_connections=1) as client,
    ):
        holder = asyncio.create_task(client.get(server.url, timeout=30))
        await asyncio.wait_for(server.connected.wait(), PROMPT_S)  # it holds the connection
        with pytest.raises(httpx.ConnectTimeout):
            await client.get(server.url, timeout=httpx.Timeout(30, connect=0.1, pool=0.1))
        holder.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await holder


@needs_aiohttp
async def test_refused_is_a_connect_error_caused_by_the_oserror() -> None:
    async with client_for() as client:
        with pytest.raises(httpx.ConnectError) as caught:
            await client.get(f"http://127.0.0.1:{closed_port()}/")
    assert isinstance(caught.value.__cause__, ConnectionRefusedError)
    assert unreachable_cause(caught.value, "127.0.0.1") == "connection refused"


@needs_aiohttp
async def test_unresolvable_is_a_connect_error_caused_by_gaierror() -> None:
    async with client_for() as client:
        with pytest.raises(httpx.ConnectError) as caught:
            await client.get("http://fireworks-deploy-test.invalid/")
    assert isinstance(caught.value.__cause__, socket.gaierror)
    cause = unreachable_cause(caught.value, "fireworks-deploy-test.invalid")
    assert cause is not None
    assert "could not be resolved" in cause


async def _drop(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    await read_request(reader)  # then close without a word


async def _truncate(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    await read_request(reader)
    writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nonly this")
    await writer.drain()


async def _garbage(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    await read_request(reader)
    writer.write(b"SSH-2.0-OpenSSH_9.6\r\n\r\n")
    await writer.drain()


@needs_aiohttp
@pytest.mark.parametrize("handler", [_drop, _truncate, _garbage], ids=lambda h: h.__name__)
async def test_a_broken_answer_is_a_remote_protocol_error(handler: Handler) -> None:
    async with RawServer(handler) as server, client_for() as client:
        with pytest.raises(httpx.RemoteProtocolError) as caught:
            await client.post(server.url, content=b"{}")
    assert caught.value.request.method == "POST"


@needs_aiohttp
async def test_an_unfinished_body_drops_its_connection_a_finished_one_is_reused() -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while True:
            line, _, _ = await read_request(reader)
            size = 200_000 if "/big" in line else 2
            writer.write(answer(b"x" * size))
            await writer.drain()

    async with RawServer(handler) as server, client_for() as client:
        for _ in range(3):
            assert (await client.get(f"{server.url}/small")).content == b"xx"
        assert server.connections == 1
        response = await client.send(client.build_request("GET", f"{server.url}/big"), stream=True)
        async for _ in response.aiter_raw():
            break  # stop reading part way
        await response.aclose()
        assert (await client.get(f"{server.url}/small")).content == b"xx"
        assert server.connections == 2


@needs_aiohttp
async def test_aclose_closes_pooled_connections() -> None:
    eof = asyncio.Event()

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(answer(b"{}"))
        await writer.drain()
        if not await reader.read(1):
            eof.set()

    async with RawServer(handler) as server:
        transport = AiohttpTransport(verify=False, limits=LIMITS)
        async with httpx.AsyncClient(transport=transport) as client:
            assert (await client.get(server.url)).status_code == 200
            assert not eof.is_set()
        await asyncio.wait_for(eof.wait(), PROMPT_S)  # the pooled connection was closed
        with pytest.raises(RuntimeError, match="closed"):
            await transport.handle_async_request(httpx.Request("GET", server.url))
        await transport.aclose()  # twice is fine


@needs_aiohttp
async def test_a_cancelled_request_leaves_no_connection_behind() -> None:
    async with RawServer(_hang) as server, client_for() as client:
        task = asyncio.create_task(client.get(server.url, timeout=30))
        await asyncio.wait_for(server.connected.wait(), PROMPT_S)  # in flight
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
    # the leak check (conftest) then proves no socket or task was left open
