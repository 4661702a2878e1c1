"""The local control plane's state machine: deployments, replicas, hot-loads, in plain Python.

Time is lazy. Nothing runs in the background: every deployment stores the instants at which its
timed phases end (boot, pod roll, deletion, each replica's hot-load), and every read first
*advances* that one deployment to the clock's current value. The same model therefore behaves
identically in-process and over a socket, and a test can drive it with a fake clock.

Transitions are recorded as :class:`Event` objects stamped with the instant they became true
(computed from the model), not the instant a reader happened to observe them.

Rules worth knowing:

* The number of replicas is ``max_replica_count``; when that is 0 but ``min_replica_count`` is
  positive, ``min_replica_count`` (0 means "unset" on the wire, as in proto3). A deployment with
  zero replicas still becomes ``READY`` after the boot time; it serves nothing (completions get
  ``UNAVAILABLE``/``DEPLOYMENT_SCALING_UP``) and hot-loads are refused until it is scaled up.
* Scaling to zero keeps ``READY`` and drops the pods and the served snapshot. Scaling back up boots
  fresh pods over ``boot_seconds``; they start from the base weights (no snapshot served).
* Scale from zero on demand: a completion for a ``READY`` deployment with no pods boots one pod
  over ``boot_seconds`` and is answered ``UNAVAILABLE``/``DEPLOYMENT_SCALING_UP`` until it is
  ready. Such an on-demand pod (the configured replica count is 0) goes away again after
  ``autoscaling_policy.scale_to_zero_window`` (default one hour) without completions.
* Changing ``hot_load_trainer_job`` or ``hot_load_transition_type`` on a serving deployment rolls
  the pods: ``UPDATING`` for ``update_seconds``, new pod identities, hot-load state reset.
* One hot-load at a time. Replicas load in parallel, each over ``hotload_seconds`` (plus jitter);
  a replica keeps serving its old snapshot until its own load is done. The deployment's committed
  snapshot changes when the last replica finishes.
* The chain is strict: a delta is accepted only if its ``previous_snapshot_identity`` is what the
  replicas serve, so re-POSTing a delta that was already applied is refused
  (``INVALID_ARGUMENT``), as the real gateway does. A repeat while the same load is still in
  progress is answered ``in_progress``; a full load of the served identity ``already_loaded``.
"""

from __future__ import annotations

import datetime
import hashlib
import math
import random
import re
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from typing import Literal, Protocol

__all__ = [
    "COMPRESSION_FORMATS",
    "AutoscalingPolicy",
    "ControlPlaneState",
    "DeploymentSpec",
    "DeploymentView",
    "ErrorKind",
    "Event",
    "LoadPlan",
    "ReplicaView",
    "Sample",
    "StateError",
    "StateHooks",
    "replicas_for",
]

ErrorKind = Literal[
    "INVALID_ARGUMENT",
    "NOT_FOUND",
    "ALREADY_EXISTS",
    "ABORTED",
    "FAILED_PRECONDITION",
    "UNAVAILABLE",
    "TOO_EARLY",
]

COMPRESSION_FORMATS = frozenset(
    {"arc_v1", "arc_v2", "arc_v3", "xor_one_to_one_zlib", "xor_one_to_one_zstd"}
)
CHECKSUM_FORMAT = "alder32"  # sic: the wire token misspells Adler-32 on purpose
TRANSITION_TYPES = frozenset({"ASYNC", "SYNC"})
BUCKET_TYPES = frozenset({"BUCKET_TYPE_UNSPECIFIED", "MINIO", "S3", "NEBIUS", "FW_HOSTED"})
RECENT_USE_SECONDS = 3600.0
SCALE_TO_ZERO_WINDOW = 3600.0  # the documented default of autoscalingPolicy.scaleToZeroWindow
MIN_SCALE_TO_ZERO_WINDOW = 300.0  # "must be at least 5 minutes"
MAX_SCALE_WINDOW = 3600.0  # scale up/down windows "must be less than or equal to 1 hour"
VOCAB = 32000

_ID_RE = re.compile(r"[a-z][a-z0-9-]{0,62}")
_POLICY_FIELDS = frozenset(
    {"scale_up_window", "scale_down_window", "scale_to_zero_window", "load_targets"}
)
_TRAINER_RE = re.compile(r"accounts/[^/]+/rlorTrainerJobs/([^/]+)")


class StateError(Exception):
    """A request the state machine refuses; ``kind`` is a google.rpc-style code name."""

    def __init__(self, kind: ErrorKind, message: str) -> None:
        super().__init__(message)
        self.kind: ErrorKind = kind
        self.message = message


