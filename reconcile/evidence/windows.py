"""Windows DeviceManagement-Enterprise-Diagnostics-Provider/Admin events, as XML or CSV.

Which events mean what (Microsoft's SCEP troubleshooting articles and the field):
306 "SCEP: CspExecute for UniqueId …" (the profile reached the ClientCertificateInstall CSP),
36 "SCEP: Certificate request generated successfully" (the request is built, which needs the CA
certificate from GetCACert), 39 "SCEP: Certificate installed successfully.", 32 "SCEP:
Certificate enroll failed. Result: (…)" and 307 "SCEP: Failed LogError Message : (…)". Any
other SCEP event is kept with its id and message: a failure when its level is Error or it says
so, a note otherwise. Exports are often newest first, so SCEP events are sorted by time before
they are read as attempts; only SCEP events are held in memory.
"""

from __future__ import annotations

import csv
import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from xml.parsers import expat

from reconcile.errors import InputError
from reconcile.evidence.attempt import Attempt
from reconcile.evidence.model import ParsedLog, Platform, Stage, find_profile
from reconcile.evidence.source import ParseOptions, open_text
from reconcile.timeparse import parse_iso

_PROVIDER = re.compile(r"DeviceManagement-Enterprise-Diagnostics?-Provider", re.IGNORECASE)
_SCEP = re.compile(r"\bSCEP\b")
_FAILURE = re.compile(r"\bfail(?:ed|ure|s)?\b", re.IGNORECASE)
_LOCAL_TIME = re.compile(
    r"^(?P<a>\d{1,2})(?P<sep>[/.])(?P<b>\d{1,2})[/.](?P<year>\d{4})\s+"
    r"(?P<hour>\d{1,2}):(?P<minute>\d\d)(?::(?P<second>\d\d))?\s*(?P<ampm>[AaPp][Mm])?$"
)

ENROLLMENT_REQUESTED_EVENT = 306
REQUEST_GENERATED_EVENT = 36
INSTALLED_EVENT = 39
ENROLL_FAILED_EVENT = 32
LOG_ERROR_EVENT = 307
_KNOWN = frozenset(
    {
        ENROLLMENT_REQUESTED_EVENT,
        REQUEST_GENERATED_EVENT,
        INSTALLED_EVENT,
        ENROLL_FAILED_EVENT,
        LOG_ERROR_EVENT,
    }
)
_ERROR_LEVELS = frozenset({1, 2})


@dataclass(frozen=True, slots=True)
class _Event:
    event_id: int
    level: int | None
    time: datetime | None
    computer: str | None
    message: str
    line: int
    order: int


def _is_scep(provider: str | None, event_id: int, message: str) -> bool:
    if provider is not None and not _PROVIDER.search(provider):
        return False
    return event_id in _KNOWN or bool(_SCEP.search(message))


def _local_time(text: str, options: ParseOptions) -> datetime | None:
    """Export-Csv writes TimeCreated in the exporting user's culture and zone."""
    text = text.strip()
    if not text:
        return None
    try:
        iso = parse_iso(text) if "T" in text or text[:4].isdigit() else None
    except ValueError:
        iso = None
    if iso is not None:
        if re.search(r"(?:Z|[+-]\d\d:?\d\d)$", text):
            return iso
        return options.localize(iso.replace(tzinfo=None))
    match = _LOCAL_TIME.match(text)
    if match is None:
        return None
    first, second = int(match["a"]), int(match["b"])
    day_first = match["sep"] == "." or first > 12
    month, day = (second, first) if day_first else (first, second)
    hour = int(match["hour"])
    if match["ampm"]:
        hour = hour % 12 + (12 if match["ampm"].lower() == "pm" else 0)
    try:
        value = datetime(
            int(match["year"]), month, day, hour, int(match["minute"]), int(match["second"] or 0)
        )
    except ValueError:
        return None
    return options.localize(value)


