"""kopf handlers and the periodic jobs: thin glue from kopf's triggers and the scheduler to ``reconcile()``.

create, update and resume share one handler (kopf runs it once per change, and once per object when the
operator starts). Jobs per CodePilot run on the scheduler (scheduler.py): ``child-changed`` reconciles at
once when a watch event shows someone else changed one of its children (children.py: every child kind is
watched and indexed, so reconcile reads instead of listing), ``drift`` re-runs the same reconcile every
``drift_interval`` seconds as the bound for anything a watch could miss, and ``progress`` refreshes
status every ``progress_interval`` seconds while pods are starting. Every run (re)schedules them, so a
change handler's reconcile also counts as the latest resync.

No finalizer: children carry a controller ownerReference, so the API server's garbage collector deletes
them with the CodePilot, and a missing operator never blocks a deletion. The jobs find their CodePilot's
body by uid in a kopf index, which a deleted object leaves at once, so its jobs end with it; and before a
job writes anything it confirms the CodePilot still exists under that uid (owner.py).

Failures (failures.py) end in conditions naming the cause, an Event on the transition, a metric and a
bounded retry: kopf's TemporaryError for a change handler, a later due time for a job.
"""

from __future__ import annotations

import asyncio
import logging
import time
import weakref
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any, cast

import kopf

from codepilot_operator.api import GROUP, PLURAL, VERSION
from codepilot_operator.api.defaults import Origin
from codepilot_operator.api.platform import DEFAULT_PLATFORM, PlatformPolicy
from codepilot_operator.clients.codepilots import ACTION_ANNOTATION
from codepilot_operator.clients.kube import Kind, KubeClient, KubeUnavailable, load_config
from codepilot_operator.clients.prometheus import PrometheusClient
from codepilot_operator.reconcile import events, health, metrics
from codepilot_operator.reconcile.admission import Admission
from codepilot_operator.reconcile.apis import DEFAULT_INTERVAL as DEFAULT_API_DISCOVERY_INTERVAL
from codepilot_operator.reconcile.apis import OPTIONAL_CRDS, ApiCatalog
from codepilot_operator.reconcile.children import (
    SELECTOR,
    WATCHED_KINDS,
    Children,
    controller_uid,
    owner_key,
    slim,
)
from codepilot_operator.reconcile.failures import RECONCILE_ERROR, Failure, classify, one_line
from codepilot_operator.reconcile.metrics_auth import MetricsAuth
from codepilot_operator.reconcile.owner import CODEPILOT, Outdated, OwnerCheck, OwnerGone
from codepilot_operator.reconcile.reconcile import Prepare, Result, RolloutDeps, observe, plain, reconcile
from codepilot_operator.reconcile.report import StatusSink, client_sink, write_status
from codepilot_operator.reconcile.scheduler import Job, Scheduler
from codepilot_operator.reconcile.status import (
    Transition,
    now_utc,
    rollout_conditions,
    serving_conditions,
    waiting_for_pods,
)
from codepilot_operator.render.gateway import api_url
from codepilot_operator.render.names import LABEL_MANAGED_BY, MANAGED_BY
from codepilot_operator.rollout.tracks import carried_pins

DEFAULT_DRIFT_INTERVAL = 60.0
DEFAULT_PROGRESS_INTERVAL = 15.0
MEMO_KUBE = "kube"
MEMO_PREPARE = "prepare"
MEMO_HEALTH = "health"
MEMO_ADMISSION = "admission"
MEMO_LOCKS = "locks"
MEMO_SCHEDULER = "scheduler"
INDEX = "codepilot_bodies"  # the kwarg name kopf passes the index under (its handler id)
JOB_DRIFT = "drift"
JOB_PROGRESS = "progress"
JOB_ROLLOUT = "rollout"  # the rollout's own tick: the next analysis, or soon while traffic moves
# A child changed by someone else (deleted, edited, a Deployment's readiness): reconcile now.
JOB_CHILD = "child-changed"
JOBS = frozenset({JOB_DRIFT, JOB_PROGRESS, JOB_ROLLOUT, JOB_CHILD})
CHILD_RETRY = 1.0  # seconds: a child event that meets a running reconcile is looked at again this soon
MEMO_CHILDREN = "children"
MEMO_PROMETHEUS = "prometheus"
DEFAULTED = "Defaulted"  # the Event reason naming the values taken from the platform's defaults
MEMO_APIS = "apis"
MEMO_BODIES = "bodies"
log = logging.getLogger(__name__)
Logger = logging.Logger | logging.LoggerAdapter[Any]


