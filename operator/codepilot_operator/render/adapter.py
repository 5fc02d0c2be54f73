"""prometheus-adapter rules that serve the per-pod recorded signals to the HPA as custom metrics.

prometheus-adapter has one cluster-wide configuration, so this is a snippet for the platform team to
merge into the adapter's ``rules:`` (or point a second adapter at): the rules are the same for every
CodePilot, because they match the recorded series by name and map ``namespace``/``pod`` labels to
Kubernetes objects. The ``custom.metrics.k8s.io`` name of each metric is signals.py's ``metric``.
"""

from __future__ import annotations

from functools import cache
from typing import Any

import yaml

from codepilot_operator.api import CodePilot
from codepilot_operator.render.names import child_name, common_labels, object_meta
from codepilot_operator.render.rules_common import NAMESPACE, POD
from codepilot_operator.render.signals import SIGNALS

ADAPTER_COMPONENT = "metrics-adapter"
RULES_KEY = "codepilot-adapter-rules.yaml"


def adapter_rule(series: str, metric: str) -> dict[str, Any]:
    return {
        "seriesQuery": f'{series}{{{NAMESPACE}!="",{POD}!=""}}',
        "resources": {"overrides": {NAMESPACE: {"resource": "namespace"}, POD: {"resource": "pod"}}},
        "name": {"matches": f"^{series}$", "as": metric},
        # One recorded sample per pod already; max guards against a duplicate scrape of the same pod.
        "metricsQuery": "max(<<.Series>>{<<.LabelMatchers>>}) by (<<.GroupBy>>)",
    }


def adapter_rules() -> list[dict[str, Any]]:
    return [adapter_rule(s.series, s.metric) for s in SIGNALS.values() if s.from_prometheus]


@cache
def adapter_rules_text() -> str:
    """The same for every CodePilot, so it is serialised once (YAML emission dominated render time)."""
    return yaml.safe_dump({"rules": adapter_rules()}, sort_keys=False)


def adapter_config_map(cp: CodePilot) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": object_meta(cp, child_name(cp, "adapter-rules"), common_labels(cp, ADAPTER_COMPONENT)),
        "data": {RULES_KEY: adapter_rules_text()},
    }
