"""The ``codepilot`` command line (entry point ``codepilot_operator.cli:main``)."""

from codepilot_operator.cli.main import build_parser, main

__all__ = ["build_parser", "main"]
