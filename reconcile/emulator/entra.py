"""The emulator's Entra ID: discovery, the token endpoint, device code and managed identity.

Access tokens are opaque and remembered with their expiry, so Graph routes accept only tokens
this run issued; client assertions are verified with PyJWT against the registered certificate.
Errors have Entra's shape (``AADSTS<code>: ...`` with trace and correlation ids).
"""

from __future__ import annotations

import hashlib
import json
import secrets
import threading
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs

import jwt
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from reconcile.emulator.faults import Fault, FaultKind
from reconcile.emulator.httpserver import JSON_TYPE, Exchange, b64url

DEVICE_CODE_GRANT = "urn:ietf:params:oauth:grant-type:device_code"
ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
ROUTES = (
    ("GET", "openid", r"^/(?P<tenant>[^/]+)/v2\.0/\.well-known/openid-configuration$"),
    ("POST", "token", r"^/(?P<tenant>[^/]+)/oauth2/v2\.0/token$"),
    ("POST", "devicecode", r"^/(?P<tenant>[^/]+)/oauth2/v2\.0/devicecode$"),
    ("GET", "msi", r"^/(msi/token|metadata/identity/oauth2/token)$"),
)
IDENTITY_ROUTES = frozenset({"openid", "token", "devicecode"})


def _algorithms(key: rsa.RSAPublicKey | ec.EllipticCurvePublicKey) -> tuple[str, ...]:
    """The signing algorithms a client may use with this kind of certificate key."""
    return ("PS256", "RS256") if isinstance(key, rsa.RSAPublicKey) else ("ES256",)


@dataclass
class DeviceFlow:
    client_id: str
    scope: str
    polls: int = 0


def entra_error(
    ex: Exchange,
    status: int,
    error: str,
    code: int,
    description: str,
    headers: Mapping[str, str] | None = None,
) -> None:
    """An error as Entra ID writes it, so msal and reconcile's AADSTS table read it as real."""
    trace, correlation = str(uuid.uuid4()), str(uuid.uuid4())
    stamp = time.strftime("%Y-%m-%d %H:%M:%SZ", time.gmtime())
    payload = {
        "error": error,
        "error_description": (
            f"AADSTS{code}: {description} Trace ID: {trace} "
            f"Correlation ID: {correlation} Timestamp: {stamp}"
        ),
        "error_codes": [code],
        "timestamp": stamp,
        "trace_id": trace,
        "correlation_id": correlation,
        "error_uri": f"{ex.base}/error?code={code}",
    }
    ex.json(status, payload, JSON_TYPE, headers)


