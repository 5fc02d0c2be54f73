"""The entry points the reconcile loop calls: ensure snapshots, report them as a condition, collect garbage.

Wired into reconcile's ``Prepare`` seam (synchronous S3 I/O: run it in a thread; a first snapshot
hashes every source byte)::

    async def prepare(cp: CodePilot, served: list[ServedVersion]) -> Prepared:
        data = (await read_secret(ns, cp.spec.model.source.credentials_secret))["data"]  # if set
        store = store_for(cp, Credentials.from_secret_data(data) if data else None)
        now = datetime.now(UTC)
        try:
            outcome = await asyncio.to_thread(snapshot_served, store, cp, served, now=now)
        except SnapshotError as exc:
            # write weights_condition(exc, now=now) (False / SnapshotFailed / "<Reason>: ..."), then
            raise kopf.TemporaryError(str(exc), delay=60)  # nothing rolls out without its weights
        return Prepared(outcome.served, [<outcome.condition as ConditionUpdate>], outcome.status)

    # after status is written (e.g. in the drift timer):
    await asyncio.to_thread(gc, store, cp)

``outcome.served`` carries each version's snapshot ID, so the Deployment's init container fetches
the immutable snapshot; ``outcome.status`` pins it (``stableSnapshot`` / ``canarySnapshot``), and a
pinned snapshot is never garbage-collected. Every failure is a SnapshotError with a ``reason``
(BucketMissing, AccessDenied, ObjectMissing, ChecksumMismatch, EndpointUnreachable, SourceChanged,
InvalidSnapshot).
"""

from __future__ import annotations

import base64
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from codepilot_operator.api import CodePilot
from codepilot_operator.api.fields import parse_duration
from codepilot_operator.api.status import ConditionStatus, ConditionType, Reason
from codepilot_operator.clients.s3 import ACCESS_KEY_ENV, SECRET_KEY_ENV, S3Settings, make_client
from codepilot_operator.render.fetcher import snapshot_root
from codepilot_operator.render.served import ServedVersion
from codepilot_operator.snapshots.errors import FailureReason, SnapshotError
from codepilot_operator.snapshots.manifest import SnapshotLocation
from codepilot_operator.snapshots.progress import human_bytes
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
    "pinned_snapshots",
    "retention_policy",
    "snapshot_served",
    "store_for",
    "track_snapshot",
    "weights_condition",
]


@dataclass(frozen=True)
class Credentials:
    access_key: str
    secret_key: str

    @classmethod
    def from_secret_data(cls, data: Mapping[str, str]) -> Credentials:
        """From a Secret's ``data`` (base64), the same keys the init container gets as env."""
        try:
            return cls(
                base64.b64decode(data[ACCESS_KEY_ENV]).decode(),
                base64.b64decode(data[SECRET_KEY_ENV]).decode(),
            )
        except KeyError as exc:
            raise SnapshotError(
                FailureReason.ACCESS_DENIED, f"credentials Secret has no key {exc.args[0]}"
            ) from None


def location_for(cp: CodePilot) -> SnapshotLocation:
    return SnapshotLocation(cp.spec.model.source.bucket, snapshot_root(cp))


def store_for(
    cp: CodePilot,
    credentials: Credentials | None = None,
    *,
    endpoint: str | None = None,
    progress: bool = False,
) -> SnapshotStore:
    """A store for the CodePilot's snapshots; ``endpoint`` overrides spec (e.g. from outside the cluster)."""
    source = cp.spec.model.source
    settings = S3Settings(
        endpoint=(endpoint or source.endpoint).rstrip("/"),
        access_key=credentials.access_key if credentials else None,
        secret_key=credentials.secret_key if credentials else None,
        region=source.region or None,
    )
    return SnapshotStore(make_client(settings), location_for(cp), progress=progress)


