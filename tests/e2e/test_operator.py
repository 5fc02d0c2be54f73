"""What a platform team sees when `codepilot run` manages CodePilots (emulated API server over HTTP).

Each test uses its own namespace, so request accounting per test is exact. The operator process is
shared by the module; the last test kills it with SIGKILL and starts a new one.
"""

from __future__ import annotations

import time
from collections import Counter
from typing import Any

from codepilot_operator.clients.kube import Kind
from codepilot_operator.loader import parse_codepilot
from codepilot_operator.render import render
from tests.e2e.conftest import DRIFT_INTERVAL, Cluster, wait_for
from tests.helpers import manifest

CHILD_RESOURCES = {
    "configmaps",
    "services",
    "deployments",
    "horizontalpodautoscalers",
    "poddisruptionbudgets",
    "servicemonitors",
    "prometheusrules",
    "scaledobjects",
}


def new_codepilot(cluster: Cluster, namespace: str, **overrides: Any) -> dict[str, Any]:
    doc = manifest(**{"metadata.namespace": namespace, **overrides})
    cluster.api.create("codepilots", doc)
    return doc


def expected_children(doc: dict[str, Any]) -> set[tuple[str, str]]:
    """(plural, name) of every object `codepilot render` prints for this manifest."""
    return {(Kind.of(o).plural, o["metadata"]["name"]) for o in render(parse_codepilot(doc))}


def live_children(cluster: Cluster, namespace: str) -> set[tuple[str, str]]:
    return {
        (plural, o["metadata"]["name"])
        for plural in CHILD_RESOURCES
        for o in cluster.api.list(plural, namespace)
    }


def reconciled(cluster: Cluster, namespace: str, generation: int = 1) -> bool:
    condition = cluster.condition(namespace, "Reconciled")
    return bool(
        condition
        and condition["status"] == "True"
        and cluster.codepilot(namespace).get("status", {}).get("observedGeneration") == generation
    )


def kopf_done(cluster: Cluster, namespace: str) -> bool:
    """kopf recorded the CodePilot as handled and holds no retry state for it (its annotations)."""
    annotations = cluster.codepilot(namespace)["metadata"].get("annotations") or {}
    kopf_keys = {k for k in annotations if k.startswith("kopf.zalando.org/")}
    return kopf_keys == {"kopf.zalando.org/last-handled-configuration"}


def quiet_period(cluster: Cluster) -> None:
    """Long enough for at least two drift resyncs of every CodePilot."""
    time.sleep(DRIFT_INTERVAL * 2.5)


def test_create_applies_each_child_once_and_idle_resyncs_write_nothing(cluster: Cluster) -> None:
    ns = "e2e-create"
    doc = new_codepilot(cluster, ns)
    wait_for("Reconciled=True", lambda: reconciled(cluster, ns))

    expected = expected_children(doc)
    assert live_children(cluster, ns) == expected
    child_writes = Counter((c.resource, c.name) for c in cluster.writes(ns) if c.resource in CHILD_RESOURCES)
    assert child_writes == dict.fromkeys(expected, 1), "each child is written exactly once"
    cp_writes = [c for c in cluster.writes(ns) if c.resource.startswith("codepilots")]
    assert len(cp_writes) <= 2, f"only kopf's bookkeeping and the status: {cp_writes}"
    cp = cluster.codepilot(ns)
    assert not cp["metadata"].get("finalizers"), "no finalizer: deleting a CodePilot never needs the operator"
    for plural, name in expected:
        owner = cluster.api.get(plural, ns, name)["metadata"]["ownerReferences"]
        assert owner == [
            {
                "apiVersion": "serving.codepilot.dev/v1alpha1",
                "kind": "CodePilot",
                "name": "coder",
                "uid": cp["metadata"]["uid"],
                "controller": True,
                "blockOwnerDeletion": True,
            }
        ]

    mark, resyncs = cluster.mark(), drift_runs(cluster)
    quiet_period(cluster)
    assert drift_runs(cluster) > resyncs, "the drift job resyncs"
    assert cluster.calls(ns, since=mark) == [], "an idle resync reads the watches: no request at all"
    assert cluster.emulator.call(lambda e: list(e.denied)) == [], "every request is covered by PERMISSIONS"
    watches = {c.resource: c.selector for c in cluster.calls() if c.verb == "watch"}
    children = {r: watches.get(r) for r in CHILD_RESOURCES | {"pods"}}
    assert children == dict.fromkeys(children, "app.kubernetes.io/managed-by=codepilot-operator"), (
        "every child kind is watched, only the operator's own objects"
    )


