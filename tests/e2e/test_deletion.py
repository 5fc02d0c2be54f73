"""A deleted CodePilot stays deleted: the operator stops working on it the moment it is gone.

The emulator has no garbage collector, so the tests play it: when a CodePilot is deleted, every child
whose ownerReference names its uid is deleted, as the API server's garbage collector would do.
"""

from __future__ import annotations

import time
from typing import Any

from tests.e2e.conftest import DRIFT_INTERVAL, Cluster, wait_for
from tests.e2e.test_operator import CHILD_RESOURCES, expected_children, live_children, new_codepilot
from tests.helpers import manifest

SEVERAL_DRIFT_INTERVALS = DRIFT_INTERVAL * 4


def owner_uids(obj: dict[str, Any]) -> set[str]:
    return {ref["uid"] for ref in obj["metadata"].get("ownerReferences") or []}


def collect_garbage(cluster: Cluster, namespace: str, uid: str) -> int:
    """What the garbage collector does once the owner is gone: delete the objects it owned."""
    deleted = 0
    for plural in CHILD_RESOURCES:
        for obj in cluster.api.list(plural, namespace):
            if uid in owner_uids(obj):
                cluster.api.delete(plural, namespace, obj["metadata"]["name"])
                deleted += 1
    return deleted


def reconciled_uid(cluster: Cluster, namespace: str, name: str) -> str | None:
    """The uid of CodePilot ``name`` once its first generation is reconciled."""
    cp = cluster.api.get("codepilots", namespace, name)
    status = (cp or {}).get("status", {})
    done = status.get("observedGeneration") == 1 and any(
        c["type"] == "Reconciled" and c["status"] == "True" for c in status.get("conditions", [])
    )
    return str(cp["metadata"]["uid"]) if cp and done else None


def child_owners(cluster: Cluster, namespace: str) -> set[str]:
    return {
        uid
        for plural in CHILD_RESOURCES
        for o in cluster.api.list(plural, namespace)
        for uid in owner_uids(o)
    }


def test_deleted_codepilots_are_left_alone_after_garbage_collection(cluster: Cluster) -> None:
    ns = "e2e-deleted"
    names = ["coder-a", "coder-b", "coder-c"]
    for name in names:
        new_codepilot(cluster, ns, **{"metadata.name": name})
    uids = {
        name: wait_for(f"{name} reconciled", lambda n=name: reconciled_uid(cluster, ns, n)) for name in names
    }
    # Let at least one drift resync run, so the timers of every CodePilot are running.
    time.sleep(DRIFT_INTERVAL * 1.5)

    for name in names:
        cluster.api.delete("codepilots", ns, name)
    mark = cluster.mark()
    collected = sum(collect_garbage(cluster, ns, uid) for uid in uids.values())
    assert collected == 3 * len(expected_children(manifest(**{"metadata.namespace": ns}))), collected

    time.sleep(SEVERAL_DRIFT_INTERVALS)
    writes = [(c.verb, c.resource, c.name) for c in cluster.writes(ns, since=mark)]
    assert writes == [], f"the operator kept working on deleted CodePilots: {writes[:10]} ({len(writes)})"
    assert live_children(cluster, ns) == set(), "nothing re-created after garbage collection"


def test_recreated_codepilot_is_served_only_under_its_new_uid(cluster: Cluster) -> None:
    ns = "e2e-recreated"
    doc = new_codepilot(cluster, ns)
    old = wait_for("first incarnation reconciled", lambda: reconciled_uid(cluster, ns, "coder"))
    time.sleep(DRIFT_INTERVAL * 1.5)  # its drift timer has run at least once

    cluster.api.delete("codepilots", ns, "coder")
    collect_garbage(cluster, ns, old)
    new_codepilot(cluster, ns)
    new = wait_for("second incarnation reconciled", lambda: reconciled_uid(cluster, ns, "coder"))
    assert new != old

    # Whatever the first incarnation's timers would re-create belongs to a deleted owner: the garbage
    # collector removes it again. Over several drift intervals, nothing of the old uid may come back.
    deadline = time.monotonic() + SEVERAL_DRIFT_INTERVALS
    while time.monotonic() < deadline:
        collect_garbage(cluster, ns, old)
        time.sleep(0.2)
    assert child_owners(cluster, ns) == {new}
    assert live_children(cluster, ns) == expected_children(doc)

    mark = cluster.mark()
    time.sleep(SEVERAL_DRIFT_INTERVALS)
    writes = [(c.verb, c.resource, c.name) for c in cluster.writes(ns, since=mark)]
    assert writes == [], f"writes did not settle: {writes[:10]} ({len(writes)})"
    assert child_owners(cluster, ns) == {new}
