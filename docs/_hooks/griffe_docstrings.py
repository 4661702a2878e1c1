"""Griffe extension: the API reference shows what griffe cannot see in source text.

In `fireworks_deploy` classes only:

- docstrings set at run time: `DeploymentManager` takes each blocking method's docstring from
  its async twin when the class is defined (`fireworks_deploy._sync._docstrings_from_twins`), so
  those methods have none in their source; this reads them from the imported objects.
- `#:` comments: an attribute documented the Sphinx way, by `#:` lines right above it (a field
  of an attrs class, a class attribute, `self.x` in `__init__`), gets them as its docstring.
- attrs classes: their `__init__` is generated, so the class signature (with every field's
  default) is taken from the imported class.
"""

from __future__ import annotations

import importlib
import inspect
from functools import cache
from pathlib import Path
from typing import Any

import attrs
import griffe

PACKAGE = "fireworks_deploy"


def _classes(module: griffe.Module) -> list[griffe.Class]:
    found: list[griffe.Class] = []
    for member in module.members.values():
        if member.is_alias:
            continue
        if isinstance(member, griffe.Module):
            found.extend(_classes(member))
        elif isinstance(member, griffe.Class):
            found.append(member)
    return found


def _runtime_class(cls: griffe.Class) -> type | None:
    found = getattr(importlib.import_module(cls.module.path), cls.name, None)
    return found if inspect.isclass(found) else None


def _runtime_doc(cls: griffe.Class, name: str) -> str | None:
    """The docstring of the imported function or property `cls.name`, if it has one."""
    runtime_cls = _runtime_class(cls)
    if runtime_cls is None:
        return None
    member = inspect.getattr_static(runtime_cls, name, None)
    if isinstance(member, (classmethod, staticmethod)):
        member = member.__func__
    # Only functions and properties: a class attribute's __doc__ is its value's type's.
    if not (inspect.isfunction(member) or isinstance(member, property)) or not member.__doc__:
        return None
    return inspect.cleandoc(member.__doc__)


@cache
def _lines(path: Path) -> tuple[str, ...]:
    return tuple(path.read_text(encoding="utf-8").splitlines())


def _comment_doc(member: griffe.Object) -> str | None:
    """The `#:` lines right above an attribute's first line, joined."""
    path = member.filepath
    if member.lineno is None or not isinstance(path, Path):
        return None
    lines = _lines(path)
    index = member.lineno - 2  # the line above, 0-based
    comment: list[str] = []
    while index >= 0 and lines[index].strip().startswith("#:"):
        comment.insert(0, lines[index].strip()[2:].strip())
        index -= 1
    return " ".join(comment) or None


KINDS = {
    inspect.Parameter.POSITIONAL_ONLY: griffe.ParameterKind.positional_only,
    inspect.Parameter.POSITIONAL_OR_KEYWORD: griffe.ParameterKind.positional_or_keyword,
    inspect.Parameter.VAR_POSITIONAL: griffe.ParameterKind.var_positional,
    inspect.Parameter.KEYWORD_ONLY: griffe.ParameterKind.keyword_only,
    inspect.Parameter.VAR_KEYWORD: griffe.ParameterKind.var_keyword,
}


def _attrs_init(runtime_cls: type) -> griffe.Function:
    """The attrs-generated `__init__` of `runtime_cls`, as griffe would have read it."""
    fields = {field.alias: field for field in attrs.fields(runtime_cls)}
    parameters = [griffe.Parameter("self", kind=griffe.ParameterKind.positional_or_keyword)]
    for parameter in inspect.signature(runtime_cls).parameters.values():
        default = None
        if parameter.default is not inspect.Parameter.empty:
            field = fields.get(parameter.name)
            value = field.default if field is not None else parameter.default
            is_factory = isinstance(value, attrs.Factory)
            default = f"{value.factory.__name__}()" if is_factory else repr(value)
        annotation = parameter.annotation
        parameters.append(
            griffe.Parameter(
                parameter.name,
                annotation=None if annotation is inspect.Parameter.empty else str(annotation),
                kind=KINDS[parameter.kind],
                default=default,
            )
        )
    return griffe.Function("__init__", parameters=griffe.Parameters(*parameters), returns="None")


class MissingDocstrings(griffe.Extension):
    """Fill missing docstrings of `fireworks_deploy` class members (see the module docstring)."""

    def on_package(self, *, pkg: griffe.Module, **kwargs: Any) -> None:
        """Run once the package is loaded: every member of every class of every module."""
        if pkg.name != PACKAGE:
            return
        for cls in _classes(pkg):
            runtime_cls = _runtime_class(cls)
            if runtime_cls is not None and attrs.has(runtime_cls) and "__init__" not in cls.members:
                cls.set_member("__init__", _attrs_init(runtime_cls))
            parser = cls.docstring.parser if cls.docstring else None
            for name, member in cls.members.items():
                if member.is_alias or member.docstring is not None or name.startswith("_"):
                    continue
                if isinstance(member, griffe.Attribute):
                    doc = _comment_doc(member) or _runtime_doc(cls, name)
                else:
                    doc = _runtime_doc(cls, name)
                if doc:
                    member.docstring = griffe.Docstring(doc, parent=member, parser=parser)
