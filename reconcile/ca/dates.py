"""Date cells of CA exports, parsed by hand because a million rows of strptime cost seconds.

AD CS and PowerShell print dates in the CA server's short culture format (`4/25/2027 7:36 PM`,
`25.04.2027 19:36:12`, optionally followed by `GMT`); EJBCA stores epoch milliseconds; OpenSSL
writes ASN.1 UTCTime. Everything comes out as an aware UTC datetime.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, tzinfo
from enum import StrEnum
from zoneinfo import ZoneInfo

from reconcile.timeparse import parse_utc

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_CACHE_LIMIT = 1 << 16
_CLOCK_LIMIT = 100_000  # every second of a day fits: certutil -seconds prints each
_UTC_SUFFIXES = (" GMT", " UTC", " Z", " gmt", " utc", " z")
_AM = frozenset({"AM", "A.M.", "A. M.", "AM."})
_PM = frozenset({"PM", "P.M.", "P. M.", "PM."})
_ZONED_ENOUGH = 1000


def zone(name: str) -> tzinfo:
    """The zone for naive CA times; UTC is returned as the fast built-in singleton."""
    if name.upper() in ("UTC", "GMT", "ETC/UTC", "Z"):
        return UTC
    return ZoneInfo(name)


def _two_digit_year(year: int) -> int:
    # RFC 5280's UTCTime pivot, the only rule with a standard behind it.
    return year + (1900 if year >= 50 else 2000)


class DateOrder(StrEnum):
    """Where day, month and year stand in a CA's culture dates."""

    MDY = "mdy"
    DMY = "dmy"
    YMD = "ymd"


_ORDERS = tuple(DateOrder)


class CultureDates:
    """Parses culture-formatted dates in one configured day/month/year order.

    A four-digit first component is always year-first, whatever the order says, so ISO-like
    `2027-04-25 19:36:12` needs no configuration. The day part and the clock part are cached
    separately (a big export has a few thousand distinct days and at most 86,400 distinct clock
    readings), and whole cells too, so equal cells share one datetime object.
    """

    def __init__(self, order: str = "mdy", tz: tzinfo = UTC) -> None:
        self._zone = tz
        self.use(order)

    def use(self, order: str) -> None:
        """Switch the order for slash and dash forms (once detection has read the file)."""
        if order not in _ORDERS:
            raise ValueError(f"date order must be one of {', '.join(_ORDERS)}, not {order!r}")
        self._order = order
        self._cache: dict[str, datetime] | None = {}
        self._hits = 0
        self._days: dict[str, datetime] = {}
        self._clocks: dict[str, timedelta] = {}

    def __call__(self, text: str) -> datetime:
        cache = self._cache
        if cache is not None:
            value = cache.get(text)
            if value is not None:
                self._hits += 1
                return value
        try:
            value = self._culture(text)
        except (ValueError, OverflowError):
            value = self._iso(text)
        if cache is not None:
            if len(cache) >= _CACHE_LIMIT:
                # Exports printed with seconds rarely repeat a cell: stop paying for the
                # cache once a full round of it earned fewer hits than a quarter of its size.
                self._cache = {} if self._hits * 4 >= len(cache) else None
                self._hits = 0
            else:
                cache[text] = value
        return value

    def _culture(self, text: str) -> datetime:
        s = text.strip()
        tz = self._zone
        if s.endswith(_UTC_SUFFIXES):
            s = s[: s.rindex(" ")].rstrip()
            tz = UTC
        if ". " in s:
            s = s.replace(". ", ".")  # cs-CZ / sk-SK: `3. 10. 2023 10:11:26`
        date_part, _, clock = s.partition(" ")
        midnight = self._days.get(date_part)
        if midnight is None:
            midnight = self._day(date_part)
            if len(self._days) >= _CACHE_LIMIT:
                self._days.clear()
            self._days[date_part] = midnight
        offset = self._clocks.get(clock)
        if offset is None:
            offset = self._clock(clock)
            if len(self._clocks) >= _CLOCK_LIMIT:
                self._clocks.clear()
            self._clocks[clock] = offset
        # Adding a cached timedelta to a cached midnight is several times cheaper than
        # constructing each datetime; a local zone needs the real conversion (DST).
        if tz is UTC:
            return midnight + offset
        return (midnight + offset).replace(tzinfo=tz).astimezone(UTC)

    def _day(self, text: str) -> datetime:
        dotted = "." in text
        parts = text.replace(".", "/").replace("-", "/").rstrip("/").split("/")
        if len(parts) != 3 or not all(p.isdigit() and p.isascii() for p in parts):
            raise ValueError(text)
        a, b, c = int(parts[0]), int(parts[1]), int(parts[2])
        if dotted and len(parts[0]) != 4:
            # Every culture that writes dotted dates writes the day first (de-DE, cs-CZ, ru-RU).
            day, month, year = a, b, c
            year_digits = len(parts[2])
        elif len(parts[0]) == 4 or self._order == "ymd":
            year, month, day = a, b, c
            year_digits = len(parts[0])
        elif self._order == "mdy":
            month, day, year = a, b, c
            year_digits = len(parts[2])
        else:
            day, month, year = a, b, c
            year_digits = len(parts[2])
        if year_digits <= 2:
            year = _two_digit_year(year)
        return datetime(year, month, day, tzinfo=UTC)

    @staticmethod
    def _clock(text: str) -> timedelta:
        text = text.strip()
        if not text:
            return timedelta()
        clock, _, marker = text.partition(" ")
        fields = clock.split(":")
        if not 2 <= len(fields) <= 3:
            raise ValueError(text)
        hour, minute = _digits(fields[0]), _digits(fields[1])
        second = micro = 0
        if len(fields) == 3:
            whole, _, fraction = fields[2].replace(",", ".").partition(".")
            second = _digits(whole)
            if fraction:
                micro = _digits(fraction[:6].ljust(6, "0"))
        marker = marker.strip().upper()
        if marker:
            if not 1 <= hour <= 12:
                raise ValueError(text)
            if marker in _PM:
                hour = hour % 12 + 12
            elif marker in _AM:
                hour = hour % 12
            else:
                raise ValueError(text)
        if hour > 23 or minute > 59 or second > 59:
            raise ValueError(text)
        return timedelta(hours=hour, minutes=minute, seconds=second, microseconds=micro)

    def _iso(self, text: str) -> datetime:
        try:
            return parse_utc(text, self._zone)
        except ValueError:
            raise ValueError(f"{text.strip()[:60]!r} is not a date") from None


