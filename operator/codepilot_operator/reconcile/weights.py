"""The "before rollout: ensure snapshot" step of reconcile.

Before anything is rendered, every served version gets a verified, content-addressed weight snapshot;
the rendered init containers then fetch the snapshot (immutable), never the mutable source prefix, and
status pins it per track. If the weights cannot be snapshotted, nothing is applied: a Deployment must
never roll out a version whose bytes we cannot name.

The copy runs in the operator (server-side copy, see docs/snapshots.md), so the operator reads the
credentials Secret and reaches the S3 endpoint. S3 calls are synchronous (minio SDK) and a first snapshot
hashes every byte of the source, so they run in a worker thread, not on kopf's event loop.
"""

from __future__ import annotations

import asyncio
import logging
import time
from datetime import UTC, datetime

from codepilot_operator.api import CodePilot
from codepilot_operator.api.status import ConditionStatus, ConditionType, Reason, TrackSnapshot
from codepilot_operator.api.tracks import pin_fields, pins
from codepilot_operator.clients.kube import Kind, KubeClient
from codepilot_operator.reconcile.reconcile import Prepare, Prepared, PrepareFailed
from codepilot_operator.reconcile.status import ConditionUpdate
from codepilot_operator.render import ServedVersion
from codepilot_operator.snapshots.errors import FailureReason, SnapshotError
from codepilot_operator.snapshots.progress import human_bytes
from codepilot_operator.snapshots.service import (
    Credentials,
    SnapshotRef,
    SnapshotStore,
    gc,
    snapshot_served,
    store_for,
)

log = logging.getLogger(__name__)
SECRET = Kind("v1", "Secret")
CONFIG_MAP = Kind("v1", "ConfigMap")
SNAPSHOT_RETRY_SECONDS = 60.0  # S3 problems (missing bucket, wrong key) are fixed by humans, not in ms
# A pinned snapshot is re-verified in S3 (manifest re-hashed, every blob present) at most this often; in
# between, drift resyncs reuse status, so an idle CodePilot costs no S3 request per drift interval.
REVERIFY_SECONDS = 600.0


def verified_message(ref: SnapshotRef) -> str:
    return (
        f"version {ref.version}: snapshot {ref.id} verified "
        f"({ref.file_count} files, {ref.size_bytes} bytes = {human_bytes(ref.size_bytes)})"
    )


def weights_verified(refs: list[SnapshotRef]) -> ConditionUpdate:
    """WeightsVerified True, naming every served version's snapshot and size."""
    message = "; ".join(verified_message(ref) for ref in refs)
    return ConditionUpdate(
        ConditionType.WEIGHTS_VERIFIED, ConditionStatus.TRUE, Reason.WEIGHTS_VERIFIED, message
    )


def track_pin(ref: SnapshotRef) -> TrackSnapshot:
    return TrackSnapshot(version=ref.version, snapshot_id=ref.id, size_bytes=ref.size_bytes)


def snapshot_failed_conditions(error: SnapshotError) -> list[ConditionUpdate]:
    """WeightsVerified False with the reason; Degraded and Reconciled say why nothing was applied."""
    message = f"nothing applied: {error}"
    return [
        ConditionUpdate(
            ConditionType.WEIGHTS_VERIFIED, ConditionStatus.FALSE, Reason.SNAPSHOT_FAILED, str(error)
        ),
        ConditionUpdate(ConditionType.RECONCILED, ConditionStatus.FALSE, Reason.SNAPSHOT_FAILED, message),
        ConditionUpdate(ConditionType.DEGRADED, ConditionStatus.TRUE, Reason.SNAPSHOT_FAILED, message),
    ]


async def credentials_for(kube: KubeClient, cp: CodePilot) -> Credentials | None:
    name = cp.spec.model.source.credentials_secret
    if not name:
        return None
    secret = await kube.get(SECRET, cp.metadata.namespace, name)
    where = f"spec.model.source.credentialsSecret: Secret {cp.metadata.namespace}/{name}"
    if secret is None:
        raise SnapshotError(FailureReason.ACCESS_DENIED, f"{where} not found")
    return Credentials.from_secret_data(secret.get("data") or {}, where)


