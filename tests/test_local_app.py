"""The local control plane over HTTP, in-process through ``httpx.ASGITransport``."""

from __future__ import annotations

import json
import math
from collections.abc import AsyncIterator
from typing import Any

import anyio
import httpx
import pytest
from local_kit import FakeClock, double_posts

from fireworks_deploy.local import DeploymentShape, Fault, LocalControlPlane

BASE = "accounts/fireworks/models/qwen3-8b"
DEPS = "http://local/v1/accounts/local/deployments"
HOTLOAD = "http://local/hot_load/v1/models/hot_load"
COMPLETIONS = "http://local/inference/v1/completions"
ROUTE = {"fireworks-deployment": "accounts/local/deployments/d1", "fireworks-model": BASE}
PROBE = {"model": "accounts/local/deployments/d1", "prompt": [1, 2], "max_tokens": 4}


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def plane(clock: FakeClock) -> LocalControlPlane:
    return LocalControlPlane(boot_seconds=10, hotload_seconds=4, delete_seconds=1, clock=clock)


@pytest.fixture
async def client(plane: LocalControlPlane) -> AsyncIterator[httpx.AsyncClient]:
    headers = {"X-Api-Key": "k", "Content-Type": "application/json"}
    async with httpx.AsyncClient(transport=plane.transport(), headers=headers) as c:
        yield c


async def create(client: httpx.AsyncClient, dep: str = "d1", **body: Any) -> httpx.Response:
    payload = {
        "baseModel": BASE,
        "minReplicaCount": 1,
        "maxReplicaCount": 1,
        "enableHotLoad": True,
        "hotLoadBucketType": "FW_HOSTED",
        **body,
    }
    return await client.post(f"{DEPS}?deploymentId={dep}", json=payload)


async def ready(client: httpx.AsyncClient, clock: FakeClock, **body: Any) -> None:
    assert (await create(client, **body)).status_code == 200
    clock.advance(10)


async def hotload(client: httpx.AsyncClient, body: dict[str, Any]) -> httpx.Response:
    return await client.post(HOTLOAD, json=body, headers=ROUTE)


async def replicas(client: httpx.AsyncClient) -> list[dict[str, Any]]:
    resp = await client.get(HOTLOAD, headers=ROUTE)
    assert resp.status_code == 200
    result: list[dict[str, Any]] = resp.json()["replicas"]
    return result


def error(resp: httpx.Response) -> dict[str, Any]:
    result: dict[str, Any] = resp.json()["error"]
    return result


# -- control plane ----------------------------------------------------------------------------


async def test_accounts_lists_the_one_account(client: httpx.AsyncClient) -> None:
    """GET /v1/accounts?pageSize=2 returns exactly one account."""
    resp = await client.get("http://local/v1/accounts?pageSize=2")
    assert resp.status_code == 200
    assert [a["name"] for a in resp.json()["accounts"]] == ["accounts/local"]
    assert resp.json()["nextPageToken"] == ""


async def test_create_returns_camelcase_deployment(client: httpx.AsyncClient) -> None:
    """Create echoes the training fields and starts in CREATING."""
    job = "accounts/local/rlorTrainerJobs/abc"
    resp = await client.post(
        f"{DEPS}?deploymentId=d1&skipShapeValidation=true&disableSpeculativeDecoding=true",
        json={
            "baseModel": BASE,
            "description": "Fireworks training deployment",
            "minReplicaCount": 1,
            "maxReplicaCount": 1,
            "enableHotLoad": True,
            "forTraining": True,
            "placement": {"region": "US_OHIO_1"},
            "hotLoadBucketType": "FW_HOSTED",
            "hotLoadTrainerJob": job,
            "hotLoadTransitionType": "sync",
            "deploymentShape": "accounts/fireworks/deploymentShapes/rft/versions/3",
            "extraArgs": ["--foo", "1"],
            "extraValues": {"a": "b"},
            "annotations": {"k": "v"},
            "preemptible": True,
            "someFutureField": 1,
        },
    )
    assert resp.status_code == 200
    body = resp.json()
    assert body["name"] == "accounts/local/deployments/d1"
    assert body["state"] == "CREATING"
    assert body["hotLoadTrainerJob"] == job
    assert body["hotLoadTransitionType"] == "SYNC"
    assert body["hotLoadBucketUrl"] == "gs://local-bucket/rl-checkpoints/local/trainer-abc/"
    assert body["placement"] == {"region": "US_OHIO_1"}
    assert (body["desiredReplicaCount"], body["replicaCount"]) == (1, 0)
    assert body["forTraining"] is True
    assert body["preemptible"] is True
    assert body["extraArgs"] == ["--foo", "1"]
    assert "acceleratorType" not in body


async def test_create_defaults(client: httpx.AsyncClient) -> None:
    """Without a trainer job the bucket is per deployment; transition type is omitted."""
    body = (await create(client)).json()
    assert body["hotLoadBucketUrl"] == "gs://local-bucket/rl-checkpoints/local/d1/"
    assert "hotLoadTransitionType" not in body
    assert body["acceleratorType"] == "NVIDIA_H200_141GB"


async def test_create_duplicate_is_409(client: httpx.AsyncClient) -> None:
    """A duplicate deploymentId is 409 ALREADY_EXISTS."""
    await create(client)
    resp = await create(client)
    assert resp.status_code == 409
    assert error(resp)["status"] == "ALREADY_EXISTS"
    assert error(resp)["code"] == 6


@pytest.mark.parametrize(
    ("query", "body", "needle"),
    [
        ("", {}, "deploymentId"),
        ("?deploymentId=Bad_ID", {}, "deploymentId"),
        ("?deploymentId=d1", {"baseModel": None}, "baseModel"),
        ("?deploymentId=d1", {"minReplicaCount": -1}, "minReplicaCount"),
        ("?deploymentId=d1", {"minReplicaCount": "x"}, "minReplicaCount"),
        ("?deploymentId=d1", {"maxReplicaCount": True}, "maxReplicaCount"),
        ("?deploymentId=d1", {"minReplicaCount": 3, "maxReplicaCount": 2}, "minReplicaCount"),
        ("?deploymentId=d1", {"hotLoadTransitionType": "FAST"}, "hotLoadTransitionType"),
        ("?deploymentId=d1", {"enableHotLoad": "yes"}, "enableHotLoad"),
        ("?deploymentId=d1", {"placement": "US"}, "placement"),
        ("?deploymentId=d1", {"extraArgs": "--foo"}, "extraArgs"),
    ],
)
async def test_create_validation(
    client: httpx.AsyncClient, query: str, body: dict[str, Any], needle: str
) -> None:
    """Bad creates are 400 with a message naming the field."""
    payload = {"baseModel": BASE, **body}
    resp = await client.post(DEPS + query, json={k: v for k, v in payload.items() if v is not None})
    assert resp.status_code == 400
    assert needle in error(resp)["message"]
    assert error(resp)["status"] == "INVALID_ARGUMENT"


async def test_unknown_account_and_deployment_are_404(client: httpx.AsyncClient) -> None:
    """Unknown accounts and deployments get a JSON NOT_FOUND error."""
    resp = await client.post(
        "http://local/v1/accounts/other/deployments?deploymentId=d1", json={"baseModel": BASE}
    )
    assert resp.status_code == 404
    resp = await client.get(f"{DEPS}/nope")
    assert resp.status_code == 404
    assert error(resp) == {
        "code": 5,
        "message": "Deployment accounts/local/deployments/nope not found.",
        "status": "NOT_FOUND",
    }


