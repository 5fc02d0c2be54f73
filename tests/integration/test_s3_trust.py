"""Whom the S3 clients trust and how they sign, against a real SeaweedFS.

- A private CA: SeaweedFS serves https with a certificate only the test CA signed (made with openssl).
  The operator's snapshot client trusts it when given the CodePilot's CA bundle and refuses it without;
  the fetcher, as a process, trusts it through ``AWS_CA_BUNDLE`` (what the rendered pod sets) and fails
  with one line without it.
- Web identity (IRSA): with no keys, a process whose environment has ``AWS_WEB_IDENTITY_TOKEN_FILE`` and
  ``AWS_ROLE_ARN`` exchanges the token at STS and signs with what STS returns. The STS here is a small
  stand-in for AWS's (AssumeRoleWithWebIdentity, the documented wire format) that hands out the S3
  server's real keys; what is shown is that our clients pick the web identity, send the token file's
  content and role, and sign with the answer. Not shown: AWS's STS itself, EKS's webhook, a request
  carrying a session token (X-Amz-Security-Token) accepted by a server, refresh at expiry.
"""

from __future__ import annotations

import subprocess
import sys
import threading
import urllib.parse
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from codepilot_operator.clients.s3 import S3Settings, make_client
from codepilot_operator.loader import parse_codepilot
from codepilot_operator.snapshots.errors import FailureReason, SnapshotError
from codepilot_operator.snapshots.service import Credentials, ensure_snapshot, store_for
from tests.fixtures.s3 import SeaweedFS, codepilot_doc, minio_client, running_seaweedfs, upload
from tests.fixtures.tls import PrivateCA, make_private_ca

# AWS's STS always returns a session token; SeaweedFS checks any session token against its own STS, so
# the stand-in (which hands out the server's static keys) returns an empty one and none is sent.
SESSION_TOKEN = ""
FILES = {"config.json": b'{"arch": "tiny"}', "weights.bin": b"w" * 200_000}


@pytest.fixture(scope="module")
def private_ca(tmp_path_factory: pytest.TempPathFactory) -> PrivateCA:
    return make_private_ca(tmp_path_factory.mktemp("private-ca"))


@pytest.fixture(scope="module")
def tls_server(private_ca: PrivateCA) -> Iterator[SeaweedFS]:
    yield from running_seaweedfs("codepilot-s3-tls-", tls=private_ca.tls)


@pytest.fixture
def tls_bucket(tls_server: SeaweedFS) -> str:
    name = f"t-{uuid.uuid4().hex[:20]}"
    client = minio_client(tls_server)
    client.make_bucket(name)
    upload(client, name, "m/v1", FILES)
    return name


def test_the_operators_snapshot_client_trusts_the_codepilots_ca(
    tls_server: SeaweedFS, tls_bucket: str, private_ca: PrivateCA
) -> None:
    cp = parse_codepilot(codepilot_doc(tls_bucket, "m/v1", tls_server.endpoint))
    keys = Credentials(tls_server.access_key, tls_server.secret_key)

    with pytest.raises(SnapshotError) as refused:
        ensure_snapshot(store_for(cp, keys, env={}), cp, now=datetime.now(UTC))
    assert refused.value.reason is FailureReason.ENDPOINT_UNREACHABLE
    assert "CERTIFICATE_VERIFY_FAILED" in str(refused.value)

    ref = ensure_snapshot(store_for(cp, keys, ca_pem=private_ca.ca_pem, env={}), cp, now=datetime.now(UTC))
    assert ref.file_count == len(FILES) and ref.size_bytes == sum(map(len, FILES.values()))


def test_a_bundle_that_is_not_pem_is_refused_before_any_request() -> None:
    with pytest.raises(ValueError, match="no PEM certificate"):
        S3Settings(endpoint="https://127.0.0.1:1", ca_pem="not a certificate")


def _fetch(source: str, dest: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "codepilot_operator.cli",
            "fetch",
            "--source",
            source,
            "--dest",
            str(dest),
            "--no-progress",
        ],
        env={"PATH": "/usr/bin:/bin", **env},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_the_fetcher_trusts_the_ca_bundle_the_pod_mounts(
    tls_server: SeaweedFS, tls_bucket: str, private_ca: PrivateCA, tmp_path: Path
) -> None:
    source = f"s3://{tls_bucket}/m/v1"
    refused = _fetch(source, tmp_path / "without", tls_server.env)
    assert refused.returncode == 6, refused.stderr
    assert len(refused.stderr.strip().splitlines()) == 1 and "CERTIFICATE_VERIFY_FAILED" in refused.stderr

    done = _fetch(source, tmp_path / "with", {**tls_server.env, "AWS_CA_BUNDLE": str(private_ca.ca_file)})
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "with" / "weights.bin").read_bytes() == FILES["weights.bin"]


