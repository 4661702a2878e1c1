"""The HTTP face of the local control plane: a Starlette app over :mod:`._state`.

One origin serves the control plane (``/v1/...``, camelCase JSON, including the read-only
deployment shapes of :mod:`._shapes`), the hot-load API
(``/hot_load/v1/models/hot_load``, routed by the ``fireworks-deployment`` header, snake_case)
and completions (``/inference/v1/completions``, also ``/v1/completions``). Repeated slashes in
paths are collapsed (the official client sends ``//hot_load/...`` when ``base_url`` ends in ``/``).

Every routed request is counted in :class:`Stats` (before anything else, so a test can assert how
many POSTs reached the server), authenticated (``X-Api-Key`` or ``Authorization: Bearer``), then
exposed to the matching faults, then handled. Bad input is always a 4xx JSON error, never a 500.

``updateMask`` paths are snake_case or camelCase and may be nested
(``autoscaling_policy.scale_to_zero_window``, ``placement.region``). A 400 from the hot-load API
(schema or chain violations) has the gateway's pydantic-style body
``{"error": {"message": ..., "type": "invalid_request_error"}}``; control-plane errors have the
google.rpc-style ``{"error": {"code", "message", "status"}}``.
"""

from __future__ import annotations

import dataclasses
import functools
import itertools
import json
import re
import secrets
import struct
import threading
import time
import zlib
from collections import Counter
from collections.abc import AsyncGenerator, AsyncIterator, Callable
from functools import cached_property
from typing import Any

import anyio
import anyio.lowlevel
import httpx
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route
from starlette.types import Message, Receive, Scope, Send

from ._faults import ANSWER_KINDS, DEFAULT_DEPTH, Fault, FaultRegistry
from ._shapes import DeploymentShape, ShapeCatalog, ShapeVersion
from ._state import (
    AutoscalingPolicy,
    ControlPlaneState,
    DeploymentSpec,
    DeploymentView,
    ErrorKind,
    Event,
    Sample,
    StateError,
)

__all__ = ["LocalApp", "LocalControlPlane", "Stats"]

GRPC_CODES = {
    "OK": 0,
    "CANCELLED": 1,
    "UNKNOWN": 2,
    "INVALID_ARGUMENT": 3,
    "DEADLINE_EXCEEDED": 4,
    "NOT_FOUND": 5,
    "ALREADY_EXISTS": 6,
    "PERMISSION_DENIED": 7,
    "RESOURCE_EXHAUSTED": 8,
    "FAILED_PRECONDITION": 9,
    "ABORTED": 10,
    "UNIMPLEMENTED": 12,
    "INTERNAL": 13,
    "UNAVAILABLE": 14,
    "UNAUTHENTICATED": 16,
}
_HTTP_TO_GRPC = {
    400: "INVALID_ARGUMENT",
    401: "UNAUTHENTICATED",
    403: "PERMISSION_DENIED",
    404: "NOT_FOUND",
    405: "UNIMPLEMENTED",
    408: "DEADLINE_EXCEEDED",
    409: "ABORTED",
    425: "FAILED_PRECONDITION",
    429: "RESOURCE_EXHAUSTED",
    500: "INTERNAL",
    501: "UNIMPLEMENTED",
    502: "UNAVAILABLE",
    503: "UNAVAILABLE",
    504: "DEADLINE_EXCEEDED",
}
_KIND_TO_HTTP: dict[ErrorKind, tuple[int, str]] = {
    "INVALID_ARGUMENT": (400, "INVALID_ARGUMENT"),
    "NOT_FOUND": (404, "NOT_FOUND"),
    "ALREADY_EXISTS": (409, "ALREADY_EXISTS"),
    "ABORTED": (409, "ABORTED"),
    "FAILED_PRECONDITION": (400, "FAILED_PRECONDITION"),
    "UNAVAILABLE": (503, "UNAVAILABLE"),
    "TOO_EARLY": (425, "FAILED_PRECONDITION"),
}
_TERMINAL_FAULTS = frozenset(
    {"status", "drop", "hang", "malformed", "wrong_shape", "endless_body", "deep_json"}
)
_LATENCY = frozenset({"latency"})
_STALE = frozenset({"stale_error"})
_VANISH = frozenset({"replica_vanish"})
# The top-level key a body fault nests its payload under, per endpoint (so it looks plausible).
_BODY_KEYS = {
    "accounts": "accounts",
    "list": "deployments",
    "hotload_status": "replicas",
    "shapes": "deploymentShapes",
    "shape_versions": "deploymentShapeVersions",
}
_ENDLESS_ITEM = b'{"identity":"pod-endless","readiness":false,"loaded_adapters":[]},'
_CHUNK = 64 * 1024
_GZIP_BLOCK = 1 << 20
_REJECT_RESET = frozenset({"reject_reset_prompt_cache"})
_SLASHES = re.compile(r"/{2,}")
_SLASHES_RAW = re.compile(rb"/{2,}")
_DEPLOYMENT_NAME = re.compile(r"accounts/([^/]+)/deployments/([^/#]+)")
_MODEL_REF = re.compile(
    r"(?:(?P<base>[^#]+)#)?accounts/(?P<acct>[^/]+)/deployments/(?P<dep>[^/#]+)"
)
_SCOPE_KEY = "fireworks_deploy.local"
_HOTLOAD_KEYS = frozenset({"identity", "reset_prompt_cache", "incremental_snapshot_metadata"})
_METADATA_KEYS = ("previous_snapshot_identity", "compression_format", "checksum_format")
_SCALE_KEYS = frozenset({"minReplicaCount", "maxReplicaCount"})
_UNSPECIFIED_TRANSITIONS = frozenset({"", "UNSPECIFIED", "HOT_LOAD_TRANSITION_TYPE_UNSPECIFIED"})
_MAX_PAGE_SIZE = 200

