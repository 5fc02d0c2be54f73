"""The contract of the weight-fetching init container (``codepilot fetch``).

The init container downloads and verifies the weights into the model repository before Triton starts.
When the version has a snapshot, the pod reads the immutable, content-addressed snapshot rather than
the mutable source prefix, so every replica serves exactly the bytes recorded in status.
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
from codepilot_operator.api.spec import DEFAULT_REGION, DEFAULT_SNAPSHOT_PREFIX
from codepilot_operator.render.served import ServedVersion
from codepilot_operator.render.tritonconfig import weights_dir

# The init container's name, which kube-state-metrics reports and the weight-fetch alert selects.
FETCH_CONTAINER = "fetch-weights"
CA_VOLUME = "s3-ca"
CA_DIR = "/etc/codepilot/s3-ca"
CA_FILE = "ca.crt"  # the bundle's name in the volume, whatever its key in the Secret or ConfigMap


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


def fetch_args(cp: CodePilot, served: ServedVersion) -> list[str]:
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
        return [{"name": CA_VOLUME, "secret": {"secretName": ref.secret_name, "items": items}}]
    return [{"name": CA_VOLUME, "configMap": {"name": ref.config_map_name, "items": items}}]


def _mounts(cp: CodePilot) -> list[dict[str, Any]]:
    mounts: list[dict[str, Any]] = [{"name": "model-repository", "mountPath": "/models"}]
    if cp.spec.model.source.ca_bundle is not None:
        mounts.append({"name": CA_VOLUME, "mountPath": CA_DIR, "readOnly": True})
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
        "volumeMounts": _mounts(cp),
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
