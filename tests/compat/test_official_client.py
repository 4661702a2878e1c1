"""The official ``fireworks-ai`` client (``DeploymentManager``) against the local control plane.

Run with the compat venv (``nox -s compat``). The official client polls hot-load status every 5 s
(fixed), so each ``hotload_and_wait`` that has to wait costs one poll interval.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

pytestmark = pytest.mark.compat

sdk = pytest.importorskip("fireworks.training.sdk")

from fireworks_deploy.local import Fault, LocalControlPlane, LocalServer  # noqa: E402

BASE = "accounts/fireworks/models/qwen3-8b"
TRAINER = "accounts/local/rlorTrainerJobs/trainer-1"


@pytest.fixture
def plane() -> LocalControlPlane:
    return LocalControlPlane(
        boot_seconds=0.5, hotload_seconds=0.5, update_seconds=0.3, delete_seconds=0.2
    )


@pytest.fixture
def server(plane: LocalControlPlane) -> Iterator[LocalServer]:
    with LocalServer(plane) as running:
        yield running


@pytest.fixture
def manager(server: LocalServer) -> Iterator[Any]:
    # A trailing slash makes the official client send //hot_load/... (wire-protocol §1.1).
    official = sdk.DeploymentManager(api_key="k", base_url=server.base_url + "/")
    yield official
    official.close()


def wait_until_gone(manager: Any, deployment_id: str, timeout: float = 10.0) -> None:
    """Poll the official get() until the deployment is gone (404 -> None)."""
    deadline = time.monotonic() + timeout
    while manager.get(deployment_id) is not None:
        assert time.monotonic() < deadline, "deployment was not deleted in time"
        time.sleep(0.05)


@pytest.mark.timeout(90)
def test_full_lifecycle(manager: Any, plane: LocalControlPlane, server: LocalServer) -> None:
    """create_or_get -> wait_for_ready -> base + delta hot-load -> warmup -> scale -> delete."""
    plane.faults.add(Fault("reject_reset_prompt_cache", times=None))
    config = sdk.DeploymentConfig(
        deployment_id="compat-1",
        base_model=BASE,
        min_replica_count=1,
        max_replica_count=1,
        for_training=True,
        hot_load_trainer_job=TRAINER,
        hot_load_transition_type="sync",
        disable_speculative_decoding=True,
    )
    info = manager.create_or_get(config)
    assert (info.state, info.hot_load_trainer_job) == ("CREATING", TRAINER)
    assert info.hot_load_transition_type == "SYNC"
    assert manager.create_or_get(config).name == "accounts/local/deployments/compat-1"

    info = manager.wait_for_ready("compat-1", timeout_s=30, poll_interval_s=0.1)
    assert info.state == "READY"
    assert info.inference_model == "accounts/local/deployments/compat-1"

    assert manager.hotload_and_wait("compat-1", BASE, "step-0", timeout_seconds=30)
    assert manager._hotload_reset_prompt_cache_supported is False  # the fallback ran
    delta = {
        "previous_snapshot_identity": "step-0",
        "compression_format": "arc_v2",
        "checksum_format": "alder32",
    }
    assert manager.hotload_and_wait(
        "compat-1", BASE, "step-1", incremental_snapshot_metadata=delta, timeout_seconds=30
    )
    status = manager.hotload_check_status("compat-1", BASE)
    assert status["replicas"][0]["current_snapshot_identity"] == "step-1"

    assert manager.warmup(info.inference_model, max_retries=3, retry_interval_s=0.1)

    manager.scale_to_zero("compat-1")
    raw = httpx.get(
        f"{server.base_url}/v1/accounts/local/deployments/compat-1", headers={"X-Api-Key": "k"}
    ).json()
    assert (raw["state"], raw["replicaCount"], raw["maxReplicaCount"]) == ("READY", 0, 0)

    manager.delete("compat-1")
    wait_until_gone(manager, "compat-1")
    assert plane.event_time("deleted", "compat-1") is not None
    assert plane.event_time("hotload_done", "compat-1", "step-1") is not None
    assert plane.stats.requests["hotload"] == 3  # step-0 rejected once, re-sent, then step-1


@pytest.mark.timeout(60)
def test_hotload_error_returns_false(manager: Any, plane: LocalControlPlane) -> None:
    """An injected hot-load error makes hotload_and_wait return False with a message."""
    config = sdk.DeploymentConfig(deployment_id="compat-2", base_model=BASE, max_replica_count=1)
    manager.create_or_get(config)
    manager.wait_for_ready("compat-2", timeout_s=30, poll_interval_s=0.1)
    plane.faults.add(Fault("hotload_error", deployment_id="compat-2"))
    assert not manager.hotload_and_wait("compat-2", BASE, "bad-step", timeout_seconds=30)
    assert "bad-step" in (manager.last_hotload_error_message or "")


@pytest.mark.timeout(60)
def test_stale_error_is_ignored_and_failed_deployment_is_recreated(
    manager: Any, plane: LocalControlPlane
) -> None:
    """A FAILED deployment is deleted and recreated; a stale error does not fail the next load."""
    plane.fail_boot("compat-3")
    config = sdk.DeploymentConfig(deployment_id="compat-3", base_model=BASE, max_replica_count=1)
    manager.create_or_get(config)
    with pytest.raises(RuntimeError, match="FAILED"):
        manager.wait_for_ready("compat-3", timeout_s=30, poll_interval_s=0.1)
    assert manager.create_or_get(config).state == "CREATING"
    manager.wait_for_ready("compat-3", timeout_s=30, poll_interval_s=0.1)
    stale = plane.faults.add(Fault("stale_error", deployment_id="compat-3", identity="old"))
    assert manager.hotload_and_wait("compat-3", BASE, "new", timeout_seconds=30)
    assert stale.fired == 1
