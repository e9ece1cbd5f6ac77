"""National clouds: which Entra ID authority and which Graph host a tenant lives on.

Tokens cannot cross clouds, so the authority and Graph host are chosen together; overrides exist
for sovereign proxies, test servers and the emulator.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import urlsplit

from reconcile.errors import ConfigError
from reconcile.graph.config import Cloud, GraphConfig

# cloud -> (authority host, Graph root); msal/authority.py, learn.microsoft.com/graph/deployments
CLOUDS: dict[Cloud, tuple[str, str]] = {
    Cloud.GLOBAL: ("https://login.microsoftonline.com", "https://graph.microsoft.com"),
    Cloud.USGOV: ("https://login.microsoftonline.us", "https://graph.microsoft.us"),
    Cloud.USGOVDOD: ("https://login.microsoftonline.us", "https://dod-graph.microsoft.us"),
    Cloud.CHINA: ("https://login.chinacloudapi.cn", "https://microsoftgraph.chinacloudapi.cn"),
}

# Hosts msal knows without asking login.microsoftonline.com for instance discovery.
MICROSOFT_AUTHORITY_HOSTS = frozenset(
    {
        "login.microsoftonline.com",
        "login.microsoft.com",
        "login.windows.net",
        "sts.windows.net",
        "login.microsoftonline.us",
        "login-us.microsoftonline.com",
        "login.chinacloudapi.cn",
        "login.partner.microsoftonline.cn",
    }
)


@dataclass(frozen=True)
class Endpoints:
    """Where tokens come from and where Graph is, as https origins without a trailing slash."""

    cloud: str
    authority_host: str
    graph_url: str

    @property
    def instance_discovery(self) -> bool:
        """Only a Microsoft authority can be validated against Microsoft's discovery service."""
        parts = urlsplit(self.authority_host)
        return parts.hostname in MICROSOFT_AUTHORITY_HOSTS and parts.port in (None, 443)

    @property
    def graph_scope(self) -> str:
        return f"{self.graph_url}/.default"

    def authority(self, tenant_id: str) -> str:
        return f"{self.authority_host}/{tenant_id}"


def https_origin(value: str, name: str) -> str:
    """Normalise an override to ``https://host[:port]``; a bare host name means https."""
    text = value.strip()
    if "://" not in text:
        text = f"https://{text}"
    parts = urlsplit(text)
    if parts.scheme.lower() != "https":
        raise ConfigError(f"{name} must be an https URL, not {value!r}")
    try:
        port = parts.port
    except ValueError:
        raise ConfigError(f"{name} has an invalid port: {value!r}") from None
    if not parts.hostname:
        raise ConfigError(f"{name} has no host name: {value!r}")
    if parts.path not in ("", "/") or parts.query or parts.fragment or parts.username:
        raise ConfigError(f"{name} must be only scheme, host and port (no path): {value!r}")
    host = parts.hostname
    if ":" in host:
        host = f"[{host}]"
    return f"https://{host}" + (f":{port}" if port is not None else "")


def resolve_endpoints(config: GraphConfig) -> Endpoints:
    if config.cloud not in CLOUDS:
        raise ConfigError(f"cloud must be one of {', '.join(CLOUDS)}, not {config.cloud!r}")
    authority, graph = CLOUDS[Cloud(config.cloud)]
    if config.authority_host:
        authority = https_origin(config.authority_host, "authority_host")
    if config.graph_url:
        graph = https_origin(config.graph_url, "graph_url")
    return Endpoints(cloud=str(config.cloud), authority_host=authority, graph_url=graph)
