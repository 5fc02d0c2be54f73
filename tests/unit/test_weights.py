"""When a drift resync may reuse the snapshot pins in status instead of asking S3 again."""

from __future__ import annotations

from typing import Any

from codepilot_operator.api import CodePilot
from codepilot_operator.api.status import CodePilotStatus, Condition, ConditionStatus, TrackSnapshot
from codepilot_operator.reconcile.weights import prepared_from_status
from codepilot_operator.render import ServedVersion
from tests.helpers import codepilot

A, B = "a" * 64, "b" * 64


def _cp(verified: ConditionStatus, **status: Any) -> CodePilot:
    condition = Condition(type="WeightsVerified", status=verified, reason="WeightsVerified", message="ok")
    return codepilot(**{"spec.model.version": "v2"}).model_copy(
        update={"status": CodePilotStatus(conditions=[condition], **status)}
    )


def test_pins_for_every_served_version_are_reused() -> None:
    cp = _cp(
        ConditionStatus.TRUE,
        stable_snapshot=TrackSnapshot(version="v1", snapshot_id=A, size_bytes=1),
        canary_snapshot=TrackSnapshot(version="v2", snapshot_id=B, size_bytes=2),
    )
    prepared = prepared_from_status(cp, [ServedVersion("v1"), ServedVersion("v2")])
    assert prepared is not None
    assert prepared.served == [ServedVersion("v1", A), ServedVersion("v2", B)]
    assert prepared.status["canarySnapshot"] == {"version": "v2", "snapshotId": B, "sizeBytes": 2}
    assert prepared.conditions[0].type == "WeightsVerified"


def test_a_version_without_a_pin_or_unverified_weights_go_to_s3() -> None:
    pinned_v1 = {"stable_snapshot": TrackSnapshot(version="v1", snapshot_id=A)}
    served = [ServedVersion("v1"), ServedVersion("v2")]
    assert prepared_from_status(_cp(ConditionStatus.TRUE, **pinned_v1), served) is None
    both = {**pinned_v1, "canary_snapshot": TrackSnapshot(version="v2", snapshot_id=B)}
    assert prepared_from_status(_cp(ConditionStatus.FALSE, **both), served) is None
