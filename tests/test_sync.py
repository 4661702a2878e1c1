"""DeploymentManager: the blocking facade over one portal — behaviour and mechanics."""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import json
import os
import signal
import threading
import time
import warnings
import weakref
from collections.abc import Iterator
from typing import Any

import anyio
import httpx
import pytest
import respx
import sniffio
from core_testkit import (
    ACCOUNT,
    API_KEY,
    BASE_MODEL,
    BASE_URL,
    COMPLETIONS_PATH,
    HOTLOAD_PATH,
    dep_path,
    deployment_json,
    replica_json,
    sequence,
    status_json,
)

from fireworks_deploy import (
    AsyncDeploymentManager,
    AuthenticationError,
    DeploymentConfig,
    DeploymentFailedError,
    DeploymentManager,
    FleetResult,
    HotloadFailedError,
    HotloadStatus,
    InvalidConfigError,
    ManagerClosedError,
    ReadyTimeoutError,
)
from fireworks_deploy.local import LocalControlPlane

FAST: dict[str, Any] = {"poll_interval_s": 0.02}
#: A value of the calling thread's context, seen (or not) by the call on the loop thread.
CALLER_VAR: contextvars.ContextVar[str] = contextvars.ContextVar("caller_var", default="unset")


def portal_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == "fireworks-deploy-portal"]


@contextlib.contextmanager
def ctrl_c_once(ready: threading.Event) -> Iterator[None]:
    """Press Ctrl-C (SIGINT to the main thread) once `ready` is set, while the block runs.

    Skips the test where that cannot be done: off the main thread, or with the runner's own
    SIGINT handler in place.
    """
    if threading.current_thread() is not threading.main_thread():
        pytest.skip("signals are delivered to the main thread only")
    if signal.getsignal(signal.SIGINT) is not signal.default_int_handler:
        pytest.skip("SIGINT handler replaced by the test runner")
    main = threading.main_thread().ident
    assert main is not None

    def interrupt() -> None:
        if ready.wait(10):
            signal.pthread_kill(main, signal.SIGINT)

    timer = threading.Thread(target=interrupt)
    timer.start()
    try:
        yield
    finally:
        timer.join(10)


