"""Promotion: when the new version takes the stable track, and its snapshot pin with it.

The new version becomes stable once every replica of its Deployment is Ready; the next reconcile then
stops rendering the old one and prunes it. So a version change never leaves users without a Ready
replica, whatever the strategy.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from codepilot_operator.api import CodePilot
from codepilot_operator.api.tracks import (
    CANARY_SNAPSHOT,
    CANARY_VERSION,
    STABLE_SNAPSHOT,
    STABLE_VERSION,
    ServedVersion,
    current_pin_fields,
)


def next_tracks(
    cp: CodePilot,
    served: Sequence[ServedVersion],
    new_version_ready: bool,
    pins: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """status.stableVersion / canaryVersion and the snapshot pins after this reconcile.

    ``pins``: the snapshot pins this reconcile decided (``api.tracks.pin_fields``), or None to carry
    over the ones in status; either way a promotion moves the canary's pin to stable in the same write
    that makes it stable.
    """
    fields = dict(current_pin_fields(cp.status) if pins is None else pins)
    new = served[-1].version if served else cp.spec.model.version
    if len(served) > 1 and not new_version_ready:
        return {STABLE_VERSION: served[0].version, CANARY_VERSION: new, **fields}
    if len(served) > 1 and fields.get(CANARY_SNAPSHOT):
        fields[STABLE_SNAPSHOT] = fields[CANARY_SNAPSHOT]
    if STABLE_SNAPSHOT in fields:
        fields[CANARY_SNAPSHOT] = None
    return {STABLE_VERSION: new, CANARY_VERSION: None, **fields}
