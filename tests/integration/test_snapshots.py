"""Snapshots against a real S3 server (SeaweedFS) through the minio SDK: create, dedupe, verify,
retention with an injected clock, pins surviving gc, and each failure reason as one line."""

from __future__ import annotations

import hashlib
import io
import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from codepilot_operator.api import CodePilot
from codepilot_operator.loader import parse_codepilot
from codepilot_operator.snapshots.errors import FailureReason, SnapshotError
from codepilot_operator.snapshots.service import (
    Credentials,
    ensure_snapshot,
    gc,
    store_for,
)
from codepilot_operator.snapshots.store import SnapshotRef, SnapshotStore
from tests.fixtures.s3 import SeaweedFS, codepilot_doc, minio_client, upload

FILES = {
    "config.json": b'{"layers": 2}',
    "tokenizer/vocab.txt": b"def\nclass\nreturn\n" * 100,
    "model.safetensors": bytes(range(256)) * 4096,  # 1 MiB
}
# The injected clock starts now: unreferenced blobs are swept by their real age on the server.
T0 = datetime.now(UTC).replace(microsecond=0)


def track_snapshot(ref: SnapshotRef) -> dict[str, Any]:
    """The status pin reconcile writes for ``ref``."""
    from codepilot_operator.reconcile.weights import track_pin

    return track_pin(ref).model_dump(by_alias=True, exclude_none=True)


def _cp(server: SeaweedFS, bucket: str, prefix: str, **kwargs: Any) -> CodePilot:
    return parse_codepilot(codepilot_doc(bucket, prefix, server.endpoint, **kwargs))


def _store(server: SeaweedFS, cp: CodePilot) -> SnapshotStore:
    return store_for(cp, Credentials(server.access_key, server.secret_key))


def _blob_keys(server: SeaweedFS, bucket: str) -> list[str]:
    objects = minio_client(server).list_objects(bucket, prefix="codepilot-snapshots/", recursive=True)
    return sorted(o.object_name for o in objects if "/blobs/" in o.object_name)


def test_create_records_every_file_and_verifies(s3_server: SeaweedFS, s3_bucket: str) -> None:
    upload(minio_client(s3_server), s3_bucket, "coder/v1", FILES)
    cp = _cp(s3_server, s3_bucket, "coder/v1")
    store = _store(s3_server, cp)

    ref = ensure_snapshot(store, cp, "v1", now=T0)

    manifest = store.read_manifest(ref.id)
    assert {f.path: (f.size, f.sha256) for f in manifest.files} == {
        path: (len(data), hashlib.sha256(data).hexdigest()) for path, data in FILES.items()
    }
    assert ref.id == hashlib.sha256(manifest.to_bytes()).hexdigest()
    assert ref.size_bytes == sum(len(d) for d in FILES.values()) and ref.file_count == 3
    assert ref.uri == f"s3://{s3_bucket}/codepilot-snapshots/team-a/coder/{ref.id}"
    assert store.verify(ref.id) == manifest
    assert track_snapshot(ref) == {"version": "v1", "snapshotId": ref.id, "sizeBytes": ref.size_bytes}


def test_same_content_same_id_stored_once(s3_server: SeaweedFS, s3_bucket: str) -> None:
    client = minio_client(s3_server)
    upload(client, s3_bucket, "coder/v1", FILES)
    upload(client, s3_bucket, "coder/v1-copy", FILES)
    upload(client, s3_bucket, "coder/v2", {**FILES, "config.json": b'{"layers": 3}'})

    first = ensure_snapshot(_store(s3_server, cp := _cp(s3_server, s3_bucket, "coder/v1")), cp, now=T0)
    assert not first.reused and first.bytes_copied == first.size_bytes
    blobs_after_first = _blob_keys(s3_server, s3_bucket)

    cp_copy = _cp(s3_server, s3_bucket, "coder/v1-copy", version="v1b")
    again = ensure_snapshot(_store(s3_server, cp_copy), cp_copy, now=T0)
    assert again.id == first.id and again.reused and again.bytes_copied == 0
    assert _blob_keys(s3_server, s3_bucket) == blobs_after_first  # stored once

    cp2 = _cp(s3_server, s3_bucket, "coder/v2", version="v2")
    second = ensure_snapshot(_store(s3_server, cp2), cp2, now=T0)
    assert second.id != first.id
    assert second.bytes_copied == len(b'{"layers": 3}')  # only the changed file is stored again
    assert len(_blob_keys(s3_server, s3_bucket)) == len(blobs_after_first) + 1
    versions = {info.id: info.versions for info in _store(s3_server, cp2).list_snapshots()}
    assert versions == {first.id: ("v1", "v1b"), second.id: ("v2",)}


