"""The gateway's pure parts: rate limits with a moved clock, stop sequences over a stream, the OpenAI
request checks a user meets, and keys read from mounted Secrets."""

from __future__ import annotations

import asyncio
import json
from itertools import pairwise
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st
from prometheus_client import generate_latest

from codepilot_operator.gateway import metrics, protocol
from codepilot_operator.gateway.keys import KeyStore, Team
from codepilot_operator.gateway.limits import RateLimiter
from codepilot_operator.gateway.protocol import ApiError
from codepilot_operator.gateway.queue import ModelQueue
from codepilot_operator.gateway.stop import StopScanner
from tests.fixtures.gateway import write_key

CAPS = {"coder": 64}

# -- limits ------------------------------------------------------------------------------------------


def test_requests_per_minute_burst_then_steady_rate() -> None:
    limiter = RateLimiter()
    assert [limiter.admit("a", 3, 0, now=100.0) for _ in range(3)] == [None, None, None]
    refusal = limiter.admit("a", 3, 0, now=100.0)
    assert refusal is not None and refusal.limit == "requests"
    assert refusal.retry_after == pytest.approx(20.0)  # one request back every 60/3 s
    assert limiter.admit("a", 3, 0, now=119.0) is not None
    assert limiter.admit("a", 3, 0, now=120.0) is None
    assert limiter.admit("a", 3, 0, now=120.0) is not None


def test_limits_are_per_team() -> None:
    limiter = RateLimiter()
    for _ in range(2):
        limiter.admit("a", 2, 0, now=0.0)
    assert limiter.admit("a", 2, 0, now=0.0) is not None
    assert limiter.admit("b", 2, 0, now=0.0) is None


def test_tokens_are_charged_after_the_answer_and_a_debt_blocks_until_paid() -> None:
    limiter = RateLimiter()
    assert limiter.admit("a", 0, 60, now=0.0) is None
    limiter.charge("a", 50, now=0.0)
    assert limiter.admit("a", 0, 60, now=0.0) is None  # 10 left
    limiter.charge("a", 40, now=0.0)  # 30 in debt
    refusal = limiter.admit("a", 0, 60, now=0.0)
    assert refusal is not None and refusal.limit == "tokens"
    assert refusal.retry_after == pytest.approx(30.0)  # 60 tokens per minute pay 30 back in 30 s
    assert limiter.admit("a", 0, 60, now=30.1) is None


def test_a_refunded_request_is_admitted_again_but_never_beyond_the_limit() -> None:
    limiter = RateLimiter()
    for _ in range(2):
        assert limiter.admit("a", 2, 0, now=0.0) is None
    limiter.refund("a", now=0.0)
    assert limiter.admit("a", 2, 0, now=0.0) is None
    assert limiter.admit("a", 2, 0, now=0.0) is not None
    for _ in range(5):
        limiter.refund("a", now=60.0)  # full again by then: nothing more to give back
    assert [limiter.admit("a", 2, 0, now=60.0) is None for _ in range(3)] == [True, True, False]


def test_zero_means_unlimited_and_a_changed_limit_starts_afresh() -> None:
    limiter = RateLimiter()
    assert all(limiter.admit("a", 0, 0, now=0.0) is None for _ in range(1000))
    limiter.admit("b", 1, 0, now=0.0)
    assert limiter.admit("b", 1, 0, now=0.0) is not None
    assert limiter.admit("b", 5, 0, now=0.0) is None  # the team's Secret now allows 5


# -- stop sequences ----------------------------------------------------------------------------------


def test_a_stop_sequence_split_over_pieces_is_never_sent() -> None:
    scanner = StopScanner(["<|im_end|>"])
    sent = [scanner.feed(p) for p in ["def f", "():<|im", "_end|>", "more"]]
    assert sent == ["def f", "():", "", ""]
    assert scanner.stopped and scanner.flush() == ""


def test_a_held_back_prefix_is_released_when_it_does_not_become_a_stop() -> None:
    scanner = StopScanner(["\n\n"])
    assert scanner.feed("a\n") == "a"
    assert scanner.feed("b") == "\nb"
    assert scanner.feed("c\n") == "c"
    assert scanner.flush() == "\n"


