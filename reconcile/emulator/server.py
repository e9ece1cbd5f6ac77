"""A local stand-in for Entra ID and Microsoft Graph over real HTTPS.

It speaks enough of both for the real msal and httpx stack to run unmodified: OIDC discovery,
the token endpoint (client secret, client assertion, device code, refresh token), a managed
identity endpoint, the Intune collections with real ``@odata.nextLink`` paging, the report
export job flow and a blob-style download. Every request is recorded so tests can check what a
client did, not only what it got.

This module routes requests and injects faults; the parts answer: ``httpserver`` (sockets,
exchanges, the request log), ``entra`` (sign-in), ``collections`` (paged Graph collections) and
``exports`` (report export jobs).
"""

from __future__ import annotations

import contextlib
import json
import logging
import re
import secrets
import socket
import ssl
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from urllib.parse import parse_qs, unquote, urlsplit

from cryptography import x509

from reconcile.emulator import cloudpki
from reconcile.emulator import connectors as connector_routes
from reconcile.emulator.collections import ROUTES as COLLECTION_ROUTES
from reconcile.emulator.collections import Collections
from reconcile.emulator.connectors import ConnectorSwitch
from reconcile.emulator.entra import IDENTITY_ROUTES, Entra, entra_error
from reconcile.emulator.entra import ROUTES as ENTRA_ROUTES
from reconcile.emulator.exports import BODY_ROUTES, Exports
from reconcile.emulator.exports import ROUTES as EXPORT_ROUTES
from reconcile.emulator.faults import Fault, FaultKind
from reconcile.emulator.httpserver import (
    Drop,
    Exchange,
    Handler,
    RecordedRequest,
    Server,
    http_date,
    retry_after_violations,
)
from reconcile.emulator.tenant import REPORT_ALL_COLUMNS, GeneratedTenant, SnapshotTenant, Tenant
from reconcile.emulator.tls import create_server_certificate

__all__ = [
    "DEFAULT_CLIENT_ID",
    "DEFAULT_TENANT_ID",
    "GraphEmulator",
    "RecordedRequest",
    "retry_after_violations",
]

log = logging.getLogger("reconcile.emulator")

DEFAULT_TENANT_ID = "8d3f0e7c-5b1a-4c2e-9f6d-0a1b2c3d4e5f"
DEFAULT_CLIENT_ID = "3c9a7b51-2e4d-4f8a-b6c1-9d0e1f2a3b4c"

