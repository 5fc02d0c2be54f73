"""The CustomResourceDefinition, generated from the pydantic models.

Pydantic emits JSON Schema (with ``$ref``, ``anyOf`` for optionals, ``additionalProperties: false``);
the API server wants a *structural* OpenAPI v3 schema (no refs, a type on every node, defaults that
nested defaulting can reach). ``structural()`` performs that translation and nothing else, so the models
stay the single source of truth and a drift test can compare crds/ with this output.
"""

from __future__ import annotations

import copy
import typing
from typing import Any

from pydantic import BaseModel

from codepilot_operator.api.codepilot import API_VERSION, GROUP, KIND, PLURAL, SHORT_NAME, SINGULAR, VERSION
from codepilot_operator.api.fields import UNSET_BY_DEFAULT
from codepilot_operator.api.spec import CodePilotSpec
from codepilot_operator.api.status import CodePilotStatus

Schema = dict[str, Any]

_DROPPED_KEYS = {"title", "$defs"}
# Set on a node that was ``X | None`` until its parent has seen it: unset means absent, so the API server
# must not default such an object to ``{}`` (an ``emptyDir: {}`` or ``valueFrom: {}`` would change what
# the object means).
_OPTIONAL = "x-codepilot-optional"

PRINTER_COLUMNS: list[dict[str, Any]] = [
    {"name": "Model", "type": "string", "jsonPath": ".spec.model.name"},
    {"name": "Stable", "type": "string", "jsonPath": ".status.stableVersion"},
    {"name": "Canary", "type": "string", "jsonPath": ".status.canaryVersion"},
    {"name": "Weight", "type": "integer", "jsonPath": ".status.canaryWeight"},
    {"name": "Ready", "type": "string", "jsonPath": '.status.conditions[?(@.type=="Ready")].status'},
    {"name": "URL", "type": "string", "jsonPath": ".status.url"},
    {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"},
]


def _resolve(node: Schema, defs: dict[str, Schema]) -> Schema:
    ref = node.get("$ref")
    if ref is None:
        return node
    target = copy.deepcopy(defs[ref.rsplit("/", 1)[-1]])
    extra = {k: v for k, v in node.items() if k != "$ref"}
    target.update(extra)
    return target


def _strip_null(node: Schema) -> Schema:
    """``X | None`` becomes X: in Kubernetes an absent field, not a null, means "unset"."""
    for key in ("anyOf", "oneOf"):
        options = node.get(key)
        if not options:
            continue
        non_null = [o for o in options if o.get("type") != "null"]
        if len(non_null) < len(options):
            rest = {k: v for k, v in node.items() if k != key}
            if len(non_null) == 1:
                merged = dict(non_null[0])
                merged.update(rest)
                merged[_OPTIONAL] = True
                if rest.get("default", "absent") is None:
                    merged.pop("default")
                return merged
            return {**rest, key: non_null}
    return node


def _has_required(node: Schema) -> bool:
    return bool(node.get("required"))


def _cel_string(text: str) -> str:
    """A CEL raw string literal: regex backslashes stay as written."""
    if "'" in text:
        raise ValueError(f"cannot quote {text!r} as a CEL raw string")
    return f"r'{text}'"


def _map_keys(node: Schema) -> Schema:
    """Constrained map keys as CEL: structural schemas know neither patternProperties nor propertyNames.

    Pydantic writes ``dict[LabelKey, V]`` as ``patternProperties: {KEY_PATTERN: V}`` plus
    ``propertyNames`` for the key's lengths; the API server gets ``additionalProperties: V`` and one
    rule over every key.
    """
    patterns = node.get("patternProperties")
    names = node.get("propertyNames")
    if not patterns and not names:
        return node
    node = {k: v for k, v in node.items() if k not in ("patternProperties", "propertyNames")}
    checks = []
    if patterns:
        ((pattern, value_schema),) = patterns.items()
        node["additionalProperties"] = value_schema
        checks.append(f"k.matches({_cel_string(pattern)})")
    names = names or {}
    if "pattern" in names:
        checks.append(f"k.matches({_cel_string(names['pattern'])})")
    if "minLength" in names:
        checks.append(f"size(k) >= {names['minLength']}")
    if "maxLength" in names:
        checks.append(f"size(k) <= {names['maxLength']}")
    rule = {
        "rule": f"self.all(k, {' && '.join(checks)})",
        "message": "keys must be label keys ([prefix/]name)",
    }
    node["x-kubernetes-validations"] = [*node.get("x-kubernetes-validations", []), rule]
    return node


def _convert(node: Schema, defs: dict[str, Schema]) -> Schema:
    node = _map_keys(_resolve(_strip_null(_resolve(node, defs)), defs))
    out: Schema = {}
    for key, value in node.items():
        if key in _DROPPED_KEYS:
            continue
        if key == "properties":
            out["properties"] = {name: _convert(sub, defs) for name, sub in value.items()}
        elif key == "items":
            out["items"] = _convert(value, defs)
        elif key == "additionalProperties":
            if isinstance(value, dict):
                out["additionalProperties"] = _convert(value, defs)
        elif key == "default" and value is None:
            continue
        else:
            out[key] = copy.deepcopy(value)
    # JSON Schema 2020-12 (pydantic) writes exclusive bounds as numbers; OpenAPI v3.0 (CRDs) as booleans
    # beside minimum/maximum.
    for bound, limit in (("exclusiveMinimum", "minimum"), ("exclusiveMaximum", "maximum")):
        value = out.get(bound)
        if isinstance(value, int | float) and not isinstance(value, bool):
            out[limit], out[bound] = value, True
    if "enum" in out and "type" not in out:
        out["type"] = "string"
    if "const" in out:
        out.setdefault("type", "string")
        out["enum"] = [out.pop("const")]
    if "properties" in out:
        out["type"] = "object"
        out.pop("additionalProperties", None)  # properties and additionalProperties are exclusive here
        # Nested defaulting only happens when the parent object exists: give every optional object
        # without required fields an empty default so its own defaults are applied by the API server.
        required = set(out.get("required", []))
        for name, prop in out["properties"].items():
            optional_object = name not in required and prop.get("type") == "object" and "properties" in prop
            unset = prop.pop(UNSET_BY_DEFAULT, False)  # an object whose mere presence means something
            may_be_absent = prop.pop(_OPTIONAL, False)
            if (
                optional_object
                and not (unset or may_be_absent)
                and "default" not in prop
                and not _has_required(prop)
            ):
                prop["default"] = {}
    return out


def _nested_model(annotation: Any) -> type[BaseModel] | None:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in typing.get_args(annotation):
        found = _nested_model(arg)
        if found is not None:
            return found
    return None


def _inject_factory_defaults(model: type[BaseModel], schema: Schema) -> None:
    """Pydantic leaves ``default_factory`` values out of JSON Schema; the API server needs them.

    An object whose factory default equals its own field defaults is already covered by ``default: {}``;
    anything else (resource requests, rollout steps) gets its dumped value as the schema default.
    """
    properties = schema.get("properties", {})
    for name, field in model.model_fields.items():
        prop = properties.get(field.alias or name)
        if prop is None:
            continue
        if field.default_factory is not None:
            value = field.default_factory()  # type: ignore[call-arg]
            if isinstance(value, BaseModel):
                if value != type(value)():
                    prop["default"] = value.model_dump(mode="json", by_alias=True, exclude_none=True)
            elif isinstance(value, list) and value:
                prop["default"] = [
                    v.model_dump(mode="json", by_alias=True, exclude_none=True)
                    if isinstance(v, BaseModel)
                    else v
                    for v in value
                ]
        nested = _nested_model(field.annotation)
        if nested is not None:
            _inject_factory_defaults(nested, prop.get("items", prop))


def structural(model: type[BaseModel], *, mode: str = "validation") -> Schema:
    """Structural OpenAPI v3 schema of a pydantic model, as CRDs require."""
    raw = model.model_json_schema(by_alias=True, mode=mode)  # type: ignore[arg-type]
    schema = _convert(raw, raw.get("$defs", {}))
    _inject_factory_defaults(model, schema)
    return schema


def crd() -> dict[str, Any]:
    """The complete CustomResourceDefinition for CodePilot."""
    spec_schema = structural(CodePilotSpec)
    spec_schema["description"] = (
        "Desired state: the model to serve, its runtime, scaling, rollout and alerts."
    )
    status_schema = structural(CodePilotStatus, mode="serialization")
    status_schema["description"] = "Observed state, written by the operator."
    root: Schema = {
        "type": "object",
        "description": "CodePilot serves a code-assistant LLM on Triton with canary rollouts and SLO alerts.",
        "required": ["spec"],
        "properties": {
            "apiVersion": {"type": "string"},
            "kind": {"type": "string"},
            "metadata": {"type": "object"},
            "spec": spec_schema,
            "status": status_schema,
        },
        "x-kubernetes-validations": [
            {
                "rule": (
                    "self.metadata.name.size() <= 63 && "
                    "self.metadata.name.matches('^[a-z]([-a-z0-9]*[a-z0-9])?$')"
                ),
                "message": "metadata.name must be a DNS-1035 label (it names the CodePilot's Service)",
            }
        ],
    }
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {
            "name": f"{PLURAL}.{GROUP}",
            "labels": {
                "app.kubernetes.io/name": "codepilot-operator",
                "app.kubernetes.io/part-of": "codepilot",
            },
        },
        "spec": {
            "group": GROUP,
            "names": {
                "kind": KIND,
                "listKind": f"{KIND}List",
                "plural": PLURAL,
                "singular": SINGULAR,
                "shortNames": [SHORT_NAME],
                "categories": ["codepilot", "serving"],
            },
            "scope": "Namespaced",
            "versions": [
                {
                    "name": VERSION,
                    "served": True,
                    "storage": True,
                    "schema": {"openAPIV3Schema": root},
                    "subresources": {"status": {}},
                    "additionalPrinterColumns": PRINTER_COLUMNS,
                }
            ],
        },
    }


__all__ = ["API_VERSION", "crd", "structural"]
