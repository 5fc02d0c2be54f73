"""What every ``codepilot`` command shares: the usage error, exit codes, reading manifests, YAML output.

User mistakes end with one line per problem on stderr and exit code 2, with nothing on stdout: a
rendered stream is printed only once every document rendered.
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import json
import os
import secrets
import stat
import sys
from collections.abc import Callable, Iterator, Sequence
from typing import TYPE_CHECKING, Any, BinaryIO

import pydantic_core

from codepilot_operator.cli import yaml_output

if TYPE_CHECKING:
    from codepilot_operator.api import CodePilot
    from codepilot_operator.api.platform import PlatformPolicy

EXIT_INVALID = 2


class UsageError(Exception):
    """A problem the user can fix; printed as one line per problem, no traceback."""

    def __init__(self, *problems: str):
        super().__init__("; ".join(problems))
        self.problems = list(problems)


def print_help(parser: argparse.ArgumentParser) -> Callable[[argparse.Namespace], int]:
    """The handler of a command given without its subcommand (``codepilot``, ``codepilot snapshot``):
    its help on stdout and exit 0, as kubectl and helm answer a bare command, rather than argparse's
    "the following arguments are required" line."""

    def show(args: argparse.Namespace) -> int:
        parser.print_help()
        return 0

    return show


def print_problems(problems: Sequence[str]) -> None:
    for problem in problems:
        print(f"error: {problem}", file=sys.stderr)


def _read_bounded(stream: BinaryIO, limit: int) -> bytes | None:
    """At most ``limit`` bytes, or None when there is more: /dev/zero and endless pipes end here."""
    data = stream.read(limit + 1)
    return None if len(data) > limit else data


def _read_stdin(limit: int) -> bytes | None:
    buffer = getattr(sys.stdin, "buffer", None)
    if buffer is not None:
        return _read_bounded(buffer, limit)
    text = sys.stdin.read(limit + 1)  # a text stream put in place of stdin (tests, embedding)
    return None if len(text) > limit else text.encode("utf-8")


def read_text(path: str) -> tuple[str, str]:
    """The text of a manifest file (``-`` is stdin) and the name to show in messages.

    The size is checked before anything is read (a regular file's size) and while reading (devices
    and pipes have none), so a huge or endless input costs at most the limit.
    """
    from codepilot_operator.loader import MAX_MANIFEST_BYTES, too_large

    source = "<stdin>" if path == "-" else path
    try:
        if path == "-":
            data = _read_stdin(MAX_MANIFEST_BYTES)
        else:
            with open(path, "rb") as stream:
                info = os.fstat(stream.fileno())
                too_big = stat.S_ISREG(info.st_mode) and info.st_size > MAX_MANIFEST_BYTES
                data = None if too_big else _read_bounded(stream, MAX_MANIFEST_BYTES)
    except FileNotFoundError:
        raise UsageError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise UsageError(f"{path}: is a directory") from None
    except PermissionError:
        raise UsageError(f"{path}: permission denied") from None
    except OSError as exc:
        raise UsageError(f"{path}: cannot read: {exc.strerror or exc}") from None
    if data is None:
        raise UsageError(too_large(source))
    try:
        return data.decode("utf-8"), source
    except UnicodeDecodeError:
        raise UsageError(f"{path}: not UTF-8 text") from None


def write_output(path: str, text: str) -> None:
    """Write ``text`` to ``path`` all or nothing, without replacing what is not a regular file.

    A regular file (also one reached through a symlink, which stays a link) or a new path is written
    through a temporary file in the same directory and renamed over it, keeping the old file's mode.
    A device, FIFO or socket (``/dev/stdout`` in a pipeline, ``/dev/null``) is written through: there
    is no file to leave half-written, and renaming over it would replace the node itself.
    A directory, or a path whose directory does not exist, is refused.
    """
    real = os.path.realpath(path)
    try:
        info: os.stat_result | None = os.stat(real)
    except FileNotFoundError:
        info = None
    except OSError as exc:
        raise UsageError(f"{path}: cannot write: {exc.strerror or exc}") from None
    if info is not None and stat.S_ISDIR(info.st_mode):
        raise UsageError(f"{path}: is a directory")
    try:
        if info is not None and not stat.S_ISREG(info.st_mode):
            with open(real, "w", encoding="utf-8") as out:
                out.write(text)
            return
        directory = os.path.dirname(real)
        if not os.path.isdir(directory):
            shown = os.path.dirname(path) if not os.path.islink(path) else directory
            raise UsageError(f"{path}: directory {shown} does not exist")
        _replace_atomically(real, text, None if info is None else stat.S_IMODE(info.st_mode))
    except UsageError:
        raise
    except OSError as exc:
        raise UsageError(f"{path}: cannot write: {exc.strerror or exc}") from None


def _replace_atomically(real: str, text: str, mode: int | None) -> None:
    directory, name = os.path.split(real)
    tmp = os.path.join(directory, f".{name}.{secrets.token_hex(4)}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)  # the umask applies to new files
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            out.write(text)
            out.flush()
            os.fsync(out.fileno())
        if mode is not None:
            os.chmod(tmp, mode)
        os.replace(tmp, real)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def add_namespace_option(parser: argparse.ArgumentParser) -> None:
    """``-n``: the namespace the manifests are applied in, as ``kubectl apply -n`` would."""
    parser.add_argument(
        "-n",
        "--namespace",
        help="the namespace of CodePilots whose manifest names none (default: default, as kubectl)",
    )


def load_codepilots(paths: Sequence[str], namespace: str | None = None) -> list[CodePilot]:
    """Every CodePilot in ``paths``; the problems of all files are reported together."""
    from codepilot_operator.loader import InvalidCodePilot, parse_documents

    codepilots: list[CodePilot] = []
    problems: list[str] = []
    for path in paths:
        text, source = read_text(path)
        try:
            codepilots.extend(parse_documents(text, source, namespace))
        except InvalidCodePilot as exc:
            problems.extend(exc.problems)
    if problems:
        raise UsageError(*problems)
    return codepilots


def read_settings(path: str, flag: str) -> tuple[dict[str, Any], str]:
    """The one mapping of a settings file given as ``flag FILE``, and the name to show in messages.

    The files come from ConfigMaps that others may write, so they get a manifest's bounds: the size
    (read_text), and for YAML the bounded loader (aliases, depth, duplicate keys with their line); a
    ``.json`` file is parsed as strict JSON (no duplicate keys, no NaN/Infinity; depth bounded).
    Every problem starts with ``flag FILE:``.
    """
    from codepilot_operator.loader import InvalidCodePilot, load_yaml_documents

    try:
        text, source = read_text(path)
    except UsageError as exc:
        raise UsageError(*(f"{flag} {problem}" for problem in exc.problems)) from None
    if path.endswith(".json"):
        try:
            documents = [_strict_json(text)]
        except RecursionError:
            raise UsageError(f"{flag} {source}: invalid JSON: nested too deeply") from None
        except ValueError as exc:
            raise UsageError(f"{flag} {source}: invalid JSON: {str(exc).splitlines()[0]}") from None
    else:
        try:
            documents = load_yaml_documents(text, source)
        except InvalidCodePilot as exc:
            raise UsageError(*(f"{flag} {problem}" for problem in exc.problems)) from None
    if len(documents) > 1:
        raise UsageError(f"{flag} {source}: expected one mapping of settings, found {len(documents)}")
    document = documents[0] if documents else {}
    if not isinstance(document, dict):
        raise UsageError(f"{flag} {source}: expected a mapping of settings, got {type(document).__name__}")
    return document, source


def _strict_json(text: str) -> Any:
    """JSON as the standard has it: a key twice in one object (a second value would silently win) and
    NaN/Infinity (an infinite timeout) are errors. Depth is bounded by Python's recursion limit."""

    def unique(items: list[tuple[str, Any]]) -> dict[str, Any]:
        seen: set[str] = set()
        for key, _ in items:
            if key in seen:
                raise ValueError(f"duplicate key {key!r} (JSON keeps only the last)")
            seen.add(key)
        return dict(items)

    def no_constant(name: str) -> Any:
        raise ValueError(f"{name} is not a JSON number")

    return json.loads(text, object_pairs_hook=unique, parse_constant=no_constant)


