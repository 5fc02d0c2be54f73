"""The standard TensorRT-LLM ensemble, so a ``tensorrtllm`` CodePilot takes text like the python contract.

TensorRT-LLM's engine takes token ids (``input_ids`` -> ``output_ids``); its Triton backend ships the
ensemble that puts a tokenizer before and after it (all_models/inflight_batcher_llm): ``preprocessing``
(python: text -> ids with the tokenizer), ``tensorrt_llm`` (the engine, inflight batching, decoupled
for streaming) and ``postprocessing`` (python: ids -> text). The ensemble is named after the model
(what ``--load-model`` loads and the gateway calls); its inputs and outputs are the text contract:
``prompt_tokens`` is preprocessing's REQUEST_INPUT_LEN and ``completion_tokens`` the engine's
sequence_length (input excluded, so: the tokens in each response). Both python steps read the
tokenizer from the weight snapshot, fetched beside the engine.

Only the inputs and outputs CodePilot uses are declared (the upstream configs also carry multimodal,
LoRA and logits tensors). This cannot run here (no GPU): tests check it structurally, with Triton's own
ModelConfig protobuf and the ensemble wiring rules Triton applies when it loads an ensemble.
"""

from __future__ import annotations

from codepilot_operator.api import CodePilot
from codepilot_operator.api.endpoint import (
    COMPLETION_TOKENS,
    MAX_TOKENS,
    PROMPT_TOKENS,
    STREAM,
    TEXT_INPUT,
    TEXT_OUTPUT,
)
from codepilot_operator.render.pbtxt import batching, block, parameter, quote, tensor
from codepilot_operator.tritonsteps import TEXT_STEPS_SOURCE

PREPROCESSING = "preprocessing"
ENGINE = "tensorrt_llm"
POSTPROCESSING = "postprocessing"
COMPOSING_MODELS = (PREPROCESSING, ENGINE, POSTPROCESSING)
# ConfigMap keys of the files the steps need besides their config.pbtxt
TEXT_STEPS_KEY = "textsteps.py"
ENGINE_VERSION_KEY = "tensorrt_llm-version.txt"
ENGINE_VERSION_NOTE = (
    "Triton wants a version directory for every model; the engine itself is read from the weight "
    "snapshot (the gpt_model_path parameter).\n"
)
OPTIONAL = " optional: true"
SCALAR = " reshape: { shape: [ ] }"


def _header(name: str, backend: str, cp: CodePilot) -> list[str]:
    return [
        f"name: {quote(name)}",
        f"backend: {quote(backend)}",
        f"max_batch_size: {cp.spec.runtime.max_batch_size}",
    ]


def _step(model: str, inputs: dict[str, str], outputs: dict[str, str]) -> str:
    maps = [f"input_map {{ key: {quote(k)} value: {quote(v)} }}" for k, v in inputs.items()]
    maps += [f"output_map {{ key: {quote(k)} value: {quote(v)} }}" for k, v in outputs.items()]
    return f"  {{ model_name: {quote(model)} model_version: -1 " + " ".join(maps) + " }"


def ensemble(cp: CodePilot) -> str:
    lines = [
        f"name: {quote(cp.spec.model.name)}",
        'platform: "ensemble"',
        f"max_batch_size: {cp.spec.runtime.max_batch_size}",
        block(
            "input",
            [
                tensor(TEXT_INPUT, "TYPE_STRING", [1]),
                tensor(MAX_TOKENS, "TYPE_INT32", [1]),
                tensor(STREAM, "TYPE_BOOL", [1], OPTIONAL),
                tensor("temperature", "TYPE_FP32", [1], OPTIONAL),
                tensor("top_p", "TYPE_FP32", [1], OPTIONAL),
                tensor("top_k", "TYPE_INT32", [1], OPTIONAL),
            ],
        ),
        block(
            "output",
            [
                tensor(TEXT_OUTPUT, "TYPE_STRING", [-1]),
                tensor(PROMPT_TOKENS, "TYPE_INT32", [1]),
                tensor(COMPLETION_TOKENS, "TYPE_INT32", [-1]),
            ],
        ),
        "ensemble_scheduling {\n"
        + block(
            "step",
            [
                _step(
                    PREPROCESSING,
                    {"QUERY": TEXT_INPUT, "REQUEST_OUTPUT_LEN": MAX_TOKENS},
                    {
                        "INPUT_ID": "_INPUT_ID",
                        "REQUEST_INPUT_LEN": PROMPT_TOKENS,
                        "REQUEST_OUTPUT_LEN": "_REQUEST_OUTPUT_LEN",
                        "OUT_END_ID": "_END_ID",
                        "OUT_PAD_ID": "_PAD_ID",
                    },
                ),
                _step(
                    ENGINE,
                    {
                        "input_ids": "_INPUT_ID",
                        "input_lengths": PROMPT_TOKENS,
                        "request_output_len": "_REQUEST_OUTPUT_LEN",
                        "end_id": "_END_ID",
                        "pad_id": "_PAD_ID",
                        "streaming": STREAM,
                        "temperature": "temperature",
                        "runtime_top_p": "top_p",
                        "runtime_top_k": "top_k",
                    },
                    {"output_ids": "_TOKENS_BATCH", "sequence_length": COMPLETION_TOKENS},
                ),
                _step(
                    POSTPROCESSING,
                    {"TOKENS_BATCH": "_TOKENS_BATCH", "SEQUENCE_LENGTH": COMPLETION_TOKENS},
                    {"OUTPUT": TEXT_OUTPUT},
                ),
            ],
        )
        + "\n}",
    ]
    return "\n".join(lines) + "\n"


