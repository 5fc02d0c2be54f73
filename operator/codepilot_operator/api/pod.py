"""What a platform team may add to a CodePilot's pods: env, volumes and mounts, annotations, affinity and
topology spread, as a small typed subset of core/v1, not an inlined PodSpec.

A PodSpec in the CRD would be hundreds of kilobytes of schema and would let a CodePilot's author ask for
anything a pod can do (hostPath, privileged containers, host namespaces) through the operator's own
authority. So only the fields a platform needs exist here, every list is bounded, and what would
collide with what the operator sets (its volumes, its mount paths, its environment, its annotations)
is refused naming the field. Secret and PersistentVolumeClaim references are further checked against
the platform's allow rule by reconcile/admission.py, like the credentials Secret.

The names and paths the operator uses in its pods are defined here, the bottom layer: render/ builds
the pods from them and this module refuses them, so the two cannot drift apart.
"""

from __future__ import annotations

from typing import Annotated, Any, Self

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, model_validator
from pydantic.alias_generators import to_camel

from codepilot_operator.api.fields import (
    DNS1123_LABEL_PATTERN,
    Bool,
    Int,
    LabelKey,
    ObjectName,
    OptionalLabelValue,
    PositiveQuantity,
)

# The Triton container's paths: its model repository, its scratch space and /dev/shm (render/).
MODEL_REPOSITORY = "/models"
SCRATCH_DIR = "/tmp"
SHM_DIR = "/dev/shm"
OPERATOR_PATHS = (MODEL_REPOSITORY, SCRATCH_DIR, SHM_DIR)
# The pod's volumes, as render/deployment.py names them.
MODEL_REPOSITORY_VOLUME = "model-repository"
MODEL_CONFIG_VOLUME = "model-config"
SHM_VOLUME = "dshm"
SCRATCH_VOLUME = "tmp"
MODEL_CACHE_VOLUME = "model-cache"
S3_CA_VOLUME = (
    "s3-ca"  # the CA bundle of a private-CA S3 endpoint, mounted in the fetcher (render/fetcher.py)
)
OPERATOR_VOLUMES = (
    MODEL_REPOSITORY_VOLUME,
    MODEL_CONFIG_VOLUME,
    SHM_VOLUME,
    SCRATCH_VOLUME,
    MODEL_CACHE_VOLUME,
    S3_CA_VOLUME,
)
# What the operator sets in the Triton container's environment.
OPERATOR_ENV = ("HOME",)
# Annotations that belong to the operator, and ones that would lift the pods' confinement (AppArmor,
# seccomp): the pod security context is the operator's, never the author's.
OPERATOR_ANNOTATION_PREFIXES = ("serving.codepilot.dev/",)
CONFINEMENT_ANNOTATION_PREFIXES = (
    "container.apparmor.security.beta.kubernetes.io/",
    "seccomp.security.alpha.kubernetes.io/",
    "container.seccomp.security.alpha.kubernetes.io/",
)

MAX_ENV = 64
MAX_VOLUMES = 16
MAX_MOUNTS = 32
MAX_ANNOTATIONS = 64
MAX_TERMS = 8
MAX_EXPRESSIONS = 16
MAX_VALUES = 64
MAX_SPREAD = 8

ENV_NAME_PATTERN = r"^[A-Za-z_][A-Za-z0-9_]*$"
# An absolute path without empty components or a trailing slash; "." and ".." components are refused by
# a validator and a CEL rule (RE2 has no lookahead to say it in the pattern).
MOUNT_PATH_PATTERN = r"^(/[^/\s]+)+$"
SUB_PATH_PATTERN = r"^[^/\s]+(/[^/\s]+)*$"
FIELD_PATHS = (
    "metadata.name",
    "metadata.namespace",
    "metadata.uid",
    "spec.nodeName",
    "spec.serviceAccountName",
    "status.hostIP",
    "status.podIP",
)


def _cel(*rules: tuple[str, str]) -> dict[str, Any]:
    return {"x-kubernetes-validations": [{"rule": rule, "message": message} for rule, message in rules]}


def _cel_list(values: tuple[str, ...]) -> str:
    return "[" + ", ".join(f"'{v}'" for v in values) + "]"


class PodModel(BaseModel):
    """camelCase on the wire (core/v1's own field names), unknown fields are an error."""

    model_config = ConfigDict(extra="forbid", alias_generator=to_camel, populate_by_name=True)


def _no_dot_components(path: str) -> str:
    if any(part in (".", "..") for part in path.split("/")):
        raise ValueError(f"{path} must not have . or .. components")
    return path


