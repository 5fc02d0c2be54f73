"""spec.api renders a gateway that sends traffic through the rollout's split, and nothing without it."""

from __future__ import annotations

import itertools
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from cloudcoil.models.prometheus_operator import v1 as prometheus_v1
from pydantic import ValidationError

from codepilot_operator.api.endpoint import GatewayConfig
from codepilot_operator.cli.gateway import load_config
from codepilot_operator.loader import InvalidCodePilot
from codepilot_operator.render import render
from codepilot_operator.render.gateway import api_url, gateway_config, gateway_name
from tests.helpers import assert_settings_file_refused, codepilot, validate_builtin

API = {"enabled": True, "keySecrets": ["team-a", "team-b"], "tokensPerMinute": 5000}
GATEWAY_TRAFFIC = {
    "parentRefs": [{"name": "inference", "namespace": "gateways"}],
    "hostnames": ["coder.example"],
}


def _objects(**overrides: Any) -> dict[tuple[str, str], dict[str, Any]]:
    cp = codepilot(**{"spec.api": API, **overrides})
    return {(o["kind"], o["metadata"]["name"]): o for o in render(cp)}


def test_nothing_is_rendered_and_no_url_without_spec_api() -> None:
    cp = codepilot()
    assert not [o for o in render(cp) if o["metadata"]["name"] == gateway_name(cp)]
    assert api_url(cp) is None


def test_gateway_objects_are_valid_kubernetes_objects() -> None:
    objects = _objects()
    for kind in ("ConfigMap", "Deployment", "Service"):
        validate_builtin(objects[(kind, "coder-api")])
    prometheus_v1.ServiceMonitor.model_validate(objects[("ServiceMonitor", "coder-api")])


def test_the_gateway_calls_the_entry_service_never_a_per_version_service() -> None:
    config = gateway_config(codepilot(**{"spec.api": API}))
    (model,) = config.models
    assert (model.name, model.triton_model) == ("coder", "codellama-7b")  # clients use the CodePilot's name
    assert model.upstream == "http://coder.team-a.svc:8000" and model.host is None
    assert model.max_tokens == 2048  # spec.runtime.maxTokens caps every request


def test_with_a_gateway_route_the_gateway_calls_through_it_with_the_route_hostname() -> None:
    cp = codepilot(
        **{
            "spec.api": {**API, "gatewayURL": "http://inference.gateways.svc:80"},
            "spec.rollout.traffic": {"gateway": GATEWAY_TRAFFIC},
        }
    )
    (model,) = gateway_config(cp).models
    assert (model.upstream, model.host) == ("http://inference.gateways.svc:80", "coder.example")


def test_a_gateway_route_without_gateway_url_is_an_invalid_spec() -> None:
    with pytest.raises(InvalidCodePilot) as caught:
        codepilot(**{"spec.api": API, "spec.rollout.traffic": {"gateway": GATEWAY_TRAFFIC}})
    assert caught.value.problems == [
        "spec: api.gatewayURL is required with rollout.traffic.gateway: the endpoint must send requests "
        "through the HTTPRoute, or canary weights would not apply to them"
    ]


def test_key_secrets_are_mounted_one_directory_each_and_optional() -> None:
    pod = _objects()[("Deployment", "coder-api")]["spec"]["template"]["spec"]
    (keys,) = [v for v in pod["volumes"] if v["name"] == "keys"]
    sources = keys["projected"]["sources"]
    assert [s["secret"]["name"] for s in sources] == ["team-a", "team-b"]
    assert all(s["secret"]["optional"] for s in sources)
    assert {i["path"] for i in sources[0]["secret"]["items"]} == {
        "team-a/api-key",
        "team-a/requests-per-minute",
        "team-a/tokens-per-minute",
    }
    assert "automountServiceAccountToken" in pod and pod["automountServiceAccountToken"] is False


