"""The fault matrix: every operation against every fault, over real HTTP, with typed outcomes.

Each test is one fault row on one transport; it runs the row's operations concurrently, each
against its own local control plane, so the whole matrix costs about one deadline per row. Every
cell is recorded in the session's fault matrix (see tests/fault_matrix_plugin.py), which renders
docs/fault-matrix.md.
"""

from __future__ import annotations

import email.utils
import json
import math
import re
import time
from collections.abc import Awaitable, Callable, Iterator
from contextlib import ExitStack
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import anyio
import anyio.to_thread
import pytest
from local_kit import (
    BASE_MODEL,
    async_manager,
    closed_port,
    config,
    double_effects,
    double_posts,
    small_timeouts,
    wait_until,
)
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from fireworks_deploy import (
    APIConnectionError,
    APIStatusError,
    AsyncDeploymentManager,
    DeploymentFailedError,
    FleetError,
    HotloadFailedError,
    ResponseTooLargeError,
    ResponseValidationError,
    WaitTimeoutError,
    WarmupError,
)
from fireworks_deploy.local import Fault, LocalControlPlane, LocalServer

if TYPE_CHECKING:
    from fault_matrix_plugin import FaultMatrix

pytest_plugins = ["fault_matrix_plugin"]

ACCOUNT = "local"
TARGET = "snap-new"
POLL = 0.03
#: A generous wall-clock bound past each deadline: it proves "not minutes", nothing about speed.
BOUND_S = 10.0

OPS = [
    "get",
    "create_or_get",
    "wait_for_ready",
    "hotload_and_wait",
    "warmup",
    "scale_to_zero",
    "delete",
    "wait_for_ready_many",
    "hotload_and_wait_many",
]
#: The endpoints whose requests a fault is aimed at, per operation.
ENDPOINTS = {
    "get": ["get"],
    "create_or_get": ["create"],
    "wait_for_ready": ["get"],
    "hotload_and_wait": ["hotload", "hotload_status"],
    "warmup": ["completions"],
    "scale_to_zero": ["scale"],
    "delete": ["delete", "get"],
    "wait_for_ready_many": ["list"],
    "hotload_and_wait_many": ["hotload", "hotload_status"],
}
FLEET = ("wait_for_ready_many", "hotload_and_wait_many")
WAITS_FOR_BOOT = ("wait_for_ready", "wait_for_ready_many")


# -- a small ASGI wrapper for faults the plane does not have ------------------------------------


def classify(method: str, path: str, query: bytes) -> str:
    """The plane's endpoint name for a request."""
    path = re.sub("/+", "/", path)
    if path == "/v1/accounts":
        return "accounts"
    if path.startswith("/hot_load/"):
        return "hotload_status" if method == "GET" else "hotload"
    if path.endswith("/completions"):
        return "completions"
    if re.fullmatch(r"/v1/accounts/[^/]+/deployments", path):
        return "list" if method == "GET" else "create"
    if method == "PATCH":
        return "update" if b"updateMask" in query else "scale"
    return {"GET": "get", "DELETE": "delete"}.get(method, "other")


@dataclass
class Rule:
    """Answer, rewrite or lose the answer of up to `times` requests to `endpoints`."""

    endpoints: set[str]
    times: int | None
    respond: Callable[[], tuple[int, dict[str, str], bytes]] | None = None
    rewrite: Callable[[Any], Any] | None = None
    fired: int = 0

    def take(self, endpoint: str) -> bool:
        if endpoint not in self.endpoints or (self.times is not None and self.fired >= self.times):
            return False
        self.fired += 1
        return True