@dataclass(frozen=True)
class Options:
    kubeconfig: str | None = None
    kube_config: Any = None  # a lightkube KubeConfig loaded (and checked) by the caller; else loaded here
    drift_interval: float = DEFAULT_DRIFT_INTERVAL
    # While pods are starting, status is refreshed this often (0: only every drift interval).
    progress_interval: float = DEFAULT_PROGRESS_INTERVAL
    metrics_socket: Any = None  # a bound socket.socket for /metrics, /healthz, /readyz; None: no server
    # "kubernetes": /metrics needs a bearer token the API server authenticates and authorizes
    # (reconcile/metrics_auth.py); "none": anyone who reaches the port.
    metrics_auth: str = "kubernetes"
    namespaces: tuple[str, ...] = ()  # what the operator serves (empty: all namespaces)
    peering: bool = False
    retry_delay: float = 10.0  # kopf.TemporaryError delay when the API keeps failing
    # "Before rollout: ensure snapshot": with weight_snapshots on and no explicit prepare,
    # every served version is snapshotted and verified before anything is applied (reconcile/weights.py).
    prepare: Prepare | None = None
    weight_snapshots: bool = True
    prometheus_url: str | None = None  # for canary analysis; spec.rollout.analysis.prometheusUrl wins
    # What the platform decides (fetcher image, allowed ServiceAccounts, ...): --platform FILE.
    platform: PlatformPolicy = DEFAULT_PLATFORM
    # Which optional APIs (ServiceMonitor, PrometheusRule, ScaledObject, HTTPRoute) the cluster serves is
    # asked again this often; a CRD event or an apply that finds a kind missing asks at once.
    api_discovery_interval: float = DEFAULT_API_DISCOVERY_INTERVAL


def _prepare_step(options: Options, kube: KubeClient) -> Prepare | None:
    if options.prepare is not None or not options.weight_snapshots:
        return options.prepare
    from codepilot_operator.reconcile.weights import snapshot_prepare

    return snapshot_prepare(kube)


@dataclass
class Outcome:
    """What one run of reconcile (or observe) left behind: the status as written, and any failure."""

    status: dict[str, Any]
    failure: Failure | None = None
    next_rollout: float | None = None  # seconds until the rollout wants its next run (None: idle)


def _lock_for(memo: kopf.Memo, uid: str) -> asyncio.Lock:
    """One reconcile per CodePilot at a time: a job must not race a change handler's apply.

    Weak values: a lock lives only while someone holds or waits on it, so deleted CodePilots leave
    nothing behind.
    """
    locks: weakref.WeakValueDictionary[str, asyncio.Lock] = memo.setdefault(
        MEMO_LOCKS, weakref.WeakValueDictionary()
    )
    lock = locks.get(uid)
    if lock is None:
        lock = locks[uid] = asyncio.Lock()
    return lock


