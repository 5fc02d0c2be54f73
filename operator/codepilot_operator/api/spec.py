"""``spec`` of a CodePilot: what to serve, on what, how to scale, roll out and alert.

Defaults live here (and so in the CRD schema, where the API server applies them); the renderer never
invents a default of its own. Cross-field rules are written twice on purpose: as a pydantic validator
for the CLI and the operator, and as a CEL rule (``x-kubernetes-validations``) for the API server.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated, Any, Self

from pydantic import BaseModel, ConfigDict, Field, model_validator
from pydantic.alias_generators import to_camel

from codepilot_operator.api.contract import ACCESS_KEY_ENV, SECRET_KEY_ENV
from codepilot_operator.api.fields import (
    DNS1123_SUBDOMAIN_PATTERN,
    INT32_MAX,
    INT64_MAX,
    LABEL_VALUE_PATTERN,
    Bool,
    Duration,
    DurationRange,
    DurationSyntax,
    Float,
    Image,
    Int,
    LabelKey,
    ObjectName,
    OptionalLabelValue,
    PositiveQuantity,
    Quantity,
    parse_quantity,
)
from codepilot_operator.api.platform import ALLOW_LABEL, ALLOW_VALUE, PrometheusUrl
from codepilot_operator.api.pod import (
    MAX_ENV,
    MAX_MOUNTS,
    MAX_SPREAD,
    MAX_VOLUMES,
    Affinity,
    EnvVar,
    PodAnnotations,
    TopologySpreadConstraint,
    Volume,
    VolumeMount,
)
from codepilot_operator.api.storage import BucketName, CABundleRef, Endpoint, Region, SnapshotPrefix

DEFAULT_TRITON_IMAGE = "nvcr.io/nvidia/tritonserver:25.10-trtllm-python-py3"
DEFAULT_REGION = "us-east-1"
DEFAULT_PROMETHEUS_ADDRESS = "http://prometheus-operated.monitoring.svc:9090"
DEFAULT_SNAPSHOT_PREFIX = "codepilot-snapshots"


def _cel(*rules: tuple[str, str]) -> dict[str, Any]:
    return {"x-kubernetes-validations": [{"rule": rule, "message": message} for rule, message in rules]}


class SpecModel(BaseModel):
    """Base of every spec object: camelCase on the wire, unknown fields are an error."""

    model_config = ConfigDict(
        extra="forbid", alias_generator=to_camel, populate_by_name=True, validate_default=True
    )


class Backend(StrEnum):
    TENSORRTLLM = "tensorrtllm"
    PYTHON = "python"
    ONNXRUNTIME = "onnxruntime"


RETENTION_KEEP_MAX = 1000
# Ten years: beyond it "keep by age" means "keep forever", and the age arithmetic stays far from overflow.
RETENTION_MAX_AGE = DurationRange(maximum="3650d")


class SnapshotRetention(SpecModel):
    """Which weight snapshots survive garbage collection; snapshots pinned by stable/canary always do."""

    keep: Annotated[Int, Field(ge=0, le=RETENTION_KEEP_MAX)] = Field(
        default=5, description="Keep at least the newest this many snapshots."
    )
    max_age: Annotated[DurationSyntax, RETENTION_MAX_AGE] = Field(
        default="7d", description="Keep every snapshot younger than this."
    )


class ModelSource(SpecModel):
    """Where the model version's files are in S3 (MinIO or any S3-compatible store)."""

    uri: Annotated[
        str, Field(pattern=r"^s3://[a-z0-9][a-z0-9.-]{1,61}[a-z0-9](/[^\s]*)?$", max_length=1024)
    ] = Field(description="s3://bucket/prefix holding the model version's files.")
    # No schema defaults below: the API server would store them in every CodePilot, and the platform's
    # defaults (api/platform.py, applied by api/defaults.py) could never reach it.
    endpoint: Endpoint | None = Field(
        default=None,
        description="S3 endpoint URL, e.g. http://minio.minio.svc:9000 (https enables TLS); default: the "
        "platform's.",
    )
    credentials_secret: ObjectName | None = Field(
        default=None,
        description=(
            f"Secret holding {ACCESS_KEY_ENV} and {SECRET_KEY_ENV}; default: the platform's, with its "
            f"endpoint. Without one: the pod's web identity (AWS_WEB_IDENTITY_TOKEN_FILE and AWS_ROLE_ARN) "
            f"when present, else anonymous access. It must carry the label {ALLOW_LABEL}={ALLOW_VALUE}."
        ),
    )
    region: Region | None = Field(
        default=None,
        description=f"S3 region (MinIO ignores it); default: the platform's, else {DEFAULT_REGION}.",
    )
    ca_bundle: CABundleRef | None = Field(
        default=None,
        description="CA bundle for an https endpoint signed by a private CA; default: the platform's, with "
        "its endpoint.",
    )
    snapshot_bucket: BucketName | None = Field(
        default=None,
        description="Bucket holding the immutable weight snapshots; default: the platform's, with its "
        "endpoint, else the bucket of uri.",
    )
    snapshot_prefix: SnapshotPrefix | None = Field(
        default=None,
        description=f"Prefix under which weight snapshots are kept; default: the platform's, else "
        f"{DEFAULT_SNAPSHOT_PREFIX}. Snapshots pinned in status are looked for here: move them with it.",
    )
    retention: SnapshotRetention = Field(default_factory=SnapshotRetention)

    @property
    def bucket(self) -> str:
        return self.uri.removeprefix("s3://").split("/", 1)[0]

    @property
    def prefix(self) -> str:
        parts = self.uri.removeprefix("s3://").split("/", 1)
        return parts[1].strip("/") if len(parts) == 2 else ""


