"""Shared pytest configuration: real-component fixtures are plugins, one module per component."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from typing import Any

import pytest

pytest_plugins = [
    "tests.fixtures.s3",
    "tests.fixtures.triton",
    "tests.fixtures.prometheus",
    "tests.fixtures.kube",
    "tests.fixtures.helm",
    "tests.fixtures.volume",
]


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--update-goldens", action="store_true", help="rewrite golden files from current output")


def _loopback_only(address: object) -> None:
    """Refuse a connection from the test process to anything but this machine's loopback."""
    if not isinstance(address, tuple) or not address:
        return  # AF_UNIX paths and the like never leave the machine
    host = str(address[0])
    if host in ("localhost", "::1") or host.startswith("127.") or host.startswith("::ffff:127."):
        return
    raise OSError(f"tests talk to loopback only: refused a connection to {address!r}")


@pytest.fixture(autouse=True, scope="session")
def _no_connections_off_the_machine() -> Iterator[None]:
    """Every test talks to loopback only (servers the fixtures start): a call out of the machine fails.

    Subprocesses are not covered by this guard; the fixtures that start servers turn off what would call
    out (SeaweedFS's telemetry, see tests/fixtures/s3.py).
    """
    original_connect, original_connect_ex = socket.socket.connect, socket.socket.connect_ex

    def connect(self: socket.socket, address: Any) -> None:
        _loopback_only(address)
        original_connect(self, address)

    def connect_ex(self: socket.socket, address: Any) -> int:
        _loopback_only(address)
        return original_connect_ex(self, address)

    socket.socket.connect = connect  # type: ignore[method-assign]
    socket.socket.connect_ex = connect_ex  # type: ignore[method-assign]
    try:
        yield
    finally:
        socket.socket.connect, socket.socket.connect_ex = original_connect, original_connect_ex  # type: ignore[method-assign]
