"""Two operator replicas with kopf peering: only the higher priority one works; the other takes over."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.conftest import DRIFT_INTERVAL, Api, Operator, wait_for
from tests.fixtures.kube import OPERATOR_TOKEN, EmulatorThread
from tests.helpers import manifest

PEERING = "codepilot-operator"


def operator(emulator: EmulatorThread, tmp: Path, name: str, priority: int) -> Operator:
    kubeconfig = emulator.kubeconfig(tmp / f"{name}.kubeconfig", token=f"{OPERATOR_TOKEN}-{name}")
    return Operator(kubeconfig, tmp, extra_args=("--peering", PEERING, "--priority", str(priority)))


@pytest.fixture(scope="module")
def replicas(
    kube_emulator: EmulatorThread, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[list[Operator]]:
    api = Api(kube_emulator.url)
    peering = {"apiVersion": "kopf.dev/v1", "kind": "ClusterKopfPeering", "metadata": {"name": PEERING}}
    api.request("POST", "/apis/kopf.dev/v1/clusterkopfpeerings", peering)  # the Helm chart ships this object
    tmp = tmp_path_factory.mktemp("peering")
    started = [operator(kube_emulator, tmp, "active", 200), operator(kube_emulator, tmp, "standby", 100)]
    try:
        for replica in started:
            replica.start()
        yield started
    finally:
        for replica in started:
            replica.stop()


def full_log(replica: Operator) -> str:
    return (replica.log_dir / f"{replica.name}-{replica.starts}.log").read_text(errors="replace")


def writers(emulator: EmulatorThread, namespace: str, since: int = 0) -> set[str]:
    calls = emulator.call(lambda e: list(e.calls))[since:]
    return {c.user for c in calls if c.namespace == namespace and c.write and c.resource != "events"}


def reconciled(api: Api, namespace: str, generation: int) -> bool:
    cp = api.get("codepilots", namespace, "coder") or {}
    status = cp.get("status", {})
    return status.get("observedGeneration") == generation and any(
        c["type"] == "Reconciled" and c["status"] == "True" for c in status.get("conditions", [])
    )


def test_only_the_highest_priority_replica_works_and_the_standby_takes_over(
    kube_emulator: EmulatorThread, replicas: list[Operator]
) -> None:
    active = replicas[0]
    api = Api(kube_emulator.url)
    ns = "e2e-peering"
    # Both replicas have announced themselves before the CodePilot appears.
    wait_for(
        "both replicas in the peering object",
        lambda: (
            len(
                (api.request("GET", f"/apis/kopf.dev/v1/clusterkopfpeerings/{PEERING}") or {}).get(
                    "status", {}
                )
            )
            == 2
        ),
    )
    api.create("codepilots", manifest(**{"metadata.namespace": ns}))
    wait_for("Reconciled by the active replica", lambda: reconciled(api, ns, 1))
    assert writers(kube_emulator, ns) == {f"{OPERATOR_TOKEN}-active"}

    # The active replica stops (rolling update, node drain): it leaves the peering on its way out.
    active.stop()
    mark = len(kube_emulator.call(lambda e: e.calls))
    api.patch("codepilots", ns, "coder", {"spec": {"model": {"version": "v2"}}})
    wait_for("the standby reconciles the change", lambda: reconciled(api, ns, 2))
    assert writers(kube_emulator, ns, since=mark) == {f"{OPERATOR_TOKEN}-standby"}
    assert api.get("deployments", ns, "coder-v2") is not None
    assert kube_emulator.call(lambda e: list(e.denied)) == []


def test_a_replica_paused_again_never_writes_from_what_it_saw_before_the_pause(
    kube_emulator: EmulatorThread, replicas: list[Operator]
) -> None:
    """The standby served while the active replica was away; when a higher priority replica is back, the
    standby pauses with its last view of every CodePilot. The CodePilot then changes: the standby's
    periodic jobs must not write that old view back (they would revert the active replica's work)."""
    active, standby = replicas
    api = Api(kube_emulator.url)
    ns = "e2e-repause"
    api.create("codepilots", manifest(**{"metadata.namespace": ns}))
    if active.proc is not None and active.proc.poll() is None:
        active.stop()
    wait_for("the standby serves", lambda: reconciled(api, ns, 1))
    time.sleep(DRIFT_INTERVAL * 1.5)  # the standby's drift jobs for this CodePilot are running

    pauses = full_log(standby).count("Pausing operations")
    active.start()  # the higher priority is back: the standby pauses
    wait_for("the standby pauses again", lambda: full_log(standby).count("Pausing operations") > pauses)
    mark = len(kube_emulator.call(lambda e: e.calls))
    api.patch("codepilots", ns, "coder", {"spec": {"model": {"version": "v2"}}})
    wait_for("the active replica reconciles the change", lambda: reconciled(api, ns, 2))
    time.sleep(DRIFT_INTERVAL * 4)
    assert writers(kube_emulator, ns, since=mark) == {f"{OPERATOR_TOKEN}-active"}
    assert api.get("deployments", ns, "coder-v2") is not None
