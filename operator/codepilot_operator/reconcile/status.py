"""Pure status computation: what the CodePilot's status should say, from what the cluster really shows.

No I/O here: inputs are plain dicts (live Deployments and Pods) and ``now``, so every case a user can meet
(not ready yet, init container crash-looping, invalid spec, API failing) is a unit test.

Conditions follow metav1.Condition and are merged by type: conditions other controllers own (the
rollout's RolloutPaused, the snapshots' WeightsVerified) are kept as they are, and lastTransitionTime
only moves when a condition's status flips, so an idle resync produces an identical status (no write).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from codepilot_operator.api import CodePilot
from codepilot_operator.api.contract import FetchReport
from codepilot_operator.api.status import ConditionStatus, ConditionType, Reason, RolloutPhase

# Init container states that will not fix themselves: the pod can never become Ready.
_INIT_FAILURE_REASONS = frozenset({"CrashLoopBackOff", "Error", "ErrImagePull", "ImagePullBackOff"})


@dataclass(frozen=True)
class ConditionUpdate:
    type: str
    status: ConditionStatus
    reason: str
    message: str = ""


@dataclass(frozen=True)
class Readiness:
    """The serving state of one Deployment, as a user would describe it."""

    name: str
    ready: bool
    replicas: int
    ready_replicas: int
    reason: Reason
    message: str


def timestamp(now: datetime) -> str:
    return now.astimezone(UTC).replace(microsecond=0).strftime("%Y-%m-%dT%H:%M:%SZ")


def merge_conditions(
    existing: Sequence[Mapping[str, Any]],
    updates: Iterable[ConditionUpdate],
    *,
    generation: int | None,
    now: datetime,
) -> list[dict[str, Any]]:
    """Existing conditions with ``updates`` merged in by type (metav1.Condition semantics)."""
    merged: dict[str, dict[str, Any]] = {str(c["type"]): dict(c) for c in existing if "type" in c}
    for update in updates:
        old = merged.get(update.type)
        transition = timestamp(now)
        if old is not None and old.get("status") == update.status.value and old.get("lastTransitionTime"):
            transition = str(old["lastTransitionTime"])
        condition: dict[str, Any] = {
            "type": update.type,
            "status": update.status.value,
            "reason": update.reason,
            "message": update.message,
            "lastTransitionTime": transition,
        }
        if generation is not None:
            condition["observedGeneration"] = generation
        merged[update.type] = condition
    return sorted(merged.values(), key=lambda c: _ORDER.get(c["type"], len(_ORDER)))


_ORDER = {t.value: i for i, t in enumerate(ConditionType)}


def _init_failure(pods: Iterable[Mapping[str, Any]]) -> str | None:
    """A message naming the failing init container of the first pod stuck on one, if any."""
    for pod in pods:
        for state in pod.get("status", {}).get("initContainerStatuses") or []:
            waiting = (state.get("state") or {}).get("waiting") or {}
            last = (state.get("lastState") or {}).get("terminated") or {}
            if waiting.get("reason") in _INIT_FAILURE_REASONS:
                detail = waiting.get("message") or last.get("message") or last.get("reason") or ""
                pod_name = pod.get("metadata", {}).get("name", "?")
                restarts = state.get("restartCount", 0)
                text = f"pod {pod_name}: init container {state.get('name')} is in {waiting['reason']}"
                text += f" ({restarts} restarts)"
                if last.get("exitCode") is not None:
                    text += f", last exit code {last['exitCode']}"
                return f"{text}: {detail}" if detail else text
    return None


def fetch_reports(pods: Iterable[Mapping[str, Any]], container: str, identity: str) -> list[FetchReport]:
    """The report each pod's fetcher left for ``identity`` when it succeeded (its termination message).

    The kubelet keeps an init container's last termination in ``state`` while the pod runs; a report
    for another snapshot (the pod of an older template) or a failed run does not count.
    """
    found = []
    for pod in pods:
        for state in pod.get("status", {}).get("initContainerStatuses") or []:
            if state.get("name") != container:
                continue
            terminated = (state.get("state") or {}).get("terminated") or {}
            report = (
                FetchReport.from_json(terminated.get("message")) if terminated.get("exitCode") == 0 else None
            )
            if report is not None and report.identity == identity:
                found.append(report)
    return found


def cache_use(version: str, claim: str, snapshot_id: str, reports: Sequence[FetchReport]) -> dict[str, Any]:
    """One entry of status.modelCache: the cache a version reads, and what its pods' fetchers did."""
    return {
        "version": version,
        "claimName": claim,
        "snapshotId": snapshot_id,
        "pods": len(reports),
        "downloadedBytes": sum(r.downloaded_bytes for r in reports),
        "reusedBytes": sum(r.reused_bytes for r in reports),
    }