class Injector:
    """ASGI middleware in front of a plane's app; passes through unless a rule fires."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self.rules: list[Rule] = []

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            endpoint = classify(scope["method"], scope["path"], scope.get("query_string", b""))
            for rule in self.rules:
                if rule.take(endpoint):
                    await self._apply(rule, scope, receive, send)
                    return
        await self.app(scope, receive, send)

    async def _apply(self, rule: Rule, scope: Scope, receive: Receive, send: Send) -> None:
        if rule.respond is not None:
            status, headers, body = rule.respond()
            await _send(send, status, [(k.encode(), v.encode()) for k, v in headers.items()], body)
            return
        start: Message = {}
        chunks: list[bytes] = []

        async def capture(message: Message) -> None:
            nonlocal start
            if message["type"] == "http.response.start":
                start = message
            elif message["type"] == "http.response.body":
                chunks.append(message.get("body", b""))

        await self.app(scope, receive, capture)
        body = b"".join(chunks)
        if rule.rewrite is not None and start.get("status") == 200:
            body = json.dumps(rule.rewrite(json.loads(body))).encode()
        headers = [(k, v) for k, v in start["headers"] if k.lower() != b"content-length"]
        await _send(send, start["status"], headers, body)


async def _send(send: Send, status: int, headers: list[tuple[bytes, bytes]], body: bytes) -> None:
    headers = [*headers, (b"content-length", str(len(body)).encode())]
    if not any(k.lower() == b"content-type" for k, _ in headers):
        headers.append((b"content-type", b"application/json"))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


def injector_of(plane: LocalControlPlane) -> Injector:
    """Put an Injector in front of `plane.app` (used by both transports)."""
    injector = Injector(plane.app)
    plane.__dict__["app"] = injector  # replaces the cached_property's value
    return injector


# -- one cell ------------------------------------------------------------------------------------


class SkewClock:
    """Real time plus an offset, so setup can fast-forward a plane without waiting."""

    def __init__(self) -> None:
        self.offset = 0.0

    def __call__(self) -> float:
        return time.monotonic() + self.offset


@dataclass
class Ctx:
    """Everything a cell's fault setup and background action may touch."""

    op: str
    plane: LocalControlPlane
    injector: Injector
    clock: SkewClock
    ids: list[str]
    stack: ExitStack
    server: LocalServer | None = None
    base_url: str = ""

    @property
    def endpoints(self) -> list[str]:
        return ENDPOINTS[self.op]

    def add(self, kind: str, **kwargs: Any) -> None:
        """The plane's own fault, once per endpoint this operation uses."""
        for endpoint in self.endpoints:
            self.plane.faults.add(Fault(kind, endpoint=endpoint, **kwargs))


@dataclass(frozen=True)
class Row:
    title: str
    expected: dict[str, str]
    deadline: float = 5.0
    attempt_s: float = 2.5
    inject: Callable[[Ctx], None] | None = None
    during: Callable[[Ctx], Awaitable[None]] | None = None
    plane: dict[str, Any] = field(default_factory=dict)
    replicas: int = 1
    transports: tuple[str, ...] = ("inprocess",)
    note: str = ""


def label(exc: BaseException | None) -> str:
    if exc is None:
        return "ok"
    if isinstance(exc, FleetError):
        inner = sorted({type(e).__name__ for e in exc.result.failed.values()})
        return f"FleetError[{'|'.join(inner)}]"
    return type(exc).__name__


def says_what_it_saw(exc: BaseException | None) -> bool:
    """The error's message carries what the SDK last observed."""
    if exc is None:
        return True
    text = str(exc)
    if isinstance(exc, FleetError):
        return "first:" in text and all(says_what_it_saw(e) for e in exc.result.failed.values())
    if isinstance(exc, WaitTimeoutError):
        return "last" in text
    if isinstance(exc, APIStatusError):
        return f"HTTP {exc.status_code}" in text
    if isinstance(exc, APIConnectionError):
        return "no answer" in text or "was not sent" in text
    if isinstance(exc, ResponseTooLargeError):
        return "limit" in text
    if isinstance(exc, ResponseValidationError):
        return bool(text) and exc.body is not None
    if isinstance(exc, HotloadFailedError):
        return "stage=error" in text
    if isinstance(exc, DeploymentFailedError):
        return (exc.state is not None and exc.state in text) or "does not exist" in text
    if isinstance(exc, WarmupError):
        return "last:" in text
    return False


async def run_op(op: str, fw: AsyncDeploymentManager, ids: list[str], deadline: float) -> object:
    if op == "get":
        return await fw.get(ids[0])
    if op == "create_or_get":
        return await fw.create_or_get(config(ids[0]), timeout_s=deadline)
    if op == "wait_for_ready":
        return await fw.wait_for_ready(ids[0], timeout_s=deadline, poll_interval_s=POLL)
    if op == "hotload_and_wait":
        return await fw.hotload_and_wait(
            ids[0], BASE_MODEL, TARGET, timeout_seconds=deadline, poll_interval_s=POLL
        )
    if op == "warmup":
        model = f"accounts/{ACCOUNT}/deployments/{ids[0]}"
        return await fw.warmup(model, max_retries=1000, retry_interval_s=POLL, timeout_s=deadline)
    if op == "scale_to_zero":
        return await fw.scale_to_zero(ids[0])
    if op == "delete":
        return await fw.delete(ids[0], wait=True, timeout_s=deadline)
    if op == "wait_for_ready_many":
        return await fw.wait_for_ready_many(ids, timeout_s=deadline, poll_interval_s=POLL)
    return await fw.hotload_and_wait_many(
        ids, BASE_MODEL, TARGET, timeout_seconds=deadline, poll_interval_s=POLL
    )


