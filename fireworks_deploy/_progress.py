"""Live progress for long waits: each deployment's state and each replica's hot-load stage.

`Progress` renders with rich `Live` when its stream is a terminal and rich is installed (the
optional `cli` extra), and degrades to plain, timestamped log lines otherwise: one line per
change, never a redraw, and a heartbeat line when nothing changed for `HEARTBEAT_S` (a log
piped to a file must show the command is alive during a five-minute boot). The watchers poll
for display only, at a bounded rate (one status read per deployment per refresh), and never
decide anything: the SDK's own waits do that.
"""

from __future__ import annotations

import os
import time
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from types import TracebackType
from typing import TYPE_CHECKING, Any, TextIO, TypeVar, cast

import anyio

from ._errors import FireworksError
from ._models import DeploymentInfo, HotloadStatus

if TYPE_CHECKING:
    from ._manager import AsyncDeploymentManager

__all__ = [
    "HEARTBEAT_S",
    "Progress",
    "displaying",
    "heartbeat",
    "plural",
    "watch_deployments",
    "watch_hotloads",
]

T = TypeVar("T")

#: Display polls: at most one read per deployment per interval (the SDK's waits poll separately).
DEPLOYMENT_REFRESH_S = 1.0
HOTLOAD_REFRESH_S = 0.5
#: In plain mode, the longest silence during a wait: a line repeats the current view after it.
HEARTBEAT_S = 8.0
#: Up to this many deployments, a plain progress line names each; beyond, it counts states.
_INLINE_ROWS = 4


def plural(count: int, noun: str, plural_noun: str | None = None) -> str:
    """`1 deployment`, `2 deployments`; `plural_noun` for the others (`2 replicas` is regular,
    `plural(2, "retry", "retries")` is not)."""
    return f"{count} {noun if count == 1 else (plural_noun or noun + 's')}"


def _rich_available() -> bool:
    try:
        import rich  # noqa: F401, PLC0415 - optional dependency, imported only to probe it
    except ImportError:
        return False
    return True


def use_live(stream: TextIO) -> bool:
    """Whether `stream` gets the rich live view: a terminal, rich installed, TERM not dumb."""
    try:
        tty = stream.isatty()
    except (AttributeError, ValueError):
        return False
    return tty and os.environ.get("TERM") != "dumb" and _rich_available()


class _Row:
    __slots__ = ("detail", "line", "replicas", "short", "since", "state", "status")

    def __init__(self, now: float) -> None:
        self.line = self.short = "…"
        self.state = "…"
        self.detail = ""
        self.replicas = ""
        self.status = "pending"  # pending | ok | failed
        self.since = now


