"""Which model versions are served right now, derived from spec and status.

A CodePilot serves its stable version and, while a new version is coming up, that version too (the
"canary"). The operator owns the decision and records it in status; the renderer only reads it, so
``render`` of a CR without status serves spec.model.version alone.

Every strategy keeps the stable version until the new one is Ready: replacing a Deployment whose pods
take minutes to fetch and load tens of GB must never leave users without a ready replica. What the
strategies differ in (traffic steps and analysis) is the rollout controller's business.
"""

from __future__ import annotations

from dataclasses import dataclass

from codepilot_operator.api import CodePilot


@dataclass(frozen=True)
class ServedVersion:
    """One served model version; ``snapshot_id`` pins the exact weights when a snapshot exists."""

    version: str
    snapshot_id: str | None = None


def snapshot_for(cp: CodePilot, version: str) -> str | None:
    """The snapshot status pins for ``version``, whichever track (stable or canary) holds it."""
    for track in (cp.status.stable_snapshot, cp.status.canary_snapshot):
        if track is not None and track.version == version:
            return track.snapshot_id
    return None


def served_versions(cp: CodePilot) -> list[ServedVersion]:
    """Stable first, then the canary if one is running."""
    desired = cp.spec.model.version
    stable = cp.status.stable_version or desired
    if stable == desired:
        return [ServedVersion(desired, snapshot_for(cp, desired))]
    return [
        ServedVersion(stable, snapshot_for(cp, stable)),
        ServedVersion(desired, snapshot_for(cp, desired)),
    ]
