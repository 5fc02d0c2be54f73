"""The operator's side of the metrics contract: what it registers, with which labels, and the docs.

The series-by-series check against Triton and the other exporters is in
tests/integration/test_metrics_contract.py (it needs a real Triton).
"""

from __future__ import annotations

import pytest

from codepilot_operator.reconcile.metrics import REGISTRY
from codepilot_operator.render import render
from tests.helpers import REPO
from tests.rules_support import WITH_AUTOSCALERS
from tests.series_sources import operator_labels, registered, unregistered_labels


def test_the_operator_registers_exactly_the_metrics_the_contract_names() -> None:
    assert registered(REGISTRY) == set(operator_labels())


def test_every_operator_metric_is_documented() -> None:
    docs = (REPO / "docs" / "monitoring.md").read_text()
    assert [name for name in sorted(operator_labels()) if f"`{name}" not in docs] == []


@pytest.mark.parametrize("name", sorted(WITH_AUTOSCALERS))
def test_matchers_on_operator_metrics_use_labels_it_sets(name: str) -> None:
    assert unregistered_labels(render(WITH_AUTOSCALERS[name])) == {}


def test_a_matcher_on_a_label_the_operator_does_not_set_is_reported() -> None:
    rule = {"alert": "A", "expr": 'max(codepilot_rollout_canary_weight{namespace="a", version="v2"}) > 50'}
    objects = [{"kind": "PrometheusRule", "metadata": {"name": "x"}, "spec": {"groups": [{"rules": [rule]}]}}]
    assert unregistered_labels(objects) == {
        "codepilot_rollout_canary_weight": ["PrometheusRule/x A: version"]
    }
