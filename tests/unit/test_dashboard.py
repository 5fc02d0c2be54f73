"""The one Grafana dashboard for all CodePilots: the chart ships exactly what render/dashboard.py renders,
no CodePilot renders a dashboard of its own, and the joins that give kube-state-metrics and DCGM series a
CodePilot and a version pick the right series (run by the real rule engine, promtool).

The panels reading Triton's own series are evaluated by a real Prometheus scraping a real Triton in
tests/integration/test_dashboard_queries.py; the series contract covers the chart's file in
tests/integration/test_metrics_contract.py.
"""

from __future__ import annotations

import copy
import json
import re
from pathlib import Path
from typing import Any

import pytest
from grafana_foundation_sdk.cog.encoder import JSONEncoder
from grafana_foundation_sdk.models.dashboard import Dashboard

from codepilot_operator.api.status import CodePilotStatus
from codepilot_operator.render import render
from codepilot_operator.render.dashboard import (
    DASHBOARD_FILE,
    DASHBOARD_LABEL,
    VARIABLES,
    dashboard,
    dashboard_json,
    panel_specs,
)
from tests.dashboard_support import SAMPLE, dashboard_queries, substitute
from tests.helpers import REPO, codepilot
from tests.rules_support import WITH_AUTOSCALERS, run_rule_tests

CHART_FILE = REPO / "charts" / "codepilot-operator" / "dashboards" / DASHBOARD_FILE


def _targets(title: str) -> list[str]:
    (panel,) = [p for p in dashboard()["panels"] if p["title"] == title]
    return [t["expr"] for t in panel["targets"]]


def test_the_charts_dashboard_is_the_generated_one() -> None:
    assert CHART_FILE.read_text() == dashboard_json(), "run `make dashboard` and commit the result"


def _not_kept(ours: Any, theirs: Any, path: str = "") -> list[str]:
    """Paths of what we wrote that Grafana's model drops or changes (it may add its defaults)."""
    if isinstance(ours, dict) and isinstance(theirs, dict):
        return [p for k, v in ours.items() for p in _not_kept(v, theirs.get(k, _MISSING), f"{path}.{k}")]
    if isinstance(ours, list) and isinstance(theirs, list) and len(ours) == len(theirs):
        return [
            p
            for i, (a, b) in enumerate(zip(ours, theirs, strict=True))
            for p in _not_kept(a, b, f"{path}[{i}]")
        ]
    return [] if ours == theirs else [path]


_MISSING = object()


def _through_grafanas_schema(board: dict[str, Any]) -> Any:
    return json.loads(json.dumps(Dashboard.from_json(board), cls=JSONEncoder))


def test_every_field_of_the_dashboard_is_one_grafanas_schema_knows() -> None:
    board = dashboard()
    assert _not_kept(board, _through_grafanas_schema(board)) == []


def test_the_schema_check_reports_a_misspelled_field() -> None:
    board = copy.deepcopy(dashboard())
    board["panels"][0]["gridpos"] = board["panels"][0].pop("gridPos")
    assert _not_kept(board, _through_grafanas_schema(board)) == [".panels[0].gridpos"]


@pytest.mark.parametrize("name", sorted(WITH_AUTOSCALERS))
def test_no_codepilot_renders_a_dashboard_of_its_own(name: str) -> None:
    objects = render(WITH_AUTOSCALERS[name])
    assert [o for o in objects if DASHBOARD_LABEL in o["metadata"].get("labels", {})] == []


def test_every_query_uses_only_the_dashboards_variables_and_every_variable_is_used() -> None:
    board = dashboard()
    defined = [v["name"] for v in board["templating"]["list"]]
    assert tuple(defined) == VARIABLES
    used: set[str] = set()
    for _, expr in dashboard_queries(board):
        substitute(expr)  # raises on a variable the dashboard does not define
        used |= set(re.findall(r"\$\{?([a-z_]+)", expr))
    for panel in board["panels"]:
        assert panel["datasource"]["uid"] == "${datasource}"
    assert set(VARIABLES) - {"datasource"} <= used


