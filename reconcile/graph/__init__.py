"""Microsoft Graph access: clouds, msal sign-in, and the retrying, rate-limited client."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager

import httpx

from reconcile.graph.auth import MsalTokenProvider
from reconcile.graph.client import GraphClient, RateLimiter, RetryPolicy
from reconcile.graph.clouds import Endpoints, resolve_endpoints
from reconcile.graph.credentials import choose_method
from reconcile.graph.transport import build_http_client
from reconcile.settings import Settings

__all__ = ["GraphClient", "GraphSession", "open_graph"]


class GraphSession:
    """What one fetch or doctor run holds: endpoints, the token provider and the Graph client."""

    def __init__(self, endpoints: Endpoints, tokens: MsalTokenProvider, client: GraphClient):
        self.endpoints = endpoints
        self.tokens = tokens
        self.client = client


@contextmanager
def open_graph(
    settings: Settings,
    transport: httpx.BaseTransport | None = None,
    *,
    prompt: Callable[[str], None] | None = None,
) -> Iterator[GraphSession]:
    """Nothing touches the network until the first token or Graph request.

    Managed identity endpoints (IMDS, App Service) are local, so their token traffic bypasses
    any proxy from the environment.
    """
    endpoints = resolve_endpoints(settings)
    method = choose_method(settings)
    with build_http_client(settings, transport) as http:
        token_http = (
            build_http_client(settings, transport, proxies=False)
            if method == "managed-identity"
            else http
        )
        try:
            tokens = MsalTokenProvider(settings, endpoints, token_http, prompt=prompt)
            client = GraphClient(
                http,
                endpoints.graph_url,
                tokens,
                retry=RetryPolicy.from_settings(settings),
                limiter=RateLimiter(settings.graph_rate_limit),
            )
            yield GraphSession(endpoints, tokens, client)
        finally:
            if token_http is not http:
                token_http.close()
