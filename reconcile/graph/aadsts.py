"""Entra ID's AADSTS codes as one line each: what the code means and the fix.

Codes from learn.microsoft.com/entra/identity-platform/reference-error-codes; only the ones an
unattended job or an admin actually meets. Every failed sign-in becomes one AuthError from here.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from reconcile.errors import AuthError

_CODE = re.compile(r"AADSTS(\d{5,7})")

# AADSTS code -> (what it means, the fix).
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
    code = int(codes[0]) if codes else code_in(description)
    return explain(code, description, secrets)


def code_in(text: str) -> int | None:
    match = _CODE.search(text)
    return int(match.group(1)) if match else None
