"""What tests need around the emulator besides its fixtures (those are in ``conftest.py``)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import NameOID

from reconcile.emulator import GraphEmulator
from reconcile.graph.client import GraphClient, RateLimiter, RetryPolicy


def self_signed(kind: str = "rsa", password: bytes | None = None) -> tuple[bytes, bytes]:
    """An app registration's certificate: (certificate PEM, PKCS#8 key PEM), valid for a day.

    ``kind`` is ``rsa`` or ``ec`` (P-256); ``password`` encrypts the key as a PFX export would.
    """
    key: Any = (
        rsa.generate_private_key(public_exponent=65537, key_size=2048)
        if kind == "rsa"
        else ec.generate_private_key(ec.SECP256R1())
    )
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "reconcile-emulator-app")])
    now = datetime.now(UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(hours=1))
        .not_valid_after(now + timedelta(days=1))
        .sign(key, hashes.SHA256())
    )
    encryption: serialization.KeySerializationEncryption = (
        serialization.BestAvailableEncryption(password)
        if password
        else serialization.NoEncryption()
    )
    key_pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, encryption
    )
    return cert.public_bytes(serialization.Encoding.PEM), key_pem


def state(serial: str, issuance: str = "installed") -> dict[str, Any]:
    """One managedDeviceCertificateState with the fields reconcile reads."""
    return {
        "id": f"state-{serial}",
        "certificateSerialNumber": serial,
        "certificateIssuanceState": issuance,
        "deviceDisplayName": f"PC-{serial}",
    }


class FakeClock:
    """Monotonic and wall clock that only move when the code under test sleeps."""

    def __init__(self, start: float = 1_800_000_000.0):
        self.now = start
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        assert seconds >= 0
        self.sleeps.append(seconds)
        self.now += seconds


class EmulatorTokens:
    """A TokenProvider signing in to ``emu`` with its client secret; counts the asks."""

    method = "secret"

    def __init__(self, emu: GraphEmulator, http: httpx.Client, *, fresh: bool = False):
        self._emu = emu
        self._http = http
        self._fresh = fresh
        self.issued: list[str] = []
        self.calls = 0

    def _sign_in(self) -> str:
        emu = self._emu
        answer = self._http.post(
            f"{emu.authority}/oauth2/v2.0/token",
            data={
                "grant_type": "client_credentials",
                "client_id": emu.client_id,
                "client_secret": emu.client_secret,
                "scope": f"{emu.graph_url}/.default",
            },
        )
        answer.raise_for_status()
        self.issued.append(str(answer.json()["access_token"]))
        return self.issued[-1]

    def token(self) -> str:
        self.calls += 1
        if self._fresh or not self.issued:
            return self._sign_in()
        return self.issued[-1]


def graph_client(
    emu: GraphEmulator,
    clock: FakeClock | None = None,
    *,
    on_request: Callable[[httpx.Request], None] | None = None,
    retry: RetryPolicy | None = None,
    transport: httpx.BaseTransport | None = None,
    limit: int = 900,
    fresh_tokens: bool = False,
) -> tuple[GraphClient, FakeClock, EmulatorTokens]:
    """The real GraphClient over TLS to ``emu``, its waits on a FakeClock (no real sleeping).

    ``transport`` wraps the TLS transport (to fail a send before it leaves); ``fresh_tokens``
    makes every ``token()`` a new sign-in, so each request's token can be told apart.
    """
    clock = clock or FakeClock()
    hooks = {"request": [on_request]} if on_request is not None else {}
    http = httpx.Client(verify=emu.ssl_context(), event_hooks=hooks, transport=transport)
    tokens = EmulatorTokens(emu, http, fresh=fresh_tokens)
    client = GraphClient(
        http,
        emu.graph_url,
        tokens,
        retry=retry or RetryPolicy(max_attempts=5, max_time=600),
        limiter=RateLimiter(limit, clock=clock, sleep=clock.sleep),
        clock=clock,
        wall=clock,
        sleep=clock.sleep,
        jitter=lambda: 0.5,
    )
    return client, clock, tokens
