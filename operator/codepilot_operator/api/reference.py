"""Markdown API reference generated from the CRD schema, so the documentation cannot drift from the API."""

from __future__ import annotations

import json
from typing import Any

from codepilot_operator.api.crd import crd


def _type(node: dict[str, Any]) -> str:
    if node.get("x-kubernetes-int-or-string"):
        return "quantity"
    kind = node.get("type", "")
    if kind == "array":
        return f"[]{_type(node.get('items', {}))}"
    if kind == "object" and "additionalProperties" in node:
        return f"map[string]{_type(node['additionalProperties'])}"
    if "enum" in node:
        return " \\| ".join(f"`{v}`" for v in node["enum"])
    if node.get("pattern") == r"^([0-9]+(ms|s|m|h|d))+$":
        return "duration"
    return str(kind)


def _constraints(node: dict[str, Any]) -> str:
    parts = []
    if "minimum" in node:
        parts.append(f">= {node['minimum']}")
    if "exclusiveMinimum" in node:
        parts.append(f"> {node['exclusiveMinimum']}")
    if "maximum" in node:
        parts.append(f"<= {node['maximum']}")
    if "exclusiveMaximum" in node:
        parts.append(f"< {node['exclusiveMaximum']}")
    if "maxLength" in node:
        parts.append(f"max {node['maxLength']} chars")
    if "maxItems" in node:
        parts.append(f"max {node['maxItems']} items")
    for rule in node.get("x-kubernetes-validations", []):
        parts.append(rule["message"])
    return "; ".join(parts)


def _rows(node: dict[str, Any], path: str, required: set[str]) -> list[str]:
    rows = []
    for name, sub in node.get("properties", {}).items():
        field = f"{path}.{name}"
        default = json.dumps(sub["default"]) if "default" in sub and sub["default"] != {} else ""
        description = " ".join(str(sub.get("description", "")).split()).replace("|", "\\|")
        mark = " (required)" if name in required else ""
        shown_default = f"`{default}`" if default else ""
        rows.append(
            f"| `{field}`{mark} | {_type(sub)} | {shown_default} | {_constraints(sub)} | {description} |"
        )
        target = sub.get("items", sub)
        rows.extend(_rows(target, field + ("[]" if "items" in sub else ""), set(target.get("required", []))))
    return rows


def api_reference() -> str:
    schema = crd()["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    lines = [
        "# CodePilot API reference (serving.codepilot.dev/v1alpha1)",
        "",
        "Generated from the API types by `make docs`; a test fails when it drifts. Defaults are applied by",
        "the API server (they are in the CRD schema) and by the CLI alike.",
        "",
    ]
    for section in ("spec", "status"):
        node = schema["properties"][section]
        lines += [
            f"## {section}",
            "",
            "| field | type | default | constraints | description |",
            "|---|---|---|---|---|",
        ]
        lines += _rows(node, section, set(node.get("required", [])))
        lines.append("")
    return "\n".join(lines)
