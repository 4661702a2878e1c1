"""A stateful local emulator of the Fireworks control plane and gateway (like moto for AWS).

```python
from fireworks_deploy.local import LocalControlPlane, LocalServer

plane = LocalControlPlane(boot_seconds=0.5, hotload_seconds=0.2)
with LocalServer(plane) as server:
    ...  # point any client (ours or the official one) at server.base_url
```

In-process, ``httpx.AsyncClient(transport=plane.transport())`` talks to the same app without a
socket. Time is computed lazily from an injectable clock, so tests can pass a fake one.

It is strict where the real service is strict (a delta must follow the served snapshot, so a
repeated delta POST is refused; a second create of an id is 409), serves what real code written
for the official client reads (deployment shapes and their versions, nested ``updateMask`` paths,
scale from zero on demand), and can be made hostile with :class:`Fault` (see ``_faults.py``).
"""

from ._app import LocalApp, LocalControlPlane, Stats, deployment_json
from ._faults import Fault, FaultRegistry
from ._server import LocalServer, serve
from ._shapes import DeploymentShape, ShapeCatalog, ShapeVersion
from ._state import (
    AutoscalingPolicy,
    ControlPlaneState,
    DeploymentSpec,
    DeploymentView,
    Event,
    ReplicaView,
)

__all__ = [
    "AutoscalingPolicy",
    "ControlPlaneState",
    "DeploymentShape",
    "DeploymentSpec",
    "DeploymentView",
    "Event",
    "Fault",
    "FaultRegistry",
    "LocalApp",
    "LocalControlPlane",
    "LocalServer",
    "ReplicaView",
    "ShapeCatalog",
    "ShapeVersion",
    "Stats",
    "deployment_json",
    "serve",
]
