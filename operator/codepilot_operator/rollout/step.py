"""The rollout as a pure step function: ``step(state, observation) -> Decision``.

A kopf timer calls it every few seconds while a rollout is in flight (and on every reconcile): it takes
what the cluster and Prometheus show, returns the new ``status.rollout`` plus what to do (promote, Events,
metrics). All state lives in status, so an operator restarted mid-rollout resumes at the same step with
the same weight and the same step clock.

The step's clock (``stepProgressSeconds``) only moves with *passing* analyses: a failed interval counts
toward ``failureLimit``, an inconclusive one (no traffic, Prometheus unreachable, not significant)
moves nothing. A step that sees no conclusive analysis for ``stallTimeout`` holds (Paused) or rolls back,
as ``onStall`` says.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from codepilot_operator.api import RolloutSpec, RolloutStrategy
from codepilot_operator.api.fields import parse_duration
from codepilot_operator.api.spec import StallAction
from codepilot_operator.api.status import (
    AnalysisResult,
    RolloutAction,
    RolloutPhase,
    RolloutStatus,
    Verdict,
)
from codepilot_operator.rollout import capacity

IN_FLIGHT = frozenset({RolloutPhase.PROGRESSING, RolloutPhase.PAUSED})
REJECTED = frozenset({RolloutPhase.ROLLED_BACK, RolloutPhase.ABORTED})
ACTIONS = ("promote", "abort", "pause", "resume", "retry")


@dataclass(frozen=True)
class Capacity:
    """Replicas the versions share: a fixed count, or HPA bounds."""

    replicas: int  # spec replicas (no HPA) or the HPA's minReplicas
    max_replicas: int | None = None  # set when an HPA scales the versions
    surge: int = 1


@dataclass(frozen=True)
class Observation:
    now: datetime
    desired: str  # spec.model.version
    stable: str  # status.stableVersion (or spec.model.version for a new CodePilot)
    spec: RolloutSpec
    capacity: Capacity
    canary_ready: int = 0
    stable_ready: int = 0
    gateway: bool = False  # an HTTPRoute splits traffic by weight
    analysis: AnalysisResult | None = None  # taken this tick because analysis_window() said so
    action: str | None = None  # serving.codepilot.dev/rollout-action, when set


@dataclass(frozen=True)
class Event:
    type: str  # Normal | Warning
    reason: str
    message: str


@dataclass
class Decision:
    rollout: RolloutStatus | None
    promote: bool = False  # the canary becomes stable in this status write
    events: list[Event] = field(default_factory=list)
    counts: list[str] = field(default_factory=list)  # "promotion", "rollback", "analysis:<verdict>"


def _seconds(text: str) -> float:
    return parse_duration(text)


def schedule(spec: RolloutSpec) -> list[int]:
    """Canary weights step by step; the step after the last one is promotion (weight 100).

    Immediate has no steps; an A/B test has one, its fixed split, which it leaves only by hand.
    """
    if spec.strategy is RolloutStrategy.AB_TEST:
        return [spec.ab_test.weight]
    if spec.strategy is RolloutStrategy.IMMEDIATE:
        return []
    return [s.weight for s in spec.steps]


def step_weight(spec: RolloutSpec, step: int) -> int:
    weights = schedule(spec)
    return weights[step] if step < len(weights) else 100


def promoting(spec: RolloutSpec, state: RolloutStatus) -> bool:
    return state.step >= len(schedule(spec))


def analysed(spec: RolloutSpec, state: RolloutStatus) -> bool:
    """Analysis runs at every step of a Canary and throughout an A/B test; never while promoting."""
    return spec.strategy is not RolloutStrategy.IMMEDIATE and not promoting(spec, state)


def analysis_window(state: RolloutStatus | None, spec: RolloutSpec, now: datetime) -> float | None:
    """Seconds of samples to analyse now, or None when no analysis is due.

    Due one interval after the weight took effect, then every interval; the window never reaches back
    before the weight took effect, so samples of the previous weight are never judged.
    """
    if state is None or state.phase is not RolloutPhase.PROGRESSING or state.step_started_at is None:
        return None
    if not analysed(spec, state):
        return None
    interval = _seconds(spec.analysis.interval)
    since = max(state.step_started_at, state.last_analysis_at or state.step_started_at)
    if (now - since).total_seconds() < interval:
        return None
    return min(interval, (now - state.step_started_at).total_seconds())


def seconds_until_due(state: RolloutStatus | None, spec: RolloutSpec, now: datetime) -> float | None:
    """When the next analysis is due (for the timer to sleep until), or None if none is pending."""
    if state is None or state.phase is not RolloutPhase.PROGRESSING or state.step_started_at is None:
        return None
    if not analysed(spec, state):
        return None
    since = max(state.step_started_at, state.last_analysis_at or state.step_started_at)
    return max(0.0, _seconds(spec.analysis.interval) - (now - since).total_seconds())


def _new(obs: Observation, message: str) -> RolloutStatus:
    return RolloutStatus(
        phase=RolloutPhase.PROGRESSING,
        version=obs.desired,
        stable_version=obs.stable,
        strategy=obs.spec.strategy.value,
        step=0,
        weight=step_weight(obs.spec, 0),
        actual_weight=0,
        started_at=obs.now,
        conclusive_at=obs.now,
        message=message,
    )


def _record(state: RolloutStatus, obs: Observation, result: str) -> RolloutStatus:
    assert obs.action is not None
    return state.model_copy(
        update={"last_action": RolloutAction(action=obs.action, time=obs.now, result=result)}
    )


def _rollback(state: RolloutStatus, obs: Observation, why: str, decision: Decision) -> RolloutStatus:
    decision.events.append(
        Event("Warning", "RolledBack", f"rolled back {state.version} to {obs.stable}: {why}")
    )
    decision.counts.append("rollback")
    return state.model_copy(
        update={
            "phase": RolloutPhase.ROLLED_BACK,
            "weight": 0,
            "actual_weight": 0,
            "canary_replicas": 0,
            "canary_max_replicas": None,
            "rejected_version": state.version,
            "message": f"rolled back: {why}",
        }
    )


def _manual(state: RolloutStatus | None, obs: Observation, decision: Decision) -> RolloutStatus | None:
    """Apply a rollout-action annotation; every action is recorded in status with what it did."""
    action = obs.action
    in_flight = state is not None and state.phase in IN_FLIGHT and state.version == obs.desired
    if state is not None and action == "retry" and state.phase in REJECTED and state.version == obs.desired:
        fresh = _new(obs, f"retrying {obs.desired} by hand")
        decision.events.append(Event("Normal", "RolloutRetried", f"retrying the rollout of {obs.desired}"))
        return _record(fresh, obs, "retrying from step 0")
    if state is None or not in_flight:
        if state is None:
            return None  # nothing to record it in; the handler reports it
        return _record(state, obs, f"ignored: no rollout of {obs.desired} in progress")
    if action == "promote":
        decision.events.append(Event("Normal", "PromotionRequested", f"promoting {state.version} by hand"))
        last = len(schedule(obs.spec))
        promoted = state.model_copy(
            update={
                "phase": RolloutPhase.PROGRESSING,
                "step": last,
                "weight": step_weight(obs.spec, last),
                "step_started_at": None,
                "message": "promotion requested by hand",
                "paused_reason": "",
            }
        )
        return _record(promoted, obs, "promoting")
    if action == "abort":
        decision.events.append(
            Event("Warning", "RolloutAborted", f"rollout of {state.version} aborted by hand")
        )
        aborted = state.model_copy(
            update={
                "phase": RolloutPhase.ABORTED,
                "weight": 0,
                "actual_weight": 0,
                "canary_replicas": 0,
                "canary_max_replicas": None,
                "rejected_version": state.version,
                "message": "aborted by hand: all traffic back to stable",
            }
        )
        return _record(aborted, obs, "aborted")
    if action == "pause":
        if state.phase is RolloutPhase.PAUSED:
            return _record(state, obs, "already paused")
        decision.events.append(Event("Normal", "RolloutPaused", f"rollout of {state.version} paused by hand"))
        paused = state.model_copy(update={"phase": RolloutPhase.PAUSED, "paused_reason": "paused by hand"})
        return _record(paused, obs, "paused")
    if action == "resume":
        if state.phase is not RolloutPhase.PAUSED:
            return _record(state, obs, "ignored: not paused")
        decision.events.append(Event("Normal", "RolloutResumed", f"rollout of {state.version} resumed"))
        resumed = state.model_copy(
            update={"phase": RolloutPhase.PROGRESSING, "paused_reason": "", "conclusive_at": obs.now}
        )
        return _record(resumed, obs, "resumed")
    return _record(state, obs, f"ignored: unknown action (one of {', '.join(ACTIONS)})")


def _plan(state: RolloutStatus, obs: Observation) -> tuple[capacity.Plan, bool]:
    """This tick's replicas at the state's weight, and whether that weight has taken effect."""
    c, weight = obs.capacity, state.weight
    if c.max_replicas is not None:
        plan = capacity.hpa_bounds(c.replicas, c.max_replicas, weight, obs.canary_ready)
        final = capacity.hpa_bounds(c.replicas, c.max_replicas, weight, plan.canary)
        return plan, obs.canary_ready >= final.canary and plan.stable == final.stable
    plan = capacity.replicas(c.replicas, weight, c.surge, obs.canary_ready)
    final = capacity.target(c.replicas, weight, c.surge)
    # At 100 % the canary having every replica Ready is enough: stable's last pods keep serving until
    # promotion prunes them, which is what "traffic moved, then the old version goes" means.
    stable_ready = None if obs.gateway or weight >= 100 else obs.stable_ready
    return plan, plan.settled(final, obs.canary_ready, stable_ready)


def _capacity(state: RolloutStatus, obs: Observation) -> tuple[RolloutStatus, bool]:
    plan, settled = _plan(state, obs)
    if obs.gateway:
        final_canary = max(plan.canary, 1)
        actual = round(state.weight * min(1.0, obs.canary_ready / final_canary)) if state.weight else 0
    else:
        actual = capacity.actual_weight(obs.stable_ready, obs.canary_ready)
    update = {
        "stable_replicas": plan.stable,
        "canary_replicas": plan.canary,
        "stable_max_replicas": plan.stable_max,
        "canary_max_replicas": plan.canary_max,
        "actual_weight": actual,
    }
    return state.model_copy(update=update), settled


def _analyse(state: RolloutStatus, obs: Observation, decision: Decision) -> RolloutStatus:
    """Fold this tick's analysis into the state: the step clock, failures, stalls, the next step."""
    spec, now = obs.spec, obs.now
    result = obs.analysis
    if result is not None and state.step_started_at is not None:
        decision.counts.append(f"analysis:{result.verdict.value}")
        update: dict[str, object] = {"last_analysis": result, "last_analysis_at": now}
        if result.verdict is Verdict.PASS:
            update |= {
                "consecutive_failures": 0,
                "conclusive_at": now,
                "step_progress_seconds": state.step_progress_seconds + result.window_seconds,
                "message": f"step {state.step + 1}: analysis passed",
            }
        elif result.verdict is Verdict.FAIL:
            update |= {
                "consecutive_failures": state.consecutive_failures + 1,
                "conclusive_at": now,
                "message": f"step {state.step + 1}: analysis failed: {result.message}",
            }
        else:
            update["message"] = f"step {state.step + 1}: inconclusive ({result.reason}): {result.message}"
        state = state.model_copy(update=update)
        limit = spec.analysis.failure_limit
        if state.consecutive_failures >= limit and spec.strategy is RolloutStrategy.CANARY:
            why = f"{state.consecutive_failures} consecutive failed analyses: {result.message}"
            return _rollback(state, obs, why, decision)
    stalled_for = (now - (state.conclusive_at or now)).total_seconds()
    if spec.strategy is RolloutStrategy.CANARY and stalled_for >= _seconds(spec.analysis.stall_timeout):
        why = f"no conclusive analysis for {stalled_for:.0f}s at step {state.step + 1}"
        if spec.analysis.on_stall is StallAction.ROLLBACK:
            return _rollback(state, obs, why, decision)
        decision.events.append(Event("Warning", "RolloutStalled", f"{state.version}: {why}; holding"))
        return state.model_copy(update={"phase": RolloutPhase.PAUSED, "paused_reason": f"stalled: {why}"})
    if spec.strategy is RolloutStrategy.CANARY and state.step_started_at is not None:
        pause = _seconds(spec.steps[state.step].pause)
        if state.step_progress_seconds >= pause:
            nxt = state.step + 1
            decision.events.append(
                Event(
                    "Normal",
                    "RolloutStep",
                    f"{state.version}: step {nxt + 1}, weight {step_weight(spec, nxt)}%",
                )
            )
            return state.model_copy(
                update={
                    "step": nxt,
                    "weight": step_weight(spec, nxt),
                    "step_started_at": None,
                    "step_progress_seconds": 0.0,
                    "conclusive_at": now,
                    "message": f"step {nxt + 1}: moving to weight {step_weight(spec, nxt)}%",
                }
            )
    return state


