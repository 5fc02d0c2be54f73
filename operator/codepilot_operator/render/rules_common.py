"""Shared vocabulary of the rendered Prometheus rules: label names, selectors, durations, annotations.

Every rule a CodePilot renders is scoped to that CodePilot's own series (``namespace`` and ``codepilot``
matchers): two CodePilots' PrometheusRules must never record the same series, or Prometheus rejects the
duplicates. The labels are put on Triton's series by the ServiceMonitor's relabelings (servicemonitor.py).
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

from codepilot_operator.api import CodePilot
from codepilot_operator.api.contract import CODEPILOT_LABEL, NAMESPACE_LABEL, POD_LABEL, VERSION_LABEL

# Target labels every scraped Triton series carries (see servicemonitor.py); the operator's own series
# carry the same names.
NAMESPACE, CODEPILOT, VERSION, POD = NAMESPACE_LABEL, CODEPILOT_LABEL, VERSION_LABEL, POD_LABEL

# Alert templates (Go text/template, expanded by Prometheus when the alert fires).
VERSION_T = "{{ $labels.version }}"
NAMESPACE_T = "{{ $labels.namespace }}"
POD_T = "{{ $labels.pod }}"
VALUE_DURATION_T = "{{ $value | humanizeDuration }}"
VALUE_PERCENT_T = "{{ $value | humanizePercentage }}"

# Aggregation levels of the recording rules.
VERSION_LEVEL = (NAMESPACE, CODEPILOT, VERSION)
POD_LEVEL = (NAMESPACE, CODEPILOT, VERSION, POD)

_UNITS = (("d", 86400.0), ("h", 3600.0), ("m", 60.0), ("s", 1.0))


@lru_cache(maxsize=1024)  # the same few windows in every rule group
def prom_duration(seconds: float) -> str:
    """A Prometheus duration: ``300`` -> ``5m``, ``5400`` -> ``1h30m``, ``0.5`` -> ``500ms``."""
    if seconds <= 0:
        return "0s"
    millis = round(seconds * 1000)
    parts = []
    for unit, size in _UNITS:
        count, millis = divmod(millis, round(size * 1000))
        if count:
            parts.append(f"{count}{unit}")
    if millis:
        parts.append(f"{millis}ms")
    return "".join(parts)


def number(value: float) -> str:
    """A float as PromQL reads it, without binary-float noise (``0.1 + 0.2`` prints as ``0.3``)."""
    return f"{value:.12g}"


def by(labels: tuple[str, ...]) -> str:
    return ", ".join(labels)


def selector(cp: CodePilot, **extra: str) -> str:
    """Matchers for this CodePilot's series; ``extra`` values are written as-is (``=~"..."`` allowed)."""
    own = _own_matchers(cp.metadata.namespace, cp.metadata.name)
    if not extra:
        return "{" + own + "}"
    return "{" + own + ", " + ", ".join(f"{key}{value}" for key, value in extra.items()) + "}"


@lru_cache(maxsize=4096)  # some 30 selectors per render name the same CodePilot
def _own_matchers(namespace: str, name: str) -> str:
    return f'{NAMESPACE}="{namespace}", {CODEPILOT}="{name}"'


def alternation(values: list[str]) -> str:
    """A fully anchored regex matching exactly ``values`` (Kubernetes names need no escaping)."""
    return "|".join(sorted(set(values)))


def alert_annotations(cp: CodePilot, alert: str, summary: str, description: str) -> dict[str, str]:
    """What a pager shows: a one-line summary, a description with the value, and the runbook."""
    result = {"summary": summary, "description": description}
    base = cp.spec.alerts.runbook_base_url
    if base:
        result["runbook_url"] = f"{base.rstrip('/')}/{alert.lower()}"
    return result


def one_line(expr: str) -> str:
    """Expressions are built across lines for reading the code; rendered on one line so the YAML stays
    plain and golden diffs stay small. Label values in our matchers never contain whitespace."""
    return " ".join(expr.split())


def alert_rule(
    cp: CodePilot,
    name: str,
    expr: str,
    severity: str,
    summary: str,
    description: str,
    for_: str | None = None,
    labels: dict[str, str] | None = None,
) -> dict[str, Any]:
    rule: dict[str, Any] = {"alert": name, "expr": one_line(expr)}
    if for_ and for_ != "0s":
        rule["for"] = for_
    rule["labels"] = {"severity": severity, CODEPILOT: cp.metadata.name, **(labels or {})}
    rule["annotations"] = alert_annotations(cp, name, summary, description)
    return rule


def record_rule(name: str, expr: str) -> dict[str, Any]:
    return {"record": name, "expr": one_line(expr)}
