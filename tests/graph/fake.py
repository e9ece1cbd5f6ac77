"""An in-process Entra ID + Graph + blob store behind httpx.MockTransport.

Real msal and the real GraphClient run against it with no sockets; every request is recorded
so tests can assert what the client sent.
"""

from __future__ import annotations

import base64
import io
import itertools
import json
import re
import time
import zipfile
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import httpx

from reconcile.graph.client import GraphClient, RateLimiter, RetryPolicy

TENANT = "11111111-2222-3333-4444-555555555555"
CLIENT = "aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee"
SECRET = "s3cr3t~Value.With-Chars"
LOGIN = "https://login.microsoftonline.com"
GRAPH = "https://graph.microsoft.com"
BLOB = "https://exports.blob.core.windows.net/reports/job.zip?sv=2024&sig=SAS-SIGNATURE"

Handler = Callable[[httpx.Request], httpx.Response | None]


def page_of(request: httpx.Request, items: list[dict[str, Any]], max_page: int) -> httpx.Response:
    """Graph-style paging: $top (capped) and an opaque $skiptoken in @odata.nextLink."""
    query = parse_qs(urlsplit(str(request.url)).query)
    top = min(int(query.get("$top", [str(max_page)])[0]), max_page)
    start = int(query.get("$skiptoken", ["0"])[0])
    body: dict[str, Any] = {"value": [dict(i) for i in items[start : start + top]]}
    if start + top < len(items):
        rest = {k: v[0] for k, v in query.items() if k != "$skiptoken"}
        rest["$skiptoken"] = str(start + top)
        body["@odata.nextLink"] = (
            f"{request.url.scheme}://{request.url.host}{request.url.path}?{urlencode(rest)}"
        )
    return httpx.Response(200, json=body, headers={"request-id": "rid-ok"})


