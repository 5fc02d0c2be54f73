"""Pure parts around snapshots: the conditions reconcile writes, retention, S3 settings from env, progress."""

from __future__ import annotations

import base64
import io
import time
from datetime import UTC, datetime, timedelta

import pytest

from codepilot_operator.api import CodePilot
from codepilot_operator.api.status import Condition
from codepilot_operator.api.tracks import pinned_snapshot_ids
from codepilot_operator.clients.s3 import Credentials as S3Credentials
from codepilot_operator.clients.s3 import S3Settings, credentials_from_env
from codepilot_operator.loader import parse_codepilot
from codepilot_operator.reconcile.status import merge_conditions
from codepilot_operator.reconcile.weights import snapshot_failed_conditions, track_pin, weights_verified
from codepilot_operator.snapshots.errors import FailureReason, SnapshotError
from codepilot_operator.snapshots.progress import Progress, human_bytes
from codepilot_operator.snapshots.retention import RetentionPolicy
from codepilot_operator.snapshots.service import Credentials, retention_policy
from codepilot_operator.snapshots.store import SnapshotRef

NOW = datetime(2026, 3, 4, 5, 6, 7, tzinfo=UTC)


def _cp(source: dict[str, object] | None = None, status: dict[str, object] | None = None) -> CodePilot:
    doc: dict[str, object] = {
        "apiVersion": "serving.codepilot.dev/v1alpha1",
        "kind": "CodePilot",
        "metadata": {"name": "coder"},
        "spec": {
            "model": {
                "name": "coder",
                "version": "v2",
                "source": {"uri": "s3://models/coder", "endpoint": "http://minio:9000", **(source or {})},
            }
        },
    }
    if status:
        doc["status"] = status
    return parse_codepilot(doc)


def test_verified_condition_names_the_snapshot_and_size_and_fits_the_api_type() -> None:
    ref = SnapshotRef("f" * 64, "v2", 3 * 2**30, 7, "s3://models/x/" + "f" * 64)
    [condition] = merge_conditions([], [weights_verified([ref])], generation=3, now=NOW)
    assert track_pin(ref).model_dump(by_alias=True) == {
        "version": "v2",
        "snapshotId": "f" * 64,
        "sizeBytes": 3 * 2**30,
    }
    assert condition == {
        "type": "WeightsVerified",
        "status": "True",
        "reason": "WeightsVerified",
        "message": f"version v2: snapshot {'f' * 64} verified (7 files, 3221225472 bytes = 3.0 GiB)",
        "lastTransitionTime": "2026-03-04T05:06:07Z",
        "observedGeneration": 3,
    }
    Condition.model_validate(condition)


@pytest.mark.parametrize("reason", list(FailureReason))
def test_failed_condition_carries_the_reason(reason: FailureReason) -> None:
    updates = snapshot_failed_conditions(SnapshotError(reason, "s3://models/x: something"))
    condition = next(
        c for c in merge_conditions([], updates, generation=None, now=NOW) if c["type"] == "WeightsVerified"
    )
    assert (condition["status"], condition["reason"]) == ("False", "SnapshotFailed")
    assert condition["message"] == f"{reason}: s3://models/x: something"
    assert "observedGeneration" not in condition
    Condition.model_validate(condition)


def test_retention_defaults_and_overrides_from_spec() -> None:
    assert retention_policy(_cp()) == RetentionPolicy(5, timedelta(days=7))
    custom = _cp({"retention": {"keep": 2, "maxAge": "36h"}})
    assert retention_policy(custom) == RetentionPolicy(2, timedelta(hours=36))


def test_pins_are_the_snapshots_of_both_tracks() -> None:
    status = {
        "stableSnapshot": {"version": "v1", "snapshotId": "a" * 64},
        "canarySnapshot": {"version": "v2", "snapshotId": "b" * 64},
    }
    assert pinned_snapshot_ids(_cp(status=status).status) == {"a" * 64, "b" * 64}
    assert pinned_snapshot_ids(_cp().status) == set()


def test_credentials_from_secret_data() -> None:
    data = {
        k: base64.b64encode(v.encode()).decode()
        for k, v in {"AWS_ACCESS_KEY_ID": "ak", "AWS_SECRET_ACCESS_KEY": "sk"}.items()
    }
    assert Credentials.from_secret_data(data) == Credentials("ak", "sk")
    with pytest.raises(SnapshotError) as excinfo:
        Credentials.from_secret_data({"AWS_ACCESS_KEY_ID": "YWs="})
    assert excinfo.value.reason is FailureReason.ACCESS_DENIED and "AWS_SECRET_ACCESS_KEY" in str(
        excinfo.value
    )


def test_credentials_come_from_one_reader_of_the_environment() -> None:
    env = {"AWS_ACCESS_KEY_ID": "ak", "AWS_SECRET_ACCESS_KEY": "sk", "AWS_SESSION_TOKEN": "tok"}
    assert credentials_from_env(env) == S3Credentials("ak", "sk", "tok")
    assert credentials_from_env({}) is None
    settings = S3Settings.from_env({**env, "S3_ENDPOINT": "http://m"})
    assert (settings.access_key, settings.secret_key, settings.session_token) == ("ak", "sk", "tok")


