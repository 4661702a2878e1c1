"""Helpers shared by the reliability suites that run our SDK against the local control plane.

Two ways to reach a plane: ``inprocess`` (``httpx.ASGITransport``, no socket) and ``loopback``
(uvicorn on 127.0.0.1 in a thread). Both are real HTTP as far as the SDK can tell.
"""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager
from typing import Any

import anyio
import httpx

from fireworks_deploy import (
    AsyncDeploymentManager,
    DeploymentConfig,
    DeploymentManager,
    RetryPolicy,
    Timeouts,
)
from fireworks_deploy.local import LocalControlPlane, LocalServer

__all__ = [
    "API_KEY",
    "BASE_MODEL",
    "FAST_RETRY",
    "INPROCESS_URL",
    "MODES",
    "FakeClock",
    "async_manager",
    "closed_port",
    "completion_tokens",
    "config",
    "double_posts",
    "endpoint",
    "small_timeouts",
    "sync_manager",
    "wait_until",
]

API_KEY = "fw-local-SECRET-4b1d9e7c2a"
BASE_MODEL = "accounts/fireworks/models/qwen3-8b"
INPROCESS_URL = "http://local.fireworks.test"
MODES = ("inprocess", "loopback")
FAST_RETRY = RetryPolicy(initial_s=0.01, max_s=0.05, max_retry_after_s=5.0)


def small_timeouts(operation_s: float = 3.0, attempt_s: float = 1.0) -> Timeouts:
    """Per-attempt budgets and a per-operation deadline small enough for fault tests."""
    return Timeouts(
        connect_s=attempt_s,
        control_plane_s=attempt_s,
        hotload_post_s=attempt_s,
        hotload_status_s=attempt_s,
        probe_s=attempt_s,
        warmup_s=attempt_s,
        operation_s=operation_s,
    )


class FakeClock:
    """A monotonic clock for the plane that only moves when told to."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def config(deployment_id: str, replicas: int = 1, **fields: Any) -> DeploymentConfig:
    return DeploymentConfig(
        deployment_id=deployment_id,
        base_model=BASE_MODEL,
        min_replica_count=replicas,
        max_replica_count=replicas,
        **fields,
    )


@contextmanager
def endpoint(
    plane: LocalControlPlane, mode: str
) -> Iterator[tuple[str, httpx.ASGITransport | None]]:
    """(base_url, transport) reaching `plane` in process or over a loopback server."""
    if mode == "inprocess":
        yield INPROCESS_URL, plane.transport()
    else:
        with LocalServer(plane) as server:
            yield server.base_url, None


@asynccontextmanager
async def async_manager(
    base_url: str,
    transport: httpx.AsyncBaseTransport | None,
    *,
    timeouts: Timeouts | None = None,
    **kwargs: Any,
) -> AsyncIterator[AsyncDeploymentManager]:
    async with AsyncDeploymentManager(
        api_key=API_KEY,
        base_url=base_url,
        transport=transport,
        retry=kwargs.pop("retry", FAST_RETRY),
        timeouts=timeouts or small_timeouts(30.0, 5.0),
        **kwargs,
    ) as manager:
        yield manager


@contextmanager
def sync_manager(
    base_url: str,
    transport: httpx.AsyncBaseTransport | None,
    *,
    timeouts: Timeouts | None = None,
    **kwargs: Any,
) -> Iterator[DeploymentManager]:
    with DeploymentManager(
        api_key=API_KEY,
        base_url=base_url,
        transport=transport,
        retry=kwargs.pop("retry", FAST_RETRY),
        timeouts=timeouts or small_timeouts(30.0, 5.0),
        **kwargs,
    ) as manager:
        yield manager


def double_posts(plane: LocalControlPlane) -> dict[tuple[str, ...], int]:
    """Effects POSTed more than once: hot-loads by (deployment, identity), creates by id.

    The plane counts every POST that reaches it, answered or not, so `assert not
    double_posts(plane)` says each intended effect was POSTed at most once.
    """
    twice: dict[tuple[str, ...], int] = {}
    for (dep, identity), count in plane.stats.hotload_identities.items():
        if count > 1:
            twice["hotload", dep, identity] = count
    for (endpoint_name, dep), count in plane.stats.by_deployment.items():
        if endpoint_name == "create" and count > 1:
            twice["create", dep] = count
    return twice


def double_effects(plane: LocalControlPlane) -> dict[tuple[str, ...], int]:
    """Effects the server applied more than once: a hot-load started twice for one identity,
    or a deployment created again without a deletion in between.

    Unlike `double_posts`, a POST the server never acted on (a fault answered in its place)
    does not count: re-sending it, once a read-back proved it did not land, is what is wanted.
    """
    twice: dict[tuple[str, ...], int] = {}
    loads: dict[tuple[str, str], int] = {}
    live: dict[str, int] = {}
    for event in plane.events:
        if event.kind == "hotload_started" and event.detail is not None:
            key = (event.deployment_id, event.detail)
            loads[key] = loads.get(key, 0) + 1
            if loads[key] > 1:
                twice["hotload", key[0], key[1]] = loads[key]
        elif event.kind == "created":
            live[event.deployment_id] = live.get(event.deployment_id, 0) + 1
            if live[event.deployment_id] > 1:
                twice["create", event.deployment_id] = live[event.deployment_id]
        elif event.kind == "deleted":
            live[event.deployment_id] = 0
    return twice


async def completion_tokens(
    base_url: str, transport: httpx.AsyncBaseTransport | None, model: str
) -> list[int]:
    """Sample from the deployment ourselves (plain httpx), returning the completion token ids."""
    headers = {"X-Api-Key": API_KEY, "Authorization": f"Bearer {API_KEY}"}
    async with httpx.AsyncClient(base_url=base_url, transport=transport, timeout=10) as client:
        response = await client.post(
            "/inference/v1/completions",
            json={"model": model, "prompt": [11, 12, 13], "max_tokens": 8, "temperature": 0.0},
            headers=headers,
        )
    assert response.status_code == 200, response.text
    tokens: list[int] = response.json()["choices"][0]["raw_output"]["completion_token_ids"]
    return tokens


async def wait_until(condition: Callable[[], bool], timeout_s: float = 10.0) -> None:
    """Poll `condition` (cheaply) until it holds; fail after `timeout_s`."""
    with anyio.fail_after(timeout_s):
        # The conditions are server-side counters and states with no event to wait on.
        while not condition():  # noqa: ASYNC110
            await anyio.sleep(0.005)


def closed_port() -> int:
    """A loopback port that nothing listens on (bound, then released)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port
