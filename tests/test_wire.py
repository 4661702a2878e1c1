"""The wire converter: golden bodies, tolerant parsing, update masks, camel/snake naming."""

from __future__ import annotations

import contextlib
import json
from typing import Any

import pytest
from core_testkit import BASE_MODEL, load_fixture
from hypothesis import given, settings
from hypothesis import strategies as st

from fireworks_deploy import (
    DeploymentConfig,
    IncrementalSnapshotMetadata,
    InvalidConfigError,
    ResponseValidationError,
    _wire,
)

json_scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20)
)
json_values = st.recursive(
    json_scalars,
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=12), children, max_size=5)
    ),
    max_leaves=20,
)
deployment_keys = st.sampled_from(
    [
        "name",
        "state",
        "baseModel",
        "base_model",
        "description",
        "hotLoadBucketUrl",
        "hotLoadTrainerJob",
        "hot_load_trainer_job",
        "hotLoadTransitionType",
        "hot_load_transition_type",
        "deploymentShape",
        "acceleratorType",
        "region",
        "placement",
        "minReplicaCount",
        "maxReplicaCount",
        "desiredReplicaCount",
        "replicaCount",
        "enableHotLoad",
        "forTraining",
        "createTime",
        "updateTime",
        "raw",
        "accountId",
    ]
)
replica_keys = st.sampled_from(
    [
        "identity",
        "readiness",
        "current_snapshot_identity",
        "loading_state",
        "loaded_adapters",
        "raw",
        "stage",
        "target_snapshot_identity",
        "status",
    ]
)


def same_json(a: Any, b: Any) -> bool:
    """Byte-for-byte equal once serialised canonically."""
    return json.dumps(a, sort_keys=True) == json.dumps(b, sort_keys=True)


def full_config() -> DeploymentConfig:
    return DeploymentConfig(
        "rl-dep-1",
        BASE_MODEL,
        region="US_VIRGINIA_1",
        min_replica_count=1,
        max_replica_count=1,
        for_training=True,
        hot_load_trainer_job="accounts/acme/rlorTrainerJobs/abc",
        hot_load_transition_type="sync",
        deployment_shape="accounts/fireworks/deploymentShapes/rft-qwen3-8b/versions/v1",
        extra_args=["--foo 1", "--bar"],
        extra_values={"maxBatchSize": "64"},
        annotations={"team": "rl"},
        preemptible=True,
        disable_speculative_decoding=True,
    )


class TestGoldenBodies:
    def test_create_body_full_config(self) -> None:
        """A full config produces the golden camelCase body, keys in the official order."""
        body = _wire.deployment_body(full_config())
        golden = load_fixture("create_body_full.json")
        assert same_json(body, golden)
        assert list(body) == list(golden)

    def test_create_body_minimal_sends_accelerator(self) -> None:
        """Without a shape, acceleratorType is sent; without region, no placement."""
        body = _wire.deployment_body(DeploymentConfig("d", BASE_MODEL))
        assert body == {
            "baseModel": BASE_MODEL,
            "description": "Fireworks training deployment",
            "minReplicaCount": 0,
            "maxReplicaCount": 1,
            "enableHotLoad": True,
            "forTraining": False,
            "hotLoadBucketType": "FW_HOSTED",
            "acceleratorType": "NVIDIA_H200_141GB",
        }

    def test_create_params(self) -> None:
        """Create query flags appear only when set."""
        assert _wire.create_params(full_config()) == {
            "deploymentId": "rl-dep-1",
            "disableSpeculativeDecoding": "true",
        }
        flagged = DeploymentConfig(
            "d", BASE_MODEL, skip_shape_validation=True, accept_shapeless_risk=True
        )
        assert _wire.create_params(flagged) == {
            "deploymentId": "d",
            "skipShapeValidation": "true",
            "acceptShapelessRisk": "true",
        }

    def test_hotload_base_body(self) -> None:
        """A base load is identity plus reset_prompt_cache, no metadata key."""
        body = _wire.hotload_body("step-0-base-a1b2c3d4", None, reset_prompt_cache=True)
        assert same_json(body, load_fixture("hotload_base_body.json"))

    def test_hotload_delta_body(self) -> None:
        """A delta carries snake_case incremental_snapshot_metadata with 'alder32'."""
        meta = IncrementalSnapshotMetadata(previous_snapshot_identity="step-6-a1b2c3d4")
        body = _wire.hotload_body("step-7-a1b2c3d4", meta, reset_prompt_cache=True)
        assert same_json(body, load_fixture("hotload_delta_body.json"))

    def test_hotload_body_without_reset(self) -> None:
        """reset_prompt_cache=None leaves the key out (the gateway fallback)."""
        assert _wire.hotload_body("s", None, reset_prompt_cache=None) == {"identity": "s"}

    def test_completion_body(self) -> None:
        """The probe body is the official one: token prompt [1, 2], 4 tokens, temperature 0."""
        assert _wire.completion_body("accounts/a/deployments/d") == {
            "model": "accounts/a/deployments/d",
            "prompt": [1, 2],
            "max_tokens": 4,
            "temperature": 0.0,
        }

    def test_scale_body(self) -> None:
        """scale_to_zero sends max then min, both 0."""
        body = _wire.scale_body(0)
        assert list(body.items()) == [("maxReplicaCount", 0), ("minReplicaCount", 0)]