class Entra:
    """The app registration the emulator accepts and the tokens it has issued this run."""

    def __init__(
        self,
        *,
        tenant_id: str,
        client_id: str,
        client_secret: str,
        certificate: x509.Certificate | None,
        token_lifetime: int,
        device_code_interval: int,
    ):
        self.tenant_id = tenant_id
        self.client_id = client_id
        self.client_secret = client_secret
        self.identity_header = secrets.token_hex(16)
        self.token_lifetime = token_lifetime
        self.device_code_interval = device_code_interval
        self._certificate = certificate
        self._lock = threading.Lock()
        self._access: dict[str, float] = {}
        """Access token -> expiry (monotonic seconds)."""
        self._refresh_tokens: dict[str, str] = {}
        self._device_flows: dict[str, DeviceFlow] = {}

    def issued_tokens(self) -> list[str]:
        with self._lock:
            return list(self._access)

    def identity(self, ex: Exchange, fault: Fault | None) -> None:
        assert ex.match is not None
        tenant = ex.match.group("tenant")
        if tenant.lower() != self.tenant_id.lower():
            entra_error(
                ex,
                400,
                "invalid_tenant" if ex.route == "openid" else "invalid_request",
                90002,
                f"Tenant '{tenant}' not found. Check to make sure you have the correct tenant ID "
                "and are signing into the correct cloud.",
            )
            return
        if ex.route == "openid":
            self._openid(ex)
            return
        form = {k: v[-1] for k, v in parse_qs(ex.body.decode("utf-8", "replace")).items()}
        if ex.route == "devicecode":
            self._device_code(ex, form)
        else:
            self._token(ex, form, fault)

    def _openid(self, ex: Exchange) -> None:
        base = f"{ex.base}/{self.tenant_id}"
        ex.json(
            200,
            {
                "token_endpoint": f"{base}/oauth2/v2.0/token",
                "token_endpoint_auth_methods_supported": [
                    "client_secret_post",
                    "private_key_jwt",
                    "client_secret_basic",
                ],
                "jwks_uri": f"{base}/discovery/v2.0/keys",
                "response_modes_supported": ["query", "fragment", "form_post"],
                "subject_types_supported": ["pairwise"],
                "id_token_signing_alg_values_supported": ["RS256"],
                "response_types_supported": ["code", "id_token", "code id_token", "id_token token"],
                "scopes_supported": ["openid", "profile", "email", "offline_access"],
                "issuer": f"{base}/v2.0",
                "request_uri_parameter_supported": False,
                "userinfo_endpoint": f"{ex.base}/oidc/userinfo",
                "authorization_endpoint": f"{base}/oauth2/v2.0/authorize",
                "device_authorization_endpoint": f"{base}/oauth2/v2.0/devicecode",
                "http_logout_supported": True,
                "frontchannel_logout_supported": True,
                "end_session_endpoint": f"{base}/oauth2/v2.0/logout",
                "claims_supported": ["sub", "iss", "aud", "exp", "iat", "nonce", "tid", "oid"],
                "kerberos_endpoint": f"{base}/kerberos",
                "tenant_region_scope": "EU",
                "cloud_instance_name": "emulator.test",
                "cloud_graph_host_name": "graph.emulator.test",
                "msgraph_host": "graph.emulator.test",
            },
        )

    def issue(self, lifetime: int | None = None) -> tuple[str, int]:
        """An opaque access token: never JWT-shaped, so nothing recorded can pass for one."""
        life = self.token_lifetime if lifetime is None else lifetime
        token = f"emu_at_{secrets.token_hex(24)}"
        with self._lock:
            self._access[token] = time.monotonic() + life
        return token, life

    def _token_payload(self, scope: str) -> dict[str, Any]:
        token, life = self.issue()
        return {
            "token_type": "Bearer",
            "expires_in": life,
            "ext_expires_in": life,
            "access_token": token,
            "scope": scope,
        }

    def _check_scope(self, ex: Exchange, scope: str) -> bool:
        if any(s.endswith("/.default") for s in scope.split()):
            return True
        entra_error(
            ex,
            400,
            "invalid_scope",
            1002012,
            f"The provided value for scope {scope} is not valid. Client credential flows must "
            "have a scope value with /.default suffixed to the resource identifier "
            "(application ID URI).",
        )
        return False

    def _unknown_client(self, ex: Exchange, client_id: str) -> None:
        entra_error(
            ex,
            400,
            "unauthorized_client",
            700016,
            f"Application with identifier '{client_id}' was not found in the directory "
            f"'{self.tenant_id}'. This can happen if the application has not been installed by "
            "the administrator of the tenant or consented to by any user in the tenant.",
        )

    def _token(self, ex: Exchange, form: dict[str, str], fault: Fault | None) -> None:
        grant = form.get("grant_type", "")
        client_id = form.get("client_id", "")
        if grant == "refresh_token":
            self._refresh(ex, form)
            return
        if grant == DEVICE_CODE_GRANT:
            self._device_code_token(ex, form)
            return
        if grant != "client_credentials":
            entra_error(
                ex,
                400,
                "unsupported_grant_type",
                70003,
                f"The app requested an unsupported grant type '{grant}'.",
            )
            return
        if client_id != self.client_id:
            self._unknown_client(ex, client_id)
            return
        if fault is not None and fault.kind is FaultKind.EXPIRED_SECRET:
            entra_error(
                ex,
                401,
                "invalid_client",
                7000222,
                f"The provided client secret keys for app '{self.client_id}' are expired.",
            )
            return
        invalid_secret = fault is not None and fault.kind is FaultKind.INVALID_SECRET
        if "client_assertion" in form:
            problem = self._assertion_problem(form, ex.base)
            if problem:
                entra_error(ex, 401, "invalid_client", 700027, problem)
                return
        elif invalid_secret or not secrets.compare_digest(
            form.get("client_secret", "").encode(), self.client_secret.encode()
        ):
            entra_error(
                ex,
                401,
                "invalid_client",
                7000215,
                "Invalid client secret provided. Ensure the secret being sent in the request "
                "is the client secret value, not the client secret ID, for a secret added to "
                f"app '{self.client_id}'.",
            )
            return
        scope = form.get("scope", "")
        if self._check_scope(ex, scope):
            ex.json(200, self._token_payload(scope))

    def _assertion_problem(self, form: Mapping[str, str], base: str) -> str | None:
        """Why a client assertion is unacceptable, or None; PyJWT really checks the signature."""
        if form.get("client_assertion_type") != ASSERTION_TYPE:
            return "The client_assertion_type is not supported."
        assertion = form.get("client_assertion", "")
        try:
            header = jwt.get_unverified_header(assertion)
            claims = jwt.decode(assertion, options={"verify_signature": False})
        except jwt.DecodeError:
            return "Client assertion is not a well-formed JWT."
        token_endpoint = f"{base}/{self.tenant_id}/oauth2/v2.0/token"
        if claims.get("aud") != token_endpoint:
            return f"Client assertion audience claim does not match '{token_endpoint}'."
        if claims.get("iss") != self.client_id or claims.get("sub") != self.client_id:
            return "Client assertion issuer and subject must be the client id."
        if not isinstance(claims.get("exp"), (int, float)) or claims["exp"] < time.time():
            return "Client assertion is expired."
        if self._certificate is None:
            return None
        der = self._certificate.public_bytes(encoding=serialization.Encoding.DER)
        thumbprints = {
            "x5t#S256": b64url(hashlib.sha256(der).digest()),
            "x5t": b64url(hashlib.sha1(der).digest()),
        }
        if not any(str(header.get(k, "")).rstrip("=") == v for k, v in thumbprints.items()):
            return (
                "The certificate with identifier used to sign the client assertion is not "
                "registered on application."
            )
        key = self._certificate.public_key()
        algorithm = header.get("alg")
        if not isinstance(key, (rsa.RSAPublicKey, ec.EllipticCurvePublicKey)) or (
            algorithm not in _algorithms(key)
        ):
            return f"Client assertion algorithm {algorithm!r} is not supported."
        try:
            jwt.decode(
                assertion,
                key,
                algorithms=[str(algorithm)],
                audience=token_endpoint,
                issuer=self.client_id,
                subject=self.client_id,
                options={"require": ["exp", "aud", "iss", "sub"]},
            )
        except jwt.InvalidSignatureError:
            return "Client assertion failed signature validation."
        except jwt.InvalidTokenError as exc:
            return f"Client assertion is invalid: {exc}."
        return None

    def _device_code(self, ex: Exchange, form: Mapping[str, str]) -> None:
        client_id = form.get("client_id", "")
        if client_id != self.client_id:
            self._unknown_client(ex, client_id)
            return
        device_code = f"emu_dc_{secrets.token_hex(24)}"
        user_code = secrets.token_hex(4).upper()
        with self._lock:
            self._device_flows[device_code] = DeviceFlow(client_id, form.get("scope", ""))
        verification = f"{ex.base}/devicelogin"
        ex.json(
            200,
            {
                "user_code": user_code,
                "device_code": device_code,
                "verification_uri": verification,
                "expires_in": 900,
                "interval": self.device_code_interval,
                "message": f"To sign in, use a web browser to open the page {verification} "
                f"and enter the code {user_code} to authenticate.",
            },
        )

    def _user_tokens(self, scope: str, base: str) -> dict[str, Any]:
        """Access and refresh token plus the id_token and client_info msal needs for accounts."""
        payload = self._token_payload(scope)
        refresh = f"emu_rt_{secrets.token_hex(24)}"
        with self._lock:
            self._refresh_tokens[refresh] = scope
        now = int(time.time())
        user_oid = str(uuid.uuid5(uuid.NAMESPACE_URL, f"{self.tenant_id}/admin"))
        claims = {
            "aud": self.client_id,
            "iss": f"{base}/{self.tenant_id}/v2.0",
            "iat": now,
            "nbf": now,
            "exp": now + 3600,
            "name": "Emulator Admin",
            "oid": user_oid,
            "preferred_username": "admin@contoso.example",
            "sub": user_oid,
            "tid": self.tenant_id,
            "ver": "2.0",
        }
        # Unsigned, as msal reads an id_token only for the account it describes.
        payload["id_token"] = jwt.encode(claims, "", algorithm="none")
        payload["client_info"] = b64url(
            json.dumps({"uid": user_oid, "utid": self.tenant_id}).encode()
        )
        payload["refresh_token"] = refresh
        return payload

    def _device_code_token(self, ex: Exchange, form: Mapping[str, str]) -> None:
        with self._lock:
            flow = self._device_flows.get(form.get("device_code", ""))
            if flow is not None:
                flow.polls += 1
        if flow is None:
            entra_error(
                ex,
                400,
                "expired_token",
                70020,
                "The provided value for the input parameter 'device_code' is not valid.",
            )
            return
        if flow.polls == 1:
            entra_error(
                ex,
                400,
                "authorization_pending",
                70016,
                "OAuth 2.0 device flow error. Authorization is pending. Continue polling.",
            )
            return
        with self._lock:
            self._device_flows.pop(form.get("device_code", ""), None)
        ex.json(200, self._user_tokens(flow.scope, ex.base))

    def _refresh(self, ex: Exchange, form: Mapping[str, str]) -> None:
        with self._lock:
            scope = self._refresh_tokens.pop(form.get("refresh_token", ""), None)
        if scope is None:
            entra_error(
                ex,
                400,
                "invalid_grant",
                9002313,
                "Invalid request. Request is malformed or invalid.",
            )
            return
        ex.json(200, self._user_tokens(form.get("scope") or scope, ex.base))

    def managed_identity(self, ex: Exchange) -> None:
        resource = ex.params.get("resource", "")
        app_service = ex.path == "/msi/token"
        if app_service and ex.header("X-IDENTITY-HEADER") != self.identity_header:
            ex.json(401, {"statusCode": 401, "message": "Unauthorized request"})
            return
        if not app_service and ex.header("Metadata") != "true":
            ex.json(
                400,
                {
                    "error": "invalid_request",
                    "error_description": "Required metadata header not specified",
                },
            )
            return
        if not resource:
            ex.json(400, {"error": "invalid_resource", "error_description": "No resource"})
            return
        token, life = self.issue()
        expires_on = str(int(time.time()) + life)
        payload = {
            "access_token": token,
            "expires_on": expires_on,
            "resource": resource,
            "token_type": "Bearer",
        }
        if not app_service:
            payload["expires_in"] = str(life)
        ex.json(200, payload)

    # --- Graph --------------------------------------------------------------------------------
    def authorised(self, ex: Exchange) -> bool:
        auth = ex.header("Authorization") or ""
        scheme, _, token = auth.partition(" ")
        challenge = {"WWW-Authenticate": 'Bearer realm="", error="invalid_token"'}
        if scheme.lower() != "bearer" or not token:
            ex.graph_error(401, "InvalidAuthenticationToken", "Access token is empty.", challenge)
            return False
        with self._lock:
            expiry = self._access.get(token)
        if expiry is None:
            ex.graph_error(
                401, "InvalidAuthenticationToken", "Access token validation failure.", challenge
            )
            return False
        if expiry <= time.monotonic():
            ex.graph_error(
                401,
                "InvalidAuthenticationToken",
                "Lifetime validation failed, the token is expired.",
                challenge,
            )
            return False
        return True
