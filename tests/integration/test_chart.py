"""The Helm chart through the real Helm engine: lint, render, schema-validate every object, check RBAC.

Every rendered object must validate: built-in kinds with kubernetes-validate in strict mode for the
Kubernetes version we support (a kind without a schema fails), Prometheus Operator kinds with the models
generated from the upstream CRDs, and the chart's own custom resources against the CRDs it ships.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import tomllib
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import helm_python
import jsonschema
import pytest
import yaml
from cloudcoil.models.prometheus_operator import v1 as prometheus_v1

import codepilot_operator
from codepilot_operator.api.platform import DEFAULT_FETCHER_IMAGE, IMAGE_PATTERN, PlatformPolicy
from codepilot_operator.cli import build_parser
from codepilot_operator.clients.permissions import PERMISSIONS
from tests.fixtures.helm import CHART_DIR, RELEASE, RELEASE_NAMESPACE, RenderChart, RenderedChart
from tests.fixtures.kube import EmulatorThread
from tests.helpers import KUBERNETES_VERSION, manifest, validate_builtin

Grant = tuple[str, str, str]  # (apiGroup, resource, verb)

# Non-default values a platform team would plausibly set, one scenario each.
SCENARIOS: dict[str, dict[str, Any]] = {
    "defaults": {},
    "ha-with-servicemonitor": {
        "replicas": 3,
        "serviceMonitor": {"enabled": True, "interval": "15s", "labels": {"release": "prometheus"}},
        "operator": {"logLevel": "debug", "driftInterval": 30},
        "topologySpreadConstraints": [
            {
                "maxSkew": 1,
                "topologyKey": "kubernetes.io/hostname",
                "whenUnsatisfiable": "ScheduleAnyway",
                "labelSelector": {"matchLabels": {"app.kubernetes.io/name": "codepilot-operator"}},
            }
        ],
    },
    "namespaced-watch": {
        "replicas": 2,
        "operator": {"watchNamespaces": ["team-a", "team-b"]},
        "serviceMonitor": {"enabled": True},
    },
    "standalone-pinned-image": {
        "peering": {"enabled": False},
        "image": {
            "repository": "registry.example.com/platform/codepilot-operator",
            "digest": "sha256:" + "ab" * 32,
            "pullPolicy": "Always",
        },
        "imagePullSecrets": [{"name": "registry-credentials"}],
        "operator": {"extraArgs": ["--metrics-host=0.0.0.0"], "extraEnv": [{"name": "TZ", "value": "UTC"}]},
        "rbac": {"aggregatedRoles": {"create": False}},
        "serviceAccount": {"name": "codepilot", "annotations": {"team": "platform"}},
        "podAnnotations": {"example.com/owner": "platform"},
        "nodeSelector": {"kubernetes.io/os": "linux"},
        "tolerations": [
            {"key": "dedicated", "operator": "Equal", "value": "platform", "effect": "NoSchedule"}
        ],
        "priorityClassName": "system-cluster-critical",
    },
    "fixed-priority": {"peering": {"priority": 100}, "metrics": {"port": 9090, "auth": "none"}},
    "platform-policy": {
        "policy": {
            "fetcherImages": ["registry.example.com/platform/fetchers/*", "ghcr.io/acme/fetch@*"],
            "serviceAccounts": ["codepilot-inference"],
            "priorityClasses": ["inference-critical"],
            "secretNames": ["minio-credentials", "registry-pull"],
        }
    },
    "platform-defaults": {
        "defaults": {
            "source": {
                "endpoint": "https://minio.minio.svc:9000",
                "region": "eu-west-1",
                "credentialsSecret": "minio-credentials",
                "caBundle": {"configMapName": "minio-ca", "key": "ca.pem"},
                "snapshotBucket": "codepilot-snapshots",
                "snapshotPrefix": "snapshots",
            },
            "tritonImage": "registry.example.com/mirror/tritonserver:25.10-trtllm-python-py3",
            "prometheusUrl": "http://prometheus-operated.monitoring.svc:9090",
            "alertLabels": {"release": "kube-prometheus-stack"},
        }
    },
    "partial-defaults": {"defaults": {"source": {"endpoint": "http://minio.minio.svc:9000"}}},
}


# --- validation of rendered objects -------------------------------------------------------------------


def _chart_crds() -> dict[tuple[str, str], dict[str, Any]]:
    crds = {}
    for path in sorted(
        [*(CHART_DIR / "crds").glob("*.yaml"), *(CHART_DIR / "files" / "crds").glob("*.yaml")]
    ):
        for doc in yaml.safe_load_all(path.read_text()):
            if doc:
                crds[(doc["spec"]["group"], doc["spec"]["names"]["kind"])] = doc
    return crds


CHART_CRDS = _chart_crds()
PROMETHEUS_OPERATOR_MODELS = {
    "ServiceMonitor": prometheus_v1.ServiceMonitor,
    "PrometheusRule": prometheus_v1.PrometheusRule,
    "PodMonitor": prometheus_v1.PodMonitor,
}


def validate_object(obj: dict[str, Any]) -> None:
    """Raise unless `obj` matches the schema of its kind; an unknown kind raises too."""
    group, _, version = obj["apiVersion"].rpartition("/")
    kind = obj["kind"]
    if group == "monitoring.coreos.com":
        model = PROMETHEUS_OPERATOR_MODELS[kind].model_validate(obj)
        # The models ignore unknown fields; a field dropped on the round trip is one the CRD lacks.
        assert model.model_dump(by_alias=True, exclude_none=True, mode="json") == obj, (
            f"unknown fields in {kind}"
        )
    elif (group, kind) in CHART_CRDS:
        crd = CHART_CRDS[(group, kind)]
        served = {v["name"]: v for v in crd["spec"]["versions"] if v["served"]}
        assert version in served, f"{kind}: {obj['apiVersion']} is not served by its CRD"
        jsonschema.validate(obj, served[version]["schema"]["openAPIV3Schema"])
        assert ("namespace" in obj["metadata"]) == (crd["spec"]["scope"] == "Namespaced"), kind
    else:
        validate_builtin(obj)


def test_validate_object_rejects_what_it_should() -> None:
    """The validator itself can fail: unknown kinds, unknown fields and wrong types are errors."""
    bad_objects = [
        {"apiVersion": "example.com/v1", "kind": "Gadget", "metadata": {"name": "x"}},
        {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "x"}, "spec": {"portz": []}},
        {
            "apiVersion": "monitoring.coreos.com/v1",
            "kind": "ServiceMonitor",
            "metadata": {"name": "x"},
            "spec": {"selector": {}, "endpoints": [{"port": "metrics", "intervall": "30s"}]},
        },
        {
            "apiVersion": "kopf.dev/v1",
            "kind": "ClusterKopfPeering",
            "metadata": {"name": "x", "namespace": "y"},
        },
    ]
    for obj in bad_objects:
        with pytest.raises(Exception):  # noqa: B017 - each validator raises its own error type
            validate_object(obj)


# --- lint and render ----------------------------------------------------------------------------------


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_chart_lints_clean(scenario: str) -> None:
    report = helm_python.lint(
        CHART_DIR,
        SCENARIOS[scenario],
        strict=True,
        namespace=RELEASE_NAMESPACE,
        kube_version=f"v{KUBERNETES_VERSION}.0",
    )
    problems = [m for m in report["messages"] if m["severity"] >= 2]
    assert not problems and not report["errors"], problems or report["errors"]


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_every_rendered_object_validates(render_chart: RenderChart, scenario: str) -> None:
    rendered = render_chart(SCENARIOS[scenario])
    assert rendered.objects
    for obj in rendered.objects:
        validate_object(obj)


def _installed_crds(chart: helm_python.Chart) -> list[dict[str, Any]]:
    """What Helm installs from crds/ before any template, as the engine loads it."""
    return [doc for f in chart.crds for doc in yaml.safe_load_all(f["data"]) if doc]


def test_chart_crds_validate(helm_chart: helm_python.Chart, render_chart: RenderChart) -> None:
    """Every CRD the chart installs (crds/, then the templated CodePilot CRD) is valid apiextensions/v1."""
    installed = _installed_crds(helm_chart)
    templated = render_chart().of_kind("CustomResourceDefinition")
    for doc in [*installed, *templated]:
        validate_builtin(doc)
    assert {doc["metadata"]["name"] for doc in installed} == {
        "clusterkopfpeerings.kopf.dev",
        "kopfpeerings.kopf.dev",
    }
    assert [doc["metadata"]["name"] for doc in templated] == ["codepilots.serving.codepilot.dev"]


def test_rendered_names_are_unique(render_chart: RenderChart) -> None:
    for values in SCENARIOS.values():
        objects = render_chart(values).objects
        keys = [(o["kind"], o["metadata"].get("namespace"), o["metadata"]["name"]) for o in objects]
        assert len(keys) == len(set(keys))


# --- the operator Deployment --------------------------------------------------------------------------


def _operator_container(rendered: RenderedChart) -> dict[str, Any]:
    deployment = rendered.one("Deployment")
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    return dict(container)


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_deployment_meets_restricted_pod_security(render_chart: RenderChart, scenario: str) -> None:
    pod = render_chart(SCENARIOS[scenario]).one("Deployment")["spec"]["template"]["spec"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] > 0
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    assert "hostNetwork" not in pod and "hostPID" not in pod
    for container in pod["containers"]:
        security = container["securityContext"]
        assert security["allowPrivilegeEscalation"] is False
        assert security["readOnlyRootFilesystem"] is True
        assert security["capabilities"]["drop"] == ["ALL"]
        assert "add" not in security["capabilities"]
        assert {"cpu", "memory"} <= set(container["resources"]["requests"])
    volumes = {v["name"]: v for v in pod["volumes"]}
    assert all(set(v) <= {"name", "emptyDir", "configMap", "secret", "projected"} for v in volumes.values())


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_container_args_are_accepted_by_codepilot_run(render_chart: RenderChart, scenario: str) -> None:
    """The chart's args parse with the real `codepilot run` parser (catches flag drift in either place)."""
    values = SCENARIOS[scenario]
    container = _operator_container(render_chart(values))
    assert "command" not in container  # the image's ENTRYPOINT is `codepilot`
    args = build_parser().parse_args(container["args"])
    assert args.command == "run"
    operator = values.get("operator", {})
    assert args.drift_interval == operator.get("driftInterval", 60)
    assert args.namespace == (operator.get("watchNamespaces") or None)
    assert args.verbose == (operator.get("logLevel") == "debug")
    peering = values.get("peering", {})
    assert args.peering == (None if peering.get("enabled") is False else "codepilot-operator")
    assert args.priority == peering.get("priority")
    metrics_port = values.get("metrics", {}).get("port", 8080)
    assert args.metrics_port == metrics_port
    assert args.metrics_auth == values.get("metrics", {}).get("auth", "kubernetes")
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert ports == {"metrics": metrics_port}
    for probe, path in (("livenessProbe", "/healthz"), ("readinessProbe", "/readyz")):
        assert container[probe]["httpGet"] == {"path": path, "port": "metrics"}