class TestDeploymentFromWire:
    def test_realistic_response(self) -> None:
        """Every known field is read; unknown fields and enum values stay in raw."""
        payload = load_fixture("deployment_response.json")
        info = _wire.deployment_from_wire(payload, account_id="ignored")
        assert info.deployment_id == "rl-qwen3-8b-1716400000"
        assert info.account_id == "my-team"
        assert info.state == "CREATING"
        assert info.hot_load_transition_type == "HOT_LOAD_TRANSITION_TYPE_SYNC"
        assert info.hot_load_bucket_url.startswith("gs://")  # type: ignore[union-attr]
        assert info.deployment_shape_version == payload["deploymentShape"]
        assert info.region == "US_VIRGINIA_1"
        assert info.min_replica_count == 1
        assert info.replica_count == 0
        assert info.enable_hot_load is True
        assert info.for_training is True
        assert info.inference_model == "accounts/my-team/deployments/rl-qwen3-8b-1716400000"
        assert info.raw == payload
        assert info.raw["someFutureField"] == {"nested": [1, 2, 3]}

    @pytest.mark.parametrize(
        "value", ["HOT_LOAD_TRANSITION_TYPE_SYNC", "sync", "", "SOMETHING_NEW", "ASYNC"]
    )
    def test_transition_type_never_crashes(self, value: str) -> None:
        """Any hotLoadTransitionType is kept as sent (the official parser crashes)."""
        info = _wire.deployment_from_wire(
            {"name": "accounts/a/deployments/d", "state": "READY", "hotLoadTransitionType": value},
            account_id="a",
        )
        assert info.hot_load_transition_type == value

    def test_unknown_state_kept(self) -> None:
        """An unknown state string survives as is."""
        info = _wire.deployment_from_wire(
            {"name": "accounts/a/deployments/d", "state": "PAUSED"}, account_id="a"
        )
        assert info.state == "PAUSED"
        assert not info.is_ready
        assert not info.is_bad

    def test_missing_state_is_unknown(self) -> None:
        """A deployment without state reads as UNKNOWN."""
        info = _wire.deployment_from_wire({"name": "accounts/a/deployments/d"}, account_id="a")
        assert info.state == "UNKNOWN"

    def test_snake_case_fallbacks(self) -> None:
        """snake_case keys are read when the camelCase one is absent."""
        info = _wire.deployment_from_wire(
            {"name": "accounts/a/deployments/d", "base_model": "m", "hot_load_trainer_job": "j"},
            account_id="a",
        )
        assert info.base_model == "m"
        assert info.hot_load_trainer_job == "j"

    @pytest.mark.parametrize(
        "payload",
        [
            [],
            "text",
            None,
            {"state": "READY"},
            {"name": "accounts/a/deployments/d", "minReplicaCount": "many"},
            {"name": "accounts/a/deployments/d", "minReplicaCount": [1]},
            {"name": "accounts/a/deployments/d", "enableHotLoad": "false"},
            {"name": "accounts/a/deployments/d", "baseModel": {"x": 1}},
            {"name": "accounts/a/deployments/d", "minReplicaCount": 1e400},
        ],
    )
    def test_malformed_raises_validation_error(self, payload: Any) -> None:
        """A payload of the wrong shape raises ResponseValidationError, not a crash or a guess."""
        with pytest.raises(ResponseValidationError):
            _wire.deployment_from_wire(payload, account_id="a")

    def test_int64_as_string_is_read(self) -> None:
        """Proto3 JSON may encode counts as digit strings; they read as ints."""
        info = _wire.deployment_from_wire(
            {"name": "accounts/a/deployments/d", "replicaCount": "3"}, account_id="a"
        )
        assert info.replica_count == 3

    @settings(max_examples=300, deadline=None)
    @given(payload=json_values)
    def test_arbitrary_json_only_raises_validation_error(self, payload: Any) -> None:
        """Arbitrary JSON yields a DeploymentInfo or ResponseValidationError, nothing else."""
        with contextlib.suppress(ResponseValidationError):
            _wire.deployment_from_wire(payload, account_id="a", deployment_id="d")

    @settings(max_examples=300, deadline=None)
    @given(extra=st.dictionaries(deployment_keys, json_values, max_size=8))
    def test_arbitrary_known_fields_only_raise_validation_error(
        self, extra: dict[str, Any]
    ) -> None:
        """Known keys holding arbitrary JSON parse or raise ResponseValidationError."""
        payload = {"name": "accounts/a/deployments/d", **extra}
        try:
            info = _wire.deployment_from_wire(payload, account_id="a")
        except ResponseValidationError:
            return
        assert info.raw == payload
        assert isinstance(info.state, str)


