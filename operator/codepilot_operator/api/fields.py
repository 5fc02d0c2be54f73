"""Constrained scalar types shared by the spec: durations, quantities, Kubernetes names.

Each type carries its own JSON-schema fragment so the generated CRD enforces in the API server exactly
what pydantic enforces in the CLI and the operator.
"""

from __future__ import annotations

import re
from decimal import Decimal, InvalidOperation
from typing import Annotated, Any

from pydantic import AfterValidator, BeforeValidator, Field, WithJsonSchema

DURATION_PATTERN = r"^([0-9]+(ms|s|m|h|d))+$"
_DURATION_PART = re.compile(r"([0-9]+)(ms|s|m|h|d)")
_DURATION_UNIT_SECONDS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}

# The Kubernetes resource.Quantity grammar, as controller-gen emits it for Quantity fields.
QUANTITY_PATTERN = r"^(\+|-)?(([0-9]+(\.[0-9]*)?)|(\.[0-9]+))(([KMGTPE]i)|[numkMGTPE]|([eE](\+|-)?(([0-9]+(\.[0-9]*)?)|(\.[0-9]+))))?$"  # noqa: E501
_QUANTITY_RE = re.compile(QUANTITY_PATTERN)
_BINARY_SUFFIX = {"Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40, "Pi": 2**50, "Ei": 2**60}
_DECIMAL_SUFFIX = {
    "n": Decimal("1e-9"),
    "u": Decimal("1e-6"),
    "m": Decimal("1e-3"),
    "": Decimal(1),
    "k": Decimal("1e3"),
    "M": Decimal("1e6"),
    "G": Decimal("1e9"),
    "T": Decimal("1e12"),
    "P": Decimal("1e15"),
    "E": Decimal("1e18"),
}

DNS1035_LABEL_PATTERN = r"^[a-z]([-a-z0-9]*[a-z0-9])?$"
DNS1123_LABEL_PATTERN = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"
DNS1123_SUBDOMAIN_PATTERN = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$"
LABEL_VALUE_PATTERN = r"^[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$"


def parse_duration(text: str) -> float:
    """Seconds in a duration such as ``1m30s``; the same grammar Prometheus and Flagger accept."""
    if not re.fullmatch(DURATION_PATTERN, text):
        raise ValueError(f"invalid duration {text!r}: use e.g. 500ms, 30s, 5m, 1h30m, 7d")
    return sum(int(n) * _DURATION_UNIT_SECONDS[unit] for n, unit in _DURATION_PART.findall(text))


def parse_quantity(text: str) -> Decimal:
    """Numeric value of a Kubernetes quantity (``500m`` -> 0.5, ``4Gi`` -> 4294967296)."""
    if not _QUANTITY_RE.match(text):
        raise ValueError(f"invalid quantity {text!r}")
    for suffixes in (_BINARY_SUFFIX, _DECIMAL_SUFFIX):
        for suffix, factor in suffixes.items():
            if suffix and text.endswith(suffix) and not text.endswith(("e" + suffix, "E" + suffix)):
                try:
                    return Decimal(text[: -len(suffix)]) * factor
                except InvalidOperation:
                    continue
    try:
        return Decimal(text)  # a plain number or the exponent form, e.g. 1e3
    except InvalidOperation as exc:
        raise ValueError(f"invalid quantity {text!r}") from exc


def _check_duration(value: str) -> str:
    parse_duration(value)
    return value


def _check_quantity(value: str) -> str:
    parse_quantity(value)
    return value


def _quantity_to_str(value: Any) -> Any:
    """YAML turns ``cpu: 1`` into an int; Kubernetes accepts both, so do we."""
    if isinstance(value, bool):
        raise ValueError("a quantity is a number or a string such as 500m or 4Gi")
    if isinstance(value, int | float):
        return str(value)
    return value


Duration = Annotated[
    str,
    AfterValidator(_check_duration),
    WithJsonSchema({"type": "string", "pattern": DURATION_PATTERN}),
]

Quantity = Annotated[
    str,
    BeforeValidator(_quantity_to_str),
    AfterValidator(_check_quantity),
    WithJsonSchema(
        {
            "anyOf": [{"type": "integer"}, {"type": "string"}],
            "pattern": QUANTITY_PATTERN,
            "x-kubernetes-int-or-string": True,
        }
    ),
]

LabelValue = Annotated[str, Field(min_length=1, max_length=63, pattern=LABEL_VALUE_PATTERN)]
ObjectName = Annotated[str, Field(min_length=1, max_length=253, pattern=DNS1123_SUBDOMAIN_PATTERN)]
