"""A leak check for tests: no extra threads, open sockets or stray asyncio tasks after a test.

Load it with ``pytest_plugins = ["leakcheck"]`` and apply it to a module with
``pytestmark = pytest.mark.usefixtures("leakcheck")``. It is an async fixture so that its
teardown runs on the test's own event loop (pytest-asyncio runs it for sync tests too); it is
set up before the test's other fixtures, so it checks after they have closed their managers and
servers. The event loop's own default-executor threads (``asyncio_N``, used for getaddrinfo) are
not counted: the loop owns and joins them when it closes.
"""

from __future__ import annotations

import asyncio
import os
import threading
import time
from collections.abc import AsyncIterator

import pytest

__all__ = ["leakcheck", "open_sockets", "snapshot"]

#: How long teardown waits for threads and sockets to go away (they close asynchronously).
_SETTLE_S = 5.0


def open_sockets() -> set[str]:
    """The inodes of this process's open sockets (Linux /proc)."""
    found = set()
    fd_dir = "/proc/self/fd"
    for name in os.listdir(fd_dir):
        try:
            target = os.readlink(os.path.join(fd_dir, name))
        except OSError:  # closed between listdir and readlink
            continue
        if target.startswith("socket:"):
            found.add(target)
    return found


def snapshot() -> tuple[set[threading.Thread], set[str]]:
    return set(threading.enumerate()), open_sockets()


async def _stray_tasks() -> list[asyncio.Task[object]]:
    current = asyncio.current_task()
    for _ in range(10):  # let cancelled tasks run their last step
        await asyncio.sleep(0)
    return [t for t in asyncio.all_tasks() if t is not current and not t.done()]


@pytest.fixture
async def leakcheck() -> AsyncIterator[None]:
    """After the test: no new threads, no new open sockets, no unfinished asyncio tasks."""
    threads_before, sockets_before = snapshot()
    yield
    stray = await _stray_tasks()
    for task in stray:
        task.cancel()
    deadline = time.monotonic() + _SETTLE_S
    while True:
        threads = {
            t
            for t in threading.enumerate()
            if t not in threads_before and t.is_alive() and not t.name.startswith("asyncio_")
        }
        sockets = open_sockets() - sockets_before
        if (not threads and not sockets) or time.monotonic() > deadline:
            break
        await asyncio.sleep(0.02)  # polling for the condition, not a fixed wait
    assert not stray, f"stray asyncio tasks after the test: {stray}"
    assert not threads, f"threads left running after the test: {[t.name for t in threads]}"
    assert not sockets, f"{len(sockets)} socket(s) left open after the test"
