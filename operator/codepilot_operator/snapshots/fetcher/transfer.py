"""The transfer scheduler: a thread pool of GETs, whole objects for small files, lanes for large ones.

Many small files are not serialised behind request latency, and large files use several connections.
The chunks of large files run in lanes (a thread fetching its chunks one after another, a whole file
per lane where there are enough files), so most chunks are next in order when they arrive and are
hashed inline; bodies are received into a reused per-thread buffer. hashlib releases the GIL, so
hashing runs beside the network threads.
"""

from __future__ import annotations

import collections
import hashlib
import http.client
import os
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import FIRST_EXCEPTION, Future, ThreadPoolExecutor, wait
from pathlib import Path
from typing import Any

from minio import Minio
from urllib3.exceptions import HTTPError as Urllib3Error

from codepilot_operator.clients.s3 import S3Client
from codepilot_operator.snapshots.errors import FailureReason, LocalWriteError, SnapshotError
from codepilot_operator.snapshots.fetcher.chunked import ChunkedFile
from codepilot_operator.snapshots.fetcher.plan import FetchItem
from codepilot_operator.snapshots.fetcher.wire import Wire, usable
from codepilot_operator.snapshots.s3io import translate

_READ_SIZE = 1024 * 1024
_ATTEMPTS = 3
_RECV_BUFFER = 1024 * 1024  # per thread, reused: received into, written and hashed from, never copied

_local = threading.local()


def write_all(fd: int, block: memoryview, position: int | None, path: Path) -> None:
    """Write all of ``block`` (at ``position``, or the file offset), naming ``path`` if it fails.

    A short write is not the end: the bytes were hashed as received, so a dropped tail would leave a
    hole on disk behind a digest that matched. The next write of the rest raises (ENOSPC, EFBIG).
    """
    try:
        while block:
            written = os.write(fd, block) if position is None else os.pwrite(fd, block, position)
            block = block[written:]
            if position is not None:
                position += written
    except OSError as exc:
        raise LocalWriteError(path, exc) from None


