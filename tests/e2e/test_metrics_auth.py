"""/metrics as a scraper meets it with `codepilot run --metrics-auth kubernetes` (the default).

The API server decides who may read the operator's metrics: the bearer token must authenticate
(TokenReview) and its user must be allowed get on /metrics (SubjectAccessReview); the emulator plays
both, with one Prometheus ServiceAccount bound to the metrics-reader role and one ordinary user.
"""

from __future__ import annotations

import urllib.error
import urllib.request
from collections.abc import Iterator

import pytest

from tests.e2e.conftest import Cluster, running_cluster
from tests.fixtures.kube import EmulatorThread

PROMETHEUS = "system:serviceaccount:monitoring:prometheus"
TOKENS = {
    "prometheus-token": {"username": PROMETHEUS, "groups": ["system:serviceaccounts"]},
    "alice-token": {"username": "alice", "groups": ["team-a"]},
}


@pytest.fixture(scope="module")
def guarded(kube_emulator: EmulatorThread, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    def configure(emulator: object) -> None:
        emulator.tokens.update(TOKENS)  # type: ignore[attr-defined]
        emulator.metrics_readers.add(PROMETHEUS)  # type: ignore[attr-defined]

    kube_emulator.call(configure)
    yield from running_cluster(
        kube_emulator, tmp_path_factory, "operator-metrics-auth", metrics_auth="kubernetes"
    )


def get(cluster: Cluster, path: str, token: str | None = None) -> tuple[int, str]:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    url = f"http://127.0.0.1:{cluster.operator.metrics_port}{path}"
    try:
        with urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=5) as response:
            return int(response.status), response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


def reviews(cluster: Cluster, since: int) -> list[str]:
    return [c.resource for c in cluster.calls(since=since) if c.resource.endswith("reviews")]


def test_metrics_need_a_token_the_api_server_allows(guarded: Cluster) -> None:
    cluster = guarded
    assert get(cluster, "/metrics")[0] == 401
    assert get(cluster, "/metrics", "forged-token") == (401, "the token is not valid\n")
    assert get(cluster, "/metrics", "alice-token") == (403, "alice may not get /metrics\n")
    status, body = get(cluster, "/metrics", "prometheus-token")
    assert status == 200 and "codepilot_reconcile_duration_seconds" in body
    for probe in ("/healthz", "/readyz"):  # the kubelet sends no token
        assert get(cluster, probe)[0] == 200


def test_a_scraper_costs_no_review_per_scrape(guarded: Cluster) -> None:
    cluster = guarded
    assert get(cluster, "/metrics", "prometheus-token")[0] == 200
    mark = cluster.mark()
    for _ in range(5):
        assert get(cluster, "/metrics", "prometheus-token")[0] == 200
    assert reviews(cluster, mark) == [], "a known token's answer is remembered"
    for _ in range(5):
        assert get(cluster, "/metrics", "another-forged-token")[0] == 401
    assert reviews(cluster, mark) == ["tokenreviews"], "a flood of one bad token costs one review"
