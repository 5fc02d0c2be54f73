"""Triton's generate endpoints, spoken with the text contract (api/endpoint.py).

``/v2/models/<m>/generate`` for one answer, ``/generate_stream`` for one server-sent event per
response of a decoupled model. Failures become two kinds a caller can act on: the model cannot be
reached or is not loaded (:class:`TritonUnavailable`: the gateway answers 503), or Triton refused or
failed the request (:class:`TritonRequestError`, with Triton's status and message).
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, Mapping
from dataclasses import dataclass
from typing import Any, NamedTuple

from pydantic_core import from_json, to_json

from codepilot_operator.api.endpoint import (
    COMPLETION_TOKENS,
    MAX_TOKENS,
    PROMPT_TOKENS,
    STREAM,
    SUFFIX,
    TEXT_INPUT,
    TEXT_OUTPUT,
)
from codepilot_operator.clients.http1 import Http1Client, Malformed, Unreachable

# One server-sent event of a text response; aiohttp's own line limit for readline() was 128 KiB.
MAX_EVENT_BYTES = 1024 * 1024


class TritonUnavailable(RuntimeError):
    """Nothing answered, or the model is not loaded/ready: retrying later may work."""


class TritonRequestError(RuntimeError):
    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status


class Piece(NamedTuple):
    """One response of the model: its text and the token counts it reports (the prompt's; this
    response's completion tokens, which the gateway sums over a stream). A tuple: a stream makes one
    per token, and a frozen dataclass costs several times more to build."""

    text: str
    prompt_tokens: int | None
    completion_tokens: int | None


class Batch(NamedTuple):
    """The pieces one network read brought; ``last`` when the answer ended within that read too, so
    the caller can send them with its closing events in one write."""

    pieces: list[Piece]
    last: bool


@dataclass(frozen=True)
class TextRequest:
    prompt: str
    max_tokens: int
    suffix: str | None = None
    parameters: Mapping[str, float | int | str | bool] | None = None  # sampling settings, passed through


def _payload(request: TextRequest, stream: bool) -> bytes:
    body: dict[str, Any] = dict(request.parameters or {})
    body.update({TEXT_INPUT: request.prompt, MAX_TOKENS: request.max_tokens, STREAM: stream})
    if request.suffix is not None:
        body[SUFFIX] = request.suffix
    return to_json(body)


def _count(doc: Mapping[str, Any], key: str) -> int | None:
    value = doc.get(key)
    if type(value) is int:  # what Triton sends: decided without the checks below
        return value
    if isinstance(value, list):  # a [1] tensor may come back as a list
        value = value[0] if value else None
    return int(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def parse_piece(doc: Any) -> Piece:
    if not isinstance(doc, dict):
        raise TritonRequestError(502, "Triton answered something that is not a JSON object")
    if "error" in doc:
        raise TritonRequestError(400, str(doc["error"]))
    text = doc.get(TEXT_OUTPUT, "")
    if type(text) is not str:
        text = "".join(str(t) for t in text) if isinstance(text, list) else str(text)
    return Piece(text, _count(doc, PROMPT_TOKENS), _count(doc, COMPLETION_TOKENS))


def event_pieces(lines: list[bytes]) -> tuple[list[Piece], TritonRequestError | None]:
    """The pieces of the ``data:`` lines among ``lines``, decoded with one JSON parse for all of them
    (a stream brings one event per token; a parse per event was the client's largest own cost), up to
    an error event, which comes back beside them: the tokens before a failure in the same read still
    count as generated, so the failure is seen as one mid-answer, whatever the reads' grouping."""
    events = [line[5:] for line in lines if line.startswith(b"data:")]
    if not events:
        return [], None
    try:
        docs = from_json(b"[" + b",".join(events) + b"]")
    except ValueError:
        docs = None
    if not isinstance(docs, list) or len(docs) != len(events):  # an event that is not one JSON value
        raise TritonRequestError(502, "Triton sent an event that is not JSON")
    pieces = []
    for doc in docs:
        try:
            pieces.append(parse_piece(doc))
        except TritonRequestError as exc:
            return pieces, exc
    return pieces, None


_UNAVAILABLE_HINTS = ("unknown model", "not ready", "unavailable", "no available versions", "not found")


def _failure(status: int, body: bytes) -> Exception:
    if body.startswith(b"data:"):  # generate_stream refuses with its error as one event
        body = body[5:].strip()
    try:
        message = str(from_json(body).get("error", ""))
    except (ValueError, AttributeError):
        message = body.decode(errors="replace")[:300]
    if status in (404, 502, 503, 504) or any(h in message.lower() for h in _UNAVAILABLE_HINTS):
        return TritonUnavailable(f"model unavailable (Triton HTTP {status}): {message}")
    return TritonRequestError(status, message or f"Triton HTTP {status}")


class TritonClient:
    """Keep-alive connections per upstream (what keeps added latency low), over the lean HTTP/1.1
    client of clients/http1.py: per streamed request it costs a third of aiohttp's client's CPU."""

    def __init__(self, base_url: str, host: str | None = None, timeout: float = 300.0, connections: int = 64):
        self.base_url = base_url.rstrip("/")
        self._http = Http1Client(self.base_url, host, timeout, max_idle=connections)

    async def close(self) -> None:
        await self._http.close()

    def _unreachable(self, exc: Exception) -> TritonUnavailable:
        return TritonUnavailable(f"Triton at {self.base_url} unreachable: {exc}")

    async def generate(self, model: str, request: TextRequest) -> Piece:
        try:
            async with self._http.request(
                "POST", f"/v2/models/{model}/generate", _payload(request, False)
            ) as r:
                body = await r.read()
        except Unreachable as exc:
            raise self._unreachable(exc) from None
        except Malformed as exc:
            raise TritonRequestError(502, str(exc)) from None
        if r.status != 200:
            raise _failure(r.status, body)
        try:
            return parse_piece(from_json(body))
        except ValueError:
            raise TritonRequestError(502, "Triton answered invalid JSON") from None

    async def stream(self, model: str, request: TextRequest) -> AsyncGenerator[Batch, None]:
        """Pieces in the groups one network read brought them in; the connection closes (cancelling
        upstream) when the caller stops.

        A model that emits tokens faster than they travel delivers several events per read. Passing
        them on as a group lets the gateway write them with one send instead of one per token (on
        loopback a send cost ~90 us of the gateway's CPU, its largest cost), and nothing waits for a
        group to fill: whatever has arrived goes on at once.
        """
        path = f"/v2/models/{model}/generate_stream"
        try:
            async with self._http.request("POST", path, _payload(request, True)) as r:
                if r.status != 200:
                    raise _failure(r.status, await r.read())
                pending = b""
                while data := await r.chunk():
                    *lines, pending = (pending + data).split(b"\n")
                    if len(pending) > MAX_EVENT_BYTES:
                        raise TritonRequestError(502, f"Triton sent an event over {MAX_EVENT_BYTES} bytes")
                    last = r.at_end  # the end of the answer came in this same read
                    if last:
                        lines.append(pending)
                        pending = b""
                    pieces, error = event_pieces(lines)
                    if pieces or (last and error is None):
                        yield Batch(pieces, last and error is None)
                    if error is not None:
                        raise error
                if pending.startswith(b"data:"):
                    pieces, error = event_pieces([pending])
                    yield Batch(pieces, error is None)
                    if error is not None:
                        raise error
        except Unreachable as exc:
            raise self._unreachable(exc) from None
        except Malformed as exc:
            raise TritonRequestError(502, str(exc)) from None
