"""What a platform engineer would check in the rendered objects."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from codepilot_operator.api import CodePilot
from codepilot_operator.api.status import CodePilotStatus, TrackSnapshot
from codepilot_operator.cli.support import dump_yaml_stream
from codepilot_operator.render import ServedVersion, render, served_versions
from codepilot_operator.render.names import dns_label, version_slug
from codepilot_operator.render.tritonconfig import MODEL_REPOSITORY
from tests.helpers import EXAMPLES, codepilot, load_example, validate_builtin

GOLDEN = Path(__file__).parent / "golden"
DNS1035 = re.compile(r"^[a-z]([-a-z0-9]*[a-z0-9])?$")
LABEL_VALUE = re.compile(r"^([A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?)?$")


def by_kind(objects: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [o for o in objects if o["kind"] == kind]


CUSTOM_GROUPS = frozenset({"monitoring.coreos.com", "keda.sh", "gateway.networking.k8s.io"})


def only(objects: list[dict[str, Any]], kind: str) -> dict[str, Any]:
    (obj,) = by_kind(objects, kind)
    return obj


@pytest.mark.parametrize("example", EXAMPLES, ids=lambda p: p.stem)
def test_rendered_examples_match_golden_files(example: Path, request: pytest.FixtureRequest) -> None:
    text = dump_yaml_stream(render(load_example(example)))
    golden = GOLDEN / f"{example.stem}.yaml"
    if request.config.getoption("--update-goldens"):
        golden.write_text(text)
    assert golden.exists(), f"no golden file {golden.name}: run pytest --update-goldens"
    assert text == golden.read_text(), f"{golden.name} differs: review and run pytest --update-goldens"


@pytest.mark.parametrize("example", EXAMPLES, ids=lambda p: p.stem)
def test_every_rendered_builtin_validates_strictly(example: Path) -> None:
    for obj in render(load_example(example)):
        if obj["apiVersion"].split("/")[0] in CUSTOM_GROUPS:
            continue  # custom kinds are validated against their upstream models elsewhere (test_route.py...)
        validate_builtin(obj)


def test_render_is_the_same_bytes_whatever_the_hash_seed() -> None:
    """Two processes with different hash seeds: set or dict-of-set ordering would show up here.

    (Within one process two calls always agree, and the goldens are compared under one seed.)
    """
    import os
    import subprocess
    import sys

    outputs = []
    for seed in ("1", "2"):
        result = subprocess.run(
            [sys.executable, "-m", "codepilot_operator.cli", "render", *map(str, EXAMPLES)],
            capture_output=True,
            check=True,
            env={**os.environ, "PYTHONHASHSEED": seed},
        )
        outputs.append(result.stdout)
    assert outputs[0] == outputs[1] and outputs[0]


def test_every_object_is_namespaced_and_labelled() -> None:
    for obj in render(codepilot()):
        meta = obj["metadata"]
        assert meta["namespace"] == "team-a"
        labels = meta["labels"]
        assert labels["app.kubernetes.io/name"] == "codepilot"
        assert labels["app.kubernetes.io/instance"] == "coder"
        assert labels["app.kubernetes.io/managed-by"] == "codepilot-operator"
        assert "app.kubernetes.io/component" in labels


def test_deployment_serves_triton_with_gpu_probes_and_shm() -> None:
    cp = codepilot(**{"spec.runtime.gpus": 2, "spec.runtime.shmSize": "4Gi"})
    deployment = only(render(cp), "Deployment")
    pod = deployment["spec"]["template"]["spec"]
    (triton,) = pod["containers"]
    assert triton["command"] == ["tritonserver"]
    assert "--load-model=codellama-7b" in triton["args"]
    assert triton["resources"]["limits"]["nvidia.com/gpu"] == "2"
    assert triton["readinessProbe"]["httpGet"]["path"] == "/v2/health/ready"
    assert triton["livenessProbe"]["httpGet"]["path"] == "/v2/health/live"
    startup = triton["startupProbe"]
    assert startup["periodSeconds"] * startup["failureThreshold"] >= 30 * 60  # default startupTimeout 30m
    assert {"name": "dshm", "emptyDir": {"medium": "Memory", "sizeLimit": "4Gi"}} in pod["volumes"]
    assert {p["containerPort"] for p in triton["ports"]} == {8000, 8001, 8002}
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert triton["securityContext"]["allowPrivilegeEscalation"] is False


def test_every_container_has_a_read_only_root_and_writes_only_to_emptydirs() -> None:
    """A compromised model server (or a model's own code) cannot change the image's files; what Triton
    writes goes to the pod's emptyDirs (tests/integration/test_triton_readonly.py runs it that way)."""
    pod = only(render(codepilot()), "Deployment")["spec"]["template"]["spec"]
    volumes = {v["name"]: v for v in pod["volumes"]}
    for container in pod["initContainers"] + pod["containers"]:
        assert container["securityContext"]["readOnlyRootFilesystem"] is True, container["name"]
        for mount in container["volumeMounts"]:
            if not mount.get("readOnly"):
                assert set(volumes[mount["name"]]) == {"name", "emptyDir"}, mount
    (triton,) = pod["containers"]
    writable = {m["mountPath"] for m in triton["volumeMounts"] if not m.get("readOnly")}
    assert writable == {MODEL_REPOSITORY, "/tmp", "/dev/shm"}
    assert {"name": "HOME", "value": "/tmp"} in triton["env"]


def test_cpu_replica_requests_no_gpu() -> None:
    cp = codepilot(**{"spec.model.backend": "python", "spec.runtime.gpus": 0})
    triton = only(render(cp), "Deployment")["spec"]["template"]["spec"]["containers"][0]
    assert "nvidia.com/gpu" not in triton["resources"].get("limits", {})
    assert "--allow-gpu-metrics=false" in triton["args"]


def test_init_container_fetches_weights_with_credentials_from_the_secret() -> None:
    cp = codepilot(**{"spec.model.source.credentialsSecret": "minio-creds"})
    pod = only(render(cp), "Deployment")["spec"]["template"]["spec"]
    (fetch,) = pod["initContainers"]
    assert fetch["command"] == ["codepilot"] and fetch["args"][0] == "fetch"
    assert "s3://models/codellama/v1" in fetch["args"]
    env = {e["name"]: e for e in fetch["env"]}
    assert env["S3_ENDPOINT"]["value"] == "http://minio:9000"
    assert env["AWS_SECRET_ACCESS_KEY"]["valueFrom"]["secretKeyRef"] == {
        "name": "minio-creds",
        "key": "AWS_SECRET_ACCESS_KEY",
    }
    mounts = {m["mountPath"] for m in fetch["volumeMounts"]}
    assert "/models" in mounts


def test_hpa_owns_replicas_when_there_is_a_range() -> None:
    fixed = render(codepilot(**{"spec.autoscaling": {"minReplicas": 2, "maxReplicas": 2}}))
    assert only(fixed, "Deployment")["spec"]["replicas"] == 2
    assert by_kind(fixed, "HorizontalPodAutoscaler") == []

    scaled = render(codepilot(**{"spec.autoscaling": {"minReplicas": 1, "maxReplicas": 4}}))
    assert "replicas" not in only(scaled, "Deployment")["spec"]
    hpa = only(scaled, "HorizontalPodAutoscaler")
    assert hpa["spec"]["scaleTargetRef"]["name"] == only(scaled, "Deployment")["metadata"]["name"]
    assert (hpa["spec"]["minReplicas"], hpa["spec"]["maxReplicas"]) == (1, 4)


def test_config_pbtxt_carries_batching_and_max_tokens() -> None:
    cp = codepilot(
        **{
            "spec.model.backend": "python",
            "spec.runtime.gpus": 0,
            "spec.runtime.maxTokens": 777,
            "spec.runtime.maxBatchSize": 16,
        }
    )
    model_configs = [o for o in render(cp) if "config.pbtxt" in o.get("data", {})]
    config = only(model_configs, "ConfigMap")["data"]["config.pbtxt"]
    assert 'backend: "python"' in config
    assert "max_batch_size: 16" in config
    assert 'key: "max_tokens" value: { string_value: "777" }' in config
    assert "dynamic_batching" in config


def test_changing_the_model_config_rolls_the_pods() -> None:
    def annotation(cp: CodePilot) -> str:
        return only(render(cp), "Deployment")["spec"]["template"]["metadata"]["annotations"][
            "serving.codepilot.dev/config-hash"
        ]

    assert annotation(codepilot()) == annotation(codepilot())
    assert annotation(codepilot()) != annotation(codepilot(**{"spec.runtime.maxTokens": 4096}))


def test_services_entry_point_and_per_version() -> None:
    services = {s["metadata"]["name"]: s for s in by_kind(render(codepilot()), "Service")}
    assert set(services) == {"coder", "coder-v1"}
    assert "app.kubernetes.io/version" not in services["coder"]["spec"]["selector"]
    assert services["coder-v1"]["spec"]["selector"]["app.kubernetes.io/version"] == "v1"
    assert "metrics" in {p["name"] for p in services["coder-v1"]["spec"]["ports"]}


def test_canary_gets_its_own_deployment_named_after_its_version() -> None:
    cp = codepilot(**{"spec.model.version": "v2"})
    cp = cp.model_copy(update={"status": CodePilotStatus(stable_version="v1")})
    assert served_versions(cp) == [ServedVersion("v1"), ServedVersion("v2")]
    names = sorted(d["metadata"]["name"] for d in by_kind(render(cp), "Deployment"))
    assert names == ["coder-v1", "coder-v2"]
    # promotion: the former canary's objects keep their names, only status changes
    promoted = cp.model_copy(update={"status": CodePilotStatus(stable_version="v2")})
    assert [d["metadata"]["name"] for d in by_kind(render(promoted), "Deployment")] == ["coder-v2"]


def test_every_strategy_keeps_the_stable_version_while_the_new_one_comes_up() -> None:
    for strategy in ("Canary", "ABTest", "Immediate"):
        cp = codepilot(**{"spec.model.version": "v2", "spec.rollout": {"strategy": strategy}})
        cp = cp.model_copy(update={"status": CodePilotStatus(stable_version="v1")})
        assert served_versions(cp) == [ServedVersion("v1"), ServedVersion("v2")], strategy


def test_pinned_snapshot_is_what_the_pod_fetches() -> None:
    cp = codepilot().model_copy(
        update={
            "status": CodePilotStatus(
                stable_version="v1", stable_snapshot=TrackSnapshot(version="v1", snapshot_id="ab" * 32)
            )
        }
    )
    fetch = only(render(cp), "Deployment")["spec"]["template"]["spec"]["initContainers"][0]
    assert any("ab" * 32 in arg for arg in fetch["args"])
    assert "s3://models/codellama/v1" not in fetch["args"]


def test_long_names_stay_valid_dns_labels_and_distinct() -> None:
    long_name = "c" * 63
    first = render(codepilot(**{"metadata.name": long_name, "spec.model.version": "release-2024-11-01-a"}))
    second = render(codepilot(**{"metadata.name": long_name, "spec.model.version": "release-2024-11-01-b"}))
    for obj in first + second:
        assert len(obj["metadata"]["name"]) <= 63
        assert DNS1035.match(obj["metadata"]["name"]), obj["metadata"]["name"]
    first_names = {(o["kind"], o["metadata"]["name"]) for o in first if o["kind"] == "Deployment"}
    second_names = {(o["kind"], o["metadata"]["name"]) for o in second if o["kind"] == "Deployment"}
    assert first_names.isdisjoint(second_names)


def test_version_slugs_never_collide() -> None:
    assert version_slug("v1") == "v1"
    assert version_slug("v1.2") != version_slug("v1-2")
    assert version_slug("V1") != version_slug("v1")
    assert len(dns_label("a" * 80)) == 63
    assert dns_label("a" * 80) != dns_label("a" * 81)


def test_yaml_output_has_no_anchors_and_holds_the_json_documents() -> None:
    """An object used twice (a Deployment's labels and its pod template's) is written twice: readers such
    as kubectl diffs and code review tools show anchors as noise, and some YAML tools reject them."""
    import json
    import subprocess
    import sys

    def run(*args: str) -> str:
        command = [sys.executable, "-m", "codepilot_operator.cli", "render", *args, *map(str, EXAMPLES)]
        return subprocess.run(command, capture_output=True, text=True, check=True).stdout

    text = run()
    events = list(yaml.parse(text))
    assert not [e for e in events if isinstance(e, yaml.AliasEvent) or getattr(e, "anchor", None)]
    assert list(yaml.safe_load_all(text)) == json.loads(run("-o", "json"))["items"]
