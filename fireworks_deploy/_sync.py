"""DeploymentManager: the blocking view of AsyncDeploymentManager, through one anyio portal.

Every method forwards to the async core on the portal's event loop; no logic lives here but the
guards against misuse (closed, forked, called from the portal's own thread), Ctrl-C, and the life
of the loop thread.

The loop thread (`_LoopThread`) is a daemon thread that holds no reference to the manager, so a
manager that is never closed cannot keep the process alive:

* at interpreter exit an `atexit` hook closes every manager still open. Python has joined its
  non-daemon threads by then, so their calls have finished; a call still in flight from a daemon
  thread raises `ManagerClosedError` in that thread.
* a manager garbage-collected while open is closed by a weakref finalizer.

Closing waits at most `_UNWIND_S`; a loop that has not stopped by then is left to the process.
We do not use `anyio.from_thread.start_blocking_portal`: its context manager, never exited, is
finalized while the interpreter shuts down, when the daemon loop thread no longer runs, and its
`portal.call(portal.stop)` then waits forever.
"""

from __future__ import annotations

import asyncio
import atexit
import concurrent.futures
import contextlib
import contextvars
import os
import sys
import threading
import time
import weakref
from collections.abc import Awaitable, Callable, Mapping, Sequence
from functools import partial
from types import TracebackType
from typing import Any, TypeVar

import attrs
import httpx
from anyio.from_thread import BlockingPortal

from ._compat import SyncOfficialCompat
from ._config import DEFAULT_BASE_URL, DEFAULT_MAX_RESPONSE_BYTES, RetryPolicy, Timeouts
from ._errors import ManagerClosedError
from ._fleet import FleetResult
from ._lease import LeaseAction, SyncDeploymentLease
from ._manager import AsyncDeploymentManager
from ._models import (
    DeploymentConfig,
    DeploymentInfo,
    HotloadStatus,
    MetadataLike,
    WarmupResult,
)

__all__ = ["DeploymentManager"]

T = TypeVar("T")

#: How long Ctrl-C waits for a cancelled operation to unwind, and close() for the loop to stop.
_UNWIND_S = 5.0
_THREAD_NAME = "fireworks-deploy-portal"

_FORKED = (
    "This DeploymentManager was created in another process (before fork()); "
    "create a new one in this process."
)


@attrs.frozen(eq=False)
class _Call:
    """One blocking call in flight: its future, set when its task ends, and the calling thread."""

    future: concurrent.futures.Future[Any]
    finished: threading.Event
    caller: int


