"""The gateway's HTTP/1.1 client (clients/http1.py) against real servers on loopback: aiohttp's server
for well-formed answers, and a raw asyncio server for the byte sequences no HTTP library would send
(a body ended by the connection's close, a broken answer, silence)."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator

import pytest
from aiohttp import web

from codepilot_operator.clients.http1 import MAX_BUFFERED, Http1Client, Malformed, Unreachable
from tests.fixtures.loopback import aiohttp_server


async def _raw_server(answer: bytes, close: bool = True) -> AsyncIterator[str]:
    """Reads a request, writes ``answer`` as is, then closes (or stays silent and open)."""
    writers: list[asyncio.StreamWriter] = []

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writers.append(writer)
        await reader.readuntil(b"\r\n\r\n")
        writer.write(answer)
        await writer.drain()
        if close:
            writer.close()

    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        for writer in writers:
            writer.close()
        server.close()
        await server.wait_closed()


@pytest.mark.asyncio
async def test_connections_are_reused_and_requests_carry_host_path_and_body() -> None:
    seen: list[tuple[object, str, str, bytes]] = []

    async def echo(request: web.Request) -> web.Response:
        peer = request.transport.get_extra_info("peername") if request.transport else None
        seen.append((peer, request.headers["Host"], request.path, await request.read()))
        return web.json_response({"n": len(seen)})

    async for url in aiohttp_server({"/prefix/v2/{tail:.*}": echo}):
        client = Http1Client(f"{url}/prefix/", host="api.example")
        try:
            for n in range(3):
                async with client.request("POST", "/v2/x", b'{"a":1}') as response:
                    assert response.status == 200
                    assert await response.read() == b'{"n": %d}' % (n + 1)
        finally:
            await client.close()
    assert {peer for peer, *_ in seen} == {seen[0][0]}  # one connection for all three
    assert [rest for _, *rest in seen] == [["api.example", "/prefix/v2/x", b'{"a":1}']] * 3


@pytest.mark.asyncio
async def test_an_answer_left_unread_closes_its_connection() -> None:
    """For Triton, closing the connection of a streamed generation is what cancels it."""
    disconnected = asyncio.Event()

    async def endless(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse()
        await response.prepare(request)
        try:
            while True:
                await response.write(b"data: more\n\n")
                await asyncio.sleep(0.01)
        except (ConnectionError, RuntimeError):
            disconnected.set()
        return response

    async for url in aiohttp_server({"/stream": endless}):
        client = Http1Client(url)
        try:
            async with client.request("POST", "/stream") as response:
                assert (await response.chunk()).startswith(b"data: more")
            await asyncio.wait_for(disconnected.wait(), 10)
        finally:
            await client.close()


@pytest.mark.asyncio
@pytest.mark.parametrize(
    "answer",
    [
        b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello",
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nhe\r\n3\r\nllo\r\n0\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\nhello",  # ended by the connection's close
    ],
)
async def test_every_way_http_ends_a_body_is_read_to_the_end(answer: bytes) -> None:
    async for url in _raw_server(answer):
        client = Http1Client(url)
        try:
            async with client.request("GET", "/") as response:
                assert (response.status, await response.read(), response.at_end) == (200, b"hello", True)
        finally:
            await client.close()


@pytest.mark.asyncio
@pytest.mark.parametrize(
    ("answer", "close", "error", "message"),
    [
        (b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nhell", True, Unreachable, "before the answer"),
        (b"NOT HTTP AT ALL\r\n\r\n", True, Malformed, "not an HTTP/1.1 answer"),
        (b"", False, Unreachable, "no complete answer within 0.2s"),
    ],
)
async def test_broken_or_missing_answers_are_errors_a_caller_can_act_on(
    answer: bytes, close: bool, error: type[Exception], message: str
) -> None:
    async for url in _raw_server(answer, close=close):
        client = Http1Client(url, timeout=0.2)
        try:
            with pytest.raises(error, match=message):
                async with client.request("GET", "/") as response:
                    await response.read()
        finally:
            await client.close()


@pytest.mark.asyncio
async def test_nothing_listening_is_unreachable() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]  # bound, never listening: connections are refused
        client = Http1Client(f"http://127.0.0.1:{port}")
        with pytest.raises(Unreachable):
            async with client.request("GET", "/"):
                pass


@pytest.mark.asyncio
async def test_a_body_larger_than_the_read_buffer_arrives_whole_when_read_slowly() -> None:
    """Past MAX_BUFFERED unread bytes the connection stops reading; taking them lets it go on."""
    body = bytes(range(256)) * (3 * MAX_BUFFERED // 256 + 7)

    async def big(request: web.Request) -> web.Response:
        return web.Response(body=body)

    async for url in aiohttp_server({"/big": big}):
        client = Http1Client(url)
        try:
            async with asyncio.timeout(30), client.request("GET", "/big") as response:  # a stall fails
                parts = []
                while data := await response.chunk():
                    parts.append(data)
                    await asyncio.sleep(0.001)  # a slow reader: the server gets ahead of it
            assert b"".join(parts) == body
        finally:
            await client.close()


async def _keep_alive_then(second: bytes, delay: float = 0.0) -> AsyncIterator[tuple[str, list[int]]]:
    """Answers each connection's first request with a kept-alive 200 ``first``; its second request gets
    ``second`` and the connection closes (``b""``: closed unanswered, as a server's idle timeout
    crossing the request does). Yields the URL and the number of requests each connection read."""
    counts: list[int] = []

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        counts.append(0)
        index = len(counts) - 1
        try:
            await reader.readuntil(b"\r\n\r\n")
            counts[index] += 1
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nfirst")
            await writer.drain()
            await reader.readuntil(b"\r\n\r\n")
            counts[index] += 1
            await asyncio.sleep(delay)  # working on it
            writer.write(second)
            await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}", counts
    finally:
        server.close()
        await server.wait_closed()


@pytest.mark.asyncio
async def test_a_request_a_kept_alive_connection_closed_unanswered_goes_once_more_on_a_new_one() -> None:
    async for url, counts in _keep_alive_then(b""):
        client = Http1Client(url)
        try:
            for _ in range(2):
                async with client.request("POST", "/v2/x", b"{}") as response:
                    assert (response.status, await response.read()) == (200, b"first")
        finally:
            await client.close()
        assert counts == [2, 1]  # the second request: sent on the first connection, answered on a new one


@pytest.mark.asyncio
@pytest.mark.parametrize(
    "partial",
    [b"HTTP/1.1 200 OK\r\nContent-", b"HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\npart"],
    ids=["in-the-headers", "in-the-body"],
)
async def test_a_kept_alive_connection_closed_mid_answer_is_not_sent_again(partial: bytes) -> None:
    """Once a byte of the answer came, the server had the request: sending it again could run it twice."""
    async for url, counts in _keep_alive_then(partial):
        client = Http1Client(url)
        try:
            async with client.request("POST", "/v2/x", b"{}") as response:
                await response.read()
            with pytest.raises(Unreachable, match="before the answer was complete"):
                async with client.request("POST", "/v2/x", b"{}") as response:
                    await response.read()
        finally:
            await client.close()
        assert counts == [2]


@pytest.mark.asyncio
async def test_a_kept_alive_connection_closed_unanswered_after_a_while_is_not_sent_again() -> None:
    """Closed 0.3 s after the request arrived, the server read it and may have run it (a Triton pod
    killed mid-generation): sending it again would run it twice."""
    async for url, counts in _keep_alive_then(b"", delay=0.3):
        client = Http1Client(url)
        try:
            async with client.request("POST", "/v2/x", b"{}") as response:
                await response.read()
            with pytest.raises(Unreachable, match="before the answer was complete"):
                async with client.request("POST", "/v2/x", b"{}"):
                    pass
        finally:
            await client.close()
        assert counts == [2]


@pytest.mark.asyncio
async def test_a_new_connection_closed_unanswered_is_unreachable_without_a_second_try() -> None:
    async for url in _raw_server(b""):
        client = Http1Client(url)
        try:
            with pytest.raises(Unreachable, match="before the answer was complete"):
                async with client.request("POST", "/v2/x", b"{}"):
                    pass
        finally:
            await client.close()


@pytest.mark.asyncio
async def test_headers_are_sent_as_given_and_a_line_break_in_one_is_refused() -> None:
    seen: list[str] = []

    async def echo(request: web.Request) -> web.Response:
        seen.append(request.headers["Authorization"])
        return web.Response(text="ok")

    async for url in aiohttp_server({"/x": echo}):
        client = Http1Client(url)
        try:
            async with client.request("POST", "/x", b"{}", {"Authorization": "Bearer k"}) as response:
                assert await response.read() == b"ok"
            with pytest.raises(ValueError, match="line break"):
                client.request("POST", "/x", b"{}", {"Authorization": "Bearer k\r\nX-Evil: 1"})
            with pytest.raises(ValueError, match="content-length itself"):
                client.request("POST", "/x", b"{}", {"Content-Length": "0"})
        finally:
            await client.close()
    assert seen == ["Bearer k"]


@pytest.mark.asyncio
async def test_a_connection_is_retired_max_age_after_it_opened_so_a_service_balances_anew() -> None:
    """Reused while young, however busy; past max_age the next request opens a new connection (which
    kube-proxy sends to any Ready pod, a canary's too)."""
    peers: list[object] = []

    async def echo(request: web.Request) -> web.Response:
        peers.append(request.transport.get_extra_info("peername") if request.transport else None)
        return web.Response(text="ok")

    async for url in aiohttp_server({"/x": echo}):
        client = Http1Client(url, max_age=1.0)
        try:
            for pause in (0.0, 0.0, 1.2, 0.0):
                await asyncio.sleep(pause)
                async with client.request("POST", "/x", b"{}") as response:
                    assert await response.read() == b"ok"
        finally:
            await client.close()
    assert peers[0] == peers[1] != peers[2] == peers[3]
