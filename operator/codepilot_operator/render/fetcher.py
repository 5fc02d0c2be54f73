"""The contract of the weight-fetching init container (``codepilot fetch``).

The init container downloads and verifies the weights into the model repository before Triton starts.
When the version has a snapshot, the pod reads the immutable, content-addressed snapshot rather than
the mutable source prefix, so every replica serves exactly the bytes recorded in status.
"""

from __future__ import annotations

from typing import Any

from codepilot_operator.api import CodePilot
from codepilot_operator.api.contract import ACCESS_KEY_ENV, ENDPOINT_ENV, REGION_ENV, SECRET_KEY_ENV
from codepilot_operator.api.platform import PlatformPolicy
from codepilot_operator.render.served import ServedVersion
from codepilot_operator.render.tritonconfig import weights_dir

# The init container's name, which kube-state-metrics reports and the weight-fetch alert selects.
FETCH_CONTAINER = "fetch-weights"


def snapshot_root(cp: CodePilot) -> str:
    """The one definition of where a CodePilot's snapshots live in its bucket (snapshots/ uses it too)."""
    return f"{cp.spec.model.source.snapshot_prefix}/{cp.metadata.namespace}/{cp.metadata.name}"


def snapshot_uri(cp: CodePilot, snapshot_id: str) -> str:
    """Where a snapshot lives: ``s3://<bucket>/<snapshotPrefix>/<namespace>/<codepilot>/<id>``."""
    return f"s3://{cp.spec.model.source.bucket}/{snapshot_root(cp)}/{snapshot_id}"


def fetch_args(cp: CodePilot, served: ServedVersion) -> list[str]:
    args = ["fetch", "--dest", weights_dir(cp)]
    if served.snapshot_id:
        return [*args, "--snapshot", snapshot_uri(cp, served.snapshot_id)]
    return [*args, "--source", cp.spec.model.source.uri]


def fetch_env(cp: CodePilot) -> list[dict[str, Any]]:
    source = cp.spec.model.source
    env: list[dict[str, Any]] = [
        {"name": ENDPOINT_ENV, "value": source.endpoint},
        {"name": REGION_ENV, "value": source.region},
    ]
    if source.credentials_secret:
        for key in (ACCESS_KEY_ENV, SECRET_KEY_ENV):
            env.append(
                {"name": key, "valueFrom": {"secretKeyRef": {"name": source.credentials_secret, "key": key}}}
            )
    return env


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
        "volumeMounts": [{"name": "model-repository", "mountPath": "/models"}],
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
