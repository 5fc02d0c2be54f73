"""Every series a rendered rule, autoscaler query or the chart's dashboard reads is exported by someone.

Triton's names are checked against a real tritonserver's /metrics, started with the rendered arguments
(on CPU its GPU families, and the first-response histogram this Triton version lacks, are taken from the
contract, see api/contract.py); kube-state-metrics', the DCGM exporter's and Prometheus' own from the
contract (none runs here); the operator's from the registry it serves on /metrics; the rest must be
recording rules of the same PrometheusRule. The dashboard is read from the chart as the real Helm engine
renders it.
"""

from __future__ import annotations

import urllib.request

import pytest

from codepilot_operator.api import contract
from codepilot_operator.reconcile.metrics import REGISTRY
from codepilot_operator.render import render
from codepilot_operator.render.dashboard import DASHBOARD_LABEL
from tests.fixtures.helm import RenderChart
from tests.fixtures.triton import TritonServer
from tests.rules_support import WITH_AUTOSCALERS
from tests.series_sources import exposed_by, unregistered_labels, unsourced


def _report(missing: dict[str, list[str]]) -> str:
    return "read but exported by nobody:\n" + "\n".join(
        f"  {series}: {'; '.join(where)}" for series, where in sorted(missing.items())
    )


def served_names(triton: TritonServer) -> set[str]:
    """Sample names on the server's /metrics (text exposition: the name runs up to ``{`` or a space)."""
    with urllib.request.urlopen(f"http://{triton.metrics_target}/metrics", timeout=10) as response:
        text = response.read().decode()
    return {line.split("{", 1)[0].split(" ", 1)[0] for line in text.splitlines() if line and line[0] != "#"}


@pytest.fixture(scope="module")
def triton_names(triton: TritonServer) -> set[str]:
    return served_names(triton)


@pytest.fixture(scope="module")
def exported(triton_names: set[str]) -> set[str]:
    return (
        triton_names
        | set(contract.TRITON_GPU_SERIES)
        | set(contract.TRITON_NEWER_SERIES)
        | set(contract.DCGM_SERIES)
        | set(contract.KSM_SERIES)
        | set(contract.PROMETHEUS_SERIES)
        | exposed_by(REGISTRY)
    )


def test_real_triton_serves_every_cpu_series_the_contract_names(triton_names: set[str]) -> None:
    assert set(contract.TRITON_SERIES) <= triton_names
    # A GPU family on a CPU server would mean the contract has it in the wrong list.
    assert not set(contract.TRITON_GPU_SERIES) & triton_names
    # Nor a family of a later Triton: then it belongs in TRITON_SERIES, checked against the real server.
    assert not set(contract.TRITON_NEWER_SERIES) & triton_names


@pytest.mark.parametrize("name", sorted(WITH_AUTOSCALERS))
def test_every_series_read_is_exported_or_recorded(name: str, exported: set[str]) -> None:
    missing = unsourced(render(WITH_AUTOSCALERS[name]), exported)
    assert not missing, _report(missing)


def test_every_series_the_charts_dashboard_reads_is_exported(
    render_chart: RenderChart, exported: set[str]
) -> None:
    boards = [
        o for o in render_chart().of_kind("ConfigMap") if o["metadata"].get("labels", {}).get(DASHBOARD_LABEL)
    ]
    assert len(boards) == 1, "the chart ships the dashboard by default"
    assert unsourced(boards, exported) == {}, _report(unsourced(boards, exported))
    assert unregistered_labels(boards) == {}
