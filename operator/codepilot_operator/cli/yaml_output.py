"""Rendered objects as a YAML stream, byte for byte what PyYAML writes, at about JSON's speed.

``codepilot render`` printed each CodePilot's ~10 objects through PyYAML: even with libyaml's emitter,
PyYAML first builds a node graph in Python, resolving every scalar against its implicit types, and
that was most of the command's time. Rendered objects are plain JSON-like data (mappings with string
keys, lists, strings, numbers, booleans, null) written in block style, so they are written here
directly. A one-line printable ASCII string is written plain or single-quoted by libyaml's own rules
(its indicator analysis, then PyYAML's resolver: ``"8000"`` and ``"true"`` are quoted); any other
scalar (a multi-line pbtxt, non-ASCII, a float) is formatted by PyYAML itself, once per distinct
value, and re-indented; anything else unusual (a non-string key, a key PyYAML would write as ``? ``,
an empty document) hands the whole stream to PyYAML. The output is therefore PyYAML's: the tests
compare the two on every example, golden and a generator of awkward values.
"""

from __future__ import annotations

import string
from collections.abc import Callable, Sequence
from typing import Any

import yaml
from yaml.resolver import Resolver

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


# PyYAML's implicit types (int, float, timestamp, merge, value, null's "~") all start with a digit or
# one of "-+.<=~"; the only ones starting with a letter, "_", "/" or "(" are these boolean and null
# words, so a string starting so reads back as a string unless it is one of them.
_STR_FIRST = frozenset(string.ascii_letters + "_/(")
_WORDS = ("yes", "no", "true", "false", "on", "off", "null")
_RESERVED = frozenset(spelling(word) for word in _WORDS for spelling in (str, str.title, str.upper))
_MAX_SIMPLE_KEY = 128  # PyYAML writes longer keys as "? key"
_MAX_CACHED = 100_000


# A first character that makes libyaml quote a string; "?", ":" and "-" only when a space or the end
# follows them.
_INDICATOR_FIRST = frozenset("#,[]{}&*!|>'\"%@`")
_resolve: Callable[[type, str, tuple[bool, bool]], str] = Resolver().resolve  # untyped in PyYAML
_STR_TAG = "tag:yaml.org,2002:str"


def one_line_text(text: str) -> str | None:
    """How libyaml writes a one-line printable ASCII string as a block value: plain when its
    analysis allows a plain scalar and the string would read back as a string (not ``8000``,
    ``true``, ``~``, ``2024-01-01``), otherwise single-quoted with quotes doubled (allowed unless a
    line break, a tab or a non-printable character). None for any other string, and for strings
    long enough that libyaml might fold them at the width: PyYAML writes those."""
    if len(text) >= _WIDTH // 2 or not text.isascii() or not text.isprintable():
        return None
    if _plain_allowed(text) and _reads_back_as_str(text):
        return text
    return "'" + text.replace("'", "''") + "'"


def _reads_back_as_str(text: str) -> bool:
    """PyYAML's resolver, without running its regular expressions for the common case."""
    if text[0] in _STR_FIRST:
        return text not in _RESERVED
    return _resolve(yaml.ScalarNode, text, (True, False)) == _STR_TAG


def _plain_allowed(text: str) -> bool:
    """libyaml's ``block_plain_allowed`` for a one-line printable ASCII string (str methods, C loops
    over the string: several times faster on long PromQL than a regular expression)."""
    if not text or text[0] == " " or text[-1] == " " or text[0] in _INDICATOR_FIRST:
        return False
    if text[0] in "?:-" and text[1:2] in ("", " "):
        return False
    return not (text.startswith(("---", "...")) or ": " in text or text[-1] == ":" or " #" in text)


class _Unusual(Exception):
    """Something this writer does not reproduce exactly; PyYAML writes the stream instead."""


