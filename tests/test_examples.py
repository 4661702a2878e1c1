"""Every example runs green against the local control plane (as `nox -s examples` would)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).parent.parent / "examples"


def _env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith("FIREWORKS_")}


@pytest.mark.parametrize("name", ["async_rl_loop.py", "sync_legacy_script.py", "fleet_hotload.py"])
def test_example_script_exits_0(name: str) -> None:
    """The script runs to completion against the local control plane."""
    proc = subprocess.run(  # noqa: S603 - our own interpreter and files
        [sys.executable, str(EXAMPLES / name)],
        capture_output=True,
        text=True,
        timeout=60,
        env=_env(),
        check=False,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proc.stdout.strip()


def test_pytest_plugin_example_passes() -> None:
    """The example test suite passes under a plain pytest run."""
    proc = subprocess.run(  # noqa: S603 - our own interpreter and files
        [
            sys.executable,
            "-m",
            "pytest",
            "-q",
            "-p",
            "no:cacheprovider",
            str(EXAMPLES / "pytest_plugin_example"),
        ],
        capture_output=True,
        text=True,
        timeout=60,
        env=_env(),
        check=False,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "5 passed" in proc.stdout
