"""Who may read the operator's /metrics: the Kubernetes API decides, as in controller-runtime.

The metrics name every CodePilot and namespace the operator serves and count its failures; anyone who
reaches the pod network should not read them, and a scraper should not need a sidecar to be let in.
controller-runtime's ``filters.WithAuthenticationAndAuthorization`` (what kubebuilder scaffolds since
kube-rbac-proxy was retired) does it with two API calls, done the same way here:

1. the request's bearer token is authenticated with a TokenReview (401 if it is missing or not valid);
2. the user it belongs to must be allowed ``get`` on the non-resource URL ``/metrics``, asked with a
   SubjectAccessReview (403 otherwise). The chart's ``<release>-metrics-reader`` ClusterRole grants
   exactly that; kube-prometheus-stack's Prometheus holds it already.

/healthz and /readyz stay open: the kubelet sends no token, and they tell nothing. Answers are remembered
briefly per token (its SHA-256, never the token), so a scrape every 30 s costs no API calls most of the
time and a flood of requests with one bad token costs one review per ``deny_ttl``.
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from codepilot_operator.clients.kube import KubeClient, KubeUnavailable

log = logging.getLogger(__name__)
PROTECTED_PATHS = frozenset({"/metrics"})
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@dataclass(frozen=True)
class Verdict:
    status: int  # 200, 401 or 403
    why: str


def token_review(token: str) -> dict[str, Any]:
    return {"apiVersion": "authentication.k8s.io/v1", "kind": "TokenReview", "spec": {"token": token}}


def access_review(user: dict[str, Any], path: str) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "nonResourceAttributes": {"path": path, "verb": "get"},
        "user": user.get("username"),
    }
    for key in ("uid", "groups", "extra"):
        if user.get(key):
            spec[key] = user[key]
    return {"apiVersion": "authorization.k8s.io/v1", "kind": "SubjectAccessReview", "spec": spec}


def bearer_token(header: str | None) -> str | None:
    if not header:
        return None
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer":
        return None
    return token.strip() or None


class MetricsAuth:
    """Decides, per request, whether its bearer token may read /metrics."""

    def __init__(
        self,
        kube: KubeClient,
        *,
        allow_ttl: float = 60.0,
        deny_ttl: float = 10.0,
        max_entries: int = 1024,
        clock: Callable[[], float] = time.monotonic,
    ):
        self._kube = kube
        self._ttl = {True: allow_ttl, False: deny_ttl}
        self._max = max_entries
        self._clock = clock
        self._cache: OrderedDict[tuple[str, str], tuple[float, Verdict]] = OrderedDict()

    async def verdict(self, header: str | None, path: str) -> Verdict:
        token = bearer_token(header)
        if token is None:
            return Verdict(401, "a bearer token is required (Authorization: Bearer ...)")
        key = (hashlib.sha256(token.encode()).hexdigest(), path)
        now = self._clock()
        cached = self._cache.get(key)
        if cached is not None and cached[0] > now:
            return cached[1]
        verdict = await self._ask(token, path)
        self._cache[key] = (now + self._ttl[verdict.status == 200], verdict)
        self._cache.move_to_end(key)
        while len(self._cache) > self._max:
            self._cache.popitem(last=False)
        return verdict

    async def _ask(self, token: str, path: str) -> Verdict:
        status = (await self._kube.review(token_review(token))).get("status") or {}
        if not status.get("authenticated"):
            return Verdict(401, "the token is not valid")
        user = status.get("user") or {}
        decision = (await self._kube.review(access_review(user, path))).get("status") or {}
        if not decision.get("allowed"):
            return Verdict(403, f"{user.get('username', '?')} may not get {path}")
        return Verdict(200, "allowed")

    @web.middleware
    async def middleware(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        if request.path not in PROTECTED_PATHS:
            return await handler(request)
        try:
            verdict = await self.verdict(request.headers.get("Authorization"), request.path)
        except KubeUnavailable as exc:
            log.warning("Cannot check who asks for %s: %s", request.path, exc)
            return web.Response(status=503, text="cannot check the token now\n")
        if verdict.status != 200:
            headers = (
                {"WWW-Authenticate": 'Bearer realm="codepilot-operator"'} if verdict.status == 401 else {}
            )
            return web.Response(status=verdict.status, text=f"{verdict.why}\n", headers=headers)
        return await handler(request)
