"""Binding pooled connections to the asyncio event loop that first used them, and the running
backend's own classes.

Connections belong to the loop that opened them; used or closed from another loop they fail
deep inside the pool. `LoopBinding` turns that into `EventLoopMismatchError`. Another anyio
backend (trio) is not checked.
"""

from __future__ import annotations

import asyncio
import weakref
from collections.abc import Callable

import anyio
import attrs

from ._errors import EventLoopMismatchError

__all__ = ["Backend", "LoopBinding", "current_loop"]


@attrs.frozen
class Backend:
    """The running anyio backend's own `Event` and `CancelScope` classes.

    `anyio.Event()` and `anyio.CancelScope()` (and so `anyio.move_on_after`) look the backend
    up on every call; an object used on one event loop finds the classes once, with
    `current()`, and makes its events and scopes from them on its hot paths.
    """

    event: Callable[[], anyio.Event]
    scope: type[anyio.CancelScope]

    @classmethod
    def current(cls) -> Backend:
        return cls(type(anyio.Event()), type(anyio.CancelScope()))

    def move_on_after(self, seconds: float) -> anyio.CancelScope:
        """`anyio.move_on_after(seconds)`, as a scope whose deadline may be moved later."""
        return self.scope(deadline=anyio.current_time() + seconds)


def current_loop() -> asyncio.AbstractEventLoop | None:
    """The running asyncio loop; None on another anyio backend (trio), which is not checked."""
    try:
        return asyncio.get_running_loop()
    except RuntimeError:
        return None


class LoopBinding:
    """The event loop a manager's connections were first used on."""

    def __init__(self) -> None:
        self._loop: weakref.ref[asyncio.AbstractEventLoop] | None = None

    def check(self) -> None:
        """Record the first event loop; refuse any other with a clear, typed error."""
        loop = current_loop()
        if loop is None:
            return
        if self._loop is None:
            self._loop = weakref.ref(loop)
            return
        if self._loop() is not loop:
            raise EventLoopMismatchError(
                "This manager is bound to the event loop it was first used on, and its pooled "
                "connections cannot be used from another one (e.g. a second asyncio.run()). "
                "Create one manager per event loop (async with AsyncDeploymentManager(...) "
                "inside the loop), or use the sync DeploymentManager, which keeps one loop."
            )

    def must_abandon(self) -> bool:
        """Whether closing from the running loop must abandon the connections, not close them.

        False on the first loop (or before any use). From another loop: True if the first one
        has ended (nothing can close its connections any more); `EventLoopMismatchError` if it
        is still open, so that nothing is closed (close it there).
        """
        if self._loop is None:
            return False
        first, current = self._loop(), current_loop()
        if current is None or first is current:
            return False
        if first is not None and not first.is_closed():
            raise EventLoopMismatchError(
                "aclose() was called from an event loop other than the one this "
                "manager was used on; its connections belong to that loop. Close the "
                "manager there (async with AsyncDeploymentManager(...) inside it)."
            )
        return True
