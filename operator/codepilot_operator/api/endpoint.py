"""The OpenAI-compatible endpoint's two contracts, in their one home.

- The Triton text contract: the tensor names every served model takes and returns, so the gateway
  can call any CodePilot's ``/v2/models/<m>/generate`` with a prompt. The python backend's config and
  the TensorRT-LLM ensemble are rendered with these names; the gateway's Triton client sends them.
- The gateway's configuration file: what the operator renders into the gateway's ConfigMap and what
  ``codepilot gateway`` reads. Both sides parse it through this model, so they cannot disagree.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel

# Inputs (JSON keys of a generate request that match an input name become that input).
TEXT_INPUT = "text_input"
MAX_TOKENS = "max_tokens"
STREAM = "stream"
SUFFIX = "suffix"
# Outputs: the text of this response (one token's text when streaming) and the counts the model's own
# tokenizer reports: prompt_tokens for the whole prompt (suffix included) in every response,
# completion_tokens for the tokens in *this* response (what TensorRT-LLM's sequence_length says with
# the input excluded), so the gateway sums them over a stream.
TEXT_OUTPUT = "text_output"
PROMPT_TOKENS = "prompt_tokens"
COMPLETION_TOKENS = "completion_tokens"

# The gateway's ports: the OpenAI API, and /metrics with the probes.
API_PORT = 8080
OPS_PORT = 9090

# Secret keys a team's API key Secret may hold (mounted as files named after them).
KEY_FILE = "api-key"
RPM_FILE = "requests-per-minute"
TPM_FILE = "tokens-per-minute"


class _Config(BaseModel):
    # no inf/nan: an infinite timeout or queue wait would be a request that never ends
    model_config = ConfigDict(
        extra="forbid", alias_generator=to_camel, populate_by_name=True, allow_inf_nan=False
    )


class GatewayModel(_Config):
    """One model the gateway serves under an OpenAI model name (the CodePilot's name)."""

    name: Annotated[str, Field(min_length=1, max_length=253)]
    triton_model: Annotated[str, Field(min_length=1, max_length=128)]
    # Where requests go: the CodePilot's entry Service (split by Ready replicas) or the Gateway its
    # HTTPRoute attaches to (split by weight); never a per-version Service.
    upstream: Annotated[str, Field(pattern=r"^https?://[^\s/]+(/\S*)?$")]
    host: str | None = None  # Host header for a Gateway listener that matches hostnames
    max_tokens: Annotated[int, Field(ge=1)]
    supports_suffix: bool = True  # the model takes the suffix input (fill-in-the-middle)
    # A whole answer with stop sequences is read as a stream and closed at the stop (the generation
    # ends there, and usage counts what was generated up to it) where streamed pieces are exact text.
    stream_stops: bool = True
    max_concurrency: Annotated[int, Field(ge=1)] = 8
    max_queue: Annotated[int, Field(ge=0)] = 64
    queue_timeout_seconds: Annotated[float, Field(gt=0)] = 30.0


class GatewayConfig(_Config):
    models: list[GatewayModel] = Field(min_length=1)
    keys_dir: str  # one directory per key Secret: <keysDir>/<secret>/{api-key,requests-per-minute,...}
    requests_per_minute: Annotated[int, Field(ge=0)] = 60  # per key; 0: unlimited
    tokens_per_minute: Annotated[int, Field(ge=0)] = 0
    request_timeout_seconds: Annotated[float, Field(gt=0)] = 300.0
    keys_refresh_seconds: Annotated[float, Field(gt=0)] = 10.0