def deployment_readiness(deployment: Mapping[str, Any], pods: Iterable[Mapping[str, Any]] = ()) -> Readiness:
    """Ready means: the controller saw the latest spec, and every wanted replica is updated and ready."""
    meta, spec, status = (
        deployment.get("metadata", {}),
        deployment.get("spec", {}),
        deployment.get("status", {}),
    )
    name = str(meta.get("name", "?"))
    wanted = int(spec.get("replicas", 1) if spec.get("replicas") is not None else 1)
    ready = int(status.get("readyReplicas") or 0)
    updated = int(status.get("updatedReplicas") or 0)
    observed = status.get("observedGeneration")
    current = observed is not None and meta.get("generation") is not None and observed >= meta["generation"]
    if current and ready >= wanted and updated >= wanted:
        return Readiness(name, True, wanted, ready, Reason.REPLICAS_READY, f"{name}: {ready}/{wanted} ready")
    failure = _init_failure(pods)
    if failure is not None:
        return Readiness(name, False, wanted, ready, Reason.INIT_CONTAINER_FAILING, f"{name}: {failure}")
    why = (
        "waiting for the controller to observe the latest spec" if not current else f"{ready}/{wanted} ready"
    )
    return Readiness(name, False, wanted, ready, Reason.DEPLOYMENT_NOT_READY, f"{name}: {why}")


def serving_conditions(readiness: Sequence[Readiness], applied_objects: int) -> list[ConditionUpdate]:
    """Reconciled / Ready / Progressing / Degraded after a successful apply."""
    reconciled = ConditionUpdate(
        ConditionType.RECONCILED,
        ConditionStatus.TRUE,
        Reason.RECONCILED,
        f"{applied_objects} objects in sync",
    )
    failing = [r for r in readiness if r.reason is Reason.INIT_CONTAINER_FAILING]
    waiting = [r for r in readiness if not r.ready]
    if not waiting:
        message = "; ".join(r.message for r in readiness)
        return [
            reconciled,
            ConditionUpdate(ConditionType.READY, ConditionStatus.TRUE, Reason.REPLICAS_READY, message),
            ConditionUpdate(ConditionType.PROGRESSING, ConditionStatus.FALSE, Reason.AS_EXPECTED),
            ConditionUpdate(ConditionType.DEGRADED, ConditionStatus.FALSE, Reason.AS_EXPECTED),
        ]
    message = "; ".join(r.message for r in waiting)
    if failing:
        failure = "; ".join(r.message for r in failing)
        return [
            reconciled,
            ConditionUpdate(
                ConditionType.READY, ConditionStatus.FALSE, Reason.INIT_CONTAINER_FAILING, message
            ),
            ConditionUpdate(
                ConditionType.PROGRESSING, ConditionStatus.FALSE, Reason.INIT_CONTAINER_FAILING, failure
            ),
            ConditionUpdate(
                ConditionType.DEGRADED, ConditionStatus.TRUE, Reason.INIT_CONTAINER_FAILING, failure
            ),
        ]
    return [
        reconciled,
        ConditionUpdate(ConditionType.READY, ConditionStatus.FALSE, Reason.DEPLOYMENT_NOT_READY, message),
        ConditionUpdate(ConditionType.PROGRESSING, ConditionStatus.TRUE, Reason.ROLLOUT_IN_PROGRESS, message),
        ConditionUpdate(ConditionType.DEGRADED, ConditionStatus.FALSE, Reason.AS_EXPECTED),
    ]


