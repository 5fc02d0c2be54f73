"""Strings two parts of the operator must agree on, each spelled once.

A name written on both sides of a boundary drifts silently: a rule that reads a metric nobody emits never
fires, and an environment variable the fetcher does not read leaves it without credentials. So the
writer and the reader both import the name from here, and tests/ check the external ones against the
real exporters (Triton's /metrics, the operator's own registry).

- the weight fetcher's environment: render/fetcher.py writes it into the init container, clients/s3.py
  reads it in the pod (and the ``snapshot`` commands read it on a workstation);
- the operator's metrics: reconcile/metrics.py registers them, the rules and the dashboard in render/
  read them, docs/monitoring.md lists them;
- the Triton, kube-state-metrics, DCGM exporter and Prometheus series the rules and the dashboard read;
- the fetcher's report (its container's termination message): ``codepilot fetch --report`` writes it,
  reconcile reads it from the pods' status.

Kept free of imports from the rest of the package: this is the bottom layer everything may import.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass

# The fetcher's environment (the names the AWS CLI and most S3 tools use, so a pod spec reads familiar).
ENDPOINT_ENV = "S3_ENDPOINT"
REGION_ENV = "S3_REGION"
ACCESS_KEY_ENV = "AWS_ACCESS_KEY_ID"
SECRET_KEY_ENV = "AWS_SECRET_ACCESS_KEY"
SESSION_TOKEN_ENV = "AWS_SESSION_TOKEN"
CONNECT_TIMEOUT_ENV = "S3_CONNECT_TIMEOUT"
READ_TIMEOUT_ENV = "S3_READ_TIMEOUT"
CA_BUNDLE_ENV = "AWS_CA_BUNDLE"
# Set by the cluster's identity webhook (EKS IRSA), read by the fetcher and the operator alike.
WEB_IDENTITY_TOKEN_ENV = "AWS_WEB_IDENTITY_TOKEN_FILE"
WEB_IDENTITY_ROLE_ENV = "AWS_ROLE_ARN"
STS_ENDPOINT_ENV = "AWS_ENDPOINT_URL_STS"


@dataclass(frozen=True)
class FetchReport:
    """What one fetch did: the bytes it downloaded, and those it found verified already (a warm cache).

    Written as one line of JSON, far below the kubelet's 4 KiB termination message limit.
    """

    identity: str  # the snapshot ID (or "source:<fingerprint>")
    total_bytes: int
    downloaded_bytes: int
    reused_bytes: int
    seconds: float

    def to_json(self) -> str:
        return json.dumps(asdict(self), separators=(",", ":"))

    @classmethod
    def from_json(cls, text: str | None) -> FetchReport | None:
        """None for anything that is not a report (an empty message, an error line, another version's)."""
        try:
            doc = json.loads(text or "")
            return cls(
                str(doc["identity"]),
                int(doc["total_bytes"]),
                int(doc["downloaded_bytes"]),
                int(doc["reused_bytes"]),
                float(doc["seconds"]),
            )
        except (ValueError, TypeError, KeyError):
            return None


# Labels the rules select and group on. Triton's series get them from the ServiceMonitor's relabelings
# (and the Prometheus Operator, for namespace and pod); the operator's own series carry them itself.
NAMESPACE_LABEL = "namespace"
CODEPILOT_LABEL = "codepilot"
VERSION_LABEL = "version"
POD_LABEL = "pod"


@dataclass(frozen=True)
class OperatorMetric:
    """A metric the operator exposes: its name as scraped (counters end in ``_total``) and its labels."""

    name: str
    labels: tuple[str, ...]


_PER_CODEPILOT = (NAMESPACE_LABEL, CODEPILOT_LABEL)
_PER_VERSION = (NAMESPACE_LABEL, CODEPILOT_LABEL, VERSION_LABEL)

RECONCILE_DURATION = OperatorMetric("codepilot_reconcile_duration_seconds", ("trigger",))
RECONCILE_ERRORS = OperatorMetric("codepilot_reconcile_errors_total", ("reason",))
OBJECTS_APPLIED = OperatorMetric("codepilot_objects_applied_total", ("kind",))
OBJECTS_PRUNED = OperatorMetric("codepilot_objects_pruned_total", ("kind",))
SNAPSHOT_FAILURES = OperatorMetric("codepilot_snapshot_failures_total", _PER_CODEPILOT)
ROLLOUT_CANARY_WEIGHT = OperatorMetric("codepilot_rollout_canary_weight", _PER_CODEPILOT)
ROLLOUT_ROLLBACKS = OperatorMetric("codepilot_rollout_rollbacks_total", _PER_VERSION)
ROLLOUT_PROMOTIONS = OperatorMetric("codepilot_rollout_promotions_total", _PER_VERSION)
ROLLOUT_ANALYSES = OperatorMetric("codepilot_rollout_analysis_total", (*_PER_VERSION, "verdict"))

# Triton's per-model counters, exported on every server, with or without a GPU. Reference:
# https://docs.nvidia.com/deeplearning/triton-inference-server/user-guide/docs/user_guide/metrics.html
TRITON_REQUEST_SUCCESS = "nv_inference_request_success"
TRITON_REQUEST_FAILURE = "nv_inference_request_failure"
TRITON_REQUEST_DURATION_US = "nv_inference_request_duration_us"
TRITON_QUEUE_DURATION_US = "nv_inference_queue_duration_us"
# Why a request failed, a label of TRITON_REQUEST_FAILURE; a client's cancellation is not the server's
# failure, so the rules and the rollout analysis leave it out.
TRITON_REASON_LABEL = "reason"
TRITON_CANCELED_REASON = "CANCELED"
# Latency quantiles per model (a summary: ``quantile`` label, computed inside each server, so they cannot be
# merged across pods); exported only with ``--metrics-config=summary_latencies=true``, which the rendered
# Triton arguments set.
TRITON_REQUEST_SUMMARY_US = "nv_inference_request_summary_us"
TRITON_QUEUE_SUMMARY_US = "nv_inference_queue_summary_us"
TRITON_QUANTILE_LABEL = "quantile"
TRITON_SERIES = (
    TRITON_REQUEST_SUCCESS,
    TRITON_REQUEST_FAILURE,
    TRITON_REQUEST_DURATION_US,
    TRITON_QUEUE_DURATION_US,
    TRITON_REQUEST_SUMMARY_US,
    TRITON_QUEUE_SUMMARY_US,
)
# Time to first response, a histogram Triton added in 2.52 (container 24.11) for decoupled models, behind
# ``--metrics-config=histogram_latencies=true`` (set by the rendered arguments). The rollout analysis and
# the dashboard read it where it exists; the Triton 2.51 the tests run has no such family at all (its
# library does not contain the name), so it is listed apart and checked to be absent there.
TRITON_FIRST_RESPONSE_HISTOGRAM_MS = "nv_inference_first_response_histogram_ms"
TRITON_NEWER_SERIES = (f"{TRITON_FIRST_RESPONSE_HISTOGRAM_MS}_bucket",)
# GPU families appear only when Triton finds a GPU (through DCGM), so a CPU server cannot show them;
# same reference, section "GPU Metrics".
TRITON_GPU_UTILIZATION = "nv_gpu_utilization"
TRITON_GPU_SERIES = (TRITON_GPU_UTILIZATION,)

# kube-state-metrics (v2), names and labels as documented in
# https://github.com/kubernetes/kube-state-metrics/tree/main/docs/metrics/workload
KSM_DEPLOYMENT_AVAILABLE = "kube_deployment_status_replicas_available"
KSM_DEPLOYMENT_REPLICAS = "kube_deployment_spec_replicas"
KSM_DEPLOYMENT_CREATED = "kube_deployment_created"
KSM_HPA_CURRENT_REPLICAS = "kube_horizontalpodautoscaler_status_current_replicas"
KSM_HPA_MAX_REPLICAS = "kube_horizontalpodautoscaler_spec_max_replicas"
KSM_HPA_MIN_REPLICAS = "kube_horizontalpodautoscaler_spec_min_replicas"
# Labels scaletargetref_kind / scaletargetref_name: which workload an HPA scales, whatever its name.
KSM_HPA_INFO = "kube_horizontalpodautoscaler_info"
KSM_INIT_CONTAINER_RESTARTS = "kube_pod_init_container_status_restarts_total"
KSM_INIT_CONTAINER_WAITING = "kube_pod_init_container_status_waiting_reason"
KSM_POD_OWNER = "kube_pod_owner"
KSM_SERIES = (
    KSM_DEPLOYMENT_AVAILABLE,
    KSM_DEPLOYMENT_REPLICAS,
    KSM_DEPLOYMENT_CREATED,
    KSM_HPA_CURRENT_REPLICAS,
    KSM_HPA_MAX_REPLICAS,
    KSM_HPA_MIN_REPLICAS,
    KSM_HPA_INFO,
    KSM_INIT_CONTAINER_RESTARTS,
    KSM_INIT_CONTAINER_WAITING,
    KSM_POD_OWNER,
)

# NVIDIA's DCGM exporter (the GPU Operator installs it), a default counter, in percent (0-100); with its
# Kubernetes mapping on it labels each GPU's series with the ``namespace`` and ``pod`` using that GPU.
# https://github.com/NVIDIA/dcgm-exporter/blob/main/etc/default-counters.csv
DCGM_GPU_UTILIZATION = "DCGM_FI_DEV_GPU_UTIL"
DCGM_SERIES = (DCGM_GPU_UTILIZATION,)

# Written by Prometheus itself for every scrape target: 1 when the last scrape succeeded.
PROMETHEUS_UP = "up"
PROMETHEUS_SERIES = (PROMETHEUS_UP,)
