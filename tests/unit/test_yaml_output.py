"""cli/yaml_output.py writes exactly what PyYAML writes, for rendered objects and for awkward data."""

from __future__ import annotations

import random
import string
from typing import Any

import pytest

from codepilot_operator.cli.yaml_output import dump_yaml_stream, pyyaml_stream
from codepilot_operator.render import render
from tests.helpers import EXAMPLES, load_example

# Strings where PyYAML's choice of style is not obvious: implicit types, indicators, spaces, breaks.
AWKWARD = [
    "",
    " ",
    "a",
    " a",
    "a ",
    "a  b",
    "yes",
    "No",
    "TRUE",
    "off",
    "null",
    "Null",
    "~",
    "y",
    "n",
    "1",
    "-1",
    "0o7",
    "0x1f",
    "1_000",
    "1:30",
    "1.5",
    "-.5",
    ".5",
    ".inf",
    "-.inf",
    ".nan",
    "1e3",
    "2024-01-01",
    "2024-01-01 10:00:00",
    "<<",
    "=",
    "-",
    "--",
    "--dest",
    "- a",
    "-a",
    "?",
    "? a",
    "?a",
    ":",
    ":a",
    "a:",
    "a:b",
    "a: b",
    "a :b",
    "#",
    "a#b",
    "a #b",
    "a# b",
    "!a",
    "&a",
    "*a",
    "|",
    ">",
    "%a",
    "@a",
    "`a",
    "'a'",
    '"a"',
    "a'b",
    'a"b',
    "{a}",
    "[a]",
    "a,b",
    "a{b}",
    "a[0]",
    "(a)",
    "/a",
    "_a",
    "---",
    "...",
    "--- a",
    "a\nb",
    "a\nb\n",
    "a\n\nb\n",
    "\na",
    " a\nb",
    "a \nb",
    "a\n b",
    "a\n\n\n",
    "\n",
    "é",
    "a\u2028b",
    "a\tb",
    "\ta",
    "a\x00b",
    "a\x7fb",
    "ünïcödé",
    "x" * 200,
    'sum(rate(x{a="b"}[5m])) > 0.5',
    "codepilot:latency:mean",
    "nvcr.io/nvidia/tritonserver:25.10",
    "--metrics-config=histogram_latencies=true",
    'name: "m"\nbackend: "python"\n',
    "a: b\nc: d",
]
SCALARS: list[Any] = [*AWKWARD, 0, 1, -7, 10**20, 0.5, 1e-05, 1e20, float("inf"), -0.0, True, False, None]


def _random_string(rng: random.Random) -> str:
    alphabet = string.printable + "é\u2028:#- "
    return "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 12)))


def _value(rng: random.Random, depth: int) -> Any:
    roll = rng.random()
    if depth < 4 and roll < 0.2:
        return {_key(rng): _value(rng, depth + 1) for _ in range(rng.randint(0, 4))}
    if depth < 4 and roll < 0.35:
        return [_value(rng, depth + 1) for _ in range(rng.randint(0, 4))]
    if roll < 0.7:
        return rng.choice(SCALARS)
    return _random_string(rng)


def _key(rng: random.Random) -> str:
    return rng.choice(AWKWARD) if rng.random() < 0.4 else _random_string(rng) or "k"


def _document(rng: random.Random) -> dict[str, Any]:
    return {_key(rng): _value(rng, 0) for _ in range(rng.randint(1, 6))}


@pytest.mark.parametrize("example", EXAMPLES)
def test_rendered_examples_are_written_as_pyyaml_writes_them(example: str) -> None:
    objects = render(load_example(example))
    assert dump_yaml_stream(objects) == pyyaml_stream(objects)


def test_every_awkward_scalar_as_value_key_and_item_at_every_depth() -> None:
    for scalar in SCALARS:
        document: dict[str, Any] = {
            "top": scalar,
            "nested": {"deeper": {"value": scalar}},
            "items": [scalar, {"in": scalar, "list": [scalar]}, [scalar]],
        }
        if isinstance(scalar, str):
            document[scalar or "empty"] = {scalar: [scalar]}
        assert dump_yaml_stream([document, document]) == pyyaml_stream([document, document]), repr(scalar)


def test_random_documents_are_written_as_pyyaml_writes_them() -> None:
    rng = random.Random(20261201)
    for _ in range(3000):
        documents = [_document(rng) for _ in range(rng.randint(1, 3))]
        assert dump_yaml_stream(documents) == pyyaml_stream(documents), documents


@pytest.mark.parametrize(
    "documents",
    [
        [{1: "a"}],  # a non-string key
        [{"k" * 200: 1}],  # a key PyYAML writes as "? key"
        [{}],  # an empty document
        [["a"]],  # a document that is not a mapping
        [{"when": __import__("datetime").date(2024, 1, 1)}],  # not JSON-like data
    ],
)
def test_what_it_does_not_write_itself_is_written_by_pyyaml(documents: list[Any]) -> None:
    assert dump_yaml_stream(documents) == pyyaml_stream(documents)


def test_one_line_strings_are_plain_or_quoted_as_libyaml_chooses() -> None:
    """The writer decides plain / single-quoted itself for printable ASCII; every indicator, implicit
    type and space rule of that decision meets PyYAML's on strings built from the characters that
    matter."""
    rng = random.Random(1201)
    alphabet = "ab1:#-?' ._~{[,!|>\"%@`0x"
    words = ["", "true", "null", "~", "1.5", "0x1f", "2024-01-01", "---", "...", "<<", "1_000", ".inf"]
    for _ in range(20_000):
        text = rng.choice(words) + "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 6)))
        if rng.random() < 0.3:
            text += rng.choice(words)
        assert dump_yaml_stream([{"k": text}]) == pyyaml_stream([{"k": text}]), repr(text)
