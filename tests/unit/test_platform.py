"""The platform's policy: what it lets a CodePilot's author choose, and what render takes from it."""

from __future__ import annotations

import itertools
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from codepilot_operator.api.crd import crd
from codepilot_operator.api.platform import (
    ALLOW_LABEL,
    DEFAULT_FETCHER_IMAGE,
    DEFAULT_PLATFORM,
    PlatformPolicy,
    secret_allowed,
)
from codepilot_operator.api.status import CodePilotStatus, ConditionType, Reason
from codepilot_operator.api.tracks import template_fields, template_of
from codepilot_operator.cli import main
from codepilot_operator.cli.support import load_platform
from codepilot_operator.reconcile.admission import (
    PolicyRefused,
    rendered_specs,
    secret_refs,
    secret_violation,
    spec_violations,
)
from codepilot_operator.render import render, served_versions
from tests.helpers import assert_settings_file_refused, codepilot

PLATFORM = PlatformPolicy(
    fetcher_image="registry.example.com/platform/codepilot-operator:2.0.0",
    allowed_fetcher_images=("registry.example.com/platform/fetchers/*", "ghcr.io/acme/fetch:*"),
    allowed_service_accounts=("inference",),
    allowed_priority_classes=("inference-critical",),
)


def pod(objects: list[dict[str, Any]]) -> dict[str, Any]:
    (deployment,) = [o for o in objects if o["kind"] == "Deployment"]
    return dict(deployment["spec"]["template"]["spec"])


# --- the fetcher image belongs to the operator --------------------------------------------------------


