"""``codepilot snapshot ...`` for scripts and for people against a real S3 server: ``-o json`` on every
table, and snapshot IDs given by an unambiguous prefix, as git takes commits. Run as a process."""

from __future__ import annotations

import fcntl
import hashlib
import itertools
import json
import os
import pty
import struct
import subprocess
import sys
import termios
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml

from codepilot_operator.snapshots.manifest import FileEntry, Manifest
from tests.fixtures.s3 import SeaweedFS, codepilot_doc, minio_client, upload
from tests.helpers import REPO

FILES = {"model.bin": b"\x01" * 300_000, "config.json": b"{}"}


def cli(server: SeaweedFS, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "codepilot_operator.cli", *args],
        capture_output=True,
        text=True,
        cwd=REPO,
        env={**os.environ, **server.env},
        timeout=120,
    )


def _manifest(tmp_path: Path, doc: dict[str, Any], name: str = "cp.yaml") -> str:
    path = tmp_path / name
    path.write_text(yaml.safe_dump(doc), encoding="utf-8")
    return str(path)


def _json(result: subprocess.CompletedProcess[str]) -> Any:
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def test_every_snapshot_table_has_a_json_form(s3_server: SeaweedFS, s3_bucket: str, tmp_path: Path) -> None:
    upload(minio_client(s3_server), s3_bucket, "m/v1", FILES)
    cp = _manifest(tmp_path, codepilot_doc(s3_bucket, "m/v1", s3_server.endpoint))

    created = _json(cli(s3_server, "snapshot", "create", cp, "-o", "json"))
    assert created["state"] == "created" and created["files"] == 2
    assert created["sizeBytes"] == sum(len(v) for v in FILES.values())
    assert created["uri"].endswith("/" + created["id"])

    (listed,) = _json(cli(s3_server, "snapshot", "list", cp, "-o", "json"))
    assert listed["id"] == created["id"] and listed["versions"] == ["v1"] and listed["pinned"] is False
    assert datetime.strptime(listed["created"], "%Y-%m-%dT%H:%M:%SZ")

    (verified,) = _json(cli(s3_server, "snapshot", "verify", cp, "-o", "json"))
    assert verified == {
        "id": created["id"],
        "result": "ok",
        "checked": "sha256",
        "sizeBytes": 300_002,
        "files": 2,
    }

    later = (datetime.now(UTC) + timedelta(days=30)).isoformat()
    gc = _json(cli(s3_server, "snapshot", "gc", cp, "--keep", "0", "--now", later, "--dry-run", "-o", "json"))
    assert gc == {"dryRun": True, "kept": [], "deleted": [created["id"]], "blobsDeleted": 0, "bytesFreed": 0}


def _colliding_contents() -> tuple[bytes, bytes]:
    """Two model files whose snapshots' IDs share their first 4 hex digits (a birthday search)."""
    seen: dict[str, bytes] = {}
    for i in itertools.count():
        data = b"weights %d" % i
        entries = [FileEntry("model.bin", len(data), hashlib.sha256(data).hexdigest())]
        prefix = Manifest.of(entries).id[:4]
        if prefix in seen:
            return seen[prefix], data
        seen[prefix] = data
    raise AssertionError("unreachable")


def test_snapshot_ids_by_unambiguous_prefix(s3_server: SeaweedFS, s3_bucket: str, tmp_path: Path) -> None:
    first, second = _colliding_contents()
    client = minio_client(s3_server)
    upload(client, s3_bucket, "m/v1", {"model.bin": first})
    upload(client, s3_bucket, "m/v2", {"model.bin": second})
    ids = []
    for version in ("v1", "v2"):
        doc = codepilot_doc(s3_bucket, f"m/{version}", s3_server.endpoint, version=version)
        ids.append(_json(cli(s3_server, "snapshot", "create", _manifest(tmp_path, doc), "-o", "json"))["id"])
    assert ids[0][:4] == ids[1][:4] and ids[0] != ids[1]
    cp = _manifest(tmp_path, codepilot_doc(s3_bucket, "m/v1", s3_server.endpoint))
    common = next(ids[0][:n] for n in range(64, 0, -1) if ids[1].startswith(ids[0][:n]))
    unique = ids[0][: len(common) + 1]

    (verified,) = _json(cli(s3_server, "snapshot", "verify", cp, unique, "-o", "json"))
    assert verified["id"] == ids[0] and verified["result"] == "ok"

    result = cli(s3_server, "snapshot", "verify", cp, common)
    assert result.returncode == 2 and result.stdout == ""
    shown = ", ".join(sorted(i[: len(common) + 8] for i in ids))
    assert result.stderr == f"error: snapshot ID prefix {common!r} is ambiguous: {shown}\n"

    result = cli(s3_server, "snapshot", "verify", cp, "ffff" if not ids[0].startswith("ffff") else "eeee")
    assert result.returncode == 4 and result.stdout == ""
    assert result.stderr.startswith("error: InvalidSnapshot: no snapshot ID starts with ")

    later = (datetime.now(UTC) + timedelta(days=30)).isoformat()
    gc = cli(s3_server, "snapshot", "gc", cp, "--keep", "0", "--now", later, "--pin", unique, "--dry-run")
    assert gc.returncode == 0, gc.stderr
    rows = {line.split()[0]: line for line in gc.stdout.splitlines()[1:]}
    assert "keep" in rows[ids[0]] and "pinned" in rows[ids[0]] and "would delete" in rows[ids[1]]


