"""Aggregate measurements (median and min/max over repeats) into a markdown table, JSON, PNG."""

from __future__ import annotations

import json
import math
import statistics
from collections import defaultdict
from collections.abc import Mapping
from pathlib import Path
from types import ModuleType
from typing import Any

from ._harness import PEERS, Measurement
from ._types import Row, Stat, Target

#: Counts that scale with the number of items when the official sequential peer is extrapolated.
_EXTENSIVE = {
    "wall_s",
    "cpu_s",
    "requests",
    "connections",
    "list_requests",
    "get_requests",
    "probe_requests",
    "status_requests",
    "polling_requests",
    "create_reads",
    "base_s",
    "delta_s",
}
#: Per-scenario columns after the common ones: (metric, header, format).
COLUMNS: dict[str, list[tuple[str, str, str]]] = {
    "fleet_readiness": [
        ("creates_s", "creates s", "{:.2f}"),
        ("slowest_boot_s", "slowest boot s", "{:.2f}"),
        ("bound_s", "bound s", "{:.2f}"),
        ("wall_over_bound", "wall/bound", "{:.2f}"),
        ("polling_requests", "polling req", "{:.0f}"),
        ("polling_per_interval", "polling req/interval", "{:.1f}"),
        ("list_requests", "list", "{:.0f}"),
        ("get_requests", "get", "{:.0f}"),
        ("probe_requests", "probes", "{:.0f}"),
        ("detect_median_s", "detect median s", "{:.2f}"),
    ],
    "hotload_broadcast": [
        ("base_s", "base s", "{:.2f}"),
        ("delta_s", "delta s", "{:.2f}"),
        ("status_requests", "status req", "{:.0f}"),
    ],
    "detection_latency": [
        ("load_median_s", "load s", "{:.2f}"),
        ("first_load_s", "base latency s", "{:.2f}"),
        ("first_delta_s", "first delta latency s", "{:.2f}"),
        ("steady_median_s", "steady latency median s", "{:.2f}"),
        ("latency_max_s", "latency max s", "{:.2f}"),
        ("status_per_step", "status req/step", "{:.2f}"),
        ("status_per_step_steady", "status req/step steady", "{:.2f}"),
    ],
    "many_waiters": [
        ("status_requests", "status req", "{:.0f}"),
        ("interval_s", "interval s", "{:g}"),
        ("status_per_interval", "status req/interval", "{:.2f}"),
    ],
    "per_call": [
        ("us_per_call", "µs/call", "{:.0f}"),
        ("cpu_us_per_call", "CPU µs/call", "{:.0f}"),
    ],
    "scale": [
        ("polls", "polls", "{:.0f}"),
        ("polls_per_cpu_s", "polls/CPU-s", "{:.0f}"),
        ("cpu_us_per_poll", "CPU µs/poll", "{:.0f}"),
        ("cores", "cores", "{:.2f}"),
        ("steady_cores", "steady cores", "{:.2f}"),
        ("slip_p50_s", "slip p50 s", "{:.3f}"),
        ("slip_p99_s", "slip p99 s", "{:.3f}"),
        ("slip_max_s", "slip max s", "{:.2f}"),
        ("expired_unsent", "expired unsent", "{:.0f}"),
        ("completed", "completed", "{:.0f}"),
    ],
}


def metrics_of(m: Measurement, scenario: ModuleType) -> dict[str, float]:
    """The flat numbers of one measurement, scaled if the run was a capped official one."""
    if m.client.get("skipped"):
        return {}
    values: dict[str, float] = {
        "wall_s": float(m.client.get("wall_s", 0.0)),
        "cpu_s": float(m.client.get("cpu_s", 0.0)),
        "maxrss_mb": float(m.client.get("maxrss_mb", 0.0)),
        "requests": float(sum(m.requests.values())),
        "connections": float(m.connections),
    }
    values.update({k: float(v) for k, v in scenario.derive(m).items()})
    if m.run.measured_x:
        factor = m.run.x / m.run.measured_x
        for key in _EXTENSIVE & values.keys():
            values[key] *= factor
    return values


def aggregate(measurements: list[Measurement], scenarios: Mapping[str, ModuleType]) -> list[Row]:
    grouped: dict[tuple[str, str, int], list[Measurement]] = defaultdict(list)
    for m in measurements:
        grouped[m.run.scenario, m.run.peer, m.run.x].append(m)
    rows = []
    for (scenario, peer, x), ms in grouped.items():
        samples: dict[str, list[float]] = defaultdict(list)
        for m in ms:
            for key, value in metrics_of(m, scenarios[scenario]).items():
                if not math.isnan(value):
                    samples[key].append(value)
        row = Row(scenario, peer, x, len(ms), extrapolated_from=ms[0].run.measured_x)
        row.metrics = {
            k: Stat(statistics.median(v), min(v), max(v)) for k, v in samples.items() if v
        }
        notes = {str(m.client.get("skipped") or m.client.get("note") or "") for m in ms}
        row.note = "; ".join(sorted(n for n in notes if n))
        rows.append(row)
    return rows


def _cell(row: Row, key: str, fmt: str, spread: bool = False) -> str:
    stat = row.metrics.get(key)
    if stat is None:
        return "-"
    text = fmt.format(stat.median)
    if spread and row.repeats > 1 and stat.high > stat.low:
        text += f" ({fmt.format(stat.low)}-{fmt.format(stat.high)})"
    return text


