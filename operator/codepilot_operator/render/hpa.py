"""autoscaling/v2 HorizontalPodAutoscaler per served version, on a serving signal.

Scale-up is quick (queues grow fast) but bounded to what the cluster can schedule at once; scale-down
waits ``scaleDownStabilization`` and removes one pod at a time: a GPU replica that downloads and loads
tens of GB is expensive to bring back.

Pods that report no value for a Pods metric (still loading, scrape missed) do not block scaling: the HPA
assumes they use nothing when scaling up and exactly the target when scaling down, so they damp
decisions instead of stopping them. The recording rules give idle pods an explicit 0, so only pods that
truly have no metrics fall into that case.
"""

from __future__ import annotations

from typing import Any

from codepilot_operator.api import CodePilot, ScalingProvider, ScalingSignal
from codepilot_operator.api.fields import parse_duration
from codepilot_operator.render.deployment import deployment_name
from codepilot_operator.render.names import object_meta, version_labels
from codepilot_operator.render.served import ServedVersion
from codepilot_operator.render.signals import SIGNALS, signal_target

KEDA_HPA_PREFIX = "keda-hpa-"  # KEDA names the HPA it creates keda-hpa-<ScaledObject name>
SCALE_UP_PODS = 2
SCALE_UP_PERCENT = 50
SCALE_UP_PERIOD = 60
SCALE_DOWN_PERIOD = 300


def quantity(value: float) -> str:
    """An HPA target quantity; fractional targets are written in milli-units (0.5 -> 500m)."""
    if float(value).is_integer():
        return str(int(value))
    return f"{round(value * 1000)}m"


def hpa_name(cp: CodePilot, version: str) -> str:
    """Name of the HPA scaling ``version``'s Deployment, whoever creates it (us or KEDA)."""
    name = deployment_name(cp, version)
    if cp.spec.autoscaling.provider is ScalingProvider.KEDA:
        return KEDA_HPA_PREFIX + name
    return name


def hpa_metric(cp: CodePilot) -> dict[str, Any]:
    signal = cp.spec.autoscaling.signal
    target = signal_target(cp)
    if signal is ScalingSignal.CPU:
        return {
            "type": "Resource",
            "resource": {
                "name": "cpu",
                "target": {"type": "Utilization", "averageUtilization": round(target)},
            },
        }
    return {
        "type": "Pods",
        "pods": {
            "metric": {"name": SIGNALS[signal].metric},
            "target": {"type": "AverageValue", "averageValue": quantity(target)},
        },
    }


def behavior(cp: CodePilot) -> dict[str, Any]:
    """Up: no stabilization, the larger of +2 pods or +50% per minute. Down: one pod per 5 minutes."""
    return {
        "scaleUp": {
            "stabilizationWindowSeconds": 0,
            "selectPolicy": "Max",
            "policies": [
                {"type": "Pods", "value": SCALE_UP_PODS, "periodSeconds": SCALE_UP_PERIOD},
                {"type": "Percent", "value": SCALE_UP_PERCENT, "periodSeconds": SCALE_UP_PERIOD},
            ],
        },
        "scaleDown": {
            "stabilizationWindowSeconds": int(parse_duration(cp.spec.autoscaling.scale_down_stabilization)),
            "selectPolicy": "Min",
            "policies": [{"type": "Pods", "value": 1, "periodSeconds": SCALE_DOWN_PERIOD}],
        },
    }


def min_replicas(cp: CodePilot, served: ServedVersion | None = None) -> int:
    """HPA minReplicas 0 needs the HPAScaleToZero gate, and a pod-level signal cannot wake a version
    that has no pods, so the floor is one replica. During a rollout each version's bounds are its
    share (``served.replicas`` / ``max_replicas``, rollout/capacity.py)."""
    if served is not None and served.replicas is not None:
        return max(1, served.replicas)
    return max(1, cp.spec.autoscaling.min_replicas)


def max_replicas(cp: CodePilot, served: ServedVersion | None = None) -> int:
    if served is not None and served.max_replicas is not None:
        return max(min_replicas(cp, served), served.max_replicas)
    return cp.spec.autoscaling.max_replicas


def horizontal_pod_autoscaler(cp: CodePilot, served: ServedVersion) -> dict[str, Any]:
    name = deployment_name(cp, served.version)
    return {
        "apiVersion": "autoscaling/v2",
        "kind": "HorizontalPodAutoscaler",
        "metadata": object_meta(cp, name, version_labels(cp, served.version)),
        "spec": {
            "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": name},
            "minReplicas": min_replicas(cp, served),
            "maxReplicas": max_replicas(cp, served),
            "metrics": [hpa_metric(cp)],
            "behavior": behavior(cp),
        },
    }
