"""The chart's dashboard against a real Prometheus scraping a real Triton (started with the rendered
arguments, labelled by the rendered ServiceMonitor's relabelings), after real requests: one of each
for this module.

Every query (panels and template variables, the variables substituted as Grafana does) must parse and
evaluate in Prometheus; the panels on Triton's series must show the traffic that was sent. Panels on
kube-state-metrics and DCGM series have no exporter here: their joins are checked by promtool in
tests/unit/test_dashboard.py.
"""

from __future__ import annotations

import shutil
import tempfile
import urllib.error
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from codepilot_operator.api import CodePilot
from codepilot_operator.render import render
from codepilot_operator.render.dashboard import dashboard
from tests.dashboard_support import SAMPLE, dashboard_queries, substitute, variable_selector
from tests.fixtures.prometheus import PrometheusServer, servicemonitor_scrape_config
from tests.fixtures.triton import start_triton
from tests.integration.test_prometheus_triton import Scraped, meta_labels, send_traffic, value

# Wide enough to hold every request of the fixture's single burst while these tests run.
WINDOW = "5m"
BOARD = dashboard()


@pytest.fixture(scope="module")
def scraped(triton_codepilot: CodePilot, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Scraped]:
    """A Triton of this module's own: the session's Triton is shared, and test_prometheus_triton.py
    compares Prometheus with that server's cumulative statistics, which a second burst would skew."""
    workdir = Path(tempfile.mkdtemp(prefix="codepilot-dashboard-triton-"))
    triton = start_triton(triton_codepilot, workdir)
    (monitor,) = [o for o in render(triton_codepilot) if o["kind"] == "ServiceMonitor"]
    scrape = servicemonitor_scrape_config(monitor, triton.metrics_target, meta_labels(triton))
    server = PrometheusServer(tmp_path_factory.mktemp("prometheus"), [scrape], [])
    try:
        server.wait_for('up{job="triton"} == 1')
        server.wait_for('nv_inference_request_success{namespace="team-a", codepilot="coder"}')
        traffic = send_traffic(triton)
        # both counters: the failing requests go last, so a scrape can hold every success and not
        # yet the failures (the error ratio was then half what was sent)
        for counter, sent in (("success", traffic.success), ("failure", traffic.failed)):
            server.wait_for(
                f'sum(nv_inference_request_{counter}{{namespace="team-a", codepilot="coder"}})',
                lambda r, sent=sent: bool(r) and float(r[0]["value"][1]) >= sent,
            )
        yield Scraped(server, traffic, triton_codepilot)
    finally:
        server.stop()
        triton.stop()
        shutil.rmtree(workdir, ignore_errors=True)


def _targets(title: str) -> dict[str, str]:
    """legend prefix ("mean", "p95", ...) -> expression substituted for team-a/coder/v1."""
    (panel,) = [p for p in BOARD["panels"] if p["title"] == title]
    return {
        t["legendFormat"].split(" ")[0]: substitute(t["expr"], rate_interval=WINDOW) for t in panel["targets"]
    }


def _one(server: PrometheusServer, expr: str) -> float:
    result = server.wait_for(expr, lambda r: len(r) == 1)
    assert {k: v for k, v in result[0]["metric"].items() if k in SAMPLE} == SAMPLE
    return value(result)


@pytest.mark.parametrize("where, expr", list(dashboard_queries(BOARD)), ids=lambda x: str(x)[:60])
def test_every_query_parses_and_evaluates_in_prometheus(scraped: Scraped, where: str, expr: str) -> None:
    try:
        scraped.prometheus.query(substitute(expr))
    except urllib.error.HTTPError as exc:  # 400 bad_data: a parse or evaluation error, with its message
        pytest.fail(f"{where}: {exc.read().decode()}")


def test_the_query_test_fails_on_invalid_promql(scraped: Scraped) -> None:
    with pytest.raises(urllib.error.HTTPError):
        scraped.prometheus.query("sum by (namespace (up)")


def test_the_variables_offer_the_scraped_codepilot(scraped: Scraped) -> None:
    """What Grafana asks for ``label_values(selector, label)``: the label's values on matching series."""
    for variable in BOARD["templating"]["list"][1:]:
        selector, label = variable_selector(variable["query"]["query"])
        params = {"match[]": substitute(selector)}
        values: list[Any] = scraped.prometheus.api(f"label/{label}/values", **params)
        assert values == [SAMPLE[label]], variable["name"]


def test_request_rate_and_error_ratio_show_the_traffic_sent(scraped: Scraped) -> None:
    server, traffic = scraped.prometheus, scraped.traffic
    (requests,) = _targets("Requests per second").values()
    assert _one(server, requests) > 0
    (ratio,) = _targets("Error ratio").values()
    expected = traffic.failed / (traffic.failed + traffic.success)
    assert _one(server, ratio) == pytest.approx(expected, rel=0.05)
    (by_reason,) = _targets("Failed requests per second, by reason").values()
    reasons = server.query(by_reason)
    assert {r["metric"]["reason"] for r in reasons if float(r["value"][1]) > 0} == {"BACKEND"}


def test_latency_and_queue_time_show_mean_and_p95_from_triton(scraped: Scraped) -> None:
    server, traffic = scraped.prometheus, scraped.traffic
    latency = _targets("Request latency: mean and p95")
    assert _one(server, latency["mean"]) == pytest.approx(traffic.mean_latency, rel=0.1)
    p95 = _one(server, latency["p95"])  # Triton's summary, on because the rendered arguments turn it on
    assert traffic.mean_latency * 0.5 < p95 < 10
    queue = _targets("Queue time: mean and p95")
    assert _one(server, queue["mean"]) == pytest.approx(traffic.mean_queue, rel=0.1)
    assert 0 < _one(server, queue["p95"]) < p95