def test_several_replicas_each_get_their_own_peering_identity(render_chart: RenderChart) -> None:
    rendered = render_chart(SCENARIOS["ha-with-servicemonitor"])
    deployment = rendered.one("Deployment")
    assert deployment["spec"]["replicas"] == 3
    env = {e["name"]: e for e in _operator_container(rendered)["env"]}
    assert env["POD_ID"]["valueFrom"]["fieldRef"]["fieldPath"] == "metadata.name"
    assert "--priority" not in " ".join(_operator_container(rendered)["args"])  # derived per pod
    assert rendered.one("ClusterKopfPeering")["metadata"]["name"] == "codepilot-operator"


def test_standalone_operator_is_never_run_twice_during_a_rollout(render_chart: RenderChart) -> None:
    standalone = render_chart(SCENARIOS["standalone-pinned-image"]).one("Deployment")
    assert standalone["spec"]["replicas"] == 1
    assert standalone["spec"]["strategy"] == {"type": "Recreate"}
    peered = render_chart().one("Deployment")["spec"]["strategy"]
    assert peered == {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0}}


def test_namespaced_watch_creates_a_peering_object_per_namespace(render_chart: RenderChart) -> None:
    rendered = render_chart(SCENARIOS["namespaced-watch"])
    assert not rendered.of_kind("ClusterKopfPeering")
    assert {p["metadata"]["namespace"] for p in rendered.of_kind("KopfPeering")} == {"team-a", "team-b"}


