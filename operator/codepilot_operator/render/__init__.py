"""Pure rendering: a CodePilot in, the list of Kubernetes objects that serve it out.

Nothing in this package performs I/O or imports a Kubernetes client (import-linter enforces it), so the
CLI renders offline exactly what the operator applies.
"""

from __future__ import annotations

from typing import Any

from codepilot_operator.api import CodePilot
from codepilot_operator.api.defaults import with_defaults
from codepilot_operator.api.platform import DEFAULT_PLATFORM, PlatformPolicy
from codepilot_operator.render.configmap import model_config_map
from codepilot_operator.render.deployment import deployment
from codepilot_operator.render.gateway import gateway_objects
from codepilot_operator.render.monitoring import autoscaler, monitoring_objects
from codepilot_operator.render.pdb import pod_disruption_budget
from codepilot_operator.render.route import route_objects
from codepilot_operator.render.served import ServedVersion, for_version, served_versions
from codepilot_operator.render.service import entry_service, version_service

__all__ = ["ServedVersion", "render", "served_versions"]


def render(
    cp: CodePilot, served: list[ServedVersion] | None = None, platform: PlatformPolicy = DEFAULT_PLATFORM
) -> list[dict[str, Any]]:
    """Every child object of ``cp``, in a stable order (dependencies before dependents).

    Per-version objects are rendered from the spec that version is served with (``for_version``).
    ``platform`` supplies what the platform decides (the fetcher image) and its defaults for what the
    CodePilot leaves out (api/defaults.py; raises MissingSetting when a required field has neither); the
    default is what the chart configures with its default values, so ``codepilot render`` without
    ``--platform`` matches it.
    """
    cp = with_defaults(cp, platform.defaults).codepilot
    versions = served if served is not None else served_versions(cp)

    def own_spec(item: ServedVersion) -> CodePilot:
        if item.template is None:
            return cp  # resolved above
        return with_defaults(for_version(cp, item), platform.defaults, "status.stableTemplate").codepilot

    owns = [own_spec(item) for item in versions]
    configs = [model_config_map(own, item) for item, own in zip(versions, owns, strict=True)]
    objects: list[dict[str, Any]] = [*configs, entry_service(cp)]
    for item, own, config in zip(versions, owns, configs, strict=True):
        objects.append(version_service(own, item))
        objects.append(deployment(own, item, platform, config))
        if cp.spec.autoscaling.enabled:
            objects.append(autoscaler(cp, item))
    objects.extend(route_objects(cp, versions))
    objects.append(pod_disruption_budget(cp))
    objects.extend(monitoring_objects(cp, versions))
    objects.extend(gateway_objects(cp, platform))
    return objects
