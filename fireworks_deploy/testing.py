"""A pytest plugin that gives your tests a local Fireworks control plane.

Enable it in a `conftest.py`::

    pytest_plugins = ["fireworks_deploy.testing"]

Fixtures (all function-scoped, so every test starts from an empty control plane):

`fireworks_control_plane`
    A `LocalControlPlane` with fast timings (boot 0.2 s, hot-load 0.1 s). Inject faults with
    `fireworks_control_plane.faults.add(Fault(...))`; read `.stats` and `.events`.
`fireworks_plane_options`
    The keyword arguments the control plane is built with; override this fixture to change the
    timings, the account or the required API key.
`fireworks_server`
    The same control plane served on a loopback port (`fireworks_server.base_url`), for code
    that takes a URL, runs in a subprocess, or uses another client.
`deployment_manager`
    A blocking `DeploymentManager` wired to the control plane in process (no socket).
`async_deployment_manager`
    An `AsyncDeploymentManager` wired the same way. It is a plain fixture, so it works with
    pytest-asyncio, anyio's pytest plugin or any other runner; it is closed after the test.

Neither the plugin nor the sync fixtures need pytest-asyncio.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import anyio
import pytest

from ._manager import AsyncDeploymentManager
from ._sync import DeploymentManager
from .local import LocalControlPlane, LocalServer

__all__ = [
    "TEST_API_KEY",
    "TEST_BASE_URL",
    "async_deployment_manager",
    "deployment_manager",
    "fireworks_control_plane",
    "fireworks_plane_options",
    "fireworks_server",
]

#: The key the fixtures' managers send (the default control plane accepts any key).
TEST_API_KEY = "fireworks-deploy-test-key"
#: The base URL in-process managers use; no request leaves the process.
TEST_BASE_URL = "http://fireworks.test"


@pytest.fixture
def fireworks_plane_options() -> dict[str, Any]:
    """Keyword arguments for `LocalControlPlane`; override this fixture to change them."""
    return {
        "account": "local",
        "boot_seconds": 0.2,
        "boot_jitter": 0.0,
        "hotload_seconds": 0.1,
        "update_seconds": 0.1,
        "delete_seconds": 0.05,
        "api_key": None,
        "seed": 0,
        "clock": time.monotonic,
    }


@pytest.fixture
def fireworks_control_plane(fireworks_plane_options: dict[str, Any]) -> LocalControlPlane:
    """A fresh local control plane with fast timings."""
    return LocalControlPlane(**fireworks_plane_options)


@pytest.fixture
def fireworks_server(fireworks_control_plane: LocalControlPlane) -> Iterator[LocalServer]:
    """The control plane on a free loopback port; `.base_url` is where to point a client."""
    with LocalServer(fireworks_control_plane, host="127.0.0.1", port=0) as server:
        yield server


def _api_key(plane: LocalControlPlane) -> str:
    return plane.api_key if plane.api_key is not None else TEST_API_KEY


@pytest.fixture
def deployment_manager(
    fireworks_control_plane: LocalControlPlane,
) -> Iterator[DeploymentManager]:
    """A blocking `DeploymentManager` talking to the control plane in process."""
    with DeploymentManager(
        api_key=_api_key(fireworks_control_plane),
        account_id=fireworks_control_plane.account,
        base_url=TEST_BASE_URL,
        transport=fireworks_control_plane.transport(),
    ) as manager:
        yield manager


@pytest.fixture
def async_deployment_manager(
    fireworks_control_plane: LocalControlPlane,
) -> Iterator[AsyncDeploymentManager]:
    """An `AsyncDeploymentManager` talking to the control plane in process.

    Use it from an async test (pytest-asyncio, anyio, ...). Its HTTP clients are created lazily
    on the test's event loop; the in-process transport holds no sockets, so closing it after the
    loop has ended is safe.
    """
    manager = AsyncDeploymentManager(
        api_key=_api_key(fireworks_control_plane),
        account_id=fireworks_control_plane.account,
        base_url=TEST_BASE_URL,
        transport=fireworks_control_plane.transport(),
    )
    yield manager
    if not manager.closed:
        anyio.run(manager.aclose)