# camelCase wire key -> (DeploymentSpec field, value kind)
_WIRE_FIELDS: dict[str, tuple[str, str]] = {
    "displayName": ("display_name", "str"),
    "description": ("description", "str"),
    "baseModel": ("base_model", "str"),
    "minReplicaCount": ("min_replica_count", "int"),
    "maxReplicaCount": ("max_replica_count", "int"),
    "acceleratorType": ("accelerator_type", "str"),
    "acceleratorCount": ("accelerator_count", "int"),
    "deploymentShape": ("deployment_shape", "str"),
    "region": ("region", "str"),
    "placement": ("region", "placement"),
    "enableHotLoad": ("enable_hot_load", "bool"),
    "hotLoadBucketType": ("hot_load_bucket_type", "str"),
    "hotLoadBucketUrl": ("hot_load_bucket_url", "str"),
    "hotLoadTrainerJob": ("hot_load_trainer_job", "str"),
    "hotLoadTransitionType": ("hot_load_transition_type", "transition"),
    "forTraining": ("for_training", "bool"),
    "extraArgs": ("extra_args", "str_list"),
    "extraValues": ("extra_values", "str_map"),
    "annotations": ("annotations", "str_map"),
    "preemptible": ("preemptible", "bool"),
    "autoscalingPolicy": ("autoscaling_policy", "policy"),
}
# snake_case updateMask path -> camelCase body key
_MASK_PATHS = {re.sub(r"(?<!^)(?=[A-Z])", "_", camel).lower(): camel for camel in _WIRE_FIELDS} | {
    "placement.region": "placement"
}
# camelCase autoscalingPolicy key -> (AutoscalingPolicy field, value kind)
_POLICY_WIRE = {
    "scaleUpWindow": ("scale_up_window", "duration"),
    "scaleDownWindow": ("scale_down_window", "duration"),
    "scaleToZeroWindow": ("scale_to_zero_window", "duration"),
    "loadTargets": ("load_targets", "float_map"),
}
_POLICY_SNAKE = {field: camel for camel, (field, _) in _POLICY_WIRE.items()}
_DURATION = re.compile(r"(\d+(?:\.\d{1,9})?)s")
_SPEC_DEFAULTS = {
    f.name: f.default for f in dataclasses.fields(DeploymentSpec) if f.name != "base_model"
}


class _BadRequestError(Exception):
    """Malformed input; answered with a 400."""


class _Connection:
    """Per-request flags shared between a handler and :class:`LocalApp`."""

    __slots__ = ("drop", "socket")

    def __init__(self, socket: bool) -> None:
        self.drop = False
        #: True over a real socket (uvicorn); False in process, where bodies are buffered
        self.socket = socket


class _StreamingResponse(StreamingResponse):
    """A streaming response that closes its generator when the client goes away.

    Starlette cancels the send loop on disconnect but leaves the generator suspended until it is
    garbage collected; closing it at once runs its ``finally`` (and so frees what it holds).
    """

    async def stream_response(self, send: Send) -> None:
        try:
            await super().stream_response(send)
        finally:
            iterator = self.body_iterator
            if isinstance(iterator, AsyncGenerator):
                with anyio.CancelScope(shield=True):
                    await iterator.aclose()


class Stats:
    """Request counters by endpoint name and by ``(endpoint, deployment_id)``.

    Every routed request is counted when it reaches the server, before authentication and
    faults, whether or not it is answered. ``hotload_identities`` counts hot-load POSTs by
    ``(deployment_id, identity)`` (when the body names one), so a test can assert that each
    snapshot was POSTed at most once.
    """

    def __init__(self) -> None:
        self.requests: Counter[str] = Counter()
        self.by_deployment: Counter[tuple[str, str]] = Counter()
        self.hotload_identities: Counter[tuple[str, str]] = Counter()
        self._lock = threading.Lock()

    @property
    def total(self) -> int:
        """All routed requests since the last reset."""
        return sum(self.requests.values())

    def record(self, endpoint: str, deployment_id: str | None, identity: str | None = None) -> None:
        """Count one request (a hot-load POST also by the identity it names)."""
        with self._lock:
            self.requests[endpoint] += 1
            if deployment_id is not None:
                self.by_deployment[endpoint, deployment_id] += 1
                if identity is not None:
                    self.hotload_identities[deployment_id, identity] += 1

    def reset(self) -> None:
        """Zero every counter."""
        with self._lock:
            self.requests.clear()
            self.by_deployment.clear()
            self.hotload_identities.clear()


def _error(status: int, message: str, grpc: str | None = None, **headers: str) -> JSONResponse:
    name = grpc or _HTTP_TO_GRPC.get(status, "UNKNOWN")
    body = {"error": {"code": GRPC_CODES.get(name, 2), "message": message, "status": name}}
    return JSONResponse(body, status_code=status, headers=headers or None)


def _state_error(exc: StateError) -> JSONResponse:
    status, grpc = _KIND_TO_HTTP[exc.kind]
    return _error(status, exc.message, grpc)


def _gateway_error(message: str, status: int = 400) -> JSONResponse:
    """The gateway's pydantic-style error body (wire-protocol §3)."""
    return JSONResponse(
        {"error": {"message": message, "type": "invalid_request_error"}}, status_code=status
    )


def _pydantic_error(*problems: tuple[str, str]) -> JSONResponse:
    count = len(problems)
    detail = "; ".join(f"{msg}, field: '{loc}'" for msg, loc in problems)
    return _gateway_error(f"{count} validation error{'s' if count > 1 else ''}: {detail}")


def _load_json(raw: bytes) -> Any:
    try:
        return json.loads(raw)
    except ValueError as exc:
        raise _BadRequestError(f"Request body is not valid JSON: {exc}.") from None
    except RecursionError:
        raise _BadRequestError("Request body is nested too deeply.") from None


async def _json_object(request: Request) -> dict[str, Any]:
    raw = await request.body()
    if not raw.strip():
        return {}
    value = _load_json(raw)
    if not isinstance(value, dict):
        raise _BadRequestError("Request body must be a JSON object.")
    return value


def _flag(request: Request, name: str) -> bool:
    return request.query_params.get(name, "").lower() in ("true", "1")


