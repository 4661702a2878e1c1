"""Fleet helpers: many deployments under one deadline, with every outcome reported."""

from __future__ import annotations

import json
import time
from typing import Any

import httpx
import pytest
import respx
from core_testkit import (
    ACCOUNT,
    BASE_MODEL,
    COMPLETIONS_PATH,
    HOTLOAD_PATH,
    deployment_json,
    replica_json,
    status_json,
)

from fireworks_deploy import (
    AsyncDeploymentManager,
    AuthenticationError,
    DeploymentFailedError,
    DeploymentNotFoundError,
    FleetError,
    FleetResult,
    HotloadFailedError,
    HotloadStatus,
    HotloadTimeoutError,
    InvalidConfigError,
    Outcome,
    ReadyTimeoutError,
)

LIST_PATH = f"/v1/accounts/{ACCOUNT}/deployments"
FAST = {"poll_interval_s": 0.02}


def lister(states: dict[str, list[str]]) -> Any:
    """A list endpoint: each deployment walks through its states, one per list call."""
    calls = {"n": 0}

    def answer(request: httpx.Request) -> httpx.Response:
        index = calls["n"]
        calls["n"] += 1
        deployments = [
            deployment_json(dep, seq[min(index, len(seq) - 1)]) for dep, seq in states.items()
        ]
        return httpx.Response(200, json={"deployments": deployments, "nextPageToken": ""})

    return answer


