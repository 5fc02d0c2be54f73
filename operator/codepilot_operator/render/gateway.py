"""The OpenAI-compatible endpoint of a CodePilot (``spec.api``): its gateway's config, Deployment,
Service and ServiceMonitor.

One gateway per CodePilot: its keys, limits and queue belong to that CodePilot and it lives and dies
with it (ownerReferences, prune). It runs the operator's own image (``codepilot gateway``) and sends
every request to the CodePilot's entry Service, where kube-proxy splits by Ready replicas, or, with
``spec.rollout.traffic.gateway``, to the Gateway its HTTPRoute attaches to, where the route's weights
split: never to a per-version Service, so canary analysis sees the API's traffic.

Key Secrets are mounted (a projected volume, each Secret in a directory of its own), not read through
the Kubernetes API: the gateway needs no RBAC, and the kubelet keeps rotated keys up to date.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from codepilot_operator.api import Backend, CodePilot
from codepilot_operator.api.endpoint import (
    API_PORT,
    KEY_FILE,
    OPS_PORT,
    RPM_FILE,
    TPM_FILE,
    GatewayConfig,
    GatewayModel,
)
from codepilot_operator.api.fields import parse_duration
from codepilot_operator.api.platform import DEFAULT_PLATFORM, PlatformPolicy
from codepilot_operator.render.deployment import HTTP_PORT
from codepilot_operator.render.names import (
    LABEL_CODEPILOT,
    LABEL_COMPONENT,
    child_name,
    common_labels,
    entry_service_name,
    object_meta,
)
from codepilot_operator.render.servicemonitor import MONITORING_API_VERSION, monitoring_labels

COMPONENT_GATEWAY = "gateway"
CONFIG_FILE = "config.json"
CONFIG_DIR = "/etc/codepilot/gateway"
KEYS_DIR = "/etc/codepilot/keys"
SERVICE_PORT = 80
CONFIG_HASH_ANNOTATION = "serving.codepilot.dev/gateway-config-hash"
GATEWAY_UID = 65532  # the operator image's non-root user


def gateway_name(cp: CodePilot) -> str:
    return child_name(cp, "api")


def api_url(cp: CodePilot) -> str | None:
    """What status.url says: the base URL OpenAI SDKs and editors are configured with."""
    if not cp.spec.api.enabled:
        return None
    return f"http://{gateway_name(cp)}.{cp.metadata.namespace}.svc/v1"


def _labels(cp: CodePilot) -> dict[str, str]:
    return common_labels(cp, COMPONENT_GATEWAY)


def _selector(cp: CodePilot) -> dict[str, str]:
    return {LABEL_CODEPILOT: cp.metadata.name, LABEL_COMPONENT: COMPONENT_GATEWAY}


def upstream(cp: CodePilot) -> tuple[str, str | None]:
    """(base URL, Host header) of where the gateway sends requests: through the rollout's split."""
    api, gateway = cp.spec.api, cp.spec.rollout.traffic.gateway
    if gateway is not None and api.gateway_url is not None:
        return api.gateway_url.rstrip("/"), (gateway.hostnames[0] if gateway.hostnames else None)
    return f"http://{entry_service_name(cp)}.{cp.metadata.namespace}.svc:{HTTP_PORT}", None


def gateway_config(cp: CodePilot) -> GatewayConfig:
    api = cp.spec.api
    url, host = upstream(cp)
    return GatewayConfig(
        models=[
            GatewayModel(
                name=cp.metadata.name,
                triton_model=cp.spec.model.name,
                upstream=url,
                host=host,
                max_tokens=cp.spec.runtime.max_tokens,
                # the python contract has a suffix input; the TensorRT-LLM ensemble's tokenizer step has not
                supports_suffix=cp.spec.model.backend is Backend.PYTHON,
                # TensorRT-LLM's postprocessing decodes each streamed token alone: a character split
                # over two tokens would arrive garbled in a whole answer read that way
                stream_stops=cp.spec.model.backend is Backend.PYTHON,
                max_concurrency=api.max_concurrency,
                max_queue=api.max_queue,
                queue_timeout_seconds=parse_duration(api.queue_timeout),
            )
        ],
        keys_dir=KEYS_DIR,
        requests_per_minute=api.requests_per_minute,
        tokens_per_minute=api.tokens_per_minute,
    )


def config_text(cp: CodePilot) -> str:
    return json.dumps(gateway_config(cp).model_dump(mode="json", by_alias=True), indent=2, sort_keys=True)


def config_map(cp: CodePilot) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": object_meta(cp, gateway_name(cp), _labels(cp)),
        "data": {CONFIG_FILE: config_text(cp)},
    }


