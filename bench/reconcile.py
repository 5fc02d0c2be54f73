"""Benchmark: N CodePilots (default 500) reconciled by a real `codepilot run` against the API emulator.

Prints: time until every CodePilot is Reconciled, API requests per CodePilot by verb, writes on create
per CodePilot against the number of children, then the idle cost: requests per CodePilot per idle
minute split by verb and by kind (watches counted apart: a watch is one long request per kind, not per
CodePilot), and the operator's RSS. Goals: writes on create <= children + 2, zero writes and zero
list/get requests when idle, RSS < 200 MB at 500.

    python3 bench/reconcile.py [--count 100 --count 500] [--idle 120] [--drift-interval 60]
                               [--progress-interval 15] [--secret]

Each --count runs on a fresh emulator and operator, one after the other. --secret gives every CodePilot
a credentials Secret (labelled as the platform policy requires), so the admission check's Secret reads
show in the figures: one per CodePilot on create, none when idle.

Not a test: figures depend on the machine; the emulator runs in this process, the operator in its own.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from tests.e2e.conftest import Api, Operator  # noqa: E402
from tests.fixtures.kube import Call, EmulatorThread  # noqa: E402
from tests.helpers import manifest  # noqa: E402

from codepilot_operator.api.platform import ALLOW_LABEL  # noqa: E402
from codepilot_operator.loader import parse_codepilot  # noqa: E402
from codepilot_operator.render import render  # noqa: E402


def rss_mb(pid: int) -> tuple[float, float]:
    """(current RSS, peak RSS) in MB from /proc."""
    fields = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        fields[key] = value.strip()
    return int(fields["VmRSS"].split()[0]) / 1024, int(fields["VmHWM"].split()[0]) / 1024


def reconciled_count(emulator: EmulatorThread) -> int:
    def count(e: object) -> int:
        done = 0
        for obj in e.live("codepilots").values():  # type: ignore[attr-defined]
            for condition in obj.get("status", {}).get("conditions", []):
                if condition["type"] == "Reconciled" and condition["status"] == "True":
                    done += 1
        return done

    return emulator.call(count)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--count", type=int, action="append", help="CodePilots (repeatable: one run each; default 500)"
    )
    parser.add_argument("--idle", type=float, default=120.0, help="seconds of idle measured (default 120)")
    parser.add_argument(
        "--namespaces", type=int, default=10, help="spread CodePilots over this many namespaces"
    )
    parser.add_argument("--drift-interval", type=float, default=60.0, help="the operator's default")
    parser.add_argument("--progress-interval", type=float, default=15.0, help="the operator's default")
    parser.add_argument("--timeout", type=float, default=900.0)
    parser.add_argument(
        "--secret", action="store_true", help="every CodePilot names an allowed credentials Secret"
    )
    args = parser.parse_args()
    status = 0
    for count in args.count or [500]:
        status |= run(args, count)
    return status


def per_minute(calls: list[Call], count: int, seconds: float, key: str) -> str:
    counted = Counter(getattr(c, key) for c in calls if c.verb != "watch")
    if not counted:
        return "none"
    scale = 60.0 / seconds / count
    return ", ".join(f"{k} {n * scale:.2f}" for k, n in sorted(counted.items()))


def run(args: argparse.Namespace, count: int) -> int:
    args = argparse.Namespace(**{**vars(args), "count": count})
    emulator = EmulatorThread().start()
    tmp = Path(tempfile.mkdtemp(prefix="codepilot-bench-"))
    operator = Operator(
        emulator.kubeconfig(tmp / "kubeconfig"),
        tmp,
        drift_interval=args.drift_interval,
        progress_interval=args.progress_interval,
    )
    api = Api(emulator.url)
    try:
        operator.start()
        assert operator.proc is not None
        baseline = len(emulator.call(lambda e: e.calls))
        docs = []
        extra = {"spec.model.source.credentialsSecret": "s3-credentials"} if args.secret else {}
        for i in range(args.count):
            doc = manifest(
                **{
                    "metadata.name": f"coder-{i:04d}",
                    "metadata.namespace": f"bench-{i % args.namespaces}",
                    **extra,
                }
            )
            docs.append(doc)
        if args.secret:
            for n in range(args.namespaces):
                meta = {"name": "s3-credentials", "namespace": f"bench-{n}", "labels": {ALLOW_LABEL: "true"}}
                api.create("secrets", {"metadata": meta, "data": {}})
            baseline = len(emulator.call(lambda e: e.calls))
        children = len(render(parse_codepilot(docs[0])))
        started = time.monotonic()
        for doc in docs:
            api.create("codepilots", doc)
        created = time.monotonic() - started
        peak_seen = 0.0
        while (done := reconciled_count(emulator)) < args.count:
            peak_seen = max(peak_seen, rss_mb(operator.proc.pid)[0])
            if time.monotonic() - started > args.timeout:
                print(f"TIMEOUT: {done}/{args.count} reconciled after {args.timeout:.0f}s", file=sys.stderr)
                return 1
            time.sleep(0.5)
        elapsed = time.monotonic() - started
        calls = emulator.call(lambda e: list(e.calls))[baseline:]
        by_verb = Counter(c.verb for c in calls)
        writes = [c for c in calls if c.write]
        state_writes = [c for c in writes if c.resource != "events"]
        print(f"CodePilots: {args.count} in {args.namespaces} namespaces; children per CodePilot: {children}")
        print(f"created (admin POSTs) in {created:.1f}s; all Reconciled after {elapsed:.1f}s")
        print("API requests per CodePilot by verb (create phase):")
        for verb, n in sorted(by_verb.items()):
            print(f"  {verb:7s} {n / args.count:6.2f}")
        secret_reads = sum(1 for c in calls if c.resource == "secrets")
        print(f"  Secret reads (admission): {secret_reads / args.count:.2f}")
        per_cp = len(state_writes) / args.count
        print(
            f"writes on create per CodePilot: {per_cp:.2f} (goal <= children + 2 = {children + 2}); "
            f"Events: {(len(writes) - len(state_writes)) / args.count:.2f}"
        )
        by_resource = Counter(c.resource for c in state_writes)
        print(
            "  by resource:", ", ".join(f"{r} {n / args.count:.2f}" for r, n in sorted(by_resource.items()))
        )
        failed = Counter(c.status for c in calls if c.status >= 400)
        print(f"failed requests: {dict(failed) or 'none'}")

        # Idle: nothing changes; every CodePilot's periodic jobs run (no Deployment controller in the
        # emulator, so all stay not Ready and get progress refreshes too).
        mark = len(emulator.call(lambda e: e.calls))
        time.sleep(args.idle)
        idle = emulator.call(lambda e: list(e.calls))[mark:]
        idle_writes = [c for c in idle if c.write]
        watches = Counter(c.resource for c in idle if c.verb == "watch")
        reads = [c for c in idle if c.verb in ("list", "get")]
        intervals = f"drift interval {args.drift_interval:.0f}s, progress {args.progress_interval:.0f}s"
        print(f"idle {args.idle:.0f}s ({intervals}):")
        print(
            f"  requests per CodePilot per idle minute: {len(idle) * 60 / args.idle / args.count:.2f} "
            f"(list+get {len(reads) * 60 / args.idle / args.count:.2f}, writes {len(idle_writes)} in all)"
        )
        print(f"  by verb: {per_minute(idle, args.count, args.idle, 'verb')}")
        print(f"  by kind: {per_minute(idle, args.count, args.idle, 'resource')}")
        print(f"  watch requests started while idle (all CodePilots together): {dict(watches) or 'none'}")
        all_watches = Counter(c.resource for c in emulator.call(lambda e: list(e.calls)) if c.verb == "watch")
        opened = sum(all_watches.values())
        print(f"  watches opened since the start: {opened} requests on {len(all_watches)} kinds")
        rss, hwm = rss_mb(operator.proc.pid)
        print(f"operator RSS: {rss:.0f} MB now, {max(hwm, peak_seen):.0f} MB peak (goal < 200 MB)")
        return 0
    finally:
        operator.stop()
        emulator.stop()


if __name__ == "__main__":
    sys.exit(main())