class ModelCache(SpecModel):
    """A PersistentVolumeClaim that keeps fetched snapshots, so a new pod reuses them instead of
    downloading the weights again.

    A claim the platform or the team provides, by name: ReadWriteMany (NFS, CephFS, EFS, Filestore)
    shares one cache among all replicas on all nodes; ReadWriteOnce serves the pods of one node. The
    operator does not create it: which storage class can be shared across nodes, and how big a cache
    may grow, are the platform's decisions, and a claim outlives the CodePilot that used it.
    """

    claim_name: ObjectName = Field(
        description=(
            "PersistentVolumeClaim of the CodePilot's namespace holding the cache; it must carry the label "
            f"{ALLOW_LABEL}={ALLOW_VALUE}. Snapshots are kept under snapshots/<id>, one directory per "
            "snapshot, so versions coexist; the weights fetcher locks each directory while it writes it."
        )
    )


class ModelSpec(SpecModel):
    """The model to serve: its Triton name, version, backend and where its files are."""

    name: Annotated[str, Field(min_length=1, max_length=128, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")] = (
        Field(
            description="Triton model name (the directory in the model repository and the name clients call)."
        )
    )
    version: Annotated[str, Field(min_length=1, max_length=63, pattern=LABEL_VALUE_PATTERN)] = Field(
        description="Version of the model; changing it starts a rollout. A valid label value, e.g. v1.2.0."
    )
    backend: Backend = Field(default=Backend.TENSORRTLLM, description="Triton backend that runs the model.")
    source: ModelSource
    cache: ModelCache | None = Field(
        default=None,
        description=(
            "Keep fetched snapshots on a PersistentVolumeClaim instead of each pod's emptyDir; a version "
            "served from its source (no snapshot) is fetched into the emptyDir as before."
        ),
    )


class Toleration(SpecModel):
    """A pod toleration (core/v1 Toleration), e.g. for tainted GPU nodes, with core/v1's own rules."""

    model_config = ConfigDict(
        json_schema_extra=_cel(
            (
                "!has(self.tolerationSeconds) || (has(self.effect) && self.effect == 'NoExecute')",
                "tolerationSeconds needs effect NoExecute",
            ),
            (
                "!has(self.operator) || self.operator != 'Exists' || !has(self.value) || self.value == ''",
                "value must be empty when operator is Exists",
            ),
            (
                "has(self.key) || (has(self.operator) && self.operator == 'Exists')",
                "operator must be Exists when key is empty",
            ),
        )
    )

    key: LabelKey | None = None
    operator: Annotated[str, Field(pattern=r"^(Exists|Equal)$")] | None = None
    value: OptionalLabelValue | None = None
    effect: Annotated[str, Field(pattern=r"^(NoSchedule|PreferNoSchedule|NoExecute)$")] | None = None
    toleration_seconds: Annotated[Int, Field(ge=0, le=INT64_MAX)] | None = None

    @model_validator(mode="after")
    def _as_core_v1_validates(self) -> Self:
        if self.toleration_seconds is not None and self.effect != "NoExecute":
            raise ValueError("tolerationSeconds needs effect NoExecute")
        if self.operator == "Exists" and self.value:
            raise ValueError("value must be empty when operator is Exists")
        if not self.key and self.operator != "Exists":
            raise ValueError("operator must be Exists when key is empty")
        return self


class ResourceList(SpecModel):
    """CPU, memory and ephemeral storage quantities."""

    cpu: Quantity | None = None
    memory: Quantity | None = None
    ephemeral_storage: Quantity | None = Field(default=None, alias="ephemeral-storage")


class Resources(SpecModel):
    """CPU and memory per Triton container; GPUs are set by ``runtime.gpus``."""

    model_config = ConfigDict(
        json_schema_extra=_cel(
            (
                "!has(self.requests.cpu) || !has(self.limits.cpu) || "
                "quantity(string(self.requests.cpu)).compareTo(quantity(string(self.limits.cpu))) <= 0",
                "requests.cpu must not exceed limits.cpu",
            ),
            (
                "!has(self.requests.memory) || !has(self.limits.memory) || "
                "quantity(string(self.requests.memory)).compareTo(quantity(string(self.limits.memory))) <= 0",
                "requests.memory must not exceed limits.memory",
            ),
        )
    )

    requests: ResourceList = Field(default_factory=lambda: ResourceList(cpu="1", memory="4Gi"))
    limits: ResourceList = Field(default_factory=lambda: ResourceList(cpu="2", memory="8Gi"))

    @model_validator(mode="after")
    def _requests_within_limits(self) -> Self:
        for name in ("cpu", "memory"):
            request, limit = getattr(self.requests, name), getattr(self.limits, name)
            if request is not None and limit is not None and parse_quantity(request) > parse_quantity(limit):
                raise ValueError(f"requests.{name} ({request}) must not exceed limits.{name} ({limit})")
        return self


def _duplicates(values: list[str]) -> list[str]:
    seen: set[str] = set()
    return sorted({v for v in values if v in seen or seen.add(v)})  # type: ignore[func-returns-value]


class RuntimeSpec(SpecModel):
    """How each replica runs: Triton image, GPUs, resources, placement and limits of the model server."""

    model_config = ConfigDict(
        json_schema_extra=_cel(
            (
                "!has(self.volumeMounts) || self.volumeMounts.all(m, has(self.volumes) && "
                "self.volumes.exists(v, v.name == m.name))",
                "every volumeMounts[].name must be one of volumes[].name",
            ),
            (
                "!has(self.volumes) || self.volumes.all(v, self.volumes.exists_one(w, w.name == v.name))",
                "volumes[].name must be unique",
            ),
            (
                "!has(self.env) || self.env.all(e, self.env.exists_one(f, f.name == e.name))",
                "env[].name must be unique",
            ),
            (
                "!has(self.volumeMounts) || "
                "self.volumeMounts.all(m, self.volumeMounts.exists_one(n, n.mountPath == m.mountPath))",
                "volumeMounts[].mountPath must be unique",
            ),
        )
    )

    # No schema default: a platform's Triton image (a mirror, a newer release) must reach CodePilots that
    # never chose one, including those created before it was set.
    image: Image | None = Field(
        default=None,
        description=f"Triton Inference Server image; default: the platform's, else {DEFAULT_TRITON_IMAGE}.",
    )
    image_pull_policy: Annotated[str, Field(pattern=r"^(Always|IfNotPresent|Never)$")] = "IfNotPresent"
    image_pull_secrets: list[ObjectName] = Field(
        default_factory=list,
        max_length=16,
        description=f"Secrets to pull images with; each must carry the label {ALLOW_LABEL}={ALLOW_VALUE}.",
    )
    # No schema default: the API server would store it in every CodePilot, and a new operator image
    # (helm upgrade) would never reach the CodePilots created before it.
    fetcher_image: Image | None = Field(
        default=None,
        description=(
            "Image of the init container that fetches and verifies the weights (codepilot fetch); default: "
            "the operator's own image. An override must be one the platform allows "
            "(chart policy.fetcherImages)."
        ),
    )
    gpus: Annotated[Int, Field(ge=0, le=16)] = Field(default=1, description="nvidia.com/gpu per replica.")
    resources: Resources = Field(default_factory=Resources)
    node_selector: dict[LabelKey, OptionalLabelValue] = Field(default_factory=dict, max_length=64)
    tolerations: list[Toleration] = Field(default_factory=list, max_length=32)
    affinity: Affinity | None = Field(
        default=None, description="Node affinity and pod (anti-)affinity within the namespace (core/v1)."
    )
    topology_spread_constraints: list[TopologySpreadConstraint] = Field(
        default_factory=list,
        max_length=MAX_SPREAD,
        description="core/v1 topology spread; without a labelSelector, over the version's own pods.",
    )
    pod_annotations: PodAnnotations = Field(
        default_factory=dict,
        description="Annotations on the pods (not under serving.codepilot.dev/, no AppArmor/seccomp).",
    )
    env: list[EnvVar] = Field(
        default_factory=list,
        max_length=MAX_ENV,
        description=(
            "Extra environment of the Triton container (not HOME, which the operator sets); Secrets named "
            f"by secretKeyRef must carry the label {ALLOW_LABEL}={ALLOW_VALUE}."
        ),
    )
    volumes: list[Volume] = Field(
        default_factory=list,
        max_length=MAX_VOLUMES,
        description=(
            "Extra volumes: configMap, secret, emptyDir or persistentVolumeClaim (no hostPath); Secrets and "
            f"claims must carry the label {ALLOW_LABEL}={ALLOW_VALUE}."
        ),
    )
    volume_mounts: list[VolumeMount] = Field(
        default_factory=list,
        max_length=MAX_MOUNTS,
        description="Where runtime.volumes appear in the Triton container (not at or around /models, /tmp, "
        "/dev/shm).",
    )
    service_account_name: ObjectName | None = Field(
        default=None,
        description="ServiceAccount of the pods: a name the platform allows (chart policy.serviceAccounts).",
    )
    priority_class_name: ObjectName | None = Field(
        default=None,
        description="PriorityClass of the pods: a name the platform allows (chart policy.priorityClasses).",
    )
    max_tokens: Annotated[Int, Field(ge=1, le=1_048_576)] = Field(
        default=2048, description="Upper bound on tokens generated per request."
    )
    max_batch_size: Annotated[Int, Field(ge=0, le=4096)] = Field(
        default=8, description="Triton max_batch_size; 0 disables batching."
    )
    shm_size: PositiveQuantity = Field(default="2Gi", description="Size of the /dev/shm memory volume.")
    model_cache_size: PositiveQuantity = Field(
        default="100Gi", description="Size limit of the emptyDir that holds the fetched weights."
    )
    # One startup probe period at least; at most the default range, so that the Deployment's
    # progressDeadlineSeconds (startupTimeout + 600 s) still fits its int32.
    startup_timeout: Annotated[DurationSyntax, DurationRange(minimum="10s")] = Field(
        default="30m", description="How long a replica may take to fetch and load the model before restart."
    )

    @model_validator(mode="after")
    def _pod_lists_are_consistent(self) -> Self:
        names = [v.name for v in self.volumes]
        for index, mount in enumerate(self.volume_mounts):
            if mount.name not in names:
                raise ValueError(
                    f"volumeMounts[{index}].name: {mount.name} is not one of runtime.volumes "
                    f"({', '.join(names) or 'none'})"
                )
        for what, values in (
            ("volumes[].name", names),
            ("env[].name", [e.name for e in self.env]),
            ("volumeMounts[].mountPath", [m.mount_path for m in self.volume_mounts]),
        ):
            if repeated := _duplicates(values):
                raise ValueError(f"{what} must be unique: {', '.join(repeated)} more than once")
        return self


class ScalingSignal(StrEnum):
    QUEUE_TIME = "queueTime"
    INFLIGHT_REQUESTS = "inflightRequests"
    GPU_UTILIZATION = "gpuUtilization"
    CPU = "cpu"


class ScalingProvider(StrEnum):
    PROMETHEUS_ADAPTER = "PrometheusAdapter"
    KEDA = "KEDA"


# The HPA takes a cpu target as a whole percent (averageUtilization) and refuses 0.
CPU_TARGET_MESSAGE = "a cpu target is a whole percent >= 1"


class AutoscalingSpec(SpecModel):
    """Replica range and the serving signal to scale on; an HPA exists only when maxReplicas > minReplicas."""

    model_config = ConfigDict(
        json_schema_extra=_cel(
            ("self.maxReplicas >= self.minReplicas", "maxReplicas must be >= minReplicas"),
            ("self.signal != 'cpu' || !has(self.target) || self.target >= 1.0", CPU_TARGET_MESSAGE),
        )
    )

    min_replicas: Annotated[Int, Field(ge=0, le=1000)] = 1
    max_replicas: Annotated[Int, Field(ge=1, le=1000)] = 1
    signal: ScalingSignal = Field(
        default=ScalingSignal.QUEUE_TIME, description="Per-pod serving signal the HPA scales on."
    )
    # The HPA's target quantity is written in milli-units: below 0.001 it would be 0, which the HPA refuses.
    target: Annotated[Float, Field(ge=0.001, le=1_000_000)] | None = Field(
        default=None,
        description=(
            "Target per pod: milliseconds of queue time per request (queueTime, default 100), requests in "
            "flight (inflightRequests, default 4), percent (gpuUtilization default 80, cpu default 70)."
        ),
    )
    provider: ScalingProvider = Field(
        default=ScalingProvider.PROMETHEUS_ADAPTER,
        description="What brings the signal to the HPA: prometheus-adapter rules or a KEDA ScaledObject.",
    )
    # The HPA's stabilizationWindowSeconds is at most 3600.
    scale_down_stabilization: Annotated[DurationSyntax, DurationRange(maximum="1h")] = Field(
        default="10m", description="Wait before removing a replica; GPU pods are slow to come back."
    )
    # No schema default, so that the platform's Prometheus reaches CodePilots that never chose one.
    prometheus_address: (
        Annotated[str, Field(max_length=512, pattern=r"^https?://[^\s/]+(:[0-9]+)?(/\S*)?$")] | None
    ) = Field(
        default=None,
        description=f"Prometheus URL the KEDA ScaledObject queries (provider KEDA only); default: the "
        f"platform's (chart value defaults.prometheusUrl), else {DEFAULT_PROMETHEUS_ADDRESS}.",
    )

    @model_validator(mode="after")
    def _max_not_below_min(self) -> Self:
        if self.max_replicas < self.min_replicas:
            raise ValueError(
                f"maxReplicas ({self.max_replicas}) must be >= minReplicas ({self.min_replicas})"
            )
        if self.signal is ScalingSignal.CPU and self.target is not None and self.target < 1:
            raise ValueError(CPU_TARGET_MESSAGE)
        return self

    @property
    def enabled(self) -> bool:
        """An HPA exists only when there is a range to scale in."""
        return self.max_replicas > self.min_replicas


class RolloutStrategy(StrEnum):
    CANARY = "Canary"
    AB_TEST = "ABTest"
    IMMEDIATE = "Immediate"


class RolloutStep(SpecModel):
    """One step of a canary: hold ``weight`` percent of traffic for ``pause`` while analysing."""

    weight: Annotated[Int, Field(ge=1, le=100)] = Field(description="Percent of traffic sent to the canary.")
    pause: Duration = Field(default="5m", description="How long to hold this weight while analysing.")


class StallAction(StrEnum):
    HOLD = "Hold"
    ROLLBACK = "Rollback"


class AnalysisSpec(SpecModel):
    """How the canary is judged against the stable version, from Triton's own counters in Prometheus.

    An interval is judged only on samples taken after the current weight took effect; one with fewer
    than ``minRequests`` canary requests, or no answer from Prometheus, is inconclusive: it neither
    fails nor advances the step.
    """

    interval: Duration = Field(default="1m", description="How often the canary is analysed.")
    prometheus_url: PrometheusUrl | None = Field(
        default=None,
        description="Prometheus HTTP API base URL; default: the platform's (chart value "
        "defaults.prometheusUrl, or the operator's --prometheus-url).",
    )
    max_error_rate: Annotated[Float, Field(ge=0, le=1)] = Field(
        default=0.01,
        description=(
            "Highest failed/total request ratio tolerated on the canary (client cancellations excluded). "
            "The canary fails on errors only when it is over this AND significantly worse than stable."
        ),
    )
    significance: Annotated[Float, Field(gt=0, le=0.5)] = Field(
        default=0.05,
        description="p-value below which the canary's error ratio counts as worse than stable's.",
    )
    max_latency_ratio: Annotated[Float, Field(ge=1, le=100)] = Field(
        default=1.2,
        description="Highest canary/stable ratio of mean latency (and of p95 time to first response).",
    )
    max_latency: Duration | None = Field(
        default=None,
        description="Highest mean canary latency tolerated; default: spec.alerts.latency.threshold.",
    )
    min_requests: Annotated[Int, Field(ge=0, le=INT32_MAX)] = Field(
        default=20, description="Requests the canary must serve in an interval before a check counts."
    )
    failure_limit: Annotated[Int, Field(ge=1, le=100)] = Field(
        default=3, description="Consecutive failed checks that roll the canary back."
    )
    stall_timeout: Duration = Field(
        default="30m",
        description="How long a step may stay without a conclusive analysis before onStall applies.",
    )
    on_stall: StallAction = Field(
        default=StallAction.HOLD,
        description="Hold (pause, wait for a human) or Rollback when a step stalls.",
    )


class ParentReference(SpecModel):
    """A Gateway the HTTPRoute attaches to (gateway.networking.k8s.io ParentReference, Gateway kind)."""

    name: ObjectName
    namespace: Annotated[str, Field(max_length=63, pattern=r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")] | None = None
    section_name: Annotated[str, Field(max_length=253, pattern=DNS1123_SUBDOMAIN_PATTERN)] | None = None
    port: Annotated[Int, Field(ge=1, le=65535)] | None = None


class GatewayTraffic(SpecModel):
    """Route traffic with a Gateway API HTTPRoute: exact weights and header pinning."""

    parent_refs: list[ParentReference] = Field(min_length=1, max_length=32)
    hostnames: list[
        Annotated[
            str,
            Field(
                max_length=253,
                pattern=r"^(\*\.)?[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$",
            ),
        ]
    ] = Field(default_factory=list, max_length=16)


class TrafficSpec(SpecModel):
    """How traffic is split between the stable version and the canary."""

    gateway: GatewayTraffic | None = Field(
        default=None,
        description=(
            "Split by weight in a Gateway API HTTPRoute; without it, by replica ratio behind the Service."
        ),
    )
    max_surge: Annotated[Int, Field(ge=0, le=100)] = Field(
        default=1,
        description=(
            "Replicas allowed beyond the stable count during a rollout; 0 takes one stable replica out "
            "before the first canary replica is ready."
        ),
    )
    version_header: Annotated[
        str, Field(min_length=1, max_length=256, pattern=r"^[A-Za-z0-9!#$%&'*+.^_`|~-]+$")
    ] = Field(
        default="x-codepilot-version",
        description="Request header that pins a request to a version (Gateway routing).",
    )


class ABTestSpec(SpecModel):
    """A fixed split for an A/B test; promotion and abort are manual."""

    weight: Annotated[Int, Field(ge=1, le=99)] = Field(
        default=50, description="Percent of traffic sent to the new version."
    )


def _default_steps() -> list[RolloutStep]:
    return [RolloutStep(weight=10, pause="5m"), RolloutStep(weight=50, pause="10m")]


class RolloutSpec(SpecModel):
    """How a change of spec.model.version reaches users: Canary, ABTest or Immediate."""

    model_config = ConfigDict(
        json_schema_extra=_cel(
            (
                "self.steps.map(s, s.weight).isSorted()",
                "steps weights must not decrease",
            ),
        )
    )

    strategy: RolloutStrategy = RolloutStrategy.CANARY
    steps: list[RolloutStep] = Field(default_factory=_default_steps, max_length=20)
    analysis: AnalysisSpec = Field(default_factory=AnalysisSpec)
    traffic: TrafficSpec = Field(default_factory=TrafficSpec)
    ab_test: ABTestSpec = Field(default_factory=ABTestSpec)

    @model_validator(mode="after")
    def _weights_increase(self) -> Self:
        weights = [step.weight for step in self.steps]
        if weights != sorted(weights):
            raise ValueError(f"steps weights must not decrease, got {weights}")
        return self


class LatencyAlert(SpecModel):
    """Critical alert when mean request latency stays above ``threshold`` for ``for``."""

    threshold: Duration = Field(default="1s", description="Mean request latency that is critical.")
    for_: Duration = Field(
        default="5m", alias="for", description="How long latency must stay above threshold."
    )
    severity: Annotated[str, Field(pattern=r"^(critical|warning|info)$")] = "critical"


class ErrorRateAlert(SpecModel):
    """Alert when the failed/total request ratio stays above ``threshold`` for ``for``."""

    threshold: Annotated[Float, Field(gt=0, le=1)] = Field(default=0.05, description="Failed/total ratio.")
    for_: Duration = Field(default="5m", alias="for")
    severity: Annotated[str, Field(pattern=r"^(critical|warning|info)$")] = "warning"


class SLOSpec(SpecModel):
    """Availability SLO; when ``objective`` is set, multi-window multi-burn-rate alerts are rendered."""

    objective: Annotated[Float, Field(gt=0, lt=100)] | None = Field(
        default=None,
        description="Availability objective in percent, e.g. 99.9; unset disables burn-rate alerts.",
    )
    window: Duration = Field(default="30d", description="SLO window the error budget is spent over.")


class AlertsSpec(SpecModel):
    """Prometheus alerting for this CodePilot (ServiceMonitor and PrometheusRule)."""

    enabled: Bool = True
    latency: LatencyAlert = Field(default_factory=LatencyAlert)
    error_rate: ErrorRateAlert = Field(default_factory=ErrorRateAlert)
    slo: SLOSpec = Field(default_factory=SLOSpec)
    runbook_base_url: Annotated[str, Field(max_length=512, pattern=r"^https?://\S+$")] | None = None
    labels: dict[LabelKey, OptionalLabelValue] = Field(
        default_factory=dict,
        max_length=64,
        description="Extra labels on the ServiceMonitor and PrometheusRule (e.g. release), added to the "
        "platform's; a key set here wins.",
    )


class ApiSpec(SpecModel):
    """The OpenAI-compatible endpoint in front of Triton (docs/api-endpoint.md): a gateway Deployment
    with per-team keys, limits, a queue and usage metrics. Each gateway replica enforces the limits on
    its own."""

    enabled: Bool = Field(default=False, description="Render the gateway and write status.url.")
    key_secrets: list[ObjectName] = Field(
        default_factory=list,
        max_length=64,
        description=(
            "Secrets, one per team, holding `api-key` (and optionally `requests-per-minute`, "
            "`tokens-per-minute`); the Secret's name is the team in metrics. Changes apply without restart."
        ),
    )
    requests_per_minute: Annotated[Int, Field(ge=0, le=1_000_000)] = Field(
        default=60, description="Requests per minute per key unless its Secret says otherwise; 0: no limit."
    )
    tokens_per_minute: Annotated[Int, Field(ge=0, le=1_000_000_000)] = Field(
        default=0, description="Prompt + completion tokens per minute per key; 0: no limit."
    )
    max_concurrency: Annotated[Int, Field(ge=1, le=4096)] = Field(
        default=8, description="Requests sent to Triton at once; more wait in a queue."
    )
    max_queue: Annotated[Int, Field(ge=0, le=100_000)] = Field(
        default=64, description="Requests that may wait; beyond, 503 with Retry-After."
    )
    queue_timeout: Duration = Field(default="30s", description="Longest wait in the queue before a 503.")
    gateway_url: Annotated[str, Field(max_length=512, pattern=r"^https?://[^\s/@]+(:[0-9]+)?/?$")] | None = (
        Field(
            default=None,
            alias="gatewayURL",
            description=(
                "Where the Gateway of spec.rollout.traffic.gateway listens (required with it): requests go "
                "through the HTTPRoute so its weights apply."
            ),
        )
    )
    replicas: Annotated[Int, Field(ge=1, le=100)] = Field(default=1, description="Gateway replicas.")
    # No schema default, like runtime.fetcherImage: a helm upgrade's image must reach every CodePilot.
    image: Image | None = Field(
        default=None,
        description=(
            "Image of the gateway (codepilot gateway); default: the operator's own image. It holds every "
            "team's API keys: an override must be one the platform allows (chart policy.fetcherImages)."
        ),
    )


class CodePilotSpec(SpecModel):
    model_config = ConfigDict(
        json_schema_extra=_cel(
            (
                "self.model.backend != 'tensorrtllm' || self.runtime.gpus >= 1",
                "the tensorrtllm backend needs runtime.gpus >= 1",
            ),
            (
                "self.model.backend != 'tensorrtllm' || self.runtime.maxBatchSize >= 1",
                "the tensorrtllm backend needs runtime.maxBatchSize >= 1",
            ),
            (
                "self.rollout.traffic.maxSurge >= 1 || self.autoscaling.minReplicas >= 2",
                "rollout.traffic.maxSurge 0 needs autoscaling.minReplicas >= 2",
            ),
            (
                "!self.api.enabled || !has(self.rollout.traffic.gateway) || has(self.api.gatewayURL)",
                "api.gatewayURL is required with rollout.traffic.gateway",
            ),
            (
                "!self.api.enabled || self.model.backend != 'onnxruntime'",
                "api needs a text model: backend python or tensorrtllm",
            ),
            (
                "!self.api.enabled || self.model.version != 'api'",
                "model.version 'api' would name its Deployment and Service like the API gateway's",
            ),
            (
                "!has(self.model.cache) || !has(self.runtime.volumes) || !self.runtime.volumes.exists(v, "
                "has(v.persistentVolumeClaim) && "
                "v.persistentVolumeClaim.claimName == self.model.cache.claimName)",
                "the model cache claim may only be mounted by the weights fetcher",
            ),
        )
    )

    model: ModelSpec
    runtime: RuntimeSpec = Field(default_factory=RuntimeSpec)
    autoscaling: AutoscalingSpec = Field(default_factory=AutoscalingSpec)
    rollout: RolloutSpec = Field(default_factory=RolloutSpec)
    alerts: AlertsSpec = Field(default_factory=AlertsSpec)
    api: ApiSpec = Field(default_factory=ApiSpec)

    @model_validator(mode="after")
    def _cache_is_the_operators(self) -> Self:
        # A second mount of the cache claim would let the Triton container (the author's image) write
        # files the fetcher trusts as verified; the fetcher alone writes the cache.
        cache = self.model.cache
        if cache is None:
            return self
        for index, volume in enumerate(self.runtime.volumes):
            claim = volume.persistent_volume_claim
            if claim is not None and claim.claim_name == cache.claim_name:
                raise ValueError(
                    f"runtime.volumes[{index}].persistentVolumeClaim.claimName: {cache.claim_name} is the "
                    "model cache (model.cache.claimName), which only the weights fetcher may mount"
                )
        return self

    @model_validator(mode="after")
    def _trtllm_needs_gpu(self) -> Self:
        if self.model.backend is Backend.TENSORRTLLM and self.runtime.gpus < 1:
            raise ValueError("the tensorrtllm backend needs runtime.gpus >= 1")
        return self

    @model_validator(mode="after")
    def _trtllm_needs_batching(self) -> Self:
        # inflight batching and the ensemble's text steps take [batch, ...] tensors
        if self.model.backend is Backend.TENSORRTLLM and self.runtime.max_batch_size < 1:
            raise ValueError(
                "the tensorrtllm backend needs runtime.maxBatchSize >= 1 (inflight batching, and the "
                "ensemble's tensors have a batch dimension)"
            )
        return self

    @model_validator(mode="after")
    def _surge_zero_needs_two_replicas(self) -> Self:
        if self.rollout.traffic.max_surge == 0 and self.autoscaling.min_replicas < 2:
            raise ValueError(
                "rollout.traffic.maxSurge 0 needs autoscaling.minReplicas >= 2: with one replica, the only "
                "one would stop before its replacement is Ready"
            )
        return self

    @model_validator(mode="after")
    def _api_needs_text(self) -> Self:
        if self.api.enabled and self.model.backend is Backend.ONNXRUNTIME:
            raise ValueError(
                "api needs a text model: backend python or tensorrtllm (onnxruntime has no text contract)"
            )
        return self

    @model_validator(mode="after")
    def _api_name_is_free(self) -> Self:
        # Per-version children are named <name>-<version>, the gateway's <name>-api: they would collide.
        if self.api.enabled and self.model.version == "api":
            raise ValueError(
                "model.version 'api' would name its Deployment and Service like the API gateway's"
            )
        return self

    @model_validator(mode="after")
    def _api_through_the_route(self) -> Self:
        if self.api.enabled and self.rollout.traffic.gateway is not None and self.api.gateway_url is None:
            raise ValueError(
                "api.gatewayURL is required with rollout.traffic.gateway: the endpoint must send requests "
                "through the HTTPRoute, or canary weights would not apply to them"
            )
        return self


__all__ = [
    "DNS1123_SUBDOMAIN_PATTERN",
    "ABTestSpec",
    "AlertsSpec",
    "AnalysisSpec",
    "ApiSpec",
    "AutoscalingSpec",
    "Backend",
    "CodePilotSpec",
    "ModelCache",
    "ModelSource",
    "ModelSpec",
    "RolloutSpec",
    "RolloutStep",
    "RolloutStrategy",
    "RuntimeSpec",
    "ScalingProvider",
    "ScalingSignal",
    "SnapshotRetention",
    "StallAction",
    "TrafficSpec",
]