async def _serve(
    trigger: str,
    options: Options,
    body: Mapping[str, Any],
    memo: kopf.Memo,
    logger: Logger,
    sink: StatusSink,
    *,
    retry: int = 0,
    owner: OwnerCheck | None = None,
    forget_action: ForgetAction | None = None,
) -> Outcome:
    """reconcile (or, for ``progress``, observe) and write status; failures are returned, not raised."""
    kube: KubeClient = memo[MEMO_KUBE]
    started = time.monotonic()
    try:
        children: Children | None = memo.get(MEMO_CHILDREN)
        if trigger == JOB_PROGRESS:
            result = await observe(body, children or kube, options.platform)
        else:
            result = await reconcile(
                body,
                kube,
                admission=memo[MEMO_ADMISSION],
                prepare=memo.get(MEMO_PREPARE),
                before_write=owner,
                rollout=_rollout_deps(options, memo),
                apis=memo.get(MEMO_APIS),
                children=children,
            )
    except (OwnerGone, Outdated):
        raise
    except Exception as exc:
        if isinstance(exc, KubeUnavailable) and exc.reason == "KindNotServed":
            refresh_apis_soon(memo)  # a CRD was removed since the catalog last looked
        failure = classify(exc, retry_delay=options.retry_delay, retry=retry)
        if failure.reason == RECONCILE_ERROR:  # a bug or unanticipated input: the traceback is for -v
            logger.debug("Reconcile raised", exc_info=exc)
        return Outcome(await _report_failure(kube, body, failure, logger, sink, trigger), failure)
    finally:
        metrics.RECONCILE_SECONDS.labels(trigger).observe(time.monotonic() - started)
    forget = forget_action or _client_forget(kube, body)
    status = await _report_result(kube, body, result, logger, sink, forget)
    return Outcome(status, next_rollout=result.rollout.next_tick if result.rollout else None)


def _rollout_deps(options: Options, memo: kopf.Memo) -> RolloutDeps:
    clients: dict[str, PrometheusClient] = memo.setdefault(MEMO_PROMETHEUS, {})

    def prometheus_for(url: str) -> PrometheusClient:
        if url not in clients:
            clients[url] = PrometheusClient(url)
        return clients[url]

    return RolloutDeps(prometheus_for=prometheus_for, default_prometheus_url=options.prometheus_url)


async def _report_failure(
    kube: KubeClient,
    body: Mapping[str, Any],
    failure: Failure,
    logger: Logger,
    sink: StatusSink,
    trigger: str,
) -> dict[str, Any]:
    metrics.RECONCILE_ERRORS.labels(failure.reason).inc()
    if failure.snapshot:
        metrics.SNAPSHOT_FAILURES.labels(body["metadata"]["namespace"], body["metadata"]["name"]).inc()
    if failure.delay is None and trigger in JOBS:  # the change handler reported it already
        logger.debug("Nothing applied: %s", failure.message)
    else:
        logger.warning("Nothing more applied (%s): %s", failure.reason, failure.message)
    return await write_status(kube, body, failure.conditions, logger, sink)


async def _report_result(
    kube: KubeClient,
    body: Mapping[str, Any],
    result: Result,
    logger: Logger,
    sink: StatusSink,
    forget_action: ForgetAction,
) -> dict[str, Any]:
    metrics.count_result(result.applied, result.pruned)
    if result.applied or result.pruned:
        logger.info(
            "Applied %s; pruned %s",
            ", ".join(result.applied) or "nothing",
            ", ".join(result.pruned) or "nothing",
        )
    else:
        logger.debug("All %d objects unchanged", result.desired)
    cp, rollout = result.codepilot, result.rollout  # cp: with the status the rollout step decided
    updates = serving_conditions(result.readiness, result.desired)
    decision = rollout.decision if rollout is not None else None
    promoted = decision is not None and decision.promote
    if result.prepared is not None:
        updates += result.prepared.conditions
        pins = result.prepared.status
    else:
        pins = carried_pins(parse_status_source(body), promoted, canary_served=len(result.served) > 1)
    updates += rollout_conditions(cp)
    if result.monitoring is not None:
        updates.append(result.monitoring)
    extra = {
        **(rollout.fields if rollout is not None else {}),
        **pins,
        "url": api_url(cp),
        "defaults": result.defaults,
        "modelCache": result.model_cache,
    }
    status = await write_status(kube, body, updates, logger, sink, readiness=result.readiness, extra=extra)
    await _report_defaults(kube, body, result.defaults, logger)
    if decision is not None:
        await _report_rollout(kube, body, cp, decision, logger)
    if rollout is not None and rollout.action is not None:
        logger.info("Rollout action %r handled", rollout.action)
        await forget_action()
    return status