async def test_unknown_route_is_json_404(client: httpx.AsyncClient) -> None:
    """Unrouted paths and methods answer JSON errors."""
    resp = await client.get("http://local/v2/nothing")
    assert resp.status_code == 404
    assert error(resp)["status"] == "NOT_FOUND"
    resp = await client.put(f"{DEPS}/d1", json={})
    assert resp.status_code == 405


async def test_get_tracks_boot(client: httpx.AsyncClient, clock: FakeClock) -> None:
    """GET reports CREATING until boot_seconds pass, then READY with replicas."""
    await create(client)
    assert (await client.get(f"{DEPS}/d1")).json()["state"] == "CREATING"
    clock.advance(10)
    body = (await client.get(f"{DEPS}/d1")).json()
    assert (body["state"], body["replicaCount"]) == ("READY", 1)


async def test_list_pagination(client: httpx.AsyncClient) -> None:
    """List pages follow creation order with nextPageToken."""
    for i in range(5):
        await create(client, f"d{i}")
    names: list[str] = []
    token = ""
    while True:
        resp = await client.get(DEPS, params={"pageSize": 2, "pageToken": token})
        body = resp.json()
        names += [d["name"].rsplit("/", 1)[1] for d in body["deployments"]]
        token = body["nextPageToken"]
        if not token:
            break
    assert names == ["d0", "d1", "d2", "d3", "d4"]
    assert (await client.get(DEPS, params={"pageSize": "x"})).status_code == 400
    assert (await client.get(DEPS, params={"pageToken": "zz"})).status_code == 400


async def test_patch_with_mask_updates_only_masked_fields(
    client: httpx.AsyncClient, clock: FakeClock
) -> None:
    """updateMask (percent-encoded snake_case CSV) limits the update to its fields."""
    await ready(client, clock)
    resp = await client.patch(
        f"{DEPS}/d1",
        params={"updateMask": "description,annotations"},
        json={"description": "new", "annotations": {"a": "1"}, "displayName": "ignored"},
    )
    assert resp.status_code == 200
    body = resp.json()
    assert (body["description"], body["annotations"], body["displayName"]) == (
        "new",
        {"a": "1"},
        "",
    )
    assert body["state"] == "READY"


@pytest.mark.parametrize(
    ("mask", "body", "needle"),
    [
        ("no_such_field", {"description": "x"}, "no_such_field"),
        ("description", {"displayName": "x"}, "description"),
        ("base_model", {"baseModel": "x"}, "baseModel"),
        ("min_replica_count", {"minReplicaCount": "many"}, "minReplicaCount"),
    ],
)
async def test_patch_mask_errors(
    client: httpx.AsyncClient, clock: FakeClock, mask: str, body: dict[str, Any], needle: str
) -> None:
    """A mask naming an unknown, immutable or absent field is 400."""
    await ready(client, clock)
    resp = await client.patch(f"{DEPS}/d1", params={"updateMask": mask}, json=body)
    assert resp.status_code == 400
    assert needle in error(resp)["message"]


async def test_reattach_patch_rolls_pods(client: httpx.AsyncClient, clock: FakeClock) -> None:
    """Re-attach PATCH: UPDATING, empty replicas, then READY with a new pod identity."""
    await ready(client, clock)
    before = (await replicas(client))[0]["identity"]
    job = "accounts/local/rlorTrainerJobs/t2"
    resp = await client.patch(
        f"{DEPS}/d1?updateMask=hot_load_trainer_job%2Chot_load_transition_type",
        json={"hotLoadTrainerJob": job, "hotLoadTransitionType": "ASYNC"},
    )
    assert resp.json()["state"] == "UPDATING"
    assert await replicas(client) == []
    clock.advance(10)
    body = (await client.get(f"{DEPS}/d1")).json()
    assert (body["state"], body["hotLoadTrainerJob"], body["hotLoadTransitionType"]) == (
        "READY",
        job,
        "ASYNC",
    )
    assert (await replicas(client))[0]["identity"] != before


async def test_scale_to_zero(
    client: httpx.AsyncClient, clock: FakeClock, plane: LocalControlPlane
) -> None:
    """A mask-less PATCH of the counts scales; zero replicas make completions 503."""
    await ready(client, clock)
    assert (await client.post(COMPLETIONS, json=PROBE)).status_code == 200
    resp = await client.patch(f"{DEPS}/d1", json={"maxReplicaCount": 0, "minReplicaCount": 0})
    assert (resp.json()["state"], resp.json()["replicaCount"]) == ("READY", 0)
    assert plane.stats.requests["scale"] == 1
    resp = await client.post(COMPLETIONS, json=PROBE)
    assert resp.status_code == 503
    assert error(resp)["status"] == "UNAVAILABLE"
    assert "DEPLOYMENT_SCALING_UP" in error(resp)["message"]
    await client.patch(f"{DEPS}/d1", json={"maxReplicaCount": 1, "minReplicaCount": 1})
    assert (await client.post(COMPLETIONS, json=PROBE)).status_code == 503
    clock.advance(10)
    assert (await client.post(COMPLETIONS, json=PROBE)).status_code == 200


async def test_delete_timeline(client: httpx.AsyncClient, clock: FakeClock) -> None:
    """DELETE answers {} and DELETING, then 404 after delete_seconds."""
    await ready(client, clock)
    await client.post(COMPLETIONS, json=PROBE)
    resp = await client.delete(f"{DEPS}/d1")
    assert resp.status_code == 400
    assert "pass --ignore-checks" in error(resp)["message"]
    assert error(resp)["status"] == "FAILED_PRECONDITION"
    resp = await client.delete(f"{DEPS}/d1?ignoreChecks=true&hard=true")
    assert (resp.status_code, resp.json()) == (200, {})
    assert (await client.get(f"{DEPS}/d1")).json()["state"] == "DELETING"
    clock.advance(1)
    assert (await client.get(f"{DEPS}/d1")).status_code == 404
    assert (await create(client)).status_code == 200


# -- hot-load ---------------------------------------------------------------------------------


async def test_hotload_stages_over_http(client: httpx.AsyncClient, clock: FakeClock) -> None:
    """Status moves through stages and ends ready on the target."""
    await ready(client, clock)
    resp = await hotload(client, {"identity": "s0", "reset_prompt_cache": True})
    assert resp.status_code == 200
    assert resp.json()["identity"] == "s0"
    stages = []
    for _ in range(5):
        r = (await replicas(client))[0]
        stages.append(r["loading_state"]["stage"])
        clock.advance(1)
    assert stages == ["pending", "downloading", "loading", "loading", "done"]
    r = (await replicas(client))[0]
    assert (r["readiness"], r["current_snapshot_identity"], r["loaded_adapters"]) == (
        True,
        "s0",
        [],
    )
    assert r["loading_state"]["target_snapshot_identity"] == "s0"


async def test_hotload_status_empty_while_booting(client: httpx.AsyncClient) -> None:
    """The replicas list is empty while the hot-load manager initialises; POST is 425."""
    await create(client)
    assert await replicas(client) == []
    resp = await hotload(client, {"identity": "s0"})
    assert resp.status_code == 425
    assert "not initialised" in error(resp)["message"]


async def test_hotload_one_at_a_time_and_idempotent(
    client: httpx.AsyncClient, clock: FakeClock
) -> None:
    """A second identity during a load is 409; re-POSTing the same identity is 200."""
    await ready(client, clock)
    await hotload(client, {"identity": "s0"})
    resp = await hotload(client, {"identity": "s1"})
    assert resp.status_code == 409
    assert "in progress" in error(resp)["message"]
    assert (await hotload(client, {"identity": "s0"})).json()["result"] == "in_progress"
    clock.advance(4)
    assert (await hotload(client, {"identity": "s0"})).json()["result"] == "already_loaded"


