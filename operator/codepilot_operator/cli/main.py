"""``codepilot``: render, validate and generate offline; run the operator; fetch and manage weight snapshots.

The command line is a package of its own: the feature packages (reconcile, snapshots, rollout) are
libraries that never see argparse; each module here turns one group of commands into calls to them.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable, Sequence

from codepilot_operator.cli import gateway, offline, rollout, run, snapshots
from codepilot_operator.cli.support import EXIT_INVALID, UsageError, print_help, print_problems

Handler = Callable[[argparse.Namespace], int]
COMMAND_GROUPS = (offline, run, snapshots, rollout, gateway)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="codepilot", description=__doc__.splitlines()[0] if __doc__ else None
    )
    parser.add_argument("--version", action="version", version=_version())
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for group in COMMAND_GROUPS:
        group.register(sub)
    parser.set_defaults(handler=print_help(parser))
    return parser


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
        print_problems(exc.problems)
        return EXIT_INVALID
    except BrokenPipeError:  # `codepilot render ... | head`
        return 0
    except KeyboardInterrupt:
        return 130
