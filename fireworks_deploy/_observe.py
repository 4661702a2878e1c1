"""What each public operation did: one log record, an optional span, and a request count.

Every public coroutine of the managers is wrapped by `observed(name)`. When it ends, one record
goes to the `fireworks_deploy._observe` logger with these `extra=` fields:

* `operation`: the method's name (`"hotload_and_wait"`);
* `deployment_id`: the deployment it acted on, or None (fleet operations carry
  `deployment_ids`, a tuple, instead);
* `outcome`: `"ok"`, or the class name of what it raised (`"HotloadTimeoutError"`);
* `elapsed_s`: seconds from the call to its end;
* `requests`: HTTP requests this operation sent (every attempt, retries included).

Levels: DEBUG when it succeeds, and when it is cancelled or interrupted (a `BaseException` that
is not an `Exception`: the caller's own control flow, not a failure); INFO when it raises one of
our errors (the caller gets the exception, and decides how loud it is); WARNING when it raises
anything else, which is a bug. Only a valid deployment id is ever put in a record: never another
argument, never an exception's message, so never the API key.

With `opentelemetry-api` installed (the `otel` extra), each operation also runs in a span named
`fireworks_deploy.<operation>` carrying `fireworks.operation`, `fireworks.deployment_id` (or
`fireworks.deployment_ids`), `fireworks.outcome`, `fireworks.requests` and
`fireworks.elapsed_s`; a failure sets its status to ERROR and records the exception (whose
message our error tree has already cleared of the key). Without the package nothing changes.

Requests are counted per operation with a context variable: `HTTPClient.send_once` calls
`count_request()`, which adds one to the tally of every operation open in the sending task's
context. Tasks started inside an operation (fleet fan-out) inherit its tally. A poll shared by
many waiters (`PollHub`) is sent by one waiter's task and so counts for that waiter's
operation only: `requests` is what this call cost, not what it saw.
"""

from __future__ import annotations

import contextlib
import functools
import inspect
import logging
import math
import time
from collections.abc import Awaitable, Callable, Coroutine, Iterator, Sequence
from contextvars import ContextVar
from typing import TYPE_CHECKING, Any, ParamSpec, TypeVar

from ._errors import FireworksError, InvalidConfigError
from ._models import validate_deployment_id

try:
    from opentelemetry import trace as _otel_trace
except ImportError:  # pragma: no cover - exercised by a test that hides the package
    _otel_trace = None  # type: ignore[assignment]

if TYPE_CHECKING:
    from opentelemetry.trace import Span, Tracer

__all__ = ["RequestTally", "count_request", "counting_requests", "observed"]

logger = logging.getLogger(__name__)

P = ParamSpec("P")
R = TypeVar("R")

#: The parameters a deployment is named by, in the order they are looked for.
_ID_PARAMETERS = ("deployment_id", "deployment", "config")
_FLEET_PARAMETER = "deployment_ids"
SPAN_PREFIX = "fireworks_deploy."

#: Where spans come from; None without opentelemetry-api. A `ProxyTracer` until the
#: application sets a tracer provider, then that provider's tracer.
_tracer: Tracer | None = None if _otel_trace is None else _otel_trace.get_tracer("fireworks_deploy")
_DEFAULT_TRACER = _tracer


class RequestTally:
    """Requests sent while one operation (or one part of it) was open."""

    __slots__ = ("count", "parent")

    def __init__(self, parent: RequestTally | None) -> None:
        self.count = 0
        self.parent = parent


_tally: ContextVar[RequestTally | None] = ContextVar("fireworks_deploy_requests", default=None)


def count_request() -> None:
    """One request is being sent: count it for every open operation of this context."""
    tally = _tally.get()
    while tally is not None:
        tally.count += 1
        tally = tally.parent


class counting_requests:  # noqa: N801 - used as a function: `with counting_requests() as t:`
    """Count the requests sent inside the block (by this task and the tasks it starts).

    Blocks nest: an inner tally's requests also count for the outer ones. A class, not a
    generator: every operation of the SDK opens one.
    """

    __slots__ = ("_tally", "_token")

    def __enter__(self) -> RequestTally:
        self._tally = RequestTally(_tally.get())
        self._token = _tally.set(self._tally)
        return self._tally

    def __exit__(self, *exc: object) -> None:
        _tally.reset(self._token)


def observed(
    operation: str,
) -> Callable[[Callable[P, Awaitable[R]]], Callable[P, Coroutine[Any, Any, R]]]:
    """Decorate a public coroutine method: log (and trace) each call as `operation`.

    The wrapper keeps the method's name, docstring and signature (`functools.wraps`).
    """

    def decorate(func: Callable[P, Awaitable[R]]) -> Callable[P, Coroutine[Any, Any, R]]:
        find_ids = _id_finder(inspect.signature(func))

        @functools.wraps(func)
        async def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
            started = time.monotonic()
            tracer = _active_tracer()
            # The ids are worked out only when a span or a log record needs them.
            ids: _Ids | None = None
            spanning: contextlib.AbstractContextManager[Span | None] = contextlib.nullcontext()
            if tracer is not None:
                ids = find_ids(args, kwargs)
                spanning = _span(tracer, operation, *ids)
            with counting_requests() as tally, spanning as span:
                try:
                    result = await func(*args, **kwargs)
                except BaseException as exc:
                    ids = ids or find_ids(args, kwargs)
                    _report(operation, ids, started, tally, span, exc)
                    raise
                if span is not None or logger.isEnabledFor(logging.DEBUG):
                    ids = ids or find_ids(args, kwargs)
                    _report(operation, ids, started, tally, span, None)
                return result

        return wrapper

    return decorate


