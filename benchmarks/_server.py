"""The benchmark's control plane: `LocalControlPlane` in its own process, plus `/_bench/*` routes.

Run as ``python -m benchmarks._server --port 0``; the first stdout line is
``BENCH_SERVER http://HOST:PORT``. Keeping the server out of the client's process means the
client's CPU time and RSS are the client's alone.

The side channel (never counted as client traffic):

- ``POST /_bench/reset``  a fresh plane with the JSON body's settings; counters zeroed.
- ``POST /_bench/setup``  create deployments directly in the plane (no HTTP), optionally with a
  hot-load already started on each.
- ``GET /_bench/stats``   requests by endpoint, and TCP connections opened by clients (distinct
  client ``(host, port)`` pairs seen since the reset).
- ``GET /_bench/log``     every counted request since the reset as ``[endpoint, deployment_id,
  at]`` (arrival on time.monotonic()), for the per-deployment and per-phase counts.
- ``GET /_bench/events``  the plane's transitions, stamped on ``time.monotonic()`` (the plane's
  default clock, system-wide on Linux, so comparable with the client's own stamps).
"""

from __future__ import annotations

import argparse
import json
import socket
import time
from typing import Any

import uvicorn
from starlette.types import Receive, Scope, Send

from fireworks_deploy.local import LocalControlPlane, Stats

BANNER = "BENCH_SERVER"
BASE_MODEL = "accounts/fireworks/models/bench-base"
_PLANE_SETTINGS = (
    "boot_seconds",
    "boot_jitter",
    "hotload_seconds",
    "hotload_jitter",
    "delete_seconds",
    "seed",
)


class TimedStats(Stats):
    """The plane's request counters, plus every request's arrival time (and deployment)."""

    def __init__(self) -> None:
        super().__init__()
        self.log: list[tuple[str, str | None, float]] = []

    def record(self, endpoint: str, deployment_id: str | None, identity: str | None = None) -> None:
        super().record(endpoint, deployment_id, identity)
        self.log.append((endpoint, deployment_id, time.monotonic()))


def _plane(**settings: Any) -> LocalControlPlane:
    plane = LocalControlPlane(**settings)
    plane.stats = TimedStats()  # before `plane.app` is built: the app keeps this instance
    return plane


class BenchApp:
    """ASGI: `/_bench/*` is the side channel; everything else goes to the current plane."""

    def __init__(self) -> None:
        self.plane = _plane()
        self.peers: set[tuple[str, int]] = set()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            if scope["path"].startswith("/_bench/"):
                await self._control(scope, receive, send)
                return
            client = scope.get("client")
            if client:
                self.peers.add((client[0], client[1]))
        await self.plane.app(scope, receive, send)

    async def _control(self, scope: Scope, receive: Receive, send: Send) -> None:
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        payload: Any = json.loads(body) if body.strip() else {}
        action = scope["path"].removeprefix("/_bench/")
        status, answer = 200, self._handle(action, payload)
        if answer is None:
            status, answer = 404, {"error": f"no bench action {action!r}"}
        data = json.dumps(answer).encode()
        await send(
            {
                "type": "http.response.start",
                "status": status,
                "headers": [(b"content-type", b"application/json")],
            }
        )
        await send({"type": "http.response.body", "body": data})

    def _handle(self, action: str, payload: dict[str, Any]) -> Any:
        if action == "reset":
            settings = {k: payload[k] for k in _PLANE_SETTINGS if k in payload}
            self.plane = _plane(**settings)
            self.peers = set()
            return {"ok": True, "clock": time.monotonic()}
        if action == "setup":
            return self._setup(payload)
        if action == "stats":
            stats = self.plane.stats
            return {
                "requests": dict(stats.requests),
                "total": stats.total,
                "connections": len(self.peers),
            }
        if action == "events":
            return [
                {"kind": e.kind, "deployment_id": e.deployment_id, "detail": e.detail, "at": e.at}
                for e in self.plane.events
            ]
        if action == "log":
            stats = self.plane.stats
            return stats.log if isinstance(stats, TimedStats) else []
        if action == "clock":
            return {"clock": time.monotonic()}
        return None

    def _setup(self, payload: dict[str, Any]) -> dict[str, Any]:
        prefix = payload.get("prefix", "d")
        count = int(payload.get("count", 1))
        replicas = int(payload.get("replicas", 1))
        identity = payload.get("hotload")
        ids = [f"{prefix}-{i:05d}" for i in range(count)]
        for deployment_id in ids:
            self.plane.create_deployment(deployment_id, BASE_MODEL, replicas)
        if identity:
            state = self.plane.state
            for deployment_id in ids:
                state.hotload(self.plane.account, deployment_id, BASE_MODEL, identity)
        return {"ids": ids, "clock": time.monotonic()}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    args = parser.parse_args(argv)
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((args.host, args.port))
    port = sock.getsockname()[1]
    config = uvicorn.Config(
        BenchApp(),
        host=args.host,
        port=port,
        log_level="warning",
        lifespan="off",
        access_log=False,
        backlog=4096,
        timeout_keep_alive=60,
    )
    server = uvicorn.Server(config)
    print(f"{BANNER} http://{args.host}:{port}", flush=True)
    try:
        server.run(sockets=[sock])
    except KeyboardInterrupt:
        pass
    finally:
        sock.close()


if __name__ == "__main__":
    main()
