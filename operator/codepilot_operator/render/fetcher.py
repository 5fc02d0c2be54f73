"""The contract of the weight-fetching init container (``codepilot fetch``).

The init container downloads and verifies the weights into the model repository before Triton starts.
When the version has a snapshot, the pod reads the immutable, content-addressed snapshot rather than
the mutable source prefix, so every replica serves exactly the bytes recorded in status.

With a model cache (``spec.model.cache``), the fetcher writes the snapshot into the claim under
``snapshots/<id>`` and Triton mounts that one directory read-only as its version directory: a snapshot
ID names its bytes, so the directory never changes once complete, two versions' directories coexist,
and a second replica finds the weights there (0 bytes downloaded). The fetcher holds a lock per
snapshot directory on the claim while it writes; a second fetcher waits for it (``--wait``) rather than
failing, then finds the directory complete. A version without a snapshot (fetched from its mutable
source) is never cached: its directory could change under the pods that read it.
"""

from __future__ import annotations

from typing import Any

from codepilot_operator.api import CodePilot
from codepilot_operator.api.contract import (
    ACCESS_KEY_ENV,
    CA_BUNDLE_ENV,
    ENDPOINT_ENV,
    REGION_ENV,
    SECRET_KEY_ENV,
)
from codepilot_operator.api.defaults import required
from codepilot_operator.api.platform import PlatformPolicy
from codepilot_operator.api.pod import (
    MODEL_CACHE_VOLUME,
    MODEL_REPOSITORY,
    MODEL_REPOSITORY_VOLUME,
    S3_CA_VOLUME,
)
from codepilot_operator.api.spec import DEFAULT_REGION, DEFAULT_SNAPSHOT_PREFIX
from codepilot_operator.render.served import ServedVersion
from codepilot_operator.render.tritonconfig import weights_dir

# The init container's name, which kube-state-metrics reports and the weight-fetch alert selects.
FETCH_CONTAINER = "fetch-weights"
CA_DIR = "/etc/codepilot/s3-ca"
CA_FILE = "ca.crt"  # the bundle's name in the volume, whatever its key in the Secret or ConfigMap
# Where the init container sees the model cache claim; Triton sees only its snapshot's directory.
CACHE_DIR = "/cache"
# The kubelet copies this file into the pod's status (the container's termination message): the
# fetcher's summary of what it downloaded and what it found already there.
TERMINATION_LOG = "/dev/termination-log"


def snapshot_prefix(cp: CodePilot) -> str:
    return cp.spec.model.source.snapshot_prefix or DEFAULT_SNAPSHOT_PREFIX  # unresolved: no platform's


def snapshot_root(cp: CodePilot) -> str:
    """The one definition of where a CodePilot's snapshots live in its bucket (snapshots/ uses it too)."""
    return f"{snapshot_prefix(cp)}/{cp.metadata.namespace}/{cp.metadata.name}"


def snapshot_bucket(cp: CodePilot) -> str:
    source = cp.spec.model.source
    return source.snapshot_bucket or source.bucket


def snapshot_uri(cp: CodePilot, snapshot_id: str) -> str:
    """Where a snapshot lives: ``s3://<snapshotBucket>/<snapshotPrefix>/<namespace>/<codepilot>/<id>``."""
    return f"s3://{snapshot_bucket(cp)}/{snapshot_root(cp)}/{snapshot_id}"


def cached_snapshot(cp: CodePilot, served: ServedVersion) -> str | None:
    """The snapshot this version reads from the model cache, or None when it does not use the cache."""
    return served.snapshot_id if cp.spec.model.cache is not None and served.snapshot_id else None


def cache_subpath(snapshot_id: str) -> str:
    """A snapshot's directory in the cache claim: its content address, so versions never share one."""
    return f"snapshots/{snapshot_id}"


def fetch_args(cp: CodePilot, served: ServedVersion) -> list[str]:
    cached = cached_snapshot(cp, served)
    if cached is not None:
        dest = f"{CACHE_DIR}/{cache_subpath(cached)}"
        uri = snapshot_uri(cp, cached)
        return ["fetch", "--dest", dest, "--wait", "--report", TERMINATION_LOG, "--snapshot", uri]
    args = ["fetch", "--dest", weights_dir(cp)]
    if served.snapshot_id:
        return [*args, "--snapshot", snapshot_uri(cp, served.snapshot_id)]
    return [*args, "--source", cp.spec.model.source.uri]


def fetch_env(cp: CodePilot) -> list[dict[str, Any]]:
    source = cp.spec.model.source
    env: list[dict[str, Any]] = [
        {"name": ENDPOINT_ENV, "value": required(source.endpoint, "spec.model.source.endpoint")},
        {"name": REGION_ENV, "value": source.region or DEFAULT_REGION},  # unresolved: no platform's
    ]
    # Without a Secret the pod's web identity (IRSA injects AWS_WEB_IDENTITY_TOKEN_FILE and AWS_ROLE_ARN
    # into every container) or anonymous access applies; clients/s3.py chooses.
    if source.credentials_secret:
        for key in (ACCESS_KEY_ENV, SECRET_KEY_ENV):
            env.append(
                {"name": key, "valueFrom": {"secretKeyRef": {"name": source.credentials_secret, "key": key}}}
            )
    if source.ca_bundle is not None:
        env.append({"name": CA_BUNDLE_ENV, "value": f"{CA_DIR}/{CA_FILE}"})
    return env


def ca_volumes(cp: CodePilot) -> list[dict[str, Any]]:
    """The CA bundle as a volume of one file; none without a bundle."""
    ref = cp.spec.model.source.ca_bundle
    if ref is None:
        return []
    items = [{"key": ref.key, "path": CA_FILE}]
    if ref.secret_name:
        return [{"name": S3_CA_VOLUME, "secret": {"secretName": ref.secret_name, "items": items}}]
    return [{"name": S3_CA_VOLUME, "configMap": {"name": ref.config_map_name, "items": items}}]


def _mounts(cp: CodePilot, served: ServedVersion) -> list[dict[str, Any]]:
    """The cache claim when the version reads from it, else the pod's own model repository; the CA
    bundle beside either."""
    mounts: list[dict[str, Any]] = (
        [{"name": MODEL_CACHE_VOLUME, "mountPath": CACHE_DIR}]
        if cached_snapshot(cp, served) is not None
        else [{"name": MODEL_REPOSITORY_VOLUME, "mountPath": MODEL_REPOSITORY}]
    )
    if cp.spec.model.source.ca_bundle is not None:
        mounts.append({"name": S3_CA_VOLUME, "mountPath": CA_DIR, "readOnly": True})
    return mounts


def fetch_init_container(cp: CodePilot, served: ServedVersion, platform: PlatformPolicy) -> dict[str, Any]:
    """The fetcher runs the platform's image (the operator's own) unless the CodePilot names another,
    which reconcile admits only when the platform allows it: this container holds the S3 credentials."""
    return {
        "name": FETCH_CONTAINER,
        "image": platform.fetcher_image_for(cp.spec.runtime.fetcher_image),
        "imagePullPolicy": cp.spec.runtime.image_pull_policy,
        "command": ["codepilot"],
        "args": fetch_args(cp, served),
        "env": fetch_env(cp),
        "volumeMounts": _mounts(cp, served),
        "resources": {
            "requests": {"cpu": "500m", "memory": "512Mi"},
            "limits": {"cpu": "2", "memory": "1Gi"},
        },
        "securityContext": {
            "allowPrivilegeEscalation": False,
            "readOnlyRootFilesystem": True,
            "runAsNonRoot": True,
            "capabilities": {"drop": ["ALL"]},
        },
    }
