"""kopf handlers: thin glue from kopf's triggers to the one ``reconcile()``.

create, update and resume share one handler (kopf runs it once per change, and once per object when the
operator starts), and a timer re-runs the same reconcile every ``drift_interval`` seconds so that a child
deleted or edited by hand is restored. Status goes into kopf's ``patch``: kopf writes it together with
its own bookkeeping, and only when it differs from what is there (an idle resync writes nothing).

No finalizer is used: children carry a controller ownerReference, so the API server's garbage
collector deletes them with the CodePilot, and a missing operator never blocks a deletion.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import time
import weakref
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import kopf

from codepilot_operator.api import GROUP, PLURAL, VERSION
from codepilot_operator.api.status import ConditionStatus, ConditionType
from codepilot_operator.clients.kube import KubeClient, KubeUnavailable, load_config
from codepilot_operator.reconcile import metrics
from codepilot_operator.reconcile.reconcile import (
    InvalidSpec,
    Prepare,
    PrepareFailed,
    observe,
    plain,
    reconcile,
)
from codepilot_operator.reconcile.status import (
    ConditionUpdate,
    Readiness,
    apply_failed_conditions,
    invalid_spec_conditions,
    now_utc,
    serving_conditions,
    status_patch,
    transitions,
)
from codepilot_operator.render.deployment import deployment_name
from codepilot_operator.render.gateway import api_url
from codepilot_operator.rollout.tracks import next_tracks

DEFAULT_DRIFT_INTERVAL = 60.0
DEFAULT_PROGRESS_INTERVAL = 15.0
MEMO_KUBE = "kube"
MEMO_PREPARE = "prepare"
MEMO_PROBES = "probes"
MEMO_LOCKS = "locks"
TIMERS = frozenset({"timer", "progress"})


@dataclass(frozen=True)
class Options:
    kubeconfig: str | None = None
    drift_interval: float = DEFAULT_DRIFT_INTERVAL
    # While pods are starting, status is refreshed this often (0: only every drift interval).
    progress_interval: float = DEFAULT_PROGRESS_INTERVAL
    metrics_host: str = "0.0.0.0"
    metrics_port: int = 8080  # 0: no metrics/probe server
    retry_delay: float = 10.0  # kopf.TemporaryError delay when the API keeps failing
    # "Before rollout: ensure snapshot": with weight_snapshots on and no explicit prepare,
    # every served version is snapshotted and verified before anything is applied (reconcile/weights.py).
    prepare: Prepare | None = None
    weight_snapshots: bool = True


def _prepare_step(options: Options, kube: KubeClient) -> Prepare | None:
    if options.prepare is not None or not options.weight_snapshots:
        return options.prepare
    from codepilot_operator.reconcile.weights import snapshot_prepare

    return snapshot_prepare(kube)


def _write_status(
    body: kopf.Body,
    patch: kopf.Patch,
    updates: Sequence[ConditionUpdate],
    readiness: Sequence[Readiness] | None = None,
    extra: dict[str, Any] | None = None,
) -> None:
    current = plain(body.get("status") or {})
    generation = body.get("metadata", {}).get("generation")
    wanted = status_patch(
        current, updates, generation=generation, now=now_utc(), readiness=readiness, extra=extra
    )
    if not wanted:
        return
    for key, value in wanted.items():
        patch.status[key] = value
    for event in transitions(current.get("conditions") or [], wanted["conditions"]):
        kopf.event(body, type=event.type, reason=event.reason, message=event.message)


async def run_reconcile(
    trigger: str,
    options: Options,
    body: kopf.Body,
    patch: kopf.Patch,
    memo: kopf.Memo,
    logger: logging.Logger | logging.LoggerAdapter[Any],
) -> None:
    if body.get("metadata", {}).get("deletionTimestamp"):
        logger.debug("Being deleted: garbage collection removes the children; nothing to apply")
        return
    generation = body.get("metadata", {}).get("generation")
    if trigger in TIMERS and (body.get("status") or {}).get("observedGeneration") != generation:
        # The change handler has not finished this generation (or its status has not reached us yet):
        # resyncing from this body would race it and write a stale status.
        logger.debug("Generation %s not handled yet; this resync is skipped", generation)
        return
    lock = _lock_for(memo, str(body.get("metadata", {}).get("uid")))
    if trigger in TIMERS and lock.locked():
        logger.debug("A reconcile is running already; this resync is skipped")
        return
    async with lock:
        await _reconcile_locked(trigger, options, body, patch, memo, logger)


def _lock_for(memo: kopf.Memo, uid: str) -> asyncio.Lock:
    """One reconcile per CodePilot at a time: the timer must not race a change handler's apply.

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


