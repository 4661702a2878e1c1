"""Fault injection for the local control plane.

A :class:`Fault` is scoped by endpoint name and deployment id (``None`` matches any), fires at most
``times`` times (``None``: forever) after skipping the first ``after`` matching occurrences, and
counts ``seen``/``fired`` so a test can assert that it ran.

Specs for :meth:`Fault.parse` (the CLI's ``--fault``) read ``kind[:key=value,...]``, e.g.
``status:endpoint=hotload_status,status=503,times=3``. Endpoint names: ``accounts``, ``list``,
``get``, ``create``, ``update``, ``scale``, ``delete``, ``hotload``, ``hotload_status``,
``completions``, ``shapes``, ``shape``, ``shape_versions``, ``shape_version``.

Request faults are applied by the ASGI app before the handler runs:

``status``      answer ``status`` (default 503) with a Fireworks error body, or ``body``;
                ``retry_after`` adds a ``Retry-After`` header.
``latency``     sleep ``seconds`` (default 1.0), then handle the request normally.
``drop``        close the connection without answering (loopback) / raise
                ``httpx.RemoteProtocolError`` from the app (in-process ``ASGITransport``).
``hang``        never answer: sleep ``seconds`` (default 3600) or until the client disconnects.
``malformed``   answer 200 with a truncated JSON body (or ``body``).
``wrong_shape`` answer 200 with valid JSON of the wrong shape (or ``body``).
``reject_reset_prompt_cache``  a hot-load POST carrying ``reset_prompt_cache`` gets the 400
                pydantic "Extra inputs are not permitted" error for that field.
``endless_body`` answer 200 with JSON that never ends (``{"replicas":[{...},{...},...`` for
                ever), generated chunk by chunk and stopped when the client disconnects. In process
                (``httpx.ASGITransport`` buffers whole bodies) it sends ``size`` bytes (default
                1 MiB) and then never finishes, until the caller gives up.
``deep_json``   answer 200 with valid JSON nested ``depth`` levels deep (default 100000).

Answer faults let the handler run (the request takes effect), then spoil the answer:

``lost_answer``     the answer is lost after the request was applied: the connection is dropped
                    (like ``drop``), or, with ``status=N``, the answer is an ``N`` error instead.
``oversized_body``  the JSON answer is padded with whitespace to ``size`` bytes (default 32 MiB;
                    ``size`` takes ``k``/``m``/``g`` binary suffixes), still valid JSON.
``gzip_bomb``       the same padded answer (default 256 MiB) is sent gzip-compressed
                    (``content-encoding: gzip``, about 1000:1): a small body that inflates to a
                    huge one.

State faults are consulted by the state machine or the status endpoint (the ``endpoint`` scope
does not apply):

``boot_failure``      the deployment goes ``FAILED`` at the end of its boot.
``hotload_error``     the next hot-load (of ``identity``, if given) ends in stage ``error``.
``stale_error``       hot-load status shows a stale ``error`` stage for ``identity`` (default
                      ``"stale-snapshot"``) on idle replicas; one status response per ``times``.
``replica_disagree``  on the next hot-load, replica ``replica`` (default the last) finishes
                      ``seconds`` later than the others (default: never).
``replica_vanish``    the replica at index ``replica`` (default 0) is missing from the hot-load
                      status list, for ``times`` status responses (``times=forever``: for good).
``status_lag``        for ``seconds`` (alias ``lag``; default 1.0) after the next accepted
                      hot-load POST (of ``identity``, if given), status still shows the state from
                      before the POST, with no mention of the new identity.
"""

from __future__ import annotations

import math
import re
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field

from ._state import LoadPlan

__all__ = ["ANSWER_KINDS", "ENDPOINTS", "FAULT_KINDS", "Fault", "FaultRegistry"]

ENDPOINTS = frozenset(
    {
        "accounts",
        "list",
        "get",
        "create",
        "update",
        "scale",
        "delete",
        "hotload",
        "hotload_status",
        "completions",
        "shapes",
        "shape",
        "shape_versions",
        "shape_version",
    }
)
ANSWER_KINDS = frozenset({"lost_answer", "oversized_body", "gzip_bomb"})
REQUEST_KINDS = (
    frozenset(
        {
            "status",
            "latency",
            "drop",
            "hang",
            "malformed",
            "wrong_shape",
            "reject_reset_prompt_cache",
            "endless_body",
            "deep_json",
        }
    )
    | ANSWER_KINDS
)
STATE_KINDS = frozenset(
    {
        "boot_failure",
        "hotload_error",
        "stale_error",
        "replica_disagree",
        "replica_vanish",
        "status_lag",
    }
)
FAULT_KINDS = REQUEST_KINDS | STATE_KINDS
DEFAULT_SIZES = {"endless_body": 1 << 20, "oversized_body": 32 << 20, "gzip_bomb": 256 << 20}
DEFAULT_DEPTH = 100_000

