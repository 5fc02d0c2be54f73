"""Property-based: any spec either renders objects that pass validation or fails with a clean error."""

from __future__ import annotations

import contextlib
import functools
import io
import itertools
import re
import tempfile
from pathlib import Path
from typing import Any

import jsonschema
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from codepilot_operator.api.crd import crd
from codepilot_operator.api.fields import LABEL_KEY_PATTERN, QUANTITY_PATTERN, parse_quantity
from codepilot_operator.cli import main
from codepilot_operator.loader import InvalidCodePilot, parse_codepilot
from codepilot_operator.render import render
from tests.helpers import KUBERNETES_VERSION, manifest, validate_builtin

# Custom kinds have their own validators (cloudcoil models, the Gateway API schemas in test_route.py).
CUSTOM_API_GROUPS = ("monitoring.coreos.com/", "keda.sh/", "gateway.networking.k8s.io/")

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
    signal = draw(st.sampled_from(["queueTime", "inflightRequests", "gpuUtilization", "cpu"]))
    # a cpu target is a whole percent for the HPA: at least 1
    lowest_target = 1.0 if signal == "cpu" else 0.001
    return manifest(
        **{
            "metadata.name": draw(valid_names),
            "spec.model.version": draw(valid_versions),
            "spec.model.backend": backend,
            "spec.runtime.gpus": draw(st.integers(1 if backend == "tensorrtllm" else 0, 8)),
            "spec.runtime.maxTokens": draw(st.integers(1, 131072)),
            "spec.runtime.maxBatchSize": draw(st.integers(1 if backend == "tensorrtllm" else 0, 256)),
            "spec.runtime.resources": {
                "requests": {"cpu": cpu_request, "memory": f"{memory_request}Gi"},
                "limits": {"cpu": cpu_request + draw(st.integers(0, 8)), "memory": f"{memory_request * 2}Gi"},
            },
            "spec.runtime.startupTimeout": draw(st.sampled_from(["10s", "5m", "45m", "2h"])),
            "spec.autoscaling": {
                "minReplicas": minimum,
                "maxReplicas": max(1, minimum + draw(st.integers(0, 5))),
                "signal": signal,
                "target": draw(st.one_of(st.none(), st.floats(lowest_target, 500, allow_nan=False))),
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
        if obj["apiVersion"].startswith(CUSTOM_API_GROUPS):
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


# -- Kubernetes' own limits that its OpenAPI schema does not carry ------------------------------------
# kubernetes-validate checks types and required fields; the API server also checks formats (int32,
# int64) and rules written in Go (pkg/apis/*/validation). What the rendered kinds meet of those is
# played here, so "renders objects Kubernetes accepts" means what a real API server would say.

QUANTITY = re.compile(QUANTITY_PATTERN)
LABEL_KEY = re.compile(LABEL_KEY_PATTERN)
QUANTITY_KEYS = {"cpu", "memory", "ephemeral-storage", "nvidia.com/gpu", "sizeLimit", "averageValue"}


def _int_format(bits: int) -> Any:
    return lambda value: not isinstance(value, int) or -(2 ** (bits - 1)) <= value < 2 ** (bits - 1)


FORMATS = jsonschema.FormatChecker()
FORMATS.checks("int32")(_int_format(32))
FORMATS.checks("int64")(_int_format(64))


@functools.cache
def _format_validator(api_version: str, kind: str) -> Any:
    """The schema kubernetes-validate uses for this kind, with int32/int64 formats enforced."""
    from kubernetes_validate.utils import schema_contents
    from referencing import Registry, Resource

    schemas = f"kubernetes-json-schema/v{KUBERNETES_VERSION}.0-local-strict"
    group = re.sub(r"^([^./]*)(?:\.[^/]*)?/", r"\1-", api_version)
    schema = schema_contents(f"{schemas}/{kind.lower()}-{group}.json", KUBERNETES_VERSION)
    definitions = schema_contents(f"{schemas}/_definitions.json", KUBERNETES_VERSION)
    registry = Resource.from_contents(definitions) @ (Resource.from_contents(schema) @ Registry())
    return jsonschema.Draft202012Validator(schema, registry=registry, format_checker=FORMATS)


def _walk(value: Any, path: str = "") -> Any:
    yield path, value
    if isinstance(value, dict):
        for key, sub in value.items():
            yield from _walk(sub, f"{path}.{key}")
    elif isinstance(value, list):
        for index, sub in enumerate(value):
            yield from _walk(sub, f"{path}[{index}]")


def _labels_problems(labels: dict[str, str], where: str) -> list[str]:
    problems = []
    for key, value in labels.items():
        name = key.rsplit("/", 1)[-1]
        if not LABEL_KEY.fullmatch(key) or len(name) > 63 or len(key.split("/")[0]) > 253:
            problems.append(f"{where}: label key {key!r}")
        if len(value) > 63 or not LABEL_VALUE.fullmatch(value):
            problems.append(f"{where}: label value {value!r}")
    return problems


def _toleration_problems(toleration: dict[str, Any], where: str) -> list[str]:
    problems = []
    if "tolerationSeconds" in toleration and toleration.get("effect") != "NoExecute":
        problems.append(f"{where}: tolerationSeconds without effect NoExecute")
    if toleration.get("operator") == "Exists" and toleration.get("value"):
        problems.append(f"{where}: value with operator Exists")
    if not toleration.get("key") and toleration.get("operator") != "Exists":
        problems.append(f"{where}: empty key without operator Exists")
    return problems


def kubernetes_limit_problems(obj: dict[str, Any]) -> list[str]:
    """What the API server would refuse in ``obj`` beyond its OpenAPI types."""
    problems = [
        f"{'.'.join(map(str, e.absolute_path))}: {e.message}"
        for e in _format_validator(obj["apiVersion"], obj["kind"]).iter_errors(obj)
    ]
    problems += _labels_problems(obj["metadata"].get("labels", {}), "metadata.labels")
    for path, value in _walk(obj):
        key = path.rsplit(".", 1)[-1]
        if key in QUANTITY_KEYS and isinstance(value, str):
            if not QUANTITY.fullmatch(value) or value.startswith("-"):
                problems.append(f"{path}: quantity {value!r}")
        elif key in ("periodSeconds", "timeoutSeconds", "failureThreshold", "averageUtilization"):
            if value < 1:
                problems.append(f"{path}: {value} < 1")
        elif key == "stabilizationWindowSeconds" and not 0 <= value <= 3600:
            problems.append(f"{path}: {value} outside 0..3600")
        elif key == "progressDeadlineSeconds" and value <= 0:
            problems.append(f"{path}: {value} <= 0")
        elif key == "nodeSelector":
            problems += _labels_problems(value, path)
        elif key == "tolerations":
            for index, toleration in enumerate(value):
                problems += _toleration_problems(toleration, f"{path}[{index}]")
        elif key == "resources" and isinstance(value, dict) and "limits" in value and "requests" in value:
            for name, request in value["requests"].items():
                limit = value["limits"].get(name)
                with contextlib.suppress(ValueError):  # a malformed quantity is reported above
                    if limit is not None and parse_quantity(str(request)) > parse_quantity(str(limit)):
                        problems.append(f"{path}: request {name} {request} above limit {limit}")
    return problems


def test_the_limits_oracle_catches_what_kubernetes_validate_lets_through() -> None:
    """The three defects kubernetes-validate accepted: int32 overflow, 7200 s, cpu "1\\n"."""
    objects = render(parse_codepilot(manifest(**{"spec.autoscaling": {"minReplicas": 1, "maxReplicas": 3}})))
    deployment = next(o for o in objects if o["kind"] == "Deployment")
    hpa = next(o for o in objects if o["kind"] == "HorizontalPodAutoscaler")
    assert kubernetes_limit_problems(deployment) == [] and kubernetes_limit_problems(hpa) == []
    deployment["spec"]["progressDeadlineSeconds"] = 2**40
    deployment["spec"]["template"]["spec"]["containers"][0]["resources"]["requests"]["cpu"] = "1\n"
    hpa["spec"]["behavior"]["scaleDown"]["stabilizationWindowSeconds"] = 7200
    for obj in (deployment, hpa):
        validate_builtin(obj)  # kubernetes-validate alone says yes
    assert len(kubernetes_limit_problems(deployment)) == 2
    assert len(kubernetes_limit_problems(hpa)) == 1


# -- mutations: one hostile value anywhere in a valid spec, through the real command ------------------

HOSTILE_VALUES: list[Any] = [
    "1", "1\n", "8Gi\n", True, 1.5, 0.4, -1, 0, 2**31, 2**63, 10**30, "", "x" * 300, None, [], {},
    "0s", "9s", "2h", "1000000d", "1000000000d", "-1", "1e30", float("inf"), {"a": "b"}, ["x"],
    "bad key", "not valid!", "http://user:pass@minio:9000", "NoExecute", "Exists", "cpu", 0.0001,
]  # fmt: skip


def _crd_paths(node: dict[str, Any], path: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Every settable path of the spec schema (lists by their first item), from the generated CRD."""
    paths = [path] if path else []
    for name, sub in node.get("properties", {}).items():
        paths += _crd_paths(sub, (*path, name))
    if "items" in node:
        paths += _crd_paths(node["items"], (*path, 0))
    if isinstance(node.get("additionalProperties"), dict):
        paths.append((*path, "gpu"))
    return paths


SPEC_PATHS = _crd_paths(crd()["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"])


def _set(doc: dict[str, Any], path: tuple[Any, ...], value: Any) -> None:
    node: Any = doc["spec"]
    for part, following in itertools.pairwise(path):
        if isinstance(node, list):
            while len(node) <= part:
                node.append({} if isinstance(following, str) else [])
            if not isinstance(node[part], dict | list):  # an earlier mutation put a scalar here
                node[part] = [] if isinstance(following, int) else {}
            node = node[part]
        else:
            if not isinstance(node.get(part), dict | list):
                node[part] = [] if isinstance(following, int) else {}
            node = node[part]
    if isinstance(node, list):
        node[:] = [value]
    else:
        node[path[-1]] = value


@st.composite
def mutated_specs(draw: st.DrawFn) -> dict[str, Any]:
    doc = draw(valid_specs())
    for _ in range(draw(st.integers(1, 3))):
        _set(doc, draw(st.sampled_from(SPEC_PATHS)), draw(st.sampled_from(HOSTILE_VALUES)))
    return doc


def _run_cli(*args: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(list(args))
    return code, out.getvalue(), err.getvalue()


def _check_command(text: str) -> None:
    """``codepilot render`` either prints objects Kubernetes accepts or exits 2 naming a field."""
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "cr.yaml"
        path.write_text(text)
        code, out, err = _run_cli("render", str(path))
    if code == 0:
        objects = list(yaml.safe_load_all(out))
        assert objects
        for obj in objects:
            assert _labels_problems(obj["metadata"].get("labels", {}), "metadata.labels") == []
            if obj["apiVersion"].startswith(CUSTOM_API_GROUPS):
                continue
            validate_builtin(obj)
            assert kubernetes_limit_problems(obj) == [], obj["kind"]
        return
    assert code == 2, err
    assert out == ""
    lines = err.splitlines()
    assert lines and len(lines) <= 21, err
    for line in lines:
        assert line.startswith(f"error: {path}: "), line
        where = line.removeprefix(f"error: {path}: ")
        assert FIELD_OR_PLACE.match(where), line
        assert len(line) < 400, line


# a field path (spec.runtime.gpus, tolerations[0], or any top-level key), a place in the text, the cap
FIELD_OR_PLACE = re.compile(r"^([A-Za-z(][^ ]*: |line \d+, column \d+: |larger than |\.\.\. and )")


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(mutated_specs())
def test_any_mutated_spec_renders_what_kubernetes_accepts_or_names_a_field(doc: dict[str, Any]) -> None:
    _check_command(yaml.safe_dump(doc, allow_unicode=True))


YAML_MUTATIONS = [
    lambda t: t + t.splitlines()[-1] + "\n",  # the last key twice
    lambda t: "x: &a [" + "*a," * 3 + "]\n" + t,
    lambda t: "[" * 300 + t,
    lambda t: t.replace("version: ", "version: &v ", 1) + "extra: *v\n",
    lambda t: t.replace("name: ", "name: " + "9" * 5000 + "", 1),
    lambda t: t.replace("version: ", "version: 2024-02-30 #", 1),
    lambda t: t.replace("\n", "\n\t", 1),
    lambda t: t[: len(t) // 2],
    lambda t: t.replace("spec:", "spec: !!python/object:os.system", 1),
    lambda t: t.replace("spec:", "spec: !!binary", 1),
]


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(valid_specs(), st.sampled_from(range(len(YAML_MUTATIONS))))
def test_any_mangled_yaml_is_one_clean_answer(doc: dict[str, Any], mutation: int) -> None:
    _check_command(YAML_MUTATIONS[mutation](yaml.safe_dump(doc)))
