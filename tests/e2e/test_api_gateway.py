"""The OpenAI-compatible endpoint end to end: the official openai SDK -> the gateway process (its
rendered configuration) -> a real Triton running the rendered python-backend config and a decoupled
text model that streams one response per token (tests/fixtures/triton_model/model.py).

Two CodePilots, each with its own gateway as the operator renders them, share one Triton (standing in
for their two entry Services). Every test uses keys of its own so limits never leak between tests.
"""

from __future__ import annotations

import asyncio
import json
import shutil
import socket
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import openai
import pytest

from codepilot_operator.api import CodePilot
from codepilot_operator.loader import parse_codepilot
from tests.fixtures.gateway import GatewayProcess, local_config, start_gateway, write_key
from tests.fixtures.rollout_lab import set_behaviour
from tests.fixtures.triton import TritonServer, start_triton
from tests.fixtures.triton_model.model import completion, tokens

MAX_TOKENS = 64
KEY_SECRETS = [
    "team-a",
    "team-b",
    "team-rpm",
    "team-rpm-other",
    "team-tpm",
    "team-burst",
    "team-chat",
    "team-gone",
    "team-big",
    "team-refused",
]


def _codepilot(name: str, model: str, **api: Any) -> CodePilot:
    return parse_codepilot(
        {
            "apiVersion": "serving.codepilot.dev/v1alpha1",
            "kind": "CodePilot",
            "metadata": {"name": name, "namespace": "team-a"},
            "spec": {
                "model": {
                    "name": model,
                    "version": "v1",
                    "backend": "python",
                    "source": {"uri": f"s3://models/{model}/v1", "endpoint": "http://minio:9000"},
                },
                "runtime": {"gpus": 0, "maxTokens": MAX_TOKENS, "maxBatchSize": 4},
                "api": {"enabled": True, "keySecrets": KEY_SECRETS, "requestsPerMinute": 600, **api},
            },
        }
    )


@dataclass
class Lab:
    triton: TritonServer
    coder: GatewayProcess  # CodePilot "coder", Triton model starcoder_api
    reviewer: GatewayProcess  # CodePilot "reviewer", Triton model codellama_api
    keys: Path

    def client(self, key: str, gateway: GatewayProcess | None = None) -> openai.OpenAI:
        return openai.OpenAI(base_url=(gateway or self.coder).base_url, api_key=key, max_retries=0)

    def async_client(self, key: str) -> openai.AsyncOpenAI:
        return openai.AsyncOpenAI(base_url=self.coder.base_url, api_key=key, max_retries=0, timeout=60)


@pytest.fixture(scope="module")
def lab() -> Iterator[Lab]:
    workdir = Path(tempfile.mkdtemp(prefix="codepilot-api-"))
    coder = _codepilot("coder", "starcoder_api", maxConcurrency=2, maxQueue=4, queueTimeout="20s")
    reviewer = _codepilot("reviewer", "codellama_api")
    keys = workdir / "keys"
    write_key(keys, "team-a", "sk-team-a")
    write_key(keys, "team-b", "sk-team-b")
    write_key(keys, "team-rpm", "sk-team-rpm", requests_per_minute=3)
    write_key(keys, "team-rpm-other", "sk-team-rpm-other", requests_per_minute=3)
    write_key(keys, "team-tpm", "sk-team-tpm", tokens_per_minute=20)
    write_key(keys, "team-burst", "sk-team-burst")
    write_key(keys, "team-chat", "sk-team-chat")
    write_key(keys, "team-gone", "sk-team-gone")
    write_key(keys, "team-big", "sk-team-big")
    write_key(keys, "team-refused", "sk-team-refused", requests_per_minute=2)
    triton = start_triton(coder, workdir / "triton", also=[reviewer])
    gateways: list[GatewayProcess] = []
    try:
        for cp in (coder, reviewer):
            gateways.append(start_gateway(local_config(cp, triton, keys), workdir / cp.metadata.name))
        yield Lab(triton, gateways[0], gateways[1], keys)
    finally:
        for gateway in gateways:
            gateway.stop()
        triton.stop()
        shutil.rmtree(workdir, ignore_errors=True)


