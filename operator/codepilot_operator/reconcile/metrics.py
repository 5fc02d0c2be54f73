"""Operator metrics and probes, served on one port: /metrics, /healthz, /readyz.

The server runs on the operator's own event loop, so /healthz answering at all means the loop is not
stuck (the same reasoning as kopf's --liveness); what the probes answer is health.py's decision.
"""

from __future__ import annotations

import socket
from collections.abc import Sequence
from typing import Protocol

from aiohttp import web
from aiohttp.typedefs import Middleware
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)

from codepilot_operator.api import contract

REGISTRY = CollectorRegistry(auto_describe=True)

RECONCILE_SECONDS = Histogram(
    contract.RECONCILE_DURATION.name,
    "Time of one reconcile of a CodePilot, by what triggered it.",
    contract.RECONCILE_DURATION.labels,
    buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
    registry=REGISTRY,
)
RECONCILE_ERRORS = Counter(
    contract.RECONCILE_ERRORS.name,
    "Reconciles that did not complete, by reason (InvalidSpec, Http500, Unreachable, ...).",
    contract.RECONCILE_ERRORS.labels,
    registry=REGISTRY,
)
SNAPSHOT_FAILURES = Counter(
    contract.SNAPSHOT_FAILURES.name,
    "Reconciles stopped because a served version's weights could not be snapshotted and verified.",
    contract.SNAPSHOT_FAILURES.labels,
    registry=REGISTRY,
)
OBJECTS_APPLIED = Counter(
    contract.OBJECTS_APPLIED.name,
    "Child objects written with server-side apply (unchanged objects are not counted).",
    contract.OBJECTS_APPLIED.labels,
    registry=REGISTRY,
)
OBJECTS_PRUNED = Counter(
    contract.OBJECTS_PRUNED.name,
    "Child objects deleted because the CodePilot no longer renders them.",
    contract.OBJECTS_PRUNED.labels,
    registry=REGISTRY,
)

# Set by the rollout (reconcile/handlers.py, from the step's decision), read by the rules and dashboard.
CANARY_WEIGHT = Gauge(
    contract.ROLLOUT_CANARY_WEIGHT.name,
    "Percent of a CodePilot's traffic its canary gets, as achieved (Ready share or HTTPRoute weight).",
    contract.ROLLOUT_CANARY_WEIGHT.labels,
    registry=REGISTRY,
)
ROLLBACKS = Counter(
    contract.ROLLOUT_ROLLBACKS.name,
    "Canary versions rolled back (failed analyses or a stall with onStall: Rollback).",
    contract.ROLLOUT_ROLLBACKS.labels,
    registry=REGISTRY,
)
PROMOTIONS = Counter(
    contract.ROLLOUT_PROMOTIONS.name,
    "Canary versions promoted to stable.",
    contract.ROLLOUT_PROMOTIONS.labels,
    registry=REGISTRY,
)
ANALYSES = Counter(
    contract.ROLLOUT_ANALYSES.name,
    "Canary analyses, by verdict (Pass, Fail, Inconclusive).",
    contract.ROLLOUT_ANALYSES.labels,
    registry=REGISTRY,
)


class Probes(Protocol):
    """What /healthz and /readyz report: (healthy, one line saying why)."""

    def liveness(self) -> tuple[bool, str]: ...

    def readiness(self) -> tuple[bool, str]: ...


async def _metrics(_: web.Request) -> web.Response:
    body = generate_latest(REGISTRY)
    return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})


def _probe(answer: tuple[bool, str]) -> web.Response:
    ok, why = answer
    return web.Response(text=f"{why}\n", status=200 if ok else 503)


async def start_server(
    probes: Probes, sock: socket.socket, *, middlewares: Sequence[Middleware] = ()
) -> web.AppRunner:
    """Serve on ``sock``, bound by the caller: a busy port fails before the operator starts, not here.

    ``middlewares``: e.g. metrics_auth's check of who may read /metrics (the probes stay open).
    """

    async def healthz(_: web.Request) -> web.Response:
        return _probe(probes.liveness())

    async def readyz(_: web.Request) -> web.Response:
        return _probe(probes.readiness())

    app = web.Application(middlewares=list(middlewares))
    app.router.add_get("/metrics", _metrics)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.SockSite(runner, sock)
    await site.start()
    return runner


def kind_of(label: str) -> str:
    """'Deployment/name' -> 'Deployment'."""
    return label.split("/", 1)[0]


def count_result(applied: list[str], pruned: list[str]) -> None:
    for label in applied:
        OBJECTS_APPLIED.labels(kind_of(label)).inc()
    for label in pruned:
        OBJECTS_PRUNED.labels(kind_of(label)).inc()
