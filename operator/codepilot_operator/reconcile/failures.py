"""What a failed reconcile tells the user, and when it is tried again.

Every failure a CodePilot can cause ends the same way: conditions that name the cause (so ``kubectl
describe`` shows an Event when they change), a metric, and a retry that is bounded. Known failures keep
their own reasons (InvalidSpec, the platform policy's SecretNotAllowed and the like, SnapshotFailed,
ApplyFailed); anything else is a ReconcileError naming the exception's type and message, so a bug or an
input nobody anticipated is visible on the object instead of only as a traceback in the operator's log.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from codepilot_operator.api.status import Reason
from codepilot_operator.clients.kube import KubeUnavailable
from codepilot_operator.reconcile.admission import PolicyRefused
from codepilot_operator.reconcile.apis import KindsNotServed
from codepilot_operator.reconcile.reconcile import InvalidSpec, PrepareFailed
from codepilot_operator.reconcile.status import (
    ConditionUpdate,
    apply_failed_conditions,
    invalid_spec_conditions,
    kind_not_served_conditions,
    reconcile_error_conditions,
)

RECONCILE_ERROR = "ReconcileError"
MAX_MESSAGE = 400
# Retries of an unexpected error back off from this, doubling, up to the cap (kopf counts the retries).
ERROR_DELAY = 15.0
ERROR_DELAY_CAP = 600.0
_USERINFO = re.compile(r"(?<=://)[^/@\s]+@")


@dataclass(frozen=True)
class Failure:
    reason: str  # metric label: InvalidSpec, SnapshotFailed, Http503, ReconcileError, ...
    message: str  # one line
    conditions: list[ConditionUpdate]
    delay: float | None  # seconds until the next attempt; None: only a change of the spec can help
    snapshot: bool = False  # counts as a snapshot failure (its own alerting metric)


def redact(text: str) -> str:
    """Drop credentials embedded in URLs (``scheme://user:password@host``): messages end up in status."""
    return _USERINFO.sub("***@", text)


def one_line(exc: BaseException) -> str:
    """``Type: message`` on one line, without URL credentials, short enough for a condition."""
    text = " ".join(f"{type(exc).__name__}: {exc}".split())
    text = redact(text)
    return text if len(text) <= MAX_MESSAGE else text[: MAX_MESSAGE - 3] + "..."


def error_delay(retry: int) -> float:
    """15 s, 30 s, 60 s, ... up to 10 minutes: retried, never in a tight loop."""
    return float(min(ERROR_DELAY_CAP, ERROR_DELAY * 2.0 ** min(retry, 16)))


def classify(exc: Exception, *, retry_delay: float, retry: int = 0) -> Failure:
    """The Failure for an exception raised by reconcile(); ``retry`` counts earlier attempts."""
    if isinstance(exc, InvalidSpec):
        return Failure("InvalidSpec", str(exc), invalid_spec_conditions(exc.problems), None)
    if isinstance(exc, KindsNotServed):
        # No retry loop: the catalog reconciles every CodePilot again when a kind appears.
        return Failure(Reason.KIND_NOT_SERVED, str(exc), kind_not_served_conditions(exc.problems), None)
    if isinstance(exc, PolicyRefused):
        # An edit of the CodePilot is a change handled at once; a label set on the Secret is seen by the
        # next drift resync, which runs at its full interval.
        return Failure(exc.reason, f"refused by the platform's policy: {exc}", exc.conditions, None)
    if isinstance(exc, PrepareFailed):
        return Failure(exc.reason, str(exc), exc.conditions, exc.delay, snapshot=True)
    if isinstance(exc, KubeUnavailable):
        return Failure(exc.reason, str(exc), apply_failed_conditions(str(exc)), retry_delay)
    message = one_line(exc)
    return Failure(RECONCILE_ERROR, message, reconcile_error_conditions(message), error_delay(retry))
