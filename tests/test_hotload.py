"""Hot-load: the POST, the status, and the every-replica wait."""

from __future__ import annotations

import json
import math
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
    HOTLOAD_PATH,
    dep_path,
    deployment_json,
    load_fixture,
    replica_json,
    sequence,
    status_json,
)

from fireworks_deploy import (
    APIStatusError,
    AsyncDeploymentManager,
    AuthenticationError,
    BadRequestError,
    DeploymentFailedError,
    DeploymentNotFoundError,
    HotloadFailedError,
    HotloadStatus,
    HotloadTimeoutError,
    IncrementalSnapshotMetadata,
    InternalServerError,
    InvalidConfigError,
    NotFoundError,
    ResponseValidationError,
)
from fireworks_deploy._hotload import LAG_POLL_S, STATUS_LAG_S

FAST = {"poll_interval_s": 0.02}
#: Status reads over the lag window before a POST whose outcome is unknown is re-sent.
LAG_READS = 1 + math.ceil(STATUS_LAG_S / LAG_POLL_S)
REJECT = {
    "error": {
        "message": "1 validation error: Extra inputs are not permitted, field: 'reset_prompt_cache'"
    }
}


def ok(payload: dict[str, Any]) -> httpx.Response:
    return httpx.Response(200, json=payload)


def body_of(route: respx.Route, index: int = -1) -> Any:
    return json.loads(route.calls[index].request.content)


class Sleeps:
    def __init__(self) -> None:
        self.delays: list[float] = []

    async def __call__(self, delay: float) -> None:
        self.delays.append(delay)


class TestHotload:
    async def test_base_request(
        self, manager: AsyncDeploymentManager, router: respx.Router
    ) -> None:
        """A base load POSTs the golden snake_case body with gateway and routing headers."""
        route = router.post(HOTLOAD_PATH).respond(json={"accepted": True})
        answer = await manager.hotload("dep-1", BASE_MODEL, "step-0-base-a1b2c3d4")
        assert answer == {"accepted": True}
        request = route.calls.last.request
        assert request.url.raw_path == HOTLOAD_PATH.encode()
        assert json.loads(request.content) == load_fixture("hotload_base_body.json")
        assert request.headers["x-api-key"] == API_KEY
        assert request.headers["authorization"] == f"Bearer {API_KEY}"
        assert request.headers["fireworks-model"] == BASE_MODEL
        assert request.headers["fireworks-deployment"] == f"accounts/{ACCOUNT}/deployments/dep-1"
        assert "x-fireworks-hot-load-source-url" not in request.headers

    @pytest.mark.parametrize(
        "metadata",
        [
            IncrementalSnapshotMetadata(previous_snapshot_identity="step-6-a1b2c3d4"),
            {
                "previous_snapshot_identity": "step-6-a1b2c3d4",
                "compression_format": "arc_v2",
                "checksum_format": "alder32",
            },
        ],
    )
    async def test_delta_request(
        self, manager: AsyncDeploymentManager, router: respx.Router, metadata: Any
    ) -> None:
        """A delta (typed or the official dict) sends the golden body with 'alder32'."""
        route = router.post(HOTLOAD_PATH).respond(json={})
        await manager.hotload("dep-1", BASE_MODEL, "step-7-a1b2c3d4", metadata)
        assert body_of(route) == load_fixture("hotload_delta_body.json")

    async def test_optional_headers(
        self, manager: AsyncDeploymentManager, router: respx.Router
    ) -> None:
        """path and cmek_resource go out as headers, not body fields."""
        route = router.post(HOTLOAD_PATH).respond(json={})
        await manager.hotload(
            "d", BASE_MODEL, "s1", path="gs://bucket/s1/", cmek_resource="projects/p/keys/k"
        )
        request = route.calls.last.request
        assert request.headers["x-fireworks-hot-load-source-url"] == "gs://bucket/s1/"
        assert request.headers["x-fireworks-hot-load-cmek-resource"] == "projects/p/keys/k"
        assert set(body_of(route)) == {"identity", "reset_prompt_cache"}

    async def test_empty_answer_tolerated(
        self, manager: AsyncDeploymentManager, router: respx.Router
    ) -> None:
        """An empty 200 answer returns an empty mapping (the official client crashes)."""
        router.post(HOTLOAD_PATH).respond(200, content=b"")
        assert await manager.hotload("d", BASE_MODEL, "s1") == {}

    async def test_gateway_url_trailing_slash(
        self, transport: httpx.MockTransport, router: respx.Router
    ) -> None:
        """A hotload_api_url with a trailing slash gives no '//' path."""
        route = router.post("https://gw.example" + HOTLOAD_PATH).respond(json={})
        async with AsyncDeploymentManager(
            api_key=API_KEY,
            account_id=ACCOUNT,
            base_url=BASE_URL,
            hotload_api_url="https://gw.example/",
            transport=transport,
        ) as mgr:
            await mgr.hotload("d", BASE_MODEL, "s1")
        assert route.calls.last.request.url.raw_path == HOTLOAD_PATH.encode()

    async def test_lazy_account_in_routing_header(
        self,
        lazy_manager: AsyncDeploymentManager,
        router: respx.Router,
        accounts_route: respx.Route,
    ) -> None:
        """The routing header uses the lazily resolved account."""
        route = router.post(HOTLOAD_PATH).respond(json={})
        await lazy_manager.hotload("d", BASE_MODEL, "s1")
        assert (
            route.calls.last.request.headers["fireworks-deployment"]
            == f"accounts/{ACCOUNT}/deployments/d"
        )
        assert accounts_route.call_count == 1


