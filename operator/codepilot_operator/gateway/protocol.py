"""The OpenAI wire format: requests in (validated, one clear message per mistake), answers out.

Pure functions only, so every shape an SDK or an editor sends is a unit test. Requests become a
:class:`Generation` (the prompt text Triton gets, its cap, how to answer); answers are built from the
text and the token counts the model reported.
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from pydantic_core import to_json

MAX_STOP_SEQUENCES = 4
# Long enough for any end marker or delimiter a client stops on. It bounds the stop scan: holding back
# a tail that may grow into a stop sequence costs up to its length squared per piece, and one request
# with a stop sequence of a million characters held the gateway's event loop for seconds.
MAX_STOP_CHARACTERS = 256
# Sampling settings passed to the model as request parameters (the model decides what it honours).
PASSED_PARAMETERS = ("temperature", "top_p", "top_k", "seed", "presence_penalty", "frequency_penalty")
CHAT_ROLES = frozenset({"system", "developer", "user", "assistant", "tool"})


class ApiError(Exception):
    """An error answer in OpenAI's shape: ``{"error": {"message", "type", "param", "code"}}``."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        type: str = "invalid_request_error",
        param: str | None = None,
        code: str | None = None,
        retry_after: float | None = None,
    ):
        super().__init__(message)
        self.status, self.message, self.type, self.param, self.code = status, message, type, param, code
        self.retry_after = retry_after

    def body(self) -> dict[str, Any]:
        return {"error": {"message": self.message, "type": self.type, "param": self.param, "code": self.code}}


def invalid(param: str, message: str) -> ApiError:
    return ApiError(400, f"{param}: {message}", param=param, code="invalid_value")


@dataclass(frozen=True)
class Generation:
    kind: str  # "completion" or "chat"
    model: str
    prompt: str
    max_tokens: int
    suffix: str | None = None
    stream: bool = False
    include_usage: bool = False
    stop: tuple[str, ...] = ()
    parameters: Mapping[str, float | int | str | bool] = field(default_factory=dict)


def _int(body: Mapping[str, Any], name: str, default: int | None) -> int | None:
    value = body.get(name)
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, int):
        raise invalid(name, f"expected an integer, got {type(value).__name__}")
    return value


def _max_tokens(body: Mapping[str, Any], names: Sequence[str], default: int, cap: int) -> int:
    for name in names:
        value = _int(body, name, None)
        if value is None:
            continue
        if value < 1:
            raise invalid(name, "must be at least 1")
        if value > cap:
            raise ApiError(
                400,
                f"{name}: {value} is more than this model allows per request ({cap}, spec.runtime.maxTokens)",
                param=name,
                code="max_tokens_exceeded",
            )
        return value
    return min(default, cap)


def _stop(body: Mapping[str, Any]) -> tuple[str, ...]:
    stop = body.get("stop")
    if stop is None:
        return ()
    items = [stop] if isinstance(stop, str) else stop
    if not isinstance(items, list) or not all(isinstance(s, str) for s in items):
        raise invalid("stop", "expected a string or a list of strings")
    if len(items) > MAX_STOP_SEQUENCES:
        raise invalid("stop", f"at most {MAX_STOP_SEQUENCES} sequences")
    for index, item in enumerate(items):
        if len(item) > MAX_STOP_CHARACTERS:
            raise invalid(f"stop[{index}]", f"at most {MAX_STOP_CHARACTERS} characters, got {len(item)}")
    return tuple(s for s in items if s)


def _finite(value: float) -> bool:
    return not isinstance(value, float) or math.isfinite(value)


