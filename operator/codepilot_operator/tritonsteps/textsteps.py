"""Triton python model: the text steps around a TensorRT-LLM engine (``preprocessing``, ``postprocessing``).

Which step it is comes from the model's name in its config.pbtxt (render/ensemble.py writes both). It
runs inside Triton's python backend in the Triton image, so it imports only numpy, the backend's utils
and Hugging Face's ``tokenizers`` (installed there with transformers), never the operator's package.

The tokenizer is the weight snapshot's ``tokenizer.json`` (the format every CodeLlama, StarCoder and
Qwen-Coder release ships), in the directory the config's ``tokenizer_dir`` parameter names, with the
end-of-sequence token (and padding, else the same) from ``tokenizer_config.json`` beside it.

- preprocessing: ``QUERY`` (the prompt) -> ``INPUT_ID`` (right-padded), ``REQUEST_INPUT_LEN`` (what the
  gateway reports as prompt tokens), ``REQUEST_OUTPUT_LEN`` (passed on), ``OUT_END_ID``/``OUT_PAD_ID``.
- postprocessing: ``TOKENS_BATCH`` [batch, beam, tokens] and ``SEQUENCE_LENGTH`` [batch, beam] ->
  ``OUTPUT`` text. A streamed answer comes one response per token and the step keeps no state between
  them, so each piece is decoded as a continuation (after an anchor token, then cut off): decoded
  alone, a SentencePiece token loses its leading space and the pieces would run together. A character
  whose UTF-8 bytes are split over two byte-level tokens still decodes to U+FFFD in each piece.
"""

from __future__ import annotations

import json
import os
from typing import Any

import numpy as np

try:
    import triton_python_backend_utils as pb_utils
except ImportError:  # the tests import this file for its functions, outside Triton
    pb_utils = None

PREPROCESSING = "preprocessing"
POSTPROCESSING = "postprocessing"


def load_tokenizer(directory: str) -> tuple[Any, int, int]:
    """The tokenizer, and its end-of-sequence and padding ids; a missing piece names its file."""
    from tokenizers import Tokenizer

    tokenizer = Tokenizer.from_file(os.path.join(directory, "tokenizer.json"))
    config_path = os.path.join(directory, "tokenizer_config.json")
    config: dict[str, Any] = {}
    if os.path.exists(config_path):
        with open(config_path, encoding="utf-8") as handle:
            config = json.load(handle)
    end_id = special_id(tokenizer, config, "eos_token")
    if end_id is None:
        what = "names no eos_token" if config else "is missing (it names the eos_token)"
        raise ValueError(f"{config_path} {what} that {directory}/tokenizer.json knows")
    pad_id = special_id(tokenizer, config, "pad_token")
    return tokenizer, end_id, end_id if pad_id is None else pad_id


def special_id(tokenizer: Any, config: dict[str, Any], name: str) -> int | None:
    value = config.get(name)
    if isinstance(value, dict):  # {"content": "</s>", ...} in newer tokenizer configs
        value = value.get("content")
    return tokenizer.token_to_id(value) if isinstance(value, str) and value else None


def encode_batch(tokenizer: Any, texts: list[str], add_special_tokens: bool, pad_id: int) -> tuple[Any, Any]:
    """Token ids of each text, right-padded with ``pad_id`` to the longest, and each one's length; a
    text of no tokens (an empty prompt, with a tokenizer that adds no BOS) is refused: the engine cannot
    start from nothing, and a padding token would be generated from while counted as 0 prompt tokens."""
    encoded = [tokenizer.encode(text, add_special_tokens=add_special_tokens).ids for text in texts]
    if not all(encoded):
        raise ValueError("the prompt is empty: this model's tokenizer makes no tokens of it")
    width = max((len(ids) for ids in encoded), default=0)
    ids = np.full((len(encoded), max(width, 1)), pad_id, dtype=np.int32)
    for row, values in enumerate(encoded):
        ids[row, : len(values)] = values
    lengths = np.array([[len(values)] for values in encoded], dtype=np.int32)
    return ids, lengths