def meta(previous: str, **kw: str) -> dict[str, Any]:
    return {
        "incremental_snapshot_metadata": {
            "previous_snapshot_identity": previous,
            "compression_format": "arc_v2",
            "checksum_format": "alder32",
            **kw,
        }
    }


@pytest.mark.parametrize(
    ("body", "needle"),
    [
        ({"identity": "s1", **meta("s9")}, "'s9'"),
        ({"identity": "s1", **meta("s0", checksum_format="adler32")}, "checksum_format"),
        ({"identity": "s1", **meta("s0", compression_format="lz4")}, "compression_format"),
    ],
)
async def test_hotload_chain_errors(
    client: httpx.AsyncClient, clock: FakeClock, body: dict[str, Any], needle: str
) -> None:
    """Deltas with a wrong base, checksum or compression are 400."""
    await ready(client, clock)
    await hotload(client, {"identity": "s0"})
    clock.advance(4)
    resp = await hotload(client, body)
    assert resp.status_code == 400
    assert needle in error(resp)["message"]


async def test_hotload_delta_chain_over_http(client: httpx.AsyncClient, clock: FakeClock) -> None:
    """Delta with nothing served is 400; base then delta succeeds; full load resets the chain."""
    await ready(client, clock)
    resp = await hotload(client, {"identity": "s1", **meta("s0")})
    assert resp.status_code == 400
    assert "full snapshot first" in error(resp)["message"]
    assert (await hotload(client, {"identity": "s0"})).status_code == 200
    clock.advance(4)
    assert (await hotload(client, {"identity": "s1", **meta("s0")})).status_code == 200
    clock.advance(4)
    assert (await hotload(client, {"identity": "b2"})).status_code == 200
    clock.advance(4)
    assert (await hotload(client, {"identity": "s2", **meta("s1")})).status_code == 400
    assert (await hotload(client, {"identity": "s2", **meta("b2")})).status_code == 200


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (
            {"identity": "s0", "bogus": 1},
            "1 validation error: Extra inputs are not permitted, field: 'bogus'",
        ),
        ({}, "1 validation error: Field required, field: 'identity'"),
        ({"identity": 5}, "Input should be a non-empty string, field: 'identity'"),
        ({"identity": "s", "reset_prompt_cache": "yes"}, "field: 'reset_prompt_cache'"),
        (
            {"identity": "s", "incremental_snapshot_metadata": {"x": "1"}},
            "field: 'incremental_snapshot_metadata.x'",
        ),
        ({"identity": "s", "incremental_snapshot_metadata": []}, "valid dictionary"),
    ],
)
async def test_hotload_body_validation_is_pydantic_style(
    client: httpx.AsyncClient, clock: FakeClock, body: dict[str, Any], message: str
) -> None:
    """Bad hot-load bodies get a pydantic-style 400."""
    await ready(client, clock)
    resp = await hotload(client, body)
    assert resp.status_code == 400
    assert resp.json()["error"]["type"] == "invalid_request_error"
    assert message in resp.json()["error"]["message"]


@pytest.mark.parametrize(
    ("headers", "status", "needle"),
    [
        ({}, 400, "fireworks-deployment"),
        ({"fireworks-deployment": "d1", "fireworks-model": BASE}, 400, "fireworks-deployment"),
        ({"fireworks-deployment": ROUTE["fireworks-deployment"]}, 400, "fireworks-model"),
        ({**ROUTE, "fireworks-model": "other"}, 400, "fireworks-model"),
        ({**ROUTE, "fireworks-deployment": "accounts/local/deployments/zz"}, 404, "zz"),
    ],
)
async def test_hotload_routing_headers(
    client: httpx.AsyncClient,
    clock: FakeClock,
    headers: dict[str, str],
    status: int,
    needle: str,
) -> None:
    """The routing headers are required and must match the deployment."""
    await ready(client, clock)
    for method in ("GET", "POST"):
        resp = await client.request(method, HOTLOAD, json={"identity": "s"}, headers=headers)
        assert resp.status_code == status
        assert needle in error(resp)["message"]


async def test_double_slash_paths_are_normalised(
    client: httpx.AsyncClient, clock: FakeClock
) -> None:
    """//hot_load/... (official client with a trailing-slash base URL) is routed normally."""
    await ready(client, clock)
    resp = await client.post(
        "http://local//hot_load/v1/models/hot_load", json={"identity": "s0"}, headers=ROUTE
    )
    assert resp.status_code == 200
    assert (await client.get("http://local//v1//accounts/local/deployments/d1")).status_code == 200


# -- completions ------------------------------------------------------------------------------


async def test_completions_before_ready_and_unknown(client: httpx.AsyncClient) -> None:
    """Completions are 503 DEPLOYMENT_SCALING_UP while booting and 404 for unknown models."""
    await create(client)
    resp = await client.post(COMPLETIONS, json=PROBE)
    assert resp.status_code == 503
    assert "DEPLOYMENT_SCALING_UP" in error(resp)["message"]
    resp = await client.post(COMPLETIONS, json={**PROBE, "model": "accounts/local/deployments/x"})
    assert resp.status_code == 404
    resp = await client.post(COMPLETIONS, json={**PROBE, "model": "accounts/fireworks/models/m"})
    assert resp.status_code == 404


async def test_completions_shape_and_model_forms(
    client: httpx.AsyncClient, clock: FakeClock
) -> None:
    """Both model forms work; choices carry text, raw_output, finish_reason and usage."""
    await ready(client, clock)
    resp = await client.post(COMPLETIONS, json={**PROBE, "logprobs": True, "n": 2})
    assert resp.status_code == 200
    body = resp.json()
    assert len(body["choices"]) == 2
    choice = body["choices"][0]
    assert choice["finish_reason"] == "length"
    assert choice["raw_output"]["prompt_token_ids"] == [1, 2]
    assert len(choice["raw_output"]["completion_token_ids"]) == 4
    assert len(choice["logprobs"]["content"]) == 4
    assert body["usage"] == {"prompt_tokens": 2, "completion_tokens": 8, "total_tokens": 10}
    routed = await client.post(COMPLETIONS, json={**PROBE, "model": f"{BASE}#{PROBE['model']}"})
    assert routed.json()["choices"][0]["text"] == choice["text"]
    wrong = await client.post(COMPLETIONS, json={**PROBE, "model": f"other#{PROBE['model']}"})
    assert wrong.status_code == 400


async def test_completions_string_prompt_and_stop(
    client: httpx.AsyncClient, clock: FakeClock
) -> None:
    """A string prompt is accepted; a stop string truncates with finish_reason stop."""
    await ready(client, clock)
    body = {"model": PROBE["model"], "prompt": "hello", "max_tokens": 3}
    full = (await client.post(COMPLETIONS, json=body)).json()["choices"][0]
    assert full["raw_output"]["prompt_token_ids"] == list(b"hello")
    second = full["text"].split(" ")[2]
    cut = (await client.post(COMPLETIONS, json={**body, "stop": [second]})).json()["choices"][0]
    assert cut["finish_reason"] == "stop"
    assert second not in cut["text"]


