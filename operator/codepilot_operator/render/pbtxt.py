"""Protobuf text format pieces of Triton's ``inference.ModelConfig``, shared by every model config."""

from __future__ import annotations

from collections.abc import Iterable


def quote(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def tensor(name: str, data_type: str, dims: Iterable[int], extra: str = "") -> str:
    dims_text = ", ".join(str(d) for d in dims)
    return f"  {{ name: {quote(name)} data_type: {data_type} dims: [ {dims_text} ]{extra} }}"


def block(keyword: str, entries: list[str]) -> str:
    return f"{keyword} [\n" + ",\n".join(entries) + "\n]"


def parameter(key: str, value: str) -> str:
    return f"parameters: {{ key: {quote(key)} value: {{ string_value: {quote(value)} }} }}"


def batching(max_batch_size: int) -> list[str]:
    if max_batch_size == 0:
        return []
    return ["dynamic_batching { max_queue_delay_microseconds: 100 }"]