def test_panels_cover_what_a_user_asks_for_first_and_do_not_overlap() -> None:
    board = dashboard()
    titles = " ".join(p["title"] for p in board["panels"]).lower()
    for topic in (
        "requests per second",
        "error",
        "mean and p95",
        "queue time",
        "first response",
        "gpu utilisation (dcgm",
        "replicas and autoscaler bounds",
        "canary weight",
        "rollout",
    ):
        assert topic in titles
    cells = [
        (p["gridPos"]["x"] + dx, p["gridPos"]["y"] + dy)
        for p in board["panels"]
        for dx in range(p["gridPos"]["w"])
        for dy in range(p["gridPos"]["h"])
    ]
    assert len(cells) == len(set(cells))
    assert len({p["id"] for p in board["panels"]}) == len(board["panels"]) == len(panel_specs())


@pytest.mark.parametrize("provider", ["PrometheusAdapter", "KEDA"])
def test_a_versions_service_deployment_and_autoscaler_target_share_one_name(provider: str) -> None:
    """The dashboard finds a version's Deployment through the Service its Triton targets are scraped
    from, and an HPA through the Deployment it scales: both hold only while the names agree."""
    cp = codepilot(
        **{
            "spec.model.version": "v2-rc.1",
            "spec.autoscaling": {"minReplicas": 1, "maxReplicas": 4, "provider": provider},
        }
    )
    cp = cp.model_copy(update={"status": CodePilotStatus(stable_version="v1")})  # v2-rc.1 is the canary
    objects = render(cp)
    deployments = {
        o["metadata"]["labels"]["app.kubernetes.io/version"]: o for o in objects if o["kind"] == "Deployment"
    }
    assert len(deployments) == 2
    services = {
        o["metadata"]["labels"]["app.kubernetes.io/version"]: o["metadata"]["name"]
        for o in objects
        if o["kind"] == "Service" and "app.kubernetes.io/version" in o["metadata"]["labels"]
    }
    scalers = [o for o in objects if o["kind"] in ("HorizontalPodAutoscaler", "ScaledObject")]
    assert {o["spec"]["scaleTargetRef"]["name"] for o in scalers} == {
        d["metadata"]["name"] for d in deployments.values()
    }
    assert services == {version: d["metadata"]["name"] for version, d in deployments.items()}


# --- the joins, in the real rule engine -----------------------------------------------------------------

_TRITON_TARGET = {"job": "triton", "endpoint": "metrics", "container": "triton", "instance": "10.0.0.7:8002"}
# kube-state-metrics scraped with honorLabels (as kube-prometheus-stack does): the object's namespace
# stays ``namespace``, and the scrape adds the exporter's own pod and service.
_KSM = {
    "job": "kube-state-metrics",
    "pod": "ksm-0",
    "service": "kube-state-metrics",
    "instance": "10.0.9.1:8080",
}
_DCGM = {
    "job": "dcgm-exporter",
    "instance": "10.0.8.1:9400",
    "container": "triton",
    "modelName": "NVIDIA H100",
}


def _series(name: str, labels: dict[str, str], value: float) -> dict[str, str]:
    text = ",".join(f'{k}="{v}"' for k, v in labels.items())
    return {"series": f"{name}{{{text}}}", "values": " ".join([f"{value:g}"] * 3)}


def _up(namespace: str, codepilot: str, version: str, pod: str) -> dict[str, str]:
    labels = {**_TRITON_TARGET, "namespace": namespace, "pod": pod, "service": f"{codepilot}-{version}"}
    return _series("up", {**labels, "codepilot": codepilot, "version": version}, 1)


