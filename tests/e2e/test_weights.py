"""Weight snapshots in the running operator: `codepilot run` (emulated API server) with a real SeaweedFS.

What a platform team relies on: before a version's pods exist, its bytes are snapshotted and verified;
status names the snapshot; the pods fetch exactly that snapshot; S3 trouble stops the rollout with a
condition and an Event instead of half-deploying; going back to earlier content re-pins its snapshot.
"""

from __future__ import annotations

import base64
import time
from collections.abc import Iterator
from typing import Any

import pytest

from codepilot_operator.api.platform import ALLOW_LABEL
from codepilot_operator.loader import parse_codepilot
from codepilot_operator.snapshots.service import Credentials, store_for
from tests.e2e.conftest import DRIFT_INTERVAL, Cluster, running_cluster, wait_for
from tests.fixtures.kube import EmulatorThread
from tests.fixtures.s3 import SeaweedFS, codepilot_doc, minio_client, upload

SECRET = "s3-credentials"
FILES_V1 = {"model.py": b"# tiny model\n", "weights/shard-0.bin": b"\x01" * 4096, "tokenizer.json": b"{}"}
FILES_V2 = {**FILES_V1, "weights/shard-0.bin": b"\x02" * 4096}


@pytest.fixture(scope="module")
def cluster_with_snapshots(
    kube_emulator: EmulatorThread, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Cluster]:
    yield from running_cluster(kube_emulator, tmp_path_factory, "operator-weights", weight_snapshots=True)


def _secret(namespace: str, server: SeaweedFS) -> dict[str, Any]:
    def b64(text: str) -> str:
        return base64.b64encode(text.encode()).decode()

    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": SECRET, "namespace": namespace, "labels": {ALLOW_LABEL: "true"}},
        "data": {
            "AWS_ACCESS_KEY_ID": b64(server.access_key),
            "AWS_SECRET_ACCESS_KEY": b64(server.secret_key),
        },
    }


def _codepilot(namespace: str, bucket: str, prefix: str, server: SeaweedFS, version: str) -> dict[str, Any]:
    doc = codepilot_doc(bucket, prefix, server.endpoint, version=version)
    doc["metadata"]["namespace"] = namespace
    doc["spec"]["model"]["source"]["credentialsSecret"] = SECRET
    return doc


def _weights(cluster: Cluster, namespace: str) -> dict[str, Any] | None:
    return cluster.condition(namespace, "WeightsVerified")


def _init_args(cluster: Cluster, namespace: str) -> list[list[str]]:
    return [
        d["spec"]["template"]["spec"]["initContainers"][0]["args"]
        for d in cluster.api.list("deployments", namespace)
    ]


def test_snapshot_is_pinned_before_pods_and_pods_fetch_it(
    cluster_with_snapshots: Cluster, s3_server: SeaweedFS, s3_bucket: str
) -> None:
    cluster, ns = cluster_with_snapshots, "weights-ok"
    upload(minio_client(s3_server), s3_bucket, "coder/v1", FILES_V1)
    cluster.api.create("secrets", _secret(ns, s3_server))
    cluster.api.create("codepilots", _codepilot(ns, s3_bucket, "coder/v1", s3_server, "v1"))

    condition = wait_for(
        "WeightsVerified=True", lambda: (c := _weights(cluster, ns)) and c["status"] == "True" and c
    )
    assert condition["reason"] == "WeightsVerified"
    pinned = cluster.codepilot(ns)["status"]["stableSnapshot"]
    assert pinned["version"] == "v1"
    assert pinned["sizeBytes"] == sum(len(b) for b in FILES_V1.values())
    assert pinned["snapshotId"] in condition["message"]

    # The snapshot really exists in S3 and verifies (its manifest hashes to the pinned ID).
    store = store_for(
        parse_codepilot(_codepilot(ns, s3_bucket, "coder/v1", s3_server, "v1")),
        Credentials(s3_server.access_key, s3_server.secret_key),
    )
    manifest = store.read_manifest(pinned["snapshotId"])
    assert sorted(f.path for f in manifest.files) == sorted(FILES_V1)

    # The pods fetch the immutable snapshot, not the mutable source prefix.
    (args,) = wait_for("the Deployment", lambda: _init_args(cluster, ns))
    assert any(pinned["snapshotId"] in a for a in args), args
    assert f"s3://{s3_bucket}/coder/v1" not in args

    # Idle drift resyncs reuse the verified pin: no credentials read, so no S3 round of verification.
    mark = cluster.mark()
    time.sleep(DRIFT_INTERVAL * 3)
    assert [c for c in cluster.calls(ns, since=mark) if c.resource == "secrets"] == []
    assert cluster.codepilot(ns)["status"]["stableSnapshot"] == pinned


