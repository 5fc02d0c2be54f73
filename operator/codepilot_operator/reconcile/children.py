"""Every CodePilot's children as the watches show them: reconcile reads these instead of listing.

Listing 8 kinds per CodePilot every drift interval made an idle operator the API server's busiest
client (7.5 lists per CodePilot per minute). Here kopf watches each child kind (only objects labelled
``app.kubernetes.io/managed-by: codepilot-operator``, a server-side label selector) and keeps them in a
kopf index by (namespace, CodePilot name); ``list()`` answers from it, so a resync costs no request.

Two things a cache needs that a fresh list had for free:

- **Our own writes.** The watch event of an object just applied may arrive after the next reconcile
  reads the cache (the emulator and a busy API server both lag). Until it does, what the apply returned
  (or, for a delete, the object's absence) is overlaid on the index, so nothing is applied twice. An
  overlay ends when the index shows that resourceVersion (or the deletion), or after ``ttl`` seconds if
  the event never comes (a relist that skipped it).
- **Knowing when to look again.** ``observed()`` tells the handler whether an event is someone else's
  change worth a reconcile: not the echo of our own write, not a change of status alone (an HPA's or a
  Service's status moves all the time), but a deletion, an edit of spec, labels or annotations, and a
  Deployment's readiness. That reconcile runs at once, so a child deleted or edited by hand is restored
  within a reconcile's time instead of the drift interval.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from codepilot_operator.api import API_VERSION, KIND
from codepilot_operator.clients.kube import Kind, matches_labels
from codepilot_operator.reconcile import prune
from codepilot_operator.render.names import LABEL_CODEPILOT, LABEL_MANAGED_BY, MANAGED_BY

POD = Kind("v1", "Pod")
DEPLOYMENT = Kind("apps/v1", "Deployment")
# Everything watched: the kinds render() makes, and the Pods that say why a Deployment is not Ready.
WATCHED_KINDS: tuple[Kind, ...] = (*prune.MANAGED_KINDS, POD)
SELECTOR = f"{LABEL_MANAGED_BY}={MANAGED_BY}"
OVERLAY_TTL = 30.0
# What of a Deployment's status counts as a change worth a reconcile (status.py reads these).
_READINESS = ("observedGeneration", "replicas", "readyReplicas", "updatedReplicas")

Owner = tuple[str, str]  # (namespace, CodePilot name): the index key
Index = Mapping[Owner, Iterable[Mapping[str, Any]]]  # what kopf hands out: a Store of values per key


def owner_key(body: Mapping[str, Any]) -> Owner | None:
    meta = body.get("metadata") or {}
    name = (meta.get("labels") or {}).get(LABEL_CODEPILOT)
    return (str(meta.get("namespace")), str(name)) if name else None


def slim(body: Mapping[str, Any], kind: Kind) -> dict[str, Any]:
    """What the cache keeps of an object: managedFields go (large, never read); of a Pod only its
    metadata and the init container states (status.py names a crash-looping weight fetcher)."""
    obj: dict[str, Any] = _plain(body)
    meta = dict(obj.get("metadata") or {})
    meta.pop("managedFields", None)
    obj["metadata"] = meta
    if kind == POD:  # by the watched kind: list items of a real API server carry no kind
        status = obj.get("status") or {}
        return {
            **{k: obj[k] for k in ("apiVersion", "kind") if k in obj},
            "metadata": meta,
            "status": {"initContainerStatuses": status.get("initContainerStatuses") or []},
        }
    return obj


def _plain(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value


def controller_uid(body: Mapping[str, Any]) -> str | None:
    """The uid of the CodePilot that controls ``body`` (None: not one of our children, e.g. a Pod)."""
    for ref in (body.get("metadata") or {}).get("ownerReferences") or []:
        if ref.get("controller") and ref.get("kind") == KIND and ref.get("apiVersion") == API_VERSION:
            return str(ref.get("uid"))
    return None


def fingerprint(kind: Kind, body: Mapping[str, Any]) -> str:
    """What must change for an event to be worth a reconcile: all but status, resourceVersion and
    managedFields; of a Deployment also its readiness."""
    meta = {
        k: v for k, v in (body.get("metadata") or {}).items() if k not in ("resourceVersion", "managedFields")
    }
    essence: dict[str, Any] = {k: v for k, v in body.items() if k not in ("status", "metadata")}
    essence["metadata"] = meta
    if kind == DEPLOYMENT:
        status = body.get("status") or {}
        essence["status"] = {k: status.get(k) for k in _READINESS}
    payload = json.dumps(_plain(essence), sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.blake2b(payload.encode(), digest_size=12).hexdigest()


@dataclass
class _Overlay:
    obj: dict[str, Any] | None  # None: deleted by us
    resource_version: str | None
    expires: float


class Children:
    """The live children of every CodePilot, from kopf indexes (one per kind) and our own writes."""

    def __init__(self, clock: Callable[[], float] = time.monotonic, ttl: float = OVERLAY_TTL):
        self._indexes: dict[Kind, Index] = {}
        self._clock = clock
        self._ttl = ttl
        # (kind, namespace) -> name -> what we wrote: a list looks at its own kind and namespace only
        self._overlay: dict[tuple[Kind, str], dict[str, _Overlay]] = {}
        self._seen: dict[tuple[Kind, str, str], str] = {}

    def attach(self, kind: Kind, index: Index) -> None:
        """The kopf index of ``kind`` (kopf hands indexes to handlers; the startup handler passes them)."""
        self._indexes[kind] = index

    def watched(self, kind: Kind) -> bool:
        return kind in self._indexes

    async def list(self, kind: Kind, namespace: str, labels: Mapping[str, str]) -> list[dict[str, Any]]:
        """Like KubeClient.list, for a selector that names one CodePilot (its ``LABEL_CODEPILOT``)."""
        owner = (namespace, labels.get(LABEL_CODEPILOT, ""))
        index = self._indexes.get(kind)
        found: dict[str, dict[str, Any]] = {}
        if index is not None:
            for obj in index.get(owner, ()):
                found[str(obj["metadata"]["name"])] = dict(obj)
        now = self._clock()
        pending = self._overlay.get((kind, namespace), {})
        for name, overlay in list(pending.items()):
            if now >= overlay.expires or self._caught_up(overlay, found.get(name)):
                del pending[name]
                continue
            if overlay.obj is None:
                found.pop(name, None)
            elif matches_labels(overlay.obj, labels):
                found[name] = overlay.obj
        return [
            {**obj, "apiVersion": kind.api_version, "kind": kind.kind}
            for obj in found.values()
            if matches_labels(obj, labels)
        ]

    @staticmethod
    def _caught_up(overlay: _Overlay, live: Mapping[str, Any] | None) -> bool:
        if overlay.obj is None:
            return live is None
        have = (live or {}).get("metadata", {}).get("resourceVersion")
        return have is not None and have == overlay.resource_version

    def wrote(self, obj: Mapping[str, Any]) -> None:
        """We applied ``obj`` (the API server's answer): reads see it until the index does."""
        meta = obj.get("metadata") or {}
        kind, namespace, name = Kind.of(obj), str(meta.get("namespace")), str(meta.get("name"))
        body = slim(obj, kind)
        overlay = _Overlay(body, meta.get("resourceVersion"), self._clock() + self._ttl)
        self._overlay.setdefault((kind, namespace), {})[name] = overlay
        self._seen[(kind, namespace, name)] = fingerprint(kind, body)

    def deleted(self, kind: Kind, namespace: str, name: str) -> None:
        """We deleted it: reads no longer see it, and its DELETED event is not news."""
        self._overlay.setdefault((kind, namespace), {})[name] = _Overlay(
            None, None, self._clock() + self._ttl
        )
        self._seen.pop((kind, namespace, name), None)

    def observed(self, kind: Kind, event: str | None, body: Mapping[str, Any]) -> bool:
        """Record a watch event; True when it is someone else's change that a reconcile should look at.

        ``event`` is kopf's type: None for the initial listing (the resume handlers reconcile everything
        anyway), ADDED, MODIFIED or DELETED.
        """
        meta = body.get("metadata") or {}
        key = (kind, str(meta.get("namespace")), str(meta.get("name")))
        pending = self._overlay.get(key[:2], {})
        overlay = pending.get(key[2])
        if event == "DELETED":
            self._seen.pop(key, None)
            if overlay is None:
                return True
            del pending[key[2]]
            return overlay.obj is not None  # not our own delete: gone after (or despite) our write
        mark = fingerprint(kind, body)
        previous = self._seen.get(key)
        self._seen[key] = mark
        if overlay is not None:
            if overlay.obj is not None and meta.get("resourceVersion") == overlay.resource_version:
                del pending[key[2]]
            return False  # our echo, or an older event that our write has superseded
        return event is not None and previous != mark
