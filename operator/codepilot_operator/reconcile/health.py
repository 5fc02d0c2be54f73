"""What /healthz and /readyz say about the operator process.

Liveness: the startup finished and the scheduler loop (periodic jobs) is running. A failed startup ends
the process (cli/run.py exits with one line), and kopf ends it when its own watchers fail for good, so
a live process past its startup with a running scheduler is a working operator; the probe server
answering at all shows that the event loop they share is not stuck. An unreachable API server does not
fail liveness: restarting the operator would not bring it back.

Readiness: the API server answered a list of CodePilots for the operator's identity, where the operator
serves them; and, in standalone mode, kopf's watch delivered what that list showed. kopf has no public
"watch established" signal; its index holding the CodePilots the list found is the observable
equivalent (with no CodePilot at all, the answered list is all there is to see). A peering replica that
is paused keeps no watch open by design, so there readiness means the API answered.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

from codepilot_operator.clients.kube import KubeClient
from codepilot_operator.reconcile.failures import one_line
from codepilot_operator.reconcile.owner import CODEPILOT

log = logging.getLogger(__name__)
GLOB_CHARS = frozenset("*?[!")


@dataclass
class Health:
    watch_expected: bool = True  # standalone: kopf's watch must have delivered the listed CodePilots
    indexed: Callable[[], int] = lambda: 0  # CodePilots in kopf's index
    started: bool = False
    scheduler: asyncio.Task[None] | None = None
    api_answered: bool = False
    api_error: str = "not asked yet"
    found_codepilots: bool = False

    def liveness(self) -> tuple[bool, str]:
        if not self.started:
            return False, "starting"
        if self.scheduler is None or self.scheduler.done():
            return False, "the scheduler of periodic jobs has stopped"
        return True, "ok"

    def readiness(self) -> tuple[bool, str]:
        live, why = self.liveness()
        if not live:
            return False, why
        if not self.api_answered:
            return False, f"no answer from the Kubernetes API yet: {self.api_error}"
        if self.watch_expected and self.found_codepilots and not self.indexed():
            return False, "waiting for kopf's watch of CodePilots"
        return True, "ready"


def probe_namespaces(namespaces: Sequence[str]) -> list[str | None]:
    """Where to list CodePilots: each literal --namespace, or all namespaces (None) when there is none."""
    literal = [ns for ns in namespaces if not GLOB_CHARS & set(ns)]
    return list(literal) or [None]


async def await_api(
    health: Health, kube: KubeClient, namespaces: Iterable[str | None], *, max_delay: float = 30.0
) -> None:
    """List CodePilots (one item) until the API server answers; readiness follows the outcome."""
    delay = 1.0
    wanted = list(namespaces)
    while True:
        try:
            found = False
            for namespace in wanted:
                found = await kube.any_exist(CODEPILOT, namespace) or found
        except Exception as exc:  # any failure means "not ready", and is shown on /readyz
            message = one_line(exc)
            if message != health.api_error:
                log.warning("Kubernetes API not usable yet (retrying): %s", message)
            health.api_error = message
            await asyncio.sleep(delay)
            delay = min(max_delay, delay * 2)
            continue
        health.found_codepilots, health.api_answered = found, True
        log.info("Kubernetes API answered; CodePilots %s", "found" if found else "none yet")
        return
