"""AsyncDeploymentManager: construction, accounts, and the deployment lifecycle over respx."""

from __future__ import annotations

import json
import logging
import time
from typing import Any

import anyio
import httpx
import pytest
import respx
from core_testkit import (
    ACCOUNT,
    API_KEY,
    BASE_MODEL,
    BASE_URL,
    COMPLETIONS_PATH,
    FAST_RETRY,
    dep_path,
    deployment_json,
    load_fixture,
    sequence,
)

from fireworks_deploy import (
    AsyncDeploymentManager,
    AuthenticationError,
    BadRequestError,
    ConflictError,
    DeletionTimeoutError,
    DeploymentConfig,
    DeploymentFailedError,
    DeploymentInfo,
    DeploymentNotFoundError,
    InternalServerError,
    InvalidConfigError,
    ManagerClosedError,
    NotFoundError,
    PermissionDeniedError,
    ReadyTimeoutError,
    Timeouts,
    WarmupError,
)

FAST = {"poll_interval_s": 0.02}


def make(transport: httpx.MockTransport, **kwargs: Any) -> AsyncDeploymentManager:
    args: dict[str, Any] = {
        "api_key": API_KEY,
        "base_url": BASE_URL,
        "transport": transport,
        "retry": FAST_RETRY,
    }
    args.update(kwargs)
    return AsyncDeploymentManager(**args)


def body_of(route: respx.Route, index: int = -1) -> Any:
    return json.loads(route.calls[index].request.content)


class TestConstruction:
    async def test_env_key_fallback(
        self, monkeypatch: pytest.MonkeyPatch, router: respx.Router, transport: httpx.MockTransport
    ) -> None:
        """FIREWORKS_API_KEY is sent as X-Api-Key when no key is passed."""
        monkeypatch.setenv("FIREWORKS_API_KEY", "env-key-123")
        route = router.get(dep_path("d")).respond(json=deployment_json("d"))
        async with AsyncDeploymentManager(
            account_id=ACCOUNT, base_url=BASE_URL, transport=transport
        ) as mgr:
            await mgr.get("d")
        assert route.calls.last.request.headers["x-api-key"] == "env-key-123"

    def test_missing_key_is_clear(self) -> None:
        """Without a key or the variable, construction names FIREWORKS_API_KEY."""
        with pytest.raises(InvalidConfigError, match="FIREWORKS_API_KEY"):
            AsyncDeploymentManager(base_url=BASE_URL)

    @pytest.mark.parametrize(
        "kwargs",
        [
            {"account_id": "Bad Account"},
            {"base_url": "not a url"},
            {"inference_url": "ftp://x"},
            {"hotload_api_url": ""},
            {"additional_headers": {"X-Api-Key": "x"}},
            {"verify_ssl": "yes"},
            {"max_concurrency": 0},
        ],
    )
    def test_bad_arguments(self, transport: httpx.MockTransport, kwargs: dict[str, Any]) -> None:
        """Bad constructor arguments raise InvalidConfigError."""
        with pytest.raises(InvalidConfigError):
            make(transport, **kwargs)

    def test_urls_default_to_base(self, transport: httpx.MockTransport) -> None:
        """inference_url and hotload_api_url default to base_url, trailing slash dropped."""
        mgr = make(transport, base_url=BASE_URL + "/")
        assert mgr.inference_url == mgr.hotload_api_url == mgr.base_url
        assert not mgr.base_url.endswith("//")

    def test_repr_hides_key(self, transport: httpx.MockTransport) -> None:
        """The key is in no repr."""
        mgr = make(transport, additional_headers={"X-Fireworks-Gateway-Secret": "gw"})
        assert API_KEY not in repr(mgr)
        assert API_KEY not in repr(mgr._http.__dict__)

    async def test_context_manager_closes(
        self, transport: httpx.MockTransport, router: respx.Router
    ) -> None:
        """async with closes the manager; later calls raise ManagerClosedError."""
        router.get(dep_path("d")).respond(json=deployment_json("d"))
        async with make(transport, account_id=ACCOUNT) as mgr:
            await mgr.get("d")
        assert mgr.closed
        with pytest.raises(ManagerClosedError):
            await mgr.get("d")
        await mgr.aclose()  # idempotent


