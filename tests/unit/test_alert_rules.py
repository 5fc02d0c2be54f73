"""The rendered rules, run by the real Prometheus rule engine (``promtool check rules`` / ``test rules``).

Input series are what Triton exports after the ServiceMonitor's relabelings; each scenario states the
traffic a user would see and which pages they would (not) get.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from cloudcoil.models.prometheus_operator import v1 as monitoring

from codepilot_operator.render import render
from codepilot_operator.render.deployment import deployment_name
from codepilot_operator.render.prometheusrule import rule_groups
from codepilot_operator.render.served import ServedVersion, served_versions
from tests.helpers import codepilot
from tests.rules_support import (
    CONFIGURATIONS,
    Phase,
    expected_alert,
    find_rule,
    promtool,
    run_rule_tests,
    slo_codepilot,
    triton_series,
    write_rule_files,
)

POD = {"namespace": "team-a", "codepilot": "coder", "version": "v1", "pod": "coder-v1-6d9f-abcde"}
VERSION_LABELS = {k: POD[k] for k in ("namespace", "codepilot", "version")}
LATENCY, BURN, ERRORS = "CodePilotHighLatency", "CodePilotErrorBudgetBurn", "CodePilotHighErrorRate"


def no_alerts(at: str, *names: str) -> list[dict[str, Any]]:
    return [{"eval_time": at, "alertname": name, "exp_alerts": []} for name in names]


def percent(value: float) -> str:
    """Go's humanizePercentage."""
    return f"{value * 100:.4g}%"


@pytest.mark.parametrize("name", sorted(CONFIGURATIONS))
def test_promtool_accepts_every_rendered_rule_group(name: str, tmp_path: Path) -> None:
    files = write_rule_files(tmp_path, CONFIGURATIONS[name])
    assert files
    for path in files:
        result = promtool("check", "rules", str(path))
        assert result.returncode == 0, f"{path.name}: {result.stdout}{result.stderr}"
        assert "SUCCESS" in result.stdout


@pytest.mark.parametrize("name", sorted(CONFIGURATIONS))
def test_prometheus_operator_objects_validate_against_upstream_types(name: str) -> None:
    objects = render(CONFIGURATIONS[name])
    kinds = {o["kind"]: o for o in objects if o["apiVersion"] == "monitoring.coreos.com/v1"}
    assert {"ServiceMonitor", "PrometheusRule"} <= set(kinds)
    monitoring.ServiceMonitor.model_validate(kinds["ServiceMonitor"])
    rule = monitoring.PrometheusRule.model_validate(kinds["PrometheusRule"])
    assert rule.spec is not None and rule.spec.groups


def test_rules_are_scoped_to_their_own_codepilot() -> None:
    """Two CodePilots' rules must never record the same series (Prometheus would reject duplicates)."""
    cp = slo_codepilot()
    for group in rule_groups(cp, served_versions(cp)):
        for rule in group["rules"]:
            if "record" in rule:
                matchers = re.findall(r"\{[^}]*\}", rule["expr"])
                assert matchers, rule["record"]
                for matcher in matchers:
                    assert matcher.startswith('{namespace="team-a", codepilot="coder"'), rule["record"]


def test_latency_above_threshold_longer_than_for_fires_critical_and_a_shorter_spike_does_not(
    tmp_path: Path,
) -> None:
    cp = codepilot(**{"spec.alerts.latency": {"threshold": "1s", "for": "5m"}})
    files = write_rule_files(tmp_path, cp)
    rule = find_rule(rule_groups(cp, served_versions(cp)), LATENCY)
    firing = expected_alert(rule, VERSION_LABELS, "2s")
    assert firing["exp_labels"]["severity"] == "critical"
    sustained = {
        "interval": "1m",
        "input_series": triton_series(POD, [Phase(30, latency=2.0)]),
        "alert_rule_test": [
            *no_alerts("4m", LATENCY),  # above threshold, but not yet for 5 minutes
            {"eval_time": "10m", "alertname": LATENCY, "exp_alerts": [firing]},
            {"eval_time": "30m", "alertname": LATENCY, "exp_alerts": [firing]},
        ],
    }
    spike = {
        "interval": "1m",
        "input_series": triton_series(POD, [Phase(3, latency=3.0), Phase(40, latency=0.2)]),
        "alert_rule_test": [
            a for t in ("2m", "4m", "5m", "6m", "8m", "10m", "20m") for a in no_alerts(t, LATENCY)
        ],
        # The spike is real (recorded mean latency well above 1s) but shorter than `for`.
        "promql_expr_test": [
            {
                "expr": "round(codepilot_version:request_latency_seconds:mean2m, 0.1)",
                "eval_time": "2m",
                "exp_samples": [{"labels": _record_labels("", VERSION_LABELS), "value": 3}],
            }
        ],
    }
    run_rule_tests(tmp_path, files, [sustained, spike])


