"""The operator follows its children through watches: a child deleted or edited by hand, and a Deployment
becoming Ready, are acted on at once, with no periodic job that could explain it and no list or get.

The module's operator has a drift interval of one hour and no progress refresh, so within a test only
a watch event can trigger a reconcile.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.e2e.conftest import Cluster, Operator, wait_for
from tests.e2e.test_operator import new_codepilot, reconciled
from tests.fixtures.kube import EmulatorThread

READS = ("list", "get")


@pytest.fixture(scope="module")
def watched(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    emulator = EmulatorThread().start()
    tmp = tmp_path_factory.mktemp("watched")
    operator = Operator(
        emulator.kubeconfig(tmp / "kubeconfig"), tmp, drift_interval=3600, progress_interval=0
    )
    try:
        operator.start()
        yield Cluster(emulator, operator)
    finally:
        operator.stop()
        emulator.stop()


def test_a_child_deleted_or_edited_by_hand_is_restored_by_its_watch_event(watched: Cluster) -> None:
    ns = "watch-drift"
    new_codepilot(watched, ns)
    wait_for("Reconciled=True", lambda: reconciled(watched, ns))
    mark = watched.mark()

    watched.api.delete("services", ns, "coder")
    wait_for("the entry Service is recreated", lambda: watched.api.get("services", ns, "coder"))
    original = watched.api.get("deployments", ns, "coder-v1")["spec"]["revisionHistoryLimit"]
    watched.api.patch("deployments", ns, "coder-v1", {"spec": {"revisionHistoryLimit": 42}})
    wait_for(
        "the hand edit is reverted",
        lambda: watched.api.get("deployments", ns, "coder-v1")["spec"]["revisionHistoryLimit"] == original,
    )
    writes = [(c.verb, c.resource, c.name) for c in watched.writes(ns, since=mark)]
    assert writes == [("patch", "services", "coder"), ("patch", "deployments", "coder-v1")]
    # Children come from the watches; the one read per restore is the job's check, before it writes,
    # that its CodePilot is still the object it saw (reconcile/owner.py).
    reads = [(c.verb, c.resource) for c in watched.calls(ns, since=mark) if c.verb in READS]
    assert reads == [("get", "codepilots")] * 2


def test_a_deployment_becoming_ready_is_seen_at_once(watched: Cluster) -> None:
    ns = "watch-ready"
    new_codepilot(watched, ns)
    wait_for("Reconciled=True", lambda: reconciled(watched, ns))
    assert watched.condition(ns, "Ready")["status"] == "False"  # type: ignore[index]

    watched.make_ready(ns, "coder-v1")
    wait_for("Ready=True", lambda: (c := watched.condition(ns, "Ready")) and c["status"] == "True")
