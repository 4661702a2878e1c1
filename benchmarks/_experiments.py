"""Experiments: proposed SDK changes, applied by monkeypatch inside one benchmark client only.

Nothing here changes fireworks_deploy; each function patches one manager instance so that the
effect of a proposed change can be measured next to the unpatched peer in the same run. Every
peer that uses one is labelled "(experiment)" in the report.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import inspect
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any, TypeVar

from fireworks_deploy import DeploymentManager

T = TypeVar("T")
R = TypeVar("R")


class ExperimentUnavailableError(Exception):
    """The SDK changed under the experiment (or already does it): the peer is skipped."""


def _check(func: Any, names: list[str], what: str) -> None:
    have = list(inspect.signature(func).parameters)
    if have != names:
        raise ExperimentUnavailableError(f"{what} now takes {have}; the experiment expects {names}")


def skipped(exc: ExperimentUnavailableError) -> dict[str, Any]:
    """The result a worker reports for an experiment that does not apply."""
    return {"skipped": f"experiment not applicable: {exc}", "wall_s": 0.0, "cpu_s": 0.0}


def one_hop_sync(manager: DeploymentManager) -> None:
    """`_sync.DeploymentManager._call` with one thread hop instead of two.

    anyio's `BlockingPortal.start_task_soon` blocks until the loop has *spawned* the task (one
    round trip), then `future.result()` waits for the result (a second one).
    `asyncio.run_coroutine_threadsafe` on the portal's loop needs only the second.
    """
    if not hasattr(manager, "_portal") or not hasattr(manager, "_inflight"):
        raise ExperimentUnavailableError("DeploymentManager no longer has _portal/_inflight")
    loop: asyncio.AbstractEventLoop = manager._portal.call(asyncio.get_running_loop)

    def call(func: Callable[..., Awaitable[Any]], /, *args: Any, **kwargs: Any) -> Any:
        with manager._lock:
            manager._check_usable()
            coro: Coroutine[Any, Any, Any] = func(*args, **kwargs)  # type: ignore[assignment]
            future: concurrent.futures.Future[Any] = asyncio.run_coroutine_threadsafe(coro, loop)
            manager._inflight.add(future)
        try:
            return future.result()
        except KeyboardInterrupt:
            future.cancel()
            raise
        finally:
            with manager._lock:
                manager._inflight.discard(future)

    manager._call = call  # type: ignore[method-assign]