class TestAccount:
    async def test_resolved_once_under_concurrency(
        self,
        lazy_manager: AsyncDeploymentManager,
        router: respx.Router,
        accounts_route: respx.Route,
    ) -> None:
        """N concurrent gets resolve the account with exactly one accounts request."""
        for i in range(20):
            router.get(dep_path(f"d{i}")).respond(json=deployment_json(f"d{i}"))
        async with anyio.create_task_group() as tg:
            for i in range(20):
                tg.start_soon(lazy_manager.get, f"d{i}")
        assert accounts_route.call_count == 1
        assert accounts_route.calls.last.request.url.params["pageSize"] == "2"
        assert lazy_manager.account_id == ACCOUNT

    async def test_explicit_account_skips_resolution(
        self, manager: AsyncDeploymentManager, router: respx.Router, accounts_route: respx.Route
    ) -> None:
        """An explicit account_id is used as is; no accounts request."""
        router.get(dep_path("d")).respond(json=deployment_json("d"))
        await manager.get("d")
        assert accounts_route.call_count == 0

    async def test_env_account(
        self,
        monkeypatch: pytest.MonkeyPatch,
        transport: httpx.MockTransport,
        router: respx.Router,
        accounts_route: respx.Route,
    ) -> None:
        """FIREWORKS_ACCOUNT_ID is used when no account is passed."""
        monkeypatch.setenv("FIREWORKS_ACCOUNT_ID", "other")
        route = router.get(dep_path("d", "other")).respond(json=deployment_json("d"))
        async with make(transport) as mgr:
            await mgr.get("d")
        assert route.call_count == 1
        assert accounts_route.call_count == 0

    @pytest.mark.parametrize(
        ("accounts", "match"),
        [
            ([], "not associated"),
            ([{"name": "accounts/a"}, {"name": "accounts/b"}], "more than one"),
        ],
    )
    async def test_exactly_one_account(
        self, transport: httpx.MockTransport, router: respx.Router, accounts: list[Any], match: str
    ) -> None:
        """None or several accounts is an InvalidConfigError asking for account_id."""
        router.get("/v1/accounts").respond(json={"accounts": accounts})
        async with make(transport) as mgr:
            with pytest.raises(InvalidConfigError, match=match):
                await mgr.resolve_account_id()

    async def test_account_headers(
        self, lazy_manager: AsyncDeploymentManager, accounts_route: respx.Route
    ) -> None:
        """The accounts request is a control-plane request (X-Api-Key, no Authorization)."""
        assert await lazy_manager.resolve_account_id() == ACCOUNT
        headers = accounts_route.calls.last.request.headers
        assert headers["x-api-key"] == API_KEY
        assert "authorization" not in headers


class TestGet:
    async def test_reads_deployment(
        self, manager: AsyncDeploymentManager, router: respx.Router
    ) -> None:
        """GET /v1/accounts/{a}/deployments/{id} parses the body and keeps raw."""
        payload = load_fixture("deployment_response.json")
        payload["name"] = f"accounts/{ACCOUNT}/deployments/dep-1"
        route = router.get(dep_path("dep-1")).respond(json=payload)
        info = await manager.get("dep-1")
        assert isinstance(info, DeploymentInfo)
        assert info.state == "CREATING"
        assert info.hot_load_transition_type == "HOT_LOAD_TRANSITION_TYPE_SYNC"
        assert info.raw["someFutureField"] == {"nested": [1, 2, 3]}
        assert info.inference_model == f"accounts/{ACCOUNT}/deployments/dep-1"
        request = route.calls.last.request
        assert request.url.raw_path == f"/v1/accounts/{ACCOUNT}/deployments/dep-1".encode()
        assert request.headers["x-api-key"] == API_KEY
        assert "authorization" not in request.headers

    async def test_404_is_none(self, manager: AsyncDeploymentManager, router: respx.Router) -> None:
        """A 404 means the deployment does not exist: None."""
        router.get(dep_path("gone")).respond(404, json={"error": {"message": "not found"}})
        assert await manager.get("gone") is None

    async def test_auth_error_fails_fast(
        self, manager: AsyncDeploymentManager, router: respx.Router
    ) -> None:
        """A 401 raises AuthenticationError after one request."""
        route = router.get(dep_path("d")).respond(401)
        with pytest.raises(AuthenticationError):
            await manager.get("d")
        assert route.call_count == 1

    async def test_retries_transient(
        self, manager: AsyncDeploymentManager, router: respx.Router
    ) -> None:
        """A 503 then 200 succeeds."""
        route = router.get(dep_path("d")).mock(
            side_effect=sequence(
                httpx.Response(503), httpx.Response(200, json=deployment_json("d"))
            )
        )
        assert await manager.get("d") is not None
        assert route.call_count == 2

    async def test_base_url_with_path_prefix(
        self, transport: httpx.MockTransport, router: respx.Router
    ) -> None:
        """A base URL with a path prefix and trailing slash produces no '//'."""
        route = router.get("/prefix" + dep_path("d")).respond(json=deployment_json("d"))
        async with make(transport, account_id=ACCOUNT, base_url=BASE_URL + "/prefix/") as mgr:
            await mgr.get("d")
        assert b"//" not in route.calls.last.request.url.raw_path


class TestListDeployments:
    async def test_reads_every_page(
        self, manager: AsyncDeploymentManager, router: respx.Router
    ) -> None:
        """All pages are read, following nextPageToken."""
        page1 = load_fixture("deployments_list_page.json")
        page2 = {"deployments": [deployment_json("dep-c")], "nextPageToken": ""}

        def answer(request: httpx.Request) -> httpx.Response:
            return httpx.Response(
                200, json=page2 if request.url.params.get("pageToken") == "page-2" else page1
            )

        route = router.get(f"/v1/accounts/{ACCOUNT}/deployments").mock(side_effect=answer)
        found = await manager.list_deployments()
        assert [d.deployment_id for d in found] == ["dep-a", "dep-b", "dep-c"]
        assert route.call_count == 2
        assert route.calls[0].request.url.params["pageSize"] == "200"


