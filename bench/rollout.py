"""How fast the rollout reacts, with real Triton, real Prometheus and the operator as a process.

    python3 bench/rollout.py [--rounds 3] [--interval 3] [--pause 6]

Two measures, each over ``--rounds`` rollouts (two Triton servers stand in for v1 and v2; the API
emulator with a thread playing the kubelet; load split by Ready replicas, as behind the entry Service):

- reaction: v2 starts healthy; once the first step's weight took effect, v2 starts failing 60 % of its
  requests. From the first moment the breach is visible in Prometheus (the canary's error ratio over the
  window is above maxErrorRate in a query the bench makes every 0.2 s) to the rollback decision (the
  time of the failing analysis in status). failureLimit is 1. Goal: at most one analysis interval + 10 s.
- healthy: the time from the version change to Promoted, over the sum of the steps' pauses.
"""

from __future__ import annotations

import argparse
import copy
import shutil
import statistics
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from tests.e2e.conftest import Api, Operator  # noqa: E402
from tests.fixtures.kube import EmulatorThread  # noqa: E402
from tests.fixtures.prometheus import PrometheusServer  # noqa: E402
from tests.fixtures.rollout_lab import Kubelet, Load, ready_split, scrape_configs, set_behaviour  # noqa: E402
from tests.fixtures.triton import TRITON_CODEPILOT, TritonServer, start_triton  # noqa: E402

from codepilot_operator.loader import parse_codepilot  # noqa: E402

NAME = "coder"
MAX_ERROR_RATE = 0.05


def codepilot(namespace: str, version: str, interval: float, pause: float) -> dict[str, Any]:
    doc = copy.deepcopy(TRITON_CODEPILOT)
    doc["metadata"] = {"name": NAME, "namespace": namespace}
    doc["spec"]["model"]["version"] = version
    doc["spec"]["autoscaling"] = {"minReplicas": 4, "maxReplicas": 4}
    doc["spec"]["rollout"] = {
        "strategy": "Canary",
        "steps": [{"weight": 25, "pause": f"{pause:g}s"}, {"weight": 50, "pause": f"{pause:g}s"}],
        "analysis": {
            "interval": f"{interval:g}s",
            "minRequests": 5,
            "failureLimit": 1,
            "maxErrorRate": MAX_ERROR_RATE,
            "maxLatencyRatio": 2.0,
            "stallTimeout": "5m",
        },
    }
    return doc


def wait(what: str, fn: Any, timeout: float = 120.0, every: float = 0.2) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = fn()
        if value:
            return value
        time.sleep(every)
    raise SystemExit(f"timed out waiting for {what}")


def rollout_state(api: Api, namespace: str) -> dict[str, Any]:
    live = api.get("codepilots", namespace, NAME) or {}
    return dict((live.get("status") or {}).get("rollout") or {})


def ready(api: Api, namespace: str) -> bool:
    live = api.get("codepilots", namespace, NAME) or {}
    conditions = (live.get("status") or {}).get("conditions") or []
    return any(c.get("type") == "Ready" and c.get("status") == "True" for c in conditions)


def breach_visible(prometheus: PrometheusServer, namespace: str, window: float) -> bool:
    scope = f'namespace="{namespace}", codepilot="{NAME}", version="v2"'
    w = f"{max(1, round(window))}s"
    expr = (
        f'sum(increase(nv_inference_request_failure{{{scope}, reason!="CANCELED"}}[{w}])) / '
        f"(sum(increase(nv_inference_request_success{{{scope}}}[{w}])) + "
        f'sum(increase(nv_inference_request_failure{{{scope}, reason!="CANCELED"}}[{w}])))'
    )
    result = prometheus.query(expr)
    return bool(result) and float(result[0]["value"][1]) > MAX_ERROR_RATE


