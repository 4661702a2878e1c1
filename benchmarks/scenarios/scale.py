"""6. Scale: CPU per status poll under concurrency, and many concurrent waits in one process.

- Throughput (x=256): 256 concurrent hot-load waits on 256 deployments whose loads never finish
  in the window, polling as fast as they may, for a fixed window: polls per client CPU-second.
  Ours asks for `poll_interval_s=0.001` (the SDK clamps it to its floor, 0.05 s).
- Waits (x=10,000 at a 15 s interval on 30 s loads; quick: 1,000 at 2 s on 5 s loads; full
  also 30,000 as the stretch): that many concurrent `wait_for_hotload` calls started at once.
  Every wait must complete, within its load plus six intervals (its timeout). Reported: client
  CPU cores used over the whole run and in steady state (after two intervals), CPU per poll,
  peak RSS, and the schedule: slip (the moment each poll was sent minus the moment it was due,
  p50/p99/max) and fetches expired unsent (started, but their deadline passed before the
  request was sent). See `benchmarks/_probes.py`.

The floors do the same work as plain pollers: the first poll at once, then one on every point
of the wait's grid (start + k * interval), the same completion check (every replica serves the
snapshot), and the same bound on requests in flight as our manager's default
(`max_concurrency=32`), on pooled keep-alive connections: bare `httpx.AsyncClient` (the floor)
and bare `aiohttp.ClientSession` (the fast floor). Our manager polls a plain wait on such a
grid too, but spreads the first polls at random over the first interval while many waits are
active; its slip is measured against its own schedule (`benchmarks/_probes.py`).
"""

from __future__ import annotations

import math
import time
from collections.abc import Awaitable, Callable
from typing import Any

import anyio
import httpx

from fireworks_deploy import FireworksError, HotloadTimeoutError

from .._clients import API_KEY, BASE_MODEL, Stopwatch, async_manager, ids, run_async, use_httpcore
from .._harness import Measurement, Run
from .._probes import CpuSampler, OurPollProbe, PollRecord, polling, send_stamps, summarize
from .._types import Mode, Row, Target, find

NAME = "scale"
TITLE = "Scale: CPU per poll, and many concurrent waits"
X_LABEL = "concurrent waits"
THROUGHPUT_N = 256
STRETCH_N = 30_000
#: Our manager's default `max_concurrency`; the floors get the same bound on requests in flight.
IN_FLIGHT = 32
IDENTITY = "scale-1"
#: Each wait's timeout: the load, plus this many poll intervals (a wait still running then has
#: not completed; this also bounds how long a collapsing run can take).
WAIT_SLACK_INTERVALS = 6
#: The throughput runs are short; the long runs are never repeated.
MAX_REPEATS = 2
PEERS = ("httpx_async", "aiohttp", "async", "async_httpcore")
#: The throughput targets: our CPU per poll against the floors'.
VS_AIOHTTP = 1.3
VS_HTTPX = 1.0
#: The 10,000-wait targets.
MAX_CORES = 0.4
MAX_SLIP_P99_S = 1.0
MAX_RSS_MB = 300.0


def waits_settings(mode: Mode) -> dict[str, Any]:
    if mode.quick:
        return {"n": 1000, "poll_s": 2.0, "load_s": 5.0}
    return {"n": 10_000, "poll_s": 15.0, "load_s": 30.0}


def plan(mode: Mode) -> list[Run]:
    window = 1.5 if mode.quick else 3.0
    busy = {"boot_seconds": 0.0, "hotload_seconds": 3600.0, "seed": 6}
    busy_setup = {"prefix": "sc", "count": THROUGHPUT_N, "replicas": 1, "hotload": "never"}
    throughput = {"n": THROUGHPUT_N, "prefix": "sc", "window_s": window, "kind": "throughput"}
    runs = [
        Run(NAME, peer, THROUGHPUT_N, throughput, busy, busy_setup)
        for peer in (*PEERS, "httpx_aiohttp")
    ]
    s = waits_settings(mode)
    # Full mode leaves ours on httpcore out of the long runs (it has its quick-size run).
    sizes: list[tuple[int, tuple[str, ...]]] = [(s["n"], PEERS)]
    if not mode.quick:
        sizes = [(s["n"], PEERS[:3]), (STRETCH_N, ("async",))]
    for n, peers in sizes:
        plane = {"boot_seconds": 0.0, "hotload_seconds": s["load_s"], "seed": 7}
        setup = {"prefix": "sw", "count": n, "replicas": 1, "hotload": IDENTITY}
        params = {
            **s,
            "n": n,
            "prefix": "sw",
            "kind": "waits",
            "timeout_s": s["load_s"] + WAIT_SLACK_INTERVALS * s["poll_s"],
        }
        runs += [Run(NAME, peer, n, params, plane, setup) for peer in peers]
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
    if m.run.params["kind"] == "waits":
        out["completed"] = m.client.get("completed", 0)
        out["ok"] = float(m.client.get("completed") == m.run.params["n"])
        for key in ("steady_cores", "slip_p50_s", "slip_p99_s", "slip_max_s", "expired_unsent"):
            if m.client.get(key) is not None:
                out[key] = float(m.client[key])
    return out