class _LoopThread:
    """An event loop on a daemon thread, its portal, and the async manager that lives there.

    It holds no reference to the `DeploymentManager` using it, so the manager's weakref finalizer
    and the exit hook can close it.
    """

    def __init__(self) -> None:
        self.pid = os.getpid()
        self.closed = False
        self.manager: AsyncDeploymentManager | None = None
        self._lock = threading.Condition(threading.Lock())
        self._calls: set[_Call] = set()
        self._ended: concurrent.futures.Future[None] = concurrent.futures.Future()
        started: concurrent.futures.Future[
            tuple[BlockingPortal, asyncio.AbstractEventLoop, asyncio.Event]
        ] = concurrent.futures.Future()
        # A fresh context, as anyio gives its portal threads (Python 3.14 threads inherit one).
        context: dict[str, Any] = {}
        if sys.version_info >= (3, 14):
            context["context"] = contextvars.Context()
        self.thread = threading.Thread(
            target=self._main, args=(started,), name=_THREAD_NAME, daemon=True, **context
        )
        self.thread.start()
        self.portal, self._loop, self._stop = started.result()
        self.ident: int = self.portal.call(threading.get_ident)
        _track(self)

    # -- the loop thread ---------------------------------------------------------------------

    def _main(
        self,
        started: concurrent.futures.Future[
            tuple[BlockingPortal, asyncio.AbstractEventLoop, asyncio.Event]
        ],
    ) -> None:
        # A loop run by hand, not asyncio.run(): at interpreter exit Python 3.12 refuses the
        # thread that loop.shutdown_default_executor() starts, and the loop must still close.
        loop = asyncio.new_event_loop()
        try:
            loop.run_until_complete(self._serve(started))
        except BaseException as exc:  # reported to whoever waits; never a thread traceback
            if not started.done():
                started.set_exception(exc)
            self._ended.set_exception(exc)
        else:
            self._ended.set_result(None)
        finally:
            _close_loop(loop)

    async def _serve(
        self,
        started: concurrent.futures.Future[
            tuple[BlockingPortal, asyncio.AbstractEventLoop, asyncio.Event]
        ],
    ) -> None:
        stop = asyncio.Event()
        async with BlockingPortal() as portal:
            started.set_result((portal, asyncio.get_running_loop(), stop))
            await stop.wait()
            await portal.stop(cancel_remaining=True)
        # Every call has ended: no request is being sent while the connections close.
        if self.manager is not None:
            await self.manager.aclose()

    # -- calls -------------------------------------------------------------------------------

    def call(self, func: Callable[..., Awaitable[T]], /, *args: Any, **kwargs: Any) -> T:
        """Run ``func(*args, **kwargs)`` on the loop and block until it returns."""
        if os.getpid() != self.pid:
            raise ManagerClosedError(_FORKED)
        finished = threading.Event()

        async def run() -> T:
            try:
                return await func(*args, **kwargs)
            finally:
                finished.set()

        with self._lock:
            if self.closed:
                raise ManagerClosedError("This DeploymentManager is closed; create a new one.")
            if threading.get_ident() == self.ident:
                raise ManagerClosedError(
                    "DeploymentManager was called from its own event loop thread, which would "
                    "deadlock; use AsyncDeploymentManager from async code."
                )
            # Under the lock, so close() cannot stop the loop between this and the spawn.
            try:
                future = self.portal.start_task_soon(run)
            except RuntimeError as exc:
                raise ManagerClosedError("This DeploymentManager is closed.") from exc
            call = _Call(future, finished, threading.get_ident())
            self._calls.add(call)
        try:
            return future.result()
        except KeyboardInterrupt:
            # A cancelled future is "done" at once; wait for the task itself to unwind, so no
            # request of the interrupted call is still being sent when we re-raise.
            future.cancel()
            finished.wait(_UNWIND_S)
            raise
        except concurrent.futures.CancelledError:
            raise ManagerClosedError(
                "This DeploymentManager was closed while the call was in progress."
            ) from None
        finally:
            with self._lock:
                self._calls.discard(call)
                self._lock.notify_all()

    # -- closing -----------------------------------------------------------------------------

    def close(self) -> None:
        """Close: refuse new calls, cancel those in flight, close the connections, stop the loop.

        Idempotent, and a no-op in a forked child (the loop thread does not exist there).
        """
        if self.begin_close():
            self.finish_close(time.monotonic() + _UNWIND_S)

    def begin_close(self) -> bool:
        """Mark closed, wake the callers in flight and ask the loop to stop, without waiting.

        False if there is nothing to wait for: closed before, or in a forked child.
        """
        if os.getpid() != self.pid:
            self.closed = True  # the lock may have been held by a thread that fork() dropped
            return False
        with self._lock:
            if self.closed:
                return False
            self.closed = True
            calls = list(self._calls)
        _untrack(self)
        for call in calls:
            call.future.cancel()  # its caller raises ManagerClosedError now; the task unwinds
        with contextlib.suppress(RuntimeError):  # the loop is closed already
            self._loop.call_soon_threadsafe(self._stop.set)
        return True

    def finish_close(self, deadline: float) -> None:
        """Wait until `deadline` for the callers to leave and the loop thread to end.

        Re-raises an error of the async manager's `aclose()`.
        """
        me = threading.get_ident()
        if me == self.ident:
            return  # a finalizer on the loop thread itself: the loop stops once it returns
        with self._lock:
            self._lock.wait_for(
                lambda: all(call.caller == me for call in self._calls),
                timeout=max(0.0, deadline - time.monotonic()),
            )
        self.thread.join(max(0.0, deadline - time.monotonic()))
        if self._ended.done():
            self._ended.result()


def _close_loop(loop: asyncio.AbstractEventLoop) -> None:
    """What asyncio.run() does after its main task, minus a thread Python may refuse at exit."""
    try:
        tasks = asyncio.all_tasks(loop)  # none are expected: everything runs in task groups
        for task in tasks:
            task.cancel()
        if tasks:
            loop.run_until_complete(asyncio.gather(*tasks, return_exceptions=True))
        loop.run_until_complete(loop.shutdown_asyncgens())
        # At exit, Python 3.12 refuses the thread this starts ("can't create new thread at
        # interpreter shutdown"); loop.close() then shuts the executor down without waiting.
        with contextlib.suppress(RuntimeError):
            loop.run_until_complete(loop.shutdown_default_executor())
    finally:
        loop.close()


# -- the exit hook -------------------------------------------------------------------------------

_open: set[_LoopThread] = set()
_open_lock = threading.Lock()


def _track(loop_thread: _LoopThread) -> None:
    with _open_lock:
        _open.add(loop_thread)


def _untrack(loop_thread: _LoopThread) -> None:
    with _open_lock:
        _open.discard(loop_thread)


