"""Deployment shapes and their versions: a small, deterministic read-only catalogue.

Real code reads shapes to pin a deployment to a validated configuration: the cookbook resolves
``GET /v1/accounts/fireworks/deploymentShapes/<s>/versions?filter=latest_validated=true&pageSize=1``
and reads ``snapshot.acceleratorType`` to pick a region; the official Stainless client lists and
gets shapes and versions. The catalogue is seeded with a couple of shapes under
``accounts/fireworks`` (see :data:`SEED_SHAPES`); :meth:`ShapeCatalog.add` adds more.

Listing supports the AIP-160 subset real callers send: ``filter`` terms ``field=value`` or
``field!=value`` over ``latest_validated``/``validated``/``public`` (camelCase too) joined by
``AND``; ``orderBy`` over ``create_time``/``name`` with an optional ``desc``; ``pageSize`` and
``pageToken``. Unknown query parameters (``readMask``, ...) are ignored.
"""

from __future__ import annotations

import operator
import re
import threading
from dataclasses import dataclass, field, replace

from ._state import StateError

__all__ = ["SEED_SHAPES", "DeploymentShape", "ShapeCatalog", "ShapeVersion"]


@dataclass(frozen=True)
class DeploymentShape:
    """A deployment shape's settings (the snapshot a version freezes)."""

    shape_id: str
    base_model: str
    accelerator_type: str
    accelerator_count: int = 1
    display_name: str = ""
    description: str = ""
    precision: str = "FP8"
    max_context_length: int = 0
    preset_type: str = "THROUGHPUT"


@dataclass(frozen=True)
class ShapeVersion:
    """One frozen version of a shape."""

    version_id: str
    snapshot: DeploymentShape
    create_time: str
    validated: bool = True
    latest_validated: bool = False
    public: bool = True


@dataclass
class _Shape:
    account: str
    current: DeploymentShape
    create_time: str
    update_time: str
    versions: list[ShapeVersion] = field(default_factory=list)


def _seed() -> list[tuple[str, DeploymentShape, list[ShapeVersion]]]:
    qwen8b = DeploymentShape(
        shape_id="rft-qwen3-8b",
        base_model="accounts/fireworks/models/qwen3-8b",
        accelerator_type="NVIDIA_H200_141GB",
        display_name="RFT Qwen3 8B (H200)",
        description="Hot-load enabled training deployment for Qwen3 8B.",
        max_context_length=40960,
    )
    qwen4b = DeploymentShape(
        shape_id="rft-qwen3-4b-b200",
        base_model="accounts/fireworks/models/qwen3-4b",
        accelerator_type="NVIDIA_B200_180GB",
        display_name="RFT Qwen3 4B (B200)",
        description="Hot-load enabled training deployment for Qwen3 4B.",
        max_context_length=32768,
    )
    return [
        (
            "fireworks",
            qwen8b,
            [
                ShapeVersion("v1", replace(qwen8b, precision="BF16"), "2026-01-05T10:00:00Z"),
                ShapeVersion("v2", qwen8b, "2026-02-09T10:00:00Z", latest_validated=True),
                ShapeVersion(
                    "v3",
                    replace(qwen8b, accelerator_count=2),
                    "2026-03-16T10:00:00Z",
                    validated=False,
                ),
            ],
        ),
        (
            "fireworks",
            qwen4b,
            [ShapeVersion("v1", qwen4b, "2026-02-02T10:00:00Z", latest_validated=True)],
        ),
    ]


#: The shapes every catalogue starts with: (owning account, shape, versions oldest first).
SEED_SHAPES = _seed()

_TERM = re.compile(r"\s*([A-Za-z_]+)\s*(!=|=)\s*(\S+?)\s*")
_FILTER_FIELDS = {
    "latest_validated": "latest_validated",
    "latestvalidated": "latest_validated",
    "validated": "validated",
    "public": "public",
}
_ORDER_FIELDS = {"create_time": "create_time", "createtime": "create_time", "name": "version_id"}


def _parse_filter(text: str) -> list[tuple[str, bool, bool]]:
    """``latest_validated=true AND public=true`` -> [(field, wanted, negate)]."""
    terms: list[tuple[str, bool, bool]] = []
    for part in filter(None, re.split(r"\s+AND\s+", text.strip(), flags=re.IGNORECASE)):
        match = _TERM.fullmatch(part)
        name = _FILTER_FIELDS.get(match[1].lower()) if match else None
        value = match[3].strip("\"'").lower() if match else ""
        if match is None or name is None or value not in ("true", "false"):
            raise StateError(
                "INVALID_ARGUMENT",
                f"filter {text!r} is not supported here: use terms like latest_validated=true, "
                "validated=true or public=true joined by AND.",
            )
        terms.append((name, value == "true", match[2] == "!="))
    return terms


