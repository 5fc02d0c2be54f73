"""The gateway process: OpenAI routes on one port, /metrics and probes on another.

A request goes: key -> team (401) -> request checks (400/404) -> the team's rate limits (429 with
Retry-After) -> the model's concurrency slot (queues; 503 when the queue is full) -> Triton (503 when
it cannot be reached). A streamed answer starts only once the model sent its first piece, so a
failure before that is still a plain HTTP error a client can act on, not a broken event stream.
"""

from __future__ import annotations

import asyncio
import logging
import math
import signal
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, Histogram, generate_latest
from pydantic_core import from_json

from codepilot_operator.api.endpoint import GatewayConfig, GatewayModel
from codepilot_operator.clients.triton import (
    Batch,
    Piece,
    TextRequest,
    TritonClient,
    TritonRequestError,
    TritonUnavailable,
)
from codepilot_operator.gateway import metrics, protocol
from codepilot_operator.gateway.keys import KeyStore, Team
from codepilot_operator.gateway.limits import RateLimiter
from codepilot_operator.gateway.protocol import ApiError, Generation
from codepilot_operator.gateway.queue import ModelQueue, Overloaded
from codepilot_operator.gateway.stop import StopScanner

log = logging.getLogger(__name__)
TEAM_KEY = "codepilot.team"
NO_TEAM = ""
JSON_HEADERS = {"Content-Type": "application/json; charset=utf-8"}  # what web.json_response sends
# The client went away before its answer was complete (nginx's code for it; no HTTP answer was sent).
CLIENT_CLOSED = "499"
MAX_BODY_BYTES = 4 * 1024 * 1024
# The endpoint label of each route; any other path is "other", so a client cannot mint label values.
ENDPOINTS = {"/v1/models": "models", "/v1/completions": "completions", "/v1/chat/completions": "chat"}
OTHER_ENDPOINT = "other"


@dataclass
class Served:
    config: GatewayModel
    queue: ModelQueue
    triton: TritonClient
    queue_wait: Histogram


@dataclass
class Outcome:
    """What a request cost, for limits and metrics, whatever way it ended."""

    prompt_tokens: int = 0
    completion_tokens: int = 0

    def add(self, piece: Piece) -> None:
        """Each response counts its own completion tokens; the prompt is the same in every one."""
        if piece.prompt_tokens is not None:
            self.prompt_tokens = piece.prompt_tokens
        if piece.completion_tokens is not None:
            self.completion_tokens += piece.completion_tokens

    @property
    def counts(self) -> tuple[int, int]:
        return self.prompt_tokens, self.completion_tokens


def _error_response(error: ApiError) -> web.Response:
    headers = {}
    if error.retry_after is not None:
        headers["Retry-After"] = str(max(1, math.ceil(error.retry_after)))
    return web.json_response(error.body(), status=error.status, headers=headers)


