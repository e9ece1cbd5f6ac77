"""One Graph session: endpoints, the msal token provider and the Graph client, built together."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager

import httpx

from reconcile.graph.auth import MsalTokenProvider, choose_method
from reconcile.graph.client import GraphClient, RateLimiter, RetryPolicy
from reconcile.graph.clouds import Endpoints, resolve_endpoints
from reconcile.graph.config import AuthMethod, GraphConfig
from reconcile.graph.transport import build_http_client

__all__ = ["GraphClient", "GraphSession", "open_graph"]


class GraphSession:
    """What one fetch or doctor run holds: endpoints, the token provider and the Graph client."""

    def __init__(self, endpoints: Endpoints, tokens: MsalTokenProvider, client: GraphClient):
        self.endpoints = endpoints
        self.tokens = tokens
        self.client = client


@contextmanager
def open_graph(
    config: GraphConfig,
    transport: httpx.BaseTransport | None = None,
    *,
    prompt: Callable[[str], None] | None = None,
) -> Iterator[GraphSession]:
    """Nothing touches the network until the first token or Graph request.

    Managed identity endpoints (IMDS, App Service) are local, so their token traffic bypasses
    any proxy from the environment.
    """
    endpoints = resolve_endpoints(config)
    method = choose_method(config)
    with build_http_client(config, transport) as http:
        token_http = (
            build_http_client(config, transport, proxies=False)
            if method == AuthMethod.MANAGED_IDENTITY
            else http
        )
        try:
            tokens = MsalTokenProvider(config, endpoints, token_http, prompt=prompt)
            client = GraphClient(
                http,
                endpoints.graph_url,
                tokens,
                retry=RetryPolicy.of(config),
                limiter=RateLimiter(config.rate_limit),
            )
            yield GraphSession(endpoints, tokens, client)
        finally:
            if token_http is not http:
                token_http.close()