# --- web identity -------------------------------------------------------------------------------------


class StandInSTS:
    """AssumeRoleWithWebIdentity as AWS's STS answers it, handing out ``keys`` for ``token`` only."""

    def __init__(self, token: str, keys: tuple[str, str]):
        self.requests: list[dict[str, list[str]]] = []
        sts = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # minio sends the query in the body
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length).decode()
                query = urllib.parse.parse_qs(urllib.parse.urlsplit(self.path).query or body)
                sts.requests.append(query)
                if query.get("WebIdentityToken") != [token]:
                    self._answer(
                        400, "<ErrorResponse><Error><Code>InvalidIdentityToken</Code></Error></ErrorResponse>"
                    )
                    return
                expires = (datetime.now(UTC) + timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
                self._answer(
                    200,
                    "<AssumeRoleWithWebIdentityResponse><AssumeRoleWithWebIdentityResult><Credentials>"
                    f"<AccessKeyId>{keys[0]}</AccessKeyId><SecretAccessKey>{keys[1]}</SecretAccessKey>"
                    f"<SessionToken>{SESSION_TOKEN}</SessionToken><Expiration>{expires}</Expiration>"
                    "</Credentials></AssumeRoleWithWebIdentityResult></AssumeRoleWithWebIdentityResponse>",
                )

            do_GET = do_POST

            def _answer(self, status: int, text: str) -> None:
                data = text.encode()
                self.send_response(status)
                self.send_header("Content-Type", "text/xml")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> StandInSTS:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()


def _identity_env(token_file: Path, sts: StandInSTS) -> dict[str, str]:
    return {
        "AWS_WEB_IDENTITY_TOKEN_FILE": str(token_file),
        "AWS_ROLE_ARN": "arn:aws:iam::123456789012:role/codepilot-weights",
        "AWS_ENDPOINT_URL_STS": sts.url,
    }


def test_without_keys_the_pods_web_identity_signs(
    s3_server: SeaweedFS, s3_bucket: str, tmp_path: Path
) -> None:
    token_file = tmp_path / "token"
    token_file.write_text("projected-service-account-token")
    upload(minio_client(s3_server), s3_bucket, "m/v1", FILES)
    with StandInSTS("projected-service-account-token", (s3_server.access_key, s3_server.secret_key)) as sts:
        env = {"S3_ENDPOINT": s3_server.endpoint, **_identity_env(token_file, sts)}
        settings = S3Settings.from_env(env)
        assert (
            settings.credentials_source
            == "web identity (role arn:aws:iam::123456789012:role/codepilot-weights)"
        )
        assert [o.object_name for o in make_client(settings).list_objects(s3_bucket, "m/v1/")] == [
            "m/v1/config.json",
            "m/v1/weights.bin",
        ]
        (request,) = sts.requests
        assert request["Action"] == ["AssumeRoleWithWebIdentity"]
        assert request["RoleArn"] == ["arn:aws:iam::123456789012:role/codepilot-weights"]

        # The fetcher as the pod runs it: no keys in its environment, the webhook's variables instead.
        done = _fetch(f"s3://{s3_bucket}/m/v1", tmp_path / "dest", env)
        assert done.returncode == 0, done.stderr
        assert (tmp_path / "dest" / "config.json").read_bytes() == FILES["config.json"]

        # The operator's snapshot client, for a CodePilot without a credentials Secret.
        cp = parse_codepilot(codepilot_doc(s3_bucket, "m/v1", s3_server.endpoint))
        ref = ensure_snapshot(store_for(cp, None, env=env), cp, now=datetime.now(UTC))
        assert ref.file_count == len(FILES)

        token_file.write_text("a token STS does not accept")
        refused = _fetch(f"s3://{s3_bucket}/m/v1", tmp_path / "refused", env)
        assert refused.returncode != 0 and len(refused.stderr.strip().splitlines()) == 1, refused.stderr


def test_static_keys_win_over_the_web_identity_and_neither_is_anonymous(tmp_path: Path) -> None:
    identity = {"AWS_WEB_IDENTITY_TOKEN_FILE": str(tmp_path / "t"), "AWS_ROLE_ARN": "arn:aws:iam::1:role/r"}
    keys = {"AWS_ACCESS_KEY_ID": "a", "AWS_SECRET_ACCESS_KEY": "b"}
    endpoint = {"S3_ENDPOINT": "http://127.0.0.1:1"}
    assert S3Settings.from_env({**endpoint, **keys, **identity}).credentials_source == "static keys"
    assert S3Settings.from_env({**endpoint, "AWS_ROLE_ARN": "arn:aws:iam::1:role/r"}).credentials_source == (
        "anonymous"
    )
    assert S3Settings.from_env(endpoint).credentials_source == "anonymous"