def expected(model: str, suffix: str = "", max_tokens: int = MAX_TOKENS) -> str:
    return "".join(tokens(completion(model, suffix))[:max_tokens])


def test_completion_has_the_models_text_and_usage(lab: Lab) -> None:
    answer = lab.client("sk-team-a").completions.create(model="coder", prompt="def add(a, b):", max_tokens=32)
    assert answer.model == "coder"
    assert answer.choices[0].text == expected("starcoder_api")
    assert answer.choices[0].finish_reason == "stop"
    assert answer.usage is not None
    assert (answer.usage.prompt_tokens, answer.usage.completion_tokens) == (
        3,
        len(tokens(expected("starcoder_api"))),
    )
    assert answer.usage.total_tokens == answer.usage.prompt_tokens + answer.usage.completion_tokens


def test_fill_in_the_middle_passes_the_suffix_to_the_model(lab: Lab) -> None:
    prompt, suffix = "def add(a, b):\n    ", "\n\nprint(add(1, 2))"
    answer = lab.client("sk-team-a").completions.create(
        model="coder", prompt=prompt, suffix=suffix, max_tokens=32
    )
    assert answer.choices[0].text == expected("starcoder_api", suffix)
    assert "before print(add(1, 2))" in answer.choices[0].text
    assert answer.usage is not None
    assert answer.usage.prompt_tokens == len(tokens(prompt)) + len(tokens(suffix))  # the suffix is prompt too


def test_max_tokens_cuts_the_answer_with_finish_reason_length(lab: Lab) -> None:
    answer = lab.client("sk-team-a").completions.create(model="coder", prompt="x = ", max_tokens=2)
    assert answer.choices[0].text == expected("starcoder_api", max_tokens=2)
    assert answer.choices[0].finish_reason == "length"
    assert answer.usage is not None and answer.usage.completion_tokens == 2


def test_a_stop_sequence_ends_the_answer_and_its_usage_there_streamed_or_not(lab: Lab) -> None:
    """Triton has no stop input: the gateway cuts the text and closes the generation at the stop, so
    the usage (what the team is charged) counts the tokens generated up to it, whole or streamed."""
    full = tokens(expected("starcoder_api"))
    stop_at = next(n for n, token in enumerate(full) if "completed" in token)
    client = lab.client("sk-team-a")
    whole = client.completions.create(model="coder", prompt="x", max_tokens=32, stop=["completed"])
    chunks = list(
        client.completions.create(model="coder", prompt="x", max_tokens=32, stop="completed", stream=True)
    )
    streamed = "".join(c.choices[0].text for c in chunks if c.choices)
    assert whole.choices[0].text == streamed == "".join(full[:stop_at]) + " "
    assert whole.choices[0].finish_reason == "stop"
    assert whole.usage is not None and chunks[-1].usage is not None
    assert whole.usage.completion_tokens == chunks[-1].usage.completion_tokens == stop_at + 1 < len(full)


def test_a_model_failing_mid_answer_is_a_502_whole_or_streamed(lab: Lab) -> None:
    """After some tokens the model fails: a whole answer read as a stream (it has a stop) is the
    model's failure, 502, as a stream's error event says, never a 400 the SDKs would not retry."""
    set_behaviour(lab.triton, fail_after_tokens=2)
    client = lab.client("sk-team-a")
    try:
        with pytest.raises(openai.APIStatusError) as whole:
            client.completions.create(model="coder", prompt="x", max_tokens=32, stop=["never said"])
        with pytest.raises(openai.APIError, match="failed while answering"):
            list(client.completions.create(model="coder", prompt="x", max_tokens=32, stream=True))
    finally:
        set_behaviour(lab.triton)
    assert whole.value.status_code == 502 and "failed while answering" in whole.value.message


def test_more_than_max_tokens_is_a_clear_400(lab: Lab) -> None:
    with pytest.raises(openai.BadRequestError) as caught:
        lab.client("sk-team-a").completions.create(model="coder", prompt="x", max_tokens=MAX_TOKENS + 1)
    assert caught.value.status_code == 400
    assert f"more than this model allows per request ({MAX_TOKENS}" in caught.value.message