def _record_labels(name: str, labels: dict[str, str] = VERSION_LABELS) -> str:
    inner = ", ".join(f'{k}="{v}"' for k, v in labels.items())
    return f"{name}{{{inner}}}"


def test_sustained_burn_pages_on_the_fast_tier(tmp_path: Path) -> None:
    cp = slo_codepilot()
    files = write_rule_files(tmp_path, cp)
    groups = rule_groups(cp, served_versions(cp))
    page = find_rule(groups, BURN, slo_tier="page")
    ticket = find_rule(groups, BURN, slo_tier="ticket")
    assert page["labels"]["severity"] == "critical" and ticket["labels"]["severity"] == "warning"
    # A healthy day (0.01% errors), then 5% of requests fail (50x the budget of a 99.9% objective).
    day, healthy, burning = 24 * 60, 0.0001, 0.05
    test = {
        "interval": "1m",
        "input_series": triton_series(POD, [Phase(day, error_ratio=healthy), Phase(31, error_ratio=burning)]),
        "alert_rule_test": [
            # Two minutes in, the 5m window burns but no long window does yet: no page, no ticket.
            *no_alerts(f"{day + 2}m", BURN),
            {
                "eval_time": f"{day + 30}m",
                "alertname": BURN,
                "exp_alerts": [
                    # Half of the last hour burning: 2.5% errors over 1h, above 14.4 x 0.1%.
                    expected_alert(page, VERSION_LABELS, percent((30 * burning + 30 * healthy) / 60)),
                    # The 3d/6h pair of the slow tier trips too: the series' whole history is above 1x.
                    expected_alert(
                        ticket, VERSION_LABELS, percent((30 * burning + day * healthy) / (day + 30))
                    ),
                ],
            },
        ],
    }
    run_rule_tests(tmp_path, files, [test])


def test_a_five_minute_blip_in_a_healthy_day_does_not_page(tmp_path: Path) -> None:
    cp = slo_codepilot()
    files = write_rule_files(tmp_path, cp)
    day = 24 * 60
    # 10% errors for 5 minutes: far above the page threshold over 5m, not enough budget to page.
    phases = [Phase(day + 30, error_ratio=0.0001), Phase(5, error_ratio=0.10), Phase(60, error_ratio=0.0001)]
    at = [f"{day + 30 + m}m" for m in (2, 5, 10, 20, 45)]
    test = {
        "interval": "1m",
        "input_series": triton_series(POD, phases),
        "alert_rule_test": [alert for t in at for alert in no_alerts(t, BURN, LATENCY)],
        "promql_expr_test": [
            {
                "expr": "codepilot_version:request_errors:ratio_rate5m > 14.4 * 0.001",
                "eval_time": f"{day + 35}m",
                "exp_samples": [
                    {"labels": _record_labels("codepilot_version:request_errors:ratio_rate5m"), "value": 0.1}
                ],
            }
        ],
    }
    run_rule_tests(tmp_path, files, [test])


def test_a_healthy_service_never_pages(tmp_path: Path) -> None:
    """Three days within budget (0.05% errors for a 99.9% objective), fast answers, and many cancelled
    requests, which are not errors: nothing fires, at any tier."""
    cp = slo_codepilot()
    files = write_rule_files(tmp_path, cp)
    test = {
        "interval": "1m",
        "input_series": triton_series(
            POD, [Phase(3 * 24 * 60, error_ratio=0.0005, latency=0.4, cancel_ratio=0.2)]
        ),
        "alert_rule_test": [
            alert
            for t in ("10m", "1h", "6h", "1d", "2d", "3d")
            for alert in no_alerts(t, BURN, LATENCY, ERRORS)
        ],
        # Not even pending, at any evaluation in the three days: the ALERTS series was never written.
        "promql_expr_test": [{"expr": "count_over_time(ALERTS[3d])", "eval_time": "3d", "exp_samples": []}],
    }
    # Rules evaluated every 5 minutes: a steady healthy load looks the same at every step.
    run_rule_tests(tmp_path, files, [test], evaluation_interval="5m")


