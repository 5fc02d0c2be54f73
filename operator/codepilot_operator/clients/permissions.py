"""Every Kubernetes API permission the operator uses, in one table.

The Helm chart's ClusterRole is checked against this table by a test (exactly these verbs, nothing
broader), and the operator's Kubernetes client refuses calls that are not listed here, so the table cannot
silently fall behind the code. Rows marked "kopf" are calls kopf itself makes on the operator's behalf.
"""

from __future__ import annotations

from dataclasses import dataclass

CHILD_VERBS = frozenset({"get", "list", "watch", "create", "patch", "delete"})


@dataclass(frozen=True)
class Permission:
    api_group: str  # "" is the core group
    resource: str  # plural, with "/subresource" where one is used
    verbs: frozenset[str]
    why: str


PERMISSIONS: tuple[Permission, ...] = (
    Permission(
        "serving.codepilot.dev",
        "codepilots",
        frozenset({"get", "list", "watch", "patch"}),
        "kopf watches CodePilots and patches finalizers and progress annotations",
    ),
    Permission(
        "serving.codepilot.dev",
        "codepilots/status",
        frozenset({"get", "patch"}),
        "status: conditions, observedGeneration, versions",
    ),
    Permission("", "configmaps", CHILD_VERBS, "Triton model configuration"),
    Permission("", "services", CHILD_VERBS, "entry point and per-version Services"),
    Permission("apps", "deployments", CHILD_VERBS, "Triton Deployments; status read for Ready"),
    Permission("autoscaling", "horizontalpodautoscalers", CHILD_VERBS, "autoscaling on serving signals"),
    Permission("policy", "poddisruptionbudgets", CHILD_VERBS, "safe node drains"),
    Permission("monitoring.coreos.com", "servicemonitors", CHILD_VERBS, "Triton metrics scraping"),
    Permission("monitoring.coreos.com", "prometheusrules", CHILD_VERBS, "latency, error-rate and SLO alerts"),
    Permission(
        "",
        "pods",
        frozenset({"list", "watch"}),
        "why a Deployment is not Ready: a crash-looping weight-fetch init container (watched, by label)",
    ),
    Permission("keda.sh", "scaledobjects", CHILD_VERBS, "autoscaling.provider KEDA"),
    Permission(
        "gateway.networking.k8s.io",
        "httproutes",
        CHILD_VERBS,
        "rollout traffic split by weight when spec.rollout.traffic.gateway is set",
    ),
    Permission(
        "",
        "secrets",
        frozenset({"get"}),
        "the Secrets a CodePilot names: their allow label (reconcile/admission.py), then the S3 credentials "
        "for weight snapshots; never list/watch (the chart may narrow it with resourceNames)",
    ),
    Permission(
        "",
        "persistentvolumeclaims",
        frozenset({"get"}),
        "the claims a CodePilot mounts (the model cache, claim volumes): their allow label only "
        "(reconcile/admission.py); never list/watch",
    ),
    Permission("", "events", frozenset({"create", "patch"}), "kopf posts Events on transitions"),
    Permission(
        "apiextensions.k8s.io",
        "customresourcedefinitions",
        frozenset({"get", "list", "watch"}),
        "kopf discovers the CodePilot resource; the optional kinds' CRDs appearing (reconcile/apis.py)",
    ),
    Permission("", "namespaces", frozenset({"get", "list", "watch"}), "kopf serves all namespaces"),
    Permission(
        "authentication.k8s.io",
        "tokenreviews",
        frozenset({"create"}),
        "/metrics: who presents this bearer token (--metrics-auth kubernetes)",
    ),
    Permission(
        "authorization.k8s.io",
        "subjectaccessreviews",
        frozenset({"create"}),
        "/metrics: may that user get the non-resource URL /metrics (--metrics-auth kubernetes)",
    ),
    Permission(
        "kopf.dev",
        "clusterkopfpeerings",
        frozenset({"get", "list", "watch", "patch"}),
        "kopf peering: only one operator replica is active",
    ),
)