def test_version_change_pins_the_new_snapshot_and_rollback_re_pins_the_old(
    cluster_with_snapshots: Cluster, s3_server: SeaweedFS, s3_bucket: str
) -> None:
    cluster, ns = cluster_with_snapshots, "weights-rollback"
    client = minio_client(s3_server)
    upload(client, s3_bucket, "coder/v1", FILES_V1)
    upload(client, s3_bucket, "coder/v2", FILES_V2)
    cluster.api.create("secrets", _secret(ns, s3_server))
    doc = _codepilot(ns, s3_bucket, "coder/v1", s3_server, "v1")
    doc["spec"]["rollout"] = {"strategy": "Immediate"}  # promoted once Ready (no canary analysis here)
    cluster.api.create("codepilots", doc)

    def pinned(version: str) -> str | None:
        """The snapshot status pins for ``version``, on whichever track holds it."""
        status = cluster.codepilot(ns).get("status", {})
        for track in (status.get("stableSnapshot") or {}, status.get("canarySnapshot") or {}):
            if track.get("version") == version:
                return str(track.get("snapshotId"))
        return None

    def promote(version: str) -> None:
        """The new version's replicas become Ready: it turns stable and the old one goes."""
        cluster.make_ready(ns, f"coder-{version}")
        wait_for(f"{version} stable", lambda: cluster.codepilot(ns)["status"].get("stableVersion") == version)

    first = wait_for("v1 pinned", lambda: pinned("v1"))
    cluster.make_ready(ns, "coder-v1")

    def move_to(version: str, prefix: str) -> None:
        source = {"uri": f"s3://{s3_bucket}/{prefix}"}
        cluster.api.patch(
            "codepilots", ns, "coder", {"spec": {"model": {"version": version, "source": source}}}
        )

    move_to("v2", "coder/v2")
    second = wait_for("v2 pinned", lambda: pinned("v2"))
    assert second != first  # different bytes, different content address
    assert pinned("v1") == first  # the stable version keeps serving its own snapshot meanwhile
    wait_for(
        "pods fetching v2's snapshot", lambda: any(second in " ".join(a) for a in _init_args(cluster, ns))
    )
    promote("v2")
    wait_for(
        "v2 pinned as stable",
        lambda: cluster.codepilot(ns)["status"]["stableSnapshot"]["snapshotId"] == second,
    )

    move_to("v1", "coder/v1")  # roll back
    assert wait_for("v1 pinned again", lambda: pinned("v1")) == first
    promote("v1")
    assert cluster.codepilot(ns)["status"]["stableSnapshot"]["snapshotId"] == first


def test_missing_bucket_stops_the_rollout_with_a_condition_and_an_event(
    cluster_with_snapshots: Cluster, s3_server: SeaweedFS
) -> None:
    cluster, ns = cluster_with_snapshots, "weights-missing"
    cluster.api.create("secrets", _secret(ns, s3_server))
    cluster.api.create("codepilots", _codepilot(ns, "no-such-bucket", "coder/v1", s3_server, "v1"))

    condition = wait_for(
        "WeightsVerified=False", lambda: (c := _weights(cluster, ns)) and c["status"] == "False" and c
    )
    assert condition["reason"] == "SnapshotFailed"
    assert "BucketMissing" in condition["message"]
    degraded = cluster.condition(ns, "Degraded")
    assert degraded is not None and degraded["status"] == "True" and degraded["reason"] == "SnapshotFailed"
    assert cluster.api.list("deployments", ns) == []  # nothing rolled out without its weights
    events = cluster.events(ns)
    assert any(e.get("reason") == "SnapshotFailed" and e.get("type") == "Warning" for e in events), events
    assert 'codepilot_snapshot_failures_total{codepilot="coder",namespace="weights-missing"}' in (
        cluster.operator.metrics()
    )


def test_missing_credentials_secret_is_named(cluster_with_snapshots: Cluster, s3_server: SeaweedFS) -> None:
    cluster, ns = cluster_with_snapshots, "weights-nosecret"
    cluster.api.create("codepilots", _codepilot(ns, "models", "coder/v1", s3_server, "v1"))
    condition = wait_for(
        "WeightsVerified=False", lambda: (c := _weights(cluster, ns)) and c["status"] == "False" and c
    )
    assert "spec.model.source.credentialsSecret" in condition["message"]
    assert f"{ns}/{SECRET} not found" in condition["message"]