class TestCreateOrGet:
    async def test_existing_is_returned(
        self, manager: AsyncDeploymentManager, router: respx.Router
    ) -> None:
        """An existing healthy deployment is returned without a POST."""
        router.get(dep_path("d")).respond(json=deployment_json("d", "UPDATING"))
        post = router.post(f"/v1/accounts/{ACCOUNT}/deployments").respond(json=deployment_json("d"))
        info = await manager.create_or_get(DeploymentConfig("d", BASE_MODEL))
        assert info.state == "UPDATING"
        assert post.call_count == 0

    async def test_absent_is_created(
        self, manager: AsyncDeploymentManager, router: respx.Router
    ) -> None:
        """An absent deployment is POSTed with query flags and the camelCase body."""
        router.get(dep_path("rl-dep-1")).respond(404)
        post = router.post(f"/v1/accounts/{ACCOUNT}/deployments").respond(
            json=deployment_json("rl-dep-1", "CREATING")
        )
        config = DeploymentConfig(
            "rl-dep-1",
            BASE_MODEL,
            region="US_VIRGINIA_1",
            min_replica_count=1,
            for_training=True,
            hot_load_trainer_job="accounts/acme/rlorTrainerJobs/abc",
            hot_load_transition_type="SYNC",
            deployment_shape="accounts/fireworks/deploymentShapes/rft-qwen3-8b/versions/v1",
            extra_args=["--foo 1", "--bar"],
            extra_values={"maxBatchSize": "64"},
            annotations={"team": "rl"},
            preemptible=True,
            disable_speculative_decoding=True,
            skip_shape_validation=True,
        )
        info = await manager.create_or_get(config)
        assert info.state == "CREATING"
        request = post.calls.last.request
        assert dict(request.url.params) == {
            "deploymentId": "rl-dep-1",
            "skipShapeValidation": "true",
            "disableSpeculativeDecoding": "true",
        }
        assert body_of(post) == load_fixture("create_body_full.json")
        assert request.headers["content-type"] == "application/json"

    @pytest.mark.parametrize("state", ["FAILED", "DELETED", "DELETING"])
    async def test_bad_state_is_recreated(
        self, manager: AsyncDeploymentManager, router: respx.Router, state: str
    ) -> None:
        """A bad deployment is deleted (ignoreChecks, hard), confirmed gone, then created."""
        get = router.get(dep_path("d")).mock(
            side_effect=sequence(
                httpx.Response(200, json=deployment_json("d", state)),
                httpx.Response(200, json=deployment_json("d", "DELETING")),
                httpx.Response(404),
            )
        )
        delete = router.delete(dep_path("d")).respond(200, json={})
        post = router.post(f"/v1/accounts/{ACCOUNT}/deployments").respond(
            json=deployment_json("d", "CREATING")
        )
        info = await manager.create_or_get(DeploymentConfig("d", BASE_MODEL))
        assert info.state == "CREATING"
        assert delete.call_count == 1
        assert post.call_count == 1
        assert dict(delete.calls.last.request.url.params) == {
            "ignoreChecks": "true",
            "hard": "true",
        }
        assert get.call_count == 3

    async def test_force_recreate(
        self, manager: AsyncDeploymentManager, router: respx.Router
    ) -> None:
        """force_recreate replaces even a READY deployment."""
        router.get(dep_path("d")).mock(
            side_effect=sequence(
                httpx.Response(200, json=deployment_json("d")), httpx.Response(404)
            )
        )
        delete = router.delete(dep_path("d")).respond(200)
        post = router.post(f"/v1/accounts/{ACCOUNT}/deployments").respond(
            json=deployment_json("d", "CREATING")
        )
        await manager.create_or_get(DeploymentConfig("d", BASE_MODEL), force_recreate=True)
        assert delete.call_count == 1
        assert post.call_count == 1

    async def test_recreate_waits_for_confirmed_deletion(
        self, manager: AsyncDeploymentManager, router: respx.Router
    ) -> None:
        """If deletion is never confirmed, no POST is sent (DeletionTimeoutError)."""
        router.get(dep_path("d")).respond(json=deployment_json("d", "DELETING"))
        router.delete(dep_path("d")).respond(200)
        post = router.post(f"/v1/accounts/{ACCOUNT}/deployments").respond(json=deployment_json("d"))
        with pytest.raises(DeletionTimeoutError):
            await manager.create_or_get(DeploymentConfig("d", BASE_MODEL), timeout_s=1.0)
        assert post.call_count == 0

    async def test_delete_failure_propagates(
        self, manager: AsyncDeploymentManager, router: respx.Router
    ) -> None:
        """A failing delete during recreate raises instead of creating anyway."""
        router.get(dep_path("d")).respond(json=deployment_json("d", "FAILED"))
        router.delete(dep_path("d")).respond(403)
        post = router.post(f"/v1/accounts/{ACCOUNT}/deployments").respond(json=deployment_json("d"))
        with pytest.raises(PermissionDeniedError):
            await manager.create_or_get(DeploymentConfig("d", BASE_MODEL))
        assert post.call_count == 0

    async def test_409_rereads(self, manager: AsyncDeploymentManager, router: respx.Router) -> None:
        """A 409 on create re-reads the deployment instead of failing or re-posting."""
        get = router.get(dep_path("d")).mock(
            side_effect=sequence(
                httpx.Response(404), httpx.Response(200, json=deployment_json("d", "CREATING"))
            )
        )
        post = router.post(f"/v1/accounts/{ACCOUNT}/deployments").respond(409)
        info = await manager.create_or_get(DeploymentConfig("d", BASE_MODEL))
        assert info.state == "CREATING"
        assert post.call_count == 1
        assert get.call_count == 2

    async def test_409_with_failed_existing_raises(
        self, manager: AsyncDeploymentManager, router: respx.Router
    ) -> None:
        """A 409 whose re-read shows FAILED raises DeploymentFailedError, not success."""
        router.get(dep_path("d")).mock(
            side_effect=sequence(
                httpx.Response(404), httpx.Response(200, json=deployment_json("d", "FAILED"))
            )
        )
        router.post(f"/v1/accounts/{ACCOUNT}/deployments").respond(409)
        with pytest.raises(DeploymentFailedError) as info:
            await manager.create_or_get(DeploymentConfig("d", BASE_MODEL))
        assert info.value.state == "FAILED"

    async def test_409_then_404_raises_conflict(
        self, manager: AsyncDeploymentManager, router: respx.Router
    ) -> None:
        """A 409 whose re-read finds nothing propagates the ConflictError."""
        router.get(dep_path("d")).respond(404)
        router.post(f"/v1/accounts/{ACCOUNT}/deployments").respond(409)
        with pytest.raises(ConflictError):
            await manager.create_or_get(DeploymentConfig("d", BASE_MODEL))

    async def test_lost_answer_reads_before_reposting(
        self, manager: AsyncDeploymentManager, router: respx.Router
    ) -> None:
        """A POST whose answer is lost is followed by a GET; if it landed, no second POST."""
        get = router.get(dep_path("d")).mock(
            side_effect=sequence(
                httpx.Response(404), httpx.Response(200, json=deployment_json("d", "CREATING"))
            )
        )
        post = router.post(f"/v1/accounts/{ACCOUNT}/deployments").mock(
            side_effect=httpx.ReadTimeout("lost")
        )
        info = await manager.create_or_get(DeploymentConfig("d", BASE_MODEL))
        assert info.state == "CREATING"
        assert post.call_count == 1
        assert get.call_count == 2

    async def test_lost_answer_not_landed_reposts(
        self, manager: AsyncDeploymentManager, router: respx.Router
    ) -> None:
        """If the GET after a lost answer finds nothing, the POST is sent again (after the GET)."""
        order: list[str] = []

        def on_get(request: httpx.Request) -> httpx.Response:
            order.append("GET")
            return httpx.Response(404)

        posts = sequence(
            httpx.ReadTimeout("lost"), httpx.Response(200, json=deployment_json("d", "CREATING"))
        )

        def on_post(request: httpx.Request) -> httpx.Response:
            order.append("POST")
            return posts(request)  # type: ignore[no-any-return]

        router.get(dep_path("d")).mock(side_effect=on_get)
        router.post(f"/v1/accounts/{ACCOUNT}/deployments").mock(side_effect=on_post)
        await manager.create_or_get(DeploymentConfig("d", BASE_MODEL))
        assert order == ["GET", "POST", "GET", "POST"]

    async def test_lost_answers_back_off(
        self, manager: AsyncDeploymentManager, router: respx.Router
    ) -> None:
        """Repeated lost answers are re-sent only after a backoff, never in a hot loop."""
        delays: list[float] = []

        async def record(delay: float) -> None:
            delays.append(delay)

        manager._http.sleep = record
        router.get(dep_path("d")).respond(404)
        post = router.post(f"/v1/accounts/{ACCOUNT}/deployments").mock(
            side_effect=sequence(
                httpx.ReadError("reset"),
                httpx.ReadError("reset"),
                httpx.Response(200, json=deployment_json("d", "CREATING")),
            )
        )
        await manager.create_or_get(DeploymentConfig("d", BASE_MODEL))
        assert post.call_count == 3
        assert len(delays) == 2

    async def test_post_500_reads_before_resending(
        self, manager: AsyncDeploymentManager, router: respx.Router
    ) -> None:
        """A 500 on create (maybe acted on) is followed by a GET, and only then a second POST."""
        router.get(dep_path("d")).respond(404)
        post = router.post(f"/v1/accounts/{ACCOUNT}/deployments").mock(
            side_effect=sequence(
                httpx.Response(500), httpx.Response(200, json=deployment_json("d", "CREATING"))
            )
        )
        info = await manager.create_or_get(DeploymentConfig("d", BASE_MODEL))
        assert info.state == "CREATING"
        assert post.call_count == 2
        methods = [c.request.method for c in router.calls if "/deployments" in str(c.request.url)]
        assert methods == ["GET", "POST", "GET", "POST"]

    async def test_post_500_that_landed_is_not_resent(
        self, manager: AsyncDeploymentManager, router: respx.Router
    ) -> None:
        """A 500 whose create did land returns the deployment without a second POST."""
        router.get(dep_path("d")).mock(
            side_effect=sequence(
                httpx.Response(404), httpx.Response(200, json=deployment_json("d", "CREATING"))
            )
        )
        post = router.post(f"/v1/accounts/{ACCOUNT}/deployments").respond(500)
        info = await manager.create_or_get(DeploymentConfig("d", BASE_MODEL))
        assert info.state == "CREATING"
        assert post.call_count == 1

    async def test_persistent_500_raises_at_the_deadline(
        self, manager: AsyncDeploymentManager, router: respx.Router
    ) -> None:
        """A create that keeps failing with 500 raises the server's error within its deadline."""
        router.get(dep_path("d")).respond(404)
        router.post(f"/v1/accounts/{ACCOUNT}/deployments").respond(500)
        with pytest.raises(InternalServerError):
            await manager.create_or_get(DeploymentConfig("d", BASE_MODEL), timeout_s=1.0)

    async def test_400_raises(self, manager: AsyncDeploymentManager, router: respx.Router) -> None:
        """A 400 on create raises BadRequestError with the server's message."""
        router.get(dep_path("d")).respond(404)
        router.post(f"/v1/accounts/{ACCOUNT}/deployments").respond(
            400, json={"error": {"message": "invalid FW_HOSTED hot_load_bucket_url"}}
        )
        with pytest.raises(BadRequestError, match="invalid FW_HOSTED"):
            await manager.create_or_get(DeploymentConfig("d", BASE_MODEL))

    async def test_not_a_config(
        self, manager: AsyncDeploymentManager, router: respx.Router
    ) -> None:
        """A non-DeploymentConfig is refused before any request."""
        with pytest.raises(InvalidConfigError):
            await manager.create_or_get({"deployment_id": "d"})  # type: ignore[arg-type]
        assert len(router.calls) == 0


