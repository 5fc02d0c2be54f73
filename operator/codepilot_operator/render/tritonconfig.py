"""Triton model configuration (config.pbtxt) for the chosen backend.

The text is protobuf text format for ``inference.ModelConfig``. Each backend gets the configuration its
own documentation prescribes:
- tensorrtllm: the inflight-batching ``tensorrt_llm`` model (decoupled, KIND_CPU instances: the backend
  places the engine on GPUs itself), with the KV cache sized for a full batch of ``maxTokens``;
- python: the text contract (api/endpoint.py, docs/api-endpoint.md): a decoupled model taking a prompt
  (and ``max_tokens``, ``stream``, ``suffix``) and answering text with the token counts its own
  tokenizer saw, one response per token when streaming; ``max_tokens`` is also in the parameters;
- onnxruntime: name, batching and placement only; Triton's auto-complete reads the inputs and outputs
  from the ONNX graph, which is more reliable than guessing them.
"""

from __future__ import annotations

from collections.abc import Iterable

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

MODEL_REPOSITORY = "/models"
MODEL_VERSION_DIR = "1"


def model_dir(cp: CodePilot) -> str:
    return f"{MODEL_REPOSITORY}/{cp.spec.model.name}"


def weights_dir(cp: CodePilot) -> str:
    """Triton reads numbered version directories; the fetched weights always land in version 1."""
    return f"{model_dir(cp)}/{MODEL_VERSION_DIR}"


def _quote(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _tensor(name: str, data_type: str, dims: Iterable[int], extra: str = "") -> str:
    dims_text = ", ".join(str(d) for d in dims)
    return f"  {{ name: {_quote(name)} data_type: {data_type} dims: [ {dims_text} ]{extra} }}"


def _block(keyword: str, entries: list[str]) -> str:
    return f"{keyword} [\n" + ",\n".join(entries) + "\n]"


def _parameter(key: str, value: str) -> str:
    return f"parameters: {{ key: {_quote(key)} value: {{ string_value: {_quote(value)} }} }}"


def _batching(max_batch_size: int) -> list[str]:
    if max_batch_size == 0:
        return []
    return ["dynamic_batching { max_queue_delay_microseconds: 100 }"]


def _tensorrtllm(cp: CodePilot) -> list[str]:
    runtime = cp.spec.runtime
    kv_tokens = runtime.max_tokens * max(runtime.max_batch_size, 1)
    return [
        "model_transaction_policy { decoupled: true }",
        *_batching(runtime.max_batch_size),
        _block(
            "input",
            [
                _tensor("input_ids", "TYPE_INT32", [-1], " allow_ragged_batch: true"),
                _tensor("input_lengths", "TYPE_INT32", [1], " reshape: { shape: [ ] }"),
                _tensor("request_output_len", "TYPE_INT32", [1], " reshape: { shape: [ ] }"),
                _tensor("end_id", "TYPE_INT32", [1], " reshape: { shape: [ ] } optional: true"),
                _tensor("pad_id", "TYPE_INT32", [1], " reshape: { shape: [ ] } optional: true"),
                _tensor("streaming", "TYPE_BOOL", [1], " reshape: { shape: [ ] } optional: true"),
            ],
        ),
        _block(
            "output",
            [_tensor("output_ids", "TYPE_INT32", [-1, -1]), _tensor("sequence_length", "TYPE_INT32", [-1])],
        ),
        "instance_group [ { count: 1 kind: KIND_CPU } ]",
        _parameter("gpt_model_type", "inflight_fused_batching"),
        _parameter("gpt_model_path", weights_dir(cp)),
        _parameter("batch_scheduler_policy", "guaranteed_no_evict"),
        _parameter("max_tokens_in_paged_kv_cache", str(kv_tokens)),
        _parameter("max_beam_width", "1"),
    ]


def _instance_kind(cp: CodePilot) -> str:
    return "KIND_GPU" if cp.spec.runtime.gpus > 0 else "KIND_CPU"


def _python(cp: CodePilot) -> list[str]:
    runtime = cp.spec.runtime
    return [
        "model_transaction_policy { decoupled: true }",
        *_batching(runtime.max_batch_size),
        _block(
            "input",
            [
                _tensor(TEXT_INPUT, "TYPE_STRING", [1]),
                _tensor(MAX_TOKENS, "TYPE_INT32", [1], " optional: true"),
                _tensor(STREAM, "TYPE_BOOL", [1], " optional: true"),
                _tensor(SUFFIX, "TYPE_STRING", [1], " optional: true"),
            ],
        ),
        _block(
            "output",
            [
                _tensor(TEXT_OUTPUT, "TYPE_STRING", [1]),
                _tensor(PROMPT_TOKENS, "TYPE_INT32", [1]),
                _tensor(COMPLETION_TOKENS, "TYPE_INT32", [1]),
            ],
        ),
        f"instance_group [ {{ count: 1 kind: {_instance_kind(cp)} }} ]",
        _parameter("max_tokens", str(runtime.max_tokens)),
    ]


def _onnxruntime(cp: CodePilot) -> list[str]:
    return [
        *_batching(cp.spec.runtime.max_batch_size),
        f"instance_group [ {{ count: 1 kind: {_instance_kind(cp)} }} ]",
        _parameter("max_tokens", str(cp.spec.runtime.max_tokens)),
    ]


_BACKEND_BODY = {
    Backend.TENSORRTLLM: _tensorrtllm,
    Backend.PYTHON: _python,
    Backend.ONNXRUNTIME: _onnxruntime,
}


def model_config(cp: CodePilot) -> str:
    """config.pbtxt for the CodePilot's model and backend."""
    header = [
        f"name: {_quote(cp.spec.model.name)}",
        f"backend: {_quote(cp.spec.model.backend.value)}",
        f"max_batch_size: {cp.spec.runtime.max_batch_size}",
    ]
    return "\n".join(header + _BACKEND_BODY[cp.spec.model.backend](cp)) + "\n"
