"""The official client's names on our managers (`_compat`), each against the local plane or respx.

The official `fireworks.training.sdk.DeploymentManager` itself is compared with ours in
tests/compat (marker `compat`); here every adapter is exercised without it: the dict that
`hotload_check_status` returns, `account_id` resolving on first access, `reattach_trainer`, the
REST helpers, the attributes, the environment headers, configs from any object with the official
fields, and errors that the official client's `except` clauses still catch.
"""

from __future__ import annotations

import types
from collections.abc import AsyncIterator, Iterator
from typing import Any

import attrs
import httpx
import pytest
import respx
from core_testkit import ACCOUNT, BASE_URL, FAST_RETRY, dep_path, status_json
from local_kit import API_KEY, BASE_MODEL, INPROCESS_URL, async_manager, config, sync_manager

from fireworks_deploy import (
    AsyncDeploymentManager,
    DeploymentConfig,
    DeploymentFailedError,
    DeploymentManager,
    DeploymentNotFoundError,
    HotloadFailedError,
    HotloadTimeoutError,
    InvalidConfigError,
    NotFoundError,
    ResponseValidationError,
)
from fireworks_deploy._config import env_headers
from fireworks_deploy.local import Fault, LocalControlPlane

TRAINER_A = "accounts/local/rlorTrainerJobs/trainer-a"
TRAINER_B = "accounts/local/rlorTrainerJobs/trainer-b"
SESSION = "3f1c9a4e-5b7d-4c2a-9e8f-0a1b2c3d4e5f"
FAST = {"poll_interval_s": 0.02}


@pytest.fixture
def plane() -> LocalControlPlane:
    return LocalControlPlane(
        boot_seconds=0.2, hotload_seconds=0.05, update_seconds=0.2, delete_seconds=0.05
    )


@pytest.fixture
async def manager(plane: LocalControlPlane) -> AsyncIterator[AsyncDeploymentManager]:
    async with async_manager(INPROCESS_URL, plane.transport()) as mgr:
        yield mgr


@pytest.fixture
def blocking(plane: LocalControlPlane) -> Iterator[DeploymentManager]:
    with sync_manager(INPROCESS_URL, plane.transport()) as mgr:
        yield mgr


async def ready(manager: AsyncDeploymentManager, deployment_id: str, **fields: Any) -> None:
    await manager.create_or_get(config(deployment_id, **fields))
    await manager.wait_for_ready(deployment_id, timeout_s=10, **FAST)


class TestHotloadCheckStatus:
    async def test_returns_the_gateway_json_as_a_dict(
        self, manager: AsyncDeploymentManager
    ) -> None:
        """The official shape: a dict whose replicas[0] names the served snapshot."""
        await ready(manager, "st")
        await manager.hotload_and_wait("st", BASE_MODEL, "step-0", timeout_seconds=10, **FAST)
        status = await manager.hotload_check_status("st", BASE_MODEL)
        assert type(status) is dict
        replica = status["replicas"][0]
        assert (replica["current_snapshot_identity"], replica["readiness"]) == ("step-0", True)
        assert status == dict((await manager.hotload_status("st", BASE_MODEL)).raw)

    def test_blocking_twin(self, blocking: DeploymentManager) -> None:
        """The blocking manager returns the same dict."""
        blocking.create_or_get(config("st"))
        blocking.wait_for_ready("st", timeout_s=10, **FAST)
        status = blocking.hotload_check_status("st", BASE_MODEL, timeout=5)
        assert isinstance(status["replicas"], list)
        assert status["replicas"]

    @pytest.mark.parametrize(
        ("deployment_id", "base_model", "timeout"),
        [("Bad_Id", BASE_MODEL, 30), ("st", "", 30), ("st", BASE_MODEL, 0)],
    )
    async def test_bad_arguments_raise_before_any_request(
        self,
        manager: AsyncDeploymentManager,
        plane: LocalControlPlane,
        deployment_id: str,
        base_model: str,
        timeout: float,
    ) -> None:
        """Malformed arguments raise InvalidConfigError and send nothing."""
        with pytest.raises(InvalidConfigError):
            await manager.hotload_check_status(deployment_id, base_model, timeout)
        assert plane.stats.total == 0


