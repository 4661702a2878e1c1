"""1. Fleet readiness: create N deployments and wait until every one is ready.

Boot times are drawn uniformly from [boot_min, boot_max] by the plane (same seed for every
peer). Every client gets the same `poll_interval_s`. Ours creates with `create_or_get` (all at
once, on a task group) and waits with `wait_for_ready_many`; also, at N=256 in full mode, one
`wait_for_ready` per deployment and the sync facade. The official client runs the loop users
write, `create_or_get` then `wait_for_ready` per deployment, the way a user would at that scale:
on a thread pool with one thread per deployment; and sequentially (capped at a few deployments
and scaled linearly to N, labelled), for reference.

Per run, from the plane's events and request log (the same for every peer):

- creates s: from the client's start to the last deployment's creation on the server;
- bound s = creates + slowest boot + one poll interval: no client can be done sooner, since the
  last deployment to be ready may be seen up to one interval late;
- polling requests: list, get and completion-probe requests about a deployment after it was
  created (a list read counts once the first deployment exists); the read that
  `create_or_get` makes before creating is not polling. Per interval = polling requests /
  (wall / poll interval).
"""

from __future__ import annotations

import statistics
import time
from typing import Any

import anyio

from fireworks_deploy import FireworksError

from .._clients import (
    BASE_MODEL,
    ERRORS,
    Stopwatch,
    async_manager,
    count_failed,
    guarded,
    ids,
    run_async,
    sync_manager,
)
from .._harness import Measurement, Run
from .._types import Mode, Row, Target, find

NAME = "fleet_readiness"
TITLE = "Fleet readiness"
X_LABEL = "deployments N"
TIMEOUT_S = 300.0
HEADLINE_N = 256
#: Nine sizes: two repeats each keep the full mode within its time.
MAX_REPEATS = 2
#: Status reads that count as polling once the deployment exists.
POLLING_ENDPOINTS = ("list", "get", "completions")
#: Polling requests per interval must be at most this times N ...
POLLING_PER_N = 0.1
#: ... judged where that allows at least one request per interval (N >= 10).
POLLING_MIN_N = 10


def settings(mode: Mode) -> dict[str, float]:
    if mode.quick:
        return {"boot_min": 0.5, "boot_max": 1.5, "poll_s": 0.5}
    return {"boot_min": 1.0, "boot_max": 3.0, "poll_s": 1.0}


def sizes(mode: Mode) -> list[int]:
    return [1, 16, 256] if mode.quick else [1, 2, 4, 8, 16, 32, 64, 128, 256]


def plan(mode: Mode) -> list[Run]:
    s = settings(mode)
    plane = {"boot_seconds": s["boot_min"], "boot_jitter": s["boot_max"] - s["boot_min"], "seed": 1}
    runs: list[Run] = []

    def add(peer: str, n: int, measured: int | None = None) -> None:
        count = measured or n
        params = {
            "n": count,
            "prefix": f"fr-{count}",
            "poll_s": s["poll_s"],
            "timeout_s": TIMEOUT_S,
            "want_events": True,
            "want_log": True,
        }
        runs.append(Run(NAME, peer, n, params, plane, measured_x=measured))

    for n in sizes(mode):
        add("async", n)
        if mode.official:
            add("official_threads", n)
    if not mode.quick:
        add("async_each", HEADLINE_N)
        add("sync", HEADLINE_N)
    if mode.official:
        add("official_seq", HEADLINE_N, 2 if mode.quick else 6)
    return runs


def derive(m: Measurement) -> dict[str, float]:
    created = {e["deployment_id"]: e["at"] for e in m.events if e["kind"] == "created"}
    ready = {
        e["deployment_id"]: e["at"]
        for e in m.events
        if e["kind"] == "ready" and e["deployment_id"] in created
    }
    poll_s = float(m.run.params["poll_s"])
    started = float(m.client["started"])
    wall = float(m.client["wall_s"])
    slowest = max((ready[i] - created[i] for i in ready), default=0.0)
    creates = max(created.values(), default=started) - started
    first_created = min(created.values(), default=float("inf"))
    polling = 0
    create_reads = 0
    for endpoint, deployment_id, at in m.log:
        if endpoint not in POLLING_ENDPOINTS:
            continue
        since = first_created if deployment_id is None else created.get(deployment_id)
        if since is not None and at >= since:
            polling += 1
        else:
            create_reads += 1
    out = {
        "slowest_boot_s": slowest,
        "polling_requests": float(polling),
        "create_reads": float(create_reads),
        "polling_per_interval": polling / (wall / poll_s) if wall else 0.0,
        "list_requests": m.requests.get("list", 0),
        "get_requests": m.requests.get("get", 0),
        "probe_requests": m.requests.get("completions", 0),
        "ok": float(bool(m.client.get("ok"))),
    }
    if not m.run.measured_x:  # a capped sequential run has no bound of its own at N
        out["creates_s"] = creates
        out["bound_s"] = creates + slowest + poll_s
        out["wall_over_bound"] = wall / out["bound_s"]
    returned: dict[str, float] = m.client.get("returned") or {}
    if ready:
        ended = m.client["ended"]
        latencies = [returned.get(i, ended) - ready[i] for i in ready]
        out["detect_median_s"] = statistics.median(latencies)
    return out