def targets(rows: list[Row], mode: Mode) -> list[Target]:
    found: list[Target] = []

    def per_poll(peer: str) -> float | None:
        row = find(rows, NAME, peer, THROUGHPUT_N)
        return None if row is None else row.get("cpu_us_per_poll") or None

    ours, core = per_poll("async"), per_poll("async_httpcore")
    bare_aio, bare_httpx = per_poll("aiohttp"), per_poll("httpx_async")
    layer = per_poll("httpx_aiohttp")
    if ours is not None and bare_aio is not None:
        httpx_layer = (
            ""
            if layer is None
            else f"; a bare httpx.AsyncClient over our aiohttp transport alone: {layer:.0f} µs "
            f"({layer / bare_aio:.2f}x bare aiohttp; ours = {ours / layer:.2f}x that)"
        )
        found.append(
            Target(
                NAME,
                f"{THROUGHPUT_N} concurrent waits: CPU per poll <= {VS_AIOHTTP:g} x bare aiohttp "
                "(ours on the fast transport)",
                f"{ours:.0f} vs {bare_aio:.0f} µs CPU/poll -> {ours / bare_aio:.2f}x{httpx_layer}",
                ours <= VS_AIOHTTP * bare_aio,
            )
        )
    if core is not None and bare_httpx is not None:
        found.append(
            Target(
                NAME,
                f"{THROUGHPUT_N} concurrent waits: CPU per poll <= {VS_HTTPX:g} x a bounded "
                "bare httpx.AsyncClient (ours on httpcore, without the fast transport)",
                f"{core:.0f} vs {bare_httpx:.0f} µs CPU/poll -> {core / bare_httpx:.2f}x",
                core <= VS_HTTPX * bare_httpx,
            )
        )
    s = waits_settings(mode)
    found += _wait_targets(rows, s["n"], mode, s)
    if not mode.quick:
        found += _wait_targets(rows, STRETCH_N, mode, s, stretch=True)
    return found


def _wait_targets(
    rows: list[Row], n: int, mode: Mode, s: dict[str, Any], stretch: bool = False
) -> list[Target]:
    big = find(rows, NAME, "async", n)
    if big is None or not big.metrics:
        return []
    size = f"{n:,} waits at {s['poll_s']:g} s"
    label = f" (quick: {size})" if mode.quick else ""
    floors = {
        peer: find(rows, NAME, peer, n) for peer in ("httpx_async", "aiohttp", "async_httpcore")
    }

    def others(key: str, fmt: str) -> str:
        parts = [
            f"{name} {fmt.format(row.get(key))}"
            for peer, name in (
                ("httpx_async", "bare httpx"),
                ("aiohttp", "bare aiohttp"),
                ("async_httpcore", "ours on httpcore"),
            )
            if (row := floors[peer]) is not None and row.get(key) is not None
        ]
        return f" (vs {', '.join(parts)})" if parts else ""

    completed = big.get("completed") or 0.0
    cores = big.get("cores") or 0.0
    steady = big.get("steady_cores")
    rss = big.get("maxrss_mb") or 0.0
    p99 = big.get("slip_p99_s")
    p50 = big.get("slip_p50_s")
    unsent = big.get("expired_unsent")
    probe_note = big.note or (
        "slip not measured: our poll probe could not attach" if p99 is None else ""
    )
    if stretch:
        met = (
            completed == n
            and cores <= MAX_CORES
            and p99 is not None
            and p99 <= MAX_SLIP_P99_S
            and unsent == 0
            and rss <= MAX_RSS_MB
        )
        return [
            Target(
                NAME,
                f"stretch: {size}: all complete, <= {MAX_CORES} core, p99 slip <= "
                f"{MAX_SLIP_P99_S:g} s, 0 expired unsent, <= {MAX_RSS_MB:.0f} MB",
                f"{completed:.0f}/{n} completed, {cores:.2f} cores, p99 slip "
                f"{_num(p99, '{:.2f}s')}, {_num(unsent, '{:.0f}')} expired unsent, "
                f"{rss:.0f} MB",
                met,
                probe_note,
            )
        ]
    steady_text = f" ({_num(steady, '{:.2f}')} after the first two intervals)"
    return [
        Target(
            NAME,
            f"{size}: every wait completes{label}",
            f"{completed:.0f}/{n} completed" + others("completed", "{:.0f}"),
            completed == n,
        ),
        Target(
            NAME,
            f"{size}: client CPU <= {MAX_CORES} core over the run{label}",
            f"{cores:.2f} cores{steady_text}, {big.get('cpu_us_per_poll') or 0:.0f} µs CPU/poll"
            + others("cores", "{:.2f}"),
            cores <= MAX_CORES,
            "'after the first two intervals' leaves out the start, when every wait begins",
        ),
        Target(
            NAME,
            f"{size}: p99 schedule slip <= {MAX_SLIP_P99_S:g} s{label}",
            f"p99 {_num(p99, '{:.3f}s')}, p50 {_num(p50, '{:.3f}s')}, max "
            f"{_num(big.get('slip_max_s'), '{:.2f}s')}" + others("slip_p99_s", "p99 {:.3f}s"),
            None if p99 is None else p99 <= MAX_SLIP_P99_S,
            probe_note,
        ),
        Target(
            NAME,
            f"{size}: 0 fetches expired unsent{label}",
            f"{_num(unsent, '{:.0f}')} expired unsent" + others("expired_unsent", "{:.0f}"),
            None if unsent is None else unsent == 0,
            probe_note,
        ),
        Target(
            NAME,
            f"{size}: peak RSS <= {MAX_RSS_MB:.0f} MB{label}",
            f"{rss:.0f} MB" + others("maxrss_mb", "{:.0f} MB"),
            rss <= MAX_RSS_MB,
        ),
    ]