async def ca_pem_for(kube: KubeClient, cp: CodePilot) -> str | None:
    """The CodePilot's CA bundle as PEM text: the operator's S3 calls trust what its fetcher trusts."""
    ref = cp.spec.model.source.ca_bundle
    if ref is None:
        return None
    namespace = cp.metadata.namespace
    where = f"spec.model.source.caBundle: {ref.kind} {namespace}/{ref.name}"
    obj = await kube.get(SECRET if ref.secret_name else CONFIG_MAP, namespace, ref.name)
    if obj is None:
        raise SnapshotError(FailureReason.ACCESS_DENIED, f"{where} not found")
    if ref.secret_name:
        return Credentials.text_from_secret_data(obj.get("data") or {}, ref.key, where)
    data = obj.get("data") or {}
    if ref.key not in data:
        raise SnapshotError(FailureReason.ACCESS_DENIED, f"{where} has no key {ref.key}")
    return str(data[ref.key])


def _snapshot_and_collect(store: SnapshotStore, cp: CodePilot, served: list[ServedVersion]) -> Prepared:
    now = datetime.now(UTC)
    outcome = snapshot_served(store, cp, served, now=now)
    try:
        # The new pins are passed explicitly: status still holds the previous ones at this point.
        result = gc(store, cp, pinned=[ref.id for ref in outcome.refs], now=now)
        if result.deleted:
            log.info(
                "Snapshots of %s/%s deleted by retention: %s",
                cp.metadata.namespace,
                cp.metadata.name,
                ", ".join(result.deleted),
            )
    except SnapshotError as exc:  # retention is housekeeping: it never blocks serving
        log.warning("Snapshot retention for %s/%s failed: %s", cp.metadata.namespace, cp.metadata.name, exc)
    return Prepared(
        outcome.served,
        [weights_verified(outcome.refs)],
        pin_fields([track_pin(ref) for ref in outcome.refs]),
    )


def prepared_from_status(cp: CodePilot, served: list[ServedVersion]) -> Prepared | None:
    """What the last successful prepare decided, if status pins every served version and says verified."""
    pinned = {track.version: track for track in pins(cp.status)}
    verified = next((c for c in cp.status.conditions if c.type == ConditionType.WEIGHTS_VERIFIED), None)
    if verified is None or verified.status is not ConditionStatus.TRUE:
        return None
    if not served or any(version.version not in pinned for version in served):
        return None
    return Prepared(
        [ServedVersion(v.version, pinned[v.version].snapshot_id) for v in served],
        [ConditionUpdate(verified.type, verified.status, verified.reason, verified.message)],
        pin_fields([pinned[v.version] for v in served]),
    )


def _store(cp: CodePilot, credentials: Credentials | None, ca_pem: str | None) -> SnapshotStore:
    try:
        return store_for(cp, credentials, ca_pem=ca_pem)
    except ValueError as exc:  # a CA bundle that is not PEM: a fact about the CodePilot's object
        raise SnapshotError(FailureReason.ACCESS_DENIED, f"spec.model.source.caBundle: {exc}") from None


def snapshot_prepare(kube: KubeClient, reverify_seconds: float = REVERIFY_SECONDS) -> Prepare:
    verified_at: dict[tuple[str, ...], float] = {}  # (uid, snapshot ids...) -> monotonic time

    async def prepare(cp: CodePilot, served: list[ServedVersion]) -> Prepared:
        reused = prepared_from_status(cp, served)
        if reused is not None:
            key = (str(cp.metadata.uid), *(v.snapshot_id or "" for v in reused.served))
            if time.monotonic() - verified_at.get(key, float("-inf")) < reverify_seconds:
                return reused
        try:
            store = _store(cp, await credentials_for(kube, cp), await ca_pem_for(kube, cp))
            prepared = await asyncio.to_thread(_snapshot_and_collect, store, cp, served)
            key = (str(cp.metadata.uid), *(v.snapshot_id or "" for v in prepared.served))
            verified_at[key] = time.monotonic()
            return prepared
        except SnapshotError as exc:
            raise PrepareFailed(
                snapshot_failed_conditions(exc), str(exc), Reason.SNAPSHOT_FAILED, SNAPSHOT_RETRY_SECONDS
            ) from None

    return prepare
