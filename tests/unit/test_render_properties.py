"""Property-based: any spec either renders objects that pass validation or fails with a clean error."""

from __future__ import annotations

import re
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from codepilot_operator.loader import InvalidCodePilot, parse_codepilot
from codepilot_operator.render import render
from tests.helpers import manifest, validate_builtin

LABEL_VALUE = re.compile(r"^([A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?)?$")
DNS1035 = re.compile(r"^[a-z]([-a-z0-9]*[a-z0-9])?$")

names = st.from_regex(r"[a-z][a-z0-9-]{0,70}", fullmatch=True)
versions = st.one_of(
    st.from_regex(r"[A-Za-z0-9][A-Za-z0-9._-]{0,70}", fullmatch=True),
    st.text(max_size=8),
)
quantities = st.one_of(
    st.sampled_from(["500m", "1", "2", "4Gi", "8Gi", "16Gi", "lots", "-1"]), st.integers(-1, 64)
)
durations = st.sampled_from(["1s", "30s", "5m", "1h30m", "500ms", "7d", "soon", "5"])


@st.composite
def specs(draw: st.DrawFn) -> dict[str, Any]:
    backend = draw(st.sampled_from(["tensorrtllm", "python", "onnxruntime", "vllm"]))
    minimum = draw(st.integers(-1, 6))
    overrides: dict[str, Any] = {
        "metadata.name": draw(names),
        "spec.model.version": draw(versions),
        "spec.model.backend": backend,
        "spec.runtime.gpus": draw(st.integers(-1, 9)),
        "spec.runtime.maxTokens": draw(st.integers(0, 200_000)),
        "spec.runtime.maxBatchSize": draw(st.integers(-1, 300)),
        "spec.runtime.resources": {
            "requests": {"cpu": draw(quantities), "memory": draw(quantities)},
            "limits": {"cpu": draw(quantities), "memory": draw(quantities)},
        },
        "spec.runtime.startupTimeout": draw(durations),
        "spec.autoscaling": {
            "minReplicas": minimum,
            "maxReplicas": minimum + draw(st.integers(-1, 5)),
            "signal": draw(st.sampled_from(["queueTime", "inflightRequests", "gpuUtilization", "cpu"])),
            "target": draw(st.one_of(st.none(), st.floats(0.001, 500, allow_nan=False))),
        },
        "spec.rollout": {
            "strategy": draw(st.sampled_from(["Canary", "ABTest", "Immediate"])),
            "steps": [
                {"weight": w, "pause": draw(durations)}
                for w in draw(st.lists(st.integers(0, 101), max_size=4))
            ],
        },
        "spec.alerts": {"latency": {"threshold": draw(durations), "for": draw(durations)}},
    }
    if draw(st.booleans()):
        overrides["spec.runtime.nodeSelector"] = {"nvidia.com/gpu.product": "NVIDIA-A100"}
        overrides["spec.runtime.tolerations"] = [
            {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}
        ]
    return manifest(**{k: v for k, v in overrides.items() if v is not None})


valid_names = st.from_regex(r"[a-z]([a-z0-9-]{0,61}[a-z0-9])?", fullmatch=True)
valid_versions = st.from_regex(r"[A-Za-z0-9]([A-Za-z0-9._-]{0,61}[A-Za-z0-9])?", fullmatch=True)
valid_durations = st.sampled_from(["1s", "30s", "5m", "1h30m", "500ms", "7d", "2m30s"])


@st.composite
def valid_specs(draw: st.DrawFn) -> dict[str, Any]:
    """Specs the API must accept: every one of them has to render valid objects."""
    backend = draw(st.sampled_from(["tensorrtllm", "python", "onnxruntime"]))
    minimum = draw(st.integers(0, 6))
    cpu_request = draw(st.integers(1, 16))
    memory_request = draw(st.integers(1, 64))
    return manifest(
        **{
            "metadata.name": draw(valid_names),
            "spec.model.version": draw(valid_versions),
            "spec.model.backend": backend,
            "spec.runtime.gpus": draw(st.integers(1 if backend == "tensorrtllm" else 0, 8)),
            "spec.runtime.maxTokens": draw(st.integers(1, 131072)),
            "spec.runtime.maxBatchSize": draw(st.integers(0, 256)),
            "spec.runtime.resources": {
                "requests": {"cpu": cpu_request, "memory": f"{memory_request}Gi"},
                "limits": {"cpu": cpu_request + draw(st.integers(0, 8)), "memory": f"{memory_request * 2}Gi"},
            },
            "spec.runtime.startupTimeout": draw(st.sampled_from(["10s", "5m", "45m", "2h"])),
            "spec.autoscaling": {
                "minReplicas": minimum,
                "maxReplicas": max(1, minimum + draw(st.integers(0, 5))),
                "signal": draw(st.sampled_from(["queueTime", "inflightRequests", "gpuUtilization", "cpu"])),
                "target": draw(st.one_of(st.none(), st.floats(0.001, 500, allow_nan=False))),
            },
            "spec.rollout": {
                "strategy": draw(st.sampled_from(["Canary", "ABTest", "Immediate"])),
                "steps": [
                    {"weight": w, "pause": draw(valid_durations)}
                    for w in sorted(draw(st.lists(st.integers(1, 100), min_size=1, max_size=4)))
                ],
            },
            "spec.alerts": {"latency": {"threshold": draw(valid_durations), "for": draw(valid_durations)}},
        }
    )


def _check_rendered(doc: dict[str, Any]) -> None:
    objects = render(parse_codepilot(doc))
    assert objects
    for obj in objects:
        meta = obj["metadata"]
        assert len(meta["name"]) <= 63 and DNS1035.match(meta["name"]), meta["name"]
        for value in meta["labels"].values():
            assert len(value) <= 63 and LABEL_VALUE.match(value), value
        if obj["apiVersion"].startswith(("monitoring.coreos.com/", "keda.sh/")):
            continue
        validate_builtin(obj)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(valid_specs())
def test_every_valid_spec_renders_objects_that_validate(doc: dict[str, Any]) -> None:
    _check_rendered(doc)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.one_of(specs(), valid_specs()))
def test_any_spec_renders_valid_objects_or_fails_cleanly(doc: dict[str, Any]) -> None:
    try:
        parse_codepilot(doc)
    except InvalidCodePilot as exc:
        assert exc.problems
        assert all(": " in p and "\n" not in p and "Traceback" not in p for p in exc.problems)
        return
    _check_rendered(doc)