class Continuation:
    """Decodes pieces of a longer text so that they concatenate to what decoding it whole gives."""

    def __init__(self, tokenizer: Any, skip_special_tokens: bool = True):
        self.tokenizer, self.skip = tokenizer, skip_special_tokens
        self.anchor = tokenizer.encode("a", add_special_tokens=False).ids[-1:]
        self.prefix = tokenizer.decode(self.anchor, skip_special_tokens=self.skip)

    def decode(self, ids: Any) -> str:
        values = [int(i) for i in ids]
        text = str(self.tokenizer.decode(self.anchor + values, skip_special_tokens=self.skip))
        if text.startswith(self.prefix):
            return text[len(self.prefix) :]
        return str(self.tokenizer.decode(values, skip_special_tokens=self.skip))


def _flag(parameters: dict[str, Any], name: str, default: bool) -> bool:
    value = parameters.get(name, {}).get("string_value", "")
    return value.strip().lower() in ("true", "1", "yes") if value else default


def _texts(tensor: Any) -> list[str]:
    return [
        v.decode("utf-8", errors="replace") if isinstance(v, bytes) else str(v) for v in tensor.reshape(-1)
    ]


class TritonPythonModel:
    def initialize(self, args: dict[str, str]) -> None:
        config = json.loads(args["model_config"])
        parameters = config.get("parameters", {})
        self.step = config["name"]
        if self.step not in (PREPROCESSING, POSTPROCESSING):
            raise ValueError(f"model {self.step}: expected {PREPROCESSING} or {POSTPROCESSING}")
        directory = parameters["tokenizer_dir"]["string_value"]
        self.tokenizer, self.end_id, self.pad_id = load_tokenizer(directory)
        self.add_special_tokens = _flag(parameters, "add_special_tokens", True)
        self.continuation = Continuation(self.tokenizer, _flag(parameters, "skip_special_tokens", True))

    def execute(self, requests: list[Any]) -> list[Any]:
        step = self._preprocess if self.step == PREPROCESSING else self._postprocess
        return [step(request) for request in requests]

    def _optional(self, request: Any, name: str, default: int, rows: int) -> Any:
        tensor = pb_utils.get_input_tensor_by_name(request, name)
        if tensor is not None:
            return tensor.as_numpy().astype(np.int32)
        return np.full((rows, 1), default, dtype=np.int32)

    def _preprocess(self, request: Any) -> Any:
        texts = _texts(pb_utils.get_input_tensor_by_name(request, "QUERY").as_numpy())
        output_len = pb_utils.get_input_tensor_by_name(request, "REQUEST_OUTPUT_LEN").as_numpy()
        try:
            ids, lengths = encode_batch(self.tokenizer, texts, self.add_special_tokens, self.pad_id)
        except ValueError as exc:
            return pb_utils.InferenceResponse(output_tensors=[], error=pb_utils.TritonError(str(exc)))
        rows = len(texts)
        return pb_utils.InferenceResponse(
            [
                pb_utils.Tensor("INPUT_ID", ids),
                pb_utils.Tensor("REQUEST_INPUT_LEN", lengths),
                pb_utils.Tensor("REQUEST_OUTPUT_LEN", output_len.astype(np.int32).reshape(rows, -1)),
                pb_utils.Tensor("OUT_END_ID", self._optional(request, "END_ID", self.end_id, rows)),
                pb_utils.Tensor("OUT_PAD_ID", self._optional(request, "PAD_ID", self.pad_id, rows)),
            ]
        )

    def _postprocess(self, request: Any) -> Any:
        tokens = pb_utils.get_input_tensor_by_name(request, "TOKENS_BATCH").as_numpy()
        lengths = pb_utils.get_input_tensor_by_name(request, "SEQUENCE_LENGTH").as_numpy()
        texts = [
            [
                self.continuation.decode(beam[: int(length)]).encode("utf-8")
                for beam, length in zip(row, row_lengths, strict=True)
            ]
            for row, row_lengths in zip(tokens, lengths, strict=True)
        ]
        return pb_utils.InferenceResponse([pb_utils.Tensor("OUTPUT", np.array(texts, dtype=np.object_))])
