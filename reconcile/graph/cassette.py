"""Record what reconcile exchanged with Entra ID and Graph as a scrubbed vcrpy cassette.

For bug reports: a user runs ``reconcile fetch --record-cassette PATH`` against their tenant and
attaches the file, which replays with vcrpy / pytest-recording (vcrpy 9 httpx format). It holds
no credentials: Authorization and cookies are dropped, client secrets and assertions removed
from request bodies, tokens replaced by ``REDACTED``, SAS signatures (``sig=``) redacted, and
anything JWT-shaped replaced as a last resort. Device and user names can be pseudonymised.

The YAML is written here, without PyYAML (a test-only dependency), as the subset vcrpy reads:
block mappings with sorted keys, double-quoted strings, ``!!binary`` for non-text bodies.
Interactions are streamed to disk as they complete, so recording a large tenant stays flat in
memory; the file appears under its name only when the client closes the transport.
"""

from __future__ import annotations

import base64
import csv
import hashlib
import hmac
import io
import json
import os
import re
import secrets
import ssl
import tempfile
import threading
import urllib.request
import zipfile
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlencode

import httpx

REDACTED = "REDACTED"
DROP_REQUEST_HEADERS = frozenset(
    {"authorization", "proxy-authorization", "cookie", "x-identity-header"}
)
DROP_RESPONSE_HEADERS = frozenset({"set-cookie"})
# Removed from form and JSON request bodies (vcrpy's filter_post_data_parameters removes too).
DROP_BODY_FIELDS = frozenset({"client_secret", "client_assertion", "password"})
# Replaced by REDACTED wherever they appear as a key in a form or JSON body.
TOKEN_FIELDS = frozenset(
    {"access_token", "refresh_token", "id_token", "device_code", "code", "code_verifier"}
)
PSEUDONYMISED_FIELDS = frozenset(
    {
        "deviceDisplayName",
        "deviceName",
        "managedDeviceName",
        "managedDeviceDisplayName",
        "userDisplayName",
        "userPrincipalName",
        "userName",
        "emailAddress",
        "UPN",
        "DeviceName",
        "UserName",
        "UserDisplayName",
    }
)
_SIG = re.compile(r"(?i)((?:^|[?&;]|\\u0026)sig=)[^&\s\"'<>\\]+")
_JWT = re.compile(r"eyJ[A-Za-z0-9_-]{4,}\.eyJ[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]*")
_BEARER = re.compile(r"(?i)(bearer\s+)[A-Za-z0-9._~+/=-]{8,}")
_PLAIN_KEY = re.compile(r"[A-Za-z][A-Za-z0-9_-]*")
_YAML_WORDS = frozenset({"y", "n", "yes", "no", "on", "off", "true", "false", "null"})


def scrub_text(text: str) -> str:
    """Redact SAS signatures, bearer tokens and JWTs inside any string."""
    text = _SIG.sub(lambda m: m.group(1) + REDACTED, text)
    text = _BEARER.sub(lambda m: m.group(1) + REDACTED, text)
    return _JWT.sub(REDACTED, text)


class Pseudonymiser:
    """Stable within one recording (joins still work), unlinkable across recordings: the
    HMAC key is random per instance and never written, so short names cannot be brute-forced."""

    def __init__(self) -> None:
        self._key = secrets.token_bytes(32)

    def __call__(self, field: str, value: str) -> str:
        if not value:
            return value
        digest = hmac.new(self._key, value.casefold().encode(), hashlib.sha256).hexdigest()[:12]
        if "@" in value:
            return f"user-{digest}@pseudonym.invalid"
        if field.lower().startswith("device") or "device" in field.lower():
            return f"device-{digest}"
        return f"user-{digest}"


def _walk(value: Any, pseudonymise: Pseudonymiser | None) -> Any:
    if isinstance(value, dict):
        result: dict[str, Any] = {}
        for key, item in value.items():
            if key in DROP_BODY_FIELDS:
                continue
            if key in TOKEN_FIELDS and isinstance(item, str):
                result[key] = REDACTED
            elif pseudonymise and key in PSEUDONYMISED_FIELDS and isinstance(item, str):
                result[key] = pseudonymise(key, item)
            else:
                result[key] = _walk(item, pseudonymise)
        return result
    if isinstance(value, list):
        return [_walk(item, pseudonymise) for item in value]
    if isinstance(value, str):
        return scrub_text(value)
    return value


def _scrub_json(body: bytes, pseudonymise: Pseudonymiser | None) -> bytes | None:
    try:
        payload = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        return None
    return json.dumps(
        _walk(payload, pseudonymise), ensure_ascii=False, separators=(",", ":")
    ).encode()


