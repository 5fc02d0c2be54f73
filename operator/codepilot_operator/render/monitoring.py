"""Which monitoring and autoscaling objects a CodePilot gets.

- ``spec.alerts.enabled``: ServiceMonitor, PrometheusRule (recording + alert groups). The Grafana
  dashboard is not per CodePilot: the chart ships one for all of them (dashboard.py).
- A Prometheus-backed autoscaling signal needs the ServiceMonitor and the recording rules even with
  alerts off, plus the prometheus-adapter rules snippet (provider PrometheusAdapter) or a KEDA
  ScaledObject in place of our HPA (provider KEDA).
"""

from __future__ import annotations

from typing import Any

from codepilot_operator.api import CodePilot, ScalingProvider
from codepilot_operator.render.adapter import adapter_config_map
from codepilot_operator.render.hpa import horizontal_pod_autoscaler
from codepilot_operator.render.keda import scaled_object
from codepilot_operator.render.prometheusrule import prometheus_rule
from codepilot_operator.render.served import ServedVersion
from codepilot_operator.render.servicemonitor import service_monitor
from codepilot_operator.render.signals import needs_prometheus


def autoscaler(cp: CodePilot, served: ServedVersion) -> dict[str, Any]:
    """Our HPA, or a KEDA ScaledObject (KEDA then creates the HPA itself; two HPAs would fight)."""
    if cp.spec.autoscaling.provider is ScalingProvider.KEDA:
        return scaled_object(cp, served)
    return horizontal_pod_autoscaler(cp, served)


def monitoring_objects(cp: CodePilot, served: list[ServedVersion]) -> list[dict[str, Any]]:
    alerts = cp.spec.alerts.enabled
    scaling = needs_prometheus(cp)
    objects: list[dict[str, Any]] = []
    if alerts or scaling:
        objects += [service_monitor(cp), prometheus_rule(cp, served)]
    if scaling and cp.spec.autoscaling.provider is ScalingProvider.PROMETHEUS_ADAPTER:
        objects.append(adapter_config_map(cp))
    return objects
