"""msal runs for real here, against the HTTPS emulator; what it sent is read client-side."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import re
import stat
from collections.abc import Iterator
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

from reconcile.emulator import Fault, FaultKind, GraphEmulator, ListTenant
from reconcile.errors import AuthError, ConfigError
from reconcile.graph.aadsts import error_from_result
from reconcile.graph.auth import MsalTokenProvider
from reconcile.graph.clouds import resolve_endpoints
from reconcile.graph.config import AuthMethod, GraphConfig
from reconcile.graph.credentials import choose_method, load_certificate

SECRET = "s3cr3t~Value.With-Chars"


@pytest.fixture
def emu() -> Iterator[GraphEmulator]:
    with GraphEmulator(data=ListTenant(), client_secret=SECRET, device_code_interval=0) as e:
        yield e


def base_settings(emu: GraphEmulator, **changes: Any) -> GraphConfig:
    pointed = GraphConfig(
        tenant_id=emu.tenant_id,
        client_id=emu.client_id,
        authority_host=emu.authority_host,
        graph_url=emu.graph_url,
        ca_bundle=emu.ca_bundle,
    )
    return replace(pointed, **changes)


class Sent:
    """What msal put on the wire, recorded by an httpx request hook (the emulator keeps no
    token request bodies: they carry credentials)."""

    def __init__(self) -> None:
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> None:
        request.read()
        self.requests.append(request)

    def token_forms(self) -> list[dict[str, list[str]]]:
        return [
            parse_qs(r.content.decode())
            for r in self.requests
            if r.url.path.endswith("/oauth2/v2.0/token")
        ]


def provider(
    settings: GraphConfig, emu: GraphEmulator, sent: Sent | None = None, **kwargs: Any
) -> MsalTokenProvider:
    hooks = {"request": [sent]} if sent is not None else {}
    http = httpx.Client(verify=emu.ssl_context(), event_hooks=hooks)
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


def test_client_secret_token_is_cached_by_msal(emu: GraphEmulator) -> None:
    sent = Sent()
    tokens = provider(base_settings(emu, client_secret=SECRET), emu, sent)
    assert emu.requests == []  # the msal app is built lazily
    first = tokens.token()
    assert tokens.token() == first
    assert emu.entra.issued_tokens() == [first]
    (form,) = sent.token_forms()
    assert form["grant_type"] == ["client_credentials"]
    assert form["scope"] == [f"{emu.graph_url}/.default"]
    assert tokens.method == "secret"
    assert tokens.last_source == "cache"


def test_short_lived_tokens_are_renewed_on_the_next_request(emu: GraphEmulator) -> None:
    emu.token_lifetime = 60  # msal treats < 5 min left as expired
    tokens = provider(base_settings(emu, client_secret=SECRET), emu)
    seen = [tokens.token() for _ in range(3)]
    assert seen == emu.entra.issued_tokens() and len(set(seen)) == 3


def test_secret_file_is_read_and_never_echoed(emu: GraphEmulator, tmp_path: Path) -> None:
    path = tmp_path / "secret.txt"
    path.write_text(SECRET + "\n", encoding="utf-8")
    assert provider(base_settings(emu, client_secret_file=path), emu).token()
    wrong = "wr0ng~Secret.Value-1234"
    path.write_text(wrong + "\n", encoding="utf-8")
    with pytest.raises(AuthError) as info:
        provider(base_settings(emu, client_secret_file=path), emu).token()
    message = str(info.value)
    assert "AADSTS7000215" in message and "fix:" in message
    assert wrong not in message and SECRET not in message
    assert "\n" not in message


def test_an_expired_secret_is_explained_through_msal(emu: GraphEmulator) -> None:
    emu.add_fault(Fault(FaultKind.EXPIRED_SECRET))
    with pytest.raises(AuthError) as info:
        provider(base_settings(emu, client_secret=SECRET), emu).token()
    assert "AADSTS7000222" in str(info.value) and "expired" in str(info.value)


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
    result = {"error": "x", "error_description": f"AADSTS{code}: whatever", "error_codes": [code]}
    error = error_from_result(result, (SECRET,))
    assert f"AADSTS{code}" in str(error)
    assert words in str(error)


def test_unknown_aadsts_code_keeps_entras_first_line_masked() -> None:
    description = f"AADSTS123456: Odd thing with {SECRET}.\r\nTrace ID: abc\r\nCorrelation ID: d"
    result = {"error": "x", "error_description": description, "error_codes": [123456]}
    message = str(error_from_result(result, (SECRET,)))
    assert "AADSTS123456 Odd thing with ***." in message
    assert "Trace ID" not in message and SECRET not in message


def test_unknown_tenant_during_discovery_is_an_auth_error(emu: GraphEmulator) -> None:
    other = "99999999-8888-7777-6666-555555555555"
    with pytest.raises(AuthError, match="AADSTS90002 tenant not found"):
        provider(base_settings(emu, client_secret=SECRET, tenant_id=other), emu).token()
    (discovery,) = emu.requests
    assert discovery.route == "openid" and discovery.status == 400


def test_unreachable_authority_is_retried_then_reported() -> None:
    sent = Sent()
    with GraphEmulator(data=ListTenant(), client_secret=SECRET) as gone:
        tokens = provider(base_settings(gone, client_secret=SECRET), gone, sent)
        host = gone.authority_host
    # stopped: its port now refuses connections
    with pytest.raises(AuthError, match=f"cannot reach {re.escape(host)}"):
        tokens.token()
    assert len(sent.requests) == 3


def test_auto_method_prefers_secret_then_certificate(emu: GraphEmulator, tmp_path: Path) -> None:
    assert choose_method(base_settings(emu, client_secret="x")) == "secret"
    assert choose_method(base_settings(emu, client_secret_file=tmp_path / "s")) == "secret"
    assert choose_method(base_settings(emu, certificate_path=tmp_path / "c.pem")) == "certificate"
    assert choose_method(base_settings(emu, auth_method=AuthMethod.DEVICE_CODE)) == "device-code"
    with pytest.raises(ConfigError, match="no Graph credential configured"):
        choose_method(
            base_settings(
                emu,
            )
        )


def test_app_only_sign_in_needs_a_real_tenant(emu: GraphEmulator) -> None:
    with pytest.raises(ConfigError, match="tenant"):
        provider(base_settings(emu, client_secret="x", tenant_id="common"), emu)
    with pytest.raises(ConfigError, match="RECONCILE_CLIENT_ID"):
        provider(base_settings(emu, client_secret="x", client_id=None), emu)
    assert emu.requests == []


def _pem(key: rsa.RSAPrivateKey, *certs: x509.Certificate, password: bytes | None = None) -> bytes:
    encryption = (
        serialization.BestAvailableEncryption(password)
        if password
        else serialization.NoEncryption()
    )
    return b"".join(c.public_bytes(serialization.Encoding.PEM) for c in certs) + key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, encryption
    )


def registered(leaf: x509.Certificate) -> GraphEmulator:
    """An emulator whose app registration holds ``leaf``: assertions are verified against it."""
    pem = leaf.public_bytes(serialization.Encoding.PEM)
    return GraphEmulator(data=ListTenant(), client_certificate=pem)


def test_certificate_pem_with_password_signs_an_assertion_with_its_thumbprint(
    tmp_path: Path, key_and_cert: Any
) -> None:
    key, leaf, _ = key_and_cert
    path = tmp_path / "app.pem"
    path.write_bytes(_pem(key, leaf, password=b"pw"))
    sent = Sent()
    with registered(leaf) as emu:
        settings = base_settings(emu, certificate_path=path, certificate_password="pw")
        assert provider(settings, emu, sent).token() == emu.entra.issued_tokens()[0]
    form = sent.token_forms()[0]
    assert "client_secret" not in form
    header, claims = jwt_parts(form["client_assertion"][0])
    sha1 = hashlib.sha1(leaf.public_bytes(serialization.Encoding.DER)).digest()
    assert b64(header["x5t"]) == sha1
    assert "x5c" not in header
    assert claims["iss"] == emu.client_id


def test_pfx_with_chain_sends_x5c_leaf_first(tmp_path: Path, key_and_cert: Any) -> None:
    key, leaf, ca = key_and_cert
    path = tmp_path / "app.pfx"
    path.write_bytes(
        pkcs12.serialize_key_and_certificates(
            b"app", key, leaf, [ca], serialization.BestAvailableEncryption(b"pfx-pw")
        )
    )
    sent = Sent()
    with registered(leaf) as emu:
        settings = base_settings(
            emu,
            certificate_path=path,
            certificate_password="pfx-pw",
            send_certificate_chain=True,
        )
        credential = load_certificate(settings)
        assert (
            credential["thumbprint"]
            == hashlib.sha1(leaf.public_bytes(serialization.Encoding.DER)).hexdigest().upper()
        )
        chain = x509.load_pem_x509_certificates(credential["public_certificate"].encode())
        assert chain == [leaf, ca]
        assert provider(settings, emu, sent).token()
    header, _ = jwt_parts(sent.token_forms()[0]["client_assertion"][0])
    assert len(header["x5c"]) == 2


def test_certificate_problems_are_config_errors(
    emu: GraphEmulator, tmp_path: Path, key_and_cert: Any
) -> None:
    key, leaf, ca = key_and_cert
    path = tmp_path / "app.pem"
    path.write_bytes(_pem(key, leaf, password=b"pw"))
    with pytest.raises(ConfigError, match="RECONCILE_CERTIFICATE_PASSWORD"):
        load_certificate(base_settings(emu, certificate_path=path))
    with pytest.raises(ConfigError, match="wrong password"):
        load_certificate(base_settings(emu, certificate_path=path, certificate_password="nope"))
    path.write_bytes(_pem(key, ca))
    with pytest.raises(ConfigError, match="matches its private key"):
        load_certificate(base_settings(emu, certificate_path=path))
    path.write_bytes(_pem(key))
    with pytest.raises(ConfigError, match="certificate_thumbprint"):
        load_certificate(base_settings(emu, certificate_path=path))
    given = "AB" * 20
    assert (
        load_certificate(base_settings(emu, certificate_path=path, certificate_thumbprint=given))[
            "thumbprint"
        ]
        == given
    )
    with pytest.raises(ConfigError, match="cannot read"):
        load_certificate(base_settings(emu, certificate_path=tmp_path / "missing.pem"))


def test_device_code_prompts_on_stderr_and_caches_with_0600(
    emu: GraphEmulator, tmp_path: Path
) -> None:
    cache = tmp_path / "cache" / "tokens.json"
    settings = base_settings(emu, auth_method=AuthMethod.DEVICE_CODE, token_cache=cache)
    prompts: list[str] = []
    first = provider(settings, emu, prompt=prompts.append).token()
    assert first == emu.entra.issued_tokens()[0]
    assert prompts and re.search(r"enter the code [0-9A-F]{8} ", prompts[0])
    assert stat.S_IMODE(os.stat(cache).st_mode) == 0o600
    assert "emu_rt_" in cache.read_text(encoding="utf-8")
    # a second run finds the account in the cache and does not prompt
    asked = len(emu.requests_for("token")) + len(emu.requests_for("devicecode"))
    again: list[str] = []
    assert provider(settings, emu, prompt=again.append).token() == first
    assert again == []
    assert len(emu.requests_for("token")) + len(emu.requests_for("devicecode")) == asked


def test_device_code_prompt_goes_to_stderr_by_default(
    emu: GraphEmulator, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    settings = base_settings(
        emu, auth_method=AuthMethod.DEVICE_CODE, token_cache=tmp_path / "c.json"
    )
    provider(settings, emu).token()
    captured = capsys.readouterr()
    assert re.search(r"enter the code [0-9A-F]{8} ", captured.err)
    assert captured.out == ""


@pytest.mark.parametrize("client_id", [None, "mi-client-id"])
def test_managed_identity_asks_imds_for_the_graph_resource(
    emu: GraphEmulator, monkeypatch: pytest.MonkeyPatch, client_id: str | None
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
    # msal's IMDS host override; the emulator serves the IMDS path over HTTPS
    monkeypatch.setenv("AZURE_POD_IDENTITY_AUTHORITY_HOST", emu.base_url)
    settings = base_settings(
        emu, auth_method=AuthMethod.MANAGED_IDENTITY, managed_identity_client_id=client_id
    )
    assert provider(settings, emu).token() == emu.entra.issued_tokens()[0]
    (request,) = emu.requests
    assert request.path == "/metadata/identity/oauth2/token"
    assert request.header("Metadata") == "true"
    assert request.params["resource"] == [emu.graph_url]
    assert request.params.get("client_id") == ([client_id] if client_id else None)
