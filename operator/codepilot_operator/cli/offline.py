"""``codepilot render | validate | crd``: everything that needs no cluster and no S3."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from codepilot_operator.cli.support import (
    UsageError,
    add_namespace_option,
    dump_json,
    dump_yaml_stream,
    load_codepilots,
    load_platform,
    write_output,
)

OUTPUT_FORMATS = ("yaml", "json")


def cmd_render(args: argparse.Namespace) -> int:
    from codepilot_operator.render import render

    platform = load_platform(args.platform)
    codepilots = load_codepilots(args.files, args.namespace)
    objects = [obj for cp in codepilots for obj in render(cp, platform=platform)]
    if args.output == "json":
        text = dump_json({"apiVersion": "v1", "kind": "List", "items": objects})
    else:
        text = dump_yaml_stream(objects)
    sys.stdout.write(text)
    return 0


def cmd_validate(args: argparse.Namespace) -> int:
    for cp in load_codepilots(args.files, args.namespace):
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


def register(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "render", help="print every Kubernetes object a CodePilot needs (no cluster needed)"
    )
    p.add_argument("files", nargs="+", metavar="FILE", help="CodePilot manifest(s); - for stdin")
    add_namespace_option(p)
    p.add_argument(
        "-o", "--output", choices=OUTPUT_FORMATS, default="yaml", help="output format (default yaml)"
    )
    p.add_argument(
        "--platform",
        metavar="FILE",
        help="the platform's settings, as the operator reads them (the chart's <release>-platform "
        "ConfigMap, key platform.yaml); default: the chart's defaults",
    )
    p.set_defaults(handler=cmd_render)

    p = subparsers.add_parser("validate", help="check CodePilot manifests against the API")
    p.add_argument("files", nargs="+", metavar="FILE")
    add_namespace_option(p)
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
