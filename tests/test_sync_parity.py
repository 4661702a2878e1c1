"""Every public async method has a blocking twin with the same name and parameters."""

from __future__ import annotations

import inspect

import pytest

from fireworks_deploy import AsyncDeploymentManager, DeploymentManager

#: Async-only names and their blocking counterparts.
RENAMED = {"aclose": "close"}


def public_coroutines() -> list[str]:
    return sorted(
        name
        for name, member in inspect.getmembers(AsyncDeploymentManager)
        if not name.startswith("_") and inspect.iscoroutinefunction(member)
    )


def parameters(func: object) -> list[tuple[str, object, object]]:
    return [(p.name, p.kind, p.default) for p in inspect.signature(func).parameters.values()]  # type: ignore[arg-type]


def test_there_is_something_to_compare() -> None:
    """The async manager exposes the seed's methods."""
    names = set(public_coroutines())
    assert {
        "create_or_get",
        "wait_for_ready",
        "get",
        "update",
        "scale_to_zero",
        "delete",
        "hotload",
        "hotload_status",
        "wait_for_hotload",
        "hotload_and_wait",
        "warmup",
    } <= names


@pytest.mark.parametrize("name", public_coroutines())
def test_sync_twin_has_same_signature(name: str) -> None:
    """The blocking twin has the same name and identical parameter names, kinds and defaults."""
    twin_name = RENAMED.get(name, name)
    twin = getattr(DeploymentManager, twin_name, None)
    assert twin is not None, f"DeploymentManager lacks {twin_name}()"
    assert not inspect.iscoroutinefunction(twin)
    assert not hasattr(twin, "__wrapped__"), "twins must not use functools.wraps"
    if name in RENAMED:
        assert parameters(twin) == parameters(getattr(AsyncDeploymentManager, name))
        return
    assert parameters(twin) == parameters(getattr(AsyncDeploymentManager, name))


def test_public_properties_match() -> None:
    """Public properties exist on both managers."""
    props = {n for n, m in inspect.getmembers(AsyncDeploymentManager) if isinstance(m, property)}
    sync_props = {n for n, m in inspect.getmembers(DeploymentManager) if isinstance(m, property)}
    assert props <= sync_props


def test_no_a_prefixed_twins() -> None:
    """Neither manager has `a`-prefixed duplicates of another method (aclose excepted)."""
    for cls in (AsyncDeploymentManager, DeploymentManager):
        names = {n for n in dir(cls) if not n.startswith("_")}
        doubles = {n for n in names if n.startswith("a") and n[1:] in names and n != "aclose"}
        assert not doubles, f"{cls.__name__} has a-prefixed twins: {doubles}"
    sync_names = {n for n in dir(DeploymentManager) if not n.startswith("_")}
    assert not any(n.startswith("a") and n[1:] in set(public_coroutines()) for n in sync_names)


def test_context_managers() -> None:
    """async with / with and aclose / close exist on the respective managers."""
    assert hasattr(AsyncDeploymentManager, "__aenter__")
    assert hasattr(AsyncDeploymentManager, "__aexit__")
    assert hasattr(DeploymentManager, "__enter__")
    assert hasattr(DeploymentManager, "__exit__")
    assert parameters(DeploymentManager.__init__) == parameters(AsyncDeploymentManager.__init__)