async def _reconcile_locked(
    trigger: str,
    options: Options,
    body: kopf.Body,
    patch: kopf.Patch,
    memo: kopf.Memo,
    logger: logging.Logger | logging.LoggerAdapter[Any],
) -> None:
    kube: KubeClient = memo[MEMO_KUBE]
    started = time.monotonic()
    try:
        if trigger == "progress":
            result = await observe(body, kube)
        else:
            result = await reconcile(body, kube, prepare=memo.get(MEMO_PREPARE))
    except InvalidSpec as exc:
        metrics.RECONCILE_ERRORS.labels("InvalidSpec").inc()
        _write_status(body, patch, invalid_spec_conditions(exc.problems))
        if trigger in TIMERS:  # the change handler reported it already: no retries, no new Events
            logger.debug("Invalid spec, nothing applied: %s", exc)
            return
        raise kopf.PermanentError(f"invalid spec, nothing applied: {exc}") from None
    except PrepareFailed as exc:
        metrics.RECONCILE_ERRORS.labels(exc.reason).inc()
        metrics.SNAPSHOT_FAILURES.labels(body["metadata"]["namespace"], body["metadata"]["name"]).inc()
        _write_status(body, patch, exc.conditions)
        raise kopf.TemporaryError(f"nothing applied: {exc}", delay=exc.delay) from None
    except KubeUnavailable as exc:
        metrics.RECONCILE_ERRORS.labels(exc.reason).inc()
        _write_status(body, patch, apply_failed_conditions(str(exc)))
        raise kopf.TemporaryError(str(exc), delay=options.retry_delay) from None
    finally:
        metrics.RECONCILE_SECONDS.labels(trigger).observe(time.monotonic() - started)
    metrics.count_result(result.applied, result.pruned)
    if result.applied or result.pruned:
        logger.info(
            "Applied %s; pruned %s",
            ", ".join(result.applied) or "nothing",
            ", ".join(result.pruned) or "nothing",
        )
    else:
        logger.debug("All %d objects unchanged", result.desired)
    updates = serving_conditions(result.readiness, result.desired)
    pins = None
    if result.prepared is not None:
        updates += result.prepared.conditions
        pins = result.prepared.status
    cp = result.codepilot
    new = result.served[-1].version if result.served else cp.spec.model.version
    ready = {r.name: r.ready for r in result.readiness}
    extra = next_tracks(cp, result.served, bool(ready.get(deployment_name(cp, new))), pins)
    extra["url"] = api_url(cp)
    _write_status(body, patch, updates, result.readiness, extra)


def register(registry: kopf.OperatorRegistry, options: Options) -> None:
    """Attach every handler to ``registry`` (a fresh one per operator run, so options are per run)."""
    resource = (GROUP, VERSION, PLURAL)

    @kopf.on.startup(registry=registry)
    async def startup(settings: kopf.OperatorSettings, memo: kopf.Memo, **_: Any) -> None:
        settings.posting.loggers = False  # Events only for transitions (kopf.event), not for log lines
        settings.watching.server_timeout = 300
        settings.networking.request_timeout = 60
        probes = metrics.Probes()
        memo[MEMO_PROBES] = probes
        if options.metrics_port:
            memo["metrics_runner"] = await metrics.start_server(
                probes, options.metrics_host, options.metrics_port
            )
        memo[MEMO_KUBE] = KubeClient(load_config(options.kubeconfig))
        # Built once: the snapshot step remembers which pins it verified recently (REVERIFY_SECONDS).
        memo[MEMO_PREPARE] = _prepare_step(options, memo[MEMO_KUBE])
        probes.ready = True

    @kopf.on.cleanup(registry=registry)
    async def cleanup(memo: kopf.Memo, **_: Any) -> None:
        if MEMO_KUBE in memo:
            await memo[MEMO_KUBE].close()
        if "metrics_runner" in memo:
            await memo["metrics_runner"].cleanup()

    @kopf.on.login(registry=registry)
    def login(**kwargs: Any) -> kopf.ConnectionInfo | None:
        info: kopf.ConnectionInfo | None = kopf.login_with_service_account(**kwargs)
        return info or kopf.login_with_kubeconfig(**kwargs)

    @kopf.on.resume(*resource, registry=registry)
    @kopf.on.create(*resource, registry=registry)
    @kopf.on.update(*resource, registry=registry)
    async def on_change(**kwargs: Any) -> None:
        await run_reconcile(
            str(kwargs["reason"]), options, kwargs["body"], kwargs["patch"], kwargs["memo"], kwargs["logger"]
        )

    @kopf.timer(
        *resource, registry=registry, interval=options.drift_interval, initial_delay=options.drift_interval
    )
    async def drift(**kwargs: Any) -> None:
        await run_reconcile(
            "timer", options, kwargs["body"], kwargs["patch"], kwargs["memo"], kwargs["logger"]
        )

    if options.progress_interval:

        @kopf.timer(
            *resource,
            registry=registry,
            interval=options.progress_interval,
            initial_delay=options.progress_interval,
            when=_waiting_for_pods,
        )
        async def progress(**kwargs: Any) -> None:
            await run_reconcile(
                "progress", options, kwargs["body"], kwargs["patch"], kwargs["memo"], kwargs["logger"]
            )

    _timers_without_finalizer(registry)


def _waiting_for_pods(status: Mapping[str, Any], **_: Any) -> bool:
    """While a valid CodePilot is not Ready, status is refreshed every progress interval, not only on drift.

    kopf starts and stops this timer as the filter's answer changes (on each watch event of the object).
    """
    conditions = {c.get("type"): c for c in status.get("conditions") or []}
    ready = conditions.get(ConditionType.READY, {})
    reconciled = conditions.get(ConditionType.RECONCILED, {})
    return bool(
        reconciled.get("status") == ConditionStatus.TRUE and ready.get("status") != ConditionStatus.TRUE
    )


def _timers_without_finalizer(registry: kopf.OperatorRegistry) -> None:
    """kopf puts a finalizer on every object with a timer, only to stop the timer "gracefully".

    Our timer holds no state, so that finalizer buys nothing and costs a write per CodePilot, and a
    CodePilot could not be deleted while the operator is down. kopf has no public switch for it, so the
    flag is cleared on the registered handler (tests/e2e asserts that no finalizer is ever written).
    """
    try:
        spawning = registry._spawning._handlers
    except AttributeError:  # a kopf whose internals moved: keep its finalizer rather than fail to start
        logging.getLogger(__name__).warning("kopf internals changed: timers keep kopf's finalizer")
        return
    for index, handler in enumerate(spawning):
        if getattr(handler, "requires_finalizer", None):
            spawning[index] = dataclasses.replace(handler, requires_finalizer=False)
