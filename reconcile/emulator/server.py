"""A local stand-in for Entra ID and Microsoft Graph over real HTTPS.

It speaks enough of both for the real msal and httpx stack to run unmodified: OIDC discovery,
the token endpoint (client secret, client assertion, device code, refresh token), a managed
identity endpoint, the Intune collections with real ``@odata.nextLink`` paging, the report
export job flow and a blob-style download. Every request is recorded so tests can check what a
client did, not only what it got.
"""

from __future__ import annotations

import base64
import contextlib
import csv
import email.utils
import io
import json
import logging
import re
import secrets
import socket
import ssl
import tempfile
import threading
import time
import uuid
import zipfile
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, quote, unquote, urlencode, urlsplit

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature

from reconcile.emulator import cloudpki
from reconcile.emulator import connectors as connector_routes
from reconcile.emulator.connectors import ConnectorSwitch
from reconcile.emulator.faults import Fault, FaultKind
from reconcile.emulator.tenant import (
    DEVICE_PROPERTIES,
    PROFILE_PROPERTIES,
    REPORT_ALL_COLUMNS,
    REPORT_ENUM_COLUMNS,
    REPORT_STATUS_CODES,
    STATE_PROPERTIES,
    GeneratedTenant,
    SnapshotTenant,
    Tenant,
)
from reconcile.emulator.tls import create_server_certificate

log = logging.getLogger("reconcile.emulator")

DEFAULT_TENANT_ID = "8d3f0e7c-5b1a-4c2e-9f6d-0a1b2c3d4e5f"
DEFAULT_CLIENT_ID = "3c9a7b51-2e4d-4f8a-b6c1-9d0e1f2a3b4c"
JSON_TYPE = "application/json; charset=utf-8"
GRAPH_JSON = "application/json;odata.metadata=minimal;odata.streaming=true;charset=utf-8"
DEVICE_CODE_GRANT = "urn:ietf:params:oauth:grant-type:device_code"
ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
REPORT_NAMES = ("CertificatesByRAPolicy", "AllDeviceCertificates")
LOCALIZATION_TYPES = ("LocalizedValuesAsAdditionalColumn", "ReplaceLocalizableValues")
_POLICY_FILTER = re.compile(r"^\s*\(?\s*PolicyId\s+eq\s+'((?:[^']|'')*)'\s*\)?\s*$", re.IGNORECASE)


@dataclass(frozen=True)
class RecordedRequest:
    """One request as the emulator saw it; Authorization is reduced to ``had_bearer``."""

    method: str
    path: str
    query: str
    route: str
    headers: tuple[tuple[str, str], ...]
    had_bearer: bool
    had_authorization: bool
    received_at: float
    status: int
    retry_not_before: float | None = None
    fault: str | None = None
    body: str | None = None
    """Kept only for routes whose body holds no credential (the export job request)."""

    @property
    def params(self) -> dict[str, list[str]]:
        return parse_qs(self.query, keep_blank_values=True)

    def header(self, name: str) -> str | None:
        wanted = name.lower()
        return next((v for k, v in self.headers if k.lower() == wanted), None)

    def to_json(self) -> dict[str, Any]:
        return {
            "method": self.method,
            "path": self.path,
            "query": self.query,
            "route": self.route,
            "headers": [list(h) for h in self.headers],
            "had_bearer": self.had_bearer,
            "had_authorization": self.had_authorization,
            "received_at": self.received_at,
            "status": self.status,
            "retry_not_before": self.retry_not_before,
            "fault": self.fault,
            "body": self.body,
        }

    @classmethod
    def from_json(cls, obj: Mapping[str, Any]) -> RecordedRequest:
        return cls(
            method=obj["method"],
            path=obj["path"],
            query=obj["query"],
            route=obj["route"],
            headers=tuple((str(k), str(v)) for k, v in obj["headers"]),
            had_bearer=bool(obj["had_bearer"]),
            had_authorization=bool(obj["had_authorization"]),
            received_at=float(obj["received_at"]),
            status=int(obj["status"]),
            retry_not_before=obj.get("retry_not_before"),
            fault=obj.get("fault"),
            body=obj.get("body"),
        )


def retry_after_violations(requests: Sequence[RecordedRequest]) -> list[RecordedRequest]:
    """Requests that repeated a throttled request before its Retry-After allowed."""
    ordered = sorted(requests, key=lambda r: r.received_at)
    violations: list[RecordedRequest] = []
    for index, first in enumerate(ordered):
        if first.retry_not_before is None:
            continue
        key = (first.method, first.path, first.query)
        retry = next((r for r in ordered[index + 1 :] if (r.method, r.path, r.query) == key), None)
        if retry is not None and retry.received_at < first.retry_not_before:
            violations.append(retry)
    return violations


@dataclass
class _ExportJob:
    id: str
    report_name: str
    select: list[str]
    filter: str | None
    localization: str
    requested: float
    polls: int
    signature: str
    failed: bool = False
    archive: bytes | None = None


@dataclass
class _DeviceFlow:
    client_id: str
    scope: str
    polls: int = 0


@dataclass
class _Session:
    """Tokens issued by this emulator run, with their expiry (monotonic seconds)."""

    access: dict[str, float] = field(default_factory=dict)
    refresh: dict[str, str] = field(default_factory=dict)
    device_flows: dict[str, _DeviceFlow] = field(default_factory=dict)
    jobs: dict[str, _ExportJob] = field(default_factory=dict)


class _Drop(Exception):
    """Close the connection without an answer."""


