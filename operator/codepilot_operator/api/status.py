"""``status`` of a CodePilot, written only by the operator.

Conditions follow metav1.Condition so that ``kubectl wait --for=condition=Ready`` and every dashboard
that understands Kubernetes conditions work unchanged.
"""

from __future__ import annotations

from datetime import UTC, datetime
from enum import StrEnum
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel


class StatusModel(BaseModel):
    """Status is tolerant on read: an older or newer operator may have written fields we do not know."""

    model_config = ConfigDict(extra="ignore", alias_generator=to_camel, populate_by_name=True)


class ConditionType(StrEnum):
    READY = "Ready"
    PROGRESSING = "Progressing"
    DEGRADED = "Degraded"
    RECONCILED = "Reconciled"
    WEIGHTS_VERIFIED = "WeightsVerified"
    ROLLOUT_PAUSED = "RolloutPaused"


class Reason(StrEnum):
    """CamelCase reasons, one per failure kind a human should be able to filter on."""

    INVALID_SPEC = "InvalidSpec"
    RECONCILED = "Reconciled"
    APPLY_FAILED = "ApplyFailed"
    DEPLOYMENT_NOT_READY = "DeploymentNotReady"
    # The weight fetcher (init container) keeps failing: pods can never become Ready without a fix.
    INIT_CONTAINER_FAILING = "InitContainerFailing"
    REPLICAS_READY = "ReplicasReady"
    SNAPSHOT_FAILED = "SnapshotFailed"
    WEIGHTS_VERIFIED = "WeightsVerified"
    ANALYSIS_FAILED = "AnalysisFailed"
    ROLLED_BACK = "RolledBack"
    ROLLOUT_IN_PROGRESS = "RolloutInProgress"
    AS_EXPECTED = "AsExpected"


class ConditionStatus(StrEnum):
    TRUE = "True"
    FALSE = "False"
    UNKNOWN = "Unknown"


class Condition(StatusModel):
    type: Annotated[str, Field(min_length=1, max_length=316)]
    status: ConditionStatus
    reason: Annotated[
        str, Field(min_length=1, max_length=1024, pattern=r"^[A-Za-z]([A-Za-z0-9_,:]*[A-Za-z0-9_])?$")
    ]
    message: Annotated[str, Field(max_length=32768)] = ""
    last_transition_time: datetime = Field(default_factory=lambda: datetime.now(UTC))
    observed_generation: Annotated[int, Field(ge=0)] | None = None


class TrackSnapshot(StatusModel):
    """The weight snapshot a served version reads (content-addressed, see snapshots/)."""

    version: str
    snapshot_id: str | None = None
    size_bytes: int | None = None


class CodePilotStatus(StatusModel):
    observed_generation: int | None = None
    conditions: list[Condition] = Field(
        default_factory=list,
        json_schema_extra={"x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["type"]},
    )
    stable_version: str | None = None
    canary_version: str | None = None
    canary_weight: Annotated[int, Field(ge=0, le=100)] | None = None
    rollout_step: int | None = None
    replicas: int | None = None
    ready_replicas: int | None = None
    stable_snapshot: TrackSnapshot | None = None
    canary_snapshot: TrackSnapshot | None = None
