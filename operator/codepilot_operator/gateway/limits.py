"""Requests- and tokens-per-minute per key: token buckets, with the clock as an input.

A bucket holds up to a minute's allowance and refills continuously, so a team can burst up to its
limit and then gets a steady rate. Requests are counted when admitted; tokens are only known once the
model answered, so they are charged afterwards and a request is admitted while the token bucket is
not empty (it may go below zero: the next requests wait until the debt is paid). ``retry_after`` is
exactly how long until the bucket admits again, which is what a client's Retry-After should say.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

MINUTE = 60.0


@dataclass
class Bucket:
    per_minute: int
    level: float = field(default=math.nan)
    updated: float = 0.0

    def _fill(self, now: float) -> None:
        if math.isnan(self.level):
            self.level, self.updated = float(self.per_minute), now
            return
        rate = self.per_minute / MINUTE
        self.level = min(float(self.per_minute), self.level + (now - self.updated) * rate)
        self.updated = now

    def wait(self, now: float, need: float) -> float:
        """Seconds until ``need`` is available (0: now); never negative."""
        self._fill(now)
        if self.level >= need:
            return 0.0
        return (need - self.level) / (self.per_minute / MINUTE)

    def take(self, now: float, amount: float) -> None:
        self._fill(now)
        self.level -= amount

    def give_back(self, now: float, amount: float) -> None:
        self._fill(now)
        self.level = min(float(self.per_minute), self.level + amount)


@dataclass(frozen=True)
class Refusal:
    limit: str  # "requests" or "tokens"
    per_minute: int
    retry_after: float


@dataclass
class KeyLimits:
    requests: Bucket | None
    tokens: Bucket | None


class RateLimiter:
    """One pair of buckets per team; a limit of 0 means unlimited."""

    def __init__(self) -> None:
        self._keys: dict[str, KeyLimits] = {}

    def _limits(self, team: str, rpm: int, tpm: int) -> KeyLimits:
        limits = self._keys.get(team)
        if limits is None or _per_minute(limits.requests) != rpm or _per_minute(limits.tokens) != tpm:
            # new team, or its limits changed in its Secret: start it with a full allowance
            limits = KeyLimits(Bucket(rpm) if rpm else None, Bucket(tpm) if tpm else None)
            self._keys[team] = limits
        return limits

    def admit(self, team: str, rpm: int, tpm: int, now: float) -> Refusal | None:
        """Count one request, or say which limit refuses it and for how long."""
        limits = self._limits(team, rpm, tpm)
        if limits.tokens is not None:
            wait = limits.tokens.wait(now, math.ulp(0.0))
            if wait > 0:
                return Refusal("tokens", tpm, wait)
        if limits.requests is not None:
            wait = limits.requests.wait(now, 1.0)
            if wait > 0:
                return Refusal("requests", rpm, wait)
            limits.requests.take(now, 1.0)
        return None

    def refund(self, team: str, now: float) -> None:
        """A request admitted but refused before it reached the model (the queue was full, the model
        unreachable) is not one the team used: clients retry those by themselves."""
        limits = self._keys.get(team)
        if limits is not None and limits.requests is not None:
            limits.requests.give_back(now, 1.0)

    def charge(self, team: str, tokens: int, now: float) -> None:
        limits = self._keys.get(team)
        if limits is not None and limits.tokens is not None:
            limits.tokens.take(now, tokens)


def _per_minute(bucket: Bucket | None) -> int:
    return bucket.per_minute if bucket is not None else 0
