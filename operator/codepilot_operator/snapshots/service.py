"""What reconcile and the CLI call: ensure a served version's snapshot, and collect garbage.

Synchronous S3 I/O (minio SDK); a first snapshot hashes every source byte, so the operator runs these in
a worker thread. Everything here returns facts (SnapshotRef, GcResult) or raises SnapshotError with a
``reason`` (BucketMissing, AccessDenied, ObjectMissing, ChecksumMismatch, EndpointUnreachable,
SourceChanged, InvalidSnapshot); what status and Events say about them is reconcile's business
(reconcile/weights.py). A snapshot pinned in status is never garbage-collected.
"""

from __future__ import annotations

import base64
import binascii
import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from codepilot_operator.api import CodePilot
from codepilot_operator.api.contract import ACCESS_KEY_ENV, CA_BUNDLE_ENV, SECRET_KEY_ENV
from codepilot_operator.api.defaults import required
from codepilot_operator.api.fields import parse_duration
from codepilot_operator.api.tracks import pin_for, pinned_snapshot_ids
from codepilot_operator.clients.s3 import Credentials as S3Credentials
from codepilot_operator.clients.s3 import S3Settings, make_client, web_identity_from_env
from codepilot_operator.render.fetcher import snapshot_bucket, snapshot_prefix, snapshot_root
from codepilot_operator.render.served import ServedVersion
from codepilot_operator.snapshots.errors import FailureReason, SnapshotError
from codepilot_operator.snapshots.manifest import SnapshotLocation
from codepilot_operator.snapshots.retention import RetentionPolicy
from codepilot_operator.snapshots.store import GcResult, SnapshotRef, SnapshotStore

__all__ = [
    "Credentials",
    "FailureReason",
    "GcResult",
    "SnapshotError",
    "SnapshotOutcome",
    "SnapshotRef",
    "SnapshotStore",
    "ensure_snapshot",
    "gc",
    "location_for",
    "retention_policy",
    "snapshot_served",
    "store_for",
]


@dataclass(frozen=True)
class Credentials(S3Credentials):
    @classmethod
    def from_secret_data(cls, data: Mapping[str, str], secret: str = "credentials Secret") -> Credentials:
        """From a Secret's ``data`` (base64), the same keys the init container gets as env.

        ``secret`` names the Secret in errors; an error names the key, never its value (nor a byte of it:
        a decoder's own message would quote one).
        """
        return cls(_secret_text(data, ACCESS_KEY_ENV, secret), _secret_text(data, SECRET_KEY_ENV, secret))

    @staticmethod
    def text_from_secret_data(data: Mapping[str, str], key: str, secret: str) -> str:
        """One key of a Secret's ``data`` as text, with the same errors as the keys above."""
        return _secret_text(data, key, secret)


def _secret_text(data: Mapping[str, str], key: str, secret: str) -> str:
    if key not in data:
        raise SnapshotError(FailureReason.ACCESS_DENIED, f"{secret} has no key {key}")
    try:
        raw = base64.b64decode(data[key], validate=True)
    except (binascii.Error, ValueError, TypeError):
        raise SnapshotError(FailureReason.ACCESS_DENIED, f"{secret} key {key}: not valid base64") from None
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        raise SnapshotError(
            FailureReason.ACCESS_DENIED, f"{secret} key {key}: not UTF-8 text once base64-decoded"
        ) from None


def location_for(cp: CodePilot) -> SnapshotLocation:
    return SnapshotLocation(snapshot_bucket(cp), snapshot_root(cp))


def store_for(
    cp: CodePilot,
    credentials: S3Credentials | None = None,
    *,
    endpoint: str | None = None,
    progress: bool | None = False,
    ca_pem: str | None = None,
    env: Mapping[str, str] | None = None,
) -> SnapshotStore:
    """A store for the CodePilot's snapshots (``cp`` resolved with the platform's defaults).

    ``endpoint`` overrides spec (e.g. from outside the cluster); ``ca_pem`` is the CodePilot's CA bundle,
    so the operator trusts the same roots as its fetcher. Without ``credentials``, this process's own
    web identity (``env``, default the environment) signs, if it has one.
    """
    source = cp.spec.model.source
    settings = S3Settings(
        endpoint=(endpoint or required(source.endpoint, "spec.model.source.endpoint")).rstrip("/"),
        access_key=credentials.access_key if credentials else None,
        secret_key=credentials.secret_key if credentials else None,
        session_token=credentials.session_token if credentials else None,
        region=source.region or None,
        ca_pem=ca_pem,
        ca_bundle=(os.environ if env is None else env).get(CA_BUNDLE_ENV) or None,
        web_identity=None if credentials else web_identity_from_env(env),
    )
    return SnapshotStore(make_client(settings), location_for(cp), progress=progress)


