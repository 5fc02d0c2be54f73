"""The one Grafana dashboard for every CodePilot, as data; the chart ships it (``make dashboard`` writes
it into charts/codepilot-operator/dashboards/, a test checks the file is what this module renders).

One dashboard with template variables (data source, namespace, CodePilot, version) instead of one per
CodePilot: a platform team installs it once, a new CodePilot appears in the variables as soon as
Prometheus scrapes it, and nothing per CodePilot has to be applied or cleaned up.

Panels read what the exporters write, not our recording rules: a Prometheus that does not load a
CodePilot's PrometheusRule (another rule selector) still fills the dashboard, and Grafana's
``$__rate_interval`` follows the zoom. The error ratio leaves client cancellations out, as the rules do.
kube-state-metrics and DCGM series carry no ``codepilot`` or ``version`` label: they are joined to the
Triton targets' ``up`` series, which carry both (ServiceMonitor relabelings) next to ``pod`` and
``service``; a version's Service and Deployment share one name (deployment.py, service.py).
"""

from __future__ import annotations

import json
from typing import Any

from codepilot_operator.api import contract as c
from codepilot_operator.render.rules_common import CODEPILOT, NAMESPACE, POD, VERSION

DASHBOARD_LABEL = "grafana_dashboard"
DASHBOARD_UID = "codepilot-overview"
DASHBOARD_FILE = "codepilot.json"
RATE = "$__rate_interval"
QUANTILE = "0.95"
# Grafana's template variables, in the order they appear above the panels.
VARIABLES = ("datasource", NAMESPACE, CODEPILOT, VERSION)

_LEVEL = f"{NAMESPACE}, {CODEPILOT}, {VERSION}"
_SCOPE = f'{NAMESPACE}=~"${NAMESPACE}", {CODEPILOT}=~"${CODEPILOT}"'
_SEL = f'{_SCOPE}, {VERSION}=~"${VERSION}"'
_NOT_CANCELED = f'{c.TRITON_REASON_LABEL}!="{c.TRITON_CANCELED_REASON}"'
_DATASOURCE = {"type": "prometheus", "uid": "${datasource}"}
_WIDTH, _HEIGHT = 12, 8


def _rate(metric: str, extra: str = "", by: str = _LEVEL) -> str:
    matchers = f"{_SEL}, {extra}" if extra else _SEL
    return f"sum by ({by}) (rate({metric}{{{matchers}}}[{RATE}]))"


def _requests() -> str:
    """Successful plus failed requests, client cancellations excluded (what the error ratio divides by)."""
    names = f'__name__=~"{c.TRITON_REQUEST_SUCCESS}|{c.TRITON_REQUEST_FAILURE}"'
    return _rate("", f"{names}, {_NOT_CANCELED}")


def _mean_per_success(counter_us: str) -> str:
    return f"{_rate(counter_us)} / 1e6 / ({_rate(c.TRITON_REQUEST_SUCCESS)} > 0)"


def _quantile(summary_us: str) -> str:
    """The slowest pod's quantile: a summary's quantiles are computed per server and cannot be merged."""
    return f'max by ({_LEVEL}) ({summary_us}{{{_SEL}, {c.TRITON_QUANTILE_LABEL}="{QUANTILE}"}}) / 1e6'


def _by_deployment() -> str:
    """``deployment`` -> (codepilot, version), from the version Services the Triton targets belong to."""
    grouped = f"group by ({NAMESPACE}, service, {CODEPILOT}, {VERSION}) ({c.PROMETHEUS_UP}{{{_SEL}}})"
    return f'label_replace({grouped}, "deployment", "$1", "service", "(.+)")'


def _deployment_series(metric: str) -> str:
    return (
        f'max by ({_LEVEL}) ({metric}{{{NAMESPACE}=~"${NAMESPACE}"}}'
        f" * on ({NAMESPACE}, deployment) group_left ({CODEPILOT}, {VERSION}) {_by_deployment()})"
    )


