"""5. Per-call cost: `get` of one deployment, one call in flight, thousands of times.

Our async manager, our sync facade and the official client's `get`, against the floors: a bare
`httpx.Client.get` and a bare pooled `httpx.AsyncClient.get` of the same URL (each decodes the
JSON, as every SDK does), and a bare aiohttp session (the fast floor). Our managers use their
default transport (aiohttp when installed); ours forced onto httpx's own transport
(`FIREWORKS_DEPLOY_TRANSPORT=httpcore`) is measured too. Reported: wall
µs/call and client CPU µs/call (process CPU, all threads, so the sync facade's event-loop
thread counts). Repeats are interleaved across peers, so a busy neighbour hits all alike.
"""

from __future__ import annotations

from typing import Any

import httpx

from .._clients import API_KEY, Stopwatch, async_manager, run_async, sync_manager, use_httpcore
from .._harness import Measurement, Run
from .._types import Mode, Row, Target, find

NAME = "per_call"
TITLE = "Per-call cost of get (one in flight)"
X_LABEL = "calls"
DEPLOYMENT = "pc-00000"
WARMUP = 50
PEERS = ("httpx_sync", "httpx_async", "aiohttp", "async", "async_httpcore", "sync")
#: The sync facade's CPU per call, at most this times the official client's.
SYNC_VS_OFFICIAL = 1.25
#: Our async manager's CPU per call, at most this times a bare pooled httpx.AsyncClient's.
ASYNC_VS_FLOOR = 1.2


def plan(mode: Mode) -> list[Run]:
    calls = 1000 if mode.quick else 2000
    plane = {"boot_seconds": 0.0, "seed": 5}
    setup = {"prefix": "pc", "count": 1, "replicas": 1}
    params = {"calls": calls, "warmup": WARMUP, "deployment_id": DEPLOYMENT}
    peers = [*PEERS, "official"] if mode.official else list(PEERS)
    return [Run(NAME, peer, calls, params, plane, setup) for peer in peers]


def derive(m: Measurement) -> dict[str, float]:
    calls = m.client.get("calls") or 1
    if m.client.get("skipped"):
        return {"skipped": 1.0}
    return {
        "us_per_call": m.client["wall_s"] / calls * 1e6,
        "cpu_us_per_call": m.client["cpu_s"] / calls * 1e6,
    }


def targets(rows: list[Row], mode: Mode) -> list[Target]:
    def cpu(peer: str) -> float | None:
        row = find(rows, NAME, peer)
        return None if row is None else row.get("cpu_us_per_call")

    floor, ours, sync, official = cpu("httpx_async"), cpu("async"), cpu("sync"), cpu("official")
    found = []
    if sync is not None and official is not None:
        found.append(
            Target(
                NAME,
                f"sync facade CPU per get <= {SYNC_VS_OFFICIAL:g} x the official client's",
                f"{sync:.0f} vs {official:.0f} µs CPU/call -> {sync / official:.2f}x "
                f"(ours async {_num(ours)}, bare httpx.Client {_num(cpu('httpx_sync'))})",
                sync <= SYNC_VS_OFFICIAL * official,
            )
        )
    if ours is not None and floor is not None:
        found.append(
            Target(
                NAME,
                f"async manager CPU per get <= {ASYNC_VS_FLOOR:g} x a bare pooled "
                "httpx.AsyncClient",
                f"{ours:.0f} vs {floor:.0f} µs CPU/call -> {ours / floor:.2f}x",
                ours <= ASYNC_VS_FLOOR * floor,
            )
        )
    core, bare_aio = cpu("async_httpcore"), cpu("aiohttp")
    if ours is not None and core is not None:
        found.append(
            Target(
                NAME,
                "(no target) ours on its default transport vs ours forced onto httpcore",
                f"{ours:.0f} vs {core:.0f} µs CPU/call ({core / ours:.2f}x); bare aiohttp "
                f"{_num(bare_aio)}, bare httpx.AsyncClient {_num(floor)}",
                None,
            )
        )
    return found


def _num(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.0f} µs"


# -- clients -------------------------------------------------------------------------------------


def _url(base_url: str, params: dict[str, Any]) -> str:
    return f"{base_url}/v1/accounts/local/deployments/{params['deployment_id']}"


HEADERS = {"X-Api-Key": API_KEY, "Content-Type": "application/json"}


def client_httpx_sync(base_url: str, params: dict[str, Any]) -> dict[str, Any]:
    url = _url(base_url, params)
    with httpx.Client(trust_env=False) as client:
        for _ in range(params["warmup"]):
            client.get(url, headers=HEADERS).json()
        with Stopwatch() as sw:
            for _ in range(params["calls"]):
                client.get(url, headers=HEADERS).json()
    return sw.result(calls=params["calls"])


def client_httpx_async(base_url: str, params: dict[str, Any]) -> dict[str, Any]:
    url = _url(base_url, params)

    async def main() -> dict[str, Any]:
        async with httpx.AsyncClient(trust_env=False) as client:
            for _ in range(params["warmup"]):
                (await client.get(url, headers=HEADERS)).json()
            with Stopwatch() as sw:
                for _ in range(params["calls"]):
                    (await client.get(url, headers=HEADERS)).json()
        return sw.result(calls=params["calls"])

    return run_async(main)


def client_aiohttp(base_url: str, params: dict[str, Any]) -> dict[str, Any]:
    try:
        import aiohttp
    except ImportError:
        return {"skipped": "aiohttp not installed", "wall_s": 0.0, "cpu_s": 0.0}
    url = _url(base_url, params)

    async def main() -> dict[str, Any]:
        async with aiohttp.ClientSession() as session:

            async def one() -> None:
                async with session.get(url, headers=HEADERS) as response:
                    await response.json()

            for _ in range(params["warmup"]):
                await one()
            with Stopwatch() as sw:
                for _ in range(params["calls"]):
                    await one()
        return sw.result(calls=params["calls"])

    return run_async(main)


def _manager_calls(manager_kwargs: dict[str, Any], base_url: str, params: dict[str, Any]) -> Any:
    async def main() -> dict[str, Any]:
        async with async_manager(base_url, **manager_kwargs) as m:
            for _ in range(params["warmup"]):
                await m.get(params["deployment_id"])
            with Stopwatch() as sw:
                for _ in range(params["calls"]):
                    await m.get(params["deployment_id"])
        return sw.result(calls=params["calls"])

    return main


def client_async(base_url: str, params: dict[str, Any]) -> dict[str, Any]:
    return run_async(_manager_calls({}, base_url, params))


def client_async_httpcore(base_url: str, params: dict[str, Any]) -> dict[str, Any]:
    use_httpcore()
    return run_async(_manager_calls({}, base_url, params))


def client_sync(base_url: str, params: dict[str, Any]) -> dict[str, Any]:
    with sync_manager(base_url) as m:
        for _ in range(params["warmup"]):
            m.get(params["deployment_id"])
        with Stopwatch() as sw:
            for _ in range(params["calls"]):
                m.get(params["deployment_id"])
    return sw.result(calls=params["calls"])
