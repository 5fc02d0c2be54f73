"""An https S3 endpoint signed by a private CA, set once by the platform: the operator reads the CA from
the CodePilot's namespace for its own S3 calls (the weight snapshot) and mounts it into the fetcher."""

from __future__ import annotations

import base64
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
import yaml

from codepilot_operator.api.platform import ALLOW_LABEL
from tests.e2e.conftest import Cluster, Operator, wait_for
from tests.e2e.test_defaults import uri_only
from tests.fixtures.kube import EmulatorThread
from tests.fixtures.s3 import SeaweedFS, minio_client, running_seaweedfs, upload
from tests.fixtures.tls import PrivateCA, make_private_ca

# --- an https endpoint with a private CA, set once by the platform ------------------------------------


@pytest.fixture(scope="module")
def private_ca(tmp_path_factory: pytest.TempPathFactory) -> PrivateCA:
    return make_private_ca(tmp_path_factory.mktemp("private-ca"))


@pytest.fixture(scope="module")
def tls_server(private_ca: PrivateCA) -> Iterator[SeaweedFS]:
    yield from running_seaweedfs("codepilot-s3-tls-", tls=private_ca.tls)


@pytest.fixture(scope="module")
def tls_platform(
    kube_emulator: EmulatorThread, tmp_path_factory: pytest.TempPathFactory, tls_server: SeaweedFS
) -> Iterator[Cluster]:
    """The operator snapshots weights itself (its own S3 client), with the platform's https endpoint."""
    tmp = tmp_path_factory.mktemp("operator-defaults-tls")
    platform = tmp / "platform.yaml"
    source = {
        "endpoint": tls_server.endpoint,
        "credentialsSecret": "s3-keys",
        "caBundle": {"configMapName": "s3-ca"},
    }
    platform.write_text(yaml.safe_dump({"defaults": {"source": source}}))
    operator = Operator(
        kube_emulator.kubeconfig(tmp / "kubeconfig"),
        tmp,
        extra_args=("--platform", str(platform)),
        weight_snapshots=True,
    )
    operator.start()
    try:
        yield Cluster(kube_emulator, operator)
    finally:
        operator.stop()


def _keys(namespace: str, server: SeaweedFS) -> dict[str, Any]:
    def b64(text: str) -> str:
        return base64.b64encode(text.encode()).decode()

    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": "s3-keys", "namespace": namespace, "labels": {ALLOW_LABEL: "true"}},
        "data": {
            "AWS_ACCESS_KEY_ID": b64(server.access_key),
            "AWS_SECRET_ACCESS_KEY": b64(server.secret_key),
        },
    }


def _uri_only_at(namespace: str, uri: str) -> dict[str, Any]:
    doc = uri_only(namespace)
    doc["spec"]["model"]["source"]["uri"] = uri
    return doc


def test_the_operator_trusts_the_platforms_ca_for_its_own_s3_calls(
    tls_platform: Cluster, tls_server: SeaweedFS, private_ca: PrivateCA
) -> None:
    cluster, ns = tls_platform, "defaults-tls"
    bucket = f"t-{uuid.uuid4().hex[:20]}"
    client = minio_client(tls_server)
    client.make_bucket(bucket)
    upload(client, bucket, "coder/v1", {"model.py": b"# tiny\n", "weights.bin": b"\x07" * 4096})
    cluster.api.create("secrets", _keys(ns, tls_server))
    ca_map = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "s3-ca", "namespace": ns}}
    cluster.api.create("configmaps", {**ca_map, "data": {"ca.crt": private_ca.ca_pem}})
    cluster.api.create("codepilots", _uri_only_at(ns, f"s3://{bucket}/coder/v1"))

    verified = wait_for("WeightsVerified", lambda: (c := cluster.condition(ns, "WeightsVerified")) and c)
    assert verified["status"] == "True", verified
    pod = cluster.api.get("deployments", ns, "coder-v1")["spec"]["template"]["spec"]
    fetch = pod["initContainers"][0]
    assert {"name": "AWS_CA_BUNDLE", "value": "/etc/codepilot/s3-ca/ca.crt"} in fetch["env"]
    assert {
        "name": "s3-ca",
        "configMap": {"name": "s3-ca", "items": [{"key": "ca.crt", "path": "ca.crt"}]},
    } in pod["volumes"]


def test_without_the_ca_the_weights_are_not_verified_and_status_says_why(
    tls_platform: Cluster, tls_server: SeaweedFS
) -> None:
    cluster, ns = tls_platform, "defaults-tls-no-ca"
    cluster.api.create("secrets", _keys(ns, tls_server))
    cluster.api.create("codepilots", _uri_only_at(ns, "s3://models/coder/v1"))

    failed = wait_for(
        "WeightsVerified=False",
        lambda: (c := cluster.condition(ns, "WeightsVerified")) and c["status"] == "False" and c,
    )
    assert f"spec.model.source.caBundle: ConfigMap {ns}/s3-ca not found" in failed["message"]
    assert cluster.api.list("deployments", ns) == []