class Gateway:
    def __init__(self, config: GatewayConfig, clock: Callable[[], float] = time.monotonic):
        self.config, self.clock = config, clock
        self.keys = KeyStore(Path(config.keys_dir))
        self.limiter = RateLimiter()
        self.models = {m.name: self._served(m) for m in config.models}
        self.caps = {name: served.config.max_tokens for name, served in self.models.items()}
        self.created = int(time.time())

    def _served(self, model: GatewayModel) -> Served:
        queue = ModelQueue(model.max_concurrency, model.max_queue, model.queue_timeout_seconds)
        triton = TritonClient(
            model.upstream, model.host, self.config.request_timeout_seconds, connections=model.max_concurrency
        )
        wait = metrics.watch_queue(model.name, lambda: queue.waiting, lambda: queue.in_flight)
        return Served(model, queue, triton, wait)

    # -- wiring ------------------------------------------------------------------------------------

    def api_app(self) -> web.Application:
        app = web.Application(middlewares=[self._authenticate], client_max_size=MAX_BODY_BYTES)
        paths = {endpoint: path for path, endpoint in ENDPOINTS.items()}
        app.router.add_get(paths["models"], self.list_models)
        app.router.add_get(paths["models"] + "/{model}", self.get_model)
        app.router.add_post(paths["completions"], self._endpoint("completions", protocol.completion_request))
        app.router.add_post(paths["chat"], self._endpoint("chat", protocol.chat_request))
        app.on_cleanup.append(self._close)
        return app

    def ops_app(self) -> web.Application:
        async def metrics_page(_: web.Request) -> web.Response:
            return web.Response(
                body=generate_latest(metrics.REGISTRY), headers={"Content-Type": CONTENT_TYPE_LATEST}
            )

        async def ok(_: web.Request) -> web.Response:
            return web.Response(text="ok\n")

        app = web.Application()
        app.router.add_get("/metrics", metrics_page)
        app.router.add_get("/healthz", ok)
        app.router.add_get("/readyz", ok)
        return app

    async def _close(self, _: web.Application) -> None:
        await asyncio.gather(*(served.triton.close() for served in self.models.values()))

    async def refresh_keys(self) -> None:
        while True:
            try:
                self.keys.refresh()
            except OSError as exc:
                log.warning("API keys not re-read: %s", exc)
            await asyncio.sleep(self.config.keys_refresh_seconds)

    @web.middleware
    async def _authenticate(
        self, request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
    ) -> web.StreamResponse:
        header = request.headers.get("Authorization", "")
        scheme, _, key = header.partition(" ")
        team = self.keys.team(key.strip()) if scheme.lower() == "bearer" and key.strip() else None
        if team is None:
            metrics.requests(NO_TEAM, "", ENDPOINTS.get(request.path, OTHER_ENDPOINT), "401").inc()
            return _error_response(
                ApiError(
                    401,
                    "missing or unknown API key (send Authorization: Bearer <key>)",
                    type="invalid_request_error",
                    code="invalid_api_key",
                )
            )
        request[TEAM_KEY] = team
        try:
            return await handler(request)
        except (web.HTTPNotFound, web.HTTPMethodNotAllowed) as exc:  # aiohttp's are plain text
            return _error_response(ApiError(exc.status, f"Invalid URL ({request.method} {request.path})"))

    # -- handlers ----------------------------------------------------------------------------------

    async def list_models(self, request: web.Request) -> web.Response:
        return web.json_response(protocol.models_list(sorted(self.models), self.created))

    async def get_model(self, request: web.Request) -> web.Response:
        name = request.match_info["model"]
        if name not in self.models:
            return _error_response(protocol.not_served(name))
        return web.json_response(protocol.model_entry(name, self.created))

    def _endpoint(
        self, endpoint: str, parse: Callable[[object, dict[str, int]], Generation]
    ) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
        async def handle(request: web.Request) -> web.StreamResponse:
            started = self.clock()
            team: Team = request[TEAM_KEY]  # set by _authenticate
            model, code = "", "200"
            try:
                try:
                    body = from_json(await request.read())
                except ValueError:
                    raise ApiError(400, "the request body is not valid JSON") from None
                except web.HTTPRequestEntityTooLarge:
                    raise ApiError(
                        413, f"the request body is over {MAX_BODY_BYTES} bytes", code="request_too_large"
                    ) from None
                generation = parse(body, self.caps)
                model = generation.model
                response = await self._serve(request, team, generation, started)
                if isinstance(response, _EventStream):
                    code = response.code
                return response
            except ApiError as exc:
                code = str(exc.status)
                if exc.status == 429:
                    metrics.rate_limited(team.name, model, exc.type).inc()
                return _error_response(exc)
            except (asyncio.CancelledError, ConnectionResetError):
                # aiohttp cancels the handler when the client disconnects (handler_cancellation), which
                # takes a queued request out of the queue and closes a running one's Triton connection
                code = CLIENT_CLOSED
                raise
            finally:
                metrics.requests(team.name, model, endpoint, code).inc()
                if model:
                    metrics.spend(team.name, model).duration.observe(self.clock() - started)

        return handle

    def _admit(self, team: Team) -> None:
        rpm = (
            team.requests_per_minute
            if team.requests_per_minute is not None
            else self.config.requests_per_minute
        )
        tpm = team.tokens_per_minute if team.tokens_per_minute is not None else self.config.tokens_per_minute
        refusal = self.limiter.admit(team.name, rpm, tpm, self.clock())
        if refusal is not None:
            raise ApiError(
                429,
                f"rate limit of {refusal.per_minute} {refusal.limit} per minute reached for team "
                f"{team.name}: retry in {math.ceil(refusal.retry_after)}s",
                type=refusal.limit,  # OpenAI's types for these: "requests" or "tokens"
                code="rate_limit_exceeded",
                retry_after=refusal.retry_after,
            )

    async def _serve(
        self, request: web.Request, team: Team, generation: Generation, started: float
    ) -> web.StreamResponse:
        served = self.models[generation.model]
        if generation.suffix is not None and not served.config.supports_suffix:
            raise protocol.invalid(
                "suffix", f"model {generation.model} does not take a suffix (fill-in-the-middle)"
            )
        self._admit(team)
        outcome = Outcome()
        queued = self.clock()
        try:
            async with served.queue.slot():
                served.queue_wait.observe(self.clock() - queued)
                try:
                    if generation.stream:
                        return await self._stream(request, team, served, generation, outcome, started)
                    return await self._whole(served, generation, outcome)
                finally:
                    self._spent(team, generation.model, outcome)
        except Overloaded as exc:
            self.limiter.refund(team.name, self.clock())
            raise ApiError(
                503,
                f"model {generation.model} is busy: {exc}",
                type="server_error",
                code="overloaded",
                retry_after=exc.retry_after,
            ) from None
        except TritonUnavailable as exc:
            self.limiter.refund(team.name, self.clock())
            raise ApiError(
                503, str(exc), type="server_error", code="model_unavailable", retry_after=5
            ) from None
        except TritonRequestError as exc:
            status = 400 if 400 <= exc.status < 500 else 502
            raise ApiError(
                status,
                f"the model refused the request: {exc}",
                type="invalid_request_error" if status == 400 else "server_error",
                code="model_error",
            ) from None

    def _spent(self, team: Team, model: str, outcome: Outcome) -> None:
        total = outcome.prompt_tokens + outcome.completion_tokens
        self.limiter.charge(team.name, total, self.clock())
        spend = metrics.spend(team.name, model)
        spend.prompt_tokens.inc(outcome.prompt_tokens)
        spend.completion_tokens.inc(outcome.completion_tokens)

    def _text_request(self, generation: Generation) -> TextRequest:
        return TextRequest(generation.prompt, generation.max_tokens, generation.suffix, generation.parameters)

    async def _whole(self, served: Served, generation: Generation, outcome: Outcome) -> web.Response:
        scanner = StopScanner(generation.stop)
        if generation.stop and served.config.stream_stops:
            text = await self._until_stop(served, generation, scanner, outcome)
        else:
            piece = await served.triton.generate(served.config.triton_model, self._text_request(generation))
            outcome.add(piece)
            text = scanner.feed(piece.text)
        reason = protocol.finish_reason(scanner.stopped, outcome.completion_tokens, generation.max_tokens)
        doc = protocol.answer(generation, protocol.new_id(generation), text, reason, outcome.counts)
        return web.Response(body=protocol.encode(doc), headers=JSON_HEADERS)

    async def _until_stop(
        self, served: Served, generation: Generation, scanner: StopScanner, outcome: Outcome
    ) -> str:
        """A whole answer that may end at a stop sequence, read from Triton as a stream and closed at
        the stop (which cancels the generation): the text contract has no stop input, so one /generate
        call would run to max_tokens, and the team would be charged for tokens it never gets.

        It fails as a whole answer does: a failure after the model began is the model's (502, as on a
        stream), and nothing is charged for an answer the client does not get."""
        parts: list[str] = []
        read = Outcome()
        batches = served.triton.stream(served.config.triton_model, self._text_request(generation))
        try:
            async for batch in batches:
                for piece in batch.pieces:
                    read.add(piece)
                    parts.append(scanner.feed(piece.text))
                    if scanner.stopped:
                        break
                if scanner.stopped:
                    break
        except TritonRequestError as exc:
            if not parts:
                raise  # refused before anything was generated: the model's own status
            raise TritonRequestError(502, f"the model failed while answering: {exc}") from None
        finally:
            await batches.aclose()
        outcome.add(Piece("", read.prompt_tokens, read.completion_tokens))
        return "".join(parts) + scanner.flush()

    async def _stream(
        self,
        request: web.Request,
        team: Team,
        served: Served,
        generation: Generation,
        outcome: Outcome,
        started: float,
    ) -> web.StreamResponse:
        batches = served.triton.stream(served.config.triton_model, self._text_request(generation))
        try:
            first = await anext(batches, None)  # errors before this point are plain HTTP errors
            response = _EventStream(
                headers={
                    "Content-Type": "text/event-stream",
                    "Cache-Control": "no-cache",
                    "X-Accel-Buffering": "no",
                }
            )
            await response.prepare(request)
            metrics.spend(team.name, generation.model).first_token.observe(self.clock() - started)
            await self._relay(response, generation, first, batches, outcome)
            return response
        finally:
            await batches.aclose()  # closes the connection to Triton, which cancels the generation

    async def _relay(
        self,
        response: _EventStream,
        generation: Generation,
        first: Batch | None,
        batches: AsyncIterator[Batch],
        outcome: Outcome,
    ) -> None:
        """Each group of pieces Triton delivered together goes out as one write; the closing events
        and the end of the stream go with the group that ended the answer, or as one more write when
        the end came on its own (a loopback send is the largest single cost per request)."""
        answer_id, created = protocol.new_id(generation), int(time.time())
        scanner = StopScanner(generation.stop)
        encode = protocol.text_events(generation, answer_id, created)
        out = bytearray()
        opening = True  # the first event goes out even without text: for chat it carries the role

        def add(text: str) -> None:
            nonlocal opening
            if opening:
                out.extend(protocol.event(protocol.chunk(generation, answer_id, created, text, first=True)))
                opening = False
            elif text:
                out.extend(encode(text))

        try:
            batch = first
            while batch is not None:
                for piece in batch.pieces:
                    outcome.add(piece)
                    add(scanner.feed(piece.text))
                    if scanner.stopped:
                        break
                if scanner.stopped or batch.last:
                    break
                if out:
                    await response.write(bytes(out))
                    out.clear()
                batch = await anext(batches, None)
            add(scanner.flush())
        except (TritonUnavailable, TritonRequestError) as exc:
            error = ApiError(
                502, f"the model failed while answering: {exc}", type="server_error", code="model_error"
            )
            response.code = str(error.status)  # the status line said 200 before the failure came
            out.extend(protocol.event(error.body()))
            await response.write_eof(bytes(out))
            return
        reason = protocol.finish_reason(scanner.stopped, outcome.completion_tokens, generation.max_tokens)
        last = protocol.chunk(generation, answer_id, created, "", reason)
        if generation.include_usage:
            out.extend(protocol.event(last))
            out.extend(protocol.event(protocol.usage_chunk(generation, answer_id, created, outcome.counts)))
        else:
            # Usage on every answer, also for clients that did not ask for the separate usage event.
            out.extend(protocol.event({**last, "usage": protocol.usage(*outcome.counts)}))
        out.extend(b"data: [DONE]\n\n")
        await response.write_eof(bytes(out))


