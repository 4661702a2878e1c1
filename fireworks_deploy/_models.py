"""Plain snake_case data: what callers send and what the server told us. No wire knowledge."""

from __future__ import annotations

import enum
import re
from collections.abc import Mapping, Sequence
from typing import Any

import attrs

from ._errors import InvalidConfigError

__all__ = [
    "CHECKSUM_FORMATS",
    "COMPRESSION_FORMATS",
    "DeploymentConfig",
    "DeploymentInfo",
    "DeploymentState",
    "HotloadStatus",
    "IncrementalSnapshotMetadata",
    "LoadedAdapter",
    "LoadingState",
    "MetadataLike",
    "ReplicaStatus",
    "WarmupResult",
    "check_hotload_args",
    "check_hotload_target",
    "validate_deployment_id",
    "validate_identity",
]

# Matched with fullmatch: `$` would also accept a trailing newline ("abc\n").
_DEPLOYMENT_ID = re.compile(r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?")

#: Delta compression formats the public delta-compression package knows.
COMPRESSION_FORMATS = frozenset(
    {"arc_v1", "arc_v2", "arc_v3", "xor_one_to_one_zlib", "xor_one_to_one_zstd"}
)
#: "alder32" (sic) is the wire's spelling of Adler-32 and must be sent verbatim.
CHECKSUM_FORMATS = frozenset({"alder32"})

_TRANSITION_TYPES = {"ASYNC", "SYNC"}


class DeploymentState(str, enum.Enum):
    """Known deployment states. `DeploymentInfo.state` is a plain str so unknown states survive."""

    STATE_UNSPECIFIED = "STATE_UNSPECIFIED"
    CREATING = "CREATING"
    READY = "READY"
    UPDATING = "UPDATING"
    FAILED = "FAILED"
    DELETING = "DELETING"
    DELETED = "DELETED"
    UNKNOWN = "UNKNOWN"

    def __str__(self) -> str:
        return self.value


#: States a deployment does not come back from; `create_or_get` replaces them.
BAD_STATES = frozenset({DeploymentState.FAILED, DeploymentState.DELETED, DeploymentState.DELETING})


def validate_deployment_id(deployment_id: object) -> str:
    """Return `deployment_id` if it is a valid Fireworks resource id, else raise."""
    if not isinstance(deployment_id, str) or not _DEPLOYMENT_ID.fullmatch(deployment_id):
        raise InvalidConfigError(
            f"deployment_id {deployment_id!r} is not valid: use 1-63 lower-case letters, digits "
            "and hyphens, starting and ending with a letter or digit."
        )
    return deployment_id


def validate_identity(identity: object, what: str = "snapshot identity") -> str:
    """Snapshot identities are opaque, but must be one non-empty path segment.

    None and non-strings are refused (a hot-load of None would ask for nothing), as are '/',
    whitespace anywhere (a trailing newline included) and control characters.
    """
    if not isinstance(identity, str) or not identity.strip():
        raise InvalidConfigError(f"{what} must be a non-empty string, got {identity!r}.")
    if "/" in identity or not identity.isprintable() or any(ch.isspace() for ch in identity):
        raise InvalidConfigError(
            f"{what} {identity!r} must be a single path segment without '/', spaces or "
            "control characters."
        )
    return identity


def _non_empty(_: object, attribute: attrs.Attribute[Any], value: object) -> None:
    if not isinstance(value, str) or not value.strip():
        raise InvalidConfigError(f"{attribute.name} must be a non-empty string, got {value!r}.")


def _optional_str(_: object, attribute: attrs.Attribute[Any], value: object) -> None:
    if value is not None and not isinstance(value, str):
        raise InvalidConfigError(f"{attribute.name} must be a string or None, got {value!r}.")


def _replica_count(_: object, attribute: attrs.Attribute[Any], value: object) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise InvalidConfigError(f"{attribute.name} must be a non-negative integer, got {value!r}.")


def _bool(_: object, attribute: attrs.Attribute[Any], value: object) -> None:
    if not isinstance(value, bool):
        raise InvalidConfigError(f"{attribute.name} must be True or False, got {value!r}.")


def _normalize_transition(value: str | None) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise InvalidConfigError(f"hot_load_transition_type must be a string, got {value!r}.")
    upper = value.strip().upper()
    if upper not in _TRANSITION_TYPES:
        raise InvalidConfigError(
            f"hot_load_transition_type {value!r} is not valid: use 'ASYNC', 'SYNC' or None."
        )
    return upper


def _str_list(value: Sequence[str] | None) -> list[str] | None:
    if value is None:
        return None
    if (
        isinstance(value, str)
        or not isinstance(value, Sequence)
        or not all(isinstance(v, str) for v in value)
    ):
        raise InvalidConfigError(f"extra_args must be a list of strings, got {value!r}.")
    return list(value)


def _str_map(value: Mapping[str, str] | None) -> dict[str, str] | None:
    if value is None:
        return None
    if not isinstance(value, Mapping) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in value.items()
    ):
        raise InvalidConfigError(f"expected a mapping of strings to strings, got {value!r}.")
    return dict(value)


