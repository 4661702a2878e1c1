"""A training script written for the official client, unchanged but for its import.

`main()` is what a script for `fireworks.training.sdk.DeploymentManager` (fireworks-ai 1.2.30)
looks like: no `with`, no `close()`, results checked with `if not ok:`. Only the
`from fireworks_deploy import ...` line differs; tests/compat runs this file both ways against
the same local control plane and compares what it prints.

Ours raises a typed error where the official client returned False, so the `if not ok:` branches
are never taken here: the error (with its message) is raised from the call instead. The manager
is closed when the interpreter exits.

By default it starts a local control plane on a loopback port; set FIREWORKS_BASE_URL (and
FIREWORKS_API_KEY) to run it against another server instead:

    python examples/sync_legacy_script.py
"""

from __future__ import annotations

import os
import sys

from fireworks_deploy import DeploymentConfig, DeploymentManager
from fireworks_deploy.local import LocalControlPlane, LocalServer

BASE_MODEL = "accounts/fireworks/models/qwen3-8b"
DEPLOYMENT_ID = "legacy-script"
TRAINER_JOB = "accounts/local/rlorTrainerJobs/legacy-trainer"


def main(base_url: str, api_key: str) -> int:
    mgr = DeploymentManager(api_key=api_key, base_url=base_url)

    config = DeploymentConfig(
        deployment_id=DEPLOYMENT_ID,
        base_model=BASE_MODEL,
        min_replica_count=1,
        max_replica_count=1,
    )
    info = mgr.create_or_get(config)
    print(f"create_or_get: {info.deployment_id} {info.state}")
    info = mgr.wait_for_ready(DEPLOYMENT_ID, timeout_s=120, poll_interval_s=0.2)
    print(f"wait_for_ready: {info.state}")

    info = mgr.reattach_trainer(
        DEPLOYMENT_ID,
        base_model=BASE_MODEL,
        trainer_job_name=TRAINER_JOB,
        timeout_s=120,
        poll_interval_s=0.2,
    )
    print(f"reattach_trainer: {info.hot_load_trainer_job} {info.state}")

    ok = mgr.hotload_and_wait(DEPLOYMENT_ID, BASE_MODEL, "step-0", timeout_seconds=120)
    if not ok:
        print(f"base hot-load failed: {mgr.last_hotload_error_message}")
        return 1
    status = mgr.hotload_check_status(DEPLOYMENT_ID, BASE_MODEL)
    print(f"hotload_and_wait base: {status['replicas'][0]['current_snapshot_identity']}")

    delta = {
        "previous_snapshot_identity": "step-0",
        "compression_format": "arc_v2",
        "checksum_format": "alder32",
    }
    ok = mgr.hotload_and_wait(
        DEPLOYMENT_ID,
        BASE_MODEL,
        "step-1",
        incremental_snapshot_metadata=delta,
        timeout_seconds=120,
    )
    if not ok:
        print(f"delta hot-load failed: {mgr.last_hotload_error_message}")
        return 1
    status = mgr.hotload_check_status(DEPLOYMENT_ID, BASE_MODEL)
    print(f"hotload_and_wait delta: {status['replicas'][0]['current_snapshot_identity']}")

    model = f"accounts/{mgr.account_id}/deployments/{DEPLOYMENT_ID}"
    if not mgr.warmup(model, max_retries=10, retry_interval_s=0.2):
        print("warmup failed")
        return 1
    print(f"warmup: {model}")

    mgr.scale_to_zero(DEPLOYMENT_ID)
    print("scale_to_zero: done")
    mgr.delete(DEPLOYMENT_ID)
    print("delete: done")
    return 0


if __name__ == "__main__":
    if os.environ.get("FIREWORKS_BASE_URL"):
        sys.exit(main(os.environ["FIREWORKS_BASE_URL"], os.environ.get("FIREWORKS_API_KEY", "")))
    with LocalServer(LocalControlPlane(boot_seconds=0.5, hotload_seconds=0.2)) as server:
        print(f"local control plane on {server.base_url}")
        code = main(server.base_url, "local-key")
    sys.exit(code)
