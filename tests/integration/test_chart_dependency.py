"""The chart as a platform team consumes it: `--set global...`, as a dependency of an umbrella chart, and
its image from a mirror registry. Rendered by the real Helm engine, the parent chart resolved by Helm's
own dependency update from a file:// repository (no network).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import helm_python
import pytest

from tests.fixtures.helm import CHART_DIR, RELEASE, RELEASE_NAMESPACE, RenderChart, parse_manifests

DIGEST = "sha256:" + "cd" * 32


def _operator_image(objects: list[dict[str, Any]]) -> str:
    (deployment,) = [o for o in objects if o["kind"] == "Deployment"]
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    return str(container["image"])


def test_set_global_is_accepted_and_unknown_keys_still_fail(helm_chart: helm_python.Chart) -> None:
    """`helm template --set global.foo=bar`: globals belong to the parent chart, any key is allowed there."""
    values = helm_python.parse_set_string("global.foo=bar")
    assert helm_chart.render(values, name=RELEASE, namespace=RELEASE_NAMESPACE, is_install=True)
    with pytest.raises(helm_python.HelmValuesError, match="foo"):
        helm_chart.render({"foo": "bar"}, name=RELEASE, namespace=RELEASE_NAMESPACE, is_install=True)


@pytest.fixture(scope="module")
def umbrella(tmp_path_factory: pytest.TempPathFactory) -> Iterator[helm_python.Chart]:
    """A platform's umbrella chart with this chart as a dependency, as `helm dependency update` builds it."""
    parent = tmp_path_factory.mktemp("umbrella") / "platform"
    (parent / "templates").mkdir(parents=True)
    (parent / "Chart.yaml").write_text(
        "apiVersion: v2\nname: platform\nversion: 1.0.0\ndependencies:\n"
        f"  - name: codepilot-operator\n    version: '*'\n    repository: file://{CHART_DIR}\n"
    )
    (parent / "values.yaml").write_text(
        "global:\n  imageRegistry: mirror.example.com:5000\n  team: platform\n"
        "codepilot-operator:\n  replicas: 2\n"
    )
    helm_python.dependency_update(parent)
    with helm_python.Chart.load(parent) as chart:
        yield chart


def test_the_chart_renders_as_a_dependency_with_globals(umbrella: helm_python.Chart) -> None:
    objects = parse_manifests(umbrella.render({}, name="platform", namespace="platform", is_install=True))
    (deployment,) = [o for o in objects if o["kind"] == "Deployment"]
    assert deployment["spec"]["replicas"] == 2  # the parent's values reach the subchart
    assert _operator_image(objects).startswith("mirror.example.com:5000/codepilot/codepilot-operator:")


def test_a_wrong_value_under_the_dependency_still_fails(umbrella: helm_python.Chart) -> None:
    with pytest.raises(helm_python.HelmValuesError, match="replica"):
        umbrella.render({"codepilot-operator": {"replica": 2}}, name="platform", namespace="platform")


@pytest.mark.parametrize(
    ("image", "global_values", "expected"),
    [
        ({}, {}, "codepilot/codepilot-operator:0.1.0"),
        ({"tag": "0.1.0-rc1"}, {}, "codepilot/codepilot-operator:0.1.0-rc1"),
        ({"digest": DIGEST, "tag": "ignored"}, {}, f"codepilot/codepilot-operator@{DIGEST}"),
        ({}, {"imageRegistry": "mirror.example"}, "mirror.example/codepilot/codepilot-operator:0.1.0"),
        (
            {"registry": "registry.example.com", "digest": DIGEST},
            {"imageRegistry": "mirror.example.com"},
            f"registry.example.com/codepilot/codepilot-operator@{DIGEST}",
        ),
    ],
    ids=["appVersion", "tag", "digest over tag", "global registry", "own registry over global"],
)
def test_image_registry_tag_and_digest(
    render_chart: RenderChart, image: dict[str, str], global_values: dict[str, str], expected: str
) -> None:
    values: dict[str, Any] = {"image": {"repository": "codepilot/codepilot-operator", "pullPolicy": "Always"}}
    values["image"].update(image)
    values["global"] = global_values
    rendered = render_chart(values)
    assert _operator_image(rendered.objects) == expected
    # The fetcher of every CodePilot runs the very same image: the operator is handed that reference.
    (platform,) = [o for o in rendered.of_kind("ConfigMap") if o["metadata"]["name"].endswith("-platform")]
    assert f'fetcherImage: "{expected}"' in platform["data"]["platform.yaml"]
