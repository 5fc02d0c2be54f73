"""Manifests and snapshot IDs: canonical, reproducible, and strict about what they accept."""

from __future__ import annotations

import hashlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from codepilot_operator.loader import parse_codepilot
from codepilot_operator.render.fetcher import snapshot_uri
from codepilot_operator.snapshots.errors import FailureReason, SnapshotError
from codepilot_operator.snapshots.manifest import (
    FileEntry,
    Manifest,
    SnapshotLocation,
    check_relpath,
    listing_fingerprint,
    parse_s3_uri,
    parse_snapshot_uri,
)
from codepilot_operator.snapshots.service import location_for

A = "a" * 64
B = "b" * 64


def test_id_is_the_sha256_of_the_canonical_manifest_and_ignores_order() -> None:
    one = Manifest.of([FileEntry("b.bin", 2, B), FileEntry("a.json", 1, A)])
    two = Manifest.of([FileEntry("a.json", 1, A), FileEntry("b.bin", 2, B)])
    assert one.to_bytes() == two.to_bytes() and one.id == two.id
    assert one.id == hashlib.sha256(one.to_bytes()).hexdigest()
    assert one.size_bytes == 3


def test_any_change_gives_a_new_id() -> None:
    base = Manifest.of([FileEntry("a", 1, A)])
    assert (
        len(
            {
                base.id,
                Manifest.of([FileEntry("a", 2, A)]).id,
                Manifest.of([FileEntry("a", 1, B)]).id,
                Manifest.of([FileEntry("b", 1, A)]).id,
            }
        )
        == 4
    )


@given(
    st.dictionaries(
        st.from_regex(r"[a-z0-9_.-]{1,8}(/[a-z0-9_-]{1,8}){0,2}", fullmatch=True).filter(
            lambda p: all(part not in (".", "..") for part in p.split("/"))
        ),
        st.tuples(st.integers(0, 2**40), st.binary(min_size=1, max_size=8)),
        min_size=1,
        max_size=10,
    )
)
def test_manifest_round_trips(files: dict[str, tuple[int, bytes]]) -> None:
    manifest = Manifest.of(
        FileEntry(p, size, hashlib.sha256(d).hexdigest()) for p, (size, d) in files.items()
    )
    assert Manifest.from_bytes(manifest.to_bytes(), expected_id=manifest.id) == manifest


def test_stored_manifest_must_hash_to_its_id() -> None:
    data = Manifest.of([FileEntry("a", 1, A)]).to_bytes()
    with pytest.raises(SnapshotError) as excinfo:
        Manifest.from_bytes(
            data.replace(b'"size":1', b'"size":2'), expected_id=hashlib.sha256(data).hexdigest()
        )
    assert excinfo.value.reason is FailureReason.CHECKSUM_MISMATCH
    with pytest.raises(SnapshotError) as excinfo:
        Manifest.from_bytes(b"{}")
    assert excinfo.value.reason is FailureReason.INVALID_SNAPSHOT


@pytest.mark.parametrize("path", ["", "/etc/passwd", "../x", "a/../../x", "a//b", "./a", "a\\b", "a/."])
def test_paths_that_escape_the_model_directory_are_refused(path: str) -> None:
    with pytest.raises(ValueError):
        check_relpath(path)
    with pytest.raises(ValueError):
        Manifest.of([FileEntry(path, 1, A)])


def test_duplicate_paths_and_bad_digests_are_refused() -> None:
    with pytest.raises(ValueError):
        Manifest.of([FileEntry("a", 1, A), FileEntry("a", 1, B)])
    with pytest.raises(ValueError):
        Manifest.of([FileEntry("a", 1, "A" * 64)])


def test_fingerprint_changes_with_any_listed_attribute() -> None:
    listing = [("a", 1, '"e1"'), ("b", 2, "e2")]
    base = listing_fingerprint("s3://b/p", listing)
    assert base == listing_fingerprint("s3://b/p", list(reversed(listing)))
    assert base == listing_fingerprint("s3://b/p", [("a", 1, "e1"), ("b", 2, "e2")])  # quotes are not content
    assert base != listing_fingerprint("s3://b/q", listing)
    assert base != listing_fingerprint("s3://b/p", [("a", 1, "e1"), ("b", 2, "e3")])


def test_layout_and_uris_agree_with_the_init_container_contract() -> None:
    cp = parse_codepilot(
        {
            "apiVersion": "serving.codepilot.dev/v1alpha1",
            "kind": "CodePilot",
            "metadata": {"name": "coder", "namespace": "team-a"},
            "spec": {
                "model": {
                    "name": "coder",
                    "version": "v1",
                    "source": {
                        "uri": "s3://models/coder/v1",
                        "endpoint": "http://minio:9000",
                        "snapshotPrefix": "snaps/prod",
                    },
                },
            },
        }
    )
    location = location_for(cp)
    assert location == SnapshotLocation("models", "snaps/prod/team-a/coder")
    assert location.uri(A) == snapshot_uri(cp, A)
    assert parse_snapshot_uri(snapshot_uri(cp, A)) == (location, A)
    assert location.manifest_key(A) == f"snaps/prod/team-a/coder/{A}/manifest.json"
    assert location.blob_key(B) == f"snaps/prod/team-a/coder/blobs/sha256/{B}"
    assert parse_s3_uri("s3://models/coder/v1/") == ("models", "coder/v1")
    assert parse_s3_uri("s3://models") == ("models", "")
    for bad in ("s3://models/coder", "http://x/y/" + A, "s3://models/x/" + A[:-1]):
        with pytest.raises(ValueError):
            parse_snapshot_uri(bad)
