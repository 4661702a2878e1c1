"""The local control plane over real loopback HTTP (uvicorn in a thread or a process)."""

from __future__ import annotations

import re
import signal
import subprocess
import sys
import time
import zlib
from collections.abc import Callable, Iterator

import httpx
import pytest

from fireworks_deploy.local import Fault, LocalControlPlane, LocalServer

BASE = "accounts/fireworks/models/qwen3-8b"
ROUTE = {"fireworks-deployment": "accounts/local/deployments/d1", "fireworks-model": BASE}


class FakeClock:
    """A monotonic clock that only moves when told to."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def plane(clock: FakeClock) -> LocalControlPlane:
    return LocalControlPlane(boot_seconds=1, hotload_seconds=1, clock=clock)


@pytest.fixture
def server(plane: LocalControlPlane) -> Iterator[LocalServer]:
    with LocalServer(plane) as running:
        yield running


@pytest.fixture
def client(server: LocalServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.base_url, headers={"X-Api-Key": "k"}, timeout=5) as c:
        yield c


def test_lifecycle_over_loopback(
    server: LocalServer, client: httpx.Client, clock: FakeClock
) -> None:
    """Create, boot, hot-load and complete over a real socket."""
    assert re.fullmatch(r"http://127\.0\.0\.1:\d+", server.base_url)
    resp = client.post(
        "/v1/accounts/local/deployments?deploymentId=d1",
        json={"baseModel": BASE, "maxReplicaCount": 1, "enableHotLoad": True},
    )
    assert resp.json()["state"] == "CREATING"
    clock.now = 1
    assert client.get("/v1/accounts/local/deployments/d1").json()["state"] == "READY"
    resp = client.post(
        f"{server.base_url}//hot_load/v1/models/hot_load", json={"identity": "s0"}, headers=ROUTE
    )
    assert resp.status_code == 200
    clock.now = 2
    replica = client.get("/hot_load/v1/models/hot_load", headers=ROUTE).json()["replicas"][0]
    assert replica["current_snapshot_identity"] == "s0"
    body = {"model": "accounts/local/deployments/d1", "prompt": [1, 2], "max_tokens": 4}
    resp = client.post("/inference/v1/completions", json={**body, "stream": True})
    assert resp.text.endswith("data: [DONE]\n\n")


def test_keep_alive_many_requests(
    client: httpx.Client, server: LocalServer, plane: LocalControlPlane
) -> None:
    """Many requests on one keep-alive connection are all counted."""
    for _ in range(50):
        assert client.get("/v1/accounts?pageSize=2").status_code == 200
    assert plane.stats.requests["accounts"] == 50


def test_drop_fault_closes_the_connection(client: httpx.Client, plane: LocalControlPlane) -> None:
    """Over loopback a drop closes the socket with no response; the next request works."""
    plane.faults.add(Fault("drop", endpoint="accounts"))
    with pytest.raises(httpx.RemoteProtocolError):
        client.get("/v1/accounts")
    assert client.get("/v1/accounts").status_code == 200


def test_hang_fault_times_out_the_client(client: httpx.Client, plane: LocalControlPlane) -> None:
    """Over loopback a hang is a client read timeout; the server stays usable and stops cleanly."""
    plane.faults.add(Fault("hang", endpoint="accounts"))
    with pytest.raises(httpx.ReadTimeout):
        client.get("/v1/accounts", timeout=0.2)
    assert client.get("/v1/accounts").status_code == 200


def test_base_url_requires_running_server(plane: LocalControlPlane) -> None:
    """base_url before start is a clear error."""
    with pytest.raises(RuntimeError, match="not running"):
        _ = LocalServer(plane).base_url


def test_serve_prints_url_and_stops_on_ctrl_c() -> None:
    """serve() prints the listening line, serves, and exits on SIGINT."""
    code = (
        "from fireworks_deploy.local import LocalControlPlane, serve\n"
        "serve(LocalControlPlane(boot_seconds=0), '127.0.0.1', 0)\n"
    )
    with subprocess.Popen(  # noqa: S603 - fixed argv
        [sys.executable, "-c", code], stdout=subprocess.PIPE, text=True
    ) as proc:
        try:
            assert proc.stdout is not None
            line = proc.stdout.readline()
            match = re.fullmatch(
                r"Local Fireworks control plane listening on (http://127\.0\.0\.1:\d+)\n", line
            )
            assert match, line
            resp = httpx.get(f"{match[1]}/v1/accounts?pageSize=2", headers={"X-Api-Key": "k"})
            assert resp.json()["accounts"][0]["name"] == "accounts/local"
            proc.send_signal(signal.SIGINT)
            assert proc.wait(timeout=10) == 0
        finally:
            if proc.poll() is None:
                proc.kill()


def wait_for(condition: Callable[[], bool], timeout: float = 10.0) -> None:
    """Poll a server-side condition (no event to wait on) until it holds."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.01)


