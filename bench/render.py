"""Render time per CodePilot over 1000 varied specs (goal: under 1 ms each), and ``codepilot render``
as a process, YAML against JSON output, in the same run (goal: <= 2 ms per CodePilot end to end).

    python3 bench/render.py [--count 1000] [--repeat 5] [--cli-count 200]

Prints the median over repeats of the per-CodePilot time for parse, render, and both; then, for the
CLI, the time of ``codepilot render`` on one file of ``--cli-count`` CodePilots minus the time on a
file of one (process start and imports aside), per CodePilot, for -o yaml and -o json, and the same
YAML printed by PyYAML (libyaml's emitter, and its pure-Python one) for comparison.
"""

from __future__ import annotations

import argparse
import copy
import random
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import yaml

from codepilot_operator.loader import parse_codepilot
from codepilot_operator.render import render

BASE: dict[str, Any] = {
    "apiVersion": "serving.codepilot.dev/v1alpha1",
    "kind": "CodePilot",
    "metadata": {"name": "coder", "namespace": "bench"},
    "spec": {
        "model": {
            "name": "m",
            "version": "v1",
            "source": {"uri": "s3://models/m", "endpoint": "http://s3:9000"},
        }
    },
}


def varied_specs(count: int, seed: int = 7) -> list[dict[str, Any]]:
    rng = random.Random(seed)
    docs = []
    for i in range(count):
        doc = copy.deepcopy(BASE)
        spec = doc["spec"]
        backend = rng.choice(["tensorrtllm", "python", "onnxruntime"])
        doc["metadata"]["name"] = (f"cp-{i}" + "-x" * rng.randint(0, 30))[:63].rstrip("-")
        spec["model"]["version"] = rng.choice(["v1", "v2.0.1", "2024.11.05", "release_7", "v" + "9" * 40])
        spec["model"]["backend"] = backend
        minimum = rng.randint(1, 4)
        spec["runtime"] = {
            "gpus": rng.randint(1, 8) if backend == "tensorrtllm" else rng.randint(0, 2),
            "maxTokens": rng.choice([512, 2048, 8192]),
            "maxBatchSize": rng.choice([0, 8, 64]),
            "nodeSelector": {"nvidia.com/gpu.product": "H100"} if rng.random() < 0.5 else {},
            "tolerations": [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}],
        }
        spec["autoscaling"] = {
            "minReplicas": minimum,
            "maxReplicas": minimum + rng.randint(0, 6),
            "signal": rng.choice(["queueTime", "inflightRequests", "gpuUtilization", "cpu"]),
        }
        spec["rollout"] = {
            "steps": [{"weight": w, "pause": "5m"} for w in sorted(rng.sample(range(1, 100), 3))]
        }
        if rng.random() < 0.5:
            spec["alerts"] = {"slo": {"objective": 99.9}, "latency": {"threshold": "1500ms"}}
        docs.append(doc)
    return docs


def timed(fn: Any, items: list[Any]) -> float:
    start = time.perf_counter()
    for item in items:
        fn(item)
    return (time.perf_counter() - start) / len(items)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--count", type=int, default=1000)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--cli-count", type=int, default=200, help="CodePilots in the CLI's input file")
    args = parser.parse_args()
    docs = varied_specs(args.count)
    parsed = [parse_codepilot(d) for d in docs]
    objects = sum(len(render(cp)) for cp in parsed)
    parse_times, render_times, both_times = [], [], []
    for _ in range(args.repeat):
        parse_times.append(timed(parse_codepilot, docs))
        render_times.append(timed(render, parsed))
        both_times.append(timed(lambda d: render(parse_codepilot(d)), docs))
    print(
        f"{args.count} varied CodePilots, {objects / args.count:.1f} objects each, "
        f"median of {args.repeat} runs"
    )
    print(f"  parse  : {statistics.median(parse_times) * 1e3:.3f} ms per CodePilot")
    print(f"  render : {statistics.median(render_times) * 1e3:.3f} ms per CodePilot")
    print(f"  both   : {statistics.median(both_times) * 1e3:.3f} ms per CodePilot (goal < 1 ms)")
    cli(docs[: args.cli_count], args.repeat)


def _process_seconds(args: list[str]) -> float:
    start = time.perf_counter()
    subprocess.run(args, check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - start


def cli(docs: list[dict[str, Any]], repeat: int) -> None:
    """``codepilot render`` as a user runs it; the marginal cost per CodePilot, process start aside."""
    from codepilot_operator.cli.support import dump_yaml_stream
    from codepilot_operator.cli.yaml_output import pyyaml_stream

    with tempfile.TemporaryDirectory() as tmp:
        many, one = Path(tmp) / "many.yaml", Path(tmp) / "one.yaml"
        many.write_text(yaml.safe_dump_all(docs))
        one.write_text(yaml.safe_dump_all(docs[:1]))
        command = [sys.executable, "-m", "codepilot_operator.cli", "render"]
        results: dict[str, list[float]] = {"yaml": [], "json": []}
        for _ in range(repeat):
            for output in results:
                full = _process_seconds([*command, str(many), "-o", output])
                base = _process_seconds([*command, str(one), "-o", output])
                results[output].append((full - base) / (len(docs) - 1))
    objects = [o for d in docs for o in render(parse_codepilot(d))]
    start = time.perf_counter()
    yaml.dump_all(objects, Dumper=yaml.SafeDumper, sort_keys=False, default_flow_style=False, width=1_000_000)
    pure = (time.perf_counter() - start) / len(docs)
    start = time.perf_counter()
    pyyaml_stream(objects)
    libyaml = (time.perf_counter() - start) / len(docs)
    start = time.perf_counter()
    dump_yaml_stream(objects)
    ours = (time.perf_counter() - start) / len(docs)
    print(f"codepilot render as a process, {len(docs)} CodePilots in one file, median of {repeat} runs:")
    for output, times in results.items():
        print(f"  -o {output:4}: {statistics.median(times) * 1e3:.3f} ms per CodePilot (process start aside)")
    print(f"  YAML printing alone: {ours * 1e3:.3f} ms per CodePilot")
    print(f"  PyYAML with libyaml's emitter, same text: {libyaml * 1e3:.3f} ms per CodePilot")
    print(f"  PyYAML's pure-Python emitter, same objects: {pure * 1e3:.3f} ms per CodePilot")


if __name__ == "__main__":
    main()