def preprocessing(cp: CodePilot, tokenizer_dir: str) -> str:
    lines = [
        *_header(PREPROCESSING, "python", cp),
        *batching(cp.spec.runtime.max_batch_size),
        block(
            "input",
            [
                tensor("QUERY", "TYPE_STRING", [1]),
                tensor("REQUEST_OUTPUT_LEN", "TYPE_INT32", [1]),
                tensor("END_ID", "TYPE_INT32", [1], OPTIONAL),
                tensor("PAD_ID", "TYPE_INT32", [1], OPTIONAL),
            ],
        ),
        block(
            "output",
            [
                tensor("INPUT_ID", "TYPE_INT32", [-1]),
                tensor("REQUEST_INPUT_LEN", "TYPE_INT32", [1]),
                tensor("REQUEST_OUTPUT_LEN", "TYPE_INT32", [-1]),
                tensor("OUT_END_ID", "TYPE_INT32", [1]),
                tensor("OUT_PAD_ID", "TYPE_INT32", [1]),
            ],
        ),
        parameter("tokenizer_dir", tokenizer_dir),
        parameter("add_special_tokens", "true"),
        "instance_group [ { count: 1 kind: KIND_CPU } ]",
    ]
    return "\n".join(lines) + "\n"


def engine(cp: CodePilot, engine_dir: str) -> str:
    runtime = cp.spec.runtime
    kv_tokens = runtime.max_tokens * max(runtime.max_batch_size, 1)
    lines = [
        *_header(ENGINE, "tensorrtllm", cp),
        "model_transaction_policy { decoupled: true }",
        *batching(runtime.max_batch_size),
        block(
            "input",
            [
                tensor("input_ids", "TYPE_INT32", [-1], " allow_ragged_batch: true"),
                tensor("input_lengths", "TYPE_INT32", [1], SCALAR),
                tensor("request_output_len", "TYPE_INT32", [1], SCALAR),
                tensor("end_id", "TYPE_INT32", [1], SCALAR + OPTIONAL),
                tensor("pad_id", "TYPE_INT32", [1], SCALAR + OPTIONAL),
                tensor("streaming", "TYPE_BOOL", [1], SCALAR + OPTIONAL),
                tensor("temperature", "TYPE_FP32", [1], SCALAR + OPTIONAL),
                tensor("runtime_top_p", "TYPE_FP32", [1], SCALAR + OPTIONAL),
                tensor("runtime_top_k", "TYPE_INT32", [1], SCALAR + OPTIONAL),
            ],
        ),
        block(
            "output",
            [tensor("output_ids", "TYPE_INT32", [-1, -1]), tensor("sequence_length", "TYPE_INT32", [-1])],
        ),
        # the backend places the engine on the GPUs itself
        "instance_group [ { count: 1 kind: KIND_CPU } ]",
        parameter("gpt_model_type", "inflight_fused_batching"),
        parameter("gpt_model_path", engine_dir),
        parameter("batch_scheduler_policy", "guaranteed_no_evict"),
        parameter("max_tokens_in_paged_kv_cache", str(kv_tokens)),
        parameter("max_beam_width", "1"),
        parameter("exclude_input_in_output", "true"),
    ]
    return "\n".join(lines) + "\n"


def postprocessing(cp: CodePilot, tokenizer_dir: str) -> str:
    lines = [
        *_header(POSTPROCESSING, "python", cp),
        *batching(cp.spec.runtime.max_batch_size),
        block(
            "input",
            [tensor("TOKENS_BATCH", "TYPE_INT32", [-1, -1]), tensor("SEQUENCE_LENGTH", "TYPE_INT32", [-1])],
        ),
        block("output", [tensor("OUTPUT", "TYPE_STRING", [-1])]),
        parameter("tokenizer_dir", tokenizer_dir),
        parameter("skip_special_tokens", "true"),
        "instance_group [ { count: 1 kind: KIND_CPU } ]",
    ]
    return "\n".join(lines) + "\n"


def step_files() -> tuple[dict[str, str], dict[str, str]]:
    """The steps' files besides their config.pbtxt: ConfigMap data by key, and the key of each path in
    the model repository. Both text steps run the operator's model.py (tritonsteps/textsteps.py, which
    declares exactly the tensors above); the engine's version directory only has to exist."""
    data = {TEXT_STEPS_KEY: TEXT_STEPS_SOURCE, ENGINE_VERSION_KEY: ENGINE_VERSION_NOTE}
    paths = {
        f"{PREPROCESSING}/1/model.py": TEXT_STEPS_KEY,
        f"{POSTPROCESSING}/1/model.py": TEXT_STEPS_KEY,
        f"{ENGINE}/1/README.txt": ENGINE_VERSION_KEY,
    }
    return data, paths


def composing_configs(cp: CodePilot, weights: str) -> dict[str, str]:
    """config.pbtxt of each model the ensemble calls, by model name."""
    return {
        PREPROCESSING: preprocessing(cp, weights),
        ENGINE: engine(cp, weights),
        POSTPROCESSING: postprocessing(cp, weights),
    }