def test_default_image_is_the_fetcher_image(render_chart: RenderChart, helm_chart: helm_python.Chart) -> None:
    """One image runs the operator and the weight fetcher; the chart must default to that very image."""
    image = _operator_container(render_chart())["image"]
    assert image == DEFAULT_FETCHER_IMAGE
    assert image.endswith(":" + helm_chart.metadata["appVersion"])


def test_chart_app_version_is_the_package_version(helm_chart: helm_python.Chart) -> None:
    pyproject = tomllib.loads((Path(CHART_DIR).parents[1] / "pyproject.toml").read_text())
    assert (
        helm_chart.metadata["appVersion"] == pyproject["project"]["version"] == codepilot_operator.__version__
    )


def test_pinned_digest_wins_over_tag(render_chart: RenderChart) -> None:
    values = SCENARIOS["standalone-pinned-image"]
    container = _operator_container(render_chart(values))
    assert container["image"] == f"{values['image']['repository']}@{values['image']['digest']}"


# --- values.schema.json and guards --------------------------------------------------------------------

BAD_VALUES = {
    "replicas zero": {"replicas": 0},
    "replicas as string": {"replicas": "3"},
    "unknown top-level key": {"replica": 3},
    "negative drift interval": {"operator": {"driftInterval": -5}},
    "log level": {"operator": {"logLevel": "verbose"}},
    "namespace not a DNS label": {"operator": {"watchNamespaces": ["Team_A"]}},
    "privilege escalation": {
        "securityContext": {"allowPrivilegeEscalation": True, "capabilities": {"drop": ["ALL"]}}
    },
    "root user": {
        "podSecurityContext": {"runAsNonRoot": False, "seccompProfile": {"type": "RuntimeDefault"}}
    },
    "capabilities not dropped": {
        "securityContext": {"allowPrivilegeEscalation": False, "capabilities": {"drop": []}}
    },
    "no memory request": {"resources": {"requests": {"memory": None}}},
    "servicemonitor interval": {"serviceMonitor": {"enabled": True, "interval": "often"}},
    "image digest": {"image": {"repository": "x", "pullPolicy": "Always", "digest": "latest"}},
    "unknown policy key": {"policy": {"serviceAccount": ["x"]}},
    "fetcher image prefix without a separator": {"policy": {"fetcherImages": ["registry.example.com/team*"]}},
    "service account not a name": {"policy": {"serviceAccounts": ["Not_A_Name"]}},
    "secret names as a string": {"policy": {"secretNames": "minio-credentials"}},
    "unknown defaults key": {"defaults": {"endpoint": "http://minio:9000"}},
    "endpoint not a URL": {"defaults": {"source": {"endpoint": "minio:9000"}}},
    "endpoint with credentials": {"defaults": {"source": {"endpoint": "http://key:secret@minio:9000"}}},
    "endpoint with a path": {"defaults": {"source": {"endpoint": "http://minio:9000/bucket"}}},
    "credentials secret not a name": {"defaults": {"source": {"credentialsSecret": "Minio_Keys"}}},
    "ca bundle from both": {"defaults": {"source": {"caBundle": {"secretName": "a", "configMapName": "b"}}}},
    "ca bundle key only": {"defaults": {"source": {"caBundle": {"key": "ca.crt"}}}},
    "snapshot bucket not a bucket": {"defaults": {"source": {"snapshotBucket": "Snapshots"}}},
    "triton image with a space": {"defaults": {"tritonImage": "triton server"}},
    "prometheus url without a scheme": {"defaults": {"prometheusUrl": "prometheus:9090"}},
    "alert label value too long": {"defaults": {"alertLabels": {"release": "x" * 64}}},
    "alert label key invalid": {"defaults": {"alertLabels": {"bad key": "x"}}},
}


