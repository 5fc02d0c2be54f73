"""``codepilot snapshot create|list|verify|gc`` against a real S3 server.

Tables on stdout, exit codes, one-line errors on stderr."""

from __future__ import annotations

import hashlib
import io
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml

from codepilot_operator.cli import main
from tests.fixtures.s3 import SeaweedFS, codepilot_doc, minio_client, upload

FILES = {"model.bin": b"\x01" * 300_000, "config.json": b"{}"}


@pytest.fixture
def cli_env(s3_server: SeaweedFS, monkeypatch: pytest.MonkeyPatch) -> SeaweedFS:
    for name, value in s3_server.env.items():
        monkeypatch.setenv(name, value)
    return s3_server


def _manifest(tmp_path: Path, doc: dict[str, Any]) -> str:
    path = tmp_path / "cp.yaml"
    path.write_text(yaml.safe_dump(doc), encoding="utf-8")
    return str(path)


def _run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_create_list_verify_gc(
    cli_env: SeaweedFS, s3_bucket: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    upload(minio_client(cli_env), s3_bucket, "m/v1", FILES)
    cp = _manifest(tmp_path, codepilot_doc(s3_bucket, "m/v1", cli_env.endpoint))

    code, out, _ = _run(capsys, "snapshot", "create", cp, "--no-progress")
    assert code == 0
    header, row = out.splitlines()
    assert header.split() == ["ID", "VERSION", "SIZE", "FILES", "STATE"]
    snapshot_id, version, *_, files, state = row.split()
    assert (version, files, state) == ("v1", "2", "created")

    code, out, _ = _run(capsys, "snapshot", "create", cp, "--no-progress")
    assert code == 0 and out.splitlines()[1].split()[0] == snapshot_id and out.rstrip().endswith("existing")

    code, out, _ = _run(capsys, "snapshot", "list", cp)
    assert code == 0
    assert out.splitlines()[0].split() == ["ID", "CREATED", "AGE", "SIZE", "FILES", "VERSIONS", "PINNED"]
    assert out.splitlines()[1].startswith(snapshot_id) and " v1" in out.splitlines()[1]

    code, out, _ = _run(capsys, "snapshot", "verify", cp, "--no-progress")
    assert code == 0 and out.splitlines()[1].split()[:2] == [snapshot_id, "ok"]

    later = (datetime.now(UTC) + timedelta(days=30)).isoformat()
    code, out, err = _run(capsys, "snapshot", "gc", cp, "--keep", "0", "--now", later, "--dry-run")
    assert code == 0 and out.splitlines()[1].split()[:3] == [snapshot_id, "would", "delete"] and err == ""

    code, out, _ = _run(capsys, "snapshot", "gc", cp, "--keep", "0", "--now", later, "--pin", snapshot_id)
    assert code == 0 and out.splitlines()[1].split()[:2] == [snapshot_id, "keep"] and "pinned" in out

    code, out, err = _run(capsys, "snapshot", "gc", cp, "--keep", "0", "--now", later)
    assert code == 0 and "deleted" in out and "1 snapshots and 2 unreferenced blobs deleted" in err
    code, out, _ = _run(capsys, "snapshot", "list", cp)
    assert code == 0 and out.splitlines()[1:] == []


def test_pins_come_from_the_status_in_the_manifest(
    cli_env: SeaweedFS, s3_bucket: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    upload(minio_client(cli_env), s3_bucket, "m/v1", FILES)
    cp = _manifest(tmp_path, codepilot_doc(s3_bucket, "m/v1", cli_env.endpoint))
    _, out, _ = _run(capsys, "snapshot", "create", cp, "--no-progress")
    snapshot_id = out.splitlines()[1].split()[0]
    status = {"stableVersion": "v1", "stableSnapshot": {"version": "v1", "snapshotId": snapshot_id}}
    pinned = _manifest(tmp_path, codepilot_doc(s3_bucket, "m/v1", cli_env.endpoint, status=status))

    later = (datetime.now(UTC) + timedelta(days=30)).isoformat()
    code, out, _ = _run(capsys, "snapshot", "gc", pinned, "--keep", "0", "--now", later)
    assert code == 0 and "pinned" in out
    _, out, _ = _run(capsys, "snapshot", "list", pinned)
    assert out.splitlines()[1].startswith(snapshot_id) and out.splitlines()[1].endswith("yes")


def test_errors_are_one_line_with_exit_codes(
    cli_env: SeaweedFS,
    s3_bucket: str,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    client = minio_client(cli_env)
    upload(client, s3_bucket, "m/v1", FILES)
    cp = _manifest(tmp_path, codepilot_doc(s3_bucket, "m/v1", cli_env.endpoint))
    _, out, _ = _run(capsys, "snapshot", "create", cp, "--no-progress")
    snapshot_id = out.splitlines()[1].split()[0]

    # Corrupt one blob in place: verify names the snapshot and the file, exit 3.
    key = f"codepilot-snapshots/team-a/coder/blobs/sha256/{hashlib.sha256(FILES['model.bin']).hexdigest()}"
    client.put_object(s3_bucket, key, io.BytesIO(b"\x02" * 300_000), 300_000)
    code, out, err = _run(capsys, "snapshot", "verify", cp, "--no-progress")
    assert code == 3 and "ChecksumMismatch" in out
    assert err.count("\n") == 1 and err.startswith(f"error: {snapshot_id}: ChecksumMismatch: model.bin")
    code, out, err = _run(capsys, "snapshot", "verify", cp, "--quick", "--no-progress")
    assert code == 0  # same size: only a deep verify can tell
    code, out, err = _run(capsys, "snapshot", "verify", cp, "not-an-id")
    assert code == 4 and err == "error: not-an-id: InvalidSnapshot: not a snapshot ID: 'not-an-id'\n"

    cases = [
        (["snapshot", "list", str(tmp_path / "missing.yaml")], 2, "no such file"),
        (["snapshot", "gc", cp, "--max-age", "seven days"], 2, "invalid duration"),
        (["snapshot", "list", cp, "--endpoint", "ftp://x"], 2, "S3 endpoint must be http(s)"),
        (["snapshot", "list", cp, "--endpoint", "http://127.0.0.1:9"], 6, "EndpointUnreachable"),
    ]
    for argv, expected, text in cases:
        code, out, err = _run(capsys, *argv)
        assert (code, out) == (expected, ""), (argv, code, err)
        assert err.count("\n") == 1 and err.startswith("error: ") and text in err, err

    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "wrong")
    code, out, err = _run(capsys, "snapshot", "list", cp)
    assert (code, out) == (5, "") and err.startswith("error: AccessDenied: ") and err.count("\n") == 1


def test_snapshot_commands_send_the_session_token_as_fetch_does(
    cli_env: SeaweedFS,
    s3_bucket: str,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Temporary credentials come as three variables; a command that drops the token signs as someone else.

    SeaweedFS checks the token it is given, so a token it never issued is refused: proof that it was sent.
    """
    upload(minio_client(cli_env), s3_bucket, "m/v1", FILES)
    cp = _manifest(tmp_path, codepilot_doc(s3_bucket, "m/v1", cli_env.endpoint))
    monkeypatch.setenv("AWS_SESSION_TOKEN", "a-token-this-server-never-issued")
    for command in ("create", "list"):
        code, out, err = _run(capsys, "snapshot", command, cp, "--no-progress")
        assert (code, out) == (5, ""), (command, err)
        assert err.startswith("error: AccessDenied: ") and err.count("\n") == 1
    monkeypatch.delenv("AWS_SESSION_TOKEN")
    code, _, err = _run(capsys, "snapshot", "create", cp, "--no-progress")
    assert code == 0, err


def test_snapshot_commands_take_the_platforms_defaults(
    cli_env: SeaweedFS, s3_bucket: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A CodePilot that names only its uri is snapshotted where the operator would put it."""
    upload(minio_client(cli_env), s3_bucket, "m/v1", FILES)
    doc = codepilot_doc(s3_bucket, "m/v1", cli_env.endpoint)
    del doc["spec"]["model"]["source"]["endpoint"]
    cp = _manifest(tmp_path, doc)
    platform = tmp_path / "platform.yaml"
    platform.write_text(
        yaml.safe_dump(
            {"defaults": {"source": {"endpoint": cli_env.endpoint, "snapshotPrefix": "platform-snaps"}}}
        )
    )

    code, out, err = _run(capsys, "snapshot", "create", cp, "--no-progress")
    assert code == 2 and out == ""
    assert err.count("\n") == 1 and "spec.model.source.endpoint: required" in err

    code, out, _ = _run(capsys, "snapshot", "create", cp, "--platform", str(platform), "--no-progress")
    assert code == 0 and out.rstrip().endswith("created")
    keys = [
        o.object_name
        for o in minio_client(cli_env).list_objects(s3_bucket, "platform-snaps/", recursive=True)
    ]
    assert any(k.endswith("/manifest.json") for k in keys), keys
