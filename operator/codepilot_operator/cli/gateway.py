"""``codepilot gateway``: the OpenAI-compatible endpoint (the gateway container's entrypoint).

The configuration is the file the operator renders into the gateway's ConfigMap; a bad file ends with
one line per problem and exit code 2 before any port is opened.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
from typing import Any

from codepilot_operator.api.endpoint import API_PORT, OPS_PORT
from codepilot_operator.cli.support import UsageError, read_settings


def load_config(path: str) -> Any:
    from pydantic import ValidationError

    from codepilot_operator.api.endpoint import GatewayConfig
    from codepilot_operator.loader import validation_problems

    document, source = read_settings(path, "--config")
    try:
        return GatewayConfig.model_validate(document)
    except ValidationError as exc:
        raise UsageError(*(f"--config {source}: {problem}" for problem in validation_problems(exc))) from None


def cmd_gateway(args: argparse.Namespace) -> int:
    from codepilot_operator.gateway.server import serve

    config = load_config(args.config)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    asyncio.run(serve(config, args.host, args.port, args.metrics_port))
    return 0


def register(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "gateway", help="serve the OpenAI-compatible API in front of Triton (the gateway container)"
    )
    p.add_argument("--config", required=True, metavar="FILE", help="the gateway configuration (rendered)")
    p.add_argument("--host", default="0.0.0.0", help="address to listen on (default 0.0.0.0)")
    p.add_argument("--port", type=int, default=API_PORT, help=f"OpenAI API port (default {API_PORT})")
    p.add_argument(
        "--metrics-port", type=int, default=OPS_PORT, help=f"/metrics, /healthz, /readyz (default {OPS_PORT})"
    )
    p.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    p.set_defaults(handler=cmd_gateway)
