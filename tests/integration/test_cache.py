"""The model cache with the real fetcher and a real S3 server: the init container's rendered args run as
the kubelet would run them (``/cache`` is a directory here, the termination log a file), so what is
checked is what a pod on a shared claim would do.

- a second replica's fetcher downloads nothing and says so in its report;
- two versions keep their own snapshot directories, neither disturbs the other;
- two fetchers started at once on one claim: the second waits for the first's lock (across processes),
  then finds the snapshot complete, instead of failing or downloading it again.
"""

from __future__ import annotations

import os
import selectors
import shutil
import subprocess
import threading
from pathlib import Path
from typing import Any

from codepilot_operator.api.contract import FetchReport
from codepilot_operator.loader import parse_codepilot
from codepilot_operator.render.fetcher import CACHE_DIR, TERMINATION_LOG, fetch_args, fetch_env
from codepilot_operator.render.served import served_versions
from codepilot_operator.snapshots.fetcher import Fetcher, plan_snapshot
from codepilot_operator.snapshots.store import SnapshotRef
from tests.fixtures.s3 import SeaweedFS, codepilot_doc
from tests.integration.test_fetch import CHUNK, _cli, _files, _snapshot, _tree


def _cached_codepilot(server: SeaweedFS, bucket: str, ref: SnapshotRef, version: str = "v1") -> Any:
    status = {"stableVersion": version, "stableSnapshot": {"version": version, "snapshotId": ref.id}}
    doc = codepilot_doc(bucket, f"m/{version}", server.endpoint, version=version, status=status)
    doc["spec"]["model"]["cache"] = {"claimName": "model-cache"}
    return parse_codepilot(doc)


def _pod_args(cp: Any, cache: Path, termination_log: Path) -> list[str]:
    """The init container's args with the pod's paths moved to where they are on this machine."""
    moved = []
    for arg in fetch_args(cp, served_versions(cp)[0]):
        if arg.startswith(CACHE_DIR + "/"):
            arg = str(cache / arg.removeprefix(CACHE_DIR + "/"))
        elif arg == TERMINATION_LOG:
            arg = str(termination_log)
        moved.append(arg)
    return [*moved, "--no-progress", "--chunk-size", "1"]


def _env(cp: Any, server: SeaweedFS) -> dict[str, str]:
    return {**{e["name"]: e["value"] for e in fetch_env(cp) if "value" in e}, **server.env}


def _start_replica(cp: Any, server: SeaweedFS, cache: Path, pod: Path) -> FetchReport:
    pod.mkdir()
    result = _cli(_pod_args(cp, cache, pod / "termination-log"), _env(cp, server))
    assert result.returncode == 0, result.stderr
    report = FetchReport.from_json((pod / "termination-log").read_text())
    assert report is not None
    return report


def test_a_second_replica_finds_the_weights_in_the_cache(
    s3_server: SeaweedFS, s3_bucket: str, tmp_path: Path
) -> None:
    files = _files(seed=21)
    _, ref = _snapshot(s3_server, s3_bucket, files, prefix="m/v1")
    cp = _cached_codepilot(s3_server, s3_bucket, ref)
    cache = tmp_path / "claim"

    first = _start_replica(cp, s3_server, cache, tmp_path / "pod-1")
    second = _start_replica(cp, s3_server, cache, tmp_path / "pod-2")

    assert (first.identity, first.downloaded_bytes, first.reused_bytes) == (ref.id, ref.size_bytes, 0)
    assert (second.identity, second.downloaded_bytes, second.reused_bytes) == (ref.id, 0, ref.size_bytes)
    # What Triton mounts (subPath snapshots/<id>, read-only) holds exactly the snapshot's files.
    assert _tree(cache / "snapshots" / ref.id) == files
    assert sorted(p.name for p in (cache / "snapshots").iterdir()) == [ref.id]  # no lock, no staging left


