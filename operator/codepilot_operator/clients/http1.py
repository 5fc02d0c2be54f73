"""A lean keep-alive HTTP/1.1 client: asyncio's transport, with httptools (llhttp, the parser of
Node.js, which uvicorn uses too) framing the answers.

It exists for the gateway's calls to Triton, where the client's own CPU is what a request adds: on
loopback, a streamed request of 7 tokens cost ~1.1 ms of CPU through aiohttp's client (request and
response objects, header multidicts, timers, its Python stream reader per read) and ~0.4 ms like
this. It does only what those calls need: a request with a body, an answer framed by Content-Length,
chunked encoding or the end of the connection, read as it arrives; a connection is reused while the
server keeps it alive, and closed when its answer was not read to the end (for Triton, closing a
streamed generation is what cancels it). A request sent on a kept-alive connection that the server
closed right away, before a byte of its answer (its idle timeout crossing the request), goes once more
on a new connection; closed later or after any byte came back, it never does, since the server may
have run it.
"""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import Mapping
from types import TracebackType
from typing import cast
from urllib.parse import urlsplit

import httptools

# Past this much unread body the connection stops reading until the caller catches up.
MAX_BUFFERED = 1024 * 1024
# A kept-alive connection closed this soon after a request went out, with nothing answered, was closed
# by the server as idle while the request travelled (it never read it): the request goes once more.
# Closed later, the server may have read and run it (a generation), so it is not sent twice.
IDLE_CLOSE_RACE = 0.1
# Headers the client writes itself; a caller's copy would make a second, conflicting one.
OWN_HEADERS = frozenset({"host", "content-type", "content-length", "transfer-encoding"})


class Unreachable(Exception):
    """No connection, or it broke or timed out before the answer was complete."""


class Malformed(Exception):
    """The server's bytes are not an HTTP/1.1 answer."""


class _ClosedUnanswered(Unreachable):
    """The connection closed right after the request went out, before a byte of the answer."""


class _Connection(asyncio.Protocol):
    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.parser = httptools.HttpResponseParser(self)
        self.lost = False
        self.opened = asyncio.get_running_loop().time()
        self.idle_since = 0.0
        self._waiter: asyncio.Future[None] | None = None
        self.begin()

    def begin(self) -> None:
        """A new exchange on this connection."""
        self.active = True
        self.status = 0
        self.headers_done = self.complete = self.framed = self.keep_alive = False
        self.body: list[bytes] = []
        self.buffered = 0
        self.received = False
        self.sent_at = 0.0
        self.failure: Exception | None = None

    # -- asyncio's callbacks -------------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:
        if not self.active:  # bytes nobody asked for: the connection cannot be trusted for reuse
            self.close()
            return
        self.received = True
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError as exc:
            self.fail(Malformed(f"not an HTTP/1.1 answer: {exc}"))
        if self.buffered > MAX_BUFFERED and self.transport is not None:
            self.transport.pause_reading()
        self._wake()

    def connection_lost(self, exc: Exception | None) -> None:
        self.lost = True
        if self.active and not self.complete:
            if self.headers_done and not self.framed:
                self.complete = True  # a body without a length ends with the connection
            elif self.failure is None:
                why = f": {exc}" if exc else ""
                soon = asyncio.get_running_loop().time() - self.sent_at < IDLE_CLOSE_RACE
                kind = _ClosedUnanswered if soon and not self.received else Unreachable
                self.failure = kind(f"the connection closed before the answer was complete{why}")
        self._wake()

    # -- httptools' callbacks ------------------------------------------------------------------------

    def on_header(self, name: bytes, value: bytes) -> None:
        name = name.lower()
        if name == b"content-length" or (name == b"transfer-encoding" and b"chunked" in value.lower()):
            self.framed = True

    def on_headers_complete(self) -> None:
        self.status = self.parser.get_status_code()
        self.keep_alive = self.parser.should_keep_alive()
        self.headers_done = True

    def on_body(self, body: bytes) -> None:
        self.body.append(body)
        self.buffered += len(body)

    def on_message_complete(self) -> None:
        self.complete = True

    # -- for the client ------------------------------------------------------------------------------

    def fail(self, failure: Exception) -> None:
        if self.failure is None:
            self.failure = failure
        self.close()
        self._wake()

    def close(self) -> None:
        self.lost = True
        if self.transport is not None:
            self.transport.close()

    def _wake(self) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    async def wait(self) -> None:
        """Until something arrives, the answer completes, or the connection fails."""
        self._waiter = asyncio.get_running_loop().create_future()
        try:
            await self._waiter
        finally:
            self._waiter = None

    def take(self) -> bytes:
        data = self.body[0] if len(self.body) == 1 else b"".join(self.body)
        self.body.clear()
        if self.buffered > MAX_BUFFERED and self.transport is not None:
            self.transport.resume_reading()
        self.buffered = 0
        return data


class Response:
    """An answer being read: its status once the headers are in, then its body as it arrives."""

    def __init__(self, connection: _Connection):
        self._connection = connection

    @property
    def status(self) -> int:
        return self._connection.status

    @property
    def at_end(self) -> bool:
        """The whole body has arrived and been taken."""
        return self._connection.complete and not self._connection.body

    async def chunk(self) -> bytes:
        """The body that arrived since the last call (waiting for some); ``b""`` at its end."""
        connection = self._connection
        while not connection.body:
            if connection.complete:
                return b""
            if connection.failure is not None:
                raise connection.failure
            await connection.wait()
        return connection.take()

    async def read(self) -> bytes:
        parts = []
        while data := await self.chunk():
            parts.append(data)
        return b"".join(parts)


