"""Models: validation before any request, typed metadata, the hot-load status rules."""

from __future__ import annotations

import types

import pytest
from core_testkit import BASE_MODEL
from hypothesis import given
from hypothesis import strategies as st

from fireworks_deploy import (
    DeploymentConfig,
    DeploymentInfo,
    DeploymentState,
    HotloadStatus,
    IncrementalSnapshotMetadata,
    InvalidConfigError,
    LoadedAdapter,
    LoadingState,
    ReplicaStatus,
)
from fireworks_deploy._models import (
    check_hotload_args,
    check_hotload_target,
    validate_deployment_id,
    validate_identity,
)

ids = st.from_regex(r"\A[a-z0-9](?:[a-z0-9-]{0,20}[a-z0-9])?\Z")
identities = st.text(
    alphabet=st.characters(min_codepoint=33, max_codepoint=126, exclude_characters="/"),
    min_size=1,
    max_size=30,
)


class TestDeploymentConfig:
    def test_defaults_match_the_seed(self) -> None:
        """Defaults are the seed's: 0..1 replicas, H200, FW_HOSTED, hot-load on."""
        config = DeploymentConfig("dep-1", BASE_MODEL)
        assert config.min_replica_count == 0
        assert config.max_replica_count == 1
        assert config.accelerator_type == "NVIDIA_H200_141GB"
        assert config.hot_load_bucket_type == "FW_HOSTED"
        assert config.enable_hot_load is True
        assert config.disable_speculative_decoding is False
        assert config.extra_args is None
        assert config.extra_values is None

    @pytest.mark.parametrize(
        "kwargs",
        [
            {"deployment_id": ""},
            {"deployment_id": "Bad_Id"},
            {"deployment_id": "-leading"},
            {"deployment_id": "trailing-"},
            {"deployment_id": "a" * 64},
            {"deployment_id": "has/slash"},
            {"base_model": ""},
            {"base_model": "   "},
            {"min_replica_count": -1},
            {"max_replica_count": -1},
            {"min_replica_count": 2, "max_replica_count": 1},
            {"min_replica_count": True},
            {"min_replica_count": 1.5},
            {"hot_load_transition_type": "sometimes"},
            {"accept_shapeless_risk": True, "deployment_shape": "accounts/x/deploymentShapes/y"},
            {"expected_deployment_shape": "a", "deployment_shape": "b"},
            {"extra_args": "--foo 1"},
            {"extra_args": ["--ok", 3]},
            {"extra_values": {"a": 1}},
            {"enable_hot_load": "yes"},
            {"region": 5},
        ],
    )
    def test_bad_input_raises_invalid_config(self, kwargs: dict[str, object]) -> None:
        """Every malformed field raises InvalidConfigError, a ValueError."""
        args: dict[str, object] = {"deployment_id": "dep-1", "base_model": BASE_MODEL}
        args.update(kwargs)
        with pytest.raises(InvalidConfigError) as info:
            DeploymentConfig(**args)  # type: ignore[arg-type]
        assert isinstance(info.value, ValueError)

    def test_transition_type_is_normalised(self) -> None:
        """'sync' becomes 'SYNC' as the official client sends it."""
        assert (
            DeploymentConfig(
                "d", BASE_MODEL, hot_load_transition_type="sync"
            ).hot_load_transition_type
            == "SYNC"
        )

    def test_is_mutable_and_checked_on_set(self) -> None:
        """Like the official dataclass, a config can be changed; each field is checked when set."""
        config = DeploymentConfig("d", BASE_MODEL)
        config.max_replica_count = 3
        config.hot_load_transition_type = "sync"
        assert (config.max_replica_count, config.hot_load_transition_type) == (3, "SYNC")
        with pytest.raises(InvalidConfigError):
            config.deployment_id = "Not Valid"
        with pytest.raises(InvalidConfigError):
            config.min_replica_count = -1

    def test_validate_rechecks_the_whole_config(self) -> None:
        """validate() catches what setting one field cannot: cross-field rules, in-place edits."""
        config = DeploymentConfig("d", BASE_MODEL, extra_args=["--a"])
        config.validate()
        config.min_replica_count = 2  # max is 1
        with pytest.raises(InvalidConfigError, match="min_replica_count"):
            config.validate()
        config.min_replica_count = 0
        assert config.extra_args is not None
        config.extra_args.append(3)  # type: ignore[arg-type]
        with pytest.raises(InvalidConfigError, match="extra_args"):
            config.validate()

    def test_from_training_profile_pins_the_shape(self) -> None:
        """from_training_profile() sets the shape and the guard that it stays the profile's."""
        shape = "accounts/f/deploymentShapes/s/versions/1"
        profile = types.SimpleNamespace(deployment_shape_version=shape)
        config = DeploymentConfig.from_training_profile(
            deployment_id="d", base_model=BASE_MODEL, profile=profile, max_replica_count=2
        )
        assert config.deployment_shape == config.expected_deployment_shape
        assert config.deployment_shape == shape
        with pytest.raises(InvalidConfigError, match="deployment_shape_version"):
            DeploymentConfig.from_training_profile(
                deployment_id="d", base_model=BASE_MODEL, profile=types.SimpleNamespace()
            )

    @given(deployment_id=ids, lo=st.integers(0, 5), extra=st.integers(0, 5))
    def test_valid_configs_construct(self, deployment_id: str, lo: int, extra: int) -> None:
        """Any valid id and min <= max constructs."""
        config = DeploymentConfig(
            deployment_id, BASE_MODEL, min_replica_count=lo, max_replica_count=lo + extra
        )
        assert config.deployment_id == deployment_id


