"""Our managers as drop-in replacements for the official ``DeploymentManager`` (1.2.30).

* The surface: every public name of the official class (and the REST helpers scripts call),
  its instance attributes, and each method's parameters (names, order, kinds, defaults) exist on
  both of our managers; ``DeploymentConfig`` and ``DeploymentInfo`` read the same.
* The official training SDK's own ``WeightSyncer`` runs a base load and two deltas with our
  ``DeploymentManager`` handed in, against the local control plane, with no private flag set.
* ``examples/sync_legacy_script.py`` prints the same with the official client when only its
  import line is changed.

Run with the compat venv (``nox -s compat``).
"""

from __future__ import annotations

import dataclasses
import inspect
import os
import subprocess
import sys
import types
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import attrs
import httpx
import pytest

pytestmark = pytest.mark.compat

sdk = pytest.importorskip("fireworks.training.sdk")

from fireworks_deploy import (  # noqa: E402
    AsyncDeploymentManager,
    DeploymentConfig,
    DeploymentInfo,
    DeploymentManager,
)
from fireworks_deploy.local import LocalControlPlane, LocalServer  # noqa: E402

OFFICIAL = sdk.DeploymentManager
BASE = "accounts/fireworks/models/qwen3-8b"
#: Private helpers of the official client that real scripts call (the cookbook's raw reads).
REST_HELPERS = ("_get", "_post", "_patch", "_delete")
EXAMPLE = Path(__file__).parents[2] / "examples" / "sync_legacy_script.py"
OUR_IMPORT = "from fireworks_deploy import DeploymentConfig, DeploymentManager\n"
OFFICIAL_IMPORT = "from fireworks.training.sdk import DeploymentConfig, DeploymentManager\n"


# -- the surface ----------------------------------------------------------------------------------


def official_methods() -> list[str]:
    """Every public method of the official class, and the REST helpers."""
    names = [
        name
        for name, member in inspect.getmembers(OFFICIAL)
        if not name.startswith("_") and inspect.isfunction(member)
    ]
    return sorted([*names, *REST_HELPERS])


def official_properties() -> list[str]:
    return sorted(
        name
        for name, member in inspect.getmembers(OFFICIAL)
        if not name.startswith("_") and isinstance(member, property)
    )


def official_attributes() -> list[str]:
    """Public instance attributes, read off a live official manager (no request is sent)."""
    manager = OFFICIAL(api_key="k", base_url="http://127.0.0.1:9")
    try:
        return sorted(name for name in vars(manager) if not name.startswith("_"))
    finally:
        manager.close()


