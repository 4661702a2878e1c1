"""The one place that knows the wire: camelCase control plane, snake_case gateway, update masks.

Responses are structured with cattrs, tolerating unknown keys and enum values (they stay in
`raw`); a payload of the wrong shape raises `ResponseValidationError` listing what was wrong.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, TypeVar

import attrs
import cattrs
from cattrs.gen import make_dict_structure_fn, override

from ._errors import InvalidConfigError, ResponseValidationError
from ._models import (
    DeploymentConfig,
    DeploymentInfo,
    HotloadStatus,
    IncrementalSnapshotMetadata,
    LoadedAdapter,
    LoadingState,
    ReplicaStatus,
)

__all__ = [
    "DEFAULT_DESCRIPTION",
    "account_from_accounts",
    "camel",
    "completion_body",
    "deployment_body",
    "deployment_from_wire",
    "deployments_page_from_wire",
    "hotload_body",
    "hotload_status_from_wire",
    "snake",
    "update_body_and_mask",
]

DEFAULT_DESCRIPTION = "Fireworks training deployment"
T = TypeVar("T")

# Matched with fullmatch: `$` would also accept a trailing newline ("acme\n").
_ACCOUNT_ID = re.compile(r"[a-z0-9][a-z0-9-]{0,62}")

_converter = cattrs.Converter(forbid_extra_keys=False)


# Scalars are strict: cattrs' defaults would call str()/bool()/int() on anything, so a string
# "false" would read as True and an object as its Python repr.
def _strict_str(value: Any, _: type) -> str:
    if not isinstance(value, str):
        raise TypeError(f"expected a string, got {type(value).__name__}")
    return value


def _strict_bool(value: Any, _: type) -> bool:
    if not isinstance(value, bool):
        raise TypeError(f"expected a boolean, got {type(value).__name__}")
    return value


def _strict_int(value: Any, _: type) -> int:
    if isinstance(value, bool):
        raise TypeError("expected an integer, got a boolean")
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str) and re.fullmatch(r"-?[0-9]{1,19}", value.strip()):
        return int(value)  # proto3 JSON writes 64-bit integers as strings
    raise TypeError(f"expected an integer, got {value!r:.40}")


_converter.register_structure_hook(str, _strict_str)
_converter.register_structure_hook(bool, _strict_bool)
_converter.register_structure_hook(int, _strict_int)


@functools.cache
def camel(name: str) -> str:
    """`hot_load_trainer_job` -> `hotLoadTrainerJob`."""
    head, *rest = name.split("_")
    return head + "".join(part[:1].upper() + part[1:] for part in rest)


@functools.cache
def snake(name: str) -> str:
    """`hotLoadTrainerJob` -> `hot_load_trainer_job` (snake_case input is returned as is)."""
    return re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower()


def _objects_only(fn: Any) -> Any:
    """Wrap a generated structure function so only JSON objects are accepted.

    cattrs' generated code tests keys with `in`, so a string such as "error" would silently
    read as an object with every field defaulted.
    """

    def structure(value: Any, cls: type) -> Any:
        if not isinstance(value, Mapping):
            raise TypeError(f"expected a JSON object, got {type(value).__name__}")
        return fn(value, cls)

    return structure


# DeploymentInfo: every field is read from its camelCase key (snake_case accepted as fallback).
_DEPLOYMENT_FIELDS = [f.name for f in attrs.fields(DeploymentInfo) if f.name != "raw"]
_DEPLOYMENT_KEYS = tuple((camel(n), snake(camel(n))) for n in _DEPLOYMENT_FIELDS)
_DEPLOYMENT_OVERRIDES: dict[str, Any] = {n: override(rename=camel(n)) for n in _DEPLOYMENT_FIELDS}
_converter.register_structure_hook(
    DeploymentInfo,
    _objects_only(
        make_dict_structure_fn(
            DeploymentInfo,
            _converter,
            # The answer as sent, a copy made by `deployment_from_wire`: taken as it is.
            raw=override(struct_hook=lambda value, _: value),
            **_DEPLOYMENT_OVERRIDES,
        )
    ),
)
_converter.register_structure_hook(
    LoadingState, _objects_only(make_dict_structure_fn(LoadingState, _converter))
)
_converter.register_structure_hook(
    LoadedAdapter, _objects_only(make_dict_structure_fn(LoadedAdapter, _converter))
)
# After its parts: a generated function captures the hooks of its fields when it is made.
_converter.register_structure_hook(
    ReplicaStatus,
    _objects_only(make_dict_structure_fn(ReplicaStatus, _converter, raw=override(omit=True))),
)


def _structure(payload: Any, cls: type[T], what: str) -> T:
    try:
        return _converter.structure(payload, cls)
    except RecursionError as exc:
        raise ResponseValidationError(
            f"Could not read {what} from the server's answer: it is nested too deeply.",
            body=None,
        ) from exc
    except (
        cattrs.BaseValidationError,
        ValueError,
        TypeError,
        AttributeError,
        OverflowError,
    ) as exc:
        details = (
            "; ".join(cattrs.transform_error(exc))
            if isinstance(exc, cattrs.BaseValidationError)
            else str(exc)
        )
        raise ResponseValidationError(
            f"Could not read {what} from the server's answer: {details}", body=payload
        ) from exc


def _mapping(payload: Any, what: str) -> Mapping[str, Any]:
    if not isinstance(payload, Mapping):
        raise ResponseValidationError(
            f"Expected a JSON object for {what}, got {type(payload).__name__}.", body=payload
        )
    return payload


def _clean_scalars(payload: Mapping[str, Any], keys: Iterable[tuple[str, str]]) -> dict[str, Any]:
    """Pick `keys` ((camelCase, snake_case) pairs, the latter a fallback)."""
    picked: dict[str, Any] = {}
    for key, fallback in keys:
        value = payload.get(key)
        if value is None:
            value = payload.get(fallback)
        if value is not None:
            picked[key] = value
    return picked


def deployment_from_wire(
    payload: Any, *, account_id: str, deployment_id: str | None = None
) -> DeploymentInfo:
    """A control-plane deployment object -> `DeploymentInfo` (unknown states kept as sent)."""
    body = _mapping(payload, "a deployment")
    name = body.get("name")
    if not isinstance(name, str):
        name = ""
    if deployment_id is None:
        deployment_id = name.rsplit("/", 1)[-1] if name else ""
        if not deployment_id:
            raise ResponseValidationError(
                "A deployment in the server's answer has no 'name'.", body=payload
            )
    if name.startswith("accounts/"):
        account_id = name.split("/")[1] or account_id
    data = _clean_scalars(body, _DEPLOYMENT_KEYS)
    placement = body.get("placement")
    if "region" not in data and isinstance(placement, Mapping) and placement.get("region"):
        data["region"] = placement["region"]
    for key in ("state", "hotLoadTransitionType", "hotLoadBucketType", "acceleratorType"):
        value = data.get(key)
        if isinstance(value, int) and not isinstance(value, bool):
            data[key] = str(value)  # proto3 JSON may send an enum as its number
    data.setdefault("state", "UNKNOWN")
    data.update(name=name, deploymentId=deployment_id, accountId=account_id, raw=dict(body))
    return _structure(data, DeploymentInfo, f"deployment {deployment_id!r}")


def deployments_page_from_wire(
    payload: Any, *, account_id: str
) -> tuple[list[DeploymentInfo], str | None]:
    """One page of `GET .../deployments` -> (deployments, next page token or None)."""
    body = _mapping(payload, "a deployment list")
    items = body.get("deployments") or []
    if not isinstance(items, list):
        raise ResponseValidationError("'deployments' in the list answer is not a list.", body=body)
    token = body.get("nextPageToken") or None
    if token is not None and not isinstance(token, str):
        raise ResponseValidationError("'nextPageToken' is not a string.", body=body)
    return [deployment_from_wire(item, account_id=account_id) for item in items], token


def account_from_accounts(payload: Any) -> str:
    """`GET /v1/accounts?pageSize=2` -> the one account id; none or several is an error."""
    body = _mapping(payload, "the account list")
    accounts = body.get("accounts")
    if not isinstance(accounts, list) or not accounts:
        raise InvalidConfigError(
            "The API key is not associated with any account; pass account_id=... explicitly."
        )
    if len(accounts) > 1:
        raise InvalidConfigError(
            "The API key sees more than one account; pass account_id=... to choose one."
        )
    first = accounts[0]
    name = first.get("name") if isinstance(first, Mapping) else None
    if not isinstance(name, str) or not name.removeprefix("accounts/"):
        raise ResponseValidationError("The account in the server's answer has no name.", body=body)
    return name.removeprefix("accounts/")


def validate_account_id(account_id: object) -> str:
    if not isinstance(account_id, str) or not _ACCOUNT_ID.fullmatch(account_id):
        raise InvalidConfigError(
            f"account_id {account_id!r} is not valid: use lower-case letters, digits and hyphens."
        )
    return account_id


def hotload_status_from_wire(payload: Any, *, deployment_id: str) -> HotloadStatus:
    """`GET /hot_load/...` -> `HotloadStatus` with every replica."""
    body = _mapping(payload, "the hot-load status")
    replicas = body.get("replicas")
    if replicas is None:
        replicas = []
    if not isinstance(replicas, list):
        raise ResponseValidationError(
            "'replicas' in the hot-load status is not a list.", body=payload
        )
    parsed = []
    for index, item in enumerate(replicas):
        replica = _mapping(item, f"replica {index} of the hot-load status")
        data = dict(replica)
        if data.get("loading_state") is None:
            data.pop("loading_state", None)
        if data.get("loaded_adapters") is None:
            data.pop("loaded_adapters", None)
        if isinstance(data.get("loading_state"), Mapping):
            state = dict(data["loading_state"])
            if state.get("stage") is None:
                state.pop("stage", None)
            data["loading_state"] = state
        if "readiness" in data and not isinstance(data["readiness"], bool):
            raise ResponseValidationError(
                f"replica {index}: 'readiness' is not a boolean.", body=payload
            )
        structured = _structure(data, ReplicaStatus, f"replica {index} of the hot-load status")
        parsed.append(attrs.evolve(structured, raw=replica))
    return HotloadStatus(deployment_id=deployment_id, replicas=tuple(parsed), raw=dict(body))


def deployment_body(config: DeploymentConfig) -> dict[str, Any]:
    """`DeploymentConfig` -> the camelCase create body, following the official client's rules."""
    body: dict[str, Any] = {
        "baseModel": config.base_model,
        "description": config.description
        if config.description is not None
        else DEFAULT_DESCRIPTION,
        "minReplicaCount": config.min_replica_count,
        "maxReplicaCount": config.max_replica_count,
        "enableHotLoad": config.enable_hot_load,
        "forTraining": config.for_training,
    }
    if config.region:
        body["placement"] = {"region": config.region}
    if config.hot_load_bucket_type:
        body["hotLoadBucketType"] = config.hot_load_bucket_type
    if config.hot_load_trainer_job:
        body["hotLoadTrainerJob"] = config.hot_load_trainer_job
    if config.hot_load_transition_type:
        body["hotLoadTransitionType"] = config.hot_load_transition_type
    if config.deployment_shape:
        body["deploymentShape"] = config.deployment_shape
    elif config.accelerator_type:
        body["acceleratorType"] = config.accelerator_type
    if config.extra_args:
        body["extraArgs"] = [part for arg in config.extra_args for part in arg.split()]
    if config.extra_values:
        body["extraValues"] = dict(config.extra_values)
    if config.annotations:
        body["annotations"] = dict(config.annotations)
    if config.preemptible:
        body["preemptible"] = True
    return body


