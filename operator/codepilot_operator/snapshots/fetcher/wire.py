"""A lean GET of an object body: a presigned URL sent on a kept-alive socket, the body received in place.

Many small files are bound by per-request CPU, and on a node the fetcher shares its cores with
everything else (in the benchmark, with the S3 server itself). Through minio and urllib3 a GET of a
160 KiB object cost ~0.9 ms of client CPU here; this path costs ~0.16 ms including the signature: one
``sendall`` of a presigned request, the status line and headers parsed from the first ``recv``, and the
body ``recv_into`` the caller's reused buffer. The signature is minio's (``presigned_get_object``:
credentials, session token and region handled there), the connection one per thread.

Anything but a plain 200/206 with a Content-Length (an error, a redirect, a chunked body) is not
interpreted here: the caller repeats the request through minio, which turns it into the S3 error it is.
Socket failures surface as ConnectionError, which the caller retries and reports like minio's.

Plain http endpoints only (an in-cluster MinIO or SeaweedFS): https ones keep minio's urllib3 path,
whose certificate checks are tested, until this path has a TLS test of its own (:func:`usable`).
"""

from __future__ import annotations

import contextlib
import socket
import threading
from collections.abc import Callable
from datetime import timedelta
from urllib.parse import urlsplit

from minio import Minio

from codepilot_operator.clients.s3 import S3Settings

_PRESIGN_FOR = timedelta(hours=1)  # used at once; generous for clock skew, never stored
_HEAD_LIMIT = 64 * 1024


class _Connection:
    def __init__(self, sock: socket.socket):
        self.sock = sock
        self.pending = b""  # bytes received past the end of the last response's headers

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.sock.close()


def usable(settings: S3Settings) -> bool:
    return not settings.secure


class Wire:
    """GETs for one Transfer: a socket per thread to the client's endpoint, closed by :meth:`close`."""

    def __init__(self, client: Minio, settings: S3Settings):
        parts = urlsplit(settings.endpoint)
        self.client = client
        self.host = parts.hostname or ""
        self.port = parts.port or 80
        self.connect_timeout = float(settings.connect_timeout)
        self.read_timeout = float(settings.read_timeout)
        if parts.scheme != "http":
            raise ValueError(f"the lean GET path is for http:// endpoints, not {settings.endpoint}")
        self._local = threading.local()
        self._all: list[_Connection] = []
        self._lock = threading.Lock()

    def _connection(self) -> _Connection:
        conn: _Connection | None = getattr(self._local, "conn", None)
        if conn is not None:
            return conn
        sock = socket.create_connection((self.host, self.port), timeout=self.connect_timeout)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sock.settimeout(self.read_timeout)
        conn = self._local.conn = _Connection(sock)
        with self._lock:
            self._all.append(conn)
        return conn

    def _drop(self, conn: _Connection) -> None:
        conn.close()
        if getattr(self._local, "conn", None) is conn:
            self._local.conn = None

    def close(self) -> None:
        with self._lock:
            for conn in self._all:
                conn.close()
            self._all.clear()

    def get(
        self,
        bucket: str,
        key: str,
        offset: int,
        length: int,
        sink: Callable[[memoryview], None],
        buffer: bytearray,
    ) -> bool:
        """Stream the object (``length`` bytes from ``offset``; 0 = all of it) into ``sink``.

        False when the server answered anything but the body (nothing was fed to ``sink``): the caller
        asks minio instead. Socket failures raise ConnectionError (the connection is dropped).
        """
        url = urlsplit(self.client.presigned_get_object(bucket, key, expires=_PRESIGN_FOR))
        ranged = f"Range: bytes={offset}-{offset + length - 1}\r\n" if length else ""
        request = (
            f"GET {url.path}?{url.query} HTTP/1.1\r\nHost: {url.netloc}\r\n"
            f"User-Agent: codepilot-fetch\r\n{ranged}\r\n"
        ).encode()
        conn = self._connection()
        try:
            return self._exchange(conn, request, bool(length), sink, memoryview(buffer))
        except OSError as exc:
            self._drop(conn)
            raise ConnectionError(str(exc) or type(exc).__name__) from exc
        except BaseException:
            self._drop(conn)  # mid-body: the connection cannot be reused
            raise

    def _exchange(
        self,
        conn: _Connection,
        request: bytes,
        ranged: bool,
        sink: Callable[[memoryview], None],
        view: memoryview,
    ) -> bool:
        sock = conn.sock
        sock.sendall(request)
        head = conn.pending
        while (end := head.find(b"\r\n\r\n")) < 0:
            if len(head) > _HEAD_LIMIT:
                raise ConnectionError("response headers too long")
            received = sock.recv(65536)
            if not received:
                raise ConnectionError("connection closed by the server")
            head += received
        lines = head[:end].split(b"\r\n")
        body = head[end + 4 :]
        status_line = lines[0].split(None, 2)
        status = int(status_line[1]) if len(status_line) > 1 and status_line[1].isdigit() else 0
        headers = {}
        for line in lines[1:]:
            name, _, value = line.partition(b":")
            headers[name.strip().lower()] = value.strip().lower()
        chunked = b"chunked" in headers.get(b"transfer-encoding", b"")
        size_text = headers.get(b"content-length", b"")
        if chunked or not size_text.isdigit():
            self._drop(conn)  # framing we do not read here: hand the request to minio
            return False
        size = int(size_text)
        close = headers.get(b"connection") == b"close"
        if status != (206 if ranged else 200):  # an error, a redirect, or a range ignored
            self._skip(conn, body, size)
            if close:
                self._drop(conn)
            return False
        first, conn.pending = body[:size], body[size:]
        if first:
            sink(memoryview(first))
        remaining = size - len(first)
        # Whole buffers, not whatever a segment brought: every block costs a write, a hash update and
        # a progress count in Python, so 1 MiB blocks rather than ~64 KiB ones.
        while remaining:
            count = sock.recv_into(view, min(len(view), remaining), socket.MSG_WAITALL)
            if not count:
                raise ConnectionError("connection closed by the server mid-body")
            sink(view[:count])
            remaining -= count
        if close or conn.pending:
            self._drop(conn)  # a server that closes, or sent what we did not ask for
        return True

    def _skip(self, conn: _Connection, body: bytes, size: int) -> None:
        remaining = size - min(len(body), size)
        conn.pending = body[size:]
        while remaining > 0:
            received = conn.sock.recv(min(65536, remaining))
            if not received:
                raise ConnectionError("connection closed by the server")
            remaining -= len(received)
