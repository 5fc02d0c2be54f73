"""The rendered TensorRT-LLM ensemble, checked structurally (no GPU here, so it cannot be loaded).

Every config parses as Triton's own ``inference.ModelConfig`` protobuf (unknown fields and bad syntax
fail), and the ensemble obeys the wiring rules Triton enforces when it loads one: each step's
input_map keys are inputs of that step's model with matching types, every required input is fed,
each value exists by then (an ensemble input or an earlier step's output), output_map keys are that
model's outputs, and every ensemble output is produced with its declared type. The ensemble's own
inputs and outputs are the gateway's text contract.
"""

from __future__ import annotations

from typing import Any

import pytest
from google.protobuf import text_format
from tritonclient.grpc import model_config_pb2

from codepilot_operator.api.endpoint import (
    COMPLETION_TOKENS,
    MAX_TOKENS,
    PROMPT_TOKENS,
    STREAM,
    TEXT_INPUT,
    TEXT_OUTPUT,
)
from codepilot_operator.render import render
from codepilot_operator.render.configmap import CONFIG_KEY
from codepilot_operator.render.tritonconfig import weights_dir
from codepilot_operator.tritonsteps import TEXT_STEPS_SOURCE
from tests.helpers import codepilot

ModelConfig = Any


def _configs(**overrides: Any) -> tuple[dict[str, ModelConfig], dict[str, Any], dict[str, Any]]:
    cp = codepilot(**overrides)
    objects = render(cp)
    (config_map,) = [
        o for o in objects if o["kind"] == "ConfigMap" and o["metadata"]["name"].endswith("-config")
    ]
    (deployment,) = [o for o in objects if o["kind"] == "Deployment" and o["metadata"]["name"] == "coder-v1"]
    parsed = {}
    for key, text in config_map["data"].items():
        if not key.endswith(".pbtxt"):
            continue  # the text steps' model.py and the engine's version directory (test below)
        config = text_format.Parse(text, model_config_pb2.ModelConfig())
        parsed[config.name] = config
    return parsed, config_map, deployment


def _tensors(entries: Any) -> dict[str, tuple[int, bool]]:
    return {t.name: (t.data_type, getattr(t, "optional", False)) for t in entries}


def wiring_problems(models: dict[str, ModelConfig], ensemble_name: str) -> list[str]:
    ensemble = models[ensemble_name]
    available = {name: dtype for name, (dtype, _) in _tensors(ensemble.input).items()}
    optional_inputs = {name for name, (_, optional) in _tensors(ensemble.input).items() if optional}
    problems = []
    for step in ensemble.ensemble_scheduling.step:
        model = models.get(step.model_name)
        if model is None:
            problems.append(f"step {step.model_name}: no config rendered for it")
            continue
        inputs, outputs = _tensors(model.input), _tensors(model.output)
        for key, value in step.input_map.items():
            if key not in inputs:
                problems.append(f"{step.model_name}: {key} is not one of its inputs")
            elif value not in available:
                problems.append(f"{step.model_name}.{key}: {value} is not produced before this step")
            elif available[value] != inputs[key][0]:
                problems.append(f"{step.model_name}.{key}: type {available[value]} != {inputs[key][0]}")
            elif value in optional_inputs and not inputs[key][1]:
                problems.append(f"{step.model_name}.{key}: required, fed by optional ensemble input {value}")
        for name, (_, optional) in inputs.items():
            if not optional and name not in step.input_map:
                problems.append(f"{step.model_name}: required input {name} is not fed")
        for key, value in step.output_map.items():
            if key not in outputs:
                problems.append(f"{step.model_name}: {key} is not one of its outputs")
            else:
                available[value] = outputs[key][0]
        if model.max_batch_size < ensemble.max_batch_size:
            problems.append(f"{step.model_name}: max_batch_size below the ensemble's")
    for name, (dtype, _) in _tensors(ensemble.output).items():
        if available.get(name) != dtype:
            problems.append(f"ensemble output {name} is not produced with its type")
    return problems


