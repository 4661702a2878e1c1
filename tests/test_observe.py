"""Each public operation ends with one structured log record (and a span, with OpenTelemetry)."""

from __future__ import annotations

import inspect
import logging
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from typing import Any

import anyio
import httpx
import pytest
from local_kit import API_KEY, BASE_MODEL, INPROCESS_URL, async_manager, config, sync_manager
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import StatusCode

from fireworks_deploy import (
    AsyncDeploymentManager,
    DeploymentManager,
    HotloadStatus,
    IncrementalSnapshotMetadata,
)
from fireworks_deploy import _observe as observe
from fireworks_deploy.local import Fault, LocalControlPlane

LOGGER = "fireworks_deploy._observe"
#: Public coroutines that are lifecycle, not operations: they send no request.
UNOBSERVED = {"aclose", "close"}


@pytest.fixture
def plane() -> LocalControlPlane:
    return LocalControlPlane(
        api_key=API_KEY, boot_seconds=0.05, hotload_seconds=0.05, delete_seconds=0.05
    )


@pytest.fixture
def logs(caplog: pytest.LogCaptureFixture) -> pytest.LogCaptureFixture:
    caplog.set_level(logging.DEBUG, logger=LOGGER)
    return caplog


@pytest.fixture
async def fw(plane: LocalControlPlane) -> AsyncIterator[AsyncDeploymentManager]:
    """A manager on the in-process plane, with one READY deployment "obs" and its account known."""
    async with async_manager(INPROCESS_URL, plane.transport()) as manager:
        await manager.create_or_get(config("obs"))
        await manager.wait_for_ready("obs", timeout_s=10, poll_interval_s=0.02)
        yield manager


@pytest.fixture
def spans(monkeypatch: pytest.MonkeyPatch) -> Iterator[InMemorySpanExporter]:
    """Spans of our operations, from the OpenTelemetry SDK, without a global tracer provider."""
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    monkeypatch.setattr(observe, "_tracer", provider.get_tracer("test"))
    yield exporter
    provider.shutdown()


def records(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.name == LOGGER]


def only_record(caplog: pytest.LogCaptureFixture) -> logging.LogRecord:
    found = records(caplog)
    assert len(found) == 1, [r.getMessage() for r in found]
    return found[0]


def field(record: logging.LogRecord, name: str) -> Any:
    return record.__dict__[name]


def public_coroutines() -> list[str]:
    return sorted(
        name
        for name, member in inspect.getmembers(AsyncDeploymentManager)
        if not name.startswith("_") and inspect.iscoroutinefunction(member)
    )


class TestDecoratedMethods:
    @pytest.mark.parametrize("name", sorted(set(public_coroutines()) - UNOBSERVED))
    def test_every_public_operation_is_observed(self, name: str) -> None:
        """Every public coroutine but aclose/close is wrapped, keeping signature and docstring."""
        method = getattr(AsyncDeploymentManager, name)
        inner = method.__wrapped__
        assert inspect.iscoroutinefunction(method)
        assert inspect.signature(method) == inspect.signature(inner)
        assert method.__doc__ == inner.__doc__
        assert method.__doc__
        assert method.__name__ == name

    def test_the_sync_twins_are_not_wrapped(self) -> None:
        """The blocking facade forwards to the observed coroutines; its methods are plain."""
        assert not hasattr(DeploymentManager.hotload_and_wait, "__wrapped__")


