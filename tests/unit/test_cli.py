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
    assert main(["crd", "--output-file", str(target)]) == 0
    assert yaml.safe_load(target.read_text()) == yaml.safe_load(
        (REPO / "crds" / "codepilot.yaml").read_text()
    )
    assert [p.name for p in tmp_path.iterdir()] == ["crd.yaml"]  # no temp file left behind


# -- no tracebacks where the README promises none: one line, exit 2, nothing on stdout ----------------

# Root reads any mode-000 file; a sysctl file the kernel marks write-only refuses even root (EACCES).
UNREADABLE_FOR_ROOT = "/proc/sys/vm/drop_caches"


def _one_clean_error(result: subprocess.CompletedProcess[str], expected: str) -> None:
    assert "Traceback" not in result.stderr, result.stderr
    assert result.returncode == 2, result.stderr
    assert result.stdout == ""
    assert result.stderr.splitlines() == [expected], result.stderr


def test_deep_nesting_is_one_line(tmp_path: Path) -> None:
    path = write(tmp_path, "[" * 500)
    result = run("validate", str(path))
    _one_clean_error(result, f"error: {path}: line 1, column 65: invalid YAML: nested deeper than 64 levels")


def test_unreadable_file_is_one_line() -> None:
    result = run("validate", UNREADABLE_FOR_ROOT)
    _one_clean_error(result, f"error: {UNREADABLE_FOR_ROOT}: permission denied")


def test_endless_device_is_not_read_whole() -> None:
    result = run("render", "/dev/zero")
    _one_clean_error(
        result, "error: /dev/zero: larger than 3 MiB (the API server's request limit); not a CodePilot"
    )


def test_oversized_stdin_is_refused() -> None:
    result = run("validate", "-", stdin="#" * (3 * 1024 * 1024 + 1))
    _one_clean_error(
        result, "error: <stdin>: larger than 3 MiB (the API server's request limit); not a CodePilot"
    )


def test_directory_is_one_line(tmp_path: Path) -> None:
    _one_clean_error(run("validate", str(tmp_path)), f"error: {tmp_path}: is a directory")


def test_crd_into_a_missing_directory_is_one_line(tmp_path: Path) -> None:
    target = tmp_path / "missing" / "dir" / "x.yaml"
    result = run("crd", "--output-file", str(target))
    _one_clean_error(result, f"error: {target}: directory {target.parent} does not exist")
    assert not (tmp_path / "missing").exists()


def test_crd_onto_a_directory_is_one_line(tmp_path: Path) -> None:
    result = run("crd", "--output-file", str(tmp_path))
    _one_clean_error(result, f"error: {tmp_path}: is a directory")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["--max-age", "1000000000d"], "error: --max-age: must be at most 3650d"),
        (
            ["--max-age", "soon"],
            "error: --max-age: invalid duration 'soon': use e.g. 500ms, 30s, 5m, 1h30m, 7d",
        ),
        (["--keep", "-5"], "error: --keep: must be between 0 and 1000"),
        (["--keep", "five"], "error: --keep: not an integer: 'five'"),
    ],
)
def test_gc_arguments_are_checked_before_anything_runs(
    tmp_path: Path, args: list[str], expected: str
) -> None:
    path = write(tmp_path, manifest())
    # an endpoint nothing listens on: the arguments must be refused before any connection is tried
    result = run("snapshot", "gc", str(path), "--endpoint", "http://127.0.0.1:9", "--dry-run", *args)
    _one_clean_error(result, expected)


# -- crd -o writes files, never replaces what is not a regular file ----------------------------------


def test_crd_through_a_symlink_replaces_the_target_and_keeps_the_link(tmp_path: Path) -> None:
    real = tmp_path / "real.yaml"
    real.write_text("old\n")
    link = tmp_path / "link.yaml"
    link.symlink_to(real)
    assert main(["crd", "--output-file", str(link)]) == 0
    assert link.is_symlink() and link.resolve() == real
    assert yaml.safe_load(real.read_text())["kind"] == "CustomResourceDefinition"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["link.yaml", "real.yaml"]


def test_crd_keeps_the_mode_of_the_file_it_replaces(tmp_path: Path) -> None:
    target = tmp_path / "crd.yaml"
    target.write_text("old\n")
    target.chmod(0o640)
    assert main(["crd", "--output-file", str(target)]) == 0
    assert target.stat().st_mode & 0o777 == 0o640


