"""A large file fetched in ranged chunks: the chunk journal and the in-order hasher.

Chunks arrive out of order from several connections, but sha256 is sequential. A chunk that is the next
one in its file's order when it arrives is hashed straight from the receive buffer (the caller feeds
:attr:`ChunkedFile.hasher` between :meth:`~ChunkedFile.start_inline` and :meth:`~ChunkedFile.end_inline`);
any other is hashed later by reading it back from the page cache once the chunks before it are in. So
no second pass over the data is needed, and memory stays one buffer per file however chunks arrive.

Resume: chunks are journalled (``<file>.codepilot-chunks``) after they are written; a restarted fetch
skips them but still hashes them (read back), so a torn write is caught by the file's digest, not
trusted. The file gets its final name only once its digest matches the manifest.
"""

from __future__ import annotations

import hashlib
import os
import threading
from pathlib import Path

from codepilot_operator.snapshots.errors import FailureReason, SnapshotError
from codepilot_operator.snapshots.fetcher.plan import FetchItem

PART_SUFFIX = ".codepilot-part"
JOURNAL_SUFFIX = ".codepilot-chunks"
_HASH_BUFFER = 4 * 1024 * 1024


class ChunkedFile:
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

    def unallocated(self) -> int:
        """Bytes of the part file not on disk yet (it is sparse until its chunks are written)."""
        st = os.fstat(self.fd)
        return max(0, self.item.size - st.st_blocks * 512)

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
