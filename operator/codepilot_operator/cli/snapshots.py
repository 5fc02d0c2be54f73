"""``codepilot fetch`` (the init container's entrypoint) and ``codepilot snapshot create|list|verify|gc``.

Exit codes: 0 done; 2 invalid input; 3 checksum mismatch; 4 bucket/object/snapshot missing;
5 access denied; 6 endpoint unreachable; 7 source changed while snapshotting; 8 local disk error;
9 another fetch is running in the destination.
Every failure is one line on stderr; tables go to stdout, progress to stderr.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from codepilot_operator.cli.support import (
    EXIT_INVALID,
    UsageError,
    add_namespace_option,
    load_one_codepilot,
    load_platform,
    print_help,
    print_problems,
)

if TYPE_CHECKING:
    from codepilot_operator.api import CodePilot
    from codepilot_operator.snapshots.store import SnapshotStore


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an integer: {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError("must be >= 1")
    return value


def _guarded(handler: Callable[[argparse.Namespace], int]) -> Callable[[argparse.Namespace], int]:
    """SnapshotError -> one line and its exit code; bad settings -> the CLI's usage error (exit 2)."""

    def run(args: argparse.Namespace) -> int:
        from codepilot_operator.snapshots.errors import EXIT_CODES, FailureReason, SnapshotError

        try:
            return handler(args)
        except SnapshotError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return exc.exit_code
        except UsageError as exc:
            print_problems(exc.problems)
            return EXIT_INVALID
        except ValueError as exc:  # bad settings (an environment variable, an argument's format)
            print_problems([str(exc)])
            return EXIT_INVALID
        except OSError as exc:
            print(f"error: {FailureReason.LOCAL_IO}: {exc}", file=sys.stderr)
            return EXIT_CODES[FailureReason.LOCAL_IO]

    return run


# -- fetch -----------------------------------------------------------------------------------------


def cmd_fetch(args: argparse.Namespace) -> int:
    from codepilot_operator.clients.s3 import S3Settings, make_client
    from codepilot_operator.snapshots.fetcher import Fetcher, plan_snapshot, plan_source
    from codepilot_operator.snapshots.manifest import parse_s3_uri, parse_snapshot_uri
    from codepilot_operator.snapshots.progress import human_bytes

    settings = S3Settings.from_env(endpoint=args.endpoint, region=args.region)
    settings = S3Settings(**{**settings.__dict__, "max_connections": max(args.workers * 2, 10)})
    client = make_client(settings)
    if args.snapshot:
        location, snapshot_id = parse_snapshot_uri(args.snapshot)
        plan = plan_snapshot(client, location, snapshot_id)
        what = f"snapshot {snapshot_id}"
    else:
        bucket, prefix = parse_s3_uri(args.source)
        plan = plan_source(client, bucket, prefix)
        what = f"{args.source} (no snapshot yet: sizes checked, digests not)"

    def waiting(lock: Path) -> None:
        print(
            f"fetch: another fetch is writing {args.dest} (it holds {lock}); waiting for it", file=sys.stderr
        )

    fetcher = Fetcher(
        client,
        workers=args.workers,
        chunk_size=args.chunk_size * 1024 * 1024,
        progress=not args.no_progress,
        verify_local=args.verify_local,
        on_wait=waiting if args.wait else None,
    )
    result = fetcher.fetch(plan, Path(args.dest))
    if args.report:
        try:
            Path(args.report).write_text(result.report().to_json(), encoding="utf-8")
        except (
            OSError
        ) as exc:  # the weights are in place: a report that cannot be written must not fail the pod
            print(f"fetch: warning: could not write the report to {args.report}: {exc}", file=sys.stderr)
    rate = result.downloaded_bytes / result.seconds if result.seconds > 0 else 0.0
    print(
        f"fetched {what} into {result.dest}: {human_bytes(result.downloaded_bytes)} downloaded "
        f"({result.files_downloaded} files), {human_bytes(result.reused_bytes)} already present "
        f"({result.files_reused} files), {result.seconds:.1f}s, {human_bytes(rate)}/s",
        file=sys.stderr,
    )
    return 0


# -- snapshot ----------------------------------------------------------------------------------------