@attrs.define
class DeploymentConfig:
    """What to create: the official client's `DeploymentConfig`, fields, order and defaults.

    Mutable like the official dataclass: every field is checked when it is set (construction
    included), and the whole config, cross-field rules too, again by `validate()`, which every
    method that takes a config runs before any request.
    """

    deployment_id: str = attrs.field(validator=lambda i, a, v: validate_deployment_id(v))
    base_model: str = attrs.field(validator=_non_empty)
    description: str | None = attrs.field(default=None, validator=_optional_str)
    deployment_shape: str | None = attrs.field(default=None, validator=_optional_str)
    expected_deployment_shape: str | None = attrs.field(default=None, validator=_optional_str)
    region: str | None = attrs.field(default=None, validator=_optional_str)
    min_replica_count: int = attrs.field(default=0, validator=_replica_count)
    max_replica_count: int = attrs.field(default=1, validator=_replica_count)
    accelerator_type: str | None = attrs.field(default="NVIDIA_H200_141GB", validator=_optional_str)
    hot_load_bucket_type: str | None = attrs.field(default="FW_HOSTED", validator=_optional_str)
    hot_load_trainer_job: str | None = attrs.field(default=None, validator=_optional_str)
    enable_hot_load: bool = attrs.field(default=True, validator=_bool)
    hot_load_transition_type: str | None = attrs.field(
        default=None, converter=_normalize_transition
    )
    skip_shape_validation: bool = attrs.field(default=False, validator=_bool)
    accept_shapeless_risk: bool = attrs.field(default=False, validator=_bool)
    disable_speculative_decoding: bool = attrs.field(default=False, validator=_bool)
    extra_args: list[str] | None = attrs.field(default=None, converter=_str_list)
    extra_values: dict[str, str] | None = attrs.field(default=None, converter=_str_map)
    annotations: dict[str, str] | None = attrs.field(default=None, converter=_str_map)
    for_training: bool = attrs.field(default=False, validator=_bool)
    preemptible: bool = attrs.field(default=False, validator=_bool)

    def validate(self) -> None:
        """Check the whole config again, as on construction: each field (a list changed in
        place included), then the rules across fields. Raises `InvalidConfigError` (a
        `ValueError`) naming what is wrong."""
        attrs.evolve(self)

    def __attrs_post_init__(self) -> None:
        if self.min_replica_count > self.max_replica_count:
            raise InvalidConfigError(
                f"min_replica_count ({self.min_replica_count}) is greater than "
                f"max_replica_count ({self.max_replica_count})."
            )
        shape = (self.deployment_shape or "").strip()
        if self.accept_shapeless_risk and shape:
            raise InvalidConfigError(
                "accept_shapeless_risk cannot be combined with deployment_shape: drop one."
            )
        expected = (self.expected_deployment_shape or "").strip()
        if expected and expected != shape:
            raise InvalidConfigError(
                f"deployment_shape {self.deployment_shape!r} differs from "
                f"expected_deployment_shape {self.expected_deployment_shape!r}; use "
                "DeploymentConfig.from_training_profile(...) or the profile's shape version."
            )

    @classmethod
    def from_training_profile(
        cls, *, deployment_id: str, base_model: str, profile: Any, **kwargs: Any
    ) -> DeploymentConfig:
        """A config pinned to a training profile's deployment shape (as the official client)."""
        shape = getattr(profile, "deployment_shape", None) or getattr(
            profile, "deployment_shape_version", None
        )
        if not shape:
            raise InvalidConfigError(
                "The training profile has no deployment_shape_version; pass deployment_shape=... "
                "to DeploymentConfig instead."
            )
        return cls(
            deployment_id=deployment_id,
            base_model=base_model,
            deployment_shape=shape,
            expected_deployment_shape=shape,
            **kwargs,
        )