class TestAttributes:
    def test_account_id_resolves_on_first_access_only(
        self, blocking: DeploymentManager, plane: LocalControlPlane
    ) -> None:
        """As in the official client: one accounts request on first access, none after; repr
        never resolves."""
        assert "account_id=None" in repr(blocking)
        assert plane.stats.requests["accounts"] == 0
        assert blocking.account_id == plane.account
        assert blocking.account_id == plane.account
        assert plane.stats.requests["accounts"] == 1

    async def test_async_account_id_is_known_or_none(
        self, manager: AsyncDeploymentManager, plane: LocalControlPlane
    ) -> None:
        """The async property never does I/O: None until resolved."""
        assert manager.account_id is None
        assert await manager.resolve_account_id() == plane.account
        assert manager.account_id == plane.account

    def test_plain_attributes(self, plane: LocalControlPlane) -> None:
        """api_key, additional_headers and the three URLs read as in the official client."""
        with sync_manager(
            INPROCESS_URL + "/",
            plane.transport(),
            inference_url="https://gateway.example/",
            additional_headers={"X-Gateway-Secret": "s"},
        ) as mgr:
            assert mgr.api_key == API_KEY
            assert mgr.additional_headers == {"X-Gateway-Secret": "s"}
            assert mgr.base_url == INPROCESS_URL
            assert mgr.inference_url == "https://gateway.example"
            assert mgr.hotload_api_url == INPROCESS_URL
            assert API_KEY not in repr(mgr)
        with sync_manager(INPROCESS_URL, plane.transport()) as mgr:
            assert mgr.additional_headers is None

    async def test_boot_time_is_recorded_by_a_successful_wait(
        self, manager: AsyncDeploymentManager, plane: LocalControlPlane
    ) -> None:
        """boot_time_s: None before, the wait's duration after; a failed wait leaves it."""
        assert manager.boot_time_s is None
        await ready(manager, "boot")
        first = manager.boot_time_s
        assert first is not None
        assert 0 < first < 10
        plane.fail_boot("broken")
        await manager.create_or_get(config("broken"))
        with pytest.raises(DeploymentFailedError):
            await manager.wait_for_ready("broken", timeout_s=10, **FAST)
        assert manager.boot_time_s == first

    async def test_close_is_aclose(self, plane: LocalControlPlane) -> None:
        """The official close() exists on the async manager, as a coroutine."""
        mgr = AsyncDeploymentManager(
            api_key=API_KEY, base_url=INPROCESS_URL, transport=plane.transport()
        )
        await mgr.get("anything")
        await mgr.close()
        assert mgr.closed


class TestLastHotloadErrorMessage:
    async def test_set_by_a_failed_load_and_cleared_by_the_next(
        self, manager: AsyncDeploymentManager, plane: LocalControlPlane
    ) -> None:
        """A failed wait leaves its message (as the official False did); a success clears it."""
        await ready(manager, "hl")
        assert manager.last_hotload_error_message is None
        plane.faults.add(Fault("hotload_error", deployment_id="hl", identity="bad"))
        with pytest.raises(HotloadFailedError):
            await manager.hotload_and_wait("hl", BASE_MODEL, "bad", timeout_seconds=10, **FAST)
        assert "'bad'" in (manager.last_hotload_error_message or "")
        await manager.hotload_and_wait("hl", BASE_MODEL, "good", timeout_seconds=10, **FAST)
        assert manager.last_hotload_error_message is None

    def test_set_by_a_timeout_on_the_blocking_manager(
        self, blocking: DeploymentManager, plane: LocalControlPlane
    ) -> None:
        """A hot-load that does not finish in time leaves the timeout's message."""
        blocking.create_or_get(config("slow"))
        blocking.wait_for_ready("slow", timeout_s=10, **FAST)
        plane.faults.add(Fault("replica_disagree", deployment_id="slow"))
        with pytest.raises(HotloadTimeoutError):
            blocking.hotload_and_wait("slow", BASE_MODEL, "s", timeout_seconds=0.5, **FAST)
        assert "did not complete" in (blocking.last_hotload_error_message or "")