class TestBehaviour:
    def test_get(self, sync_manager: DeploymentManager, router: respx.Router) -> None:
        """get() works through the portal and the injected transport."""
        route = router.get(dep_path("d")).respond(json=deployment_json("d"))
        info = sync_manager.get("d")
        assert info is not None
        assert info.state == "READY"
        assert route.calls.last.request.headers["x-api-key"] == API_KEY

    def test_create_or_get(self, sync_manager: DeploymentManager, router: respx.Router) -> None:
        """create_or_get POSTs once for an absent deployment."""
        router.get(dep_path("d")).respond(404)
        post = router.post(f"/v1/accounts/{ACCOUNT}/deployments").respond(
            json=deployment_json("d", "CREATING")
        )
        assert sync_manager.create_or_get(DeploymentConfig("d", BASE_MODEL)).state == "CREATING"
        assert post.call_count == 1

    def test_wait_for_ready_probe(
        self, sync_manager: DeploymentManager, router: respx.Router
    ) -> None:
        """CREATING plus a probe 200 is ready, state kept as sent."""
        router.get(dep_path("d")).respond(json=deployment_json("d", "CREATING"))
        router.post(COMPLETIONS_PATH).respond(200)
        assert sync_manager.wait_for_ready("d", timeout_s=5, **FAST).state == "CREATING"

    def test_wait_for_ready_failed(
        self, sync_manager: DeploymentManager, router: respx.Router
    ) -> None:
        """FAILED raises DeploymentFailedError through the facade."""
        router.get(dep_path("d")).respond(json=deployment_json("d", "FAILED"))
        with pytest.raises(DeploymentFailedError):
            sync_manager.wait_for_ready("d", timeout_s=5, **FAST)

    def test_wait_for_ready_deadline(
        self, sync_manager: DeploymentManager, router: respx.Router
    ) -> None:
        """One deadline: a permanent 503 gives up in about timeout_s."""
        router.get(dep_path("d")).respond(503)
        started = time.monotonic()
        with pytest.raises(ReadyTimeoutError):
            sync_manager.wait_for_ready("d", timeout_s=1)
        assert time.monotonic() - started < 5

    def test_hotload_and_wait(self, sync_manager: DeploymentManager, router: respx.Router) -> None:
        """hotload_and_wait returns the truthy status once every replica serves."""
        post = router.post(HOTLOAD_PATH).respond(json={})
        router.get(HOTLOAD_PATH).mock(
            side_effect=sequence(
                httpx.Response(
                    200,
                    json=status_json(replica_json("s1"), replica_json("s0", ready=False, pod="p1")),
                ),
                httpx.Response(
                    200, json=status_json(replica_json("s1"), replica_json("s1", pod="p1"))
                ),
            )
        )
        status = sync_manager.hotload_and_wait(
            "d", BASE_MODEL, "s1", {"previous_snapshot_identity": "s0"}, timeout_seconds=5, **FAST
        )
        assert isinstance(status, HotloadStatus)
        assert status
        assert (
            json.loads(post.calls.last.request.content)["incremental_snapshot_metadata"][
                "checksum_format"
            ]
            == "alder32"
        )

    def test_hotload_failure(self, sync_manager: DeploymentManager, router: respx.Router) -> None:
        """A replica error for our identity raises HotloadFailedError."""
        router.post(HOTLOAD_PATH).respond(json={})
        router.get(HOTLOAD_PATH).respond(
            json=status_json(replica_json("s0", ready=False, stage="error", target="s1"))
        )
        with pytest.raises(HotloadFailedError):
            sync_manager.hotload_and_wait("d", BASE_MODEL, "s1", timeout_seconds=5, **FAST)

    def test_update_scale_delete(
        self, sync_manager: DeploymentManager, router: respx.Router
    ) -> None:
        """update, scale_to_zero and delete forward their wire shapes."""
        patch = router.patch(dep_path("d")).respond(json=deployment_json("d"))
        delete = router.delete(dep_path("d")).respond(200)
        sync_manager.update("d", {"hotLoadTrainerJob": "j"})
        assert patch.calls.last.request.url.params["updateMask"] == "hot_load_trainer_job"
        sync_manager.scale_to_zero("d")
        assert patch.calls.last.request.url.query == b""
        sync_manager.delete("d")
        assert delete.calls.last.request.url.params["hard"] == "true"

    def test_fleet(self, sync_manager: DeploymentManager, router: respx.Router) -> None:
        """wait_for_ready_many returns a FleetResult."""
        router.get(f"/v1/accounts/{ACCOUNT}/deployments").respond(
            json={"deployments": [deployment_json("a"), deployment_json("b")]}
        )
        result = sync_manager.wait_for_ready_many(["a", "b"], timeout_s=5, **FAST)
        assert isinstance(result, FleetResult)
        assert result.ok

    def test_warmup_auth(self, sync_manager: DeploymentManager, router: respx.Router) -> None:
        """Warm-up refused with 401 raises AuthenticationError."""
        router.post(COMPLETIONS_PATH).respond(401)
        with pytest.raises(AuthenticationError):
            sync_manager.warmup("m", max_retries=3, retry_interval_s=0.01)

    def test_bad_input_sends_nothing(
        self, sync_manager: DeploymentManager, router: respx.Router
    ) -> None:
        """Invalid arguments raise InvalidConfigError before any request."""
        with pytest.raises(InvalidConfigError):
            sync_manager.get("NOT valid")
        with pytest.raises(InvalidConfigError):
            sync_manager.wait_for_hotload("d", "", "s1")
        assert len(router.calls) == 0

    def test_lazy_account_once_across_threads(
        self, transport: httpx.MockTransport, router: respx.Router, accounts_route: respx.Route
    ) -> None:
        """Threads sharing a manager resolve the account with one request."""
        for i in range(8):
            router.get(dep_path(f"d{i}")).respond(json=deployment_json(f"d{i}"))
        with DeploymentManager(api_key=API_KEY, base_url=BASE_URL, transport=transport) as mgr:
            threads = [threading.Thread(target=mgr.get, args=(f"d{i}",)) for i in range(8)]
            for t in threads:
                t.start()
            for t in threads:
                t.join(10)
            assert mgr.account_id == ACCOUNT
        assert accounts_route.call_count == 1

    def test_repr_hides_key(self, sync_manager: DeploymentManager) -> None:
        """The key is not in the facade's repr."""
        assert API_KEY not in repr(sync_manager)
        assert ACCOUNT in repr(sync_manager)

    def test_constructor_errors_propagate(self) -> None:
        """A constructor error is raised and leaves no portal thread."""
        before = len(portal_threads())
        with pytest.raises(InvalidConfigError):
            DeploymentManager(base_url=BASE_URL)
        assert len(portal_threads()) == before


