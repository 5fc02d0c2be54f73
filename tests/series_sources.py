"""Where the series a CodePilot's rendered objects read come from.

A rule that reads a series nobody exports never fires and raises no error: Prometheus evaluates it to an
empty result forever. So every PromQL expression a CodePilot renders (rules, KEDA triggers,
prometheus-adapter series queries) and every query of the chart's Grafana dashboard (panels and template
variables, with the variables substituted as Grafana does) is taken apart with tests/promql.py, and each
series it reads must be exported by someone we can name: Triton, kube-state-metrics, the DCGM exporter,
Prometheus itself, the operator's own registry, or a recording rule of the same PrometheusRule.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from typing import Any

import yaml
from prometheus_client import CollectorRegistry

from codepilot_operator.api import contract
from codepilot_operator.render.adapter import RULES_KEY
from codepilot_operator.render.dashboard import DASHBOARD_LABEL
from tests.dashboard_support import dashboard_queries, substitute
from tests.promql import Selector, selectors

# How prometheus_client exposes a family's samples, by type (the text exposition format's suffixes).
_EXPOSED_SUFFIXES = {
    "counter": ("_total",),
    "gauge": ("",),
    "histogram": ("_bucket", "_sum", "_count"),
    "summary": ("", "_sum", "_count"),
    "info": ("_info",),
}


def promql_read(objects: Iterable[dict[str, Any]]) -> Iterator[tuple[str, str]]:
    """``(where, expression)`` for every PromQL expression in the rendered objects."""
    for obj in objects:
        kind, name = obj["kind"], obj["metadata"]["name"]
        if kind == "PrometheusRule":
            for group in obj["spec"]["groups"]:
                for rule in group["rules"]:
                    yield f"{kind}/{name} {rule.get('alert') or rule['record']}", rule["expr"]
        elif kind == "ConfigMap" and obj["metadata"]["labels"].get(DASHBOARD_LABEL):
            for text in obj["data"].values():
                for where, expr in dashboard_queries(json.loads(text)):
                    yield f"dashboard {name} {where}", substitute(expr)
        elif kind == "ConfigMap" and RULES_KEY in obj["data"]:
            for rule in yaml.safe_load(obj["data"][RULES_KEY])["rules"]:
                yield f"adapter rules {name} {rule['name']['as']}", rule["seriesQuery"]
        elif kind == "ScaledObject":
            for trigger in obj["spec"]["triggers"]:
                if trigger["type"] == "prometheus":
                    yield f"{kind}/{name} trigger", trigger["metadata"]["query"]


def recorded(objects: Iterable[dict[str, Any]]) -> set[str]:
    return {
        rule["record"]
        for obj in objects
        if obj["kind"] == "PrometheusRule"
        for group in obj["spec"]["groups"]
        for rule in group["rules"]
        if "record" in rule
    }


def exposed_by(registry: CollectorRegistry) -> set[str]:
    """Sample names the registry serves on /metrics, also for labelled metrics with no child yet."""
    return {
        family.name + suffix for family in registry.collect() for suffix in _EXPOSED_SUFFIXES[family.type]
    }


def registered(registry: CollectorRegistry) -> set[str]:
    """Metric names as the contract spells them: a counter's with the ``_total`` its samples carry."""
    return {family.name + ("_total" if family.type == "counter" else "") for family in registry.collect()}


def operator_labels() -> dict[str, tuple[str, ...]]:
    """Labels of each operator metric, by exposed name, as the contract registers them."""
    metrics = [m for m in vars(contract).values() if isinstance(m, contract.OperatorMetric)]
    return {m.name: m.labels for m in metrics}


def unsourced(objects: list[dict[str, Any]], known: set[str]) -> dict[str, list[str]]:
    """Series read by ``objects`` that neither ``known`` nor their own recording rules provide,
    with where each is read."""
    provided = known | recorded(objects)
    missing: dict[str, list[str]] = {}
    for where, expr in promql_read(objects):
        for name in sorted({s.name for s in selectors(expr)} - provided):
            missing.setdefault(name, []).append(where)
    return missing


def unregistered_labels(objects: list[dict[str, Any]]) -> dict[str, list[str]]:
    """Matchers on an operator metric for a label the operator does not put on it (matching nothing)."""
    labels = operator_labels()
    wrong: dict[str, list[str]] = {}
    for where, expr in promql_read(objects):
        for selector in selectors(expr):
            extra = _extra_labels(selector, labels)
            if extra:
                wrong.setdefault(selector.name, []).append(f"{where}: {', '.join(sorted(extra))}")
    return wrong


def _extra_labels(selector: Selector, labels: dict[str, tuple[str, ...]]) -> set[str]:
    if selector.name not in labels:
        return set()
    return set(selector.labels) - set(labels[selector.name])
