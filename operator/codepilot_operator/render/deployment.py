"""Deployment running tritonserver for one served model version.

One Deployment per version, named after the version: promoting a canary only changes status and traffic,
never the pods that already loaded the weights. When an HPA owns the replica count the Deployment has no
``spec.replicas`` at all (under server-side apply, owning it would fight the HPA on every reconcile).
"""

from __future__ import annotations

import hashlib
import json
import math
from typing import Any

from codepilot_operator.api import CodePilot
from codepilot_operator.api.fields import parse_duration
from codepilot_operator.api.platform import PlatformPolicy
from codepilot_operator.api.pod import (
    MODEL_CACHE_VOLUME,
    MODEL_CONFIG_VOLUME,
    MODEL_REPOSITORY,
    MODEL_REPOSITORY_VOLUME,
    SCRATCH_DIR,
    SCRATCH_VOLUME,
    SHM_DIR,
    SHM_VOLUME,
    dump,
)
from codepilot_operator.api.spec import DEFAULT_TRITON_IMAGE
from codepilot_operator.render.configmap import CONFIG_KEY, composing_key, config_map_name, model_config_map
from codepilot_operator.render.fetcher import (
    ca_volumes,
    cache_subpath,
    cached_snapshot,
    fetch_args,
    fetch_init_container,
)
from codepilot_operator.render.names import object_meta, version_labels, version_name, version_selector_labels
from codepilot_operator.render.served import ServedVersion
from codepilot_operator.render.tritonconfig import composing_configs, composing_files, model_dir, weights_dir

HTTP_PORT = 8000
GRPC_PORT = 8001
METRICS_PORT = 8002
GPU_RESOURCE = "nvidia.com/gpu"
TRITON_UID = 1000  # the triton-server user of NVIDIA's images
STARTUP_PROBE_PERIOD = 10
EXIT_TIMEOUT_SECONDS = 60
CONFIG_HASH_ANNOTATION = "serving.codepilot.dev/config-hash"
# The root filesystem is read-only; these emptyDirs (SCRATCH_DIR, SHM_DIR, api/pod.py) are all
# tritonserver may write (the fetched model repository aside). The python backend unpacks its execution
# environment under /tmp and exchanges tensors with its stub through /dev/shm. HOME points at /tmp as
# well, so that caches a backend or a model's own code keeps there (CUDA's ~/.nv, Hugging Face's
# ~/.cache) land on the emptyDir.


def deployment_name(cp: CodePilot, version: str) -> str:
    return version_name(cp, version)


def triton_args(cp: CodePilot) -> list[str]:
    return [
        f"--model-repository={MODEL_REPOSITORY}",
        "--model-control-mode=explicit",
        f"--load-model={cp.spec.model.name}",
        f"--http-port={HTTP_PORT}",
        f"--grpc-port={GRPC_PORT}",
        f"--metrics-port={METRICS_PORT}",
        "--allow-metrics=true",
        f"--allow-gpu-metrics={'true' if cp.spec.runtime.gpus > 0 else 'false'}",
        "--metrics-interval-ms=2000",
        # Latency quantiles (p95 on the dashboard), off by default in Triton.
        "--metrics-config=summary_latencies=true",
        # Time to first response as a histogram (Triton >= 2.52; older servers accept the flag and
        # export nothing more): rollout analysis compares the canary's p95 with stable's when present.
        "--metrics-config=histogram_latencies=true",
        "--strict-readiness=true",
        "--exit-on-error=true",
        f"--exit-timeout-secs={EXIT_TIMEOUT_SECONDS}",
    ]


def _resources(cp: CodePilot) -> dict[str, Any]:
    spec = cp.spec.runtime.resources
    requests = spec.requests.model_dump(by_alias=True, exclude_none=True)
    limits = spec.limits.model_dump(by_alias=True, exclude_none=True)
    if cp.spec.runtime.gpus > 0:
        limits[GPU_RESOURCE] = str(cp.spec.runtime.gpus)
    resources: dict[str, Any] = {}
    if requests:
        resources["requests"] = requests
    if limits:
        resources["limits"] = limits
    return resources


