"""2. Hot-load broadcast: one snapshot to N deployments of R replicas each, base then delta.

Deployments are created ready (no boot) by the side channel. Each hot-load takes a duration
drawn per replica from [load_min, load_max]. Every client waits with the official client's
fixed 5 s hot-load poll interval (ours: `poll_interval_s=5`).
"""

from __future__ import annotations

from typing import Any

from .._clients import (
    BASE_MODEL,
    DELTA_METADATA,
    Stopwatch,
    async_manager,
    count_failed,
    ids,
    run_async,
    sync_manager,
)
from .._harness import Measurement, Run
from .._types import Mode, Row, Target, find

NAME = "hotload_broadcast"
TITLE = "Hot-load broadcast (base then delta)"
X_LABEL = "deployments N (x R replicas)"
POLL_S = 5.0
TIMEOUT_S = 300.0
#: Two repeats keep the full mode within its time (the official runs are single anyway).
MAX_REPEATS = 2


def plan(mode: Mode) -> list[Run]:
    load_min, load_max = (0.5, 1.0) if mode.quick else (1.0, 2.0)
    replicas = 2
    plane = {
        "boot_seconds": 0.0,
        "hotload_seconds": load_min,
        "hotload_jitter": load_max - load_min,
        "seed": 2,
    }
    sizes = [16] if mode.quick else [16, 64]
    runs: list[Run] = []

    def add(peer: str, n: int, measured: int | None = None) -> None:
        count = measured or n
        setup = {"prefix": "hb", "count": count, "replicas": replicas}
        params = {"n": count, "prefix": "hb", "poll_s": POLL_S, "timeout_s": TIMEOUT_S}
        runs.append(Run(NAME, peer, n, params, plane, setup, measured_x=measured))

    for n in sizes:
        add("async", n)
        if mode.official:
            add("official_threads", n)
    if not mode.quick:
        add("sync", sizes[-1])
        if mode.official:
            add("official_seq", sizes[-1], 2)
    return runs


def derive(m: Measurement) -> dict[str, float]:
    phases = m.client.get("phases", {})
    return {
        "base_s": phases.get("snap-base", 0.0),
        "delta_s": phases.get("snap-delta", 0.0),
        "status_requests": m.requests.get("hotload_status", 0),
        "ok": float(bool(m.client.get("ok"))),
    }


def targets(rows: list[Row], mode: Mode) -> list[Target]:
    ours = find(rows, NAME, "async")
    if ours is None or not ours.get("wall_s"):
        return []
    threads = find(rows, NAME, "official_threads", ours.x)
    seq = find(rows, NAME, "official_seq", ours.x)
    wall = ours.get("wall_s") or 0.0
    parts = [f"ours {wall:.2f}s for N={ours.x}"]
    if threads is not None and threads.get("wall_s"):
        t_wall = threads.get("wall_s") or 0.0
        parts.append(f"official on a thread pool {t_wall:.2f}s ({t_wall / wall:.2f}x as fast)")
    if seq is not None and seq.get("wall_s"):
        parts.append(
            f"official sequential {seq.get('wall_s') or 0:.0f}s "
            f"(scaled from N={seq.extrapolated_from})"
        )
    return [
        Target(
            NAME,
            "ours no slower than the official client on a thread pool, base then delta",
            "; ".join(parts),
            None
            if threads is None or not threads.get("wall_s")
            else wall <= (threads.get("wall_s") or 0.0),
            "; ".join(
                [
                    "the official client's hot-load wait sleeps a fixed 5 s, so each phase "
                    "costs >= 5 s",
                    *(row.note for row in (ours, threads) if row is not None and row.note),
                ]
            ),
        )
    ]


# -- our clients ---------------------------------------------------------------------------------


def client_async(base_url: str, params: dict[str, Any]) -> dict[str, Any]:
    names = ids(params["prefix"], params["n"])

    async def main() -> dict[str, Any]:
        async with async_manager(base_url) as m:
            await m.resolve_account_id()
            phases: dict[str, float] = {}
            oks = []
            with Stopwatch() as sw:
                for identity, metadata in (("snap-base", None), ("snap-delta", DELTA_METADATA)):
                    with Stopwatch() as phase:
                        result = await m.hotload_and_wait_many(
                            names,
                            BASE_MODEL,
                            identity,
                            metadata,
                            timeout_seconds=params["timeout_s"],
                            poll_interval_s=params["poll_s"],
                            return_exceptions=True,
                        )
                    phases[identity] = phase.wall_s
                    oks.append(result.ok)
                    count_failed(result)
            return sw.result(phases=phases, ok=all(oks))

    return run_async(main)


def client_sync(base_url: str, params: dict[str, Any]) -> dict[str, Any]:
    names = ids(params["prefix"], params["n"])
    phases: dict[str, float] = {}
    oks = []
    with sync_manager(base_url) as m:
        m.resolve_account_id()
        with Stopwatch() as sw:
            for identity, metadata in (("snap-base", None), ("snap-delta", DELTA_METADATA)):
                with Stopwatch() as phase:
                    result = m.hotload_and_wait_many(
                        names,
                        BASE_MODEL,
                        identity,
                        metadata,
                        timeout_seconds=params["timeout_s"],
                        poll_interval_s=params["poll_s"],
                        return_exceptions=True,
                    )
                phases[identity] = phase.wall_s
                oks.append(result.ok)
                count_failed(result)
    return sw.result(phases=phases, ok=all(oks))