class TestResetPromptCacheFallback:
    async def test_fallback_and_memory(
        self, manager: AsyncDeploymentManager, router: respx.Router
    ) -> None:
        """A gateway rejecting reset_prompt_cache gets the POST again without it, remembered."""

        def answer(request: httpx.Request) -> httpx.Response:
            body = json.loads(request.content)
            return (
                httpx.Response(400, json=REJECT)
                if "reset_prompt_cache" in body
                else httpx.Response(200, json={})
            )

        route = router.post(HOTLOAD_PATH).mock(side_effect=answer)
        await manager.hotload("d", BASE_MODEL, "s1")
        assert route.call_count == 2
        assert "reset_prompt_cache" in body_of(route, 0)
        assert body_of(route, 1) == {"identity": "s1"}
        await manager.hotload("d", BASE_MODEL, "s2")
        assert route.call_count == 3
        assert body_of(route) == {"identity": "s2"}

    async def test_keyed_per_gateway(
        self, transport: httpx.MockTransport, router: respx.Router
    ) -> None:
        """What one gateway rejects is not assumed of another."""
        old = router.post("https://old-gw.example" + HOTLOAD_PATH).mock(
            side_effect=sequence(httpx.Response(400, json=REJECT), ok({}))
        )
        new = router.post("https://new-gw.example" + HOTLOAD_PATH).respond(json={})
        kwargs: dict[str, Any] = {
            "api_key": API_KEY,
            "account_id": ACCOUNT,
            "base_url": BASE_URL,
            "transport": transport,
        }
        async with AsyncDeploymentManager(hotload_api_url="https://old-gw.example", **kwargs) as a:
            await a.hotload("d", BASE_MODEL, "s1")
            assert a._hotloads.reset_prompt_cache_supported is False  # one per gateway
        async with AsyncDeploymentManager(hotload_api_url="https://new-gw.example", **kwargs) as b:
            await b.hotload("d", BASE_MODEL, "s1")
        assert old.call_count == 2
        assert body_of(new)["reset_prompt_cache"] is True

    async def test_other_400_raises(
        self, manager: AsyncDeploymentManager, router: respx.Router
    ) -> None:
        """Any other 400 raises BadRequestError after one POST."""
        route = router.post(HOTLOAD_PATH).respond(
            400, json={"error": {"message": "delta does not match the served snapshot"}}
        )
        with pytest.raises(BadRequestError, match="delta does not match"):
            await manager.hotload("d", BASE_MODEL, "s1")
        assert route.call_count == 1

    async def test_reset_false_is_sent(
        self, manager: AsyncDeploymentManager, router: respx.Router
    ) -> None:
        """reset_prompt_cache=False is sent as false."""
        route = router.post(HOTLOAD_PATH).respond(json={})
        await manager.hotload("d", BASE_MODEL, "s1", reset_prompt_cache=False)
        assert body_of(route) == {"identity": "s1", "reset_prompt_cache": False}


