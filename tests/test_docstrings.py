"""Every public name has a docstring: exported classes, and their methods and properties."""

from __future__ import annotations

import ast
import inspect
import pydoc
import re
import textwrap
from pathlib import Path

import pytest

import fireworks_deploy
from fireworks_deploy import AsyncDeploymentManager, DeploymentManager

#: The API reference pages (mkdocs.yml); absent from an sdist.
DOCS_API = Path(__file__).resolve().parent.parent / "docs" / "api"


def exported_classes() -> list[type]:
    return [
        value
        for name in fireworks_deploy.__all__
        if inspect.isclass(value := getattr(fireworks_deploy, name))
    ]


def public_members(cls: type) -> dict[str, object]:
    """Public methods and properties that `cls` has from our package, as `cls` resolves them.

    What a class inherits from outside the package (`str`, `Exception`, `enum.Enum`) is
    documented there.
    """
    names = {
        name
        for klass in cls.__mro__
        if klass.__module__.startswith("fireworks_deploy")
        for name in vars(klass)
        if not name.startswith("_")
    }
    members: dict[str, object] = {}
    for name in sorted(names):
        member = inspect.getattr_static(cls, name)
        if isinstance(member, (classmethod, staticmethod)):
            member = member.__func__
        if inspect.isfunction(member) or isinstance(member, property):
            members[name] = member
    return members


def undocumented(cls: type) -> list[str]:
    return [
        f"{cls.__name__}.{name}"
        for name, member in public_members(cls).items()
        if not (getattr(member, "__doc__", None) or "").strip()
    ]


def test_there_is_something_to_check() -> None:
    """Both managers expose many public methods and properties (the check is not vacuous)."""
    assert len(public_members(AsyncDeploymentManager)) >= 25
    assert len(public_members(DeploymentManager)) >= 25
    assert len(exported_classes()) > 30


@pytest.mark.parametrize("cls", exported_classes(), ids=lambda cls: cls.__name__)
def test_exported_class_has_docstring(cls: type) -> None:
    """Every class in `fireworks_deploy.__all__` has its own docstring."""
    assert (cls.__doc__ or "").strip(), f"{cls.__name__} has no docstring"


@pytest.mark.parametrize("cls", exported_classes(), ids=lambda cls: cls.__name__)
def test_public_members_have_docstrings(cls: type) -> None:
    """Every public method and property of an exported class has a docstring."""
    assert undocumented(cls) == []


def written_docstring(member: object) -> str | None:
    """The docstring in the member's source text (None if its source has none)."""
    func = member.fget if isinstance(member, property) else member
    tree = ast.parse(textwrap.dedent(inspect.getsource(func)))  # type: ignore[arg-type]
    node = tree.body[0]
    assert isinstance(node, ast.FunctionDef)
    return ast.get_docstring(node)


@pytest.mark.parametrize("name", sorted(public_members(DeploymentManager)))
def test_sync_twin_reads_like_its_async_twin(name: str) -> None:
    """A blocking member written without a docstring shows its async twin's, nothing else."""
    sync_member = inspect.getattr_static(DeploymentManager, name)
    async_member = inspect.getattr_static(AsyncDeploymentManager, name, None)
    assert not hasattr(sync_member, "__wrapped__"), "twins must not use functools.wraps"
    if written_docstring(sync_member) is None:
        assert async_member is not None, f"{name} has neither a docstring nor an async twin"
        assert sync_member.__doc__ == async_member.__doc__
    # Only the text is shared: the facade keeps its own blocking function.
    assert not inspect.iscoroutinefunction(sync_member)


def test_help_on_the_facade_shows_the_documentation() -> None:
    """help(DeploymentManager.hotload_and_wait) shows what it does, not only a signature."""
    text = pydoc.render_doc(DeploymentManager.hotload_and_wait, renderer=pydoc.plaintext)
    assert "under one deadline" in text
    assert text.count("\n") > 5


def test_api_reference_lists_every_exported_class() -> None:
    """Every exported class is in the API reference: by name, or (errors) by the generated list."""
    if not DOCS_API.is_dir():
        pytest.skip("docs/ is not in this tree (an sdist)")
    pages = {page.name: page.read_text(encoding="utf-8") for page in DOCS_API.glob("*.md")}
    listed = set(re.findall(r"^::: fireworks_deploy\.(\w+)\s*$", "\n".join(pages.values()), re.M))
    missing = [
        cls.__name__
        for cls in exported_classes()
        if not issubclass(cls, BaseException) and cls.__name__ not in listed
    ]
    assert missing == [], f"add them to a page under docs/api/: {missing}"
    # docs/_hooks/readme_sections.py expands this into one entry per exported error class.
    assert "<!-- api: exported errors -->" in pages["errors.md"]
