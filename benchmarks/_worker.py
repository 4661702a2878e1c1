"""One measured client run in a fresh process (so peak RSS belongs to this run alone).

``python -m benchmarks._worker '<json spec>'`` calls ``client_<peer>(base_url, params)`` of the
scenario module and prints its result, plus peak RSS, as the last stdout line.
"""

from __future__ import annotations

import importlib
import json
import sys
from typing import Any

from ._clients import peak_rss_mb


def main() -> None:
    spec: dict[str, Any] = json.loads(sys.argv[1])
    module = importlib.import_module(f"benchmarks.scenarios.{spec['scenario']}")
    client = getattr(module, f"client_{spec['peer']}")
    result: dict[str, Any] = client(spec["base_url"], spec["params"])
    result["maxrss_mb"] = peak_rss_mb()
    print(json.dumps(result))


if __name__ == "__main__":
    main()