def prepare(op: str, row: Row, stack: ExitStack) -> Ctx:
    clock = SkewClock()
    options = {"boot_seconds": 0.3, "hotload_seconds": 0.1, "delete_seconds": 0.1} | row.plane
    plane = LocalControlPlane(clock=clock, **options)
    injector = injector_of(plane)
    ids = ["m0", "m1", "m2"] if op in FLEET else ["m"]
    if op != "create_or_get":
        for i in ids:
            plane.create_deployment(i, BASE_MODEL, row.replicas)
        if op not in WAITS_FOR_BOOT:
            clock.offset += 10.0  # booted
    return Ctx(op, plane, injector, clock, ids, stack)


async def run_cell(
    row_index: int, row: Row, op: str, transport: str, matrix: FaultMatrix, refused: bool
) -> None:
    with ExitStack() as stack:
        ctx = prepare(op, row, stack)
        if row.inject is not None:
            row.inject(ctx)
        if refused:
            base_url, http_transport = f"http://127.0.0.1:{closed_port()}", None
        elif transport == "loopback":
            ctx.server = LocalServer(ctx.plane)
            ctx.server.start()
            stack.callback(lambda: ctx.server.stop() if ctx.server else None)
            base_url, http_transport = ctx.server.base_url, None
        else:
            base_url, http_transport = "http://local.fireworks.test", ctx.plane.transport()
        ctx.base_url = base_url
        error: BaseException | None = None
        started = time.monotonic()
        async with async_manager(
            base_url,
            http_transport,
            account_id=ACCOUNT,
            timeouts=small_timeouts(row.deadline, row.attempt_s),
        ) as fw:
            try:
                with anyio.fail_after(row.deadline + BOUND_S):
                    async with anyio.create_task_group() as tg:
                        if row.during is not None:
                            tg.start_soon(row.during, ctx)
                        try:
                            await run_op(op, fw, ctx.ids, row.deadline)
                        except Exception as exc:  # compared with the documented outcome
                            error = exc
                        finally:
                            tg.cancel_scope.cancel()
            except TimeoutError as exc:  # the "not minutes" bound fired: a hang
                error = exc
        elapsed = time.monotonic() - started
        assert elapsed < row.deadline + BOUND_S, f"{op} took {elapsed:.1f}s"
        # Exactly once: no create or hot-load took effect twice; and a POST that reached the
        # server twice did so only because the server had not acted on the first.
        assert not double_effects(ctx.plane), f"{op}: {double_effects(ctx.plane)}"
        unapplied = row.title.startswith(UNAPPLIED_ANSWER_ROWS)
        assert unapplied or not double_posts(ctx.plane), f"{op}: {double_posts(ctx.plane)}"
    matrix.record(
        row=row_index,
        fault=row.title,
        op=op,
        transport=transport,
        expected=row.expected[op],
        observed=label(error),
        evidence=says_what_it_saw(error),
        detail="" if error is None else f"{error}"[:300],
    )


# -- the rows --------------------------------------------------------------------------------------


#: Rows whose fault answers a POST in the server's place (it never acts): re-sending it once a
#: read-back shows nothing landed is right, so the POST may reach the server twice.
UNAPPLIED_ANSWER_ROWS = (
    "429 with",
    "503 burst",
    "500, 502, 504 burst",
    "503 longer",
    "502 longer",
    "connection reset",
    "accepts and never answers",
    "truncated JSON",
    "malformed JSON",
    "valid JSON of the wrong shape",
    "endless body",
    "deeply nested JSON",
)


def everywhere(outcome: str = "ok", **exceptions: str) -> dict[str, str]:
    return {op: exceptions.get(op, outcome) for op in OPS}


def only(**outcomes: str) -> dict[str, str]:
    return dict(outcomes)


