"""The CodePilot resource as a whole: identity, metadata and the names the API server knows it by."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

from codepilot_operator.api.fields import DNS1035_LABEL_PATTERN, DNS1123_LABEL_PATTERN
from codepilot_operator.api.spec import CodePilotSpec
from codepilot_operator.api.status import CodePilotStatus

GROUP = "serving.codepilot.dev"
VERSION = "v1alpha1"
API_VERSION = f"{GROUP}/{VERSION}"
KIND = "CodePilot"
PLURAL = "codepilots"
SINGULAR = "codepilot"
SHORT_NAME = "cpl"


class ObjectMeta(BaseModel):
    """The part of metadata the renderer uses; everything else the API server owns is kept as-is."""

    model_config = ConfigDict(extra="allow", populate_by_name=True)

    # A DNS-1035 label: the CodePilot's name is also the name of its entry-point Service.
    name: Annotated[str, Field(min_length=1, max_length=63, pattern=DNS1035_LABEL_PATTERN)]
    namespace: Annotated[str, Field(min_length=1, max_length=63, pattern=DNS1123_LABEL_PATTERN)] = "default"
    uid: str | None = None
    generation: int | None = None
    labels: dict[str, str] = Field(default_factory=dict)
    annotations: dict[str, str] = Field(default_factory=dict)


class CodePilot(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    api_version: Literal["serving.codepilot.dev/v1alpha1"] = Field(
        default="serving.codepilot.dev/v1alpha1", alias="apiVersion"
    )
    kind: Literal["CodePilot"] = "CodePilot"
    metadata: ObjectMeta
    spec: CodePilotSpec
    status: CodePilotStatus = Field(default_factory=CodePilotStatus)
