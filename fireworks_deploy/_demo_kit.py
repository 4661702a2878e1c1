"""The demo's parts: its options, a fake trainer, a sampler of completions, and the report.

`FakeTrainer` stands in for the trainer's snapshot saving, `Sampler` asks a deployment for
completions over HTTP, and `DemoReport` records what `_demo.run_demo` did, phase by phase.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import anyio
import attrs
import httpx

from ._errors import FireworksError, OperationError
from ._inference import COMPLETIONS_PATH
from ._models import IncrementalSnapshotMetadata

__all__ = [
    "DEFAULT_BASE_MODEL",
    "Completion",
    "DemoError",
    "DemoOptions",
    "DemoReport",
    "FakeTrainer",
    "Sampler",
    "SamplingError",
    "Snapshot",
    "StepReport",
    "delta_metadata",
]

DEFAULT_BASE_MODEL = "accounts/fireworks/models/qwen3-8b"


class DemoError(OperationError):
    """The demo refused to go on (it never touches a deployment it did not create)."""


class SamplingError(OperationError):
    """A completion request failed."""


@attrs.frozen(kw_only=True)
class DemoOptions:
    """What the demo runs; the defaults finish in seconds against the embedded control plane."""

    deployments: int = 3
    steps: int = 5
    base_model: str = DEFAULT_BASE_MODEL
    replicas: int = 1
    prompts: int = 2
    max_tokens: int = 6
    id_prefix: str = "demo"
    ready_timeout_s: float = 120.0
    hotload_timeout_s: float = 120.0
    poll_interval_s: float = 0.25
    cleanup_timeout_s: float = 60.0
    #: Refuse to reuse (and so to delete) a deployment that exists before the demo creates it.
    refuse_existing: bool = True


@attrs.frozen(kw_only=True)
class Snapshot:
    """One saved sampler checkpoint: its identity and whether it is a full (base) snapshot."""

    step: int
    identity: str
    full: bool


class FakeTrainer:
    """Stands in for `save_weights_for_sampler`: one snapshot identity per step.

    A snapshot is a delta when every deployment serves the same previous snapshot; otherwise
    (the first step, or after a failed hot-load split the fleet) it saves a full base.
    """

    def __init__(self, run: str) -> None:
        self.run = run

    def save(self, step: int, *, full: bool) -> Snapshot:
        kind = "base" if full else "delta"
        return Snapshot(step=step, identity=f"{self.run}-step-{step:04d}-{kind}", full=full)


def delta_metadata(previous: str) -> IncrementalSnapshotMetadata:
    """The incremental metadata of a delta against `previous` (arc_v2, "alder32" sic)."""
    return IncrementalSnapshotMetadata(
        previous_snapshot_identity=previous, compression_format="arc_v2", checksum_format="alder32"
    )


@attrs.frozen(kw_only=True)
class Completion:
    tokens: tuple[int, ...]
    snapshot: str | None


class Sampler:
    """Completions from a deployment: `POST {inference_url}/inference/v1/completions`.

    Sends the gateway's headers (`X-Api-Key` and `Authorization: Bearer`); retries briefly on
    the "not ready / hot-loading" answers (404, 425, 429, 503) and on transport errors.
    """

    def __init__(
        self,
        inference_url: str,
        api_key: str,
        *,
        transport: httpx.AsyncBaseTransport | None = None,
        timeout_s: float = 30.0,
        attempts: int = 5,
        retry_interval_s: float = 0.2,
    ) -> None:
        self._client = httpx.AsyncClient(
            base_url=inference_url,
            transport=transport,
            headers={"X-Api-Key": api_key, "Authorization": f"Bearer {api_key}"},
            timeout=timeout_s,
            trust_env=False,
        )
        self._attempts = attempts
        self._retry_interval_s = retry_interval_s

    async def aclose(self) -> None:
        await self._client.aclose()

    async def complete(self, model: str, prompt: Sequence[int], max_tokens: int) -> Completion:
        body = {"model": model, "prompt": list(prompt), "max_tokens": max_tokens, "temperature": 0}
        reason = ""
        for attempt in range(self._attempts):
            if attempt:
                await anyio.sleep(self._retry_interval_s)
            try:
                response = await self._client.post(COMPLETIONS_PATH, json=body)
            except httpx.TransportError as exc:
                reason = f"{type(exc).__name__}: {exc}"
                continue
            if response.status_code in (404, 425, 429, 503):
                reason = f"HTTP {response.status_code}"
                continue
            if response.status_code != 200:
                raise SamplingError(
                    f"Completion from {model} failed with HTTP {response.status_code}: "
                    f"{response.text[:200]}"
                )
            try:
                choice = response.json()["choices"][0]
                tokens = tuple(int(t) for t in choice["raw_output"]["completion_token_ids"])
            except (ValueError, KeyError, IndexError, TypeError) as exc:
                raise SamplingError(
                    f"Completion from {model} has no raw_output.completion_token_ids ({exc!r})."
                ) from exc
            return Completion(
                tokens=tokens, snapshot=response.headers.get("x-local-snapshot-identity") or None
            )
        raise SamplingError(
            f"Completion from {model} got no answer in {self._attempts} attempts (last: {reason})."
        )


@attrs.define(kw_only=True)
class StepReport:
    step: int
    identity: str
    kind: str
    previous: str | None
    seconds: float
    loaded: list[str]
    failed: dict[str, str]
    sampled: int = 0
    changed: int = 0
    example: str = ""


@attrs.define(kw_only=True)
class DemoReport:
    """What happened, phase by phase; `ok` if every hot-load and the cleanup succeeded."""

    control_plane: str
    deployments: list[str]
    base_model: str
    replicas: int
    phases: list[tuple[str, float]] = attrs.field(factory=list)
    steps: list[StepReport] = attrs.field(factory=list)
    sampling_s: float = 0.0
    sampling_rounds: int = 0
    completions: int = 0
    cleanup: dict[str, str] = attrs.field(factory=dict)
    cleaned: list[str] = attrs.field(factory=list)
    total_s: float = 0.0
    error: str | None = None
    exception: FireworksError | None = attrs.field(default=None, repr=False)

    @property
    def ok(self) -> bool:
        return self.error is None and not self.cleanup and all(not s.failed for s in self.steps)

    def summary_rows(self) -> list[list[str]]:
        """The per-phase timing table: phase, seconds, detail."""
        rows = [[name, f"{seconds:.2f}", ""] for name, seconds in self.phases[:2]]
        for s in self.steps:
            done = f"{len(s.loaded)}/{len(s.loaded) + len(s.failed)} deployments"
            rows.append([f"hot-load step {s.step} ({s.kind})", f"{s.seconds:.2f}", done])
        if self.sampling_rounds:
            rows.append(
                [
                    "sampling",
                    f"{self.sampling_s:.2f}",
                    f"{self.completions} completions in {self.sampling_rounds} rounds",
                ]
            )
        rows.extend([name, f"{seconds:.2f}", ""] for name, seconds in self.phases[2:])
        rows.append(["total", f"{self.total_s:.2f}", "ok" if self.ok else "with failures"])
        return rows

    def to_json(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "control_plane": self.control_plane,
            "base_model": self.base_model,
            "replicas": self.replicas,
            "deployments": self.deployments,
            "phases": [{"phase": n, "seconds": round(s, 3)} for n, s in self.phases],
            "steps": [
                {
                    "step": s.step,
                    "identity": s.identity,
                    "kind": s.kind,
                    "previous_snapshot_identity": s.previous,
                    "seconds": round(s.seconds, 3),
                    "loaded": s.loaded,
                    "failed": s.failed,
                    "sampled": s.sampled,
                    "changed": s.changed,
                }
                for s in self.steps
            ],
            "sampling": {
                "seconds": round(self.sampling_s, 3),
                "rounds": self.sampling_rounds,
                "completions": self.completions,
            },
            "cleanup": {"deleted": self.cleaned, "failed": self.cleanup},
            "total_seconds": round(self.total_s, 3),
            "error": self.error,
        }
