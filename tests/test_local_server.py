"""The local control plane over real loopback HTTP (uvicorn in a thread or a process)."""

from __future__ import annotations

import re
import signal
import subprocess
import sys
from collections.abc import Iterator

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