class TestWaitForHotloadPollInterval:
    async def test_official_name_positional_and_keyword(
        self, manager: AsyncDeploymentManager
    ) -> None:
        """poll_interval (the official fifth parameter) works by position and by name."""
        await ready(manager, "pi")
        await manager.hotload("pi", BASE_MODEL, "s0")
        status = await manager.wait_for_hotload("pi", BASE_MODEL, "s0", 10, 0.02)
        assert status.serves("s0")
        status = await manager.wait_for_hotload("pi", BASE_MODEL, "s0", poll_interval=0.02)
        assert status.serves("s0")

    @pytest.mark.parametrize(
        ("kwargs", "named"),
        [({"poll_interval": 0}, "poll_interval"), ({"poll_interval_s": -1}, "poll_interval_s")],
    )
    async def test_bad_interval_names_the_parameter(
        self, manager: AsyncDeploymentManager, kwargs: dict[str, float], named: str
    ) -> None:
        """Either spelling is validated before any request, under its own name."""
        with pytest.raises(InvalidConfigError, match=f"^{named} "):
            await manager.wait_for_hotload("pi", BASE_MODEL, "s0", **kwargs)


class TestReattachTrainer:
    async def test_patches_once_and_waits_until_settled(
        self, manager: AsyncDeploymentManager, plane: LocalControlPlane
    ) -> None:
        """Trainer and transition type change in one update; READY on the new trainer after."""
        await ready(manager, "ra", hot_load_trainer_job=TRAINER_A)
        info = await manager.reattach_trainer(
            "ra",
            base_model=BASE_MODEL,
            trainer_job_name=TRAINER_B,
            timeout_s=10,
            poll_interval_s=0.02,
            hot_load_transition_type="sync",
        )
        assert (info.state, info.hot_load_trainer_job) == ("READY", TRAINER_B)
        assert info.hot_load_transition_type == "SYNC"
        assert plane.stats.requests["update"] == 1

    async def test_attached_already_sends_no_update(
        self, manager: AsyncDeploymentManager, plane: LocalControlPlane
    ) -> None:
        """Nothing to change: no PATCH, the deployment as it is."""
        await ready(manager, "ra", hot_load_trainer_job=TRAINER_A)
        info = await manager.reattach_trainer(
            "ra", base_model=BASE_MODEL, trainer_job_name=TRAINER_A, timeout_s=10
        )
        assert info.hot_load_trainer_job == TRAINER_A
        assert plane.stats.requests["update"] == 0

    def test_waits_for_ready_first_on_the_blocking_manager(
        self, blocking: DeploymentManager, plane: LocalControlPlane
    ) -> None:
        """A deployment still CREATING is waited for; a DeploymentInfo is accepted."""
        created = blocking.create_or_get(config("ra", hot_load_trainer_job=TRAINER_A))
        assert created.state == "CREATING"
        info = blocking.reattach_trainer(
            created,
            base_model=BASE_MODEL,
            trainer_job_name=TRAINER_B,
            timeout_s=10,
            poll_interval_s=0.02,
        )
        assert (info.state, info.hot_load_trainer_job) == ("READY", TRAINER_B)
        assert plane.stats.requests["update"] == 1

    async def test_missing_deployment_raises_not_found(
        self, manager: AsyncDeploymentManager
    ) -> None:
        """A deployment that does not exist raises DeploymentNotFoundError (a RuntimeError)."""
        with pytest.raises(DeploymentNotFoundError) as info:
            await manager.reattach_trainer(
                "nope", base_model=BASE_MODEL, trainer_job_name=TRAINER_B, timeout_s=5
            )
        assert isinstance(info.value, RuntimeError)

    @pytest.mark.parametrize(
        "kwargs",
        [
            {"trainer_job_name": ""},
            {"hot_load_transition_type": "sometimes"},
            {"timeout_s": 0},
            {"poll_interval_s": -1},
            {"base_model": ""},
            {"deployment": types.SimpleNamespace()},
        ],
    )
    async def test_bad_arguments_raise_before_any_request(
        self, manager: AsyncDeploymentManager, plane: LocalControlPlane, kwargs: dict[str, Any]
    ) -> None:
        """Every malformed argument raises InvalidConfigError and sends nothing."""
        args: dict[str, Any] = {
            "deployment": "ra",
            "base_model": BASE_MODEL,
            "trainer_job_name": TRAINER_B,
            "timeout_s": 5,
        }
        args.update(kwargs)
        deployment = args.pop("deployment")
        with pytest.raises(InvalidConfigError):
            await manager.reattach_trainer(deployment, **args)
        assert plane.stats.total == 0