def status(code: int, times: int | None, retry_after: float | None = None) -> Callable[[Ctx], None]:
    def inject(ctx: Ctx) -> None:
        ctx.add("status", status=code, times=times, retry_after=retry_after)

    return inject


def statuses(*codes: int) -> Callable[[Ctx], None]:
    def inject(ctx: Ctx) -> None:
        for code in codes:
            ctx.add("status", status=code, times=1)

    return inject


def http_date_429(ctx: Ctx) -> None:
    def respond() -> tuple[int, dict[str, str], bytes]:
        when = email.utils.formatdate(time.time() + 1, usegmt=True)
        body = json.dumps({"error": {"code": 8, "message": "slow down", "status": "RATE"}})
        return 429, {"retry-after": when}, body.encode()

    ctx.injector.rules.append(Rule(set(ctx.endpoints), times=1, respond=respond))


def plane_fault(kind: str, **kwargs: Any) -> Callable[[Ctx], None]:
    def inject(ctx: Ctx) -> None:
        ctx.add(kind, **kwargs)

    return inject


def body_fault(body: str) -> Callable[[Ctx], None]:
    def inject(ctx: Ctx) -> None:
        ctx.add("malformed", body=body, times=1)

    return inject


def unknown_state(ctx: Ctx) -> None:
    def rewrite(payload: Any) -> Any:
        for item in payload.get("deployments", [payload]):
            if isinstance(item, dict) and "state" in item:
                item["state"] = "STATE_FROM_THE_FUTURE"
        return payload

    endpoints = {"get", "list", "create", "scale"}
    ctx.injector.rules.append(Rule(endpoints, times=3, rewrite=rewrite))


def unknown_stage(ctx: Ctx) -> None:
    def rewrite(payload: Any) -> Any:
        for replica in payload.get("replicas", []):
            replica["loading_state"]["stage"] = "quantizing"
        return payload

    ctx.injector.rules.append(Rule({"hotload_status"}, times=6, rewrite=rewrite))


def failed_boot(ctx: Ctx) -> None:
    if ctx.op == "create_or_get":  # a FAILED deployment is already there
        ctx.plane.create_deployment(ctx.ids[0], BASE_MODEL)
        ctx.plane.fail_boot(ctx.ids[0])
        ctx.clock.offset += 10.0
    else:
        ctx.plane.fail_boot(ctx.ids[-1])


async def delete_mid_wait(ctx: Ctx) -> None:
    endpoint = "hotload_status" if ctx.op.startswith("hotload") else ctx.endpoints[0]
    await wait_until(lambda: ctx.plane.stats.requests[endpoint] >= 1)
    ctx.plane.state.delete(ACCOUNT, ctx.ids[-1], ignore_checks=True)


async def restart_server(ctx: Ctx) -> None:
    """Once every hot-load POST landed and each wait has seen its load, restart the server on
    its port with a fresh plane (which knows nothing of the loads)."""
    old = ctx.server
    assert old is not None
    # A second status read reached the server: the first, which showed the load, was answered.
    await wait_until(
        lambda: all(ctx.plane.stats.by_deployment["hotload_status", i] >= 2 for i in ctx.ids)
    )
    fresh = LocalControlPlane(boot_seconds=0, hotload_seconds=0.1)
    for i in ctx.ids:
        fresh.create_deployment(i, BASE_MODEL)
    await anyio.to_thread.run_sync(old.stop)
    new = LocalServer(fresh, port=old.port)
    await anyio.to_thread.run_sync(new.start)
    ctx.server = new  # stopped by the cell's exit stack