def _digits(text: str) -> int:
    if not (text.isdigit() and text.isascii()):
        raise ValueError(text)
    return int(text)


def epoch_millis(text: str) -> datetime | None:
    """EJBCA's long timestamps; -1 (and any negative) means 'never', as in revocationDate."""
    value = int(text.strip())
    if value < 0:
        return None
    try:
        return _EPOCH + timedelta(milliseconds=value)
    except OverflowError:
        raise ValueError(f"{value} milliseconds is past year 9999") from None


def epoch_seconds(text: str) -> datetime | None:
    """Unix seconds (fractions allowed); negative means 'never', mirroring epoch_millis."""
    stripped = text.strip()
    whole, _, fraction = stripped.partition(".")
    value = int(whole)
    if value < 0 or stripped.startswith("-"):
        return None
    micros = int(fraction[:6].ljust(6, "0")) if fraction else 0
    try:
        return _EPOCH + timedelta(seconds=value, microseconds=micros)
    except OverflowError:
        raise ValueError(f"{value} seconds is past year 9999") from None


def asn1_time(text: str) -> datetime:
    """OpenSSL index.txt times: UTCTime YYMMDDHHMMSSZ or GeneralizedTime YYYYMMDDHHMMSSZ."""
    s = text.strip()
    if not (s.endswith("Z") and s[:-1].isdigit() and s.isascii() and len(s) in (13, 15)):
        raise ValueError(f"{s[:40]!r} is not YYMMDDHHMMSSZ")
    if len(s) == 13:
        year = _two_digit_year(int(s[0:2]))
        s = s[2:]
    else:
        year = int(s[0:4])
        s = s[4:]
    try:
        return datetime(
            year, int(s[0:2]), int(s[2:4]), int(s[4:6]), int(s[6:8]), int(s[8:10]), tzinfo=UTC
        )
    except ValueError:
        raise ValueError(f"{text.strip()!r} is not a valid time") from None


