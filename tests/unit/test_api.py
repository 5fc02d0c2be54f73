"""The API accepts what a platform engineer writes and rejects mistakes with the field path."""

from __future__ import annotations

import itertools

import pytest

from codepilot_operator.api import Backend, RolloutStrategy, ScalingSignal
from codepilot_operator.api.defaults import with_defaults
from codepilot_operator.api.fields import parse_duration, parse_quantity
from codepilot_operator.api.platform import PlatformDefaults
from codepilot_operator.loader import InvalidCodePilot, parse_codepilot, parse_documents
from tests.helpers import EXAMPLES, codepilot, manifest


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
    # No schema default for the Triton image: the platform's (or the operator's) is filled in later.
    assert cp.spec.runtime.image is None
    assert with_defaults(cp, PlatformDefaults()).codepilot.spec.runtime.image.startswith(
        "nvcr.io/nvidia/tritonserver:"
    )


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
        ({"spec.runtime.maxBatchSize": 0}, "spec: the tensorrtllm backend needs runtime.maxBatchSize >= 1"),
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


def test_quantities_accept_yaml_integers_like_the_crd() -> None:
    """The CRD types a quantity as int-or-string: an integer passes, a float is refused (see below)."""
    cp = codepilot(
        **{"spec.runtime.resources": {"requests": {"cpu": 2, "memory": "2Gi"}, "limits": {"cpu": "4.5"}}}
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


# -- values the API server (or Kubernetes behind it) would refuse are refused here first -------------


@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        # strings, floats and booleans where the CRD says integer / number / boolean
        ({"spec.runtime.gpus": "1"}, "spec.runtime.gpus: Input should be a valid integer"),
        ({"spec.runtime.maxTokens": 2048.0}, "spec.runtime.maxTokens: Input should be a valid integer"),
        ({"spec.runtime.gpus": True}, "spec.runtime.gpus: Input should be a valid integer"),
        ({"spec.autoscaling.target": "5"}, "spec.autoscaling.target: Input should be a valid number"),
        ({"spec.autoscaling.target": float("nan")}, "spec.autoscaling.target: Input should be a finite"),
        ({"spec.alerts.enabled": "yes"}, "spec.alerts.enabled: Input should be a valid boolean"),
        ({"spec.alerts.slo.objective": "99.9"}, "spec.alerts.slo.objective: Input should be a valid number"),
        # quantities: no booleans, no floats, no trailing newline, no negative amounts
        ({"spec.runtime.resources": {"requests": {"cpu": True}}}, "spec.runtime.resources.requests.cpu: "),
        ({"spec.runtime.resources": {"requests": {"cpu": 0.5}}}, "spec.runtime.resources.requests.cpu: "),
        ({"spec.runtime.resources": {"requests": {"cpu": "1\n"}}}, "spec.runtime.resources.requests.cpu: "),
        (
            {"spec.runtime.resources": {"limits": {"memory": "8Gi\n"}}},
            "spec.runtime.resources.limits.memory: ",
        ),
        ({"spec.runtime.resources": {"requests": {"cpu": "-1"}}}, "spec.runtime.resources.requests.cpu: "),
        ({"spec.runtime.resources": {"requests": {"cpu": -1}}}, "spec.runtime.resources.requests.cpu: "),
        ({"spec.runtime.shmSize": "0"}, "spec.runtime.shmSize: "),
        # durations rendered into Kubernetes seconds fields stay within what those fields take
        (
            {"spec.autoscaling": {"minReplicas": 1, "maxReplicas": 3, "scaleDownStabilization": "2h"}},
            "spec.autoscaling.scaleDownStabilization: must be at most 1h",
        ),
        ({"spec.runtime.startupTimeout": "1000000d"}, "spec.runtime.startupTimeout: must be at most 24855d"),
        ({"spec.runtime.startupTimeout": "9s999ms"}, "spec.runtime.startupTimeout: must be at least 10s"),
        ({"spec.alerts.slo.window": "99999999999999999999d"}, "spec.alerts.slo.window: must be at most"),
        ({"spec.runtime.startupTimeout": "1m\n"}, "spec.runtime.startupTimeout: "),
        # tolerations as core/v1 validates them
        (
            {"spec.runtime.tolerations": [{"key": "k", "effect": "NoExecute", "tolerationSeconds": "1e30"}]},
            "spec.runtime.tolerations[0].tolerationSeconds: Input should be a valid integer",
        ),
        (
            {"spec.runtime.tolerations": [{"key": "k", "effect": "NoExecute", "tolerationSeconds": 10**30}]},
            "spec.runtime.tolerations[0].tolerationSeconds: Input should be less than or equal to",
        ),
        (
            {"spec.runtime.tolerations": [{"key": "k", "effect": "NoExecute", "tolerationSeconds": 1.0e30}]},
            "spec.runtime.tolerations[0].tolerationSeconds: Input should be a valid integer",
        ),
        (
            {"spec.runtime.tolerations": [{"key": "k", "effect": "NoSchedule", "tolerationSeconds": 60}]},
            "spec.runtime.tolerations[0]: tolerationSeconds needs effect NoExecute",
        ),
        (
            {"spec.runtime.tolerations": [{"key": "k", "operator": "Exists", "value": "v"}]},
            "spec.runtime.tolerations[0]: value must be empty when operator is Exists",
        ),
        (
            {"spec.runtime.tolerations": [{"operator": "Equal", "value": "v"}]},
            "spec.runtime.tolerations[0]: operator must be Exists when key is empty",
        ),
        ({"spec.runtime.tolerations": [{"key": "bad key"}]}, "spec.runtime.tolerations[0].key: "),
        # labels and node selectors are label keys and values
        ({"spec.runtime.nodeSelector": {"bad key": "x"}}, "spec.runtime.nodeSelector: "),
        ({"spec.runtime.nodeSelector": {"gpu": "not valid!"}}, "spec.runtime.nodeSelector.gpu: "),
        ({"spec.alerts.labels": {"release": "-x"}}, "spec.alerts.labels.release: "),
        # an HPA target Kubernetes would round to zero
        (
            {"spec.autoscaling.target": 0.0001},
            "spec.autoscaling.target: Input should be greater than or equal",
        ),
        (
            {"spec.autoscaling": {"maxReplicas": 2, "signal": "cpu", "target": 0.4}},
            "spec.autoscaling: a cpu target is a whole percent >= 1",
        ),
        ({"spec.runtime.image": "triton "}, "spec.runtime.image: "),
        # rules the operator needs from the API
        (
            {"spec.model.source.retention": {"maxAge": "1000000000d"}},
            "spec.model.source.retention.maxAge: must be at most 3650d",
        ),
        (
            {"spec.model.source.endpoint": "http://user:pass@minio:9000"},
            "spec.model.source.endpoint: must not carry credentials (user:password@): "
            "put them in the Secret named by credentialsSecret",
        ),
        ({"spec.model.source.endpoint": "https://admin@minio:9000"}, "spec.model.source.endpoint: must not"),
    ],
)
def test_values_kubernetes_would_refuse_are_named(overrides: dict, expected: str) -> None:
    problems = _problems(manifest(**overrides))
    assert any(p.startswith(expected) for p in problems), problems


