"""An async GRPO-style loop: rollouts keep sampling while new weights are hot-loaded.

The trainer never waits for weight sync before it trains again: while step N's snapshot is
being hot-loaded into the deployment, rollouts for the next step already run on the weights the
deployment still serves (one step off-policy, as async GRPO trainers do). anyio task groups run
the three sides (sampling, training, weight sync); a memory object stream carries rollouts from
the sampler to the trainer. Only one hot-load is in flight at a time, because each delta must
chain to the last snapshot *successfully* loaded.

Each hot-load's status says what it cost (`load_s`, `status_requests`), logged per step below;
every manager operation also ends with a structured DEBUG record on the `fireworks_deploy`
logger (and an OpenTelemetry span, with the `otel` extra).

Runs against an embedded local control plane (in process, no account needed):

    python examples/async_rl_loop.py
"""

from __future__ import annotations

import anyio
import httpx
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream

from fireworks_deploy import AsyncDeploymentManager, DeploymentConfig, IncrementalSnapshotMetadata
from fireworks_deploy.local import LocalControlPlane

BASE_MODEL = "accounts/fireworks/models/qwen3-8b"
DEPLOYMENT = "grpo-policy"
STEPS = 5
ROLLOUTS_PER_STEP = 6

Rollout = tuple[list[int], str]  # completion token ids, the snapshot that produced them


async def sample(client: httpx.AsyncClient, model: str, prompt: list[int]) -> Rollout:
    """One completion: its token ids, and which weights served it (a local-plane header)."""
    response = await client.post(
        "/inference/v1/completions",
        json={"model": model, "prompt": prompt, "max_tokens": 8, "temperature": 1.0},
    )
    response.raise_for_status()
    tokens: list[int] = response.json()["choices"][0]["raw_output"]["completion_token_ids"]
    return tokens, response.headers.get("x-local-snapshot-identity") or "base weights"


async def rollouts(
    client: httpx.AsyncClient, model: str, send: MemoryObjectSendStream[Rollout]
) -> None:
    """Sample batches forever; the caller cancels this when training is done."""
    prompt = 0
    while True:
        async with anyio.create_task_group() as tg:
            for _ in range(ROLLOUTS_PER_STEP):
                prompt += 1
                tg.start_soon(_one_rollout, client, model, [prompt, 7, 11], send)


async def _one_rollout(
    client: httpx.AsyncClient, model: str, prompt: list[int], send: MemoryObjectSendStream[Rollout]
) -> None:
    await send.send(await sample(client, model, prompt))


class WeightSync:
    """Hot-loads snapshots in order, one at a time, chaining deltas to the last one loaded."""

    def __init__(self, manager: AsyncDeploymentManager) -> None:
        self.manager = manager
        self.last_loaded: str | None = None
        self._idle = anyio.Event()
        self._idle.set()

    async def wait_idle(self) -> None:
        await self._idle.wait()

    async def load(self, identity: str) -> None:
        self._idle = anyio.Event()
        try:
            metadata = (
                None
                if self.last_loaded is None
                else IncrementalSnapshotMetadata(previous_snapshot_identity=self.last_loaded)
            )
            status = await self.manager.hotload_and_wait(
                DEPLOYMENT, BASE_MODEL, identity, metadata, timeout_seconds=30, poll_interval_s=0.1
            )
            kind = "base" if metadata is None else f"delta of {self.last_loaded}"
            self.last_loaded = identity  # only after success: the next delta chains to it
            # What this step's weight sync cost, for the training log (a metrics tracker in a
            # real loop): seconds from the POST until every replica served it, and status reads.
            print(
                f"  weight sync: {identity} ({kind}) served by every replica "
                f"{status.load_s:.2f}s after the POST, {status.status_requests} status read(s)"
            )
        finally:
            self._idle.set()


async def train(
    manager: AsyncDeploymentManager, receive: MemoryObjectReceiveStream[Rollout]
) -> None:
    sync = WeightSync(manager)
    async with anyio.create_task_group() as background:
        for step in range(STEPS):
            batch = [await receive.receive() for _ in range(ROLLOUTS_PER_STEP)]
            served_by = sorted({snapshot for _, snapshot in batch})
            reward = sum(sum(tokens) % 7 for tokens, _ in batch) / len(batch)
            await anyio.sleep(0.2)  # forward_backward + optim_step
            identity = f"policy-step-{step}"
            print(
                f"step {step}: trained on {len(batch)} rollouts from {', '.join(served_by)} "
                f"(mean reward {reward:.2f}); saved {identity}"
            )
            await sync.wait_idle()  # at most one hot-load in flight; the chain needs it done
            background.start_soon(sync.load, identity)
    print(f"all {STEPS} snapshots synced; the deployment serves {sync.last_loaded}")


async def main() -> None:
    plane = LocalControlPlane(boot_seconds=0.5, hotload_seconds=0.3)
    async with AsyncDeploymentManager(
        api_key="local", base_url="http://fireworks.local", transport=plane.transport()
    ) as manager:
        config = DeploymentConfig(DEPLOYMENT, BASE_MODEL, min_replica_count=2, max_replica_count=2)
        await manager.create_or_get(config)
        try:
            info = await manager.wait_for_ready(DEPLOYMENT, timeout_s=30, poll_interval_s=0.2)
            print(f"{DEPLOYMENT} is {info.state}")
            headers = {"Authorization": "Bearer local", "X-Api-Key": "local"}
            async with httpx.AsyncClient(
                base_url=manager.inference_url, transport=plane.transport(), headers=headers
            ) as client:
                send, receive = anyio.create_memory_object_stream[Rollout]()
                async with anyio.create_task_group() as tg:
                    tg.start_soon(rollouts, client, info.inference_model, send)
                    await train(manager, receive)
                    tg.cancel_scope.cancel()  # training is done: stop sampling
        finally:
            await manager.scale_to_zero(DEPLOYMENT)
            await manager.delete(DEPLOYMENT, wait=True, timeout_s=10)
            print("scaled to zero and deleted")


if __name__ == "__main__":
    anyio.run(main)