class TestThreads:
    def test_many_threads_share_one_manager(
        self, sync_manager: DeploymentManager, router: respx.Router
    ) -> None:
        """Plain threads call one manager concurrently; each gets its own answer."""
        router.get(path__regex=rf"^/v1/accounts/{ACCOUNT}/deployments/(?P<dep>[a-z0-9-]+)$").mock(
            side_effect=lambda request, dep: httpx.Response(200, json=deployment_json(dep))
        )
        results: dict[int, str] = {}
        errors: list[BaseException] = []

        def work(i: int) -> None:
            try:
                for _ in range(5):
                    info = sync_manager.wait_for_ready(f"d{i}", timeout_s=5, **FAST)
                    results[i] = info.deployment_id
            except BaseException as exc:
                errors.append(exc)

        threads = [threading.Thread(target=work, args=(i,)) for i in range(16)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(20)
        assert not errors
        assert results == {i: f"d{i}" for i in range(16)}

    async def test_works_inside_a_running_event_loop(
        self, sync_manager: DeploymentManager, router: respx.Router
    ) -> None:
        """A blocking call from inside a running event loop (a notebook) works."""
        router.get(dep_path("d")).respond(json=deployment_json("d"))
        assert sync_manager.get("d") is not None

    def test_portal_thread_call_is_refused(
        self, sync_manager: DeploymentManager, router: respx.Router
    ) -> None:
        """A call from the facade's own loop thread raises ManagerClosedError, not a hang."""
        router.get(dep_path("d")).respond(json=deployment_json("d"))
        with pytest.raises(ManagerClosedError, match="AsyncDeploymentManager"):
            sync_manager._portal.call(sync_manager.get, "d")
        assert len(router.calls) == 0


class TestLifecycle:
    def test_use_after_close(self, transport: httpx.MockTransport) -> None:
        """Every call after close() raises ManagerClosedError; close is idempotent."""
        mgr = DeploymentManager(
            api_key=API_KEY, account_id=ACCOUNT, base_url=BASE_URL, transport=transport
        )
        mgr.close()
        mgr.close()
        assert mgr.closed
        with pytest.raises(ManagerClosedError):
            mgr.get("d")
        with pytest.raises(ManagerClosedError):
            mgr.wait_for_ready("d")

    def test_no_portal_thread_after_close(self, transport: httpx.MockTransport) -> None:
        """The portal thread is gone once close() returns."""
        with DeploymentManager(
            api_key=API_KEY, account_id=ACCOUNT, base_url=BASE_URL, transport=transport
        ) as mgr:
            ident = mgr._loop_thread
            assert ident in {t.ident for t in threading.enumerate()}
        assert ident not in {t.ident for t in threading.enumerate()}

    def test_close_unblocks_a_waiting_thread(
        self, transport: httpx.MockTransport, router: respx.Router
    ) -> None:
        """close() while another thread waits makes it raise ManagerClosedError promptly."""
        polled = threading.Event()

        def answer(request: httpx.Request) -> httpx.Response:
            polled.set()
            return httpx.Response(200, json=status_json(replica_json("s0")))

        router.get(HOTLOAD_PATH).mock(side_effect=answer)
        mgr = DeploymentManager(
            api_key=API_KEY, account_id=ACCOUNT, base_url=BASE_URL, transport=transport
        )
        outcome: list[BaseException] = []

        def waiter() -> None:
            try:
                mgr.wait_for_hotload("d", BASE_MODEL, "s1", timeout_seconds=30, **FAST)
            except BaseException as exc:
                outcome.append(exc)

        thread = threading.Thread(target=waiter)
        thread.start()
        assert polled.wait(10)
        started = time.monotonic()
        mgr.close()
        thread.join(10)
        assert not thread.is_alive()
        assert time.monotonic() - started < 5
        assert len(outcome) == 1
        assert isinstance(outcome[0], ManagerClosedError)
        assert mgr._loop_thread not in {t.ident for t in threading.enumerate()}

    def test_collected_manager_stops_its_thread(
        self, transport: httpx.MockTransport, router: respx.Router
    ) -> None:
        """A used manager dropped without close() is collected at once and stops its thread."""
        router.get(dep_path("d")).respond(json=deployment_json("d"))
        mgr = DeploymentManager(
            api_key=API_KEY, account_id=ACCOUNT, base_url=BASE_URL, transport=transport
        )
        assert mgr.get("d") is not None
        ident = mgr._loop_thread
        ref = weakref.ref(mgr)
        del mgr
        assert ref() is None  # no reference cycle through the loop thread keeps it alive
        assert ident not in {t.ident for t in threading.enumerate()}

    def test_collected_on_its_own_loop_thread(self, transport: httpx.MockTransport) -> None:
        """A manager whose last reference dies on its own loop thread still stops that thread."""
        holder = [
            DeploymentManager(
                api_key=API_KEY, account_id=ACCOUNT, base_url=BASE_URL, transport=transport
            )
        ]
        thread = next(t for t in threading.enumerate() if t.ident == holder[0]._loop_thread)
        portal = holder[0]._portal
        portal.call(holder.clear)
        thread.join(10)
        assert not thread.is_alive()

    def test_close_on_its_loop_thread_is_refused(
        self, sync_manager: DeploymentManager, router: respx.Router
    ) -> None:
        """close() from the loop thread raises and leaves the manager open and usable."""
        router.get(dep_path("d")).respond(json=deployment_json("d"))
        with pytest.raises(ManagerClosedError, match="own event loop thread"):
            sync_manager._portal.call(sync_manager.close)
        assert not sync_manager.closed
        assert sync_manager.get("d") is not None

    @pytest.mark.skipif(not hasattr(signal, "pthread_kill"), reason="needs POSIX signals")
    def test_ctrl_c_cancels_the_operation(
        self, sync_manager: DeploymentManager, router: respx.Router
    ) -> None:
        """SIGINT while blocked raises KeyboardInterrupt, stops polling, keeps the manager."""
        polls = {"n": 0}
        twice = threading.Event()

        def answer(request: httpx.Request) -> httpx.Response:
            polls["n"] += 1
            if polls["n"] >= 2:
                twice.set()
            return httpx.Response(200, json=status_json(replica_json("s0")))

        router.get(HOTLOAD_PATH).mock(side_effect=answer)
        router.get(dep_path("d")).respond(json=deployment_json("d"))
        started = time.monotonic()
        with ctrl_c_once(twice), pytest.raises(KeyboardInterrupt):
            sync_manager.wait_for_hotload("d", BASE_MODEL, "s1", timeout_seconds=30, **FAST)
        assert time.monotonic() - started < 10
        # The wait has unwound: its poll loop has no waiter left, and no poll follows.
        key = ("hotload", sync_manager.hotload_api_url, "d", BASE_MODEL)
        assert sync_manager._portal.call(sync_manager._async._hub.waiters, key) == 0
        seen = polls["n"]
        assert sync_manager.get("d") is not None
        assert sync_manager.wait_for_ready("d", timeout_s=5, **FAST).state == "READY"
        assert polls["n"] == seen

    @pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
    def test_forked_child_is_refused(self, sync_manager: DeploymentManager) -> None:
        """In a forked child every call raises ManagerClosedError (no portal thread there)."""
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            pid = os.fork()
        if pid == 0:  # child
            code = 1
            try:
                sync_manager.get("d")
            except ManagerClosedError:
                code = 0
            except BaseException:
                code = 2
            try:
                sync_manager.close()
            except BaseException:
                code = 3
            os._exit(code)
        _, status = os.waitpid(pid, 0)
        assert os.waitstatus_to_exitcode(status) == 0
        assert not sync_manager.closed


class TestHop:
    """The call path onto the loop thread (`_portal.LoopThread.call`): one hop, anyio semantics."""

    @staticmethod
    async def until_cancel_requested(mgr: DeploymentManager) -> None:
        """On the loop thread: wait until the running call's cancel scope has been cancelled."""

        def requested() -> bool:
            return any(c.scope is not None and c.scope.cancel_called for c in mgr._runtime._live)

        with anyio.fail_after(10):
            # A cancel scope has no event to wait on; poll the condition.
            while not requested():  # noqa: ASYNC110
                await asyncio.sleep(0.005)

    def test_close_wakes_the_caller_and_respects_a_shield(
        self, sync_manager: DeploymentManager
    ) -> None:
        """close() wakes the caller at once; the task is cancelled as anyio cancels: a shielded
        part still runs to its end (a bare Task.cancel() would land in it), and nothing after."""
        inside = threading.Event()
        release = asyncio.Event()
        log: list[str] = []

        async def operation() -> None:
            with anyio.CancelScope(shield=True):
                inside.set()
                await release.wait()
                await self.until_cancel_requested(sync_manager)
                for _ in range(3):
                    await asyncio.sleep(0)
                log.append("shielded part done")
            await anyio.sleep_forever()
            log.append("not cancelled")

        outcome: list[BaseException] = []

        def caller() -> None:
            try:
                sync_manager._runtime.call(operation)
            except BaseException as exc:
                outcome.append(exc)

        calling = threading.Thread(target=caller)
        calling.start()
        assert inside.wait(10)
        closing = threading.Thread(target=sync_manager.close)
        closing.start()
        calling.join(10)
        assert not calling.is_alive()
        assert [type(exc) for exc in outcome] == [ManagerClosedError]
        assert log == []  # the caller did not wait for the shielded part
        sync_manager._runtime._loop.call_soon_threadsafe(release.set)
        closing.join(10)
        assert not closing.is_alive()
        assert log == ["shielded part done"]

    @pytest.mark.skipif(not hasattr(signal, "pthread_kill"), reason="needs POSIX signals")
    def test_ctrl_c_respects_a_shield_and_waits_for_the_unwind(
        self, sync_manager: DeploymentManager, router: respx.Router
    ) -> None:
        """Ctrl-C during a shielded part: it runs to its end, then the call is cancelled, and
        KeyboardInterrupt is raised once the task has unwound; the manager stays usable."""
        router.get(dep_path("d")).respond(json=deployment_json("d"))
        inside = threading.Event()
        log: list[str] = []

        async def operation() -> None:
            with anyio.CancelScope(shield=True):
                inside.set()
                await self.until_cancel_requested(sync_manager)
                for _ in range(3):
                    await asyncio.sleep(0)
                log.append("shielded part done")
            await anyio.sleep_forever()
            log.append("not cancelled")

        started = time.monotonic()
        with ctrl_c_once(inside), pytest.raises(KeyboardInterrupt):
            sync_manager._runtime.call(operation)
        assert time.monotonic() - started < 10
        assert log == ["shielded part done"]
        assert sync_manager._portal.call(len, sync_manager._runtime._live) == 0
        assert sync_manager.get("d") is not None

    def test_the_call_runs_in_a_copy_of_the_callers_context(
        self, sync_manager: DeploymentManager
    ) -> None:
        """As with anyio's portal: the call sees the caller's context variables, its changes
        stay in the call, and sniffio names asyncio even if the caller's context says otherwise."""

        async def look() -> tuple[str, str]:
            seen = CALLER_VAR.get(), sniffio.current_async_library()
            CALLER_VAR.set("changed in the call")
            return seen

        context = contextvars.copy_context()

        def in_caller_context() -> tuple[str, str]:
            CALLER_VAR.set("caller")
            sniffio.current_async_library_cvar.set("trio")
            seen = sync_manager._runtime.call(look)
            assert CALLER_VAR.get() == "caller"
            return seen

        assert context.run(in_caller_context) == ("caller", "asyncio")

    def test_errors_keep_their_type_and_cause(self, sync_manager: DeploymentManager) -> None:
        """An exception of the call is raised in the caller as it was, with its cause."""

        def inner() -> None:
            raise KeyError("inner")

        async def fail() -> None:
            try:
                inner()
            except KeyError as exc:
                raise ValueError("outer") from exc

        with pytest.raises(ValueError, match="outer") as caught:
            sync_manager._runtime.call(fail)
        assert isinstance(caught.value.__cause__, KeyError)

    def test_close_while_many_threads_call(self) -> None:
        """Threads calling flat out while close() runs: each call answers or raises
        ManagerClosedError; no caller hangs and no task is left behind (leak check)."""
        plane = LocalControlPlane(boot_seconds=0.0)
        plane.create_deployment("d", BASE_MODEL)
        mgr = DeploymentManager(
            api_key=API_KEY, account_id=plane.account, transport=plane.transport()
        )
        answered = threading.Semaphore(0)
        outcomes: dict[int, list[str]] = {}

        def work(i: int) -> None:
            seen = outcomes.setdefault(i, [])
            while True:
                try:
                    info = mgr.get("d")
                except ManagerClosedError:
                    seen.append("closed")
                    return
                except BaseException as exc:
                    seen.append(repr(exc))
                    return
                seen.append("ok" if info is not None and info.deployment_id == "d" else "wrong")
                answered.release()

        threads = [threading.Thread(target=work, args=(i,)) for i in range(8)]
        for thread in threads:
            thread.start()
        for _ in range(40):  # calls are flowing from several threads
            assert answered.acquire(timeout=10)
        mgr.close()
        for thread in threads:
            thread.join(10)
            assert not thread.is_alive()
        for seen in outcomes.values():
            assert seen[-1] == "closed"
            assert set(seen[:-1]) <= {"ok"}
        with pytest.raises(ManagerClosedError):
            mgr.get("d")

    async def test_from_a_running_loop_while_another_thread_calls(
        self, sync_manager: DeploymentManager, router: respx.Router
    ) -> None:
        """A caller with its own running loop (a notebook) and a plain thread, on one manager."""
        router.get(dep_path("d")).respond(json=deployment_json("d"))
        results: list[bool] = []
        other = threading.Thread(target=lambda: results.append(sync_manager.get("d") is not None))
        other.start()
        assert sync_manager.get("d") is not None
        other.join(10)
        assert results == [True]
        assert isinstance(sync_manager._async, AsyncDeploymentManager)
