"""Which local files were verified, bound to the identity each had right after its check.

A file is trusted without re-hashing only while its inode, size, mtime and ctime are the ones recorded
when its bytes were checked against the manifest. Any change made through the filesystem (a write, a
truncate, a replacement, even a touch) moves ctime, which no user can set back, so a flipped byte in a
staging directory left by a killed fetch, or in a completed destination, is noticed and the file is
re-hashed before it is counted. What this does not see, ``--verify-local`` (re-hash everything) does:
changes below the filesystem (a failing disk, raw device writes), and, on kernels without fine-grained
timestamps (before 6.13), a write landing in the same clock tick (a few ms) as the record.

Two places keep records: ``.codepilot-verified`` in the staging directory, one JSON line appended per
verified file (a torn last line after a kill is ignored, which only costs a re-hash), and the
destination's marker, which lists every file of the snapshot with its record.
"""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

JOURNAL = ".codepilot-verified"


@dataclass(frozen=True)
class Verified:
    path: str
    size: int
    sha256: str | None  # None for a source fetch: checked by size only, there is no digest to check
    ino: int
    mtime_ns: int
    ctime_ns: int

    @classmethod
    def now(cls, root: Path, path: str, sha256: str | None, st: os.stat_result | None = None) -> Verified:
        """The record of ``root/path`` as it is now (or as ``st``, an fstat of it after its last write)."""
        st = st if st is not None else os.stat(root / path)
        return cls(path, st.st_size, sha256, st.st_ino, st.st_mtime_ns, st.st_ctime_ns)

    def holds(self, root: Path, size: int, sha256: str | None) -> bool:
        """``root/path`` is still the file that was verified, and it is the one the plan wants."""
        if (self.size, self.sha256) != (size, sha256):
            return False
        try:
            st = os.stat(root / self.path)
        except OSError:
            return False
        return (st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns) == (
            self.ino,
            self.size,
            self.mtime_ns,
            self.ctime_ns,
        )

    def relinked(self, root: Path) -> Verified | None:
        """The record after our own link or unlink of the inode (which moves only its ctime).

        None if the content may have changed too (inode, size or mtime differ): it must be re-hashed.
        """
        try:
            st = os.stat(root / self.path)
        except OSError:
            return None
        if (st.st_ino, st.st_size, st.st_mtime_ns) != (self.ino, self.size, self.mtime_ns):
            return None
        return Verified(self.path, self.size, self.sha256, self.ino, self.mtime_ns, st.st_ctime_ns)

    def to_json(self) -> dict[str, Any]:
        return {  # by hand: dataclasses.asdict deep-copies, and this runs once per verified file
            "path": self.path,
            "size": self.size,
            "sha256": self.sha256,
            "ino": self.ino,
            "mtime_ns": self.mtime_ns,
            "ctime_ns": self.ctime_ns,
        }

    @classmethod
    def from_json(cls, doc: Any) -> Verified | None:
        try:
            sha256 = doc["sha256"]
            return cls(
                str(doc["path"]),
                int(doc["size"]),
                None if sha256 is None else str(sha256),
                int(doc["ino"]),
                int(doc["mtime_ns"]),
                int(doc["ctime_ns"]),
            )
        except (KeyError, TypeError, ValueError):
            return None  # written before records carried an identity, or damaged: not trusted


def records(entries: Any) -> Iterator[Verified]:
    for entry in entries if isinstance(entries, list) else []:
        record = Verified.from_json(entry)
        if record is not None:
            yield record


class VerifiedJournal:
    """The staging directory's append-only record of verified files; safe to add from many threads."""

    def __init__(self, staging: Path):
        self.staging = staging
        self.path = staging / JOURNAL
        self.entries: dict[str, Verified] = dict((r.path, r) for r in self._load())
        self._lock = threading.Lock()
        self._fd = -1

    def _load(self) -> Iterator[Verified]:
        try:
            lines = self.path.read_bytes().splitlines()
        except OSError:
            return
        for line in lines:
            try:
                record = Verified.from_json(json.loads(line))
            except ValueError:
                continue
            if record is not None:
                yield record

    def trusted(self, path: str, size: int, sha256: str | None) -> bool:
        record = self.entries.get(path)
        return record is not None and record.holds(self.staging, size, sha256)

    def add(self, path: str, sha256: str | None, st: os.stat_result | None = None) -> Verified:
        """Record ``path`` (relative to the staging directory), verified just now."""
        record = Verified.now(self.staging, path, sha256, st)
        line = (json.dumps(record.to_json(), separators=(",", ":")) + "\n").encode()
        with self._lock:
            if self._fd < 0:
                self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o644)
            os.write(self._fd, line)  # one write per line: O_APPEND keeps lines whole
            self.entries[path] = record
        return record

    def close(self) -> None:
        with self._lock:
            if self._fd >= 0:
                os.close(self._fd)
                self._fd = -1

    def snapshot(self) -> Mapping[str, Verified]:
        with self._lock:
            return dict(self.entries)
