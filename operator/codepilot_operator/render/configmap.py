"""ConfigMap carrying the Triton model configuration of one served version."""

from __future__ import annotations

from typing import Any

from codepilot_operator.api import CodePilot
from codepilot_operator.render.names import object_meta, version_labels, version_name
from codepilot_operator.render.served import ServedVersion
from codepilot_operator.render.tritonconfig import composing_configs, composing_files, model_config

CONFIG_KEY = "config.pbtxt"


def composing_key(model: str) -> str:
    """The ConfigMap key of a composing model's config.pbtxt (the TensorRT-LLM ensemble's steps)."""
    return f"{model}.pbtxt"


def config_map_name(cp: CodePilot, version: str) -> str:
    return version_name(cp, version, "config")


def model_config_map(cp: CodePilot, served: ServedVersion) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": object_meta(cp, config_map_name(cp, served.version), version_labels(cp, served.version)),
        "data": {
            CONFIG_KEY: model_config(cp),
            **{composing_key(n): t for n, t in composing_configs(cp).items()},
            **composing_files(cp)[0],
        },
    }
