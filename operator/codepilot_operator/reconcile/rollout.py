"""The rollout inside reconcile: observe the versions' Ready replicas, analyse in Prometheus when an
interval is due, run the pure step, and return what status becomes.

Prometheus is reached only here, and only when the step function says an analysis is due, so an idle
CodePilot costs Prometheus nothing. Which Prometheus: ``spec.rollout.analysis.prometheusUrl``, else the
operator's ``--prometheus-url``; without either every analysis is inconclusive (PrometheusUnreachable,
"no Prometheus URL configured"), so a canary is never promoted unjudged.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from codepilot_operator.api import CodePilot, RolloutStrategy
from codepilot_operator.api.fields import parse_duration
from codepilot_operator.api.status import AnalysisResult, RolloutPhase
from codepilot_operator.clients.codepilots import ACTION_ANNOTATION
from codepilot_operator.clients.prometheus import PrometheusClient, PrometheusUnavailable, by_label
from codepilot_operator.render.deployment import deployment_name
from codepilot_operator.render.rules_common import VERSION
from codepilot_operator.rollout import analysis, queries
from codepilot_operator.rollout.step import (
    Capacity,
    Decision,
    Observation,
    analysis_window,
    seconds_until_due,
    step,
)
from codepilot_operator.rollout.tracks import track_fields

log = logging.getLogger(__name__)
# While pods come up or traffic moves, look again this often: capacity moves one surge per look, so this
# bounds how long a weight change takes (a full reconcile per look, only while a rollout settles).
SETTLING_TICK = 2.0
NO_PROMETHEUS = "no Prometheus URL configured (spec.rollout.analysis.prometheusUrl or --prometheus-url)"

PrometheusFor = Callable[[str], PrometheusClient]


@dataclass
class RolloutOutcome:
    decision: Decision | None
    fields: dict[str, Any]  # status fields (tracks, rollout, stableTemplate)
    action: str | None = None  # the rollout-action annotation that was consumed (to remove)
    next_tick: float | None = None  # seconds until the rollout wants to run again (None: idle)
    notes: list[str] = field(default_factory=list)


def action_of(body: Mapping[str, Any]) -> str | None:
    value = (body.get("metadata", {}).get("annotations") or {}).get(ACTION_ANNOTATION)
    return str(value).strip().lower() if value else None


def ready_replicas(live: Mapping[tuple[str, str], Mapping[str, Any]], name: str) -> int:
    deployment = live.get(("Deployment.apps", name)) or {}
    return int((deployment.get("status") or {}).get("readyReplicas") or 0)


def capacity_of(cp: CodePilot) -> Capacity:
    scaling = cp.spec.autoscaling
    surge = cp.spec.rollout.traffic.max_surge
    if scaling.enabled:
        return Capacity(max(1, scaling.min_replicas), scaling.max_replicas, surge)
    return Capacity(max(1, scaling.min_replicas), None, surge)


def thresholds(cp: CodePilot) -> analysis.Thresholds:
    spec = cp.spec.rollout.analysis
    latency = spec.max_latency or cp.spec.alerts.latency.threshold
    return analysis.Thresholds(
        max_error_rate=spec.max_error_rate,
        significance=spec.significance,
        max_latency_ratio=spec.max_latency_ratio,
        max_latency_seconds=parse_duration(latency),
        min_requests=spec.min_requests,
    )


def prometheus_url(cp: CodePilot, default: str | None) -> str | None:
    return cp.spec.rollout.analysis.prometheus_url or default


async def measure(
    cp: CodePilot, stable: str, canary: str, window: float, client: PrometheusClient, now: datetime
) -> AnalysisResult:
    """Query Triton's counters of both versions over ``window`` seconds ending ``now`` and judge them."""
    limits = thresholds(cp)
    built = queries.analysis_queries(cp.metadata.namespace, cp.metadata.name, [stable, canary], window)
    names = list(built.all())
    try:
        answers = await asyncio.gather(*(client.query(expr, now) for expr in built.all().values()))
    except PrometheusUnavailable as exc:
        return analysis.unreachable(limits, now=now, error=str(exc))
    values = {name: by_label(samples, VERSION) for name, samples in zip(names, answers, strict=True)}

    def counters(version: str) -> analysis.Counters | None:
        if version not in values["success"] and version not in values["failure"]:
            return None
        ttft = values["ttft_p95_seconds"].get(version)
        return analysis.Counters(
            success=values["success"].get(version, 0.0),
            failure=values["failure"].get(version, 0.0),
            duration_us=values["duration_us"].get(version, 0.0),
            queue_us=values["queue_us"].get(version, 0.0),
            ttft_p95_seconds=ttft,
        )

    return analysis.judge(counters(canary), counters(stable), limits, now=now, window_seconds=window)


def _wants_rollout(cp: CodePilot, action: str | None) -> bool:
    stable = cp.status.stable_version or cp.spec.model.version
    rollout = cp.status.rollout
    in_flight = rollout is not None and rollout.phase in (RolloutPhase.PROGRESSING, RolloutPhase.PAUSED)
    return action is not None or stable != cp.spec.model.version or in_flight


async def advance(
    cp: CodePilot,
    body: Mapping[str, Any],
    live: Mapping[tuple[str, str], Mapping[str, Any]],
    *,
    now: datetime,
    prometheus_for: PrometheusFor | None,
    default_prometheus_url: str | None,
) -> RolloutOutcome:
    """One rollout step for ``cp`` (a no-op for a CodePilot with nothing to roll out)."""
    action = action_of(body)
    if not _wants_rollout(cp, action):
        return RolloutOutcome(None, track_fields(cp, None))
    desired = cp.spec.model.version
    stable = cp.status.stable_version or desired
    rollout_spec = cp.spec.rollout
    observed = Observation(
        now=now,
        desired=desired,
        stable=stable,
        spec=rollout_spec,
        capacity=capacity_of(cp),
        canary_ready=ready_replicas(live, deployment_name(cp, desired)),
        stable_ready=ready_replicas(live, deployment_name(cp, stable)),
        gateway=rollout_spec.traffic.gateway is not None,
        action=action,
    )
    state = cp.status.rollout
    # a new version starts from step 1: nothing measured for the old one is judged
    current = None if state is not None and state.version != desired else state
    window = analysis_window(current, rollout_spec, now) if action is None else None
    if window is not None:
        url = prometheus_url(cp, default_prometheus_url)
        if url is None or prometheus_for is None:
            result = analysis.unreachable(thresholds(cp), now=now, error=NO_PROMETHEUS)
        else:
            result = await measure(cp, stable, desired, window, prometheus_for(url), now)
        observed = Observation(**{**observed.__dict__, "analysis": result})
    decision = step(state, observed)
    outcome = RolloutOutcome(decision, track_fields(cp, decision), action=action)
    outcome.next_tick = next_tick(decision, rollout_spec, now)
    return outcome


def next_tick(decision: Decision, spec: Any, now: datetime) -> float | None:
    """When the rollout should run again: the next analysis, or soon while traffic is still moving."""
    state = decision.rollout
    if state is None or decision.promote or state.phase not in (RolloutPhase.PROGRESSING,):
        return None
    due = seconds_until_due(state, spec, now)
    if state.step_started_at is None or spec.strategy is RolloutStrategy.IMMEDIATE:
        return SETTLING_TICK
    return max(1.0, due) if due is not None else SETTLING_TICK
