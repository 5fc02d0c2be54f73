"""What status says after a rollout step: which version is stable, which is the canary, and with what.

The step function decides (rollout/step.py); this turns its decision into the status fields the CRD
prints (``stableVersion``, ``canaryVersion``, ``canaryWeight``, ``rolloutStep``) plus ``rollout`` and
``stableTemplate``, and tells reconcile which CodePilot to render from (the same status, updated), so a
decision and the objects that carry it out are written in the same reconcile.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from codepilot_operator.api import CodePilot
from codepilot_operator.api.status import CodePilotStatus
from codepilot_operator.api.tracks import (
    CANARY_SNAPSHOT,
    CANARY_VERSION,
    IN_FLIGHT_PHASES,
    ROLLOUT,
    STABLE_SNAPSHOT,
    STABLE_TEMPLATE,
    STABLE_VERSION,
    current_pin_fields,
    template_fields,
    template_of,
)
from codepilot_operator.rollout.step import Decision

CANARY_WEIGHT = "canaryWeight"
ROLLOUT_STEP = "rolloutStep"


def track_fields(cp: CodePilot, decision: Decision | None) -> dict[str, Any]:
    """Status fields for the versions after ``decision`` (None: no rollout logic ran)."""
    status, desired = cp.status, cp.spec.model.version
    stable = status.stable_version or desired
    rollout = decision.rollout if decision is not None else status.rollout
    promoted = decision is not None and decision.promote
    in_flight = (
        rollout is not None
        and rollout.version == desired
        and rollout.phase in IN_FLIGHT_PHASES
        and not promoted
    )
    fields: dict[str, Any] = {
        STABLE_VERSION: desired if promoted or stable == desired else stable,
        CANARY_VERSION: desired if in_flight and stable != desired else None,
        CANARY_WEIGHT: rollout.weight if in_flight and rollout is not None else None,
        ROLLOUT_STEP: rollout.step if in_flight and rollout is not None else None,
        ROLLOUT: rollout.model_dump(mode="json", by_alias=True, exclude_none=True) if rollout else None,
    }
    if promoted or stable == desired:
        fields[STABLE_TEMPLATE] = template_fields(template_of(cp))  # the spec stable serves from now on
    else:
        fields[STABLE_TEMPLATE] = status.stable_template
    return fields


def with_fields(cp: CodePilot, fields: Mapping[str, Any]) -> CodePilot:
    """``cp`` with ``fields`` written into its status: what the next reconcile will read."""
    merged = {**cp.status.model_dump(mode="json", by_alias=True, exclude_none=True), **fields}
    status = CodePilotStatus.model_validate({k: v for k, v in merged.items() if v is not None})
    return cp.model_copy(update={"status": status})


def carried_pins(cp: CodePilot, promoted: bool, canary_served: bool) -> dict[str, Any]:
    """Snapshot pins when nothing was prepared this time (snapshots off, or a status-only refresh):
    what status holds, with the canary's pin moved to stable on promotion and dropped when no canary
    is served any more (a rollback)."""
    pins = dict(current_pin_fields(cp.status))
    if promoted and pins.get(CANARY_SNAPSHOT):
        pins[STABLE_SNAPSHOT], pins[CANARY_SNAPSHOT] = pins[CANARY_SNAPSHOT], None
    elif not canary_served and CANARY_SNAPSHOT in pins:
        pins[CANARY_SNAPSHOT] = None
    return pins
