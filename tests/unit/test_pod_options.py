"""What a platform team adds to a CodePilot's pods (env, volumes, mounts, annotations, affinity, spread)
and the model cache: refused in one line naming the field where it would collide with the operator or
widen the author's rights, rendered as core/v1 where it is allowed."""

from __future__ import annotations

from typing import Any

import jsonschema
import pytest

from codepilot_operator.api.status import CodePilotStatus, TrackSnapshot
from codepilot_operator.loader import InvalidCodePilot, parse_codepilot
from codepilot_operator.render import ServedVersion, render, served_versions
from tests.helpers import codepilot, manifest, validate_builtin
from tests.unit.test_crd import _schema, _validate

SNAPSHOT = "a" * 64
OTHER_SNAPSHOT = "b" * 64
CACHE = {"claimName": "model-cache"}
EMPTY = {"name": "scratch", "emptyDir": {}}


def _problems(**overrides: Any) -> list[str]:
    with pytest.raises(InvalidCodePilot) as caught:
        parse_codepilot(manifest(**overrides))
    return caught.value.problems


def _deployments(cp: Any, served: list[ServedVersion]) -> list[dict[str, Any]]:
    return [o for o in render(cp, served) if o["kind"] == "Deployment"]


def _pod(cp: Any, snapshot: str | None = SNAPSHOT) -> dict[str, Any]:
    (deployment,) = _deployments(cp, [ServedVersion("v1", snapshot_id=snapshot)])
    validate_builtin(deployment)
    return dict(deployment["spec"]["template"]["spec"])


