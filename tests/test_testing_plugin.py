"""The pytest plugin `fireworks_deploy.testing`, exercised the way users enable it (pytester)."""

from __future__ import annotations

from pathlib import Path

import pytest

pytest_plugins = ["pytester"]

EXAMPLE = Path(__file__).parent.parent / "examples" / "pytest_plugin_example"
#: A user's project settings: warnings are errors, pytest-asyncio's loop scope is set.
INI = "[pytest]\nasyncio_default_fixture_loop_scope = function\nfilterwarnings = error\n"


@pytest.fixture(autouse=True)
def _ini(pytester: pytest.Pytester) -> None:
    pytester.makeini(INI)


@pytest.fixture
def example(pytester: pytest.Pytester) -> pytest.Pytester:
    """A scratch project holding the example conftest and test file."""
    for name in ("conftest.py", "test_my_loop.py"):
        pytester.makepyfile(**{Path(name).stem: (EXAMPLE / name).read_text()})
    return pytester


def test_example_suite_passes(example: pytest.Pytester) -> None:
    """The example's tests (sync, async via anyio, loopback server) all pass."""
    result = example.runpytest_subprocess("-p", "no:cacheprovider")
    result.assert_outcomes(passed=5)


def test_sync_fixtures_do_not_need_pytest_asyncio(example: pytest.Pytester) -> None:
    """With pytest-asyncio disabled, the plugin loads and the sync tests pass."""
    example.makeini("[pytest]\nfilterwarnings = error\n")
    result = example.runpytest_subprocess(
        "-p", "no:cacheprovider", "-p", "no:asyncio", "-k", "not async"
    )
    result.assert_outcomes(passed=4, deselected=1)


def test_plane_options_can_be_overridden(pytester: pytest.Pytester) -> None:
    """Overriding `fireworks_plane_options` changes the control plane the fixtures share."""
    pytester.makeconftest('pytest_plugins = ["fireworks_deploy.testing"]\n')
    pytester.makepyfile(
        """
        import pytest

        @pytest.fixture
        def fireworks_plane_options(fireworks_plane_options):
            return {**fireworks_plane_options, "account": "acme", "api_key": "k-123"}

        def test_account(deployment_manager, fireworks_control_plane, fireworks_server):
            assert fireworks_control_plane.account == "acme"
            assert deployment_manager.resolve_account_id() == "acme"
            assert deployment_manager.list_deployments() == []
            assert fireworks_server.plane is fireworks_control_plane
        """
    )
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider")
    result.assert_outcomes(passed=1)


def test_async_manager_is_closed_after_the_test(pytester: pytest.Pytester) -> None:
    """The async fixture's manager is closed at teardown, also under pytest-asyncio."""
    pytester.makeconftest('pytest_plugins = ["fireworks_deploy.testing"]\n')
    pytester.makepyfile(
        """
        import pytest

        seen = []

        @pytest.mark.asyncio
        async def test_use(async_deployment_manager):
            seen.append(async_deployment_manager)
            assert await async_deployment_manager.list_deployments() == []

        def test_closed():
            assert seen[0].closed
        """
    )
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider")
    result.assert_outcomes(passed=2)
