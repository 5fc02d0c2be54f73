"""`codepilot run` as a process: a start that cannot work ends at once with one line."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.fixtures.kube import EmulatorThread
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
