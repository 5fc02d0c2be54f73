"""Rendered objects as a YAML stream, byte for byte what PyYAML writes, at about JSON's speed.

``codepilot render`` printed each CodePilot's ~10 objects through PyYAML: even with libyaml's emitter,
PyYAML first builds a node graph in Python, resolving every scalar against its implicit types, and
that was most of the command's time. Rendered objects are plain JSON-like data (mappings with string
keys, lists, strings, numbers, booleans, null) written in block style, so they are written here
directly. Every scalar whose form is not obviously plain (an empty string, ``"8000"``, ``"true"``,
a multi-line pbtxt, non-ASCII, a leading indicator) is formatted by PyYAML itself, once per distinct
value, and re-indented; anything else unusual (a non-string key, a key PyYAML would write as ``? ``,
an empty document) hands the whole stream to PyYAML. The output is therefore PyYAML's: the tests
compare the two on every example, golden and a generator of awkward values.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from typing import Any

import yaml

_BaseDumper: type[yaml.SafeDumper] = getattr(yaml, "CSafeDumper", yaml.SafeDumper)  # libyaml when built
_WIDTH = 1_000_000  # never fold a long line: PromQL and JSON stay on one line each


class ReadableDumper(_BaseDumper):  # type: ignore[misc,valid-type]
    """libyaml's emitter, multi-line strings (config.pbtxt, alert descriptions) as literal blocks so
    rendered YAML stays reviewable, and no anchors: an object that appears twice (the labels of a
    Deployment and its pod template) is written out twice, the way kubectl and Helm write it, not as
    ``&id001`` / ``*id001``."""

    def ignore_aliases(self, data: Any) -> bool:
        return True


def _represent_str(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    if "\n" in value:
        return dumper.represent_scalar("tag:yaml.org,2002:str", value, style="|")
    return dumper.represent_scalar("tag:yaml.org,2002:str", value)


ReadableDumper.add_representer(str, _represent_str)


def pyyaml_stream(objects: Sequence[Any]) -> str:
    """The reference: what PyYAML writes with the options `codepilot render` uses."""
    return yaml.dump_all(
        objects, Dumper=ReadableDumper, sort_keys=False, default_flow_style=False, width=_WIDTH
    )


# A string PyYAML is certain to write plain in block context: it starts with a letter, "_", "/" or "("
# (no indicator, and no implicit type but the words below starts so), holds printable ASCII only, has
# no ": " or " #" and no ":" at the end, and no leading or trailing space.
_PLAIN = re.compile(r'[A-Za-z_/(](?:[!-"$-9;-~]|:(?=[^ ])|(?<! )#| )*(?<! )\Z')
# Words that start with a letter yet resolve to a boolean or null, so PyYAML quotes them.
_WORDS = ("yes", "no", "true", "false", "on", "off", "null")
_RESERVED = frozenset(spelling(word) for word in _WORDS for spelling in (str, str.title, str.upper))
_MAX_SIMPLE_KEY = 128  # PyYAML writes longer keys as "? key"
_MAX_CACHED = 100_000


class _Unusual(Exception):
    """Something this writer does not reproduce exactly; PyYAML writes the stream instead."""


class _Writer:
    def __init__(self) -> None:
        self.strings: dict[str, str] = {}  # a value string -> how it is written (before re-indenting)
        self.keys: dict[Any, str] = {}
        # The last block scalar of the current document was keep-chomped ("|+"): libyaml then ends the
        # stream with "..." (a "---" ends such a document too, so it is reset at each one).
        self.open_ended = False

    def value(self, value: Any, column: int) -> str:
        """A scalar after ``key: `` or ``- `` whose owner (key or dash) starts at ``column``."""
        kind = type(value)
        if kind is str:
            text = self.strings.get(value)
            if text is None:
                text = value if _PLAIN.match(value) and value not in _RESERVED else self._by_pyyaml(value)
                if len(self.strings) < _MAX_CACHED:
                    self.strings[value] = text
        elif value is None:
            text = "null"
        elif kind is bool:
            text = "true" if value else "false"
        elif kind is int:
            text = str(value)
        elif kind is float:
            text = self._by_pyyaml(value)  # PyYAML's own spelling: 1.0e-05, .inf, .nan
        else:
            raise _Unusual
        if text[:1] in "|>":  # libyaml remembers only the chomping of the last block scalar
            self.open_ended = text.split("\n", 1)[0].endswith("+")
        if column and "\n" in text:
            # PyYAML indents continuation lines two past their owner; the reference was written at 0.
            first, *rest = text.split("\n")
            pad = " " * column
            text = "\n".join([first, *(pad + line if line else line for line in rest)])
        return text

    @staticmethod
    def _by_pyyaml(value: Any) -> str:
        written = yaml.dump({"k": value}, Dumper=ReadableDumper, default_flow_style=False, width=_WIDTH)
        if not written.startswith("k: ") or not written.endswith("\n"):
            raise _Unusual
        return written[3:-1].removesuffix("\n...")  # the stream's end after a "|+" block

    def key(self, key: Any) -> str:
        text = self.keys.get(key)
        if text is not None:
            return text
        if type(key) is not str:
            raise _Unusual
        if len(key) < _MAX_SIMPLE_KEY and _PLAIN.match(key) and key not in _RESERVED:
            text = key
        else:
            written = yaml.dump({key: 0}, Dumper=ReadableDumper, default_flow_style=False, width=_WIDTH)
            if written.startswith("?") or not written.endswith(": 0\n") or written.count("\n") != 1:
                raise _Unusual
            text = written[: -len(": 0\n")]
        if len(self.keys) < _MAX_CACHED:
            self.keys[key] = text
        return text

    def mapping(self, mapping: dict[Any, Any], column: int, lead: str, out: Callable[[str], Any]) -> None:
        """Keys at ``column``; the first line starts with ``lead`` (indentation, or an item's dash)."""
        indent = " " * column
        for key, value in mapping.items():
            name = self.key(key)
            kind = type(value)
            if kind is dict:
                if value:
                    out(f"{lead}{name}:\n")
                    self.mapping(value, column + 2, " " * (column + 2), out)
                else:
                    out(f"{lead}{name}: {{}}\n")
            elif kind is list:
                if value:
                    out(f"{lead}{name}:\n")
                    self.sequence(value, column, indent, out)  # PyYAML's indentless sequences
                else:
                    out(f"{lead}{name}: []\n")
            else:
                out(f"{lead}{name}: {self.value(value, column)}\n")
            lead = indent

    def sequence(self, items: list[Any], column: int, lead: str, out: Callable[[str], Any]) -> None:
        """Dashes at ``column``; the first line starts with ``lead``."""
        indent = " " * column
        for item in items:
            dash = f"{lead}- "
            kind = type(item)
            if kind is dict:
                if item:
                    self.mapping(item, column + 2, dash, out)
                else:
                    out(f"{dash}{{}}\n")
            elif kind is list:
                if item:
                    self.sequence(item, column + 2, dash, out)
                else:
                    out(f"{dash}[]\n")
            else:
                out(f"{dash}{self.value(item, column)}\n")
            lead = indent


def dump_yaml_stream(objects: Sequence[Any]) -> str:
    """The objects as a multi-document YAML stream, as :func:`pyyaml_stream` writes it."""
    writer = _Writer()
    parts: list[str] = []
    try:
        for index, document in enumerate(objects):
            if type(document) is not dict or not document:
                raise _Unusual
            if index:
                parts.append("---\n")
            writer.open_ended = False
            writer.mapping(document, 0, "", parts.append)
    except (_Unusual, RecursionError):
        return pyyaml_stream(objects)
    if writer.open_ended:
        parts.append("...\n")
    return "".join(parts)


__all__ = ["ReadableDumper", "dump_yaml_stream", "pyyaml_stream"]