def _not_operator_path(path: str) -> str:
    for own in OPERATOR_PATHS:
        if path == own or path.startswith(own + "/") or own.startswith(path + "/"):
            raise ValueError(
                f"{path} collides with {own}, which the operator mounts in the Triton container "
                f"(its own paths are {', '.join(OPERATOR_PATHS)})"
            )
    return path


def _not_operator_volume(name: str) -> str:
    if name in OPERATOR_VOLUMES:
        raise ValueError(f"{name} is a volume the operator defines ({', '.join(OPERATOR_VOLUMES)})")
    return name


def _not_operator_env(name: str) -> str:
    if name in OPERATOR_ENV:
        raise ValueError(f"{name} is set by the operator")
    return name


def _annotation_key(key: str) -> str:
    if key.startswith(OPERATOR_ANNOTATION_PREFIXES):
        raise ValueError(f"annotations under {OPERATOR_ANNOTATION_PREFIXES[0]} are the operator's")
    if key.startswith(CONFINEMENT_ANNOTATION_PREFIXES):
        raise ValueError("the pods' AppArmor and seccomp profiles are set by the operator")
    return key


_PATH_COLLISION_RULE = " && ".join(
    f"self != '{own}' && !self.startsWith('{own}/') && !'{own}'.startsWith(self + '/')"
    for own in OPERATOR_PATHS
)
MountPath = Annotated[
    str,
    Field(
        max_length=1024,
        pattern=MOUNT_PATH_PATTERN,
        json_schema_extra=_cel(
            (_PATH_COLLISION_RULE, f"collides with a path the operator mounts ({', '.join(OPERATOR_PATHS)})"),
            ("!self.split('/').exists(p, p == '.' || p == '..')", "must not have . or .. components"),
        ),
    ),
    AfterValidator(_no_dot_components),
    AfterValidator(_not_operator_path),
]
SubPath = Annotated[
    str,
    Field(
        max_length=1024,
        pattern=SUB_PATH_PATTERN,
        json_schema_extra=_cel(
            ("!self.split('/').exists(p, p == '.' || p == '..')", "must not have . or .. components")
        ),
    ),
    AfterValidator(_no_dot_components),
]
VolumeName = Annotated[
    str,
    Field(
        min_length=1,
        max_length=63,
        pattern=DNS1123_LABEL_PATTERN,
        json_schema_extra=_cel(
            (f"!(self in {_cel_list(OPERATOR_VOLUMES)})", "is a volume the operator defines")
        ),
    ),
]
UserVolumeName = Annotated[VolumeName, AfterValidator(_not_operator_volume)]
EnvName = Annotated[
    str,
    Field(
        min_length=1,
        max_length=128,
        pattern=ENV_NAME_PATTERN,
        json_schema_extra=_cel((f"!(self in {_cel_list(OPERATOR_ENV)})", "is set by the operator")),
    ),
    AfterValidator(_not_operator_env),
]
KeyName = Annotated[str, Field(min_length=1, max_length=253, pattern=r"^[-._a-zA-Z0-9]+$")]


class KeyRef(PodModel):
    """One key of a Secret or ConfigMap of the CodePilot's namespace."""

    name: ObjectName
    key: KeyName
    optional: Bool | None = None


class SecretKeyRef(KeyRef):
    """A key of a Secret, which must carry the platform's allow label (like the credentials Secret)."""


class FieldRef(PodModel):
    field_path: Annotated[
        str, Field(pattern="^(" + "|".join(p.replace(".", r"\.") for p in FIELD_PATHS) + ")$")
    ]


class EnvVarSource(PodModel):
    model_config = ConfigDict(
        json_schema_extra=_cel(
            (
                "[has(self.secretKeyRef), has(self.configMapKeyRef), has(self.fieldRef)]"
                ".filter(x, x).size() == 1",
                "exactly one of secretKeyRef, configMapKeyRef, fieldRef",
            )
        )
    )

    secret_key_ref: SecretKeyRef | None = None
    config_map_key_ref: KeyRef | None = None
    field_ref: FieldRef | None = None

    @model_validator(mode="after")
    def _exactly_one(self) -> Self:
        if sum(x is not None for x in (self.secret_key_ref, self.config_map_key_ref, self.field_ref)) != 1:
            raise ValueError("exactly one of secretKeyRef, configMapKeyRef, fieldRef")
        return self


