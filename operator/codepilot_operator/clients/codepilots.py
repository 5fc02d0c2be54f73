"""Reading a CodePilot and asking the operator for a rollout action, as a user does from a workstation.

The ``codepilot status | promote | abort | ...`` commands talk to the API server with the user's own
kubeconfig and RBAC (``codepilot-editor`` may patch CodePilots), never the operator's table: they read
the CodePilot and set the ``serving.codepilot.dev/rollout-action`` annotation, exactly what ``kubectl
annotate`` does, and the operator acts on it.
"""

from __future__ import annotations

from typing import Any

import httpx2
from lightkube import ApiError, Client, KubeConfig
from lightkube.types import PatchType

from codepilot_operator.api import API_VERSION, KIND
from codepilot_operator.clients.kube import Kind, resource_class

ACTION_ANNOTATION = "serving.codepilot.dev/rollout-action"
CODEPILOT = Kind(API_VERSION, KIND)


class ClusterError(RuntimeError):
    """The API server could not be reached or refused the request; one line for the user."""


def _client(kubeconfig: str | None, namespace: str | None) -> Client:
    try:
        config = KubeConfig.from_file(kubeconfig) if kubeconfig else KubeConfig.from_env()
    except Exception as exc:  # lightkube raises ConfigError, OSError, yaml errors...
        raise ClusterError(
            f"cannot load a kubeconfig: {str(exc).splitlines()[0] if str(exc) else exc!r}"
        ) from None
    return Client(config, namespace=namespace, timeout=httpx2.Timeout(15.0))


def _message(exc: httpx2.HTTPStatusError) -> str:
    if isinstance(exc, ApiError):
        return str(exc.status.message)
    return f"HTTP {exc.response.status_code}"


def default_namespace(kubeconfig: str | None) -> str:
    """The namespace of the kubeconfig's current context, like kubectl (``default`` if none)."""
    return str(_client(kubeconfig, None).namespace or "default")


def read(kubeconfig: str | None, namespace: str, name: str) -> dict[str, Any] | None:
    client = _client(kubeconfig, namespace)
    try:
        return dict(client.get(resource_class(CODEPILOT), name, namespace=namespace))
    except httpx2.HTTPStatusError as exc:  # ApiError, or an error page that is not a Status
        if exc.response.status_code == 404:
            return None
        raise ClusterError(f"get codepilot {namespace}/{name}: {_message(exc)}") from None
    except httpx2.TransportError as exc:
        raise ClusterError(f"cannot reach the API server: {exc}") from None


def request_action(kubeconfig: str | None, namespace: str, name: str, action: str) -> None:
    client = _client(kubeconfig, namespace)
    patch = {"metadata": {"annotations": {ACTION_ANNOTATION: action}}}
    try:
        client.patch(resource_class(CODEPILOT), name, patch, namespace=namespace, patch_type=PatchType.MERGE)
    except httpx2.HTTPStatusError as exc:
        raise ClusterError(f"annotate codepilot {namespace}/{name}: {_message(exc)}") from None
    except httpx2.TransportError as exc:
        raise ClusterError(f"cannot reach the API server: {exc}") from None
