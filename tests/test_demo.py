"""`fireworks-deploy demo`, its RL loop (`_demo.run_demo`) and the progress display."""

from __future__ import annotations

import io
import json
import os
import signal
import subprocess
import sys
from typing import Any

import anyio
import pytest

from fireworks_deploy import AsyncDeploymentManager, IncrementalSnapshotMetadata
from fireworks_deploy import _progress as progress_module
from fireworks_deploy._cli import main
from fireworks_deploy._demo import (
    DemoOptions,
    DemoReport,
    FakeTrainer,
    Sampler,
    delta_metadata,
    run_demo,
)
from fireworks_deploy._models import HotloadStatus, LoadingState, ReplicaStatus
from fireworks_deploy._progress import Progress, describe_replicas, format_table, use_live
from fireworks_deploy.local import LocalControlPlane, LocalServer
from fireworks_deploy.local._state import StateError

FAST = ["--boot-seconds", "0.2", "--hotload-seconds", "0.1"]
SECRET = "fw-demo-SECRET-key-51c0"
MODEL = "accounts/fireworks/models/qwen3-8b"


def _env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith("FIREWORKS_")}


def _demo_json(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, dict[str, Any], str]:
    code = main(["demo", "--json", *argv])
    captured = capsys.readouterr()
    return code, json.loads(captured.out), captured.err


# -- the command ---------------------------------------------------------------------------------