class TestWaitForReady:
    async def test_ready(self, manager: AsyncDeploymentManager, router: respx.Router) -> None:
        """READY returns the info at once."""
        route = router.get(dep_path("d")).respond(json=deployment_json("d", "READY"))
        info = await manager.wait_for_ready("d", timeout_s=5, **FAST)
        assert info.state == "READY"
        assert route.call_count == 1

    async def test_creating_with_probe_200(
        self, manager: AsyncDeploymentManager, router: respx.Router
    ) -> None:
        """CREATING with a completions probe answering 200 is ready; the state is not rewritten."""
        router.get(dep_path("d")).respond(json=deployment_json("d", "CREATING"))
        probe = router.post(COMPLETIONS_PATH).respond(200, json={"choices": []})
        info = await manager.wait_for_ready("d", timeout_s=5, **FAST)
        assert info.state == "CREATING"
        assert info.serving
        assert info.is_ready  # what callers check after a wait, whatever the state says
        assert probe.call_count == 1
        request = probe.calls.last.request
        assert json.loads(request.content) == {
            "model": f"accounts/{ACCOUNT}/deployments/d",
            "prompt": [1, 2],
            "max_tokens": 4,
            "temperature": 0.0,
        }
        assert request.headers["authorization"] == f"Bearer {API_KEY}"
        assert request.headers["x-api-key"] == API_KEY

    async def test_probe_is_one_request_per_poll(
        self, manager: AsyncDeploymentManager, router: respx.Router
    ) -> None:
        """A probe answering 503 is not retried: one probe per CREATING poll."""
        get = router.get(dep_path("d")).mock(
            side_effect=sequence(
                *[httpx.Response(200, json=deployment_json("d", "CREATING"))] * 3,
                httpx.Response(200, json=deployment_json("d", "READY")),
            )
        )
        probe = router.post(COMPLETIONS_PATH).respond(503)
        await manager.wait_for_ready("d", timeout_s=5, **FAST)
        assert get.call_count == 4
        assert probe.call_count == 3

    async def test_updating_is_not_ready(
        self, manager: AsyncDeploymentManager, router: respx.Router
    ) -> None:
        """UPDATING keeps waiting (and is not probed)."""
        get = router.get(dep_path("d")).mock(
            side_effect=sequence(
                httpx.Response(200, json=deployment_json("d", "UPDATING")),
                httpx.Response(200, json=deployment_json("d", "READY")),
            )
        )
        probe = router.post(COMPLETIONS_PATH).respond(200)
        info = await manager.wait_for_ready("d", timeout_s=5, **FAST)
        assert info.state == "READY"
        assert get.call_count == 2
        assert probe.call_count == 0

    @pytest.mark.parametrize("state", ["FAILED", "DELETED", "DELETING"])
    async def test_bad_states_raise(
        self, manager: AsyncDeploymentManager, router: respx.Router, state: str
    ) -> None:
        """FAILED, DELETED and DELETING raise DeploymentFailedError carrying the state."""
        router.get(dep_path("d")).respond(json=deployment_json("d", state))
        with pytest.raises(DeploymentFailedError) as info:
            await manager.wait_for_ready("d", timeout_s=5, **FAST)
        assert info.value.state == state
        assert info.value.deployment_id == "d"
        assert not isinstance(info.value, DeploymentNotFoundError)

    async def test_404_mid_wait(
        self, manager: AsyncDeploymentManager, router: respx.Router
    ) -> None:
        """A deployment that disappears while waited on raises DeploymentNotFoundError."""
        router.get(dep_path("d")).mock(
            side_effect=sequence(
                httpx.Response(200, json=deployment_json("d", "CREATING")), httpx.Response(404)
            )
        )
        router.post(COMPLETIONS_PATH).respond(404)
        with pytest.raises(DeploymentNotFoundError):
            await manager.wait_for_ready("d", timeout_s=5, **FAST)

    async def test_one_deadline_against_503(
        self, manager: AsyncDeploymentManager, router: respx.Router
    ) -> None:
        """wait_for_ready(timeout_s=1) against a permanent 503 gives up in about 1 s."""
        router.get(dep_path("d")).respond(503)
        started = time.monotonic()
        with pytest.raises(ReadyTimeoutError) as info:
            await manager.wait_for_ready("d", timeout_s=1)
        assert time.monotonic() - started < 5
        assert isinstance(info.value, TimeoutError)
        assert info.value.timeout_s == 1

    async def test_timeout_carries_last_status(
        self, manager: AsyncDeploymentManager, router: respx.Router
    ) -> None:
        """The timeout error carries the last DeploymentInfo seen."""
        router.get(dep_path("d")).respond(json=deployment_json("d", "UPDATING"))
        with pytest.raises(ReadyTimeoutError) as info:
            await manager.wait_for_ready("d", timeout_s=1.5, **FAST)
        assert info.value.last_status.state == "UPDATING"

    async def test_polls_on_the_interval_grid(
        self, manager: AsyncDeploymentManager, router: respx.Router
    ) -> None:
        """A plain wait polls at once, then on the caller's interval (no extra early polls:
        it follows no POST of ours), so a change is seen by the next interval's poll."""
        route = router.get(dep_path("d")).mock(
            side_effect=sequence(
                httpx.Response(200, json=deployment_json("d", "UPDATING")),
                httpx.Response(200, json=deployment_json("d", "READY")),
            )
        )
        started = time.monotonic()
        await manager.wait_for_ready("d", timeout_s=60, poll_interval_s=1)
        assert time.monotonic() - started < 10
        assert route.call_count == 2

    @pytest.mark.parametrize("status", [401, 403])
    async def test_probe_auth_error_fails_fast(
        self, manager: AsyncDeploymentManager, router: respx.Router, status: int
    ) -> None:
        """A probe refused with 401/403 raises at once instead of polling until the deadline."""
        router.get(dep_path("d")).respond(json=deployment_json("d", "CREATING"))
        probe = router.post(COMPLETIONS_PATH).respond(status)
        with pytest.raises((AuthenticationError, PermissionDeniedError)):
            await manager.wait_for_ready("d", timeout_s=10, **FAST)
        assert probe.call_count == 1

    async def test_get_auth_error_fails_fast(
        self, manager: AsyncDeploymentManager, router: respx.Router
    ) -> None:
        """A 401 on the status GET raises at once."""
        route = router.get(dep_path("d")).respond(401)
        with pytest.raises(AuthenticationError):
            await manager.wait_for_ready("d", timeout_s=10, **FAST)
        assert route.call_count == 1

    async def test_transient_errors_are_waited_out(
        self, manager: AsyncDeploymentManager, router: respx.Router
    ) -> None:
        """Connection errors and 5xx during the wait are polled through."""
        router.get(dep_path("d")).mock(
            side_effect=sequence(
                httpx.ConnectError("down"),
                httpx.Response(502),
                httpx.Response(200, json=deployment_json("d")),
            )
        )
        assert (await manager.wait_for_ready("d", timeout_s=5, **FAST)).state == "READY"

    async def test_waiters_on_one_deployment_share_polls(
        self, manager: AsyncDeploymentManager, router: respx.Router
    ) -> None:
        """50 concurrent waits on one deployment make about as many GETs as one."""
        get = router.get(dep_path("d")).mock(
            side_effect=sequence(
                *[httpx.Response(200, json=deployment_json("d", "UPDATING"))] * 3,
                httpx.Response(200, json=deployment_json("d")),
            )
        )
        async with anyio.create_task_group() as tg:
            for _ in range(50):
                tg.start_soon(lambda: manager.wait_for_ready("d", timeout_s=5, **FAST))
        assert get.call_count <= 5

    async def test_many_deployments_concurrently(
        self, manager: AsyncDeploymentManager, router: respx.Router
    ) -> None:
        """100 concurrent waits on different deployments finish together, ~3 GETs each."""
        # One GET per poll; list rounds are tested in tests/test_batch.py.
        manager._deployments.reads.threshold = 1000
        seen: dict[str, int] = {}

        def answer(request: httpx.Request) -> httpx.Response:
            dep = request.url.path.rsplit("/", 1)[-1]
            seen[dep] = seen.get(dep, 0) + 1
            return httpx.Response(
                200, json=deployment_json(dep, "READY" if seen[dep] >= 3 else "UPDATING")
            )

        route = router.get(path__regex=rf"^/v1/accounts/{ACCOUNT}/deployments/[a-z0-9-]+$").mock(
            side_effect=answer
        )
        started = time.monotonic()
        async with anyio.create_task_group() as tg:
            for i in range(100):
                tg.start_soon(lambda i=i: manager.wait_for_ready(f"d{i}", timeout_s=20, **FAST))
        assert time.monotonic() - started < 10
        assert route.call_count == 300

    @pytest.mark.parametrize(
        "kwargs",
        [
            {"deployment_id": "Bad"},
            {"deployment_id": ""},
            {"timeout_s": -1},
            {"timeout_s": float("nan")},
            {"poll_interval_s": 0},
        ],
    )
    async def test_bad_input_sends_nothing(
        self, manager: AsyncDeploymentManager, router: respx.Router, kwargs: dict[str, Any]
    ) -> None:
        """Bad arguments raise InvalidConfigError before any request."""
        args: dict[str, Any] = {"deployment_id": "d", "timeout_s": 5, "poll_interval_s": 1}
        args.update(kwargs)
        with pytest.raises(InvalidConfigError):
            await manager.wait_for_ready(**args)
        assert len(router.calls) == 0