class TestHotloadRetries:
    async def test_lost_answer_that_landed_is_not_reposted(
        self, manager: AsyncDeploymentManager, router: respx.Router
    ) -> None:
        """A lost POST answer checks the status; a replica targeting the identity: no re-POST."""
        post = router.post(HOTLOAD_PATH).mock(side_effect=httpx.ReadTimeout("lost"))
        status = router.get(HOTLOAD_PATH).respond(
            json=status_json(replica_json("s0", stage="downloading", target="s1"))
        )
        assert await manager.hotload("d", BASE_MODEL, "s1") == {}
        assert post.call_count == 1
        assert status.call_count == 1

    async def test_lost_answer_not_landed_reposts(
        self, manager: AsyncDeploymentManager, router: respx.Router
    ) -> None:
        """If the status shows nothing of the identity over the lag window, the POST is re-sent."""
        order: list[str] = []
        posts = sequence(httpx.ReadTimeout("lost"), ok({}))

        def on_post(request: httpx.Request) -> httpx.Response:
            order.append("POST")
            return posts(request)  # type: ignore[no-any-return]

        def on_get(request: httpx.Request) -> httpx.Response:
            order.append("GET")
            return ok(status_json(replica_json("s0")))

        router.post(HOTLOAD_PATH).mock(side_effect=on_post)
        router.get(HOTLOAD_PATH).mock(side_effect=on_get)
        sleeps = Sleeps()
        manager._http.sleep = sleeps
        await manager.hotload("d", BASE_MODEL, "s1")
        # The status may lag an accepted POST: it is read over the whole lag window first.
        assert order == ["POST", *["GET"] * LAG_READS, "POST"]
        assert len(sleeps.delays) == LAG_READS  # the pauses between reads, and one backoff

    @pytest.mark.parametrize("code", [429, 503])
    async def test_refused_post_is_checked_before_resending(
        self, manager: AsyncDeploymentManager, router: respx.Router, code: int
    ) -> None:
        """429 and 503 may come after the gateway applied the load: status first, then re-send."""
        route = router.post(HOTLOAD_PATH).mock(side_effect=sequence(httpx.Response(code), ok({})))
        status = router.get(HOTLOAD_PATH).respond(json=status_json(replica_json("s0")))
        manager._http.sleep = Sleeps()
        await manager.hotload("d", BASE_MODEL, "s1")
        assert route.call_count == 2
        assert status.call_count == LAG_READS

    @pytest.mark.parametrize("code", [429, 503])
    async def test_refused_post_that_landed_is_not_resent(
        self, manager: AsyncDeploymentManager, router: respx.Router, code: int
    ) -> None:
        """A 503 answered after the load started: the status shows it, no second POST."""
        route = router.post(HOTLOAD_PATH).respond(code)
        router.get(HOTLOAD_PATH).respond(
            json=status_json(replica_json("s0", ready=False, stage="loading", target="s1"))
        )
        assert await manager.hotload("d", BASE_MODEL, "s1") == {}
        assert route.call_count == 1

    async def test_lagging_status_then_landed_is_not_resent(
        self, manager: AsyncDeploymentManager, router: respx.Router
    ) -> None:
        """A status that shows the load only after a few reads still prevents a second POST."""
        post = router.post(HOTLOAD_PATH).respond(503)
        lagging = [ok(status_json(replica_json("s0")))] * (LAG_READS - 1)
        router.get(HOTLOAD_PATH).mock(
            side_effect=sequence(*lagging, ok(status_json(replica_json("s0", target="s1"))))
        )
        manager._http.sleep = Sleeps()
        assert await manager.hotload("d", BASE_MODEL, "s1") == {}
        assert post.call_count == 1

    async def test_400_to_a_resend_of_a_load_that_landed_is_reconciled(
        self, manager: AsyncDeploymentManager, router: respx.Router
    ) -> None:
        """A strict gateway refuses the repeat of a delta that did land: the status settles it."""
        refuse = {"error": {"message": "previous_snapshot_identity s0 is not served"}}
        post = router.post(HOTLOAD_PATH).mock(
            side_effect=sequence(httpx.Response(503), httpx.Response(400, json=refuse))
        )
        statuses = [ok(status_json(replica_json("s0")))] * LAG_READS
        router.get(HOTLOAD_PATH).mock(
            side_effect=sequence(*statuses, ok(status_json(replica_json("s0", target="s1"))))
        )
        manager._http.sleep = Sleeps()
        metadata = {"previous_snapshot_identity": "s0"}
        assert await manager.hotload("d", BASE_MODEL, "s1", metadata) == {}
        assert post.call_count == 2

    async def test_400_to_a_first_post_is_not_reconciled(
        self, manager: AsyncDeploymentManager, router: respx.Router
    ) -> None:
        """A 400 to the only POST is the server's verdict: raised without a status read."""
        router.post(HOTLOAD_PATH).respond(400, json={"error": {"message": "bad chain"}})
        status = router.get(HOTLOAD_PATH).respond(json=status_json(replica_json("s1")))
        with pytest.raises(BadRequestError):
            await manager.hotload("d", BASE_MODEL, "s1")
        assert status.call_count == 0

    @pytest.mark.parametrize("code", [500, 502, 504, 408])
    async def test_ambiguous_status_checks_before_resending(
        self, manager: AsyncDeploymentManager, router: respx.Router, code: int
    ) -> None:
        """After a 5xx/408 (maybe acted on) the status is read, then the POST is re-sent."""
        post = router.post(HOTLOAD_PATH).mock(side_effect=sequence(httpx.Response(code), ok({})))
        status = router.get(HOTLOAD_PATH).respond(json=status_json(replica_json("s0")))
        manager._http.sleep = Sleeps()
        await manager.hotload("d", BASE_MODEL, "s1")
        assert post.call_count == 2
        assert status.call_count == LAG_READS
        order = [
            call.request.method for call in router.calls if "hot_load" in str(call.request.url)
        ]
        assert order == ["POST", *["GET"] * LAG_READS, "POST"]

    async def test_ambiguous_status_that_landed_is_not_resent(
        self, manager: AsyncDeploymentManager, router: respx.Router
    ) -> None:
        """A 500 whose load shows up in the status counts as accepted: no second POST."""
        post = router.post(HOTLOAD_PATH).respond(500)
        router.get(HOTLOAD_PATH).respond(
            json=status_json(replica_json("s0", ready=False, stage="loading", target="s1"))
        )
        await manager.hotload("d", BASE_MODEL, "s1")
        assert post.call_count == 1

    async def test_unreadable_2xx_body_is_checked(
        self, manager: AsyncDeploymentManager, router: respx.Router
    ) -> None:
        """A 2xx with an unreadable body is checked against the status, not re-sent blindly."""
        post = router.post(HOTLOAD_PATH).respond(200, text="OK")
        router.get(HOTLOAD_PATH).respond(
            json=status_json(replica_json("s0", ready=False, stage="loading", target="s1"))
        )
        assert await manager.hotload("d", BASE_MODEL, "s1") == {}
        assert post.call_count == 1

    @pytest.mark.parametrize(
        ("code", "cls"),
        [(400, BadRequestError), (404, NotFoundError), (401, AuthenticationError)],
    )
    async def test_other_errors_not_resent(
        self, manager: AsyncDeploymentManager, router: respx.Router, code: int, cls: type[Exception]
    ) -> None:
        """400, 404 and 401 raise after exactly one POST."""
        route = router.post(HOTLOAD_PATH).respond(code)
        with pytest.raises(cls):
            await manager.hotload("d", BASE_MODEL, "s1")
        assert route.call_count == 1

    async def test_timeout_bounds_resends(
        self, manager: AsyncDeploymentManager, router: respx.Router
    ) -> None:
        """A gateway answering 503 forever fails within the hot-load timeout."""
        router.post(HOTLOAD_PATH).respond(503)
        router.get(HOTLOAD_PATH).respond(json=status_json(replica_json("s0")))
        started = time.monotonic()
        with pytest.raises(InternalServerError):
            await manager.hotload("d", BASE_MODEL, "s1", timeout=0.5)
        assert time.monotonic() - started < 5


