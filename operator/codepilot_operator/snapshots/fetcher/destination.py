"""The destination's state: its lock, its marker, the staging directory beside it, the swap into place.

A fetch writes under ``.<name>.partial`` and renames it over ``<name>`` only once every file verified,
so at every instant the destination is absent, the previous complete snapshot, or the new complete one:
Triton (which starts after the init container) never sees half a model. The marker
(``.codepilot-fetch.json``) names the snapshot a directory holds and lists each file with the identity
it had when it was verified (see verified.py); it is read once per fetch, here, under the lock.

One fetch per destination at a time: ``.<name>.lock`` beside it is held (``flock``) for the whole
fetch, so two init containers sharing a volume, or a user running ``codepilot fetch`` by hand beside
one, cannot rename each other's staging files away. The kernel drops the lock when a fetch dies.
Pods on other nodes sharing a network filesystem see the same lock where the filesystem carries
``flock`` to its server: NFS (the Linux client maps it to NFS byte-range locks, released when the
holder's lease expires), CephFS, and filesystems local to one node; a filesystem without shared locks
(some FUSE mounts) cannot keep two writers apart. A fetch either gives up at once (``FetchInProgress``)
or waits for the holder to finish and then finds the destination complete (``wait``: a second replica
starting beside the first must not download the same snapshot again).
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from codepilot_operator.snapshots.errors import FailureReason, LocalWriteError, SnapshotError
from codepilot_operator.snapshots.fetcher.plan import FetchItem, FetchPlan
from codepilot_operator.snapshots.fetcher.verified import JOURNAL, Verified, VerifiedJournal
from codepilot_operator.snapshots.manifest import check_relpath
from codepilot_operator.snapshots.progress import human_bytes

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


def _entries(marker: dict[str, Any] | None) -> dict[str, dict[str, Any]]:
    files = (marker or {}).get("files")
    return (
        {str(e["path"]): e for e in files if isinstance(e, dict) and "path" in e}
        if isinstance(files, list)
        else {}
    )


def _holds(marker: dict[str, Any] | None, directory: Path, plan: FetchPlan, deep: bool) -> bool:
    """The marker names this plan and every file is the one verified (re-hashed instead if ``deep``)."""
    if marker is None or marker.get("identity") != plan.identity:
        return False
    entries = _entries(marker)
    for item in plan.items:
        path = directory / item.path
        if deep:
            try:
                if path.stat().st_size != item.size:
                    return False
            except OSError:
                return False
            if item.sha256 and sha256_file(path) != item.sha256:
                return False
            continue
        record = Verified.from_json(entries.get(item.path))
        if record is None or not record.holds(directory, item.size, item.sha256):
            return False
    return True


def is_complete(dest: Path, plan: FetchPlan, *, deep: bool = False) -> bool:
    """The marker names this plan and no file changed since it was verified (or, ``deep``, re-hashed)."""
    return _holds(read_marker(dest), dest, plan, deep)


class Destination:
    """One destination directory and its hidden siblings (lock, staging, the copy being replaced)."""

    def __init__(self, dest: Path):
        self.path = Path(os.path.abspath(dest))
        if not self.path.name:
            raise ValueError(
                f"fetch destination {dest} is the filesystem root: give a directory below it "
                "(its staging directory and lock live beside it), e.g. /models/<model>/1"
            )
        self.staging = self.path.with_name(f".{self.path.name}.partial")
        self.old = self.path.with_name(f".{self.path.name}.old")
        self.lock_path = self.path.with_name(f".{self.path.name}.lock")
        self.marker: dict[str, Any] | None = None

    @contextlib.contextmanager
    def locked(self, on_wait: Callable[[Path], None] | None = None) -> Iterator[Destination]:
        """Hold the destination's lock; if another fetch holds it, wait for it when ``on_wait`` is given
        (called once, with the lock file, before waiting), else fail at once, in one line.

        The lock file is removed on the way out (while still held), so it does not linger beside the
        model. Whoever locked a file that was removed meanwhile sees it is no longer the file at that
        path and tries again, so two fetches never hold two different lock files of one destination.
        """
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd = self._lock(on_wait)
        except OSError as exc:
            raise LocalWriteError(exc.filename or self.lock_path, exc) from None
        try:
            self.marker = read_marker(self.path)
            yield self
        finally:
            self.lock_path.unlink(missing_ok=True)
            os.close(fd)  # releases the lock

    def _lock(self, on_wait: Callable[[Path], None] | None) -> int:
        while True:
            fd = os.open(self.lock_path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
            try:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except BlockingIOError:
                    if on_wait is None:
                        raise SnapshotError(
                            FailureReason.FETCH_IN_PROGRESS, f"another fetch is running in {self.path}"
                        ) from None
                    on_wait(self.lock_path)
                    on_wait = None  # said once, even if the holder's lock file is replaced meanwhile
                    fcntl.flock(fd, fcntl.LOCK_EX)  # the kernel wakes us when the holder is done
                held, current = os.fstat(fd), os.stat(self.lock_path)
            except FileNotFoundError:  # removed by the fetch that just finished: lock a fresh one
                os.close(fd)
                continue
            except BaseException:
                os.close(fd)
                raise
            if (held.st_dev, held.st_ino) == (current.st_dev, current.st_ino):
                return fd
            os.close(fd)

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

    def open_staging(self, identity: str) -> VerifiedJournal:
        """The staging directory for ``identity``; a partial download of another plan is thrown away."""
        staging = self.staging
        meta = read_marker(staging, PARTIAL_META) if staging.exists() else None
        if staging.exists() and (meta is None or meta.get("identity") != identity):
            shutil.rmtree(staging)  # a partial of another snapshot: its verified files are not ours
        staging.mkdir(exist_ok=True)
        (staging / PARTIAL_META).write_text(json.dumps({"identity": identity}), encoding="utf-8")
        return VerifiedJournal(staging)

    def reuse_candidates(self) -> dict[str, tuple[Path, bool]]:
        """sha256 -> (a file of an earlier snapshot here, whether it is unchanged since verified).

        A file whose record no longer holds (changed on disk, or listed by a marker written before
        records had identities) is still a candidate, but must be re-hashed before it is reused.
        """
        found: dict[str, tuple[Path, bool]] = {}
        for directory, marker in ((self.path, self.marker), (self.old, read_marker(self.old))):
            for entry in _entries(marker).values():
                digest = entry.get("sha256")
                try:
                    size, path = int(entry["size"]), check_relpath(str(entry["path"]))
                    if not isinstance(digest, str) or (directory / path).stat().st_size != size:
                        continue
                except (KeyError, TypeError, ValueError, OSError):
                    continue
                record = Verified.from_json(entry)
                trusted = record is not None and record.holds(directory, size, digest)
                if digest not in found or (trusted and not found[digest][1]):
                    found[digest] = (directory / path, trusted)
        return found

    def free_bytes(self) -> int:
        stats = os.statvfs(self.staging)
        return (stats.f_bfree if os.geteuid() == 0 else stats.f_bavail) * stats.f_frsize

    def check_space(self, needed: int, identity: str) -> None:
        """Refuse before downloading a byte when the volume cannot hold what is left to download."""
        free = self.free_bytes()
        if needed > free:
            raise self.abandon_for_space(
                f"not enough space in {self.path.parent} for {identity}: {human_bytes(needed)} to "
                f"download, {human_bytes(free)} free"
            )

    def abandon_for_space(self, cause: str, needed: int | None = None) -> SnapshotError:
        """Remove the staging directory: a snapshot that cannot fit must not leave the volume full.

        Its journals go with it, so a later fetch starts clean instead of trusting records of files
        that are gone.
        """
        freed = _allocated(self.staging)
        shutil.rmtree(self.staging, ignore_errors=True)
        message = cause
        if freed:
            message += f"; removed the partial download ({human_bytes(freed)}) so the volume is not left full"
        if needed is not None:
            message += f"; {self.path.parent} needs {human_bytes(needed)} free for this snapshot"
        return SnapshotError(FailureReason.LOCAL_IO, message)

    def publish(self, plan: FetchPlan, journal: VerifiedJournal) -> None:
        """Write the marker, drop what the snapshot does not list, and swap the staging into place.

        Refuses unless every file of the plan has a record of this fetch's verification: a directory
        is never marked complete on the strength of a file's size or name.
        """
        verified = journal.snapshot()
        for item in plan.items:
            record = verified.get(item.path)
            if record is None or (record.size, record.sha256) != (item.size, item.sha256):
                raise RuntimeError(f"refusing to mark {self.path} complete: {item.path} was not verified")
        staging = self.staging
        files = [verified[item.path] for item in plan.items]
        _write_marker(staging, plan.identity, [f.to_json() for f in files])
        expected = {MARKER, PARTIAL_META, JOURNAL, *(item.path for item in plan.items)}
        for leftover in [p for p in staging.rglob("*") if p.is_file()]:
            if leftover.relative_to(staging).as_posix() not in expected:
                leftover.unlink()  # a stale partial download: the directory holds the snapshot, nothing else
        replaced = self._swap_into_place()
        if replaced:
            # Removing the replaced directory unlinked the names our hard links shared, which moved
            # those inodes' ctime: record them again, or the next fetch would re-hash them for nothing.
            entries = []
            for record in files:
                again = record.relinked(self.path)
                entries.append(
                    again.to_json()
                    if again is not None
                    else {"path": record.path, "size": record.size, "sha256": record.sha256}
                )
            _write_marker(self.path, plan.identity, entries)

    def _swap_into_place(self) -> bool:
        """Two renames on one filesystem; at every instant the destination is absent or complete."""
        shutil.rmtree(self.old, ignore_errors=True)
        replaced = self.path.exists()
        if replaced:
            os.rename(self.path, self.old)
        os.rename(self.staging, self.path)
        for name in (PARTIAL_META, JOURNAL):
            (self.path / name).unlink(missing_ok=True)
        shutil.rmtree(self.old, ignore_errors=True)
        with contextlib.suppress(OSError):  # make the rename durable where the filesystem allows it
            fd = os.open(self.path.parent, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
        return replaced


def _write_marker(directory: Path, identity: str, files: list[dict[str, Any]]) -> None:
    """Replace the marker in one rename, so it is never half-written."""
    temporary = directory / f"{MARKER}.tmp"
    temporary.write_text(json.dumps({"identity": identity, "files": files}), encoding="utf-8")
    os.replace(temporary, directory / MARKER)


def _allocated(directory: Path) -> int:
    total = 0
    for path in directory.rglob("*"):
        with contextlib.suppress(OSError):
            total += path.lstat().st_blocks * 512
    return total


def already_staged(journal: VerifiedJournal, item: FetchItem, *, verify: bool) -> bool:
    """An earlier, interrupted run of this plan verified the staged file, and it has not changed since.

    A staged file without a record that still holds is re-hashed (cheaper than downloading it again)
    and kept only if it matches; without a digest to check (a source fetch) it is downloaded again.
    """
    final = journal.staging / item.path
    if journal.trusted(item.path, item.size, item.sha256) and not (verify and item.sha256):
        return True
    try:
        if final.stat().st_size != item.size or not item.sha256:
            return False
    except OSError:
        return False
    if sha256_file(final) != item.sha256:
        final.unlink()
        return False
    journal.add(item.path, item.sha256)
    return True


def reuse(
    journal: VerifiedJournal, item: FetchItem, candidates: dict[str, tuple[Path, bool]], *, verify: bool
) -> bool:
    """Hard-link (or copy) a file of an earlier snapshot that has the digest the plan wants.

    Trusted as is while its record holds; re-hashed first otherwise (or with ``verify``).
    """
    found = candidates.get(item.sha256) if item.sha256 else None
    if found is None:
        return False
    source, trusted = found
    if (verify or not trusted) and sha256_file(source) != item.sha256:
        return False
    final = journal.staging / item.path
    final.unlink(missing_ok=True)
    try:
        os.link(source, final)  # same filesystem: no copy; the old directory is removed later
    except OSError:
        shutil.copyfile(source, final)
    journal.add(item.path, item.sha256)
    return True
