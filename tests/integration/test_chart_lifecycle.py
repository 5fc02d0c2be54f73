"""`helm install`, `helm upgrade` and `helm uninstall` of the chart by the real Helm SDK (v4, through
helm-python-sdk) against the Kubernetes API emulator: the CodePilot CRD is created by the install,
updated by an upgrade and kept by an uninstall, without a hand-run `kubectl apply`.

Helm talks to the emulator as to any API server (discovery, OpenAPI, server-side apply, delete); its
releases are kept in memory (`storage_driver="memory"`), so nothing but the emulator is touched.
"""

from __future__ import annotations

import json
import shutil
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp.web
import helm_python
import kmock
import pytest
import yaml

from tests.fixtures.helm import CHART_DIR, RELEASE, RELEASE_NAMESPACE
from tests.fixtures.kube import Emulator, EmulatorThread
from tests.helpers import KUBERNETES_VERSION, REPO

CODEPILOT_CRD = "codepilots.serving.codepilot.dev"
GENERATED_SPEC = yaml.safe_load((REPO / "crds" / "codepilot.yaml").read_text())["spec"]
OPENAPI_PROTOBUF = "application/com.github.proto-openapi.spec.v2.v1.0+protobuf"


class HelmReadyEmulator(Emulator):
    """What Helm asks of an API server beyond what the operator does, each as a real one answers it:

    - ``/version``: a supported Kubernetes (the chart's kubeVersion is >= 1.27; kmock says 1.26);
    - ``/openapi/v2`` and ``/openapi/v3``: the API server publishes its schemas and Helm validates
      manifests against them before applying; these are empty documents, so the client-side check
      finds nothing to say (rendered objects are schema-checked in test_chart.py);
    - ``/api/v1``: the core group's resource list has ``groupVersion: v1`` (kmock sends ``/v1``, which
      client-go's REST mapper matches to no kind).
    """

    async def _serve_server_version(self, request: kmock.Request) -> dict[str, str]:
        major, minor = KUBERNETES_VERSION.split(".")
        return {"major": major, "minor": minor, "gitVersion": f"v{KUBERNETES_VERSION}.0"}

    async def _handle(self, request: kmock.Request) -> aiohttp.web.StreamResponse:
        path = request.url.path
        if path in ("/openapi/v2", "/openapi/v3"):
            content_type = OPENAPI_PROTOBUF if path.endswith("v2") else "application/json"
            body = b"" if path.endswith("v2") else b'{"paths": {}}'
            return aiohttp.web.Response(body=body, headers={"Content-Type": content_type})
        response = await super()._handle(request)
        if path == "/api/v1" and isinstance(response, aiohttp.web.Response) and response.body:
            body = json.loads(bytes(response.body))
            body["groupVersion"] = "v1"
            return aiohttp.web.json_response(body)
        return response


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[tuple[EmulatorThread, helm_python.Config]]:
    thread = EmulatorThread()
    thread.emulator = HelmReadyEmulator()
    thread.start()
    try:
        kubeconfig = thread.kubeconfig(tmp_path / "kubeconfig", token="platform-admin")
        config = helm_python.Config(
            kubeconfig_path=str(kubeconfig), namespace=RELEASE_NAMESPACE, storage_driver="memory"
        )
        yield thread, config
    finally:
        thread.stop()


def _crds(thread: EmulatorThread) -> dict[str, dict[str, Any]]:
    return thread.call(
        lambda e: {name: dict(obj) for name, obj in e.live("customresourcedefinitions").items()}
    )


def _older_chart(tmp_path: Path) -> Path:
    """The chart of an earlier version: its CodePilot CRD lacks spec.api (the field a user upgrades for)."""
    chart = tmp_path / "old" / "codepilot-operator"
    shutil.copytree(CHART_DIR, chart)
    crd_file = chart / "files" / "crds" / "codepilot.yaml"
    crd = yaml.safe_load(crd_file.read_text())
    spec_schema = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]
    del spec_schema["properties"]["api"]
    crd_file.write_text(yaml.safe_dump(crd, sort_keys=False))
    return chart


