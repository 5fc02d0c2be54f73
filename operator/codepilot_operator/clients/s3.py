"""A minio client configured the way S3 tools are: endpoint URL, keys from the environment, timeouts.

TLS follows the endpoint's scheme (https:// on, http:// off), as with the aws CLI's ``--endpoint-url``;
a private CA comes as a file (``AWS_CA_BUNDLE``, the fetcher) or as PEM text (the operator, which reads
the CodePilot's CA Secret or ConfigMap). The connection pool is sized for the fetcher's parallel ranged
GETs (minio's default pool holds 10).

Credentials, in the order the AWS SDKs use: static keys (from the CodePilot's Secret), else the pod's web
identity (IRSA: ``AWS_WEB_IDENTITY_TOKEN_FILE`` + ``AWS_ROLE_ARN``, exchanged at STS by minio's
IamAwsProvider and refreshed before they expire), else anonymous.
"""

from __future__ import annotations

import math
import os
import ssl
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import certifi
import urllib3
from minio import Minio
from minio.credentials.providers import IamAwsProvider, Provider
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
    STS_ENDPOINT_ENV,
    WEB_IDENTITY_ROLE_ENV,
    WEB_IDENTITY_TOKEN_ENV,
)

MAX_TIMEOUT = 86400.0  # a day: beyond any sane wait, and far inside what a socket timeout can hold


@dataclass(frozen=True)
class Credentials:
    access_key: str
    secret_key: str
    session_token: str | None = None  # temporary credentials (STS) come with one


def credentials_from_env(env: Mapping[str, str] | None = None) -> Credentials | None:
    """The keys every S3 tool reads (``AWS_ACCESS_KEY_ID``, ``AWS_SECRET_ACCESS_KEY``,
    ``AWS_SESSION_TOKEN``); None for anonymous access. The one reader, so ``fetch`` and ``snapshot``
    commands cannot disagree about which credentials they use."""
    env = os.environ if env is None else env
    access, secret = env.get(ACCESS_KEY_ENV) or None, env.get(SECRET_KEY_ENV) or None
    if bool(access) != bool(secret):
        raise ValueError(f"set both {ACCESS_KEY_ENV} and {SECRET_KEY_ENV}, or neither for anonymous access")
    if not access or not secret:
        return None
    return Credentials(access, secret, env.get(SESSION_TOKEN_ENV) or None)


@dataclass(frozen=True)
class WebIdentity:
    """What the pod's identity webhook (EKS IRSA) injects: a projected token and the role to assume."""

    token_file: str
    role_arn: str
    sts_endpoint: str | None = None  # AWS_ENDPOINT_URL_STS, as the AWS SDKs read it; else AWS's STS


def web_identity_from_env(env: Mapping[str, str] | None = None) -> WebIdentity | None:
    """The pod's web identity, if it has one (both variables set); None otherwise."""
    env = os.environ if env is None else env
    token_file, role_arn = env.get(WEB_IDENTITY_TOKEN_ENV) or None, env.get(WEB_IDENTITY_ROLE_ENV) or None
    if not token_file or not role_arn:
        return None
    return WebIdentity(token_file, role_arn, env.get(STS_ENDPOINT_ENV) or None)


def _timeout(value: float, what: str) -> float:
    if not (math.isfinite(value) and 0 < value <= MAX_TIMEOUT):
        raise ValueError(
            f"{what} must be a number of seconds above 0 and at most {MAX_TIMEOUT:.0f}, got {value}"
        )
    return value