def load_platform(path: str | None) -> PlatformPolicy:
    """The platform's policy from ``--platform FILE`` (the chart's ConfigMap), or the chart's defaults."""
    from pydantic import ValidationError

    from codepilot_operator.api.platform import DEFAULT_PLATFORM, PlatformPolicy
    from codepilot_operator.loader import validation_problems

    if path is None:
        return DEFAULT_PLATFORM
    document, source = read_settings(path, "--platform")
    try:
        return PlatformPolicy.model_validate(document)
    except ValidationError as exc:
        raise UsageError(
            *(f"--platform {source}: {problem}" for problem in validation_problems(exc))
        ) from None


def load_one_codepilot(path: str, namespace: str | None = None) -> CodePilot:
    codepilots = load_codepilots([path], namespace)
    if len(codepilots) != 1:
        raise UsageError(f"{path}: expected one CodePilot, found {len(codepilots)}")
    return codepilots[0]


@contextlib.contextmanager
def collector_paused() -> Iterator[None]:
    """No cyclic garbage collection while an offline command builds its output.

    Reading, rendering and printing allocate hundreds of thousands of objects that all stay reachable
    until the command ends, so every collection the allocations trigger scans a growing heap for
    nothing: 0.13-0.19 ms per CodePilot in `codepilot render`. The input is bounded (3 MiB), so the
    few cycles left behind cost little memory; the collector is back on before anything else runs.
    """
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def dump_json(value: Any) -> str:
    """Indented JSON, as ``kubectl -o json`` prints it, with UTF-8 kept as is.

    pydantic-core's serializer (already installed with pydantic) writes the same text as
    ``json.dumps(indent=2)`` apart from non-ASCII characters, about 7x faster: the standard library
    indents only in pure Python, which was most of `codepilot render -o json`'s time.
    """
    return pydantic_core.to_json(value, indent=2).decode() + "\n"


def dump_yaml_stream(objects: Sequence[dict[str, Any]]) -> str:
    """What `codepilot render` prints: PyYAML's text, written by cli/yaml_output.py at JSON's pace."""
    return yaml_output.dump_yaml_stream(objects)
