"""Small hostile HTTP/1.1 servers on loopback, and a probe of what they cost a client.

Each server is an asyncio raw-socket server on 127.0.0.1 that answers every request with one
misbehaviour (an endless body, a trickle, a gzip bomb, deeply nested JSON, ...), except that a
path ending in `/warm` gets a small, well-formed deployment so a client can warm up first.

Run as a script (`python tests/hostile_kit.py SCENARIO MODE`), it starts the server and a
client in one fresh process, warms the client up, resets the peak-RSS mark
(`/proc/self/clear_refs`), sends one request through MODE (`get`: `AsyncDeploymentManager.get`,
retries and all; `send_once`: one completions-style POST through `HTTPClient.send_once`), and
prints one JSON line: the error raised, how long it took, and the peak RSS growth in KiB. The
test process itself never holds a hostile body.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import re
import sys
import time
import zlib
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

__all__ = [
    "API_KEY",
    "SCENARIOS",
    "HostileServer",
    "deployment_body",
    "hostile_server",
    "prepare",
    "rss_kib",
]

API_KEY = "fw-HOSTILE-test-key-31c9e8a7b5"
ACCOUNT = "acme"

Writer = asyncio.StreamWriter
Handler = Callable[[str, dict[str, str], Writer], Awaitable[None]]

_CHUNK = b"a" * 65536
_ZEROS = bytes(1 << 20)


def deployment_body(deployment_id: str = "warm") -> bytes:
    return json.dumps(
        {
            "name": f"accounts/{ACCOUNT}/deployments/{deployment_id}",
            "state": "READY",
            "baseModel": "accounts/fireworks/models/m",
        }
    ).encode()


def _head(status: int, headers: dict[str, str]) -> bytes:
    lines = [f"HTTP/1.1 {status} X"] + [f"{k}: {v}" for k, v in headers.items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


async def _send(
    writer: Writer, body: bytes, status: int = 200, headers: dict[str, str] | None = None
) -> None:
    head = {"Content-Type": "application/json", "Content-Length": str(len(body))}
    head.update(headers or {})
    writer.write(_head(status, head) + body)
    await writer.drain()


async def _chunked(
    writer: Writer, chunks: AsyncIterator[bytes] | Any, headers: dict[str, str]
) -> None:
    head = {"Content-Type": "application/json", "Transfer-Encoding": "chunked", **headers}
    writer.write(_head(200, head))
    async for chunk in chunks:
        if chunk:
            writer.write(b"%x\r\n%s\r\n" % (len(chunk), chunk))
            await writer.drain()
    writer.write(b"0\r\n\r\n")
    await writer.drain()


async def endless(path: str, headers: dict[str, str], writer: Writer) -> None:
    """200, chunked, 64 KiB chunks forever, as fast as the client reads."""

    async def chunks() -> AsyncIterator[bytes]:
        while True:
            yield _CHUNK

    await _chunked(writer, chunks(), {})


async def endless_no_length(path: str, headers: dict[str, str], writer: Writer) -> None:
    """200 with neither Content-Length nor chunking: the body runs until the close, forever."""
    writer.write(b"HTTP/1.1 200 X\r\nContent-Type: application/json\r\nConnection: close\r\n\r\n")
    while True:
        writer.write(_CHUNK)
        await writer.drain()


async def declared_huge(path: str, headers: dict[str, str], writer: Writer) -> None:
    """200 announcing a 10 GB Content-Length, then sending it (as long as anyone reads)."""
    writer.write(_head(200, {"Content-Type": "application/json", "Content-Length": "10" + "0" * 9}))
    while True:
        writer.write(_CHUNK)
        await writer.drain()


async def trickle(path: str, headers: dict[str, str], writer: Writer) -> None:
    """200 with a huge Content-Length, then one byte every 50 ms forever."""
    writer.write(_head(200, {"Content-Type": "application/json", "Content-Length": "1000000"}))
    await writer.drain()
    while True:
        writer.write(b" ")
        await writer.drain()
        await asyncio.sleep(0.05)


async def _bomb_chunks(wbits: int) -> AsyncIterator[bytes]:
    """An endless compressed stream of zeros (about 1000:1), produced as it is read."""
    compressor = zlib.compressobj(9, zlib.DEFLATED, wbits)
    while True:
        yield compressor.compress(_ZEROS)
        await asyncio.sleep(0)


async def gzip_bomb(path: str, headers: dict[str, str], writer: Writer) -> None:
    """200, Content-Encoding: gzip, zeros that inflate ~1000x, endlessly."""
    await _chunked(writer, _bomb_chunks(zlib.MAX_WBITS | 16), {"Content-Encoding": "gzip"})


async def deflate_bomb(path: str, headers: dict[str, str], writer: Writer) -> None:
    """The same bomb, raw deflate (the form the deflate fallback reads)."""
    await _chunked(writer, _bomb_chunks(-zlib.MAX_WBITS), {"Content-Encoding": "deflate"})


def gzip_bomb_bytes(compressed_size: int) -> bytes:
    """About `compressed_size` bytes of gzip that inflate to ~1000x as many zeros.

    Built in milliseconds: after a full flush the compressor starts afresh, so each further
    16 MiB of zeros compresses to the same block, which is repeated. The stream has no
    trailer (a reader that got that far has already lost).
    """
    zeros = bytes(1 << 24)
    compressor = zlib.compressobj(9, zlib.DEFLATED, zlib.MAX_WBITS | 16)
    head = compressor.compress(zeros) + compressor.flush(zlib.Z_FULL_FLUSH)
    block = compressor.compress(zeros) + compressor.flush(zlib.Z_FULL_FLUSH)
    assert block == compressor.compress(zeros) + compressor.flush(zlib.Z_FULL_FLUSH)
    return head + block * max(1, (compressed_size - len(head)) // len(block))


# Fixed bodies are built once, before a probe resets its peak-RSS mark (`prepare`), so what
# the server allocates is not counted against the client.


@functools.cache
def bomb_2mib_body() -> bytes:
    return gzip_bomb_bytes(2 * 1024 * 1024)


@functools.cache
def deep_json_body() -> bytes:
    depth = 100_000
    return b"[" * depth + b"]" * depth


@functools.cache
def deep_json_500_body() -> bytes:
    body: dict[str, Any] = {"name": f"accounts/{ACCOUNT}/deployments/d", "state": "READY"}
    nested: Any = "x"
    for _ in range(500):
        nested = {"n": nested}
    body["extra"] = nested
    return json.dumps(body).encode()


@functools.cache
def wide_json_body() -> bytes:
    count = (2 * 1024 * 1024 - 2) // 3
    return b"[" + b"{}," * (count - 1) + b"{}]"


@functools.cache
def wide_strings_body() -> bytes:
    items = [b'"%c%c"' % (97 + i % 26, 97 + (i // 26) % 26) for i in range(419_000)]
    return b"[" + b",".join(items) + b"]"


@functools.cache
def wide_under_cap_body() -> bytes:
    objects = b"{}," * 99_990
    strings = b'"ab",' * ((2 * 1024 * 1024 - len(objects) - 8) // 5)
    return b"[" + objects + strings + b"1]"


async def gzip_bomb_2mib(path: str, headers: dict[str, str], writer: Writer) -> None:
    """A finished 2 MiB gzip body (Content-Length set) that would inflate to ~2 GiB."""
    await _send(writer, bomb_2mib_body(), headers={"Content-Encoding": "gzip"})


async def deep_json(path: str, headers: dict[str, str], writer: Writer) -> None:
    """200 with 100,000 nested arrays (RecursionError bait for json and cattrs)."""
    await _send(writer, deep_json_body())


async def deep_json_500(path: str, headers: dict[str, str], writer: Writer) -> None:
    """200 with JSON nested 500 deep: json.loads copes, code walking it recursively might not."""
    await _send(writer, deep_json_500_body())


async def wide_json(path: str, headers: dict[str, str], writer: Writer) -> None:
    """200 with the body that expands most when parsed ([{}, {}, ...]), just under the limit."""
    await _send(writer, wide_json_body())


async def wide_strings(path: str, headers: dict[str, str], writer: Writer) -> None:
    """200 with ~420,000 two-letter strings (each a new object once parsed), under the limit."""
    await _send(writer, wide_strings_body())


async def wide_under_cap(path: str, headers: dict[str, str], writer: Writer) -> None:
    """200 with just under the allowed objects, padded with short strings to the size limit."""
    await _send(writer, wide_under_cap_body())


_PREPARE: dict[str, Callable[[], bytes]] = {
    "gzip_bomb_2mib": bomb_2mib_body,
    "deep_json": deep_json_body,
    "deep_json_500": deep_json_500_body,
    "wide_json": wide_json_body,
    "wide_strings": wide_strings_body,
    "wide_under_cap": wide_under_cap_body,
}


def prepare(scenario: str) -> None:
    """Build the scenario's fixed body now (it is cached for the server)."""
    if scenario in _PREPARE:
        _PREPARE[scenario]()