def _codepilot(args: argparse.Namespace) -> CodePilot:
    """The CodePilot with the platform's defaults, as the operator serves it; ``--endpoint`` stands in
    for an endpoint neither sets."""
    from codepilot_operator.api.defaults import MissingSetting, with_defaults

    cp = load_one_codepilot(args.file, args.namespace)
    defaults = load_platform(args.platform).defaults
    try:
        return with_defaults(cp, defaults).codepilot
    except MissingSetting as exc:
        if not args.endpoint:
            raise UsageError(*exc.problems) from None
    source = cp.spec.model.source.model_copy(update={"endpoint": args.endpoint})
    model = cp.spec.model.model_copy(update={"source": source})
    return with_defaults(
        cp.model_copy(update={"spec": cp.spec.model_copy(update={"model": model})}), defaults
    ).codepilot


def _store(args: argparse.Namespace, cp: CodePilot) -> SnapshotStore:
    from codepilot_operator.clients.s3 import credentials_from_env
    from codepilot_operator.snapshots.service import store_for

    return store_for(cp, credentials_from_env(), endpoint=args.endpoint, progress=args.progress)


def _table(rows: Sequence[Sequence[str]]) -> str:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return "".join(
        "  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip() + "\n" for row in rows
    )


def _emit(args: argparse.Namespace, rows: Sequence[Sequence[str]], data: object) -> None:
    """The table for people, or the same facts as JSON for scripts (``-o json``: numbers stay numbers)."""
    if args.output == "json":
        sys.stdout.write(json.dumps(data, indent=2) + "\n")
    else:
        sys.stdout.write(_table(rows))


def _timestamp(when: datetime) -> str:
    return when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _age(now: datetime, then: datetime) -> str:
    seconds = max(int((now - then).total_seconds()), 0)
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


def _now(args: argparse.Namespace) -> datetime:
    if not getattr(args, "now", None):
        return datetime.now(UTC)
    try:
        value = datetime.fromisoformat(args.now)
    except ValueError:
        raise ValueError(f"--now: not an ISO 8601 time: {args.now!r}") from None
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def _resolve_ids(store: SnapshotStore, ids: Sequence[str]) -> list[str]:
    """Full IDs for what the user typed: full IDs as given, prefixes looked up in one listing (like git).

    A prefix that matches nothing is a missing snapshot (exit 4); one that is too short, or matches
    several, is invalid input (exit 2) and names the candidates.
    """
    from codepilot_operator.snapshots.manifest import is_id_prefix, resolve_id_prefix

    if not any(is_id_prefix(i) for i in ids):
        return list(ids)  # full IDs, or text that is no ID at all: the store says which
    known = [info.id for info in store.list_snapshots()]
    return [resolve_id_prefix(i, known) if is_id_prefix(i) else i for i in ids]


def cmd_snapshot_create(args: argparse.Namespace) -> int:
    from codepilot_operator.snapshots.progress import human_bytes
    from codepilot_operator.snapshots.service import ensure_snapshot

    cp = _codepilot(args)
    ref = ensure_snapshot(_store(args, cp), cp, cp.spec.model.version, now=_now(args))
    state = "existing" if ref.reused else "created"
    rows = [
        ["ID", "VERSION", "SIZE", "FILES", "STATE"],
        [ref.id, ref.version, human_bytes(ref.size_bytes), str(ref.file_count), state],
    ]
    data = {
        "id": ref.id,
        "uri": ref.uri,
        "version": ref.version,
        "sizeBytes": ref.size_bytes,
        "files": ref.file_count,
        "state": state,
    }
    _emit(args, rows, data)
    return 0


def cmd_snapshot_list(args: argparse.Namespace) -> int:
    from codepilot_operator.api.tracks import pinned_snapshot_ids
    from codepilot_operator.snapshots.progress import human_bytes

    cp = _codepilot(args)
    now = _now(args)
    pins = pinned_snapshot_ids(cp.status)
    rows = [["ID", "CREATED", "AGE", "SIZE", "FILES", "VERSIONS", "PINNED"]]
    data = []
    for info in _store(args, cp).list_snapshots():
        rows.append(
            [
                info.id,
                _timestamp(info.created),
                _age(now, info.created),
                human_bytes(info.size_bytes),
                str(info.file_count),
                ",".join(info.versions) or "-",
                "yes" if info.id in pins else "",
            ]
        )
        data.append(
            {
                "id": info.id,
                "created": _timestamp(info.created),
                "sizeBytes": info.size_bytes,
                "files": info.file_count,
                "versions": list(info.versions),
                "pinned": info.id in pins,
            }
        )
    _emit(args, rows, data)
    return 0


