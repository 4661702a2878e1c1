"""An unclosed DeploymentManager never keeps the process alive: each way a script ends, in a child.

Every child runs with ``-W error`` against a local control plane served over loopback by the test
process, leaves its managers open, and must exit with the usual code, well within a generous
bound, and with nothing on stderr from our threads: no traceback, warning, "coroutine was never
awaited" or "Task was destroyed".
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from fireworks_deploy.local import Fault, LocalControlPlane, LocalServer

#: Generous bound on a child's whole life (start-up, work, exit) on a loaded machine.
EXIT_BOUND_S = 10.0
#: The manager's own bound on closing; a teardown this long means something timed out.
UNWIND_S = 5.0

#: `_report` is registered before fireworks_deploy is imported, so it runs after the manager's
#: exit hook: it reports how long our part of the interpreter exit took, then runs AFTER_EXIT.
PRELUDE = """\
import atexit, signal, sys, threading, time
signal.signal(signal.SIGINT, signal.default_int_handler)  # even if the runner ignores SIGINT
_END = []
AFTER_EXIT = []
def _end() -> None:
    _END.append(time.monotonic())
def _report() -> None:
    if _END:
        print(f"teardown={time.monotonic() - _END[0]:.4f}", flush=True)
    for func in AFTER_EXIT:
        func()