async def retry_after_forever(path: str, headers: dict[str, str], writer: Writer) -> None:
    """503 with Retry-After: 1e9 (thirty years)."""
    await _send(writer, b'{"error": {"message": "busy"}}', 503, {"Retry-After": "1e9"})


async def retry_after_2999(path: str, headers: dict[str, str], writer: Writer) -> None:
    """503 with Retry-After as an HTTP-date in the year 2999."""
    date = "Fri, 01 Jan 2999 00:00:00 GMT"
    await _send(writer, b'{"error": {"message": "busy"}}', 503, {"Retry-After": date})


async def echo_key(path: str, headers: dict[str, str], writer: Writer) -> None:
    """401 that quotes the request's key in a header, a JSON body and the message."""
    key = headers.get("x-api-key", "")
    body = json.dumps(
        {"error": {"message": f"bad key {key}", "detail": {"seen": [key, f"Bearer {key}"]}}}
    ).encode()
    await _send(writer, body, 401, {"X-Echo-Key": key, "WWW-Authenticate": f"Bearer {key}"})


async def echo_key_text(path: str, headers: dict[str, str], writer: Writer) -> None:
    """500 with a long HTML page whose key sits right where a 200-character cut falls."""
    key = headers.get("x-api-key", "")
    body = ("x" * 190 + " " + key + " " + "y" * 5000).encode()
    await _send(writer, body, 400, {"Content-Type": "text/html"})