@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        (
            {"spec.runtime.volumes": [{"name": "host", "hostPath": {"path": "/var/lib"}}]},
            "spec.runtime.volumes[0]: hostPath volumes are not allowed",
        ),
        (
            {"spec.runtime.volumes": [{"name": "p", "projected": {"sources": []}}]},
            "spec.runtime.volumes[0]: projected volumes are not allowed",
        ),
        (
            {"spec.runtime.volumes": [{"name": "tmp", "emptyDir": {}}]},
            "spec.runtime.volumes[0].name: tmp is a volume the operator defines",
        ),
        (
            {"spec.runtime.volumes": [{"name": "s3-ca", "configMap": {"name": "my-ca"}}]},
            "spec.runtime.volumes[0].name: s3-ca is a volume the operator defines",
        ),
        (
            {"spec.runtime.volumes": [{"name": "two", "emptyDir": {}, "secret": {"secretName": "s"}}]},
            "spec.runtime.volumes[0]: exactly one of configMap, secret, emptyDir, persistentVolumeClaim",
        ),
        (
            {"spec.runtime.volumes": [EMPTY, EMPTY]},
            "spec.runtime: volumes[].name must be unique: scratch more than once",
        ),
        (
            {
                "spec.runtime.volumes": [EMPTY],
                "spec.runtime.volumeMounts": [{"name": "nope", "mountPath": "/x"}],
            },
            "spec.runtime: volumeMounts[0].name: nope is not one of runtime.volumes (scratch)",
        ),
        (
            {
                "spec.runtime.volumes": [EMPTY],
                "spec.runtime.volumeMounts": [{"name": "scratch", "mountPath": "/models"}],
            },
            "spec.runtime.volumeMounts[0].mountPath: /models collides with /models",
        ),
        (
            {
                "spec.runtime.volumes": [EMPTY],
                "spec.runtime.volumeMounts": [{"name": "scratch", "mountPath": "/models/coder/1"}],
            },
            "spec.runtime.volumeMounts[0].mountPath: /models/coder/1 collides with /models",
        ),
        (
            {
                "spec.runtime.volumes": [EMPTY],
                "spec.runtime.volumeMounts": [{"name": "scratch", "mountPath": "/dev"}],
            },
            "spec.runtime.volumeMounts[0].mountPath: /dev collides with /dev/shm",
        ),
        (
            {
                "spec.runtime.volumes": [EMPTY],
                "spec.runtime.volumeMounts": [{"name": "scratch", "mountPath": "/"}],
            },
            "spec.runtime.volumeMounts[0].mountPath: String should match pattern",
        ),
        (
            {
                "spec.runtime.volumes": [EMPTY],
                "spec.runtime.volumeMounts": [{"name": "scratch", "mountPath": "/data/../tmp"}],
            },
            "spec.runtime.volumeMounts[0].mountPath: /data/../tmp must not have . or .. components",
        ),
        (
            {
                "spec.runtime.volumes": [EMPTY],
                "spec.runtime.volumeMounts": [{"name": "scratch", "mountPath": "/data", "subPath": "../etc"}],
            },
            "spec.runtime.volumeMounts[0].subPath: ../etc must not have . or .. components",
        ),
        (
            {"spec.runtime.env": [{"name": "HOME", "value": "/root"}]},
            "spec.runtime.env[0].name: HOME is set by",
        ),
        (
            {"spec.runtime.env": [{"name": "1ST", "value": "x"}]},
            "spec.runtime.env[0].name: String should match",
        ),
        ({"spec.runtime.env": [{"name": "A"}]}, "spec.runtime.env[0]: exactly one of value, valueFrom"),
        (
            {"spec.runtime.env": [{"name": "A", "valueFrom": {}}]},
            "spec.runtime.env[0].valueFrom: exactly one of secretKeyRef, configMapKeyRef, fieldRef",
        ),
        (
            {
                "spec.runtime.env": [
                    {"name": "A", "valueFrom": {"fieldRef": {"fieldPath": "spec.containers"}}}
                ]
            },
            "spec.runtime.env[0].valueFrom.fieldRef.fieldPath: String should match pattern",
        ),
        (
            {"spec.runtime.env": [{"name": "A", "value": "1"}, {"name": "A", "value": "2"}]},
            "spec.runtime: env[].name must be unique: A more than once",
        ),
        (
            {"spec.runtime.podAnnotations": {"serving.codepilot.dev/config-hash": "0"}},
            "spec.runtime.podAnnotations: key 'serving.codepilot.dev/config-hash': annotations under",
        ),
        (
            {
                "spec.runtime.podAnnotations": {
                    "container.apparmor.security.beta.kubernetes.io/triton": "unconfined"
                }
            },
            "the pods' AppArmor and seccomp profiles are set by the operator",
        ),
        (
            {
                "spec.runtime.affinity": {
                    "nodeAffinity": {
                        "requiredDuringSchedulingIgnoredDuringExecution": {
                            "nodeSelectorTerms": [{"matchExpressions": [{"key": "gpu", "operator": "In"}]}]
                        }
                    }
                }
            },
            "spec.runtime.affinity.nodeAffinity.requiredDuringSchedulingIgnoredDuringExecution"
            ".nodeSelectorTerms[0].matchExpressions[0]: operator In needs values",
        ),
        (
            {
                "spec.runtime.affinity": {
                    "podAntiAffinity": {
                        "requiredDuringSchedulingIgnoredDuringExecution": [
                            {
                                "labelSelector": {},
                                "topologyKey": "kubernetes.io/hostname",
                                "namespaces": ["x"],
                            }
                        ]
                    }
                }
            },
            "spec.runtime.affinity.podAntiAffinity.requiredDuringSchedulingIgnoredDuringExecution[0]"
            ".namespaces: unknown field",
        ),
        (
            {
                "spec.runtime.topologySpreadConstraints": [
                    {"maxSkew": 0, "topologyKey": "zone", "whenUnsatisfiable": "DoNotSchedule"}
                ]
            },
            "spec.runtime.topologySpreadConstraints[0].maxSkew: Input should be greater than or equal to 1",
        ),
        (
            {
                "spec.runtime.topologySpreadConstraints": [
                    {"maxSkew": 1, "topologyKey": "zone", "whenUnsatisfiable": "Maybe"}
                ]
                * 1
            },
            "spec.runtime.topologySpreadConstraints[0].whenUnsatisfiable: String should match pattern",
        ),
        (
            {"spec.runtime.volumes": [{"name": f"v{i}", "emptyDir": {}} for i in range(17)]},
            "spec.runtime.volumes: List should have at most 16",
        ),
        (
            {"spec.model.cache": {"claimName": "Not_A_Name"}},
            "spec.model.cache.claimName: String should match pattern",
        ),
        (
            {
                "spec.model.cache": CACHE,
                "spec.runtime.volumes": [
                    {"name": "again", "persistentVolumeClaim": {"claimName": "model-cache"}}
                ],
            },
            "spec: runtime.volumes[0].persistentVolumeClaim.claimName: model-cache is the model cache",
        ),
    ],
)
def test_refused_in_one_line_naming_the_field(overrides: dict[str, Any], expected: str) -> None:
    problems = _problems(**overrides)
    assert len(problems) == 1 and expected in problems[0], problems


