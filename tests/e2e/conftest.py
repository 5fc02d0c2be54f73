"""The operator as a user runs it: a `codepilot run` process talking HTTP to the Kubernetes emulator."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import pytest

from codepilot_operator.api import GROUP, VERSION
from tests.fixtures.kube import Call, EmulatorThread

T = TypeVar("T")
DRIFT_INTERVAL = 2.0  # seconds; short so drift tests finish quickly (the default is 60)
PROGRESS_INTERVAL = 1.5  # status refresh while not Ready (the default is 15)
WAIT = 30.0  # upper bound for anything the operator should do within a few drift intervals


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for(what: str, fn: Callable[[], T | None], timeout: float = WAIT) -> T:
    """Poll until ``fn`` returns something truthy; fail naming ``what`` after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    last: T | None = None
    while time.monotonic() < deadline:
        last = fn()
        if last:
            return last
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}; last value: {last!r}")


class Api:
    """A cluster admin's plain HTTP client (kubectl's role in these tests)."""

    def __init__(self, url: str):
        self.url = url

    def request(
        self, method: str, path: str, body: Any = None, content_type: str = "application/json"
    ) -> Any:
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(
            self.url + path, method=method, data=data, headers={"Content-Type": content_type}
        )
        try:
            with urllib.request.urlopen(req, timeout=10) as resp:
                return json.loads(resp.read() or b"null")
        except urllib.error.HTTPError as exc:
            if exc.code == 404:
                return None
            raise

    @staticmethod
    def path(plural: str, namespace: str, name: str | None = None) -> str:
        base = {
            "codepilots": f"/apis/{GROUP}/{VERSION}",
            "deployments": "/apis/apps/v1",
            "horizontalpodautoscalers": "/apis/autoscaling/v2",
            "poddisruptionbudgets": "/apis/policy/v1",
            "servicemonitors": "/apis/monitoring.coreos.com/v1",
            "prometheusrules": "/apis/monitoring.coreos.com/v1",
            "scaledobjects": "/apis/keda.sh/v1alpha1",
            "httproutes": "/apis/gateway.networking.k8s.io/v1",
        }.get(plural, "/api/v1")
        path = f"{base}/namespaces/{namespace}/{plural}"
        return f"{path}/{name}" if name else path

    def create(self, plural: str, obj: dict[str, Any]) -> Any:
        return self.request("POST", self.path(plural, obj["metadata"]["namespace"]), obj)

    def get(self, plural: str, namespace: str, name: str) -> Any:
        return self.request("GET", self.path(plural, namespace, name))

    def list(self, plural: str, namespace: str) -> list[dict[str, Any]]:
        return list(self.request("GET", self.path(plural, namespace))["items"])

    def patch(self, plural: str, namespace: str, name: str, patch: dict[str, Any]) -> Any:
        return self.request(
            "PATCH", self.path(plural, namespace, name), patch, "application/merge-patch+json"
        )

    def delete(self, plural: str, namespace: str, name: str) -> Any:
        return self.request("DELETE", self.path(plural, namespace, name))


