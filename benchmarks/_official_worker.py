"""The official `fireworks-ai` DeploymentManager as a benchmark peer, in its own interpreter.

Self-contained on purpose (stdlib, fireworks-ai and the stdlib-only `_zygote` next to it): it
runs under whichever Python has the official client installed, e.g.
``/path/to/venv-compat/bin/python benchmarks/_official_worker.py --serve`` (one forked child per
JSON spec on stdin, see `benchmarks._zygote`) or ``... _official_worker.py '<json spec>'`` (one
run in this process; prints one JSON result line). Like `benchmarks._worker`.
"""

from __future__ import annotations

import json
import logging
import resource
import sys
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from fireworks.training.sdk import (  # type: ignore[import-not-found, unused-ignore]
    DeploymentConfig,
    DeploymentManager,
)

API_KEY = "bench-key"
BASE_MODEL = "accounts/fireworks/models/bench-base"
DELTA_METADATA = {
    "previous_snapshot_identity": "snap-base",
    "compression_format": "arc_v2",
    "checksum_format": "alder32",
}

logging.disable(logging.WARNING)


def _ids(prefix: str, count: int) -> list[str]:
    return [f"{prefix}-{i:05d}" for i in range(count)]


def _measure(body: Callable[[], dict[str, Any]]) -> dict[str, Any]:
    started, cpu = time.monotonic(), time.process_time()
    extra = body()
    ended = time.monotonic()
    return {
        "wall_s": ended - started,
        "cpu_s": time.process_time() - cpu,
        "started": started,
        "ended": ended,
        **extra,
    }


def _manager(base_url: str) -> DeploymentManager:
    return DeploymentManager(api_key=API_KEY, base_url=base_url)


#: Exceptions the official client raised, by type: counted and reported on the run's row (a
#: peer failing under load is a result, not a harness failure). One child process per run.
ERRORS: dict[str, int] = {}


def _guarded(func: Callable[[str], Any]) -> Callable[[str], Any]:
    def call(item: str) -> Any:
        try:
            return func(item)
        except Exception as exc:
            name = f"{type(exc).__module__}.{type(exc).__name__}"
            ERRORS[name] = ERRORS.get(name, 0) + 1
            return False

    return call


def _threads(count: int, func: Callable[[str], Any], items: list[str]) -> list[Any]:
    with ThreadPoolExecutor(max_workers=max(1, min(count, 256))) as pool:
        return list(pool.map(_guarded(func), items))


# -- 1 fleet readiness: create_or_get then wait_for_ready, per deployment --


def _fleet(base_url: str, params: dict[str, Any], threaded: bool) -> dict[str, Any]:
    mgr = _manager(base_url)
    _ = mgr.account_id  # resolve the account before timing, as our peers do
    names = _ids(params["prefix"], params["n"])
    returned: dict[str, float] = {}

    def one(deployment_id: str) -> None:
        mgr.create_or_get(DeploymentConfig(deployment_id=deployment_id, base_model=BASE_MODEL))
        mgr.wait_for_ready(
            deployment_id, timeout_s=params["timeout_s"], poll_interval_s=params["poll_s"]
        )
        returned[deployment_id] = time.monotonic()

    def body() -> dict[str, Any]:
        if threaded:
            _threads(len(names), one, names)
        else:
            for name in names:
                _guarded(one)(name)
        return {"returned": returned, "ok": len(returned) == len(names)}

    return _measure(body)


# -- 2 hot-load broadcast: base then delta to every deployment --


def _broadcast(base_url: str, params: dict[str, Any], threaded: bool) -> dict[str, Any]:
    mgr = _manager(base_url)
    _ = mgr.account_id  # resolve the account before timing, as our peers do
    names = _ids(params["prefix"], params["n"])
    phases: dict[str, float] = {}
    oks: list[bool] = []

    def phase(identity: str, metadata: dict[str, Any] | None) -> None:
        def one(deployment_id: str) -> bool:
            return bool(
                mgr.hotload_and_wait(
                    deployment_id,
                    BASE_MODEL,
                    identity,
                    incremental_snapshot_metadata=metadata,
                    timeout_seconds=params["timeout_s"],
                )
            )

        t0 = time.monotonic()
        oks.extend(
            _threads(len(names), one, names) if threaded else [_guarded(one)(n) for n in names]
        )
        phases[identity] = time.monotonic() - t0

    def body() -> dict[str, Any]:
        phase("snap-base", None)
        phase("snap-delta", DELTA_METADATA)
        return {"phases": phases, "ok": all(oks)}

    return _measure(body)


