"""`codepilot status | promote | abort | ...` as a user runs them: a process against the API emulator."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.conftest import Api
from tests.fixtures.kube import EmulatorThread
from tests.helpers import manifest

NAMESPACE = "cli-rollout"
ANNOTATION = "serving.codepilot.dev/rollout-action"


@pytest.fixture(scope="module")
def user(kube_emulator: EmulatorThread, tmp_path_factory: pytest.TempPathFactory) -> tuple[Api, Path]:
    """A user's kubeconfig (not the operator's token: the user's own RBAC) and an admin client."""
    path = kube_emulator.kubeconfig(tmp_path_factory.mktemp("user") / "kubeconfig", token="developer")
    return Api(kube_emulator.url), path


def codepilot_cli(kubeconfig: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "codepilot_operator.cli", *args, "--kubeconfig", str(kubeconfig)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def create(api: Api, name: str, status: dict[str, Any] | None) -> None:
    doc = manifest(**{"metadata.name": name, "metadata.namespace": NAMESPACE, "spec.model.version": "v2"})
    api.create("codepilots", doc)
    if status is not None:
        api.request(
            "PATCH",
            Api.path("codepilots", NAMESPACE, name) + "/status",
            {"status": status},
            "application/merge-patch+json",
        )


IN_FLIGHT = {
    "stableVersion": "v1",
    "canaryVersion": "v2",
    "rollout": {
        "phase": "Progressing",
        "version": "v2",
        "strategy": "Canary",
        "step": 1,
        "weight": 50,
        "actualWeight": 50,
        "stableReplicas": 1,
        "canaryReplicas": 1,
        "stepProgressSeconds": 120,
        "lastAnalysis": {
            "time": "2026-12-01T10:00:00Z",
            "verdict": "Fail",
            "reason": "ErrorRate",
            "message": "error ratio 10.00% > 1.00%",
            "windowSeconds": 60,
            "canary": {"requests": 400, "errors": 40, "errorRatio": 0.1, "meanLatencySeconds": 0.2},
            "stable": {"requests": 4000, "errors": 8, "errorRatio": 0.002, "meanLatencySeconds": 0.19},
            "thresholds": {
                "maxErrorRate": 0.01,
                "significance": 0.05,
                "maxLatencyRatio": 1.2,
                "maxLatencySeconds": 1.0,
                "minRequests": 20,
            },
        },
    },
}


def test_status_shows_phase_step_weights_and_the_analysis_with_thresholds(user: tuple[Api, Path]) -> None:
    api, kubeconfig = user
    create(api, "shown", IN_FLIGHT)
    result = codepilot_cli(kubeconfig, "status", "shown", "-n", NAMESPACE)
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "Progressing, step 2/2" in out and "requested 50%, actual 50%" in out
    assert "Fail (ErrorRate)" in out
    error_row = next(line for line in out.splitlines() if line.strip().startswith("error ratio"))
    assert "0.20%" in error_row and "<= 1.00%" in error_row


def test_promote_sets_the_annotation_the_operator_acts_on(user: tuple[Api, Path]) -> None:
    api, kubeconfig = user
    create(api, "steered", IN_FLIGHT)
    result = codepilot_cli(kubeconfig, "promote", "steered", "-n", NAMESPACE)
    assert result.returncode == 0, result.stderr
    live = api.get("codepilots", NAMESPACE, "steered")
    assert live["metadata"]["annotations"][ANNOTATION] == "promote"


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (("promote", "missing"), "codepilot cli-rollout/missing not found"),
        (("abort", "idle"), "no rollout in progress"),
        (("retry", "idle"), "nothing to retry"),
        (("status", "missing"), "not found"),
    ],
)
def test_clear_one_line_errors(user: tuple[Api, Path], args: tuple[str, ...], expected: str) -> None:
    api, kubeconfig = user
    if api.get("codepilots", NAMESPACE, "idle") is None:
        create(api, "idle", {"stableVersion": "v2"})
    result = codepilot_cli(kubeconfig, *args, "-n", NAMESPACE)
    assert result.returncode == 2 and result.stdout == ""
    assert result.stderr.count("\n") == 1 and expected in result.stderr, result.stderr
    assert "Traceback" not in result.stderr


def test_an_unreachable_cluster_is_one_line(tmp_path: Path) -> None:
    config = tmp_path / "kubeconfig"
    config.write_text(
        "apiVersion: v1\nkind: Config\ncurrent-context: c\n"
        "clusters: [{name: c, cluster: {server: 'http://127.0.0.1:9'}}]\n"
        "users: [{name: u, user: {token: t}}]\ncontexts: [{name: c, context: {cluster: c, user: u}}]\n"
    )
    result = codepilot_cli(config, "status", "x", "-n", NAMESPACE)
    assert result.returncode == 2 and "cannot reach the API server" in result.stderr
    assert result.stderr.count("\n") == 1
