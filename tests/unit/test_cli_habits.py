"""The command line follows the habits of kubectl and helm: `-o` is the output format, a bare command
prints its help, rendered YAML reads like kubectl's. Run as a real process, from a scratch directory."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.helpers import EXAMPLES, REPO

CRD = yaml.safe_load((REPO / "crds" / "codepilot.yaml").read_text())


def run(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "codepilot_operator.cli", *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        timeout=60,
    )


@pytest.mark.parametrize("command", [[], ["snapshot"]], ids=["codepilot", "codepilot snapshot"])
def test_a_bare_command_prints_its_help_and_exits_0(tmp_path: Path, command: list[str]) -> None:
    result = run(tmp_path, *command)
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    assert result.stdout.startswith(f"usage: codepilot {' '.join(command)}".rstrip())
    assert ("verify" if command else "render") in result.stdout


def test_crd_o_yaml_is_a_format_not_a_file(tmp_path: Path) -> None:
    result = run(tmp_path, "crd", "-o", "yaml")
    assert result.returncode == 0, result.stderr
    assert yaml.safe_load(result.stdout) == CRD
    assert list(tmp_path.iterdir()) == []  # no file named "yaml"


def test_crd_o_json(tmp_path: Path) -> None:
    result = run(tmp_path, "crd", "-o", "json")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == CRD


def test_crd_output_file(tmp_path: Path) -> None:
    result = run(tmp_path, "crd", "-o", "json", "--output-file", "crd.json")
    assert result.returncode == 0 and result.stdout == "", result.stderr
    assert json.loads((tmp_path / "crd.json").read_text()) == CRD
    result = run(tmp_path, "crd", "-f", "crd.yaml")
    assert result.returncode == 0 and result.stdout == "", result.stderr
    assert yaml.safe_load((tmp_path / "crd.yaml").read_text()) == CRD


def test_crd_o_file_still_writes_it_with_a_warning(tmp_path: Path) -> None:
    """What `-o FILE` meant before keeps working for a while: scripts get a warning, not a break."""
    result = run(tmp_path, "crd", "-o", "crd.yaml")
    assert result.returncode == 0
    assert result.stdout == ""
    assert result.stderr == (
        "warning: -o FILE is deprecated (-o is the output format): use --output-file crd.yaml\n"
    )
    assert yaml.safe_load((tmp_path / "crd.yaml").read_text()) == CRD


def test_crd_unknown_format_with_a_file_is_one_line(tmp_path: Path) -> None:
    result = run(tmp_path, "crd", "-o", "xml", "--output-file", "crd.xml")
    assert result.returncode == 2 and result.stdout == ""
    assert result.stderr.splitlines() == ["error: -o: expected one of yaml, json, got 'xml'"]
    assert list(tmp_path.iterdir()) == []


def test_duplicate_keys_are_one_line_naming_the_key(tmp_path: Path) -> None:
    text = (EXAMPLES[0]).read_text()
    doubled = text.replace("spec:\n", "spec:\n  model: {}\n", 1)
    assert doubled != text
    (tmp_path / "cp.yaml").write_text(doubled)
    for command in ("validate", "render"):
        result = run(tmp_path, command, "cp.yaml")
        assert result.returncode == 2 and result.stdout == ""
        (line,) = result.stderr.splitlines()
        assert line.startswith("error: cp.yaml: line ") and "duplicate key 'model' (first at line" in line


@pytest.mark.parametrize("example", EXAMPLES, ids=[p.stem for p in EXAMPLES])
def test_rendered_yaml_has_no_anchors(tmp_path: Path, example: Path) -> None:
    """The same labels in a Deployment and its pod template are written out twice, as kubectl does."""
    result = run(tmp_path, "render", str(example))
    assert result.returncode == 0, result.stderr
    events = list(yaml.parse(result.stdout))
    assert events
    assert not [e for e in events if isinstance(e, yaml.AliasEvent) or getattr(e, "anchor", None)]
