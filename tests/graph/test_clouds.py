from __future__ import annotations

import pytest

from reconcile.errors import ConfigError
from reconcile.graph.clouds import https_origin, resolve_endpoints
from reconcile.graph.config import Cloud, GraphConfig


@pytest.mark.parametrize(
    ("cloud", "authority", "graph"),
    [
        ("global", "https://login.microsoftonline.com", "https://graph.microsoft.com"),
        ("usgov", "https://login.microsoftonline.us", "https://graph.microsoft.us"),
        ("usgovdod", "https://login.microsoftonline.us", "https://dod-graph.microsoft.us"),
        ("china", "https://login.chinacloudapi.cn", "https://microsoftgraph.chinacloudapi.cn"),
    ],
)
def test_each_cloud_picks_its_hosts(cloud: str, authority: str, graph: str) -> None:
    endpoints = resolve_endpoints(GraphConfig(cloud=Cloud(cloud)))
    assert (endpoints.authority_host, endpoints.graph_url) == (authority, graph)
    assert endpoints.instance_discovery
    assert endpoints.graph_scope == f"{graph}/.default"


def test_overrides_win_and_a_foreign_authority_turns_instance_discovery_off() -> None:
    endpoints = resolve_endpoints(
        GraphConfig(authority_host="127.0.0.1:8443", graph_url="https://127.0.0.1:8443/")
    )
    assert endpoints.authority_host == "https://127.0.0.1:8443"
    assert endpoints.graph_url == "https://127.0.0.1:8443"
    assert not endpoints.instance_discovery
    assert endpoints.authority("t") == "https://127.0.0.1:8443/t"
    # a Microsoft host on an odd port is not Microsoft's service either
    assert not resolve_endpoints(
        GraphConfig(authority_host="https://login.microsoftonline.com:8443")
    ).instance_discovery


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("login.microsoftonline.us", "https://login.microsoftonline.us"),
        ("HTTPS://Graph.Microsoft.US:443", "https://graph.microsoft.us:443"),
        ("https://[::1]:9443", "https://[::1]:9443"),
    ],
)
def test_https_origin_normalises(value: str, expected: str) -> None:
    assert https_origin(value, "graph_url") == expected


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("http://graph.microsoft.com", "must be an https URL"),
        ("https://graph.microsoft.com/v1.0", "no path"),
        ("https://host:notaport", "invalid port"),
        ("https://", "no host"),
    ],
)
def test_https_origin_rejects(value: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        https_origin(value, "graph_url")