def _scrub_form(body: bytes) -> bytes | None:
    try:
        text = body.decode("ascii")
    except UnicodeDecodeError:
        return None
    if "=" not in text or any(c in text for c in ' {}[]"\n'):
        return None
    pairs = parse_qsl(text, keep_blank_values=True)
    kept = [
        (k, REDACTED if k in TOKEN_FIELDS else scrub_text(v))
        for k, v in pairs
        if k not in DROP_BODY_FIELDS
    ]
    return urlencode(kept).encode()


def _scrub_zip(body: bytes, pseudonymise: Pseudonymiser) -> bytes:
    """Pseudonymise the name columns of the CSVs inside a report export archive."""
    try:
        source = zipfile.ZipFile(io.BytesIO(body))
    except zipfile.BadZipFile:
        return body
    out = io.BytesIO()
    with source, zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as target:
        for info in source.infolist():
            data = source.read(info)
            if info.filename.lower().endswith(".csv"):
                data = _scrub_csv(data, pseudonymise)
            target.writestr(info.filename, data)
    return out.getvalue()


def _scrub_csv(data: bytes, pseudonymise: Pseudonymiser) -> bytes:
    bom = data.startswith(b"\xef\xbb\xbf")
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        return data
    rows = list(csv.reader(io.StringIO(text, newline="")))
    if not rows:
        return data
    header = rows[0]
    columns = [i for i, name in enumerate(header) if name in PSEUDONYMISED_FIELDS]
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    writer.writerow(header)
    for row in rows[1:]:
        writer.writerow(
            [pseudonymise(header[i], v) if i in columns else v for i, v in enumerate(row)]
        )
    return buffer.getvalue().encode("utf-8-sig" if bom else "utf-8")


def scrub_request_body(body: bytes) -> bytes:
    if not body:
        return body
    return _scrub_json(body, None) or _scrub_form(body) or body


def scrub_response_body(body: bytes, pseudonymise: Pseudonymiser | None) -> bytes:
    if not body:
        return body
    scrubbed = _scrub_json(body, pseudonymise)
    if scrubbed is not None:
        return scrubbed
    if body.startswith(b"PK\x03\x04"):
        return _scrub_zip(body, pseudonymise) if pseudonymise else body
    try:
        return scrub_text(body.decode("utf-8")).encode("utf-8")
    except UnicodeDecodeError:
        return body


# --- YAML, the subset vcrpy writes ---------------------------------------------------------


def _printable(char: str) -> bool:
    code = ord(char)
    return (
        0x20 <= code < 0x7F
        or (0xA0 <= code < 0xD800 and code not in (0x2028, 0x2029))
        or (0xE000 <= code < 0xFFFE and code != 0xFEFF)
        or code > 0xFFFF
    )


def _quote(text: str) -> str:
    """Single quotes when every character is printable (as vcrpy's dumps read), else escapes."""
    if all(_printable(c) for c in text):
        return "'" + text.replace("'", "''") + "'"
    out = ['"']
    for char in text:
        code = ord(char)
        if char == "\\":
            out.append("\\\\")
        elif char == '"':
            out.append('\\"')
        elif char == "\n":
            out.append("\\n")
        elif char == "\t":
            out.append("\\t")
        elif char == "\r":
            out.append("\\r")
        elif code < 0x20 or 0x7F <= code <= 0x9F:
            out.append(f"\\x{code:02x}")
        elif (
            code in (0x2028, 0x2029, 0xFEFF)
            or 0xD800 <= code <= 0xDFFF
            or code
            in (
                0xFFFE,
                0xFFFF,
            )
        ):
            out.append(f"\\u{code:04x}")
        else:
            out.append(char)
    out.append('"')
    return "".join(out)


def _key(key: str) -> str:
    if _PLAIN_KEY.fullmatch(key) and key.lower() not in _YAML_WORDS:
        return key
    return _quote(key)