async def _report_defaults(
    kube: KubeClient, body: Mapping[str, Any], defaults: list[dict[str, str]], logger: Logger
) -> None:
    """An Event when the values taken from the platform change (a new CodePilot, a new platform file)."""
    before = (body.get("status") or {}).get("defaults") or []
    if plain(before) == defaults:
        return
    platform = [d for d in defaults if d["from"] == Origin.PLATFORM.value]
    if not platform:
        return
    message = "from platform defaults: " + "; ".join(f"{d['field']}={d['value']}" for d in platform)
    logger.info("Defaulted %s", message)
    await events.post(kube, body, [Transition("Normal", DEFAULTED, message)], now_utc(), logger)


def parse_status_source(body: Mapping[str, Any]) -> Any:
    """The CodePilot as the body shows it (its status before this reconcile's decisions)."""
    from codepilot_operator.reconcile.reconcile import parse

    return parse(body)


async def _report_rollout(
    kube: KubeClient, body: Mapping[str, Any], cp: Any, decision: Any, logger: Logger
) -> None:
    """The rollout's Events (with the measured values) and metrics, once per decision."""
    meta = body["metadata"]
    namespace, name = meta["namespace"], meta["name"]
    state = decision.rollout
    version = state.version if state is not None else cp.spec.model.version
    weight = state.actual_weight if state is not None and cp.status.canary_version else 0
    metrics.CANARY_WEIGHT.labels(namespace, name).set(weight or 0)
    for count in decision.counts:
        if count == "promotion":
            metrics.PROMOTIONS.labels(namespace, name, version).inc()
        elif count == "rollback":
            metrics.ROLLBACKS.labels(namespace, name, version).inc()
        elif count.startswith("analysis:"):
            metrics.ANALYSES.labels(namespace, name, version, count.split(":", 1)[1]).inc()
    for event in decision.events:
        logger.info("Rollout: %s: %s", event.reason, event.message)
    transitions = [Transition(e.type, e.reason, e.message) for e in decision.events]
    await events.post(kube, body, transitions, now_utc(), logger)


ForgetAction = Callable[[], Awaitable[None]]


def _patch_forget(patch: kopf.Patch) -> ForgetAction:
    """In a change handler the annotation goes with kopf's patch, in the same write as status."""

    async def forget() -> None:
        patch.metadata.annotations[ACTION_ANNOTATION] = None

    return forget


def _client_forget(kube: KubeClient, body: Mapping[str, Any]) -> ForgetAction:
    """In a job, after status is written: remove the annotation with the operator's client."""
    meta = body["metadata"]

    async def forget() -> None:
        await kube.remove_annotation(CODEPILOT, meta["namespace"], meta["name"], ACTION_ANNOTATION)

    return forget


def _schedule(
    options: Options,
    memo: kopf.Memo,
    uid: str,
    status: Mapping[str, Any],
    failure: Failure | None = None,
    next_rollout: float | None = None,
) -> None:
    """After any run: the next drift resync one interval from now (sooner after a failure that asks to be
    retried sooner), and progress refreshes while pods are starting."""
    scheduler: Scheduler = memo[MEMO_SCHEDULER]
    delay = options.drift_interval
    if failure is not None and failure.delay is not None:
        delay = min(delay, failure.delay)
    scheduler.after(uid, JOB_DRIFT, delay)
    if next_rollout is not None:
        scheduler.after(uid, JOB_ROLLOUT, next_rollout)
    else:
        scheduler.cancel(uid, JOB_ROLLOUT)
    if options.progress_interval and waiting_for_pods(status):
        if scheduler.due(uid, JOB_PROGRESS) is None:
            scheduler.after(uid, JOB_PROGRESS, options.progress_interval)
    else:
        scheduler.cancel(uid, JOB_PROGRESS)


def _patch_sink(patch: kopf.Patch) -> StatusSink:
    async def write(wanted: dict[str, Any]) -> None:
        for key, value in wanted.items():
            patch.status[key] = value

    return write