def _b64url_decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _http_date(epoch: float) -> str:
    return email.utils.formatdate(epoch, usegmt=True)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False
    request_queue_size = 64

    def __init__(self, address: tuple[str, int], emulator: GraphEmulator, ctx: ssl.SSLContext):
        self.emulator = emulator
        self.ssl_context = ctx
        self.connections: set[socket.socket] = set()
        self.connections_lock = threading.Lock()
        super().__init__(address, _Handler)

    def get_request(self) -> tuple[socket.socket, Any]:
        sock, address = self.socket.accept()
        # The handshake runs in the handler thread, so a slow client cannot stall accept().
        wrapped = self.ssl_context.wrap_socket(
            sock, server_side=True, do_handshake_on_connect=False
        )
        with self.connections_lock:
            self.connections.add(wrapped)
        return wrapped, address

    def shutdown_request(self, request: Any) -> None:
        with self.connections_lock:
            self.connections.discard(request)
        super().shutdown_request(request)

    def handle_error(self, request: Any, client_address: Any) -> None:
        log.debug("emulator connection from %s ended with an error", client_address, exc_info=True)

    def drop_all(self) -> None:
        with self.connections_lock:
            open_sockets = list(self.connections)
        for sock in open_sockets:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "reconcile-emulator"
    sys_version = ""
    timeout = 30
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("emulator: " + format, *args)

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        """Without the query string: it carries the export's SAS signature."""
        path = self.path.split("?", 1)[0]
        log.debug("emulator: %s %s -> %s", self.command, path, code)

    def do_GET(self) -> None:
        self.server.emulator._handle(self)

    def do_POST(self) -> None:
        self.server.emulator._handle(self)

    def do_PATCH(self) -> None:
        self.server.emulator._handle(self)

    def do_DELETE(self) -> None:
        self.server.emulator._handle(self)


@dataclass
class _Exchange:
    """The request being answered and what the emulator decided about it."""

    handler: _Handler
    method: str
    path: str
    query: str
    params: dict[str, str]
    body: bytes
    route: str
    match: re.Match[str] | None
    received_at: float
    request_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    status: int = 0
    retry_not_before: float | None = None
    fault: str | None = None

    @property
    def base(self) -> str:
        """The origin the client addressed, so links survive a host-rewriting proxy."""
        host = self.handler.headers.get("Host") or ""
        if _HOST.fullmatch(host):
            return f"https://{host}"
        return self.handler.server.emulator.base_url

    @property
    def client_request_id(self) -> str:
        return self.handler.headers.get("client-request-id") or str(uuid.uuid4())


_BODY_ROUTES = frozenset({"export_create"})
_HOST = re.compile(r"[A-Za-z0-9.\-]+(:\d{1,5})?|\[[0-9A-Fa-f:.]+\](:\d{1,5})?")

_ROUTES: tuple[tuple[str, str, re.Pattern[str]], ...] = tuple(
    (method, name, re.compile(pattern))
    for method, name, pattern in (
        ("GET", "openid", r"^/(?P<tenant>[^/]+)/v2\.0/\.well-known/openid-configuration$"),
        ("POST", "token", r"^/(?P<tenant>[^/]+)/oauth2/v2\.0/token$"),
        ("POST", "devicecode", r"^/(?P<tenant>[^/]+)/oauth2/v2\.0/devicecode$"),
        ("GET", "msi", r"^/(msi/token|metadata/identity/oauth2/token)$"),
        ("GET", "profiles", r"^/beta/deviceManagement/deviceConfigurations$"),
        (
            "GET",
            "states",
            r"^/beta/deviceManagement/deviceConfigurations/(?P<id>[^/]+)"
            r"/microsoft\.graph\.(?P<type>[^/]+)/managedDeviceCertificateStates$",
        ),
        ("GET", "devices", r"^/(v1\.0|beta)/deviceManagement/managedDevices$"),
        ("POST", "export_create", r"^/(v1\.0|beta)/deviceManagement/reports/exportJobs$"),
        ("GET", "export_list", r"^/(v1\.0|beta)/deviceManagement/reports/exportJobs$"),
        (
            "GET",
            "export_status",
            r"^/(v1\.0|beta)/deviceManagement/reports/exportJobs"
            r"(\('(?P<id>[^']+)'\)|/(?P<id2>[^/]+))$",
        ),
        ("GET", "download", r"^/blob/reports/(?P<name>[^/]+)\.zip$"),
        *cloudpki.PATTERNS,
        *connector_routes.ROUTES,
    )
)


