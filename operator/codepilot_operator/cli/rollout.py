"""``codepilot status | promote | abort | pause | resume | retry NAME``: follow and steer a rollout.

Flags as kubectl has them (``-n``, ``--kubeconfig``). The verbs set the rollout-action annotation (the
same thing ``kubectl annotate codepilot NAME serving.codepilot.dev/rollout-action=promote`` does); the
operator acts on it, records it in ``status.rollout.lastAction`` and removes it.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Mapping
from typing import Any

from codepilot_operator.cli.support import UsageError, dump_json

IN_FLIGHT = ("Progressing", "Paused")
REJECTED = ("RolledBack", "Aborted")
VERBS = {
    "promote": "promote the canary now (skips the remaining steps and analysis)",
    "abort": "send all traffic back to stable and remove the canary",
    "pause": "hold the current weight; no analysis, no step advances",
    "resume": "continue a paused rollout",
    "retry": "roll out a rolled-back or aborted version again, from step 1",
}


def _pct(value: Any) -> str:
    return "-" if value is None else f"{float(value):.2%}"


def _secs(value: Any) -> str:
    return "-" if value is None else f"{float(value):.3f}s"


def _num(value: Any) -> str:
    return "-" if value is None else f"{float(value):.0f}"


def analysis_table(analysis: Mapping[str, Any]) -> list[str]:
    """Canary next to stable next to the threshold each value is held to."""
    canary, stable = analysis.get("canary") or {}, analysis.get("stable") or {}
    t = analysis.get("thresholds") or {}
    rows = [
        (
            "requests",
            _num(canary.get("requests")),
            _num(stable.get("requests")),
            f">= {_num(t.get('minRequests'))}",
        ),
        (
            "error ratio",
            _pct(canary.get("errorRatio")),
            _pct(stable.get("errorRatio")),
            f"<= {_pct(t.get('maxErrorRate'))}, or not significantly worse than stable "
            f"(p >= {t.get('significance', '-')})",
        ),
        (
            "mean latency",
            _secs(canary.get("meanLatencySeconds")),
            _secs(stable.get("meanLatencySeconds")),
            f"<= {t.get('maxLatencyRatio', '-')}x stable and <= {_secs(t.get('maxLatencySeconds'))}",
        ),
        ("mean queue", _secs(canary.get("meanQueueSeconds")), _secs(stable.get("meanQueueSeconds")), "shown"),
        (
            "p95 first response",
            _secs(canary.get("ttftP95Seconds")),
            _secs(stable.get("ttftP95Seconds")),
            f"<= {t.get('maxLatencyRatio', '-')}x stable",
        ),
    ]
    header = ("", "CANARY", "STABLE", "THRESHOLD")
    widths = [max(len(r[i]) for r in (header, *rows)) for i in range(3)]
    return [
        "    " + "  ".join(cell.ljust(widths[i]) if i < 3 else cell for i, cell in enumerate(r)).rstrip()
        for r in (header, *rows)
    ]


def _rollout_spec(spec: Mapping[str, Any]) -> Any:
    """spec.rollout with its defaults (what the API server stores); defaults if it does not parse."""
    from pydantic import ValidationError

    from codepilot_operator.api import RolloutSpec

    try:
        return RolloutSpec.model_validate(spec.get("rollout") or {})
    except ValidationError:
        return RolloutSpec()


def status_text(cp: Mapping[str, Any]) -> str:
    meta, spec, status = cp.get("metadata", {}), cp.get("spec", {}), cp.get("status") or {}
    rollout = status.get("rollout") or {}
    lines = [
        f"CodePilot    {meta.get('namespace')}/{meta.get('name')}",
        f"Spec version {spec.get('model', {}).get('version')}",
        f"Stable       {status.get('stableVersion') or '-'}",
        f"Canary       {status.get('canaryVersion') or '-'}",
    ]
    ready = next((c for c in status.get("conditions") or [] if c.get("type") == "Ready"), None)
    if ready:
        lines.append(f"Ready        {ready.get('status')} ({ready.get('reason')}): {ready.get('message')}")
    if not rollout:
        lines.append("Rollout      none yet (a change of spec.model.version starts one)")
        return "\n".join(lines) + "\n"
    plan = _rollout_spec(spec)
    steps = [s.model_dump(by_alias=True) for s in plan.steps]
    strategy = rollout.get("strategy") or plan.strategy.value
    step = int(rollout.get("step", 0))
    where = f"step {step + 1}/{len(steps)}" if strategy == "Canary" and step < len(steps) else "promotion"
    if strategy == "ABTest":
        where = "A/B test (promote or abort by hand)"
    lines += [
        f"Rollout      {rollout.get('version')} ({strategy}): {rollout.get('phase')}, {where}",
        f"Weight       requested {rollout.get('weight', 0)}%, actual {rollout.get('actualWeight', 0)}% "
        f"(replicas stable {rollout.get('stableReplicas', '-')}, "
        f"canary {rollout.get('canaryReplicas', '-')})",
    ]
    if strategy == "Canary" and step < len(steps):
        lines.append(
            f"Step clock   {float(rollout.get('stepProgressSeconds', 0)):.0f}s of {steps[step].get('pause')} "
            f"(passing analyses only); consecutive failures {rollout.get('consecutiveFailures', 0)}"
        )
    if rollout.get("pausedReason"):
        lines.append(f"Paused       {rollout['pausedReason']}")
    if rollout.get("rejectedVersion"):
        lines.append(f"Rejected     {rollout['rejectedVersion']} (not retried until spec changes or `retry`)")
    analysis = rollout.get("lastAnalysis")
    if analysis:
        lines.append(
            f"Analysis     {analysis.get('verdict')} ({analysis.get('reason')}) at {analysis.get('time')}, "
            f"window {float(analysis.get('windowSeconds', 0)):.0f}s: {analysis.get('message')}"
        )
        lines += analysis_table(analysis)
    if rollout.get("message"):
        lines.append(f"Message      {rollout['message']}")
    action = rollout.get("lastAction")
    if action:
        lines.append(f"Last action  {action.get('action')} at {action.get('time')}: {action.get('result')}")
    return "\n".join(lines) + "\n"


def check_action(cp: Mapping[str, Any], verb: str) -> None:
    """Refuse, with one line, what the operator would only record as ignored."""
    meta, status = cp.get("metadata", {}), cp.get("status") or {}
    rollout = status.get("rollout") or {}
    desired = cp.get("spec", {}).get("model", {}).get("version")
    where = f"{meta.get('namespace')}/{meta.get('name')}"
    if verb == "retry":
        if rollout.get("phase") not in REJECTED or rollout.get("version") != desired:
            raise UsageError(f"{where}: nothing to retry (no rolled-back or aborted rollout of {desired})")
        return
    if rollout.get("phase") not in IN_FLIGHT or rollout.get("version") != desired:
        stable = status.get("stableVersion") or "-"
        raise UsageError(f"{where}: no rollout in progress (stable {stable}, spec.model.version {desired})")
    if verb == "resume" and rollout.get("phase") != "Paused":
        raise UsageError(f"{where}: the rollout of {desired} is not paused")


def _target(args: argparse.Namespace) -> tuple[str, str]:
    from codepilot_operator.clients.codepilots import default_namespace

    return args.namespace or default_namespace(args.kubeconfig), args.name


def _read(args: argparse.Namespace) -> dict[str, Any]:
    from codepilot_operator.clients.codepilots import read

    namespace, name = _target(args)
    cp = read(args.kubeconfig, namespace, name)
    if cp is None:
        raise UsageError(f"codepilot {namespace}/{name} not found")
    return cp


def _cluster_errors(handler: Any) -> Any:
    def run(args: argparse.Namespace) -> int:
        from codepilot_operator.clients.codepilots import ClusterError

        try:
            return int(handler(args))
        except ClusterError as exc:
            raise UsageError(str(exc)) from None

    return run


def cmd_status(args: argparse.Namespace) -> int:
    cp = _read(args)
    if args.output == "json":
        sys.stdout.write(dump_json(cp.get("status") or {}))
    else:
        sys.stdout.write(status_text(cp))
    return 0


def cmd_action(args: argparse.Namespace) -> int:
    from codepilot_operator.clients.codepilots import request_action

    cp = _read(args)
    check_action(cp, args.verb)
    namespace, name = _target(args)
    request_action(args.kubeconfig, namespace, name, args.verb)
    follow = f"codepilot status {name} -n {namespace}"
    print(f"{args.verb} requested for {namespace}/{name}; follow it with: {follow}", file=sys.stderr)
    return 0


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("name", metavar="NAME", help="the CodePilot")
    parser.add_argument("-n", "--namespace", help="default: the kubeconfig context's namespace")
    parser.add_argument("--kubeconfig", metavar="FILE", help="default: $KUBECONFIG, then ~/.kube/config")


def register(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "status", help="the rollout of a CodePilot: phase, step, weights, last analysis"
    )
    _common(p)
    p.add_argument("-o", "--output", choices=["text", "json"], default="text", help="output format")
    p.set_defaults(handler=_cluster_errors(cmd_status))
    for verb, help_text in VERBS.items():
        p = subparsers.add_parser(verb, help=help_text)
        _common(p)
        p.set_defaults(handler=_cluster_errors(cmd_action), verb=verb)