async def test_completions_change_after_hotload(
    client: httpx.AsyncClient, clock: FakeClock
) -> None:
    """The same prompt samples different tokens once new weights are live, not before."""
    await ready(client, clock)

    async def tokens() -> list[int]:
        resp = await client.post(COMPLETIONS, json={**PROBE, "max_tokens": 8})
        result: list[int] = resp.json()["choices"][0]["raw_output"]["completion_token_ids"]
        return result

    before = await tokens()
    assert await tokens() == before
    await hotload(client, {"identity": "s1"})
    clock.advance(2)
    assert await tokens() == before
    clock.advance(2)
    assert await tokens() != before


async def test_completions_sse_stream(client: httpx.AsyncClient, clock: FakeClock) -> None:
    """stream=true yields data: chunks, finish_reason and raw_output on the last, then [DONE]."""
    await ready(client, clock)
    plain = (await client.post(COMPLETIONS, json=PROBE)).json()["choices"][0]
    resp = await client.post(COMPLETIONS, json={**PROBE, "stream": True, "logprobs": True})
    assert resp.headers["content-type"].startswith("text/event-stream")
    events = resp.text.split("\n\n")
    assert events[-2:] == ["data: [DONE]", ""]
    chunks = [json.loads(e.removeprefix("data: ")) for e in events[:-2]]
    assert all(e.startswith("data: ") for e in events[:-2])
    assert len(chunks) == 4
    assert [c["choices"][0]["finish_reason"] for c in chunks] == [None, None, None, "length"]
    last = chunks[-1]
    assert last["choices"][0]["raw_output"] == plain["raw_output"]
    assert last["usage"]["completion_tokens"] == 4
    assert "".join(c["choices"][0]["text"] for c in chunks) == plain["text"]
    assert chunks[0]["choices"][0]["logprobs"]["content"][0]["sampling_logprob"] <= 0


@pytest.mark.parametrize(
    "body",
    [
        {"prompt": [1]},
        {"model": PROBE["model"]},
        {**PROBE, "prompt": [1, "a"]},
        {**PROBE, "max_tokens": -1},
        {**PROBE, "max_tokens": "4"},
        {**PROBE, "n": 0},
        {**PROBE, "stream": "yes"},
        {**PROBE, "stop": 3},
        {**PROBE, "logprobs": "all"},
    ],
)
async def test_completions_bad_bodies_are_400(
    client: httpx.AsyncClient, clock: FakeClock, body: dict[str, Any]
) -> None:
    """Completions reject malformed parameters with 400."""
    await ready(client, clock)
    assert (await client.post(COMPLETIONS, json=body)).status_code == 400


# -- cross-cutting ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "url", "extra"),
    [
        ("POST", f"{DEPS}?deploymentId=d2", {}),
        ("PATCH", f"{DEPS}/d1", {}),
        ("POST", HOTLOAD, ROUTE),
        ("POST", COMPLETIONS, {}),
    ],
)
@pytest.mark.parametrize("raw", [b"{", b"[1, 2]", b"\xff\xfe", b'"str"', b"null"])
async def test_malformed_bodies_are_400_never_500(
    client: httpx.AsyncClient,
    clock: FakeClock,
    method: str,
    url: str,
    extra: dict[str, str],
    raw: bytes,
) -> None:
    """Invalid JSON or non-object bodies are a 400 on every endpoint that reads a body."""
    await ready(client, clock)
    resp = await client.request(method, url, content=raw, headers=extra)
    assert resp.status_code == 400, resp.text


async def test_get_and_delete_accept_json_content_type(
    client: httpx.AsyncClient, clock: FakeClock
) -> None:
    """Content-Type: application/json with no body is fine on GET and DELETE."""
    await ready(client, clock)
    assert (await client.get(f"{DEPS}/d1")).status_code == 200
    assert (await client.delete(f"{DEPS}/d1?ignoreChecks=true")).status_code == 200


async def test_auth(plane: LocalControlPlane, clock: FakeClock) -> None:
    """No key is 401; with api_key set only that key (either header) is accepted."""
    async with httpx.AsyncClient(transport=plane.transport()) as anon:
        resp = await anon.get("http://local/v1/accounts?pageSize=2")
        assert resp.status_code == 401
        assert error(resp)["status"] == "UNAUTHENTICATED"
        resp = await anon.get(
            "http://local/v1/accounts", headers={"Authorization": "Bearer anything"}
        )
        assert resp.status_code == 200
    locked = LocalControlPlane(api_key="secret", clock=clock)
    async with httpx.AsyncClient(transport=locked.transport()) as c:
        url = "http://local/v1/accounts"
        assert (await c.get(url, headers={"X-Api-Key": "wrong"})).status_code == 401
        assert (await c.get(url, headers={"X-Api-Key": "secret"})).status_code == 200
        assert (await c.get(url, headers={"Authorization": "Bearer secret"})).status_code == 200


async def test_stats_count_requests(
    client: httpx.AsyncClient, clock: FakeClock, plane: LocalControlPlane
) -> None:
    """Stats count requests by endpoint and by deployment; reset zeroes them."""
    await ready(client, clock)
    await client.get(f"{DEPS}/d1")
    await client.get(f"{DEPS}/d1")
    await client.get(HOTLOAD, headers=ROUTE)
    await client.post(COMPLETIONS, json=PROBE)
    await client.get("http://local/v1/accounts")
    assert plane.stats.requests["get"] == 2
    assert plane.stats.by_deployment["get", "d1"] == 2
    assert plane.stats.by_deployment["hotload_status", "d1"] == 1
    assert plane.stats.by_deployment["completions", "d1"] == 1
    assert plane.stats.requests["create"] == 1
    assert plane.stats.total == 6
    plane.stats.reset()
    assert plane.stats.total == 0


async def test_events_are_stamped_from_the_model(
    client: httpx.AsyncClient, clock: FakeClock, plane: LocalControlPlane
) -> None:
    """ready/hotload_done/updated/deleted carry the instants they became true."""
    await create(client)
    clock.advance(25)  # nobody looks at boot end (t=1010)
    await hotload(client, {"identity": "s0"})  # starts at 1025
    clock.advance(100)
    await client.patch(
        f"{DEPS}/d1?updateMask=hot_load_trainer_job",
        json={"hotLoadTrainerJob": "accounts/local/rlorTrainerJobs/t"},
    )  # at 1125, roll for 10 s
    await client.delete(f"{DEPS}/d1?ignoreChecks=true")  # while updating, 1 s delete
    clock.advance(50)
    assert plane.event_time("ready", "d1") == 1010.0
    assert plane.event_time("hotload_done", "d1", "s0") == 1029.0
    assert plane.event_time("hotload_done", "d1", "other") is None
    assert plane.event_time("deleted", "d1") == 1126.0
    kinds = [e.kind for e in plane.events]
    assert kinds == ["created", "ready", "hotload_started", "hotload_done", "deleted"]


# -- faults -----------------------------------------------------------------------------------


async def test_status_fault_429_with_retry_after(
    client: httpx.AsyncClient, plane: LocalControlPlane
) -> None:
    """A status fault answers its status (with Retry-After) for `times` requests."""
    fault = plane.faults.add(Fault("status", endpoint="accounts", status=429, retry_after=2))
    url = "http://local/v1/accounts"
    resp = await client.get(url)
    assert (resp.status_code, resp.headers["retry-after"]) == (429, "2")
    assert error(resp)["status"] == "RESOURCE_EXHAUSTED"
    assert (await client.get(url)).status_code == 200
    assert (fault.fired, fault.exhausted) == (1, True)


