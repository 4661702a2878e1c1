"""DeploymentManager: the blocking view of AsyncDeploymentManager, through one anyio portal.

Every method forwards to the async core on the portal's event loop; no logic lives here but the
guards against misuse (closed, forked, called from the portal's own thread) and Ctrl-C.
"""

from __future__ import annotations

import concurrent.futures
import os
import threading
from collections.abc import Awaitable, Callable, Mapping, Sequence
from contextlib import AbstractContextManager
from functools import partial
from types import TracebackType
from typing import Any, TypeVar

import anyio.from_thread
import httpx

from ._config import DEFAULT_BASE_URL, RetryPolicy, Timeouts
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

#: How long Ctrl-C or close() waits for a cancelled operation to unwind.
_UNWIND_S = 5.0


class DeploymentManager:
    """Blocking twin of `AsyncDeploymentManager`, for scripts and threads.

    Safe to share across threads; works inside a running event loop (a notebook). Ctrl-C while a
    call blocks cancels the operation. Close with `close()` or `with`.
    """

    def __init__(
        self,
        api_key: str | None = None,
        account_id: str | None = None,
        base_url: str = DEFAULT_BASE_URL,
        inference_url: str | None = None,
        hotload_api_url: str | None = None,
        additional_headers: Mapping[str, str] | None = None,
        verify_ssl: bool | None = None,
        *,
        transport: httpx.AsyncBaseTransport | None = None,
        max_concurrency: int = 32,
        timeouts: Timeouts | None = None,
        retry: RetryPolicy | None = None,
    ) -> None:
        self._pid = os.getpid()
        self._lock = threading.Lock()
        self._closed = False
        self._inflight: set[concurrent.futures.Future[Any]] = set()
        self._portal_cm: AbstractContextManager[anyio.from_thread.BlockingPortal] = (
            anyio.from_thread.start_blocking_portal(name="fireworks-deploy-portal")
        )
        self._portal = self._portal_cm.__enter__()
        try:
            self._loop_thread = self._portal.call(threading.get_ident)
            self._async: AsyncDeploymentManager = self._portal.call(
                partial(
                    AsyncDeploymentManager,
                    api_key,
                    account_id,
                    base_url,
                    inference_url,
                    hotload_api_url,
                    additional_headers,
                    verify_ssl,
                    transport=transport,
                    max_concurrency=max_concurrency,
                    timeouts=timeouts,
                    retry=retry,
                )
            )
        except BaseException:
            self._portal_cm.__exit__(None, None, None)
            raise

    def __repr__(self) -> str:
        return f"DeploymentManager(base_url={self.base_url!r}, account_id={self.account_id!r})"

    # -- mechanics -------------------------------------------------------------------------

    def _check_usable(self) -> None:
        if os.getpid() != self._pid:
            raise ManagerClosedError(
                "This DeploymentManager was created in another process (before fork()); "
                "create a new one in this process."
            )
        if self._closed:
            raise ManagerClosedError("This DeploymentManager is closed; create a new one.")
        if threading.get_ident() == self._loop_thread:
            raise ManagerClosedError(
                "DeploymentManager was called from its own event loop thread, which would "
                "deadlock; use AsyncDeploymentManager from async code."
            )

    def _call(self, func: Callable[..., Awaitable[T]], /, *args: Any, **kwargs: Any) -> T:
        finished = threading.Event()

        async def run() -> T:
            try:
                return await func(*args, **kwargs)
            finally:
                finished.set()

        with self._lock:
            self._check_usable()
            try:
                future = self._portal.start_task_soon(run)
            except RuntimeError as exc:
                raise ManagerClosedError("This DeploymentManager is closed.") from exc
            self._inflight.add(future)
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
                self._inflight.discard(future)

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
        with self._lock:
            if self._closed:
                return
            self._closed = True
            inflight = list(self._inflight)
        if os.getpid() != self._pid:
            return  # the portal thread does not exist in a forked child
        if threading.get_ident() == self._loop_thread:
            raise ManagerClosedError("close() cannot run on the manager's own event loop thread.")
        for future in inflight:
            future.cancel()
        concurrent.futures.wait(inflight, timeout=_UNWIND_S)
        try:
            self._portal.call(self._async.aclose)
        finally:
            self._portal_cm.__exit__(None, None, None)

    @property
    def closed(self) -> bool:
        return self._closed

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
    def account_id(self) -> str | None:
        return self._async.account_id

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
        poll_interval_s: float = 5,
    ) -> HotloadStatus:
        return self._call(
            self._async.wait_for_hotload,
            deployment_id,
            base_model,
            expected_identity,
            timeout_seconds,
            poll_interval_s,
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
