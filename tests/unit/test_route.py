"""Traffic routing as rendered objects: the HTTPRoute (validated against the Gateway API schemas), the
replica split, and the stable version rendered from the spec it was promoted with."""

from __future__ import annotations

import copy
from typing import Any

from codepilot_operator.api.tracks import template_fields, template_of
from codepilot_operator.render import render
from tests.helpers import EXAMPLES, codepilot, load_example, manifest, validate_gateway_api

GATEWAY = {"parentRefs": [{"name": "gw", "namespace": "gateway-system"}], "hostnames": ["coder.example.com"]}


def _route(objects: list[dict[str, Any]]) -> dict[str, Any]:
    [route] = [o for o in objects if o["kind"] == "HTTPRoute"]
    return route


def _weights(route: dict[str, Any]) -> dict[str, int]:
    default = route["spec"]["rules"][-1]
    return {ref["name"]: ref["weight"] for ref in default["backendRefs"]}


def rolling(weight: int, **extra: Any) -> dict[str, Any]:
    """A CodePilot rolling v1 -> v2 with the canary at ``weight`` (its replicas Ready)."""
    doc = manifest(**{"spec.model.version": "v2", "spec.rollout.traffic.gateway": GATEWAY, **extra})
    doc["metadata"]["uid"] = "u1"
    v1 = copy.deepcopy(doc)
    v1["spec"]["model"]["version"] = "v1"
    doc["status"] = {
        "stableVersion": "v1",
        "stableTemplate": template_fields(template_of(codepilot_from(v1))),
        "rollout": {
            "phase": "Progressing",
            "version": "v2",
            "weight": weight,
            "actualWeight": weight,
            "stableReplicas": 1,
            "canaryReplicas": 1,
        },
    }
    return doc


def codepilot_from(doc: dict[str, Any]) -> Any:
    from codepilot_operator.loader import parse_codepilot

    return parse_codepilot(doc)


def test_no_gateway_no_route() -> None:
    assert not [o for o in render(codepilot()) if o["kind"] == "HTTPRoute"]


def test_a_lone_version_gets_all_traffic_and_its_header_rule() -> None:
    route = _route(render(codepilot(**{"spec.rollout.traffic.gateway": GATEWAY})))
    assert _weights(route) == {"coder-v1": 100}
    assert route["spec"]["rules"][0]["matches"][0]["headers"][0] == {
        "type": "Exact",
        "name": "x-codepilot-version",
        "value": "v1",
    }
    assert route["spec"]["parentRefs"] == [{"name": "gw", "namespace": "gateway-system"}]
    assert validate_gateway_api([route]) == []


def test_canary_weight_splits_the_default_rule_and_each_version_has_its_header_rule() -> None:
    route = _route(render(codepilot_from(rolling(25))))
    assert _weights(route) == {"coder-v1": 75, "coder-v2": 25}
    pinned = [r["matches"][0]["headers"][0]["value"] for r in route["spec"]["rules"][:-1]]
    assert pinned == ["v1", "v2"]
    assert validate_gateway_api([route]) == []


def test_a_canary_without_ready_endpoints_gets_no_backend_ref() -> None:
    route = _route(render(codepilot_from(rolling(0))))
    assert _weights(route) == {"coder-v1": 100}
    assert all("coder-v2" not in str(rule) for rule in route["spec"]["rules"])


def test_the_validator_rejects_a_broken_route() -> None:
    route = _route(render(codepilot_from(rolling(25))))
    route["spec"]["rules"][-1]["backendRefs"][0]["weight"] = "75"
    del route["spec"]["parentRefs"][0]["name"]
    problems = validate_gateway_api([route])
    assert len(problems) == 1 and "HTTPRoute/coder" in problems[0]


def test_replica_shares_come_from_the_rollout_state() -> None:
    doc = rolling(25)
    doc["status"]["rollout"].update(stableReplicas=3, canaryReplicas=1)
    deployments = {o["metadata"]["name"]: o for o in render(codepilot_from(doc)) if o["kind"] == "Deployment"}
    assert deployments["coder-v1"]["spec"]["replicas"] == 3
    assert deployments["coder-v2"]["spec"]["replicas"] == 1


def test_the_stable_pod_template_does_not_change_when_the_spec_changes_with_the_version() -> None:
    original = rolling(0)
    before = codepilot_from(original)
    doc = rolling(0, **{"spec.runtime.image": "triton:new", "spec.runtime.maxTokens": 512})
    doc["spec"]["model"]["source"]["uri"] = "s3://models/codellama/v2"
    doc["status"]["stableTemplate"] = original["status"]["stableTemplate"]  # v1 as it was promoted
    after = codepilot_from(doc)

    def template(cp: Any, name: str) -> Any:
        return next(o for o in render(cp) if o["kind"] == "Deployment" and o["metadata"]["name"] == name)[
            "spec"
        ]["template"]

    assert template(after, "coder-v1") == template(before, "coder-v1")
    canary = template(after, "coder-v2")
    assert canary["spec"]["containers"][0]["image"] == "triton:new"
    assert "s3://models/codellama/v2" in canary["spec"]["initContainers"][0]["args"]


def test_every_example_route_is_valid() -> None:
    routes = [o for path in EXAMPLES for o in render(load_example(path)) if o["kind"] == "HTTPRoute"]
    assert routes and validate_gateway_api(routes) == []