def _close_all() -> None:
    """Close every manager still open, all at once: the interpreter is exiting."""
    with _open_lock:
        pending = list(_open)
    closing = [loop_thread for loop_thread in pending if loop_thread.begin_close()]
    deadline = time.monotonic() + _UNWIND_S
    errors: list[BaseException] = []
    for loop_thread in closing:
        try:
            loop_thread.finish_close(deadline)
        except BaseException as exc:  # close the others first, then report
            errors.append(exc)
    if errors:
        raise errors[0]


# atexit, not threading._register_atexit: it runs after Python has joined the non-daemon threads,
# so a worker still in a call when the main thread ends may finish, as with any blocking call.
atexit.register(_close_all)


class DeploymentManager(SyncOfficialCompat):
    """Blocking twin of `AsyncDeploymentManager`, for scripts and threads.

    Safe to share across threads; works inside a running event loop (a notebook). Ctrl-C while a
    call blocks cancels the operation. Close with `close()` or `with`; a manager left open is
    closed when it is garbage-collected or the interpreter exits, and never keeps a process alive.
    """

    def __init__(
        self,
        api_key: str | None = None,
        base_url: str = DEFAULT_BASE_URL,
        inference_url: str | None = None,
        hotload_api_url: str | None = None,
        additional_headers: Mapping[str, str] | None = None,
        verify_ssl: bool | None = None,
        *,
        account_id: str | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
        max_concurrency: int = 32,
        timeouts: Timeouts | None = None,
        retry: RetryPolicy | None = None,
        max_response_bytes: int = DEFAULT_MAX_RESPONSE_BYTES,
    ) -> None:
        loop_thread = _LoopThread()
        try:
            loop_thread.manager = loop_thread.portal.call(
                partial(
                    AsyncDeploymentManager,
                    api_key,
                    base_url,
                    inference_url,
                    hotload_api_url,
                    additional_headers,
                    verify_ssl,
                    account_id=account_id,
                    transport=transport,
                    max_concurrency=max_concurrency,
                    timeouts=timeouts,
                    retry=retry,
                    max_response_bytes=max_response_bytes,
                )
            )
        except BaseException:
            loop_thread.close()
            raise
        self._async: AsyncDeploymentManager = loop_thread.manager
        self._runtime = loop_thread
        self._portal = loop_thread.portal
        self._loop_thread = loop_thread.ident
        # Closes the loop thread if this manager is collected while open. Not at exit: the exit
        # hook closes every open manager at once (and runs even if finalizers are disabled then).
        self._finalizer = weakref.finalize(self, loop_thread.close)
        self._finalizer.atexit = False

    def __repr__(self) -> str:
        # The account as known: the `account_id` property would resolve it with a request.
        return (
            f"DeploymentManager(base_url={self.base_url!r}, account_id={self._async.account_id!r})"
        )

    # -- mechanics -------------------------------------------------------------------------

    def _call(self, func: Callable[..., Awaitable[T]], /, *args: Any, **kwargs: Any) -> T:
        return self._runtime.call(func, *args, **kwargs)

    def __enter__(self) -> DeploymentManager:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        """Cancel calls still running in other threads, close connections, stop the portal."""
        runtime = self._runtime
        if os.getpid() == runtime.pid and threading.get_ident() == runtime.ident:
            raise ManagerClosedError("close() cannot run on the manager's own event loop thread.")
        self._finalizer.detach()
        runtime.close()

    @property
    def closed(self) -> bool:
        return self._runtime.closed

    # -- forwards: one line each, same names and parameters as the async core ----------------

    @property
    def base_url(self) -> str:
        return self._async.base_url

    @property
    def inference_url(self) -> str:
        return self._async.inference_url

    @property
    def hotload_api_url(self) -> str:
        return self._async.hotload_api_url

    @property
    def poll_requests(self) -> int:
        return self._async.poll_requests

    def resolve_account_id(self) -> str:
        return self._call(self._async.resolve_account_id)

    def get(self, deployment_id: str) -> DeploymentInfo | None:
        return self._call(self._async.get, deployment_id)

    def list_deployments(self) -> list[DeploymentInfo]:
        return self._call(self._async.list_deployments)

    def create_or_get(
        self, config: DeploymentConfig, force_recreate: bool = False, *, timeout_s: float = 300.0
    ) -> DeploymentInfo:
        return self._call(self._async.create_or_get, config, force_recreate, timeout_s=timeout_s)

    def wait_for_ready(
        self, deployment_id: str, timeout_s: float = 600, poll_interval_s: float = 15
    ) -> DeploymentInfo:
        return self._call(self._async.wait_for_ready, deployment_id, timeout_s, poll_interval_s)

    def update(
        self,
        deployment_id: str,
        body: Mapping[str, Any],
        update_mask: str | Sequence[str] | None = None,
    ) -> DeploymentInfo:
        return self._call(self._async.update, deployment_id, body, update_mask)

    def scale_to_zero(self, deployment_id: str) -> DeploymentInfo | None:
        return self._call(self._async.scale_to_zero, deployment_id)

    def delete(
        self,
        deployment_id: str,
        *,
        wait: bool = False,
        timeout_s: float = 60.0,
        missing_ok: bool = True,
    ) -> None:
        return self._call(
            self._async.delete, deployment_id, wait=wait, timeout_s=timeout_s, missing_ok=missing_ok
        )

    def wait_for_deletion(
        self, deployment_id: str, timeout_s: float = 60.0, poll_interval_s: float = 2.0
    ) -> None:
        return self._call(self._async.wait_for_deletion, deployment_id, timeout_s, poll_interval_s)

    def hotload(
        self,
        deployment_id: str,
        base_model: str,
        snapshot_identity: str,
        incremental_snapshot_metadata: MetadataLike | None = None,
        reset_prompt_cache: bool = True,
        timeout: float = 60,
        path: str | None = None,
        cmek_resource: str | None = None,
    ) -> Mapping[str, Any]:
        return self._call(
            self._async.hotload,
            deployment_id,
            base_model,
            snapshot_identity,
            incremental_snapshot_metadata,
            reset_prompt_cache,
            timeout,
            path,
            cmek_resource,
        )

    def hotload_status(self, deployment_id: str, base_model: str) -> HotloadStatus:
        return self._call(self._async.hotload_status, deployment_id, base_model)

    def wait_for_hotload(
        self,
        deployment_id: str,
        base_model: str,
        expected_identity: str,
        timeout_seconds: float = 400,
        poll_interval: float = 5,
        *,
        poll_interval_s: float | None = None,
    ) -> HotloadStatus:
        return self._call(
            self._async.wait_for_hotload,
            deployment_id,
            base_model,
            expected_identity,
            timeout_seconds,
            poll_interval,
            poll_interval_s=poll_interval_s,
        )

    def hotload_and_wait(
        self,
        deployment_id: str,
        base_model: str,
        snapshot_identity: str,
        incremental_snapshot_metadata: MetadataLike | None = None,
        reset_prompt_cache: bool = True,
        timeout_seconds: float = 400,
        path: str | None = None,
        cmek_resource: str | None = None,
        poll_interval_s: float = 5,
    ) -> HotloadStatus:
        return self._call(
            self._async.hotload_and_wait,
            deployment_id,
            base_model,
            snapshot_identity,
            incremental_snapshot_metadata,
            reset_prompt_cache,
            timeout_seconds,
            path,
            cmek_resource,
            poll_interval_s,
        )

    def warmup(
        self,
        model: str,
        max_retries: int = 30,
        retry_interval_s: float = 10.0,
        *,
        timeout_s: float | None = None,
    ) -> WarmupResult:
        return self._call(
            self._async.warmup, model, max_retries, retry_interval_s, timeout_s=timeout_s
        )

    def lease(
        self, on_exit: LeaseAction = "scale_to_zero", *, cleanup_timeout_s: float = 120.0
    ) -> SyncDeploymentLease:
        lease = self._async.lease(on_exit, cleanup_timeout_s=cleanup_timeout_s)
        context = self._portal.wrap_async_context_manager(lease)
        return SyncDeploymentLease(lease, context, self._call)

    def wait_for_ready_many(
        self,
        deployment_ids: Sequence[str],
        timeout_s: float = 600,
        poll_interval_s: float = 15,
        *,
        return_exceptions: bool = False,
    ) -> FleetResult[DeploymentInfo]:
        return self._call(
            self._async.wait_for_ready_many,
            deployment_ids,
            timeout_s,
            poll_interval_s,
            return_exceptions=return_exceptions,
        )

    def hotload_and_wait_many(
        self,
        deployment_ids: Sequence[str],
        base_model: str,
        snapshot_identity: str,
        incremental_snapshot_metadata: MetadataLike | None = None,
        reset_prompt_cache: bool = True,
        timeout_seconds: float = 400,
        poll_interval_s: float = 5,
        *,
        return_exceptions: bool = False,
    ) -> FleetResult[HotloadStatus]:
        return self._call(
            self._async.hotload_and_wait_many,
            deployment_ids,
            base_model,
            snapshot_identity,
            incremental_snapshot_metadata,
            reset_prompt_cache,
            timeout_seconds,
            poll_interval_s,
            return_exceptions=return_exceptions,
        )