def cmd_snapshot_verify(args: argparse.Namespace) -> int:
    from codepilot_operator.snapshots.errors import SnapshotError
    from codepilot_operator.snapshots.progress import human_bytes

    cp = _codepilot(args)
    store = _store(args, cp)
    ids = _resolve_ids(store, args.ids) if args.ids else [info.id for info in store.list_snapshots()]
    rows, first_error = [["ID", "RESULT", "SIZE", "FILES"]], None
    data: list[dict[str, object]] = []
    for snapshot_id in ids:
        try:
            manifest = store.verify(snapshot_id, deep=not args.quick)
            result = "ok (sizes)" if args.quick else "ok"
            rows.append([snapshot_id, result, human_bytes(manifest.size_bytes), str(len(manifest.files))])
            data.append(
                {
                    "id": snapshot_id,
                    "result": "ok",
                    "checked": "sizes" if args.quick else "sha256",
                    "sizeBytes": manifest.size_bytes,
                    "files": len(manifest.files),
                }
            )
        except SnapshotError as exc:
            rows.append([snapshot_id, str(exc.reason), "-", "-"])
            data.append({"id": snapshot_id, "result": str(exc.reason), "message": str(exc)})
            print(f"error: {snapshot_id}: {exc}", file=sys.stderr)
            first_error = first_error or exc
    _emit(args, rows, data)
    return first_error.exit_code if first_error else 0


def _retention_overrides(args: argparse.Namespace) -> tuple[int | None, str | None]:
    """``--keep`` and ``--max-age`` within the bounds of the spec fields they override.

    Checked here rather than by argparse so that a bad value is one ``error:`` line like every other
    problem, and before anything is read or any connection is made.
    """
    from codepilot_operator.api.spec import RETENTION_KEEP_MAX, RETENTION_MAX_AGE

    keep = None
    if args.keep is not None:
        try:
            keep = int(args.keep)
        except ValueError:
            raise UsageError(f"--keep: not an integer: {args.keep!r}") from None
        if not 0 <= keep <= RETENTION_KEEP_MAX:
            raise UsageError(f"--keep: must be between 0 and {RETENTION_KEEP_MAX}")
    if args.max_age is not None:
        try:
            RETENTION_MAX_AGE.check(args.max_age)
        except ValueError as exc:
            raise UsageError(f"--max-age: {exc}") from None
    return keep, args.max_age


def cmd_snapshot_gc(args: argparse.Namespace) -> int:
    from codepilot_operator.api.fields import parse_duration
    from codepilot_operator.api.tracks import pinned_snapshot_ids
    from codepilot_operator.snapshots.progress import human_bytes
    from codepilot_operator.snapshots.retention import RetentionPolicy
    from codepilot_operator.snapshots.service import retention_policy

    keep, max_age = _retention_overrides(args)
    cp = _codepilot(args)
    policy = retention_policy(cp)
    if keep is not None:
        policy = RetentionPolicy(keep, policy.max_age)
    if max_age is not None:
        policy = RetentionPolicy(policy.keep_last, timedelta(seconds=parse_duration(max_age)))
    store = _store(args, cp)
    pins = set(_resolve_ids(store, args.pin)) if args.pin else set()
    result = store.gc(pinned_snapshot_ids(cp.status) | pins, policy, _now(args), dry_run=args.dry_run)
    rows = [["ID", "ACTION", "WHY"]]
    rows += [[i, "keep", ", ".join(why)] for i, why in result.kept.items()]
    verb = "would delete" if args.dry_run else "deleted"
    rows += [[i, verb, "not pinned, not among the newest, older than maxAge"] for i in result.deleted]
    data = {
        "dryRun": args.dry_run,
        "kept": [{"id": i, "why": list(why)} for i, why in result.kept.items()],
        "deleted": list(result.deleted),
        "blobsDeleted": result.blobs_deleted,
        "bytesFreed": result.bytes_freed,
    }
    _emit(args, rows, data)
    if not args.dry_run:
        print(
            f"gc: {len(result.deleted)} snapshots and {result.blobs_deleted} unreferenced blobs deleted "
            f"({human_bytes(result.bytes_freed)} freed)",
            file=sys.stderr,
        )
    return 0


