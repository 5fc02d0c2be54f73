"""Typed snapshot failures: one reason per failure kind a user or the operator acts on differently.

The reason doubles as the text of the WeightsVerified condition's message prefix and picks the fetcher's
exit code, so an init container that failed says why in ``kubectl get pod`` (exit code) and in its log
(one line), without a traceback.
"""

from __future__ import annotations

import errno
from enum import StrEnum
from pathlib import Path


class FailureReason(StrEnum):
    BUCKET_MISSING = "BucketMissing"
    ACCESS_DENIED = "AccessDenied"
    OBJECT_MISSING = "ObjectMissing"
    CHECKSUM_MISMATCH = "ChecksumMismatch"
    ENDPOINT_UNREACHABLE = "EndpointUnreachable"
    INVALID_SNAPSHOT = "InvalidSnapshot"
    SOURCE_CHANGED = "SourceChanged"
    LOCAL_IO = "LocalIOError"
    FETCH_IN_PROGRESS = "FetchInProgress"  # the fetcher only: another fetch holds the destination's lock


# Distinct exit codes so a crash-looping init container is diagnosable from the pod status alone.
# 2 stays the CLI's "invalid input" code.
EXIT_CODES: dict[FailureReason, int] = {
    FailureReason.CHECKSUM_MISMATCH: 3,
    FailureReason.OBJECT_MISSING: 4,
    FailureReason.BUCKET_MISSING: 4,
    FailureReason.INVALID_SNAPSHOT: 4,
    FailureReason.ACCESS_DENIED: 5,
    FailureReason.ENDPOINT_UNREACHABLE: 6,
    FailureReason.SOURCE_CHANGED: 7,
    FailureReason.LOCAL_IO: 8,
    FailureReason.FETCH_IN_PROGRESS: 9,
}


class SnapshotError(Exception):
    """A snapshot or fetch failure; ``str()`` is the single line shown to the user."""

    def __init__(self, reason: FailureReason, message: str):
        super().__init__(f"{reason}: {message}")
        self.reason = reason
        self.message = message

    @property
    def exit_code(self) -> int:
        return EXIT_CODES.get(self.reason, 1)


_NO_SPACE = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EFBIG})


class LocalWriteError(SnapshotError):
    """A local file operation failed; the message names the file (``write()`` errors do not).

    ``no_space``: the volume is full (or a quota or file-size limit was hit), which the fetcher answers
    by giving the space back rather than leaving a partial download filling the volume.
    """

    def __init__(self, path: Path | str, exc: OSError):
        self.no_space = exc.errno in _NO_SPACE
        super().__init__(FailureReason.LOCAL_IO, f"{path}: {exc.strerror or exc}")
