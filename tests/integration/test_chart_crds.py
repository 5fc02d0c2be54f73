"""The CodePilot CRD is installed and upgraded by Helm itself, and survives `helm uninstall`.

Helm installs a chart's crds/ directory on the first install only and never upgrades it; the CodePilot
CRD is therefore a template (rendered on install and on every upgrade, like any object of the release),
with `helm.sh/resource-policy: keep`. Rendered by the real Helm engine as an install and as an upgrade.
"""

from __future__ import annotations

from typing import Any

import helm_python
import yaml

from tests.fixtures.helm import RELEASE, RELEASE_NAMESPACE, RenderChart, parse_manifests
from tests.helpers import REPO

CODEPILOT_CRD = "codepilots.serving.codepilot.dev"
GENERATED = yaml.safe_load((REPO / "crds" / "codepilot.yaml").read_text())


def _crds(objects: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {o["metadata"]["name"]: o for o in objects if o["kind"] == "CustomResourceDefinition"}


def _upgrade(chart: helm_python.Chart, values: dict[str, Any] | None = None) -> list[dict[str, Any]]:
    manifests = chart.render(
        values or {}, name=RELEASE, namespace=RELEASE_NAMESPACE, revision=2, is_upgrade=True
    )
    return parse_manifests(manifests)


def test_helm_upgrade_applies_the_generated_crd(helm_chart: helm_python.Chart) -> None:
    """An upgrade carries the CRD of the new version: its schema exactly as generated from the API types."""
    crd = _crds(_upgrade(helm_chart))[CODEPILOT_CRD]
    assert crd["spec"] == GENERATED["spec"]
    assert crd["metadata"]["labels"]["app.kubernetes.io/version"] == helm_chart.metadata["appVersion"]


def test_the_crd_is_not_left_to_helms_install_only_crds_directory(helm_chart: helm_python.Chart) -> None:
    installed_once = [doc for f in helm_chart.crds for doc in yaml.safe_load_all(f["data"]) if doc]
    assert CODEPILOT_CRD not in _crds(installed_once)


def test_helm_install_creates_the_crd_and_uninstall_keeps_it(render_chart: RenderChart) -> None:
    crd = _crds(render_chart().objects)[CODEPILOT_CRD]
    assert crd["metadata"]["annotations"] == {"helm.sh/resource-policy": "keep"}
    not_kept = _crds(render_chart({"crds": {"enabled": True, "keep": False}}).objects)[CODEPILOT_CRD]
    assert "annotations" not in not_kept["metadata"]


def test_the_crd_can_be_managed_elsewhere(render_chart: RenderChart) -> None:
    assert CODEPILOT_CRD not in _crds(render_chart({"crds": {"enabled": False, "keep": True}}).objects)


def test_every_custom_resource_of_the_chart_has_its_crd_installed_before_it(
    helm_chart: helm_python.Chart, render_chart: RenderChart
) -> None:
    """Helm maps every kind of a release before applying any object: a CRD templated in the same release
    as one of its objects fails `helm install` ("ensure CRDs are installed first"). Such CRDs must stay
    in crds/, which Helm installs before the templates."""
    installed_once = _crds([doc for f in helm_chart.crds for doc in yaml.safe_load_all(f["data"]) if doc])
    templated = _crds(render_chart().objects)
    kinds = {(crd["spec"]["group"], crd["spec"]["names"]["kind"]): name for name, crd in templated.items()}
    for values in ({}, {"operator": {"watchNamespaces": ["team-a"]}}):
        for obj in render_chart(values).objects:
            group = obj["apiVersion"].rpartition("/")[0]
            assert (group, obj["kind"]) not in kinds, f"{obj['kind']} is in the release of its own CRD"
            if group.endswith("kopf.dev"):
                assert any(c["spec"]["names"]["kind"] == obj["kind"] for c in installed_once.values())