def _pinned_ref(store: SnapshotStore, cp: CodePilot, version: str) -> SnapshotRef | None:
    pin = pin_for(cp.status, version)
    if pin is None or not pin.snapshot_id:
        return None
    manifest = store.read_manifest(pin.snapshot_id)
    store.check_blobs(manifest)
    return SnapshotRef(
        id=pin.snapshot_id,
        version=version,
        size_bytes=manifest.size_bytes,
        file_count=len(manifest.files),
        uri=store.location.uri(pin.snapshot_id),
        reused=True,
    )


def ensure_snapshot(
    store: SnapshotStore, cp: CodePilot, version: str | None = None, *, now: datetime | None = None
) -> SnapshotRef:
    """The verified snapshot ``version`` is to be served from; created from spec.model.source if needed.

    - A version already pinned in status (stable or canary) keeps its snapshot: its manifest is re-read
      (it must hash to its ID) and every blob must be present with the right size.
    - Otherwise the source prefix must hold this version (it is ``spec.model.version``): it is listed,
      and an identical listing seen before maps to its existing snapshot (no hashing: restarts and
      rollbacks to earlier content are cheap and re-pin the earlier snapshot); new content is hashed
      and copied server-side. Same bytes always give the same ID, stored once.
    """
    version = version or cp.spec.model.version
    now = now or datetime.now(UTC)
    pinned = _pinned_ref(store, cp, version)
    if pinned is not None:
        return pinned
    if version != cp.spec.model.version:
        raise SnapshotError(
            FailureReason.OBJECT_MISSING,
            f"version {version} has no snapshot in status and spec.model.source now holds "
            f"{cp.spec.model.version}",
        )
    source = cp.spec.model.source
    # The snapshots may share the model's bucket: their prefix is then not part of the model.
    shared = snapshot_bucket(cp) == source.bucket
    exclude = snapshot_prefix(cp) if shared else None
    return store.create(source.bucket, source.prefix, version, now=now, exclude_prefix=exclude)


@dataclass(frozen=True)
class SnapshotOutcome:
    """Each served version with its verified snapshot: pods read the snapshot, never the prefix."""

    served: list[ServedVersion]
    refs: list[SnapshotRef]  # in the order of ``served``: stable first


def snapshot_served(
    store: SnapshotStore, cp: CodePilot, served: Sequence[ServedVersion], *, now: datetime | None = None
) -> SnapshotOutcome:
    """``ensure_snapshot`` for every served version (stable first, then the canary).

    Raises SnapshotError on the first failure: nothing may roll out without its weights.
    """
    now = now or datetime.now(UTC)
    refs = [ensure_snapshot(store, cp, version.version, now=now) for version in served]
    return SnapshotOutcome(
        served=[ServedVersion(v.version, ref.id) for v, ref in zip(served, refs, strict=True)], refs=refs
    )


def retention_policy(cp: CodePilot) -> RetentionPolicy:
    retention = cp.spec.model.source.retention
    return RetentionPolicy(
        keep_last=retention.keep, max_age=timedelta(seconds=parse_duration(retention.max_age))
    )


def gc(
    store: SnapshotStore,
    cp: CodePilot,
    pinned: Iterable[str | None] = (),
    now: datetime | None = None,
    *,
    dry_run: bool = False,
) -> GcResult:
    """Garbage-collect per spec.model.source.retention; status pins (and ``pinned``) are never deleted."""
    return store.gc(
        pinned_snapshot_ids(cp.status) | {p for p in pinned if p},
        retention_policy(cp),
        now or datetime.now(UTC),
        dry_run=dry_run,
    )
