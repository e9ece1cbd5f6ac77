"""What the Graph layer needs to know, resolved once by the caller from the settings.

The Graph modules never see ``Settings``: the CLI builds one ``GraphConfig`` and hands it down,
so sign-in, trust and retry limits are visible in one small object.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path


class AuthMethod(StrEnum):
    """How reconcile signs in to Entra ID; ``auto`` picks secret, else certificate."""

    AUTO = "auto"
    SECRET = "secret"
    CERTIFICATE = "certificate"
    DEVICE_CODE = "device-code"
    MANAGED_IDENTITY = "managed-identity"


class Cloud(StrEnum):
    """The national cloud a tenant lives in."""

    GLOBAL = "global"
    USGOV = "usgov"
    USGOVDOD = "usgovdod"
    CHINA = "china"


@dataclass(frozen=True)
class GraphConfig:
    """Tenant, credentials, endpoints and request limits; secrets are kept out of repr."""

    tenant_id: str | None = None
    client_id: str | None = None
    client_secret: str | None = field(default=None, repr=False)
    client_secret_file: Path | None = None
    auth_method: AuthMethod = AuthMethod.AUTO
    certificate_path: Path | None = None
    certificate_password: str | None = field(default=None, repr=False)
    certificate_thumbprint: str | None = None
    send_certificate_chain: bool = False
    managed_identity_client_id: str | None = None
    cloud: Cloud = Cloud.GLOBAL
    authority_host: str | None = None
    graph_url: str | None = None
    ca_bundle: Path | None = None
    token_cache: Path | None = None
    max_attempts: int = 6
    retry_time: float = 300.0
    rate_limit: int = 900

    def secret_values(self) -> tuple[str, ...]:
        """Values error messages must mask."""
        return tuple(v for v in (self.client_secret, self.certificate_password) if v)
