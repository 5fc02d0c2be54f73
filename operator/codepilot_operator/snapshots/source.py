"""Listing a mutable source prefix: the one definition of which objects a source holds.

``snapshot create`` (store.py) and ``fetch --source`` (fetcher/plan.py) both list a source, and the
listing's fingerprint is what maps a source to its snapshot. If the two listed differently (ETag quotes,
folder markers, the snapshot prefix inside a whole-bucket source, unsafe keys), the same prefix would
get two fingerprints, and one of them would name objects the other never hashed.
"""

from __future__ import annotations

from dataclasses import dataclass

from minio import Minio

from codepilot_operator.snapshots.errors import FailureReason, SnapshotError
from codepilot_operator.snapshots.manifest import check_relpath, listing_fingerprint
from codepilot_operator.snapshots.s3io import translate


@dataclass(frozen=True)
class SourceObject:
    path: str  # relative to the prefix, safe to join to a model directory
    key: str
    size: int
    etag: str  # without the quotes S3 puts around it


@dataclass(frozen=True)
class SourceListing:
    uri: str
    objects: tuple[SourceObject, ...]

    @property
    def fingerprint(self) -> str:
        return listing_fingerprint(self.uri, ((o.path, o.size, o.etag) for o in self.objects))

    @property
    def total_bytes(self) -> int:
        return sum(o.size for o in self.objects)


def source_uri(bucket: str, prefix: str) -> str:
    return f"s3://{bucket}/{prefix}".rstrip("/")


def list_source(client: Minio, bucket: str, prefix: str, exclude_prefix: str | None = None) -> SourceListing:
    """Every object under ``prefix/`` (folder markers and ``exclude_prefix/`` skipped); never empty."""
    base = f"{prefix}/" if prefix else ""
    excluded = exclude_prefix.rstrip("/") + "/" if exclude_prefix else None
    try:
        listed = list(client.list_objects(bucket, prefix=base or None, recursive=True))
    except Exception as exc:
        raise translate(exc, f"s3://{bucket}/{base}") from None
    found = []
    for obj in listed:
        key = obj.object_name or ""
        if not key or key.endswith("/") or (excluded and key.startswith(excluded)):
            continue
        try:
            path = check_relpath(key[len(base) :])
        except ValueError as exc:
            raise SnapshotError(FailureReason.INVALID_SNAPSHOT, f"s3://{bucket}/{key}: {exc}") from None
        found.append(SourceObject(path, key, int(obj.size or 0), (obj.etag or "").strip('"')))
    if not found:
        raise SnapshotError(FailureReason.OBJECT_MISSING, f"no objects under s3://{bucket}/{base}")
    return SourceListing(source_uri(bucket, prefix), tuple(found))
