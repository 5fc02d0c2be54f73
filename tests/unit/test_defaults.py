"""Cluster facts a platform sets once: a CodePilot with only its model's uri gets them, its own fields
win, status says what it got and from whom, and offline render shows exactly that."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from codepilot_operator.api.crd import crd
from codepilot_operator.api.defaults import MissingSetting, Origin, with_defaults
from codepilot_operator.api.platform import PlatformDefaults, PlatformPolicy
from codepilot_operator.api.spec import DEFAULT_TRITON_IMAGE
from codepilot_operator.cli.support import UsageError, load_platform
from codepilot_operator.loader import InvalidCodePilot, parse_codepilot
from codepilot_operator.reconcile.admission import secret_refs
from codepilot_operator.render import render
from tests.helpers import REPO, codepilot, manifest, validate_builtin

ENDPOINT = "https://s3.platform.example:9000"
DEFAULTS = PlatformDefaults.model_validate(
    {
        "source": {
            "endpoint": ENDPOINT,
            "region": "eu-west-1",
            "credentialsSecret": "s3-reader",
            "caBundle": {"configMapName": "platform-ca"},
            "snapshotBucket": "snapshots",
            "snapshotPrefix": "platform-snapshots",
        },
        "tritonImage": "registry.example.com/mirror/tritonserver:25.10",
        "prometheusUrl": "http://prometheus.monitoring.svc:9090",
        "alertLabels": {"release": "kube-prometheus-stack", "team": "platform"},
    }
)
PLATFORM = PlatformPolicy(defaults=DEFAULTS)


def uri_only(**overrides: Any) -> dict[str, Any]:
    """What a team writes once the platform sets the rest: the model's uri and nothing about S3."""
    doc = manifest(**overrides)
    doc["spec"]["model"]["source"].pop("endpoint")
    return doc


def pod(objects: list[dict[str, Any]]) -> dict[str, Any]:
    (deployment,) = [o for o in objects if o["kind"] == "Deployment"]
    return dict(deployment["spec"]["template"]["spec"])


def env_of(container: dict[str, Any]) -> dict[str, Any]:
    return {e["name"]: e.get("value", e.get("valueFrom")) for e in container["env"]}


def test_a_codepilot_with_only_a_uri_gets_every_platform_default() -> None:
    resolved = with_defaults(parse_codepilot(uri_only()), DEFAULTS)
    spec = resolved.codepilot.spec
    assert spec.model.source.endpoint == ENDPOINT
    assert spec.model.source.region == "eu-west-1"
    assert spec.model.source.credentials_secret == "s3-reader"
    assert (
        spec.model.source.ca_bundle is not None
        and spec.model.source.ca_bundle.config_map_name == "platform-ca"
    )
    assert spec.model.source.snapshot_bucket == "snapshots"
    assert spec.model.source.snapshot_prefix == "platform-snapshots"
    assert spec.runtime.image == "registry.example.com/mirror/tritonserver:25.10"
    assert spec.rollout.analysis.prometheus_url == "http://prometheus.monitoring.svc:9090"
    assert spec.alerts.labels == {"release": "kube-prometheus-stack", "team": "platform"}
    fields = {d["field"]: (d["value"], d["from"]) for d in resolved.status()}
    assert fields["spec.model.source.endpoint"] == (ENDPOINT, "Platform")
    assert fields["spec.model.source.caBundle"] == ("ConfigMap platform-ca key ca.crt", "Platform")
    assert fields["spec.runtime.image"] == ("registry.example.com/mirror/tritonserver:25.10", "Platform")
    assert fields["spec.alerts.labels.release"] == ("kube-prometheus-stack", "Platform")
    assert len(fields) == 10


def test_resolving_a_resolved_codepilot_changes_and_copies_nothing() -> None:
    """render() resolves again what reconcile and the CLI resolved: the same object comes back, and
    the original is never modified in place."""
    original = parse_codepilot(uri_only())
    before = original.model_dump()
    resolved = with_defaults(original, DEFAULTS).codepilot
    assert resolved is not original and original.model_dump() == before
    again = with_defaults(resolved, DEFAULTS)
    assert again.codepilot is resolved and again.defaulted == ()
    other = with_defaults(resolved, DEFAULTS.model_copy(update={"triton_image": "elsewhere/triton:1"}))
    assert other.codepilot is resolved  # the CodePilot's own image (set by the first pass) wins


