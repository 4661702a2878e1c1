"""The scenarios: each module plans its runs, runs our peers' clients, derives and judges."""

from __future__ import annotations

from types import ModuleType

from . import (
    detection_latency,
    fleet_readiness,
    hotload_broadcast,
    many_waiters,
    per_call,
    scale,
)

#: In issue order.
SCENARIOS: dict[str, ModuleType] = {
    m.NAME: m
    for m in (
        fleet_readiness,
        hotload_broadcast,
        detection_latency,
        many_waiters,
        per_call,
        scale,
    )
}
