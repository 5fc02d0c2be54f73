"""``codepilot fetch`` against a real S3 server: verified parallel download, 0-byte re-fetch, reuse of
an older snapshot's files, corruption caught with no complete-looking directory, resume after the
server was killed mid-fetch, and one-line errors with distinct exit codes from the real entrypoint."""

from __future__ import annotations

import fcntl
import hashlib
import io
import os
import shutil
import subprocess
import threading
from datetime import UTC, datetime
from pathlib import Path

import pytest

from codepilot_operator.loader import parse_codepilot
from codepilot_operator.snapshots.errors import FailureReason, SnapshotError
from codepilot_operator.snapshots.fetcher import MARKER, Fetcher, FetchResult, plan_snapshot, read_marker
from codepilot_operator.snapshots.service import Credentials, ensure_snapshot, location_for, store_for
from codepilot_operator.snapshots.store import SnapshotRef, SnapshotStore
from tests.fixtures.s3 import SeaweedFS, codepilot_doc, minio_client, upload
from tests.fixtures.volume import SmallVolume

CHUNK = 256 * 1024  # small chunks, so a few MiB exercise the ranged, journalled path


def _files(seed: int = 0) -> dict[str, bytes]:
    big = hashlib.sha256(f"weights-{seed}".encode()).digest() * (
        3 * 1024 * 1024 // 32 + 7
    )  # ~3 MiB, odd tail
    files = {"model.safetensors": big, "config.json": b'{"arch": "starcoder"}', "empty.txt": b""}
    files["shard.part-00001.partial"] = b"names like our temp files are still just files" * 50
    files.update({f"tokenizer/part-{i:02d}.txt": f"token-{i}\n".encode() * 300 for i in range(12)})
    return files


def _snapshot(
    server: SeaweedFS, bucket: str, files: dict[str, bytes], prefix: str = "m/v1"
) -> tuple[SnapshotStore, SnapshotRef]:
    upload(minio_client(server), bucket, prefix, files)
    cp = parse_codepilot(codepilot_doc(bucket, prefix, server.endpoint))
    store = store_for(cp, Credentials(server.access_key, server.secret_key))
    return store, ensure_snapshot(store, cp, now=datetime.now(UTC))


def _fetch(store: SnapshotStore, snapshot_id: str, dest: Path, **kwargs: object) -> FetchResult:
    fetcher = Fetcher(store.client, chunk_size=CHUNK, workers=4, progress=False, **kwargs)  # type: ignore[arg-type]
    return fetcher.fetch(plan_snapshot(store.client, store.location, snapshot_id), dest)


def _tree(root: Path) -> dict[str, bytes]:
    return {
        p.relative_to(root).as_posix(): p.read_bytes()
        for p in root.rglob("*")
        if p.is_file() and p.name != MARKER
    }


def _complete_looking(root: Path) -> list[Path]:
    return [p for p in root.rglob(MARKER)]


def test_fetch_verifies_and_refetch_transfers_nothing(
    s3_server: SeaweedFS, s3_bucket: str, tmp_path: Path
) -> None:
    files = _files()
    store, ref = _snapshot(s3_server, s3_bucket, files)
    dest = tmp_path / "models" / "coder" / "1"

    first = _fetch(store, ref.id, dest)
    assert _tree(dest) == files
    assert first.downloaded_bytes == ref.size_bytes and first.files_downloaded == len(files)
    assert read_marker(dest)["identity"] == ref.id  # type: ignore[index]
    assert sorted(p.name for p in dest.parent.iterdir()) == ["1"]  # no staging left behind

    again = _fetch(store, ref.id, dest)
    assert again.downloaded_bytes == 0 and again.already_complete

    (dest / "config.json").write_bytes(b"{}")  # changed on disk: --verify-local notices, re-fetches
    repaired = _fetch(store, ref.id, dest, verify_local=True)
    assert _tree(dest) == files and repaired.downloaded_bytes == len(files["config.json"])