def test_unchanged_source_is_not_hashed_again(s3_server: SeaweedFS, s3_bucket: str) -> None:
    upload(minio_client(s3_server), s3_bucket, "coder/v1", FILES)
    cp = _cp(s3_server, s3_bucket, "coder/v1")
    store = _store(s3_server, cp)
    first = ensure_snapshot(store, cp, now=T0)

    hashed: list[int] = []
    source = cp.spec.model.source
    again = store.create(source.bucket, source.prefix, "v1", now=T0, on_bytes=hashed.append)
    assert again.id == first.id and hashed == []

    upload(minio_client(s3_server), s3_bucket, "coder/v1", {"config.json": b'{"layers": 9}'})  # rewritten
    changed = store.create(source.bucket, source.prefix, "v1", now=T0, on_bytes=hashed.append)
    assert changed.id != first.id and sum(hashed) == changed.size_bytes


def test_pinned_version_keeps_its_snapshot_after_the_source_moves_on(
    s3_server: SeaweedFS, s3_bucket: str
) -> None:
    client = minio_client(s3_server)
    upload(client, s3_bucket, "coder/live", FILES)
    cp = _cp(s3_server, s3_bucket, "coder/live")
    v1 = ensure_snapshot(_store(s3_server, cp), cp, now=T0)

    upload(client, s3_bucket, "coder/live", {"model.safetensors": b"new weights"})  # v2 published in place
    status = {"stableVersion": "v1", "stableSnapshot": track_snapshot(v1)}
    cp2 = _cp(s3_server, s3_bucket, "coder/live", version="v2", status=status)
    store = _store(s3_server, cp2)
    assert ensure_snapshot(store, cp2, "v1", now=T0).id == v1.id  # rollback target: exactly the old bytes
    v2 = ensure_snapshot(store, cp2, "v2", now=T0)
    assert v2.id != v1.id
    with pytest.raises(SnapshotError) as excinfo:
        ensure_snapshot(store, cp2, "v0", now=T0)
    assert excinfo.value.reason is FailureReason.OBJECT_MISSING


def _make_snapshots(server: SeaweedFS, bucket: str, count: int) -> tuple[CodePilot, list[str]]:
    """``count`` snapshots of distinct content created one day apart on the injected clock."""
    client = minio_client(server)
    ids = []
    for day in range(count):
        upload(client, bucket, f"coder/v{day}", {**FILES, "config.json": json.dumps({"day": day}).encode()})
        cp = _cp(server, bucket, f"coder/v{day}", version=f"v{day}")
        ids.append(ensure_snapshot(_store(server, cp), cp, now=T0 + timedelta(days=day)).id)
    return cp, ids


def test_retention_keeps_newest_young_and_pinned(s3_server: SeaweedFS, s3_bucket: str) -> None:
    cp, ids = _make_snapshots(s3_server, s3_bucket, 8)  # days 0..7
    store = _store(s3_server, cp)

    # Half a day after day 7, only day 0 is both older than 7 days and not among the newest 5.
    result = gc(store, cp, now=T0 + timedelta(days=7, hours=12), dry_run=True)
    assert result.deleted == [ids[0]]

    # 30 days later only the newest 5 and the pins survive; pins are never deleted.
    status = {
        "stableVersion": "v0",
        "stableSnapshot": {"version": "v0", "snapshotId": ids[0]},
        "canaryVersion": "v1",
        "canarySnapshot": {"version": "v1", "snapshotId": ids[1]},
    }
    pinned_cp = _cp(s3_server, s3_bucket, "coder/v7", version="v7", status=status)
    result = gc(store, pinned_cp, now=T0 + timedelta(days=40))
    assert sorted(result.deleted) == sorted(ids[2:3])
    assert "pinned" in result.kept[ids[0]] and "pinned" in result.kept[ids[1]]
    remaining = {info.id for info in store.list_snapshots()}
    assert remaining == {ids[0], ids[1], *ids[3:]}
    for snapshot_id in remaining:
        store.verify(snapshot_id)  # blobs of survivors were not swept
    assert result.blobs_deleted == 1  # day 2's config.json; the shared files stay


def test_retention_settings_come_from_the_spec(s3_server: SeaweedFS, s3_bucket: str) -> None:
    _, ids = _make_snapshots(s3_server, s3_bucket, 4)
    cp = _cp(s3_server, s3_bucket, "coder/v3", version="v3", retention={"keep": 1, "maxAge": "36h"})
    result = gc(_store(s3_server, cp), cp, pinned=[ids[0]], now=T0 + timedelta(days=4))
    assert sorted(result.deleted) == sorted([ids[1], ids[2]])  # ids[3] newest and 1 day old; ids[0] pinned


