"""Helpers for testing rendered Prometheus rules with the real rule engine (promtool, Prometheus).

Rendered rule groups are written one file per group, as the Prometheus Operator would load them; input
series are synthesised minute by minute from a list of traffic phases, with the labels the
ServiceMonitor's relabelings put on Triton's series (namespace, codepilot, version, pod).
"""

from __future__ import annotations

import re
import shutil
import subprocess
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from codepilot_operator.api import CodePilot, ScalingSignal
from codepilot_operator.render.prometheusrule import rule_groups
from codepilot_operator.render.served import ServedVersion, served_versions
from codepilot_operator.render.signals import SIGNALS
from tests.helpers import EXAMPLES, codepilot, load_example

PROMTOOL = shutil.which("promtool") or "/usr/bin/promtool"
TRITON_FAILURE_REASONS = ("BACKEND", "OTHER", "REJECTED", "CANCELED")


def slo_codepilot(**overrides: Any) -> CodePilot:
    return codepilot(**{"spec.alerts.slo": {"objective": 99.9}, **overrides})


# The CodePilots whose rendered rules the rule tests check: each turns on different rule groups.
CONFIGURATIONS = {
    "default": codepilot(),
    "slo-and-runbooks": slo_codepilot(
        **{"spec.alerts.runbookBaseUrl": "https://runbooks.example.com/codepilot"}
    ),
    "autoscaling-keda": slo_codepilot(
        **{"spec.autoscaling": {"minReplicas": 1, "maxReplicas": 4, "provider": "KEDA"}}
    ),
    "alerts-off-queue-signal": codepilot(
        **{"spec.alerts.enabled": False, "spec.autoscaling": {"minReplicas": 1, "maxReplicas": 4}}
    ),
    **{f"example-{p.stem}": load_example(p) for p in EXAMPLES},
}
# Also every Prometheus-backed autoscaling signal through each provider: the adapter rules and KEDA
# triggers read series too.
WITH_AUTOSCALERS = {
    **CONFIGURATIONS,
    **{
        f"signal-{signal.value}-{provider}": codepilot(
            **{
                "spec.autoscaling": {
                    "minReplicas": 1,
                    "maxReplicas": 4,
                    "signal": signal.value,
                    "provider": provider,
                }
            }
        )
        for signal in ScalingSignal
        if SIGNALS[signal].from_prometheus
        for provider in ("PrometheusAdapter", "KEDA")
    },
}


def promtool(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [PROMTOOL, *args], capture_output=True, text=True, cwd=cwd, timeout=120, check=False
    )


def write_rule_files(directory: Path, cp: CodePilot, served: list[ServedVersion] | None = None) -> list[Path]:
    """One rules file per rendered group; returns the paths in group order."""
    paths = []
    for group in rule_groups(cp, served if served is not None else served_versions(cp)):
        path = directory / f"{group['name']}.yaml"
        path.write_text(yaml.safe_dump({"groups": [group]}, sort_keys=False))
        paths.append(path)
    return paths


@dataclass(frozen=True)
class Phase:
    """``minutes`` of steady traffic on one pod."""

    minutes: int
    rps: float = 10.0
    error_ratio: float = 0.0  # failed (reason BACKEND) / all requests, cancellations aside
    latency: float = 0.2  # seconds per successful request
    queue: float = 0.01  # seconds of queueing per successful request
    cancel_ratio: float = 0.0  # client cancellations / all requests


def _cumulative(increments: Iterable[float]) -> str:
    total, values = 0.0, ["0"]
    for step in increments:
        total += step
        values.append(f"{total:.6f}".rstrip("0").rstrip("."))
    return " ".join(values)


def triton_series(labels: dict[str, str], phases: Sequence[Phase]) -> list[dict[str, str]]:
    """promtool input_series for Triton's counters of one pod, 1 sample per minute (interval 1m)."""
    minutes = [p for p in phases for _ in range(p.minutes)]
    per_min = [60 * p.rps for p in minutes]
    failed = [n * p.error_ratio for n, p in zip(per_min, minutes, strict=True)]
    canceled = [n * p.cancel_ratio for n, p in zip(per_min, minutes, strict=True)]
    success = [n - f - c for n, f, c in zip(per_min, failed, canceled, strict=True)]
    us = 1e6

    def series(name: str, values: Iterable[float], **extra: str) -> dict[str, str]:
        label_text = ",".join(f'{k}="{v}"' for k, v in {**labels, **extra}.items())
        return {"series": f"{name}{{{label_text}}}", "values": _cumulative(values)}

    out = [
        series("nv_inference_request_success", success),
        series(
            "nv_inference_request_duration_us",
            [s * p.latency * us for s, p in zip(success, minutes, strict=True)],
        ),
        series(
            "nv_inference_queue_duration_us",
            [s * p.queue * us for s, p in zip(success, minutes, strict=True)],
        ),
    ]
    for reason in TRITON_FAILURE_REASONS:
        values = failed if reason == "BACKEND" else canceled if reason == "CANCELED" else [0.0] * len(minutes)
        out.append(series("nv_inference_request_failure", values, reason=reason))
    return out


_TEMPLATE = re.compile(r"\{\{\s*(\$labels\.(\w+)|\$value\s*\|\s*(\w+))\s*\}\}")


def expand(template: str, labels: dict[str, str], value: str) -> str:
    """Expand the two template forms our annotations use: ``$labels.x`` and ``$value | fn``."""
    return _TEMPLATE.sub(lambda m: labels[m.group(2)] if m.group(2) else value, template)


def find_rule(groups: list[dict[str, Any]], alert: str, **labels: str) -> dict[str, Any]:
    for group in groups:
        for rule in group["rules"]:
            if rule.get("alert") == alert and all(rule["labels"].get(k) == v for k, v in labels.items()):
                return dict(rule)
    raise KeyError(alert)


def expected_alert(rule: dict[str, Any], series_labels: dict[str, str], value: str) -> dict[str, Any]:
    """promtool's exp_alerts entry for ``rule`` firing on a series with ``series_labels``."""
    labels = {**series_labels, **rule["labels"]}
    return {
        "exp_labels": labels,
        "exp_annotations": {k: expand(v, labels, value) for k, v in rule["annotations"].items()},
    }


def run_rule_tests(
    directory: Path, rule_files: list[Path], tests: list[dict[str, Any]], evaluation_interval: str = "1m"
) -> str:
    """Run ``promtool test rules``; raises AssertionError with promtool's report when a test fails."""
    spec = {
        "rule_files": [str(p) for p in rule_files],
        "evaluation_interval": evaluation_interval,
        "tests": tests,
    }
    path = directory / "tests.yaml"
    path.write_text(yaml.safe_dump(spec, sort_keys=False, width=1_000_000))
    result = promtool("test", "rules", str(path), cwd=directory)
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout
