"""How the command line shows SDK objects: plain JSON-able dicts and human text."""

from __future__ import annotations

from typing import Any

import attrs

from .._errors import (
    APIConnectionError,
    APIError,
    APIStatusError,
    DeploymentFailedError,
    DeploymentNotFoundError,
    FleetError,
    HotloadFailedError,
    NotFoundError,
    ResponseValidationError,
    WaitTimeoutError,
    WarmupError,
)
from .._fleet import FleetResult
from .._models import DeploymentInfo, HotloadStatus, ReplicaStatus, WarmupResult
from .._progress import describe_info, describe_replicas, format_table

__all__ = [
    "deployment_json",
    "deployment_text",
    "deployments_table",
    "error_json",
    "failure_label",
    "failure_summary",
    "fleet_json",
    "hotload_status_json",
    "hotload_status_text",
    "last_seen",
    "one_line",
    "warmup_json",
]


def _plain(obj: Any) -> dict[str, Any]:
    """An attrs instance as a dict, without the raw wire payload."""
    return attrs.asdict(obj, filter=lambda a, _: a.name != "raw", recurse=True)


def deployment_json(info: DeploymentInfo) -> dict[str, Any]:
    data = _plain(info)
    data["inference_model"] = info.inference_model
    return data


def replica_json(replica: ReplicaStatus) -> dict[str, Any]:
    data = _plain(replica)
    data["loaded_adapters"] = list(data["loaded_adapters"])
    return data


def hotload_status_json(status: HotloadStatus, identity: str | None = None) -> dict[str, Any]:
    data: dict[str, Any] = {
        "deployment_id": status.deployment_id,
        "replicas": [replica_json(r) for r in status.replicas],
    }
    if identity is not None:
        data["identity"] = identity
        data["serves"] = status.serves(identity)
    return data


def warmup_json(result: WarmupResult) -> dict[str, Any]:
    return _plain(result)


def one_line(text: str) -> str:
    """`text` with every run of whitespace (line breaks included) as one space."""
    return " ".join(text.split())


def _public_type(error: BaseException) -> str:
    """The name of `error`'s nearest class outside the CLI (the SDK's, or a builtin)."""
    for cls in type(error).__mro__:
        if not cls.__module__.startswith("fireworks_deploy._cli"):
            return cls.__name__
    return type(error).__name__  # pragma: no cover - every class derives from object


def last_seen(error: WaitTimeoutError) -> str:
    """What a timed-out wait saw last, in a few words (empty if it saw nothing)."""
    status = error.last_status
    if isinstance(status, DeploymentInfo):
        detail = describe_info(status)
        return f"{status.state}{f', {detail}' if detail else ''}"
    if isinstance(status, HotloadStatus):
        return describe_replicas(status)
    return ""


def error_json(error: BaseException) -> dict[str, Any]:
    """`{"type", "message", ...}`: the error's class and one-line message, then what it carries
    (the deployment, state, stage, HTTP status, last status seen...)."""
    data: dict[str, Any] = {"type": _public_type(error), "message": one_line(str(error))}
    if isinstance(error, APIError):
        data.update(method=error.method, url=error.url)
    if isinstance(error, APIStatusError):
        data["status_code"] = error.status_code
    if isinstance(error, APIConnectionError):
        data["request_sent"] = error.request_sent
    if isinstance(error, DeploymentFailedError):
        data.update(deployment_id=error.deployment_id, state=error.state)
    if isinstance(error, HotloadFailedError):
        data.update(deployment_id=error.deployment_id, identity=error.identity, stage=error.stage)
    if isinstance(error, WarmupError):
        data.update(model=error.model, attempts=error.attempts, last_status=error.last_status)
    if isinstance(error, WaitTimeoutError):
        data["timeout_s"] = error.timeout_s
        status = error.last_status
        if isinstance(status, DeploymentInfo):
            data["last_status"] = deployment_json(status)
        elif isinstance(status, HotloadStatus):
            data["last_status"] = hotload_status_json(status)
    if isinstance(error, FleetError) and isinstance(error.result, FleetResult):
        data["failed"] = {i: error_json(e) for i, e in error.result.failed.items()}
    return {k: v for k, v in data.items() if v is not None}


