"""The `fireworks-deploy` command line (also `python -m fireworks_deploy`).

argparse only; rich (the optional `cli` extra) draws live progress when it is installed and the
output is a terminal. Every command runs the async core once, through `anyio.run`, with one
manager per invocation. Expected failures (every `FireworksError`) end as one `error: ...` line
on stderr and a documented exit code, never a traceback; the API key is never printed.

Layout: `_main` (the top-level parser and `main`), `_common` (exit codes, text or `--json`
output, the manager), `_args` (argument types, shared flags), `_format` (how SDK objects print),
and one module per command group, each defining its commands' flags beside their code:
`_deployments` (create, get, list, wait, scale-to-zero, delete), `_hotload` (hotload,
hotload-status, warmup), `_local` (local serve, demo).
"""

from ._common import EXIT_CODES, exit_code_for
from ._main import build_parser, main

__all__ = ["EXIT_CODES", "build_parser", "exit_code_for", "main"]