class EnvVar(PodModel):
    """An environment variable of the Triton container (never of the fetcher, which holds the S3
    credentials)."""

    model_config = ConfigDict(
        json_schema_extra=_cel(("has(self.value) != has(self.valueFrom)", "exactly one of value, valueFrom"))
    )

    name: EnvName
    value: Annotated[str, Field(max_length=32768)] | None = None
    value_from: EnvVarSource | None = None

    @model_validator(mode="after")
    def _value_or_source(self) -> Self:
        if (self.value is None) == (self.value_from is None):
            raise ValueError("exactly one of value, valueFrom")
        return self


class ConfigMapVolume(PodModel):
    name: ObjectName
    optional: Bool | None = None


class SecretVolume(PodModel):
    """A Secret as files; it must carry the platform's allow label, like the credentials Secret."""

    secret_name: ObjectName
    optional: Bool | None = None


class EmptyDirVolume(PodModel):
    medium: Annotated[str, Field(pattern=r"^(Memory)?$")] | None = None
    size_limit: PositiveQuantity | None = None


class ClaimVolume(PodModel):
    """A PersistentVolumeClaim of the namespace; it must carry the platform's allow label: mounting a
    claim gives the pods (running the author's Triton image) its data."""

    claim_name: ObjectName
    read_only: Bool | None = None


_NOT_ALLOWED_SOURCES = ("hostPath", "csi", "nfs", "iscsi", "ephemeral", "projected", "image")


class Volume(PodModel):
    """One volume: configMap, secret, emptyDir or persistentVolumeClaim (others are refused, hostPath
    first of all: it would hand the node's filesystem to the author's image)."""

    model_config = ConfigDict(
        json_schema_extra=_cel(
            (
                "[has(self.configMap), has(self.secret), has(self.emptyDir), has(self.persistentVolumeClaim)]"
                ".filter(x, x).size() == 1",
                "exactly one of configMap, secret, emptyDir, persistentVolumeClaim",
            )
        )
    )

    name: UserVolumeName
    config_map: ConfigMapVolume | None = None
    secret: SecretVolume | None = None
    empty_dir: EmptyDirVolume | None = None
    persistent_volume_claim: ClaimVolume | None = None

    @model_validator(mode="before")
    @classmethod
    def _refuse_other_sources(cls, data: Any) -> Any:
        if isinstance(data, dict):
            for source in _NOT_ALLOWED_SOURCES:
                if source in data:
                    raise ValueError(
                        f"{source} volumes are not allowed: use configMap, secret, emptyDir or "
                        "persistentVolumeClaim (the platform provides storage as a claim)"
                    )
        return data

    @model_validator(mode="after")
    def _exactly_one(self) -> Self:
        sources = (self.config_map, self.secret, self.empty_dir, self.persistent_volume_claim)
        if sum(s is not None for s in sources) != 1:
            raise ValueError("exactly one of configMap, secret, emptyDir, persistentVolumeClaim")
        return self


class VolumeMount(PodModel):
    """Where one of ``runtime.volumes`` appears in the Triton container."""

    name: VolumeName
    mount_path: MountPath
    sub_path: SubPath | None = None
    read_only: Bool | None = None


_VALUES_RULE = (
    "self.operator in ['Exists', 'DoesNotExist'] ? (!has(self.values) || self.values.size() == 0) "
    ": (has(self.values) && self.values.size() >= 1)",
    "In, NotIn, Gt and Lt need values; Exists and DoesNotExist take none",
)


def _check_values(operator: str, values: list[str]) -> None:
    if operator in ("Exists", "DoesNotExist") and values:
        raise ValueError(f"operator {operator} takes no values")
    if operator not in ("Exists", "DoesNotExist") and not values:
        raise ValueError(f"operator {operator} needs values")
    if operator in ("Gt", "Lt") and (len(values) != 1 or not values[0].isdigit()):
        raise ValueError(f"operator {operator} needs exactly one integer value")


class LabelSelectorRequirement(PodModel):
    model_config = ConfigDict(json_schema_extra=_cel(_VALUES_RULE))

    key: LabelKey
    operator: Annotated[str, Field(pattern=r"^(In|NotIn|Exists|DoesNotExist)$")]
    values: list[OptionalLabelValue] = Field(default_factory=list, max_length=MAX_VALUES)

    @model_validator(mode="after")
    def _values_fit(self) -> Self:
        _check_values(self.operator, self.values)
        return self


class LabelSelector(PodModel):
    match_labels: dict[LabelKey, OptionalLabelValue] = Field(default_factory=dict, max_length=MAX_EXPRESSIONS)
    match_expressions: list[LabelSelectorRequirement] = Field(
        default_factory=list, max_length=MAX_EXPRESSIONS
    )