@pytest.mark.parametrize("values", BAD_VALUES.values(), ids=BAD_VALUES.keys())
def test_schema_rejects_bad_values(helm_chart: helm_python.Chart, values: dict[str, Any]) -> None:
    with pytest.raises(helm_python.HelmValuesError):
        helm_chart.render(values, name=RELEASE, namespace=RELEASE_NAMESPACE)


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"replicas": 2, "peering": {"enabled": False}}, "needs peering.enabled=true"),
        ({"replicas": 2, "peering": {"priority": 10}}, "needs peering.priority empty"),
    ],
)
def test_unsafe_replica_settings_fail_to_render(
    helm_chart: helm_python.Chart, values: dict[str, Any], message: str
) -> None:
    """Replicas without peering, or with one fixed priority, would double-reconcile or all pause."""
    with pytest.raises(helm_python.HelmRenderError, match=message):
        helm_chart.render(values, name=RELEASE, namespace=RELEASE_NAMESPACE)


# --- RBAC: exactly the permissions table ----------------------------------------------------------------

PEERING_RESOURCES = {"clusterkopfpeerings", "kopfpeerings"}
REVIEW_RESOURCES = {"tokenreviews", "subjectaccessreviews"}
CLUSTER_SCOPED = {"customresourcedefinitions", "namespaces", "clusterkopfpeerings", *REVIEW_RESOURCES}


def expected_grants(*, peering: bool, namespaced: bool, metrics_auth: bool = True) -> set[Grant]:
    """PERMISSIONS as (group, resource, verb), with kopf's peering rule: ClusterKopfPeering when watching
    all namespaces, KopfPeering in each namespace when watching a list, neither when standalone; the
    reviews only when /metrics is guarded (metrics.auth kubernetes)."""
    grants: set[Grant] = set()
    for permission in PERMISSIONS:
        resource = permission.resource
        if resource in REVIEW_RESOURCES and not metrics_auth:
            continue
        if permission.api_group == "kopf.dev" and resource in PEERING_RESOURCES:
            if not peering:
                continue
            resource = "kopfpeerings" if namespaced else "clusterkopfpeerings"
        grants |= {(permission.api_group, resource, verb) for verb in permission.verbs}
    return grants


def _rule_grants(rules: list[dict[str, Any]]) -> set[Grant]:
    """(group, resource, verb) granted; resourceNames narrow a grant and are checked on their own."""
    grants: set[Grant] = set()
    for rule in rules:
        assert set(rule) <= {"apiGroups", "resources", "verbs", "resourceNames"}, f"nonResourceURLs: {rule}"
        assert "resourceNames" not in rule or rule["resources"] == ["secrets"], rule
        for field in ("apiGroups", "resources", "verbs"):
            assert "*" not in rule[field], f"wildcard in {field}: {rule}"
        grants |= {(g, r, v) for g in rule["apiGroups"] for r in rule["resources"] for v in rule["verbs"]}
    return grants


def operator_grants(rendered: RenderedChart) -> dict[str | None, set[Grant]]:
    """What the operator's ServiceAccount is granted, by namespace (None: cluster-wide), resolved from
    the rendered bindings exactly as the API server's authorizer would."""
    account = rendered.one("ServiceAccount")["metadata"]
    roles = {role["metadata"]["name"]: role["rules"] for role in rendered.of_kind("ClusterRole")}
    by_scope: dict[str | None, set[Grant]] = {}
    for binding in rendered.of_kind("ClusterRoleBinding") + rendered.of_kind("RoleBinding"):
        subjects = {(s["kind"], s["name"], s.get("namespace")) for s in binding["subjects"]}
        if ("ServiceAccount", account["name"], account["namespace"]) not in subjects:
            continue
        assert binding["roleRef"]["kind"] == "ClusterRole"
        scope = binding["metadata"].get("namespace") if binding["kind"] == "RoleBinding" else None
        by_scope.setdefault(scope, set()).update(_rule_grants(roles[binding["roleRef"]["name"]]))
    assert not rendered.of_kind("Role"), "all roles are ClusterRoles bound per namespace or cluster-wide"
    return by_scope


def _diff(granted: set[Grant], expected: set[Grant]) -> str:
    return f"missing: {sorted(expected - granted)}; broader than permissions.py: {sorted(granted - expected)}"


