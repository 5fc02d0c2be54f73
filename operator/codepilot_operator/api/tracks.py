"""Which model version, and which weight snapshot, is on which track: the one home of that fact.

Status is the record. ``stableVersion`` / ``canaryVersion`` name the versions served now and
``stableSnapshot`` / ``canarySnapshot`` pin the exact weights of each. The renderer (what to serve),
snapshots (what never to delete), reconcile (what to write) and the rollout controller (what to promote)
all read it through here, so the lookup rules and the status field names exist once.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from codepilot_operator.api.status import CodePilotStatus, TrackSnapshot

if TYPE_CHECKING:
    from codepilot_operator.api.codepilot import CodePilot

STABLE_VERSION = "stableVersion"
CANARY_VERSION = "canaryVersion"
STABLE_SNAPSHOT = "stableSnapshot"
CANARY_SNAPSHOT = "canarySnapshot"


@dataclass(frozen=True)
class ServedVersion:
    """One served model version; ``snapshot_id`` pins the exact weights when a snapshot exists."""

    version: str
    snapshot_id: str | None = None


def pins(status: CodePilotStatus) -> list[TrackSnapshot]:
    """The snapshot pins in status that name a snapshot, stable first."""
    tracks = (status.stable_snapshot, status.canary_snapshot)
    return [track for track in tracks if track is not None and track.snapshot_id]


def pin_for(status: CodePilotStatus, version: str) -> TrackSnapshot | None:
    """The pin of ``version``, whichever track (stable or canary) holds it."""
    return next((track for track in pins(status) if track.version == version), None)


def snapshot_for(status: CodePilotStatus, version: str) -> str | None:
    pin = pin_for(status, version)
    return pin.snapshot_id if pin is not None else None


def pinned_snapshot_ids(status: CodePilotStatus) -> set[str]:
    """Snapshots that serve traffic now: retention must never delete them."""
    return {str(track.snapshot_id) for track in pins(status)}


def served_versions(cp: CodePilot) -> list[ServedVersion]:
    """Stable first, then the new version while one is coming up (the canary).

    A CodePilot without status serves ``spec.model.version`` alone (this is what ``codepilot render``
    shows); the operator decides when the new version becomes stable and records it in status.
    """
    desired = cp.spec.model.version
    stable = cp.status.stable_version or desired
    versions = [stable] if stable == desired else [stable, desired]
    return [ServedVersion(version, snapshot_for(cp.status, version)) for version in versions]


def pin_fields(tracks: Sequence[TrackSnapshot]) -> dict[str, Any]:
    """``stableSnapshot`` / ``canarySnapshot`` status values for pins listed stable first."""
    dumped = [track.model_dump(by_alias=True, exclude_none=True) for track in tracks]
    return {
        STABLE_SNAPSHOT: dumped[0] if dumped else None,
        CANARY_SNAPSHOT: dumped[1] if len(dumped) > 1 else None,
    }


def current_pin_fields(status: CodePilotStatus) -> dict[str, Any]:
    """The pins status holds now, in the same shape as :func:`pin_fields` (unset tracks omitted)."""
    fields = {STABLE_SNAPSHOT: status.stable_snapshot, CANARY_SNAPSHOT: status.canary_snapshot}
    return {key: pin.model_dump(by_alias=True, exclude_none=True) for key, pin in fields.items() if pin}
