"""What teams spend and what they get, per team (the key Secret's name) and model, for Prometheus.

Label values are bounded: teams come from Secrets an admin creates, models from the configuration,
codes from a fixed set; a key itself is never a label.

Series are looked up once per label values and kept (``labels()`` hashes and locks on every call, and
was the costliest metrics call per request); the queue's gauges read the queue when scraped instead of
being moved twice per request.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

REGISTRY = CollectorRegistry(auto_describe=True)
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120)

REQUESTS = Counter(
    "codepilot_api_requests",
    "OpenAI API requests answered, by team, model, endpoint and HTTP status code.",
    ["team", "model", "endpoint", "code"],
    registry=REGISTRY,
)
PROMPT_TOKENS = Counter(
    "codepilot_api_prompt_tokens",
    "Prompt tokens the model reported, by team and model.",
    ["team", "model"],
    registry=REGISTRY,
)
COMPLETION_TOKENS = Counter(
    "codepilot_api_completion_tokens",
    "Completion tokens the model reported, by team and model.",
    ["team", "model"],
    registry=REGISTRY,
)
DURATION = Histogram(
    "codepilot_api_request_duration_seconds",
    "Time from receiving a request to its last byte, by team and model (queue time included).",
    ["team", "model"],
    buckets=LATENCY_BUCKETS,
    registry=REGISTRY,
)
FIRST_TOKEN = Histogram(
    "codepilot_api_time_to_first_token_seconds",
    "Time from receiving a streamed request to its first text, by team and model.",
    ["team", "model"],
    buckets=LATENCY_BUCKETS,
    registry=REGISTRY,
)
QUEUE_WAIT = Histogram(
    "codepilot_api_queue_wait_seconds",
    "Time a request waited for one of the model's concurrency slots.",
    ["model"],
    buckets=LATENCY_BUCKETS,
    registry=REGISTRY,
)
RATE_LIMITED = Counter(
    "codepilot_api_rate_limited",
    "Requests refused with 429, by team, model and the limit that refused them (requests, tokens).",
    ["team", "model", "limit"],
    registry=REGISTRY,
)
IN_FLIGHT = Gauge(
    "codepilot_api_in_flight_requests",
    "Requests being answered by the model now.",
    ["model"],
    registry=REGISTRY,
)
QUEUED = Gauge(
    "codepilot_api_queued_requests",
    "Requests waiting for a concurrency slot now.",
    ["model"],
    registry=REGISTRY,
)


@dataclass(frozen=True, slots=True)
class Spend:
    """One team's series for one model."""

    prompt_tokens: Counter
    completion_tokens: Counter
    duration: Histogram
    first_token: Histogram


@functools.cache
def spend(team: str, model: str) -> Spend:
    return Spend(
        PROMPT_TOKENS.labels(team, model),
        COMPLETION_TOKENS.labels(team, model),
        DURATION.labels(team, model),
        FIRST_TOKEN.labels(team, model),
    )


@functools.cache
def requests(team: str, model: str, endpoint: str, code: str) -> Counter:
    return REQUESTS.labels(team, model, endpoint, code)


@functools.cache
def rate_limited(team: str, model: str, limit: str) -> Counter:
    return RATE_LIMITED.labels(team, model, limit)


def watch_queue(model: str, waiting: Callable[[], float], in_flight: Callable[[], float]) -> Histogram:
    """The model's queue gauges, read from the queue itself at scrape time; returns its wait histogram."""
    QUEUED.labels(model).set_function(waiting)
    IN_FLIGHT.labels(model).set_function(in_flight)
    return QUEUE_WAIT.labels(model)
