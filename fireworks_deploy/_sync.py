"""DeploymentManager: the blocking view of AsyncDeploymentManager, through one anyio portal.

Every method forwards to the async core on the portal's event loop; no logic lives here but the
guards against misuse. The loop thread, its portal, the guards on each call (closed, forked,
called from the portal's own thread), Ctrl-C, and closing managers left open at exit live in
`_portal.LoopThread`.
"""

from __future__ import annotations

import inspect
import os
import threading
import weakref
from collections.abc import Awaitable, Callable, Mapping, Sequence
from functools import partial
from types import FunctionType, TracebackType
from typing import Any, TypeVar

import httpx

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
from ._portal import LoopThread

__all__ = ["DeploymentManager"]

T = TypeVar("T")


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
        loop_thread = LoopThread()
        try:
            manager = loop_thread.portal.call(
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
            loop_thread.manager = manager
        except BaseException:
            loop_thread.close()
            raise
        self._async: AsyncDeploymentManager = manager
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


def _docstrings_from_twins(facade: type, core: type) -> None:
    """Give each public method and property of `facade` that has no docstring its async twin's.

    Only `__doc__` is copied, so `help()` and the API reference read the same text on both
    managers; `functools.wraps` would also copy the signature that the parity test compares.
    """
    for name in dir(facade):
        member = inspect.getattr_static(facade, name)
        twin = inspect.getattr_static(core, name, None)
        if (
            not name.startswith("_")
            and isinstance(member, (FunctionType, property))
            and not member.__doc__
            and twin is not None
        ):
            member.__doc__ = twin.__doc__


_docstrings_from_twins(DeploymentManager, AsyncDeploymentManager)
