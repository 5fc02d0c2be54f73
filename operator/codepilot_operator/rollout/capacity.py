"""How many replicas each version runs while traffic moves, so a rollout needs no GPU beyond the surge.

The canary's replicas come out of the stable count: at weight ``w`` of ``N`` replicas the canary gets
``round(N * w / 100)`` (at least one) and stable the rest (at least one until promotion). Stable replicas
are removed only once canary replicas are Ready to replace them, so serving capacity never drops, and
the canary only grows as far as ``N + maxSurge`` allows. Each reconcile recomputes the plan from what is
Ready, so capacity moves one surge at a time: with ``maxSurge: 1`` a 4-replica rollout to 100 % goes
5 -> 5 -> 5 -> 4 replicas, never fewer than 4 Ready.

With an HPA the replica count is the HPA's to decide; the plan then scales each version's HPA bounds by
its share of traffic (both HPAs see the same per-pod load, because traffic splits across all Ready
pods, so they scale together), and stable's minimum stays at what is still needed until the canary's
replicas are Ready.
"""

from __future__ import annotations

import math
from dataclasses import dataclass


@dataclass(frozen=True)
class Plan:
    stable: int  # replicas (or, with an HPA, minReplicas)
    canary: int
    stable_max: int | None = None  # HPA maxReplicas (None without an HPA)
    canary_max: int | None = None

    def settled(self, final: Plan, canary_ready: int, stable_ready: int | None = None) -> bool:
        """The weight took effect: the plan reached its target and the canary's replicas are Ready.

        ``stable_ready`` matters where the split follows Ready pods (no Gateway): stable replicas that
        are still Ready would still take their old share.
        """
        reached = self.stable == final.stable and self.canary == final.canary and canary_ready >= final.canary
        return reached and (stable_ready is None or stable_ready <= final.stable)


def canary_share(total: int, weight: int) -> int:
    if weight <= 0:
        return 0
    if weight >= 100:
        return total
    return min(max(1, round(total * weight / 100)), max(total - 1, 1))


def target(total: int, weight: int, surge: int) -> Plan:
    """Where capacity ends up at ``weight`` once every replica is Ready."""
    canary = canary_share(total, weight)
    stable = 0 if weight >= 100 else max(1, total - canary)
    canary = min(canary, total + surge - stable) if weight < 100 else canary
    return Plan(stable, max(canary, 0))


def replicas(total: int, weight: int, surge: int, canary_ready: int) -> Plan:
    """This reconcile's replica counts toward :func:`target`, never dropping below ``total`` Ready.

    With ``surge`` 0 one stable replica is given up before the first canary replica is Ready (there is
    no room otherwise); the API refuses ``maxSurge: 0`` with a single replica.
    """
    final = target(total, weight, surge)
    floor = total - canary_ready - (1 if surge == 0 and canary_ready < final.canary else 0)
    stable = max(final.stable, min(total, floor))
    canary = max(0, min(final.canary, total + surge - stable))
    return Plan(stable, canary)


def hpa_bounds(min_replicas: int, max_replicas: int, weight: int, canary_ready: int) -> Plan:
    """Each version's HPA bounds at ``weight``: shares of the spec's bounds, stable's min held up until
    the canary's minimum is Ready."""
    share = weight / 100
    canary_min = 0 if weight <= 0 else max(1, math.ceil(min_replicas * share))
    canary_max = 0 if weight <= 0 else max(canary_min, math.ceil(max_replicas * share))
    if weight >= 100:
        stable_min = max(0, min_replicas - canary_ready)
        return Plan(stable_min, canary_min, max(stable_min, 1) if stable_min else 1, canary_max)
    stable_min = max(1, math.floor(min_replicas * (1 - share)), min_replicas - canary_ready)
    stable_max = max(stable_min, math.ceil(max_replicas * (1 - share)))
    return Plan(min(stable_min, min_replicas), canary_min, stable_max, canary_max)


def actual_weight(stable_ready: int, canary_ready: int) -> int:
    """The percent of requests the canary gets behind a Service that spreads them over Ready pods."""
    total = stable_ready + canary_ready
    return round(100 * canary_ready / total) if total else 0
