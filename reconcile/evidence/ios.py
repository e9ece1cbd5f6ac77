"""iOS/iPadOS ``profiled`` debug log: the mscep.dll requests and "Profile '…SCEP…' installed."

profiled logs only its requests, never NDES's answers, so a request proves the previous step
answered: PKIOperation is encrypted to the CA certificate GetCACert returned, and the SCEP
profile is only assembled ("Adding dependent … to parent …SCEP…") once the certificate came
back. Console copies carry no date (pass ``--log-date``) and RTF escapes such as \\'93 for the
curly quotes, which are tolerated.
"""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

from reconcile.evidence.attempt import Attempt
from reconcile.evidence.model import ParsedLog, Platform, Stage, find_profile
from reconcile.evidence.source import (
    IOS_CONSOLE_LINE,
    IOS_LOGSHOW_LINE,
    ParseOptions,
    open_text,
)

_REQUEST = re.compile(r"Performing synchronous URL request:\s*(?P<url>\S+)")
_OPERATION = re.compile(r"[?&]operation=(\w+)", re.IGNORECASE)
_DEPENDENT = re.compile(r"Adding dependent \S+ to parent (?P<parent>\S+)")
_INSTALLED = re.compile(r"Profile\s+(?P<name>.+?)\s+installed\.?\s*$")
_QUOTES = re.compile(r"\\'9[1-4]|[\"'‘’“”]")
_SCEP_CONTEXT = re.compile(r"scep|mscep|windowsintune", re.IGNORECASE)
_FAILURE = re.compile(
    r"\bfail(?:ed|ure|s)?\b|\bcould ?n[o']t\b|\binvalid response\b|\bdenied\b", re.IGNORECASE
)


class _Clock:
    """Console copies give a time of day only; roll the date over when the time goes back."""

    def __init__(self, options: ParseOptions):
        self.options = options
        self.day: date | None = options.log_date
        self.last: datetime | None = None

    def stamp(self, logged_date: str | None, clock: str, offset: str) -> datetime | None:
        zone = f"{offset[:3]}:{offset[-2:]}"
        if logged_date is not None:
            return datetime.fromisoformat(f"{logged_date}T{_padded(clock)}{zone}").astimezone(UTC)
        if self.day is None:
            return None
        value = datetime.fromisoformat(f"{self.day.isoformat()}T{_padded(clock)}{zone}")
        if self.last is not None and value < self.last - timedelta(hours=1):
            self.day += timedelta(days=1)
            value += timedelta(days=1)
        self.last = value
        return value.astimezone(UTC)


def _padded(clock: str) -> str:
    """``9:05:03.1234567`` -> ``09:05:03.1234567``: fromisoformat wants a two-digit hour
    (any number of fractional digits is fine since Python 3.11)."""
    head, dot, fraction = clock.partition(".")
    return head.zfill(8) + dot + fraction


def _clean(message: str) -> str:
    return message.rstrip().rstrip("\\").rstrip()


class _Parse:
    def __init__(self) -> None:
        self.attempts: list[Attempt] = []

    @property
    def current(self) -> Attempt | None:
        return self.attempts[-1] if self.attempts else None

    def open(self, number: int, *, fresh: bool) -> Attempt:
        current = self.current
        if current is None or current.finished or fresh:
            current = Attempt(number)
            self.attempts.append(current)
        return current

    def handle(self, number: int, time: datetime | None, level: str, msg: str) -> bool:
        if match := _REQUEST.search(msg):
            url = match["url"]
            operation = _OPERATION.search(url)
            if operation is None or "mscep" not in url.casefold():
                return False
            name = operation.group(1)
            if name.casefold() == "pkioperation":
                attempt = self.open(number, fresh=False)
                attempt.reach(Stage.PKI_OPERATION_SENT, time, "PKIOperation requested", number)
            else:
                current = self.current
                restart = current is not None and (
                    current.stage is not None and current.stage.rank > Stage.CA_CERT_FETCHED.rank
                )
                attempt = self.open(number, fresh=restart)
                attempt.reach(Stage.ENROLLMENT_REQUESTED, time, f"{name} requested", number)
            return True
        if (match := _DEPENDENT.search(msg)) and ".SCEP." in match["parent"]:
            attempt = self.open(number, fresh=False)
            attempt.name(*find_profile(match["parent"]))
            attempt.reach(
                Stage.CERT_ISSUED,
                time,
                "SCEP profile being installed (certificate received)",
                number,
            )
            return True
        if (match := _INSTALLED.search(msg)) and ".SCEP." in match["name"]:
            attempt = self.open(number, fresh=False)
            attempt.name(*find_profile(_QUOTES.sub("", match["name"])))
            attempt.reach(Stage.CERT_INSTALLED, time, "SCEP profile installed", number)
            return True
        current = self.current
        in_flight = current is not None and not current.finished
        if (_SCEP_CONTEXT.search(msg) or in_flight) and (
            _FAILURE.search(msg) or level in ("Error", "Fault")
        ):
            attempt = self.open(number, fresh=False)
            attempt.fail(time, _QUOTES.sub("'", msg)[:300], number)
            return True
        return False


def parse_ios(path: Path, options: ParseOptions, sha256: str) -> ParsedLog:
    """Stream a Console copy or ``log show`` output; only profiled lines can count."""
    device = options.device_for(None, path)
    clock = _Clock(options)
    state = _Parse()
    units = skipped = 0
    undated = False
    with open_text(path) as text:
        for number, raw in enumerate(text, start=1):
            line = raw.rstrip("\r\n")
            if not line.strip():
                continue
            units += 1
            match = IOS_CONSOLE_LINE.match(line) or IOS_LOGSHOW_LINE.match(line)
            if match is None or match["process"] != "profiled":
                skipped += 1
                continue
            groups = match.groupdict()
            try:
                time = clock.stamp(groups.get("date"), match["time"], match["tz"])
            except ValueError:
                skipped += 1
                continue
            undated = undated or time is None
            if not state.handle(number, time, match["level"], _clean(match["msg"])):
                skipped += 1
    source = str(path)
    return ParsedLog(
        path=source,
        sha256=sha256,
        platform=Platform.IOS,
        records=tuple(a.record(Platform.IOS, source, device) for a in state.attempts),
        units=units,
        skipped=skipped,
        unit="lines",
        undated=undated,
    )