def _pinned_ref(store: SnapshotStore, cp: CodePilot, version: str) -> SnapshotRef | None:
    for track in (cp.status.stable_snapshot, cp.status.canary_snapshot):
        if track is not None and track.version == version and track.snapshot_id:
            manifest = store.read_manifest(track.snapshot_id)
            store.check_blobs(manifest)
            return SnapshotRef(
                id=track.snapshot_id,
                version=version,
                size_bytes=manifest.size_bytes,
                file_count=len(manifest.files),
                uri=store.location.uri(track.snapshot_id),
                reused=True,
            )
    return None


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
    return store.create(source.bucket, source.prefix, version, now=now, exclude_prefix=source.snapshot_prefix)


@dataclass(frozen=True)
class SnapshotOutcome:
    """What reconcile's prepare step needs: versions to render, the condition, the status fields."""

    served: list[ServedVersion]  # each with its snapshot_id: pods read the snapshot, not the prefix
    refs: list[SnapshotRef]
    condition: dict[str, Any]  # WeightsVerified=True
    status: dict[str, Any]  # {"stableSnapshot": {...}, "canarySnapshot": {...} or None}


def snapshot_served(
    store: SnapshotStore,
    cp: CodePilot,
    served: Sequence[ServedVersion],
    *,
    now: datetime | None = None,
    generation: int | None = None,
) -> SnapshotOutcome:
    """``ensure_snapshot`` for every served version (``render.served_versions``: stable first, then
    the canary). Raises SnapshotError on the first failure: nothing may roll out without its weights."""
    now = now or datetime.now(UTC)
    refs = [ensure_snapshot(store, cp, version.version, now=now) for version in served]
    tracks = [track_snapshot(ref) for ref in refs]
    condition = weights_condition(refs[-1], now=now, generation=generation)
    if len(refs) > 1:
        condition["message"] = "; ".join(weights_condition(r, now=now)["message"] for r in refs)
    return SnapshotOutcome(
        served=[ServedVersion(v.version, ref.id) for v, ref in zip(served, refs, strict=True)],
        refs=refs,
        condition=condition,
        status={"stableSnapshot": tracks[0], "canarySnapshot": tracks[1] if len(tracks) > 1 else None},
    )


def track_snapshot(ref: SnapshotRef) -> dict[str, Any]:
    """The status.stableSnapshot / status.canarySnapshot value (TrackSnapshot, camelCase)."""
    return {"version": ref.version, "snapshotId": ref.id, "sizeBytes": ref.size_bytes}


def weights_condition(
    outcome: SnapshotRef | SnapshotError, *, now: datetime, generation: int | None = None
) -> dict[str, Any]:
    """A metav1.Condition-shaped WeightsVerified; reconcile merges it by type (and keeps the old
    lastTransitionTime when the status did not change)."""
    if isinstance(outcome, SnapshotRef):
        status, reason = ConditionStatus.TRUE, Reason.WEIGHTS_VERIFIED
        message = (
            f"version {outcome.version}: snapshot {outcome.id} verified "
            f"({outcome.file_count} files, {outcome.size_bytes} bytes = {human_bytes(outcome.size_bytes)})"
        )
    else:
        status, reason = ConditionStatus.FALSE, Reason.SNAPSHOT_FAILED
        message = str(outcome)  # "<FailureReason>: <what and where>"
    condition: dict[str, Any] = {
        "type": ConditionType.WEIGHTS_VERIFIED.value,
        "status": status.value,
        "reason": reason.value,
        "message": message,
        "lastTransitionTime": now.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
    }
    if generation is not None:
        condition["observedGeneration"] = generation
    return condition


def retention_policy(cp: CodePilot) -> RetentionPolicy:
    retention = cp.spec.model.source.retention
    return RetentionPolicy(
        keep_last=retention.keep, max_age=timedelta(seconds=parse_duration(retention.max_age))
    )


def pinned_snapshots(cp: CodePilot) -> set[str]:
    return {
        track.snapshot_id
        for track in (cp.status.stable_snapshot, cp.status.canary_snapshot)
        if track is not None and track.snapshot_id
    }


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
        pinned_snapshots(cp) | {p for p in pinned if p},
        retention_policy(cp),
        now or datetime.now(UTC),
        dry_run=dry_run,
    )