class TestWaitForReadyMany:
    async def test_one_list_request_per_poll(
        self, manager: AsyncDeploymentManager, router: respx.Router
    ) -> None:
        """N deployments cost one list request per poll, not N GETs."""
        ids = [f"d{i}" for i in range(20)]
        listing = router.get(LIST_PATH).mock(
            side_effect=lister({i: ["UPDATING", "UPDATING", "READY"] for i in ids})
        )
        single = router.get(path__regex=rf"^{LIST_PATH}/.+").respond(500)
        result = await manager.wait_for_ready_many(ids, timeout_s=5, **FAST)
        assert isinstance(result, FleetResult)
        assert result.ok
        assert len(result) == 20
        assert listing.call_count == 3
        assert single.call_count == 0
        assert set(result.succeeded) == set(ids)
        assert listing.calls.last.request.url.params["pageSize"] == "200"

    async def test_creating_is_probed(
        self, manager: AsyncDeploymentManager, router: respx.Router
    ) -> None:
        """CREATING deployments are probed, once each per poll; a 200 makes them ready."""
        router.get(LIST_PATH).mock(side_effect=lister({"a": ["CREATING"], "b": ["READY"]}))
        probe = router.post(COMPLETIONS_PATH).respond(200)
        result = await manager.wait_for_ready_many(["a", "b"], timeout_s=5, **FAST)
        assert result["a"].value is not None
        assert result["a"].value.state == "CREATING"
        assert probe.call_count == 1

    async def test_probes_keep_to_a_tenth_of_the_fleet_per_interval(
        self, manager: AsyncDeploymentManager, router: respx.Router
    ) -> None:
        """CREATING deployments whose list entry shows no ready replica share a budget: list
        reads and probes together stay near N / 10 per interval, and the probes go round the
        fleet (least recently probed first) instead of hitting the same ones."""
        ids = [f"c{i:02d}" for i in range(40)]
        listing = router.get(LIST_PATH).mock(side_effect=lister({i: ["CREATING"] for i in ids}))
        probe = router.post(COMPLETIONS_PATH).respond(503)
        started = time.monotonic()
        with pytest.raises(FleetError):
            await manager.wait_for_ready_many(ids, timeout_s=1.0, poll_interval_s=0.1)
        intervals = (time.monotonic() - started) / 0.1
        assert probe.call_count > 0
        assert listing.call_count + probe.call_count <= 0.1 * len(ids) * intervals + 1
        probed = [json.loads(call.request.content)["model"] for call in probe.calls]
        assert len(set(probed)) == len(probed)

    async def test_a_listed_ready_replica_is_probed_every_round(
        self, manager: AsyncDeploymentManager, router: respx.Router
    ) -> None:
        """A CREATING deployment the list shows with a ready replica may already serve: it is
        probed every round, whatever the budget."""
        ids = [f"c{i:02d}" for i in range(40)]

        def answer(request: httpx.Request) -> httpx.Response:
            deployments = [
                deployment_json(i, "CREATING", replicaCount=1 if i == "c00" else 0) for i in ids
            ]
            return httpx.Response(200, json={"deployments": deployments, "nextPageToken": ""})

        listing = router.get(LIST_PATH).mock(side_effect=answer)
        probe = router.post(COMPLETIONS_PATH).respond(503)
        with pytest.raises(FleetError):
            await manager.wait_for_ready_many(ids, timeout_s=0.6, poll_interval_s=0.1)
        probed = [json.loads(call.request.content)["model"] for call in probe.calls]
        assert sum(model.endswith("/c00") for model in probed) == listing.call_count

    async def test_per_deployment_outcomes(
        self, manager: AsyncDeploymentManager, router: respx.Router
    ) -> None:
        """FleetError carries the result with every deployment's outcome."""
        router.get(LIST_PATH).mock(
            side_effect=lister({"ok": ["READY"], "bad": ["FAILED"], "slow": ["UPDATING"]})
        )
        with pytest.raises(FleetError) as info:
            await manager.wait_for_ready_many(["ok", "bad", "slow", "gone"], timeout_s=1.5, **FAST)
        result = info.value.result
        assert [o.deployment_id for o in result] == ["ok", "bad", "slow", "gone"]
        assert result["ok"].ok
        assert isinstance(result["bad"].error, DeploymentFailedError)
        assert isinstance(result["slow"].error, ReadyTimeoutError)
        assert isinstance(result["gone"].error, DeploymentNotFoundError)
        assert set(result.failed) == {"bad", "slow", "gone"}
        assert "3 of 4" in str(info.value)

    async def test_return_exceptions(
        self, manager: AsyncDeploymentManager, router: respx.Router
    ) -> None:
        """return_exceptions=True returns the result instead of raising."""
        router.get(LIST_PATH).mock(side_effect=lister({"ok": ["READY"], "bad": ["DELETING"]}))
        result = await manager.wait_for_ready_many(
            ["ok", "bad"], timeout_s=5, return_exceptions=True, **FAST
        )
        assert not result.ok
        assert isinstance(result.failed["bad"], DeploymentFailedError)
        assert list(result.succeeded) == ["ok"]

    async def test_failures_do_not_stop_the_rest(
        self, manager: AsyncDeploymentManager, router: respx.Router
    ) -> None:
        """A deployment failing early does not end the wait for the others."""
        router.get(LIST_PATH).mock(
            side_effect=lister({"bad": ["FAILED"], "late": ["UPDATING", "UPDATING", "READY"]})
        )
        result = await manager.wait_for_ready_many(
            ["bad", "late"], timeout_s=5, return_exceptions=True, **FAST
        )
        assert result["late"].ok

    async def test_pages_are_followed(
        self, manager: AsyncDeploymentManager, router: respx.Router
    ) -> None:
        """Deployments on later pages are found."""

        def answer(request: httpx.Request) -> httpx.Response:
            if request.url.params.get("pageToken") == "p2":
                return httpx.Response(
                    200, json={"deployments": [deployment_json("b")], "nextPageToken": ""}
                )
            return httpx.Response(
                200, json={"deployments": [deployment_json("a")], "nextPageToken": "p2"}
            )

        listing = router.get(LIST_PATH).mock(side_effect=answer)
        result = await manager.wait_for_ready_many(["a", "b"], timeout_s=5, **FAST)
        assert result.ok
        assert listing.call_count == 2

    async def test_transient_list_errors_waited_out(
        self, manager: AsyncDeploymentManager, router: respx.Router
    ) -> None:
        """A 503 from the list endpoint is polled through."""
        good = lister({"a": ["READY"]})
        calls = {"n": 0}

        def answer(request: httpx.Request) -> httpx.Response:
            calls["n"] += 1
            return httpx.Response(503) if calls["n"] == 1 else good(request)  # type: ignore[no-any-return]

        router.get(LIST_PATH).mock(side_effect=answer)
        assert (await manager.wait_for_ready_many(["a"], timeout_s=5, **FAST)).ok

    async def test_auth_error_fails_everyone_fast(
        self, manager: AsyncDeploymentManager, router: respx.Router
    ) -> None:
        """A 401 from the list fails every deployment at once."""
        listing = router.get(LIST_PATH).respond(401)
        result = await manager.wait_for_ready_many(
            ["a", "b"], timeout_s=10, return_exceptions=True, **FAST
        )
        assert all(isinstance(e, AuthenticationError) for e in result.failed.values())
        assert listing.call_count == 1

    async def test_one_deadline(
        self, manager: AsyncDeploymentManager, router: respx.Router
    ) -> None:
        """The whole fleet wait is bounded by timeout_s."""
        router.get(LIST_PATH).respond(503)
        started = time.monotonic()
        result = await manager.wait_for_ready_many(["a", "b"], timeout_s=1, return_exceptions=True)
        assert time.monotonic() - started < 5
        assert all(isinstance(e, ReadyTimeoutError) for e in result.failed.values())

    @pytest.mark.parametrize("ids", [[], ["a", "a"], ["Bad"], "abc"])
    async def test_bad_input(
        self, manager: AsyncDeploymentManager, router: respx.Router, ids: Any
    ) -> None:
        """Empty, duplicate or malformed ids raise before any request."""
        with pytest.raises(InvalidConfigError):
            await manager.wait_for_ready_many(ids)
        assert len(router.calls) == 0