def _num(value: float | None, fmt: str) -> str:
    return "n/a" if value is None else fmt.format(value)


# -- clients (run in the worker process) ---------------------------------------------------------


def _status_headers(deployment_id: str) -> dict[str, str]:
    return {
        "X-Api-Key": API_KEY,
        "Authorization": f"Bearer {API_KEY}",
        "Content-Type": "application/json",
        "fireworks-model": BASE_MODEL,
        "fireworks-deployment": f"accounts/local/deployments/{deployment_id}",
    }


def _served(body: Any, identity: str) -> bool:
    """Every replica ready with `identity` (what our wait checks, minus its error handling)."""
    replicas = body.get("replicas") if isinstance(body, dict) else None
    if not isinstance(replicas, list) or not replicas:
        return False
    return all(
        r.get("readiness") and r.get("current_snapshot_identity") == identity for r in replicas
    )


#: A bare GET of the status: (url, headers) -> decoded JSON.
Getter = Callable[[str, dict[str, str]], Awaitable[Any]]


async def _floor_throughput(get: Getter, base_url: str, params: dict[str, Any]) -> dict[str, Any]:
    url = f"{base_url}/hot_load/v1/models/hot_load"
    gate = anyio.Semaphore(IN_FLIGHT)

    async def loop(deployment_id: str) -> None:
        headers = _status_headers(deployment_id)
        while True:
            async with gate:
                await get(url, headers)

    with Stopwatch() as sw, anyio.move_on_after(params["window_s"]):
        async with anyio.create_task_group() as tg:
            for name in ids(params["prefix"], params["n"]):
                tg.start_soon(loop, name)
    return sw.result()


async def _floor_waits(get: Getter, base_url: str, params: dict[str, Any]) -> dict[str, Any]:
    """A plain poller per wait: at once, then on the grid joined + k * interval (a late poll
    skips the grid points it missed); `IN_FLIGHT` requests at a time."""
    url = f"{base_url}/hot_load/v1/models/hot_load"
    gate = anyio.Semaphore(IN_FLIGHT)
    records: list[PollRecord] = []
    interval = float(params["poll_s"])
    completed = 0

    async def wait(deployment_id: str) -> None:
        nonlocal completed
        headers = _status_headers(deployment_id)
        clock = time.monotonic
        joined = clock()
        deadline = joined + float(params["timeout_s"])
        due = joined
        while True:
            delay = due - clock()
            if delay > 0:
                await anyio.sleep(delay)
            fired = clock()
            record = PollRecord(due, fired)
            records.append(record)
            body = None
            with polling(record), anyio.move_on_after(deadline - fired):
                async with gate:
                    record.sent = clock()
                    body = await get(url, headers)
            if body is not None and _served(body, IDENTITY):
                completed += 1
                return
            if clock() >= deadline:
                return
            # the next point of the wait's grid (joined + k * interval) after this poll
            due = joined + (math.floor((fired - joined) / interval) + 1) * interval

    with CpuSampler() as cpu, Stopwatch() as sw:
        async with anyio.create_task_group() as tg:
            for name in ids(params["prefix"], params["n"]):
                tg.start_soon(wait, name)
    return sw.result(
        completed=completed,
        steady_cores=cpu.cores_after(sw.started + 2 * interval),
        **summarize(records),
    )