def _event(fields: dict[str, str], data: list[str], line: int, order: int) -> _Event | None:
    event_id = fields.get("EventID", "").strip()
    if not event_id.isdigit():
        return None
    level = fields.get("Level", "").strip()
    try:
        when = parse_iso(fields.get("TimeCreated"))
    except ValueError:
        when = None
    message = " ".join((fields.get("Message") or " ".join(data)).split())
    return _Event(
        int(event_id),
        int(level) if level.isdigit() else None,
        when,
        fields.get("Computer", "").strip() or None,
        message,
        line,
        order,
    )


class _Scan:
    def __init__(self) -> None:
        self.units = 0
        self.skipped = 0
        self.events: list[_Event] = []
        self.warnings: list[str] = []

    def offer(self, provider: str | None, event: _Event) -> None:
        if _is_scep(provider, event.event_id, event.message):
            self.events.append(event)
        else:
            self.skipped += 1


class _XmlEvents:
    """Pull the few fields reconcile needs out of each <Event>, with its line number."""

    _TEXT = frozenset({"EventID", "Level", "Computer", "Message", "Data"})

    def __init__(self, scan: _Scan):
        self.scan = scan
        self.parser = expat.ParserCreate()
        self.parser.StartElementHandler = self.start
        self.parser.EndElementHandler = self.end
        self.parser.CharacterDataHandler = self.characters
        self.line = 0
        self.fields: dict[str, str] = {}
        self.data: list[str] = []
        self.text: list[str] | None = None

    def start(self, tag: str, attributes: dict[str, str]) -> None:
        name = tag.rsplit(":", 1)[-1]
        if name == "Event":
            self.line = self.parser.CurrentLineNumber
            self.fields = {}
            self.data = []
        elif name == "Provider" and "Name" in attributes:
            self.fields.setdefault("Provider", attributes["Name"])
        elif name == "TimeCreated" and "SystemTime" in attributes:
            self.fields.setdefault("TimeCreated", attributes["SystemTime"])
        if name in self._TEXT:
            self.text = []

    def characters(self, data: str) -> None:
        if self.text is not None:
            self.text.append(data)

    def end(self, tag: str) -> None:
        name = tag.rsplit(":", 1)[-1]
        if name in self._TEXT and self.text is not None:
            value = "".join(self.text).strip()
            if name == "Data":
                if value:
                    self.data.append(value)
            else:
                self.fields.setdefault(name, value)
            self.text = None
        elif name == "Event":
            self.scan.units += 1
            event = _event(self.fields, self.data, self.line, self.scan.units)
            if event is None:
                self.scan.skipped += 1
            else:
                self.scan.offer(self.fields.get("Provider"), event)


def _scan_xml(path: Path, scan: _Scan) -> None:
    """wevtutil writes events without a root element; wrap them in one while streaming."""
    events = _XmlEvents(scan)
    first = True
    try:
        events.parser.Parse("<reconcile-events>", False)
        with open_text(path) as text:
            while chunk := text.read(1 << 16):
                if first:
                    chunk = _drop_declaration(chunk)
                    first = False
                events.parser.Parse(chunk, False)
        events.parser.Parse("</reconcile-events>", True)
    except expat.ExpatError as exc:
        if not scan.units:
            raise InputError(
                f"not well-formed event XML: {expat.errors.messages[exc.code]}", path, exc.lineno
            ) from None
        scan.warnings.append(
            f"{path}:{exc.lineno}: event XML ends early or is malformed; the rest was skipped"
        )


def _drop_declaration(chunk: str) -> str:
    """The declaration names the file's encoding, which is already decoded; keep line numbers."""
    stripped = chunk.lstrip("\ufeff")
    if stripped.startswith("<?xml"):
        end = stripped.find("?>")
        if end != -1:
            return " " * (end + 2) + stripped[end + 2 :]
    return stripped