def _parse_order(text: str) -> list[tuple[str, bool]]:
    """``create_time desc,name`` -> [(attribute, descending)]."""
    keys: list[tuple[str, bool]] = []
    for part in filter(None, (p.strip() for p in text.split(","))):
        words = part.split()
        name = _ORDER_FIELDS.get(words[0].replace(".", "").lower())
        desc = len(words) == 2 and words[1].lower() == "desc"
        if name is None or len(words) > 2 or (len(words) == 2 and not desc):
            raise StateError(
                "INVALID_ARGUMENT",
                f"orderBy {text!r} is not supported here: order by create_time or name, "
                "optionally followed by desc.",
            )
        keys.append((name, desc))
    return keys


class ShapeCatalog:
    """Deployment shapes by ``(account, shape_id)``, each with its versions."""

    def __init__(self, *, seed: bool = True) -> None:
        self._shapes: dict[tuple[str, str], _Shape] = {}
        self._lock = threading.Lock()
        if seed:
            for account, shape, versions in SEED_SHAPES:
                self.add(account, shape, versions)

    def add(
        self, account: str, shape: DeploymentShape, versions: list[ShapeVersion] | None = None
    ) -> None:
        """Add (or replace) a shape; ``versions`` oldest first (default: one validated v1)."""
        if versions is None:
            versions = [ShapeVersion("v1", shape, "2026-01-01T00:00:00Z", latest_validated=True)]
        created = versions[0].create_time if versions else "2026-01-01T00:00:00Z"
        updated = versions[-1].create_time if versions else created
        with self._lock:
            self._shapes[account, shape.shape_id] = _Shape(
                account, shape, created, updated, list(versions)
            )

    def _lookup(self, account: str, shape_id: str) -> _Shape:
        found = self._shapes.get((account, shape_id))
        if found is None:
            raise StateError(
                "NOT_FOUND",
                f"Deployment shape accounts/{account}/deploymentShapes/{shape_id} not found.",
            )
        return found

    def get(self, account: str, shape_id: str) -> tuple[DeploymentShape, str, str]:
        """The shape's current settings, create time and update time."""
        with self._lock:
            shape = self._lookup(account, shape_id)
            return shape.current, shape.create_time, shape.update_time

    def list_shapes(self, account: str) -> list[tuple[DeploymentShape, str, str]]:
        """Every shape of ``account`` by id (an account without shapes lists none)."""
        with self._lock:
            return [
                (s.current, s.create_time, s.update_time)
                for (acct, _), s in sorted(self._shapes.items())
                if acct == account
            ]

    def version(self, account: str, shape_id: str, version_id: str) -> ShapeVersion:
        """One version (``latest`` names the latest validated one)."""
        with self._lock:
            shape = self._lookup(account, shape_id)
            for version in shape.versions:
                if version.version_id == version_id or (
                    version_id == "latest" and version.latest_validated
                ):
                    return version
        raise StateError(
            "NOT_FOUND",
            f"Deployment shape version accounts/{account}/deploymentShapes/{shape_id}/versions/"
            f"{version_id} not found.",
        )

    def list_versions(
        self,
        account: str,
        shape_id: str,
        *,
        filter_text: str = "",
        order_by: str = "",
        page_size: int = 50,
        page_token: str = "",
    ) -> tuple[list[ShapeVersion], str]:
        """One page of versions matching ``filter_text``, and the next page token."""
        terms = _parse_filter(filter_text)
        order = _parse_order(order_by) or [("create_time", False)]
        offset = 0
        if page_token:
            if not page_token.isdigit():
                raise StateError("INVALID_ARGUMENT", f"pageToken {page_token!r} is invalid.")
            offset = int(page_token)
        with self._lock:
            versions = list(self._lookup(account, shape_id).versions)
        matching = [
            v for v in versions if all((getattr(v, f) == want) != neg for f, want, neg in terms)
        ]
        for name, desc in reversed(order):  # stable sorts, least significant key first
            matching.sort(key=operator.attrgetter(name), reverse=desc)
        page = matching[offset : offset + page_size]
        more = offset + page_size < len(matching)
        return page, str(offset + page_size) if more else ""
