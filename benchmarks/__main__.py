"""``python -m benchmarks [--quick | --full] [--scenario NAME ...] [--out DIR]``.

Starts the local control plane in its own process, runs every scenario's peers (one fresh
client process per measured run), and writes ``results.md``, ``results.json`` and
``scaling.png`` to ``--out``. Timings are reported, never asserted: the exit status is non-zero
only if the harness itself breaks.
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import sys
import time
from pathlib import Path
from types import ModuleType

from . import _report
from ._harness import (
    HarnessError,
    Measurement,
    Run,
    Server,
    Worker,
    official_python,
    official_worker,
    our_worker,
)
from ._types import Mode
from .scenarios import SCENARIOS

DEFAULT_OUT = Path(__file__).resolve().parent / "results"


def parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__)
    size = parser.add_mutually_exclusive_group()
    size.add_argument("--quick", action="store_true", help="CI size, < 3 minutes (default)")
    size.add_argument("--full", action="store_true", help="full size, 3 repeats, < 15 minutes")
    parser.add_argument(
        "--scenario", action="append", choices=list(SCENARIOS), help="run only these (repeatable)"
    )
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="results directory")
    parser.add_argument("--repeats", type=int, help="repeats per run (quick 1, full 3)")
    parser.add_argument(
        "--official-python",
        help="interpreter with fireworks-ai==1.2.30 installed (or set BENCH_OFFICIAL_PYTHON); "
        "by default this interpreter, else the official peer is skipped",
    )
    parser.add_argument("--no-official", action="store_true", help="skip the official client")
    return parser.parse_args(argv)


def repeats_of(run: Run, scenario: ModuleType, mode: Mode) -> int:
    """Mode repeats, except for runs whose length is sleeps (official, long scenarios)."""
    if run.measured_x or run.x >= 10_000:
        return 1
    if run.peer.startswith("official") and run.scenario != "per_call":
        return 1
    return min(mode.repeats, getattr(scenario, "MAX_REPEATS", mode.repeats))


class Workers:
    """Our worker, and the official client's (started on first use), closed together."""

    def __init__(self, official: str | None) -> None:
        self._official_python = official
        self._ours: Worker | None = None
        self._official: Worker | None = None

    def __enter__(self) -> Workers:
        return self

    def __exit__(self, *exc: object) -> None:
        for worker in (self._ours, self._official):
            if worker is not None:
                worker.close()

    def for_peer(self, peer: str) -> Worker:
        if peer.startswith("official"):
            assert self._official_python is not None  # plans include official peers only if found
            if self._official is None:
                self._official = Worker(official_worker(self._official_python), "official")
            return self._official
        if self._ours is None:
            self._ours = Worker(our_worker(), "our")
        return self._ours


def run_scenario(
    server: Server, scenario: ModuleType, mode: Mode, workers: Workers
) -> list[Measurement]:
    """Every run of the scenario, repeats interleaved (run 1, run 2, ..., run 1, run 2, ...), so
    that a neighbour's burst of load lands on several peers rather than on one peer's repeats."""
    runs = scenario.plan(mode)
    counts = [repeats_of(run, scenario, mode) for run in runs]
    found: list[Measurement] = []
    for repeat in range(max(counts, default=0)):
        for run, count in zip(runs, counts, strict=True):
            if repeat >= count:
                continue
            m = server.measure(run, workers.for_peer(run.peer), timeout_s=900)
            found.append(m)
            print(
                f"  {run.scenario:18} {run.peer:18} x={run.x:<6} "
                f"wall {m.client.get('wall_s', 0):7.2f}s "
                f"cpu {m.client.get('cpu_s', 0):6.2f}s "
                f"req {sum(m.requests.values()):6} conn {m.connections}",
                flush=True,
            )
    return found


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    started = time.monotonic()
    python, why = (None, "skipped (--no-official)")
    if not args.no_official:
        python, why = official_python(args.official_python)
    official_status = f"fireworks-ai via {why}" if python else f"not installed - {why}"
    mode = Mode(
        quick=not args.full,
        repeats=args.repeats or (3 if args.full else 1),
        official=python is not None,
    )
    chosen = {name: SCENARIOS[name] for name in args.scenario or SCENARIOS}
    print(f"benchmarks: {mode.name} mode; official client: {official_status}", flush=True)
    measurements: list[Measurement] = []
    durations: dict[str, float] = {}
    try:
        with Server() as server, Workers(python) as workers:
            for name, scenario in chosen.items():
                t0 = time.monotonic()
                measurements += run_scenario(server, scenario, mode, workers)
                durations[name] = time.monotonic() - t0
                print(f"{name}: {durations[name]:.0f}s", flush=True)
    except HarnessError as exc:
        print(f"benchmark harness failed: {exc}", file=sys.stderr)
        return 1
    rows = _report.aggregate(measurements, chosen)
    targets = [t for s in chosen.values() for t in s.targets(rows, mode)]
    meta = {
        "mode": mode.name,
        "repeats": mode.repeats,
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
        "loadavg": " ".join(f"{v:.2f}" for v in os.getloadavg()),
        "duration_s": time.monotonic() - started,
        "scenario_s": {k: round(v, 1) for k, v in durations.items()},
        "official": official_status,
        "scenarios": list(chosen),
    }
    args.out.mkdir(parents=True, exist_ok=True)
    table = _report.markdown(rows, targets, chosen, meta)
    (args.out / "results.md").write_text(table, encoding="utf-8")
    (args.out / "results.json").write_text(
        _report.to_json(rows, targets, measurements, meta), encoding="utf-8"
    )
    print(_report.plot(rows, args.out / "scaling.png"))
    print(table)
    print(f"total {time.monotonic() - started:.0f}s; results in {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
