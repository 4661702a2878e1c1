# ruff: noqa: S101  (pytest tests assert)
"""A user's tests of their own weight-sync code, against fireworks_deploy's local control plane.

Run with `pytest examples/pytest_plugin_example`. The sync tests need nothing but pytest; the
async test runs on anyio's pytest plugin (installed with anyio), not pytest-asyncio.
"""

from __future__ import annotations

import pytest

from fireworks_deploy import (
    AsyncDeploymentManager,
    DeploymentConfig,
    DeploymentManager,
    HotloadFailedError,
    IncrementalSnapshotMetadata,
)
from fireworks_deploy.local import Fault, LocalControlPlane, LocalServer

BASE_MODEL = "accounts/fireworks/models/qwen3-8b"


# -- the code under test: what a user's training loop would contain ---------------------------


class WeightSyncer:
    """Hot-loads each saved snapshot; deltas chain to the last snapshot successfully loaded."""

    def __init__(self, manager: DeploymentManager, deployment_id: str) -> None:
        self.manager = manager
        self.deployment_id = deployment_id
        self.last_loaded: str | None = None

    def sync(self, identity: str) -> None:
        metadata = (
            None
            if self.last_loaded is None
            else IncrementalSnapshotMetadata(previous_snapshot_identity=self.last_loaded)
        )
        self.manager.hotload_and_wait(
            self.deployment_id, BASE_MODEL, identity, metadata, poll_interval_s=0.05
        )
        self.last_loaded = identity


def provision(manager: DeploymentManager, deployment_id: str) -> str:
    manager.create_or_get(DeploymentConfig(deployment_id, BASE_MODEL, max_replica_count=2))
    return manager.wait_for_ready(deployment_id, timeout_s=10, poll_interval_s=0.05).state


# -- the tests ----------------------------------------------------------------------------------


def test_provision_waits_until_ready(deployment_manager: DeploymentManager) -> None:
    """The deployment is READY when provision returns."""
    assert provision(deployment_manager, "policy") == "READY"


def test_syncer_chains_deltas(
    deployment_manager: DeploymentManager, fireworks_control_plane: LocalControlPlane
) -> None:
    """After a base and two deltas, the deployment serves the last one."""
    provision(deployment_manager, "policy")
    syncer = WeightSyncer(deployment_manager, "policy")
    for step in range(3):
        syncer.sync(f"step-{step}")
    status = deployment_manager.hotload_status("policy", BASE_MODEL)
    assert status.serves("step-2")
    assert fireworks_control_plane.stats.requests["hotload"] == 3


def test_failed_sync_keeps_the_chain(
    deployment_manager: DeploymentManager, fireworks_control_plane: LocalControlPlane
) -> None:
    """A failed hot-load raises and does not advance last_loaded."""
    provision(deployment_manager, "policy")
    syncer = WeightSyncer(deployment_manager, "policy")
    syncer.sync("step-0")
    fireworks_control_plane.faults.add(Fault("hotload_error", deployment_id="policy"))
    with pytest.raises(HotloadFailedError):
        syncer.sync("step-1")
    assert syncer.last_loaded == "step-0"


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.mark.anyio
async def test_async_manager(async_deployment_manager: AsyncDeploymentManager) -> None:
    """The async manager talks to the same local control plane."""
    config = DeploymentConfig("async-policy", BASE_MODEL)
    await async_deployment_manager.create_or_get(config)
    info = await async_deployment_manager.wait_for_ready(
        "async-policy", timeout_s=10, poll_interval_s=0.05
    )
    assert info.is_ready


def test_server_for_url_based_code(fireworks_server: LocalServer) -> None:
    """Code that takes a base URL gets a loopback server."""
    with DeploymentManager(api_key="any", base_url=fireworks_server.base_url) as manager:
        assert manager.list_deployments() == []
