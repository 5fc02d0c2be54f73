"""Optional APIs: which of the kinds that come from add-ons the cluster serves, and what that means for a
CodePilot.

The Prometheus Operator (ServiceMonitor, PrometheusRule), KEDA (ScaledObject) and the Gateway API
(HTTPRoute) are add-ons a cluster may not have. Without them a model can still be served, so:

- a kind only monitoring needs is left out of the apply, and one condition (MonitoringReady False,
  reason KindNotServed) says which kinds are missing and what the CodePilot goes without;
- a kind the spec explicitly asks for (``spec.autoscaling.provider: KEDA``, ``spec.rollout.traffic.
  gateway``) cannot be left out without serving something else than what was asked: the reconcile stops
  before anything is written, with a condition and an Event naming the field, and without a retry loop
  (the next attempt comes when the catalog sees the kind appear, or the spec changes).

The catalog is refreshed when the operator starts, when an optional kind's CRD changes, when an apply
finds a kind gone, and every ``interval`` seconds as a bound for anything else (an aggregated API, a
missed event). A refresh is one list with limit 1 per optional kind.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from codepilot_operator.api import CodePilot, ScalingProvider
from codepilot_operator.api.status import ConditionStatus, ConditionType, Reason
from codepilot_operator.clients.kube import Kind, KubeClient
from codepilot_operator.reconcile.status import ConditionUpdate

log = logging.getLogger(__name__)

SERVICE_MONITOR = Kind("monitoring.coreos.com/v1", "ServiceMonitor")
PROMETHEUS_RULE = Kind("monitoring.coreos.com/v1", "PrometheusRule")
SCALED_OBJECT = Kind("keda.sh/v1alpha1", "ScaledObject")
HTTP_ROUTE = Kind("gateway.networking.k8s.io/v1", "HTTPRoute")
DEFAULT_INTERVAL = 300.0  # seconds: the bound on noticing an API that appeared without a CRD event


@dataclass(frozen=True)
class OptionalApi:
    kind: Kind
    provider: str  # what a user installs to get it
    # What a CodePilot goes without when only monitoring would have used it ("" when the spec asks for
    # it explicitly: then ``required_by`` names the field).
    lost: str = ""
    required_by: Callable[[CodePilot], str | None] = lambda cp: None

    @property
    def crd(self) -> str:
        """The CustomResourceDefinition's name (plural.group), what a CRD event is matched by."""
        return f"{self.kind.plural}.{self.kind.group}"

    @property
    def label(self) -> str:
        return f"{self.kind.kind} ({self.kind.api_version})"


def _keda(cp: CodePilot) -> str | None:
    autoscaling = cp.spec.autoscaling
    if autoscaling.enabled and autoscaling.provider is ScalingProvider.KEDA:
        return "spec.autoscaling.provider"
    return None


def _gateway(cp: CodePilot) -> str | None:
    return "spec.rollout.traffic.gateway" if cp.spec.rollout.traffic.gateway is not None else None


OPTIONAL_APIS: tuple[OptionalApi, ...] = (
    OptionalApi(SERVICE_MONITOR, "the Prometheus Operator", lost="no scrape config"),
    OptionalApi(PROMETHEUS_RULE, "the Prometheus Operator", lost="no alerts and no recording rules"),
    OptionalApi(SCALED_OBJECT, "KEDA", required_by=_keda),
    OptionalApi(HTTP_ROUTE, "the Gateway API CRDs", required_by=_gateway),
)
OPTIONAL_KINDS = frozenset(api.kind for api in OPTIONAL_APIS)
OPTIONAL_CRDS = frozenset(api.crd for api in OPTIONAL_APIS)
_BY_KIND = {api.kind: api for api in OPTIONAL_APIS}


class KindsNotServed(Exception):
    """The spec asks for a kind the cluster does not serve; ``problems`` name the fields. Nothing was
    written."""

    def __init__(self, problems: list[str]):
        super().__init__("; ".join(problems))
        self.problems = problems


