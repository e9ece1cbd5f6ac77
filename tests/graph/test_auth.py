"""msal runs for real here; only its HTTP goes to the in-process fake through httpx."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import stat
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.serialization import pkcs12
from cryptography.x509.oid import NameOID

from reconcile.errors import AuthError, ConfigError
from reconcile.graph.auth import MsalTokenProvider, choose_method, load_certificate
from reconcile.graph.clouds import resolve_endpoints
from reconcile.graph.config import AuthMethod, GraphConfig
from tests.graph.fake import CLIENT, SECRET, TENANT, FakeCloud


def base_settings(**changes: Any) -> GraphConfig:
    return replace(GraphConfig(tenant_id=TENANT, client_id=CLIENT), **changes)


def provider(settings: GraphConfig, cloud: FakeCloud, **kwargs: Any) -> MsalTokenProvider:
    http = httpx.Client(transport=cloud.transport())
    return MsalTokenProvider(
        settings, resolve_endpoints(settings), http, sleep=lambda s: None, **kwargs
    )


def b64(part: str) -> bytes:
    return base64.urlsafe_b64decode(part + "=" * (-len(part) % 4))


def jwt_parts(assertion: str) -> tuple[dict[str, Any], dict[str, Any]]:
    header, payload, _ = assertion.split(".")
    return json.loads(b64(header)), json.loads(b64(payload))


@pytest.fixture(scope="module")
def key_and_cert() -> tuple[rsa.RSAPrivateKey, x509.Certificate, x509.Certificate]:
    ca_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    start = datetime.now(UTC) - timedelta(days=1)

    def build(subject: str, public: Any, issuer: str, signer: Any) -> x509.Certificate:
        return (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)]))
            .issuer_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, issuer)]))
            .public_key(public)
            .serial_number(x509.random_serial_number())
            .not_valid_before(start)
            .not_valid_after(start + timedelta(days=30))
            .sign(signer, hashes.SHA256())
        )

    ca = build("Test CA", ca_key.public_key(), "Test CA", ca_key)
    leaf = build("reconcile-app", key.public_key(), "Test CA", ca_key)
    return key, leaf, ca


def test_client_secret_token_is_cached_by_msal() -> None:
    cloud = FakeCloud()
    tokens = provider(base_settings(client_secret=SECRET), cloud)
    assert cloud.requests == []  # the msal app is built lazily
    assert tokens.token() == "token-1"
    assert tokens.token() == "token-1"
    (post,) = cloud.token_posts()
    form = parse_qs(post.content.decode())
    assert form["grant_type"] == ["client_credentials"]
    assert form["scope"] == ["https://graph.microsoft.com/.default"]
    assert tokens.method == "secret"
    assert tokens.last_source == "cache"


def test_short_lived_tokens_are_renewed_on_the_next_request() -> None:
    cloud = FakeCloud(expires_in=60)  # msal treats < 5 min left as expired
    tokens = provider(base_settings(client_secret=SECRET), cloud)
    assert [tokens.token() for _ in range(3)] == ["token-1", "token-2", "token-3"]


def test_secret_file_is_read_and_never_echoed(tmp_path: Path) -> None:
    path = tmp_path / "secret.txt"
    path.write_text(SECRET + "\n", encoding="utf-8")
    cloud = FakeCloud(
        token_error={
            "error": "invalid_client",
            "error_description": f"AADSTS7000215: Invalid client secret {SECRET} provided.",
            "error_codes": [7000215],
        }
    )
    tokens = provider(base_settings(client_secret_file=path), cloud)
    with pytest.raises(AuthError) as info:
        tokens.token()
    message = str(info.value)
    assert "AADSTS7000215" in message and "fix:" in message
    assert SECRET not in message
    assert "\n" not in message


@pytest.mark.parametrize(
    ("code", "words"),
    [
        (7000222, "expired"),
        (700016, "no application"),
        (65001, "consent"),
        (700027, "certificate"),
        (90002, "tenant not found"),
    ],
)
def test_known_aadsts_codes_are_explained(code: int, words: str) -> None:
    cloud = FakeCloud(
        token_error={
            "error": "x",
            "error_description": f"AADSTS{code}: whatever",
            "error_codes": [code],
        }
    )
    with pytest.raises(AuthError) as info:
        provider(base_settings(client_secret=SECRET), cloud).token()
    assert f"AADSTS{code}" in str(info.value)
    assert words in str(info.value)


def test_unknown_aadsts_code_keeps_entras_first_line_masked() -> None:
    description = f"AADSTS123456: Odd thing with {SECRET}.\r\nTrace ID: abc\r\nCorrelation ID: d"
    cloud = FakeCloud(
        token_error={"error": "x", "error_description": description, "error_codes": [123456]}
    )
    with pytest.raises(AuthError) as info:
        provider(base_settings(client_secret=SECRET), cloud).token()
    message = str(info.value)
    assert "AADSTS123456 Odd thing with ***." in message
    assert "Trace ID" not in message and SECRET not in message


def test_unknown_tenant_during_discovery_is_an_auth_error() -> None:
    cloud = FakeCloud()
    cloud.before.append(
        lambda r: (
            httpx.Response(
                400,
                json={
                    "error": "invalid_tenant",
                    "error_description": "AADSTS90002: Tenant 'x' not found.",
                },
            )
            if r.url.path.endswith("openid-configuration")
            else None
        )
    )
    with pytest.raises(AuthError, match="AADSTS90002 tenant not found"):
        provider(base_settings(client_secret=SECRET), cloud).token()


def test_unreachable_authority_is_retried_then_reported() -> None:
    cloud = FakeCloud()

    def down(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("connection refused")

    cloud.before.append(down)
    with pytest.raises(AuthError, match="cannot reach https://login.microsoftonline.com"):
        provider(base_settings(client_secret=SECRET), cloud).token()
    assert len(cloud.requests) == 3


def test_auto_method_prefers_secret_then_certificate(tmp_path: Path) -> None:
    assert choose_method(base_settings(client_secret="x")) == "secret"
    assert choose_method(base_settings(client_secret_file=tmp_path / "s")) == "secret"
    assert choose_method(base_settings(certificate_path=tmp_path / "c.pem")) == "certificate"
    assert choose_method(base_settings(auth_method=AuthMethod.DEVICE_CODE)) == "device-code"
    with pytest.raises(ConfigError, match="no Graph credential configured"):
        choose_method(base_settings())


def test_app_only_sign_in_needs_a_real_tenant() -> None:
    with pytest.raises(ConfigError, match="tenant"):
        provider(base_settings(client_secret="x", tenant_id="common"), FakeCloud())
    with pytest.raises(ConfigError, match="RECONCILE_CLIENT_ID"):
        provider(base_settings(client_secret="x", client_id=None), FakeCloud())


def _pem(key: rsa.RSAPrivateKey, *certs: x509.Certificate, password: bytes | None = None) -> bytes:
    encryption = (
        serialization.BestAvailableEncryption(password)
        if password
        else serialization.NoEncryption()
    )
    return b"".join(c.public_bytes(serialization.Encoding.PEM) for c in certs) + key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, encryption
    )


def test_certificate_pem_with_password_signs_an_assertion_with_its_thumbprint(
    tmp_path: Path, key_and_cert: Any
) -> None:
    key, leaf, _ = key_and_cert
    path = tmp_path / "app.pem"
    path.write_bytes(_pem(key, leaf, password=b"pw"))
    cloud = FakeCloud()
    settings = base_settings(certificate_path=path, certificate_password="pw")
    assert provider(settings, cloud).token() == "token-1"
    form = parse_qs(cloud.token_posts()[0].content.decode())
    assert "client_secret" not in form
    header, claims = jwt_parts(form["client_assertion"][0])
    sha1 = hashlib.sha1(leaf.public_bytes(serialization.Encoding.DER)).digest()
    assert b64(header["x5t"]) == sha1
    assert "x5c" not in header
    assert claims["iss"] == CLIENT


def test_pfx_with_chain_sends_x5c_leaf_first(tmp_path: Path, key_and_cert: Any) -> None:
    key, leaf, ca = key_and_cert
    path = tmp_path / "app.pfx"
    path.write_bytes(
        pkcs12.serialize_key_and_certificates(
            b"app", key, leaf, [ca], serialization.BestAvailableEncryption(b"pfx-pw")
        )
    )
    settings = base_settings(
        certificate_path=path, certificate_password="pfx-pw", send_certificate_chain=True
    )
    credential = load_certificate(settings)
    assert (
        credential["thumbprint"]
        == hashlib.sha1(leaf.public_bytes(serialization.Encoding.DER)).hexdigest().upper()
    )
    chain = x509.load_pem_x509_certificates(credential["public_certificate"].encode())
    assert chain == [leaf, ca]
    cloud = FakeCloud()
    provider(settings, cloud).token()
    header, _ = jwt_parts(parse_qs(cloud.token_posts()[0].content.decode())["client_assertion"][0])
    assert len(header["x5c"]) == 2


def test_certificate_problems_are_config_errors(tmp_path: Path, key_and_cert: Any) -> None:
    key, leaf, ca = key_and_cert
    path = tmp_path / "app.pem"
    path.write_bytes(_pem(key, leaf, password=b"pw"))
    with pytest.raises(ConfigError, match="RECONCILE_CERTIFICATE_PASSWORD"):
        load_certificate(base_settings(certificate_path=path))
    with pytest.raises(ConfigError, match="wrong password"):
        load_certificate(base_settings(certificate_path=path, certificate_password="nope"))
    path.write_bytes(_pem(key, ca))
    with pytest.raises(ConfigError, match="matches its private key"):
        load_certificate(base_settings(certificate_path=path))
    path.write_bytes(_pem(key))
    with pytest.raises(ConfigError, match="certificate_thumbprint"):
        load_certificate(base_settings(certificate_path=path))
    given = "AB" * 20
    assert (
        load_certificate(base_settings(certificate_path=path, certificate_thumbprint=given))[
            "thumbprint"
        ]
        == given
    )
    with pytest.raises(ConfigError, match="cannot read"):
        load_certificate(base_settings(certificate_path=tmp_path / "missing.pem"))


def test_device_code_prompts_on_stderr_and_caches_with_0600(tmp_path: Path) -> None:
    cache = tmp_path / "cache" / "tokens.json"
    settings = base_settings(auth_method=AuthMethod.DEVICE_CODE, token_cache=cache)
    prompts: list[str] = []
    cloud = FakeCloud()
    assert provider(settings, cloud, prompt=prompts.append).token() == "token-1"
    assert prompts and "ABCD-EFGH" in prompts[0]
    assert stat.S_IMODE(os.stat(cache).st_mode) == 0o600
    assert "refresh-1" in cache.read_text(encoding="utf-8")
    # a second run finds the account in the cache and does not prompt
    again: list[str] = []
    cloud2 = FakeCloud()
    assert provider(settings, cloud2, prompt=again.append).token() == "token-1"
    assert again == []
    assert cloud2.token_posts() == []


def test_device_code_prompt_goes_to_stderr_by_default(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    settings = base_settings(auth_method=AuthMethod.DEVICE_CODE, token_cache=tmp_path / "c.json")
    provider(settings, FakeCloud()).token()
    captured = capsys.readouterr()
    assert "ABCD-EFGH" in captured.err
    assert captured.out == ""


@pytest.mark.parametrize("client_id", [None, "mi-client-id"])
def test_managed_identity_asks_imds_for_the_graph_resource(
    monkeypatch: pytest.MonkeyPatch, client_id: str | None
) -> None:
    for name in (
        "IDENTITY_ENDPOINT",
        "IDENTITY_HEADER",
        "MSI_ENDPOINT",
        "MSI_SECRET",
        "IDENTITY_SERVER_THUMBPRINT",
        "IMDS_ENDPOINT",
    ):
        monkeypatch.delenv(name, raising=False)
    cloud = FakeCloud()
    cloud.before.append(
        lambda r: (
            httpx.Response(
                200,
                json={
                    "access_token": "mi-token",
                    "expires_in": "3599",
                    "resource": "https://graph.microsoft.com",
                    "token_type": "Bearer",
                },
            )
            if r.url.host == "169.254.169.254"
            else None
        )
    )
    settings = GraphConfig(
        auth_method=AuthMethod.MANAGED_IDENTITY, managed_identity_client_id=client_id
    )
    assert provider(settings, cloud).token() == "mi-token"
    (request,) = cloud.requests
    assert request.url.params["resource"] == "https://graph.microsoft.com"
    assert request.url.params.get("client_id") == client_id
    assert request.headers["Metadata"] == "true"
