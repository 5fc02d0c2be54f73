"""The watch cache reconcile reads: our own writes stay visible until their events arrive, and only
someone else's change is worth a reconcile."""

from __future__ import annotations

import asyncio
from typing import Any

from codepilot_operator.clients.kube import Kind
from codepilot_operator.reconcile.children import DEPLOYMENT, Children, slim
from codepilot_operator.render.names import LABEL_CODEPILOT, LABEL_MANAGED_BY, MANAGED_BY

SERVICE = Kind("v1", "Service")
LABELS = {LABEL_CODEPILOT: "coder", LABEL_MANAGED_BY: MANAGED_BY}


def obj(kind: Kind, name: str, rv: str, **fields: Any) -> dict[str, Any]:
    meta = {"name": name, "namespace": "ns", "labels": LABELS, "resourceVersion": rv}
    return {"apiVersion": kind.api_version, "kind": kind.kind, "metadata": meta, **fields}


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def cache(*objects: dict[str, Any]) -> tuple[Children, dict[tuple[str, str], list[dict[str, Any]]], Clock]:
    index: dict[tuple[str, str], list[dict[str, Any]]] = {
        ("ns", "coder"): [slim(o, SERVICE) for o in objects]
    }
    clock = Clock()
    children = Children(clock=clock, ttl=30.0)
    children.attach(SERVICE, index)
    return children, index, clock


def names(children: Children) -> dict[str, str]:
    listed = asyncio.run(children.list(SERVICE, "ns", LABELS))
    return {o["metadata"]["name"]: o["metadata"]["resourceVersion"] for o in listed}


def test_a_write_is_seen_before_its_watch_event_and_the_index_wins_once_it_arrives() -> None:
    children, index, _ = cache(obj(SERVICE, "coder", "1"))
    children.wrote(obj(SERVICE, "coder", "5"))
    children.wrote(obj(SERVICE, "coder-v1", "6"))
    assert names(children) == {"coder": "5", "coder-v1": "6"}, "the index lags: the writes are overlaid"
    index[("ns", "coder")] = [slim(obj(SERVICE, "coder", "5"), SERVICE)]
    assert names(children) == {"coder": "5", "coder-v1": "6"}
    assert not children.observed(SERVICE, "MODIFIED", obj(SERVICE, "coder", "5")), "our own echo"
    index[("ns", "coder")] = [slim(obj(SERVICE, "coder", "7", spec={"edited": True}), SERVICE)]
    assert names(children)["coder"] == "7", "after the echo, a later change shows"


def test_a_delete_hides_the_object_until_the_index_drops_it_and_its_event_is_not_news() -> None:
    children, _, _ = cache(obj(SERVICE, "coder", "1"), obj(SERVICE, "old", "2"))
    children.deleted(SERVICE, "ns", "old")
    assert names(children) == {"coder": "1"}
    assert not children.observed(SERVICE, "DELETED", obj(SERVICE, "old", "2"))
    assert children.observed(SERVICE, "DELETED", obj(SERVICE, "coder", "1")), "deleted by someone else"


def test_an_overlay_whose_event_never_comes_expires() -> None:
    children, _, clock = cache(obj(SERVICE, "coder", "1"))
    children.wrote(obj(SERVICE, "coder", "5"))
    clock.now = 31.0
    assert names(children) == {"coder": "1"}


def test_only_changes_beyond_status_trigger_except_a_deployments_readiness() -> None:
    children, _, _ = cache()
    assert not children.observed(SERVICE, None, obj(SERVICE, "coder", "1", spec={"a": 1})), "initial list"
    assert not children.observed(SERVICE, "MODIFIED", obj(SERVICE, "coder", "2", spec={"a": 1}, status={}))
    assert children.observed(SERVICE, "MODIFIED", obj(SERVICE, "coder", "3", spec={"a": 2}))
    status = {"observedGeneration": 1, "readyReplicas": 0}
    assert not children.observed(DEPLOYMENT, None, obj(DEPLOYMENT, "coder-v1", "1", status=status))
    noise = {**status, "conditions": [{"type": "Available"}]}
    assert not children.observed(DEPLOYMENT, "MODIFIED", obj(DEPLOYMENT, "coder-v1", "2", status=noise))
    ready = {**status, "readyReplicas": 1}
    assert children.observed(DEPLOYMENT, "MODIFIED", obj(DEPLOYMENT, "coder-v1", "3", status=ready))