def _convert(key: str, kind: str, value: Any) -> Any:
    """Check and convert one camelCase body value (``None`` means the field's default)."""
    if kind == "str":
        if not isinstance(value, str):
            raise _BadRequestError(f"{key} must be a string, got {json.dumps(value)}.")
        return value
    if kind == "int":
        if isinstance(value, str) and re.fullmatch(r"-?\d+", value):
            return int(value)  # proto3 JSON may encode integers as strings
        if not isinstance(value, int) or isinstance(value, bool):
            raise _BadRequestError(f"{key} must be an integer, got {json.dumps(value)}.")
        return value
    if kind == "bool":
        if not isinstance(value, bool):
            raise _BadRequestError(f"{key} must be a boolean, got {json.dumps(value)}.")
        return value
    if kind == "str_list":
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise _BadRequestError(f"{key} must be a list of strings.")
        return list(value)
    if kind == "str_map":
        if not isinstance(value, dict) or not all(isinstance(v, str) for v in value.values()):
            raise _BadRequestError(f"{key} must be an object of strings.")
        return dict(value)
    if kind == "policy":
        if not isinstance(value, dict):
            raise _BadRequestError(f"{key} must be an object, got {json.dumps(value)}.")
        fields: dict[str, Any] = {}
        for sub, sub_value in value.items():
            camel = _POLICY_SNAKE.get(sub, sub)
            if camel not in _POLICY_WIRE:
                raise _BadRequestError(
                    f"{key} has no field {sub!r}; known: {', '.join(sorted(_POLICY_WIRE))}."
                )
            if sub_value is not None:
                name, sub_kind = _POLICY_WIRE[camel]
                fields[name] = _convert(f"{key}.{camel}", sub_kind, sub_value)
        return AutoscalingPolicy(**fields)
    if kind == "duration":
        match = _DURATION.fullmatch(value) if isinstance(value, str) else None
        if match is None:
            raise _BadRequestError(
                f'{key} must be a duration like "600s", got {json.dumps(value)}.'
            )
        return float(match[1])
    if kind == "float_map":
        if not isinstance(value, dict) or not all(
            isinstance(v, (int, float)) and not isinstance(v, bool) for v in value.values()
        ):
            raise _BadRequestError(f"{key} must be an object of numbers.")
        return {k: float(v) for k, v in value.items()}
    if kind == "placement":
        if not isinstance(value, dict):
            raise _BadRequestError('placement must be an object like {"region": ...}.')
        region = value.get("region")
        if region is not None and not isinstance(region, str):
            raise _BadRequestError("placement.region must be a string.")
        return region
    # transition
    if not isinstance(value, str):
        raise _BadRequestError(f"{key} must be a string, got {json.dumps(value)}.")
    upper = value.strip().upper()
    if upper in _UNSPECIFIED_TRANSITIONS:
        return None
    return upper.removeprefix("HOT_LOAD_TRANSITION_TYPE_")


def _changes(body: dict[str, Any], keys: list[str]) -> dict[str, Any]:
    changes: dict[str, Any] = {}
    for key in keys:
        field, kind = _WIRE_FIELDS[key]
        value = body[key]
        changes[field] = _SPEC_DEFAULTS.get(field) if value is None else _convert(key, kind, value)
    return changes


def _camel(segment: str) -> str:
    head, *rest = segment.split("_")
    return head + "".join(word[:1].upper() + word[1:] for word in rest)


def _member(obj: dict[str, Any], camel: str, snake: str) -> tuple[bool, Any]:
    for key in (camel, snake):
        if key in obj:
            return True, obj[key]
    return False, None


def _mask_changes(body: dict[str, Any], mask: str) -> dict[str, Any]:
    """The changes an ``updateMask`` selects from ``body`` (paths snake or camel, maybe nested)."""
    changes: dict[str, Any] = {}
    known = sorted(_MASK_PATHS) + [f"autoscaling_policy.{f}" for f in sorted(_POLICY_SNAKE)]
    for path in filter(None, (p.strip() for p in mask.split(","))):
        head, _, sub = path.partition(".")
        camel = _camel(head)
        if camel == "autoscalingPolicy" and sub:
            sub_camel = _camel(sub)
            if sub_camel not in _POLICY_WIRE:
                raise _BadRequestError(
                    f"updateMask names unknown field {path!r}; known fields: {', '.join(known)}."
                )
            present, policy = _member(body, camel, head)
            if present and isinstance(policy, dict):
                present, value = _member(policy, sub_camel, _POLICY_WIRE[sub_camel][0])
            if not present:
                raise _BadRequestError(
                    f"updateMask names {path!r} but the body has no "
                    f"'autoscalingPolicy.{sub_camel}' value."
                )
            name, kind = _POLICY_WIRE[sub_camel]
            label = f"autoscalingPolicy.{sub_camel}"
            changes[f"autoscaling_policy.{name}"] = (
                None if value is None else _convert(label, kind, value)
            )
            continue
        key = _MASK_PATHS.get(path)
        if key is None and not sub and camel in _WIRE_FIELDS:
            key = camel
        if key is None and camel == "placement" and _camel(sub) == "region":
            key = "placement"
        if key is None:
            raise _BadRequestError(
                f"updateMask names unknown field {path!r}; known fields: {', '.join(known)}."
            )
        if key not in body:
            raise _BadRequestError(f"updateMask names {path!r} but the body has no {key!r} value.")
        changes.update(_changes(body, [key]))
    return changes


def _spec_from_body(body: dict[str, Any], request: Request) -> DeploymentSpec:
    if body.get("baseModel") in (None, ""):
        raise StateError("INVALID_ARGUMENT", "baseModel is required.")
    known = [key for key in body if key in _WIRE_FIELDS and body[key] is not None]
    known.sort(key=lambda k: k == "placement")  # placement wins over a top-level region
    changes = _changes(body, known)
    if "maxReplicaCount" not in body:
        changes["max_replica_count"] = max(changes.get("min_replica_count", 0), 1)
    return DeploymentSpec(
        **changes,
        skip_shape_validation=_flag(request, "skipShapeValidation"),
        accept_shapeless_risk=_flag(request, "acceptShapelessRisk"),
        disable_speculative_decoding=_flag(request, "disableSpeculativeDecoding"),
    )


def deployment_json(view: DeploymentView) -> dict[str, Any]:
    """The camelCase control-plane representation of a deployment."""
    spec = view.spec
    region = spec.region or "US_VIRGINIA_1"
    out: dict[str, Any] = {
        "name": f"accounts/{view.account}/deployments/{view.deployment_id}",
        "displayName": spec.display_name,
        "description": spec.description,
        "baseModel": spec.base_model,
        "state": view.state,
        "status": {"code": view.status_code, "message": view.status_message},
        "minReplicaCount": spec.min_replica_count,
        "maxReplicaCount": spec.max_replica_count,
        "desiredReplicaCount": view.desired_replicas,
        "replicaCount": view.ready_replicas,
        "replicaStats": {
            "pendingSchedulingReplicaCount": 0,
            "downloadingModelReplicaCount": view.booting_replicas,
            "initializingReplicaCount": 0,
            "readyReplicaCount": view.ready_replicas,
        },
        "acceleratorCount": spec.accelerator_count or 1,
        "placement": {"region": region},
        "region": region,
        "enableHotLoad": spec.enable_hot_load,
        "forTraining": spec.for_training,
        "createTime": view.create_time,
        "updateTime": view.update_time,
    }
    if spec.accelerator_type or not spec.deployment_shape:
        out["acceleratorType"] = spec.accelerator_type or "NVIDIA_H200_141GB"
    optional = {
        "deploymentShape": spec.deployment_shape,
        "hotLoadBucketType": spec.hot_load_bucket_type,
        "hotLoadBucketUrl": spec.hot_load_bucket_url,
        "hotLoadTrainerJob": spec.hot_load_trainer_job,
        "hotLoadTransitionType": spec.hot_load_transition_type,
        "extraArgs": spec.extra_args,
        "extraValues": spec.extra_values,
        "annotations": spec.annotations,
    }
    out.update((k, v) for k, v in optional.items() if v is not None)
    if spec.preemptible:
        out["preemptible"] = True
    policy = spec.autoscaling_policy
    if policy is not None:
        out["autoscalingPolicy"] = {
            camel: f"{value:g}s" if kind == "duration" else value
            for camel, (name, kind) in _POLICY_WIRE.items()
            if (value := getattr(policy, name)) is not None
        }
    return out


