"""A CodePilot that sets no S3 endpoint, under an operator whose platform sets none either: refused with
a condition and an Event naming the field, nothing applied (its own module: one operator per emulator)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.e2e.conftest import Cluster, running_cluster, wait_for
from tests.e2e.test_defaults import uri_only
from tests.fixtures.kube import EmulatorThread


@pytest.fixture(scope="module")
def no_defaults(kube_emulator: EmulatorThread, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    """The chart's default platform: no endpoint to fall back on."""
    yield from running_cluster(kube_emulator, tmp_path_factory, "operator-no-defaults")


def test_without_any_endpoint_the_codepilot_is_refused_naming_the_field(no_defaults: Cluster) -> None:
    cluster, ns = no_defaults, "defaults-missing"
    cluster.api.create("codepilots", uri_only(ns))

    degraded = wait_for(
        "Degraded=True", lambda: (c := cluster.condition(ns, "Degraded")) and c["status"] == "True" and c
    )
    assert degraded["reason"] == "InvalidSpec"
    assert "spec.model.source.endpoint: required" in degraded["message"]
    assert "defaults.source.endpoint" in degraded["message"]
    events = wait_for(
        "an InvalidSpec Event", lambda: [e for e in cluster.events(ns) if e.get("reason") == "InvalidSpec"]
    )
    assert "spec.model.source.endpoint" in events[0]["message"]
    assert cluster.api.list("deployments", ns) == []
