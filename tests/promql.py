"""Which series a PromQL expression reads, found by a small tokenizer (Prometheus has no Python parser).

It walks the expression token by token and reports every vector selector: a metric name, with or without
``{...}`` matchers, or a bare ``{__name__=...}``. Everything else is skipped on purpose: label matchers
(their names are labels, their values strings), the label lists after ``by``/``without``/``on``/
``ignoring``/``group_left``/``group_right``, function and aggregation names (an identifier followed by
``(``), keywords, numbers, durations, ``[range:step]`` brackets and strings. Anything it does not
recognise is an error rather than a guess, so a series read can never be silently missed.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_LIST_KEYWORDS = frozenset({"by", "without", "on", "ignoring", "group_left", "group_right"})
_KEYWORDS = frozenset({"and", "or", "unless", "bool", "offset", "atan2", "inf", "nan"})

_STRING = r"""(?:"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*'|`[^`]*`)"""
_DURATION = r"(?:\d+(?:ms|[smhdwy]))+"
_TOKEN = re.compile(
    rf"""
    (?P<space>\s+)
  | (?P<comment>\#[^\n]*)
  | (?P<string>{_STRING})
  | (?P<duration>{_DURATION})(?![\w.])
  | (?P<number>0[xX][0-9a-fA-F]+|(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?)
  | (?P<identifier>[a-zA-Z_:][a-zA-Z0-9_:]*)
  | (?P<brace>\{{)
  | (?P<range>\[\s*{_DURATION}\s*(?::\s*(?:{_DURATION})?\s*)?\])  # [5m] or a subquery's [1h:5m]
  | (?P<open>\()
  | (?P<operator>==|!=|>=|<=|[-+*/%^<>),@])
    """,
    re.VERBOSE,
)
_MATCHER = re.compile(
    rf"\s*(?P<label>[a-zA-Z_][a-zA-Z0-9_]*)\s*(?P<op>=~|!~|!=|=)\s*(?P<value>{_STRING})\s*(?P<end>,|\}})"
)
_CLOSE = re.compile(r"\s*\}")
_METRIC_NAME = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*")
_LABEL_LIST = re.compile(r"\s*\(\s*(?:[a-zA-Z_][a-zA-Z0-9_]*\s*(?:,\s*[a-zA-Z_][a-zA-Z0-9_]*\s*)*,?\s*)?\)")


@dataclass(frozen=True)
class Selector:
    """One series read: its metric name and the labels its matchers constrain (``__name__`` aside)."""

    name: str
    labels: frozenset[str]


def _unquote(literal: str) -> str:
    body = literal[1:-1]
    return body if literal[0] == "`" else re.sub(r"\\(.)", r"\1", body)


def _names_matched(op: str, value: str, expr: str) -> list[str]:
    """``__name__="a"`` or ``__name__=~"a|b"``: a negative or open-ended name matcher reads series we
    cannot enumerate, which for our purpose is an error."""
    if op == "=" and _METRIC_NAME.fullmatch(value):
        return [value]
    if op == "=~":
        names = value.split("|")
        if all(_METRIC_NAME.fullmatch(n) for n in names):
            return names
    raise ValueError(f"cannot tell which series __name__{op}{value!r} reads in: {expr}")


def _matchers(expr: str, pos: int) -> tuple[dict[str, tuple[str, str]], int]:
    """The matchers of the ``{`` at ``pos``, as label -> (op, value), and the position after ``}``."""
    found: dict[str, tuple[str, str]] = {}
    pos += 1
    closing = _CLOSE.match(expr, pos)
    if closing:
        return found, closing.end()
    while True:
        match = _MATCHER.match(expr, pos)
        if not match:
            raise ValueError(f"bad label matcher at {pos}: {expr[pos : pos + 40]!r} in: {expr}")
        found[match["label"]] = (match["op"], _unquote(match["value"]))
        pos = match.end()
        if match["end"] == "}":
            return found, pos
        closing = _CLOSE.match(expr, pos)  # a trailing comma is allowed
        if closing:
            return found, closing.end()


def _selectors(name: str | None, matchers: dict[str, tuple[str, str]], expr: str) -> list[Selector]:
    labels = frozenset(matchers) - {"__name__"}
    if "__name__" not in matchers:
        if name is None:
            raise ValueError(f"a selector without a metric name in: {expr}")
        return [Selector(name, labels)]
    if name is not None:
        raise ValueError(f"{name} also has a __name__ matcher in: {expr}")
    op, value = matchers["__name__"]
    return [Selector(n, labels) for n in _names_matched(op, value, expr)]


def _is_call(expr: str, pos: int) -> bool:
    """A function or aggregation: ``rate(...)``, ``sum(...)``, or ``sum by (...) (...)``."""
    rest = expr[pos:].lstrip()
    return rest.startswith("(") or re.match(r"(?i)(by|without)\s*\(", rest) is not None


def selectors(expr: str) -> list[Selector]:
    """Every vector selector of ``expr``, in order of appearance."""
    found: list[Selector] = []
    pos = 0
    while pos < len(expr):
        token = _TOKEN.match(expr, pos)
        if not token:
            raise ValueError(f"unexpected {expr[pos]!r} at {pos} in: {expr}")
        kind, text, pos = token.lastgroup, token.group(), token.end()
        if kind == "brace":
            matchers, pos = _matchers(expr, token.start())
            found += _selectors(None, matchers, expr)
        elif kind == "identifier":
            lowered = text.lower()
            if lowered in _LIST_KEYWORDS:
                labels = _LABEL_LIST.match(expr, pos)
                if labels:
                    pos = labels.end()
                elif lowered not in ("group_left", "group_right"):  # their label list is optional
                    raise ValueError(f"{text} without a label list at {pos} in: {expr}")
            elif lowered in _KEYWORDS or _is_call(expr, pos):
                continue  # a keyword, a number literal, or a function / aggregation name
            else:
                rest = expr[pos:]
                stripped = rest.lstrip()
                if stripped.startswith("{"):
                    matchers, pos = _matchers(expr, pos + len(rest) - len(stripped))
                    found += _selectors(text, matchers, expr)
                else:
                    found.append(Selector(text, frozenset()))
    return found


def series_read(expr: str) -> set[str]:
    """The metric names ``expr`` reads."""
    return {s.name for s in selectors(expr)}