def gateway(statuses: dict[str, list[dict[str, Any]]]) -> Any:
    """A hot-load status endpoint routed by the fireworks-deployment header."""
    calls: dict[str, int] = {}

    def answer(request: httpx.Request) -> httpx.Response:
        dep = request.headers["fireworks-deployment"].rsplit("/", 1)[-1]
        index = calls.get(dep, 0)
        calls[dep] = index + 1
        seq = statuses[dep]
        return httpx.Response(200, json=seq[min(index, len(seq) - 1)])

    return answer


class TestHotloadAndWaitMany:
    async def test_all_succeed(self, manager: AsyncDeploymentManager, router: respx.Router) -> None:
        """Every deployment is hot-loaded and waited on concurrently."""
        post = router.post(HOTLOAD_PATH).respond(json={})
        loading = status_json(replica_json("s0", stage="loading", target="s1"))
        done = status_json(replica_json("s1"), replica_json("s1", pod="pod-1"))
        router.get(HOTLOAD_PATH).mock(
            side_effect=gateway({d: [loading, done] for d in ("a", "b", "c")})
        )
        result = await manager.hotload_and_wait_many(
            ["a", "b", "c"], BASE_MODEL, "s1", timeout_seconds=5, **FAST
        )
        assert result.ok
        assert all(isinstance(v, HotloadStatus) for v in result.succeeded.values())
        assert post.call_count == 3
        assert {c.request.headers["fireworks-deployment"] for c in post.calls} == {
            f"accounts/{ACCOUNT}/deployments/{d}" for d in ("a", "b", "c")
        }

    async def test_outcomes_and_fleet_error(
        self, manager: AsyncDeploymentManager, router: respx.Router
    ) -> None:
        """A failure and a timeout are reported per deployment; FleetError carries the result."""
        router.post(HOTLOAD_PATH).respond(json={})
        router.get(HOTLOAD_PATH).mock(
            side_effect=gateway(
                {
                    "ok": [status_json(replica_json("s1"))],
                    "err": [
                        status_json(replica_json("s0", ready=False, stage="error", target="s1"))
                    ],
                    "slow": [status_json(replica_json("s0", stage="loading", target="s1"))],
                }
            )
        )
        with pytest.raises(FleetError) as info:
            await manager.hotload_and_wait_many(
                ["ok", "err", "slow"], BASE_MODEL, "s1", timeout_seconds=1.5, **FAST
            )
        result = info.value.result
        assert result["ok"].ok
        assert isinstance(result["err"].error, HotloadFailedError)
        assert isinstance(result["slow"].error, HotloadTimeoutError)

    async def test_return_exceptions(
        self, manager: AsyncDeploymentManager, router: respx.Router
    ) -> None:
        """return_exceptions=True returns the result."""
        router.post(HOTLOAD_PATH).respond(400, json={"error": {"message": "bad"}})
        result = await manager.hotload_and_wait_many(
            ["a", "b"], BASE_MODEL, "s1", timeout_seconds=5, return_exceptions=True, **FAST
        )
        assert set(result.failed) == {"a", "b"}

    async def test_delta_metadata_sent_to_all(
        self, manager: AsyncDeploymentManager, router: respx.Router
    ) -> None:
        """The delta metadata reaches every deployment's POST."""
        post = router.post(HOTLOAD_PATH).respond(json={})
        router.get(HOTLOAD_PATH).respond(json=status_json(replica_json("s1")))
        await manager.hotload_and_wait_many(
            ["a", "b"],
            BASE_MODEL,
            "s1",
            {"previous_snapshot_identity": "s0"},
            timeout_seconds=5,
            **FAST,
        )
        import json

        assert all(
            json.loads(c.request.content)["incremental_snapshot_metadata"][
                "previous_snapshot_identity"
            ]
            == "s0"
            for c in post.calls
        )

    async def test_bad_input(self, manager: AsyncDeploymentManager, router: respx.Router) -> None:
        """Bad ids or identity raise before any request."""
        for call in (
            lambda: manager.hotload_and_wait_many([], BASE_MODEL, "s1"),
            lambda: manager.hotload_and_wait_many(["a"], "", "s1"),
            lambda: manager.hotload_and_wait_many(["a"], BASE_MODEL, "x y"),
        ):
            with pytest.raises(InvalidConfigError):
                await call()
        assert len(router.calls) == 0


class TestFleetResult:
    def test_accessors(self) -> None:
        """ok, succeeded, failed, lookup and iteration work on outcomes."""
        err = ValueError("x")
        result: FleetResult[int] = FleetResult(
            (Outcome("a", value=1), Outcome("b", error=err)), 0.1
        )
        assert not result.ok
        assert result.succeeded == {"a": 1}
        assert result.failed == {"b": err}
        assert result["a"].ok
        assert not result["b"].ok
        assert [o.deployment_id for o in result] == ["a", "b"]
        with pytest.raises(KeyError):
            result["zzz"]
        with pytest.raises(FleetError) as info:
            result.raise_for_failures()
        assert info.value.result is result
