"""The API accepts what a platform engineer writes and rejects mistakes with the field path."""

from __future__ import annotations

import pytest

from codepilot_operator.api import Backend, RolloutStrategy, ScalingSignal
from codepilot_operator.api.fields import parse_duration, parse_quantity
from codepilot_operator.loader import InvalidCodePilot, parse_codepilot, parse_documents
from tests.helpers import codepilot, manifest


def test_minimal_codepilot_gets_documented_defaults() -> None:
    cp = codepilot()
    assert cp.spec.model.backend is Backend.TENSORRTLLM
    assert cp.spec.runtime.gpus == 1
    assert cp.spec.runtime.max_tokens == 2048
    assert cp.spec.runtime.resources.requests.cpu == "1"
    assert cp.spec.runtime.resources.limits.memory == "8Gi"
    assert cp.spec.rollout.strategy is RolloutStrategy.CANARY
    assert [s.weight for s in cp.spec.rollout.steps] == [10, 50]
    assert cp.spec.alerts.latency.threshold == "1s"
    assert cp.spec.alerts.latency.for_ == "5m"
    assert cp.spec.alerts.latency.severity == "critical"
    assert cp.spec.autoscaling.signal is ScalingSignal.QUEUE_TIME
    assert cp.spec.runtime.image.startswith("nvcr.io/nvidia/tritonserver:")


def _problems(doc: dict) -> list[str]:
    with pytest.raises(InvalidCodePilot) as info:
        parse_codepilot(doc)
    return info.value.problems


@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        ({"spec.runtime.gpus": -1}, "spec.runtime.gpus: "),
        ({"spec.model.source.uri": "https://bucket/x"}, "spec.model.source.uri: "),
        ({"spec.model.source.uri": "s3://Bad_Bucket/x"}, "spec.model.source.uri: "),
        ({"spec.model.version": "has space"}, "spec.model.version: "),
        ({"spec.model.backend": "vllm"}, "spec.model.backend: "),
        ({"spec.runtime.maxTokens": 0}, "spec.runtime.maxTokens: "),
        ({"spec.runtime.startupTimeout": "forever"}, "spec.runtime.startupTimeout: "),
        ({"spec.runtime.resources": {"requests": {"cpu": "lots"}}}, "spec.runtime.resources.requests.cpu: "),
        ({"spec.autoscaling": {"minReplicas": 3, "maxReplicas": 2}}, "spec.autoscaling: maxReplicas (2)"),
        (
            {"spec.rollout.steps": [{"weight": 50}, {"weight": 10}]},
            "spec.rollout: steps weights must not decrease",
        ),
        ({"spec.rollout.steps": [{"weight": 101}]}, "spec.rollout.steps[0].weight: "),
        ({"spec.alerts.latency": {"threshold": "1 second"}}, "spec.alerts.latency.threshold: "),
        ({"spec.runtime.gpuz": 1}, "spec.runtime.gpuz: unknown field"),
        ({"spec.model.name": None}, "spec.model.name: "),
        ({"metadata.name": "Coder"}, "metadata.name: "),
        ({"metadata.name": "1coder"}, "metadata.name: "),
        ({"metadata.name": "c" * 64}, "metadata.name: "),
        ({"spec.runtime.gpus": 0}, "spec: the tensorrtllm backend needs runtime.gpus >= 1"),
        (
            {"spec.runtime.resources": {"requests": {"memory": "16Gi"}, "limits": {"memory": "8Gi"}}},
            "spec.runtime.resources: requests.memory (16Gi) must not exceed limits.memory (8Gi)",
        ),
    ],
)
def test_invalid_fields_are_named(overrides: dict, expected: str) -> None:
    problems = _problems(manifest(**overrides))
    assert any(p.startswith(expected) for p in problems), problems


def test_missing_required_field_is_named() -> None:
    doc = manifest()
    del doc["spec"]["model"]["source"]
    assert _problems(doc) == ["spec.model.source: required field is missing"]


def test_wrong_kind_and_api_version_are_reported_together() -> None:
    doc = manifest(kind="Deployment", apiVersion="apps/v1")
    assert _problems(doc) == [
        "kind: expected CodePilot, got 'Deployment'",
        "apiVersion: expected serving.codepilot.dev/v1alpha1, got 'apps/v1'",
    ]


def test_quantities_accept_yaml_numbers_like_kubernetes() -> None:
    cp = codepilot(
        **{"spec.runtime.resources": {"requests": {"cpu": 2, "memory": "2Gi"}, "limits": {"cpu": 4.5}}}
    )
    assert cp.spec.runtime.resources.requests.cpu == "2"
    assert cp.spec.runtime.resources.limits.cpu == "4.5"


def test_cpu_backend_without_gpu_is_valid() -> None:
    cp = codepilot(**{"spec.model.backend": "python", "spec.runtime.gpus": 0})
    assert cp.spec.runtime.gpus == 0


def test_broken_yaml_names_the_line() -> None:
    with pytest.raises(InvalidCodePilot) as info:
        parse_documents("spec:\n  model: [unclosed\n", "cr.yaml")
    (problem,) = info.value.problems
    assert problem.startswith("cr.yaml: line ")
    assert "invalid YAML" in problem


def test_every_document_of_a_stream_is_checked() -> None:
    import yaml

    text = yaml.safe_dump_all([manifest(), manifest(**{"spec.runtime.gpus": -2})])
    with pytest.raises(InvalidCodePilot) as info:
        parse_documents(text, "two.yaml")
    assert info.value.problems == [
        "two.yaml[document 2]: spec.runtime.gpus: Input should be greater than or equal to 0"
    ]


@pytest.mark.parametrize(
    ("text", "seconds"), [("500ms", 0.5), ("30s", 30), ("5m", 300), ("1h30m", 5400), ("7d", 604800)]
)
def test_durations(text: str, seconds: float) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize(
    ("text", "value"), [("500m", 0.5), ("4Gi", 4 * 2**30), ("1k", 1000), ("2", 2), ("1e3", 1000)]
)
def test_quantities(text: str, value: float) -> None:
    assert float(parse_quantity(text)) == value
