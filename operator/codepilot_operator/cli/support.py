"""What every ``codepilot`` command shares: the usage error, exit codes, reading manifests, YAML output.

User mistakes end with one line per problem on stderr and exit code 2, with nothing on stdout: a
rendered stream is printed only once every document rendered.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

if TYPE_CHECKING:
    from codepilot_operator.api import CodePilot

EXIT_INVALID = 2


class UsageError(Exception):
    """A problem the user can fix; printed as one line per problem, no traceback."""

    def __init__(self, *problems: str):
        super().__init__("; ".join(problems))
        self.problems = list(problems)


def print_problems(problems: Sequence[str]) -> None:
    for problem in problems:
        print(f"error: {problem}", file=sys.stderr)


def read_text(path: str) -> tuple[str, str]:
    """The text of a manifest file (``-`` is stdin) and the name to show in messages."""
    if path == "-":
        return sys.stdin.read(), "<stdin>"
    try:
        return Path(path).read_text(encoding="utf-8"), path
    except FileNotFoundError:
        raise UsageError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise UsageError(f"{path}: is a directory") from None
    except UnicodeDecodeError:
        raise UsageError(f"{path}: not UTF-8 text") from None


def load_codepilots(paths: Sequence[str]) -> list[CodePilot]:
    """Every CodePilot in ``paths``; the problems of all files are reported together."""
    from codepilot_operator.loader import InvalidCodePilot, parse_documents

    codepilots: list[CodePilot] = []
    problems: list[str] = []
    for path in paths:
        text, source = read_text(path)
        try:
            codepilots.extend(parse_documents(text, source))
        except InvalidCodePilot as exc:
            problems.extend(exc.problems)
    if problems:
        raise UsageError(*problems)
    return codepilots


def load_one_codepilot(path: str) -> CodePilot:
    codepilots = load_codepilots([path])
    if len(codepilots) != 1:
        raise UsageError(f"{path}: expected one CodePilot, found {len(codepilots)}")
    return codepilots[0]


_BaseDumper: type[yaml.SafeDumper] = getattr(yaml, "CSafeDumper", yaml.SafeDumper)  # libyaml when built


class _ReadableDumper(_BaseDumper):  # type: ignore[misc,valid-type]
    """libyaml's emitter (about 10x faster than PyYAML's own), multi-line strings (config.pbtxt,
    dashboards) as literal blocks so rendered YAML stays reviewable, and no anchors: an object that
    appears twice (the labels of a Deployment and its pod template) is written out twice, the way
    kubectl and Helm write it, not as ``&id001`` / ``*id001``."""

    def ignore_aliases(self, data: Any) -> bool:
        return True


def _represent_str(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    if "\n" in value:
        return dumper.represent_scalar("tag:yaml.org,2002:str", value, style="|")
    return dumper.represent_scalar("tag:yaml.org,2002:str", value)


_ReadableDumper.add_representer(str, _represent_str)


def dump_yaml_stream(objects: Sequence[dict[str, Any]]) -> str:
    return yaml.dump_all(
        objects, Dumper=_ReadableDumper, sort_keys=False, default_flow_style=False, width=1_000_000
    )
