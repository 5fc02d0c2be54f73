"""Typed API of the CodePilot resource (serving.codepilot.dev/v1alpha1).

The pydantic models are the single source of truth: the CRD in crds/ is generated from them and the
renderer, the operator and the CLI all parse CodePilots through them.
"""

from codepilot_operator.api.codepilot import API_VERSION, GROUP, KIND, PLURAL, SHORT_NAME, VERSION, CodePilot
from codepilot_operator.api.spec import (
    AlertsSpec,
    AnalysisSpec,
    AutoscalingSpec,
    Backend,
    CodePilotSpec,
    ModelSource,
    ModelSpec,
    RolloutSpec,
    RolloutStep,
    RolloutStrategy,
    RuntimeSpec,
    ScalingProvider,
    ScalingSignal,
)
from codepilot_operator.api.status import CodePilotStatus, Condition

__all__ = [
    "API_VERSION",
    "GROUP",
    "KIND",
    "PLURAL",
    "SHORT_NAME",
    "VERSION",
    "AlertsSpec",
    "AnalysisSpec",
    "AutoscalingSpec",
    "Backend",
    "CodePilot",
    "CodePilotSpec",
    "CodePilotStatus",
    "Condition",
    "ModelSource",
    "ModelSpec",
    "RolloutSpec",
    "RolloutStep",
    "RolloutStrategy",
    "RuntimeSpec",
    "ScalingProvider",
    "ScalingSignal",
]