class TestHotloadStatusFromWire:
    def test_two_replicas(self) -> None:
        """Every replica is read; unknown replica fields stay in raw."""
        payload = load_fixture("hotload_status_2_replicas.json")
        status = _wire.hotload_status_from_wire(payload, deployment_id="d")
        assert len(status.replicas) == 2
        first, second = status.replicas
        assert first.identity == "pod-7f9c"
        assert first.readiness is True
        assert first.loaded_adapters[0].identity == "lora-step-7-a1b2c3d4"
        assert second.loading_state.stage == "downloading"
        assert second.raw["readiness_reason"] == "loading"
        assert not status.serves("step-7-a1b2c3d4")
        assert status.raw == payload

    def test_missing_replicas_is_empty(self) -> None:
        """No replicas key reads as no replicas yet (pending)."""
        assert _wire.hotload_status_from_wire({}, deployment_id="d").replicas == ()

    def test_null_fields_use_defaults(self) -> None:
        """Null loading_state, stage and adapters fall back to defaults."""
        status = _wire.hotload_status_from_wire(
            {
                "replicas": [
                    {"loading_state": None, "loaded_adapters": None},
                    {"loading_state": {"stage": None}},
                ]
            },
            deployment_id="d",
        )
        assert [r.loading_state.stage for r in status.replicas] == ["unknown", "unknown"]

    @pytest.mark.parametrize(
        "payload",
        [
            {"replicas": {"0": {}}},
            {"replicas": ["x"]},
            {"replicas": [{"readiness": "yes"}]},
            {"replicas": [{"loading_state": "error"}]},
            {"replicas": [{"loaded_adapters": {"identity": "a"}}]},
            [],
        ],
    )
    def test_malformed_raises_validation_error(self, payload: Any) -> None:
        """Malformed status bodies raise ResponseValidationError."""
        with pytest.raises(ResponseValidationError):
            _wire.hotload_status_from_wire(payload, deployment_id="d")

    @settings(max_examples=300, deadline=None)
    @given(payload=json_values)
    def test_arbitrary_json_only_raises_validation_error(self, payload: Any) -> None:
        """Arbitrary JSON yields a status or ResponseValidationError."""
        with contextlib.suppress(ResponseValidationError):
            _wire.hotload_status_from_wire(payload, deployment_id="d")

    @settings(max_examples=300, deadline=None)
    @given(replicas=st.lists(st.dictionaries(replica_keys, json_values, max_size=6), max_size=3))
    def test_arbitrary_replicas_only_raise_validation_error(
        self, replicas: list[dict[str, Any]]
    ) -> None:
        """Replicas with arbitrary known fields parse or raise ResponseValidationError."""
        try:
            status = _wire.hotload_status_from_wire({"replicas": replicas}, deployment_id="d")
        except ResponseValidationError:
            return
        assert len(status.replicas) == len(replicas)