class Operator:
    """`codepilot run` as a subprocess; restartable (kill -9) to test a crash and a fresh start."""

    def __init__(
        self,
        kubeconfig: Path,
        log_dir: Path,
        drift_interval: float = DRIFT_INTERVAL,
        extra_args: tuple[str, ...] = (),
        progress_interval: float = PROGRESS_INTERVAL,
        weight_snapshots: bool = False,
        metrics_auth: str = "none",
    ):
        self.kubeconfig = kubeconfig
        self.drift_interval = drift_interval
        self.extra_args = extra_args
        self.progress_interval = progress_interval
        # Off for the reconcile-mechanics tests (their CodePilots point at no S3 server); on, against a
        # real SeaweedFS, in test_weights.py. `codepilot run` itself defaults to on.
        self.weight_snapshots = weight_snapshots
        # Off for the tests that read /metrics as a plain client; tests/e2e/test_metrics_auth.py turns it on
        # (`codepilot run` and the chart default to kubernetes).
        self.metrics_auth = metrics_auth
        self.name = kubeconfig.stem if kubeconfig.stem != "kubeconfig" else "operator"
        self.log_dir = log_dir
        self.metrics_port = 0
        self.proc: subprocess.Popen[bytes] | None = None
        self.starts = 0

    def start(self) -> None:
        self.starts += 1
        self.metrics_port = free_port()
        log = (self.log_dir / f"{self.name}-{self.starts}.log").open("wb")
        cmd = [sys.executable, "-m", "codepilot_operator.cli", "run", "--kubeconfig", str(self.kubeconfig)]
        cmd += [
            "--drift-interval",
            str(self.drift_interval),
            "--progress-interval",
            str(self.progress_interval),
        ]
        cmd += ["--weight-snapshots" if self.weight_snapshots else "--no-weight-snapshots"]
        cmd += ["--metrics-host", "127.0.0.1", "--metrics-auth", self.metrics_auth]
        cmd += ["--metrics-port", str(self.metrics_port), *self.extra_args]
        self.proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env={**os.environ})
        wait_for("the operator's /readyz", self.ready)

    def ready(self) -> bool:
        if self.proc is not None and self.proc.poll() is not None:
            raise AssertionError(f"the operator exited with {self.proc.returncode}: {self.log()}")
        try:
            return self.http("/readyz") == 200
        except OSError:
            return False

    def http(self, path: str) -> int:
        with urllib.request.urlopen(f"http://127.0.0.1:{self.metrics_port}{path}", timeout=5) as resp:
            return int(resp.status)

    def metrics(self) -> str:
        with urllib.request.urlopen(f"http://127.0.0.1:{self.metrics_port}/metrics", timeout=5) as resp:
            return str(resp.read().decode())

    def log(self) -> str:
        return (self.log_dir / f"{self.name}-{self.starts}.log").read_text(errors="replace")[-4000:]

    def kill(self) -> None:
        """SIGKILL: no graceful shutdown, like a node failure or an OOM kill."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(10)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.kill()


class Cluster:
    """The emulator, an admin client and the operator, with request accounting."""

    def __init__(self, emulator: EmulatorThread, operator: Operator):
        self.emulator = emulator
        self.api = Api(emulator.url)
        self.operator = operator

    def calls(self, namespace: str | None = None, since: int = 0) -> list[Call]:
        calls = self.emulator.call(lambda e: list(e.calls))[since:]
        return [c for c in calls if namespace is None or c.namespace == namespace]

    def mark(self) -> int:
        return len(self.emulator.call(lambda e: e.calls))

    def writes(self, namespace: str, since: int = 0) -> list[Call]:
        """Successful writes the operator made in ``namespace`` (Events excluded: they are not state)."""
        return [
            c for c in self.calls(namespace, since) if c.write and c.resource != "events" and c.status < 300
        ]

    def codepilot(self, namespace: str, name: str = "coder") -> dict[str, Any]:
        obj = self.api.get("codepilots", namespace, name)
        assert obj is not None, f"CodePilot {namespace}/{name} is gone"
        return dict(obj)

    def condition(self, namespace: str, type_: str, name: str = "coder") -> dict[str, Any] | None:
        for condition in self.codepilot(namespace, name).get("status", {}).get("conditions", []):
            if condition["type"] == type_:
                return dict(condition)
        return None

    def make_ready(self, namespace: str, deployment: str) -> None:
        """What the Deployment controller reports once every replica passed its readiness probe."""
        live = self.api.get("deployments", namespace, deployment)
        assert live is not None, f"no Deployment {namespace}/{deployment}"
        status = {
            "observedGeneration": live["metadata"]["generation"],
            "replicas": 1,
            "readyReplicas": 1,
            "updatedReplicas": 1,
        }
        self.api.patch("deployments", namespace, deployment, {"status": status})

    def events(self, namespace: str) -> list[dict[str, Any]]:
        return self.api.list("events", namespace)


def running_cluster(
    kube_emulator: EmulatorThread, tmp_path_factory: pytest.TempPathFactory, name: str, **options: Any
) -> Iterator[Cluster]:
    """A module's own operator process (``options`` as :class:`Operator` takes them) on the emulator."""
    tmp = tmp_path_factory.mktemp(name)
    operator = Operator(kube_emulator.kubeconfig(tmp / "kubeconfig"), tmp, **options)
    operator.start()
    try:
        yield Cluster(kube_emulator, operator)
    finally:
        operator.stop()


@pytest.fixture(scope="module")
def cluster(kube_emulator: EmulatorThread, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    yield from running_cluster(kube_emulator, tmp_path_factory, "operator")
