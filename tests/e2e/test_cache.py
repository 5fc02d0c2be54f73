"""The model cache and the pod options in the running operator: `codepilot run` (emulated API server)
with a real SeaweedFS, and the real fetcher run with the init container's args the operator applied.

The emulator has no kubelet: this test plays it. It runs each pod's init container (`codepilot fetch`
with the Deployment's args, the claim a directory here) and records the container's termination
message in the Pod's status, as the kubelet copies /dev/termination-log there; the operator reads it
back into status.modelCache.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from codepilot_operator.api.platform import ALLOW_LABEL
from codepilot_operator.render.fetcher import CACHE_DIR, FETCH_CONTAINER, TERMINATION_LOG
from tests.e2e.conftest import Cluster, running_cluster, wait_for
from tests.e2e.test_weights import SECRET, _codepilot, _secret
from tests.fixtures.kube import EmulatorThread
from tests.fixtures.s3 import SeaweedFS, minio_client, upload

FILES = {"model.py": b"# tiny model\n", "weights/shard-0.bin": os.urandom(64 * 1024), "tokenizer.json": b"{}"}
CLAIM = "model-cache"


@pytest.fixture(scope="module")
def cluster_with_cache(
    kube_emulator: EmulatorThread, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Cluster]:
    yield from running_cluster(kube_emulator, tmp_path_factory, "operator-cache", weight_snapshots=True)


def _claim(namespace: str, labels: dict[str, str]) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "PersistentVolumeClaim",
        "metadata": {"name": CLAIM, "namespace": namespace, "labels": labels},
        "spec": {"accessModes": ["ReadWriteMany"], "resources": {"requests": {"storage": "100Gi"}}},
    }


def _run_init_container(init: dict[str, Any], server: SeaweedFS, claim: Path, pod: Path) -> str:
    """The kubelet's part: run the init container's command, return its termination message."""
    pod.mkdir()
    here = {CACHE_DIR: str(claim), TERMINATION_LOG: str(pod / "termination-log")}
    args = [next((a.replace(k, v, 1) for k, v in here.items() if a.startswith(k)), a) for a in init["args"]]
    env = {e["name"]: e["value"] for e in init["env"] if "value" in e}
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "S3_"))}
    result = subprocess.run(
        [shutil.which("codepilot") or "codepilot", *args, "--no-progress"],
        env={**clean, **env, **server.env},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    return (pod / "termination-log").read_text()


def _pod(deployment: dict[str, Any], name: str, message: str) -> dict[str, Any]:
    terminated = {"exitCode": 0, "reason": "Completed", "message": message}
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": name,
            "namespace": deployment["metadata"]["namespace"],
            "labels": deployment["spec"]["template"]["metadata"]["labels"],
        },
        "spec": deployment["spec"]["template"]["spec"],
        "status": {
            "phase": "Running",
            "initContainerStatuses": [
                {
                    "name": FETCH_CONTAINER,
                    "ready": True,
                    "restartCount": 0,
                    "state": {"terminated": terminated},
                }
            ],
        },
    }


def test_a_cached_codepilot_mounts_its_claim_and_status_shows_what_each_pod_downloaded(
    cluster_with_cache: Cluster, s3_server: SeaweedFS, s3_bucket: str, tmp_path: Path
) -> None:
    cluster, ns = cluster_with_cache, "cache-ok"
    upload(minio_client(s3_server), s3_bucket, "cached/v1", FILES)
    cluster.api.create("secrets", _secret(ns, s3_server))
    cluster.api.create("persistentvolumeclaims", _claim(ns, {"app": "models"}))
    doc = _codepilot(ns, s3_bucket, "cached/v1", s3_server, "v1")
    doc["spec"]["model"]["cache"] = {"claimName": CLAIM}
    doc["spec"]["runtime"]["env"] = [{"name": "HF_HUB_OFFLINE", "value": "1"}]
    doc["spec"]["runtime"]["podAnnotations"] = {"cluster-autoscaler.kubernetes.io/safe-to-evict": "false"}
    doc["spec"]["runtime"]["topologySpreadConstraints"] = [
        {"maxSkew": 1, "topologyKey": "kubernetes.io/hostname", "whenUnsatisfiable": "ScheduleAnyway"}
    ]
    cluster.api.create("codepilots", doc)

    # The claim's owner has not allowed it: nothing is applied, and the condition says what to do.
    degraded = wait_for("Degraded ClaimNotAllowed", lambda: (c := cluster.condition(ns, "Degraded")) and c)
    assert degraded["reason"] == "ClaimNotAllowed", degraded
    assert (
        f"spec.model.cache.claimName: PersistentVolumeClaim {ns}/{CLAIM} is not allowed for CodePilots"
        in degraded["message"]
    )
    assert f"kubectl label pvc {CLAIM} -n {ns} {ALLOW_LABEL}=true" in degraded["message"]
    assert cluster.api.list("deployments", ns) == []

    cluster.api.patch("persistentvolumeclaims", ns, CLAIM, {"metadata": {"labels": {ALLOW_LABEL: "true"}}})
    pinned = wait_for(
        "the pinned snapshot", lambda: cluster.codepilot(ns).get("status", {}).get("stableSnapshot")
    )
    snapshot = pinned["snapshotId"]
    (deployment,) = cluster.api.list("deployments", ns)
    pod = deployment["spec"]["template"]["spec"]
    assert {"name": "model-cache", "persistentVolumeClaim": {"claimName": CLAIM}} in pod["volumes"]
    (triton,) = pod["containers"]
    assert {
        "name": "model-cache",
        "mountPath": "/models/coder/1",
        "subPath": f"snapshots/{snapshot}",
        "readOnly": True,
    } in triton["volumeMounts"]
    assert {"name": "HF_HUB_OFFLINE", "value": "1"} in triton["env"]
    assert (
        deployment["spec"]["template"]["metadata"]["annotations"][
            "cluster-autoscaler.kubernetes.io/safe-to-evict"
        ]
        == "false"
    )
    assert (
        pod["topologySpreadConstraints"][0]["labelSelector"]["matchLabels"]
        == deployment["spec"]["selector"]["matchLabels"]
    )

    # Two replicas start on the shared claim: the first downloads, the second finds it all there.
    (init,) = pod["initContainers"]
    claim = tmp_path / "claim"
    messages = [_run_init_container(init, s3_server, claim, tmp_path / f"pod-{i}") for i in (1, 2)]
    for index, message in enumerate(messages):
        cluster.api.create("pods", _pod(deployment, f"{deployment['metadata']['name']}-{index}", message))
    cluster.make_ready(ns, deployment["metadata"]["name"])

    size = sum(len(b) for b in FILES.values())
    expected = [
        {
            "version": "v1",
            "claimName": CLAIM,
            "snapshotId": snapshot,
            "pods": 2,
            "downloadedBytes": size,
            "reusedBytes": size,
        }
    ]
    wait_for("status.modelCache", lambda: cluster.codepilot(ns)["status"].get("modelCache") == expected)
    assert (claim / "snapshots" / snapshot / "weights" / "shard-0.bin").read_bytes() == FILES[
        "weights/shard-0.bin"
    ]


def test_a_secret_volume_needs_the_allow_label_like_the_credentials(
    cluster_with_cache: Cluster, s3_server: SeaweedFS, s3_bucket: str
) -> None:
    cluster, ns = cluster_with_cache, "cache-secret-volume"
    upload(minio_client(s3_server), s3_bucket, "cached/v1", FILES)
    cluster.api.create("secrets", _secret(ns, s3_server))
    private = {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": "team-b-token", "namespace": ns},
        "data": {},
    }
    cluster.api.create("secrets", private)
    doc = _codepilot(ns, s3_bucket, "cached/v1", s3_server, "v1")
    doc["spec"]["runtime"]["volumes"] = [{"name": "token", "secret": {"secretName": "team-b-token"}}]
    doc["spec"]["runtime"]["volumeMounts"] = [
        {"name": "token", "mountPath": "/var/run/token", "readOnly": True}
    ]
    cluster.api.create("codepilots", doc)

    degraded = wait_for("Degraded SecretNotAllowed", lambda: (c := cluster.condition(ns, "Degraded")) and c)
    assert degraded["reason"] == "SecretNotAllowed", degraded
    assert (
        f"spec.runtime.volumes[0].secret.secretName: Secret {ns}/team-b-token is not allowed"
        in degraded["message"]
    )
    assert cluster.api.list("deployments", ns) == []
    assert SECRET not in degraded["message"]  # the labelled credentials Secret passed