async def handle_change(
    options: Options,
    body: kopf.Body,
    patch: kopf.Patch,
    memo: kopf.Memo,
    logger: Logger,
    reason: str,
    retry: int,
) -> None:
    raw = plain(body)
    uid = str(raw["metadata"]["uid"])
    if raw["metadata"].get("deletionTimestamp"):
        logger.debug("Being deleted: garbage collection removes the children; nothing to apply")
        return
    async with _lock_for(memo, uid):  # status goes into kopf's patch: kopf writes it with its bookkeeping
        outcome = await _serve(
            str(reason),
            options,
            raw,
            memo,
            logger,
            _patch_sink(patch),
            retry=retry,
            forget_action=_patch_forget(patch),
        )
    # kopf retries a failed change handler itself (TemporaryError below): drift keeps its full interval.
    _schedule(options, memo, uid, outcome.status, next_rollout=outcome.next_rollout)
    failure = outcome.failure
    if failure is None:
        return
    if failure.delay is None:
        raise kopf.PermanentError(f"nothing applied: {failure.message}")
    raise kopf.TemporaryError(f"nothing more applied: {failure.message}", delay=failure.delay)


async def run_job(job: str, options: Options, body: Mapping[str, Any], memo: kopf.Memo) -> float | None:
    """One drift or progress run for the CodePilot ``body``; returns the delay until this job runs again."""
    meta = body.get("metadata", {})
    uid = str(meta.get("uid"))
    interval = options.progress_interval if job == JOB_PROGRESS else options.drift_interval
    if job == JOB_CHILD:  # skipped below while a reconcile runs, which may predate the change: look again
        interval = CHILD_RETRY
    if meta.get("deletionTimestamp"):
        return None
    logger = kopf.LocalObjectLogger(body=kopf.Body(cast(kopf.RawBody, body)), settings=memo["settings"])
    if (body.get("status") or {}).get("observedGeneration") != meta.get("generation"):
        # The change handler has not finished this generation (or its status has not reached the index):
        # resyncing from this body would race it and write a stale status.
        logger.debug("Generation %s not handled yet; this %s run is skipped", meta.get("generation"), job)
        # A child's change needs no run of its own: the change handler's reconcile reads it too.
        return None if job == JOB_CHILD else interval
    lock = _lock_for(memo, uid)
    if lock.locked():
        logger.debug("A reconcile is running already; this %s run is skipped", job)
        return interval
    try:
        async with lock:
            owner = OwnerCheck(memo[MEMO_KUBE], body)
            sink = client_sink(memo[MEMO_KUBE], body, owner)
            outcome = await _serve(job, options, body, memo, logger, sink, owner=owner)
    except OwnerGone as exc:
        logger.debug("%s; its jobs stop", exc)
        memo[MEMO_SCHEDULER].cancel(uid)
        return None
    except Outdated as exc:
        logger.debug("%s; this %s run wrote nothing", exc, job)
        return interval
    if job in (JOB_DRIFT, JOB_ROLLOUT, JOB_CHILD):
        _schedule(options, memo, uid, outcome.status, outcome.failure, outcome.next_rollout)
        return None  # _schedule set the next drift and rollout runs
    if not waiting_for_pods(outcome.status):
        return None
    failure = outcome.failure
    return min(interval, failure.delay) if failure is not None and failure.delay is not None else interval


async def refresh_apis(memo: kopf.Memo) -> None:
    """Ask the cluster which optional APIs it serves; when that changed, reconcile every CodePilot now
    (the ones waiting for a kind, and the ones that left monitoring out)."""
    catalog: ApiCatalog | None = memo.get(MEMO_APIS)
    if catalog is None:
        return
    lock: asyncio.Lock = memo.setdefault("apis_lock", asyncio.Lock())
    async with lock:
        changed = await catalog.refresh()
    if changed and MEMO_SCHEDULER in memo:
        scheduler: Scheduler = memo[MEMO_SCHEDULER]
        for uid in list(memo[MEMO_BODIES]):
            scheduler.after(str(uid), JOB_DRIFT, 0)


