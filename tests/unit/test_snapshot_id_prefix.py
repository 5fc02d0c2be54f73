"""Snapshot IDs accept an unambiguous prefix, as git does with commits."""

from __future__ import annotations

import pytest

from codepilot_operator.snapshots.errors import FailureReason, SnapshotError
from codepilot_operator.snapshots.manifest import AmbiguousPrefix, is_id_prefix, resolve_id_prefix

A = "ab12" + "0" * 60
B = "ab34" + "1" * 60
C = "cd56" + "2" * 60


def test_unique_prefixes_and_full_ids() -> None:
    assert resolve_id_prefix("ab12", [A, B, C]) == A
    assert resolve_id_prefix("cd5622", [A, B, C]) == C
    assert resolve_id_prefix(A, [A, B, C]) == A


def test_an_ambiguous_prefix_lists_the_candidates() -> None:
    with pytest.raises(AmbiguousPrefix) as caught:
        resolve_id_prefix("ab", [A, B, C, A])
    assert str(caught.value) == "snapshot ID prefix 'ab' is too short: give at least 4"
    twins = ["abcd" + "0" * 60, "abcd" + "1" * 60]
    with pytest.raises(AmbiguousPrefix) as caught:
        resolve_id_prefix("abcd", twins)
    assert str(caught.value) == "snapshot ID prefix 'abcd' is ambiguous: abcd00000000, abcd11111111"


def test_no_match_is_a_missing_snapshot() -> None:
    with pytest.raises(SnapshotError) as caught:
        resolve_id_prefix("ef01", [A, B])
    assert caught.value.reason is FailureReason.INVALID_SNAPSHOT
    assert caught.value.exit_code == 4


@pytest.mark.parametrize(("text", "expected"), [("ab12", True), ("AB12", False), ("xyz", False), (A, False)])
def test_what_counts_as_a_prefix(text: str, expected: bool) -> None:
    assert is_id_prefix(text) is expected
