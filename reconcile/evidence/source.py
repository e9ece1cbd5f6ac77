"""Open a device log whatever its encoding, hash it, and tell which parser reads it.

Admins hand over what they could export: a PowerShell 5.1 redirect is UTF-16 with a BOM, a
Company Portal upload is UTF-8, a Console copy may hold stray cp1252 bytes. Text is decoded
with replacement so one bad byte costs one line, never the file; files are always streamed.
"""

from __future__ import annotations

import codecs
import csv
import hashlib
import io
import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, date, datetime, tzinfo
from enum import StrEnum
from pathlib import Path

from reconcile.errors import InputError

SNIFF_BYTES = 64 * 1024
SNIFF_LINES = 400

KNOWN_LOGS = (
    "an Android OMA-DM log, an iOS/iPadOS profiled log, or Windows "
    "DeviceManagement-Enterprise-Diagnostics-Provider events exported as XML or CSV"
)


class LogFormat(StrEnum):
    ANDROID = "android-omadm"
    IOS = "ios-profiled"
    WINDOWS_XML = "windows-xml"
    WINDOWS_CSV = "windows-csv"


ANDROID_LINE = re.compile(
    r"^(?P<ts>\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d+)?)\s+(?P<level>[A-Z]+)\s+(?P<kind>\S+)\s+"
    r"(?P<component>[A-Za-z_$][\w$]*(?:\.[\w$]+)+)\s+(?P<pid>\d+)\s+(?P<tid>\d+)\s+(?P<msg>.*)$"
)
IOS_CONSOLE_LINE = re.compile(
    r"^(?P<level>Default|Info|Debug|Error|Fault|Notice|Warning)\s+"
    r"(?P<time>\d{1,2}:\d\d:\d\d(?:\.\d+)?)\s+(?P<tz>[+-]\d{4})\s+"
    r"(?P<process>[^\s:\[]+)(?:\[\d+\])?:?\s+(?P<msg>.*)$"
)
IOS_LOGSHOW_LINE = re.compile(
    r"^(?P<date>\d{4}-\d\d-\d\d)\s+(?P<time>\d\d:\d\d:\d\d(?:\.\d+)?)(?P<tz>[+-]\d\d:?\d\d)\s+"
    r"0x[0-9a-fA-F]+\s+(?P<level>\w+)\s+0x[0-9a-fA-F]+\s+\d+\s+(?:\d+\s+)?"
    r"(?P<process>[^\s:\[]+)(?:\[\d+\])?:\s*(?:\([^)]*\)\s*)?(?:\[[^\]]*\]\s*)?(?P<msg>.*)$"
)
_WINDOWS_CSV_HINTS = frozenset({"providername", "timecreated", "machinename", "leveldisplayname"})


def sniff_encoding(head: bytes) -> str:
    if head.startswith(codecs.BOM_UTF8):
        return "utf-8-sig"
    if head.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        return "utf-16"
    sample = head[:4096]
    if len(sample) >= 4 and sample[1::2].count(0) > len(sample) // 4 and sample[0] != 0:
        return "utf-16-le"
    if len(sample) >= 4 and sample[0::2].count(0) > len(sample) // 4:
        return "utf-16-be"
    return "utf-8"


def sha256_of(path: Path) -> str:
    try:
        with path.open("rb") as handle:
            return hashlib.file_digest(handle, "sha256").hexdigest()
    except OSError as exc:
        raise InputError(f"cannot read: {exc.strerror or exc}", path) from None


@contextmanager
def open_text(path: Path) -> Iterator[io.TextIOWrapper]:
    """Decoded text, newline-preserving (CSV needs quoted line breaks intact)."""
    try:
        raw = path.open("rb")
    except OSError as exc:
        raise InputError(f"cannot read: {exc.strerror or exc}", path) from None
    with raw:
        head = raw.read(SNIFF_BYTES)
        raw.seek(0)
        encoding = sniff_encoding(head)
        with io.TextIOWrapper(raw, encoding=encoding, errors="replace", newline="") as text:
            yield text


def detect(path: Path) -> LogFormat:
    """Decide from the first lines; a file that is no known log is an input error."""
    try:
        with path.open("rb") as raw:
            head = raw.read(SNIFF_BYTES)
    except OSError as exc:
        raise InputError(f"cannot read: {exc.strerror or exc}", path) from None
    if head.startswith(b"ElfFile\x00"):
        raise InputError(
            "a binary .evtx file; export the events as text first: "
            "wevtutil qe Microsoft-Windows-DeviceManagement-Enterprise-Diagnostics-Provider/Admin "
            "/f:xml > events.xml",
            path,
        )
    if not head.strip():
        raise InputError(f"empty file; expected {KNOWN_LOGS}", path)
    encoding = sniff_encoding(head)
    text = head.decode(encoding, errors="replace").lstrip("\ufeff")
    if encoding.startswith("utf-8") and "\x00" in text:
        raise InputError(f"a binary file, not a device log; expected {KNOWN_LOGS}", path)
    stripped = text.lstrip()
    if stripped.startswith("<") and "<Event" in text:
        return LogFormat.WINDOWS_XML
    lines = text.splitlines()[:SNIFF_LINES]
    if _is_windows_csv(lines):
        return LogFormat.WINDOWS_CSV
    for line in lines:
        if ANDROID_LINE.match(line):
            return LogFormat.ANDROID
        if IOS_CONSOLE_LINE.match(line) or IOS_LOGSHOW_LINE.match(line):
            return LogFormat.IOS
    first = next((line.strip() for line in lines if line.strip()), "")
    raise InputError(f"not a known device log (starts {first[:60]!r}); expected {KNOWN_LOGS}", path)


def _is_windows_csv(lines: list[str]) -> bool:
    rows = [line for line in lines if line.strip()]
    if rows and rows[0].startswith("#TYPE"):
        rows = rows[1:]
    if not rows:
        return False
    header = {cell.strip().casefold() for cell in next(csv.reader([rows[0]]))}
    return {"id", "message"} <= header and bool(header & _WINDOWS_CSV_HINTS)


@dataclass(frozen=True)
class ParseOptions:
    """What the log itself may not say: whose it is, its time zone, and (iOS) its date."""

    device: str | None = None
    timezone: tzinfo = UTC
    log_date: date | None = None

    def localize(self, value: datetime) -> datetime:
        """A naive log time is in the given zone; return it in UTC."""
        if value.tzinfo is None:
            value = value.replace(tzinfo=self.timezone)
        return value.astimezone(UTC)

    def device_for(self, logged: str | None, path: Path) -> str:
        name = (logged or "").strip() or (self.device or "").strip()
        if not name:
            raise InputError(
                "the log does not name its device: pass --device NAME (the Intune device name)",
                path,
            )
        return name