def _cluster() -> list[dict[str, str]]:
    """team-a/coder v1 (2 pods) and v2 (1 pod), plus a same-named Deployment in team-b and another
    CodePilot in team-a, which the variables (team-a, coder, v1) must leave out."""
    series = [
        _up("team-a", "coder", "v1", "coder-v1-a"),
        _up("team-a", "coder", "v1", "coder-v1-b"),
        _up("team-a", "coder", "v2", "coder-v2-a"),
        _up("team-a", "other", "v1", "other-v1-a"),
        _up("team-b", "coder", "v1", "coder-v1-z"),
    ]
    for namespace, deployment, available, wanted in (
        ("team-a", "coder-v1", 2, 3),
        ("team-a", "coder-v2", 1, 1),
        ("team-a", "other-v1", 5, 5),
        ("team-b", "coder-v1", 7, 7),
    ):
        labels = {**_KSM, "namespace": namespace, "deployment": deployment}
        series.append(_series("kube_deployment_status_replicas_available", labels, available))
        series.append(_series("kube_deployment_spec_replicas", labels, wanted))
    for namespace, hpa, target, low, high in (
        ("team-a", "keda-hpa-coder-v1", "coder-v1", 1, 4),  # KEDA's name for the HPA it creates
        ("team-a", "other-v1", "other-v1", 2, 9),
        ("team-b", "coder-v1", "coder-v1", 3, 8),
    ):
        labels = {**_KSM, "namespace": namespace, "horizontalpodautoscaler": hpa}
        info = {**labels, "scaletargetref_api_version": "apps/v1", "scaletargetref_kind": "Deployment"}
        series.append(
            _series("kube_horizontalpodautoscaler_info", {**info, "scaletargetref_name": target}, 1)
        )
        series.append(_series("kube_horizontalpodautoscaler_spec_min_replicas", labels, low))
        series.append(_series("kube_horizontalpodautoscaler_spec_max_replicas", labels, high))
    for namespace, pod, gpu, utilization in (
        ("team-a", "coder-v1-a", "0", 80),
        ("team-a", "coder-v1-a", "1", 60),
        ("team-a", "coder-v1-b", "0", 40),
        ("team-a", "coder-v2-a", "0", 10),
        ("team-a", "other-v1-a", "0", 99),
        ("team-b", "coder-v1-z", "0", 99),
    ):
        labels = {**_DCGM, "namespace": namespace, "pod": pod, "gpu": gpu, "UUID": f"GPU-{pod}-{gpu}"}
        series.append(_series("DCGM_FI_DEV_GPU_UTIL", labels, utilization))
    return series


def _expect(expr: str, value: float, labels: dict[str, str] = SAMPLE) -> dict[str, Any]:
    label_text = "{" + ", ".join(f'{k}="{v}"' for k, v in labels.items()) + "}"
    return {
        "expr": substitute(expr),
        "eval_time": "2m",
        "exp_samples": [{"labels": label_text, "value": value}],
    }


def test_replicas_hpa_bounds_and_gpu_utilisation_are_joined_to_the_chosen_version(tmp_path: Path) -> None:
    available, desired, hpa_min, hpa_max = _targets("Replicas and autoscaler bounds")
    (gpu,) = _targets("GPU utilisation (DCGM exporter)")
    run_rule_tests(
        tmp_path,
        [],
        [
            {
                "interval": "1m",
                "input_series": _cluster(),
                "promql_expr_test": [
                    _expect(available, 2),
                    _expect(desired, 3),
                    _expect(hpa_min, 1),
                    _expect(hpa_max, 4),
                    _expect(gpu, 60),  # the mean over coder v1's three GPUs (80, 60, 40)
                ],
            }
        ],
    )


def test_the_join_test_fails_when_a_join_picks_the_wrong_series(tmp_path: Path) -> None:
    """The same check with a wrong expectation must fail, or the test above proves nothing."""
    (gpu,) = _targets("GPU utilisation (DCGM exporter)")
    test = {"interval": "1m", "input_series": _cluster(), "promql_expr_test": [_expect(gpu, 99)]}
    with pytest.raises(AssertionError, match="DCGM_FI_DEV_GPU_UTIL"):
        run_rule_tests(tmp_path, [], [test])