class Progress:
    """One display of many deployments, used as a context manager around a long operation.

    `log()` prints a line (above the live table, or as a plain line); `deployment()`,
    `replicas()` and `finish()` update a deployment's row. In plain mode, a row prints a line
    only when its text changes. `enabled=False` makes every method a no-op (for `--quiet`).
    """

    def __init__(
        self,
        stream: TextIO,
        *,
        live: bool | None = None,
        enabled: bool = True,
        title: str = "",
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._stream = stream
        self._enabled = enabled
        self._live_wanted = use_live(stream) if live is None else live
        self._title = title
        self._clock = clock
        self._started = clock()
        self._rows: dict[str, _Row] = {}
        self._last_line = ""
        self._last_write = self._started
        self._open = False
        self._console: Any = None
        self._live: Any = None

    @property
    def live(self) -> bool:
        """Whether rows are drawn as a rich live table (else printed as plain lines)."""
        return self._enabled and self._live_wanted

    @property
    def enabled(self) -> bool:
        """False under `--quiet`: every method is a no-op."""
        return self._enabled

    @property
    def open(self) -> bool:
        """Between `__enter__` and `close()`: lines about the operation belong here."""
        return self._open

    def __enter__(self) -> Progress:
        self._open = True
        if self.live:
            from rich.console import Console  # noqa: PLC0415 - optional dependency
            from rich.live import Live  # noqa: PLC0415

            self._console = Console(file=self._stream, force_terminal=True, highlight=False)
            self._live = Live(
                self._render(),
                console=self._console,
                refresh_per_second=8,
                transient=False,
                get_renderable=self._render,
            )
            self._live.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        """Stop the live view, leaving its last frame on screen."""
        self._open = False
        if self._live is not None:
            live, self._live = self._live, None
            live.stop()

    def clear_rows(self, title: str = "") -> None:
        """Start a new phase: keep the finished table in the scrollback, then start empty."""
        if self._live is not None and self._rows:
            self._console.print(self._render())
        self._rows.clear()
        self._last_line = ""
        self._title = title

    def set_title(self, title: str) -> None:
        self._title = title

    # -- output --------------------------------------------------------------------------

    def elapsed(self) -> float:
        return self._clock() - self._started

    def log(self, message: str, *, style: str | None = None) -> None:
        """A line of narrative (never the result of a command: that goes to stdout)."""
        if not self._enabled:
            return
        if self._console is not None:
            self._console.print(message, style=style, markup=False, highlight=False)
        else:
            self._write(message)

    def print_table(
        self, title: str, columns: Sequence[str], rows: Sequence[Sequence[str]]
    ) -> None:
        """A small table: rich when live, aligned plain text otherwise."""
        if not self._enabled:
            return
        if self._console is not None:
            from rich.table import Table  # noqa: PLC0415 - optional dependency

            table = Table(title=title, title_justify="left")
            for i, column in enumerate(columns):
                table.add_column(column, justify="left" if i == 0 else "right")
            for row in rows:
                table.add_row(*row)
            self._console.print(table)
            return
        self._stream.write(f"\n{title}\n" if title else "\n")
        self._stream.write(format_table(columns, rows))
        self._stream.flush()

    def _write(self, message: str) -> None:
        self._last_write = self._clock()
        self._stream.write(f"[{self.elapsed():6.2f}s] {message}\n")
        self._stream.flush()

    # -- rows ----------------------------------------------------------------------------

    def _row(self, deployment_id: str) -> _Row:
        row = self._rows.get(deployment_id)
        if row is None:
            row = self._rows[deployment_id] = _Row(self._clock())
        return row

    def deployment(self, deployment_id: str, state: str, detail: str = "") -> None:
        """The deployment's control-plane state (and a short detail, e.g. replica counts)."""
        if not self._enabled:
            return
        row = self._row(deployment_id)
        if state != row.state:
            row.since = self._clock()
        row.state, row.detail = state, detail
        row.line = f"{state}{f' ({detail})' if detail else ''}"
        row.short = state

    def replicas(self, deployment_id: str, status: HotloadStatus, identity: str) -> None:
        """Each replica's hot-load stage toward `identity`."""
        if not self._enabled:
            return
        row = self._row(deployment_id)
        row.replicas = describe_replicas(status, identity)
        row.line = row.replicas
        stages = sorted({s.rsplit(" ", 1)[-1] for s in row.replicas.split(", ")})
        row.short = "/".join(stages)
        if row.short != row.state:
            row.since = self._clock()
        row.state = row.short

    def _view(self, now: float | None = None) -> str:
        """The plain line for the current rows; with `now`, how long each has been so."""

        def since(row: _Row) -> str:
            return "" if now is None else f" for {now - row.since:.0f}s"

        if len(self._rows) <= _INLINE_ROWS:
            return " · ".join(f"{i}: {r.line}{since(r)}" for i, r in self._rows.items())
        counts: dict[str, int] = {}
        for row in self._rows.values():
            counts[row.short] = counts.get(row.short, 0) + 1
        return ", ".join(f"{n} {short}" for short, n in counts.items())

    def refresh(self) -> None:
        """End of one display poll: in plain mode, print one line if anything changed."""
        if not self._enabled or self._live is not None or not self._rows:
            return
        line = self._view()
        if line != self._last_line:
            self._last_line = line
            self._write(line)

    def beat(self) -> None:
        """In plain mode, after `HEARTBEAT_S` without a line, repeat the current view.

        A plain log (a pipe, a CI log) otherwise goes silent while nothing changes, which for a
        five-minute boot looks like a hang. The live view redraws its own `for` column.
        """
        if not self._enabled or self._live is not None or not self._open:
            return
        now = self._clock()
        if now - self._last_write < HEARTBEAT_S:
            return
        pending = [r for r in self._rows.values() if r.status == "pending"]
        if self._rows and not pending:
            return  # everything finished: the command is printing its result
        if self._rows:
            line = f"{self._view(now)} (still waiting)"
        else:
            line = f"{self._title or 'working'}: still waiting"
        self._write(line)

    def finish(self, deployment_id: str, text: str, *, ok: bool, label: str = "FAILED") -> None:
        """The deployment's operation ended; `text` says how (plain mode prints failures as
        `ID: LABEL: text`, e.g. `d1: TIMED OUT: after 600s, last seen CREATING`)."""
        if not self._enabled:
            return
        row = self._row(deployment_id)
        row.status = "ok" if ok else "failed"
        row.detail = text if ok or not label else f"{label.lower()}: {text}"
        if not ok and self._live is None:
            self._write(
                f"{deployment_id}: {label}: {text}" if label else f"{deployment_id}: {text}"
            )

    def _render(self) -> Any:
        from rich.table import Table  # noqa: PLC0415 - optional dependency
        from rich.text import Text  # noqa: PLC0415

        if not self._rows:
            return Text("")
        table = Table(title=self._title or None, title_justify="left", expand=False)
        table.add_column("deployment", no_wrap=True)
        table.add_column("state", no_wrap=True)
        table.add_column("replicas (hot-load stage)")
        table.add_column("detail")
        table.add_column("for", justify="right", no_wrap=True)
        now = self._clock()
        for deployment_id, row in self._rows.items():
            if row.status == "ok":
                mark = Text("✔ ", style="green")
            elif row.status == "failed":
                mark = Text("✘ ", style="red")
            else:
                mark = Text("… ", style="yellow")
            table.add_row(
                mark + Text(deployment_id),
                Text(row.state, style=_state_style(row.state)),
                row.replicas,
                row.detail,
                f"{now - row.since:.1f}s",
            )
        return table


def _state_style(state: str) -> str:
    if state in ("READY", "done"):
        return "green"
    if state in ("FAILED", "DELETING", "DELETED", "error", "gone"):
        return "red"
    return "yellow"


def describe_replicas(status: HotloadStatus, identity: str | None = None) -> str:
    """`pod-1 loading, pod-2 done` (or `no replicas yet`)."""
    if not status.replicas:
        return "no replicas yet"
    parts = []
    for replica in status.replicas:
        stage = replica.loading_state.stage
        if identity is not None and replica.serves(identity):
            stage = "serving"
        parts.append(f"{replica.identity or '?'} {stage}")
    return ", ".join(parts)


def describe_info(info: DeploymentInfo) -> str:
    """Replica counts, when the control plane reports them."""
    if info.replica_count is None and info.desired_replica_count is None:
        return ""
    return f"replicas {info.replica_count or 0}/{info.desired_replica_count or 0}"


def format_table(columns: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """Left-aligned columns separated by two spaces, header first; pipe-friendly."""
    widths = [len(c) for c in columns]
    for row in rows:
        widths = [max(w, len(cell)) for w, cell in zip(widths, row, strict=True)]
    lines = [
        "  ".join(cell.ljust(w) for cell, w in zip(line, widths, strict=True)).rstrip()
        for line in [list(columns), *rows]
    ]
    return "\n".join(lines) + "\n"


# -- display pollers -------------------------------------------------------------------------


async def watch_deployments(
    manager: AsyncDeploymentManager,
    deployment_ids: Sequence[str],
    progress: Progress,
    *,
    interval_s: float = DEPLOYMENT_REFRESH_S,
) -> None:
    """Show each deployment's state until cancelled: one `get` (or one list read) per refresh.

    Errors are shown, never raised: the wait running beside this decides the outcome.
    """
    ids = list(deployment_ids)
    while True:
        try:
            if len(ids) == 1:
                info = await manager.get(ids[0])
                found = {} if info is None else {ids[0]: info}
            else:
                found = {i.deployment_id: i for i in await manager.list_deployments()}
        except FireworksError as exc:
            for deployment_id in ids:
                progress.deployment(deployment_id, "?", f"status read failed: {exc}")
        else:
            for deployment_id in ids:
                seen = found.get(deployment_id)
                if seen is None:
                    progress.deployment(deployment_id, "not found")
                else:
                    progress.deployment(deployment_id, seen.state, describe_info(seen))
        progress.refresh()
        await anyio.sleep(interval_s)


async def watch_hotloads(
    manager: AsyncDeploymentManager,
    targets: Sequence[tuple[str, str]],
    identity: str,
    progress: Progress,
    *,
    interval_s: float = HOTLOAD_REFRESH_S,
) -> None:
    """Show each replica's hot-load stage until cancelled; `targets` are (deployment, base model).

    One status read per deployment per refresh, all deployments read concurrently.
    """

    async def one(deployment_id: str, base_model: str) -> None:
        try:
            status = await manager.hotload_status(deployment_id, base_model)
        except FireworksError:
            return  # not ready for status reads yet; the wait beside us reports real failures
        progress.replicas(deployment_id, status, identity)

    while True:
        async with anyio.create_task_group() as tg:
            for deployment_id, base_model in targets:
                tg.start_soon(one, deployment_id, base_model)
        progress.refresh()
        await anyio.sleep(interval_s)


async def heartbeat(progress: Progress) -> None:
    """A display watcher: give `progress` its chance to print a heartbeat, until cancelled."""
    while True:
        await anyio.sleep(min(1.0, HEARTBEAT_S / 2))
        progress.beat()


async def displaying(
    operation: Callable[[], Awaitable[T]], *watchers: Callable[[], Coroutine[Any, Any, None]]
) -> T:
    """Run `operation` with display `watchers` beside it; stop them when it ends.

    The operation's own exception propagates as itself (not wrapped in an exception group).
    """
    result: T | None = None
    error: Exception | None = None
    async with anyio.create_task_group() as tg:
        for watcher in watchers:
            tg.start_soon(watcher)
        try:
            result = await operation()
        except Exception as exc:  # re-raised below, outside the task group
            error = exc
        finally:
            tg.cancel_scope.cancel()
    if error is not None:
        raise error
    return cast("T", result)