def _hpa_series(metric: str) -> str:
    """An HPA's value under the Deployment it scales (our HPA or the one KEDA creates, whatever its name)."""
    target = (
        f'{metric}{{{NAMESPACE}=~"${NAMESPACE}"}} * on ({NAMESPACE}, horizontalpodautoscaler)'
        f' group_left (scaletargetref_name) {c.KSM_HPA_INFO}{{scaletargetref_kind="Deployment"}}'
    )
    per_deployment = f'label_replace({target}, "deployment", "$1", "scaletargetref_name", "(.+)")'
    return (
        f"max by ({_LEVEL}) ({per_deployment}"
        f" * on ({NAMESPACE}, deployment) group_left ({CODEPILOT}, {VERSION}) {_by_deployment()})"
    )


def _gpu_utilization() -> str:
    pods = f"group by ({NAMESPACE}, {POD}, {CODEPILOT}, {VERSION}) ({c.PROMETHEUS_UP}{{{_SEL}}})"
    return (
        f'avg by ({_LEVEL}) ({c.DCGM_GPU_UTILIZATION}{{{NAMESPACE}=~"${NAMESPACE}"}}'
        f" * on ({NAMESPACE}, {POD}) group_left ({CODEPILOT}, {VERSION}) {pods})"
    )


def _time_to_first_response() -> str:
    buckets = _rate(f"{c.TRITON_FIRST_RESPONSE_HISTOGRAM_MS}_bucket", by=f"{_LEVEL}, le")
    return f"histogram_quantile({QUANTILE}, {buckets}) / 1000"


def _rollout_events(metric: c.OperatorMetric, legend: str, by: str = _LEVEL) -> tuple[str, str]:
    return f"sum by ({by}) (increase({metric.name}{{{_SEL}}}[{RATE}]))", legend


# (title, unit, description, [(expr, legend)]): what a user asks for first, in reading order.
Panel = tuple[str, str, str, list[tuple[str, str]]]
_V = "{{codepilot}} {{version}}"


def panel_specs() -> list[Panel]:
    return [
        (
            "Requests per second",
            "reqps",
            "Successful and failed requests, client cancellations excluded (Triton's request counters).",
            [(_requests(), _V)],
        ),
        (
            "Error ratio",
            "percentunit",
            "Failed requests over all requests; a cancellation by the client is neither (editors cancel "
            "stale completions all the time).",
            [(f"{_rate(c.TRITON_REQUEST_FAILURE, _NOT_CANCELED)}\n/\n({_requests()} > 0)", _V)],
        ),
        (
            "Failed requests per second, by reason",
            "reqps",
            "Triton's failure reasons, CANCELED (by the client) included.",
            [
                (
                    _rate(c.TRITON_REQUEST_FAILURE, by=f"{_LEVEL}, {c.TRITON_REASON_LABEL}"),
                    f"{_V} {{{{reason}}}}",
                )
            ],
        ),
        (
            "Request latency: mean and p95",
            "s",
            "Mean from Triton's cumulative duration per successful request; p95 of the slowest pod from "
            "Triton's latency summary (each server computes its own quantiles).",
            [
                (_mean_per_success(c.TRITON_REQUEST_DURATION_US), f"mean {_V}"),
                (_quantile(c.TRITON_REQUEST_SUMMARY_US), f"p95 {_V}"),
            ],
        ),
        (
            "Queue time: mean and p95",
            "s",
            "Time requests wait in Triton's scheduler before a model instance takes them: the autoscaler's "
            "default signal.",
            [
                (_mean_per_success(c.TRITON_QUEUE_DURATION_US), f"mean {_V}"),
                (_quantile(c.TRITON_QUEUE_SUMMARY_US), f"p95 {_V}"),
            ],
        ),
        (
            "Time to first response (p95)",
            "s",
            "Triton's first-response histogram: exported by Triton 2.52 (container 24.11) and later, for "
            "decoupled (streaming) models only; empty on older Triton and for other models.",
            [(_time_to_first_response(), _V)],
        ),
        (
            "GPU utilisation (DCGM exporter)",
            "percent",
            f"{c.DCGM_GPU_UTILIZATION} from NVIDIA's DCGM exporter with its Kubernetes pod mapping, "
            "averaged over each version's GPUs; empty without the exporter (CPU-only models).",
            [(_gpu_utilization(), _V)],
        ),
        (
            "Replicas and autoscaler bounds",
            "short",
            "kube-state-metrics: available and desired replicas of each version's Deployment, and the "
            "minimum and maximum of the HorizontalPodAutoscaler scaling it.",
            [
                (_deployment_series(c.KSM_DEPLOYMENT_AVAILABLE), f"available {_V}"),
                (_deployment_series(c.KSM_DEPLOYMENT_REPLICAS), f"desired {_V}"),
                (_hpa_series(c.KSM_HPA_MIN_REPLICAS), f"HPA min {_V}"),
                (_hpa_series(c.KSM_HPA_MAX_REPLICAS), f"HPA max {_V}"),
            ],
        ),
        (
            "Canary weight",
            "percent",
            "Share of traffic the operator sends to the canary (0 when no rollout runs).",
            [
                (
                    f"max by ({NAMESPACE}, {CODEPILOT}) ({c.ROLLOUT_CANARY_WEIGHT.name}{{{_SCOPE}}})",
                    "{{codepilot}}",
                )
            ],
        ),
        (
            "Rollout analyses, promotions and rollbacks",
            "short",
            "What the operator's canary analysis decided in each interval, per version.",
            [
                _rollout_events(c.ROLLOUT_ANALYSES, f"analysis {{{{verdict}}}} {_V}", f"{_LEVEL}, verdict"),
                _rollout_events(c.ROLLOUT_PROMOTIONS, f"promoted {_V}"),
                _rollout_events(c.ROLLOUT_ROLLBACKS, f"rolled back {_V}"),
            ],
        ),
    ]