def test_install_creates_upgrade_updates_uninstall_keeps_the_crd(
    cluster: tuple[EmulatorThread, helm_python.Config], tmp_path: Path
) -> None:
    thread, helm = cluster
    helm.install(_older_chart(tmp_path), RELEASE, {}, namespace=RELEASE_NAMESPACE, timeout=60)
    installed = _crds(thread)
    assert {"clusterkopfpeerings.kopf.dev", "kopfpeerings.kopf.dev", CODEPILOT_CRD} <= set(installed)
    old_schema = installed[CODEPILOT_CRD]["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    assert "api" not in old_schema["properties"]["spec"]["properties"]

    helm.upgrade(CHART_DIR, RELEASE, {}, namespace=RELEASE_NAMESPACE, timeout=60)
    upgraded = _crds(thread)[CODEPILOT_CRD]
    assert upgraded["spec"] == GENERATED_SPEC  # the new field arrived with `helm upgrade` alone
    assert upgraded["metadata"]["annotations"]["helm.sh/resource-policy"] == "keep"

    result = helm.uninstall(RELEASE, timeout=60)
    assert CODEPILOT_CRD in result["info"]  # "These resources were kept due to the resource policy"
    assert CODEPILOT_CRD in _crds(thread)  # every team's CodePilots survive the uninstall
    assert thread.call(lambda e: e.live("deployments", RELEASE_NAMESPACE)) == {}


def test_crds_enabled_false_leaves_the_crd_to_its_owner(
    cluster: tuple[EmulatorThread, helm_python.Config],
) -> None:
    thread, helm = cluster
    helm.install(CHART_DIR, RELEASE, {"crds": {"enabled": False, "keep": True}}, namespace=RELEASE_NAMESPACE)
    assert CODEPILOT_CRD not in _crds(thread)
    assert thread.call(lambda e: set(e.live("deployments", RELEASE_NAMESPACE)))  # the operator is there


def _admin(thread: EmulatorThread, method: str, path: str, body: dict[str, Any], content_type: str) -> None:
    request = urllib.request.Request(
        thread.url + path,
        data=json.dumps(body).encode(),
        method=method,
        headers={"Content-Type": content_type},
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        assert response.status in (200, 201)


def test_a_crd_installed_from_crds_dir_is_adopted_as_the_docs_say(
    cluster: tuple[EmulatorThread, helm_python.Config], tmp_path: Path
) -> None:
    """A release of chart 0.1.0 had its CRD from crds/, with no Helm ownership: `helm upgrade` refuses to
    take it over until it is labelled and annotated once (docs/chart.md, "CRDs and upgrades")."""
    thread, helm = cluster
    helm.install(CHART_DIR, RELEASE, {"crds": {"enabled": False, "keep": True}}, namespace=RELEASE_NAMESPACE)
    old = yaml.safe_load((_older_chart(tmp_path) / "files" / "crds" / "codepilot.yaml").read_text())
    crds = "/apis/apiextensions.k8s.io/v1/customresourcedefinitions"
    _admin(thread, "POST", crds, old, "application/json")  # what Helm's crds/ install left behind

    enabled = {"crds": {"enabled": True, "keep": True}}  # without values, Helm reuses the release's
    with pytest.raises(helm_python.HelmReleaseError, match="invalid ownership metadata"):
        helm.upgrade(CHART_DIR, RELEASE, enabled, namespace=RELEASE_NAMESPACE)

    # kubectl label crd ... app.kubernetes.io/managed-by=Helm; kubectl annotate crd ... meta.helm.sh/...
    ownership = {
        "metadata": {
            "labels": {"app.kubernetes.io/managed-by": "Helm"},
            "annotations": {
                "meta.helm.sh/release-name": RELEASE,
                "meta.helm.sh/release-namespace": RELEASE_NAMESPACE,
            },
        }
    }
    _admin(thread, "PATCH", f"{crds}/{CODEPILOT_CRD}", ownership, "application/merge-patch+json")
    helm.upgrade(CHART_DIR, RELEASE, enabled, namespace=RELEASE_NAMESPACE)
    assert _crds(thread)[CODEPILOT_CRD]["spec"] == GENERATED_SPEC
