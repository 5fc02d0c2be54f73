"""Shared pytest configuration: real-component fixtures are plugins, one module per component."""

from __future__ import annotations

import pytest

pytest_plugins = [
    "tests.fixtures.s3",
    "tests.fixtures.triton",
    "tests.fixtures.prometheus",
    "tests.fixtures.kube",
    "tests.fixtures.helm",
]


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--update-goldens", action="store_true", help="rewrite golden files from current output")