def waiting_for_pods(status: Mapping[str, Any]) -> bool:
    """A valid CodePilot whose pods are not Ready yet: its status is refreshed every progress interval."""
    conditions = {c.get("type"): c for c in status.get("conditions") or []}
    ready = conditions.get(ConditionType.READY, {})
    reconciled = conditions.get(ConditionType.RECONCILED, {})
    return bool(
        reconciled.get("status") == ConditionStatus.TRUE and ready.get("status") != ConditionStatus.TRUE
    )


def rollout_conditions(cp: CodePilot) -> list[ConditionUpdate]:
    """Progressing, RolloutPaused and Degraded as the rollout in ``cp``'s status (just decided) has them.

    Returned after the serving conditions, so they win where both speak: a rollout in flight is
    Progressing whatever the pods say, and a rejected version is Degraded (the spec asks for a version
    that is not served) while Ready stays with the stable version's pods.
    """
    rollout, desired = cp.status.rollout, cp.spec.model.version
    if rollout is None:
        return []
    updates: list[ConditionUpdate] = []
    paused = rollout.phase is RolloutPhase.PAUSED
    stalled = rollout.paused_reason.startswith("stalled")
    updates.append(
        ConditionUpdate(
            ConditionType.ROLLOUT_PAUSED,
            ConditionStatus.TRUE if paused else ConditionStatus.FALSE,
            (Reason.STALLED if stalled else Reason.PAUSED) if paused else Reason.AS_EXPECTED,
            rollout.paused_reason if paused else "",
        )
    )
    if rollout.version != desired:
        return updates
    if rollout.phase is RolloutPhase.PROGRESSING:
        message = f"rolling out {rollout.version}: {rollout.message}"
        updates.append(
            ConditionUpdate(
                ConditionType.PROGRESSING, ConditionStatus.TRUE, Reason.ROLLOUT_IN_PROGRESS, message
            )
        )
    elif rollout.phase in (RolloutPhase.ROLLED_BACK, RolloutPhase.ABORTED):
        reason = Reason.ROLLED_BACK if rollout.phase is RolloutPhase.ROLLED_BACK else Reason.ABORTED
        stable = cp.status.stable_version or "-"
        message = f"{rollout.version} is not served ({rollout.message}); {stable} serves all traffic"
        updates.append(ConditionUpdate(ConditionType.DEGRADED, ConditionStatus.TRUE, reason, message))
        updates.append(ConditionUpdate(ConditionType.PROGRESSING, ConditionStatus.FALSE, reason, message))
    return updates


def invalid_spec_conditions(problems: Sequence[str]) -> list[ConditionUpdate]:
    """Nothing was applied: Reconciled and Degraded say which field to fix; Ready is left as it was."""
    message = "; ".join(problems)
    return [
        ConditionUpdate(ConditionType.RECONCILED, ConditionStatus.FALSE, Reason.INVALID_SPEC, message),
        ConditionUpdate(ConditionType.DEGRADED, ConditionStatus.TRUE, Reason.INVALID_SPEC, message),
    ]


def kind_not_served_conditions(problems: Sequence[str]) -> list[ConditionUpdate]:
    """The spec needs a kind the cluster lacks: nothing was applied, the fields are named."""
    message = "; ".join(problems)
    return [
        ConditionUpdate(ConditionType.RECONCILED, ConditionStatus.FALSE, Reason.KIND_NOT_SERVED, message),
        ConditionUpdate(ConditionType.DEGRADED, ConditionStatus.TRUE, Reason.KIND_NOT_SERVED, message),
    ]


