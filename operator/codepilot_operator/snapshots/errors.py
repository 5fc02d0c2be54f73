"""Typed snapshot failures: one reason per failure kind a user or the operator acts on differently.

The reason doubles as the text of the WeightsVerified condition's message prefix and picks the fetcher's
exit code, so an init container that failed says why in ``kubectl get pod`` (exit code) and in its log
(one line), without a traceback.
"""

from __future__ import annotations

from enum import StrEnum


class FailureReason(StrEnum):
    BUCKET_MISSING = "BucketMissing"
    ACCESS_DENIED = "AccessDenied"
    OBJECT_MISSING = "ObjectMissing"
    CHECKSUM_MISMATCH = "ChecksumMismatch"
    ENDPOINT_UNREACHABLE = "EndpointUnreachable"
    INVALID_SNAPSHOT = "InvalidSnapshot"
    SOURCE_CHANGED = "SourceChanged"
    LOCAL_IO = "LocalIOError"


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