@given(st.text(alphabet="ab\n<|>", max_size=40), st.lists(st.integers(0, 40), max_size=6))
def test_streamed_text_equals_the_whole_text_cut_at_the_first_stop(text: str, cuts: list[int]) -> None:
    stops = ["\n\n", "<|>", "ab"]
    bounds = sorted({0, len(text), *(min(c, len(text)) for c in cuts)})
    scanner = StopScanner(stops)
    streamed = "".join(scanner.feed(text[a:b]) for a, b in pairwise(bounds))
    streamed += scanner.flush()
    first = min((i for i in (text.find(s) for s in stops) if i >= 0), default=len(text))
    assert streamed == text[:first]


# -- requests ----------------------------------------------------------------------------------------


def test_a_seed_too_large_for_a_float_is_passed_on_as_the_integer_it_is() -> None:
    generation = protocol.completion_request({"model": "coder", "prompt": "x", "seed": 10**400}, CAPS)
    assert generation.parameters == {"seed": 10**400}


def test_a_completion_request_becomes_a_generation() -> None:
    generation = protocol.completion_request(
        {"model": "coder", "prompt": ["def f("], "suffix": ")", "max_tokens": 8, "temperature": 0.2}, CAPS
    )
    assert (generation.prompt, generation.suffix, generation.max_tokens) == ("def f(", ")", 8)
    assert generation.parameters == {"temperature": 0.2}
    assert protocol.completion_request({"model": "coder", "prompt": "x"}, CAPS).max_tokens == 16


@pytest.mark.parametrize(
    ("body", "status", "message"),
    [
        (
            {"model": "coder", "prompt": "x", "max_tokens": 65},
            400,
            "max_tokens: 65 is more than this model allows",
        ),
        ({"model": "coder", "prompt": "x", "max_tokens": 0}, 400, "max_tokens: must be at least 1"),
        ({"model": "other", "prompt": "x"}, 404, "model 'other' is not served here"),
        ({"prompt": "x"}, 400, "model: required"),
        ({"model": "coder", "prompt": [1, 2]}, 400, "prompt: expected a string"),
        ({"model": "coder", "prompt": "x", "n": 2}, 400, "n: only n=1"),
        ({"model": "coder", "prompt": "x", "stop": ["a"] * 5}, 400, "stop: at most 4"),
        ({"model": "coder", "prompt": "x", "max_tokens": "8"}, 400, "max_tokens: expected an integer"),
        (["not", "an", "object"], 400, "the request body must be a JSON object"),
        ({"model": "coder", "prompt": "x", "best_of": 3}, 400, "best_of: only best_of=1"),
        ({"model": "coder", "prompt": "x", "stop": ["\n", "ab" * 129]}, 400, "stop[1]: at most 256"),
        (
            {"model": "coder", "prompt": "x", "temperature": float("nan")},
            400,
            "temperature: expected a number",
        ),
        ({"model": "coder", "prompt": "x", "top_p": float("inf")}, 400, "top_p: expected a number"),
        (
            {"model": "coder", "prompt": "x", "stream": True, "stream_options": {"include_usage": "no"}},
            400,
            "stream_options.include_usage: expected true or false",
        ),
    ],
)
def test_bad_completion_requests_get_one_clear_message(body: object, status: int, message: str) -> None:
    with pytest.raises(ApiError) as caught:
        protocol.completion_request(body, CAPS)
    assert caught.value.status == status
    assert caught.value.message.startswith(message)


def test_chat_uses_chatml_and_the_cap_by_default() -> None:
    generation = protocol.chat_request(
        {"model": "coder", "messages": [{"role": "user", "content": [{"type": "text", "text": "hi"}]}]}, CAPS
    )
    assert generation.prompt == "<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n"
    assert generation.max_tokens == 64 and "<|im_end|>" in generation.stop
    with pytest.raises(ApiError, match=r"messages\[0\]\.role"):
        protocol.chat_request({"model": "coder", "messages": [{"role": "robot", "content": "x"}]}, CAPS)
    with pytest.raises(ApiError, match="max_completion_tokens: 100 is more"):
        protocol.chat_request(
            {"model": "coder", "messages": [{"role": "user", "content": "x"}], "max_completion_tokens": 100},
            CAPS,
        )


def test_chat_refuses_a_suffix_instead_of_answering_as_if_there_were_none() -> None:
    body = {"model": "coder", "messages": [{"role": "user", "content": "a"}], "suffix": "b"}
    with pytest.raises(ApiError, match="suffix: only /v1/completions takes a suffix"):
        protocol.chat_request(body, CAPS)


