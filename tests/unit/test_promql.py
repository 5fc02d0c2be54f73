"""The PromQL tokenizer the metrics contract test relies on: it must find every series an expression
reads, nothing else, and refuse what it cannot read rather than guess."""

from __future__ import annotations

import copy

import pytest

from codepilot_operator.api import contract
from codepilot_operator.api.contract import TRITON_REQUEST_FAILURE, TRITON_REQUEST_SUCCESS
from codepilot_operator.reconcile.metrics import REGISTRY
from codepilot_operator.render import render
from tests.helpers import codepilot
from tests.promql import Selector, selectors, series_read
from tests.series_sources import exposed_by, unsourced


def test_finds_each_series_and_skips_functions_keywords_label_lists_durations_and_strings() -> None:
    expr = (
        "sum by (namespace, pod) (rate(a_total{namespace='x'}[5m] offset 1h30m))"
        " / on (namespace) group_left (pod) max without (version) (b)"
        ' > bool 1e6 and label_replace(c, "dst", "$1 up", "src", "(.*)")'
        " unless d @ start() or avg_over_time(e:rate5m[1h:5m]) * -0.5 or time() - 0x1F or vector(Inf)"
    )
    assert series_read(expr) == {"a_total", "b", "c", "d", "e:rate5m"}


def test_aggregation_modifiers_may_come_after_the_argument() -> None:
    assert series_read("sum(x) by (a) + count(y) without (b, c) + topk(3, z)") == {"x", "y", "z"}


def test_matchers_are_labels_of_their_selector_even_with_braces_and_quotes_in_values() -> None:
    expr = r'a{namespace="x", codepilot=~"b|c", path="}{,\"q", } + b {pod!=""}'
    assert selectors(expr) == [
        Selector("a", frozenset({"namespace", "codepilot", "path"})),
        Selector("b", frozenset({"pod"})),
    ]


def test_a_name_matcher_names_every_series_of_its_alternation() -> None:
    expr = f'rate({{namespace="x", __name__=~"{TRITON_REQUEST_SUCCESS}|{TRITON_REQUEST_FAILURE}"}}[2m])'
    assert selectors(expr) == [
        Selector(TRITON_REQUEST_SUCCESS, frozenset({"namespace"})),
        Selector(TRITON_REQUEST_FAILURE, frozenset({"namespace"})),
    ]


@pytest.mark.parametrize(
    "expr",
    [
        '{__name__=~"nv_.*"}',  # open-ended: which series?
        '{__name__!="up"}',
        '{namespace="x"}',  # no name at all
        "rate(x[$__rate_interval])",  # a Grafana variable is not PromQL
        "x{namespace}",  # a matcher without operator and value
        "sum by namespace (x)",  # a label list without parentheses
        "x ; y",
    ],
)
def test_what_it_cannot_read_is_refused_not_guessed(expr: str) -> None:
    with pytest.raises(ValueError, match="in: "):
        selectors(expr)


def _known() -> set[str]:
    return (
        set(contract.TRITON_SERIES)
        | set(contract.TRITON_GPU_SERIES)
        | set(contract.KSM_SERIES)
        | set(contract.PROMETHEUS_SERIES)
        | exposed_by(REGISTRY)
    )


def test_a_misspelled_metric_in_a_rendered_rule_is_reported_where_it_is_read() -> None:
    objects = render(codepilot(**{"spec.alerts.slo": {"objective": 99.9}}))
    (rule_object,) = [o for o in objects if o["kind"] == "PrometheusRule"]
    typo = copy.deepcopy(rule_object)
    (recording,) = [g for g in typo["spec"]["groups"] if g["name"].endswith(".recording")]
    latency = next(r for r in recording["rules"] if r["record"].endswith("request_latency_seconds:mean2m"))
    assert TRITON_REQUEST_SUCCESS in latency["expr"]
    latency["expr"] = latency["expr"].replace(TRITON_REQUEST_SUCCESS, "nv_inference_request_sucess")
    objects = [typo if o is rule_object else o for o in objects]

    missing = unsourced(objects, _known())
    assert missing.get("nv_inference_request_sucess") == [f"PrometheusRule/coder {latency['record']}"]
    assert TRITON_REQUEST_SUCCESS not in missing  # still read, correctly spelled, by the other rules


def test_a_misspelled_name_inside_a_name_alternation_is_reported() -> None:
    expr = f'sum(rate({{__name__=~"{TRITON_REQUEST_SUCCESS}|nv_inference_request_failures"}}[5m]))'
    rule = {"record": "r", "expr": expr}
    objects = [{"kind": "PrometheusRule", "metadata": {"name": "x"}, "spec": {"groups": [{"rules": [rule]}]}}]
    assert unsourced(objects, _known()) == {"nv_inference_request_failures": ["PrometheusRule/x r"]}