def _panel(index: int, spec: Panel) -> dict[str, Any]:
    title, unit, description, targets = spec
    return {
        "id": index + 1,
        "type": "timeseries",
        "title": title,
        "description": description,
        "datasource": _DATASOURCE,
        "gridPos": {"x": (index % 2) * _WIDTH, "y": (index // 2) * _HEIGHT, "w": _WIDTH, "h": _HEIGHT},
        "fieldConfig": {"defaults": {"unit": unit}, "overrides": []},
        "options": {"legend": {"displayMode": "list", "placement": "bottom"}, "tooltip": {"mode": "multi"}},
        "targets": [
            {"refId": chr(ord("A") + i), "datasource": _DATASOURCE, "expr": expr, "legendFormat": legend}
            for i, (expr, legend) in enumerate(targets)
        ],
    }


def _query_variable(name: str, label: str, selector: str) -> dict[str, Any]:
    query = f"label_values({c.PROMETHEUS_UP}{{{selector}}}, {name})"
    return {
        "name": name,
        "label": label,
        "type": "query",
        "datasource": _DATASOURCE,
        "query": {"query": query, "refId": f"{name}-values"},
        "refresh": 2,  # on time range change: a new CodePilot shows up without reloading the dashboard
        "sort": 1,
        "multi": True,
        "includeAll": True,
        "allValue": ".*",
        "current": {"selected": True, "text": ["All"], "value": ["$__all"]},
    }


def variables() -> list[dict[str, Any]]:
    return [
        {
            "name": "datasource",
            "label": "Data source",
            "type": "datasource",
            "query": "prometheus",
            "current": {},
        },
        _query_variable(NAMESPACE, "Namespace", f'{CODEPILOT}!=""'),
        _query_variable(CODEPILOT, "CodePilot", f'{NAMESPACE}=~"${NAMESPACE}", {CODEPILOT}!=""'),
        _query_variable(VERSION, "Version", f'{_SCOPE}, {VERSION}!=""'),
    ]


def dashboard() -> dict[str, Any]:
    return {
        "uid": DASHBOARD_UID,
        "title": "CodePilot",
        "description": "Serving, latency, GPUs, replicas and rollouts of every CodePilot (Triton).",
        "tags": ["codepilot", "triton"],
        "timezone": "browser",
        "schemaVersion": 39,
        "editable": False,
        "graphTooltip": 1,
        "refresh": "30s",
        "time": {"from": "now-6h", "to": "now"},
        "templating": {"list": variables()},
        "panels": [_panel(i, spec) for i, spec in enumerate(panel_specs())],
    }


def dashboard_json() -> str:
    """The chart's file: indented and key-sorted, so a change reads as a small diff in review."""
    return json.dumps(dashboard(), indent=2, sort_keys=True) + "\n"
