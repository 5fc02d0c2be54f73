"""The chart's Grafana dashboard through the real Helm engine: on by default, off on request, where and
how the Grafana sidecar expects it, holding exactly what render/dashboard.py renders."""

from __future__ import annotations

import json
from typing import Any

import helm_python
import pytest

from codepilot_operator.render.dashboard import DASHBOARD_FILE, DASHBOARD_LABEL, dashboard
from tests.fixtures.helm import CHART_DIR, RELEASE, RELEASE_NAMESPACE, RenderChart
from tests.integration.test_chart import validate_object


def _boards(objects: list[dict[str, Any]], label: str = DASHBOARD_LABEL) -> list[dict[str, Any]]:
    return [o for o in objects if o["kind"] == "ConfigMap" and label in o["metadata"].get("labels", {})]


def test_the_dashboard_is_shipped_by_default_for_the_sidecar(render_chart: RenderChart) -> None:
    (board,) = _boards(render_chart().objects)
    validate_object(board)
    meta = board["metadata"]
    assert (meta["name"], meta["namespace"]) == (f"{RELEASE}-dashboard", RELEASE_NAMESPACE)
    assert meta["labels"][DASHBOARD_LABEL] == "1"  # kube-prometheus-stack's sidecar label and value
    assert meta["labels"]["app.kubernetes.io/component"] == "dashboard"
    assert list(board["data"]) == [DASHBOARD_FILE]
    assert json.loads(board["data"][DASHBOARD_FILE]) == dashboard()


def test_notes_say_where_the_dashboard_is_and_what_the_sidecar_needs(render_chart: RenderChart) -> None:
    notes = render_chart().notes
    assert f"ConfigMap {RELEASE_NAMESPACE}/{RELEASE}-dashboard (grafana_dashboard=1)" in notes
    assert "searchNamespace is ALL" in notes
    moved = render_chart({"grafanaDashboard": {"namespace": "monitoring"}}).notes
    assert f"ConfigMap monitoring/{RELEASE}-dashboard" in moved


def test_the_dashboard_can_be_turned_off(render_chart: RenderChart) -> None:
    rendered = render_chart({"grafanaDashboard": {"enabled": False}})
    assert rendered.objects and _boards(rendered.objects) == []
    assert "Grafana dashboard" not in rendered.notes
    assert not [o for o in rendered.of_kind("ConfigMap") if o["metadata"]["name"].endswith("-dashboard")]


def test_namespace_label_and_folder_annotation_follow_the_sidecars_settings(
    render_chart: RenderChart,
) -> None:
    values = {
        "grafanaDashboard": {
            "namespace": "monitoring",
            "label": "example.com/grafana-dashboard",
            "labelValue": "codepilot",
            "annotations": {"grafana_folder": "CodePilot"},
        }
    }
    (board,) = _boards(render_chart(values).objects, "example.com/grafana-dashboard")
    validate_object(board)
    assert board["metadata"]["namespace"] == "monitoring"
    assert board["metadata"]["labels"]["example.com/grafana-dashboard"] == "codepilot"
    assert DASHBOARD_LABEL not in board["metadata"]["labels"]
    assert board["metadata"]["annotations"] == {"grafana_folder": "CodePilot"}
    assert json.loads(board["data"][DASHBOARD_FILE]) == dashboard()


def test_the_chart_lints_clean_with_the_dashboard_off() -> None:
    report = helm_python.lint(
        CHART_DIR,
        {"grafanaDashboard": {"enabled": False}},
        strict=True,
        namespace=RELEASE_NAMESPACE,
    )
    problems = [m for m in report["messages"] if m["severity"] >= 2]
    assert not problems and not report["errors"], problems or report["errors"]


BAD_VALUES = {
    "enabled as a string": {"grafanaDashboard": {"enabled": "yes"}},
    "namespace not a DNS label": {"grafanaDashboard": {"enabled": True, "namespace": "Monitoring_NS"}},
    "label with a space": {"grafanaDashboard": {"enabled": True, "label": "grafana dashboard"}},
    "label value too long": {"grafanaDashboard": {"enabled": True, "labelValue": "x" * 64}},
    "unknown key": {"grafanaDashboard": {"enabled": True, "folder": "CodePilot"}},
}


@pytest.mark.parametrize("values", BAD_VALUES.values(), ids=BAD_VALUES.keys())
def test_schema_rejects_bad_dashboard_values(helm_chart: helm_python.Chart, values: dict[str, Any]) -> None:
    with pytest.raises(helm_python.HelmValuesError):
        helm_chart.render(values, name=RELEASE, namespace=RELEASE_NAMESPACE)