class TestHotloadStatus:
    async def test_two_replicas(
        self, manager: AsyncDeploymentManager, router: respx.Router
    ) -> None:
        """GET returns every replica, with routing headers and no body."""
        route = router.get(HOTLOAD_PATH).respond(
            json=load_fixture("hotload_status_2_replicas.json")
        )
        status = await manager.hotload_status("dep-1", BASE_MODEL)
        assert isinstance(status, HotloadStatus)
        assert [r.identity for r in status.replicas] == ["pod-7f9c", "pod-2b1e"]
        request = route.calls.last.request
        assert request.headers["fireworks-model"] == BASE_MODEL
        assert request.headers["fireworks-deployment"] == f"accounts/{ACCOUNT}/deployments/dep-1"
        assert request.headers["authorization"] == f"Bearer {API_KEY}"
        assert request.content == b""
        assert request.url.query == b""

    async def test_bad_input(self, manager: AsyncDeploymentManager, router: respx.Router) -> None:
        """An empty base_model is refused before any request."""
        with pytest.raises(InvalidConfigError):
            await manager.hotload_status("d", "")
        assert len(router.calls) == 0


class TestWaitForHotload:
    async def test_every_replica_must_serve(
        self, manager: AsyncDeploymentManager, router: respx.Router
    ) -> None:
        """Replica 0 ready but replica 1 not keeps waiting until both serve the identity."""
        route = router.get(HOTLOAD_PATH).mock(
            side_effect=sequence(
                ok(
                    status_json(
                        replica_json("s1"),
                        replica_json("s0", ready=False, stage="loading", target="s1", pod="pod-1"),
                    )
                ),
                ok(status_json(replica_json("s1"), replica_json("s1", pod="pod-1"))),
            )
        )
        status = await manager.wait_for_hotload("d", BASE_MODEL, "s1", timeout_seconds=5, **FAST)
        assert route.call_count == 2
        assert all(r.current_snapshot_identity == "s1" for r in status.replicas)

    async def test_error_for_our_identity_fails_at_once(
        self, manager: AsyncDeploymentManager, router: respx.Router
    ) -> None:
        """Stage error for our identity on any replica raises HotloadFailedError on that poll."""
        route = router.get(HOTLOAD_PATH).respond(
            json=status_json(
                replica_json("s0"),
                replica_json("s0", ready=False, stage="error", target="s1", pod="pod-1"),
            )
        )
        with pytest.raises(HotloadFailedError) as info:
            await manager.wait_for_hotload("d", BASE_MODEL, "s1", timeout_seconds=5, **FAST)
        assert route.call_count == 1
        assert info.value.identity == "s1"
        assert info.value.stage == "error"
        assert isinstance(info.value.status, HotloadStatus)
        assert "pod-1" in str(info.value)

    async def test_stale_error_ignored(
        self, manager: AsyncDeploymentManager, router: respx.Router
    ) -> None:
        """An error stage for another target is stale and ignored."""
        router.get(HOTLOAD_PATH).mock(
            side_effect=sequence(
                ok(status_json(replica_json("s0", stage="error", target="old"))),
                ok(status_json(replica_json("s1"))),
            )
        )
        status = await manager.wait_for_hotload("d", BASE_MODEL, "s1", timeout_seconds=5, **FAST)
        assert status.serves("s1")

    async def test_loaded_adapter_success(
        self, manager: AsyncDeploymentManager, router: respx.Router
    ) -> None:
        """A LoRA identity listed as loaded on every ready replica is success."""
        router.get(HOTLOAD_PATH).respond(
            json=status_json(
                replica_json("base", adapters=[{"identity": "lora-7", "status": "loaded"}])
            )
        )
        status = await manager.wait_for_hotload(
            "d", BASE_MODEL, "lora-7", timeout_seconds=5, **FAST
        )
        assert status.replicas[0].loaded_adapters[0].identity == "lora-7"

    async def test_empty_replicas_is_pending(
        self, manager: AsyncDeploymentManager, router: respx.Router
    ) -> None:
        """An empty replica list keeps waiting."""
        route = router.get(HOTLOAD_PATH).mock(
            side_effect=sequence(ok({"replicas": []}), ok(status_json(replica_json("s1"))))
        )
        await manager.wait_for_hotload("d", BASE_MODEL, "s1", timeout_seconds=5, **FAST)
        assert route.call_count == 2

    async def test_restarting_gateway_waited_out(
        self, manager: AsyncDeploymentManager, router: respx.Router
    ) -> None:
        """404 (while the deployment exists), 503 and connection errors are polled through."""
        router.get(dep_path("d")).respond(json=deployment_json("d", "READY"))
        router.get(HOTLOAD_PATH).mock(
            side_effect=sequence(
                httpx.Response(404),
                httpx.Response(503),
                httpx.ConnectError("x"),
                ok(status_json(replica_json("s1"))),
            )
        )
        await manager.wait_for_hotload("d", BASE_MODEL, "s1", timeout_seconds=5, **FAST)

    async def test_404_for_a_deleted_deployment_raises(
        self, manager: AsyncDeploymentManager, router: respx.Router
    ) -> None:
        """A 404 from the status while the control plane says the deployment is gone raises."""
        router.get(dep_path("d")).respond(404)
        router.get(HOTLOAD_PATH).respond(404)
        with pytest.raises(DeploymentNotFoundError):
            await manager.wait_for_hotload("d", BASE_MODEL, "s1", timeout_seconds=10, **FAST)

    async def test_404_for_a_failed_deployment_raises(
        self, manager: AsyncDeploymentManager, router: respx.Router
    ) -> None:
        """A 404 from the status of a FAILED deployment raises DeploymentFailedError."""
        router.get(dep_path("d")).respond(json=deployment_json("d", "FAILED"))
        router.get(HOTLOAD_PATH).respond(404)
        with pytest.raises(DeploymentFailedError):
            await manager.wait_for_hotload("d", BASE_MODEL, "s1", timeout_seconds=10, **FAST)

    async def test_a_few_unreadable_answers_are_waited_out(
        self, manager: AsyncDeploymentManager, router: respx.Router
    ) -> None:
        """One truncated status body does not end the wait."""
        router.get(HOTLOAD_PATH).mock(
            side_effect=sequence(
                httpx.Response(200, text='{"replicas": ['), ok(status_json(replica_json("s1")))
            )
        )
        await manager.wait_for_hotload("d", BASE_MODEL, "s1", timeout_seconds=5, **FAST)

    async def test_persistently_unreadable_answers_raise(
        self, manager: AsyncDeploymentManager, router: respx.Router
    ) -> None:
        """A status that stays unreadable raises ResponseValidationError, not a timeout."""
        route = router.get(HOTLOAD_PATH).respond(200, json={"replicas": "nope"})
        with pytest.raises(ResponseValidationError):
            await manager.wait_for_hotload("d", BASE_MODEL, "s1", timeout_seconds=10, **FAST)
        assert route.call_count == 4

    async def test_load_lost_by_a_restarted_gateway_is_sent_again(
        self, manager: AsyncDeploymentManager, router: respx.Router
    ) -> None:
        """A load a replica was loading, then forgot (a restarted gateway), is POSTed again."""
        served = {"posts": 0, "polls": 0}

        def post(request: httpx.Request) -> httpx.Response:
            served["posts"] += 1
            served["polls"] = 0
            return httpx.Response(200, json={})

        def status(request: httpx.Request) -> httpx.Response:
            served["polls"] += 1
            if served["posts"] >= 2:
                return ok(status_json(replica_json("s1")))
            if served["polls"] == 1:  # loading, then the gateway restarts and forgets it
                return ok(
                    status_json(replica_json("s0", ready=False, stage="loading", target="s1"))
                )
            return ok(status_json(replica_json(None, stage="idle")))

        router.post(HOTLOAD_PATH).mock(side_effect=post)
        router.get(HOTLOAD_PATH).mock(side_effect=status)
        result = await manager.hotload_and_wait("d", BASE_MODEL, "s1", timeout_seconds=10, **FAST)
        assert result.serves("s1")
        assert served["posts"] == 2

    async def test_new_pods_without_the_load_are_a_lost_load(
        self, manager: AsyncDeploymentManager, router: respx.Router
    ) -> None:
        """Pods replaced mid-load (none mentions the load) are evidence too: POSTed again."""
        served = {"posts": 0, "polls": 0}

        def post(request: httpx.Request) -> httpx.Response:
            served["posts"] += 1
            return httpx.Response(200, json={})

        def status(request: httpx.Request) -> httpx.Response:
            served["polls"] += 1
            if served["posts"] >= 2:
                return ok(status_json(replica_json("s1", pod="pod-new")))
            if served["polls"] == 1:  # status lags the POST on the old pod
                return ok(status_json(replica_json("s0", pod="pod-old")))
            return ok(status_json(replica_json(None, stage="idle", pod="pod-new")))

        router.post(HOTLOAD_PATH).mock(side_effect=post)
        router.get(HOTLOAD_PATH).mock(side_effect=status)
        result = await manager.hotload_and_wait("d", BASE_MODEL, "s1", timeout_seconds=10, **FAST)
        assert result.serves("s1")
        assert served["posts"] == 2

    async def test_lagging_status_is_not_a_lost_load(
        self, manager: AsyncDeploymentManager, router: respx.Router
    ) -> None:
        """A status that shows nothing of the load for a while (same pods) is not re-POSTed."""
        post = router.post(HOTLOAD_PATH).respond(200, json={})
        started = time.monotonic()

        def status(request: httpx.Request) -> httpx.Response:
            if time.monotonic() - started < 1.5:  # past the lost-load threshold (3 polls, 1 s)
                return ok(status_json(replica_json("s0", stage="done")))
            return ok(status_json(replica_json("s1")))

        router.get(HOTLOAD_PATH).mock(side_effect=status)
        metadata = {"previous_snapshot_identity": "s0"}
        result = await manager.hotload_and_wait(
            "d", BASE_MODEL, "s1", metadata, timeout_seconds=10, **FAST
        )
        assert result.serves("s1")
        assert post.call_count == 1

    async def test_lost_load_resends_are_bounded(
        self, manager: AsyncDeploymentManager, router: respx.Router
    ) -> None:
        """A gateway that forgets every load ends in HotloadTimeoutError after bounded re-sends."""
        polls = {"n": 0}

        def on_post(request: httpx.Request) -> httpx.Response:
            polls["n"] = 0
            return ok({})

        def status(request: httpx.Request) -> httpx.Response:
            polls["n"] += 1
            if polls["n"] == 1:
                return ok(
                    status_json(replica_json("s0", ready=False, stage="loading", target="s1"))
                )
            return ok(status_json(replica_json(None, stage="idle")))

        post = router.post(HOTLOAD_PATH).mock(side_effect=on_post)
        router.get(HOTLOAD_PATH).mock(side_effect=status)
        with pytest.raises(HotloadTimeoutError):
            await manager.hotload_and_wait("d", BASE_MODEL, "s1", timeout_seconds=6, **FAST)
        assert post.call_count == 3

    async def test_replica_that_vanishes_mid_load_is_not_success(
        self, manager: AsyncDeploymentManager, router: respx.Router
    ) -> None:
        """Every replica seen must serve: one missing from the list is waited for."""
        a_loading = replica_json("s0", ready=False, stage="loading", target="s1", pod="pod-a")
        b_loading = replica_json("s0", ready=False, stage="loading", target="s1", pod="pod-b")
        route = router.get(HOTLOAD_PATH).mock(
            side_effect=sequence(
                ok(status_json(a_loading, b_loading)),
                ok(status_json(replica_json("s1", pod="pod-a"))),  # pod-b vanished
                ok(status_json(replica_json("s1", pod="pod-a"), replica_json("s1", pod="pod-b"))),
            )
        )
        status = await manager.wait_for_hotload("d", BASE_MODEL, "s1", timeout_seconds=10, **FAST)
        assert route.call_count == 3
        assert {r.identity for r in status.replicas} == {"pod-a", "pod-b"}

    async def test_replica_that_never_returns_times_out_naming_it(
        self, manager: AsyncDeploymentManager, router: respx.Router
    ) -> None:
        """A replica gone for good ends in HotloadTimeoutError that names it."""
        a_loading = replica_json("s0", ready=False, stage="loading", target="s1", pod="pod-a")
        b_loading = replica_json("s0", ready=False, stage="loading", target="s1", pod="pod-b")
        router.get(HOTLOAD_PATH).mock(
            side_effect=sequence(
                ok(status_json(a_loading, b_loading)),
                ok(status_json(replica_json("s1", pod="pod-a"))),  # pod-b never returns
            )
        )
        with pytest.raises(HotloadTimeoutError, match="pod-b"):
            await manager.wait_for_hotload("d", BASE_MODEL, "s1", timeout_seconds=1, **FAST)

    @pytest.mark.parametrize("code", [401, 403])
    async def test_auth_error_fails_fast(
        self, manager: AsyncDeploymentManager, router: respx.Router, code: int
    ) -> None:
        """401/403 on the status raise at once (the official client polls until timeout)."""
        route = router.get(HOTLOAD_PATH).respond(code)
        with pytest.raises(APIStatusError) as info:
            await manager.wait_for_hotload("d", BASE_MODEL, "s1", timeout_seconds=10, **FAST)
        assert getattr(info.value, "status_code", None) == code
        assert route.call_count == 1

    async def test_malformed_status_raises(
        self, manager: AsyncDeploymentManager, router: respx.Router
    ) -> None:
        """A status whose replicas is not a list raises ResponseValidationError, not a timeout."""
        from fireworks_deploy import ResponseValidationError

        router.get(HOTLOAD_PATH).respond(json={"replicas": "nope"})
        with pytest.raises(ResponseValidationError):
            await manager.wait_for_hotload("d", BASE_MODEL, "s1", timeout_seconds=10, **FAST)

    async def test_one_deadline_against_500(
        self, manager: AsyncDeploymentManager, router: respx.Router
    ) -> None:
        """timeout_seconds=1 against a permanent 500 raises HotloadTimeoutError in about 1 s."""
        router.get(HOTLOAD_PATH).respond(500)
        started = time.monotonic()
        with pytest.raises(HotloadTimeoutError) as info:
            await manager.wait_for_hotload("d", BASE_MODEL, "s1", timeout_seconds=1)
        assert time.monotonic() - started < 5
        assert isinstance(info.value, TimeoutError)

    async def test_timeout_carries_last_status(
        self, manager: AsyncDeploymentManager, router: respx.Router
    ) -> None:
        """The timeout carries the last HotloadStatus and names the replicas."""
        router.get(HOTLOAD_PATH).respond(json=status_json(replica_json("s0", pod="pod-a")))
        with pytest.raises(HotloadTimeoutError) as info:
            await manager.wait_for_hotload("d", BASE_MODEL, "s1", timeout_seconds=1.5, **FAST)
        assert isinstance(info.value.last_status, HotloadStatus)
        assert "pod-a" in str(info.value)

    async def test_waiters_share_one_poll_loop(
        self, transport: httpx.MockTransport, router: respx.Router
    ) -> None:
        """M=50 concurrent waits on one deployment cost about the same requests as M=1."""
        counts: dict[int, int] = {}
        for m in (1, 50):
            route = router.get(HOTLOAD_PATH).mock(
                side_effect=sequence(
                    *[ok(status_json(replica_json("s0", stage="loading", target="s1")))] * 3,
                    ok(status_json(replica_json("s1"))),
                )
            )
            route.calls.clear()
            async with AsyncDeploymentManager(
                api_key=API_KEY, account_id=ACCOUNT, base_url=BASE_URL, transport=transport
            ) as mgr:
                async with anyio.create_task_group() as tg:
                    for _ in range(m):
                        tg.start_soon(
                            lambda mgr=mgr: mgr.wait_for_hotload(
                                "d", BASE_MODEL, "s1", timeout_seconds=10, **FAST
                            )
                        )
                counts[m] = route.call_count
                assert mgr.poll_requests == route.call_count
        assert counts[1] == 4
        assert counts[50] <= counts[1] + 1

    async def test_bad_input(self, manager: AsyncDeploymentManager, router: respx.Router) -> None:
        """Bad identities and durations raise before any request."""
        for call in (
            lambda: manager.wait_for_hotload("d", BASE_MODEL, "a/b"),
            lambda: manager.wait_for_hotload("d", BASE_MODEL, "s", timeout_seconds=0),
            lambda: manager.wait_for_hotload("d", BASE_MODEL, "s", poll_interval_s=-1),
        ):
            with pytest.raises(InvalidConfigError):
                await call()
        assert len(router.calls) == 0