class TestLogRecord:
    async def test_success_is_one_debug_record(
        self, fw: AsyncDeploymentManager, plane: LocalControlPlane, logs: pytest.LogCaptureFixture
    ) -> None:
        """A get logs operation, deployment, "ok", elapsed and requests at DEBUG."""
        logs.clear()
        sent_before = plane.stats.total
        info = await fw.get("obs")
        assert info is not None
        record = only_record(logs)
        assert record.levelno == logging.DEBUG
        assert field(record, "operation") == "get"
        assert field(record, "deployment_id") == "obs"
        assert field(record, "outcome") == "ok"
        assert 0 <= field(record, "elapsed_s") < 10
        assert field(record, "requests") == plane.stats.total - sent_before == 1
        assert record.getMessage().startswith("get obs: ok in ")

    async def test_retries_are_counted(
        self, fw: AsyncDeploymentManager, plane: LocalControlPlane, logs: pytest.LogCaptureFixture
    ) -> None:
        """Every attempt counts: two 503s then a 200 is three requests."""
        plane.faults.add(Fault("status", endpoint="get", status=503, times=2))
        logs.clear()
        await fw.get("obs")
        assert field(only_record(logs), "requests") == 3

    async def test_our_error_is_an_info_record_with_its_class(
        self, plane: LocalControlPlane, logs: pytest.LogCaptureFixture
    ) -> None:
        """A 401 logs outcome "AuthenticationError" at INFO, and neither key anywhere."""
        wrong = "fw-WRONG-secret-0c9d8e"
        async with AsyncDeploymentManager(
            api_key=wrong, base_url=INPROCESS_URL, transport=plane.transport(), account_id="local"
        ) as manager:
            with pytest.raises(Exception, match="401") as raised:
                await manager.get("obs")
        record = only_record(logs)
        assert record.levelno == logging.INFO
        assert field(record, "outcome") == type(raised.value).__name__ == "AuthenticationError"
        assert field(record, "requests") == 1
        shown = record.getMessage() + repr(record.__dict__)
        assert wrong not in shown
        assert API_KEY not in shown

    async def test_bad_input_logs_no_request_and_no_argument(
        self, fw: AsyncDeploymentManager, logs: pytest.LogCaptureFixture
    ) -> None:
        """An invalid id raises before any request; the record leaves the argument out."""
        logs.clear()
        with pytest.raises(ValueError, match="not valid"):
            await fw.get("Not_A-valid_ID")
        record = only_record(logs)
        assert field(record, "outcome") == "InvalidConfigError"
        assert field(record, "requests") == 0
        assert field(record, "deployment_id") is None
        assert "Not_A" not in record.getMessage()

    async def test_an_unexpected_error_is_a_warning(self, logs: pytest.LogCaptureFixture) -> None:
        """An exception from outside our tree (a broken transport) logs at WARNING."""

        def broken(request: httpx.Request) -> httpx.Response:
            raise RuntimeError("transport bug")

        async with async_manager(
            INPROCESS_URL, httpx.MockTransport(broken), account_id="local"
        ) as manager:
            with pytest.raises(RuntimeError):
                await manager.get("obs")
        record = only_record(logs)
        assert record.levelno == logging.WARNING
        assert field(record, "outcome") == "RuntimeError"
        assert field(record, "requests") == 1

    async def test_cancellation_is_a_debug_record(self, logs: pytest.LogCaptureFixture) -> None:
        """A wait the caller cancels logs the cancellation class at DEBUG, not as a failure."""
        slow = LocalControlPlane(api_key=API_KEY, boot_seconds=600)
        async with async_manager(INPROCESS_URL, slow.transport()) as manager:
            await manager.create_or_get(config("slow"))
            logs.clear()
            with anyio.move_on_after(0.2):
                await manager.wait_for_ready("slow", timeout_s=60, poll_interval_s=0.05)
        record = only_record(logs)
        assert field(record, "operation") == "wait_for_ready"
        assert field(record, "outcome") == "CancelledError"
        assert record.levelno == logging.DEBUG
        assert field(record, "requests") >= 1

    async def test_a_nested_operation_counts_for_the_outer_one(
        self, fw: AsyncDeploymentManager, plane: LocalControlPlane, logs: pytest.LogCaptureFixture
    ) -> None:
        """reattach_trainer calls update: both log, and the outer count includes the inner."""
        logs.clear()
        sent_before = plane.stats.total
        await fw.reattach_trainer(
            "obs",
            base_model=BASE_MODEL,
            trainer_job_name="accounts/local/rlorTrainerJobs/t1",
            timeout_s=10,
            poll_interval_s=0.02,
        )
        by_name = {field(r, "operation"): r for r in records(logs)}
        assert set(by_name) == {"update", "reattach_trainer"}
        assert field(by_name["update"], "requests") >= 1
        outer = field(by_name["reattach_trainer"], "requests")
        assert outer == plane.stats.total - sent_before
        assert outer > field(by_name["update"], "requests")

    def test_the_sync_facade_logs_through_the_async_method(
        self, plane: LocalControlPlane, logs: pytest.LogCaptureFixture
    ) -> None:
        """A blocking call logs once, from the async operation it forwards to."""
        with sync_manager(INPROCESS_URL, plane.transport(), account_id="local") as manager:
            assert manager.get("nothing-here") is None
        record = only_record(logs)
        assert (field(record, "operation"), field(record, "outcome")) == ("get", "ok")
        assert field(record, "requests") == 1


