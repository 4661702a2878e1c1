"""The `fireworks-deploy` command line (also `python -m fireworks_deploy`).

argparse only; rich (the optional `cli` extra) draws live progress when it is installed and the
output is a terminal; piped, progress is plain lines with a heartbeat during long waits. Every
command runs the async core once, through `anyio.run`, with one manager per invocation. Expected
failures (every `FireworksError`, and usage errors) end as one `error: ...` line on stderr and a
documented exit code, never a traceback; with `--json` also as one `{"error": {...}}` document
on stdout. The SDK's retries and warnings are shown on stderr as they happen. The API key is
never printed.

Layout: `_main` (the top-level parser and `main`), `_common` (exit codes, text or `--json`
output, the manager, errors in the CLI's words), `_args` (argument types, shared flags),
`_format` (how SDK objects and errors print), `_notices` (the SDK's log records as stderr lines),
and one module per command group, each defining its commands' flags beside their code:
`_deployments` (create, get, list, wait, scale-to-zero, delete), `_hotload` (hotload,
hotload-status, warmup), `_local` (local serve, demo).
"""

from ._common import EXIT_CODES, exit_code_for
from ._main import build_parser, main

__all__ = ["EXIT_CODES", "build_parser", "exit_code_for", "main"]
