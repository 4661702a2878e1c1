"""4. Many waiters, one deployment: M concurrent `wait_for_hotload` calls on one hot-load.

The client POSTs one hot-load, then starts M waiters (tasks for the async manager, threads on
one shared manager for the sync facade and the official client). Cost = hot-load status
requests per poll interval (ours 1 s; the official client's fixed 5 s).
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import Any

import anyio

from .._clients import BASE_MODEL, Stopwatch, async_manager, run_async, sync_manager
from .._harness import Measurement, Run
from .._types import Mode, Row, Target, find

NAME = "many_waiters"
TITLE = "Many waiters on one deployment"
X_LABEL = "waiters M"
POLL_S = 1.0
TIMEOUT_S = 120.0
DEPLOYMENT = "mw-00000"
#: The counts are deterministic; one run per M keeps the full mode short.
MAX_REPEATS = 1


def plan(mode: Mode) -> list[Run]:
    load_s = 2.0
    plane = {"boot_seconds": 0.0, "hotload_seconds": load_s, "seed": 4}
    setup = {"prefix": "mw", "count": 1, "replicas": 1}
    sizes = [1, 256] if mode.quick else [1, 4, 16, 64, 256]
    peers = ["async", "sync"] + (["official_threads"] if mode.official else [])
    return [
        Run(
            NAME,
            peer,
            m,
            {"m": m, "deployment_id": DEPLOYMENT, "poll_s": POLL_S, "timeout_s": TIMEOUT_S},
            plane,
            setup,
        )
        for peer in peers
        for m in sizes
        # quick: the official client's cost is linear in M; its M=256 run shows it
        if not (mode.quick and peer.startswith("official") and m == 1)
    ]


def derive(m: Measurement) -> dict[str, float]:
    poll_s = float(m.client.get("poll_s", POLL_S))
    status = m.requests.get("hotload_status", 0)
    wall = m.client["wall_s"]
    return {
        "status_requests": status,
        "interval_s": poll_s,
        "status_per_interval": status / max(1.0, wall / poll_s),
        "ok": float(bool(m.client.get("ok"))),
    }


def targets(rows: list[Row], mode: Mode) -> list[Target]:
    found = []
    for peer in ("async", "sync"):
        mine = sorted(
            (r for r in rows if r.scenario == NAME and r.peer == peer and r.metrics),
            key=lambda r: r.x,
        )
        if not mine:
            continue
        low, high = mine[0], mine[-1]
        measured = ", ".join(f"M={r.x}: {r.get('status_requests') or 0:.0f}" for r in mine)
        official = find(rows, NAME, "official_threads", high.x)
        if official is not None:
            measured += f" (official M={high.x}: {official.get('status_requests') or 0:.0f})"
        flat = (high.get("status_requests") or 0) <= 2 * (low.get("status_requests") or 0)
        found.append(
            Target(
                NAME,
                f"status requests do not grow with M: M={high.x} <= 2 x M={low.x} ({peer})",
                f"status requests {measured}",
                flat,
                "" if flat else "the status requests grow with M: waiters do not share one poll",
            )
        )
    return found


# -- our clients ---------------------------------------------------------------------------------


def client_async(base_url: str, params: dict[str, Any]) -> dict[str, Any]:
    async def main() -> dict[str, Any]:
        async with async_manager(base_url) as m:
            await m.resolve_account_id()
            done = 0

            async def wait() -> None:
                nonlocal done
                await m.wait_for_hotload(
                    params["deployment_id"],
                    BASE_MODEL,
                    "snap-1",
                    timeout_seconds=params["timeout_s"],
                    poll_interval_s=params["poll_s"],
                )
                done += 1

            with Stopwatch() as sw:
                await m.hotload(params["deployment_id"], BASE_MODEL, "snap-1")
                async with anyio.create_task_group() as tg:
                    for _ in range(params["m"]):
                        tg.start_soon(wait)
            return sw.result(ok=done == params["m"], poll_s=params["poll_s"])

    return run_async(main)


def client_sync(base_url: str, params: dict[str, Any]) -> dict[str, Any]:
    with sync_manager(base_url) as m:
        m.resolve_account_id()

        def wait(_: int) -> bool:
            m.wait_for_hotload(
                params["deployment_id"],
                BASE_MODEL,
                "snap-1",
                timeout_seconds=params["timeout_s"],
                poll_interval_s=params["poll_s"],
            )
            return True

        with Stopwatch() as sw:
            m.hotload(params["deployment_id"], BASE_MODEL, "snap-1")
            with ThreadPoolExecutor(max_workers=params["m"]) as pool:
                oks = list(pool.map(wait, range(params["m"])))
    return sw.result(ok=all(oks), poll_s=params["poll_s"])