@attrs.frozen(kw_only=True)
class DeploymentInfo:
    """A deployment as the control plane reported it; `raw` keeps every field it sent."""

    deployment_id: str
    name: str
    state: str
    account_id: str
    base_model: str | None = None
    description: str | None = None
    hot_load_bucket_url: str | None = None
    hot_load_bucket_type: str | None = None
    hot_load_trainer_job: str | None = None
    hot_load_transition_type: str | None = None
    deployment_shape: str | None = None
    accelerator_type: str | None = None
    region: str | None = None
    min_replica_count: int | None = None
    max_replica_count: int | None = None
    desired_replica_count: int | None = None
    replica_count: int | None = None
    enable_hot_load: bool | None = None
    for_training: bool | None = None
    create_time: str | None = None
    update_time: str | None = None
    #: A completions probe got a 200: it serves although `state` may still read CREATING.
    serving: bool = False
    raw: Mapping[str, Any] = attrs.field(factory=dict, repr=False, eq=False)

    @property
    def inference_model(self) -> str:
        """The model string completions route by: `accounts/{account}/deployments/{id}`."""
        return f"accounts/{self.account_id}/deployments/{self.deployment_id}"

    @property
    def deployment_shape_version(self) -> str | None:
        """The official client's name for `deployment_shape`."""
        return self.deployment_shape

    @property
    def is_ready(self) -> bool:
        """It serves: `state` is READY, or a completions probe got a 200 (`serving`)."""
        return self.state == DeploymentState.READY or self.serving

    @property
    def is_bad(self) -> bool:
        """FAILED, DELETING or DELETED: it will not serve again."""
        return self.state in BAD_STATES


@attrs.frozen(kw_only=True)
class IncrementalSnapshotMetadata:
    """What makes a hot-load a delta: the snapshot it applies to and its encoding."""

    previous_snapshot_identity: str = attrs.field()
    compression_format: str = "arc_v2"
    checksum_format: str = "alder32"

    @previous_snapshot_identity.validator
    def _check_previous(self, attribute: attrs.Attribute[str], value: str) -> None:
        validate_identity(value, "previous_snapshot_identity")

    def __attrs_post_init__(self) -> None:
        if self.compression_format not in COMPRESSION_FORMATS:
            raise InvalidConfigError(
                f"compression_format {self.compression_format!r} is not known: use one of "
                f"{sorted(COMPRESSION_FORMATS)}."
            )
        if self.checksum_format not in CHECKSUM_FORMATS:
            raise InvalidConfigError(
                f"checksum_format {self.checksum_format!r} is not accepted: the wire expects "
                "'alder32' (sic)."
            )

    @classmethod
    def coerce(
        cls, value: IncrementalSnapshotMetadata | Mapping[str, Any] | None
    ) -> IncrementalSnapshotMetadata | None:
        """Accept the typed class, the official client's plain dict, or None."""
        if value is None or isinstance(value, cls):
            return value
        if not isinstance(value, Mapping):
            raise InvalidConfigError(
                "incremental_snapshot_metadata must be an IncrementalSnapshotMetadata, a dict "
                f"or None, got {type(value).__name__}."
            )
        known = {"previous_snapshot_identity", "compression_format", "checksum_format"}
        unknown = set(value) - known
        if unknown:
            raise InvalidConfigError(
                f"incremental_snapshot_metadata has unknown keys {sorted(map(str, unknown))}; "
                f"known keys are {sorted(known)}."
            )
        if "previous_snapshot_identity" not in value:
            raise InvalidConfigError(
                "incremental_snapshot_metadata needs 'previous_snapshot_identity'."
            )
        return cls(**value)


@attrs.frozen(kw_only=True)
class LoadingState:
    """Where one replica is in loading a snapshot. `stage` is kept as sent ("error" matters)."""

    stage: str = "unknown"
    target_snapshot_identity: str | None = None


@attrs.frozen(kw_only=True)
class LoadedAdapter:
    """An adapter a replica reports; it serves `identity` when `status` is "loaded"."""

    identity: str | None = None
    status: str | None = None


@attrs.frozen(kw_only=True)
class ReplicaStatus:
    """One replica's hot-load view."""

    identity: str | None = None
    readiness: bool = False
    current_snapshot_identity: str | None = None
    loading_state: LoadingState = attrs.field(factory=LoadingState)
    loaded_adapters: tuple[LoadedAdapter, ...] = ()
    raw: Mapping[str, Any] = attrs.field(factory=dict, repr=False, eq=False)

    def serves(self, identity: str) -> bool:
        """Ready and serving `identity`, as the base weights or as a loaded adapter."""
        if not self.readiness:
            return False
        if self.current_snapshot_identity == identity:
            return True
        return any(a.identity == identity and a.status == "loaded" for a in self.loaded_adapters)

    def failed(self, identity: str) -> bool:
        """Reports stage "error" for `identity` (an error for another target is stale)."""
        return (
            self.loading_state.stage == "error"
            and self.loading_state.target_snapshot_identity == identity
        )


