"""A cluster without the add-ons' CRDs (Prometheus Operator, KEDA, Gateway API): CodePilots are served
without monitoring and say so in one condition; a spec that needs a missing kind names the field; CRDs
created while the operator runs are picked up at once (their CRD event), not at the discovery interval.

The module has its own emulator (started without the optional kinds) and its own operator process, whose
discovery interval (1 h) is far longer than the test, so only the CRD event can explain a pickup.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest

from tests.e2e.conftest import DRIFT_INTERVAL, Cluster, Operator, wait_for
from tests.e2e.test_operator import expected_children, live_children, new_codepilot, reconciled
from tests.fixtures.kube import EmulatorThread

MONITORING = {"servicemonitors", "prometheusrules"}
BUILT_IN = ("configmaps", "services", "deployments", "horizontalpodautoscalers", "poddisruptionbudgets")
GATEWAY = {"parentRefs": [{"name": "inference", "namespace": "gateways"}]}
KEDA = {"spec.autoscaling.maxReplicas": 3, "spec.autoscaling.provider": "KEDA"}


@pytest.fixture(scope="module")
def bare(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    emulator = EmulatorThread(optional_apis=False).start()
    tmp = tmp_path_factory.mktemp("bare")
    operator = Operator(
        emulator.kubeconfig(tmp / "kubeconfig"), tmp, extra_args=("--api-discovery-interval", "3600")
    )
    try:
        operator.start()
        yield Cluster(emulator, operator)
    finally:
        operator.stop()
        emulator.stop()


def crd(group: str, version: str, kind: str, plural: str) -> dict[str, Any]:
    """A CustomResourceDefinition as an add-on's chart installs it (the schema does not matter here)."""
    schema = {"openAPIV3Schema": {"type": "object", "x-kubernetes-preserve-unknown-fields": True}}
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": f"{plural}.{group}"},
        "spec": {
            "group": group,
            "scope": "Namespaced",
            "names": {"kind": kind, "plural": plural, "singular": kind.lower(), "listKind": f"{kind}List"},
            "versions": [{"name": version, "served": True, "storage": True, "schema": schema}],
        },
    }


def install(cluster: Cluster, obj: dict[str, Any]) -> None:
    cluster.api.request("POST", "/apis/apiextensions.k8s.io/v1/customresourcedefinitions", obj)


def condition(cluster: Cluster, ns: str, type_: str) -> dict[str, Any]:
    found = cluster.condition(ns, type_)
    assert found is not None, f"no {type_} condition in {ns}"
    return found


def test_without_monitoring_crds_serves_and_says_what_is_lost(bare: Cluster) -> None:
    ns = "bare-monitoring"
    doc = new_codepilot(bare, ns)
    wait_for("Reconciled=True", lambda: reconciled(bare, ns))
    monitoring = condition(bare, ns, "MonitoringReady")
    assert (monitoring["status"], monitoring["reason"]) == ("False", "KindNotServed")
    message = monitoring["message"]
    assert "ServiceMonitor (monitoring.coreos.com/v1)" in message and "PrometheusRule" in message
    assert "no scrape config" in message and "no alerts" in message
    wanted = {c for c in expected_children(doc) if c[0] not in MONITORING}
    assert live_children_without_monitoring(bare, ns) == wanted
    assert condition(bare, ns, "Degraded")["status"] == "False"

    bare.make_ready(ns, "coder-v1")
    wait_for("Ready=True", lambda: condition(bare, ns, "Ready")["status"] == "True")
    events = [e for e in bare.events(ns) if e.get("reason") == "KindNotServed"]
    assert len(events) == 1 and events[0]["type"] == "Warning"
    assert [c for c in bare.calls(ns) if c.resource in MONITORING] == [], "missing kinds are not asked for"
    assert bare.emulator.call(lambda e: list(e.denied)) == []


def live_children_without_monitoring(cluster: Cluster, namespace: str) -> set[tuple[str, str]]:
    """live_children, for a cluster where listing the monitoring kinds is a 404."""
    return {
        (plural, o["metadata"]["name"]) for plural in BUILT_IN for o in cluster.api.list(plural, namespace)
    }


@pytest.mark.parametrize(
    ("ns", "overrides", "field"),
    [
        ("bare-gateway", {"spec.rollout.traffic.gateway": GATEWAY}, "spec.rollout.traffic.gateway"),
        ("bare-keda", KEDA, "spec.autoscaling.provider"),
    ],
)
def test_spec_that_needs_a_missing_kind_names_the_field_and_writes_nothing(
    bare: Cluster, ns: str, overrides: dict[str, Any], field: str
) -> None:
    new_codepilot(bare, ns, **overrides)
    degraded = wait_for(
        "Degraded=KindNotServed",
        lambda: (c := bare.condition(ns, "Degraded")) and c["reason"] == "KindNotServed" and c,
    )
    assert degraded["status"] == "True" and degraded["message"].startswith(f"{field}: needs ")
    assert condition(bare, ns, "Reconciled")["reason"] == "KindNotServed"
    assert live_children_without_monitoring(bare, ns) == set(), "nothing is applied"
    wait_for("a Warning Event naming the field", lambda: events_naming(bare, ns, field))

    mark = bare.mark()
    time.sleep(DRIFT_INTERVAL * 2.5)
    assert bare.writes(ns, since=mark) == [], "no retry loop"
    assert len(events_naming(bare, ns, field)) == 1


def events_naming(cluster: Cluster, ns: str, field: str) -> list[dict[str, Any]]:
    return [e for e in cluster.events(ns) if e.get("reason") == "KindNotServed" and field in e["message"]]


def test_crds_created_while_the_operator_runs_are_picked_up_at_once(bare: Cluster) -> None:
    install(bare, crd("monitoring.coreos.com", "v1", "ServiceMonitor", "servicemonitors"))
    install(bare, crd("monitoring.coreos.com", "v1", "PrometheusRule", "prometheusrules"))
    install(bare, crd("gateway.networking.k8s.io", "v1", "HTTPRoute", "httproutes"))
    install(bare, crd("keda.sh", "v1alpha1", "ScaledObject", "scaledobjects"))

    ns = "bare-monitoring"
    wait_for(
        "MonitoringReady=True",
        lambda: condition(bare, ns, "MonitoringReady")["status"] == "True",
    )
    assert {("servicemonitors", "coder"), ("prometheusrules", "coder")} <= live_children(bare, ns)
    assert condition(bare, ns, "Ready")["status"] == "True"
    assert condition(bare, ns, "MonitoringReady")["reason"] == "MonitoringApplied"

    wait_for("the gateway CodePilot reconciled", lambda: reconciled(bare, "bare-gateway"))
    assert bare.api.get("httproutes", "bare-gateway", "coder") is not None
    wait_for("the KEDA CodePilot reconciled", lambda: reconciled(bare, "bare-keda"))
    assert ("scaledobjects", "coder-v1") in live_children(bare, "bare-keda")
    assert condition(bare, "bare-keda", "Degraded")["status"] == "False"
