"""fireworks_deploy: asyncio-native management of Fireworks deployments and weight hot-loading."""

from importlib.metadata import PackageNotFoundError as _PackageNotFoundError
from importlib.metadata import version as _version

from ._config import RetryPolicy, Timeouts
from ._errors import (
    APIConnectionError,
    APIError,
    APIStatusError,
    APITimeoutError,
    AuthenticationError,
    BadRequestError,
    ConflictError,
    DeletionTimeoutError,
    DeploymentFailedError,
    DeploymentNotFoundError,
    EventLoopMismatchError,
    FireworksError,
    FleetError,
    HotloadFailedError,
    HotloadTimeoutError,
    InsecureTransportWarning,
    InternalServerError,
    InvalidConfigError,
    LeaseCleanupError,
    ManagerClosedError,
    NotFireworksAPIError,
    NotFoundError,
    OperationError,
    PermissionDeniedError,
    RateLimitError,
    ReadyTimeoutError,
    ResponseBodyError,
    ResponseTooLargeError,
    ResponseValidationError,
    ServerUnreachableError,
    WaitTimeoutError,
    WarmupError,
)
from ._fleet import FleetResult, Outcome
from ._lease import DeploymentLease, SyncDeploymentLease
from ._manager import AsyncDeploymentManager
from ._models import (
    DeploymentConfig,
    DeploymentInfo,
    DeploymentState,
    HotloadStatus,
    IncrementalSnapshotMetadata,
    LoadedAdapter,
    LoadingState,
    ReplicaStatus,
    WarmupResult,
)
from ._sync import DeploymentManager

try:
    __version__ = _version("fireworks-deploy")
except _PackageNotFoundError:  # pragma: no cover - running from a source tree without install
    __version__ = "0.0.0"

__all__ = [
    "APIConnectionError",
    "APIError",
    "APIStatusError",
    "APITimeoutError",
    "AsyncDeploymentManager",
    "AuthenticationError",
    "BadRequestError",
    "ConflictError",
    "DeletionTimeoutError",
    "DeploymentConfig",
    "DeploymentFailedError",
    "DeploymentInfo",
    "DeploymentLease",
    "DeploymentManager",
    "DeploymentNotFoundError",
    "DeploymentState",
    "EventLoopMismatchError",
    "FireworksError",
    "FleetError",
    "FleetResult",
    "HotloadFailedError",
    "HotloadStatus",
    "HotloadTimeoutError",
    "IncrementalSnapshotMetadata",
    "InsecureTransportWarning",
    "InternalServerError",
    "InvalidConfigError",
    "LeaseCleanupError",
    "LoadedAdapter",
    "LoadingState",
    "ManagerClosedError",
    "NotFireworksAPIError",
    "NotFoundError",
    "OperationError",
    "Outcome",
    "PermissionDeniedError",
    "RateLimitError",
    "ReadyTimeoutError",
    "ReplicaStatus",
    "ResponseBodyError",
    "ResponseTooLargeError",
    "ResponseValidationError",
    "RetryPolicy",
    "ServerUnreachableError",
    "SyncDeploymentLease",
    "Timeouts",
    "WaitTimeoutError",
    "WarmupError",
    "WarmupResult",
    "__version__",
]
