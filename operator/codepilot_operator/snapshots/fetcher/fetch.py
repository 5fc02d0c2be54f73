"""``Fetcher``: a plan into a destination directory, through the staging directory and the transfers."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from minio import Minio

from codepilot_operator.api.contract import FetchReport
from codepilot_operator.snapshots.errors import LocalWriteError
from codepilot_operator.snapshots.fetcher.chunked import ChunkedFile
from codepilot_operator.snapshots.fetcher.destination import Destination, already_staged, reuse
from codepilot_operator.snapshots.fetcher.plan import FetchItem, FetchPlan
from codepilot_operator.snapshots.fetcher.transfer import Transfer
from codepilot_operator.snapshots.fetcher.verified import VerifiedJournal
from codepilot_operator.snapshots.manifest import check_relpath
from codepilot_operator.snapshots.progress import Progress

# From `bench/fetch.py --sweep` (workers 2-32 x chunks 16-64 MiB, four runs on a loaded 2-core machine):
# by the geometric mean over the four file mixes, 16 x 32 MiB was within 9% of the run's best in all
# four and the best in one, the most consistent; 8 x 16 MiB, the earlier guess, was 8-14% behind the
# best. The differences are of the order of the machines' noise.
DEFAULT_WORKERS = 16
DEFAULT_CHUNK_SIZE = 32 * 1024 * 1024


@dataclass(frozen=True)
class FetchResult:
    identity: str
    dest: Path
    total_bytes: int
    downloaded_bytes: int
    reused_bytes: int
    files_downloaded: int
    files_reused: int
    seconds: float

    @property
    def already_complete(self) -> bool:
        return self.downloaded_bytes == 0 and self.files_downloaded == 0

    def report(self) -> FetchReport:
        return FetchReport(
            self.identity, self.total_bytes, self.downloaded_bytes, self.reused_bytes, round(self.seconds, 3)
        )


class Fetcher:
    """Runs a FetchPlan into a destination directory. ``on_bytes`` sees every received byte count;
    with ``on_wait``, a fetch that finds another one writing the destination waits for it (and then
    usually finds the destination complete) instead of failing with FetchInProgress."""

    def __init__(
        self,
        client: Minio,
        *,
        workers: int = DEFAULT_WORKERS,
        chunk_size: int = DEFAULT_CHUNK_SIZE,
        progress: bool = True,
        verify_local: bool = False,
        on_bytes: Callable[[int], None] | None = None,
        on_wait: Callable[[Path], None] | None = None,
    ):
        if workers < 1 or chunk_size < 64 * 1024:
            raise ValueError("workers must be >= 1 and chunk size >= 64KiB")
        self.client = client
        self.workers = workers
        self.chunk_size = chunk_size
        self.progress_enabled = progress
        self.verify_local = verify_local
        self.on_bytes = on_bytes
        self.on_wait = on_wait
        self._received = 0
        self._received_lock = threading.Lock()
        self._progress: Progress | None = None

    def fetch(self, plan: FetchPlan, dest: Path) -> FetchResult:
        started = time.monotonic()
        self._received = 0
        destination = Destination(dest)
        with destination.locked(self.on_wait):
            if destination.holds(plan, deep=self.verify_local):
                destination.discard_old()
                return FetchResult(
                    plan.identity,
                    destination.path,
                    plan.total_bytes,
                    0,
                    plan.total_bytes,
                    0,
                    len(plan.items),
                    0.0,
                )
            destination.refuse_foreign()
            needed = 0
            try:
                journal = destination.open_staging(plan.identity)
                try:
                    needed, reused_bytes, reused_files = self._download(plan, destination, journal)
                finally:
                    journal.close()
                destination.publish(plan, journal)
            except LocalWriteError as exc:
                if exc.no_space:
                    raise destination.abandon_for_space(exc.message, needed) from None
                raise
            except OSError as exc:  # network errors became SnapshotErrors: what is left is local
                error = LocalWriteError(exc.filename or destination.staging, exc)
                if error.no_space:
                    raise destination.abandon_for_space(error.message, needed) from None
                raise error from None
        return FetchResult(
            identity=plan.identity,
            dest=destination.path,
            total_bytes=plan.total_bytes,
            downloaded_bytes=self._received,
            reused_bytes=reused_bytes,
            files_downloaded=len(plan.items) - reused_files,
            files_reused=reused_files,
            seconds=time.monotonic() - started,
        )

    def _download(
        self, plan: FetchPlan, destination: Destination, journal: VerifiedJournal
    ) -> tuple[int, int, int]:
        """Reuse what is verified locally, download the rest; (bytes to download, reused bytes, files)."""
        candidates = destination.reuse_candidates()
        self._progress = progress = Progress(
            "fetch", plan.total_bytes, len(plan.items), enabled=self.progress_enabled
        )
        reused_bytes = reused_files = needed = 0
        small: list[tuple[FetchItem, Path]] = []
        large: list[ChunkedFile] = []

        def verified(item: FetchItem, st: os.stat_result | None) -> None:
            journal.add(item.path, item.sha256, st)
            progress.file_done()

        try:
            made: set[Path] = set()
            for item in sorted(plan.items, key=lambda i: (-i.size, i.path)):
                final = destination.staging / check_relpath(item.path)
                if final.parent not in made:  # one mkdir per directory, not per file
                    final.parent.mkdir(parents=True, exist_ok=True)
                    made.add(final.parent)
                verify = self.verify_local
                if already_staged(journal, item, verify=verify) or reuse(
                    journal, item, candidates, verify=verify
                ):
                    reused_bytes += item.size
                    reused_files += 1
                    progress.add(item.size)
                    progress.file_done()
                elif item.size > self.chunk_size:
                    job = ChunkedFile(item, final, self.chunk_size)
                    large.append(job)
                    needed += job.unallocated()
                else:
                    small.append((item, final))
                    needed += item.size
            destination.check_space(needed, plan.identity)
            Transfer(self.client, self.workers, self._count, verified).run(plan.bucket, small, large)
        finally:
            for job in large:
                job.close()
            progress.close()
        return needed, reused_bytes, reused_files

    def _count(self, nbytes: int) -> None:
        with self._received_lock:
            self._received += nbytes
        if self._progress is not None:
            self._progress.add(nbytes)
        if self.on_bytes is not None:
            self.on_bytes(nbytes)