def register(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "fetch",
        help="download and verify a weight snapshot into a directory (the init container's entrypoint)",
        description="Reads S3_ENDPOINT, S3_REGION, AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, "
        "AWS_SESSION_TOKEN, S3_CONNECT_TIMEOUT and S3_READ_TIMEOUT from the environment; https:// "
        "endpoints use TLS.",
    )
    source = p.add_mutually_exclusive_group(required=True)
    source.add_argument("--snapshot", metavar="URI", help="s3://bucket/<prefix>/<snapshot id>")
    source.add_argument("--source", metavar="URI", help="s3://bucket/prefix (unverified)")
    p.add_argument("--dest", required=True, metavar="DIR", help="directory that receives the files")
    p.add_argument("--endpoint", help="S3 endpoint URL (default: $S3_ENDPOINT)")
    p.add_argument("--region", help="S3 region (default: $S3_REGION)")
    p.add_argument("--workers", type=_positive_int, default=16, help="parallel GETs (default 16)")
    p.add_argument("--chunk-size", type=_positive_int, default=32, metavar="MIB", help="ranged GET size (32)")
    p.add_argument("--verify-local", action="store_true", help="re-hash files already on disk too")
    p.add_argument(
        "--wait",
        action="store_true",
        help="wait for another fetch writing the destination (a shared cache) instead of exit code 9",
    )
    p.add_argument(
        "--report",
        metavar="FILE",
        help="write what was downloaded and reused as JSON to FILE (in a pod: /dev/termination-log)",
    )
    p.add_argument("--no-progress", action="store_true", help="no progress lines on stderr")
    p.set_defaults(handler=_guarded(cmd_fetch))

    snap = subparsers.add_parser("snapshot", help="create, list, verify and garbage-collect weight snapshots")
    ssub = snap.add_subparsers(dest="snapshot_command", metavar="ACTION")
    snap.set_defaults(handler=print_help(snap))

    def common(parser: argparse.ArgumentParser) -> None:
        parser.add_argument("file", metavar="FILE", help="CodePilot manifest; - for stdin")
        add_namespace_option(parser)
        parser.add_argument("--endpoint", help="S3 endpoint URL overriding spec.model.source.endpoint")
        parser.add_argument(
            "--platform", metavar="FILE", help="the platform's defaults, as for `codepilot render`"
        )
        shown = parser.add_mutually_exclusive_group()
        shown.add_argument(
            "--progress",
            action="store_true",
            default=None,
            help="progress with rate and time left on stderr also when it is not a terminal (a log)",
        )
        shown.add_argument(
            "--no-progress",
            dest="progress",
            action="store_false",
            default=None,
            help="no progress on stderr (default: only when stderr is a terminal)",
        )
        parser.add_argument(
            "-o", "--output", choices=("table", "json"), default="table", help="output format (default table)"
        )

    p = ssub.add_parser("create", help="snapshot spec.model.source as spec.model.version (idempotent)")
    common(p)
    p.set_defaults(handler=_guarded(cmd_snapshot_create))

    p = ssub.add_parser("list", help="table of the CodePilot's snapshots, newest first")
    common(p)
    p.add_argument("--now", help=argparse.SUPPRESS)
    p.set_defaults(handler=_guarded(cmd_snapshot_list))

    p = ssub.add_parser("verify", help="re-hash snapshots in S3 (all, or the IDs given)")
    common(p)
    p.add_argument(
        "ids", nargs="*", metavar="ID", help="snapshot IDs or unambiguous prefixes (4+ hex digits)"
    )
    p.add_argument("--quick", action="store_true", help="check presence and sizes only")
    p.set_defaults(handler=_guarded(cmd_snapshot_verify))

    p = ssub.add_parser("gc", help="delete snapshots outside retention (pinned ones never)")
    common(p)
    p.add_argument(
        "--pin", action="append", default=[], metavar="ID", help="also keep this snapshot (ID or prefix)"
    )
    p.add_argument("--keep", metavar="N", help="override spec.model.source.retention.keep (0-1000)")
    p.add_argument("--max-age", help="override spec.model.source.retention.maxAge, e.g. 7d")
    p.add_argument("--dry-run", action="store_true", help="print the decision, delete nothing")
    p.add_argument("--now", help="evaluate retention at this ISO 8601 time instead of the clock")
    p.set_defaults(handler=_guarded(cmd_snapshot_gc))