SCENARIOS: dict[str, Handler] = {
    "endless": endless,
    "endless_no_length": endless_no_length,
    "declared_huge": declared_huge,
    "trickle": trickle,
    "gzip_bomb": gzip_bomb,
    "gzip_bomb_2mib": gzip_bomb_2mib,
    "deflate_bomb": deflate_bomb,
    "deep_json": deep_json,
    "deep_json_500": deep_json_500,
    "wide_json": wide_json,
    "wide_strings": wide_strings,
    "wide_under_cap": wide_under_cap,
    "retry_after_1e9": retry_after_forever,
    "retry_after_2999": retry_after_2999,
    "echo_key": echo_key,
    "echo_key_text": echo_key_text,
}


async def _read_request(reader: asyncio.StreamReader) -> tuple[str, dict[str, str]] | None:
    try:
        head = await reader.readuntil(b"\r\n\r\n")
    except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, ConnectionError):
        return None
    lines = head.decode("latin-1").split("\r\n")
    path = lines[0].split(" ")[1] if len(lines[0].split(" ")) > 1 else "/"
    headers = {}
    for line in lines[1:]:
        if ":" in line:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
    length = int(headers.get("content-length", "0") or 0)
    if length:
        await reader.readexactly(length)
    return path, headers


class HostileServer:
    """One scenario on 127.0.0.1; every connection's task is tracked and ended on close."""

    def __init__(self, handler: Handler) -> None:
        self.handler = handler
        self.requests: list[tuple[str, dict[str, str]]] = []
        self._tasks: set[asyncio.Task[None]] = set()
        self._writers: set[Writer] = set()
        self._server: asyncio.Server | None = None
        self.url = ""

    async def _connection(self, reader: asyncio.StreamReader, writer: Writer) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        self._writers.add(writer)
        try:
            while True:
                request = await _read_request(reader)
                if request is None:
                    return
                self.requests.append(request)
                path, headers = request
                if path.endswith("/warm"):
                    await _send(writer, deployment_body())
                    continue
                await self.handler(path, headers, writer)
        except (ConnectionError, asyncio.CancelledError):
            return
        finally:
            self._tasks.discard(task)
            self._writers.discard(writer)
            writer.close()

    async def __aenter__(self) -> HostileServer:
        self._server = await asyncio.start_server(self._connection, "127.0.0.1", 0)
        port = self._server.sockets[0].getsockname()[1]
        self.url = f"http://127.0.0.1:{port}"
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._server is not None
        self._server.close()
        for task in list(self._tasks):
            task.cancel()
        for task in list(self._tasks):
            with contextlib.suppress(asyncio.CancelledError, ConnectionError):
                await task
        for writer in list(self._writers):
            writer.close()
        await self._server.wait_closed()


