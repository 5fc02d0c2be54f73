"""The per-pod serving signals an HPA can scale on, and their defaults.

One table names, for each signal, the custom metric the HPA asks for, the per-pod recording rule that
computes it (rules_recording.py) and the default target. prometheus-adapter (adapter.py) and KEDA
(keda.py) both read the recorded series, so the HPA, the adapter and the rules cannot disagree.
"""

from __future__ import annotations

from dataclasses import dataclass

from codepilot_operator.api import CodePilot, ScalingSignal


@dataclass(frozen=True)
class Signal:
    metric: str  # custom metric name served to the HPA ("cpu" is the resource metric from metrics-server)
    default_target: float
    unit: str
    series: str = ""  # per-pod recorded series behind the custom metric; empty for cpu

    @property
    def from_prometheus(self) -> bool:
        return bool(self.series)


SIGNALS: dict[ScalingSignal, Signal] = {
    ScalingSignal.QUEUE_TIME: Signal(
        "codepilot_queue_time_ms_per_request",
        100.0,
        "milliseconds per request",
        "pod:codepilot_queue_time_ms_per_request:rate1m",
    ),
    ScalingSignal.INFLIGHT_REQUESTS: Signal(
        "codepilot_inflight_requests", 4.0, "requests", "pod:codepilot_inflight_requests:avg1m"
    ),
    ScalingSignal.GPU_UTILIZATION: Signal(
        "codepilot_gpu_utilization_percent", 80.0, "percent", "pod:codepilot_gpu_utilization_percent:avg1m"
    ),
    ScalingSignal.CPU: Signal("cpu", 70.0, "percent of requested CPU"),
}


def signal_target(cp: CodePilot) -> float:
    autoscaling = cp.spec.autoscaling
    return (
        autoscaling.target if autoscaling.target is not None else SIGNALS[autoscaling.signal].default_target
    )


def needs_prometheus(cp: CodePilot) -> bool:
    """True when the autoscaler reads a signal that only Prometheus (via the recording rules) provides."""
    autoscaling = cp.spec.autoscaling
    return autoscaling.enabled and SIGNALS[autoscaling.signal].from_prometheus