async def test_status_fault_burst_after_and_scope(
    client: httpx.AsyncClient, clock: FakeClock, plane: LocalControlPlane
) -> None:
    """`after` skips the first matches, `times` bounds the burst, scopes limit where it fires."""
    await ready(client, clock)
    await create(client, "d2")
    plane.faults.add(
        Fault("status", endpoint="get", deployment_id="d1", status=503, times=2, after=1)
    )
    codes = [(await client.get(f"{DEPS}/d1")).status_code for _ in range(4)]
    assert codes == [200, 503, 503, 200]
    assert (await client.get(f"{DEPS}/d2")).status_code == 200
    plane.faults.add(Fault("status", status=500, times=None, body='{"oops": 1}'))
    for _ in range(3):
        resp = await client.get("http://local/v1/accounts")
        assert (resp.status_code, resp.json()) == (500, {"oops": 1})
    plane.faults.clear()
    assert (await client.get("http://local/v1/accounts")).status_code == 200


async def test_latency_fault_delays_then_answers(
    client: httpx.AsyncClient, plane: LocalControlPlane
) -> None:
    """A latency fault sleeps, then the request is handled normally."""
    fault = plane.faults.add(Fault("latency", endpoint="accounts", seconds=0.01))
    assert (await client.get("http://local/v1/accounts")).status_code == 200
    assert fault.fired == 1


async def test_drop_fault_in_process(client: httpx.AsyncClient, plane: LocalControlPlane) -> None:
    """In-process, a drop raises httpx.RemoteProtocolError like a real disconnect."""
    plane.faults.add(Fault("drop", endpoint="accounts"))
    with pytest.raises(httpx.RemoteProtocolError):
        await client.get("http://local/v1/accounts")
    assert (await client.get("http://local/v1/accounts")).status_code == 200


async def test_hang_fault_never_answers(
    client: httpx.AsyncClient, plane: LocalControlPlane
) -> None:
    """A hang fault never answers; the caller's own deadline ends the request."""
    plane.faults.add(Fault("hang", endpoint="accounts"))
    with pytest.raises(TimeoutError), anyio.fail_after(0.05):
        await client.get("http://local/v1/accounts")
    plane.faults.add(Fault("hang", endpoint="accounts", seconds=0))
    assert (await client.get("http://local/v1/accounts")).status_code == 504


async def test_malformed_and_wrong_shape_faults(
    client: httpx.AsyncClient, clock: FakeClock, plane: LocalControlPlane
) -> None:
    """malformed answers 200 with broken JSON; wrong_shape answers valid JSON of the wrong shape."""
    await ready(client, clock)
    plane.faults.add(Fault("malformed", endpoint="hotload_status"))
    resp = await client.get(HOTLOAD, headers=ROUTE)
    assert resp.status_code == 200
    with pytest.raises(json.JSONDecodeError):
        resp.json()
    plane.faults.add(Fault("wrong_shape", endpoint="hotload_status"))
    resp = await client.get(HOTLOAD, headers=ROUTE)
    assert not isinstance(resp.json()["replicas"], list)
    plane.faults.add(Fault("wrong_shape", endpoint="get"))
    assert isinstance((await client.get(f"{DEPS}/d1")).json(), list)


async def test_boot_failure_fault(
    client: httpx.AsyncClient, clock: FakeClock, plane: LocalControlPlane
) -> None:
    """A boot_failure fault makes the deployment FAILED at boot end."""
    plane.faults.add(Fault("boot_failure", deployment_id="d1"))
    await create(client)
    clock.advance(10)
    body = (await client.get(f"{DEPS}/d1")).json()
    assert (body["state"], body["status"]["code"]) == ("FAILED", "INTERNAL")
    resp = await client.post(COMPLETIONS, json=PROBE)
    assert resp.status_code == 404
    assert "DEPLOYMENT_FAILED" in error(resp)["message"]


async def test_hotload_error_fault(
    client: httpx.AsyncClient, clock: FakeClock, plane: LocalControlPlane
) -> None:
    """hotload_error ends in stage error with the failed target; the old snapshot stays."""
    await ready(client, clock)
    plane.faults.add(Fault("hotload_error"))
    await hotload(client, {"identity": "s0"})
    clock.advance(4)
    r = (await replicas(client))[0]
    assert r["loading_state"] == {"stage": "error", "target_snapshot_identity": "s0"}
    assert (r["readiness"], r["current_snapshot_identity"]) == (True, None)


async def test_stale_error_fault(
    client: httpx.AsyncClient, clock: FakeClock, plane: LocalControlPlane
) -> None:
    """stale_error shows stage error for an older identity on a ready replica, `times` reads."""
    await ready(client, clock)
    plane.faults.add(Fault("stale_error", identity="step-0", times=2))
    for _ in range(2):
        r = (await replicas(client))[0]
        assert r["loading_state"] == {"stage": "error", "target_snapshot_identity": "step-0"}
        assert r["readiness"] is True
    assert (await replicas(client))[0]["loading_state"]["stage"] == "idle"
    plane.faults.add(Fault("stale_error", identity="step-0"))
    await hotload(client, {"identity": "s1"})
    r = (await replicas(client))[0]
    assert r["loading_state"] == {"stage": "error", "target_snapshot_identity": "step-0"}
    assert (r["readiness"], r["current_snapshot_identity"]) == (False, None)


async def test_replica_disagree_fault(
    client: httpx.AsyncClient, clock: FakeClock, plane: LocalControlPlane
) -> None:
    """replica_disagree makes one replica finish much later than the others."""
    await ready(client, clock, minReplicaCount=2, maxReplicaCount=2)
    plane.faults.add(Fault("replica_disagree", seconds=30))
    await hotload(client, {"identity": "s0"})
    clock.advance(4)
    assert [r["current_snapshot_identity"] for r in await replicas(client)] == ["s0", None]
    clock.advance(30)
    assert [r["current_snapshot_identity"] for r in await replicas(client)] == ["s0", "s0"]


async def test_reject_reset_prompt_cache_fault(
    client: httpx.AsyncClient, clock: FakeClock, plane: LocalControlPlane
) -> None:
    """The fault rejects reset_prompt_cache with the pydantic extra-inputs text; without it OK."""
    await ready(client, clock)
    plane.faults.add(Fault("reject_reset_prompt_cache", times=None))
    resp = await hotload(client, {"identity": "s0", "reset_prompt_cache": True})
    assert resp.status_code == 400
    text = resp.json()["error"]["message"].lower()
    assert "extra inputs are not permitted" in text
    assert "reset_prompt_cache" in text
    assert (await hotload(client, {"identity": "s0"})).status_code == 200


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ("status:endpoint=hotload_status,status=503,times=3", {"status": 503, "times": 3}),
        ("status:code=429,retry_after=1.5", {"status": 429, "retry_after": 1.5}),
        ("latency:seconds=0.2,times=forever", {"seconds": 0.2, "times": None}),
        ("drop:deployment=d1,after=2", {"deployment_id": "d1", "after": 2}),
        ("replica_disagree:seconds=never,replica=0", {"seconds": math.inf, "replica": 0}),
        ("hotload_error:identity=step-3", {"identity": "step-3"}),
        ("boot_failure", {"kind": "boot_failure", "times": 1}),
    ],
)
def test_fault_parse(spec: str, expected: dict[str, object]) -> None:
    """Fault.parse reads kind:key=value,... specs."""
    fault = Fault.parse(spec)
    assert {k: getattr(fault, k) for k in expected} == expected


@pytest.mark.parametrize(
    ("spec", "needle"),
    [
        ("", "empty"),
        ("explode", "Unknown fault kind"),
        ("status:status", "key=value"),
        ("status:status=abc", "integer"),
        ("status:colour=red", "unknown key"),
        ("status:endpoint=nowhere", "Unknown endpoint"),
        ("latency:seconds=-1", "seconds"),
        ("status:status=42", "HTTP status"),
    ],
)
def test_fault_parse_errors(spec: str, needle: str) -> None:
    """Bad specs raise a ValueError that says what is wrong."""
    with pytest.raises(ValueError, match=needle):
        Fault.parse(spec)