def _scan_csv(path: Path, scan: _Scan, options: ParseOptions) -> None:
    with open_text(path) as text:
        lines = _numbered(text)
        header: list[str] | None = None
        start = 0
        for start, row in _rows(lines):
            if header is None:
                if row and row[0].startswith("#TYPE"):
                    continue
                header = [cell.strip().casefold() for cell in row]
                continue
            if not any(cell.strip() for cell in row):
                continue
            scan.units += 1
            if len(row) != len(header):
                scan.skipped += 1
                continue
            cells = dict(zip(header, row, strict=True))
            event_id = cells.get("id", "").strip()
            if not event_id.isdigit():
                scan.skipped += 1
                continue
            level = cells.get("level", "").strip()
            event = _Event(
                int(event_id),
                int(level) if level.isdigit() else None,
                _local_time(cells.get("timecreated", ""), options),
                cells.get("machinename", "").strip() or None,
                " ".join(cells.get("message", "").split()),
                start,
                scan.units,
            )
            scan.offer(cells.get("providername"), event)
        if header is None:
            raise InputError("no CSV header", path, start or None)


def _numbered(text: Iterator[str]) -> Iterator[tuple[int, str]]:
    yield from enumerate(text, start=1)


def _rows(lines: Iterator[tuple[int, str]]) -> Iterator[tuple[int, list[str]]]:
    """csv rows with the line each starts on; a quoted message may span lines."""
    current = [0]

    def feed() -> Iterator[str]:
        for number, line in lines:
            if current[0] == 0:
                current[0] = number
            yield line

    reader = csv.reader(feed())
    for row in reader:
        yield current[0], row
        current[0] = 0


def _attempts(events: list[_Event], path: Path, options: ParseOptions) -> list[tuple[str, Attempt]]:
    minimum = datetime.min.replace(tzinfo=UTC)
    events.sort(key=lambda e: (e.time or minimum, e.order))
    attempts: list[tuple[str, Attempt]] = []
    current: dict[str, Attempt] = {}
    for event in events:
        device = options.device_for(event.computer, path)
        attempt = current.get(device)
        profile, profile_id = find_profile(event.message)
        starts = event.event_id in (ENROLLMENT_REQUESTED_EVENT, REQUEST_GENERATED_EVENT)
        other_profile = (
            attempt is not None
            and profile_id is not None
            and attempt.profile_id is not None
            and profile_id != attempt.profile_id
        )
        if (
            attempt is None
            or other_profile
            or (starts and attempt.finished)
            or (
                event.event_id == ENROLLMENT_REQUESTED_EVENT
                and attempt.stage is not None
                and attempt.stage.rank >= Stage.CA_CERT_FETCHED.rank
            )
        ):
            attempt = Attempt(event.line or event.order)
            attempts.append((device, attempt))
            current[device] = attempt
        attempt.name(profile, profile_id)
        _apply(attempt, event)
    return attempts


def _apply(attempt: Attempt, event: _Event) -> None:
    text = (
        f"event {event.event_id}: {event.message}" if event.message else f"event {event.event_id}"
    )
    number = event.line or event.order
    if event.event_id == INSTALLED_EVENT:
        attempt.reach(Stage.CERT_INSTALLED, event.time, text, number)
    elif event.event_id in (ENROLL_FAILED_EVENT, LOG_ERROR_EVENT) or (
        event.level in _ERROR_LEVELS or _FAILURE.search(event.message)
    ):
        attempt.fail(event.time, text[:400], number)
    elif event.event_id == ENROLLMENT_REQUESTED_EVENT:
        attempt.reach(Stage.ENROLLMENT_REQUESTED, event.time, text, number)
    elif event.event_id == REQUEST_GENERATED_EVENT:
        attempt.reach(Stage.CA_CERT_FETCHED, event.time, text, number)
    else:
        attempt.note(event.time, text, number)


def parse_windows(path: Path, options: ParseOptions, sha256: str, *, xml: bool) -> ParsedLog:
    """Read an XML (wevtutil / Get-WinEvent ToXml) or CSV (Export-Csv) export."""
    scan = _Scan()
    if xml:
        _scan_xml(path, scan)
    else:
        _scan_csv(path, scan, options)
    attempts = _attempts(scan.events, path, options)
    source = str(path)
    return ParsedLog(
        path=source,
        sha256=sha256,
        platform=Platform.WINDOWS,
        records=tuple(a.record(Platform.WINDOWS, source, device) for device, a in attempts),
        units=scan.units,
        skipped=scan.skipped,
        unit="events",
        warnings=tuple(scan.warnings),
    )