HOT = ("hotload_and_wait", "hotload_and_wait_many")
ROWS: list[Row] = [
    Row(
        "429 with Retry-After in seconds (x2)",
        everywhere(),
        inject=status(429, 2, retry_after=0.2),
        transports=("inprocess", "loopback"),
    ),
    Row(
        "429 with Retry-After as an HTTP-date (x1)",
        everywhere(),
        inject=http_date_429,
    ),
    Row("503 burst shorter than the deadline (x3)", everywhere(), inject=status(503, 3)),
    Row(
        "500, 502, 504 burst shorter than the deadline",
        everywhere(),
        inject=statuses(500, 502, 504),
        note="a POST that got a 500/502/504 may have been acted on, so it is never re-sent "
        "blindly: create reads the deployment back, a hot-load reads the status, and the POST is "
        "sent again only if it did not land (429 and 503 say the server did not act, so those "
        "POSTs are simply retried).",
    ),
    Row(
        "503 longer than the deadline",
        everywhere(
            "InternalServerError",
            wait_for_ready="ReadyTimeoutError",
            warmup="WarmupError",
            wait_for_ready_many="FleetError[ReadyTimeoutError]",
            hotload_and_wait_many="FleetError[InternalServerError]",
        ),
        deadline=3.0,  # room for a first answer on a loaded machine
        inject=status(503, None),
        transports=("inprocess", "loopback"),
    ),
    Row(
        "502 longer than the deadline",
        everywhere(
            "InternalServerError",
            wait_for_ready="ReadyTimeoutError",
            warmup="WarmupError",
            wait_for_ready_many="FleetError[ReadyTimeoutError]",
            hotload_and_wait_many="FleetError[InternalServerError]",
        ),
        deadline=3.0,  # room for a first answer on a loaded machine
        inject=status(502, None),
    ),
    Row(
        "connection refused (closed port)",
        everywhere(
            "APIConnectionError",
            wait_for_ready="ReadyTimeoutError",
            warmup="WarmupError",
            wait_for_ready_many="FleetError[ReadyTimeoutError]",
            hotload_and_wait_many="FleetError[APIConnectionError]",
        ),
        deadline=3.0,  # room for a first answer on a loaded machine
        attempt_s=1.0,
        transports=("loopback",),
    ),
    Row(
        "connection reset mid-response (x1)",
        everywhere(),
        inject=plane_fault("drop", times=1),
        transports=("inprocess", "loopback"),
    ),
    Row(
        "accepts and never answers (x1)",
        everywhere(),
        attempt_s=0.3,
        inject=plane_fault("hang", times=1),
        transports=("inprocess", "loopback"),
    ),
    Row(
        "accepts and never answers (longer than the deadline)",
        everywhere(
            "APITimeoutError",
            wait_for_ready="ReadyTimeoutError",
            warmup="WarmupError",
            wait_for_ready_many="FleetError[ReadyTimeoutError]",
            hotload_and_wait_many="FleetError[APITimeoutError]",
        ),
        deadline=1.2,
        attempt_s=0.3,
        inject=plane_fault("hang", times=None),
        transports=("inprocess", "loopback"),
    ),
    Row(
        "truncated JSON (x1)",
        everywhere(
            "ResponseValidationError",
            create_or_get="ok",
            wait_for_ready="ok",
            hotload_and_wait="ok",
            warmup="ok",
            wait_for_ready_many="ok",
            hotload_and_wait_many="ok",
        ),
        inject=plane_fault("malformed", times=1),
        transports=("inprocess", "loopback"),
    ),
    Row(
        "malformed JSON (x1)",
        everywhere(
            "ResponseValidationError",
            create_or_get="ok",
            wait_for_ready="ok",
            hotload_and_wait="ok",
            warmup="ok",
            wait_for_ready_many="ok",
            hotload_and_wait_many="ok",
        ),
        note="a single unreadable answer ends a single read (get, scale_to_zero, delete) with "
        "ResponseValidationError; waits poll through up to three in a row, and a POST answered "
        "with an unreadable 2xx is read back (the deployment, or the hot-load status) before "
        "anything is re-sent.",
        inject=body_fault("{'replicas': [nan, }"),
    ),
    Row(
        "valid JSON of the wrong shape (x1)",
        everywhere(
            "ResponseValidationError",
            wait_for_ready="ok",
            hotload_and_wait="HotloadTimeoutError",
            warmup="ok",
            scale_to_zero="ok",
            delete="DeletionTimeoutError",
            wait_for_ready_many="ok",
            hotload_and_wait_many="FleetError[HotloadTimeoutError]",
        ),
        inject=plane_fault("wrong_shape", times=1),
        note="warm-up and scale-to-zero do not need the body of a 2xx answer. The fault answers "
        "the DELETE with a 2xx in the server's place, so nothing is deleted: delete(wait=True) "
        "says so at its deadline with the state it last saw (READY). It answers the hot-load POST "
        "the same way, so nothing is loaded; a status that never mentions the snapshot cannot be "
        "told from one that lags the POST, and a POST is never re-sent without evidence that the "
        "load was lost, so the wait ends at its deadline with the last status.",
    ),
    Row(
        "unknown deployment state (x3)",
        only(
            get="ok",
            create_or_get="ok",
            wait_for_ready="ok",
            scale_to_zero="ok",
            delete="ok",
            wait_for_ready_many="ok",
        ),
        inject=unknown_state,
        note="unknown states are kept as sent and waited through, never rejected.",
    ),
    Row(
        "unknown hot-load stage (x6)",
        only(hotload_and_wait="ok", hotload_and_wait_many="ok"),
        inject=unknown_stage,
    ),
    Row(
        "deployment turns FAILED mid-wait",
        only(
            create_or_get="ok",
            wait_for_ready="DeploymentFailedError",
            wait_for_ready_many="FleetError[DeploymentFailedError]",
        ),
        inject=failed_boot,
        note="create_or_get replaces a FAILED deployment (delete, confirm, create).",
    ),
    Row(
        "deployment deleted mid-wait",
        only(
            wait_for_ready="DeploymentNotFoundError",
            hotload_and_wait="DeploymentNotFoundError",
            wait_for_ready_many="FleetError[DeploymentNotFoundError]",
            hotload_and_wait_many="FleetError[DeploymentNotFoundError]",
        ),
        deadline=1.0,
        during=delete_mid_wait,
        plane={"delete_seconds": 0.0},
        note="the gateway answers 404 both while its hot-load manager starts and when the "
        "deployment is gone: on a 404 the hot-load wait asks the control plane, and raises only "
        "if the deployment is gone (or FAILED/DELETING).",
    ),
    Row(
        "hot-load error for our target",
        only(
            hotload_and_wait="HotloadFailedError",
            hotload_and_wait_many="FleetError[HotloadFailedError]",
        ),
        inject=plane_fault("hotload_error", identity=TARGET, times=None),
    ),
    Row(
        "stale hot-load error for an older target",
        only(hotload_and_wait="ok", hotload_and_wait_many="ok"),
        inject=plane_fault("stale_error", identity="snap-older", times=None),
    ),
    Row(
        "replicas disagree (one lags 0.3 s)",
        only(hotload_and_wait="ok", hotload_and_wait_many="ok"),
        inject=plane_fault("replica_disagree", seconds=0.3, times=None),
        replicas=2,
    ),
    Row(
        "replicas disagree (one never finishes)",
        only(
            hotload_and_wait="HotloadTimeoutError",
            hotload_and_wait_many="FleetError[HotloadTimeoutError]",
        ),
        deadline=1.0,
        inject=plane_fault("replica_disagree", seconds=math.inf, times=None),
        replicas=2,
    ),
    Row(
        "server restart loses the in-flight hot-load",
        only(hotload_and_wait="ok", hotload_and_wait_many="ok"),
        deadline=5.0,
        during=restart_server,
        plane={"hotload_seconds": 30.0},
        transports=("loopback",),
        note="the restarted server reports idle replicas that no longer mention the snapshot a "
        "replica was loading: that is evidence the load was lost (a status that merely lags the "
        "POST is not). After three such polls (and at least a second) hotload_and_wait sends the "
        "POST again, at most twice. A delta re-sent to a server that lost the chain gets its 400.",
    ),
    Row(
        "endless body (x1)",
        everywhere(
            "ResponseTooLargeError",
            wait_for_ready="ok",
            create_or_get="ok",
            hotload_and_wait="ok",
            warmup="ok",
            wait_for_ready_many="ok",
            hotload_and_wait_many="ok",
        ),
        deadline=3.0,
        inject=plane_fault("endless_body", times=1),
        transports=("loopback",),
        note="the server streams JSON that never ends. Reads stop at the response size limit "
        "(`max_response_bytes`, 2 MiB by default) with ResponseTooLargeError, memory bounded. "
        "A wait polls through one such answer, warm-up tries again, a create or hot-load reads "
        "back what it did; a single read, scale or delete reports it. In process, httpx's ASGI "
        "transport buffers whole bodies, so this row runs over loopback only.",
    ),
    Row(
        "oversized body, 64 MiB (x1)",
        everywhere(
            "ResponseTooLargeError",
            wait_for_ready="ok",
            create_or_get="ok",
            hotload_and_wait="ok",
            warmup="ok",
            wait_for_ready_many="ok",
            hotload_and_wait_many="ok",
        ),
        inject=plane_fault("oversized_body", size=64 * 2**20, times=1),
        transports=("loopback",),
        note="the answer is valid JSON padded past the size limit (the request took effect).",
    ),
    Row(
        "gzip bomb, 1 GiB inflated (x1)",
        everywhere(
            "ResponseTooLargeError",
            wait_for_ready="ok",
            create_or_get="ok",
            hotload_and_wait="ok",
            warmup="ok",
            wait_for_ready_many="ok",
            hotload_and_wait_many="ok",
        ),
        inject=plane_fault("gzip_bomb", size=2**30, times=1),
        transports=("loopback",),
        note="about 1 MB on the wire with content-encoding gzip; the limit applies to the "
        "decompressed size.",
    ),
    Row(
        "deeply nested JSON, depth 100,000 (x1)",
        everywhere(
            "ResponseValidationError",
            wait_for_ready="ok",
            create_or_get="ok",
            hotload_and_wait="ok",
            warmup="ok",
            wait_for_ready_many="ok",
            hotload_and_wait_many="ok",
        ),
        inject=plane_fault("deep_json", depth=100_000, times=1),
        note="valid JSON too deep to decode is a ResponseValidationError, never a RecursionError.",
    ),
    Row(
        "a replica vanishes from the status list (x3)",
        only(hotload_and_wait="ok", hotload_and_wait_many="ok"),
        inject=lambda ctx: ctx.plane.faults.add(
            Fault("replica_vanish", replica=1, times=3, after=1)
        ),
        replicas=2,
    ),
    Row(
        "a replica vanishes from the status list for good",
        only(
            hotload_and_wait="HotloadTimeoutError",
            hotload_and_wait_many="FleetError[HotloadTimeoutError]",
        ),
        deadline=1.5,
        inject=lambda ctx: ctx.plane.faults.add(
            Fault("replica_vanish", replica=1, times=None, after=1)
        ),
        replicas=2,
        note="every replica a wait has seen must serve the snapshot: one missing from the list "
        "is never success; the timeout names it.",
    ),
    Row(
        "hot-load status lags the POST by 2 s",
        only(hotload_and_wait="ok", hotload_and_wait_many="ok"),
        inject=lambda ctx: ctx.plane.faults.add(Fault("status_lag", seconds=2.0, times=None)),
        note="a status that has not caught up with the POST is not evidence of a lost load: "
        "the wait goes on and the POST is not sent again.",
    ),
    Row(
        "answer lost after the request took effect (x1)",
        everywhere(),
        inject=plane_fault("lost_answer", times=1),
        transports=("inprocess", "loopback"),
        note="a create or hot-load whose answer was lost is read back and found, never re-sent.",
    ),
    Row(
        "503 after the request took effect (x1)",
        everywhere(),
        inject=plane_fault("lost_answer", status=503, times=1),
        note="a 503 does not prove a POST was not acted on: the create or hot-load is read back "
        "first, and found.",
    ),
    Row(
        "added latency 0.2 s (x2)",
        everywhere(),
        inject=plane_fault("latency", seconds=0.2, times=2),
        transports=("inprocess", "loopback"),
    ),
]


def cases() -> Iterator[Any]:
    for index, row in enumerate(ROWS):
        for transport in row.transports:
            slug = re.sub(r"[^a-z0-9]+", "-", row.title.lower()).strip("-")
            yield pytest.param(index, transport, id=f"{slug}[{transport}]")


@pytest.mark.parametrize(("row_index", "transport"), list(cases()))
async def test_fault_row(row_index: int, transport: str, fault_matrix: FaultMatrix) -> None:
    """Every operation of the row ends as documented, in time, saying what it last saw."""
    row = ROWS[row_index]
    if not fault_matrix.ops:
        fault_matrix.ops.extend(OPS)
    if row.note:
        fault_matrix.notes[row.title] = row.note
    refused = row.title.startswith("connection refused")
    before = len(fault_matrix.cells)
    async with anyio.create_task_group() as tg:
        for op in row.expected:
            tg.start_soon(run_cell, row_index, row, op, transport, fault_matrix, refused)
    cells = fault_matrix.cells[before:]
    red = [
        f"{c.op}: expected {c.expected}, got {c.observed}"
        + ("" if c.evidence else " (message does not say what it saw)")
        + f" [{c.detail}]"
        for c in cells
        if not c.green
    ]
    assert not red, "; ".join(red)