@dataclass(frozen=True)
class Event:
    """A transition, stamped with the clock value at which it became true."""

    kind: str
    deployment_id: str
    detail: str | None
    at: float


@dataclass(frozen=True)
class LoadPlan:
    """How one hot-load will go: fail at the end, one replica lagging behind, status lagging.

    ``status_lag`` seconds after the load starts, the hot-load status still shows the state from
    before the POST (no mention of the new identity).
    """

    fail: bool = False
    lagging_replica: int | None = None
    lag_seconds: float = math.inf
    status_lag: float = 0.0


class StateHooks(Protocol):
    """Decisions the state machine delegates (the fault registry implements these)."""

    def boot_fails(self, deployment_id: str) -> bool:
        """Whether this deployment's boot should end in ``FAILED``."""

    def hotload_plan(self, deployment_id: str, identity: str) -> LoadPlan:
        """How the hot-load of ``identity`` that is starting now should go."""


@dataclass(frozen=True)
class AutoscalingPolicy:
    """The autoscaler settings of a deployment; windows are in seconds (``None``: default)."""

    scale_up_window: float | None = None
    scale_down_window: float | None = None
    scale_to_zero_window: float | None = None
    load_targets: dict[str, float] | None = None


@dataclass
class DeploymentSpec:
    """The user-controlled fields of a deployment (snake_case, no wire knowledge)."""

    base_model: str
    display_name: str = ""
    description: str = ""
    min_replica_count: int = 0
    max_replica_count: int = 1
    accelerator_type: str | None = None
    accelerator_count: int | None = None
    deployment_shape: str | None = None
    region: str | None = None
    enable_hot_load: bool = False
    hot_load_bucket_type: str | None = None
    hot_load_bucket_url: str | None = None
    hot_load_trainer_job: str | None = None
    hot_load_transition_type: str | None = None
    for_training: bool = False
    extra_args: list[str] | None = None
    extra_values: dict[str, str] | None = None
    annotations: dict[str, str] | None = None
    preemptible: bool = False
    autoscaling_policy: AutoscalingPolicy | None = None
    skip_shape_validation: bool = False
    accept_shapeless_risk: bool = False
    disable_speculative_decoding: bool = False


@dataclass(frozen=True)
class ReplicaView:
    """One serving replica as the hot-load status endpoint reports it."""

    identity: str
    readiness: bool
    current_snapshot_identity: str | None
    stage: str
    target_snapshot_identity: str | None


@dataclass(frozen=True)
class DeploymentView:
    """A deployment as observed at one instant."""

    deployment_id: str
    account: str
    spec: DeploymentSpec
    state: str
    status_code: str
    status_message: str
    desired_replicas: int
    ready_replicas: int
    booting_replicas: int
    served_snapshot: str | None
    hotload_target: str | None
    create_time: str
    update_time: str


@dataclass(frozen=True)
class Sample:
    """Sampled completion tokens for one choice, with the snapshot that produced them."""

    token_ids: list[int]
    logprobs: list[float]
    snapshot: str | None
    pod: str


def replicas_for(min_count: int, max_count: int) -> int:
    """The number of replicas a deployment runs: ``max``, or ``min`` when ``max`` is unset (0)."""
    return max_count if max_count > 0 else min_count


def _wall_time() -> str:
    return datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


@dataclass(eq=False)
class _Pod:
    identity: str
    ready_at: float


@dataclass(eq=False)
class _HotLoad:
    target: str
    previous: str | None
    start: float
    ends: list[float]
    fail: bool
    # status_lag: until `hidden_until`, status shows the idle state from before the POST
    hidden_until: float = -math.inf
    prior_stage: str = "idle"
    prior_target: str | None = None

    @property
    def finish(self) -> float:
        return max(self.ends, default=self.start)


@dataclass(eq=False)
class _Deployment:
    deployment_id: str
    seq: int
    spec: DeploymentSpec
    phase: str
    phase_end: float
    boot_fails: bool
    create_time: str
    update_time: str
    pods: list[_Pod] = field(default_factory=list)
    served: str | None = None
    load: _HotLoad | None = None
    last_load: _HotLoad | None = None
    last_completion: float | None = None
    scale_ready_at: float | None = None
    status_message: str = ""


class _NoHooks:
    def boot_fails(self, deployment_id: str) -> bool:
        return False

    def hotload_plan(self, deployment_id: str, identity: str) -> LoadPlan:
        return LoadPlan()