def test_the_crd_writes_no_fetcher_image_into_codepilots() -> None:
    """A schema default is stored in every CodePilot at creation, so an upgraded operator image would
    never reach CodePilots created before the upgrade."""
    schema = crd()["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    runtime = schema["properties"]["spec"]["properties"]["runtime"]
    assert "default" not in runtime["properties"]["fetcherImage"]
    assert "fetcherImage" not in (runtime.get("default") or {})


def test_the_fetcher_runs_the_platform_image_unless_the_codepilot_overrides_it() -> None:
    fetch = pod(render(codepilot(), platform=PLATFORM))["initContainers"][0]
    assert fetch["image"] == PLATFORM.fetcher_image
    override = codepilot(**{"spec.runtime.fetcherImage": "ghcr.io/acme/fetch:1.2"})
    assert pod(render(override, platform=PLATFORM))["initContainers"][0]["image"] == "ghcr.io/acme/fetch:1.2"


def test_offline_render_defaults_to_the_operator_image_of_this_version() -> None:
    assert pod(render(codepilot()))["initContainers"][0]["image"] == DEFAULT_FETCHER_IMAGE


def test_the_value_the_old_crd_default_stored_follows_the_platform_image() -> None:
    """CodePilots created under the 0.1.0 CRD carry its default as if the author had written it."""
    legacy = codepilot(**{"spec.runtime.fetcherImage": "codepilot/codepilot-operator:0.1.0"})
    assert pod(render(legacy, platform=PLATFORM))["initContainers"][0]["image"] == PLATFORM.fetcher_image
    assert spec_violations("spec", legacy, PLATFORM) == []


def _gateway_image(cp: Any, platform: PlatformPolicy = DEFAULT_PLATFORM) -> str:
    objects = render(cp, platform=platform)
    (gateway,) = [o for o in objects if o["kind"] == "Deployment" and o["metadata"]["name"].endswith("-api")]
    return str(gateway["spec"]["template"]["spec"]["containers"][0]["image"])


def test_the_gateway_runs_the_platform_image_like_the_fetcher() -> None:
    """The gateway is the operator's code too: the chart's image (registry, mirror, digest) and a helm
    upgrade reach it; the CRD stores no default, and the old CRD's stored default follows the platform."""
    schema = crd()["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    assert "default" not in schema["properties"]["spec"]["properties"]["api"]["properties"]["image"]
    api = {"enabled": True, "keySecrets": ["team-a"]}
    assert _gateway_image(codepilot(**{"spec.api": api})) == DEFAULT_FETCHER_IMAGE
    assert _gateway_image(codepilot(**{"spec.api": api}), PLATFORM) == PLATFORM.fetcher_image
    legacy = codepilot(**{"spec.api": {**api, "image": "codepilot/codepilot-operator:0.1.0"}})
    assert _gateway_image(legacy, PLATFORM) == PLATFORM.fetcher_image
    assert spec_violations("spec", legacy, PLATFORM) == []
    allowed = codepilot(**{"spec.api": {**api, "image": "ghcr.io/acme/fetch:2"}})
    assert _gateway_image(allowed, PLATFORM) == "ghcr.io/acme/fetch:2"
    assert spec_violations("spec", allowed, PLATFORM) == []


def test_a_gateway_image_the_platform_does_not_allow_is_refused() -> None:
    """It would receive every team's API keys."""
    cp = codepilot(**{"spec.api": {"enabled": True, "image": "attacker.example/grab-keys:1"}})
    violations = spec_violations("spec", cp, PLATFORM)
    assert [(v.path, v.reason) for v in violations] == [("spec.api.image", Reason.IMAGE_NOT_ALLOWED)]
    assert "API keys" in str(violations[0]) and "policy.fetcherImages" in str(violations[0])
    disabled = codepilot(**{"spec.api": {"enabled": False, "image": "attacker.example/grab-keys:1"}})
    assert spec_violations("spec", disabled, PLATFORM) == []


def test_render_cli_takes_the_platform_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    manifest = tmp_path / "cp.yaml"
    manifest.write_text(
        "apiVersion: serving.codepilot.dev/v1alpha1\nkind: CodePilot\nmetadata: {name: coder}\n"
        "spec: {model: {name: m, version: v1, source: {uri: 's3://models/m', endpoint: 'http://s3:9000'}}}\n"
    )
    platform = tmp_path / "platform.yaml"
    platform.write_text("fetcherImage: registry.example.com/platform/codepilot-operator:2.0.0\n")
    assert main(["render", str(manifest), "--platform", str(platform)]) == 0
    assert "image: registry.example.com/platform/codepilot-operator:2.0.0" in capsys.readouterr().out


# --- the policy file ----------------------------------------------------------------------------------


def test_platform_file_problems_name_the_field(tmp_path: Path) -> None:
    path = tmp_path / "platform.yaml"
    cases = {
        "allowedServiceAccounts: [Not_A_Name]\n": "allowedServiceAccounts[0]",
        "allowedServiceAcounts: [x]\n": "allowedServiceAcounts: unknown field",
        "allowedFetcherImages: ['registry.example.com/team*']\n": "allowedFetcherImages[0]",
        "fetcherImage: ''\n": "fetcherImage",
        "- a list\n": "expected a mapping",
        "a: 1\n---\nb: 2\n": "expected one mapping of settings, found 2",
        "a: &a [x, x, x, x, x, x, x, x, x, x]\n"
        + "".join(f"{n}: &{n} [{', '.join(['*' + p] * 10)}]\n" for p, n in itertools.pairwise("abcde"))
        + "f: *e\n": "more than 100000 nodes once aliases are expanded",
        "a: 1\na: 2\n": "line 2, column 1: invalid YAML: duplicate key 'a'",
    }
    assert_settings_file_refused(load_platform, "--platform", path, cases)


def test_empty_platform_file_is_the_default() -> None:
    assert load_platform(None) == DEFAULT_PLATFORM
    assert PlatformPolicy.model_validate({}) == DEFAULT_PLATFORM


def test_policy_is_frozen() -> None:
    with pytest.raises(ValidationError):
        PLATFORM.fetcher_image = "x"  # type: ignore[misc]


def test_fetcher_image_patterns() -> None:
    allowed = [
        PLATFORM.fetcher_image,
        "registry.example.com/platform/fetchers/fetch:1",
        "registry.example.com/platform/fetchers/deep/fetch@sha256:" + "a" * 64,
        "ghcr.io/acme/fetch:1.2.3",
    ]
    refused = [
        "codepilot/codepilot-operator:0.1.0",
        "registry.example.com/platform/fetchers-evil/fetch:1",
        "registry.example.com/platform/fetchers/",
        "ghcr.io/acme/fetch",
        "ghcr.io/acme/fetch-other:1",
        "ghcr.io/acme/fetch:",
    ]
    assert [image for image in allowed if not PLATFORM.allows_fetcher_image(image)] == []
    assert [image for image in refused if PLATFORM.allows_fetcher_image(image)] == []


def test_service_accounts_and_priority_classes() -> None:
    assert PLATFORM.allows_service_account(None) and PLATFORM.allows_service_account("default")
    assert PLATFORM.allows_service_account("inference")
    assert not PLATFORM.allows_service_account("ci-deployer")
    assert not DEFAULT_PLATFORM.allows_service_account("inference")
    assert PLATFORM.allows_priority_class(None) and PLATFORM.allows_priority_class("inference-critical")
    assert not PLATFORM.allows_priority_class("system-cluster-critical")
    assert not DEFAULT_PLATFORM.allows_priority_class("inference-critical")


def test_secret_allow_label() -> None:
    assert secret_allowed({ALLOW_LABEL: "true"})
    for labels in (None, {}, {ALLOW_LABEL: "false"}, {ALLOW_LABEL: "True"}, {"allow-codepilot": "true"}):
        assert not secret_allowed(labels), labels


# --- what admission refuses -------------------------------------------------------------------------


def test_spec_violations_name_each_field() -> None:
    cp = codepilot(
        **{
            "spec.runtime.fetcherImage": "attacker.example/grab-env:1",
            "spec.runtime.serviceAccountName": "ci-deployer",
            "spec.runtime.priorityClassName": "system-cluster-critical",
        }
    )
    violations = spec_violations("spec", cp, PLATFORM)
    assert [(v.path, v.reason) for v in violations] == [
        ("spec.runtime.fetcherImage", Reason.IMAGE_NOT_ALLOWED),
        ("spec.runtime.serviceAccountName", Reason.SERVICE_ACCOUNT_NOT_ALLOWED),
        ("spec.runtime.priorityClassName", Reason.PRIORITY_CLASS_NOT_ALLOWED),
    ]
    assert "policy.fetcherImages" in str(violations[0]) and PLATFORM.fetcher_image in str(violations[0])
    assert "policy.serviceAccounts: inference" in str(violations[1])
    allowed = codepilot(
        **{
            "spec.runtime.serviceAccountName": "inference",
            "spec.runtime.priorityClassName": "inference-critical",
        }
    )
    assert spec_violations("spec", allowed, PLATFORM) == []


def test_every_secret_the_pods_reference_is_checked() -> None:
    cp = codepilot(
        **{
            "spec.model.source.credentialsSecret": "s3-credentials",
            "spec.runtime.imagePullSecrets": ["registry", "other-registry"],
        }
    )
    refs = secret_refs("spec", cp)
    assert [(r.path, r.name, r.credentials) for r in refs] == [
        ("spec.model.source.credentialsSecret", "s3-credentials", True),
        ("spec.runtime.imagePullSecrets[0]", "registry", False),
        ("spec.runtime.imagePullSecrets[1]", "other-registry", False),
    ]
    rendered = pod(render(cp))
    referenced = {
        e["valueFrom"]["secretKeyRef"]["name"]
        for e in rendered["initContainers"][0]["env"]
        if "valueFrom" in e
    } | {s["name"] for s in rendered["imagePullSecrets"]}
    assert referenced == {r.name for r in refs}, "the check covers exactly what the pods reference"


def _referenced(node: Any, found: set[tuple[str, str]]) -> set[tuple[str, str]]:
    """Every Secret and claim a rendered pod spec names, wherever core/v1 lets it name one."""
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "secretKeyRef":
                found.add(("Secret", value["name"]))
            elif key == "secret":
                found.add(("Secret", value["secretName"]))
            elif key == "imagePullSecrets":
                found.update(("Secret", s["name"]) for s in value)
            elif key == "persistentVolumeClaim":
                found.add(("PersistentVolumeClaim", value["claimName"]))
            _referenced(value, found)
    elif isinstance(node, list):
        for value in node:
            _referenced(value, found)
    return found


def test_every_secret_and_claim_of_the_pod_options_and_the_cache_is_checked() -> None:
    """A Secret volume or a secretKeyRef the author adds would hand the operator's Secret access to the
    author's image; a claim, its data. Each must pass the same allow-label check as the credentials."""
    from codepilot_operator.api.tracks import ServedVersion
    from codepilot_operator.reconcile.admission import CLAIM

    cp = codepilot(
        **{
            "spec.model.source.credentialsSecret": "s3-credentials",
            "spec.model.source.caBundle": {"secretName": "s3-ca"},
            "spec.model.cache": {"claimName": "model-cache"},
            "spec.runtime.env": [
                {"name": "TOKEN", "valueFrom": {"secretKeyRef": {"name": "hf-token", "key": "token"}}},
                {"name": "MODE", "valueFrom": {"configMapKeyRef": {"name": "settings", "key": "mode"}}},
            ],
            "spec.runtime.volumes": [
                {"name": "ca", "secret": {"secretName": "private-ca"}},
                {"name": "data", "persistentVolumeClaim": {"claimName": "datasets"}},
                {"name": "prompts", "configMap": {"name": "prompts"}},
            ],
        }
    )
    refs = secret_refs("spec", cp)
    assert [(r.path, r.name, r.what) for r in refs] == [
        ("spec.model.source.credentialsSecret", "s3-credentials", "Secret"),
        ("spec.model.source.caBundle.secretName", "s3-ca", "Secret"),
        ("spec.runtime.env[0].valueFrom.secretKeyRef.name", "hf-token", "Secret"),
        ("spec.runtime.volumes[0].secret.secretName", "private-ca", "Secret"),
        ("spec.runtime.volumes[1].persistentVolumeClaim.claimName", "datasets", "PersistentVolumeClaim"),
        ("spec.model.cache.claimName", "model-cache", "PersistentVolumeClaim"),
    ]
    rendered = pod(render(cp, [ServedVersion("v1", snapshot_id="c" * 64)]))
    assert _referenced(rendered, set()) == {(r.what, r.name) for r in refs}

    unlabelled = secret_violation(refs[4], "team-a", {"app": "etl"})
    assert unlabelled is not None and unlabelled.reason is Reason.CLAIM_NOT_ALLOWED
    assert str(unlabelled) == (
        "spec.runtime.volumes[1].persistentVolumeClaim.claimName: PersistentVolumeClaim team-a/datasets is "
        "not allowed for CodePilots; whoever owns it can allow it with "
        f"`kubectl label pvc datasets -n team-a {ALLOW_LABEL}=true`"
    )
    missing = secret_violation(refs[4], "team-a", None)
    assert missing is not None and missing.reason is Reason.CLAIM_NOT_FOUND
    assert refs[4].kind == CLAIM and secret_violation(refs[4], "team-a", {ALLOW_LABEL: "true"}) is None


def test_refused_secret_says_what_to_do() -> None:
    (ref,) = secret_refs("spec", codepilot(**{"spec.model.source.credentialsSecret": "s3-credentials"}))
    problem = secret_violation(ref, "team-a", {"app": "minio"})
    assert problem is not None and problem.reason is Reason.SECRET_NOT_ALLOWED
    assert f"kubectl label secret s3-credentials -n team-a {ALLOW_LABEL}=true" in str(problem)
    missing = secret_violation(ref, "team-a", None)
    assert missing is not None and missing.reason is Reason.SECRET_NOT_FOUND
    assert str(missing) == "spec.model.source.credentialsSecret: Secret team-a/s3-credentials not found"
    assert secret_violation(ref, "team-a", {ALLOW_LABEL: "true"}) is None


def test_refusal_conditions() -> None:
    cp = codepilot(**{"spec.model.source.credentialsSecret": "s3", "spec.runtime.serviceAccountName": "x"})
    (credentials,) = secret_refs("spec", cp)
    violations = [*spec_violations("spec", cp, PLATFORM), secret_violation(credentials, "team-a", {})]
    refused = PolicyRefused([v for v in violations if v is not None])
    by_type = {c.type: c for c in refused.conditions}
    assert by_type[ConditionType.DEGRADED].reason == Reason.SERVICE_ACCOUNT_NOT_ALLOWED
    assert by_type[ConditionType.DEGRADED].message.startswith(
        "nothing applied: spec.runtime.serviceAccountName"
    )
    assert "spec.model.source.credentialsSecret" in by_type[ConditionType.RECONCILED].message
    assert by_type[ConditionType.WEIGHTS_VERIFIED].reason == Reason.SECRET_NOT_ALLOWED
    only_sa = PolicyRefused(spec_violations("spec", cp, PLATFORM))
    assert ConditionType.WEIGHTS_VERIFIED not in {c.type for c in only_sa.conditions}


def test_the_stable_version_mid_rollout_is_checked_as_it_is_rendered() -> None:
    """The stable version is rendered from status.stableTemplate: a ServiceAccount recorded there is
    checked again (the platform may have withdrawn it since)."""
    old = codepilot(**{"spec.runtime.serviceAccountName": "legacy-sa"})
    status = CodePilotStatus.model_validate(
        {"stableVersion": "v1", "stableTemplate": template_fields(template_of(old))}
    )
    new = codepilot(**{"spec.model.version": "v2"}).model_copy(update={"status": status})
    specs = rendered_specs(new, served_versions(new))
    assert [prefix for prefix, _ in specs] == ["spec", "status.stableTemplate"]
    paths = [v.path for prefix, spec in specs for v in spec_violations(prefix, spec, PLATFORM)]
    assert paths == ["status.stableTemplate.runtime.serviceAccountName"]
