"""The monitoring and autoscaling objects a CodePilot renders, and that they agree with each other:
the HPA asks for a metric the adapter serves, from a series the rules record, from labels the
ServiceMonitor puts on Triton's series."""

from __future__ import annotations

import re
from typing import Any

import pytest
import yaml
from cloudcoil.models.keda import v1alpha1 as keda

from codepilot_operator.api import ScalingSignal
from codepilot_operator.render import render
from codepilot_operator.render.names import LABEL_CODEPILOT, LABEL_VERSION
from codepilot_operator.render.rules_alerts import BURN_TIERS, burn_factor
from codepilot_operator.render.rules_common import prom_duration
from codepilot_operator.render.servicemonitor import meta_pod_label
from codepilot_operator.render.signals import SIGNALS
from tests.helpers import codepilot, validate_builtin

PROMETHEUS_SIGNALS = [s for s in ScalingSignal if SIGNALS[s].from_prometheus]


def by_kind(objects: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [o for o in objects if o["kind"] == kind]


def only(objects: list[dict[str, Any]], kind: str) -> dict[str, Any]:
    (obj,) = by_kind(objects, kind)
    return obj


def recorded(objects: list[dict[str, Any]]) -> set[str]:
    rule = only(objects, "PrometheusRule")
    return {r["record"] for g in rule["spec"]["groups"] for r in g["rules"] if "record" in r}


def scaled(signal: ScalingSignal, **overrides: Any) -> list[dict[str, Any]]:
    autoscaling = {"minReplicas": 1, "maxReplicas": 5, "signal": signal.value, **overrides}
    return render(codepilot(**{"spec.autoscaling": autoscaling}))


@pytest.mark.parametrize("signal", list(ScalingSignal), ids=str)
def test_builtin_objects_validate_strictly_for_every_signal(signal: ScalingSignal) -> None:
    for obj in scaled(signal):
        if obj["apiVersion"] in ("v1", "apps/v1", "autoscaling/v2", "policy/v1"):
            validate_builtin(obj)


@pytest.mark.parametrize("signal", PROMETHEUS_SIGNALS, ids=str)
def test_the_hpa_metric_is_served_by_the_adapter_from_a_recorded_series(signal: ScalingSignal) -> None:
    objects = scaled(signal)
    hpa = only(objects, "HorizontalPodAutoscaler")
    (metric,) = hpa["spec"]["metrics"]
    assert metric["type"] == "Pods" and metric["pods"]["target"]["type"] == "AverageValue"
    wanted = metric["pods"]["metric"]["name"]
    adapter = next(
        o for o in by_kind(objects, "ConfigMap") if o["metadata"]["name"].endswith("adapter-rules")
    )
    (config,) = adapter["data"].values()
    rules = yaml.safe_load(config)["rules"]
    (serving,) = [r for r in rules if r["name"]["as"] == wanted]
    series = re.match(r"^([a-z_:0-9]+)\{", serving["seriesQuery"]).group(1)  # type: ignore[union-attr]
    assert series in recorded(objects)
    assert serving["resources"]["overrides"]["pod"] == {"resource": "pod"}


def test_cpu_scaling_needs_no_prometheus() -> None:
    objects = render(
        codepilot(**{"spec.alerts.enabled": False, "spec.autoscaling": {"maxReplicas": 3, "signal": "cpu"}})
    )
    hpa = only(objects, "HorizontalPodAutoscaler")
    assert hpa["spec"]["metrics"][0]["resource"]["name"] == "cpu"
    assert not [o for o in objects if o["apiVersion"].startswith("monitoring.coreos.com")]
    assert len(by_kind(objects, "ConfigMap")) == 1  # the model config only


def test_alerts_off_keeps_what_the_autoscaler_needs_and_nothing_else() -> None:
    objects = render(codepilot(**{"spec.alerts.enabled": False, "spec.autoscaling": {"maxReplicas": 3}}))
    rule = only(objects, "PrometheusRule")
    assert [g["name"] for g in rule["spec"]["groups"]] == ["codepilot.coder.recording"]
    assert not [r for g in rule["spec"]["groups"] for r in g["rules"] if "alert" in r]
    only(objects, "ServiceMonitor")
    assert not [o for o in by_kind(objects, "ConfigMap") if "grafana_dashboard" in o["metadata"]["labels"]]


def test_keda_replaces_our_hpa_with_a_scaled_object_with_the_same_behaviour() -> None:
    hpa_objects = scaled(ScalingSignal.QUEUE_TIME)
    objects = scaled(ScalingSignal.QUEUE_TIME, provider="KEDA")
    assert by_kind(objects, "HorizontalPodAutoscaler") == []
    assert not [o for o in by_kind(objects, "ConfigMap") if "adapter" in o["metadata"]["name"]]
    obj = only(objects, "ScaledObject")
    keda.ScaledObject.model_validate(obj)
    spec = obj["spec"]
    assert spec["scaleTargetRef"]["name"] == only(objects, "Deployment")["metadata"]["name"]
    assert (spec["minReplicaCount"], spec["maxReplicaCount"]) == (1, 5)
    hpa_behavior = only(hpa_objects, "HorizontalPodAutoscaler")["spec"]["behavior"]
    assert spec["advanced"]["horizontalPodAutoscalerConfig"]["behavior"] == hpa_behavior
    (trigger,) = spec["triggers"]
    assert trigger["type"] == "prometheus" and trigger["metricType"] == "AverageValue"
    assert trigger["metadata"]["threshold"] == "100"
    assert trigger["metadata"]["serverAddress"] == "http://prometheus-operated.monitoring.svc:9090"
    query = trigger["metadata"]["query"]
    assert query.startswith(f"sum({SIGNALS[ScalingSignal.QUEUE_TIME].series}{{")
    assert 'version="v1"' in query and SIGNALS[ScalingSignal.QUEUE_TIME].series in recorded(objects)


def test_keda_cpu_trigger() -> None:
    obj = only(scaled(ScalingSignal.CPU, provider="KEDA", target=60), "ScaledObject")
    keda.ScaledObject.model_validate(obj)
    assert obj["spec"]["triggers"] == [
        {"type": "cpu", "metricType": "Utilization", "metadata": {"value": "60"}}
    ]


def test_autoscaler_at_max_alert_names_kedas_hpa() -> None:
    objects = scaled(ScalingSignal.QUEUE_TIME, provider="KEDA")
    rule = only(objects, "PrometheusRule")
    (alert,) = [
        r
        for g in rule["spec"]["groups"]
        for r in g["rules"]
        if r.get("alert") == "CodePilotAutoscalerAtMaxReplicas"
    ]
    assert 'horizontalpodautoscaler=~"keda-hpa-coder-v1"' in alert["expr"]


def test_scale_down_is_slow_and_scale_up_is_bounded_for_gpu_pods() -> None:
    hpa = only(scaled(ScalingSignal.QUEUE_TIME, scaleDownStabilization="15m"), "HorizontalPodAutoscaler")
    behavior = hpa["spec"]["behavior"]
    assert behavior["scaleDown"]["stabilizationWindowSeconds"] == 900
    assert behavior["scaleDown"]["policies"] == [{"type": "Pods", "value": 1, "periodSeconds": 300}]
    assert behavior["scaleUp"]["stabilizationWindowSeconds"] == 0


def test_service_monitor_selects_the_per_version_services_and_relabels_from_pod_labels() -> None:
    objects = render(codepilot(**{"spec.alerts.labels": {"release": "kube-prometheus-stack"}}))
    monitor = only(objects, "ServiceMonitor")
    assert monitor["metadata"]["labels"]["release"] == "kube-prometheus-stack"
    selector = monitor["spec"]["selector"]
    (endpoint,) = monitor["spec"]["endpoints"]

    def selected(service: dict[str, Any]) -> bool:
        labels = service["metadata"]["labels"]
        return all(labels.get(k) == v for k, v in selector["matchLabels"].items()) and all(
            e["key"] in labels for e in selector["matchExpressions"]
        )

    services = by_kind(objects, "Service")
    chosen = [s for s in services if selected(s)]
    assert [s["metadata"]["name"] for s in chosen] == ["coder-v1"]  # not the entry Service "coder"
    assert endpoint["port"] in {p["name"] for p in chosen[0]["spec"]["ports"]}
    pod_labels = only(objects, "Deployment")["spec"]["template"]["metadata"]["labels"]
    sources = {r["targetLabel"]: r["sourceLabels"][0] for r in endpoint["relabelings"]}
    assert sources == {"codepilot": meta_pod_label(LABEL_CODEPILOT), "version": meta_pod_label(LABEL_VERSION)}
    assert {LABEL_CODEPILOT, LABEL_VERSION} <= set(pod_labels)


def test_burn_factors_follow_the_sre_workbook_for_a_30_day_window() -> None:
    cp = codepilot(**{"spec.alerts.slo": {"objective": 99.9, "window": "30d"}})
    factors = [burn_factor(cp, w) for tier in BURN_TIERS for w in tier.windows]
    assert factors == [14.4, 6, 3, 1]
    four_weeks = codepilot(**{"spec.alerts.slo": {"objective": 99.9, "window": "28d"}})
    assert burn_factor(four_weeks, BURN_TIERS[0].windows[0]) == pytest.approx(13.44)


def test_no_slo_objective_means_no_burn_rate_rules() -> None:
    rule = only(render(codepilot()), "PrometheusRule")
    alerts = {r.get("alert") for g in rule["spec"]["groups"] for r in g["rules"]}
    assert "CodePilotErrorBudgetBurn" not in alerts
    assert {"CodePilotHighLatency", "CodePilotHighErrorRate", "CodePilotNoReadyReplica"} <= alerts


def test_runbook_urls_and_latency_threshold_come_from_the_spec() -> None:
    cp = codepilot(
        **{
            "spec.alerts.runbookBaseUrl": "https://runbooks.example.com/codepilot/",
            "spec.alerts.latency": {"threshold": "1500ms", "for": "10m", "severity": "warning"},
        }
    )
    rule = only(render(cp), "PrometheusRule")
    (latency,) = [
        r for g in rule["spec"]["groups"] for r in g["rules"] if r.get("alert") == "CodePilotHighLatency"
    ]
    assert latency["expr"].endswith("> 1.5")
    assert latency["for"] == "10m" and latency["labels"]["severity"] == "warning"
    assert (
        latency["annotations"]["runbook_url"] == "https://runbooks.example.com/codepilot/codepilothighlatency"
    )


@pytest.mark.parametrize(
    ("seconds", "text"),
    [(300, "5m"), (5400, "1h30m"), (0.5, "500ms"), (86400 * 3, "3d"), (90.25, "1m30s250ms")],
)
def test_prometheus_durations(seconds: float, text: str) -> None:
    assert prom_duration(seconds) == text
