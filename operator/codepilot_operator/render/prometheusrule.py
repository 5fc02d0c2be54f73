"""PrometheusRule of a CodePilot: recording rules, serving and SLO alerts, operational alerts.

Rules are split into groups by purpose (recording, slo, alerts, operational) so each can be checked and
unit-tested with promtool on its own. Within a group Prometheus evaluates rules in order, so the SLO
group records its error ratios before the burn-rate alerts read them.

With ``spec.alerts.enabled: false`` only the recording group is rendered, and only when the autoscaler
needs it (a Prometheus-backed signal).
"""

from __future__ import annotations

from typing import Any

from codepilot_operator.api import CodePilot
from codepilot_operator.render import rules_alerts, rules_recording
from codepilot_operator.render.names import object_meta
from codepilot_operator.render.rules_operational import operational_group
from codepilot_operator.render.served import ServedVersion
from codepilot_operator.render.servicemonitor import MONITORING_API_VERSION, monitoring_labels


def slo_group(cp: CodePilot) -> dict[str, Any] | None:
    if cp.spec.alerts.slo.objective is None:
        return None
    return {
        "name": f"codepilot.{cp.metadata.name}.slo",
        "rules": [*rules_recording.slo_rules(cp), *rules_alerts.slo_rules(cp)],
    }


def rule_groups(cp: CodePilot, served: list[ServedVersion]) -> list[dict[str, Any]]:
    groups = [rules_recording.recording_group(cp)]
    if not cp.spec.alerts.enabled:
        return groups
    slo = slo_group(cp)
    if slo is not None:
        groups.append(slo)
    groups.append(rules_alerts.alerts_group(cp))
    groups.append(operational_group(cp, served))
    return groups


def prometheus_rule(cp: CodePilot, served: list[ServedVersion]) -> dict[str, Any]:
    return {
        "apiVersion": MONITORING_API_VERSION,
        "kind": "PrometheusRule",
        "metadata": object_meta(cp, cp.metadata.name, monitoring_labels(cp)),
        "spec": {"groups": rule_groups(cp, served)},
    }