class ControlPlaneState:
    """Deployments of one account, advanced lazily against an injectable monotonic clock."""

    def __init__(
        self,
        *,
        account: str = "local",
        boot_seconds: float = 2.0,
        boot_jitter: float = 0.0,
        hotload_seconds: float = 1.0,
        hotload_jitter: float = 0.0,
        update_seconds: float | None = None,
        delete_seconds: float = 0.2,
        seed: int = 0,
        clock: Callable[[], float] = time.monotonic,
        hooks: StateHooks | None = None,
    ) -> None:
        for name, value in (
            ("boot_seconds", boot_seconds),
            ("boot_jitter", boot_jitter),
            ("hotload_seconds", hotload_seconds),
            ("hotload_jitter", hotload_jitter),
            ("delete_seconds", delete_seconds),
        ):
            if value < 0:
                raise ValueError(f"{name} must be >= 0, got {value!r}")
        if not _ID_RE.fullmatch(account):
            raise ValueError(f"account must look like a resource id, got {account!r}")
        self.account = account
        self.boot_seconds = boot_seconds
        self.boot_jitter = boot_jitter
        self.hotload_seconds = hotload_seconds
        self.hotload_jitter = hotload_jitter
        self.update_seconds = boot_seconds if update_seconds is None else update_seconds
        self.delete_seconds = delete_seconds
        self.clock = clock
        self.hooks: StateHooks = hooks if hooks is not None else _NoHooks()
        self.events: list[Event] = []
        self._event_index: dict[tuple[str, str], list[Event]] = {}
        self.create_time = _wall_time()
        self._rng = random.Random(seed)
        self._lock = threading.RLock()
        self._deployments: dict[str, _Deployment] = {}
        self._seq = 0
        self._pod_counter = 0

    # -- helpers ------------------------------------------------------------------------------

    def _name(self, deployment_id: str) -> str:
        return f"accounts/{self.account}/deployments/{deployment_id}"

    def _event(self, kind: str, d: _Deployment, at: float, detail: str | None = None) -> None:
        event = Event(kind, d.deployment_id, detail, at)
        self.events.append(event)
        self._event_index.setdefault((kind, d.deployment_id), []).append(event)

    def event_time(self, kind: str, deployment_id: str, detail: str | None = None) -> float | None:
        """When the latest matching event became true (``detail=None`` matches any detail)."""
        with self._lock:
            d = self._deployments.get(deployment_id)
            if d is not None:
                self._advance(d, self.clock())
            matches = [
                e.at
                for e in self._event_index.get((kind, deployment_id), ())
                if detail is None or e.detail == detail
            ]
            return max(matches) if matches else None

    def _new_pods(self, count: int, ready_at: float) -> list[_Pod]:
        pods = []
        for _ in range(count):
            self._pod_counter += 1
            suffix = self._rng.getrandbits(24)
            pods.append(_Pod(f"pod-{self._pod_counter:05d}-{suffix:06x}", ready_at))
        return pods

    def _boot_time(self, now: float) -> float:
        jitter = self._rng.uniform(0.0, self.boot_jitter) if self.boot_jitter else 0.0
        return now + self.boot_seconds + jitter

    def _advance(self, d: _Deployment, now: float) -> bool:
        """Bring ``d`` up to ``now``; False when it has finished deleting (and is now gone)."""
        if now >= d.phase_end:
            if d.phase == "CREATING":
                if d.boot_fails:
                    d.phase = "FAILED"
                    d.status_message = "replica crash loop during boot (injected fault)"
                    d.pods = []
                    self._event("failed", d, d.phase_end)
                else:
                    d.phase = "READY"
                    self._event("ready", d, d.phase_end, "boot")
            elif d.phase == "UPDATING":
                d.phase = "READY"
                self._event("updated", d, d.phase_end)
            elif d.phase == "DELETING":
                del self._deployments[d.deployment_id]
                self._event("deleted", d, d.phase_end)
                return False
            d.phase_end = math.inf
        if d.scale_ready_at is not None and now >= d.scale_ready_at:
            self._event("ready", d, d.scale_ready_at, "scale_up")
            d.scale_ready_at = None
        idle_end = self._idle_end(d)
        if idle_end is not None and now >= idle_end:
            d.pods = []
            d.served = None
            d.load = None
            d.last_load = None
            self._event("scaled_to_zero", d, idle_end, "idle")
        load = d.load
        if load is not None and now >= load.finish:
            if load.fail:
                self._event("hotload_failed", d, load.finish, load.target)
            else:
                d.served = load.target
                self._event("hotload_done", d, load.finish, load.target)
            d.last_load = load
            d.load = None
        return True

    @staticmethod
    def _idle_end(d: _Deployment) -> float | None:
        """When on-demand pods of a deployment configured for 0 replicas go away, if they do."""
        spec = d.spec
        if d.phase != "READY" or not d.pods or d.scale_ready_at is not None or d.load is not None:
            return None
        if replicas_for(spec.min_replica_count, spec.max_replica_count) > 0:
            return None
        policy = spec.autoscaling_policy
        window = SCALE_TO_ZERO_WINDOW
        if policy is not None and policy.scale_to_zero_window is not None:
            window = policy.scale_to_zero_window
        busy = max(p.ready_at for p in d.pods)
        if d.last_completion is not None:
            busy = max(busy, d.last_completion)
        return busy + window

    def _lookup(self, deployment_id: str, now: float) -> _Deployment:
        d = self._deployments.get(deployment_id)
        if d is None or not self._advance(d, now):
            raise StateError("NOT_FOUND", f"Deployment {self._name(deployment_id)} not found.")
        return d

    def _check_account(self, account: str) -> None:
        if account != self.account:
            raise StateError("NOT_FOUND", f"Account accounts/{account} not found.")

    def _view(self, d: _Deployment, now: float) -> DeploymentView:
        ready = sum(1 for p in d.pods if p.ready_at <= now) if d.phase == "READY" else 0
        desired = max(replicas_for(d.spec.min_replica_count, d.spec.max_replica_count), len(d.pods))
        if d.phase in ("FAILED", "DELETING"):
            desired = 0
        code = "INTERNAL" if d.phase == "FAILED" else "OK"
        return DeploymentView(
            deployment_id=d.deployment_id,
            account=self.account,
            spec=replace(d.spec),
            state=d.phase,
            status_code=code,
            status_message=d.status_message,
            desired_replicas=desired,
            ready_replicas=ready,
            booting_replicas=len(d.pods) - ready,
            served_snapshot=d.served,
            hotload_target=d.load.target if d.load is not None else None,
            create_time=d.create_time,
            update_time=d.update_time,
        )

    @staticmethod
    def _validate_spec(spec: DeploymentSpec) -> None:
        if not spec.base_model:
            raise StateError("INVALID_ARGUMENT", "baseModel is required.")
        for name, value in (
            ("minReplicaCount", spec.min_replica_count),
            ("maxReplicaCount", spec.max_replica_count),
        ):
            if value < 0:
                raise StateError("INVALID_ARGUMENT", f"{name} must be >= 0, got {value}.")
        if 0 < spec.max_replica_count < spec.min_replica_count:
            raise StateError(
                "INVALID_ARGUMENT",
                f"minReplicaCount ({spec.min_replica_count}) must not exceed "
                f"maxReplicaCount ({spec.max_replica_count}).",
            )
        tt = spec.hot_load_transition_type
        if tt is not None and tt not in TRANSITION_TYPES:
            raise StateError(
                "INVALID_ARGUMENT",
                f"hotLoadTransitionType must be ASYNC or SYNC, got {tt!r}.",
            )
        bt = spec.hot_load_bucket_type
        if bt is not None and bt not in BUCKET_TYPES:
            raise StateError(
                "INVALID_ARGUMENT",
                f"hotLoadBucketType must be one of {sorted(BUCKET_TYPES)}, got {bt!r}.",
            )
        policy = spec.autoscaling_policy
        if policy is not None:
            ControlPlaneState._validate_policy(policy)
        job = spec.hot_load_trainer_job
        if job is not None and job and not _TRAINER_RE.fullmatch(job):
            raise StateError(
                "INVALID_ARGUMENT",
                "hotLoadTrainerJob must look like accounts/{account}/rlorTrainerJobs/{job}, "
                f"got {job!r}.",
            )

    @staticmethod
    def _validate_policy(policy: AutoscalingPolicy) -> None:
        windows = (
            ("scaleUpWindow", policy.scale_up_window, 0.0, MAX_SCALE_WINDOW),
            ("scaleDownWindow", policy.scale_down_window, 0.0, MAX_SCALE_WINDOW),
            ("scaleToZeroWindow", policy.scale_to_zero_window, MIN_SCALE_TO_ZERO_WINDOW, math.inf),
        )
        for name, value, low, high in windows:
            if value is not None and not low <= value <= high:
                bound = f"at least {low:g}s" if high == math.inf else f"at most {high:g}s"
                raise StateError(
                    "INVALID_ARGUMENT",
                    f"autoscalingPolicy.{name} must be {bound}, got {value:g}s.",
                )
        for key, target in (policy.load_targets or {}).items():
            if not target > 0:
                raise StateError(
                    "INVALID_ARGUMENT",
                    f"autoscalingPolicy.loadTargets[{key!r}] must be > 0, got {target!r}.",
                )

    def _bucket_url(self, deployment_id: str, spec: DeploymentSpec) -> str | None:
        if not spec.enable_hot_load:
            return None
        if spec.hot_load_trainer_job:
            match = _TRAINER_RE.fullmatch(spec.hot_load_trainer_job)
            if match:
                return f"gs://local-bucket/rl-checkpoints/{self.account}/trainer-{match[1]}/"
        return f"gs://local-bucket/rl-checkpoints/{self.account}/{deployment_id}/"

    # -- control plane ------------------------------------------------------------------------

    def create(self, account: str, deployment_id: str, spec: DeploymentSpec) -> DeploymentView:
        """Create a deployment in ``CREATING``; it turns ``READY`` after the boot time."""
        with self._lock:
            now = self.clock()
            self._check_account(account)
            if not deployment_id:
                raise StateError("INVALID_ARGUMENT", "deploymentId is required.")
            if not _ID_RE.fullmatch(deployment_id):
                raise StateError(
                    "INVALID_ARGUMENT",
                    f"deploymentId {deployment_id!r} is invalid: use 1-63 lowercase letters, "
                    "digits or hyphens, starting with a letter.",
                )
            spec = replace(spec)
            if spec.max_replica_count == 0 and spec.min_replica_count > 0:
                spec.max_replica_count = spec.min_replica_count
            self._validate_spec(spec)
            existing = self._deployments.get(deployment_id)
            if existing is not None and self._advance(existing, now):
                raise StateError(
                    "ALREADY_EXISTS",
                    f"Deployment {self._name(deployment_id)} already exists "
                    f"(state {existing.phase}).",
                )
            spec.hot_load_bucket_url = self._bucket_url(deployment_id, spec)
            ready_at = self._boot_time(now)
            self._seq += 1
            stamp = _wall_time()
            d = _Deployment(
                deployment_id=deployment_id,
                seq=self._seq,
                spec=spec,
                phase="CREATING",
                phase_end=ready_at,
                boot_fails=self.hooks.boot_fails(deployment_id),
                create_time=stamp,
                update_time=stamp,
            )
            d.pods = self._new_pods(
                replicas_for(spec.min_replica_count, spec.max_replica_count), ready_at
            )
            self._deployments[deployment_id] = d
            self._event("created", d, now)
            return self._view(d, now)

    def get(self, account: str, deployment_id: str) -> DeploymentView:
        """The deployment as of now (``NOT_FOUND`` once deleted)."""
        with self._lock:
            now = self.clock()
            self._check_account(account)
            return self._view(self._lookup(deployment_id, now), now)

    def list_deployments(
        self, account: str, page_size: int = 50, page_token: str = ""
    ) -> tuple[list[DeploymentView], str]:
        """One page of deployments in creation order, and the token of the next page."""
        with self._lock:
            now = self.clock()
            self._check_account(account)
            after = 0
            if page_token:
                try:
                    after = int(page_token)
                except ValueError:
                    raise StateError(
                        "INVALID_ARGUMENT", f"pageToken {page_token!r} is invalid."
                    ) from None
            page: list[DeploymentView] = []
            more = False
            for d in list(self._deployments.values()):
                if d.seq <= after or not self._advance(d, now):
                    continue
                if len(page) == page_size:
                    more = True
                    break
                page.append(self._view(d, now))
            token = str(self._seq_of(page[-1])) if more and page else ""
            return page, token

    def _seq_of(self, view: DeploymentView) -> int:
        return self._deployments[view.deployment_id].seq

    def update(
        self, account: str, deployment_id: str, changes: dict[str, object]
    ) -> DeploymentView:
        """Apply ``changes`` (DeploymentSpec field -> value): scale, roll pods, or just edit.

        A key ``"autoscaling_policy.<field>"`` sets one field of the autoscaling policy.
        """
        with self._lock:
            now = self.clock()
            self._check_account(account)
            d = self._lookup(deployment_id, now)
            if d.phase == "DELETING":
                raise StateError(
                    "FAILED_PRECONDITION",
                    f"Deployment {self._name(deployment_id)} is being deleted.",
                )
            spec = replace(d.spec)
            for key, value in changes.items():
                if key == "base_model":
                    raise StateError("INVALID_ARGUMENT", "baseModel cannot be changed.")
                head, dot, sub = key.partition(".")
                if dot:
                    if head != "autoscaling_policy" or sub not in _POLICY_FIELDS:
                        raise StateError("INVALID_ARGUMENT", f"Unknown deployment field {key!r}.")
                    policy = spec.autoscaling_policy or AutoscalingPolicy()
                    spec.autoscaling_policy = replace(policy, **{sub: value})  # type: ignore[arg-type]
                    continue
                if not hasattr(spec, key):
                    raise StateError("INVALID_ARGUMENT", f"Unknown deployment field {key!r}.")
                setattr(spec, key, value)
            self._validate_spec(spec)
            if spec.enable_hot_load and not changes.get("hot_load_bucket_url"):
                spec.hot_load_bucket_url = self._bucket_url(deployment_id, spec)
            rolls = any(
                key in changes and getattr(spec, key) != getattr(d.spec, key)
                for key in ("hot_load_trainer_job", "hot_load_transition_type")
            )
            old_count = replicas_for(d.spec.min_replica_count, d.spec.max_replica_count)
            new_count = replicas_for(spec.min_replica_count, spec.max_replica_count)
            d.spec = spec
            d.update_time = _wall_time()
            if d.phase == "CREATING":
                if new_count != old_count:
                    d.pods = self._new_pods(new_count, d.phase_end)
            elif d.phase in ("READY", "UPDATING"):
                if rolls:
                    self._roll(d, now, new_count)
                elif new_count != old_count:
                    self._rescale(d, now, new_count)
            return self._view(d, now)

    def _roll(self, d: _Deployment, now: float, count: int) -> None:
        d.phase = "UPDATING"
        d.phase_end = now + self.update_seconds
        d.pods = self._new_pods(count, d.phase_end)
        d.served = None
        d.load = None
        d.last_load = None
        d.scale_ready_at = None

    def _rescale(self, d: _Deployment, now: float, count: int) -> None:
        if count == 0:
            d.pods = []
            d.served = None
            d.load = None
            d.last_load = None
            d.scale_ready_at = None
            return
        ready_at = max(self._boot_time(now), d.phase_end if d.phase == "UPDATING" else now)
        if not d.pods:
            d.served = None
            d.last_load = None
            d.scale_ready_at = ready_at
        if count > len(d.pods):
            d.pods.extend(self._new_pods(count - len(d.pods), ready_at))
        else:
            del d.pods[count:]
            if d.load is not None:
                del d.load.ends[count:]

    def delete(self, account: str, deployment_id: str, *, ignore_checks: bool = False) -> None:
        """Start deleting: ``DELETING`` for ``delete_seconds``, then gone."""
        with self._lock:
            now = self.clock()
            self._check_account(account)
            d = self._lookup(deployment_id, now)
            if d.phase == "DELETING":
                return
            recent = d.last_completion is not None and now - d.last_completion < RECENT_USE_SECONDS
            if recent and not ignore_checks:
                raise StateError(
                    "FAILED_PRECONDITION",
                    f"Deployment {self._name(deployment_id)} served inference in the last hour; "
                    "pass --ignore-checks (ignoreChecks=true) to delete it anyway.",
                )
            d.phase = "DELETING"
            d.phase_end = now + self.delete_seconds
            d.pods = []
            d.load = None
            d.scale_ready_at = None
            d.update_time = _wall_time()
            if now >= d.phase_end:
                self._advance(d, now)

    def fail_boot(self, deployment_id: str) -> bool:
        """Make a deployment that is still booting end in ``FAILED``; False if not booting."""
        with self._lock:
            d = self._deployments.get(deployment_id)
            if d is None or not self._advance(d, self.clock()) or d.phase != "CREATING":
                return False
            d.boot_fails = True
            return True

    def settle_all(self) -> None:
        """Advance every deployment to now, so that all events up to now are recorded."""
        with self._lock:
            now = self.clock()
            for d in list(self._deployments.values()):
                self._advance(d, now)

    def __len__(self) -> int:
        return len(self._deployments)

    def __iter__(self) -> Iterator[str]:
        return iter(list(self._deployments))

    # -- gateway: hot-load ----------------------------------------------------------------

    def _gateway_lookup(self, account: str, deployment_id: str, base_model: str) -> _Deployment:
        self._check_account(account)
        d = self._lookup(deployment_id, self.clock())
        if base_model != d.spec.base_model:
            raise StateError(
                "INVALID_ARGUMENT",
                f"fireworks-model {base_model!r} does not match the base model "
                f"{d.spec.base_model!r} of deployment {self._name(deployment_id)}.",
            )
        return d

    def hotload(
        self,
        account: str,
        deployment_id: str,
        base_model: str,
        identity: str,
        *,
        previous_snapshot_identity: str | None = None,
        compression_format: str | None = None,
        checksum_format: str | None = None,
        delta: bool = False,
    ) -> str:
        """Start loading ``identity``; returns "started", "in_progress" or "already_loaded"."""
        with self._lock:
            now = self.clock()
            d = self._gateway_lookup(account, deployment_id, base_model)
            name = self._name(deployment_id)
            if not d.spec.enable_hot_load:
                raise StateError(
                    "FAILED_PRECONDITION",
                    f"Deployment {name} is not hot-load enabled (enableHotLoad=false).",
                )
            if d.phase in ("FAILED", "DELETING"):
                raise StateError("FAILED_PRECONDITION", f"Deployment {name} is {d.phase}.")
            if d.phase != "READY":
                raise StateError(
                    "TOO_EARLY",
                    f"Deployment {name} is {d.phase}: the hot-load manager is not initialised "
                    "yet; retry once it reports replicas.",
                )
            if not d.pods:
                raise StateError(
                    "FAILED_PRECONDITION",
                    f"Deployment {name} has no replicas (scaled to zero); scale it up first.",
                )
            if not any(p.ready_at <= now for p in d.pods):
                raise StateError(
                    "TOO_EARLY", f"Deployment {name} is scaling up; no replica is ready yet."
                )
            if delta:
                self._check_delta_formats(compression_format, checksum_format)
            if d.load is not None:
                if d.load.target != identity:
                    raise StateError(
                        "ABORTED",
                        f"A hot-load of {d.load.target!r} is in progress on {name}; "
                        f"wait for it to finish before loading {identity!r}.",
                    )
                # The same load again: the replicas still loading serve its base.
                if delta:
                    self._check_chain(name, identity, previous_snapshot_identity, d.load.previous)
                return "in_progress"
            if delta:
                self._check_chain(name, identity, previous_snapshot_identity, d.served)
            elif d.served == identity:
                return "already_loaded"
            plan = self.hooks.hotload_plan(deployment_id, identity)
            ends = []
            for pod in d.pods:
                begin = max(now, pod.ready_at)
                jitter = self._rng.uniform(0.0, self.hotload_jitter) if self.hotload_jitter else 0
                ends.append(begin + self.hotload_seconds + jitter)
            if plan.lagging_replica is not None and ends:
                index = plan.lagging_replica % len(ends)
                ends[index] = ends[index] + plan.lag_seconds
            prior_stage, prior_target = self._idle_stage(d)
            d.load = _HotLoad(
                identity,
                d.served,
                now,
                ends,
                plan.fail,
                hidden_until=now + plan.status_lag if plan.status_lag > 0 else -math.inf,
                prior_stage=prior_stage,
                prior_target=prior_target,
            )
            self._event("hotload_started", d, now, identity)
            if now >= d.load.finish:
                self._advance(d, now)
            return "started"

    @staticmethod
    def _check_delta_formats(compression_format: str | None, checksum_format: str | None) -> None:
        if checksum_format != CHECKSUM_FORMAT:
            raise StateError(
                "INVALID_ARGUMENT",
                f"checksum_format must be {CHECKSUM_FORMAT!r}, got {checksum_format!r}.",
            )
        if compression_format not in COMPRESSION_FORMATS:
            raise StateError(
                "INVALID_ARGUMENT",
                f"compression_format {compression_format!r} is not one of "
                f"{sorted(COMPRESSION_FORMATS)}.",
            )

    @staticmethod
    def _check_chain(name: str, identity: str, previous: str | None, served: str | None) -> None:
        """A delta must apply to what the replicas serve (a repeat of an applied one does not)."""
        if served is None:
            raise StateError(
                "INVALID_ARGUMENT",
                f"Delta snapshot {identity!r} needs a base, but {name} serves no "
                "snapshot; hot-load a full snapshot first.",
            )
        if previous != served:
            raise StateError(
                "INVALID_ARGUMENT",
                f"previous_snapshot_identity {previous!r} does not match "
                f"the snapshot {served!r} currently served by {name}; send a full "
                "snapshot or a delta against the served one.",
            )
        if identity == served:
            raise StateError(
                "INVALID_ARGUMENT",
                f"Delta snapshot {identity!r} cannot apply to itself: {name} already serves it.",
            )

    def _stage(self, load: _HotLoad, end: float, now: float) -> str:
        duration = end - load.start
        frac = (now - load.start) / duration if math.isfinite(duration) and duration > 0 else 0.0
        if not math.isfinite(duration):
            frac = min((now - load.start) / max(self.hotload_seconds, 1e-9), 0.99)
        if frac < 0.1:
            return "pending"
        if frac < 0.5:
            return "downloading"
        return "loading"

    @staticmethod
    def _idle_stage(d: _Deployment) -> tuple[str, str | None]:
        last = d.last_load
        if last is None:
            return "idle", None
        return ("error" if last.fail else "done"), last.target

    def hotload_status(
        self,
        account: str,
        deployment_id: str,
        base_model: str,
        *,
        stale_error_target: str | None = None,
    ) -> list[ReplicaView]:
        """Per-replica hot-load status; empty while the deployment boots, rolls or has no pods.

        ``stale_error_target`` overlays a stale ``error`` stage for that identity on every replica
        (readiness and current snapshot stay as computed).
        """
        with self._lock:
            now = self.clock()
            d = self._gateway_lookup(account, deployment_id, base_model)
            if d.phase != "READY":
                return []
            views = []
            load = d.load
            lagging = load if load is not None else d.last_load
            if lagging is not None and now < lagging.hidden_until:  # status_lag fault
                views = [
                    ReplicaView(
                        p.identity,
                        True,
                        lagging.previous,
                        lagging.prior_stage,
                        lagging.prior_target,
                    )
                    for p in d.pods
                    if p.ready_at <= now
                ]
                pods_to_render: list[_Pod] = []
            else:
                pods_to_render = d.pods
            for i, pod in enumerate(pods_to_render):
                if pod.ready_at > now:
                    continue
                if load is not None and i < len(load.ends):
                    end = load.ends[i]
                    if now >= end:
                        stage = "error" if load.fail else "done"
                        current = load.previous if load.fail else load.target
                        ready = True
                    else:
                        stage = self._stage(load, end, now)
                        current = load.previous
                        ready = False
                    views.append(ReplicaView(pod.identity, ready, current, stage, load.target))
                    continue
                stage, target = self._idle_stage(d)
                views.append(ReplicaView(pod.identity, True, d.served, stage, target))
            if stale_error_target is not None:
                views = [
                    replace(v, stage="error", target_snapshot_identity=stale_error_target)
                    for v in views
                ]
            return views

    # -- gateway: completions -----------------------------------------------------------------

    def sample(
        self,
        account: str,
        deployment_id: str,
        prompt: list[int],
        max_tokens: int,
        n: int = 1,
    ) -> list[Sample]:
        """Deterministic tokens from the snapshot served by the replica the prompt hashes to."""
        with self._lock:
            now = self.clock()
            self._check_account(account)
            d = self._lookup(deployment_id, now)
            name = self._name(deployment_id)
            if d.phase == "DELETING":
                raise StateError("NOT_FOUND", f"Deployment {name} is being deleted.")
            if d.phase == "FAILED":  # not 503: a retrying client would wait for nothing
                raise StateError(
                    "NOT_FOUND", f"DEPLOYMENT_FAILED: deployment {name} failed and serves nothing."
                )
            if d.phase == "READY" and not d.pods:  # scale from zero on demand
                ready_at = self._boot_time(now)
                d.pods = self._new_pods(1, ready_at)
                d.scale_ready_at = ready_at
                self._event("scale_from_zero", d, now)
            ready = [(i, p) for i, p in enumerate(d.pods) if p.ready_at <= now]
            if d.phase != "READY" or not ready:
                raise StateError(
                    "UNAVAILABLE",
                    f"DEPLOYMENT_SCALING_UP: deployment {name} has no ready replica yet "
                    f"(state {d.phase}); retry shortly.",
                )
            d.last_completion = now
            prompt_key = ",".join(map(str, prompt)).encode()
            index, pod = ready[_digest_int(prompt_key) % len(ready)]
            snapshot = d.served
            load = d.load
            if load is not None and index < len(load.ends) and now >= load.ends[index]:
                snapshot = load.previous if load.fail else load.target
            weights = snapshot if snapshot is not None else f"base:{d.spec.base_model}"
            samples = []
            for choice in range(n):
                key = b"%s|%s|%d" % (weights.encode(), prompt_key, choice)
                tokens, logprobs = _sample_tokens(key, max_tokens)
                samples.append(Sample(tokens, logprobs, snapshot, pod.identity))
            return samples


def _digest_int(data: bytes) -> int:
    return int.from_bytes(hashlib.blake2b(data, digest_size=8).digest(), "little")


def _sample_tokens(key: bytes, count: int) -> tuple[list[int], list[float]]:
    tokens: list[int] = []
    logprobs: list[float] = []
    block = 0
    while len(tokens) < count:
        digest = hashlib.blake2b(key + block.to_bytes(4, "little"), digest_size=64).digest()
        for j in range(0, 64, 4):
            value = int.from_bytes(digest[j : j + 4], "little")
            tokens.append(100 + value % (VOCAB - 100))
            logprobs.append(-((value >> 20) % 4000) / 1000.0)
        block += 1
    return tokens[:count], logprobs[:count]
