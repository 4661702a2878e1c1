"""5. Per-call cost: `get` of one deployment, one call in flight, thousands of times.

Our sync facade, our async manager and the official client's `get`, against the floors: a bare
`httpx.Client.get` and a bare pooled `httpx.AsyncClient.get` of the same URL (each decodes the
JSON, as every SDK does). Experiments, labelled: a bare aiohttp session, and our async manager
on an aiohttp-backed httpx transport (`httpx_aiohttp.AiohttpTransport`, no API change).
Reported: wall µs/call and client CPU µs/call (process CPU, all threads).
"""

from __future__ import annotations

from typing import Any

import httpx

from .._clients import API_KEY, Stopwatch, async_manager, run_async, sync_manager
from .._experiments import ExperimentUnavailableError, one_hop_sync, skipped
from .._harness import Measurement, Run
from .._types import Mode, Row, Target, find

NAME = "per_call"
TITLE = "Per-call cost of get (one in flight)"
X_LABEL = "calls"
DEPLOYMENT = "pc-00000"
WARMUP = 50
PEERS = (
    "httpx_sync",
    "httpx_async",
    "aiohttp",
    "async",
    "async_aiohttp",
    "sync",
    "sync_onehop",
)


def plan(mode: Mode) -> list[Run]:
    calls = 1000 if mode.quick else 5000
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

    floor = cpu("httpx_async")
    ours, sync = cpu("async"), cpu("sync")
    if floor is None or ours is None or sync is None:
        return []
    found = [
        Target(
            NAME,
            "client CPU per status request within 1.2x of a bare pooled httpx.AsyncClient",
            f"{ours:.0f} vs {floor:.0f} µs CPU/call -> {ours / floor:.2f}x",
            ours <= 1.2 * floor,
        ),
        Target(
            NAME,
            "sync facade per call within bare AsyncClient + 150 µs",
            f"{sync:.0f} vs {floor:.0f} + 150 µs CPU/call (+{sync - floor:.0f} µs)"
            + _versus(cpu("httpx_sync"), cpu("official")),
            sync <= floor + 150,
        ),
    ]
    onehop = cpu("sync_onehop")
    if onehop is not None:
        found.append(
            Target(
                NAME,
                "experiment: sync facade with a one-hop portal call",
                f"{onehop:.0f} µs CPU/call (+{onehop - floor:.0f} µs over the floor, "
                f"{sync - onehop:.0f} µs saved)",
                onehop <= floor + 150,
            )
        )
    aio = cpu("async_aiohttp")
    bare_aio = cpu("aiohttp")
    if aio is not None and bare_aio is not None:
        found.append(
            Target(
                NAME,
                "would an aiohttp transport cut per-request cost several-fold? (experiment)",
                f"ours on aiohttp {aio:.0f} vs httpx {ours:.0f} µs CPU/call "
                f"({ours / aio:.2f}x); bare aiohttp {bare_aio:.0f} vs bare httpx {floor:.0f} µs",
                None,
            )
        )
    return found


def _versus(bare_sync: float | None, official: float | None) -> str:
    parts = []
    if bare_sync is not None:
        parts.append(f"bare httpx.Client {bare_sync:.0f} µs")
    if official is not None:
        parts.append(f"official get {official:.0f} µs")
    return f"; {', '.join(parts)}" if parts else ""


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


def client_async_aiohttp(base_url: str, params: dict[str, Any]) -> dict[str, Any]:
    try:
        from httpx_aiohttp import AiohttpTransport
    except ImportError:
        return {"skipped": "httpx-aiohttp not installed", "wall_s": 0.0, "cpu_s": 0.0}

    async def main() -> dict[str, Any]:
        transport = AiohttpTransport()
        async with transport:
            result: dict[str, Any] = await _manager_calls(
                {"transport": transport}, base_url, params
            )()
            return result

    return run_async(main)


def client_sync(base_url: str, params: dict[str, Any], one_hop: bool = False) -> dict[str, Any]:
    with sync_manager(base_url) as m:
        if one_hop:
            try:
                one_hop_sync(m)
            except ExperimentUnavailableError as exc:
                return skipped(exc)
        for _ in range(params["warmup"]):
            m.get(params["deployment_id"])
        with Stopwatch() as sw:
            for _ in range(params["calls"]):
                m.get(params["deployment_id"])
    return sw.result(calls=params["calls"])


def client_sync_onehop(base_url: str, params: dict[str, Any]) -> dict[str, Any]:
    return client_sync(base_url, params, one_hop=True)