_INT_FIELDS = frozenset({"times", "after", "status", "replica", "size", "depth"})
_FLOAT_FIELDS = frozenset({"retry_after", "seconds"})
_STR_FIELDS = frozenset({"endpoint", "deployment_id", "body", "identity"})
_ALIASES = {"deployment": "deployment_id", "code": "status", "delay": "seconds", "lag": "seconds"}
_SIZE_SUFFIXES = {"": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30}
_SIZE_RE = re.compile(r"(\d+)\s*([kmg]?)(?:i?b)?", re.IGNORECASE)
_FOREVER = frozenset({"none", "forever", "inf", "always"})
_BY_IDENTITY = frozenset({"hotload_error", "status_lag"})


@dataclass(eq=False)
class Fault:
    """One injected misbehaviour; see the module docstring for the kinds."""

    kind: str
    endpoint: str | None = None
    deployment_id: str | None = None
    times: int | None = 1
    after: int = 0
    status: int | None = None
    retry_after: float | None = None
    body: str | None = None
    seconds: float | None = None
    identity: str | None = None
    replica: int | None = None
    size: int | None = None
    depth: int | None = None
    seen: int = field(default=0, init=False)
    fired: int = field(default=0, init=False)
    #: endless_body streams of this fault still being sent (each stops when its client goes)
    open_streams: int = field(default=0, init=False)

    def __post_init__(self) -> None:
        if self.kind not in FAULT_KINDS:
            raise ValueError(
                f"Unknown fault kind {self.kind!r}; use one of {', '.join(sorted(FAULT_KINDS))}."
            )
        if self.endpoint is not None and self.endpoint not in ENDPOINTS:
            raise ValueError(
                f"Unknown endpoint {self.endpoint!r}; use one of {', '.join(sorted(ENDPOINTS))}."
            )
        if self.times is not None and self.times < 0:
            raise ValueError(f"times must be >= 0 or None (forever), got {self.times}.")
        if self.after < 0:
            raise ValueError(f"after must be >= 0, got {self.after}.")
        if self.status is not None and not 100 <= self.status <= 599:
            raise ValueError(f"status must be an HTTP status code, got {self.status}.")
        if self.size is not None and self.size < 0:
            raise ValueError(f"size must be >= 0 bytes, got {self.size}.")
        if self.depth is not None and self.depth < 1:
            raise ValueError(f"depth must be >= 1, got {self.depth}.")
        if self.seconds is not None and self.seconds < 0:
            raise ValueError(f"seconds must be >= 0, got {self.seconds}.")
        if self.retry_after is not None and self.retry_after < 0:
            raise ValueError(f"retry_after must be >= 0, got {self.retry_after}.")

    @property
    def http_status(self) -> int:
        """The status a ``status`` fault answers (503 unless set)."""
        return 503 if self.status is None else self.status

    @property
    def body_size(self) -> int:
        """``size``, or the kind's default number of body bytes."""
        return self.size if self.size is not None else DEFAULT_SIZES.get(self.kind, 1 << 20)

    @property
    def exhausted(self) -> bool:
        """Whether the fault has fired ``times`` times."""
        return self.times is not None and self.fired >= self.times

    @classmethod
    def parse(cls, spec: str) -> Fault:
        """Parse ``"kind[:key=value,...]"``, e.g. ``"status:endpoint=get,status=503,times=3"``.

        Keys are the field names (``deployment`` is an alias of ``deployment_id``, ``lag`` and
        ``delay`` of ``seconds``, ``code`` of ``status``); ``times`` also accepts ``forever``;
        ``seconds`` accepts ``never`` (infinite, for ``replica_disagree``); ``size`` accepts
        binary suffixes (``64k``, ``32M``, ``1GiB``). Values cannot contain commas.
        """
        kind, _, rest = spec.strip().partition(":")
        kind = kind.strip()
        if not kind:
            raise ValueError(f"Fault spec {spec!r} is empty; expected 'kind[:key=value,...]'.")
        kwargs: dict[str, object] = {}
        for item in filter(None, (part.strip() for part in rest.split(","))):
            key, sep, value = item.partition("=")
            key = _ALIASES.get(key.strip(), key.strip())
            value = value.strip()
            if not sep:
                raise ValueError(f"Fault spec {spec!r}: {item!r} is not of the form key=value.")
            try:
                kwargs[key] = _convert(key, value)
            except ValueError as exc:
                raise ValueError(f"Fault spec {spec!r}: {exc}") from None
        try:
            return cls(kind=kind, **kwargs)  # type: ignore[arg-type]
        except ValueError as exc:
            raise ValueError(f"Fault spec {spec!r}: {exc}") from None

    def _matches(self, endpoint: str | None, deployment_id: str | None) -> bool:
        if self.exhausted:
            return False
        if self.endpoint is not None and self.kind in REQUEST_KINDS and self.endpoint != endpoint:
            return False
        return self.deployment_id is None or self.deployment_id == deployment_id


