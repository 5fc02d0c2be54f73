"""``codepilot run``: the operator process.

kopf and lightkube are imported inside the handler so that ``codepilot render`` stays fast.

Everything that can fail before the operator works is checked before kopf starts, each with one line
and exit code 2: the platform file (--platform), the Kubernetes connection (a kubeconfig that does not
load, or none at all) and the metrics port (bound here, then handed to the server). kopf retries a
failing startup forever while the probe server answers, which is how a broken start once looked alive;
a startup that fails anyway, or kopf stopping on an error, ends the process with one line and exit
code 1.
"""

from __future__ import annotations

import argparse
import hashlib
import logging
import math
import os
import socket
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from codepilot_operator.cli.support import UsageError, load_platform

if TYPE_CHECKING:
    from codepilot_operator.api.platform import PlatformPolicy

PEERING_DEFAULT_NAME = "codepilot-operator"
MAX_INTERVAL = 86400.0  # a day; beyond it "restores a deleted child" stops meaning anything
SERVICE_ACCOUNT_TOKEN = Path("/var/run/secrets/kubernetes.io/serviceaccount/token")
EXIT_STOPPED = 1


def http_url(text: str) -> str:
    from urllib.parse import urlsplit

    parts = urlsplit(text)
    if parts.scheme not in ("http", "https") or not parts.netloc or "@" in parts.netloc:
        raise argparse.ArgumentTypeError(f"not an http(s) URL without credentials: {text!r}")
    return text.rstrip("/")


def auto_priority(identity: str) -> int:
    """A stable priority in 1..9999 from the pod name, so replicas of one Deployment differ.

    kopf pauses every operator that sees a peer with a higher *or equal* priority, so replicas need
    distinct priorities; a StatefulSet or explicit --priority avoids the (1 in 10^4) collision.
    """
    return 1 + int(hashlib.sha256(identity.encode()).hexdigest(), 16) % 9999


# kopf logs one "... succeeded." line per handler run; for these it is one per watch event or resync
# and says nothing (the operator's own lines say what it did).
_ROUTINE = ("Timer ", "Indexer ", "Handler 'children_", "Handler 'optional_crd_changed'")


def _quiet_timers(record: logging.LogRecord) -> bool:
    """Drop kopf's routine "... succeeded." lines: timers, indexers and the child watch handlers."""
    message = record.getMessage()
    return not (
        record.levelno == logging.INFO and message.startswith(_ROUTINE) and message.endswith(" succeeded.")
    )


def _seconds(text: str, *, zero: bool) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds") from None
    if zero and value == 0:
        return value
    if not (math.isfinite(value) and 0 < value <= MAX_INTERVAL):
        allowed = "0 (off) or " if zero else ""
        raise argparse.ArgumentTypeError(
            f"{text!r}: must be {allowed}a number of seconds in (0, {MAX_INTERVAL:g}]"
        )
    return value


def interval(text: str) -> float:
    """A period that must elapse: finite and > 0 (nan and inf would silently mean "never")."""
    return _seconds(text, zero=False)


def interval_or_off(text: str) -> float:
    return _seconds(text, zero=True)


def port(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a port number") from None
    if not 0 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"{value}: must be 0..65535")
    return value


def kube_config(kubeconfig: str | None) -> Any:
    """The lightkube configuration, loaded and resolved now: a broken one is one line, not a retry loop."""
    from codepilot_operator.clients.kube import load_config
    from codepilot_operator.reconcile.failures import one_line

    if kubeconfig:
        source = f"--kubeconfig {kubeconfig}"
    elif SERVICE_ACCOUNT_TOKEN.is_file():
        source = "the in-cluster service account"
    else:
        path = os.environ.get("KUBECONFIG") or str(Path("~/.kube/config").expanduser())
        if not Path(path).is_file():
            raise UsageError(
                "no Kubernetes connection: not in a cluster (no service account token) and no kubeconfig "
                f"(--kubeconfig, $KUBECONFIG or {path} not found)"
            )
        source = f"kubeconfig {path}"
    try:
        config = load_config(kubeconfig)
        config.get()  # resolves the current context, its cluster and user
    except Exception as exc:  # whatever lightkube or YAML raise, it is the file's content
        raise UsageError(f"{source}: not a usable Kubernetes configuration: {one_line(exc)}") from None
    return config


def metrics_socket(host: str, port_number: int) -> socket.socket | None:
    if not port_number:
        return None
    try:
        return socket.create_server((host, port_number))
    except OSError as exc:
        raise UsageError(
            f"--metrics-port {port_number}: cannot listen on {host}: {exc.strerror or exc}"
        ) from None


def with_prometheus_url(platform: PlatformPolicy, url: str | None) -> PlatformPolicy:
    """``--prometheus-url`` is the platform's default Prometheus, winning over the --platform file's: the
    flag is the more specific of the two (set for this process), and status.defaults shows it."""
    if url is None:
        return platform
    defaults = platform.defaults.model_copy(update={"prometheus_url": url})
    return platform.model_copy(update={"defaults": defaults})


