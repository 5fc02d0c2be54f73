"""Upgrading the operator removes the per-CodePilot dashboard ConfigMaps earlier versions applied.

The chart ships one dashboard for all CodePilots now; the old ``<name>-dashboard`` ConfigMaps are
children reconcile no longer renders, so prune deletes them (same labels, our controller
ownerReference), while a dashboard someone made by hand with the same label stays.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from codepilot_operator.api.platform import DEFAULT_PLATFORM
from codepilot_operator.loader import parse_codepilot
from codepilot_operator.reconcile.admission import Admission
from codepilot_operator.reconcile.reconcile import owner_reference, reconcile
from codepilot_operator.render.dashboard import DASHBOARD_LABEL
from codepilot_operator.render.names import common_labels
from tests.e2e.conftest import Api
from tests.e2e.test_reconcile_client import with_client
from tests.fixtures.kube import EmulatorThread
from tests.helpers import manifest

NAMESPACE = "upgraded"


def _config_map(name: str, labels: dict[str, str], owners: list[dict[str, Any]]) -> dict[str, Any]:
    meta = {"name": name, "namespace": NAMESPACE, "labels": labels, "ownerReferences": owners}
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": meta,
        "data": {f"{name}.json": json.dumps({})},
    }


def test_reconcile_prunes_the_dashboard_configmap_an_earlier_operator_applied(
    kube_emulator: EmulatorThread, tmp_path: Path
) -> None:
    api = Api(kube_emulator.url)
    body = api.create("codepilots", manifest(**{"metadata.namespace": NAMESPACE}))
    cp = parse_codepilot(body)
    # What the operator applied per CodePilot before the chart shipped the shared dashboard.
    old_labels = {**common_labels(cp, "dashboard"), DASHBOARD_LABEL: "1"}
    api.create("configmaps", _config_map("coder-dashboard", old_labels, [owner_reference(cp)]))
    api.create("configmaps", _config_map("team-dashboard", {DASHBOARD_LABEL: "1"}, []))

    result = with_client(
        kube_emulator, tmp_path, lambda c: reconcile(body, c, admission=Admission(c, DEFAULT_PLATFORM))
    )

    assert api.get("configmaps", NAMESPACE, "coder-dashboard") is None
    assert [p for p in result.pruned if "coder-dashboard" in p] != []
    assert api.get("configmaps", NAMESPACE, "team-dashboard") is not None, "not ours: left alone"
    assert api.get("deployments", NAMESPACE, "coder-v1") is not None, "the CodePilot is still served"
