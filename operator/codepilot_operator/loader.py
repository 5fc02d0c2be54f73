"""Parse CodePilot manifests from YAML text into typed objects, or into one clear line per problem.

Users meet these messages in the CLI and in the operator's Degraded condition, so every problem names
the field path it concerns (``spec.runtime.gpus: ...``) and never carries a traceback.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import yaml
from pydantic import ValidationError

from codepilot_operator.api import API_VERSION, KIND, CodePilot


class InvalidCodePilot(ValueError):
    """The input is not a CodePilot we can serve; ``problems`` holds one message per field."""

    def __init__(self, problems: list[str]):
        super().__init__("; ".join(problems))
        self.problems = problems


def _path(loc: Iterable[int | str]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out or "(root)"


def _message(error: dict[str, Any]) -> str:
    if error["type"] == "extra_forbidden":
        return "unknown field"
    if error["type"] == "missing":
        return "required field is missing"
    message = str(error["msg"])
    return message.removeprefix("Value error, ")


def validation_problems(exc: ValidationError) -> list[str]:
    problems = []
    for error in exc.errors(include_url=False):
        loc = [p for p in error["loc"] if not (isinstance(p, str) and p.startswith("function-"))]
        problems.append(f"{_path(loc)}: {_message(dict(error))}")
    return problems


def parse_codepilot(document: Any) -> CodePilot:
    """One manifest (a dict from YAML or from the API server) into a CodePilot."""
    if not isinstance(document, dict):
        raise InvalidCodePilot([f"(root): expected a mapping, got {type(document).__name__}"])
    problems = []
    kind, api_version = document.get("kind"), document.get("apiVersion")
    if kind != KIND:
        problems.append(f"kind: expected {KIND}, got {kind!r}")
    if api_version != API_VERSION:
        problems.append(f"apiVersion: expected {API_VERSION}, got {api_version!r}")
    if problems:
        raise InvalidCodePilot(problems)
    try:
        return CodePilot.model_validate(document)
    except ValidationError as exc:
        raise InvalidCodePilot(validation_problems(exc)) from None


def parse_documents(text: str, source: str = "<stdin>") -> list[CodePilot]:
    """Every CodePilot in a YAML stream; problems of all documents are reported together."""
    try:
        documents = [d for d in yaml.safe_load_all(text) if d is not None]
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise InvalidCodePilot([f"{source}:{where}: invalid YAML: {problem}"]) from None
    if not documents:
        raise InvalidCodePilot([f"{source}: no CodePilot found (the file is empty)"])
    parsed: list[CodePilot] = []
    problems: list[str] = []
    for index, document in enumerate(documents):
        label = source if len(documents) == 1 else f"{source}[document {index + 1}]"
        try:
            parsed.append(parse_codepilot(document))
        except InvalidCodePilot as exc:
            problems.extend(f"{label}: {p}" for p in exc.problems)
    if problems:
        raise InvalidCodePilot(problems)
    return parsed
