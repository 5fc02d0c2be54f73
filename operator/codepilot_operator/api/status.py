"""``status`` of a CodePilot, written only by the operator.

Conditions follow metav1.Condition so that ``kubectl wait --for=condition=Ready`` and every dashboard
that understands Kubernetes conditions work unchanged.
"""

from __future__ import annotations

from datetime import UTC, datetime
from enum import StrEnum
from typing import Annotated, Any

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
    # ServiceMonitor and PrometheusRule applied; False when the cluster does not serve them (serving works)
    MONITORING_READY = "MonitoringReady"


class Reason(StrEnum):
    """CamelCase reasons, one per failure kind a human should be able to filter on."""

    INVALID_SPEC = "InvalidSpec"
    RECONCILED = "Reconciled"
    APPLY_FAILED = "ApplyFailed"
    # An unexpected exception in reconcile (a bug, or input no validation anticipated)
    RECONCILE_ERROR = "ReconcileError"
    DEPLOYMENT_NOT_READY = "DeploymentNotReady"
    # The weight fetcher (init container) keeps failing: pods can never become Ready without a fix.
    INIT_CONTAINER_FAILING = "InitContainerFailing"
    REPLICAS_READY = "ReplicasReady"
    SNAPSHOT_FAILED = "SnapshotFailed"
    WEIGHTS_VERIFIED = "WeightsVerified"
    ANALYSIS_FAILED = "AnalysisFailed"
    ROLLED_BACK = "RolledBack"
    ABORTED = "Aborted"
    PAUSED = "Paused"
    STALLED = "Stalled"
    ROLLOUT_IN_PROGRESS = "RolloutInProgress"
    AS_EXPECTED = "AsExpected"
    # The platform's policy refused the spec (api/platform.py): nothing was read, rendered or applied.
    SECRET_NOT_ALLOWED = "SecretNotAllowed"
    SECRET_NOT_FOUND = "SecretNotFound"
    IMAGE_NOT_ALLOWED = "ImageNotAllowed"
    SERVICE_ACCOUNT_NOT_ALLOWED = "ServiceAccountNotAllowed"
    PRIORITY_CLASS_NOT_ALLOWED = "PriorityClassNotAllowed"
    # The cluster does not serve a kind (its CRD is not installed): optional ones are left out, a kind
    # the spec asks for (KEDA, a Gateway API route) stops the reconcile naming the field.
    KIND_NOT_SERVED = "KindNotServed"
    MONITORING_APPLIED = "MonitoringApplied"
    NOT_REQUESTED = "NotRequested"
    # A PersistentVolumeClaim (the model cache, a claim volume) the pods would mount.
    CLAIM_NOT_ALLOWED = "ClaimNotAllowed"
    CLAIM_NOT_FOUND = "ClaimNotFound"


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


class CacheUse(StatusModel):
    """A served version reading its snapshot from the model cache, and what its pods' fetchers reported
    (their init containers' termination messages, as the kubelet recorded them)."""

    version: str
    claim_name: str
    snapshot_id: str
    pods: int = 0  # pods whose fetcher finished and reported
    downloaded_bytes: int = 0  # summed over those pods: what came from S3
    reused_bytes: int = 0  # and what was already in the cache, verified


class RolloutPhase(StrEnum):
    PROGRESSING = "Progressing"
    PAUSED = "Paused"
    PROMOTED = "Promoted"
    ROLLED_BACK = "RolledBack"
    ABORTED = "Aborted"


class Verdict(StrEnum):
    PASS = "Pass"
    FAIL = "Fail"
    INCONCLUSIVE = "Inconclusive"


class VersionSample(StatusModel):
    """What Prometheus showed of one version over the analysis window (Triton's own counters)."""

    requests: float = 0.0
    errors: float = 0.0
    error_ratio: float | None = None
    mean_latency_seconds: float | None = None
    mean_queue_seconds: float | None = None
    ttft_p95_seconds: float | None = None


class AnalysisResult(StatusModel):
    """One analysis of the canary against stable: the numbers, the thresholds, and what broke."""

    time: datetime
    verdict: Verdict
    reason: str = ""  # CamelCase: ErrorRate, Latency, NoTraffic, PrometheusUnreachable, NoData, ...
    message: str = ""
    window_seconds: float = 0.0
    canary: VersionSample | None = None
    stable: VersionSample | None = None
    thresholds: dict[str, float] = Field(default_factory=dict)
    failures: list[str] = Field(default_factory=list)


class RolloutAction(StatusModel):
    action: str
    time: datetime
    result: str = ""


class RolloutStatus(StatusModel):
    """Where the rollout of ``version`` is; the operator resumes from here after a restart."""

    phase: RolloutPhase
    version: str  # the new version (the canary)
    stable_version: str | None = None
    strategy: str = ""
    step: int = 0  # index into spec.rollout.steps
    weight: Annotated[int, Field(ge=0, le=100)] = 0  # requested percent of traffic to the canary
    # achieved: the HTTPRoute's weight (Gateway), or the canary's share of Ready pods (replica ratio)
    actual_weight: Annotated[int, Field(ge=0, le=100)] | None = None
    started_at: datetime | None = None
    step_started_at: datetime | None = None  # when the current weight took effect (None: not yet)
    step_progress_seconds: float = 0.0  # conclusive analysis time held at this step (the step's clock)
    last_analysis_at: datetime | None = None
    conclusive_at: datetime | None = None  # last conclusive analysis (stall detection)
    consecutive_failures: int = 0
    stable_replicas: int | None = None  # replicas (with an HPA: its minReplicas) this step runs
    canary_replicas: int | None = None
    stable_max_replicas: int | None = None  # HPA maxReplicas while an HPA scales the versions
    canary_max_replicas: int | None = None
    last_analysis: AnalysisResult | None = None
    message: str = ""
    paused_reason: str = ""
    rejected_version: str | None = (
        None  # rolled back or aborted: not retried until spec.model.version changes
    )
    last_action: RolloutAction | None = None


class DefaultedField(StatusModel):
    """A field the CodePilot left out and the value the operator used for it (api/defaults.py)."""

    field: str
    value: str
    from_: str = Field(alias="from", description="Platform (the chart's defaults) or Operator (built in).")


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
    # spec.model and spec.runtime the stable version was promoted with: it keeps serving exactly that
    # while a new version rolls out (kept as written; parsed by api/tracks.py, which falls back to spec)
    stable_template: dict[str, Any] | None = Field(
        default=None, json_schema_extra={"x-kubernetes-preserve-unknown-fields": True}
    )
    rollout: RolloutStatus | None = None
    url: str | None = None  # base URL of the OpenAI-compatible endpoint (spec.api), for SDKs and editors
    # Every value the CodePilot did not set itself, and where it came from: the platform or the operator.
    defaults: list[DefaultedField] = Field(default_factory=list)
    model_cache: list[CacheUse] | None = None  # versions served from spec.model.cache