class TestHotloadAndWait:
    async def test_returns_truthy_status(
        self, manager: AsyncDeploymentManager, router: respx.Router
    ) -> None:
        """Success returns the final HotloadStatus (truthy, not a bool)."""
        post = router.post(HOTLOAD_PATH).respond(json={})
        router.get(HOTLOAD_PATH).mock(
            side_effect=sequence(
                ok(status_json(replica_json("s0", stage="downloading", target="s1"))),
                ok(status_json(replica_json("s1"))),
            )
        )
        status = await manager.hotload_and_wait("d", BASE_MODEL, "s1", timeout_seconds=5, **FAST)
        assert isinstance(status, HotloadStatus)
        assert status is not True
        assert status
        assert status.serves("s1")
        assert post.call_count == 1

    async def test_failure_raises(
        self, manager: AsyncDeploymentManager, router: respx.Router
    ) -> None:
        """A replica erroring on our identity raises HotloadFailedError (never returns False)."""
        router.post(HOTLOAD_PATH).respond(json={})
        router.get(HOTLOAD_PATH).respond(
            json=status_json(replica_json("s0", ready=False, stage="error", target="s1"))
        )
        with pytest.raises(HotloadFailedError):
            await manager.hotload_and_wait("d", BASE_MODEL, "s1", timeout_seconds=5, **FAST)

    async def test_status_before_the_post_is_not_used(
        self, manager: AsyncDeploymentManager, router: respx.Router
    ) -> None:
        """Only status polls made after the POST count."""
        order: list[str] = []

        def on_post(request: httpx.Request) -> httpx.Response:
            order.append("POST")
            return ok({})

        def on_get(request: httpx.Request) -> httpx.Response:
            order.append("GET")
            return ok(status_json(replica_json("s1")))

        router.post(HOTLOAD_PATH).mock(side_effect=on_post)
        router.get(HOTLOAD_PATH).mock(side_effect=on_get)
        await manager.hotload_and_wait("d", BASE_MODEL, "s1", timeout_seconds=5, **FAST)
        assert order == ["POST", "GET"]

    async def test_one_deadline_covers_post_and_wait(
        self, manager: AsyncDeploymentManager, router: respx.Router
    ) -> None:
        """The POST and the wait share timeout_seconds."""
        router.post(HOTLOAD_PATH).respond(json={})
        router.get(HOTLOAD_PATH).respond(503)
        started = time.monotonic()
        with pytest.raises(HotloadTimeoutError):
            await manager.hotload_and_wait("d", BASE_MODEL, "s1", timeout_seconds=1)
        assert time.monotonic() - started < 5

    async def test_bad_input_sends_nothing(
        self, manager: AsyncDeploymentManager, router: respx.Router
    ) -> None:
        """Bad metadata or identities raise before the POST."""
        for call in (
            lambda: manager.hotload_and_wait(
                "d",
                BASE_MODEL,
                "s1",
                {"previous_snapshot_identity": "s0", "checksum_format": "adler32"},
            ),
            lambda: manager.hotload_and_wait("d", " ", "s1"),
            lambda: manager.hotload_and_wait("D", BASE_MODEL, "s1"),
            lambda: manager.hotload_and_wait("d", BASE_MODEL, ""),
            lambda: manager.hotload("d", BASE_MODEL, "s1", timeout=-1),
        ):
            with pytest.raises(InvalidConfigError):
                await call()
        assert len(router.calls) == 0