@attrs.frozen(kw_only=True)
class HotloadStatus:
    """Every replica's hot-load state. Always truthy, so it is never confused with a bool.

    A status returned by `hotload_and_wait` (and by each deployment of
    `hotload_and_wait_many`) also says what the load cost, for an RL loop to log per step:
    `load_s`, the seconds from our hot-load POST until a status read showed every replica
    serving the snapshot (a load re-sent after a gateway lost it counts from the first POST),
    and `status_requests`, the requests that call's wait sent to read the status (0 when a
    concurrent waiter on the same deployment did the polling). Both are None on any other
    status, and neither takes part in comparisons.
    """

    deployment_id: str
    replicas: tuple[ReplicaStatus, ...] = ()
    load_s: float | None = attrs.field(default=None, eq=False)
    status_requests: int | None = attrs.field(default=None, eq=False)
    raw: Mapping[str, Any] = attrs.field(factory=dict, repr=False, eq=False)

    def serves(self, identity: str) -> bool:
        """Every replica (and at least one) is ready with `identity`."""
        return bool(self.replicas) and all(r.serves(identity) for r in self.replicas)

    def mentions(self, identity: str) -> bool:
        """Some replica targets, serves, or has as an adapter `identity` (the load is known)."""
        return any(
            identity in (r.current_snapshot_identity, r.loading_state.target_snapshot_identity)
            or any(a.identity == identity for a in r.loaded_adapters)
            for r in self.replicas
        )

    def failed_replicas(self, identity: str) -> tuple[ReplicaStatus, ...]:
        """The replicas that report stage "error" for `identity`."""
        return tuple(r for r in self.replicas if r.failed(identity))

    @property
    def current_snapshot_identities(self) -> frozenset[str | None]:
        """The snapshots the replicas serve now (None for a replica that serves none yet)."""
        return frozenset(r.current_snapshot_identity for r in self.replicas)

    def summary(self) -> str:
        """One line for errors and logs: each replica's readiness, stage and snapshot."""
        if not self.replicas:
            return "no replicas reported yet"
        parts = [
            f"{r.identity or '?'}: ready={r.readiness} stage={r.loading_state.stage} "
            f"current={r.current_snapshot_identity} "
            f"target={r.loading_state.target_snapshot_identity}"
            for r in self.replicas
        ]
        return "; ".join(parts)


@attrs.frozen(kw_only=True)
class WarmupResult:
    """A warm-up that got its 200."""

    model: str
    attempts: int
    status_code: int
    elapsed_s: float


#: What every hot-load method accepts as delta metadata: the typed class or the official dict.
MetadataLike = IncrementalSnapshotMetadata | Mapping[str, Any]


def check_hotload_target(deployment_id: object, base_model: object) -> None:
    """Validate what every hot-load request is routed by: the deployment and its base model."""
    validate_deployment_id(deployment_id)
    if not isinstance(base_model, str) or not base_model.strip():
        raise InvalidConfigError(f"base_model must be a non-empty string, got {base_model!r}.")
    if not (base_model.isascii() and base_model.isprintable()):
        raise InvalidConfigError(
            f"base_model {base_model!r} must be printable ASCII: it is sent in the "
            "fireworks-model header."
        )


def check_hotload_args(
    deployment_id: str,
    base_model: str,
    identity: str,
    metadata: MetadataLike | None,
    path: str | None,
    cmek_resource: str | None,
) -> IncrementalSnapshotMetadata | None:
    """Validate a hot-load call's arguments; returns the typed metadata.

    `identity` is required: None or a non-string raises `InvalidConfigError`. A call that
    names no snapshot (a status read) validates with `check_hotload_target` instead.
    """
    check_hotload_target(deployment_id, base_model)
    validate_identity(identity)
    for name, value in (("path", path), ("cmek_resource", cmek_resource)):
        if value is not None and (
            not isinstance(value, str)
            or not value.strip()
            or not (value.isascii() and value.isprintable())
        ):
            raise InvalidConfigError(
                f"{name} must be a non-empty printable ASCII string (it is sent in a header), "
                f"got {value!r}."
            )
    coerced = IncrementalSnapshotMetadata.coerce(metadata)
    if coerced is not None and coerced.previous_snapshot_identity == identity:
        raise InvalidConfigError(
            f"A delta cannot apply to itself: previous_snapshot_identity equals {identity!r}."
        )
    return coerced
