"""The package's modules import each other without cycles, type-checking imports included."""

from __future__ import annotations

import ast
import subprocess
import sys
from graphlib import CycleError, TopologicalSorter
from pathlib import Path

import fireworks_deploy

PACKAGE = "fireworks_deploy"
ROOT = Path(fireworks_deploy.__file__).parent


def module_name(path: Path) -> str:
    parts = [PACKAGE, *path.relative_to(ROOT).with_suffix("").parts]
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def modules() -> dict[str, Path]:
    return {module_name(path): path for path in sorted(ROOT.rglob("*.py"))}


def imports_of(name: str, path: Path, known: set[str]) -> set[str]:
    """Every in-package module `name` imports anywhere: top level, functions, TYPE_CHECKING."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                base = f"{base}.{node.module}" if node.module else base
            else:
                base = node.module or ""
            # `from . import x` names a module when x is one, else a name in the package.
            targets = [
                f"{base}.{alias.name}" if f"{base}.{alias.name}" in known else base
                for alias in node.names
            ]
        else:
            continue
        for target in targets:
            resolved = target
            while resolved and resolved not in known:
                resolved = resolved.rpartition(".")[0]
            if resolved and resolved != name:
                found.add(resolved)
    return found


def graph() -> dict[str, set[str]]:
    found = modules()
    known = set(found)
    return {name: imports_of(name, path, known) for name, path in found.items()}


def test_graph_sees_type_checking_and_relative_imports() -> None:
    """The graph builder resolves relative, package-level and TYPE_CHECKING imports."""
    edges = graph()
    assert f"{PACKAGE}._manager" in edges[PACKAGE]
    assert f"{PACKAGE}._http" in edges[f"{PACKAGE}._deployments"]
    # _progress imports the manager only for type checking: still an edge.
    assert f"{PACKAGE}._manager" in edges[f"{PACKAGE}._progress"]


def test_no_import_cycles() -> None:
    """No module imports one that (transitively) imports it back."""
    try:
        order = list(TopologicalSorter(graph()).static_order())
    except CycleError as exc:
        raise AssertionError(f"import cycle: {' -> '.join(exc.args[1])}") from None
    assert set(order) == set(modules())


def test_modules_import_in_dependency_order() -> None:
    """Each module imports on its own, its dependencies first, in a fresh interpreter."""
    order = list(TopologicalSorter(graph()).static_order())
    script = f"import importlib\nfor name in {order!r}:\n    importlib.import_module(name)\n"
    result = subprocess.run(  # noqa: S603 - our own interpreter and a script we wrote
        [sys.executable, "-W", "error", "-c", script],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr


def test_errors_and_core_services_sit_below_the_manager() -> None:
    """Errors know nothing of fleets; fleet and lease code do not know the manager class."""
    edges = graph()
    assert edges[f"{PACKAGE}._errors"] == set()
    for low in ("_fleet", "_lease", "_deployments", "_hotload", "_inference", "_account"):
        assert f"{PACKAGE}._manager" not in edges[f"{PACKAGE}.{low}"], low
