"""`codepilot run` as a process: a start that cannot work ends at once with one line; probes tell the truth.

A supervisor (Kubernetes) restarts a process that exits, and a liveness probe restarts one that says it
is dead; a process that stays up retrying a broken start forever while answering "ok" is neither.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from tests.e2e.conftest import free_port, wait_for
from tests.fixtures.kube import OPERATOR_TOKEN, EmulatorThread
from tests.helpers import REPO

EXIT_TIMEOUT = 60  # seconds a refused start may take at most (imports included); it never takes this long


def run(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "codepilot_operator.cli", "run", *args],
        capture_output=True,
        text=True,
        cwd=REPO,
        env=env or {**os.environ},
        timeout=EXIT_TIMEOUT,
    )


def assert_one_line_error(result: subprocess.CompletedProcess[str], *needles: str) -> None:
    assert result.returncode == 2, (result.returncode, result.stderr[-2000:])
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in result.stderr, result.stderr[-2000:]
    for needle in needles:
        assert needle in lines[0], lines[0]


@pytest.fixture(scope="module")
def emulator() -> Iterator[EmulatorThread]:
    thread = EmulatorThread().start()
    try:
        yield thread
    finally:
        thread.stop()


@pytest.mark.parametrize(
    ("flag", "value"),
    [
        ("--drift-interval", "nan"),
        ("--drift-interval", "inf"),
        ("--drift-interval", "0"),
        ("--drift-interval", "-5"),
        ("--progress-interval", "nan"),
        ("--progress-interval", "-1"),
    ],
)
def test_intervals_that_would_never_fire_are_refused(
    emulator: EmulatorThread, tmp_path: Path, flag: str, value: str
) -> None:
    kubeconfig = emulator.kubeconfig(tmp_path / "kubeconfig")
    result = run("--kubeconfig", str(kubeconfig), "--metrics-port", "0", flag, value)
    assert result.returncode == 2, result.stderr[-2000:]
    assert f"argument {flag}: '{value}': must be" in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize(
    ("content", "problem"),
    [
        ("apiVersion: v1\nkind: Config\nclusters: [\n", "ParserError"),  # not YAML
        ("apiVersion: v1\nkind: Config\n", "KeyError: 'clusters'"),  # YAML, but not a kubeconfig
        (
            yaml.safe_dump({"clusters": [], "contexts": [], "current-context": "gone"}),
            "Context 'gone' not found",
        ),
    ],
)
def test_broken_kubeconfig_exits_with_one_line(tmp_path: Path, content: str, problem: str) -> None:
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(content)
    result = run("--kubeconfig", str(kubeconfig), "--metrics-port", str(free_port()))
    assert_one_line_error(
        result, f"--kubeconfig {kubeconfig}: not a usable Kubernetes configuration", problem
    )


def test_no_kubeconfig_and_no_service_account_exits_with_one_line(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k != "KUBECONFIG"}
    result = run("--metrics-port", "0", env={**env, "HOME": str(tmp_path)})
    assert_one_line_error(result, "no Kubernetes connection", "no service account token", "no kubeconfig")


def test_busy_metrics_port_exits_with_one_line(emulator: EmulatorThread, tmp_path: Path) -> None:
    kubeconfig = emulator.kubeconfig(tmp_path / "kubeconfig")
    with socket.create_server(("127.0.0.1", 0)) as busy:
        port = busy.getsockname()[1]
        result = run(
            "--kubeconfig", str(kubeconfig), "--metrics-host", "127.0.0.1", "--metrics-port", str(port)
        )
    assert_one_line_error(result, f"--metrics-port {port}: cannot listen on 127.0.0.1")


def probe(port: int, path: str) -> tuple[int, str] | None:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as resp:
            return int(resp.status), resp.read().decode()
    except urllib.error.HTTPError as exc:
        return int(exc.code), exc.read().decode()
    except OSError:
        return None


def test_ready_only_once_the_api_server_answers(tmp_path: Path) -> None:
    api_port, metrics_port = free_port(), free_port()
    # The kubeconfig names an API server that is not there yet (a control plane still starting).
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(
        yaml.safe_dump(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "clusters": [{"name": "later", "cluster": {"server": f"http://127.0.0.1:{api_port}"}}],
                "users": [{"name": "operator", "user": {"token": OPERATOR_TOKEN}}],
                "contexts": [{"name": "later", "context": {"cluster": "later", "user": "operator"}}],
                "current-context": "later",
            }
        )
    )
    log = (tmp_path / "operator.log").open("wb")
    cmd = [sys.executable, "-m", "codepilot_operator.cli", "run", "--kubeconfig", str(kubeconfig)]
    cmd += ["--no-weight-snapshots", "--metrics-host", "127.0.0.1", "--metrics-port", str(metrics_port)]
    proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, cwd=REPO)
    emulator: EmulatorThread | None = None
    try:
        live = wait_for("/healthz", lambda: (p := probe(metrics_port, "/healthz")) and p[0] == 200 and p)
        assert live[1].strip() == "ok"
        ready = probe(metrics_port, "/readyz")
        assert ready is not None and ready[0] == 503, ready
        assert "no answer from the Kubernetes API" in ready[1]

        emulator = EmulatorThread(port=api_port).start()
        wait_for(
            "/readyz 200 once the API answers", lambda: (p := probe(metrics_port, "/readyz")) and p[0] == 200
        )
        assert probe(metrics_port, "/healthz") == (200, "ok\n")
        assert proc.poll() is None
    finally:
        proc.terminate()
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()
        if emulator is not None:
            emulator.stop()