@pytest.mark.parametrize(
    "overrides",
    [
        {"spec.runtime.env": [{"name": "1ST", "value": "x"}]},
        {"spec.runtime.volumes": [{"name": "Upper", "emptyDir": {}}]},
        {"spec.runtime.volumes": [{"name": f"v{i}", "emptyDir": {}} for i in range(17)]},
        {
            "spec.runtime.volumes": [EMPTY],
            "spec.runtime.volumeMounts": [{"name": "scratch", "mountPath": "rel"}],
        },
        {"spec.runtime.podAnnotations": {"a": "x" * 4097}},
        {
            "spec.runtime.topologySpreadConstraints": [
                {"maxSkew": 0, "topologyKey": "z", "whenUnsatisfiable": "DoNotSchedule"}
            ]
        },
        {"spec.model.cache": {}},
    ],
)
def test_the_crd_schema_refuses_them_too(overrides: dict[str, Any]) -> None:
    with pytest.raises(jsonschema.ValidationError):
        _validate(manifest(**overrides))
    with pytest.raises(InvalidCodePilot):
        parse_codepilot(manifest(**overrides))


def test_rules_the_schema_cannot_say_are_cel_in_the_crd() -> None:
    """jsonschema does not run CEL; these are the API server's copy of the validators above."""
    runtime = _schema()["properties"]["spec"]["properties"]["runtime"]
    messages = {r["message"] for r in runtime["x-kubernetes-validations"]}
    assert "every volumeMounts[].name must be one of volumes[].name" in messages
    volume = runtime["properties"]["volumes"]["items"]
    assert "exactly one of configMap" in volume["x-kubernetes-validations"][0]["message"]
    assert "hostPath" not in volume["properties"]
    assert volume["properties"]["name"]["x-kubernetes-validations"][0]["rule"].startswith("!(self in [")
    mount = runtime["properties"]["volumeMounts"]["items"]["properties"]["mountPath"]
    assert "'/models'" in mount["x-kubernetes-validations"][0]["rule"]
    spec_rules = {r["message"] for r in _schema()["properties"]["spec"]["x-kubernetes-validations"]}
    assert "the model cache claim may only be mounted by the weights fetcher" in spec_rules
    # An optional object the author did not write stays absent: the API server must not default a
    # volume's emptyDir or an env var's valueFrom to {}, which would change what it means.
    assert "default" not in volume["properties"]["emptyDir"]
    env = runtime["properties"]["env"]["items"]
    assert "default" not in env["properties"]["valueFrom"]


