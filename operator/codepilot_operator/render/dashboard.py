"""Grafana dashboard of a CodePilot, in a ConfigMap the Grafana sidecar picks up (``grafana_dashboard: "1"``).

Panels read the recorded series the alerts and the autoscaler use (rules_recording.py), so what a
dashboard shows is what pages and what scales; one line per served model version, so a canary is seen
next to the stable version. Canary weight comes from the operator's own gauge.
"""

from __future__ import annotations

import json
from typing import Any

from codepilot_operator.api import CodePilot
from codepilot_operator.api.contract import PROMETHEUS_UP, ROLLOUT_CANARY_WEIGHT
from codepilot_operator.render.names import child_name, common_labels, object_meta, short_hash
from codepilot_operator.render.rules_common import VERSION, selector
from codepilot_operator.render.rules_recording import (
    DASHBOARD_WINDOW,
    error_ratio_series,
    latency_series,
    queue_series,
    requests_series,
)
from codepilot_operator.render.signals import SIGNALS, signal_target

DASHBOARD_LABEL = "grafana_dashboard"
DASHBOARD_COMPONENT = "dashboard"
_PANEL_WIDTH = 12
_PANEL_HEIGHT = 8
_DATASOURCE = {"type": "prometheus", "uid": "${datasource}"}


def _panel(index: int, title: str, unit: str, targets: list[tuple[str, str]]) -> dict[str, Any]:
    return {
        "id": index + 1,
        "type": "timeseries",
        "title": title,
        "datasource": _DATASOURCE,
        "gridPos": {
            "x": (index % 2) * _PANEL_WIDTH,
            "y": (index // 2) * _PANEL_HEIGHT,
            "w": _PANEL_WIDTH,
            "h": _PANEL_HEIGHT,
        },
        "fieldConfig": {"defaults": {"unit": unit}, "overrides": []},
        "targets": [
            {"refId": chr(ord("A") + i), "datasource": _DATASOURCE, "expr": expr, "legendFormat": legend}
            for i, (expr, legend) in enumerate(targets)
        ],
    }


def panels(cp: CodePilot) -> list[dict[str, Any]]:
    sel = selector(cp)
    w = DASHBOARD_WINDOW
    signal = SIGNALS[cp.spec.autoscaling.signal]
    specs: list[tuple[str, str, list[tuple[str, str]]]] = [
        ("Requests per second", "reqps", [(f"{requests_series(w)}{sel}", "{{version}}")]),
        (
            "Error ratio (client cancellations excluded)",
            "percentunit",
            [(f"{error_ratio_series(w)}{sel}", "{{version}}")],
        ),
        ("Mean request latency", "s", [(f"{latency_series(w)}{sel}", "{{version}}")]),
        ("Mean queue time", "s", [(f"{queue_series(w)}{sel}", "{{version}}")]),
        (
            "Replicas serving (scraped and up)",
            "short",
            [(f"count by ({VERSION}) ({PROMETHEUS_UP}{sel} == 1)", "{{version}}")],
        ),
        ("Canary weight", "percent", [(f"max({ROLLOUT_CANARY_WEIGHT.name}{sel})", "canary weight")]),
    ]
    if signal.from_prometheus:
        specs.append(
            (
                f"Autoscaling signal: {signal.metric} (target {signal_target(cp):g} {signal.unit})",
                "short",
                [(f"{signal.series}{sel}", "{{version}} {{pod}}")],
            )
        )
    return [_panel(i, title, unit, targets) for i, (title, unit, targets) in enumerate(specs)]


def dashboard(cp: CodePilot) -> dict[str, Any]:
    name, namespace = cp.metadata.name, cp.metadata.namespace
    return {
        "uid": f"codepilot-{short_hash(f'{namespace}/{name}', 16)}",
        "title": f"CodePilot {namespace}/{name}",
        "tags": ["codepilot", "triton"],
        "timezone": "browser",
        "schemaVersion": 39,
        "editable": False,
        "refresh": "30s",
        "time": {"from": "now-6h", "to": "now"},
        "templating": {
            "list": [
                {"name": "datasource", "type": "datasource", "query": "prometheus", "label": "Data source"}
            ]
        },
        "panels": panels(cp),
    }


def dashboard_config_map(cp: CodePilot) -> dict[str, Any]:
    name = child_name(cp, "dashboard")
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": object_meta(cp, name, {**common_labels(cp, DASHBOARD_COMPONENT), DASHBOARD_LABEL: "1"}),
        # Compact JSON: the C encoder is ~10x faster than indent=2 and Grafana does not care.
        "data": {f"{name}.json": json.dumps(dashboard(cp), sort_keys=True, separators=(",", ":"))},
    }