def _convert(key: str, value: str) -> object:
    if key in _INT_FIELDS:
        if key == "times" and value.lower() in _FOREVER:
            return None
        if key == "size":
            match = _SIZE_RE.fullmatch(value)
            if match is None:
                raise ValueError(f"size must be a byte count like 4096 or 32M, got {value!r}.")
            return int(match[1]) * _SIZE_SUFFIXES[match[2].lower()]
        try:
            return int(value)
        except ValueError:
            raise ValueError(f"{key} must be an integer, got {value!r}.") from None
    if key in _FLOAT_FIELDS:
        if key == "seconds" and value.lower() in ("never", "inf"):
            return math.inf
        try:
            return float(value)
        except ValueError:
            raise ValueError(f"{key} must be a number, got {value!r}.") from None
    if key in _STR_FIELDS:
        return value
    known = sorted(_INT_FIELDS | _FLOAT_FIELDS | _STR_FIELDS | set(_ALIASES))
    raise ValueError(f"unknown key {key!r}; use one of {', '.join(known)}.")


class FaultRegistry:
    """The active faults of one control plane; also the state machine's decision hooks."""

    def __init__(self) -> None:
        self._faults: list[Fault] = []
        self._lock = threading.Lock()

    def add(self, fault: Fault | str) -> Fault:
        """Register a fault (or a spec string for :meth:`Fault.parse`) and return it."""
        if isinstance(fault, str):
            fault = Fault.parse(fault)
        with self._lock:
            self._faults.append(fault)
        return fault

    def remove(self, fault: Fault) -> None:
        """Unregister one fault."""
        with self._lock:
            self._faults = [f for f in self._faults if f is not fault]

    def clear(self) -> None:
        """Unregister every fault."""
        with self._lock:
            self._faults = []

    def __iter__(self) -> Iterator[Fault]:
        return iter(list(self._faults))

    def __len__(self) -> int:
        return len(self._faults)

    def __bool__(self) -> bool:
        return bool(self._faults)

    def take(
        self,
        kinds: frozenset[str],
        endpoint: str | None,
        deployment_id: str | None,
        identity: str | None = None,
    ) -> Fault | None:
        """Fire the first matching fault of one of ``kinds``, or return None."""
        if not self._faults:
            return None
        with self._lock:
            for fault in self._faults:
                if fault.kind not in kinds or not fault._matches(endpoint, deployment_id):
                    continue
                if (
                    identity is not None
                    and fault.kind in _BY_IDENTITY
                    and fault.identity not in (None, identity)
                ):
                    continue
                fault.seen += 1
                if fault.seen <= fault.after:
                    continue
                fault.fired += 1
                return fault
        return None

    def take_all(
        self, kinds: frozenset[str], endpoint: str | None, deployment_id: str | None
    ) -> list[Fault]:
        """Fire every matching fault of one of ``kinds`` (e.g. all latency faults)."""
        if not self._faults:
            return []
        fired = []
        with self._lock:
            for fault in self._faults:
                if fault.kind not in kinds or not fault._matches(endpoint, deployment_id):
                    continue
                fault.seen += 1
                if fault.seen > fault.after:
                    fault.fired += 1
                    fired.append(fault)
        return fired

    # -- StateHooks ---------------------------------------------------------------------------

    def boot_fails(self, deployment_id: str) -> bool:
        """Whether a ``boot_failure`` fault fires for this deployment."""
        return self.take(frozenset({"boot_failure"}), "create", deployment_id) is not None

    def hotload_plan(self, deployment_id: str, identity: str) -> LoadPlan:
        """Combine any ``hotload_error``, ``replica_disagree`` and ``status_lag`` faults."""
        if not self._faults:
            return LoadPlan()
        error = self.take(frozenset({"hotload_error"}), "hotload", deployment_id, identity)
        lag = self.take(frozenset({"replica_disagree"}), "hotload", deployment_id)
        hide = self.take(frozenset({"status_lag"}), "hotload", deployment_id, identity)
        status_lag = 0.0
        if hide is not None:
            status_lag = 1.0 if hide.seconds is None else hide.seconds
        if lag is None:
            return LoadPlan(fail=error is not None, status_lag=status_lag)
        return LoadPlan(
            fail=error is not None,
            lagging_replica=-1 if lag.replica is None else lag.replica,
            lag_seconds=math.inf if lag.seconds is None else lag.seconds,
            status_lag=status_lag,
        )
