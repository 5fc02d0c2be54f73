"""The operator's only Kubernetes client: server-side apply, list-by-label, delete, with retries.

Why a wrapper around lightkube instead of calling it directly:

- Every call is checked against ``clients.permissions.PERMISSIONS`` before it leaves the process, so a
  code path that needs a permission the Helm chart does not grant fails in tests, not in a cluster.
- Server-side apply always uses one field manager (``codepilot-operator``) with ``force=True``: the
  operator is the owner of what it renders, and a conflict with a hand edit is resolved in its favour.
- 409/429/5xx and transport errors are retried with capped exponential backoff; after that the caller
  gets :class:`KubeUnavailable` and turns it into ``kopf.TemporaryError``.

Any kind ``render()`` returns works: the resource class is a lightkube generic resource built from the
object's apiVersion/kind (never registered globally, so it cannot clash with lightkube's own models).
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar

import httpx2
from lightkube import ALL_NS, ApiError, AsyncClient, KubeConfig
from lightkube.core.resource import ApiInfo
from lightkube.generic_resource import (
    GenericGlobalResource,
    GenericNamespacedResource,
    GenericNamespacedStatus,
    create_api_info,
)
from lightkube.types import PatchType

from codepilot_operator.clients.permissions import PERMISSIONS, Permission

FIELD_MANAGER = "codepilot-operator"
RETRYABLE_STATUS = frozenset({409, 429, 500, 502, 503, 504})

log = logging.getLogger(__name__)
T = TypeVar("T")

# Kinds whose plural is not "lowercase kind + s" (the rule covers every kind rendered today).
_IRREGULAR_PLURALS = {"Endpoints": "endpoints", "NetworkPolicy": "networkpolicies", "Ingress": "ingresses"}


class PermissionDenied(RuntimeError):
    """The operator tried a call its RBAC table does not list: a bug, never retried."""


class KubeUnavailable(RuntimeError):
    """The API server kept failing after retries, or rejected an apply (403, 404, 422, ...).

    ``reason`` is a short CamelCase word for metrics; the message says what failed, for status.
    """

    def __init__(self, message: str, reason: str):
        super().__init__(message)
        self.reason = reason


@dataclass(frozen=True)
class Kind:
    """A resource type as the REST API names it."""

    api_version: str
    kind: str

    @property
    def group(self) -> str:
        return self.api_version.rpartition("/")[0]

    @property
    def version(self) -> str:
        return self.api_version.rpartition("/")[2]

    @property
    def plural(self) -> str:
        if self.kind in _IRREGULAR_PLURALS:
            return _IRREGULAR_PLURALS[self.kind]
        lower = self.kind.lower()
        if lower.endswith("y") and lower[-2:-1] not in "aeiou":
            return lower[:-1] + "ies"
        if lower.endswith(("s", "x", "ch", "sh")):
            return lower + "es"
        return lower + "s"

    @staticmethod
    def of(obj: Mapping[str, Any]) -> Kind:
        return Kind(str(obj["apiVersion"]), str(obj["kind"]))


def matches_labels(obj: Mapping[str, Any], labels: Mapping[str, str]) -> bool:
    have = obj.get("metadata", {}).get("labels") or {}
    return all(have.get(k) == v for k, v in labels.items())


@dataclass(frozen=True)
class RetryPolicy:
    attempts: int = 6
    base_delay: float = 0.2
    max_delay: float = 5.0

    def delay(self, attempt: int, retry_after: float | None = None) -> float:
        if retry_after is not None:
            return float(min(self.max_delay, retry_after))
        backoff = min(self.max_delay, self.base_delay * 2.0**attempt)
        return backoff * (0.5 + random.random() / 2)  # jitter: replicas and objects do not retry in step


@dataclass
class Stats:
    """Request counts by verb, for metrics and the benchmark."""

    requests: dict[str, int] = field(default_factory=dict)
    retries: int = 0

    def count(self, verb: str) -> None:
        self.requests[verb] = self.requests.get(verb, 0) + 1


def resource_class(kind: Kind) -> type[GenericNamespacedResource]:
    """A lightkube resource class for ``kind``, never registered globally (no clash with lightkube's)."""

    class Resource(GenericNamespacedResource):
        _api_info = create_api_info(kind.group, kind.version, kind.kind, kind.plural)

    Resource.__name__ = Resource.__qualname__ = kind.kind
    return Resource


def _status_class(kind: Kind) -> type[GenericNamespacedStatus]:
    main = create_api_info(kind.group, kind.version, kind.kind, kind.plural)

    class Status(GenericNamespacedStatus):
        _api_info = ApiInfo(
            resource=main.resource,
            parent=main.resource,
            plural=kind.plural,
            verbs=["get", "patch"],
            action="status",
        )

    Status.__name__ = Status.__qualname__ = f"{kind.kind}Status"
    return Status


def review_class(kind: Kind) -> type[GenericGlobalResource]:
    """A cluster-scoped lightkube resource class (TokenReview, SubjectAccessReview), never registered."""

    class Review(GenericGlobalResource):
        _api_info = create_api_info(kind.group, kind.version, kind.kind, kind.plural)

    Review.__name__ = Review.__qualname__ = kind.kind
    return Review


def allowed(permissions: Iterable[Permission], group: str, resource: str, verb: str) -> bool:
    return any(p.api_group == group and p.resource == resource and verb in p.verbs for p in permissions)


def _message(exc: httpx2.HTTPStatusError) -> str:
    return str(exc.status.message) if isinstance(exc, ApiError) else exc.response.reason_phrase


def _not_found(exc: httpx2.HTTPStatusError) -> bool:
    return exc.response.status_code == 404


def _retry_after(exc: httpx2.HTTPStatusError) -> float | None:
    value = exc.response.headers.get("Retry-After")
    try:
        return float(value) if value is not None else None
    except ValueError:
        return None


class KubeClient:
    """Thin async client; one per operator process."""

    def __init__(
        self,
        config: KubeConfig | None = None,
        *,
        permissions: Iterable[Permission] = PERMISSIONS,
        retry: RetryPolicy | None = None,
        timeout: float = 30.0,
    ):
        self._client = AsyncClient(config, field_manager=FIELD_MANAGER, timeout=httpx2.Timeout(timeout))
        self._permissions = tuple(permissions)
        self._retry = retry or RetryPolicy()
        self._classes: dict[Kind, type[GenericNamespacedResource]] = {}
        self._status_classes: dict[Kind, type[GenericNamespacedStatus]] = {}
        self.stats = Stats()

    async def close(self) -> None:
        await self._client.close()

    def _resource(self, kind: Kind, verb: str) -> type[GenericNamespacedResource]:
        if not allowed(self._permissions, kind.group, kind.plural, verb):
            raise PermissionDenied(
                f"{verb} {kind.plural}.{kind.group or 'core'} is not in clients/permissions.py PERMISSIONS"
            )
        if kind not in self._classes:
            self._classes[kind] = resource_class(kind)
        return self._classes[kind]

    async def _call(self, verb: str, what: str, call: Callable[[], Awaitable[T]]) -> T:
        for attempt in range(self._retry.attempts):
            self.stats.count(verb)
            try:
                return await call()
            except httpx2.HTTPStatusError as exc:  # ApiError, or a proxy's error page (not JSON)
                code = exc.response.status_code
                if code not in RETRYABLE_STATUS:
                    raise
                if attempt + 1 == self._retry.attempts:
                    raise KubeUnavailable(
                        f"{verb} {what}: HTTP {code}: {_message(exc)}", f"Http{code}"
                    ) from exc
                pause = self._retry.delay(attempt, _retry_after(exc) if code == 429 else None)
                log.debug("%s %s: HTTP %s, retrying in %.2fs", verb, what, code, pause)
            except httpx2.TransportError as exc:
                if attempt + 1 == self._retry.attempts:
                    raise KubeUnavailable(f"{verb} {what}: {exc!r}", "Unreachable") from exc
                pause = self._retry.delay(attempt)
            self.stats.retries += 1
            await asyncio.sleep(pause)
        raise AssertionError("unreachable")  # pragma: no cover

    async def list(self, kind: Kind, namespace: str, labels: Mapping[str, str]) -> list[dict[str, Any]]:
        """Objects of ``kind`` in ``namespace`` carrying all ``labels``; a kind the cluster lacks is empty."""
        res = self._resource(kind, "list")

        async def call() -> list[dict[str, Any]]:
            items = [dict(o) async for o in self._client.list(res, namespace=namespace, labels=dict(labels))]
            # List items carry no apiVersion/kind on a real API server; callers want whole objects.
            for item in items:
                item["apiVersion"], item["kind"] = kind.api_version, kind.kind
            # A server that ignores labelSelector must not make us prune someone else's objects.
            return [o for o in items if matches_labels(o, labels)]

        try:
            return await self._call("list", f"{kind.plural} in {namespace}", call)
        except httpx2.HTTPStatusError as exc:
            if _not_found(exc):  # CRD not installed (e.g. no Prometheus Operator): nothing to manage
                return []
            raise

    async def any_exist(self, kind: Kind, namespace: str | None = None) -> bool:
        """Whether at least one object of ``kind`` exists in ``namespace`` (None: in any namespace).

        One small list (limit 1): proof that the API server answers and serves ``kind`` to this identity.
        """
        res = self._resource(kind, "list")
        where = namespace or ALL_NS

        async def call() -> bool:
            async for _ in self._client.list(res, namespace=where, chunk_size=1):
                return True
            return False

        return await self._call("list", f"{kind.plural} in {namespace or 'all namespaces'}", call)

    async def serves(self, kind: Kind, namespace: str | None = None) -> bool:
        """Whether the API server serves ``kind`` (False on 404: e.g. its CRD is not installed).

        One list with limit 1: the cheapest request that proves the API answers ``kind`` to this
        identity, through the same permission the operator later lists it with.
        """
        try:
            await self.any_exist(kind, namespace)
        except httpx2.HTTPStatusError as exc:
            if _not_found(exc):
                return False
            raise
        return True

    async def get(self, kind: Kind, namespace: str, name: str) -> dict[str, Any] | None:
        res = self._resource(kind, "get")
        try:
            obj = await self._call(
                "get",
                f"{kind.kind} {namespace}/{name}",
                lambda: self._client.get(res, name, namespace=namespace),
            )
        except httpx2.HTTPStatusError as exc:
            if _not_found(exc):
                return None
            raise
        return dict(obj)

    async def apply(self, obj: Mapping[str, Any]) -> dict[str, Any]:
        """Server-side apply ``obj`` (create or update) as the operator's field manager, forcing conflicts."""
        kind = Kind.of(obj)
        res = self._resource(kind, "patch")
        self._resource(kind, "create")  # apply creates missing objects: RBAC checks create too
        meta = obj["metadata"]
        what = f"{kind.kind} {meta['namespace']}/{meta['name']}"
        try:
            result = await self._call(
                "patch",
                what,
                lambda: self._client.patch(
                    res,
                    meta["name"],
                    dict(obj),
                    namespace=meta["namespace"],
                    patch_type=PatchType.APPLY,
                    field_manager=FIELD_MANAGER,
                    force=True,
                ),
            )
        except httpx2.HTTPStatusError as exc:  # not retryable: say what a human has to fix
            code = exc.response.status_code
            if code == 404:
                raise KubeUnavailable(
                    f"apply {what}: the cluster does not serve {kind.plural}.{kind.group or 'core'} "
                    f"({kind.api_version}); is its CRD installed?",
                    "KindNotServed",
                ) from exc
            raise KubeUnavailable(f"apply {what}: HTTP {code}: {_message(exc)}", f"Http{code}") from exc
        return dict(result)

    async def patch_status(
        self, kind: Kind, namespace: str, name: str, status: Mapping[str, Any]
    ) -> dict[str, Any] | None:
        """Merge ``status`` into the object's status subresource; None when the object is gone (404)."""
        if not allowed(self._permissions, kind.group, f"{kind.plural}/status", "patch"):
            raise PermissionDenied(f"patch {kind.plural}/status.{kind.group} is not in PERMISSIONS")
        if kind not in self._status_classes:
            self._status_classes[kind] = _status_class(kind)
        res = self._status_classes[kind]
        what = f"{kind.kind} {namespace}/{name} status"
        try:
            result = await self._call(
                "patch",
                what,
                lambda: self._client.patch(
                    res, name, {"status": dict(status)}, namespace=namespace, patch_type=PatchType.MERGE
                ),
            )
        except httpx2.HTTPStatusError as exc:
            if _not_found(exc):
                return None
            raise KubeUnavailable(
                f"patch {what}: HTTP {exc.response.status_code}: {_message(exc)}",
                f"Http{exc.response.status_code}",
            ) from exc
        return dict(result)

    async def remove_annotation(self, kind: Kind, namespace: str, name: str, key: str) -> bool:
        """Drop one annotation (a merge patch of metadata only); False when the object is gone."""
        res = self._resource(kind, "patch")
        what = f"{kind.kind} {namespace}/{name} annotation {key}"
        patch = {"metadata": {"annotations": {key: None}}}
        try:
            await self._call(
                "patch",
                what,
                lambda: self._client.patch(res, name, patch, namespace=namespace, patch_type=PatchType.MERGE),
            )
        except httpx2.HTTPStatusError as exc:
            if _not_found(exc):
                return False
            raise KubeUnavailable(
                f"patch {what}: HTTP {exc.response.status_code}: {_message(exc)}",
                f"Http{exc.response.status_code}",
            ) from exc
        return True

    async def create(self, obj: Mapping[str, Any]) -> dict[str, Any]:
        """Create ``obj`` (an Event with ``generateName``); a retry after a lost answer may create a twin."""
        kind = Kind.of(obj)
        res: Any = self._resource(kind, "create")  # lightkube's overloads know no generic resources
        namespace = obj["metadata"]["namespace"]
        what = f"{kind.kind} in {namespace}"
        try:
            result = await self._call("create", what, lambda: self._client.create(res(dict(obj))))
        except httpx2.HTTPStatusError as exc:
            raise KubeUnavailable(
                f"create {what}: HTTP {exc.response.status_code}: {_message(exc)}",
                f"Http{exc.response.status_code}",
            ) from exc
        return dict(result)

    async def review(self, obj: Mapping[str, Any]) -> dict[str, Any]:
        """Create a review (TokenReview, SubjectAccessReview): the API server answers in ``status`` and
        stores nothing. Retried like every call; any other HTTP error is raised as KubeUnavailable."""
        kind = Kind.of(obj)
        if not allowed(self._permissions, kind.group, kind.plural, "create"):
            raise PermissionDenied(
                f"create {kind.plural}.{kind.group} is not in clients/permissions.py PERMISSIONS"
            )
        res = review_class(kind)
        try:
            result = await self._call("create", kind.kind, lambda: self._client.create(res(**obj)))
        except httpx2.HTTPStatusError as exc:
            code = exc.response.status_code
            raise KubeUnavailable(f"create {kind.kind}: HTTP {code}: {_message(exc)}", f"Http{code}") from exc
        return dict(result)

    async def delete(self, kind: Kind, namespace: str, name: str) -> bool:
        """Delete one object; False when it was already gone."""
        res = self._resource(kind, "delete")
        try:
            await self._call(
                "delete",
                f"{kind.kind} {namespace}/{name}",
                lambda: self._client.delete(res, name, namespace=namespace),
            )
        except httpx2.HTTPStatusError as exc:
            if _not_found(exc):
                return False
            raise
        return True


def load_config(kubeconfig: str | None) -> KubeConfig:
    """The kubeconfig file if given, else in-cluster service account, else $KUBECONFIG / ~/.kube/config."""
    if kubeconfig:
        return KubeConfig.from_file(kubeconfig)
    return KubeConfig.from_env()
