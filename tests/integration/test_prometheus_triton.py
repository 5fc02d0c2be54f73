"""A real Prometheus scraping a real Triton evaluates the rendered rules after real requests.

The chain under test is the one a cluster runs: the rendered Deployment's pod labels, the rendered
ServiceMonitor's relabelings (emulated as a static scrape config, see tests/fixtures/prometheus.py),
Triton's own metrics, and the rendered recording and alerting rules, loaded into Prometheus as files.
"""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import pytest
import tritonclient.http as triton_http

from codepilot_operator.api import CodePilot, ScalingSignal
from codepilot_operator.render import render
from codepilot_operator.render.prometheusrule import rule_groups
from codepilot_operator.render.served import served_versions
from codepilot_operator.render.servicemonitor import meta_pod_label
from codepilot_operator.render.signals import SIGNALS
from tests.fixtures.prometheus import PrometheusServer, servicemonitor_scrape_config
from tests.fixtures.triton import FAIL_PREFIX, GenerateFailed, TritonServer, generate
from tests.rules_support import write_rule_files

GOOD_REQUESTS = 48
FAILED_REQUESTS = 4
CONCURRENCY = 8  # more than one batch of 4 at a time, so requests queue
POD_NAME = "coder-v1-7c9d5-x2x4z"
SCOPE = 'namespace="team-a", codepilot="coder", version="v1"'
QUEUE_SIGNAL = SIGNALS[ScalingSignal.QUEUE_TIME].series
INFLIGHT_SIGNAL = SIGNALS[ScalingSignal.INFLIGHT_REQUESTS].series


@dataclass
class Traffic:
    success: int
    failed: int
    mean_latency: float  # seconds, from Triton's own statistics API
    mean_queue: float


def _succeeded(request: Future[Any]) -> bool:
    try:
        request.result()
    except GenerateFailed:
        return False
    return True


def send_traffic(server: TritonServer) -> Traffic:
    """All requests at once over CONCURRENCY connections, through Triton's generate endpoint."""
    with ThreadPoolExecutor(CONCURRENCY) as pool:
        pending = [pool.submit(generate, server, f"def f{i}(x):") for i in range(GOOD_REQUESTS)]
        outcomes = [_succeeded(request) for request in pending]
        # One at a time: a failing prompt fails its whole batch, which must hold no good request.
        for i in range(FAILED_REQUESTS):
            outcomes.append(_succeeded(pool.submit(generate, server, f"{FAIL_PREFIX} {i}")))
    client = triton_http.InferenceServerClient(server.http_url)
    (stats,) = client.get_inference_statistics(server.model)["model_stats"]
    client.close()
    success = stats["inference_stats"]["success"]
    queue = stats["inference_stats"]["queue"]
    return Traffic(
        success=outcomes.count(True),
        failed=outcomes.count(False),
        mean_latency=success["ns"] / success["count"] / 1e9,
        mean_queue=queue["ns"] / queue["count"] / 1e9,
    )


def meta_labels(server: TritonServer) -> dict[str, str]:
    """Service-discovery labels Prometheus would attach to the pod of the rendered Deployment."""
    cp = server.codepilot
    objects = render(cp)
    (deployment,) = [o for o in objects if o["kind"] == "Deployment"]
    pod_labels = deployment["spec"]["template"]["metadata"]["labels"]
    return {
        "__meta_kubernetes_namespace": cp.metadata.namespace,
        "__meta_kubernetes_pod_name": POD_NAME,
        "__meta_kubernetes_service_name": deployment["metadata"]["name"],
        **{meta_pod_label(k): v for k, v in pod_labels.items()},
    }


@dataclass
class Scraped:
    prometheus: PrometheusServer
    traffic: Traffic
    codepilot: CodePilot


@pytest.fixture(scope="module")
def scraped(triton: TritonServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Scraped]:
    cp = triton.codepilot
    (monitor,) = [o for o in render(cp) if o["kind"] == "ServiceMonitor"]
    rules_dir = tmp_path_factory.mktemp("rules")
    rule_files = write_rule_files(rules_dir, cp)
    scrape = servicemonitor_scrape_config(monitor, triton.metrics_target, meta_labels(triton))
    server = PrometheusServer(tmp_path_factory.mktemp("prometheus"), [scrape], rule_files)
    try:
        server.wait_for('up{job="triton"} == 1')
        server.wait_for(f"nv_inference_request_success{{{SCOPE}}}")  # a sample before the traffic
        traffic = send_traffic(triton)
        server.wait_for(
            f"sum(nv_inference_request_success{{{SCOPE}}})",
            lambda r: bool(r) and float(r[0]["value"][1]) >= traffic.success,
        )
        yield Scraped(server, traffic, cp)
    finally:
        server.stop()


