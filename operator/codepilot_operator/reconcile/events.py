"""Kubernetes Events for condition transitions (what ``kubectl describe codepilot`` lists).

Posted with the operator's own client rather than ``kopf.event``: kopf can only post from inside its
handlers, and the periodic jobs (scheduler.py) run outside them. One path for both keeps Events the same
whoever noticed the transition. An Event is best effort: a failure to post one is logged, never a
reason to fail the reconcile that changed the state it describes.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any

from codepilot_operator.api import API_VERSION, KIND
from codepilot_operator.clients.kube import KubeClient, KubeUnavailable
from codepilot_operator.reconcile.status import Transition, timestamp

COMPONENT = "codepilot-operator"
MAX_MESSAGE = 1024  # what kubectl and the API server handle comfortably; longer messages are cut


def event_object(involved: Mapping[str, Any], transition: Transition, now: datetime) -> dict[str, Any]:
    """A core/v1 Event about the CodePilot ``involved`` (its body)."""
    meta = involved.get("metadata", {})
    message = transition.message
    if len(message) > MAX_MESSAGE:
        message = message[: MAX_MESSAGE - 3] + "..."
    when = timestamp(now)
    return {
        "apiVersion": "v1",
        "kind": "Event",
        "metadata": {"generateName": f"{meta.get('name')}.", "namespace": meta.get("namespace")},
        "involvedObject": {
            "apiVersion": API_VERSION,
            "kind": KIND,
            "name": meta.get("name"),
            "namespace": meta.get("namespace"),
            "uid": meta.get("uid"),
        },
        "type": transition.type,
        "reason": transition.reason,
        "message": message,
        "source": {"component": COMPONENT},
        "reportingComponent": COMPONENT,
        "firstTimestamp": when,
        "lastTimestamp": when,
        "count": 1,
    }


async def post(
    kube: KubeClient,
    involved: Mapping[str, Any],
    transitions: Iterable[Transition],
    now: datetime,
    logger: logging.Logger | logging.LoggerAdapter[Any],
) -> None:
    for transition in transitions:
        try:
            await kube.create(event_object(involved, transition, now))
        except KubeUnavailable as exc:
            logger.warning("Event %s not posted: %s", transition.reason, exc)