def markdown(
    rows: list[Row],
    targets: list[Target],
    scenarios: Mapping[str, ModuleType],
    meta: Mapping[str, Any],
) -> str:
    out = [
        f"# fireworks_deploy benchmarks ({meta['mode']} mode)",
        "",
        f"{meta['date']} · Python {meta['python']} · {meta['cpus']} CPUs · load average at start "
        f"{meta['loadavg']} · harness run {meta['duration_s']:.0f}s · official client: "
        f"{meta['official']}",
        "",
        "Scenario times: "
        + ", ".join(f"{name} {seconds:.0f}s" for name, seconds in meta["scenario_s"].items()),
        "",
        "Medians over repeats, (min-max) where repeats > 1. CPU = the client process only; "
        "requests and connections are counted by the server. `~N` = official sequential run "
        "capped at N items and scaled linearly.",
        "",
        "## Targets",
        "",
        "| scenario | target | measured | met |",
        "|---|---|---|---|",
    ]
    for t in targets:
        met = "n/a" if t.met is None else ("**met**" if t.met else "**missed**")
        note = f" - {t.note}" if t.note else ""
        out.append(f"| {t.scenario} | {t.target} | {t.measured}{note} | {met} |")
    for name, module in scenarios.items():
        mine = [r for r in rows if r.scenario == name]
        if not mine:
            continue
        extra = COLUMNS.get(name, [])
        out += [
            "",
            f"## {module.TITLE}",
            "",
            "| peer | "
            + module.X_LABEL
            + " | wall s | CPU s | requests | conns | RSS MB | "
            + " | ".join(h for _, h, _ in extra)
            + " |",
            "|---|---:|---:|---:|---:|---:|---:|" + "---:|" * len(extra),
        ]
        for row in sorted(mine, key=lambda r: (list(PEERS).index(r.peer), r.x)):
            x = f"{row.x}" + (f" (~{row.extrapolated_from})" if row.extrapolated_from else "")
            label = PEERS[row.peer].label + (f" - {row.note}" if row.note else "")
            cells = [
                label,
                x,
                _cell(row, "wall_s", "{:.2f}", spread=True),
                _cell(row, "cpu_s", "{:.2f}"),
                _cell(row, "requests", "{:.0f}"),
                _cell(row, "connections", "{:.0f}"),
                _cell(row, "maxrss_mb", "{:.0f}"),
                *(_cell(row, key, fmt) for key, _, fmt in extra),
            ]
            out.append("| " + " | ".join(cells) + " |")
    return "\n".join(out) + "\n"


def to_json(
    rows: list[Row], targets: list[Target], measurements: list[Measurement], meta: Mapping[str, Any]
) -> str:
    def stat(s: Stat) -> dict[str, float]:
        return {"median": s.median, "min": s.low, "max": s.high}

    raw = []
    for m in measurements:
        client = {k: v for k, v in m.client.items() if k != "returned"}
        raw.append(
            {
                "scenario": m.run.scenario,
                "peer": m.run.peer,
                "x": m.run.x,
                "measured_x": m.run.measured_x,
                "params": dict(m.run.params),
                "plane": dict(m.run.plane),
                "client": client,
                "requests": m.requests,
                "connections": m.connections,
            }
        )
    data = {
        "meta": dict(meta),
        "targets": [t.__dict__ for t in targets],
        "rows": [
            {
                "scenario": r.scenario,
                "peer": r.peer,
                "label": PEERS[r.peer].label,
                "x": r.x,
                "repeats": r.repeats,
                "extrapolated_from": r.extrapolated_from,
                "note": r.note,
                "metrics": {k: stat(v) for k, v in r.metrics.items()},
            }
            for r in rows
        ],
        "runs": raw,
    }
    return json.dumps(data, indent=1, sort_keys=False)


#: (scenario, metric, title, log-x) for the scaling-curve panels; bars for the rest.
_CURVES = [
    ("fleet_readiness", "wall_s", "1. Fleet readiness: wall s vs N", True),
    ("fleet_readiness", "polling_per_interval", "1. Fleet readiness: polling req/interval", True),
    ("many_waiters", "status_requests", "4. Many waiters: status requests vs M", True),
]
_BARS = [
    ("detection_latency", "steady_median_s", "3. Detection latency, steady state: s"),
    ("per_call", "cpu_us_per_call", "5. CPU µs per get"),
    ("scale", "cpu_us_per_poll", "6. Scale: CPU µs per poll"),
]


def plot(rows: list[Row], path: Path) -> str:
    """Write the PNG; returns a message (the plot is skipped if matplotlib is missing)."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return "matplotlib is not installed: plot skipped (pip install 'fireworks-deploy[bench]')"
    fig, axes = plt.subplots(2, 3, figsize=(17, 9.5))
    for ax, (scenario, metric, title, logx) in zip(axes[0], _CURVES, strict=True):
        for peer in PEERS:
            points = sorted(
                (r.x, r.get(metric))
                for r in rows
                if r.scenario == scenario and r.peer == peer and r.get(metric) is not None
            )
            if points:
                xs, ys = zip(*points, strict=True)
                ax.plot(xs, ys, marker="o", label=PEERS[peer].label)
        ax.set_title(title, fontsize=10)
        if logx:
            ax.set_xscale("log", base=2)
        ax.set_yscale("log")
        ax.grid(True, alpha=0.3)
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=6)
    for ax, (scenario, metric, title) in zip(axes[1], _BARS, strict=True):
        mine = [r for r in rows if r.scenario == scenario and r.get(metric) is not None]
        mine.sort(key=lambda r: (list(PEERS).index(r.peer), r.x))
        labels = [f"{PEERS[r.peer].label}\nx={r.x}" for r in mine]
        ax.barh(labels, [r.get(metric) or 0.0 for r in mine])
        ax.set_title(title, fontsize=10)
        ax.tick_params(axis="y", labelsize=6)
        ax.grid(True, axis="x", alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return f"plot written to {path}"
