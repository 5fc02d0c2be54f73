"""KEDA ScaledObject per served version, when ``spec.autoscaling.provider`` is KEDA.

KEDA creates and owns the HPA itself (``keda-hpa-<name>``), so no HPA of ours is rendered then. The
Prometheus trigger asks for the sum of the per-pod signal over the version's pods with
``metricType: AverageValue``: the HPA divides it by the replica count, which is the same per-pod average
the prometheus-adapter path gives. The scaling behaviour is the one hpa.py sets, passed through.
"""

from __future__ import annotations

from typing import Any

from codepilot_operator.api import CodePilot, ScalingSignal
from codepilot_operator.api.spec import DEFAULT_PROMETHEUS_ADDRESS
from codepilot_operator.render.deployment import deployment_name
from codepilot_operator.render.hpa import behavior, max_replicas, min_replicas
from codepilot_operator.render.names import object_meta, version_labels
from codepilot_operator.render.rules_common import VERSION, number, selector
from codepilot_operator.render.served import ServedVersion
from codepilot_operator.render.signals import SIGNALS, signal_target

KEDA_API_VERSION = "keda.sh/v1alpha1"
POLLING_SECONDS = 15


def keda_query(cp: CodePilot, version: str) -> str:
    series = SIGNALS[cp.spec.autoscaling.signal].series
    matchers = selector(cp, **{VERSION: '="' + version + '"'})
    return f"sum({series}{matchers})"


def keda_trigger(cp: CodePilot, version: str) -> dict[str, Any]:
    target = signal_target(cp)
    if cp.spec.autoscaling.signal is ScalingSignal.CPU:
        return {"type": "cpu", "metricType": "Utilization", "metadata": {"value": str(round(target))}}
    return {
        "type": "prometheus",
        "metricType": "AverageValue",
        "metadata": {
            "serverAddress": cp.spec.autoscaling.prometheus_address or DEFAULT_PROMETHEUS_ADDRESS,
            "query": keda_query(cp, version),
            "threshold": number(target),
            # No series yet (a version whose pods are still loading) means "no load", not an error.
            "ignoreNullValues": "true",
        },
    }


def scaled_object(cp: CodePilot, served: ServedVersion) -> dict[str, Any]:
    name = deployment_name(cp, served.version)
    return {
        "apiVersion": KEDA_API_VERSION,
        "kind": "ScaledObject",
        "metadata": object_meta(cp, name, version_labels(cp, served.version)),
        "spec": {
            "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": name},
            "pollingInterval": POLLING_SECONDS,
            "minReplicaCount": min_replicas(cp, served),
            "maxReplicaCount": max_replicas(cp, served),
            "advanced": {"horizontalPodAutoscalerConfig": {"behavior": behavior(cp)}},
            "triggers": [keda_trigger(cp, served.version)],
        },
    }