class Transfer:
    """One fetch's downloads; ``on_bytes`` sees every received byte count, ``on_file`` every file once it
    is verified and has its final name."""

    def __init__(
        self,
        client: Minio,
        workers: int,
        on_bytes: Callable[[int], None],
        on_file: Callable[[FetchItem, os.stat_result | None], None],
    ):
        self.client = client
        self.workers = workers
        self.on_bytes = on_bytes
        self.on_file = on_file
        self._abort = threading.Event()
        lean = isinstance(client, S3Client) and usable(client.settings)
        self.wire = Wire(client, client.settings) if isinstance(client, S3Client) and lean else None

    def run(self, bucket: str, small: list[tuple[FetchItem, Path]], large: list[ChunkedFile]) -> None:
        try:
            self._run(bucket, small, large)
        finally:
            if self.wire is not None:
                self.wire.close()

    def _run(self, bucket: str, small: list[tuple[FetchItem, Path]], large: list[ChunkedFile]) -> None:
        with ThreadPoolExecutor(max_workers=self.workers, thread_name_prefix="fetch") as pool:
            futures: list[Future[None]] = []
            for job in large:
                if not job.missing():  # killed after the last chunk: only the hash is left
                    futures.append(pool.submit(self._finish_large, job))
            # Large files go in lanes (a few threads, each fetching its chunks in order), small files
            # are shared by all the threads: small files are bound by request latency, large chunks by
            # bandwidth and hashing, so running both at once keeps the connections and the CPU busy.
            # Small files sit in one queue that threads drain (a lane's thread joins when its lane is
            # done), not a future each: a future per file was a lock and a condition per file.
            lanes = [collections.deque(lane) for lane in self._lanes(large, with_small=bool(small))]
            lanes_lock = threading.Lock()
            queue = collections.deque(small)
            for lane in lanes:
                futures.append(pool.submit(self._fetch_lane, bucket, lane, lanes, lanes_lock, queue))
            for _ in range(min(len(small), self.workers - len(lanes))):
                futures.append(pool.submit(self._drain_small, bucket, queue))
            done, pending = wait(futures, return_when=FIRST_EXCEPTION)
            failed = next((f for f in done if f.exception() is not None), None)
            if failed is not None:
                self._abort.set()
                queue.clear()
                for future in pending:
                    future.cancel()
                wait(pending)
                error = failed.exception()
                assert error is not None
                raise error

    def _drain_small(self, bucket: str, queue: collections.deque[tuple[FetchItem, Path]]) -> None:
        while not self._abort.is_set():
            try:
                item, final = queue.popleft()  # deque.popleft is atomic: no lock needed
            except IndexError:
                return
            self._fetch_small(bucket, item, final)

    def _lanes(self, large: list[ChunkedFile], *, with_small: bool) -> list[list[tuple[ChunkedFile, int]]]:
        """Split the missing chunks of the large files into lanes, each fetched in order by one thread.

        A chunk that is the next one in its file's order when it arrives is hashed straight from the
        receive buffer (no read-back from the page cache, no hashing backlog behind a lock), and a lane
        that owns a whole file makes every chunk of it that. So a file gets lanes in proportion to its
        size: one each where there are enough files, several (chunks dealt round-robin) for a file
        much larger than the rest, so one big file still uses several connections. Lanes: one per
        file, at least half of the workers, at most all of them but one if small files are waiting.
        """
        jobs = [job for job in large if job.missing()]
        if not jobs:
            return []
        count = min(self.workers, max(len(jobs), self.workers // 2, 1))
        if with_small and self.workers > 1:
            count = min(count, self.workers - 1)
        total = sum(job.item.size for job in jobs)
        parts: list[tuple[int, list[tuple[ChunkedFile, int]]]] = []
        for job in jobs:
            missing = job.missing()
            share = max(1, min(len(missing), round(count * job.item.size / total)))
            for first in range(share):
                part = [(job, index) for index in missing[first::share]]
                parts.append((sum(job.span(index)[1] for _, index in part), part))
        lanes: list[list[tuple[ChunkedFile, int]]] = [[] for _ in range(min(count, len(parts)))]
        loads = [0] * len(lanes)
        for size, part in sorted(parts, key=lambda p: -p[0]):  # largest first, to the least loaded
            lane = loads.index(min(loads))
            lanes[lane].extend(part)
            loads[lane] += size
        return lanes

    def _fetch_lane(
        self,
        bucket: str,
        lane: collections.deque[tuple[ChunkedFile, int]],
        lanes: list[collections.deque[tuple[ChunkedFile, int]]],
        lock: threading.Lock,
        small: collections.deque[tuple[FetchItem, Path]],
    ) -> None:
        """Fetch a lane's chunks in order; when it is empty, take the last chunk of the longest lane.

        The stealing keeps every lane's thread busy to the end whatever the split (chunks taken from
        the end of another file are hashed by read-back once their turn comes, as before lanes).
        """
        while True:
            with lock:
                if lane:
                    job, index = lane.popleft()
                else:
                    longest = max(lanes, key=len)
                    if not longest:
                        break
                    job, index = longest.pop()
            if self._abort.is_set():
                raise SnapshotError(FailureReason.ENDPOINT_UNREACHABLE, "aborted")
            if job.try_hash():  # chunks journalled by an interrupted run: hash them first
                self.on_file(job.item, None)
            self._fetch_chunk(bucket, job, index)
        self._drain_small(bucket, small)

    def _finish_large(self, job: ChunkedFile) -> None:
        if job.try_hash():
            self.on_file(job.item, None)

    @staticmethod
    def _buffer() -> bytearray:
        buffer: bytearray | None = getattr(_local, "buffer", None)
        if buffer is None or len(buffer) != _RECV_BUFFER:
            buffer = _local.buffer = bytearray(_RECV_BUFFER)
        return buffer

    @classmethod
    def _blocks(cls, response: Any) -> Iterator[memoryview]:
        """The body as views of one reused per-thread buffer, each valid until the next is asked for.

        Reads straight into the buffer through the ``http.client`` response urllib3 wraps (no bytes
        object allocated and copied per block); falls back to urllib3's stream if that is not there.
        The body is taken as sent (no content decoding), like ``stream(decode_content=False)``.
        """
        raw = getattr(response, "_fp", None)
        if raw is None or not callable(getattr(raw, "readinto", None)):
            for block in response.stream(_READ_SIZE, decode_content=False):
                yield memoryview(block)
            return
        view = memoryview(cls._buffer())
        while count := raw.readinto(view):
            yield view[:count]

    def _get(
        self,
        bucket: str,
        key: str,
        offset: int,
        length: int,
        sink: Callable[[memoryview], None],
        restart: Callable[[], None] | None = None,
    ) -> int:
        """One GET with a few retries on network errors; returns bytes received in the last attempt.

        ``restart`` is called before a retry that follows a partly received attempt: the sink sees the
        range again from its start. The lean path (wire.py) is tried first; whatever it does not read
        as a body (errors above all) is asked again through minio, whose exceptions say what it was.
        """
        received = 0

        def counted(block: memoryview) -> None:
            nonlocal received
            sink(block)
            received += len(block)
            self.on_bytes(len(block))
            if self._abort.is_set():
                raise SnapshotError(FailureReason.ENDPOINT_UNREACHABLE, "aborted")

        for attempt in range(_ATTEMPTS):
            if self._abort.is_set():
                raise SnapshotError(FailureReason.ENDPOINT_UNREACHABLE, "aborted")
            if attempt and restart is not None:
                restart()
            received = 0
            try:
                if self.wire is not None and self.wire.get(
                    bucket, key, offset, length, counted, self._buffer()
                ):
                    return received
                if received:  # never: the lean path feeds nothing when it hands over; keep sinks honest
                    raise AssertionError("partial body before a fallback")
                response = self.client.get_object(bucket, key, offset=offset, length=length)
                try:
                    for block in self._blocks(response):
                        counted(block)
                finally:
                    response.close()
                    response.release_conn()
                return received
            except SnapshotError:
                raise
            except (Urllib3Error, http.client.HTTPException, ConnectionError, TimeoutError) as exc:
                if attempt + 1 == _ATTEMPTS:
                    raise translate(exc, f"s3://{bucket}/{key}") from None
                time.sleep(0.5 * 2**attempt)
                continue
            except Exception as exc:
                raise translate(exc, f"s3://{bucket}/{key}") from None
        raise AssertionError("unreachable")

    def _fetch_small(self, bucket: str, item: FetchItem, final: Path) -> None:
        """Receive a whole object at its final name, hashing as it streams.

        No part file and rename: in the staging directory a name proves nothing, the verified-file
        record does (and it is taken from the open file, so one stat less per file).
        """
        digest = hashlib.sha256()
        received = 0
        try:
            fd = os.open(final, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o644)
        except OSError as exc:
            raise LocalWriteError(final, exc) from None
        try:

            def sink(block: memoryview) -> None:
                write_all(fd, block, None, final)
                digest.update(block)

            def restart() -> None:
                nonlocal digest
                os.lseek(fd, 0, os.SEEK_SET)
                os.ftruncate(fd, 0)
                digest = hashlib.sha256()

            for _attempt in range(2):
                if _attempt:
                    restart()
                received = self._get(bucket, item.key, 0, 0, sink, restart) if item.size else 0
                if received == item.size:
                    break
            good = received == item.size and not (item.sha256 and digest.hexdigest() != item.sha256)
            stat = os.fstat(fd) if good else None
        finally:
            os.close(fd)
        if stat is None:
            final.unlink(missing_ok=True)
            got = f"{received} bytes" if received != item.size else f"sha256 {digest.hexdigest()}"
            raise SnapshotError(
                FailureReason.CHECKSUM_MISMATCH,
                f"{item.path}: got {got}, the manifest says {item.size} bytes with sha256 {item.sha256} "
                f"(object {item.key} is corrupted)",
            )
        self.on_file(item, stat)

    def _fetch_chunk(self, bucket: str, job: ChunkedFile, index: int) -> None:
        """Receive one chunk into the part file; hash it as it arrives when it is next in order."""
        offset, length = job.span(index)
        position = offset
        inline = False  # this thread holds job.hash_lock and feeds the chunk to the hasher directly

        def sink(block: memoryview) -> None:
            nonlocal position, inline
            if position + len(block) > offset + length:
                raise SnapshotError(
                    FailureReason.CHECKSUM_MISMATCH, f"{job.item.key}: longer than its manifest"
                )
            write_all(job.fd, block, position, job.part)
            if not inline and job.hashed == index:  # unlocked hint; start_inline checks under the lock
                inline = job.start_inline(index, position)
            position += len(block)
            if inline:
                job.hasher.update(block)

        def restart() -> None:
            nonlocal position
            position = offset
            if inline:
                job.restart_inline()

        try:
            for _attempt in range(2):
                restart()
                self._get(bucket, job.item.key, offset, length, sink, restart)
                if position == offset + length:
                    break
            if position != offset + length:
                raise SnapshotError(
                    FailureReason.CHECKSUM_MISMATCH,
                    f"{job.item.path}: object {job.item.key} is shorter than the manifest's {job.item.size}",
                )
        except BaseException:
            if inline:
                job.abandon_inline()
            raise
        if job.end_inline(index) if inline else job.chunk_written(index):
            self.on_file(job.item, None)
