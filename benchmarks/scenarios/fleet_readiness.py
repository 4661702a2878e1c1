"""1. Fleet readiness: create N deployments and wait until every one is ready.

Boot times are drawn uniformly from [boot_min, boot_max] by the plane (same seed for every
peer). Every client gets the same `poll_interval_s`. The official client runs the loop users
write today, `create_or_get` then `wait_for_ready` per deployment: sequentially (capped at a few
deployments and scaled linearly to N, labelled) and in a ThreadPoolExecutor (one thread per
deployment, up to 256).
"""

from __future__ import annotations

import statistics
from typing import Any

import anyio

from .._clients import BASE_MODEL, Stopwatch, async_manager, ids, run_async, sync_manager
from .._harness import Measurement, Run
from .._types import Mode, Row, Target, find

NAME = "fleet_readiness"
TITLE = "Fleet readiness"
X_LABEL = "deployments N"
TIMEOUT_S = 300.0


def settings(mode: Mode) -> dict[str, float]:
    if mode.quick:
        return {"boot_min": 0.5, "boot_max": 1.5, "poll_s": 0.5}
    return {"boot_min": 1.0, "boot_max": 3.0, "poll_s": 1.0}


def plan(mode: Mode) -> list[Run]:
    s = settings(mode)
    plane = {"boot_seconds": s["boot_min"], "boot_jitter": s["boot_max"] - s["boot_min"], "seed": 1}
    sizes = [1, 16, 256] if mode.quick else [1, 16, 64, 256]
    runs: list[Run] = []

    def add(peer: str, n: int, measured: int | None = None) -> None:
        count = measured or n
        params = {
            "n": count,
            "prefix": f"fr-{count}",
            "poll_s": s["poll_s"],
            "timeout_s": TIMEOUT_S,
            "want_events": True,
        }
        runs.append(Run(NAME, peer, n, params, plane, measured_x=measured))

    for n in sizes:
        add("async", n)
    for n in [256] if mode.quick else [16, 256]:
        add("async_each", n)
        add("sync", n)

    if mode.official:
        add("official_seq", 256, 2 if mode.quick else 8)
        for n in [16, 256] if mode.quick else sizes:
            add("official_threads", n)
    return runs


def derive(m: Measurement) -> dict[str, float]:
    created = {e["deployment_id"]: e["at"] for e in m.events if e["kind"] == "created"}
    ready = {
        e["deployment_id"]: e["at"]
        for e in m.events
        if e["kind"] == "ready" and e["deployment_id"] in created
    }
    slowest = max((ready[i] - created[i] for i in ready), default=0.0)
    out = {
        "slowest_boot_s": slowest,
        "list_requests": m.requests.get("list", 0),
        "get_requests": m.requests.get("get", 0),
        "probe_requests": m.requests.get("completions", 0),
        "ok": float(bool(m.client.get("ok"))),
    }
    returned: dict[str, float] = m.client.get("returned") or {}
    if ready:
        ended = m.client["ended"]
        latencies = [returned.get(i, ended) - ready[i] for i in ready]
        out["detect_median_s"] = statistics.median(latencies)
        out["detect_last_s"] = ended - max(ready.values())
    poll_s = float(m.run.params["poll_s"])
    out["target_wall_s"] = slowest + poll_s
    out["status_requests_per_interval"] = (
        (out["list_requests"] + out["get_requests"]) / (m.client["wall_s"] / poll_s)
        if m.client["wall_s"]
        else 0.0
    )
    return out


def targets(rows: list[Row], mode: Mode) -> list[Target]:
    found: list[Target] = []
    ours = find(rows, NAME, "async", 256)
    if ours is not None:
        wall = ours.get("wall_s") or 0.0
        bound = ours.get("target_wall_s") or 0.0
        found.append(
            Target(
                NAME,
                "N=256 wall <= 1.2 x (slowest boot + one poll interval)",
                f"{wall:.2f}s vs {bound:.2f}s -> {wall / bound:.2f}x" if bound else "n/a",
                bool(bound) and wall <= 1.2 * bound,
            )
        )
        seq = find(rows, NAME, "official_seq", 256)
        if seq is not None:
            seq_wall = seq.get("wall_s") or 0.0
            found.append(
                Target(
                    NAME,
                    "N=256 at least 50x faster than the official client sequentially",
                    f"{seq_wall / wall:.0f}x ({seq_wall:.0f}s, scaled from N="
                    f"{seq.extrapolated_from}, vs {wall:.2f}s)",
                    seq_wall >= 50 * wall,
                )
            )
        lists = ours.get("list_requests") or 0.0
        polls = (ours.get("wall_s") or 1.0) / float(settings(mode)["poll_s"])
        found.append(
            Target(
                NAME,
                "fleet wait reads through the list endpoint: ~N/200 status requests per interval",
                f"{lists / polls:.2f} list reads per interval for N=256 (+ "
                f"{(ours.get('probe_requests') or 0) / polls:.0f} completion probes per interval)",
                lists / polls <= 3.0,
                "the list reads are ~2 per interval (N/200 rounded up); the completions probe "
                "of every CREATING deployment is what grows with N",
            )
        )
    return found


# -- our clients (run in the worker process) -----------------------------------------------------


def _configs(params: dict[str, Any]) -> list[Any]:
    from fireworks_deploy import DeploymentConfig

    return [
        DeploymentConfig(deployment_id=i, base_model=BASE_MODEL)
        for i in ids(params["prefix"], params["n"])
    ]


def client_async(base_url: str, params: dict[str, Any]) -> dict[str, Any]:
    configs = _configs(params)

    async def main() -> dict[str, Any]:
        async with async_manager(base_url) as m:
            with Stopwatch() as sw:
                async with anyio.create_task_group() as tg:
                    for config in configs:
                        tg.start_soon(m.create_or_get, config)
                result = await m.wait_for_ready_many(
                    [c.deployment_id for c in configs],
                    timeout_s=params["timeout_s"],
                    poll_interval_s=params["poll_s"],
                )
            return sw.result(ok=result.ok)

    return run_async(main)


def client_async_each(base_url: str, params: dict[str, Any]) -> dict[str, Any]:
    configs = _configs(params)
    returned: dict[str, float] = {}

    async def main() -> dict[str, Any]:
        async with async_manager(base_url) as m:

            async def one(config: Any) -> None:
                await m.create_or_get(config)
                await m.wait_for_ready(
                    config.deployment_id,
                    timeout_s=params["timeout_s"],
                    poll_interval_s=params["poll_s"],
                )
                returned[config.deployment_id] = anyio.current_time()

            with Stopwatch() as sw:
                async with anyio.create_task_group() as tg:
                    for config in configs:
                        tg.start_soon(one, config)
            return sw.result(ok=len(returned) == len(configs), returned=returned)

    return run_async(main)


def client_sync(base_url: str, params: dict[str, Any]) -> dict[str, Any]:
    configs = _configs(params)
    with sync_manager(base_url) as m, Stopwatch() as sw:
        for config in configs:
            m.create_or_get(config)
        result = m.wait_for_ready_many(
            [c.deployment_id for c in configs],
            timeout_s=params["timeout_s"],
            poll_interval_s=params["poll_s"],
        )
    return sw.result(ok=result.ok)