class TestRestHelpers:
    async def test_paths_under_base_url_with_any_status_returned(
        self, manager: AsyncDeploymentManager, plane: LocalControlPlane
    ) -> None:
        """_get/_post/_patch/_delete send to base_url + path and return the httpx.Response."""
        accounts = await manager._get("/v1/accounts?pageSize=2")
        assert isinstance(accounts, httpx.Response)
        assert accounts.json()["accounts"][0]["name"] == f"accounts/{plane.account}"
        path = f"/v1/accounts/{plane.account}/deployments"
        missing = await manager._get(f"{path}/raw")
        assert missing.status_code == 404  # returned, not raised
        created = await manager._post(
            path, params={"deploymentId": "raw"}, json={"baseModel": BASE_MODEL}
        )
        assert created.status_code == 200
        assert created.json()["name"] == f"accounts/{plane.account}/deployments/raw"
        patched = await manager._patch(
            f"{path}/raw", json={"maxReplicaCount": 2}, params={"updateMask": "max_replica_count"}
        )
        assert patched.json()["maxReplicaCount"] == 2
        deleted = await manager._delete(f"{path}/raw?ignoreChecks=true&hard=true")
        assert deleted.is_success

    def test_blocking_twins(self, blocking: DeploymentManager, plane: LocalControlPlane) -> None:
        """The blocking manager's helpers return the same responses."""
        response = blocking._get("/v1/accounts", params={"pageSize": "2"}, timeout=5)
        assert response.status_code == 200
        gone = blocking._delete(f"/v1/accounts/{plane.account}/deployments/none")
        assert gone.status_code == 404
        assert blocking._post("/v1/nothing-here", json={}).status_code == 404
        assert blocking._patch("/v1/nothing-here", json={}).status_code in (404, 405)

    @pytest.mark.parametrize(
        ("path", "kwargs"),
        [
            ("v1/accounts", {}),
            ("/v1/accounts", {"data": {"a": "b"}}),
            ("/v1/accounts", {"headers": {"X-Api-Key": "other"}}),
            ("/v1/accounts", {"timeout": 0}),
        ],
    )
    async def test_bad_arguments_raise_before_any_request(
        self,
        manager: AsyncDeploymentManager,
        plane: LocalControlPlane,
        path: str,
        kwargs: dict[str, Any],
    ) -> None:
        """A relative path, an unsupported keyword, a credential header or a bad timeout."""
        with pytest.raises(InvalidConfigError):
            await manager._get(path, **kwargs)
        assert plane.stats.total == 0

    async def test_retries_like_our_own_requests(self) -> None:
        """A GET is retried through a 503; a POST's 500 is returned at once (it may have acted)."""
        router = respx.Router(base_url=BASE_URL, assert_all_called=False)
        flaky = router.get("/v1/thing").mock(
            side_effect=[httpx.Response(503), httpx.Response(200, json={"ok": True})]
        )
        failing = router.post("/v1/thing").respond(500, json={"error": "boom"})
        async with AsyncDeploymentManager(
            api_key=API_KEY,
            base_url=BASE_URL,
            transport=httpx.MockTransport(router.async_handler),
            retry=FAST_RETRY,
        ) as mgr:
            assert (await mgr._get("/v1/thing")).json() == {"ok": True}
            assert flaky.call_count == 2
            assert (await mgr._post("/v1/thing", json={"a": 1})).status_code == 500
            assert failing.call_count == 1
            sent = failing.calls.last.request
            assert sent.headers["X-Api-Key"] == API_KEY
            assert sent.content == b'{"a": 1}'


