"""Deterministic object names and labels.

Names come from the CodePilot's name and the model version, never from the stable/canary role: a
promotion keeps the canary's Deployment and pods, so the role lives in status. Every name stays a valid
DNS-1035 label (<= 63 characters) even for a 63-character CodePilot name, by truncating and appending a
short hash of the full name, so two different inputs never share a name.
"""

from __future__ import annotations

import hashlib
import re
from functools import lru_cache
from typing import Any

from codepilot_operator.api import CodePilot

MAX_DNS_LABEL = 63
HASH_LENGTH = 8
APP_NAME = "codepilot"
MANAGED_BY = "codepilot-operator"
COMPONENT_SERVER = "triton"

LABEL_NAME = "app.kubernetes.io/name"
LABEL_INSTANCE = "app.kubernetes.io/instance"
LABEL_COMPONENT = "app.kubernetes.io/component"
LABEL_MANAGED_BY = "app.kubernetes.io/managed-by"
LABEL_VERSION = "app.kubernetes.io/version"
LABEL_PART_OF = "app.kubernetes.io/part-of"
# The CodePilot a child belongs to, for selectors that must not depend on app.kubernetes.io/instance
# being unique across tools.
LABEL_CODEPILOT = "serving.codepilot.dev/codepilot"

_INVALID_LABEL_CHARS = re.compile(r"[^a-z0-9-]+")


@lru_cache(maxsize=4096)  # every child name of a CodePilot derives from the same few parts
def short_hash(text: str, length: int = HASH_LENGTH) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:length]


def dns_label(*parts: str, limit: int = MAX_DNS_LABEL) -> str:
    """Join parts with '-' into a DNS-1035 label of at most ``limit`` characters."""
    name = "-".join(p for p in parts if p)
    if len(name) <= limit:
        return name
    suffix = short_hash(name)
    head = name[: limit - len(suffix) - 1].rstrip("-")
    return f"{head}-{suffix}"


@lru_cache(maxsize=4096)
def version_slug(version: str) -> str:
    """A model version as a DNS label fragment; lossy mappings get a hash so they cannot collide.

    ``v1`` stays ``v1``; ``v1.2`` becomes ``v1-2-<hash>`` because ``v1-2`` could be another version.
    """
    slug = _INVALID_LABEL_CHARS.sub("-", version.lower()).strip("-") or "v"
    if slug == version:
        return slug
    return f"{slug}-{short_hash(version, 6)}"


def version_name(cp: CodePilot, version: str, suffix: str = "") -> str:
    """Name of a per-version child: ``<codepilot>-<version>[-<suffix>]``."""
    return dns_label(cp.metadata.name, version_slug(version), suffix)


def entry_service_name(cp: CodePilot) -> str:
    """The CodePilot's stable entry point keeps the CodePilot's own name: what clients configure."""
    return cp.metadata.name


def child_name(cp: CodePilot, suffix: str) -> str:
    return dns_label(cp.metadata.name, suffix)


def object_meta(cp: CodePilot, name: str, labels: dict[str, str]) -> dict[str, Any]:
    """metadata of every child: in the CodePilot's namespace, labelled so prune and selectors find it."""
    return {"name": name, "namespace": cp.metadata.namespace, "labels": labels}


def selector_labels(cp: CodePilot) -> dict[str, str]:
    """Labels that select every serving pod of a CodePilot, whatever its version."""
    return {LABEL_CODEPILOT: cp.metadata.name, LABEL_COMPONENT: COMPONENT_SERVER}


def version_selector_labels(cp: CodePilot, version: str) -> dict[str, str]:
    return {**selector_labels(cp), LABEL_VERSION: version}


def common_labels(cp: CodePilot, component: str = COMPONENT_SERVER) -> dict[str, str]:
    return {
        LABEL_NAME: APP_NAME,
        LABEL_INSTANCE: cp.metadata.name,
        LABEL_COMPONENT: component,
        LABEL_MANAGED_BY: MANAGED_BY,
        LABEL_PART_OF: APP_NAME,
        LABEL_CODEPILOT: cp.metadata.name,
    }


def version_labels(cp: CodePilot, version: str, component: str = COMPONENT_SERVER) -> dict[str, str]:
    return {**common_labels(cp, component), LABEL_VERSION: version}
