"""Operational alerts: the CodePilot cannot serve, cannot grow, or its rollouts and weights fail.

Metrics read (names in api/contract.py):
- kube-state-metrics: Deployment replicas and age, HPA current and max replicas, the weight fetcher's
  init container (restarts, waiting reason) and the pods' owners;
- the operator's own metrics (labels ``namespace``, ``codepilot`` and, where a version is concerned,
  ``version``; scraped with honorLabels so ``namespace`` is the CodePilot's): rollbacks and snapshot
  failures.

The weight fetcher itself exports nothing: it is a short-lived init container in the user's pod, gone
before any scrape, so its failures are seen where Kubernetes records them.

kube-state-metrics knows Deployments and HPAs by name only, so these rules name the children of the
versions served right now; the operator re-renders them whenever the served versions change.
"""

from __future__ import annotations

from typing import Any

from codepilot_operator.api import CodePilot
from codepilot_operator.api.contract import (
    KSM_DEPLOYMENT_AVAILABLE,
    KSM_DEPLOYMENT_CREATED,
    KSM_DEPLOYMENT_REPLICAS,
    KSM_HPA_CURRENT_REPLICAS,
    KSM_HPA_MAX_REPLICAS,
    KSM_INIT_CONTAINER_RESTARTS,
    KSM_INIT_CONTAINER_WAITING,
    KSM_POD_OWNER,
    ROLLOUT_ROLLBACKS,
    SNAPSHOT_FAILURES,
)
from codepilot_operator.api.fields import parse_duration
from codepilot_operator.render.deployment import deployment_name
from codepilot_operator.render.fetcher import FETCH_CONTAINER
from codepilot_operator.render.hpa import hpa_name
from codepilot_operator.render.rules_common import (
    NAMESPACE,
    NAMESPACE_T,
    POD,
    POD_T,
    alert_rule,
    alternation,
    by,
    prom_duration,
    selector,
)
from codepilot_operator.render.served import ServedVersion

NO_READY_REPLICA_ALERT = "CodePilotNoReadyReplica"
AUTOSCALER_MAXED_ALERT = "CodePilotAutoscalerAtMaxReplicas"
ROLLED_BACK_ALERT = "CodePilotCanaryRolledBack"
WEIGHT_FETCH_ALERT = "CodePilotWeightFetchFailing"
SNAPSHOT_ALERT = "CodePilotSnapshotFailing"

_DEPLOYMENT_LEVEL = (NAMESPACE, "deployment")
_HPA_LEVEL = (NAMESPACE, "horizontalpodautoscaler")
_POD_LEVEL = (NAMESPACE, POD)
FETCH_WINDOW = "15m"


def _ksm(cp: CodePilot, metric: str, label: str, names: list[str], level: tuple[str, ...]) -> str:
    sel = f'{{{NAMESPACE}="{cp.metadata.namespace}", {label}=~"{alternation(names)}"}}'
    return f"max by ({by(level)}) ({metric}{sel})"


def counter_increased(metric: str, sel: str, window: str, labels: tuple[str, ...]) -> str:
    """True while ``metric`` grew within ``window``, including a series that was born already above 0.

    ``increase`` needs two samples, so a counter the operator creates at its first failure would
    otherwise never fire.
    """
    return (
        f"sum by ({by(labels)}) (increase({metric}{sel}[{window}])) > 0\n"
        f"or\nsum by ({by(labels)}) ({metric}{sel} unless {metric}{sel} offset {window}) > 0"
    )


def no_ready_replica_alert(cp: CodePilot, served: list[ServedVersion]) -> dict[str, Any]:
    names = [deployment_name(cp, s.version) for s in served]
    startup = prom_duration(parse_duration(cp.spec.runtime.startup_timeout))
    available = _ksm(cp, KSM_DEPLOYMENT_AVAILABLE, "deployment", names, _DEPLOYMENT_LEVEL)
    wanted = _ksm(cp, KSM_DEPLOYMENT_REPLICAS, "deployment", names, _DEPLOYMENT_LEVEL)
    created = _ksm(cp, KSM_DEPLOYMENT_CREATED, "deployment", names, _DEPLOYMENT_LEVEL)
    expr = (
        f"({available} < 1\nand on ({by(_DEPLOYMENT_LEVEL)})\n{wanted} > 0)\n"
        f"unless on ({by(_DEPLOYMENT_LEVEL)})\n"
        f"{created} > time() - {int(parse_duration(cp.spec.runtime.startup_timeout))}"
    )
    return alert_rule(
        cp,
        NO_READY_REPLICA_ALERT,
        expr,
        "critical",
        summary=f"CodePilot {cp.metadata.name}: Deployment {{{{ $labels.deployment }}}} has no ready replica",
        description=(
            "Deployment {{ $labels.deployment }} in namespace {{ $labels.namespace }} has had no available "
            f"replica for 5 minutes although it is older than its startup timeout ({startup}); that model "
            f"version serves nothing ({KSM_DEPLOYMENT_AVAILABLE})."
        ),
        for_="5m",
    )


