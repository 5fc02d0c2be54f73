"""Which model versions are served right now (decided in api/tracks.py, their one home), and the spec
each one is rendered from.

Every strategy keeps the stable version until the new one is Ready: replacing a Deployment whose pods
take minutes to fetch and load tens of GB must never leave users without a ready replica. The stable
version is rendered from the spec it was promoted with, so nothing changed together with
``spec.model.version`` (image, maxTokens, source) restarts its pods in the middle of a rollout.
"""

from __future__ import annotations

from codepilot_operator.api import CodePilot
from codepilot_operator.api.tracks import ServedVersion, served_versions

__all__ = ["ServedVersion", "for_version", "served_versions"]


def for_version(cp: CodePilot, served: ServedVersion) -> CodePilot:
    """``cp`` as ``served`` is rendered: its own model and runtime spec, the rest from the CodePilot."""
    if served.template is None:
        return cp
    spec = cp.spec.model_copy(update={"model": served.template.model, "runtime": served.template.runtime})
    return cp.model_copy(update={"spec": spec})