# -- strict gateway ---------------------------------------------------------------------------


async def test_second_create_is_409_and_changes_nothing(
    client: httpx.AsyncClient, plane: LocalControlPlane
) -> None:
    """Creates are not idempotent: a second POST of the id is 409 and the first one stands."""
    first = await create(client, description="first")
    assert first.status_code == 200
    again = await create(client, description="second", minReplicaCount=2, maxReplicaCount=2)
    assert again.status_code == 409
    assert "already exists" in error(again)["message"]
    body = (await client.get(f"{DEPS}/d1")).json()
    assert (body["description"], body["maxReplicaCount"]) == ("first", 1)
    assert plane.stats.by_deployment["create", "d1"] == 2
    assert [e.kind for e in plane.events] == ["created"]
    assert double_posts(plane) == {("create", "d1"): 2}


async def test_repeated_delta_post_is_refused_gateway_style(
    client: httpx.AsyncClient, clock: FakeClock, plane: LocalControlPlane
) -> None:
    """Re-POSTing an applied delta is a 400 with the gateway's pydantic-style body."""
    await ready(client, clock)
    assert (await hotload(client, {"identity": "s0"})).status_code == 200
    clock.advance(4)
    body = {"identity": "s1", **meta("s0")}
    assert (await hotload(client, body)).json()["result"] == "started"
    assert (await hotload(client, body)).json()["result"] == "in_progress"
    clock.advance(4)
    resp = await hotload(client, body)
    assert resp.status_code == 400
    assert set(error(resp)) == {"message", "type"}
    assert error(resp)["type"] == "invalid_request_error"
    assert (
        "previous_snapshot_identity 's0' does not match the snapshot 's1'"
        in (error(resp)["message"])
    )
    assert plane.stats.hotload_identities["d1", "s1"] == 3
    assert plane.stats.hotload_identities["d1", "s0"] == 1
    assert double_posts(plane) == {("hotload", "d1", "s1"): 3}
    assert plane.stats.requests["hotload"] == 4
    assert (await replicas(client))[0]["current_snapshot_identity"] == "s1"


async def test_hotload_post_counted_even_when_unreadable(
    client: httpx.AsyncClient, clock: FakeClock, plane: LocalControlPlane
) -> None:
    """Every hot-load POST that reaches the server is counted, bad body or wrong key included."""
    await ready(client, clock)
    await client.post(HOTLOAD, content=b"{not json", headers=ROUTE)
    await client.post(HOTLOAD, json={"identity": "s0"}, headers={**ROUTE, "X-Api-Key": ""})
    assert plane.stats.requests["hotload"] == 2
    assert plane.stats.by_deployment["hotload", "d1"] == 2
    assert plane.stats.hotload_identities == {("d1", "s0"): 1}
    plane.stats.reset()
    assert (plane.stats.total, len(plane.stats.hotload_identities)) == (0, 0)


# -- official-client surface: nested update masks, scale from zero, shapes --------------------


@pytest.mark.parametrize(
    "mask",
    [
        "autoscaling_policy.scale_to_zero_window",
        "autoscalingPolicy.scaleToZeroWindow",
        "autoscaling_policy.scaleToZeroWindow",
    ],
)
async def test_patch_nested_update_mask(
    client: httpx.AsyncClient, clock: FakeClock, mask: str
) -> None:
    """A nested mask path (snake or camel) updates only that field of the stored policy."""
    await ready(client, clock, autoscalingPolicy={"scaleUpWindow": "30s"})
    resp = await client.patch(
        f"{DEPS}/d1",
        params={"updateMask": mask},
        json={"autoscalingPolicy": {"scaleToZeroWindow": "600s", "scaleUpWindow": "90s"}},
    )
    assert resp.status_code == 200, resp.text
    expected = {"scaleUpWindow": "30s", "scaleToZeroWindow": "600s"}
    assert resp.json()["autoscalingPolicy"] == expected
    assert (await client.get(f"{DEPS}/d1")).json()["autoscalingPolicy"] == expected


async def test_patch_whole_policy_and_mixed_mask(
    client: httpx.AsyncClient, clock: FakeClock
) -> None:
    """The mask may name the whole policy, mixed with top-level fields, snake keys in the body."""
    await ready(client, clock)
    resp = await client.patch(
        f"{DEPS}/d1",
        params={"updateMask": "autoscaling_policy,description,placement.region"},
        json={
            "autoscalingPolicy": {"scale_down_window": "120.5s", "loadTargets": {"util": 0.8}},
            "description": "d",
            "placement": {"region": "US_OHIO_1"},
        },
    )
    assert resp.status_code == 200, resp.text
    body = resp.json()
    assert body["autoscalingPolicy"] == {"scaleDownWindow": "120.5s", "loadTargets": {"util": 0.8}}
    assert (body["description"], body["region"]) == ("d", "US_OHIO_1")


@pytest.mark.parametrize(
    ("mask", "body", "needle"),
    [
        ("autoscaling_policy.bogus", {"autoscalingPolicy": {}}, "autoscaling_policy.bogus"),
        ("autoscaling_policy.scale_to_zero_window", {"autoscalingPolicy": {}}, "no "),
        ("autoscaling_policy.scale_to_zero_window", {}, "scaleToZeroWindow"),
        (
            "autoscaling_policy.scale_to_zero_window",
            {"autoscalingPolicy": {"scaleToZeroWindow": "10m"}},
            '"600s"',
        ),
        (
            "autoscaling_policy.scale_to_zero_window",
            {"autoscalingPolicy": {"scaleToZeroWindow": "60s"}},
            "at least 300s",
        ),
        ("autoscaling_policy", {"autoscalingPolicy": {"colour": "red"}}, "colour"),
        ("autoscaling_policy", {"autoscalingPolicy": "fast"}, "object"),
        ("description.deep", {"description": "x"}, "description.deep"),
    ],
)
async def test_patch_nested_mask_errors(
    client: httpx.AsyncClient, clock: FakeClock, mask: str, body: dict[str, Any], needle: str
) -> None:
    """Unknown, absent or malformed nested values are 400s naming what is wrong."""
    await ready(client, clock)
    resp = await client.patch(f"{DEPS}/d1", params={"updateMask": mask}, json=body)
    assert resp.status_code == 400
    assert needle in error(resp)["message"]
    assert "autoscalingPolicy" not in (await client.get(f"{DEPS}/d1")).json()


async def test_completions_scale_a_zero_deployment_back_up(
    client: httpx.AsyncClient, clock: FakeClock, plane: LocalControlPlane
) -> None:
    """After scale-to-zero a completion is 503 while one replica boots, then 200."""
    await ready(client, clock)
    await client.patch(f"{DEPS}/d1", json={"maxReplicaCount": 0, "minReplicaCount": 0})
    resp = await client.post(COMPLETIONS, json=PROBE)
    assert resp.status_code == 503
    assert "DEPLOYMENT_SCALING_UP" in error(resp)["message"]
    body = (await client.get(f"{DEPS}/d1")).json()
    assert (body["state"], body["desiredReplicaCount"], body["replicaCount"]) == ("READY", 1, 0)
    clock.advance(10)
    assert (await client.post(COMPLETIONS, json=PROBE)).status_code == 200
    assert plane.event_time("scale_from_zero", "d1") == 1010.0
    assert plane.event_time("ready", "d1", "scale_up") == 1020.0