def _ratio(row: Row | None) -> str:
    if row is None or row.get("wall_over_bound") is None:
        return "-"
    return f"{row.get('wall_over_bound'):.2f}x"


def targets(rows: list[Row], mode: Mode) -> list[Target]:
    found: list[Target] = []
    ours = find(rows, NAME, "async", HEADLINE_N)
    if ours is None or not ours.metrics:
        return found
    wall = ours.get("wall_s") or 0.0
    threads = find(rows, NAME, "official_threads", HEADLINE_N)
    seq = find(rows, NAME, "official_seq", HEADLINE_N)
    if threads is not None and threads.get("wall_s"):
        t_wall = threads.get("wall_s") or 0.0
        parts = [
            f"ours {wall:.2f}s vs official on a thread pool {t_wall:.2f}s: "
            f"{t_wall / wall:.2f}x as fast"
            if wall
            else "ours n/a"
        ]
        if seq is not None and seq.get("wall_s"):
            s_wall = seq.get("wall_s") or 0.0
            parts.append(
                f"official sequential {s_wall:.0f}s (scaled from N={seq.extrapolated_from}; "
                f"{s_wall / wall:.0f}x)"
            )
        found.append(
            Target(
                NAME,
                f"headline: N={HEADLINE_N}, ours no slower than the official client on a "
                "thread pool (one thread per deployment), same poll_interval_s",
                "; ".join(parts),
                bool(wall) and wall <= t_wall,
                "; ".join(
                    f"{who}: {row.note}"
                    for who, row in (("ours", ours), ("official", threads))
                    if row.note
                ),
            )
        )
    mine = sorted((r for r in rows if r.scenario == NAME and r.peer == "async"), key=lambda r: r.x)
    ratios = [(r.x, r.get("wall_over_bound")) for r in mine if r.get("wall_over_bound")]
    if ratios:
        official = {r.x: r for r in rows if r.scenario == NAME and r.peer == "official_threads"}
        measured = "; ".join(
            f"N={x}: {ratio:.2f}x (official {_ratio(official.get(x))})" for x, ratio in ratios
        )
        found.append(
            Target(
                NAME,
                "every N: wall <= 1.2 x (creates + slowest boot + one interval), ours "
                "(the official thread pool's ratio alongside)",
                measured,
                all((ratio or 0.0) <= 1.2 for _, ratio in ratios),
            )
        )
    judged = [r for r in mine if r.x >= POLLING_MIN_N and r.get("polling_per_interval") is not None]
    if judged:
        measured = "; ".join(
            f"N={r.x}: {r.get('polling_per_interval'):.1f} (limit {POLLING_PER_N * r.x:.1f}; "
            f"{r.get('list_requests') or 0:.0f} list, {r.get('probe_requests') or 0:.0f} probes)"
            for r in judged
        )
        small = [r for r in mine if r.x < POLLING_MIN_N]
        note = (
            "N < 10 not judged (one request per interval is already > 0.1 x N): "
            + ", ".join(f"N={r.x}: {r.get('polling_per_interval') or 0:.1f}" for r in small)
            if small
            else ""
        )
        found.append(
            Target(
                NAME,
                f"polling requests per interval <= {POLLING_PER_N:g} x N (N >= {POLLING_MIN_N})",
                measured,
                all((r.get("polling_per_interval") or 0.0) <= POLLING_PER_N * r.x for r in judged),
                note,
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
            await m.resolve_account_id()
            with Stopwatch() as sw:
                async with anyio.create_task_group() as tg:
                    for config in configs:
                        tg.start_soon(guarded, m.create_or_get(config))
                result = await m.wait_for_ready_many(
                    [c.deployment_id for c in configs],
                    timeout_s=params["timeout_s"],
                    poll_interval_s=params["poll_s"],
                    return_exceptions=True,
                )
            count_failed(result)
            return sw.result(ok=result.ok)

    return run_async(main)


def client_async_each(base_url: str, params: dict[str, Any]) -> dict[str, Any]:
    configs = _configs(params)
    returned: dict[str, float] = {}

    async def main() -> dict[str, Any]:
        async with async_manager(base_url) as m:
            await m.resolve_account_id()

            async def one(config: Any) -> None:
                await m.create_or_get(config)
                await m.wait_for_ready(
                    config.deployment_id,
                    timeout_s=params["timeout_s"],
                    poll_interval_s=params["poll_s"],
                )
                returned[config.deployment_id] = time.monotonic()

            with Stopwatch() as sw:
                async with anyio.create_task_group() as tg:
                    for config in configs:
                        tg.start_soon(guarded, one(config))
            return sw.result(ok=len(returned) == len(configs), returned=returned)

    return run_async(main)


def client_sync(base_url: str, params: dict[str, Any]) -> dict[str, Any]:
    configs = _configs(params)
    with sync_manager(base_url) as m:
        m.resolve_account_id()
        with Stopwatch() as sw:
            for config in configs:
                try:
                    m.create_or_get(config)
                except FireworksError as exc:
                    ERRORS[type(exc).__name__] = ERRORS.get(type(exc).__name__, 0) + 1
            result = m.wait_for_ready_many(
                [c.deployment_id for c in configs],
                timeout_s=params["timeout_s"],
                poll_interval_s=params["poll_s"],
                return_exceptions=True,
            )
    count_failed(result)
    return sw.result(ok=result.ok)