class ApiCatalog:
    """What the cluster serves of ``OPTIONAL_APIS``; every other kind is assumed served.

    Until the first refresh succeeds nothing is known, and every kind counts as served (an apply that
    then finds one missing refreshes the catalog).
    """

    def __init__(self, kube: KubeClient | None = None, namespace: str | None = None):
        self._kube = kube
        self._namespace = namespace  # where to probe: the operator may be allowed only some namespaces
        self._missing: frozenset[Kind] | None = None

    @staticmethod
    def known(missing: Iterable[Kind]) -> ApiCatalog:
        """A catalog with a fixed answer (for callers that have no cluster to ask, and tests)."""
        catalog = ApiCatalog()
        catalog._missing = frozenset(missing)
        return catalog

    @property
    def missing(self) -> frozenset[Kind]:
        return self._missing or frozenset()

    def serves(self, kind: Kind) -> bool:
        return kind not in self.missing

    async def refresh(self) -> bool:
        """Ask the API server again; True when the answer changed. API errors keep the last answer."""
        if self._kube is None:
            return False
        missing = set()
        for api in OPTIONAL_APIS:
            try:
                served = await self._kube.serves(api.kind, self._namespace)
            except Exception as exc:  # the API is down or refuses: unknown, keep what we knew
                log.warning("API discovery of %s failed, kept the last answer: %s", api.label, exc)
                return False
            if not served:
                missing.add(api.kind)
        found = frozenset(missing)
        changed = found != self._missing
        if changed:
            names = ", ".join(sorted(k.kind for k in found)) or "none"
            log.info("Optional APIs the cluster does not serve: %s", names)
        self._missing = found
        return changed

    def required_missing(self, cp: CodePilot) -> list[str]:
        """Problems naming each field of ``cp`` that needs a kind the cluster does not serve."""
        problems = []
        for api in OPTIONAL_APIS:
            field = api.required_by(cp)
            if field is not None and not self.serves(api.kind):
                problems.append(
                    f"{field}: needs {api.label} from {api.provider}, which this cluster does not serve "
                    "(install its CRD; the CodePilot is reconciled again when it appears)"
                )
        return problems

    def split(self, desired: Sequence[dict[str, Any]]) -> tuple[list[dict[str, Any]], list[Kind]]:
        """(objects the cluster can take, kinds left out because it does not serve them)."""
        kept, left_out = [], []
        for obj in desired:
            kind = Kind.of(obj)
            if self.serves(kind):
                kept.append(obj)
            elif kind not in left_out:
                left_out.append(kind)
        return kept, left_out


def monitoring_condition(rendered: Iterable[Kind], left_out: Sequence[Kind]) -> ConditionUpdate:
    """MonitoringReady: what the CodePilot goes without when monitoring kinds were left out."""
    wanted = [k for k in rendered if k in (SERVICE_MONITOR, PROMETHEUS_RULE)]
    if not wanted:
        return ConditionUpdate(
            ConditionType.MONITORING_READY,
            ConditionStatus.TRUE,
            Reason.NOT_REQUESTED,
            "no alerts and no Prometheus autoscaling signal: nothing to monitor",
        )
    missing = [_BY_KIND[k] for k in left_out if k in _BY_KIND]
    if not missing:
        applied = " and ".join(k.kind for k in wanted) + " applied"
        return ConditionUpdate(
            ConditionType.MONITORING_READY, ConditionStatus.TRUE, Reason.MONITORING_APPLIED, applied
        )
    kinds = ", ".join(api.label for api in missing)
    lost = "; ".join(api.lost for api in missing if api.lost)
    providers = " / ".join(sorted({api.provider for api in missing}))
    return ConditionUpdate(
        ConditionType.MONITORING_READY,
        ConditionStatus.FALSE,
        Reason.KIND_NOT_SERVED,
        f"the cluster does not serve {kinds}: {lost}; serving is not affected. Install {providers} and "
        "they are applied when their CRDs appear",
    )