def drift_runs(cluster: Cluster) -> float:
    """How many drift resyncs the operator ran (its reconcile-duration histogram, trigger drift)."""
    for line in cluster.operator.metrics().splitlines():
        if line.startswith("codepilot_reconcile_duration_seconds_count") and 'trigger="drift"' in line:
            return float(line.rsplit(" ", 1)[1])
    return 0.0


def test_status_ready_follows_deployments_and_init_container_crash_loop(cluster: Cluster) -> None:
    ns = "e2e-ready"
    new_codepilot(cluster, ns)
    wait_for("Reconciled=True", lambda: reconciled(cluster, ns))
    ready = cluster.condition(ns, "Ready")
    assert ready is not None and ready["status"] == "False" and ready["reason"] == "DeploymentNotReady"

    # The weight fetcher crash-loops in the pod (what the kubelet would report).
    deployment = cluster.api.get("deployments", ns, "coder-v1")
    labels = deployment["spec"]["template"]["metadata"]["labels"]
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "coder-v1-abc12", "namespace": ns, "labels": labels},
        "spec": {"containers": [{"name": "triton", "image": "triton"}]},
        "status": {
            "initContainerStatuses": [
                {
                    "name": "fetch-weights",
                    "restartCount": 4,
                    "state": {"waiting": {"reason": "CrashLoopBackOff", "message": "back-off 1m0s"}},
                    "lastState": {"terminated": {"exitCode": 3, "reason": "Error"}},
                }
            ]
        },
    }
    cluster.api.create("pods", pod)
    degraded = wait_for(
        "Degraded=InitContainerFailing",
        lambda: (c := cluster.condition(ns, "Degraded")) and c["reason"] == "InitContainerFailing" and c,
    )
    assert degraded["status"] == "True"
    assert "fetch-weights" in degraded["message"] and "CrashLoopBackOff" in degraded["message"]
    assert cluster.condition(ns, "Ready")["reason"] == "InitContainerFailing"  # type: ignore[index]
    wait_for(
        "a Warning Event",
        lambda: any(
            e.get("reason") == "InitContainerFailing" and e.get("type") == "Warning"
            for e in cluster.events(ns)
        ),
    )

    # The fetcher recovers and the Deployment controller reports every replica ready.
    cluster.api.delete("pods", ns, "coder-v1-abc12")
    generation = deployment["metadata"]["generation"]
    status = {"observedGeneration": generation, "replicas": 1, "readyReplicas": 1, "updatedReplicas": 1}
    cluster.api.patch("deployments", ns, "coder-v1", {"status": status})
    wait_for("Ready=True", lambda: (c := cluster.condition(ns, "Ready")) and c["status"] == "True")
    cp_status = cluster.codepilot(ns)["status"]
    assert cp_status["readyReplicas"] == 1 and cp_status["replicas"] == 1
    assert cluster.condition(ns, "Degraded")["status"] == "False"  # type: ignore[index]
    wait_for(
        "a ReplicasReady Event", lambda: any(e.get("reason") == "ReplicasReady" for e in cluster.events(ns))
    )