def create_params(config: DeploymentConfig) -> dict[str, str]:
    params = {"deploymentId": config.deployment_id}
    if config.skip_shape_validation:
        params["skipShapeValidation"] = "true"
    if config.accept_shapeless_risk:
        params["acceptShapelessRisk"] = "true"
    if config.disable_speculative_decoding:
        params["disableSpeculativeDecoding"] = "true"
    return params


def update_body_and_mask(
    body: Mapping[str, Any], update_mask: str | Sequence[str] | None
) -> tuple[dict[str, Any], str]:
    """Normalise an update to (camelCase body, snake_case CSV mask).

    Keys may be camelCase (the official client's form) or snake_case. Without a mask, the mask
    is every key of the body, so a PATCH never replaces fields the caller did not name.
    """
    if not isinstance(body, Mapping) or not body:
        raise InvalidConfigError("update needs a non-empty mapping of fields to change.")
    wire: dict[str, Any] = {}
    for key in body:
        if not isinstance(key, str) or not re.fullmatch(r"[A-Za-z][A-Za-z0-9_]*", key):
            raise InvalidConfigError(f"update has an invalid field name {key!r}.")
        wire[camel(snake(key)) if "_" in key else key] = body[key]
    if update_mask is None:
        paths = [snake(key) for key in wire]
    else:
        if not isinstance(update_mask, (str, Sequence)):
            raise InvalidConfigError(
                f"update_mask must be a comma-separated string or a list, got {update_mask!r}."
            )
        raw_paths = update_mask.split(",") if isinstance(update_mask, str) else list(update_mask)
        paths = [p.strip() for p in raw_paths if isinstance(p, str) and p.strip()]
        if len(paths) != len(raw_paths) or not paths:
            raise InvalidConfigError(f"update_mask {update_mask!r} has empty or invalid paths.")
        for path in paths:
            if not re.fullmatch(r"[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)*", path):
                raise InvalidConfigError(
                    f"update_mask path {path!r} must be snake_case, e.g. 'hot_load_trainer_job'."
                )
        named = {snake(k) for k in wire}
        missing = [p for p in paths if p.split(".")[0] not in named]
        if missing:
            raise InvalidConfigError(
                f"update_mask names {missing} but the body does not set them; the server would "
                "clear them."
            )
    return wire, ",".join(paths)


