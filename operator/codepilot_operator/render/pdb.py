"""PodDisruptionBudget: node drains take serving pods down one at a time.

``maxUnavailable: 1`` rather than ``minAvailable``: with a single replica, minAvailable 1 would block
every node drain forever, which platform teams rightly treat as a bug.
"""

from __future__ import annotations

from typing import Any

from codepilot_operator.api import CodePilot
from codepilot_operator.render.names import common_labels, object_meta, selector_labels


def pod_disruption_budget(cp: CodePilot) -> dict[str, Any]:
    return {
        "apiVersion": "policy/v1",
        "kind": "PodDisruptionBudget",
        "metadata": object_meta(cp, cp.metadata.name, common_labels(cp)),
        "spec": {"maxUnavailable": 1, "selector": {"matchLabels": selector_labels(cp)}},
    }
