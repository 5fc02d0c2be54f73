"""ServiceMonitor scraping Triton's metrics port on every served version of a CodePilot.

One ServiceMonitor per CodePilot selects the per-version Services (they carry the ``metrics`` port and
the ``app.kubernetes.io/version`` label; the entry Service has neither), so a new canary is scraped as
soon as its Service exists, without re-rendering this object.

The relabelings put ``codepilot`` and ``version`` on every series (the Prometheus Operator adds
``namespace`` and ``pod`` itself), taken from the pod's labels, which a version keeps when it is
promoted. Triton labels its own series ``version="1"`` (the Triton model version directory); our target
label wins, and Prometheus keeps Triton's value as ``exported_version``, which the rules never read.
"""

from __future__ import annotations

from typing import Any

from codepilot_operator.api import CodePilot
from codepilot_operator.render.names import (
    LABEL_CODEPILOT,
    LABEL_VERSION,
    common_labels,
    object_meta,
    selector_labels,
)
from codepilot_operator.render.rules_common import CODEPILOT, VERSION

MONITORING_API_VERSION = "monitoring.coreos.com/v1"
METRICS_PORT_NAME = "metrics"
SCRAPE_INTERVAL = "15s"


def meta_pod_label(label: str) -> str:
    """Prometheus' service-discovery name of a pod label (every invalid character becomes ``_``)."""
    return "__meta_kubernetes_pod_label_" + "".join(c if c.isalnum() else "_" for c in label)


def relabelings() -> list[dict[str, Any]]:
    return [
        {"action": "replace", "sourceLabels": [meta_pod_label(LABEL_CODEPILOT)], "targetLabel": CODEPILOT},
        {"action": "replace", "sourceLabels": [meta_pod_label(LABEL_VERSION)], "targetLabel": VERSION},
    ]


def monitoring_labels(cp: CodePilot) -> dict[str, str]:
    """Our labels plus ``spec.alerts.labels``, which Prometheus' selectors often require (``release``)."""
    return {**cp.spec.alerts.labels, **common_labels(cp)}


def service_monitor(cp: CodePilot) -> dict[str, Any]:
    return {
        "apiVersion": MONITORING_API_VERSION,
        "kind": "ServiceMonitor",
        "metadata": object_meta(cp, cp.metadata.name, monitoring_labels(cp)),
        "spec": {
            "selector": {
                "matchLabels": selector_labels(cp),
                "matchExpressions": [{"key": LABEL_VERSION, "operator": "Exists"}],
            },
            "namespaceSelector": {"matchNames": [cp.metadata.namespace]},
            "endpoints": [
                {
                    "port": METRICS_PORT_NAME,
                    "path": "/metrics",
                    "scheme": "http",
                    "interval": SCRAPE_INTERVAL,
                    "relabelings": relabelings(),
                }
            ],
        },
    }
