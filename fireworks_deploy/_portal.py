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

import attrs
from anyio.from_thread import BlockingPortal

from ._errors import ManagerClosedError

__all__ = ["LoopThread"]

T = TypeVar("T")

#: How long Ctrl-C waits for a cancelled operation to unwind, and close() for the loop to stop.
_UNWIND_S = 5.0
_THREAD_NAME = "fireworks-deploy-portal"

_FORKED = (
    "This DeploymentManager was created in another process (before fork()); "
    "create a new one in this process."
)


class _AsyncClosable(Protocol):
    """What the loop thread closes on its own loop once every call has ended."""

    async def aclose(self) -> None: ...


@attrs.frozen(eq=False)
class _Call:
    """One blocking call in flight: its future, set when its task ends, and the calling thread."""

    future: concurrent.futures.Future[Any]
    finished: threading.Event
    caller: int


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