_Ids = tuple[str | None, tuple[str, ...] | None]
_IdFinder = Callable[[tuple[Any, ...], dict[str, Any]], _Ids]


def _id_finder(signature: inspect.Signature) -> _IdFinder:
    """How to pick the deployment (or fleet) out of a call's arguments, worked out once."""
    params = list(signature.parameters.values())
    positions = {
        p.name: index
        for index, p in enumerate(params)
        if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)
    }
    names = {p.name for p in params}
    single = next((name for name in _ID_PARAMETERS if name in names), None)
    fleet = _FLEET_PARAMETER if _FLEET_PARAMETER in names else None

    def argument(name: str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        if name in kwargs:
            return kwargs[name]
        index = positions.get(name)
        return args[index] if index is not None and index < len(args) else None

    def find(
        args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> tuple[str | None, tuple[str, ...] | None]:
        deployment_id = None if single is None else _valid_id(argument(single, args, kwargs))
        ids = None if fleet is None else _valid_ids(argument(fleet, args, kwargs))
        return deployment_id, ids

    return find


def _valid_id(value: object) -> str | None:
    """The deployment id `value` names (a str, or an object with `deployment_id`), if valid.

    Anything else is left out of records: an invalid argument could be anything at all.
    """
    if not isinstance(value, str):
        value = getattr(value, "deployment_id", None)
    try:
        return validate_deployment_id(value)
    except InvalidConfigError:
        return None


def _valid_ids(value: object) -> tuple[str, ...] | None:
    if isinstance(value, str) or not isinstance(value, Sequence):
        return None
    ids = tuple(i for i in map(_valid_id, value) if i is not None)
    return ids if len(ids) == len(value) else None


#: While no tracer provider is set, look for one again at most this often (the look-up reads
#: the environment, which costs more than the rest of an operation's bookkeeping).
PROVIDER_RECHECK_S = 1.0
_no_provider_until = -math.inf


def _active_tracer() -> Tracer | None:
    """The tracer to record spans with; None when every span would be a no-op (no
    opentelemetry, or its API with no tracer provider set: one set later takes effect within
    `PROVIDER_RECHECK_S`)."""
    global _no_provider_until  # noqa: PLW0603 - a cache of the provider look-up
    tracer = _tracer
    if tracer is None or tracer is not _DEFAULT_TRACER or _otel_trace is None:
        return tracer
    now = time.monotonic()
    if now < _no_provider_until:
        return None
    if isinstance(_otel_trace.get_tracer_provider(), _otel_trace.ProxyTracerProvider):
        _no_provider_until = now + PROVIDER_RECHECK_S
        return None
    return tracer


@contextlib.contextmanager
def _span(
    tracer: Tracer, operation: str, deployment_id: str | None, fleet: tuple[str, ...] | None
) -> Iterator[Span]:
    attributes: dict[str, str | Sequence[str]] = {"fireworks.operation": operation}
    if deployment_id is not None:
        attributes["fireworks.deployment_id"] = deployment_id
    if fleet is not None:
        attributes["fireworks.deployment_ids"] = fleet
    # Status and exception are set by `_report`, which knows cancellation is not a failure.
    with tracer.start_as_current_span(
        SPAN_PREFIX + operation,
        attributes=attributes,
        record_exception=False,
        set_status_on_exception=False,
    ) as span:
        yield span


def _report(
    operation: str,
    ids: _Ids,
    started: float,
    tally: RequestTally,
    span: Span | None,
    error: BaseException | None,
) -> None:
    deployment_id, fleet = ids
    elapsed = time.monotonic() - started
    outcome = "ok" if error is None else type(error).__name__
    if error is None or not isinstance(error, Exception):
        level = logging.DEBUG
    elif isinstance(error, FireworksError):
        level = logging.INFO
    else:
        level = logging.WARNING
    if span is not None:
        _end_span(span, outcome, tally.count, elapsed, error)
    if not logger.isEnabledFor(level):
        return
    if fleet is not None:
        subject = f" ({len(fleet)} deployments)"
    elif deployment_id is not None:
        subject = f" {deployment_id}"
    else:
        subject = ""
    extra: dict[str, object] = {
        "operation": operation,
        "deployment_id": deployment_id,
        "outcome": outcome,
        "elapsed_s": elapsed,
        "requests": tally.count,
    }
    if fleet is not None:
        extra["deployment_ids"] = fleet
    logger.log(
        level,
        "%s%s: %s in %.3fs, %d request(s)",
        operation,
        subject,
        outcome,
        elapsed,
        tally.count,
        extra=extra,
    )


def _end_span(
    span: Span, outcome: str, requests: int, elapsed: float, error: BaseException | None
) -> None:
    span.set_attribute("fireworks.outcome", outcome)
    span.set_attribute("fireworks.requests", requests)
    span.set_attribute("fireworks.elapsed_s", elapsed)
    if isinstance(error, Exception) and _otel_trace is not None:
        span.record_exception(error)
        span.set_status(_otel_trace.Status(_otel_trace.StatusCode.ERROR, outcome))