def test_chat_answers_as_the_assistant_with_usage(lab: Lab) -> None:
    answer = lab.client("sk-team-chat").chat.completions.create(
        model="coder",
        messages=[
            {"role": "system", "content": "You write Python."},
            {"role": "user", "content": "add two ints"},
        ],
        max_tokens=16,
    )
    message = answer.choices[0].message
    assert message.role == "assistant" and message.content == expected("starcoder_api", max_tokens=16)
    assert answer.usage is not None and answer.usage.completion_tokens == len(tokens(message.content))
    assert answer.usage.prompt_tokens > 0


def test_streaming_arrives_chunk_by_chunk_with_usage(lab: Lab) -> None:
    stream = lab.client("sk-team-a").completions.create(
        model="coder",
        prompt="def add(a, b):",
        max_tokens=32,
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = list(stream)
    texts = [c.choices[0].text for c in chunks if c.choices and c.choices[0].text]
    assert texts == tokens(expected("starcoder_api"))  # one event per token the model streamed
    finals = [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason]
    assert finals == ["stop"]
    assert chunks[-1].choices == [] and chunks[-1].usage is not None
    assert (chunks[-1].usage.prompt_tokens, chunks[-1].usage.completion_tokens) == (3, len(texts))


def test_each_token_reaches_the_client_as_the_model_sends_it(lab: Lab) -> None:
    """Not held back until the answer is complete: with the model's tokens 0.3 s apart, the first chunk
    arrives long before the last (through a gateway that buffered they would arrive together)."""
    set_behaviour(lab.triton, token_seconds=0.3)
    try:
        arrivals = [
            time.monotonic()
            for chunk in lab.client("sk-team-a").completions.create(
                model="coder", prompt="x", max_tokens=32, stream=True
            )
            if chunk.choices and chunk.choices[0].text
        ]
    finally:
        set_behaviour(lab.triton)  # back to answering at once
    assert len(arrivals) == len(tokens(expected("starcoder_api")))
    assert arrivals[-1] - arrivals[0] > 1.0  # six gaps of 0.3 s


def test_streamed_chat_without_include_usage_still_reports_usage(lab: Lab) -> None:
    stream = lab.client("sk-team-chat").chat.completions.create(
        model="coder", messages=[{"role": "user", "content": "hi"}], max_tokens=4, stream=True
    )
    chunks = list(stream)
    assert chunks[0].choices[0].delta.role == "assistant"
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == expected("starcoder_api", max_tokens=4)
    assert chunks[-1].choices[0].finish_reason == "length"
    assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens == 4


def test_a_wrong_key_is_401(lab: Lab) -> None:
    with pytest.raises(openai.AuthenticationError) as caught:
        lab.client("sk-not-a-key").completions.create(model="coder", prompt="x", max_tokens=2)
    assert caught.value.status_code == 401
    with pytest.raises(openai.AuthenticationError):
        lab.client("sk-not-a-key").models.list()


def test_a_key_added_to_its_secret_works_without_restart(lab: Lab) -> None:
    client = lab.client("sk-late-team")
    with pytest.raises(openai.AuthenticationError):
        client.models.list()
    write_key(lab.keys, "team-late", "sk-late-team")
    for _ in range(100):  # the gateway re-reads the mounted Secrets every 0.2 s here
        try:
            assert [m.id for m in client.models.list()] == ["coder"]
            break
        except openai.AuthenticationError:
            asyncio.run(asyncio.sleep(0.1))
    else:
        raise AssertionError("the new key was never accepted")
    shutil.rmtree(lab.keys / "team-late")


def _status_codes(client: openai.OpenAI, count: int) -> list[tuple[int, str | None]]:
    codes = []
    for _ in range(count):
        try:
            raw = client.completions.with_raw_response.create(model="coder", prompt="x", max_tokens=2)
            codes.append((raw.http_response.status_code, None))
        except openai.RateLimitError as exc:
            codes.append((exc.status_code, exc.response.headers.get("retry-after")))
    return codes


def test_past_the_rate_limit_is_429_with_retry_after_and_other_keys_are_unaffected(lab: Lab) -> None:
    codes = _status_codes(lab.client("sk-team-rpm"), 5)
    assert [c for c, _ in codes] == [200, 200, 200, 429, 429]
    retry_after = codes[3][1]
    assert retry_after is not None and 1 <= int(retry_after) <= 20  # one request back after 60/3 s
    # the limit is per key: another key with the same limit, and the default, still get answers
    assert [c for c, _ in _status_codes(lab.client("sk-team-rpm-other"), 3)] == [200, 200, 200]
    assert [c for c, _ in _status_codes(lab.client("sk-team-b"), 3)] == [200, 200, 200]


def test_tokens_per_minute_limit_counts_the_models_tokens(lab: Lab) -> None:
    client = lab.client("sk-team-tpm")  # 20 tokens per minute
    first = client.completions.create(model="coder", prompt="a b c d e f g h", max_tokens=6)
    assert first.usage is not None and first.usage.total_tokens == 8 + 6
    second = client.completions.create(model="coder", prompt="a b", max_tokens=6)  # 6 left: admitted
    assert second.usage is not None and second.usage.total_tokens == 2 + 6  # now 2 tokens in debt
    with pytest.raises(openai.RateLimitError) as caught:
        client.completions.create(model="coder", prompt="a", max_tokens=1)
    assert "20 tokens per minute" in caught.value.message
    assert int(caught.value.response.headers["retry-after"]) >= 1


def test_models_lists_each_codepilot_and_requests_go_to_its_model(lab: Lab) -> None:
    assert [m.id for m in lab.client("sk-team-a").models.list()] == ["coder"]
    assert [m.id for m in lab.client("sk-team-a", lab.reviewer).models.list()] == ["reviewer"]
    answer = lab.client("sk-team-a", lab.reviewer).completions.create(
        model="reviewer", prompt="x", max_tokens=32
    )
    assert answer.choices[0].text == expected("codellama_api")
    with pytest.raises(openai.NotFoundError) as caught:
        lab.client("sk-team-a").completions.create(model="reviewer", prompt="x", max_tokens=2)
    assert caught.value.code == "model_not_found"


def test_an_unknown_route_or_method_is_answered_in_openais_error_shape(lab: Lab) -> None:
    for method, path, status in (("POST", "/v1/embeddings", 404), ("GET", "/v1/completions", 405)):
        request = urllib.request.Request(
            f"http://127.0.0.1:{lab.coder.port}{path}",
            method=method,
            headers={"Authorization": "Bearer sk-team-a"},
        )
        with pytest.raises(urllib.error.HTTPError) as caught:
            urllib.request.urlopen(request, timeout=10)
        assert caught.value.code == status
        assert json.loads(caught.value.read())["error"]["message"] == f"Invalid URL ({method} {path})"


def test_a_model_can_be_retrieved_by_its_name(lab: Lab) -> None:
    """The SDKs' models.retrieve, which clients use to check a configured model exists."""
    client = lab.client("sk-team-a")
    model = client.models.retrieve("coder")
    assert (model.id, model.object) == ("coder", "model")
    with pytest.raises(openai.NotFoundError) as caught:
        client.models.retrieve("reviewer")  # served by the other CodePilot's gateway, not this one
    assert caught.value.code == "model_not_found"


def _metric(text: str, name: str, **labels: str) -> float:
    total = 0.0
    for line in text.splitlines():
        if not line.startswith(name + "{"):
            continue
        if all(f'{k}="{v}"' in line for k, v in labels.items()):
            total += float(line.rsplit(" ", 1)[1])
    return total


def test_usage_per_team_and_model_is_in_prometheus_metrics(lab: Lab) -> None:
    before = lab.coder.metrics()
    answer = lab.client("sk-team-b").completions.create(
        model="coder", prompt="one two three four", max_tokens=3
    )
    after = lab.coder.metrics()
    assert answer.usage is not None
    for name, value in (
        ("codepilot_api_prompt_tokens_total", answer.usage.prompt_tokens),
        ("codepilot_api_completion_tokens_total", answer.usage.completion_tokens),
        ("codepilot_api_requests_total", 1),
        ("codepilot_api_request_duration_seconds_count", 1),
    ):
        labels = {"team": "team-b", "model": "coder"}
        assert _metric(after, name, **labels) - _metric(before, name, **labels) == value, name
    assert "sk-team-b" not in after  # a key is never a label


def test_a_burst_waits_in_the_queue_and_past_the_queue_is_503(lab: Lab) -> None:
    """maxConcurrency 2, maxQueue 4: of 10 requests at once, 6 are served (4 of them after waiting for a
    slot) and the rest are refused with 503 and Retry-After before reaching Triton."""
    set_behaviour(lab.triton, work_seconds=0.5)
    try:
        before = lab.coder.metrics()

        async def burst() -> list[int | str]:
            client = lab.async_client("sk-team-burst")

            async def one() -> int | str:
                try:
                    await client.completions.create(model="coder", prompt="x", max_tokens=2)
                    return 200
                except openai.APIStatusError as exc:
                    return f"{exc.status_code} retry-after={exc.response.headers.get('retry-after')}"

            return await asyncio.gather(*(one() for _ in range(10)))

        outcomes = asyncio.run(burst())
        after = lab.coder.metrics()
    finally:
        set_behaviour(lab.triton, work_seconds=0.02)
    assert outcomes.count(200) >= 6, outcomes
    assert set(outcomes) - {200} == {"503 retry-after=1"}, outcomes
    waited = _metric(after, "codepilot_api_queue_wait_seconds_count", model="coder") - _metric(
        before, "codepilot_api_queue_wait_seconds_count", model="coder"
    )
    quick = _metric(after, "codepilot_api_queue_wait_seconds_bucket", model="coder", le="0.1") - _metric(
        before, "codepilot_api_queue_wait_seconds_bucket", model="coder", le="0.1"
    )
    assert waited == outcomes.count(200)
    assert waited - quick >= 4  # the ones beyond the 2 slots waited for a request to finish


def test_a_model_failure_says_the_models_message_streamed_or_not(lab: Lab) -> None:
    """Triton answers a failed generate_stream with its error as an event: the client gets the message
    it holds, as for a failed generate, not the event's bytes."""
    for stream in (False, True):
        with pytest.raises(openai.BadRequestError) as caught:
            lab.client("sk-team-a").completions.create(
                model="coder", prompt="#fail now", max_tokens=2, stream=stream
            )
        error = caught.value.body
        assert isinstance(error, dict), stream
        assert error["message"].startswith("the model refused the request: Failed to process"), stream


def _post(gateway: GatewayProcess, path: str, body: bytes, key: str | None) -> tuple[int, dict[str, Any]]:
    """Status and JSON body of a request sent as is, for what the SDK would not send."""
    headers = {"Content-Type": "application/json"} | ({"Authorization": f"Bearer {key}"} if key else {})
    request = urllib.request.Request(f"http://127.0.0.1:{gateway.port}{path}", body, headers)
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def test_unauthenticated_requests_are_counted_per_endpoint_never_per_path(lab: Lab) -> None:
    """The path is the client's to choose: as a label value, each new one would be a new series."""
    before = lab.coder.metrics()
    for path in ("/v1/completions", "/v1/no-such-route-1", "/no-such-route-2"):
        assert _post(lab.coder, path, b"{}", None)[0] == 401
    after = lab.coder.metrics()
    assert "no-such-route" not in after
    for endpoint in ("completions", "other"):
        labels = {"team": "", "endpoint": endpoint, "code": "401"}
        counted = _metric(after, "codepilot_api_requests_total", **labels)
        assert counted - _metric(before, "codepilot_api_requests_total", **labels) == 1 + (
            endpoint == "other"
        )


def test_a_key_that_is_not_utf8_is_401_not_500(lab: Lab) -> None:
    body = json.dumps({"model": "coder", "prompt": "x", "max_tokens": 2}).encode()
    status, answer = _post(lab.coder, "/v1/completions", body, "sk-\xff\xfe")  # sent as those two bytes
    assert (status, answer["error"]["code"]) == (401, "invalid_api_key")


def test_a_body_over_the_limit_is_413_in_openais_shape_and_counted_so(lab: Lab) -> None:
    before = lab.coder.metrics()
    body = json.dumps({"model": "coder", "prompt": "x" * (5 * 1024 * 1024)}).encode()
    status, answer = _post(lab.coder, "/v1/completions", body, "sk-team-big")
    assert status == 413
    assert "request body is over" in answer["error"]["message"]
    labels = {"team": "team-big", "code": "413"}
    assert (
        _metric(lab.coder.metrics(), "codepilot_api_requests_total", **labels)
        - _metric(before, "codepilot_api_requests_total", **labels)
        == 1
    )


def _open(gateway: GatewayProcess, key: str, **body: Any) -> socket.socket:
    """A completion request on a raw connection, so a test can walk away from it at any point."""
    data = json.dumps({"model": "coder", "prompt": "x", "max_tokens": 2, **body}).encode()
    sock = socket.create_connection(("127.0.0.1", gateway.port), timeout=30)
    sock.sendall(
        f"POST /v1/completions HTTP/1.1\r\nHost: gateway\r\nAuthorization: Bearer {key}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(data)}\r\n\r\n".encode()
        + data
    )
    return sock


def _until(what: str, condition: Callable[[], bool]) -> None:
    deadline = time.monotonic() + 30
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"never: {what}")
        time.sleep(0.05)