@pytest.mark.parametrize("command", ["list", "create", "verify", "gc"])
def test_snapshot_commands_refuse_an_unknown_format(
    s3_server: SeaweedFS, tmp_path: Path, command: str
) -> None:
    result = cli(s3_server, "snapshot", command, "cp.yaml", "-o", "xml")
    assert result.returncode == 2 and result.stdout == ""
    assert "argument -o/--output: invalid choice: 'xml'" in result.stderr


def test_snapshot_create_is_quiet_in_scripts_and_shows_each_step_when_asked(
    s3_server: SeaweedFS, s3_bucket: str, tmp_path: Path
) -> None:
    client = minio_client(s3_server)
    upload(client, s3_bucket, "m/v1", FILES)
    upload(client, s3_bucket, "m/v2", {**FILES, "extra.bin": b"\x03" * 1000})
    quiet = cli(
        s3_server,
        "snapshot",
        "create",
        _manifest(tmp_path, codepilot_doc(s3_bucket, "m/v1", s3_server.endpoint)),
    )
    assert quiet.returncode == 0 and quiet.stderr == ""  # stderr is a pipe here: no progress unasked

    doc = codepilot_doc(s3_bucket, "m/v2", s3_server.endpoint, version="v2")
    asked = cli(s3_server, "snapshot", "create", _manifest(tmp_path, doc), "--progress")
    assert asked.returncode == 0, asked.stderr
    lines = asked.stderr.splitlines()
    for step in ("snapshot: hash", "snapshot: server-side copy"):
        (last,) = [line for line in lines if line.startswith(step + ":")][-1:]
        assert last.startswith(f"{step}: 100% 294k/294k [") and last.endswith("B/s], 3/3 files"), last
    assert "\r" not in asked.stderr


def test_snapshot_create_draws_bars_on_a_terminal(
    s3_server: SeaweedFS, s3_bucket: str, tmp_path: Path
) -> None:
    """stderr on a pseudo-terminal, as in an interactive shell: tqdm's bars, no flag needed."""
    upload(minio_client(s3_server), s3_bucket, "m/v1", FILES)
    cp = _manifest(tmp_path, codepilot_doc(s3_bucket, "m/v1", s3_server.endpoint))
    leader, follower = pty.openpty()
    fcntl.ioctl(follower, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 120, 0, 0))  # a terminal has a size
    try:
        result = subprocess.run(
            [sys.executable, "-m", "codepilot_operator.cli", "snapshot", "create", cp, "-o", "json"],
            stdout=subprocess.PIPE,
            stderr=follower,
            cwd=REPO,
            env={**os.environ, **s3_server.env},
            timeout=120,
        )
        os.close(follower)
        follower = -1
        drawn = b""
        while True:
            try:
                chunk = os.read(leader, 65536)
            except OSError:  # EIO: the terminal's other side is closed and drained
                break
            if not chunk:
                break
            drawn += chunk
    finally:
        os.close(leader)
        if follower >= 0:
            os.close(follower)
    assert result.returncode == 0
    assert json.loads(result.stdout)["state"] == "created"  # stdout stays clean for scripts
    text = drawn.decode()
    assert "\r" in text and "snapshot: hash: 100%|" in text and "snapshot: server-side copy: 100%|" in text
