"""Rollouts end to end: the operator as a process against the API emulator, two real Triton servers
standing in for v1 and v2, a real Prometheus scraping both with the labels the ServiceMonitor produces,
and a load generator that splits requests by the Ready replicas the operator asked for (what kube-proxy
does behind the entry Service). The emulator has no Deployment controller or kubelet: a test thread
plays them (tests/fixtures/rollout_lab.py), making pods Ready a moment after they are asked for.

Each scenario runs in its own namespace against the same servers; Prometheus scrapes both Triton servers
once per scenario namespace, so every CodePilot sees its own series.
"""

from __future__ import annotations

import copy
import shutil
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from codepilot_operator.loader import parse_codepilot
from tests.e2e.conftest import Api, Cluster, Operator, wait_for
from tests.fixtures.kube import EmulatorThread
from tests.fixtures.prometheus import PrometheusServer
from tests.fixtures.rollout_lab import Kubelet, Load, ready_split, scrape_configs, set_behaviour
from tests.fixtures.triton import TRITON_CODEPILOT, TritonServer, start_triton

SCENARIOS = ("ro-healthy", "ro-failing", "ro-slow", "ro-quiet", "ro-restart")
NAME = "coder"
ROLLOUT: dict[str, Any] = {
    "strategy": "Canary",
    "steps": [{"weight": 25, "pause": "6s"}, {"weight": 50, "pause": "6s"}],
    "analysis": {
        "interval": "3s",
        "minRequests": 5,
        "failureLimit": 1,
        "maxErrorRate": 0.05,
        "maxLatencyRatio": 2.0,
        "maxLatency": "2s",
        "stallTimeout": "20s",
    },
}
HEALTHY = {"work_seconds": 0.01}


@dataclass
class Lab:
    cluster: Cluster
    servers: dict[str, TritonServer]
    prometheus: PrometheusServer

    @property
    def api(self) -> Api:
        return self.cluster.api


def _codepilot(namespace: str, version: str) -> dict[str, Any]:
    doc = copy.deepcopy(TRITON_CODEPILOT)
    doc["metadata"] = {"name": NAME, "namespace": namespace}
    doc["spec"]["model"]["version"] = version
    doc["spec"]["autoscaling"] = {"minReplicas": 4, "maxReplicas": 4}
    doc["spec"]["rollout"] = copy.deepcopy(ROLLOUT)
    return doc


