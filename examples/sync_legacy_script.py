"""A blocking script in the official client's shape, on the sync `DeploymentManager`.

The calls are the official `DeploymentManager`'s, in the order a training script makes them:
create_or_get -> wait_for_ready -> hotload_and_wait (base) -> hotload_and_wait (delta) ->
warmup -> scale_to_zero -> delete. Only the import changes; failures raise instead of
returning False.

By default it starts a local control plane on a loopback port and talks to it over HTTP. Set
FIREWORKS_BASE_URL (and FIREWORKS_API_KEY) to run it against another server instead:

    python examples/sync_legacy_script.py
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator

from fireworks_deploy import DeploymentConfig, DeploymentManager, IncrementalSnapshotMetadata
from fireworks_deploy.local import LocalControlPlane, LocalServer

BASE_MODEL = "accounts/fireworks/models/qwen3-8b"
DEPLOYMENT = "legacy-script"


@contextlib.contextmanager
def control_plane() -> Iterator[tuple[str, str]]:
    """(base_url, api_key): the environment's server, else a local one on loopback."""
    if os.environ.get("FIREWORKS_BASE_URL"):
        yield os.environ["FIREWORKS_BASE_URL"], os.environ.get("FIREWORKS_API_KEY", "")
        return
    plane = LocalControlPlane(boot_seconds=0.5, hotload_seconds=0.2)
    with LocalServer(plane) as server:
        print(f"local control plane on {server.base_url}")
        yield server.base_url, "local-key"


def main() -> None:
    with (
        control_plane() as (base_url, api_key),
        DeploymentManager(api_key=api_key, base_url=base_url) as manager,
    ):
        config = DeploymentConfig(DEPLOYMENT, BASE_MODEL, min_replica_count=1, max_replica_count=1)
        info = manager.create_or_get(config)
        print(f"create_or_get: {info.deployment_id} is {info.state}")
        try:
            info = manager.wait_for_ready(DEPLOYMENT, timeout_s=60, poll_interval_s=0.2)
            print(f"wait_for_ready: {info.state}")

            status = manager.hotload_and_wait(
                DEPLOYMENT, BASE_MODEL, "step-0", timeout_seconds=60, poll_interval_s=0.1
            )
            print(f"hotload_and_wait base: {status.summary()}")

            delta = IncrementalSnapshotMetadata(
                previous_snapshot_identity="step-0",
                compression_format="arc_v2",
                checksum_format="alder32",
            )
            status = manager.hotload_and_wait(
                DEPLOYMENT, BASE_MODEL, "step-1", delta, timeout_seconds=60, poll_interval_s=0.1
            )
            print(f"hotload_and_wait delta: {status.summary()}")

            warm = manager.warmup(info.inference_model, max_retries=10, retry_interval_s=0.2)
            print(f"warmup: HTTP {warm.status_code} after {warm.attempts} attempt(s)")
        finally:
            manager.scale_to_zero(DEPLOYMENT)
            print("scale_to_zero: done")
            manager.delete(DEPLOYMENT, wait=True, timeout_s=30)
            print("delete: done")


if __name__ == "__main__":
    main()
