"""Timestamps from Graph and from snapshots: ISO-8601 with up to 7 fractional digits."""

from __future__ import annotations

import re
from datetime import UTC, datetime

_FRACTION = re.compile(r"\.(\d+)")


def parse_iso(text: str | None) -> datetime | None:
    """Parse Graph's DateTimeOffset; '0001-01-01' and empty mean unknown. Raises ValueError."""
    if text is None:
        return None
    text = text.strip()
    if not text or text.startswith("0001-01-01"):
        return None
    if text.endswith(("Z", "z")):
        text = text[:-1] + "+00:00"
    # Graph sends 7 fractional digits (.NET ticks); Python takes at most 6.
    text = _FRACTION.sub(lambda m: "." + m.group(1)[:6].ljust(6, "0"), text, count=1)
    value = datetime.fromisoformat(text)
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    try:
        return value.astimezone(UTC)
    except OverflowError:
        raise ValueError(f"date {text!r} is out of range") from None


def iso_z(value: datetime | None) -> str:
    """The one way reconcile writes a time: ISO-8601 UTC with a Z, to the second."""
    if value is None:
        return ""
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
