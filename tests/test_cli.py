"""The `fireworks-deploy` command line, run in process against a local control plane on loopback."""

from __future__ import annotations

import io
import json
import logging
import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from typing import Any

import attrs
import pytest

from fireworks_deploy import _cli
from fireworks_deploy._cli import main
from fireworks_deploy._cli._notices import describe
from fireworks_deploy._errors import APIConnectionError
from fireworks_deploy._progress import HEARTBEAT_S, Progress, plural
from fireworks_deploy.local import Fault, LocalControlPlane, LocalServer

SECRET = "fw-cli-SECRET-key-93b1"
MODEL = "accounts/fireworks/models/qwen3-8b"
COMMANDS = [
    "create",
    "get",
    "list",
    "wait",
    "hotload",
    "hotload-status",
    "warmup",
    "scale-to-zero",
    "delete",
    "demo",
]


@attrs.frozen
class Run:
    code: int
    out: str
    err: str

    def json(self) -> Any:
        return json.loads(self.out)


@pytest.fixture(scope="module")
def plane() -> LocalControlPlane:
    return LocalControlPlane(boot_seconds=0.2, hotload_seconds=0.1, delete_seconds=0.05)


@pytest.fixture(scope="module")
def server(plane: LocalControlPlane) -> Iterator[LocalServer]:
    with LocalServer(plane) as running:
        yield running


