"""Types of where a CodePilot's weights live in S3, shared by its spec and by the platform's defaults.

A platform team writes the same values once (api/platform.py, ``defaults.source``) that a CodePilot may
write itself (``spec.model.source``); both are checked by the same types, so a default the operator
accepts at start is one a CodePilot could have written, and the other way round.
"""

from __future__ import annotations

from typing import Annotated, Any, Self

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, model_validator
from pydantic.alias_generators import to_camel

from codepilot_operator.api.fields import UNSET_BY_DEFAULT, ObjectName

NO_USERINFO_MESSAGE = (
    "must not carry credentials (user:password@): put them in the Secret named by credentialsSecret"
)
CA_KEY_PATTERN = r"^[-._a-zA-Z0-9]+$"  # a Secret's or ConfigMap's data key (core/v1 validation)
DEFAULT_CA_KEY = "ca.crt"  # what cert-manager and `kubectl create secret tls` write


def no_userinfo(endpoint: str) -> str:
    """Credentials in the URL would end up in pod specs, logs and status, readable by anyone who can
    read the CodePilot; the Secret is the one place for them."""
    if "@" in endpoint:
        raise ValueError(NO_USERINFO_MESSAGE)
    return endpoint


def cel(*rules: tuple[str, str]) -> dict[str, Any]:
    return {"x-kubernetes-validations": [{"rule": rule, "message": message} for rule, message in rules]}


Endpoint = Annotated[
    str,
    Field(
        pattern=r"^https?://[^\s/]+(:[0-9]+)?/?$",
        max_length=512,
        json_schema_extra=cel(("!self.contains('@')", NO_USERINFO_MESSAGE)),
    ),
    AfterValidator(no_userinfo),
]
Region = Annotated[str, Field(max_length=64, pattern=r"^[a-z0-9-]*$")]  # empty: the default
# An S3 bucket name (the same rule as the bucket part of spec.model.source.uri).
BucketName = Annotated[str, Field(min_length=3, max_length=63, pattern=r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")]
SnapshotPrefix = Annotated[
    str, Field(min_length=1, max_length=256, pattern=r"^[A-Za-z0-9][A-Za-z0-9._/-]*[A-Za-z0-9]$")
]


class CABundleRef(BaseModel):
    """A PEM bundle of the CA that signed an https endpoint's certificate, when it is not a public CA.

    The fetcher gets it mounted and ``AWS_CA_BUNDLE`` pointed at it; the operator reads the same object
    for its own S3 calls of that CodePilot, so both trust exactly the same roots.
    """

    model_config = ConfigDict(
        frozen=True,
        extra="forbid",
        alias_generator=to_camel,
        populate_by_name=True,
        json_schema_extra={
            **cel(
                (
                    "has(self.secretName) != has(self.configMapName)",
                    "set exactly one of secretName and configMapName",
                )
            ),
            UNSET_BY_DEFAULT: True,
        },
    )

    secret_name: ObjectName | None = Field(
        default=None, description="Secret in the CodePilot's namespace holding the bundle."
    )
    config_map_name: ObjectName | None = Field(
        default=None, description="ConfigMap in the CodePilot's namespace holding the bundle."
    )
    key: Annotated[str, Field(min_length=1, max_length=253, pattern=CA_KEY_PATTERN)] = Field(
        default=DEFAULT_CA_KEY, description="Key of the bundle in the Secret or ConfigMap."
    )

    @model_validator(mode="after")
    def _one_source(self) -> Self:
        if (self.secret_name is None) == (self.config_map_name is None):
            raise ValueError("set exactly one of secretName and configMapName")
        return self

    @property
    def kind(self) -> str:
        return "Secret" if self.secret_name else "ConfigMap"

    @property
    def name(self) -> str:
        return str(self.secret_name or self.config_map_name)


__all__ = [
    "DEFAULT_CA_KEY",
    "NO_USERINFO_MESSAGE",
    "BucketName",
    "CABundleRef",
    "Endpoint",
    "Region",
    "SnapshotPrefix",
    "no_userinfo",
]