class TestValidators:
    @pytest.mark.parametrize("bad", ["", "UPPER", "a_b", None, 3, "a" * 64, "a--"])
    def test_deployment_id_rejected(self, bad: object) -> None:
        """Malformed deployment ids raise before any request."""
        with pytest.raises(InvalidConfigError):
            validate_deployment_id(bad)

    @pytest.mark.parametrize("bad", ["", "  ", "a/b", "a b", "tab\t", None, 7])
    def test_identity_rejected(self, bad: object) -> None:
        """Snapshot identities must be one non-empty path segment."""
        with pytest.raises(InvalidConfigError):
            validate_identity(bad)

    @pytest.mark.parametrize(
        ("deployment_id", "base_model", "identity", "path"),
        [
            ("dep", "", "s1", None),
            ("dep", "m\nx", "s1", None),
            ("Dep", BASE_MODEL, "s1", None),
            ("dep", BASE_MODEL, "a/b", None),
            ("dep", BASE_MODEL, "s1", ""),
            ("dep", BASE_MODEL, "s1", "gs://b/x\r\n"),
        ],
    )
    def test_hotload_args_rejected(
        self, deployment_id: str, base_model: str, identity: str, path: str | None
    ) -> None:
        """Hot-load arguments are checked before any request."""
        with pytest.raises(InvalidConfigError):
            check_hotload_args(deployment_id, base_model, identity, None, path, None)

    @pytest.mark.parametrize("bad", ["abc\n", "abc\r\n", "\nabc", "a" * 63 + "\n", "abc\x00"])
    def test_trailing_newline_in_deployment_id_rejected(self, bad: str) -> None:
        """The whole id must match: "abc\\n" is not "abc" (fullmatch, not `$`)."""
        with pytest.raises(InvalidConfigError):
            validate_deployment_id(bad)
        with pytest.raises(InvalidConfigError):
            DeploymentConfig(bad, BASE_MODEL)

    @pytest.mark.parametrize("bad", ["snap\n", "snap\x7f", "sn\u2028ap", b"snap", ["s"], 1.5])
    def test_identity_control_and_non_strings_rejected(self, bad: object) -> None:
        """Identities with line breaks or non-printables, and non-strings, are refused."""
        with pytest.raises(InvalidConfigError):
            validate_identity(bad)

    @pytest.mark.parametrize("identity", [None, 3, b"s1", "", "s1\n"])
    def test_hotload_identity_is_required(self, identity: object) -> None:
        """A hot-load without a valid snapshot identity (None included) is refused."""
        with pytest.raises(InvalidConfigError, match="identity"):
            check_hotload_args("dep", BASE_MODEL, identity, None, None, None)  # type: ignore[arg-type]

    def test_hotload_target(self) -> None:
        """A status read validates only what routes it: the deployment and the base model."""
        check_hotload_target("dep", BASE_MODEL)
        for deployment_id, base_model in [("dep\n", BASE_MODEL), ("dep", ""), ("dep", "m\n")]:
            with pytest.raises(InvalidConfigError):
                check_hotload_target(deployment_id, base_model)

    def test_delta_onto_itself_rejected(self) -> None:
        """A delta whose previous snapshot is itself is refused."""
        with pytest.raises(InvalidConfigError):
            check_hotload_args(
                "dep", BASE_MODEL, "s1", {"previous_snapshot_identity": "s1"}, None, None
            )


