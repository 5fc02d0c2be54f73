"""Status tells the truth: conditions from what Deployments and Pods really report."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from codepilot_operator.api.status import CodePilotStatus, ConditionStatus, Reason
from codepilot_operator.reconcile.status import (
    ConditionUpdate,
    deployment_readiness,
    invalid_spec_conditions,
    merge_conditions,
    serving_conditions,
    status_patch,
    transitions,
)

NOW = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)


def deployment(
    replicas: int | None = 2, ready: int = 0, updated: int = 0, observed: int | None = 1
) -> dict[str, Any]:
    spec: dict[str, Any] = {} if replicas is None else {"replicas": replicas}
    status: dict[str, Any] = {"readyReplicas": ready, "updatedReplicas": updated}
    if observed is not None:
        status["observedGeneration"] = observed
    return {"metadata": {"name": "coder-v1", "generation": 1}, "spec": spec, "status": status}


def crash_looping_pod(reason: str = "CrashLoopBackOff") -> dict[str, Any]:
    return {
        "metadata": {"name": "coder-v1-x1"},
        "status": {
            "initContainerStatuses": [
                {
                    "name": "fetch-weights",
                    "restartCount": 5,
                    "state": {"waiting": {"reason": reason}},
                    "lastState": {"terminated": {"exitCode": 2, "message": "403 Forbidden from S3"}},
                }
            ]
        },
    }


def by_type(conditions: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {c["type"]: c for c in conditions}


def test_all_replicas_updated_and_ready_is_ready() -> None:
    verdict = deployment_readiness(deployment(ready=2, updated=2))
    assert verdict.ready and verdict.reason is Reason.REPLICAS_READY and verdict.ready_replicas == 2


def test_controller_not_caught_up_is_not_ready_even_with_ready_pods() -> None:
    verdict = deployment_readiness(deployment(ready=2, updated=2, observed=None))
    assert not verdict.ready and "observe the latest spec" in verdict.message


def test_old_replicas_ready_during_rollout_is_not_ready() -> None:
    assert not deployment_readiness(deployment(ready=2, updated=1)).ready


def test_hpa_owned_deployment_without_replicas_counts_one() -> None:
    assert deployment_readiness(deployment(replicas=None, ready=1, updated=1)).ready


def test_init_container_crash_loop_names_the_container_and_its_error() -> None:
    verdict = deployment_readiness(deployment(ready=0), [crash_looping_pod()])
    assert verdict.reason is Reason.INIT_CONTAINER_FAILING
    assert "fetch-weights" in verdict.message and "CrashLoopBackOff" in verdict.message
    assert "403 Forbidden from S3" in verdict.message and "exit code 2" in verdict.message


def test_image_pull_failure_of_the_fetcher_counts_too() -> None:
    verdict = deployment_readiness(deployment(ready=0), [crash_looping_pod("ImagePullBackOff")])
    assert verdict.reason is Reason.INIT_CONTAINER_FAILING


def test_pod_still_initialising_is_just_not_ready() -> None:
    pod = {
        "metadata": {"name": "p"},
        "status": {"initContainerStatuses": [{"name": "fetch-weights", "state": {"running": {}}}]},
    }
    assert deployment_readiness(deployment(ready=0), [pod]).reason is Reason.DEPLOYMENT_NOT_READY


def test_serving_conditions_when_crash_looping() -> None:
    verdict = deployment_readiness(deployment(ready=0), [crash_looping_pod()])
    conditions = {c.type: c for c in serving_conditions([verdict], 8)}
    assert conditions["Ready"].status is ConditionStatus.FALSE
    assert conditions["Degraded"].status is ConditionStatus.TRUE
    assert conditions["Degraded"].reason == Reason.INIT_CONTAINER_FAILING
    assert conditions["Progressing"].status is ConditionStatus.FALSE
    assert conditions["Reconciled"].status is ConditionStatus.TRUE


def test_merge_keeps_other_controllers_conditions_and_transition_times() -> None:
    earlier = NOW - timedelta(hours=1)
    existing = [
        {
            "type": "RolloutPaused",
            "status": "True",
            "reason": "Manual",
            "message": "",
            "lastTransitionTime": "x",
        },
        {
            "type": "Ready",
            "status": "False",
            "reason": "DeploymentNotReady",
            "lastTransitionTime": "2026-01-02T02:04:05Z",
        },
    ]
    updates = [ConditionUpdate("Ready", ConditionStatus.FALSE, Reason.INIT_CONTAINER_FAILING, "m")]
    merged = by_type(merge_conditions(existing, updates, generation=3, now=NOW))
    assert merged["RolloutPaused"] == existing[0]
    assert merged["Ready"]["reason"] == "InitContainerFailing"
    assert merged["Ready"]["lastTransitionTime"] == earlier.strftime("%Y-%m-%dT%H:%M:%SZ"), (
        "status did not flip"
    )
    assert merged["Ready"]["observedGeneration"] == 3

    flipped = merge_conditions(
        existing,
        [ConditionUpdate("Ready", ConditionStatus.TRUE, Reason.REPLICAS_READY)],
        generation=3,
        now=NOW,
    )
    assert by_type(flipped)["Ready"]["lastTransitionTime"] == "2026-01-02T03:04:05Z"


def test_conditions_are_valid_metav1_conditions() -> None:
    updates = invalid_spec_conditions(["spec.runtime.gpus: Input should be less than or equal to 16"])
    patch = status_patch({}, updates, generation=1, now=NOW)
    status = CodePilotStatus.model_validate(patch)  # the API model (and so the CRD schema) accepts it
    degraded = next(c for c in status.conditions if c.type == "Degraded")
    assert degraded.reason == "InvalidSpec" and "spec.runtime.gpus" in degraded.message


def test_same_status_again_is_no_write() -> None:
    verdict = deployment_readiness(deployment(ready=2, updated=2))
    first = status_patch({}, serving_conditions([verdict], 8), generation=1, now=NOW, readiness=[verdict])
    assert first
    later = NOW + timedelta(minutes=5)
    assert (
        status_patch(first, serving_conditions([verdict], 8), generation=1, now=later, readiness=[verdict])
        == {}
    )


def test_events_only_for_transitions_a_human_cares_about() -> None:
    not_ready = serving_conditions([deployment_readiness(deployment(ready=0))], 8)
    created = merge_conditions([], not_ready, generation=1, now=NOW)
    assert transitions([], created) == [], "'not ready yet' right after creation is not news"

    ready = merge_conditions(
        created,
        serving_conditions([deployment_readiness(deployment(ready=2, updated=2))], 8),
        generation=1,
        now=NOW,
    )
    events = transitions(created, ready)
    assert [(e.type, e.reason) for e in events] == [("Normal", "ReplicasReady")]
    assert transitions(ready, ready) == []

    invalid = merge_conditions(ready, invalid_spec_conditions(["spec.x: bad"]), generation=2, now=NOW)
    assert [(e.type, e.reason) for e in transitions(ready, invalid)] == [("Warning", "InvalidSpec")]


def test_status_fields_follow_the_rollout_decision() -> None:
    from codepilot_operator.api.status import RolloutPhase, RolloutStatus
    from codepilot_operator.rollout.step import Decision
    from codepilot_operator.rollout.tracks import carried_pins, track_fields
    from tests.helpers import codepilot

    pins = {
        "stableSnapshot": {"version": "v1", "snapshotId": "a" * 64},
        "canarySnapshot": {"version": "v2", "snapshotId": "b" * 64},
    }
    cp = codepilot(**{"spec.model.version": "v2", "status": {"stableVersion": "v1", **pins}})
    rolling = RolloutStatus(phase=RolloutPhase.PROGRESSING, version="v2", weight=25, step=0)
    coming_up = track_fields(cp, Decision(rolling))
    assert (coming_up["stableVersion"], coming_up["canaryVersion"], coming_up["canaryWeight"]) == (
        "v1",
        "v2",
        25,
    )
    assert coming_up["stableTemplate"] is None  # no template recorded yet: stable renders from spec

    promoted = track_fields(
        cp, Decision(rolling.model_copy(update={"phase": RolloutPhase.PROMOTED}), promote=True)
    )
    assert (promoted["stableVersion"], promoted["canaryVersion"], promoted["canaryWeight"]) == (
        "v2",
        None,
        None,
    )
    assert promoted["stableTemplate"]["model"]["version"] == "v2"  # v2 now serves from the spec it won with
    moved = carried_pins(cp, promoted=True, canary_served=False)
    assert moved == {"stableSnapshot": pins["canarySnapshot"], "canarySnapshot": None}
    assert carried_pins(cp, promoted=False, canary_served=False)["canarySnapshot"] is None  # a rollback

    # the first version of a CodePilot is stable at once: there is nothing older to keep serving
    first = track_fields(codepilot(), None)
    assert (first["stableVersion"], first["canaryVersion"]) == ("v1", None)


def test_an_unexpected_error_is_degraded_with_a_warning_naming_it() -> None:
    from codepilot_operator.reconcile.failures import classify

    failure = classify(OverflowError("days=1000000000; must have magnitude <= 999999999"), retry_delay=10)
    assert failure.reason == "ReconcileError" and failure.delay is not None and failure.delay > 0
    merged = merge_conditions([], failure.conditions, generation=3, now=NOW)
    by_type = {c["type"]: c for c in merged}
    assert by_type["Reconciled"]["status"] == "False" and by_type["Degraded"]["status"] == "True"
    assert (
        by_type["Degraded"]["message"] == "OverflowError: days=1000000000; must have magnitude <= 999999999"
    )
    CodePilotStatus.model_validate({"conditions": merged})
    (event,) = transitions([], merged)
    assert (event.type, event.reason) == ("Warning", "ReconcileError")
    assert transitions(merged, merged) == [], "the same error again is no new Event"


def test_error_messages_are_one_line_without_url_credentials_and_bounded() -> None:
    from codepilot_operator.reconcile.failures import one_line

    text = one_line(ValueError("cannot reach https://key:s3cret@minio:9000/bucket\n  while listing"))
    assert text == "ValueError: cannot reach https://***@minio:9000/bucket while listing"
    assert len(one_line(RuntimeError("x" * 10_000))) <= 400


def test_known_failures_keep_their_own_reasons_and_retry_delays() -> None:
    from codepilot_operator.clients.kube import KubeUnavailable
    from codepilot_operator.reconcile.failures import classify, error_delay
    from codepilot_operator.reconcile.reconcile import InvalidSpec

    invalid = classify(InvalidSpec(["spec.runtime.gpus: too many"]), retry_delay=10)
    assert (invalid.reason, invalid.delay) == ("InvalidSpec", None), "only an edit can fix it: no retries"
    down = classify(KubeUnavailable("patch Deployment: HTTP 503", "Http503"), retry_delay=10)
    assert (down.reason, down.delay) == ("Http503", 10)
    assert [error_delay(n) for n in (0, 1, 2)] == [15, 30, 60]
    assert error_delay(50) == 600, "backs off, capped"