@pytest.mark.parametrize(
    "overrides",
    [
        {"spec.autoscaling": {"minReplicas": 1, "maxReplicas": 3, "scaleDownStabilization": "1h"}},
        {"spec.autoscaling": {"maxReplicas": 3, "signal": "cpu", "target": 1}},
        {"spec.autoscaling": {"maxReplicas": 3, "target": 0.001}},
        {"spec.runtime.startupTimeout": "10s"},
        {"spec.runtime.startupTimeout": "24855d"},
        {"spec.model.source.retention": {"maxAge": "3650d", "keep": 0}},
        {"spec.runtime.tolerations": [{"key": "k", "effect": "NoExecute", "tolerationSeconds": 300}]},
        {"spec.runtime.tolerations": [{"operator": "Exists"}]},
        {"spec.runtime.nodeSelector": {"nvidia.com/gpu.product": "NVIDIA-H100", "empty": ""}},
        {"spec.alerts.labels": {"release": "kube-prometheus-stack"}},
        {"spec.alerts.slo.objective": 99},
        {"spec.model.source.endpoint": "https://minio.storage.svc:9000/"},
    ],
)
def test_values_at_the_bounds_are_accepted(overrides: dict) -> None:
    codepilot(**overrides)


# -- untrusted YAML costs bounded memory and time, and never echoes itself whole ---------------------


