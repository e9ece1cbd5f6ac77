"""Which sign-in method a run uses and the credential it needs, read before any network call.

A wrong password, an empty secret file or a key without its certificate is a ConfigError naming
the file, so a run fails at the door rather than after Entra ID has been asked.
"""

from __future__ import annotations

import hashlib
import re
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.serialization import pkcs12

from reconcile.errors import ConfigError
from reconcile.graph.config import AuthMethod, GraphConfig

METHODS = tuple(m.value for m in AuthMethod if m is not AuthMethod.AUTO)


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