def test_allowed_options_render_as_core_v1_beside_the_operators_own() -> None:
    cp = codepilot(
        **{
            "spec.runtime.env": [
                {"name": "HF_HUB_OFFLINE", "value": "1"},
                {"name": "TOKEN", "valueFrom": {"secretKeyRef": {"name": "hf", "key": "token"}}},
                {"name": "NODE", "valueFrom": {"fieldRef": {"fieldPath": "spec.nodeName"}}},
            ],
            "spec.runtime.volumes": [
                {"name": "ca", "secret": {"secretName": "private-ca"}},
                {"name": "prompts", "configMap": {"name": "prompts", "optional": True}},
                EMPTY,
                {"name": "datasets", "persistentVolumeClaim": {"claimName": "datasets", "readOnly": True}},
            ],
            "spec.runtime.volumeMounts": [
                {"name": "ca", "mountPath": "/etc/ssl/private-ca", "readOnly": True},
                {"name": "prompts", "mountPath": "/etc/prompts/system.txt", "subPath": "system.txt"},
                {"name": "scratch", "mountPath": "/scratch"},
            ],
            "spec.runtime.podAnnotations": {"cluster-autoscaler.kubernetes.io/safe-to-evict": "false"},
            "spec.runtime.affinity": {
                "nodeAffinity": {
                    "preferredDuringSchedulingIgnoredDuringExecution": [
                        {
                            "weight": 50,
                            "preference": {
                                "matchExpressions": [
                                    {"key": "gpu.type", "operator": "In", "values": ["a100"]}
                                ]
                            },
                        }
                    ]
                },
                "podAntiAffinity": {
                    "requiredDuringSchedulingIgnoredDuringExecution": [
                        {
                            "labelSelector": {"matchLabels": {"app.kubernetes.io/instance": "coder"}},
                            "topologyKey": "kubernetes.io/hostname",
                        }
                    ]
                },
            },
            "spec.runtime.topologySpreadConstraints": [
                {
                    "maxSkew": 1,
                    "topologyKey": "topology.kubernetes.io/zone",
                    "whenUnsatisfiable": "ScheduleAnyway",
                },
                {
                    "maxSkew": 2,
                    "topologyKey": "kubernetes.io/hostname",
                    "whenUnsatisfiable": "DoNotSchedule",
                    "labelSelector": {"matchExpressions": [{"key": "team", "operator": "Exists"}]},
                },
            ],
        }
    )
    (deployment,) = _deployments(cp, served_versions(cp))
    validate_builtin(deployment)
    template = deployment["spec"]["template"]
    pod = template["spec"]
    (triton,) = pod["containers"]
    assert triton["env"][0] == {"name": "HOME", "value": "/tmp"}  # the operator's, first and unchanged
    assert triton["env"][1:] == [
        {"name": "HF_HUB_OFFLINE", "value": "1"},
        {"name": "TOKEN", "valueFrom": {"secretKeyRef": {"name": "hf", "key": "token"}}},
        {"name": "NODE", "valueFrom": {"fieldRef": {"fieldPath": "spec.nodeName"}}},
    ]
    assert {"name": "scratch", "emptyDir": {}} in pod["volumes"]  # an empty emptyDir is kept as written
    assert {"name": "datasets", "persistentVolumeClaim": {"claimName": "datasets", "readOnly": True}} in pod[
        "volumes"
    ]
    assert triton["volumeMounts"][-3:] == [
        {"name": "ca", "mountPath": "/etc/ssl/private-ca", "readOnly": True},
        {"name": "prompts", "mountPath": "/etc/prompts/system.txt", "subPath": "system.txt"},
        {"name": "scratch", "mountPath": "/scratch"},
    ]
    (fetcher,) = pod["initContainers"]
    assert [m["name"] for m in fetcher["volumeMounts"]] == ["model-repository"]  # nothing of the author's
    assert not any(e["name"] in ("TOKEN", "HF_HUB_OFFLINE") for e in fetcher["env"])
    annotations = template["metadata"]["annotations"]
    assert annotations["cluster-autoscaler.kubernetes.io/safe-to-evict"] == "false"
    assert "serving.codepilot.dev/config-hash" in annotations
    assert (
        pod["affinity"]["podAntiAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"][0]["topologyKey"]
        == "kubernetes.io/hostname"
    )
    zone, host = pod["topologySpreadConstraints"]
    # Without a selector a constraint would count no pods; the one meant is this version's own.
    assert zone["labelSelector"] == {"matchLabels": deployment["spec"]["selector"]["matchLabels"]}
    assert host["labelSelector"] == {"matchExpressions": [{"key": "team", "operator": "Exists"}]}


def test_without_options_the_pod_is_what_it_was() -> None:
    pod = _pod(codepilot())
    assert "affinity" not in pod and "topologySpreadConstraints" not in pod
    assert "fsGroupChangePolicy" not in pod["securityContext"]
    assert [v["name"] for v in pod["volumes"]] == ["model-repository", "model-config", "dshm", "tmp"]