def test_the_codepilots_own_fields_win() -> None:
    doc = manifest(
        **{
            "spec.model.source.endpoint": ENDPOINT,
            "spec.model.source.region": "us-west-2",
            "spec.model.source.credentialsSecret": "team-keys",
            "spec.model.source.snapshotPrefix": "team-snapshots",
            "spec.runtime.image": "registry.example.com/team/triton:1",
            "spec.rollout.analysis.prometheusUrl": "http://team-prometheus:9090",
            "spec.alerts.labels": {"release": "team-stack"},
        }
    )
    resolved = with_defaults(parse_codepilot(doc), DEFAULTS)
    spec = resolved.codepilot.spec
    assert spec.model.source.region == "us-west-2"
    assert spec.model.source.credentials_secret == "team-keys"
    assert spec.model.source.snapshot_prefix == "team-snapshots"
    assert spec.runtime.image == "registry.example.com/team/triton:1"
    assert spec.rollout.analysis.prometheus_url == "http://team-prometheus:9090"
    assert spec.alerts.labels == {"release": "team-stack", "team": "platform"}  # merged key by key
    assert {d.field for d in resolved.defaulted} == {
        "spec.model.source.caBundle",
        "spec.model.source.snapshotBucket",
        "spec.alerts.labels.team",
    }


def test_an_endpoint_of_its_own_gets_none_of_the_platforms_connection_settings() -> None:
    """The platform's credentials and CA belong to its server: a CodePilot naming another endpoint must
    not have the fetcher sign requests to it with the platform's keys or trust it with the platform's CA."""
    doc = manifest(**{"spec.model.source.endpoint": "http://team-minio:9000"})
    source = with_defaults(parse_codepilot(doc), DEFAULTS).codepilot.spec.model.source
    assert source.credentials_secret is None
    assert source.ca_bundle is None
    assert source.region == "us-east-1"
    assert source.snapshot_bucket is None  # the bucket of uri
    assert source.snapshot_prefix == "platform-snapshots"  # a path, not a connection setting


def test_without_an_endpoint_anywhere_the_error_names_the_field() -> None:
    with pytest.raises(MissingSetting) as exc:
        with_defaults(parse_codepilot(uri_only()), PlatformDefaults())
    assert exc.value.problems == [
        "spec.model.source.endpoint: required: set it here, or have the platform set it once "
        "(chart value defaults.source.endpoint)"
    ]


def test_resolving_twice_changes_nothing() -> None:
    once = with_defaults(parse_codepilot(uri_only()), DEFAULTS).codepilot
    twice = with_defaults(once, DEFAULTS)
    assert twice.codepilot == once
    assert twice.defaulted == ()


def test_without_platform_defaults_the_operators_own_are_used_and_shown() -> None:
    resolved = with_defaults(codepilot(), PlatformDefaults())
    assert resolved.codepilot.spec.runtime.image == DEFAULT_TRITON_IMAGE
    assert {(d.field, d.origin) for d in resolved.defaulted} == {
        ("spec.model.source.region", Origin.OPERATOR),
        ("spec.model.source.snapshotPrefix", Origin.OPERATOR),
        ("spec.runtime.image", Origin.OPERATOR),
    }


def test_the_triton_image_the_old_crd_stored_follows_the_platform() -> None:
    """The 0.1.0 CRD's schema default wrote this image into every CodePilot; those CodePilots never
    chose it, so a platform's mirror must reach them too."""
    cp = codepilot(**{"spec.runtime.image": DEFAULT_TRITON_IMAGE})
    assert with_defaults(cp, DEFAULTS).codepilot.spec.runtime.image == DEFAULTS.triton_image
    assert with_defaults(cp, PlatformDefaults()).codepilot.spec.runtime.image == DEFAULT_TRITON_IMAGE


