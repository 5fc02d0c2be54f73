"""The generated CRD is what the API server needs: structural, in sync with the models, small."""

from __future__ import annotations

import copy
import json
from typing import Any

import jsonschema
import pytest
import yaml

from codepilot_operator.api.crd import crd
from codepilot_operator.loader import InvalidCodePilot, parse_codepilot
from tests.helpers import EXAMPLES, MINIMAL, REPO, manifest

CRD_FILE = REPO / "crds" / "codepilot.yaml"


def _schema() -> dict[str, Any]:
    return crd()["spec"]["versions"][0]["schema"]["openAPIV3Schema"]


def _re2_pattern(validator: Any, pattern: str, instance: Any, schema: Any) -> Any:
    """``pattern`` as the API server matches it: Go's RE2, where ``$`` is the end of the text (Python's
    ``$`` also matches before a trailing newline, so plain jsonschema would accept ``"1\\n"``)."""
    import re

    if isinstance(instance, str):
        go_like = pattern[:-1] + r"\Z" if pattern.endswith("$") and not pattern.endswith(r"\$") else pattern
        if not re.search(go_like, instance):
            yield jsonschema.ValidationError(f"{instance!r} does not match {pattern!r}")


_ApiServerValidator = jsonschema.validators.extend(jsonschema.Draft4Validator, {"pattern": _re2_pattern})


def _validate(document: Any) -> None:
    """OpenAPI v3.0 schemas are Draft 4 JSON Schema (boolean exclusiveMinimum/-Maximum)."""
    _ApiServerValidator(_schema()).validate(document)


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
        {"spec.runtime.gpus": "1"},
        {"spec.runtime.resources": {"requests": {"cpu": 0.5}}},
        {"spec.runtime.resources": {"requests": {"cpu": "-1"}}},
        {"spec.runtime.resources": {"requests": {"cpu": -1}}},
        {"spec.runtime.resources": {"requests": {"cpu": "1\n"}}},
        {"spec.runtime.tolerations": [{"key": "k", "effect": "NoExecute", "tolerationSeconds": 2**63}]},
        {"spec.runtime.nodeSelector": {"gpu": "not valid!"}},
        {"spec.runtime.image": "triton "},
        {"spec.autoscaling.target": 0.0001},
        {"spec.alerts.enabled": "yes"},
        {"spec.runtime.startupTimeout": "1" * 40 + "d"},
    ],
)
def test_crd_schema_rejects_what_the_models_reject(overrides: dict[str, Any]) -> None:
    with pytest.raises(jsonschema.ValidationError):
        _validate(manifest(**overrides))
    with pytest.raises(InvalidCodePilot):
        parse_codepilot(manifest(**overrides))


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


# -- the CRD and the models agree field by field: type, strictness, bounds, pattern, duration range ---


def _unwrap(annotation: Any) -> tuple[Any, list[Any]]:
    """The base type of a field and all its metadata, through ``X | None`` and nested ``Annotated``."""
    import types
    import typing

    metadata: list[Any] = []
    while True:
        if typing.get_origin(annotation) is typing.Annotated:
            metadata.extend(annotation.__metadata__)
            annotation = annotation.__origin__
        elif typing.get_origin(annotation) in (typing.Union, types.UnionType):
            (annotation,) = [a for a in typing.get_args(annotation) if a is not type(None)]
        else:
            return annotation, metadata


def _walk_fields(model: Any, node: dict[str, Any], path: str) -> Any:
    """(path, base type, metadata, CRD node) for every field of ``model`` and of the models it holds."""
    import typing

    from pydantic import BaseModel

    for name, field in model.model_fields.items():
        alias = field.alias or name
        sub = node["properties"][alias]
        base, metadata = _unwrap(field.annotation)
        metadata = [*field.metadata, *metadata]
        yield f"{path}.{alias}", base, metadata, sub
        origin = typing.get_origin(base)
        if origin is list:
            (item,) = typing.get_args(base)
            item_base, item_meta = _unwrap(item)
            if isinstance(item_base, type) and issubclass(item_base, BaseModel):
                yield from _walk_fields(item_base, sub["items"], f"{path}.{alias}[]")
            else:
                yield f"{path}.{alias}[]", item_base, item_meta, sub["items"]
        elif origin is dict:
            _, value = typing.get_args(base)
            value_base, value_meta = _unwrap(value)
            yield f"{path}.{alias}.*", value_base, value_meta, sub["additionalProperties"]
        elif isinstance(base, type) and issubclass(base, BaseModel):
            yield from _walk_fields(base, sub, f"{path}.{alias}")