class _Writer:
    """Writes one stream into ``parts``. The hot path (a key, then a string written plain or
    already seen) is inlined in :meth:`mapping` and :meth:`sequence`: the rules are most of
    `codepilot render`'s output, and a method call per line was a third of the writer's time."""

    def __init__(self) -> None:
        self.parts: list[str] = []
        self.strings: dict[str, str] = {}  # a string value -> its one-line text
        self.blocks: dict[str, str] = {}  # a string value -> its multi-line text at column 0
        self.keys: dict[Any, str] = {}
        # The last block scalar of the current document was keep-chomped ("|+"): libyaml then ends the
        # stream with "..." (a "---" ends such a document too, so it is reset at each one).
        self.open_ended = False

    def value(self, value: Any, column: int) -> str:
        """A scalar after ``key: `` or ``- `` whose owner (key or dash) starts at ``column``."""
        kind = type(value)
        if kind is str:
            text = self.strings.get(value)
            if text is not None:
                return text
            text = self.blocks.get(value)
            if text is None:
                text = one_line_text(value) or self._by_pyyaml(value)
                if "\n" not in text:
                    if len(self.strings) < _MAX_CACHED:
                        self.strings[value] = text
                    return text
                if len(self.blocks) < _MAX_CACHED:
                    self.blocks[value] = text
        elif value is None:
            return "null"
        elif kind is bool:
            return "true" if value else "false"
        elif kind is int:
            return str(value)
        elif kind is float:
            text = self._by_pyyaml(value)  # PyYAML's own spelling: 1.0e-05, .inf, .nan
            if "\n" not in text:
                return text
        else:
            raise _Unusual
        if text[:1] in "|>":  # libyaml remembers only the chomping of the last block scalar
            self.open_ended = text.split("\n", 1)[0].endswith("+")
        if column:
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
        if len(key) < _MAX_SIMPLE_KEY and one_line_text(key) == key:
            text = key
        else:
            written = yaml.dump({key: 0}, Dumper=ReadableDumper, default_flow_style=False, width=_WIDTH)
            if written.startswith("?") or not written.endswith(": 0\n") or written.count("\n") != 1:
                raise _Unusual
            text = written[: -len(": 0\n")]
        if len(self.keys) < _MAX_CACHED:
            self.keys[key] = text
        return text

    def mapping(self, mapping: dict[Any, Any], column: int, lead: str) -> None:
        """Keys at ``column``; the first line starts with ``lead`` (indentation, or an item's dash)."""
        out = self.parts.append
        keys, strings = self.keys, self.strings
        indent = " " * column
        for key, value in mapping.items():
            name = keys.get(key) if type(key) is str else None
            if name is None:
                name = self.key(key)
            kind = type(value)
            if kind is str:
                text = strings.get(value)
                out(f"{lead}{name}: {text if text is not None else self.value(value, column)}\n")
            elif kind is dict:
                if value:
                    out(f"{lead}{name}:\n")
                    self.mapping(value, column + 2, " " * (column + 2))
                else:
                    out(f"{lead}{name}: {{}}\n")
            elif kind is list:
                if value:
                    out(f"{lead}{name}:\n")
                    self.sequence(value, column, indent)  # PyYAML's indentless sequences
                else:
                    out(f"{lead}{name}: []\n")
            else:
                out(f"{lead}{name}: {self.value(value, column)}\n")
            lead = indent

    def sequence(self, items: list[Any], column: int, lead: str) -> None:
        """Dashes at ``column``; the first line starts with ``lead``."""
        out = self.parts.append
        strings = self.strings
        dash = f"{lead}- "
        following = f"{' ' * column}- "
        for item in items:
            kind = type(item)
            if kind is str:
                text = strings.get(item)
                out(f"{dash}{text if text is not None else self.value(item, column)}\n")
            elif kind is dict:
                if item:
                    self.mapping(item, column + 2, dash)
                else:
                    out(f"{dash}{{}}\n")
            elif kind is list:
                if item:
                    self.sequence(item, column + 2, dash)
                else:
                    out(f"{dash}[]\n")
            else:
                out(f"{dash}{self.value(item, column)}\n")
            dash = following


def dump_yaml_stream(objects: Sequence[Any]) -> str:
    """The objects as a multi-document YAML stream, as :func:`pyyaml_stream` writes it."""
    writer = _Writer()
    parts = writer.parts
    try:
        for index, document in enumerate(objects):
            if type(document) is not dict or not document:
                raise _Unusual
            if index:
                parts.append("---\n")
            writer.open_ended = False
            writer.mapping(document, 0, "")
    except (_Unusual, RecursionError):
        return pyyaml_stream(objects)
    if writer.open_ended:
        parts.append("...\n")
    return "".join(parts)


__all__ = ["ReadableDumper", "dump_yaml_stream", "pyyaml_stream"]
