"""What the platform decides for every CodePilot, as opposed to what each CodePilot's author writes.

A team that may edit CodePilots in its namespace (the ``codepilot-editor`` role) must not gain, through
the pods the operator creates for it, anything that role does not grant: another image run with the
credentials Secret's values in its environment, a Secret its members cannot read, a privileged
ServiceAccount or the cluster's highest priority class. Those choices belong to the platform team that
installs the operator; they reach it as one file (the chart's ``<release>-platform`` ConfigMap, read
by ``codepilot run --platform`` and ``codepilot render --platform``), parsed into :class:`PlatformPolicy`.

This is data only: render/ reads it to fill in what the platform provides (the fetcher image),
reconcile/admission.py checks each CodePilot against it before anything is read, rendered or applied.
The cluster facts a platform sets once (:class:`PlatformDefaults`: S3 endpoint, credentials Secret name,
snapshot bucket and prefix, CA bundle, Triton image, Prometheus URL, alert labels) are here too, so that
a team's CodePilot needs only its model's ``uri``; api/defaults.py applies them.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel

from codepilot_operator import __version__
from codepilot_operator.api.fields import LabelKey, ObjectName, OptionalLabelValue
from codepilot_operator.api.storage import BucketName, CABundleRef, Endpoint, Region, SnapshotPrefix

# The operator's own image runs the weight fetcher: one image, one version, upgraded by `helm upgrade`.
DEFAULT_FETCHER_IMAGE = f"codepilot/codepilot-operator:{__version__}"
# What the 0.1.0 CRD's schema default wrote into every CodePilot created under it. The API server stored
# it as if the author had chosen it, so it is read as "not set": those CodePilots follow the platform's
# fetcher image like every other, instead of being refused or pinned to 0.1.0 forever.
SCHEMA_DEFAULT_FETCHER_IMAGES = frozenset({"codepilot/codepilot-operator:0.1.0"})

# On a Secret: its owner lets CodePilots of the Secret's namespace use it. Only someone who may write the
# Secret can set a label on it, and such a person can read it already, so the label hands out nothing
# its setter does not hold; a label (not an annotation) so that `kubectl get secrets -A -l ...` audits it.
ALLOW_LABEL = "serving.codepilot.dev/allow-codepilot"
ALLOW_VALUE = "true"

# An image reference, or a prefix of one ending in "/*", ":*" or "@*" (any image under a registry path,
# any tag, any digest). The character before the star is required so that "registry/team*" cannot
# match "registry/team-evil/...".
IMAGE_PATTERN = r"^[^\s*]+([/:@]\*)?$"
ImageRef = Annotated[str, Field(min_length=1, max_length=512, pattern=r"^[^\s*]+$")]
ImagePattern = Annotated[str, Field(min_length=2, max_length=512, pattern=IMAGE_PATTERN)]
PROMETHEUS_URL_PATTERN = r"^https?://[^\s/@]+(:[0-9]+)?(/\S*)?$"
PrometheusUrl = Annotated[str, Field(max_length=512, pattern=PROMETHEUS_URL_PATTERN)]
MAX_ALERT_LABELS = 64


def image_matches(pattern: str, image: str) -> bool:
    if pattern.endswith("*"):
        return image.startswith(pattern[:-1]) and len(image) > len(pattern) - 1
    return image == pattern


class _Settings(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", alias_generator=to_camel, populate_by_name=True)


class SourceDefaults(_Settings):
    """``spec.model.source`` fields a CodePilot may leave out. Everything but ``snapshotPrefix`` belongs
    to the platform's endpoint: a CodePilot naming an endpoint of its own gets none of them, so the
    platform's credentials or CA are never sent to, or trusted for, a server the platform did not name."""

    endpoint: Endpoint | None = None
    region: Region | None = None
    credentials_secret: ObjectName | None = None
    ca_bundle: CABundleRef | None = None
    snapshot_bucket: BucketName | None = None
    snapshot_prefix: SnapshotPrefix | None = None


class PlatformDefaults(_Settings):
    """What every CodePilot gets unless it sets the field itself (the chart's ``defaults`` values)."""

    source: SourceDefaults = Field(default_factory=SourceDefaults)
    triton_image: ImageRef | None = None
    prometheus_url: PrometheusUrl | None = None
    alert_labels: dict[LabelKey, OptionalLabelValue] = Field(
        default_factory=dict, max_length=MAX_ALERT_LABELS
    )


class PlatformPolicy(BaseModel):
    """The platform's decisions, frozen for the life of an operator process (a change restarts it)."""

    model_config = ConfigDict(frozen=True, extra="forbid", alias_generator=to_camel, populate_by_name=True)

    fetcher_image: ImageRef = Field(
        default=DEFAULT_FETCHER_IMAGE,
        description="Image of the weight-fetch init container: the operator's own image.",
    )
    allowed_fetcher_images: tuple[ImagePattern, ...] = Field(
        default=(),
        max_length=64,
        description="Further images a CodePilot may name in spec.runtime.fetcherImage.",
    )
    allowed_service_accounts: tuple[ObjectName, ...] = Field(
        default=(),
        max_length=64,
        description="ServiceAccount names spec.runtime.serviceAccountName may take; the namespace's "
        "default ServiceAccount is always allowed.",
    )
    allowed_priority_classes: tuple[ObjectName, ...] = Field(
        default=(),
        max_length=64,
        description="PriorityClass names spec.runtime.priorityClassName may take; unset is always allowed.",
    )
    secret_names: tuple[ObjectName, ...] = Field(
        default=(),
        max_length=64,
        description="When set, the only Secret names a CodePilot may reference (the chart then grants the "
        "operator `get` on exactly these names); empty: any name, still subject to the allow label.",
    )
    defaults: PlatformDefaults = Field(
        default_factory=PlatformDefaults,
        description="Cluster facts every CodePilot gets unless it sets the field itself.",
    )

    def fetcher_image_for(self, requested: str | None) -> str:
        """The image a container running the operator's code (the fetcher, the gateway) runs: the
        CodePilot's override, else the platform's."""
        if requested is None or requested in SCHEMA_DEFAULT_FETCHER_IMAGES:
            return self.fetcher_image
        return requested

    def allows_fetcher_image(self, image: str) -> bool:
        return image == self.fetcher_image or any(
            image_matches(pattern, image) for pattern in self.allowed_fetcher_images
        )

    def allows_service_account(self, name: str | None) -> bool:
        return name in (None, "default") or name in self.allowed_service_accounts

    def allows_priority_class(self, name: str | None) -> bool:
        return name is None or name in self.allowed_priority_classes

    def allows_secret_name(self, name: str) -> bool:
        return not self.secret_names or name in self.secret_names


DEFAULT_PLATFORM = PlatformPolicy()


def secret_allowed(labels: Mapping[str, str] | None) -> bool:
    """The Secret's owner lets CodePilots use it (see ALLOW_LABEL)."""
    return (labels or {}).get(ALLOW_LABEL) == ALLOW_VALUE


__all__ = [
    "ALLOW_LABEL",
    "ALLOW_VALUE",
    "DEFAULT_FETCHER_IMAGE",
    "DEFAULT_PLATFORM",
    "IMAGE_PATTERN",
    "SCHEMA_DEFAULT_FETCHER_IMAGES",
    "PlatformDefaults",
    "PlatformPolicy",
    "PrometheusUrl",
    "SourceDefaults",
    "image_matches",
    "secret_allowed",
]
