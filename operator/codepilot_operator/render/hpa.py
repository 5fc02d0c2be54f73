"""autoscaling/v2 HorizontalPodAutoscaler per served version, on a serving signal.

Scale-up is quick (queues grow fast), scale-down waits ``scaleDownStabilization`` and removes one pod at
a time: a GPU replica that downloads and loads tens of GB is expensive to bring back.
"""

from __future__ import annotations

from typing import Any

from codepilot_operator.api import CodePilot, ScalingSignal
from codepilot_operator.api.fields import parse_duration
from codepilot_operator.render.deployment import deployment_name
from codepilot_operator.render.names import version_labels
from codepilot_operator.render.served import ServedVersion
from codepilot_operator.render.signals import SIGNALS, signal_target


def _quantity(value: float) -> str:
    """An HPA target quantity; fractional targets are written in milli-units (0.5 -> 500m)."""
    if float(value).is_integer():
        return str(int(value))
    return f"{round(value * 1000)}m"


def hpa_metric(cp: CodePilot) -> dict[str, Any]:
    signal = cp.spec.autoscaling.signal
    target = signal_target(cp)
    if signal is ScalingSignal.CPU:
        return {
            "type": "Resource",
            "resource": {"name": "cpu", "target": {"type": "Utilization", "averageUtilization": round(target)}},
        }
    return {
        "type": "Pods",
        "pods": {
            "metric": {"name": SIGNALS[signal].metric},
            "target": {"type": "AverageValue", "averageValue": _quantity(target)},
        },
    }


def behavior(cp: CodePilot) -> dict[str, Any]:
    return {
        "scaleUp": {
            "stabilizationWindowSeconds": 0,
            "selectPolicy": "Max",
            "policies": [
                {"type": "Pods", "value": 2, "periodSeconds": 60},
                {"type": "Percent", "value": 50, "periodSeconds": 60},
            ],
        },
        "scaleDown": {
            "stabilizationWindowSeconds": int(parse_duration(cp.spec.autoscaling.scale_down_stabilization)),
            "selectPolicy": "Min",
            "policies": [{"type": "Pods", "value": 1, "periodSeconds": 300}],
        },
    }


def horizontal_pod_autoscaler(cp: CodePilot, served: ServedVersion) -> dict[str, Any]:
    autoscaling = cp.spec.autoscaling
    name = deployment_name(cp, served.version)
    return {
        "apiVersion": "autoscaling/v2",
        "kind": "HorizontalPodAutoscaler",
        "metadata": {"name": name, "namespace": cp.metadata.namespace, "labels": version_labels(cp, served.version)},
        "spec": {
            "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": name},
            # HPA minReplicas 0 needs the HPAScaleToZero feature gate; scale-to-zero is KEDA's job.
            "minReplicas": max(1, autoscaling.min_replicas),
            "maxReplicas": autoscaling.max_replicas,
            "metrics": [hpa_metric(cp)],
            "behavior": behavior(cp),
        },
    }
