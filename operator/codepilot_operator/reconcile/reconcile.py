"""One idempotent reconcile: parse -> rollout step -> served versions -> admit -> prepare -> render
-> apply (SSA) -> prune -> observe.

Every trigger (create, update, resume, the drift timer) runs this same function, so there is one code
path to test and nothing depends on which event woke the operator. It returns what it saw; the kopf
handlers turn that into status, Events and metrics.

The rollout step (reconcile/rollout.py) runs on the live children before anything is rendered: what it
decides (weights, replicas, promotion) is rendered and applied in the same reconcile and written to
status with it, so status and the objects carrying it out never disagree for longer than one apply.

Admission (``admission.py``) then checks every version the step left served against the platform's
policy, the stable one rendered from status.stableTemplate included: a refusal (``PolicyRefused``) stops
the reconcile before the snapshot step reads a Secret and before any child is rendered or written; the
same policy object is what render fills in the platform's choices from.

Seam for weight snapshots: ``prepare`` runs after the served versions are known and before
anything is rendered or applied. A "before rollout: ensure snapshot" step is one function passed as
``Options.prepare`` (``handlers.py``): it returns the served versions with their snapshot ids filled in,
plus the conditions (WeightsVerified) and status fields (stableSnapshot/canarySnapshot) to write; raising
``PrepareFailed`` there stops the reconcile before any child changes (no rollout without weights).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

from codepilot_operator.api import API_VERSION, KIND, CodePilot
from codepilot_operator.api.defaults import MissingSetting, Origin, with_defaults
from codepilot_operator.api.platform import PlatformPolicy
from codepilot_operator.clients.kube import Kind, KubeClient
from codepilot_operator.loader import InvalidCodePilot, parse_codepilot
from codepilot_operator.reconcile import prune
from codepilot_operator.reconcile.admission import Admission
from codepilot_operator.reconcile.apis import ApiCatalog, KindsNotServed, monitoring_condition
from codepilot_operator.reconcile.children import Children
from codepilot_operator.reconcile.drift import unchanged, with_input_hash
from codepilot_operator.reconcile.rollout import PrometheusFor, RolloutOutcome, advance
from codepilot_operator.reconcile.status import (
    ConditionUpdate,
    Readiness,
    cache_use,
    deployment_readiness,
    fetch_reports,
    now_utc,
)
from codepilot_operator.render import ServedVersion, render, served_versions
from codepilot_operator.render.deployment import deployment_name
from codepilot_operator.render.fetcher import FETCH_CONTAINER, cached_snapshot
from codepilot_operator.render.served import for_version
from codepilot_operator.rollout.tracks import with_fields

log = logging.getLogger(__name__)


@dataclass
class Prepared:
    """What a ``prepare`` step decided: the versions to render, and what status should say about it."""

    served: list[ServedVersion]
    conditions: list[ConditionUpdate] = field(default_factory=list)
    status: dict[str, Any] = field(default_factory=dict)  # e.g. {"stableSnapshot": {...}}


Prepare = Callable[[CodePilot, list[ServedVersion]], Awaitable[Prepared]]
# Awaited once, before the first child is written (applied or pruned); raising there writes nothing.
BeforeWrite = Callable[[], Awaitable[None]]
DEPLOYMENT = Kind("apps/v1", "Deployment")
POD = Kind("v1", "Pod")


class PrepareFailed(Exception):
    """The prepare step refused (e.g. the weights cannot be snapshotted): nothing was applied.

    ``conditions`` say why in status; the handler retries after ``delay`` seconds.
    """

    def __init__(self, conditions: list[ConditionUpdate], message: str, reason: str, delay: float):
        super().__init__(message)
        self.conditions = conditions
        self.reason = reason
        self.delay = delay


class InvalidSpec(Exception):
    """The CodePilot cannot be served as written; ``problems`` name the fields."""

    def __init__(self, problems: list[str]):
        super().__init__("; ".join(problems))
        self.problems = problems


@dataclass(frozen=True)
class RolloutDeps:
    """What the rollout step needs from outside: Prometheus, and a clock (tests move it)."""

    prometheus_for: PrometheusFor | None = None
    default_prometheus_url: str | None = None
    clock: Callable[[], datetime] = now_utc


@dataclass
class Result:
    codepilot: CodePilot
    desired: int = 0
    served: list[ServedVersion] = field(default_factory=list)  # stable first, then the new version
    applied: list[str] = field(default_factory=list)  # "Kind/name" of each object written
    pruned: list[str] = field(default_factory=list)
    readiness: list[Readiness] = field(default_factory=list)
    prepared: Prepared | None = None
    rollout: RolloutOutcome | None = None
    defaults: list[dict[str, str]] = field(default_factory=list)  # the status.defaults value
    monitoring: ConditionUpdate | None = None  # MonitoringReady, from reconcile only (observe says nothing)
    model_cache: list[dict[str, Any]] | None = None  # status.modelCache: None when no version uses one


def plain(value: Any) -> Any:
    """kopf hands out read-only mapping views; pydantic and comparisons want plain dicts and lists."""
    if isinstance(value, Mapping):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [plain(v) for v in value]
    return value


def parse(body: Mapping[str, Any]) -> CodePilot:
    try:
        return parse_codepilot(plain(body))
    except InvalidCodePilot as exc:
        raise InvalidSpec(exc.problems) from None


def resolve(cp: CodePilot, platform: PlatformPolicy) -> tuple[CodePilot, list[dict[str, str]]]:
    """``cp`` with the platform's defaults filled in (everything after this sees only that), and what
    was filled in for status.defaults."""
    try:
        resolved = with_defaults(cp, platform.defaults)
    except MissingSetting as exc:
        raise InvalidSpec(exc.problems) from None
    return resolved.codepilot, resolved.status()


def owner_reference(cp: CodePilot) -> dict[str, Any]:
    """The CodePilot controls its children: garbage collection deletes them with it."""
    return {
        "apiVersion": API_VERSION,
        "kind": KIND,
        "name": cp.metadata.name,
        "uid": cp.metadata.uid,
        "controller": True,
        "blockOwnerDeletion": True,
    }


def desired_objects(
    cp: CodePilot, served: list[ServedVersion], platform: PlatformPolicy
) -> list[dict[str, Any]]:
    """render() output, owned by the CodePilot and stamped with its input hash."""
    objects = []
    for obj in render(cp, served, platform):
        meta = {**obj["metadata"], "ownerReferences": [owner_reference(cp)]}
        objects.append(with_input_hash({**obj, "metadata": meta}))
    return objects


def _label(obj: Mapping[str, Any]) -> str:
    return f"{obj['kind']}/{obj['metadata']['name']}"


class LiveSource(Protocol):
    """Where reconcile reads children: the API server (KubeClient) or the watches (Children)."""

    async def list(self, kind: Kind, namespace: str, labels: Mapping[str, str]) -> list[dict[str, Any]]: ...


def _cached(cp: CodePilot, served: Sequence[ServedVersion]) -> dict[str, tuple[str, str, str]]:
    """Deployment name -> (version, claim, snapshot) of each served version that reads the model cache."""
    found = {}
    for item in served:
        version_cp = for_version(cp, item)
        snapshot, cache = cached_snapshot(version_cp, item), version_cp.spec.model.cache
        if snapshot is not None and cache is not None:
            found[deployment_name(version_cp, item.version)] = (item.version, cache.claim_name, snapshot)
    return found


async def _observe(
    kube: LiveSource,
    cp: CodePilot,
    served: Sequence[ServedVersion],
    desired: Sequence[Mapping[str, Any]],
    live: Mapping[tuple[str, str], Mapping[str, Any]],
) -> tuple[list[Readiness], list[dict[str, Any]] | None]:
    """Readiness of every rendered Deployment, and the model cache's use; pods are read only for
    Deployments that are not ready, or that read the cache (their fetchers' reports are in the pods)."""
    cached = _cached(cp, served)
    readiness, usage = [], []
    for obj in desired:
        if Kind.of(obj) != DEPLOYMENT:
            continue
        name = obj["metadata"]["name"]
        current = live.get(prune.key(obj)) or obj
        verdict = deployment_readiness(current)
        pods: list[dict[str, Any]] = []
        if not verdict.ready or name in cached:
            selector = obj["spec"]["selector"]["matchLabels"]
            pods = await kube.list(POD, cp.metadata.namespace, selector)
        if not verdict.ready:
            verdict = deployment_readiness(current, pods)
        readiness.append(verdict)
        if name in cached:
            version, claim, snapshot = cached[name]
            usage.append(cache_use(version, claim, snapshot, fetch_reports(pods, FETCH_CONTAINER, snapshot)))
    return readiness, usage or None


async def reconcile(
    body: Mapping[str, Any],
    kube: KubeClient,
    *,
    admission: Admission,
    prepare: Prepare | None = None,
    before_write: BeforeWrite | None = None,
    rollout: RolloutDeps | None = None,
    apis: ApiCatalog | None = None,
    children: Children | None = None,
) -> Result:
    """Make the cluster match the CodePilot ``body``; raises InvalidSpec or PolicyRefused before touching
    anything.

    ``before_write`` lets a caller holding a possibly outdated body (a periodic job) confirm that the
    CodePilot still exists before anything is written; an idle resync never calls it. ``apis`` says which
    optional kinds the cluster serves (default: all of them): the others are neither listed nor applied,
    and a spec that needs one of them raises KindsNotServed before anything is written. ``children``:
    read the live children from the watches (no request) and tell them what this run wrote; without it
    they are listed.
    """
    cp = parse(body)
    if not cp.metadata.uid:
        raise InvalidSpec(["metadata.uid: missing (not an object read from the API server)"])
    cp, defaults = resolve(cp, admission.platform)
    deps = rollout or RolloutDeps()
    catalog = apis or ApiCatalog.known(())
    problems = catalog.required_missing(cp)
    if problems:
        raise KindsNotServed(problems)
    namespace, selector = cp.metadata.namespace, prune.child_selector(cp.metadata.name)
    managed = [k for k in prune.MANAGED_KINDS if catalog.serves(k)]
    source: LiveSource = children if children is not None else kube
    live = await _list_live(source, namespace, selector, managed)
    stepped = await advance(
        cp,
        body,
        live,
        now=deps.clock(),
        prometheus_for=deps.prometheus_for,
        default_prometheus_url=deps.default_prometheus_url,
    )
    cp = with_fields(cp, stepped.fields)  # render what the step decided
    served = served_versions(cp)
    await admission.check(cp, served, [d["field"] for d in defaults if d["from"] == Origin.PLATFORM.value])
    prepared = await prepare(cp, served) if prepare is not None else None
    if prepared is not None:
        served = prepared.served
    rendered = desired_objects(cp, served, admission.platform)
    desired, left_out = catalog.split(rendered)
    result = Result(
        codepilot=cp,
        desired=len(desired),
        served=served,
        prepared=prepared,
        rollout=stepped,
        defaults=defaults,
    )
    result.monitoring = monitoring_condition([Kind.of(o) for o in rendered], left_out)
    extra_kinds = [k for k in prune.kinds_to_list(desired) if k not in prune.MANAGED_KINDS]
    if extra_kinds:
        live.update(await _list_live(source, namespace, selector, extra_kinds))

    changed = []
    for obj in desired:
        if unchanged(live.get(prune.key(obj)), obj):
            log.debug("%s unchanged, skipped", _label(obj))
        else:
            changed.append(obj)
    stale = prune.stale(live.values(), desired, str(cp.metadata.uid))
    if (changed or stale) and before_write is not None:
        await before_write()
    for obj in changed:
        live[prune.key(obj)] = applied = await kube.apply(obj)
        if children is not None:
            children.wrote(applied)
        result.applied.append(_label(obj))
    for old in stale:
        name = old["metadata"]["name"]
        if await kube.delete(Kind.of(old), namespace, name):
            result.pruned.append(_label(old))
        if children is not None:
            children.deleted(Kind.of(old), namespace, name)

    result.readiness, result.model_cache = await _observe(source, cp, served, desired, live)
    return result


async def _list_live(
    kube: LiveSource, namespace: str, selector: Mapping[str, str], kinds: Sequence[Kind]
) -> dict[tuple[str, str], Mapping[str, Any]]:
    listed = await asyncio.gather(*(kube.list(kind, namespace, selector) for kind in kinds))
    return {prune.key(o): o for objs in listed for o in objs}


async def observe(body: Mapping[str, Any], kube: LiveSource, platform: PlatformPolicy) -> Result:
    """Readiness only (one Deployment list, plus Pods when not ready): the cheap refresh while pods start.

    Nothing is applied or pruned; the drift timer and change handlers do that. ``kube`` is the API
    server or, in the operator, the watches (then it costs no request).
    """
    cp, defaults = resolve(parse(body), platform)
    served = served_versions(cp)
    desired = desired_objects(cp, served, platform)
    live = await kube.list(DEPLOYMENT, cp.metadata.namespace, prune.child_selector(cp.metadata.name))
    result = Result(codepilot=cp, desired=len(desired), served=served, defaults=defaults)
    live_by_key = {prune.key(o): o for o in live}
    result.readiness, result.model_cache = await _observe(kube, cp, served, desired, live_by_key)
    return result
