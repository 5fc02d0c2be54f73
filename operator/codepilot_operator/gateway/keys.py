"""API keys from mounted Kubernetes Secrets: one directory per team, re-read while the gateway runs.

The kubelet keeps a mounted Secret up to date (an atomic symlink swap), so a rotated or added key
works without a restart and a deleted one stops working: the directory is scanned again every few
seconds. A key is never logged or used as a metric label; the team (the Secret's name) is.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from codepilot_operator.api.endpoint import KEY_FILE, RPM_FILE, TPM_FILE

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Team:
    """Who a key belongs to and the limits it gets (None: the gateway's defaults)."""

    name: str
    requests_per_minute: int | None = None
    tokens_per_minute: int | None = None


def digest(key: str) -> str:
    """Keys are held and compared as digests: a lookup never compares secrets byte by byte.

    A header's bytes that are not UTF-8 reach us as surrogate escapes (aiohttp's decoding); encoding
    them back gives the bytes that were sent, so such a key is simply unknown rather than an error."""
    return hashlib.sha256(key.encode("utf-8", "surrogateescape")).hexdigest()


def _limit(path: Path) -> int | None:
    if not path.is_file():
        return None
    text = path.read_text().strip()
    if not text.isdigit():
        raise ValueError(f"{path.parent.name}/{path.name}: expected a whole number, got {text[:20]!r}")
    return int(text)


def read_team(directory: Path) -> tuple[str, Team] | None:
    """(key digest, team) of one mounted Secret; None when it holds no key."""
    key_file = directory / KEY_FILE
    if not key_file.is_file():
        return None
    key = key_file.read_text().strip()
    if not key:
        return None
    team = Team(directory.name, _limit(directory / RPM_FILE), _limit(directory / TPM_FILE))
    return digest(key), team


def scan(root: Path) -> dict[str, Team]:
    """Every team under ``root``; a Secret with a bad limit is skipped with one log line, not fatal."""
    teams: dict[str, Team] = {}
    if not root.is_dir():
        return teams
    for directory in sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")):
        try:
            found = read_team(directory)
        except (OSError, ValueError) as exc:
            log.warning("key Secret %s ignored: %s", directory.name, exc)
            continue
        if found is None:
            continue
        key_digest, team = found
        if key_digest in teams:
            log.warning("key Secret %s holds the same key as %s: ignored", team.name, teams[key_digest].name)
            continue
        teams[key_digest] = team
    return teams


class KeyStore:
    def __init__(self, root: Path):
        self.root = root
        self._teams: Mapping[str, Team] = {}

    def refresh(self) -> None:
        teams = scan(self.root)
        if set(teams.values()) != set(self._teams.values()):
            log.info("API keys: %d teams (%s)", len(teams), ", ".join(sorted(t.name for t in teams.values())))
        self._teams = teams

    def team(self, key: str) -> Team | None:
        return self._teams.get(digest(key))