class _Exchange:
    """``async with client.request(...) as response``: sends on enter, releases the connection on exit."""

    def __init__(self, client: Http1Client, method: str, path: str, body: bytes, headers: str):
        self._client, self._method, self._path, self._body = client, method, path, body
        self._headers = headers
        self._connection: _Connection | None = None
        self._timer: asyncio.TimerHandle | None = None

    async def __aenter__(self) -> Response:
        connection, reused = await self._client.connect()
        try:
            return await self._send(connection)
        except _ClosedUnanswered:
            if not reused:
                raise
        # A kept-alive connection the server closed as the request went out (its idle timeout crossing
        # the request): nothing of it was answered, so it goes once more on a new connection.
        connection, _ = await self._client.connect(fresh=True)
        return await self._send(connection)

    async def _send(self, connection: _Connection) -> Response:
        client = self._client
        self._connection = connection
        connection.begin()
        head = (
            f"{self._method} {client.prefix}{self._path} HTTP/1.1\r\nHost: {client.host_header}\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(self._body)}\r\n{self._headers}\r\n"
        )
        self._timer = asyncio.get_running_loop().call_later(
            client.timeout,
            connection.fail,
            Unreachable(f"no complete answer within {client.timeout:g}s"),
        )
        try:
            assert connection.transport is not None
            connection.transport.write(head.encode() + self._body)
            connection.sent_at = asyncio.get_running_loop().time()
            while not connection.headers_done:
                if connection.failure is not None:
                    raise connection.failure
                await connection.wait()
        except BaseException:
            await self.__aexit__(None, None, None)
            raise
        return Response(connection)

    async def __aexit__(
        self, kind: type[BaseException] | None, error: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._timer is not None:
            self._timer.cancel()
        connection = self._connection
        if connection is not None:
            self._client.release(connection)


class Http1Client:
    def __init__(
        self,
        base_url: str,
        host: str | None = None,
        timeout: float = 300.0,
        connect_timeout: float = 5.0,
        keepalive: float = 60.0,
        max_idle: int = 64,
        max_age: float = 30.0,
    ):
        url = urlsplit(base_url)
        tls = url.scheme == "https"
        self.address = (url.hostname or "localhost", url.port or (443 if tls else 80))
        self.prefix = url.path.rstrip("/")
        self.host_header = host or url.netloc.rpartition("@")[2]
        self.timeout, self.connect_timeout, self.keepalive = timeout, connect_timeout, keepalive
        self.max_idle, self.max_age = max_idle, max_age
        self._tls = ssl.create_default_context() if tls else None
        self._idle: list[_Connection] = []

    def request(
        self, method: str, path: str, body: bytes = b"", headers: Mapping[str, str] | None = None
    ) -> _Exchange:
        """A JSON request, with ``headers`` besides Host, Content-Type and Content-Length."""
        lines = [f"{name}: {value}" for name, value in (headers or {}).items()]
        if any("\r" in line or "\n" in line for line in lines):
            raise ValueError("a header name or value holds a line break")
        if own := OWN_HEADERS & {name.lower() for name in headers or {}}:
            raise ValueError(f"the client writes {', '.join(sorted(own))} itself")
        extra = "".join(line + "\r\n" for line in lines)
        return _Exchange(self, method, path, body, extra)

    async def connect(self, fresh: bool = False) -> tuple[_Connection, bool]:
        """A connection, and whether it was kept alive from an earlier answer; ``fresh`` opens a new one."""
        loop = asyncio.get_running_loop()
        now = loop.time()
        while self._idle and not fresh:
            connection = self._idle.pop()
            if (
                not connection.lost
                and now - connection.idle_since < self.keepalive
                and self._young(connection, now)
            ):
                return connection, True
            connection.close()
        host, port = self.address
        try:
            async with asyncio.timeout(self.connect_timeout):
                _, connection = await loop.create_connection(
                    _Connection, host, port, ssl=self._tls, server_hostname=host if self._tls else None
                )
        except (OSError, TimeoutError) as exc:
            raise Unreachable(str(exc) or type(exc).__name__) from None
        return connection, False

    def release(self, connection: _Connection) -> None:
        """Back to the pool when its answer was read to the end and the server keeps it open."""
        connection.active = False
        now = asyncio.get_running_loop().time()
        reusable = connection.complete and connection.keep_alive and not connection.lost
        if (
            reusable
            and not connection.body
            and self._young(connection, now)
            and len(self._idle) < self.max_idle
        ):
            connection.idle_since = now
            self._idle.append(connection)
        else:
            connection.close()

    def _young(self, connection: _Connection, now: float) -> bool:
        """Whether a connection may carry another request. A Service balances connections, not
        requests: kept alive for ever, the connections opened before a canary's pods were Ready would
        never reach them, so each is retired ``max_age`` after it opened and its successor is balanced
        anew."""
        return now - connection.opened < self.max_age

    async def close(self) -> None:
        while self._idle:
            self._idle.pop().close()
