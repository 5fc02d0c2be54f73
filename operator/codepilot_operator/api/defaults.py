"""A CodePilot with the platform's defaults filled in, and a record of every value that was filled in.

The operator and ``codepilot render`` both serve the CodePilot this returns, so offline output matches
what the operator applies; status.defaults (written from ``Resolved.defaulted``) tells the author which
value was used for each field they left out and where it came from. Idempotent: a resolved CodePilot
resolves to itself, so render/ may resolve again what reconcile resolved already.

Rules, field by field (a CodePilot's own field always wins):
- ``spec.model.source.endpoint``: the platform's, else an error naming the field;
- ``region``, ``credentialsSecret``, ``caBundle``, ``snapshotBucket``: the platform's only together with
  the platform's endpoint (its credentials and CA belong to that server, not to one the CodePilot
  names); else us-east-1 / none / none / the bucket of ``uri``;
- ``snapshotPrefix``: the platform's, else codepilot-snapshots;
- ``spec.runtime.image``: the platform's Triton image, else the operator's built-in one; the value the
  0.1.0 CRD's schema default stored counts as unset, as for the fetcher image (api/platform.py);
- ``spec.rollout.analysis.prometheusUrl``: the platform's, else none (analysis then waits);
- ``spec.autoscaling.prometheusAddress`` (KEDA's): the platform's Prometheus URL, else the operator's
  built-in one; the value the 0.1.0 CRD's schema default stored counts as unset;
- ``spec.alerts.labels``: the platform's labels with the CodePilot's on top, key by key.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Any, TypeVar

from pydantic import BaseModel

from codepilot_operator.api.codepilot import CodePilot
from codepilot_operator.api.platform import PlatformDefaults, SourceDefaults
from codepilot_operator.api.spec import (
    DEFAULT_PROMETHEUS_ADDRESS,
    DEFAULT_REGION,
    DEFAULT_SNAPSHOT_PREFIX,
    DEFAULT_TRITON_IMAGE,
    ModelSource,
    ScalingProvider,
)
from codepilot_operator.api.storage import CABundleRef

M = TypeVar("M", bound=BaseModel)

ENDPOINT_PATH = "spec.model.source.endpoint"
# What the 0.1.0 CRD's schema default wrote into every CodePilot's spec.runtime.image.
SCHEMA_DEFAULT_TRITON_IMAGES = frozenset({DEFAULT_TRITON_IMAGE})
# ... and into spec.autoscaling.prometheusAddress.
SCHEMA_DEFAULT_PROMETHEUS_ADDRESSES = frozenset({DEFAULT_PROMETHEUS_ADDRESS})


class Origin(StrEnum):
    PLATFORM = "Platform"  # the chart's defaults values (the operator's --platform file)
    OPERATOR = "Operator"  # built into the operator: neither the CodePilot nor the platform set it


@dataclass(frozen=True)
class Defaulted:
    """One field the CodePilot left out, the value it got, and from whom."""

    field: str
    value: str
    origin: Origin

    def as_status(self) -> dict[str, str]:
        return {"field": self.field, "value": self.value, "from": self.origin.value}


@dataclass(frozen=True)
class Resolved:
    codepilot: CodePilot
    defaulted: tuple[Defaulted, ...]

    def status(self) -> list[dict[str, str]]:
        """The ``status.defaults`` value."""
        return [item.as_status() for item in self.defaulted]


class MissingSetting(ValueError):
    """Neither the CodePilot nor the platform sets a field the CodePilot cannot be served without."""

    def __init__(self, problems: list[str]):
        super().__init__("; ".join(problems))
        self.problems = problems


def missing_endpoint(prefix: str = "spec") -> str:
    return (
        f"{prefix}.model.source.endpoint: required: set it here, or have the platform set it once "
        "(chart value defaults.source.endpoint)"
    )


def _pick(own: Any, platform: Any, builtin: Any, path: str, found: list[Defaulted]) -> Any:
    """The CodePilot's value, else the platform's, else the built-in one; what was picked for it is
    recorded in ``found``."""
    if own is not None:
        return own
    if platform is not None:
        found.append(Defaulted(path, _text(platform), Origin.PLATFORM))
        return platform
    if builtin is not None:
        found.append(Defaulted(path, _text(builtin), Origin.OPERATOR))
    return builtin


def _text(value: Any) -> str:
    if isinstance(value, CABundleRef):
        return f"{value.kind} {value.name} key {value.key}"
    return str(value)


def _stored(value: Any, schema_defaults: frozenset[str], platform: Any) -> Any:
    """The CodePilot's own value. One the 0.1.0 CRD's schema default stored was never chosen: it counts
    as unset when the platform has a value to give instead (with none, it stays as stored)."""
    if value in schema_defaults and platform is not None:
        return None
    return value


def _updated(model: M, changes: dict[str, Any]) -> M:
    """``model`` with ``changes``, or ``model`` itself when it already holds them: resolving a resolved
    CodePilot (render() resolves what reconcile and the CLI resolved) then copies nothing."""
    for name, value in changes.items():
        current = getattr(model, name)
        # A nested model is the same object when nothing in it changed (this function's own answer).
        if current is not value and (isinstance(value, BaseModel) or current != value):
            return model.model_copy(update=changes)
    return model


def _source(source: ModelSource, platform: SourceDefaults, at: str, found: list[Defaulted]) -> ModelSource:
    """spec.model.source resolved; the one place that knows which settings belong to an endpoint."""
    endpoint = _pick(source.endpoint, platform.endpoint, None, f"{at}.endpoint", found)
    if endpoint is None:
        raise MissingSetting([missing_endpoint(at.removesuffix(".model.source"))])
    # The connection's own settings come with the platform's endpoint, never with another one.
    ours = endpoint.rstrip("/") == (platform.endpoint or "").rstrip("/")

    def pick(name: str, own: Any, default: Any, builtin: Any = None, *, bound: bool = True) -> Any:
        return _pick(own, default if ours or not bound else None, builtin, f"{at}.{name}", found)

    return _updated(
        source,
        {
            "endpoint": endpoint,
            "region": pick("region", source.region or None, platform.region, DEFAULT_REGION),
            "credentials_secret": pick(
                "credentialsSecret", source.credentials_secret, platform.credentials_secret
            ),
            "ca_bundle": pick("caBundle", source.ca_bundle, platform.ca_bundle),
            "snapshot_bucket": pick("snapshotBucket", source.snapshot_bucket, platform.snapshot_bucket),
            "snapshot_prefix": pick(
                "snapshotPrefix",
                source.snapshot_prefix,
                platform.snapshot_prefix,
                DEFAULT_SNAPSHOT_PREFIX,
                bound=False,
            ),
        },
    )


def with_defaults(cp: CodePilot, defaults: PlatformDefaults, prefix: str = "spec") -> Resolved:
    """``cp`` with every field it leaves out taken from ``defaults`` (or the operator's own fallback).

    Raises MissingSetting naming the field when a required one is set by neither. ``prefix`` is the path
    the spec is shown under in messages (``status.stableTemplate`` for a stable version's own spec).
    """
    spec = cp.spec
    found: list[Defaulted] = []
    source = _source(spec.model.source, defaults.source, f"{prefix}.model.source", found)
    runtime = spec.runtime
    own_image = _stored(runtime.image, SCHEMA_DEFAULT_TRITON_IMAGES, defaults.triton_image)
    image = _pick(own_image, defaults.triton_image, DEFAULT_TRITON_IMAGE, f"{prefix}.runtime.image", found)
    autoscaling = spec.autoscaling
    address = _pick(
        _stored(autoscaling.prometheus_address, SCHEMA_DEFAULT_PROMETHEUS_ADDRESSES, defaults.prometheus_url),
        defaults.prometheus_url,
        DEFAULT_PROMETHEUS_ADDRESS,
        f"{prefix}.autoscaling.prometheusAddress",
        found if autoscaling.provider is ScalingProvider.KEDA else [],  # shown only where it is used
    )
    analysis = spec.rollout.analysis
    prometheus = _pick(
        analysis.prometheus_url,
        defaults.prometheus_url,
        None,
        f"{prefix}.rollout.analysis.prometheusUrl",
        found,
    )
    labels = dict(spec.alerts.labels)
    for key, value in defaults.alert_labels.items():
        if key not in labels:
            labels[key] = value
            found.append(Defaulted(f"{prefix}.alerts.labels.{key}", value, Origin.PLATFORM))
    resolved_spec = _updated(
        spec,
        {
            "model": _updated(spec.model, {"source": source}),
            "runtime": _updated(runtime, {"image": image}),
            "autoscaling": _updated(autoscaling, {"prometheus_address": address}),
            "rollout": _updated(
                spec.rollout, {"analysis": _updated(analysis, {"prometheus_url": prometheus})}
            ),
            "alerts": _updated(spec.alerts, {"labels": labels}),
        },
    )
    return Resolved(_updated(cp, {"spec": resolved_spec}), tuple(found))


def required(value: str | None, path: str) -> str:
    """A field without a built-in fallback, which api/defaults.py always fills in; None here means a
    CodePilot that skipped resolution (fields with one fall back to it: the same as no platform)."""
    if value is None:
        raise MissingSetting(
            [f"{path}: not set (the CodePilot was not resolved with the platform's defaults)"]
        )
    return value


__all__ = [
    "ENDPOINT_PATH",
    "SCHEMA_DEFAULT_PROMETHEUS_ADDRESSES",
    "SCHEMA_DEFAULT_TRITON_IMAGES",
    "Defaulted",
    "MissingSetting",
    "Origin",
    "Resolved",
    "missing_endpoint",
    "required",
    "with_defaults",
]
