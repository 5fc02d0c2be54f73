"""The generated CRD is what the API server needs: structural, in sync with the models, small."""

from __future__ import annotations

import copy
import json
from typing import Any

import jsonschema
import pytest
import yaml

from codepilot_operator.api.crd import crd
from codepilot_operator.loader import parse_codepilot
from tests.helpers import EXAMPLES, MINIMAL, REPO, manifest

CRD_FILE = REPO / "crds" / "codepilot.yaml"


def _schema() -> dict[str, Any]:
    return crd()["spec"]["versions"][0]["schema"]["openAPIV3Schema"]


def _validate(document: Any) -> None:
    """OpenAPI v3.0 schemas are Draft 4 JSON Schema (boolean exclusiveMinimum/-Maximum)."""
    jsonschema.Draft4Validator(_schema()).validate(document)


def test_crds_directory_matches_the_models() -> None:
    """Fails when someone edits api/ without running `make crds` (or edits crds/ by hand)."""
    assert yaml.safe_load(CRD_FILE.read_text()) == crd()


def test_crd_is_far_below_the_annotation_limit() -> None:
    # kubectl apply (client-side) stores the object in a 256 KiB annotation; keep lots of headroom.
    assert len(json.dumps(crd())) < 64 * 1024


def _structural_problems(node: dict[str, Any], path: str = "") -> list[str]:
    """The structural-schema rules of apiextensions.k8s.io/v1 that a generator can get wrong."""
    problems = []
    if "$ref" in node:
        problems.append(f"{path}: $ref is not allowed")
    int_or_string = node.get("x-kubernetes-int-or-string") is True
    if "type" not in node and not int_or_string and not node.get("x-kubernetes-preserve-unknown-fields"):
        problems.append(f"{path}: no type")
    if int_or_string and node.get("anyOf") not in (None, [{"type": "integer"}, {"type": "string"}]):
        problems.append(f"{path}: int-or-string anyOf must be exactly integer|string")
    for key in ("anyOf", "oneOf", "allOf"):
        if key in node and not int_or_string:
            problems.append(f"{path}: {key} outside int-or-string")
    if "properties" in node and "additionalProperties" in node:
        problems.append(f"{path}: properties and additionalProperties are exclusive")
    for bound in ("exclusiveMinimum", "exclusiveMaximum"):
        if bound in node and not isinstance(node[bound], bool):
            problems.append(f"{path}: {bound} must be a boolean in OpenAPI v3.0")
    for unsupported in ("patternProperties", "propertyNames", "$defs", "definitions"):
        if unsupported in node:
            problems.append(f"{path}: {unsupported} is not part of a structural schema")
    if node.get("nullable") is True or node.get("type") == "null":
        problems.append(f"{path}: null types are not used")
    for name, sub in node.get("properties", {}).items():
        problems.extend(_structural_problems(sub, f"{path}.{name}"))
    if isinstance(node.get("additionalProperties"), dict):
        problems.extend(_structural_problems(node["additionalProperties"], f"{path}.*"))
    if "items" in node:
        problems.extend(_structural_problems(node["items"], f"{path}[]"))
    return problems


def test_schema_is_structural() -> None:
    assert _structural_problems(_schema()) == []


def test_crd_identity_and_subresources() -> None:
    spec = crd()["spec"]
    assert spec["group"] == "serving.codepilot.dev"
    assert spec["names"]["kind"] == "CodePilot"
    assert spec["names"]["plural"] == "codepilots"
    assert spec["names"]["shortNames"] == ["cpl"]
    assert spec["scope"] == "Namespaced"
    version = spec["versions"][0]
    assert version["name"] == "v1alpha1" and version["storage"] is True
    assert version["subresources"] == {"status": {}}
    columns = {c["name"] for c in version["additionalPrinterColumns"]}
    assert {"Model", "Stable", "Canary", "Weight", "Ready", "Age"} <= columns


def test_cross_field_rules_are_cel_in_the_schema() -> None:
    spec = _schema()["properties"]["spec"]
    rules = [r["rule"] for r in spec["properties"]["autoscaling"]["x-kubernetes-validations"]]
    assert rules == [
        "self.maxReplicas >= self.minReplicas",
        "self.signal != 'cpu' || !has(self.target) || self.target >= 1.0",
    ]
    assert spec["x-kubernetes-validations"][0]["message"] == "the tensorrtllm backend needs runtime.gpus >= 1"


@pytest.mark.parametrize("example", EXAMPLES, ids=lambda p: p.name)
def test_examples_validate_against_the_crd_schema(example: Any) -> None:
    _validate(yaml.safe_load(example.read_text()))


@pytest.mark.parametrize(
    "overrides",
    [
        {"spec.runtime.gpus": -1},
        {"spec.model.backend": "vllm"},
        {"spec.rollout.steps": [{"weight": 0}]},
        {"spec.alerts.latency": {"for": "soon"}},
        {"spec.model.source.uri": "http://x/y"},
    ],
)
def test_crd_schema_rejects_what_the_models_reject(overrides: dict[str, Any]) -> None:
    with pytest.raises(jsonschema.ValidationError):
        _validate(manifest(**overrides))


def _apply_defaults(schema: dict[str, Any], value: Any) -> Any:
    """Structural defaulting as the API server does it: fill absent fields that have a default, recurse."""
    if schema.get("type") == "object" and isinstance(value, dict):
        for name, sub in schema.get("properties", {}).items():
            if name not in value and "default" in sub:
                value[name] = copy.deepcopy(sub["default"])
            if name in value:
                value[name] = _apply_defaults(sub, value[name])
    elif schema.get("type") == "array" and isinstance(value, list):
        return [_apply_defaults(schema["items"], item) for item in value]
    return value


def test_api_server_defaults_equal_model_defaults() -> None:
    """A CR defaulted by the API server must mean exactly what the operator assumes when fields are absent."""
    defaulted = _apply_defaults(_schema(), copy.deepcopy(MINIMAL))
    from_server = parse_codepilot(defaulted).spec.model_dump(by_alias=True, exclude_none=True)
    from_models = parse_codepilot(copy.deepcopy(MINIMAL)).spec.model_dump(by_alias=True, exclude_none=True)
    assert from_server == from_models
    # and the defaulting really happened in the schema, not only in pydantic
    assert defaulted["spec"]["runtime"]["resources"]["requests"] == {"cpu": "1", "memory": "4Gi"}
    assert defaulted["spec"]["alerts"]["latency"] == {"threshold": "1s", "for": "5m", "severity": "critical"}


def test_api_reference_is_up_to_date() -> None:
    from codepilot_operator.api.reference import api_reference

    assert (REPO / "docs" / "api.md").read_text() == api_reference(), "docs/api.md drifted: run 'make docs'"