def _gauge(gateway: GatewayProcess, name: str) -> float:
    return _metric(gateway.metrics(), name, model="coder")


def _triton_requests(triton: TritonServer) -> int:
    """Requests the model executed, succeeded or failed (Triton's own statistics)."""
    url = f"http://{triton.http_url}/v2/models/{triton.model}/stats"
    with urllib.request.urlopen(url, timeout=10) as response:
        stats = json.loads(response.read())["model_stats"][0]["inference_stats"]
    return int(stats["success"]["count"]) + int(stats["fail"]["count"])


def test_a_request_whose_client_left_the_queue_never_reaches_triton(lab: Lab) -> None:
    """Editors cancel an inline completion at the next keystroke: waiting in line for nobody, those
    would hold the slots the next keystrokes need. maxConcurrency 2: two run, two wait and leave."""
    set_behaviour(lab.triton, work_seconds=1.0)
    try:
        before, executed = lab.coder.metrics(), _triton_requests(lab.triton)
        running = [_open(lab.coder, "sk-team-gone") for _ in range(2)]
        _until("two in flight", lambda: _gauge(lab.coder, "codepilot_api_in_flight_requests") == 2)
        leaving = [_open(lab.coder, "sk-team-gone") for _ in range(2)]
        _until("two queued", lambda: _gauge(lab.coder, "codepilot_api_queued_requests") == 2)
        for sock in leaving:
            sock.close()
        _until("the queue emptied", lambda: _gauge(lab.coder, "codepilot_api_queued_requests") == 0)
        for sock in running:
            assert sock.recv(64).startswith(b"HTTP/1.1 200")
            sock.close()
        _until("nothing in flight", lambda: _gauge(lab.coder, "codepilot_api_in_flight_requests") == 0)
        after = lab.coder.metrics()
    finally:
        set_behaviour(lab.triton, work_seconds=0.02)
    _until("Triton counted the two", lambda: _triton_requests(lab.triton) - executed >= 2)
    assert _triton_requests(lab.triton) - executed == 2
    waits = _metric(after, "codepilot_api_queue_wait_seconds_count", model="coder")
    assert waits - _metric(before, "codepilot_api_queue_wait_seconds_count", model="coder") == 2
    for code, count in (("200", 2), ("499", 2)):
        labels = {"team": "team-gone", "code": code}
        counted = _metric(after, "codepilot_api_requests_total", **labels)
        assert counted - _metric(before, "codepilot_api_requests_total", **labels) == count, code