class GraphEmulator:
    """Entra ID + Graph on ``https://127.0.0.1:<ephemeral port>``; use as a context manager.

    ``tenant`` is the tenant id it answers for. Data comes from ``data`` (a Tenant), else
    ``snapshot_dir``, else ``generated`` synthetic certificate states. Pages hold ``page_size``
    items unless the client asks for ``$top`` (capped at ``max_page_size``).
    """

    def __init__(
        self,
        *,
        tenant: str = DEFAULT_TENANT_ID,
        client_id: str = DEFAULT_CLIENT_ID,
        client_secret: str | None = None,
        client_certificate: bytes | None = None,
        data: Tenant | None = None,
        snapshot_dir: Path | None = None,
        generated: int | None = None,
        faults: Sequence[Fault] = (),
        latency: float = 0.0,
        page_size: int = 100,
        max_page_size: int = 1000,
        token_lifetime: int = 3599,
        export_polls: int = 2,
        device_code_interval: int = 1,
        report_bom: bool = False,
        report_columns: Sequence[str] | None = None,
        report_loc: bool = True,
        request_log: Path | None = None,
        cloud_pki: cloudpki.CloudPki | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
        connectors: ConnectorSwitch | None = None,
    ):
        if data is None:
            if snapshot_dir is not None:
                data = SnapshotTenant(snapshot_dir)
            else:
                data = GeneratedTenant(generated if generated is not None else 100)
        if page_size < 1 or max_page_size < page_size:
            raise ValueError("need 1 <= page_size <= max_page_size")
        self.tenant_id = tenant
        self.client_id = client_id
        self.client_secret = client_secret or f"emu~{secrets.token_urlsafe(24)}"
        self.identity_header = secrets.token_hex(16)
        self.data = data
        if cloud_pki is None:
            cloud_pki = (
                cloudpki.CloudPki.from_snapshot(snapshot_dir)
                if snapshot_dir is not None
                else cloudpki.CloudPki()
            )
        self.cloud_pki = cloud_pki
        self.faults: list[Fault] = list(faults)
        self.latency = latency
        self.page_size = page_size
        self.max_page_size = max_page_size
        self.token_lifetime = token_lifetime
        self.export_polls = export_polls
        self.device_code_interval = device_code_interval
        self.report_bom = report_bom
        self.report_loc = report_loc
        self.report_columns = (
            frozenset(report_columns) if report_columns is not None else REPORT_ALL_COLUMNS
        )
        self._certificate = (
            x509.load_pem_x509_certificate(client_certificate) if client_certificate else None
        )
        self._host = host
        self._port = port
        self._request_log = request_log
        self._log_lock = threading.Lock()
        self._records: list[RecordedRequest] = []
        self._session = _Session()
        self._session_lock = threading.Lock()
        self._tmp: tempfile.TemporaryDirectory[str] | None = None
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        self.ca_bundle = Path()
        self.connectors = connectors or ConnectorSwitch()
        self._connector_snapshot = snapshot_dir

    # --- lifecycle ----------------------------------------------------------------------------

    def start(self) -> GraphEmulator:
        self._tmp = tempfile.TemporaryDirectory(prefix="reconcile-emulator-")
        hosts = (self._host, "localhost") if self._host != "localhost" else ("localhost",)
        cert = create_server_certificate(Path(self._tmp.name), hosts)
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.minimum_version = ssl.TLSVersion.TLSv1_2
        ctx.load_cert_chain(cert.cert_file, cert.key_file)
        self.ca_bundle = cert.ca_bundle
        self._server = _Server((self._host, self._port), self, ctx)
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.05},
            name="reconcile-emulator",
            daemon=True,
        )
        self._thread.start()
        log.debug("emulator listening on %s", self.base_url)
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.drop_all()
            self._server.server_close()
            self._server = None
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None
        if self._tmp is not None:
            self._tmp.cleanup()
            self._tmp = None

    def __enter__(self) -> GraphEmulator:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # --- what clients and tests use -----------------------------------------------------------

    @property
    def port(self) -> int:
        if self._server is None:
            raise RuntimeError("emulator is not running")
        return int(self._server.server_address[1])

    @property
    def base_url(self) -> str:
        return f"https://{self._host}:{self.port}"

    @property
    def authority_host(self) -> str:
        return self.base_url

    @property
    def authority(self) -> str:
        return f"{self.base_url}/{self.tenant_id}"

    @property
    def graph_url(self) -> str:
        return self.base_url

    @property
    def managed_identity_endpoint(self) -> str:
        """For msal's App Service managed identity (IDENTITY_ENDPOINT / IDENTITY_HEADER)."""
        return f"{self.base_url}/msi/token"

    def ssl_context(self) -> ssl.SSLContext:
        return ssl.create_default_context(cafile=str(self.ca_bundle))

    @property
    def requests(self) -> list[RecordedRequest]:
        with self._log_lock:
            return list(self._records)

    def requests_for(self, route: str) -> list[RecordedRequest]:
        return [r for r in self.requests if r.route == route]

    def clear_requests(self) -> None:
        with self._log_lock:
            self._records.clear()

    def retry_after_violations(self) -> list[RecordedRequest]:
        return retry_after_violations(self.requests)

    def add_fault(self, fault: Fault) -> Fault:
        self.faults.append(fault)
        return fault

    def minimum_pages(self, *, sources: str = "states", devices: bool = True) -> int:
        """Fewest Graph GETs that read every collection at the largest page size."""
        largest = self.max_page_size
        pages = max(1, -(-len(self.data.profiles) // largest))
        if sources in ("states", "both"):
            for profile in self.data.profiles:
                if str(profile.get("@odata.type", "")).endswith("CertificateProfile"):
                    count = self.data.state_count(str(profile["id"]))
                    pages += max(1, -(-count // largest))
        if devices:
            pages += max(1, -(-self.data.device_count() // largest))
        return pages

    # --- dispatch -----------------------------------------------------------------------------

    def _handle(self, handler: _Handler) -> None:
        received_at = time.time()
        split = urlsplit(handler.path)
        path = unquote(split.path)
        length = int(handler.headers.get("Content-Length") or 0)
        body = handler.rfile.read(length) if length else b""
        route, match = "unknown", None
        for method, name, pattern in _ROUTES:
            found = pattern.match(path)
            if found:
                route, match = name, found
                if method == handler.command:
                    break
        params = {k: v[-1] for k, v in parse_qs(split.query, keep_blank_values=True).items()}
        exchange = _Exchange(
            handler, handler.command, path, split.query, params, body, route, match, received_at
        )
        try:
            if self.latency:
                time.sleep(self.latency)
            self._dispatch(exchange)
        except _Drop:
            handler.close_connection = True
            with contextlib.suppress(OSError):
                handler.connection.shutdown(socket.SHUT_RDWR)
        finally:
            self._record(exchange)

    def _record(self, ex: _Exchange) -> None:
        auth = ex.handler.headers.get("Authorization")
        headers = tuple(
            (k, v) for k, v in ex.handler.headers.items() if k.lower() != "authorization"
        )
        record = RecordedRequest(
            method=ex.method,
            path=ex.path,
            query=ex.query,
            route=ex.route,
            headers=headers,
            had_bearer=bool(auth and auth.lower().startswith("bearer ")),
            had_authorization=auth is not None,
            received_at=ex.received_at,
            status=ex.status,
            retry_not_before=ex.retry_not_before,
            fault=ex.fault,
            body=ex.body.decode("utf-8", "replace") if ex.route in _BODY_ROUTES else None,
        )
        with self._log_lock:
            self._records.append(record)
            if self._request_log is not None:
                with self._request_log.open("a", encoding="utf-8") as handle:
                    handle.write(json.dumps(record.to_json()) + "\n")

    def _fired_fault(self, ex: _Exchange) -> Fault | None:
        for fault in list(self.faults):
            if fault.claim(ex.route, ex.path, ex.query):
                ex.fault = fault.kind.value
                return fault
        return None

    def _dispatch(self, ex: _Exchange) -> None:
        fault = self._fired_fault(ex)
        if fault is not None:
            if fault.kind is FaultKind.SLOW:
                time.sleep(fault.delay)
            elif fault.kind is FaultKind.DROP:
                raise _Drop
            elif fault.kind in (
                FaultKind.THROTTLE,
                FaultKind.UNAVAILABLE,
                FaultKind.GATEWAY_TIMEOUT,
                FaultKind.SERVER_ERROR,
            ):
                self._send_fault(ex, fault)
                return
        if ex.route in ("openid", "token", "devicecode"):
            self._identity(ex, fault)
        elif ex.route == "msi":
            self._managed_identity(ex)
        elif ex.route == "download":
            self._download(ex)
        elif ex.route == "unknown" or ex.match is None:
            segment = ex.path.rstrip("/").rsplit("/", 1)[-1]
            self._graph_error(
                ex, 400, "BadRequest", f"Resource not found for the segment '{segment}'."
            )
        elif not self._authorised(ex):
            return
        elif ex.route == "profiles":
            self._profiles(ex)
        elif ex.route == "states":
            self._states(ex)
        elif ex.route == "devices":
            self._devices(ex)
        elif ex.route == "export_create":
            self._export_create(ex, fault)
        elif ex.route == "export_list":
            self._export_list(ex)
        elif ex.route in cloudpki.ROUTES:
            self._cloud_pki(ex)
        elif ex.route in connector_routes.CONTEXTS:
            self._connectors(ex)
        else:
            self._export_status(ex, fault)

    # --- responses ----------------------------------------------------------------------------

    def _send(
        self,
        ex: _Exchange,
        status: int,
        body: bytes,
        content_type: str = JSON_TYPE,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        handler = ex.handler
        ex.status = status
        handler.send_response(status)
        handler.send_header("Content-Type", content_type)
        handler.send_header("Content-Length", str(len(body)))
        handler.send_header("request-id", ex.request_id)
        handler.send_header("client-request-id", ex.client_request_id)
        handler.send_header("x-ms-request-id", ex.request_id)
        handler.send_header("Cache-Control", "no-store, no-cache")
        for name, value in (headers or {}).items():
            handler.send_header(name, value)
        handler.end_headers()
        if ex.method != "HEAD":
            handler.wfile.write(body)
        handler.wfile.flush()

    def _json(
        self,
        ex: _Exchange,
        status: int,
        payload: Any,
        content_type: str = JSON_TYPE,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        body = json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
        self._send(ex, status, body, content_type, headers)

    def _graph_error(
        self,
        ex: _Exchange,
        status: int,
        code: str,
        message: str,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        payload = {
            "error": {
                "code": code,
                "message": message,
                "innerError": {
                    "date": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime()),
                    "request-id": ex.request_id,
                    "client-request-id": ex.client_request_id,
                },
            }
        }
        self._json(ex, status, payload, JSON_TYPE, headers)

    def _send_fault(self, ex: _Exchange, fault: Fault) -> None:
        headers: dict[str, str] = {}
        if (
            fault.kind in (FaultKind.THROTTLE, FaultKind.UNAVAILABLE)
            and fault.retry_after is not None
        ):
            now = time.time()
            if fault.retry_after_date:
                # An HTTP date has whole seconds; round up so the promise is never shortened.
                not_before = float(int(now + fault.retry_after) + 1)
                headers["Retry-After"] = _http_date(not_before)
            else:
                not_before = now + fault.retry_after
                headers["Retry-After"] = str(fault.retry_after)
            ex.retry_not_before = not_before
        status = _FAULT_STATUS[fault.kind]
        if ex.route in ("openid", "token", "devicecode"):
            self._entra_error(
                ex,
                status,
                "temporarily_unavailable",
                90033,
                "A transient error has occurred. Please try again.",
                headers,
            )
            return
        if fault.kind is FaultKind.THROTTLE:
            self._graph_error(
                ex,
                429,
                "TooManyRequests",
                "Too many requests, retry after some time.",
                headers,
            )
        elif fault.kind is FaultKind.UNAVAILABLE:
            self._graph_error(
                ex, 503, "ServiceUnavailable", "The service is temporarily unavailable.", headers
            )
        elif fault.kind is FaultKind.GATEWAY_TIMEOUT:
            self._graph_error(ex, 504, "GatewayTimeout", "The gateway did not receive a response.")
        else:
            self._graph_error(ex, 500, "InternalServerError", "An internal server error occurred.")

    # --- Entra ID -----------------------------------------------------------------------------

    def _entra_error(
        self,
        ex: _Exchange,
        status: int,
        error: str,
        code: int,
        description: str,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        trace, correlation = str(uuid.uuid4()), str(uuid.uuid4())
        stamp = time.strftime("%Y-%m-%d %H:%M:%SZ", time.gmtime())
        payload = {
            "error": error,
            "error_description": (
                f"AADSTS{code}: {description} Trace ID: {trace} "
                f"Correlation ID: {correlation} Timestamp: {stamp}"
            ),
            "error_codes": [code],
            "timestamp": stamp,
            "trace_id": trace,
            "correlation_id": correlation,
            "error_uri": f"{ex.base}/error?code={code}",
        }
        self._json(ex, status, payload, JSON_TYPE, headers)

    def _identity(self, ex: _Exchange, fault: Fault | None) -> None:
        assert ex.match is not None
        tenant = ex.match.group("tenant")
        if tenant.lower() != self.tenant_id.lower():
            self._entra_error(
                ex,
                400,
                "invalid_tenant" if ex.route == "openid" else "invalid_request",
                90002,
                f"Tenant '{tenant}' not found. Check to make sure you have the correct tenant ID "
                "and are signing into the correct cloud.",
            )
            return
        if ex.route == "openid":
            self._openid(ex)
            return
        form = {k: v[-1] for k, v in parse_qs(ex.body.decode("utf-8", "replace")).items()}
        if ex.route == "devicecode":
            self._device_code(ex, form)
        else:
            self._token(ex, form, fault)

    def _openid(self, ex: _Exchange) -> None:
        base = f"{ex.base}/{self.tenant_id}"
        self._json(
            ex,
            200,
            {
                "token_endpoint": f"{base}/oauth2/v2.0/token",
                "token_endpoint_auth_methods_supported": [
                    "client_secret_post",
                    "private_key_jwt",
                    "client_secret_basic",
                ],
                "jwks_uri": f"{base}/discovery/v2.0/keys",
                "response_modes_supported": ["query", "fragment", "form_post"],
                "subject_types_supported": ["pairwise"],
                "id_token_signing_alg_values_supported": ["RS256"],
                "response_types_supported": ["code", "id_token", "code id_token", "id_token token"],
                "scopes_supported": ["openid", "profile", "email", "offline_access"],
                "issuer": f"{base}/v2.0",
                "request_uri_parameter_supported": False,
                "userinfo_endpoint": f"{ex.base}/oidc/userinfo",
                "authorization_endpoint": f"{base}/oauth2/v2.0/authorize",
                "device_authorization_endpoint": f"{base}/oauth2/v2.0/devicecode",
                "http_logout_supported": True,
                "frontchannel_logout_supported": True,
                "end_session_endpoint": f"{base}/oauth2/v2.0/logout",
                "claims_supported": ["sub", "iss", "aud", "exp", "iat", "nonce", "tid", "oid"],
                "kerberos_endpoint": f"{base}/kerberos",
                "tenant_region_scope": "EU",
                "cloud_instance_name": "emulator.test",
                "cloud_graph_host_name": "graph.emulator.test",
                "msgraph_host": "graph.emulator.test",
            },
        )

    def _issue(self, lifetime: int | None = None) -> tuple[str, int]:
        """An opaque access token: never JWT-shaped, so nothing recorded can pass for one."""
        life = self.token_lifetime if lifetime is None else lifetime
        token = f"emu_at_{secrets.token_hex(24)}"
        with self._session_lock:
            self._session.access[token] = time.monotonic() + life
        return token, life

    def _token_payload(self, scope: str) -> dict[str, Any]:
        token, life = self._issue()
        return {
            "token_type": "Bearer",
            "expires_in": life,
            "ext_expires_in": life,
            "access_token": token,
            "scope": scope,
        }

    def _check_scope(self, ex: _Exchange, scope: str) -> bool:
        if any(s.endswith("/.default") for s in scope.split()):
            return True
        self._entra_error(
            ex,
            400,
            "invalid_scope",
            1002012,
            f"The provided value for scope {scope} is not valid. Client credential flows must "
            "have a scope value with /.default suffixed to the resource identifier "
            "(application ID URI).",
        )
        return False

    def _unknown_client(self, ex: _Exchange, client_id: str) -> None:
        self._entra_error(
            ex,
            400,
            "unauthorized_client",
            700016,
            f"Application with identifier '{client_id}' was not found in the directory "
            f"'{self.tenant_id}'. This can happen if the application has not been installed by "
            "the administrator of the tenant or consented to by any user in the tenant.",
        )

    def _token(self, ex: _Exchange, form: dict[str, str], fault: Fault | None) -> None:
        grant = form.get("grant_type", "")
        client_id = form.get("client_id", "")
        if grant == "refresh_token":
            self._refresh(ex, form)
            return
        if grant == DEVICE_CODE_GRANT:
            self._device_code_token(ex, form)
            return
        if grant != "client_credentials":
            self._entra_error(
                ex,
                400,
                "unsupported_grant_type",
                70003,
                f"The app requested an unsupported grant type '{grant}'.",
            )
            return
        if client_id != self.client_id:
            self._unknown_client(ex, client_id)
            return
        invalid_secret = fault is not None and fault.kind is FaultKind.INVALID_SECRET
        if "client_assertion" in form:
            problem = self._assertion_problem(form, ex.base)
            if problem:
                self._entra_error(ex, 401, "invalid_client", 700027, problem)
                return
        elif invalid_secret or not secrets.compare_digest(
            form.get("client_secret", "").encode(), self.client_secret.encode()
        ):
            self._entra_error(
                ex,
                401,
                "invalid_client",
                7000215,
                "Invalid client secret provided. Ensure the secret being sent in the request "
                "is the client secret value, not the client secret ID, for a secret added to "
                f"app '{self.client_id}'.",
            )
            return
        scope = form.get("scope", "")
        if self._check_scope(ex, scope):
            self._json(ex, 200, self._token_payload(scope))

    def _assertion_problem(self, form: Mapping[str, str], base: str) -> str | None:
        """Why a client assertion is unacceptable, or None; the signature is really checked."""
        if form.get("client_assertion_type") != ASSERTION_TYPE:
            return "The client_assertion_type is not supported."
        try:
            head_b64, claims_b64, sig_b64 = form["client_assertion"].split(".")
            header = json.loads(_b64url_decode(head_b64))
            claims = json.loads(_b64url_decode(claims_b64))
            signature = _b64url_decode(sig_b64)
        except (ValueError, KeyError):
            return "Client assertion is not a well-formed JWT."
        token_endpoint = f"{base}/{self.tenant_id}/oauth2/v2.0/token"
        if claims.get("aud") != token_endpoint:
            return f"Client assertion audience claim does not match '{token_endpoint}'."
        if claims.get("iss") != self.client_id or claims.get("sub") != self.client_id:
            return "Client assertion issuer and subject must be the client id."
        if not isinstance(claims.get("exp"), (int, float)) or claims["exp"] < time.time():
            return "Client assertion is expired."
        if self._certificate is None:
            return None
        der = self._certificate.public_bytes(encoding=serialization.Encoding.DER)
        thumbprints = {
            "x5t#S256": _b64url(_sha(der, hashes.SHA256())),
            "x5t": _b64url(_sha(der, hashes.SHA1())),
        }
        if not any(str(header.get(k, "")).rstrip("=") == v for k, v in thumbprints.items()):
            return (
                "The certificate with identifier used to sign the client assertion is not "
                "registered on application."
            )
        signed = f"{head_b64}.{claims_b64}".encode("ascii")
        key = self._certificate.public_key()
        try:
            if isinstance(key, rsa.RSAPublicKey) and header.get("alg") == "PS256":
                key.verify(
                    signature,
                    signed,
                    padding.PSS(padding.MGF1(hashes.SHA256()), padding.PSS.DIGEST_LENGTH),
                    hashes.SHA256(),
                )
            elif isinstance(key, rsa.RSAPublicKey) and header.get("alg") == "RS256":
                key.verify(signature, signed, padding.PKCS1v15(), hashes.SHA256())
            elif isinstance(key, ec.EllipticCurvePublicKey) and header.get("alg") == "ES256":
                half = len(signature) // 2
                der_sig = encode_dss_signature(
                    int.from_bytes(signature[:half], "big"), int.from_bytes(signature[half:], "big")
                )
                key.verify(der_sig, signed, ec.ECDSA(hashes.SHA256()))
            else:
                return f"Client assertion algorithm {header.get('alg')!r} is not supported."
        except InvalidSignature:
            return "Client assertion failed signature validation."
        return None

    def _device_code(self, ex: _Exchange, form: Mapping[str, str]) -> None:
        client_id = form.get("client_id", "")
        if client_id != self.client_id:
            self._unknown_client(ex, client_id)
            return
        device_code = f"emu_dc_{secrets.token_hex(24)}"
        user_code = secrets.token_hex(4).upper()
        with self._session_lock:
            self._session.device_flows[device_code] = _DeviceFlow(client_id, form.get("scope", ""))
        verification = f"{ex.base}/devicelogin"
        self._json(
            ex,
            200,
            {
                "user_code": user_code,
                "device_code": device_code,
                "verification_uri": verification,
                "expires_in": 900,
                "interval": self.device_code_interval,
                "message": f"To sign in, use a web browser to open the page {verification} "
                f"and enter the code {user_code} to authenticate.",
            },
        )

    def _user_tokens(self, scope: str, base: str) -> dict[str, Any]:
        """Access and refresh token plus the id_token and client_info msal needs for accounts."""
        payload = self._token_payload(scope)
        refresh = f"emu_rt_{secrets.token_hex(24)}"
        with self._session_lock:
            self._session.refresh[refresh] = scope
        now = int(time.time())
        user_oid = str(uuid.uuid5(uuid.NAMESPACE_URL, f"{self.tenant_id}/admin"))
        claims = {
            "aud": self.client_id,
            "iss": f"{base}/{self.tenant_id}/v2.0",
            "iat": now,
            "nbf": now,
            "exp": now + 3600,
            "name": "Emulator Admin",
            "oid": user_oid,
            "preferred_username": "admin@contoso.example",
            "sub": user_oid,
            "tid": self.tenant_id,
            "ver": "2.0",
        }
        header = {"typ": "JWT", "alg": "none"}
        payload["id_token"] = ".".join(
            (_b64url(json.dumps(header).encode()), _b64url(json.dumps(claims).encode()), "")
        )
        payload["client_info"] = _b64url(
            json.dumps({"uid": user_oid, "utid": self.tenant_id}).encode()
        )
        payload["refresh_token"] = refresh
        return payload

    def _device_code_token(self, ex: _Exchange, form: Mapping[str, str]) -> None:
        with self._session_lock:
            flow = self._session.device_flows.get(form.get("device_code", ""))
            if flow is not None:
                flow.polls += 1
        if flow is None:
            self._entra_error(
                ex,
                400,
                "expired_token",
                70020,
                "The provided value for the input parameter 'device_code' is not valid.",
            )
            return
        if flow.polls == 1:
            self._entra_error(
                ex,
                400,
                "authorization_pending",
                70016,
                "OAuth 2.0 device flow error. Authorization is pending. Continue polling.",
            )
            return
        with self._session_lock:
            self._session.device_flows.pop(form.get("device_code", ""), None)
        self._json(ex, 200, self._user_tokens(flow.scope, ex.base))

    def _refresh(self, ex: _Exchange, form: Mapping[str, str]) -> None:
        with self._session_lock:
            scope = self._session.refresh.pop(form.get("refresh_token", ""), None)
        if scope is None:
            self._entra_error(
                ex,
                400,
                "invalid_grant",
                9002313,
                "Invalid request. Request is malformed or invalid.",
            )
            return
        self._json(ex, 200, self._user_tokens(form.get("scope") or scope, ex.base))

    def _managed_identity(self, ex: _Exchange) -> None:
        resource = ex.params.get("resource", "")
        app_service = ex.path == "/msi/token"
        if app_service and ex.handler.headers.get("X-IDENTITY-HEADER") != self.identity_header:
            self._json(ex, 401, {"statusCode": 401, "message": "Unauthorized request"})
            return
        if not app_service and ex.handler.headers.get("Metadata") != "true":
            self._json(
                ex,
                400,
                {
                    "error": "invalid_request",
                    "error_description": "Required metadata header not specified",
                },
            )
            return
        if not resource:
            self._json(ex, 400, {"error": "invalid_resource", "error_description": "No resource"})
            return
        token, life = self._issue()
        expires_on = str(int(time.time()) + life)
        payload = {
            "access_token": token,
            "expires_on": expires_on,
            "resource": resource,
            "token_type": "Bearer",
        }
        if not app_service:
            payload["expires_in"] = str(life)
        self._json(ex, 200, payload)

    # --- Graph --------------------------------------------------------------------------------

    def _authorised(self, ex: _Exchange) -> bool:
        auth = ex.handler.headers.get("Authorization") or ""
        scheme, _, token = auth.partition(" ")
        challenge = {"WWW-Authenticate": 'Bearer realm="", error="invalid_token"'}
        if scheme.lower() != "bearer" or not token:
            self._graph_error(
                ex, 401, "InvalidAuthenticationToken", "Access token is empty.", challenge
            )
            return False
        with self._session_lock:
            expiry = self._session.access.get(token)
        if expiry is None:
            self._graph_error(
                ex, 401, "InvalidAuthenticationToken", "Access token validation failure.", challenge
            )
            return False
        if expiry <= time.monotonic():
            self._graph_error(
                ex,
                401,
                "InvalidAuthenticationToken",
                "Lifetime validation failed, the token is expired.",
                challenge,
            )
            return False
        return True

    def _selection(
        self, ex: _Exchange, known: frozenset[str], sample: list[dict[str, Any]]
    ) -> list[str] | None:
        """The ``$select``ed properties, or None for all; unknown names are a 400 as in Graph."""
        raw = ex.params.get("$select")
        if raw is None:
            return None
        names = [n.strip().rsplit("/", 1)[-1] for n in raw.split(",") if n.strip()]
        allowed = known | {k for item in sample for k in item}
        unknown = [n for n in names if n not in allowed]
        if unknown:
            self._graph_error(
                ex, 400, "BadRequest", f"Could not find a property named '{unknown[0]}' on type."
            )
            raise _Answered
        return names

    def _page(
        self,
        ex: _Exchange,
        total: int,
        fetch: Any,
        known: frozenset[str],
        context: str,
    ) -> None:
        try:
            size = self._page_size(ex)
            offset = self._offset(ex)
            items: list[dict[str, Any]] = fetch(offset, offset + size)
            names = self._selection(ex, known, items)
        except _Answered:
            return
        if names is not None:
            keep = set(names) | {"@odata.type"}
            items = [{k: v for k, v in item.items() if k in keep} for item in items]
        payload: dict[str, Any] = {"@odata.context": f"{ex.base}/{context}", "value": items}
        if offset + size < total:
            pairs = [(k, v) for k, v in parse_qs(ex.query).items() if k != "$skiptoken"]
            flat = [(k, v[-1]) for k, v in pairs]
            flat.append(("$skiptoken", _b64url(f"emulator:{offset + size}".encode())))
            query = urlencode(flat, quote_via=quote, safe="$,'()")
            base = ex.base
            if ex.fault == FaultKind.NEXT_LINK_CONTROL.value:
                base = base.replace("://", "://graph\t", 1)
            payload["@odata.nextLink"] = f"{base}{ex.path}?{query}"
        self._json(ex, 200, payload, GRAPH_JSON)

    def _page_size(self, ex: _Exchange) -> int:
        raw = ex.params.get("$top")
        if raw is None:
            return self.page_size
        try:
            top = int(raw)
        except ValueError:
            top = 0
        if top < 1:
            self._graph_error(ex, 400, "BadRequest", f"Invalid value '{raw}' for $top.")
            raise _Answered
        return min(top, self.max_page_size)

    def _offset(self, ex: _Exchange) -> int:
        token = ex.params.get("$skiptoken")
        if token is None:
            return 0
        try:
            prefix, _, number = _b64url_decode(token).decode("ascii").partition(":")
            if prefix != "emulator":
                raise ValueError(token)
            return int(number)
        except ValueError:
            self._graph_error(ex, 400, "BadRequest", "The $skiptoken is invalid.")
            raise _Answered from None

    def _profiles(self, ex: _Exchange) -> None:
        profiles = self.data.profiles
        self._page(
            ex,
            len(profiles),
            lambda start, stop: profiles[start:stop],
            PROFILE_PROPERTIES,
            "beta/$metadata#deviceManagement/deviceConfigurations",
        )

    def _states(self, ex: _Exchange) -> None:
        assert ex.match is not None
        profile_id, cast = ex.match.group("id"), ex.match.group("type")
        profile = self.data.profile(profile_id)
        if profile is None:
            self._graph_error(
                ex, 404, "ResourceNotFound", f"Resource with id '{profile_id}' was not found."
            )
            return
        if profile.get("@odata.type") != f"#microsoft.graph.{cast}":
            self._graph_error(
                ex,
                400,
                "BadRequest",
                f"The type 'microsoft.graph.{cast}' does not match the type of the resource.",
            )
            return
        self._page(
            ex,
            self.data.state_count(profile_id),
            lambda start, stop: self.data.states(profile_id, start, stop),
            STATE_PROPERTIES,
            f"beta/$metadata#deviceManagement/deviceConfigurations('{profile_id}')"
            f"/microsoft.graph.{cast}/managedDeviceCertificateStates",
        )

    def _devices(self, ex: _Exchange) -> None:
        version = ex.path.split("/")[1]
        self._page(
            ex,
            self.data.device_count(),
            self.data.devices,
            DEVICE_PROPERTIES,
            f"{version}/$metadata#deviceManagement/managedDevices",
        )

    def _cloud_pki(self, ex: _Exchange) -> None:
        pki = self.cloud_pki
        if pki.forbidden is not None:
            self._graph_error(ex, 403, "Forbidden", pki.forbidden_message())
            return
        if ex.route == "cloud_pki_cas":
            items, known, context = pki.cas, cloudpki.CA_PROPERTIES, "cloudCertificationAuthority"
        else:
            items, known = pki.leaves, cloudpki.LEAF_PROPERTIES
            context = "cloudCertificationAuthorityLeafCertificate"
            if ex.route == "cloud_pki_ca_leaves":
                assert ex.match is not None
                ca_id = ex.match.group("id")
                if pki.ca(ca_id) is None:
                    self._graph_error(
                        ex, 404, "ResourceNotFound", f"Resource with id '{ca_id}' was not found."
                    )
                    return
                items = pki.leaves_of(ca_id)
                context = f"cloudCertificationAuthority('{ca_id}')/{context}"
        self._page(
            ex,
            len(items),
            lambda start, stop: items[start:stop],
            known,
            cloudpki.CONTEXT + context,
        )

    def _connectors(self, ex: _Exchange) -> None:
        status = self.connectors.status
        if status != 200:
            code = "Forbidden" if status == 403 else "ResourceNotFound"
            self._graph_error(ex, status, code, f"{code} for the connector list.")
            return
        now = self.connectors.now()
        served = None
        if self._connector_snapshot is not None:
            served = connector_routes.from_snapshot(self._connector_snapshot, now)
        if served is None:
            served = connector_routes.generated(now, stale=False)
        items = list(served[ex.route])
        if self.connectors.stale and ex.route == connector_routes.NDES_ROUTE:
            items += connector_routes.generated(now, stale=True)[ex.route][1:]
        self._page(
            ex,
            len(items),
            lambda start, stop: items[start:stop],
            frozenset(k for item in items for k in item),
            connector_routes.CONTEXTS[ex.route],
        )

    # --- report export ------------------------------------------------------------------------

    def _job_json(self, base: str, job: _ExportJob, status: str, url: str | None) -> dict[str, Any]:
        requested = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(job.requested))
        expires = (
            time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(job.requested + 3600))
            if url
            else "0001-01-01T00:00:00Z"
        )
        return {
            "@odata.context": f"{base}/beta/$metadata#deviceManagement/reports/exportJobs/$entity",
            "id": job.id,
            "reportName": job.report_name,
            "filter": job.filter,
            "select": job.select,
            "format": "csv",
            "snapshotId": None,
            "localizationType": job.localization,
            "status": status,
            "url": url,
            "requestDateTime": requested,
            "expirationDateTime": expires,
        }

    def _export_create(self, ex: _Exchange, fault: Fault | None) -> None:
        try:
            body = json.loads(ex.body or b"{}")
        except json.JSONDecodeError:
            self._graph_error(ex, 400, "BadRequest", "The request body is not valid JSON.")
            return
        if not isinstance(body, dict):
            self._graph_error(ex, 400, "BadRequest", "The request body must be an object.")
            return
        name = body.get("reportName")
        if name not in REPORT_NAMES:
            self._graph_error(ex, 400, "BadRequest", f"Invalid report name '{name}'.")
            return
        select = body.get("select") or sorted(self.report_columns)
        if not isinstance(select, list):
            self._graph_error(ex, 400, "BadRequest", "select must be an array of column names.")
            return
        unknown = [c for c in select if c not in self.report_columns]
        if unknown:
            self._graph_error(ex, 400, "BadRequest", f"Invalid select column(s): {unknown}.")
            return
        if body.get("format", "csv") != "csv":
            self._graph_error(ex, 400, "BadRequest", "The emulator only exports csv.")
            return
        localization = str(body.get("localizationType") or LOCALIZATION_TYPES[0])
        if localization not in LOCALIZATION_TYPES:
            self._graph_error(ex, 400, "BadRequest", f"Invalid localizationType '{localization}'.")
            return
        policy_filter = body.get("filter")
        if policy_filter is not None and (
            not isinstance(policy_filter, str) or not _POLICY_FILTER.match(policy_filter)
        ):
            self._graph_error(ex, 400, "BadRequest", f"Invalid filter '{policy_filter}'.")
            return
        required = fault is not None and fault.kind is FaultKind.POLICY_FILTER_REQUIRED
        if required and policy_filter is None:
            self._graph_error(
                ex, 400, "BadRequest", f"Report '{name}' requires a filter on PolicyId."
            )
            return
        job = _ExportJob(
            id=f"{name}_{uuid.uuid4()}",
            report_name=str(name),
            select=[str(c) for c in select],
            filter=policy_filter,
            localization=localization,
            requested=time.time(),
            polls=self.export_polls,
            signature=secrets.token_urlsafe(24),
        )
        with self._session_lock:
            self._session.jobs[job.id] = job
        self._json(ex, 201, self._job_json(ex.base, job, "notStarted", None), GRAPH_JSON)

    def _export_list(self, ex: _Exchange) -> None:
        with self._session_lock:
            jobs = list(self._session.jobs.values())
        value = [self._job_json(ex.base, job, "inProgress", None) for job in jobs]
        payload = {
            "@odata.context": f"{ex.base}/beta/$metadata#deviceManagement/reports/exportJobs",
            "value": value[: self._page_size(ex)],
        }
        self._json(ex, 200, payload, GRAPH_JSON)

    def _export_status(self, ex: _Exchange, fault: Fault | None) -> None:
        assert ex.match is not None
        job_id = ex.match.group("id") or ex.match.group("id2")
        with self._session_lock:
            job = self._session.jobs.get(job_id)
            if job is not None:
                job.polls -= 1
                if fault is not None and fault.kind is FaultKind.EXPORT_FAILED:
                    job.failed = True
        if job is None:
            self._graph_error(ex, 404, "ResourceNotFound", f"Export job '{job_id}' not found.")
            return
        if job.failed:
            self._json(ex, 200, self._job_json(ex.base, job, "failed", None), GRAPH_JSON)
            return
        if job.polls >= 0:
            self._json(ex, 200, self._job_json(ex.base, job, "inProgress", None), GRAPH_JSON)
            return
        if job.archive is None:
            job.archive = self._archive(job)
        expiry = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() + 3600))
        query = urlencode(
            {"sv": "2019-02-02", "sr": "b", "sig": job.signature, "se": expiry, "sp": "r"}
        )
        url = f"{ex.base}/blob/reports/{job.id}.zip?{query}"
        self._json(ex, 200, self._job_json(ex.base, job, "completed", url), GRAPH_JSON)

    def _archive(self, job: _ExportJob) -> bytes:
        """The CSV as Graph shapes it: with LocalizedValuesAsAdditionalColumn (the default) an
        enum column holds its numeric code and ``<Column>_loc`` follows it with the text.
        ``report_loc=False`` leaves the ``_loc`` column out, as one public probe observed."""
        additional = job.localization == LOCALIZATION_TYPES[0]
        loc = additional and self.report_loc
        header: list[str] = []
        for column in job.select:
            header.append(column)
            if loc and column in REPORT_ENUM_COLUMNS:
                header.append(f"{column}_loc")
        text = io.StringIO()
        writer = csv.writer(text, lineterminator="\r\n")
        writer.writerow(header)
        for row in self._report_rows(job):
            cells: list[str] = []
            for column in job.select:
                value = "" if row.get(column) is None else str(row.get(column))
                if additional and column in REPORT_ENUM_COLUMNS:
                    cells.append(REPORT_STATUS_CODES.get(value, "0"))
                    cells += [value] if loc else []
                else:
                    cells.append(value)
            writer.writerow(cells)
        data = text.getvalue().encode("utf-8-sig" if self.report_bom else "utf-8")
        buffer = io.BytesIO()
        with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
            archive.writestr(f"{job.id}.csv", data)
        return buffer.getvalue()

    def _report_rows(self, job: _ExportJob) -> Iterator[Mapping[str, Any]]:
        matched = _POLICY_FILTER.match(job.filter or "")
        if matched is None:
            return self.data.report_rows()
        policy = matched.group(1).replace("''", "'")
        return (row for row in self.data.report_rows() if row.get("PolicyId") == policy)

    def _download(self, ex: _Exchange) -> None:
        headers = {"x-ms-version": "2019-02-02"}
        if ex.handler.headers.get("Authorization") is not None:
            # Azure Blob refuses a SAS request that also carries a Graph bearer token.
            self._send(
                ex,
                403,
                _blob_error("AuthenticationFailed", "Authorization header and SAS both given."),
                "application/xml",
                headers,
            )
            return
        assert ex.match is not None
        with self._session_lock:
            job = self._session.jobs.get(ex.match.group("name"))
        if job is None or job.archive is None:
            self._send(
                ex,
                404,
                _blob_error("BlobNotFound", "The specified blob does not exist."),
                "application/xml",
                headers,
            )
            return
        if not secrets.compare_digest(ex.params.get("sig", ""), job.signature):
            self._send(
                ex,
                403,
                _blob_error("AuthenticationFailed", "Signature did not match."),
                "application/xml",
                headers,
            )
            return
        self._send(ex, 200, job.archive, "application/x-zip-compressed", headers)


_FAULT_STATUS = {
    FaultKind.THROTTLE: 429,
    FaultKind.UNAVAILABLE: 503,
    FaultKind.GATEWAY_TIMEOUT: 504,
    FaultKind.SERVER_ERROR: 500,
}


class _Answered(Exception):
    """An error response has already been sent."""


def _sha(data: bytes, algorithm: hashes.HashAlgorithm) -> bytes:
    digest = hashes.Hash(algorithm)
    digest.update(data)
    return digest.finalize()


def _blob_error(code: str, message: str) -> bytes:
    return (
        '<?xml version="1.0" encoding="utf-8"?>'
        f"<Error><Code>{code}</Code><Message>{message}</Message></Error>"
    ).encode()