class _EventStream(web.StreamResponse):
    """An event stream whose headers go out with its first events, in one send instead of two (a
    loopback send is the largest single cost of a streamed request). aiohttp holds the headers of a
    response that opts out of sending them at once (its flag, which web.Response sets too) until the
    first write; the stream is prepared only once Triton's first tokens are in hand, so nothing waits
    for them. An aiohttp without the flag sends them at once, as before."""

    _send_headers_immediately = False
    code = "200"  # what the answer amounted to, for metrics: an error event after the 200 makes it 502


async def serve(config: GatewayConfig, host: str, port: int, ops_port: int) -> None:
    """Run until SIGTERM/SIGINT; in-flight requests get a grace period (aiohttp's shutdown_timeout)."""
    gateway = Gateway(config)
    gateway.keys.refresh()
    runners = [
        # handler_cancellation: a client that disconnects cancels its request, so an editor's abandoned
        # completions neither wait in the queue nor keep generating in Triton for nobody
        web.AppRunner(gateway.api_app(), access_log=None, shutdown_timeout=30, handler_cancellation=True),
        web.AppRunner(gateway.ops_app(), access_log=None, shutdown_timeout=30),
    ]
    for runner, listen in zip(runners, (port, ops_port), strict=True):
        await runner.setup()
        await web.TCPSite(runner, host, listen).start()
    log.info(
        "OpenAI API on %s:%d, metrics on :%d; models: %s", host, port, ops_port, ", ".join(gateway.models)
    )
    stopped = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stopped.set)
    refresher = asyncio.create_task(gateway.refresh_keys())
    try:
        await stopped.wait()
    finally:
        refresher.cancel()
        for runner in runners:
            await runner.cleanup()
