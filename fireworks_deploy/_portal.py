"""The event loop thread behind a `DeploymentManager`, its portal, and closing what is left open.

`LoopThread` is a daemon thread running an event loop and an anyio `BlockingPortal`; it runs the
calls of one manager and guards them (closed, forked, called from the loop thread itself). It
holds no reference to the `DeploymentManager` using it, so a manager that is never closed cannot
keep the process alive:

* at interpreter exit an `atexit` hook closes every manager still open. Python has joined its
  non-daemon threads by then, so their calls have finished; a call still in flight from a daemon
  thread raises `ManagerClosedError` in that thread.
* a manager garbage-collected while open is closed by a weakref finalizer (set by the manager).

Closing waits at most `_UNWIND_S`; a loop that has not stopped by then is left to the process.
We do not use `anyio.from_thread.start_blocking_portal`: its context manager, never exited, is
finalized while the interpreter shuts down, when the daemon loop thread no longer runs, and its
`portal.call(portal.stop)` then waits forever.

A manager's calls do not go through `BlockingPortal.call`, which crosses to the loop thread twice
(`start_task_soon` waits until the loop has spawned the task, then for its result) and runs each
call through a task group. `LoopThread.call` crosses once, as `asyncio.run_coroutine_threadsafe`
does: one callback on the portal's own loop makes the task, and the task settles the call and
wakes its caller. The task runs inside an anyio cancel scope, so Ctrl-C and close() cancel it as
the portal would, and shielded cleanup in the async core stays shielded (a bare `Task.cancel()`
breaks through anyio shields). The portal stays for the rest: building the async manager, the
lease's async context manager, and running any other callable on the loop.
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
from collections.abc import Awaitable, Callable
from typing import Any, Protocol, TypeVar

import anyio
import sniffio
from anyio.from_thread import BlockingPortal

from ._errors import ManagerClosedError
from ._loops import Backend

__all__ = ["LoopThread"]

T = TypeVar("T")

#: How long Ctrl-C waits for a cancelled operation to unwind, and close() for the loop to stop.
_UNWIND_S = 5.0
_THREAD_NAME = "fireworks-deploy-portal"

_FORKED = (
    "This DeploymentManager was created in another process (before fork()); "
    "create a new one in this process."
)
_CLOSED = "This DeploymentManager is closed; create a new one."
_ON_LOOP_THREAD = (
    "DeploymentManager was called from its own event loop thread, which would deadlock; "
    "use AsyncDeploymentManager from async code."
)
_CLOSED_IN_FLIGHT = "This DeploymentManager was closed while the call was in progress."


class _AsyncClosable(Protocol):
    """What the loop thread closes on its own loop once every call has ended."""

    async def aclose(self) -> None: ...


class _Call:
    """One blocking call: its caller, its outcome, and (on the loop) its cancel scope and task.

    Whoever settles the call first takes `claim`: its task when it ends, or close() waking the
    caller. The caller waits on `done`, held until the call is settled. Two plain locks, not a
    `concurrent.futures.Future` (a condition, its waiter lock and callbacks on every call): they
    halve what crossing to the loop thread and back costs.
    """

    __slots__ = ("caller", "cancelled", "claim", "done", "error", "result", "scope", "task")

    def __init__(self, caller: int) -> None:
        self.caller = caller
        self.claim = threading.Lock()
        self.done = threading.Lock()
        self.done.acquire()
        self.result: Any = None
        self.error: BaseException | None = None
        self.cancelled = False
        self.scope: anyio.CancelScope | None = None
        self.task: asyncio.Task[None] | None = None

    @property
    def settled(self) -> bool:
        return self.claim.locked()

    def settle(
        self, result: Any = None, error: BaseException | None = None, *, cancelled: bool = False
    ) -> None:
        """Record the outcome and wake the caller, unless the call was settled before."""
        if self.claim.acquire(blocking=False):
            self.result, self.error, self.cancelled = result, error, cancelled
            self.done.release()


class LoopThread:
    """An event loop on a daemon thread, its portal, and the async manager that lives there.

    It holds no reference to the `DeploymentManager` using it, so the manager's weakref finalizer
    and the exit hook can close it.
    """

    def __init__(self) -> None:
        self.pid = os.getpid()
        self.closed = False
        self.manager: _AsyncClosable | None = None
        self._lock = threading.Condition(threading.Lock())
        #: Calls whose caller is still in `call()` (guarded by `_lock`).
        self._calls: set[_Call] = set()
        #: Calls whose task has not ended (loop thread only).
        self._live: set[_Call] = set()
        self._ended: concurrent.futures.Future[None] = concurrent.futures.Future()
        # Set on the loop thread before `started` resolves.
        self.ident: int
        self.portal: BlockingPortal
        self._loop: asyncio.AbstractEventLoop
        self._stop: asyncio.Event
        self._new_scope: Callable[[], anyio.CancelScope]
        started: concurrent.futures.Future[None] = concurrent.futures.Future()
        # A fresh context, as anyio gives its portal threads (Python 3.14 threads inherit one).
        context: dict[str, Any] = {}
        if sys.version_info >= (3, 14):
            context["context"] = contextvars.Context()
        self.thread = threading.Thread(
            target=self._main, args=(started,), name=_THREAD_NAME, daemon=True, **context
        )
        self.thread.start()
        started.result()
        _track(self)

    # -- the loop thread ---------------------------------------------------------------------

    def _main(self, started: concurrent.futures.Future[None]) -> None:
        self.ident = threading.get_ident()
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

    async def _serve(self, started: concurrent.futures.Future[None]) -> None:
        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        self._new_scope = Backend.current().scope
        async with BlockingPortal() as portal:
            self.portal = portal
            started.set_result(None)
            await self._stop.wait()
            for call in self._live:
                self._cancel(call)
            await portal.stop(cancel_remaining=True)
        while self._live:  # each ends soon: its scope is cancelled
            await asyncio.wait([call.task for call in self._live if call.task is not None])
        # Every call has ended: no request is being sent while the connections close.
        if self.manager is not None:
            await self.manager.aclose()

    def _start(
        self,
        call: _Call,
        func: Callable[..., Awaitable[Any]],
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
    ) -> None:
        """On the loop: make the call's task (in a copy of the caller's context, as anyio does)."""
        if call.settled:
            return  # closed before it began: nothing to run
        # The caller's context may name another async library (anyio's portal sets this too).
        sniffio.current_async_library_cvar.set("asyncio")
        call.scope = scope = self._new_scope()
        call.task = self._loop.create_task(self._run(call, scope, func, args, kwargs))
        self._live.add(call)

    async def _run(
        self,
        call: _Call,
        scope: anyio.CancelScope,
        func: Callable[..., Awaitable[Any]],
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
    ) -> None:
        """The call's task: run it in its cancel scope, then settle the call."""
        try:
            with scope:
                result = await func(*args, **kwargs)
        except asyncio.CancelledError:  # cancelled from outside our scope: the loop is ending
            call.settle(cancelled=True)
            raise
        except BaseException as exc:
            call.settle(error=exc)
            if not isinstance(exc, Exception):
                raise
        else:
            if scope.cancelled_caught:
                call.settle(cancelled=True)
            else:
                call.settle(result)
        finally:
            self._live.discard(call)

    def _cancel(self, call: _Call) -> None:
        """On the loop: cancel a call's scope, or settle a call whose task was never made."""
        if call.scope is not None:
            call.scope.cancel()  # a no-op once its task has ended
        else:
            call.settle(cancelled=True)  # scheduled after this if at all: it will not start

    def _interrupt(self, call: _Call) -> None:
        """Ctrl-C: cancel the call and wait (at most `_UNWIND_S`) for its task to unwind, so
        no request of the interrupted call is still being sent when the caller re-raises."""
        if call.settled:
            return
        try:
            self._loop.call_soon_threadsafe(self._cancel, call)
        except RuntimeError:  # the loop has closed: nothing runs any more
            return
        call.done.acquire(timeout=_UNWIND_S)

    # -- calls -------------------------------------------------------------------------------

    def call(self, func: Callable[..., Awaitable[T]], /, *args: Any, **kwargs: Any) -> T:
        """Run ``func(*args, **kwargs)`` on the loop and block until it returns."""
        if os.getpid() != self.pid:
            raise ManagerClosedError(_FORKED)
        call = _Call(threading.get_ident())
        try:  # from here on, Ctrl-C cancels whatever part of the call has started
            with self._lock:
                if self.closed:
                    raise ManagerClosedError(_CLOSED)
                if call.caller == self.ident:
                    raise ManagerClosedError(_ON_LOOP_THREAD)
                # Registered before the task starts: close() settles it, and it never starts.
                self._calls.add(call)
            try:
                self._loop.call_soon_threadsafe(self._start, call, func, args, kwargs)
            except RuntimeError as exc:  # the loop has closed
                raise ManagerClosedError(_CLOSED) from exc
            call.done.acquire()
        except KeyboardInterrupt:
            self._interrupt(call)
            raise
        finally:
            with self._lock:
                self._calls.discard(call)
                if self.closed:  # finish_close() may be waiting for the callers to leave
                    self._lock.notify_all()
        if call.cancelled:
            raise ManagerClosedError(_CLOSED_IN_FLIGHT)
        error = call.error
        if error is not None:
            call.error = None
            try:
                raise error
            finally:
                del error  # no cycle: the exception's traceback holds this frame
        result: T = call.result
        return result

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
            call.settle(
                cancelled=True
            )  # its caller raises ManagerClosedError now; the task unwinds
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

_open: set[LoopThread] = set()
_open_lock = threading.Lock()


def _track(loop_thread: LoopThread) -> None:
    with _open_lock:
        _open.add(loop_thread)


def _untrack(loop_thread: LoopThread) -> None:
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