def test_the_rendered_config_is_what_the_gateway_command_reads(tmp_path: Path) -> None:
    """The ConfigMap's file parses with the gateway's own loader, and a broken file is one line, exit 2."""
    data = _objects()[("ConfigMap", "coder-api")]["data"]["config.json"]
    config = GatewayConfig.model_validate_json(data)
    assert config.tokens_per_minute == 5000 and config.models[0].max_concurrency == 8
    bad = tmp_path / "bad.json"
    bad.write_text(data.replace('"maxTokens": 2048', '"maxTokens": 0'))
    result = subprocess.run(
        [sys.executable, "-m", "codepilot_operator.cli", "gateway", "--config", str(bad)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert (
        result.stderr.strip()
        == f"error: --config {bad}: models[0].maxTokens: Input should be greater than or equal to 1"
    )


def test_a_gateway_config_file_gets_a_manifests_bounds(tmp_path: Path) -> None:
    """Written by the operator into a ConfigMap others may edit: one line naming the problem, at a
    bounded cost, whether the file is JSON (as rendered) or YAML."""
    bomb = "a: &a [x, x, x, x, x, x, x, x, x, x]\n" + "".join(
        f"{n}: &{n} [{', '.join(['*' + p] * 10)}]\n" for p, n in itertools.pairwise("abcde")
    )
    cases = {
        "config.json": {
            "[" * 100_000 + "]" * 100_000: "invalid JSON: nested too deeply",
            '{"models": [}': "invalid JSON: Expecting value",
            "[1, 2]": "expected a mapping of settings, got list",
            '{"keysDir": "/keys", "keysDir": "/etc"}': "duplicate key 'keysDir'",
            '{"requestTimeoutSeconds": Infinity}': "invalid JSON: Infinity is not a JSON number",
        },
        "config.yaml": {
            bomb + "f: *e\n": "more than 100000 nodes once aliases are expanded",
            "a: 1\na: 2\n": "line 2, column 1: invalid YAML: duplicate key 'a'",
            "a: 1\n---\nb: 2\n": "expected one mapping of settings, found 2",
        },
    }
    for name, texts in cases.items():
        assert_settings_file_refused(load_config, "--config", tmp_path / name, texts)


def test_status_url_is_the_gateway_service_base_url() -> None:
    assert api_url(codepilot(**{"spec.api": API})) == "http://coder-api.team-a.svc/v1"


def test_a_config_change_rolls_the_gateway_pods() -> None:
    def annotation(**overrides: Any) -> str:
        template = _objects(**overrides)[("Deployment", "coder-api")]["spec"]["template"]
        return str(template["metadata"]["annotations"]["serving.codepilot.dev/gateway-config-hash"])

    assert annotation() != annotation(**{"spec.runtime.maxTokens": 512})


def test_fill_in_the_middle_is_offered_only_where_the_model_takes_a_suffix() -> None:
    python = codepilot(**{"spec.api": API, "spec.model.backend": "python", "spec.runtime.gpus": 0})
    assert gateway_config(python).models[0].supports_suffix
    assert not gateway_config(codepilot(**{"spec.api": API})).models[0].supports_suffix  # tensorrtllm


def test_whole_answers_are_read_as_streams_only_where_streamed_pieces_are_exact_text() -> None:
    """TensorRT-LLM's postprocessing decodes each streamed token alone (a character split over two
    tokens arrives as U+FFFD): its whole answers with stop sequences stay on /generate."""
    python = codepilot(**{"spec.api": API, "spec.model.backend": "python", "spec.runtime.gpus": 0})
    assert gateway_config(python).models[0].stream_stops
    assert not gateway_config(codepilot(**{"spec.api": API})).models[0].stream_stops  # tensorrtllm


def test_an_onnxruntime_model_cannot_have_the_text_endpoint() -> None:
    with pytest.raises(InvalidCodePilot, match="api needs a text model"):
        codepilot(**{"spec.api": API, "spec.model.backend": "onnxruntime", "spec.runtime.gpus": 0})


def test_a_model_version_named_like_the_gateway_is_refused() -> None:
    """Per-version children are <name>-<version>: version 'api' would be the gateway's Deployment."""
    with pytest.raises(InvalidCodePilot, match=r"model\.version 'api' would name"):
        codepilot(**{"spec.api": API, "spec.model.version": "api"})
    assert gateway_name(codepilot()) == "coder-api"


def test_an_infinite_timeout_in_the_gateway_config_is_refused() -> None:
    """A YAML file may say .inf where JSON cannot: a request or queue wait that never ends."""
    data = json.loads(_objects()[("ConfigMap", "coder-api")]["data"]["config.json"])
    for field, parent in (("requestTimeoutSeconds", data), ("queueTimeoutSeconds", data["models"][0])):
        parent[field] = float("inf")
        with pytest.raises(ValidationError, match="finite number"):
            GatewayConfig.model_validate(data)
        parent[field] = 30.0