class TestHotloadCost:
    async def test_hotload_and_wait_reports_its_load_time_and_polls(
        self, fw: AsyncDeploymentManager, plane: LocalControlPlane, logs: pytest.LogCaptureFixture
    ) -> None:
        """The status says how long the load took and how many status reads it cost."""
        logs.clear()
        sent_before = plane.stats.total
        polls_before = plane.stats.requests["hotload_status"]
        status = await fw.hotload_and_wait(
            "obs", BASE_MODEL, "snap-1", timeout_seconds=10, poll_interval_s=0.02
        )
        assert status.serves("snap-1")
        assert status.load_s is not None
        # The plane takes hotload_seconds (0.05) from our POST to serve it.
        assert 0.05 <= status.load_s < 10
        assert status.status_requests == plane.stats.requests["hotload_status"] - polls_before
        assert status.status_requests >= 1
        record = only_record(logs)
        assert field(record, "operation") == "hotload_and_wait"
        assert field(record, "requests") == plane.stats.total - sent_before
        assert field(record, "requests") == status.status_requests + 1  # and the one POST
        assert field(record, "elapsed_s") >= status.load_s

    async def test_the_cost_is_not_part_of_equality(self, fw: AsyncDeploymentManager) -> None:
        """A timed status equals the plain status read of the same replicas."""
        timed = await fw.hotload_and_wait(
            "obs", BASE_MODEL, "snap-1", timeout_seconds=10, poll_interval_s=0.02
        )
        plain = await fw.hotload_status("obs", BASE_MODEL)
        assert (plain.load_s, plain.status_requests) == (None, None)
        assert timed == plain

    async def test_a_delta_reports_its_cost_too(self, fw: AsyncDeploymentManager) -> None:
        """Each step of a base-then-delta chain carries its own cost."""
        await fw.hotload_and_wait("obs", BASE_MODEL, "s0", timeout_seconds=10, poll_interval_s=0.02)
        delta = await fw.hotload_and_wait(
            "obs",
            BASE_MODEL,
            "s1",
            IncrementalSnapshotMetadata(previous_snapshot_identity="s0"),
            timeout_seconds=10,
            poll_interval_s=0.02,
        )
        assert delta.load_s is not None
        assert 0.05 <= delta.load_s < 10
        assert delta.status_requests is not None
        assert delta.status_requests >= 1

    async def test_shared_polls_count_for_the_waiter_that_sent_them(
        self, fw: AsyncDeploymentManager, plane: LocalControlPlane, logs: pytest.LogCaptureFixture
    ) -> None:
        """Two waiters share one poll loop: each poll is counted once, by the task that sent it."""
        await fw.hotload("obs", BASE_MODEL, "shared")
        logs.clear()
        polls_before = plane.stats.requests["hotload_status"]
        results: list[HotloadStatus] = []

        async def wait() -> None:
            results.append(
                await fw.wait_for_hotload("obs", BASE_MODEL, "shared", 10, poll_interval_s=0.02)
            )

        async with anyio.create_task_group() as tg:
            tg.start_soon(wait)
            tg.start_soon(wait)
        assert len(results) == 2
        waits = [r for r in records(logs) if field(r, "operation") == "wait_for_hotload"]
        assert len(waits) == 2
        assert sum(field(r, "requests") for r in waits) == (
            plane.stats.requests["hotload_status"] - polls_before
        )

    async def test_a_fleet_counts_every_task_it_starts(
        self, fw: AsyncDeploymentManager, plane: LocalControlPlane, logs: pytest.LogCaptureFixture
    ) -> None:
        """hotload_and_wait_many logs once with every id; each status carries its own cost."""
        await fw.create_or_get(config("obs-two"))
        await fw.wait_for_ready("obs-two", timeout_s=10, poll_interval_s=0.02)
        logs.clear()
        sent_before = plane.stats.total
        result = await fw.hotload_and_wait_many(
            ["obs", "obs-two"], BASE_MODEL, "fleet-1", timeout_seconds=10, poll_interval_s=0.02
        )
        record = only_record(logs)
        assert field(record, "deployment_ids") == ("obs", "obs-two")
        assert field(record, "deployment_id") is None
        assert field(record, "requests") == plane.stats.total - sent_before
        for status in result.succeeded.values():
            assert status.load_s is not None
            assert status.status_requests is not None
            assert status.status_requests >= 1
        assert "(2 deployments)" in record.getMessage()