@pytest.fixture(scope="module")
def lab(kube_emulator: EmulatorThread, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    workdirs = [Path(tempfile.mkdtemp(prefix=f"codepilot-rollout-{v}-")) for v in ("v1", "v2")]
    servers: dict[str, TritonServer] = {}
    prometheus = None
    operator = None
    try:
        for version, workdir in zip(("v1", "v2"), workdirs, strict=True):
            servers[version] = start_triton(parse_codepilot(_codepilot("lab", version)), workdir)
        jobs = [job for ns in SCENARIOS for job in scrape_configs(servers, ns, NAME)]
        for job in jobs:
            job["job_name"] = (
                f"{job['job_name']}-{job['static_configs'][0]['labels']['__meta_kubernetes_namespace']}"
            )
        prometheus = PrometheusServer(tmp_path_factory.mktemp("prometheus"), jobs, [])
        prometheus.wait_for("count(up == 1)", lambda r: bool(r) and float(r[0]["value"][1]) == len(jobs))
        tmp = tmp_path_factory.mktemp("operator-rollout")
        operator = Operator(
            kube_emulator.kubeconfig(tmp / "kubeconfig"),
            tmp,
            drift_interval=5.0,
            extra_args=("--prometheus-url", prometheus.url),
        )
        operator.start()
        yield Lab(Cluster(kube_emulator, operator), servers, prometheus)
    finally:
        if operator is not None:
            operator.stop()
        if prometheus is not None:
            prometheus.stop()
        for server in servers.values():
            server.stop()
        for workdir in workdirs:
            shutil.rmtree(workdir, ignore_errors=True)


@dataclass
class Running:
    kubelet: Kubelet
    load: Load

    def stop(self) -> None:
        self.load.stop()
        self.kubelet.stopped.set()
        self.kubelet.join(10)


def start_scenario(lab: Lab, namespace: str, v2: dict[str, float]) -> Running:
    """v1 serving and Ready under load, then spec.model.version changed to v2 (behaving as ``v2``)."""
    set_behaviour(lab.servers["v1"], **HEALTHY)
    set_behaviour(lab.servers["v2"], **v2)
    kubelet = Kubelet(lab.api, namespace, delay=1.0)
    kubelet.start()
    lab.api.create("codepilots", _codepilot(namespace, "v1"))
    wait_for("v1 Ready", lambda: condition(lab, namespace, "Ready").get("status") == "True", timeout=60)
    load = Load(lab.servers, lambda: ready_split(lab.api, namespace, NAME, ["v1", "v2"]), rate=30)
    load.start()
    time.sleep(2)  # a few scrapes of v1 under load before the change
    lab.api.patch("codepilots", namespace, NAME, {"spec": {"model": {"version": "v2"}}})
    return Running(kubelet, load)


def status(lab: Lab, namespace: str) -> dict[str, Any]:
    return dict(lab.cluster.codepilot(namespace, NAME).get("status") or {})


def rollout(lab: Lab, namespace: str) -> dict[str, Any]:
    return dict(status(lab, namespace).get("rollout") or {})


def condition(lab: Lab, namespace: str, kind: str) -> dict[str, Any]:
    return lab.cluster.condition(namespace, kind, NAME) or {}


def deployment(lab: Lab, namespace: str, version: str) -> dict[str, Any] | None:
    live = lab.api.get("deployments", namespace, f"{NAME}-{version}")
    return dict(live) if live else None


def events(lab: Lab, namespace: str) -> list[str]:
    return [f"{e['type']}/{e['reason']}" for e in lab.cluster.events(namespace)]


def test_healthy_canary_is_promoted_with_its_pods_kept(lab: Lab) -> None:
    ns = "ro-healthy"
    running = start_scenario(lab, ns, HEALTHY)
    try:
        v1_template = None
        v2_uid = None
        weights_seen = set()
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            v1, v2 = deployment(lab, ns, "v1"), deployment(lab, ns, "v2")
            if v1 is not None:
                template = v1["spec"]["template"]
                v1_template = v1_template or template
                assert template == v1_template, "the stable pod template changed during the rollout"
            if v2 is not None:
                v2_uid = v2_uid or v2["metadata"]["uid"]
                assert v2["metadata"]["uid"] == v2_uid
            state = rollout(lab, ns)
            if state.get("phase") == "Progressing" and state.get("stepStartedAt"):
                weights_seen.add(state.get("weight"))
            if state.get("phase") == "Promoted" and v1 is None:
                break
            time.sleep(0.3)
        state = rollout(lab, ns)
        assert state.get("phase") == "Promoted", state
        assert weights_seen >= {25, 50}, f"every step held its weight: {weights_seen}"
        final = status(lab, ns)
        assert (final["stableVersion"], final.get("canaryVersion")) == ("v2", None)
        promoted = deployment(lab, ns, "v2")
        assert promoted is not None and promoted["metadata"]["uid"] == v2_uid, "promotion kept v2's pods"
        assert state["lastAnalysis"]["verdict"] == "Pass"
        assert state["lastAnalysis"]["canary"]["requests"] >= 5
        assert "Normal/Promoted" in events(lab, ns)
        assert (
            'codepilot_rollout_promotions_total{codepilot="coder",namespace="ro-healthy",version="v2"} 1.0'
            in (lab.cluster.operator.metrics())
        )
        assert running.load.sent["v2"] > 0 and running.load.failed["v2"] == 0
    finally:
        running.stop()


def _rolled_back(lab: Lab, ns: str, reason: str) -> dict[str, Any]:
    state = wait_for(
        "rolled back",
        lambda: (s := rollout(lab, ns)).get("phase") == "RolledBack" and s,
        timeout=90,
    )
    assert state["rejectedVersion"] == "v2" and state["weight"] == 0
    analysis = state["lastAnalysis"]
    assert analysis["verdict"] == "Fail" and analysis["reason"] == reason, analysis
    assert analysis["failures"] and analysis["thresholds"]["maxErrorRate"] == 0.05
    wait_for("v2's Deployment removed", lambda: deployment(lab, ns, "v2") is None)
    final = status(lab, ns)
    assert (final["stableVersion"], final.get("canaryVersion")) == ("v1", None)
    degraded = condition(lab, ns, "Degraded")
    assert (degraded["status"], degraded["reason"]) == ("True", "RolledBack")
    assert "Warning/RolledBack" in events(lab, ns)
    assert f'codepilot_rollout_rollbacks_total{{codepilot="coder",namespace="{ns}",version="v2"}} 1.0' in (
        lab.cluster.operator.metrics()
    )
    return state


def test_failing_canary_is_rolled_back_with_the_numbers(lab: Lab) -> None:
    ns = "ro-failing"
    running = start_scenario(lab, ns, {"work_seconds": 0.01, "fail_ratio": 0.6})
    try:
        state = _rolled_back(lab, ns, "ErrorRate")
        canary, stable = state["lastAnalysis"]["canary"], state["lastAnalysis"]["stable"]
        assert canary["errorRatio"] > 0.05 and stable["errorRatio"] < canary["errorRatio"]
        # the rejected version is not retried: nothing comes back for it while spec stays the same
        time.sleep(8)
        assert deployment(lab, ns, "v2") is None and rollout(lab, ns)["phase"] == "RolledBack"
    finally:
        running.stop()


def test_slow_canary_is_rolled_back_on_latency(lab: Lab) -> None:
    ns = "ro-slow"
    running = start_scenario(lab, ns, {"work_seconds": 0.25})
    try:
        state = _rolled_back(lab, ns, "Latency")
        canary, stable = state["lastAnalysis"]["canary"], state["lastAnalysis"]["stable"]
        assert canary["meanLatencySeconds"] > 2 * stable["meanLatencySeconds"]
    finally:
        running.stop()


def test_no_traffic_pauses_neither_promoting_nor_rolling_back(lab: Lab) -> None:
    ns = "ro-quiet"
    running = start_scenario(lab, ns, HEALTHY)
    running.load.paused.set()
    try:
        paused = wait_for(
            "paused by the stall timeout",
            lambda: (s := rollout(lab, ns)).get("phase") == "Paused" and s,
            timeout=90,
        )
        assert paused["pausedReason"].startswith("stalled")
        assert paused["lastAnalysis"]["reason"] == "NoTraffic"
        assert paused["step"] == 0 and paused["stepProgressSeconds"] == 0
        assert condition(lab, ns, "RolloutPaused")["status"] == "True"
        time.sleep(6)
        assert rollout(lab, ns)["phase"] == "Paused" and deployment(lab, ns, "v2") is not None
        assert status(lab, ns)["stableVersion"] == "v1"
    finally:
        running.stop()


def test_operator_killed_mid_rollout_resumes_at_the_same_step(lab: Lab) -> None:
    ns = "ro-restart"
    running = start_scenario(lab, ns, HEALTHY)
    try:
        before = wait_for(
            "first step half done",
            lambda: (s := rollout(lab, ns)).get("stepProgressSeconds", 0) >= 3 and s.get("step") == 0 and s,
            timeout=60,
        )
        lab.cluster.operator.kill()
        time.sleep(1)
        lab.cluster.operator.start()
        after_restart = wait_for(
            "the next analysis after the restart",
            lambda: (s := rollout(lab, ns)).get("lastAnalysisAt") != before.get("lastAnalysisAt") and s,
            timeout=60,
        )
        # neither repeated (back to step 1 at 0 s) nor skipped (past step 2)
        assert after_restart["startedAt"] == before["startedAt"]
        assert after_restart["stepStartedAt"] == before["stepStartedAt"] or after_restart["step"] == 1
        assert after_restart["step"] in (0, 1) and after_restart["stepProgressSeconds"] >= (
            before["stepProgressSeconds"] if after_restart["step"] == 0 else 0
        )
        wait_for(
            "promoted after the restart", lambda: rollout(lab, ns).get("phase") == "Promoted", timeout=90
        )
    finally:
        running.stop()
