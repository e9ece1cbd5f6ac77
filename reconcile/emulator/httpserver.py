"""The emulator's HTTP plumbing: TLS sockets, one exchange per request, Graph-shaped answers.

Nothing here knows Entra ID or Graph resources; the sign-in, collection and export parts answer
through an ``Exchange`` and the server records every request as a ``RecordedRequest``.
"""

from __future__ import annotations

import base64
import contextlib
import email.utils
import json
import logging
import re
import socket
import ssl
import threading
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs

log = logging.getLogger("reconcile.emulator")

JSON_TYPE = "application/json; charset=utf-8"
GRAPH_JSON = "application/json;odata.metadata=minimal;odata.streaming=true;charset=utf-8"
_HOST = re.compile(r"[A-Za-z0-9.\-]+(:\d{1,5})?|\[[0-9A-Fa-f:.]+\](:\d{1,5})?")


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
    request_id: str | None = None
    """The ``request-id`` the answer carried (None when the connection was dropped)."""
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
            "request_id": self.request_id,
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
            request_id=obj.get("request_id"),
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


class Drop(Exception):
    """Close the connection without an answer."""


class Answered(Exception):
    """An error response has already been sent."""


def b64url_decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def http_date(epoch: float) -> str:
    return email.utils.formatdate(epoch, usegmt=True)


class Server(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False
    request_queue_size = 64

    def __init__(
        self,
        address: tuple[str, int],
        handle: Callable[[Handler], None],
        ctx: ssl.SSLContext,
        clock_offset: float = 0.0,
    ):
        self.handle = handle
        self.clock_offset = clock_offset
        self.ssl_context = ctx
        self.connections: set[socket.socket] = set()
        self.connections_lock = threading.Lock()
        super().__init__(address, Handler)
        self.base_url = f"https://{address[0]}:{self.server_address[1]}"

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


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "reconcile-emulator"
    sys_version = ""
    timeout = 30
    server: Server

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("emulator: " + format, *args)

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        """Without the query string: it carries the export's SAS signature."""
        path = self.path.split("?", 1)[0]
        log.debug("emulator: %s %s -> %s", self.command, path, code)

    def date_time_string(self, timestamp: float | None = None) -> str:
        """The Date header, off by the emulator's ``clock_offset`` (a skewed Graph clock)."""
        now = time.time() + self.server.clock_offset if timestamp is None else timestamp
        return super().date_time_string(now)

    def do_GET(self) -> None:
        self.server.handle(self)

    def do_POST(self) -> None:
        self.server.handle(self)

    def do_PATCH(self) -> None:
        self.server.handle(self)

    def do_DELETE(self) -> None:
        self.server.handle(self)


@dataclass
class Exchange:
    """The request being answered and what the emulator decided about it."""

    handler: Handler
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
    on_answer: Callable[[Exchange], None] | None = None
    """Called once, just before the answer goes out (or when there is none): a client that has
    its answer always finds the request in the log."""

    def settle(self) -> None:
        if self.on_answer is not None:
            answer, self.on_answer = self.on_answer, None
            answer(self)

    @property
    def base(self) -> str:
        """The origin the client addressed, so links survive a host-rewriting proxy."""
        host = self.handler.headers.get("Host") or ""
        if _HOST.fullmatch(host):
            return f"https://{host}"
        return self.handler.server.base_url

    @property
    def client_request_id(self) -> str:
        return self.handler.headers.get("client-request-id") or str(uuid.uuid4())

    def header(self, name: str) -> str | None:
        return self.handler.headers.get(name)

    def send(
        self,
        status: int,
        body: bytes,
        content_type: str = JSON_TYPE,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        handler = self.handler
        self.status = status
        self.settle()
        handler.send_response(status)
        handler.send_header("Content-Type", content_type)
        handler.send_header("Content-Length", str(len(body)))
        handler.send_header("request-id", self.request_id)
        handler.send_header("client-request-id", self.client_request_id)
        handler.send_header("x-ms-request-id", self.request_id)
        handler.send_header("Cache-Control", "no-store, no-cache")
        for name, value in (headers or {}).items():
            handler.send_header(name, value)
        handler.end_headers()
        if self.method != "HEAD":
            handler.wfile.write(body)
        handler.wfile.flush()

    def json(
        self,
        status: int,
        payload: Any,
        content_type: str = JSON_TYPE,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        body = json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
        self.send(status, body, content_type, headers)

    def graph_error(
        self,
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
                    "request-id": self.request_id,
                    "client-request-id": self.client_request_id,
                },
            }
        }
        self.json(status, payload, JSON_TYPE, headers)
