"""What a failed reconcile tells the user, and when it is tried again.

A failure ends the same way whoever met it (a change handler or a periodic job): conditions that name
the cause (so ``kubectl describe`` shows an Event when they change), a metric, and a retry delay.
"""

from __future__ import annotations

from dataclasses import dataclass

from codepilot_operator.clients.kube import KubeUnavailable
from codepilot_operator.reconcile.reconcile import InvalidSpec, PrepareFailed
from codepilot_operator.reconcile.status import (
    ConditionUpdate,
    apply_failed_conditions,
    invalid_spec_conditions,
)

KNOWN = (InvalidSpec, PrepareFailed, KubeUnavailable)


@dataclass(frozen=True)
class Failure:
    reason: str  # metric label: InvalidSpec, SnapshotFailed, Http503, ...
    message: str  # one line
    conditions: list[ConditionUpdate]
    delay: float | None  # seconds until the next attempt; None: only a change of the spec can help
    snapshot: bool = False  # counts as a snapshot failure (its own alerting metric)


def classify(exc: InvalidSpec | PrepareFailed | KubeUnavailable, *, retry_delay: float) -> Failure:
    """The Failure for one of the exceptions reconcile() raises on purpose."""
    if isinstance(exc, InvalidSpec):
        return Failure("InvalidSpec", str(exc), invalid_spec_conditions(exc.problems), None)
    if isinstance(exc, PrepareFailed):
        return Failure(exc.reason, str(exc), exc.conditions, exc.delay, snapshot=True)
    return Failure(exc.reason, str(exc), apply_failed_conditions(str(exc)), retry_delay)
