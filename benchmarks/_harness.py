"""Orchestration: the server process, the peers, one fresh client process per measured run."""

from __future__ import annotations

import contextlib
import json
import os
import select
import signal
import subprocess
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
OFFICIAL_WORKER = HERE / "_official_worker.py"
OFFICIAL_PYTHON_ENV = "BENCH_OFFICIAL_PYTHON"


class HarnessError(RuntimeError):
    """The harness itself broke (not a slow peer): the only thing that fails a run."""


@dataclass(frozen=True)
class Peer:
    """One client measured in a scenario."""

    key: str
    label: str
    official: bool = False


PEERS: dict[str, Peer] = {
    p.key: p
    for p in (
        Peer("async", "fireworks_deploy AsyncDeploymentManager"),
        Peer("async_httpcore", "AsyncDeploymentManager, FIREWORKS_DEPLOY_TRANSPORT=httpcore"),
        Peer("async_short", "fireworks_deploy AsyncDeploymentManager, 1 s loads"),
        Peer("async_each", "fireworks_deploy async, one wait_for_ready per deployment"),
        Peer("sync", "fireworks_deploy DeploymentManager (sync facade)"),
        Peer(
            "official_threads",
            "official DeploymentManager on a thread pool (one thread per item)",
            official=True,
        ),
        Peer("official_seq", "official DeploymentManager, sequential", official=True),
        Peer("official", "official DeploymentManager", official=True),
        Peer("httpx_sync", "bare httpx.Client (floor)"),
        Peer("httpx_async", "bare httpx.AsyncClient, pooled keep-alive (floor)"),
        Peer("aiohttp", "bare aiohttp.ClientSession, pooled keep-alive (fast floor)"),
        Peer("httpx_aiohttp", "bare httpx.AsyncClient over our AiohttpTransport (httpx's layer)"),
    )
}


@dataclass(frozen=True)
class Run:
    """One measured client run: a peer, its parameters, and the plane it runs against."""

    scenario: str
    peer: str
    x: int
    params: Mapping[str, Any]
    plane: Mapping[str, Any]
    setup: Mapping[str, Any] | None = None
    #: When set, the official peer ran fewer items than `x` and the result is scaled to `x`.
    measured_x: int | None = None


@dataclass
class Measurement:
    """What one run produced: client-side numbers and the server's view of it."""

    run: Run
    client: dict[str, Any]
    requests: dict[str, int]
    connections: int
    events: list[dict[str, Any]] = field(default_factory=list)
    setup: dict[str, Any] | None = None
    #: Every counted request as (endpoint, deployment_id, arrival), when the run asked for it.
    log: list[tuple[str, str | None, float]] = field(default_factory=list)


