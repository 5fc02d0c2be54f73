"""Which model versions are served right now, derived from spec and status.

A CodePilot serves its stable version and, while a rollout runs, a canary. The rollout controller owns
the decision; the renderer only reads it, so ``render`` of a CR without status serves spec.model.version.
"""

from __future__ import annotations

from dataclasses import dataclass

from codepilot_operator.api import CodePilot, RolloutStrategy


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
    if stable == desired or cp.spec.rollout.strategy is RolloutStrategy.IMMEDIATE:
        return [ServedVersion(desired, snapshot_for(cp, desired))]
    return [
        ServedVersion(stable, snapshot_for(cp, stable)),
        ServedVersion(desired, snapshot_for(cp, desired)),
    ]