def _seconds(env: Mapping[str, str], name: str, default: float) -> float:
    text = env.get(name)
    if text is None or not text.strip():
        return default
    try:
        value = float(text)
    except ValueError:
        raise ValueError(f"{name} must be seconds, e.g. 10, got {text!r}") from None
    return _timeout(value, name)


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
    ca_bundle: str | None = None  # a file of PEM certificates
    ca_pem: str | None = None  # the same as text; wins over ca_bundle
    web_identity: WebIdentity | None = None  # used only without static keys

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
        if self.ca_pem is not None and "-----BEGIN CERTIFICATE-----" not in self.ca_pem:
            raise ValueError("the CA bundle holds no PEM certificate (-----BEGIN CERTIFICATE-----)")
        if bool(self.access_key) != bool(self.secret_key):
            raise ValueError(
                f"set both {ACCESS_KEY_ENV} and {SECRET_KEY_ENV}, or neither for anonymous access"
            )
        _timeout(self.connect_timeout, "connect timeout")
        _timeout(self.read_timeout, "read timeout")

    @property
    def credentials_source(self) -> str:
        """Which credentials requests are signed with, for logs and errors (never the keys)."""
        if self.access_key:
            return "static keys"
        if self.web_identity is not None:
            return f"web identity (role {self.web_identity.role_arn})"
        return "anonymous"

    @classmethod
    def from_env(
        cls, env: Mapping[str, str] | None = None, *, endpoint: str | None = None, region: str | None = None
    ) -> S3Settings:
        """Settings from the init container's environment; explicit arguments win over env."""
        env = os.environ if env is None else env
        chosen = endpoint or env.get(ENDPOINT_ENV)
        if not chosen:
            raise ValueError(f"no S3 endpoint: set {ENDPOINT_ENV} or pass --endpoint")
        credentials = credentials_from_env(env)
        return cls(
            endpoint=chosen,
            access_key=credentials.access_key if credentials else None,
            secret_key=credentials.secret_key if credentials else None,
            session_token=credentials.session_token if credentials else None,
            region=region or env.get(REGION_ENV) or None,
            connect_timeout=_seconds(env, CONNECT_TIMEOUT_ENV, 10.0),
            read_timeout=_seconds(env, READ_TIMEOUT_ENV, 120.0),
            ca_bundle=env.get(CA_BUNDLE_ENV) or None,
            web_identity=None if credentials else web_identity_from_env(env),
        )


class S3Client(Minio):
    """A minio client that keeps the settings it was made from: the fetcher's lean GET path opens its
    own connections to the same endpoint, with the same timeouts."""

    def __init__(self, settings: S3Settings, **kwargs: Any):
        super().__init__(**kwargs)
        self.settings = settings


def _tls(settings: S3Settings) -> dict[str, Any]:
    """The roots the endpoint's certificate must chain to: the CodePilot's CA, else the system's."""
    if settings.ca_pem is not None:
        try:
            return {"ssl_context": ssl.create_default_context(cadata=settings.ca_pem)}
        except ssl.SSLError:
            raise ValueError("the CA bundle is not a readable PEM certificate") from None
    return {"ca_certs": settings.ca_bundle or os.environ.get("SSL_CERT_FILE") or certifi.where()}


def credentials_provider(settings: S3Settings) -> Provider | None:
    """minio's provider for the pod's web identity; None for static keys or anonymous access."""
    identity = settings.web_identity
    if settings.access_key or identity is None:
        return None
    return IamAwsProvider(
        custom_endpoint=identity.sts_endpoint, token_file=identity.token_file, role_arn=identity.role_arn
    )


def make_client(settings: S3Settings) -> S3Client:
    """Few, quick retries: a fetch that cannot reach S3 should fail fast and be resumed by a restart."""
    http = urllib3.PoolManager(
        timeout=Timeout(connect=settings.connect_timeout, read=settings.read_timeout),
        maxsize=settings.max_connections,
        cert_reqs="CERT_REQUIRED",
        retries=Retry(total=3, connect=2, read=1, backoff_factor=0.3, status_forcelist=[500, 502, 503, 504]),
        **_tls(settings),
    )
    return S3Client(
        settings,
        endpoint=settings.host,
        access_key=settings.access_key,
        secret_key=settings.secret_key,
        session_token=settings.session_token,
        secure=settings.secure,
        region=settings.region,
        http_client=http,
        credentials=credentials_provider(settings),
    )