def _http_probe(path: str, period: int, failures: int) -> dict[str, Any]:
    return {
        "httpGet": {"path": path, "port": "http"},
        "periodSeconds": period,
        "timeoutSeconds": 5,
        "failureThreshold": failures,
    }


def startup_failure_threshold(cp: CodePilot) -> int:
    """Enough probe periods to cover ``runtime.startupTimeout`` (big models take minutes to load)."""
    return max(1, math.ceil(parse_duration(cp.spec.runtime.startup_timeout) / STARTUP_PROBE_PERIOD))


def _weights_mounts(cp: CodePilot, served: ServedVersion) -> list[dict[str, Any]]:
    """With a cache, the snapshot's directory on the claim is the version directory, read-only: Triton
    never writes what other pods read."""
    cached = cached_snapshot(cp, served)
    if cached is None:
        return []
    return [
        {
            "name": MODEL_CACHE_VOLUME,
            "mountPath": weights_dir(cp),
            "subPath": cache_subpath(cached),
            "readOnly": True,
        }
    ]


def triton_container(cp: CodePilot, served: ServedVersion) -> dict[str, Any]:
    runtime = cp.spec.runtime
    return {
        "name": "triton",
        "image": runtime.image or DEFAULT_TRITON_IMAGE,  # unresolved: no platform's
        "imagePullPolicy": runtime.image_pull_policy,
        "command": ["tritonserver"],
        "args": triton_args(cp),
        "ports": [
            {"name": "http", "containerPort": HTTP_PORT, "protocol": "TCP"},
            {"name": "grpc", "containerPort": GRPC_PORT, "protocol": "TCP"},
            {"name": "metrics", "containerPort": METRICS_PORT, "protocol": "TCP"},
        ],
        "env": [{"name": "HOME", "value": SCRATCH_DIR}, *(dump(e) for e in runtime.env)],
        "resources": _resources(cp),
        "startupProbe": _http_probe("/v2/health/ready", STARTUP_PROBE_PERIOD, startup_failure_threshold(cp)),
        "readinessProbe": _http_probe("/v2/health/ready", 5, 3),
        "livenessProbe": _http_probe("/v2/health/live", 10, 6),
        "volumeMounts": [
            {"name": MODEL_REPOSITORY_VOLUME, "mountPath": MODEL_REPOSITORY},
            *_weights_mounts(cp, served),
            {
                "name": MODEL_CONFIG_VOLUME,
                "mountPath": f"{model_dir(cp)}/{CONFIG_KEY}",
                "subPath": CONFIG_KEY,
                "readOnly": True,
            },
            *(
                {
                    "name": MODEL_CONFIG_VOLUME,
                    "mountPath": f"{MODEL_REPOSITORY}/{name}/{CONFIG_KEY}",
                    "subPath": composing_key(name),
                    "readOnly": True,
                }
                for name in composing_configs(cp)
            ),
            *(
                {
                    "name": MODEL_CONFIG_VOLUME,
                    "mountPath": f"{MODEL_REPOSITORY}/{path}",
                    "subPath": key,
                    "readOnly": True,
                }
                for path, key in composing_files(cp)[1].items()
            ),
            {"name": SHM_VOLUME, "mountPath": SHM_DIR},
            {"name": SCRATCH_VOLUME, "mountPath": SCRATCH_DIR},
            *(dump(m) for m in runtime.volume_mounts),
        ],
        "securityContext": {
            "allowPrivilegeEscalation": False,
            "readOnlyRootFilesystem": True,
            "runAsNonRoot": True,
            "capabilities": {"drop": ["ALL"]},
        },
    }


def _volumes(cp: CodePilot, served: ServedVersion) -> list[dict[str, Any]]:
    runtime = cp.spec.runtime
    volumes = [
        {"name": MODEL_REPOSITORY_VOLUME, "emptyDir": {"sizeLimit": runtime.model_cache_size}},
        {"name": MODEL_CONFIG_VOLUME, "configMap": {"name": config_map_name(cp, served.version)}},
        {"name": SHM_VOLUME, "emptyDir": {"medium": "Memory", "sizeLimit": runtime.shm_size}},
        {"name": SCRATCH_VOLUME, "emptyDir": {}},
    ]
    cache = cp.spec.model.cache
    if cache is not None and cached_snapshot(cp, served) is not None:
        volumes.append({"name": MODEL_CACHE_VOLUME, "persistentVolumeClaim": {"claimName": cache.claim_name}})
    return [*volumes, *ca_volumes(cp), *(dump(v) for v in runtime.volumes)]


