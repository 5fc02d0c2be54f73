"""Small test helpers shared by unit and integration tests (no fixtures here)."""

from __future__ import annotations

import copy
from collections.abc import Callable
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from codepilot_operator.api import CodePilot
from codepilot_operator.loader import in_namespace, parse_codepilot

REPO = Path(__file__).resolve().parent.parent
EXAMPLES = sorted((REPO / "examples").glob("*.yaml"))
KUBERNETES_VERSION = "1.31"

MINIMAL: dict[str, Any] = {
    "apiVersion": "serving.codepilot.dev/v1alpha1",
    "kind": "CodePilot",
    "metadata": {"name": "coder", "namespace": "team-a"},
    "spec": {
        "model": {
            "name": "codellama-7b",
            "version": "v1",
            "source": {"uri": "s3://models/codellama/v1", "endpoint": "http://minio:9000"},
        }
    },
}


def manifest(**overrides: Any) -> dict[str, Any]:
    """MINIMAL with dotted-path overrides: manifest(**{"spec.runtime.gpus": 2})."""
    doc = copy.deepcopy(MINIMAL)
    for path, value in overrides.items():
        node = doc
        *parents, leaf = path.split(".")
        for part in parents:
            node = node.setdefault(part, {})
        node[leaf] = value
    return doc


def codepilot(**overrides: Any) -> CodePilot:
    return parse_codepilot(manifest(**overrides))


# Examples name no namespace (one file serves every team); tests apply them here, as `-n` would.
EXAMPLE_NAMESPACE = "assistants"


def load_example(path: Path) -> CodePilot:
    return parse_codepilot(in_namespace(yaml.safe_load(path.read_text()), EXAMPLE_NAMESPACE))


def validate_builtin(obj: dict[str, Any]) -> None:
    """Strict schema validation of a built-in kind; a kind without a schema raises (counts as failure)."""
    kubernetes_validate.validate(obj, KUBERNETES_VERSION, strict=True)


def validate_gateway_api(objects: list[dict[str, Any]]) -> list[str]:
    """Problems of Gateway API objects against the upstream schemas (an npm package of generated models,
    installed into tests/js by scripts/install-test-deps.sh); empty when every object is valid."""
    import json
    import shutil
    import subprocess

    node = shutil.which("node")
    if node is None or not (REPO / "tests" / "js" / "node_modules").is_dir():
        raise RuntimeError("the Gateway API validator is not installed: run scripts/install-test-deps.sh")
    result = subprocess.run(
        [node, str(REPO / "tests" / "js" / "validate.js")],
        input=json.dumps(objects),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    if result.returncode not in (0, 3) or (result.returncode == 3) != bool(result.stdout.strip()):
        raise RuntimeError(f"validator crashed: {result.stderr[-2000:]}")
    return result.stdout.splitlines()


def assert_settings_file_refused(
    load: Callable[[str], Any], flag: str, path: Path, cases: dict[str, str]
) -> None:
    """Each text written to ``path`` is refused by ``load`` with one problem naming the flag and the
    file and containing the expected words (the settings files' reader, cli/support.read_settings)."""
    from codepilot_operator.cli.support import UsageError

    for text, expected in cases.items():
        path.write_text(text)
        with pytest.raises(UsageError) as exc:
            load(str(path))
        assert len(exc.value.problems) == 1 and expected in exc.value.problems[0], exc.value.problems
        assert exc.value.problems[0].startswith(f"{flag} {path}: ")