def refresh_apis_soon(memo: kopf.Memo) -> None:
    """A refresh in the background (one at a time; a second request while one runs waits for it)."""
    tasks: set[asyncio.Task[None]] = memo.setdefault("apis_tasks", set())
    task = asyncio.create_task(refresh_apis(memo), name="api discovery")
    tasks.add(task)
    task.add_done_callback(tasks.discard)


async def _refresh_apis_every(memo: kopf.Memo, interval: float) -> None:
    while True:
        await asyncio.sleep(interval)
        await refresh_apis(memo)


def _probe_namespace(namespaces: tuple[str, ...]) -> str | None:
    """Where discovery lists: all namespaces, or the first named one (RBAC may grant only those)."""
    literal = [ns for ns in namespaces if not any(ch in ns for ch in "*?[")]
    return literal[0] if literal and len(literal) == len(namespaces) else None


def _job(job: str, options: Options, memo: kopf.Memo) -> Job:
    async def run(body: Mapping[str, Any]) -> float | None:
        return await run_job(job, options, body, memo)

    return run


def _first(index: Mapping[str, Any], uid: str) -> Mapping[str, Any] | None:
    store = index.get(uid)
    return next(iter(store), None) if store else None


def _child_index_id(kind: Kind) -> str:
    return f"children_{kind.plural}_{kind.group.replace('.', '_') or 'core'}"


def _watch_children(registry: kopf.OperatorRegistry, kind: Kind) -> None:
    """A kopf index of ``kind``'s objects labelled as ours, by (namespace, CodePilot), and an event
    handler that reconciles the owning CodePilot at once when someone else changed one of them.

    kopf watches only kinds the cluster serves, and starts watching one when its CRD appears.
    """
    resource = (kind.api_version, kind.plural)
    index_id = _child_index_id(kind)
    labels = {LABEL_MANAGED_BY: MANAGED_BY}

    @kopf.index(*resource, registry=registry, id=index_id, labels=labels)
    async def index_children(body: kopf.Body, **_: Any) -> dict[Any, dict[str, Any]]:
        key = owner_key(body)
        return {key: slim(body, kind)} if key is not None else {}

    @kopf.on.event(*resource, registry=registry, id=f"{index_id}_events", labels=labels)
    async def child_event(body: kopf.Body, memo: kopf.Memo, **kwargs: Any) -> None:
        children: Children | None = memo.get(MEMO_CHILDREN)
        if children is None or not children.observed(kind, kwargs.get("type"), body):
            return
        uid = controller_uid(body)
        scheduler: Scheduler | None = memo.get(MEMO_SCHEDULER)
        if uid is not None and scheduler is not None and uid in memo[MEMO_BODIES]:
            scheduler.after(uid, JOB_CHILD, 0)