def test_a_stream_whose_client_left_is_counted_as_499_and_frees_its_slot(lab: Lab) -> None:
    set_behaviour(lab.triton, token_seconds=0.5)  # 7 tokens: seconds of stream left to walk away from
    try:
        before = lab.coder.metrics()
        sock = _open(lab.coder, "sk-team-gone", max_tokens=32, stream=True)
        assert b"data: " in sock.recv(4096)
        sock.close()
        labels = {"team": "team-gone", "code": "499"}
        _until(
            "the stream counted as abandoned",
            lambda: (
                _metric(lab.coder.metrics(), "codepilot_api_requests_total", **labels)
                > _metric(before, "codepilot_api_requests_total", **labels)
            ),
        )
        assert _gauge(lab.coder, "codepilot_api_in_flight_requests") == 0
        labels = {"team": "team-gone", "code": "200"}
        assert _metric(lab.coder.metrics(), "codepilot_api_requests_total", **labels) == _metric(
            before, "codepilot_api_requests_total", **labels
        )
    finally:
        set_behaviour(lab.triton, token_seconds=0.0)


def test_a_request_refused_because_the_queue_is_full_does_not_use_up_the_teams_limit(lab: Lab) -> None:
    """The SDKs retry a 503 by themselves: were refusals counted, a burst of another team's would
    leave this one with a 429 for requests the model never saw."""
    set_behaviour(lab.triton, work_seconds=1.0)
    body = json.dumps({"model": "coder", "prompt": "x", "max_tokens": 2}).encode()
    try:
        filling = [_open(lab.coder, "sk-team-gone") for _ in range(6)]  # 2 slots and 4 places in line
        _until("slots and queue full", lambda: _gauge(lab.coder, "codepilot_api_queued_requests") == 4)
        refused = [_post(lab.coder, "/v1/completions", body, "sk-team-refused")[0] for _ in range(2)]
        for sock in filling:
            assert sock.recv(64).startswith(b"HTTP/1.1 200")
            sock.close()
    finally:
        set_behaviour(lab.triton, work_seconds=0.02)
    assert refused == [503, 503]
    served = [_post(lab.coder, "/v1/completions", body, "sk-team-refused")[0] for _ in range(3)]
    assert served == [200, 200, 429]  # its 2 requests per minute are all still there


