"""3. Detection latency: an RL loop hot-loads a base, then a delta every step.

One deployment; step 0 is `hotload_and_wait(step-0)` (a full load), every later step a delta
on the previous one (`incremental_snapshot_metadata`). Each load takes 5.0-5.4 s on the plane
(loads of at least 5 s, so the official client's fixed 5 s interval is compared where it does
not get a free ride). Both clients run at their defaults (ours `poll_interval_s=5`, the
official client's fixed 5 s). A second run of ours (`async_short`) loads a base and a first
delta of 1 s each, with nothing learned: the first-load target is judged on it.

The plane stamps the instant each load became true (`hotload_done`, time.monotonic()); the
client stamps when its call returned. Latency = return - done. Status requests per step are
counted by the server, in each step's window. Our SDK learns load durations per deployment and
kind (full or delta), so the base and the first delta are loads with nothing learned; the
deltas after the first are the steady state.
"""

from __future__ import annotations

import statistics
import time
from typing import Any

from .._clients import BASE_MODEL, Stopwatch, async_manager, run_async
from .._harness import Measurement, Run
from .._types import Mode, Row, Target, find

NAME = "detection_latency"
TITLE = "Hot-load detection latency (base, then deltas)"
X_LABEL = "steps"
POLL_S = 5.0
TIMEOUT_S = 120.0
DEPLOYMENT = "dl-00000"
LOAD_MIN_S, LOAD_MAX_S = 5.0, 5.4
FIRST_LOAD_MAX_S = 0.35
#: The load time of the first-load run (`async_short`).
SHORT_LOAD_S = 1.0
STEADY_MAX_S = 0.15
#: Each run is already K steps, so one run is a sample of K.
MAX_REPEATS = 1


def plan(mode: Mode) -> list[Run]:
    plane = {
        "boot_seconds": 0.0,
        "hotload_seconds": LOAD_MIN_S,
        "hotload_jitter": LOAD_MAX_S - LOAD_MIN_S,
        "seed": 3,
    }
    setup = {"prefix": "dl", "count": 1, "replicas": 1}
    # ours: the base, the first delta, then steady deltas; the official client's steps all cost
    # the same (it learns nothing), so a base and a delta (full: two) sample it.
    ours_steps, official_steps = (3, 1) if mode.quick else (6, 3)

    def run(peer: str, steps: int) -> Run:
        params = {
            "steps": steps,
            "deployment_id": DEPLOYMENT,
            "poll_s": POLL_S,
            "timeout_s": TIMEOUT_S,
            "want_events": True,
            "want_log": True,
        }
        return Run(NAME, peer, steps, params, plane, setup)

    runs = [run("async", ours_steps)]
    short = {**plane, "hotload_seconds": SHORT_LOAD_S, "hotload_jitter": 0.0}
    runs.append(Run(NAME, "async_short", 2, {**runs[0].params, "steps": 2}, short, setup))
    if mode.official:
        runs.append(run("official", official_steps))
    return runs


def delta_metadata(step: int) -> dict[str, str] | None:
    """Step 0 is a full load; every later step a delta on the one before."""
    if step == 0:
        return None
    return {
        "previous_snapshot_identity": f"step-{step - 1}",
        "compression_format": "arc_v2",
        "checksum_format": "alder32",
    }


def derive(m: Measurement) -> dict[str, float]:
    done = {e["detail"]: e["at"] for e in m.events if e["kind"] == "hotload_done"}
    began = {e["detail"]: e["at"] for e in m.events if e["kind"] == "hotload_started"}
    steps: dict[str, list[float]] = m.client.get("steps", {})  # identity -> [called, returned]
    order = sorted(steps, key=lambda i: steps[i][0])
    latency = {i: steps[i][1] - done[i] for i in order if i in done}
    status_times = sorted(at for endpoint, _, at in m.log if endpoint == "hotload_status")
    per_step = {i: sum(1 for at in status_times if steps[i][0] <= at <= steps[i][1]) for i in order}
    loads = [done[i] - began[i] for i in done if i in began]
    steady = order[2:]
    nan = float("nan")
    return {
        "load_median_s": statistics.median(loads) if loads else nan,
        "first_load_s": latency.get("step-0", nan),
        "first_delta_s": latency.get("step-1", nan),
        "steady_median_s": statistics.median([latency[i] for i in steady if i in latency])
        if any(i in latency for i in steady)
        else nan,
        "latency_max_s": max(latency.values(), default=nan),
        "status_per_step": statistics.mean(per_step.values()) if per_step else nan,
        "status_per_step_steady": statistics.mean(per_step[i] for i in steady) if steady else nan,
        "status_requests": float(len(status_times)),
        "ok": float(bool(m.client.get("ok"))),
    }


def _s(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.2f}s"


def targets(rows: list[Row], mode: Mode) -> list[Target]:
    ours = find(rows, NAME, "async")
    if ours is None or not ours.metrics:
        return []
    steady = ours.get("steady_median_s")
    found = []
    short = find(rows, NAME, "async_short")
    if short is not None and short.metrics:
        first, first_delta = short.get("first_load_s"), short.get("first_delta_s")
        found.append(
            Target(
                NAME,
                f"first loads of {SHORT_LOAD_S:g} s, nothing learned: detected <= "
                f"{FIRST_LOAD_MAX_S:g} s after the server finished (the base, and the first "
                "delta)",
                f"base {_s(first)}, first delta {_s(first_delta)} (on the loads of >= 5 s: "
                f"base {_s(ours.get('first_load_s'))}, first delta "
                f"{_s(ours.get('first_delta_s'))})",
                None
                if first is None or first_delta is None
                else max(first, first_delta) <= FIRST_LOAD_MAX_S,
            )
        )
    found += [
        Target(
            NAME,
            f"steady state (deltas after the first): median detection <= {STEADY_MAX_S:g} s",
            f"{_s(steady)} over {ours.x - 2} step{'s' if ours.x - 2 != 1 else ''}",
            None if steady is None else steady <= STEADY_MAX_S,
        ),
    ]
    official = find(rows, NAME, "official")
    if official is not None and official.get("status_per_step") is not None:
        mine = ours.get("status_per_step") or 0.0
        theirs = official.get("status_per_step") or 0.0
        found.append(
            Target(
                NAME,
                "status requests per step <= the official client's at its default 5 s interval "
                "(loads >= 5 s; every step counted)",
                f"ours {mine:.2f} per step over {ours.x} steps "
                f"({ours.get('status_per_step_steady') or 0:.2f} in steady state) vs official "
                f"{theirs:.2f} over {official.x} (official latency median "
                f"{_s(official.get('first_load_s'))} on the base)",
                mine <= theirs,
            )
        )
    return found


# -- our clients ---------------------------------------------------------------------------------


def client_async(base_url: str, params: dict[str, Any]) -> dict[str, Any]:
    async def main() -> dict[str, Any]:
        steps: dict[str, list[float]] = {}
        async with async_manager(base_url) as m:
            await m.resolve_account_id()
            with Stopwatch() as sw:
                for step in range(params["steps"]):
                    identity = f"step-{step}"
                    called = time.monotonic()
                    await m.hotload_and_wait(
                        params["deployment_id"],
                        BASE_MODEL,
                        identity,
                        delta_metadata(step),
                        timeout_seconds=params["timeout_s"],
                        poll_interval_s=params["poll_s"],
                    )
                    steps[identity] = [called, time.monotonic()]
            return sw.result(steps=steps, ok=True)

    return run_async(main)


def client_async_short(base_url: str, params: dict[str, Any]) -> dict[str, Any]:
    return client_async(base_url, params)
