"""``codepilot fetch``: download a snapshot into the model directory, fast, verified and resumable.

How it stays correct:
- Everything is written under a hidden staging directory beside the destination
  (``.<name>.partial``) and renamed into place only once every file matched its manifest digest; the
  destination carries a marker naming the snapshot. So a failed or killed fetch never leaves a
  directory that looks complete, and Triton (which starts after this init container) never sees half a
  model.
- sha256 is computed while the bytes arrive: small files are hashed as they stream; a chunk of a large
  file is hashed from the receive buffer when it is the next one in its file's order, and otherwise
  read back from the page cache once the chunks before it are in, so no second pass over the data is
  needed.
- Resume: chunks of large files are journalled (``<file>.codepilot-chunks``) after they are written, and
  verified files keep their final name in the staging directory; a restarted fetch skips both. The
  final digest check still covers every byte, so a torn write is caught, not trusted.
- Re-fetch: a destination whose marker names the same snapshot is complete (0 bytes transferred); files
  of an older snapshot in the destination whose digest the new manifest lists are hard-linked, not
  downloaded (a node-local cache or a PVC that survives restarts).

How it is fast: a thread pool issues ranged GETs of ``chunk_size`` for large files and whole GETs for
small ones, so many small files are not serialised behind request latency and large files use several
connections. The chunks of large files run in lanes (a thread fetching its chunks one after another,
a whole file per lane where there are enough files), so most chunks are next in order when they
arrive and are hashed inline; bodies are received into a reused per-thread buffer. hashlib releases
the GIL, so hashing runs beside the network threads.
"""

from __future__ import annotations

import collections
import contextlib
import hashlib
import http.client
import json
import os
import shutil
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import FIRST_EXCEPTION, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from minio import Minio
from urllib3.exceptions import HTTPError as Urllib3Error

from codepilot_operator.snapshots.errors import FailureReason, SnapshotError
from codepilot_operator.snapshots.manifest import (
    Manifest,
    SnapshotLocation,
    check_relpath,
    listing_fingerprint,
)
from codepilot_operator.snapshots.progress import Progress
from codepilot_operator.snapshots.s3io import translate

MARKER = ".codepilot-fetch.json"
PART_SUFFIX = ".codepilot-part"
JOURNAL_SUFFIX = ".codepilot-chunks"
PARTIAL_META = ".codepilot-partial.json"
DEFAULT_WORKERS = 8
DEFAULT_CHUNK_SIZE = 16 * 1024 * 1024
_READ_SIZE = 1024 * 1024
_ATTEMPTS = 3
_HASH_BUFFER = 4 * 1024 * 1024
_RECV_BUFFER = 1024 * 1024  # per thread, reused: received into, written and hashed from, never copied


_local = threading.local()


@dataclass(frozen=True)
class FetchItem:
    path: str
    key: str
    size: int
    sha256: str | None  # None only when fetching a mutable source prefix, which has no manifest


@dataclass(frozen=True)
class FetchPlan:
    bucket: str
    identity: str  # the snapshot ID, or "source:<listing fingerprint>"
    items: tuple[FetchItem, ...]

    @property
    def total_bytes(self) -> int:
        return sum(item.size for item in self.items)


@dataclass(frozen=True)
class FetchResult:
    identity: str
    dest: Path
    total_bytes: int
    downloaded_bytes: int
    reused_bytes: int
    files_downloaded: int
    files_reused: int
    seconds: float

    @property
    def already_complete(self) -> bool:
        return self.downloaded_bytes == 0 and self.files_downloaded == 0


def read_manifest(client: Minio, location: SnapshotLocation, snapshot_id: str) -> Manifest:
    key = location.manifest_key(snapshot_id)
    try:
        response = client.get_object(location.bucket, key)
        try:
            data = response.read(decode_content=False)
        finally:
            response.close()
            response.release_conn()
    except Exception as exc:
        raise translate(exc, f"s3://{location.bucket}/{key}") from None
    return Manifest.from_bytes(data, expected_id=snapshot_id)


def plan_snapshot(client: Minio, location: SnapshotLocation, snapshot_id: str) -> FetchPlan:
    manifest = read_manifest(client, location, snapshot_id)
    items = tuple(FetchItem(f.path, location.blob_key(f.sha256), f.size, f.sha256) for f in manifest.files)
    return FetchPlan(location.bucket, snapshot_id, items)


