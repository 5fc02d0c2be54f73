"""Retention is a pure decision: pins always survive, then the newest N, then anything young enough."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from itertools import pairwise

from hypothesis import given
from hypothesis import strategies as st

from codepilot_operator.snapshots.retention import RetentionPolicy, SnapshotAge, decide

NOW = datetime(2026, 6, 1, tzinfo=UTC)


def _ages(*days_old: float) -> list[SnapshotAge]:
    return [SnapshotAge(f"s{i}", NOW - timedelta(days=d)) for i, d in enumerate(days_old)]


def test_defaults_keep_five_newest_and_a_week() -> None:
    snapshots = _ages(1, 2, 3, 4, 5, 6, 8, 9, 10, 30)
    decision = decide(snapshots, [], RetentionPolicy(), NOW)
    assert sorted(decision.delete) == ["s6", "s7", "s8", "s9"]  # over a week old, not among the newest 5
    assert decision.keep["s5"] == ["younger than maxAge"]  # 6th newest, 6 days old
    assert decision.keep["s0"] == ["newest 5", "younger than maxAge"]


def test_the_max_age_boundary_is_exclusive() -> None:
    decision = decide(_ages(7, 7.001, 6.999), [], RetentionPolicy(keep_last=0), NOW)
    assert sorted(decision.delete) == ["s0", "s1"] and list(decision.keep) == ["s2"]


def test_pinned_snapshots_are_never_deleted() -> None:
    decision = decide(_ages(100, 200), ["s1", None], RetentionPolicy(keep_last=0, max_age=timedelta(0)), NOW)
    assert decision.delete == ["s0"] and decision.keep == {"s1": ["pinned"]}


def test_moving_the_clock_only_ever_deletes_more() -> None:
    snapshots = _ages(0, 1, 2, 3, 4, 5, 6, 7)
    policy = RetentionPolicy(keep_last=2, max_age=timedelta(days=3))
    deleted = [set(decide(snapshots, ["s7"], policy, NOW + timedelta(days=d)).delete) for d in range(10)]
    assert all(a <= b for a, b in pairwise(deleted))
    assert deleted[-1] == {"s2", "s3", "s4", "s5", "s6"}  # newest 2 and the pin remain


@given(
    st.lists(st.integers(0, 10_000), min_size=0, max_size=30, unique=True),
    st.sets(st.integers(0, 40)),
    st.integers(0, 10),
    st.integers(0, 10_000),
)
def test_invariants(hours_old: list[int], pins: set[int], keep_last: int, max_age_hours: int) -> None:
    snapshots = [SnapshotAge(f"s{i}", NOW - timedelta(hours=h)) for i, h in enumerate(hours_old)]
    pinned = {f"s{i}" for i in pins}
    policy = RetentionPolicy(keep_last, timedelta(hours=max_age_hours))
    decision = decide(snapshots, pinned, policy, NOW)
    ids = {s.id for s in snapshots}
    assert set(decision.keep) | set(decision.delete) == ids and not set(decision.keep) & set(decision.delete)
    assert not pinned & set(decision.delete)
    assert len(decision.keep) >= min(keep_last, len(snapshots))
    for snapshot in snapshots:
        if snapshot.id in decision.delete:
            assert NOW - snapshot.created >= policy.max_age