def test_demo_subprocess_small() -> None:
    """`python -m fireworks_deploy demo --deployments 2 --steps 2` exits 0 with a timing summary."""
    proc = subprocess.run(
        [sys.executable, "-m", "fireworks_deploy", "demo", "--deployments", "2", "--steps", "2"],
        capture_output=True,
        text=True,
        timeout=60,
        env=_env(),
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert "embedded local control plane" in lines[0]
    assert "Timing summary" in proc.stdout
    for phase in ("create 2 deployments", "boot until all ready", "hot-load step 0 (base)"):
        assert phase in proc.stdout
    assert "hot-load step 1 (delta)" in proc.stdout
    assert "sampling" in proc.stdout
    assert "cleanup (scale to zero, delete)" in proc.stdout
    assert lines[-1].startswith("total")
    assert proc.stderr == ""


def test_demo_json_report(capsys: pytest.CaptureFixture[str]) -> None:
    """`--json` prints one document: a base then deltas chained, weights changed, all deleted."""
    code, doc, err = _demo_json(capsys, "--deployments", "2", "--steps", "3", *FAST)
    assert code == 0
    assert doc["ok"] is True
    assert doc["deployments"] == ["demo-0", "demo-1"]
    steps = doc["steps"]
    assert [s["kind"] for s in steps] == ["base", "delta", "delta"]
    assert steps[0]["previous_snapshot_identity"] is None
    assert steps[1]["previous_snapshot_identity"] == steps[0]["identity"]
    assert steps[2]["previous_snapshot_identity"] == steps[1]["identity"]
    for step in steps:
        assert step["loaded"] == ["demo-0", "demo-1"]
        assert step["sampled"] == 4
        assert step["changed"] == step["sampled"]
    assert sorted(doc["cleanup"]["deleted"]) == ["demo-0", "demo-1"]
    assert doc["cleanup"]["failed"] == {}
    assert [p["phase"] for p in doc["phases"]] == [
        "create 2 deployments",
        "boot until all ready",
        "cleanup (scale to zero, delete)",
    ]
    assert "embedded local control plane" in err.splitlines()[0]  # narrative on stderr


def test_demo_failed_hotload_rebases_and_exits_4(capsys: pytest.CaptureFixture[str]) -> None:
    """A failed hot-load is reported; the next step is a full base; cleanup still runs; exit 4."""
    code, doc, err = _demo_json(
        capsys,
        "--deployments",
        "2",
        "--steps",
        "3",
        "--fault",
        "hotload_error:deployment=demo-1,identity=demo-step-0001-delta",
        *FAST,
    )
    assert code == 4
    assert doc["ok"] is False
    step1, step2 = doc["steps"][1], doc["steps"][2]
    assert list(step1["failed"]) == ["demo-1"]
    assert step1["loaded"] == ["demo-0"]
    assert step2["kind"] == "base"  # the fleet no longer shares one served snapshot
    assert step2["previous_snapshot_identity"] is None
    assert step2["loaded"] == ["demo-0", "demo-1"]
    assert sorted(doc["cleanup"]["deleted"]) == ["demo-0", "demo-1"]
    assert err.splitlines()[-1] == (
        "error: The demo finished with failures: step 1 failed on demo-1."
    )


def test_demo_boot_failure_cleans_up(capsys: pytest.CaptureFixture[str]) -> None:
    """A deployment that fails to boot stops the loop; everything created is still deleted."""
    code, doc, err = _demo_json(
        capsys,
        "--deployments",
        "2",
        "--steps",
        "2",
        "--fault",
        "boot_failure:deployment=demo-0",
        *FAST,
    )
    assert code == 4
    assert doc["steps"] == []
    assert "demo-0" in doc["error"]
    assert sorted(doc["cleanup"]["deleted"]) == ["demo-0", "demo-1"]
    assert err.splitlines()[-1].startswith(
        "error: waiting for the demo deployments failed for 1 of 2"
    )


def test_demo_against_a_server_never_touches_other_deployments(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """With --base-url it uses that server, refuses an existing id, and deletes only its own."""
    plane = LocalControlPlane(boot_seconds=0.2, hotload_seconds=0.1, delete_seconds=0.05)
    plane.create_deployment("keep-me", MODEL)
    plane.create_deployment("mine-1", MODEL)  # collides with the demo's second id
    with LocalServer(plane) as server:
        base = ["--base-url", server.base_url, "--api-key", SECRET]
        code, doc, err = _demo_json(capsys, *base, "--deployments", "1", "--steps", "1")
        assert code == 0, err
        assert doc["control_plane"] == server.base_url
        assert doc["deployments"][0].startswith("demo-")
        code, doc, err = _demo_json(
            capsys, *base, "--deployments", "2", "--steps", "1", "--id-prefix", "mine"
        )
    assert code == 4
    assert "already exists" in doc["error"]
    assert doc["cleanup"]["deleted"] == ["mine-0"]
    assert SECRET not in err
    assert _alive(plane) == {"keep-me", "mine-1"}


def test_demo_fault_needs_the_embedded_plane(capsys: pytest.CaptureFixture[str]) -> None:
    """--fault with --base-url is a usage error."""
    code = main(["demo", "--base-url", "http://127.0.0.1:1", "--api-key", "k", "--fault", "drop"])
    assert code == 2
    assert "embedded control plane only" in capsys.readouterr().err


# -- the loop ------------------------------------------------------------------------------------


@pytest.fixture
def plane() -> LocalControlPlane:
    return LocalControlPlane(boot_seconds=0.2, hotload_seconds=0.1, delete_seconds=0.05)


class _CancelOn(Progress):
    """Plain progress that cancels a scope when a log line starts with `prefix`."""

    def __init__(self, prefix: str, scope: anyio.CancelScope) -> None:
        super().__init__(io.StringIO(), live=False)
        self.prefix = prefix
        self.scope = scope
        self.lines: list[str] = []

    def log(self, message: str, *, style: str | None = None) -> None:
        self.lines.append(message)
        if message.startswith(self.prefix):
            self.scope.cancel()


async def _run(
    plane: LocalControlPlane, progress: Progress, options: DemoOptions
) -> DemoReport | None:
    async with AsyncDeploymentManager(
        api_key=SECRET, base_url="http://fireworks.test", transport=plane.transport()
    ) as manager:
        sampler = Sampler(manager.inference_url, SECRET, transport=plane.transport())
        try:
            return await run_demo(manager, options, sampler, progress, control_plane="test")
        finally:
            await sampler.aclose()


def _alive(plane: LocalControlPlane) -> set[str]:
    """Deployments that exist and are not being deleted."""
    alive = set()
    for deployment_id in list(plane.state):
        try:
            view = plane.state.get(plane.account, deployment_id)
        except StateError:  # gone
            continue
        if view.state not in ("DELETING", "DELETED"):
            alive.add(deployment_id)
    return alive


@pytest.mark.parametrize("prefix", ["All 2 deployments are ready", "Base weights", "Step 1:"])
async def test_cancellation_still_cleans_up(plane: LocalControlPlane, prefix: str) -> None:
    """Cancelling the loop (as Ctrl-C does) at any phase deletes what it created, then stops."""
    options = DemoOptions(deployments=2, steps=3, poll_interval_s=0.05)
    with anyio.CancelScope() as scope:
        progress = _CancelOn(prefix, scope)
        await _run(plane, progress, options)
        pytest.fail("the cancelled loop returned")
    assert scope.cancelled_caught
    assert "Cleaned up 2 deployments." in progress.lines
    assert _alive(plane) == set()


async def test_loop_reports_phases(plane: LocalControlPlane) -> None:
    """The report has every phase and one entry per step; summary rows end with the total."""
    report = await _run(
        plane, Progress(io.StringIO(), live=False), DemoOptions(deployments=1, steps=2)
    )
    assert report is not None
    assert report.ok
    rows = report.summary_rows()
    assert [r[0] for r in rows] == [
        "create 1 deployment",
        "boot until all ready",
        "hot-load step 0 (base)",
        "hot-load step 1 (delta)",
        "sampling",
        "cleanup (scale to zero, delete)",
        "total",
    ]
    assert report.completions == 3 * 2  # baseline + 2 steps, 2 prompts each


def test_fake_trainer_and_metadata() -> None:
    """Snapshots are named by step and kind; deltas carry arc_v2 and "alder32" (sic)."""
    trainer = FakeTrainer("run")
    assert trainer.save(0, full=True).identity == "run-step-0000-base"
    assert trainer.save(3, full=False).identity == "run-step-0003-delta"
    assert delta_metadata("run-step-0000-base") == IncrementalSnapshotMetadata(
        previous_snapshot_identity="run-step-0000-base",
        compression_format="arc_v2",
        checksum_format="alder32",
    )


# -- progress ------------------------------------------------------------------------------------


def _status(*stages: tuple[str, str | None]) -> HotloadStatus:
    return HotloadStatus(
        deployment_id="d",
        replicas=tuple(
            ReplicaStatus(
                identity=f"pod-{i}",
                readiness=stage == "done",
                current_snapshot_identity=current,
                loading_state=LoadingState(stage=stage, target_snapshot_identity="s1"),
            )
            for i, (stage, current) in enumerate(stages)
        ),
    )


def test_plain_progress_prints_one_line_per_change() -> None:
    """Plain mode prints a line only when the fleet's view changes, and every failure."""
    stream = io.StringIO()
    with Progress(stream, live=False) as progress:
        progress.deployment("a", "CREATING")
        progress.refresh()
        progress.refresh()
        progress.deployment("a", "READY")
        progress.refresh()
        progress.replicas("a", _status(("loading", None), ("done", "s1")), "s1")
        progress.refresh()
        progress.finish("a", "boom", ok=False)
    lines = [line.split("] ", 1)[1] for line in stream.getvalue().splitlines()]
    assert lines == [
        "a: CREATING",
        "a: READY",
        "a: pod-0 loading, pod-1 serving",
        "a: FAILED: boom",
    ]


def test_plain_progress_counts_states_of_a_large_fleet() -> None:
    """Beyond a few deployments, a plain line counts states instead of naming each."""
    stream = io.StringIO()
    progress = Progress(stream, live=False)
    for i in range(6):
        progress.deployment(f"d{i}", "READY" if i < 2 else "CREATING")
    progress.refresh()
    assert stream.getvalue().rstrip().endswith("2 READY, 4 CREATING")


def test_quiet_progress_prints_nothing() -> None:
    stream = io.StringIO()
    with Progress(stream, enabled=False) as progress:
        progress.log("hello")
        progress.deployment("a", "READY")
        progress.refresh()
        progress.finish("a", "x", ok=False)
        progress.print_table("t", ["a"], [["b"]])
    assert stream.getvalue() == ""


def test_live_progress_renders_a_rich_table() -> None:
    """Live mode (a terminal) draws a table of deployments, states and replica stages."""
    stream = io.StringIO()
    with Progress(stream, live=True, title="Hot-loading s1") as progress:
        progress.deployment("demo-0", "READY")
        progress.replicas("demo-0", _status(("downloading", None)), "s1")
        progress.log("a narrative line")
        progress.print_table("Summary", ["phase", "seconds"], [["boot", "1.00"]])
        progress.clear_rows("next")
    text = stream.getvalue()
    assert "a narrative line" in text
    assert "pod-0 downloading" in text
    assert "Summary" in text
    assert "boot" in text


def test_without_rich_or_a_terminal_progress_is_plain(monkeypatch: pytest.MonkeyPatch) -> None:
    """No rich installed, TERM=dumb, or not a terminal: plain lines."""

    class Tty(io.StringIO):
        def isatty(self) -> bool:
            return True

    monkeypatch.setenv("TERM", "xterm")
    assert use_live(Tty())
    assert not use_live(io.StringIO())
    monkeypatch.setattr(progress_module, "_rich_available", lambda: False)
    assert not use_live(Tty())
    assert not Progress(Tty()).live


def test_format_helpers() -> None:
    assert format_table(["A", "BB"], [["xyz", "1"]]) == "A    BB\nxyz  1\n"
    assert describe_replicas(_status()) == "no replicas yet"


@pytest.fixture
def _env_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FIREWORKS_API_KEY", SECRET)


@pytest.mark.usefixtures("_env_key")
def test_env_key_alone_keeps_the_demo_local(capsys: pytest.CaptureFixture[str]) -> None:
    """An API key in the environment does not send the demo to a real server; it says so."""
    code = main(["demo", "--deployments", "1", "--steps", "0", *FAST])
    out = capsys.readouterr().out
    assert code == 0
    assert "embedded local control plane" in out.splitlines()[0]
    assert "FIREWORKS_API_KEY is set but not used" in out
    assert SECRET not in out


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")
def test_ctrl_c_cleans_up_and_exits_130() -> None:
    """SIGINT mid-loop cancels it, still deletes every deployment, and exits 130."""
    with subprocess.Popen(  # noqa: S603 - our own interpreter and module
        [sys.executable, "-m", "fireworks_deploy", "demo", "--steps", "50", *FAST],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=_env(),
    ) as proc:
        assert proc.stdout is not None
        for line in proc.stdout:
            if "Step 1:" in line:
                proc.send_signal(signal.SIGINT)
                break
        out, err = proc.communicate(timeout=30)
    assert proc.returncode == 130
    assert "Cleaned up 3 deployments." in out
    assert err == "error: interrupted\n"