class TestUpdate:
    async def test_patch_with_mask(
        self, manager: AsyncDeploymentManager, router: respx.Router
    ) -> None:
        """PATCH sends the camelCase body and a snake_case updateMask CSV."""
        route = router.patch(dep_path("d")).respond(
            json=deployment_json(
                "d", "UPDATING", hotLoadTrainerJob="accounts/acme/rlorTrainerJobs/xyz"
            )
        )
        info = await manager.update(
            "d",
            {
                "hotLoadTrainerJob": "accounts/acme/rlorTrainerJobs/xyz",
                "hotLoadTransitionType": "SYNC",
            },
            ["hot_load_trainer_job", "hot_load_transition_type"],
        )
        assert info.hot_load_trainer_job == "accounts/acme/rlorTrainerJobs/xyz"
        request = route.calls.last.request
        assert request.url.raw_path.endswith(
            b"?updateMask=hot_load_trainer_job%2Chot_load_transition_type"
        )
        assert body_of(route) == {
            "hotLoadTrainerJob": "accounts/acme/rlorTrainerJobs/xyz",
            "hotLoadTransitionType": "SYNC",
        }

    async def test_mask_defaults_to_body_keys(
        self, manager: AsyncDeploymentManager, router: respx.Router
    ) -> None:
        """Without a mask, the mask names exactly the body's fields."""
        route = router.patch(dep_path("d")).respond(json=deployment_json("d"))
        await manager.update("d", {"hot_load_trainer_job": "j"})
        assert route.calls.last.request.url.params["updateMask"] == "hot_load_trainer_job"
        assert body_of(route) == {"hotLoadTrainerJob": "j"}

    async def test_bad_mask_sends_nothing(
        self, manager: AsyncDeploymentManager, router: respx.Router
    ) -> None:
        """A camelCase mask path is refused before any request."""
        with pytest.raises(InvalidConfigError):
            await manager.update("d", {"hotLoadTrainerJob": "j"}, "hotLoadTrainerJob")
        assert len(router.calls) == 0