class TestEnvironmentHeaders:
    @pytest.mark.parametrize(
        ("env", "expected"),
        [
            ({"FIREWORKS_CLIENT_SOURCE": "fireworks-training-skill"}, {"client"}),
            ({"FIREWORKS_CLIENT_SOURCE": "fireworks-training-skill/1.2.3+local"}, {"client"}),
            ({"FIREWORKS_CLIENT_SOURCE": "fireworks-training-skill/"}, set()),
            ({"FIREWORKS_CLIENT_SOURCE": "my-own-tool"}, set()),
            ({"FIREWORKS_CLIENT_SOURCE": "fireworks-training-skill\n"}, set()),
            ({"FIREWORKS_CLIENT_SOURCE": "fireworks-training-skill/" + "a" * 64}, {"client"}),
            ({"FIREWORKS_CLIENT_SOURCE": "fireworks-training-skill/" + "a" * 65}, set()),
            ({"FIREWORKS_SESSION_ID": SESSION}, {"session"}),
            ({"FIREWORKS_SESSION_ID": SESSION.upper()}, {"session"}),
            ({"FIREWORKS_SESSION_ID": SESSION.replace("-", "")}, set()),
            ({"FIREWORKS_SESSION_ID": "{" + SESSION + "}"}, set()),
            ({"FIREWORKS_SESSION_ID": "not-a-uuid"}, set()),
            ({"FIREWORKS_SESSION_ID": ""}, set()),
        ],
    )
    def test_validated_as_the_official_client_does(
        self, env: dict[str, str], expected: set[str]
    ) -> None:
        """Only values the official client would send are sent, unchanged."""
        headers = env_headers(env)
        names = {
            "X-Fireworks-Client-Source": "client",
            "X-Fireworks-Session-Id": "session",
        }
        assert {names[name] for name in headers} == expected
        assert set(headers.values()) <= set(env.values())

    async def test_sent_on_every_request(
        self, monkeypatch: pytest.MonkeyPatch, router: respx.Router, transport: httpx.MockTransport
    ) -> None:
        """Control plane, hot-load and completions requests all carry them, read per request."""
        router.get(dep_path("d")).respond(json={"name": f"accounts/{ACCOUNT}/deployments/d"})
        router.get("/hot_load/v1/models/hot_load").respond(json=status_json())
        router.post("/inference/v1/completions").respond(json={"choices": []})
        async with AsyncDeploymentManager(
            api_key=API_KEY, account_id=ACCOUNT, base_url=BASE_URL, transport=transport
        ) as mgr:
            await mgr.get("d")
            assert "X-Fireworks-Client-Source" not in router.calls.last.request.headers
            monkeypatch.setenv("FIREWORKS_CLIENT_SOURCE", "fireworks-training-skill/2")
            monkeypatch.setenv("FIREWORKS_SESSION_ID", SESSION)
            await mgr.get("d")
            await mgr.hotload_status("d", BASE_MODEL)
            await mgr.warmup(f"accounts/{ACCOUNT}/deployments/d", max_retries=1)
        for call in list(router.calls)[1:]:
            assert call.request.headers["X-Fireworks-Client-Source"] == "fireworks-training-skill/2"
            assert call.request.headers["X-Fireworks-Session-Id"] == SESSION

    async def test_explicit_additional_header_wins(
        self, monkeypatch: pytest.MonkeyPatch, router: respx.Router, transport: httpx.MockTransport
    ) -> None:
        """A caller's header of the same name (any case) replaces the environment's."""
        monkeypatch.setenv("FIREWORKS_SESSION_ID", SESSION)
        route = router.get(dep_path("d")).respond(404)
        async with AsyncDeploymentManager(
            api_key=API_KEY,
            account_id=ACCOUNT,
            base_url=BASE_URL,
            transport=transport,
            additional_headers={"x-fireworks-session-id": "mine"},
        ) as mgr:
            await mgr.get("d")
        assert route.calls.last.request.headers.get_list("x-fireworks-session-id") == ["mine"]


class TestConfigs:
    async def test_any_object_with_the_official_fields(
        self, manager: AsyncDeploymentManager, plane: LocalControlPlane
    ) -> None:
        """An object carrying every field (as the official dataclass does) is accepted."""
        fields = attrs.asdict(config("duck", for_training=True))
        info = await manager.create_or_get(types.SimpleNamespace(**fields))  # type: ignore[arg-type]
        assert info.deployment_id == "duck"
        assert info.for_training is True

    async def test_object_without_the_fields_is_refused(
        self, manager: AsyncDeploymentManager, plane: LocalControlPlane
    ) -> None:
        """Something else (a DeploymentInfo, say) raises naming what it lacks, sends nothing."""
        partial = types.SimpleNamespace(deployment_id="duck", base_model=BASE_MODEL)
        with pytest.raises(InvalidConfigError, match="preemptible"):
            await manager.create_or_get(partial)  # type: ignore[arg-type]
        assert plane.stats.total == 0

    async def test_changed_config_is_validated_again_when_used(
        self, manager: AsyncDeploymentManager, plane: LocalControlPlane
    ) -> None:
        """A config made invalid after construction is refused before any request."""
        cfg = config("later")
        cfg.min_replica_count = 5  # each field is fine; min > max is not
        with pytest.raises(InvalidConfigError, match="min_replica_count"):
            await manager.create_or_get(cfg)
        cfg.max_replica_count = 5
        cfg.extra_args = ["--a 1"]
        cfg.extra_args.append("--b")
        info = await manager.create_or_get(cfg)
        assert info.max_replica_count == 5
        assert info.raw["extraArgs"] == ["--a", "1", "--b"]