class NodeSelectorRequirement(PodModel):
    model_config = ConfigDict(json_schema_extra=_cel(_VALUES_RULE))

    key: LabelKey
    operator: Annotated[str, Field(pattern=r"^(In|NotIn|Exists|DoesNotExist|Gt|Lt)$")]
    values: list[OptionalLabelValue] = Field(default_factory=list, max_length=MAX_VALUES)

    @model_validator(mode="after")
    def _values_fit(self) -> Self:
        _check_values(self.operator, self.values)
        return self


class NodeSelectorTerm(PodModel):
    match_expressions: list[NodeSelectorRequirement] = Field(min_length=1, max_length=MAX_EXPRESSIONS)


class NodeSelector(PodModel):
    node_selector_terms: list[NodeSelectorTerm] = Field(min_length=1, max_length=MAX_TERMS)


class PreferredNodeTerm(PodModel):
    weight: Annotated[Int, Field(ge=1, le=100)]
    preference: NodeSelectorTerm


class NodeAffinity(PodModel):
    required_during_scheduling_ignored_during_execution: NodeSelector | None = None
    preferred_during_scheduling_ignored_during_execution: list[PreferredNodeTerm] = Field(
        default_factory=list, max_length=MAX_TERMS
    )


class PodAffinityTerm(PodModel):
    """Pods of the CodePilot's own namespace (no namespaces or namespaceSelector: another team's pods
    are not this CodePilot's business)."""

    label_selector: LabelSelector
    topology_key: LabelKey


class WeightedPodAffinityTerm(PodModel):
    weight: Annotated[Int, Field(ge=1, le=100)]
    pod_affinity_term: PodAffinityTerm


class PodAffinity(PodModel):
    required_during_scheduling_ignored_during_execution: list[PodAffinityTerm] = Field(
        default_factory=list, max_length=MAX_TERMS
    )
    preferred_during_scheduling_ignored_during_execution: list[WeightedPodAffinityTerm] = Field(
        default_factory=list, max_length=MAX_TERMS
    )


class Affinity(PodModel):
    """core/v1 Affinity without cross-namespace terms."""

    node_affinity: NodeAffinity | None = None
    pod_affinity: PodAffinity | None = None
    pod_anti_affinity: PodAffinity | None = None


class TopologySpreadConstraint(PodModel):
    """core/v1 TopologySpreadConstraint; without a labelSelector it spreads this version's own pods."""

    max_skew: Annotated[Int, Field(ge=1, le=1000)]
    topology_key: LabelKey
    when_unsatisfiable: Annotated[str, Field(pattern=r"^(DoNotSchedule|ScheduleAnyway)$")]
    label_selector: LabelSelector | None = None
    min_domains: Annotated[Int, Field(ge=1, le=1000)] | None = None


_ANNOTATION_RULE = " && ".join(
    f"!k.startsWith('{prefix}')"
    for prefix in (*OPERATOR_ANNOTATION_PREFIXES, *CONFINEMENT_ANNOTATION_PREFIXES)
)
PodAnnotations = Annotated[
    dict[Annotated[LabelKey, AfterValidator(_annotation_key)], Annotated[str, Field(max_length=4096)]],
    Field(
        max_length=MAX_ANNOTATIONS,
        json_schema_extra=_cel(
            (
                f"self.all(k, {_ANNOTATION_RULE})",
                "the operator's annotations and confinement profiles are its own",
            )
        ),
    ),
]


def dump(model: BaseModel) -> dict[str, Any]:
    """The core/v1 form of a model: camelCase, what the author left unset left out (an ``emptyDir: {}``
    the author wrote is kept: it is not a default, it is the volume's source)."""
    return model.model_dump(mode="json", by_alias=True, exclude_none=True, exclude_defaults=True)


__all__ = [
    "MODEL_CACHE_VOLUME",
    "MODEL_CONFIG_VOLUME",
    "MODEL_REPOSITORY",
    "MODEL_REPOSITORY_VOLUME",
    "OPERATOR_ENV",
    "OPERATOR_PATHS",
    "OPERATOR_VOLUMES",
    "S3_CA_VOLUME",
    "SCRATCH_DIR",
    "SCRATCH_VOLUME",
    "SHM_DIR",
    "SHM_VOLUME",
    "Affinity",
    "EnvVar",
    "PodAnnotations",
    "TopologySpreadConstraint",
    "Volume",
    "VolumeMount",
    "dump",
]
