"""Coalesced deployment reads: many concurrent waits read the fleet through the list endpoint.

With thousands of `wait_for_ready` calls in flight, one GET per deployment per poll is what costs
(client CPU and server load). Past a threshold of concurrent waits, a poll instead joins the
current round of list reads (one request per page of 200), which answers every poll waiting on
it. A deployment the list does not show is read with its own GET, so a listing that lags behind
a create never reports it missing.
"""

from __future__ import annotations

import contextlib
from collections.abc import Awaitable, Callable, Iterator

import anyio

from ._config import Deadline
from ._models import DeploymentInfo

__all__ = ["BatchedReads"]

ListAll = Callable[[Deadline], Awaitable[list[DeploymentInfo]]]
GetOne = Callable[[str, Deadline], Awaitable["DeploymentInfo | None"]]


class _Round:
    __slots__ = ("done", "error", "listed")

    def __init__(self) -> None:
        self.done = anyio.Event()
        self.listed: dict[str, DeploymentInfo] = {}
        self.error: Exception | None = None


class BatchedReads:
    """Reads one deployment, alone or as part of a shared list round. One per manager."""

    def __init__(self, list_all: ListAll, get_one: GetOne, *, threshold: int = 64) -> None:
        self._list_all = list_all
        self._get_one = get_one
        self.threshold = threshold
        #: Waits polling through `read`, per deployment.
        self._waiting: dict[str, int] = {}
        self._round: _Round | None = None
        #: List rounds run, for tests and benchmarks.
        self.rounds = 0

    @contextlib.contextmanager
    def waiting(self, deployment_id: str) -> Iterator[None]:
        """Count a wait on `deployment_id` while it polls (distinct deployments decide)."""
        self._waiting[deployment_id] = self._waiting.get(deployment_id, 0) + 1
        try:
            yield
        finally:
            left = self._waiting[deployment_id] - 1
            if left:
                self._waiting[deployment_id] = left
            else:
                del self._waiting[deployment_id]

    async def read(self, deployment_id: str, deadline: Deadline) -> DeploymentInfo | None:
        if len(self._waiting) < self.threshold:
            return await self._get_one(deployment_id, deadline)
        round_ = self._round
        if round_ is None:
            round_ = self._round = _Round()
            self.rounds += 1
            try:
                round_.listed = {i.deployment_id: i for i in await self._list_all(deadline)}
            except Exception as exc:  # every poll in the round sees it, and decides
                round_.error = exc
            finally:
                self._round = None
                round_.done.set()
        else:
            await round_.done.wait()
        if round_.error is not None:
            raise round_.error
        info = round_.listed.get(deployment_id)
        return info if info is not None else await self._get_one(deployment_id, deadline)