def scale_body(replicas: int) -> dict[str, int]:
    return {"maxReplicaCount": replicas, "minReplicaCount": replicas}


def hotload_body(
    identity: str,
    metadata: IncrementalSnapshotMetadata | None,
    *,
    reset_prompt_cache: bool | None,
) -> dict[str, Any]:
    """The snake_case hot-load body; a delta is a body with `incremental_snapshot_metadata`."""
    body: dict[str, Any] = {"identity": identity}
    if reset_prompt_cache is not None:
        body["reset_prompt_cache"] = reset_prompt_cache
    if metadata is not None:
        body["incremental_snapshot_metadata"] = _converter.unstructure(metadata)
    return body


def completion_body(
    model: str, *, prompt: Sequence[int] = (1, 2), max_tokens: int = 4
) -> dict[str, Any]:
    """The probe and warm-up body the official client sends."""
    return {"model": model, "prompt": list(prompt), "max_tokens": max_tokens, "temperature": 0.0}


def rejects_reset_prompt_cache(status_code: int, message: str, body: Any) -> bool:
    """The gateway's pydantic 400 for a body field it does not know (feature detection)."""
    if status_code != 400:
        return False
    text = f"{message} {body}".lower()
    return "reset_prompt_cache" in text and "extra inputs are not permitted" in text
