"""A polite, complete Graph reader: paging, retries, a rate limit, and errors with request-ids.

Politeness is Intune's budget (1,000 requests per 20 s per app, docs: throttling-intune-device-
configuration); completeness means a collection is either read to its last page or the run fails.
The clock and sleep are injected so tests check waits without waiting.
"""

from __future__ import annotations

import collections
import email.utils
import logging
import random
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import IO, Any, TypeVar
from urllib.parse import urlsplit

import httpx
import tenacity

from reconcile.errors import GraphError
from reconcile.graph.auth import TokenProvider
from reconcile.graph.config import GraphConfig
from reconcile.graph.transport import describe_transport_error, is_transient, parse_retry_after

log = logging.getLogger("reconcile.graph")

T = TypeVar("T")

RETRY_STATUSES = frozenset({429, 503, 504})
RATE_WINDOW = 20.0

# Least-privileged application permission per endpoint (docs; see docs/graph.md).
PERMISSIONS = (
    ("POST", "/deviceManagement/reports/exportJobs", "DeviceManagementConfiguration.ReadWrite.All"),
    ("", "/deviceManagement/reports/exportJobs", "DeviceManagementConfiguration.Read.All"),
    ("", "/deviceManagement/managedDevices", "DeviceManagementManagedDevices.Read.All"),
    ("", "/deviceManagement/deviceConfigurations", "DeviceManagementConfiguration.Read.All"),
)


def required_permission(method: str, path: str) -> str | None:
    for verb, fragment, permission in PERMISSIONS:
        if fragment in path and verb in ("", method):
            return permission
    return None


class RateLimiter:
    """At most ``limit`` requests in any ``window`` seconds, shared by every thread."""

    def __init__(
        self,
        limit: int,
        window: float = RATE_WINDOW,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ):
        if limit < 1:
            raise ValueError("rate limit must be at least 1")
        self.limit = limit
        self.window = window
        self._clock = clock
        self._sleep = sleep
        self._sent: collections.deque[float] = collections.deque()
        self._lock = threading.Lock()

    def acquire(self) -> None:
        while True:
            with self._lock:
                now = self._clock()
                while self._sent and self._sent[0] <= now - self.window:
                    self._sent.popleft()
                if len(self._sent) < self.limit:
                    self._sent.append(now)
                    return
                delay = self._sent[0] + self.window - now
            self._sleep(delay)


@dataclass(frozen=True)
class RetryPolicy:
    """Bounded in attempts and in total time; Retry-After always wins over the backoff."""

    max_attempts: int = 6
    max_time: float = 300.0
    backoff_base: float = 1.0
    backoff_cap: float = 60.0

    @classmethod
    def of(cls, config: GraphConfig) -> RetryPolicy:
        return cls(max_attempts=config.max_attempts, max_time=config.retry_time)


class _Retry(Exception):
    """One failed attempt worth repeating: a throttling/unavailable status or a network error."""

    def __init__(
        self,
        response: httpx.Response | None = None,
        error: httpx.TransportError | None = None,
        client_request_id: str | None = None,
        retry_after: float | None = None,
    ):
        super().__init__(response.status_code if response is not None else error)
        self.response = response
        self.error = error
        self.client_request_id = client_request_id
        self.retry_after = retry_after


def display_url(url: str | httpx.URL) -> str:
    """Path only: a nextLink's skiptoken is noise and a download URL's SAS signature a secret."""
    parts = urlsplit(str(url))
    return parts.path or "/"


def _graph_error_detail(response: httpx.Response) -> tuple[str, str | None]:
    """(code: message, request-id) from Graph's error body, tolerating non-JSON bodies."""
    request_id = response.headers.get("request-id")
    try:
        body = response.json()
    except ValueError:
        return response.reason_phrase, request_id
    error = body.get("error") if isinstance(body, dict) else None
    if not isinstance(error, dict):
        return response.reason_phrase, request_id
    inner = error.get("innerError") or error.get("innererror") or {}
    if not request_id and isinstance(inner, dict):
        request_id = inner.get("request-id")
    message = " ".join(str(error.get("message") or "").split())[:300]
    code = str(error.get("code") or response.reason_phrase)
    return (f"{code}: {message}" if message else code), request_id