class Server:
    """The control plane in its own process, driven through its `/_bench/*` side channel."""

    def __init__(self) -> None:
        self._proc: subprocess.Popen[str] | None = None
        self._http: httpx.Client | None = None
        self.base_url = ""

    def __enter__(self) -> Server:
        self._proc = subprocess.Popen(
            [sys.executable, "-m", "benchmarks._server", "--port", "0"],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self._proc.stdout is not None
        line = self._proc.stdout.readline().strip()
        if not line.startswith("BENCH_SERVER "):
            self.__exit__()
            raise HarnessError(f"the benchmark server did not start (said {line!r})")
        self.base_url = line.split(" ", 1)[1]
        self._http = httpx.Client(base_url=self.base_url, timeout=120.0, trust_env=False)
        for _ in range(200):
            try:
                self._http.get("/_bench/clock")
                break
            except httpx.TransportError:
                time.sleep(0.05)
        return self

    def __exit__(self, *exc: object) -> None:
        if self._http is not None:
            self._http.close()
        if self._proc is not None:
            self._proc.terminate()
            try:
                self._proc.wait(10)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait()

    def call(self, method: str, action: str, payload: Mapping[str, Any] | None = None) -> Any:
        assert self._http is not None
        response = self._http.request(method, f"/_bench/{action}", json=payload)
        if response.status_code != 200:
            raise HarnessError(f"/_bench/{action} answered {response.status_code}")
        return response.json()

    def measure(self, run: Run, worker: Worker, timeout_s: float) -> Measurement:
        """Reset the plane, set it up, run one fresh client process, collect both sides."""
        self.call("POST", "reset", run.plane)
        setup = self.call("POST", "setup", run.setup) if run.setup else None
        spec = {
            "scenario": run.scenario,
            "peer": run.peer,
            "base_url": self.base_url,
            "params": dict(run.params),
        }
        client = worker.run(spec, timeout_s)
        stats = self.call("GET", "stats")
        events = self.call("GET", "events") if run.params.get("want_events") else []
        log = self.call("GET", "log") if run.params.get("want_log") else []
        return Measurement(
            run,
            client,
            stats["requests"],
            stats["connections"],
            events,
            setup,
            [(str(e), d, float(t)) for e, d, t in log],
        )


class Worker:
    """A `--serve` worker process (see `benchmarks._zygote`): one forked child per run."""

    def __init__(self, command: list[str], name: str) -> None:
        self.name = name
        self._proc = subprocess.Popen(
            [*command, "--serve"], cwd=ROOT, stdin=subprocess.PIPE, stdout=subprocess.PIPE
        )
        #: Bytes read from the worker but not yet split into lines: reads are unbuffered
        #: `os.read`s, so `select` never waits on a line that is already in a buffer.
        self._pending = b""

    def _line(self, deadline: float, what: str) -> dict[str, Any]:
        stdout = self._proc.stdout
        assert stdout is not None
        fd = stdout.fileno()
        while b"\n" not in self._pending:
            remaining = deadline - time.monotonic()
            ready = remaining > 0 and select.select([fd], [], [], remaining)[0]
            if not ready:
                raise TimeoutError(what)
            chunk = os.read(fd, 1 << 16)
            if not chunk:
                raise HarnessError(f"the {self.name} worker exited (status {self._proc.wait()})")
            self._pending += chunk
        line, _, self._pending = self._pending.partition(b"\n")
        answer: dict[str, Any] = json.loads(line)
        return answer

    def run(self, spec: Mapping[str, Any], timeout_s: float) -> dict[str, Any]:
        """Run one client in a fresh child; its result, or HarnessError."""
        stdin = self._proc.stdin
        assert stdin is not None
        label = f"{spec['scenario']}/{spec['peer']}"
        deadline = time.monotonic() + timeout_s
        try:
            stdin.write(json.dumps(spec).encode() + b"\n")
            stdin.flush()
        except BrokenPipeError as exc:
            raise HarnessError(f"the {self.name} worker is gone ({label})") from exc
        try:
            pid = int(self._line(time.monotonic() + 60, "start")["pid"])
        except TimeoutError as exc:
            raise HarnessError(f"the {self.name} worker did not start {label}") from exc
        try:
            done = self._line(deadline, "result")
        except TimeoutError as exc:
            os.kill(pid, signal.SIGKILL)  # the child this run started, by its id
            with contextlib.suppress(TimeoutError):
                self._line(time.monotonic() + 10, "its end")  # keep the protocol in step
            raise HarnessError(f"{label} ran over {timeout_s:g}s") from exc
        result: dict[str, Any] = json.loads(done["result"] or "{}")
        if done["status"] != 0 or "error" in result:
            tail = str(result.get("error", ""))[-3000:]
            raise HarnessError(f"worker {label} failed (status {done['status']}):\n{tail}")
        return result

    def close(self) -> None:
        if self._proc.stdin is not None:
            self._proc.stdin.close()
        try:
            self._proc.wait(30)
        except subprocess.TimeoutExpired:
            self._proc.kill()
            self._proc.wait()
        if self._proc.stdout is not None:
            self._proc.stdout.close()


def our_worker() -> list[str]:
    return [sys.executable, "-m", "benchmarks._worker"]


def official_python(explicit: str | None) -> tuple[str | None, str]:
    """The interpreter that can import the official client, and why (or why not)."""
    candidates = [
        (explicit, "--official-python"),
        (os.environ.get(OFFICIAL_PYTHON_ENV), OFFICIAL_PYTHON_ENV),
        (sys.executable, "this interpreter"),
    ]
    for python, source in candidates:
        if not python:
            continue
        probe = subprocess.run(
            [python, "-c", "import fireworks.training.sdk.deployment"],
            capture_output=True,
            text=True,
            check=False,
        )
        if probe.returncode == 0:
            return python, source
        if source != "this interpreter":
            reason = (probe.stderr.strip().splitlines() or ["?"])[-1]
            return None, f"{python} cannot import fireworks.training.sdk: {reason}"
    return None, "fireworks-ai is not installed (pip install fireworks-ai==1.2.30 urllib3)"


def official_worker(python: str) -> list[str]:
    return [python, str(OFFICIAL_WORKER)]
