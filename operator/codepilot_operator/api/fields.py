"""Constrained scalar types shared by the spec: numbers, durations, quantities, Kubernetes names.

Each type carries its own JSON-schema fragment so the generated CRD enforces in the API server exactly
what pydantic enforces in the CLI and the operator. Numbers are strict: the API server refuses
``gpus: "1"``, so pydantic must not quietly coerce it. Patterns are matched whole (``re.fullmatch``):
Python's ``$`` also matches before a trailing newline, the API server's RE2 ``$`` does not.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from functools import lru_cache
from typing import Annotated, Any

from pydantic import (
    AfterValidator,
    AllowInfNan,
    BeforeValidator,
    Field,
    GetCoreSchemaHandler,
    GetJsonSchemaHandler,
    Strict,
    WithJsonSchema,
)
from pydantic.json_schema import JsonSchemaValue
from pydantic_core import core_schema

INT32_MAX = 2**31 - 1
INT64_MAX = 2**63 - 1

Int = Annotated[int, Strict()]
Float = Annotated[float, Strict(), AllowInfNan(False)]  # JSON has no NaN or Infinity
Bool = Annotated[bool, Strict()]

DURATION_PATTERN = r"^([0-9]+(ms|s|m|h|d))+$"
DURATION_MAX_LENGTH = 32
_DURATION_PART = re.compile(r"([0-9]+)(ms|s|m|h|d)")
_DURATION_UNIT_SECONDS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}
_DURATION_UNIT_MILLIS = {"ms": 1, "s": 1000, "m": 60_000, "h": 3_600_000, "d": 86_400_000}
# The largest whole number of days whose seconds fit an int32, the type of Kubernetes' seconds fields
# (a probe's failureThreshold, progressDeadlineSeconds): no duration of the spec may be longer.
MAX_DURATION = "24855d"

# The Kubernetes resource.Quantity grammar, as controller-gen emits it for Quantity fields.
QUANTITY_PATTERN = r"^(\+|-)?(([0-9]+(\.[0-9]*)?)|(\.[0-9]+))(([KMGTPE]i)|[numkMGTPE]|([eE](\+|-)?(([0-9]+(\.[0-9]*)?)|(\.[0-9]+))))?$"  # noqa: E501
# Resource amounts and volume sizes are never negative (core/v1 validation refuses them): no minus sign.
NON_NEGATIVE_QUANTITY_PATTERN = QUANTITY_PATTERN.replace(r"^(\+|-)?", r"^\+?", 1)
QUANTITY_MAX_LENGTH = 64
_QUANTITY_RE = re.compile(QUANTITY_PATTERN)
_NON_NEGATIVE_QUANTITY_RE = re.compile(NON_NEGATIVE_QUANTITY_PATTERN)
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
# A label value may also be empty (a node selector ``key: ""`` is valid).
OPTIONAL_LABEL_VALUE_PATTERN = r"^([A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?)?$"
# A qualified name: an optional DNS-subdomain prefix and "/", then a name of at most 63 characters.
LABEL_KEY_PATTERN = (
    r"^([a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*/)?"
    r"[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$"
)
LABEL_KEY_MAX_LENGTH = 253 + 1 + 63
PREVIEW_LENGTH = 40
# Marks an optional object whose mere presence means something (a CA bundle): the CRD gives it no empty
# default, which would switch it on in every CodePilot (api/crd.py drops the marker).
UNSET_BY_DEFAULT = "x-codepilot-unset-by-default"


def preview(value: object, limit: int = PREVIEW_LENGTH) -> str:
    """A repr short enough for a one-line message, whatever the size of the value (it may be huge)."""
    if isinstance(value, str):
        text = repr(value[: limit + 1])
    elif isinstance(value, int | float | bool | None):
        text = repr(value) if not isinstance(value, int) or abs(value) < 10**limit else "<a huge integer>"
    else:
        return f"a {type(value).__name__}"  # never repr a container: it may expand to gigabytes
    return text if len(text) <= limit + 2 else text[:limit] + "...'"


@lru_cache(maxsize=1024)  # a few distinct durations, read many times per render
def duration_millis(text: str) -> int:
    """Milliseconds in a duration, exactly: bounds compare integers, as the CEL rule in the CRD does."""
    if len(text) > DURATION_MAX_LENGTH or not re.fullmatch(DURATION_PATTERN, text):
        raise ValueError(f"invalid duration {preview(text)}: use e.g. 500ms, 30s, 5m, 1h30m, 7d")
    return sum(int(n) * _DURATION_UNIT_MILLIS[unit] for n, unit in _DURATION_PART.findall(text))


@lru_cache(maxsize=1024)
def parse_duration(text: str) -> float:
    """Seconds in a duration such as ``1m30s``; the same grammar Prometheus and Flagger accept."""
    duration_millis(text)
    return sum(int(n) * _DURATION_UNIT_SECONDS[unit] for n, unit in _DURATION_PART.findall(text))


@lru_cache(maxsize=1024)  # requests, limits and their defaults: a few spellings, read many times
def parse_quantity(text: str) -> Decimal:
    """Numeric value of a Kubernetes quantity (``500m`` -> 0.5, ``4Gi`` -> 4294967296)."""
    if len(text) > QUANTITY_MAX_LENGTH or not _QUANTITY_RE.fullmatch(text):
        raise ValueError(f"invalid quantity {preview(text)}")
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
        raise ValueError(f"invalid quantity {preview(text)}") from exc


def _check_duration(value: str) -> str:
    duration_millis(value)
    return value


@dataclass(frozen=True)
class DurationRange:
    """Bounds of a duration field, checked by pydantic and, as a CEL rule, by the API server.

    ``Annotated[DurationSyntax, DurationRange(maximum="1h")]`` is a duration of at most an hour (one
    range per field: a second one would only add a rule). The CEL rule sums the parts in milliseconds
    with the regex and list libraries of Kubernetes' CEL (``findAll``, ``sum``), because CEL's own
    ``duration()`` knows no days.
    """

    minimum: str = "0s"
    maximum: str = MAX_DURATION
    _low: int = field(init=False, repr=False, compare=False)
    _high: int = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_low", duration_millis(self.minimum))
        object.__setattr__(self, "_high", duration_millis(self.maximum))

    def check(self, value: str) -> str:
        millis = duration_millis(value)
        if millis > self._high:
            raise ValueError(f"must be at most {self.maximum}")
        if millis < self._low:
            raise ValueError(f"must be at least {self.minimum}")
        return value

    def cel_rule(self) -> dict[str, str]:
        units = ", ".join(f"'{unit}': {millis}" for unit, millis in _DURATION_UNIT_MILLIS.items())
        total = (
            "self.findAll('[0-9]+(ms|s|m|h|d)')"
            f".map(p, int(p.find('^[0-9]+')) * {{{units}}}[p.find('(ms|s|m|h|d)$')]).sum()"
        )
        if self._low > 0:
            return {
                "rule": f"{total} >= {self._low} && {total} <= {self._high}",
                "message": f"must be between {self.minimum} and {self.maximum}",
            }
        return {"rule": f"{total} <= {self._high}", "message": f"must be at most {self.maximum}"}

    def __get_pydantic_core_schema__(self, source: Any, handler: GetCoreSchemaHandler) -> Any:
        return core_schema.no_info_after_validator_function(self.check, handler(source))

    def __get_pydantic_json_schema__(self, schema: Any, handler: GetJsonSchemaHandler) -> JsonSchemaValue:
        json_schema = handler(schema)
        json_schema["x-kubernetes-validations"] = [self.cel_rule()]
        return json_schema


def duration_range(annotation: Any) -> DurationRange | None:
    """The range a Duration field ends up with: the last one annotated (None for other fields)."""
    ranges = [m for m in getattr(annotation, "__metadata__", ()) if isinstance(m, DurationRange)]
    return ranges[-1] if ranges else None


def _quantity_to_str(value: Any) -> Any:
    """YAML turns ``cpu: 1`` into an int and the CRD takes integers too; floats and booleans it refuses."""
    if isinstance(value, bool | float):
        raise ValueError('a quantity is an integer or a string such as "500m", "0.5" or "4Gi"')
    if isinstance(value, int):
        if value < 0 or value > INT64_MAX:
            raise ValueError(f"must be between 0 and {INT64_MAX}")
        return str(value)
    return value


def _check_quantity(value: str) -> str:
    parse_quantity(value)
    if not _NON_NEGATIVE_QUANTITY_RE.fullmatch(value):
        raise ValueError(f"must not be negative, got {preview(value)}")
    return value


def _check_positive_quantity(value: str) -> str:
    if parse_quantity(value) <= 0:
        raise ValueError(f"must be greater than 0, got {preview(value)}")
    return value


def _quantity_schema(*rules: dict[str, str]) -> dict[str, Any]:
    schema: dict[str, Any] = {
        "anyOf": [{"type": "integer"}, {"type": "string"}],
        "pattern": NON_NEGATIVE_QUANTITY_PATTERN,
        "maxLength": QUANTITY_MAX_LENGTH,
        "minimum": 0,
        "x-kubernetes-int-or-string": True,
    }
    if rules:
        schema["x-kubernetes-validations"] = list(rules)
    return schema


DurationSyntax = Annotated[
    str,
    AfterValidator(_check_duration),
    WithJsonSchema({"type": "string", "pattern": DURATION_PATTERN, "maxLength": DURATION_MAX_LENGTH}),
]
"""A duration without its range: annotate it with exactly one DurationRange (``Duration`` does)."""

Duration = Annotated[DurationSyntax, DurationRange()]

Quantity = Annotated[
    str,
    BeforeValidator(_quantity_to_str),
    AfterValidator(_check_quantity),
    WithJsonSchema(_quantity_schema()),
]
"""A non-negative amount: CPU, memory, storage (core/v1 refuses negative requests, limits and sizes)."""

PositiveQuantity = Annotated[
    str,
    BeforeValidator(_quantity_to_str),
    AfterValidator(_check_quantity),
    AfterValidator(_check_positive_quantity),
    WithJsonSchema(
        _quantity_schema({"rule": "quantity(string(self)).sign() == 1", "message": "must be greater than 0"})
    ),
]
"""A size that must hold something (the weights' cache, /dev/shm)."""

LabelValue = Annotated[str, Field(min_length=1, max_length=63, pattern=LABEL_VALUE_PATTERN)]
OptionalLabelValue = Annotated[str, Field(max_length=63, pattern=OPTIONAL_LABEL_VALUE_PATTERN)]
LabelKey = Annotated[str, Field(min_length=1, max_length=LABEL_KEY_MAX_LENGTH, pattern=LABEL_KEY_PATTERN)]
ObjectName = Annotated[str, Field(min_length=1, max_length=253, pattern=DNS1123_SUBDOMAIN_PATTERN)]
# Kubernetes refuses an image with surrounding whitespace; an image reference has none anywhere.
Image = Annotated[str, Field(min_length=1, max_length=512, pattern=r"^\S+$")]
