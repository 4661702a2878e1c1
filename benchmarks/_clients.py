"""Client-side helpers for the worker processes: our managers, a stopwatch, the run loop."""

from __future__ import annotations

import os
import resource
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import anyio

from fireworks_deploy import AsyncDeploymentManager, DeploymentManager, FireworksError

API_KEY = "bench-key"
BASE_MODEL = "accounts/fireworks/models/bench-base"
DELTA_METADATA = {
    "previous_snapshot_identity": "snap-base",
    "compression_format": "arc_v2",
    "checksum_format": "alder32",
}

T = TypeVar("T")


class Stopwatch:
    """Wall and process CPU time (all threads of this process) around a block."""

    def __init__(self) -> None:
        self.wall_s = 0.0
        self.cpu_s = 0.0
        self.started = 0.0
        self.ended = 0.0

    def __enter__(self) -> Stopwatch:
        self.started = time.monotonic()
        self._cpu = time.process_time()
        return self

    def __exit__(self, *exc: object) -> None:
        self.ended = time.monotonic()
        self.wall_s = self.ended - self.started
        self.cpu_s = time.process_time() - self._cpu

    def result(self, **extra: Any) -> dict[str, Any]:
        return {
            "wall_s": self.wall_s,
            "cpu_s": self.cpu_s,
            "started": self.started,
            "ended": self.ended,
            **extra,
        }


def peak_rss_mb() -> float:
    """Peak resident set of this process (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def run_async(func: Callable[[], Awaitable[T]]) -> T:
    return anyio.run(func, backend="asyncio")


def use_httpcore() -> None:
    """Make managers created from now on in this (per-run) process use httpx's own transport,
    not the aiohttp one they pick by default when aiohttp is installed."""
    os.environ["FIREWORKS_DEPLOY_TRANSPORT"] = "httpcore"


def async_manager(base_url: str, **kwargs: Any) -> AsyncDeploymentManager:
    return AsyncDeploymentManager(api_key=API_KEY, base_url=base_url, **kwargs)


def sync_manager(base_url: str, **kwargs: Any) -> DeploymentManager:
    return DeploymentManager(api_key=API_KEY, base_url=base_url, **kwargs)


#: Our errors raised in a run, by type: counted and reported on the run's row. One process per run.
ERRORS: dict[str, int] = {}


async def guarded(call: Awaitable[T]) -> T | None:
    """Await `call`; an error of ours is counted (reported as the run's note), not raised."""
    try:
        return await call
    except FireworksError as exc:
        ERRORS[type(exc).__name__] = ERRORS.get(type(exc).__name__, 0) + 1
        return None


def count_failed(result: Any) -> None:
    """Count the failed deployments of a fleet result (run with `return_exceptions=True`)."""
    for error in result.failed.values():
        ERRORS[type(error).__name__] = ERRORS.get(type(error).__name__, 0) + 1


def errors_note(result: dict[str, Any]) -> dict[str, Any]:
    """Mark a run's result with the errors counted in it, if any."""
    if ERRORS:
        result["ok"] = False
        note = f"raised {sum(ERRORS.values())} time(s): {ERRORS}"
        result["note"] = f"{result['note']}; {note}" if result.get("note") else note
    return result


def ids(prefix: str, count: int) -> list[str]:
    """The ids `/_bench/setup` creates (and the fleet scenario's own naming)."""
    return [f"{prefix}-{i:05d}" for i in range(count)]
