"""What /healthz and /readyz answer in each state of the operator process."""

from __future__ import annotations

import asyncio

from codepilot_operator.reconcile.health import Health, probe_namespaces


def test_liveness_needs_a_finished_startup_and_a_running_scheduler() -> None:
    async def scenario() -> list[tuple[bool, str]]:
        health = Health()
        answers = [health.liveness()]
        health.started = True
        health.scheduler = asyncio.create_task(asyncio.sleep(3600))
        answers.append(health.liveness())
        health.scheduler.cancel()
        await asyncio.gather(health.scheduler, return_exceptions=True)
        answers.append(health.liveness())
        return answers

    starting, live, dead = asyncio.run(scenario())
    assert starting == (False, "starting")
    assert live == (True, "ok")
    assert dead[0] is False and "scheduler" in dead[1]


def test_readiness_needs_the_api_and_the_watch_to_have_answered() -> None:
    async def scenario() -> list[tuple[bool, str]]:
        indexed = 0
        health = Health(watch_expected=True, indexed=lambda: indexed, started=True)
        health.scheduler = asyncio.create_task(asyncio.sleep(3600))
        health.api_error = "Unreachable: connection refused"
        answers = [health.readiness()]
        health.api_answered, health.found_codepilots = True, True
        answers.append(health.readiness())
        indexed = 1
        answers.append(health.readiness())
        health.scheduler.cancel()
        return answers

    no_api, no_watch, ready = asyncio.run(scenario())
    assert no_api == (False, "no answer from the Kubernetes API yet: Unreachable: connection refused")
    assert no_watch == (False, "waiting for kopf's watch of CodePilots")
    assert ready == (True, "ready")


def test_api_probe_lists_where_the_operator_serves() -> None:
    assert probe_namespaces(()) == [None]
    assert probe_namespaces(("team-a", "team-*", "!kube-system")) == ["team-a"]
    assert probe_namespaces(("team-*",)) == [None]