def cmd_run(args: argparse.Namespace) -> int:
    import kopf

    from codepilot_operator.reconcile.handlers import Options, register

    platform = with_prometheus_url(load_platform(args.platform), args.prometheus_url)
    if args.kubeconfig:
        if not os.path.isfile(args.kubeconfig):
            raise UsageError(f"--kubeconfig: {args.kubeconfig}: no such file")
        os.environ["KUBECONFIG"] = args.kubeconfig  # kopf's login reads it; lightkube gets the path
    config = kube_config(args.kubeconfig)
    sock = metrics_socket(args.metrics_host, args.metrics_port)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    logging.getLogger("httpx2").setLevel(logging.WARNING)  # one line per request otherwise
    logging.getLogger("kopf.objects").addFilter(_quiet_timers)
    options = Options(
        kubeconfig=args.kubeconfig,
        kube_config=config,
        drift_interval=args.drift_interval,
        progress_interval=args.progress_interval,
        metrics_socket=sock,
        metrics_auth=args.metrics_auth,
        namespaces=tuple(args.namespace or ()),
        peering=bool(args.peering),
        weight_snapshots=args.weight_snapshots,
        prometheus_url=args.prometheus_url,
        platform=platform,
        api_discovery_interval=args.api_discovery_interval,
    )
    registry = kopf.OperatorRegistry()
    register(registry, options)
    peering: dict[str, Any]
    if args.peering:
        # POD_ID (downward API) is also what kopf names this replica by in the peering object.
        identity = os.environ.get("POD_ID") or socket.gethostname()
        priority = args.priority if args.priority is not None else auto_priority(identity)
        logging.getLogger(__name__).info("Peering %r with priority %d", args.peering, priority)
        peering = {"standalone": False, "peering_name": args.peering, "priority": priority}
    else:
        peering = {"standalone": True}
    try:
        kopf.run(
            registry=registry,
            clusterwide=not args.namespace,
            namespaces=args.namespace or (),
            memo=kopf.Memo(),
            **peering,
        )
    except Exception as exc:  # kopf has logged the details; a supervisor needs the exit code
        from codepilot_operator.reconcile.failures import one_line

        cause = exc.__cause__ or exc
        print(f"error: the operator stopped: {one_line(cause)}", file=sys.stderr)
        return EXIT_STOPPED
    finally:
        if sock is not None:
            sock.close()
    return 0


def register(subparsers: Any) -> None:
    p = subparsers.add_parser("run", help="run the operator (reconcile CodePilots in a cluster)")
    p.add_argument(
        "--kubeconfig", metavar="FILE", help="default: in-cluster service account, then $KUBECONFIG"
    )
    p.add_argument(
        "-n",
        "--namespace",
        action="append",
        metavar="NS",
        help="watch only this namespace (repeatable; globs like team-* allowed); default: all namespaces",
    )
    p.add_argument(
        "--peering",
        nargs="?",
        const=PEERING_DEFAULT_NAME,
        metavar="NAME",
        help=f"run several replicas safely: only the highest-priority one in ClusterKopfPeering NAME "
        f"(default {PEERING_DEFAULT_NAME}) is active; without this flag the operator runs standalone",
    )
    p.add_argument(
        "--priority",
        type=int,
        metavar="N",
        help="peering priority; default: derived from the host (pod) name so replicas differ",
    )
    p.add_argument(
        "--weight-snapshots",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="snapshot and verify every served version's weights in S3 before applying anything, and pin "
        "the snapshot in status (default: on; needs the S3 endpoint and the credentials Secret)",
    )
    p.add_argument(
        "--platform",
        metavar="FILE",
        help="the platform's settings and policy (YAML: fetcherImage, allowedFetcherImages, "
        "allowedServiceAccounts, allowedPriorityClasses, secretNames); the chart mounts its "
        "<release>-platform ConfigMap here. Default: the operator's own image, nothing else allowed",
    )
    p.add_argument(
        "--drift-interval",
        type=interval,
        default=60.0,
        metavar="SECONDS",
        help="re-apply every CodePilot this often, restoring children deleted or edited by hand (default 60)",
    )
    p.add_argument(
        "--progress-interval",
        type=interval_or_off,
        default=15.0,
        metavar="SECONDS",
        help="while a CodePilot is not Ready, refresh its status this often (default 15; 0: off)",
    )
    p.add_argument(
        "--api-discovery-interval",
        type=interval,
        default=300.0,
        metavar="SECONDS",
        help="ask which optional APIs (ServiceMonitor, PrometheusRule, ScaledObject, HTTPRoute) the "
        "cluster serves this often (default 300); a change of their CRDs is noticed at once",
    )
    p.add_argument(
        "--prometheus-url",
        type=http_url,
        metavar="URL",
        help="Prometheus HTTP API for canary analysis, instead of the --platform file's "
        "defaults.prometheusUrl (spec.rollout.analysis.prometheusUrl overrides it per CodePilot); without "
        "any, analyses are inconclusive and canaries are never promoted",
    )
    p.add_argument("--metrics-host", default="0.0.0.0", help="address of /metrics, /healthz, /readyz")
    p.add_argument(
        "--metrics-port",
        type=port,
        default=8080,
        metavar="PORT",
        help="port of /metrics, /healthz, /readyz (0: off)",
    )
    p.add_argument(
        "--metrics-auth",
        choices=["kubernetes", "none"],
        default="kubernetes",
        help="who may read /metrics: kubernetes (default) needs a bearer token that the API server "
        "authenticates (TokenReview) and allows to get /metrics (SubjectAccessReview); none: anyone who "
        "reaches the port. /healthz and /readyz never need a token",
    )
    p.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    p.set_defaults(handler=cmd_run)
