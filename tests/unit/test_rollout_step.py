"""The rollout step function through every path, with an injected clock (no sleeping, no servers)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from codepilot_operator.api import RolloutSpec
from codepilot_operator.api.status import AnalysisResult, RolloutPhase, RolloutStatus, Verdict
from codepilot_operator.rollout.step import Capacity, Decision, Observation, analysis_window, step

T0 = datetime(2026, 12, 1, 10, 0, 0, tzinfo=UTC)
CANARY = {"strategy": "Canary", "steps": [{"weight": 25, "pause": "2m"}, {"weight": 50, "pause": "2m"}]}


def spec(**overrides: Any) -> RolloutSpec:
    doc: dict[str, Any] = {**CANARY, "analysis": {"interval": "1m", "failureLimit": 2, "stallTimeout": "10m"}}
    doc.update(overrides)
    return RolloutSpec.model_validate(doc)


def verdict(kind: Verdict, now: datetime, window: float = 60.0, reason: str = "") -> AnalysisResult:
    return AnalysisResult(
        time=now, verdict=kind, reason=reason or kind.value, message=kind.value, window_seconds=window
    )


class Driver:
    """Plays the cluster: canary pods become Ready one tick after they are asked for."""

    def __init__(self, rollout: RolloutSpec, replicas: int = 4, desired: str = "v2", stable: str = "v1"):
        self.spec, self.replicas = rollout, replicas
        self.desired, self.stable = desired, stable
        self.state: RolloutStatus | None = None
        self.now = T0
        self.canary_ready, self.stable_ready = 0, replicas
        self.decisions: list[Decision] = []

    def tick(
        self,
        seconds: float = 0.0,
        analysis: Verdict | None = None,
        action: str | None = None,
        reason: str = "",
    ) -> Decision:
        self.now += timedelta(seconds=seconds)
        result = None
        window = analysis_window(self.state, self.spec, self.now)
        if analysis is not None:
            assert window is not None, "the test asked for an analysis that is not due"
            result = verdict(analysis, self.now, window, reason)
        obs = Observation(
            now=self.now,
            desired=self.desired,
            stable=self.stable,
            spec=self.spec,
            capacity=Capacity(self.replicas, surge=1),
            canary_ready=self.canary_ready,
            stable_ready=self.stable_ready,
            analysis=result,
            action=action,
        )
        decision = step(self.state, obs)
        self.decisions.append(decision)
        self.state = decision.rollout
        if self.state is not None and self.state.canary_replicas is not None:
            self.canary_ready = min(self.state.canary_replicas, self.canary_ready + 1)  # one pod per tick
            self.stable_ready = self.state.stable_replicas or 0
        if decision.promote:
            self.stable, self.canary_ready, self.stable_ready = self.desired, 0, self.replicas
        return decision

    def settle(self) -> None:
        """Ticks until the current weight took effect (no analysis is due meanwhile)."""
        for _ in range(10):
            assert self.state is not None
            if self.state.step_started_at is not None or self.state.phase is not RolloutPhase.PROGRESSING:
                return
            self.tick(1)
        raise AssertionError(f"never settled: {self.state}")

    def reasons(self) -> list[str]:
        return [e.reason for d in self.decisions for e in d.events]


def test_healthy_canary_walks_every_step_then_promotes() -> None:
    d = Driver(spec())
    d.tick()
    assert d.state is not None and d.state.phase is RolloutPhase.PROGRESSING
    assert (d.state.step, d.state.weight, d.state.step_started_at) == (0, 25, None)  # pods first
    assert d.state.canary_replicas == 1 and d.state.stable_replicas == 4  # surge, stable untouched
    d.settle()
    assert d.state.stable_replicas == 3 and d.state.actual_weight == 25
    assert analysis_window(d.state, d.spec, d.now) is None  # one interval after the weight took effect
    d.tick(60, Verdict.PASS)
    assert d.state.step == 0 and d.state.step_progress_seconds == 60
    d.tick(60, Verdict.PASS)
    assert (d.state.step, d.state.weight, d.state.step_started_at) == (1, 50, None)
    d.settle()
    d.tick(60, Verdict.PASS)
    d.tick(60, Verdict.PASS)
    assert d.state.step == 2 and d.state.weight == 100  # promotion: traffic moves, then tracks
    for _ in range(10):
        decision = d.tick(1)
        if decision.promote:
            break
    assert decision.promote and decision.counts == ["promotion"]
    assert d.state.phase is RolloutPhase.PROMOTED
    assert "Promoted" in d.reasons() and "RolloutStarted" in d.reasons()


def test_stable_capacity_never_drops_below_the_replica_count() -> None:
    d = Driver(spec())
    for verdict_ in [None, None, None, Verdict.PASS, Verdict.PASS] * 6:
        if d.state is not None and d.state.phase is RolloutPhase.PROMOTED:
            break
        due = analysis_window(d.state, d.spec, d.now + timedelta(seconds=60))
        d.tick(60 if due is not None and verdict_ else 1, verdict_ if due is not None else None)
        assert d.canary_ready + d.stable_ready >= 4
        assert (d.state.canary_replicas or 0) + (d.state.stable_replicas or 0) <= 5  # maxSurge 1


def test_failed_analyses_roll_back_with_the_numbers() -> None:
    d = Driver(spec())
    d.tick()
    d.settle()
    d.tick(60, Verdict.FAIL)
    assert (
        d.state is not None
        and d.state.consecutive_failures == 1
        and d.state.phase is RolloutPhase.PROGRESSING
    )
    decision = d.tick(60, Verdict.FAIL)
    assert d.state.phase is RolloutPhase.ROLLED_BACK
    assert (d.state.weight, d.state.canary_replicas, d.state.rejected_version) == (0, 0, "v2")
    assert d.state.last_analysis is not None and d.state.last_analysis.verdict is Verdict.FAIL
    assert "rollback" in decision.counts and any(e.type == "Warning" for e in decision.events)
    # the rejected version is not retried in a loop: nothing happens until spec changes or a retry
    later = d.tick(600)
    assert d.state.phase is RolloutPhase.ROLLED_BACK and not later.events


def test_a_pass_between_failures_resets_the_count() -> None:
    d = Driver(spec())
    d.tick()
    d.settle()
    d.tick(60, Verdict.FAIL)
    d.tick(60, Verdict.PASS)
    d.tick(60, Verdict.FAIL)
    assert d.state is not None and d.state.phase is RolloutPhase.PROGRESSING
    assert d.state.consecutive_failures == 1


def test_inconclusive_intervals_neither_fail_nor_advance_and_stall_holds() -> None:
    d = Driver(spec())
    d.tick()
    d.settle()
    for _ in range(9):
        d.tick(60, Verdict.INCONCLUSIVE, reason="NoTraffic")
        assert d.state is not None and d.state.step == 0 and d.state.step_progress_seconds == 0
        assert d.state.consecutive_failures == 0 and d.state.phase is RolloutPhase.PROGRESSING
    assert d.state.last_analysis is not None and d.state.last_analysis.reason == "NoTraffic"
    d.tick(60, Verdict.INCONCLUSIVE, reason="NoTraffic")  # 10 m without a conclusive analysis
    assert d.state.phase is RolloutPhase.PAUSED and d.state.paused_reason.startswith("stalled")
    assert "RolloutStalled" in d.reasons()


def test_stall_can_roll_back_instead() -> None:
    rollout = spec(analysis={"interval": "1m", "stallTimeout": "3m", "onStall": "Rollback"})
    d = Driver(rollout)
    d.tick()
    d.settle()
    for _ in range(3):
        d.tick(60, Verdict.INCONCLUSIVE, reason="PrometheusUnreachable")
    assert d.state is not None and d.state.phase is RolloutPhase.ROLLED_BACK
    assert "no conclusive analysis" in d.state.message


def test_pause_resume_abort_retry_by_hand() -> None:
    d = Driver(spec())
    d.tick()
    d.settle()
    d.tick(1, action="pause")
    assert d.state is not None and d.state.phase is RolloutPhase.PAUSED
    assert d.state.last_action is not None and d.state.last_action.result == "paused"
    assert analysis_window(d.state, d.spec, d.now + timedelta(hours=1)) is None  # paused: no analysis
    d.tick(3600)  # no stall while paused by hand
    assert d.state.phase is RolloutPhase.PAUSED
    d.tick(1, action="resume")
    assert d.state.phase is RolloutPhase.PROGRESSING
    d.tick(1, action="abort")
    assert d.state.phase is RolloutPhase.ABORTED and d.state.rejected_version == "v2" and d.state.weight == 0
    d.tick(1, action="resume")
    assert d.state.last_action is not None and d.state.last_action.result.startswith("ignored")
    d.tick(1, action="retry")
    assert (
        d.state.phase is RolloutPhase.PROGRESSING and d.state.step == 0 and d.state.rejected_version is None
    )


def test_promote_by_hand_skips_the_remaining_steps() -> None:
    d = Driver(spec())
    d.tick()
    d.settle()
    d.tick(1, action="promote")
    assert d.state is not None and d.state.weight == 100
    for _ in range(10):
        if d.tick(1).promote:
            break
    assert d.state.phase is RolloutPhase.PROMOTED


def test_restart_mid_rollout_resumes_the_same_step_and_clock() -> None:
    d = Driver(spec())
    d.tick()
    d.settle()
    d.tick(60, Verdict.PASS)
    assert d.state is not None
    before = d.state
    # what status holds, as the API server returns it to a fresh operator
    d.state = RolloutStatus.model_validate(before.model_dump(mode="json", by_alias=True, exclude_none=True))
    d.tick(1)
    assert (d.state.step, d.state.weight) == (before.step, before.weight)
    assert d.state.step_progress_seconds == before.step_progress_seconds == 60
    assert d.state.step_started_at == before.step_started_at
    d.tick(59, Verdict.PASS)  # the second minute of the step: neither repeated nor skipped
    assert d.state.step == 1


def test_a_version_changed_mid_rollout_starts_over_against_the_same_stable() -> None:
    d = Driver(spec())
    d.tick()
    d.settle()
    d.tick(60, Verdict.PASS)
    d.tick(60, Verdict.PASS)
    assert d.state is not None and d.state.step == 1
    d.desired, d.canary_ready = "v3", 0
    d.tick(1)
    assert (d.state.version, d.state.stable_version, d.state.step) == ("v3", "v1", 0)
    assert "RolloutSuperseded" in d.reasons()


def test_reverting_the_version_to_stable_ends_the_rollout() -> None:
    d = Driver(spec())
    d.tick()
    d.desired = "v1"
    d.tick(1)
    assert d.state is not None and d.state.phase is RolloutPhase.ABORTED and d.state.rejected_version is None


def test_immediate_waits_for_ready_replicas_then_promotes_without_analysis() -> None:
    d = Driver(spec(strategy="Immediate"), replicas=2)
    first = d.tick()
    assert not first.promote and d.state is not None and d.state.weight == 100
    assert analysis_window(d.state, d.spec, d.now + timedelta(hours=1)) is None
    promoted = [d.tick(1).promote for _ in range(6)]
    assert any(promoted) and d.state.phase is RolloutPhase.PROMOTED
    assert d.canary_ready + d.stable_ready >= 2


def test_ab_test_holds_its_split_and_never_decides_by_itself() -> None:
    d = Driver(spec(strategy="ABTest", abTest={"weight": 50}))
    d.tick()
    d.settle()
    assert d.state is not None and d.state.weight == 50
    for kind in (Verdict.FAIL, Verdict.FAIL, Verdict.FAIL, Verdict.PASS):
        d.tick(60, kind)
    assert d.state.phase is RolloutPhase.PROGRESSING and d.state.weight == 50
    assert d.state.last_analysis is not None  # values still shown
    d.tick(3600)  # no stall timeout for a test that waits on humans
    assert d.state.phase is RolloutPhase.PROGRESSING
    d.tick(1, action="promote")
    assert any(d.tick(1).promote for _ in range(8))


def test_no_rollout_for_a_first_version_or_an_unchanged_one() -> None:
    d = Driver(spec(), desired="v1", stable="v1")
    assert d.tick().rollout is None and not d.decisions[-1].events