SHAPES = "http://local/v1/accounts/fireworks/deploymentShapes"


async def test_shape_and_version_reads(client: httpx.AsyncClient, plane: LocalControlPlane) -> None:
    """Shapes, their versions and one version read as the Stainless types expect."""
    shape = (await client.get(f"{SHAPES}/rft-qwen3-8b")).json()
    assert shape["name"] == "accounts/fireworks/deploymentShapes/rft-qwen3-8b"
    assert (shape["baseModel"], shape["acceleratorType"]) == (BASE, "NVIDIA_H200_141GB")
    version = (await client.get(f"{SHAPES}/rft-qwen3-8b/versions/v1")).json()
    assert version["name"] == "accounts/fireworks/deploymentShapes/rft-qwen3-8b/versions/v1"
    assert (version["validated"], version["latestValidated"]) == (True, False)
    assert version["snapshot"]["precision"] == "BF16"
    assert version["snapshot"]["name"] == shape["name"]
    latest = (await client.get(f"{SHAPES}/rft-qwen3-8b/versions/latest")).json()
    assert latest["name"].endswith("/versions/v2")
    listed = (await client.get(SHAPES)).json()
    assert [s["name"].rsplit("/", 1)[1] for s in listed["deploymentShapes"]] == [
        "rft-qwen3-4b-b200",
        "rft-qwen3-8b",
    ]
    assert (await client.get("http://local/v1/accounts/local/deploymentShapes")).json()[
        "deploymentShapes"
    ] == []
    assert plane.stats.requests["shape"] == 1
    assert plane.stats.requests["shape_version"] == 2
    assert plane.stats.requests["shapes"] == 2


@pytest.mark.parametrize(
    ("query", "versions"),
    [
        ("filter=latest_validated%3Dtrue&pageSize=1", ["v2"]),  # the cookbook's lookup
        ("filter=latestValidated=true", ["v2"]),
        ("filter=validated=true", ["v1", "v2"]),
        ("filter=validated!=true", ["v3"]),
        ("filter=validated=true AND latest_validated=false", ["v1"]),
        ("orderBy=create_time desc", ["v3", "v2", "v1"]),
        ("orderBy=createTime desc&pageSize=2", ["v3", "v2"]),
        ("orderBy=name desc&filter=validated=true", ["v2", "v1"]),
        ("readMask=name&pageSize=500&colour=red", ["v1", "v2", "v3"]),  # unknown params ignored
        ("pageSize=0", ["v1", "v2", "v3"]),
    ],
)
async def test_shape_versions_list_query(
    client: httpx.AsyncClient, query: str, versions: list[str]
) -> None:
    """filter, orderBy and pageSize select and order versions; unknown parameters are ignored."""
    resp = await client.get(f"{SHAPES}/rft-qwen3-8b/versions?{query}")
    assert resp.status_code == 200, resp.text
    names = [v["name"].rsplit("/", 1)[1] for v in resp.json()["deploymentShapeVersions"]]
    assert names == versions


async def test_shape_versions_pagination(client: httpx.AsyncClient) -> None:
    """pageToken continues where the previous page stopped; the last page has no token."""
    url = f"{SHAPES}/rft-qwen3-8b/versions"
    seen: list[str] = []
    token = ""
    for _ in range(5):
        page = (await client.get(url, params={"pageSize": 2, "pageToken": token})).json()
        seen += [v["name"].rsplit("/", 1)[1] for v in page["deploymentShapeVersions"]]
        token = page["nextPageToken"]
        if not token:
            break
    assert seen == ["v1", "v2", "v3"]


@pytest.mark.parametrize(
    ("path", "status", "needle"),
    [
        ("/nope", 404, "deploymentShapes/nope"),
        ("/nope/versions", 404, "deploymentShapes/nope"),
        ("/rft-qwen3-8b/versions/v9", 404, "versions/v9"),
        ("/rft-qwen3-8b/versions?filter=colour=red", 400, "filter"),
        ("/rft-qwen3-8b/versions?filter=validated=maybe", 400, "filter"),
        ("/rft-qwen3-8b/versions?orderBy=colour", 400, "orderBy"),
        ("/rft-qwen3-8b/versions?orderBy=name sideways", 400, "orderBy"),
        ("/rft-qwen3-8b/versions?pageToken=x", 400, "pageToken"),
        ("/rft-qwen3-8b/versions?pageSize=-1", 400, "pageSize"),
    ],
)
async def test_shape_errors(client: httpx.AsyncClient, path: str, status: int, needle: str) -> None:
    """Unknown shapes and versions are 404; unsupported filters and orders are 400."""
    resp = await client.get(f"{SHAPES}{path}")
    assert resp.status_code == status
    assert needle in error(resp)["message"]


async def test_shapes_can_be_added(client: httpx.AsyncClient, plane: LocalControlPlane) -> None:
    """plane.shapes.add registers a shape (with a default validated v1) under any account."""
    plane.shapes.add(
        "local", DeploymentShape("mine", BASE, "NVIDIA_A100_80GB", accelerator_count=4)
    )
    url = (
        "http://local/v1/accounts/local/deploymentShapes/mine/versions?filter=latest_validated=true"
    )
    (version,) = (await client.get(url)).json()["deploymentShapeVersions"]
    assert version["snapshot"]["acceleratorCount"] == 4


# -- hostile faults ---------------------------------------------------------------------------


async def test_endless_body_in_process_never_finishes(
    client: httpx.AsyncClient, plane: LocalControlPlane
) -> None:
    """In process the endless body never completes; the caller's deadline ends it and the stream."""
    fault = plane.faults.add(Fault("endless_body", endpoint="accounts", size=256 * 1024))
    with pytest.raises(TimeoutError), anyio.fail_after(0.2):
        await client.get("http://local/v1/accounts")
    assert (fault.fired, fault.open_streams) == (1, 0)
    assert (await client.get("http://local/v1/accounts")).status_code == 200


async def test_deep_json_fault(client: httpx.AsyncClient, plane: LocalControlPlane) -> None:
    """deep_json answers valid JSON nested `depth` levels: json.loads gives up on it."""
    plane.faults.add(Fault("deep_json", endpoint="hotload_status"))
    resp = await client.get(HOTLOAD, headers=ROUTE)
    assert resp.status_code == 200
    assert resp.content.startswith(b'{"replicas":[[[')
    assert resp.content.count(b"[") == 100_000
    with pytest.raises(RecursionError):
        resp.json()
    plane.faults.add(Fault("deep_json", endpoint="get", depth=3))
    assert (await client.get(f"{DEPS}/d1")).json() == {"name": [[[]]]}


async def test_oversized_body_fault(
    client: httpx.AsyncClient, clock: FakeClock, plane: LocalControlPlane
) -> None:
    """oversized_body pads the real answer with whitespace to `size` bytes: still valid JSON."""
    await ready(client, clock)
    plane.faults.add(Fault("oversized_body", endpoint="get", size=3 * 1024 * 1024 + 5))
    resp = await client.get(f"{DEPS}/d1")
    assert resp.status_code == 200
    assert len(resp.content) == int(resp.headers["content-length"]) == 3 * 1024 * 1024 + 5
    assert resp.json()["name"] == "accounts/local/deployments/d1"
    plane.faults.add(Fault("oversized_body", endpoint="get", size=10))  # smaller than the answer
    assert (await client.get(f"{DEPS}/d1")).json()["state"] == "READY"


