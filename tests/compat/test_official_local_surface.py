"""What real code written for the official client reads from the local control plane.

The official ``fireworks-ai`` client against a loopback plane: its ``DeploymentManager`` (nested
update masks, warm-up after scale-to-zero, the cookbook's raw shape-version lookups through
``_get``) and its Stainless client (deployment shapes and shape versions), unchanged. Run with
the compat venv (``nox -s compat``).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

pytestmark = pytest.mark.compat

sdk = pytest.importorskip("fireworks.training.sdk")
fireworks = pytest.importorskip("fireworks")

from fireworks_deploy.local import LocalControlPlane, LocalServer  # noqa: E402

BASE = "accounts/fireworks/models/qwen3-8b"


@pytest.fixture
def plane() -> LocalControlPlane:
    return LocalControlPlane(boot_seconds=0.3, hotload_seconds=0.2, delete_seconds=0.1)


@pytest.fixture
def server(plane: LocalControlPlane) -> Iterator[LocalServer]:
    with LocalServer(plane) as running:
        yield running


@pytest.fixture
def manager(server: LocalServer) -> Iterator[Any]:
    official = sdk.DeploymentManager(api_key="k", base_url=server.base_url)
    yield official
    official.close()


@pytest.fixture
def stainless(server: LocalServer) -> Iterator[Any]:
    client = fireworks.Fireworks(api_key="k", base_url=server.base_url, account_id="fireworks")
    yield client
    client.close()


def ready(manager: Any, deployment_id: str) -> Any:
    config = sdk.DeploymentConfig(
        deployment_id=deployment_id, base_model=BASE, min_replica_count=1, max_replica_count=1
    )
    manager.create_or_get(config)
    return manager.wait_for_ready(deployment_id, timeout_s=30, poll_interval_s=0.1)


@pytest.mark.timeout(60)
def test_warmup_after_scale_to_zero_terminates(manager: Any, plane: LocalControlPlane) -> None:
    """warmup() after scale_to_zero() gets 503 while a replica boots on demand, then 200."""
    info = ready(manager, "compat-s0")
    manager.scale_to_zero("compat-s0")
    assert plane.state.get("local", "compat-s0").ready_replicas == 0
    start = time.monotonic()
    assert manager.warmup(info.inference_model, max_retries=3, retry_interval_s=0.1)
    assert time.monotonic() - start < 30
    assert plane.stats.requests["completions"] >= 2  # the 503 that woke it, then the 200
    assert plane.event_time("scale_from_zero", "compat-s0") is not None


@pytest.mark.timeout(60)
def test_update_with_a_nested_mask(manager: Any, server: LocalServer) -> None:
    """update() with update_mask='autoscaling_policy.scale_to_zero_window' changes that field."""
    ready(manager, "compat-mask")
    info = manager.update(
        "compat-mask",
        body={"autoscalingPolicy": {"scaleToZeroWindow": "900s", "scaleUpWindow": "5s"}},
        update_mask="autoscaling_policy.scale_to_zero_window",
    )
    assert info.state == "READY"
    raw = httpx.get(
        f"{server.base_url}/v1/accounts/local/deployments/compat-mask",
        headers={"X-Api-Key": "k"},
    ).json()
    assert raw["autoscalingPolicy"] == {"scaleToZeroWindow": "900s"}
    with pytest.raises(httpx.HTTPStatusError) as info_err:
        manager.update(
            "compat-mask",
            body={"autoscalingPolicy": {"scaleToZeroWindow": "60s"}},
            update_mask=["autoscaling_policy.scale_to_zero_window"],
        )
    assert info_err.value.response.status_code == 400


@pytest.mark.timeout(60)
def test_cookbook_shape_version_lookups(manager: Any) -> None:
    """The cookbook's raw _get lookups of the latest validated and of a pinned version."""
    shape = "accounts/fireworks/deploymentShapes/rft-qwen3-8b"
    resp = manager._get(
        f"/v1/{shape}/versions?filter=latest_validated%3Dtrue&pageSize=1", timeout=30
    )
    resp.raise_for_status()
    (latest,) = resp.json()["deploymentShapeVersions"]
    assert latest["name"] == f"{shape}/versions/v2"
    assert latest["snapshot"]["acceleratorType"] == "NVIDIA_H200_141GB"
    pinned = manager._get(f"/v1/{shape}/versions/v1", timeout=30)
    assert pinned.json()["snapshot"]["acceleratorCount"] == 1


@pytest.mark.timeout(60)
def test_create_pinned_to_a_shape_version(manager: Any) -> None:
    """A deployment created with a versioned deploymentShape echoes it back."""
    version = "accounts/fireworks/deploymentShapes/rft-qwen3-8b/versions/v2"
    config = sdk.DeploymentConfig(
        deployment_id="compat-shape", base_model=BASE, deployment_shape=version
    )
    info = manager.create_or_get(config)
    assert info.deployment_shape_version == version


def test_stainless_shapes_and_versions(stainless: Any) -> None:
    """The Stainless client lists and gets shapes and shape versions."""
    shape = stainless.deployment_shapes.get("rft-qwen3-8b")
    assert (shape.base_model, shape.accelerator_type) == (BASE, "NVIDIA_H200_141GB")
    names = [s.name for s in stainless.deployment_shapes.list()]
    assert "accounts/fireworks/deploymentShapes/rft-qwen3-4b-b200" in names
    latest = list(
        stainless.deployment_shape_versions.list(
            "rft-qwen3-8b", filter="latest_validated=true", page_size=1
        )
    )
    assert [v.name.rsplit("/", 1)[1] for v in latest] == ["v2"]
    assert latest[0].latest_validated is True
    assert latest[0].snapshot.accelerator_count == 1
    every = list(
        stainless.deployment_shape_versions.list(
            "rft-qwen3-8b", order_by="create_time desc", page_size=1
        )
    )  # auto-pagination follows nextPageToken
    assert [v.name.rsplit("/", 1)[1] for v in every] == ["v3", "v2", "v1"]
    one = stainless.deployment_shape_versions.get("v1", deployment_shape_id="rft-qwen3-8b")
    assert (one.validated, one.snapshot.precision) == (True, "BF16")
    with pytest.raises(fireworks.NotFoundError):
        stainless.deployment_shape_versions.get("v9", deployment_shape_id="rft-qwen3-8b")


@pytest.mark.timeout(60)
def test_repeated_delta_is_refused(manager: Any, plane: LocalControlPlane) -> None:
    """The official hotload() of a delta that was already applied gets the gateway's 400."""
    ready(manager, "compat-chain")
    assert manager.hotload_and_wait("compat-chain", BASE, "s0", timeout_seconds=30)
    delta = {
        "previous_snapshot_identity": "s0",
        "compression_format": "arc_v2",
        "checksum_format": "alder32",
    }
    assert manager.hotload_and_wait(
        "compat-chain", BASE, "s1", incremental_snapshot_metadata=delta, timeout_seconds=30
    )
    with pytest.raises(httpx.HTTPStatusError) as info:
        manager.hotload("compat-chain", BASE, "s1", incremental_snapshot_metadata=delta)
    assert info.value.response.status_code == 400
    assert info.value.response.json()["error"]["type"] == "invalid_request_error"
    assert plane.stats.hotload_identities["compat-chain", "s1"] == 2
