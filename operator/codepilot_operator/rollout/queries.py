"""PromQL for the canary analysis: Triton's raw counters, never the recording rules.

A user's Prometheus may not load our PrometheusRule (another namespace selector, no Prometheus
Operator), so the analysis reads the series Triton exports, selected by the labels the ServiceMonitor
puts on them (``namespace``, ``codepilot``, ``version``). One query per counter returns every served
version at once (``sum by (version)``). Client cancellations are excluded from failures, as in the rules.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from codepilot_operator.api.contract import TRITON_CANCELED_REASON, TRITON_REASON_LABEL
from codepilot_operator.api.contract import TRITON_FIRST_RESPONSE_HISTOGRAM_MS as FIRST_RESPONSE_HISTOGRAM
from codepilot_operator.api.contract import TRITON_QUEUE_DURATION_US as QUEUE_US
from codepilot_operator.api.contract import TRITON_REQUEST_DURATION_US as DURATION_US
from codepilot_operator.api.contract import TRITON_REQUEST_FAILURE as FAILURE
from codepilot_operator.api.contract import TRITON_REQUEST_SUCCESS as SUCCESS
from codepilot_operator.render.rules_common import CODEPILOT, NAMESPACE, VERSION

QUANTILE = 0.95


@dataclass(frozen=True)
class Queries:
    success: str
    failure: str
    duration_us: str
    queue_us: str
    ttft_p95_seconds: str

    def all(self) -> dict[str, str]:
        return dict(self.__dict__)


def _regex(values: list[str]) -> str:
    """A PromQL string holding an anchored alternation (a dot in a version must not match anything)."""
    return "|".join(re.escape(v).replace("\\", "\\\\") for v in sorted(set(values)))


def window_literal(seconds: float) -> str:
    return f"{max(1, round(seconds))}s"


def analysis_queries(namespace: str, codepilot: str, versions: list[str], window_seconds: float) -> Queries:
    selector = f'{NAMESPACE}="{namespace}", {CODEPILOT}="{codepilot}", {VERSION}=~"{_regex(versions)}"'
    window = window_literal(window_seconds)

    def increase(metric: str, extra: str = "") -> str:
        return f"sum by ({VERSION}) (increase({metric}{{{selector}{extra}}}[{window}]))"

    ttft = (
        f"histogram_quantile({QUANTILE}, sum by ({VERSION}, le) "
        f"(increase({FIRST_RESPONSE_HISTOGRAM}_bucket{{{selector}}}[{window}]))) / 1000"
    )
    return Queries(
        success=increase(SUCCESS),
        failure=increase(FAILURE, f', {TRITON_REASON_LABEL}!="{TRITON_CANCELED_REASON}"'),
        duration_us=increase(DURATION_US),
        queue_us=increase(QUEUE_US),
        ttft_p95_seconds=ttft,
    )