class TestAccounts:
    def test_one_account(self) -> None:
        """The account id is the name without 'accounts/'."""
        assert _wire.account_from_accounts({"accounts": [{"name": "accounts/acme"}]}) == "acme"

    @pytest.mark.parametrize("payload", [{}, {"accounts": []}, {"accounts": None}])
    def test_no_account(self, payload: Any) -> None:
        """A key with no account is a clear InvalidConfigError."""
        with pytest.raises(InvalidConfigError, match="not associated with any account"):
            _wire.account_from_accounts(payload)

    def test_several_accounts(self) -> None:
        """Several accounts ask for an explicit account_id."""
        with pytest.raises(InvalidConfigError, match="account_id"):
            _wire.account_from_accounts(
                {"accounts": [{"name": "accounts/a"}, {"name": "accounts/b"}]}
            )

    @pytest.mark.parametrize(
        "payload", [{"accounts": [{}]}, {"accounts": [{"name": "accounts/"}]}, []]
    )
    def test_malformed(self, payload: Any) -> None:
        """A nameless account is a ResponseValidationError."""
        with pytest.raises(ResponseValidationError):
            _wire.account_from_accounts(payload)


class TestAccountIds:
    @pytest.mark.parametrize("good", ["acme", "a", "my-team-2", "a" * 63])
    def test_valid(self, good: str) -> None:
        """Lower-case letters, digits and hyphens, starting with a letter or digit."""
        assert _wire.validate_account_id(good) == good

    @pytest.mark.parametrize(
        "bad", ["acme\n", "acme\r\n", "\nacme", "Acme", "-acme", "a" * 64, "", None, 7, "a/b"]
    )
    def test_invalid(self, bad: object) -> None:
        """Anything else, a trailing newline included, is refused before any request."""
        with pytest.raises(InvalidConfigError):
            _wire.validate_account_id(bad)

    def test_resolved_account_with_newline_is_refused(self) -> None:
        """An account name from the server is validated the same way by the manager's path."""
        name = _wire.account_from_accounts({"accounts": [{"name": "accounts/acme\n"}]})
        with pytest.raises(InvalidConfigError):
            _wire.validate_account_id(name)


class TestDeepPayloads:
    def test_deep_values_in_known_fields_raise_typed(self) -> None:
        """A deeply nested value where a scalar belongs raises ResponseValidationError."""
        deep: Any = 1
        for _ in range(5000):
            deep = [deep]
        payload = {"name": "accounts/a/deployments/d", "minReplicaCount": deep, "state": deep}
        with pytest.raises(ResponseValidationError):
            _wire.deployment_from_wire(payload, account_id="a")
        replica = {"identity": deep, "loading_state": {"stage": deep}}
        with pytest.raises(ResponseValidationError):
            _wire.hotload_status_from_wire({"replicas": [replica]}, deployment_id="d")


class TestListPage:
    def test_page(self) -> None:
        """A list page yields each deployment and the next page token."""
        found, token = _wire.deployments_page_from_wire(
            load_fixture("deployments_list_page.json"), account_id="acme"
        )
        assert [d.deployment_id for d in found] == ["dep-a", "dep-b"]
        assert found[1].hot_load_transition_type == "SOMETHING_NEW"
        assert token == "page-2"

    def test_last_page(self) -> None:
        """An empty token ends the listing."""
        assert _wire.deployments_page_from_wire(
            {"deployments": [], "nextPageToken": ""}, account_id="a"
        ) == ([], None)


class TestUpdateMask:
    def test_camel_body_snake_csv(self) -> None:
        """The body stays camelCase and the mask is a snake_case CSV."""
        body, mask = _wire.update_body_and_mask(
            {"hotLoadTrainerJob": "j", "hot_load_transition_type": "SYNC"}, None
        )
        assert body == {"hotLoadTrainerJob": "j", "hotLoadTransitionType": "SYNC"}
        assert mask == "hot_load_trainer_job,hot_load_transition_type"

    def test_explicit_mask_list_and_csv(self) -> None:
        """A mask may be a list or a CSV string."""
        assert (
            _wire.update_body_and_mask({"hotLoadTrainerJob": "j"}, ["hot_load_trainer_job"])[1]
            == "hot_load_trainer_job"
        )
        assert _wire.update_body_and_mask({"a": 1, "b": 2}, "a, b")[1] == "a,b"

    @pytest.mark.parametrize(
        ("body", "mask"),
        [
            ({}, None),
            ({"a": 1}, "hotLoadTrainerJob"),
            ({"a": 1}, ""),
            ({"a": 1}, "a,,"),
            ({"a": 1}, "b"),
            ({"bad key": 1}, None),
        ],
    )
    def test_bad_updates_rejected(self, body: dict[str, Any], mask: str | None) -> None:
        """Empty bodies, camelCase or dangling mask paths raise InvalidConfigError."""
        with pytest.raises(InvalidConfigError):
            _wire.update_body_and_mask(body, mask)


