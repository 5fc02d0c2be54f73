"""``codepilot render | validate | crd``: everything that needs no cluster and no S3."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from codepilot_operator.cli.support import (
    dump_json,
    dump_yaml_stream,
    load_codepilots,
    load_platform,
    write_output,
)


def cmd_render(args: argparse.Namespace) -> int:
    from codepilot_operator.render import render

    platform = load_platform(args.platform)
    objects = [obj for cp in load_codepilots(args.files) for obj in render(cp, platform=platform)]
    if args.output == "json":
        text = dump_json({"apiVersion": "v1", "kind": "List", "items": objects})
    else:
        text = dump_yaml_stream(objects)
    sys.stdout.write(text)
    return 0


def cmd_validate(args: argparse.Namespace) -> int:
    for cp in load_codepilots(args.files):
        print(f"{cp.metadata.namespace}/{cp.metadata.name}: valid", file=sys.stderr)
    return 0


def cmd_crd(args: argparse.Namespace) -> int:
    from codepilot_operator.api.crd import crd

    text = dump_yaml_stream([crd()])
    if args.output:
        write_output(args.output, text)  # all or nothing: never a half-written CRD file
    else:
        sys.stdout.write(text)
    return 0


def register(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "render", help="print every Kubernetes object a CodePilot needs (no cluster needed)"
    )
    p.add_argument("files", nargs="+", metavar="FILE", help="CodePilot manifest(s); - for stdin")
    p.add_argument("-o", "--output", choices=["yaml", "json"], default="yaml")
    p.add_argument(
        "--platform",
        metavar="FILE",
        help="the platform's settings, as the operator reads them (the chart's <release>-platform "
        "ConfigMap, key platform.yaml); default: the chart's defaults",
    )
    p.set_defaults(handler=cmd_render)

    p = subparsers.add_parser("validate", help="check CodePilot manifests against the API")
    p.add_argument("files", nargs="+", metavar="FILE")
    p.set_defaults(handler=cmd_validate)

    p = subparsers.add_parser("crd", help="print the CustomResourceDefinition generated from the API types")
    p.add_argument(
        "-o",
        "--output",
        metavar="FILE",
        help="write to FILE atomically instead of stdout (devices and pipes are written through)",
    )
    p.set_defaults(handler=cmd_crd)