def test_files_of_the_previous_snapshot_are_not_downloaded_again(
    s3_server: SeaweedFS, s3_bucket: str, tmp_path: Path
) -> None:
    v1_files = _files()
    v2_files = {**v1_files, "config.json": b'{"arch": "starcoder2"}', "extra.bin": b"x" * 5000}
    store, v1 = _snapshot(s3_server, s3_bucket, v1_files, "m/v1")
    _, v2 = _snapshot(s3_server, s3_bucket, v2_files, "m/v2")
    dest = tmp_path / "1"
    _fetch(store, v1.id, dest)

    result = _fetch(store, v2.id, dest)
    assert _tree(dest) == v2_files
    assert result.downloaded_bytes == len(v2_files["config.json"]) + 5000
    assert result.files_reused == len(v1_files) - 1


def test_corrupted_object_fails_without_a_complete_looking_dir(
    s3_server: SeaweedFS, s3_bucket: str, tmp_path: Path
) -> None:
    files = _files(seed=1)
    store, ref = _snapshot(s3_server, s3_bucket, files)
    client = minio_client(s3_server)
    for name in ("model.safetensors", "config.json"):  # one ranged, one whole-object download
        rotten = bytearray(files[name])
        rotten[len(rotten) // 2] ^= 0x01
        key = store.location.blob_key(hashlib.sha256(files[name]).hexdigest())
        client.put_object(s3_bucket, key, io.BytesIO(bytes(rotten)), len(rotten))

    dest = tmp_path / "models" / "1"
    with pytest.raises(SnapshotError) as excinfo:
        _fetch(store, ref.id, dest)
    assert excinfo.value.reason is FailureReason.CHECKSUM_MISMATCH
    assert not dest.exists() and _complete_looking(tmp_path) == []

    with pytest.raises(SnapshotError):  # a retry fails the same way: nothing bad was kept as verified
        _fetch(store, ref.id, dest)
    assert not dest.exists() and _complete_looking(tmp_path) == []


def test_server_killed_mid_fetch_then_resume_completes(s3_server_killable: SeaweedFS, tmp_path: Path) -> None:
    server = s3_server_killable
    minio_client(server).make_bucket("resume")
    big = {f"shard-{i}.bin": hashlib.sha256(bytes([i])).digest() * (2 * 1024 * 1024 // 32) for i in range(3)}
    files = {**big, **{f"small/{i}.txt": f"{i}".encode() * 100 for i in range(20)}}
    store, ref = _snapshot(server, "resume", files)
    dest = tmp_path / "1"
    seen = 0
    lock = threading.Lock()  # called from the fetch threads

    def kill_halfway(nbytes: int) -> None:
        nonlocal seen
        with lock:
            seen += nbytes
            if seen >= ref.size_bytes // 2 and server.process is not None:
                server.kill()

    with pytest.raises(SnapshotError) as excinfo:
        Fetcher(store.client, chunk_size=CHUNK, workers=2, progress=False, on_bytes=kill_halfway).fetch(
            plan_snapshot(store.client, store.location, ref.id), dest
        )
    assert excinfo.value.reason is FailureReason.ENDPOINT_UNREACHABLE
    assert not dest.exists() and _complete_looking(tmp_path) == []

    server.start()
    resumed = _fetch(store, ref.id, dest)
    assert _tree(dest) == files
    assert resumed.downloaded_bytes < ref.size_bytes - ref.size_bytes // 4  # the first half was kept


class _Interrupted(Exception):
    """Stands for the kill of an init container at a chosen point of the fetch."""


def _interrupt_when(store: SnapshotStore, ref: SnapshotRef, dest: Path, staged: str) -> Path:
    """Fetch with one worker (files in a fixed order) until ``staged`` is verified in the staging dir."""
    staging = dest.with_name(f".{dest.name}.partial")

    def stop(nbytes: int) -> None:
        if (staging / staged).exists():
            raise _Interrupted

    fetcher = Fetcher(store.client, chunk_size=CHUNK, workers=1, progress=False, on_bytes=stop)
    with pytest.raises(_Interrupted):
        fetcher.fetch(plan_snapshot(store.client, store.location, ref.id), dest)
    return staging


def _flip_byte(path: Path, offset: int) -> None:
    """Change one byte in place: same size, same inode (what size-only trust cannot see)."""
    with path.open("r+b") as handle:
        handle.seek(offset)
        byte = handle.read(1)
        handle.seek(offset)
        handle.write(bytes([byte[0] ^ 0x01]))


def test_resume_re_verifies_staged_files_changed_since_they_were_verified(
    s3_server: SeaweedFS, s3_bucket: str, tmp_path: Path
) -> None:
    files = _files(seed=4)
    store, ref = _snapshot(s3_server, s3_bucket, files)
    dest = tmp_path / "1"
    # One worker: the large file first, then the small ones by size; stop once two small files are in.
    staging = _interrupt_when(store, ref, dest, "tokenizer/part-11.txt")
    verified = ["model.safetensors", "tokenizer/part-10.txt", "tokenizer/part-11.txt"]
    assert all((staging / name).is_file() for name in verified) and not dest.exists()

    _flip_byte(staging / "model.safetensors", 1_000_000)  # a torn or tampered staging directory
    _flip_byte(staging / "tokenizer/part-10.txt", 7)
    resumed = _fetch(store, ref.id, dest)  # no verify_local: the fetch itself must not trust them

    assert _tree(dest) == files
    changed = len(files["model.safetensors"]) + len(files["tokenizer/part-10.txt"])
    assert resumed.downloaded_bytes >= changed  # both were fetched again, not published as they were
    assert resumed.files_reused >= 1  # what was unchanged (or re-hashed and found whole) was kept


def test_completed_destination_changed_on_disk_is_repaired_on_refetch(
    s3_server: SeaweedFS, s3_bucket: str, tmp_path: Path
) -> None:
    files = _files(seed=5)
    store, ref = _snapshot(s3_server, s3_bucket, files)
    dest = tmp_path / "1"
    _fetch(store, ref.id, dest)

    _flip_byte(dest / "model.safetensors", 5)  # someone wrote into the served directory
    again = _fetch(store, ref.id, dest)
    assert _tree(dest) == files
    assert again.downloaded_bytes == len(files["model.safetensors"])  # the rest is linked, not fetched

    untouched = _fetch(store, ref.id, dest)
    assert untouched.already_complete  # the repaired directory is trusted again: 0 bytes, no re-hash


def test_a_changed_file_of_the_previous_snapshot_is_not_reused(
    s3_server: SeaweedFS, s3_bucket: str, tmp_path: Path
) -> None:
    v1_files = _files(seed=6)
    v2_files = {**v1_files, "config.json": b'{"arch": "starcoder2"}'}
    store, v1 = _snapshot(s3_server, s3_bucket, v1_files, "m/v1")
    _, v2 = _snapshot(s3_server, s3_bucket, v2_files, "m/v2")
    dest = tmp_path / "1"
    _fetch(store, v1.id, dest)
    _flip_byte(dest / "tokenizer/part-03.txt", 3)

    result = _fetch(store, v2.id, dest)
    assert _tree(dest) == v2_files
    assert result.files_reused == len(v2_files) - 2  # neither the new config nor the changed file


def test_a_second_fetch_into_the_same_destination_is_refused_while_one_runs(
    s3_server: SeaweedFS, s3_bucket: str, tmp_path: Path
) -> None:
    files = _files(seed=7)
    store, ref = _snapshot(s3_server, s3_bucket, files)
    dest = tmp_path / "1"
    second: list[SnapshotError | FetchResult] = []
    once = threading.Lock()

    def start_another(nbytes: int) -> None:  # runs inside the first fetch, while it downloads
        if once.acquire(blocking=False):
            try:
                second.append(_fetch(store, ref.id, dest))
            except SnapshotError as exc:
                second.append(exc)

    first = Fetcher(store.client, chunk_size=CHUNK, workers=4, progress=False, on_bytes=start_another)
    result = first.fetch(plan_snapshot(store.client, store.location, ref.id), dest)

    assert result.downloaded_bytes == ref.size_bytes and _tree(dest) == files
    assert len(second) == 1 and isinstance(second[0], SnapshotError)
    assert second[0].reason is FailureReason.FETCH_IN_PROGRESS
    assert str(second[0]) == f"FetchInProgress: another fetch is running in {dest}"


def test_disk_full_names_the_path_and_leaves_no_partial_download(
    s3_server: SeaweedFS, s3_bucket: str, small_volume: SmallVolume
) -> None:
    files = {"model.safetensors": os.urandom(3 * 1024 * 1024), "config.json": b"{}"}
    store, ref = _snapshot(s3_server, s3_bucket, files)
    dest = small_volume.path / "coder" / "1"
    before = small_volume.used_bytes()
    filler = small_volume.path / "other-tenant.bin"

    def fill_the_disk(nbytes: int) -> None:  # another writer takes the space while the fetch runs
        if not filler.exists():
            filler.write_bytes(b"\0" * (small_volume.free_bytes() - 256 * 1024))

    fetcher = Fetcher(store.client, chunk_size=CHUNK, workers=2, progress=False, on_bytes=fill_the_disk)
    with pytest.raises(SnapshotError) as excinfo:
        fetcher.fetch(plan_snapshot(store.client, store.location, ref.id), dest)
    error = excinfo.value
    assert error.reason is FailureReason.LOCAL_IO and error.exit_code == 8
    assert "No space left on device" in str(error) and str(dest.parent / ".1.partial") in str(error)
    assert "\n" not in str(error)
    filler.unlink()
    assert not dest.exists() and not dest.with_name(".1.partial").exists()
    assert small_volume.used_bytes() <= before + 64 * 1024  # the staged bytes were given back

    # Too small from the start: refused before a byte is downloaded, the same way, from the CLI.
    big = {"weights.bin": os.urandom(5 * 1024 * 1024)}
    _, too_big = _snapshot(s3_server, s3_bucket, big, "m/big")
    cli = _cli(["fetch", "--snapshot", too_big.uri, "--dest", str(dest), "--no-progress"], s3_server.env)
    lines = cli.stderr.strip().splitlines()
    assert (cli.returncode, len(lines)) == (8, 1), cli.stderr
    assert lines[0].startswith("error: LocalIOError: ") and str(dest.parent) in lines[0]
    assert "5.0 MiB" in lines[0]  # how much the snapshot needs
    assert not dest.exists() and not dest.with_name(".1.partial").exists()


def _cli(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "S3_"))}
    return subprocess.run(
        [shutil.which("codepilot") or "codepilot", *args],  # the init container's entrypoint
        env={**clean, **env},
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_cli_fetch_exit_codes_and_one_line_errors(
    s3_server: SeaweedFS, s3_bucket: str, tmp_path: Path
) -> None:
    files = _files(seed=2)
    _, ref = _snapshot(s3_server, s3_bucket, files)
    dest = tmp_path / "1"
    args = ["fetch", "--snapshot", ref.uri, "--dest", str(dest), "--chunk-size", "1"]

    ok = _cli(args, s3_server.env)
    assert ok.returncode == 0, ok.stderr
    assert _tree(dest) == files and "fetch:" in ok.stderr  # progress/summary on stderr
    again = _cli(args, s3_server.env)
    assert again.returncode == 0 and "0 B downloaded" in again.stderr

    other = tmp_path / "other"
    busy = tmp_path / "busy"
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "keep.txt").write_text("not ours")
    cases = [
        ({**s3_server.env, "AWS_SECRET_ACCESS_KEY": "wrong"}, args, 5, "AccessDenied"),
        ({**s3_server.env, "AWS_SESSION_TOKEN": "never-issued"}, args, 5, "AccessDenied"),
        ({**s3_server.env, "S3_ENDPOINT": "http://127.0.0.1:9"}, args, 6, "EndpointUnreachable"),
        (
            s3_server.env,
            ["fetch", "--snapshot", ref.uri.replace(ref.id, "0" * 64), "--dest", str(other)],
            4,
            "ObjectMissing",
        ),
        (
            s3_server.env,
            ["fetch", "--snapshot", ref.uri.replace(s3_bucket, "nope-bucket"), "--dest", str(other)],
            4,
            "BucketMissing",
        ),
        ({}, args, 2, "S3_ENDPOINT"),
        (
            s3_server.env,
            ["fetch", "--snapshot", ref.uri, "--dest", str(foreign)],
            8,
            "not written by codepilot",
        ),
        (
            s3_server.env,
            ["fetch", "--snapshot", "s3://b/not-an-id", "--dest", str(other)],
            2,
            "not a snapshot URI",
        ),
        (
            s3_server.env,
            ["fetch", "--snapshot", ref.uri, "--dest", "/"],
            2,
            "destination / is the filesystem",
        ),
        (
            s3_server.env,
            ["fetch", "--snapshot", ref.uri, "--dest", str(busy)],
            9,
            f"FetchInProgress: another fetch is running in {busy}",
        ),
    ]
    for bad in ("inf", "nan", "-1", "0", "1e300"):
        cases.append(({**s3_server.env, "S3_CONNECT_TIMEOUT": bad}, args, 2, "S3_CONNECT_TIMEOUT"))
    cases.append(({**s3_server.env, "S3_READ_TIMEOUT": "inf"}, args, 2, "S3_READ_TIMEOUT"))
    # A running fetch holds the lock beside its destination (the documented lock file).
    with (tmp_path / ".busy.lock").open("w") as held:
        fcntl.flock(held, fcntl.LOCK_EX)
        for env, argv, code, text in cases:
            result = _cli(argv, env)
            lines = result.stderr.strip().splitlines()
            assert (result.returncode, len(lines)) == (code, 1), (argv, env, result.stderr)
            assert lines[0].startswith("error: ") and text in lines[0] and "Traceback" not in result.stderr
    assert not other.exists() and not busy.exists() and (foreign / "keep.txt").read_text() == "not ours"


def test_rendered_init_container_args_run_the_fetcher(
    s3_server: SeaweedFS, s3_bucket: str, tmp_path: Path
) -> None:
    """The contract end to end: the args render/fetcher.py puts in the pod fetch the pinned snapshot."""
    from codepilot_operator.render.fetcher import fetch_args, fetch_env
    from codepilot_operator.render.served import served_versions

    files = _files(seed=3)
    _, ref = _snapshot(s3_server, s3_bucket, files)
    status = {"stableVersion": "v1", "stableSnapshot": {"version": "v1", "snapshotId": ref.id}}
    cp = parse_codepilot(codepilot_doc(s3_bucket, "m/v1", s3_server.endpoint, status=status))
    assert location_for(cp).uri(ref.id) == ref.uri
    args = fetch_args(cp, served_versions(cp)[0])
    assert ref.uri in args
    env = {e["name"]: e["value"] for e in fetch_env(cp) if "value" in e}
    dest = tmp_path / "models"
    args = [a if not a.startswith("/models") else str(dest / a.removeprefix("/models/")) for a in args]
    result = _cli([*args, "--no-progress"], {**env, **s3_server.env})
    assert result.returncode == 0, result.stderr
    weights = dest / "coder" / "1"
    assert _tree(weights) == files