def test_cache_holds_the_snapshot_directory_triton_mounts_read_only() -> None:
    pod = _pod(codepilot(**{"spec.model.cache": CACHE}))
    (fetcher,) = pod["initContainers"]
    (triton,) = pod["containers"]
    assert {"name": "model-cache", "persistentVolumeClaim": {"claimName": "model-cache"}} in pod["volumes"]
    assert fetcher["volumeMounts"] == [{"name": "model-cache", "mountPath": "/cache"}]
    args = fetcher["args"]
    assert args[args.index("--dest") + 1] == f"/cache/snapshots/{SNAPSHOT}"
    assert "--wait" in args  # a second replica waits for the first instead of failing
    assert args[args.index("--report") + 1] == "/dev/termination-log"
    weights = [m for m in triton["volumeMounts"] if m["name"] == "model-cache"]
    assert weights == [
        {
            "name": "model-cache",
            "mountPath": "/models/codellama-7b/1",
            "subPath": f"snapshots/{SNAPSHOT}",
            "readOnly": True,
        }
    ]
    assert pod["securityContext"]["fsGroupChangePolicy"] == "OnRootMismatch"


def test_the_platforms_ca_bundle_is_mounted_beside_the_cache() -> None:
    """The fetcher writing to the cache still talks to a private-CA endpoint: the bundle the platform's
    defaults name is mounted next to the claim, and neither volume is dropped for the other."""
    from tests.unit.test_defaults import PLATFORM, uri_only

    cp = parse_codepilot(uri_only(**{"spec.model.cache": CACHE}))
    (deployment,) = [
        o
        for o in render(cp, [ServedVersion("v1", snapshot_id=SNAPSHOT)], PLATFORM)
        if o["kind"] == "Deployment"
    ]
    validate_builtin(deployment)
    pod = deployment["spec"]["template"]["spec"]
    (fetcher,) = pod["initContainers"]
    assert fetcher["volumeMounts"] == [
        {"name": "model-cache", "mountPath": "/cache"},
        {"name": "s3-ca", "mountPath": "/etc/codepilot/s3-ca", "readOnly": True},
    ]
    assert {"name": "AWS_CA_BUNDLE", "value": "/etc/codepilot/s3-ca/ca.crt"} in fetcher["env"]
    volumes = {v["name"]: v for v in pod["volumes"]}
    assert volumes["model-cache"] == {
        "name": "model-cache",
        "persistentVolumeClaim": {"claimName": "model-cache"},
    }
    assert volumes["s3-ca"]["configMap"]["name"] == "platform-ca"


def test_a_version_without_a_snapshot_is_not_cached() -> None:
    """Fetched from its mutable source, its directory could change under the pods reading it."""
    pod = _pod(codepilot(**{"spec.model.cache": CACHE}), snapshot=None)
    assert "model-cache" not in [v["name"] for v in pod["volumes"]]
    assert pod == _pod(codepilot(), snapshot=None)


def test_two_versions_read_their_own_snapshot_directories() -> None:
    cp = codepilot(**{"spec.model.cache": CACHE, "spec.model.version": "v2"})
    cp = cp.model_copy(
        update={
            "status": CodePilotStatus(
                stable_version="v1",
                canary_version="v2",
                stable_snapshot=TrackSnapshot(version="v1", snapshot_id=OTHER_SNAPSHOT),
                canary_snapshot=TrackSnapshot(version="v2", snapshot_id=SNAPSHOT),
            )
        }
    )
    served = served_versions(cp)
    assert [s.snapshot_id for s in served] == [OTHER_SNAPSHOT, SNAPSHOT]
    subpaths = []
    for deployment in _deployments(cp, served):
        (triton,) = deployment["spec"]["template"]["spec"]["containers"]
        subpaths += [m["subPath"] for m in triton["volumeMounts"] if m["name"] == "model-cache"]
    assert subpaths == [f"snapshots/{OTHER_SNAPSHOT}", f"snapshots/{SNAPSHOT}"]