def _httpx_floor(base_url: str, params: dict[str, Any]) -> dict[str, Any]:
    send_stamps()  # the same per-request stamp our manager's sends carry

    async def main() -> dict[str, Any]:
        limits = httpx.Limits(max_connections=IN_FLIGHT, max_keepalive_connections=IN_FLIGHT)
        async with httpx.AsyncClient(trust_env=False, limits=limits, timeout=60) as client:

            async def get(url: str, headers: dict[str, str]) -> Any:
                return (await client.get(url, headers=headers)).json()

            if params["kind"] == "throughput":
                return await _floor_throughput(get, base_url, params)
            return await _floor_waits(get, base_url, params)

    return run_async(main)


def client_httpx_async(base_url: str, params: dict[str, Any]) -> dict[str, Any]:
    return _httpx_floor(base_url, params)


def client_httpx_aiohttp(base_url: str, params: dict[str, Any]) -> dict[str, Any]:
    """What httpx's layer costs on the fast transport: a bare `httpx.AsyncClient` over our
    `AiohttpTransport`, the same loop as the floors (the throughput run only)."""
    try:
        from fireworks_deploy._transport import AiohttpTransport, aiohttp_available
    except ImportError:
        return {"skipped": "fireworks_deploy has no aiohttp transport", "wall_s": 0.0, "cpu_s": 0.0}
    if not aiohttp_available():
        return {"skipped": "aiohttp not installed", "wall_s": 0.0, "cpu_s": 0.0}
    send_stamps()

    async def main() -> dict[str, Any]:
        limits = httpx.Limits(max_connections=IN_FLIGHT, max_keepalive_connections=IN_FLIGHT)
        transport = AiohttpTransport(verify=False, limits=limits)
        async with httpx.AsyncClient(transport=transport, trust_env=False, timeout=60) as client:

            async def get(url: str, headers: dict[str, str]) -> Any:
                return (await client.get(url, headers=headers)).json()

            return await _floor_throughput(get, base_url, params)

    return run_async(main)


def client_aiohttp(base_url: str, params: dict[str, Any]) -> dict[str, Any]:
    try:
        import aiohttp
    except ImportError:
        return {"skipped": "aiohttp not installed", "wall_s": 0.0, "cpu_s": 0.0}

    async def main() -> dict[str, Any]:
        connector = aiohttp.TCPConnector(limit=IN_FLIGHT)
        timeout = aiohttp.ClientTimeout(total=60)
        async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:

            async def get(url: str, headers: dict[str, str]) -> Any:
                async with session.get(url, headers=headers) as response:
                    return await response.json()

            if params["kind"] == "throughput":
                return await _floor_throughput(get, base_url, params)
            return await _floor_waits(get, base_url, params)

    return run_async(main)


def client_async_httpcore(base_url: str, params: dict[str, Any]) -> dict[str, Any]:
    use_httpcore()
    return client_async(base_url, params)


def client_async(base_url: str, params: dict[str, Any]) -> dict[str, Any]:
    names = ids(params["prefix"], params["n"])
    throughput = params["kind"] == "throughput"
    identity = "never" if throughput else IDENTITY
    poll_s = 0.001 if throughput else float(params["poll_s"])
    timeout_s = params["window_s"] + 60 if throughput else params["timeout_s"]
    completed = 0
    failed: dict[str, int] = {}

    async def main() -> dict[str, Any]:
        nonlocal completed
        async with async_manager(base_url) as m:
            await m.resolve_account_id()
            probe = OurPollProbe()
            if not throughput:
                probe.install(m)

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
                except FireworksError as exc:  # counted and reported, not fatal to the run
                    failed[type(exc).__name__] = failed.get(type(exc).__name__, 0) + 1
                    return
                completed += 1

            with CpuSampler() as cpu, Stopwatch() as sw:
                with anyio.move_on_after(params["window_s"] if throughput else None):
                    async with anyio.create_task_group() as tg:
                        for name in names:
                            tg.start_soon(wait, name)
            if throughput:
                return sw.result()
            extra: dict[str, Any] = {
                "completed": completed,
                "failed": failed,
                "steady_cores": cpu.cores_after(sw.started + 2 * poll_s),
            }
            if probe.unavailable is None and not probe.records:
                probe.unavailable = "the probe saw no fetch"
            if probe.unavailable is None:
                extra.update(summarize(probe.records))
            else:
                extra["note"] = f"slip not measured: {probe.unavailable}"
            if failed:
                extra["note"] = f"{extra.get('note', '')} failed waits: {failed}".strip()
            return sw.result(**extra)

    return run_async(main)