async def test_gzip_bomb_fault(
    client: httpx.AsyncClient, clock: FakeClock, plane: LocalControlPlane
) -> None:
    """gzip_bomb sends a small gzip body that inflates to `size` bytes of the real answer."""
    await ready(client, clock)
    fault = plane.faults.add(Fault("gzip_bomb", endpoint="hotload_status", size=16 << 20))
    resp = await client.get(HOTLOAD, headers=ROUTE)
    assert (resp.status_code, resp.headers["content-encoding"]) == (200, "gzip")
    assert resp.num_bytes_downloaded < 32 * 1024
    assert int(resp.headers["content-length"]) == resp.num_bytes_downloaded
    assert len(resp.content) == 16 << 20
    assert resp.json()["replicas"][0]["readiness"] is True
    assert fault.exhausted


async def test_lost_answer_fault_applies_then_drops(
    client: httpx.AsyncClient, clock: FakeClock, plane: LocalControlPlane
) -> None:
    """lost_answer applies the hot-load, then the connection drops (in process: an error)."""
    await ready(client, clock)
    plane.faults.add(Fault("lost_answer", endpoint="hotload"))
    with pytest.raises(httpx.RemoteProtocolError):
        await hotload(client, {"identity": "s0"})
    assert plane.event_time("hotload_started", "d1", "s0") == 1010.0
    clock.advance(4)
    assert (await replicas(client))[0]["current_snapshot_identity"] == "s0"
    assert plane.stats.hotload_identities["d1", "s0"] == 1


async def test_lost_answer_fault_with_status(
    client: httpx.AsyncClient, clock: FakeClock, plane: LocalControlPlane
) -> None:
    """lost_answer with status=503 answers 503 although the create took effect."""
    plane.faults.add("lost_answer:endpoint=create,status=503")
    resp = await create(client)
    assert resp.status_code == 503
    assert "lost after it was applied" in error(resp)["message"]
    assert (await client.get(f"{DEPS}/d1")).json()["state"] == "CREATING"
    assert (await create(client)).status_code == 409


async def test_replica_vanish_fault(
    client: httpx.AsyncClient, clock: FakeClock, plane: LocalControlPlane
) -> None:
    """replica_vanish leaves a replica out of `times` status answers, or for good."""
    await ready(client, clock, minReplicaCount=2, maxReplicaCount=2)
    pods = [r["identity"] for r in await replicas(client)]
    assert len(pods) == 2
    plane.faults.add(Fault("replica_vanish", times=2))
    for _ in range(2):
        assert [r["identity"] for r in await replicas(client)] == pods[1:]
    assert [r["identity"] for r in await replicas(client)] == pods
    plane.faults.add("replica_vanish:replica=1,times=forever")
    for _ in range(3):
        assert [r["identity"] for r in await replicas(client)] == pods[:1]
    body = (await client.get(f"{DEPS}/d1")).json()
    assert body["replicaCount"] == 2  # only the status list loses it


async def test_replica_vanish_on_one_replica_empties_the_list(
    client: httpx.AsyncClient, clock: FakeClock, plane: LocalControlPlane
) -> None:
    """With one replica the status list is empty while it is gone; an empty list is left alone."""
    await create(client)
    fault = plane.faults.add(Fault("replica_vanish", times=None))
    assert await replicas(client) == []  # booting: nothing to hide
    assert fault.fired == 0
    clock.advance(10)
    assert await replicas(client) == []
    assert fault.fired == 1


async def test_status_lag_fault_over_http(
    client: httpx.AsyncClient, clock: FakeClock, plane: LocalControlPlane
) -> None:
    """With status_lag, status shows the old state for `lag` seconds; completions do not lag."""
    await ready(client, clock)
    await hotload(client, {"identity": "s0"})
    clock.advance(4)
    plane.faults.add("status_lag:lag=6")
    assert (await hotload(client, {"identity": "s1"})).status_code == 200
    clock.advance(5)
    r = (await replicas(client))[0]
    assert "s1" not in json.dumps(r)
    assert (r["current_snapshot_identity"], r["readiness"]) == ("s0", True)
    resp = await client.post(COMPLETIONS, json=PROBE)
    assert resp.headers["x-local-snapshot-identity"] == "s1"
    clock.advance(1)
    assert (await replicas(client))[0]["current_snapshot_identity"] == "s1"


async def test_status_fault_defaults_to_503(
    client: httpx.AsyncClient, plane: LocalControlPlane
) -> None:
    """A status fault without a status answers 503."""
    fault = plane.faults.add(Fault("status", endpoint="accounts"))
    assert (fault.status, fault.http_status) == (None, 503)
    assert (await client.get("http://local/v1/accounts")).status_code == 503


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ("endless_body:endpoint=hotload_status", {"kind": "endless_body", "size": None}),
        ("oversized_body:endpoint=get,size=32M", {"size": 32 << 20}),
        ("oversized_body:size=4096", {"size": 4096}),
        ("gzip_bomb:endpoint=hotload_status,size=1GiB", {"size": 1 << 30}),
        ("gzip_bomb:size=64kb", {"size": 64 << 10}),
        ("deep_json:endpoint=get,depth=5000", {"depth": 5000}),
        ("replica_vanish:replica=0,times=3", {"replica": 0, "times": 3}),
        ("replica_vanish:times=forever", {"times": None}),
        ("status_lag:lag=5", {"seconds": 5.0}),
        ("status_lag:seconds=0.5,identity=step-2", {"seconds": 0.5, "identity": "step-2"}),
        ("lost_answer:endpoint=hotload", {"status": None}),
        ("lost_answer:endpoint=hotload,status=503", {"status": 503}),
        ("status:endpoint=shape_versions", {"endpoint": "shape_versions"}),
    ],
)
def test_fault_parse_new_kinds(spec: str, expected: dict[str, object]) -> None:
    """The hostile fault kinds parse from their spec syntax."""
    fault = Fault.parse(spec)
    assert {k: getattr(fault, k) for k in expected} == expected


@pytest.mark.parametrize(
    ("spec", "needle"),
    [
        ("oversized_body:size=lots", "byte count"),
        ("gzip_bomb:size=-1", "byte count"),
        ("deep_json:depth=0", "depth"),
        ("lost_answer:status=42", "HTTP status"),
    ],
)
def test_fault_parse_new_kind_errors(spec: str, needle: str) -> None:
    """Bad sizes and depths are ValueErrors."""
    with pytest.raises(ValueError, match=needle):
        Fault.parse(spec)


def test_fault_body_sizes_default_per_kind() -> None:
    """Each body fault has its own default size."""
    assert Fault("endless_body").body_size == 1 << 20
    assert Fault("oversized_body").body_size == 32 << 20
    assert Fault("gzip_bomb").body_size == 256 << 20
    assert Fault("gzip_bomb", size=7).body_size == 7


@pytest.mark.parametrize(
    ("method", "url", "headers"),
    [
        ("POST", f"{DEPS}?deploymentId=d2", {}),
        ("PATCH", f"{DEPS}/d1", {}),
        ("POST", HOTLOAD, ROUTE),
        ("POST", COMPLETIONS, {}),
    ],
)
async def test_deeply_nested_request_bodies_are_400(
    client: httpx.AsyncClient, clock: FakeClock, method: str, url: str, headers: dict[str, str]
) -> None:
    """A request body nested 100,000 deep is a 400, never a 500."""
    await ready(client, clock)
    deep = b'{"identity":' + b"[" * 100_000 + b"]" * 100_000 + b"}"
    resp = await client.request(method, url, content=deep, headers=headers)
    assert resp.status_code == 400