@pytest.mark.parametrize(
    ("case", "reason"),
    [
        ("bucket", FailureReason.BUCKET_MISSING),
        ("prefix", FailureReason.OBJECT_MISSING),
        ("credentials", FailureReason.ACCESS_DENIED),
        ("endpoint", FailureReason.ENDPOINT_UNREACHABLE),
    ],
)
def test_failures_become_snapshot_failed_conditions(
    s3_server: SeaweedFS, s3_bucket: str, case: str, reason: FailureReason
) -> None:
    upload(minio_client(s3_server), s3_bucket, "coder/v1", FILES)
    bucket, prefix, endpoint = s3_bucket, "coder/v1", s3_server.endpoint
    credentials = Credentials(s3_server.access_key, s3_server.secret_key)
    if case == "bucket":
        bucket = "no-such-bucket-here"
    elif case == "prefix":
        prefix = "coder/nothing-here"
    elif case == "credentials":
        credentials = Credentials(s3_server.access_key, "wrong-secret")
    else:
        endpoint = "http://127.0.0.1:9"  # discard port: nothing listens
    cp = parse_codepilot(codepilot_doc(bucket, prefix, endpoint))
    with pytest.raises(SnapshotError) as excinfo:
        ensure_snapshot(store_for(cp, credentials), cp, now=T0)
    assert excinfo.value.reason is reason
    assert str(excinfo.value).startswith(f"{reason}: ") and "\n" not in str(excinfo.value)


def test_corrupted_blob_is_reported_by_verify(s3_server: SeaweedFS, s3_bucket: str) -> None:
    client = minio_client(s3_server)
    upload(client, s3_bucket, "coder/v1", FILES)
    cp = _cp(s3_server, s3_bucket, "coder/v1")
    store = _store(s3_server, cp)
    ref = ensure_snapshot(store, cp, now=T0)
    digest = hashlib.sha256(FILES["model.safetensors"]).hexdigest()
    rotten = bytearray(FILES["model.safetensors"])
    rotten[1000] ^= 0xFF
    key = store.location.blob_key(digest)
    client.put_object(s3_bucket, key, io.BytesIO(bytes(rotten)), len(rotten))

    store.verify(ref.id, deep=False)  # same size: the quick check cannot see it
    with pytest.raises(SnapshotError) as excinfo:
        store.verify(ref.id)
    assert excinfo.value.reason is FailureReason.CHECKSUM_MISMATCH
    assert "model.safetensors" in str(excinfo.value)


def test_a_blob_deleted_behind_the_source_index_is_copied_again(s3_server: SeaweedFS, s3_bucket: str) -> None:
    client = minio_client(s3_server)
    upload(client, s3_bucket, "coder/v1", FILES)
    cp = _cp(s3_server, s3_bucket, "coder/v1")
    store = _store(s3_server, cp)
    ref = ensure_snapshot(store, cp, now=T0)
    key = store.location.blob_key(hashlib.sha256(FILES["model.safetensors"]).hexdigest())
    client.remove_object(s3_bucket, key)

    # The source listing is unchanged, so the source index maps it to this snapshot, whose blob is gone:
    # the source still has the bytes, so they are hashed and copied again, with no manual cleanup.
    again = ensure_snapshot(store, cp, now=T0)
    assert again.id == ref.id and again.bytes_copied == len(FILES["model.safetensors"])
    assert store.verify(ref.id) == store.read_manifest(ref.id)
    assert ensure_snapshot(store, cp, now=T0).bytes_copied == 0  # and cheap again afterwards


def test_snapshot_served_pins_both_tracks(s3_server: SeaweedFS, s3_bucket: str) -> None:
    from codepilot_operator.render.served import served_versions
    from codepilot_operator.snapshots.service import snapshot_served

    client = minio_client(s3_server)
    upload(client, s3_bucket, "coder/v1", FILES)
    cp1 = _cp(s3_server, s3_bucket, "coder/v1")
    store = _store(s3_server, cp1)
    first = snapshot_served(store, cp1, served_versions(cp1), now=T0)
    assert [v.snapshot_id for v in first.served] == [first.refs[0].id]

    # v2 published under a new prefix; the canary runs beside the stable v1.
    upload(client, s3_bucket, "coder/v2", {**FILES, "config.json": b"{}"})
    status = {"stableVersion": "v1", "stableSnapshot": track_snapshot(first.refs[0])}
    cp2 = _cp(s3_server, s3_bucket, "coder/v2", version="v2", status=status)
    second = snapshot_served(store, cp2, served_versions(cp2), now=T0)
    stable, canary = second.refs
    assert stable.id == first.refs[0].id and canary.id != stable.id and canary.version == "v2"
    assert [v.snapshot_id for v in second.served] == [stable.id, canary.id]