def shape_json(
    account: str, shape: DeploymentShape, create_time: str, update_time: str
) -> dict[str, Any]:
    """The camelCase representation of a deployment shape."""
    out: dict[str, Any] = {
        "name": f"accounts/{account}/deploymentShapes/{shape.shape_id}",
        "displayName": shape.display_name,
        "description": shape.description,
        "baseModel": shape.base_model,
        "acceleratorType": shape.accelerator_type,
        "acceleratorCount": shape.accelerator_count,
        "precision": shape.precision,
        "presetType": shape.preset_type,
        "createTime": create_time,
        "updateTime": update_time,
    }
    if shape.max_context_length:
        out["maxContextLength"] = shape.max_context_length
    return out


def shape_version_json(account: str, shape_id: str, version: ShapeVersion) -> dict[str, Any]:
    """The camelCase representation of a deployment shape version."""
    name = f"accounts/{account}/deploymentShapes/{shape_id}"
    return {
        "name": f"{name}/versions/{version.version_id}",
        "createTime": version.create_time,
        "snapshot": shape_json(account, version.snapshot, version.create_time, version.create_time),
        "validated": version.validated,
        "latestValidated": version.latest_validated,
        "public": version.public,
    }


def _token_text(token: int) -> str:
    return f" tok{token}"