class TestErrorsOldExceptClausesCatch:
    async def test_status_errors_are_httpx_status_errors(
        self, manager: AsyncDeploymentManager
    ) -> None:
        """`except httpx.HTTPStatusError` catches ours; .response and .request are usable."""
        with pytest.raises(httpx.HTTPStatusError) as info:
            await manager.update("missing", {"maxReplicaCount": 2})
        error = info.value
        assert isinstance(error, NotFoundError)
        assert error.response.status_code == 404
        assert "missing" in error.response.text
        assert error.request.method == "PATCH"
        assert "/deployments/missing" in str(error.request.url)

    async def test_rebuilt_response_carries_no_key(self) -> None:
        """The rebuilt response and request hold no credential, even one the server echoed."""
        router = respx.Router(base_url=BASE_URL, assert_all_called=False)
        router.get("/v1/accounts").respond(
            401, json={"error": f"bad key {API_KEY}"}, headers={"X-Echo": API_KEY}
        )
        async with AsyncDeploymentManager(
            api_key=API_KEY, base_url=BASE_URL, transport=httpx.MockTransport(router.async_handler)
        ) as mgr:
            with pytest.raises(httpx.HTTPStatusError) as info:
                await mgr.resolve_account_id()
        response = info.value.response
        assert response.status_code == 401
        everything = response.text + repr(dict(response.headers))
        everything += repr(dict(response.request.headers))
        assert API_KEY not in everything

    async def test_failures_are_runtime_errors(
        self, manager: AsyncDeploymentManager, plane: LocalControlPlane
    ) -> None:
        """A FAILED deployment and a hot-load that times out are caught by `except RuntimeError`."""
        plane.fail_boot("bad")
        await manager.create_or_get(config("bad"))
        with pytest.raises(RuntimeError, match="FAILED"):
            await manager.wait_for_ready("bad", timeout_s=10, **FAST)
        await ready(manager, "slow")
        plane.faults.add(Fault("replica_disagree", deployment_id="slow"))
        with pytest.raises(RuntimeError) as info:
            await manager.hotload_and_wait("slow", BASE_MODEL, "s", timeout_seconds=0.3, **FAST)
        assert isinstance(info.value, HotloadTimeoutError)
        assert isinstance(info.value, TimeoutError)

    async def test_unreadable_answers_are_value_errors(
        self, manager: AsyncDeploymentManager, plane: LocalControlPlane
    ) -> None:
        """What the official client's JSON decoding raised (ValueError) still catches ours."""
        plane.faults.add(Fault("wrong_shape", endpoint="get"))
        with pytest.raises(ValueError, match="JSON object for a deployment") as info:
            await manager.get("odd")
        assert isinstance(info.value, ResponseValidationError)


def test_configs_are_the_official_dataclass_in_shape() -> None:
    """Positional construction in the official order, mutable, validate()/from_training_profile."""
    cfg = DeploymentConfig("pos", BASE_MODEL, "a description", None, None, "us-east", 1, 2)
    assert (cfg.description, cfg.region, cfg.min_replica_count, cfg.max_replica_count) == (
        "a description",
        "us-east",
        1,
        2,
    )
    cfg.validate()
    profile = types.SimpleNamespace(deployment_shape_version="accounts/f/deploymentShapes/s/v/1")
    pinned = DeploymentConfig.from_training_profile(
        deployment_id="pin", base_model=BASE_MODEL, profile=profile
    )
    pinned.deployment_shape = "accounts/f/deploymentShapes/other/v/1"
    with pytest.raises(InvalidConfigError, match="expected_deployment_shape"):
        pinned.validate()
