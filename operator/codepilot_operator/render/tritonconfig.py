"""Triton model configuration (config.pbtxt) for the chosen backend.

The text is protobuf text format for ``inference.ModelConfig``. Each backend gets the configuration its
own documentation prescribes:
- tensorrtllm: the standard TensorRT-LLM ensemble named after the model (render/ensemble.py): tokenizer
  preprocessing, the inflight-batching ``tensorrt_llm`` engine (decoupled, KV cache sized for a full
  batch of ``maxTokens``) and postprocessing, so it takes and returns text like the python contract;
- python: the text contract (api/endpoint.py, docs/api-endpoint.md): a decoupled model taking a prompt
  (and ``max_tokens``, ``stream``, ``suffix``) and answering text with the token counts its own
  tokenizer saw, one response per token when streaming; ``max_tokens`` is also in the parameters;
- onnxruntime: name, batching and placement only; Triton's auto-complete reads the inputs and outputs
  from the ONNX graph, which is more reliable than guessing them.
"""

from __future__ import annotations

from codepilot_operator.api import Backend, CodePilot
from codepilot_operator.api.endpoint import (
    COMPLETION_TOKENS,
    MAX_TOKENS,
    PROMPT_TOKENS,
    STREAM,
    SUFFIX,
    TEXT_INPUT,
    TEXT_OUTPUT,
)
from codepilot_operator.api.pod import MODEL_REPOSITORY
from codepilot_operator.render import ensemble
from codepilot_operator.render.pbtxt import batching, block, parameter, quote, tensor

MODEL_VERSION_DIR = "1"


def model_dir(cp: CodePilot) -> str:
    return f"{MODEL_REPOSITORY}/{cp.spec.model.name}"


def weights_dir(cp: CodePilot) -> str:
    """Triton reads numbered version directories; the fetched weights always land in version 1."""
    return f"{model_dir(cp)}/{MODEL_VERSION_DIR}"


def _instance_kind(cp: CodePilot) -> str:
    return "KIND_GPU" if cp.spec.runtime.gpus > 0 else "KIND_CPU"


def _python(cp: CodePilot) -> list[str]:
    runtime = cp.spec.runtime
    return [
        "model_transaction_policy { decoupled: true }",
        *batching(runtime.max_batch_size),
        block(
            "input",
            [
                tensor(TEXT_INPUT, "TYPE_STRING", [1]),
                tensor(MAX_TOKENS, "TYPE_INT32", [1], " optional: true"),
                tensor(STREAM, "TYPE_BOOL", [1], " optional: true"),
                tensor(SUFFIX, "TYPE_STRING", [1], " optional: true"),
            ],
        ),
        block(
            "output",
            [
                tensor(TEXT_OUTPUT, "TYPE_STRING", [1]),
                tensor(PROMPT_TOKENS, "TYPE_INT32", [1]),
                tensor(COMPLETION_TOKENS, "TYPE_INT32", [1]),
            ],
        ),
        f"instance_group [ {{ count: 1 kind: {_instance_kind(cp)} }} ]",
        parameter("max_tokens", str(runtime.max_tokens)),
    ]


def _onnxruntime(cp: CodePilot) -> list[str]:
    return [
        *batching(cp.spec.runtime.max_batch_size),
        f"instance_group [ {{ count: 1 kind: {_instance_kind(cp)} }} ]",
        parameter("max_tokens", str(cp.spec.runtime.max_tokens)),
    ]


_BACKEND_BODY = {
    Backend.PYTHON: _python,
    Backend.ONNXRUNTIME: _onnxruntime,
}


def composing_configs(cp: CodePilot) -> dict[str, str]:
    """config.pbtxt of the further models the served model calls (the TensorRT-LLM ensemble's), by name."""
    if cp.spec.model.backend is Backend.TENSORRTLLM:
        return ensemble.composing_configs(cp, weights_dir(cp))
    return {}


def composing_files(cp: CodePilot) -> tuple[dict[str, str], dict[str, str]]:
    """Further files of those models (the TensorRT-LLM text steps' model.py): ConfigMap data by key, and
    the key mounted at each path under the model repository."""
    if cp.spec.model.backend is Backend.TENSORRTLLM:
        return ensemble.step_files()
    return {}, {}


def model_config(cp: CodePilot) -> str:
    """config.pbtxt for the CodePilot's model and backend: what clients and the gateway call."""
    if cp.spec.model.backend is Backend.TENSORRTLLM:
        return ensemble.ensemble(cp)
    header = [
        f"name: {quote(cp.spec.model.name)}",
        f"backend: {quote(cp.spec.model.backend.value)}",
        f"max_batch_size: {cp.spec.runtime.max_batch_size}",
    ]
    return "\n".join(header + _BACKEND_BODY[cp.spec.model.backend](cp)) + "\n"