def _scalar(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    return _quote(str(value))


def _emit(value: Any, indent: int) -> Iterator[str]:
    """Block-style lines for ``value`` nested at ``indent`` spaces (mapping values, lists)."""
    pad = " " * indent
    if isinstance(value, dict):
        if not value:
            yield f"{pad}{{}}"
            return
        for key in sorted(value):
            item = value[key]
            if isinstance(item, (dict, list)) and item:
                yield f"{pad}{_key(key)}:"
                yield from _emit(item, indent + 2 if isinstance(item, dict) else indent)
            elif isinstance(item, bytes):
                yield f"{pad}{_key(key)}: !!binary |"
                encoded = base64.encodebytes(item).decode("ascii").splitlines()
                yield from (f"{pad}  {line}" for line in encoded)
            else:
                yield f"{pad}{_key(key)}: {_inline(item)}"
    elif isinstance(value, list):
        for item in value:
            if isinstance(item, dict) and item:
                lines = list(_emit(item, indent + 2))
                yield f"{pad}- {lines[0].lstrip()}"
                yield from lines[1:]
            else:
                yield f"{pad}- {_inline(item)}"


def _inline(value: Any) -> str:
    if isinstance(value, dict):
        return "{}"
    if isinstance(value, list):
        return "[]"
    return _scalar(value)


def _text_or_bytes(body: bytes) -> str | bytes:
    """vcrpy keeps UTF-8 bodies as text and everything else as !!binary."""
    try:
        return body.decode("utf-8")
    except UnicodeDecodeError:
        return body


def interaction(
    request: httpx.Request,
    request_body: bytes,
    response: httpx.Response,
    response_body: bytes,
    pseudonymise: Pseudonymiser | None,
) -> dict[str, Any]:
    """One scrubbed vcrpy interaction; ``response_body`` is already content-decoded."""
    sent_body = scrub_request_body(request_body)
    headers: dict[str, list[str]] = {}
    for name, value in request.headers.items():
        lower = name.lower()
        if lower in DROP_REQUEST_HEADERS:
            continue
        headers[lower] = [str(len(sent_body)) if lower == "content-length" else scrub_text(value)]
    body = scrub_response_body(response_body, pseudonymise)
    response_headers: dict[str, list[str]] = {}
    for name, value in response.headers.multi_items():
        lower = name.lower()
        if lower in DROP_RESPONSE_HEADERS or lower == "content-encoding":
            continue
        if lower == "content-length":
            value = str(len(body))
        response_headers.setdefault(lower, []).append(scrub_text(value))
    return {
        "request": {
            "body": _text_or_bytes(sent_body),
            "headers": headers,
            "method": request.method,
            "uri": scrub_text(str(request.url)),
        },
        "response": {
            "body": {"string": _text_or_bytes(body)},
            "headers": response_headers,
            "status": {"code": response.status_code, "message": response.reason_phrase},
        },
    }


def render_interaction(item: Mapping[str, Any]) -> str:
    lines = list(_emit(dict(item), 2))
    return "- " + lines[0].lstrip() + "\n" + "".join(line + "\n" for line in lines[1:])


class RecordingTransport(httpx.BaseTransport):
    """Wraps the transport reconcile would use and appends each exchange to a cassette."""

    def __init__(self, inner: httpx.BaseTransport, path: Path, pseudonymise: bool = False):
        self._inner = inner
        self.path = path
        self._pseudonymise = Pseudonymiser() if pseudonymise else None
        self._lock = threading.Lock()
        self._count = 0
        self._closed = False
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
        self._tmp = Path(tmp)
        self._file = os.fdopen(fd, "w", encoding="utf-8", newline="\n")
        self._file.write("interactions:\n")

    @property
    def interactions(self) -> int:
        return self._count

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        request_body = request.read()
        response = self._inner.handle_request(request)
        try:
            raw = b"".join(response.iter_raw())
        finally:
            response.close()
        try:
            decoded = httpx.Response(
                response.status_code, headers=response.headers, content=raw
            ).content
        except httpx.DecodingError:
            decoded = raw
        item = interaction(request, request_body, response, decoded, self._pseudonymise)
        text = render_interaction(item)
        with self._lock:
            if not self._closed:
                self._file.write(text)
                self._file.flush()
                self._count += 1
        return httpx.Response(
            response.status_code,
            headers=response.headers,
            stream=httpx.ByteStream(raw),
            extensions=response.extensions,
        )

    def close(self) -> None:
        """Finish the cassette and publish it under its name (once; later calls do nothing)."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            if self._count == 0:
                self._file.seek(0)
                self._file.truncate()
                self._file.write("interactions: []\n")
            self._file.write("version: 1\n")
            self._file.close()
            os.replace(self._tmp, self.path)
        self._inner.close()


def recording_transport(
    verify: ssl.SSLContext | bool, path: Path, pseudonymise: bool = False
) -> RecordingTransport:
    """What ``fetch --record-cassette`` wraps: a plain transport with reconcile's trust, and the
    HTTPS proxy from the environment (an injected transport replaces httpx's env handling)."""
    proxy = urllib.request.getproxies().get("https")
    inner = httpx.HTTPTransport(verify=verify, proxy=proxy or None)
    return RecordingTransport(inner, path, pseudonymise)