def test_endless_body_streams_until_the_client_leaves(
    server: LocalServer, plane: LocalControlPlane
) -> None:
    """Over loopback the endless body keeps coming; closing the connection stops the stream."""
    fault = plane.faults.add(Fault("endless_body", endpoint="accounts"))
    received = 0
    with (
        httpx.Client(base_url=server.base_url, headers={"X-Api-Key": "k"}, timeout=5) as c,
        c.stream("GET", "/v1/accounts") as resp,
    ):
        assert resp.status_code == 200
        assert "content-length" not in resp.headers
        head = b""
        streaming = []
        for chunk in resp.iter_raw():  # leaving the loop closes the response (and connection)
            head = (head + chunk)[:64]
            received += len(chunk)
            streaming.append(fault.open_streams)
            if received > 8 << 20:  # far past anything a sane answer would be
                break
        assert head.startswith(b'{"accounts":[{"identity":"pod-endless"')
        assert streaming[:10] == [1] * 10
    wait_for(lambda: fault.open_streams == 0)
    with httpx.Client(base_url=server.base_url, headers={"X-Api-Key": "k"}, timeout=5) as c:
        assert c.get("/v1/accounts").status_code == 200


def test_lost_answer_over_loopback(
    client: httpx.Client, clock: FakeClock, plane: LocalControlPlane
) -> None:
    """The hot-load is applied, then the socket closes with no answer."""
    client.post(
        "/v1/accounts/local/deployments?deploymentId=d1",
        json={"baseModel": BASE, "maxReplicaCount": 1, "enableHotLoad": True},
    )
    clock.now = 1
    plane.faults.add(Fault("lost_answer", endpoint="hotload"))
    with pytest.raises(httpx.RemoteProtocolError):
        client.post("/hot_load/v1/models/hot_load", json={"identity": "s0"}, headers=ROUTE)
    clock.now = 2
    replica = client.get("/hot_load/v1/models/hot_load", headers=ROUTE).json()["replicas"][0]
    assert replica["current_snapshot_identity"] == "s0"
    assert plane.stats.hotload_identities["d1", "s0"] == 1


def test_gzip_bomb_over_loopback(client: httpx.Client, plane: LocalControlPlane) -> None:
    """Over the wire the bomb is a few hundred KiB that inflate to `size` bytes of valid JSON."""
    plane.faults.add(Fault("gzip_bomb", endpoint="accounts", size=64 << 20))
    with client.stream("GET", "/v1/accounts") as resp:
        assert resp.headers["content-encoding"] == "gzip"
        wire = b"".join(resp.iter_raw())
    assert len(wire) == int(resp.headers["content-length"]) < 128 * 1024
    inflated = zlib.decompressobj(zlib.MAX_WBITS | 16)
    total = 0
    for start in range(0, len(wire), 4096):  # inflate piecewise: never hold 64 MiB at once
        total += len(inflated.decompress(wire[start : start + 4096], 1 << 20))
        while inflated.unconsumed_tail:
            total += len(inflated.decompress(inflated.unconsumed_tail, 1 << 20))
    assert inflated.eof
    assert total == 64 << 20


def test_oversized_body_over_loopback(client: httpx.Client, plane: LocalControlPlane) -> None:
    """An oversized answer announces its length and is the real answer padded with spaces."""
    plane.faults.add(Fault("oversized_body", endpoint="accounts", size=5 << 20))
    resp = client.get("/v1/accounts")
    assert int(resp.headers["content-length"]) == len(resp.content) == 5 << 20
    assert resp.json()["accounts"][0]["name"] == "accounts/local"