def test_version_change_keeps_the_old_version_until_the_new_one_is_ready(cluster: Cluster) -> None:
    """Immediate: no steps and no analysis (canaries are judged in test_rollout.py), but the new version
    takes over only once it is Ready."""
    ns = "e2e-version"
    new_codepilot(cluster, ns, **{"spec.rollout.strategy": "Immediate"})
    wait_for("Reconciled=True", lambda: reconciled(cluster, ns))
    assert cluster.codepilot(ns)["status"]["stableVersion"] == "v1"
    cluster.make_ready(ns, "coder-v1")
    mark = cluster.mark()

    cluster.api.patch("codepilots", ns, "coder", {"spec": {"model": {"version": "v2"}}})
    wait_for("generation 2 reconciled", lambda: reconciled(cluster, ns, generation=2))

    # v2 comes up beside v1: users keep a Ready replica while v2 fetches and loads its weights.
    deployments = {d["metadata"]["name"] for d in cluster.api.list("deployments", ns)}
    assert deployments == {"coder-v1", "coder-v2"}
    status = cluster.codepilot(ns)["status"]
    assert (status["stableVersion"], status.get("canaryVersion")) == ("v1", "v2")
    quiet_period(cluster)  # drift resyncs must not prune v1 while v2 is not ready
    assert {d["metadata"]["name"] for d in cluster.api.list("deployments", ns)} == deployments

    # Once v2 is Ready it becomes stable and v1 (and only v1's objects) is pruned.
    cluster.make_ready(ns, "coder-v2")
    wait_for(
        "v1 pruned",
        lambda: {d["metadata"]["name"] for d in cluster.api.list("deployments", ns)} == {"coder-v2"},
    )
    status = cluster.codepilot(ns)["status"]
    assert (status["stableVersion"], status.get("canaryVersion")) == ("v2", None)
    v2 = manifest(
        **{"metadata.namespace": ns, "spec.model.version": "v2", "spec.rollout.strategy": "Immediate"}
    )
    wait_for("children of v2 only", lambda: live_children(cluster, ns) == expected_children(v2))
    deleted = {(c.resource, c.name) for c in cluster.writes(ns, since=mark) if c.verb == "delete"}
    assert ("deployments", "coder-v1") in deleted and ("configmaps", "coder-v1-config") in deleted
    assert ("deployments", "coder-v2") not in deleted


def test_deleted_child_is_recreated_and_hand_edit_reverted(cluster: Cluster) -> None:
    ns = "e2e-drift"
    new_codepilot(cluster, ns)
    wait_for("Reconciled=True", lambda: reconciled(cluster, ns))

    cluster.api.delete("services", ns, "coder")
    wait_for("the entry Service is recreated", lambda: cluster.api.get("services", ns, "coder"))

    original = cluster.api.get("deployments", ns, "coder-v1")["spec"]["revisionHistoryLimit"]
    cluster.api.patch("deployments", ns, "coder-v1", {"spec": {"revisionHistoryLimit": 42}})
    wait_for(
        "the hand edit is reverted",
        lambda: cluster.api.get("deployments", ns, "coder-v1")["spec"]["revisionHistoryLimit"] == original,
    )
    # A field the operator does not own (another controller's annotation) is left alone.
    cluster.api.patch(
        "deployments", ns, "coder-v1", {"metadata": {"annotations": {"team.example/owner": "ml"}}}
    )
    mark = cluster.mark()
    quiet_period(cluster)
    assert cluster.writes(ns, since=mark) == []
    annotations = cluster.api.get("deployments", ns, "coder-v1")["metadata"]["annotations"]
    assert annotations["team.example/owner"] == "ml"


def test_invalid_spec_sets_condition_and_touches_no_child(cluster: Cluster) -> None:
    ns = "e2e-invalid"
    new_codepilot(cluster, ns, **{"spec.runtime.gpus": 99})
    degraded = wait_for("Degraded=InvalidSpec", lambda: cluster.condition(ns, "Degraded"))
    assert degraded["status"] == "True" and degraded["reason"] == "InvalidSpec"
    assert "spec.runtime.gpus" in degraded["message"]
    assert cluster.condition(ns, "Reconciled")["reason"] == "InvalidSpec"  # type: ignore[index]
    assert live_children(cluster, ns) == set()
    assert [c for c in cluster.calls(ns) if c.resource in CHILD_RESOURCES and c.write] == []
    events = wait_for(
        "an InvalidSpec Event", lambda: [e for e in cluster.events(ns) if e.get("reason") == "InvalidSpec"]
    )
    assert "spec.runtime.gpus" in events[0]["message"]

    mark = cluster.mark()
    quiet_period(cluster)
    assert cluster.writes(ns, since=mark) == [], "no retry loop: nothing is written again"
    assert len([e for e in cluster.events(ns) if e.get("reason") == "InvalidSpec"]) == 1

    cluster.api.patch("codepilots", ns, "coder", {"spec": {"runtime": {"gpus": 1}}})
    wait_for("fixed spec reconciled", lambda: reconciled(cluster, ns, generation=2))
    assert cluster.condition(ns, "Degraded")["status"] == "False"  # type: ignore[index]


