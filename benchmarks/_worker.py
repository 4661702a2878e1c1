"""Our clients' worker: one measured run per fresh process (so peak RSS belongs to that run).

``python -m benchmarks._worker --serve`` imports every scenario once, then forks one child per
JSON spec read from stdin (`benchmarks._zygote`). ``python -m benchmarks._worker '<json spec>'``
runs one spec in this process and prints its result as the last stdout line (for debugging).
Either way the client is ``client_<peer>(base_url, params)`` of the scenario module; the result
gets the process's peak RSS added.
"""

from __future__ import annotations

import contextlib
import importlib
import json
import sys
from typing import Any

from ._clients import errors_note, peak_rss_mb


def handle(spec: dict[str, Any]) -> dict[str, Any]:
    module = importlib.import_module(f"benchmarks.scenarios.{spec['scenario']}")
    client = getattr(module, f"client_{spec['peer']}")
    result: dict[str, Any] = client(spec["base_url"], spec["params"])
    result["maxrss_mb"] = peak_rss_mb()
    return errors_note(result)


def main() -> None:
    if sys.argv[1:] == ["--serve"]:
        from . import _zygote, scenarios

        assert scenarios.SCENARIOS  # every scenario module imported before the first fork
        for optional in ("aiohttp",):
            with contextlib.suppress(ImportError):
                importlib.import_module(optional)
        _zygote.serve(handle)
        return
    print(json.dumps(handle(json.loads(sys.argv[1]))))


if __name__ == "__main__":
    main()
