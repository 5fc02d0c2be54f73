"""Optional APIs: what a CodePilot loses, or cannot have, when the cluster lacks an add-on's kinds."""

from __future__ import annotations

from codepilot_operator.clients.kube import Kind
from codepilot_operator.reconcile.apis import (
    HTTP_ROUTE,
    PROMETHEUS_RULE,
    SCALED_OBJECT,
    SERVICE_MONITOR,
    ApiCatalog,
    monitoring_condition,
)
from codepilot_operator.render import render
from tests.helpers import codepilot

GATEWAY = {"parentRefs": [{"name": "inference"}]}


def test_monitoring_kinds_are_left_out_and_the_condition_says_what_is_lost() -> None:
    catalog = ApiCatalog.known({SERVICE_MONITOR, PROMETHEUS_RULE})
    rendered = render(codepilot())
    kept, left_out = catalog.split(rendered)
    assert left_out == [SERVICE_MONITOR, PROMETHEUS_RULE]
    assert {Kind.of(o) for o in kept} == {Kind.of(o) for o in rendered} - {SERVICE_MONITOR, PROMETHEUS_RULE}
    condition = monitoring_condition([Kind.of(o) for o in rendered], left_out)
    assert (condition.status, condition.reason) == ("False", "KindNotServed")
    assert "no scrape config" in condition.message and "no alerts" in condition.message
    assert catalog.required_missing(codepilot()) == [], "monitoring is never required"


def test_monitoring_condition_when_applied_or_not_requested() -> None:
    rendered = [Kind.of(o) for o in render(codepilot())]
    assert monitoring_condition(rendered, []).reason == "MonitoringApplied"
    quiet = [Kind.of(o) for o in render(codepilot(**{"spec.alerts.enabled": False}))]
    assert monitoring_condition(quiet, [SERVICE_MONITOR]).reason == "NotRequested"


def test_a_spec_that_asks_for_a_missing_kind_names_its_field() -> None:
    catalog = ApiCatalog.known({SCALED_OBJECT, HTTP_ROUTE})
    keda = codepilot(**{"spec.autoscaling.maxReplicas": 3, "spec.autoscaling.provider": "KEDA"})
    gateway = codepilot(**{"spec.rollout.traffic.gateway": GATEWAY})
    assert [p.split(":")[0] for p in catalog.required_missing(keda)] == ["spec.autoscaling.provider"]
    assert [p.split(":")[0] for p in catalog.required_missing(gateway)] == ["spec.rollout.traffic.gateway"]
    assert ApiCatalog.known(()).required_missing(gateway) == []
