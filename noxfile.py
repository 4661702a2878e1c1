"""Dev sessions: `nox` runs the tests; `nox -s lint typing examples bench compat docs` the rest."""

from __future__ import annotations

import nox

nox.options.sessions = ["tests"]
nox.options.reuse_existing_virtualenvs = True

PYTHON = ["3.10", "3.11", "3.12"]


@nox.session(python=False)
def tests(session: nox.Session) -> None:
    """The test suite (without the official-client compat tests) in the current interpreter."""
    session.run("python", "-m", "pytest", "-m", "not compat and not slow", *session.posargs)


@nox.session(python=PYTHON)
def tests_matrix(session: nox.Session) -> None:
    """The test suite in a fresh virtualenv per supported Python."""
    session.install("-e", ".[test]")
    session.run("pytest", "-m", "not compat and not slow", *session.posargs)


@nox.session
def lint(session: nox.Session) -> None:
    """ruff: lint and formatting."""
    session.install("ruff>=0.5")
    session.run("ruff", "check", ".")
    session.run("ruff", "format", "--check", ".")


@nox.session
def typing(session: nox.Session) -> None:
    """mypy --strict over the package."""
    session.install("-e", ".[test]", "mypy>=1.10")
    session.run("mypy", "--strict", "fireworks_deploy")


@nox.session
def examples(session: nox.Session) -> None:
    """Run every example against the local control plane."""
    session.install("-e", ".[test]")
    for script in ("async_rl_loop.py", "sync_legacy_script.py", "fleet_hotload.py"):
        session.run("python", f"examples/{script}")
    session.run("pytest", "examples/pytest_plugin_example", "-p", "no:cacheprovider")


@nox.session
def bench(session: nox.Session) -> None:
    """Benchmarks against the official client on a loopback control plane (`-- --full`)."""
    # fireworks-ai 1.2.30 imports urllib3 but declares it only in an extra.
    session.install("-e", ".[bench]", "fireworks-ai==1.2.30", "urllib3")
    args = session.posargs or ["--quick"]
    session.run("python", "-m", "benchmarks", *args)


@nox.session
def compat(session: nox.Session) -> None:
    """The official fireworks-ai client, unchanged, against our local control plane."""
    # The training-sdk extra brings what the official WeightSyncer imports (numpy, ...).
    session.install("-e", ".[test]", "fireworks-ai[training-sdk]==1.2.30")
    session.run("pytest", "-m", "compat", "tests/compat", *session.posargs)


@nox.session
def docs(session: nox.Session) -> None:
    """Build the documentation site (`mkdocs build --strict`: every warning is an error)."""
    session.install("-e", ".[docs]")
    # Material's end-of-life banner is printed on every build; it is news, not a warning.
    session.run("mkdocs", "build", "--strict", *session.posargs, env={"NO_MKDOCS_2_WARNING": "1"})


@nox.session(python=False)
def soak(session: nox.Session) -> None:
    """The long soak run (1,000 deployments with injected faults)."""
    session.run("python", "-m", "pytest", "-m", "slow", *session.posargs)
