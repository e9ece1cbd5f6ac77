"""Tokens for Graph through msal: client secret, certificate, device code or managed identity.

msal owns caching and refresh, so the Graph client asks for a token before every request; the
msal application is built on first use because its constructor already talks to Entra ID.
Every failure becomes one AuthError line (``aadsts``); credentials are read by ``credentials``.
"""

from __future__ import annotations

import logging
import os
import re
import sys
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Protocol

import httpx
import msal
import tenacity

from reconcile import __version__
from reconcile.errors import AuthError, ConfigError
from reconcile.graph.aadsts import code_in, error_from_result, explain
from reconcile.graph.clouds import Endpoints
from reconcile.graph.config import AuthMethod, GraphConfig
from reconcile.graph.credentials import choose_method, load_certificate, read_secret
from reconcile.graph.transport import (
    MsalHttpAdapter,
    describe_transport_error,
    is_transient,
    parse_retry_after,
)
from reconcile.paths import default_token_cache

log = logging.getLogger("reconcile.graph.auth")

THROTTLED = frozenset({429, 503})
# msal replays a throttled token answer from its cache for Retry-After seconds (5 s without the
# header; msal/throttled_http_client.py), so a retry must wait a little longer than that.
_MSAL_REPLAY = 5.0
_MARGIN = 0.5
_MULTI_TENANT = frozenset({"common", "organizations", "consumers"})


class TokenProvider(Protocol):
    """What the Graph client needs: a bearer token that is valid right now."""

    @property
    def method(self) -> str: ...

    def token(self) -> str: ...


def _exception_chain_text(exc: BaseException) -> str:
    parts: list[str] = []
    current: BaseException | None = exc
    while current is not None and len(parts) < 5:
        parts.append(str(current))
        current = current.__cause__ or current.__context__
    return " ".join(parts)


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
                code = code_in(text)
                authority = self._endpoints.authority(self._config.tenant_id or "")
                if code is not None:
                    raise explain(code, text, self._secrets) from None
                raise AuthError(
                    f"cannot discover the tenant at {authority}: check RECONCILE_TENANT_ID and "
                    "the cloud or authority_host"
                ) from None
            raise explain(code_in(text), text, self._secrets) from None

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
