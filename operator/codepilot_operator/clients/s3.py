"""A minio client configured the way S3 tools are: endpoint URL, keys from the environment, timeouts.

TLS follows the endpoint's scheme (https:// on, http:// off), as with the aws CLI's ``--endpoint-url``.
The connection pool is sized for the fetcher's parallel ranged GETs (minio's default pool holds 10).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import urlsplit

import certifi
import urllib3
from minio import Minio
from urllib3.util import Retry, Timeout

from codepilot_operator.api.contract import (
    ACCESS_KEY_ENV,
    CA_BUNDLE_ENV,
    CONNECT_TIMEOUT_ENV,
    ENDPOINT_ENV,
    READ_TIMEOUT_ENV,
    REGION_ENV,
    SECRET_KEY_ENV,
    SESSION_TOKEN_ENV,
)


@dataclass(frozen=True)
class S3Settings:
    endpoint: str
    access_key: str | None = None
    secret_key: str | None = None
    session_token: str | None = None
    region: str | None = None
    connect_timeout: float = 10.0
    read_timeout: float = 120.0
    max_connections: int = 32
    ca_bundle: str | None = None

    @property
    def secure(self) -> bool:
        return urlsplit(self.endpoint).scheme == "https"

    @property
    def host(self) -> str:
        return urlsplit(self.endpoint).netloc

    def __post_init__(self) -> None:
        parts = urlsplit(self.endpoint)
        if parts.scheme not in ("http", "https") or not parts.netloc or parts.path not in ("", "/"):
            raise ValueError(f"S3 endpoint must be http(s)://host[:port], got {self.endpoint!r}")
        if bool(self.access_key) != bool(self.secret_key):
            raise ValueError(
                f"set both {ACCESS_KEY_ENV} and {SECRET_KEY_ENV}, or neither for anonymous access"
            )

    @classmethod
    def from_env(
        cls, env: Mapping[str, str] | None = None, *, endpoint: str | None = None, region: str | None = None
    ) -> S3Settings:
        """Settings from the init container's environment; explicit arguments win over env."""
        env = os.environ if env is None else env
        chosen = endpoint or env.get(ENDPOINT_ENV)
        if not chosen:
            raise ValueError(f"no S3 endpoint: set {ENDPOINT_ENV} or pass --endpoint")
        try:
            connect = float(env.get(CONNECT_TIMEOUT_ENV, "10"))
            read = float(env.get(READ_TIMEOUT_ENV, "120"))
        except ValueError:
            raise ValueError(f"{CONNECT_TIMEOUT_ENV}/{READ_TIMEOUT_ENV} must be seconds, e.g. 10") from None
        return cls(
            endpoint=chosen,
            access_key=env.get(ACCESS_KEY_ENV) or None,
            secret_key=env.get(SECRET_KEY_ENV) or None,
            session_token=env.get(SESSION_TOKEN_ENV) or None,
            region=region or env.get(REGION_ENV) or None,
            connect_timeout=connect,
            read_timeout=read,
            ca_bundle=env.get(CA_BUNDLE_ENV) or None,
        )


def make_client(settings: S3Settings) -> Minio:
    """Few, quick retries: a fetch that cannot reach S3 should fail fast and be resumed by a restart."""
    http = urllib3.PoolManager(
        timeout=Timeout(connect=settings.connect_timeout, read=settings.read_timeout),
        maxsize=settings.max_connections,
        cert_reqs="CERT_REQUIRED",
        ca_certs=settings.ca_bundle or os.environ.get("SSL_CERT_FILE") or certifi.where(),
        retries=Retry(total=3, connect=2, read=1, backoff_factor=0.3, status_forcelist=[500, 502, 503, 504]),
    )
    return Minio(
        settings.host,
        access_key=settings.access_key,
        secret_key=settings.secret_key,
        session_token=settings.session_token,
        secure=settings.secure,
        region=settings.region,
        http_client=http,
    )