@pytest.mark.parametrize(
    ("value", "problem"),
    [
        ("c2VjcmV0!!", "not valid base64"),
        (base64.b64encode(b"\xffsecret").decode(), "not UTF-8"),
        ("sécrét", "not valid base64"),
    ],
)
def test_undecodable_secret_values_are_named_by_secret_and_key_never_shown(value: str, problem: str) -> None:
    data = {"AWS_ACCESS_KEY_ID": base64.b64encode(b"ak").decode(), "AWS_SECRET_ACCESS_KEY": value}
    with pytest.raises(SnapshotError) as excinfo:
        Credentials.from_secret_data(data, "Secret team-a/s3")
    message = str(excinfo.value)
    assert excinfo.value.reason is FailureReason.ACCESS_DENIED
    assert "Secret team-a/s3" in message and "AWS_SECRET_ACCESS_KEY" in message and problem in message
    assert value not in message and "secret" not in message.replace("Secret", "").replace("SECRET", "")
    assert "0xff" not in message


def test_s3_settings_follow_the_usual_environment() -> None:
    env = {
        "S3_ENDPOINT": "https://s3.example.internal:9000",
        "AWS_ACCESS_KEY_ID": "ak",
        "AWS_SECRET_ACCESS_KEY": "sk",
        "S3_REGION": "eu-west-1",
        "S3_CONNECT_TIMEOUT": "3",
        "S3_READ_TIMEOUT": "30",
    }
    settings = S3Settings.from_env(env)
    assert (settings.secure, settings.host, settings.region) == (
        True,
        "s3.example.internal:9000",
        "eu-west-1",
    )
    assert (settings.connect_timeout, settings.read_timeout) == (3.0, 30.0)
    assert not S3Settings.from_env({"S3_ENDPOINT": "http://minio:9000"}).secure
    assert S3Settings.from_env(env, endpoint="http://other:1").host == "other:1"  # flag wins over env


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({}, "no S3 endpoint"),
        ({"S3_ENDPOINT": "minio:9000"}, "http(s)://host"),
        ({"S3_ENDPOINT": "http://minio:9000/bucket"}, "http(s)://host"),
        ({"S3_ENDPOINT": "http://m", "AWS_ACCESS_KEY_ID": "ak"}, "set both"),
        ({"S3_ENDPOINT": "http://m", "S3_READ_TIMEOUT": "soon"}, "seconds"),
        ({"S3_ENDPOINT": "http://m", "S3_CONNECT_TIMEOUT": "inf"}, "S3_CONNECT_TIMEOUT"),
        ({"S3_ENDPOINT": "http://m", "S3_CONNECT_TIMEOUT": "nan"}, "S3_CONNECT_TIMEOUT"),
        ({"S3_ENDPOINT": "http://m", "S3_CONNECT_TIMEOUT": "-5"}, "S3_CONNECT_TIMEOUT"),
        ({"S3_ENDPOINT": "http://m", "S3_CONNECT_TIMEOUT": "0"}, "S3_CONNECT_TIMEOUT"),
        ({"S3_ENDPOINT": "http://m", "S3_CONNECT_TIMEOUT": "1e300"}, "S3_CONNECT_TIMEOUT"),
        ({"S3_ENDPOINT": "http://m", "S3_READ_TIMEOUT": "-inf"}, "S3_READ_TIMEOUT"),
    ],
)
def test_s3_settings_refuse_what_would_fail_later(env: dict[str, str], message: str) -> None:
    with pytest.raises(ValueError) as excinfo:
        S3Settings.from_env(env)
    assert message in str(excinfo.value)


def test_progress_lines_in_a_log_are_whole_lines_with_rate_and_time_left() -> None:
    stream = io.StringIO()
    progress = Progress("fetch", 4 * 2**20, 2, stream=stream, enabled=True, interval=0)
    progress.add(2**20)
    progress.file_done()
    progress.close()
    last = stream.getvalue().splitlines()[-1]
    assert "\r" not in stream.getvalue()
    assert last.startswith("fetch:  25% 1.00M/4.00M [00:00<"), last  # elapsed < remaining: the ETA
    assert last.endswith("B/s], 1/2 files"), last
    assert human_bytes(512) == "512 B" and human_bytes(1536) == "1.5 KiB"


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_progress_is_silent_unless_on_a_terminal_or_asked() -> None:
    log = io.StringIO()
    progress = Progress("fetch", 100, 1, stream=log, interval=0)
    progress.add(100)
    progress.file_done()
    progress.close()
    assert log.getvalue() == ""
    terminal = _Terminal()
    progress = Progress("fetch", 100, 1, stream=terminal, enabled=False, interval=0)
    progress.add(100)
    progress.close()
    assert terminal.getvalue() == ""


def test_progress_on_a_terminal_is_a_bar_redrawn_in_place() -> None:
    terminal = _Terminal()
    progress = Progress("snapshot: hash", 4 * 2**30, 2, stream=terminal, interval=0)
    progress.add(2**30)
    progress.file_done()
    progress.close()
    drawn = terminal.getvalue()
    assert "\r" in drawn and drawn.endswith("\n")
    assert drawn.rsplit("\r", 1)[-1].startswith("snapshot: hash:  25%|")
    assert "1.00G/4.00G" in drawn and "B/s], 1/2 files" in drawn


def test_a_step_without_bytes_still_reports_its_time() -> None:
    """The server-side copy sends no bytes through the CLI: the ticker keeps the line moving."""
    stream = io.StringIO()
    progress = Progress(
        "snapshot: server-side copy", 2 * 2**30, 1, stream=stream, enabled=True, interval=0.05
    )
    try:
        for _ in range(200):
            if stream.getvalue():
                break
            time.sleep(0.05)
    finally:
        progress.close()
    first = stream.getvalue().splitlines()[0]
    assert first.startswith("snapshot: server-side copy:   0% 0.00/2.00G [00:00<?, ?B/s], 0/1 files"), first
