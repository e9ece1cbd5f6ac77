"""Tokens for Graph through msal: client secret, certificate, device code or managed identity.

msal owns caching and refresh, so the Graph client asks for a token before every request; the
msal application is built on first use because its constructor already talks to Entra ID.
Every failure becomes one AuthError line: the AADSTS code, what it means and the fix.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
import sys
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, Protocol

import httpx
import msal
import tenacity
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.serialization import pkcs12

from reconcile import __version__
from reconcile.errors import AuthError, ConfigError
from reconcile.graph.clouds import Endpoints
from reconcile.graph.config import AuthMethod, GraphConfig
from reconcile.graph.transport import (
    MsalHttpAdapter,
    describe_transport_error,
    is_transient,
    parse_retry_after,
)
from reconcile.paths import default_token_cache

log = logging.getLogger("reconcile.graph.auth")

METHODS = tuple(m.value for m in AuthMethod if m is not AuthMethod.AUTO)
THROTTLED = frozenset({429, 503})
# msal replays a throttled token answer from its cache for Retry-After seconds (5 s without the
# header; msal/throttled_http_client.py), so a retry must wait a little longer than that.
_MSAL_REPLAY = 5.0
_MARGIN = 0.5
_MULTI_TENANT = frozenset({"common", "organizations", "consumers"})
_CODE = re.compile(r"AADSTS(\d{5,7})")

# AADSTS code -> (what it means, the fix). Codes from learn.microsoft.com/entra/identity-platform/
# reference-error-codes; only the ones an unattended job or an admin actually meets.
AADSTS: dict[int, tuple[str, str]] = {
    7000215: (
        "invalid client secret",
        "use the secret's Value (not its Secret ID) from App registrations > Certificates & "
        "secrets in RECONCILE_CLIENT_SECRET or client_secret_file",
    ),
    7000222: (
        "the client secret has expired",
        "create a new client secret for the app and update RECONCILE_CLIENT_SECRET or "
        "client_secret_file",
    ),
    700016: (
        "no application with this client ID in the tenant",
        "check RECONCILE_CLIENT_ID and RECONCILE_TENANT_ID (and the cloud); a multi-tenant app "
        "needs admin consent in this tenant first",
    ),
    90002: (
        "tenant not found",
        "check RECONCILE_TENANT_ID and the cloud: national-cloud tenants only exist at their own "
        "authority host",
    ),
    900023: (
        "the tenant ID is neither a directory ID nor a domain",
        "set RECONCILE_TENANT_ID to the directory (tenant) ID GUID or a verified domain",
    ),
    65001: (
        "no consent for the requested permissions",
        "grant admin consent for the app's Microsoft Graph application permissions in "
        "App registrations > API permissions",
    ),
    700027: (
        "the certificate assertion failed validation",
        "upload the certificate's public part to the app registration (or, for subject-name/"
        "issuer, enable send_certificate_chain with the leaf certificate first)",
    ),
    700024: (
        "the client assertion is outside its valid time range",
        "synchronise this machine's clock (NTP)",
    ),
    7000112: ("the application is disabled", "enable the app's service principal in Entra ID"),
    7000218: (
        "the app is not enabled for public client flows",
        "enable 'Allow public client flows' on the app registration to use device-code sign-in",
    ),
    700025: (
        "the app is a public client and cannot use a secret or certificate",
        "use auth_method device-code, or register a confidential client",
    ),
    70011: (
        "the Graph scope is invalid",
        "check graph_url and cloud: the scope is <graph_url>/.default",
    ),
    500011: (
        "the Graph resource does not exist in this tenant's cloud",
        "pick the cloud (or graph_url) that matches the tenant",
    ),
    50034: (
        "the signed-in user does not exist in this tenant",
        "sign in with an account of the tenant given in RECONCILE_TENANT_ID",
    ),
    50126: ("wrong user name or password", "sign in again with the right credentials"),
    50053: ("the account is locked", "wait for the lockout to end or ask an administrator"),
    53003: (
        "blocked by Conditional Access",
        "ask the Entra ID administrator to allow this sign-in",
    ),
    70020: (
        "the device code expired before sign-in finished",
        "run again and complete the sign-in within the time shown",
    ),
    70043: ("the cached sign-in has expired", "run again and sign in with the device code"),
    700082: ("the cached sign-in has expired", "run again and sign in with the device code"),
    50173: ("the cached sign-in was revoked", "run again and sign in with the device code"),
    1002016: ("TLS 1.2 or newer is required", "allow TLS 1.2 on this machine and its proxy"),
}


class TokenProvider(Protocol):
    """What the Graph client needs: a bearer token that is valid right now."""

    @property
    def method(self) -> str: ...

    def token(self) -> str: ...


def mask(text: str, secrets: Iterable[str]) -> str:
    for secret in secrets:
        if secret:
            text = text.replace(secret, "***")
    return text


def explain(
    code: int | None, detail: str | None, secrets: Sequence[str] = (), prefix: str = ""
) -> AuthError:
    """One line for a failed sign-in, from the AADSTS table or from Entra's own first sentence."""
    head = f"{prefix}authentication failed"
    if code in AADSTS:
        meaning, fix = AADSTS[code]
        return AuthError(f"{head}: AADSTS{code} {meaning}; fix: {fix}")
    first = (detail or "").strip().splitlines()[0] if (detail or "").strip() else ""
    first = mask(re.sub(r"^AADSTS\d+:\s*", "", first), secrets)[:240]
    if code is not None:
        return AuthError(
            f"{head}: AADSTS{code} {first}; see https://login.microsoftonline.com/error?code={code}"
        )
    return AuthError(f"{head}: {first or 'no reason given'}")


