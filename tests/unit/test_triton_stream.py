"""How clients/triton.py frames Triton's server-sent events when reads split or join them.

The real Triton (tests/e2e/test_api_gateway.py) cannot be made to split an event across network reads
or to send a line without end, so a small HTTP server on loopback writes those byte sequences here.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence

import pytest
from aiohttp import web

from codepilot_operator.clients.triton import (
    MAX_EVENT_BYTES,
    Batch,
    TextRequest,
    TritonClient,
    TritonRequestError,
)
from tests.fixtures.loopback import aiohttp_server


async def _serving(writes: Sequence[bytes], with_end: bytes | None = None) -> AsyncIterator[str]:
    """Each of ``writes`` on its own; ``with_end``, if given, in one send with the end of the body."""

    async def generate_stream(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)
        for data in writes:
            await response.write(data)
            await asyncio.sleep(0.05)  # a separate read on the other side
        await response.write_eof(with_end or b"")
        return response

    async for url in aiohttp_server({"/v2/models/m/generate_stream": generate_stream}):
        yield url


async def _batches(writes: Sequence[bytes], with_end: bytes | None = None) -> list[Batch]:
    batches: list[Batch] = []
    async for url in _serving(writes, with_end):
        client = TritonClient(url)
        try:
            async for batch in client.stream("m", TextRequest(prompt="p", max_tokens=4)):
                batches.append(batch)
        finally:
            await client.close()
    return batches


async def _groups(writes: Sequence[bytes]) -> list[list[str]]:
    return [[p.text for p in batch.pieces] for batch in await _batches(writes)]


def _event(text: str) -> bytes:
    return b'data: {"text_output": "' + text.encode() + b'"}\n\n'


@pytest.mark.asyncio
async def test_events_that_arrive_together_are_passed_on_together() -> None:
    assert await _groups([_event("a") + _event("b") + _event("c"), _event("d")]) == [["a", "b", "c"], ["d"]]


@pytest.mark.asyncio
async def test_events_that_arrive_with_the_end_of_the_answer_are_marked_last() -> None:
    """So the gateway sends them with its closing events in one write; an end that comes on its own
    marks nothing (the stream just stops)."""
    together = await _batches([_event("a")], with_end=_event("b") + _event("c"))
    assert [([p.text for p in b.pieces], b.last) for b in together] == [(["a"], False), (["b", "c"], True)]
    apart = await _batches([_event("a"), _event("b")])
    assert [([p.text for p in b.pieces], b.last) for b in apart] == [(["a"], False), (["b"], False)]


@pytest.mark.asyncio
async def test_an_event_split_across_reads_is_joined() -> None:
    whole = _event("split") + _event("next")
    cut = whole.index(b"split") + 2
    assert await _groups([whole[:cut], whole[cut:]]) == [["split", "next"]]


@pytest.mark.asyncio
async def test_a_last_event_without_its_blank_line_is_not_lost() -> None:
    assert await _groups([_event("a"), b'data: {"text_output": "end"}']) == [["a"], ["end"]]


@pytest.mark.asyncio
async def test_a_line_without_end_is_refused_before_it_fills_memory() -> None:
    chunk = b"data: " + b"x" * (256 * 1024)
    with pytest.raises(TritonRequestError, match=f"over {MAX_EVENT_BYTES} bytes"):
        await _groups([chunk] * 8)


@pytest.mark.asyncio
@pytest.mark.parametrize(
    "bad", [b'data: {"text_output": "a"},{"text_output": "b"}\n\n', b"data: {\n\n", b"data:\n\n"]
)
async def test_an_event_that_is_not_one_json_value_is_refused(bad: bytes) -> None:
    """Events read together are decoded together: one holding two values must not pass as two tokens."""
    with pytest.raises(TritonRequestError, match="not JSON"):
        await _groups([_event("ok") + bad])


@pytest.mark.asyncio
async def test_tokens_before_an_error_event_in_the_same_read_are_passed_on_before_the_error() -> None:
    """The model failed after two tokens: whether its events came in one read or three, the caller
    sees the two tokens and then the failure, so it is judged one mid-answer either way."""
    error = b'data: {"error": "failing mid-answer"}\n\n'
    for writes in ([_event("a") + _event("b") + error], [_event("a"), _event("b"), error]):
        seen: list[str] = []
        async for url in _serving(writes):
            client = TritonClient(url)
            try:
                with pytest.raises(TritonRequestError, match="failing mid-answer"):
                    async for batch in client.stream("m", TextRequest(prompt="p", max_tokens=4)):
                        seen.extend(p.text for p in batch.pieces)
            finally:
                await client.close()
        assert seen == ["a", "b"], writes