def plan_source(client: Minio, bucket: str, prefix: str) -> FetchPlan:
    """Unverified mirror of a mutable prefix: used only before the operator has made a snapshot."""
    base = f"{prefix}/" if prefix else ""
    try:
        objects = [
            (obj.object_name, obj.size or 0, obj.etag or "")
            for obj in client.list_objects(bucket, prefix=base or None, recursive=True)
            if obj.object_name and not obj.object_name.endswith("/")
        ]
    except Exception as exc:
        raise translate(exc, f"s3://{bucket}/{base}") from None
    if not objects:
        raise SnapshotError(FailureReason.OBJECT_MISSING, f"no objects under s3://{bucket}/{base}")
    items = tuple(FetchItem(check_relpath(key[len(base) :]), key, size, None) for key, size, _ in objects)
    uri = f"s3://{bucket}/{prefix}"
    fingerprint = listing_fingerprint(uri, ((key[len(base) :], size, etag) for key, size, etag in objects))
    return FetchPlan(bucket, f"source:{fingerprint}", items)


def read_marker(directory: Path, name: str = MARKER) -> dict[str, Any] | None:
    try:
        doc = json.loads((directory / name).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return doc if isinstance(doc, dict) else None


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while block := handle.read(_READ_SIZE):
            digest.update(block)
    return digest.hexdigest()


def is_complete(dest: Path, plan: FetchPlan, *, deep: bool = False) -> bool:
    """The marker names this plan and every file is there with its size (and digest, if ``deep``)."""
    marker = read_marker(dest)
    if marker is None or marker.get("identity") != plan.identity:
        return False
    for item in plan.items:
        path = dest / item.path
        try:
            if path.stat().st_size != item.size:
                return False
        except OSError:
            return False
        if deep and item.sha256 and sha256_file(path) != item.sha256:
            return False
    return True


class _LargeFile:
    """A file fetched in ranged chunks, hashed in order as chunks land, journalled for resume."""

    def __init__(self, item: FetchItem, final: Path, chunk_size: int):
        self.item = item
        self.final = final
        self.part = final.with_name(final.name + PART_SUFFIX)
        self.journal = final.with_name(final.name + JOURNAL_SUFFIX)
        self.chunk_size = chunk_size
        self.chunks = -(-item.size // chunk_size)
        self.lock = threading.Lock()
        self.hash_lock = threading.Lock()
        self.buffer = bytearray(_HASH_BUFFER)
        self.hasher = hashlib.sha256()
        self.saved = self.hasher  # the hasher's state before the chunk being hashed inline
        self.hashed = 0  # chunks fed to the hasher, in order
        self.finished = False
        self.done = self._load_journal()
        self.fd = os.open(self.part, os.O_RDWR | os.O_CREAT, 0o644)
        if os.fstat(self.fd).st_size != item.size:
            os.ftruncate(self.fd, item.size)

    def _load_journal(self) -> set[int]:
        """Chunks written by an interrupted run with the same chunk size (the first line says which)."""
        header = f"chunk={self.chunk_size}"
        try:
            lines = self.journal.read_text(encoding="ascii").split() if self.part.exists() else []
        except OSError:
            lines = []
        if not lines or lines[0] != header:
            self.journal.write_text(header + "\n", encoding="ascii")
            return set()
        return {int(x) for x in lines[1:] if x.isdigit() and int(x) < self.chunks}

    def missing(self) -> list[int]:
        return [i for i in range(self.chunks) if i not in self.done]

    def span(self, index: int) -> tuple[int, int]:
        offset = index * self.chunk_size
        return offset, min(self.chunk_size, self.item.size - offset)

    def chunk_written(self, index: int) -> bool:
        """Record a chunk, hash whatever is now contiguous; True for the one call that verified the file.

        Chunks are hashed in order, read back from the page cache into one reused buffer (no memory
        growth however chunks arrive); only one thread hashes at a time while the others go on
        downloading.
        """
        with self.lock:
            if index not in self.done:
                with self.journal.open("a", encoding="ascii") as journal:
                    journal.write(f"{index}\n")
                self.done.add(index)
        return self.try_hash()

    def start_inline(self, index: int, position: int) -> bool:
        """Take the hasher for chunk ``index`` if it is the next one in order (and nobody hashes).

        The bytes of the chunk already written (``index``'s offset up to ``position``) are read back
        once; the caller then feeds the rest as it arrives, holding ``hash_lock`` until
        :meth:`end_inline` (or :meth:`abandon_inline`).
        """
        if not self.hash_lock.acquire(blocking=False):
            return False
        if self.hashed != index or self.finished:
            self.hash_lock.release()
            return False
        self.saved = self.hasher.copy()
        self._hash_range(self.span(index)[0], position)
        return True

    def restart_inline(self) -> None:
        """The chunk is being received again from its start: forget what was fed of it."""
        self.hasher = self.saved.copy()

    def abandon_inline(self) -> None:
        self.hasher = self.saved.copy()
        self.hash_lock.release()

    def end_inline(self, index: int) -> bool:
        """The inline-hashed chunk is complete: journal it, go on with what follows, release."""
        with self.lock:
            if index not in self.done:
                with self.journal.open("a", encoding="ascii") as journal:
                    journal.write(f"{index}\n")
                self.done.add(index)
        try:
            self.hashed = index + 1
            finished = self._advance()
        finally:
            self.hash_lock.release()
        with self.lock:
            if self.finished or self.hashed not in self.done:
                return finished
        return self.try_hash() or finished

    def _hash_range(self, start: int, end: int) -> None:
        """Feed bytes ``start`` to ``end`` of the part file to the hasher (from the page cache)."""
        position = start
        view = memoryview(self.buffer)
        while position < end:
            count = os.preadv(self.fd, [view[: min(len(view), end - position)]], position)
            if count <= 0:
                break
            self.hasher.update(view[:count])
            position += count

    def try_hash(self) -> bool:
        finished = False
        while self.hash_lock.acquire(blocking=False):
            try:
                finished = self._advance() or finished
            finally:
                self.hash_lock.release()
            with self.lock:  # a chunk may have landed after our last look: pick it up, do not lose it
                if self.finished or self.hashed not in self.done:
                    break
        return finished

    def _advance(self) -> bool:
        """Called holding ``hash_lock``: feed contiguous chunks to the hasher, then finish the file."""
        while True:
            with self.lock:
                if self.hashed not in self.done:
                    break
            offset, length = self.span(self.hashed)
            self._hash_range(offset, offset + length)
            self.hashed += 1
        if self.hashed < self.chunks or self.finished:
            return False
        self.finished = True
        self.close()
        if self.item.sha256 and self.hasher.hexdigest() != self.item.sha256:
            self.part.unlink(missing_ok=True)
            self.journal.unlink(missing_ok=True)
            raise SnapshotError(
                FailureReason.CHECKSUM_MISMATCH,
                f"{self.item.path}: sha256 {self.hasher.hexdigest()} does not match the manifest's "
                f"{self.item.sha256} (object {self.item.key} is corrupted)",
            )
        os.replace(self.part, self.final)
        self.journal.unlink(missing_ok=True)
        return True

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1


class Fetcher:
    """Runs a FetchPlan into a destination directory. ``on_bytes`` sees every received byte count."""

    def __init__(
        self,
        client: Minio,
        *,
        workers: int = DEFAULT_WORKERS,
        chunk_size: int = DEFAULT_CHUNK_SIZE,
        progress: bool = True,
        verify_local: bool = False,
        on_bytes: Callable[[int], None] | None = None,
    ):
        if workers < 1 or chunk_size < 64 * 1024:
            raise ValueError("workers must be >= 1 and chunk size >= 64KiB")
        self.client = client
        self.workers = workers
        self.chunk_size = chunk_size
        self.progress_enabled = progress
        self.verify_local = verify_local
        self.on_bytes = on_bytes
        self._abort = threading.Event()
        self._received = 0
        self._received_lock = threading.Lock()
        self._progress: Progress | None = None

    def fetch(self, plan: FetchPlan, dest: Path) -> FetchResult:
        started = time.monotonic()
        self._abort.clear()
        self._received = 0
        dest = Path(os.path.abspath(dest))
        dest.parent.mkdir(parents=True, exist_ok=True)
        old = dest.with_name(f".{dest.name}.old")
        if is_complete(dest, plan, deep=self.verify_local):
            shutil.rmtree(old, ignore_errors=True)
            return FetchResult(
                plan.identity, dest, plan.total_bytes, 0, plan.total_bytes, 0, len(plan.items), 0.0
            )

        if dest.exists() and read_marker(dest) is None and any(dest.iterdir()):
            raise SnapshotError(
                FailureReason.LOCAL_IO,
                f"{dest} exists and was not written by codepilot fetch; refusing to replace it",
            )
        staging = dest.with_name(f".{dest.name}.partial")
        meta = read_marker(staging, PARTIAL_META) if staging.exists() else None
        if staging.exists() and (meta is None or meta.get("identity") != plan.identity):
            shutil.rmtree(staging)  # a partial of another snapshot: its verified files are not ours
        staging.mkdir(exist_ok=True)
        (staging / PARTIAL_META).write_text(json.dumps({"identity": plan.identity}), encoding="utf-8")

        candidates = self._local_candidates([dest, old])
        self._progress = Progress("fetch", plan.total_bytes, len(plan.items), enabled=self.progress_enabled)
        reused_bytes = reused_files = 0
        small: list[tuple[FetchItem, Path]] = []
        large: list[_LargeFile] = []
        try:
            for item in sorted(plan.items, key=lambda i: (-i.size, i.path)):
                final = staging / check_relpath(item.path)
                final.parent.mkdir(parents=True, exist_ok=True)
                if self._already_here(final, item) or self._reuse(final, item, candidates):
                    reused_bytes += item.size
                    reused_files += 1
                    self._progress.add(item.size)
                    self._progress.file_done()
                elif item.size > self.chunk_size:
                    large.append(_LargeFile(item, final, self.chunk_size))
                else:
                    small.append((item, final))
            self._run(plan.bucket, small, large)
        except BaseException:
            for job in large:
                job.close()
            raise
        finally:
            self._progress.close()

        files = [{"path": i.path, "size": i.size, "sha256": i.sha256} for i in plan.items]
        (staging / MARKER).write_text(
            json.dumps({"identity": plan.identity, "files": files}), encoding="utf-8"
        )
        expected = {MARKER, PARTIAL_META, *(item.path for item in plan.items)}
        for leftover in [p for p in staging.rglob("*") if p.is_file()]:
            if leftover.relative_to(staging).as_posix() not in expected:
                leftover.unlink()  # a stale partial download: the directory holds the snapshot, nothing else
        self._swap_into_place(staging, dest, old)
        return FetchResult(
            identity=plan.identity,
            dest=dest,
            total_bytes=plan.total_bytes,
            downloaded_bytes=self._received,
            reused_bytes=reused_bytes,
            files_downloaded=len(plan.items) - reused_files,
            files_reused=reused_files,
            seconds=time.monotonic() - started,
        )

    # -- local reuse -------------------------------------------------------------------------------

    def _already_here(self, final: Path, item: FetchItem) -> bool:
        """Verified by an earlier, interrupted run of this same plan (it only renames verified files)."""
        try:
            if final.stat().st_size != item.size:
                return False
        except OSError:
            return False
        return not (self.verify_local and item.sha256 and sha256_file(final) != item.sha256)

    @staticmethod
    def _local_candidates(directories: Iterable[Path]) -> dict[str, Path]:
        """sha256 -> a verified local file of an earlier snapshot (from its destination marker)."""
        found: dict[str, Path] = {}
        for directory in directories:
            marker = read_marker(directory)
            for entry in (marker or {}).get("files", []):
                try:
                    digest, path = entry["sha256"], directory / check_relpath(entry["path"])
                    if digest and path.stat().st_size == entry["size"]:
                        found.setdefault(digest, path)
                except (KeyError, TypeError, ValueError, OSError):
                    continue
        return found

    def _reuse(self, final: Path, item: FetchItem, candidates: dict[str, Path]) -> bool:
        source = candidates.get(item.sha256) if item.sha256 else None
        if source is None:
            return False
        if self.verify_local and sha256_file(source) != item.sha256:
            return False
        final.unlink(missing_ok=True)
        try:
            os.link(source, final)  # same filesystem: no copy; the old directory is removed later
        except OSError:
            shutil.copyfile(source, final)
        return True

    # -- transfers ---------------------------------------------------------------------------------

    def _run(self, bucket: str, small: list[tuple[FetchItem, Path]], large: list[_LargeFile]) -> None:
        with ThreadPoolExecutor(max_workers=self.workers, thread_name_prefix="fetch") as pool:
            futures: list[Future[None]] = []
            for job in large:
                if not job.missing():  # killed after the last chunk: only the hash is left
                    futures.append(pool.submit(self._finish_large, job))
            # Large files go in lanes (a few threads, each fetching its chunks in order), small files
            # are queued for all the threads: small files are bound by request latency, large chunks by
            # bandwidth and hashing, so running both at once keeps the connections and the CPU busy.
            lanes = [collections.deque(lane) for lane in self._lanes(large, with_small=bool(small))]
            lanes_lock = threading.Lock()
            for lane in lanes:
                futures.append(pool.submit(self._fetch_lane, bucket, lane, lanes, lanes_lock))
            for item, final in small:
                futures.append(pool.submit(self._fetch_small, bucket, item, final))
            done, pending = wait(futures, return_when=FIRST_EXCEPTION)
            failed = next((f for f in done if f.exception() is not None), None)
            if failed is not None:
                self._abort.set()
                for future in pending:
                    future.cancel()
                wait(pending)
                error = failed.exception()
                assert error is not None
                raise error

    def _lanes(self, large: list[_LargeFile], *, with_small: bool) -> list[list[tuple[_LargeFile, int]]]:
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
        parts: list[tuple[int, list[tuple[_LargeFile, int]]]] = []
        for job in jobs:
            missing = job.missing()
            share = max(1, min(len(missing), round(count * job.item.size / total)))
            for first in range(share):
                part = [(job, index) for index in missing[first::share]]
                parts.append((sum(job.span(index)[1] for _, index in part), part))
        lanes: list[list[tuple[_LargeFile, int]]] = [[] for _ in range(min(count, len(parts)))]
        loads = [0] * len(lanes)
        for size, part in sorted(parts, key=lambda p: -p[0]):  # largest first, to the least loaded
            lane = loads.index(min(loads))
            lanes[lane].extend(part)
            loads[lane] += size
        return lanes

    def _fetch_lane(
        self,
        bucket: str,
        lane: collections.deque[tuple[_LargeFile, int]],
        lanes: list[collections.deque[tuple[_LargeFile, int]]],
        lock: threading.Lock,
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
                        return
                    job, index = longest.pop()
            if self._abort.is_set():
                raise SnapshotError(FailureReason.ENDPOINT_UNREACHABLE, "aborted")
            if job.try_hash():  # chunks journalled by an interrupted run: hash them first
                self._file_done()
            self._fetch_chunk(bucket, job, index)

    def _finish_large(self, job: _LargeFile) -> None:
        if job.try_hash():
            self._file_done()

    def _count(self, nbytes: int) -> None:
        with self._received_lock:
            self._received += nbytes
        if self._progress is not None:
            self._progress.add(nbytes)
        if self.on_bytes is not None:
            self.on_bytes(nbytes)

    def _file_done(self) -> None:
        if self._progress is not None:
            self._progress.file_done()

    @staticmethod
    def _blocks(response: Any) -> Iterator[memoryview]:
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
        buffer: bytearray | None = getattr(_local, "buffer", None)
        if buffer is None or len(buffer) != _RECV_BUFFER:
            buffer = _local.buffer = bytearray(_RECV_BUFFER)
        view = memoryview(buffer)
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
        range again from its start.
        """
        for attempt in range(_ATTEMPTS):
            if self._abort.is_set():
                raise SnapshotError(FailureReason.ENDPOINT_UNREACHABLE, "aborted")
            received = 0
            if attempt and restart is not None:
                restart()
            try:
                response = self.client.get_object(bucket, key, offset=offset, length=length)
                try:
                    for block in self._blocks(response):
                        sink(block)
                        received += len(block)
                        self._count(len(block))
                        if self._abort.is_set():
                            raise SnapshotError(FailureReason.ENDPOINT_UNREACHABLE, "aborted")
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
        part = final.with_name(final.name + PART_SUFFIX)
        digest = hashlib.sha256()
        received = 0
        with part.open("wb") as handle:

            def sink(block: memoryview) -> None:
                handle.write(block)
                digest.update(block)

            def restart() -> None:
                nonlocal digest
                handle.seek(0)
                handle.truncate()
                digest = hashlib.sha256()

            for _attempt in range(2):
                restart()
                received = self._get(bucket, item.key, 0, 0, sink, restart) if item.size else 0
                if received == item.size:
                    break
        if received != item.size or (item.sha256 and digest.hexdigest() != item.sha256):
            part.unlink(missing_ok=True)
            got = f"{received} bytes" if received != item.size else f"sha256 {digest.hexdigest()}"
            raise SnapshotError(
                FailureReason.CHECKSUM_MISMATCH,
                f"{item.path}: got {got}, the manifest says {item.size} bytes with sha256 {item.sha256} "
                f"(object {item.key} is corrupted)",
            )
        os.replace(part, final)
        self._file_done()

    def _fetch_chunk(self, bucket: str, job: _LargeFile, index: int) -> None:
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
            os.pwrite(job.fd, block, position)
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
            self._file_done()

    # -- publish -----------------------------------------------------------------------------------

    @staticmethod
    def _swap_into_place(staging: Path, dest: Path, old: Path) -> None:
        """Two renames on one filesystem; at every instant ``dest`` is absent or complete."""
        shutil.rmtree(old, ignore_errors=True)
        if dest.exists():
            os.rename(dest, old)
        os.rename(staging, dest)
        (dest / PARTIAL_META).unlink(missing_ok=True)
        shutil.rmtree(old, ignore_errors=True)
        with contextlib.suppress(OSError):  # make the rename durable where the filesystem allows it
            fd = os.open(dest.parent, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