def one_rollout(
    api: Api,
    servers: dict[str, TritonServer],
    prometheus: PrometheusServer,
    namespace: str,
    args: Any,
    fail: bool,
) -> float:
    set_behaviour(servers["v1"], work_seconds=0.01)
    set_behaviour(servers["v2"], work_seconds=0.01)
    kubelet = Kubelet(api, namespace, delay=1.0)
    kubelet.start()
    load = Load(servers, lambda: ready_split(api, namespace, NAME, ["v1", "v2"]), rate=30)
    try:
        api.create("codepilots", codepilot(namespace, "v1", args.interval, args.pause))
        wait("v1 Ready", lambda: ready(api, namespace))
        load.start()
        time.sleep(2)
        changed = time.monotonic()
        api.patch("codepilots", namespace, NAME, {"spec": {"model": {"version": "v2"}}})
        if not fail:
            wait("promoted", lambda: rollout_state(api, namespace).get("phase") == "Promoted", timeout=600)
            return time.monotonic() - changed
        wait("the first step's weight in effect", lambda: rollout_state(api, namespace).get("stepStartedAt"))
        set_behaviour(servers["v2"], work_seconds=0.01, fail_ratio=0.6)
        visible = wait(
            "the breach visible in Prometheus", lambda: breach_visible(prometheus, namespace, args.interval)
        )
        visible_at = time.time()
        state = wait(
            "rolled back",
            lambda: (s := rollout_state(api, namespace)).get("phase") == "RolledBack" and s,
            timeout=300,
        )
        assert visible
        decided_at = datetime.fromisoformat(state["lastAnalysis"]["time"].replace("Z", "+00:00")).timestamp()
        return decided_at - visible_at
    finally:
        load.stop()
        kubelet.stopped.set()
        kubelet.join(10)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--interval", type=float, default=3.0, help="analysis interval, seconds")
    parser.add_argument("--pause", type=float, default=6.0, help="pause of each of the two steps, seconds")
    args = parser.parse_args()
    namespaces = [f"bench-{kind}-{i}" for kind in ("fail", "ok") for i in range(args.rounds)]
    work = Path(tempfile.mkdtemp(prefix="codepilot-bench-rollout-"))
    emulator = EmulatorThread().start()
    servers: dict[str, TritonServer] = {}
    prometheus = operator = None
    try:
        for version in ("v1", "v2"):
            (work / version).mkdir()
            servers[version] = start_triton(parse_codepilot(codepilot("lab", version, 1, 1)), work / version)
        jobs = []
        for ns in namespaces:
            for job in scrape_configs(servers, ns, NAME):
                job["job_name"] += f"-{ns}"
                jobs.append(job)
        (work / "prometheus").mkdir()
        prometheus = PrometheusServer(work / "prometheus", jobs, [])
        (work / "operator").mkdir()
        operator = Operator(
            emulator.kubeconfig(work / "operator" / "kubeconfig"),
            work / "operator",
            drift_interval=30.0,
            extra_args=("--prometheus-url", prometheus.url),
        )
        operator.start()
        api = Api(emulator.url)
        reactions = [
            one_rollout(api, servers, prometheus, ns, args, True) for ns in namespaces[: args.rounds]
        ]
        healthy = [one_rollout(api, servers, prometheus, ns, args, False) for ns in namespaces[args.rounds :]]
    finally:
        if operator is not None:
            operator.stop()
        if prometheus is not None:
            prometheus.stop()
        for server in servers.values():
            server.stop()
        emulator.stop()
        shutil.rmtree(work, ignore_errors=True)
    pauses = 2 * args.pause
    print(
        f"analysis interval {args.interval:g}s, two steps of {args.pause:g}s, failureLimit 1, "
        f"{args.rounds} rounds"
    )
    print(
        "  reaction, breach visible in Prometheus -> rollback decision: "
        f"median {statistics.median(reactions):.1f}s "
        f"(each: {', '.join(f'{r:.1f}' for r in reactions)}; goal <= {args.interval + 10:g}s)"
    )
    print(
        f"  healthy rollout, version change -> Promoted: median {statistics.median(healthy):.1f}s over "
        f"{pauses:g}s of pauses = {statistics.median(healthy) / pauses:.2f}x "
        f"(each: {', '.join(f'{h:.1f}' for h in healthy)})"
    )


if __name__ == "__main__":
    main()