class TestSpans:
    async def test_an_operation_is_a_span_with_the_record_attributes(
        self,
        fw: AsyncDeploymentManager,
        spans: InMemorySpanExporter,
        logs: pytest.LogCaptureFixture,
    ) -> None:
        """hotload_and_wait opens fireworks_deploy.hotload_and_wait with the same facts."""
        logs.clear()
        await fw.hotload_and_wait(
            "obs", BASE_MODEL, "traced", timeout_seconds=10, poll_interval_s=0.02
        )
        (span,) = spans.get_finished_spans()
        attributes = dict(span.attributes or {})
        assert span.name == "fireworks_deploy.hotload_and_wait"
        assert attributes["fireworks.operation"] == "hotload_and_wait"
        assert attributes["fireworks.deployment_id"] == "obs"
        assert attributes["fireworks.outcome"] == "ok"
        assert attributes["fireworks.requests"] == field(only_record(logs), "requests")
        assert span.status.status_code == StatusCode.UNSET

    async def test_a_failure_sets_error_status_and_records_the_exception(
        self, fw: AsyncDeploymentManager, plane: LocalControlPlane, spans: InMemorySpanExporter
    ) -> None:
        """A failed hot-load ends its span with ERROR status and the exception as an event."""
        plane.faults.add(Fault("hotload_error", deployment_id="obs", identity="bad"))
        with pytest.raises(Exception, match="failed") as raised:
            await fw.hotload_and_wait(
                "obs", BASE_MODEL, "bad", timeout_seconds=10, poll_interval_s=0.02
            )
        (span,) = spans.get_finished_spans()
        assert span.status.status_code == StatusCode.ERROR
        assert (span.attributes or {})["fireworks.outcome"] == type(raised.value).__name__
        assert [e.name for e in span.events] == ["exception"]
        assert API_KEY not in repr(span.to_json())

    async def test_nested_operations_nest_their_spans(
        self, fw: AsyncDeploymentManager, spans: InMemorySpanExporter
    ) -> None:
        """The update reattach_trainer makes is a child span of it."""
        await fw.reattach_trainer(
            "obs",
            base_model=BASE_MODEL,
            trainer_job_name="accounts/local/rlorTrainerJobs/t2",
            timeout_s=10,
            poll_interval_s=0.02,
        )
        by_name: dict[str, ReadableSpan] = {s.name: s for s in spans.get_finished_spans()}
        outer = by_name["fireworks_deploy.reattach_trainer"]
        inner = by_name["fireworks_deploy.update"]
        assert inner.parent is not None
        assert outer.context is not None
        assert inner.parent.span_id == outer.context.span_id

    async def test_a_fleet_span_names_every_deployment(
        self, fw: AsyncDeploymentManager, spans: InMemorySpanExporter
    ) -> None:
        """wait_for_ready_many carries the fleet's ids."""
        await fw.wait_for_ready_many(["obs"], timeout_s=10, poll_interval_s=0.02)
        (span,) = spans.get_finished_spans()
        assert (span.attributes or {})["fireworks.deployment_ids"] == ("obs",)

    async def test_without_a_tracer_only_the_record_is_made(
        self,
        fw: AsyncDeploymentManager,
        monkeypatch: pytest.MonkeyPatch,
        logs: pytest.LogCaptureFixture,
    ) -> None:
        """With no OpenTelemetry the operation still runs and logs."""
        monkeypatch.setattr(observe, "_tracer", None)
        logs.clear()
        assert await fw.get("obs") is not None
        assert field(only_record(logs), "outcome") == "ok"

    def test_the_package_imports_without_opentelemetry(self) -> None:
        """opentelemetry is optional: hidden, the package imports and has no tracer."""
        script = (
            "import sys\n"
            "sys.modules['opentelemetry'] = None\n"
            "import fireworks_deploy\n"
            "from fireworks_deploy import _observe\n"
            "assert _observe._tracer is None\n"
        )
        result = subprocess.run(  # noqa: S603 - our own interpreter and a script we wrote
            [sys.executable, "-W", "error", "-c", script],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert result.returncode == 0, result.stderr

    def test_a_tracer_provider_set_later_is_used(self) -> None:
        """Until the application sets a tracer provider no span is started (they would all be
        no-ops); one set after the manager is in use records spans once the look-up is made
        again (here at the next operation: the recheck interval is set to 0)."""
        script = """
import asyncio
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from fireworks_deploy import AsyncDeploymentManager, DeploymentConfig, _observe
from fireworks_deploy.local import LocalControlPlane

_observe.PROVIDER_RECHECK_S = 0.0

async def main():
    plane = LocalControlPlane(boot_seconds=0.0)
    exporter = InMemorySpanExporter()
    async with AsyncDeploymentManager(
        api_key="k", base_url="http://local.test", transport=plane.transport()
    ) as fw:
        await fw.create_or_get(DeploymentConfig("d1", "m"))
        provider = TracerProvider()
        provider.add_span_processor(SimpleSpanProcessor(exporter))
        trace.set_tracer_provider(provider)
        await fw.get("d1")
    names = [span.name for span in exporter.get_finished_spans()]
    assert names == ["fireworks_deploy.get"], names

asyncio.run(main())
"""
        result = subprocess.run(  # noqa: S603 - our own interpreter and a script we wrote
            [sys.executable, "-c", script],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert result.returncode == 0, result.stderr


class TestCounting:
    def test_tallies_nest(self) -> None:
        """A request counts for every open tally; none counts outside them."""
        observe.count_request()
        with observe.counting_requests() as outer:
            observe.count_request()
            with observe.counting_requests() as inner:
                observe.count_request()
                observe.count_request()
            observe.count_request()
        observe.count_request()
        assert (outer.count, inner.count) == (4, 2)