@pytest.fixture
def cli(
    server: LocalServer, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> Any:
    """Run the CLI in process against the loopback server; every run also checks the key."""
    monkeypatch.setenv("FIREWORKS_BASE_URL", server.base_url)
    monkeypatch.setenv("FIREWORKS_API_KEY", SECRET)

    def run(*argv: str) -> Run:
        code = main(list(argv))
        captured = capsys.readouterr()
        assert SECRET not in captured.out
        assert SECRET not in captured.err
        assert "Traceback" not in captured.err
        return Run(code, captured.out, captured.err)

    return run


def _create(plane: LocalControlPlane, deployment_id: str, replicas: int = 1) -> None:
    plane.create_deployment(deployment_id, MODEL, replicas)


def _ready(cli: Any, deployment_id: str, replicas: int = 1) -> None:
    assert (
        cli("create", deployment_id, "--base-model", MODEL, "--replicas", str(replicas)).code == 0
    )
    assert cli("wait", deployment_id, "--poll-interval", "0.05", "-q").code == 0


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


# -- help and usage ----------------------------------------------------------------------------


@pytest.mark.parametrize("command", COMMANDS)
def test_every_command_has_help(command: str, cli: Any) -> None:
    """`COMMAND --help` exits 0 and documents the exit codes and environment."""
    result = cli(command, "--help")
    assert result.code == 0
    assert f"fireworks-deploy {command}" in result.out
    assert "exit codes:" in result.out
    assert "FIREWORKS_API_KEY" in result.out


def test_local_serve_has_help(cli: Any) -> None:
    """`local serve --help` lists the emulator's options."""
    result = cli("local", "serve", "--help")
    assert result.code == 0
    assert "--fault SPEC" in result.out
    assert "--boot-seconds" in result.out


def test_top_level_help_lists_commands_and_exit_codes(cli: Any) -> None:
    """The top-level help names every command and the exit codes."""
    result = cli("--help")
    assert result.code == 0
    for command in [*COMMANDS, "local"]:
        assert command in result.out
    for code in ("1", "2", "3", "4", "5", "6", "130"):
        assert f"  {code} " in result.out
    assert "a bug" in result.out  # 1
    assert "interrupted (Ctrl-C)" in result.out  # 130


def test_version(cli: Any) -> None:
    """`--version` prints the package version."""
    result = cli("--version")
    assert result.code == 0
    assert result.out.startswith("fireworks-deploy ")


def test_no_command_is_a_usage_error(cli: Any) -> None:
    """No command prints the help on stderr and exits 2."""
    result = cli()
    assert result.code == 2
    assert "usage:" in result.err


@pytest.mark.parametrize(
    "argv",
    [
        ["get"],
        ["frobnicate"],
        ["wait", "x", "--timeout", "-1"],
        ["demo", "--deployments", "0"],
        ["hotload", "x"],
        ["hotload", "x", "--snapshot", "s", "--compression-format", "zip"],
        ["local", "serve", "--fault", "nonsense"],
        ["local"],
    ],
)
def test_usage_errors_exit_2(argv: list[str], cli: Any) -> None:
    """Bad arguments exit 2 with argparse's message, not a traceback."""
    result = cli(*argv)
    assert result.code == 2
    assert "error:" in result.err


def test_invalid_input_found_after_parsing_exits_2(cli: Any) -> None:
    """Input the SDK rejects before any request (min > max) is a usage error."""
    result = cli("create", "bad-config", "--base-model", MODEL, "--min-replicas", "3")
    assert result.code == 2
    assert result.err.startswith("error: min_replica_count (3)")
    assert result.err.count("\n") == 1


def test_missing_api_key_exits_2(cli: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """Without a key anywhere, the error names the fix."""
    monkeypatch.delenv("FIREWORKS_API_KEY")
    result = cli("list")
    assert result.code == 2
    assert "FIREWORKS_API_KEY" in result.err


def test_flags_work_before_and_after_the_command(
    cli: Any, server: LocalServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Connection flags are accepted globally and per command; the command's value wins."""
    monkeypatch.delenv("FIREWORKS_BASE_URL")
    monkeypatch.delenv("FIREWORKS_API_KEY")
    assert cli("--base-url", server.base_url, "--api-key", SECRET, "list").code == 0
    assert cli("list", "--base-url", server.base_url, "--api-key", SECRET).code == 0
    wrong = f"http://127.0.0.1:{_free_port()}"
    result = cli("--base-url", wrong, "list", "--base-url", server.base_url, "--api-key", SECRET)
    assert result.code == 0


# -- create / get / list -----------------------------------------------------------------------


def test_create_prints_the_deployment(cli: Any) -> None:
    """`create` shows the new deployment as text."""
    result = cli("create", "cli-create", "--base-model", MODEL, "--replicas", "2")
    assert result.code == 0
    assert "deployment:" in result.out
    assert "cli-create" in result.out
    assert "accounts/local/deployments/cli-create" in result.out


def test_create_json_and_wait(cli: Any) -> None:
    """`create --wait --json` returns the READY deployment as one JSON document."""
    result = cli(
        "create",
        "cli-create-wait",
        "--base-model",
        MODEL,
        "--description",
        "from the CLI",
        "--wait",
        "--poll-interval",
        "0.05",
        "--json",
    )
    assert result.code == 0
    doc = result.json()
    assert doc["deployment_id"] == "cli-create-wait"
    assert doc["state"] == "READY"
    assert doc["description"] == "from the CLI"
    assert doc["inference_model"] == "accounts/local/deployments/cli-create-wait"
    assert "raw" not in doc


def test_create_is_idempotent(cli: Any) -> None:
    """Creating an existing healthy deployment returns it."""
    assert cli("create", "cli-twice", "--base-model", MODEL).code == 0
    result = cli("create", "cli-twice", "--base-model", MODEL, "--json")
    assert result.code == 0
    assert result.json()["deployment_id"] == "cli-twice"


def test_get_text_and_json(cli: Any, plane: LocalControlPlane) -> None:
    """`get` shows one deployment; `--json` has the same fields."""
    _create(plane, "cli-get")
    text = cli("get", "cli-get")
    assert text.code == 0
    assert "base model:" in text.out
    assert MODEL in text.out
    doc = cli("get", "cli-get", "--json").json()
    assert doc["deployment_id"] == "cli-get"
    assert doc["base_model"] == MODEL


def test_get_missing_exits_3(cli: Any) -> None:
    """A deployment that does not exist exits 3 with one line naming it."""
    result = cli("get", "cli-nope")
    assert result.code == 3
    assert result.out == ""
    assert result.err == (
        "error: Deployment 'cli-nope' does not exist in account 'local'; "
        "see `fireworks-deploy list`.\n"
    )


def test_list_text_and_json(cli: Any, plane: LocalControlPlane) -> None:
    """`list` shows a table; `--json` is a list of deployments."""
    _create(plane, "cli-list")
    text = cli("list")
    assert text.code == 0
    assert text.out.startswith("DEPLOYMENT")
    assert "cli-list" in text.out
    docs = cli("list", "--json").json()
    assert isinstance(docs, list)
    assert "cli-list" in {d["deployment_id"] for d in docs}


def test_list_empty(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    """An empty account says so."""
    with LocalServer(LocalControlPlane()) as empty:
        code = main(["list", "--base-url", empty.base_url, "--api-key", SECRET])
    assert code == 0
    assert capsys.readouterr().out == "No deployments.\n"


# -- wait --------------------------------------------------------------------------------------


def test_wait_one(cli: Any, plane: LocalControlPlane) -> None:
    """`wait` returns once the deployment serves, with progress on stderr."""
    _create(plane, "cli-wait")
    result = cli("wait", "cli-wait", "--poll-interval", "0.05")
    assert result.code == 0
    # READY, or CREATING with the completions probe answering 200 (as in test_wait_many_json).
    assert result.out in ("cli-wait is READY and serving.\n", "cli-wait is CREATING and serving.\n")
    assert "cli-wait" in result.err  # plain progress lines (stderr is not a terminal)


def test_wait_many_json(cli: Any, plane: LocalControlPlane) -> None:
    """`wait A B --json` reports every deployment's outcome."""
    _create(plane, "cli-wait-a")
    _create(plane, "cli-wait-b")
    result = cli("wait", "cli-wait-a", "cli-wait-b", "--poll-interval", "0.05", "--json")
    assert result.code == 0
    doc = result.json()
    assert doc["ok"] is True
    assert [o["deployment_id"] for o in doc["outcomes"]] == ["cli-wait-a", "cli-wait-b"]
    # Ready means READY, or CREATING with a completions probe answering 200 (the server's state
    # is reported as it was read, so a probe that won the race leaves CREATING).
    assert all(o["result"]["state"] in ("READY", "CREATING") for o in doc["outcomes"])


def test_wait_failed_deployment_exits_4(cli: Any, plane: LocalControlPlane) -> None:
    """A deployment that goes FAILED exits 4."""
    plane.fail_boot("cli-wait-fail")
    _create(plane, "cli-wait-fail")
    result = cli("wait", "cli-wait-fail", "--poll-interval", "0.05")
    assert result.code == 4
    assert "FAILED" in result.err
    assert result.err.splitlines()[-1].startswith("error: Deployment 'cli-wait-fail' is FAILED")


def test_wait_many_with_one_failure(cli: Any, plane: LocalControlPlane) -> None:
    """In a fleet wait, the failed deployment is reported next to the ready one; exit 4."""
    plane.fail_boot("cli-wait-many-bad")
    _create(plane, "cli-wait-many-bad")
    _create(plane, "cli-wait-many-ok")
    result = cli(
        "wait", "cli-wait-many-ok", "cli-wait-many-bad", "--poll-interval", "0.05", "--json"
    )
    assert result.code == 4
    doc = result.json()
    assert doc["ok"] is False
    outcomes = {o["deployment_id"]: o for o in doc["outcomes"]}
    assert outcomes["cli-wait-many-ok"]["ok"] is True
    assert outcomes["cli-wait-many-bad"]["error"]["type"] == "DeploymentFailedError"


def test_wait_missing_exits_3(cli: Any) -> None:
    """Waiting for a deployment that does not exist exits 3."""
    result = cli("wait", "cli-wait-nope", "--poll-interval", "0.05")
    assert result.code == 3
    assert "does not exist" in result.err


def test_wait_timeout_exits_5(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """A wait that reaches --timeout exits 5 and names the last state."""
    slow = LocalControlPlane(boot_seconds=3600)
    slow.create_deployment("cli-slow", MODEL)
    with LocalServer(slow) as running:
        code = main(
            [
                *("wait", "cli-slow", "--base-url", running.base_url, "--api-key", SECRET),
                *("--timeout", "0.3", "--poll-interval", "0.05"),
            ]
        )
    err = capsys.readouterr().err
    assert code == 5
    assert "was not ready within 0.3s (last state CREATING)" in err


# -- hot-load ----------------------------------------------------------------------------------


def test_hotload_base_then_delta(cli: Any) -> None:
    """A base then a delta (with --previous) both end with every replica serving them."""
    _ready(cli, "cli-hl", replicas=2)
    base = cli("hotload", "cli-hl", "--snapshot", "s0", "--poll-interval", "0.05")
    assert base.code == 0
    assert base.out == "cli-hl: every replica (2) serves s0.\n"
    delta = cli(
        "hotload",
        "cli-hl",
        "--snapshot",
        "s1",
        "--previous",
        "s0",
        "--compression-format",
        "arc_v2",
        "--poll-interval",
        "0.05",
        "--json",
    )
    assert delta.code == 0
    doc = delta.json()
    assert doc["serves"] is True
    assert doc["identity"] == "s1"
    assert {r["current_snapshot_identity"] for r in doc["replicas"]} == {"s1"}


def test_hotload_status(cli: Any) -> None:
    """`hotload-status` shows each replica; `--snapshot` says whether all serve it."""
    _ready(cli, "cli-hls")
    assert cli("hotload", "cli-hls", "--snapshot", "s0", "--poll-interval", "0.05").code == 0
    text = cli("hotload-status", "cli-hls", "--snapshot", "s0")
    assert text.code == 0
    assert text.out.startswith("REPLICA")
    assert "cli-hls serves s0 on every replica" in text.out
    doc = cli("hotload-status", "cli-hls", "--base-model", MODEL, "--json").json()
    assert doc["deployment_id"] == "cli-hls"
    assert doc["replicas"][0]["current_snapshot_identity"] == "s0"


def test_hotload_failure_exits_4(cli: Any, plane: LocalControlPlane) -> None:
    """A replica reporting stage "error" exits 4 with the hot-load error."""
    _ready(cli, "cli-hl-fail")
    plane.faults.add(Fault("hotload_error", deployment_id="cli-hl-fail"))
    result = cli("hotload", "cli-hl-fail", "--snapshot", "s0", "--poll-interval", "0.05")
    assert result.code == 4
    assert result.err.splitlines()[-1].startswith("error: Hot-load of 's0' on deployment")


def test_hotload_wrong_previous_exits_4(cli: Any) -> None:
    """A delta against a snapshot the deployment does not serve is rejected (HTTP 400)."""
    _ready(cli, "cli-hl-prev")
    assert cli("hotload", "cli-hl-prev", "--snapshot", "s0", "--poll-interval", "0.05").code == 0
    result = cli("hotload", "cli-hl-prev", "--snapshot", "s1", "--previous", "nope")
    assert result.code == 4
    assert "HTTP 400" in result.err


def test_hotload_timeout_exits_5(cli: Any, plane: LocalControlPlane) -> None:
    """A hot-load that never completes exits 5 at --timeout."""
    _ready(cli, "cli-hl-slow")
    plane.faults.add(Fault("replica_disagree", deployment_id="cli-hl-slow", seconds=float("inf")))
    result = cli(
        "hotload", "cli-hl-slow", "--snapshot", "s0", "--timeout", "0.5", "--poll-interval", "0.05"
    )
    assert result.code == 5
    assert "did not complete within 0.5s" in result.err


def test_hotload_missing_deployment_exits_3(cli: Any) -> None:
    """Without --base-model the deployment is read first; a missing one exits 3."""
    result = cli("hotload", "cli-hl-nope", "--snapshot", "s0")
    assert result.code == 3


def test_hotload_no_wait(cli: Any) -> None:
    """`--no-wait` returns once the gateway accepted the request."""
    _ready(cli, "cli-hl-nowait")
    result = cli("hotload", "cli-hl-nowait", "--snapshot", "s0", "--no-wait", "--json")
    assert result.code == 0
    assert result.json() == {
        "identity": "s0",
        "deployment_ids": ["cli-hl-nowait"],
        "accepted": True,
    }


def test_hotload_many_reports_each_outcome(cli: Any, plane: LocalControlPlane) -> None:
    """Several deployments load at once; a failed one is reported next to the others."""
    for deployment_id in ("cli-fleet-a", "cli-fleet-b"):
        _ready(cli, deployment_id)
    plane.faults.add(Fault("hotload_error", deployment_id="cli-fleet-b"))
    result = cli(
        "hotload",
        "cli-fleet-a",
        "cli-fleet-b",
        "--snapshot",
        "s0",
        "--poll-interval",
        "0.05",
        "--json",
    )
    assert result.code == 4
    outcomes = {o["deployment_id"]: o for o in result.json()["outcomes"]}
    assert outcomes["cli-fleet-a"]["result"]["serves"] is True
    assert outcomes["cli-fleet-b"]["error"]["type"] == "HotloadFailedError"
    text = cli(
        "hotload", "cli-fleet-a", "cli-fleet-b", "--snapshot", "s1", "--poll-interval", "0.05"
    )
    assert text.code == 0
    assert text.out.splitlines() == [
        "cli-fleet-a: every replica (1) serves s1",
        "cli-fleet-b: every replica (1) serves s1",
    ]


def test_delta_flags_need_previous(cli: Any) -> None:
    """--compression-format without --previous is a usage error."""
    result = cli("hotload", "x", "--snapshot", "s", "--compression-format", "arc_v2")
    assert result.code == 2
    assert "--previous" in result.err


# -- warmup / scale-to-zero / delete ----------------------------------------------------------


def test_warmup(cli: Any) -> None:
    """`warmup` succeeds once a completion answers 200."""
    _ready(cli, "cli-warm")
    result = cli("warmup", "cli-warm", "--json")
    assert result.code == 0
    doc = result.json()
    assert doc["status_code"] == 200
    assert doc["model"] == "accounts/local/deployments/cli-warm"


def test_warmup_failure_exits_4(cli: Any, plane: LocalControlPlane) -> None:
    """Warm-up that never gets a 200 exits 4."""
    _ready(cli, "cli-warm-fail")
    fault = plane.faults.add(
        Fault("status", endpoint="completions", deployment_id="cli-warm-fail", times=None)
    )
    try:
        result = cli("warmup", "cli-warm-fail", "--max-retries", "2", "--retry-interval", "0")
    finally:
        plane.faults.remove(fault)
    assert result.code == 4
    assert "got no 200 in 2 attempt(s)" in result.err


def test_scale_to_zero(cli: Any, plane: LocalControlPlane) -> None:
    """`scale-to-zero` keeps the deployment with no replicas."""
    _ready(cli, "cli-scale")
    result = cli("scale-to-zero", "cli-scale", "--json")
    assert result.code == 0
    assert result.json()["scaled_to_zero"] is True
    assert cli("get", "cli-scale").code == 0


def test_scale_to_zero_missing_exits_3(cli: Any) -> None:
    """Scaling a deployment that does not exist exits 3."""
    result = cli("scale-to-zero", "cli-scale-nope")
    assert result.code == 3


def test_delete(cli: Any, plane: LocalControlPlane) -> None:
    """`delete --wait` confirms it is gone; deleting again exits 3 unless --missing-ok."""
    _create(plane, "cli-delete")
    result = cli("delete", "cli-delete", "--wait")
    assert result.code == 0
    assert result.out == "cli-delete is deleted.\n"
    assert cli("get", "cli-delete").code == 3
    assert cli("delete", "cli-delete").code == 3
    missing_ok = cli("delete", "cli-delete", "--missing-ok", "--json")
    assert missing_ok.code == 0
    assert missing_ok.json() == {"deployment_id": "cli-delete", "deleted": False, "existed": False}


# -- connection, auth, secrets ------------------------------------------------------------------


def test_connection_refused_exits_6(cli: Any) -> None:
    """No server at --base-url exits 6 after the --timeout budget."""
    url = f"http://127.0.0.1:{_free_port()}"
    result = cli("get", "x", "--base-url", url, "--timeout", "0.5")
    assert result.code == 6
    last = result.err.splitlines()[-1]  # retry notices may come first
    assert last.startswith("error: GET http://127.0.0.1")
    assert "got no answer" in last


def test_wrong_api_key_exits_4_without_printing_it(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """A rejected key is an HTTP failure (exit 4); neither key is printed."""
    locked = LocalControlPlane(api_key="the-right-key-5521")
    with LocalServer(locked) as running:
        code = main(["list", "--base-url", running.base_url, "--api-key", SECRET, "--json"])
    captured = capsys.readouterr()
    assert code == 4
    assert "401" in captured.err
    assert SECRET not in captured.out + captured.err
    assert "the-right-key-5521" not in captured.out + captured.err


def test_api_key_never_printed_even_if_a_server_echoes_it(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """An error body that contains the key is scrubbed before it is printed."""
    echo = LocalControlPlane()
    echo.faults.add(
        Fault("status", endpoint="accounts", status=400, body=json.dumps({"error": SECRET}))
    )
    with LocalServer(echo) as running:
        code = main(["list", "--base-url", running.base_url, "--api-key", SECRET])
    captured = capsys.readouterr()
    assert code == 4
    assert SECRET not in captured.err
    assert "***" in captured.err


def test_exit_code_table_is_complete() -> None:
    """Every documented exit code has a description."""
    assert set(_cli.EXIT_CODES) == {0, 1, 2, 3, 4, 5, 6, 130}


# -- subprocesses --------------------------------------------------------------------------------


def _env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith("FIREWORKS_")}


def test_module_help_subprocess() -> None:
    """`python -m fireworks_deploy --help` works as a real process."""
    proc = subprocess.run(
        [sys.executable, "-m", "fireworks_deploy", "--help"],
        capture_output=True,
        text=True,
        timeout=30,
        env=_env(),
        check=False,
    )
    assert proc.returncode == 0
    assert "usage: fireworks-deploy" in proc.stdout
    assert "exit codes:" in proc.stdout


def test_local_serve_subprocess() -> None:
    """`local serve` prints its URL, serves the CLI, and stops on SIGTERM/SIGINT."""
    with subprocess.Popen(  # noqa: S603 - our own interpreter and module
        [
            *(sys.executable, "-m", "fireworks_deploy", "local", "serve", "--port", "0"),
            *("--boot-seconds", "0.1", "--fault", "status:endpoint=list,status=503,times=1"),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        env=_env(),
    ) as proc:
        try:
            assert proc.stdout is not None
            banner = proc.stdout.readline()
            assert banner.startswith("Local Fireworks control plane listening on http://127.0.0.1:")
            url = banner.rsplit(" ", 1)[-1].strip()
            listed = subprocess.run(  # noqa: S603 - our own interpreter and module
                [
                    *(sys.executable, "-m", "fireworks_deploy", "list", "--base-url", url),
                    *("--api-key", SECRET, "--json"),
                ],
                capture_output=True,
                text=True,
                timeout=30,
                env=_env(),
                check=False,
            )
            assert listed.returncode == 0, listed.stderr  # the injected 503 was retried
            assert json.loads(listed.stdout) == []
        finally:
            proc.terminate()
            proc.wait(timeout=10)


# -- fail fast, speak clearly (issue 12) ----------------------------------------------------------


def test_missing_api_key_names_the_flag(cli: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """The missing-key error names --api-key and FIREWORKS_API_KEY, not the SDK's api_key=."""
    monkeypatch.delenv("FIREWORKS_API_KEY")
    result = cli("list")
    assert result.code == 2
    assert "--api-key" in result.err
    assert "api_key=" not in result.err
    empty = cli("list", "--api-key", " ")
    assert empty.code == 2
    assert "--api-key is empty" in empty.err


def test_wait_missing_names_the_create_command(cli: Any) -> None:
    """Waiting for a deployment that does not exist says how to create it, with the CLI."""
    result = cli("wait", "cli-wait-nothing", "--poll-interval", "0.05")
    assert result.code == 3
    last = result.err.splitlines()[-1]
    assert "`fireworks-deploy create cli-wait-nothing --base-model MODEL`" in last
    assert "create_or_get" not in result.err
    assert "cli-wait-nothing: NOT FOUND" in result.err


def test_wait_many_missing_is_not_found(cli: Any, plane: LocalControlPlane) -> None:
    """In a fleet wait, a missing deployment reads NOT FOUND next to the others; exit 3."""
    result = cli("wait", "cli-wm-x", "cli-wm-y", "--poll-interval", "0.05", "--json")
    assert result.code == 3
    outcomes = result.json()["outcomes"]
    assert {o["error"]["type"] for o in outcomes} == {"DeploymentNotFoundError"}
    assert all("fireworks-deploy create" in o["error"]["message"] for o in outcomes)


def test_delete_missing_ok_says_it_did_not_exist(cli: Any) -> None:
    """`delete --missing-ok` of a deployment that never existed says so; exit 0."""
    result = cli("delete", "cli-never", "--missing-ok")
    assert result.code == 0
    assert result.out == "cli-never does not exist; nothing to delete.\n"


def test_delete_reports_that_it_existed(cli: Any, plane: LocalControlPlane) -> None:
    """Deleting an existing deployment says `existed`/`deleted` true."""
    _create(plane, "cli-delete-json")
    doc = cli("delete", "cli-delete-json", "--missing-ok", "--json").json()
    assert doc == {
        "deployment_id": "cli-delete-json",
        "deleted": True,
        "existed": True,
        "confirmed": False,
    }


def test_warmup_missing_exits_3_at_once(cli: Any) -> None:
    """`warmup` of a missing deployment exits 3 like every other command, before any retry."""
    result = cli("warmup", "cli-warm-nope", "--max-retries", "30", "--retry-interval", "10")
    assert result.code == 3
    assert result.err == (
        "error: Deployment 'cli-warm-nope' does not exist in account 'local'; "
        "see `fireworks-deploy list`.\n"
    )


def test_warmup_accepts_the_model_name(cli: Any) -> None:
    """DEPLOYMENT_ID may be the deployment's model name; attempts read in correct plurals."""
    _ready(cli, "cli-warm-model")
    result = cli("warmup", "accounts/local/deployments/cli-warm-model")
    assert result.code == 0
    assert "answered 200 after 1 attempt in" in result.out


def test_timeout_progress_says_it_timed_out(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """A wait that times out says so in its progress line, with what it last saw."""
    slow = LocalControlPlane(boot_seconds=3600)
    slow.create_deployment("cli-slow2", MODEL)
    with LocalServer(slow) as running:
        base = ["--base-url", running.base_url, "--api-key", SECRET]
        code = main(["wait", "cli-slow2", *base, "--timeout", "0.3", "--poll-interval", "0.05"])
        text = capsys.readouterr()
        json_code = main(["wait", "cli-slow2", *base, "--timeout", "0.3", "--json"])
        doc = json.loads(capsys.readouterr().out)
    assert code == json_code == 5
    assert "cli-slow2: TIMED OUT: after 0.3s, last seen CREATING" in text.err
    assert "ReadyTimeoutError" not in text.err
    assert doc["error"]["type"] == "ReadyTimeoutError"
    assert doc["error"]["exit_code"] == 5
    assert doc["error"]["timeout_s"] == 0.3
    assert doc["error"]["last_status"]["state"] == "CREATING"


@pytest.mark.parametrize(
    ("argv", "code", "kind"),
    [
        (["get", "cli-json-nope"], 3, "DeploymentNotFoundError"),
        (["scale-to-zero", "cli-json-nope"], 3, "DeploymentNotFoundError"),
        (["warmup", "cli-json-nope"], 3, "DeploymentNotFoundError"),
        (["frobnicate"], 2, "UsageError"),
        (["wait", "x", "--timeout", "-1"], 2, "UsageError"),
        (["create", "bad", "--base-model", MODEL, "--min-replicas", "3"], 2, "InvalidConfigError"),
    ],
)
def test_json_errors_are_one_document(argv: list[str], code: int, kind: str, cli: Any) -> None:
    """With --json every failure is one `{"error": {...}}` document on stdout, same exit code."""
    result = cli(*argv, "--json")
    assert result.code == code
    doc = result.json()
    assert list(doc) == ["error"]
    assert doc["error"]["type"] == kind
    assert doc["error"]["exit_code"] == code
    assert doc["error"]["message"]
    assert "error:" in result.err  # the human line stays on stderr


def test_json_error_for_a_missing_key(cli: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """No key under --json: an InvalidConfigError document naming --api-key; exit 2."""
    monkeypatch.delenv("FIREWORKS_API_KEY")
    doc = cli("list", "--json").json()
    assert doc["error"]["type"] == "InvalidConfigError"
    assert "--api-key" in doc["error"]["message"]


def test_json_error_for_a_failed_deployment(cli: Any, plane: LocalControlPlane) -> None:
    """A FAILED deployment's error document carries its state."""
    plane.fail_boot("cli-json-fail")
    _create(plane, "cli-json-fail")
    result = cli("wait", "cli-json-fail", "--poll-interval", "0.05", "--json")
    assert result.code == 4
    error = result.json()["error"]
    assert error["type"] == "DeploymentFailedError"
    assert error["deployment_id"] == "cli-json-fail"
    assert error["state"] == "FAILED"


def test_json_error_for_an_http_status(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """A rejected key is a 401 document with its status code; the key is not in it."""
    locked = LocalControlPlane(api_key="the-right-key-5521")
    with LocalServer(locked) as running:
        code = main(["list", "--base-url", running.base_url, "--api-key", SECRET, "--json"])
    out = capsys.readouterr().out
    assert code == 4
    error = json.loads(out)["error"]
    assert error["type"] == "AuthenticationError"
    assert error["status_code"] == 401
    assert SECRET not in out


def test_unexpected_error_exits_1_with_a_traceback(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], server: LocalServer
) -> None:
    """A bug exits 1 with its traceback (key scrubbed) and a line that says it is a bug."""

    async def broken(*_: Any) -> int:
        raise RuntimeError(f"boom {SECRET}")

    monkeypatch.setattr(_cli._deployments, "_list", broken)
    code = main(["list", "--base-url", server.base_url, "--api-key", SECRET, "--json"])
    captured = capsys.readouterr()
    assert code == 1
    assert "Traceback" in captured.err
    assert "a bug in fireworks-deploy" in captured.err
    assert json.loads(captured.out)["error"] == {
        "type": "RuntimeError",
        "message": "boom ***",
        "exit_code": 1,
    }
    assert SECRET not in captured.out + captured.err


def test_a_key_in_a_usage_error_is_not_printed(cli: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """argparse echoes bad values; a key given with --api-key is scrubbed from them too."""
    monkeypatch.delenv("FIREWORKS_API_KEY")
    other = "fw-other-SECRET-key-1234"
    result = cli("wait", other, "--api-key", other, "--timeout", other)
    assert result.code == 2
    assert other not in result.err
    assert "***" in result.err


def test_a_short_api_key_does_not_corrupt_output(cli: Any) -> None:
    """A one-letter key is not scrubbed out of every word that contains its letter."""
    result = cli("get", "cli-short-key-nope", "--api-key", "k")
    assert result.code == 3
    assert "does not exist in account 'local'" in result.err
    assert "***" not in result.err


def test_retries_are_shown_as_they_happen(
    cli: Any, plane: LocalControlPlane, server: LocalServer
) -> None:
    """A retried request prints `retrying: <reason>` on stderr; --quiet hides it."""
    plane.faults.add(Fault("status", endpoint="list", status=503, times=1))
    result = cli("list", "--json")
    assert result.code == 0
    notices = [line for line in result.err.splitlines() if line.startswith("retrying: ")]
    assert len(notices) == 1
    assert notices[0].startswith(f"retrying: GET {server.base_url}/v1/accounts/local/deployments")
    assert "HTTP 503" in notices[0]
    assert "; next attempt in " in notices[0]
    plane.faults.add(Fault("status", endpoint="list", status=503, times=1))
    quiet = cli("list", "-q")
    assert quiet.code == 0
    assert "retrying" not in quiet.err


def test_insecure_transport_is_a_warning_line_even_when_quiet(cli: Any) -> None:
    """Plain http:// beyond loopback prints one `warning:` line (not a Python warning)."""
    result = cli("list", "--base-url", "http://192.0.2.1:9", "--timeout", "0.5", "-q")
    assert result.code == 6
    warnings = [line for line in result.err.splitlines() if line.startswith("warning: ")]
    assert len(warnings) == 1
    assert "plain http://" in warnings[0]


def test_plurals() -> None:
    """Counts read in correct plurals."""

    assert plural(1, "deployment") == "1 deployment"
    assert plural(2, "deployment") == "2 deployments"
    assert plural(0, "replica") == "0 replicas"
    assert plural(1, "try", "tries") == "1 try"
    assert plural(3, "try", "tries") == "3 tries"


class _Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_plain_progress_prints_a_heartbeat_while_nothing_changes() -> None:
    """Piped progress repeats its view after HEARTBEAT_S of silence, never more often."""

    stream, clock = io.StringIO(), _Clock()
    with Progress(stream, live=False, clock=clock, title="Waiting") as progress:
        progress.beat()
        clock.now = HEARTBEAT_S - 0.1
        progress.beat()  # not yet: nothing printed so far, but not silent for long
        clock.now = HEARTBEAT_S
        progress.beat()  # no rows yet: says what it waits for
        progress.deployment("d1", "CREATING")
        clock.now += 0.5
        progress.refresh()
        clock.now += HEARTBEAT_S / 2
        progress.beat()  # a line was printed recently
        clock.now += HEARTBEAT_S
        progress.beat()
        progress.finish("d1", "serving", ok=True)
        clock.now += HEARTBEAT_S * 2
        progress.beat()  # done: the result follows, no heartbeat
    lines = [line.split("] ", 1)[1] for line in stream.getvalue().splitlines()]
    assert lines == [
        "Waiting: still waiting",
        "d1: CREATING",
        f"d1: CREATING for {HEARTBEAT_S * 1.5:.0f}s (still waiting)",
    ]


def test_heartbeat_is_silent_when_quiet_or_closed() -> None:
    """--quiet, or a display not yet entered (or closed), prints no heartbeat."""

    stream, clock = io.StringIO(), _Clock()
    quiet = Progress(stream, enabled=False, clock=clock)
    with quiet:
        clock.now = HEARTBEAT_S * 3
        quiet.beat()
    closed = Progress(stream, live=False, clock=clock)
    clock.now = HEARTBEAT_S * 9
    closed.beat()
    assert stream.getvalue() == ""


def test_progress_failure_labels() -> None:
    """A failed row prints its label: FAILED by default, or what the command passes."""

    stream = io.StringIO()
    with Progress(stream, live=False) as progress:
        progress.finish("a", "after 3s, last seen CREATING", ok=False, label="TIMED OUT")
        progress.finish("b", "boom", ok=False)
    lines = [line.split("] ", 1)[1] for line in stream.getvalue().splitlines()]
    assert lines == ["a: TIMED OUT: after 3s, last seen CREATING", "b: FAILED: boom"]


def _record(msg: str, *args: Any, level: int = logging.INFO, name: str = "fireworks_deploy") -> Any:
    return logging.LogRecord(name, level, __file__, 1, msg, args, None)


def test_notice_lines_from_log_records() -> None:
    """Retry records read `retrying: <what>: <reason>; next attempt in Ns`; telemetry does not."""
    structured = _record("retrying GET http://h/x: connection refused; next attempt in 0.25s")
    structured.__dict__.update(
        retry_method="GET",
        retry_url="http://h/x",
        retry_reason="connection refused",
        retry_failures=1,
        retry_delay_s=0.25,
    )
    assert describe(structured) == (
        "retrying: GET http://h/x: connection refused; next attempt in 0.2s"
    )
    structured.retry_delay_s = None
    structured.levelno = logging.WARNING  # the third failure in a row is a WARNING: still a retry
    assert describe(structured) == "retrying: GET http://h/x: connection refused; polling on"
    refused = APIConnectionError("GET http://h/x got no answer (ConnectError: refused).")
    assert (
        describe(_record("%s failed (%s); retrying in %.2fs", "GET http://h/x", refused, 0.25))
        == "retrying: GET http://h/x got no answer (ConnectError: refused); next attempt in 0.2s"
    )
    assert (
        describe(_record("%s answered %s; retrying in %.2fs", "GET http://h/x", 503, 1.5))
        == "retrying: GET http://h/x answered 503; next attempt in 1.5s"
    )
    assert describe(_record("careful", level=logging.WARNING)) == "warning: careful"
    recreating = _record("Recreating deployment d1", name="fireworks_deploy._deployments")
    assert describe(recreating) == "Recreating deployment d1"
    telemetry = _record("get d1: NotFoundError in 0.1s", name="fireworks_deploy._observe")
    assert describe(telemetry) is None
