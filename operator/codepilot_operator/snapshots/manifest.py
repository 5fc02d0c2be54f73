"""Snapshot manifests and where snapshots live in the bucket. Pure: no I/O.

A snapshot is identified by the sha256 of its canonical manifest, so the ID says exactly which bytes a
replica serves: the same files give the same ID wherever and whenever they are snapshotted, and any
change to any file gives a new one. The manifest deliberately holds content only (paths, sizes,
digests); the model version and the source location live beside it, in the source index, because the
same bytes published as two versions are one snapshot.

Layout under ``s3://<bucket>/<snapshotPrefix>/<namespace>/<codepilot>/``::

    <id>/manifest.json          one per snapshot; its sha256 is <id>
    blobs/sha256/<digest>       file contents, stored once per digest (dedupe across snapshots)
    sources/<fingerprint>.json  source listing fingerprint -> snapshot id (makes re-checks cheap)
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from codepilot_operator.snapshots.errors import FailureReason, SnapshotError

FORMAT = "codepilot.dev/snapshot-manifest/v1"
MANIFEST_NAME = "manifest.json"
SNAPSHOT_ID_RE = re.compile(r"^[0-9a-f]{64}$")
# As git: 4 hex digits at least, so a prefix is never a typo that happens to match by chance.
MIN_ID_PREFIX = 4
_ID_PREFIX_RE = re.compile(r"^[0-9a-f]+$")


class AmbiguousPrefix(ValueError):
    """A prefix that is malformed or names several snapshots (invalid input); the message is one line."""


def is_id_prefix(text: str) -> bool:
    """Lowercase hex shorter than a full ID: to be looked up among the snapshots."""
    return len(text) < 64 and bool(_ID_PREFIX_RE.match(text))


def resolve_id_prefix(prefix: str, known: Iterable[str]) -> str:
    """The one snapshot ID in ``known`` that starts with ``prefix`` (a full ID is its own prefix).

    People copy the first characters of an ID from ``snapshot list``, as they do with git commits.
    """
    if not _ID_PREFIX_RE.match(prefix) or len(prefix) > 64:
        raise AmbiguousPrefix(f"not a snapshot ID or ID prefix (lowercase hex): {prefix!r}")
    if len(prefix) < MIN_ID_PREFIX:
        raise AmbiguousPrefix(f"snapshot ID prefix {prefix!r} is too short: give at least {MIN_ID_PREFIX}")
    matches = sorted({i for i in known if i.startswith(prefix)})
    if len(matches) == 1:
        return matches[0]
    if not matches:  # a missing snapshot, as a full ID that is not there
        raise SnapshotError(FailureReason.INVALID_SNAPSHOT, f"no snapshot ID starts with {prefix!r}")
    shown = ", ".join(m[: len(prefix) + 8] for m in matches[:10])
    more = f" and {len(matches) - 10} more" if len(matches) > 10 else ""
    raise AmbiguousPrefix(f"snapshot ID prefix {prefix!r} is ambiguous: {shown}{more}")


_SHA256_RE = SNAPSHOT_ID_RE


@dataclass(frozen=True, order=True)
class FileEntry:
    path: str
    size: int
    sha256: str


def check_relpath(path: str) -> str:
    """A manifest path must stay inside the model directory once joined to it."""
    if (
        not path
        or path.startswith("/")
        or "\\" in path
        or "\x00" in path
        or any(part in ("", ".", "..") for part in path.split("/"))
    ):
        raise ValueError(f"unsafe path in snapshot: {path!r}")
    return path


@dataclass(frozen=True)
class Manifest:
    files: tuple[FileEntry, ...]

    @classmethod
    def of(cls, files: Iterable[FileEntry]) -> Manifest:
        entries = tuple(sorted(files))
        paths = [entry.path for entry in entries]
        if len(set(paths)) != len(paths):
            raise ValueError("duplicate paths in snapshot")
        for entry in entries:
            check_relpath(entry.path)
            if entry.size < 0 or not _SHA256_RE.match(entry.sha256):
                raise ValueError(f"bad entry for {entry.path!r}")
        return cls(entries)

    def to_bytes(self) -> bytes:
        """Canonical JSON: sorted keys and files, no whitespace, so the ID is reproducible anywhere."""
        doc = {
            "format": FORMAT,
            "files": [{"path": f.path, "size": f.size, "sha256": f.sha256} for f in self.files],
        }
        return json.dumps(doc, sort_keys=True, separators=(",", ":"), ensure_ascii=True).encode() + b"\n"

    @property
    def id(self) -> str:
        return hashlib.sha256(self.to_bytes()).hexdigest()

    @property
    def size_bytes(self) -> int:
        return sum(entry.size for entry in self.files)

    @classmethod
    def from_bytes(cls, data: bytes, expected_id: str | None = None) -> Manifest:
        """Parse and check a stored manifest; with ``expected_id`` the bytes must hash to it."""
        if expected_id is not None and hashlib.sha256(data).hexdigest() != expected_id:
            raise SnapshotError(
                FailureReason.CHECKSUM_MISMATCH,
                f"manifest of snapshot {expected_id} does not hash to its ID (modified in the bucket?)",
            )
        try:
            doc: Any = json.loads(data)
            if not isinstance(doc, dict) or doc.get("format") != FORMAT:
                raise ValueError(
                    f"unknown manifest format {doc.get('format') if isinstance(doc, dict) else doc!r}"
                )
            return cls.of(
                FileEntry(path=str(f["path"]), size=int(f["size"]), sha256=str(f["sha256"]))
                for f in doc["files"]
            )
        except (ValueError, KeyError, TypeError) as exc:
            raise SnapshotError(FailureReason.INVALID_SNAPSHOT, f"unreadable manifest: {exc}") from None


def listing_fingerprint(source_uri: str, objects: Iterable[tuple[str, int, str]]) -> str:
    """Digest of a source listing (URI; relative path, size, ETag per object).

    S3 gives an object a new ETag whenever it is rewritten, so an unchanged fingerprint means unchanged
    objects, and the operator can skip re-hashing a source it already snapshotted (after a restart, or
    on a rollback to an earlier version). The URI is part of it: ETags are not content digests.
    """
    rows = [source_uri] + [f"{path}\t{size}\t{etag.strip(chr(34))}" for path, size, etag in sorted(objects)]
    text = "\n".join(rows)
    return hashlib.sha256(text.encode()).hexdigest()


@dataclass(frozen=True)
class SnapshotLocation:
    """Where one CodePilot's snapshots live: ``s3://<bucket>/<root>/``."""

    bucket: str
    root: str

    def manifest_key(self, snapshot_id: str) -> str:
        return f"{self.root}/{snapshot_id}/{MANIFEST_NAME}"

    def blob_key(self, sha256: str) -> str:
        return f"{self.root}/blobs/sha256/{sha256}"

    @property
    def blobs_prefix(self) -> str:
        return f"{self.root}/blobs/sha256/"

    def source_index_key(self, fingerprint: str) -> str:
        return f"{self.root}/sources/{fingerprint}.json"

    @property
    def sources_prefix(self) -> str:
        return f"{self.root}/sources/"

    def uri(self, snapshot_id: str) -> str:
        """What the init container is given (``render.fetcher.snapshot_uri``; the root comes from there)."""
        return f"s3://{self.bucket}/{self.root}/{snapshot_id}"


def parse_snapshot_uri(uri: str) -> tuple[SnapshotLocation, str]:
    """``s3://bucket/<root>/<id>`` -> (location, id)."""
    match = re.fullmatch(r"s3://([^/]+)/(.+)/([0-9a-f]{64})/?", uri)
    if not match:
        raise ValueError(f"not a snapshot URI (s3://bucket/prefix/<64 hex id>): {uri}")
    bucket, root, snapshot_id = match.groups()
    return SnapshotLocation(bucket, root), snapshot_id


def parse_s3_uri(uri: str) -> tuple[str, str]:
    """``s3://bucket/some/prefix`` -> (bucket, ``some/prefix``) without surrounding slashes."""
    match = re.fullmatch(r"s3://([^/\s]+)(/.*)?", uri)
    if not match:
        raise ValueError(f"not an s3:// URI: {uri}")
    return match.group(1), (match.group(2) or "").strip("/")
