"""Status and Events: how the operator tells a user what it found.

Change handlers and periodic jobs decide status the same way: merged with what the body shows
(status.py decides what changes) and written only when it differs, so an idle resync writes nothing;
Events follow the transitions of Ready, Degraded and WeightsVerified. Where status goes differs: a
change handler hands it to kopf's patch, which kopf writes together with its own bookkeeping (written
apart, kopf would see its own handled object without its "last handled" mark and handle it again); a
job, outside kopf's handlers, patches the status subresource itself (``client_sink``).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any

from codepilot_operator.clients.kube import KubeClient
from codepilot_operator.reconcile import events
from codepilot_operator.reconcile.owner import CODEPILOT, OwnerGone
from codepilot_operator.reconcile.reconcile import plain
from codepilot_operator.reconcile.status import (
    ConditionUpdate,
    Readiness,
    now_utc,
    status_patch,
    transitions,
)

StatusSink = Callable[[dict[str, Any]], Awaitable[None]]


def client_sink(
    kube: KubeClient, body: Mapping[str, Any], before_write: Callable[[], Awaitable[None]] | None = None
) -> StatusSink:
    """Status written with the operator's client, after ``before_write`` (e.g. an OwnerCheck) passed."""
    meta = body["metadata"]

    async def write(wanted: dict[str, Any]) -> None:
        if before_write is not None:
            await before_write()
        if await kube.patch_status(CODEPILOT, meta["namespace"], meta["name"], wanted) is None:
            raise OwnerGone(f"CodePilot {meta['namespace']}/{meta['name']} is gone")

    return write


async def write_status(
    kube: KubeClient,
    body: Mapping[str, Any],
    updates: Sequence[ConditionUpdate],
    logger: logging.Logger | logging.LoggerAdapter[Any],
    sink: StatusSink,
    *,
    readiness: Sequence[Readiness] | None = None,
    extra: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """Write what changed; returns the status as it now is (the body's, with the changes merged in)."""
    current: dict[str, Any] = plain(body.get("status") or {})
    now = now_utc()
    generation = body.get("metadata", {}).get("generation")
    wanted = status_patch(current, updates, generation=generation, now=now, readiness=readiness, extra=extra)
    if not wanted:
        return current
    await sink(wanted)
    await events.post(
        kube, body, transitions(current.get("conditions") or [], wanted["conditions"]), now, logger
    )
    return {**current, **wanted}