def _progress(state: RolloutStatus, obs: Observation, decision: Decision) -> RolloutStatus:
    state, settled = _capacity(state, obs)
    if state.phase is not RolloutPhase.PROGRESSING:
        return state
    if settled and state.step_started_at is None:
        state = state.model_copy(update={"step_started_at": obs.now, "conclusive_at": obs.now})
    if promoting(obs.spec, state):
        if settled:
            decision.promote = True
            decision.counts.append("promotion")
            decision.events.append(Event("Normal", "Promoted", f"{state.version} is now stable"))
            return state.model_copy(
                update={
                    "phase": RolloutPhase.PROMOTED,
                    "message": f"promoted {state.version}; {obs.stable} scales down and is removed",
                }
            )
        waiting = f"promoting: waiting for {state.version}'s replicas to take all traffic"
        return state.model_copy(update={"message": waiting})
    if state.step_started_at is None:
        waiting = f"step {state.step + 1}: waiting for {state.version}'s replicas to be Ready"
        return _analyse(state.model_copy(update={"message": waiting}), obs, decision)
    return _analyse(state, obs, decision)


def step(state: RolloutStatus | None, obs: Observation) -> Decision:
    """The next rollout state for what ``obs`` shows; see the module docstring."""
    decision = Decision(state)
    if obs.action is not None:
        state = _manual(state, obs, decision)
    if obs.desired == obs.stable:
        if state is not None and state.phase in IN_FLIGHT:
            decision.events.append(
                Event("Normal", "RolloutAborted", f"spec.model.version is back to {obs.stable}")
            )
            state = state.model_copy(
                update={
                    "phase": RolloutPhase.ABORTED,
                    "weight": 0,
                    "actual_weight": 0,
                    "canary_replicas": 0,
                    "message": f"spec.model.version is back to the stable {obs.stable}",
                }
            )
        decision.rollout = state
        return decision
    if state is None or state.version != obs.desired:
        if state is not None and state.phase in IN_FLIGHT:
            decision.events.append(
                Event("Normal", "RolloutSuperseded", f"rollout of {state.version} dropped for {obs.desired}")
            )
        why = f"new version {obs.desired}: starting from step 1 against stable {obs.stable}"
        decision.events.append(Event("Normal", "RolloutStarted", why))
        state = _new(obs, why)
    if state.phase in REJECTED or state.phase is RolloutPhase.PROMOTED:
        decision.rollout = state
        return decision
    decision.rollout = _progress(state, obs, decision)
    return decision
