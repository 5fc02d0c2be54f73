"""Verdicts of one analysis interval: noise never decides, numbers and thresholds are always shown."""

from __future__ import annotations

import math
from datetime import UTC, datetime

import pytest

from codepilot_operator.api.status import Verdict
from codepilot_operator.rollout.analysis import (
    Counters,
    Thresholds,
    judge,
    over_limit_p,
    unreachable,
    worse_than_stable_p,
)
from codepilot_operator.rollout.capacity import actual_weight, hpa_bounds, replicas, target

NOW = datetime(2026, 12, 1, tzinfo=UTC)
T = Thresholds(
    max_error_rate=0.01, significance=0.05, max_latency_ratio=1.2, max_latency_seconds=1.0, min_requests=20
)


def counters(
    requests: float, errors: float = 0, latency_s: float = 0.1, ttft: float | None = None
) -> Counters:
    success = requests - errors
    return Counters(success, errors, success * latency_s * 1e6, success * 0.01 * 1e6, ttft)


def test_too_few_requests_is_no_traffic_not_a_pass() -> None:
    result = judge(counters(5, errors=5), counters(500), T, now=NOW, window_seconds=60)
    assert (result.verdict, result.reason) == (Verdict.INCONCLUSIVE, "NoTraffic")
    assert "5 requests" in result.message and result.canary is not None and result.canary.requests == 5


def test_many_errors_significantly_worse_than_stable_fail_with_numbers() -> None:
    result = judge(counters(400, errors=40), counters(4000, errors=8), T, now=NOW, window_seconds=60)
    assert (result.verdict, result.reason) == (Verdict.FAIL, "ErrorRate")
    assert "10.00% > 1.00%" in result.failures[0] and "stable 0.20%" in result.failures[0]
    assert result.thresholds["maxErrorRate"] == 0.01 and result.stable is not None


def test_an_error_ratio_over_the_limit_in_a_small_sample_is_not_judged() -> None:
    # 1 error in 25 requests is 4 % > 1 %, but stable errs just as often: noise, not a verdict
    result = judge(counters(25, errors=1), counters(1000, errors=40), T, now=NOW, window_seconds=60)
    assert (result.verdict, result.reason) == (Verdict.INCONCLUSIVE, "NotSignificant")
    assert "not significant" in result.message


def test_errors_are_judged_against_the_limit_when_stable_has_no_traffic() -> None:
    assert judge(counters(1000, errors=100), None, T, now=NOW, window_seconds=60).verdict is Verdict.FAIL
    assert judge(counters(1000, errors=5), None, T, now=NOW, window_seconds=60).verdict is Verdict.PASS


def test_latency_over_the_ratio_or_the_absolute_limit_fails() -> None:
    slow = judge(counters(100, latency_s=0.5), counters(1000, latency_s=0.2), T, now=NOW, window_seconds=60)
    assert slow.verdict is Verdict.FAIL and "2.50x" in slow.message
    too_slow = judge(
        counters(100, latency_s=1.5), counters(1000, latency_s=1.4), T, now=NOW, window_seconds=60
    )
    assert too_slow.verdict is Verdict.FAIL and "> 1s" in too_slow.message
    fine = judge(counters(100, latency_s=0.21), counters(1000, latency_s=0.2), T, now=NOW, window_seconds=60)
    assert fine.verdict is Verdict.PASS and fine.canary is not None
    assert fine.canary.mean_latency_seconds == pytest.approx(0.21)


def test_time_to_first_response_is_compared_when_both_export_it() -> None:
    result = judge(counters(100, ttft=0.9), counters(1000, ttft=0.3), T, now=NOW, window_seconds=60)
    assert result.verdict is Verdict.FAIL and result.reason == "TimeToFirstResponse"
    assert (
        judge(counters(100, ttft=0.9), counters(1000), T, now=NOW, window_seconds=60).verdict is Verdict.PASS
    )


def test_nan_or_nothing_from_prometheus_is_inconclusive() -> None:
    nan = Counters(math.nan, 0, 0, 0)
    assert judge(nan, counters(100), T, now=NOW, window_seconds=60).reason == "NoData"
    assert judge(None, counters(100), T, now=NOW, window_seconds=60).reason == "NoData"
    down = unreachable(T, now=NOW, error="connection refused")
    assert (down.verdict, down.reason) == (Verdict.INCONCLUSIVE, "PrometheusUnreachable")


def test_significance_tests() -> None:
    assert worse_than_stable_p(counters(1000, errors=50), counters(1000, errors=10)) < 0.001
    assert worse_than_stable_p(counters(1000, errors=10), counters(1000, errors=10)) == pytest.approx(0.5)
    assert over_limit_p(counters(1000, errors=30), 0.01) < 0.001
    assert over_limit_p(counters(100, errors=2), 0.01) > 0.05


@pytest.mark.parametrize("total", [1, 2, 3, 4, 8])
@pytest.mark.parametrize("surge", [1, 2])
def test_replica_plan_keeps_capacity_and_respects_the_surge(total: int, surge: int) -> None:
    for weight in (10, 25, 50, 100):
        final = target(total, weight, surge)
        canary_ready = 0
        for _ in range(2 * total + 4):
            plan = replicas(total, weight, surge, canary_ready)
            assert plan.stable + plan.canary <= total + surge
            assert plan.stable + min(canary_ready, plan.canary) >= total  # Ready capacity never drops
            canary_ready = min(plan.canary, canary_ready + 1)
        assert plan == final and (weight == 100 or final.stable >= 1)


def test_hpa_bounds_follow_the_share_and_hold_stable_until_the_canary_is_ready() -> None:
    plan = hpa_bounds(4, 10, 25, canary_ready=0)
    assert (plan.canary, plan.canary_max) == (1, 3) and plan.stable == 4
    assert hpa_bounds(4, 10, 25, canary_ready=1).stable == 3
    assert actual_weight(3, 1) == 25 and actual_weight(0, 0) == 0
