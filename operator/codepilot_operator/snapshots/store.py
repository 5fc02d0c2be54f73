"""Snapshots in S3: create (hash + server-side copy), read, list, verify, delete and sweep blobs.

Creating a snapshot reads every source byte once to hash it (S3 ETags are not sha256), then copies
each file server-side into ``blobs/sha256/<digest>`` unless that blob already exists. The copy is
conditional on the ETag that was hashed (``x-amz-copy-source-if-match``), so a source rewritten
mid-snapshot fails with SourceChanged instead of producing a snapshot whose digests lie.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import re
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from minio import Minio
from minio.commonconfig import ComposeSource, CopySource
from minio.deleteobjects import DeleteObject

from codepilot_operator.snapshots.errors import FailureReason, SnapshotError
from codepilot_operator.snapshots.manifest import (
    MANIFEST_NAME,
    SNAPSHOT_ID_RE,
    FileEntry,
    Manifest,
    SnapshotLocation,
)
from codepilot_operator.snapshots.progress import Progress
from codepilot_operator.snapshots.retention import RetentionPolicy, SnapshotAge, decide
from codepilot_operator.snapshots.s3io import translate
from codepilot_operator.snapshots.source import SourceObject, list_source

_READ_SIZE = 1024 * 1024
_MAX_SINGLE_COPY = 5 * 1024**3  # S3 CopyObject limit; bigger objects are copied part by part
DEFAULT_BLOB_GRACE = timedelta(hours=1)
CREATED_META = "codepilot-created"


@dataclass(frozen=True)
class SnapshotRef:
    """What status records for a track: the ID, its size, and where the init container reads it."""

    id: str
    version: str
    size_bytes: int
    file_count: int
    uri: str
    reused: bool = False  # the snapshot already existed (same content seen before)
    bytes_copied: int = 0


@dataclass(frozen=True)
class SnapshotInfo:
    id: str
    created: datetime
    size_bytes: int
    file_count: int
    versions: tuple[str, ...] = ()


@dataclass(frozen=True)
class GcResult:
    kept: dict[str, list[str]]
    deleted: list[str]
    blobs_deleted: int = 0
    bytes_freed: int = 0
    dry_run: bool = False


@dataclass
class _Listing:
    manifests: dict[str, datetime] = field(default_factory=dict)
    blobs: dict[str, tuple[int, datetime]] = field(default_factory=dict)


class SnapshotStore:
    """One CodePilot's snapshots (a SnapshotLocation) through one minio client."""

    def __init__(
        self,
        client: Minio,
        location: SnapshotLocation,
        *,
        workers: int = 4,
        progress: bool | None = False,
    ):
        """``progress``: True to report on stderr, None only when stderr is a terminal."""
        self.client = client
        self.location = location
        self.workers = workers
        self.progress = progress

    @property
    def bucket(self) -> str:
        return self.location.bucket

    def _where(self, key: str) -> str:
        return f"s3://{self.bucket}/{key}"

    # -- reading -----------------------------------------------------------------------------------

    def _get_bytes(self, key: str) -> bytes:
        try:
            response = self.client.get_object(self.bucket, key)
            try:
                return bytes(response.read(decode_content=False))
            finally:
                response.close()
                response.release_conn()
        except Exception as exc:
            raise translate(exc, self._where(key)) from None

    def _put_bytes(self, key: str, data: bytes, metadata: dict[str, str] | None = None) -> None:
        try:
            self.client.put_object(
                self.bucket,
                key,
                io.BytesIO(data),
                len(data),
                content_type="application/json",
                metadata=dict(metadata) if metadata else None,
            )
        except Exception as exc:
            raise translate(exc, self._where(key)) from None

    def _exists(self, key: str) -> int | None:
        """Size of the object, or None when it is not there."""
        try:
            return int(self.client.stat_object(self.bucket, key).size or 0)
        except Exception as exc:
            error = translate(exc, self._where(key))
            if error.reason is FailureReason.OBJECT_MISSING:
                return None
            raise error from None

    def read_manifest(self, snapshot_id: str) -> Manifest:
        if not SNAPSHOT_ID_RE.match(snapshot_id):
            raise SnapshotError(FailureReason.INVALID_SNAPSHOT, f"not a snapshot ID: {snapshot_id!r}")
        return Manifest.from_bytes(self._get_bytes(self.location.manifest_key(snapshot_id)), snapshot_id)

    def _list(self) -> _Listing:
        listing = _Listing()
        root = self.location.root + "/"
        manifest_re = re.compile(re.escape(root) + r"([0-9a-f]{64})/" + re.escape(MANIFEST_NAME) + "$")
        try:
            for obj in self.client.list_objects(self.bucket, prefix=root, recursive=True):
                name = obj.object_name or ""
                modified = obj.last_modified or datetime.fromtimestamp(0, UTC)
                if match := manifest_re.match(name):
                    listing.manifests[match.group(1)] = self._created(name, modified)
                elif name.startswith(self.location.blobs_prefix):
                    listing.blobs[name.removeprefix(self.location.blobs_prefix)] = (obj.size or 0, modified)
        except Exception as exc:
            raise translate(exc, self._where(root)) from None
        return listing

    def _created(self, key: str, fallback: datetime) -> datetime:
        """Creation time recorded at create (the caller's clock, so tests inject it); else mtime."""
        try:
            metadata = self.client.stat_object(self.bucket, key).metadata or {}
        except Exception as exc:
            raise translate(exc, self._where(key)) from None
        for name, value in metadata.items():
            if name.lower() == f"x-amz-meta-{CREATED_META}":
                with contextlib.suppress(ValueError):
                    return datetime.fromisoformat(str(value))
        return fallback

    def _source_index(self) -> list[dict[str, Any]]:
        entries = []
        try:
            names = [
                obj.object_name
                for obj in self.client.list_objects(self.bucket, prefix=self.location.sources_prefix)
                if obj.object_name
            ]
        except Exception as exc:
            raise translate(exc, self._where(self.location.sources_prefix)) from None
        for name in names:
            try:
                doc = json.loads(self._get_bytes(name))
            except (SnapshotError, ValueError):
                continue
            if isinstance(doc, dict):
                entries.append({**doc, "key": name})
        return entries

    def list_snapshots(self) -> list[SnapshotInfo]:
        """Newest first, with the versions that were published with each snapshot's content."""
        listing = self._list()
        versions: dict[str, set[str]] = {}
        for entry in self._source_index():
            versions.setdefault(str(entry.get("snapshot")), set()).add(str(entry.get("version")))
        infos = []
        for snapshot_id, created in listing.manifests.items():
            manifest = self.read_manifest(snapshot_id)
            infos.append(
                SnapshotInfo(
                    snapshot_id,
                    created,
                    manifest.size_bytes,
                    len(manifest.files),
                    tuple(sorted(versions.get(snapshot_id, ()))),
                )
            )
        return sorted(infos, key=lambda info: (info.created, info.id), reverse=True)

    # -- creating ----------------------------------------------------------------------------------

    def find_by_source(self, fingerprint: str) -> tuple[str, str] | None:
        """(snapshot ID, version) an identical source listing produced before, if the manifest is there."""
        key = self.location.source_index_key(fingerprint)
        if self._exists(key) is None:
            return None
        try:
            doc = json.loads(self._get_bytes(key))
        except ValueError:
            return None
        snapshot_id = doc.get("snapshot") if isinstance(doc, dict) else None
        if not isinstance(snapshot_id, str) or not SNAPSHOT_ID_RE.match(snapshot_id):
            return None
        if self._exists(self.location.manifest_key(snapshot_id)) is None:
            return None
        return snapshot_id, str(doc.get("version"))

    def create(
        self,
        bucket: str,
        prefix: str,
        version: str,
        *,
        now: datetime,
        exclude_prefix: str | None = None,
        on_bytes: Callable[[int], None] | None = None,
    ) -> SnapshotRef:
        """Snapshot ``s3://bucket/prefix`` as ``version``; identical content yields the existing ID.

        Cheap when nothing changed: a source listing (paths, sizes, ETags) seen before maps straight to
        its snapshot through the source index, so only a listing and a few HEADs are spent.
        """
        listing = list_source(self.client, bucket, prefix, exclude_prefix)
        objects, fingerprint, source_uri = listing.objects, listing.fingerprint, listing.uri
        found = self.find_by_source(fingerprint)
        if found is not None:
            known, recorded_version = found
            manifest = self.read_manifest(known)
            if self._blobs_intact(manifest):
                if recorded_version != version:  # same bytes published as another version: else no write
                    self._record_source(fingerprint, known, version, source_uri, now)
                return self._ref(known, version, manifest, reused=True)
            # A blob was deleted (or replaced) behind the index's back: the source still holds the
            # bytes, so hash and copy it again below, which restores the missing blobs.

        total = sum(o.size for o in objects)
        # Two steps with a time each: hashing streams the bytes through here; the copy into the blob
        # store runs on the S3 server (no bytes here, ~7 s per GiB) and is counted as files complete.
        hashing = Progress("snapshot: hash", total, len(objects), enabled=self.progress)
        copying = Progress("snapshot: server-side copy", total, len(objects), enabled=self.progress)

        def count(nbytes: int) -> None:
            hashing.add(nbytes)
            if on_bytes is not None:
                on_bytes(nbytes)

        def one(obj: SourceObject) -> tuple[FileEntry, int]:
            digest = self._hash_source(bucket, obj, count)
            hashing.file_done()
            copied = self._store_blob(bucket, obj, digest)
            copying.add(obj.size)  # a blob stored before (dedupe) is done at once
            copying.file_done()
            return FileEntry(obj.path, obj.size, digest), copied

        try:
            with ThreadPoolExecutor(max_workers=self.workers, thread_name_prefix="snapshot") as pool:
                results = list(pool.map(one, objects))
        finally:
            hashing.close()
            copying.close()
        manifest = Manifest.of(entry for entry, _ in results)
        snapshot_id = manifest.id
        existed = self._exists(self.location.manifest_key(snapshot_id)) is not None
        if not existed:
            created = {CREATED_META: now.astimezone(UTC).isoformat()}
            self._put_bytes(self.location.manifest_key(snapshot_id), manifest.to_bytes(), created)
        self._record_source(fingerprint, snapshot_id, version, source_uri, now)
        return self._ref(snapshot_id, version, manifest, reused=existed, copied=sum(c for _, c in results))

    def _ref(
        self, snapshot_id: str, version: str, manifest: Manifest, *, reused: bool, copied: int = 0
    ) -> SnapshotRef:
        return SnapshotRef(
            id=snapshot_id,
            version=version,
            size_bytes=manifest.size_bytes,
            file_count=len(manifest.files),
            uri=self.location.uri(snapshot_id),
            reused=reused,
            bytes_copied=copied,
        )

    def _record_source(
        self, fingerprint: str, snapshot_id: str, version: str, source: str, now: datetime
    ) -> None:
        doc = {"snapshot": snapshot_id, "version": version, "source": source, "recorded": now.isoformat()}
        self._put_bytes(self.location.source_index_key(fingerprint), json.dumps(doc, sort_keys=True).encode())

    def _hash_source(self, bucket: str, obj: SourceObject, count: Callable[[int], None]) -> str:
        digest = hashlib.sha256()
        received = 0
        where = f"s3://{bucket}/{obj.key}"
        try:
            headers: dict[str, str | list[str] | tuple[str]] | None = (
                {"If-Match": f'"{obj.etag}"'} if obj.etag else None
            )
            response = self.client.get_object(bucket, obj.key, request_headers=headers)
            try:
                for block in response.stream(_READ_SIZE, decode_content=False):
                    digest.update(block)
                    received += len(block)
                    count(len(block))
            finally:
                response.close()
                response.release_conn()
        except Exception as exc:
            raise translate(exc, where) from None
        if received != obj.size:
            raise SnapshotError(FailureReason.SOURCE_CHANGED, f"{where} changed size while read; retry")
        return digest.hexdigest()

    def _store_blob(self, bucket: str, obj: SourceObject, digest: str) -> int:
        """Server-side copy into the blob store unless the digest is already stored (dedupe)."""
        key = self.location.blob_key(digest)
        if self._exists(key) == obj.size:
            return 0
        try:
            if obj.size > _MAX_SINGLE_COPY:
                self.client.compose_object(
                    self.bucket, key, [ComposeSource(bucket, obj.key, match_etag=obj.etag)]
                )
            else:
                self.client.copy_object(
                    self.bucket, key, CopySource(bucket, obj.key, match_etag=obj.etag or None)
                )
        except Exception as exc:
            raise translate(exc, f"s3://{bucket}/{obj.key}") from None
        return obj.size

    # -- verifying ---------------------------------------------------------------------------------

    def _blobs_intact(self, manifest: Manifest) -> bool:
        try:
            self.check_blobs(manifest)
        except SnapshotError as exc:
            if exc.reason in (FailureReason.OBJECT_MISSING, FailureReason.CHECKSUM_MISMATCH):
                return False
            raise
        return True

    def check_blobs(self, manifest: Manifest) -> None:
        """Cheap check (one HEAD per file): every blob is there with the size the manifest says."""
        for entry in manifest.files:
            size = self._exists(self.location.blob_key(entry.sha256))
            if size is None:
                raise SnapshotError(
                    FailureReason.OBJECT_MISSING,
                    f"{entry.path}: blob {self._where(self.location.blob_key(entry.sha256))} is missing",
                )
            if size != entry.size:
                raise SnapshotError(
                    FailureReason.CHECKSUM_MISMATCH,
                    f"{entry.path}: blob has {size} bytes, the manifest says {entry.size}",
                )

    def verify(self, snapshot_id: str, *, deep: bool = True) -> Manifest:
        """Re-read and re-hash every blob (``deep``) or just check presence and sizes."""
        manifest = self.read_manifest(snapshot_id)
        self.check_blobs(manifest)
        if not deep:
            return manifest
        progress = Progress("verify", manifest.size_bytes, len(manifest.files), enabled=self.progress)

        def one(entry: FileEntry) -> None:
            key = self.location.blob_key(entry.sha256)
            digest = hashlib.sha256()
            try:
                response = self.client.get_object(self.bucket, key)
                try:
                    for block in response.stream(_READ_SIZE, decode_content=False):
                        digest.update(block)
                        progress.add(len(block))
                finally:
                    response.close()
                    response.release_conn()
            except Exception as exc:
                raise translate(exc, self._where(key)) from None
            if digest.hexdigest() != entry.sha256:
                raise SnapshotError(
                    FailureReason.CHECKSUM_MISMATCH,
                    f"{entry.path}: blob {self._where(key)} hashes to {digest.hexdigest()} (corrupted)",
                )
            progress.file_done()

        try:
            with ThreadPoolExecutor(max_workers=self.workers, thread_name_prefix="verify") as pool:
                list(pool.map(one, manifest.files))
        finally:
            progress.close()
        return manifest

    # -- garbage collection ------------------------------------------------------------------------

    def gc(
        self,
        pinned: Iterable[str | None],
        policy: RetentionPolicy,
        now: datetime,
        *,
        blob_grace: timedelta = DEFAULT_BLOB_GRACE,
        dry_run: bool = False,
    ) -> GcResult:
        """Delete snapshots retention does not keep, then blobs no remaining manifest references.

        Blobs younger than ``blob_grace`` survive even when unreferenced: a snapshot being created right
        now has copied its blobs but not yet written its manifest.
        """
        listing = self._list()
        decision = decide(
            [SnapshotAge(i, created) for i, created in listing.manifests.items()], pinned, policy, now
        )
        if dry_run:
            return GcResult(decision.keep, decision.delete, dry_run=True)
        doomed = set(decision.delete)
        self._delete([self.location.manifest_key(i) for i in decision.delete])
        self._delete([e["key"] for e in self._source_index() if e.get("snapshot") in doomed])

        # Re-list before sweeping: a manifest written since the first listing protects its blobs too.
        survivors = self._list()
        referenced = {f.sha256 for i in survivors.manifests for f in self.read_manifest(i).files}
        sweep = [
            (digest, size)
            for digest, (size, modified) in survivors.blobs.items()
            if digest not in referenced and now - modified >= blob_grace
        ]
        self._delete([self.location.blob_key(digest) for digest, _ in sweep])
        return GcResult(decision.keep, decision.delete, len(sweep), sum(size for _, size in sweep))

    def _delete(self, keys: list[str]) -> None:
        if not keys:
            return
        try:
            errors = list(self.client.remove_objects(self.bucket, (DeleteObject(k) for k in keys)))
        except Exception as exc:
            raise translate(exc, self._where(self.location.root)) from None
        if errors:
            raise SnapshotError(
                FailureReason.ACCESS_DENIED, f"could not delete {errors[0].name}: {errors[0].message}"
            )