def test_chat_refuses_logprobs_instead_of_answering_without_them() -> None:
    body = {"model": "coder", "messages": [{"role": "user", "content": "a"}]}
    with pytest.raises(ApiError, match="logprobs: not supported"):
        protocol.chat_request({**body, "logprobs": True}, CAPS)
    assert protocol.chat_request({**body, "logprobs": False}, CAPS).prompt


@pytest.mark.parametrize("role", [["user"], {"name": "user"}, 5, None])
def test_a_role_that_is_not_a_string_is_a_400_naming_the_message(role: object) -> None:
    with pytest.raises(ApiError, match=r"messages\[1\]\.role: expected one of"):
        messages = [{"role": "user", "content": "a"}, {"role": role, "content": "b"}]
        protocol.chat_request({"model": "coder", "messages": messages}, CAPS)


def test_finish_reason_is_length_only_when_the_cap_was_reached() -> None:
    assert protocol.finish_reason(False, 8, 8) == "length"
    assert protocol.finish_reason(False, 3, 8) == "stop"
    assert protocol.finish_reason(True, 8, 8) == "stop"


# -- keys --------------------------------------------------------------------------------------------


def test_keys_come_from_secret_directories_with_their_limits(tmp_path: Path) -> None:
    write_key(tmp_path, "team-a", "sk-a\n", requests_per_minute=5)
    write_key(tmp_path, "team-b", "sk-b")
    (tmp_path / "team-empty").mkdir()  # a Secret without the api-key key
    store = KeyStore(tmp_path)
    store.refresh()
    assert store.team("sk-a") == Team("team-a", 5, None)
    assert store.team("sk-b") == Team("team-b")
    assert store.team("sk-c") is None and store.team("") is None


def test_a_bad_limit_skips_that_secret_only_and_removed_keys_stop_working(tmp_path: Path) -> None:
    write_key(tmp_path, "team-a", "sk-a")
    write_key(tmp_path, "team-bad", "sk-bad")
    (tmp_path / "team-bad" / "tokens-per-minute").write_text("lots")
    store = KeyStore(tmp_path)
    store.refresh()
    assert store.team("sk-a") is not None and store.team("sk-bad") is None
    (tmp_path / "team-a" / "api-key").unlink()
    store.refresh()
    assert store.team("sk-a") is None


@pytest.mark.parametrize("kind", ["completion", "chat"])
@given(text=st.text(max_size=20))
def test_templated_stream_events_are_the_chunks_themselves(kind: str, text: str) -> None:
    generation = protocol.Generation(kind, "coder", "p", 8)
    encoded = protocol.text_events(generation, "id-1", 123)(text)
    assert encoded.startswith(b"data: ") and encoded.endswith(b"\n\n")
    assert json.loads(encoded[6:]) == protocol.chunk(generation, "id-1", 123, text)


# -- queue gauges ------------------------------------------------------------------------------------


def _gauge(name: str, model: str) -> str:
    for line in generate_latest(metrics.REGISTRY).decode().splitlines():
        if line.startswith(f'{name}{{model="{model}"}}'):
            return line.rsplit(" ", 1)[1]
    raise AssertionError(f"{name} for {model} not exported")


@pytest.mark.asyncio
async def test_queue_gauges_say_what_the_queue_holds_when_scraped() -> None:
    queue = ModelQueue(max_concurrency=1, max_queue=4, queue_timeout=30)
    metrics.watch_queue("gauged", lambda: queue.waiting, lambda: queue.in_flight)
    assert (
        _gauge("codepilot_api_in_flight_requests", "gauged"),
        _gauge("codepilot_api_queued_requests", "gauged"),
    ) == ("0.0", "0.0")
    release = asyncio.Event()

    async def request() -> None:
        async with queue.slot():
            await release.wait()

    requests = [asyncio.create_task(request()) for _ in range(3)]
    for _ in range(2):  # every request runs up to its slot
        await asyncio.sleep(0)
    assert _gauge("codepilot_api_in_flight_requests", "gauged") == "1.0"
    assert _gauge("codepilot_api_queued_requests", "gauged") == "2.0"
    release.set()
    await asyncio.gather(*requests)
    assert _gauge("codepilot_api_in_flight_requests", "gauged") == "0.0"
    assert _gauge("codepilot_api_queued_requests", "gauged") == "0.0"
