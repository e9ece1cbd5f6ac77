"""The one ISO-8601 reader and writer: Graph, snapshots, run metadata, settings and CA exports.

Python 3.11's ``fromisoformat`` reads ``Z`` and any number of fractional digits (Graph sends
seven, .NET ticks); only RFC 3339's lowercase ``z`` needs help.
"""

from __future__ import annotations

from datetime import UTC, datetime, tzinfo


def parse_utc(text: str, naive: tzinfo = UTC) -> datetime:
    """An ISO-8601 time in UTC; a time without offset is in ``naive``. Raises ValueError."""
    text = text.strip()
    if text[-1:] == "z":
        text = text[:-1] + "Z"
    value = datetime.fromisoformat(text)
    if value.tzinfo is None:
        value = value.replace(tzinfo=naive)
    try:
        return value.astimezone(UTC)
    except OverflowError:
        raise ValueError(f"date {text!r} is out of range") from None


def parse_iso(text: str | None) -> datetime | None:
    """Parse Graph's DateTimeOffset; '0001-01-01' and empty mean unknown. Raises ValueError."""
    if text is None:
        return None
    text = text.strip()
    if not text or text.startswith("0001-01-01"):
        return None
    return parse_utc(text)


_ISO_Z = "%Y-%m-%dT%H:%M:%SZ"


def iso_z(value: datetime | None) -> str:
    """The one way reconcile writes a time: ISO-8601 UTC with a Z, to the second.

    Formatted field by field, as ``strftime(_ISO_Z)`` writes it (a 1M-row run writes about
    300,000 of them, and strftime took 2.5 times as long); years before 1000, which strftime
    writes unpadded on Linux, still go through it."""
    if value is None:
        return ""
    if value.tzinfo is not UTC:
        value = value.astimezone(UTC)
    if value.year < 1000:
        return value.strftime(_ISO_Z)
    # %-formatting: half the time of the same f-string's format specifiers.
    return "%04d-%02d-%02dT%02d:%02d:%02dZ" % (  # noqa: UP031
        value.year,
        value.month,
        value.day,
        value.hour,
        value.minute,
        value.second,
    )
