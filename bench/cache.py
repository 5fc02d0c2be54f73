"""A second replica's start with a warm model cache vs a cold one: the real ``codepilot fetch``.

Starts a real SeaweedFS (the test fixture's), uploads one model of random (incompressible) bytes and
snapshots it as the operator does, then, in one run and in each round:

- cold: ``codepilot fetch`` with the init container's cache arguments (``--dest <claim>/snapshots/<id>
  --wait --report``) into an empty claim directory: the first replica, everything downloaded and
  verified;
- warm: the same command again into the same claim directory: the second replica, which finds the
  snapshot complete (its marker names the snapshot, and every file is still the one verified);
- warm + verify: the same with ``--verify-local`` (every file re-hashed): what a replica that trusted
  nothing on the claim would pay.

Each is a new process, as an init container is, so the figures include its start (interpreter, imports,
the manifest GET); "start" is ``codepilot fetch --help`` in the same round, the floor of any warm
start. Bytes come from the fetcher's own report (what the kubelet would put in the pod's status). The
median over the rounds is printed per case, side by side.

    python3 bench/cache.py [--rounds 5] [--size-mib 768] [--files 40]
"""

from __future__ import annotations

import argparse
import io
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the fixture module lives in tests/

from tests.fixtures.s3 import SeaweedFS, codepilot_doc, minio_client, running_seaweedfs

from codepilot_operator.api.contract import FetchReport
from codepilot_operator.loader import parse_codepilot
from codepilot_operator.snapshots.service import Credentials, ensure_snapshot, store_for

BUCKET = "bench-cache"
MiB = 1 << 20


def upload_model(client: object, size: int, files: int) -> None:
    """A few large shards and many small files (tokenizer, configs), like a real model directory."""
    shards = max(1, files // 10)
    large = int(size * 0.95) // shards
    small = max(1, (size - large * shards) // max(1, files - shards))
    block = os.urandom(MiB)
    for i in range(files):
        length = large if i < shards else small
        data = f"file-{i}\n".encode() + (block * (length // MiB + 1))[: length - 8]
        name = f"model-{i:05d}.safetensors" if i < shards else f"tokenizer/part-{i:05d}.json"
        client.put_object(BUCKET, f"model/v1/{name}", io.BytesIO(data), len(data), part_size=64 * MiB)  # type: ignore[attr-defined]


def run_fetch(argv: list[str], env: dict[str, str], report: Path) -> tuple[float, FetchReport]:
    started = time.monotonic()
    subprocess.run(argv, env=env, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    seconds = time.monotonic() - started
    parsed = FetchReport.from_json(report.read_text())
    assert parsed is not None, "the fetcher wrote no report"
    return seconds, parsed


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--size-mib", type=int, default=768)
    parser.add_argument("--files", type=int, default=40)
    args = parser.parse_args()

    for server in running_seaweedfs("codepilot-bench-cache-"):  # one server, stopped when the loop ends
        run(server, args)
    return 0


def run(server: SeaweedFS, args: argparse.Namespace) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        client = minio_client(server)
        client.make_bucket(BUCKET)
        upload_model(client, args.size_mib * MiB, args.files)
        cp = parse_codepilot(codepilot_doc(BUCKET, "model/v1", server.endpoint))
        ref = ensure_snapshot(
            store_for(cp, Credentials(server.access_key, server.secret_key)), cp, now=datetime.now(UTC)
        )
        env = {
            **{k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "S3_"))},
            **server.env,
        }
        codepilot = shutil.which("codepilot") or "codepilot"
        results: dict[str, list[float]] = {"cold": [], "warm": [], "warm + verify": [], "start": []}
        downloaded: dict[str, set[int]] = {name: set() for name in results}
        for _ in range(args.rounds):
            claim = Path(tmp) / "claim"
            shutil.rmtree(claim, ignore_errors=True)
            report = Path(tmp) / "termination-log"
            base = [codepilot, "fetch", "--snapshot", ref.uri, "--dest", f"{claim}/snapshots/{ref.id}"]
            base += ["--wait", "--report", str(report), "--no-progress"]
            for name, extra in (("cold", []), ("warm", []), ("warm + verify", ["--verify-local"])):
                seconds, fetched = run_fetch([*base, *extra], env, report)
                results[name].append(seconds)
                downloaded[name].add(fetched.downloaded_bytes)
            started = time.monotonic()
            subprocess.run([codepilot, "fetch", "--help"], env=env, check=True, stdout=subprocess.DEVNULL)
            results["start"].append(time.monotonic() - started)
        size = ref.size_bytes
        print(f"model: {size / MiB:.0f} MiB in {args.files} files; {args.rounds} rounds; median seconds")
        print(f"{'case':<16}{'median s':>10}{'min s':>8}{'max s':>8}{'MB/s':>9}{'downloaded':>14}")
        for name, times in results.items():
            median = statistics.median(times)
            got = ", ".join(f"{b / MiB:.0f} MiB" for b in sorted(downloaded[name])) or "-"
            rate = "-" if name == "start" else f"{size / median / 1e6:.0f}"
            print(f"{name:<16}{median:>10.2f}{min(times):>8.2f}{max(times):>8.2f}{rate:>9}{got:>14}")
        cold, warm = statistics.median(results["cold"]), statistics.median(results["warm"])
        print(f"warm / cold: {warm / cold:.3f} ({cold / warm:.0f}x faster)")
        print(json.dumps({k: [round(t, 3) for t in v] for k, v in results.items()}))


if __name__ == "__main__":
    raise SystemExit(main())
