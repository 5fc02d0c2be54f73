"""Specs that make reconcile fail end in a condition and an Event naming the cause, never only a traceback.

The operator runs with weight snapshots on (as `codepilot run` does by default); these CodePilots fail
before any S3 request, so no S3 server is needed: the credentials Secret cannot be decoded, or the
operator's read of it gets an answer that is not JSON.
"""

from __future__ import annotations

import base64
import time
from collections.abc import Iterator
from typing import Any

import pytest

from codepilot_operator.api.platform import ALLOW_LABEL, ALLOW_VALUE
from tests.e2e.conftest import DRIFT_INTERVAL, Cluster, running_cluster, wait_for
from tests.fixtures.kube import EmulatorThread
from tests.helpers import manifest

SECRET = "s3-credentials"
SECRET_VALUE = "s3cr3t-value-that-must-not-leak"
QUIET = DRIFT_INTERVAL * 3


@pytest.fixture(scope="module")
def snapshotting(
    kube_emulator: EmulatorThread, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Cluster]:
    yield from running_cluster(kube_emulator, tmp_path_factory, "operator-failures", weight_snapshots=True)


def b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode()


def secret(namespace: str, data: dict[str, str]) -> dict[str, Any]:
    """A credentials Secret its owner allows CodePilots to use (the platform's policy needs the label)."""
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": SECRET, "namespace": namespace, "labels": {ALLOW_LABEL: ALLOW_VALUE}},
        "data": data,
    }


def codepilot(namespace: str, **overrides: Any) -> dict[str, Any]:
    # The endpoint is a closed loopback port: a snapshot attempt that gets that far fails fast.
    return manifest(
        **{
            "metadata.namespace": namespace,
            "spec.model.source.credentialsSecret": SECRET,
            "spec.model.source.endpoint": "http://127.0.0.1:9",
            **overrides,
        }
    )


def condition(cluster: Cluster, namespace: str, type_: str, status: str) -> dict[str, Any] | None:
    found = cluster.condition(namespace, type_)
    return found if found and found["status"] == status else None


def everything_said(cluster: Cluster, namespace: str) -> str:
    """Status, Events and the operator's log: where a secret value must never appear."""
    status = str(cluster.codepilot(namespace).get("status"))
    events = " ".join(str(e.get("message")) for e in cluster.events(namespace))
    return f"{status} {events} {cluster.operator.log()}"


def secret_reads(cluster: Cluster, namespace: str, since: int) -> int:
    return len([c for c in cluster.calls(namespace, since) if c.resource == "secrets"])


@pytest.mark.parametrize(
    ("case", "value", "problem"),
    [
        ("bad-base64", SECRET_VALUE + "!", "not valid base64"),
        ("not-utf8", b64(b"\xff\xfe" + SECRET_VALUE.encode()), "not UTF-8"),
    ],
)
def test_undecodable_credentials_secret_is_named_without_its_value(
    snapshotting: Cluster, case: str, value: str, problem: str
) -> None:
    cluster, ns = snapshotting, f"fail-{case}"
    cluster.api.create(
        "secrets", secret(ns, {"AWS_ACCESS_KEY_ID": b64(b"ak"), "AWS_SECRET_ACCESS_KEY": value})
    )
    cluster.api.create("codepilots", codepilot(ns))

    weights = wait_for("WeightsVerified=False", lambda: condition(cluster, ns, "WeightsVerified", "False"))
    assert weights["reason"] == "SnapshotFailed"
    assert "AccessDenied" in weights["message"]
    assert f"Secret {ns}/{SECRET}" in weights["message"] and "AWS_SECRET_ACCESS_KEY" in weights["message"]
    assert problem in weights["message"]
    degraded = cluster.condition(ns, "Degraded")
    assert degraded is not None and (degraded["status"], degraded["reason"]) == ("True", "SnapshotFailed")
    wait_for(
        "a SnapshotFailed Warning Event",
        lambda: any(e["reason"] == "SnapshotFailed" and e["type"] == "Warning" for e in cluster.events(ns)),
    )
    assert cluster.api.list("deployments", ns) == []
    said = everything_said(cluster, ns)
    assert SECRET_VALUE not in said and value not in said
    assert "Traceback" not in cluster.operator.log()

    posted = len(cluster.events(ns))
    mark = cluster.mark()
    time.sleep(QUIET)
    # Retried (every drift interval at most), never in a tight loop; Events only for the transition.
    assert 1 <= secret_reads(cluster, ns, mark) <= QUIET / DRIFT_INTERVAL + 2
    assert len(cluster.events(ns)) == posted


def test_unexpected_error_ends_in_reconcile_error_condition_event_and_metric(snapshotting: Cluster) -> None:
    cluster, ns = snapshotting, "fail-unexpected"
    cluster.api.create(
        "secrets", secret(ns, {"AWS_ACCESS_KEY_ID": b64(b"ak"), "AWS_SECRET_ACCESS_KEY": b64(b"sk")})
    )
    # A proxy in front of the API server answers the operator's read of the Secret with an HTML page:
    # nothing in reconcile expects a body that is not JSON.
    page = b"<html><body>Please log in</body></html>"
    cluster.emulator.call(
        lambda e: e.inject(200, verb="get", resource="secrets", namespace=ns, times=10_000, body=page)
    )
    cluster.api.create("codepilots", codepilot(ns))

    reconciled = wait_for("Reconciled=False", lambda: condition(cluster, ns, "Reconciled", "False"))
    assert reconciled["reason"] == "ReconcileError"
    kind, _, detail = reconciled["message"].partition(": ")
    assert kind.isidentifier() and "JSON" in detail and "\n" not in reconciled["message"], reconciled
    degraded = cluster.condition(ns, "Degraded")
    assert degraded is not None and (degraded["status"], degraded["reason"]) == ("True", "ReconcileError")
    events = wait_for(
        "a ReconcileError Warning Event",
        lambda: [e for e in cluster.events(ns) if e["reason"] == "ReconcileError" and e["type"] == "Warning"],
    )
    assert events[0]["message"] == reconciled["message"]
    assert 'codepilot_reconcile_errors_total{reason="ReconcileError"}' in cluster.operator.metrics()
    assert cluster.api.list("deployments", ns) == []
    assert "Traceback" not in cluster.operator.log()

    posted = len(cluster.events(ns))
    mark = cluster.mark()
    time.sleep(QUIET)
    assert 1 <= secret_reads(cluster, ns, mark) <= QUIET / DRIFT_INTERVAL + 2, "bounded retries"
    assert len(cluster.events(ns)) == posted

    # The proxy is fixed: the next attempt gets past the Secret and the error conditions clear.
    cluster.emulator.call(lambda e: e.faults.clear())
    wait_for(
        "ReconcileError cleared",
        lambda: (c := cluster.condition(ns, "Reconciled")) and c["reason"] != "ReconcileError",
    )