class TestScaleToZero:
    async def test_body_and_no_mask(
        self, manager: AsyncDeploymentManager, router: respx.Router
    ) -> None:
        """PATCH {maxReplicaCount: 0, minReplicaCount: 0} without updateMask."""
        route = router.patch(dep_path("d")).respond(
            json=deployment_json("d", minReplicaCount=0, maxReplicaCount=0)
        )
        info = await manager.scale_to_zero("d")
        assert info is not None
        assert info.max_replica_count == 0
        request = route.calls.last.request
        assert request.url.query == b""
        assert request.content == b'{"maxReplicaCount": 0, "minReplicaCount": 0}'

    async def test_empty_answer(
        self, manager: AsyncDeploymentManager, router: respx.Router
    ) -> None:
        """An empty 200 answer returns None."""
        router.patch(dep_path("d")).respond(200)
        assert await manager.scale_to_zero("d") is None

    async def test_failure_raises(
        self, manager: AsyncDeploymentManager, router: respx.Router
    ) -> None:
        """A failing scale_to_zero raises (the official client swallows it)."""
        router.patch(dep_path("d")).respond(400, json={"error": {"message": "no"}})
        with pytest.raises(BadRequestError):
            await manager.scale_to_zero("d")

    async def test_persistent_5xx_raises(
        self, transport: httpx.MockTransport, router: respx.Router
    ) -> None:
        """A persistent 503 raises once the operation's deadline passes."""
        router.patch(dep_path("d")).respond(503)
        async with make(transport, account_id=ACCOUNT, timeouts=Timeouts(operation_s=0.3)) as mgr:
            with pytest.raises(InternalServerError):
                await mgr.scale_to_zero("d")


