"""A stateful local emulator of the Fireworks control plane and gateway (like moto for AWS).

```python
from fireworks_deploy.local import LocalControlPlane, LocalServer

plane = LocalControlPlane(boot_seconds=0.5, hotload_seconds=0.2)
with LocalServer(plane) as server:
    ...  # point any client (ours or the official one) at server.base_url
```

In-process, ``httpx.AsyncClient(transport=plane.transport())`` talks to the same app without a
socket. Time is computed lazily from an injectable clock, so tests can pass a fake one.
"""

from ._app import LocalApp, LocalControlPlane, Stats, deployment_json
from ._faults import Fault, FaultRegistry
from ._server import LocalServer, serve
from ._state import ControlPlaneState, DeploymentSpec, DeploymentView, Event, ReplicaView

__all__ = [
    "ControlPlaneState",
    "DeploymentSpec",
    "DeploymentView",
    "Event",
    "Fault",
    "FaultRegistry",
    "LocalApp",
    "LocalControlPlane",
    "LocalServer",
    "ReplicaView",
    "Stats",
    "deployment_json",
    "serve",
]