class LocalApp:
    """The ASGI app: collapses duplicate slashes, then runs the Starlette router.

    It also carries out the ``drop`` fault, which needs the server's raw ``send``: over uvicorn
    the socket is closed with no response; in-process it raises ``httpx.RemoteProtocolError``,
    which ``httpx.ASGITransport`` passes to the caller.
    """

    def __init__(self, plane: LocalControlPlane) -> None:
        self._plane = plane
        self._state = plane.state
        self._faults = plane.faults
        self._stats = plane.stats
        self._shapes_catalog = plane.shapes
        self._ids = itertools.count(1)
        not_found = {404: self._not_found, 405: self._not_allowed}
        self.starlette = Starlette(
            routes=[
                Route("/v1/accounts", self._accounts, methods=["GET"]),
                Route("/v1/accounts/{account}/deployments", self._list, methods=["GET"]),
                Route("/v1/accounts/{account}/deployments", self._create, methods=["POST"]),
                Route("/v1/accounts/{account}/deployments/{dep}", self._get, methods=["GET"]),
                Route("/v1/accounts/{account}/deployments/{dep}", self._patch, methods=["PATCH"]),
                Route("/v1/accounts/{account}/deployments/{dep}", self._delete, methods=["DELETE"]),
                Route("/v1/accounts/{account}/deploymentShapes", self._shapes, methods=["GET"]),
                Route(
                    "/v1/accounts/{account}/deploymentShapes/{shape}",
                    self._shape,
                    methods=["GET"],
                ),
                Route(
                    "/v1/accounts/{account}/deploymentShapes/{shape}/versions",
                    self._shape_versions,
                    methods=["GET"],
                ),
                Route(
                    "/v1/accounts/{account}/deploymentShapes/{shape}/versions/{version}",
                    self._shape_version,
                    methods=["GET"],
                ),
                Route("/hot_load/v1/models/hot_load", self._hotload, methods=["POST"]),
                Route("/hot_load/v1/models/hot_load", self._hotload_status, methods=["GET"]),
                Route("/inference/v1/completions", self._completions, methods=["POST"]),
                Route("/v1/completions", self._completions, methods=["POST"]),
            ],
            exception_handlers=not_found,  # type: ignore[arg-type]
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """ASGI entry point."""
        if scope["type"] != "http":
            await self.starlette(scope, receive, send)
            return
        path: str = scope["path"]
        if "//" in path:
            scope = dict(scope)
            scope["path"] = _SLASHES.sub("/", path)
            if scope.get("raw_path"):
                scope["raw_path"] = _SLASHES_RAW.sub(b"/", scope["raw_path"])
        conn = _Connection(socket=_raw_transport(send) is not None)
        scope[_SCOPE_KEY] = conn

        async def guarded_send(message: Message) -> None:
            if not conn.drop:
                await send(message)

        await self.starlette(scope, receive, guarded_send)
        if conn.drop:
            await _drop_connection(send)

    # -- plumbing ------------------------------------------------------------------------------

    async def _not_found(self, request: Request, exc: HTTPException) -> Response:
        return _error(404, f"No route for {request.method} {request.url.path}.")

    async def _not_allowed(self, request: Request, exc: HTTPException) -> Response:
        return _error(405, f"Method {request.method} is not allowed on {request.url.path}.")

    def _check_auth(self, request: Request) -> Response | None:
        headers = request.headers
        keys = [headers.get("x-api-key", "").strip()]
        auth = headers.get("authorization", "")
        if auth[:7].lower() == "bearer ":
            keys.append(auth[7:].strip())
        presented = [k for k in keys if k]
        if not presented:
            return _error(401, "Missing API key: send X-Api-Key or Authorization: Bearer <key>.")
        expected = self._plane.api_key
        if expected is None or any(secrets.compare_digest(k, expected) for k in presented):
            return None
        return _error(401, "Invalid API key: check FIREWORKS_API_KEY.")

    async def _run(
        self,
        request: Request,
        endpoint: str,
        deployment_id: str | None,
        handle: Callable[[], Response],
        identity: str | None = None,
    ) -> Response:
        self._stats.record(endpoint, deployment_id, identity)
        denied = self._check_auth(request)
        if denied is not None:
            return denied
        spoil: Fault | None = None
        if self._faults:
            delay = sum(
                f.seconds if f.seconds is not None else 1.0
                for f in self._faults.take_all(_LATENCY, endpoint, deployment_id)
            )
            if delay:
                await anyio.sleep(delay)
            fault = self._faults.take(_TERMINAL_FAULTS, endpoint, deployment_id)
            if fault is not None:
                return await self._fault_response(request, endpoint, fault)
            spoil = self._faults.take(ANSWER_KINDS, endpoint, deployment_id)
        try:
            response = handle()
        except StateError as exc:
            response = _state_error(exc)
        except _BadRequestError as exc:
            response = _error(400, str(exc))
        if spoil is not None:
            return self._spoil(request, endpoint, spoil, response)
        return response

    def _spoil(self, request: Request, endpoint: str, fault: Fault, response: Response) -> Response:
        """Answer faults: the request took effect; its answer is lost, oversized or a bomb."""
        if fault.kind == "lost_answer":
            if fault.status is not None:
                message = f"Injected fault: the answer of {endpoint} was lost after it was applied."
                return _error(fault.status, message)
            request.scope[_SCOPE_KEY].drop = True
            return Response(b"")
        body = bytes(response.body)
        size = fault.body_size
        headers = {
            k: v
            for k, v in response.headers.items()
            if k.lower() not in ("content-length", "content-encoding")
        }
        if fault.kind == "oversized_body":
            parts, length = _padded(body, size)
        else:  # gzip_bomb
            parts, length = _gzip_padded(body, size)
            headers["content-encoding"] = "gzip"
        headers["content-length"] = str(length)
        return _StreamingResponse(
            parts, status_code=response.status_code, headers=headers, media_type=None
        )

    async def _fault_response(self, request: Request, endpoint: str, fault: Fault) -> Response:
        if fault.kind == "status":
            headers = {}
            if fault.retry_after is not None:
                headers["Retry-After"] = f"{fault.retry_after:g}"
            status = fault.http_status
            if fault.body is not None:
                return Response(fault.body, status, headers, media_type="application/json")
            message = f"Injected fault: HTTP {status} on {endpoint}."
            return _error(status, message, **headers)
        key = _BODY_KEYS.get(endpoint, "name").encode()
        if fault.kind == "endless_body":
            conn: _Connection = request.scope[_SCOPE_KEY]
            limit = None if conn.socket else fault.body_size
            return _StreamingResponse(
                _endless(b'{"%s":[' % key, fault, limit), media_type="application/json"
            )
        if fault.kind == "deep_json":
            depth = fault.depth if fault.depth is not None else DEFAULT_DEPTH
            nested = b'{"%s":%s%s}' % (key, b"[" * depth, b"]" * depth)
            return Response(nested, 200, media_type="application/json")
        if fault.kind == "drop":
            request.scope[_SCOPE_KEY].drop = True
            return Response(b"")
        if fault.kind == "hang":
            seconds = 3600.0 if fault.seconds is None else fault.seconds
            with anyio.move_on_after(seconds):
                while (await request.receive())["type"] != "http.disconnect":
                    pass
            return _error(504, f"Injected fault: {endpoint} hung for {seconds:g}s.")
        if fault.kind == "malformed":
            body = fault.body if fault.body is not None else '{"replicas": [{"identity": "pod-'
            return Response(body, 200, media_type="application/json")
        # wrong_shape
        if fault.body is not None:
            return Response(fault.body, 200, media_type="application/json")
        shapes: dict[str, Any] = {
            "hotload_status": {"replicas": {"identity": "pod-0"}},
            "accounts": {"accounts": "local"},
        }
        return JSONResponse(shapes.get(endpoint, ["unexpected", "shape"]))

    # -- control plane -------------------------------------------------------------------------

    async def _accounts(self, request: Request) -> Response:
        def handle() -> Response:
            account = {
                "name": f"accounts/{self._state.account}",
                "displayName": self._state.account,
                "accountType": "ACCOUNT_TYPE_UNSPECIFIED",
                "state": "READY",
                "createTime": self._state.create_time,
                "updateTime": self._state.create_time,
            }
            return JSONResponse({"accounts": [account], "nextPageToken": ""})

        return await self._run(request, "accounts", None, handle)

    async def _list(self, request: Request) -> Response:
        account = request.path_params["account"]

        def handle() -> Response:
            size = _page_size(request.query_params.get("pageSize", ""))
            token = request.query_params.get("pageToken", "")
            views, next_token = self._state.list_deployments(account, size, token)
            body: dict[str, Any] = {
                "deployments": [deployment_json(v) for v in views],
                "nextPageToken": next_token,
            }
            if not views and not token:
                body["totalSize"] = 0
            return JSONResponse(body)

        return await self._run(request, "list", None, handle)

    async def _create(self, request: Request) -> Response:
        account = request.path_params["account"]
        deployment_id = request.query_params.get("deploymentId", "")
        try:
            body: dict[str, Any] | None = await _json_object(request)
            problem = None
        except _BadRequestError as exc:
            body, problem = None, exc

        def handle() -> Response:
            if body is None:
                raise problem or _BadRequestError("Request body is required.")
            spec = _spec_from_body(body, request)
            view = self._state.create(account, deployment_id, spec)
            return JSONResponse(deployment_json(view))

        return await self._run(request, "create", deployment_id or None, handle)

    async def _get(self, request: Request) -> Response:
        account, dep = request.path_params["account"], request.path_params["dep"]
        return await self._run(
            request,
            "get",
            dep,
            lambda: JSONResponse(deployment_json(self._state.get(account, dep))),
        )

    async def _patch(self, request: Request) -> Response:
        account, dep = request.path_params["account"], request.path_params["dep"]
        mask = ",".join(request.query_params.getlist("updateMask"))
        try:
            body: dict[str, Any] | None = await _json_object(request)
            problem = None
        except _BadRequestError as exc:
            body, problem = None, exc
        scale = not mask and body is not None and bool(body) and set(body) <= _SCALE_KEYS

        def handle() -> Response:
            if body is None:
                raise problem or _BadRequestError("Request body is required.")
            if mask:
                changes = _mask_changes(body, mask)
            else:
                changes = _changes(body, [key for key in body if key in _WIRE_FIELDS])
            view = self._state.update(account, dep, changes)
            return JSONResponse(deployment_json(view))

        return await self._run(request, "scale" if scale else "update", dep, handle)

    async def _delete(self, request: Request) -> Response:
        account, dep = request.path_params["account"], request.path_params["dep"]

        def handle() -> Response:
            self._state.delete(account, dep, ignore_checks=_flag(request, "ignoreChecks"))
            return JSONResponse({})

        return await self._run(request, "delete", dep, handle)

    # -- control plane: deployment shapes -------------------------------------------------------

    async def _shapes(self, request: Request) -> Response:
        account = request.path_params["account"]

        def handle() -> Response:
            shapes = [shape_json(account, *s) for s in self._shapes_catalog.list_shapes(account)]
            return JSONResponse(
                {"deploymentShapes": shapes, "nextPageToken": "", "totalSize": len(shapes)}
            )

        return await self._run(request, "shapes", None, handle)

    async def _shape(self, request: Request) -> Response:
        account, shape_id = request.path_params["account"], request.path_params["shape"]

        def handle() -> Response:
            return JSONResponse(shape_json(account, *self._shapes_catalog.get(account, shape_id)))

        return await self._run(request, "shape", None, handle)

    async def _shape_versions(self, request: Request) -> Response:
        account, shape_id = request.path_params["account"], request.path_params["shape"]

        def handle() -> Response:
            params = request.query_params
            versions, token = self._shapes_catalog.list_versions(
                account,
                shape_id,
                filter_text=params.get("filter", ""),
                order_by=params.get("orderBy", params.get("order_by", "")),
                page_size=_page_size(params.get("pageSize", params.get("page_size", ""))),
                page_token=params.get("pageToken", params.get("page_token", "")),
            )
            return JSONResponse(
                {
                    "deploymentShapeVersions": [
                        shape_version_json(account, shape_id, v) for v in versions
                    ],
                    "nextPageToken": token,
                }
            )

        return await self._run(request, "shape_versions", None, handle)

    async def _shape_version(self, request: Request) -> Response:
        params = request.path_params
        account, shape_id, version_id = params["account"], params["shape"], params["version"]

        def handle() -> Response:
            version = self._shapes_catalog.version(account, shape_id, version_id)
            return JSONResponse(shape_version_json(account, shape_id, version))

        return await self._run(request, "shape_version", None, handle)

    # -- gateway: hot-load -------------------------------------------------------------------

    @staticmethod
    def _route(request: Request) -> tuple[str, str, str]:
        name = request.headers.get("fireworks-deployment", "").strip()
        model = request.headers.get("fireworks-model", "").strip()
        if not name:
            raise _BadRequestError(
                "Missing fireworks-deployment header (accounts/<account>/deployments/<id>)."
            )
        match = _DEPLOYMENT_NAME.fullmatch(name)
        if match is None:
            raise _BadRequestError(
                f"fireworks-deployment {name!r} is not of the form "
                "accounts/<account>/deployments/<id>."
            )
        if not model:
            raise _BadRequestError("Missing fireworks-model header (the deployment's base model).")
        return match[1], match[2], model

    @staticmethod
    def _routed_id(request: Request) -> str | None:
        match = _DEPLOYMENT_NAME.fullmatch(request.headers.get("fireworks-deployment", "").strip())
        return match[2] if match else None

    async def _hotload(self, request: Request) -> Response:
        raw = await request.body()
        deployment_id = self._routed_id(request)
        try:
            body: Any = _load_json(raw) if raw.strip() else None
            unreadable = False
        except _BadRequestError:
            body, unreadable = None, True
        named = body.get("identity") if isinstance(body, dict) else None

        def handle() -> Response:
            account, dep, model = self._route(request)
            if unreadable:
                return _pydantic_error(("JSON decode error", "body"))
            if not isinstance(body, dict):
                return _pydantic_error(("Input should be a valid dictionary", "body"))
            problems = _hotload_problems(body)
            if problems:
                return _pydantic_error(*problems)
            if "reset_prompt_cache" in body and self._faults.take(_REJECT_RESET, "hotload", dep):
                return _pydantic_error(("Extra inputs are not permitted", "reset_prompt_cache"))
            meta = body.get("incremental_snapshot_metadata")
            try:
                result = self._state.hotload(
                    account,
                    dep,
                    model,
                    body["identity"],
                    previous_snapshot_identity=meta["previous_snapshot_identity"] if meta else None,
                    compression_format=meta["compression_format"] if meta else None,
                    checksum_format=meta["checksum_format"] if meta else None,
                    delta=meta is not None,
                )
            except StateError as exc:
                if exc.kind == "INVALID_ARGUMENT":
                    return _gateway_error(exc.message)
                raise
            return JSONResponse({"identity": body["identity"], "result": result})

        identity = named if isinstance(named, str) else None
        return await self._run(request, "hotload", deployment_id, handle, identity)

    async def _hotload_status(self, request: Request) -> Response:
        deployment_id = self._routed_id(request)

        def handle() -> Response:
            account, dep, model = self._route(request)
            replicas = self._state.hotload_status(account, dep, model)
            stale = self._faults.take(_STALE, "hotload_status", dep) if replicas else None
            if stale is not None:
                target = stale.identity or "stale-snapshot"
                replicas = self._state.hotload_status(
                    account, dep, model, stale_error_target=target
                )
            vanish = self._faults.take(_VANISH, "hotload_status", dep) if replicas else None
            if vanish is not None:
                gone = (vanish.replica or 0) % len(replicas)
                replicas = replicas[:gone] + replicas[gone + 1 :]
            return JSONResponse(
                {
                    "replicas": [
                        {
                            "identity": r.identity,
                            "readiness": r.readiness,
                            "current_snapshot_identity": r.current_snapshot_identity,
                            "loading_state": {
                                "stage": r.stage,
                                "target_snapshot_identity": r.target_snapshot_identity,
                            },
                            "loaded_adapters": [],
                        }
                        for r in replicas
                    ]
                }
            )

        return await self._run(request, "hotload_status", deployment_id, handle)

    # -- gateway: completions ----------------------------------------------------------------

    async def _completions(self, request: Request) -> Response:
        raw = await request.body()
        try:
            body: Any = _load_json(raw) if raw.strip() else None
            problem: _BadRequestError | None = None
        except _BadRequestError as exc:
            body, problem = None, exc
        match = None
        if isinstance(body, dict) and isinstance(body.get("model"), str):
            match = _MODEL_REF.fullmatch(body["model"])

        def handle() -> Response:
            if problem is not None:
                raise problem
            if not isinstance(body, dict):
                raise _BadRequestError("Request body must be a JSON object.")
            return self._complete(body, match)

        return await self._run(request, "completions", match["dep"] if match else None, handle)

    def _complete(self, body: dict[str, Any], match: re.Match[str] | None) -> Response:
        model = body.get("model")
        if not isinstance(model, str) or not model:
            raise _BadRequestError("model is required (accounts/<account>/deployments/<id>).")
        if match is None:
            raise StateError("NOT_FOUND", f"Model {model!r} not found on this local gateway.")
        prompt_value = body.get("prompt")
        if isinstance(prompt_value, str):
            prompt = list(prompt_value.encode())
        elif isinstance(prompt_value, list) and all(
            isinstance(t, int) and not isinstance(t, bool) for t in prompt_value
        ):
            prompt = list(prompt_value)
        else:
            raise _BadRequestError("prompt must be a string or a list of token ids.")
        max_tokens = _int_param(body, "max_tokens", 16, 0, 1 << 16)
        n = _int_param(body, "n", 1, 1, 128)
        stream = body.get("stream", False)
        if not isinstance(stream, bool):
            raise _BadRequestError("stream must be a boolean.")
        logprobs = body.get("logprobs")
        if logprobs is not None and not isinstance(logprobs, (bool, int)):
            raise _BadRequestError("logprobs must be a boolean or an integer.")
        stop = body.get("stop")
        stops = [stop] if isinstance(stop, str) else stop
        if stops is not None and (
            not isinstance(stops, list) or not all(isinstance(s, str) for s in stops)
        ):
            raise _BadRequestError("stop must be a string or a list of strings.")
        account, dep = match["acct"], match["dep"]
        if match["base"] is not None:
            base = self._state.get(account, dep).spec.base_model
            if match["base"] != base:
                raise _BadRequestError(
                    f"Model {model!r} routes to a deployment of {base!r}, not {match['base']!r}."
                )
        samples = self._state.sample(account, dep, prompt, max_tokens, n)
        choices = [
            _choice(i, s, prompt, stops or [], bool(logprobs)) for i, s in enumerate(samples)
        ]
        completion_tokens = sum(len(c["raw_output"]["completion_token_ids"]) for c in choices)
        usage = {
            "prompt_tokens": len(prompt),
            "completion_tokens": completion_tokens,
            "total_tokens": len(prompt) + completion_tokens,
        }
        headers = {
            "fireworks-backend-host": samples[0].pod,
            "fireworks-deployment": f"accounts/{account}/deployments/{dep}",
            "fireworks-prompt-tokens": str(len(prompt)),
            "x-local-snapshot-identity": samples[0].snapshot or "",
        }
        cid = f"cmpl-{next(self._ids):08x}"
        created = int(time.time())
        if not stream:
            out = {
                "id": cid,
                "object": "text_completion",
                "created": created,
                "model": model,
                "choices": choices,
                "usage": usage,
            }
            if body.get("perf_metrics_in_response"):
                out["perf_metrics"] = {"num-concurrent-requests": "1"}
            return JSONResponse(out, headers=headers)
        return Response(
            _sse(cid, created, model, choices, usage),
            media_type="text/event-stream",
            headers={**headers, "cache-control": "no-cache"},
        )


def _page_size(raw: str) -> int:
    """``pageSize``: default 50, at most 200 (larger values are coerced), never negative."""
    try:
        size = int(raw or "50")
    except ValueError:
        raise _BadRequestError(f"pageSize must be an integer, got {raw!r}.") from None
    if size < 0:
        raise _BadRequestError(f"pageSize must be >= 0, got {size}.")
    return min(size or 50, _MAX_PAGE_SIZE)


async def _endless(prefix: bytes, fault: Fault, limit: int | None) -> AsyncIterator[bytes]:
    """JSON that never ends; past ``limit`` bytes (in process) it stops sending and waits.

    Each chunk is followed by a checkpoint: uvicorn's ``send`` returns at once without awaiting
    once the client is gone, and the loop must run to notice the disconnect.
    """
    chunk = _ENDLESS_ITEM * (_CHUNK // len(_ENDLESS_ITEM))
    fault.open_streams += 1
    try:
        yield prefix
        sent = len(prefix)
        while limit is None or sent < limit:
            yield chunk
            sent += len(chunk)
            await anyio.lowlevel.checkpoint()
        await anyio.sleep_forever()
    finally:
        fault.open_streams -= 1


def _pad_split(body: bytes) -> tuple[bytes, bytes]:
    """Where whitespace may go: after an object's ``{``, else before the whole body."""
    return (body[:1], body[1:]) if body.startswith(b"{") else (b"", body)


def _padded(body: bytes, size: int) -> tuple[AsyncIterator[bytes], int]:
    """``body`` with whitespace to ``size`` bytes, streamed in chunks (no big buffer)."""
    head, tail = _pad_split(body)
    pad = max(0, size - len(body))

    async def parts() -> AsyncIterator[bytes]:
        yield head
        block = b" " * _CHUNK
        left = pad
        while left:
            step = min(left, _CHUNK)
            yield block[:step]
            left -= step
            await anyio.lowlevel.checkpoint()  # see _endless
        yield tail

    return parts(), len(body) + pad


@functools.cache
def _deflated_block() -> bytes:
    """Raw deflate of ``_GZIP_BLOCK`` spaces after a full flush: repeatable back to back."""
    compressor = zlib.compressobj(9, zlib.DEFLATED, -15)
    compressor.compress(b"{")
    compressor.flush(zlib.Z_FULL_FLUSH)
    return compressor.compress(b" " * _GZIP_BLOCK) + compressor.flush(zlib.Z_FULL_FLUSH)


def _gzip_padded(body: bytes, size: int) -> tuple[AsyncIterator[bytes], int]:
    """``body`` padded to ``size`` bytes, gzip-compressed (~1000:1), with its compressed length.

    Deflate output after a full flush does not depend on earlier input, so one compressed block
    of spaces is repeated; the CRC of the whole is computed as the blocks go out.
    """
    head, tail = _pad_split(body)
    pad = max(0, size - len(body))
    blocks, rest = divmod(pad, _GZIP_BLOCK)
    compressor = zlib.compressobj(9, zlib.DEFLATED, -15)
    first = compressor.compress(head) + compressor.flush(zlib.Z_FULL_FLUSH)
    block = _deflated_block()
    last = compressor.compress(b" " * rest + tail) + compressor.flush(zlib.Z_FINISH)
    header = b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x02\xff"
    length = len(header) + len(first) + blocks * len(block) + len(last) + 8

    async def parts() -> AsyncIterator[bytes]:
        crc = zlib.crc32(head)
        yield header + first
        spaces = b" " * _GZIP_BLOCK
        for _ in range(blocks):
            crc = zlib.crc32(spaces, crc)
            yield block
            await anyio.lowlevel.checkpoint()  # see _endless
        crc = zlib.crc32(tail, zlib.crc32(b" " * rest, crc))
        total = len(head) + pad + len(tail)
        yield last + struct.pack("<II", crc & 0xFFFFFFFF, total & 0xFFFFFFFF)

    return parts(), length


def _int_param(body: dict[str, Any], key: str, default: int, low: int, high: int) -> int:
    value = body.get(key, default)
    if value is None:
        return default
    if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
        raise _BadRequestError(
            f"{key} must be an integer in [{low}, {high}], got {json.dumps(value)}."
        )
    return value


def _hotload_problems(body: dict[str, Any]) -> list[tuple[str, str]]:
    problems = [("Extra inputs are not permitted", key) for key in body if key not in _HOTLOAD_KEYS]
    identity = body.get("identity")
    if identity is None:
        problems.append(("Field required", "identity"))
    elif not isinstance(identity, str) or not identity:
        problems.append(("Input should be a non-empty string", "identity"))
    if "reset_prompt_cache" in body and not isinstance(body["reset_prompt_cache"], bool):
        problems.append(("Input should be a valid boolean", "reset_prompt_cache"))
    meta = body.get("incremental_snapshot_metadata")
    if meta is not None:
        prefix = "incremental_snapshot_metadata"
        if not isinstance(meta, dict):
            problems.append(("Input should be a valid dictionary", prefix))
        else:
            problems.extend(
                ("Extra inputs are not permitted", f"{prefix}.{key}")
                for key in meta
                if key not in _METADATA_KEYS
            )
            for key in _METADATA_KEYS:
                if key not in meta:
                    problems.append(("Field required", f"{prefix}.{key}"))
                elif not isinstance(meta[key], str):
                    problems.append(("Input should be a valid string", f"{prefix}.{key}"))
    return problems


def _choice(
    index: int, sample: Sample, prompt: list[int], stops: list[str], logprobs: bool
) -> dict[str, Any]:
    text = ""
    tokens: list[int] = []
    finish = "length"
    for token in sample.token_ids:
        tokens.append(token)
        text += _token_text(token)
        hit = min((i for s in stops if s and (i := text.find(s)) >= 0), default=-1)
        if hit >= 0:
            text = text[:hit]
            finish = "stop"
            break
    choice: dict[str, Any] = {
        "index": index,
        "text": text,
        "logprobs": None,
        "finish_reason": finish,
        "raw_output": {"prompt_token_ids": prompt, "completion_token_ids": tokens},
    }
    if logprobs:
        values = sample.logprobs[: len(tokens)]
        choice["logprobs"] = {
            "tokens": [_token_text(t) for t in tokens],
            "token_logprobs": values,
            "content": [
                {"token": _token_text(t), "token_id": t, "logprob": v, "sampling_logprob": v}
                for t, v in zip(tokens, values, strict=True)
            ],
        }
    return choice


def _sse(
    cid: str, created: int, model: str, choices: list[dict[str, Any]], usage: dict[str, int]
) -> bytes:
    """Render completed choices as an SSE stream: one chunk per token, then ``[DONE]``."""
    parts: list[str] = []
    for c_index, choice in enumerate(choices):
        tokens = choice["raw_output"]["completion_token_ids"]
        content = choice["logprobs"]["content"] if choice["logprobs"] else None
        pieces = [_token_text(t) for t in tokens] or [""]
        pieces[-1] = choice["text"][len("".join(pieces[:-1])) :]
        for t_index, piece in enumerate(pieces):
            last = t_index == len(pieces) - 1
            delta: dict[str, Any] = {
                "index": choice["index"],
                "text": piece,
                "logprobs": {"content": [content[t_index]]} if content else None,
                "finish_reason": choice["finish_reason"] if last else None,
            }
            if last:
                delta["raw_output"] = choice["raw_output"]
            chunk: dict[str, Any] = {
                "id": cid,
                "object": "text_completion",
                "created": created,
                "model": model,
                "choices": [delta],
            }
            if last and c_index == len(choices) - 1:
                chunk["usage"] = usage
            parts.append(f"data: {json.dumps(chunk, separators=(',', ':'))}\n\n")
    parts.append("data: [DONE]\n\n")
    return "".join(parts).encode()


def _raw_transport(send: Send) -> Any:
    """The asyncio transport under uvicorn's ``send``, or None in process."""
    transport = getattr(getattr(send, "__self__", None), "transport", None)
    return transport if transport is not None and hasattr(transport, "abort") else None


async def _drop_connection(send: Send) -> None:
    """Close the client's connection without a response (see :class:`LocalApp`)."""
    transport = _raw_transport(send)
    if transport is not None:
        transport.abort()
        for _ in range(3):  # let the server notice, so it neither logs nor answers
            await anyio.lowlevel.checkpoint()
        return
    raise httpx.RemoteProtocolError("Server disconnected without sending a response.")


class LocalControlPlane:
    """A stateful, in-memory Fireworks control plane and gateway for tests and benchmarks.

    ``plane.app`` is the ASGI app, ``plane.transport()`` an ``httpx.ASGITransport`` over it, and
    :class:`~fireworks_deploy.local.LocalServer` serves it on a loopback port.
    """

    def __init__(
        self,
        account: str = "local",
        boot_seconds: float = 2.0,
        boot_jitter: float = 0.0,
        hotload_seconds: float = 1.0,
        update_seconds: float | None = None,
        delete_seconds: float = 0.2,
        api_key: str | None = None,
        seed: int = 0,
        clock: Callable[[], float] = time.monotonic,
        *,
        hotload_jitter: float = 0.0,
    ) -> None:
        self.api_key = api_key
        self.faults = FaultRegistry()
        self.stats = Stats()
        #: deployment shapes and versions (seeded; add more with ``plane.shapes.add(...)``)
        self.shapes = ShapeCatalog()
        self.state = ControlPlaneState(
            account=account,
            boot_seconds=boot_seconds,
            boot_jitter=boot_jitter,
            hotload_seconds=hotload_seconds,
            hotload_jitter=hotload_jitter,
            update_seconds=update_seconds,
            delete_seconds=delete_seconds,
            seed=seed,
            clock=clock,
            hooks=self.faults,
        )

    @property
    def account(self) -> str:
        """The one account id."""
        return self.state.account

    @cached_property
    def app(self) -> LocalApp:
        """The ASGI app (built once)."""
        return LocalApp(self)

    def transport(self) -> httpx.ASGITransport:
        """An in-process ``httpx.ASGITransport`` over :attr:`app`."""
        return httpx.ASGITransport(app=self.app)

    @property
    def events(self) -> list[Event]:
        """Every transition so far, in time order (advances all deployments to now first)."""
        self.state.settle_all()
        return sorted(self.state.events, key=lambda e: e.at)

    def event_time(self, kind: str, deployment_id: str, detail: str | None = None) -> float | None:
        """When the latest matching event became true (``detail=None`` matches any detail)."""
        return self.state.event_time(kind, deployment_id, detail)

    def create_deployment(
        self,
        deployment_id: str,
        base_model: str,
        replicas: int = 1,
        *,
        enable_hot_load: bool = True,
        **fields: Any,
    ) -> DeploymentView:
        """Create a deployment directly (no HTTP); ``fields`` are DeploymentSpec fields."""
        spec = DeploymentSpec(
            base_model=base_model,
            min_replica_count=fields.pop("min_replica_count", replicas),
            max_replica_count=fields.pop("max_replica_count", replicas),
            enable_hot_load=enable_hot_load,
            hot_load_bucket_type=fields.pop("hot_load_bucket_type", "FW_HOSTED"),
            **fields,
        )
        return self.state.create(self.account, deployment_id, spec)

    def fail_boot(self, deployment_id: str) -> None:
        """Make the deployment go ``FAILED`` at the end of its boot (now or when created)."""
        if not self.state.fail_boot(deployment_id):
            self.faults.add(Fault("boot_failure", deployment_id=deployment_id))
