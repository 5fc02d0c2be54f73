"""A small client of the Prometheus HTTP API (instant queries), for the canary analysis.

Prometheus is someone else's server: every answer is bounded (size, time), and every failure is one
:class:`PrometheusUnavailable` line that status can show ("connection refused", "HTTP 503", "bad
query"), so an unreachable Prometheus makes an analysis inconclusive instead of crashing a reconcile.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import aiohttp

MAX_RESPONSE_BYTES = 4 * 1024 * 1024


class PrometheusUnavailable(RuntimeError):
    """Prometheus could not answer the query; the message says why in one line."""


@dataclass(frozen=True)
class Sample:
    labels: Mapping[str, str]
    value: float


def _parse(body: bytes) -> list[Sample]:
    try:
        doc = json.loads(body)
    except ValueError:
        raise PrometheusUnavailable("not a Prometheus API answer (invalid JSON)") from None
    if not isinstance(doc, dict) or doc.get("status") != "success":
        error = doc.get("error", "unknown error") if isinstance(doc, dict) else "unexpected answer"
        raise PrometheusUnavailable(f"query failed: {str(error)[:300]}")
    data = doc.get("data") or {}
    if data.get("resultType") != "vector":
        raise PrometheusUnavailable(f"expected an instant vector, got {data.get('resultType')!r}")
    samples = []
    for item in data.get("result") or []:
        try:
            value = float(item["value"][1])
            labels = {str(k): str(v) for k, v in (item.get("metric") or {}).items()}
        except (KeyError, IndexError, TypeError, ValueError):
            raise PrometheusUnavailable("malformed sample in the answer") from None
        samples.append(Sample(labels, value))
    return samples


class PrometheusClient:
    """One per Prometheus URL; share it (it keeps a connection pool)."""

    def __init__(self, base_url: str, *, timeout: float = 10.0):
        self.base_url = base_url.rstrip("/")
        self._timeout = aiohttp.ClientTimeout(total=timeout)
        self._session: aiohttp.ClientSession | None = None

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def query(self, expr: str, at: datetime) -> list[Sample]:
        """Evaluate ``expr`` at ``at`` (an instant query)."""
        if self._session is None:
            self._session = aiohttp.ClientSession(timeout=self._timeout)
        params = {"query": expr, "time": f"{at.timestamp():.3f}"}
        url = f"{self.base_url}/api/v1/query"
        try:
            async with self._session.post(url, data=params) as response:
                body = await response.content.read(MAX_RESPONSE_BYTES + 1)
                if len(body) > MAX_RESPONSE_BYTES:
                    raise PrometheusUnavailable(f"answer larger than {MAX_RESPONSE_BYTES} bytes")
                if response.status >= 500 or response.status in (401, 403, 404, 429):
                    raise PrometheusUnavailable(f"{url}: HTTP {response.status}")
                return _parse(body)
        except PrometheusUnavailable:
            raise
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            detail = str(exc).splitlines()[0][:200] if str(exc) else type(exc).__name__
            raise PrometheusUnavailable(f"{self.base_url}: {detail}") from None


def by_label(samples: list[Sample], label: str) -> dict[str, float]:
    """``sum by (label)`` answers as a dict; NaN values are kept (the caller decides they mean no data)."""
    out: dict[str, float] = {}
    for sample in samples:
        key = sample.labels.get(label)
        if key is not None:
            out[key] = sample.value
    return out


def finite(value: Any) -> bool:
    return isinstance(value, float) and math.isfinite(value)