def test_idle_pods_report_zero_queue_time_so_the_autoscaler_sees_them(tmp_path: Path) -> None:
    """A pod without traffic records 0 ms, not "no value"; only pods without metrics are missing."""
    cp = codepilot(**{"spec.autoscaling": {"minReplicas": 1, "maxReplicas": 4}})
    files = write_rule_files(tmp_path, cp)
    busy = POD
    idle = {**POD, "pod": "coder-v1-6d9f-idle1"}
    series = "pod:codepilot_queue_time_ms_per_request:rate1m"
    test = {
        "interval": "1m",
        "input_series": [
            *triton_series(busy, [Phase(10, queue=0.25)]),
            *triton_series(idle, [Phase(10, rps=0)]),
        ],
        "promql_expr_test": [
            {
                "expr": series,
                "eval_time": "5m",
                "exp_samples": [
                    {"labels": _record_labels(series, busy), "value": 250},
                    {"labels": _record_labels(series, idle), "value": 0},
                ],
            }
        ],
    }
    run_rule_tests(tmp_path, files, [test])


def ksm(name: str, labels: dict[str, str], values: str) -> dict[str, str]:
    inner = ",".join(f'{k}="{v}"' for k, v in labels.items())
    return {"series": f"{name}{{{inner}}}", "values": values}


def test_operational_alerts_read_kube_state_metrics_and_operator_counters(tmp_path: Path) -> None:
    cp = codepilot(
        **{"spec.autoscaling": {"minReplicas": 1, "maxReplicas": 3}, "spec.runtime.startupTimeout": "30m"}
    )
    served = [ServedVersion("v1"), ServedVersion("v2")]
    files = write_rule_files(tmp_path, cp, served)
    groups = rule_groups(cp, served)
    deploy = {"namespace": "team-a", "deployment": "coder-v1"}
    new_deploy = {"namespace": "team-a", "deployment": "coder-v2"}

    hpa = {"namespace": "team-a", "horizontalpodautoscaler": "coder-v1"}
    other = {"namespace": "team-a", "codepilot": "coder", "version": "v2"}
    test = {
        "interval": "1m",
        "input_series": [
            # coder-v1 has served for a while and loses its last replica at minute 5.
            ksm("kube_deployment_status_replicas_available", deploy, "1 1 1 1 1 0x30"),
            ksm("kube_deployment_spec_replicas", deploy, "1x35"),
            ksm("kube_deployment_created", deploy, "-86400x35"),
            # coder-v2 (the canary) was created at minute 0 and is still loading its weights.
            ksm("kube_deployment_status_replicas_available", new_deploy, "0x35"),
            ksm("kube_deployment_spec_replicas", new_deploy, "1x35"),
            ksm("kube_deployment_created", new_deploy, "0x35"),
            ksm("kube_horizontalpodautoscaler_status_current_replicas", hpa, "3x35"),
            ksm("kube_horizontalpodautoscaler_spec_max_replicas", hpa, "3x35"),
            # The operator's rollback counter is born at 1, when it rolls back v2 at minute 10.
            ksm("codepilot_rollout_rollbacks_total", other, "_x10 1x25"),
            # Snapshots have never failed.
            ksm("codepilot_snapshot_failures_total", {"namespace": "team-a", "codepilot": "coder"}, "0x35"),
        ],
        "alert_rule_test": [
            {
                "eval_time": "12m",
                "alertname": "CodePilotNoReadyReplica",
                "exp_alerts": [expected_alert(find_rule(groups, "CodePilotNoReadyReplica"), deploy, "0")],
            },
            {
                "eval_time": "20m",
                "alertname": "CodePilotAutoscalerAtMaxReplicas",
                "exp_alerts": [
                    expected_alert(find_rule(groups, "CodePilotAutoscalerAtMaxReplicas"), hpa, "3")
                ],
            },
            *no_alerts("5m", "CodePilotCanaryRolledBack"),
            *no_alerts("30m", "CodePilotSnapshotFailing"),
            {
                "eval_time": "12m",
                "alertname": "CodePilotCanaryRolledBack",
                "exp_alerts": [expected_alert(find_rule(groups, "CodePilotCanaryRolledBack"), other, "1")],
            },
        ],
    }
    run_rule_tests(tmp_path, files, [test])


