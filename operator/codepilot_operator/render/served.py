"""Which model versions are served right now: re-exported from api/tracks.py, their one home.

Every strategy keeps the stable version until the new one is Ready: replacing a Deployment whose pods
take minutes to fetch and load tens of GB must never leave users without a ready replica. What the
strategies differ in (traffic steps and analysis) is the rollout controller's business.
"""

from codepilot_operator.api.tracks import ServedVersion, served_versions

__all__ = ["ServedVersion", "served_versions"]