def apply_failed_conditions(message: str) -> list[ConditionUpdate]:
    return [ConditionUpdate(ConditionType.RECONCILED, ConditionStatus.FALSE, Reason.APPLY_FAILED, message)]


def reconcile_error_conditions(message: str) -> list[ConditionUpdate]:
    """Reconcile stopped on an unexpected exception: whatever it had applied stays, status says why."""
    return [
        ConditionUpdate(ConditionType.RECONCILED, ConditionStatus.FALSE, Reason.RECONCILE_ERROR, message),
        ConditionUpdate(ConditionType.DEGRADED, ConditionStatus.TRUE, Reason.RECONCILE_ERROR, message),
    ]


def status_patch(
    current: Mapping[str, Any],
    updates: Iterable[ConditionUpdate],
    *,
    generation: int | None,
    now: datetime,
    readiness: Sequence[Readiness] | None = None,
    extra: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The fields of status the operator owns, or {} when they already say exactly this (no write).

    ``extra``: further top-level status fields (e.g. the snapshot a track pins), compared the same way.
    """
    conditions = merge_conditions(current.get("conditions") or [], updates, generation=generation, now=now)
    wanted: dict[str, Any] = {**(extra or {}), "conditions": conditions}
    if generation is not None:
        wanted["observedGeneration"] = generation
    if readiness is not None:
        wanted["replicas"] = sum(r.replicas for r in readiness)
        wanted["readyReplicas"] = sum(r.ready_replicas for r in readiness)
    if all(current.get(key) == value for key, value in wanted.items()):
        return {}
    return wanted


# The rollout posts its own Events for these, with the measured values (rollout/step.py).
_ROLLOUT_REASONS = frozenset({Reason.ROLLED_BACK, Reason.ABORTED})
_WARNING_REASONS = frozenset(
    {
        Reason.INVALID_SPEC,
        Reason.INIT_CONTAINER_FAILING,
        Reason.APPLY_FAILED,
        Reason.SNAPSHOT_FAILED,
        Reason.RECONCILE_ERROR,
        Reason.SECRET_NOT_ALLOWED,
        Reason.SECRET_NOT_FOUND,
        Reason.IMAGE_NOT_ALLOWED,
        Reason.SERVICE_ACCOUNT_NOT_ALLOWED,
        Reason.PRIORITY_CLASS_NOT_ALLOWED,
        Reason.KIND_NOT_SERVED,
        Reason.CLAIM_NOT_ALLOWED,
        Reason.CLAIM_NOT_FOUND,
    }
)


_EVENT_CONDITIONS = frozenset(
    {
        ConditionType.READY,
        ConditionType.DEGRADED,
        ConditionType.WEIGHTS_VERIFIED,
        ConditionType.MONITORING_READY,
    }
)


@dataclass(frozen=True)
class Transition:
    """A condition change worth an Event (``kubectl describe`` shows these)."""

    type: str  # "Normal" or "Warning"
    reason: str
    message: str


def transitions(before: Sequence[Mapping[str, Any]], after: Sequence[Mapping[str, Any]]) -> list[Transition]:
    """Events for Ready, Degraded, WeightsVerified and MonitoringReady changing status or reason."""
    old = {c.get("type"): c for c in before}
    events = []
    for condition in after:
        kind = condition["type"]
        if kind not in _EVENT_CONDITIONS:
            continue
        previous = old.get(kind)
        if previous is not None and (previous.get("status"), previous.get("reason")) == (
            condition["status"],
            condition["reason"],
        ):
            continue
        if condition["reason"] in _ROLLOUT_REASONS:
            continue
        warning = condition["reason"] in _WARNING_REASONS
        if previous is None and not warning and condition["status"] != ConditionStatus.TRUE:
            continue  # "not ready yet" / "not degraded" on creation is not news
        events.append(
            Transition("Warning" if warning else "Normal", condition["reason"], condition["message"])
        )
    return events


def now_utc() -> datetime:
    return datetime.now(UTC)