atexit.register(_report)
from fireworks_deploy import DeploymentManager, ManagerClosedError
URL = sys.argv[1]
"""

#: What stderr must never show.
FORBIDDEN = (
    "Exception in thread",
    "Exception ignored",
    "Warning",
    "never awaited",
    "Task was destroyed",
    "fireworks-deploy-portal",
    "Event loop is closed",
)


@pytest.fixture
def plane() -> LocalControlPlane:
    return LocalControlPlane(boot_seconds=0.0, hotload_seconds=0.0)


@pytest.fixture
def server(plane: LocalControlPlane) -> Iterator[LocalServer]:
    with LocalServer(plane) as running:
        yield running


def start(tmp_path: Path, body: str, server: LocalServer) -> subprocess.Popen[str]:
    """Start a child running PRELUDE + body with ``-W error``."""
    script = tmp_path / "child.py"
    script.write_text(PRELUDE + textwrap.dedent(body))
    env = {k: v for k, v in os.environ.items() if not k.startswith(("FIREWORKS_", "PYTHON"))}
    return subprocess.Popen(  # noqa: S603 - our own interpreter and script
        [sys.executable, "-W", "error", str(script), server.base_url],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )


def finish(child: subprocess.Popen[str], started: float) -> tuple[int, str, str]:
    """Wait for the child (at most EXIT_BOUND_S since `started`); its code, stdout, stderr."""
    try:
        out, err = child.communicate(timeout=max(0.1, EXIT_BOUND_S - (time.monotonic() - started)))
    except subprocess.TimeoutExpired:
        child.kill()
        out, err = child.communicate()
        pytest.fail(f"the child did not exit within {EXIT_BOUND_S}s\nstdout:{out}\nstderr:{err}")
    assert time.monotonic() - started < EXIT_BOUND_S
    return child.returncode, out, err


def run(tmp_path: Path, body: str, server: LocalServer) -> tuple[int, str, str]:
    started = time.monotonic()
    return finish(start(tmp_path, body, server), started)


def assert_clean(err: str, tracebacks: int = 0) -> None:
    """stderr holds `tracebacks` tracebacks (the main thread's) and nothing of ours."""
    for text in FORBIDDEN:
        assert text not in err, err
    assert err.count("Traceback (most recent call last)") == tracebacks, err


def teardown_s(out: str) -> float:
    """Our part of the exit, as the child measured it."""
    match = re.search(r"teardown=([0-9.]+)", out)
    assert match is not None, out
    seconds = float(match[1])
    assert seconds < UNWIND_S, f"closing at exit timed out ({seconds}s)"
    return seconds


def wait_until(condition: Callable[[], bool], timeout: float = EXIT_BOUND_S) -> None:
    """Poll for `condition` (a condition, not a fixed wait)."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not reached"
        time.sleep(0.01)


class TestExitPaths:
    def test_normal_end(self, tmp_path: Path, server: LocalServer) -> None:
        """A script that ends with used, unused and collected managers open exits 0 at once."""
        code, out, err = run(
            tmp_path,
            """
            used = DeploymentManager(api_key="k", account_id="local", base_url=URL)
            assert used.get("absent") is None  # a pooled connection stays open
            many = [DeploymentManager(api_key="k", base_url=URL) for _ in range(10)]
            for mgr in many[:3]:
                mgr.list_deployments()
            DeploymentManager(api_key="k", base_url=URL)  # collected at once, never closed
            unused = DeploymentManager(api_key="k")
            print("done", flush=True)
            _end()
            """,
            server,
        )
        assert code == 0, err
        assert "done" in out
        assert_clean(err)
        teardown_s(out)

    def test_uncaught_exception(self, tmp_path: Path, server: LocalServer) -> None:
        """An uncaught exception exits 1 with its own traceback only."""
        code, out, err = run(
            tmp_path,
            """
            mgr = DeploymentManager(api_key="k", account_id="local", base_url=URL)
            mgr.list_deployments()
            _end()
            raise RuntimeError("boom")
            """,
            server,
        )
        assert code == 1
        assert_clean(err, tracebacks=1)
        assert err.rstrip().endswith("RuntimeError: boom")
        teardown_s(out)

    def test_sys_exit(self, tmp_path: Path, server: LocalServer) -> None:
        """sys.exit(3) exits 3 with an empty stderr."""
        code, out, err = run(
            tmp_path,
            """
            mgr = DeploymentManager(api_key="k", account_id="local", base_url=URL)
            mgr.list_deployments()
            _end()
            sys.exit(3)
            """,
            server,
        )
        assert code == 3
        assert err == ""
        teardown_s(out)

    @pytest.mark.skipif(sys.platform == "win32", reason="needs POSIX signals")
    def test_ctrl_c_while_a_call_blocks(
        self, tmp_path: Path, server: LocalServer, plane: LocalControlPlane
    ) -> None:
        """SIGINT during a call to a server that never answers exits as Python does on Ctrl-C."""
        hang = plane.faults.add(Fault("hang", endpoint="get", times=None))
        started = time.monotonic()
        child = start(
            tmp_path,
            """
            mgr = DeploymentManager(api_key="k", account_id="local", base_url=URL)
            try:
                mgr.get("slow")
            except KeyboardInterrupt:
                _end()
                raise
            """,
            server,
        )
        wait_until(lambda: hang.fired >= 1 or child.poll() is not None)
        child.send_signal(signal.SIGINT)
        code, out, err = finish(child, started)
        assert code == -signal.SIGINT, err
        assert_clean(err, tracebacks=1)
        assert err.rstrip().endswith("KeyboardInterrupt")
        teardown_s(out)

    def test_daemon_thread_in_a_call_at_exit(
        self, tmp_path: Path, server: LocalServer, plane: LocalControlPlane
    ) -> None:
        """A call in flight from a daemon thread at exit raises ManagerClosedError there."""
        hang = plane.faults.add(Fault("hang", endpoint="get", times=None))
        started = time.monotonic()
        child = start(
            tmp_path,
            """
            handled = threading.Event()
            outcome = []
            def report_outcome() -> None:
                handled.wait(5)
                print("daemon:", outcome, flush=True)
            AFTER_EXIT.append(report_outcome)
            mgr = DeploymentManager(api_key="k", account_id="local", base_url=URL)
            def work() -> None:
                try:
                    mgr.get("slow")
                except ManagerClosedError as exc:
                    outcome.append(type(exc).__name__)
                finally:
                    handled.set()
            threading.Thread(target=work, daemon=True).start()
            sys.stdin.readline()  # the parent says the request has reached the server
            _end()
            """,
            server,
        )
        wait_until(lambda: hang.fired >= 1 or child.poll() is not None)
        assert child.stdin is not None
        child.stdin.write("go\n")
        child.stdin.flush()
        code, out, err = finish(child, started)
        assert code == 0, err
        assert "daemon: ['ManagerClosedError']" in out
        assert_clean(err)

    def test_non_daemon_thread_in_a_call_finishes(
        self, tmp_path: Path, server: LocalServer, plane: LocalControlPlane
    ) -> None:
        """A worker thread in a call when the main thread ends gets its answer; exit code 0."""
        slow = plane.faults.add(Fault("latency", endpoint="get", seconds=0.5))
        started = time.monotonic()
        child = start(
            tmp_path,
            """
            mgr = DeploymentManager(api_key="k", account_id="local", base_url=URL)
            def work() -> None:
                print("worker:", mgr.get("slow"), flush=True)
            threading.Thread(target=work).start()
            sys.stdin.readline()  # the parent says the request has reached the server
            _end()
            """,
            server,
        )
        wait_until(lambda: slow.fired >= 1 or child.poll() is not None)
        assert child.stdin is not None
        child.stdin.write("go\n")
        child.stdin.flush()
        code, out, err = finish(child, started)
        assert code == 0, err
        assert "worker: None" in out
        assert_clean(err)

    def test_manager_made_in_a_running_event_loop(
        self, tmp_path: Path, server: LocalServer
    ) -> None:
        """A manager created and used inside a running loop (a notebook) and left open exits 0."""
        code, out, err = run(
            tmp_path,
            """
            import asyncio
            KEEP = []
            async def cell() -> None:
                mgr = DeploymentManager(api_key="k", account_id="local", base_url=URL)
                assert mgr.get("absent") is None
                KEEP.append(mgr)
            asyncio.run(cell())
            _end()
            """,
            server,
        )
        assert code == 0, err
        assert_clean(err)
        teardown_s(out)

    @pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
    def test_forked_child_exits(self, tmp_path: Path, server: LocalServer) -> None:
        """A forked child that inherits an open manager ends normally with its own exit code."""
        code, out, err = run(
            tmp_path,
            """
            import os, warnings
            mgr = DeploymentManager(api_key="k", account_id="local", base_url=URL)
            mgr.list_deployments()
            with warnings.catch_warnings():  # 3.12+: fork() of a multi-threaded process
                warnings.simplefilter("ignore", DeprecationWarning)
                pid = os.fork()
            if pid == 0:
                sys.exit(7)  # a normal exit: the exit hooks run in the child too
            print("child:", os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]), flush=True)
            _end()
            """,
            server,
        )
        assert code == 0, err
        assert "child: 7" in out
        assert_clean(err)
        teardown_s(out)
