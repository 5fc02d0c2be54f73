"""The destination's state: its marker, the staging directory beside it, and the swap into place.

A fetch writes under ``.<name>.partial`` and renames it over ``<name>`` only once every file verified,
so at every instant the destination is absent, the previous complete snapshot, or the new complete one:
Triton (which starts after the init container) never sees half a model. The marker
(``.codepilot-fetch.json``) names the snapshot a directory holds; it is read once per fetch, here.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
from pathlib import Path
from typing import Any

from codepilot_operator.snapshots.errors import FailureReason, SnapshotError
from codepilot_operator.snapshots.fetcher.plan import FetchItem, FetchPlan
from codepilot_operator.snapshots.manifest import check_relpath

MARKER = ".codepilot-fetch.json"
PARTIAL_META = ".codepilot-partial.json"
_READ_SIZE = 1024 * 1024


def read_marker(directory: Path, name: str = MARKER) -> dict[str, Any] | None:
    try:
        doc = json.loads((directory / name).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return doc if isinstance(doc, dict) else None


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while block := handle.read(_READ_SIZE):
            digest.update(block)
    return digest.hexdigest()


def _holds(marker: dict[str, Any] | None, directory: Path, plan: FetchPlan, deep: bool) -> bool:
    if marker is None or marker.get("identity") != plan.identity:
        return False
    for item in plan.items:
        path = directory / item.path
        try:
            if path.stat().st_size != item.size:
                return False
        except OSError:
            return False
        if deep and item.sha256 and sha256_file(path) != item.sha256:
            return False
    return True


def is_complete(dest: Path, plan: FetchPlan, *, deep: bool = False) -> bool:
    """The marker names this plan and every file is there with its size (and digest, if ``deep``)."""
    return _holds(read_marker(dest), dest, plan, deep)


class Destination:
    """One destination directory and its hidden siblings (staging, the previous copy being replaced)."""

    def __init__(self, dest: Path):
        self.path = Path(os.path.abspath(dest))
        self.staging = self.path.with_name(f".{self.path.name}.partial")
        self.old = self.path.with_name(f".{self.path.name}.old")
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.marker = read_marker(self.path)

    def holds(self, plan: FetchPlan, *, deep: bool) -> bool:
        return _holds(self.marker, self.path, plan, deep)

    def discard_old(self) -> None:
        shutil.rmtree(self.old, ignore_errors=True)

    def refuse_foreign(self) -> None:
        if self.path.exists() and self.marker is None and any(self.path.iterdir()):
            raise SnapshotError(
                FailureReason.LOCAL_IO,
                f"{self.path} exists and was not written by codepilot fetch; refusing to replace it",
            )

    def open_staging(self, identity: str) -> Path:
        """The staging directory for ``identity``; a partial download of another plan is thrown away."""
        staging = self.staging
        meta = read_marker(staging, PARTIAL_META) if staging.exists() else None
        if staging.exists() and (meta is None or meta.get("identity") != identity):
            shutil.rmtree(staging)  # a partial of another snapshot: its verified files are not ours
        staging.mkdir(exist_ok=True)
        (staging / PARTIAL_META).write_text(json.dumps({"identity": identity}), encoding="utf-8")
        return staging

    def reuse_candidates(self) -> dict[str, Path]:
        """sha256 -> a verified local file of an earlier snapshot (from the destination markers)."""
        found: dict[str, Path] = {}
        for directory, marker in ((self.path, self.marker), (self.old, read_marker(self.old))):
            for entry in (marker or {}).get("files", []):
                try:
                    digest, path = entry["sha256"], directory / check_relpath(entry["path"])
                    if digest and path.stat().st_size == entry["size"]:
                        found.setdefault(digest, path)
                except (KeyError, TypeError, ValueError, OSError):
                    continue
        return found

    def publish(self, plan: FetchPlan) -> None:
        """Write the marker, drop what the snapshot does not list, and swap the staging into place."""
        staging = self.staging
        files = [{"path": i.path, "size": i.size, "sha256": i.sha256} for i in plan.items]
        (staging / MARKER).write_text(
            json.dumps({"identity": plan.identity, "files": files}), encoding="utf-8"
        )
        expected = {MARKER, PARTIAL_META, *(item.path for item in plan.items)}
        for leftover in [p for p in staging.rglob("*") if p.is_file()]:
            if leftover.relative_to(staging).as_posix() not in expected:
                leftover.unlink()  # a stale partial download: the directory holds the snapshot, nothing else
        self._swap_into_place()

    def _swap_into_place(self) -> None:
        """Two renames on one filesystem; at every instant the destination is absent or complete."""
        shutil.rmtree(self.old, ignore_errors=True)
        if self.path.exists():
            os.rename(self.path, self.old)
        os.rename(self.staging, self.path)
        (self.path / PARTIAL_META).unlink(missing_ok=True)
        shutil.rmtree(self.old, ignore_errors=True)
        with contextlib.suppress(OSError):  # make the rename durable where the filesystem allows it
            fd = os.open(self.path.parent, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)


def already_staged(final: Path, item: FetchItem, *, verify: bool) -> bool:
    """Verified by an earlier, interrupted run of this same plan (it only renames verified files)."""
    try:
        if final.stat().st_size != item.size:
            return False
    except OSError:
        return False
    return not (verify and item.sha256 and sha256_file(final) != item.sha256)


def reuse(final: Path, item: FetchItem, candidates: dict[str, Path], *, verify: bool) -> bool:
    """Hard-link (or copy) a file of an earlier snapshot that has the digest the plan wants."""
    source = candidates.get(item.sha256) if item.sha256 else None
    if source is None:
        return False
    if verify and sha256_file(source) != item.sha256:
        return False
    final.unlink(missing_ok=True)
    try:
        os.link(source, final)  # same filesystem: no copy; the old directory is removed later
    except OSError:
        shutil.copyfile(source, final)
    return True
