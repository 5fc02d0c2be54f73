"""What to fetch: the files of a snapshot (from its manifest) or of a source prefix (from a listing)."""

from __future__ import annotations

from dataclasses import dataclass

from minio import Minio

from codepilot_operator.snapshots.manifest import Manifest, SnapshotLocation
from codepilot_operator.snapshots.s3io import translate
from codepilot_operator.snapshots.source import list_source


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


def plan_source(client: Minio, bucket: str, prefix: str, exclude_prefix: str | None = None) -> FetchPlan:
    """Unverified mirror of a mutable prefix: used only before the operator has made a snapshot.

    Listed exactly as ``snapshot create`` lists it, so the identity is the source-index fingerprint.
    """
    listing = list_source(client, bucket, prefix, exclude_prefix)
    items = tuple(FetchItem(o.path, o.key, o.size, None) for o in listing.objects)
    return FetchPlan(bucket, f"source:{listing.fingerprint}", items)
