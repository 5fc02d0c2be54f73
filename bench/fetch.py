"""Fetch throughput of a multi-file snapshot: ``codepilot fetch`` vs a plain sequential minio download.

Starts a real SeaweedFS (the test fixture's), writes a model of a few large and many small files
(>= 1 GiB by default), snapshots it the way the operator does, then downloads the same files in one run
with both methods, alternating, each into an empty directory, after one untimed warm-up read:
- baseline: ``Minio.fget_object`` for each file, one after another, no verification;
- fetcher: ``Fetcher`` (parallel ranged GETs, sha256 of every byte verified, staged and renamed).

    python3 bench/fetch.py [--large 4 --large-mib 240 --small 400 --small-kib 160] [--rounds 3]
                           [--workers 8 --chunk-mib 16]

Prints MB/s (10^6 bytes per second) of both per round, the median, and fetcher/baseline.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

from minio import Minio

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the fixture module lives in tests/

from tests.fixtures.s3 import codepilot_doc, minio_client, running_seaweedfs

from codepilot_operator.loader import parse_codepilot
from codepilot_operator.snapshots.fetcher import (
    MARKER,
    PARTIAL_META,
    Fetcher,
    FetchPlan,
    plan_snapshot,
    read_marker,
)
from codepilot_operator.snapshots.fetcher.verified import JOURNAL, VerifiedJournal
from codepilot_operator.snapshots.service import Credentials, ensure_snapshot, store_for


def generate(client: Minio, bucket: str, prefix: str, args: argparse.Namespace) -> int:
    """Random (incompressible) files; returns the total size."""
    total = 0
    sizes = [
        (f"model-{i:05d}-of-{args.large:05d}.safetensors", args.large_mib << 20) for i in range(args.large)
    ]
    sizes += [(f"tokenizer/shard-{i:04d}.json", args.small_kib << 10) for i in range(args.small)]
    block = os.urandom(8 << 20)
    for n, (name, size) in enumerate(sizes):
        # distinct content per file: a per-file header in front of a rotated random block
        data = bytearray(f"{name}\n".encode())
        offset = (n * 7919) % len(block)
        while len(data) < size:
            data += block[offset:] + block[:offset]
        payload = bytes(data[:size])
        client.put_object(bucket, f"{prefix}/{name}", io.BytesIO(payload), size, part_size=64 << 20)
        total += size
    return total


def baseline(client: Minio, bucket: str, items: list[tuple[str, str]], dest: Path) -> None:
    for path, key in items:
        client.fget_object(bucket, key, str(dest / path))


def compare(
    client: Minio,
    fetch_client: Minio,
    plan: FetchPlan,
    work: Path,
    args: argparse.Namespace,
    rounds: int,
    label: str,
) -> tuple[float, float]:
    """Alternate the two methods ``rounds`` times into empty directories; median MB/s of each."""
    total = plan.total_bytes
    items = [(item.path, item.key) for item in plan.items]
    rates: dict[str, list[float]] = {"baseline": [], "fetcher": []}
    for round_no in range(rounds):
        order = ["baseline", "fetcher"] if round_no % 2 == 0 else ["fetcher", "baseline"]
        for method in order:
            dest = work / method / "1"
            shutil.rmtree(work / method, ignore_errors=True)
            dest.parent.mkdir(parents=True)
            started = time.monotonic()
            if method == "baseline":
                dest.mkdir()
                baseline(client, plan.bucket, items, dest)
            else:
                fetcher = Fetcher(
                    fetch_client, workers=args.workers, chunk_size=args.chunk_mib << 20, progress=False
                )
                result = fetcher.fetch(plan, dest)
                assert result.downloaded_bytes == total
            seconds = time.monotonic() - started
            rates[method].append(total / seconds / 1e6)
            print(
                f"{label}, round {round_no + 1}: {method:8s} {rates[method][-1]:7.1f} MB/s ({seconds:.2f}s)"
            )
            shutil.rmtree(work / method, ignore_errors=True)
    return statistics.median(rates["baseline"]), statistics.median(rates["fetcher"])


def _killed_before_the_swap(
    fetch_client: Minio, plan: FetchPlan, dest: Path, args: argparse.Namespace
) -> None:
    """The state a fetch killed just before its swap leaves: every file verified, in staging.

    Made by fetching, then moving the result back to the staging name with its journal (a directory
    rename leaves the files' inodes and timestamps as they were, so the records still hold).
    """
    Fetcher(fetch_client, workers=args.workers, chunk_size=args.chunk_mib << 20, progress=False).fetch(
        plan, dest
    )
    marker = read_marker(dest)
    assert marker is not None
    staging = dest.with_name(f".{dest.name}.partial")
    os.rename(dest, staging)
    (staging / MARKER).unlink()
    (staging / PARTIAL_META).write_text(json.dumps({"identity": plan.identity}), encoding="utf-8")
    lines = [json.dumps(entry) + "\n" for entry in marker["files"]]
    (staging / JOURNAL).write_text("".join(lines), encoding="utf-8")


def resume_cost(fetch_client: Minio, plan: FetchPlan, work: Path, args: argparse.Namespace) -> None:
    """What trusting staged files by their verified-identity record saves, against re-hashing them.

    Each round stages the whole snapshot as a fetch killed before its swap leaves it, then resumes
    either as is (a stat per staged file against ``.codepilot-verified``) or with the journal deleted
    (every staged file is re-hashed before it is kept). Also times the record itself (one stat and one
    append per file), the only cost the journal adds to a fetch that is not interrupted.
    """
    rates: dict[str, list[float]] = {"journal": [], "re-hash": []}
    for round_no in range(args.rounds):
        for mode in ("journal", "re-hash") if round_no % 2 == 0 else ("re-hash", "journal"):
            dest = work / "resume" / "1"
            shutil.rmtree(work / "resume", ignore_errors=True)
            _killed_before_the_swap(fetch_client, plan, dest, args)
            if mode == "re-hash":
                (dest.with_name(".1.partial") / JOURNAL).unlink()
            started = time.monotonic()
            result = Fetcher(
                fetch_client, workers=args.workers, chunk_size=args.chunk_mib << 20, progress=False
            ).fetch(plan, dest)
            seconds = time.monotonic() - started
            assert result.downloaded_bytes == 0 and result.reused_bytes == plan.total_bytes
            rates[mode].append(seconds)
            print(
                f"resume, round {round_no + 1}: {mode:8s} {seconds:.3f}s "
                f"({result.reused_bytes / 2**30:.2f} GiB kept)"
            )
    shutil.rmtree(work / "resume", ignore_errors=True)
    staging = work / "journal-cost"
    staging.mkdir()
    names = [f"f{i:05d}" for i in range(2000)]
    for name in names:
        (staging / name).write_bytes(b"x")
    journal = VerifiedJournal(staging)
    started = time.perf_counter()
    for name in names:
        journal.add(name, "0" * 64)
    per_file = (time.perf_counter() - started) / len(names)
    journal.close()
    shutil.rmtree(staging)
    trusted, rehashed = statistics.median(rates["journal"]), statistics.median(rates["re-hash"])
    print(
        f"median: resume trusting the journal {trusted:.3f}s, re-hashing every staged file {rehashed:.3f}s; "
        f"recording a verified file costs {per_file * 1e6:.0f} us"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--large", type=int, default=4)
    parser.add_argument("--large-mib", type=int, default=240)
    parser.add_argument("--small", type=int, default=400)
    parser.add_argument("--small-kib", type=int, default=160)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--workers", type=int, default=8)
    parser.add_argument("--chunk-mib", type=int, default=16)
    args = parser.parse_args()

    for server in running_seaweedfs("codepilot-bench-"):
        client = minio_client(server)
        client.make_bucket("bench")
        started = time.monotonic()
        total = generate(client, "bench", "coder/v1", args)
        upload_s = time.monotonic() - started
        print(
            f"model: {args.large} x {args.large_mib} MiB + {args.small} x {args.small_kib} KiB "
            f"= {total / 2**30:.2f} GiB in {args.large + args.small} files (uploaded in {upload_s:.0f}s)"
        )

        cp = parse_codepilot(codepilot_doc("bench", "coder/v1", server.endpoint))
        store = store_for(cp, Credentials(server.access_key, server.secret_key))
        started = time.monotonic()
        ref = ensure_snapshot(store, cp, now=datetime.now(UTC))
        create_s = time.monotonic() - started
        print(
            f"snapshot create (hash every byte + server-side copy): {total / create_s / 1e6:.0f} MB/s, "
            f"{create_s:.1f}s, id {ref.id[:16]}"
        )

        plan = plan_snapshot(store.client, store.location, ref.id)
        work = Path(tempfile.mkdtemp(prefix="codepilot-bench-fetch-"))
        try:
            # One untimed read of everything first: whichever method ran first would otherwise pay for
            # the server's cold caches and the upload's dirty pages still being written back.
            warm = work / "warm"
            warm.mkdir()
            baseline(client, plan.bucket, [(f"{n}", item.key) for n, item in enumerate(plan.items)], warm)
            shutil.rmtree(warm)
            base, ours = compare(client, store.client, plan, work, args, args.rounds, "all files")
            resume_cost(store.client, plan, work, args)
            large = FetchPlan(plan.bucket, "large", tuple(i for i in plan.items if i.size >= 1 << 20))
            small = FetchPlan(plan.bucket, "small", tuple(i for i in plan.items if i.size < 1 << 20))
            breakdown = [
                compare(client, store.client, part, work, args, 1, name)
                for part, name in ((large, "large files only"), (small, "small files only"))
                if part.items
            ]
        finally:
            shutil.rmtree(work, ignore_errors=True)
        print(f"median: baseline (sequential fget_object, no verification) {base:.1f} MB/s")
        print(
            f"median: codepilot fetch (workers={args.workers}, chunk={args.chunk_mib} MiB, sha256 verified) "
            f"{ours:.1f} MB/s"
        )
        print(f"ratio: {ours / base:.2f}x (goal >= 2x), on {os.cpu_count()} CPUs shared with the S3 server")
        for (b, o), name in zip(breakdown, ("large files only", "small files only"), strict=False):
            print(f"  {name}: baseline {b:.1f} MB/s, fetcher {o:.1f} MB/s, ratio {o / b:.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
