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

from pydantic import ValidationError

from codepilot_operator.api.spec import ModelSpec, RuntimeSpec
from codepilot_operator.api.status import CodePilotStatus, RolloutPhase, TrackSnapshot

if TYPE_CHECKING:
    from codepilot_operator.api.codepilot import CodePilot

STABLE_VERSION = "stableVersion"
CANARY_VERSION = "canaryVersion"
STABLE_SNAPSHOT = "stableSnapshot"
CANARY_SNAPSHOT = "canarySnapshot"
STABLE_TEMPLATE = "stableTemplate"
ROLLOUT = "rollout"
REJECTED_PHASES = frozenset({RolloutPhase.ROLLED_BACK, RolloutPhase.ABORTED})
IN_FLIGHT_PHASES = frozenset({RolloutPhase.PROGRESSING, RolloutPhase.PAUSED})


@dataclass(frozen=True)
class Template:
    """What a version's pods are rendered from: the model and runtime parts of the spec."""

    model: ModelSpec
    runtime: RuntimeSpec


@dataclass(frozen=True, eq=True)
class ServedVersion:
    """One served model version and what it is rendered from.

    ``snapshot_id`` pins the exact weights when a snapshot exists. ``template`` is the spec the version
    was promoted with (None: the CodePilot's current spec), so a rollout never restarts stable's pods.
    ``replicas``/``max_replicas`` are its share of capacity during a rollout (None: the spec's own) and
    ``weight`` its share of traffic where a router splits by weight.
    """

    version: str
    snapshot_id: str | None = None
    template: Template | None = None
    replicas: int | None = None
    max_replicas: int | None = None
    weight: int | None = None

    __hash__ = None  # type: ignore[assignment]  # templates are pydantic models: not hashable


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


def template_of(cp: CodePilot) -> Template:
    return Template(cp.spec.model, cp.spec.runtime)


def template_fields(template: Template) -> dict[str, Any]:
    """The ``stableTemplate`` status value."""
    return {
        "model": template.model.model_dump(mode="json", by_alias=True, exclude_none=True),
        "runtime": template.runtime.model_dump(mode="json", by_alias=True, exclude_none=True),
    }


def stable_template(status: CodePilotStatus, version: str) -> Template | None:
    """The spec ``version`` was promoted with, if status holds a readable one for exactly that version.

    Unreadable (written by another operator version) or missing means: render from the current spec,
    which is what happened before templates were recorded.
    """
    raw = status.stable_template
    if not isinstance(raw, dict):
        return None
    try:
        template = Template(
            ModelSpec.model_validate(raw.get("model")), RuntimeSpec.model_validate(raw.get("runtime"))
        )
    except ValidationError:
        return None
    return template if template.model.version == version else None


def rejected(status: CodePilotStatus, version: str) -> bool:
    """The rollout of ``version`` was rolled back or aborted: it is not served until retried."""
    rollout = status.rollout
    return rollout is not None and rollout.version == version and rollout.phase in REJECTED_PHASES


def served_versions(cp: CodePilot) -> list[ServedVersion]:
    """Stable first, then the new version while it rolls out (the canary).

    A CodePilot without status serves ``spec.model.version`` alone (this is what ``codepilot render``
    shows); the operator decides what is stable, and how capacity and traffic are split, in status.
    """
    status, desired = cp.status, cp.spec.model.version
    stable = status.stable_version or desired
    if stable == desired:
        return [ServedVersion(desired, snapshot_for(status, desired))]
    base = ServedVersion(stable, snapshot_for(status, stable), stable_template(status, stable))
    if rejected(status, desired):
        return [base]
    rollout = status.rollout
    if rollout is None or rollout.version != desired or rollout.phase not in IN_FLIGHT_PHASES:
        return [base, ServedVersion(desired, snapshot_for(status, desired))]
    weight = rollout.actual_weight or 0
    return [
        ServedVersion(
            stable,
            base.snapshot_id,
            base.template,
            rollout.stable_replicas,
            rollout.stable_max_replicas,
            100 - weight,
        ),
        ServedVersion(
            desired,
            snapshot_for(status, desired),
            None,
            rollout.canary_replicas,
            rollout.canary_max_replicas,
            weight,
        ),
    ]


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