class TestDelete:
    async def test_query_flags(self, manager: AsyncDeploymentManager, router: respx.Router) -> None:
        """DELETE sends ignoreChecks=true&hard=true."""
        route = router.delete(dep_path("d")).respond(200, json={})
        await manager.delete("d")
        assert (
            route.calls.last.request.url.raw_path
            == f"{dep_path('d')}?ignoreChecks=true&hard=true".encode()
        )

    async def test_failure_raises(
        self, manager: AsyncDeploymentManager, router: respx.Router
    ) -> None:
        """A failing delete raises (the official client swallows it)."""
        router.delete(dep_path("d")).respond(403)
        with pytest.raises(PermissionDeniedError):
            await manager.delete("d")

    async def test_persistent_5xx_raises(
        self, manager: AsyncDeploymentManager, router: respx.Router
    ) -> None:
        """A persistent 500 raises within the delete's timeout."""
        router.delete(dep_path("d")).respond(500)
        with pytest.raises(InternalServerError):
            await manager.delete("d", timeout_s=1.0)

    async def test_missing(self, manager: AsyncDeploymentManager, router: respx.Router) -> None:
        """A 404 is fine by default and raises with missing_ok=False."""
        router.delete(dep_path("d")).respond(404)
        await manager.delete("d")
        with pytest.raises(NotFoundError):
            await manager.delete("d", missing_ok=False)

    async def test_wait(self, manager: AsyncDeploymentManager, router: respx.Router) -> None:
        """wait=True polls until the deployment is gone."""
        router.delete(dep_path("d")).respond(200)
        get = router.get(dep_path("d")).mock(
            side_effect=sequence(
                httpx.Response(200, json=deployment_json("d", "DELETING")),
                httpx.Response(200, json=deployment_json("d", "DELETED")),
            )
        )
        await manager.delete("d", wait=True, timeout_s=5)
        assert get.call_count == 2


class TestWaitForDeletion:
    async def test_404_confirms(
        self, manager: AsyncDeploymentManager, router: respx.Router
    ) -> None:
        """A 404 confirms deletion."""
        router.get(dep_path("d")).respond(404)
        await manager.wait_for_deletion("d", timeout_s=5, poll_interval_s=0.02)

    async def test_timeout(self, manager: AsyncDeploymentManager, router: respx.Router) -> None:
        """A deployment that never goes raises DeletionTimeoutError (a TimeoutError)."""
        router.get(dep_path("d")).respond(json=deployment_json("d", "DELETING"))
        with pytest.raises(DeletionTimeoutError) as info:
            await manager.wait_for_deletion("d", timeout_s=1.0, poll_interval_s=0.02)
        assert isinstance(info.value, TimeoutError)