class TestIncrementalSnapshotMetadata:
    def test_defaults_are_the_wire_tokens(self) -> None:
        """Defaults are arc_v2 and the wire's 'alder32' spelling."""
        meta = IncrementalSnapshotMetadata(previous_snapshot_identity="s1")
        assert meta.compression_format == "arc_v2"
        assert meta.checksum_format == "alder32"

    @given(prev=identities, fmt=st.sampled_from(["arc_v1", "arc_v2", "arc_v3"]))
    def test_coerce_accepts_the_official_dict(self, prev: str, fmt: str) -> None:
        """The seed's plain dict coerces to the equal typed object."""
        typed = IncrementalSnapshotMetadata(previous_snapshot_identity=prev, compression_format=fmt)
        coerced = IncrementalSnapshotMetadata.coerce(
            {
                "previous_snapshot_identity": prev,
                "compression_format": fmt,
                "checksum_format": "alder32",
            }
        )
        assert coerced == typed
        assert IncrementalSnapshotMetadata.coerce(typed) is typed
        assert IncrementalSnapshotMetadata.coerce(None) is None

    @pytest.mark.parametrize(
        "bad",
        [
            {},
            {"previous_snapshot_identity": "s", "extra": 1},
            {"previous_snapshot_identity": "s", "checksum_format": "adler32"},
            {"previous_snapshot_identity": "s", "compression_format": "gzip"},
            {"previous_snapshot_identity": ""},
            ["previous_snapshot_identity"],
        ],
    )
    def test_coerce_rejects_bad_metadata(self, bad: object) -> None:
        """Unknown keys, a missing previous identity or unknown formats are refused."""
        with pytest.raises(InvalidConfigError):
            IncrementalSnapshotMetadata.coerce(bad)  # type: ignore[arg-type]


def _replica(**kw: object) -> ReplicaStatus:
    return ReplicaStatus(**kw)  # type: ignore[arg-type]


class TestHotloadStatus:
    def test_every_replica_must_serve(self) -> None:
        """One ready replica is not enough while another is not."""
        ready = _replica(readiness=True, current_snapshot_identity="s2")
        lagging = _replica(readiness=False, current_snapshot_identity="s1")
        assert not HotloadStatus(deployment_id="d", replicas=(ready, lagging)).serves("s2")
        assert HotloadStatus(deployment_id="d", replicas=(ready, ready)).serves("s2")

    def test_no_replicas_is_not_serving(self) -> None:
        """An empty replica list is 'pending', never success."""
        assert not HotloadStatus(deployment_id="d").serves("s")

    def test_loaded_adapter_counts(self) -> None:
        """A ready replica listing the identity as a loaded adapter serves it."""
        replica = _replica(
            readiness=True,
            current_snapshot_identity="base",
            loaded_adapters=(LoadedAdapter(identity="lora-1", status="loaded"),),
        )
        assert replica.serves("lora-1")
        loading = _replica(
            readiness=True, loaded_adapters=(LoadedAdapter(identity="lora-1", status="loading"),)
        )
        assert not loading.serves("lora-1")

    def test_error_only_for_our_target(self) -> None:
        """Stage error counts as failure only when it targets our identity."""
        ours = _replica(loading_state=LoadingState(stage="error", target_snapshot_identity="s2"))
        stale = _replica(loading_state=LoadingState(stage="error", target_snapshot_identity="s1"))
        status = HotloadStatus(deployment_id="d", replicas=(stale, ours))
        assert status.failed_replicas("s2") == (ours,)
        assert status.failed_replicas("s3") == ()

    def test_status_is_truthy_even_when_empty(self) -> None:
        """A status object is always truthy, never a bool sentinel."""
        assert bool(HotloadStatus(deployment_id="d")) is True

    def test_summary_names_every_replica(self) -> None:
        """The summary shows each replica's readiness, stage and snapshot."""
        status = HotloadStatus(
            deployment_id="d",
            replicas=(_replica(identity="p0", readiness=True), _replica(identity="p1")),
        )
        assert "p0" in status.summary()
        assert "p1" in status.summary()
        assert HotloadStatus(deployment_id="d").summary() == "no replicas reported yet"


class TestDeploymentInfo:
    def test_inference_model(self) -> None:
        """inference_model is accounts/{account}/deployments/{id}."""
        info = DeploymentInfo(
            deployment_id="d1", name="accounts/a/deployments/d1", state="READY", account_id="a"
        )
        assert info.inference_model == "accounts/a/deployments/d1"
        assert info.is_ready
        assert not info.is_bad

    @pytest.mark.parametrize("state", ["FAILED", "DELETING", "DELETED"])
    def test_bad_states(self, state: str) -> None:
        """FAILED, DELETING and DELETED are bad states."""
        info = DeploymentInfo(deployment_id="d", name="", state=state, account_id="a")
        assert info.is_bad
        assert not info.is_ready

    def test_state_enum_compares_to_str(self) -> None:
        """DeploymentState members compare equal to the wire strings."""
        assert DeploymentState.READY == "READY"
        assert str(DeploymentState.CREATING) == "CREATING"

    def test_raw_not_in_repr(self) -> None:
        """raw is kept but does not flood the repr."""
        info = DeploymentInfo(
            deployment_id="d", name="", state="READY", account_id="a", raw={"huge": "x" * 50}
        )
        assert "huge" not in repr(info)
        assert info.raw["huge"] == "x" * 50