def _b64(data: dict[str, Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).decode().rstrip("=")


def user_tokens(base: str) -> dict[str, Any]:
    """What Entra adds for a signed-in user: an account msal can find in its cache next time."""
    now = int(time.time())
    claims = {
        "iss": f"{base}/v2.0",
        "aud": CLIENT,
        "tid": TENANT,
        "oid": "user-oid",
        "preferred_username": "admin@contoso.example",
        "iat": now,
        "exp": now + 3600,
    }
    return {
        "id_token": f"{_b64({'alg': 'none'})}.{_b64(claims)}.",
        "client_info": _b64({"uid": "user-oid", "utid": TENANT}),
        "refresh_token": "refresh-1",
        "scope": f"{GRAPH}/.default",
    }


def state(serial: str, issuance: str = "installed") -> dict[str, Any]:
    return {
        "id": f"state-{serial}",
        "certificateSerialNumber": serial,
        "certificateIssuanceState": issuance,
        "deviceDisplayName": f"PC-{serial}",
    }


def export_zip(csv_text: str, name: str = "export.csv") -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as bundle:
        bundle.writestr(name, csv_text.encode("utf-8-sig"))
    return buffer.getvalue()


@dataclass
class FakeCloud:
    profiles: list[dict[str, Any]] = field(default_factory=list)
    states: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    devices: list[dict[str, Any]] = field(default_factory=list)
    export_csv: str = "SerialNumber,CertificateStatus\n"
    export_statuses: list[str] = field(
        default_factory=lambda: ["notStarted", "inProgress", "completed"]
    )
    max_page: int = 1000
    token_error: dict[str, Any] | None = None
    expires_in: int = 3600
    requests: list[httpx.Request] = field(default_factory=list)
    before: list[Handler] = field(default_factory=list)
    _tokens: itertools.count[int] = field(default_factory=lambda: itertools.count(1))

    def transport(self) -> httpx.MockTransport:
        return httpx.MockTransport(self)

    def graph_requests(self) -> list[httpx.Request]:
        return [r for r in self.requests if r.url.host == "graph.microsoft.com"]

    def token_posts(self) -> list[httpx.Request]:
        return [r for r in self.requests if r.url.path.endswith("/oauth2/v2.0/token")]

    def __call__(self, request: httpx.Request) -> httpx.Response:
        request.read()
        self.requests.append(request)
        for hook in self.before:
            response = hook(request)
            if response is not None:
                return response
        if request.url.host.startswith("login."):
            return self._entra(request)
        if request.url.host.endswith("blob.core.windows.net"):
            return httpx.Response(200, content=export_zip(self.export_csv))
        return self._graph(request)

    def _entra(self, request: httpx.Request) -> httpx.Response:
        base = f"{request.url.scheme}://{request.url.host}/{TENANT}"
        if request.url.path.endswith("/.well-known/openid-configuration"):
            return httpx.Response(
                200,
                json={
                    "issuer": f"{base}/v2.0",
                    "authorization_endpoint": f"{base}/oauth2/v2.0/authorize",
                    "token_endpoint": f"{base}/oauth2/v2.0/token",
                    "device_authorization_endpoint": f"{base}/oauth2/v2.0/devicecode",
                },
            )
        if request.url.path == "/common/discovery/instance":
            aliases = ["login.microsoftonline.com", "login.windows.net", "login.microsoft.com"]
            return httpx.Response(
                200,
                json={
                    "api-version": "1.1",
                    "metadata": [
                        {
                            "preferred_network": "login.microsoftonline.com",
                            "preferred_cache": "login.windows.net",
                            "aliases": aliases,
                        }
                    ],
                },
            )
        if request.url.path.endswith("/oauth2/v2.0/devicecode"):
            return httpx.Response(
                200,
                json={
                    "device_code": "DEVICE-CODE",
                    "user_code": "ABCD-EFGH",
                    "verification_uri": "https://microsoft.com/devicelogin",
                    "expires_in": 900,
                    "interval": 0,
                    "message": "To sign in, open https://microsoft.com/devicelogin and enter "
                    "ABCD-EFGH.",
                },
            )
        if request.url.path.endswith("/oauth2/v2.0/token"):
            if self.token_error is not None:
                return httpx.Response(400, json=self.token_error)
            body: dict[str, Any] = {
                "token_type": "Bearer",
                "expires_in": self.expires_in,
                "access_token": f"token-{next(self._tokens)}",
            }
            form = parse_qs(request.content.decode())
            if form.get("grant_type", [""])[0] != "client_credentials":
                body.update(user_tokens(base))
            return httpx.Response(200, json=body)
        return httpx.Response(404, json={"error": "not_found"})

    def _graph(self, request: httpx.Request) -> httpx.Response:
        path = request.url.path
        if path == "/beta/deviceManagement/deviceConfigurations":
            return page_of(request, self.profiles, self.max_page)
        match = re.fullmatch(
            r"/beta/deviceManagement/deviceConfigurations/([^/]+)/microsoft\.graph\.(\w+)"
            r"/managedDeviceCertificateStates",
            path,
        )
        if match:
            return page_of(request, self.states.get(match.group(1), []), self.max_page)
        if path == "/v1.0/deviceManagement/managedDevices":
            return page_of(request, self.devices, self.max_page)
        if path == "/beta/deviceManagement/reports/exportJobs" and request.method == "POST":
            body = json.loads(request.content)
            assert body["reportName"] == "CertificatesByRAPolicy"
            return httpx.Response(201, json=self._job())
        if path.startswith("/beta/deviceManagement/reports/exportJobs('"):
            return httpx.Response(200, json=self._job())
        if path == "/beta/deviceManagement/reports/exportJobs":
            return httpx.Response(200, json={"value": []})
        return httpx.Response(
            404,
            json={"error": {"code": "ResourceNotFound", "message": f"no route {path}"}},
            headers={"request-id": "rid-404"},
        )

    def _job(self) -> dict[str, Any]:
        """Each look at the job moves it one status on, staying at the last one."""
        statuses = self.export_statuses
        status = statuses.pop(0) if len(statuses) > 1 else statuses[0]
        job: dict[str, Any] = {"id": "CertificatesByRAPolicy_job1", "status": status, "url": None}
        if status == "completed":
            job["url"] = BLOB
        return job


class FakeClock:
    """Monotonic and wall clock that only move when the code under test sleeps."""

    def __init__(self, start: float = 1_800_000_000.0):
        self.now = start
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        assert seconds >= 0
        self.sleeps.append(seconds)
        self.now += seconds


class CountingTokens:
    """A TokenProvider that counts how often it was asked."""

    method = "test"

    def __init__(self) -> None:
        self.calls = 0

    def token(self) -> str:
        self.calls += 1
        return f"token-{self.calls}"


def make_client(
    cloud: FakeCloud,
    clock: FakeClock | None = None,
    tokens: CountingTokens | None = None,
    retry: RetryPolicy | None = None,
    limit: int = 900,
) -> tuple[GraphClient, FakeClock, CountingTokens]:
    clock = clock or FakeClock()
    tokens = tokens or CountingTokens()
    client = GraphClient(
        httpx.Client(transport=cloud.transport()),
        GRAPH,
        tokens,
        retry=retry or RetryPolicy(max_attempts=5, max_time=600),
        limiter=RateLimiter(limit, clock=clock, sleep=clock.sleep),
        clock=clock,
        wall=clock,
        sleep=clock.sleep,
        jitter=lambda: 0.5,
    )
    return client, clock, tokens
