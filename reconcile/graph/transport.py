"""The one httpx client every request goes through: Entra ID, Graph and the export download.

One client means one trust decision (``ca_bundle``), one proxy decision (the usual env vars) and
one transport a caller can wrap to record cassettes.
"""

from __future__ import annotations

import email.utils
import ssl
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC
from typing import Any

import httpx

from reconcile import __version__
from reconcile.errors import ConfigError
from reconcile.graph.config import GraphConfig

USER_AGENT = f"reconcile/{__version__}"
TIMEOUT = httpx.Timeout(60.0, connect=15.0)


def ssl_trust(config: GraphConfig) -> ssl.SSLContext | bool:
    """``ca_bundle`` replaces the default roots, as curl --cacert and REQUESTS_CA_BUNDLE do."""
    if config.ca_bundle is None:
        return True
    path = config.ca_bundle
    try:
        return ssl.create_default_context(cafile=str(path))
    except OSError as exc:
        if isinstance(exc, ssl.SSLError):
            raise ConfigError(f"{path}: ca_bundle holds no PEM certificate") from None
        raise ConfigError(f"{path}: cannot read ca_bundle: {exc.strerror}") from None


def build_http_client(
    config: GraphConfig, transport: httpx.BaseTransport | None = None, *, proxies: bool = True
) -> httpx.Client:
    """An injected transport owns TLS and proxies, so env proxies must not route around it."""
    verify = ssl_trust(config)
    return httpx.Client(
        verify=verify,
        transport=transport,
        trust_env=proxies and transport is None,
        timeout=TIMEOUT,
        headers={"User-Agent": USER_AGENT},
        follow_redirects=False,
    )


@dataclass(frozen=True)
class Answer:
    """Status and retry headers of the last identity-endpoint answer on this thread."""

    status: int
    retry_after: str | None
    date: str | None


class MsalHttpAdapter:
    """msal's ``http_client`` contract (msal/oauth2cli/http.py) on top of an httpx.Client.

    msal sends form data as a dict or as a ready-encoded str; httpx wants the latter as content
    and would send a bytes value in the dict (the signed client assertion) as its repr.

    msal turns a 429 or 503 from the token endpoint into an error dict without its status, so
    the adapter remembers the last answer per thread (``last``) for the caller to retry on.
    msal replays a throttled answer from its own cache until Retry-After passed; ``last`` then
    still holds that answer, which is what the caller should wait for.
    """

    def __init__(self, client: httpx.Client):
        self._client = client
        self._local = threading.local()

    @property
    def last(self) -> Answer | None:
        answer: Answer | None = getattr(self._local, "answer", None)
        return answer

    def _seen(self, response: httpx.Response) -> httpx.Response:
        self._local.answer = Answer(
            response.status_code,
            response.headers.get("Retry-After"),
            response.headers.get("Date"),
        )
        return response

    def post(
        self,
        url: str,
        params: Mapping[str, Any] | None = None,
        data: Mapping[str, Any] | str | bytes | None = None,
        headers: Mapping[str, str] | None = None,
        **kwargs: Any,
    ) -> httpx.Response:
        if isinstance(data, (str, bytes)):
            return self._seen(
                self._client.post(
                    url, params=params, content=data, headers=headers, timeout=_timeout(kwargs)
                )
            )
        form = {
            k: v.decode("utf-8") if isinstance(v, bytes) else v for k, v in (data or {}).items()
        }
        return self._seen(
            self._client.post(
                url, params=params, data=form, headers=headers, timeout=_timeout(kwargs)
            )
        )

    def get(
        self,
        url: str,
        params: Mapping[str, Any] | None = None,
        headers: Mapping[str, str] | None = None,
        **kwargs: Any,
    ) -> httpx.Response:
        return self._seen(
            self._client.get(url, params=params, headers=headers, timeout=_timeout(kwargs))
        )

    def close(self) -> None:
        """The httpx client is shared with Graph; its owner closes it."""


def _timeout(kwargs: Mapping[str, Any]) -> httpx.Timeout:
    value = kwargs.get("timeout")
    return httpx.Timeout(value) if isinstance(value, (int, float)) else TIMEOUT


def is_transient(exc: httpx.TransportError) -> bool:
    """An untrusted certificate will not fix itself between retries; a refused socket may."""
    return "CERTIFICATE_VERIFY_FAILED" not in str(exc)


def describe_transport_error(exc: httpx.TransportError) -> str:
    """Name the usual cause, since httpx's own text rarely says what to change."""
    text = str(exc) or type(exc).__name__
    if "CERTIFICATE_VERIFY_FAILED" in text:
        return f"TLS certificate not trusted ({text}); set RECONCILE_CA_BUNDLE to the issuing CA"
    if isinstance(exc, httpx.ProxyError):
        return f"proxy refused the connection ({text}); check HTTPS_PROXY and NO_PROXY"
    if isinstance(exc, httpx.TimeoutException):
        return f"timed out ({type(exc).__name__})"
    return f"{type(exc).__name__}: {text}"


def parse_retry_after(value: str | None, server_date: str | None, now: float) -> float | None:
    """Seconds to wait. An HTTP date is measured against the server's own Date when it sent
    one, so a skewed local clock cannot make us retry early."""
    if value is None or not value.strip():
        return None
    text = value.strip()
    try:
        return max(0.0, float(text))
    except ValueError:
        pass
    try:
        target = email.utils.parsedate_to_datetime(text)
    except (TypeError, ValueError):
        return None
    if target.tzinfo is None:
        target = target.replace(tzinfo=UTC)
    reference = now
    if server_date:
        try:
            reference = email.utils.parsedate_to_datetime(server_date).timestamp()
        except (TypeError, ValueError):
            reference = now
    return max(0.0, target.timestamp() - reference)
