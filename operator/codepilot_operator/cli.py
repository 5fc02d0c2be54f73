"""``codepilot``: render, validate and generate offline; run the operator; fetch and manage weight snapshots.

User mistakes end with one line per problem on stderr and exit code 2, with nothing on stdout: a
rendered stream is printed only once every document rendered.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import yaml

EXIT_INVALID = 2
Handler = Callable[[argparse.Namespace], int]


class UsageError(Exception):
    """A problem the user can fix; printed as one line per problem, no traceback."""

    def __init__(self, *problems: str):
        super().__init__("; ".join(problems))
        self.problems = list(problems)


def _read(path: str) -> tuple[str, str]:
    if path == "-":
        return sys.stdin.read(), "<stdin>"
    try:
        return Path(path).read_text(encoding="utf-8"), path
    except FileNotFoundError:
        raise UsageError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise UsageError(f"{path}: is a directory") from None
    except UnicodeDecodeError:
        raise UsageError(f"{path}: not UTF-8 text") from None


class _ReadableDumper(yaml.SafeDumper):
    """Multi-line strings (config.pbtxt, dashboards) as literal blocks, so rendered YAML stays reviewable."""


def _represent_str(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    if "\n" in value:
        return dumper.represent_scalar("tag:yaml.org,2002:str", value, style="|")
    return dumper.represent_scalar("tag:yaml.org,2002:str", value)


_ReadableDumper.add_representer(str, _represent_str)


def dump_yaml_stream(objects: Sequence[dict[str, Any]]) -> str:
    return yaml.dump_all(
        objects, Dumper=_ReadableDumper, sort_keys=False, default_flow_style=False, width=1_000_000
    )


def _load(paths: Sequence[str]) -> list[Any]:
    from codepilot_operator.loader import InvalidCodePilot, parse_documents

    codepilots, problems = [], []
    for path in paths:
        text, source = _read(path)
        try:
            codepilots.extend(parse_documents(text, source))
        except InvalidCodePilot as exc:
            problems.extend(exc.problems)
    if problems:
        raise UsageError(*problems)
    return codepilots


def cmd_render(args: argparse.Namespace) -> int:
    from codepilot_operator.render import render

    objects = [obj for cp in _load(args.files) for obj in render(cp)]
    if args.output == "json":
        text = json.dumps({"apiVersion": "v1", "kind": "List", "items": objects}, indent=2) + "\n"
    else:
        text = dump_yaml_stream(objects)
    sys.stdout.write(text)
    return 0


def cmd_validate(args: argparse.Namespace) -> int:
    codepilots = _load(args.files)
    for cp in codepilots:
        print(f"{cp.metadata.namespace}/{cp.metadata.name}: valid", file=sys.stderr)
    return 0


def cmd_crd(args: argparse.Namespace) -> int:
    from codepilot_operator.api.crd import crd

    text = dump_yaml_stream([crd()])
    if args.output:
        target = Path(args.output)
        tmp = target.with_name(f".{target.name}.tmp")
        tmp.write_text(text, encoding="utf-8")
        tmp.replace(target)  # all or nothing: never a half-written CRD file
    else:
        sys.stdout.write(text)
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="codepilot", description=__doc__.splitlines()[0] if __doc__ else None
    )
    parser.add_argument("--version", action="version", version=_version())
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("render", help="print every Kubernetes object a CodePilot needs (no cluster needed)")
    p.add_argument("files", nargs="+", metavar="FILE", help="CodePilot manifest(s); - for stdin")
    p.add_argument("-o", "--output", choices=["yaml", "json"], default="yaml")
    p.set_defaults(handler=cmd_render)

    p = sub.add_parser("validate", help="check CodePilot manifests against the API")
    p.add_argument("files", nargs="+", metavar="FILE")
    p.set_defaults(handler=cmd_validate)

    p = sub.add_parser("crd", help="print the CustomResourceDefinition generated from the API types")
    p.add_argument("-o", "--output", metavar="FILE", help="write to FILE atomically instead of stdout")
    p.set_defaults(handler=cmd_crd)

    for register in _extra_commands():
        register(sub)
    return parser


def _extra_commands() -> list[Callable[[Any], None]]:
    """Commands that live beside their feature; their modules import heavy libraries only when run."""
    from codepilot_operator.reconcile import commands as operator_commands
    from codepilot_operator.snapshots import commands as snapshot_commands

    return [operator_commands.register, snapshot_commands.register]


def _version() -> str:
    from codepilot_operator import __version__

    return f"codepilot {__version__}"


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    handler: Handler = args.handler
    try:
        return handler(args)
    except UsageError as exc:
        for problem in exc.problems:
            print(f"error: {problem}", file=sys.stderr)
        return EXIT_INVALID
    except BrokenPipeError:  # `codepilot render ... | head`
        return 0
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