def test_api_errors_are_retried_and_converge_without_duplicates(cluster: Cluster) -> None:
    ns = "e2e-faults"
    emulator = cluster.emulator
    # In this namespace only: other tests' CodePilots must not use up the faults.
    emulator.call(lambda e: e.inject(500, verb="patch", resource="deployments", namespace=ns, times=2))
    emulator.call(lambda e: e.inject(409, verb="patch", resource="services", namespace=ns, times=1))
    emulator.call(lambda e: e.inject(429, verb="patch", resource="configmaps", namespace=ns, times=1))
    emulator.call(lambda e: e.inject(503, verb="patch", resource="poddisruptionbudgets", namespace=ns))
    doc = new_codepilot(cluster, ns)
    wait_for("Reconciled=True", lambda: reconciled(cluster, ns))

    failed = Counter(c.status for c in cluster.calls(ns) if c.status >= 400)
    assert failed == {500: 2, 409: 1, 429: 1, 503: 1}, "every injected fault was hit"
    expected = expected_children(doc)
    assert live_children(cluster, ns) == expected
    successes = Counter((c.resource, c.name) for c in cluster.writes(ns) if c.resource in CHILD_RESOURCES)
    assert successes == dict.fromkeys(expected, 1), "exactly one successful write per child"
    metrics = cluster.operator.metrics()
    assert "codepilot_reconcile_duration_seconds_count" in metrics
    assert "codepilot_objects_applied_total" in metrics


def test_api_down_longer_than_the_retries_is_reported_and_retried_later(cluster: Cluster) -> None:
    ns = "e2e-outage"
    # More failures than one reconcile retries (6 attempts): the handler gives up, status says why,
    # and kopf runs it again after its TemporaryError delay.
    cluster.emulator.call(
        lambda e: e.inject(503, verb="patch", resource="deployments", namespace=ns, times=6)
    )
    doc = new_codepilot(cluster, ns)
    failed = wait_for(
        "Reconciled=False/ApplyFailed",
        lambda: (c := cluster.condition(ns, "Reconciled")) and c["reason"] == "ApplyFailed" and c,
    )
    assert failed["status"] == "False" and "HTTP 503" in failed["message"] and "coder-v1" in failed["message"]
    wait_for("Reconciled=True after the outage", lambda: reconciled(cluster, ns))
    assert live_children(cluster, ns) == expected_children(doc)
    assert 'codepilot_reconcile_errors_total{reason="Http503"}' in cluster.operator.metrics()
    # A drift resync may recover first; kopf's own retry of the failed create handler still comes due
    # later and records it as handled. Wait for that too, or a restart would find it half-done.
    wait_for("kopf's retry of the create handler done", lambda: kopf_done(cluster, ns))


def test_restart_after_kill_does_no_duplicate_work(cluster: Cluster) -> None:
    ns = "e2e-restart"
    new_codepilot(cluster, ns)
    wait_for("Reconciled=True", lambda: reconciled(cluster, ns))
    cluster.operator.kill()

    mark = cluster.mark()
    cluster.operator.start()
    # The new process resumes every CodePilot (reads) and finds nothing to do.
    wait_for("a resync after the restart", lambda: drift_runs(cluster) > 0)
    quiet_period(cluster)
    # Only this test's namespace: another test's CodePilot may still be settling (a retried create
    # handler, a rollout's tick) and its writes are not this test's business.
    assert cluster.writes(ns, since=mark) == [], "a restarted operator with nothing changed writes nothing"
    assert cluster.operator.http("/healthz") == 200


def test_spec_api_adds_the_gateway_and_status_url_and_turning_it_off_removes_both(cluster: Cluster) -> None:
    ns = "e2e-api"
    api = {"enabled": True, "keySecrets": ["team-a"]}
    doc = new_codepilot(cluster, ns, **{"spec.api": api})
    wait_for("Reconciled=True", lambda: reconciled(cluster, ns))
    assert live_children(cluster, ns) == expected_children(doc)
    assert {("deployments", "coder-api"), ("services", "coder-api")} <= live_children(cluster, ns)
    assert cluster.codepilot(ns)["status"]["url"] == f"http://coder-api.{ns}.svc/v1"

    cluster.api.patch("codepilots", ns, "coder", {"spec": {"api": {"enabled": False}}})
    wait_for("generation 2 reconciled", lambda: reconciled(cluster, ns, generation=2))
    wait_for("the gateway pruned", lambda: ("deployments", "coder-api") not in live_children(cluster, ns))
    assert "url" not in cluster.codepilot(ns)["status"]