def error_from_result(result: Mapping[str, Any], secrets: Sequence[str] = ()) -> AuthError:
    codes = result.get("error_codes") or []
    description = str(result.get("error_description") or result.get("error") or "")
    code = int(codes[0]) if codes else _code_in(description)
    return explain(code, description, secrets)


def _code_in(text: str) -> int | None:
    match = _CODE.search(text)
    return int(match.group(1)) if match else None


def _exception_chain_text(exc: BaseException) -> str:
    parts: list[str] = []
    current: BaseException | None = exc
    while current is not None and len(parts) < 5:
        parts.append(str(current))
        current = current.__cause__ or current.__context__
    return " ".join(parts)


def choose_method(config: GraphConfig) -> AuthMethod:
    """``auto`` is for unattended jobs: a secret if one is configured, else a certificate."""
    if config.auth_method != AuthMethod.AUTO:
        if config.auth_method not in METHODS:
            raise ConfigError(
                f"auth_method must be auto or one of {', '.join(METHODS)}, "
                f"not {config.auth_method!r}"
            )
        return AuthMethod(config.auth_method)
    if config.client_secret or config.client_secret_file:
        return AuthMethod.SECRET
    if config.certificate_path:
        return AuthMethod.CERTIFICATE
    raise ConfigError(
        "no Graph credential configured: set RECONCILE_CLIENT_SECRET (or graph.client_secret_file)"
        " or RECONCILE_CERTIFICATE, or choose --auth device-code or managed-identity"
    )


def read_secret(config: GraphConfig) -> str:
    if config.client_secret:
        return config.client_secret
    path = config.client_secret_file
    if path is None:
        raise ConfigError(
            "auth_method secret needs RECONCILE_CLIENT_SECRET or graph.client_secret_file"
        )
    try:
        secret = path.read_text(encoding="utf-8").strip()
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read client secret file: {exc.strerror}") from None
    except UnicodeDecodeError:
        raise ConfigError(f"{path}: client secret file is not UTF-8 text") from None
    if not secret:
        raise ConfigError(f"{path}: client secret file is empty")
    return secret


def load_certificate(config: GraphConfig) -> dict[str, str]:
    """A PEM or PFX file -> msal's client_credential (unencrypted key, SHA-1 thumbprint, x5c).

    Loading it here, not in msal, turns a wrong password or a key without its certificate into a
    ConfigError naming the file before any network call.
    """
    path = config.certificate_path
    if path is None:
        raise ConfigError("auth_method certificate needs RECONCILE_CERTIFICATE (PEM or PFX)")
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read certificate: {exc.strerror}") from None
    password = config.certificate_password.encode() if config.certificate_password else None
    key: Any
    certs: list[x509.Certificate]
    try:
        if b"-----BEGIN" in data:
            key = serialization.load_pem_private_key(data, password)
            certs = x509.load_pem_x509_certificates(data) if b"CERTIFICATE-----" in data else []
        else:
            key, leaf, extra = pkcs12.load_key_and_certificates(data, password)
            if key is None:
                raise ValueError("no private key in the PFX")
            certs = ([leaf] if leaf is not None else []) + list(extra)
    except TypeError:
        raise ConfigError(
            f"{path}: the private key is encrypted; set RECONCILE_CERTIFICATE_PASSWORD"
        ) from None
    except ValueError as exc:
        reason = "wrong password" if "password" in str(exc).lower() else "not a PEM or PFX key"
        raise ConfigError(f"{path}: cannot load the private key ({reason})") from None
    if not isinstance(key, rsa.RSAPrivateKey):
        raise ConfigError(f"{path}: Entra ID app certificates need an RSA key")
    public = key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    leaf_cert = next(
        (
            c
            for c in certs
            if c.public_key().public_bytes(
                serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
            )
            == public
        ),
        None,
    )
    if certs and leaf_cert is None:
        raise ConfigError(f"{path}: no certificate in the file matches its private key")
    thumbprint = (config.certificate_thumbprint or "").replace(":", "").replace(" ", "")
    if thumbprint and not re.fullmatch(r"[0-9A-Fa-f]{40}", thumbprint):
        raise ConfigError("certificate_thumbprint must be the 40-hex-digit SHA-1 thumbprint")
    if not thumbprint:
        if leaf_cert is None:
            raise ConfigError(
                f"{path}: holds no certificate; add it to the file or set certificate_thumbprint"
            )
        thumbprint = hashlib.sha1(leaf_cert.public_bytes(serialization.Encoding.DER)).hexdigest()
    credential = {
        "private_key": key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        ).decode("ascii"),
        "thumbprint": thumbprint.upper(),
    }
    if config.send_certificate_chain:
        if leaf_cert is None:
            raise ConfigError(f"{path}: send_certificate_chain needs the certificate in the file")
        chain = [leaf_cert] + [c for c in certs if c is not leaf_cert]
        credential["public_certificate"] = "".join(
            c.public_bytes(serialization.Encoding.PEM).decode("ascii") for c in chain
        )
    return credential


