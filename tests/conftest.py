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
    parser.addoption("--run-kind", action="store_true", help="run tests that need a real kind cluster")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if config.getoption("--run-kind"):
        return
    skip_kind = pytest.mark.skip(reason="needs a real cluster: pass --run-kind")
    for item in items:
        if "kind" in item.keywords:
            item.add_marker(skip_kind)