_ROUTES: tuple[tuple[str, str, re.Pattern[str]], ...] = tuple(
    (method, name, re.compile(pattern))
    for method, name, pattern in (
        *ENTRA_ROUTES,
        *COLLECTION_ROUTES,
        *EXPORT_ROUTES,
        *cloudpki.PATTERNS,
        *connector_routes.ROUTES,
    )
)
_FAULT_STATUS = {
    FaultKind.THROTTLE: 429,
    FaultKind.UNAVAILABLE: 503,
    FaultKind.GATEWAY_TIMEOUT: 504,
    FaultKind.SERVER_ERROR: 500,
}


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
        clock_offset: float = 0.0,
    ):
        if data is None:
            if snapshot_dir is not None:
                data = SnapshotTenant(snapshot_dir)
            else:
                data = GeneratedTenant(generated if generated is not None else 100)
        if page_size < 1 or max_page_size < page_size:
            raise ValueError("need 1 <= page_size <= max_page_size")
        # An unset secret is a random one, so no fixed secret ever stands in the tree.
        secret = client_secret or f"emu~{secrets.token_urlsafe(24)}"
        self.entra = Entra(
            tenant_id=tenant,
            client_id=client_id,
            client_secret=secret,
            certificate=(
                x509.load_pem_x509_certificate(client_certificate) if client_certificate else None
            ),
            token_lifetime=token_lifetime,
            device_code_interval=device_code_interval,
        )
        self.data = data
        if cloud_pki is None:
            cloud_pki = (
                cloudpki.CloudPki.from_snapshot(snapshot_dir)
                if snapshot_dir is not None
                else cloudpki.CloudPki()
            )
        self.cloud_pki = cloud_pki
        self.connectors = connectors or ConnectorSwitch()
        self.faults: list[Fault] = list(faults)
        self.latency = latency
        self.clock_offset = clock_offset
        self.collections = Collections(
            self, page_size=page_size, max_page_size=max_page_size, connector_snapshot=snapshot_dir
        )
        self.exports = Exports(
            self,
            page_size=self.collections.page_size,
            polls=export_polls,
            columns=(
                frozenset(report_columns) if report_columns is not None else REPORT_ALL_COLUMNS
            ),
            bom=report_bom,
            loc=report_loc,
        )
        self._host = host
        self._port = port
        self._request_log = request_log
        self._log_lock = threading.Lock()
        self._records: list[RecordedRequest] = []
        self._tmp: tempfile.TemporaryDirectory[str] | None = None
        self._server: Server | None = None
        self._thread: threading.Thread | None = None
        self.ca_bundle = Path()
        self._routes: dict[str, Callable[[Exchange, Fault | None], None]] = {
            "openid": self.entra.identity,
            "token": self.entra.identity,
            "devicecode": self.entra.identity,
            "export_create": self.exports.create_job,
            "export_status": self.exports.job_status,
        }
        graph: dict[str, Callable[[Exchange], None]] = {
            **self.collections.handlers(),
            "export_list": self.exports.list_jobs,
        }
        self._routes.update({name: _fault_free(answer) for name, answer in graph.items()})

    @property
    def tenant_id(self) -> str:
        return self.entra.tenant_id

    @property
    def client_id(self) -> str:
        return self.entra.client_id

    @property
    def client_secret(self) -> str:
        return self.entra.client_secret

    @property
    def identity_header(self) -> str:
        return self.entra.identity_header

    @property
    def token_lifetime(self) -> int:
        return self.entra.token_lifetime

    @token_lifetime.setter
    def token_lifetime(self, seconds: int) -> None:
        self.entra.token_lifetime = seconds

    @property
    def device_code_interval(self) -> int:
        return self.entra.device_code_interval

    @device_code_interval.setter
    def device_code_interval(self, seconds: int) -> None:
        self.entra.device_code_interval = seconds

    @property
    def page_size(self) -> int:
        return self.collections.page_size_default

    @property
    def max_page_size(self) -> int:
        return self.collections.max_page_size

    # --- lifecycle ----------------------------------------------------------------------------

    def start(self) -> GraphEmulator:
        self._tmp = tempfile.TemporaryDirectory(prefix="reconcile-emulator-")
        hosts = (self._host, "localhost") if self._host != "localhost" else ("localhost",)
        cert = create_server_certificate(Path(self._tmp.name), hosts)
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.minimum_version = ssl.TLSVersion.TLSv1_2
        ctx.load_cert_chain(cert.cert_file, cert.key_file)
        self.ca_bundle = cert.ca_bundle
        self._server = Server((self._host, self._port), self._handle, ctx, self.clock_offset)
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

    # --- dispatch -----------------------------------------------------------------------------

    def _handle(self, handler: Handler) -> None:
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
        exchange = Exchange(
            handler, handler.command, path, split.query, params, body, route, match, received_at
        )
        exchange.on_answer = self._record
        try:
            if self.latency:
                time.sleep(self.latency)
            self._dispatch(exchange)
        except Drop:
            handler.close_connection = True
            with contextlib.suppress(OSError):
                handler.connection.shutdown(socket.SHUT_RDWR)
        finally:
            exchange.settle()

    def _record(self, ex: Exchange) -> None:
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
            request_id=ex.request_id if ex.status else None,
            body=ex.body.decode("utf-8", "replace") if ex.route in BODY_ROUTES else None,
        )
        with self._log_lock:
            self._records.append(record)
            if self._request_log is not None:
                with self._request_log.open("a", encoding="utf-8") as handle:
                    handle.write(json.dumps(record.to_json()) + "\n")

    def _fired_fault(self, ex: Exchange) -> Fault | None:
        for fault in list(self.faults):
            if fault.claim(ex.route, ex.path, ex.query):
                ex.fault = fault.kind.value
                return fault
        return None

    def _dispatch(self, ex: Exchange) -> None:
        """Faults first; then sign-in and the SAS download, which need no bearer; then Graph."""
        fault = self._fired_fault(ex)
        if fault is not None:
            if fault.kind is FaultKind.SLOW:
                time.sleep(fault.delay)
            elif fault.kind is FaultKind.DROP:
                raise Drop
            elif fault.kind in _FAULT_STATUS:
                self._send_fault(ex, fault)
                return
            elif fault.kind is FaultKind.FORBIDDEN:
                ex.graph_error(
                    403,
                    "Forbidden",
                    "Application is not authorized to perform this operation. Application must "
                    "have one of the following scopes: DeviceManagementManagedDevices.Read.All, "
                    "DeviceManagementConfiguration.Read.All",
                )
                return
        if ex.route == "msi":
            self.entra.managed_identity(ex)
        elif ex.route == "download":
            self.exports.download(ex)
        elif ex.route == "unknown" or ex.match is None:
            segment = ex.path.rstrip("/").rsplit("/", 1)[-1]
            ex.graph_error(400, "BadRequest", f"Resource not found for the segment '{segment}'.")
        elif ex.route in IDENTITY_ROUTES or self.entra.authorised(ex):
            self._routes[ex.route](ex, fault)

    def _send_fault(self, ex: Exchange, fault: Fault) -> None:
        headers: dict[str, str] = {}
        if (
            fault.kind in (FaultKind.THROTTLE, FaultKind.UNAVAILABLE)
            and fault.retry_after is not None
        ):
            now = time.time()
            if fault.retry_after_date:
                # An HTTP date has whole seconds; round up so the promise is never shortened.
                not_before = float(int(now + fault.retry_after) + 1)
                headers["Retry-After"] = http_date(not_before)
            else:
                not_before = now + fault.retry_after
                headers["Retry-After"] = str(fault.retry_after)
            ex.retry_not_before = not_before
        status = _FAULT_STATUS[fault.kind]
        if ex.route in IDENTITY_ROUTES:
            entra_error(
                ex,
                status,
                "temporarily_unavailable",
                90033,
                "A transient error has occurred. Please try again.",
                headers,
            )
            return
        if fault.kind is FaultKind.THROTTLE:
            ex.graph_error(
                429, "TooManyRequests", "Too many requests, retry after some time.", headers
            )
        elif fault.kind is FaultKind.UNAVAILABLE:
            ex.graph_error(
                503, "ServiceUnavailable", "The service is temporarily unavailable.", headers
            )
        elif fault.kind is FaultKind.GATEWAY_TIMEOUT:
            ex.graph_error(504, "GatewayTimeout", "The gateway did not receive a response.")
        else:
            ex.graph_error(500, "InternalServerError", "An internal server error occurred.")


def _fault_free(answer: Callable[[Exchange], None]) -> Callable[[Exchange, Fault | None], None]:
    """A route whose answer no fault kind changes (only the dispatcher's own faults apply)."""
    return lambda ex, _fault: answer(ex)
