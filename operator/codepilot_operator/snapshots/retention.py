"""Which snapshots to keep: a pure decision over (snapshots, pins, policy, now).

Keep a snapshot if any rule holds: pinned by a track in status (stable or canary, never deleted), among
the newest ``keep_last``, or younger than ``max_age`` (the users' backup policy). Everything else goes.
``now`` is a parameter so tests move time instead of sleeping.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

DEFAULT_KEEP_LAST = 5
DEFAULT_MAX_AGE = timedelta(days=7)


@dataclass(frozen=True)
class SnapshotAge:
    id: str
    created: datetime


@dataclass(frozen=True)
class RetentionPolicy:
    keep_last: int = DEFAULT_KEEP_LAST
    max_age: timedelta = DEFAULT_MAX_AGE


@dataclass(frozen=True)
class RetentionDecision:
    keep: dict[str, list[str]] = field(default_factory=dict)  # id -> why (one or more rules)
    delete: list[str] = field(default_factory=list)


def decide(
    snapshots: Sequence[SnapshotAge], pinned: Iterable[str | None], policy: RetentionPolicy, now: datetime
) -> RetentionDecision:
    pins = {pin for pin in pinned if pin}
    newest_first = sorted(snapshots, key=lambda s: (s.created, s.id), reverse=True)
    keep: dict[str, list[str]] = {}
    delete: list[str] = []
    for rank, snapshot in enumerate(newest_first):
        reasons = []
        if snapshot.id in pins:
            reasons.append("pinned")
        if rank < policy.keep_last:
            reasons.append(f"newest {policy.keep_last}")
        if now - snapshot.created < policy.max_age:
            reasons.append("younger than maxAge")
        if reasons:
            keep[snapshot.id] = reasons
        else:
            delete.append(snapshot.id)
    return RetentionDecision(keep=keep, delete=delete)
