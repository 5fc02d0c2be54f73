"""The examples work as the README says: `kubectl apply -n team-a -f examples/minimal.yaml`, with the
example Secret beside them, and `codepilot render -n NS` prints what the operator applies in NS."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from codepilot_operator.api.contract import ACCESS_KEY_ENV, SECRET_KEY_ENV
from codepilot_operator.api.platform import ALLOW_LABEL, ALLOW_VALUE, secret_allowed
from tests.helpers import EXAMPLE_NAMESPACE, EXAMPLES, REPO, load_example, validate_builtin

SECRET = REPO / "examples" / "secrets" / "minio-credentials.yaml"
EVERY_MANIFEST = sorted((REPO / "examples").rglob("*.yaml"))


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "codepilot_operator.cli", *args],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=60,
    )


@pytest.mark.parametrize("path", EVERY_MANIFEST, ids=lambda p: str(p.relative_to(REPO / "examples")))
def test_no_example_hard_codes_a_namespace(path: Path) -> None:
    """kubectl refuses `apply -n team-a` of an object naming another namespace."""
    for document in yaml.safe_load_all(path.read_text()):
        assert "namespace" not in document["metadata"], f"{path.name} sets metadata.namespace"


def test_the_example_secret_is_what_the_examples_reference_and_the_policy_allows() -> None:
    (secret,) = list(yaml.safe_load_all(SECRET.read_text()))
    validate_builtin(secret)
    assert secret["metadata"]["labels"][ALLOW_LABEL] == ALLOW_VALUE
    assert secret_allowed(secret["metadata"]["labels"])
    assert set(secret["stringData"]) == {ACCESS_KEY_ENV, SECRET_KEY_ENV}  # the keys the fetcher reads
    referenced = {load_example(p).spec.model.source.credentials_secret for p in EXAMPLES}
    assert referenced == {secret["metadata"]["name"]}


@pytest.mark.parametrize("example", EXAMPLES, ids=lambda p: p.stem)
def test_render_n_puts_every_child_in_that_namespace(example: Path) -> None:
    result = run("render", "-n", "team-a", str(example))
    assert result.returncode == 0, result.stderr
    assert {d["metadata"]["namespace"] for d in yaml.safe_load_all(result.stdout)} == {"team-a"}


def test_render_n_matches_the_golden_files() -> None:
    """The goldens are the examples applied in EXAMPLE_NAMESPACE: the CLI prints exactly them."""
    for example in EXAMPLES:
        result = run("render", "-n", EXAMPLE_NAMESPACE, str(example))
        assert result.returncode == 0, result.stderr
        assert result.stdout == (REPO / "tests" / "unit" / "golden" / f"{example.stem}.yaml").read_text()


def test_without_n_a_manifest_lands_in_default_as_with_kubectl() -> None:
    result = run("validate", str(EXAMPLES[0]))
    assert result.returncode == 0
    assert result.stderr.startswith("default/")


def test_n_conflicting_with_the_manifest_is_one_line(tmp_path: Path) -> None:
    doc = yaml.safe_load(EXAMPLES[0].read_text())
    doc["metadata"]["namespace"] = "team-b"
    path = tmp_path / "cp.yaml"
    path.write_text(yaml.safe_dump(doc))
    result = run("render", "-n", "team-a", str(path))
    assert result.returncode == 2 and result.stdout == ""
    assert result.stderr == f"error: {path}: metadata.namespace: 'team-b' does not match -n 'team-a'\n"


def _readme_path() -> str:
    text = (REPO / "README.md").read_text()
    start = text.index("## From zero to a served model")
    return text[start : text.index("\n## ", start + 1)]


def test_the_readme_path_names_what_the_examples_and_the_renderer_really_have() -> None:
    """The README's steps from zero to a first request: files, names, URL and port are the real ones."""
    from codepilot_operator.render import render
    from codepilot_operator.render.gateway import api_url

    path = _readme_path()
    for mentioned in re.findall(r"(?:examples|tests)/[\w/.-]+\.(?:yaml|py)", path):
        assert (REPO / mentioned).is_file(), mentioned
    cp = load_example(REPO / "examples" / "cpu-python.yaml").model_copy(deep=True)
    cp.metadata.namespace = "team-a"
    assert f"`{api_url(cp)}`" in path
    (key_secret,) = cp.spec.api.key_secrets
    assert f"create secret generic {key_secret} -n team-a --from-literal=api-key=" in path
    services = {o["metadata"]["name"]: o for o in render(cp) if o["kind"] == "Service"}
    (port,) = [p["port"] for p in services["starcoder-tiny-api"]["spec"]["ports"] if p["name"] == "http"]
    assert f"svc/starcoder-tiny-api 8080:{port}" in path
    assert f'"model": "{cp.metadata.name}"' in path
    assert f"s3://{cp.spec.model.source.bucket}/" in cp.spec.model.source.uri
    assert f"minio/{cp.spec.model.source.uri.removeprefix('s3://')}/model.py" in path


def test_the_readme_still_starts_with_its_two_commands() -> None:
    text = (REPO / "README.md").read_text()
    quick = text[text.index("## Quick start") :]
    first_block = quick[quick.index("```bash") : quick.index("```", quick.index("```bash") + 7)]
    assert "codepilot render examples/minimal.yaml" in first_block
    assert "python3 -m pytest -q" in first_block
    assert text.index("## Quick start") < text.index("## From zero to a served model")
