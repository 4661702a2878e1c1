"""Shared result types: aggregated rows and judged targets."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Stat:
    """Median and spread (min, max) over repeats."""

    median: float
    low: float
    high: float


@dataclass
class Row:
    """One (scenario, peer, x) cell, aggregated over its repeats."""

    scenario: str
    peer: str
    x: int
    repeats: int
    metrics: dict[str, Stat] = field(default_factory=dict)
    #: The official sequential peer ran this many items; numbers are scaled to `x`.
    extrapolated_from: int | None = None
    note: str = ""

    def get(self, name: str) -> float | None:
        stat = self.metrics.get(name)
        return None if stat is None else stat.median


@dataclass(frozen=True)
class Target:
    """One target of the issue, judged on this run's numbers (reported, never asserted)."""

    scenario: str
    target: str
    measured: str
    met: bool | None
    note: str = ""


@dataclass(frozen=True)
class Mode:
    """How big and how often: quick (CI, < 3 min) or full."""

    quick: bool
    repeats: int
    official: bool

    @property
    def name(self) -> str:
        return "quick" if self.quick else "full"


def find(rows: list[Row], scenario: str, peer: str, x: int | None = None) -> Row | None:
    """The row of `peer` (at `x`, or its largest x) in `scenario`."""
    matches = [r for r in rows if r.scenario == scenario and r.peer == peer]
    if x is not None:
        matches = [r for r in matches if r.x == x]
    return max(matches, key=lambda r: r.x) if matches else None


def ratio_text(value: float, reference: float) -> str:
    return f"{value / reference:.2f}x" if reference else "n/a"
