"""MkDocs hook: pages take text that has its home elsewhere, so it is written once.

A line of its own in a page is replaced by README text:

`<!-- readme: intro -->`
    what comes before the first `## ` heading, without the `# ` title;
`<!-- readme: commands -->`
    the first fenced block (the two set-up commands) and the paragraph after it;
`<!-- readme: ## <heading> -->`
    the body of the `## <heading>` section (backticks included), without the heading line.

Links from the README to files that are pages here are rewritten to those pages; a marker whose
text the README lacks fails the build, naming it.

And `<!-- api: exported errors -->` becomes one mkdocstrings `::: fireworks_deploy.<Name>` block
per exception or warning class in `fireworks_deploy.__all__`, so a new error is in the API
reference without an edit here.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from mkdocs.exceptions import PluginError

import fireworks_deploy

README = Path(__file__).resolve().parents[2] / "README.md"
MARKER = re.compile(r"^<!-- readme: (?P<what>.+?) -->[ \t]*$", re.MULTILINE)
ERRORS_MARKER = re.compile(r"^<!-- api: exported errors -->[ \t]*$", re.MULTILINE)
#: README link targets that are pages of the site (pages that include README text sit at the
#: top of docs/).
LINKS = {
    "docs/fault-matrix.md": "fault-matrix.md",
    "docs/soak.md": "soak.md",
    "benchmarks/results/results.md": "benchmarks.md",
}


def _blocks(lines: list[str]) -> list[tuple[str, bool]]:
    """Each line with whether it sits inside a fenced code block (fence lines count as inside)."""
    marked: list[tuple[str, bool]] = []
    fenced = False
    for line in lines:
        fence = line.lstrip().startswith("```")
        marked.append((line, fenced or fence))
        if fence:
            fenced = not fenced
    return marked


def _headings(marked: list[tuple[str, bool]]) -> list[int]:
    return [i for i, (line, fenced) in enumerate(marked) if not fenced and line.startswith("## ")]


def _intro(marked: list[tuple[str, bool]]) -> list[str]:
    end = next(iter(_headings(marked)), len(marked))
    lines = [line for line, _ in marked[:end]]
    if lines and lines[0].startswith("# "):
        lines = lines[1:]
    return lines


def _commands(marked: list[tuple[str, bool]]) -> list[str]:
    start = next((i for i, (line, _) in enumerate(marked) if line.startswith("```")), None)
    if start is None:
        raise PluginError("README.md has no fenced code block for <!-- readme: commands -->.")
    end = start + 1
    while end < len(marked) and marked[end][1] and not marked[end][0].startswith("```"):
        end += 1
    end += 1  # the closing fence
    while end < len(marked) and not marked[end][0].strip():
        end += 1
    while end < len(marked) and marked[end][0].strip():  # the paragraph that explains them
        end += 1
    return [line for line, _ in marked[start:end]]


def _section(marked: list[tuple[str, bool]], heading: str) -> list[str]:
    starts = _headings(marked)
    for n, start in enumerate(starts):
        if marked[start][0].rstrip() == heading:
            end = starts[n + 1] if n + 1 < len(starts) else len(marked)
            return [line for line, _ in marked[start + 1 : end]]
    found = ", ".join(repr(marked[i][0]) for i in starts)
    raise PluginError(f"README.md has no section {heading!r} (its sections: {found}).")


def readme_text(what: str) -> str:
    """The README text a marker names, with links to pages of the site rewritten."""
    marked = _blocks(README.read_text(encoding="utf-8").splitlines())
    if what == "intro":
        lines = _intro(marked)
    elif what == "commands":
        lines = _commands(marked)
    elif what.startswith("## "):
        lines = _section(marked, what)
    else:
        raise PluginError(f"Unknown README marker <!-- readme: {what} -->.")
    text = "\n".join(lines).strip("\n")
    for target, page in LINKS.items():
        text = text.replace(f"]({target})", f"]({page})")
    return text


def exported_errors() -> str:
    """A `:::` block for each exception and warning class the package exports, by name."""
    names = sorted(
        name
        for name in fireworks_deploy.__all__
        if isinstance(value := getattr(fireworks_deploy, name), type)
        and issubclass(value, BaseException)  # warnings included
    )
    # Each class shows only what it adds: the attributes every APIError has are listed once.
    options = "    options:\n      inherited_members: false"
    return "\n\n".join(f"::: fireworks_deploy.{name}\n{options}" for name in names)


def on_page_markdown(markdown: str, **kwargs: Any) -> str:
    """Replace each marker of a page with the text it names."""
    markdown = ERRORS_MARKER.sub(lambda _: exported_errors(), markdown)
    return MARKER.sub(lambda match: readme_text(match["what"]), markdown)
