"""Run each CodePilot's periodic jobs at their due times: one loop for all CodePilots, keyed by uid.

Why not a kopf timer per CodePilot: kopf stops a timer only when it sees the object's
``deletionTimestamp``, so timers need kopf's finalizer on every CodePilot (one more write on create, and
a deletion that waits for a running operator). Without it, a timer outlives its object and keeps
re-creating its children. Here one task sleeps until the earliest due time, and before a job runs it
looks the CodePilot up by uid (``lookup``; the operator passes a kopf index, which deleted objects leave).
A CodePilot that is gone has its jobs dropped; one re-created under the same name has a new uid and never
shares a job with its predecessor.

The seam other controllers use: ``at(uid, job, when)`` asks for ``job`` to run for that CodePilot at
``when`` (the scheduler's clock, monotonic seconds), replacing any earlier request for the same
(uid, job). A job is a coroutine function registered once by name; it gets the CodePilot's current body
and returns the delay until its next run, or None to stop. The drift resync and the progress refresh are
two jobs; the rollout controller's analysis tick is meant to be a third.
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import itertools
import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

log = logging.getLogger(__name__)

Body = Mapping[str, Any]
Job = Callable[[Body], Awaitable[float | None]]
Lookup = Callable[[str], Body | None]
# A job that raises (a bug: jobs report their own failures in status) runs again this much later.
FAILED_JOB_DELAY = 60.0


class Scheduler:
    """Due times per (uid, job); ``run()`` is the one loop that sleeps until the next one."""

    def __init__(
        self,
        lookup: Lookup,
        *,
        clock: Callable[[], float] = time.monotonic,
        failed_job_delay: float = FAILED_JOB_DELAY,
    ):
        self._lookup = lookup
        self._clock = clock
        self._failed_job_delay = failed_job_delay
        self._jobs: dict[str, Job] = {}
        # The live request per (uid, job): (when, sequence). Heap entries that no longer match it are
        # stale (moved or cancelled) and skipped when they surface.
        self._due: dict[tuple[str, str], tuple[float, int]] = {}
        self._heap: list[tuple[float, int, str, str]] = []
        self._sequence = itertools.count()
        self._wake = asyncio.Event()
        self._running: set[asyncio.Task[None]] = set()

    def register(self, job: str, fn: Job) -> None:
        self._jobs[job] = fn

    def now(self) -> float:
        return self._clock()

    def at(self, uid: str, job: str, when: float) -> None:
        """Run ``job`` for ``uid`` at ``when``, replacing any earlier request for the pair."""
        if job not in self._jobs:
            raise KeyError(f"no job {job!r} registered")
        sequence = next(self._sequence)
        self._due[(uid, job)] = (when, sequence)
        heapq.heappush(self._heap, (when, sequence, uid, job))
        self._wake.set()

    def after(self, uid: str, job: str, delay: float) -> None:
        self.at(uid, job, self._clock() + delay)

    def cancel(self, uid: str, job: str | None = None) -> None:
        """Forget ``job`` for ``uid`` (every job of ``uid`` when ``job`` is None)."""
        for key in [k for k in self._due if k[0] == uid and (job is None or k[1] == job)]:
            del self._due[key]

    def due(self, uid: str, job: str) -> float | None:
        entry = self._due.get((uid, job))
        return entry[0] if entry else None

    def pending(self) -> int:
        return len(self._due)

    def _pop_due(self, now: float) -> list[tuple[str, str]]:
        ready = []
        while self._heap and self._heap[0][0] <= now:
            when, sequence, uid, job = heapq.heappop(self._heap)
            if self._due.get((uid, job)) == (when, sequence):
                del self._due[(uid, job)]
                ready.append((uid, job))
        return ready

    def _next_due(self) -> float | None:
        while self._heap:
            when, sequence, uid, job = self._heap[0]
            if self._due.get((uid, job)) == (when, sequence):
                return when
            heapq.heappop(self._heap)  # stale: moved or cancelled
        return None

    async def run(self) -> None:
        """Forever: start every job that is due, then sleep until the next due time (or a new request)."""
        try:
            while True:
                for uid, job in self._pop_due(self._clock()):
                    self._start(uid, job)
                self._wake.clear()
                upcoming = self._next_due()
                timeout = None if upcoming is None else max(0.0, upcoming - self._clock())
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), timeout)
        finally:
            for task in list(self._running):
                task.cancel()
            await asyncio.gather(*self._running, return_exceptions=True)

    def _start(self, uid: str, job: str) -> None:
        body = self._lookup(uid)
        if body is None:  # deleted (or re-created under a new uid): nothing of it runs again
            log.debug("CodePilot uid %s is gone; its jobs are dropped", uid)
            self.cancel(uid)
            return
        task = asyncio.create_task(self._run_one(uid, job, body), name=f"{job} for {uid}")
        self._running.add(task)
        task.add_done_callback(self._running.discard)

    async def _run_one(self, uid: str, job: str, body: Body) -> None:
        try:
            delay = await self._jobs[job](body)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception(
                "Job %s for CodePilot uid %s failed; it runs again in %ss", job, uid, self._failed_job_delay
            )
            delay = self._failed_job_delay
        # A request made while the job ran (e.g. a change handler's) is newer than this run's own answer.
        if delay is not None and (uid, job) not in self._due:
            self.after(uid, job, delay)