class TestWarmup:
    async def test_success(self, manager: AsyncDeploymentManager, router: respx.Router) -> None:
        """Attempts continue until a 200, which returns a WarmupResult."""
        route = router.post(COMPLETIONS_PATH).mock(
            side_effect=sequence(
                httpx.Response(503), httpx.ConnectError("x"), httpx.Response(200, json={})
            )
        )
        result = await manager.warmup(
            "accounts/acme/deployments/d", max_retries=5, retry_interval_s=0.01
        )
        assert result.attempts == 3
        assert result.status_code == 200
        assert route.calls.last.request.headers["authorization"] == f"Bearer {API_KEY}"

    async def test_exhausted_raises(
        self, manager: AsyncDeploymentManager, router: respx.Router
    ) -> None:
        """No 200 in max_retries attempts raises WarmupError (never returns False)."""
        route = router.post(COMPLETIONS_PATH).respond(404)
        with pytest.raises(WarmupError) as info:
            await manager.warmup("m", max_retries=3, retry_interval_s=0.01)
        assert route.call_count == 3
        assert info.value.attempts == 3
        assert info.value.last_status == 404

    async def test_auth_fails_fast(
        self, manager: AsyncDeploymentManager, router: respx.Router
    ) -> None:
        """A 401 ends warm-up at once."""
        route = router.post(COMPLETIONS_PATH).respond(401)
        with pytest.raises(AuthenticationError):
            await manager.warmup("m", max_retries=10, retry_interval_s=0.01)
        assert route.call_count == 1

    async def test_timeout_bounds_attempts(
        self, manager: AsyncDeploymentManager, router: respx.Router
    ) -> None:
        """timeout_s stops warm-up early."""
        router.post(COMPLETIONS_PATH).respond(503)
        started = time.monotonic()
        with pytest.raises(WarmupError):
            await manager.warmup("m", max_retries=1000, retry_interval_s=0.05, timeout_s=0.3)
        assert time.monotonic() - started < 5

    @pytest.mark.parametrize(
        "kwargs", [{"model": ""}, {"max_retries": 0}, {"retry_interval_s": -1}]
    )
    async def test_bad_input(
        self, manager: AsyncDeploymentManager, router: respx.Router, kwargs: dict[str, Any]
    ) -> None:
        """Bad arguments raise before any request."""
        args: dict[str, Any] = {"model": "m"}
        args.update(kwargs)
        with pytest.raises(InvalidConfigError):
            await manager.warmup(**args)
        assert len(router.calls) == 0


class TestBadInputSendsNothing:
    @pytest.mark.parametrize(
        "call",
        [
            lambda m: m.get("Bad_ID"),
            lambda m: m.get(""),
            lambda m: m.get("a" * 64),
            lambda m: m.delete("bad id"),
            lambda m: m.delete("d", timeout_s=0),
            lambda m: m.scale_to_zero("-x"),
            lambda m: m.update("d", {}),
            lambda m: m.wait_for_deletion("d", poll_interval_s=-1),
            lambda m: m.create_or_get(DeploymentConfig("d", BASE_MODEL), timeout_s=-5),
            lambda m: m.wait_for_ready_many([]),
            lambda m: m.wait_for_ready_many(["a", "a"]),
            lambda m: m.wait_for_ready_many("abc"),
        ],
    )
    async def test_rejected_before_any_request(
        self, lazy_manager: AsyncDeploymentManager, router: respx.Router, call: Any
    ) -> None:
        """Invalid arguments raise InvalidConfigError (a ValueError) and the router sees nothing."""
        with pytest.raises(InvalidConfigError) as info:
            await call(lazy_manager)
        assert isinstance(info.value, ValueError)
        assert len(router.calls) == 0


class TestSecrecy:
    async def test_key_never_logged_or_raised(
        self,
        manager: AsyncDeploymentManager,
        router: respx.Router,
        caplog: pytest.LogCaptureFixture,
    ) -> None:
        """At DEBUG, no log record, exception message or repr carries the API key."""
        for name in ("fireworks_deploy", "httpx", "httpcore"):
            caplog.set_level(logging.DEBUG, logger=name)
        router.get(dep_path("d")).mock(
            side_effect=sequence(
                httpx.Response(503), httpx.Response(200, json=deployment_json("d"))
            )
        )
        router.get(dep_path("e")).respond(401, json={"error": {"message": f"bad key {API_KEY}"}})
        router.post(COMPLETIONS_PATH).respond(403)
        errors: list[BaseException] = []
        await manager.get("d")
        for call in (lambda: manager.get("e"), lambda: manager.warmup("m", max_retries=1)):
            try:
                await call()
            except Exception as exc:
                errors.append(exc)
        assert len(errors) == 2
        assert caplog.records
        for record in caplog.records:
            assert API_KEY not in record.getMessage()
        assert API_KEY not in caplog.text
        for exc in errors:
            assert API_KEY not in str(exc)
            assert API_KEY not in repr(exc)
            assert all(API_KEY not in str(a) for a in exc.args)
        assert API_KEY not in repr(manager)
