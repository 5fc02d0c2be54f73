"""The platform's policy in the running operator: `codepilot run --platform FILE` against the emulator.

The threat: a team that may only edit CodePilots in its namespace (the `codepilot-editor` role) names a
Secret it cannot read, an image that prints its environment, a privileged ServiceAccount or a high
PriorityClass, and lets the operator build the pod for it. Each is refused before anything is applied,
with a condition and a Warning Event naming the field and what to do; what the platform allows is served.
"""

from __future__ import annotations

import base64
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from codepilot_operator.api.platform import ALLOW_LABEL
from tests.e2e.conftest import Cluster, Operator, wait_for
from tests.fixtures.kube import EmulatorThread
from tests.helpers import manifest

PLATFORM = {
    "fetcherImage": "registry.example.com/platform/codepilot-operator:2.0.0",
    "allowedFetcherImages": ["registry.example.com/platform/fetchers/*"],
    "allowedServiceAccounts": ["inference"],
    "allowedPriorityClasses": ["inference-critical"],
}
SECRET = "s3-credentials"


@pytest.fixture(scope="module")
def policed(kube_emulator: EmulatorThread, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    tmp = tmp_path_factory.mktemp("operator-policy")
    platform = tmp / "platform.yaml"
    platform.write_text(yaml.safe_dump(PLATFORM))
    operator = Operator(
        kube_emulator.kubeconfig(tmp / "kubeconfig"), tmp, extra_args=("--platform", str(platform))
    )
    operator.start()
    try:
        yield Cluster(kube_emulator, operator)
    finally:
        operator.stop()


def secret(namespace: str, labels: dict[str, str] | None = None) -> dict[str, Any]:
    value = base64.b64encode(b"not-a-real-key").decode()
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": SECRET, "namespace": namespace, "labels": labels or {}},
        "data": {"AWS_ACCESS_KEY_ID": value, "AWS_SECRET_ACCESS_KEY": value},
    }


def condition(cluster: Cluster, namespace: str, kind: str, status: str) -> dict[str, Any] | None:
    found = cluster.condition(namespace, kind)
    return found if found is not None and found["status"] == status else None


def warnings(cluster: Cluster, namespace: str, reason: str) -> list[dict[str, Any]]:
    return [e for e in cluster.events(namespace) if e.get("type") == "Warning" and e.get("reason") == reason]


def test_an_unlabelled_secret_is_refused_until_its_owner_allows_it(policed: Cluster) -> None:
    cluster, ns = policed, "policy-secret"
    cluster.api.create("secrets", secret(ns, {"app": "minio"}))
    cluster.api.create(
        "codepilots", manifest(**{"metadata.namespace": ns, "spec.model.source.credentialsSecret": SECRET})
    )

    degraded = wait_for("Degraded=True", lambda: condition(cluster, ns, "Degraded", "True"))
    assert degraded["reason"] == "SecretNotAllowed"
    assert f"spec.model.source.credentialsSecret: Secret {ns}/{SECRET} is not allowed" in degraded["message"]
    weights = condition(cluster, ns, "WeightsVerified", "False")
    assert weights is not None and weights["reason"] == "SecretNotAllowed"
    events = wait_for("a Warning Event", lambda: warnings(cluster, ns, "SecretNotAllowed"))
    assert all(f"kubectl label secret {SECRET} -n {ns} {ALLOW_LABEL}=true" in e["message"] for e in events)
    assert cluster.api.list("deployments", ns) == [], "no pod template references the Secret"

    # Its owner allows it: the next resync serves the CodePilot, with the Secret in the fetcher's env.
    cluster.api.patch("secrets", ns, SECRET, {"metadata": {"labels": {ALLOW_LABEL: "true"}}})
    (deployment,) = wait_for("the Deployment", lambda: cluster.api.list("deployments", ns))
    fetch = deployment["spec"]["template"]["spec"]["initContainers"][0]
    refs = {e["valueFrom"]["secretKeyRef"]["name"] for e in fetch["env"] if "valueFrom" in e}
    assert refs == {SECRET}
    assert fetch["image"] == PLATFORM["fetcherImage"], "the fetcher runs the image the operator is given"
    wait_for("Degraded=False", lambda: condition(cluster, ns, "Degraded", "False"))


def test_a_missing_secret_is_refused(policed: Cluster) -> None:
    cluster, ns = policed, "policy-nosecret"
    cluster.api.create(
        "codepilots", manifest(**{"metadata.namespace": ns, "spec.model.source.credentialsSecret": SECRET})
    )
    degraded = wait_for("Degraded=True", lambda: condition(cluster, ns, "Degraded", "True"))
    assert degraded["reason"] == "SecretNotFound" and f"{ns}/{SECRET} not found" in degraded["message"]
    assert cluster.api.list("deployments", ns) == []


def test_fetcher_image_service_account_and_priority_class_outside_the_policy_are_refused(
    policed: Cluster,
) -> None:
    cluster, ns = policed, "policy-runtime"
    runtime = {
        "fetcherImage": "attacker.example/print-env:1",
        "serviceAccountName": "ci-deployer",
        "priorityClassName": "system-cluster-critical",
    }
    cluster.api.create("codepilots", manifest(**{"metadata.namespace": ns, "spec.runtime": runtime}))
    degraded = wait_for("Degraded=True", lambda: condition(cluster, ns, "Degraded", "True"))
    assert degraded["reason"] == "ImageNotAllowed"
    for field in ("fetcherImage", "serviceAccountName", "priorityClassName"):
        assert f"spec.runtime.{field}: " in degraded["message"]
    reconciled = cluster.condition(ns, "Reconciled")
    assert reconciled is not None and reconciled["status"] == "False"
    assert wait_for("a Warning Event", lambda: warnings(cluster, ns, "ImageNotAllowed"))
    assert cluster.api.list("deployments", ns) == []

    allowed = {
        "fetcherImage": "registry.example.com/platform/fetchers/fetch:3",
        "serviceAccountName": "inference",
        "priorityClassName": "inference-critical",
    }
    cluster.api.patch("codepilots", ns, "coder", {"spec": {"runtime": allowed}})
    (deployment,) = wait_for("the Deployment", lambda: cluster.api.list("deployments", ns))
    pod = deployment["spec"]["template"]["spec"]
    assert pod["serviceAccountName"] == "inference" and pod["priorityClassName"] == "inference-critical"
    assert pod["initContainers"][0]["image"] == allowed["fetcherImage"]


def test_a_bad_platform_file_stops_the_operator_with_one_line(tmp_path: Path) -> None:
    import subprocess
    import sys

    platform = tmp_path / "platform.yaml"
    platform.write_text("allowedServiceAccounts: [Not_A_Name]\n")
    result = subprocess.run(
        [sys.executable, "-m", "codepilot_operator.cli", "run", "--platform", str(platform)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 2
    (line,) = result.stderr.splitlines()
    assert line.startswith(f"error: --platform {platform}: allowedServiceAccounts[0]: ")