def value(result: list[dict[str, Any]]) -> float:
    (sample,) = result
    return float(sample["value"][1])


def near(expected: float, tolerance: float = 0.1) -> Any:
    return lambda r: len(r) == 1 and abs(value(r) - expected) <= tolerance * expected


def test_requests_were_served_and_failed_as_sent(scraped: Scraped) -> None:
    traffic = scraped.traffic
    assert (traffic.success, traffic.failed) == (GOOD_REQUESTS, FAILED_REQUESTS)


def test_triton_series_carry_codepilot_namespace_version_and_pod(scraped: Scraped) -> None:
    server = scraped.prometheus
    (sample,) = server.query(f"nv_inference_request_success{{{SCOPE}}}")
    labels = sample["metric"]
    assert (labels["namespace"], labels["codepilot"], labels["version"], labels["pod"]) == (
        "team-a",
        "coder",
        "v1",
        POD_NAME,
    )
    assert labels["exported_version"] == "1"  # Triton's model-directory version, kept aside
    assert not any(name.startswith("__meta") for name in labels)


def test_every_rendered_rule_loads_and_evaluates_without_error(scraped: Scraped) -> None:
    server = scraped.prometheus
    cp = scraped.codepilot
    expected = {g["name"]: len(g["rules"]) for g in rule_groups(cp, served_versions(cp))}

    def all_evaluated(groups: list[dict[str, Any]]) -> bool:
        return all(r["health"] == "ok" for g in groups for r in g["rules"])

    groups: list[dict[str, Any]] = []
    for _ in range(40):
        groups = server.api("rules")["groups"]
        if all_evaluated(groups):
            break
        server.wait_for("vector(1)")  # one round trip; rules evaluate every second
    assert {g["name"]: len(g["rules"]) for g in groups} == expected
    errors = [(r["name"], r.get("lastError")) for g in groups for r in g["rules"] if r["health"] != "ok"]
    assert errors == []


def test_recorded_latency_matches_tritons_own_statistics(scraped: Scraped) -> None:
    server, traffic = scraped.prometheus, scraped.traffic
    assert 0.02 <= traffic.mean_latency < 5  # model.py works 20 ms per batch
    result = server.wait_for(
        f"codepilot_version:request_latency_seconds:mean2m{{{SCOPE}}}", near(traffic.mean_latency)
    )
    assert set(result[0]["metric"]) == {"__name__", "namespace", "codepilot", "version"}


def test_recorded_queue_time_is_sane_and_matches_tritons_statistics(
    scraped: Scraped,
) -> None:
    server, traffic = scraped.prometheus, scraped.traffic
    assert 0 < traffic.mean_queue < traffic.mean_latency  # 8 concurrent requests, batches of 4: they queue
    server.wait_for(f"codepilot_version:queue_time_seconds:mean2m{{{SCOPE}}}", near(traffic.mean_queue))
    latency = value(server.query(f"codepilot_version:request_latency_seconds:mean2m{{{SCOPE}}}"))
    queue = value(server.query(f"codepilot_version:queue_time_seconds:mean2m{{{SCOPE}}}"))
    assert 0 < queue < latency


def test_recorded_error_ratio_counts_the_failed_requests(scraped: Scraped) -> None:
    server, traffic = scraped.prometheus, scraped.traffic
    expected = traffic.failed / (traffic.failed + traffic.success)
    server.wait_for(f"codepilot_version:request_errors:ratio_rate5m{{{SCOPE}}}", near(expected, 0.02))


def test_per_pod_autoscaling_signals_are_recorded_for_the_pod(scraped: Scraped) -> None:
    server, traffic = scraped.prometheus, scraped.traffic
    queue_ms = server.wait_for(f'{QUEUE_SIGNAL}{{pod="{POD_NAME}"}}')
    assert 0 < value(queue_ms) <= traffic.mean_latency * 1000
    inflight = server.wait_for(f'{INFLIGHT_SIGNAL}{{pod="{POD_NAME}"}}')
    assert 0 < value(inflight) <= CONCURRENCY
