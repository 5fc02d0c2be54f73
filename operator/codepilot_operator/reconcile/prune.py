"""Which live children no longer belong: pure selection, the client does the deleting.

A child is pruned only when all of these hold: its kind is one the operator manages, it carries the
CodePilot's label and ``app.kubernetes.io/managed-by: codepilot-operator``, its controller ownerReference
is this CodePilot (same uid), and the current render no longer contains it. A hand-made object that
happens to carry our labels, or a leftover of a deleted CodePilot with the same name, is never touched.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from codepilot_operator.clients.kube import Kind
from codepilot_operator.render.names import LABEL_CODEPILOT, LABEL_MANAGED_BY, MANAGED_BY

# Every kind render() may return, now or in an earlier version of the operator. A kind that disappears
# from render() must stay here, or its objects would be left behind when a CodePilot stops needing them.
MANAGED_KINDS: tuple[Kind, ...] = (
    Kind("v1", "ConfigMap"),
    Kind("v1", "Service"),
    Kind("apps/v1", "Deployment"),
    Kind("autoscaling/v2", "HorizontalPodAutoscaler"),
    Kind("policy/v1", "PodDisruptionBudget"),
    Kind("monitoring.coreos.com/v1", "ServiceMonitor"),
    Kind("monitoring.coreos.com/v1", "PrometheusRule"),
    Kind("keda.sh/v1alpha1", "ScaledObject"),
    Kind("gateway.networking.k8s.io/v1", "HTTPRoute"),
)


def child_selector(codepilot_name: str) -> dict[str, str]:
    return {LABEL_CODEPILOT: codepilot_name, LABEL_MANAGED_BY: MANAGED_BY}


def kinds_to_list(desired: Iterable[Mapping[str, Any]]) -> list[Kind]:
    """MANAGED_KINDS plus any other kind render() returned (listed so its live state is known)."""
    kinds = list(MANAGED_KINDS)
    for obj in desired:
        kind = Kind.of(obj)
        if kind not in kinds:
            kinds.append(kind)
    return kinds


def key(obj: Mapping[str, Any]) -> tuple[str, str]:
    """Identity of a child within one CodePilot's namespace (the group, not the version, identifies it)."""
    kind = Kind.of(obj)
    return (f"{kind.kind}.{kind.group}", str(obj["metadata"]["name"]))


def owned_by(obj: Mapping[str, Any], owner_uid: str) -> bool:
    refs = obj.get("metadata", {}).get("ownerReferences") or []
    return any(ref.get("uid") == owner_uid and ref.get("controller") for ref in refs)


def stale(
    live: Iterable[Mapping[str, Any]], desired: Iterable[Mapping[str, Any]], owner_uid: str
) -> list[Mapping[str, Any]]:
    wanted = {key(obj) for obj in desired}
    return [obj for obj in live if key(obj) not in wanted and owned_by(obj, owner_uid)]