def test_the_crd_stores_none_of_the_defaulted_fields_in_codepilots() -> None:
    """A schema default is written into every CodePilot at creation: the platform's could never win."""
    spec = crd()["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]["properties"]
    source = spec["model"]["properties"]["source"]
    assert source["required"] == ["uri"]
    for name in ("endpoint", "region", "snapshotPrefix", "snapshotBucket", "caBundle", "credentialsSecret"):
        assert "default" not in source["properties"][name], name
    assert "default" not in spec["runtime"]["properties"]["image"]


# --- what render makes of it --------------------------------------------------------------------------


def test_render_fills_in_the_platform_defaults() -> None:
    objects = render(parse_codepilot(uri_only()), platform=PLATFORM)
    spec = pod(objects)
    fetch, triton = spec["initContainers"][0], spec["containers"][0]
    env = env_of(fetch)
    assert env["S3_ENDPOINT"] == ENDPOINT
    assert env["S3_REGION"] == "eu-west-1"
    assert env["AWS_ACCESS_KEY_ID"] == {"secretKeyRef": {"name": "s3-reader", "key": "AWS_ACCESS_KEY_ID"}}
    assert env["AWS_CA_BUNDLE"] == "/etc/codepilot/s3-ca/ca.crt"
    assert {"name": "s3-ca", "mountPath": "/etc/codepilot/s3-ca", "readOnly": True} in fetch["volumeMounts"]
    assert {
        "name": "s3-ca",
        "configMap": {"name": "platform-ca", "items": [{"key": "ca.crt", "path": "ca.crt"}]},
    } in spec["volumes"]
    assert triton["image"] == "registry.example.com/mirror/tritonserver:25.10"
    assert not any(m["name"] == "s3-ca" for m in triton["volumeMounts"])  # only the fetcher talks to S3
    monitors = [o for o in objects if o["kind"] in ("ServiceMonitor", "PrometheusRule")]
    assert monitors and all(o["metadata"]["labels"]["release"] == "kube-prometheus-stack" for o in monitors)
    for obj in objects:
        if obj["kind"] in ("Deployment", "Service", "ConfigMap"):
            validate_builtin(obj)


def test_a_ca_bundle_from_a_secret_is_mounted_and_admitted_like_every_secret() -> None:
    cp = codepilot(**{"spec.model.source.caBundle": {"secretName": "s3-ca", "key": "bundle.pem"}})
    spec = pod(render(cp))
    assert {
        "name": "s3-ca",
        "secret": {"secretName": "s3-ca", "items": [{"key": "bundle.pem", "path": "ca.crt"}]},
    } in spec["volumes"]
    refs = secret_refs("spec", cp)
    assert [(r.path, r.name) for r in refs] == [("spec.model.source.caBundle.secretName", "s3-ca")]


@pytest.mark.parametrize(
    "bundle",
    [{}, {"secretName": "a", "configMapName": "b"}, {"secretName": "a", "key": "no/slash"}],
)
def test_a_ca_bundle_names_exactly_one_object(bundle: dict[str, Any]) -> None:
    with pytest.raises(InvalidCodePilot) as exc:
        parse_codepilot(manifest(**{"spec.model.source.caBundle": bundle}))
    assert all(p.startswith("spec.model.source.caBundle") for p in exc.value.problems), exc.value.problems


def test_no_credentials_secret_means_no_keys_in_the_pod() -> None:
    """Without a Secret the fetcher signs with the pod's web identity (or not at all): nothing in env."""
    env = env_of(pod(render(codepilot()))["initContainers"][0])
    assert set(env) == {"S3_ENDPOINT", "S3_REGION"}


# --- the platform file and the CLI --------------------------------------------------------------------


def test_platform_file_defaults_problems_name_the_field(tmp_path: Path) -> None:
    path = tmp_path / "platform.yaml"
    cases = {
        "defaults: {source: {endpoint: 'ftp://x'}}\n": "defaults.source.endpoint",
        "defaults: {source: {endpoint: 'http://u:p@s3:9000'}}\n": "defaults.source.endpoint",
        "defaults: {source: {caBundle: {key: ca.crt}}}\n": "defaults.source.caBundle",
        "defaults: {tritonImage: 'has space'}\n": "defaults.tritonImage",
        "defaults: {prometheusUrl: 'prometheus:9090'}\n": "defaults.prometheusUrl",
        "defaults: {alertLabels: {'bad key!': x}}\n": "defaults.alertLabels",
        "defaults: {sourc: {}}\n": "defaults.sourc: unknown field",
    }
    for text, expected in cases.items():
        path.write_text(text)
        with pytest.raises(UsageError) as exc:
            load_platform(str(path))
        assert len(exc.value.problems) == 1 and expected in exc.value.problems[0], exc.value.problems


def test_alert_labels_are_bounded() -> None:
    with pytest.raises(ValidationError):
        PlatformDefaults.model_validate({"alertLabels": {f"k{i}": "v" for i in range(65)}})


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "codepilot_operator.cli", *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        cwd=REPO,
    )