snake_names = st.from_regex(r"\A[a-z][a-z0-9]{0,6}(_[a-z][a-z0-9]{0,6}){0,4}\Z")


class TestNaming:
    @given(name=snake_names)
    def test_camel_snake_round_trip(self, name: str) -> None:
        """snake(camel(x)) == x for snake_case names."""
        assert _wire.snake(_wire.camel(name)) == name

    def test_examples(self) -> None:
        """The control-plane names convert both ways."""
        assert _wire.camel("hot_load_trainer_job") == "hotLoadTrainerJob"
        assert _wire.snake("minReplicaCount") == "min_replica_count"

    @given(body=st.dictionaries(snake_names, st.integers(), min_size=1, max_size=5))
    def test_update_mask_round_trip(self, body: dict[str, int]) -> None:
        """Every snake_case key becomes a camelCase body key and a snake_case mask path."""
        wire, mask = _wire.update_body_and_mask(body, None)
        assert set(mask.split(",")) == set(body)
        assert {_wire.snake(k) for k in wire} == set(body)


configs = st.builds(
    DeploymentConfig,
    deployment_id=st.from_regex(r"\A[a-z0-9](?:[a-z0-9-]{0,10}[a-z0-9])?\Z"),
    base_model=st.text(min_size=1, max_size=20).filter(str.strip),
    description=st.none() | st.text(max_size=10),
    deployment_shape=st.none() | st.just("accounts/fireworks/deploymentShapes/s/versions/1"),
    region=st.none() | st.sampled_from(["US_VIRGINIA_1", "US_OHIO_1"]),
    min_replica_count=st.just(0),
    max_replica_count=st.integers(0, 4),
    hot_load_bucket_type=st.none() | st.just("FW_HOSTED"),
    hot_load_trainer_job=st.none() | st.just("accounts/a/rlorTrainerJobs/j"),
    enable_hot_load=st.booleans(),
    hot_load_transition_type=st.none() | st.sampled_from(["sync", "ASYNC"]),
    disable_speculative_decoding=st.booleans(),
    extra_args=st.none() | st.lists(st.sampled_from(["--a 1", "--b", "--c  2 3"]), max_size=3),
    extra_values=st.none() | st.dictionaries(st.text(max_size=4), st.text(max_size=4), max_size=2),
    for_training=st.booleans(),
    preemptible=st.booleans(),
)


class TestCreateBodyProperties:
    @given(config=configs)
    def test_body_satisfies_wire_rules(self, config: DeploymentConfig) -> None:
        """Every valid config's body follows the official client's wire rules."""
        body = _wire.deployment_body(config)
        assert all("_" not in key for key in body)
        for key in (
            "baseModel",
            "description",
            "minReplicaCount",
            "maxReplicaCount",
            "enableHotLoad",
            "forTraining",
        ):
            assert key in body
        assert ("deploymentShape" in body) == bool(config.deployment_shape)
        if config.deployment_shape:
            assert "acceleratorType" not in body
        assert all(not any(c.isspace() for c in a) for a in body.get("extraArgs", []))
        assert body.get("preemptible", True) is True
        assert body.get("hotLoadTransitionType") in (None, "SYNC", "ASYNC")
        params = _wire.create_params(config)
        assert params["deploymentId"] == config.deployment_id
        assert ("disableSpeculativeDecoding" in params) == config.disable_speculative_decoding
        json.dumps(body)


class TestResetPromptCacheDetection:
    def test_pydantic_message_detected(self) -> None:
        """The documented 400 text is recognised."""
        msg = "1 validation error: Extra inputs are not permitted, field: 'reset_prompt_cache'"
        assert _wire.rejects_reset_prompt_cache(400, msg, {"error": {"message": msg}})

    @pytest.mark.parametrize(
        ("status", "msg"),
        [
            (400, "Extra inputs are not permitted, field: 'identity'"),
            (422, "reset_prompt_cache Extra inputs are not permitted"),
            (400, "reset_prompt_cache is bad"),
        ],
    )
    def test_other_errors_not_detected(self, status: int, msg: str) -> None:
        """Other fields, statuses or messages are not the fallback case."""
        assert not _wire.rejects_reset_prompt_cache(status, msg, None)
