"""reconcile() and the Kubernetes client in-process, over HTTP against the emulator (no kopf)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

import pytest

from codepilot_operator.api import CodePilot
from codepilot_operator.api.platform import ALLOW_LABEL, DEFAULT_PLATFORM, PlatformPolicy
from codepilot_operator.clients.kube import (
    Kind,
    KubeClient,
    KubeUnavailable,
    PermissionDenied,
    RetryPolicy,
    load_config,
)
from codepilot_operator.clients.permissions import PERMISSIONS, Permission
from codepilot_operator.loader import parse_codepilot
from codepilot_operator.reconcile.admission import Admission, PolicyRefused
from codepilot_operator.reconcile.reconcile import Prepared, reconcile
from codepilot_operator.reconcile.status import ConditionStatus, ConditionUpdate
from codepilot_operator.render import ServedVersion, served_versions
from tests.e2e.conftest import Api
from tests.fixtures.kube import OPERATOR_TOKEN, EmulatorThread
from tests.helpers import manifest

T = TypeVar("T")
FAST = RetryPolicy(attempts=3, base_delay=0.01, max_delay=0.05)


def with_client(
    emulator: EmulatorThread,
    tmp_path: Path,
    fn: Callable[[KubeClient], Awaitable[T]],
    token: str = OPERATOR_TOKEN,
    **kwargs: Any,
) -> T:
    config = load_config(str(emulator.kubeconfig(tmp_path / "kubeconfig", token=token)))

    async def run() -> T:
        client = KubeClient(config, retry=FAST, **kwargs)
        try:
            return await fn(client)
        finally:
            await client.close()

    return asyncio.run(run())


def test_a_call_outside_the_permission_table_is_refused_before_it_is_sent(
    kube_emulator: EmulatorThread, tmp_path: Path
) -> None:
    before = len(kube_emulator.call(lambda e: e.calls))
    with pytest.raises(PermissionDenied, match="secrets"):
        with_client(kube_emulator, tmp_path, lambda c: c.list(Kind("v1", "Secret"), "default", {}))
    assert len(kube_emulator.call(lambda e: e.calls)) == before


def test_persistent_server_errors_end_in_kube_unavailable(
    kube_emulator: EmulatorThread, tmp_path: Path
) -> None:
    kube_emulator.call(lambda e: e.inject(503, verb="list", resource="services", times=3))
    with pytest.raises(KubeUnavailable) as exc:
        with_client(kube_emulator, tmp_path, lambda c: c.list(Kind("v1", "Service"), "default", {"a": "b"}))
    assert exc.value.reason == "Http503"


def test_a_kind_the_cluster_does_not_serve_lists_empty(kube_emulator: EmulatorThread, tmp_path: Path) -> None:
    """No Prometheus Operator or KEDA installed: nothing of that kind exists, so nothing to prune."""
    widgets = Permission("example.com", "widgets", frozenset({"list"}), "test")
    items = with_client(
        kube_emulator,
        tmp_path,
        lambda c: c.list(Kind("example.com/v1", "Widget"), "default", {"a": "b"}),
        token="cluster-admin",  # the emulator's RBAC knows only the real table
        permissions=(*PERMISSIONS, widgets),
    )
    assert items == []


def test_prepare_seam_pins_snapshots_and_reports_conditions(
    kube_emulator: EmulatorThread, tmp_path: Path
) -> None:
    api = Api(kube_emulator.url)
    body = api.create("codepilots", manifest(**{"metadata.namespace": "inproc"}))

    async def prepare(cp: CodePilot, served: list[ServedVersion]) -> Prepared:
        pinned = [ServedVersion(s.version, "sha256-abc") for s in served]
        condition = ConditionUpdate("WeightsVerified", ConditionStatus.TRUE, "WeightsVerified", "sha256-abc")
        return Prepared(
            pinned, [condition], {"stableSnapshot": {"version": "v1", "snapshotId": "sha256-abc"}}
        )

    result = with_client(
        kube_emulator,
        tmp_path,
        lambda c: reconcile(body, c, admission=Admission(c, DEFAULT_PLATFORM), prepare=prepare),
    )
    assert (
        result.prepared is not None and result.prepared.status["stableSnapshot"]["snapshotId"] == "sha256-abc"
    )
    deployment = api.get("deployments", "inproc", "coder-v1")
    fetch = deployment["spec"]["template"]["spec"]["initContainers"][0]
    assert any("sha256-abc" in arg for arg in fetch["args"]), "pods read the pinned snapshot"

    again = with_client(
        kube_emulator,
        tmp_path,
        lambda c: reconcile(body, c, admission=Admission(c, DEFAULT_PLATFORM), prepare=prepare),
    )
    assert again.applied == [] and again.pruned == [], "a second reconcile writes nothing"


def test_applying_a_kind_the_cluster_does_not_serve_says_so(
    kube_emulator: EmulatorThread, tmp_path: Path
) -> None:
    widgets = Permission("example.com", "widgets", frozenset({"patch", "create"}), "test")
    widget = {
        "apiVersion": "example.com/v1",
        "kind": "Widget",
        "metadata": {"name": "w", "namespace": "default"},
    }
    with pytest.raises(KubeUnavailable) as exc:
        with_client(
            kube_emulator,
            tmp_path,
            lambda c: c.apply(widget),
            token="cluster-admin",
            permissions=(*PERMISSIONS, widgets),
        )
    assert exc.value.reason == "KindNotServed" and "widgets.example.com" in str(exc.value)


def _admit(
    emulator: EmulatorThread, tmp_path: Path, cp: CodePilot, admission: Callable[[KubeClient], Admission]
) -> PolicyRefused | None:
    async def check(client: KubeClient) -> PolicyRefused | None:
        try:
            await admission(client).check(cp, served_versions(cp))
        except PolicyRefused as exc:
            return exc
        return None

    return with_client(emulator, tmp_path, check)


def test_admission_reads_each_secret_once_per_generation(
    kube_emulator: EmulatorThread, tmp_path: Path
) -> None:
    """Idle resyncs must not read Secrets (nor hit S3 because of them); a changed spec is checked at once."""
    api, ns = Api(kube_emulator.url), "admit-cache"
    labels = {ALLOW_LABEL: "true"}
    api.create("secrets", {"metadata": {"name": "s3", "namespace": ns, "labels": labels}, "data": {}})
    doc = manifest(**{"metadata.namespace": ns, "spec.model.source.credentialsSecret": "s3"})
    doc["metadata"].update(uid="0b1c", generation=1)
    first, second = (
        parse_codepilot(doc),
        parse_codepilot({**doc, "metadata": {**doc["metadata"], "generation": 2}}),
    )

    async def run(client: KubeClient) -> list[PolicyRefused | None]:
        admission = Admission(client, DEFAULT_PLATFORM)
        outcomes = []
        for cp in (first, first, first, second):
            try:
                await admission.check(cp, served_versions(cp))
                outcomes.append(None)
            except PolicyRefused as exc:
                outcomes.append(exc)
        return outcomes

    mark = len(kube_emulator.call(lambda e: e.calls))
    assert with_client(kube_emulator, tmp_path, run) == [None] * 4
    reads = [c for c in kube_emulator.call(lambda e: e.calls)[mark:] if c.resource == "secrets"]
    assert len(reads) == 2, reads  # generation 1 once, generation 2 once


def test_a_secret_the_operator_may_not_read_is_refused_by_name(
    kube_emulator: EmulatorThread, tmp_path: Path
) -> None:
    """policy.secretNames narrows the operator's RBAC: a 403 becomes a refusal naming the field, not a
    traceback; a name outside the list is refused without asking the API server."""
    ns = "admit-forbidden"
    cp = parse_codepilot(
        manifest(
            **{"metadata.namespace": ns, "spec.model.source.credentialsSecret": "s3", "metadata.uid": "u1"}
        )
    )
    kube_emulator.call(lambda e: e.inject(403, verb="get", resource="secrets", namespace=ns))
    refused = _admit(kube_emulator, tmp_path, cp, lambda c: Admission(c, DEFAULT_PLATFORM))
    assert refused is not None and refused.reason == "SecretNotAllowed"
    assert str(refused).startswith("spec.model.source.credentialsSecret: the operator may not read Secret")

    narrowed = PlatformPolicy(secret_names=("minio-credentials",))
    mark = len(kube_emulator.call(lambda e: e.calls))
    refused = _admit(kube_emulator, tmp_path, cp, lambda c: Admission(c, narrowed))
    assert refused is not None and "policy.secretNames: minio-credentials" in str(refused)
    assert kube_emulator.call(lambda e: e.calls)[mark:] == []
