"""6. Scale: CPU per status poll under concurrency, and 10,000 concurrent waits in one process.

- x=256, throughput: 256 concurrent hot-load waits on 256 deployments whose loads never finish
  in the window, polling as fast as they can (`poll_interval_s=0.001`) for a fixed time; polls
  per client CPU-second. Against bare `httpx.AsyncClient` loops on the same status URL, with
  default limits and with 100 keep-alive connections.
- x=10,000 (quick: 1,000): that many concurrent `wait_for_hotload` calls at the seed's 15 s
  interval (quick: 2 s, labelled) on loads that finish after `load_s`: every wait must complete;
  client CPU, cores used (CPU / wall), CPU per poll and peak RSS.
"""

from __future__ import annotations

from typing import Any

import anyio
import httpx

from fireworks_deploy import HotloadTimeoutError

from .._clients import API_KEY, BASE_MODEL, Stopwatch, async_manager, ids, run_async
from .._harness import Measurement, Run
from .._types import Mode, Row, Target, find

NAME = "scale"
TITLE = "Scale: polls per CPU-second and many concurrent waits"
X_LABEL = "concurrent waits"
THROUGHPUT_N = 256


def _scale_settings(mode: Mode) -> dict[str, Any]:
    if mode.quick:
        return {"n": 1000, "poll_s": 2.0, "load_s": 6.0}
    return {"n": 10_000, "poll_s": 15.0, "load_s": 30.0}


def plan(mode: Mode) -> list[Run]:
    window = 3.0 if mode.quick else 6.0
    busy = {"boot_seconds": 0.0, "hotload_seconds": 3600.0, "seed": 6}
    busy_setup = {"prefix": "sc", "count": THROUGHPUT_N, "replicas": 1, "hotload": "never"}
    throughput = {"n": THROUGHPUT_N, "prefix": "sc", "window_s": window, "kind": "throughput"}
    runs = [
        Run(NAME, peer, THROUGHPUT_N, throughput, busy, busy_setup)
        for peer in ("httpx_async_default", "httpx_async_ka100", "async", "async_aiohttp")
    ]
    s = _scale_settings(mode)
    plane = {"boot_seconds": 0.0, "hotload_seconds": s["load_s"], "seed": 7}
    setup = {"prefix": "sw", "count": s["n"], "replicas": 1, "hotload": "scale-1"}
    params = {**s, "prefix": "sw", "kind": "scale", "timeout_s": s["load_s"] + 20 * s["poll_s"]}
    runs.append(Run(NAME, "async", s["n"], params, plane, setup))
    return runs


def derive(m: Measurement) -> dict[str, float]:
    polls = m.requests.get("hotload_status", 0)
    cpu = m.client["cpu_s"]
    wall = m.client["wall_s"]
    out = {
        "polls": polls,
        "polls_per_cpu_s": polls / cpu if cpu else 0.0,
        "cpu_us_per_poll": cpu / polls * 1e6 if polls else 0.0,
        "cores": cpu / wall if wall else 0.0,
    }
    if m.run.params["kind"] == "scale":
        out["completed"] = m.client.get("completed", 0)
        out["ok"] = float(m.client.get("completed") == m.run.params["n"])
    return out