def _spread(cp: CodePilot, version: str) -> list[dict[str, Any]]:
    """Without a labelSelector a constraint counts no pods at all; the one a user means is this version's."""
    constraints = []
    for constraint in cp.spec.runtime.topology_spread_constraints:
        rendered = dump(constraint)
        rendered.setdefault("labelSelector", {"matchLabels": version_selector_labels(cp, version)})
        constraints.append(rendered)
    return constraints


def config_hash(cp: CodePilot, served: ServedVersion, config: dict[str, Any] | None = None) -> str:
    """Changes whenever the mounted config or the fetched weights change, so pods restart to pick it up.

    subPath mounts of a ConfigMap never update in place; a template annotation rolls the pods instead.
    ``config``: the version's ConfigMap when the caller rendered it already (render() does).
    """
    if config is None:
        config = model_config_map(cp, served)
    payload = json.dumps({"config": config["data"], "fetch": fetch_args(cp, served)}, sort_keys=True)
    return hashlib.sha256(payload.encode()).hexdigest()[:16]


def _pod_spec(cp: CodePilot, served: ServedVersion, platform: PlatformPolicy) -> dict[str, Any]:
    runtime = cp.spec.runtime
    pod: dict[str, Any] = {
        "securityContext": {
            "runAsNonRoot": True,
            "runAsUser": TRITON_UID,
            "runAsGroup": TRITON_UID,
            "fsGroup": TRITON_UID,
            "seccompProfile": {"type": "RuntimeDefault"},
        },
        "terminationGracePeriodSeconds": EXIT_TIMEOUT_SECONDS + 15,
        "enableServiceLinks": False,
        "automountServiceAccountToken": False,
        "initContainers": [fetch_init_container(cp, served, platform)],
        "containers": [triton_container(cp, served)],
        "volumes": _volumes(cp, served),
    }
    if cached_snapshot(cp, served) is not None:
        # The kubelet would otherwise chown every file of the (shared, large) claim at each pod start.
        pod["securityContext"]["fsGroupChangePolicy"] = "OnRootMismatch"
    if runtime.node_selector:
        pod["nodeSelector"] = dict(runtime.node_selector)
    if runtime.tolerations:
        pod["tolerations"] = [t.model_dump(by_alias=True, exclude_none=True) for t in runtime.tolerations]
    affinity = dump(runtime.affinity) if runtime.affinity is not None else {}
    if affinity:
        pod["affinity"] = affinity
    if runtime.topology_spread_constraints:
        pod["topologySpreadConstraints"] = _spread(cp, served.version)
    if runtime.image_pull_secrets:
        pod["imagePullSecrets"] = [{"name": name} for name in runtime.image_pull_secrets]
    if runtime.service_account_name:
        pod["serviceAccountName"] = runtime.service_account_name
    if runtime.priority_class_name:
        pod["priorityClassName"] = runtime.priority_class_name
    return pod


def deployment(
    cp: CodePilot,
    served: ServedVersion,
    platform: PlatformPolicy,
    config: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The version's Triton Deployment; ``config`` is its ConfigMap if already rendered."""
    labels = version_labels(cp, served.version)
    spec: dict[str, Any] = {
        "selector": {"matchLabels": version_selector_labels(cp, served.version)},
        "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0}},
        "revisionHistoryLimit": 3,
        "progressDeadlineSeconds": int(parse_duration(cp.spec.runtime.startup_timeout)) + 600,
        "template": {
            "metadata": {
                "labels": labels,
                "annotations": {
                    **cp.spec.runtime.pod_annotations,
                    CONFIG_HASH_ANNOTATION: config_hash(cp, served, config),
                },
            },
            "spec": _pod_spec(cp, served, platform),
        },
    }
    if not cp.spec.autoscaling.enabled:
        replicas = served.replicas if served.replicas is not None else cp.spec.autoscaling.min_replicas
        spec = {"replicas": replicas, **spec}
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": object_meta(cp, deployment_name(cp, served.version), labels),
        "spec": spec,
    }