# A CodePilot name long enough that Kubernetes cuts its pods' names short (see pod_of).
LONG_NAME = "assistant-for-the-platform-team-with-a-long-name-x"


def pod_of(deployment: str, pod_hash: str, suffix: str) -> tuple[str, str]:
    """(ReplicaSet, pod) names as the Deployment and ReplicaSet controllers make them, which no test
    server here runs: the ReplicaSet is ``<deployment>-<pod-template-hash>``; a pod's name is the
    ReplicaSet's name plus ``-``, cut to 58 characters (Kubernetes' limit for a generated name's
    prefix), plus 5 random characters."""
    replicaset = f"{deployment}-{pod_hash}"
    return replicaset, f"{replicaset}-"[:58] + suffix


@pytest.mark.parametrize("name", ["coder", LONG_NAME])
def test_weight_fetch_alert_fires_per_pod_whose_fetcher_fails_and_only_for_this_codepilot(
    name: str, tmp_path: Path
) -> None:
    """The fetcher exports nothing itself (a short-lived init container), so the alert reads what
    kube-state-metrics reports about it; a pod of another CodePilot or a pod still starting never
    pages, and a long CodePilot name (pod names cut short) pages like a short one."""
    cp = codepilot(**{"metadata.name": name})
    served = [ServedVersion("v1"), ServedVersion("v2")]
    files = write_rule_files(tmp_path, cp, served)
    rule = find_rule(rule_groups(cp, served), "CodePilotWeightFetchFailing")
    v1, v2 = (deployment_name(cp, s.version) for s in served)
    pods = {
        "failing": pod_of(v2, "7c6b9f5d84", "abcde"),  # restarts from minute 3, fixed at minute 10
        "backoff": pod_of(v1, "6d4cf56db6", "fghij"),  # first scraped already in CrashLoopBackOff
        "starting": pod_of(v1, "6d4cf56db6", "klmno"),  # still being created: not a failure
        "look-alike": pod_of(f"{v2}-extra", "7c6b9f5d84", "pqrst"),  # another CodePilot's, failing
    }
    restarts = {
        "failing": "0 0 0 1 2 3 4 5 6 7 8x25",
        "backoff": "_x4 3x31",
        "starting": "0x35",
        "look-alike": "0 0 0 1 2 3 4 5 6 7 8x25",
    }
    waiting = {
        # kube-state-metrics drops a waiting series once the container runs; Prometheus marks it stale.
        "backoff": ("CrashLoopBackOff", "_x4 1x6 stale"),
        "starting": ("ContainerCreating", "1x35"),
        "look-alike": ("CrashLoopBackOff", "1x35"),
    }
    if name == LONG_NAME:
        assert len(pods["failing"][1]) == 63 and not pods["failing"][1].startswith(f"{v2}-7c6b9f5d84-")
    series = []
    for key, (replicaset, pod) in pods.items():
        fetcher = {"namespace": "team-a", "pod": pod, "container": "fetch-weights", "uid": key}
        series.append(ksm("kube_pod_init_container_status_restarts_total", fetcher, restarts[key]))
        if key in waiting:
            reason, values = waiting[key]
            series.append(
                ksm("kube_pod_init_container_status_waiting_reason", {**fetcher, "reason": reason}, values)
            )
        owner = {"namespace": "team-a", "pod": pod, "uid": key, "owner_kind": "ReplicaSet"}
        series.append(
            ksm("kube_pod_owner", {**owner, "owner_name": replicaset, "owner_is_controller": "true"}, "1x35")
        )

    def firing(*keys: str) -> list[dict[str, Any]]:
        return [expected_alert(rule, {"namespace": "team-a", "pod": pods[k][1]}, "") for k in keys]

    test = {
        "interval": "1m",
        "input_series": series,
        "alert_rule_test": [
            {"eval_time": t, "alertname": "CodePilotWeightFetchFailing", "exp_alerts": firing(*keys)}
            for t, keys in [
                ("2m", ()),
                ("5m", ("failing", "backoff")),
                ("8m", ("failing", "backoff")),
                ("12m", ("failing",)),  # the back-off ended at minute 10
                ("30m", ()),  # 20 minutes after the last restart
            ]
        ],
    }
    run_rule_tests(tmp_path, files, [test])
