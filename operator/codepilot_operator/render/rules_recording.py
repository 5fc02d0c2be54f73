"""Recording rules the alerts, the dashboard and the autoscaler share.

Everything is computed from Triton's own counters: ``nv_inference_request_success``,
``nv_inference_request_failure`` (with a ``reason`` label), ``nv_inference_request_duration_us`` and
``nv_inference_queue_duration_us``, plus the ``nv_gpu_utilization`` gauge.

Two aggregation levels:
- per pod (``pod:<metric>:<op>``), the custom metrics the HPA reads through prometheus-adapter or KEDA;
  an idle pod records 0, not "no value", so it counts as idle rather than as a pod without metrics;
- per served model version (``codepilot_version:<metric>:<op>``), what alerts and dashboards read.

Requests the client cancelled (``reason="CANCELED"``) are neither good nor bad: editors cancel stale
completions all the time, so they are left out of both sides of the error ratio.
"""

from __future__ import annotations

from typing import Any

from codepilot_operator.api import CodePilot, ScalingSignal
from codepilot_operator.api.contract import TRITON_CANCELED_REASON, TRITON_REASON_LABEL
from codepilot_operator.api.contract import TRITON_GPU_UTILIZATION as GPU_UTILIZATION
from codepilot_operator.api.contract import TRITON_QUEUE_DURATION_US as QUEUE_US
from codepilot_operator.api.contract import TRITON_REQUEST_DURATION_US as DURATION_US
from codepilot_operator.api.contract import TRITON_REQUEST_FAILURE as FAILURE
from codepilot_operator.api.contract import TRITON_REQUEST_SUCCESS as SUCCESS
from codepilot_operator.render.rules_common import POD_LEVEL, VERSION_LEVEL, by, record_rule, selector
from codepilot_operator.render.signals import SIGNALS

POD_WINDOW = "1m"  # the HPA syncs every 15s; a minute is short enough to follow a burst
ALERT_WINDOW = "2m"  # short, so an alert's ``for`` decides how long a condition must last
DASHBOARD_WINDOW = "5m"
SLO_WINDOWS = ("5m", "30m", "1h", "2h", "6h", "1d", "3d")
_NOT_CANCELED = {TRITON_REASON_LABEL: f'!="{TRITON_CANCELED_REASON}"'}


def requests_series(window: str) -> str:
    return f"codepilot_version:requests:rate{window}"


def error_ratio_series(window: str) -> str:
    return f"codepilot_version:request_errors:ratio_rate{window}"


def latency_series(window: str) -> str:
    return f"codepilot_version:request_latency_seconds:mean{window}"


def queue_series(window: str) -> str:
    return f"codepilot_version:queue_time_seconds:mean{window}"


def _rate(cp: CodePilot, metric: str, window: str, labels: tuple[str, ...], **extra: str) -> str:
    return f"sum by ({by(labels)}) (rate({metric}{selector(cp, **extra)}[{window}]))"


def _counted_requests(cp: CodePilot, window: str, labels: tuple[str, ...]) -> str:
    """Successful plus failed requests, without client cancellations."""
    return _rate(cp, "", window, labels, __name__=f'=~"{SUCCESS}|{FAILURE}"', **_NOT_CANCELED)


def _errors(cp: CodePilot, window: str, labels: tuple[str, ...]) -> str:
    return _rate(cp, FAILURE, window, labels, **_NOT_CANCELED)


def error_ratio_expr(cp: CodePilot, window: str) -> str:
    return f"{_errors(cp, window, VERSION_LEVEL)}\n/\n{_counted_requests(cp, window, VERSION_LEVEL)}"


def _mean_per_success(cp: CodePilot, metric: str, window: str, scale: str) -> str:
    """Mean of a cumulative microsecond counter per successful request; no series while idle."""
    success = _rate(cp, SUCCESS, window, VERSION_LEVEL)
    return f"{_rate(cp, metric, window, VERSION_LEVEL)} / {scale}\n/\n({success} > 0)"


def pod_signal_expr(cp: CodePilot, signal: ScalingSignal) -> str:
    """Per-pod value of an autoscaling signal; idle pods record 0 so the HPA sees them as idle."""
    if signal is ScalingSignal.QUEUE_TIME:
        success = _rate(cp, SUCCESS, POD_WINDOW, POD_LEVEL)
        return f"{_rate(cp, QUEUE_US, POD_WINDOW, POD_LEVEL)} / 1000\n/\n({success} > 0)\nor\n{success} * 0"
    if signal is ScalingSignal.INFLIGHT_REQUESTS:
        # Little's law: seconds spent in requests per second = mean number of requests in flight.
        return f"{_rate(cp, DURATION_US, POD_WINDOW, POD_LEVEL)} / 1e6"
    if signal is ScalingSignal.GPU_UTILIZATION:
        sel = selector(cp)
        return f"100 * avg by ({by(POD_LEVEL)}) (avg_over_time({GPU_UTILIZATION}{sel}[{POD_WINDOW}]))"
    raise ValueError(f"signal {signal} is not computed by Prometheus")


def signal_rules(cp: CodePilot) -> list[dict[str, Any]]:
    """Every Prometheus-backed signal is recorded, so switching signal needs no new rules."""
    return [
        record_rule(SIGNALS[signal].series, pod_signal_expr(cp, signal))
        for signal in ScalingSignal
        if SIGNALS[signal].from_prometheus
    ]


def serving_rules(cp: CodePilot) -> list[dict[str, Any]]:
    rules = []
    for window in (ALERT_WINDOW, DASHBOARD_WINDOW):
        rules.append(record_rule(requests_series(window), _counted_requests(cp, window, VERSION_LEVEL)))
        rules.append(record_rule(latency_series(window), _mean_per_success(cp, DURATION_US, window, "1e6")))
        rules.append(record_rule(queue_series(window), _mean_per_success(cp, QUEUE_US, window, "1e6")))
    rules.append(record_rule(error_ratio_series(DASHBOARD_WINDOW), error_ratio_expr(cp, DASHBOARD_WINDOW)))
    return rules


def slo_rules(cp: CodePilot) -> list[dict[str, Any]]:
    """Error ratios over every window the burn-rate alerts compare (5m is already a serving rule)."""
    return [
        record_rule(error_ratio_series(window), error_ratio_expr(cp, window))
        for window in SLO_WINDOWS
        if window != DASHBOARD_WINDOW
    ]


def recording_group(cp: CodePilot) -> dict[str, Any]:
    return {
        "name": f"codepilot.{cp.metadata.name}.recording",
        "rules": [*signal_rules(cp), *serving_rules(cp)],
    }