def _expected_bounds(metadata: list[Any], node: dict[str, Any]) -> dict[str, Any]:
    import annotated_types as at

    # max_length is maxItems on a list and maxProperties on a map
    sizes = {"array": "Items", "object": "Properties"}.get(node.get("type", ""), "Length")
    bounds: dict[str, Any] = {}
    for item in metadata:
        for attr, key in (("ge", "minimum"), ("le", "maximum"), ("gt", "minimum"), ("lt", "maximum")):
            value = getattr(item, attr, None)
            if value is not None and isinstance(item, at.BaseMetadata):
                bounds[key] = value
                if attr in ("gt", "lt"):
                    bounds["exclusive" + key.capitalize()] = True
        for attr, key in (("min_length", f"min{sizes}"), ("max_length", f"max{sizes}")):
            value = getattr(item, attr, None)
            if value is not None:
                bounds[key] = value
        pattern = getattr(item, "pattern", None)
        if pattern is not None:
            bounds["pattern"] = pattern
    return bounds


def _spec_fields() -> list[tuple[str, Any, list[Any], dict[str, Any]]]:
    from codepilot_operator.api.spec import CodePilotSpec

    return list(_walk_fields(CodePilotSpec, _schema()["properties"]["spec"], "spec"))


def test_every_model_field_has_the_same_type_bounds_and_pattern_in_the_crd() -> None:
    """Adding a field whose rule lives only in Python (a validator, a lax int) fails here by name."""
    from enum import Enum

    from pydantic import Strict

    from codepilot_operator.api.fields import DURATION_PATTERN, DurationRange

    problems = []
    for path, base, metadata, node in _spec_fields():
        strict = any(isinstance(m, Strict) and m.strict for m in metadata)
        ranges = [m for m in metadata if isinstance(m, DurationRange)]
        expected_type = {bool: "boolean", int: "integer", float: "number"}.get(base)
        if expected_type is not None:
            if not strict:
                problems.append(f"{path}: {base.__name__} is not strict (YAML strings would be coerced)")
            if node.get("type") != expected_type:
                problems.append(f"{path}: CRD type {node.get('type')}, model {expected_type}")
            if expected_type != "boolean" and not {"minimum", "maximum"} <= node.keys():
                problems.append(f"{path}: a number without both bounds in the CRD")
        elif isinstance(base, type) and issubclass(base, Enum):
            if node.get("enum") != [m.value for m in base]:
                problems.append(f"{path}: CRD enum {node.get('enum')} differs from the model")
        elif base is str and node.get("x-kubernetes-int-or-string"):
            if node.get("minimum") != 0 or "pattern" not in node:
                problems.append(f"{path}: a quantity without its non-negative pattern and minimum")
        elif base is str:
            if node.get("type") != "string":
                problems.append(f"{path}: CRD type {node.get('type')}, model string")
            bounded_by_pattern = not any(c in node.get("pattern", "*") for c in "*+{")
            if "maxLength" not in node and not bounded_by_pattern:
                problems.append(f"{path}: a string without maxLength (CEL cost and etcd size need one)")
            if node.get("pattern") == DURATION_PATTERN:
                if len(ranges) != 1:
                    problems.append(f"{path}: a duration needs exactly one DurationRange, has {len(ranges)}")
                elif node.get("x-kubernetes-validations") != [ranges[0].cel_rule()]:
                    problems.append(f"{path}: the CRD's duration rule is not the model's range")
        for key, value in _expected_bounds(metadata, node).items():
            if node.get(key) != value:
                problems.append(f"{path}: {key} is {node.get(key)!r} in the CRD, {value!r} in the model")
        pattern = node.get("pattern")
        if pattern is not None and not (pattern.startswith("^") and pattern.endswith("$")):
            problems.append(f"{path}: pattern {pattern!r} is not anchored (RE2 searches unanchored)")
    assert problems == [], "\n".join(problems)


def test_the_walk_sees_every_kind_of_field() -> None:
    """Guards the walk above: it must reach nested models, lists of models, maps and durations."""
    paths = {path for path, *_ in _spec_fields()}
    assert {
        "spec.runtime.gpus",
        "spec.runtime.tolerations[].tolerationSeconds",
        "spec.rollout.steps[].weight",
        "spec.runtime.nodeSelector.*",
        "spec.model.source.retention.maxAge",
        "spec.autoscaling.scaleDownStabilization",
        "spec.alerts.slo.objective",
    } <= paths