def test_when_triton_is_down_the_answer_is_503_not_500(lab: Lab, tmp_path: Path) -> None:
    """Last in this module on purpose: a separate Triton is stopped, the lab's keeps serving."""
    cp = _codepilot("lonely", "lonely_api")
    triton = start_triton(cp, tmp_path / "triton")
    gateway = start_gateway(local_config(cp, triton, lab.keys), tmp_path / "gateway")
    try:
        client = lab.client("sk-team-a", gateway)
        assert client.completions.create(model="lonely", prompt="x", max_tokens=2).choices[0].text
        # Killed while it streams: the status line said 200 already, so the stream ends in an error
        # event, and the metrics say 502 rather than the 200 the client saw first.
        set_behaviour(triton, token_seconds=0.5)
        stream = client.completions.create(model="lonely", prompt="x", max_tokens=32, stream=True)
        assert next(iter(stream)).choices[0].text
        triton.process.kill()
        with pytest.raises(openai.APIError, match="the model failed while answering"):
            list(stream)
        metrics = gateway.metrics()
        assert _metric(metrics, "codepilot_api_requests_total", team="team-a", code="502") == 1
        assert _metric(metrics, "codepilot_api_requests_total", team="team-a", code="200") == 1
        triton.stop()
        for stream in (False, True):
            with pytest.raises(openai.APIStatusError) as caught:
                answer = client.completions.create(model="lonely", prompt="x", max_tokens=2, stream=stream)
                if stream:
                    list(answer)  # type: ignore[call-overload]
            assert caught.value.status_code == 503, caught.value
            assert caught.value.response.headers.get("retry-after") == "5"
            assert "unreachable" in caught.value.message
    finally:
        gateway.stop()
        triton.stop()
