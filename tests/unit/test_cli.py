"""The codepilot CLI as a user runs it: one clear line per problem, nothing half-written."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from codepilot_operator.cli import main
from tests.helpers import EXAMPLES, REPO, manifest


def run(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    """The real command in a real process, as a shell user would run it."""
    return subprocess.run(
        [sys.executable, "-m", "codepilot_operator.cli", *args],
        capture_output=True,
        text=True,
        input=stdin,
        cwd=REPO,
        timeout=60,
    )


def write(tmp_path: Path, doc: object, name: str = "cr.yaml") -> Path:
    path = tmp_path / name
    path.write_text(doc if isinstance(doc, str) else yaml.safe_dump(doc))
    return path


def test_render_prints_a_yaml_stream_of_every_child() -> None:
    result = run("render", str(EXAMPLES[0]))
    assert result.returncode == 0, result.stderr
    kinds = [d["kind"] for d in yaml.safe_load_all(result.stdout)]
    assert {"Deployment", "Service", "ConfigMap", "PodDisruptionBudget"} <= set(kinds)


def test_render_reads_stdin_and_json(capsys: pytest.CaptureFixture[str]) -> None:
    import io
    import json

    sys.stdin = io.StringIO(yaml.safe_dump(manifest()))
    try:
        assert main(["render", "-o", "json", "-"]) == 0
    finally:
        sys.stdin = sys.__stdin__
    out = json.loads(capsys.readouterr().out)
    assert out["kind"] == "List" and out["items"]


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (
            manifest(**{"spec.runtime.gpus": -1}),
            "error: {path}: spec.runtime.gpus: Input should be greater than or equal to 0",
        ),
        (manifest(**{"spec.runtime.gpuz": 1}), "error: {path}: spec.runtime.gpuz: unknown field"),
        (manifest(kind="Deployment"), "error: {path}: kind: expected CodePilot, got 'Deployment'"),
        (
            manifest(**{"metadata.name": "Bad_Name"}),
            "error: {path}: metadata.name: String should match pattern",
        ),
        ("spec: [unclosed\n", "error: {path}: line 2, column 1: invalid YAML"),
        ("", "error: {path}: no CodePilot found"),
    ],
)
def test_invalid_input_exits_2_with_one_line_per_problem_and_no_stdout(
    tmp_path: Path, content: object, expected: str
) -> None:
    path = write(tmp_path, content)
    for command in ("render", "validate"):
        result = run(command, str(path))
        assert result.returncode == 2
        assert result.stdout == ""
        assert "Traceback" not in result.stderr
        assert result.stderr.startswith(expected.format(path=path)), result.stderr


def test_render_prints_nothing_if_any_file_is_invalid(tmp_path: Path) -> None:
    good = write(tmp_path, manifest(), "good.yaml")
    bad = write(tmp_path, manifest(**{"spec.autoscaling": {"minReplicas": 5, "maxReplicas": 1}}), "bad.yaml")
    result = run("render", str(good), str(bad))
    assert result.returncode == 2 and result.stdout == ""
    assert result.stderr.strip().splitlines() == [
        f"error: {bad}: spec.autoscaling: maxReplicas (1) must be >= minReplicas (5)"
    ]


def test_missing_file_is_a_clean_error(tmp_path: Path) -> None:
    result = run("render", str(tmp_path / "nope.yaml"))
    assert result.returncode == 2 and result.stdout == ""
    assert result.stderr.strip() == f"error: {tmp_path / 'nope.yaml'}: no such file"


def test_validate_accepts_every_example() -> None:
    result = run("validate", *map(str, EXAMPLES))
    assert result.returncode == 0, result.stderr
    assert result.stderr.count(": valid") == len(EXAMPLES)


def test_crd_command_writes_the_generated_crd(tmp_path: Path) -> None:
    target = tmp_path / "crd.yaml"
    assert main(["crd", "-o", str(target)]) == 0
    assert yaml.safe_load(target.read_text()) == yaml.safe_load(
        (REPO / "crds" / "codepilot.yaml").read_text()
    )
    assert [p.name for p in tmp_path.iterdir()] == ["crd.yaml"]  # no temp file left behind