def test_every_config_parses_as_a_triton_model_config() -> None:
    models, _, _ = _configs()
    assert set(models) == {"codellama-7b", "preprocessing", "tensorrt_llm", "postprocessing"}
    assert models["codellama-7b"].platform == "ensemble"
    assert models["tensorrt_llm"].backend == "tensorrtllm"
    assert models["tensorrt_llm"].model_transaction_policy.decoupled  # streaming, one response per token


def test_the_ensemble_is_wired_as_triton_requires() -> None:
    models, _, _ = _configs()
    assert wiring_problems(models, "codellama-7b") == []


def test_the_wiring_check_catches_a_miswired_step() -> None:
    models, _, _ = _configs()
    broken = models["codellama-7b"]
    step = broken.ensemble_scheduling.step[1]
    step.input_map["input_lengths"] = "_NOT_PRODUCED"
    del step.input_map["request_output_len"]
    assert wiring_problems(models, "codellama-7b") == [
        "tensorrt_llm.input_lengths: _NOT_PRODUCED is not produced before this step",
        "tensorrt_llm: required input request_output_len is not fed",
    ]


def test_the_ensemble_speaks_the_text_contract_and_counts_tokens() -> None:
    models, _, _ = _configs()
    ensemble = models["codellama-7b"]
    assert {t.name for t in ensemble.input} >= {TEXT_INPUT, MAX_TOKENS, STREAM}
    assert {t.name for t in ensemble.output} == {TEXT_OUTPUT, PROMPT_TOKENS, COMPLETION_TOKENS}
    preprocessing, engine = ensemble.ensemble_scheduling.step[0], ensemble.ensemble_scheduling.step[1]
    assert preprocessing.output_map["REQUEST_INPUT_LEN"] == PROMPT_TOKENS
    assert engine.output_map["sequence_length"] == COMPLETION_TOKENS
    assert models["tensorrt_llm"].parameters["exclude_input_in_output"].string_value == "true"


def test_tokenizer_and_engine_come_from_the_weight_snapshot() -> None:
    models, _, _ = _configs()
    weights = weights_dir(codepilot())
    assert models["preprocessing"].parameters["tokenizer_dir"].string_value == weights
    assert models["postprocessing"].parameters["tokenizer_dir"].string_value == weights
    assert models["tensorrt_llm"].parameters["gpt_model_path"].string_value == weights


def test_each_composing_config_is_mounted_where_triton_looks_for_it() -> None:
    _, config_map, deployment = _configs()
    (triton,) = deployment["spec"]["template"]["spec"]["containers"]
    mounts = {m["mountPath"]: m.get("subPath") for m in triton["volumeMounts"] if m["name"] == "model-config"}
    assert mounts == {
        "/models/codellama-7b/config.pbtxt": CONFIG_KEY,
        "/models/preprocessing/config.pbtxt": "preprocessing.pbtxt",
        "/models/tensorrt_llm/config.pbtxt": "tensorrt_llm.pbtxt",
        "/models/postprocessing/config.pbtxt": "postprocessing.pbtxt",
        # the operator's model.py for both text steps; the engine's version directory only has to exist
        "/models/preprocessing/1/model.py": "textsteps.py",
        "/models/postprocessing/1/model.py": "textsteps.py",
        "/models/tensorrt_llm/1/README.txt": "tensorrt_llm-version.txt",
    }
    assert set(mounts.values()) == set(config_map["data"])
    assert config_map["data"]["textsteps.py"] == TEXT_STEPS_SOURCE


@pytest.mark.parametrize("backend", ["python", "onnxruntime"])
def test_other_backends_have_one_model(backend: str) -> None:
    models, _, _ = _configs(**{"spec.model.backend": backend, "spec.runtime.gpus": 0})
    assert list(models) == ["codellama-7b"]
