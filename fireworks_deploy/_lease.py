"""A context-managed lease: the deployments it created are scaled to zero or deleted on exit.

```python
async with manager.lease(on_exit="scale_to_zero") as lease:
    info = await lease.create_or_get(config)
    ...  # however this block ends (return, error, cancellation), cleanup runs
```

Only deployments the lease itself created are cleaned up; one that already existed is left alone.
Cleanup runs shielded from cancellation, under its own deadline, for every deployment at once.
Any deployment it could not clean up is reported: `LeaseCleanupError` if the block ended
normally or with an error (chained to that error), and an ERROR log line if the block was
cancelled or interrupted, so that cancellation is never swallowed.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable
from contextlib import AbstractContextManager
from types import TracebackType
from typing import Any, Literal

import anyio

from ._config import Deadline, check_positive
from ._deployments import Deployments, check_config
from ._errors import InvalidConfigError, LeaseCleanupError, NotFoundError
from ._models import DeploymentConfig, DeploymentInfo

__all__ = ["DeploymentLease", "LeaseAction", "SyncDeploymentLease"]

logger = logging.getLogger(__name__)

LeaseAction = Literal["scale_to_zero", "delete"]
_ACTIONS = ("scale_to_zero", "delete")


class DeploymentLease:
    """Deployments created through it are released on exit; see the module docstring."""

    def __init__(
        self,
        deployments: Deployments,
        on_exit: LeaseAction = "scale_to_zero",
        *,
        cleanup_timeout_s: float = 120.0,
    ) -> None:
        if on_exit not in _ACTIONS:
            raise InvalidConfigError(
                f"on_exit must be 'scale_to_zero' or 'delete', got {on_exit!r}."
            )
        self._deployments = deployments
        self.on_exit: LeaseAction = on_exit
        self.cleanup_timeout_s = check_positive("cleanup_timeout_s", cleanup_timeout_s)
        self._created: list[str] = []
        self._entered = False
        self._exited = False
        #: What the last cleanup could not do, by deployment id (empty if all went well).
        self.failures: dict[str, Exception] = {}

    def __repr__(self) -> str:
        return f"DeploymentLease(on_exit={self.on_exit!r}, deployment_ids={self._created!r})"

    @property
    def deployment_ids(self) -> tuple[str, ...]:
        """The deployments this lease created, in creation order."""
        return tuple(self._created)

    async def __aenter__(self) -> DeploymentLease:
        if self._entered:
            raise RuntimeError("A DeploymentLease can be entered only once; create a new one.")
        self._entered = True
        return self

    async def create_or_get(
        self, config: DeploymentConfig, force_recreate: bool = False, *, timeout_s: float = 300.0
    ) -> DeploymentInfo:
        """`manager.create_or_get`, remembering the deployment only if this call created it."""
        if not self._entered or self._exited:
            raise RuntimeError("Use lease.create_or_get() inside `async with manager.lease()`.")
        config = check_config(config)
        deadline = Deadline(check_positive("timeout_s", timeout_s))
        existing = await self._deployments.get(config.deployment_id, deadline)
        if existing is not None and not existing.is_bad and not force_recreate:
            return existing  # not ours: someone else owns its lifetime
        # Recorded before the call: a create whose answer is lost (or is cancelled after the
        # POST went out) may still have made the deployment, and cleanup tolerates absence.
        if config.deployment_id not in self._created:
            self._created.append(config.deployment_id)
        return await self._deployments.create_or_get(config, force_recreate, deadline)

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._exited = True
        self.failures = await self._release()
        if not self.failures:
            return
        ids = ", ".join(self.failures)
        message = (
            f"Lease could not {self.on_exit.replace('_', ' ')} {len(self.failures)} of "
            f"{len(self._created)} deployment(s) it created ({ids}); first: "
            f"{next(iter(self.failures.values()))}. Release them by hand."
        )
        if exc is not None and not isinstance(exc, Exception):
            # Cancellation, Ctrl-C or exit: never replace it; report the leak loudly instead.
            logger.error("%s (the block ended with %s)", message, type(exc).__name__)
            return
        error = LeaseCleanupError(message, failures=self.failures)
        if exc is not None:
            raise error from exc
        raise error

    async def _release(self) -> dict[str, Exception]:
        failures: dict[str, Exception] = {}
        if not self._created:
            return failures
        timeout = self.cleanup_timeout_s

        async def release(deployment_id: str) -> None:
            try:
                with anyio.fail_after(timeout):
                    if self.on_exit == "delete":
                        await self._deployments.delete(
                            deployment_id, Deadline(timeout), missing_ok=True
                        )
                    else:
                        # A deployment that is gone already has nothing left to bill.
                        with contextlib.suppress(NotFoundError):
                            await self._deployments.scale_to_zero(
                                deployment_id, self._deployments.operation_deadline()
                            )
            except TimeoutError:
                failures[deployment_id] = TimeoutError(
                    f"Releasing deployment {deployment_id!r} did not finish within {timeout:g}s."
                )
            except Exception as exc:  # every failure is reported, none stops the others
                failures[deployment_id] = exc

        with anyio.CancelScope(shield=True):
            async with anyio.create_task_group() as tg:
                for deployment_id in reversed(self._created):
                    tg.start_soon(release, deployment_id)
        # Report in reverse creation order, like the cleanup itself.
        return {i: failures[i] for i in reversed(self._created) if i in failures}


class SyncDeploymentLease:
    """The blocking view of `DeploymentLease`, through the manager's portal."""

    def __init__(
        self,
        lease: DeploymentLease,
        context: AbstractContextManager[DeploymentLease],
        call: Callable[..., Any],
    ) -> None:
        self._lease = lease
        self._context = context
        self._call = call

    def __repr__(self) -> str:
        return repr(self._lease).replace("DeploymentLease", "SyncDeploymentLease", 1)

    @property
    def deployment_ids(self) -> tuple[str, ...]:
        """The deployments this lease created, in creation order."""
        return self._lease.deployment_ids

    @property
    def failures(self) -> dict[str, Exception]:
        """What the last cleanup could not do, by deployment id (empty if all went well)."""
        return self._lease.failures

    def __enter__(self) -> SyncDeploymentLease:
        self._context.__enter__()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> bool | None:
        return self._context.__exit__(exc_type, exc, tb)

    def create_or_get(
        self, config: DeploymentConfig, force_recreate: bool = False, *, timeout_s: float = 300.0
    ) -> DeploymentInfo:
        """`manager.create_or_get`, remembering the deployment only if this call created it."""
        result: DeploymentInfo = self._call(
            self._lease.create_or_get, config, force_recreate, timeout_s=timeout_s
        )
        return result