@pytest.mark.parametrize(
    "scenario",
    ["defaults", "ha-with-servicemonitor", "standalone-pinned-image", "platform-policy", "fixed-priority"],
)
def test_cluster_wide_rbac_is_exactly_the_permissions_table(render_chart: RenderChart, scenario: str) -> None:
    values = SCENARIOS[scenario]
    grants = operator_grants(render_chart(values))
    assert set(grants) == {None}
    expected = expected_grants(
        peering=values.get("peering", {}).get("enabled", True),
        namespaced=False,
        metrics_auth=values.get("metrics", {}).get("auth", "kubernetes") == "kubernetes",
    )
    assert grants[None] == expected, _diff(grants[None], expected)


def test_namespaced_watch_grants_workload_rights_only_in_watched_namespaces(
    render_chart: RenderChart,
) -> None:
    grants = operator_grants(render_chart(SCENARIOS["namespaced-watch"]))
    expected = expected_grants(peering=True, namespaced=True)
    assert set(grants) == {None, "team-a", "team-b"}
    assert grants["team-a"] == grants["team-b"]
    assert {resource for _, resource, _ in grants[None]} <= CLUSTER_SCOPED
    assert not {resource for _, resource, _ in grants["team-a"]} & CLUSTER_SCOPED
    union = grants[None] | grants["team-a"]
    assert union == expected, _diff(union, expected)


def _secret_rules(rendered: RenderedChart) -> list[dict[str, Any]]:
    roles = rendered.of_kind("ClusterRole")
    return [rule for role in roles for rule in role["rules"] if "secrets" in rule.get("resources", [])]


@pytest.mark.parametrize("watch", [[], ["team-a", "team-b"]], ids=["cluster-wide", "namespaced"])
def test_secret_names_narrow_the_operators_secret_rbac_to_exactly_them(
    render_chart: RenderChart, watch: list[str]
) -> None:
    """RBAC cannot say "only Secrets with this label": without policy.secretNames the operator may get
    any Secret where it works (and checks the label itself); with them, RBAC allows only those names,
    and the operator refuses any other name before asking (the same list reaches it in its ConfigMap)."""
    operator = {"watchNamespaces": watch}
    assert _secret_rules(render_chart({"operator": operator})) == [
        {"apiGroups": [""], "resources": ["secrets"], "verbs": ["get"]}
    ]
    names = ["minio-credentials", "registry-pull"]
    rendered = render_chart({"operator": operator, "policy": {"secretNames": names}})
    assert _secret_rules(rendered) == [
        {"apiGroups": [""], "resources": ["secrets"], "verbs": ["get"], "resourceNames": names}
    ]
    assert _platform(rendered).secret_names == tuple(names)


def _platform(rendered: RenderedChart) -> PlatformPolicy:
    """What `codepilot run --platform` reads from the chart's ConfigMap."""
    text = rendered.one("ConfigMap", f"{RELEASE}-platform")["data"]["platform.yaml"]
    return PlatformPolicy.model_validate(yaml.safe_load(text))


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_the_platform_configmap_says_what_the_values_say(render_chart: RenderChart, scenario: str) -> None:
    values = SCENARIOS[scenario]
    rendered = render_chart(values)
    platform = _platform(rendered)
    assert platform.fetcher_image == _operator_container(rendered)["image"], "the fetcher runs the operator"
    policy = values.get("policy", {})
    assert platform.allowed_fetcher_images == tuple(policy.get("fetcherImages", ()))
    assert platform.allowed_service_accounts == tuple(policy.get("serviceAccounts", ()))
    assert platform.allowed_priority_classes == tuple(policy.get("priorityClasses", ()))
    assert platform.secret_names == tuple(policy.get("secretNames", ()))
    defaults = values.get("defaults", {})
    written = platform.defaults.model_dump(by_alias=True, exclude_none=True, exclude_defaults=True)
    assert written == defaults, "every default value reaches the operator, and nothing else"
    deployment = rendered.one("Deployment")["spec"]["template"]
    assert "--platform=/etc/codepilot/platform.yaml" in _operator_container(rendered)["args"]
    assert {"configMap": {"name": f"{RELEASE}-platform"}, "name": "platform"} in deployment["spec"]["volumes"]
    assert deployment["metadata"]["annotations"]["checksum/platform"]


def test_a_policy_change_rolls_the_operator(render_chart: RenderChart) -> None:
    """The operator reads its platform file once: a changed value must restart it."""
    before = render_chart().one("Deployment")["spec"]["template"]["metadata"]["annotations"]
    after = render_chart({"policy": {"serviceAccounts": ["codepilot-inference"]}}).one("Deployment")
    assert after["spec"]["template"]["metadata"]["annotations"] != before


