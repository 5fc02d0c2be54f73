"""At most ``max_concurrency`` requests in flight per model; a burst waits in line instead.

Triton would accept every request and hold them all in memory (KV cache, activations): a burst could
OOM-kill the server. Here, a request beyond the limit waits first-come first-served, up to
``queue_timeout`` seconds and behind at most ``max_queue`` others; past either it is refused with
:class:`Overloaded` (the gateway answers 503 with Retry-After), before anything reached Triton.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator


class Overloaded(Exception):
    def __init__(self, message: str, retry_after: float):
        super().__init__(message)
        self.retry_after = retry_after


class ModelQueue:
    def __init__(self, max_concurrency: int, max_queue: int, queue_timeout: float):
        self.max_concurrency, self.max_queue, self.queue_timeout = max_concurrency, max_queue, queue_timeout
        self._slots = asyncio.Semaphore(max_concurrency)
        self.waiting = 0
        self.in_flight = 0

    @contextlib.asynccontextmanager
    async def slot(self) -> AsyncIterator[None]:
        if self._slots.locked():
            if self.waiting >= self.max_queue:
                raise Overloaded(
                    f"{self.in_flight} requests in flight and {self.waiting} queued (the limit): try again",
                    1.0,
                )
            self.waiting += 1
            try:
                await asyncio.wait_for(self._slots.acquire(), self.queue_timeout)
            except TimeoutError:
                raise Overloaded(
                    f"waited {self.queue_timeout:g}s in the queue for one of {self.max_concurrency} slots",
                    1.0,
                ) from None
            finally:
                self.waiting -= 1
        else:
            await self._slots.acquire()
        self.in_flight += 1
        try:
            yield
        finally:
            self.in_flight -= 1
            self._slots.release()