# -- 3 detection latency: a base, then a delta on the previous step, on one deployment --


def _latency(base_url: str, params: dict[str, Any]) -> dict[str, Any]:
    mgr = _manager(base_url)
    _ = mgr.account_id
    deployment_id = params["deployment_id"]
    steps: dict[str, list[float]] = {}
    oks: list[bool] = []

    def body() -> dict[str, Any]:
        for step in range(params["steps"]):
            identity = f"step-{step}"
            metadata = None
            if step:
                metadata = {**DELTA_METADATA, "previous_snapshot_identity": f"step-{step - 1}"}
            called = time.monotonic()
            oks.append(
                bool(
                    mgr.hotload_and_wait(
                        deployment_id,
                        BASE_MODEL,
                        identity,
                        incremental_snapshot_metadata=metadata,
                        timeout_seconds=params["timeout_s"],
                    )
                )
            )
            steps[identity] = [called, time.monotonic()]
        return {"steps": steps, "ok": all(oks)}

    return _measure(body)


# -- 4 many waiters on one deployment --


def _waiters(base_url: str, params: dict[str, Any]) -> dict[str, Any]:
    mgr = _manager(base_url)
    deployment_id = params["deployment_id"]
    _ = mgr.account_id

    def wait(_: str) -> bool:
        return bool(
            mgr.wait_for_hotload(
                deployment_id, BASE_MODEL, "snap-1", timeout_seconds=params["timeout_s"]
            )
        )

    def body() -> dict[str, Any]:
        mgr.hotload(deployment_id, BASE_MODEL, "snap-1")
        oks = _threads(params["m"], wait, [str(i) for i in range(params["m"])])
        return {"ok": all(oks), "poll_s": 5.0}

    return _measure(body)


# -- 5 per-call cost of get --


def _per_call(base_url: str, params: dict[str, Any]) -> dict[str, Any]:
    mgr = _manager(base_url)
    deployment_id = params["deployment_id"]
    for _ in range(params["warmup"]):
        mgr.get(deployment_id)

    def body() -> dict[str, Any]:
        for _ in range(params["calls"]):
            mgr.get(deployment_id)
        return {"calls": params["calls"]}

    return _measure(body)


CLIENTS: dict[tuple[str, str], Callable[[str, dict[str, Any]], dict[str, Any]]] = {
    ("fleet_readiness", "official_seq"): lambda u, p: _fleet(u, p, threaded=False),
    ("fleet_readiness", "official_threads"): lambda u, p: _fleet(u, p, threaded=True),
    ("hotload_broadcast", "official_seq"): lambda u, p: _broadcast(u, p, threaded=False),
    ("hotload_broadcast", "official_threads"): lambda u, p: _broadcast(u, p, threaded=True),
    ("detection_latency", "official"): _latency,
    ("many_waiters", "official_threads"): _waiters,
    ("per_call", "official"): _per_call,
}


def handle(spec: dict[str, Any]) -> dict[str, Any]:
    client = CLIENTS[spec["scenario"], spec["peer"]]
    result = client(spec["base_url"], spec["params"])
    result["maxrss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    if ERRORS:
        result["ok"] = False
        result["note"] = f"the official client raised {sum(ERRORS.values())} time(s): {ERRORS}"
    return result


def main() -> None:
    if sys.argv[1:] == ["--serve"]:
        # `_zygote` is standard library only and sits next to this file (sys.path[0]).
        import _zygote  # type: ignore[import-not-found, unused-ignore]

        _zygote.serve(handle)
        return
    print(json.dumps(handle(json.loads(sys.argv[1]))))


if __name__ == "__main__":
    main()