def test_a_codepilot_with_only_a_uri_renders_with_the_charts_defaults(
    render_chart: RenderChart, tmp_path: Path
) -> None:
    """The platform file the chart writes is what `codepilot render --platform` reads: a team's CodePilot
    without any S3 settings renders with the chart's endpoint, Secret, CA, Triton image and labels; with
    the chart's default values the same CodePilot is refused, naming the field."""
    cp = manifest()
    del cp["spec"]["model"]["source"]["endpoint"]
    (tmp_path / "cp.yaml").write_text(yaml.safe_dump(cp))
    for scenario in ("defaults", "platform-defaults"):
        text = render_chart(SCENARIOS[scenario]).one("ConfigMap", f"{RELEASE}-platform")["data"][
            "platform.yaml"
        ]
        (tmp_path / f"{scenario}.yaml").write_text(text)
    command = [
        sys.executable,
        "-m",
        "codepilot_operator.cli",
        "render",
        str(tmp_path / "cp.yaml"),
        "--platform",
    ]
    refused = subprocess.run(
        [*command, str(tmp_path / "defaults.yaml")], capture_output=True, text=True, check=False
    )
    assert refused.returncode == 2 and "spec.model.source.endpoint: required" in refused.stderr
    done = subprocess.run(
        [*command, str(tmp_path / "platform-defaults.yaml")], capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stderr
    objects = list(yaml.safe_load_all(done.stdout))
    (deployment,) = [o for o in objects if o["kind"] == "Deployment"]
    pod = deployment["spec"]["template"]["spec"]
    fetch = pod["initContainers"][0]
    env = {e["name"]: e.get("value", e.get("valueFrom")) for e in fetch["env"]}
    assert env["S3_ENDPOINT"] == "https://minio.minio.svc:9000"
    assert env["AWS_SECRET_ACCESS_KEY"]["secretKeyRef"]["name"] == "minio-credentials"
    assert env["AWS_CA_BUNDLE"] == "/etc/codepilot/s3-ca/ca.crt"
    assert pod["containers"][0]["image"] == "registry.example.com/mirror/tritonserver:25.10-trtllm-python-py3"
    assert "s3://codepilot-snapshots/snapshots/" not in done.stdout  # no snapshot yet: the fetcher reads uri
    monitors = [o for o in objects if o["kind"] == "ServiceMonitor"]
    assert monitors[0]["metadata"]["labels"]["release"] == "kube-prometheus-stack"


def test_notes_say_what_a_codepilot_gets_by_default(render_chart: RenderChart) -> None:
    assert "none: every CodePilot sets spec.model.source.endpoint" in render_chart().notes
    notes = render_chart(SCENARIOS["platform-defaults"]).notes
    assert "https://minio.minio.svc:9000 with Secret minio-credentials: a CodePilot needs only" in notes
    assert "registry.example.com/mirror/tritonserver:25.10-trtllm-python-py3" in notes


def test_a_defaults_change_rolls_the_operator(render_chart: RenderChart) -> None:
    before = render_chart().one("Deployment")["spec"]["template"]["metadata"]["annotations"]
    after = render_chart(SCENARIOS["partial-defaults"]).one("Deployment")
    assert after["spec"]["template"]["metadata"]["annotations"] != before


def test_chart_and_operator_agree_on_the_fetcher_image_pattern() -> None:
    schema = json.loads((CHART_DIR / "values.schema.json").read_text())
    pattern = schema["properties"]["policy"]["properties"]["fetcherImages"]["items"]["pattern"]
    assert pattern == IMAGE_PATTERN


def test_rbac_check_catches_a_broader_role(render_chart: RenderChart) -> None:
    """The comparison can fail: one extra verb on one resource is reported."""
    rendered = render_chart()
    role = next(
        r for r in rendered.objects if r["kind"] == "ClusterRole" and r["metadata"]["name"] == RELEASE
    )
    role["rules"].append({"apiGroups": [""], "resources": ["secrets"], "verbs": ["list"]})
    assert ("", "secrets", "list") in operator_grants(rendered)[None]
    assert operator_grants(rendered)[None] != expected_grants(peering=True, namespaced=False)


def test_aggregated_roles_let_namespace_admins_grant_codepilot_rights(render_chart: RenderChart) -> None:
    rendered = render_chart()
    viewer = rendered.one("ClusterRole", "codepilot-viewer")
    editor = rendered.one("ClusterRole", "codepilot-editor")
    aggregate = "rbac.authorization.k8s.io/aggregate-to-"
    assert {
        k for k, v in viewer["metadata"]["labels"].items() if k.startswith(aggregate) and v == "true"
    } == {
        aggregate + "view",
        aggregate + "edit",
        aggregate + "admin",
    }
    assert {
        k for k, v in editor["metadata"]["labels"].items() if k.startswith(aggregate) and v == "true"
    } == {
        aggregate + "edit",
        aggregate + "admin",
    }
    read = {"get", "list", "watch"}
    assert {verb for _, _, verb in _rule_grants(viewer["rules"])} == read
    editor_grants = _rule_grants(editor["rules"])
    assert ("serving.codepilot.dev", "codepilots", "create") in editor_grants
    assert ("serving.codepilot.dev", "codepilots", "delete") in editor_grants
    status_verbs = {v for _, r, v in editor_grants if r == "codepilots/status"}
    assert status_verbs == read, "only the operator writes status"
    assert {g for g, _, _ in editor_grants | _rule_grants(viewer["rules"])} == {"serving.codepilot.dev"}
    without = {
        r["metadata"]["name"]
        for r in render_chart(SCENARIOS["standalone-pinned-image"]).of_kind("ClusterRole")
    }
    assert not without & {"codepilot-viewer", "codepilot-editor"}


# --- metrics, ServiceMonitor, NOTES -------------------------------------------------------------------


def test_metrics_are_guarded_by_default_and_the_scraper_sends_a_token(render_chart: RenderChart) -> None:
    """/metrics answers only tokens the API server allows (metrics.auth kubernetes, the default): the
    ServiceMonitor sends Prometheus's ServiceAccount token, and a reader role exists to bind it to."""
    rendered = render_chart({"serviceMonitor": {"enabled": True}})
    (endpoint,) = rendered.one("ServiceMonitor")["spec"]["endpoints"]
    assert endpoint["bearerTokenFile"] == "/var/run/secrets/kubernetes.io/serviceaccount/token"
    reader = rendered.one("ClusterRole", f"{RELEASE}-metrics-reader")
    assert reader["rules"] == [{"nonResourceURLs": ["/metrics"], "verbs": ["get"]}]
    assert "--metrics-auth=kubernetes" in _operator_container(rendered)["args"]
    assert f"--clusterrole={RELEASE}-metrics-reader" in rendered.notes

    open_metrics = render_chart({"serviceMonitor": {"enabled": True}, "metrics": {"auth": "none"}})
    (endpoint,) = open_metrics.one("ServiceMonitor")["spec"]["endpoints"]
    assert "bearerTokenFile" not in endpoint
    assert not [
        r for r in open_metrics.of_kind("ClusterRole") if r["metadata"]["name"].endswith("-metrics-reader")
    ]
    assert "WARNING: metrics.auth is none" in open_metrics.notes


def test_servicemonitor_is_optional_and_selects_the_metrics_service(render_chart: RenderChart) -> None:
    assert not render_chart().of_kind("ServiceMonitor")
    rendered = render_chart(SCENARIOS["ha-with-servicemonitor"])
    monitor = rendered.one("ServiceMonitor")
    service = rendered.one("Service")
    assert monitor["metadata"]["labels"]["release"] == "prometheus"
    selector = monitor["spec"]["selector"]["matchLabels"]
    assert selector.items() <= service["metadata"]["labels"].items()
    assert monitor["spec"]["namespaceSelector"] == {"matchNames": [RELEASE_NAMESPACE]}
    (endpoint,) = monitor["spec"]["endpoints"]
    assert endpoint["port"] == service["spec"]["ports"][0]["name"] == "metrics"
    assert endpoint["interval"] == "15s"
    # per-CodePilot operator metrics keep their own namespace label (the CodePilot alert rules select on it)
    assert endpoint["honorLabels"] is True
    pod_labels = rendered.one("Deployment")["spec"]["template"]["metadata"]["labels"]
    assert service["spec"]["selector"].items() <= pod_labels.items()


def test_notes_tell_how_to_allow_a_secret_and_what_the_policy_allows(render_chart: RenderChart) -> None:
    notes = render_chart().notes
    assert "label secret minio-credentials serving.codepilot.dev/allow-codepilot=true" in notes
    assert "ServiceAccounts:  only the namespace's default" in notes
    assert "every Secret in every namespace: set policy.secretNames to narrow it" in notes
    notes = render_chart(SCENARIOS["platform-policy"]).notes
    assert "ServiceAccounts:  codepilot-inference and the namespace's default" in notes
    assert "Secret names:     minio-credentials, registry-pull (the operator's RBAC allows no other)" in notes


def test_notes_tell_what_happens_to_the_crd(render_chart: RenderChart) -> None:
    notes = render_chart().notes
    assert "`helm upgrade` updates it, and `helm uninstall` keeps it" in notes
    notes = render_chart({"crds": {"enabled": False, "keep": True}}).notes
    assert "codepilot crd | kubectl apply --server-side -f -" in notes


def test_chart_crd_is_the_generated_crd() -> None:
    """The chart templates files/crds/codepilot.yaml; it must be the CRD generated from the API types."""
    generated = Path(CHART_DIR).parents[1] / "crds" / "codepilot.yaml"
    copied = CHART_DIR / "files" / "crds" / "codepilot.yaml"
    assert copied.read_bytes() == generated.read_bytes(), (
        "charts/codepilot-operator/files/crds/codepilot.yaml differs from crds/codepilot.yaml: run make crds"
    )


# --- the chart's container spec runs the real operator ------------------------------------------------


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _http(url: str, body: dict[str, Any] | None = None, token: str | None = None) -> tuple[int, str]:
    headers = {"Content-Type": "application/json"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    request = urllib.request.Request(
        url,
        method="POST" if body is not None else "GET",
        data=json.dumps(body).encode() if body is not None else None,
        headers=headers,
    )
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return int(response.status), response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()
    except OSError as exc:  # not listening yet
        return 0, str(exc)


def _pod_env(container: dict[str, Any], pod_name: str) -> dict[str, str]:
    """The container's env as the kubelet would set it (downward API fields resolved for one pod)."""
    fields = {"metadata.name": pod_name, "metadata.namespace": RELEASE_NAMESPACE}
    return {
        item["name"]: item["value"] if "value" in item else fields[item["valueFrom"]["fieldRef"]["fieldPath"]]
        for item in container["env"]
    }


def _mounted_config_maps(rendered: RenderedChart, container: dict[str, Any], root: Path) -> dict[str, Path]:
    """The pod's ConfigMap volumes written under ``root`` as the kubelet mounts them: mountPath -> dir."""
    pod = rendered.one("Deployment")["spec"]["template"]["spec"]
    volumes = {v["name"]: v for v in pod["volumes"]}
    mounted = {}
    for mount in container["volumeMounts"]:
        source = volumes[mount["name"]]
        if "configMap" in source:
            target = root / mount["name"]
            target.mkdir()
            for key, value in rendered.one("ConfigMap", source["configMap"]["name"])["data"].items():
                (target / key).write_text(value)
            mounted[mount["mountPath"]] = target
    return mounted


def _on_this_machine(args: list[str], mounted: dict[str, Path]) -> list[str]:
    out = []
    for arg in args:
        for path, local in mounted.items():
            arg = arg.replace(f"{path}/", f"{local}/")
        out.append(arg)
    return out


def _poll(what: str, check: Any, proc: subprocess.Popen[bytes], log: Path, timeout: float = 60) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"the operator exited with {proc.returncode}:\n{log.read_text()[-3000:]}")
        result = check()
        if result:
            return result
        time.sleep(0.2)
    pytest.fail(f"timed out waiting for {what}:\n{log.read_text()[-3000:]}")


def test_chart_container_runs_the_operator(
    render_chart: RenderChart, kube_emulator: EmulatorThread, tmp_path: Path
) -> None:
    """`codepilot <args>` exactly as the chart renders them, with the pod's env and its mounted platform
    ConfigMap, against the Kubernetes API emulator: the probes answer where the chart points them,
    metrics are served, the operator heartbeats into the peering object the chart creates, under the
    pod's name (POD_ID), and CodePilots get what the chart's values decide (the fetcher runs the chart's
    image, a ServiceAccount the policy allows is used)."""
    port = _free_port()
    rendered = render_chart(
        {
            "image": {"repository": "registry.example.com/platform/codepilot-operator", "tag": "9.9.9"},
            "metrics": {"port": port},
            # No S3 server here: the weight snapshot step has its own tests (tests/e2e/test_weights.py).
            "operator": {"extraArgs": ["--metrics-host=127.0.0.1", "--no-weight-snapshots"]},
            "policy": {"serviceAccounts": ["inference"]},
        }
    )

    def prometheus(emulator: Any) -> None:  # a Prometheus ServiceAccount bound to the metrics-reader role
        emulator.tokens["prometheus-token"] = {"username": "system:serviceaccount:monitoring:prometheus"}
        emulator.metrics_readers.add("system:serviceaccount:monitoring:prometheus")

    kube_emulator.call(prometheus)
    peering = rendered.one("ClusterKopfPeering")
    status, text = _http(f"{kube_emulator.url}/apis/kopf.dev/v1/clusterkopfpeerings", body=peering)
    assert status in (200, 201), text  # what `helm install` creates before the operator starts

    container = _operator_container(rendered)
    pod_name = "codepilot-operator-6b7c9d5f4-x2x9z"
    kubeconfig = kube_emulator.kubeconfig(tmp_path / "kubeconfig")
    log = tmp_path / "operator.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(  # the image's ENTRYPOINT is `codepilot`; the chart supplies the args
            [
                sys.executable,
                "-m",
                "codepilot_operator.cli",
                *_on_this_machine(container["args"], _mounted_config_maps(rendered, container, tmp_path)),
                f"--kubeconfig={kubeconfig}",
            ],
            stdout=out,
            stderr=subprocess.STDOUT,
            env={**os.environ, **_pod_env(container, pod_name)},
        )
    try:
        base = f"http://127.0.0.1:{port}"
        for probe in ("readinessProbe", "livenessProbe"):
            path = container[probe]["httpGet"]["path"]
            _poll(f"{probe} {path}", lambda path=path: _http(base + path)[0] == 200, proc, log)
        assert _http(base + "/metrics")[0] == 401, "metrics.auth kubernetes is the chart's default"
        status, metrics = _http(base + "/metrics", token="prometheus-token")
        assert status == 200 and "codepilot_reconcile_duration_seconds" in metrics

        peering_url = (
            f"{kube_emulator.url}/apis/kopf.dev/v1/clusterkopfpeerings/{peering['metadata']['name']}"
        )
        heartbeat = _poll(
            "a heartbeat in the peering object",
            lambda: json.loads(_http(peering_url)[1]).get("status", {}).get(pod_name),
            proc,
            log,
        )
        assert heartbeat["priority"] > 0

        runtime = {"serviceAccountName": "inference"}
        codepilot = manifest(**{"metadata.namespace": "team-chart", "spec.runtime": runtime})
        status, text = _http(
            f"{kube_emulator.url}/apis/serving.codepilot.dev/v1alpha1/namespaces/team-chart/codepilots",
            body=codepilot,
        )
        assert status in (200, 201), text
        deployments = f"{kube_emulator.url}/apis/apps/v1/namespaces/team-chart/deployments"
        (deployment,) = _poll(
            "the CodePilot's Deployment", lambda: json.loads(_http(deployments)[1])["items"], proc, log
        )
        pod = deployment["spec"]["template"]["spec"]
        assert (
            pod["initContainers"][0]["image"]
            == container["image"]
            == "registry.example.com/platform/codepilot-operator:9.9.9"
        )
        assert pod["serviceAccountName"] == "inference"
        denied = kube_emulator.call(lambda emulator: list(emulator.denied))
        assert denied == [], f"requests outside permissions.py: {denied}"
    finally:
        proc.terminate()
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)