def targets(rows: list[Row], mode: Mode) -> list[Target]:
    found: list[Target] = []
    ours = find(rows, NAME, "async", THROUGHPUT_N)
    default = find(rows, NAME, "httpx_async_default", THROUGHPUT_N)
    ka100 = find(rows, NAME, "httpx_async_ka100", THROUGHPUT_N)
    if ours is not None:
        rate = ours.get("polls_per_cpu_s") or 0.0
        others = []
        if default is not None:
            others.append(f"default httpx {default.get('polls_per_cpu_s') or 0:.0f}")
        if ka100 is not None:
            others.append(f"httpx 100 keep-alive {ka100.get('polls_per_cpu_s') or 0:.0f}")
        aio = find(rows, NAME, "async_aiohttp", THROUGHPUT_N)
        if aio is not None and aio.get("polls_per_cpu_s"):
            others.append(f"ours on aiohttp (experiment) {aio.get('polls_per_cpu_s'):.0f}")
        found.append(
            Target(
                NAME,
                "256 concurrent waits: >= 600 polls/s per core",
                f"{rate:.0f} polls per CPU-second ({', '.join(others)})",
                rate >= 600,
            )
        )
    s = _scale_settings(mode)
    big = find(rows, NAME, "async", s["n"])
    if big is not None:
        label = "" if not mode.quick else f" (quick: {s['n']:,} waits at {s['poll_s']:g} s)"
        completed = big.get("completed") or 0
        cores = big.get("cores") or 0.0
        rss = big.get("maxrss_mb") or 0.0
        found.append(
            Target(
                NAME,
                f"10,000 waits at 15 s: all complete, < 1 core, < 300 MB{label}",
                f"{completed:.0f}/{s['n']} completed, {cores:.2f} cores, {rss:.0f} MB peak RSS, "
                f"{big.get('cpu_us_per_poll') or 0:.0f} µs CPU/poll",
                completed == s["n"] and cores < 1.0 and rss < 300,
            )
        )
    return found


# -- clients -------------------------------------------------------------------------------------


def _status_headers(deployment_id: str) -> dict[str, str]:
    return {
        "X-Api-Key": API_KEY,
        "Authorization": f"Bearer {API_KEY}",
        "Content-Type": "application/json",
        "fireworks-model": BASE_MODEL,
        "fireworks-deployment": f"accounts/local/deployments/{deployment_id}",
    }


def _bare(base_url: str, params: dict[str, Any], limits: httpx.Limits) -> dict[str, Any]:
    url = f"{base_url}/hot_load/v1/models/hot_load"
    names = ids(params["prefix"], params["n"])

    async def main() -> dict[str, Any]:
        async with httpx.AsyncClient(trust_env=False, limits=limits, timeout=60) as client:

            async def loop(deployment_id: str) -> None:
                headers = _status_headers(deployment_id)
                while True:
                    (await client.get(url, headers=headers)).json()

            with Stopwatch() as sw:
                with anyio.move_on_after(params["window_s"]):
                    async with anyio.create_task_group() as tg:
                        for name in names:
                            tg.start_soon(loop, name)
        return sw.result()

    return run_async(main)


def client_httpx_async_default(base_url: str, params: dict[str, Any]) -> dict[str, Any]:
    return _bare(base_url, params, httpx.Limits(max_connections=100, max_keepalive_connections=20))


def client_httpx_async_ka100(base_url: str, params: dict[str, Any]) -> dict[str, Any]:
    return _bare(base_url, params, httpx.Limits(max_connections=100, max_keepalive_connections=100))


def client_async_aiohttp(base_url: str, params: dict[str, Any]) -> dict[str, Any]:
    try:
        from httpx_aiohttp import AiohttpTransport
    except ImportError:
        return {"skipped": "httpx-aiohttp not installed", "wall_s": 0.0, "cpu_s": 0.0}
    return client_async(base_url, params, transport=AiohttpTransport)


def client_async(
    base_url: str, params: dict[str, Any], transport: type[Any] | None = None
) -> dict[str, Any]:
    names = ids(params["prefix"], params["n"])
    throughput = params["kind"] == "throughput"
    identity = "never" if throughput else "scale-1"
    poll_s = 0.001 if throughput else params["poll_s"]
    timeout_s = params["window_s"] + 60 if throughput else params["timeout_s"]
    completed = 0

    async def main() -> dict[str, Any]:
        nonlocal completed
        kwargs = {} if transport is None else {"transport": transport()}
        async with async_manager(base_url, **kwargs) as m:
            await m.resolve_account_id()

            async def wait(deployment_id: str) -> None:
                nonlocal completed
                try:
                    await m.wait_for_hotload(
                        deployment_id,
                        BASE_MODEL,
                        identity,
                        timeout_seconds=timeout_s,
                        poll_interval_s=poll_s,
                    )
                except HotloadTimeoutError:
                    return
                completed += 1

            with Stopwatch() as sw:
                with anyio.move_on_after(params["window_s"] if throughput else None):
                    async with anyio.create_task_group() as tg:
                        for name in names:
                            tg.start_soon(wait, name)
        return sw.result(completed=completed)

    return run_async(main)
