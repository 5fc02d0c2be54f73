"""Benchmark: latency the OpenAI gateway adds over calling Triton's generate endpoints directly.

A real Triton (CPU, the test model streaming one response per token) and a real `codepilot gateway`
process from the rendered configuration. The same client sends the same streamed request both ways,
``/v2/models/<m>/generate_stream`` and ``/v1/completions`` with ``stream: true``, at 1, 8 and 32
concurrent streams; rounds alternate direct / gateway so drift of a shared machine hits both alike.
Prints p50/p99 of the whole request and of the time to the first streamed chunk, the added p50
(gateway - direct), the spread of the per-round p50s as a noise figure, and the CPU each party (this
client, Triton with its python backend stubs, the gateway) spent per request on either path. Non-streamed
requests at concurrency 1 too. Goal: < 5 ms added p50.

Two regimes:
- ``--token-ms 0`` (default): the model answers at once, so the three processes saturate the machine's
  cores in a closed loop; latency is then about streams x total CPU per request / cores, and the added
  p50 says how much CPU the gateway costs, multiplied (at 32 streams on 2 cores, by ~16).
- ``--token-ms 25``: each stream's tokens come 25 ms apart however many are in flight, as from a GPU with
  room for them all (the test model's engine thread); the cores are not saturated, as on a cluster where
  the GPU sets the pace, and the added p50 is the gateway's own delay plus what its CPU makes the others
  wait.
The client is the lean HTTP/1.1 client of clients/http1.py on both paths: the load generator's CPU
competes with the parties measured, and aiohttp's client cost ~0.5 ms more per streamed request.

    python3 bench/api.py [--requests 300] [--rounds 3] [--tokens 16] [--token-ms 0]

Not a test: figures depend on the machine (2 cores here, shared with other runs).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from tests.fixtures.gateway import local_config, start_gateway, write_key  # noqa: E402
from tests.fixtures.rollout_lab import set_behaviour  # noqa: E402
from tests.fixtures.triton import start_triton  # noqa: E402

from codepilot_operator.api import CodePilot  # noqa: E402
from codepilot_operator.clients.http1 import Http1Client, Response  # noqa: E402
from codepilot_operator.loader import parse_codepilot  # noqa: E402

KEY = "sk-bench"
PROMPT = "def fibonacci(n):"
CONCURRENCY = (1, 8, 32)


@dataclass
class Samples:
    total: list[float] = field(default_factory=list)
    first: list[float] = field(default_factory=list)
    round_p50: list[float] = field(default_factory=list)
    cpu_seconds: float = 0.0  # CPU time of the gateway process (user + system) during these rounds
    client_cpu: float = 0.0  # of this process (the load generator)
    triton_cpu: float = 0.0  # of tritonserver and its python backend stubs


def _stat(path: Path) -> tuple[int, float]:
    """Parent pid and user + system CPU seconds of a /proc/<pid>/stat (clock ticks)."""
    fields = path.read_text().rsplit(")", 1)[1].split()
    return int(fields[1]), (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    return _stat(Path(f"/proc/{pid}/stat"))[1]


def tree_cpu_seconds(pid: int) -> float:
    """CPU time of a process and its live children (Triton runs each python model in a stub process)."""
    total = 0.0
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            parent, seconds = _stat(entry / "stat")
        except OSError:
            continue  # exited meanwhile
        if int(entry.name) == pid or parent == pid:
            total += seconds
    return total


def own_cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


async def measured_round(
    url: str, send: Send, concurrency: int, requests: int, samples: Samples, triton_pid: int, gateway_pid: int
) -> None:
    """One round, with the CPU each party spent on it: on 2 shared cores a closed loop's latency is
    about the streams times the CPU per request of all three, over the cores."""
    before = own_cpu_seconds(), tree_cpu_seconds(triton_pid), cpu_seconds(gateway_pid)
    await run_round(url, send, concurrency, requests, samples)
    samples.client_cpu += own_cpu_seconds() - before[0]
    samples.triton_cpu += tree_cpu_seconds(triton_pid) - before[1]
    samples.cpu_seconds += cpu_seconds(gateway_pid) - before[2]


Send = Callable[[Http1Client], Awaitable[tuple[float, float]]]


def codepilot(max_tokens: int) -> CodePilot:
    return parse_codepilot(
        {
            "apiVersion": "serving.codepilot.dev/v1alpha1",
            "kind": "CodePilot",
            "metadata": {"name": "bench", "namespace": "bench"},
            "spec": {
                "model": {
                    "name": "bench_model",
                    "version": "v1",
                    "backend": "python",
                    "source": {"uri": "s3://models/bench/v1", "endpoint": "http://minio:9000"},
                },
                "runtime": {"gpus": 0, "maxTokens": max(64, max_tokens), "maxBatchSize": 8},
                "api": {
                    "enabled": True,
                    "keySecrets": ["bench"],
                    "requestsPerMinute": 0,
                    "maxConcurrency": 64,
                },
            },
        }
    )


async def _read_stream(response: Response, started: float) -> tuple[float, float]:
    first = 0.0
    while data := await response.chunk():
        if not first and b"data:" in data:
            first = time.perf_counter() - started
    if response.status != 200:
        raise RuntimeError(f"HTTP {response.status}")
    return time.perf_counter() - started, first


def direct(model: str, tokens: int, stream: bool) -> Send:
    path = f"/v2/models/{model}/{'generate_stream' if stream else 'generate'}"
    body = json.dumps({"text_input": PROMPT, "max_tokens": tokens, "stream": stream}).encode()

    async def send(http: Http1Client) -> tuple[float, float]:
        started = time.perf_counter()
        async with http.request("POST", path, body) as response:
            return await _read_stream(response, started)

    return send


def gateway(tokens: int, stream: bool) -> Send:
    body = json.dumps({"model": "bench", "prompt": PROMPT, "max_tokens": tokens, "stream": stream}).encode()
    headers = {"Authorization": f"Bearer {KEY}"}

    async def send(http: Http1Client) -> tuple[float, float]:
        started = time.perf_counter()
        async with http.request("POST", "/completions", body, headers) as response:
            return await _read_stream(response, started)

    return send


async def run_round(url: str, send: Send, concurrency: int, requests: int, samples: Samples) -> None:
    http = Http1Client(url, max_idle=concurrency)
    try:
        await asyncio.gather(*(send(http) for _ in range(concurrency)))  # warm the connections
        queue = list(range(requests))
        totals: list[float] = []

        async def worker() -> None:
            while queue:
                queue.pop()
                total, first = await send(http)
                totals.append(total)
                samples.first.append(first)

        await asyncio.gather(*(worker() for _ in range(concurrency)))
    finally:
        await http.close()
    samples.total.extend(totals)
    samples.round_p50.append(statistics.median(totals))


def quantile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def ms(value: float) -> str:
    return f"{value * 1000:7.2f}"


def report(label: str, concurrency: int, d: Samples, g: Samples, stream: bool) -> None:
    def line(what: str, direct: list[float], through: list[float]) -> str:
        p50, p99 = statistics.median, lambda v: quantile(v, 0.99)
        return (
            f"{what}: direct p50 {ms(p50(direct))} p99 {ms(p99(direct))} | gateway p50 {ms(p50(through))} "
            f"p99 {ms(p99(through))} | added p50 {ms(p50(through) - p50(direct))} "
            f"p99 {ms(p99(through) - p99(direct))} ms"
        )

    print(f"{label:9} c={concurrency:<3} {line('request', d.total, g.total)}")
    if stream:
        print(f"{'':15} {line('first chunk', d.first, g.first)}")
    spread = [max(s.round_p50) - min(s.round_p50) for s in (d, g)]
    print(f"{'':15} noise: per-round request p50 spread direct {ms(spread[0])} gateway {ms(spread[1])} ms")
    print(f"{'':15} gateway CPU per request {ms(g.cpu_seconds / len(g.total))} ms")
    for name, samples in (("direct", d), ("gateway", g)):
        count = len(samples.total)
        parts = (samples.client_cpu, samples.triton_cpu, samples.cpu_seconds if samples is g else 0.0)
        print(
            f"{'':15} CPU per request, {name:7}: client {ms(parts[0] / count)} triton {ms(parts[1] / count)} "
            f"gateway {ms(parts[2] / count)} total {ms(sum(parts) / count)} ms"
        )


async def bench(
    args: argparse.Namespace, triton_url: str, model: str, gateway_url: str, triton_pid: int, pid: int
) -> None:
    plans = [(True, c) for c in CONCURRENCY] + [(False, 1)]
    for stream, concurrency in plans:
        d, g = Samples(), Samples()
        for _ in range(args.rounds):
            to_triton = direct(model, args.tokens, stream)
            await measured_round(triton_url, to_triton, concurrency, args.requests, d, triton_pid, pid)
            through = gateway(args.tokens, stream)
            await measured_round(gateway_url, through, concurrency, args.requests, g, triton_pid, pid)
        report("streamed" if stream else "whole", concurrency, d, g, stream)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--requests", type=int, default=300, help="requests per round and concurrency")
    parser.add_argument("--rounds", type=int, default=3, help="alternating direct/gateway rounds")
    parser.add_argument(
        "--tokens", type=int, default=16, help="max_tokens per request (the model stops at 7)"
    )
    parser.add_argument(
        "--token-ms", type=float, default=0.0, help="time between a stream's tokens (0: at once)"
    )
    args = parser.parse_args()
    cp = codepilot(args.tokens)
    workdir = Path(tempfile.mkdtemp(prefix="codepilot-bench-api-"))
    triton = start_triton(cp, workdir / "triton")
    try:
        set_behaviour(triton, work_seconds=0.0, token_seconds=args.token_ms / 1000)
        write_key(workdir / "keys", "bench", KEY)
        process = start_gateway(local_config(cp, triton, workdir / "keys"), workdir / "gateway")
        try:
            print(
                f"{args.rounds} rounds x {args.requests} requests, "
                f"max_tokens {args.tokens}, {args.token_ms} ms/token"
            )
            url = f"http://{triton.http_url}"
            asyncio.run(
                bench(args, url, triton.model, process.base_url, triton.process.pid, process.process.pid)
            )
        finally:
            process.stop()
    finally:
        triton.stop()
        shutil.rmtree(workdir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