def _stderr_prompt(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


class MsalTokenProvider:
    """Thread-safe: Graph worker threads share one msal application and its cache."""

    def __init__(
        self,
        config: GraphConfig,
        endpoints: Endpoints,
        http: httpx.Client,
        *,
        prompt: Callable[[str], None] | None = None,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
    ):
        self._config = config
        self._endpoints = endpoints
        self._http = MsalHttpAdapter(http)
        self._prompt = prompt or _stderr_prompt
        self._sleep = sleep
        self._clock = clock
        self._lock = threading.Lock()
        self._acquire: Callable[[], Mapping[str, Any]] | None = None
        self._secrets = config.secret_values()
        self.method = choose_method(config)
        self._check_config()
        self.last_source: str | None = None

    def _check_config(self) -> None:
        s = self._config
        if self.method == AuthMethod.MANAGED_IDENTITY:
            return
        if not s.client_id:
            raise ConfigError(f"auth_method {self.method} needs RECONCILE_CLIENT_ID")
        if not s.tenant_id:
            raise ConfigError(f"auth_method {self.method} needs RECONCILE_TENANT_ID")
        if (
            self.method in (AuthMethod.SECRET, AuthMethod.CERTIFICATE)
            and s.tenant_id.lower() in _MULTI_TENANT
        ):
            raise ConfigError(
                f"tenant_id {s.tenant_id!r} is not a tenant; app-only sign-in needs the "
                "directory (tenant) ID"
            )

    def token(self) -> str:
        with self._lock:
            result = self._throttle_aware()
        token = result.get("access_token")
        if not token:
            raise error_from_result(result, self._secrets)
        self.last_source = str(result.get("token_source") or "")
        return str(token)

    def _throttle_aware(self) -> Mapping[str, Any]:
        """A 429/503 from the token endpoint is waited out like a Graph one (Retry-After, else
        exponential backoff), within graph.max_attempts and graph.retry_time."""
        start = self._clock()
        attempt = 1
        while True:
            result = self._with_retries()
            answer = self._http.last
            if result.get("access_token") or answer is None or answer.status not in THROTTLED:
                return result
            wait = self._throttle_wait(answer.retry_after, answer.date, attempt)
            elapsed = self._clock() - start
            if attempt >= self._config.max_attempts or elapsed + wait > self._config.retry_time:
                raise AuthError(
                    f"{self._endpoints.authority_host} answered HTTP {answer.status} to the "
                    f"token request, still failing after {attempt} attempts; try again later"
                )
            log.info("token endpoint: HTTP %d; retry %d in %.1f s", answer.status, attempt, wait)
            self._sleep(wait)
            attempt += 1

    @staticmethod
    def _throttle_wait(retry_after: str | None, date: str | None, attempt: int) -> float:
        asked = parse_retry_after(retry_after, date, time.time())
        if asked is not None:
            return asked + _MARGIN
        return max(_MSAL_REPLAY, min(60.0, 2.0**attempt)) + _MARGIN

    def _with_retries(self) -> Mapping[str, Any]:
        """Transient network failures towards Entra ID are retried briefly; refusals are not."""
        retrying = tenacity.Retrying(
            retry=tenacity.retry_if_exception(
                lambda e: (
                    isinstance(e, _Transient)
                    or (isinstance(e, httpx.TransportError) and is_transient(e))
                )
            ),
            wait=tenacity.wait_exponential(multiplier=1, max=8),
            stop=tenacity.stop_after_attempt(3),
            reraise=True,
            sleep=self._sleep,
        )
        host = self._endpoints.authority_host
        try:
            return retrying(self._acquire_once)
        except httpx.TransportError as exc:
            raise AuthError(f"cannot reach {host}: {describe_transport_error(exc)}") from None
        except _Transient as exc:
            raise AuthError(f"{host} failed repeatedly: {exc}; try again later") from None

    def _acquire_once(self) -> Mapping[str, Any]:
        try:
            if self._acquire is None:
                self._acquire = self._build()
            return self._acquire()
        except msal.exceptions.MsalServiceError as exc:
            status = re.search(r"HTTP Error: (\d+)", str(exc))
            if status and int(status.group(1)) < 500 and int(status.group(1)) not in THROTTLED:
                raise AuthError(
                    f"{self._endpoints.authority_host} answered HTTP {status.group(1)}; check "
                    "the cloud or authority_host"
                ) from None
            raise _Transient(str(exc)) from None
        except ValueError as exc:
            text = _exception_chain_text(exc)
            if self._acquire is None:
                code = _code_in(text)
                authority = self._endpoints.authority(self._config.tenant_id or "")
                if code is not None:
                    raise explain(code, text, self._secrets) from None
                raise AuthError(
                    f"cannot discover the tenant at {authority}: check RECONCILE_TENANT_ID and "
                    "the cloud or authority_host"
                ) from None
            raise explain(_code_in(text), text, self._secrets) from None

    def _build(self) -> Callable[[], Mapping[str, Any]]:
        s = self._config
        scopes = [self._endpoints.graph_scope]
        if self.method == AuthMethod.MANAGED_IDENTITY:
            identity: Any = (
                msal.UserAssignedManagedIdentity(client_id=s.managed_identity_client_id)
                if s.managed_identity_client_id
                else msal.SystemAssignedManagedIdentity()
            )
            mi = msal.ManagedIdentityClient(identity, http_client=self._http)
            resource = self._endpoints.graph_url
            return lambda: mi.acquire_token_for_client(resource=resource)
        common: dict[str, Any] = {
            "authority": self._endpoints.authority(s.tenant_id or ""),
            "http_client": self._http,
            "instance_discovery": self._endpoints.instance_discovery,
            "app_name": "reconcile",
            "app_version": __version__,
        }
        if self.method == AuthMethod.DEVICE_CODE:
            return DeviceCodeFlow(s, scopes, common, self._prompt, self._secrets)
        credential: Any = (
            read_secret(s) if self.method == AuthMethod.SECRET else load_certificate(s)
        )
        if self.method == AuthMethod.SECRET:
            self._secrets = (*self._secrets, credential)
        app = msal.ConfidentialClientApplication(
            s.client_id, client_credential=credential, **common
        )
        return lambda: app.acquire_token_for_client(scopes=scopes)


class _Transient(Exception):
    """Entra ID answered 5xx; worth one more try."""


class DeviceCodeFlow:
    """An admin at a terminal: a cached account first, otherwise a device-code prompt on stderr."""

    def __init__(
        self,
        config: GraphConfig,
        scopes: list[str],
        common: Mapping[str, Any],
        prompt: Callable[[str], None],
        secrets: Sequence[str],
    ):
        self._path = config.token_cache or default_token_cache()
        self._cache = msal.SerializableTokenCache()
        self._load()
        self._app = msal.PublicClientApplication(
            config.client_id, token_cache=self._cache, **common
        )
        self._scopes = scopes
        self._prompt = prompt
        self._secrets = secrets

    def _load(self) -> None:
        try:
            text = self._path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return
        except OSError as exc:
            log.warning("ignoring token cache %s: %s", self._path, exc.strerror)
            return
        try:
            self._cache.deserialize(text)
        except ValueError:
            log.warning("ignoring unreadable token cache %s", self._path)

    def _save(self) -> None:
        """Owner-only (0600) from the first byte: the cache holds a refresh token."""
        if not self._cache.has_state_changed:
            return
        self._path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        tmp = self._path.with_name(self._path.name + ".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(self._cache.serialize())
        os.chmod(tmp, 0o600)
        os.replace(tmp, self._path)
        self._cache.has_state_changed = False

    def __call__(self) -> Mapping[str, Any]:
        result: Mapping[str, Any] | None = None
        for account in self._app.get_accounts():
            result = self._app.acquire_token_silent(self._scopes, account=account)
            if result and result.get("access_token"):
                break
        if not result or not result.get("access_token"):
            flow = self._app.initiate_device_flow(scopes=self._scopes)
            if "user_code" not in flow:
                raise error_from_result(flow, self._secrets)
            self._prompt(str(flow["message"]))
            result = self._app.acquire_token_by_device_flow(flow)
        self._save()
        return result