def test_crd_into_a_pipe_writes_through_it(tmp_path: Path) -> None:
    """A FIFO (what ``-o /dev/stdout`` is in a pipeline) keeps being a FIFO and receives the CRD."""
    import os
    import stat
    import threading

    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    received: list[bytes] = []
    reader = threading.Thread(target=lambda: received.append(fifo.read_bytes()))
    reader.start()
    result = run("crd", "--output-file", str(fifo))
    reader.join(timeout=30)
    assert result.returncode == 0, result.stderr
    assert stat.S_ISFIFO(fifo.lstat().st_mode)
    assert yaml.safe_load(received[0])["kind"] == "CustomResourceDefinition"


def test_crd_to_a_full_device_keeps_the_device_and_says_so(tmp_path: Path) -> None:
    """A /dev/full twin (char device 1,7): it stays a device node, the error is one line."""
    import os
    import stat

    full = tmp_path / "full"
    os.mknod(full, stat.S_IFCHR | 0o666, os.makedev(1, 7))
    result = run("crd", "--output-file", str(full))
    _one_clean_error(result, f"error: {full}: cannot write: No space left on device")
    assert stat.S_ISCHR(full.lstat().st_mode)


# -- what untrusted input may cost: bounded memory in a real process ---------------------------------

RSS_LIMIT_MB = 200


def _peak_rss_mb(args: list[str], tmp_path: Path) -> tuple[int, str, float]:
    """Run the CLI in a child capped at 2 GiB of address space; the peak RSS of its own memory.

    The child reports VmHWM from /proc at exit: rusage's ru_maxrss would not do, Linux carries the
    forking pytest process's high-water mark over fork and exec into it.
    """
    import resource

    def cap() -> None:
        resource.setrlimit(resource.RLIMIT_AS, (2 << 30, 2 << 30))

    report = tmp_path / "vmhwm"
    launcher = (
        "import atexit, runpy, sys\n"
        "def hwm():\n"
        "    line = [l for l in open('/proc/self/status') if l.startswith('VmHWM:')][0]\n"
        f"    open({str(report)!r}, 'w').write(line.split()[1])\n"
        "atexit.register(hwm)\n"
        f"sys.argv = ['codepilot', *{args!r}]\n"
        "runpy.run_module('codepilot_operator.cli', run_name='__main__')\n"
    )
    err = tmp_path / "stderr"
    with err.open("w") as stderr:
        child = subprocess.run(
            [sys.executable, "-c", launcher],
            stdout=subprocess.DEVNULL,
            stderr=stderr,
            cwd=REPO,
            preexec_fn=cap,
            timeout=120,
            check=False,
        )
    return child.returncode, err.read_text(), int(report.read_text()) / 1024  # VmHWM is in kB


@pytest.mark.parametrize(
    "content",
    [
        pytest.param(
            "".join(
                [
                    'a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]\n',
                    *(
                        f"{n}: &{n} [{','.join(['*' + p] * 9)}]\n"
                        for p, n in zip("abcdefgh", "bcdefghi", strict=True)
                    ),
                    "kind: *i\n",
                ]
            ),
            id="billion-laughs",
        ),
        pytest.param("[" * 100_000, id="deep-nesting"),
        pytest.param("{a: " * 50_000, id="deep-mappings"),
    ],
)
def test_hostile_yaml_costs_bounded_memory(tmp_path: Path, content: str) -> None:
    path = write(tmp_path, content)
    code, stderr, rss_mb = _peak_rss_mb(["validate", str(path)], tmp_path)
    assert code == 2 and "Traceback" not in stderr, stderr
    assert len(stderr.splitlines()) == 1 and stderr.startswith(f"error: {path}: line "), stderr
    assert rss_mb < RSS_LIMIT_MB, f"peak RSS {rss_mb:.0f} MB"


def test_render_pauses_the_collector_and_restores_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Rendering runs without cyclic collections (they only rescan live objects), and the collector is
    on again afterwards, also when the command fails."""
    import gc

    from codepilot_operator.cli import offline

    seen: list[bool] = []
    real = offline.dump_yaml_stream

    def spy(objects: list[dict]) -> str:
        seen.append(gc.isenabled())
        return real(objects)

    monkeypatch.setattr(offline, "dump_yaml_stream", spy)
    assert gc.isenabled()
    assert main(["render", str(EXAMPLES[0])]) == 0
    assert seen == [False] and gc.isenabled()
    bad = tmp_path / "bad.yaml"
    bad.write_text("kind: CodePilot\n")
    assert main(["render", str(bad)]) != 0
    assert gc.isenabled()
    capsys.readouterr()