def _common(body: Any) -> tuple[str, bool, bool, dict[str, Any]]:
    if not isinstance(body, dict):
        raise ApiError(400, "the request body must be a JSON object")
    model = body.get("model")
    if not isinstance(model, str) or not model:
        raise invalid("model", "required (the name from /v1/models)")
    stream = body.get("stream", False)
    if not isinstance(stream, bool):
        raise invalid("stream", "expected true or false")
    options = body.get("stream_options") or {}
    if not isinstance(options, dict):
        raise invalid("stream_options", "expected an object")
    include_usage = options.get("include_usage", False)
    if not isinstance(include_usage, bool):  # "no" would otherwise count as asking for it
        raise invalid("stream_options.include_usage", "expected true or false")
    if _int(body, "n", 1) != 1:
        raise invalid("n", "only n=1 is supported")
    parameters: dict[str, Any] = {}
    for name in PASSED_PARAMETERS:
        value = body.get(name)
        if value is None:
            continue
        # NaN and Infinity parse (pydantic-core allows them, 1e999 overflows) but would reach the model
        # as null; an int is finite however large (math.isfinite would overflow converting it)
        if isinstance(value, bool) or not isinstance(value, int | float) or not _finite(value):
            raise invalid(name, "expected a number")
        parameters[name] = value
    return model, stream, include_usage, parameters


def completion_request(body: Any, cap_for: Mapping[str, int]) -> Generation:
    """``POST /v1/completions``; ``cap_for`` maps served model names to their maxTokens."""
    model, stream, include_usage, parameters = _common(body)
    cap = _cap(model, cap_for)
    prompt = body.get("prompt", "")
    if isinstance(prompt, list):
        if len(prompt) != 1 or not isinstance(prompt[0], str):
            raise invalid(
                "prompt", "expected a string (or a list of exactly one string; token ids are not supported)"
            )
        prompt = prompt[0]
    if not isinstance(prompt, str):
        raise invalid("prompt", "expected a string")
    suffix = body.get("suffix")
    if suffix is not None and not isinstance(suffix, str):
        raise invalid("suffix", "expected a string")
    if body.get("echo"):
        raise invalid("echo", "not supported")
    if body.get("logprobs") is not None:
        raise invalid("logprobs", "not supported")
    if _int(body, "best_of", 1) != 1:
        raise invalid("best_of", "only best_of=1 is supported")
    return Generation(
        "completion",
        model,
        prompt,
        _max_tokens(body, ("max_tokens",), 16, cap),  # OpenAI's default for completions
        suffix=suffix,
        stream=stream,
        include_usage=include_usage,
        stop=_stop(body),
        parameters=parameters,
    )


def _content(message: Mapping[str, Any], index: int) -> str:
    content = message.get("content")
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        parts = []
        for part in content:
            if (
                not isinstance(part, dict)
                or part.get("type") != "text"
                or not isinstance(part.get("text"), str)
            ):
                raise invalid(f"messages[{index}].content", "only text parts are supported")
            parts.append(part["text"])
        return "".join(parts)
    raise invalid(f"messages[{index}].content", "expected a string or a list of text parts")


def chat_prompt(messages: Sequence[tuple[str, str]]) -> str:
    """ChatML, the template of the Qwen-Coder and StarCoder2-Instruct families, ending where the
    assistant's answer starts."""
    turns = [f"<|im_start|>{role}\n{content}<|im_end|>\n" for role, content in messages]
    return "".join(turns) + "<|im_start|>assistant\n"


def chat_request(body: Any, cap_for: Mapping[str, int]) -> Generation:
    """``POST /v1/chat/completions``."""
    model, stream, include_usage, parameters = _common(body)
    cap = _cap(model, cap_for)
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise invalid("messages", "expected a non-empty list")
    turns = []
    for index, message in enumerate(messages):
        if not isinstance(message, dict):
            raise invalid(f"messages[{index}]", "expected an object")
        role = message.get("role")
        if not isinstance(role, str) or role not in CHAT_ROLES:  # a list or object is unhashable
            raise invalid(f"messages[{index}].role", f"expected one of {', '.join(sorted(CHAT_ROLES))}")
        turns.append((str(role), _content(message, index)))
    if body.get("tools"):
        raise invalid("tools", "tool calls are not supported")
    if body.get("suffix") is not None:  # fill-in-the-middle is a completion; chat would drop it
        raise invalid("suffix", "only /v1/completions takes a suffix")
    if body.get("logprobs"):  # answering without them would look like a model that has none
        raise invalid("logprobs", "not supported")
    return Generation(
        "chat",
        model,
        chat_prompt(turns),
        _max_tokens(body, ("max_completion_tokens", "max_tokens"), cap, cap),
        stream=stream,
        include_usage=include_usage,
        stop=(*_stop(body), "<|im_end|>"),
        parameters=parameters,
    )


