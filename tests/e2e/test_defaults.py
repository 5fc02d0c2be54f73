"""Cluster facts set once in the platform file reach a CodePilot that names only its model's uri, in the
running operator (`codepilot run --platform FILE` against the emulator); status and an Event say which
values came from the platform. Without a platform endpoint, the same CodePilot is refused, naming it."""

from __future__ import annotations

import base64
from collections.abc import Iterator
from typing import Any

import pytest
import yaml

from codepilot_operator.api.platform import ALLOW_LABEL
from tests.e2e.conftest import Cluster, Operator, wait_for
from tests.fixtures.kube import EmulatorThread
from tests.helpers import manifest

PLATFORM = {
    "defaults": {
        "source": {"endpoint": "http://minio.minio.svc:9000", "credentialsSecret": "s3-reader"},
        "tritonImage": "registry.example.com/mirror/tritonserver:25.10",
        "prometheusUrl": "http://prometheus.monitoring.svc:9090",
        "alertLabels": {"release": "kube-prometheus-stack"},
    }
}


@pytest.fixture(scope="module")
def defaulted(kube_emulator: EmulatorThread, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    tmp = tmp_path_factory.mktemp("operator-defaults")
    platform = tmp / "platform.yaml"
    platform.write_text(yaml.safe_dump(PLATFORM))
    operator = Operator(
        kube_emulator.kubeconfig(tmp / "kubeconfig"),
        tmp,
        extra_args=("--platform", str(platform)),
    )
    operator.start()
    try:
        yield Cluster(kube_emulator, operator)
    finally:
        operator.stop()


def uri_only(namespace: str) -> dict[str, Any]:
    doc = manifest(**{"metadata.namespace": namespace})
    del doc["spec"]["model"]["source"]["endpoint"]
    return doc


def reader_secret(namespace: str) -> dict[str, Any]:
    value = base64.b64encode(b"not-a-real-key").decode()
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": "s3-reader", "namespace": namespace, "labels": {ALLOW_LABEL: "true"}},
        "data": {"AWS_ACCESS_KEY_ID": value, "AWS_SECRET_ACCESS_KEY": value},
    }


def test_a_codepilot_with_only_a_uri_is_served_with_the_platform_defaults(defaulted: Cluster) -> None:
    cluster, ns = defaulted, "defaults-uri-only"
    cluster.api.create("secrets", reader_secret(ns))
    cluster.api.create("codepilots", uri_only(ns))

    status = wait_for("status.defaults", lambda: cluster.codepilot(ns).get("status", {}).get("defaults"))
    used = {d["field"]: (d["value"], d["from"]) for d in status}
    assert used["spec.model.source.endpoint"] == ("http://minio.minio.svc:9000", "Platform")
    assert used["spec.model.source.credentialsSecret"] == ("s3-reader", "Platform")
    assert used["spec.runtime.image"] == ("registry.example.com/mirror/tritonserver:25.10", "Platform")
    assert used["spec.rollout.analysis.prometheusUrl"] == (
        "http://prometheus.monitoring.svc:9090",
        "Platform",
    )
    assert used["spec.model.source.region"] == ("us-east-1", "Operator")

    deployment = cluster.api.get("deployments", ns, "coder-v1")
    pod = deployment["spec"]["template"]["spec"]
    env = {e["name"]: e.get("value", e.get("valueFrom")) for e in pod["initContainers"][0]["env"]}
    assert env["S3_ENDPOINT"] == "http://minio.minio.svc:9000"
    assert env["AWS_ACCESS_KEY_ID"] == {"secretKeyRef": {"name": "s3-reader", "key": "AWS_ACCESS_KEY_ID"}}
    assert pod["containers"][0]["image"] == "registry.example.com/mirror/tritonserver:25.10"
    monitor = cluster.api.get("servicemonitors", ns, "coder")
    assert monitor["metadata"]["labels"]["release"] == "kube-prometheus-stack"

    events = wait_for(
        "a Defaulted Event", lambda: [e for e in cluster.events(ns) if e.get("reason") == "Defaulted"]
    )
    assert events[0]["type"] == "Normal"
    assert "spec.model.source.endpoint=http://minio.minio.svc:9000" in events[0]["message"]
    assert "from platform defaults" in events[0]["message"]
    assert "spec.model.source.region" not in events[0]["message"]  # the operator's own: status only
    assert cluster.condition(ns, "Reconciled")["status"] == "True"  # type: ignore[index]


def test_the_codepilots_own_endpoint_wins_and_status_says_so(defaulted: Cluster) -> None:
    cluster, ns = defaulted, "defaults-own-endpoint"
    cluster.api.create("codepilots", manifest(**{"metadata.namespace": ns}))  # endpoint http://minio:9000

    wait_for("Reconciled", lambda: (c := cluster.condition(ns, "Reconciled")) and c["status"] == "True")
    deployment = cluster.api.get("deployments", ns, "coder-v1")
    env = {
        e["name"]: e.get("value") for e in deployment["spec"]["template"]["spec"]["initContainers"][0]["env"]
    }
    assert env["S3_ENDPOINT"] == "http://minio:9000"
    assert "AWS_ACCESS_KEY_ID" not in env  # the platform's Secret belongs to the platform's endpoint
    fields = {d["field"] for d in cluster.codepilot(ns)["status"]["defaults"]}
    assert "spec.model.source.endpoint" not in fields
    assert "spec.model.source.credentialsSecret" not in fields


def test_a_refused_default_says_it_is_the_platforms(defaulted: Cluster) -> None:
    """The team never wrote credentialsSecret: the refusal must say where it came from and what to do."""
    cluster, ns = defaulted, "defaults-no-secret"
    cluster.api.create("codepilots", uri_only(ns))

    degraded = wait_for(
        "Degraded=True", lambda: (c := cluster.condition(ns, "Degraded")) and c["status"] == "True" and c
    )
    assert degraded["reason"] == "SecretNotFound"
    assert (
        f"spec.model.source.credentialsSecret: Secret {ns}/s3-reader not found (the platform's default, "
        "chart value defaults.source.credentialsSecret)"
    ) in degraded["message"]
