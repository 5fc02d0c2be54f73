"""Services: one stable entry point per CodePilot and one per served version.

Clients use the entry point (the CodePilot's own name); the per-version Services exist for metrics
scraping, for canary analysis and for routers that split traffic by weight.
"""

from __future__ import annotations

from typing import Any

from codepilot_operator.api import CodePilot
from codepilot_operator.render.deployment import GRPC_PORT, HTTP_PORT, METRICS_PORT
from codepilot_operator.render.names import (
    common_labels,
    entry_service_name,
    object_meta,
    selector_labels,
    version_labels,
    version_name,
    version_selector_labels,
)
from codepilot_operator.render.served import ServedVersion

_SERVING_PORTS = [
    {"name": "http", "port": HTTP_PORT, "targetPort": "http", "protocol": "TCP"},
    {"name": "grpc", "port": GRPC_PORT, "targetPort": "grpc", "protocol": "TCP", "appProtocol": "grpc"},
]
_METRICS_PORT = {"name": "metrics", "port": METRICS_PORT, "targetPort": "metrics", "protocol": "TCP"}


def _service(
    name: str, cp: CodePilot, labels: dict[str, str], selector: dict[str, str], ports: list[dict[str, Any]]
) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": object_meta(cp, name, labels),
        "spec": {"type": "ClusterIP", "selector": selector, "ports": [dict(p) for p in ports]},
    }


def entry_service(cp: CodePilot) -> dict[str, Any]:
    return _service(entry_service_name(cp), cp, common_labels(cp), selector_labels(cp), _SERVING_PORTS)


def version_service_name(cp: CodePilot, version: str) -> str:
    return version_name(cp, version)


def version_service(cp: CodePilot, served: ServedVersion) -> dict[str, Any]:
    return _service(
        version_service_name(cp, served.version),
        cp,
        version_labels(cp, served.version),
        version_selector_labels(cp, served.version),
        [*_SERVING_PORTS, _METRICS_PORT],
    )