def autoscaler_maxed_alert(cp: CodePilot, served: list[ServedVersion]) -> dict[str, Any]:
    names = [hpa_name(cp, s.version) for s in served]
    current = _ksm(cp, KSM_HPA_CURRENT_REPLICAS, "horizontalpodautoscaler", names, _HPA_LEVEL)
    maximum = _ksm(cp, KSM_HPA_MAX_REPLICAS, "horizontalpodautoscaler", names, _HPA_LEVEL)
    return alert_rule(
        cp,
        AUTOSCALER_MAXED_ALERT,
        f"{current}\n>=\n{maximum}",
        "warning",
        summary=f"CodePilot {cp.metadata.name}: autoscaler {{{{ $labels.horizontalpodautoscaler }}}} is "
        "pinned at maxReplicas",
        description=(
            "HorizontalPodAutoscaler {{ $labels.horizontalpodautoscaler }} has run at maxReplicas "
            f"({cp.spec.autoscaling.max_replicas}) for 15 minutes: demand exceeds what it may add; raise "
            "spec.autoscaling.maxReplicas or add GPU capacity "
            f"({KSM_HPA_CURRENT_REPLICAS})."
        ),
        for_="15m",
    )


def rolled_back_alert(cp: CodePilot) -> dict[str, Any]:
    return alert_rule(
        cp,
        ROLLED_BACK_ALERT,
        counter_increased(ROLLOUT_ROLLBACKS.name, selector(cp), "30m", ROLLOUT_ROLLBACKS.labels),
        "warning",
        summary=f"CodePilot {cp.metadata.name}: canary {{{{ $labels.version }}}} was rolled back",
        description=(
            "The rollout of model version {{ $labels.version }} in namespace {{ $labels.namespace }} failed "
            f"its analysis and was rolled back in the last 30 minutes ({ROLLOUT_ROLLBACKS.name}); see the "
            "CodePilot's RolledBack condition and events."
        ),
    )


def _served_pods(cp: CodePilot, served: list[ServedVersion]) -> str:
    """1 per pod of a served version's Deployment, by (namespace, pod).

    The join goes through the pod's ReplicaSet (``<deployment>-<pod-template-hash>``), not the pod's
    name: Kubernetes cuts a generated name's prefix to 58 characters, so pods of a long-named
    Deployment do not start with ``<deployment>-<hash>-``. One segment after the Deployment's name
    keeps a look-alike Deployment (``<deployment>-extra``) out.
    """
    deployments = alternation([deployment_name(cp, s.version) for s in served])
    owner = (
        f'{KSM_POD_OWNER}{{{NAMESPACE}="{cp.metadata.namespace}", owner_kind="ReplicaSet", '
        f'owner_name=~"({deployments})-[a-z0-9]+"}}'
    )
    return f"max by ({by(_POD_LEVEL)}) ({owner})"


def weight_fetch_alert(cp: CodePilot, served: list[ServedVersion]) -> dict[str, Any]:
    """Per pod: its fetcher restarted within the window, or it waits in CrashLoopBackOff.

    Restarts catch a fetch that fails and is retried; the waiting reason catches a pod already in
    back-off when first scraped, whose restart counter is born above zero (``increase`` needs two
    samples). Other waiting reasons (ContainerCreating while the pod starts) are not fetch failures.
    """
    fetcher = f'{NAMESPACE}="{cp.metadata.namespace}", container="{FETCH_CONTAINER}"'
    restarts = f"{KSM_INIT_CONTAINER_RESTARTS}{{{fetcher}}}[{FETCH_WINDOW}]"
    backoff = f'{KSM_INIT_CONTAINER_WAITING}{{{fetcher}, reason="CrashLoopBackOff"}}'
    pod_level = by(_POD_LEVEL)
    expr = (
        f"(sum by ({pod_level}) (increase({restarts})) > 0\n"
        f"or\nmax by ({pod_level}) ({backoff}) > 0)\n"
        f"* on ({pod_level}) group_left ()\n{_served_pods(cp, served)}"
    )
    return alert_rule(
        cp,
        WEIGHT_FETCH_ALERT,
        expr,
        "warning",
        summary=f"CodePilot {cp.metadata.name}: pod {POD_T} cannot fetch its model weights",
        description=(
            f"The {FETCH_CONTAINER} init container of pod {POD_T} in namespace {NAMESPACE_T} restarted in "
            f"the last {FETCH_WINDOW} or is in CrashLoopBackOff ({KSM_INIT_CONTAINER_RESTARTS}, "
            f"{KSM_INIT_CONTAINER_WAITING}): the pod cannot start serving. See why with kubectl logs -n "
            f"{NAMESPACE_T} {POD_T} -c {FETCH_CONTAINER}; check the S3 endpoint, the credentials and the "
            "snapshot."
        ),
    )


def snapshot_alert(cp: CodePilot) -> dict[str, Any]:
    return alert_rule(
        cp,
        SNAPSHOT_ALERT,
        counter_increased(SNAPSHOT_FAILURES.name, selector(cp), "30m", SNAPSHOT_FAILURES.labels),
        "warning",
        summary=f"CodePilot {cp.metadata.name}: weight snapshots fail",
        description=(
            f"The operator failed to snapshot model weights for CodePilot {cp.metadata.name} in the last 30 "
            f"minutes ({SNAPSHOT_FAILURES.name}); rollouts wait for a snapshot (see the SnapshotFailed "
            "condition)."
        ),
    )


def operational_group(cp: CodePilot, served: list[ServedVersion]) -> dict[str, Any]:
    rules = [no_ready_replica_alert(cp, served)]
    if cp.spec.autoscaling.enabled:
        rules.append(autoscaler_maxed_alert(cp, served))
    rules += [rolled_back_alert(cp), weight_fetch_alert(cp, served), snapshot_alert(cp)]
    return {"name": f"codepilot.{cp.metadata.name}.operational", "rules": rules}
