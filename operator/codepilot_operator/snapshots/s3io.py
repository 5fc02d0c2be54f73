"""Turning S3 and network exceptions into SnapshotError with a reason and one readable line."""

from __future__ import annotations

from minio.error import InvalidResponseError, S3Error, ServerError
from urllib3.exceptions import HTTPError as Urllib3Error

from codepilot_operator.snapshots.errors import FailureReason, SnapshotError

_ACCESS_CODES = {
    "AccessDenied",
    "InvalidAccessKeyId",
    "SignatureDoesNotMatch",
    "InvalidToken",
    "ExpiredToken",
    "AllAccessDisabled",
    "AccountProblem",
}
_MISSING_CODES = {"NoSuchKey", "NoSuchObject", "NoSuchVersion"}
_CHANGED_CODES = {"PreconditionFailed"}


def translate(exc: BaseException, where: str) -> SnapshotError:
    """``where`` names what was being read (``s3://bucket/key`` or ``endpoint``) for the message."""
    if isinstance(exc, SnapshotError):
        return exc
    if isinstance(exc, S3Error):
        code = exc.code or ""
        if code == "NoSuchBucket":
            return SnapshotError(
                FailureReason.BUCKET_MISSING, f"bucket {exc.bucket_name or where} does not exist"
            )
        if code in _ACCESS_CODES:
            return SnapshotError(
                FailureReason.ACCESS_DENIED,
                f"access denied to {where} ({code}): check the access key and secret",
            )
        if code in _MISSING_CODES:
            return SnapshotError(FailureReason.OBJECT_MISSING, f"object missing: {where}")
        if code == "InvalidRange":
            return SnapshotError(
                FailureReason.CHECKSUM_MISMATCH, f"{where} is shorter than its manifest says"
            )
        if code in _CHANGED_CODES:
            return SnapshotError(
                FailureReason.SOURCE_CHANGED, f"{where} changed while it was being read; retry"
            )
        return SnapshotError(
            FailureReason.ENDPOINT_UNREACHABLE, f"S3 error at {where}: {code}: {exc.message}"
        )
    if isinstance(exc, ServerError):
        return SnapshotError(
            FailureReason.ENDPOINT_UNREACHABLE, f"S3 server error {exc.status_code} at {where}"
        )
    if isinstance(exc, InvalidResponseError):
        return SnapshotError(FailureReason.ENDPOINT_UNREACHABLE, f"not an S3 endpoint answering for {where}")
    if isinstance(exc, Urllib3Error | ConnectionError | TimeoutError):
        detail = str(getattr(exc, "reason", None) or exc).splitlines()[0][:200]
        return SnapshotError(FailureReason.ENDPOINT_UNREACHABLE, f"cannot reach S3 for {where}: {detail}")
    raise exc
