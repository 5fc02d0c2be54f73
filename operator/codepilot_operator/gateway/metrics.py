"""What teams spend and what they get, per team (the key Secret's name) and model, for Prometheus.

Label values are bounded: teams come from Secrets an admin creates, models from the configuration,
codes from a fixed set; a key itself is never a label.
"""

from __future__ import annotations

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