def _keys_volume(cp: CodePilot) -> dict[str, Any]:
    sources = [
        {
            "secret": {
                "name": secret,
                # optional: a Secret (or a limit in it) that does not exist yet means no key, not a
                # gateway that cannot start
                "optional": True,
                "items": [{"key": key, "path": f"{secret}/{key}"} for key in (KEY_FILE, RPM_FILE, TPM_FILE)],
            }
        }
        for secret in cp.spec.api.key_secrets
    ]
    if not sources:
        return {"name": "keys", "emptyDir": {"sizeLimit": "1Mi"}}
    return {"name": "keys", "projected": {"sources": sources, "defaultMode": 0o440}}


def _probe(path: str, period: int) -> dict[str, Any]:
    return {"httpGet": {"path": path, "port": "metrics"}, "periodSeconds": period, "timeoutSeconds": 3}


def _container(cp: CodePilot, platform: PlatformPolicy) -> dict[str, Any]:
    return {
        "name": COMPONENT_GATEWAY,
        "image": platform.fetcher_image_for(cp.spec.api.image),
        "imagePullPolicy": cp.spec.runtime.image_pull_policy,
        "command": ["codepilot"],
        "args": [
            "gateway",
            "--config",
            f"{CONFIG_DIR}/{CONFIG_FILE}",
            f"--port={API_PORT}",
            f"--metrics-port={OPS_PORT}",
        ],
        "ports": [
            {"name": "http", "containerPort": API_PORT, "protocol": "TCP"},
            {"name": "metrics", "containerPort": OPS_PORT, "protocol": "TCP"},
        ],
        "resources": {
            "requests": {"cpu": "100m", "memory": "128Mi"},
            "limits": {"cpu": "1", "memory": "512Mi"},
        },
        "readinessProbe": _probe("/readyz", 5),
        "livenessProbe": _probe("/healthz", 10),
        "volumeMounts": [
            {"name": "config", "mountPath": CONFIG_DIR, "readOnly": True},
            {"name": "keys", "mountPath": KEYS_DIR, "readOnly": True},
        ],
        "securityContext": {
            "allowPrivilegeEscalation": False,
            "readOnlyRootFilesystem": True,
            "runAsNonRoot": True,
            "capabilities": {"drop": ["ALL"]},
        },
    }


def deployment(cp: CodePilot, platform: PlatformPolicy = DEFAULT_PLATFORM) -> dict[str, Any]:
    labels = _labels(cp)
    config_hash = hashlib.sha256(config_text(cp).encode()).hexdigest()[:16]
    pod: dict[str, Any] = {
        "securityContext": {
            "runAsNonRoot": True,
            "runAsUser": GATEWAY_UID,
            "runAsGroup": GATEWAY_UID,
            "fsGroup": GATEWAY_UID,
            "seccompProfile": {"type": "RuntimeDefault"},
        },
        "enableServiceLinks": False,
        "automountServiceAccountToken": False,
        "terminationGracePeriodSeconds": 45,  # in-flight requests get the gateway's 30 s to finish
        "containers": [_container(cp, platform)],
        "volumes": [{"name": "config", "configMap": {"name": gateway_name(cp)}}, _keys_volume(cp)],
    }
    if cp.spec.runtime.image_pull_secrets:
        pod["imagePullSecrets"] = [{"name": name} for name in cp.spec.runtime.image_pull_secrets]
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": object_meta(cp, gateway_name(cp), labels),
        "spec": {
            "replicas": cp.spec.api.replicas,
            "selector": {"matchLabels": _selector(cp)},
            "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0}},
            "revisionHistoryLimit": 3,
            "template": {
                "metadata": {"labels": labels, "annotations": {CONFIG_HASH_ANNOTATION: config_hash}},
                "spec": pod,
            },
        },
    }


def service(cp: CodePilot) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": object_meta(cp, gateway_name(cp), _labels(cp)),
        "spec": {
            "type": "ClusterIP",
            "selector": _selector(cp),
            "ports": [
                {"name": "http", "port": SERVICE_PORT, "targetPort": "http", "protocol": "TCP"},
                {"name": "metrics", "port": OPS_PORT, "targetPort": "metrics", "protocol": "TCP"},
            ],
        },
    }


def service_monitor(cp: CodePilot) -> dict[str, Any]:
    """Usage per team and model (codepilot_api_*) into the same Prometheus as Triton's metrics."""
    return {
        "apiVersion": MONITORING_API_VERSION,
        "kind": "ServiceMonitor",
        "metadata": object_meta(cp, gateway_name(cp), {**monitoring_labels(cp), **_labels(cp)}),
        "spec": {
            "selector": {"matchLabels": _selector(cp)},
            "namespaceSelector": {"matchNames": [cp.metadata.namespace]},
            "endpoints": [{"port": "metrics", "path": "/metrics", "scheme": "http", "interval": "15s"}],
        },
    }


def gateway_objects(cp: CodePilot, platform: PlatformPolicy = DEFAULT_PLATFORM) -> list[dict[str, Any]]:
    if not cp.spec.api.enabled:
        return []
    objects = [config_map(cp), deployment(cp, platform), service(cp)]
    if cp.spec.alerts.enabled:
        objects.append(service_monitor(cp))
    return objects
