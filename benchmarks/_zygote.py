"""Fork-per-run workers: imports are paid once, yet every measured run has a process of its own.

A worker started with ``--serve`` imports everything its clients need, then reads one JSON spec
per stdin line. For each it forks: the child runs the client and exits, so its peak RSS
(`ru_maxrss`, which starts afresh at the fork) and its CPU time are that run's alone, and
nothing one run leaves behind (connections, threads, caches) reaches the next. The parent never
runs a client or an event loop, and starts no thread, so forking it is safe.

Protocol, one line each on stdout: ``{"pid": N}`` when the child starts (so the harness can end
that child by its id if it overruns), then ``{"status": S, "result": "<json text>"}`` when it is
done (S is the `waitpid` status; non-zero means the client raised, and the result holds the
traceback as ``{"error": ...}``).

Standard library only: the official client's worker imports it from its own interpreter.
"""

from __future__ import annotations

import json
import os
import sys
import traceback
from collections.abc import Callable
from typing import Any


def _child(
    handle: Callable[[dict[str, Any]], dict[str, Any]], spec: dict[str, Any], w: int
) -> None:
    os.dup2(2, 1)  # a stray print in a client must not corrupt the protocol
    code = 0
    try:
        data = json.dumps(handle(spec))
    except BaseException:  # reported to the harness, which fails the run
        data = json.dumps({"error": traceback.format_exc()[-3000:]})
        code = 1
    with os.fdopen(w, "w", encoding="utf-8") as out:
        out.write(data)
    sys.stderr.flush()
    os._exit(code)


def serve(handle: Callable[[dict[str, Any]], dict[str, Any]]) -> None:
    """Fork one child per spec read from stdin, until stdin closes."""
    for line in sys.stdin:
        if not line.strip():
            continue
        spec = json.loads(line)
        r, w = os.pipe()
        pid = os.fork()
        if pid == 0:
            os.close(r)
            _child(handle, spec, w)
        os.close(w)
        print(json.dumps({"pid": pid}), flush=True)
        with os.fdopen(r, encoding="utf-8") as pipe:
            data = pipe.read()
        _, status = os.waitpid(pid, 0)
        print(json.dumps({"status": status, "result": data}), flush=True)
