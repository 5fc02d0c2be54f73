"""The scheduler of per-CodePilot jobs: due times per (uid, job), gone CodePilots dropped, no polling."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

import pytest

from codepilot_operator.reconcile.scheduler import Scheduler

Body = Mapping[str, Any]


def body(uid: str) -> dict[str, Any]:
    return {"metadata": {"uid": uid, "name": f"cp-{uid}"}}


async def running(scheduler: Scheduler, until: Callable[[], bool], timeout: float = 10.0) -> None:
    """Run the scheduler's loop until ``until()`` holds (or fail after ``timeout`` seconds)."""
    task = asyncio.create_task(scheduler.run())
    try:
        deadline = time.monotonic() + timeout
        while not until():
            assert time.monotonic() < deadline, "condition not reached"
            await asyncio.sleep(0.01)
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


def recorder(
    calls: list[tuple[str, str]], job: str, delay: float | None = None
) -> Callable[[Body], Awaitable[float | None]]:
    async def run(b: Body) -> float | None:
        calls.append((job, b["metadata"]["uid"]))
        return delay

    return run


def test_due_jobs_run_with_the_current_body_and_reschedule_themselves() -> None:
    calls: list[tuple[str, str]] = []
    bodies = {"a": body("a")}

    async def scenario() -> Scheduler:
        scheduler = Scheduler(bodies.get)
        scheduler.register("drift", recorder(calls, "drift", delay=3600.0))
        scheduler.after("a", "drift", 0)
        await running(scheduler, lambda: bool(calls))
        return scheduler

    scheduler = asyncio.run(scenario())
    assert calls == [("drift", "a")]
    due = scheduler.due("a", "drift")
    assert due is not None and due > time.monotonic() + 3000, "the job's answer is its next due time"


def test_a_gone_codepilot_has_its_jobs_dropped_unrun() -> None:
    calls: list[tuple[str, str]] = []
    bodies = {"kept": body("kept")}

    async def scenario() -> Scheduler:
        scheduler = Scheduler(bodies.get)
        scheduler.register("drift", recorder(calls, "drift"))
        scheduler.register("progress", recorder(calls, "progress"))
        scheduler.after("deleted", "drift", 0)
        scheduler.after("deleted", "progress", 3600)  # also forgotten, though not due yet
        scheduler.after("kept", "drift", 0)
        await running(scheduler, lambda: bool(calls) and scheduler.due("deleted", "progress") is None)
        return scheduler

    scheduler = asyncio.run(scenario())
    assert calls == [("drift", "kept")]
    assert scheduler.pending() == 0


def test_a_new_request_replaces_the_earlier_one_and_cancel_is_per_job() -> None:
    calls: list[tuple[str, str]] = []
    bodies = {"a": body("a")}

    async def scenario() -> None:
        scheduler = Scheduler(bodies.get)
        scheduler.register("drift", recorder(calls, "drift"))
        scheduler.register("progress", recorder(calls, "progress"))
        scheduler.after("a", "drift", 3600)
        scheduler.after("a", "drift", 0)  # moved earlier: runs now, and only once
        scheduler.after("a", "progress", 0)
        scheduler.cancel("a", "progress")
        await running(scheduler, lambda: bool(calls))
        await asyncio.sleep(0.05)

    asyncio.run(scenario())
    assert calls == [("drift", "a")]


def test_a_failing_job_is_logged_and_retried_later_not_in_a_loop(caplog: pytest.LogCaptureFixture) -> None:
    attempts: list[float] = []
    bodies = {"a": body("a")}

    async def broken(_: Body) -> float | None:
        attempts.append(time.monotonic())
        raise RuntimeError("bug")

    async def scenario() -> Scheduler:
        scheduler = Scheduler(bodies.get, failed_job_delay=3600.0)
        scheduler.register("drift", broken)
        scheduler.after("a", "drift", 0)
        await running(scheduler, lambda: bool(attempts))
        await asyncio.sleep(0.05)
        return scheduler

    with caplog.at_level(logging.ERROR):
        scheduler = asyncio.run(scenario())
    assert len(attempts) == 1
    assert "drift" in caplog.text and "RuntimeError: bug" in caplog.text
    assert scheduler.due("a", "drift") is not None


def test_a_request_made_while_the_job_runs_wins_over_the_job_answer() -> None:
    bodies = {"a": body("a")}
    done: list[bool] = []

    async def scenario() -> Scheduler:
        scheduler = Scheduler(bodies.get)

        async def job(_: Body) -> float | None:
            scheduler.after("a", "drift", 7200)  # e.g. a change handler reconciled meanwhile
            done.append(True)
            return 60.0

        scheduler.register("drift", job)
        scheduler.after("a", "drift", 0)
        await running(scheduler, lambda: bool(done))
        await asyncio.sleep(0.05)
        return scheduler

    scheduler = asyncio.run(scenario())
    due = scheduler.due("a", "drift")
    assert due is not None and due > time.monotonic() + 7000


def test_the_loop_sleeps_until_the_next_due_time_instead_of_polling() -> None:
    reads = 0
    bodies = {"a": body("a")}

    def clock() -> float:
        nonlocal reads
        reads += 1
        return time.monotonic()

    async def scenario() -> None:
        scheduler = Scheduler(bodies.get, clock=clock)
        scheduler.register("drift", recorder([], "drift"))
        scheduler.after("a", "drift", 3600)
        task = asyncio.create_task(scheduler.run())
        await asyncio.sleep(0.5)
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)

    asyncio.run(scenario())
    assert reads <= 6, f"the loop woke up {reads} times with nothing due"


def test_unknown_jobs_are_refused() -> None:
    with pytest.raises(KeyError, match="analysis"):
        Scheduler(lambda _: None).after("a", "analysis", 1)
