"""Traffic routers, as render functions: the objects that split traffic between served versions.

- With ``spec.rollout.traffic.gateway``: a Gateway API HTTPRoute named after the CodePilot, with
  weighted backendRefs to the per-version Services and a header rule per version
  (``x-codepilot-version: v2`` pins a request to v2, for A/B tests and for trying a canary by hand).
- Without it the split is the replica ratio behind the entry Service (rollout/capacity.py decides the
  replicas), so there is nothing to render here.

A version gets a backendRef (and its header rule) only with a weight above zero: the rollout gives the
canary weight only once its endpoints are Ready, so no request is ever sent to pods that are not.
The current weights are read back from the live object by the caller when it needs them (Flagger's
GetRoutes): the route is data, reconcile applies it like every other child.
"""

from __future__ import annotations

from typing import Any

from codepilot_operator.api import CodePilot
from codepilot_operator.render.deployment import HTTP_PORT
from codepilot_operator.render.names import common_labels, entry_service_name, object_meta
from codepilot_operator.render.served import ServedVersion
from codepilot_operator.render.service import version_service_name

GATEWAY_API_VERSION = "gateway.networking.k8s.io/v1"


def _backend(cp: CodePilot, version: str, weight: int | None = None) -> dict[str, Any]:
    ref: dict[str, Any] = {"name": version_service_name(cp, version), "port": HTTP_PORT}
    if weight is not None:
        ref["weight"] = weight
    return ref


def weights(served: list[ServedVersion]) -> list[tuple[str, int]]:
    """(version, weight) for every version that gets traffic; a lone version gets all of it."""
    if len(served) == 1:
        return [(served[0].version, 100)]
    canary = served[-1].weight or 0
    split = [(served[0].version, 100 - canary), (served[-1].version, canary)]
    return [(version, weight) for version, weight in split if weight > 0]


def http_route(cp: CodePilot, served: list[ServedVersion]) -> dict[str, Any]:
    gateway = cp.spec.rollout.traffic.gateway
    assert gateway is not None
    header = cp.spec.rollout.traffic.version_header
    split = weights(served)
    rules: list[dict[str, Any]] = [
        {
            "matches": [{"headers": [{"type": "Exact", "name": header, "value": version}]}],
            "backendRefs": [_backend(cp, version)],
        }
        for version, _ in split
    ]
    rules.append({"backendRefs": [_backend(cp, version, weight) for version, weight in split]})
    spec: dict[str, Any] = {
        "parentRefs": [ref.model_dump(by_alias=True, exclude_none=True) for ref in gateway.parent_refs],
        "rules": rules,
    }
    if gateway.hostnames:
        spec["hostnames"] = list(gateway.hostnames)
    return {
        "apiVersion": GATEWAY_API_VERSION,
        "kind": "HTTPRoute",
        "metadata": object_meta(cp, entry_service_name(cp), common_labels(cp)),
        "spec": spec,
    }


def route_objects(cp: CodePilot, served: list[ServedVersion]) -> list[dict[str, Any]]:
    if cp.spec.rollout.traffic.gateway is None:
        return []
    return [http_route(cp, served)]