def hostile_server(scenario: str) -> HostileServer:
    return HostileServer(SCENARIOS[scenario])


def rss_kib() -> tuple[int, int]:
    """(VmRSS, VmHWM) of this process in KiB."""
    status = open("/proc/self/status").read()  # noqa: SIM115 - tiny proc file
    rss = int(re.search(r"VmRSS:\s+(\d+)", status).group(1))  # type: ignore[union-attr]
    hwm = int(re.search(r"VmHWM:\s+(\d+)", status).group(1))  # type: ignore[union-attr]
    return rss, hwm


def _reset_peak() -> bool:
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
    except OSError:
        return False
    return True


async def _probe(scenario: str, mode: str) -> dict[str, Any]:
    from fireworks_deploy import AsyncDeploymentManager, RetryPolicy, Timeouts
    from fireworks_deploy._config import Deadline

    timeouts = Timeouts(
        connect_s=2.0,
        control_plane_s=1.0,
        hotload_post_s=1.0,
        hotload_status_s=1.0,
        probe_s=1.0,
        warmup_s=1.0,
        operation_s=2.5,
    )
    async with (
        hostile_server(scenario) as server,
        AsyncDeploymentManager(
            api_key=API_KEY,
            account_id=ACCOUNT,
            base_url=server.url,
            timeouts=timeouts,
            retry=RetryPolicy(initial_s=0.01, max_s=0.05, max_retry_after_s=0.2),
        ) as manager,
    ):
        await manager.get("warm")
        http = manager._http
        if mode == "send_once":  # warm the POST path too
            await http.send_once(
                "POST",
                http_url(server.url, "/warm"),
                deadline=Deadline(5),
                attempt_timeout_s=1.0,
                json_body={"prompt": [1, 2]},
                gateway=True,
            )
        prepare(scenario)
        reset = _reset_peak()
        before_rss, before_hwm = rss_kib()
        started = time.monotonic()
        error: BaseException | None = None
        try:
            if mode == "get":
                await manager.get("d")
            else:
                await http.send_once(
                    "POST",
                    http_url(server.url, "/inference/v1/completions"),
                    deadline=Deadline(2.5),
                    attempt_timeout_s=1.0,
                    json_body={"prompt": [1, 2]},
                    gateway=True,
                )
        except Exception as exc:
            error = exc
        elapsed = time.monotonic() - started
        _, after_hwm = rss_kib()
    baseline = before_rss if reset else before_hwm
    return {
        "scenario": scenario,
        "mode": mode,
        "error": None if error is None else type(error).__name__,
        "message": "" if error is None else str(error)[:500],
        "elapsed_s": round(elapsed, 3),
        "baseline_kib": baseline,
        "peak_kib": after_hwm,
        "growth_kib": after_hwm - baseline,
        "peak_reset": reset,
        "key_leaked": error is not None and API_KEY in repr(vars(error)) + str(error),
    }


def http_url(base: str, path: str) -> Any:
    import httpx

    return httpx.URL(base + path)


if __name__ == "__main__":
    print(json.dumps(asyncio.run(_probe(sys.argv[1], sys.argv[2]))))
