"""Shared fixtures.

Sections:
* core: respx routers injected as the transport, managers, wire-body builders (used by the
  respx-driven unit tests of the core).
* local control plane: reserved for fixtures of the in-process emulator (tests/test_local_*).
"""

from __future__ import annotations

import json
import sys
import threading
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import respx

from fireworks_deploy import AsyncDeploymentManager, DeploymentManager, RetryPolicy

# ---------------------------------------------------------------------------------------------
# core
# ---------------------------------------------------------------------------------------------

API_KEY = "fw-test-SECRET-key-7f3a9c"
BASE_URL = "https://api.test.fireworks.example"
ACCOUNT = "acme"
BASE_MODEL = "accounts/fireworks/models/qwen3-8b"
FIXTURES = Path(__file__).parent / "fixtures"
HOTLOAD_PATH = "/hot_load/v1/models/hot_load"
COMPLETIONS_PATH = "/inference/v1/completions"
#: Fast, deterministic-enough retries so a test never sleeps long.
FAST_RETRY = RetryPolicy(initial_s=0.005, max_s=0.02)

# Test modules import the helpers below as `from core_testkit import ...`: a unique name, so a
# second conftest.py elsewhere under tests/ (also imported as "conftest") cannot shadow them.
sys.modules.setdefault("core_testkit", sys.modules[__name__])

# Every test ends with a leak check: no threads, open sockets or asyncio tasks left behind.
pytest_plugins = ["leakcheck"]


@pytest.fixture(autouse=True)
def _no_leaks(leakcheck: None) -> None:
    """Apply tests/leakcheck.py to every test."""


def load_fixture(name: str) -> Any:
    """A golden wire body from tests/fixtures."""
    return json.loads((FIXTURES / name).read_text())


def dep_path(deployment_id: str, account: str = ACCOUNT) -> str:
    return f"/v1/accounts/{account}/deployments/{deployment_id}"


def deployment_json(deployment_id: str, state: str = "READY", **extra: Any) -> dict[str, Any]:
    """A control-plane deployment body."""
    body: dict[str, Any] = {
        "name": f"accounts/{ACCOUNT}/deployments/{deployment_id}",
        "state": state,
        "baseModel": BASE_MODEL,
        "minReplicaCount": 1,
        "maxReplicaCount": 1,
    }
    body.update(extra)
    return body


def replica_json(
    current: str | None = None,
    *,
    ready: bool = True,
    stage: str = "done",
    target: str | None = None,
    pod: str = "pod-0",
    adapters: list[dict[str, str]] | None = None,
) -> dict[str, Any]:
    """One replica of a hot-load status body."""
    replica: dict[str, Any] = {
        "identity": pod,
        "readiness": ready,
        "current_snapshot_identity": current,
        "loading_state": {"stage": stage, "target_snapshot_identity": target or current},
    }
    if adapters is not None:
        replica["loaded_adapters"] = adapters
    return replica


def status_json(*replicas: dict[str, Any]) -> dict[str, Any]:
    return {"replicas": list(replicas)}


def sequence(*responses: httpx.Response | Exception) -> Any:
    """A side effect answering with `responses` in turn, repeating the last one."""
    items = list(responses)
    calls = {"n": 0}

    def effect(request: httpx.Request) -> httpx.Response:
        index = min(calls["n"], len(items) - 1)
        calls["n"] += 1
        item = items[index]
        if isinstance(item, Exception):
            raise item
        return item

    return effect


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """No test sees the developer's real Fireworks environment."""
    for name in (
        "FIREWORKS_API_KEY",
        "FIREWORKS_ACCOUNT_ID",
        "FIREWORKS_BASE_URL",
        "FIREWORKS_INFERENCE_URL",
        "FIREWORKS_HOTLOAD_API_URL",
        "FIREWORKS_CLIENT_SOURCE",
        "FIREWORKS_SESSION_ID",
    ):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def router() -> respx.Router:
    """A respx router to be injected as the transport (never patched globally)."""
    return respx.Router(base_url=BASE_URL, assert_all_called=False)


@pytest.fixture
def transport(router: respx.Router) -> httpx.MockTransport:
    return httpx.MockTransport(router.async_handler)


@pytest.fixture
def accounts_route(router: respx.Router) -> respx.Route:
    """`GET /v1/accounts?pageSize=2` answering with one account."""
    return router.get("/v1/accounts", params={"pageSize": "2"}).respond(
        json={"accounts": [{"name": f"accounts/{ACCOUNT}"}], "nextPageToken": ""}
    )


@pytest.fixture
async def manager(transport: httpx.MockTransport) -> AsyncIterator[AsyncDeploymentManager]:
    """An async manager with an explicit account and fast retries."""
    async with AsyncDeploymentManager(
        api_key=API_KEY,
        account_id=ACCOUNT,
        base_url=BASE_URL,
        transport=transport,
        retry=FAST_RETRY,
    ) as mgr:
        yield mgr


@pytest.fixture
async def lazy_manager(
    transport: httpx.MockTransport, accounts_route: respx.Route
) -> AsyncIterator[AsyncDeploymentManager]:
    """An async manager that resolves its account lazily."""
    async with AsyncDeploymentManager(
        api_key=API_KEY, base_url=BASE_URL, transport=transport, retry=FAST_RETRY
    ) as mgr:
        yield mgr


@pytest.fixture
def sync_manager(transport: httpx.MockTransport) -> Iterator[DeploymentManager]:
    """A blocking manager over the same respx transport (seen from its portal thread)."""
    mgr = DeploymentManager(
        api_key=API_KEY,
        account_id=ACCOUNT,
        base_url=BASE_URL,
        transport=transport,
        retry=FAST_RETRY,
    )
    try:
        yield mgr
    finally:
        mgr.close()
        assert mgr._loop_thread not in {t.ident for t in threading.enumerate()}


# ---------------------------------------------------------------------------------------------
# local control plane (fixtures for tests/test_local_*.py go below this line)
# ---------------------------------------------------------------------------------------------
