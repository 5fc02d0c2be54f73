"""Serving alerts: latency, error rate and multi-window multi-burn-rate SLO alerts.

Each alert fires per CodePilot and per served model version (the ``version`` label of the recorded
series): during a canary, a slow canary pages as itself, not as an average diluted by the stable pods.

The burn-rate alerts follow the SRE workbook (chapter "Alerting on SLOs") as Sloth and Pyrra render them:
an alert needs both a long window (the budget really is being spent) and a short window (it is still
being spent now, so the alert resets quickly once the problem is fixed). Burn factors are derived from
the fraction of the error budget a window may consume and the SLO window, so a 30d SLO gets the
workbook's 14.4 / 6 / 3 / 1.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from codepilot_operator.api import CodePilot
from codepilot_operator.api.contract import TRITON_REQUEST_DURATION_US, TRITON_REQUEST_FAILURE
from codepilot_operator.api.fields import parse_duration
from codepilot_operator.render.rules_common import (
    NAMESPACE_T,
    VALUE_DURATION_T,
    VALUE_PERCENT_T,
    VERSION_T,
    alert_rule,
    number,
    prom_duration,
    selector,
)
from codepilot_operator.render.rules_recording import (
    ALERT_WINDOW,
    DASHBOARD_WINDOW,
    error_ratio_series,
    latency_series,
)

LATENCY_ALERT = "CodePilotHighLatency"
ERROR_RATE_ALERT = "CodePilotHighErrorRate"
BURN_ALERT = "CodePilotErrorBudgetBurn"


@dataclass(frozen=True)
class BurnWindow:
    long: str
    short: str
    budget_fraction: float  # share of the whole SLO window's error budget spent within ``long``


@dataclass(frozen=True)
class BurnTier:
    name: str  # page or ticket
    severity: str
    windows: tuple[BurnWindow, ...]


BURN_TIERS = (
    BurnTier("page", "critical", (BurnWindow("1h", "5m", 0.02), BurnWindow("6h", "30m", 0.05))),
    BurnTier("ticket", "warning", (BurnWindow("1d", "2h", 0.10), BurnWindow("3d", "6h", 0.10))),
)


def burn_factor(cp: CodePilot, window: BurnWindow) -> float:
    """How many times faster than "exactly on budget" errors must arrive to spend ``budget_fraction``."""
    slo_seconds = parse_duration(cp.spec.alerts.slo.window)
    return round(window.budget_fraction * slo_seconds / parse_duration(window.long), 6)


def error_budget(cp: CodePilot) -> float:
    objective = cp.spec.alerts.slo.objective
    if objective is None:
        raise ValueError("no SLO objective set")
    return round((100.0 - objective) / 100.0, 10)


def latency_alert(cp: CodePilot) -> dict[str, Any]:
    latency = cp.spec.alerts.latency
    threshold = parse_duration(latency.threshold)
    series = latency_series(ALERT_WINDOW)
    return alert_rule(
        cp,
        LATENCY_ALERT,
        f"{series}{selector(cp)} > {number(threshold)}",
        latency.severity,
        summary=f"CodePilot {cp.metadata.name} version {VERSION_T} answers slower than {latency.threshold}",
        description=(
            f"Mean request latency of model version {VERSION_T} in namespace {NAMESPACE_T} is "
            f"{VALUE_DURATION_T} (threshold {latency.threshold}, for {latency.for_}), from Triton's "
            f"{TRITON_REQUEST_DURATION_US} over {ALERT_WINDOW}."
        ),
        for_=prom_duration(parse_duration(latency.for_)),
    )


def error_rate_alert(cp: CodePilot) -> dict[str, Any]:
    rule = cp.spec.alerts.error_rate
    series = error_ratio_series(DASHBOARD_WINDOW)
    return alert_rule(
        cp,
        ERROR_RATE_ALERT,
        f"{series}{selector(cp)} > {number(rule.threshold)}",
        rule.severity,
        summary=f"CodePilot {cp.metadata.name} version {VERSION_T} fails too many requests",
        description=(
            f"{VALUE_PERCENT_T} of requests to model version {VERSION_T} in namespace {NAMESPACE_T} fail "
            f"(threshold {number(rule.threshold * 100)}%), from Triton's {TRITON_REQUEST_FAILURE} / "
            f"success over {DASHBOARD_WINDOW}, client cancellations excluded."
        ),
        for_=prom_duration(parse_duration(rule.for_)),
    )


def _burn_condition(cp: CodePilot, window: BurnWindow) -> str:
    threshold = f"({number(burn_factor(cp, window))} * {number(error_budget(cp))})"
    sel = selector(cp)
    return (
        f"({error_ratio_series(window.long)}{sel} > {threshold}\n"
        f"and\n{error_ratio_series(window.short)}{sel} > {threshold})"
    )


def burn_alert(cp: CodePilot, tier: BurnTier) -> dict[str, Any]:
    slo = cp.spec.alerts.slo
    windows = ", ".join(f"{w.long}/{w.short} at {number(burn_factor(cp, w))}x" for w in tier.windows)
    return alert_rule(
        cp,
        BURN_ALERT,
        "\nor\n".join(_burn_condition(cp, w) for w in tier.windows),
        tier.severity,
        summary=f"CodePilot {cp.metadata.name} version {VERSION_T} burns its error budget too fast",
        description=(
            f"Model version {VERSION_T} in namespace {NAMESPACE_T} spends the {slo.window} error budget of "
            f"its {number(slo.objective or 0)}% availability objective too fast ({tier.name} tier: "
            f"{windows}); the error ratio over the long window is {VALUE_PERCENT_T}."
        ),
        labels={"slo_tier": tier.name},
    )


def alerts_group(cp: CodePilot) -> dict[str, Any]:
    return {
        "name": f"codepilot.{cp.metadata.name}.alerts",
        "rules": [latency_alert(cp), error_rate_alert(cp)],
    }


def slo_rules(cp: CodePilot) -> list[dict[str, Any]]:
    if cp.spec.alerts.slo.objective is None:
        return []
    return [burn_alert(cp, tier) for tier in BURN_TIERS]