def failure_label(error: BaseException) -> str:
    """How a failed outcome is labelled: `TIMED OUT`, `NOT FOUND` or `FAILED`."""
    if isinstance(error, WaitTimeoutError):
        return "TIMED OUT"
    if isinstance(error, (DeploymentNotFoundError, NotFoundError)):
        return "NOT FOUND"
    return "FAILED"


def failure_summary(error: BaseException) -> str:
    """A few words on how an operation ended, for a progress row (the full message follows)."""
    if isinstance(error, WaitTimeoutError):
        seen = last_seen(error)
        return f"after {error.timeout_s:g}s" + (f", last seen {seen}" if seen else ", saw nothing")
    if isinstance(error, DeploymentNotFoundError):
        return "the deployment does not exist"
    if isinstance(error, DeploymentFailedError):
        return f"the deployment is {error.state or 'gone'}"
    if isinstance(error, HotloadFailedError):
        return f"a replica reports stage {error.stage!r} for {error.identity}"
    if isinstance(error, APIStatusError):
        return f"HTTP {error.status_code}"
    if isinstance(error, ResponseValidationError):
        return "the server's answer is not the Fireworks API's"
    if isinstance(error, APIConnectionError):
        return "no answer from the server"
    return type(error).__name__


def fleet_json(result: FleetResult[Any], value: Any) -> dict[str, Any]:
    """Every outcome: `value(outcome.value)` for successes, the error for failures."""
    return {
        "ok": result.ok,
        "elapsed_s": round(result.elapsed_s, 3),
        "outcomes": [
            {
                "deployment_id": o.deployment_id,
                "ok": o.ok,
                **(
                    {"result": value(o.value)}
                    if o.error is None
                    else {"error": error_json(o.error)}
                ),
            }
            for o in result.outcomes
        ],
    }


def _replicas(info: DeploymentInfo) -> str:
    if info.replica_count is None and info.desired_replica_count is None:
        return f"{info.min_replica_count or 0}-{info.max_replica_count or 0}"
    return f"{info.replica_count or 0}/{info.desired_replica_count or 0}"


def deployment_text(info: DeploymentInfo) -> str:
    """`key: value` lines for one deployment (only the fields the server sent)."""
    fields: list[tuple[str, Any]] = [
        ("deployment", info.deployment_id),
        ("name", info.name),
        ("state", info.state),
        ("base model", info.base_model),
        ("replicas", _replicas(info)),
        ("min/max replicas", f"{info.min_replica_count}/{info.max_replica_count}"),
        ("accelerator", info.accelerator_type),
        ("shape", info.deployment_shape),
        ("region", info.region),
        ("hot-load", info.enable_hot_load),
        ("hot-load bucket", info.hot_load_bucket_type),
        ("hot-load bucket url", info.hot_load_bucket_url),
        ("hot-load trainer job", info.hot_load_trainer_job),
        ("transition type", info.hot_load_transition_type),
        ("for training", info.for_training),
        ("description", info.description),
        ("created", info.create_time),
        ("updated", info.update_time),
        ("inference model", info.inference_model),
    ]
    shown = [(k, v) for k, v in fields if v not in (None, "")]
    width = max(len(k) for k, _ in shown)
    return "".join(f"{k + ':':<{width + 1}} {_scalar(v)}\n" for k, v in shown)


def _scalar(value: Any) -> str:
    if isinstance(value, bool):
        return "yes" if value else "no"
    return str(value)


def deployments_table(infos: list[DeploymentInfo]) -> str:
    rows = [
        [i.deployment_id, i.state, i.base_model or "", _replicas(i), i.create_time or ""]
        for i in infos
    ]
    return format_table(["DEPLOYMENT", "STATE", "BASE MODEL", "REPLICAS", "CREATED"], rows)


def hotload_status_text(status: HotloadStatus, identity: str | None = None) -> str:
    if not status.replicas:
        return f"{status.deployment_id}: no replicas reported yet\n"
    rows = [
        [
            r.identity or "?",
            "yes" if r.readiness else "no",
            r.current_snapshot_identity or "-",
            r.loading_state.stage,
            r.loading_state.target_snapshot_identity or "-",
        ]
        for r in status.replicas
    ]
    table = format_table(["REPLICA", "READY", "SERVING", "STAGE", "TARGET"], rows)
    if identity is None:
        return table
    verdict = "serves" if status.serves(identity) else "does not serve"
    return f"{table}{status.deployment_id} {verdict} {identity} on every replica\n"