class GraphClient:
    """Thread-safe; one per fetch. Every request asks the token provider first (msal caches)."""

    def __init__(
        self,
        http: httpx.Client,
        graph_url: str,
        tokens: TokenProvider,
        *,
        retry: RetryPolicy | None = None,
        limiter: RateLimiter | None = None,
        clock: Callable[[], float] = time.monotonic,
        wall: Callable[[], float] = time.time,
        sleep: Callable[[float], None] = time.sleep,
        jitter: Callable[[], float] = random.random,
    ):
        self._http = http
        self.graph_url = graph_url.rstrip("/")
        self._origin = _origin(self.graph_url)
        self._tokens = tokens
        self._retry = retry or RetryPolicy()
        self._limiter = limiter or RateLimiter(900, clock=clock, sleep=sleep)
        self._clock = clock
        self._wall = wall
        self._sleep = sleep
        self._jitter = jitter
        self._lock = threading.Lock()
        self.requests = 0
        self.server_time: tuple[datetime, datetime] | None = None

    # --- public API ---------------------------------------------------------------------------

    def get(self, path: str, params: Mapping[str, str] | None = None) -> dict[str, Any]:
        return self._json("GET", self._url(path), params=params)

    def post(self, path: str, body: Mapping[str, Any]) -> dict[str, Any]:
        return self._json("POST", self._url(path), body=body)

    def pages(
        self, path: str, params: Mapping[str, str] | None = None
    ) -> Iterator[list[dict[str, Any]]]:
        """Each page's ``value``; follows @odata.nextLink verbatim, never past another host."""
        url: str | None = self._url(path)
        query = params
        while url is not None:
            data = self._json("GET", url, params=query)
            query = None
            value = data.get("value")
            if not isinstance(value, list) or not all(isinstance(v, dict) for v in value):
                raise GraphError(
                    f"GET {display_url(url)}: response has no 'value' array of objects"
                )
            next_link = data.get("@odata.nextLink")
            if next_link is not None:
                next_link = self._checked_next_link(display_url(url), next_link)
            yield value
            url = next_link

    def download(self, url: str, sink: IO[bytes], max_bytes: int) -> int:
        """GET a pre-signed URL with no Authorization header at all; returns the size.

        The export's blob URL carries its own SAS signature; a Graph token must never leave
        Graph. Not rate-limited against the Graph budget: it is not a Graph request.
        """
        where = display_url(url)

        def attempt() -> int:
            sink.seek(0)
            sink.truncate()
            try:
                with self._http.stream("GET", url, headers={"Accept": "*/*"}) as response:
                    self._count(response)
                    if response.status_code in RETRY_STATUSES or response.status_code >= 500:
                        response.read()
                        raise _Retry(response, retry_after=self._retry_after(response))
                    if response.status_code != 200:
                        raise GraphError(
                            f"GET {where}: download failed with HTTP {response.status_code}",
                            status=response.status_code,
                        )
                    size = 0
                    for chunk in response.iter_bytes():
                        size += len(chunk)
                        if size > max_bytes:
                            raise GraphError(
                                f"GET {where}: export larger than {max_bytes} bytes; refusing it"
                            )
                        sink.write(chunk)
                    return size
            except httpx.InvalidURL:
                raise GraphError(f"GET {where}: the export url is not a valid URL") from None
            except (httpx.TimeoutException, httpx.NetworkError, httpx.RemoteProtocolError) as exc:
                raise _Retry(error=exc) from None

        return self._retrying("GET", where, attempt)

    # --- internals ----------------------------------------------------------------------------

    def _checked_next_link(self, where: str, link: object) -> str:
        """Followed verbatim, so refused unless it is a clean URL on Graph's own origin.

        urlsplit drops a tab or newline from a host that httpx then refuses; checking the text
        first keeps either from becoming an internal error or reaching the terminal."""
        text = str(link)
        if any(ord(c) < 32 or 127 <= ord(c) < 160 for c in text):
            raise GraphError(f"GET {where}: @odata.nextLink holds a control character; refused")
        try:
            origin = _origin(text)
        except ValueError:
            raise GraphError(f"GET {where}: @odata.nextLink is not a valid URL; refused") from None
        if origin != self._origin:
            raise GraphError(f"GET {where}: @odata.nextLink points away from {self.graph_url}")
        return text

    def _url(self, path: str) -> str:
        return path if path.startswith("https://") else f"{self.graph_url}{path}"

    def _count(self, response: httpx.Response) -> None:
        date = response.headers.get("Date")
        parsed: datetime | None = None
        if date:
            try:
                parsed = email.utils.parsedate_to_datetime(date)
            except (TypeError, ValueError):
                parsed = None
        with self._lock:
            self.requests += 1
            if parsed is not None:
                self.server_time = (parsed, datetime.fromtimestamp(self._wall(), UTC))

    def _retry_after(self, response: httpx.Response) -> float | None:
        return parse_retry_after(
            response.headers.get("Retry-After"), response.headers.get("Date"), self._wall()
        )

    def _json(
        self,
        method: str,
        url: str,
        *,
        params: Mapping[str, str] | None = None,
        body: Mapping[str, Any] | None = None,
    ) -> dict[str, Any]:
        where = display_url(url)

        def attempt() -> httpx.Response:
            self._limiter.acquire()
            request_id = str(uuid.uuid4())
            headers = {
                "Authorization": f"Bearer {self._tokens.token()}",
                "client-request-id": request_id,
                "Accept": "application/json",
            }
            try:
                response = self._http.request(
                    method, url, params=params, json=body, headers=headers
                )
            except httpx.InvalidURL:
                raise GraphError(f"{method} {where}: not a valid URL; refused") from None
            except (httpx.ConnectError, httpx.ConnectTimeout) as exc:
                if not is_transient(exc):
                    raise GraphError(f"{method} {where}: {describe_transport_error(exc)}") from None
                raise _Retry(error=exc, client_request_id=request_id) from None
            except (httpx.TimeoutException, httpx.NetworkError, httpx.RemoteProtocolError) as exc:
                if method != "GET":
                    # The server may have acted on it: a second POST could start a second job.
                    raise GraphError(
                        f"{method} {where}: {describe_transport_error(exc)} "
                        f"(client-request-id {request_id})"
                    ) from None
                raise _Retry(error=exc, client_request_id=request_id) from None
            self._count(response)
            if response.status_code in RETRY_STATUSES:
                raise _Retry(response, retry_after=self._retry_after(response))
            return response

        response = self._retrying(method, where, attempt)
        if not response.is_success:
            detail, request_id = _graph_error_detail(response)
            hint = _status_hint(response.status_code, method, url)
            raise GraphError(
                f"{method} {where}: HTTP {response.status_code} {detail}{hint}",
                request_id=request_id,
                status=response.status_code,
            )
        try:
            data = response.json()
        except ValueError:
            raise GraphError(
                f"{method} {where}: response is not JSON",
                request_id=response.headers.get("request-id"),
                status=response.status_code,
            ) from None
        if not isinstance(data, dict):
            raise GraphError(f"{method} {where}: response is not a JSON object")
        return data

    def _retrying(self, method: str, where: str, attempt: Callable[[], T]) -> T:
        policy = self._retry
        start = self._clock()
        attempts = 0

        def counted() -> T:
            nonlocal attempts
            attempts += 1
            return attempt()

        def wait(state: tenacity.RetryCallState) -> float:
            exc = state.outcome.exception() if state.outcome else None
            if isinstance(exc, _Retry) and exc.retry_after is not None:
                return float(exc.retry_after)
            ceiling = min(
                policy.backoff_cap, policy.backoff_base * 2.0 ** (state.attempt_number - 1)
            )
            return ceiling / 2 + self._jitter() * ceiling / 2

        def stop(state: tenacity.RetryCallState) -> bool:
            if state.attempt_number >= policy.max_attempts:
                return True
            return self._clock() - start + state.upcoming_sleep > policy.max_time

        def before_sleep(state: tenacity.RetryCallState) -> None:
            exc = state.outcome.exception() if state.outcome else None
            log.info(
                "%s %s: %s; retry %d in %.1f s",
                method,
                where,
                _describe(exc),
                state.attempt_number,
                state.upcoming_sleep,
            )

        retrying = tenacity.Retrying(
            retry=tenacity.retry_if_exception_type(_Retry),
            wait=wait,
            stop=stop,
            sleep=self._sleep,
            before_sleep=before_sleep,
            reraise=True,
        )
        try:
            return retrying(counted)
        except _Retry as exc:
            if exc.response is not None:
                detail, request_id = _graph_error_detail(exc.response)
                asked = (
                    f" (Retry-After {exc.retry_after:.0f} s exceeds graph.retry_time)"
                    if exc.retry_after is not None and attempts < policy.max_attempts
                    else ""
                )
                raise GraphError(
                    f"{method} {where}: HTTP {exc.response.status_code} {detail}, "
                    f"still failing after {attempts} attempts{asked}",
                    request_id=request_id,
                    status=exc.response.status_code,
                ) from None
            crid = f" (client-request-id {exc.client_request_id})" if exc.client_request_id else ""
            assert exc.error is not None
            raise GraphError(
                f"{method} {where}: {describe_transport_error(exc.error)}, "
                f"still failing after {attempts} attempts{crid}"
            ) from None


def _origin(url: str) -> tuple[str, str | None, int | None]:
    parts = urlsplit(url)
    return parts.scheme.lower(), parts.hostname, parts.port


def _describe(exc: BaseException | None) -> str:
    if isinstance(exc, _Retry):
        if exc.response is not None:
            return f"HTTP {exc.response.status_code}"
        if exc.error is not None:
            return describe_transport_error(exc.error)
    return str(exc)


def _status_hint(status: int, method: str, url: str) -> str:
    if status == 401:
        return "; fix: the token was refused; check that cloud/graph_url match the authority"
    if status == 403:
        permission = required_permission(method, urlsplit(url).path)
        if permission:
            return f"; fix: grant the app {permission} (application) and admin consent"
        return "; fix: the app lacks a Graph permission; see docs/graph.md"
    return ""
