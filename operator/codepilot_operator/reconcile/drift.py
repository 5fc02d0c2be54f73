"""Drift policy: when is a live child already what we would apply?

The client is a leaf that applies whatever it is given; deciding what counts as drift belongs to
reconcile. Objects carry an input-hash annotation: an object whose annotation matches and whose live
state still contains every rendered field is not written again, so an idle resync costs reads, not
writes, while a field edited by hand is drift and gets re-applied.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from typing import Any

from lightkube.utils.quantity import parse_quantity

INPUT_HASH_ANNOTATION = "serving.codepilot.dev/input-hash"


def input_hash(obj: Mapping[str, Any]) -> str:
    """A hash of the rendered object, without the hash annotation itself."""
    meta = dict(obj.get("metadata", {}))
    annotations = {k: v for k, v in meta.get("annotations", {}).items() if k != INPUT_HASH_ANNOTATION}
    meta["annotations"] = annotations
    payload = json.dumps({**obj, "metadata": meta}, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(payload.encode()).hexdigest()[:20]


def with_input_hash(obj: Mapping[str, Any]) -> dict[str, Any]:
    out = dict(obj)
    meta = dict(out.get("metadata", {}))
    meta["annotations"] = {**meta.get("annotations", {}), INPUT_HASH_ANNOTATION: input_hash(obj)}
    out["metadata"] = meta
    return out


# Fields the API server stores as canonical quantities ("1.5Gi" comes back as "1536Mi").
_QUANTITY_MAPS = frozenset({"requests", "limits"})  # every value inside is a quantity
_QUANTITY_FIELDS = frozenset({"sizeLimit", "averageValue"})


def _same_quantity(live: Any, desired: Any) -> bool:
    """Compared the way the API server canonicalises them (lightkube's parser, milli precision)."""
    try:
        return bool(parse_quantity(str(live)) == parse_quantity(str(desired)))
    except (ValueError, ArithmeticError):
        return False


def contains(live: Any, desired: Any, *, parent: str = "", key: str = "") -> bool:
    """True when every field of ``desired`` is present in ``live`` with the same value.

    The API server adds defaults and other managers add fields; neither is drift. Lists must have the
    same length and match element by element (a removed or reordered container is drift). Quantities
    compare by value, because the API server stores them in canonical form.
    """
    if isinstance(desired, Mapping):
        return isinstance(live, Mapping) and all(
            k in live and contains(live[k], v, parent=key, key=k) for k, v in desired.items()
        )
    if isinstance(desired, list):
        return (
            isinstance(live, list)
            and len(live) == len(desired)
            and all(contains(a, b) for a, b in zip(live, desired, strict=True))
        )
    if live == desired:
        return True
    return (key in _QUANTITY_FIELDS or parent in _QUANTITY_MAPS) and _same_quantity(live, desired)


def unchanged(live: Mapping[str, Any] | None, desired: Mapping[str, Any]) -> bool:
    """Whether applying ``desired`` (already carrying its hash annotation) would change nothing we own."""
    if live is None:
        return False
    want = desired.get("metadata", {}).get("annotations", {}).get(INPUT_HASH_ANNOTATION)
    have = live.get("metadata", {}).get("annotations", {}).get(INPUT_HASH_ANNOTATION)
    return want is not None and want == have and contains(live, desired)