def signature_problems(
    official: Callable[..., Any], ours: Callable[..., Any], *, skip: tuple[str, ...] = ()
) -> list[str]:
    """How `ours` fails to accept every call written for `official` (empty: it accepts them).

    Each official parameter must exist in ours under the same name and with the same default;
    a positional one at the same position, a keyword-only one by keyword. Ours may add a default
    where the official has none, and add parameters only with defaults (and, when positional,
    after the official ones).
    """
    theirs = [
        p for p in inspect.signature(official).parameters.values() if p.name not in ("self", *skip)
    ]
    mine = [p for p in inspect.signature(ours).parameters.values() if p.name != "self"]
    by_name = {p.name: p for p in mine}
    positional = (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
    problems = []
    for index, param in enumerate(theirs):
        if param.kind is inspect.Parameter.VAR_KEYWORD:
            if not any(p.kind is inspect.Parameter.VAR_KEYWORD for p in mine):
                problems.append(f"**{param.name} is missing")
            continue
        match = by_name.get(param.name)
        if match is None:
            problems.append(f"{param.name} is missing")
            continue
        if param.kind in positional:
            if index >= len(mine) or mine[index].name != param.name:
                problems.append(f"{param.name} is not parameter {index + 1}")
            elif match.kind is not inspect.Parameter.POSITIONAL_OR_KEYWORD:
                problems.append(f"{param.name} cannot be passed by position and by name")
        elif match.kind not in (
            inspect.Parameter.KEYWORD_ONLY,
            inspect.Parameter.POSITIONAL_OR_KEYWORD,
        ):
            problems.append(f"{param.name} cannot be passed by name")
        if param.default is not inspect.Parameter.empty and match.default != param.default:
            problems.append(f"{param.name} defaults to {match.default!r}, not {param.default!r}")
    official_names = {p.name for p in theirs}
    for param in mine:
        if param.name in official_names or param.kind in (
            inspect.Parameter.VAR_KEYWORD,
            inspect.Parameter.VAR_POSITIONAL,
        ):
            continue
        if param.default is inspect.Parameter.empty:
            problems.append(f"{param.name} is required but the official client has no such name")
    return problems


def test_the_official_surface_is_what_we_compare() -> None:
    """The enumeration finds the official 1.2.30 names (so a rename there cannot pass vacuously)."""
    assert {"create_or_get", "hotload_check_status", "reattach_trainer", "close"} <= set(
        official_methods()
    )
    assert {"account_id", "last_hotload_error_message"} <= set(official_properties())
    assert {"api_key", "base_url", "inference_url", "boot_time_s"} <= set(official_attributes())


def test_signature_check_catches_a_difference() -> None:
    """The checker flags a missing, moved, renamed or re-defaulted parameter."""

    def official(self: object, a: str, b: int = 1, *, c: str | None = None) -> None: ...
    def moved(self: object, b: int = 1, a: str = "") -> None: ...
    def renamed(self: object, a: str, bb: int = 1, *, c: str | None = None) -> None: ...
    def redefaulted(self: object, a: str, b: int = 2, *, c: str | None = None) -> None: ...
    def extended(self: object, a: str, b: int = 1, d: int = 0, *, c: str | None = None) -> None: ...

    assert signature_problems(official, moved)
    assert signature_problems(official, renamed)
    assert signature_problems(official, redefaulted)
    assert signature_problems(official, extended) == []


@pytest.mark.parametrize("ours", [DeploymentManager, AsyncDeploymentManager])
@pytest.mark.parametrize("name", official_methods())
def test_every_official_method_with_its_parameters(ours: type, name: str) -> None:
    """Same name, parameters and defaults; a coroutine on the async manager, not on the sync."""
    method = getattr(ours, name, None)
    assert callable(method), f"{ours.__name__} lacks {name}()"
    assert inspect.iscoroutinefunction(method) is (ours is AsyncDeploymentManager), name
    assert signature_problems(getattr(OFFICIAL, name), method) == []


@pytest.mark.parametrize("ours", [DeploymentManager, AsyncDeploymentManager])
def test_constructor_accepts_official_calls(ours: type) -> None:
    """The official constructor's parameters (positions too). Its `**kwargs` only rejects the
    retired `account_id` (ours takes it by keyword) and ignores anything else; ours refuses a
    keyword it does not know."""
    assert "kwargs" in inspect.signature(OFFICIAL.__init__).parameters
    assert signature_problems(OFFICIAL.__init__, ours.__init__, skip=("kwargs",)) == []
    account_id = inspect.signature(ours.__init__).parameters["account_id"]
    assert account_id.kind is inspect.Parameter.KEYWORD_ONLY


@pytest.mark.parametrize("ours", [DeploymentManager, AsyncDeploymentManager])
@pytest.mark.parametrize("name", [*official_properties(), *official_attributes()])
def test_every_official_attribute(ours: type, name: str) -> None:
    """Properties and instance attributes are readable under the same names."""
    plane = LocalControlPlane()
    if ours is DeploymentManager:
        with ours(api_key="k", base_url="http://local.test", transport=plane.transport()) as mgr:
            value = getattr(mgr, name)
            if name == "account_id":  # resolved on first access, a str as in the official client
                assert value == plane.account
    else:
        mgr = ours(api_key="k", base_url="http://local.test", transport=plane.transport())
        getattr(mgr, name)  # no I/O: nothing to close until a request is made
        assert not mgr._http._clients


def test_deployment_config_fields_order_and_defaults() -> None:
    """Our DeploymentConfig has the official dataclass's fields, in order, with its defaults."""
    required = "(required)"
    theirs = [
        (f.name, required if f.default is dataclasses.MISSING else f.default)
        for f in dataclasses.fields(sdk.DeploymentConfig)
    ]
    mine = [
        (f.name, required if f.default is attrs.NOTHING else f.default)
        for f in attrs.fields(DeploymentConfig)
    ]
    assert mine == theirs
    for name in ("validate", "from_training_profile"):
        assert (
            signature_problems(getattr(sdk.DeploymentConfig, name), getattr(DeploymentConfig, name))
            == []
        )


def test_deployment_info_reads_the_same() -> None:
    """Every field of the official DeploymentInfo is readable on ours."""
    info = DeploymentInfo(
        deployment_id="d", name="accounts/a/deployments/d", state="READY", account_id="a"
    )
    for field in dataclasses.fields(sdk.deployment.DeploymentInfo):
        assert hasattr(info, field.name), field.name
    assert info.inference_model == "accounts/a/deployments/d"


# -- against the local control plane --------------------------------------------------------------


@pytest.fixture
def plane() -> LocalControlPlane:
    return LocalControlPlane(boot_seconds=0.3, hotload_seconds=0.2, delete_seconds=0.1)


@pytest.fixture
def server(plane: LocalControlPlane) -> Iterator[LocalServer]:
    with LocalServer(plane) as running:
        yield running


class FakeTrainer:
    """The part of a FiretitanTrainingClient that WeightSyncer uses: saving sampler weights."""

    def __init__(self) -> None:
        self.saved: list[tuple[str, str]] = []

    def save_weights_for_sampler_ext(self, name: str, checkpoint_type: str) -> Any:
        self.saved.append((name, checkpoint_type))
        return types.SimpleNamespace(snapshot_name=name)


@pytest.mark.timeout(120)
def test_weight_syncer_runs_base_and_two_deltas(
    server: LocalServer, plane: LocalControlPlane
) -> None:
    """The official WeightSyncer, given our DeploymentManager: base, delta, delta, all served."""
    try:
        from fireworks.training.sdk import weight_syncer
    except ImportError as exc:  # numpy & co. come with the training-sdk extra
        pytest.fail(f"install fireworks-ai[training-sdk]==1.2.30 (as nox -s compat does): {exc}")
    mgr = DeploymentManager(api_key="k", base_url=server.base_url)
    try:
        config = sdk.DeploymentConfig(
            deployment_id="syncer", base_model=BASE, min_replica_count=1, max_replica_count=1
        )
        mgr.create_or_get(config)
        mgr.wait_for_ready("syncer", timeout_s=60, poll_interval_s=0.1)
        trainer = FakeTrainer()
        syncer = weight_syncer.WeightSyncer(
            policy_client=trainer,
            deploy_mgr=mgr,
            deployment_id="syncer",
            base_model=BASE,
            hotload_timeout=60,
        )
        for step in range(3):
            assert syncer.save_and_hotload(f"step-{step}") == f"step-{step}"
            assert syncer.last_timing["hotload_time_s"] < 30
        assert trainer.saved == [("step-0", "base"), ("step-1", "delta"), ("step-2", "delta")]
        assert syncer.base_identity == "step-2"
        assert syncer.check_deployment_state() == "step-2"
        for step in range(3):
            assert plane.event_time("hotload_done", "syncer", f"step-{step}") is not None
            assert plane.stats.hotload_identities["syncer", f"step-{step}"] == 1
        sampler = syncer.get_deployment_sampler()
        try:
            assert sampler.model == f"accounts/{plane.account}/deployments/syncer"
            assert sampler.base_url == mgr.inference_url
        finally:
            sampler.close()
    finally:
        mgr.close()


@pytest.mark.timeout(120)
def test_official_config_and_except_clauses(server: LocalServer, plane: LocalControlPlane) -> None:
    """The official DeploymentConfig is taken as is; old `except` clauses catch our errors."""
    mgr = DeploymentManager(api_key="k", base_url=server.base_url)
    try:
        official = sdk.DeploymentConfig(
            deployment_id="cfg",
            base_model=BASE,
            max_replica_count=1,
            hot_load_transition_type="sync",
        )
        info = mgr.create_or_get(official)
        assert (info.deployment_id, info.hot_load_transition_type) == ("cfg", "SYNC")
        official.accept_shapeless_risk = True
        official.deployment_shape = "accounts/fireworks/deploymentShapes/some-shape"
        with pytest.raises(ValueError, match="accept_shapeless_risk"):
            mgr.create_or_get(official, force_recreate=True)
        with pytest.raises(httpx.HTTPStatusError) as status_error:
            mgr.update("missing", {"maxReplicaCount": 2}, "max_replica_count")
        assert status_error.value.response.status_code == 404
        plane.fail_boot("broken")
        mgr.create_or_get(sdk.DeploymentConfig(deployment_id="broken", base_model=BASE))
        with pytest.raises(RuntimeError, match="FAILED"):
            mgr.wait_for_ready("broken", timeout_s=30, poll_interval_s=0.1)
    finally:
        mgr.close()


def run_script(source: str, base_url: str, tmp_path: Path, name: str) -> str:
    script = tmp_path / name
    script.write_text(source)
    env = {k: v for k, v in os.environ.items() if not k.startswith("FIREWORKS_")}
    env |= {"FIREWORKS_BASE_URL": base_url, "FIREWORKS_API_KEY": "local-key"}
    proc = subprocess.run(  # noqa: S603 - our own interpreter and a script we wrote
        [sys.executable, "-W", "error", str(script)],
        capture_output=True,
        text=True,
        timeout=100,
        env=env,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proc.stderr == ""
    return proc.stdout


@pytest.mark.timeout(240)
def test_legacy_script_differs_only_by_its_import(tmp_path: Path) -> None:
    """examples/sync_legacy_script.py prints the same on the official client as on ours, each
    against a fresh local control plane."""
    source = EXAMPLE.read_text()
    assert source.count(OUR_IMPORT) == 1
    outputs = []
    for name, text in (
        ("ours.py", source),
        ("official.py", source.replace(OUR_IMPORT, OFFICIAL_IMPORT)),
    ):
        plane = LocalControlPlane(boot_seconds=0.3, hotload_seconds=0.2, delete_seconds=0.1)
        with LocalServer(plane) as server:
            outputs.append(run_script(text, server.base_url, tmp_path, name))
        assert plane.event_time("hotload_done", "legacy-script", "step-1") is not None
    ours, official = outputs
    assert "delete: done" in ours
    assert ours == official
