"""The per-pod serving signals an HPA can scale on, and their defaults.

The metric names are the ones the rendered prometheus-adapter rules (or KEDA triggers) expose; keeping
them in one table means the HPA and the adapter configuration cannot disagree.
"""

from __future__ import annotations

from dataclasses import dataclass

from codepilot_operator.api import CodePilot, ScalingSignal


@dataclass(frozen=True)
class Signal:
    metric: str  # custom metric name served to the HPA (unused for cpu)
    default_target: float
    unit: str


SIGNALS: dict[ScalingSignal, Signal] = {
    ScalingSignal.QUEUE_TIME: Signal("codepilot_queue_time_ms_per_request", 100.0, "milliseconds per request"),
    ScalingSignal.INFLIGHT_REQUESTS: Signal("codepilot_inflight_requests", 4.0, "requests"),
    ScalingSignal.GPU_UTILIZATION: Signal("codepilot_gpu_utilization_percent", 80.0, "percent"),
    ScalingSignal.CPU: Signal("cpu", 70.0, "percent of requested CPU"),
}


def signal_target(cp: CodePilot) -> float:
    autoscaling = cp.spec.autoscaling
    return autoscaling.target if autoscaling.target is not None else SIGNALS[autoscaling.signal].default_target
