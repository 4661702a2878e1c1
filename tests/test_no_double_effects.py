"""No double effects: a request whose answer was lost is reconciled, never blindly re-sent.

A small ASGI wrapper in front of the local control plane lets the plane act on a request and
then loses (or withholds) the answer, and records the order of the requests it saw; the plane's
own counters and events count the server-side effects.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

import httpx
import pytest
from local_kit import BASE_MODEL, MODES, async_manager, config, endpoint, small_timeouts
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from fireworks_deploy import DeploymentState
from fireworks_deploy.local import Fault, LocalControlPlane
from fireworks_deploy.local._app import _drop_connection

FAST = {"poll_interval_s": 0.02}
TRAINER = "accounts/local/rlorTrainerJobs/trainer-b"


def classify(method: str, path: str, query: bytes) -> str:
    path = re.sub("/+", "/", path)
    if path.startswith("/hot_load/"):
        return "hotload_status" if method == "GET" else "hotload"
    if path.endswith("/completions"):
        return "completions"
    if re.fullmatch(r"/v1/accounts/[^/]+/deployments", path):
        return "list" if method == "GET" else "create"
    if method == "PATCH":
        return "update" if b"updateMask" in query else "scale"
    return {"GET": "get", "DELETE": "delete"}.get(method, "other")


class AnswerLoser:
    """Lets the plane handle a request, then loses (`lose`) or withholds (`hang`) its answer."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self.seen: list[str] = []
        self.lose: dict[str, int] = {}
        self.hang: dict[str, int] = {}
        self.before: dict[str, object] = {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        name = classify(scope["method"], scope["path"], scope.get("query_string", b""))
        self.seen.append(name)
        hook = self.before.pop(name, None)
        if callable(hook):
            hook()
        for plan, action in ((self.lose, "lose"), (self.hang, "hang")):
            if plan.get(name, 0) > 0:
                plan[name] -= 1

                async def discard(message: Message) -> None:
                    pass

                await self.app(scope, receive, discard)  # the plane acts on it
                if action == "lose":
                    await _drop_connection(send)
                else:
                    while (await receive())["type"] != "http.disconnect":
                        pass
                return
        await self.app(scope, receive, send)


@pytest.fixture(params=MODES)
def mode(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def plane() -> LocalControlPlane:
    return LocalControlPlane(boot_seconds=0, hotload_seconds=0.05, delete_seconds=0.05)


@pytest.fixture
def loser(plane: LocalControlPlane) -> AnswerLoser:
    wrapper = AnswerLoser(plane.app)
    plane.__dict__["app"] = wrapper  # in front of both transports
    return wrapper


@pytest.fixture
def reach(
    plane: LocalControlPlane, mode: str, loser: AnswerLoser
) -> Iterator[tuple[str, httpx.ASGITransport | None]]:
    with endpoint(plane, mode) as pair:
        yield pair


def started(plane: LocalControlPlane, identity: str) -> int:
    return sum(1 for e in plane.events if e.kind == "hotload_started" and e.detail == identity)


async def test_lost_hotload_answer_is_not_resent(
    plane: LocalControlPlane, loser: AnswerLoser, reach: tuple[str, httpx.ASGITransport | None]
) -> None:
    """A hot-load POST that landed but lost its answer is confirmed by status, not re-sent."""
    plane.create_deployment("d", BASE_MODEL)
    loser.lose["hotload"] = 1
    base_url, transport = reach
    async with async_manager(base_url, transport, account_id="local") as fw:
        status = await fw.hotload_and_wait("d", BASE_MODEL, "s1", timeout_seconds=10, **FAST)
    assert status.serves("s1")
    assert plane.stats.requests["hotload"] == 1
    assert started(plane, "s1") == 1
    assert loser.seen[:2] == ["hotload", "hotload_status"]
    assert loser.seen.count("hotload") == 1


async def test_timed_out_hotload_is_checked_before_resending(
    plane: LocalControlPlane, loser: AnswerLoser, reach: tuple[str, httpx.ASGITransport | None]
) -> None:
    """A hot-load POST that timed out after landing is found in the status and not re-sent."""
    plane.create_deployment("d", BASE_MODEL)
    loser.hang["hotload"] = 1
    base_url, transport = reach
    async with async_manager(
        base_url,
        transport,
        account_id="local",
        timeouts=small_timeouts(operation_s=10, attempt_s=0.3),
    ) as fw:
        status = await fw.hotload_and_wait("d", BASE_MODEL, "s1", timeout_seconds=10, **FAST)
    assert status.serves("s1")
    assert plane.stats.requests["hotload"] == 1
    assert started(plane, "s1") == 1
    assert loser.seen.index("hotload_status") == loser.seen.index("hotload") + 1


async def test_unlanded_hotload_is_resent_after_a_status_check(
    plane: LocalControlPlane, loser: AnswerLoser, reach: tuple[str, httpx.ASGITransport | None]
) -> None:
    """A hot-load POST dropped before the server acted is re-sent, after the status says so."""
    plane.create_deployment("d", BASE_MODEL)
    plane.faults.add(Fault("drop", endpoint="hotload", times=1))
    base_url, transport = reach
    async with async_manager(base_url, transport, account_id="local") as fw:
        status = await fw.hotload_and_wait("d", BASE_MODEL, "s1", timeout_seconds=10, **FAST)
    assert status.serves("s1")
    # Re-sent only after status reads over the lag window showed nothing of it.
    resent = loser.seen.index("hotload", 1)
    assert loser.seen[0] == "hotload"
    assert set(loser.seen[1:resent]) == {"hotload_status"}
    assert resent > 1
    assert started(plane, "s1") == 1


async def test_lost_create_answer_reconciles_through_get(
    plane: LocalControlPlane, loser: AnswerLoser, reach: tuple[str, httpx.ASGITransport | None]
) -> None:
    """A create that landed but lost its answer is found by GET, not created twice."""
    loser.lose["create"] = 1
    base_url, transport = reach
    async with async_manager(base_url, transport, account_id="local") as fw:
        info = await fw.create_or_get(config("d"), timeout_s=10)
    assert info.deployment_id == "d"
    assert plane.stats.requests["create"] == 1
    assert [e.kind for e in plane.events].count("created") == 1
    assert loser.seen == ["get", "create", "get"]


async def test_timed_out_create_reconciles_through_get(
    plane: LocalControlPlane, loser: AnswerLoser, reach: tuple[str, httpx.ASGITransport | None]
) -> None:
    """A create that timed out after landing is found by GET, not created twice."""
    loser.hang["create"] = 1
    base_url, transport = reach
    async with async_manager(
        base_url,
        transport,
        account_id="local",
        timeouts=small_timeouts(operation_s=10, attempt_s=0.3),
    ) as fw:
        info = await fw.create_or_get(config("d"), timeout_s=10)
    assert info.deployment_id == "d"
    assert plane.stats.requests["create"] == 1
    assert [e.kind for e in plane.events].count("created") == 1


async def test_racing_create_reconciles_through_409(
    plane: LocalControlPlane, loser: AnswerLoser, reach: tuple[str, httpx.ASGITransport | None]
) -> None:
    """A create that loses a race (409) returns the deployment the other creator made."""
    loser.before["create"] = lambda: plane.create_deployment("d", BASE_MODEL)
    base_url, transport = reach
    async with async_manager(base_url, transport, account_id="local") as fw:
        info = await fw.create_or_get(config("d"), timeout_s=10)
    assert info.deployment_id == "d"
    assert plane.stats.requests["create"] == 1  # ours, answered 409; never re-sent
    assert [e.kind for e in plane.events].count("created") == 1  # the racer's
    assert loser.seen == ["get", "create", "get"]


async def test_retried_delete_is_harmless(
    plane: LocalControlPlane, loser: AnswerLoser, reach: tuple[str, httpx.ASGITransport | None]
) -> None:
    """A DELETE whose answer was lost is re-sent, and the second one changes nothing."""
    plane.create_deployment("d", BASE_MODEL)
    loser.lose["delete"] = 1
    base_url, transport = reach
    async with async_manager(base_url, transport, account_id="local") as fw:
        await fw.delete("d", wait=True, timeout_s=10)
        assert await fw.get("d") is None
    assert plane.stats.requests["delete"] == 2
    assert "d" not in list(plane.state)


async def test_retried_patches_are_harmless(
    plane: LocalControlPlane, loser: AnswerLoser, reach: tuple[str, httpx.ASGITransport | None]
) -> None:
    """Update and scale PATCHes whose answers were lost are re-sent to the same end state."""
    plane.create_deployment("d", BASE_MODEL, 2)
    loser.lose["update"] = 1
    loser.lose["scale"] = 1
    base_url, transport = reach
    async with async_manager(base_url, transport, account_id="local") as fw:
        updated = await fw.update("d", {"hotLoadTrainerJob": TRAINER})
        scaled = await fw.scale_to_zero("d")
        info = await fw.get("d")
    assert updated.hot_load_trainer_job == TRAINER
    assert scaled is not None
    assert info is not None
    assert (info.min_replica_count, info.max_replica_count) == (0, 0)
    assert info.hot_load_trainer_job == TRAINER
    assert info.state != DeploymentState.FAILED
    assert plane.stats.requests["update"] == plane.stats.requests["scale"] == 2
