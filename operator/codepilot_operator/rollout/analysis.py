"""The verdict of one analysis interval: the canary judged against stable, from Triton's counters.

Two rules keep a small sample's noise from deciding anything:
- fewer than ``minRequests`` canary requests is *inconclusive* (no traffic), never a pass;
- errors fail the canary only when its error ratio is over ``maxErrorRate`` AND significantly worse than
  stable's on the same window (a one-sided two-proportion z-test on the counter increases, p below
  ``significance``). Over the limit but not significant is inconclusive: the next interval adds data.
Latency has no such test (Triton exports sums, so only means are known): the canary fails when its mean
latency is over the absolute limit, or over ``maxLatencyRatio`` times stable's, and likewise for the
95th percentile of time to first response where Triton exports that histogram.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import datetime

from codepilot_operator.api.status import AnalysisResult, Verdict, VersionSample

NO_TRAFFIC = "NoTraffic"
PROMETHEUS_UNREACHABLE = "PrometheusUnreachable"
NO_DATA = "NoData"
NOT_SIGNIFICANT = "NotSignificant"
ERROR_RATE = "ErrorRate"
LATENCY = "Latency"
TIME_TO_FIRST_RESPONSE = "TimeToFirstResponse"
PASSED = "WithinThresholds"


@dataclass(frozen=True)
class Counters:
    """Increases of one version's Triton counters over the window (client cancellations excluded)."""

    success: float
    failure: float
    duration_us: float  # nv_inference_request_duration_us, summed over successful requests
    queue_us: float
    ttft_p95_seconds: float | None = None  # from nv_inference_first_response_histogram_ms, if exported

    @property
    def requests(self) -> float:
        return self.success + self.failure

    def valid(self) -> bool:
        values = (self.success, self.failure, self.duration_us, self.queue_us)
        return all(math.isfinite(v) and v >= 0 for v in values)

    def sample(self) -> VersionSample:
        return VersionSample(
            requests=round(self.requests, 3),
            errors=round(self.failure, 3),
            error_ratio=_ratio(self.failure, self.requests),
            mean_latency_seconds=_mean_seconds(self.duration_us, self.success),
            mean_queue_seconds=_mean_seconds(self.queue_us, self.success),
            ttft_p95_seconds=self.ttft_p95_seconds if _finite(self.ttft_p95_seconds) else None,
        )


@dataclass(frozen=True)
class Thresholds:
    max_error_rate: float
    significance: float
    max_latency_ratio: float
    max_latency_seconds: float
    min_requests: int

    def as_dict(self) -> dict[str, float]:
        return {
            "maxErrorRate": self.max_error_rate,
            "significance": self.significance,
            "maxLatencyRatio": self.max_latency_ratio,
            "maxLatencySeconds": self.max_latency_seconds,
            "minRequests": float(self.min_requests),
        }


@dataclass
class _Findings:
    failures: list[str] = field(default_factory=list)
    reasons: list[str] = field(default_factory=list)
    inconclusive: str = ""
    note: str = ""


def _finite(value: float | None) -> bool:
    return value is not None and math.isfinite(value)


def _ratio(part: float, whole: float) -> float | None:
    return round(part / whole, 6) if whole > 0 else None


def _mean_seconds(total_us: float, count: float) -> float | None:
    return round(total_us / count / 1e6, 6) if count > 0 else None


def upper_tail(z: float) -> float:
    """P(Z >= z) for a standard normal Z."""
    return 0.5 * math.erfc(z / math.sqrt(2.0))


def worse_than_stable_p(canary: Counters, stable: Counters) -> float:
    """p-value of "the canary's error ratio is higher than stable's" (one-sided two-proportion z-test)."""
    n1, n2 = canary.requests, stable.requests
    p1, p2 = canary.failure / n1, stable.failure / n2
    pooled = (canary.failure + stable.failure) / (n1 + n2)
    se = math.sqrt(pooled * (1 - pooled) * (1 / n1 + 1 / n2))
    if se == 0:
        return 0.0 if p1 > p2 else 1.0
    return upper_tail((p1 - p2) / se)


def over_limit_p(canary: Counters, limit: float) -> float:
    """p-value of "the canary's error ratio is above ``limit``" (one-sample z-test), for want of stable."""
    n, p = canary.requests, canary.failure / canary.requests
    if limit <= 0:
        return 0.0 if p > 0 else 1.0
    se = math.sqrt(limit * (1 - limit) / n)
    return upper_tail((p - limit) / se) if se > 0 else (0.0 if p > limit else 1.0)