def register(registry: kopf.OperatorRegistry, options: Options) -> None:
    """Attach every handler to ``registry`` (a fresh one per operator run, so options are per run)."""
    resource = (GROUP, VERSION, PLURAL)

    @kopf.index(*resource, registry=registry, id=INDEX)
    async def codepilot_bodies(body: kopf.Body, uid: str, **_: Any) -> dict[str, dict[str, Any]]:
        """Every live CodePilot's latest body by uid; kopf drops a deleted object from it at once."""
        return {str(uid): plain(body)}

    for kind in WATCHED_KINDS:
        _watch_children(registry, kind)

    @kopf.on.startup(registry=registry)
    async def startup(settings: kopf.OperatorSettings, memo: kopf.Memo, **kwargs: Any) -> None:
        """Fails permanently, never "retry in 60 s": a startup that cannot finish must end the process."""
        try:
            children = memo[MEMO_CHILDREN] = Children()
            for kind in WATCHED_KINDS:
                children.attach(kind, kwargs[_child_index_id(kind)])
                # Server-side: the API server sends only our children, not every ConfigMap and Pod.
                settings.watching.label_selectors[kind.api_version, kind.plural] = SELECTOR
            await _start(settings, memo, kwargs[INDEX])
        except Exception as exc:
            raise kopf.PermanentError(f"startup failed: {one_line(exc)}") from exc

    async def _start(settings: kopf.OperatorSettings, memo: kopf.Memo, bodies: kopf.Index[str, Any]) -> None:
        settings.posting.loggers = False  # Events only for transitions (reconcile/events.py)
        settings.watching.server_timeout = 300
        settings.networking.request_timeout = 60
        memo["settings"] = settings
        state = memo[MEMO_HEALTH] = health.Health(
            watch_expected=not options.peering, indexed=lambda: len(bodies)
        )
        # Before the server: the /metrics guard asks the API server who presents a token.
        kube = memo[MEMO_KUBE] = KubeClient(options.kube_config or load_config(options.kubeconfig))
        if options.metrics_socket is not None:
            guard = [MetricsAuth(kube).middleware] if options.metrics_auth == "kubernetes" else []
            memo["metrics_runner"] = await metrics.start_server(
                state, options.metrics_socket, middlewares=guard
            )
        memo[MEMO_ADMISSION] = Admission(kube, options.platform)
        memo[MEMO_BODIES] = bodies
        memo[MEMO_APIS] = ApiCatalog(kube, _probe_namespace(options.namespaces))
        await refresh_apis(memo)  # before the first reconcile; if the API is down, a later one asks
        memo["apis_loop"] = asyncio.create_task(
            _refresh_apis_every(memo, options.api_discovery_interval), name="api discovery loop"
        )
        # Built once: the snapshot step remembers which pins it verified recently (REVERIFY_SECONDS).
        memo[MEMO_PREPARE] = _prepare_step(options, kube)

        scheduler = memo[MEMO_SCHEDULER] = Scheduler(lambda uid: _first(bodies, uid))
        for job in JOBS:
            scheduler.register(job, _job(job, options, memo))
        state.scheduler = asyncio.create_task(scheduler.run(), name="codepilot jobs")
        memo["api_check"] = asyncio.create_task(
            health.await_api(state, kube, health.probe_namespaces(options.namespaces)), name="api check"
        )
        state.started = True

    @kopf.on.cleanup(registry=registry)
    async def cleanup(memo: kopf.Memo, **_: Any) -> None:
        state: health.Health | None = memo.get(MEMO_HEALTH)
        loops = (state.scheduler if state else None, memo.get("api_check"), memo.get("apis_loop"))
        tasks = [t for t in (*loops, *memo.get("apis_tasks", ())) if t is not None]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        if MEMO_KUBE in memo:
            await memo[MEMO_KUBE].close()
        for client in memo.get(MEMO_PROMETHEUS, {}).values():
            await client.close()
        if "metrics_runner" in memo:
            await memo["metrics_runner"].cleanup()

    @kopf.on.event(
        "apiextensions.k8s.io",
        "v1",
        "customresourcedefinitions",
        registry=registry,
        when=lambda name, **_: name in OPTIONAL_CRDS,
    )
    async def optional_crd_changed(memo: kopf.Memo, name: str, **_: Any) -> None:
        """An optional kind's CRD was created, changed or deleted: ask discovery now, not at the next
        interval. A new CRD is served only once Established; that status change is another event."""
        log.debug("CRD %s changed; refreshing API discovery", name)
        refresh_apis_soon(memo)

    @kopf.on.login(registry=registry)
    def login(**kwargs: Any) -> kopf.ConnectionInfo | None:
        info: kopf.ConnectionInfo | None = kopf.login_with_service_account(**kwargs)
        return info or kopf.login_with_kubeconfig(**kwargs)

    @kopf.on.resume(*resource, registry=registry)
    @kopf.on.create(*resource, registry=registry)
    @kopf.on.update(*resource, registry=registry)
    async def on_change(**kwargs: Any) -> None:
        await handle_change(
            options,
            kwargs["body"],
            kwargs["patch"],
            kwargs["memo"],
            kwargs["logger"],
            kwargs["reason"],
            kwargs["retry"],
        )