def _cap(model: str, cap_for: Mapping[str, int]) -> int:
    cap = cap_for.get(model)
    if cap is None:
        raise not_served(model)
    return cap


def not_served(model: str) -> ApiError:
    return ApiError(
        404,
        f"model {model!r} is not served here (GET /v1/models lists what is)",
        param="model",
        code="model_not_found",
    )


# -- answers --------------------------------------------------------------------------------------


def usage(prompt_tokens: int, completion_tokens: int) -> dict[str, int]:
    return {
        "prompt_tokens": prompt_tokens,
        "completion_tokens": completion_tokens,
        "total_tokens": prompt_tokens + completion_tokens,
    }


def finish_reason(stopped: bool, completion_tokens: int, max_tokens: int) -> str:
    if stopped:
        return "stop"
    return "length" if completion_tokens >= max_tokens else "stop"


def new_id(generation: Generation) -> str:
    prefix = "chatcmpl" if generation.kind == "chat" else "cmpl"
    return f"{prefix}-{os.urandom(16).hex()}"  # as random as uuid4's hex, without building a UUID


def _envelope(generation: Generation, answer_id: str, created: int, chunk: bool) -> dict[str, Any]:
    if generation.kind == "chat":
        kind = "chat.completion.chunk" if chunk else "chat.completion"
    else:
        kind = "text_completion"
    return {"id": answer_id, "object": kind, "created": created, "model": generation.model}


def answer(
    generation: Generation, answer_id: str, text: str, reason: str, counts: tuple[int, int]
) -> dict[str, Any]:
    """The whole answer of a non-streamed request."""
    doc = _envelope(generation, answer_id, int(time.time()), chunk=False)
    if generation.kind == "chat":
        choice: dict[str, Any] = {"index": 0, "message": {"role": "assistant", "content": text}}
    else:
        choice = {"index": 0, "text": text, "logprobs": None}
    choice["finish_reason"] = reason
    return {**doc, "choices": [choice], "usage": usage(*counts)}


def chunk(
    generation: Generation,
    answer_id: str,
    created: int,
    text: str,
    reason: str | None = None,
    *,
    first: bool = False,
) -> dict[str, Any]:
    """One streamed event with ``text`` (and the finish reason on the last)."""
    doc = _envelope(generation, answer_id, created, chunk=True)
    if generation.kind == "chat":
        delta: dict[str, Any] = {"content": text}
        if first:
            delta["role"] = "assistant"
        choice: dict[str, Any] = {"index": 0, "delta": delta}
    else:
        choice = {"index": 0, "text": text, "logprobs": None}
    choice["finish_reason"] = reason
    return {**doc, "choices": [choice]}


def encode(doc: object) -> bytes:
    """Compact JSON, UTF-8 as is (pydantic_core's encoder: several times faster than json.dumps)."""
    return to_json(doc)


def event(doc: object) -> bytes:
    """One server-sent event."""
    return b"data: " + to_json(doc) + b"\n\n"


def text_events(generation: Generation, answer_id: str, created: int) -> Callable[[str], bytes]:
    """``event(chunk(..., text))`` for the chunks between the first and the last, from a template:
    a stream sends one per token, so only the text is encoded per event."""
    marker = "\x00TEXT\x00"
    head, tail = event(chunk(generation, answer_id, created, marker)).split(to_json(marker))

    def encode(text: str) -> bytes:
        return head + to_json(text) + tail

    return encode


def usage_chunk(
    generation: Generation, answer_id: str, created: int, counts: tuple[int, int]
) -> dict[str, Any]:
    """The extra last event ``stream_options.include_usage`` asks for: no choices, the totals."""
    return {**_envelope(generation, answer_id, created, chunk=True), "choices": [], "usage": usage(*counts)}


def model_entry(name: str, created: int) -> dict[str, Any]:
    return {"id": name, "object": "model", "created": created, "owned_by": "codepilot"}


def models_list(names: Sequence[str], created: int) -> dict[str, Any]:
    return {"object": "list", "data": [model_entry(n, created) for n in names]}
