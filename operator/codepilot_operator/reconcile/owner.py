"""Is the CodePilot a periodic job works for still the object the job saw?

A job holds the body kopf's index last saw, which can be behind the cluster:

- kopf drops a deleted object from its index at once, but cannot report one that vanished while its
  watch was down (it re-lists, and what is missing from the list gets no DELETED event);
- a replica that kopf peering has paused keeps its index as it was when it paused, while the active
  replica goes on changing the CodePilot.

So before a job writes anything it reads the CodePilot once. Gone, re-created under a new uid, or being
deleted: the job's CodePilot is gone and its jobs stop. Changed since the body was seen (another
resourceVersion): the job's view is outdated and this run writes nothing; whoever changed it (a change
handler, or the active replica) has the newer view. An idle resync writes nothing and so never pays
for this read.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from codepilot_operator.api import API_VERSION, KIND
from codepilot_operator.clients.kube import Kind, KubeClient

CODEPILOT = Kind(API_VERSION, KIND)


class OwnerGone(Exception):
    """The CodePilot was deleted (or replaced by a new one with the same name): nothing more to do."""


class Outdated(Exception):
    """The CodePilot changed since the job's body was seen: this run must not write from it."""


def check(live: Mapping[str, Any] | None, seen: Mapping[str, Any]) -> None:
    """Raise unless ``live`` (the API server's copy) is still exactly the object ``seen``."""
    have, want = (live or {}).get("metadata", {}), seen.get("metadata", {})
    if not live or have.get("uid") != want.get("uid") or have.get("deletionTimestamp"):
        raise OwnerGone(f"CodePilot {want.get('namespace')}/{want.get('name')} uid {want.get('uid')} is gone")
    if have.get("resourceVersion") != want.get("resourceVersion"):
        raise Outdated(
            f"CodePilot {want.get('namespace')}/{want.get('name')} changed since resourceVersion "
            f"{want.get('resourceVersion')} (now {have.get('resourceVersion')})"
        )


class OwnerCheck:
    """Awaitable once per job run, before its first write: raises OwnerGone or Outdated (see check())."""

    def __init__(self, kube: KubeClient, body: Mapping[str, Any]):
        self._kube = kube
        self._seen = body
        self._confirmed = False

    async def __call__(self) -> None:
        if self._confirmed:
            return
        meta = self._seen["metadata"]
        check(await self._kube.get(CODEPILOT, str(meta["namespace"]), str(meta["name"])), self._seen)
        self._confirmed = True