class Evidence(StrEnum):
    """What one date cell says about the day/month order of its file."""

    DAY_FIRST = "dmy"
    MONTH_FIRST = "mdy"
    AMBIGUOUS = "ambiguous"
    FIXED = "fixed"  # dotted (always day-first) or year-first: the order setting does not apply
    OTHER = "other"  # not a culture date (ISO with T, epoch numbers, or garbage)


def order_evidence(text: str) -> Evidence:
    """Classify one cell: slash/dash forms whose first field is > 12 are day-first, and so on."""
    s = text.strip().replace(". ", ".")
    date_part = s.partition(" ")[0]
    if "T" in date_part or not date_part[:1].isdigit():
        return Evidence.OTHER
    dotted = "." in date_part
    parts = date_part.replace(".", "/").replace("-", "/").rstrip("/").split("/")
    if len(parts) != 3 or not all(p.isdigit() and p.isascii() for p in parts):
        return Evidence.OTHER
    if dotted or len(parts[0]) == 4:
        return Evidence.FIXED
    first, second = int(parts[0]), int(parts[1])
    if first > 12 >= second:
        return Evidence.DAY_FIRST
    if second > 12 >= first:
        return Evidence.MONTH_FIRST
    return Evidence.AMBIGUOUS


def has_zone(text: str) -> bool:
    """True when a date cell says which zone it is in (GMT/UTC/Z suffix or an ISO offset)."""
    s = text.strip()
    if s.endswith(_UTC_SUFFIXES) or s[-1:] in ("Z", "z"):
        return True
    clock = s.partition("T")[2] if "T" in s else ""
    return "+" in clock or clock.count("-") > 0


_DECIDING = frozenset({Evidence.DAY_FIRST, Evidence.MONTH_FIRST, Evidence.FIXED})


class DateScan:
    """The order a file's slash dates use, decided before any row is converted.

    A value whose first field is > 12 is day-first, one whose second field is > 12 is
    month-first; both in one file is refused, so a silent day/month swap cannot happen. Only
    when every value is ambiguous does the configured order (default mdy) apply.
    """

    def __init__(self, configured: str, default: str = "mdy", *, given: bool = False) -> None:
        self.configured = configured
        self.default = default
        self.given = given
        self.first: dict[Evidence, int] = {}
        self.zoneless_line = 0
        self._zoned = 0

    def see(self, text: str, line: int) -> None:
        evidence = order_evidence(text)
        if evidence is not Evidence.OTHER:
            self.first.setdefault(evidence, line)
            if self.zoneless_line:
                return
            if has_zone(text):
                self._zoned += 1
            else:
                self.zoneless_line = line

    @property
    def settled(self) -> bool:
        """The order is decided and the zone question answered: stop reading.

        One tool in one culture wrote the whole file, so dotted or year-first dates need no
        more reading, and a thousand zoned cells answer for the rest.
        """
        decided = not self.first.keys().isdisjoint(_DECIDING)
        return decided and (bool(self.zoneless_line) or self._zoned >= _ZONED_ENOUGH)

    def conflict(self) -> tuple[int, int] | None:
        """(day-first line, month-first line) when the file holds both."""
        if Evidence.DAY_FIRST in self.first and Evidence.MONTH_FIRST in self.first:
            return self.first[Evidence.DAY_FIRST], self.first[Evidence.MONTH_FIRST]
        return None

    def order(self) -> str:
        if Evidence.DAY_FIRST in self.first:
            return "dmy"
        if Evidence.MONTH_FIRST in self.first:
            return "mdy"
        return self.configured

    def describe(self) -> str | None:
        """How the order was chosen, for the summary, run.json and -v; None without dates."""
        if Evidence.DAY_FIRST in self.first:
            line = self.first[Evidence.DAY_FIRST]
            return f"date order dmy detected from line {line} (first field > 12)"
        if Evidence.MONTH_FIRST in self.first:
            line = self.first[Evidence.MONTH_FIRST]
            return f"date order mdy detected from line {line} (second field > 12)"
        if Evidence.AMBIGUOUS in self.first:
            how = "configured" if self.given or self.configured != self.default else "default"
            return (
                f"date order {self.configured} ({how}): every slash date is ambiguous "
                "(no field > 12); set --date-order if that is wrong"
            )
        if Evidence.FIXED in self.first:
            return "date order needs no setting: dates are dotted (day first) or year first"
        return None
