"""The pure parts of reconcile: what counts as drift, what gets pruned, what the operator applies."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from codepilot_operator.api.platform import DEFAULT_PLATFORM
from codepilot_operator.clients.kube import Kind, PermissionDenied, allowed
from codepilot_operator.clients.permissions import PERMISSIONS
from codepilot_operator.reconcile import prune
from codepilot_operator.reconcile.drift import (
    INPUT_HASH_ANNOTATION,
    contains,
    input_hash,
    unchanged,
    with_input_hash,
)
from codepilot_operator.reconcile.reconcile import InvalidSpec, desired_objects, parse
from codepilot_operator.render import served_versions
from tests.helpers import manifest

UID = "0b5c6f5e-1111-2222-3333-444455556666"


def live_manifest(**overrides: Any) -> dict[str, Any]:
    doc = manifest(**overrides)
    doc["metadata"].update(uid=UID, generation=1, resourceVersion="7")
    return doc


def desired(**overrides: Any) -> list[dict[str, Any]]:
    cp = parse(live_manifest(**overrides))
    return desired_objects(cp, served_versions(cp), DEFAULT_PLATFORM)


def as_live(obj: dict[str, Any]) -> dict[str, Any]:
    """What the API server returns: our fields plus defaults and server metadata."""
    live = copy.deepcopy(obj)
    live["metadata"].update(uid="child-uid", resourceVersion="9", managedFields=[{"manager": "x"}])
    if obj["kind"] == "Deployment":
        live["spec"]["template"]["spec"]["dnsPolicy"] = "ClusterFirst"
        live["status"] = {"readyReplicas": 1}
    return live


def test_every_child_is_owned_labelled_and_hashed() -> None:
    for obj in desired():
        meta = obj["metadata"]
        assert meta["ownerReferences"][0]["uid"] == UID and meta["ownerReferences"][0]["controller"] is True
        assert prune.child_selector("coder").items() <= meta["labels"].items()
        assert meta["annotations"][INPUT_HASH_ANNOTATION] == input_hash(obj)


def test_every_rendered_kind_is_managed_and_permitted() -> None:
    """apply needs patch+create, prune needs list+delete: the RBAC table must allow each rendered kind."""
    variants = [
        desired(**{"spec.autoscaling.maxReplicas": 4}),
        desired(**{"spec.autoscaling.maxReplicas": 4, "spec.autoscaling.provider": "KEDA"}),
    ]
    for obj in [o for objs in variants for o in objs]:
        kind = Kind.of(obj)
        assert kind in prune.MANAGED_KINDS, f"{kind} missing from prune.MANAGED_KINDS"
        for verb in ("patch", "create", "list", "delete"):
            assert allowed(PERMISSIONS, kind.group, kind.plural, verb), f"{verb} {kind.plural}"


def test_live_object_with_server_defaults_is_unchanged() -> None:
    for obj in desired():
        assert unchanged(as_live(obj), obj), obj["kind"]


def test_hand_edit_of_an_owned_field_is_drift() -> None:
    deployment = next(o for o in desired() if o["kind"] == "Deployment")
    live = as_live(deployment)
    live["spec"]["template"]["spec"]["containers"][0]["image"] = "attacker/triton:latest"
    assert not unchanged(live, deployment)
    live = as_live(deployment)
    live["spec"]["template"]["spec"]["containers"].append({"name": "sidecar"})
    assert not unchanged(live, deployment), "an added container changes what runs"


def test_changed_spec_changes_the_hash() -> None:
    before = {o["metadata"]["name"]: o for o in desired()}
    after = {o["metadata"]["name"]: o for o in desired(**{"spec.runtime.image": "triton:2"})}
    name = "coder-v1"
    assert not unchanged(as_live(before[name]), after[name])


def test_missing_object_is_never_unchanged() -> None:
    assert not unchanged(None, desired()[0])


def test_contains_treats_lists_as_ordered_and_complete() -> None:
    assert contains({"a": [1, 2], "b": 3}, {"a": [1, 2]})
    assert not contains({"a": [2, 1]}, {"a": [1, 2]})
    assert not contains({"a": [1]}, {"a": [1, 2]})
    assert not contains({"a": "1"}, {"a": 1})


def test_quantities_compare_by_value_as_the_api_server_canonicalises_them() -> None:
    desired = {
        "resources": {"limits": {"memory": "1.5Gi", "cpu": "2000m"}},
        "emptyDir": {"sizeLimit": "1024Gi"},
    }
    live = {"resources": {"limits": {"memory": "1536Mi", "cpu": "2"}}, "emptyDir": {"sizeLimit": "1Ti"}}
    assert contains(live, desired)
    assert not contains({"resources": {"limits": {"memory": "1Gi", "cpu": "2"}}}, desired)
    assert not contains({"image": "triton:2.0"}, {"image": "triton:2"}), "only quantity fields"


def test_hash_ignores_the_hash_annotation() -> None:
    obj = desired()[0]
    assert input_hash(with_input_hash(obj)) == input_hash(obj)


def test_prune_selects_only_owned_objects_no_longer_rendered() -> None:
    v1 = desired()
    v2 = desired(**{"spec.model.version": "v2"})
    foreign = copy.deepcopy(v1[0])
    foreign["metadata"]["ownerReferences"] = [{"uid": "someone-else", "controller": True}]
    foreign["metadata"]["name"] = "hand-made"
    stale = {(o["kind"], o["metadata"]["name"]) for o in prune.stale([*v1, foreign], v2, UID)}
    assert ("Deployment", "coder-v1") in stale and ("ConfigMap", "coder-v1-config") in stale
    assert ("ConfigMap", "hand-made") not in stale
    assert ("Service", "coder") not in stale, "the entry Service is rendered for every version"


def test_hpa_enabled_deployment_carries_no_replicas() -> None:
    deployment = next(o for o in desired(**{"spec.autoscaling.maxReplicas": 4}) if o["kind"] == "Deployment")
    assert "replicas" not in deployment["spec"]


def test_invalid_spec_names_the_field() -> None:
    with pytest.raises(InvalidSpec) as exc:
        parse(live_manifest(**{"spec.runtime.gpus": 99}))
    assert any(p.startswith("spec.runtime.gpus") for p in exc.value.problems)


def test_plurals() -> None:
    assert Kind("autoscaling/v2", "HorizontalPodAutoscaler").plural == "horizontalpodautoscalers"
    assert Kind("policy/v1", "PodDisruptionBudget").plural == "poddisruptionbudgets"
    assert Kind("networking.k8s.io/v1", "NetworkPolicy").plural == "networkpolicies"
    assert Kind("keda.sh/v1alpha1", "ScaledObject").plural == "scaledobjects"
    assert Kind("v1", "Endpoints").plural == "endpoints"


def test_permission_denied_is_raised_before_any_request() -> None:
    from codepilot_operator.clients.kube import KubeClient

    client = KubeClient.__new__(KubeClient)
    client._permissions = PERMISSIONS
    client._classes = {}
    with pytest.raises(PermissionDenied, match="secrets"):
        client._resource(Kind("v1", "Secret"), "list")  # only "get" of the named credentials Secret


def test_progress_refresh_runs_only_while_a_valid_codepilot_is_not_ready() -> None:
    from codepilot_operator.reconcile.status import waiting_for_pods

    def status(reconciled: str, ready: str) -> dict[str, Any]:
        return {
            "conditions": [{"type": "Reconciled", "status": reconciled}, {"type": "Ready", "status": ready}]
        }

    assert waiting_for_pods(status("True", "False"))
    assert not waiting_for_pods(status("True", "True"))
    assert not waiting_for_pods(status("False", "False")), "invalid spec: nothing to wait for"
    assert not waiting_for_pods({}), "not reconciled yet: the create handler is on it"