def _errors(canary: Counters, stable: Counters | None, t: Thresholds, out: _Findings) -> None:
    ratio = canary.failure / canary.requests
    if ratio <= t.max_error_rate:
        return
    comparable = stable is not None and stable.requests >= max(t.min_requests, 1)
    if comparable and stable is not None:
        p = worse_than_stable_p(canary, stable)
        against = f"stable {stable.failure / stable.requests:.2%}"
    else:
        p = over_limit_p(canary, t.max_error_rate)
        against = "no stable traffic to compare with"
    detail = f"error ratio {ratio:.2%} > {t.max_error_rate:.2%} ({against}, p={p:.3g})"
    if p < t.significance:
        out.failures.append(detail)
        out.reasons.append(ERROR_RATE)
    else:
        out.inconclusive = out.inconclusive or NOT_SIGNIFICANT
        out.note = f"{detail}: not significant at {t.significance:g}, more data needed"


def _latency(canary: Counters, stable: Counters | None, t: Thresholds, out: _Findings) -> None:
    mean = _mean_seconds(canary.duration_us, canary.success)
    if mean is None:
        return
    if mean > t.max_latency_seconds:
        out.failures.append(f"mean latency {mean:.3f}s > {t.max_latency_seconds:g}s")
        out.reasons.append(LATENCY)
    stable_mean = _mean_seconds(stable.duration_us, stable.success) if stable is not None else None
    if stable is not None and stable.requests >= max(t.min_requests, 1) and stable_mean:
        ratio = mean / stable_mean
        if ratio > t.max_latency_ratio:
            out.failures.append(
                f"mean latency {mean:.3f}s is {ratio:.2f}x stable's {stable_mean:.3f}s "
                f"> {t.max_latency_ratio:g}x"
            )
            out.reasons.append(LATENCY)
    first, base = canary.ttft_p95_seconds, stable.ttft_p95_seconds if stable is not None else None
    if _finite(first) and _finite(base) and base and first is not None:
        ratio = first / base
        if ratio > t.max_latency_ratio:
            out.failures.append(
                f"p95 time to first response {first:.3f}s is {ratio:.2f}x stable's {base:.3f}s "
                f"> {t.max_latency_ratio:g}x"
            )
            out.reasons.append(TIME_TO_FIRST_RESPONSE)


def judge(
    canary: Counters | None,
    stable: Counters | None,
    thresholds: Thresholds,
    *,
    now: datetime,
    window_seconds: float,
) -> AnalysisResult:
    """The verdict of one interval; ``canary`` None means Prometheus gave no usable answer."""

    def result(
        verdict: Verdict, reason: str, message: str, failures: list[str] | None = None
    ) -> AnalysisResult:
        return AnalysisResult(
            time=now,
            verdict=verdict,
            reason=reason,
            message=message,
            window_seconds=round(window_seconds, 3),
            canary=canary.sample() if canary is not None and canary.valid() else None,
            stable=stable.sample() if stable is not None and stable.valid() else None,
            thresholds=thresholds.as_dict(),
            failures=failures or [],
        )

    if canary is None:
        return result(Verdict.INCONCLUSIVE, NO_DATA, "Prometheus returned no canary series for the window")
    if not canary.valid():
        return result(Verdict.INCONCLUSIVE, NO_DATA, "Prometheus returned NaN or negative counter increases")
    if canary.requests < max(thresholds.min_requests, 1):
        return result(
            Verdict.INCONCLUSIVE,
            NO_TRAFFIC,
            f"the canary served {canary.requests:.0f} requests in {window_seconds:.0f}s, "
            f"fewer than minRequests {thresholds.min_requests}",
        )
    stable = stable if stable is not None and stable.valid() else None
    findings = _Findings()
    _errors(canary, stable, thresholds, findings)
    _latency(canary, stable, thresholds, findings)
    if findings.failures:
        return result(Verdict.FAIL, findings.reasons[0], "; ".join(findings.failures), findings.failures)
    if findings.inconclusive:
        return result(Verdict.INCONCLUSIVE, findings.inconclusive, findings.note)
    return result(Verdict.PASS, PASSED, "canary within every threshold")


def unreachable(thresholds: Thresholds, *, now: datetime, error: str) -> AnalysisResult:
    """Prometheus could not be queried: inconclusive, and status says so (not "no traffic")."""
    return AnalysisResult(
        time=now,
        verdict=Verdict.INCONCLUSIVE,
        reason=PROMETHEUS_UNREACHABLE,
        message=error[:500],
        thresholds=thresholds.as_dict(),
    )