@pytest.fixture(params=["libyaml-composer", "libyaml", "pure-python"])
def each_loader(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """The bounds hold on libyaml's composer (what reads small texts), on libyaml's parser with the
    bounded composer (larger texts, and whatever the first refuses) and on PyYAML's own (installs
    without libyaml)."""
    from codepilot_operator import loader

    if request.param != "libyaml-composer":
        monkeypatch.setattr(loader, "_ComposedInC", None)
    if request.param == "pure-python":
        monkeypatch.setattr(loader, "_BoundedLoader", loader._PurePythonLoader)
    return str(request.param)


def test_manifests_are_read_with_libyaml() -> None:
    """Pure-Python scanning cost ~5 ms per CodePilot in `codepilot render`; libyaml's ~1.5 ms."""
    from yaml._yaml import CParser

    from codepilot_operator import loader

    assert issubclass(loader._BoundedLoader, CParser)


def billion_laughs(levels: int = 9) -> str:
    """The classic entity-expansion bomb as YAML aliases: nine times more nodes per level."""
    lines = ['a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    names = "abcdefghijklmnop"[:levels]
    for prev, name in itertools.pairwise(names):
        lines.append(f"{name}: &{name} [{','.join(['*' + prev] * 9)}]")
    lines.append(f"kind: *{names[levels - 1]}")
    return "\n".join(lines) + "\n"


@pytest.mark.parametrize(
    "text",
    [
        billion_laughs(6),
        "metadata: &m {name: a, self: *m}\n",
        "[" * 500 + "]" * 500,
        "- " * 70 + "a\n",
        "a: 1\na: 2\n",
        "when: 2024-01-01\n",
        "base: &b {x: 1}\nderived: {<<: *b}\n",
        "gpus: " + "1" * 5000 + "\n",
        "[" + "1," * 105_000 + "1]",
    ],
    ids=[
        "aliases",
        "cycle",
        "flow-depth",
        "block-depth",
        "duplicate",
        "timestamp",
        "merge",
        "huge-int",
        "many-nodes",
    ],
)
def test_libyaml_composer_refuses_what_is_beyond_the_bounds(text: str) -> None:
    """Composed by libyaml, every node is counted before anything is built from it: a text past a
    bound never reaches construction on that path (the bounded composer then names the problem)."""
    from codepilot_operator import loader

    assert loader._ComposedInC is not None
    with pytest.raises((loader._BeyondBounds, ValueError)):
        loader._documents(text, loader._ComposedInC)


@pytest.mark.parametrize(
    "text",
    [
        "a: &x [1, 2]\nb: *x\nc: *x\n",
        "deep: &d " + "[" * 40 + "]" * 40 + "\nagain: " + "[" * 30 + "*d" + "]" * 30 + "\n",
        "2: int\n'2': str\ntrue: bool\n~: null\n1.5: float\n0x1f: hex\n1_000: under\n",
        "a: .inf\nb: -.5\nc: 1e3\nd: 0o17\ne: 1:30\nf: !!str 12\ng: ''\nh:\n",
        "---\n---\na: 1\n...\n---\n- x\n",
    ],
    ids=["shared", "depth-through-alias", "key-types", "scalars", "documents"],
)
def test_both_composers_read_json_like_data_alike(text: str) -> None:
    """What libyaml's composer path accepts, the bounded composer reads as the same data (an alias is
    checked for depth where its anchor was met, on both)."""
    from codepilot_operator import loader

    assert loader._ComposedInC is not None
    fast = loader._documents(text, loader._ComposedInC)
    assert fast == loader._documents(text, loader._BoundedLoader)
    assert [type(d) for d in fast] == [type(d) for d in loader._documents(text, loader._BoundedLoader)]


def test_both_composers_read_the_examples_alike() -> None:
    from codepilot_operator import loader

    assert loader._ComposedInC is not None
    for path in EXAMPLES:
        text = path.read_text()
        assert loader._documents(text, loader._ComposedInC) == loader._documents(text, loader._BoundedLoader)


def _yaml_problems(text: str) -> list[str]:
    with pytest.raises(InvalidCodePilot) as info:
        parse_documents(text, "cr.yaml")
    return info.value.problems


@pytest.mark.usefixtures("each_loader")
def test_alias_expansion_is_bounded() -> None:
    # six levels are 600k nodes once expanded: cheap to build, large to echo
    (problem,) = _yaml_problems(billion_laughs(6))
    assert problem.startswith("cr.yaml: line 6, column ")
    assert "more than 100000 nodes once aliases are expanded" in problem
    assert len(problem) < 200


@pytest.mark.usefixtures("each_loader")
def test_recursive_alias_is_refused() -> None:
    (problem,) = _yaml_problems("metadata: &m {name: a, self: *m}\n")
    assert problem == "cr.yaml: line 1, column 30: invalid YAML: alias *m refers to a node that contains it"


@pytest.mark.usefixtures("each_loader")
def test_nesting_depth_is_bounded() -> None:
    (problem,) = _yaml_problems("[" * 500)
    assert problem == "cr.yaml: line 1, column 65: invalid YAML: nested deeper than 64 levels"


@pytest.mark.usefixtures("each_loader")
def test_duplicate_keys_are_an_error_naming_key_and_line() -> None:
    text = "apiVersion: serving.codepilot.dev/v1alpha1\nkind: CodePilot\nspec:\n  gpus: 1\n  gpus: 2\n"
    assert _yaml_problems(text) == [
        "cr.yaml: line 5, column 3: invalid YAML: duplicate key 'gpus' (first at line 4)"
    ]


@pytest.mark.usefixtures("each_loader")
def test_merge_keys_may_be_overridden() -> None:
    """``<<: *base`` then an explicit key is YAML's documented override, not a duplicate."""
    doc = "base: &b {a: 1, b: 2}\nderived: {<<: *b, a: 3}\n"
    from codepilot_operator.loader import load_yaml_documents

    assert load_yaml_documents(doc) == [{"base": {"a": 1, "b": 2}, "derived": {"a": 3, "b": 2}}]


def test_text_larger_than_the_limit_is_refused_unread() -> None:
    from codepilot_operator.loader import MAX_MANIFEST_BYTES

    (problem,) = _yaml_problems("#" * (MAX_MANIFEST_BYTES + 1))
    assert problem == "cr.yaml: larger than 3 MiB (the API server's request limit); not a CodePilot"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "apiVersion: serving.codepilot.dev/v1alpha1\nkind: " + "x" * 1_000_000 + "\n",
            "cr.yaml: kind: expected CodePilot, got 'xxxxxxxx",
        ),
        ("*" + "a" * 1_000_000 + "\n", "cr.yaml: line 1, column 1: invalid YAML: found undefined alias"),
        ("gpus: " + "1" * 5000 + "\n", "cr.yaml: line 1, column 7: invalid YAML: cannot read this value"),
        ("version: 2024-02-30\n", "cr.yaml: line 1, column 10: invalid YAML: cannot read this value"),
    ],
)
@pytest.mark.usefixtures("each_loader")
def test_long_or_odd_values_are_not_echoed_whole(text: str, expected: str) -> None:
    (problem,) = _yaml_problems(text)
    assert problem.startswith(expected), problem
    assert len(problem) < 300, problem


def test_unknown_field_with_a_huge_name_is_shortened() -> None:
    doc = manifest(**{"spec.runtime": {"g" * 100_000: 1}})
    (problem,) = _problems(doc)
    assert problem.startswith("spec.runtime.gggg") and problem.endswith(": unknown field")
    assert len(problem) < 200


def test_many_problems_are_capped() -> None:
    doc = manifest(**{"spec.runtime.nodeSelector": {f"k{i}": i for i in range(1000)}})
    problems = _problems(doc)
    assert len(problems) == 21
    assert problems[-1] == "... and 980 more problems"