def test_the_cli_renders_and_validates_with_the_platform_file(tmp_path: Path) -> None:
    cp = tmp_path / "cp.yaml"
    cp.write_text(
        "apiVersion: serving.codepilot.dev/v1alpha1\nkind: CodePilot\nmetadata: {name: coder, namespace: t}\n"
        "spec: {model: {name: m, version: v1, source: {uri: 's3://models/m'}}}\n"
    )
    platform = tmp_path / "platform.yaml"
    platform.write_text(f"defaults:\n  source: {{endpoint: '{ENDPOINT}'}}\n")

    refused = _cli("validate", str(cp))
    assert refused.returncode == 2 and refused.stdout == ""
    assert refused.stderr.splitlines() == [
        "error: t/coder: spec.model.source.endpoint: required: set it here, or have the platform set it "
        "once (chart value defaults.source.endpoint)"
    ]
    assert _cli("render", str(cp)).stdout == ""  # nothing half-written

    valid = _cli("validate", "--platform", str(platform), str(cp))
    assert valid.returncode == 0, valid.stderr
    rendered = _cli("render", "--platform", str(platform), str(cp))
    assert rendered.returncode == 0, rendered.stderr
    assert f"value: {ENDPOINT}" in rendered.stdout


def test_kedas_prometheus_is_the_platforms_too() -> None:
    """One Prometheus URL for the platform: KEDA's ScaledObject queries it like the canary analysis."""
    keda = {"spec.autoscaling.provider": "KEDA", "spec.autoscaling.maxReplicas": 3}
    objects = render(parse_codepilot(uri_only(**keda)), platform=PLATFORM)
    (scaled,) = [o for o in objects if o["kind"] == "ScaledObject"]
    assert scaled["spec"]["triggers"][0]["metadata"]["serverAddress"] == DEFAULTS.prometheus_url
    resolved = with_defaults(parse_codepilot(uri_only(**keda)), DEFAULTS)
    assert ("spec.autoscaling.prometheusAddress", DEFAULTS.prometheus_url) in {
        (d.field, d.value) for d in resolved.defaulted
    }
    # The value the 0.1.0 CRD stored in every CodePilot follows the platform; a chosen one wins.
    stored = {**keda, "spec.autoscaling.prometheusAddress": "http://prometheus-operated.monitoring.svc:9090"}
    assert with_defaults(codepilot(**stored), DEFAULTS).codepilot.spec.autoscaling.prometheus_address == (
        DEFAULTS.prometheus_url
    )
    chosen = {**keda, "spec.autoscaling.prometheusAddress": "http://team-prometheus:9090"}
    address = with_defaults(codepilot(**chosen), DEFAULTS).codepilot.spec.autoscaling.prometheus_address
    assert address == "http://team-prometheus:9090"
    # Without the platform's, KEDA gets the built-in address, and nothing is reported for other providers.
    builtin = render(codepilot(**keda))
    (scaled,) = [o for o in builtin if o["kind"] == "ScaledObject"]
    assert (
        scaled["spec"]["triggers"][0]["metadata"]["serverAddress"]
        == "http://prometheus-operated.monitoring.svc:9090"
    )
    assert "spec.autoscaling.prometheusAddress" not in {
        d.field for d in with_defaults(codepilot(), DEFAULTS).defaulted
    }
