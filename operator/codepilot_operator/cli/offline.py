"""``codepilot render | validate | crd``: everything that needs no cluster and no S3."""

from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING, Any

from codepilot_operator.cli.support import (
    UsageError,
    add_namespace_option,
    collector_paused,
    dump_json,
    dump_yaml_stream,
    load_codepilots,
    load_platform,
    write_output,
)

if TYPE_CHECKING:
    from codepilot_operator.api import CodePilot
    from codepilot_operator.api.platform import PlatformPolicy

OUTPUT_FORMATS = ("yaml", "json")


def resolved_codepilots(args: argparse.Namespace) -> tuple[list[CodePilot], PlatformPolicy]:
    """The CodePilots of ``args.files`` with the platform's defaults filled in, as the operator serves
    them; a field neither sets is one line per CodePilot, naming it."""
    from codepilot_operator.api.defaults import MissingSetting, with_defaults

    platform = load_platform(args.platform)
    resolved: list[CodePilot] = []
    problems: list[str] = []
    for cp in load_codepilots(args.files, args.namespace):
        try:
            resolved.append(with_defaults(cp, platform.defaults).codepilot)
        except MissingSetting as exc:
            where = f"{cp.metadata.namespace}/{cp.metadata.name}"
            problems.extend(f"{where}: {problem}" for problem in exc.problems)
    if problems:
        raise UsageError(*problems)
    return resolved, platform


def cmd_render(args: argparse.Namespace) -> int:
    from codepilot_operator.render import render

    with collector_paused():
        codepilots, platform = resolved_codepilots(args)
        objects = [obj for cp in codepilots for obj in render(cp, platform=platform)]
        if args.output == "json":
            text = dump_json({"apiVersion": "v1", "kind": "List", "items": objects})
        else:
            text = dump_yaml_stream(objects)
    sys.stdout.write(text)
    return 0


def cmd_validate(args: argparse.Namespace) -> int:
    with collector_paused():
        codepilots = resolved_codepilots(args)[0]
    for cp in codepilots:
        print(f"{cp.metadata.namespace}/{cp.metadata.name}: valid", file=sys.stderr)
    return 0


def cmd_crd(args: argparse.Namespace) -> int:
    from codepilot_operator.api.crd import crd

    output_format, output_file = _crd_output(args)
    text = dump_json(crd()) if output_format == "json" else dump_yaml_stream([crd()])
    if output_file:
        write_output(output_file, text)  # all or nothing: never a half-written CRD file
    else:
        sys.stdout.write(text)
    return 0


def _crd_output(args: argparse.Namespace) -> tuple[str, str | None]:
    """``-o`` is the output format, as everywhere; ``-o FILE`` (what it meant before) still writes FILE,
    with a warning, so scripts keep working while they move to ``--output-file``."""
    if args.output in OUTPUT_FORMATS:
        return args.output, args.output_file
    if args.output_file:
        raise UsageError(f"-o: expected one of {', '.join(OUTPUT_FORMATS)}, got {args.output!r}")
    print(
        f"warning: -o FILE is deprecated (-o is the output format): use --output-file {args.output}",
        file=sys.stderr,
    )
    return "yaml", args.output


def _platform_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--platform",
        metavar="FILE",
        help="the platform's settings and defaults, as the operator reads them (the chart's "
        "<release>-platform ConfigMap, key platform.yaml); default: the chart's defaults",
    )


def register(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "render", help="print every Kubernetes object a CodePilot needs (no cluster needed)"
    )
    p.add_argument("files", nargs="+", metavar="FILE", help="CodePilot manifest(s); - for stdin")
    add_namespace_option(p)
    p.add_argument(
        "-o", "--output", choices=OUTPUT_FORMATS, default="yaml", help="output format (default yaml)"
    )
    _platform_argument(p)
    p.set_defaults(handler=cmd_render)

    p = subparsers.add_parser("validate", help="check CodePilot manifests against the API")
    p.add_argument("files", nargs="+", metavar="FILE")
    add_namespace_option(p)
    _platform_argument(p)
    p.set_defaults(handler=cmd_validate)

    p = subparsers.add_parser("crd", help="print the CustomResourceDefinition generated from the API types")
    p.add_argument(
        "-o",
        "--output",
        default="yaml",
        metavar="{yaml,json}",
        help="output format (default yaml)",
    )
    p.add_argument(
        "-f",
        "--output-file",
        metavar="FILE",
        help="write to FILE atomically instead of stdout (devices and pipes are written through)",
    )
    p.set_defaults(handler=cmd_crd)