def test_two_versions_keep_their_own_snapshot_directories(
    s3_server: SeaweedFS, s3_bucket: str, tmp_path: Path
) -> None:
    v1_files, v2_files = _files(seed=22), _files(seed=23)
    _, v1 = _snapshot(s3_server, s3_bucket, v1_files, prefix="m/v1")
    _, v2 = _snapshot(s3_server, s3_bucket, v2_files, prefix="m/v2")
    cache = tmp_path / "claim"
    cp1 = _cached_codepilot(s3_server, s3_bucket, v1, "v1")
    cp2 = _cached_codepilot(s3_server, s3_bucket, v2, "v2")

    _start_replica(cp1, s3_server, cache, tmp_path / "v1-pod-1")
    v1_dir = cache / "snapshots" / v1.id
    before = {p: (p.stat().st_ino, p.stat().st_ctime_ns) for p in v1_dir.rglob("*") if p.is_file()}
    canary = _start_replica(cp2, s3_server, cache, tmp_path / "v2-pod-1")
    again = _start_replica(cp1, s3_server, cache, tmp_path / "v1-pod-2")

    assert canary.downloaded_bytes == v2.size_bytes and again.downloaded_bytes == 0
    assert _tree(v1_dir) == v1_files and _tree(cache / "snapshots" / v2.id) == v2_files
    after = {p: (p.stat().st_ino, p.stat().st_ctime_ns) for p in v1_dir.rglob("*") if p.is_file()}
    assert after == before  # the serving version's files were not touched, not even relinked


def _read_line(process: subprocess.Popen[str], timeout: float) -> str:
    """One line of the process's stderr, or '' if none came within ``timeout`` seconds."""
    assert process.stderr is not None
    with selectors.DefaultSelector() as selector:
        selector.register(process.stderr, selectors.EVENT_READ)
        if not selector.select(timeout):
            return ""
    return process.stderr.readline()


def test_replicas_starting_together_share_one_download(
    s3_server: SeaweedFS, s3_bucket: str, tmp_path: Path
) -> None:
    files = _files(seed=24)
    store, ref = _snapshot(s3_server, s3_bucket, files, prefix="m/v1")
    cp = _cached_codepilot(s3_server, s3_bucket, ref)
    cache = tmp_path / "claim"
    pod_2 = tmp_path / "pod-2"
    pod_2.mkdir()
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "S3_"))}
    started: list[subprocess.Popen[str]] = []
    waiting: list[str] = []
    once = threading.Lock()  # the callback runs on every download thread of the first replica

    def start_the_second_replica(nbytes: int) -> None:
        """Runs inside the first replica's download, while it holds the lock on the claim."""
        if not once.acquire(blocking=False):
            return
        argv = [shutil.which("codepilot") or "codepilot", *_pod_args(cp, cache, pod_2 / "termination-log")]
        second = subprocess.Popen(
            argv, env={**clean, **_env(cp, s3_server)}, stderr=subprocess.PIPE, text=True
        )
        started.append(second)
        waiting.append(_read_line(second, timeout=60))  # the first replica goes on once it is waiting

    dest = cache / "snapshots" / ref.id
    first = Fetcher(
        store.client, chunk_size=CHUNK, workers=4, progress=False, on_bytes=start_the_second_replica
    )
    result = first.fetch(plan_snapshot(store.client, store.location, ref.id), dest)
    (second,) = started
    _, rest = second.communicate(timeout=120)

    assert "another fetch is writing" in waiting[0] and "waiting for it" in waiting[0], (waiting, rest)
    assert second.returncode == 0, rest
    assert result.downloaded_bytes == ref.size_bytes
    report = FetchReport.from_json((pod_2 / "termination-log").read_text())
    assert report is not None and (report.downloaded_bytes, report.reused_bytes) == (0, ref.size_bytes)
    assert _tree(dest) == files


def test_a_report_that_cannot_be_written_does_not_fail_the_pod(
    s3_server: SeaweedFS, s3_bucket: str, tmp_path: Path
) -> None:
    """The weights are in place and verified: Triton must start even if the termination log is not
    writable; the fetcher says so in one line."""
    files = _files(seed=26)
    _, ref = _snapshot(s3_server, s3_bucket, files, prefix="m/v1")
    cp = _cached_codepilot(s3_server, s3_bucket, ref)
    cache = tmp_path / "claim"
    unwritable = tmp_path / "no-such-dir" / "termination-log"

    result = _cli(_pod_args(cp, cache, unwritable), _env(cp, s3_server))

    assert result.returncode == 0, result.stderr
    warnings = [line for line in result.stderr.splitlines() if "warning" in line]
    assert len(warnings) == 1 and str(unwritable) in warnings[0]
    assert _tree(cache / "snapshots" / ref.id) == files
