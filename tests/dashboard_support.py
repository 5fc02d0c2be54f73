"""The PromQL of a Grafana dashboard as Prometheus receives it: template variables substituted.

Grafana replaces ``$name`` / ``${name}`` before it sends a query, so a panel is only checkable (by
tests/promql.py, promtool or a real Prometheus) after the same substitution. ``$1`` in a
``label_replace`` replacement is not a variable (no dashboard variable is named ``1``) and stays.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from typing import Any

# One CodePilot of the test fixtures (tests/fixtures/triton.py serves team-a/coder, version v1).
SAMPLE = {"namespace": "team-a", "codepilot": "coder", "version": "v1"}
RATE_INTERVAL = "1m"
_VARIABLE = re.compile(r"\$(?:\{(\w+)\}|(\w+))")
_LABEL_VALUES = re.compile(r"label_values\((?P<selector>.*),\s*(?P<label>\w+)\)", re.DOTALL)


def substitute(expr: str, values: Mapping[str, str] = SAMPLE, rate_interval: str = RATE_INTERVAL) -> str:
    """``expr`` with every dashboard variable replaced; an unknown variable is an error, not a guess."""
    known = {**values, "__rate_interval": rate_interval}

    def replace(match: re.Match[str]) -> str:
        name = match.group(1) or match.group(2)
        if name.isdigit():
            return match.group(0)
        if name not in known:
            raise KeyError(f"unknown dashboard variable ${name} in: {expr}")
        return known[name]

    return _VARIABLE.sub(replace, expr)


def variable_selector(query: str) -> tuple[str, str]:
    """``label_values(<selector>, <label>)`` -> (selector, label): the series a variable reads."""
    match = _LABEL_VALUES.fullmatch(query.strip())
    if not match:
        raise ValueError(f"not a label_values() query: {query}")
    return match["selector"], match["label"]


def dashboard_queries(board: Mapping[str, Any]) -> Iterator[tuple[str, str]]:
    """``(where, expression)`` for every panel target and variable query, variables left in."""
    for variable in board["templating"]["list"]:
        if variable["type"] == "query":
            selector, _ = variable_selector(variable["query"]["query"])
            yield f"variable {variable['name']}", selector
    for panel in board["panels"]:
        for target in panel["targets"]:
            yield f"panel {panel['title']!r} {target['refId']}", target["expr"]
